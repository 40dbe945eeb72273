// SPDX-License-Identifier: MIT
// ckpt-tool dump, capture: the fd table (/proc/PID/fd, fdinfo). Each descriptor goes to the
// first kind in kKinds that takes it; one no kind takes is refused by name. A new kind of
// descriptor is one more FdKind (and its restore in become_fds.cpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "dump.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump {

image::FileId file_id(const std::string& path, uint64_t expect_ino, const std::string& what,
                      KnownFiles* known) {
  if (expect_ino)
    if (auto it = known->find({path, expect_ino}); it != known->end()) return it->second;
  struct stat st;
  if (stat(path.c_str(), &st) < 0)
    throw Error{kFailed, what + " " + path + ": " + strerror(errno)};
  if (!S_ISREG(st.st_mode)) throw Error{kFailed, what + " " + path + " is not a regular file"};
  if (expect_ino && st.st_ino != expect_ino)
    throw Error{kFailed, what + " " + path +
                             " is not the file the process has (another mount namespace?)"};
  image::FileId f{path, uint64_t(st.st_ino), uint64_t(st.st_size),
                  uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec)};
  (*known)[{path, f.ino}] = f;
  return f;
}

namespace {

using namespace image;

// One descriptor of the process as /proc shows it.
struct FdSource {
  int pid;            // the process
  int n;              // its number
  std::string link;   // readlink of /proc/PID/fd/N
  struct stat st;     // stat of /proc/PID/fd/N (the file it opens)
  std::string info;   // /proc/PID/fdinfo/N
};

// A kind of descriptor: if `s` is one, fills f.kind and what restore needs, and returns true.
using FdKind = bool (*)(const FdSource& s, Fd* f, KnownFiles* known);

// A regular file, reopened by path at restore (and checked to be the same file).
bool regular_file(const FdSource& s, Fd* f, KnownFiles* known) {
  if (!S_ISREG(s.st.st_mode) || s.link.empty() || s.link[0] != '/' ||
      ends_with(s.link, " (deleted)"))
    return false;
  f->kind = kFdRegular;
  f->file = file_id(s.link, s.st.st_ino, "open file", known);
  return true;
}

// The same file at `s.link` now, for a descriptor whose file restore checks by inode only.
FileId by_inode(const FdSource& s, const char* what) {
  struct stat now;
  if (stat(s.link.c_str(), &now) < 0 || now.st_ino != s.st.st_ino || now.st_dev != s.st.st_dev)
    throw Error{kFailed, std::string(what) + " " + s.link +
                             " is not the file the process has (another mount namespace?)"};
  return FileId{s.link, uint64_t(s.st.st_ino), 0, 0};
}

bool absolute_path(const FdSource& s) {
  return !s.link.empty() && s.link[0] == '/' && !ends_with(s.link, " (deleted)");
}

// An O_PATH descriptor of a regular file or a directory (a handle for openat, fstat, fchdir,
// ...: no offset, no I/O): reopened by path with its flags, checked to be the same inode.
bool path_only(const FdSource& s, Fd* f, KnownFiles*) {
  if (!(f->flags & O_PATH) || !(S_ISREG(s.st.st_mode) || S_ISDIR(s.st.st_mode)) ||
      !absolute_path(s))
    return false;
  f->kind = kFdPath;
  f->pos = 0;
  f->file = by_inode(s, "O_PATH descriptor of");
  return true;
}

// A directory (openat, getdents): reopened by path, checked to be the same inode, at its
// position (the file system's cookie for the next entry, as lseek takes it).
bool directory(const FdSource& s, Fd* f, KnownFiles*) {
  if (!S_ISDIR(s.st.st_mode) || !absolute_path(s)) return false;
  f->kind = kFdDirectory;
  f->file = by_inode(s, "open directory");
  return true;
}

// A character device that holds no state: reopened by path.
bool stateless_device(const FdSource& s, Fd* f, KnownFiles*) {
  static const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
  bool device = false;
  for (const char* d : kDevices) device |= s.link == d;
  if (!S_ISCHR(s.st.st_mode) || !device) return false;
  f->kind = kFdDevice;
  f->file = FileId{s.link, 0, 0, 0};
  return true;
}

// fds 0-2 on a tty, pipe or socket: the restorer's own stdio.
bool inherited_stdio(const FdSource& s, Fd* f, KnownFiles*) {
  if (s.n > 2 || S_ISREG(s.st.st_mode) || S_ISDIR(s.st.st_mode)) return false;
  f->kind = kFdInherit;
  return true;
}

// fdinfo's value of `key` ("eventfd-count:"): the rest of its line; false if it has none.
bool info_field(const std::string& info, const std::string& key, std::string* v) {
  size_t p = info.rfind("\n" + key);  // keys of the kind's own come after pos/flags/mnt_id
  if (p == std::string::npos) return false;
  p += 1 + key.size();
  size_t e = info.find('\n', p);
  *v = info.substr(p, e == std::string::npos ? e : e - p);
  return true;
}

// An unsigned number in fdinfo, in `base`; refused by name when the kernel does not show it
// as expected (another kernel's format).
uint64_t info_number(const FdSource& s, const std::string& key, int base) {
  std::string v;
  if (info_field(s.info, key, &v)) {
    const char* p = v.c_str();
    while (*p == ' ' || *p == '\t') p++;
    char* end;
    errno = 0;
    unsigned long long n = strtoull(p, &end, base);
    if (end != p && !errno && *p != '-') return n;
  }
  refuse::event_fd(s.n, s.link, "shows no \"" + key + "\" this tool can read in its fdinfo");
}

// The open flags every event descriptor has: O_RDWR, and O_NONBLOCK if set (the others
// F_SETFL can set, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME, are not saved for them).
void event_flags(const FdSource& s, const Fd& f) {
  if ((f.flags & ~uint64_t(O_NONBLOCK)) != uint64_t(O_RDWR)) {
    char b[32];
    snprintf(b, sizeof b, "0%llo", (unsigned long long)f.flags);
    refuse::event_fd(s.n, s.link, std::string("has open flags ") + b +
                                      " (F_SETFL: only O_NONBLOCK is saved)");
  }
}

// The eventfd's counter without changing it, whether it is EFD_SEMAPHORE: on a kernel whose
// fdinfo does not say (6.1 does not; "eventfd-semaphore:" came later), learned from the
// eventfd itself, through a copy of the descriptor (pidfd_getfd; the process is stopped and
// holds the only reference, refuse::shared_event_fds checked): add 2 and read once. A
// semaphore gives 1 (one more read takes the other 1 back); else the read takes the whole
// counter, and what it held before is written back. The counter ends where it was; a waiter
// on it (the stopped process's own) sees a wake-up and finds it unchanged.
bool eventfd_semaphore(const FdSource& s, uint64_t count) {
  if (count > ~0ull - 3)
    refuse::event_fd(s.n, s.link, "has a counter too near its maximum to learn whether it is "
                                  "EFD_SEMAPHORE (this kernel's fdinfo does not say)");
  auto cannot = [&s](const char* step) {
    refuse::event_fd(s.n, s.link, std::string("could not be probed for EFD_SEMAPHORE, which "
                                              "this kernel's fdinfo does not show (") +
                                      step + ": " + strerror(errno) + ")");
  };
  int pidfd = int(syscall(SYS_pidfd_open, s.pid, 0));
  if (pidfd < 0) cannot("pidfd_open");
  int fd = int(syscall(SYS_pidfd_getfd, pidfd, s.n, 0));
  const int saved = errno;
  close(pidfd);
  errno = saved;
  if (fd < 0) cannot("pidfd_getfd");
  uint64_t two = 2, got = 0, one = 0;
  bool sem = false;
  if (write(fd, &two, 8) != 8) {
    close(fd);
    cannot("write");
  }
  if (read(fd, &got, 8) != 8) {
    close(fd);
    throw Error{kFailed, "fd " + std::to_string(s.n) + " (" + s.link +
                             "): the EFD_SEMAPHORE probe added 2 and could not read it back (" +
                             strerror(errno) + "): the process's counter is off by 2"};
  }
  bool back;
  if (got == 1) {  // a semaphore: the second 1 of the 2
    sem = true;
    back = read(fd, &one, 8) == 8 && one == 1;
  } else {  // the whole counter (with what the kernel may have added meanwhile), less the 2
    uint64_t rest = got - 2;
    back = got >= 2 && (rest == 0 || write(fd, &rest, 8) == 8);
  }
  close(fd);
  if (!back)
    throw Error{kFailed, "fd " + std::to_string(s.n) + " (" + s.link +
                             "): the EFD_SEMAPHORE probe could not put the counter back "
                             "(the process's counter may be wrong)"};
  return sem;
}

// An eventfd: its counter (fdinfo "eventfd-count:", hex) and whether it is EFD_SEMAPHORE.
bool eventfd(const FdSource& s, Fd* f, KnownFiles*) {
  if (s.link != "anon_inode:[eventfd]") return false;
  event_flags(s, *f);
  f->kind = kFdEventfd;
  f->pos = 0;
  f->count = info_number(s, "eventfd-count:", 16);
  if (f->count == ~0ull) refuse::event_fd(s.n, s.link, "has an impossible counter");
  std::string v;
  if (info_field(s.info, "eventfd-semaphore:", &v)) {
    f->semaphore = info_number(s, "eventfd-semaphore:", 10);
  } else {
    f->semaphore = eventfd_semaphore(s, f->count);
    std::string again;
    if (proc::read_file("/proc/" + std::to_string(s.pid) + "/fdinfo/" + std::to_string(s.n),
                        &again) ||
        !info_field(again, "eventfd-count:", &v) || strtoull(v.c_str(), nullptr, 16) != f->count)
      throw Error{kFailed, "fd " + std::to_string(s.n) + " (" + s.link +
                               "): its counter changed while it was probed for EFD_SEMAPHORE "
                               "(something outside the process signals it?)"};
  }
  return true;
}

// A signalfd: the signals it reads (fdinfo "sigmask:", hex, bit n-1 = signal n).
bool signalfd(const FdSource& s, Fd* f, KnownFiles*) {
  if (s.link != "anon_inode:[signalfd]") return false;
  event_flags(s, *f);
  f->kind = kFdSignalfd;
  f->pos = 0;
  f->sigmask = info_number(s, "sigmask:", 16);
  return true;
}

// A timerfd (fs/timerfd.c, timerfd_show): clock, expirations not yet read ("ticks"), the flags
// of its last timerfd_settime (octal), time left and interval as (seconds, nanoseconds).
bool timerfd(const FdSource& s, Fd* f, KnownFiles*) {
  if (s.link != "anon_inode:[timerfd]") return false;
  event_flags(s, *f);
  f->kind = kFdTimerfd;
  f->pos = 0;
  f->clock = info_number(s, "clockid:", 10);
  f->count = info_number(s, "ticks:", 10);
  f->timer_flags = info_number(s, "settime flags:", 8);
  auto pair = [&s](const char* key) {
    std::string v;
    unsigned long long sec, nsec;
    if (!info_field(s.info, key, &v) || sscanf(v.c_str(), " (%llu, %llu)", &sec, &nsec) != 2 ||
        nsec >= 1000000000ull || sec > kMaxTimerNs / 1000000000ull)
      refuse::event_fd(s.n, s.link, std::string("shows no \"") + key +
                                        "\" this tool can read in its fdinfo");
    return uint64_t(sec) * 1000000000ull + nsec;
  };
  f->value_ns = pair("it_value:");
  f->interval_ns = pair("it_interval:");
  const uint64_t c = f->clock;
  if ((c != CLOCK_REALTIME && c != CLOCK_MONOTONIC && c != CLOCK_BOOTTIME &&
       c != CLOCK_REALTIME_ALARM && c != CLOCK_BOOTTIME_ALARM) ||
      (f->timer_flags & ~kTimerFlags) || f->count > uint64_t(INT64_MAX))
    refuse::event_fd(s.n, s.link, "shows a clock, flags or expiration count this tool does not "
                                  "know in its fdinfo");
  // A cancel-on-set timer (TFD_TIMER_CANCEL_ON_SET, absolute, on a CLOCK_REALTIME clock) the
  // clock was set under: the kernel counts the cancel as an expiration and its next read fails
  // with ECANCELED; fdinfo shows the count but not the cancel.
  if ((c == CLOCK_REALTIME || c == CLOCK_REALTIME_ALARM) && f->timer_flags == kTimerFlags &&
      f->count)
    refuse::event_fd(s.n, s.link, "is a TFD_TIMER_CANCEL_ON_SET timer with expirations not yet "
                                  "read: fdinfo does not tell them from a cancel (the clock "
                                  "was set)");
  // No time left, an interval and no expiration: disarmed with an interval kept (a settime
  // with it_value 0), or armed and due this instant, its expiry not yet run. Looked at again
  // a moment later: an armed timer has expired by then.
  if (!f->value_ns && f->interval_ns && !f->count) {
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, nullptr);
    std::string again, v;
    if (proc::read_file("/proc/" + std::to_string(s.pid) + "/fdinfo/" + std::to_string(s.n),
                        &again) ||
        !info_field(again, "ticks:", &v) || strtoull(v.c_str(), nullptr, 10) != 0 ||
        !info_field(again, "it_value:", &v) || v.find("(0, 0)") == std::string::npos)
      refuse::event_fd(s.n, s.link, "changed while it was read (a periodic timer due at the "
                                    "dump): dump again");
  }
  return true;
}

// (The event descriptors before stdio: one at fd 0-2 is saved, not left to the restorer.)
constexpr FdKind kKinds[] = {path_only, regular_file, directory, stateless_device,
                             eventfd,   signalfd,     timerfd,   inherited_stdio};

}  // namespace

void capture_fds(int pid, Image* img, KnownFiles* known) {
  std::string base = "/proc/" + std::to_string(pid);
  std::vector<int> fds;
  if (int e = proc::list_fds(pid, &fds); e) throw Error{kFailed, "fd list: " + errstr(e)};
  std::vector<FdSource> sources;
  for (int n : fds) {
    FdSource s;
    s.pid = pid;
    s.n = n;
    std::string fdp = base + "/fd/" + std::to_string(n);
    if (proc::read_link(fdp, &s.link)) continue;  // closed meanwhile
    if (stat(fdp.c_str(), &s.st) < 0)
      throw Error{kFailed, "fd " + std::to_string(n) + ": " + strerror(errno)};
    if (int e = proc::read_file(base + "/fdinfo/" + std::to_string(n), &s.info); e)
      throw Error{kFailed, "fdinfo: " + errstr(e)};
    refuse::if_locked(n, s.link, s.info);
    sources.push_back(std::move(s));
  }
  // An event descriptor is saved only if the process holds it alone (before any is probed).
  std::vector<std::pair<int, std::string>> events;
  for (const FdSource& s : sources)
    if (s.link == "anon_inode:[eventfd]" || s.link == "anon_inode:[signalfd]" ||
        s.link == "anon_inode:[timerfd]")
      events.push_back({s.n, s.link});
  if (!events.empty()) refuse::shared_event_fds(pid, events);
  for (const FdSource& s : sources) {
    const int n = s.n;
    Fd f;
    f.fd = uint64_t(n);
    size_t p = s.info.find("pos:");
    if (p != std::string::npos) f.pos = strtoull(s.info.c_str() + p + 4, nullptr, 10);
    p = s.info.find("flags:");
    if (p != std::string::npos) f.flags = strtoull(s.info.c_str() + p + 6, nullptr, 8);
    f.cloexec = f.flags & O_CLOEXEC;
    f.flags &= ~uint64_t(O_CLOEXEC);
    bool taken = false;
    for (FdKind kind : kKinds)
      if ((taken = kind(s, &f, known))) break;
    if (!taken) refuse::fd_kind(n, s.link);
    img->fds.push_back(std::move(f));
  }
}

}  // namespace ckpt_tool::dump

// SPDX-License-Identifier: MIT
// ckpt-tool dump: every refusal, by name (refusals.hpp). A refusal says what the process has,
// that it is not saved, and what the restored process would get instead.
#include <dirent.h>
#include <fcntl.h>
#include <linux/ckpt.h>
#include <linux/kcmp.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "error.hpp"
#include "image.hpp"
#include "proc.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump::refuse {

using namespace image;
using proc::numbers;

void child_subreaper() {
  throw Error{kFailed, "the process is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), which "
                       "is not saved: restored without it, orphans of its future children would "
                       "go to init instead (see Documentation/whole-process.md)"};
}

void timers(uint64_t no) {
  std::string what;
  if (no & CKPT_TIMER_VIRTUAL) what += ", ITIMER_VIRTUAL";
  if (no & CKPT_TIMER_PROF) what += ", ITIMER_PROF";
  if (no & CKPT_TIMER_POSIX) what += ", POSIX timers (timer_create)";
  throw Error{kFailed, "the process has timers that are not supported: " + what.substr(2) +
                           " (ITIMER_REAL and alarm() are; see Documentation/whole-process.md)"};
}

void too_many_threads() {
  throw Error{kFailed, "more than " + std::to_string(kMaxThreads) + " threads"};
}

void deleted_cwd(const std::string& cwd) {
  throw Error{kFailed, "the working directory " + cwd + " is not supported"};
}

void sched_reset_on_fork() {
  throw Error{kFailed, "the process has SCHED_RESET_ON_FORK set, which is not saved"};
}

void sched_policy(int policy) {
  throw Error{kFailed, "the process runs under scheduling policy " + std::to_string(policy) +
                           " (SCHED_DEADLINE?), which is not saved"};
}

void seccomp(long mode) {
  throw Error{kFailed, std::string("the process runs under seccomp (") +
                           (mode == 1 ? "strict mode" : "filters") +
                           "), which is not supported: restored without it, it would run "
                           "outside its sandbox (see Documentation/whole-process.md)"};
}

void thread_creds(int tid) {
  throw Error{kFailed, "thread " + std::to_string(tid) +
                           " has other credentials (uid, gid, groups or capabilities) than "
                           "the main thread, which is not saved: one set for the process is"};
}

void thread_sched(int tid) {
  throw Error{kFailed, "thread " + std::to_string(tid) +
                           " has another scheduling policy, priority or nice value than the "
                           "main thread, which is not saved: one setting for the process is"};
}

void speculation(int tid, const char* field, const std::string& theirs, const std::string& ours) {
  throw Error{kFailed, "thread " + std::to_string(tid) + " has speculation control set " +
                           "(prctl PR_SET_SPECULATION_CTRL: " + field + " \"" + theirs +
                           "\", ckpt-tool's \"" + ours + "\"), which is not saved"};
}

void uclamp(int tid, const std::string& min, const std::string& max) {
  throw Error{kFailed, "thread " + std::to_string(tid) + " has utilisation clamps (sched_setattr: " +
                           "uclamp.min " + min + ", uclamp.max " + max +
                           ", not ckpt-tool's), which are not saved"};
}

void thread_affinity(int tid) {
  throw Error{kFailed, "thread " + std::to_string(tid) +
                           " has another CPU affinity than the main thread, which is not saved: "
                           "one affinity for the process is"};
}

void ksm_merge_any() {
  throw Error{kFailed, "the process has KSM merging of all its memory on (prctl "
                       "PR_SET_MEMORY_MERGE, ksm_stat ksm_merge_any), which is not saved"};
}

void session_tty(uint64_t tty) {
  throw Error{kFailed, "the process leads its session and has a controlling terminal (tty_nr " +
                           std::to_string(tty) + "), which is not saved: restored, it would lead a "
                           "session without a terminal"};
}

void mempolicy(const std::string& where, const std::string& policy) {
  throw Error{kFailed, where + " has the NUMA memory policy " + policy +
                           " (set_mempolicy, mbind; /proc/PID/numa_maps), which is not saved"};
}

void if_locked(int fd, const std::string& link, const std::string& fdinfo) {
  // A lock held through this descriptor (flock, a POSIX lock of this process, an OFD lock,
  // a lease): fdinfo lists it (fs/locks.c, show_fd_locks).
  if (size_t l = fdinfo.find("\nlock:\t"); l != std::string::npos) {
    std::vector<std::string> w;
    const std::string line = fdinfo.substr(l + 7, fdinfo.find('\n', l + 7) - (l + 7));
    for (size_t a = 0, b; a < line.size(); a = b + 1) {
      b = line.find_first_of(" \t", a);
      if (b == std::string::npos) b = line.size();
      if (b > a) w.push_back(line.substr(a, b - a));
    }
    const std::string type = w.size() > 1 ? w[1] : "?";
    const char* kind = type == "FLOCK"    ? "an flock() lock"
                       : type == "POSIX"  ? "a POSIX record lock (fcntl F_SETLK, lockf)"
                       : type == "OFDLCK" ? "an open file description lock (F_OFD_SETLK)"
                       : type == "LEASE"  ? "a lease"
                                          : "a file lock";
    throw Error{kFailed, "fd " + std::to_string(fd) + " (" + link + ") holds " + kind +
                             ", which is not saved: restored without it, the process would "
                             "believe it holds the lock"};
  }
}

void fd_kind(int fd, const std::string& link) {
  throw Error{kFailed, "fd " + std::to_string(fd) + " (" + link +
                           ") is not supported: only regular files, directories, O_PATH "
                           "descriptors, /dev/null-like devices, stdio, eventfd, signalfd and "
                           "timerfd are (see Documentation/whole-process.md)"};
}

void event_fd(int fd, const std::string& link, const std::string& what) {
  throw Error{kFailed, "fd " + std::to_string(fd) + " (" + link + ") " + what +
                           "; it is not saved"};
}

void shared_event_fds(int pid, const std::vector<std::pair<int, std::string>>& fds) {
  auto same = [](int a, int fa, int b, int fb) {
    return syscall(SYS_kcmp, a, b, KCMP_FILE, long(fa), long(fb)) == 0;
  };
  for (size_t i = 0; i < fds.size(); i++)
    for (size_t j = 0; j < i; j++)
      if (fds[i].second == fds[j].second && same(pid, fds[j].first, pid, fds[i].first))
        throw Error{kFailed, "fd " + std::to_string(fds[i].first) + " and fd " +
                                 std::to_string(fds[j].first) + " are the same " +
                                 fds[i].second + " (dup), which is not saved: restored, they "
                                 "would be two"};
  DIR* d = opendir("/proc");
  if (!d) throw Error{kFailed, std::string("/proc: ") + strerror(errno)};
  std::vector<int> procs;
  while (dirent* e = readdir(d)) {
    char* end;
    long v = strtol(e->d_name, &end, 10);
    if (*e->d_name && !*end && v > 0 && v != pid && v != getpid()) procs.push_back(int(v));
  }
  closedir(d);
  for (int other : procs) {
    const std::string dir = "/proc/" + std::to_string(other) + "/fd";
    DIR* fdd = opendir(dir.c_str());
    if (!fdd) continue;  // gone, or not ours to look at
    std::string hit;
    while (dirent* e = readdir(fdd)) {
      if (e->d_name[0] == '.') continue;
      std::string link;
      if (proc::read_link(dir + "/" + e->d_name, &link)) continue;
      const int theirs = int(strtol(e->d_name, nullptr, 10));
      for (const auto& [fd, ours] : fds)
        if (link == ours && same(pid, fd, other, theirs)) {
          std::string comm;
          proc::read_file("/proc/" + std::to_string(other) + "/comm", &comm);
          while (!comm.empty() && comm.back() == '\n') comm.pop_back();
          hit = "fd " + std::to_string(fd) + " (" + ours + ") is shared with fd " +
                std::to_string(theirs) + " of process " + std::to_string(other) + " (" + comm +
                "), which is not saved: restored, it would be an object of its own";
          break;
        }
      if (!hit.empty()) break;
    }
    closedir(fdd);
    if (!hit.empty()) throw Error{kFailed, hit};
  }
}

void mapping(const std::string& where, Mapping why) {
  switch (why) {
    case Mapping::kSysvShm:
      throw Error{kFailed, where + ": System V shared memory (shmat) is not saved"};
    case Mapping::kWritableSharedFile:
      throw Error{kFailed, where + ": a writable shared file mapping (MAP_SHARED, PROT_WRITE) "
                                   "is not saved (read-only ones are)"};
    case Mapping::kMayWriteSharedFile:
      throw Error{kFailed, where + ": a read-only shared file mapping of a file opened for "
                                   "writing (VmFlags mw: mprotect may make it writable) is "
                                   "not saved (those of a file opened read-only are)"};
    case Mapping::kMemfd:
      throw Error{kFailed, where + ": a shared mapping of a memfd is not saved"};
    case Mapping::kReadOnlySharedAnon:
      throw Error{kFailed, where + ": read-only shared anonymous memory is not supported"};
    case Mapping::kSpecial:
      throw Error{kFailed, where + " is not supported"};
    case Mapping::kDeletedFile:
      throw Error{kFailed, where + ": the mapped file was deleted; not supported"};
  }
  throw Error{kFailed, where + " is not supported"};
}

void vm_flag(const std::string& where, const std::string& flag) {
  static const struct {
    const char* flag;
    const char* what;
  } kWhat[] = {
      {"lo", "is locked in memory (mlock)"},
      {"lf", "is locked in memory on fault (mlock2 MLOCK_ONFAULT)"},
      {"gd", "grows down (MAP_GROWSDOWN) and is not the main stack"},
      {"um", "is registered with userfaultfd (missing pages)"},
      {"uw", "is registered with userfaultfd (write protection)"},
      {"ui", "is registered with userfaultfd (minor faults)"},
      {"ht", "is hugetlb memory (MAP_HUGETLB, hugetlbfs)"},
      {"ss", "is a shadow stack"},
      {"sl", "is sealed (mseal)"},
      {"nr", "is shared memory mapped MAP_NORESERVE"},
      {"pf", "is a device mapping (VM_PFNMAP)"},
      {"io", "is a device mapping (VM_IO)"},
      {"mm", "is a device mapping (VM_MIXEDMAP)"},
      {"de", "is a device mapping (VM_DONTEXPAND)"},
      {"sf", "is a MAP_SYNC mapping of a DAX file"},
      {"ar", "has an architecture-specific flag (x86: PAT)"},
  };
  for (const auto& k : kWhat)
    if (flag == k.flag)
      throw Error{kFailed, where + " " + k.what + " (VmFlags " + flag + "), which is not saved"};
  throw Error{kFailed, where + " has VmFlags " + flag +
                           ", which this ckpt-tool does not know, so does not save"};
}

namespace {

// Children (and unreaped zombies), of every thread: only one process is restored.
void children(int pid, const Image& img) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::vector<uint64_t> kids;
  for (const Thread& t : img.threads) {
    std::string c;
    if (int e = proc::read_file(base + "/task/" + std::to_string(t.tid) + "/children", &c); e)
      throw Error{kFailed, "/proc/PID/task/TID/children: " + errstr(e)};
    for (uint64_t k : numbers(c, 10)) kids.push_back(k);
  }
  if (!kids.empty()) {
    std::string list;
    for (size_t i = 0; i < kids.size() && i < 8; i++) list += (i ? ", " : "") + std::to_string(kids[i]);
    if (kids.size() > 8) list += ", ...";
    throw Error{kFailed, "the process has child processes (pid " + list +
                             "), which are not saved: only the process itself would be restored"};
  }
}

// Whether a process other than `pid` (one whose fdinfo we may read) lists the lock `what`
// (a /proc/locks line without its leading number: "OFDLCK ADVISORY WRITE -1 08:01:12 0 EOF")
// among the locks held through one of its descriptors: the same lines, from the same
// printer (fs/locks.c, lock_get_status).
bool held_through_fd_elsewhere(int pid, const std::string& what) {
  DIR* d = opendir("/proc");
  if (!d) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    char* end;
    long v = strtol(e->d_name, &end, 10);
    if (!*e->d_name || *end || v <= 0 || v == pid) continue;
    const std::string base = std::string("/proc/") + e->d_name + "/fdinfo";
    DIR* fd = opendir(base.c_str());
    if (!fd) continue;  // gone, or not ours to look at
    while (dirent* f = readdir(fd)) {
      if (f->d_name[0] == '.') continue;
      std::string info;
      if (proc::read_file(base + "/" + f->d_name, &info)) continue;
      for (size_t l = info.find("lock:\t"); l != std::string::npos; l = info.find("lock:\t", l + 1)) {
        size_t c = info.find(": ", l + 6), n = info.find('\n', l);
        if (c == std::string::npos || (n != std::string::npos && c > n)) continue;
        std::string line = info.substr(c + 2, n == std::string::npos ? n : n - c - 2);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        if (line == what) found = true;
      }
      if (found) break;
    }
    closedir(fd);
    if (found) break;
  }
  closedir(d);
  return found;
}

// File locks held through no descriptor: an flock() or OFD lock belongs to the open file
// description, which a mapping keeps alive after the last fd is closed (flock, mmap,
// close), so fdinfo (if_locked) never shows it. /proc/locks does: FLOCK, POSIX and LEASE
// lines carry the pid that took the lock, OFDLCK lines -1 (the kernel does not say whose).
// So a lock with this process's pid is refused wherever it is, and an OFD lock on a file
// the process maps is refused too, unless another process's fdinfo lists it: then that
// process holds it through a descriptor of its own (before, any OFD lock on a file the
// process maps was refused, another program's included). Left: an open file description
// shared by both (inherited across fork, passed over a socket) that the process still maps
// after closing its descriptor: the restored mapping no longer keeps that lock alive once
// the other process closes its descriptor.
void unseen_locks(int pid, const Image& img) {
  std::string t;
  if (proc::read_file("/proc/locks", &t)) return;  // no CONFIG_FILE_LOCKING: no locks
  for (size_t a = 0; a < t.size();) {
    size_t e = t.find('\n', a);
    if (e == std::string::npos) e = t.size();
    const std::string line = t.substr(a, e - a);
    a = e + 1;
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->" after the number.
    char type[16] = "", mode[16] = "", access[16] = "";
    long owner = 0;
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    if (line.find("->") != std::string::npos ||
        sscanf(line.c_str(), "%*d: %15s %15s %15s %ld %x:%x:%llu", type, mode, access, &owner,
               &maj, &min, &ino) != 7)
      continue;
    const std::string ty = type;
    const bool ours = owner == pid;
    if (!ours && ty != "OFDLCK") continue;
    // The mapped file it is on, if any (inode first: a stat only for a candidate).
    std::string file;
    for (const Vma& v : img.vmas) {
      struct stat st;
      if ((v.kind == kFile || v.kind == kSharedFile) && v.file.ino == ino && stat(v.file.path.c_str(), &st) == 0 &&
          uint64_t(st.st_ino) == ino && st.st_dev == makedev(maj, min)) {
        file = v.file.path;
        break;
      }
    }
    if (!ours && file.empty()) continue;  // an OFD lock on a file the process does not map
    if (!ours) {  // another process may hold it through a descriptor
      std::string what = line.substr(line.find(": ") + 2);
      while (!what.empty() && what.back() == ' ') what.pop_back();
      if (held_through_fd_elsewhere(pid, what)) continue;
    }
    if (file.empty())
      file = "inode " + std::to_string(ino) + " of device " + std::to_string(maj) + ":" +
             std::to_string(min);
    const char* kind = ty == "FLOCK"    ? "an flock() lock"
                       : ty == "POSIX"  ? "a POSIX record lock (fcntl F_SETLK, lockf)"
                       : ty == "OFDLCK" ? "an open file description lock (F_OFD_SETLK)"
                       : ty == "LEASE"  ? "a lease"
                                        : "a file lock";
    throw Error{kFailed, std::string(ours ? "the process holds " : "there is ") + kind + " on " +
                             file + (ours ? "" : ", which the process maps,") +
                             " through no open descriptor (/proc/locks; a mapping keeps the "
                             "file open" +
                             (ours ? "" : ", or another process holds it: the kernel does not "
                                          "say whose") +
                             "), which is not saved: restored without it, the process would "
                             "believe it holds the lock"};
  }
}

// A root directory (chroot) or a namespace other than ckpt-tool's own: the restored process
// would get the restorer's (its files, PIDs, network, hostname ... seen from elsewhere).
void namespaces(int pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::string root;
  if (proc::read_link(base + "/root", &root) == 0 && root != "/")
    throw Error{kFailed, "the process runs with another root directory (chroot " + root +
                             "), which is not saved"};
  for (const char* ns : {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"}) {
    struct stat theirs, ours;
    if (stat((base + "/ns/" + ns).c_str(), &theirs) < 0 ||
        stat((std::string("/proc/self/ns/") + ns).c_str(), &ours) < 0)
      continue;  // a kernel without that namespace
    if (theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev)
      throw Error{kFailed, std::string("the process has another ") + ns +
                               " namespace than ckpt-tool, which is not saved: restored, it "
                               "would have ckpt-tool's"};
  }
}

// System V IPC objects the process used last (the kernel keeps them, not the process: after
// a restart of the system they are gone). Semaphore sets list no user: each semaphore's
// last user is asked for (semctl GETPID, needs read permission on the set).
void sysv_ipc(int pid) {
  auto table = [](const char* file, std::vector<std::vector<uint64_t>>* rows) {
    std::string t;
    if (proc::read_file(std::string("/proc/sysvipc/") + file, &t)) return;
    for (size_t p = t.find('\n'); p != std::string::npos && p + 1 < t.size();) {
      size_t e = t.find('\n', p + 1);
      rows->push_back(numbers(t.substr(p + 1, e == std::string::npos ? e : e - p - 1), 10));
      p = e;
    }
  };
  auto refuse = [](const char* what, uint64_t id) {
    throw Error{kRefused, std::string("the process used System V ") + what + " " +
                              std::to_string(id) +
                              ", which is not saved (it lives in the kernel: gone after a "
                              "restart); --lose sysv-ipc dumps it anyway"};
  };
  std::vector<std::vector<uint64_t>> rows;
  table("msg", &rows);  // key msqid perms cbytes qnum lspid lrpid ...
  for (const auto& r : rows)
    if (r.size() > 6 && (r[5] == uint64_t(pid) || r[6] == uint64_t(pid)))
      refuse("message queue (msqid)", r[1]);
  rows.clear();
  table("shm", &rows);  // key shmid perms size cpid lpid ...
  for (const auto& r : rows)
    if (r.size() > 5 && (r[4] == uint64_t(pid) || r[5] == uint64_t(pid)))
      refuse("shared memory segment (shmid)", r[1]);
  rows.clear();
  table("sem", &rows);  // key semid perms nsems ...
  for (const auto& r : rows)
    for (uint64_t k = 0; r.size() > 3 && k < r[3] && k < 65536; k++) {
      int last = semctl(int(r[1]), int(k), GETPID);
      if (last < 0) break;
      if (last == pid) refuse("semaphore set (semid)", r[1]);
    }
}

// A regular file's offset shared with another process (the same open file description:
// inherited across fork, or passed over a socket): the restored process gets its own offset,
// and the other process's writes no longer move it. Every process whose descriptors we may
// read is compared with kcmp(KCMP_FILE); this tool itself is not (run's supervisor hands its
// own standard output and error to the program it starts).
void shared_offsets(int pid, const Image& img) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::map<std::pair<uint64_t, uint64_t>, std::vector<uint64_t>> ours;  // (dev, ino) -> fds
  for (const Fd& f : img.fds) {
    if (f.kind != kFdRegular) continue;
    struct stat st;
    if (stat((base + "/fd/" + std::to_string(f.fd)).c_str(), &st) == 0)
      ours[{uint64_t(st.st_dev), uint64_t(st.st_ino)}].push_back(f.fd);
  }
  if (ours.empty()) return;
  std::vector<int> procs;
  DIR* d = opendir("/proc");
  if (!d) throw Error{kFailed, std::string("/proc: ") + strerror(errno)};
  while (dirent* e = readdir(d)) {
    char* end;
    long v = strtol(e->d_name, &end, 10);
    if (*e->d_name && !*end && v > 0 && v != pid && v != getpid()) procs.push_back(int(v));
  }
  closedir(d);
  for (int other : procs) {
    int dfd = open(("/proc/" + std::to_string(other) + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) continue;  // gone, or not ours to look at
    DIR* fdd = fdopendir(dfd);
    if (!fdd) {
      close(dfd);
      continue;
    }
    std::string hit;
    while (dirent* e = readdir(fdd)) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      if (fstatat(dfd, e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode)) continue;
      auto it = ours.find({uint64_t(st.st_dev), uint64_t(st.st_ino)});
      if (it == ours.end()) continue;
      const long theirs = strtol(e->d_name, nullptr, 10);
      for (uint64_t fd : it->second)
        if (syscall(SYS_kcmp, pid, other, KCMP_FILE, long(fd), theirs) == 0) {
          std::string path, comm;
          proc::read_link(base + "/fd/" + std::to_string(fd), &path);
          proc::read_file("/proc/" + std::to_string(other) + "/comm", &comm);
          while (!comm.empty() && comm.back() == '\n') comm.pop_back();
          hit = "fd " + std::to_string(fd) + " (" + path + ") shares its file offset with fd " +
                std::to_string(theirs) + " of process " + std::to_string(other) + " (" + comm +
                "), which is not saved: restored, it would have an offset of its own; --lose "
                "shared-offset dumps it anyway";
          break;
        }
      if (!hit.empty()) break;
    }
    closedir(fdd);
    if (!hit.empty()) throw Error{kRefused, hit};
  }
}

}  // namespace

void outside_state(int pid, const Image& img, const std::set<std::string>& lose) {
  children(pid, img);
  namespaces(pid);
  unseen_locks(pid, img);
  if (!lose.count("sysv-ipc")) sysv_ipc(pid);
  if (!lose.count("shared-offset")) shared_offsets(pid, img);
}

}  // namespace ckpt_tool::dump::refuse

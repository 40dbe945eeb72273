// SPDX-License-Identifier: MIT
// ckpt-tool restore, become (restore.hpp): the child's fd table, reopened by path at the image's
// numbers. A new kind of descriptor (capture_fds.cpp) is restored here.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "proc.hpp"
#include "restore.hpp"

#ifndef TFD_IOC_SET_TICKS  // linux/timerfd.h (clashes with sys/timerfd.h)
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace ckpt_tool::restore {
namespace {

using namespace image;

int move_high(int fd, int floor) {
  int n = fcntl(fd, F_DUPFD, floor);
  if (n < 0) throw Error{kFailed, std::string("F_DUPFD: ") + strerror(errno)};
  close(fd);
  return n;
}

[[noreturn]] void failed(const Fd& f, const char* what, const char* name) {
  throw Error{kFailed, "restoring fd " + std::to_string(f.fd) + " (" + name + "): " + what +
                           ": " + strerror(errno)};
}

// A timerfd's expirations not read yet (TFD_IOC_SET_TICKS: needs CONFIG_CHECKPOINT_RESTORE).
void set_ticks(const Fd& f, int fd) {
  if (!f.count || ioctl(fd, TFD_IOC_SET_TICKS, &f.count) == 0) return;
  if (errno == ENOTTY)
    throw Error{kFailed, "restoring fd " + std::to_string(f.fd) +
                             " (timerfd): this kernel cannot set a timerfd's expirations "
                             "(TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE)"};
  failed(f, "TFD_IOC_SET_TICKS", "timerfd");
}

// An eventfd, signalfd or timerfd made again with its state (image.hpp, Fd), close-on-exec
// until F_SETFD sets what the image says.
int event_fd(const Fd& f) {
  const bool nb = f.flags & O_NONBLOCK;
  if (f.kind == kFdEventfd) {
    int fd = eventfd(0, EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0) | (f.semaphore ? EFD_SEMAPHORE : 0));
    if (fd < 0) failed(f, "eventfd", "eventfd");
    // eventfd's initial value is 32 bits; a write takes the whole counter (never blocks from 0).
    if (f.count && write(fd, &f.count, 8) != 8) failed(f, "setting its counter", "eventfd");
    return fd;
  }
  if (f.kind == kFdSignalfd) {
    uint64_t mask = f.sigmask;  // the kernel's sigset: bit n-1 = signal n (libc's sigaddset
                                // would refuse its own signals 32 and 33)
    int fd = int(syscall(SYS_signalfd4, -1, &mask, sizeof mask, SFD_CLOEXEC | (nb ? SFD_NONBLOCK : 0)));
    if (fd < 0) failed(f, "signalfd", "signalfd");
    return fd;
  }
  int fd = timerfd_create(int(f.clock), TFD_CLOEXEC | (nb ? TFD_NONBLOCK : 0));
  if (fd < 0) failed(f, "timerfd_create", "timerfd");
  // Armed by arm_timerfds, last before COMMIT; its expirations set here once already, so that
  // a kernel that cannot set them fails the restore before it starts.
  set_ticks(f, fd);
  return fd;
}

}  // namespace

void set_fds(const Image& img, std::vector<int*> helpers) {
  int floor = 3;
  for (const auto& f : img.fds) floor = std::max(floor, int(f.fd) + 1);
  for (int* h : helpers) *h = move_high(*h, floor);
  std::vector<bool> keep(size_t(floor) + 1, false);
  for (const auto& f : img.fds) {
    keep[f.fd] = true;
    if (f.kind == kFdInherit) continue;
    int fd;
    if (f.kind == kFdEventfd || f.kind == kFdSignalfd || f.kind == kFdTimerfd) {
      fd = event_fd(f);
    } else {
      int fl = int(f.flags) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
      fd = open(f.file.path.c_str(), fl | O_CLOEXEC);
    }
    if (fd < 0) throw Error{kFailed, "reopening fd " + std::to_string(f.fd) + " (" + f.file.path + "): " + strerror(errno)};
    if ((f.kind == kFdRegular || f.kind == kFdDirectory) && lseek(fd, off_t(f.pos), SEEK_SET) < 0)
      throw Error{kFailed, "seeking fd " + std::to_string(f.fd) + ": " + strerror(errno)};
    if (fd != int(f.fd)) {
      if (dup2(fd, int(f.fd)) < 0) throw Error{kFailed, std::string("dup2: ") + strerror(errno)};
      close(fd);
    }
    if (fcntl(int(f.fd), F_SETFD, f.cloexec ? FD_CLOEXEC : 0) < 0)
      throw Error{kFailed, std::string("F_SETFD: ") + strerror(errno)};
  }
  // Everything else the restorer had open goes, but our helpers.
  std::vector<int> open_fds;
  proc::list_fds(0, &open_fds);
  for (int fd : open_fds) {
    bool helper = false;
    for (int* h : helpers) helper |= *h == fd;
    if (helper || (fd < floor && keep[size_t(fd)])) continue;
    close(fd);
  }
}

void arm_timerfds(const Image& img) {
  for (const Fd& f : img.fds) {
    if (f.kind != kFdTimerfd) continue;
    // The time it had left at the dump (the time between dump and restore does not count);
    // a periodic timer that expired while the process was stopped (no time left, expirations
    // not read) gets one interval.
    uint64_t left = f.value_ns;
    if (!left && f.interval_ns && f.count) left = f.interval_ns;
    struct itimerspec its = {};
    its.it_interval = {time_t(f.interval_ns / 1000000000ull), long(f.interval_ns % 1000000000ull)};
    if (left && (f.timer_flags & kTimerAbstime)) {  // absolute: now + left on its clock
      const clockid_t base = f.clock == CLOCK_REALTIME_ALARM   ? CLOCK_REALTIME
                             : f.clock == CLOCK_BOOTTIME_ALARM ? CLOCK_BOOTTIME
                                                               : clockid_t(f.clock);
      struct timespec now;  // the system call: libc's would jump into the vdso, moved by now
      if (syscall(SYS_clock_gettime, base, &now) < 0) failed(f, "clock_gettime", "timerfd");
      left += uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec);
    }
    its.it_value = {time_t(left / 1000000000ull), long(left % 1000000000ull)};
    // (timerfd_settime clears the expirations: set again after it.)
    if (timerfd_settime(int(f.fd), int(f.timer_flags), &its, nullptr) < 0)
      failed(f, "timerfd_settime", "timerfd");
    set_ticks(f, int(f.fd));
  }
}

}  // namespace ckpt_tool::restore

// SPDX-License-Identifier: MIT
// The /dev/ckpt client (ckptdev.hpp).
#include "ckptdev.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <utility>

namespace ckptdev {

int call(int fd, unsigned long cmd, unsigned long arg) {
  // A module command interrupted by a signal changed nothing: issue it again. Bounded, so a
  // process that is signalled without end still gets an answer.
  for (int i = 0; i < 1000; i++) {
    if (ioctl(fd, cmd, arg) >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
  return -EINTR;
}

namespace {
template <typename T>
int call_with(int fd, unsigned long cmd, T* arg) {
  return call(fd, cmd, reinterpret_cast<unsigned long>(arg));
}
}  // namespace

Session::~Session() { close(); }

Session::Session(Session&& o) noexcept : fd_(std::exchange(o.fd_, -1)), api_(o.api_) {}

Session& Session::operator=(Session&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    api_ = o.api_;
  }
  return *this;
}

int Session::open(const char* path) {
  close();
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  ckpt_api a{};
  a.api = CKPT_API_VERSION;
  int e = call_with(fd, CKPT_IOC_API, &a);
  api_ = a;  // the module's version, even when it refused ours
  // A module of API version 1 answers another version with -EINVAL; later ones with
  // -EPROTONOSUPPORT. Both mean the same: this program and the module do not speak together.
  if (e == -EINVAL && a.api != CKPT_API_VERSION) e = -EPROTONOSUPPORT;
  if (e) {
    ::close(fd);
    return e;
  }
  fd_ = fd;
  return 0;
}

int Session::close() {
  if (fd_ < 0) return 0;
  int ret = ::close(std::exchange(fd_, -1)) ? -errno : 0;  // closing ends the module's session
  return ret;
}

int Session::take_fd() { return std::exchange(fd_, -1); }

int register_range(int fd, ckpt_register* r) { return call_with(fd, CKPT_IOC_REGISTER, r); }

int unregister(int fd, uint64_t id) {
  ckpt_unregister u{};
  u.id = id;
  return call_with(fd, CKPT_IOC_UNREGISTER, &u);
}

int collect(int fd, ckpt_collect* c) { return call_with(fd, CKPT_IOC_COLLECT, c); }

int stats(int fd, ckpt_stats* s) { return call_with(fd, CKPT_IOC_STATS, s); }

int attach(int fd, uint64_t pid) {
  ckpt_attach a{};
  a.pid = pid;
  return call_with(fd, CKPT_IOC_ATTACH, &a);
}

int release(int fd, ckpt_release* r) { return call_with(fd, CKPT_IOC_RELEASE, r); }

int dump_task(int fd, ckpt_dump_task* d) { return call_with(fd, CKPT_IOC_DUMP_TASK, d); }

int watch(int fd, ckpt_watch* w) { return call_with(fd, CKPT_IOC_WATCH, w); }

#ifdef __x86_64__
int restore_prepare(int fd, ckpt_restore_prepare* p) {
  return call_with(fd, CKPT_IOC_RESTORE_PREPARE, p);
}

int restore_commit_check(int fd) { return call(fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK); }
#endif

}  // namespace ckptdev

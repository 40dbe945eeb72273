// SPDX-License-Identifier: MIT
// The userfaultfd calls both uffd trackers make (uffd.hpp).
#include "uffd.hpp"

#include "uffd_async_uapi.h"  // UFFD_USER_MODE_ONLY and the 6.7 features on 6.1's headers

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ckpt {

int uffd_open(uint64_t features, uint64_t need, bool* user_mode_only) {
  bool umo = false;
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0 && errno == EPERM) {
    fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    umo = true;
  }
  if (fd < 0) return -errno;
  struct uffdio_api api;
  memset(&api, 0, sizeof(api));
  api.api = UFFD_API;
  api.features = features;
  int ret = 0;
  if (ioctl(fd, UFFDIO_API, &api)) ret = errno == EINVAL ? -EOPNOTSUPP : -errno;
  else if ((api.features & need) != need) ret = -EOPNOTSUPP;
  if (ret) {
    close(fd);
    return ret;
  }
  if (user_mode_only) *user_mode_only = umo;
  return fd;
}

int uffd_register_wp(int fd, uintptr_t start, size_t len) {
  struct uffdio_register reg;
  memset(&reg, 0, sizeof(reg));
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(fd, UFFDIO_REGISTER, &reg)) return errno == EINVAL ? -EOPNOTSUPP : -errno;
  return 0;
}

int uffd_writeprotect(int fd, uintptr_t start, size_t len, bool wp) {
  struct uffdio_writeprotect p;
  memset(&p, 0, sizeof(p));
  p.range.start = start;
  p.range.len = len;
  p.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  while (ioctl(fd, UFFDIO_WRITEPROTECT, &p))
    if (errno != EAGAIN) return -errno;
  return 0;
}

void uffd_unregister(int fd, uintptr_t start, size_t len) {
  struct uffdio_range r;
  r.start = start;
  r.len = len;
  ioctl(fd, UFFDIO_UNREGISTER, &r);
}

}  // namespace ckpt

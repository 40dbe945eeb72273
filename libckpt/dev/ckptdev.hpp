// SPDX-License-Identifier: MIT
// The one /dev/ckpt client of the project (libckpt's module tracker, ckpt-tool, the benches):
// open the device, the API handshake, and one call per ioctl, each with the same convention:
// 0 or -errno, never errno; a call interrupted by a signal (-EINTR leaves the module's session
// unchanged) is issued again. The module's side is include/uapi/linux/ckpt.h.
//
// Words (Documentation/design.md, "Glossary"): a *session* is one open file of /dev/ckpt, the
// module's struct ckpt_session; ckptdev::Session is its user-space end. libckpt's handle
// (ckpt_t) owns at most one, through its module tracker.
#pragma once

#include <linux/ckpt.h>

#include <cstdint>

namespace ckptdev {

class Session {
 public:
  Session() = default;
  ~Session();
  Session(Session&& o) noexcept;
  Session& operator=(Session&& o) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Opens /dev/ckpt and does the handshake (CKPT_IOC_API with CKPT_API_VERSION).
  // -errno of open(2) (-ENOENT: the module is not loaded; -EACCES: not in the ckpt group);
  // -EPROTONOSUPPORT: the module speaks another API version (module_api() tells which);
  // -EINVAL, -EBUSY, -EFAULT as the header says. On failure nothing stays open.
  int open(const char* path = "/dev/" CKPT_DEVICE_NAME);
  int close();
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Gives the descriptor up (RESTORE_PREPARE / RESTORE_THREAD close it themselves).
  int take_fd();

  // From the handshake.
  bool has(uint64_t feature) const { return (api_.features & feature) == feature; }
  uint64_t features() const { return api_.features; }
  uint64_t module_api() const { return api_.api; }  // also after -EPROTONOSUPPORT
  uint64_t page_size() const { return api_.page_size; }

 private:
  int fd_ = -1;
  ckpt_api api_{};
};

// ioctl(fd, cmd, arg) as above: 0 or -errno, issued again while -EINTR.
int call(int fd, unsigned long cmd, unsigned long arg);

// One call per command, on the descriptor of a Session (fd()), which may have been handed on
// (take_fd()); each fills its struct as the header says.
int register_range(int fd, struct ckpt_register* r);  // "struct": <ckpt/ckpt.h> has a function of that name
int unregister(int fd, uint64_t id);
int collect(int fd, ckpt_collect* c);
int stats(int fd, ckpt_stats* s);
int attach(int fd, uint64_t pid);
int release(int fd, ckpt_release* r);
int dump_task(int fd, ckpt_dump_task* d);
int watch(int fd, ckpt_watch* w);
#ifdef __x86_64__
int restore_prepare(int fd, ckpt_restore_prepare* p);
int restore_commit_check(int fd);  // CKPT_COMMIT_CHECK: 0, or -EBUSY while threads are not parked
// RESTORE_THREAD and the COMMIT itself do not return to their caller: ckpt-tool issues them
// from its own code (tools/ckpt-tool/restore.cpp).
#endif

}  // namespace ckptdev

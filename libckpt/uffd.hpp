// SPDX-License-Identifier: MIT
// libckpt internal: the userfaultfd calls both uffd trackers make (tracker_uffd.cpp, sync mode
// with a handler thread; tracker_uffd_async.cpp, UFFD_FEATURE_WP_ASYNC). Each returns 0 (or the
// descriptor) on success, -errno on failure.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt {

// Open a userfaultfd (O_CLOEXEC | O_NONBLOCK) and handshake UFFDIO_API asking for `features`.
// Where vm.unprivileged_userfaultfd=0 refuses an unprivileged caller (EPERM), opens it with
// UFFD_USER_MODE_ONLY instead (*user_mode_only is then true): faults the kernel takes on the
// program's behalf (read(2) into a tracked page) are then not delivered to a sync handler; the
// async path resolves them before that check. Returns the descriptor; -EOPNOTSUPP where the
// kernel refuses `features` (EINVAL) or does not offer every bit of `need`; else -errno.
int uffd_open(uint64_t features, uint64_t need, bool* user_mode_only = nullptr);

// UFFDIO_REGISTER [start, start+len) in write-protect mode: -EOPNOTSUPP where a VMA in the range
// cannot take it (EINVAL: a file mapping without WP support, a VM_PFNMAP, ...).
int uffd_register_wp(int fd, uintptr_t start, size_t len);

// UFFDIO_WRITEPROTECT [start, start+len): protect (wp) or unprotect and wake the writers
// blocked on it; retried while the kernel answers EAGAIN (the mm was changing).
int uffd_writeprotect(int fd, uintptr_t start, size_t len, bool wp);

// UFFDIO_UNREGISTER, best effort: the range may be unmapped already.
void uffd_unregister(int fd, uintptr_t start, size_t len);

}  // namespace ckpt

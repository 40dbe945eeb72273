// SPDX-License-Identifier: MIT
// libckpt store: copying out of a DAX mapping without dying of SIGBUS.
//
// A load from a mapped page the medium cannot deliver raises SIGBUS in the reading thread:
// poisoned persistent memory (the machine check is turned into BUS_MCEERR_AR by the kernel's
// memory-failure handling), or a page past the end of a file truncated under the mapping
// (BUS_ADRERR). User space has no copy_mc; read(2) of a file on a DAX file system goes through
// the kernel's copy_mc and returns -EIO instead, but device-DAX has no read(2) path. So the
// store reads mappings through guarded_copy(): a SIGBUS whose fault address lies inside the
// source being copied by this thread ends the copy with -EIO, and the store treats the page as
// damaged (as for a checksum failure: it falls back to the retained epoch).
//
// The handler is installed by guard_sigbus(), which every medium that maps a store calls when it
// maps it (a store open), and chains every SIGBUS it does not own (another address, another
// thread, no copy in progress, a signal sent with kill) to the disposition that was in place
// before it: a previous handler is called, SIG_DFL terminates as before. A program that installs
// its own SIGBUS handler while a DAX store is open replaces the guard until the next store open
// (documented in the user guide).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt::store {

// Make the guard the SIGBUS handler, keeping the current one to chain to (nothing if it is
// already the guard). Thread-safe.
void guard_sigbus();

// Copy len bytes from src (inside a mapping) to dst. 0, or -EIO if reading src raised SIGBUS
// (dst then holds an unspecified part of the bytes). Thread-safe; async-signal-unsafe.
int guarded_copy(void* dst, const uint8_t* src, size_t len);

// SIGBUS faults guarded_copy() has turned into -EIO in this process (for tests and stats).
uint64_t guarded_copy_faults();

}  // namespace ckpt::store

// SPDX-License-Identifier: MIT
// libckpt store: the medium, the one seam every store write, flush and fence goes through.
//
// The store core (store_impl.hpp; replay, blockmap, commit and read.cpp) never touches a file
// descriptor or a mapping: it calls write() for bytes that must reach the medium and barrier()
// for a durability point. The medium is the lower layer: it knows nothing of the store's
// classes (store.hpp), only the options open_medium follows. The persistence
// model every medium implements, and the crash tests replay (crash.hpp):
//   - write(off, src, len) copies src away before it returns; the bytes may reach the medium
//     in any order and in pieces of tear_unit() bytes, or not at all, until the next barrier().
//   - barrier() returns 0 only when every earlier write is durable.
//   - a write overlapping an earlier one lands after it: once both are durable, the later bytes
//     are there (the store rewrites a page's block when a checkpoint writes the page twice).
// Offsets and lengths of writes are multiples of tear_unit() (the store writes whole blocks).
//
// Implementations: DAX (libpmem2 non-temporal copies + drain), io_uring (batched fixed-buffer
// writes + fdatasync), memory (fuzzing), and the Recorder decorator (crash tests).
// Not thread-safe, but for one thing: read() calls whose dst, off and len are multiples of 4096
// may run on several threads at once (the store splits big reads across threads, and no write
// runs meanwhile). Every medium keeps that: pread() or memcpy, no shared buffer on that path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct stat;

namespace ckpt::store {

// Of the layer above (store.hpp): the options open_medium follows, and the seam below.
struct Options;
class Store;

class Medium {
 public:
  virtual ~Medium() = default;
  virtual const char* name() const = 0;   // "dax", "io_uring", "memory"
  virtual uint64_t size() const = 0;      // bytes usable
  virtual bool growable() const = 0;
  // Grow to at least new_size bytes (durable once the next barrier() returns). -ENOSPC.
  virtual int grow(uint64_t new_size) = 0;
  virtual int read(uint64_t off, void* dst, size_t len) = 0;
  virtual int write(uint64_t off, const void* src, size_t len) = 0;
  // write() that may keep reading src after it returns, until settle(): a bulk writer (put_pages)
  // saves the copy into a staging buffer and overlaps the next pages' checksums with the I/O.
  // Same persistence model as write(). The caller keeps src unchanged until settle() returns.
  virtual int write_nocopy(uint64_t off, const void* src, size_t len) {
    return write(off, src, len);
  }
  // Every write_nocopy() is done with its source (not necessarily durable: that is barrier()).
  // An error of one of them is returned here, or by the next barrier().
  virtual int settle() { return 0; }
  virtual int barrier() = 0;
  virtual size_t tear_unit() const = 0;   // 8 for DAX, 512 for a block device or file
  // The medium's bytes, when it is mapped (DAX, memory); null otherwise. Reads only.
  virtual const uint8_t* mapping() const { return nullptr; }
};

struct MediumInfo {
  bool created = false;   // the path did not exist: a new growing file store
  bool device = false;    // a device node (DAX or block)
  std::string path;       // as given
  std::string target;     // what it resolved to (symlinks followed), "" if unknown
  // What libblkid recognised on a path without the store's magic ("an \"ext4\" file system"),
  // "" if nothing (or not probed: device-DAX, a new or empty file, a read-only open).
  std::string signature;
  // Options::force_format: the signatures libblkid found and erased before formatting
  // ("ext4, gpt"), "" if none.
  std::string wiped;
};

// Open (or create) the medium for `path` as Options says, taking the exclusive lock, or the
// shared one with no_modify (-EBUSY when another process holds a conflicting one). An existing
// empty file becomes a store only with create or force_format (-ENODATA). Writer choice: a device-DAX node, or a regular file
// that maps with MAP_SYNC -> DAX; anything else -> io_uring. Writer::kDax on a non-DAX path:
// -EOPNOTSUPP.
int open_medium(const std::string& path, const Options& opts, std::unique_ptr<Medium>* out,
                MediumInfo* info, std::string* why);

// Reserve bytes [off, off + len) of a file store (fallocate), so that a later write cannot fail
// for lack of space. EINTR is retried: a pending io_uring task-work notification (this
// process's rings: TIF_NOTIFY_SIGNAL, signal_pending() without a signal) interrupts fallocate
// on tmpfs. A file system without fallocate (EOPNOTSUPP) gets ftruncate to off + len instead
// when `or_truncate`. 0 or -errno; EFBIG is -ENOSPC.
int reserve_file(int fd, uint64_t off, uint64_t len, bool or_truncate);

// Release the store lock held on `fd` (its process-wide registration) and close it. Every
// medium closes its descriptor through this.
void close_locked(int fd);

// The writers, on an open, locked descriptor: on success the medium owns (and closes) it; on
// failure it stays the caller's. io_uring: `direct` when the descriptor has O_DIRECT.
int uring_medium(int fd, bool growable, bool direct, uint64_t size, std::unique_ptr<Medium>* out,
                 std::string* why);
// DAX: maps the whole device or file with libpmem2; -EOPNOTSUPP when it is not DAX (no
// MAP_SYNC, so only page-granular persistence).
int dax_medium(int fd, bool growable, std::unique_ptr<Medium>* out, std::string* why);

// The read-only medium (Options::no_modify) on an open, locked O_RDONLY descriptor: pread for
// a file or block device of `size` bytes, a read-only mapping for device-DAX (its size from
// sysfs) or a file on a DAX file system. Writes give -EROFS. Ownership as for the writers.
int read_medium(int fd, const struct stat& st, uint64_t size, std::unique_ptr<Medium>* out,
                std::string* why);

// A medium over a byte image in memory (grows when `growable`); for fuzzing and tests.
std::unique_ptr<Medium> memory_medium(std::vector<uint8_t> image, bool growable,
                                      size_t tear_unit = 8);

// Open the store on an already-open medium (the seam for tests: wrap a real medium in a
// Recorder, then open the store on it).
int open_on_medium(std::unique_ptr<Medium> medium, const MediumInfo& info, const Options& opts,
                   std::unique_ptr<Store>* out);

}  // namespace ckpt::store

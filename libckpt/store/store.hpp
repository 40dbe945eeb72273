// libckpt internal: the store, as the rest of the library sees it.
//
// CONTRACT between the session layer (libckpt/*.cpp) and the store (libckpt/store/*). The store
// owns the on-store format (Documentation/store-format.md), the writers (DAX, io_uring) and the
// commit protocol; the session layer owns regions in memory, trackers and triggers.
//
// Errors are -errno (never errno, never exceptions across this boundary). Not thread-safe: the
// session layer serialises calls. Implementations may extend this header; they must not change
// the meaning of what is here without updating both sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::store {

enum class Writer { kAuto, kDax, kUring };

struct Options {
  Writer writer = Writer::kAuto;  // kAuto: device-DAX or a MAP_SYNC-capable file -> DAX, else io_uring
  uint64_t create_size = 0;       // file stores: initial size when created (0 = grow on demand)
};

struct RegionInfo {
  std::string name;
  uint64_t size = 0;   // bytes, a multiple of the page size
  uint32_t id = 0;     // stable within the store
};

// What a restore found, for clear errors and for ckpt-tool.
struct ReadReport {
  uint64_t epoch = 0;            // epoch the data came from
  uint64_t pages_read = 0;
  std::vector<uint64_t> damaged; // page indices whose checksum failed in every retained epoch
};

class Txn {
 public:
  virtual ~Txn() = default;
  // Stage one page (page_size bytes at data) of region `region`, index `page`. The bytes are
  // copied (or persisted) before the call returns, so the caller may modify the source after.
  virtual int put_page(uint32_t region, uint64_t page, const void* data) = 0;
  // Make the epoch durable and live, atomically: after a crash at any instant during commit the
  // store opens at the previous epoch or at this one, never a mix. Returns 0 or -errno; on error
  // the previous epoch stays live and intact.
  virtual int commit() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Open the store at `path`: a path that does not exist becomes a growing file store; a DAX
  // device or file without a store is formatted; one with a store is opened (another format
  // version: -EPROTO). A store already open in another process: -EBUSY. Too small: -ENOSPC.
  static int open(const std::string& path, const Options& opts, std::unique_ptr<Store>* out);

  virtual uint64_t epoch() const = 0;          // last committed epoch, 0 = none
  virtual size_t page_size() const = 0;
  virtual const char* writer_name() const = 0; // "dax" or "io_uring"

  // Regions known to the store (those of the last committed epoch plus ones defined since).
  virtual std::vector<RegionInfo> regions() const = 0;
  // Define a region (persisted by the next commit). Same name and size: returns its id.
  // Same name, other size: -EINVAL. Not enough room for it: -ENOSPC.
  virtual int define_region(std::string_view name, uint64_t size, uint32_t* id) = 0;

  // Begin a checkpoint; one at a time (-EBUSY otherwise).
  virtual int begin(std::unique_ptr<Txn>* out) = 0;

  // Read a region as of the newest committed epoch that verifies, into dst (len == region
  // size, else -EINVAL). Pages never written read as zeros. -ENOENT: nothing committed or no
  // such region. -EIO: damage with no intact older copy (report->damaged says which pages).
  virtual int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) = 0;
};

}  // namespace ckpt::store

// SPDX-License-Identifier: MIT
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

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::store {

enum class Writer { kAuto, kDax, kUring };

constexpr size_t kMinMacKey = 16, kMaxMacKey = 64;  // Options::mac_key's length, in bytes

struct Options {
  Writer writer = Writer::kAuto;  // kAuto: device-DAX or a MAP_SYNC-capable file -> DAX, else io_uring
  uint64_t create_size = 0;       // file stores: initial size when created (0 = grow on demand)
  // Added by the store (defaults keep the meaning above).
  // What open() may format. A path that does not exist is always created (a new file holds
  // nothing to lose). A path that exists but holds no store is formatted only when asked:
  //  - create: an empty or blank file (the first 16 KiB all zeros), a block device in which
  //    libblkid recognises nothing, a device-DAX whose first 16 KiB are zeros;
  //  - force_format (implies create): anything, a store included (destroys it); every signature
  //    libblkid finds (file system, partition table with its backup GPT, RAID, swap...) is erased
  //    first (wipefs --all), so nothing but the store claims the device or file afterwards.
  // Refused otherwise, the store untouched and `why` naming what it holds:
  //  -ENODATA  no store, and create was not asked for;
  //  -EEXIST   libblkid recognises a file system, partition table, LUKS header, swap area,
  //            RAID member..., or a file or device-DAX has other data in its header (create
  //            is not enough: force_format);
  //  -EUCLEAN  a damaged store (both superblocks bad after a commit): never reformatted.
  bool create = false;
  bool force_format = false;
  // Inspection and restore (ckpt-tool restore/inspect/verify): never create, format or repair
  // anything. Opened O_RDONLY under a shared lock (several readers at once, read-only media and
  // files work; -EBUSY while a program has it open for writing, so what is read is a committed
  // state), through a medium that sets up no io_uring ring, staging buffer or libpmem2. A
  // missing path gives -ENOENT, a path that holds no store -ENODATA; begin(), define_region()
  // and reserve() give -EROFS.
  bool no_modify = false;
  // Keyed MAC (16..64 bytes; store-format.md "Keyed MAC"): every commit record written is
  // authenticated with it, and open() checks the newest record's. Empty: none. Refusals:
  //  -EKEYREJECTED  a key is given and the newest commit record has no MAC (an unkeyed store)
  //                 or one that does not verify (forged, another store's, another key);
  //  -ENOKEY        no key is given and the store's newest record has a MAC (writers only:
  //                 a no_modify open reads it unauthenticated);
  //  -ELIBACC       libsodium (libsodium23) cannot be loaded; -EINVAL a key of another length.
  std::string mac_key;
  // If set, receives a one-line human-readable reason when open() fails.
  std::string* why = nullptr;
  // Write a full page-map snapshot after this many delta epochs (0 = automatic: after 256 — the
  // most a reader accepts —, or when the deltas hold as many metadata blocks as the snapshot).
  // Tests use small values.
  uint32_t snapshot_every = 0;
};

struct RegionInfo {
  std::string name;
  uint64_t size = 0;   // bytes, a multiple of the page size
  uint32_t id = 0;     // stable within the store
};

// Who committed an epoch (format 1.2, store-format.md "Provenance"): the program's executable
// path and its ELF build-id. Each commit records the committing program's.
struct Provenance {
  bool known = false;     // false: nothing committed, or committed by a library before 1.2
  std::string exe;        // /proc/self/exe of the committing process
  std::string build_id;   // its NT_GNU_BUILD_ID note in hex, "" if it has none
};
// The running program's (computed once per process).
const Provenance& self_provenance();
// The same program: the same executable path, or the same non-empty build-id (a rebuilt
// program keeps its path; an installed or moved copy its build-id). True if either is unknown.
bool same_program(const Provenance& a, const Provenance& b);

// What a restore found, for clear errors and for ckpt-tool.
struct ReadReport {
  uint64_t epoch = 0;            // epoch the data came from
  uint64_t pages_read = 0;
  std::vector<uint64_t> damaged; // page indices whose checksum failed in every retained epoch
                                 // (on -EIO: the pages of this region that could not be restored)
};

// --- Added by the store for ckpt-tool (inspect / verify / stat) and benchmarks. ---

struct EpochInfo {         // one epoch in the live epoch's metadata chain (oldest first)
  uint64_t epoch = 0;
  bool snapshot = false;   // a full page-map snapshot (replay starts here)
  uint64_t pages = 0;      // page entries in the record (delta: pages written in that epoch)
  uint64_t meta_blocks = 0;
  uint64_t regions = 0;    // region definitions in the record
  uint64_t resized = 0;    // delta: regions resized in that epoch
  uint64_t removed = 0;    // delta: regions removed in that epoch
};

struct StoreStat {
  std::string writer;          // "dax" or "io_uring"
  std::string path;
  std::string uuid;            // 36-char text form
  uint32_t format_major = 0, format_minor = 0;
  uint64_t block_size = 0;     // == page_size()
  uint64_t total_blocks = 0;   // store size in blocks
  uint64_t free_blocks = 0;    // not referenced by the live or the retained epoch
  uint64_t live_data_blocks = 0;
  uint64_t retained_only_blocks = 0;  // data + metadata kept only for the fallback epoch
  uint64_t meta_blocks = 0;    // metadata blocks of the live chain
  bool growable = false;       // a file store that grows on demand
  uint64_t epoch = 0;          // newest committed epoch
  uint64_t read_epoch = 0;     // epoch reads come from (== epoch unless it fell back)
  uint64_t retained_epoch = 0; // the older epoch kept restorable, 0 = none
  std::vector<EpochInfo> chain;
  Provenance provenance;       // of the newest committed epoch
};

struct DamagedPage {
  uint32_t region = 0;
  std::string name;            // the region's name (also for one the newest epoch removed)
  uint64_t page = 0;
  uint64_t epoch = 0;          // epoch whose copy failed
};

struct VerifyReport {
  uint64_t pages_checked = 0;
  uint64_t newest_intact_epoch = 0;  // newest retained epoch whose every page verifies (0: none)
  bool meta_fell_back = false;       // the newest epoch's metadata was damaged at open
  std::vector<DamagedPage> damaged;  // every page whose checksum failed, in every retained epoch
};

// Called during verify with (pages done, pages total); return false to cancel (-ECANCELED).
using Progress = std::function<bool(uint64_t done, uint64_t total)>;

class Txn {
 public:
  virtual ~Txn() = default;
  // Stage one page (page_size bytes at data) of region `region`, index `page`. The bytes are
  // copied (or persisted) before the call returns, so the caller may modify the source after.
  virtual int put_page(uint32_t region, uint64_t page, const void* data) = 0;
  // Store note (bulk writers: ckpt-tool dump, the session's runs of dirty pages): stage the
  // `npages` consecutive pages [first_page, first_page + npages) of `region` from `src`
  // (npages * page_size bytes, any alignment). The result is exactly that of npages put_page
  // calls in page order — same store contents, same checksums, same crash guarantees (nothing
  // is live before commit()) — but the pages are checksummed and written in few large writes:
  // the blocks are allocated consecutively where the store has room, and each run of
  // consecutive blocks is one write (DAX: one non-temporal copy; io_uring: SQEs of up to 256 KiB,
  // from `src` itself for runs of 1 MiB or more, reaped before the call returns). The bytes
  // are the store's when it returns: the caller may modify `src` after.
  // Requirements: region visible and first_page + npages within its current size (else
  // -EINVAL, nothing staged); npages == 0 is a no-op. On a failure part-way (-ENOSPC, -EIO)
  // the pages before the failing one are staged, as with put_page, and commit() returns the
  // same error. Not thread-safe (like every call here). The default loops over put_page.
  virtual int put_pages(uint32_t region, uint64_t first_page, const void* src, uint64_t npages) {
    const auto* p = static_cast<const unsigned char*>(src);
    for (uint64_t i = 0; i < npages; i++)
      if (int e = put_page(region, first_page + i, p + i * 4096)) return e;
    return 0;
  }
  // The layout, in this transaction, before its first page (-EBUSY once a page is staged):
  // Change a region's size (bytes, a positive multiple of page_size()). Growing keeps every
  // page; shrinking drops the pages at and beyond the new size. Takes effect in the store's view
  // now (regions(), put_page's bounds, reads) and is persisted by the commit, atomically with its
  // pages (a crash before it leaves the old size). -ENOENT unknown id; -EINVAL bad size; -ENOSPC
  // no room.
  virtual int resize_region(uint32_t id, uint64_t size) = 0;
  // Remove a region: its pages are dropped and its name may be defined again (it gets a new id;
  // ids are never reused). Persisted by the commit like resize_region. -ENOENT unknown id.
  // A transaction abandoned (destroyed without commit(), or a failed commit) drops its pages;
  // its layout changes stay in the view, like definitions, and go with the next commit.
  virtual int remove_region(uint32_t id) = 0;
  // Make the epoch durable and live, atomically: after a crash at any instant during commit the
  // store opens at the previous epoch or at this one, never a mix. Returns 0 or -errno; on error
  // the previous epoch stays live and intact.
  virtual int commit() = 0;
};

// The read side: reads of one epoch, chosen once when the reader is opened
// (Store::open_reader), before anything is filled. Every region read through one Reader comes
// from that epoch, never a mix: a damaged page is -EIO, never a fallback. A Reader must not
// outlive its Store; once the store commits, or changes its read epoch (select_epoch, a
// fallback through Store::read_region), its reads give -ESTALE.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual uint64_t epoch() const = 0;
  // The regions the epoch holds (pending definitions and changes not included).
  virtual std::vector<RegionInfo> regions() const = 0;
  // As Store::read_region / read_range, from epoch() only: damage with no fallback is -EIO
  // (report->damaged says which pages); report->epoch is epoch().
  virtual int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) = 0;
  virtual int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                         ReadReport* report) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Open the store at `path`: a path that does not exist becomes a growing file store; one with
  // a store is opened (another format version: -EPROTO); one without a store is formatted only
  // as Options::create / force_format say. Symlinks are followed (never created through). A
  // store already open in another process: -EBUSY. Too small: -ENOSPC.
  static int open(const std::string& path, const Options& opts, std::unique_ptr<Store>* out);

  virtual uint64_t epoch() const = 0;          // last committed epoch, 0 = none
  virtual size_t page_size() const = 0;
  virtual const char* writer_name() const = 0; // "dax" or "io_uring"

  // Regions known to the store (those of the last committed epoch plus ones defined since).
  virtual std::vector<RegionInfo> regions() const = 0;
  // Define a region (persisted by the next commit). Same name and size: returns its id.
  // Same name, other size: -EINVAL. Not enough room for it: -ENOSPC.
  // Store note: a new name gets a new id, never one used before in this store; ids are bounded
  // by the store's size (65536 + its blocks), past that -ENOSPC (store-format.md).
  virtual int define_region(std::string_view name, uint64_t size, uint32_t* id) = 0;
  // Store note (bulk definers: ckpt-tool's checkpoints): make room at once for a layout of
  // `nregions` regions totalling `bytes` (a multiple of page_size()) in all — the regions the
  // caller will have once it has defined, resized and removed what it is about to — so that the
  // define_region / Txn::resize_region calls that follow do not grow a file store step by step
  // (each step grows by a quarter of the store at least, which overshoots). A file store grows
  // to exactly what that layout needs, if it is smaller; a fixed-size store is checked only.
  // Persists nothing but the file's size. -ENOSPC (store or file system full), -EINVAL.
  // Default: nothing (define_region makes room itself).
  virtual int reserve(uint64_t bytes, uint64_t nregions) {
    (void)bytes;
    (void)nregions;
    return 0;
  }

  // Begin a checkpoint; one at a time (-EBUSY otherwise).
  // Store note: destroying a Txn without commit() abandons it (its blocks are free again); a Txn
  // must not outlive its Store. After a failed commit the previous epoch is live; put_page
  // errors (-ENOSPC: store or file system full) make commit() return the same error.
  // Timing begin + N x put_page + commit is the persist cost of N pages (for benchmarks).
  virtual int begin(std::unique_ptr<Txn>* out) = 0;

  // Open a Reader (above). epoch 0: the newest epoch that verifies. That is the read epoch,
  // unless a page of it fails its checksum and the retained epoch verifies completely: then the
  // store falls back to the retained epoch for good (as read_region below would) before the
  // reader is opened. So when there is a retained epoch to fall back to (and none was
  // selected), every page of the read epoch is checked first, once per epoch (a second
  // reader of the same epoch costs nothing). Damage with no intact retained epoch leaves the
  // read epoch, whose damaged pages read as -EIO. Otherwise select_epoch(epoch) first.
  // -ENOENT: nothing committed, or `epoch` not held; -EBUSY: select_epoch's.
  virtual int open_reader(uint64_t epoch, std::unique_ptr<Reader>* out) = 0;

  // One region's shorthand: read a region as of the newest committed epoch that verifies,
  // into dst (len == region size, else -EINVAL). Pages never written read as zeros. -ENOENT:
  // nothing committed or no such region. -EIO: damage with no intact older copy (report->damaged says which pages).
  //
  // Store note (fallback, never a mix): all reads come from read_epoch(). When a page of the
  // newest epoch fails its checksum and the retained older epoch verifies completely, the whole
  // store switches to the older epoch (read_epoch() and report->epoch drop) and the next commit
  // builds on it. A caller that reads several regions that must come from one epoch uses a
  // Reader instead. report may be null.
  virtual int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) = 0;

  // Read [offset, offset + len) of a region (page-aligned) as of read_epoch(), with read_region's
  // semantics (checksums, fallback to the retained epoch, never-written pages read as zeros,
  // report). Lets a caller read a few pages of a huge region without a region-sized buffer.
  // Store note: a read of 4 MiB or more into page-aligned memory is split across up to 4
  // threads (one per CPU it may run on, joined before it returns).
  virtual int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                         ReadReport* report) = 0;

  // --- Added by the store. ---
  virtual uint64_t read_epoch() const = 0;     // epoch read_region() serves, 0 = none
  // The epochs the store holds restorable, newest first: the read epoch and the retained one
  // (whose metadata loaded; damaged pages are found when read). Empty: nothing committed.
  virtual std::vector<uint64_t> epochs() const {
    if (read_epoch() == 0) return {};
    return {read_epoch()};
  }
  // Make `epoch` (one of epochs()) the read epoch, for good: reads never fall back from it
  // (damage is -EIO), and when it is older than epoch(), epoch() becomes `epoch` and the next
  // commit is epoch + 1, superseding every newer epoch (store-format.md, "Going back to an
  // older epoch"). -ENOENT: not held; -EBUSY: a Txn is open.
  // The regions `epoch` (one of epochs()) holds, as committed in it (pending definitions and
  // changes not included): to check a restore before select_epoch. -ENOENT: not held.
  virtual int regions_of(uint64_t epoch, std::vector<RegionInfo>* out) const {
    if (epoch == 0 || epoch != read_epoch()) return -ENOENT;
    *out = regions();
    return 0;
  }
  virtual int select_epoch(uint64_t epoch) {
    return epoch != 0 && epoch == read_epoch() && epoch == this->epoch() ? 0 : -ENOENT;
  }
  // The pages of `region` whose content the newer epoch changed relative to `epoch` (one of
  // epochs()), sorted: what a commit on top of `epoch` must write again for memory as it is now
  // (ckpt_supersede), besides what was written since. `epoch` the newest: none. -ENOENT: the
  // region is not in `epoch` with the newest epoch's size, or `epoch` is not held; -EOPNOTSUPP:
  // this store cannot tell. On error the caller counts every page of the region.
  virtual int changed_since(uint64_t epoch, uint32_t region, std::vector<uint64_t>* pages) const {
    (void)epoch, (void)region;
    pages->clear();
    return -EOPNOTSUPP;
  }
  // Who committed the newest epoch (known == false: nothing committed, or a pre-1.2 writer).
  virtual Provenance provenance() const { return {}; }
  // Check every page checksum of every retained epoch. 0 when the read epoch verifies
  // completely; -EIO when something is damaged (report says what); -ECANCELED by progress.
  virtual int verify(VerifyReport* report, const Progress& progress = {}) = 0;
  virtual int stat(StoreStat* out) const = 0;
  // The reason of the last failing call, for messages ("" if none).
  virtual const std::string& last_error() const = 0;
};

}  // namespace ckpt::store

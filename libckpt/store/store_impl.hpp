// SPDX-License-Identifier: MIT
// libckpt store, inside: the in-memory state of an open store and the classes that implement
// store.hpp. The implementation is split by job: replay.cpp (open, format, replay of the
// metadata), blockmap.cpp (free blocks, allocation, region definitions and changes),
// commit.cpp (transactions and the commit protocol), read.cpp (reads, fallback, epochs,
// verify, stat). Nothing outside libckpt/store/ includes this header.
//
// In memory the store keeps:
//   regions_   every region id ever seen (index = id - 1; removed ones stay as holes, since ids
//              are never reused) with its page map as of the read epoch (live_), plus the
//              caller's view pending for the next commit: new definitions, removals, resizes
//   undo_      for each page whose block differs in the retained epoch, the retained ref: the
//              retained epoch's map is regions_ with undo_ applied (O(dirty) per commit)
//   used_      a bitmap of blocks referenced by the newest committed epoch, the retained epoch,
//              or the open transaction; nothing else is ever overwritten
// Commit of epoch E+1: data blocks (written by put_page) and metadata blocks (a delta record,
// or a full snapshot) go to free blocks -> barrier -> the commit record into slot (E+1) % 2 ->
// barrier. The record names both E+1 and E (the retained epoch), so either is rebuilt from it.
#pragma once

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "format.hpp"
#include "medium.hpp"
#include "store.hpp"

namespace ckpt::store {
namespace impl {

using namespace fmt;

constexpr uint32_t kMaxRegionId = (1u << 30) - 1;
// Delta records a chain may have: every 1.x reader refuses a longer one, and the writer takes a
// snapshot before reaching it (or earlier: when the deltas hold as many metadata blocks as the
// snapshot). It was 64 for the writer before; a snapshot of a big region is O(mapped pages), so
// the longer chain divides what it adds to each checkpoint by four (a 1 GiB region's snapshot,
// ~2,100 blocks, is ~0.2-0.3 s under TCG).
constexpr uint64_t kMaxChainRecords = 256;

struct PageRef {
  uint64_t block = 0;  // 0: never written (reads as zeros)
  uint64_t hash = 0;
};

struct Region {
  std::string name;
  uint64_t size = 0;   // bytes as of the read epoch (pages.size() pages); a new region: its size
  uint32_t id = 0;
  uint64_t epoch = 0;  // epoch that defined it; 0 = defined since, not committed yet
  bool alive = true;   // false: a hole (removed in the read epoch or before it was committed)
  // The caller's view, persisted by the next commit (Txn::remove_region / resize_region):
  bool removing = false;  // in the read epoch, removed since
  uint64_t cur = 0;       // current size in bytes
  uint64_t keep = 0;      // pages of `pages` still in the view: the smallest size since then
  uint64_t ret_size = 0;  // bytes in the retained epoch, 0 = not in it
  std::vector<PageRef> pages;  // the read epoch's map
  // For the open checkpoint: 1 + index into its pages, 0 = not written in it. Sized on first
  // use and cleared entry by entry, so a checkpoint costs O(dirty), not a hash-map node a page.
  std::vector<uint32_t> pending;
};

// Pad `regions` (index = id - 1) with holes (dead regions: removed, or never known here) so
// that it holds every id below `next_id`: the next region pushed gets id `next_id`, or, if
// it is longer already, nothing changes (blockmap.cpp).
void pad_with_holes(std::vector<Region>* regions, uint64_t next_id);

// The retained epoch's page refs where they differ from the read epoch's, sorted by key.
class Undo {
 public:
  using Entry = std::pair<uint64_t, PageRef>;
  void clear() { v_.clear(); }
  void reserve(size_t n) { v_.reserve(n); }
  void add(uint64_t key, PageRef ref) { v_.emplace_back(key, ref); }
  void finish() {  // keys are unique by construction
    std::sort(v_.begin(), v_.end(), [](const Entry& a, const Entry& b) { return a.first < b.first; });
  }
  const PageRef* find(uint64_t key) const {
    auto it = std::lower_bound(v_.begin(), v_.end(), key,
                               [](const Entry& e, uint64_t k) { return e.first < k; });
    return it != v_.end() && it->first == key ? &it->second : nullptr;
  }
  std::vector<Entry>::const_iterator begin() const { return v_.begin(); }
  std::vector<Entry>::const_iterator end() const { return v_.end(); }

 private:
  std::vector<Entry> v_;
};

inline bool in_read(const Region& r) { return r.alive && r.epoch != 0; }
inline bool visible(const Region& r) { return r.alive && !r.removing; }
inline bool resized(const Region& r) {
  return in_read(r) && !r.removing && (r.cur != r.size || r.keep < r.pages.size());
}

struct Chain {  // one epoch's metadata chain
  EpochRef ref{};
  uint32_t next_id = 1;            // next unused region id as of this epoch
  std::vector<uint64_t> meta;      // every metadata block of the chain
  std::vector<EpochInfo> records;  // snapshot first
  uint64_t delta_meta = 0;         // metadata blocks in delta records
};

inline uint64_t page_key(uint32_t r, uint64_t p) { return (uint64_t(r) << 34) | p; }
inline uint32_t key_region(uint64_t k) { return static_cast<uint32_t>(k >> 34); }
inline uint64_t key_page(uint64_t k) { return k & ((1ull << 34) - 1); }

class Block {  // one 4 KiB, aligned buffer
 public:
  Block() : p_(static_cast<uint8_t*>(::operator new(kBlockSize, std::align_val_t(4096)))) {
    std::memset(p_, 0, kBlockSize);
  }
  ~Block() { ::operator delete(p_, std::align_val_t(4096)); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  uint8_t* data() { return p_; }

 private:
  uint8_t* p_;
};

inline std::string uuid_text(const uint8_t u[16]) {
  char s[40];
  snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
           u[13], u[14], u[15]);
  return s;
}

class StoreImpl;

// One commit's metadata records, planned before anything is written (commit.cpp).
struct CommitPlan {
  struct Payload {
    std::vector<uint8_t> bytes;
    uint32_t nslots = 0;
  };
  bool snapshot = false;
  std::vector<Payload> blocks;  // record blocks' slots
  uint64_t n_region_entries = 0, n_page_entries = 0, n_resized = 0, n_removed = 0;
  uint64_t npages = 0, nregions = 0;  // mapped pages and live regions as of the new epoch
  bool changes = false;               // entries a 1.0 reader cannot read
  // Room for an entry of n slots, in the last block or a new one (never across two).
  uint8_t* slot(size_t n);
};

class TxnImpl final : public Txn {
 public:
  explicit TxnImpl(StoreImpl* s) : s_(s) {}
  ~TxnImpl() override;
  int put_page(uint32_t region, uint64_t page, const void* data) override;
  int put_pages(uint32_t region, uint64_t first_page, const void* src, uint64_t npages) override;
  int resize_region(uint32_t id, uint64_t size) override;
  int remove_region(uint32_t id) override;
  int commit() override;

  struct Pending {
    uint32_t region;
    uint64_t page;
    PageRef ref;
  };
  StoreImpl* s_;
  std::vector<Pending> pages_;
  std::vector<uint64_t> allocated_;  // released unless committed
  int err_ = 0;                      // sticky: a failed put_page fails the commit
  bool done_ = false;
};

// A Reader of the read epoch it was opened at (gen: the store's read_gen_ then).
class ReaderImpl final : public Reader {
 public:
  ReaderImpl(StoreImpl* s, uint64_t epoch, uint64_t gen) : s_(s), epoch_(epoch), gen_(gen) {}
  uint64_t epoch() const override { return epoch_; }
  std::vector<RegionInfo> regions() const override;
  int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) override;
  int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                 ReadReport* report) override;

 private:
  int stale() const;
  StoreImpl* s_;
  uint64_t epoch_, gen_;
};

class StoreImpl final : public Store {
 public:
  StoreImpl(std::unique_ptr<Medium> m, MediumInfo info, const Options& o)
      : m_(std::move(m)), info_(std::move(info)), opts_(o) {}

  int open_or_format(std::string* why);

  uint64_t epoch() const override { return committed_; }
  size_t page_size() const override { return kBlockSize; }
  const char* writer_name() const override { return m_->name(); }
  std::vector<RegionInfo> regions() const override;
  int define_region(std::string_view name, uint64_t size, uint32_t* id) override;
  int reserve(uint64_t bytes, uint64_t nregions) override;
  int begin(std::unique_ptr<Txn>* out) override;
  int open_reader(uint64_t epoch, std::unique_ptr<Reader>* out) override;
  int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) override;
  int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                 ReadReport* report) override {
    return read_at(region, offset, dst, len, report, true);
  }
  uint64_t read_epoch() const override { return live_.ref.epoch; }
  std::vector<uint64_t> epochs() const override {
    std::vector<uint64_t> v;
    if (live_.ref.epoch) v.push_back(live_.ref.epoch);
    if (ret_.ref.epoch) v.push_back(ret_.ref.epoch);
    return v;
  }
  int select_epoch(uint64_t epoch) override;
  int regions_of(uint64_t epoch, std::vector<RegionInfo>* out) const override {
    if (epoch == 0 || (epoch != live_.ref.epoch && epoch != ret_.ref.epoch)) return -ENOENT;
    const bool ret = epoch != live_.ref.epoch;
    out->clear();
    for (const Region& r : regions_) {
      if (ret ? r.ret_size != 0 : in_read(r)) out->push_back({r.name, ret ? r.ret_size : r.size, r.id});
    }
    return 0;
  }
  // The newer epoch's changes relative to the retained one are undo_'s keys (O(changed pages)).
  int changed_since(uint64_t epoch, uint32_t region, std::vector<uint64_t>* out) const override {
    out->clear();
    if (epoch == 0 || (epoch != live_.ref.epoch && epoch != ret_.ref.epoch)) return -ENOENT;
    if (region == 0 || region > regions_.size()) return -ENOENT;
    if (epoch == live_.ref.epoch) return 0;
    const Region& r = regions_[region - 1];
    if (!in_read(r) || r.ret_size == 0 || r.ret_size != r.size) return -ENOENT;
    const uint64_t lo = page_key(r.id, 0), hi = page_key(r.id, 0) + (uint64_t(1) << 34);
    for (const auto& e : undo_)
      if (e.first >= lo && e.first < hi) out->push_back(e.first - lo);
    return 0;
  }
  Provenance provenance() const override { return prov_; }
  int verify(VerifyReport* report, const Progress& progress) override;
  int stat(StoreStat* out) const override;
  const std::string& last_error() const override { return err_; }

 private:
  friend class TxnImpl;
  friend class ReaderImpl;

  int set_err(int e, std::string msg) {
    err_ = std::move(msg);
    return e;
  }

  // open
  int header_verdict(Block* hdr, int s0, const char* w0, int s1, const char* w1, bool* fmt,
                     std::string* why);
  int no_store_verdict(Block* hdr, std::string* why);
  int check_record_mac(const uint8_t* rec, const CommitRecord& cr, std::string* why);
  void read_provenance(const uint8_t* rec);
  int load_epochs(const CommitRecord& cr, std::string* why);
  int format(std::string* why);
  int load_chain(const EpochRef& ref, Chain* chain, std::vector<Region>* regions,
                 std::string* why);
  int load_record(uint64_t head, uint64_t epoch, uint32_t kind, Chain* chain,
                  std::vector<Region>* regions, uint64_t* prev, std::string* why);
  int read_meta(uint64_t block, uint8_t* buf, MetaHeader* h, std::string* why);
  int adopt_retained(const Chain& rc, std::vector<Region>* old);
  void rebuild_used();
  int repair_super(int bad);

  // allocation
  bool is_used(uint64_t b) const { return b < total_ && (used_[b >> 6] >> (b & 63)) & 1; }
  void mark(uint64_t b) {
    if (b < total_ && !is_used(b)) {
      used_[b >> 6] |= 1ull << (b & 63);
      nused_++;
      hwm_ = std::max(hwm_, b + 1);
    }
  }
  void unmark(uint64_t b) {
    if (b >= kFirstDataBlock && is_used(b)) {
      used_[b >> 6] &= ~(1ull << (b & 63));
      nused_--;
    }
  }
  int alloc(uint64_t* out);
  // exact: grow to want_total and no further (a caller that knows the whole need); otherwise
  // by a quarter at least.
  int grow_blocks(uint64_t want_total, bool exact = false);
  // Region ids are array indices in memory, holes included (a removed id stays a small
  // placeholder), so ids are bounded by the store's size: what a forged id can make a reader
  // allocate stays proportional to the store, and the writer never creates what it refuses.
  uint64_t max_region_id() const { return std::min<uint64_t>(kMaxRegionId, 65536 + total_); }
  Region* find_visible(uint32_t id) {
    return id && id <= regions_.size() && visible(regions_[id - 1]) ? &regions_[id - 1] : nullptr;
  }
  int make_room(uint64_t size, const Region* except, std::string_view name);
  // The view's layout changes (Txn::resize_region / remove_region), pending for the commit.
  int resize_view(uint32_t id, uint64_t size);
  int remove_view(uint32_t id);
  // Blocks a store holding `pages` region pages in `nregions` regions needs (header, one copy
  // of every page, the metadata of two epochs).
  static uint64_t room_for(uint64_t pages, uint64_t nregions);
  int enable_region_changes();
  // Write the commit record of `epoch` into its slot, then a barrier.
  int write_record(uint64_t epoch, const EpochRef& live, const EpochRef& retained);
  int supersede_before(uint64_t epoch);
  int supersede_after(uint64_t epoch);

  // commit
  int commit(TxnImpl* t);
  void plan_commit(TxnImpl* t, uint64_t epoch, CommitPlan* cp);
  uint64_t mapped_after(const TxnImpl* t) const;
  void plan_regions(uint64_t epoch, CommitPlan* cp);
  void plan_pages(const TxnImpl* t, CommitPlan* cp);
  int write_meta(TxnImpl* t, const CommitPlan& cp, uint64_t epoch, std::vector<uint64_t>* out);
  void apply_commit(TxnImpl* t, const CommitPlan& cp, const EpochRef& l,
                    const std::vector<uint64_t>& where, uint64_t epoch);
  void abort(TxnImpl* t);
  void clear_pending(TxnImpl* t) {
    for (const auto& pg : t->pages_) {
      Region& r = regions_[pg.region - 1];
      if (pg.page < r.pending.size()) r.pending[pg.page] = 0;
    }
  }

  // reads
  // read_range's work; `fallback`: damage in the read epoch falls back to an intact retained
  // epoch (Store::read_range), or is -EIO (a Reader's).
  int read_at(uint32_t region, uint64_t offset, void* dst, uint64_t len, ReadReport* report,
              bool fallback);
  // Region size against len (read_region's -EINVAL), before reading.
  int check_len(uint32_t region, uint64_t len, ReadReport* report);
  // Every page of the read epoch's view verifies (open_reader's up-front check).
  bool read_epoch_intact();
  int read_pages(const Region& r, uint64_t first, uint64_t n, void* dst,
                 std::vector<uint64_t>* damaged, uint64_t* nread);
  int read_part(const Region& r, uint64_t first, uint64_t n, void* dst,
                std::vector<uint64_t>* damaged, uint64_t* nread);
  bool page_ok(const PageRef& ref, uint32_t region, uint64_t page, uint8_t* scratch);
  // The retained epoch's map is the read epoch's with undo_ applied; pages the read epoch
  // does not have (a removed region, a shrunk tail) are all in undo_.
  PageRef retained_ref(const Region& r, uint64_t page) const {
    const PageRef* u = undo_.find(page_key(r.id, page));
    if (u) return *u;
    return in_read(r) && page < r.pages.size() ? r.pages[page] : PageRef{};
  }
  bool in_retained(const Region& r) const { return ret_.ref.epoch != 0 && r.ret_size != 0; }
  bool retained_intact(uint8_t* scratch);
  void switch_to_retained();

  std::unique_ptr<Medium> m_;
  MediumInfo info_;
  Options opts_;
  SuperBlock sb_{};
  uint64_t key_ = 0;
  uint64_t total_ = 0;  // blocks in the medium

  std::vector<Region> regions_;  // index = id - 1
  std::unordered_map<std::string, uint32_t> by_name_;  // visible regions
  uint32_t next_id_ = 1;  // ids are never reused, even those only defined in memory
  uint64_t committed_ = 0;  // newest committed epoch (lowered by select_epoch)
  uint64_t on_medium_ = 0;  // newest valid commit record on the medium (> committed_: superseded)
  bool pinned_ = false;     // select_epoch: reads never fall back from the read epoch
  uint64_t verified_ = 0;   // a read epoch open_reader found intact (not checked again)
  uint64_t read_gen_ = 0;   // changes with the read epoch (commit, fallback): stale Readers
  Chain live_;              // the epoch regions_ holds (the read epoch)
  Chain ret_;               // the retained older epoch, ref.epoch == 0: none
  Undo undo_;
  bool fell_back_ = false, meta_fell_back_ = false, rebuild_after_commit_ = false;

  std::vector<uint64_t> used_;
  uint64_t nused_ = 0;
  uint64_t cursor_ = kFirstDataBlock;
  // One past the highest block used since open (every used block lies below it, so
  // hwm_ - nused_ blocks below it are free). alloc() reuses those before going higher.
  uint64_t hwm_ = kFirstDataBlock;
  TxnImpl* txn_ = nullptr;
  bool broken_ = false;  // a commit record write failed: the medium's state is unknown
  std::string err_;
  Provenance prov_;      // of the newest committed epoch
};

}  // namespace impl
}  // namespace ckpt::store

// SPDX-License-Identifier: MIT
// libckpt store: the core — open/format, metadata replay, copy-on-write allocation, the
// commit protocol, reads with checksum verification and fallback. Every byte it persists goes
// through Medium::write and every durability point through Medium::barrier (medium.hpp).
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
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "format.hpp"
#include "mac.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

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
  // The caller's view, persisted by the next commit (remove_region / resize_region):
  bool removing = false;  // in the read epoch, removed since
  uint64_t cur = 0;       // current size in bytes
  uint64_t keep = 0;      // pages of `pages` still in the view: the smallest size since then
  uint64_t ret_size = 0;  // bytes in the retained epoch, 0 = not in it
  std::vector<PageRef> pages;  // the read epoch's map
  // For the open checkpoint: 1 + index into its pages, 0 = not written in it. Sized on first
  // use and cleared entry by entry, so a checkpoint costs O(dirty), not a hash-map node a page.
  std::vector<uint32_t> pending;
};

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

std::string uuid_text(const uint8_t u[16]) {
  char s[40];
  snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
           u[13], u[14], u[15]);
  return s;
}

class StoreImpl;

class TxnImpl final : public Txn {
 public:
  explicit TxnImpl(StoreImpl* s) : s_(s) {}
  ~TxnImpl() override;
  int put_page(uint32_t region, uint64_t page, const void* data) override;
  int put_pages(uint32_t region, uint64_t first_page, const void* src, uint64_t npages) override;
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
  int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) override;
  int resize_region(uint32_t id, uint64_t size) override;
  int remove_region(uint32_t id) override;
  int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                 ReadReport* report) override;
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
  Provenance provenance() const override { return prov_; }
  int verify(VerifyReport* report, const Progress& progress) override;
  int stat(StoreStat* out) const override;
  const std::string& last_error() const override { return err_; }

 private:
  friend class TxnImpl;

  int set_err(int e, std::string msg) {
    err_ = std::move(msg);
    return e;
  }

  // open
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
  void abort(TxnImpl* t);
  void clear_pending(TxnImpl* t) {
    for (const auto& pg : t->pages_) {
      Region& r = regions_[pg.region - 1];
      if (pg.page < r.pending.size()) r.pending[pg.page] = 0;
    }
  }

  // reads
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

// ---------------------------------------------------------------------------------------------
// open / format / replay

int StoreImpl::open_or_format(std::string* why) {
  total_ = m_->size() / kBlockSize;
  Block hdr[4];
  for (int i = 0; i < 4; i++) {  // what there is of them: a short medium reads as zeros beyond
    const uint64_t off = uint64_t(i) * kBlockSize;
    if (off >= m_->size()) break;
    int r = m_->read(off, hdr[i].data(), std::min<uint64_t>(kBlockSize, m_->size() - off));
    if (r) {
      *why = "cannot read the store header";
      return r;
    }
  }
  const char* w0 = "";
  const char* w1 = "";
  int s0 = check_super(hdr[0].data(), &w0);
  int s1 = check_super(hdr[1].data(), &w1);
  bool have_commit = false;
  for (int i = 2; i < 4; i++) {
    uint64_t magic;
    std::memcpy(&magic, hdr[i].data(), 8);
    have_commit |= magic == kCommitMagic;
  }
  bool fmt_needed = false;
  if (opts_.force_format) {
    fmt_needed = true;
  } else if (s0 == 0 || s1 == 0) {
    // fall through to open
  } else if (s0 == -EPROTO || s1 == -EPROTO) {
    *why = std::string("refusing the store: ") + (s0 == -EPROTO ? w0 : w1);
    return -EPROTO;
  } else if (s0 == -EUCLEAN || s1 == -EUCLEAN) {
    // Magic but no valid copy: a format cut short (nothing was ever committed) is formatted
    // again; a store that committed something is damaged and kept as it is.
    if (have_commit) {
      *why = std::string("both superblocks are damaged: ") + w0;
      return -EUCLEAN;
    }
    fmt_needed = true;
  } else {
    // No store. What may be formatted is in store.hpp (Options::create); each refusal names
    // what the path holds and how to ask.
    bool blank = true;
    for (int i = 0; i < 4 && blank; i++)
      for (size_t j = 0; j < kBlockSize; j++)
        if (hdr[i].data()[j]) {
          blank = false;
          break;
        }
    if (opts_.no_modify) {
      *why = blank ? "holds no ckpt store (blank)" : "holds no ckpt store (it holds other data)";
      return -ENODATA;
    }
    const std::string where =
        !info_.target.empty() && info_.target != info_.path ? " (" + info_.target + ")" : "";
    if (!info_.signature.empty()) {
      *why = "holds " + info_.signature + " (libblkid)" + where +
             ", not a ckpt store: refusing to format it (force formatting destroys it: "
             "CKPT_CFG_FORMAT, --force)";
      return -EEXIST;
    }
    if (!info_.created && !opts_.create) {
      *why = std::string("holds no ckpt store") + where +
             (blank ? "" : " (and is not blank)") +
             ": refusing to format it unless creation is asked for (CKPT_CFG_CREATE, --create)";
      return -ENODATA;
    }
    // A block device libblkid found nothing on is formatted; a file or device-DAX only when
    // its header is blank (nothing probes device-DAX, and a file's bytes are someone's data).
    const bool block_dev = info_.device && !m_->mapping();
    if (!blank && !block_dev && !info_.created) {
      *why = "holds data that is not a ckpt store" + where +
             ": refusing to overwrite it (force formatting destroys it: CKPT_CFG_FORMAT, --force)";
      return -EEXIST;
    }
    fmt_needed = true;
  }
  const uint64_t min_blocks = kFirstDataBlock + 2;
  if (fmt_needed && opts_.no_modify) {
    *why = "holds no ckpt store";
    return -ENODATA;
  }
  if (fmt_needed && total_ < min_blocks && m_->growable()) {
    int r = grow_blocks(min_blocks);
    if (r) {
      *why = "cannot grow the file to hold a store";
      return r;
    }
  }
  if (total_ < min_blocks) {
    *why = fmt_needed ? "too small for a store (needs at least 6 blocks of 4 KiB)"
                      : "truncated: smaller than a store's header";
    return fmt_needed ? -ENOSPC : -EUCLEAN;
  }
  if (fmt_needed) return format(why);

  std::memcpy(&sb_, hdr[s0 == 0 ? 0 : 1].data(), sizeof(sb_));
  key_ = store_key(sb_.uuid);
  used_.assign((total_ + 63) / 64, 0);
  if ((s0 != 0 || s1 != 0) && !opts_.no_modify) {
    int r = repair_super(s0 != 0 ? 0 : 1);
    if (r) {
      *why = "cannot rewrite the damaged superblock copy";
      return r;
    }
  }

  // The newest valid commit record is the live epoch.
  CommitRecord cr{};
  bool found = false;
  int slot = 0;
  for (int i = 0; i < 2; i++) {
    const char* w = "";
    if (check_commit(hdr[2 + i].data(), sb_.uuid, &w) != 0) continue;
    CommitRecord c;
    std::memcpy(&c, hdr[2 + i].data(), sizeof(c));
    if (c.epoch % 2 != uint64_t(i)) continue;  // a record always sits in slot epoch % 2
    if (!found || c.epoch > cr.epoch) {
      cr = c;
      slot = i;
    }
    found = true;
  }
  if (found) {  // 1.2: the keyed MAC
    bool has_mac = false;
    for (uint8_t b : cr.mac) has_mac |= b != 0;
    if (!opts_.mac_key.empty()) {
      uint8_t mac[kMacBytes];
      std::string w;
      if (int r = commit_mac(opts_.mac_key, hdr[2 + slot].data(), mac, &w); r != 0) {
        *why = w;
        return r;
      }
      if (!has_mac) {
        *why = "epoch " + std::to_string(cr.epoch) +
               " was committed without a key (no MAC): refusing an unauthenticated store";
        return -EKEYREJECTED;
      }
      if (std::memcmp(mac, cr.mac, kMacBytes) != 0) {
        *why = "epoch " + std::to_string(cr.epoch) +
               ": the commit record's MAC does not verify with this key (forged, another "
               "store's, or another key)";
        return -EKEYREJECTED;
      }
    } else if (has_mac && !opts_.no_modify) {
      *why = "its commit records are authenticated with a key: give the key (ckpt_config.key, "
             "--key-file)";
      return -ENOKEY;
    }
  }
  if (found && cr.tail_csum != 0) {  // 1.2: who committed it (checked by check_commit)
    ProvenanceHeader ph;
    const uint8_t* t = hdr[2 + slot].data() + kProvOffset;
    std::memcpy(&ph, t, sizeof(ph));
    prov_.known = true;
    prov_.exe.assign(reinterpret_cast<const char*>(t + sizeof(ph)), ph.path_len);
    static const char hex[] = "0123456789abcdef";
    for (uint32_t k = 0; k < ph.build_id_len; k++) {
      prov_.build_id += hex[ph.build_id[k] >> 4];
      prov_.build_id += hex[ph.build_id[k] & 15];
    }
  }
  if (!found) {  // formatted, nothing committed (or the first commit was cut)
    rebuild_used();
    return 0;
  }
  committed_ = on_medium_ = cr.epoch;

  std::string w;
  int r = load_chain(cr.live, &live_, &regions_, &w);
  if (r == -ENOMEM) {
    *why = "out of memory loading the store";
    return r;
  }
  if (r) {
    // The newest epoch's metadata is damaged: the retained epoch is intact by construction
    // (its blocks were never reused), so it becomes the read epoch.
    live_ = Chain{};
    regions_.clear();
    std::string w2;
    if (cr.retained.epoch == 0 || load_chain(cr.retained, &live_, &regions_, &w2) != 0) {
      *why = "epoch " + std::to_string(cr.epoch) + " metadata damaged (" + w + ")" +
             (cr.retained.epoch ? ", and the retained epoch's too (" + w2 + ")"
                                : ", and no older epoch is retained");
      return -EUCLEAN;
    }
    meta_fell_back_ = fell_back_ = true;
    rebuild_after_commit_ = true;
    err_ = "epoch " + std::to_string(cr.epoch) + " metadata damaged (" + w + "); reading epoch " +
           std::to_string(cr.retained.epoch);
  } else if (cr.retained.epoch != 0) {
    // Rebuild the retained map and keep only where it differs from the live one.
    std::vector<Region> old;
    std::string w2;
    Chain rc;
    if (load_chain(cr.retained, &rc, &old, &w2) == 0) adopt_retained(rc, &old);
    // else: the retained epoch cannot be rebuilt; the live one still opens, without fallback.
  }
  next_id_ = std::max<uint32_t>(live_.next_id, static_cast<uint32_t>(regions_.size() + 1));
  for (const Region& reg : regions_)
    if (visible(reg)) by_name_[reg.name] = reg.id;
  rebuild_used();
  return 0;
}

// Keep the retained epoch `rc` (its regions in *old) as undo_ against the read epoch in
// regions_. A retained chain that disagrees with the live one (a forgery: the same id with
// another name or defining epoch, or ids the live epoch never saw) is not used for fallback.
int StoreImpl::adopt_retained(const Chain& rc, std::vector<Region>* old) {
  if (rc.next_id > live_.next_id) return -EUCLEAN;
  for (const Region& o : *old) {
    if (!o.alive) continue;
    if (o.epoch > rc.ref.epoch) return -EUCLEAN;
    if (o.id <= regions_.size()) {
      const Region& l = regions_[o.id - 1];
      if (l.alive && (l.name != o.name || l.epoch != o.epoch)) return -EUCLEAN;
    }
  }
  if (old->size() > regions_.size()) {
    const size_t n = regions_.size();
    regions_.resize(old->size());
    for (size_t i = n; i < regions_.size(); i++) {
      regions_[i].id = static_cast<uint32_t>(i + 1);
      regions_[i].alive = false;
    }
  }
  for (const Region& o : *old) {
    if (!o.alive) continue;
    Region& l = regions_[o.id - 1];
    if (!l.alive) {  // removed since: the hole remembers the name for a fallback
      l.name = o.name;
      l.epoch = o.epoch;
    }
    l.ret_size = o.size;
    for (uint64_t p = 0; p < o.pages.size(); p++) {
      const PageRef now = l.alive && p < l.pages.size() ? l.pages[p] : PageRef{};
      if (o.pages[p].block != now.block || o.pages[p].hash != now.hash)
        undo_.add(page_key(o.id, p), o.pages[p]);
    }
  }
  undo_.finish();
  ret_ = rc;
  return 0;
}

int StoreImpl::format(std::string* why) {
  // Commit slots first, superblocks last: until both superblocks are in place the store has
  // no commit record and a cut format is simply formatted again.
  std::memset(&sb_, 0, sizeof(sb_));
  sb_.magic = kSuperMagic;
  sb_.major = kFormatMajor;
  sb_.minor = kFormatMinor;
  sb_.block_size = kBlockSize;
  sb_.flags = m_->growable() ? kSbGrowable : 0;
  if (getrandom(sb_.uuid, sizeof(sb_.uuid), 0) != sizeof(sb_.uuid)) {
    *why = "getrandom failed";
    return -EIO;
  }
  sb_.uuid[6] = (sb_.uuid[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  sb_.uuid[8] = (sb_.uuid[8] & 0x3f) | 0x80;
  sb_.commit_block[0] = kCommitBlock[0];
  sb_.commit_block[1] = kCommitBlock[1];
  sb_.first_data_block = kFirstDataBlock;
  sb_.created_blocks = total_;
  sb_.created_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  seal_super(&sb_);
  key_ = store_key(sb_.uuid);
  Block zero, sb;
  std::memcpy(sb.data(), &sb_, sizeof(sb_));
  int r = m_->write(kCommitBlock[0] * kBlockSize, zero.data(), kBlockSize);
  if (!r) r = m_->write(kCommitBlock[1] * kBlockSize, zero.data(), kBlockSize);
  if (!r) r = m_->barrier();
  if (!r) r = m_->write(kSuperBlock[0] * kBlockSize, sb.data(), kBlockSize);
  if (!r) r = m_->write(kSuperBlock[1] * kBlockSize, sb.data(), kBlockSize);
  if (!r) r = m_->barrier();
  if (r) {
    *why = "cannot write the new store's header";
    return r;
  }
  used_.assign((total_ + 63) / 64, 0);
  rebuild_used();
  return 0;
}

int StoreImpl::repair_super(int bad) {
  Block b;
  std::memcpy(b.data(), &sb_, sizeof(sb_));
  int r = m_->write(kSuperBlock[bad] * kBlockSize, b.data(), kBlockSize);
  return r ? r : m_->barrier();
}

// Read metadata block `block` into buf (4 KiB) and check it: in range, readable, checksum and
// header valid. The header is copied to *h.
int StoreImpl::read_meta(uint64_t block, uint8_t* buf, MetaHeader* h, std::string* why) {
  if (block < kFirstDataBlock || block >= total_) {
    *why = "metadata block out of range (truncated store?)";
    return -EUCLEAN;
  }
  if (m_->read(block * kBlockSize, buf, kBlockSize) != 0) {
    *why = "cannot read a metadata block";
    return -EUCLEAN;
  }
  const char* w = "";
  if (check_meta(buf, key_, &w) != 0) {
    *why = w;
    return -EUCLEAN;
  }
  std::memcpy(h, buf, sizeof(*h));
  return 0;
}

// Read one record (a snapshot or a delta: a list of metadata blocks) and apply its entries.
int StoreImpl::load_record(uint64_t head, uint64_t epoch, uint32_t kind, Chain* chain,
                           std::vector<Region>* regions, uint64_t* prev, std::string* why) {
  // Region changes (1.1) only in a store that says so: a 1.0 store is read as 1.0 was.
  const bool changes = sb_.incompat & kIncompatRegionChange;
  Block b;
  EpochInfo info;
  info.epoch = epoch;
  info.snapshot = kind == kSnapshot;
  uint64_t block = head;
  // Every region's pages must fit the store once (define_region/resize_region enforce it),
  // which also bounds the memory a forged size could make us allocate.
  uint64_t alive_pages = 0;
  for (const Region& r : *regions)
    if (r.alive) alive_pages += r.pages.size();
  bool next_id_seen = false;
  auto bad = [&](const char* w) {
    *why = w;
    return -EUCLEAN;
  };
  for (uint32_t index = 0;; index++) {
    if (index > total_) return bad("metadata record loops");
    MetaHeader h;
    int rc = read_meta(block, b.data(), &h, why);
    if (rc) return rc;
    if (h.epoch != epoch || h.kind != kind || h.index != index)
      return bad("metadata block of another epoch or record");
    if (index == 0) *prev = h.prev_record;
    chain->meta.push_back(block);
    info.meta_blocks++;
    const uint8_t* slot = b.data() + sizeof(MetaHeader);
    for (uint32_t i = 0; i < h.nslots; i++, slot += kSlot) {
      uint16_t type;
      std::memcpy(&type, slot, 2);
      if (type == kRegionEntry) {
        RegionEntry e;
        std::memcpy(&e, slot, sizeof(e));
        const uint32_t name_slots = (e.name_len + kSlot - 1) / kSlot;
        if (e.name_len == 0 || e.name_len > kMaxName || i + name_slots >= h.nslots ||
            e.size == 0 || e.size % kBlockSize || e.size > kMaxRegionBytes || e.region == 0 ||
            e.region > max_region_id() || e.epoch == 0 || e.epoch > epoch)
          return bad("invalid region entry");
        std::string name(reinterpret_cast<const char*>(slot + kSlot), e.name_len);
        if (name.find('\0') != std::string::npos) return bad("invalid region name");
        i += name_slots;
        slot += kSlot * name_slots;
        info.regions++;
        if (e.region < chain->next_id) {  // known: only a repeat of the same definition
          if (e.region > regions->size()) return bad("region id below the next-id entry");
          const Region& r = (*regions)[e.region - 1];
          if (!r.alive || r.name != name || r.size != e.size || r.epoch != e.epoch)
            return bad("region redefined differently");
          continue;
        }
        // New ids increase; holes (removed ids) only in a store with region changes.
        if (next_id_seen || (!changes && e.region != chain->next_id))
          return bad("region ids not dense");
        const uint64_t pages = e.size / kBlockSize;
        if (alive_pages + pages > total_) return bad("regions larger than the store");
        alive_pages += pages;
        while (regions->size() + 1 < e.region) {
          Region hole;
          hole.id = static_cast<uint32_t>(regions->size() + 1);
          hole.alive = false;
          regions->push_back(std::move(hole));
        }
        Region r;
        r.name = std::move(name);
        r.size = r.cur = e.size;
        r.id = e.region;
        r.epoch = e.epoch;
        r.pages.resize(pages);
        r.keep = pages;
        regions->push_back(std::move(r));
        chain->next_id = e.region + 1;
      } else if (type == kPageEntry) {
        PageEntry e;
        std::memcpy(&e, slot, sizeof(e));
        if (e.region == 0 || e.region > regions->size() || !(*regions)[e.region - 1].alive ||
            e.page >= (*regions)[e.region - 1].pages.size() || e.block < kFirstDataBlock ||
            e.block >= (1ull << 48))
          return bad("invalid page entry");
        (*regions)[e.region - 1].pages[e.page] = PageRef{e.block, e.hash};
        info.pages++;
      } else if (changes && (type == kResizeEntry || type == kRemoveEntry)) {
        RegionChangeEntry e;
        std::memcpy(&e, slot, sizeof(e));
        if (kind != kDelta || e.reserved || e.reserved2 || e.region == 0 ||
            e.region > regions->size() || !(*regions)[e.region - 1].alive)
          return bad("invalid region change entry");
        Region& r = (*regions)[e.region - 1];
        if (type == kRemoveEntry) {
          if (e.size || e.keep) return bad("invalid region remove entry");
          info.removed++;
          alive_pages -= r.pages.size();
          r.alive = false;
          r.name.clear();
          std::vector<PageRef>().swap(r.pages);
        } else {
          if (e.size == 0 || e.size % kBlockSize || e.size > kMaxRegionBytes ||
              e.keep % kBlockSize || e.keep > std::min(e.size, r.size))
            return bad("invalid region resize entry");
          const uint64_t pages = e.size / kBlockSize;
          if (alive_pages - r.pages.size() + pages > total_)
            return bad("regions larger than the store");
          alive_pages = alive_pages - r.pages.size() + pages;
          info.resized++;
          r.pages.resize(e.keep / kBlockSize);
          r.pages.resize(pages);
          r.size = r.cur = e.size;
          r.keep = pages;
        }
      } else if (changes && type == kNextIdEntry) {
        RegionChangeEntry e;
        std::memcpy(&e, slot, sizeof(e));
        if (kind != kSnapshot || next_id_seen || e.reserved || e.reserved2 || e.size || e.keep ||
            e.region < chain->next_id || e.region > max_region_id() + 1)
          return bad("invalid next-id entry");
        chain->next_id = e.region;
        next_id_seen = true;
      } else {
        return bad("unknown metadata entry");
      }
    }
    if (h.next == 0) break;
    block = h.next;
  }
  chain->records.push_back(info);
  if (kind == kDelta) chain->delta_meta += info.meta_blocks;
  return 0;
}

int StoreImpl::load_chain(const EpochRef& ref, Chain* chain, std::vector<Region>* regions,
                          std::string* why) try {
  chain->ref = ref;
  chain->next_id = 1;
  chain->meta.clear();
  chain->records.clear();
  chain->delta_meta = 0;
  regions->clear();
  if (ref.epoch == 0 || ref.snap_epoch == 0 || ref.snap_epoch > ref.epoch ||
      (ref.delta_head == 0) != (ref.snap_epoch == ref.epoch) ||
      ref.chain_records > kMaxChainRecords) {
    *why = "epoch reference inconsistent";
    return -EUCLEAN;
  }
  // Delta heads, newest first, found through prev_record; each record is read once below.
  std::vector<std::pair<uint64_t, uint64_t>> deltas;  // (head, epoch)
  {
    Block b;
    uint64_t head = ref.delta_head, epoch = ref.epoch;
    while (head != 0) {
      if (deltas.size() >= ref.chain_records) {
        *why = "delta chain longer than recorded";
        return -EUCLEAN;
      }
      MetaHeader h;
      int r = read_meta(head, b.data(), &h, why);
      if (r) return r;
      if (h.kind != kDelta || h.index != 0 || h.epoch <= ref.snap_epoch || h.epoch > epoch ||
          (!deltas.empty() && h.epoch >= deltas.back().second)) {
        *why = "delta chain out of order";
        return -EUCLEAN;
      }
      if (deltas.empty() && h.epoch != ref.epoch) {
        *why = "newest delta is not the epoch's";
        return -EUCLEAN;
      }
      deltas.emplace_back(head, h.epoch);
      epoch = h.epoch;
      head = h.prev_record;
    }
    if (deltas.size() != ref.chain_records) {
      *why = "delta chain shorter than recorded";
      return -EUCLEAN;
    }
  }
  uint64_t prev = 0;
  int r = load_record(ref.snap_head, ref.snap_epoch, kSnapshot, chain, regions, &prev, why);
  if (r) return r;
  for (auto it = deltas.rbegin(); it != deltas.rend(); ++it) {
    r = load_record(it->first, it->second, kDelta, chain, regions, &prev, why);
    if (r) return r;
  }
  uint64_t npages = 0, nregions = 0;
  std::unordered_set<std::string_view> names;
  for (const Region& reg : *regions) {
    if (!reg.alive) continue;
    nregions++;
    if (!names.insert(reg.name).second) {
      *why = "two regions with one name";
      return -EUCLEAN;
    }
    for (const PageRef& p : reg.pages) npages += p.block != 0;
  }
  if (nregions != ref.nregions || npages != ref.npages || chain->meta.size() != ref.meta_blocks) {
    *why = "epoch totals do not match its records";
    return -EUCLEAN;
  }
  return 0;
} catch (const std::bad_alloc&) {
  *why = "out of memory";
  return -ENOMEM;
}

void StoreImpl::rebuild_used() {
  used_.assign((total_ + 63) / 64, 0);
  nused_ = 0;
  hwm_ = kFirstDataBlock;
  for (uint64_t b = 0; b < kFirstDataBlock; b++) mark(b);
  for (uint64_t b : live_.meta) mark(b);
  for (uint64_t b : ret_.meta) mark(b);
  for (const Region& r : regions_)
    for (const PageRef& p : r.pages) mark(p.block);
  for (const auto& [k, ref] : undo_) mark(ref.block);
  if (txn_) {
    for (uint64_t b : txn_->allocated_) mark(b);
  }
}

// ---------------------------------------------------------------------------------------------
// allocation

int StoreImpl::grow_blocks(uint64_t want_total, bool exact) {
  if (!m_->growable()) return -ENOSPC;
  // Grow by a quarter at least, so a growing store does not call fallocate per page.
  uint64_t n = exact ? want_total : std::max({want_total, total_ + total_ / 4, total_ + 256});
  int r = m_->grow(n * kBlockSize);
  if (r) return r;
  total_ = m_->size() / kBlockSize;
  used_.resize((total_ + 63) / 64, 0);
  return 0;
}

// Blocks below the high-water mark first, next fit among them from the cursor (consecutive
// allocations get consecutive blocks where the free space allows, which the writers merge into
// larger I/O); a block above it only when none is free below. So a store stays as compact as
// its two epochs: a checkpoint of a few pages in a big region reuses the blocks the commit
// before last freed instead of walking through the whole store, whose untouched part costs
// more to write (a file's unwritten extents are converted, and journalled, at the next fsync;
// a fresh DAX page may fault in the host).
int StoreImpl::alloc(uint64_t* out) {
  for (int pass = 0; pass < 2; pass++) {
    if (nused_ < hwm_) {  // a free block below the mark: a word at a time from the cursor
      for (int wrap = 0; wrap < 2; wrap++) {
        uint64_t b = wrap ? kFirstDataBlock : std::max<uint64_t>(cursor_, kFirstDataBlock);
        while (b < hwm_) {
          uint64_t w = used_[b >> 6] | ((1ull << (b & 63)) - 1);
          if (w == ~0ull) {
            b = (b | 63) + 1;
            continue;
          }
          b = (b & ~63ull) + static_cast<uint64_t>(__builtin_ctzll(~w));
          if (b >= hwm_) break;
          mark(b);
          cursor_ = b + 1;
          *out = b;
          return 0;
        }
      }
    }
    if (hwm_ < total_) {
      const uint64_t b = hwm_;
      mark(b);
      cursor_ = b + 1;
      *out = b;
      return 0;
    }
    if (pass == 0) {
      int r = grow_blocks(total_ + 1);
      if (r) return r;
    }
  }
  return -ENOSPC;
}

// ---------------------------------------------------------------------------------------------
// regions and transactions

std::vector<RegionInfo> StoreImpl::regions() const {
  std::vector<RegionInfo> v;
  for (const Region& r : regions_)
    if (visible(r)) v.push_back({r.name, r.cur, r.id});
  return v;
}

// Room for one full copy of every visible region (with `except` at `size` instead, or a new
// region of `size` when except is null) plus its metadata; copy-on-write needs more as pages
// change, which a growing store adds on demand and a fixed one reports at commit.
uint64_t StoreImpl::room_for(uint64_t pages, uint64_t nregions) {
  uint64_t meta = 2 * ((pages + nregions * 9 + 9) / kSlotsPerBlock + 1);
  return kFirstDataBlock + pages + meta;
}

int StoreImpl::make_room(uint64_t size, const Region* except, std::string_view name) {
  uint64_t sum = size / kBlockSize, n = 1;
  for (const Region& r : regions_)
    if (visible(r) && &r != except) {
      sum += r.cur / kBlockSize;
      n++;
    }
  uint64_t need = room_for(sum, n);
  if (need > total_ && grow_blocks(need) != 0)
    return set_err(-ENOSPC, "store too small for region '" + std::string(name) + "' (" +
                                std::to_string(need * kBlockSize) + " bytes needed, " +
                                std::to_string(total_ * kBlockSize) + " available)");
  return 0;
}

// One exact growth for a layout the caller is about to define: the quarter steps of make_room
// would leave up to a quarter of the store unused (a 64 MiB process dumped into a new store
// made an 85 MB file, every page of it allocated by fallocate on tmpfs).
int StoreImpl::reserve(uint64_t bytes, uint64_t nregions) {
  if (opts_.no_modify) return set_err(-EROFS, "the store is open read-only");
  if (bytes % kBlockSize || bytes / kBlockSize > (1ull << 44) || nregions > (1ull << 32))
    return set_err(-EINVAL, "reserve: size not a multiple of 4096, or too large");
  const uint64_t need = room_for(bytes / kBlockSize, nregions);
  if (need <= total_) return 0;
  if (grow_blocks(need, true) != 0)
    return set_err(-ENOSPC, "store too small for " + std::to_string(bytes) + " bytes in " +
                                std::to_string(nregions) + " regions (" +
                                std::to_string(need * kBlockSize) + " bytes needed, " +
                                std::to_string(total_ * kBlockSize) + " available)");
  return 0;
}

int StoreImpl::define_region(std::string_view name, uint64_t size, uint32_t* id) try {
  if (opts_.no_modify) return set_err(-EROFS, "the store is open read-only");
  if (name.empty() || name.size() > kMaxName || name.find('\0') != std::string_view::npos)
    return set_err(-EINVAL, "region name must be 1..255 bytes without NUL");
  auto it = by_name_.find(std::string(name));
  if (it != by_name_.end()) {
    const Region& r = regions_[it->second - 1];
    if (r.cur != size)
      return set_err(-EINVAL, "region '" + r.name + "' has size " + std::to_string(r.cur) +
                                  " in the store, not " + std::to_string(size));
    if (id) *id = r.id;
    return 0;
  }
  if (size == 0 || size % kBlockSize || size > kMaxRegionBytes)
    return set_err(-EINVAL, "region size must be a non-zero multiple of 4096, at most 64 TiB");
  if (next_id_ > max_region_id())
    return set_err(-ENOSPC, "region ids exhausted: " + std::to_string(max_region_id()) +
                                " for a store of " + std::to_string(total_) + " blocks");
  int rc = make_room(size, nullptr, name);
  if (rc) return rc;
  while (regions_.size() + 1 < next_id_) {  // ids of regions removed before they were known
    Region hole;
    hole.id = static_cast<uint32_t>(regions_.size() + 1);
    hole.alive = false;
    regions_.push_back(std::move(hole));
  }
  Region r;
  r.name = std::string(name);
  r.size = r.cur = size;
  r.id = next_id_++;
  r.pages.resize(size / kBlockSize);
  r.keep = r.pages.size();
  regions_.push_back(std::move(r));
  by_name_[regions_.back().name] = regions_.back().id;
  if (id) *id = regions_.back().id;
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int StoreImpl::resize_region(uint32_t id, uint64_t size) try {
  if (opts_.no_modify) return set_err(-EROFS, "the store is open read-only");
  if (txn_) return set_err(-EBUSY, "resize_region: a checkpoint is in progress");
  Region* r = find_visible(id);
  if (!r) return set_err(-ENOENT, "resize_region: no region " + std::to_string(id));
  if (size == 0 || size % kBlockSize || size > kMaxRegionBytes)
    return set_err(-EINVAL, "region size must be a non-zero multiple of 4096, at most 64 TiB");
  if (size > r->cur) {
    int rc = make_room(size, r, r->name);
    if (rc) return rc;
  }
  const uint64_t pages = size / kBlockSize;
  if (r->epoch == 0) {  // not committed yet: only the definition changes
    r->pages.resize(pages);
    r->size = size;
    r->keep = pages;
  } else {
    // The read epoch's map stays as it is until the commit (its blocks are referenced by the
    // committed epoch); the view drops what lies beyond the smallest size since.
    r->keep = std::min(r->keep, pages);
  }
  r->cur = size;
  r->pending.clear();
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int StoreImpl::remove_region(uint32_t id) {
  if (opts_.no_modify) return set_err(-EROFS, "the store is open read-only");
  if (txn_) return set_err(-EBUSY, "remove_region: a checkpoint is in progress");
  Region* r = find_visible(id);
  if (!r) return set_err(-ENOENT, "remove_region: no region " + std::to_string(id));
  by_name_.erase(r->name);
  r->pending.clear();
  if (r->epoch == 0) {  // never committed: nothing on the medium refers to it
    r->alive = false;
    std::vector<PageRef>().swap(r->pages);
  } else {
    r->removing = true;  // its blocks stay referenced by the read epoch until the commit
  }
  return 0;
}

int StoreImpl::begin(std::unique_ptr<Txn>* out) {
  if (opts_.no_modify) return set_err(-EROFS, "the store is open read-only");
  if (broken_) return set_err(-EIO, "an earlier commit failed midway: reopen the store");
  if (txn_) return set_err(-EBUSY, "a checkpoint is already in progress");
  auto t = std::make_unique<TxnImpl>(this);
  txn_ = t.get();
  *out = std::move(t);
  return 0;
}

TxnImpl::~TxnImpl() {
  if (!done_) s_->abort(this);
}

int TxnImpl::put_page(uint32_t region, uint64_t page, const void* data) {
  return put_pages(region, page, data, 1);
}

// Pages go in chunks: each chunk's pages are hashed and given blocks (consecutive where the
// store has room), then written as one medium write per run of consecutive blocks. A chunk is
// small enough to be hashed and copied while its source is still in the L2 cache.
int TxnImpl::put_pages(uint32_t region, uint64_t first, const void* src, uint64_t n) try {
  if (done_) return -EINVAL;
  if (err_) return err_;
  if (s_->broken_) return -EIO;
  if (n == 0) return 0;
  Region* rp = s_->find_visible(region);
  const uint64_t npg = rp ? rp->cur / kBlockSize : 0;
  if (!rp || !src || first >= npg || n > npg - first)
    return s_->set_err(-EINVAL, n == 1 ? "put_page: no such region or page"
                                       : "put_pages: no such region, or pages out of range");
  if (pages_.size() + n >= UINT32_MAX - 1)
    return s_->set_err(-E2BIG, "more than 4G pages in one checkpoint");
  Region& reg = *rp;
  // Sized to the view; resize_region (never inside a checkpoint) clears it.
  if (reg.pending.size() != npg) reg.pending.assign(npg, 0);
  const auto* data = static_cast<const uint8_t*>(src);
  constexpr uint64_t kChunk = 16;
  uint64_t block[kChunk];
  // A run of 1 MiB or more is written from the caller's memory (no staging copy; the I/O of one
  // chunk overlaps the checksums of the next) and settled before returning. A shorter run (and
  // put_page) is copied by the medium, whose staging holds 1 MiB: so a caller never waits for
  // the I/O more often than the staging would make it, whatever the lengths of its runs.
  const bool nocopy = n >= 256;
  for (uint64_t c = 0; c < n; c += kChunk) {
    const uint64_t m = std::min(kChunk, n - c);
    uint64_t placed = 0;
    int r = 0;
    for (; placed < m; placed++) {
      const uint64_t page = first + c + placed;
      const uint32_t ix = reg.pending[page];
      PageRef ref;
      ref.hash = page_hash(data + (c + placed) * kBlockSize, s_->key_, region, page);
      if (ix) {
        ref.block = pages_[ix - 1].ref.block;  // written twice: the block is still ours
        pages_[ix - 1].ref = ref;
      } else {
        r = s_->alloc(&ref.block);
        if (r) break;
        allocated_.push_back(ref.block);
        pages_.push_back({region, page, ref});
        reg.pending[page] = static_cast<uint32_t>(pages_.size());
      }
      block[placed] = ref.block;
    }
    // The placed pages are staged even when a later one found no block (as put_page by put_page
    // would have them); a failed write or a full store fails the commit either way (err_).
    // The medium may read the source until settle(), which every return below passes through.
    int w = 0;
    for (uint64_t i = 0; i < placed && !w;) {
      uint64_t j = i + 1;
      while (j < placed && block[j] == block[j - 1] + 1) j++;
      const uint64_t off = block[i] * kBlockSize, len = (j - i) * kBlockSize;
      w = nocopy ? s_->m_->write_nocopy(off, data + (c + i) * kBlockSize, len)
                 : s_->m_->write(off, data + (c + i) * kBlockSize, len);
      i = j;
    }
    if (w || r) {
      const int sr = nocopy ? s_->m_->settle() : 0;
      err_ = w ? w : sr ? sr : r;
      return s_->set_err(err_, w || sr ? "writing a page failed"
                                       : "store full: no free block for page " +
                                             std::to_string(first + c + placed));
    }
  }
  if (int w = nocopy ? s_->m_->settle() : 0) {
    err_ = w;
    return s_->set_err(w, "writing a page failed");
  }
  return 0;
} catch (const std::bad_alloc&) {
  s_->m_->settle();  // the source must not be read after we return
  err_ = -ENOMEM;
  return -ENOMEM;
}

int TxnImpl::commit() {
  if (done_) return -EINVAL;
  int r = err_ ? err_ : s_->commit(this);
  if (r) s_->abort(this);
  done_ = true;
  return r;
}

void StoreImpl::abort(TxnImpl* t) {
  if (txn_ != t) return;
  clear_pending(t);
  for (uint64_t b : t->allocated_) unmark(b);
  t->allocated_.clear();
  t->done_ = true;
  txn_ = nullptr;
}

// Before the first commit that writes 1.1 region changes: set kIncompatRegionChange in both
// superblock copies, one at a time behind a barrier each, so a 1.0 reader refuses the store
// (-EPROTO) instead of misreading it. A crash before the commit record leaves a store with the
// bit and no change yet, which is harmless.
int StoreImpl::enable_region_changes() {
  if (sb_.incompat & kIncompatRegionChange) return 0;
  const SuperBlock old = sb_;
  sb_.incompat |= kIncompatRegionChange;
  sb_.minor = std::max(sb_.minor, kFormatMinor);
  seal_super(&sb_);
  Block b;
  std::memcpy(b.data(), &sb_, sizeof(sb_));
  int r = 0;
  for (int i = 0; i < 2 && !r; i++) {
    r = m_->write(kSuperBlock[i] * kBlockSize, b.data(), kBlockSize);
    if (!r) r = m_->barrier();
  }
  if (r) {
    sb_ = old;  // try again at the next commit; a copy that landed only adds the bit
    return set_err(r, "rewriting the superblock for region changes failed");
  }
  return 0;
}

// One commit record: `live`, with `retained` behind it, into slot epoch % 2, followed by the
// committing program (1.2) and, with a key, its MAC; then a barrier.
int StoreImpl::write_record(uint64_t epoch, const EpochRef& live, const EpochRef& retained) {
  CommitRecord cr{};
  cr.magic = kCommitMagic;
  std::memcpy(cr.uuid, sb_.uuid, 16);
  cr.epoch = epoch;
  cr.total_blocks = total_;
  cr.live = live;
  cr.retained = retained;
  Block buf;
  // 1.2: the committing program after the record, its checksum in the record.
  const Provenance& me = self_provenance();
  {
    ProvenanceHeader ph{};
    ph.magic = kProvMagic;
    ph.version = 1;
    ph.path_len = static_cast<uint16_t>(std::min<size_t>(me.exe.size(), kMaxProvPath));
    for (size_t k = 0; k + 1 < me.build_id.size() && k / 2 < kMaxBuildId; k += 2)
      ph.build_id[ph.build_id_len++] =
          static_cast<uint8_t>(std::stoi(me.build_id.substr(k, 2), nullptr, 16));
    std::memcpy(buf.data() + kProvOffset, &ph, sizeof(ph));
    std::memcpy(buf.data() + kProvOffset + sizeof(ph), me.exe.data(), ph.path_len);
    cr.tail_csum = tail_csum(buf.data());
  }
  if (!opts_.mac_key.empty()) {
    std::memcpy(buf.data(), &cr, sizeof(cr));
    std::string w;
    if (int e = commit_mac(opts_.mac_key, buf.data(), cr.mac, &w); e != 0) return set_err(e, w);
  }
  seal_commit(&cr);
  std::memcpy(buf.data(), &cr, sizeof(cr));
  int r = m_->write(kCommitBlock[epoch % 2] * kBlockSize, buf.data(), kBlockSize);
  return r ? r : m_->barrier();
}

// Going back: after select_epoch(B) with B older than the newest record on the medium (N), the
// next commit is B+1, in slot (B+1) % 2. A crash at any instant of it must leave N (whose
// retained epoch is B), B, or B+1, each with a retained epoch whose blocks are intact:
//  - N in the slot of B+1 (N - B odd, e.g. N = B+1): while the record of B+1 overwrites N's,
//    the other slot's record decides. It may be B's own, whose retained epoch B-1 is no longer
//    protected; so B's record without a retained epoch is written there first (until the
//    record of B+1 lands, N's record is whole and newest);
//  - N in the other slot (N - B even, after an earlier fallback): B+1 < N, so the record of
//    B+1 would lose; once it is durable, N's record is zeroed behind a barrier (supersede_after).
int StoreImpl::supersede_before(uint64_t epoch) {
  if (on_medium_ % 2 != epoch % 2) return 0;
  // B's record without a retained epoch, into slot B % 2, durable (with the pages written so
  // far) before anything else: one more barrier, paid by the first commit after going back.
  const uint64_t base = epoch - 1;
  int r = write_record(base, live_.ref, EpochRef{});
  if (r) return set_err(r, "rewriting the record of epoch " + std::to_string(base) + " failed");
  return 0;
}

int StoreImpl::supersede_after(uint64_t epoch) {
  if (on_medium_ % 2 == epoch % 2) return 0;
  Block zero;
  int r = m_->write(kCommitBlock[on_medium_ % 2] * kBlockSize, zero.data(), kBlockSize);
  return r ? r : m_->barrier();
}

// The commit protocol (Documentation/store-format.md, "Commit").
int StoreImpl::commit(TxnImpl* t) try {
  if (broken_) return set_err(-EIO, "an earlier commit failed midway: reopen the store");
  const uint64_t epoch = committed_ + 1;
  // The reader accepts chains of up to kMaxChainRecords records, whatever the options.
  const uint64_t max_chain =
      opts_.snapshot_every ? std::min<uint64_t>(opts_.snapshot_every, kMaxChainRecords)
                           : kMaxChainRecords;
  const bool snapshot = live_.ref.epoch == 0 || live_.ref.chain_records + 1 > max_chain ||
                        live_.delta_meta + 1 > std::max<uint64_t>(16, live_.ref.meta_blocks -
                                                                          live_.delta_meta);

  // Entries: region changes and definitions first (a snapshot repeats every definition), then
  // pages, packed into block payloads as they come (an entry never straddles two blocks).
  struct Payload {
    std::vector<uint8_t> bytes;
    uint32_t nslots = 0;
  };
  std::vector<Payload> blocks;
  uint64_t n_region_entries = 0, n_page_entries = 0;
  bool changes = false;  // entries a 1.0 reader cannot read
  auto slot_for = [&](size_t n) -> uint8_t* {
    if (blocks.empty() || blocks.back().nslots + n > kSlotsPerBlock) {
      blocks.emplace_back();
      blocks.back().bytes.assign(kSlotsPerBlock * kSlot, 0);
    }
    Payload& b = blocks.back();
    uint8_t* at = b.bytes.data() + size_t(b.nslots) * kSlot;
    b.nslots += static_cast<uint32_t>(n);
    return at;
  };
  uint32_t last_id = snapshot ? 0 : live_.next_id - 1;  // the reader's next id, less one
  auto add_region = [&](const Region& r) {
    RegionEntry re{};
    re.type = kRegionEntry;
    re.name_len = static_cast<uint16_t>(r.name.size());
    re.region = r.id;
    re.size = r.cur;
    re.epoch = r.epoch ? r.epoch : epoch;
    uint8_t* at = slot_for(1 + (r.name.size() + kSlot - 1) / kSlot);
    std::memcpy(at, &re, sizeof(re));
    std::memcpy(at + kSlot, r.name.data(), r.name.size());
    n_region_entries++;
    changes |= r.id != last_id + 1;  // a hole: ids a 1.0 reader takes for damage
    last_id = r.id;
  };
  uint64_t n_resized = 0, n_removed = 0;
  auto add_change = [&](uint16_t type, uint32_t region, uint64_t size, uint64_t keep) {
    n_resized += type == kResizeEntry;
    n_removed += type == kRemoveEntry;
    RegionChangeEntry ce{type, 0, region, size, keep, 0};
    std::memcpy(slot_for(1), &ce, sizeof(ce));
    changes = true;
  };
  auto add_page = [&](uint32_t region, uint64_t page, const PageRef& ref) {
    PageEntry pe{kPageEntry, 0, region, page, ref.block, ref.hash};
    std::memcpy(slot_for(1), &pe, sizeof(pe));
    n_page_entries++;
  };
  // Pages mapped as of the new epoch: the read epoch's count, less the pages a removal or a
  // shrink drops, plus pages written where the view has none (O(dirty + dropped); the
  // snapshot below is the only O(mapped) step, amortised by the policy).
  uint64_t npages = live_.ref.npages, nregions = 0;
  for (const Region& r : regions_) {
    if (!in_read(r)) continue;
    const uint64_t from = r.removing ? 0 : r.keep;
    if (r.removing || resized(r))
      for (uint64_t p = from; p < r.pages.size(); p++) npages -= r.pages[p].block != 0;
  }
  for (const auto& pg : t->pages_) {
    const Region& r = regions_[pg.region - 1];
    npages += pg.page >= r.keep || r.pages[pg.page].block == 0;
  }
  if (!snapshot) {
    for (const Region& r : regions_)
      if (in_read(r) && r.removing) add_change(kRemoveEntry, r.id, 0, 0);
    for (const Region& r : regions_)
      if (resized(r)) add_change(kResizeEntry, r.id, r.cur, r.keep * kBlockSize);
  }
  for (const Region& r : regions_)
    if (visible(r)) {
      nregions++;
      if (snapshot || r.epoch == 0) add_region(r);
    }
  if (snapshot && next_id_ != last_id + 1) add_change(kNextIdEntry, next_id_, 0, 0);
  if (snapshot) {
    for (const Region& r : regions_) {
      if (!visible(r)) continue;
      const uint64_t n = r.cur / kBlockSize;
      for (uint64_t p = 0; p < n; p++) {
        const uint32_t ix = p < r.pending.size() ? r.pending[p] : 0;
        const PageRef* ref = ix ? &t->pages_[ix - 1].ref : p < r.keep ? &r.pages[p] : nullptr;
        if (ref && ref->block) add_page(r.id, p, *ref);
      }
    }
  } else {
    for (const auto& pg : t->pages_) add_page(pg.region, pg.page, pg.ref);
  }
  if (blocks.empty()) slot_for(0);  // an empty epoch still has its (empty) record
  if (changes) {
    int r = enable_region_changes();
    if (r) return r;
  }

  std::vector<uint64_t> where(blocks.size());
  for (auto& b : where) {
    int r = alloc(&b);
    if (r) return set_err(r, "store full: no room for the checkpoint's metadata");
    t->allocated_.push_back(b);
  }
  Block buf;
  for (size_t i = 0; i < blocks.size(); i++) {
    MetaHeader h{};
    h.magic = kMetaMagic;
    h.store_key = key_;
    h.epoch = epoch;
    h.kind = snapshot ? kSnapshot : kDelta;
    h.nslots = blocks[i].nslots;
    h.next = i + 1 < blocks.size() ? where[i + 1] : 0;
    h.prev_record = (i == 0 && !snapshot) ? live_.ref.delta_head : 0;
    h.index = static_cast<uint32_t>(i);
    std::memcpy(buf.data(), &h, sizeof(h));
    std::memcpy(buf.data() + sizeof(h), blocks[i].bytes.data(), blocks[i].bytes.size());
    seal_meta(buf.data());
    int r = m_->write(where[i] * kBlockSize, buf.data(), kBlockSize);
    if (r) return set_err(r, "writing checkpoint metadata failed");
  }
  // Going back to an older epoch: the record of the epoch this one builds on, without its
  // retained epoch, goes in the other slot before the barrier (supersede_before).
  if (on_medium_ > committed_) {
    int r = supersede_before(epoch);
    if (r) return r;
  }
  // Durability point 1: pages and metadata on the medium before anything points at them.
  int r = m_->barrier();
  if (r) return set_err(r, "flushing the checkpoint failed");

  EpochRef l{};
  l.epoch = epoch;
  l.snap_epoch = snapshot ? epoch : live_.ref.snap_epoch;
  l.snap_head = snapshot ? where[0] : live_.ref.snap_head;
  l.delta_head = snapshot ? 0 : where[0];
  l.chain_records = snapshot ? 0 : live_.ref.chain_records + 1;
  l.meta_blocks = (snapshot ? 0 : live_.meta.size()) + where.size();
  l.nregions = nregions;
  l.npages = npages;
  // Durability point 2: the record. A torn record fails its checksum and the other slot (the
  // previous epoch) is live; once the barrier returns, this epoch is.
  r = write_record(epoch, l, live_.ref);
  if (!r && on_medium_ > committed_) r = supersede_after(epoch);
  if (r) {
    broken_ = true;  // the record may or may not have reached the medium
    return set_err(r, "writing the commit record failed; reopen the store");
  }
  const Provenance& me = self_provenance();

  // In memory: the old retained epoch's own blocks become free; the read epoch becomes the
  // retained one, and undo_ holds its refs wherever the new epoch differs: pages written now,
  // and pages dropped by a removal or a shrink (kept until the next commit, so the retained
  // epoch still restores exactly).
  std::vector<uint64_t> freed;
  for (const auto& [k, ref] : undo_)
    if (ref.block) freed.push_back(ref.block);
  // The old retained epoch's metadata blocks that the read epoch (the new retained one) does
  // not share. The read epoch was built on the retained one, so while both start from the same
  // snapshot the retained chain is a prefix of the read epoch's and nothing is freed: one
  // compare instead of a set of the whole chain, whose snapshot part is O(mapped pages / 126).
  const auto& rm = ret_.meta;
  const auto& lm = live_.meta;
  if (rm.size() > lm.size() || !std::equal(rm.begin(), rm.end(), lm.begin())) {
    std::unordered_set<uint64_t> live_meta(lm.begin(), lm.end());
    for (uint64_t b : rm)
      if (!live_meta.count(b)) freed.push_back(b);
  }
  Undo undo;
  undo.reserve(t->pages_.size());
  for (const auto& pg : t->pages_) {
    const Region& reg = regions_[pg.region - 1];
    undo.add(page_key(pg.region, pg.page),
             pg.page < reg.pages.size() ? reg.pages[pg.page] : PageRef{});
  }
  for (Region& reg : regions_) {
    if (!in_read(reg) || !(reg.removing || resized(reg))) continue;
    for (uint64_t p = reg.removing ? 0 : reg.keep; p < reg.pages.size(); p++) {
      const bool rewritten = p < reg.pending.size() && reg.pending[p];
      if (reg.pages[p].block && !rewritten) undo.add(page_key(reg.id, p), reg.pages[p]);
    }
  }
  undo.finish();
  for (Region& reg : regions_) {
    reg.ret_size = in_read(reg) ? reg.size : 0;
    if (reg.removing) {
      reg.alive = reg.removing = false;
      std::vector<PageRef>().swap(reg.pages);
      std::vector<uint32_t>().swap(reg.pending);
      continue;  // the name stays: a fallback to the retained epoch brings the region back
    }
    if (!reg.alive) continue;
    if (resized(reg)) {
      reg.pages.resize(reg.keep);
      reg.pages.resize(reg.cur / kBlockSize);
    }
    reg.size = reg.cur;
    reg.keep = reg.pages.size();
    if (reg.epoch == 0) reg.epoch = epoch;
  }
  for (const auto& pg : t->pages_) regions_[pg.region - 1].pages[pg.page] = pg.ref;
  clear_pending(t);
  Chain next;
  next.ref = l;
  next.next_id = next_id_;
  if (!snapshot) {
    next.meta = live_.meta;
    next.records = live_.records;
    next.delta_meta = live_.delta_meta + where.size();
  }
  next.meta.insert(next.meta.end(), where.begin(), where.end());
  EpochInfo info;
  info.epoch = epoch;
  info.snapshot = snapshot;
  info.meta_blocks = where.size();
  info.pages = n_page_entries;
  info.regions = n_region_entries;
  info.resized = n_resized;
  info.removed = n_removed;
  next.records.push_back(info);
  ret_ = std::move(live_);
  live_ = std::move(next);
  undo_ = std::move(undo);
  committed_ = on_medium_ = epoch;
  pinned_ = false;
  prov_ = me;
  t->allocated_.clear();
  txn_ = nullptr;
  if (rebuild_after_commit_) {
    rebuild_after_commit_ = false;
    rebuild_used();
  } else {
    for (uint64_t b : freed) unmark(b);
  }
  err_.clear();
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory during commit");
}

// ---------------------------------------------------------------------------------------------
// reads, fallback, verify

// Through Medium::read even when the medium is mapped: a mapped page that raises SIGBUS
// (poisoned pmem, a truncated file) is read as -EIO there, never hashed in place.
bool StoreImpl::page_ok(const PageRef& ref, uint32_t region, uint64_t page, uint8_t* scratch) {
  if (ref.block == 0) return true;
  if (ref.block >= total_ || m_->read(ref.block * kBlockSize, scratch, kBlockSize) != 0)
    return false;
  return kFuzzing || page_hash(scratch, key_, region, page) == ref.hash;
}

// Read pages [first, first + n) of a region's view into dst, reading runs of consecutive
// blocks at once. Pages the view dropped (at and beyond keep) or never written read as zeros.
// A big read into page-aligned memory is split across threads (the medium's reads of aligned
// blocks may run concurrently, medium.hpp): each part faults its destination pages in, copies
// and checksums them on its own CPU, which is most of a restore's time. The parts report their
// damaged pages in order, as one thread would.
int StoreImpl::read_pages(const Region& r, uint64_t first, uint64_t n, void* dst,
                          std::vector<uint64_t>* damaged, uint64_t* nread) {
  constexpr uint64_t kPartPages = 512;  // 2 MiB: below that a thread costs more than it saves
  constexpr unsigned kMaxParts = 4;
  const uintptr_t at = reinterpret_cast<uintptr_t>(dst);
  unsigned parts = 1;
  if (at % kBlockSize == 0 && n >= 2 * kPartPages) {
    cpu_set_t cpus;
    const int ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    parts = unsigned(std::min<uint64_t>({uint64_t(std::max(ncpu, 1)), kMaxParts, n / kPartPages}));
  }
  if (parts <= 1) return read_part(r, first, n, dst, damaged, nread);

  // Part boundaries on 2 MiB of the destination, so that two threads never fault the same
  // transparent huge page in.
  std::vector<uint64_t> bound(parts + 1, n);
  bound[0] = 0;
  for (unsigned i = 1; i < parts; i++) {
    const uint64_t b = n * i / parts, addr = at + b * kBlockSize;
    bound[i] = std::max(bound[i - 1], b - (addr % (kPartPages * kBlockSize)) / kBlockSize);
  }
  struct Part {
    std::vector<uint64_t> damaged;
    uint64_t nread = 0;
    int rc = 0;
  };
  std::vector<Part> res(parts);
  auto work = [&](unsigned i) {
    try {
      res[i].rc = read_part(r, first + bound[i], bound[i + 1] - bound[i],
                            static_cast<uint8_t*>(dst) + bound[i] * kBlockSize, &res[i].damaged,
                            &res[i].nread);
    } catch (const std::bad_alloc&) {
      res[i].rc = -ENOMEM;
    }
  };
  // The helpers take no asynchronous signal of the caller's process (a handler of the program
  // must not run on them); the synchronous ones stay open, as a fault in the destination must
  // reach the program's handler (a tracker's SIGSEGV) rather than kill the process.
  sigset_t async, old;
  sigfillset(&async);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) sigdelset(&async, sig);
  pthread_sigmask(SIG_BLOCK, &async, &old);
  std::vector<std::thread> threads;
  unsigned inline_from = parts;  // parts no thread could be started for run here
  for (unsigned i = 1; i < parts; i++) {
    try {
      threads.emplace_back(work, i);
    } catch (const std::system_error&) {
      inline_from = i;
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  work(0);
  for (unsigned i = inline_from; i < parts; i++) work(i);
  for (auto& t : threads) t.join();
  for (const Part& p : res) {
    if (p.rc) return p.rc;
    damaged->insert(damaged->end(), p.damaged.begin(), p.damaged.end());
    *nread += p.nread;
  }
  return 0;
}

// One thread's part of read_pages (same contract).
int StoreImpl::read_part(const Region& r, uint64_t first, uint64_t n, void* dst,
                         std::vector<uint64_t>* damaged, uint64_t* nread) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto& pg = r.pages;
  const uint64_t end = first + n, mapped = std::min<uint64_t>(end, r.keep);
  for (uint64_t p = first; p < end;) {
    uint8_t* out = d + (p - first) * kBlockSize;
    if (p >= mapped || pg[p].block == 0) {
      std::memset(out, 0, kBlockSize);
      p++;
      continue;
    }
    // Runs of consecutive blocks are read at once through a file; from a mapping each page is
    // copied and hashed while it is still in L1.
    const uint64_t max_run = m_->mapping() ? 1 : 64;
    uint64_t q = p + 1;
    while (q < mapped && q - p < max_run && pg[q].block == pg[q - 1].block + 1) q++;
    const uint64_t fb = pg[p].block;
    bool ok = fb + (q - p) <= total_ && m_->read(fb * kBlockSize, out, (q - p) * kBlockSize) == 0;
    for (uint64_t i = p; i < q; i++) {
      uint8_t* page = d + (i - first) * kBlockSize;
      if (!ok) {
        // Retry page by page: only the pages past the end or unreadable are damaged.
        if (pg[i].block >= total_ || m_->read(pg[i].block * kBlockSize, page, kBlockSize)) {
          std::memset(page, 0, kBlockSize);
          damaged->push_back(i);
          continue;
        }
      }
      (*nread)++;
      if (!kFuzzing && page_hash(page, key_, r.id, i) != pg[i].hash) damaged->push_back(i);
    }
    p = q;
  }
  return 0;
}

bool StoreImpl::retained_intact(uint8_t* scratch) {
  for (const Region& r : regions_) {
    if (!in_retained(r)) continue;
    for (uint64_t p = 0; p < r.ret_size / kBlockSize; p++)
      if (!page_ok(retained_ref(r, p), r.id, p, scratch)) return false;
  }
  return true;
}

// The retained epoch becomes the read epoch, regions and sizes included: a region the abandoned
// epoch removed comes back, one it resized has its old size again. Changes the caller made
// since (removals, resizes, definitions not committed yet) apply to it at the next commit as
// they would have to the abandoned one, and regions the abandoned epoch defined become
// pending definitions again (the caller holds their ids), unless their name is taken back.
void StoreImpl::switch_to_retained() {
  for (Region& r : regions_) {
    const bool pend_remove = in_read(r) && r.removing, pend_resize = resized(r);
    if (r.ret_size) {
      std::vector<PageRef> pages(r.ret_size / kBlockSize);
      for (uint64_t p = 0; p < pages.size(); p++) pages[p] = retained_ref(r, p);
      r.pages = std::move(pages);
      r.size = r.ret_size;
      r.alive = true;
      r.removing = pend_remove;
      r.keep = pend_resize ? std::min<uint64_t>(r.keep, r.pages.size()) : r.pages.size();
      if (!pend_resize) r.cur = r.size;
    } else if (in_read(r)) {  // defined in the abandoned epoch
      r.epoch = 0;
      r.removing = false;
      r.alive = !pend_remove;
      r.size = r.cur;
      r.pages.assign(r.alive ? r.cur / kBlockSize : 0, PageRef{});
      r.keep = r.pages.size();
    }
    r.ret_size = 0;
    r.pending.clear();
  }
  by_name_.clear();
  for (const Region& r : regions_)
    if (visible(r) && r.epoch != 0) by_name_[r.name] = r.id;
  for (Region& r : regions_) {
    if (!visible(r) || r.epoch != 0) continue;
    if (!by_name_.emplace(r.name, r.id).second) {
      r.alive = false;
      std::vector<PageRef>().swap(r.pages);
    }
  }
  live_ = std::move(ret_);
  ret_ = Chain{};
  undo_.clear();
  fell_back_ = true;
  rebuild_after_commit_ = true;  // the abandoned epoch's blocks stay protected until then
}

// Going back on request (the retained epoch), or staying (the read epoch): either way reads
// stay on it from now on, and an epoch older than the newest committed one becomes the base of
// the next commit, which then supersedes the newer ones (supersede_before/after).
int StoreImpl::select_epoch(uint64_t epoch) try {
  if (txn_) return set_err(-EBUSY, "select_epoch: a checkpoint is in progress");
  if (epoch == 0 || (epoch != live_.ref.epoch && epoch != ret_.ref.epoch))
    return set_err(-ENOENT, "the store does not hold epoch " + std::to_string(epoch) +
                                " intact (it holds " +
                                (live_.ref.epoch ? std::to_string(live_.ref.epoch) : "none") +
                                (ret_.ref.epoch ? " and " + std::to_string(ret_.ref.epoch) : "") +
                                ")");
  if (epoch != live_.ref.epoch) switch_to_retained();
  pinned_ = true;
  committed_ = epoch;
  err_.clear();
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int StoreImpl::read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) {
  ReadReport local;
  if (!report) report = &local;
  const Region* r = find_visible(region);
  if (r && r->epoch != 0 && len != r->cur) {
    *report = ReadReport{};
    return set_err(-EINVAL, "region '" + r->name + "' is " + std::to_string(r->cur) +
                                " bytes in the store, not " + std::to_string(len));
  }
  const uint64_t from = live_.ref.epoch;
  int rc = read_range(region, 0, dst, len, report);
  r = find_visible(region);
  if (rc == 0 && live_.ref.epoch != from && (!r || r->epoch == 0 || r->cur != len))
    return set_err(-EINVAL, "fell back to epoch " + std::to_string(live_.ref.epoch) +
                                ", where this region is " + std::to_string(r->cur) + " bytes");
  return rc;
}

int StoreImpl::read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                          ReadReport* report) try {
  ReadReport local;
  if (!report) report = &local;
  *report = ReadReport{};
  if (live_.ref.epoch == 0) return set_err(-ENOENT, "nothing committed yet");
  report->epoch = live_.ref.epoch;  // also on errors: a caller sees a fallback happened
  const Region* rp = find_visible(region);
  if (!rp || rp->epoch == 0) return set_err(-ENOENT, "no such region in the committed epoch");
  const Region& r = *rp;
  if (offset % kBlockSize || len % kBlockSize || offset > r.cur || len > r.cur - offset ||
      (len && !dst))
    return set_err(-EINVAL, "read of region '" + r.name + "' (" + std::to_string(r.cur) +
                                " bytes) at " + std::to_string(offset) + "+" +
                                std::to_string(len) + ": not page-aligned or out of range");
  report->epoch = live_.ref.epoch;
  int rc = read_pages(r, offset / kBlockSize, len / kBlockSize, dst, &report->damaged,
                      &report->pages_read);
  if (rc) return rc;
  if (report->damaged.empty()) return 0;

  // Damage in the read epoch: fall back to the retained epoch as a whole, never page by page.
  Block scratch;
  if (!pinned_ && ret_.ref.epoch != 0 && retained_intact(scratch.data())) {
    const uint64_t from = live_.ref.epoch;
    switch_to_retained();
    err_ = "epoch " + std::to_string(from) + " damaged; fell back to epoch " +
           std::to_string(live_.ref.epoch);
    std::string note = err_;
    rc = read_range(region, offset, dst, len, report);
    // The older epoch may not have this region, or not this range: -ENOENT or -EINVAL, and
    // report->epoch says why.
    err_ = rc == 0 ? note : note + ": " + err_;
    return rc;
  }
  std::string list;
  for (size_t i = 0; i < report->damaged.size() && i < 8; i++)
    list += (i ? "," : "") + std::to_string(report->damaged[i]);
  return set_err(-EIO, "region '" + r.name + "': " + std::to_string(report->damaged.size()) +
                           " damaged page(s) (" + list +
                           (report->damaged.size() > 8 ? ",..." : "") +
                           ") and no intact older epoch");
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int StoreImpl::verify(VerifyReport* report, const Progress& progress) try {
  VerifyReport local;
  if (!report) report = &local;
  *report = VerifyReport{};
  report->meta_fell_back = meta_fell_back_;
  uint64_t total = 0, done = 0;
  for (const Region& r : regions_)
    if (in_read(r))
      for (const PageRef& p : r.pages) total += p.block != 0;
  for (const auto& [k, ref] : undo_) total += ref.block != 0;
  Block scratch;
  bool live_ok = true, ret_ok = ret_.ref.epoch != 0;
  std::unordered_set<uint64_t> bad_live;
  for (const Region& r : regions_) {
    if (!in_read(r)) continue;
    for (uint64_t p = 0; p < r.pages.size(); p++) {
      if (!r.pages[p].block) continue;
      if (!page_ok(r.pages[p], r.id, p, scratch.data())) {
        live_ok = false;
        bad_live.insert(page_key(r.id, p));
        report->damaged.push_back({r.id, r.name, p, live_.ref.epoch});
      }
      report->pages_checked++;
      if (progress && (++done % 1024) == 0 && !progress(done, total))
        return set_err(-ECANCELED, "verify cancelled");
    }
  }
  if (ret_ok) {
    for (const Region& r : regions_) {
      if (!in_retained(r)) continue;
      for (uint64_t p = 0; p < r.ret_size / kBlockSize; p++) {
        const PageRef* u = undo_.find(page_key(r.id, p));
        if (!u) {  // shared with the read epoch: same block, same verdict
          if (bad_live.count(page_key(r.id, p))) {
            ret_ok = false;
            report->damaged.push_back({r.id, r.name, p, ret_.ref.epoch});
          }
          continue;
        }
        if (!u->block) continue;
        if (!page_ok(*u, r.id, p, scratch.data())) {
          ret_ok = false;
          report->damaged.push_back({r.id, r.name, p, ret_.ref.epoch});
        }
        report->pages_checked++;
        if (progress && (++done % 1024) == 0 && !progress(done, total))
          return set_err(-ECANCELED, "verify cancelled");
      }
    }
  }
  if (progress) progress(total, total);
  report->newest_intact_epoch = live_ok ? live_.ref.epoch : ret_ok ? ret_.ref.epoch : 0;
  if (live_.ref.epoch == 0) report->newest_intact_epoch = 0;
  if (!live_ok)
    return set_err(-EIO, std::to_string(report->damaged.size()) + " damaged page copies");
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int StoreImpl::stat(StoreStat* out) const {
  StoreStat s;
  s.writer = m_->name();
  s.path = info_.path;
  s.uuid = uuid_text(sb_.uuid);
  s.format_major = sb_.major;
  s.format_minor = sb_.minor;
  s.block_size = kBlockSize;
  s.total_blocks = total_;
  s.free_blocks = total_ - nused_;
  for (const Region& r : regions_)
    for (const PageRef& p : r.pages) s.live_data_blocks += p.block != 0;
  for (const auto& [k, ref] : undo_) s.retained_only_blocks += ref.block != 0;
  {
    std::unordered_set<uint64_t> live_meta(live_.meta.begin(), live_.meta.end());
    for (uint64_t b : ret_.meta) s.retained_only_blocks += !live_meta.count(b);
  }
  s.meta_blocks = live_.meta.size();
  s.growable = m_->growable();
  s.epoch = committed_;
  s.read_epoch = live_.ref.epoch;
  s.retained_epoch = ret_.ref.epoch;
  s.chain = live_.records;
  s.provenance = prov_;
  *out = std::move(s);
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

int open_on_medium(std::unique_ptr<Medium> medium, const MediumInfo& info, const Options& opts,
                   std::unique_ptr<Store>* out) try {
  auto s = std::make_unique<StoreImpl>(std::move(medium), info, opts);
  std::string why;
  int r = s->open_or_format(&why);
  if (r) {
    if (opts.why) *opts.why = info.path + ": " + why;
    return r;
  }
  *out = std::move(s);
  return 0;
} catch (const std::bad_alloc&) {
  if (opts.why) *opts.why = "out of memory";
  return -ENOMEM;
}

int Store::open(const std::string& path, const Options& opts, std::unique_ptr<Store>* out) {
  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  int r = open_medium(path, opts, &m, &info, &why);
  if (r) {
    if (opts.why) *opts.why = why;
    return r;
  }
  r = open_on_medium(std::move(m), info, opts, out);
  if (r && info.created) unlink(path.c_str());
  return r;
}

}  // namespace ckpt::store


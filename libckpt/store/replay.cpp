// SPDX-License-Identifier: MIT
// libckpt store: opening a store — the superblocks, formatting, the commit records, and the
// replay of an epoch's metadata chain (snapshot, then deltas) with every field checked.
#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <unordered_set>

#include "mac.hpp"
#include "store_impl.hpp"

namespace ckpt::store {
namespace impl {

using namespace fmt;

// What the header (superblocks hdr[0..1], commit slots hdr[2..3]) says may be done with this
// path: 0 with *fmt false, open the store; 0 with *fmt true, format it; else the refusal (-errno,
// *why saying what the path holds). s0, s1 (w0, w1): check_super of each superblock copy.
int StoreImpl::header_verdict(Block* hdr, int s0, const char* w0, int s1, const char* w1,
                              bool* fmt, std::string* why) {
  bool have_commit = false;
  for (int i = 2; i < 4; i++) {
    uint64_t magic;
    std::memcpy(&magic, hdr[i].data(), 8);
    have_commit |= magic == kCommitMagic;
  }
  *fmt = false;
  if (opts_.force_format) {
    *fmt = true;
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
    *fmt = true;
  } else {
    if (int r = no_store_verdict(hdr, why)) return r;
    *fmt = true;
  }
  return 0;
}

// No store at the path: 0 when it may be formatted, else the refusal. What may be formatted
// is in store.hpp (Options::create); each refusal names what the path holds and how to ask.
int StoreImpl::no_store_verdict(Block* hdr, std::string* why) {
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
  return 0;
}

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
  bool fmt_needed = false;
  if (int r = header_verdict(hdr, s0, w0, s1, w1, &fmt_needed, why)) return r;
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
  if (!found) {  // formatted, nothing committed (or the first commit was cut)
    rebuild_used();
    return 0;
  }
  if (int r = check_record_mac(hdr[2 + slot].data(), cr, why)) return r;
  if (cr.tail_csum != 0) read_provenance(hdr[2 + slot].data());
  committed_ = on_medium_ = cr.epoch;
  if (int r = load_epochs(cr, why)) return r;
  next_id_ = std::max<uint32_t>(live_.next_id, static_cast<uint32_t>(regions_.size() + 1));
  for (const Region& reg : regions_)
    if (visible(reg)) by_name_[reg.name] = reg.id;
  rebuild_used();
  return 0;
}

// 1.2, the keyed MAC of the newest commit record `rec` (cr its header): checked against
// Options::mac_key, or refused when the store has one and no key is given (writers only).
int StoreImpl::check_record_mac(const uint8_t* rec, const CommitRecord& cr, std::string* why) {
  bool has_mac = false;
  for (uint8_t b : cr.mac) has_mac |= b != 0;
  if (!opts_.mac_key.empty()) {
    uint8_t mac[kMacBytes];
    std::string w;
    if (int r = commit_mac(opts_.mac_key, rec, mac, &w); r != 0) {
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
  return 0;
}

// 1.2: who committed the newest epoch, from its commit record `rec` (checked by check_commit).
void StoreImpl::read_provenance(const uint8_t* rec) {
  ProvenanceHeader ph;
  const uint8_t* t = rec + kProvOffset;
  std::memcpy(&ph, t, sizeof(ph));
  prov_.known = true;
  prov_.exe.assign(reinterpret_cast<const char*>(t + sizeof(ph)), ph.path_len);
  static const char hex[] = "0123456789abcdef";
  for (uint32_t k = 0; k < ph.build_id_len; k++) {
    prov_.build_id += hex[ph.build_id[k] >> 4];
    prov_.build_id += hex[ph.build_id[k] & 15];
  }
}

// Replay the metadata of the epochs the newest commit record `cr` names: the live epoch's
// chain, or the retained one's if the live one's metadata is damaged (the read epoch falls
// back), and the retained epoch's map as undo_ against it.
int StoreImpl::load_epochs(const CommitRecord& cr, std::string* why) {
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
  pad_with_holes(&regions_, old->size() + 1);
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
namespace {

// One record being read (load_record): what its entries are checked against, and what they
// add up to. Each entry function returns null, or why the entry is invalid.
struct RecordLoad {
  uint64_t epoch;
  uint32_t kind;
  bool changes;      // region changes (1.1) only in a store that says so
  uint64_t total;    // blocks in the store
  uint64_t max_id;   // the largest region id the store's size allows
  Chain* chain;
  std::vector<Region>* regions;
  EpochInfo info;
  // Every region's pages must fit the store once (define_region / Txn::resize_region enforce
  // it), which also bounds the memory a forged size could make us allocate.
  uint64_t alive_pages = 0;
  bool next_id_seen = false;
};

// A region definition and its name (in the slots after it: *extra of them).
const char* region_entry(RecordLoad& c, const uint8_t* slot, uint32_t slots_left,
                         uint32_t* extra) {
  RegionEntry e;
  std::memcpy(&e, slot, sizeof(e));
  const uint32_t name_slots = (e.name_len + kSlot - 1) / kSlot;
  if (e.name_len == 0 || e.name_len > kMaxName || name_slots >= slots_left || e.size == 0 ||
      e.size % kBlockSize || e.size > kMaxRegionBytes || e.region == 0 || e.region > c.max_id ||
      e.epoch == 0 || e.epoch > c.epoch)
    return "invalid region entry";
  std::string name(reinterpret_cast<const char*>(slot + kSlot), e.name_len);
  if (name.find('\0') != std::string::npos) return "invalid region name";
  *extra = name_slots;
  c.info.regions++;
  auto& regions = *c.regions;
  if (e.region < c.chain->next_id) {  // known: only a repeat of the same definition
    if (e.region > regions.size()) return "region id below the next-id entry";
    const Region& r = regions[e.region - 1];
    if (!r.alive || r.name != name || r.size != e.size || r.epoch != e.epoch)
      return "region redefined differently";
    return nullptr;
  }
  // New ids increase; holes (removed ids) only in a store with region changes.
  if (c.next_id_seen || (!c.changes && e.region != c.chain->next_id))
    return "region ids not dense";
  const uint64_t pages = e.size / kBlockSize;
  if (c.alive_pages + pages > c.total) return "regions larger than the store";
  c.alive_pages += pages;
  pad_with_holes(&regions, e.region);
  Region r;
  r.name = std::move(name);
  r.size = r.cur = e.size;
  r.id = e.region;
  r.epoch = e.epoch;
  r.pages.resize(pages);
  r.keep = pages;
  regions.push_back(std::move(r));
  c.chain->next_id = e.region + 1;
  return nullptr;
}

const char* page_entry(RecordLoad& c, const uint8_t* slot) {
  PageEntry e;
  std::memcpy(&e, slot, sizeof(e));
  auto& regions = *c.regions;
  if (e.region == 0 || e.region > regions.size() || !regions[e.region - 1].alive ||
      e.page >= regions[e.region - 1].pages.size() || e.block < kFirstDataBlock ||
      e.block >= (1ull << 48))
    return "invalid page entry";
  regions[e.region - 1].pages[e.page] = PageRef{e.block, e.hash};
  c.info.pages++;
  return nullptr;
}

// A delta's resize or removal (1.1).
const char* change_entry(RecordLoad& c, uint16_t type, const uint8_t* slot) {
  RegionChangeEntry e;
  std::memcpy(&e, slot, sizeof(e));
  auto& regions = *c.regions;
  if (c.kind != kDelta || e.reserved || e.reserved2 || e.region == 0 ||
      e.region > regions.size() || !regions[e.region - 1].alive)
    return "invalid region change entry";
  Region& r = regions[e.region - 1];
  if (type == kRemoveEntry) {
    if (e.size || e.keep) return "invalid region remove entry";
    c.info.removed++;
    c.alive_pages -= r.pages.size();
    r.alive = false;
    r.name.clear();
    std::vector<PageRef>().swap(r.pages);
    return nullptr;
  }
  if (e.size == 0 || e.size % kBlockSize || e.size > kMaxRegionBytes || e.keep % kBlockSize ||
      e.keep > std::min(e.size, r.size))
    return "invalid region resize entry";
  const uint64_t pages = e.size / kBlockSize;
  if (c.alive_pages - r.pages.size() + pages > c.total) return "regions larger than the store";
  c.alive_pages = c.alive_pages - r.pages.size() + pages;
  c.info.resized++;
  r.pages.resize(e.keep / kBlockSize);
  r.pages.resize(pages);
  r.size = r.cur = e.size;
  r.keep = pages;
  return nullptr;
}

// A snapshot's next unused region id (1.1), when it is not one past its last definition.
const char* next_id_entry(RecordLoad& c, const uint8_t* slot) {
  RegionChangeEntry e;
  std::memcpy(&e, slot, sizeof(e));
  if (c.kind != kSnapshot || c.next_id_seen || e.reserved || e.reserved2 || e.size || e.keep ||
      e.region < c.chain->next_id || e.region > c.max_id + 1)
    return "invalid next-id entry";
  c.chain->next_id = e.region;
  c.next_id_seen = true;
  return nullptr;
}

// The entries of one metadata block, in order.
const char* block_entries(RecordLoad& c, const uint8_t* slot, uint32_t nslots) {
  for (uint32_t i = 0; i < nslots; i++, slot += kSlot) {
    uint16_t type;
    std::memcpy(&type, slot, 2);
    const char* bad = nullptr;
    if (type == kRegionEntry) {
      uint32_t extra = 0;
      bad = region_entry(c, slot, nslots - i, &extra);
      i += extra;
      slot += kSlot * extra;
    } else if (type == kPageEntry) {
      bad = page_entry(c, slot);
    } else if (c.changes && (type == kResizeEntry || type == kRemoveEntry)) {
      bad = change_entry(c, type, slot);
    } else if (c.changes && type == kNextIdEntry) {
      bad = next_id_entry(c, slot);
    } else {
      bad = "unknown metadata entry";
    }
    if (bad) return bad;
  }
  return nullptr;
}

}  // namespace

// One record (a snapshot or a delta) of a chain, block by block, onto *regions.
int StoreImpl::load_record(uint64_t head, uint64_t epoch, uint32_t kind, Chain* chain,
                           std::vector<Region>* regions, uint64_t* prev, std::string* why) {
  RecordLoad c{epoch, kind, (sb_.incompat & kIncompatRegionChange) != 0, total_,
               max_region_id(), chain, regions, EpochInfo{}};
  c.info.epoch = epoch;
  c.info.snapshot = kind == kSnapshot;
  for (const Region& r : *regions)
    if (r.alive) c.alive_pages += r.pages.size();
  auto bad = [&](const char* w) {
    *why = w;
    return -EUCLEAN;
  };
  Block b;
  uint64_t block = head;
  for (uint32_t index = 0;; index++) {
    if (index > total_) return bad("metadata record loops");
    MetaHeader h;
    int rc = read_meta(block, b.data(), &h, why);
    if (rc) return rc;
    if (h.epoch != epoch || h.kind != kind || h.index != index)
      return bad("metadata block of another epoch or record");
    if (index == 0) *prev = h.prev_record;
    chain->meta.push_back(block);
    c.info.meta_blocks++;
    if (const char* w = block_entries(c, b.data() + sizeof(MetaHeader), h.nslots)) return bad(w);
    if (h.next == 0) break;
    block = h.next;
  }
  chain->records.push_back(c.info);
  if (kind == kDelta) chain->delta_meta += c.info.meta_blocks;
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

}  // namespace impl
}  // namespace ckpt::store

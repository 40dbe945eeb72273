// SPDX-License-Identifier: MIT
// libckpt store: transactions (begin, put pages, commit) and the commit protocol
// (store-format.md, "Commit"), going back to an older epoch included.
#include <cerrno>
#include <unordered_set>

#include "mac.hpp"
#include "store_impl.hpp"

namespace ckpt::store {
namespace impl {

using namespace fmt;

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
  // Sized to the view; a layout change (never after the transaction's first page) clears it.
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
// The commit's metadata, planned in memory: region changes and definitions first (a snapshot
// repeats every definition), then pages, packed into block payloads as they come (an entry
// never straddles two blocks); and the totals the commit record cross-checks.
void StoreImpl::plan_commit(TxnImpl* t, uint64_t epoch, CommitPlan* cp) {
  cp->npages = mapped_after(t);
  plan_regions(epoch, cp);
  plan_pages(t, cp);
  if (cp->blocks.empty()) cp->slot(0);  // an empty epoch still has its (empty) record
}

uint8_t* CommitPlan::slot(size_t n) {
  if (blocks.empty() || blocks.back().nslots + n > kSlotsPerBlock) {
    blocks.emplace_back();
    blocks.back().bytes.assign(kSlotsPerBlock * kSlot, 0);
  }
  Payload& b = blocks.back();
  uint8_t* at = b.bytes.data() + size_t(b.nslots) * kSlot;
  b.nslots += static_cast<uint32_t>(n);
  return at;
}

// Pages mapped as of the new epoch: the read epoch's count, less the pages a removal or a
// shrink drops, plus pages written where the view has none (O(dirty + dropped); the snapshot
// is the only O(mapped) step, amortised by the policy).
uint64_t StoreImpl::mapped_after(const TxnImpl* t) const {
  uint64_t npages = live_.ref.npages;
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
  return npages;
}

// A delta's removals and resizes; the definitions (a delta's new regions, a snapshot's all)
// and a snapshot's next unused id when the definitions do not say it.
void StoreImpl::plan_regions(uint64_t epoch, CommitPlan* cp) {
  uint32_t last_id = cp->snapshot ? 0 : live_.next_id - 1;  // the reader's next id, less one
  auto add_change = [&](uint16_t type, uint32_t region, uint64_t size, uint64_t keep) {
    cp->n_resized += type == kResizeEntry;
    cp->n_removed += type == kRemoveEntry;
    RegionChangeEntry ce{type, 0, region, size, keep, 0};
    std::memcpy(cp->slot(1), &ce, sizeof(ce));
    cp->changes = true;
  };
  if (!cp->snapshot) {
    for (const Region& r : regions_)
      if (in_read(r) && r.removing) add_change(kRemoveEntry, r.id, 0, 0);
    for (const Region& r : regions_)
      if (resized(r)) add_change(kResizeEntry, r.id, r.cur, r.keep * kBlockSize);
  }
  for (const Region& r : regions_) {
    if (!visible(r)) continue;
    cp->nregions++;
    if (!cp->snapshot && r.epoch != 0) continue;
    RegionEntry re{};
    re.type = kRegionEntry;
    re.name_len = static_cast<uint16_t>(r.name.size());
    re.region = r.id;
    re.size = r.cur;
    re.epoch = r.epoch ? r.epoch : epoch;
    uint8_t* at = cp->slot(1 + (r.name.size() + kSlot - 1) / kSlot);
    std::memcpy(at, &re, sizeof(re));
    std::memcpy(at + kSlot, r.name.data(), r.name.size());
    cp->n_region_entries++;
    cp->changes |= r.id != last_id + 1;  // a hole: ids a 1.0 reader takes for damage
    last_id = r.id;
  }
  if (cp->snapshot && next_id_ != last_id + 1) add_change(kNextIdEntry, next_id_, 0, 0);
}

// A delta's pages are the transaction's; a snapshot's every mapped page of the new epoch.
void StoreImpl::plan_pages(const TxnImpl* t, CommitPlan* cp) {
  auto add_page = [&](uint32_t region, uint64_t page, const PageRef& ref) {
    PageEntry pe{kPageEntry, 0, region, page, ref.block, ref.hash};
    std::memcpy(cp->slot(1), &pe, sizeof(pe));
    cp->n_page_entries++;
  };
  if (!cp->snapshot) {
    for (const auto& pg : t->pages_) add_page(pg.region, pg.page, pg.ref);
    return;
  }
  for (const Region& r : regions_) {
    if (!visible(r)) continue;
    const uint64_t n = r.cur / kBlockSize;
    for (uint64_t p = 0; p < n; p++) {
      const uint32_t ix = p < r.pending.size() ? r.pending[p] : 0;
      const PageRef* ref = ix ? &t->pages_[ix - 1].ref : p < r.keep ? &r.pages[p] : nullptr;
      if (ref && ref->block) add_page(r.id, p, *ref);
    }
  }
}

// The planned records into free blocks (*out), each sealed; not durable until the barrier.
int StoreImpl::write_meta(TxnImpl* t, const CommitPlan& cp, uint64_t epoch, std::vector<uint64_t>* out) {
  const auto& blocks = cp.blocks;
  const bool snapshot = cp.snapshot;
  std::vector<uint64_t>& where = *out;
  where.assign(blocks.size(), 0);
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
  return 0;
}

int StoreImpl::commit(TxnImpl* t) try {
  if (broken_) return set_err(-EIO, "an earlier commit failed midway: reopen the store");
  const uint64_t epoch = committed_ + 1;
  // The reader accepts chains of up to kMaxChainRecords records, whatever the options.
  const uint64_t max_chain =
      opts_.snapshot_every ? std::min<uint64_t>(opts_.snapshot_every, kMaxChainRecords)
                           : kMaxChainRecords;
  CommitPlan plan;
  plan.snapshot = live_.ref.epoch == 0 || live_.ref.chain_records + 1 > max_chain ||
                  live_.delta_meta + 1 > std::max<uint64_t>(16, live_.ref.meta_blocks -
                                                                    live_.delta_meta);
  plan_commit(t, epoch, &plan);
  if (plan.changes) {
    int r = enable_region_changes();
    if (r) return r;
  }
  std::vector<uint64_t> where;
  if (int r = write_meta(t, plan, epoch, &where)) return r;
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
  l.snap_epoch = plan.snapshot ? epoch : live_.ref.snap_epoch;
  l.snap_head = plan.snapshot ? where[0] : live_.ref.snap_head;
  l.delta_head = plan.snapshot ? 0 : where[0];
  l.chain_records = plan.snapshot ? 0 : live_.ref.chain_records + 1;
  l.meta_blocks = (plan.snapshot ? 0 : live_.meta.size()) + where.size();
  l.nregions = plan.nregions;
  l.npages = plan.npages;
  // Durability point 2: the record. A torn record fails its checksum and the other slot (the
  // previous epoch) is live; once the barrier returns, this epoch is.
  r = write_record(epoch, l, live_.ref);
  if (!r && on_medium_ > committed_) r = supersede_after(epoch);
  if (r) {
    broken_ = true;  // the record may or may not have reached the medium
    return set_err(r, "writing the commit record failed; reopen the store");
  }
  apply_commit(t, plan, l, where, epoch);
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory during commit");
}

// After the record is durable, in memory: the new epoch is the read epoch, the old read epoch
// the retained one.
void StoreImpl::apply_commit(TxnImpl* t, const CommitPlan& cp, const EpochRef& l,
                             const std::vector<uint64_t>& where, uint64_t epoch) {
  const Provenance& me = self_provenance();
  const bool snapshot = cp.snapshot;

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
  info.pages = cp.n_page_entries;
  info.regions = cp.n_region_entries;
  info.resized = cp.n_resized;
  info.removed = cp.n_removed;
  next.records.push_back(info);
  ret_ = std::move(live_);
  live_ = std::move(next);
  undo_ = std::move(undo);
  committed_ = on_medium_ = epoch;
  pinned_ = false;
  read_gen_++;
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
}

}  // namespace impl
}  // namespace ckpt::store

// SPDX-License-Identifier: MIT
// libckpt store: the block map — used blocks, growth and allocation — and the regions it
// maps: definitions, resizes and removals pending for the next commit.
#include <cerrno>
#include "store_impl.hpp"

namespace ckpt::store {
namespace impl {

using namespace fmt;

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

void pad_with_holes(std::vector<Region>* regions, uint64_t next_id) {
  while (regions->size() + 1 < next_id) {
    Region hole;
    hole.id = static_cast<uint32_t>(regions->size() + 1);
    hole.alive = false;
    regions->push_back(std::move(hole));
  }
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
  pad_with_holes(&regions_, next_id_);  // ids of regions removed before they were known
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

// A transaction changes the layout before its first page: a page staged beyond a new size, or
// in a removed region, would otherwise have to be taken back (Region::pending indexes pages_).
int TxnImpl::resize_region(uint32_t id, uint64_t size) {
  if (done_) return -EINVAL;
  if (!pages_.empty()) return s_->set_err(-EBUSY, "resize_region: pages are already staged");
  return s_->resize_view(id, size);
}

int TxnImpl::remove_region(uint32_t id) {
  if (done_) return -EINVAL;
  if (!pages_.empty()) return s_->set_err(-EBUSY, "remove_region: pages are already staged");
  return s_->remove_view(id);
}

int StoreImpl::resize_view(uint32_t id, uint64_t size) try {
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

int StoreImpl::remove_view(uint32_t id) {
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

}  // namespace impl
}  // namespace ckpt::store

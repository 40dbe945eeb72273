// SPDX-License-Identifier: MIT
// libckpt store: reads with checksum verification, fallback to the retained epoch, selecting
// an epoch, verify and stat; Store::open.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <system_error>
#include <thread>
#include <unordered_set>
#include "store_impl.hpp"

namespace ckpt::store {
namespace impl {

using namespace fmt;

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
  read_gen_++;
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

int StoreImpl::check_len(uint32_t region, uint64_t len, ReadReport* report) {
  const Region* r = find_visible(region);
  if (r && r->epoch != 0 && len != r->cur) {
    *report = ReadReport{};
    return set_err(-EINVAL, "region '" + r->name + "' is " + std::to_string(r->cur) +
                                " bytes in the store, not " + std::to_string(len));
  }
  return 0;
}

int StoreImpl::read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) {
  ReadReport local;
  if (!report) report = &local;
  if (int e = check_len(region, len, report)) return e;
  const uint64_t from = live_.ref.epoch;
  int rc = read_range(region, 0, dst, len, report);
  const Region* r = find_visible(region);
  if (rc == 0 && live_.ref.epoch != from && (!r || r->epoch == 0 || r->cur != len))
    return set_err(-EINVAL, "fell back to epoch " + std::to_string(live_.ref.epoch) +
                                ", where this region is " + std::to_string(r->cur) + " bytes");
  return rc;
}

int StoreImpl::read_at(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                       ReadReport* report, bool fallback) try {
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
  if (fallback && !pinned_ && ret_.ref.epoch != 0 && retained_intact(scratch.data())) {
    const uint64_t from = live_.ref.epoch;
    switch_to_retained();
    err_ = "epoch " + std::to_string(from) + " damaged; fell back to epoch " +
           std::to_string(live_.ref.epoch);
    std::string note = err_;
    rc = read_at(region, offset, dst, len, report, true);
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

// ---------------------------------------------------------------------------------------------
// the read side: an epoch chosen once, then reads from it

bool StoreImpl::read_epoch_intact() {
  constexpr uint64_t kRun = 64;  // pages read (and checked) at once
  std::vector<uint8_t> run(kRun * kBlockSize);
  std::vector<uint64_t> damaged;
  for (const Region& r : regions_) {
    if (!in_read(r) || !visible(r)) continue;
    const uint64_t n = std::min<uint64_t>(r.keep, r.pages.size());
    for (uint64_t p = 0; p < n; p += kRun) {
      uint64_t nread = 0;
      if (read_part(r, p, std::min(kRun, n - p), run.data(), &damaged, &nread) || !damaged.empty())
        return false;
    }
  }
  return true;
}

int StoreImpl::open_reader(uint64_t epoch, std::unique_ptr<Reader>* out) try {
  if (epoch) {
    if (int e = select_epoch(epoch)) return e;
  } else if (live_.ref.epoch == 0) {
    return set_err(-ENOENT, "nothing committed yet");
  } else if (!pinned_ && ret_.ref.epoch != 0 && verified_ != live_.ref.epoch) {
    if (read_epoch_intact()) {
      verified_ = live_.ref.epoch;
    } else {
      Block scratch;
      if (retained_intact(scratch.data())) {
        const uint64_t from = live_.ref.epoch;
        switch_to_retained();
        err_ = "epoch " + std::to_string(from) + " damaged; fell back to epoch " +
               std::to_string(live_.ref.epoch);
      }
      // else: no intact epoch to fall back to; the damaged pages read as -EIO
    }
  }
  *out = std::make_unique<ReaderImpl>(this, live_.ref.epoch, read_gen_);
  return 0;
} catch (const std::bad_alloc&) {
  return set_err(-ENOMEM, "out of memory");
}

int ReaderImpl::stale() const {
  if (s_->live_.ref.epoch == epoch_ && s_->read_gen_ == gen_) return 0;
  return s_->set_err(-ESTALE, "the store's read epoch changed since the reader of epoch " +
                                  std::to_string(epoch_) + " was opened");
}

std::vector<RegionInfo> ReaderImpl::regions() const {
  std::vector<RegionInfo> v;
  if (!stale()) s_->regions_of(epoch_, &v);
  return v;
}

int ReaderImpl::read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) {
  ReadReport local;
  if (!report) report = &local;
  if (int e = stale()) return e;
  if (int e = s_->check_len(region, len, report)) return e;
  return s_->read_at(region, 0, dst, len, report, false);
}

int ReaderImpl::read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                           ReadReport* report) {
  if (int e = stale()) return e;
  return s_->read_at(region, offset, dst, len, report, false);
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

}  // namespace impl
// ---------------------------------------------------------------------------------------------

int open_on_medium(std::unique_ptr<Medium> medium, const MediumInfo& info, const Options& opts,
                   std::unique_ptr<Store>* out) try {
  auto s = std::make_unique<impl::StoreImpl>(std::move(medium), info, opts);
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

// SPDX-License-Identifier: MIT
// ckpt-tool dump, plan: which pages the image holds after this checkpoint and which to read
// now. A full checkpoint asks /proc/PID/pagemap; an incremental one (run) takes ckpt.ko's dirty
// logs (COLLECT) of the mappings it tracks. And the reader of the stopped process's pages.
#include <fcntl.h>
#include <linux/ckpt.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ckptdev.hpp"
#include "cmd.hpp"
#include "dump.hpp"

namespace ckpt_tool::dump {

using namespace image;

double since(std::chrono::steady_clock::time_point& t) {
  auto now = std::chrono::steady_clock::now();
  double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

MemReader::MemReader(int pid) : pid_(pid) {
  mem_ = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem_ < 0) throw Error{kFailed, std::string("/proc/PID/mem: ") + strerror(errno)};
}

MemReader::~MemReader() { close(mem_); }

void MemReader::read(const Vma& v, const uint64_t* idx, size_t n, uint8_t* buf) {
  if (!(v.prot & PROT_READ)) {
    for (size_t i = 0; i < n;) {
      size_t e = i + 1;
      while (e < n && idx[e] == idx[i] + (e - i)) e++;
      size_t len = (e - i) * kPage;
      if (pread(mem_, buf + i * kPage, len, off_t(v.start + idx[i] * kPage)) != ssize_t(len))
        throw Error{kFailed, std::string("reading process memory: ") + strerror(errno)};
      i = e;
    }
    return;
  }
  std::vector<iovec> remote;
  for (size_t i = 0; i < n;) {
    size_t e = i + 1;
    while (e < n && idx[e] == idx[i] + (e - i)) e++;
    remote.push_back({reinterpret_cast<void*>(v.start + idx[i] * kPage), (e - i) * kPage});
    i = e;
  }
  uint8_t* dst = buf;
  for (size_t r = 0; r < remote.size();) {
    size_t m = std::min<size_t>(remote.size() - r, IOV_MAX);
    size_t want = 0;
    for (size_t k = r; k < r + m; k++) want += remote[k].iov_len;
    iovec local{dst, want};
    ssize_t got = process_vm_readv(pid_, &local, 1, &remote[r], m, 0);
    if (got != ssize_t(want))
      throw Error{kFailed, std::string("reading process memory: ") +
                               (got < 0 ? strerror(errno) : "short read")};
    dst += want;
    r += m;
  }
}

namespace {

// Per page of the mapping: does it hold data the restore must write? From pagemap.
// `ent` is scratch space kept by the caller (a fresh buffer costs page faults per checkpoint).
std::vector<bool> want_pages(int pagemap_fd, const Vma& v, std::vector<uint64_t>& ent) {
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kFilePage = 1ull << 61;
  uint64_t pages = (v.end - v.start) / kPage;
  if (v.kind == kSharedAnon) return std::vector<bool>(pages, true);  // every page, always
  std::vector<bool> want(pages);
  if (ent.size() < std::min<uint64_t>(pages, 65536)) ent.resize(std::min<uint64_t>(pages, 65536));
  for (uint64_t i = 0; i < pages;) {
    uint64_t n = std::min<uint64_t>(pages - i, ent.size());
    ssize_t got = pread(pagemap_fd, ent.data(), n * 8, off_t((v.start / kPage + i) * 8));
    if (got != ssize_t(n * 8)) throw Error{kFailed, std::string("pagemap: ") + strerror(errno)};
    for (uint64_t k = 0; k < n; k++) {
      uint64_t e = ent[k];
      if (v.kind == kFile)
        want[i + k] = (e & kSwapped) || ((e & kPresent) && !(e & kFilePage));
      else
        want[i + k] = e & (kPresent | kSwapped);
    }
    i += n;
  }
  return want;
}

// The dirty pages of a tracked region (addresses), taking the module's log.
// `buf` is scratch space kept by the caller (a fresh buffer costs page faults per checkpoint).
std::vector<uint64_t> collect(int fd, uint64_t id, std::vector<uint64_t>& buf) {
  std::vector<uint64_t> out;
  if (buf.size() < 16384) buf.resize(16384);
  for (;;) {
    ckpt_collect c{};
    c.id = id;
    c.buf = uint64_t(uintptr_t(buf.data()));
    c.buf_len = buf.size() * 8;
    if (int e = ckptdev::collect(fd, &c))
      throw Error{kFailed, std::string("ckpt.ko COLLECT: ") + strerror(-e)};
    out.insert(out.end(), buf.begin(), buf.begin() + long(c.count));
    if (!c.remaining) return out;
  }
}

// An incremental plan for mapping v, unchanged since the last checkpoint (pv, tracked as
// ckpt.ko region `id`): a page is in the image if it is there now and was in the previous
// image or was written since (a page that came back without a write, e.g. read after
// MADV_DONTNEED, is a zero page the restore recreates by itself). Only the written ones are
// read. Adds to *kept the pages of the runs it makes itself (it leaves p.present empty then).
void plan_incremental(wp::Series& tr, int pm, Vma& v, const Vma& pv, uint64_t id, Plan& p,
                      Phases& ph, uint64_t* kept) {
  const uint64_t pages = (v.end - v.start) / kPage;
  auto c0 = std::chrono::steady_clock::now();
  std::vector<uint64_t> dirty;  // page indices, ascending, unique
  for (uint64_t a : collect(tr.fd, id, tr.scratch))
    if (a >= v.start && a < v.end) dirty.push_back((a - v.start) / kPage);
  if (!std::is_sorted(dirty.begin(), dirty.end())) std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  ph.collect += since(c0);
  // Is a page there now? ckpt.ko logs every page whose mapping changed since the last
  // checkpoint: written, or zapped (MADV_DONTNEED, munmap, swap-out, THP collapse; its
  // mmu notifier, kmod/mm.c). So a page of the last image that is not logged is still
  // there, unchanged, and only the logged ones are in question. A few logged pages of
  // an anonymous mapping are not worth a pagemap walk of the whole mapping (1-3 ms for
  // 64 MiB under TCG, the biggest part of a small checkpoint): they are taken as
  // present. One that was in fact dropped reads as zeros (process_vm_readv maps the
  // zero page there), so the image holds a page of zeros where the process has none:
  // the same bytes. Many logged pages (an munmap, a big MADV_DONTNEED, an mprotect) ask
  // pagemap, so as not to copy a dropped range's zeros; a private file mapping always
  // does, because a dropped page there shows the file again, which the image must not
  // freeze. Without pagemap the work is on runs and the logged pages, not per page.
  const bool ask = v.kind != kAnon || dirty.size() > pages / 8;
  if (!ask) {
    p.put = dirty;
    std::vector<Run> runs;  // the last image's runs and the logged pages, merged
    size_t d = 0;
    auto add = [&runs](uint64_t off, uint64_t len) {
      if (!runs.empty() && runs.back().offset + runs.back().len >= off) {
        const uint64_t end = std::max(runs.back().offset + runs.back().len, off + len);
        runs.back().len = end - runs.back().offset;
      } else {
        runs.push_back({off, len});
      }
    };
    for (const Run& r : pv.runs) {
      for (; d < dirty.size() && dirty[d] * kPage < r.offset; d++) add(dirty[d] * kPage, kPage);
      add(r.offset, r.len);
    }
    for (; d < dirty.size(); d++) add(dirty[d] * kPage, kPage);
    for (const Run& r : runs) *kept += r.len / kPage;
    v.runs = std::move(runs);
  } else {
    std::vector<bool> was(pages, false), logged(pages, false);
    for (const auto& r : pv.runs)
      for (uint64_t k = 0; k < r.len / kPage; k++) was[r.offset / kPage + k] = true;
    for (uint64_t k : dirty) logged[k] = true;
    auto m0 = std::chrono::steady_clock::now();
    p.present = want_pages(pm, v, tr.scratch);
    ph.pagemap += since(m0);
    for (uint64_t k = 0; k < pages; k++) {
      p.present[k] = p.present[k] && (was[k] || logged[k]);
      if (p.present[k] && logged[k]) p.put.push_back(k);
    }
  }
}

// A full plan for mapping v: every page pagemap shows; tr tracks it from now on if it can.
void plan_full(wp::Series& tr, int pm, const Vma& v, Plan& p, Phases& ph,
               std::map<uint64_t, wp::Series::Reg>* keep) {
  const uint64_t pages = (v.end - v.start) / kPage;
  auto m0 = std::chrono::steady_clock::now();
  p.present = want_pages(pm, v, tr.scratch);
  ph.pagemap += since(m0);
  for (uint64_t k = 0; k < pages; k++)
    if (p.present[k]) p.put.push_back(k);
  if (tr.track && tr.usable && v.kind != kSharedAnon) {
    ckpt_register r{};
    r.start = v.start;
    r.len = v.end - v.start;
    if (ckptdev::register_range(tr.fd, &r) == 0) (*keep)[v.start] = {r.id, v.start, v.end};
  }
}

}  // namespace

std::vector<Plan> plan_pages(wp::Series& tr, int pm, Image& img, Phases& ph, Counts* counts) {
  uint64_t put = 0, kept = 0;
  // Tracked regions whose mapping changed (split, grown, moved, gone) stop being tracked
  // first, so that the new mappings there can be registered.
  for (auto it = tr.regs.begin(); it != tr.regs.end();) {
    bool same = false;
    for (const auto& v : img.vmas) same |= v.start == it->second.start && v.end == it->second.end;
    if (same) {
      ++it;
      continue;
    }
    tr.unregister(it->second.id);
    it = tr.regs.erase(it);
  }
  std::vector<Plan> plan(img.vmas.size());
  std::map<uint64_t, wp::Series::Reg> keep;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    Vma& v = img.vmas[i];
    Plan& p = plan[i];
    uint64_t pages = (v.end - v.start) / kPage;
    if (v.kind == kSharedFile) continue;  // no pages: the file holds them; not tracked
    const Vma* pv = nullptr;
    auto it = tr.regs.find(v.start);
    if (tr.have_prev && it != tr.regs.end() && it->second.end == v.end)
      for (const auto& q : tr.prev.vmas)
        if (q.start == v.start && q.end == v.end && q.kind == v.kind && q.pgoff == v.pgoff &&
            q.file.ino == v.file.ino)
          pv = &q;
    if (pv) {
      plan_incremental(tr, pm, v, *pv, it->second.id, p, ph, &kept);
      keep[v.start] = it->second;
      tr.regs.erase(it);
    } else {
      plan_full(tr, pm, v, p, ph, &keep);
    }
    for (uint64_t k = 0; k < p.present.size();) {  // empty when the runs are made above
      if (!p.present[k]) {
        k++;
        continue;
      }
      uint64_t e = k + 1;
      while (e < pages && p.present[e]) e++;
      v.runs.push_back({k * kPage, (e - k) * kPage});
      kept += e - k;
      k = e;
    }
    put += p.put.size();
  }
  kept -= put;
  // Regions whose mapping changed or went away: stop tracking them.
  for (auto& [start, r] : tr.regs) tr.unregister(r.id);
  tr.regs = std::move(keep);
  counts->put = put;
  counts->kept = kept;
  return plan;
}

}  // namespace ckpt_tool::dump

// SPDX-License-Identifier: MIT
// The uffd-async tracker (Linux >= 6.7): the kernel tracks writes by itself. Regions are
// registered with a userfaultfd that has UFFD_FEATURE_WP_ASYNC, so the first write to a
// write-protected page is resolved in the fault path with no handler (the PTE just loses its
// uffd-wp bit), and collect() asks PAGEMAP_SCAN on /proc/self/pagemap for the pages without
// the bit (PAGE_IS_WRITTEN) and write-protects exactly those again in the same walk, under the
// page-table lock (PM_SCAN_WP_MATCHING). No thread, no signal; writes the kernel makes on the
// program's behalf (read(2), O_DIRECT, process_vm_writev) fault the same way as the CPU's.
//
// What the kernel does not report as written, and how this tracker closes each gap:
// - Unpopulated pages. UFFD_FEATURE_WP_UNPOPULATED: write-protecting a range installs uffd-wp
//   markers in its none PTEs, so the first touch of a never-touched page is a write too.
// - MADV_DONTNEED (and anything else that zaps anonymous PTEs, e.g. MADV_FREE's reclaim). A
//   zap of anonymous memory drops the PTE with its uffd-wp marker; the page now reads as
//   zeros. 6.18 reports a none PTE in a WP_ASYNC VMA as PAGE_IS_WRITTEN (also after a whole
//   2 MiB extent is zapped), and the WP_MATCHING walk puts a marker back (measured here, and
//   checked by init() on a scratch page). Where a kernel does not, a second scan reports the pages that
//   are neither present nor swapped (markers count as swapped) and protects them: after a
//   register every PTE in a region is present, swapped or a marker, so a none entry means
//   "zapped since". Either way those pages are reported once and are tracked exactly again.
// - THP. A write to a write-protected huge PMD splits it (the async path never resolves a WP
//   fault at PMD level), so reports stay 4 KiB-precise; a huge page the kernel maps fresh in a
//   zapped 2 MiB extent is reported whole (at most 512 pages; lib_tracker_test bounds it).
// - A region that is unmapped, or replaced by another mapping, under the tracker: msync()
//   finds the hole, PM_SCAN_CHECK_WPASYNC a VMA without our registration (mremap moves a VMA
//   out of its userfaultfd, munmap+mmap makes a new one); collect() then fails with -EFAULT
//   instead of reporting nothing.
// - fork(). The child's VMAs are not registered (no UFFD_FEATURE_EVENT_FORK) and fork clears
//   uffd-wp bits and markers in the child's page tables, so the child's memory is untracked
//   and unprotected. But the child inherits both descriptors, which still name the parent's
//   mm (the userfaultfd context and /proc/<parent>/pagemap): every call from another process
//   than the creator fails with -ECHILD, and the destructor only closes them there, so a child
//   can neither read nor re-arm nor unregister the parent's tracking.
//
// Pages pinned long-term for DMA (io_uring fixed buffers, RDMA) are written without a fault,
// as with every PTE-based tracker.
#include "tracker.hpp"
#include "uffd.hpp"
#include "uffd_async_uapi.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace ckpt {
namespace {

struct Region {
  uintptr_t start;
  size_t len;
  bool all_due;  // registered dirty: the next collect reports every page
};

class UffdAsyncTracker final : public Tracker {
 public:
  ~UffdAsyncTracker() override {
    if (getpid() == pid_)
      for (auto& [rid, r] : regions_) unregister(r.start, r.len);
    if (uffd_ >= 0) close(uffd_);
    if (pagemap_ >= 0) close(pagemap_);
  }
  const char* name() const override { return "uffd-async"; }

  int init() {
    ps_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    pid_ = getpid();
    // Opened user-mode-only where unprivileged userfaultfd needs it: that is enough here, since
    // the async path resolves kernel-mode WP faults (GUP) before the user-mode-only check.
    uffd_ = uffd_open(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
                      UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    if (uffd_ < 0) return uffd_;
    pagemap_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap_ < 0) return -errno;
    // A scan of the empty range: 0 where the kernel has PAGEMAP_SCAN, -ENOTTY where not.
    struct pm_scan_arg a;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    if (ioctl(pagemap_, PAGEMAP_SCAN, &a) < 0) return errno == ENOTTY ? -EOPNOTSUPP : -errno;
    vec_.resize(4096);
    return probe_zap();
  }

  int add(uint32_t rid, void* addr, size_t len, bool dirty) override {
    if (getpid() != pid_) return -ECHILD;
    if (regions_.count(rid)) return -EEXIST;
    uintptr_t start = reinterpret_cast<uintptr_t>(addr);
    if (int ret = uffd_register_wp(uffd_, start, len)) return ret;
    // Every page protected (none PTEs get markers), so from here a write is logged by the
    // kernel; a registration with dirty pages reports them all at the first collect as well.
    if (int ret = uffd_writeprotect(uffd_, start, len, true)) {
      uffd_unregister(uffd_, start, len);
      return ret;
    }
    regions_.emplace(rid, Region{start, len, dirty});
    return 0;
  }

  int remove(uint32_t rid) override {
    if (getpid() != pid_) return -ECHILD;
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    unregister(it->second.start, it->second.len);  // also clears the uffd-wp bits and markers
    regions_.erase(it);
    return 0;
  }

  int collect(uint32_t rid, std::vector<uint64_t>* pages) override {
    if (getpid() != pid_) return -ECHILD;
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    Region& r = it->second;
    // A hole in the range: PAGEMAP_SCAN would walk past it silently.
    if (msync(reinterpret_cast<void*>(r.start), r.len, MS_ASYNC)) return errno == ENOMEM ? -EFAULT : -errno;
    written_.clear();
    zapped_.clear();
    int ret = scan(r, PAGE_IS_WRITTEN, 0, &written_);
    if (!ret && !zap_is_written_)
      ret = scan(r, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, &zapped_);
    if (ret == -EPERM) ret = -EFAULT;  // a VMA in the range is not (or no longer) ours
    // Pages already re-protected by a scan that then failed stay reported: nothing is lost.
    if (r.all_due) {
      for (uint64_t i = 0; i < r.len / ps_; i++) pages->push_back(i);
      if (!ret) r.all_due = false;
      return ret;
    }
    if (zapped_.empty()) {
      pages->insert(pages->end(), written_.begin(), written_.end());
    } else {
      size_t n = pages->size();
      pages->resize(n + written_.size() + zapped_.size());
      auto end = std::set_union(written_.begin(), written_.end(), zapped_.begin(), zapped_.end(),
                                pages->begin() + static_cast<ptrdiff_t>(n));
      pages->erase(end, pages->end());
    }
    return ret;
  }

 private:
  // Walk the region once: append the indices of the pages that match (categories ^ inverted)
  // & mask == mask to *out, ascending, and write-protect them in the same walk.
  int scan(const Region& r, uint64_t mask, uint64_t inverted, std::vector<uint64_t>* out) {
    struct pm_scan_arg a;
    uint64_t pos = r.start, end = r.start + r.len;
    while (pos < end) {
      memset(&a, 0, sizeof(a));
      a.size = sizeof(a);
      a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
      a.start = pos;
      a.end = end;
      a.vec = reinterpret_cast<uintptr_t>(vec_.data());
      a.vec_len = vec_.size();
      a.category_mask = mask;
      a.category_inverted = inverted;
      a.return_mask = PAGE_IS_WRITTEN;
      long n = ioctl(pagemap_, PAGEMAP_SCAN, &a);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return -errno;
      }
      for (long i = 0; i < n; i++)
        for (uint64_t p = vec_[i].start; p < vec_[i].end; p += ps_) out->push_back((p - r.start) / ps_);
      if (a.walk_end <= pos) return -EIO;  // no progress: never expected
      pos = a.walk_end;
    }
    return 0;
  }
  // Does this kernel count a zapped PTE as written? One scratch page: registered, protected,
  // zapped, scanned. If not, collect() runs the second scan.
  int probe_zap() {
    void* p = mmap(nullptr, ps_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -errno;
    *static_cast<volatile char*>(p) = 1;
    Region r{reinterpret_cast<uintptr_t>(p), ps_, false};
    int ret = add(~0u, p, ps_, false);
    if (!ret) {
      madvise(p, ps_, MADV_DONTNEED);
      std::vector<uint64_t> v;
      ret = scan(r, PAGE_IS_WRITTEN, 0, &v);
      // CKPT_UFFD_ASYNC_SECOND_SCAN=1 takes the second scan anyway (lib_tracker_test runs the
      // contract through both paths on a kernel that needs only one).
      const char* env = getenv("CKPT_UFFD_ASYNC_SECOND_SCAN");
      zap_is_written_ = v.size() == 1 && !(env && !strcmp(env, "1"));
      remove(~0u);
    }
    munmap(p, ps_);
    return ret;
  }
  void unregister(uintptr_t start, size_t len) { uffd_unregister(uffd_, start, len); }

  int uffd_ = -1, pagemap_ = -1;
  pid_t pid_ = 0;  // the process whose mm both descriptors name
  bool zap_is_written_ = false;  // the kernel reports zapped PTEs as PAGE_IS_WRITTEN (6.18 does)
  size_t ps_ = 4096;
  std::map<uint32_t, Region> regions_;
  std::vector<page_region> vec_;                // scan output, reused
  std::vector<uint64_t> written_, zapped_;      // one collect's two scans, reused
};

}  // namespace

int make_uffd_async_tracker(std::unique_ptr<Tracker>* out) {
  return make_initialized<UffdAsyncTracker>(out);
}

}  // namespace ckpt

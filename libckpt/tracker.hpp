// SPDX-License-Identifier: MIT
// libckpt internal: trackers find the pages written since the last collect.
//
// A tracker watches regions (page-aligned ranges). collect() returns the page indices written
// since the previous collect of that region (a superset: never omits a changed page) and
// re-arms tracking on exactly those pages, so its cost follows the dirty pages. The session
// serialises calls (not thread-safe); the program's threads may write tracked memory at any time.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ckpt {

enum class TrackerKind { kAuto = 0, kModule = 1, kUffd = 2, kMprotect = 3, kFull = 4, kUffdAsync = 5 };

class Tracker {
 public:
  virtual ~Tracker() = default;
  virtual const char* name() const = 0;
  // Start tracking [addr, addr+len) as region `rid` (unique per tracker). dirty: every page is
  // reported by the first collect; otherwise only pages written from now on.
  virtual int add(uint32_t rid, void* addr, size_t len, bool dirty) = 0;
  virtual int remove(uint32_t rid) = 0;
  // Append dirty page indices of region rid (ascending) to *pages and re-protect them.
  virtual int collect(uint32_t rid, std::vector<uint64_t>* pages) = 0;

  // Asynchronous checkpoints (the module tracker; ioctl-abi.md, CKPT_COLLECT_HOLD). Whether
  // this tracker can hold pages; collect() that also holds what it reports: the first write to
  // a held page copies it first. release() ends the hold of region rid and calls put(page,
  // bytes as they were at the collect) for every held page written since; *lost counts held
  // pages changed without a copy (their bytes are not known: the epoch must not be committed).
  // The hold always ends, even when put fails (release then returns put's first error).
  virtual bool can_hold() const { return false; }
  virtual int collect_hold(uint32_t /*rid*/, std::vector<uint64_t>* /*pages*/) { return -EOPNOTSUPP; }
  virtual int release(uint32_t /*rid*/, const std::function<int(uint64_t page, const void* data)>& /*put*/,
                      uint64_t* /*lost*/) {
    return -EOPNOTSUPP;
  }

  // Volatile threads (threads.cpp) on a tracker whose fault path does not run in the program
  // (the module: CKPT_IOC_WATCH). watch(tid, on) starts or stops logging thread tid's write
  // faults; report_writers() hands the logged ones to note_write_fault() (below). -EOPNOTSUPP:
  // this tracker does not watch (the mprotect and uffd trackers see the writer themselves).
  virtual int watch(long /*tid*/, bool /*on*/) { return -EOPNOTSUPP; }
  virtual int report_writers() { return 0; }
};

// The userspace trackers keep one dirty bit per page. Take `words` words of such a bitmap
// (take(w) returns word w and clears it), append the page indices to *pages in ascending order,
// and re-arm each run of consecutive pages with one rearm(first_page, npages) call, so the
// system calls follow the runs, not the pages. Every run is re-armed; returns the first error.
template <class Take, class Rearm>
int take_dirty_runs(size_t words, Take&& take, Rearm&& rearm, std::vector<uint64_t>* pages) {
  int ret = 0;
  size_t run_start = 0, run_len = 0;
  auto flush = [&]() {
    if (run_len)
      if (int e = rearm(run_start, run_len); e && !ret) ret = e;
    run_len = 0;
  };
  for (size_t w = 0; w < words; w++) {
    for (uint64_t v = take(w); v; v &= v - 1) {
      size_t idx = w * 64 + static_cast<size_t>(__builtin_ctzll(v));
      pages->push_back(idx);
      if (run_len && run_start + run_len == idx) {
        run_len++;
      } else {
        flush();
        run_start = idx;
        run_len = 1;
      }
    }
  }
  flush();
  return ret;
}

// Construct a T and run its init() (0 or -errno); hand it over only if that succeeded.
template <class T>
int make_initialized(std::unique_ptr<Tracker>* out) {
  auto t = std::make_unique<T>();
  if (int ret = t->init()) return ret;
  *out = std::move(t);
  return 0;
}

// Create a tracker. kAuto: env CKPT_TRACKER, else module > uffd-async > uffd > mprotect. -ENODEV if the
// requested kind is not available here, -EINVAL for an unknown CKPT_TRACKER value.
int make_tracker(TrackerKind kind, std::unique_ptr<Tracker>* out, std::string* why);

int make_full_tracker(std::unique_ptr<Tracker>* out);
int make_mprotect_tracker(std::unique_ptr<Tracker>* out);
int make_uffd_tracker(std::unique_ptr<Tracker>* out);
// -EOPNOTSUPP where the kernel lacks UFFD_FEATURE_WP_ASYNC, WP_UNPOPULATED or PAGEMAP_SCAN.
int make_uffd_async_tracker(std::unique_ptr<Tracker>* out);
int make_module_tracker(std::unique_ptr<Tracker>* out);
// The automatic choice without the module: uffd-async, else uffd, else mprotect.
int make_userspace_tracker(std::unique_ptr<Tracker>* out);

// Volatile threads (threads.cpp): a tracker that sees which thread made a write fault (mprotect:
// the handler runs on the writer; uffd: UFFD_FEATURE_THREAD_ID) reports it here. tid 0 = the
// calling thread. Async-signal-safe; one relaxed load when no volatile thread is attached.
// Defined here (tracker.cpp, which ckpt-tool also links) over an observer that threads.cpp
// installs at the first volatile attach.
using WriteObserver = void (*)(long tid, uintptr_t addr);
extern std::atomic<WriteObserver> g_write_observer;
inline void note_write_fault(long tid, uintptr_t addr) {
  if (WriteObserver o = g_write_observer.load(std::memory_order_acquire)) o(tid, addr);
}

}  // namespace ckpt

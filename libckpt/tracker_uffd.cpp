// SPDX-License-Identifier: MIT
// The userfaultfd write-protect tracker (sync mode, the only one 6.1 has): tracked pages are
// write-protected through a userfaultfd; a write blocks the writer and queues a message; a
// handler thread logs the page and removes the protection, which wakes the writer. Unlike
// mprotect, writes the kernel makes on the program's behalf (read(2) into tracked memory) are
// caught too, unless only UFFD_USER_MODE_ONLY descriptors are allowed.
//
// Known limits, documented in the user guide: pages are populated when a region is added
// (6.1 cannot protect unpopulated anonymous pages), and a range zapped later by MADV_DONTNEED
// loses its protection. After fork() the child's copy refuses every call (-ECHILD) and its
// destructor only closes the descriptors: they name the parent's context, so an unregister
// from the child would silently end the parent's tracking, and a write to the stop eventfd
// would stop the parent's handler thread.
#include "tracker.hpp"
#include "uffd.hpp"

#include <atomic>
#include <cerrno>
#include <linux/userfaultfd.h>
#include <map>
#include <mutex>
#include <poll.h>
#include <sys/eventfd.h>
#include <utility>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace ckpt {
namespace {

struct Region {
  uintptr_t start;
  size_t len;
  std::vector<uint64_t> bits;
};

class UffdTracker final : public Tracker {
 public:
  ~UffdTracker() override {
    if (getpid() != pid_) {
      // A forked child's copy: the descriptors name the parent's userfaultfd context and its
      // handler's stop eventfd, and the handler thread is not ours. Close, touch nothing else.
      if (thread_.joinable()) thread_.detach();
      if (uffd_ >= 0) close(uffd_);
      if (stop_fd_ >= 0) close(stop_fd_);
      return;
    }
    if (thread_.joinable()) {
      uint64_t one = 1;
      (void)!write(stop_fd_, &one, sizeof(one));
      thread_.join();
    }
    std::vector<uint32_t> ids;
    for (auto& [rid, r] : regions_) ids.push_back(rid);
    for (uint32_t rid : ids) remove(rid);
    if (uffd_ >= 0) close(uffd_);
    if (stop_fd_ >= 0) close(stop_fd_);
  }
  const char* name() const override { return "uffd"; }

  int init() {
    ps_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    pid_ = getpid();
    // THREAD_ID: the faulting thread's id, so a volatile thread's write is told (threads.cpp).
    uffd_ = uffd_open(UFFD_FEATURE_THREAD_ID, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID);
    if (uffd_ < 0) return uffd_;
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) return -errno;
    try {
      thread_ = std::thread([this] { loop(); });
    } catch (...) {
      return -EAGAIN;
    }
    return 0;
  }

  int add(uint32_t rid, void* addr, size_t len, bool dirty) override {
    if (getpid() != pid_) return -ECHILD;  // see ~UffdTracker
    std::lock_guard<std::mutex> g(mu_);
    if (regions_.count(rid)) return -EEXIST;
    // Populate first: a write to an unpopulated (or zero-page) anonymous page would not fault.
    if (madvise(addr, len, MADV_POPULATE_WRITE)) return -errno;
    if (int ret = uffd_register_wp(uffd_, reinterpret_cast<uintptr_t>(addr), len)) return ret;
    Region r{reinterpret_cast<uintptr_t>(addr), len, {}};
    size_t pages = len / ps_;
    r.bits.assign((pages + 63) / 64, 0);
    if (dirty) {
      for (size_t i = 0; i < pages; i++) r.bits[i / 64] |= 1ULL << (i % 64);
    } else {
      int ret = protect(r.start, len, true);
      if (ret) {
        unregister(r.start, len);
        return ret;
      }
    }
    regions_.emplace(rid, std::move(r));
    return 0;
  }

  int remove(uint32_t rid) override {
    if (getpid() != pid_) return -ECHILD;
    std::lock_guard<std::mutex> g(mu_);
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    protect(it->second.start, it->second.len, false);  // wakes any blocked writer
    unregister(it->second.start, it->second.len);
    regions_.erase(it);
    return 0;
  }

  int collect(uint32_t rid, std::vector<uint64_t>* pages) override {
    if (getpid() != pid_) return -ECHILD;
    std::lock_guard<std::mutex> g(mu_);
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    Region& r = it->second;
    int ret = take_dirty_runs(
        r.bits.size(), [&](size_t w) { return std::exchange(r.bits[w], 0); },
        [&](size_t first, size_t n) { return protect(r.start + first * ps_, n * ps_, true); }, pages);
    return ret;
  }

 private:
  int protect(uintptr_t start, size_t len, bool wp) { return uffd_writeprotect(uffd_, start, len, wp); }
  void unregister(uintptr_t start, size_t len) { uffd_unregister(uffd_, start, len); }

  // The handler thread: log each write-protect fault and let the writer continue.
  void loop() {
    struct pollfd pfd[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    struct uffd_msg msgs[64];
    for (;;) {
      if (poll(pfd, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (pfd[1].revents) return;
      ssize_t n = read(uffd_, msgs, sizeof(msgs));
      if (n <= 0) continue;
      std::lock_guard<std::mutex> g(mu_);
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(msgs[0])); i++) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
        uintptr_t a = msgs[i].arg.pagefault.address & ~(ps_ - 1);
        for (auto& [rid, r] : regions_) {
          if (a >= r.start && a < r.start + r.len) {
            size_t idx = (a - r.start) / ps_;
            r.bits[idx / 64] |= 1ULL << (idx % 64);
            note_write_fault(static_cast<long>(msgs[i].arg.pagefault.feat.ptid), msgs[i].arg.pagefault.address);
            break;
          }
        }
        // Unprotect (and wake) even if no region matched, so a writer never stays blocked.
        protect(a, ps_, false);
      }
    }
  }

  int uffd_ = -1, stop_fd_ = -1;
  pid_t pid_ = 0;  // the process whose mm the userfaultfd names and whose thread handles it
  size_t ps_ = 4096;
  std::mutex mu_;  // protects regions_ (bitmaps) against the handler thread
  std::map<uint32_t, Region> regions_;
  std::thread thread_;
};

}  // namespace

int make_uffd_tracker(std::unique_ptr<Tracker>* out) {
  return make_initialized<UffdTracker>(out);
}

}  // namespace ckpt

// SPDX-License-Identifier: MIT
// The mprotect + SIGSEGV tracker: tracked pages are read-only; the first write faults, the
// handler logs the page in the region's bitmap and makes it writable again. collect() takes
// the bitmap and makes exactly those pages read-only again.
//
// The signal handler only touches the global slot table below, with atomics (async-signal-safe:
// no locks, no allocation; mprotect is a plain system call). A fault that is not ours goes to the
// SIGSEGV handler the program had when the first tracker was created.
#include "tracker.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

namespace ckpt {
namespace {

constexpr int kSlots = 1024;

// One tracked range. start == 0: free. Written by add/remove/collect (under g_mu), read by the
// handler. `busy` counts handlers inside the slot; `collecting` makes handlers wait while
// collect() swaps the bitmap and re-protects, so a page cannot end writable with its bit clear.
struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<std::atomic<uint64_t>*> bits{nullptr};
  std::atomic<int> busy{0};
  std::atomic<int> collecting{0};
};

Slot g_slots[kSlots];
std::atomic<int> g_high{0};          // slots in use are below this
std::mutex g_mu;                      // protects slot allocation, handler installation, collects
bool g_installed = false;             // under g_mu
struct sigaction g_old;               // the program's handler before ours (under g_mu, then fixed)
size_t g_ps;

// fork() while another thread collects would leave the child a slot with `collecting` set for
// ever, and its handler spinning on the first write to that region: g_mu (held by collect) is
// taken across fork(), so the child starts with no collect in progress and g_mu free. The
// parent's slots stay in the child: its writes to them are logged and let through, touching
// nothing of the parent (the session's calls in the child give -ECHILD).
void atfork_prepare() { g_mu.lock(); }
void atfork_release() { g_mu.unlock(); }
const int g_atfork = pthread_atfork(atfork_prepare, atfork_release, atfork_release);

void chain(int sig, siginfo_t* si, void* uc) {
  if (g_old.sa_flags & SA_SIGINFO) {
    g_old.sa_sigaction(sig, si, uc);
    return;
  }
  if (g_old.sa_handler == SIG_DFL || g_old.sa_handler == SIG_IGN) {
    // Not ours and nobody else's: restore the default action; returning re-executes the
    // faulting instruction, which now kills the process as it would have without us.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &dfl, nullptr);
    return;
  }
  g_old.sa_handler(sig);
}

void on_segv(int sig, siginfo_t* si, void* uc) {
  int saved = errno;
  uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  if (si->si_code == SEGV_ACCERR) {
    int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; i++) {
      Slot& s = g_slots[i];
      uintptr_t st = s.start.load(std::memory_order_acquire);
      if (!st || a < st || a >= st + s.len.load(std::memory_order_relaxed)) continue;
      for (;;) {
        s.busy.fetch_add(1, std::memory_order_acq_rel);
        if (!s.collecting.load(std::memory_order_acquire)) break;
        s.busy.fetch_sub(1, std::memory_order_acq_rel);
        while (s.collecting.load(std::memory_order_acquire)) sched_yield();
      }
      if (s.start.load(std::memory_order_acquire) == st) {
        size_t idx = (a - st) / g_ps;
        s.bits.load(std::memory_order_acquire)[idx / 64].fetch_or(1ULL << (idx % 64),
                                                                  std::memory_order_acq_rel);
        mprotect(reinterpret_cast<void*>(st + idx * g_ps), g_ps, PROT_READ | PROT_WRITE);
        note_write_fault(0, a);  // a volatile thread writing persistent memory is told
      }
      s.busy.fetch_sub(1, std::memory_order_acq_rel);
      errno = saved;
      return;
    }
  }
  errno = saved;
  chain(sig, si, uc);
}

int install_locked() {
  if (g_installed) return 0;
  g_ps = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &g_old)) return -errno;
  g_installed = true;
  return 0;
}

void wait_idle(Slot& s) {
  while (s.busy.load(std::memory_order_acquire)) sched_yield();
}

class MprotectTracker final : public Tracker {
 public:
  ~MprotectTracker() override {
    while (!slot_.empty()) remove(slot_.begin()->first);
  }
  const char* name() const override { return "mprotect"; }

  int add(uint32_t rid, void* addr, size_t len, bool dirty) override {
    if (slot_.count(rid)) return -EEXIST;
    std::lock_guard<std::mutex> g(g_mu);
    int ret = install_locked();
    if (ret) return ret;
    int i = 0;
    while (i < kSlots && g_slots[i].start.load()) i++;
    if (i == kSlots) return -ENOSPC;
    size_t pages = len / g_ps, words = (pages + 63) / 64;
    auto* bits = new (std::nothrow) std::atomic<uint64_t>[words];
    if (!bits) return -ENOMEM;
    for (size_t w = 0; w < words; w++) {
      uint64_t v = 0;
      if (dirty) v = (w + 1 < words || pages % 64 == 0) ? ~0ULL : ((1ULL << (pages % 64)) - 1);
      bits[w].store(v);
    }
    // Dirty start: every page is already logged, so it may stay writable until collect.
    if (!dirty && mprotect(addr, len, PROT_READ)) {
      ret = -errno;
      delete[] bits;
      return ret;
    }
    Slot& s = g_slots[i];
    s.bits.store(bits);
    s.len.store(len);
    s.start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    if (g_high.load() < i + 1) g_high.store(i + 1, std::memory_order_release);
    slot_[rid] = i;
    return 0;
  }

  int remove(uint32_t rid) override {
    auto it = slot_.find(rid);
    if (it == slot_.end()) return -ENOENT;
    std::lock_guard<std::mutex> g(g_mu);
    Slot& s = g_slots[it->second];
    void* addr = reinterpret_cast<void*>(s.start.load());
    size_t len = s.len.load();
    s.start.store(0, std::memory_order_release);
    wait_idle(s);
    mprotect(addr, len, PROT_READ | PROT_WRITE);  // best effort: it may be unmapped already
    delete[] s.bits.exchange(nullptr);
    slot_.erase(it);
    return 0;
  }

  int collect(uint32_t rid, std::vector<uint64_t>* pages) override {
    auto it = slot_.find(rid);
    if (it == slot_.end()) return -ENOENT;
    std::lock_guard<std::mutex> g(g_mu);  // so that fork() never copies `collecting` set
    Slot& s = g_slots[it->second];
    uintptr_t st = s.start.load();
    size_t npages = s.len.load() / g_ps, words = (npages + 63) / 64;
    std::atomic<uint64_t>* bits = s.bits.load();
    s.collecting.store(1, std::memory_order_release);
    wait_idle(s);
    int ret = take_dirty_runs(
        words, [&](size_t w) { return bits[w].exchange(0, std::memory_order_acq_rel); },
        [&](size_t first, size_t n) {
          return mprotect(reinterpret_cast<void*>(st + first * g_ps), n * g_ps, PROT_READ) ? -errno : 0;
        },
        pages);
    s.collecting.store(0, std::memory_order_release);
    return ret;
  }

 private:
  std::map<uint32_t, int> slot_;  // region -> slot index
};

}  // namespace

int make_mprotect_tracker(std::unique_ptr<Tracker>* out) {
  *out = std::make_unique<MprotectTracker>();
  return 0;
}

}  // namespace ckpt

// SPDX-License-Identifier: MIT
// libckpt store: guarded_copy() (guarded_copy.hpp).
#include "guarded_copy.hpp"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace ckpt::store {
namespace {

struct Guard {
  sigjmp_buf jb;
  const uint8_t* lo;  // the source being copied: [lo, hi)
  const uint8_t* hi;
};

// The copy in progress in this thread, null outside guarded_copy(). Initial-exec TLS: the
// handler reads it without calling into the dynamic loader (which may allocate).
thread_local Guard* t_guard __attribute__((tls_model("initial-exec"))) = nullptr;

struct sigaction g_prev;                // the disposition before ours (written under g_mu)
std::atomic<uint64_t> g_faults{0};
std::atomic<bool> g_installed{false};   // guard_sigbus() ran once
std::mutex g_mu;

void on_sigbus(int sig, siginfo_t* si, void* uc) {
  Guard* g = t_guard;
  const auto* a = static_cast<const uint8_t*>(si ? si->si_addr : nullptr);
  if (g && si && si->si_code > 0 && a >= g->lo && a < g->hi) {  // si_code > 0: from the kernel
    t_guard = nullptr;
    g_faults.fetch_add(1, std::memory_order_relaxed);
    // The handler runs with SIGBUS blocked; jumping out skips the mask's restore, so unblock it
    // here (sigsetjmp with savemask would cost a system call per copy instead).
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
    siglongjmp(g->jb, 1);
  }
  // Not ours: what was there before.
  if (g_prev.sa_flags & SA_SIGINFO) {
    if (g_prev.sa_sigaction) g_prev.sa_sigaction(sig, si, uc);
    return;
  }
  if (g_prev.sa_handler == SIG_IGN) return;
  if (g_prev.sa_handler != SIG_DFL) {
    g_prev.sa_handler(sig);
    return;
  }
  // SIG_DFL: terminate with SIGBUS as the process would have (the signal is blocked until the
  // handler returns, then delivered with the default action; a fault also re-executes).
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, nullptr);
  raise(SIGBUS);
}

}  // namespace

void guard_sigbus() {
  std::lock_guard<std::mutex> g(g_mu);
  struct sigaction cur;
  if (sigaction(SIGBUS, nullptr, &cur) != 0) return;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus) return;
  g_prev = cur;
  struct sigaction sa = {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
  g_installed.store(true, std::memory_order_release);
}

int guarded_copy(void* dst, const uint8_t* src, size_t len) {
  if (!g_installed.load(std::memory_order_acquire)) guard_sigbus();
  Guard g;
  g.lo = src;
  g.hi = src + len;
  if (sigsetjmp(g.jb, 0) != 0) return -EIO;  // t_guard was cleared by the handler
  t_guard = &g;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, len);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_guard = nullptr;
  return 0;
}

uint64_t guarded_copy_faults() { return g_faults.load(std::memory_order_relaxed); }

}  // namespace ckpt::store

// SPDX-License-Identifier: MIT
// ckpt::transient<T>'s generation: a member whose stored generation differs from this value
// was saved by another process, or before the last ckpt_restore(), and is reset at its first
// use (ckpt.hpp). Random per process; +2 at each ckpt_restore (never 0 or 1).
#include <ckpt/ckpt.h>

#include <atomic>
#include <sys/random.h>
#include <unistd.h>

#include "session.hpp"

namespace ckpt {
namespace {

std::atomic<uint64_t> g_gen{0};

uint64_t base() {
  static const uint64_t v = [] {
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
      r = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL ^ static_cast<uint64_t>(now_ns());
    return (r | (1ULL << 63)) & ~1ULL;
  }();
  return v;
}

}  // namespace

void transient_restored() { g_gen.fetch_add(2, std::memory_order_acq_rel); }

}  // namespace ckpt

extern "C" uint64_t ckpt_transient_generation(void) {
  return ckpt::base() + ckpt::g_gen.load(std::memory_order_acquire);
}

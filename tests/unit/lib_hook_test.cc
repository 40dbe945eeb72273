// SPDX-License-Identifier: MIT
// ckpt_hook's interval runs from the END of the previous checkpoint (include/ckpt/ckpt.h): a
// checkpoint slower than the interval must not make the next one follow at once, and a manual
// ckpt_checkpoint() restarts the interval too. Host test, full-copy tracker (slow on purpose:
// every checkpoint rewrites the whole region), file store.
#include <time.h>

#include <algorithm>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

ckpt_t* open_with(const StorePath& sp, const std::string& tracker, uint64_t interval_ms) {
  ckpt_config_t cfg = config(tracker, sp.first_flags());
  cfg.interval_ms = interval_ms;
  ckpt_t* c = nullptr;
  int r = ckpt_open(sp.path().c_str(), &cfg, &c);
  EXPECT_EQ(r, 0) << "ckpt_open(" << sp.path() << "): " << strerror(-r) << ": " << ckpt_open_error();
  return c;
}

// The library reads the clock just before a checkpoint returns and when a hook is called; the
// test reads it just after the return and just before the call, so its gaps may come out short
// of the interval by as long as the thread is descheduled in between (over 1 ms on a loaded
// 2-core machine). A start-based interval would give gaps near zero instead, so half the
// 10 ms interval still tells the two apart.
constexpr int64_t kSlackNs = 5000000;

}  // namespace

// Checkpoints of a 64 MiB region with the full-copy tracker take longer than a 10 ms interval.
// Each checkpoint the hook takes must come a whole interval after the previous one ENDED.
TEST(Hook, IntervalRunsFromTheEndOfASlowCheckpoint) {
  const int64_t interval_ms = 10;
  StorePath sp;
  Mem m(16384);
  ASSERT_TRUE(m.data());
  ckpt_t* c = open_with(sp, "full", interval_ms);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  int64_t prev_end = 0, slowest = 0;
  int taken = 0;
  const int64_t deadline = now_ns() + 60 * 1000000000LL;
  while (taken < 4 && now_ns() < deadline) {
    m.data()[(taken * 4096) % m.size()] += 1;
    int64_t t_call = now_ns();
    int r = ckpt_hook(c);
    ASSERT_GE(r, 0) << ckpt_last_error(c);
    if (r != 1) continue;
    int64_t t_end = now_ns();
    if (prev_end) {
      EXPECT_GE(t_call - prev_end, interval_ms * 1000000 - kSlackNs)
          << "checkpoint " << taken << " started " << (t_call - prev_end) / 1000
          << " us after the previous one ended; the interval is " << interval_ms << " ms";
    }
    slowest = std::max(slowest, t_end - t_call);
    prev_end = t_end;
    taken++;
  }
  EXPECT_EQ(taken, 4);
  // Otherwise the test proves nothing: the checkpoints must be slower than the interval.
  EXPECT_GT(slowest, interval_ms * 1000000) << "no checkpoint took longer than the interval";
  ckpt_close(c);
}

// A manual checkpoint restarts the hook's interval: right after it, nothing is due, even though
// the interval since ckpt_open has long elapsed; a whole interval later the hook checkpoints.
TEST(Hook, ManualCheckpointRestartsTheInterval) {
  const int64_t interval_ms = 300;
  StorePath sp;
  Mem m(4);
  ASSERT_TRUE(m.data());
  ckpt_t* c = open_with(sp, "full", interval_ms);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  EXPECT_EQ(ckpt_hook(c), 0) << "the first hook checkpoint is due interval_ms after ckpt_open";
  struct timespec nap = {0, (interval_ms + 50) * 1000000};
  nanosleep(&nap, nullptr);
  // Read before the call and after the hook fires, these bound the library's own clock reads
  // without slack: the restart happened after t_begin, the hook fired before t_fired.
  int64_t t_begin = now_ns();
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_hook(c), 0) << "the manual checkpoint should have restarted the interval";
  EXPECT_EQ(ckpt_epoch(c), 1u);
  int r = 0;
  while (r == 0 && now_ns() - t_begin < 30 * 1000000000LL) {
    m.data()[0] += 1;
    r = ckpt_hook(c);
  }
  int64_t t_fired = now_ns();
  ASSERT_EQ(r, 1) << ckpt_last_error(c);
  EXPECT_GE(t_fired - t_begin, interval_ms * 1000000);
  EXPECT_EQ(ckpt_epoch(c), 2u);
  ckpt_close(c);
}

// ckpt_session_stats splits the checkpoints' time into stopping the world, collecting and
// persisting: the parts add up to total_ns, and a checkpoint that writes pages spends time in
// the persist part.
TEST(Stats, CheckpointTimeParts) {
  StorePath sp;
  Mem m(64);
  ASSERT_TRUE(m.data());
  ckpt_t* c = open_with(sp, "full", 0);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  for (int i = 0; i < 3; i++) {
    m.data()[i * 4096] += 1;
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  }
  ckpt_session_stats st{};
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.checkpoints, 3u);
  EXPECT_EQ(st.total_stop_ns + st.total_collect_ns + st.total_persist_ns, st.total_ns);
  EXPECT_GT(st.total_persist_ns, 0u);
  EXPECT_GE(st.total_ns, st.last_ns);
  for (uint64_t r : st.reserved) EXPECT_EQ(r, 0u);
  ckpt_close(c);
}

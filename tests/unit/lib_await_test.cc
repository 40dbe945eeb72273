// SPDX-License-Identifier: MIT
// Automatic checkpoints (timer, ckpt_hook) before ckpt_restore, once per tracker: a region the
// store holds, registered but not restored yet, holds the program's fresh memory, and a timer
// or hook checkpoint must not commit it over the stored epoch (two such ticks would leave no
// copy of that epoch). Such an automatic checkpoint is skipped whole (the epoch must be one
// instant of every region) and counted; ckpt_restore or an explicit ckpt_checkpoint (the
// program starting fresh) ends the wait; a region the store does not hold is checkpointed as
// before.
#include <chrono>
#include <thread>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

class AwaitRestore : public TrackerSession {
 protected:
  // Epoch 2 of region "a" on the store, its bytes in *at (epoch 1 differs: a restore that
  // fell back to it would be seen).
  void stored_epoch(Mem& a, std::vector<unsigned char>* at) {
    ckpt_t* c = open();
    ASSERT_TRUE(c);
    ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
    memset(a.data(), 0x11, a.size());
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
    for (size_t i = 0; i < a.size(); i++) a.data()[i] = static_cast<unsigned char>(i * 7 + 3);
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
    ASSERT_EQ(ckpt_epoch(c), 2u);
    at->assign(a.data(), a.data() + a.size());
    ASSERT_EQ(ckpt_close(c), 0);
    memset(a.data(), 0, a.size());  // the restarted program's fresh memory
  }
  // The restarted program: epoch 2 of "a" stored (its bytes in *e2), a session opened with
  // `flags`, `interval_ms`, `every_n` and "a" registered, not restored yet (nullptr on failure).
  ckpt_t* awaiting(Mem& a, std::vector<unsigned char>* e2, uint32_t flags = 0,
                   uint64_t interval_ms = 0, uint64_t every_n = 0) {
    stored_epoch(a, e2);
    if (HasFatalFailure()) return nullptr;
    ckpt_t* c = open(flags, interval_ms, every_n);
    if (c && ckpt_register(c, "a", a.data(), a.size()) != 0) {
      ADD_FAILURE() << "ckpt_register: " << ckpt_last_error(c);
      ckpt_close(c);
      return nullptr;
    }
    return c;
  }
  // The next start: "a" (set to `fill` first) registered in a new session and restored holds
  // `want`, the bytes of the store's newest epoch.
  void expect_restores(Mem& a, const std::vector<unsigned char>& want, int fill,
                       const char* what = "") {
    memset(a.data(), fill, a.size());
    ckpt_t* c = open();
    ASSERT_TRUE(c);
    ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
    ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
    EXPECT_TRUE(same(a, want)) << what;
    ckpt_close(c);
  }
  static bool same(const Mem& m, const std::vector<unsigned char>& b) {
    return m.size() == b.size() && memcmp(m.data(), b.data(), b.size()) == 0;
  }
  static ckpt_session_stats stats(ckpt_t* c) {
    ckpt_session_stats st{};
    EXPECT_EQ(ckpt_get_stats(c, &st), 0);
    return st;
  }
  static void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
  // Wait (up to 5 s: a loaded machine delays the timer thread) for n skipped ticks.
  static void wait_skipped(ckpt_t* c, uint64_t n) {
    for (int i = 0; i < 500 && stats(c).skipped_checkpoints < n; i++) sleep_ms(10);
  }
};

// The bug: with CKPT_CFG_TIMER at 10 ms, the ticks between ckpt_register and ckpt_restore
// committed the zeroed memory as epochs 3, 4, ... and ckpt_restore gave zeros.
TEST_P(AwaitRestore, TimerTicksBeforeRestoreKeepTheStoredEpoch) {
  Mem a(8);
  std::vector<unsigned char> e2;
  ckpt_t* c = awaiting(a, &e2, CKPT_CFG_TIMER, 10);
  ASSERT_TRUE(c);
  a.data()[5] = 0x55;  // the program writes before it restores
  wait_skipped(c, 3);  // 3 ticks or more
  EXPECT_EQ(ckpt_epoch(c), 2u);
  EXPECT_GE(stats(c).skipped_checkpoints, 3u);
  EXPECT_EQ(stats(c).checkpoints, 0u);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(same(a, e2)) << "ckpt_restore did not give epoch 2's bytes";
  // Restored: the timer checkpoints again, the restored bytes and a later write (the second
  // tick after the write began after it).
  a.data()[9] = 0x99;
  for (int i = 0; i < 500 && ckpt_epoch(c) < 4; i++) sleep_ms(10);
  EXPECT_GE(ckpt_epoch(c), 4u);
  ASSERT_EQ(ckpt_set_timer(c, 0), 0);
  e2[9] = 0x99;
  ASSERT_EQ(ckpt_close(c), 0);
  expect_restores(a, e2, 0);
}

// The same through ckpt_hook (every_n = 1): each due hook before ckpt_restore is skipped,
// returns -EAGAIN and says why.
TEST_P(AwaitRestore, HookBeforeRestoreIsSkippedAndSaysWhy) {
  Mem a(4);
  std::vector<unsigned char> e2;
  ckpt_t* c = awaiting(a, &e2, 0, 0, 1);
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; i++) {
    a.data()[i] = 0xee;
    EXPECT_EQ(ckpt_hook(c), -EAGAIN);
    EXPECT_NE(strstr(ckpt_last_error(c), "'a'"), nullptr) << ckpt_last_error(c);
  }
  EXPECT_EQ(ckpt_epoch(c), 2u);
  EXPECT_EQ(stats(c).skipped_checkpoints, 3u);
  EXPECT_EQ(stats(c).failed_checkpoints, 0u);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(same(a, e2));
  a.data()[1] = 0x42;
  EXPECT_EQ(ckpt_hook(c), 1) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  ckpt_close(c);
}

// An explicit ckpt_checkpoint is the program's decision to start fresh: it commits the held
// region's fresh memory (every page of it), and automatic checkpoints go on after it.
TEST_P(AwaitRestore, ExplicitCheckpointStartsFresh) {
  Mem a(4);
  std::vector<unsigned char> e2;
  ckpt_t* c = awaiting(a, &e2, 0, 0, 1);
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_hook(c), -EAGAIN);
  a.data()[3 * ps()] = 0x77;
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  a.data()[0] = 0x66;
  EXPECT_EQ(ckpt_hook(c), 1) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 4u);
  std::vector<unsigned char> now(a.data(), a.data() + a.size());
  ckpt_close(c);
  expect_restores(a, now, 0xff, "the fresh start was not committed whole");
}

// While a held region awaits its restore, an automatic checkpoint commits no other region
// either (an epoch is one instant of every region); a failed ckpt_restore (-ESRCH: "b" is not
// in the checkpoint) leaves "a" awaiting. A store that does not hold the region: checkpointed
// by the timer as before.
TEST_P(AwaitRestore, OtherRegionsWaitTooAndUnheldRegionsDoNot) {
  Mem a(4), b(2);
  std::vector<unsigned char> e2;
  ckpt_t* c = awaiting(a, &e2, CKPT_CFG_TIMER, 10);
  ASSERT_TRUE(c);
  memset(b.data(), 0xbb, b.size());
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  EXPECT_EQ(ckpt_restore(c), -ESRCH);
  wait_skipped(c, 2);
  EXPECT_EQ(ckpt_epoch(c), 2u) << "an automatic checkpoint committed while 'a' awaited its restore";
  EXPECT_GE(stats(c).skipped_checkpoints, 2u);
  ASSERT_EQ(ckpt_set_timer(c, 0), 0);
  ckpt_close(c);
  expect_restores(a, e2, 0);
  if (HasFatalFailure()) return;

  // A region the store does not hold: nothing to restore, the timer commits it.
  StorePath fresh;
  ckpt_config_t cfg = config(GetParam(), CKPT_CFG_TIMER | fresh.first_flags());
  cfg.interval_ms = 10;
  ASSERT_EQ(ckpt_open(fresh.path().c_str(), &cfg, &c), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  for (int i = 0; i < 200 && ckpt_epoch(c) < 2; i++) sleep_ms(10);
  EXPECT_GE(ckpt_epoch(c), 2u);
  EXPECT_EQ(stats(c).skipped_checkpoints, 0u);
  ckpt_close(c);
}

// A persistent heap reopened before ckpt_restore: its arena (allocator metadata and objects)
// is fresh until the restore, and the timer must not commit it.
TEST_P(AwaitRestore, HeapBeforeRestoreKeepsItsObjects) {
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "h", 1 << 20, nullptr, &h), 0) << ckpt_last_error(c);
  void* p = nullptr;
  ASSERT_EQ(ckpt_heap_alloc(h, 100, &p), 0);
  strcpy(static_cast<char*>(p), "kept across the restart");
  ASSERT_EQ(ckpt_heap_set_root(h, p), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ckpt_close(c);

  c = open(CKPT_CFG_TIMER, 10);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_heap_open(c, "h", 1 << 20, nullptr, &h), 0) << ckpt_last_error(c);
  wait_skipped(c, 2);
  EXPECT_GE(stats(c).skipped_checkpoints, 2u);
  EXPECT_EQ(ckpt_epoch(c), 1u);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  void* root = nullptr;
  ASSERT_EQ(ckpt_heap_root(h, &root), 0);
  ASSERT_EQ(root, p);
  EXPECT_STREQ(static_cast<char*>(root), "kept across the restart");
  ckpt_close(c);
}

INSTANTIATE_TEST_SUITE_P(Trackers, AwaitRestore, ::testing::ValuesIn(trackers()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return test_name(i.param); });

}  // namespace

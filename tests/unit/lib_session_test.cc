// SPDX-License-Identifier: MIT
// The session layer through the C API, once per tracker: round trips, O(dirty) checkpoints, a
// randomized differential test against a full-copy oracle, kernel writes, triggers, restore
// hooks, mismatches and bad input.
#include <atomic>
#include <csetjmp>
#include <csignal>
#include <thread>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

class Session : public TrackerSession {};

void fill(unsigned char* p, size_t n, std::mt19937_64& rng) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    memcpy(p + i, &v, std::min<size_t>(8, n - i));
  }
}

TEST_P(Session, RoundTripAfterReopen) {
  Mem a(8), b(3);
  std::mt19937_64 rng(1);
  fill(a.data(), a.size(), rng);
  fill(b.data(), b.size(), rng);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_restore(c), -ENOENT);  // nothing committed yet
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  EXPECT_EQ(ckpt_epoch(c), 0u);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 1u);
  std::vector<unsigned char> oa(a.data(), a.data() + a.size()), ob(b.data(), b.data() + b.size());
  a.data()[5] ^= 0xff;  // written after the checkpoint: must not come back
  ASSERT_EQ(ckpt_close(c), 0);

  Mem a2(8), b2(3);
  c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_epoch(c), 1u);
  ASSERT_EQ(ckpt_register(c, "a", a2.data(), a2.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(memcmp(a2.data(), oa.data(), oa.size()), 0);
  EXPECT_EQ(memcmp(b2.data(), ob.data(), ob.size()), 0);
  // Still tracked after restore: a write is picked up by the next checkpoint.
  a2.data()[ps() * 3] = 0x5a;
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  if (GetParam() != "full") {
    EXPECT_EQ(st.last_pages, 1u);
  }
  EXPECT_EQ(ckpt_epoch(c), 2u);
  ckpt_close(c);
}

// A checkpoint writes the pages written since the last one, not the registered size.
TEST_P(Session, CheckpointWritesOnlyDirtyPages) {
  if (GetParam() == "full") GTEST_SKIP() << "full copies everything by definition";
  const size_t pages = 4096;  // 16 MiB
  Mem m(pages);
  // Exact counts need 4 KiB memory. THP-backed memory has documented over-reporting the test
  // cannot time: a first touch of an empty 2 MiB extent, and the kernel re-collapsing or
  // splitting a huge page between checkpoints (the mmu notifier logs the whole extent). Two
  // clean-clone CI runs saw 491 and 493 pages — one 2 MiB extent of the region — reported
  // after a checkpoint with nothing written. THP-backed memory is covered by ThpBackedMemory
  // here and by track_thp_test in the VM.
  ASSERT_EQ(madvise(m.data(), m.size(), MADV_NOHUGEPAGE), 0);
  memset(m.data(), 1, m.size());
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "big", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.last_pages, pages);  // the first checkpoint has everything
  for (size_t k : {0u, 1u, 10u, 100u}) {
    for (size_t i = 0; i < k; i++) m.data()[(i * 37 % pages) * ps() + i % 100] += 1;
    ASSERT_EQ(ckpt_checkpoint(c), 0);
    ASSERT_EQ(ckpt_get_stats(c, &st), 0);
    EXPECT_EQ(st.last_pages, k) << "after writing " << k << " pages";
  }
  // Writing the same page many times still costs one page.
  for (int i = 0; i < 1000; i++) m.data()[7 * ps() + i] = static_cast<unsigned char>(i);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.last_pages, 1u);
  ckpt_close(c);
}

// CKPT_CFG_ASYNC: the module tracker only (ckpt.ko holds the collected pages); others refuse.
TEST_P(Session, AsyncNeedsTheModule) {
  ckpt_config_t cfg = config(GetParam(), CKPT_CFG_ASYNC | (first_ ? sp_.first_flags() : 0));
  ckpt_t* c = nullptr;
  int r = ckpt_open(sp_.path().c_str(), &cfg, &c);
  if (GetParam() == "module") {
    ASSERT_EQ(r, 0) << ckpt_open_error();
    first_ = false;
    ckpt_close(c);
  } else {
    EXPECT_EQ(r, -EOPNOTSUPP);
    EXPECT_NE(std::string(ckpt_open_error()).find("asynchronous"), std::string::npos) << ckpt_open_error();
  }
}

// The module tracker only (in the VM): the Session fixture, instantiated for it alone.
class AsyncSession : public Session {};

// An asynchronous checkpoint is memory as it was at the call, although the program rewrites
// the pages at once, while the epoch is still being persisted.
TEST_P(AsyncSession, CheckpointIsMemoryAtTheCall) {
  const size_t pages = 512;
  Mem m(pages), small(1);
  ASSERT_EQ(madvise(m.data(), m.size(), MADV_NOHUGEPAGE), 0);
  std::mt19937_64 rng(42);
  fill(m.data(), m.size(), rng);
  fill(small.data(), small.size(), rng);
  ckpt_t* c = open(CKPT_CFG_ASYNC);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_register(c, "small", small.data(), small.size()), 0);
  std::vector<unsigned char> om, os;
  uint64_t copies_possible = 0;
  for (int round = 0; round < 20; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Some pages, a run, and the one-page region change before the checkpoint...
    for (int i = 0; i < 40; i++) m.data()[(rng() % pages) * ps() + rng() % ps()] ^= 0xa5;
    memset(m.data() + (rng() % (pages - 16)) * ps(), round, 16 * ps());
    small.data()[round] = static_cast<unsigned char>(rng());
    om.assign(m.data(), m.data() + m.size());
    os.assign(small.data(), small.data() + small.size());
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
    // ...and much of the region right after it, while the epoch is persisted.
    for (size_t p = round % 2; p < pages; p += 2) m.data()[p * ps() + 7] ^= 0xff;
    small.data()[0] ^= 0xff;
    copies_possible += pages / 2;
    ASSERT_EQ(ckpt_wait(c), 0) << ckpt_last_error(c);
    EXPECT_EQ(ckpt_epoch(c), static_cast<uint64_t>(round + 1));
    if (round % 5 == 4) {
      // The committed epoch is the memory at the call: restore it and compare.
      ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
      ASSERT_EQ(memcmp(m.data(), om.data(), om.size()), 0);
      ASSERT_EQ(memcmp(small.data(), os.data(), os.size()), 0);
    }
  }
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.checkpoints, 20u);
  EXPECT_EQ(st.failed_checkpoints, 0u);
  EXPECT_GT(copies_possible, 0u);
  ASSERT_EQ(ckpt_close(c), 0);
  // And after reopening, the last epoch restores.
  Mem m2(pages), s2(1);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m2.data(), m2.size()), 0);
  ASSERT_EQ(ckpt_register(c, "small", s2.data(), s2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(memcmp(m2.data(), om.data(), om.size()), 0);
  EXPECT_EQ(memcmp(s2.data(), os.data(), os.size()), 0);
  ckpt_close(c);
}

// A held page unmapped during an asynchronous checkpoint cannot be vouched for: that epoch is
// dropped (ckpt_wait says why), the previous one stays, and the next checkpoint has the pages.
TEST_P(AsyncSession, EpochWithALostPageIsDropped) {
  Mem m(64);
  memset(m.data(), 1, m.size());
  ckpt_t* c = open(CKPT_CFG_ASYNC);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ASSERT_EQ(ckpt_wait(c), 0);
  memset(m.data(), 2, m.size());
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ASSERT_EQ(madvise(m.data() + 3 * ps(), ps(), MADV_DONTNEED), 0);  // page 3 now reads 0
  int w = ckpt_wait(c);
  // The persister may have read page 3 before the madvise; then the epoch is whole.
  if (w == 0) GTEST_SKIP() << "the epoch was persisted before the page was dropped";
  EXPECT_EQ(w, -EAGAIN);
  EXPECT_NE(std::string(ckpt_last_error(c)).find("without a copy"), std::string::npos) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 1u);
  // The next checkpoint (synchronous: its pages were never held) commits memory as it is now.
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_wait(c), 0);
  EXPECT_EQ(ckpt_epoch(c), 2u);
  std::vector<unsigned char> now(m.data(), m.data() + m.size());
  memset(m.data(), 9, m.size());
  ASSERT_EQ(ckpt_restore(c), 0);
  EXPECT_EQ(memcmp(m.data(), now.data(), now.size()), 0);
  ckpt_close(c);
}

// Randomized differential test: random writes (whole pages, single bytes, runs across pages),
// checkpoints, and restores into fresh memory compared with a copy taken at each checkpoint.
TEST_P(Session, RandomizedDifferentialAgainstFullCopy) {
  const size_t pages = 200;
  for (uint64_t seed : {11u, 12u, 13u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto m = std::make_unique<Mem>(pages);
    auto small = std::make_unique<Mem>(1);
    ckpt_t* c = open(seed == 11 ? 0 : CKPT_CFG_FORMAT);
    ASSERT_TRUE(c);
    ASSERT_EQ(ckpt_register(c, "m", m->data(), m->size()), 0);
    ASSERT_EQ(ckpt_register(c, "small", small->data(), small->size()), 0);
    std::vector<unsigned char> oracle, oracle_small;
    for (int round = 0; round < 25; round++) {
      int writes = static_cast<int>(rng() % 40);
      for (int w = 0; w < writes; w++) {
        size_t off = rng() % m->size();
        switch (rng() % 3) {
          case 0: m->data()[off] = static_cast<unsigned char>(rng()); break;
          case 1: fill(m->data() + off / ps() * ps(), ps(), rng); break;
          default: {
            size_t n = std::min<size_t>(rng() % (3 * ps()), m->size() - off);
            memset(m->data() + off, static_cast<int>(rng() & 0xff), n);
          }
        }
      }
      if (rng() % 2) small->data()[rng() % ps()] = static_cast<unsigned char>(rng());
      ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
      oracle.assign(m->data(), m->data() + m->size());
      oracle_small.assign(small->data(), small->data() + small->size());
      // Writes after the checkpoint are lost by the restore below.
      m->data()[rng() % m->size()] ^= 1;
      if (round % 6 == 5) {
        ckpt_close(c);
        m = std::make_unique<Mem>(pages);
        small = std::make_unique<Mem>(1);
        c = open();
        ASSERT_TRUE(c);
        ASSERT_EQ(ckpt_register(c, "m", m->data(), m->size()), 0);
        ASSERT_EQ(ckpt_register(c, "small", small->data(), small->size()), 0);
        ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
        ASSERT_EQ(memcmp(m->data(), oracle.data(), oracle.size()), 0) << "round " << round;
        ASSERT_EQ(memcmp(small->data(), oracle_small.data(), oracle_small.size()), 0);
      }
    }
    // In-place restore in the same session brings back the last checkpoint.
    fill(m->data(), m->size(), rng);
    ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
    EXPECT_EQ(memcmp(m->data(), oracle.data(), oracle.size()), 0);
    ckpt_close(c);
  }
}

// Writes the kernel makes on the program's behalf (read(2) into tracked memory).
TEST_P(Session, KernelWritesAreCaught) {
  Mem m(4);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  char msg[64] = "written by the kernel through read(2)";
  ASSERT_EQ(write(p[1], msg, sizeof(msg)), static_cast<ssize_t>(sizeof(msg)));
  ssize_t n = read(p[0], m.data() + 2 * ps() + 100, sizeof(msg));
  close(p[0]);
  close(p[1]);
  if (GetParam() == "mprotect") {
    // Documented limit: the kernel does not fault into the SIGSEGV handler; read(2) fails
    // and nothing is written, so nothing is missed either.
    EXPECT_EQ(n, -1);
    EXPECT_EQ(errno, EFAULT);
    ckpt_close(c);
    return;
  }
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(msg)));
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_close(c);
  Mem m2(4);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m2.data(), m2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  EXPECT_STREQ(reinterpret_cast<char*>(m2.data() + 2 * ps() + 100), msg);
  ckpt_close(c);
}

// No missed write while threads race with collection: unattached writers hammer random pages
// during checkpoints (those epochs are not consistent, by definition); once they stop, one more
// checkpoint must hold memory exactly, so every write a collect raced with was reported later.
TEST_P(Session, WritersRacingCollectMissNothing) {
  const size_t pages = 512;
  Mem m(pages);
  memset(m.data(), 0, m.size());
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  std::atomic<bool> quit{false};
  std::vector<std::thread> th;
  for (int t = 0; t < 2; t++) {
    th.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      while (!quit.load(std::memory_order_relaxed)) {
        size_t p = rng() % pages;
        reinterpret_cast<volatile uint64_t*>(m.data() + p * ps())[t + (rng() % 16) * 2] = rng();
      }
    });
  }
  for (int k = 0; k < 30; k++) ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  quit = true;
  for (auto& t : th) t.join();
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  std::vector<unsigned char> want(m.data(), m.data() + m.size());
  ckpt_close(c);
  Mem r(pages);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", r.data(), r.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  for (size_t p = 0; p < pages; p++)
    ASSERT_EQ(memcmp(r.data() + p * ps(), want.data() + p * ps(), ps()), 0) << "page " << p << " missed";
  ckpt_close(c);
}

// THP-backed memory: 2 MiB pages are split as single 4 KiB pages are re-protected; restored
// bytes must match and a single-byte write must cost at most its huge page.
TEST_P(Session, ThpBackedMemory) {
  const size_t huge = 2 << 20, len = 4 * huge;
  void* raw = mmap(nullptr, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  auto* m = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(raw) + huge - 1) & ~(huge - 1));
  madvise(m, len, MADV_HUGEPAGE);
  std::mt19937_64 rng(7);
  fill(m, len, rng);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "thp", m, len), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  for (int round = 0; round < 5; round++) {
    for (int w = 0; w < 20; w++) m[rng() % len] = static_cast<unsigned char>(rng());
    ASSERT_EQ(ckpt_checkpoint(c), 0);
    ckpt_session_stats st;
    ASSERT_EQ(ckpt_get_stats(c, &st), 0);
    if (GetParam() != "full") {
      EXPECT_LE(st.last_pages, 20u * 512u);
    }
  }
  std::vector<unsigned char> want(m, m + len);
  ckpt_close(c);
  Mem r(len / ps());
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "thp", r.data(), r.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(memcmp(r.data(), want.data(), len), 0);
  ckpt_close(c);
  munmap(raw, len + huge);
}

// A checkpoint that fails (here: the store file may not grow, RLIMIT_FSIZE) leaves the previous
// epoch live and intact, and its pages stay due: the next checkpoint, once there is room,
// includes pages that were written before the failure and not since.
TEST_P(Session, FailedCheckpointKeepsPagesDue) {
  if (getenv("CKPT_TEST_STORE")) GTEST_SKIP() << "needs a growing file store";
  const size_t pages = 256;
  Mem m(pages);
  std::mt19937_64 rng(5);
  fill(m.data(), m.size(), rng);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  std::vector<unsigned char> epoch1(m.data(), m.data() + m.size());
  struct stat sb;
  ASSERT_EQ(stat(sp_.path().c_str(), &sb), 0);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = static_cast<rlim_t>(sb.st_size);
  signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  fill(m.data(), m.size(), rng);  // every page: more than the file's free room
  int r = ckpt_checkpoint(c);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, SIG_DFL);
  ASSERT_LT(r, 0) << "the checkpoint found room; the test needs it to fail";
  EXPECT_EQ(ckpt_epoch(c), 1u);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.failed_checkpoints, 1u);
  std::vector<unsigned char> epoch2(m.data(), m.data() + m.size());
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);  // nothing written since the failure
  EXPECT_EQ(ckpt_epoch(c), 2u);
  ckpt_close(c);
  Mem r2(pages);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", r2.data(), r2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(memcmp(r2.data(), epoch2.data(), epoch2.size()), 0) << "pages of the failed checkpoint were lost";
  EXPECT_NE(memcmp(r2.data(), epoch1.data(), epoch1.size()), 0);
  ckpt_close(c);
}

TEST_P(Session, HookEveryNCalls) {
  Mem m(2);
  ckpt_t* c = open(0, 0, 10);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  int taken = 0;
  for (int i = 0; i < 35; i++) {
    m.data()[0] = static_cast<unsigned char>(i);
    int r = ckpt_hook(c);
    ASSERT_GE(r, 0);
    taken += r;
  }
  EXPECT_EQ(taken, 3);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  ckpt_close(c);
}

TEST_P(Session, HookInterval) {
  const int64_t interval_ms = 20;
  Mem m(2);
  ckpt_t* c = open(0, interval_ms, 0);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  auto now_ms = [] {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  };
  int64_t t0 = now_ms();
  int taken = 0, calls = 0;
  while (taken < 3 && now_ms() - t0 < 20000) {
    m.data()[1] += 1;
    int r = ckpt_hook(c);
    ASSERT_GE(r, 0);
    taken += r;
    calls++;
  }
  // The first may be due at once (the interval runs from ckpt_open); the next two each wait a
  // full interval after the previous one; most calls in between must not checkpoint.
  EXPECT_EQ(taken, 3);
  EXPECT_GE(now_ms() - t0, 2 * interval_ms);
  EXPECT_GT(calls, 2 * taken);
  ckpt_close(c);
}

TEST_P(Session, TimerCheckpointsAttachedThread) {
  Mem m(2);
  ckpt_t* c = open(CKPT_CFG_TIMER, 10, 0);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_thread_attach(c), 0);
  EXPECT_EQ(ckpt_thread_attach(c), -EBUSY);
  uint64_t* v = reinterpret_cast<uint64_t*>(m.data());
  for (int i = 0; ckpt_epoch(c) < 3 && i < 2000000; i++) {
    v[0] = static_cast<uint64_t>(i);
    v[ps() / 8] = static_cast<uint64_t>(i);  // same value on another page, between safepoints
    ckpt_safepoint(c);
    if (i % 1000 == 0) usleep(100);
  }
  EXPECT_GE(ckpt_epoch(c), 3u);
  ASSERT_EQ(ckpt_set_timer(c, 0), 0);  // from an attached thread: must not deadlock
  ASSERT_EQ(ckpt_thread_detach(c), 0);
  EXPECT_EQ(ckpt_thread_detach(c), -ENOENT);
  ckpt_close(c);
  Mem m2(2);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "m", m2.data(), m2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  uint64_t* w = reinterpret_cast<uint64_t*>(m2.data());
  EXPECT_EQ(w[0], w[ps() / 8]);
  ckpt_close(c);
}

// Consistency with concurrent writers: each attached thread keeps an invariant that holds only
// between its safepoints (two pages hold the same counter, and a checksum page their sum). A
// checkpoint taken mid-iteration would break it; every restored epoch must satisfy it.
TEST_P(Session, ConcurrentWritersCheckpointAtSafepoints) {
  const int kThreads = 4;
  Mem m(kThreads * 3);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "state", m.data(), m.size()), 0);
  std::atomic<bool> quit{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; t++) {
    th.emplace_back([&, t] {
      ASSERT_EQ(ckpt_thread_attach(c), 0);
      ready++;
      volatile uint64_t* a = reinterpret_cast<uint64_t*>(m.data() + (3 * t) * ps());
      volatile uint64_t* b = reinterpret_cast<uint64_t*>(m.data() + (3 * t + 1) * ps());
      volatile uint64_t* s = reinterpret_cast<uint64_t*>(m.data() + (3 * t + 2) * ps());
      for (uint64_t i = 1; !quit.load(); i++) {
        *a = i;
        for (int k = 0; k < 200; k++) s[1 + k % 8] = k;  // time between the two writes
        *b = i;
        s[0] = *a + *b;
        ckpt_safepoint(c);
      }
      ckpt_thread_detach(c);
    });
  }
  while (ready.load() < kThreads) usleep(100);
  std::vector<std::vector<unsigned char>> seen;
  for (int k = 0; k < 20; k++) {
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
    usleep(1000);
  }
  quit = true;
  for (auto& t : th) t.join();
  // Break the invariant in memory after the last checkpoint: the restore must not show it.
  reinterpret_cast<uint64_t*>(m.data())[0] = 12345678;
  ckpt_close(c);
  Mem r(kThreads * 3);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "state", r.data(), r.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  EXPECT_EQ(ckpt_epoch(c), 20u);
  uint64_t total = 0;
  for (int t = 0; t < kThreads; t++) {
    uint64_t a = *reinterpret_cast<uint64_t*>(r.data() + (3 * t) * ps());
    uint64_t b = *reinterpret_cast<uint64_t*>(r.data() + (3 * t + 1) * ps());
    uint64_t s = *reinterpret_cast<uint64_t*>(r.data() + (3 * t + 2) * ps());
    EXPECT_EQ(a, b) << "thread " << t;
    EXPECT_EQ(s, a + b) << "thread " << t;
    total += a;
  }
  EXPECT_GT(total, 0u);
  ckpt_close(c);
}

struct HookLog {
  std::vector<std::string> names;
  void* addr = nullptr;
  int ret = 0;
};

int record_hook(void* arg, const char* name, void* addr, size_t len) {
  auto* log = static_cast<HookLog*>(arg);
  log->names.push_back(name);
  log->addr = addr;
  EXPECT_GT(len, 0u);
  return log->ret;
}

TEST_P(Session, RestoreHooksRunAfterFill) {
  Mem a(1), b(1);
  strcpy(reinterpret_cast<char*>(a.data()), "alpha");
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_close(c);
  Mem a2(1), b2(1);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a2.data(), a2.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  HookLog log;
  EXPECT_EQ(ckpt_on_restore(c, "nope", record_hook, &log), -ENOENT);
  ASSERT_EQ(ckpt_on_restore(c, "a", record_hook, &log), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  ASSERT_EQ(log.names.size(), 1u);
  EXPECT_EQ(log.names[0], "a");
  EXPECT_EQ(log.addr, a2.data());
  EXPECT_STREQ(reinterpret_cast<char*>(a2.data()), "alpha");
  log.ret = -EPIPE;
  EXPECT_EQ(ckpt_restore(c), -EPIPE);
  EXPECT_NE(strstr(ckpt_last_error(c), "'a'"), nullptr) << ckpt_last_error(c);
  ckpt_close(c);
}

TEST_P(Session, MismatchesAreClearErrors) {
  Mem a(4), b(1);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_close(c);

  // Size changed: refused at register, naming both sizes.
  Mem a3(3), b2(1), x(1);
  c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_register(c, "a", a3.data(), a3.size()), -EINVAL);
  EXPECT_NE(strstr(ckpt_last_error(c), "'a'"), nullptr) << ckpt_last_error(c);
  // A stored region left unregistered: no silent partial restore.
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  EXPECT_EQ(ckpt_restore(c), -ESRCH);
  EXPECT_NE(strstr(ckpt_last_error(c), "'a'"), nullptr) << ckpt_last_error(c);
  ckpt_close(c);

  // A registered region the checkpoint does not hold.
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_register(c, "new", x.data(), x.size()), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_restore(c), -ESRCH);
  EXPECT_NE(strstr(ckpt_last_error(c), "'new'"), nullptr) << ckpt_last_error(c);
  ckpt_close(c);

  // A registered region missing from the epoch: -ESRCH before anything is filled (issue 17).
  // The regions the epoch does hold keep the bytes the program has now.
  {
    Mem a4(4), b4(1), y(1);
    memset(a4.data(), 0x5a, a4.size());
    memset(b4.data(), 0xa5, b4.size());
    c = open();
    ASSERT_TRUE(c);
    ASSERT_EQ(ckpt_register(c, "a", a4.data(), a4.size()), 0) << ckpt_last_error(c);
    ASSERT_EQ(ckpt_register(c, "b", b4.data(), b4.size()), 0) << ckpt_last_error(c);
    ASSERT_EQ(ckpt_register(c, "later", y.data(), y.size()), 0) << ckpt_last_error(c);
    EXPECT_EQ(ckpt_restore(c), -ESRCH);
    EXPECT_NE(strstr(ckpt_last_error(c), "'later'"), nullptr) << ckpt_last_error(c);
    size_t touched = 0;
    for (size_t i = 0; i < a4.size(); i++) touched += a4.data()[i] != 0x5a;
    for (size_t i = 0; i < b4.size(); i++) touched += b4.data()[i] != 0xa5;
    EXPECT_EQ(touched, 0u) << "ckpt_restore filled regions before returning -ESRCH";
    ckpt_close(c);
  }

  // Opting in to a partial restore.
  c = open(CKPT_CFG_PARTIAL_RESTORE);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  EXPECT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  ckpt_close(c);
}

TEST_P(Session, BadInput) {
  Mem a(2);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_register(nullptr, "a", a.data(), a.size()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, nullptr, a.data(), a.size()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "", a.data(), a.size()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, std::string(201, 'x').c_str(), a.data(), a.size()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "@heap:x", a.data(), a.size()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "a", a.data() + 1, ps()), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "a", a.data(), 100), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "a", a.data(), 0), -EINVAL);
  EXPECT_EQ(ckpt_register(c, "a", nullptr, ps()), -EINVAL);
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  EXPECT_EQ(ckpt_register(c, "a", a.data(), ps()), -EEXIST);
  EXPECT_EQ(ckpt_register(c, "other", a.data() + ps(), ps()), -EEXIST);  // overlap
  EXPECT_EQ(ckpt_unregister(c, "nope"), -ENOENT);
  EXPECT_EQ(ckpt_unregister(c, "a"), 0);
  EXPECT_EQ(ckpt_checkpoint(nullptr), -EINVAL);
  EXPECT_EQ(ckpt_restore(nullptr), -EINVAL);
  EXPECT_EQ(ckpt_epoch(nullptr), 0u);
  EXPECT_EQ(ckpt_hook(nullptr), -EINVAL);
  EXPECT_EQ(ckpt_get_stats(c, nullptr), -EINVAL);
  EXPECT_EQ(ckpt_close(nullptr), 0);
  // The store is open: a second open is refused (in this process too).
  ckpt_t* c2 = nullptr;
  EXPECT_EQ(ckpt_open(sp_.path().c_str(), nullptr, &c2), -EBUSY);
  EXPECT_EQ(c2, nullptr);
  EXPECT_NE(strstr(ckpt_open_error(), sp_.path().c_str()), nullptr) << ckpt_open_error();
  ckpt_close(c);
}

// The fork rule (ckpt.h, "After fork"): a child of fork() gets -ECHILD from every call on its
// parent's session and touches nothing of it, and the parent goes on checkpointing. Before the
// rule the child's checkpoint was accepted (it drove the parent's io_uring ring and module
// session), and the parent's next checkpoint failed.
TEST_P(Session, ForkedChildGetsEchildParentGoesOn) {
  Mem a(4);
  memset(a.data(), 1, a.size());
  ckpt_t* c = open(CKPT_CFG_TIMER, 5);  // a timer thread too: it must not run in the child
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_set_timer(c, 0), 0);
  const uint64_t e0 = ckpt_epoch(c);
  std::string own = sp_.path() + ".child";
  if (getenv("CKPT_TEST_STORE")) own = "/tmp/ckpt-fork-child.store";
  unlink(own.c_str());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bad = 0;
    auto expect = [&](int got, int bit) { if (got != -ECHILD) bad |= 1 << bit; };
    memset(a.data(), 2, a.size());  // the child writes the parent's registered memory
    expect(ckpt_checkpoint(c), 0);
    expect(ckpt_hook(c), 1);
    expect(ckpt_register(c, "b", a.data(), a.size()), 2);
    expect(ckpt_restore(c), 3);
    expect(ckpt_wait(c), 4);
    expect(ckpt_safepoint(c), 5);
    expect(ckpt_thread_attach(c), 6);
    ckpt_session_stats st;
    expect(ckpt_get_stats(c, &st), 7);
    expect(ckpt_set_timer(c, 10), 8);
    expect(ckpt_unregister(c, "a"), 9);
    if (ckpt_epoch(c) != 0) bad |= 1 << 10;
    if (!strstr(ckpt_last_error(c), "fork")) bad |= 1 << 11;
    expect(ckpt_close(c), 12);
    // Its own store works.
    ckpt_config_t cfg = config(GetParam());
    ckpt_t* mine = nullptr;
    if (ckpt_open(own.c_str(), &cfg, &mine) != 0 || ckpt_register(mine, "a", a.data(), a.size()) != 0 ||
        ckpt_checkpoint(mine) != 0 || ckpt_epoch(mine) != 1 || ckpt_close(mine) != 0)
      bad |= 1 << 13;
    // Its parent's store is still the parent's.
    ckpt_t* theirs = nullptr;
    if (ckpt_open(sp_.path().c_str(), &cfg, &theirs) != -EBUSY) bad |= 1 << 14;
    _exit(bad ? 100 + __builtin_ctz(bad) : 0);
  }
  int wst = 0;
  ASSERT_EQ(waitpid(pid, &wst, 0), pid);
  ASSERT_TRUE(WIFEXITED(wst)) << "the child died of signal " << WTERMSIG(wst);
  EXPECT_EQ(WEXITSTATUS(wst), 0) << "check 100+N failed in the child (N: see the test)";
  unlink(own.c_str());
  // The parent: a child that system() starts and exec()s, then on.
  EXPECT_EQ(system("true"), 0);
  memset(a.data(), 3, a.size());
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), e0 + 1);
  memset(a.data(), 4, 4096);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  std::vector<unsigned char> want(a.data(), a.data() + a.size());
  memset(a.data(), 9, a.size());
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), a.data())) << "the parent's epoch is not its own";
  EXPECT_EQ(ckpt_close(c), 0);
}

INSTANTIATE_TEST_SUITE_P(Trackers, Session, ::testing::ValuesIn(trackers()),
                         [](const auto& i) { return test_name(i.param); });

std::vector<std::string> module_only() {
  auto t = trackers();
  t.erase(std::remove_if(t.begin(), t.end(), [](const std::string& x) { return x != "module"; }), t.end());
  return t;
}
// Not instantiated on a host without ckpt.ko: nothing to run there (AsyncNeedsTheModule runs).
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(AsyncSession);
INSTANTIATE_TEST_SUITE_P(Trackers, AsyncSession, ::testing::ValuesIn(module_only()),
                         [](const auto& i) { return test_name(i.param); });

TEST(Config, Invalid) {
  ckpt_t* c = nullptr;
  ckpt_config_t cfg;
  EXPECT_EQ(ckpt_config_init(nullptr), -EINVAL);
  ASSERT_EQ(ckpt_config_init(&cfg), 0);
  EXPECT_EQ(ckpt_open(nullptr, &cfg, &c), -EINVAL);
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, nullptr), -EINVAL);
  EXPECT_EQ(ckpt_open("", &cfg, &c), -EINVAL);
  cfg.tracker = 99;
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, &c), -EINVAL);
  ckpt_config_init(&cfg);
  cfg.flags = 1u << 30;
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, &c), -EINVAL);
  ckpt_config_init(&cfg);
  cfg.reserved[3] = 1;
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, &c), -EINVAL);
  ckpt_config_init(&cfg);
  cfg.size = 8;
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, &c), -EINVAL);
  ckpt_config_init(&cfg);
  cfg.flags = CKPT_CFG_TIMER;  // a timer needs an interval
  EXPECT_EQ(ckpt_open("/tmp/x", &cfg, &c), -EINVAL);
  EXPECT_NE(strstr(ckpt_open_error(), "interval_ms"), nullptr) << ckpt_open_error();
  EXPECT_EQ(c, nullptr);
}

// A write error mid-checkpoint: the store's file system fills up (a 1 MiB tmpfs, mounted in a
// private mount namespace). ckpt_checkpoint() returns -ENOSPC, the previous epoch stays live,
// restores and verifies (ckpt-tool verify), and a later checkpoint that fits succeeds.
TEST(StoreErrors, FullFileSystemIsEnospcAndThePreviousEpochStays) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  char tmpl[] = "/tmp/ckpt-enospc-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0)
      _exit(10);
    const std::string store = dir + "/s";
    Mem a(128);
    memset(a.data(), 1, a.size());
    ckpt_config_t cfg = config("full");
    ckpt_t* c = nullptr;
    if (ckpt_open(store.c_str(), &cfg, &c) != 0 || ckpt_register(c, "a", a.data(), a.size()) != 0 ||
        ckpt_checkpoint(c) != 0 || ckpt_epoch(c) != 1)
      _exit(11);
    memset(a.data(), 2, a.size());  // every page again: the store must keep epoch 1 meanwhile
    int r = ckpt_checkpoint(c);
    fprintf(stderr, "# second checkpoint: %d (%s)\n", r, ckpt_last_error(c));
    if (r != -ENOSPC) _exit(12);
    if (ckpt_epoch(c) != 1) _exit(13);
    if (ckpt_restore(c) != 0) _exit(14);
    for (size_t i = 0; i < a.size(); i++)
      if (a.data()[i] != 1) _exit(15);
    if (ckpt_close(c) != 0) _exit(16);
    // Reopened: epoch 1, and ckpt-tool verifies it.
    if (ckpt_open(store.c_str(), &cfg, &c) != 0 || ckpt_epoch(c) != 1) _exit(17);
    ckpt_close(c);
#ifdef CKPT_TOOL_PATH
    int st = system((std::string(CKPT_TOOL_PATH) + " verify -q " + store + " >&2").c_str());
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(18);
#endif
    _exit(0);
  }
  int wst = 0;
  ASSERT_EQ(waitpid(pid, &wst, 0), pid);
  rmdir(dir.c_str());
  ASSERT_TRUE(WIFEXITED(wst));
  EXPECT_EQ(WEXITSTATUS(wst), 0)
      << "10 mount, 11 first checkpoint, 12 the second was not -ENOSPC, 13 the epoch moved, "
         "14/15 restore, 16 close, 17 reopen, 18 ckpt-tool verify";
}

// A store records the program that made its checkpoint (executable path and ELF build-id);
// another program that opens it is told (-EMEDIUMTYPE, naming both), and opens it only with
// CKPT_CFG_OTHER_PROGRAM (issue 17). Before provenance, this ckpt_open returned 0 and the
// regions, had their names matched, would have been restored from heat's memory.
#ifdef CKPT_HEAT_PATH
TEST(Provenance, AnotherProgramsStoreIsRefusedUnlessAsked) {
  char tmpl[] = "/tmp/ckpt-prov-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string store = dir + "/heat.store";
  const std::string cmd = std::string("CKPT_TRACKER=full ") + CKPT_HEAT_PATH + " --store " + store +
                          " --n 32 --steps 20 --quiet >/dev/null 2>&1";
  ASSERT_EQ(0, system(cmd.c_str())) << cmd;
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = CKPT_TRACKER_FULL;
  ckpt_t* c = nullptr;
  EXPECT_EQ(-EMEDIUMTYPE, ckpt_open(store.c_str(), &cfg, &c));
  EXPECT_EQ(c, nullptr);
  const std::string why = ckpt_open_error();
  EXPECT_NE(why.find("/heat"), std::string::npos) << why;
  EXPECT_NE(why.find("build-id"), std::string::npos) << why;
  EXPECT_NE(why.find("CKPT_CFG_OTHER_PROGRAM"), std::string::npos) << why;
  // Asked explicitly: it opens, heat's regions restore into this program's memory.
  cfg.flags = CKPT_CFG_OTHER_PROGRAM;
  ASSERT_EQ(0, ckpt_open(store.c_str(), &cfg, &c)) << ckpt_open_error();
  EXPECT_GE(ckpt_epoch(c), 1u);
  Mem st(1);
  ASSERT_EQ(0, ckpt_register(c, "heat.state", st.data(), st.size()));
  // Its first checkpoint records this program: the next open needs no flag.
  cfg.flags = CKPT_CFG_PARTIAL_RESTORE;
  ASSERT_EQ(0, ckpt_checkpoint(c)) << ckpt_last_error(c);
  ckpt_close(c);
  cfg.flags = 0;
  ASSERT_EQ(0, ckpt_open(store.c_str(), &cfg, &c)) << ckpt_open_error();
  ckpt_close(c);
  // And heat is now told the same about it.
  EXPECT_NE(0, system(cmd.c_str())) << "heat opened a store this program checkpointed";
  unlink(store.c_str());
  rmdir(dir.c_str());
}
#endif

// ckpt_config.key: the commit records are authenticated; the store opens only with its key.
TEST(Config, KeyAuthenticatesTheStore) {
  char tmpl[] = "/tmp/ckpt-key-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string store = dir + "/s";
  const std::string key = "0123456789abcdef0123456789abcdef", other = "fedcba9876543210";
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = CKPT_TRACKER_FULL;
  cfg.key = key.data();
  cfg.key_len = key.size();
  Mem a(2);
  memset(a.data(), 7, a.size());
  ckpt_t* c = nullptr;
  ASSERT_EQ(0, ckpt_open(store.c_str(), &cfg, &c)) << ckpt_open_error();
  ASSERT_EQ(0, ckpt_register(c, "a", a.data(), a.size()));
  ASSERT_EQ(0, ckpt_checkpoint(c)) << ckpt_last_error(c);
  ckpt_close(c);
  ckpt_config_t nokey = cfg;
  nokey.key = nullptr;
  nokey.key_len = 0;
  EXPECT_EQ(-ENOKEY, ckpt_open(store.c_str(), &nokey, &c));
  EXPECT_NE(std::string(ckpt_open_error()).find("key"), std::string::npos) << ckpt_open_error();
  ckpt_config_t wrong = cfg;
  wrong.key = other.data();
  wrong.key_len = other.size();
  EXPECT_EQ(-EKEYREJECTED, ckpt_open(store.c_str(), &wrong, &c));
  ckpt_config_t bad = cfg;
  bad.key_len = 8;
  EXPECT_EQ(-EINVAL, ckpt_open(store.c_str(), &bad, &c));
  ASSERT_EQ(0, ckpt_open(store.c_str(), &cfg, &c)) << ckpt_open_error();
  memset(a.data(), 0, a.size());
  ASSERT_EQ(0, ckpt_register(c, "a", a.data(), a.size()));
  ASSERT_EQ(0, ckpt_restore(c)) << ckpt_last_error(c);
  EXPECT_EQ(7, a.data()[a.size() - 1]);
  ckpt_close(c);
  unlink(store.c_str());
  rmdir(dir.c_str());
}

// ckpt_open creates a missing path, but an existing one without a store only with
// CKPT_CFG_CREATE, and never one holding a file system without CKPT_CFG_FORMAT.
TEST(Config, CreateIsExplicitForExistingPaths) {
  char tmpl[] = "/tmp/ckpt-create-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const std::string empty = dir + "/empty", fs = dir + "/ext4.img", fresh = dir + "/fresh";
  int fd = open(empty.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = CKPT_TRACKER_FULL;
  ckpt_t* c = nullptr;
  EXPECT_EQ(ckpt_open(fresh.c_str(), &cfg, &c), 0) << "a missing path is created without asking";
  ckpt_close(c);
  c = nullptr;
  EXPECT_EQ(ckpt_open(empty.c_str(), &cfg, &c), -ENODATA);
  EXPECT_NE(std::string(ckpt_open_error()).find("CKPT_CFG_CREATE"), std::string::npos)
      << ckpt_open_error();
  struct stat st;
  ASSERT_EQ(stat(empty.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0) << "the refused open sized the file";
  cfg.flags = CKPT_CFG_CREATE;
  ASSERT_EQ(ckpt_open(empty.c_str(), &cfg, &c), 0) << ckpt_open_error();
  ckpt_close(c);
  c = nullptr;
  ASSERT_EQ(std::system(("truncate -s 8M " + fs + " && mkfs.ext4 -q -F " + fs).c_str()), 0);
  EXPECT_EQ(ckpt_open(fs.c_str(), &cfg, &c), -EEXIST);
  EXPECT_NE(std::string(ckpt_open_error()).find("ext4"), std::string::npos) << ckpt_open_error();
  EXPECT_EQ(std::system(("e2fsck -n -f " + fs + " >/dev/null 2>&1").c_str()), 0)
      << "the refused open damaged the file system";
  cfg.flags = CKPT_CFG_FORMAT;
  ASSERT_EQ(ckpt_open(fs.c_str(), &cfg, &c), 0) << ckpt_open_error();
  ckpt_close(c);
  std::system(("rm -rf " + dir).c_str());
}

TEST(Config, TrackerEnvironment) {
  StorePath sp;
  ckpt_t* c = nullptr;
  setenv("CKPT_TRACKER", "bogus", 1);
  EXPECT_EQ(ckpt_open(sp.path().c_str(), nullptr, &c), -EINVAL);
  setenv("CKPT_TRACKER", "full", 1);
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.flags = sp.first_flags();
  ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_STREQ(st.tracker, "full");
  ckpt_close(c);
  unsetenv("CKPT_TRACKER");
  ASSERT_EQ(ckpt_open(sp.path().c_str(), nullptr, &c), 0);
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_STREQ(st.tracker, module_tracks() ? "module" : uffd_async_available() ? "uffd-async" : "uffd");
  ckpt_close(c);
}

// Shared memory: the module refuses it (-EOPNOTSUPP), userfaultfd may (no
// UFFD_FEATURE_WP_HUGETLBFS_SHMEM); in AUTO mode the region falls back to mprotect, a forced
// tracker reports the refusal.
TEST(Auto, SharedMemoryIsTrackedByAFallback) {
  StorePath sp;
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.flags = sp.first_flags();
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0) << ckpt_open_error();
  size_t len = 8 * ps();
  auto* shm = static_cast<unsigned char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(shm, MAP_FAILED);
  ASSERT_EQ(ckpt_register(c, "shm", shm, len), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  shm[3 * ps() + 7] = 0x77;
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  EXPECT_EQ(st.last_pages, 1u);
  ckpt_close(c);
  memset(shm, 0, len);
  ASSERT_EQ(ckpt_open(sp.path().c_str(), nullptr, &c), 0);
  ASSERT_EQ(ckpt_register(c, "shm", shm, len), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(shm[3 * ps() + 7], 0x77);
  ckpt_close(c);
  if (module_tracks()) {  // forced: no fallback, a clear refusal
    cfg = config("module");
    ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0);
    EXPECT_EQ(ckpt_register(c, "shm", shm, len), -EOPNOTSUPP);
    EXPECT_NE(strstr(ckpt_last_error(c), "module"), nullptr) << ckpt_last_error(c);
    ckpt_close(c);
  }
  munmap(shm, len);
}

// The mprotect tracker chains SIGSEGV it does not own to the handler the program had.
sigjmp_buf g_jmp;
volatile sig_atomic_t g_program_handler_ran = 0;
void program_handler(int, siginfo_t*, void*) {
  g_program_handler_ran = 1;
  siglongjmp(g_jmp, 1);
}

TEST(Mprotect, ChainsTheProgramsSegvHandler) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = program_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  ASSERT_EQ(sigaction(SIGSEGV, &sa, &old), 0);
  StorePath sp;
  ckpt_config_t cfg = config("mprotect", sp.first_flags());
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0);
  Mem m(2), guard(1);
  ASSERT_EQ(ckpt_register(c, "m", m.data(), m.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  m.data()[0] = 1;  // ours: logged, no program handler
  EXPECT_EQ(g_program_handler_ran, 0);
  ASSERT_EQ(mprotect(guard.data(), ps(), PROT_NONE), 0);
  if (sigsetjmp(g_jmp, 1) == 0) {
    *reinterpret_cast<volatile char*>(guard.data()) = 1;  // not ours
    ADD_FAILURE() << "the write to a PROT_NONE page did not fault";
  }
  EXPECT_EQ(g_program_handler_ran, 1);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_session_stats st;
  ckpt_get_stats(c, &st);
  EXPECT_EQ(st.last_pages, 1u);
  ckpt_close(c);
}

TEST(MprotectDeathTest, UnhandledFaultStillKills) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        signal(SIGSEGV, SIG_DFL);
        StorePath sp;
        ckpt_config_t cfg = config("mprotect", sp.first_flags());
        ckpt_t* c = nullptr;
        if (ckpt_open(sp.path().c_str(), &cfg, &c)) _exit(3);
        Mem m(1);
        ckpt_register(c, "m", m.data(), m.size());
        volatile int* volatile bad = nullptr;
        *bad = 1;  // a real crash
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace

namespace {
// Used by tests/e2e/vm-lib.sh to tell whether the module tracker can run here.
TEST(Module, Tracks) {
  if (!module_tracks()) {
    if (getenv("CKPT_REQUIRE_MODULE")) GTEST_FAIL() << "/dev/ckpt missing or without CKPT_FEATURE_TRACK";
    GTEST_SKIP() << "/dev/ckpt missing or without CKPT_FEATURE_TRACK (host)";
  }
  ckpt_test::StorePath sp;
  ckpt_config_t cfg = config("module", sp.first_flags());
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0);
  ckpt_close(c);
}
}  // namespace

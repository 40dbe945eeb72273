// SPDX-License-Identifier: MIT
// Kill -9 campaign: a child checkpoints a deterministic state in a loop and is killed at random
// instants; after each kill this process opens the store, restores, and checks the restored
// state against the oracle (lib_crash_model.hpp). Per tracker; the kills add up to >= 200.
//   CKPT_CRASH_ROUNDS     overrides the rounds per tracker (default: 200 split over the trackers)
//   CKPT_CRASH_WINDOW_MS  "MIN,MAX" (default 10,60). 1 round in 5 kills the child a random
//                         [0, MIN) ms after it starts (start-up, open, restore); the others
//                         wait until it has committed once after restoring, then kill it a
//                         random [0, MAX-MIN) ms later (in the checkpoint loop), so every such
//                         round proves progress however loaded the machine is.
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <random>
#include <sys/wait.h>

#include "lib_crash_model.hpp"
#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

class Crash : public ::testing::TestWithParam<std::string> {};

TEST_P(Crash, KillNineAtRandomInstantsRestoresAnEpoch) {
  std::vector<std::string> ts = trackers();
  int rounds = static_cast<int>((200 + ts.size() - 1) / ts.size());
  if (const char* e = getenv("CKPT_CRASH_ROUNDS")) rounds = atoi(e);
  unsigned lo = 10, hi = 60;
  if (const char* e = getenv("CKPT_CRASH_WINDOW_MS")) sscanf(e, "%u,%u", &lo, &hi);
  ASSERT_LT(lo, hi);
  StorePath sp;
  setenv("CKPT_TRACKER", GetParam().c_str(), 1);
  if (sp.first_flags()) {  // a shared store (VM): start it empty
    ckpt_config_t cfg;
    ckpt_config_init(&cfg);
    cfg.flags = CKPT_CFG_FORMAT;
    ckpt_t* c = nullptr;
    ASSERT_EQ(ckpt_open(sp.path().c_str(), &cfg, &c), 0);
    ckpt_close(c);
  }
  std::mt19937_64 rng(std::hash<std::string>()(GetParam()) ^ 0x5eed);
  uint64_t last_n = 0, progressed = 0;
  int killed = 0, ready_rounds = 0;
  for (int round = 0; round < rounds; round++) {
    int pfd[2];
    ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(pfd[1], 3);  // dup2 clears O_CLOEXEC on the copy
      execl(CKPT_CRASH_CHILD, CKPT_CRASH_CHILD, sp.path().c_str(), "3", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(pfd[1]);
    bool early = rng() % 5 == 0, ready = false;
    if (early) {
      usleep(static_cast<useconds_t>(rng() % (lo * 1000 + 1)));
    } else {
      struct pollfd p = {pfd[0], POLLIN, 0};
      char b;
      ready = poll(&p, 1, 60000) == 1 && read(pfd[0], &b, 1) == 1;
      ready_rounds += ready;
      usleep(static_cast<useconds_t>(rng() % ((hi - lo) * 1000)));
    }
    close(pfd[0]);
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) FAIL() << "child exited by itself with " << WEXITSTATUS(status) << " in round " << round;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    killed++;

    // The store lock is a POSIX record lock, dropped as the killed child closed its files:
    // the store opens at once, although the child's io_uring may still be tearing down
    // (an flock held on through that teardown gave -EBUSY here for 5-50 ms).
    crash_model::State st;
    int r = st.open(sp.path().c_str());
    ASSERT_EQ(r, 0) << "round " << round << ": open after kill: " << strerror(-r);
    r = ckpt_restore(st.c);
    if (r == -ENOENT) {
      ASSERT_EQ(last_n, 0u) << "round " << round << ": committed state vanished";
      st.close();
      continue;
    }
    ASSERT_EQ(r, 0) << "round " << round << ": " << ckpt_last_error(st.c);
    std::string why;
    ASSERT_TRUE(st.verify(&why)) << "round " << round << ": " << why;
    ASSERT_GE(st.n(), last_n) << "round " << round << ": went back in time";
    // A child that reported a commit after its restore moved the state forward.
    if (ready) {
      ASSERT_GT(st.n(), last_n) << "round " << round << ": a commit was lost";
    }
    if (st.n() > last_n) progressed++;
    last_n = st.n();
    st.close();
  }
  unsetenv("CKPT_TRACKER");
  EXPECT_EQ(killed, rounds);
  // The campaign is only meaningful if children got to commit between kills: every round that
  // waited for the child's first commit must have moved the state forward.
  EXPECT_GE(progressed, static_cast<uint64_t>(ready_rounds)) << "final n " << last_n;
  EXPECT_GE(ready_rounds, rounds / 2);
  RecordProperty("kills", killed);
  RecordProperty("iterations", static_cast<int>(last_n));
  printf("[ crash    ] tracker %s: %d kills, %llu iterations committed, progress in %llu rounds\n",
         GetParam().c_str(), killed, static_cast<unsigned long long>(last_n),
         static_cast<unsigned long long>(progressed));
}

INSTANTIATE_TEST_SUITE_P(Trackers, Crash, ::testing::ValuesIn(trackers()),
                         [](const auto& i) { return test_name(i.param); });

}  // namespace

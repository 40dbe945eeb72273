// SPDX-License-Identifier: MIT
// Threads with persistent memory (issue 21): non-volatile threads restored by name, renamed and
// missing threads, volatile threads told when they write persistent memory, lock-aligned
// checkpoints (ckpt_mutex_t, the stop bound), a mutex held across a crash, transient ranges
// and ckpt::transient<T>.
#include <ckpt/ckpt.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>
#include <sys/wait.h>
#include <thread>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

class Threads : public ::testing::TestWithParam<std::string> {
 protected:
  ckpt_t* open(uint32_t flags = 0) {
    ckpt_config_t cfg = config(GetParam(), flags | (first_ ? sp_.first_flags() : 0));
    first_ = false;
    ckpt_t* c = nullptr;
    int r = ckpt_open(sp_.path().c_str(), &cfg, &c);
    EXPECT_EQ(r, 0) << ckpt_open_error();
    return c;
  }
  StorePath sp_;
  bool first_ = true;
};

// Runs f on a new thread and returns its result.
template <class F>
int on_thread(F&& f) {
  int r = -1;
  std::thread t([&] { r = f(); });
  t.join();
  return r;
}

// One non-volatile thread's life in a test: attach under name, a region of 2 pages and a
// heap; fill with `seed` (first run) or restore and report the restore's result.
struct Worker {
  std::string name;
  Mem mem{2};
  ckpt_heap_t* heap = nullptr;
  int attach_and_register(ckpt_t* c) {
    if (int r = ckpt_thread_attach_nv(c, name.c_str())) return r;
    if (int r = ckpt_thread_register(c, "state", mem.data(), mem.size())) return r;
    return ckpt_thread_heap_open(c, "h", 1 << 20, nullptr, &heap);
  }
  void fill(unsigned char seed) {
    memset(mem.data(), seed, mem.size());
    void* p = nullptr;
    ASSERT_EQ(ckpt_heap_alloc(heap, 64, &p), 0);
    memset(p, seed, 64);
    ASSERT_EQ(ckpt_heap_set_root(heap, p), 0);
  }
  bool holds(unsigned char seed) {
    for (size_t i = 0; i < mem.size(); i++)
      if (mem.data()[i] != seed) return false;
    void* p = nullptr;
    if (ckpt_heap_root(heap, &p) || !p) return false;
    for (int i = 0; i < 64; i++)
      if (static_cast<unsigned char*>(p)[i] != seed) return false;
    return true;
  }
};

// Write a first epoch with threads w0 and w1 (seeds 0x10, 0x11) and a shared region.
void first_run(ckpt_t* c, Mem& shared) {
  ASSERT_EQ(ckpt_register(c, "shared", shared.data(), shared.size()), 0);
  memset(shared.data(), 0x5a, shared.size());
  Worker w[2];
  std::thread t[2];
  for (int i = 0; i < 2; i++)
    t[i] = std::thread([&, i] {
      w[i].name = "w" + std::to_string(i);
      ASSERT_EQ(w[i].attach_and_register(c), 0) << ckpt_last_error(c);
      EXPECT_EQ(ckpt_thread_restore(c), -ENOENT);  // nothing committed yet: a fresh start
      w[i].fill(static_cast<unsigned char>(0x10 + i));
      ASSERT_EQ(ckpt_thread_detach(c), 0);  // its region and heap stay registered
    });
  for (auto& x : t) x.join();
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  // The heaps are the session's; the regions are unregistered so their Mem can go.
  for (auto& x : w) ASSERT_EQ(ckpt_unregister(c, ("@thread:" + x.name + ":state").c_str()), 0);
}

}  // namespace

// Each non-volatile thread gets its own regions and heap back by name, whatever the order the
// threads start in; pending counts the names still to restore.
TEST_P(Threads, NonVolatileThreadsRestoreByName) {
  Mem shared(1);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  first_run(c, shared);
  ASSERT_EQ(ckpt_close(c), 0);
  memset(shared.data(), 0, shared.size());

  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "shared", shared.data(), shared.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);  // the process's regions only
  EXPECT_EQ(shared.data()[0], 0x5a);
  ckpt_thread_stats ts;
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.pending, 2u);
  for (int i : {1, 0}) {  // the other order
    std::thread t([&, i] {
      Worker w;
      w.name = "w" + std::to_string(i);
      ASSERT_EQ(w.attach_and_register(c), 0) << ckpt_last_error(c);
      ASSERT_EQ(ckpt_thread_restore(c), 0) << ckpt_last_error(c);
      EXPECT_TRUE(w.holds(static_cast<unsigned char>(0x10 + i))) << w.name;
      w.fill(static_cast<unsigned char>(0x20 + i));
      ASSERT_EQ(ckpt_thread_detach(c), 0);
      ASSERT_EQ(ckpt_unregister(c, ("@thread:" + w.name + ":state").c_str()), 0);
    });
    t.join();
  }
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.pending, 0u);
  EXPECT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ckpt_close(c);
}

// A thread name the checkpoint does not hold, and a name it holds that nobody restores, are
// clear errors (-ESRCH naming them), and the missing thread's stored state is never overwritten;
// CKPT_CFG_PARTIAL_RESTORE starts the new thread fresh and checkpoints without the missing one.
TEST_P(Threads, RenamedThreadIsAClearError) {
  Mem shared(1);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  first_run(c, shared);
  ASSERT_EQ(ckpt_close(c), 0);

  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "shared", shared.data(), shared.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_set_stop_bound(c, 200), 0);
  std::thread t([&] {
    Worker w;
    w.name = "w0";
    ASSERT_EQ(w.attach_and_register(c), 0);
    ASSERT_EQ(ckpt_thread_restore(c), 0) << ckpt_last_error(c);
    ASSERT_EQ(ckpt_thread_detach(c), 0);
    ASSERT_EQ(ckpt_unregister(c, "@thread:w0:state"), 0);
    Worker v;  // w1 comes back as "w1-renamed"
    v.name = "w1-renamed";
    ASSERT_EQ(v.attach_and_register(c), 0);
    memset(v.mem.data(), 0x77, v.mem.size());
    EXPECT_EQ(ckpt_thread_restore(c), -ESRCH);
    std::string e = ckpt_last_error(c);
    EXPECT_NE(e.find("'w1-renamed' is not in the checkpoint"), std::string::npos) << e;
    EXPECT_NE(e.find("'w1'"), std::string::npos) << e;
    EXPECT_EQ(v.mem.data()[0], 0x77);  // untouched
    ASSERT_EQ(ckpt_thread_detach(c), 0);
    ASSERT_EQ(ckpt_unregister(c, "@thread:w1-renamed:state"), 0);
  });
  t.join();
  // w1 never restored: a checkpoint is refused at once, an automatic one at the stop bound.
  EXPECT_EQ(ckpt_checkpoint(c), -ESRCH);
  std::string e = ckpt_last_error(c);
  EXPECT_NE(e.find("'w1'"), std::string::npos) << e;
  ckpt_close(c);

  // The epoch still holds w1 as it was: the partial session below starts w1-renamed fresh,
  // checkpoints, and a later w1 gets its original state back.
  c = open(CKPT_CFG_PARTIAL_RESTORE);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "shared", shared.data(), shared.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  std::thread t2([&] {
    Worker v;
    v.name = "w1-renamed";
    ASSERT_EQ(v.attach_and_register(c), 0);
    EXPECT_EQ(ckpt_thread_restore(c), -ENOENT) << ckpt_last_error(c);
    v.fill(0x33);
    ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
    ASSERT_EQ(ckpt_thread_detach(c), 0);
    ASSERT_EQ(ckpt_unregister(c, "@thread:w1-renamed:state"), 0);
  });
  t2.join();
  ckpt_close(c);
  c = open(CKPT_CFG_PARTIAL_RESTORE);
  ASSERT_TRUE(c);
  std::thread t3([&] {
    Worker w;
    w.name = "w1";
    ASSERT_EQ(w.attach_and_register(c), 0);
    ASSERT_EQ(ckpt_thread_restore(c), 0) << ckpt_last_error(c);
    EXPECT_TRUE(w.holds(0x11));
    ASSERT_EQ(ckpt_thread_detach(c), 0);
    ASSERT_EQ(ckpt_unregister(c, "@thread:w1:state"), 0);
  });
  t3.join();
  ckpt_close(c);
}

// A thread of the epoch that has not restored yet: automatic checkpoints wait for it (up to the
// stop bound), and at the bound give up with -ESRCH; once it restores they go on.
TEST_P(Threads, AutomaticCheckpointWaitsForMissingThreadUpToTheBound) {
  Mem shared(1);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  first_run(c, shared);
  ASSERT_EQ(ckpt_close(c), 0);
  ckpt_config_t cfg = config(GetParam());
  cfg.every_n = 1;
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0);
  ASSERT_EQ(ckpt_register(c, "shared", shared.data(), shared.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  ASSERT_EQ(ckpt_set_stop_bound(c, 150), 0);
  uint64_t e0 = ckpt_epoch(c);
  EXPECT_EQ(ckpt_hook(c), -ESRCH);  // nobody restores w0 or w1 within 150 ms
  EXPECT_EQ(ckpt_epoch(c), e0);
  // With the threads restoring while the hook waits, it checkpoints.
  ASSERT_EQ(ckpt_set_stop_bound(c, 20000), 0);
  std::atomic<int> done{0};
  std::thread th[2];
  Worker w[2];
  for (int i = 0; i < 2; i++)
    th[i] = std::thread([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      w[i].name = "w" + std::to_string(i);
      ASSERT_EQ(w[i].attach_and_register(c), 0);
      ASSERT_EQ(ckpt_thread_restore(c), 0) << ckpt_last_error(c);
      ASSERT_EQ(ckpt_thread_detach(c), 0);
      done++;
    });
  EXPECT_EQ(ckpt_hook(c), 1) << ckpt_last_error(c);
  ckpt_thread_stats ts;
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.pending, 0u);  // it checkpointed only once both had restored
  for (auto& t : th) t.join();
  EXPECT_EQ(done.load(), 2);
  EXPECT_GT(ckpt_epoch(c), e0);
  ckpt_close(c);
}

// Lock alignment: a checkpoint is never taken while an attached thread holds a ckpt_mutex_t.
// An automatic one gives up at the stop bound (-ETIMEDOUT, naming the thread and its locks); a
// manual one waits until the lock is released; a hook inside a critical section takes none; a
// checkpoint from inside one is -EDEADLK.
TEST_P(Threads, CheckpointsFallBetweenCriticalSections) {
  struct S {
    ckpt_mutex_t m;
    uint64_t a, b;  // a == b outside the critical section
  };
  Mem mem(1);
  auto* s = reinterpret_cast<S*>(mem.data());
  ASSERT_EQ(ckpt_mutex_init(&s->m), 0);
  ckpt_config_t cfg = config(GetParam(), sp_.first_flags());
  cfg.every_n = 1;
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0);
  ASSERT_EQ(ckpt_register(c, "s", mem.data(), mem.size()), 0);
  ASSERT_EQ(ckpt_set_stop_bound(c, 200), 0);
  std::atomic<int> phase{0};
  std::thread t([&] {
    ASSERT_EQ(ckpt_thread_attach_nv(c, "writer"), 0);
    ASSERT_EQ(ckpt_mutex_lock(&s->m), 0);
    EXPECT_EQ(ckpt_mutex_held(), 1);
    s->a++;
    EXPECT_EQ(ckpt_hook(c), 0);  // inside the critical section: no checkpoint
    EXPECT_EQ(ckpt_checkpoint(c), -EDEADLK);
    phase = 1;
    while (phase.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the manual one waits
    s->b++;
    ASSERT_EQ(ckpt_mutex_unlock(&s->m), 0);  // a safepoint: the manual checkpoint runs here
    EXPECT_EQ(ckpt_mutex_held(), 0);
    while (phase.load() < 4) ckpt_safepoint(c);
    ASSERT_EQ(ckpt_thread_detach(c), 0);
  });
  while (phase.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  uint64_t e0 = ckpt_epoch(c);
  EXPECT_EQ(ckpt_hook(c), -ETIMEDOUT);  // automatic: gives up at the bound
  std::string e = ckpt_last_error(c);
  EXPECT_NE(e.find("'writer'"), std::string::npos) << e;
  EXPECT_NE(e.find("1 persistent lock"), std::string::npos) << e;
  EXPECT_EQ(ckpt_epoch(c), e0);
  ckpt_thread_stats ts;
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.stop_timeouts, 1u);
  EXPECT_EQ(ts.nonvolatile, 1u);
  phase = 2;
  EXPECT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);  // waits for the unlock
  phase = 4;
  t.join();
  ckpt_close(c);
  // The epoch shows the critical section done, never half done.
  memset(mem.data(), 0, mem.size());
  cfg.flags &= ~CKPT_CFG_FORMAT;  // the store just written (CKPT_TEST_STORE: formatted above)
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0);
  ASSERT_EQ(ckpt_register(c, "s", mem.data(), mem.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  EXPECT_EQ(s->a, 1u);
  EXPECT_EQ(s->b, 1u);
  ckpt_close(c);
}

// A thread waiting for a persistent lock (or in ckpt_cond_wait) holding none is at a
// safepoint: an automatic checkpoint does not wait for it, and it does not run on during it.
TEST_P(Threads, WaitingForALockIsASafepoint) {
  ckpt_mutex_t m = CKPT_MUTEX_INITIALIZER;
  ckpt_mutex_t m2 = CKPT_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  Mem mem(1);
  ckpt_config_t cfg = config(GetParam(), sp_.first_flags());
  cfg.every_n = 1;
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0);
  ASSERT_EQ(ckpt_register(c, "r", mem.data(), mem.size()), 0);
  ASSERT_EQ(ckpt_set_stop_bound(c, 5000), 0);
  std::atomic<int> in{0};
  std::atomic<bool> release{false};
  std::thread holder([&] {  // not attached: holds m while "blocked" waits for it
    ASSERT_EQ(ckpt_mutex_lock(&m), 0);
    in++;
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(ckpt_mutex_unlock(&m), 0);
  });
  while (in.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  bool ready = false;
  std::thread a([&] {
    ASSERT_EQ(ckpt_thread_attach_nv(c, "blocked"), 0);
    in++;
    ASSERT_EQ(ckpt_mutex_lock(&m), 0);  // blocks: quiet
    mem.data()[0] = 1;
    ASSERT_EQ(ckpt_mutex_unlock(&m), 0);
    ASSERT_EQ(ckpt_thread_detach(c), 0);
  });
  std::thread b([&] {
    ASSERT_EQ(ckpt_thread_attach_nv(c, "waiter"), 0);
    ASSERT_EQ(ckpt_mutex_lock(&m2), 0);
    in++;
    while (!ready) ASSERT_EQ(ckpt_cond_wait(&cv, &m2), 0);  // quiet while waiting
    ASSERT_EQ(ckpt_mutex_unlock(&m2), 0);
    ASSERT_EQ(ckpt_thread_detach(c), 0);
  });
  while (in.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both blocked by now
  // Neither thread calls a safepoint: without the quiet state this waits 5 s and times out.
  int r = ckpt_hook(c);
  EXPECT_EQ(r, 1) << ckpt_last_error(c);
  ckpt_thread_stats ts;
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.stop_timeouts, 0u);
  EXPECT_EQ(mem.data()[0], 0);  // "blocked" never got m
  release = true;
  holder.join();
  ckpt_mutex_lock(&m2);
  ready = true;
  pthread_cond_broadcast(&cv);
  ckpt_mutex_unlock(&m2);
  a.join();
  b.join();
  ckpt_close(c);
}

// A ckpt_mutex_t in registered memory, held when the checkpoint was taken (by a thread that is
// not attached) and across a SIGKILL, comes back unlocked; the data it protects is the last
// committed critical section's, never half of one.
TEST_P(Threads, MutexHeldAcrossACrashComesBackUnlocked) {
  struct S {
    ckpt_mutex_t m;
    uint64_t a, b, rounds;
  };
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the program that crashes
    close(pfd[0]);
    Mem mem(1);
    auto* s = reinterpret_cast<S*>(mem.data());
    ckpt_mutex_init(&s->m);
    ckpt_config_t cfg = config(GetParam(), sp_.first_flags());
    ckpt_t* c = nullptr;
    if (ckpt_open(sp_.path().c_str(), &cfg, &c)) _exit(2);
    if (ckpt_register(c, "s", mem.data(), mem.size())) _exit(3);
    std::atomic<bool> go{true};
    std::thread w([&] {
      ckpt_thread_attach_nv(c, "writer");
      while (go) {
        ckpt_mutex_lock(&s->m);
        s->a++;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        s->b++;
        s->rounds++;
        ckpt_mutex_unlock(&s->m);
      }
      ckpt_thread_detach(c);
    });
    while (__atomic_load_n(&s->rounds, __ATOMIC_ACQUIRE) < 3)  // the writer is at work
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 5; i++)
      if (ckpt_checkpoint(c)) _exit(4);
    // An unattached thread takes the lock and keeps it: the writer now waits for it (quiet),
    // and the next checkpoint saves the mutex's bytes locked.
    std::atomic<bool> holding{false};
    std::thread holder([&] {
      ckpt_mutex_lock(&s->m);
      holding = true;
      for (;;) pause();
    });
    while (!holding.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (ckpt_checkpoint(c)) _exit(5);
    char ok = 'k';
    if (write(pfd[1], &ok, 1) != 1) _exit(6);
    for (;;) pause();  // killed here, the mutex held
  }
  close(pfd[1]);
  char ch = 0;
  ASSERT_EQ(read(pfd[0], &ch, 1), 1) << "the child failed before its checkpoints";
  close(pfd[0]);
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));

  Mem mem(1);
  auto* s = reinterpret_cast<S*>(mem.data());
  ckpt_config_t cfg = config(GetParam());
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0) << ckpt_open_error();
  ASSERT_EQ(ckpt_register(c, "s", mem.data(), mem.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(s->a, s->b);  // no critical section half done
  EXPECT_GT(s->rounds, 0u);
  EXPECT_NE(s->m.m.__data.__lock, 0) << "the checkpoint was to hold the mutex locked";
  EXPECT_EQ(ckpt_mutex_trylock(&s->m), 0);  // yet it comes back unlocked
  EXPECT_EQ(ckpt_mutex_unlock(&s->m), 0);
  ckpt_close(c);
}

// Transient ranges (C): reset on restore to their initialiser or zeros, the rest restored;
// a thread's own region by its short name.
TEST_P(Threads, TransientRangesAreResetOnRestore) {
  Mem mem(2);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "obj", mem.data(), mem.size()), 0);
  int minus1 = -1;
  ASSERT_EQ(ckpt_transient(c, "obj", 8, sizeof(int), &minus1), 0);  // an fd
  ASSERT_EQ(ckpt_transient(c, "obj", 4096, 16, nullptr), 0);         // pointers
  EXPECT_EQ(ckpt_transient(c, "obj", 8190, 16, nullptr), -EINVAL);
  EXPECT_EQ(ckpt_transient(c, "nope", 0, 1, nullptr), -ENOENT);
  memset(mem.data(), 0x42, mem.size());
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ASSERT_EQ(ckpt_restore(c), 0);
  int fd;
  memcpy(&fd, mem.data() + 8, sizeof(fd));
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(mem.data()[7], 0x42);
  EXPECT_EQ(mem.data()[12], 0x42);
  for (int i = 0; i < 16; i++) EXPECT_EQ(mem.data()[4096 + i], 0) << i;
  EXPECT_EQ(mem.data()[4096 + 16], 0x42);
  // A non-volatile thread's own region, by its short name.
  Mem tm(1);
  std::thread t([&] {
    ASSERT_EQ(ckpt_thread_attach_nv(c, "t"), 0);
    ASSERT_EQ(ckpt_thread_register(c, "mine", tm.data(), tm.size()), 0);
    ASSERT_EQ(ckpt_transient(c, "mine", 100, 4, nullptr), 0);
    memset(tm.data(), 7, tm.size());
    ASSERT_EQ(ckpt_checkpoint(c), 0);
    ASSERT_EQ(ckpt_thread_restore(c), 0) << ckpt_last_error(c);
    EXPECT_EQ(tm.data()[99], 7);
    EXPECT_EQ(tm.data()[100], 0);
    EXPECT_EQ(tm.data()[104], 7);
    ckpt_thread_detach(c);
    ckpt_unregister(c, "@thread:t:mine");
  });
  t.join();
  ckpt_close(c);
}

// C++: ckpt::transient<T> members of an object in a persistent heap are reset at their first
// use after a restore; ckpt::mutex works with std::lock_guard and counts as a persistent lock.
TEST_P(Threads, CxxTransientAndMutex) {
  struct MinusOne {
    int operator()() const { return -1; }
  };
  struct Obj {
    ckpt::mutex mu;
    uint64_t count = 0;
    ckpt::transient<int, MinusOne> fd;
    ckpt::transient<void*> cache;
  };
  auto s = ckpt::Session::open(sp_.path(), [&] {
    ckpt::Session::Options o;
    o.cfg = config(GetParam(), sp_.first_flags());
    return o;
  }());
  ASSERT_TRUE(s.ok());
  auto h = s->heap("objs", 1 << 20);
  ASSERT_TRUE(h.ok());
  auto o = h->make<Obj>();
  ASSERT_TRUE(o.ok());
  Obj* obj = o.value();
  ASSERT_EQ(h->set_root(obj).err(), 0);
  EXPECT_EQ(obj->fd.get(), -1);
  obj->fd = 7;
  obj->cache = &obj;  // a pointer into this process's stack
  {
    std::lock_guard<ckpt::mutex> g(obj->mu);
    EXPECT_EQ(ckpt_mutex_held(), 1);
    obj->count = 5;
  }
  EXPECT_EQ(ckpt_mutex_held(), 0);
  ASSERT_TRUE(s->checkpoint().ok());
  EXPECT_EQ(obj->fd.get(), 7);  // no restore yet: the live value
  obj->count = 9;
  ASSERT_TRUE(s->restore().ok());
  EXPECT_EQ(obj->count, 5u);
  EXPECT_EQ(obj->fd.get(), -1);  // reset, not the checkpoint's 7
  EXPECT_EQ(*obj->cache, nullptr);
  std::lock_guard<ckpt::mutex> g(obj->mu);
  EXPECT_EQ(ckpt_mutex_held(), 1);
}

TEST_P(Threads, BadInput) {
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  Mem mem(1);
  EXPECT_EQ(ckpt_thread_attach_nv(c, ""), -EINVAL);
  EXPECT_EQ(ckpt_thread_attach_nv(c, "a/b"), -EINVAL);
  EXPECT_EQ(ckpt_thread_attach_nv(c, "a:b"), -EINVAL);
  EXPECT_EQ(ckpt_thread_attach_nv(c, std::string(65, 'x').c_str()), -EINVAL);
  EXPECT_EQ(ckpt_thread_attach_nv(nullptr, "x"), -EINVAL);
  EXPECT_EQ(ckpt_thread_register(c, "r", mem.data(), mem.size()), -EPERM);  // not non-volatile
  EXPECT_EQ(ckpt_thread_restore(c), -EPERM);
  EXPECT_EQ(ckpt_register(c, "@thread:x:r", mem.data(), mem.size()), -EINVAL);
  ASSERT_EQ(ckpt_thread_attach_nv(c, "same"), 0);
  EXPECT_EQ(ckpt_thread_attach(c), -EBUSY);
  EXPECT_EQ(ckpt_thread_attach_volatile(c), -EBUSY);
  EXPECT_EQ(on_thread([&] { return ckpt_thread_attach_nv(c, "same"); }), -EEXIST);
  EXPECT_EQ(ckpt_thread_detach(c), 0);
  EXPECT_EQ(ckpt_thread_detach(c), -ENOENT);
  ASSERT_EQ(ckpt_thread_attach_volatile(c), 0);
  EXPECT_EQ(ckpt_thread_register(c, "r", mem.data(), mem.size()), -EPERM);
  EXPECT_EQ(ckpt_thread_detach(c), 0);
  EXPECT_EQ(ckpt_mutex_lock(nullptr), -EINVAL);
  EXPECT_EQ(ckpt_transient(c, nullptr, 0, 1, nullptr), -EINVAL);
  ckpt_close(c);
}

INSTANTIATE_TEST_SUITE_P(Trackers, Threads, ::testing::ValuesIn(trackers()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return test_name(i.param); });

// Volatile threads, with the trackers that see which thread wrote (mprotect: the fault is the
// writer's; uffd: UFFD_FEATURE_THREAD_ID): a volatile thread's first write to a page of a
// registered region since the last checkpoint is told (-EROFS, naming the region and page);
// its reads are not, nor the non-volatile threads' writes; a checkpoint never waits for it.
class VolatileThreads : public Threads {};

TEST_P(VolatileThreads, WriteToPersistentMemoryIsTold) {
  Mem mem(4);
  ckpt_config_t cfg = config(GetParam(), sp_.first_flags());
  cfg.every_n = 1;
  ckpt_t* c = nullptr;
  ASSERT_EQ(ckpt_open(sp_.path().c_str(), &cfg, &c), 0) << ckpt_open_error();
  ASSERT_EQ(ckpt_register(c, "persistent", mem.data(), mem.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);  // every page protected again
  ASSERT_EQ(ckpt_set_stop_bound(c, 2000), 0);
  std::atomic<int> step{0};
  std::atomic<bool> spin{true};
  std::thread v([&] {
    ASSERT_EQ(ckpt_thread_attach_volatile(c), 0);
    volatile unsigned char sink = mem.data()[3 * ps()];  // a read: fine
    (void)sink;
    EXPECT_EQ(ckpt_thread_check(c), 0);
    mem.data()[2 * ps() + 5] = 9;  // a write: told
    EXPECT_EQ(ckpt_thread_check(c), -EROFS);
    std::string e = ckpt_last_error(c);
    EXPECT_NE(e.find("region 'persistent' page 2"), std::string::npos) << e;
    EXPECT_EQ(ckpt_thread_check(c), 0);  // told once
    step = 1;
    // Never at a safepoint: the checkpoints below must not wait for it.
    while (spin.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    mem.data()[1 * ps()] = 1;
    EXPECT_EQ(ckpt_safepoint(c), -EROFS);  // safepoint reports it too
    mem.data()[1 * ps() + 1] = 1;          // same page, not re-protected since: not a fault
    mem.data()[3 * ps()] = 1;
    EXPECT_EQ(ckpt_thread_detach(c), -EROFS);  // and detach
  });
  while (step.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread nv([&] {
    ASSERT_EQ(ckpt_thread_attach_nv(c, "writer"), 0);
    mem.data()[0] = 1;  // a non-volatile thread's write: not a violation
    EXPECT_EQ(ckpt_thread_check(c), 0);
    EXPECT_EQ(ckpt_thread_detach(c), 0);
  });
  nv.join();
  EXPECT_EQ(ckpt_hook(c), 1) << ckpt_last_error(c);  // not held up by the volatile thread
  ckpt_thread_stats ts;
  ASSERT_EQ(ckpt_get_thread_stats(c, &ts), 0);
  EXPECT_EQ(ts.volatile_threads, 1u);
  EXPECT_EQ(ts.stop_timeouts, 0u);
  EXPECT_GE(ts.volatile_writes, 1u);
  spin = false;
  v.join();
  ckpt_close(c);
}

namespace {
// The module tells the writer when it has CKPT_FEATURE_WATCH (CKPT_IOC_WATCH).
bool module_watches() {
  int fd = open("/dev/ckpt", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct ckpt_api a;
  memset(&a, 0, sizeof(a));
  a.api = CKPT_API_VERSION;
  bool ok = ioctl(fd, CKPT_IOC_API, &a) == 0 && (a.features & CKPT_FEATURE_WATCH);
  close(fd);
  return ok;
}

std::vector<std::string> detecting_trackers() {
  std::vector<std::string> out;
  for (auto& t : trackers())
    if (t == "mprotect" || t == "uffd" || (t == "module" && module_watches())) out.push_back(t);
  return out;
}
}  // namespace

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VolatileThreads);
INSTANTIATE_TEST_SUITE_P(Trackers, VolatileThreads, ::testing::ValuesIn(detecting_trackers()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return test_name(i.param); });

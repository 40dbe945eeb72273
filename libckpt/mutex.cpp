// SPDX-License-Identifier: MIT
// ckpt_mutex_t: a pthread mutex that counts the persistent locks each thread holds, so that
// checkpoints fall between critical sections (lock-aligned consistency, NVthreads' rule: a
// thread holding no lock on persistent data is consistent).
//
//  - lock with none held: a safepoint first (park if a checkpoint waits), then, if the mutex is
//    taken, wait for it counted as "quiet" (at a safepoint: this thread has nothing half done),
//    so a checkpoint does not wait for a thread that only waits for a lock;
//  - unlock of the last one: a safepoint;
//  - a mutex whose bytes come from another process (restored) is re-initialised, unlocked, at
//    its first use: `incarnation` names the process that initialised it.
//
// The uncontended path costs two plain loads (the mutex's incarnation against the process's),
// initial-exec TLS loads of the thread's lock count and session (session.hpp), and, only when
// the thread holds no other persistent lock, a relaxed load of the session's stop flag ("a
// checkpoint is waiting"); no system call, clock read, shared read-modify-write or lock of the
// library's own. The count is changed by plain stores: only its thread writes it.
#include <ckpt/ckpt.h>

#include <atomic>
#include <cerrno>
#include <sched.h>
#include <sys/random.h>
#include <unistd.h>

#include "session.hpp"

namespace ckpt {
namespace {

constexpr uint64_t kBusy = 1;  // incarnation while one thread re-initialises the mutex

std::atomic<uint64_t> g_incarnation{0};

uint64_t fresh_incarnation() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
    r = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL ^ static_cast<uint64_t>(now_ns());
  return r | (1ULL << 63);  // never 0 (CKPT_MUTEX_INITIALIZER) nor kBusy
}

// A child of fork() is another process: a mutex another thread of the parent held stays
// locked in the child for ever by POSIX; here it is re-initialised at its first use instead.
void on_fork_child() { g_incarnation.store(fresh_incarnation(), std::memory_order_relaxed); }

uint64_t incarnation() {
  uint64_t v = g_incarnation.load(std::memory_order_relaxed);
  if (__builtin_expect(v != 0, 1)) return v;
  static const int once = [] {
    uint64_t zero = 0;
    g_incarnation.compare_exchange_strong(zero, fresh_incarnation());
    return pthread_atfork(nullptr, nullptr, on_fork_child);
  }();
  (void)once;
  return g_incarnation.load(std::memory_order_relaxed);
}

// Make m this process's: re-initialise a mutex whose bytes another process left (unlocked now,
// whatever it was). One thread does it; others wait the few instructions it takes.
__attribute__((noinline)) void revive_slow(ckpt_mutex_t* m) {
  const uint64_t cur = incarnation();
  uint64_t v = __atomic_load_n(&m->incarnation, __ATOMIC_ACQUIRE);
  while (v != cur) {
    if (v != kBusy && __atomic_compare_exchange_n(&m->incarnation, &v, kBusy, false, __ATOMIC_ACQ_REL,
                                                  __ATOMIC_ACQUIRE)) {
      pthread_mutex_init(&m->m, nullptr);
      __atomic_store_n(&m->incarnation, cur, __ATOMIC_RELEASE);
      return;
    }
    sched_yield();
    v = __atomic_load_n(&m->incarnation, __ATOMIC_ACQUIRE);
  }
}

// Already this process's (incarnations are never 0, so CKPT_MUTEX_INITIALIZER takes the slow
// path once), else revive_slow.
inline void revive(ckpt_mutex_t* m) {
  uint64_t v = __atomic_load_n(&m->incarnation, __ATOMIC_ACQUIRE);
  if (__builtin_expect(v == g_incarnation.load(std::memory_order_relaxed) && v != 0, 1)) return;
  revive_slow(m);
}

// The calling thread took one more persistent lock / released one (only it writes the count).
inline void held_inc() { tls_held.store(tls_held.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

}  // namespace

constinit thread_local std::atomic<int> tls_held __attribute__((tls_model("initial-exec"))){0};

std::atomic<int>& held_locks() { return tls_held; }

}  // namespace ckpt

using ckpt::tls_held;

extern "C" {

int ckpt_mutex_init(ckpt_mutex_t* m) {
  if (!m) return -EINVAL;
  int e = pthread_mutex_init(&m->m, nullptr);
  if (e) return -e;
  __atomic_store_n(&m->incarnation, ckpt::incarnation(), __ATOMIC_RELEASE);
  return 0;
}

int ckpt_mutex_destroy(ckpt_mutex_t* m) {
  if (!m) return -EINVAL;
  ckpt::revive(m);
  return -pthread_mutex_destroy(&m->m);
}

int ckpt_mutex_lock(ckpt_mutex_t* m) {
  if (!m) return -EINVAL;
  ckpt::revive(m);
  // Taking the first lock, attached: the thread is consistent here, a safepoint. The session
  // of a child of fork() is the parent's: safepoint() and the quiet state are not for it.
  ckpt_t* c = tls_held.load(std::memory_order_relaxed) == 0 ? ckpt::tls_attached : nullptr;
  int e;
  if (c) {
    if (__builtin_expect(c->stop.load(std::memory_order_relaxed), 0)) c->safepoint();
    e = pthread_mutex_trylock(&m->m);
    if (e == EBUSY) {
      if (__builtin_expect(c->forked(), 0)) {
        e = pthread_mutex_lock(&m->m);
      } else {
        c->quiet_enter();  // waiting for the lock holding none: at a safepoint
        e = pthread_mutex_lock(&m->m);
        c->quiet_leave();  // parks if a checkpoint started meanwhile (this lock's data untouched)
      }
    }
  } else {
    e = pthread_mutex_lock(&m->m);
  }
  if (e) return -e;
  ckpt::held_inc();
  return 0;
}

int ckpt_mutex_trylock(ckpt_mutex_t* m) {
  if (!m) return -EINVAL;
  ckpt::revive(m);
  int e = pthread_mutex_trylock(&m->m);
  if (e) return -e;
  ckpt::held_inc();
  return 0;
}

int ckpt_mutex_unlock(ckpt_mutex_t* m) {
  if (!m) return -EINVAL;
  int e = pthread_mutex_unlock(&m->m);
  if (e) return -e;
  int h = tls_held.load(std::memory_order_relaxed);
  if (h <= 0) return 0;
  tls_held.store(h - 1, std::memory_order_relaxed);
  if (h == 1)  // released the last one: a safepoint, if a checkpoint is waiting
    if (ckpt_t* c = ckpt::tls_attached; c && __builtin_expect(c->stop.load(std::memory_order_relaxed), 0))
      c->safepoint();
  return 0;
}

int ckpt_cond_wait(pthread_cond_t* cv, ckpt_mutex_t* m) {
  if (!cv || !m) return -EINVAL;
  ckpt::revive(m);
  int held = tls_held.load(std::memory_order_relaxed);
  ckpt_t* c = held == 1 ? ckpt::tls_attached : nullptr;  // m is its only lock: quiet while waiting
  if (c && c->forked()) c = nullptr;
  if (c) c->quiet_enter();
  int e = pthread_cond_wait(cv, &m->m);
  if (c) c->quiet_leave();
  return -e;
}

int ckpt_mutex_held(void) { return tls_held.load(std::memory_order_relaxed); }

}  // extern "C"

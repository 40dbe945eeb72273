// SPDX-License-Identifier: MIT
// libckpt internal: the session behind a ckpt_t — regions, trackers, triggers, threads.
#pragma once

#include <ckpt/ckpt.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store.hpp"
#include "tracker.hpp"

struct ckpt_heap;

namespace ckpt {

struct Region {
  std::string name;
  uintptr_t addr = 0;
  size_t len = 0;
  uint32_t rid = 0;            // tracker id (session-unique)
  uint32_t sid = 0;            // store id
  Tracker* tracker = nullptr;  // primary, or the mprotect fallback
  ckpt_restore_fn hook = nullptr;
  void* hook_arg = nullptr;
  std::vector<uint64_t> carry; // collected but not yet committed (kept across a failed commit)
  std::string owner;           // the non-volatile thread that owns it ("" = the process)
  bool await_restore = false;  // the store holds a copy not restored yet: left out of checkpoints
};

// A range of a region reset on restore (ckpt_transient).
struct TransientRange {
  std::string region;
  size_t off = 0, len = 0;
  std::vector<unsigned char> init;  // empty: zeros
};

// An attached or volatile thread (threads.cpp). kind: 1 attached, 2 non-volatile, 3 volatile.
struct ThreadRec {
  ckpt_t* c = nullptr;
  int kind = 0;
  std::string name;
  long tid = 0;
  std::atomic<int>* held = nullptr;  // the thread's persistent-lock count (mutex.cpp)
  int vslot = -1;                    // volatile: its slot in the write-fault table
  bool watched = false;              // volatile: the tracker (the module) watches its writes
};

// The owner of a region name: "@thread:<owner>:..." or "@heap:@thread:<owner>:...", else "".
std::string owner_of(const std::string& region);
// A ckpt_restore() happened: ckpt_transient_generation() changes (transient.cpp).
void transient_restored();
// The calling thread's persistent-lock count (mutex.cpp).
std::atomic<int>& held_locks();
// The hot per-thread state, read on every ckpt_mutex_lock/unlock and ckpt_hook: initial-exec
// TLS (one %fs-relative load, no __tls_get_addr call as a shared library's TLS needs
// otherwise; libckpt is linked, not dlopen()ed late, and these 12 bytes fit the static TLS
// surplus even then), constinit so that no TLS init wrapper is called either.
// tls_attached: the session whose checkpoints wait for this thread (ckpt_thread_attach or a
// non-volatile attach; never a volatile thread), set by attach(), cleared by detach().
// tls_held: the thread's persistent-lock count; only the thread writes it (relaxed loads and
// stores, no read-modify-write), other threads read it for the stop bound's message.
extern constinit thread_local ckpt_t* tls_attached __attribute__((tls_model("initial-exec")));
extern constinit thread_local std::atomic<int> tls_held __attribute__((tls_model("initial-exec")));
// The calling thread's record if it is attached (any kind) to c, else nullptr.
ThreadRec* thread_rec(const ckpt_t* c);
// The calling thread is volatile on c: -EROFS once per detected write to persistent memory.
int volatile_check(ckpt_t* c);
// The C API of threads.cpp.
int thread_attach(ckpt_t* c, int kind, const char* name);
int thread_detach(ckpt_t* c);

}  // namespace ckpt

namespace ckpt {
// After fork(): the child's copy of a session belongs to the parent (its store lock, its ring,
// its module session, its trackers' state), so every call on it in the child returns -ECHILD
// (ckpt.h, "After fork"). g_fork_gen counts the forks this process came out of: a
// pthread_atfork child handler increments it, and a session remembers the value it was opened
// under. Checked without a system call (ckpt_hook's fast path).
extern std::atomic<uint64_t> g_fork_gen;
}  // namespace ckpt

struct ckpt_handle {
  ckpt_config_t cfg{};
  uint64_t fork_gen = 0;  // ckpt::g_fork_gen when opened; differs in a child of fork()
  bool forked() const { return fork_gen != ckpt::g_fork_gen.load(std::memory_order_relaxed); }
  size_t ps = 4096;
  std::unique_ptr<ckpt::store::Store> store;
  std::unique_ptr<ckpt::Tracker> tracker;
  std::unique_ptr<ckpt::Tracker> fallback;  // auto mode: mprotect for what the primary refuses
  bool tracker_forced = false;               // by cfg.tracker or CKPT_TRACKER: no fallback

  // mu protects everything below up to the world section, and serialises store and tracker
  // calls. Lock order: mu, then heap mutexes.
  mutable std::mutex mu;
  std::vector<ckpt::Region> regions;  // in registration order
  uint32_t next_rid = 1;
  std::vector<ckpt_heap*> heaps;
  std::string err;
  ckpt_session_stats stats{};

  // The world: wmu protects attached/parked/gen; stop is also read without it (fast path).
  std::mutex wmu;
  std::condition_variable wcv;
  int attached = 0;
  int parked = 0;
  // Attached threads waiting for a persistent lock holding none (at a safepoint). Changed
  // without wmu (threads.cpp, quiet_enter/leave: seq_cst against stop), read by world_stop.
  std::atomic<int> quiet{0};
  std::vector<ckpt::ThreadRec*> threads;  // plain/non-volatile/volatile records, under wmu
  uint64_t gen = 0;
  std::atomic<bool> stop{false};

  // Triggers.
  std::atomic<uint64_t> hook_calls{0};
  std::atomic<int64_t> next_due_ns{0};
  std::mutex tmu;  // protects the timer fields
  std::condition_variable tcv;
  std::thread timer;
  uint64_t timer_ms = 0;
  bool timer_quit = false;

  // Asynchronous checkpoints (CKPT_CFG_ASYNC): the epoch a background thread is persisting.
  // Every call that takes mu first reaps it (reap_job_locked: join, then account), so the job
  // has the store, the trackers' release() and the regions to itself while it runs; only
  // ckpt_hook/ckpt_safepoint (when nothing is due), attach and detach do not wait for it.
  struct Job {
    std::thread th;
    bool active = false;
    int ret = 0;
    std::string err;
    uint64_t pages = 0;
    int64_t t0 = 0, t_collected = 0, t_end = 0;
  };
  Job job;
  int job_ret = 0;  // the last reaped job's result (ckpt_wait)

  // Threads with persistent memory (threads.cpp). Under mu: pending (thread names of the
  // restored epoch not restored yet; computed at the first restore), restored_names,
  // transients. pcv (with mu): pending shrank.
  std::set<std::string> pending;
  bool pending_known = false;
  std::set<std::string> restored_names;
  std::condition_variable pcv;
  std::vector<ckpt::TransientRange> transients;
  std::atomic<uint64_t> stop_bound_ms{10000};
  std::atomic<uint64_t> stop_timeouts{0};
  std::atomic<int> watching{0};  // volatile threads the tracker watches (Tracker::watch)
  int thread_restore();
  void compute_pending_locked();
  int wait_pending(bool automatic);
  void reset_transients_locked(const ckpt::Region& r);
  int run_restore_hooks(const std::vector<ckpt::Region>& filled);  // mu not held
  void quiet_enter();
  void quiet_leave();
  std::string unparked_names();  // wmu held
  void park_locked(std::unique_lock<std::mutex>& l);  // wmu held: parked until the round ends

  int set_error(int ret, std::string msg);
  // mu, with the asynchronous checkpoint in flight (if any) finished and accounted: what every
  // call that reads or changes the session takes.
  std::unique_lock<std::mutex> lock() const {
    std::unique_lock<std::mutex> l(mu);
    const_cast<ckpt_handle*>(this)->reap_job_locked();
    return l;
  }
  int reap_job_locked();
  void account_committed_locked(uint64_t pages, int64_t t0, int64_t t_collected, int64_t t_end,
                                int64_t held_ns);
  int checkpoint_async_locked(int64_t t0);
  int put_carry(ckpt::store::Txn* txn, uint64_t* pages, std::string* why);
  void persist_job();
  int leave_module_locked();
  int do_register(const std::string& name, void* addr, size_t len);
  int do_unregister_locked(const std::string& name);
  int checkpoint(bool automatic = false);  // automatic: timer or hook (the stop bound applies)
  std::string awaiting_names_locked() const;
  int checkpoint_locked(int64_t t0);  // t0: when checkpoint() began stopping the world
  int restore(uint64_t epoch = 0);  // 0: the newest that verifies
  int supersede(uint64_t epoch);    // ckpt_supersede
  int restore_check_locked(const std::vector<ckpt::store::RegionInfo>& held, bool exact);
  int restore_check_epoch_locked(uint64_t want);
  int restore_open_locked(uint64_t want, std::unique_ptr<ckpt::store::Reader>* rd);
  int restore_fill_locked(ckpt::store::Reader& rd);
  int safepoint();
  int hook();
  int attach();
  int detach();
  int set_timer(uint64_t ms);
  int world_stop(uint64_t bound_ms = 0);  // 0 or -ETIMEDOUT at bound_ms (0: none)
  void world_resume();
  ckpt::Region* find_locked(const std::string& name);
};

struct ckpt_heap {
  ckpt_t* c = nullptr;
  std::string region;   // the store region name, "@heap:<name>@<hex address>"
  void* base = nullptr;
  size_t size = 0;
  std::mutex mu;        // protects the allocator metadata in the arena
};

namespace ckpt {
int64_t now_ns();
int heap_open(ckpt_t* c, const char* name, size_t size, void* hint, ckpt_heap_t** out);
void heap_destroy(ckpt_heap_t* h);
int heap_alloc(ckpt_heap_t* h, size_t n, void** out);
int heap_free(ckpt_heap_t* h, void* p);
}  // namespace ckpt

// SPDX-License-Identifier: MIT
// The session: registering regions, checkpoints (collect -> put pages -> commit), the
// stop-the-world protocol for attached threads, hook points and the timer. Restore and
// supersede are in session_restore.cpp.
#include "session.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace ckpt {

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

namespace {

// CLOCK_MONOTONIC_COARSE is the same clock as of the last timer tick: the vDSO answers it with
// a load from its data page, whatever the clock source, while CLOCK_MONOTONIC reads the clock
// source (or, where the kernel distrusts the TSC -- some hypervisors, QEMU's TCG -- makes a
// system call). ckpt_hook() runs at every iteration of the program's loop; measured in the VM,
// the precise read made a hook cost ~0.7 us, several % of a memory-bound loop's time.
int64_t coarse_now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// How far the coarse clock may trail the precise one: its resolution (a tick), doubled so that
// a tick handled late still never makes a due checkpoint look early. A hook may then read the
// precise clock needlessly in the last two ticks before the due time; it never checkpoints early.
int64_t coarse_margin_ns() {
  static const int64_t m = [] {
    struct timespec r;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &r)) return int64_t{20000000};
    return int64_t{2 * (static_cast<int64_t>(r.tv_sec) * 1000000000LL + r.tv_nsec)};
  }();
  return m;
}

}  // namespace

// The session the calling thread is attached to (one at a time; session.hpp).
constinit thread_local ckpt_t* tls_attached __attribute__((tls_model("initial-exec"))) = nullptr;

// A thread region's owner is part of its name, so the store needs no other record of it.
std::string owner_of(const std::string& region) {
  static const std::string kHeap = "@heap:", kThread = "@thread:";
  size_t at = region.compare(0, kHeap.size(), kHeap) ? 0 : kHeap.size();
  if (region.compare(at, kThread.size(), kThread)) return "";
  size_t b = at + kThread.size(), e = region.find(':', b);
  return e == std::string::npos ? "" : region.substr(b, e - b);
}

}  // namespace ckpt

using ckpt::Region;

int ckpt_handle::set_error(int ret, std::string msg) {
  err = std::move(msg);
  return ret;
}

Region* ckpt_handle::find_locked(const std::string& name) {
  for (auto& r : regions)
    if (r.name == name) return &r;
  return nullptr;
}

// The module refused this mm (-EXDEV: another mmu notifier, a secondary MMU such as a KVM VM,
// may write it unseen; or the mm was tracked by an earlier load of ckpt.ko — kmod/mm.c). The
// refusal is for the mm's life, so in automatic mode, and while no region is on the module yet,
// the session moves to the userspace tracker the automatic choice would take without the module.
// Asynchronous checkpoints need the module's hold: there, and with a forced tracker, the
// refusal stands. Returns 0 when the session moved, else -EXDEV.
int ckpt_handle::leave_module_locked() {
  if (tracker_forced || (cfg.flags & CKPT_CFG_ASYNC) || strcmp(tracker->name(), "module"))
    return -EXDEV;
  for (auto& r : regions)
    if (r.tracker == tracker.get()) return -EXDEV;
  std::unique_ptr<ckpt::Tracker> t;
  if (ckpt::make_userspace_tracker(&t)) return -EXDEV;
  tracker = std::move(t);
  snprintf(stats.tracker, sizeof(stats.tracker), "%s", tracker->name());
  return 0;
}

int ckpt_handle::do_register(const std::string& name, void* addr, size_t len) {
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  if (!a || a % ps || !len || len % ps || a + len < a)
    return set_error(-EINVAL, "region '" + name + "': address and length must be page-aligned and non-zero");
  auto g = lock();
  if (find_locked(name)) return set_error(-EEXIST, "region '" + name + "' is already registered");
  for (auto& r : regions)
    if (a < r.addr + r.len && r.addr < a + len)
      return set_error(-EEXIST, "region '" + name + "' overlaps registered region '" + r.name + "'");
  uint32_t sid = 0;
  int ret;
  for (int i = 0; i < 100; i++)  // -EINTR: see ckpt_open; defining again is safe
    if ((ret = store->define_region(name, len, &sid)) != -EINTR) break;
  if (ret == -EINVAL) {
    uint64_t old = 0;
    for (auto& ri : store->regions())
      if (ri.name == name) old = ri.size;
    return set_error(ret, "region '" + name + "': the store holds it with size " +
                              std::to_string(old) + ", registered with size " + std::to_string(len));
  }
  if (ret) return set_error(ret, "region '" + name + "': the store refused it: " + strerror(-ret));
  Region r;
  r.name = name;
  r.addr = a;
  r.len = len;
  r.rid = next_rid++;
  r.sid = sid;
  r.tracker = tracker.get();
  r.owner = ckpt::owner_of(name);
  // Memory the store holds a copy of, not restored yet, is the program's fresh memory: a
  // checkpoint would commit it over the stored copy. A region of the process awaits
  // ckpt_restore (or an explicit ckpt_checkpoint: the program starting fresh); a thread region
  // whose owner's stored copy is not restored yet awaits ckpt_thread_restore. Automatic
  // checkpoints are skipped while a region awaits (checkpoint()).
  if (r.owner.empty()) {
    r.await_restore = !store->read_range(sid, 0, nullptr, 0, nullptr);
  } else if (!restored_names.count(r.owner)) {
    for (auto& ri : store->regions())
      if (ri.id != sid && ckpt::owner_of(ri.name) == r.owner && !store->read_range(ri.id, 0, nullptr, 0, nullptr)) {
        r.await_restore = true;
        break;
      }
  }
  ret = tracker->add(r.rid, addr, len, true);
  if (ret == -EXDEV && (ret = leave_module_locked()) == 0) {
    r.tracker = tracker.get();
    ret = tracker->add(r.rid, addr, len, true);
  }
  if (ret == -EOPNOTSUPP && !tracker_forced && strcmp(tracker->name(), "mprotect")) {
    // E.g. shmem without UFFD_FEATURE_WP_HUGETLBFS_SHMEM: the mprotect tracker still works.
    if (!fallback) ckpt::make_mprotect_tracker(&fallback);
    r.tracker = fallback.get();
    ret = fallback->add(r.rid, addr, len, true);
  }
  if (ret == -EXDEV)
    return set_error(ret, "region '" + name + "': ckpt.ko cannot track this process's memory: another "
                              "mmu notifier (a secondary MMU such as a KVM VM, or an earlier load of "
                              "ckpt.ko) may write it unseen");
  if (ret)
    return set_error(ret, "region '" + name + "': tracker " + tracker->name() + " refused it: " + strerror(-ret));
  regions.push_back(std::move(r));
  stats.regions = regions.size();
  stats.registered_bytes += len;
  return 0;
}

int ckpt_handle::do_unregister_locked(const std::string& name) {
  for (auto it = regions.begin(); it != regions.end(); ++it) {
    if (it->name != name) continue;
    int ret = it->tracker->remove(it->rid);
    stats.registered_bytes -= it->len;
    regions.erase(it);
    stats.regions = regions.size();
    return ret;
  }
  return set_error(-ENOENT, "no region '" + name + "' is registered");
}

// Wait until every attached thread but the caller is parked at a safepoint. If another thread
// is already coordinating, the caller parks (if attached) until that checkpoint is done.
int ckpt_handle::world_stop(uint64_t bound_ms) {
  std::unique_lock<std::mutex> l(wmu);
  bool self = ckpt::tls_attached == this;
  while (stop.load()) {
    if (self) {
      park_locked(l);
    } else {
      wcv.wait(l, [&] { return !stop.load(); });
    }
  }
  // Threads parked for the previous checkpoint may not have woken up yet: counting them again
  // would let this checkpoint start while they run on into their next iteration.
  wcv.wait(l, [&] { return parked == 0; });
  stop.store(true);
  // A thread waiting for a persistent lock while holding none (quiet) is at a safepoint too.
  auto all = [&] { return parked + quiet.load() >= attached - (self ? 1 : 0); };
  if (!bound_ms) {
    wcv.wait(l, all);
    return 0;
  }
  if (wcv.wait_for(l, std::chrono::milliseconds(bound_ms), all)) return 0;
  // The stop bound (ckpt_set_stop_bound): give up this checkpoint, let the threads run on.
  std::string who = unparked_names();
  stop.store(false);
  gen++;
  wcv.notify_all();
  l.unlock();
  stop_timeouts.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> g(mu);
  stats.failed_checkpoints++;
  return set_error(-ETIMEDOUT, "checkpoint not taken: attached threads did not reach a safepoint within the "
                               "stop bound of " + std::to_string(bound_ms) + " ms (" + who + ")");
}

void ckpt_handle::world_resume() {
  std::lock_guard<std::mutex> l(wmu);
  stop.store(false);
  gen++;
  wcv.notify_all();
}

// Park the calling thread (wmu held through l) until the checkpoint in progress ends. Leaving
// wakes world_stop(), which waits for the previous round's parked threads to leave.
void ckpt_handle::park_locked(std::unique_lock<std::mutex>& l) {
  parked++;
  wcv.notify_all();
  uint64_t g = gen;
  wcv.wait(l, [&] { return gen != g; });
  parked--;
  wcv.notify_all();
}

int ckpt_handle::safepoint() {
  if (!stop.load(std::memory_order_acquire)) return 0;
  // A child of fork(): the copy's world (its wmu, its stop) is the parent's, not ours.
  if (forked()) return 0;
  // Inside a critical section of a persistent lock: not a safepoint (it is when the last
  // ckpt_mutex_t is released).
  if (ckpt::tls_held.load(std::memory_order_relaxed) > 0) return 0;
  std::unique_lock<std::mutex> l(wmu);
  if (!stop.load() || ckpt::tls_attached != this) return 0;
  park_locked(l);
  return 0;
}

int ckpt_handle::attach() {
  std::unique_lock<std::mutex> l(wmu);
  if (ckpt::tls_attached) return -EBUSY;
  wcv.wait(l, [&] { return !stop.load(); });
  attached++;
  ckpt::tls_attached = this;
  return 0;
}

int ckpt_handle::detach() {
  std::lock_guard<std::mutex> l(wmu);
  if (ckpt::tls_attached != this) return -ENOENT;
  attached--;
  ckpt::tls_attached = nullptr;
  wcv.notify_all();
  return 0;
}

int ckpt_handle::checkpoint(bool automatic) {
  if (ckpt::held_locks().load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> g(mu);
    return set_error(-EDEADLK, "checkpoint refused: the calling thread holds " +
                                   std::to_string(ckpt::held_locks().load()) +
                                   " persistent lock(s) (ckpt_mutex_t): its critical section is half done");
  }
  if (int w = wait_pending(automatic)) return w;
  int64_t t0 = ckpt::now_ns();
  if (int w = world_stop(automatic ? stop_bound_ms.load() : 0)) {
    if (cfg.interval_ms)
      next_due_ns.store(ckpt::now_ns() + static_cast<int64_t>(cfg.interval_ms) * 1000000);
    return w;
  }
  int ret;
  {
    std::lock_guard<std::mutex> g(mu);
    reap_job_locked();  // one epoch in flight at a time; its failure is counted in stats
    std::string awaiting = awaiting_names_locked();
    if (automatic && !awaiting.empty()) {
      // The whole epoch waits: one without these regions would mix their stored state with
      // the others' fresh one, and one with them would commit their fresh memory over it.
      stats.skipped_checkpoints++;
      ret = set_error(-EAGAIN, "automatic checkpoint skipped: the store holds regions not restored yet: " +
                                   awaiting + " (ckpt_restore, or ckpt_thread_restore in their thread, "
                                   "fills them; ckpt_checkpoint starts the process's regions fresh)");
    } else {
      if (!automatic)  // the program's decision: its process regions' memory is the state now
        for (auto& r : regions)
          if (r.owner.empty()) r.await_restore = false;
      ret = (cfg.flags & CKPT_CFG_ASYNC) ? checkpoint_async_locked(t0) : checkpoint_locked(t0);
      if (!job.active) job_ret = ret;  // a synchronous one (ckpt_wait reports the latest)
    }
  }
  // Every checkpoint (manual, timer or hook) restarts the hook interval from its end: a
  // checkpoint slower than the interval must not make the next one follow immediately, which
  // would leave the program no time between checkpoints.
  if (cfg.interval_ms)
    next_due_ns.store(ckpt::now_ns() + static_cast<int64_t>(cfg.interval_ms) * 1000000);
  world_resume();
  return ret;
}

// Put every region's carry (sorted) from memory: each run of consecutive pages in one
// put_pages, which checksums and writes it in few large writes instead of one per page.
int ckpt_handle::put_carry(ckpt::store::Txn* txn, uint64_t* pages, std::string* why) {
  for (auto& r : regions) {
    for (size_t i = 0; i < r.carry.size();) {
      size_t j = i + 1;
      while (j < r.carry.size() && r.carry[j] == r.carry[j - 1] + 1) j++;
      uint64_t p = r.carry[i];
      if (int e = txn->put_pages(r.sid, p, reinterpret_cast<const void*>(r.addr + p * ps), j - i)) {
        *why = "region '" + r.name + "': writing pages " + std::to_string(p) + "-" +
               std::to_string(r.carry[j - 1]) + " failed: " + strerror(-e);
        return e;
      }
      *pages += j - i;
      i = j;
    }
  }
  return 0;
}

// The registered regions awaiting their restore, quoted and comma-separated ("" if none).
std::string ckpt_handle::awaiting_names_locked() const {
  std::string out;
  for (auto& r : regions)
    if (r.await_restore) out += (out.empty() ? "'" : ", '") + r.name + "'";
  return out;
}

int ckpt_handle::checkpoint_locked(int64_t t0) {
  int64_t t_stopped = ckpt::now_ns();
  for (ckpt_heap* h : heaps) h->mu.lock();  // no allocation half-done in the epoch
  int ret = 0;
  // Collect everything first: pages taken from a tracker stay in carry until a commit succeeds.
  for (auto& r : regions) {
    if (r.await_restore) continue;  // not restored yet: the store keeps its copy
    size_t before = r.carry.size();
    int e = r.tracker->collect(r.rid, &r.carry);
    if (e && !ret) ret = set_error(e, "region '" + r.name + "': collect failed: " + strerror(-e));
    if (before && r.carry.size() > before) {
      std::sort(r.carry.begin(), r.carry.end());
      r.carry.erase(std::unique(r.carry.begin(), r.carry.end()), r.carry.end());
    }
  }
  uint64_t pages = 0;
  int64_t t_collected = ckpt::now_ns();
  if (!ret) {
    std::unique_ptr<ckpt::store::Txn> txn;
    ret = store->begin(&txn);
    if (ret) set_error(ret, std::string("store: begin failed: ") + strerror(-ret));
    if (!ret) {
      std::string why;
      ret = put_carry(txn.get(), &pages, &why);
      if (ret) set_error(ret, why);
    }
    if (!ret) {
      ret = txn->commit();
      if (ret) set_error(ret, std::string("store: commit failed: ") + strerror(-ret));
    }
  }
  for (ckpt_heap* h : heaps) h->mu.unlock();
  int64_t t_end = ckpt::now_ns(), dt = t_end - t0;
  if (ret) {
    stats.failed_checkpoints++;
    return ret;
  }
  stats.total_stop_ns += static_cast<uint64_t>(t_stopped - t0);
  stats.total_collect_ns += static_cast<uint64_t>(t_collected - t_stopped);
  account_committed_locked(pages, t0, t_collected, t_end, dt);
  return 0;
}

// A committed checkpoint, synchronous or asynchronous (stop and collect times are counted when
// they happen): carry is done with, and the statistics. held_ns: what the program waited.
void ckpt_handle::account_committed_locked(uint64_t pages, int64_t t0, int64_t t_collected,
                                            int64_t t_end, int64_t held_ns) {
  for (auto& r : regions) r.carry.clear();
  stats.checkpoints++;
  stats.pages_written += pages;
  stats.last_pages = pages;
  stats.last_ns = static_cast<uint64_t>(t_end - t0);
  stats.total_ns += static_cast<uint64_t>(held_ns);
  stats.total_persist_ns += static_cast<uint64_t>(t_end - t_collected);
  stats.epoch = store->epoch();
}

// Asynchronous checkpoint, the foreground part (world stopped, mu held): collect and hold the
// written pages, hand them to a thread that persists them while the program runs on. A page the
// program writes before the thread has read it is copied by the module first (hold.c), and
// release() gives the copy back, so the epoch is memory as it was at the collect.
int ckpt_handle::checkpoint_async_locked(int64_t t0) {
  // Pages a failed epoch left in carry were never held: a write to them would not be copied.
  // Such a checkpoint, and regions on a tracker that cannot hold (the mprotect fallback), are
  // persisted with the world stopped, as without CKPT_CFG_ASYNC.
  for (auto& r : regions)
    if (!r.carry.empty() || !r.tracker->can_hold() || r.await_restore) return checkpoint_locked(t0);
  int64_t t_stopped = ckpt::now_ns();
  for (ckpt_heap* h : heaps) h->mu.lock();  // no allocation half-done in the epoch
  int ret = 0;
  size_t held = 0;
  for (auto& r : regions) {
    int e = r.tracker->collect_hold(r.rid, &r.carry);
    if (e) {
      ret = set_error(e, "region '" + r.name + "': collect failed: " + strerror(-e));
      break;
    }
    held++;
  }
  for (ckpt_heap* h : heaps) h->mu.unlock();
  int64_t t_collected = ckpt::now_ns();
  if (ret) {
    // End the holds taken; their pages stay in carry for the next (synchronous) checkpoint.
    for (size_t i = 0; i < held; i++) {
      uint64_t lost = 0;
      regions[i].tracker->release(regions[i].rid, [](uint64_t, const void*) { return 0; }, &lost);
    }
    stats.failed_checkpoints++;
    return ret;
  }
  stats.total_stop_ns += static_cast<uint64_t>(t_stopped - t0);
  stats.total_collect_ns += static_cast<uint64_t>(t_collected - t_stopped);
  job = Job{};
  job.active = true;
  job.t0 = t0;
  job.t_collected = t_collected;
  try {
    job.th = std::thread([this] { persist_job(); });
  } catch (const std::system_error&) {
    persist_job();  // no thread: persist now, with the world still stopped
  }
  return 0;
}

// The background part: put the held pages from memory, then the module's copies of those
// written meanwhile over them, and commit. Runs without mu (see Job).
void ckpt_handle::persist_job() {
  int ret = 0;
  std::string why;
  uint64_t pages = 0;
  std::unique_ptr<ckpt::store::Txn> txn;
  try {
    ret = store->begin(&txn);
    if (ret) why = std::string("store: begin failed: ") + strerror(-ret);
    if (!ret) ret = put_carry(txn.get(), &pages, &why);
    // Every hold ends here, whatever happened above: the module frees its copies.
    for (auto& r : regions) {
      uint64_t lost = 0;
      int e = r.tracker->release(
          r.rid, [&](uint64_t p, const void* d) { return ret ? 0 : txn->put_page(r.sid, p, d); }, &lost);
      if (e && !ret) {
        ret = e;
        why = "region '" + r.name + "': taking the module's copies failed: " + strerror(-e);
      }
      if (lost && !ret) {
        ret = -EAGAIN;
        why = "region '" + r.name + "': " + std::to_string(lost) +
              " pages changed without a copy during an asynchronous checkpoint (unmapped, "
              "MADV_DONTNEED, swapped out); the epoch was dropped and its pages go into the next one";
      }
    }
    if (!ret) {
      ret = txn->commit();
      if (ret) why = std::string("store: commit failed: ") + strerror(-ret);
    }
    txn.reset();
  } catch (const std::bad_alloc&) {
    ret = -ENOMEM;
    why = "out of memory during an asynchronous checkpoint";
  }
  job.ret = ret;
  job.err = std::move(why);
  job.pages = pages;
  job.t_end = ckpt::now_ns();
}

// Wait for the asynchronous checkpoint in flight, if any, and account for it. mu held.
int ckpt_handle::reap_job_locked() {
  if (!job.active) return job_ret;
  if (job.th.joinable()) job.th.join();
  job.active = false;
  job_ret = job.ret;
  if (job.ret) {
    stats.failed_checkpoints++;
    set_error(job.ret, job.err);
    return job_ret;  // the pages stay in carry: the next checkpoint persists them
  }
  account_committed_locked(job.pages, job.t0, job.t_collected, job.t_end, job.t_collected - job.t0);
  return 0;
}

int ckpt_handle::hook() {
  safepoint();
  // Inside a persistent lock's critical section nothing is checkpointed (it stays due).
  if (ckpt::tls_held.load(std::memory_order_relaxed) > 0) return 0;
  // Nothing here when nothing is due but an atomic load, (with every_n) a counter, and (with
  // interval_ms) a coarse clock read; the precise clock only near the due time.
  bool due = false;
  if (cfg.every_n) due = (hook_calls.fetch_add(1, std::memory_order_relaxed) + 1) % cfg.every_n == 0;
  if (!due && cfg.interval_ms && !(cfg.flags & CKPT_CFG_TIMER)) {
    int64_t d = next_due_ns.load(std::memory_order_relaxed);
    if (ckpt::coarse_now_ns() + ckpt::coarse_margin_ns() >= d) {
      int64_t now = ckpt::now_ns();
      if (now >= d)  // one caller wins; the checkpoint sets the next due time from its end
        due = next_due_ns.compare_exchange_strong(d, now + static_cast<int64_t>(cfg.interval_ms) * 1000000);
    }
  }
  if (!due) return 0;
  int ret = checkpoint(true);  // sets the next due time from its end
  return ret < 0 ? ret : 1;
}

int ckpt_handle::set_timer(uint64_t ms) {
  std::unique_lock<std::mutex> l(tmu);
  if (timer.joinable()) {
    timer_quit = true;
    tcv.notify_all();
    l.unlock();
    // The timer may be waiting for this thread to park: count it as parked while joining (it
    // touches no registered memory), and leave only once no checkpoint is running.
    bool self = ckpt::tls_attached == this;
    if (self) {
      std::lock_guard<std::mutex> w(wmu);
      parked++;
      wcv.notify_all();
    }
    timer.join();
    if (self) {
      std::unique_lock<std::mutex> w(wmu);
      wcv.wait(w, [&] { return !stop.load(); });
      parked--;
    }
    l.lock();
    timer = std::thread();
  }
  timer_quit = false;
  timer_ms = ms;
  if (!ms) return 0;
  try {
    timer = std::thread([this] {
      std::unique_lock<std::mutex> tl(tmu);
      for (;;) {
        if (tcv.wait_for(tl, std::chrono::milliseconds(timer_ms), [&] { return timer_quit; })) return;
        tl.unlock();
        checkpoint(true);  // failures are counted in stats; the next tick tries again
        tl.lock();
      }
    });
  } catch (...) {
    return -EAGAIN;
  }
  return 0;
}

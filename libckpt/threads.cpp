// SPDX-License-Identifier: MIT
// Threads with persistent memory: non-volatile threads (a stable name, regions and heaps of
// their own, restored by name by each thread when it starts), volatile threads (never waited
// for, told when they write persistent memory), the "quiet" state of a thread waiting for a
// persistent lock, and the bookkeeping of which thread names of a restored epoch are still to
// restore. User-facing rules: ckpt.h and user-guide.md "Threads and persistent memory".
#include <ckpt/ckpt.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sys/syscall.h>
#include <unistd.h>

#include "session.hpp"

namespace ckpt {
namespace {

thread_local ThreadRec* tls_rec = nullptr;

long my_tid() { return static_cast<long>(syscall(SYS_gettid)); }

// Volatile threads' write faults, filled by the trackers' fault paths (async-signal-safe: a
// fixed table of atomics). A slot is taken by a volatile thread at attach, freed at detach.
constexpr int kVSlots = 256;
struct VSlot {
  std::atomic<long> tid{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uintptr_t> first{0};  // the first address written since the last check
};
VSlot g_vslots[kVSlots];
std::atomic<int> g_nvolatile{0};
std::atomic<uint64_t> g_volatile_writes{0};

bool valid_thread_name(const char* n) {
  if (!n) return false;
  size_t len = strnlen(n, CKPT_THREAD_NAME_MAX + 1);
  if (len < 1 || len > CKPT_THREAD_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char ch = n[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
          ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

}  // namespace

std::string join_names(const std::set<std::string>& s) {
  std::string out;
  for (auto& x : s) out += (out.empty() ? "'" : ", '") + x + "'";
  return out.empty() ? "none" : out;
}

namespace {
void on_write_fault(long tid, uintptr_t addr) {
  if (g_nvolatile.load(std::memory_order_relaxed) == 0) return;
  if (!tid) tid = my_tid();
  for (auto& s : g_vslots) {
    if (s.tid.load(std::memory_order_acquire) != tid) continue;
    uintptr_t zero = 0;
    s.first.compare_exchange_strong(zero, addr, std::memory_order_acq_rel);
    s.writes.fetch_add(1, std::memory_order_acq_rel);
    g_volatile_writes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
}
}  // namespace

ThreadRec* thread_rec(const ckpt_t* c) {
  ThreadRec* r = tls_rec;
  return r && (!c || r->c == c) ? r : nullptr;
}

int thread_attach(ckpt_t* c, int kind, const char* name) {
  if (kind == 2 && !valid_thread_name(name)) return -EINVAL;
  if (tls_rec) return -EBUSY;
  auto rec = std::make_unique<ThreadRec>();
  rec->c = c;
  rec->kind = kind;
  rec->name = name ? name : "";
  rec->tid = my_tid();
  rec->held = &held_locks();
  if (kind == 3) {
    for (int i = 0; i < kVSlots && rec->vslot < 0; i++) {
      long zero = 0;
      if (g_vslots[i].tid.compare_exchange_strong(zero, rec->tid, std::memory_order_acq_rel)) {
        g_vslots[i].writes.store(0);
        g_vslots[i].first.store(0);
        rec->vslot = i;
      }
    }
    if (rec->vslot < 0) return -EAGAIN;
    g_write_observer.store(on_write_fault, std::memory_order_release);
    g_nvolatile.fetch_add(1, std::memory_order_acq_rel);
    {
      // The module's fault path runs in the kernel: it logs this thread's writes for us.
      std::lock_guard<std::mutex> g(c->mu);
      if (c->tracker->watch(rec->tid, true) == 0) {
        rec->watched = true;
        c->watching.fetch_add(1, std::memory_order_relaxed);
      }
    }
    std::lock_guard<std::mutex> l(c->wmu);
    c->threads.push_back(rec.get());
  } else {
    {
      std::lock_guard<std::mutex> l(c->wmu);
      if (kind == 2)
        for (ThreadRec* t : c->threads)
          if (t->kind == 2 && t->name == rec->name) {
            std::lock_guard<std::mutex> g(c->mu);
            return c->set_error(-EEXIST, "thread '" + rec->name + "' is already attached (tid " +
                                             std::to_string(t->tid) + ")");
          }
    }
    int e = c->attach();
    if (e) return e;
    std::lock_guard<std::mutex> l(c->wmu);
    c->threads.push_back(rec.get());
  }
  tls_rec = rec.release();
  return 0;
}

int volatile_check(ckpt_t* c) {
  ThreadRec* r = tls_rec;
  if (!r || r->c != c || r->kind != 3) return 0;
  if (c->watching.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> g(c->mu);  // the module's hits into the slots (on_write_fault)
    c->tracker->report_writers();
  }
  VSlot& s = g_vslots[r->vslot];
  if (s.writes.load(std::memory_order_acquire) == 0) return 0;
  uint64_t n = s.writes.exchange(0, std::memory_order_acq_rel);
  uintptr_t a = s.first.exchange(0, std::memory_order_acq_rel);
  std::lock_guard<std::mutex> g(c->mu);
  std::string where = "an unregistered address";
  for (auto& reg : c->regions)
    if (a >= reg.addr && a < reg.addr + reg.len)
      where = "region '" + reg.name + "' page " + std::to_string((a - reg.addr) / c->ps);
  char buf[32];
  snprintf(buf, sizeof(buf), "%#" PRIxPTR, a);
  return c->set_error(-EROFS, "volatile thread " + std::to_string(r->tid) + " wrote persistent memory: " +
                                  std::to_string(n) + " write fault(s) detected, the first at " + buf + " (" +
                                  where + "); volatile threads must not write registered memory");
}

int thread_detach(ckpt_t* c) {
  ThreadRec* r = tls_rec;
  if (!r || r->c != c) {
    // A thread attached with ckpt_thread_attach before records existed has none: plain detach.
    return c->detach();
  }
  int ret = volatile_check(c);
  {
    std::lock_guard<std::mutex> l(c->wmu);
    c->threads.erase(std::remove(c->threads.begin(), c->threads.end(), r), c->threads.end());
  }
  if (r->kind == 3) {
    if (r->watched) {
      std::lock_guard<std::mutex> g(c->mu);
      c->tracker->watch(r->tid, false);
      c->watching.fetch_sub(1, std::memory_order_relaxed);
    }
    g_vslots[r->vslot].tid.store(0, std::memory_order_release);
    g_nvolatile.fetch_sub(1, std::memory_order_acq_rel);
  } else {
    int e = c->detach();
    if (!ret) ret = e;
  }
  tls_rec = nullptr;
  delete r;
  return ret;
}

}  // namespace ckpt

using ckpt::Region;

// The quiet state costs no lock on the way in or out unless a checkpoint is stopping the world
// (stop): quiet and stop are both seq_cst, so world_stop (stop := true, then reads quiet under
// wmu) and this thread (quiet changed, then reads stop) cannot both miss the other.
void ckpt_handle::quiet_enter() {
  quiet.fetch_add(1, std::memory_order_seq_cst);
  if (!stop.load(std::memory_order_seq_cst)) return;
  // world_stop may be waiting for this thread: wake it (under wmu, so that the wake-up cannot
  // fall between its test of the count and its wait).
  std::lock_guard<std::mutex> l(wmu);
  wcv.notify_all();
}

// Leaving the quiet state while a checkpoint runs (it may have counted this thread as at a
// safepoint): become parked until it ends, so that it never sees this thread run. If world_stop
// read the count before the decrement, this thread's read of stop comes after its store.
void ckpt_handle::quiet_leave() {
  quiet.fetch_sub(1, std::memory_order_seq_cst);
  if (!stop.load(std::memory_order_seq_cst)) return;
  std::unique_lock<std::mutex> l(wmu);
  if (!stop.load()) return;
  park_locked(l);
}

std::string ckpt_handle::unparked_names() {
  std::string out;
  int n = 0;
  for (ckpt::ThreadRec* t : threads) {
    if (t->kind == 3) continue;
    int h = t->held->load(std::memory_order_relaxed);
    if (!h) continue;
    out += std::string(n++ ? ", " : "") + (t->name.empty() ? "an attached thread" : "'" + t->name + "'") +
           " (tid " + std::to_string(t->tid) + ") holds " + std::to_string(h) + " persistent lock(s)";
  }
  return n ? out : "no thread holds a persistent lock: a thread did not call a safepoint";
}

// The thread names that own regions of the newest committed epoch, minus those restored.
void ckpt_handle::compute_pending_locked() {
  if (pending_known) return;
  pending_known = true;
  for (auto& ri : store->regions()) {
    std::string o = ckpt::owner_of(ri.name);
    if (!o.empty() && !restored_names.count(o) && !store->read_range(ri.id, 0, nullptr, 0, nullptr))
      pending.insert(o);
  }
}

// Before a checkpoint: the threads of the restored epoch must have restored (a checkpoint
// without their regions would be an epoch with those threads' state from before the crash and
// the others' from after). Automatic checkpoints wait for them up to the stop bound.
int ckpt_handle::wait_pending(bool automatic) {
  if (cfg.flags & CKPT_CFG_PARTIAL_RESTORE) return 0;
  std::unique_lock<std::mutex> l(mu);
  if (pending.empty()) return 0;
  uint64_t b = stop_bound_ms.load();
  auto none = [&] { return pending.empty(); };
  if (automatic) {
    if (!b) pcv.wait(l, none);
    else pcv.wait_for(l, std::chrono::milliseconds(b), none);
  }
  if (pending.empty()) return 0;
  stats.failed_checkpoints++;
  return set_error(-ESRCH, "checkpoint not taken: the restored epoch holds threads that have not restored: " +
                               ckpt::join_names(pending) +
                               " (renamed or missing on restart? CKPT_CFG_PARTIAL_RESTORE checkpoints without them)");
}

void ckpt_handle::reset_transients_locked(const Region& r) {
  for (auto& t : transients) {
    if (t.region != r.name) continue;
    auto* p = reinterpret_cast<unsigned char*>(r.addr) + t.off;
    if (t.init.empty()) memset(p, 0, t.len);
    else memcpy(p, t.init.data(), t.len);
  }
}

int ckpt_handle::thread_restore() {
  ckpt::ThreadRec* me = ckpt::thread_rec(this);
  if (!me || me->kind != 2) {
    std::lock_guard<std::mutex> g(mu);
    return set_error(-EPERM, "ckpt_thread_restore: the calling thread is not a non-volatile thread of this session");
  }
  const std::string& name = me->name;
  const bool partial = cfg.flags & CKPT_CFG_PARTIAL_RESTORE;
  std::unique_lock<std::mutex> g = lock();
  auto done = [&](int ret) {  // this name is settled: its regions join the checkpoints
    restored_names.insert(name);
    for (auto& r : regions)
      if (r.owner == name) r.await_restore = false;
    pending.erase(name);
    pcv.notify_all();
    return ret;
  };
  if (store->epoch() == 0) return done(set_error(-ENOENT, "the store holds no committed checkpoint"));
  compute_pending_locked();
  // The epoch ckpt_restore filled from (the store's read epoch, chosen then): a reader of it.
  std::unique_ptr<ckpt::store::Reader> rd;
  if (int e = store->open_reader(0, &rd))
    return set_error(e, "opening the store's newest epoch: " + store->last_error());
  const std::vector<ckpt::store::RegionInfo> held = rd->regions();
  auto in_epoch = [&](uint32_t sid) {
    for (auto& ri : held)
      if (ri.id == sid) return true;
    return false;
  };
  std::set<std::string> owners;
  std::string extra;
  for (auto& ri : held) {
    std::string o = ckpt::owner_of(ri.name);
    if (o.empty()) continue;
    owners.insert(o);
    if (o == name && !find_locked(ri.name)) extra += (extra.empty() ? "'" : ", '") + ri.name + "'";
  }
  if (!owners.count(name)) {
    if (partial) return done(set_error(-ENOENT, "thread '" + name + "' is not in the checkpoint: it starts fresh"));
    return set_error(-ESRCH, "thread '" + name + "' is not in the checkpoint, whose threads are " + ckpt::join_names(owners) +
                                 " (a new or renamed thread; CKPT_CFG_PARTIAL_RESTORE starts it fresh)");
  }
  if (!extra.empty() && !partial)
    return set_error(-ESRCH, "thread '" + name + "': the checkpoint holds regions it has not registered: " + extra +
                                 " (nothing was restored)");
  std::string missing;
  for (auto& r : regions)
    if (r.owner == name && !in_epoch(r.sid))
      missing += (missing.empty() ? "'" : ", '") + r.name + "'";
  if (!missing.empty() && !partial)
    return set_error(-ESRCH, "thread '" + name + "': registered regions not in the checkpoint: " + missing +
                                 " (nothing was restored)");
  int ret = 0;
  std::vector<Region> snapshot;
  for (auto& r : regions) {
    if (r.owner != name) continue;
    r.tracker->remove(r.rid);
    int e = rd->read_region(r.sid, reinterpret_cast<void*>(r.addr), r.len, nullptr);
    int a = r.tracker->add(r.rid, reinterpret_cast<void*>(r.addr), r.len, e != 0);
    r.carry.clear();
    if (e == -ENOENT && partial) continue;  // registered after the checkpoint: starts fresh
    if (e) {
      ret = set_error(e, "thread '" + name + "' region '" + r.name + "': read failed: " + strerror(-e));
      break;
    }
    if (a) {
      ret = set_error(a, "region '" + r.name + "': re-arming the tracker failed: " + strerror(-a));
      break;
    }
    reset_transients_locked(r);
    snapshot.push_back(r);
  }
  if (ret) return ret;  // the regions stay out of checkpoints: the store keeps their copies
  stats.restores++;
  done(0);
  g.unlock();
  return run_restore_hooks(snapshot);
}

#define CKPT_NOT_FORKED(c)             \
  do {                                 \
    if ((c)->forked()) return -ECHILD; \
  } while (0)

template <class F>
static int guarded(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

extern "C" {

int ckpt_thread_attach_nv(ckpt_t* c, const char* name) {
  if (!c || !name) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guarded([&] { return ckpt::thread_attach(c, 2, name); });
}

int ckpt_thread_attach_volatile(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guarded([&] { return ckpt::thread_attach(c, 3, nullptr); });
}

int ckpt_thread_register(ckpt_t* c, const char* name, void* addr, size_t len) {
  if (!c || !name || !*name || strnlen(name, 101) > 100) return -EINVAL;
  CKPT_NOT_FORKED(c);
  ckpt::ThreadRec* me = ckpt::thread_rec(c);
  if (!me || me->kind != 2) return -EPERM;
  return guarded([&] { return c->do_register("@thread:" + me->name + ":" + name, addr, len); });
}

int ckpt_thread_heap_open(ckpt_t* c, const char* name, size_t size, void* addr_hint, ckpt_heap_t** out) {
  if (!c || !out || !name || !*name || strnlen(name, 101) > 100 || strchr(name, '@') || !size) return -EINVAL;
  CKPT_NOT_FORKED(c);
  ckpt::ThreadRec* me = ckpt::thread_rec(c);
  if (!me || me->kind != 2) return -EPERM;
  return guarded([&] {
    std::string n = "@thread:" + me->name + ":" + name;
    return ckpt::heap_open(c, n.c_str(), size, addr_hint, out);
  });
}

int ckpt_thread_restore(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guarded([&] { return c->thread_restore(); });
}

int ckpt_thread_check(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return ckpt::volatile_check(c);
}

int ckpt_set_stop_bound(ckpt_t* c, uint64_t ms) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  c->stop_bound_ms.store(ms);
  return 0;
}

int ckpt_get_thread_stats(const ckpt_t* c, struct ckpt_thread_stats* out) {
  if (!c || !out) return -EINVAL;
  CKPT_NOT_FORKED(c);
  auto* s = const_cast<ckpt_t*>(c);
  memset(out, 0, sizeof(*out));
  {
    std::lock_guard<std::mutex> l(s->wmu);
    out->attached = static_cast<uint64_t>(s->attached);
    for (ckpt::ThreadRec* t : s->threads) {
      if (t->kind == 2) out->nonvolatile++;
      if (t->kind == 3) out->volatile_threads++;
    }
  }
  {
    std::lock_guard<std::mutex> l(s->mu);
    out->pending = s->pending.size();
  }
  out->stop_timeouts = s->stop_timeouts.load();
  out->volatile_writes = ckpt::g_volatile_writes.load();
  return 0;
}

int ckpt_transient(ckpt_t* c, const char* region, size_t offset, size_t len, const void* init) {
  if (!c || !region || !len) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guarded([&] {
    auto g = c->lock();
    Region* r = c->find_locked(region);
    ckpt::ThreadRec* me = ckpt::thread_rec(c);
    if (!r && me && me->kind == 2) r = c->find_locked("@thread:" + me->name + ":" + region);
    if (!r)
      for (ckpt_heap* h : c->heaps)  // a heap by its user-visible name (the caller's own first)
        for (std::string n : {me && me->kind == 2 ? "@thread:" + me->name + ":" + region : std::string(),
                              std::string(region)})
          if (!r && !n.empty() && h->region.compare(0, 6 + n.size() + 1, "@heap:" + n + "@") == 0)
            r = c->find_locked(h->region);
    if (!r) return c->set_error(-ENOENT, std::string("ckpt_transient: no region '") + region + "' is registered");
    if (offset > r->len || len > r->len - offset)
      return c->set_error(-EINVAL, "ckpt_transient: range outside region '" + r->name + "'");
    ckpt::TransientRange t;
    t.region = r->name;
    t.off = offset;
    t.len = len;
    if (init) t.init.assign(static_cast<const unsigned char*>(init), static_cast<const unsigned char*>(init) + len);
    c->transients.push_back(std::move(t));
    return 0;
  });
}

}  // extern "C"

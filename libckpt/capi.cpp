// SPDX-License-Identifier: MIT
// The C API: argument checks, exception barrier (allocation failure -> -ENOMEM), and dispatch
// to the session. Nothing here sets errno or aborts.
#include <ckpt/ckpt.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <pthread.h>
#include <unistd.h>

#include "session.hpp"

namespace {

constexpr uint32_t kKnownFlags =
    CKPT_CFG_TIMER | CKPT_CFG_PARTIAL_RESTORE | CKPT_CFG_FORMAT | CKPT_CFG_ASYNC | CKPT_CFG_CREATE |
    CKPT_CFG_OTHER_PROGRAM;

template <class F>
int guard(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

// The same for calls on a session, and ckpt_last_error() then says what happened instead of
// keeping an older call's message. The exception has unwound every lock the call held.
template <class F>
int guard(ckpt_t* c, const char* what, F&& f) {
  int ret;
  try {
    return f();
  } catch (const std::bad_alloc&) {
    ret = -ENOMEM;
  } catch (...) {
    ret = -EIO;
  }
  try {
    std::lock_guard<std::mutex> l(c->mu);
    c->set_error(ret, std::string(what) + (ret == -ENOMEM ? ": out of memory" : ": internal error"));
  } catch (...) {
  }
  return ret;
}

// The fork rule (session.hpp): a child of fork() gets -ECHILD from every call on its parent's
// sessions and heaps, and touches nothing of theirs.
void on_fork_child() { ckpt::g_fork_gen.fetch_add(1, std::memory_order_relaxed); }
std::once_flag g_atfork_once;

thread_local std::string tls_open_error;

int open_fail(int ret, std::string why) {
  tls_open_error = std::move(why);
  return ret;
}

bool valid_name(const char* name) {
  if (!name) return false;
  size_t n = strnlen(name, 201);
  // "@heap:" and "@thread:" names are the heaps' and the threads' regions (ckpt_thread_register).
  return n >= 1 && n <= 200 && strncmp(name, "@heap:", 6) != 0 && strncmp(name, "@thread:", 8) != 0;
}

}  // namespace

std::atomic<uint64_t> ckpt::g_fork_gen{0};

// Every call on a session or heap starts with this: -ECHILD in a child of fork().
#define CKPT_NOT_FORKED(c)          \
  do {                              \
    if ((c)->forked()) return -ECHILD; \
  } while (0)

extern "C" {

int ckpt_config_init(ckpt_config_t* cfg) {
  if (!cfg) return -EINVAL;
  memset(cfg, 0, sizeof(*cfg));
  cfg->size = sizeof(*cfg);
  return 0;
}

const char* ckpt_open_error(void) { return tls_open_error.c_str(); }

int ckpt_open(const char* path, const ckpt_config_t* cfg, ckpt_t** out) {
  tls_open_error.clear();
  if (!path || !*path || !out) return open_fail(-EINVAL, "no store path or no output handle");
  ckpt_config_t def;
  ckpt_config_init(&def);
  if (!cfg) cfg = &def;
  if (cfg->size != sizeof(*cfg) || cfg->tracker > CKPT_TRACKER_UFFD_ASYNC || cfg->writer > CKPT_WRITER_URING ||
      (cfg->flags & ~kKnownFlags))
    return open_fail(-EINVAL, "bad config: size, tracker, writer or flags");
  for (uint64_t r : cfg->reserved)
    if (r) return open_fail(-EINVAL, "bad config: reserved fields must be zero");
  if ((cfg->key == nullptr) != (cfg->key_len == 0) ||
      (cfg->key && (cfg->key_len < ckpt::store::kMinMacKey || cfg->key_len > ckpt::store::kMaxMacKey)))
    return open_fail(-EINVAL, "bad config: key and key_len go together, 16 to 64 bytes");
  if ((cfg->flags & CKPT_CFG_TIMER) && !cfg->interval_ms)
    return open_fail(-EINVAL, "bad config: CKPT_CFG_TIMER needs interval_ms");
  return guard([&] {
    std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
    auto c = std::make_unique<ckpt_handle>();
    c->cfg = *cfg;
    c->fork_gen = ckpt::g_fork_gen.load(std::memory_order_relaxed);
    c->ps = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const char* env = getenv("CKPT_TRACKER");
    c->tracker_forced = cfg->tracker != CKPT_TRACKER_AUTO || (env && *env);
    std::string why;
    int ret = ckpt::make_tracker(static_cast<ckpt::TrackerKind>(cfg->tracker), &c->tracker, &why);
    if (ret) return open_fail(ret == -EINVAL ? ret : -ENODEV, why);
    if ((cfg->flags & CKPT_CFG_ASYNC) && !c->tracker->can_hold())
      return open_fail(-EOPNOTSUPP,
                       std::string("asynchronous checkpoints need ckpt.ko with held pages "
                                   "(CKPT_FEATURE_HOLD); the tracker here is ") +
                           c->tracker->name() +
                           (strcmp(c->tracker->name(), "uffd-async")
                                ? ""
                                : ", whose write faults the kernel resolves with no handler, so "
                                  "nothing can copy a held page before its first write"));
    ckpt::store::Options o;
    o.writer = static_cast<ckpt::store::Writer>(cfg->writer);
    o.create_size = cfg->create_size;
    o.force_format = (cfg->flags & CKPT_CFG_FORMAT) != 0;
    o.create = (cfg->flags & CKPT_CFG_CREATE) != 0;
    if (cfg->key) o.mac_key.assign(static_cast<const char*>(cfg->key), cfg->key_len);
    c->cfg.key = nullptr;  // the caller's buffer: the store keeps its own copy
    c->cfg.key_len = 0;
    std::string why_store;
    o.why = &why_store;
    // -EINTR: a pending io_uring task-work notification interrupts e.g. fallocate on tmpfs
    // (signal_pending() is true without any signal); opening again is safe.
    for (int i = 0; i < 100; i++)
      if ((ret = ckpt::store::Store::open(path, o, &c->store)) != -EINTR) break;
    if (ret)
      return open_fail(ret, std::string("store ") + path + ": " +
                                (why_store.empty() ? strerror(-ret) : why_store));
    if (c->store->page_size() != c->ps) return open_fail(-EINVAL, "store page size differs from the system's");
    // Another program's checkpoint (store-format.md "Provenance"): its regions may carry the
    // same names, and restoring them, or checkpointing over them, would be silent damage.
    if (c->store->epoch() != 0 && !(cfg->flags & CKPT_CFG_OTHER_PROGRAM)) {
      const ckpt::store::Provenance p = c->store->provenance();
      const ckpt::store::Provenance& me = ckpt::store::self_provenance();
      if (!ckpt::store::same_program(p, me)) {
        auto who = [](const ckpt::store::Provenance& x) {
          return x.exe + (x.build_id.empty() ? "" : " (build-id " + x.build_id.substr(0, 16) + ")");
        };
        return open_fail(-EMEDIUMTYPE, std::string("store ") + path + ": its checkpoint (epoch " +
                                           std::to_string(c->store->epoch()) + ") was made by " +
                                           who(p) + ", not by this program, " + who(me) +
                                           ": refusing it (CKPT_CFG_OTHER_PROGRAM accepts it)");
      }
    }
    c->stats.page_size = c->ps;
    c->stats.epoch = c->store->epoch();
    snprintf(c->stats.tracker, sizeof(c->stats.tracker), "%s", c->tracker->name());
    snprintf(c->stats.writer, sizeof(c->stats.writer), "%s", c->store->writer_name());
    if (cfg->interval_ms)
      c->next_due_ns = ckpt::now_ns() + static_cast<int64_t>(cfg->interval_ms) * 1000000;
    if (cfg->flags & CKPT_CFG_TIMER) {
      ret = c->set_timer(cfg->interval_ms);
      if (ret) return ret;
    }
    *out = c.release();
    return 0;
  });
}

int ckpt_register(ckpt_t* c, const char* name, void* addr, size_t len) {
  if (!c || !valid_name(name)) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] { return c->do_register(name, addr, len); });
}

int ckpt_unregister(ckpt_t* c, const char* name) {
  // A thread's region is unregistered by its store name, "@thread:<thread>:<name>".
  if (!c || !(valid_name(name) || (name && strncmp(name, "@thread:", 8) == 0 && strnlen(name, 201) <= 200)))
    return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] {
    auto g = c->lock();
    return c->do_unregister_locked(name);
  });
}

int ckpt_checkpoint(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard(c, "checkpoint", [&] { return c->checkpoint(); });
}

int ckpt_wait(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard(c, "wait", [&] {
    auto g = c->lock();
    return c->job_ret;
  });
}

int ckpt_restore(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard(c, "restore", [&] { return c->restore(); });
}

int ckpt_list_epochs(const ckpt_t* c, uint64_t* epochs, size_t n) {
  if (!c || (n && !epochs)) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] {
    auto g = c->lock();
    const std::vector<uint64_t> v = c->store->epochs();
    for (size_t i = 0; i < v.size() && i < n; i++) epochs[i] = v[i];
    return static_cast<int>(std::min<size_t>(v.size(), INT_MAX));
  });
}

int ckpt_restore_epoch(ckpt_t* c, uint64_t epoch) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard(c, "restore_epoch", [&] {
    if (epoch == 0) {
      auto g = c->lock();
      return c->set_error(-ENOENT, "epoch 0 is never committed");
    }
    return c->restore(epoch);
  });
}

int ckpt_supersede(ckpt_t* c, uint64_t epoch) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard(c, "supersede", [&] { return c->supersede(epoch); });
}

uint64_t ckpt_epoch(const ckpt_t* c) {
  if (!c || c->forked()) return 0;
  auto g = c->lock();
  return c->store->epoch();
}

int ckpt_close(ckpt_t* c) {
  if (!c) return 0;
  // The child's copy is left alone: tearing it down would drain the parent's ring, close its
  // module session's regions, unregister its trackers. It goes with the child's exit or exec.
  CKPT_NOT_FORKED(c);
  return guard([&] {
    ckpt::thread_detach(c);
    c->set_timer(0);
    {
      auto g = c->lock();
      while (!c->regions.empty()) c->do_unregister_locked(c->regions.back().name);
      for (ckpt_heap* h : c->heaps) ckpt::heap_destroy(h);
      c->heaps.clear();
    }
    delete c;
    return 0;
  });
}

int ckpt_hook(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  if (int v = ckpt::volatile_check(c)) return v;  // a volatile thread wrote persistent memory
  return guard([&] { return c->hook(); });
}

int ckpt_set_timer(ckpt_t* c, uint64_t interval_ms) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] {
    if (interval_ms) c->cfg.flags |= CKPT_CFG_TIMER;
    else c->cfg.flags &= ~CKPT_CFG_TIMER;
    return c->set_timer(interval_ms);
  });
}

int ckpt_thread_attach(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] { return ckpt::thread_attach(c, 1, nullptr); });
}

int ckpt_thread_detach(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] { return ckpt::thread_detach(c); });
}

int ckpt_safepoint(ckpt_t* c) {
  if (!c) return -EINVAL;
  CKPT_NOT_FORKED(c);
  if (int v = ckpt::volatile_check(c)) return v;
  return c->safepoint();
}

int ckpt_on_restore(ckpt_t* c, const char* name, ckpt_restore_fn fn, void* arg) {
  if (!c || !name) return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] {
    auto g = c->lock();
    ckpt::Region* r = c->find_locked(name);
    if (!r) {
      for (ckpt_heap* h : c->heaps)  // a heap's hook is set by its user-visible name
        if (h->region.compare(0, 6 + strlen(name) + 1, std::string("@heap:") + name + "@") == 0)
          r = c->find_locked(h->region);
    }
    if (!r) return c->set_error(-ENOENT, std::string("no region '") + name + "' is registered");
    r->hook = fn;
    r->hook_arg = arg;
    return 0;
  });
}

int ckpt_get_stats(const ckpt_t* c, struct ckpt_session_stats* out) {
  if (!c || !out) return -EINVAL;
  CKPT_NOT_FORKED(c);
  auto g = c->lock();
  *out = c->stats;
  out->epoch = c->store->epoch();
  return 0;
}

const char* ckpt_last_error(const ckpt_t* c) {
  if (!c) return "";
  if (c->forked())
    return "this process is a child of fork(): the session belongs to the parent (-ECHILD); "
           "open a store of its own";
  return c->err.c_str();
}

int ckpt_heap_open(ckpt_t* c, const char* name, size_t size, void* addr_hint, ckpt_heap_t** out) {
  if (!c || !out || !name || !*name || strnlen(name, 101) > 100 || strchr(name, '@') || !size)
    return -EINVAL;
  CKPT_NOT_FORKED(c);
  return guard([&] { return ckpt::heap_open(c, name, size, addr_hint, out); });
}

int ckpt_heap_alloc(ckpt_heap_t* h, size_t n, void** out) {
  if (!h || !out) return -EINVAL;
  CKPT_NOT_FORKED(h->c);
  return ckpt::heap_alloc(h, n, out);
}

int ckpt_heap_free(ckpt_heap_t* h, void* p) {
  if (!h || !p) return -EINVAL;
  CKPT_NOT_FORKED(h->c);
  return ckpt::heap_free(h, p);
}

int ckpt_heap_info(ckpt_heap_t* h, void** base, size_t* size) {
  if (!h) return -EINVAL;
  CKPT_NOT_FORKED(h->c);
  if (base) *base = h->base;
  if (size) *size = h->size;
  return 0;
}

}  // extern "C"

// SPDX-License-Identifier: MIT
// libckpt C++ API: RAII wrappers over include/ckpt/ckpt.h.
//
// Handles are move-only and close what they own. Calls return ckpt::Status (an errno, 0 = ok)
// or ckpt::Result<T> (a value or an errno); nothing throws except std::bad_alloc from the
// standard library. Thread-safety is the C API's: a Session may be used from several threads.
#pragma once

#include <ckpt/ckpt.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <atomic>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <new>
#include <vector>

namespace ckpt {

// An errno-carrying status. ok() when err() == 0. err() is a positive errno value.
class Status {
 public:
  Status() = default;
  // From a C API return value: negative -> error, otherwise ok.
  static Status from(int ret) { return Status(ret < 0 ? -ret : 0); }
  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  int err() const { return err_; }
  std::string message() const { return ok() ? "ok" : std::strerror(err_); }

 private:
  explicit Status(int e) : err_(e) {}
  int err_ = 0;
};

// A value or an errno.
template <class T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}  // NOLINT: implicit by design
  Result(Status s) : s_(s) {}         // NOLINT
  bool ok() const { return s_.ok(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return s_; }
  int err() const { return s_.err(); }
  T& value() & { return v_; }
  T&& value() && { return std::move(v_); }
  T* operator->() { return &v_; }
  T& operator*() { return v_; }

 private:
  Status s_;
  T v_{};
};

class Session;

// A persistent heap owned by a Session (valid while the Session is open).
class Heap {
 public:
  Heap() = default;
  Result<void*> alloc(size_t n) {
    void* p = nullptr;
    int r = ckpt_heap_alloc(h_, n, &p);
    if (r < 0) return Status::from(r);
    return p;
  }
  template <class T, class... A>
  Result<T*> make(A&&... a) {
    auto r = alloc(sizeof(T));
    if (!r) return r.status();
    return new (r.value()) T(std::forward<A>(a)...);
  }
  Status free(void* p) { return Status::from(ckpt_heap_free(h_, p)); }
  template <class T>
  T* root() {
    void* p = nullptr;
    ckpt_heap_root(h_, &p);
    return static_cast<T*>(p);
  }
  Status set_root(void* p) { return Status::from(ckpt_heap_set_root(h_, p)); }
  void* base() const {
    void* b = nullptr;
    ckpt_heap_info(h_, &b, nullptr);
    return b;
  }
  ckpt_heap_t* get() const { return h_; }

 private:
  friend class Session;
  explicit Heap(ckpt_heap_t* h) : h_(h) {}
  ckpt_heap_t* h_ = nullptr;
};

class Session {
 public:
  // Options with the C defaults; adjust fields of cfg.
  struct Options {
    ckpt_config_t cfg;
    Options() { ckpt_config_init(&cfg); }
  };

  static Result<Session> open(const std::string& store, const Options& o = Options()) {
    ckpt_t* c = nullptr;
    int r = ckpt_open(store.c_str(), &o.cfg, &c);
    if (r < 0) return Status::from(r);
    return Session(c);
  }

  Session() = default;
  Session(Session&& o) noexcept : c_(std::exchange(o.c_, nullptr)), hooks_(std::move(o.hooks_)) {}
  Session& operator=(Session&& o) noexcept {
    if (this != &o) {
      close();
      c_ = std::exchange(o.c_, nullptr);
      hooks_ = std::move(o.hooks_);
    }
    return *this;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { close(); }

  Status close() {
    int r = ckpt_close(std::exchange(c_, nullptr));
    hooks_.reset();
    return Status::from(r);
  }

  Status add(const std::string& name, void* addr, size_t len) {
    return Status::from(ckpt_register(c_, name.c_str(), addr, len));
  }
  Status remove(const std::string& name) { return Status::from(ckpt_unregister(c_, name.c_str())); }
  Status checkpoint() { return Status::from(ckpt_checkpoint(c_)); }
  // CKPT_CFG_ASYNC: wait for the epoch in flight to be committed (ckpt_wait).
  Status wait() { return Status::from(ckpt_wait(c_)); }
  // ok: restored; err() == ENOENT: nothing committed yet.
  Status restore() { return Status::from(ckpt_restore(c_)); }
  uint64_t epoch() const { return ckpt_epoch(c_); }
  // Restore exactly `e`, one of epochs(); the next checkpoint commits e + 1 (ckpt_restore_epoch).
  Status restore_epoch(uint64_t e) { return Status::from(ckpt_restore_epoch(c_, e)); }
  // The epochs the store holds intact, newest first (empty on error or if none).
  std::vector<uint64_t> epochs() const {
    uint64_t e[8];
    const int n = ckpt_list_epochs(c_, e, 8);
    return n > 0 ? std::vector<uint64_t>(e, e + (n < 8 ? n : 8)) : std::vector<uint64_t>{};
  }
  // true if this call took a checkpoint.
  Result<bool> hook() {
    int r = ckpt_hook(c_);
    if (r < 0) return Status::from(r);
    return r == 1;
  }
  Status set_timer(uint64_t ms) { return Status::from(ckpt_set_timer(c_, ms)); }
  Status attach_thread() { return Status::from(ckpt_thread_attach(c_)); }
  // Threads with persistent memory (ckpt.h): non-volatile under a stable name, or volatile.
  Status attach_nv(const std::string& name) { return Status::from(ckpt_thread_attach_nv(c_, name.c_str())); }
  Status attach_volatile() { return Status::from(ckpt_thread_attach_volatile(c_)); }
  Status add_thread_local(const std::string& name, void* addr, size_t len) {
    return Status::from(ckpt_thread_register(c_, name.c_str(), addr, len));
  }
  Result<Heap> thread_heap(const std::string& name, size_t size, void* hint = nullptr) {
    ckpt_heap_t* h = nullptr;
    int r = ckpt_thread_heap_open(c_, name.c_str(), size, hint, &h);
    if (r < 0) return Status::from(r);
    return Heap(h);
  }
  // ok: restored; ENOENT: nothing committed; ESRCH: name not in the checkpoint.
  Status restore_thread() { return Status::from(ckpt_thread_restore(c_)); }
  Status check_thread() { return Status::from(ckpt_thread_check(c_)); }
  Status set_stop_bound(uint64_t ms) { return Status::from(ckpt_set_stop_bound(c_, ms)); }
  Status detach_thread() { return Status::from(ckpt_thread_detach(c_)); }
  void safepoint() { ckpt_safepoint(c_); }

  using RestoreHook = std::function<int(const char* name, void* addr, size_t len)>;
  // The hook lives as long as the Session.
  Status on_restore(const std::string& name, RestoreHook fn) {
    if (!hooks_) hooks_ = std::make_unique<HookList>();
    hooks_->fns.push_back(std::make_unique<RestoreHook>(std::move(fn)));
    return Status::from(ckpt_on_restore(c_, name.c_str(), &Session::trampoline, hooks_->fns.back().get()));
  }

  Result<ckpt_session_stats> stats() const {
    ckpt_session_stats s{};
    int r = ckpt_get_stats(c_, &s);
    if (r < 0) return Status::from(r);
    return s;
  }
  std::string last_error() const { return ckpt_last_error(c_); }

  Result<Heap> heap(const std::string& name, size_t size, void* hint = nullptr) {
    ckpt_heap_t* h = nullptr;
    int r = ckpt_heap_open(c_, name.c_str(), size, hint, &h);
    if (r < 0) return Status::from(r);
    return Heap(h);
  }

  ckpt_t* get() const { return c_; }

  // Attaches the calling thread for its scope.
  class ThreadScope {
   public:
    explicit ThreadScope(Session& s) : s_(s) { st_ = s_.attach_thread(); }
    ~ThreadScope() {
      if (st_.ok()) s_.detach_thread();
    }
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;
    const Status& status() const { return st_; }

   private:
    Session& s_;
    Status st_;
  };

 private:
  struct HookList {
    std::vector<std::unique_ptr<RestoreHook>> fns;
  };
  explicit Session(ckpt_t* c) : c_(c) {}
  static int trampoline(void* arg, const char* name, void* addr, size_t len) {
    return (*static_cast<RestoreHook*>(arg))(name, addr, len);
  }
  ckpt_t* c_ = nullptr;
  std::unique_ptr<HookList> hooks_;
};

// A persistent lock (ckpt_mutex_t), usable with std::lock_guard / std::unique_lock. May live in
// registered memory or a persistent heap: one restored from another process comes back unlocked.
class mutex {
 public:
  mutex() { ckpt_mutex_init(&m_); }
  ~mutex() { ckpt_mutex_destroy(&m_); }
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  void lock() { ckpt_mutex_lock(&m_); }
  bool try_lock() { return ckpt_mutex_trylock(&m_) == 0; }
  void unlock() { ckpt_mutex_unlock(&m_); }
  ckpt_mutex_t* native_handle() { return &m_; }

 private:
  ckpt_mutex_t m_;
};

// A member of an object in registered memory or a persistent heap that is never restored: at
// its first use after the process started or after a ckpt_restore(), it is reset to Init()()
// (a default-constructible functor type returning T; void: T{}), whatever the checkpoint held.
// Its bytes are checkpointed with the object's page. Thread-safe (the reset runs once). T must
// be trivially copyable: its stale bytes are overwritten, never destroyed.
template <class T, class Init = void>
class transient {
 public:
  transient() { set_fresh(make()); }
  transient(const T& v) { set_fresh(v); }  // NOLINT: implicit by design
  transient& operator=(const T& v) {
    get() = v;
    return *this;
  }
  T& get() {
    uint64_t cur = ckpt_transient_generation();
    uint64_t g = gen_.load(std::memory_order_acquire);
    while (g != cur) {
      if (g != kBusy && gen_.compare_exchange_weak(g, kBusy, std::memory_order_acq_rel)) {
        v_ = make();
        gen_.store(cur, std::memory_order_release);
        break;
      }
      g = gen_.load(std::memory_order_acquire);
    }
    return v_;
  }
  operator T&() { return get(); }  // NOLINT
  T* operator->() { return &get(); }
  T& operator*() { return get(); }

 private:
  static_assert(std::is_trivially_copyable<T>::value, "ckpt::transient<T>: T must be trivially copyable");
  static constexpr uint64_t kBusy = 1;
  static T make() {
    if constexpr (std::is_void<Init>::value) return T{};
    else return Init{}();
  }
  void set_fresh(const T& v) {
    v_ = v;
    gen_.store(ckpt_transient_generation(), std::memory_order_release);
  }
  std::atomic<uint64_t> gen_{0};
  T v_;
};

}  // namespace ckpt

// SPDX-License-Identifier: MIT
// libckpt store: the DAX writer (device-DAX, or a file on a -o dax file system).
//
// The whole device or file is mapped MAP_SHARED_VALIDATE | MAP_SYNC: for a file, the file
// system metadata reaching a written block is durable when the write faults; a file system that
// cannot promise that (not DAX) refuses MAP_SYNC, and the store gets -EOPNOTSUPP and takes the
// io_uring writer. libpmem2 gives the persistence primitives for that mapping
// (pmem2_map_from_existing, cache-line granularity: flushes or non-temporal stores plus a fence,
// correct on every DAX platform). write() is a non-temporal copy without the trailing fence
// (PMEM2_F_MEM_NODRAIN): the stores are on their way to the persistence domain, in any order and
// 8 bytes at a time at worst. barrier() is the drain (SFENCE).
//
// Why not pmem2_map_new: for a device it asks libndctl for the size, the alignment and the
// persistence domain, and each ask builds a new ndctl context — every bus, region, namespace
// and DAX device in sysfs, with a libkmod module lookup for each (Debian's ndctl also reads
// /etc/modprobe.d). Under QEMU TCG one context is ~500 system calls, and a system call costs
// 1-50 ms there depending on host load: 0.3 s to 15 s per open. The store needs only the size;
// pmem2_source_from_fd still builds one context for it (device-DAX), down from three: 3 opens
// took 1,487 system calls instead of 4,430.
//
// libpmem2 is loaded (dlopen) only when a DAX mapping is really made, never linked: its chain
// (libndctl, libdaxctl, libkmod, libudev, libcrypto, libzstd, liblzma, ...) is 11 more shared
// objects to load and relocate at every start of every program that links libckpt or runs
// ckpt-tool, 0.15-0.6 s under QEMU TCG, though most stores are files on io_uring. A regular
// file is first mapped with MAP_SYNC, which a non-DAX file system refuses before libpmem2 is
// needed; only device-DAX asks libpmem2 for its size first. The library stays loaded once
// loaded (its function pointers live in every DAX medium). CKPT_LIBPMEM2 names another file
// to load instead of Debian's soname (a libpmem2 outside the loader's path; the tests use it
// to check the error when the library cannot be loaded).
#include <dlfcn.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "format.hpp"
#include "guarded_copy.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

// Debian's libpmem2-1 package ships this soname (the -dev package's libpmem2.so link is not
// needed at run time).
constexpr const char kPmem2Soname[] = "libpmem2.so.1";

// The libpmem2 entry points the DAX medium uses, typed from libpmem2.h.
struct Pmem2 {
  decltype(&pmem2_source_from_fd) source_from_fd;
  decltype(&pmem2_source_size) source_size;
  decltype(&pmem2_source_delete) source_delete;
  decltype(&pmem2_map_from_existing) map_from_existing;
  decltype(&pmem2_map_delete) map_delete;
  decltype(&pmem2_get_memcpy_fn) get_memcpy_fn;
  decltype(&pmem2_get_drain_fn) get_drain_fn;
  decltype(&pmem2_errormsg) errormsg;
};

struct Pmem2Load {
  Pmem2 fn = {};
  std::string error;  // empty when loaded
};

template <typename F>
bool resolve(void* lib, const char* sym, F* out, std::string* error) {
  *out = reinterpret_cast<F>(dlsym(lib, sym));
  if (*out) return true;
  if (error->empty()) *error = std::string("no symbol ") + sym;
  return false;
}

Pmem2Load load_pmem2() {
  Pmem2Load l;
  const char* env = getenv("CKPT_LIBPMEM2");
  std::string name = env && *env ? env : kPmem2Soname;
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    l.error = name + " cannot be loaded (DAX stores need libpmem2, Debian package libpmem2-1): " +
              (e ? e : "dlopen failed");
    return l;
  }
  std::string missing;
  bool ok = resolve(lib, "pmem2_source_from_fd", &l.fn.source_from_fd, &missing) &&
            resolve(lib, "pmem2_source_size", &l.fn.source_size, &missing) &&
            resolve(lib, "pmem2_source_delete", &l.fn.source_delete, &missing) &&
            resolve(lib, "pmem2_map_from_existing", &l.fn.map_from_existing, &missing) &&
            resolve(lib, "pmem2_map_delete", &l.fn.map_delete, &missing) &&
            resolve(lib, "pmem2_get_memcpy_fn", &l.fn.get_memcpy_fn, &missing) &&
            resolve(lib, "pmem2_get_drain_fn", &l.fn.get_drain_fn, &missing) &&
            resolve(lib, "pmem2_errormsg", &l.fn.errormsg, &missing);
  if (!ok) {
    dlclose(lib);
    l.fn = {};
    l.error = name + " is not a usable libpmem2: " + missing;
  }
  return l;
}

// libpmem2 loaded on first use, once per process (thread-safe: a function-local static);
// nullptr with *why set when it cannot be loaded.
const Pmem2* pmem2(std::string* why) {
  static const Pmem2Load l = load_pmem2();
  if (!l.error.empty()) {
    if (why) *why = l.error;
    return nullptr;
  }
  return &l.fn;
}

int pmem2_to_errno(int r) {
  // libpmem2 returns -errno for system errors and its own codes below -100000.
  if (r > -100000) return r;
  if (r == PMEM2_E_GRANULARITY_NOT_SUPPORTED) return -EOPNOTSUPP;
  return -EINVAL;
}

class DaxMedium final : public Medium {
 public:
  DaxMedium(int fd, bool growable) : fd_(fd), growable_(growable) {}
  ~DaxMedium() override {
    unmap();
    if (fd_ >= 0) close_locked(fd_);
  }
  void disown_fd() { fd_ = -1; }

  // Maps the device or file with MAP_SYNC and hands the mapping to libpmem2. -EOPNOTSUPP when
  // it is not DAX, -ELIBACC when libpmem2 cannot be loaded.
  int map(std::string* why) {
    uint64_t size = 0;
    int r;
    if (growable_) {
      // A regular file: its size is i_size, and MAP_SYNC tells DAX from not before libpmem2
      // is loaded (most file stores are not DAX and never need it).
      struct stat st;
      if (fstat(fd_, &st) != 0) return -errno;
      size = static_cast<uint64_t>(st.st_size);
      if (size == 0) return -ENOSPC;
      if ((r = map_sync(size, why)) != 0) return r;
      if ((r = load(why)) != 0) return r;
      r = pm_->source_from_fd(&src_, fd_);
    } else {
      // device-DAX: only libpmem2 knows the size.
      if ((r = load(why)) != 0) return r;
      size_t n = 0;
      r = pm_->source_from_fd(&src_, fd_);
      if (r == 0) r = pm_->source_size(src_, &n);
      if (r == 0 && n == 0) r = -ENOSPC;
      if (r == 0 && (r = map_sync(n, why)) != 0) return r;
    }
    if (r == 0) r = pm_->map_from_existing(&map_, src_, base_, size_, PMEM2_GRANULARITY_CACHE_LINE);
    if (r != 0) {
      if (why) *why = std::string("libpmem2: ") + pm_->errormsg();
      r = pmem2_to_errno(r);
      unmap();
      return r;
    }
    memcpy_ = pm_->get_memcpy_fn(map_);
    drain_ = pm_->get_drain_fn(map_);
    return 0;
  }

  const char* name() const override { return "dax"; }
  uint64_t size() const override { return size_; }
  bool growable() const override { return growable_; }
  size_t tear_unit() const override { return 8; }
  const uint8_t* mapping() const override { return base_; }

  int grow(uint64_t n) override {
    if (!growable_) return -ENOSPC;
    if (n <= size_) return 0;
    // Everything written so far is fenced before the mapping goes away.
    drain_();
    int rc = reserve_file(fd_, 0, n, false);  // a DAX file system has fallocate
    if (rc) return rc;
    // fallocate leaves the new blocks unwritten (ext4, xfs). The first store through a MAP_SYNC
    // mapping into an unwritten block is a synchronous fault: the file system converts the
    // extent and commits its journal before the fault returns (dax_finish_sync_fault), once per
    // fault. A 64 MiB dump into a new store spent 0.8 s of its 1.5 s there. Zeros written
    // through write() convert the whole range at once, and the fdatasync below commits it once.
    if ((rc = write_zeros(size_, n)) != 0) return rc;
    // The new size must be durable before blocks past the old end are referenced; MAP_SYNC
    // covers the blocks a write faults in, this covers i_size.
    do rc = fdatasync(fd_); while (rc != 0 && errno == EINTR);
    if (rc != 0) return -errno;
    unmap();
    return map(nullptr);
  }

  // A page that raises SIGBUS (poisoned pmem, a file truncated under the mapping) is -EIO:
  // the store takes it for a damaged page (guarded_copy.hpp).
  int read(uint64_t off, void* dst, size_t len) override {
    if (off > size_ || len > size_ - off) return -EIO;
    return guarded_copy(dst, base_ + off, len);
  }

  int write(uint64_t off, const void* src, size_t len) override {
    if (off > size_ || len > size_ - off) return -ENOSPC;
    memcpy_(base_ + off, src, len, PMEM2_F_MEM_NONTEMPORAL | PMEM2_F_MEM_NODRAIN);
    return 0;
  }

  int barrier() override {
    drain_();
    return 0;
  }

 private:
  int write_zeros(uint64_t from, uint64_t to) {
    static const std::vector<uint8_t> zeros(1 << 20);
    while (from < to) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(to - from, zeros.size()));
      ssize_t w = pwrite(fd_, zeros.data(), len, static_cast<off_t>(from));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno == EFBIG ? -ENOSPC : -errno;
      if (w == 0) return -EIO;
      from += static_cast<uint64_t>(w);
    }
    return 0;
  }

  int load(std::string* why) {
    if (pm_) return 0;
    std::string e;
    pm_ = pmem2(&e);
    if (pm_) return 0;
    if (why) *why = e;
    unmap();
    return -ELIBACC;
  }

  int map_sync(uint64_t size, std::string* why) {
    void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd_, 0);
    if (addr == MAP_FAILED) {
      int r = -errno;
      if (why) *why = r == -EOPNOTSUPP ? "not DAX: MAP_SYNC refused" : "mmap failed";
      unmap();
      return r;
    }
    base_ = static_cast<uint8_t*>(addr);
    guard_sigbus();  // a page that raises SIGBUS reads as -EIO (guarded_copy.hpp)
    size_ = size;
    return 0;
  }

  void unmap() {
    if (map_) pm_->map_delete(&map_);  // (does not unmap a map made from an existing mapping)
    if (base_) munmap(base_, size_);
    if (src_) pm_->source_delete(&src_);
    base_ = nullptr;
    size_ = 0;
  }

  int fd_;
  bool growable_;
  const Pmem2* pm_ = nullptr;  // set once libpmem2 is needed (loaded)
  pmem2_source* src_ = nullptr;
  pmem2_map* map_ = nullptr;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  pmem2_memcpy_fn memcpy_ = nullptr;
  pmem2_drain_fn drain_ = nullptr;
};

}  // namespace

int dax_medium(int fd, bool growable, std::unique_ptr<Medium>* out, std::string* why) {
  auto m = std::make_unique<DaxMedium>(fd, growable);
  int r = m->map(why);
  if (r) {
    m->disown_fd();
    return r;
  }
  *out = std::move(m);
  return 0;
}

}  // namespace ckpt::store

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
#include <fcntl.h>
#include <libpmem2.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "format.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

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

  int map(std::string* why) {
    size_t size = 0;
    int r = pmem2_source_from_fd(&src_, fd_);
    if (r == 0) r = pmem2_source_size(src_, &size);
    if (r == 0 && size == 0) r = -ENOSPC;
    if (r != 0) {
      if (why) *why = std::string("libpmem2: ") + pmem2_errormsg();
      r = pmem2_to_errno(r);
      unmap();
      return r;
    }
    void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd_, 0);
    if (addr == MAP_FAILED) {
      r = -errno;
      if (why) *why = r == -EOPNOTSUPP ? "not DAX: MAP_SYNC refused" : "mmap failed";
      unmap();
      return r;
    }
    base_ = static_cast<uint8_t*>(addr);
    size_ = size;
    r = pmem2_map_from_existing(&map_, src_, addr, size, PMEM2_GRANULARITY_CACHE_LINE);
    if (r != 0) {
      if (why) *why = std::string("libpmem2: ") + pmem2_errormsg();
      r = pmem2_to_errno(r);
      unmap();
      return r;
    }
    memcpy_ = pmem2_get_memcpy_fn(map_);
    drain_ = pmem2_get_drain_fn(map_);
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
    int rc;
    do rc = fallocate(fd_, 0, 0, static_cast<off_t>(n)); while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      int e = errno;
      return e == EFBIG ? -ENOSPC : -e;
    }
    // The new size must be durable before blocks past the old end are referenced; MAP_SYNC
    // covers the blocks a write faults in, this covers i_size.
    do rc = fdatasync(fd_); while (rc != 0 && errno == EINTR);
    if (rc != 0) return -errno;
    unmap();
    return map(nullptr);
  }

  int read(uint64_t off, void* dst, size_t len) override {
    if (off > size_ || len > size_ - off) return -EIO;
    std::memcpy(dst, base_ + off, len);
    return 0;
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
  void unmap() {
    if (map_) pmem2_map_delete(&map_);  // (does not unmap a map made from an existing mapping)
    if (base_) munmap(base_, size_);
    if (src_) pmem2_source_delete(&src_);
    base_ = nullptr;
    size_ = 0;
  }

  int fd_;
  bool growable_;
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

// libckpt store: the DAX writer (device-DAX, or a file on a -o dax file system).
//
// libpmem2 maps the whole device or file (MAP_SHARED_VALIDATE | MAP_SYNC for files, so the
// file system metadata reaching a written block is durable when the write faults) and gives the
// platform's best persistence primitives. write() is a non-temporal copy without the trailing
// fence (PMEM2_F_MEM_NODRAIN): the stores are on their way to the persistence domain, in any
// order and 8 bytes at a time at worst. barrier() is the drain (SFENCE). We ask libpmem2 for
// cache-line granularity at most, so a file it could only persist with msync (not DAX) is
// refused with -EOPNOTSUPP and the io_uring writer takes it.
#include <fcntl.h>
#include <libpmem2.h>
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
    pmem2_config* cfg = nullptr;
    int r = pmem2_source_from_fd(&src_, fd_);
    if (r == 0) r = pmem2_config_new(&cfg);
    if (r == 0) r = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_CACHE_LINE);
    if (r == 0) r = pmem2_map_new(&map_, cfg, src_);
    if (cfg) pmem2_config_delete(&cfg);
    if (r != 0) {
      if (why) *why = std::string("libpmem2: ") + pmem2_errormsg();
      r = pmem2_to_errno(r);
      unmap();
      return r;
    }
    base_ = static_cast<uint8_t*>(pmem2_map_get_address(map_));
    size_ = pmem2_map_get_size(map_);
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
    if (map_) pmem2_map_delete(&map_);
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

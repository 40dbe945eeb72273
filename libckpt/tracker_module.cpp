// SPDX-License-Identifier: MIT
// The module tracker: ckpt.ko logs the first write to each protected page; COLLECT returns the
// logged page addresses and re-protects exactly those pages (Documentation/ioctl-abi.md).
#include "tracker.hpp"

#include <linux/ckpt.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/ioctl.h>
#include <unistd.h>

namespace ckpt {
namespace {

// ioctl, again while it is interrupted (-EINTR leaves the session unchanged).
int xioctl(int fd, unsigned long cmd, void* arg) {
  for (int i = 0; i < 1000; i++) {
    if (ioctl(fd, cmd, arg) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
  return -EINTR;
}

struct Region {
  uint64_t id;  // the module's region id
  uintptr_t start;
  uint64_t pages;
};

class ModuleTracker final : public Tracker {
 public:
  ~ModuleTracker() override {
    if (fd_ >= 0) close(fd_);  // closing the session drops every region
  }
  const char* name() const override { return "module"; }

  int init() {
    fd_ = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);
    if (fd_ < 0) return -errno;
    struct ckpt_api a;
    memset(&a, 0, sizeof(a));
    a.api = CKPT_API_VERSION;
    if (int e = xioctl(fd_, CKPT_IOC_API, &a)) return e;
    if (!(a.features & CKPT_FEATURE_TRACK)) return -ENODEV;
    hold_ = (a.features & CKPT_FEATURE_HOLD) != 0;
    ps_ = a.page_size;
    buf_.resize(4096);
    return 0;
  }

  int add(uint32_t rid, void* addr, size_t len, bool dirty) override {
    if (regions_.count(rid)) return -EEXIST;
    struct ckpt_register r;
    memset(&r, 0, sizeof(r));
    r.start = reinterpret_cast<uintptr_t>(addr);
    r.len = len;
    r.flags = dirty ? CKPT_REGISTER_DIRTY : 0;
    if (int e = xioctl(fd_, CKPT_IOC_REGISTER, &r)) return e;
    regions_[rid] = Region{r.id, reinterpret_cast<uintptr_t>(addr), len / ps_};
    return 0;
  }

  int remove(uint32_t rid) override {
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    struct ckpt_unregister u;
    memset(&u, 0, sizeof(u));
    u.id = it->second.id;
    int ret = xioctl(fd_, CKPT_IOC_UNREGISTER, &u);
    regions_.erase(it);
    return ret;
  }

  int collect(uint32_t rid, std::vector<uint64_t>* pages) override { return collect_flags(rid, pages, 0); }

  bool can_hold() const override { return hold_; }
  int collect_hold(uint32_t rid, std::vector<uint64_t>* pages) override {
    if (!hold_) return -EOPNOTSUPP;
    return collect_flags(rid, pages, CKPT_COLLECT_HOLD);
  }

  int release(uint32_t rid, const std::function<int(uint64_t page, const void* data)>& put,
              uint64_t* lost) override {
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    constexpr size_t kBatch = 64;
    if (copies_.empty()) {
      copy_addrs_.resize(kBatch);
      copies_.resize(kBatch * ps_);
    }
    int ret = 0;
    *lost = 0;
    // The first call ends the hold (no copy is made after it); then drain what the module has.
    for (uint64_t flags = CKPT_RELEASE_END;; flags = 0) {
      struct ckpt_release r;
      memset(&r, 0, sizeof(r));
      r.id = it->second.id;
      r.flags = flags;
      r.addrs = reinterpret_cast<uintptr_t>(copy_addrs_.data());
      r.data = reinterpret_cast<uintptr_t>(copies_.data());
      r.max = kBatch;
      if (int e = xioctl(fd_, CKPT_IOC_RELEASE, &r)) return ret ? ret : e;
      if (flags) *lost = r.lost;
      for (uint64_t i = 0; i < r.count && i < kBatch; i++) {
        uint64_t page = (copy_addrs_[i] - it->second.start) / ps_;
        if (int e = put(page, copies_.data() + i * ps_); e && !ret) ret = e;
      }
      if (!r.remaining || !r.count) return ret;
    }
  }

 private:
  int collect_flags(uint32_t rid, std::vector<uint64_t>* pages, uint64_t flags) {
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    // One COLLECT pass, over as many calls as the buffer needs: it reports each page at most
    // once (pages re-logged behind it wait for the next pass), so the loop ends. More pages
    // than the region holds means a module that does not keep that rule: fail, don't grow.
    const size_t first = pages->size();
    for (;;) {
      struct ckpt_collect c;
      memset(&c, 0, sizeof(c));
      c.id = it->second.id;
      c.flags = flags;
      c.buf = reinterpret_cast<uintptr_t>(buf_.data());
      c.buf_len = buf_.size() * sizeof(uint64_t);
      if (int e = xioctl(fd_, CKPT_IOC_COLLECT, &c)) return e;
      if (c.count > buf_.size() || pages->size() - first + c.count > it->second.pages)
        return -EPROTO;
      for (uint64_t i = 0; i < c.count; i++) pages->push_back((buf_[i] - it->second.start) / ps_);
      if (!c.remaining) return 0;
    }
  }

  int fd_ = -1;
  bool hold_ = false;  // CKPT_FEATURE_HOLD
  uint64_t ps_ = 4096;
  std::vector<uint64_t> buf_;
  std::vector<uint64_t> copy_addrs_;  // RELEASE's buffers, allocated at the first release
  std::vector<unsigned char> copies_;
  std::map<uint32_t, Region> regions_;
};

}  // namespace

int make_module_tracker(std::unique_ptr<Tracker>* out) {
  return make_initialized<ModuleTracker>(out);
}

}  // namespace ckpt

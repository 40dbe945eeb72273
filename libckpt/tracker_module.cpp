// SPDX-License-Identifier: MIT
// The module tracker: ckpt.ko logs the first write to each protected page; COLLECT returns the
// logged page addresses and re-protects exactly those pages (Documentation/ioctl-abi.md).
#include "tracker.hpp"

#include "ckptdev.hpp"

#include <cerrno>
#include <map>

namespace ckpt {
namespace {

struct Region {
  uint64_t id;  // the module's region id
  uintptr_t start;
  uint64_t pages;
};

class ModuleTracker final : public Tracker {
 public:
  // Destroying dev_ closes the module's session, which drops every region.
  const char* name() const override { return "module"; }

  int init() {
    if (int e = dev_.open()) return e;
    if (!dev_.has(CKPT_FEATURE_TRACK)) return -ENODEV;
    ps_ = dev_.page_size();
    buf_.resize(4096);
    return 0;
  }

  int add(uint32_t rid, void* addr, size_t len, bool dirty) override {
    if (regions_.count(rid)) return -EEXIST;
    ckpt_register r{};
    r.start = reinterpret_cast<uintptr_t>(addr);
    r.len = len;
    r.flags = dirty ? CKPT_REGISTER_DIRTY : 0;
    if (int e = ckptdev::register_range(dev_.fd(), &r)) return e;
    regions_[rid] = Region{r.id, reinterpret_cast<uintptr_t>(addr), len / ps_};
    return 0;
  }

  int remove(uint32_t rid) override {
    auto it = regions_.find(rid);
    if (it == regions_.end()) return -ENOENT;
    int ret = ckptdev::unregister(dev_.fd(), it->second.id);
    regions_.erase(it);
    return ret;
  }

  int collect(uint32_t rid, std::vector<uint64_t>* pages) override { return collect_flags(rid, pages, 0); }

  bool can_hold() const override { return dev_.has(CKPT_FEATURE_HOLD); }
  int collect_hold(uint32_t rid, std::vector<uint64_t>* pages) override {
    if (!can_hold()) return -EOPNOTSUPP;
    return collect_flags(rid, pages, CKPT_COLLECT_HOLD);
  }

  // CKPT_IOC_WATCH: the module logs a watched thread's write faults (tid, page).
  int watch(long tid, bool on) override {
    if (!dev_.has(CKPT_FEATURE_WATCH)) return -EOPNOTSUPP;
    ckpt_watch w{};
    w.op = on ? CKPT_WATCH_ADD : CKPT_WATCH_REMOVE;
    w.tid = static_cast<uint64_t>(tid);
    return ckptdev::watch(dev_.fd(), &w);
  }
  int report_writers() override {
    if (!dev_.has(CKPT_FEATURE_WATCH)) return 0;
    ckpt_watch_hit hits[32];
    for (;;) {
      ckpt_watch w{};
      w.op = CKPT_WATCH_READ;
      w.hits = reinterpret_cast<uintptr_t>(hits);
      w.max = 32;
      w.hit_size = sizeof(hits[0]);
      if (int e = ckptdev::watch(dev_.fd(), &w)) return e;
      for (uint64_t i = 0; i < w.count && i < 32; i++)
        note_write_fault(static_cast<long>(hits[i].tid), static_cast<uintptr_t>(hits[i].addr));
      // Hits the module could not keep (w.lost: CKPT_WATCH_MAX_HITS were waiting) name no
      // thread; the ones kept still tell each writer, since they are drained at every check.
      if (w.count < 32) return 0;
    }
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
      ckpt_release r{};
      r.id = it->second.id;
      r.flags = flags;
      r.addrs = reinterpret_cast<uintptr_t>(copy_addrs_.data());
      r.data = reinterpret_cast<uintptr_t>(copies_.data());
      r.max = kBatch;
      if (int e = ckptdev::release(dev_.fd(), &r)) return ret ? ret : e;
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
      ckpt_collect c{};
      c.id = it->second.id;
      c.flags = flags;
      c.buf = reinterpret_cast<uintptr_t>(buf_.data());
      c.buf_len = buf_.size() * sizeof(uint64_t);
      if (int e = ckptdev::collect(dev_.fd(), &c)) return e;
      if (c.count > buf_.size() || pages->size() - first + c.count > it->second.pages)
        return -EPROTO;
      for (uint64_t i = 0; i < c.count; i++) pages->push_back((buf_[i] - it->second.start) / ps_);
      if (!c.remaining) return 0;
    }
  }

  ckptdev::Session dev_;
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

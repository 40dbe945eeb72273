// SPDX-License-Identifier: MIT
// TEST DOUBLE, unit tests only: an in-memory ckpt::store::Store, so the session layer (regions,
// trackers, triggers, threads, heap) can be tested before/without the real store. Linked only
// into lib_session_double_test; every other test uses the real store (libckpt/store).
// Semantics follow libckpt/store/store.hpp: stores live per path for the life of the process,
// one open at a time (-EBUSY), commit is all-or-nothing, unwritten pages read as zeros.
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "store/store.hpp"

namespace ckpt::store {
namespace {

constexpr size_t kPs = 4096;

struct State {
  bool open = false;
  uint64_t epoch = 0;
  std::vector<RegionInfo> regions;                                 // committed
  std::map<std::pair<uint32_t, uint64_t>, std::vector<char>> pages;  // committed
};
std::mutex g_mu;
std::map<std::string, State> g_stores;

class DoubleStore;

class DoubleTxn final : public Txn {
 public:
  explicit DoubleTxn(DoubleStore* s) : s_(s) {}
  ~DoubleTxn() override;
  int put_page(uint32_t region, uint64_t page, const void* data) override;
  // Regions that change are the real store's business (store_test); the session layer's
  // tests do not use them.
  int resize_region(uint32_t, uint64_t) override { return -EOPNOTSUPP; }
  int remove_region(uint32_t) override { return -EOPNOTSUPP; }
  int commit() override;

  DoubleStore* s_;
  std::map<std::pair<uint32_t, uint64_t>, std::vector<char>> staged_;
};

class DoubleStore final : public Store {
 public:
  explicit DoubleStore(State* st) : st_(st), defined_(st->regions) {}
  ~DoubleStore() override {
    std::lock_guard<std::mutex> g(g_mu);
    st_->open = false;
  }
  uint64_t epoch() const override { return st_->epoch; }
  size_t page_size() const override { return kPs; }
  const char* writer_name() const override { return "double"; }
  std::vector<RegionInfo> regions() const override { return defined_; }
  int define_region(std::string_view name, uint64_t size, uint32_t* id) override {
    for (auto& r : defined_) {
      if (r.name != name) continue;
      if (r.size != size) return -EINVAL;
      *id = r.id;
      return 0;
    }
    defined_.push_back(RegionInfo{std::string(name), size, static_cast<uint32_t>(defined_.size() + 1)});
    *id = defined_.back().id;
    return 0;
  }
  int begin(std::unique_ptr<Txn>* out) override {
    if (in_txn_) return -EBUSY;
    in_txn_ = true;
    *out = std::make_unique<DoubleTxn>(this);
    return 0;
  }
  int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) override {
    if (!st_->epoch) return -ENOENT;
    const RegionInfo* ri = nullptr;
    for (auto& r : st_->regions)
      if (r.id == region) ri = &r;
    if (!ri) return -ENOENT;
    if (len != ri->size) return -EINVAL;
    memset(dst, 0, len);
    for (auto& [k, v] : st_->pages)
      if (k.first == region) memcpy(static_cast<char*>(dst) + k.second * kPs, v.data(), kPs);
    if (report) report->epoch = st_->epoch;
    return 0;
  }
  int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                 ReadReport* report) override {
    if (!st_->epoch) return -ENOENT;
    const RegionInfo* ri = nullptr;
    for (auto& r : st_->regions)
      if (r.id == region) ri = &r;
    if (!ri) return -ENOENT;
    if (offset % kPs || len % kPs || offset > ri->size || len > ri->size - offset) return -EINVAL;
    if (len) memset(dst, 0, len);
    for (auto& [k, v] : st_->pages)
      if (k.first == region && k.second * kPs >= offset && k.second * kPs < offset + len)
        memcpy(static_cast<char*>(dst) + (k.second * kPs - offset), v.data(), kPs);
    if (report) report->epoch = st_->epoch;
    return 0;
  }
  uint64_t read_epoch() const override { return st_->epoch; }
  // Nothing is ever damaged here: the reader reads the committed epoch through the store.
  int open_reader(uint64_t epoch, std::unique_ptr<Reader>* out) override;
  int verify(VerifyReport*, const Progress&) override { return 0; }
  int stat(StoreStat*) const override { return -EOPNOTSUPP; }
  const std::string& last_error() const override { return err_; }

  State* st_;
  std::vector<RegionInfo> defined_;
  bool in_txn_ = false;
  std::string err_;
};

class DoubleReader final : public Reader {
 public:
  DoubleReader(DoubleStore* s, uint64_t epoch) : s_(s), epoch_(epoch) {}
  uint64_t epoch() const override { return epoch_; }
  std::vector<RegionInfo> regions() const override { return s_->st_->regions; }
  int read_region(uint32_t region, void* dst, uint64_t len, ReadReport* report) override {
    return s_->st_->epoch != epoch_ ? -ESTALE : s_->read_region(region, dst, len, report);
  }
  int read_range(uint32_t region, uint64_t offset, void* dst, uint64_t len,
                 ReadReport* report) override {
    return s_->st_->epoch != epoch_ ? -ESTALE : s_->read_range(region, offset, dst, len, report);
  }

 private:
  DoubleStore* s_;
  uint64_t epoch_;
};

int DoubleStore::open_reader(uint64_t epoch, std::unique_ptr<Reader>* out) {
  if (epoch ? select_epoch(epoch) != 0 : st_->epoch == 0) return -ENOENT;
  *out = std::make_unique<DoubleReader>(this, st_->epoch);
  return 0;
}

DoubleTxn::~DoubleTxn() { s_->in_txn_ = false; }
int DoubleTxn::put_page(uint32_t region, uint64_t page, const void* data) {
  bool known = false;
  for (auto& r : s_->defined_)
    if (r.id == region && (page + 1) * kPs <= r.size) known = true;
  if (!known) return -EINVAL;
  auto& v = staged_[{region, page}];
  v.assign(static_cast<const char*>(data), static_cast<const char*>(data) + kPs);
  return 0;
}
int DoubleTxn::commit() {
  for (auto& [k, v] : staged_) s_->st_->pages[k] = v;
  s_->st_->regions = s_->defined_;
  s_->st_->epoch++;
  return 0;
}

}  // namespace

int Store::open(const std::string& path, const Options&, std::unique_ptr<Store>* out) {
  std::lock_guard<std::mutex> g(g_mu);
  State& st = g_stores[path];
  if (st.open) return -EBUSY;
  st.open = true;
  *out = std::make_unique<DoubleStore>(&st);
  return 0;
}

}  // namespace ckpt::store

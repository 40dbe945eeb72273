// SPDX-License-Identifier: MIT
// libckpt store: a medium over a byte image in memory (fuzzing, reader tests).
#include <cerrno>
#include <cstring>

#include "medium.hpp"

namespace ckpt::store {
namespace {

class MemoryMedium final : public Medium {
 public:
  MemoryMedium(std::vector<uint8_t> image, bool growable, size_t unit)
      : img_(std::move(image)), growable_(growable), unit_(unit) {}
  const char* name() const override { return "memory"; }
  uint64_t size() const override { return img_.size(); }
  bool growable() const override { return growable_; }
  int grow(uint64_t n) override {
    if (!growable_) return -ENOSPC;
    if (n > (1ull << 32)) return -ENOSPC;  // a memory image is for tests: keep it small
    if (n > img_.size()) img_.resize(n, 0);
    return 0;
  }
  int read(uint64_t off, void* dst, size_t len) override {
    if (off > img_.size() || len > img_.size() - off) return -EIO;
    std::memcpy(dst, img_.data() + off, len);
    return 0;
  }
  int write(uint64_t off, const void* src, size_t len) override {
    if (off > img_.size() || len > img_.size() - off) return -ENOSPC;
    std::memcpy(img_.data() + off, src, len);
    return 0;
  }
  int barrier() override { return 0; }
  size_t tear_unit() const override { return unit_; }
  const uint8_t* mapping() const override { return img_.data(); }

 private:
  std::vector<uint8_t> img_;
  bool growable_;
  size_t unit_;
};

}  // namespace

std::unique_ptr<Medium> memory_medium(std::vector<uint8_t> image, bool growable,
                                      size_t tear_unit) {
  return std::make_unique<MemoryMedium>(std::move(image), growable, tear_unit);
}

}  // namespace ckpt::store

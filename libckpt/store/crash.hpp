// SPDX-License-Identifier: MIT
// libckpt store: recording a medium's persistence operations and rebuilding what a crash at
// any instant could leave on it (for crash-consistency tests; medium.hpp has the model).
//
// A Recorder wraps a real medium: every write, barrier and grow passes through to it and, while
// recording, is also logged. crash_image() then takes the bytes the medium held when recording
// started and applies a crash state: the first `prefix` operations were issued; every write
// followed by a barrier inside the prefix is durable; each later ("pending") write has a fate —
// lost, whole, or torn at the medium's tear unit. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "medium.hpp"

namespace ckpt::store {

struct CrashOp {
  enum Kind : uint8_t { kWrite, kBarrier, kGrow } kind = kWrite;
  uint64_t off = 0;            // kWrite
  std::vector<uint8_t> bytes;  // kWrite
  uint64_t size = 0;           // kGrow: new size in bytes
};

class Recorder final : public Medium {
 public:
  explicit Recorder(std::unique_ptr<Medium> inner) : in_(std::move(inner)) {}
  void start() { rec_ = true; }
  void stop() { rec_ = false; }
  const std::vector<CrashOp>& ops() const { return ops_; }
  void clear() { ops_.clear(); }

  const char* name() const override { return in_->name(); }
  uint64_t size() const override { return in_->size(); }
  bool growable() const override { return in_->growable(); }
  int grow(uint64_t n) override;
  int read(uint64_t off, void* dst, size_t len) override { return in_->read(off, dst, len); }
  int write(uint64_t off, const void* src, size_t len) override;
  int write_nocopy(uint64_t off, const void* src, size_t len) override;
  int settle() override { return in_->settle(); }
  int barrier() override;
  size_t tear_unit() const override { return in_->tear_unit(); }
  const uint8_t* mapping() const override { return in_->mapping(); }

 private:
  int recorded_write(int r, uint64_t off, const void* src, size_t len);

  std::unique_ptr<Medium> in_;
  bool rec_ = false;
  std::vector<CrashOp> ops_;
};

enum class Fate : uint8_t {
  kLost,        // nothing of the write reached the medium
  kWhole,       // all of it did
  kTornHead,    // the first half (in tear units) did
  kTornTail,    // the second half did
  kTornRandom,  // each tear unit independently, chosen by the state's seed
};

struct CrashState {
  size_t prefix = 0;        // operations issued before the crash
  std::vector<Fate> fate;   // one per pending write (pending_writes()), default kWhole
  uint64_t seed = 0;        // for kTornRandom
};

// Indices (into ops) of the writes in the first `prefix` operations not followed by a barrier
// within the prefix.
std::vector<size_t> pending_writes(const std::vector<CrashOp>& ops, size_t prefix);

// The medium's bytes after the crash `s`, starting from `before`.
std::vector<uint8_t> crash_image(const std::vector<uint8_t>& before,
                                 const std::vector<CrashOp>& ops, const CrashState& s,
                                 size_t tear_unit);

}  // namespace ckpt::store

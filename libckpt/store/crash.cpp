// SPDX-License-Identifier: MIT
// libckpt store: the operation recorder and crash-image construction (crash.hpp).
#include "crash.hpp"

#include <algorithm>
#include <cstring>
#include <random>

namespace ckpt::store {

int Recorder::grow(uint64_t n) {
  int r = in_->grow(n);
  if (r == 0 && rec_) {
    CrashOp op;
    op.kind = CrashOp::kGrow;
    op.size = in_->size();
    ops_.push_back(std::move(op));
  }
  return r;
}

// Record a write the medium accepted (r == 0); returns r.
int Recorder::recorded_write(int r, uint64_t off, const void* src, size_t len) {
  if (r == 0 && rec_) {
    CrashOp op;
    op.kind = CrashOp::kWrite;
    op.off = off;
    op.bytes.assign(static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + len);
    ops_.push_back(std::move(op));
  }
  return r;
}

int Recorder::write(uint64_t off, const void* src, size_t len) {
  return recorded_write(in_->write(off, src, len), off, src, len);
}

// The bytes are recorded now: the caller keeps them unchanged until settle().
int Recorder::write_nocopy(uint64_t off, const void* src, size_t len) {
  return recorded_write(in_->write_nocopy(off, src, len), off, src, len);
}

int Recorder::barrier() {
  int r = in_->barrier();
  if (r == 0 && rec_) {
    CrashOp op;
    op.kind = CrashOp::kBarrier;
    ops_.push_back(std::move(op));
  }
  return r;
}

std::vector<size_t> pending_writes(const std::vector<CrashOp>& ops, size_t prefix) {
  std::vector<size_t> p;
  for (size_t i = 0; i < prefix && i < ops.size(); i++) {
    if (ops[i].kind == CrashOp::kBarrier) p.clear();
    if (ops[i].kind == CrashOp::kWrite) p.push_back(i);
  }
  return p;
}

std::vector<uint8_t> crash_image(const std::vector<uint8_t>& before,
                                 const std::vector<CrashOp>& ops, const CrashState& s,
                                 size_t unit) {
  std::vector<uint8_t> img = before;
  const std::vector<size_t> pend = pending_writes(ops, s.prefix);
  std::mt19937_64 rng(s.seed);
  size_t next_pending = 0;
  for (size_t i = 0; i < s.prefix && i < ops.size(); i++) {
    const CrashOp& op = ops[i];
    if (op.kind == CrashOp::kGrow) {
      // A grow is durable at the next barrier like a write; growing early only adds zeros.
      if (op.size > img.size()) img.resize(op.size, 0);
      continue;
    }
    if (op.kind != CrashOp::kWrite) continue;
    Fate f = Fate::kWhole;
    if (next_pending < pend.size() && pend[next_pending] == i) {
      if (next_pending < s.fate.size()) f = s.fate[next_pending];
      next_pending++;
    }
    if (op.off + op.bytes.size() > img.size()) img.resize(op.off + op.bytes.size(), 0);
    const size_t units = (op.bytes.size() + unit - 1) / unit;
    for (size_t u = 0; u < units; u++) {
      bool keep;
      switch (f) {
        case Fate::kLost: keep = false; break;
        case Fate::kWhole: keep = true; break;
        case Fate::kTornHead: keep = u < units / 2; break;
        case Fate::kTornTail: keep = u >= units / 2; break;
        default: keep = rng() & 1; break;
      }
      if (!keep) continue;
      const size_t from = u * unit, n = std::min(unit, op.bytes.size() - from);
      std::memcpy(img.data() + op.off + from, op.bytes.data() + from, n);
    }
  }
  return img;
}

}  // namespace ckpt::store

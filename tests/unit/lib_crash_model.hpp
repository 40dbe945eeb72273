// SPDX-License-Identifier: MIT
// The program state of the kill -9 campaign (lib_crash_test, lib_crash_child) and its oracle:
// after iteration n, the registered memory is a pure function of n, so any restored epoch can
// be checked exactly.
//   "meta"  1 page:   n, and a copy of n at the end of the page
//   "data"  64 pages: iteration i rewrites pages touched(i, 0..2) with pattern(i, page)
//   heap "list": a linked list of nodes holding m, m-1, ..., 1 where m = min(n, kNodes)
//                (allocated one per iteration while the list is shorter than kNodes, so a long
//                campaign never fills the 1 MiB arena)
#pragma once

#include <ckpt/ckpt.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace crash_model {

constexpr size_t kPages = 64;
constexpr size_t kPs = 4096;
constexpr uint64_t kNodes = 16384;  // 16384 nodes of 16 bytes (+ headers) fit the 1 MiB arena

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline size_t touched(uint64_t i, int k) { return mix(i * 3 + static_cast<uint64_t>(k)) % kPages; }
inline void pattern(uint64_t i, size_t page, uint64_t* out) {
  for (size_t w = 0; w < kPs / 8; w++) out[w] = mix((i << 20) ^ (page << 12) ^ w);
}

struct Node {
  Node* next;
  uint64_t value;
};

struct State {
  ckpt_t* c = nullptr;
  uint64_t* meta = nullptr;
  uint64_t* data = nullptr;
  ckpt_heap_t* heap = nullptr;

  int open(const char* path) {
    // lib_crash_child checkpoints and lib_crash_test restores: two programs sharing a store on
    // purpose, so each accepts the other's checkpoints.
    ckpt_config_t cfg;
    ckpt_config_init(&cfg);
    cfg.flags = CKPT_CFG_OTHER_PROGRAM;
    int r = ckpt_open(path, &cfg, &c);
    if (r) return r;
    meta = static_cast<uint64_t*>(mmap(nullptr, kPs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    data = static_cast<uint64_t*>(mmap(nullptr, kPages * kPs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (meta == MAP_FAILED || data == MAP_FAILED) return -ENOMEM;
    if ((r = ckpt_register(c, "meta", meta, kPs))) return r;
    if ((r = ckpt_register(c, "data", data, kPages * kPs))) return r;
    return ckpt_heap_open(c, "list", 1 << 20, nullptr, &heap);
  }
  void close() {
    ckpt_close(c);
    if (meta && meta != MAP_FAILED) munmap(meta, kPs);
    if (data && data != MAP_FAILED) munmap(data, kPages * kPs);
    c = nullptr;
    meta = data = nullptr;
    heap = nullptr;
  }
  uint64_t n() const { return meta[0]; }

  // One iteration. -ENOMEM if the heap refused a node the model needs (a real failure).
  int step() {
    uint64_t i = meta[0] + 1;
    for (int k = 0; k < 3; k++) {
      size_t p = touched(i, k);
      pattern(i, p, data + p * kPs / 8);
    }
    void* mem = nullptr;
    if (i <= kNodes) {
      if (int r = ckpt_heap_alloc(heap, sizeof(Node), &mem); r) return r;
      Node* nd = static_cast<Node*>(mem);
      void* root = nullptr;
      ckpt_heap_root(heap, &root);
      nd->next = static_cast<Node*>(root);
      nd->value = i;
      ckpt_heap_set_root(heap, nd);
    }
    meta[0] = i;
    meta[kPs / 8 - 1] = i;
    return 0;
  }

  // Does memory hold exactly the state after iteration n()?
  bool verify(std::string* why) const {
    uint64_t n_ = meta[0];
    if (meta[kPs / 8 - 1] != n_) {
      *why = "meta torn: " + std::to_string(n_) + " vs " + std::to_string(meta[kPs / 8 - 1]);
      return false;
    }
    std::vector<uint64_t> last(kPages, 0);
    for (uint64_t i = 1; i <= n_; i++)
      for (int k = 0; k < 3; k++) last[touched(i, k)] = i;
    std::vector<uint64_t> want(kPs / 8);
    for (size_t p = 0; p < kPages; p++) {
      if (last[p]) pattern(last[p], p, want.data());
      else std::fill(want.begin(), want.end(), 0);
      if (memcmp(want.data(), data + p * kPs / 8, kPs)) {
        *why = "data page " + std::to_string(p) + " is not iteration " + std::to_string(last[p]) +
               "'s (n=" + std::to_string(n_) + ")";
        return false;
      }
    }
    void* root = nullptr;
    ckpt_heap_root(heap, &root);
    uint64_t expect = n_ < kNodes ? n_ : kNodes;
    for (Node* nd = static_cast<Node*>(root); nd; nd = nd->next, expect--) {
      if (nd->value != expect) {
        *why = "heap list holds " + std::to_string(nd->value) + " where " + std::to_string(expect) + " belongs";
        return false;
      }
    }
    if (expect != 0) {
      *why = "heap list ends at " + std::to_string(expect + 1) + ", n=" + std::to_string(n_);
      return false;
    }
    return true;
  }
};

}  // namespace crash_model

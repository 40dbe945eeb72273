// SPDX-License-Identifier: MIT
// The persistent heap: an arena mapped at a fixed address and registered as a region. The
// allocator's metadata (header, free lists, block headers) lives in the arena, so it is
// checkpointed and restored with the objects; pointers stay valid because the arena comes back
// at the same address. Blocks are power-of-two sized (32 B .. arena), with segregated free
// lists and a bump pointer; no coalescing (simple, and every state is self-describing).
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>

#include "session.hpp"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace ckpt {
namespace {

constexpr uint64_t kMagic = 0x3170616568706b63ULL;  // "ckpheap1"
constexpr uint32_t kBlockMagic = 0x424b4843;          // "CHKB"
constexpr int kMinClass = 5;                          // 32-byte blocks
constexpr int kClasses = 64;

struct Header {
  uint64_t magic;
  uint64_t base;       // the address the arena lives at
  uint64_t size;
  uint64_t root;       // offset of the root object, 0 = none
  uint64_t bump;       // offset of the first never-allocated byte
  uint64_t allocated;  // live blocks
  uint64_t free_head[kClasses];  // offset of the first free block of class k, 0 = none
};

struct Block {  // 16 bytes before every payload
  uint32_t magic;
  uint32_t cls;
  uint64_t state;  // 1 allocated, 0 free; when free the payload's first 8 bytes link the list
};

const std::string kPrefix = "@heap:";

// Where a new heap goes when the caller gives no hint: a window of its own, 16..64 TiB, far from
// everything the kernel places by itself (PIE text and brk near 0x55.., the mmap area growing
// down from below the stack near 0x7f..). A heap placed "anywhere" lands at the top of the mmap
// area; after a restart, the process's first mmaps there (the store's mapping, thread stacks,
// io_uring rings) can take the hole the heap must come back to, and the heap's open fails
// -EEXIST. CI saw exactly that. Slots are 1 GiB aligned (huge-page friendly); the first slot
// comes from the name's hash so different heaps rarely probe the same ones. On a smaller
// address space (a 39-bit arm64 kernel) the window does not exist and the heap goes anywhere.
constexpr uintptr_t kWindowLo = uintptr_t{1} << 44;
constexpr uintptr_t kWindowHi = uintptr_t{1} << 46;
constexpr uintptr_t kSlot = uintptr_t{1} << 30;
constexpr int kProbes = 64;

void* map_in_window(const std::string& name, size_t size) {
  if (sizeof(uintptr_t) < 8) return MAP_FAILED;
  uint64_t h = 1469598103934665603ULL;  // FNV-1a: the slot need not be secret, only spread
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ULL;
  uintptr_t span = (size + kSlot - 1) / kSlot * kSlot;
  uintptr_t slots = (kWindowHi - kWindowLo - span) / kSlot;
  for (int i = 0; i < kProbes; i++) {
    uintptr_t a = kWindowLo + ((h + i) % slots) * kSlot;
    void* want = reinterpret_cast<void*>(a);
    void* p = mmap(want, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == want) return p;
    if (p != MAP_FAILED) {  // a kernel before 4.17 takes the flag as a hint
      munmap(p, size);
      continue;
    }
    if (errno != EEXIST) return MAP_FAILED;  // ENOMEM: beyond this address space
  }
  return MAP_FAILED;
}

Header* hdr(ckpt_heap_t* h) { return static_cast<Header*>(h->base); }

void init_header(ckpt_heap_t* h) {
  Header* H = hdr(h);
  memset(H, 0, sizeof(*H));
  H->magic = kMagic;
  H->base = reinterpret_cast<uintptr_t>(h->base);
  H->size = h->size;
  H->bump = (sizeof(Header) + 15) & ~15ULL;
}

}  // namespace

int heap_open(ckpt_t* c, const char* name, size_t size, void* hint, ckpt_heap_t** out) {
  size = (size + c->ps - 1) / c->ps * c->ps;
  if (size < 2 * c->ps) size = 2 * c->ps;
  std::string want = kPrefix + name + "@";
  uintptr_t addr = 0;
  uint64_t stored_size = 0;
  {
    auto g = c->lock();
    for (auto& ri : c->store->regions()) {
      if (ri.name.compare(0, want.size(), want)) continue;
      if (sscanf(ri.name.c_str() + want.size(), "%" SCNxPTR, &addr) != 1) continue;
      stored_size = ri.size;
    }
    for (ckpt_heap* h : c->heaps)
      if (!h->region.compare(0, want.size(), want))
        return c->set_error(-EEXIST, std::string("heap '") + name + "' is already open");
  }
  if (addr && stored_size != size) {
    auto g = c->lock();
    return c->set_error(-EINVAL, std::string("heap '") + name + "': the store holds it with size " +
                                     std::to_string(stored_size) + ", opened with " + std::to_string(size));
  }
  void* want_addr = addr ? reinterpret_cast<void*>(addr) : hint;
  void* p = want_addr ? MAP_FAILED : map_in_window(name, size);
  if (p == MAP_FAILED) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (want_addr ? MAP_FIXED_NOREPLACE : 0);
    p = mmap(want_addr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  }
  if (p == MAP_FAILED || (want_addr && p != want_addr)) {
    int e = p == MAP_FAILED ? errno : EEXIST;
    if (p != MAP_FAILED) munmap(p, size);
    auto g = c->lock();
    char buf[32];
    snprintf(buf, sizeof(buf), "%p", want_addr);
    return c->set_error(e == EEXIST ? -EEXIST : -e,
                        std::string("heap '") + name + "': cannot map it at " + buf +
                            (e == EEXIST ? " (the address range is in use in this process)" : ""));
  }
  auto* h = new (std::nothrow) ckpt_heap;
  if (!h) {
    munmap(p, size);
    return -ENOMEM;
  }
  h->c = c;
  h->base = p;
  h->size = size;
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRIxPTR, reinterpret_cast<uintptr_t>(p));
  h->region = want + buf;
  init_header(h);  // a stored heap's header comes back with ckpt_restore()
  int ret = c->do_register(h->region, p, size);
  if (ret) {
    munmap(p, size);
    delete h;
    return ret;
  }
  {
    auto g = c->lock();
    c->heaps.push_back(h);
  }
  *out = h;
  return 0;
}

void heap_destroy(ckpt_heap_t* h) {
  munmap(h->base, h->size);
  delete h;
}

int heap_alloc(ckpt_heap_t* h, size_t n, void** out) {
  if (n > (1ULL << 62)) return -ENOMEM;
  int k = kMinClass;
  while ((1ULL << k) < n + sizeof(Block)) k++;
  std::lock_guard<std::mutex> g(h->mu);
  Header* H = hdr(h);
  if (H->magic != kMagic || H->base != reinterpret_cast<uintptr_t>(h->base)) return -EUCLEAN;
  auto* base = static_cast<char*>(h->base);
  uint64_t off = H->free_head[k];
  if (off) {
    H->free_head[k] = *reinterpret_cast<uint64_t*>(base + off + sizeof(Block));
  } else {
    if (H->bump + (1ULL << k) > H->size) return -ENOMEM;
    off = H->bump;
    H->bump += 1ULL << k;
  }
  auto* b = reinterpret_cast<Block*>(base + off);
  b->magic = kBlockMagic;
  b->cls = static_cast<uint32_t>(k);
  b->state = 1;
  H->allocated++;
  *out = base + off + sizeof(Block);
  return 0;
}

int heap_free(ckpt_heap_t* h, void* p) {
  auto* base = static_cast<char*>(h->base);
  auto* cp = static_cast<char*>(p);
  std::lock_guard<std::mutex> g(h->mu);
  Header* H = hdr(h);
  if (cp < base + sizeof(Header) + sizeof(Block) || cp >= base + H->bump ||
      (cp - base) % 16)
    return -EINVAL;
  auto* b = reinterpret_cast<Block*>(cp - sizeof(Block));
  if (b->magic != kBlockMagic || b->state != 1 || b->cls >= kClasses) return -EINVAL;
  uint64_t off = static_cast<uint64_t>(reinterpret_cast<char*>(b) - base);
  b->state = 0;
  *reinterpret_cast<uint64_t*>(cp) = H->free_head[b->cls];
  H->free_head[b->cls] = off;
  H->allocated--;
  return 0;
}

}  // namespace ckpt

// Root accessors live here to keep the header layout private.
extern "C" int ckpt_heap_root(ckpt_heap_t* h, void** out) {
  if (!h || !out) return -EINVAL;
  if (h->c->forked()) return -ECHILD;  // the fork rule (session.hpp)
  std::lock_guard<std::mutex> g(h->mu);
  auto* H = static_cast<ckpt::Header*>(h->base);
  *out = H->root ? static_cast<char*>(h->base) + H->root : nullptr;
  return 0;
}

extern "C" int ckpt_heap_set_root(ckpt_heap_t* h, void* root) {
  if (!h) return -EINVAL;
  if (h->c->forked()) return -ECHILD;
  auto* cp = static_cast<char*>(root);
  auto* base = static_cast<char*>(h->base);
  if (cp && (cp < base || cp >= base + h->size)) return -EINVAL;
  std::lock_guard<std::mutex> g(h->mu);
  static_cast<ckpt::Header*>(h->base)->root = cp ? static_cast<uint64_t>(cp - base) : 0;
  return 0;
}

// SPDX-License-Identifier: MIT
// The persistent heap: pointer-rich structures survive close/reopen/restore at the same address,
// the allocator's metadata comes back with them, and a taken address or a changed size fails
// clearly.
#include <set>
#include <vector>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

struct Node {
  Node* next;
  uint64_t value;
  char pad[40];
};

// The session a test opened, closed when the test ends, also when an ASSERT returns early: a
// session left open keeps the store locked, and every later test on the same store
// (CKPT_TEST_STORE) would fail -EBUSY instead of showing its own result.
class Session {
 public:
  Session(const StorePath& sp, bool first) { reopen(sp, first); }
  ~Session() { close(); }
  void reopen(const StorePath& sp, bool first) {
    close();
    ckpt_config_t cfg;
    ckpt_config_init(&cfg);
    if (first) cfg.flags = sp.first_flags();
    int r = ckpt_open(sp.path().c_str(), &cfg, &c_);
    EXPECT_EQ(r, 0) << strerror(-r);
  }
  void close() {
    if (c_) ckpt_close(c_);
    c_ = nullptr;
  }
  operator ckpt_t*() const { return c_; }

 private:
  ckpt_t* c_ = nullptr;
};

TEST(Heap, LinkedListSurvivesRestoreAtSameAddress) {
  StorePath sp;
  Session c(sp, true);
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "list", 1 << 20, nullptr, &h), 0) << ckpt_last_error(c);
  void* base = nullptr;
  size_t size = 0;
  ASSERT_EQ(ckpt_heap_info(h, &base, &size), 0);
  EXPECT_EQ(size, 1u << 20);
  void* root = reinterpret_cast<void*>(1);
  ASSERT_EQ(ckpt_heap_root(h, &root), 0);
  EXPECT_EQ(root, nullptr);  // a new heap
  Node* head = nullptr;
  for (uint64_t i = 0; i < 2000; i++) {
    void* p = nullptr;
    ASSERT_EQ(ckpt_heap_alloc(h, sizeof(Node), &p), 0);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    Node* n = static_cast<Node*>(p);
    n->value = i * 7919;
    n->next = head;
    head = n;
  }
  // Free every third node (unlinking it), so the free lists are part of the state.
  for (Node** pp = &head; *pp;) {
    if ((*pp)->value % 3 == 0) {
      Node* dead = *pp;
      *pp = dead->next;
      ASSERT_EQ(ckpt_heap_free(h, dead), 0);
    } else {
      pp = &(*pp)->next;
    }
  }
  ASSERT_EQ(ckpt_heap_set_root(h, head), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  c.close();  // unmaps the heap

  c.reopen(sp, false);
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_heap_open(c, "list", 1 << 20, nullptr, &h), 0) << ckpt_last_error(c);
  void* base2 = nullptr;
  ckpt_heap_info(h, &base2, nullptr);
  EXPECT_EQ(base2, base);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_heap_root(h, &root), 0);
  ASSERT_EQ(root, static_cast<void*>(head));
  std::set<uintptr_t> live;
  uint64_t count = 0;
  for (Node* n = static_cast<Node*>(root); n; n = n->next) {
    ASSERT_NE(n->value % 3, 0u);
    live.insert(reinterpret_cast<uintptr_t>(n));
    count++;
  }
  EXPECT_EQ(count, 2000u - 667u);
  // The allocator continues from the restored metadata: new blocks never overlap live nodes.
  for (int i = 0; i < 1000; i++) {
    void* p = nullptr;
    ASSERT_EQ(ckpt_heap_alloc(h, sizeof(Node), &p), 0);
    ASSERT_EQ(live.count(reinterpret_cast<uintptr_t>(p)), 0u) << "block " << p << " reused while live";
    live.insert(reinterpret_cast<uintptr_t>(p));
  }
  c.close();
}

TEST(Heap, TakenAddressAndSizeMismatchFailClearly) {
  StorePath sp;
  Session c(sp, true);
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), 0);
  void* base = nullptr;
  ckpt_heap_info(h, &base, nullptr);
  EXPECT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), -EEXIST);  // already open
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  c.close();

  c.reopen(sp, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_heap_open(c, "h", 32 * ps(), nullptr, &h), -EINVAL);
  EXPECT_NE(strstr(ckpt_last_error(c), "size"), nullptr) << ckpt_last_error(c);
  void* squat = mmap(base, ps(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_EQ(squat, base);
  EXPECT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), -EEXIST);
  EXPECT_NE(strstr(ckpt_last_error(c), "in use"), nullptr) << ckpt_last_error(c);
  munmap(squat, ps());
  ASSERT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_restore(c), 0);
  c.close();
}

TEST(Heap, AllocatorBadInput) {
  StorePath sp;
  Session c(sp, true);
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  EXPECT_EQ(ckpt_heap_open(c, "", ps(), nullptr, &h), -EINVAL);
  EXPECT_EQ(ckpt_heap_open(c, "a@b", ps(), nullptr, &h), -EINVAL);
  EXPECT_EQ(ckpt_heap_open(c, "z", 0, nullptr, &h), -EINVAL);
  ASSERT_EQ(ckpt_heap_open(c, "small", 4 * ps(), nullptr, &h), 0);
  void* p = nullptr;
  ASSERT_EQ(ckpt_heap_alloc(h, 100, &p), 0);
  int local = 0;
  EXPECT_EQ(ckpt_heap_free(h, &local), -EINVAL);
  EXPECT_EQ(ckpt_heap_free(h, static_cast<char*>(p) + 16), -EINVAL);
  EXPECT_EQ(ckpt_heap_set_root(h, &local), -EINVAL);
  EXPECT_EQ(ckpt_heap_free(h, p), 0);
  EXPECT_EQ(ckpt_heap_free(h, p), -EINVAL);  // double free
  int n = 0, r;
  while ((r = ckpt_heap_alloc(h, 1000, &p)) == 0) n++;
  EXPECT_EQ(r, -ENOMEM);
  EXPECT_GT(n, 5);
  EXPECT_EQ(ckpt_heap_alloc(h, SIZE_MAX, &p), -ENOMEM);
  c.close();
}

// A heap opened with no hint is placed in its own window (16..64 TiB), not at the top of the mmap
// area: after a restart, the mappings a program makes before reopening its heap (thread stacks,
// the store's mapping) go top-down into the hole the last run's heap left there, and the heap
// could not come back (-EEXIST; CI saw it). Here the "restart" fills that hole on purpose.
TEST(Heap, NewHeapIsPlacedAwayFromTheMmapAreaSoARestartFindsItsAddressFree) {
  StorePath sp;
  Session c(sp, true);
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "placed", 1 << 20, nullptr, &h), 0) << ckpt_last_error(c);
  void* base = nullptr;
  ASSERT_EQ(ckpt_heap_info(h, &base, nullptr), 0);
  uintptr_t a = reinterpret_cast<uintptr_t>(base);
  EXPECT_GE(a, uintptr_t{1} << 44) << base;
  EXPECT_LT(a, uintptr_t{1} << 46) << base;
  EXPECT_EQ(a % (uintptr_t{1} << 30), 0u) << base;
  // A second heap gets its own slot.
  ckpt_heap_t* h2 = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "placed-too", 1 << 20, nullptr, &h2), 0) << ckpt_last_error(c);
  void* base2 = nullptr;
  ASSERT_EQ(ckpt_heap_info(h2, &base2, nullptr), 0);
  EXPECT_NE(base2, base);
  void* obj = nullptr;
  ASSERT_EQ(ckpt_heap_alloc(h, 64, &obj), 0);
  static_cast<void**>(obj)[0] = obj;  // a pointer into the heap, which must survive
  ASSERT_EQ(ckpt_heap_set_root(h, obj), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  c.close();

  // The restart: whatever the kernel hands out now, anywhere, takes the free space at the top
  // of the mmap area, where a heap placed "anywhere" would have been.
  std::vector<void*> squat;
  for (int i = 0; i < 16; i++) {
    void* p = mmap(nullptr, 1 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    squat.push_back(p);
  }
  c.reopen(sp, false);
  ASSERT_TRUE(c);
  int r = ckpt_heap_open(c, "placed", 1 << 20, nullptr, &h);
  int r2 = r ? r : ckpt_heap_open(c, "placed-too", 1 << 20, nullptr, &h2);
  for (void* p : squat) munmap(p, 1 << 20);
  ASSERT_EQ(r, 0) << ckpt_last_error(c);
  ASSERT_EQ(r2, 0) << ckpt_last_error(c);
  void* again = nullptr;
  ckpt_heap_info(h, &again, nullptr);
  EXPECT_EQ(again, base);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  void* root = nullptr;
  ASSERT_EQ(ckpt_heap_root(h, &root), 0);
  ASSERT_EQ(root, obj);
  EXPECT_EQ(static_cast<void**>(root)[0], obj);
  c.close();
}

// A hint is honoured as given, outside the window; a taken hint fails clearly.
TEST(Heap, HintIsHonouredAndATakenHintFails) {
  StorePath sp;
  Session c(sp, true);
  ASSERT_TRUE(c);
  void* probe = mmap(nullptr, 4 * ps(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(probe, MAP_FAILED);
  munmap(probe, 4 * ps());
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "hinted", 4 * ps(), probe, &h), 0) << ckpt_last_error(c);
  void* base = nullptr;
  ckpt_heap_info(h, &base, nullptr);
  EXPECT_EQ(base, probe);
  void* taken = mmap(nullptr, 4 * ps(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(taken, MAP_FAILED);
  EXPECT_EQ(ckpt_heap_open(c, "hinted-taken", 4 * ps(), taken, &h), -EEXIST);
  EXPECT_NE(strstr(ckpt_last_error(c), "in use"), nullptr) << ckpt_last_error(c);
  munmap(taken, 4 * ps());
}

}  // namespace

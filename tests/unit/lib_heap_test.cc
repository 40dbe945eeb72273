// The persistent heap: pointer-rich structures survive close/reopen/restore at the same address,
// the allocator's metadata comes back with them, and a taken address or a changed size fails
// clearly.
#include <set>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

struct Node {
  Node* next;
  uint64_t value;
  char pad[40];
};

ckpt_t* open_store(const StorePath& sp, bool first) {
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  if (first) cfg.flags = sp.first_flags();
  ckpt_t* c = nullptr;
  int r = ckpt_open(sp.path().c_str(), &cfg, &c);
  EXPECT_EQ(r, 0) << strerror(-r);
  return c;
}

TEST(Heap, LinkedListSurvivesRestoreAtSameAddress) {
  StorePath sp;
  ckpt_t* c = open_store(sp, true);
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
  ckpt_close(c);  // unmaps the heap

  c = open_store(sp, false);
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
  ckpt_close(c);
}

TEST(Heap, TakenAddressAndSizeMismatchFailClearly) {
  StorePath sp;
  ckpt_t* c = open_store(sp, true);
  ASSERT_TRUE(c);
  ckpt_heap_t* h = nullptr;
  ASSERT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), 0);
  void* base = nullptr;
  ckpt_heap_info(h, &base, nullptr);
  EXPECT_EQ(ckpt_heap_open(c, "h", 64 * ps(), nullptr, &h), -EEXIST);  // already open
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  ckpt_close(c);

  c = open_store(sp, false);
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
  ckpt_close(c);
}

TEST(Heap, AllocatorBadInput) {
  StorePath sp;
  ckpt_t* c = open_store(sp, true);
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
  ckpt_close(c);
}

}  // namespace

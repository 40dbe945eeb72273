// SPDX-License-Identifier: MIT
// The C++ wrapper: RAII, move-only handles, results that carry the errno.
#include <ckpt/ckpt.hpp>

#include <thread>
#include <type_traits>

#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

static_assert(!std::is_copy_constructible_v<ckpt::Session>);
static_assert(std::is_nothrow_move_constructible_v<ckpt::Session>);

struct Counter {
  uint64_t n;
  Counter* self;
};

TEST(Cxx, SessionRoundTripWithHookAndHeap) {
  StorePath sp;
  ckpt::Session::Options o;
  o.cfg.flags = sp.first_flags();
  Mem m(2);
  void* heap_base = nullptr;
  {
    auto s = ckpt::Session::open(sp.path(), o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    ckpt::Session sess = std::move(s.value());
    EXPECT_EQ(sess.restore().err(), ENOENT);
    ASSERT_TRUE(sess.add("m", m.data(), m.size()));
    EXPECT_EQ(sess.add("m", m.data(), m.size()).err(), EEXIST);
    auto h = sess.heap("objs", 16 * ps());
    ASSERT_TRUE(h.ok()) << sess.last_error();
    auto cnt = h->make<Counter>(Counter{41, nullptr});
    ASSERT_TRUE(cnt.ok());
    cnt.value()->self = cnt.value();
    ASSERT_TRUE(h->set_root(cnt.value()));
    heap_base = h->base();
    strcpy(reinterpret_cast<char*>(m.data()), "hello");
    {
      ckpt::Session::ThreadScope ts(sess);
      ASSERT_TRUE(ts.status().ok());
      auto r = sess.hook();
      ASSERT_TRUE(r.ok());
      EXPECT_FALSE(r.value());  // no trigger configured
      ASSERT_TRUE(sess.checkpoint()) << sess.last_error();
      ASSERT_TRUE(sess.wait()) << sess.last_error();  // synchronous session: the last result
    }
    EXPECT_EQ(sess.epoch(), 1u);
    auto st = sess.stats();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->checkpoints, 1u);
    // Moved-from sessions are empty; the destructor of `sess` closes the store.
    ckpt::Session other = std::move(sess);
    EXPECT_EQ(sess.checkpoint().err(), EINVAL);  // NOLINT(bugprone-use-after-move)
  }
  Mem m2(2);
  auto s = ckpt::Session::open(sp.path());
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE(s->add("m", m2.data(), m2.size()));
  auto h = s->heap("objs", 16 * ps());
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->base(), heap_base);
  std::string seen;
  ASSERT_TRUE(s->on_restore("m", [&](const char* name, void* addr, size_t) {
    seen = std::string(name) + ":" + static_cast<char*>(addr);
    return 0;
  }));
  ASSERT_TRUE(s->restore()) << s->last_error();
  EXPECT_EQ(seen, "m:hello");
  Counter* c = h->root<Counter>();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->n, 41u);
  EXPECT_EQ(c->self, c);
  // A second open of the same store is refused while this one is open.
  auto again = ckpt::Session::open(sp.path());
  EXPECT_EQ(again.err(), EBUSY);
}

}  // namespace

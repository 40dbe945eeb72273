// SPDX-License-Identifier: MIT
// Regions that change (format 1.1): resize_region, remove_region, read_range. Every errno of
// the contract, reopen after each change, ids never reused (across snapshots too), space
// accounting (dropped pages are free once no retained epoch references them), the retained
// epoch restoring exactly after a remove/resize, and the format gate (incompat bit).
// Host, real io_uring on /tmp files; fixed-size stores on the in-memory medium.
#include <sys/wait.h>

#include <tuple>

#ifdef CKPT_TOOL
#include <nlohmann/json.hpp>
#endif

#include "format.hpp"
#include "medium.hpp"
#include "store_util.hpp"

using namespace store_test;
using namespace ckpt::store;

namespace {

constexpr uint64_t kPg = 4096;

std::unique_ptr<Store> must_open(const std::string& path, Options o = {}) {
  std::unique_ptr<Store> s;
  std::string why;
  o.why = &why;
  EXPECT_EQ(0, Store::open(path, o, &s)) << why;
  return s;
}

void expect_contents(Store& s, const Contents& want, const char* what = "") {
  Contents got;
  ASSERT_EQ(0, read_all(s, &got)) << what << ": " << s.last_error();
  ASSERT_EQ(want.size(), got.size()) << what;
  for (const auto& [name, bytes] : want) {
    ASSERT_TRUE(got.count(name)) << what << ": " << name;
    EXPECT_TRUE(got[name] == bytes) << what << ": region " << name << " differs";
  }
}

uint32_t id_of(Store& s, const std::string& name) {
  for (const auto& r : s.regions())
    if (r.name == name) return r.id;
  return 0;
}

uint64_t superblock_incompat(const std::string& path) {
  auto img = read_file(path);
  fmt::SuperBlock sb;
  std::memcpy(&sb, img.data(), sizeof(sb));
  return sb.incompat;
}

TEST(StoreRegions, ResizeGrowsAndShrinksAndSurvivesReopen) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  {
    auto s = must_open(p);
    std::vector<Write> w;
    for (uint64_t i = 0; i < 8; i++) w.push_back({"a", i, 10 + i});
    ASSERT_EQ(0, checkpoint(*s, {{"a", 8 * kPg}, {"b", 2 * kPg}}, w, &o));
    const uint32_t a = id_of(*s, "a");
    // Shrink: in memory now (regions(), put_page bounds), on the medium at the next commit.
    ASSERT_EQ(0, txn_resize(*s, a, 4 * kPg));
    EXPECT_EQ(4 * kPg, s->regions()[0].size);
    o["a"].resize(4 * kPg);
    {
      std::unique_ptr<Txn> t;
      ASSERT_EQ(0, s->begin(&t));
      auto pg = page_of(1);
      EXPECT_EQ(-EINVAL, t->put_page(a, 4, pg.data()));  // beyond the new size
      ASSERT_EQ(0, t->put_page(a, 3, pg.data()));
      std::memcpy(o["a"].data() + 3 * kPg, pg.data(), kPg);
      ASSERT_EQ(0, t->commit());
    }
    expect_contents(*s, o, "after shrink");
  }
  {
    auto s = must_open(p);  // the shrink is on the medium
    EXPECT_EQ(4 * kPg, s->regions()[0].size);
    expect_contents(*s, o, "reopened after shrink");
    const uint32_t a = id_of(*s, "a");
    // Grow: old pages kept, new ones read as zeros, before and after the commit.
    ASSERT_EQ(0, txn_resize(*s, a, 12 * kPg));
    o["a"].resize(12 * kPg, 0);
    expect_contents(*s, o, "grown, not committed");
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 11, 99}}, &o));
    expect_contents(*s, o, "after grow");
  }
  auto s = must_open(p);
  expect_contents(*s, o, "reopened after grow");
  VerifyReport vr;
  EXPECT_EQ(0, s->verify(&vr));
  // define_region checks against the current size.
  uint32_t id;
  EXPECT_EQ(0, s->define_region("a", 12 * kPg, &id));
  EXPECT_EQ(-EINVAL, s->define_region("a", 8 * kPg, &id));
}

TEST(StoreRegions, ShrinkAndGrowInOneEpochLosesTheDroppedPages) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  auto s = must_open(p);
  std::vector<Write> w;
  for (uint64_t i = 0; i < 8; i++) w.push_back({"a", i, 10 + i});
  ASSERT_EQ(0, checkpoint(*s, {{"a", 8 * kPg}}, w, &o));
  // 8 -> 2 -> 8 pages before one commit: pages 2..7 read as zeros, not as their old bytes.
  ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 5, 55}}, &o, {{"a", 2 * kPg}, {"a", 8 * kPg}}));
  ASSERT_EQ(8 * kPg, o["a"].size());
  EXPECT_NE(0, o["a"][5 * kPg]);                        // rewritten after the grow
  EXPECT_EQ(std::vector<uint8_t>(kPg, 0),
            std::vector<uint8_t>(o["a"].begin() + 7 * kPg, o["a"].end()));
  expect_contents(*s, o, "in memory");
  s.reset();
  s = must_open(p);
  expect_contents(*s, o, "reopened");
}

TEST(StoreRegions, RemoveFreesTheNameAndIdsAreNeverReused) {
  TempDir d;
  const std::string p = d.file("s");
  Options opt;
  opt.snapshot_every = 1;  // every other epoch a snapshot: ids must survive compaction
  Contents o;
  uint32_t a1, b1, c1;
  {
    auto s = must_open(p, opt);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 2 * kPg}, {"b", kPg}, {"c", kPg}},
                            {{"a", 0, 1}, {"b", 0, 2}, {"c", 0, 3}}, &o));
    a1 = id_of(*s, "a");
    b1 = id_of(*s, "b");
    c1 = id_of(*s, "c");
    ASSERT_EQ(0, txn_remove(*s, a1));
    o.erase("a");
    EXPECT_EQ(0u, id_of(*s, "a"));
    EXPECT_EQ(2u, s->regions().size());
    // The name is free again, with another size; the new region gets a new id.
    uint32_t a2;
    ASSERT_EQ(0, s->define_region("a", 3 * kPg, &a2));
    EXPECT_GT(a2, c1);
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 2, 4}}, &o));
    expect_contents(*s, o, "after remove + redefine");
    // Remove the highest id, then commit twice so a snapshot no longer lists it.
    ASSERT_EQ(0, txn_remove(*s, a2));
    o.erase("a");
    ASSERT_EQ(0, checkpoint(*s, {}, {{"b", 0, 5}}, &o));
    ASSERT_EQ(0, checkpoint(*s, {}, {{"c", 0, 6}}, &o));
    StoreStat st;
    ASSERT_EQ(0, s->stat(&st));
    EXPECT_TRUE(st.chain.back().snapshot || st.chain.front().snapshot);
    EXPECT_EQ(fmt::kFormatMinor, st.format_minor);
    uint32_t x;
    ASSERT_EQ(0, s->define_region("x", kPg, &x));
    EXPECT_GT(x, a2);
    ASSERT_EQ(0, txn_remove(*s, x));  // removed before it was ever committed: id still used
    o.erase("x");
    ASSERT_EQ(0, checkpoint(*s, {}, {}, &o));
  }
  EXPECT_TRUE(superblock_incompat(p) & fmt::kIncompatRegionChange);
  auto s = must_open(p, opt);
  expect_contents(*s, o, "reopened");
  EXPECT_EQ(b1, id_of(*s, "b"));
  EXPECT_EQ(c1, id_of(*s, "c"));
  uint32_t y;
  ASSERT_EQ(0, s->define_region("y", kPg, &y));
  EXPECT_GT(y, c1 + 1) << "an id of a removed region was handed out again";
  VerifyReport vr;
  EXPECT_EQ(0, s->verify(&vr));
}

TEST(StoreRegions, EveryErrno) {
  TempDir d;
  auto s = must_open(d.file("s"));
  uint32_t a;
  ASSERT_EQ(0, s->define_region("a", 4 * kPg, &a));
  // unknown ids
  EXPECT_EQ(-ENOENT, txn_resize(*s, 0, kPg));
  EXPECT_EQ(-ENOENT, txn_resize(*s, a + 1, kPg));
  EXPECT_EQ(-ENOENT, txn_remove(*s, 0));
  EXPECT_EQ(-ENOENT, txn_remove(*s, a + 7));
  // bad sizes
  EXPECT_EQ(-EINVAL, txn_resize(*s, a, 0));
  EXPECT_EQ(-EINVAL, txn_resize(*s, a, kPg + 1));
  EXPECT_EQ(-EINVAL, txn_resize(*s, a, fmt::kMaxRegionBytes + kPg));
  // read_range before anything is committed
  std::vector<uint8_t> buf(4 * kPg);
  EXPECT_EQ(-ENOENT, s->read_range(a, 0, buf.data(), kPg, nullptr));
  Contents o;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 1, 1}, {"a", 2, 2}}, &o));
  // read_range: alignment and bounds
  EXPECT_EQ(-EINVAL, s->read_range(a, 1, buf.data(), kPg, nullptr));
  EXPECT_EQ(-EINVAL, s->read_range(a, 0, buf.data(), 100, nullptr));
  EXPECT_EQ(-EINVAL, s->read_range(a, 3 * kPg, buf.data(), 2 * kPg, nullptr));
  EXPECT_EQ(-EINVAL, s->read_range(a, 8 * kPg, buf.data(), 0, nullptr));
  EXPECT_EQ(-EINVAL, s->read_range(a, ~0ull & ~(kPg - 1), buf.data(), 2 * kPg, nullptr));
  EXPECT_EQ(-ENOENT, s->read_range(a + 1, 0, buf.data(), kPg, nullptr));
  // -EBUSY once the transaction has staged a page, and nothing changed by the refused calls;
  // -EINVAL after its commit
  {
    std::unique_ptr<Txn> t;
    ASSERT_EQ(0, s->begin(&t));
    ASSERT_EQ(0, t->put_page(a, 0, buf.data()));
    EXPECT_EQ(-EBUSY, t->resize_region(a, 8 * kPg));
    EXPECT_EQ(-EBUSY, t->remove_region(a));
    EXPECT_EQ(4 * kPg, s->regions()[0].size);
    ASSERT_EQ(0, t->commit());
    EXPECT_EQ(-EINVAL, t->resize_region(a, 8 * kPg));
    EXPECT_EQ(-EINVAL, t->remove_region(a));
  }
  EXPECT_EQ(4 * kPg, s->regions()[0].size);
  // removed: every call says -ENOENT
  ASSERT_EQ(0, txn_remove(*s, a));
  EXPECT_EQ(-ENOENT, txn_remove(*s, a));
  EXPECT_EQ(-ENOENT, txn_resize(*s, a, kPg));
  EXPECT_EQ(-ENOENT, s->read_range(a, 0, buf.data(), kPg, nullptr));
  EXPECT_EQ(-ENOENT, s->read_region(a, buf.data(), 4 * kPg, nullptr));
  std::unique_ptr<Txn> t;
  ASSERT_EQ(0, s->begin(&t));
  EXPECT_EQ(-EINVAL, t->put_page(a, 0, buf.data()));
}

TEST(StoreRegions, ResizeBeyondAFixedStoreIsEnospcAndChangesNothing) {
  std::unique_ptr<Store> s;
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(64 * 4096), false), info, {},
                              &s));
  uint32_t a;
  ASSERT_EQ(0, s->define_region("a", 8 * kPg, &a));
  Contents o;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 0, 1}, {"a", 7, 2}}, &o));
  EXPECT_EQ(-ENOSPC, txn_resize(*s, a, 64 * kPg));
  EXPECT_EQ(8 * kPg, s->regions()[0].size);
  ASSERT_EQ(0, txn_resize(*s, a, 40 * kPg));  // fits once
  o["a"].resize(40 * kPg, 0);
  ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 39, 3}}, &o));
  expect_contents(*s, o);
}

// A fixed-size store that would fill up if removed or dropped pages stayed referenced: regions
// appear, change and disappear for many epochs; their blocks must come back.
TEST(StoreRegions, DroppedPagesBecomeFreeOnceNoRetainedEpochNeedsThem) {
  std::unique_ptr<Store> s;
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(128 * 4096), false), info, {},
                              &s));
  Contents o;
  StoreStat st0, st;
  ASSERT_EQ(0, checkpoint(*s, {{"keep", kPg}}, {{"keep", 0, 1}}, &o));
  ASSERT_EQ(0, s->stat(&st0));
  for (int round = 0; round < 40; round++) {
    const std::string n = "m" + std::to_string(round);
    std::vector<Write> w;
    for (uint64_t i = 0; i < 24; i++) w.push_back({n, i, 1000 * round + i});
    ASSERT_EQ(0, checkpoint(*s, {{n, 24 * kPg}}, w, &o)) << round << ": " << s->last_error();
    // Shrink to 8 pages, then remove: 24 blocks dropped over two epochs.
    ASSERT_EQ(0, checkpoint(*s, {}, {}, &o, {{n, 8 * kPg}})) << round;
    ASSERT_EQ(0, s->stat(&st));
    EXPECT_GE(st.retained_only_blocks, 16u) << "the shrunk tail is kept for the retained epoch";
    ASSERT_EQ(0, checkpoint(*s, {}, {}, &o, {{n, 0}})) << round;
    ASSERT_EQ(0, s->stat(&st));
    EXPECT_GE(st.retained_only_blocks, 8u) << "the removed region is kept for the retained epoch";
    ASSERT_EQ(0, checkpoint(*s, {}, {{"keep", 0, uint64_t(round)}}, &o)) << round;
  }
  ASSERT_EQ(0, s->stat(&st));
  EXPECT_EQ(1u, st.live_data_blocks);
  EXPECT_LE(st.retained_only_blocks, 4u);
  EXPECT_GE(st.free_blocks + 8, st0.free_blocks);
  expect_contents(*s, o);
}

// The newest epoch removed one region, shrank another and grew a third; one of its pages is
// damaged. Reading falls back to the retained epoch, which restores exactly: the removed
// region is back, sizes are the old ones. The next commit builds on it; reopen agrees.
TEST(StoreRegions, FallbackAcrossRemoveAndResizeRestoresTheRetainedEpochExactly) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1, e2;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"gone", 2 * kPg}, {"shrunk", 4 * kPg}, {"grown", kPg}},
                            {{"gone", 0, 1}, {"gone", 1, 2}, {"shrunk", 3, 3}, {"grown", 0, 4}},
                            &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {{"new", kPg}}, {{"grown", 2, 777}, {"new", 0, 6}}, &e2,
                            {{"gone", 0}, {"shrunk", 2 * kPg}, {"grown", 3 * kPg}}));
  }
  auto img = read_file(p);
  const auto bad = page_of(777);
  int hits = 0;
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(&img[off], bad.data(), 4096) == 0) {
      img[off + 9] ^= 1;
      hits++;
    }
  ASSERT_EQ(1, hits);
  ASSERT_TRUE(write_file(p, img));

  auto s = must_open(p);
  EXPECT_EQ(2u, s->epoch());
  VerifyReport vr;
  EXPECT_EQ(-EIO, s->verify(&vr));
  EXPECT_EQ(1u, vr.newest_intact_epoch);
  // read_range of the damaged page triggers the fallback.
  std::vector<uint8_t> buf(kPg);
  ReadReport rep;
  const uint32_t grown = id_of(*s, "grown");
  ASSERT_EQ(-EINVAL, s->read_range(grown, 2 * kPg, buf.data(), kPg, &rep))
      << "epoch 1's 'grown' is one page: the range no longer exists";
  EXPECT_EQ(1u, s->read_epoch());
  Contents got;
  ASSERT_EQ(0, read_all(*s, &got)) << s->last_error();
  Contents want = e1;  // "new" (defined in the abandoned epoch) is pending, not readable
  EXPECT_TRUE(got == want);
  EXPECT_EQ(4u, s->regions().size());
  EXPECT_NE(0u, id_of(*s, "gone"));
  // The next checkpoint builds on epoch 1, with the caller's region "new" defined in it.
  Contents e3 = e1;
  e3["new"] = std::vector<uint8_t>(kPg, 0);
  ASSERT_EQ(0, checkpoint(*s, {}, {{"gone", 1, 8}}, &e3));
  expect_contents(*s, e3, "epoch 3");
  s.reset();
  s = must_open(p);
  EXPECT_EQ(3u, s->epoch());
  expect_contents(*s, e3, "epoch 3 reopened");
  EXPECT_EQ(0, s->verify(&vr));
}

// The same within one session (the retained epoch's map comes from the commit, not from
// replay at open), on the in-memory medium so the test can damage a block under the store.
TEST(StoreRegions, InSessionFallbackAcrossRemoveAndResize) {
  auto med = memory_medium(std::vector<uint8_t>(256 * 4096), false);
  auto* bytes = const_cast<uint8_t*>(med->mapping());
  const size_t size = med->size();
  std::unique_ptr<Store> s;
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  ASSERT_EQ(0, open_on_medium(std::move(med), info, {}, &s));
  Contents e1, e2;
  ASSERT_EQ(0, checkpoint(*s, {{"gone", 2 * kPg}, {"shrunk", 4 * kPg}, {"grown", kPg}},
                          {{"gone", 0, 1}, {"gone", 1, 2}, {"shrunk", 3, 3}, {"grown", 0, 4}},
                          &e1));
  e2 = e1;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"grown", 0, 777}}, &e2,
                          {{"gone", 0}, {"shrunk", 2 * kPg}, {"grown", 3 * kPg}}));
  // Fill the free space: if the dropped blocks were free, these would overwrite them.
  Contents tmp = e2;
  std::vector<Write> w;
  for (uint64_t i = 0; i < 150; i++) w.push_back({"fill", i, 5000 + i});
  {
    ASSERT_EQ(0, s->define_region("fill", 150 * kPg, nullptr));
    std::unique_ptr<Txn> t;
    ASSERT_EQ(0, s->begin(&t));
    for (const auto& x : w) ASSERT_EQ(0, t->put_page(id_of(*s, "fill"), x.page, page_of(x.seed).data()));
    // abandoned: the blocks were written, then released
  }
  ASSERT_EQ(0, txn_remove(*s, id_of(*s, "fill")));
  const auto bad = page_of(777);
  int hits = 0;
  for (size_t off = 4 * 4096; off + 4096 <= size; off += 4096)
    if (std::memcmp(bytes + off, bad.data(), 4096) == 0) {
      bytes[off + 9] ^= 1;
      hits++;
    }
  ASSERT_EQ(1, hits);
  // Reading 'grown' (3 pages in epoch 2, 1 in epoch 1) falls back, then says the size changed.
  std::vector<uint8_t> buf(3 * kPg);
  ReadReport rep;
  EXPECT_EQ(-EINVAL, s->read_region(id_of(*s, "grown"), buf.data(), buf.size(), &rep));
  EXPECT_EQ(1u, rep.epoch);
  EXPECT_EQ(1u, s->read_epoch());
  Contents got;
  ASSERT_EQ(0, read_all(*s, &got)) << s->last_error();
  EXPECT_TRUE(got == e1) << "the retained epoch does not restore exactly";
  Contents e3 = e1;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"gone", 1, 8}}, &e3));
  expect_contents(*s, e3, "epoch 3");
  std::vector<uint8_t> image(bytes, bytes + size);  // the medium goes with the store
  s.reset();
  ASSERT_EQ(0, open_on_medium(memory_medium(std::move(image), false), info, {}, &s));
  expect_contents(*s, e3, "epoch 3 reopened");
}

// Pending changes made after opening are kept across a fallback and apply to the older epoch.
TEST(StoreRegions, PendingChangesSurviveAFallback) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1, e2;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * kPg}, {"b", 2 * kPg}},
                            {{"a", 0, 1}, {"a", 3, 2}, {"b", 0, 3}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {}, {{"b", 1, 444}}, &e2));
  }
  auto img = read_file(p);
  const auto bad = page_of(444);
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(&img[off], bad.data(), 4096) == 0) img[off] ^= 1;
  ASSERT_TRUE(write_file(p, img));
  auto s = must_open(p);
  Contents want = e1;
  ASSERT_EQ(0, apply_changes(*s, {{"a", 2 * kPg}}, &want));  // pending shrink of a
  std::vector<uint8_t> buf(2 * kPg);
  ReadReport rep;
  ASSERT_EQ(0, s->read_region(id_of(*s, "b"), buf.data(), buf.size(), &rep));
  EXPECT_EQ(1u, rep.epoch);
  EXPECT_EQ(2 * kPg, s->regions()[0].size);
  expect_contents(*s, want, "fallen back, shrink pending");
  ASSERT_EQ(0, checkpoint(*s, {}, {}, &want));
  s.reset();
  s = must_open(p);
  expect_contents(*s, want, "reopened");
}

TEST(StoreRegions, ReadRangeReadsPartsOfARegion) {
  TempDir d;
  auto s = must_open(d.file("s"));
  Contents o;
  std::vector<Write> w;
  for (uint64_t i = 0; i < 64; i += 3) w.push_back({"r", i, i + 1});
  ASSERT_EQ(0, checkpoint(*s, {{"r", 64 * kPg}}, w, &o));
  const uint32_t r = id_of(*s, "r");
  for (uint64_t off : {0ull, 1ull, 5ull, 63ull})
    for (uint64_t n : {0ull, 1ull, 2ull, 7ull}) {
      if (off + n > 64) continue;
      std::vector<uint8_t> buf(n * kPg + 1, 0xee);
      ReadReport rep;
      ASSERT_EQ(0, s->read_range(r, off * kPg, buf.data(), n * kPg, &rep));
      EXPECT_EQ(1u, rep.epoch);
      EXPECT_EQ(0, std::memcmp(buf.data(), o["r"].data() + off * kPg, n * kPg)) << off << "+" << n;
      EXPECT_EQ(0xee, buf.back()) << "wrote past len";
    }
  // A shrink pending: the dropped part is out of range; a grow pending: reads as zeros.
  ASSERT_EQ(0, txn_resize(*s, r, 10 * kPg));
  std::vector<uint8_t> buf(kPg);
  EXPECT_EQ(-EINVAL, s->read_range(r, 10 * kPg, buf.data(), kPg, nullptr));
  ASSERT_EQ(0, txn_resize(*s, r, 20 * kPg));
  ASSERT_EQ(0, s->read_range(r, 12 * kPg, buf.data(), kPg, nullptr));
  EXPECT_EQ(std::vector<uint8_t>(kPg, 0), buf);
}

// A 1.0 store (no region changes) is read as before, and stays 1.0-readable until the first
// change: only then is the incompat bit set, which a reader without it refuses (-EPROTO).
TEST(StoreRegions, IncompatBitIsSetByTheFirstChangeAndRefusedByOlderReaders) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"a", kPg}, {"b", kPg}}, {{"a", 0, 1}}, &o));
  }
  EXPECT_EQ(0u, superblock_incompat(p));
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {}, {}, &o, {{"a", 0}}));
  }
  const uint64_t bits = superblock_incompat(p);
  EXPECT_EQ(fmt::kIncompatRegionChange, bits);
  auto img = read_file(p);
  for (int i = 0; i < 2; i++) {
    fmt::SuperBlock sb;
    std::memcpy(&sb, &img[i * 4096], sizeof(sb));
    EXPECT_EQ(fmt::kFormatMinor, sb.minor);
    EXPECT_EQ(bits, sb.incompat) << "copy " << i;
    // What a reader that knows no such bit sees: an unknown incompat bit.
    sb.incompat |= 1ull << 40;
    fmt::seal_super(&sb);
    const char* why = "";
    EXPECT_EQ(-EPROTO, fmt::check_super(&sb, &why));
  }
  auto s = must_open(p);
  expect_contents(*s, o);
}

#ifdef CKPT_TOOL
std::pair<int, std::string> tool(const std::string& args) {
  FILE* p = popen((std::string(CKPT_TOOL) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, out};
}

// ckpt-tool inspect and verify read regions() and the verify report: a removed region is not
// listed, the epoch table says what changed, and damage to the copy the retained epoch keeps
// of a removed region is named by its name.
TEST(StoreRegions, ToolInspectAndVerifyAfterRemoveAndResize) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"alpha", 4 * kPg}, {"beta", 2 * kPg}},
                            {{"alpha", 0, 1}, {"beta", 1, 4242}}, &o));
    ASSERT_EQ(0, checkpoint(*s, {}, {{"alpha", 5, 2}}, &o, {{"beta", 0}, {"alpha", 6 * kPg}}));
  }
  auto [st, out] = tool("inspect --json " + p);
  ASSERT_EQ(0, st) << out;
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(1u, j["regions"].size());
  EXPECT_EQ("alpha", j["regions"][0]["name"]);
  EXPECT_EQ(6u, j["regions"][0]["pages"].get<uint64_t>());
  EXPECT_EQ("1." + std::to_string(fmt::kFormatMinor), j["format"]);
  const auto& last = j["epochs"].back();
  EXPECT_EQ(2u, last["epoch"].get<uint64_t>());
  EXPECT_EQ(1u, last["regions_resized"].get<uint64_t>());
  EXPECT_EQ(1u, last["regions_removed"].get<uint64_t>());
  std::tie(st, out) = tool("inspect " + p);
  ASSERT_EQ(0, st) << out;
  EXPECT_NE(std::string::npos, out.find("~1 -1")) << out;
  EXPECT_EQ(std::string::npos, out.find("beta")) << out;

  // Damage beta's page, which only the retained epoch 1 still references.
  auto img = read_file(p);
  const auto bad = page_of(4242);
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(&img[off], bad.data(), 4096) == 0) img[off + 17] ^= 8;
  ASSERT_TRUE(write_file(p, img));
  std::tie(st, out) = tool("verify --json " + p);
  EXPECT_EQ(0, st) << "the newest epoch is intact: " << out;
  j = nlohmann::json::parse(out);
  EXPECT_TRUE(j["restorable"].get<bool>());
  ASSERT_EQ(1u, j["damaged"].size()) << out;
  EXPECT_EQ("beta", j["damaged"][0]["region"]);
  EXPECT_EQ(1u, j["damaged"][0]["page"].get<uint64_t>());
  EXPECT_EQ(1u, j["damaged"][0]["epoch"].get<uint64_t>());
  std::tie(st, out) = tool("verify " + p);
  EXPECT_NE(std::string::npos, out.find("region beta page 1, copy of epoch 1")) << out;
}
#endif

}  // namespace

// SPDX-License-Identifier: MIT
// The store on the host: the io_uring writer on regular files in /tmp, epochs, incremental
// writes, snapshot compaction, fallback to the retained epoch, and every clear error
// (-EBUSY across processes, -EPROTO, -ENOSPC on a full file system, -EINVAL, -EUCLEAN).
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>

#include <xxhash.h>

#include "crash.hpp"
#include "format.hpp"
#include "medium.hpp"
#include "store_util.hpp"

using namespace store_test;
using namespace ckpt::store;

namespace {

std::unique_ptr<Store> must_open(const std::string& path, Options o = {}) {
  std::unique_ptr<Store> s;
  std::string why;
  o.why = &why;
  int r = Store::open(path, o, &s);
  EXPECT_EQ(0, r) << why;
  return s;
}

void expect_contents(Store& s, const Contents& want) {
  Contents got;
  ASSERT_EQ(0, read_all(s, &got)) << s.last_error();
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, bytes] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got[name] == bytes) << "region " << name << " differs";
  }
}

TEST(Store, MissingPathBecomesGrowingIoUringFileStore) {
  TempDir d;
  const std::string p = d.file("s");
  auto s = must_open(p);
  ASSERT_TRUE(s);
  EXPECT_STREQ("io_uring", s->writer_name());
  EXPECT_EQ(0u, s->epoch());
  EXPECT_EQ(4096u, s->page_size());
  uint32_t id;
  ASSERT_EQ(0, s->define_region("a", 64 * 4096, &id));
  std::vector<uint8_t> buf(64 * 4096);
  EXPECT_EQ(-ENOENT, s->read_region(id, buf.data(), buf.size(), nullptr));  // nothing committed

  Contents oracle;
  ASSERT_EQ(0, checkpoint(*s, {{"a", 64 * 4096}, {"b", 2 * 4096}},
                          {{"a", 0, 1}, {"a", 63, 2}, {"b", 1, 3}}, &oracle));
  EXPECT_EQ(1u, s->epoch());
  expect_contents(*s, oracle);
  s.reset();

  s = must_open(p);
  EXPECT_EQ(1u, s->epoch());
  auto regs = s->regions();
  ASSERT_EQ(2u, regs.size());
  EXPECT_EQ("a", regs[0].name);
  EXPECT_EQ(64u * 4096, regs[0].size);
  expect_contents(*s, oracle);
  StoreStat st;
  ASSERT_EQ(0, s->stat(&st));
  EXPECT_EQ(3u, st.live_data_blocks);
  EXPECT_TRUE(st.growable);
  EXPECT_EQ(1u, st.format_major);
}

TEST(Store, CheckpointWritesOnlyDirtyPagesPlusSmallMetadata) {
  TempDir d;
  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  ASSERT_EQ(0, open_medium(d.file("s"), {}, &m, &info, &why)) << why;
  auto rec = std::make_unique<Recorder>(std::move(m));
  Recorder* r = rec.get();
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::move(rec), info, {}, &s));
  Contents oracle;
  std::vector<Write> all;
  for (uint64_t p = 0; p < 1024; p++) all.push_back({"big", p, p});
  ASSERT_EQ(0, checkpoint(*s, {{"big", 1024 * 4096}}, all, &oracle));  // 4 MiB, all written
  for (uint64_t dirty : {1u, 10u, 100u}) {
    r->clear();
    r->start();
    std::vector<Write> w;
    for (uint64_t i = 0; i < dirty; i++) w.push_back({"big", i * 7 % 1024, 1000 + i});
    ASSERT_EQ(0, checkpoint(*s, {}, w, &oracle));
    r->stop();
    uint64_t bytes = 0, barriers = 0;
    for (const auto& op : r->ops()) {
      bytes += op.bytes.size();
      barriers += op.kind == CrashOp::kBarrier;
    }
    // dirty pages + ceil(dirty / 126) delta blocks + one commit record, two durability points.
    const uint64_t meta = (dirty + fmt::kSlotsPerBlock - 1) / fmt::kSlotsPerBlock;
    EXPECT_EQ((dirty + meta + 1) * 4096, bytes) << dirty << " dirty pages";
    EXPECT_EQ(2u, barriers);
  }
  s.reset();
  s = must_open(d.file("s"));
  expect_contents(*s, oracle);
}

// A checkpoint reuses the blocks freed by the commit before last rather than walking through
// the rest of a big store: what is written stays within about two epochs' worth of blocks
// (untouched parts of a store cost more to write: unwritten extents, fresh DAX pages).
TEST(Store, AllocationStaysCompactInABigStore) {
  TempDir d;
  Options o;
  o.create_size = 16 << 20;  // 4096 blocks, of which about 130 are ever needed
  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  ASSERT_EQ(0, open_medium(d.file("s"), o, &m, &info, &why)) << why;
  auto rec = std::make_unique<Recorder>(std::move(m));
  Recorder* r = rec.get();
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::move(rec), info, o, &s));
  Contents oracle;
  ASSERT_EQ(0, checkpoint(*s, {{"r", 64 * 4096}}, {{"r", 0, 1, 64}}, &oracle));
  r->start();
  for (uint64_t e = 0; e < 100; e++) {
    std::vector<Write> w;
    for (uint64_t i = 0; i < 8; i++) w.push_back({"r", (e * 5 + i * 8) % 64, 100 + e * 8 + i});
    ASSERT_EQ(0, checkpoint(*s, {}, w, &oracle)) << s->last_error();
  }
  r->stop();
  uint64_t highest = 0;
  for (const auto& op : r->ops())
    if (op.kind == CrashOp::kWrite) highest = std::max(highest, (op.off + op.bytes.size()) / 4096);
  // 4 header blocks + 64 live pages + 8 retained-only + 8 in the checkpoint + the metadata of
  // two chains (a snapshot of one block, at most ~17 delta blocks each).
  EXPECT_LE(highest, 130u);
  StoreStat st;
  ASSERT_EQ(0, s->stat(&st));
  EXPECT_GE(st.total_blocks, 4096u);
  s.reset();
  s = must_open(d.file("s"));
  expect_contents(*s, oracle);
}

TEST(Store, ManyEpochsWithSnapshotCompactionStayBoundedAndCorrect) {
  TempDir d;
  const std::string p = d.file("s");
  Options o;
  o.snapshot_every = 3;
  auto s = must_open(p, o);
  Contents oracle;
  std::mt19937_64 rng(42);
  for (int e = 1; e <= 40; e++) {
    std::vector<Write> w;
    for (int i = 0; i < 20; i++) w.push_back({"r", rng() % 128, rng()});
    std::map<std::string, uint64_t> defs{{"r", 128 * 4096}};
    if (e == 7) defs["late"] = 4 * 4096;
    if (e >= 7) w.push_back({"late", rng() % 4, rng()});
    ASSERT_EQ(0, checkpoint(*s, defs, w, &oracle)) << s->last_error();
    if (e % 5 == 0) {
      s.reset();
      s = must_open(p, o);
      ASSERT_EQ(uint64_t(e), s->epoch());
      expect_contents(*s, oracle);
      VerifyReport vr;
      EXPECT_EQ(0, s->verify(&vr));
      EXPECT_EQ(uint64_t(e), vr.newest_intact_epoch);
      EXPECT_TRUE(vr.damaged.empty());
      StoreStat st;
      ASSERT_EQ(0, s->stat(&st));
      ASSERT_FALSE(st.chain.empty());
      EXPECT_TRUE(st.chain.front().snapshot);
      EXPECT_LE(st.chain.size(), 4u);  // a snapshot and at most 3 deltas
      EXPECT_EQ(uint64_t(e - 1), st.retained_epoch);
      // Space is reused: live + retained + metadata, never one copy per epoch.
      EXPECT_LT(st.total_blocks, 1024u) << "store grew to " << st.total_blocks << " blocks";
    }
  }
}

TEST(Store, RegionNamesAndSizesAreChecked) {
  TempDir d;
  auto s = must_open(d.file("s"));
  uint32_t id, id2;
  ASSERT_EQ(0, s->define_region("x", 8192, &id));
  EXPECT_EQ(0, s->define_region("x", 8192, &id2));
  EXPECT_EQ(id, id2);
  EXPECT_EQ(-EINVAL, s->define_region("x", 4096, &id2));
  EXPECT_NE(std::string::npos, s->last_error().find("8192"));
  EXPECT_EQ(-EINVAL, s->define_region("", 4096, &id2));
  EXPECT_EQ(-EINVAL, s->define_region(std::string(256, 'n'), 4096, &id2));
  EXPECT_EQ(-EINVAL, s->define_region(std::string("a\0b", 3), 4096, &id2));
  EXPECT_EQ(-EINVAL, s->define_region("y", 100, &id2));
  EXPECT_EQ(-EINVAL, s->define_region("y", 0, &id2));
  Contents oracle;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"x", 1, 9}}, &oracle));
  std::vector<uint8_t> buf(3 * 4096);
  EXPECT_EQ(-EINVAL, s->read_region(id, buf.data(), 3 * 4096, nullptr));
  EXPECT_EQ(-ENOENT, s->read_region(77, buf.data(), 4096, nullptr));
  std::unique_ptr<Txn> t, t2;
  ASSERT_EQ(0, s->begin(&t));
  EXPECT_EQ(-EBUSY, s->begin(&t2));
  EXPECT_EQ(-EINVAL, t->put_page(id, 2, buf.data()));
  EXPECT_EQ(-EINVAL, t->put_page(99, 0, buf.data()));
  t.reset();  // abandoned: nothing committed, blocks released
  EXPECT_EQ(1u, s->epoch());
  ASSERT_EQ(0, s->begin(&t));
  ASSERT_EQ(0, t->commit());  // an empty checkpoint is still an epoch
  EXPECT_EQ(2u, s->epoch());
  EXPECT_EQ(-EINVAL, t->commit());
}

TEST(Store, AbortedCheckpointReleasesItsBlocks) {
  TempDir d;
  auto s = must_open(d.file("s"));
  Contents oracle;
  ASSERT_EQ(0, checkpoint(*s, {{"r", 64 * 4096}}, {{"r", 0, 1}}, &oracle));
  StoreStat before, after;
  ASSERT_EQ(0, s->stat(&before));
  {
    std::unique_ptr<Txn> t;
    ASSERT_EQ(0, s->begin(&t));
    auto p = page_of(5);
    for (uint64_t i = 0; i < 32; i++) ASSERT_EQ(0, t->put_page(1, i, p.data()));
  }
  ASSERT_EQ(0, s->stat(&after));
  EXPECT_EQ(before.free_blocks, after.free_blocks);
  expect_contents(*s, oracle);
}

// Two processes: the child holds the store open, the parent is refused, then may open it.
TEST(Store, SecondOpenerInAnotherProcessGetsEbusy) {
  TempDir d;
  const std::string p = d.file("s");
  { auto s = must_open(p); }
  int ready[2], done[2];
  ASSERT_EQ(0, pipe(ready));
  ASSERT_EQ(0, pipe(done));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::unique_ptr<Store> s;
    int r = Store::open(p, {}, &s);
    char c = r == 0 ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);
    _exit(r == 0 ? 0 : 1);
  }
  char c = 0;
  ASSERT_EQ(1, read(ready[0], &c, 1));
  ASSERT_EQ('y', c);
  std::unique_ptr<Store> s;
  std::string why;
  Options o;
  o.why = &why;
  EXPECT_EQ(-EBUSY, Store::open(p, o, &s));
  EXPECT_NE(std::string::npos, why.find("another process")) << why;
  // The same process opening twice is refused too (the lock is per open file).
  c = 'x';
  ASSERT_EQ(1, write(done[1], &c, 1));
  int status;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  EXPECT_EQ(0, WEXITSTATUS(status));
  auto s1 = must_open(p);
  EXPECT_EQ(-EBUSY, Store::open(p, {}, &s));
}

void patch_super(const std::string& p, void (*f)(fmt::SuperBlock*)) {
  auto img = read_file(p);
  for (uint64_t b : fmt::kSuperBlock) {
    fmt::SuperBlock sb;
    std::memcpy(&sb, &img[b * 4096], sizeof(sb));
    f(&sb);
    fmt::seal_super(&sb);
    std::memcpy(&img[b * 4096], &sb, sizeof(sb));
  }
  ASSERT_TRUE(write_file(p, img));
}

TEST(Store, OtherFormatVersionIsEproto) {
  TempDir d;
  const std::string p = d.file("s");
  Contents oracle;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"r", 4096}}, {{"r", 0, 1}}, &oracle));
  }
  const auto good = read_file(p);
  patch_super(p, [](fmt::SuperBlock* sb) { sb->major = 2; });
  std::unique_ptr<Store> s;
  std::string why;
  Options o;
  o.why = &why;
  EXPECT_EQ(-EPROTO, Store::open(p, o, &s));
  EXPECT_NE(std::string::npos, why.find("version")) << why;
  EXPECT_TRUE(read_file(p) == std::vector<uint8_t>(read_file(p)));  // untouched below
  patch_super(p, [](fmt::SuperBlock* sb) {
    sb->major = 1;
    sb->incompat = 1ull << 40;
  });
  EXPECT_EQ(-EPROTO, Store::open(p, o, &s));
  // Nothing was lost: with the version restored, the data is there.
  ASSERT_TRUE(write_file(p, good));
  s = must_open(p);
  expect_contents(*s, oracle);
}

TEST(Store, NonStoreFileIsRefusedNotOverwritten) {
  TempDir d;
  const std::string p = d.file("notes.txt");
  std::vector<uint8_t> text(10000, 'x');
  ASSERT_TRUE(write_file(p, text));
  std::unique_ptr<Store> s;
  EXPECT_EQ(-ENODATA, Store::open(p, {}, &s));  // more in store_safety_test.cc
  EXPECT_TRUE(read_file(p) == text);
  EXPECT_EQ(-EISDIR, Store::open(d.path(), {}, &s));
  EXPECT_EQ(-ENOENT, Store::open(d.file("no/such/dir/s"), {}, &s));
  EXPECT_EQ(-EINVAL, Store::open("", {}, &s));
  Options f;
  f.force_format = true;
  EXPECT_EQ(0, Store::open(p, f, &s));
}

TEST(Store, DamagedBothSuperblocksIsEucleanAndKept) {
  TempDir d;
  const std::string p = d.file("s");
  {
    auto s = must_open(p);
    Contents oracle;
    ASSERT_EQ(0, checkpoint(*s, {{"r", 4096}}, {{"r", 0, 1}}, &oracle));
  }
  auto img = read_file(p);
  img[40] ^= 1;
  img[4096 + 40] ^= 1;
  ASSERT_TRUE(write_file(p, img));
  std::unique_ptr<Store> s;
  EXPECT_EQ(-EUCLEAN, Store::open(p, {}, &s));
  EXPECT_TRUE(read_file(p) == img);
  // One good copy is enough, and the bad one is repaired.
  img[4096 + 40] ^= 1;
  ASSERT_TRUE(write_file(p, img));
  s = must_open(p);
  ASSERT_TRUE(s);
  EXPECT_EQ(1u, s->epoch());
  s.reset();
  auto fixed = read_file(p);
  EXPECT_EQ(0, std::memcmp(&fixed[0], &fixed[4096], 128));
}

// The page blocks of one region in the read epoch, from the store's own metadata.
TEST(Store, DamagedPageFallsBackToRetainedEpochAsAWhole) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1, e2;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * 4096}, {"b", 4 * 4096}},
                            {{"a", 0, 1}, {"a", 1, 2}, {"b", 0, 3}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 1, 20}, {"b", 0, 30}}, &e2));
  }
  // Find epoch 2's copy of a[1] by its bytes, and flip one bit of it.
  auto img = read_file(p);
  auto want = page_of(20);
  size_t at = 0;
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(&img[off], want.data(), 4096) == 0) at = off;
  ASSERT_NE(0u, at);
  img[at + 100] ^= 0x10;
  ASSERT_TRUE(write_file(p, img));

  auto s = must_open(p);
  EXPECT_EQ(2u, s->epoch());
  VerifyReport vr;
  EXPECT_EQ(-EIO, s->verify(&vr));
  ASSERT_EQ(1u, vr.damaged.size());
  EXPECT_EQ(1u, vr.damaged[0].page);
  EXPECT_EQ(2u, vr.damaged[0].epoch);
  EXPECT_EQ(1u, vr.newest_intact_epoch);
  // Region b (undamaged in epoch 2) would read as epoch 2, but the store must not mix: region
  // a's damage switches everything to epoch 1, and b read before must be read again.
  std::vector<uint8_t> buf(4 * 4096);
  ReadReport rep;
  ASSERT_EQ(0, s->read_region(1, buf.data(), buf.size(), &rep));
  EXPECT_EQ(1u, rep.epoch);
  EXPECT_TRUE(buf == e1["a"]);
  EXPECT_EQ(1u, s->read_epoch());
  ASSERT_EQ(0, s->read_region(2, buf.data(), buf.size(), &rep));
  EXPECT_EQ(1u, rep.epoch);
  EXPECT_TRUE(buf == e1["b"]);
  // The next checkpoint builds on epoch 1.
  Contents e3 = e1;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"b", 3, 40}}, &e3));
  EXPECT_EQ(3u, s->epoch());
  s.reset();
  s = must_open(p);
  expect_contents(*s, e3);
  EXPECT_EQ(0, s->verify(&vr));
}

TEST(Store, DamageWithNoIntactCopyIsEioNamingThePages) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 8 * 4096}}, {{"a", 2, 1}, {"a", 5, 2}, {"a", 6, 3}}, &e1));
  }
  auto img = read_file(p);
  for (uint64_t seed : {2, 3}) {
    auto want = page_of(seed);
    for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
      if (std::memcmp(&img[off], want.data(), 4096) == 0) img[off + 7] ^= 1;
  }
  ASSERT_TRUE(write_file(p, img));
  auto s = must_open(p);
  std::vector<uint8_t> buf(8 * 4096);
  ReadReport rep;
  EXPECT_EQ(-EIO, s->read_region(1, buf.data(), buf.size(), &rep));
  EXPECT_EQ((std::vector<uint64_t>{5, 6}), rep.damaged);
  EXPECT_NE(std::string::npos, s->last_error().find("5,6")) << s->last_error();
}

TEST(Store, DamagedNewestMetadataOpensTheRetainedEpoch) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1, e2;
  {
    auto s = must_open(p);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * 4096}}, {{"a", 0, 1}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 1, 2}}, &e2));
  }
  auto img = read_file(p);
  fmt::CommitRecord cr;
  std::memcpy(&cr, &img[fmt::kCommitBlock[0] * 4096], sizeof(cr));  // epoch 2 is in slot 0
  ASSERT_EQ(2u, cr.epoch);
  img[cr.live.delta_head * 4096 + 200] ^= 1;
  ASSERT_TRUE(write_file(p, img));
  auto s = must_open(p);
  EXPECT_EQ(2u, s->epoch());
  EXPECT_EQ(1u, s->read_epoch());
  expect_contents(*s, e1);
  VerifyReport vr;
  EXPECT_EQ(0, s->verify(&vr));
  EXPECT_TRUE(vr.meta_fell_back);
}

// Format 1.2: each commit slot records who committed the epoch (provenance), covered by the
// record's checksum. A store written by a 1.1 library has none (the slot's tail is zero and the
// record's tail_csum 0): it opens and reads as before, provenance unknown, and its next commit
// records this program. A torn or altered provenance fails its record like a torn record.
TEST(Store, ProvenanceRecordedOldStoresHaveNoneTornOnesFailTheRecord) {
  TempDir d;
  const std::string p = d.file("s");
  Contents e1, e2;
  {
    auto s = must_open(p);
    EXPECT_FALSE(s->provenance().known);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * 4096}}, {{"a", 0, 1}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 1, 2}}, &e2));
    EXPECT_TRUE(s->provenance().known);
  }
  const auto& me = ckpt::store::self_provenance();
  ASSERT_TRUE(me.known);
  EXPECT_NE(std::string::npos, me.exe.find("store_test")) << me.exe;
  EXPECT_FALSE(me.build_id.empty()) << "no NT_GNU_BUILD_ID note in the test binary";
  {
    auto s = must_open(p);
    auto pv = s->provenance();
    EXPECT_TRUE(pv.known);
    EXPECT_EQ(me.exe, pv.exe);
    EXPECT_EQ(me.build_id, pv.build_id);
    StoreStat st;
    ASSERT_EQ(0, s->stat(&st));
    EXPECT_EQ(me.exe, st.provenance.exe);
  }
  const auto img = read_file(p);
  // As a 1.1 writer left it: both slots without a tail.
  auto old = img;
  for (int slot = 0; slot < 2; slot++) {
    uint8_t* b = &old[fmt::kCommitBlock[slot] * 4096];
    fmt::CommitRecord cr;
    std::memcpy(&cr, b, sizeof(cr));
    ASSERT_NE(0u, cr.tail_csum) << "slot " << slot;
    std::memset(b + fmt::kProvOffset, 0, 4096 - fmt::kProvOffset);
    cr.tail_csum = 0;
    fmt::seal_commit(&cr);
    std::memcpy(b, &cr, sizeof(cr));
  }
  ASSERT_TRUE(write_file(p, old));
  {
    auto s = must_open(p);
    EXPECT_EQ(2u, s->epoch());
    EXPECT_FALSE(s->provenance().known);
    expect_contents(*s, e2);
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 2, 3}}, &e2));
    EXPECT_TRUE(s->provenance().known);
  }
  {
    auto s = must_open(p);
    EXPECT_EQ(3u, s->epoch());
    EXPECT_EQ(me.exe, s->provenance().exe);
  }
  // Epoch 2's provenance altered (slot 0): its record fails, epoch 1 (slot 1) is live.
  auto torn = img;
  torn[fmt::kCommitBlock[0] * 4096 + fmt::kProvOffset + sizeof(fmt::ProvenanceHeader) + 1] ^= 1;
  ASSERT_TRUE(write_file(p, torn));
  auto s = must_open(p);
  EXPECT_EQ(1u, s->epoch());
  expect_contents(*s, e1);
}

// Keyed MAC (format 1.2, Options::mac_key): every commit record is authenticated, the newest
// one is checked at open. A forged record (altered, its XXH3 checksum recomputed as anyone who
// knows the format can), a swapped image (another store, another key) and an unkeyed store are
// refused with the key; a writer without the key is refused too (issue 17).
TEST(Store, KeyedMacRefusesForgedSwappedAndUnkeyedStores) {
  TempDir d;
  const std::string p = d.file("s"), q = d.file("other"), u = d.file("unkeyed"),
                    f = d.file("forged");
  const std::string key(32, 'k'), other_key(32, 'o');
  Options k;
  k.mac_key = key;
  Contents e, e2;
  {
    auto s = must_open(p, k);
    ASSERT_TRUE(s);
    ASSERT_EQ(0, checkpoint(*s, {{"a", 2 * 4096}}, {{"a", 0, 1}}, &e));
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 1, 2}}, &e));
  }
  {
    auto s = must_open(p, k);
    ASSERT_TRUE(s);
    EXPECT_EQ(2u, s->epoch());
    expect_contents(*s, e);
  }
  std::unique_ptr<Store> s;
  std::string why;
  auto open_with = [&](const std::string& path, const std::string& kk, bool ro = false) {
    Options o;
    o.mac_key = kk;
    o.no_modify = ro;
    o.why = &why;
    s.reset();
    why.clear();
    return Store::open(path, o, &s);
  };
  EXPECT_EQ(-EKEYREJECTED, open_with(p, other_key));
  EXPECT_NE(std::string::npos, why.find("does not verify")) << why;
  EXPECT_EQ(-ENOKEY, open_with(p, ""));
  EXPECT_NE(std::string::npos, why.find("key")) << why;
  EXPECT_EQ(0, open_with(p, "", true)) << why;  // inspection reads it, unauthenticated
  EXPECT_EQ(-EINVAL, open_with(p, "short"));
  s.reset();
  {
    auto s2 = must_open(u);
    ASSERT_TRUE(s2);
    ASSERT_EQ(0, checkpoint(*s2, {{"a", 4096}}, {{"a", 0, 1}}, &e2));
  }
  EXPECT_EQ(-EKEYREJECTED, open_with(u, key));
  EXPECT_NE(std::string::npos, why.find("without a key")) << why;
  // Forged: epoch 2's record (slot 0) loses its retained epoch, resealed with XXH3.
  auto img = read_file(p);
  fmt::CommitRecord cr;
  std::memcpy(&cr, &img[fmt::kCommitBlock[0] * 4096], sizeof(cr));
  ASSERT_EQ(2u, cr.epoch);
  cr.retained = fmt::EpochRef{};
  fmt::seal_commit(&cr);
  std::memcpy(&img[fmt::kCommitBlock[0] * 4096], &cr, sizeof(cr));
  ASSERT_TRUE(write_file(f, img));
  EXPECT_EQ(0, open_with(f, "", true)) << "the forgery is a well-formed store: " << why;
  EXPECT_EQ(-EKEYREJECTED, open_with(f, key));
  // Swapped: the image of another store, made with another key.
  {
    Options ko;
    ko.mac_key = other_key;
    auto s3 = must_open(q, ko);
    ASSERT_TRUE(s3);
    Contents e3;
    ASSERT_EQ(0, checkpoint(*s3, {{"a", 2 * 4096}}, {{"a", 0, 9}}, &e3));
  }
  ASSERT_TRUE(write_file(p, read_file(q)));
  EXPECT_EQ(-EKEYREJECTED, open_with(p, key));
  s.reset();
}

// A store on a file system that fills up: clear -ENOSPC, and the committed epoch survives.
// Runs in a child with its own mount namespace and a 1 MiB tmpfs; where mounting is not
// allowed it uses RLIMIT_FSIZE instead (the same "no more room" to the store).
TEST(Store, FullFileSystemIsEnospcAndKeepsThePreviousEpoch) {
  TempDir d;
  const std::string dir = d.file("small");
  ASSERT_EQ(0, mkdir(dir.c_str(), 0700));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool tmpfs = unshare(CLONE_NEWNS) == 0 &&
                 mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                 mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1536k") == 0;
    if (!tmpfs) {
      signal(SIGXFSZ, SIG_IGN);
      rlimit rl{1536 * 1024, 1536 * 1024};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    const std::string p = dir + "/s";
    std::unique_ptr<Store> s;
    if (Store::open(p, {}, &s)) _exit(10);
    uint32_t id;
    if (s->define_region("huge", 64ull << 20, &id) != -ENOSPC) _exit(11);  // does not fit
    if (s->define_region("r", 200 * 4096, &id)) _exit(12);
    Contents oracle;
    std::vector<Write> w;
    for (uint64_t i = 0; i < 200; i++) w.push_back({"r", i, i});
    if (checkpoint(*s, {}, w, &oracle)) _exit(13);  // ~800 KiB: fits
    // Rewriting all 200 pages needs another 800 KiB next to the live copy: it does not fit.
    Contents attempt = oracle;
    for (auto& x : w) x.seed += 1000;
    int r = checkpoint(*s, {}, w, &attempt);
    if (r != -ENOSPC) _exit(14);
    if (s->epoch() != 1) _exit(15);
    s.reset();
    if (Store::open(p, {}, &s)) _exit(16);
    Contents got;
    if (read_all(*s, &got) || got != oracle) _exit(17);
    VerifyReport vr;
    if (s->verify(&vr)) _exit(18);
    // A smaller checkpoint still fits and commits.
    if (checkpoint(*s, {}, {{"r", 0, 77}}, &oracle)) _exit(19);
    _exit(tmpfs ? 0 : 1);
  }
  int status;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_LE(WEXITSTATUS(status), 1) << "child failed at step " << WEXITSTATUS(status);
  if (WEXITSTATUS(status) == 1) std::cout << "[ note ] used RLIMIT_FSIZE, not a tmpfs\n";
}

TEST(Store, FixedSizeStoreTooSmallOrFullIsEnospc) {
  // A fixed-size medium (like a DAX device): no growing.
  std::unique_ptr<Store> s;
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  EXPECT_EQ(-ENOSPC, open_on_medium(memory_medium(std::vector<uint8_t>(4 * 4096), false), info,
                                    {}, &s));
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(64 * 4096), false), info, {},
                              &s));
  uint32_t id;
  EXPECT_EQ(-ENOSPC, s->define_region("big", 64 * 4096, &id));
  ASSERT_EQ(0, s->define_region("r", 24 * 4096, &id));
  Contents oracle;
  std::vector<Write> w;
  for (uint64_t i = 0; i < 24; i++) w.push_back({"r", i, i});
  ASSERT_EQ(0, checkpoint(*s, {}, w, &oracle));
  for (auto& x : w) x.seed += 100;
  Contents o2 = oracle;
  ASSERT_EQ(0, checkpoint(*s, {}, w, &o2));  // 2 copies + metadata fit in 60 blocks
  Contents o3 = o2;
  for (auto& x : w) x.seed += 100;
  EXPECT_EQ(-ENOSPC, checkpoint(*s, {}, w, &o3));  // a third copy does not
  EXPECT_EQ(2u, s->epoch());
  expect_contents(*s, o2);
}

// Txn::put_pages stages a run exactly as put_page page by page would (same contents, same
// checksums, a page staged twice keeps one block), in fewer, larger medium writes.
TEST(Store, PutPagesEqualsPutPageByPage) {
  constexpr uint64_t kPages = 200;
  std::vector<uint8_t> src(kPages * 4096 + 3);  // deliberately unaligned source
  uint8_t* run = src.data() + 3;
  auto fill = [&](uint64_t seed) {
    for (uint64_t i = 0; i < kPages; i++) std::memcpy(run + i * 4096, page_of(seed + i).data(), 4096);
  };
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  std::unique_ptr<Store> bulk, single;
  auto rec = std::make_unique<Recorder>(memory_medium(std::vector<uint8_t>(4096 * 4096), false));
  Recorder* r = rec.get();
  ASSERT_EQ(0, open_on_medium(std::move(rec), info, {}, &bulk));
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(4096 * 4096), false), info, {},
                              &single));
  uint32_t ib, is;
  ASSERT_EQ(0, bulk->define_region("r", kPages * 4096, &ib));
  ASSERT_EQ(0, single->define_region("r", kPages * 4096, &is));
  for (uint64_t round = 0; round < 4; round++) {
    fill(round * 1000);
    std::unique_ptr<Txn> tb, ts;
    ASSERT_EQ(0, bulk->begin(&tb));
    ASSERT_EQ(0, single->begin(&ts));
    // Round 0: everything; later rounds: a page alone, then a run over it (staged twice).
    const uint64_t first = round == 0 ? 0 : 17 * round, n = round == 0 ? kPages : 90;
    if (round) {
      ASSERT_EQ(0, tb->put_page(ib, first + 5, run + 7 * 4096));
      ASSERT_EQ(0, ts->put_page(is, first + 5, run + 7 * 4096));
    }
    r->clear();
    r->start();
    ASSERT_EQ(0, tb->put_pages(ib, first, run + first * 4096, n));
    r->stop();
    for (uint64_t i = 0; i < n; i++) ASSERT_EQ(0, ts->put_page(is, first + i, run + (first + i) * 4096));
    // One medium write per run of consecutive blocks, per chunk of 16 pages at most.
    uint64_t writes = 0, bytes = 0;
    for (const auto& op : r->ops())
      if (op.kind == CrashOp::kWrite) writes++, bytes += op.bytes.size();
    EXPECT_EQ(n * 4096, bytes);
    EXPECT_LE(writes, (n + 15) / 16 + 2) << "round " << round;
    ASSERT_EQ(0, tb->commit());
    ASSERT_EQ(0, ts->commit());
    std::vector<uint8_t> a(kPages * 4096), b(kPages * 4096);
    ASSERT_EQ(0, bulk->read_region(ib, a.data(), a.size(), nullptr));
    ASSERT_EQ(0, single->read_region(is, b.data(), b.size(), nullptr));
    ASSERT_TRUE(a == b) << "round " << round;
    StoreStat sa, sb;
    ASSERT_EQ(0, bulk->stat(&sa));
    ASSERT_EQ(0, single->stat(&sb));
    EXPECT_EQ(sa.live_data_blocks, sb.live_data_blocks);
    EXPECT_EQ(sa.free_blocks, sb.free_blocks);
    EXPECT_EQ(0, bulk->verify(nullptr));
  }
}

// On the io_uring writer a run goes to the kernel from the caller's memory: the call must be done
// with it when it returns (the caller reuses its buffer), and a page staged twice must keep the
// later bytes. Both through O_DIRECT (/tmp, when it takes it) and buffered (tmpfs /dev/shm).
TEST(Store, PutPagesOnFileStoresIsDoneWithTheSourceOnReturn) {
  for (const char* base : {"/tmp", "/dev/shm"}) {
    TempDir d(base);
    if (d.path().empty()) continue;
    auto s = must_open(d.file("s"));
    ASSERT_TRUE(s);
    ASSERT_STREQ("io_uring", s->writer_name());
    constexpr uint64_t kPages = 700;  // written from the caller: several 1 MiB pieces
    uint32_t id;
    ASSERT_EQ(0, s->define_region("r", kPages * 4096, &id));
    std::vector<uint8_t> buf(kPages * 4096), want(kPages * 4096);
    for (uint64_t e = 0; e < 3; e++) {
      std::unique_ptr<Txn> t;
      ASSERT_EQ(0, s->begin(&t));
      for (uint64_t i = 0; i < kPages; i++) std::memcpy(&buf[i * 4096], page_of(e * 10000 + i).data(), 4096);
      ASSERT_EQ(0, t->put_page(id, 3, &buf[9 * 4096]));  // then again in the run below
      ASSERT_EQ(0, t->put_pages(id, 0, buf.data(), kPages));
      want = buf;
      std::memset(buf.data(), 0xee, buf.size());  // the store must have its own copy by now
      ASSERT_EQ(0, t->put_pages(id, 600, buf.data(), 0));
      ASSERT_EQ(0, t->commit()) << s->last_error();
      std::vector<uint8_t> got(kPages * 4096);
      ASSERT_EQ(0, s->read_region(id, got.data(), got.size(), nullptr));
      ASSERT_TRUE(got == want) << base << " epoch " << e;
    }
    s.reset();
    s = must_open(d.file("s"));
    std::vector<uint8_t> got(kPages * 4096);
    ASSERT_EQ(0, s->read_region(id, got.data(), got.size(), nullptr));
    EXPECT_TRUE(got == want) << base;
    EXPECT_EQ(0, s->verify(nullptr));
  }
}

// The io_uring medium keeps its promise that a later write to a block lands after an earlier
// one when one of them is a write_nocopy not reaped yet (O_DIRECT on /tmp, buffered on tmpfs).
TEST(Store, UringWriteNocopyOverlapsLandInOrder) {
  for (const char* base : {"/tmp", "/dev/shm"}) {
    TempDir d(base);
    if (d.path().empty()) continue;
    Options o;
    o.create_size = 1 << 20;
    std::unique_ptr<Medium> m;
    MediumInfo info;
    std::string why;
    ASSERT_EQ(0, open_medium(d.file("m"), o, &m, &info, &why)) << why;
    ASSERT_STREQ("io_uring", m->name());
    auto* a = static_cast<uint8_t*>(aligned_alloc(4096, 64 * 4096));
    auto* b = static_cast<uint8_t*>(aligned_alloc(4096, 64 * 4096));
    std::memset(a, 0xaa, 64 * 4096);
    std::memset(b, 0xbb, 64 * 4096);
    ASSERT_EQ(0, m->write_nocopy(10 * 4096, a, 10 * 4096));  // blocks 10..19
    ASSERT_EQ(0, m->write(15 * 4096, b, 4096));              // then block 15: b wins
    ASSERT_EQ(0, m->write(30 * 4096, b, 4096));              // block 30 staged
    ASSERT_EQ(0, m->write_nocopy(25 * 4096, a, 10 * 4096));  // then 25..34 over it: a wins
    ASSERT_EQ(0, m->write_nocopy(40 * 4096, a, 4 * 4096));
    ASSERT_EQ(0, m->write_nocopy(42 * 4096, b, 4 * 4096));   // 42..45 over 42..43: b wins
    ASSERT_EQ(0, m->settle());
    ASSERT_EQ(0, m->barrier());
    std::vector<uint8_t> got(64 * 4096);
    ASSERT_EQ(0, m->read(0, got.data(), got.size()));
    auto at = [&](uint64_t blk) { return got[blk * 4096 + 100]; };
    for (uint64_t blk = 10; blk < 20; blk++) EXPECT_EQ(blk == 15 ? 0xbb : 0xaa, at(blk)) << blk;
    for (uint64_t blk = 25; blk < 35; blk++) EXPECT_EQ(0xaa, at(blk)) << blk;
    for (uint64_t blk = 40; blk < 46; blk++) EXPECT_EQ(blk < 42 ? 0xaa : 0xbb, at(blk)) << blk;
    free(a);
    free(b);
  }
}

TEST(Store, PutPagesErrors) {
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(64 * 4096), false), info, {}, &s));
  uint32_t id;
  ASSERT_EQ(0, s->define_region("r", 24 * 4096, &id));
  Contents oracle;
  std::vector<Write> w;
  for (uint64_t i = 0; i < 24; i++) w.push_back({"r", i, i});
  ASSERT_EQ(0, checkpoint(*s, {}, w, &oracle));
  std::vector<uint8_t> buf(40 * 4096, 0xab);
  {
    std::unique_ptr<Txn> t;
    ASSERT_EQ(0, s->begin(&t));
    EXPECT_EQ(-EINVAL, t->put_pages(id + 1, 0, buf.data(), 1));           // no such region
    EXPECT_EQ(-EINVAL, t->put_pages(id, 20, buf.data(), 5));              // past the end
    EXPECT_EQ(-EINVAL, t->put_pages(id, UINT64_MAX - 1, buf.data(), 4));  // overflow
    EXPECT_EQ(-EINVAL, t->put_pages(id, 0, nullptr, 2));
    EXPECT_EQ(0, t->put_pages(id, 0, buf.data(), 0));                    // nothing
    EXPECT_EQ(0, t->commit());  // nothing was staged by the refused calls: an empty epoch
    EXPECT_EQ(-EINVAL, t->put_pages(id, 0, buf.data(), 1));  // after commit
  }
  expect_contents(*s, oracle);
  // Full part-way: 64 blocks hold two copies of 24 pages and metadata, not a third. The pages
  // staged before the failure do not make a mix: the commit fails and the epoch stays.
  for (auto& x : w) x.seed += 100;
  Contents o2 = oracle;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"r", 0, 500, 24}}, &o2));
  std::unique_ptr<Txn> t;
  ASSERT_EQ(0, s->begin(&t));
  EXPECT_EQ(-ENOSPC, t->put_pages(id, 0, buf.data(), 24));
  EXPECT_EQ(-ENOSPC, t->put_pages(id, 0, buf.data(), 1));  // sticky
  EXPECT_EQ(-ENOSPC, t->commit());
  t.reset();
  EXPECT_EQ(3u, s->epoch());  // 1: the pages, 2: the empty epoch, 3: the run
  expect_contents(*s, o2);
  EXPECT_EQ(0, s->verify(nullptr));
}

}  // namespace

namespace {

// The page checksum is the format's XXH3-64 with the documented seed, whichever vector unit
// libxxhash's dispatcher picks (stores stay readable across machines and emulators).
TEST(Store, PageHashIsXxh3WithTheDocumentedSeed) {
  for (uint64_t i = 0; i < 64; i++) {
    const auto page = page_of(i * 77);
    const uint64_t key = 0x1234567890abcdefull | 1, index = i * 1000003;
    const uint32_t region = static_cast<uint32_t>(1 + i % 5);
    const uint64_t seed = key ^ (uint64_t(region) << 40) ^ (index * 0x9e3779b97f4a7c15ull);
    EXPECT_EQ(XXH3_64bits_withSeed(page.data(), 4096, seed),
              fmt::page_hash(page.data(), key, region, index));
  }
}

}  // namespace

namespace {

// A big read into page-aligned memory is split across threads (read_range's store note): the
// bytes, the never-written pages (zeros), the damaged pages reported in page order from every
// part, and an unaligned read (one thread) must all be what one thread reads.
TEST(Store, BigReadsSplitAcrossThreadsReadTheSameBytesAndDamage) {
  cpu_set_t cpus;
  ASSERT_EQ(0, sched_getaffinity(0, sizeof(cpus), &cpus));
  if (CPU_COUNT(&cpus) < 2) GTEST_SKIP() << "one CPU: reads are never split";
  TempDir d;
  const std::string p = d.file("s");
  constexpr uint64_t kPages = 3000;  // 11.7 MiB: 2 to 4 parts, boundaries off 2 MiB
  Contents e1;
  {
    auto s = must_open(p);
    // Pages 0-999 and 1500-2999 written (two runs of put_pages), 1000-1499 never written.
    ASSERT_EQ(0, checkpoint(*s, {{"big", kPages * 4096}},
                            {{"big", 0, 100000, 1000}, {"big", 1500, 200000, 1500}}, &e1));
  }
  const size_t len = kPages * 4096;
  void* m = mmap(nullptr, len + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(MAP_FAILED, m);
  auto* buf = static_cast<uint8_t*>(m);
  {
    auto s = must_open(p);
    ReadReport rep;
    ASSERT_EQ(0, s->read_region(1, buf, len, &rep)) << s->last_error();
    EXPECT_EQ(0, std::memcmp(buf, e1["big"].data(), len));
    EXPECT_EQ(2500u, rep.pages_read);
    std::memset(buf, 0xff, len + 4096);
    ASSERT_EQ(0, s->read_range(1, 4096 * 7, buf + 1, len - 4096 * 7, &rep));  // unaligned
    EXPECT_EQ(0, std::memcmp(buf + 1, e1["big"].data() + 4096 * 7, len - 4096 * 7));
  }
  // Damage pages in the first and the last part; there is no older epoch to fall back to.
  auto img = read_file(p);
  for (uint64_t seed : {100000 + 3, 200000 + 1490}) {
    auto want = page_of(seed);
    int hits = 0;
    for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
      if (std::memcmp(&img[off], want.data(), 4096) == 0) img[off + 99] ^= 1, hits++;
    ASSERT_EQ(1, hits);
  }
  ASSERT_TRUE(write_file(p, img));
  auto s = must_open(p);
  ReadReport rep;
  EXPECT_EQ(-EIO, s->read_region(1, buf, len, &rep));
  EXPECT_EQ((std::vector<uint64_t>{3, 2990}), rep.damaged);
  EXPECT_NE(std::string::npos, s->last_error().find("3,2990")) << s->last_error();
  munmap(m, len + 4096);
}


// reserve(): one growth to exactly what the layout needs, so the definitions that follow do not
// grow the file by quarter steps (a 64 MiB dump made an 85 MB store before); its pages fit
// without any further growth, and what does not fit is -ENOSPC with the file unchanged.
TEST(Store, ReserveGrowsAFileStoreOnceToExactlyTheLayout) {
  TempDir d;
  const std::map<std::string, uint64_t> layout = {
      {"small", 3 * 4096}, {"big", 2048 * 4096}, {"tail", 5 * 4096}};
  uint64_t bytes = 0;
  for (const auto& [name, size] : layout) bytes += size;
  auto file_size = [](const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  };
  std::vector<Write> all;
  for (const auto& [name, size] : layout)
    all.push_back({name, 0, name.size() * 10000, size / 4096});

  // Step by step (no reserve): each definition that does not fit grows by a quarter at least.
  auto stepped = must_open(d.file("stepped"));
  Contents o1;
  ASSERT_EQ(0, checkpoint(*stepped, {{"small", 3 * 4096}}, {}, &o1));
  ASSERT_EQ(0, checkpoint(*stepped, layout, all, &o1));
  const uint64_t stepped_size = file_size(d.file("stepped"));

  auto s = must_open(d.file("s"));
  EXPECT_EQ(-EINVAL, s->reserve(bytes + 1, layout.size()));
  const uint64_t before = file_size(d.file("s"));
  EXPECT_EQ(-ENOSPC, s->reserve(uint64_t(1) << 50, 1));  // 1 PiB: refused, nothing changes
  EXPECT_EQ(before, file_size(d.file("s")));
  ASSERT_EQ(0, s->reserve(bytes, layout.size())) << s->last_error();
  const uint64_t reserved = file_size(d.file("s"));
  // Header, one copy of every page, two epochs' metadata: a few blocks over the pages.
  EXPECT_GE(reserved, bytes + 4 * 4096);
  EXPECT_LE(reserved, bytes + 64 * 4096);
  EXPECT_LT(reserved, stepped_size);
  Contents o2;
  ASSERT_EQ(0, checkpoint(*s, {{"small", 3 * 4096}}, {}, &o2));
  ASSERT_EQ(0, checkpoint(*s, layout, all, &o2)) << s->last_error();
  EXPECT_EQ(reserved, file_size(d.file("s")));  // the definitions and pages needed no growth
  ASSERT_EQ(0, s->reserve(bytes, layout.size()));  // already there: nothing to do
  EXPECT_EQ(reserved, file_size(d.file("s")));
  s.reset();
  s = must_open(d.file("s"));
  expect_contents(*s, o2);

  // A fixed-size store is only checked.
  std::unique_ptr<Store> f;
  MediumInfo info;
  info.device = true;
  info.created = true;  // a blank medium the test just made: formatted without Options::create
  ASSERT_EQ(0, open_on_medium(memory_medium(std::vector<uint8_t>(64 * 4096), false), info, {},
                              &f));
  EXPECT_EQ(-ENOSPC, f->reserve(64 * 4096, 1));
  EXPECT_EQ(0, f->reserve(24 * 4096, 1));
}

}  // namespace

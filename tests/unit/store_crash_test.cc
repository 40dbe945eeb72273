// SPDX-License-Identifier: MIT
// Crash consistency by enumeration. A checkpoint runs on the real io_uring writer over a file
// in /tmp, with a Recorder in the seam logging every write, barrier and grow. Then every crash
// state is rebuilt — each prefix of the operations, and for each prefix every subset of the
// writes not yet covered by a barrier lost or kept, and each of them torn (first half, second
// half, random 512-byte sectors) — written to a file and opened with the real store. Each must
// open at exactly the old epoch or the new one, byte for byte, and verify cleanly. Small
// checkpoints are enumerated exhaustively; big ones are sampled.
#include "crash.hpp"
#include "format.hpp"
#include "medium.hpp"
#include "store_util.hpp"

using namespace store_test;
using namespace ckpt::store;

namespace {

struct Scenario {
  Options opts;
  // Epochs committed before the recorded checkpoint (each: region definitions, writes).
  std::vector<std::pair<std::map<std::string, uint64_t>, std::vector<Write>>> before;
  std::map<size_t, std::vector<Change>> before_changes;  // by index into `before`
  // The recorded checkpoint (changes are applied first, then defs and writes).
  std::map<std::string, uint64_t> defs;
  std::vector<Write> writes;
  std::vector<Change> changes;
  bool record_format = false;  // record from the store's creation (format + first commit)
  size_t max_states_per_prefix = 0;  // 0 = exhaustive
};

struct Result {
  size_t states = 0, old_epoch = 0, new_epoch = 0;
};

void check_image(const std::vector<uint8_t>& img, const std::string& file, uint64_t old_e,
                 const Contents& old_c, const Contents& new_c, const Options& opts, Result* res,
                 const std::string& what, bool continue_after) {
  ASSERT_TRUE(write_file(file, img));
  std::unique_ptr<Store> s;
  std::string why;
  Options o = opts;
  o.why = &why;
  ASSERT_EQ(0, Store::open(file, o, &s)) << what << ": " << why;
  const uint64_t e = s->epoch();
  ASSERT_TRUE(e == old_e || e == old_e + 1) << what << ": epoch " << e;
  ASSERT_EQ(e, s->read_epoch()) << what;
  Contents got;
  ASSERT_EQ(0, read_all(*s, &got)) << what << ": " << s->last_error();
  const Contents& want = e == old_e ? old_c : new_c;
  ASSERT_EQ(want.size(), got.size()) << what << " at epoch " << e;
  for (const auto& [name, bytes] : want) {
    ASSERT_TRUE(got.count(name)) << what << ": region " << name << " missing at epoch " << e;
    ASSERT_TRUE(got.at(name) == bytes) << what << ": region " << name << " is a mix at epoch " << e;
  }
  VerifyReport vr;
  ASSERT_EQ(0, s->verify(&vr)) << what;
  (e == old_e ? res->old_epoch : res->new_epoch)++;
  res->states++;
  if (continue_after) {
    // The recovered store keeps working: another checkpoint commits and reads back.
    Contents next = want;
    std::map<std::string, uint64_t> defs{{"after", 4096}};
    ASSERT_EQ(0, checkpoint(*s, defs, {{"after", 0, 999}}, &next)) << what;
    s.reset();
    ASSERT_EQ(0, Store::open(file, o, &s)) << what << ": " << why;
    ASSERT_EQ(0, read_all(*s, &got));
    ASSERT_TRUE(got == next) << what << ": checkpoint after recovery";
  }
}

Result run(const Scenario& sc) {
  Result res;
  TempDir d;
  const std::string path = d.file("store"), img_file = d.file("image");
  Contents oracle;
  uint64_t old_e = 0;
  if (!sc.record_format) {
    std::unique_ptr<Store> s;
    EXPECT_EQ(0, Store::open(path, sc.opts, &s));
    for (size_t i = 0; i < sc.before.size(); i++) {
      const auto& [defs, writes] = sc.before[i];
      auto ch = sc.before_changes.find(i);
      EXPECT_EQ(0, checkpoint(*s, defs, writes, &oracle,
                              ch == sc.before_changes.end() ? std::vector<Change>{} : ch->second))
          << s->last_error();
    }
    old_e = s->epoch();
  }
  const Contents old_c = oracle;

  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  EXPECT_EQ(0, open_medium(path, sc.opts, &m, &info, &why)) << why;
  const std::vector<uint8_t> before = read_file(path);
  auto rec = std::make_unique<Recorder>(std::move(m));
  Recorder* r = rec.get();
  r->start();
  std::unique_ptr<Store> s;
  EXPECT_EQ(0, open_on_medium(std::move(rec), info, sc.opts, &s));
  if (!s) return res;
  Contents new_c = oracle;
  EXPECT_EQ(0, checkpoint(*s, sc.defs, sc.writes, &new_c, sc.changes)) << s->last_error();
  r->stop();
  const std::vector<CrashOp> ops = r->ops();
  const size_t unit = r->tear_unit();
  s.reset();

  std::mt19937_64 rng(1234);
  for (size_t prefix = 0; prefix <= ops.size(); prefix++) {
    const auto pend = pending_writes(ops, prefix);
    const size_t n = pend.size();
    std::vector<CrashState> states;
    if (sc.max_states_per_prefix == 0 && n <= 10) {
      for (uint64_t mask = 0; mask < (1ull << n); mask++) {
        CrashState cs{prefix, std::vector<Fate>(n), 0};
        for (size_t i = 0; i < n; i++) cs.fate[i] = (mask >> i) & 1 ? Fate::kWhole : Fate::kLost;
        states.push_back(cs);
      }
      for (size_t i = 0; i < n; i++)
        for (Fate torn : {Fate::kTornHead, Fate::kTornTail, Fate::kTornRandom})
          for (Fate others : {Fate::kWhole, Fate::kLost}) {
            CrashState cs{prefix, std::vector<Fate>(n, others), prefix * 131 + i};
            cs.fate[i] = torn;
            states.push_back(cs);
          }
    } else {
      const size_t k = sc.max_states_per_prefix ? sc.max_states_per_prefix : 64;
      if (prefix + 1 < ops.size() && ops[prefix].kind == CrashOp::kWrite && n > 1 &&
          (rng() % 8) != 0)
        continue;  // sample prefixes too: mostly at barriers and a few mid-stream
      for (size_t j = 0; j < k; j++) {
        CrashState cs{prefix, std::vector<Fate>(n), rng()};
        for (auto& f : cs.fate) f = static_cast<Fate>(rng() % 5);
        states.push_back(cs);
      }
    }
    for (size_t j = 0; j < states.size(); j++) {
      auto img = crash_image(before, ops, states[j], unit);
      std::string what = "prefix " + std::to_string(prefix) + "/" + std::to_string(ops.size()) +
                         " state " + std::to_string(j);
      check_image(img, img_file, old_e, old_c, new_c, sc.opts, &res, what, j == 0);
      if (::testing::Test::HasFatalFailure()) return res;
    }
  }
  // The full sequence must give the new epoch; the empty prefix the old one.
  EXPECT_GT(res.new_epoch, 0u);
  EXPECT_GT(res.old_epoch, 0u);
  std::cout << "[ crash ] " << ops.size() << " operations, " << res.states << " crash states: "
            << res.old_epoch << " old, " << res.new_epoch << " new\n";
  return res;
}

TEST(StoreCrash, FormatAndFirstCheckpointExhaustive) {
  Scenario sc;
  sc.record_format = true;
  sc.defs = {{"a", 4 * 4096}, {"b", 4096}};
  sc.writes = {{"a", 0, 1}, {"a", 3, 2}, {"b", 0, 3}};
  run(sc);
}

TEST(StoreCrash, DeltaCheckpointOverwritingAndDefiningExhaustive) {
  Scenario sc;
  sc.before = {{{{"a", 8 * 4096}}, {{"a", 0, 1}, {"a", 1, 2}, {"a", 5, 3}}}};
  sc.defs = {{"new", 2 * 4096}};
  sc.writes = {{"a", 1, 10}, {"a", 2, 11}, {"new", 1, 12}};
  run(sc);
}

TEST(StoreCrash, CheckpointAfterRetainedEpochExhaustive) {
  // Epochs 1 and 2 exist (2 retains 1); epoch 3 overwrites pages whose epoch-1 blocks become
  // free only once epoch 3 is durable.
  Scenario sc;
  sc.before = {{{{"a", 4 * 4096}}, {{"a", 0, 1}, {"a", 1, 2}}}, {{}, {{"a", 0, 3}}}};
  sc.writes = {{"a", 0, 4}, {"a", 1, 5}};
  run(sc);
}

TEST(StoreCrash, SnapshotCompactionExhaustive) {
  Scenario sc;
  sc.opts.snapshot_every = 2;
  sc.before = {{{{"a", 8 * 4096}}, {{"a", 0, 1}}}, {{}, {{"a", 1, 2}}}, {{}, {{"a", 2, 3}}}};
  sc.writes = {{"a", 0, 4}, {"a", 7, 5}};  // the 3rd delta exceeds 2: this one is a snapshot
  run(sc);
}

// A store whose newest epoch (2) has a damaged page falls back to epoch 1 when read, and the
// next checkpoint (3) builds on epoch 1. Until 3 is durable, a crash must leave epoch 2's
// record with epoch 1 intact behind it (the blocks of the abandoned epoch 2 and of epoch 1 are
// both protected); after it, epoch 3. Enumerated exhaustively.
TEST(StoreCrash, CheckpointAfterFallbackExhaustive) {
  TempDir d;
  const std::string path = d.file("store"), img_file = d.file("image");
  Contents e1, e2;
  {
    std::unique_ptr<Store> s;
    ASSERT_EQ(0, Store::open(path, {}, &s));
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * 4096}}, {{"a", 0, 1}, {"a", 1, 2}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {{"late", 4096}}, {{"a", 1, 3}, {"late", 0, 4}}, &e2));
  }
  auto img = read_file(path);
  const auto bad = page_of(3);
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(&img[off], bad.data(), 4096) == 0) img[off + 1] ^= 4;
  ASSERT_TRUE(write_file(path, img));

  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  ASSERT_EQ(0, open_medium(path, {}, &m, &info, &why)) << why;
  const auto before = read_file(path);
  auto rec = std::make_unique<Recorder>(std::move(m));
  Recorder* r = rec.get();
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::move(rec), info, {}, &s));
  Contents got;
  ASSERT_EQ(0, read_all(*s, &got));  // falls back
  ASSERT_EQ(1u, s->read_epoch());
  ASSERT_TRUE(got == e1);
  r->start();
  Contents e3 = e1;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 2, 5}, {"a", 3, 6}}, &e3));
  r->stop();
  const auto ops = r->ops();  // the recorder belongs to the store
  const size_t unit = r->tear_unit();
  s.reset();

  size_t states = 0, olds = 0, news = 0;
  for (size_t prefix = 0; prefix <= ops.size(); prefix++) {
    const size_t n = pending_writes(ops, prefix).size();
    ASSERT_LE(n, 10u);
    for (uint64_t mask = 0; mask < (1ull << n); mask++) {
      for (int torn = -1; torn < int(n); torn++) {
        CrashState cs{prefix, std::vector<Fate>(n), mask * 7 + prefix};
        for (size_t i = 0; i < n; i++) cs.fate[i] = (mask >> i) & 1 ? Fate::kWhole : Fate::kLost;
        if (torn >= 0) cs.fate[torn] = Fate::kTornRandom;
        ASSERT_TRUE(write_file(img_file, crash_image(before, ops, cs, unit)));
        std::unique_ptr<Store> t;
        ASSERT_EQ(0, Store::open(img_file, {}, &t));
        ASSERT_EQ(0, read_all(*t, &got)) << t->last_error();
        if (t->epoch() == 2) {
          ASSERT_EQ(1u, t->read_epoch()) << "prefix " << prefix;
          ASSERT_TRUE(got == e1) << "prefix " << prefix;
          olds++;
        } else {
          ASSERT_EQ(3u, t->epoch()) << "prefix " << prefix;
          ASSERT_EQ(3u, t->read_epoch());
          ASSERT_TRUE(got == e3) << "prefix " << prefix;
          VerifyReport vr;
          ASSERT_EQ(0, t->verify(&vr)) << "prefix " << prefix;
          news++;
        }
        states++;
      }
    }
  }
  EXPECT_GT(olds, 0u);
  EXPECT_GT(news, 0u);
  std::cout << "[ crash ] after fallback: " << ops.size() << " operations, " << states
            << " states: " << olds << " old, " << news << " new\n";
}

// Regions that change (format 1.1). The first change in a store also rewrites both superblocks
// (the incompat bit) inside the recorded sequence, so its crash states are enumerated too.
TEST(StoreCrash, FirstRemoveAndResizeWithSuperblockUpgradeExhaustive) {
  Scenario sc;
  sc.before = {{{{"a", 8 * 4096}, {"b", 2 * 4096}, {"c", 4096}},
                {{"a", 0, 1}, {"a", 1, 2}, {"a", 5, 3}, {"b", 1, 4}, {"c", 0, 5}}}};
  // Remove b, shrink a to 4 pages and grow it to 6 (pages 4, 5 dropped), define b again.
  sc.changes = {{"b", 0}, {"a", 4 * 4096}, {"a", 6 * 4096}};
  sc.defs = {{"b", 4096}};
  sc.writes = {{"a", 4, 10}, {"b", 0, 11}};
  run(sc);
}

TEST(StoreCrash, ResizeFreeingRetainedDropsExhaustive) {
  // Epoch 2 removed "x" and shrank "a"; epoch 3 (recorded) grows "a" and removes "c": epoch 2
  // becomes retained, so epoch 1's dropped blocks become free only once epoch 3 is durable.
  Scenario sc;
  sc.before = {{{{"a", 4 * 4096}, {"x", 2 * 4096}, {"c", 4096}},
                {{"a", 0, 1}, {"a", 3, 2}, {"x", 0, 3}, {"c", 0, 4}}},
               {{}, {{"a", 1, 5}}}};
  sc.before_changes = {{1, {{"x", 0}, {"a", 2 * 4096}}}};
  sc.changes = {{"a", 5 * 4096}, {"c", 0}};
  sc.writes = {{"a", 4, 6}, {"a", 0, 7}};
  run(sc);
}

TEST(StoreCrash, SnapshotWithRemovedIdsExhaustive) {
  // The recorded checkpoint is a snapshot of a store whose highest ids were removed: its
  // regions have holes and a next-id entry.
  Scenario sc;
  sc.opts.snapshot_every = 1;
  sc.before = {{{{"a", 2 * 4096}, {"b", 4096}, {"c", 4096}}, {{"a", 0, 1}, {"c", 0, 2}}},
               {{}, {{"a", 1, 3}}}};
  sc.before_changes = {{1, {{"b", 0}}}};
  sc.changes = {{"c", 0}, {"a", 4096}};
  sc.writes = {{"a", 0, 4}};
  run(sc);
}

TEST(StoreCrash, PutPagesRunsAndRewritesExhaustive) {
  // Bulk staging: a run that rewrites pages of the old epoch, a page staged by put_page and then
  // again inside a run (its block is reused), and a run in a new region.
  Scenario sc;
  sc.before = {{{{"a", 8 * 4096}}, {{"a", 0, 1, 3}, {"a", 6, 2}}}};
  sc.defs = {{"b", 3 * 4096}};
  sc.writes = {{"a", 2, 10}, {"a", 1, 20, 3}, {"b", 0, 30, 3}};
  run(sc);
}

TEST(StoreCrash, PutPagesBigRunsWithGrowthSampled) {
  Scenario sc;
  sc.before = {{{{"big", 400 * 4096}}, {{"big", 0, 1, 400}}}};
  sc.writes = {{"big", 10, 5000, 300}, {"big", 5, 7000, 20}, {"big", 399, 9000}};
  sc.max_states_per_prefix = 16;  // few operations (runs are large writes): many states each
  Result r = run(sc);
  EXPECT_GT(r.states, 100u);
}

TEST(StoreCrash, BigCheckpointWithGrowthSampled) {
  Scenario sc;
  std::vector<Write> first;
  for (uint64_t p = 0; p < 300; p += 3) first.push_back({"big", p, p});
  sc.before = {{{{"big", 300 * 4096}}, first}};
  sc.defs = {{"more", 200 * 4096}};
  for (uint64_t p = 0; p < 300; p++) sc.writes.push_back({"big", p, 5000 + p});
  for (uint64_t p = 0; p < 200; p += 2) sc.writes.push_back({"more", p, 9000 + p});
  sc.max_states_per_prefix = 6;
  Result r = run(sc);
  EXPECT_GT(r.states, 200u);
}

// Going back (Store::select_epoch of the retained epoch B, then a checkpoint of B+1 that
// supersedes the newest epoch N). Every crash state must open at N with B retained, at B alone,
// or at the new B+1 with B retained — each byte for byte, B restorable by select_epoch in every
// one, never a mix. `damage_newest`: epoch 3 has a damaged page, the store falls back to 2 and
// commits 4 on it, so N = 4 and B = 2 share a slot (N - B even); otherwise N = 3, B = 2.
void going_back(bool damage_newest) {
  TempDir d;
  const std::string path = d.file("store"), img_file = d.file("image");
  Contents e1, e2, e3, en;
  uint64_t newest = 3;
  {
    std::unique_ptr<Store> s;
    ASSERT_EQ(0, Store::open(path, {}, &s));
    ASSERT_EQ(0, checkpoint(*s, {{"a", 6 * 4096}}, {{"a", 0, 1}, {"a", 1, 2}, {"a", 4, 3}}, &e1));
    e2 = e1;
    ASSERT_EQ(0, checkpoint(*s, {{"b", 4096}}, {{"a", 1, 4}, {"b", 0, 5}}, &e2));
    e3 = e2;
    ASSERT_EQ(0, checkpoint(*s, {{"c", 4096}}, {{"a", 2, 6}, {"a", 4, 7}, {"c", 0, 8}}, &e3));
  }
  if (damage_newest) {
    auto img = read_file(path);
    const auto bad = page_of(6);
    for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096)
      if (std::memcmp(&img[off], bad.data(), 4096) == 0) img[off + 1] ^= 4;
    ASSERT_TRUE(write_file(path, img));
    std::unique_ptr<Store> s;
    ASSERT_EQ(0, Store::open(path, {}, &s));
    Contents got;
    ASSERT_EQ(0, read_all(*s, &got));  // falls back to 2
    ASSERT_EQ(2u, s->read_epoch());
    e3 = e2;  // epoch 4 = epoch 2 + one page
    ASSERT_EQ(0, checkpoint(*s, {}, {{"a", 5, 9}}, &e3));
    ASSERT_EQ(4u, s->epoch());
    newest = 4;
  }

  std::unique_ptr<Medium> m;
  MediumInfo info;
  std::string why;
  ASSERT_EQ(0, open_medium(path, {}, &m, &info, &why)) << why;
  const auto before = read_file(path);
  auto rec = std::make_unique<Recorder>(std::move(m));
  Recorder* r = rec.get();
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::move(rec), info, {}, &s));
  ASSERT_EQ((std::vector<uint64_t>{newest, 2}), s->epochs());
  ASSERT_EQ(-ENOENT, s->select_epoch(1));
  ASSERT_EQ(0, s->select_epoch(2)) << s->last_error();
  EXPECT_EQ(2u, s->epoch());
  EXPECT_EQ((std::vector<uint64_t>{2}), s->epochs());
  Contents got;
  ASSERT_EQ(0, read_all(*s, &got));
  ASSERT_TRUE(got == e2);
  r->start();
  en = e2;  // rewrites a page epoch 3 also wrote, and one it did not; a region epoch 3 defined
  ASSERT_EQ(0, checkpoint(*s, {{"c", 4096}}, {{"a", 2, 10}, {"a", 3, 11}}, &en));
  r->stop();
  EXPECT_EQ(3u, s->epoch());
  const auto ops = r->ops();
  const size_t file_unit = r->tear_unit();
  s.reset();

  // B restorable: select it and read it back exactly.
  auto back_to_2 = [&](Store& t, const std::string& what) {
    ASSERT_EQ(0, t.select_epoch(2)) << what << ": " << t.last_error();
    Contents g;
    ASSERT_EQ(0, read_all(t, &g)) << what << ": " << t.last_error();
    ASSERT_TRUE(g == e2) << what << ": epoch 2 is not what it was";
  };
  size_t states = 0, olds = 0, bases = 0, news = 0;
  // Torn in the file's 512-byte sectors, and in DAX's 8-byte stores (a commit record fits one
  // sector, so only the latter tears it: the states at B alone).
  for (size_t unit : {file_unit, size_t{8}})
  for (size_t prefix = 0; prefix <= ops.size(); prefix++) {
    const size_t n = pending_writes(ops, prefix).size();
    ASSERT_LE(n, 10u);
    for (uint64_t mask = 0; mask < (1ull << n); mask++) {
      for (int torn = -1; torn < int(n); torn++) {
        CrashState cs{prefix, std::vector<Fate>(n), mask * 7 + prefix};
        for (size_t i = 0; i < n; i++) cs.fate[i] = (mask >> i) & 1 ? Fate::kWhole : Fate::kLost;
        if (torn >= 0) cs.fate[torn] = Fate::kTornRandom;
        const std::string what = "unit " + std::to_string(unit) + " prefix " + std::to_string(prefix) + "/" +
                                 std::to_string(ops.size()) + " mask " + std::to_string(mask) +
                                 " torn " + std::to_string(torn);
        ASSERT_TRUE(write_file(img_file, crash_image(before, ops, cs, unit)));
        std::unique_ptr<Store> t;
        ASSERT_EQ(0, Store::open(img_file, {}, &t)) << what;
        ASSERT_EQ(0, read_all(*t, &got)) << what << ": " << t->last_error();
        VerifyReport vr;
        if (t->epoch() == 2) {  // B alone: N's record was being overwritten
          ASSERT_EQ((std::vector<uint64_t>{2}), t->epochs()) << what;
          ASSERT_TRUE(got == e2) << what;
          bases++;
        } else if (t->epoch() == 3 && got == en) {
          ASSERT_EQ((std::vector<uint64_t>{3, 2}), t->epochs()) << what;
          ASSERT_EQ(0, t->verify(&vr)) << what;
          news++;
        } else {
          ASSERT_EQ(newest, t->epoch()) << what;
          ASSERT_EQ((std::vector<uint64_t>{newest, 2}), t->epochs()) << what;
          if (!damage_newest) {
            ASSERT_TRUE(got == e3) << what << ": a mix";
            ASSERT_EQ(0, t->verify(&vr)) << what;
          } else {
            ASSERT_TRUE(got == e3) << what << ": epoch 4 is a mix";
          }
          olds++;
        }
        back_to_2(*t, what);
        if (::testing::Test::HasFatalFailure()) return;
        if (torn == -1 && mask == 0) {
          // The recovered store keeps working from epoch 2: commit 3 and read it back.
          Contents next = e2;
          ASSERT_EQ(0, checkpoint(*t, {}, {{"a", 0, 99}}, &next)) << what << ": " << t->last_error();
          t.reset();
          ASSERT_EQ(0, Store::open(img_file, {}, &t)) << what;
          ASSERT_EQ(3u, t->epoch()) << what;
          ASSERT_EQ(0, read_all(*t, &got)) << what;
          ASSERT_TRUE(got == next) << what << ": checkpoint after recovery";
        }
        states++;
      }
    }
  }
  EXPECT_GT(olds, 0u);
  EXPECT_GT(news, 0u);
  if (!damage_newest) {
    EXPECT_GT(bases, 0u);  // N's slot is the one overwritten
  }
  std::cout << "[ crash ] going back: " << ops.size() << " operations, " << states << " states: "
            << olds << " at epoch " << newest << ", " << bases << " at 2, " << news << " new\n";
}

TEST(StoreCrash, CheckpointAfterGoingBackExhaustive) { going_back(false); }
TEST(StoreCrash, CheckpointAfterGoingBackPastAFallbackExhaustive) { going_back(true); }

}  // namespace

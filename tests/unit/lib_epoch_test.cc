// SPDX-License-Identifier: MIT
// ckpt_list_epochs / ckpt_restore_epoch, once per tracker (and, in the VM, per DAX medium):
// restoring the retained older epoch gives its bytes exactly; the next checkpoint commits
// epoch+1 as a delta on it (pages that differ between the superseded newer epoch and the
// restored one, not written since, must come back as the restored epoch's); reopening finds
// that new epoch; epochs not held are -ENOENT and change nothing.
#include "lib_testutil.hpp"

using namespace ckpt_test;

namespace {

class Epochs : public TrackerSession {};

using Bytes = std::vector<unsigned char>;

Bytes copy(const Mem& m) { return Bytes(m.data(), m.data() + m.size()); }

// Write `seed`-derived bytes into the given pages of m (one byte range per page, so each
// listed page changes).
void scribble(Mem& m, std::initializer_list<size_t> pages, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t p : pages)
    for (size_t i = 0; i < ps(); i += 512) m.data()[p * ps() + i] = static_cast<unsigned char>(rng() | 1);
}

std::vector<uint64_t> list(ckpt_t* c) {
  uint64_t e[8] = {};
  int n = ckpt_list_epochs(c, e, 8);
  EXPECT_GE(n, 0);
  return std::vector<uint64_t>(e, e + std::max(0, std::min(n, 8)));
}

// Epochs 1, 2, 3 of two regions; memory as at each epoch in *at (index = epoch).
void three_epochs(ckpt_t* c, Mem& a, Mem& b, std::vector<std::pair<Bytes, Bytes>>* at) {
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < a.size(); i++) a.data()[i] = static_cast<unsigned char>(rng());
  for (size_t i = 0; i < b.size(); i++) b.data()[i] = static_cast<unsigned char>(rng());
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  at->assign(1, {});
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  at->push_back({copy(a), copy(b)});
  scribble(a, {1, 2, 9}, 21);
  scribble(b, {0}, 22);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  at->push_back({copy(a), copy(b)});
  // Epoch 3 changes pages the later checkpoint will not write again: they must come back as
  // epoch 2 holds them after going back.
  scribble(a, {2, 3, 4, 15}, 31);
  scribble(b, {1, 3}, 32);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  at->push_back({copy(a), copy(b)});
  ASSERT_EQ(ckpt_epoch(c), 3u);
}

TEST_P(Epochs, RestoreTheRetainedEpochAndCheckpointOn) {
  Mem a(16), b(4);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_list_epochs(c, nullptr, 0), 0);  // nothing committed
  EXPECT_EQ(ckpt_restore_epoch(c, 1), -ENOENT);
  std::vector<std::pair<Bytes, Bytes>> at;
  three_epochs(c, a, b, &at);
  if (HasFatalFailure()) return;
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  uint64_t one = 0;
  EXPECT_EQ(ckpt_list_epochs(c, &one, 1), 2);  // how many it holds, n written
  EXPECT_EQ(one, 3u);
  EXPECT_EQ(ckpt_list_epochs(c, nullptr, 0), 2);
  EXPECT_EQ(ckpt_list_epochs(c, nullptr, 1), -EINVAL);

  // Written after epoch 3 and never checkpointed: must not survive the restore.
  scribble(a, {0, 5, 2}, 41);
  ASSERT_EQ(ckpt_restore_epoch(c, 2), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == at[2].first) << "region a is not epoch 2's";
  EXPECT_TRUE(copy(b) == at[2].second) << "region b is not epoch 2's";
  EXPECT_EQ(ckpt_epoch(c), 2u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{2}));

  // The next checkpoint is epoch 3 again, a delta on epoch 2 of what is written now.
  scribble(a, {7, 3}, 51);
  scribble(b, {2}, 52);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  if (GetParam() != "full") {
    EXPECT_EQ(st.last_pages, 3u);
  }
  const Bytes a3 = copy(a), b3 = copy(b);
  EXPECT_FALSE(a3 == at[3].first);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  ASSERT_EQ(ckpt_close(c), 0);

  Mem a2(16), b2(4);
  c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  ASSERT_EQ(ckpt_register(c, "a", a2.data(), a2.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a2) == a3) << "the newest epoch is not the one committed after going back";
  EXPECT_TRUE(copy(b2) == b3);
  // And epoch 2 is still the retained one, exactly.
  ASSERT_EQ(ckpt_restore_epoch(c, 2), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a2) == at[2].first);
  EXPECT_TRUE(copy(b2) == at[2].second);
  ckpt_close(c);
}

TEST_P(Epochs, EpochsNotHeldAreEnoentAndChangeNothing) {
  Mem a(16), b(4);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  std::vector<std::pair<Bytes, Bytes>> at;
  three_epochs(c, a, b, &at);
  if (HasFatalFailure()) return;
  scribble(a, {6}, 61);
  const Bytes now = copy(a);
  for (uint64_t e : {0ull, 1ull, 4ull, ~0ull}) {
    EXPECT_EQ(ckpt_restore_epoch(c, e), -ENOENT) << "epoch " << e;
    EXPECT_NE(std::string(ckpt_last_error(c)), "");
  }
  EXPECT_TRUE(copy(a) == now) << "memory changed by a refused restore";
  EXPECT_EQ(ckpt_epoch(c), 3u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  // The newest, by number: as ckpt_restore, and the next checkpoint is 4 with 3 retained.
  ASSERT_EQ(ckpt_restore_epoch(c, 3), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == at[3].first);
  scribble(a, {8}, 62);
  ASSERT_EQ(ckpt_checkpoint(c), 0);
  EXPECT_EQ(ckpt_epoch(c), 4u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{4, 3}));
  EXPECT_EQ(ckpt_restore_epoch(c, 2), -ENOENT);  // no longer held
  ckpt_close(c);
}

// Checked against the epoch asked for, before anything is filled or the store changes: a
// region registered since that epoch is -ESRCH.
TEST_P(Epochs, RegionsAreCheckedAgainstThatEpoch) {
  Mem a(16), b(4), late(2);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  std::vector<std::pair<Bytes, Bytes>> at;
  three_epochs(c, a, b, &at);
  if (HasFatalFailure()) return;
  ASSERT_EQ(ckpt_register(c, "late", late.data(), late.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0);  // epoch 4 has "late", epoch 3 does not
  scribble(a, {6}, 71);
  const Bytes now = copy(a);
  EXPECT_EQ(ckpt_restore_epoch(c, 3), -ESRCH);
  EXPECT_NE(std::string(ckpt_last_error(c)).find("late"), std::string::npos) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == now) << "memory changed by a refused restore";
  EXPECT_EQ(ckpt_epoch(c), 4u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{4, 3}));
  ASSERT_EQ(ckpt_unregister(c, "late"), 0);
  ASSERT_EQ(ckpt_restore_epoch(c, 3), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == at[3].first);
  ckpt_close(c);
}

// Going back is undone by exiting before the next checkpoint: the store still has the newer
// epochs.
TEST_P(Epochs, TheNewerEpochStaysUntilTheNextCheckpoint) {
  Mem a(16), b(4);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  std::vector<std::pair<Bytes, Bytes>> at;
  three_epochs(c, a, b, &at);
  if (HasFatalFailure()) return;
  ASSERT_EQ(ckpt_restore_epoch(c, 2), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_close(c), 0);
  c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == at[3].first);
  EXPECT_TRUE(copy(b) == at[3].second);
  ckpt_close(c);
}

// ckpt_supersede: back to epoch 2 with memory untouched; the next checkpoint is 3 again on top
// of 2 and holds memory as it is now, including pages only the superseded epoch 3 wrote (which
// a delta on epoch 2 of the pages written since would take from 2). It writes those and the
// pages written since, not every page. Reopening finds it, with 2 still retained.
TEST_P(Epochs, SupersedeKeepsMemoryAndWritesWhatChanged) {
  Mem a(16), b(4);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(ckpt_supersede(c, 1), -ENOENT);  // nothing committed
  std::vector<std::pair<Bytes, Bytes>> at;
  three_epochs(c, a, b, &at);
  if (HasFatalFailure()) return;
  EXPECT_EQ(ckpt_supersede(c, 1), -ENOENT);  // not held
  EXPECT_EQ(ckpt_supersede(c, 3), 0);        // the newest: nothing changes
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  scribble(a, {6}, 81);
  const Bytes a_now = copy(a), b_now = copy(b);
  ASSERT_EQ(ckpt_supersede(c, 2), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a) == a_now) << "ckpt_supersede changed memory";
  EXPECT_EQ(ckpt_epoch(c), 2u);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  if (GetParam() != "full") {
    // a: 2, 3, 4, 15 (epoch 3) and 6 (since); b: 1, 3 (epoch 3). Every page (20) before.
    EXPECT_EQ(st.last_pages, 7u);
  }
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  ASSERT_EQ(ckpt_close(c), 0);
  Mem a2(16), b2(4);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", a2.data(), a2.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b2.data(), b2.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a2) == a_now) << "the epoch committed after ckpt_supersede is not memory as it was";
  EXPECT_TRUE(copy(b2) == b_now);
  ASSERT_EQ(ckpt_restore_epoch(c, 2), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(a2) == at[2].first);
  EXPECT_TRUE(copy(b2) == at[2].second);
  ckpt_close(c);
}

// A region registered since the epoch gone back to (here: after epoch 2, first committed in 3)
// does not stop ckpt_supersede (it was -ESRCH, and libckpt-mpi's retry then committed on top of
// the failed attempt): the next checkpoint defines it again and writes it whole, the other
// regions' changed pages only. Reopened, the new epoch 3 holds memory as it was, and epoch 2
// (without the region) is still there.
TEST_P(Epochs, SupersedeWithARegionRegisteredSince) {
  Mem a(16), b(4), n(8);
  ckpt_t* c = open();
  ASSERT_TRUE(c);
  std::mt19937_64 rng(5);
  for (size_t i = 0; i < a.size(); i++) a.data()[i] = static_cast<unsigned char>(rng());
  ASSERT_EQ(ckpt_register(c, "a", a.data(), a.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", b.data(), b.size()), 0);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  scribble(a, {0, 5}, 11);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  const Bytes a2 = copy(a), b2 = copy(b);
  scribble(n, {0, 1, 2, 3, 4, 5, 6, 7}, 12);
  ASSERT_EQ(ckpt_register(c, "n", n.data(), n.size()), 0);
  scribble(a, {7, 8}, 13);
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  ASSERT_EQ(ckpt_epoch(c), 3u);
  scribble(n, {2}, 14);
  scribble(b, {0}, 15);
  const Bytes a_now = copy(a), b_now = copy(b), n_now = copy(n);
  ASSERT_EQ(ckpt_supersede(c, 2), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 2u);
  EXPECT_TRUE(copy(a) == a_now && copy(n) == n_now) << "ckpt_supersede changed memory";
  ASSERT_EQ(ckpt_checkpoint(c), 0) << ckpt_last_error(c);
  EXPECT_EQ(ckpt_epoch(c), 3u);
  ckpt_session_stats st;
  ASSERT_EQ(ckpt_get_stats(c, &st), 0);
  if (GetParam() != "full") {
    EXPECT_EQ(st.last_pages, 2u + 1u + 8u);  // a: 7, 8; b: 0; n: whole
  }
  EXPECT_EQ(list(c), (std::vector<uint64_t>{3, 2}));
  ASSERT_EQ(ckpt_close(c), 0);
  Mem ra(16), rb(4), rn(8);
  c = open();
  ASSERT_TRUE(c);
  ASSERT_EQ(ckpt_register(c, "a", ra.data(), ra.size()), 0);
  ASSERT_EQ(ckpt_register(c, "b", rb.data(), rb.size()), 0);
  ASSERT_EQ(ckpt_register(c, "n", rn.data(), rn.size()), 0);
  ASSERT_EQ(ckpt_restore(c), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(ra) == a_now);
  EXPECT_TRUE(copy(rb) == b_now);
  EXPECT_TRUE(copy(rn) == n_now);
  EXPECT_EQ(ckpt_restore_epoch(c, 2), -ESRCH);  // "n" is registered and not in epoch 2
  ASSERT_EQ(ckpt_unregister(c, "n"), 0);
  ASSERT_EQ(ckpt_restore_epoch(c, 2), 0) << ckpt_last_error(c);
  EXPECT_TRUE(copy(ra) == a2);
  EXPECT_TRUE(copy(rb) == b2);
  ckpt_close(c);
}

INSTANTIATE_TEST_SUITE_P(Trackers, Epochs, ::testing::ValuesIn(trackers()),
                         [](const auto& i) { return test_name(i.param); });

}  // namespace

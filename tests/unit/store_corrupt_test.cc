// SPDX-License-Identifier: MIT
// Bad input for the store reader, deterministically: a corpus of real stores (several epochs,
// a snapshot, deltas, region definitions) with corruption applied — random bit flips anywhere,
// zeroed and random blocks, truncation at every block boundary, well-formed but wrong metadata
// (re-sealed after corruption so the checksums pass) — each opened, read, verified and written
// through the fuzz target's entry point (tests/fuzz/store_fuzz.cc) and through a real file.
// Each must end in success or a clear -errno; a crash fails the test binary.
#include <functional>
#include <random>

#include "format.hpp"
#include "medium.hpp"
#include "store_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

using namespace store_test;
using namespace ckpt::store;

namespace {

std::vector<uint8_t> make_store(const TempDir& d, Contents* oracle) {
  const std::string p = d.file("base");
  std::unique_ptr<Store> s;
  Options o;
  o.snapshot_every = 2;
  EXPECT_EQ(0, Store::open(p, o, &s));
  std::mt19937_64 rng(7);
  // Epochs 4 and 5 change regions (format 1.1): a remove, a shrink-and-grow, ids with a hole,
  // so the corpus holds resize/remove entries and snapshots with a next-id entry.
  for (int e = 1; e <= 6; e++) {
    std::vector<Write> w;
    for (int i = 0; i < 6; i++) w.push_back({"r", rng() % 16, rng()});
    std::map<std::string, uint64_t> defs;
    std::vector<Change> changes;
    if (e == 1) defs["r"] = 16 * 4096;
    if (e == 3) defs["s"] = 3 * 4096;
    if (e == 3) w.push_back({"s", rng() % 3, rng()});
    if (e == 4) changes = {{"s", 0}};
    if (e == 4) defs["t"] = 2 * 4096;
    if (e == 4 || e == 5) w.push_back({"t", rng() % 2, rng()});
    if (e == 5) changes = {{"r", 12 * 4096}, {"r", 20 * 4096}};
    if (e == 6) changes = {{"t", 0}};
    EXPECT_EQ(0, checkpoint(*s, defs, w, oracle, changes)) << s->last_error();
  }
  s.reset();
  auto img = read_file(p);
  // Trim the unused tail (the file grows in steps), keeping the corpus small.
  size_t used = img.size();
  while (used > 8 * 4096) {
    bool zero = true;
    for (size_t i = used - 4096; i < used && zero; i++) zero = img[i] == 0;
    if (!zero) break;
    used -= 4096;
  }
  img.resize(used);
  return img;
}

// Opened from a real file through Store::open too: the io_uring reader on the same bytes.
int open_file_and_read(const std::string& file, const std::vector<uint8_t>& img) {
  if (!write_file(file, img)) return -999;
  std::unique_ptr<Store> s;
  int r = Store::open(file, {}, &s);
  if (r) return r;
  Contents c;
  read_all(*s, &c);
  VerifyReport vr;
  s->verify(&vr);
  return 0;
}

class StoreCorrupt : public ::testing::Test {
 protected:
  void SetUp() override { img_ = make_store(d_, &oracle_); }
  TempDir d_;
  Contents oracle_;
  std::vector<uint8_t> img_;
};

TEST_F(StoreCorrupt, IntactCorpusReadsBack) {
  ASSERT_TRUE(write_file(d_.file("f"), img_));
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, Store::open(d_.file("f"), {}, &s));
  Contents c;
  ASSERT_EQ(0, read_all(*s, &c));
  EXPECT_TRUE(c == oracle_);
  EXPECT_EQ(0, LLVMFuzzerTestOneInput(img_.data(), img_.size()));
}

TEST_F(StoreCorrupt, RandomBitFlipsAnywhere) {
  std::mt19937_64 rng(1);
  size_t opened = 0, refused = 0, damaged_reads = 0;
  for (int i = 0; i < 1500; i++) {
    auto img = img_;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; f++) img[rng() % img.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    LLVMFuzzerTestOneInput(img.data(), img.size());
    if (i % 10 == 0) {
      int r = open_file_and_read(d_.file("f"), img);
      ASSERT_LE(r, 0);
      (r == 0 ? opened : refused)++;
    }
    // Whatever opens must never return bytes that differ from some epoch silently: a read
    // either matches the oracle (newest epoch) or reports an older epoch or an error.
    std::unique_ptr<Store> s;
    MediumInfo info;
    if (open_on_medium(memory_medium(img, false), info, {}, &s) == 0 && s->read_epoch() == 6) {
      for (const auto& ri : s->regions()) {
        std::vector<uint8_t> buf(ri.size);
        ReadReport rep;
        int r = s->read_region(ri.id, buf.data(), ri.size, &rep);
        if (r == 0 && rep.epoch == 6) {
          ASSERT_TRUE(buf == oracle_.at(ri.name)) << "silent corruption, iteration " << i;
        } else {
          damaged_reads++;
        }
      }
    }
  }
  std::cout << "[ corrupt ] file opens: " << opened << " ok, " << refused
            << " refused; damaged reads caught: " << damaged_reads << "\n";
}

TEST_F(StoreCorrupt, WholeBlocksZeroedOrRandom) {
  std::mt19937_64 rng(2);
  for (size_t b = 0; b < img_.size() / 4096; b++) {
    for (int kind = 0; kind < 2; kind++) {
      auto img = img_;
      for (size_t i = 0; i < 4096; i++)
        img[b * 4096 + i] = kind == 0 ? 0 : static_cast<uint8_t>(rng());
      LLVMFuzzerTestOneInput(img.data(), img.size());
      ASSERT_LE(open_file_and_read(d_.file("f"), img), 0);
    }
  }
}

TEST_F(StoreCorrupt, TruncatedAtEveryBlockAndMidBlock) {
  for (size_t len = 0; len <= img_.size(); len += 2048) {
    std::vector<uint8_t> img(img_.begin(), img_.begin() + static_cast<long>(len));
    LLVMFuzzerTestOneInput(img.data(), img.size());
    ASSERT_TRUE(write_file(d_.file("t"), img));
    std::unique_ptr<Store> s;
    std::string why;
    Options o;
    o.why = &why;
    int r = Store::open(d_.file("t"), o, &s);
    if (len == 0) {
      EXPECT_EQ(-ENODATA, r);  // an empty file is not a store unless asked (Options::create)
      o.create = true;
      EXPECT_EQ(0, Store::open(d_.file("t"), o, &s)) << why;
      continue;
    }
    if (r != 0) {
      // Shorter than one block: the store sees no whole block, so no store (-ENODATA); it was
      // formatted over before creation became explicit.
      EXPECT_TRUE(r == -EUCLEAN || r == -ENOSPC || r == -EINVAL || r == -EIO ||
                  (r == -ENODATA && len < 4096))
          << r << " " << why;
      EXPECT_FALSE(why.empty());
      continue;
    }
    Contents c;
    int rr = read_all(*s, &c);
    EXPECT_TRUE(rr == 0 || rr == -EIO) << rr;
  }
}

// Well-formed lies: corrupt a metadata or commit field, then re-seal its checksum, so only
// the semantic checks stand between the bytes and the reader.
TEST_F(StoreCorrupt, ResealedMetadataLies) {
  std::mt19937_64 rng(3);
  const size_t nblocks = img_.size() / 4096;
  size_t refused = 0, opened = 0;
  for (int i = 0; i < 3000; i++) {
    auto img = img_;
    const size_t b = 2 + rng() % (nblocks - 2);
    uint8_t* blk = &img[b * 4096];
    uint64_t magic;
    std::memcpy(&magic, blk, 8);
    if (magic == fmt::kCommitMagic) {
      const size_t off = 24 + rng() % (sizeof(fmt::CommitRecord) - 32);  // after uuid, before csum
      if (rng() % 2) blk[off] ^= static_cast<uint8_t>(1u << (rng() % 8));
      else {
        uint64_t v = rng() % 4 == 0 ? ~0ull : rng() % (nblocks + 4);
        std::memcpy(blk + (off & ~size_t(7)), &v, 8);
      }
      fmt::CommitRecord cr;
      std::memcpy(&cr, blk, sizeof(cr));
      fmt::seal_commit(&cr);
      std::memcpy(blk, &cr, sizeof(cr));
    } else if (magic == fmt::kMetaMagic) {
      const size_t off = 8 + rng() % (4096 - 8);
      if (off >= offsetof(fmt::MetaHeader, csum) && off < sizeof(fmt::MetaHeader)) continue;
      if (rng() % 2) blk[off] ^= static_cast<uint8_t>(1u << (rng() % 8));
      else {
        uint64_t v = rng() % 4 == 0 ? ~0ull : rng() % (nblocks + 4);
        std::memcpy(blk + (off & ~size_t(7)), &v, 8);
      }
      fmt::seal_meta(blk);
    } else {
      continue;
    }
    LLVMFuzzerTestOneInput(img.data(), img.size());
    std::unique_ptr<Store> s;
    MediumInfo info;
    (open_on_medium(memory_medium(img, false), info, {}, &s) == 0 ? opened : refused)++;
  }
  std::cout << "[ resealed ] opened " << opened << ", refused " << refused << "\n";
  EXPECT_GT(refused, 0u);
}

}  // namespace

namespace {

// Well-formed lies in the region-change entries (format 1.1), each re-sealed: the reader must
// not take them (the epoch's metadata counts as damaged: the store opens at the retained
// epoch, or is refused).
TEST(StoreCorruptChanges, ForgedRegionChangeEntriesAreRefused) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  {
    std::unique_ptr<Store> s;
    ASSERT_EQ(0, Store::open(p, {}, &s));
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4 * 4096}, {"b", 4096}, {"c", 4096}},
                            {{"a", 0, 1}, {"a", 3, 2}, {"b", 0, 3}}, &o));
    ASSERT_EQ(0, checkpoint(*s, {}, {{"c", 0, 4}}, &o, {{"a", 2 * 4096}, {"b", 0}}));
  }
  const auto img = read_file(p);
  // Find epoch 2's delta block and its change entries.
  size_t blk = 0;
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096) {
    fmt::MetaHeader h;
    std::memcpy(&h, &img[off], sizeof(h));
    if (h.magic == fmt::kMetaMagic && h.epoch == 2 && h.kind == fmt::kDelta) blk = off;
  }
  ASSERT_NE(0u, blk);
  size_t resize_at = 0, remove_at = 0;
  for (size_t i = 0; i < fmt::kSlotsPerBlock; i++) {
    const size_t at = blk + sizeof(fmt::MetaHeader) + i * fmt::kSlot;
    uint16_t type;
    std::memcpy(&type, &img[at], 2);
    if (type == fmt::kResizeEntry) resize_at = at;
    if (type == fmt::kRemoveEntry) remove_at = at;
  }
  ASSERT_NE(0u, resize_at);
  ASSERT_NE(0u, remove_at);

  auto intact = [&](const std::vector<uint8_t>& im) {
    std::unique_ptr<Store> s;
    MediumInfo info;
    EXPECT_EQ(0, open_on_medium(memory_medium(im, false), info, {}, &s));
    return s && s->read_epoch() == 2;
  };
  ASSERT_TRUE(intact(img));
  using Edit = std::function<void(fmt::RegionChangeEntry*)>;
  const std::vector<std::pair<const char*, std::pair<bool, Edit>>> lies = {
      {"keep beyond the new size", {true, [](auto* e) { e->keep = 3 * 4096; }}},
      {"keep beyond the old size", {true, [](auto* e) { e->size = 8 * 4096, e->keep = 5 * 4096; }}},
      {"zero size", {true, [](auto* e) { e->size = 0, e->keep = 0; }}},
      {"unaligned size", {true, [](auto* e) { e->size = 4097; }}},
      {"huge size", {true, [](auto* e) { e->size = 1ull << 50; }}},
      {"bigger than the store", {true, [](auto* e) { e->size = 1ull << 40; }}},
      {"unknown region", {true, [](auto* e) { e->region = 9; }}},
      {"reserved set", {true, [](auto* e) { e->reserved2 = 1; }}},
      {"next-id in a delta", {true, [](auto* e) { e->type = fmt::kNextIdEntry; }}},
      {"remove with a size", {false, [](auto* e) { e->size = 4096; }}},
      {"remove of a removed region", {false, [](auto* e) { e->region = 9; }}},
  };
  for (const auto& [what, lie] : lies) {
    auto im = img;
    const size_t at = lie.first ? resize_at : remove_at;
    fmt::RegionChangeEntry e;
    std::memcpy(&e, &im[at], sizeof(e));
    lie.second(&e);
    std::memcpy(&im[at], &e, sizeof(e));
    fmt::seal_meta(&im[blk]);
    EXPECT_FALSE(intact(im)) << what;
    LLVMFuzzerTestOneInput(im.data(), im.size());
  }
  // The same entries in a store whose superblocks lack the incompat bit: a 1.0 store cannot
  // hold them.
  auto im = img;
  for (int i = 0; i < 2; i++) {
    fmt::SuperBlock sb;
    std::memcpy(&sb, &im[i * 4096], sizeof(sb));
    ASSERT_TRUE(sb.incompat & fmt::kIncompatRegionChange);
    sb.incompat = 0;
    fmt::seal_super(&sb);
    std::memcpy(&im[i * 4096], &sb, sizeof(sb));
  }
  EXPECT_FALSE(intact(im)) << "change entries without the incompat bit";
}

}  // namespace

namespace {

// A forged region id far beyond the store's size (fuzzer find: ids index an array in memory,
// holes included) is damage, not an allocation of a billion placeholders: the store opens at
// the retained epoch.
TEST(StoreCorruptChanges, HugeRegionIdIsRefusedNotAllocated) {
  TempDir d;
  const std::string p = d.file("s");
  Contents o;
  {
    std::unique_ptr<Store> s;
    ASSERT_EQ(0, Store::open(p, {}, &s));
    ASSERT_EQ(0, checkpoint(*s, {{"a", 4096}}, {{"a", 0, 1}}, &o));
    ASSERT_EQ(0, checkpoint(*s, {{"b", 4096}}, {{"b", 0, 2}}, &o, {{"a", 0}}));
  }
  auto img = read_file(p);
  size_t at = 0, blk = 0;
  for (size_t off = 4 * 4096; off + 4096 <= img.size(); off += 4096) {
    fmt::MetaHeader h;
    std::memcpy(&h, &img[off], sizeof(h));
    if (h.magic != fmt::kMetaMagic || h.epoch != 2) continue;
    for (size_t i = 0; i < h.nslots; i++) {
      uint16_t type;
      std::memcpy(&type, &img[off + sizeof(h) + i * fmt::kSlot], 2);
      if (type == fmt::kRegionEntry) at = off + sizeof(h) + i * fmt::kSlot, blk = off;
    }
  }
  ASSERT_NE(0u, at);
  fmt::RegionEntry e;
  std::memcpy(&e, &img[at], sizeof(e));
  e.region = 1u << 29;
  std::memcpy(&img[at], &e, sizeof(e));
  fmt::seal_meta(&img[blk]);
  std::unique_ptr<Store> s;
  MediumInfo info;
  ASSERT_EQ(0, open_on_medium(memory_medium(img, false), info, {}, &s));
  EXPECT_EQ(1u, s->read_epoch());
}

}  // namespace

// --- A mapped page that raises SIGBUS is a damaged page (issue 17) ---
//
// Poisoned persistent memory raises SIGBUS on load; so does a page of a file truncated under
// its mapping, which is how these tests make one. The DAX media read their mapping through
// guarded_copy(): the reader gets -EIO for that page, never the signal.

#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "guarded_copy.hpp"

namespace {

// A store medium over a MAP_SHARED mapping of a file (the DAX media's read path on a non-DAX
// file system, which refuses MAP_SYNC): reads through guarded_copy() as DaxMedium does, writes
// with pwrite (the page cache is what the mapping shows).
class MappedFileMedium final : public Medium {
 public:
  MappedFileMedium(int fd, uint64_t size) : fd_(fd), size_(size) {
    void* a = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    base_ = a == MAP_FAILED ? nullptr : static_cast<uint8_t*>(a);
    guard_sigbus();  // as the DAX media do when they map
  }
  ~MappedFileMedium() override {
    if (base_) munmap(base_, size_);
    close(fd_);
  }
  const char* name() const override { return "mapped"; }
  uint64_t size() const override { return size_; }
  bool growable() const override { return false; }
  int grow(uint64_t) override { return -ENOSPC; }
  int read(uint64_t off, void* dst, size_t len) override {
    if (off > size_ || len > size_ - off) return -EIO;
    return guarded_copy(dst, base_ + off, len);
  }
  int write(uint64_t off, const void* src, size_t len) override {
    return pwrite(fd_, src, len, off_t(off)) == ssize_t(len) ? 0 : -EIO;
  }
  int barrier() override { return 0; }
  size_t tear_unit() const override { return 8; }
  const uint8_t* mapping() const override { return base_; }

 private:
  int fd_;
  uint64_t size_;
  uint8_t* base_;
};

// A mapped 3-page file truncated to 1 page: its 2nd page raises SIGBUS.
struct Truncated {
  TempDir d;
  int fd = -1;
  uint8_t* map = nullptr;
  Truncated() {
    fd = open(d.file("f").c_str(), O_RDWR | O_CREAT, 0600);
    EXPECT_EQ(0, ftruncate(fd, 3 * 4096));
    map = static_cast<uint8_t*>(mmap(nullptr, 3 * 4096, PROT_READ, MAP_SHARED, fd, 0));
    EXPECT_NE(MAP_FAILED, static_cast<void*>(map));
    EXPECT_EQ(0, ftruncate(fd, 4096));
  }
  ~Truncated() {
    munmap(map, 3 * 4096);
    close(fd);
  }
};

sigjmp_buf g_test_jb;
volatile sig_atomic_t g_test_handler_ran = 0;
void test_handler(int) {
  g_test_handler_ran = 1;
  siglongjmp(g_test_jb, 1);
}

}  // namespace

TEST(StoreSigbus, GuardedCopyTurnsSigbusIntoEio) {
  Truncated t;
  std::vector<uint8_t> buf(2 * 4096);
  const uint64_t before = guarded_copy_faults();
  EXPECT_EQ(0, guarded_copy(buf.data(), t.map, 4096));
  EXPECT_EQ(-EIO, guarded_copy(buf.data(), t.map + 4096, 4096));
  EXPECT_EQ(-EIO, guarded_copy(buf.data(), t.map, 2 * 4096));  // faults part-way
  EXPECT_EQ(before + 2, guarded_copy_faults());
  EXPECT_EQ(0, guarded_copy(buf.data(), t.map, 4096));  // and the next copy works
}

// SIGBUS that is not a guarded copy's goes where it went before the guard was installed (by the
// next store open, guard_sigbus()): the program's own handler, or the default action (the
// process dies of SIGBUS).
TEST(StoreSigbus, OtherSigbusReachesThePreviousDisposition) {
  for (bool own_handler : {true, false}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      signal(SIGBUS, own_handler ? test_handler : SIG_DFL);
      guard_sigbus();  // what a store open does
      Truncated t;
      std::vector<uint8_t> buf(4096);
      if (guarded_copy(buf.data(), t.map + 4096, 4096) != -EIO) _exit(10);
      if (sigsetjmp(g_test_jb, 1) == 0) {
        volatile uint8_t x = t.map[4096];  // unguarded: not the store's fault
        (void)x;
        _exit(11);
      }
      _exit(g_test_handler_ran ? 0 : 12);
    }
    int st = 0;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    if (own_handler) {
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
    } else {
      EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS) << "status " << st;
    }
  }
}

// The store over a mapping: epoch 2's page sits in a block past the end of the truncated file.
// Reading it is a damaged page, the store falls back to epoch 1 (intact, below the cut) as for a
// checksum failure, verify names the page, and the process lives.
TEST(StoreSigbus, TruncatedMappingIsDamageAndFallsBack) {
  TempDir d;
  const std::string p = d.file("store");
  constexpr uint64_t kSize = 1 << 20;
  int fd = open(p.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, ftruncate(fd, kSize));
  auto m = std::make_unique<MappedFileMedium>(fd, kSize);
  ASSERT_NE(nullptr, m->mapping());
  MediumInfo info;
  info.path = p;
  Options o;
  o.force_format = true;
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::move(m), info, o, &s));
  Contents e1, e2;
  ASSERT_EQ(0, checkpoint(*s, {{"r", 4 * 4096}}, {{"r", 0, 1}, {"r", 1, 2}, {"r", 2, 3}}, &e1));
  e2 = e1;
  ASSERT_EQ(0, checkpoint(*s, {}, {{"r", 0, 100}}, &e2));
  // Cut the file at epoch 2's copy of page 0 (the only block holding page_of(100)).
  const auto img = read_file(p);
  const auto want = page_of(100);
  uint64_t cut = 0;
  for (uint64_t off = 0; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(img.data() + off, want.data(), 4096) == 0) cut = off;
  ASSERT_GT(cut, 0u) << "epoch 2's page not found in the file";
  int tfd = open(p.c_str(), O_RDWR);
  ASSERT_EQ(0, ftruncate(tfd, off_t(cut)));
  close(tfd);

  const uint64_t faults = guarded_copy_faults();
  std::vector<uint8_t> buf(4 * 4096);
  ReadReport rep;
  uint32_t id = s->regions().at(0).id;
  ASSERT_EQ(0, s->read_region(id, buf.data(), buf.size(), &rep)) << s->last_error();
  EXPECT_EQ(1u, rep.epoch) << "did not fall back to epoch 1";
  EXPECT_TRUE(buf == e1["r"]) << "read something other than epoch 1";
  EXPECT_GT(guarded_copy_faults(), faults) << "no SIGBUS was taken: the test cut nothing";
  EXPECT_NE(std::string::npos, s->last_error().find("fell back")) << s->last_error();
}

// verify() on a mapping with a page that raises SIGBUS reports it damaged and lives.
TEST(StoreSigbus, VerifyReportsTheUnreadablePage) {
  TempDir d;
  const std::string p = d.file("store");
  constexpr uint64_t kSize = 1 << 20;
  int fd = open(p.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, ftruncate(fd, kSize));
  MediumInfo info;
  info.path = p;
  Options o;
  o.force_format = true;
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, open_on_medium(std::make_unique<MappedFileMedium>(fd, kSize), info, o, &s));
  Contents e;
  ASSERT_EQ(0, checkpoint(*s, {{"r", 2 * 4096}}, {{"r", 0, 1}}, &e));
  ASSERT_EQ(0, checkpoint(*s, {}, {{"r", 1, 200}}, &e));
  const auto img = read_file(p);
  const auto want = page_of(200);
  uint64_t cut = 0;
  for (uint64_t off = 0; off + 4096 <= img.size(); off += 4096)
    if (std::memcmp(img.data() + off, want.data(), 4096) == 0) cut = off;
  ASSERT_GT(cut, 0u);
  int tfd = open(p.c_str(), O_RDWR);
  ASSERT_EQ(0, ftruncate(tfd, off_t(cut)));
  close(tfd);
  VerifyReport vr;
  EXPECT_EQ(-EIO, s->verify(&vr));
  ASSERT_EQ(1u, vr.damaged.size());
  EXPECT_EQ(1u, vr.damaged[0].page);
  EXPECT_EQ(2u, vr.damaged[0].epoch);
  EXPECT_EQ(1u, vr.newest_intact_epoch);
}

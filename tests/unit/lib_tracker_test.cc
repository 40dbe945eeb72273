// SPDX-License-Identifier: MIT
// The tracker contract (design.md) checked on the Tracker interface itself, per tracker: every
// page whose bytes changed since the previous collect is reported (a superset), and on 4 KiB
// memory nothing else is (the page the test did not write, zap or hand to the kernel). Writes by
// the CPU, by the kernel on the program's behalf (read(2), O_DIRECT, process_vm_writev),
// MADV_DONTNEED of written and unwritten ranges, THP-backed memory (over-report bounded by the
// 2 MiB extents touched), mremap/munmap under the tracker, and fork.
//
// Which tracker can do what (the others' limits are in user-guide.md):
//   kernel writes      uffd-async, uffd, module (mprotect: the kernel's write fails, EFAULT)
//   MADV_DONTNEED      uffd-async, module      (uffd/mprotect lose a zapped range)
#include <sys/uio.h>
#include <sys/wait.h>

#include <set>
#include <thread>

#include "lib_testutil.hpp"
#include "tracker.hpp"

using namespace ckpt_test;

namespace {

std::vector<std::string> tracker_params() {
  std::vector<std::string> out;
  for (const auto& t : trackers()) {
    if (t != "full") out.push_back(t);  // full reports everything by definition
    // uffd-async with the second scan for zapped PTEs that kernels before 6.18 may need.
    if (t == "uffd-async") out.push_back("uffd-async-second-scan");
  }
  return out;
}

bool catches_kernel_writes(const std::string& t) { return t != "mprotect"; }
bool follows_zaps(const std::string& t) { return t.rfind("uffd-async", 0) == 0 || t == "module"; }

// An anonymous mapping, 2 MiB-aligned so THP tests can ask for huge pages.
struct Area {
  explicit Area(size_t n, bool huge = false) : len(n) {
    const size_t h = 2 << 20;
    raw = static_cast<unsigned char*>(mmap(nullptr, len + h, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) abort();
    p = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(raw) + h - 1) & ~(h - 1));
    madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  }
  ~Area() { munmap(raw, len + (2 << 20)); }
  unsigned char* raw;
  unsigned char* p;
  size_t len;
  size_t pages() const { return len / ps(); }
};

// AnonHugePages of the mapping that holds addr (/proc/self/smaps), in KiB.
long anon_huge_kib(const void* addr) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  bool in = false;
  long kib = -1;
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  while (fgets(line, sizeof(line), f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) in = a >= lo && a < hi;
    else if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) break;
  }
  fclose(f);
  return kib;
}

class Contract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string name = GetParam();
    if (name == "uffd-async-second-scan") {
      name = "uffd-async";
      setenv("CKPT_UFFD_ASYNC_SECOND_SCAN", "1", 1);
    }
    ckpt::TrackerKind k = static_cast<ckpt::TrackerKind>(tracker_kind(name));
    std::string why;
    int r = ckpt::make_tracker(k, &t_, &why);
    unsetenv("CKPT_UFFD_ASYNC_SECOND_SCAN");
    ASSERT_EQ(r, 0) << why;
    ASSERT_STREQ(t_->name(), name.c_str());
  }
  std::set<uint64_t> collect(uint32_t rid = 0) {
    std::vector<uint64_t> v;
    int r = t_->collect(rid, &v);
    EXPECT_EQ(r, 0) << strerror(-r);
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    return std::set<uint64_t>(v.begin(), v.end());
  }
  std::unique_ptr<ckpt::Tracker> t_;
};

std::set<uint64_t> changed_pages(const unsigned char* now, const std::vector<unsigned char>& before) {
  std::set<uint64_t> out;
  for (size_t pg = 0; pg < before.size() / ps(); pg++)
    if (memcmp(now + pg * ps(), before.data() + pg * ps(), ps())) out.insert(pg);
  return out;
}

std::string list(const std::set<uint64_t>& s) {
  std::string out;
  for (uint64_t v : s) out += std::to_string(v) + " ";
  return out.empty() ? "(none)" : out;
}

// Every changed page reported; on 4 KiB memory, exactly the pages touched.
void expect_contract(const std::set<uint64_t>& got, const std::set<uint64_t>& changed,
                     const std::set<uint64_t>& touched) {
  std::set<uint64_t> missed, extra;
  for (uint64_t pg : changed)
    if (!got.count(pg)) missed.insert(pg);
  for (uint64_t pg : got)
    if (!touched.count(pg)) extra.insert(pg);
  EXPECT_TRUE(missed.empty()) << "changed but not reported: " << list(missed);
  EXPECT_TRUE(extra.empty()) << "reported but never touched: " << list(extra);
}

// A temporary file for O_DIRECT (the build tree's file system; tmpfs would refuse O_DIRECT).
struct DirectFile {
  DirectFile() {
    char name[] = "ckpt-tracker-direct-XXXXXX";
    fd = mkstemp(name);
    if (fd < 0) return;
    unlink(name);
    std::vector<unsigned char> buf(16 * ps());
    for (size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<unsigned char>(i * 7 + 1);
    if (write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) abort();
    fsync(fd);
    dfd = open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_DIRECT);
  }
  ~DirectFile() {
    if (dfd >= 0) close(dfd);
    if (fd >= 0) close(fd);
  }
  int fd = -1, dfd = -1;
};

// Randomised epochs against an oracle: CPU writes of bytes, pages and runs, kernel writes (when
// the tracker catches them) and MADV_DONTNEED (when it follows zaps). Part of the region is
// never touched before it is registered (unpopulated pages must be tracked too).
TEST_P(Contract, RandomizedEpochsAgainstOracle) {
  const bool kernel = catches_kernel_writes(GetParam()), zaps = follows_zaps(GetParam());
  Area a(1024 * ps());
  const size_t pages = a.pages();
  for (size_t pg = 0; pg < pages / 2; pg++) a.p[pg * ps() + pg % 64] = static_cast<unsigned char>(pg);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  DirectFile df;
  ASSERT_GE(df.dfd, 0) << "O_DIRECT open failed: " << strerror(errno);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  std::vector<unsigned char> oracle(a.p, a.p + a.len);
  std::mt19937_64 rng(42);
  int kernel_writes = 0, zapped = 0;
  for (int epoch = 0; epoch < 60; epoch++) {
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    std::set<uint64_t> touched;
    int ops = static_cast<int>(rng() % 24);
    for (int o = 0; o < ops; o++) {
      size_t off = rng() % a.len;
      size_t pg = off / ps();
      switch (rng() % (zaps ? 8 : 6)) {
        case 0:
        case 1:
          a.p[off] = static_cast<unsigned char>(rng() | 1);
          touched.insert(pg);
          break;
        case 2: {
          size_t n = std::min<size_t>(rng() % (3 * ps()) + 1, a.len - off);
          memset(a.p + off, static_cast<int>(rng() & 0xff), n);
          for (size_t q = pg; q <= (off + n - 1) / ps(); q++) touched.insert(q);
          break;
        }
        case 3:  // read(2) from a pipe: the kernel copies into the region (GUP, FOLL_WRITE)
          if (!kernel) break;
          {
            char msg[48];
            snprintf(msg, sizeof(msg), "pipe %d/%d", epoch, o);
            size_t at = std::min(off, a.len - sizeof(msg));
            ASSERT_EQ(write(pipefd[1], msg, sizeof(msg)), static_cast<ssize_t>(sizeof(msg)));
            ASSERT_EQ(read(pipefd[0], a.p + at, sizeof(msg)), static_cast<ssize_t>(sizeof(msg)));
            for (size_t q = at / ps(); q <= (at + sizeof(msg) - 1) / ps(); q++) touched.insert(q);
            kernel_writes++;
          }
          break;
        case 4:  // O_DIRECT read: the block layer writes the pages through a pin
          if (!kernel) break;
          {
            size_t n = (rng() % 3 + 1) * ps();
            size_t at = std::min(pg * ps(), a.len - n);
            off_t from = static_cast<off_t>((rng() % 8) * ps());
            ASSERT_EQ(pread(df.dfd, a.p + at, n, from), static_cast<ssize_t>(n)) << strerror(errno);
            for (size_t q = at / ps(); q < (at + n) / ps(); q++) touched.insert(q);
            kernel_writes++;
          }
          break;
        case 5:  // process_vm_writev into ourselves: access_remote_vm's GUP
          if (!kernel) break;
          {
            unsigned char src[300];
            for (auto& b : src) b = static_cast<unsigned char>(rng());
            size_t at = std::min(off, a.len - sizeof(src));
            struct iovec l = {src, sizeof(src)}, r = {a.p + at, sizeof(src)};
            ASSERT_EQ(process_vm_writev(getpid(), &l, 1, &r, 1, 0), static_cast<ssize_t>(sizeof(src)))
                << strerror(errno);
            for (size_t q = at / ps(); q <= (at + sizeof(src) - 1) / ps(); q++) touched.insert(q);
            kernel_writes++;
          }
          break;
        default: {  // MADV_DONTNEED of 1-40 pages, written this epoch or not
          size_t n = std::min<size_t>(rng() % 40 + 1, pages - pg);
          ASSERT_EQ(madvise(a.p + pg * ps(), n * ps(), MADV_DONTNEED), 0);
          for (size_t q = pg; q < pg + n; q++) touched.insert(q);
          zapped++;
        }
      }
    }
    std::set<uint64_t> got = collect();
    expect_contract(got, changed_pages(a.p, oracle), touched);
    oracle.assign(a.p, a.p + a.len);
    if (HasFailure()) break;
  }
  // A last collect with nothing written in between reports nothing.
  EXPECT_EQ(collect().size(), 0u);
  if (kernel) {
    EXPECT_GT(kernel_writes, 20);
  }
  if (zaps) {
    EXPECT_GT(zapped, 10);
  }
  close(pipefd[0]);
  close(pipefd[1]);
}

// A region registered dirty reports every page once, then only what is written.
TEST_P(Contract, DirtyRegistrationReportsAllOnce) {
  Area a(64 * ps());
  ASSERT_EQ(t_->add(0, a.p, a.len, true), 0);
  EXPECT_EQ(collect().size(), a.pages());
  EXPECT_EQ(collect().size(), 0u);
  a.p[5 * ps()] = 1;
  EXPECT_EQ(collect(), (std::set<uint64_t>{5}));
  EXPECT_EQ(t_->remove(0), 0);
  EXPECT_EQ(t_->remove(0), -ENOENT);
  std::vector<uint64_t> v;
  EXPECT_EQ(t_->collect(0, &v), -ENOENT);
}

// MADV_DONTNEED of a written and of an unwritten range: both now read as zeros, so both are
// reported once; afterwards the range is tracked exactly again (written, read, zapped twice).
// The kernel's own pagemap_ioctl selftest once checked this wrongly; a zap of anonymous memory
// drops the uffd-wp markers with the PTEs.
TEST_P(Contract, DontneedOfWrittenAndUnwrittenRanges) {
  if (!follows_zaps(GetParam())) GTEST_SKIP() << GetParam() << " does not follow MADV_DONTNEED (user-guide.md)";
  Area a(64 * ps());
  memset(a.p, 0x33, a.len);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  EXPECT_EQ(collect().size(), 0u);
  for (size_t pg = 10; pg < 20; pg++) a.p[pg * ps() + 1] = 0x44;
  ASSERT_EQ(madvise(a.p + 15 * ps(), 15 * ps(), MADV_DONTNEED), 0);  // 15-19 written, 20-29 not
  std::set<uint64_t> want;
  for (uint64_t pg = 10; pg < 30; pg++) want.insert(pg);
  EXPECT_EQ(collect(), want);
  EXPECT_EQ(a.p[22 * ps()], 0);
  EXPECT_EQ(collect().size(), 0u) << "a zapped range must be protected again";
  // Reads of a zapped page map the zero page: not a write.
  volatile unsigned char sink = a.p[25 * ps()];
  (void)sink;
  EXPECT_EQ(collect().size(), 0u) << "a read of a zapped page was reported";
  a.p[20 * ps()] = 9;
  EXPECT_EQ(collect(), (std::set<uint64_t>{20}));
  // Zapped twice without a collect between, and a zap of the whole region.
  ASSERT_EQ(madvise(a.p + 40 * ps(), 2 * ps(), MADV_DONTNEED), 0);
  ASSERT_EQ(madvise(a.p + 40 * ps(), 2 * ps(), MADV_DONTNEED), 0);
  EXPECT_EQ(collect(), (std::set<uint64_t>{40, 41}));
  ASSERT_EQ(madvise(a.p, a.len, MADV_DONTNEED), 0);
  EXPECT_EQ(collect().size(), a.pages());
  EXPECT_EQ(collect().size(), 0u);
  a.p[63 * ps()] = 1;
  EXPECT_EQ(collect(), (std::set<uint64_t>{63}));
}

// THP-backed memory: a write to a protected huge page is reported at 4 KiB precision where the
// kernel splits the PMD; whatever it reports beyond the written pages stays within the 2 MiB
// extents the test touched (one extent each: at most 512 pages).
TEST_P(Contract, ThpBackedRegionAt4KiB) {
  const size_t huge = 2 << 20, len = 8 * huge, per = huge / ps();
  Area a(len, true);
  std::mt19937_64 rng(3);
  for (size_t i = 0; i < len; i += 64) a.p[i] = static_cast<unsigned char>(rng());
  long huge_kib = anon_huge_kib(a.p);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  std::vector<unsigned char> oracle(a.p, a.p + a.len);
  size_t over = 0, written = 0;
  for (int epoch = 0; epoch < 8; epoch++) {
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    std::set<uint64_t> touched, extents;
    for (int w = 0; w < 10; w++) {
      size_t off = rng() % len;
      a.p[off] = static_cast<unsigned char>(a.p[off] + 1);
      touched.insert(off / ps());
      extents.insert(off / huge);
    }
    if (epoch == 4 && follows_zaps(GetParam())) {
      // A whole 2 MiB extent zapped: the kernel may map a fresh huge page at the next touch.
      ASSERT_EQ(madvise(a.p + 3 * huge, huge, MADV_DONTNEED), 0);
      for (size_t q = 3 * per; q < 4 * per; q++) touched.insert(q);
      extents.insert(3);
    }
    std::set<uint64_t> got = collect();
    std::set<uint64_t> changed = changed_pages(a.p, oracle);
    for (uint64_t pg : changed) ASSERT_TRUE(got.count(pg)) << "changed page " << pg << " not reported";
    for (uint64_t pg : got) ASSERT_TRUE(extents.count(pg / per)) << "page " << pg << " outside the touched extents";
    EXPECT_LE(got.size(), extents.size() * per);
    over += got.size() - std::min(got.size(), touched.size());
    written += touched.size();
    oracle.assign(a.p, a.p + a.len);
    if (epoch == 4 && follows_zaps(GetParam())) {
      a.p[3 * huge + 5] = 1;  // the first touch of the zapped extent
      got = collect();
      EXPECT_TRUE(got.count(3 * per)) << "the first write into a zapped extent was missed";
      EXPECT_LE(got.size(), per);
      for (uint64_t pg : got) EXPECT_EQ(pg / per, 3u);
      oracle.assign(a.p, a.p + a.len);
    }
  }
  printf("[ thp      ] %s: %ld KiB of the region THP-backed at register, %zu pages written, %zu reported beyond them\n",
         GetParam().c_str(), huge_kib, written, over);
}

// Writes the kernel makes on the program's behalf, each into its own page, reported exactly.
TEST_P(Contract, KernelWritesEachReported) {
  Area a(32 * ps());
  memset(a.p, 1, a.len);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  ASSERT_EQ(write(pfd[1], "kernel", 6), 6);
  ssize_t n = read(pfd[0], a.p + 3 * ps() + 10, 6);
  close(pfd[0]);
  close(pfd[1]);
  if (!catches_kernel_writes(GetParam())) {
    EXPECT_EQ(n, -1);  // documented: the kernel's write fails, so nothing is missed
    EXPECT_EQ(collect().size(), 0u);
    return;
  }
  ASSERT_EQ(n, 6);
  DirectFile df;
  ASSERT_GE(df.dfd, 0);
  ASSERT_EQ(pread(df.dfd, a.p + 8 * ps(), 2 * ps(), 0), static_cast<ssize_t>(2 * ps()));
  unsigned char src[16] = {9, 9, 9};
  struct iovec l = {src, sizeof(src)}, r = {a.p + 20 * ps() + ps() - 8, sizeof(src)};  // across 20|21
  ASSERT_EQ(process_vm_writev(getpid(), &l, 1, &r, 1, 0), static_cast<ssize_t>(sizeof(src)));
  EXPECT_EQ(collect(), (std::set<uint64_t>{3, 8, 9, 20, 21}));
}

// Threads write while collects run: once they stop, the union of the reports covers every page
// whose bytes differ from the memory at the first collect.
TEST_P(Contract, WritersRacingCollects) {
  Area a(256 * ps());
  memset(a.p, 0, a.len);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  std::vector<unsigned char> start(a.p, a.p + a.len);
  std::set<uint64_t> all;
  std::atomic<bool> quit{false};
  std::vector<std::thread> th;
  for (int k = 0; k < 2; k++)
    th.emplace_back([&, k] {
      std::mt19937_64 rng(k);
      while (!quit.load(std::memory_order_relaxed))
        reinterpret_cast<volatile uint64_t*>(a.p + (rng() % 256) * ps())[k + 2 * (rng() % 8)] = rng() | 1;
    });
  for (int i = 0; i < 200; i++) {
    std::set<uint64_t> got = collect();
    all.insert(got.begin(), got.end());
  }
  quit = true;
  for (auto& x : th) x.join();
  std::set<uint64_t> got = collect();
  all.insert(got.begin(), got.end());
  for (uint64_t pg : changed_pages(a.p, start)) EXPECT_TRUE(all.count(pg)) << "page " << pg << " missed";
}

// The uffd-async tracker and its descriptors' limits, which the other trackers do not share.
class UffdAsync : public Contract {};

// mremap moves the VMA out of the userfaultfd (no UFFD_FEATURE_EVENT_REMAP): the region is not
// tracked any more, so collect fails instead of reporting nothing; remove still works.
TEST_P(UffdAsync, MremapAwayIsAnError) {
  Area a(16 * ps()), dst(16 * ps());
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  void* moved = mremap(a.p, a.len, a.len, MREMAP_MAYMOVE | MREMAP_FIXED, dst.p);
  ASSERT_EQ(moved, static_cast<void*>(dst.p));
  static_cast<unsigned char*>(moved)[0] = 1;
  std::vector<uint64_t> v;
  EXPECT_EQ(t_->collect(0, &v), -EFAULT);
  // Moved back, the VMA is still not registered: still an error, never a silent miss.
  ASSERT_EQ(mremap(dst.p, a.len, a.len, MREMAP_MAYMOVE | MREMAP_FIXED, a.p), static_cast<void*>(a.p));
  a.p[ps()] = 2;
  EXPECT_EQ(t_->collect(0, &v), -EFAULT);
  EXPECT_EQ(t_->remove(0), 0);
  // dst's mapping went with the first mremap; map something there again for ~Area.
  mmap(dst.p, dst.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

// A region unmapped (wholly or partly), or replaced by a new mapping, under the tracker.
TEST_P(UffdAsync, UnmappedRegionIsAnError) {
  Area a(16 * ps());
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  ASSERT_EQ(munmap(a.p + 5 * ps(), ps()), 0);
  std::vector<uint64_t> v;
  EXPECT_EQ(t_->collect(0, &v), -EFAULT);
  ASSERT_EQ(mmap(a.p + 5 * ps(), ps(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
            static_cast<void*>(a.p + 5 * ps()));
  a.p[5 * ps()] = 1;  // a new, unregistered VMA in the range
  EXPECT_EQ(t_->collect(0, &v), -EFAULT);
  ASSERT_EQ(munmap(a.p, a.len), 0);
  EXPECT_EQ(t_->collect(0, &v), -EFAULT);
  EXPECT_EQ(t_->remove(0), 0);
  EXPECT_TRUE(v.empty());
  mmap(a.p, a.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

// fork: the child's memory is neither registered nor write-protected (fork drops the uffd-wp
// bits and markers where the VMA has no userfaultfd), and the descriptors it inherits, which
// name the parent's mm, are refused: the child cannot read, re-arm or unregister the parent's
// tracking, even by destroying its copy of the tracker. The parent's tracking stays exact.
TEST_P(UffdAsync, ForkChildDoesNotInheritATracker) {
  Area a(32 * ps());
  memset(a.p, 1, a.len);
  ASSERT_EQ(t_->add(0, a.p, a.len, false), 0);
  a.p[2 * ps()] = 2;  // written before the fork, collected after it
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bad = 0;
    // The child's PTEs carry no uffd-wp bit (pagemap bit 57) and its writes just happen.
    int pm = open("/proc/self/pagemap", O_RDONLY);
    for (size_t pg = 0; pg < 32; pg++) {
      uint64_t e = 0;
      if (pread(pm, &e, 8, static_cast<off_t>((reinterpret_cast<uintptr_t>(a.p) / ps() + pg) * 8)) != 8) bad |= 1;
      if (e & (1ULL << 57)) bad |= 2;
    }
    close(pm);
    memset(a.p, 7, a.len);
    std::vector<uint64_t> v;
    if (t_->collect(0, &v) != -ECHILD || !v.empty()) bad |= 4;
    if (t_->add(1, a.p, ps(), false) != -ECHILD) bad |= 8;
    if (t_->remove(0) != -ECHILD) bad |= 16;
    t_.reset();  // must leave the parent's registration alone
    char c;
    if (read(go[0], &c, 1) != 1) bad |= 32;  // the parent writes after our attempts
    _exit(bad);
  }
  a.p[4 * ps()] = 4;  // after the fork: a COW fault on a protected page
  int st = 0;
  ASSERT_EQ(write(go[1], "x", 1), 1);
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  close(go[0]);
  close(go[1]);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "child: 2 wp bits inherited, 4/8/16 tracker calls not refused, 32 pipe";
  a.p[6 * ps()] = 6;
  EXPECT_EQ(collect(), (std::set<uint64_t>{2, 4, 6}));
  EXPECT_EQ(a.p[8 * ps()], 1) << "the child's writes reached the parent";
  a.p[9 * ps()] = 9;
  EXPECT_EQ(collect(), (std::set<uint64_t>{9}));
}

// The same for the sync uffd tracker: the child shares the parent's userfaultfd context and the
// handler thread's stop eventfd, and has no handler thread of its own. Destroying its copy of the
// tracker must neither stop the parent's handler (the parent's next write to a protected page
// would then block for ever) nor unregister the parent's regions, nor hang the child.
TEST(UffdSync, ForkChildLeavesTheParentsTrackerAlone) {
  std::unique_ptr<ckpt::Tracker> t;
  std::string why;
  ASSERT_EQ(ckpt::make_tracker(ckpt::TrackerKind::kUffd, &t, &why), 0) << why;
  Area a(16 * ps());
  memset(a.p, 1, a.len);
  ASSERT_EQ(t->add(0, a.p, a.len, false), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(10);  // a child stuck in the destructor dies of SIGALRM
    int bad = 0;
    std::vector<uint64_t> v;
    if (t->collect(0, &v) != -ECHILD) bad |= 1;
    if (t->remove(0) != -ECHILD) bad |= 2;
    t.reset();
    _exit(bad);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st)) << "child killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0)
                             << " (SIGALRM: stuck destroying its copy of the tracker)";
  if (WIFEXITED(st)) {
    EXPECT_EQ(WEXITSTATUS(st), 0) << "1: collect, 2: remove not refused in the child";
  }
  // The parent's write to a protected page completes (its handler still runs) and is reported.
  std::atomic<bool> done{false};
  std::thread w([&] {
    a.p[3 * ps()] = 3;
    done = true;
  });
  for (int i = 0; i < 500 && !done; i++) usleep(10000);
  ASSERT_TRUE(done.load()) << "the parent's write blocks: the child stopped its handler thread";
  w.join();
  std::vector<uint64_t> v;
  ASSERT_EQ(t->collect(0, &v), 0);
  EXPECT_EQ(v, (std::vector<uint64_t>{3}));
}

// CKPT_TRACKER names it, and the other trackers' names still select them.
TEST(UffdAsyncSelection, EnvironmentAndAuto) {
  if (!uffd_async_available()) GTEST_SKIP() << "this kernel has no UFFD_FEATURE_WP_ASYNC/PAGEMAP_SCAN";
  std::unique_ptr<ckpt::Tracker> t;
  std::string why;
  setenv("CKPT_TRACKER", "uffd-async", 1);
  ASSERT_EQ(ckpt::make_tracker(ckpt::TrackerKind::kAuto, &t, &why), 0) << why;
  EXPECT_STREQ(t->name(), "uffd-async");
  setenv("CKPT_TRACKER", "uffd", 1);
  ASSERT_EQ(ckpt::make_tracker(ckpt::TrackerKind::kAuto, &t, &why), 0) << why;
  EXPECT_STREQ(t->name(), "uffd");
  setenv("CKPT_TRACKER", "uffd-sync", 1);
  EXPECT_EQ(ckpt::make_tracker(ckpt::TrackerKind::kAuto, &t, &why), -EINVAL);
  EXPECT_NE(why.find("uffd-async"), std::string::npos) << why;
  unsetenv("CKPT_TRACKER");
  ASSERT_EQ(ckpt::make_tracker(ckpt::TrackerKind::kAuto, &t, &why), 0) << why;
  EXPECT_STREQ(t->name(), module_tracks() ? "module" : "uffd-async");
}

INSTANTIATE_TEST_SUITE_P(Trackers, Contract, ::testing::ValuesIn(tracker_params()),
                         [](const auto& i) { return test_name(i.param); });

std::vector<std::string> uffd_async_only() {
  auto t = tracker_params();
  t.erase(std::remove_if(t.begin(), t.end(), [](const std::string& x) { return x.rfind("uffd-async", 0); }), t.end());
  return t;
}
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(UffdAsync);
INSTANTIATE_TEST_SUITE_P(Trackers, UffdAsync, ::testing::ValuesIn(uffd_async_only()),
                         [](const auto& i) { return test_name(i.param); });

}  // namespace

// SPDX-License-Identifier: MIT
// ckpt-tool inspect / verify against real stores made with libckpt: output, --json, exit
// statuses, damage named exactly, and that inspection never creates or modifies anything.
#include <ckpt/ckpt.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Out {
  int status;
  std::string out, err;
};

Out tool(const std::string& args) {
  char ef[] = "/tmp/ckpt-tool-test-err.XXXXXX";
  int efd = mkstemp(ef);
  std::string cmd = std::string(CKPT_TOOL) + " " + args + " 2>" + ef;
  FILE* p = popen(cmd.c_str(), "r");
  Out o{};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  std::ifstream e(ef);
  std::stringstream ss;
  ss << e.rdbuf();
  o.err = ss.str();
  close(efd);
  unlink(ef);
  return o;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

constexpr size_t kPage = 4096, kPages = 8;

// Fills a page with a marker unique to (region, page, version), so the test can find its
// bytes in the store file.
void fill(char* page, char region, size_t i, int version) {
  char m[32];
  int n = std::snprintf(m, sizeof m, "<%c%zu-v%d>", region, i, version);
  for (size_t o = 0; o + n <= kPage; o += n) std::memcpy(page + o, m, n);
}

class ToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char d[] = "/tmp/ckpt-tool-test.XXXXXX";
    ASSERT_NE(mkdtemp(d), nullptr);
    dir_ = d;
    store_ = dir_ + "/s.store";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // Two regions, two epochs: epoch 2 rewrites page 3 of region A only.
  void make_store() {
    ckpt_config_t cfg;
    ckpt_config_init(&cfg);
    cfg.tracker = CKPT_TRACKER_FULL;
    ckpt_t* c;
    ASSERT_EQ(0, ckpt_open(store_.c_str(), &cfg, &c));
    auto* a = static_cast<char*>(mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* b = static_cast<char*>(mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    for (size_t i = 0; i < kPages; i++) fill(a + i * kPage, 'A', i, 1), fill(b + i * kPage, 'B', i, 1);
    ASSERT_EQ(0, ckpt_register(c, "alpha", a, kPages * kPage));
    ASSERT_EQ(0, ckpt_register(c, "beta", b, kPages * kPage));
    ASSERT_EQ(0, ckpt_checkpoint(c));
    fill(a + 3 * kPage, 'A', 3, 2);
    ASSERT_EQ(0, ckpt_checkpoint(c));
    ASSERT_EQ(2u, ckpt_epoch(c));
    ASSERT_EQ(0, ckpt_close(c));
    munmap(a, kPages * kPage);
    munmap(b, kPages * kPage);
  }

  std::string dir_, store_;
};

TEST_F(ToolTest, InspectShowsEpochsAndRegions) {
  make_store();
  std::string before = read_file(store_);
  Out o = tool("inspect " + store_);
  ASSERT_EQ(0, o.status) << o.err;
  EXPECT_NE(o.out.find("epoch     2"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("alpha"), std::string::npos);
  EXPECT_NE(o.out.find("beta"), std::string::npos);
  EXPECT_NE(o.out.find("io_uring"), std::string::npos);

  Out j = tool("inspect --json " + store_);
  ASSERT_EQ(0, j.status) << j.err;
  auto js = nlohmann::json::parse(j.out);
  EXPECT_EQ(2u, js["epoch"].get<uint64_t>());
  ASSERT_EQ(2u, js["regions"].size());
  EXPECT_EQ(kPages, js["regions"][0]["pages"].get<uint64_t>());
  EXPECT_EQ(1u, js["retained_epoch"].get<uint64_t>());
  EXPECT_EQ(before, read_file(store_)) << "inspect modified the store";
}

TEST_F(ToolTest, VerifyOkThenNamesTheDamagedPage) {
  make_store();
  Out ok = tool("verify " + store_);
  EXPECT_EQ(0, ok.status) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("ok"), std::string::npos);

  // Corrupt epoch 2's copy of alpha page 3: one byte of its marker run.
  std::string img = read_file(store_);
  size_t at = img.find("<A3-v2>");
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(std::string::npos, img.find("<A3-v2>", at + kPage)) << "the page is stored once";
  {
    std::fstream f(store_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at + 100));
    f.put('X');
  }
  Out bad = tool("verify --json " + store_);
  EXPECT_EQ(1, bad.status) << bad.out << bad.err;
  auto js = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(js["restorable"].get<bool>());
  ASSERT_EQ(1u, js["damaged"].size()) << bad.out;
  EXPECT_EQ("alpha", js["damaged"][0]["region"].get<std::string>());
  EXPECT_EQ(3u, js["damaged"][0]["page"].get<uint64_t>());
  EXPECT_EQ(2u, js["damaged"][0]["epoch"].get<uint64_t>());
  // The retained epoch 1 is intact, and the human output says restore falls back to it.
  EXPECT_EQ(1u, js["restores_epoch"].get<uint64_t>());
  Out human = tool("verify " + store_);
  EXPECT_EQ(1, human.status);
  EXPECT_NE(human.out.find("region alpha page 3"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("epoch 1 is intact"), std::string::npos) << human.out;
}

TEST_F(ToolTest, NothingThereIsAClearErrorAndNothingIsCreated) {
  Out o = tool("inspect " + store_);
  EXPECT_EQ(3, o.status);
  EXPECT_NE(o.err.find("no such store"), std::string::npos) << o.err;
  struct stat st;
  EXPECT_NE(0, stat(store_.c_str(), &st)) << "inspect created the store";

  { std::ofstream f(store_); f << "not a store"; }
  Out v = tool("verify " + store_);
  EXPECT_EQ(3, v.status);
  EXPECT_NE(v.err.find("holds no ckpt store"), std::string::npos) << v.err;
  EXPECT_EQ("not a store", read_file(store_));
}

TEST_F(ToolTest, BusyStoreIsRefusedClearly) {
  make_store();
  ckpt_t* c;
  ASSERT_EQ(0, ckpt_open(store_.c_str(), nullptr, &c));
  Out o = tool("inspect " + store_);
  EXPECT_EQ(3, o.status);
  EXPECT_NE(o.err.find("a program has it open"), std::string::npos) << o.err;
  ckpt_close(c);
  EXPECT_EQ(0, tool("inspect " + store_).status);
}

// inspect, verify (and restore) take a shared lock: one holding it (another inspection) does
// not keep the next out; a writer does.
TEST_F(ToolTest, InspectionsShareTheStore) {
  make_store();
  int fd = open(store_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct flock fl = {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(0, fcntl(fd, F_SETLK, &fl));  // what a concurrent inspection holds
  Out o = tool("inspect " + store_);
  EXPECT_EQ(0, o.status) << o.err;
  Out v = tool("verify -q " + store_);
  EXPECT_EQ(0, v.status) << v.err;
  pid_t pid = fork();  // POSIX locks do not conflict within one process: a writer elsewhere
  if (pid == 0) {
    ckpt_t* c = nullptr;
    _exit(ckpt_open(store_.c_str(), nullptr, &c) == -EBUSY ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "a writer got in beside a reader";
  close(fd);
}

// A store on read-only media (a read-only bind mount of its directory, in a private mount
// namespace): inspected and verified, nothing written.
TEST_F(ToolTest, ReadOnlyMediaIsInspected) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a read-only bind mount";
  make_store();
  const std::string before = read_file(store_);
  const std::string ro = "unshare -m sh -c 'mount --bind -o ro " + dir_ + " " + dir_ +
                         " && exec \"$@\"' sh " + CKPT_TOOL + " ";
  Out probe = tool("--version");  // the tool itself runs
  ASSERT_EQ(0, probe.status);
  char ef[] = "/tmp/ckpt-tool-test-ro.XXXXXX";
  int efd = mkstemp(ef);
  ASSERT_GE(efd, 0);
  close(efd);
  int st = std::system((ro + "inspect " + store_ + " >/dev/null 2>" + ef).c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(ef);
  st = std::system((ro + "verify -q " + store_ + " >/dev/null 2>" + ef).c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(ef);
  unlink(ef);
  EXPECT_EQ(before, read_file(store_));
}

TEST_F(ToolTest, UsageErrors) {
  EXPECT_EQ(2, tool("").status);
  EXPECT_EQ(2, tool("inspect").status);
  EXPECT_EQ(2, tool("frobnicate").status);
  Out l = tool("dump --lose everything --store /nonexistent/s 1");
  EXPECT_EQ(2, l.status);
  EXPECT_NE(l.err.find("--lose"), std::string::npos) << l.err;
  Out h = tool("verify --help");
  EXPECT_EQ(0, h.status);
  EXPECT_NE(h.out.find("restorable"), std::string::npos);
}

// --key-file: the key that made a store authenticates it; another key is refused and names the
// key, so a swapped or forged store is not restored or trusted; a key file of the wrong length
// or readable by others is a usage error, read before anything is opened.
TEST_F(ToolTest, KeyFileAuthenticatesTheStore) {
  const std::string key(32, 'k'), other(32, 'o');
  auto write_key = [&](const std::string& name, const std::string& bytes, mode_t mode) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    chmod(p.c_str(), mode);
    return p;
  };
  const std::string good = write_key("good.key", key, 0600), bad = write_key("bad.key", other, 0600);
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = CKPT_TRACKER_FULL;
  cfg.key = key.data();
  cfg.key_len = key.size();
  ckpt_t* c;
  ASSERT_EQ(0, ckpt_open(store_.c_str(), &cfg, &c));
  auto* mem = static_cast<char*>(mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(MAP_FAILED, mem);
  memset(mem, 'x', kPages * kPage);
  ASSERT_EQ(0, ckpt_register(c, "alpha", mem, kPages * kPage));
  ASSERT_EQ(0, ckpt_checkpoint(c));
  ASSERT_EQ(0, ckpt_close(c));
  munmap(mem, kPages * kPage);
  const std::string before = read_file(store_);

  Out ok = tool("verify --key-file " + good + " " + store_);
  EXPECT_EQ(0, ok.status) << ok.out << ok.err;
  EXPECT_EQ(0, tool("inspect --key-file " + good + " " + store_).status);
  Out wrong = tool("verify --key-file " + bad + " " + store_);
  EXPECT_EQ(1, wrong.status) << wrong.out;  // found a problem, as verify says of damage
  EXPECT_NE(wrong.err.find("key"), std::string::npos) << wrong.err;
  Out restore = tool("restore --key-file " + bad + " --store " + store_);
  EXPECT_NE(0, restore.status);
  EXPECT_NE(restore.err.find("key"), std::string::npos) << restore.err;

  Out shared = tool("verify --key-file " + write_key("shared.key", key, 0640) + " " + store_);
  EXPECT_EQ(2, shared.status);
  EXPECT_NE(shared.err.find("chmod 600"), std::string::npos) << shared.err;
  Out shortk = tool("verify --key-file " + write_key("short.key", "0123456789", 0600) + " " + store_);
  EXPECT_EQ(2, shortk.status);
  EXPECT_NE(shortk.err.find("16 to 64 bytes"), std::string::npos) << shortk.err;
  EXPECT_EQ(2, tool("verify --key-file " + dir_ + "/missing.key " + store_).status);
  EXPECT_EQ(before, read_file(store_)) << "a refused key changed the store";
}

// run (without --resume) into a store that holds a process image would overwrite it with its
// first checkpoint: refused (exit 4) before the program is started, naming whose image it is;
// --replace starts it. (Before, run started it and overwrote the image.) The image is the
// committed fuzz seed (tests/fuzz/corpus/image/minimal: process 42, /a), in a store written
// with libckpt, so no module is needed: run refuses before it checkpoints anything.
TEST_F(ToolTest, RunRefusesAStoreHoldingAnImageUnlessReplace) {
  const std::string seed = read_file(CKPT_IMAGE_SEED);
  ASSERT_EQ(seed.size(), kPage);
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = CKPT_TRACKER_FULL;
  ckpt_t* c;
  ASSERT_EQ(0, ckpt_open(store_.c_str(), &cfg, &c));
  auto* p = static_cast<char*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  std::memcpy(p, seed.data(), kPage);
  ASSERT_EQ(0, ckpt_register(c, "process", p, kPage));
  ASSERT_EQ(0, ckpt_checkpoint(c));
  ASSERT_EQ(0, ckpt_close(c));
  munmap(p, kPage);
  const std::string before = read_file(store_), ran = dir_ + "/ran";
  Out r = tool("run --store " + store_ + " --interval 0 -- touch " + ran);
  EXPECT_EQ(4, r.status) << r.err;
  EXPECT_NE(r.err.find("holds the image of process 42 (/a); --resume restores it, --replace "
                       "overwrites it"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
  EXPECT_NE(access(ran.c_str(), F_OK), 0) << "the refused run started the program";
  EXPECT_EQ(read_file(store_), before);
  r = tool("run --replace --store " + store_ + " --interval 0 -- touch " + ran);
  EXPECT_EQ(0, r.status) << r.err;
  EXPECT_EQ(access(ran.c_str(), F_OK), 0);
}

// Scripts (and the CRIU bench's start-up figure) ask the tool what it is without a subcommand.
TEST_F(ToolTest, VersionNamesTheFormats) {
  Out v = tool("--version");
  EXPECT_EQ(0, v.status);
  EXPECT_EQ(0u, v.out.find("ckpt-tool "));
  EXPECT_NE(v.out.find("process image 2."), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("ckpt.ko API "), std::string::npos) << v.out;
}

}  // namespace

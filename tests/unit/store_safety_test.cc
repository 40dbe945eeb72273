// SPDX-License-Identifier: MIT
// What the store refuses to format (Options::create / force_format, libblkid), the symlink
// rule, and read-only opens (Options::no_modify): O_RDONLY under a shared lock, several readers
// at once, no io_uring ring, on a file the caller may not write. Host files only; the same on a
// loop device holding ext4 runs in the VM (tests/e2e/vm-store-safety.sh).
#include <dirent.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>

#include "store_util.hpp"

using namespace store_test;

namespace {

// Runs a shell command; true when it exits 0.
bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// io_uring instances this process holds (anon inodes named [io_uring] among its descriptors).
int rings() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    char link[256];
    std::string p = std::string("/proc/self/fd/") + e->d_name;
    ssize_t k = readlink(p.c_str(), link, sizeof(link) - 1);
    if (k > 0 && std::string(link, size_t(k)).find("io_uring") != std::string::npos) n++;
  }
  closedir(d);
  return n;
}

// A store at p with one committed epoch.
void make_store(const std::string& p) {
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, Store::open(p, {}, &s));
  uint32_t id;
  ASSERT_EQ(0, s->define_region("r", 4096, &id));
  std::unique_ptr<Txn> t;
  ASSERT_EQ(0, s->begin(&t));
  std::vector<uint8_t> page(4096, 0x5a);
  ASSERT_EQ(0, t->put_page(id, 0, page.data()));
  ASSERT_EQ(0, t->commit());
}

Options with(bool create, bool force, std::string* why) {
  Options o;
  o.create = create;
  o.force_format = force;
  o.why = why;
  return o;
}

}  // namespace

TEST(StoreSafety, MissingPathIsCreatedWithoutAsking) {
  TempDir d;
  std::unique_ptr<Store> s;
  EXPECT_EQ(0, Store::open(d.file("new"), {}, &s));
  EXPECT_EQ(0u, s->epoch());
}

TEST(StoreSafety, ExistingEmptyFileNeedsCreate) {
  TempDir d;
  const std::string p = d.file("empty");
  ASSERT_TRUE(write_file(p, {}));
  std::unique_ptr<Store> s;
  std::string why;
  EXPECT_EQ(-ENODATA, Store::open(p, with(false, false, &why), &s));
  EXPECT_NE(std::string::npos, why.find("--create")) << why;
  EXPECT_TRUE(read_file(p).empty()) << "the refused open changed the file";
  EXPECT_EQ(0, Store::open(p, with(true, false, &why), &s)) << why;
}

TEST(StoreSafety, BlankFileNeedsCreate) {
  TempDir d;
  const std::string p = d.file("zeros");
  const std::vector<uint8_t> zeros(1 << 20, 0);
  ASSERT_TRUE(write_file(p, zeros));
  std::unique_ptr<Store> s;
  std::string why;
  EXPECT_EQ(-ENODATA, Store::open(p, with(false, false, &why), &s));
  EXPECT_NE(std::string::npos, why.find("holds no ckpt store")) << why;
  EXPECT_TRUE(read_file(p) == zeros);
  EXPECT_EQ(0, Store::open(p, with(true, false, &why), &s)) << why;
}

TEST(StoreSafety, FileWithDataIsRefusedEvenWithCreate) {
  TempDir d;
  const std::string p = d.file("notes");
  const std::vector<uint8_t> text(10000, 'x');
  ASSERT_TRUE(write_file(p, text));
  std::unique_ptr<Store> s;
  std::string why;
  EXPECT_EQ(-ENODATA, Store::open(p, with(false, false, &why), &s));
  EXPECT_EQ(-EEXIST, Store::open(p, with(true, false, &why), &s));
  EXPECT_NE(std::string::npos, why.find("--force")) << why;
  EXPECT_TRUE(read_file(p) == text);
  EXPECT_EQ(0, Store::open(p, with(false, true, &why), &s)) << why;
}

// mkfs.ext4 on a file: libblkid names it, nothing formats it but force_format.
TEST(StoreSafety, Ext4ImageIsRefusedByName) {
  TempDir d;
  const std::string p = d.file("ext4.img");
  ASSERT_TRUE(sh("truncate -s 8M '" + p + "' && mkfs.ext4 -q -F '" + p + "'")) << "mkfs.ext4";
  const auto before = read_file(p);
  std::unique_ptr<Store> s;
  std::string why;
  for (bool create : {false, true}) {
    EXPECT_EQ(-EEXIST, Store::open(p, with(create, false, &why), &s)) << "create " << create;
    EXPECT_NE(std::string::npos, why.find("\"ext4\" file system")) << why;
    EXPECT_NE(std::string::npos, why.find("--force")) << why;
  }
  EXPECT_TRUE(read_file(p) == before) << "a refused open wrote to the file system image";
  ASSERT_TRUE(sh("e2fsck -n -f '" + p + "'")) << "the image no longer checks as ext4";
  EXPECT_EQ(0, Store::open(p, with(false, true, &why), &s)) << why;
  s.reset();
  EXPECT_FALSE(sh("e2fsck -n -f '" + p + "'")) << "force_format did not format it";
}

// Force formatting erases every signature libblkid knows, not only those in the blocks the
// store's header overwrites: a GPT keeps a backup header in the last sector, which wipefs and
// partitioning tools still find (and offer to restore) after the first 16 KiB are rewritten.
// Before the wipe, `wipefs` listed "gpt" at the end of the formatted image (issue 17).
TEST(StoreSafety, ForceFormatErasesOtherSignatures) {
  TempDir d;
  const std::string gpt = d.file("gpt.img"), e4 = d.file("ext4.img");
  ASSERT_TRUE(sh("truncate -s 8M '" + gpt + "' && echo 'label: gpt' | sfdisk -q '" + gpt + "'"))
      << "sfdisk (Debian package fdisk)";
  ASSERT_TRUE(sh("truncate -s 8M '" + e4 + "' && mkfs.ext4 -q -F '" + e4 + "'")) << "mkfs.ext4";
  for (const std::string& p : {gpt, e4}) {
    std::unique_ptr<Store> s;
    std::string why;
    ASSERT_EQ(-EEXIST, Store::open(p, with(true, false, &why), &s)) << p;
    ASSERT_EQ(0, Store::open(p, with(false, true, &why), &s)) << why;
    s.reset();
    // blkid -p exits 2 when it finds nothing; wipefs lists every signature it knows, backup
    // GPT headers included (one header line, then a line per signature).
    EXPECT_EQ(2 << 8, std::system(("blkid -p '" + p + "' >/dev/null 2>&1").c_str())) << p;
    FILE* f = popen(("wipefs '" + p + "' 2>&1").c_str(), "r");
    ASSERT_TRUE(f);
    std::string out;
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
      out += line;
      lines++;
    }
    pclose(f);
    EXPECT_LE(lines, 1) << p << ": signatures left after force formatting:\n" << out;
    // And it is a store: it opens without asking.
    ASSERT_EQ(0, Store::open(p, with(false, false, &why), &s)) << why;
  }
}

TEST(StoreSafety, SwapAreaIsRefusedByName) {
  TempDir d;
  const std::string p = d.file("swap.img");
  ASSERT_TRUE(sh("truncate -s 4M '" + p + "' && mkswap '" + p + "'")) << "mkswap";
  const auto before = read_file(p);
  std::unique_ptr<Store> s;
  std::string why;
  EXPECT_EQ(-EEXIST, Store::open(p, with(true, false, &why), &s));
  EXPECT_NE(std::string::npos, why.find("\"swap\"")) << why;
  EXPECT_TRUE(read_file(p) == before);
}

// The rule: symlinks are followed (an existing store opens through one, and messages name the
// target); a store is never created through a dangling one.
TEST(StoreSafety, SymlinksFollowedNeverCreatedThrough) {
  TempDir d;
  make_store(d.file("real"));
  ASSERT_EQ(0, symlink(d.file("real").c_str(), d.file("link").c_str()));
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, Store::open(d.file("link"), {}, &s));
  EXPECT_EQ(1u, s->epoch());
  s.reset();

  ASSERT_EQ(0, symlink(d.file("nowhere").c_str(), d.file("dangling").c_str()));
  EXPECT_EQ(-ENOENT, Store::open(d.file("dangling"), {}, &s));
  EXPECT_NE(0, access(d.file("nowhere").c_str(), F_OK)) << "created through a dangling symlink";

  const std::string img = d.file("ext4.img");
  ASSERT_TRUE(sh("truncate -s 8M '" + img + "' && mkfs.ext4 -q -F '" + img + "'"));
  ASSERT_EQ(0, symlink(img.c_str(), d.file("fslink").c_str()));
  std::string why;
  EXPECT_EQ(-EEXIST, Store::open(d.file("fslink"), with(true, false, &why), &s));
  EXPECT_NE(std::string::npos, why.find(img)) << "the message names the link's target: " << why;
}

TEST(StoreSafety, ReadOnlyOpenHasNoRingAndRefusesWrites) {
  TempDir d;
  const std::string p = d.file("s");
  make_store(p);
  const int base = rings();
  {
    std::unique_ptr<Store> w;
    ASSERT_EQ(0, Store::open(p, {}, &w));
    EXPECT_EQ(base + 1, rings()) << "the writer's ring is not seen: the check below means nothing";
  }
  Options ro;
  ro.no_modify = true;
  std::unique_ptr<Store> s;
  ASSERT_EQ(0, Store::open(p, ro, &s));
  EXPECT_EQ(base, rings()) << "a read-only open set up an io_uring ring";
  EXPECT_EQ(1u, s->epoch());
  std::vector<uint8_t> buf(4096);
  ASSERT_EQ(0, s->read_region(1, buf.data(), buf.size(), nullptr));
  EXPECT_EQ(0x5a, buf[100]);
  ckpt::store::VerifyReport vr;
  EXPECT_EQ(0, s->verify(&vr));
  std::unique_ptr<Txn> t;
  EXPECT_EQ(-EROFS, s->begin(&t));
  uint32_t id;
  EXPECT_EQ(-EROFS, s->define_region("n", 4096, &id));
}

// Shared lock: readers at once (here and in another process); a writer waits for them all, and
// a reader is refused while a writer has it.
TEST(StoreSafety, ReadersShareWritersExclude) {
  TempDir d;
  const std::string p = d.file("s");
  make_store(p);
  Options ro;
  ro.no_modify = true;
  std::unique_ptr<Store> r1, r2, w;
  ASSERT_EQ(0, Store::open(p, ro, &r1));
  ASSERT_EQ(0, Store::open(p, ro, &r2)) << "a second reader in the same process";
  EXPECT_EQ(-EBUSY, Store::open(p, {}, &w)) << "a writer while readers have it";
  int pfd[2];
  ASSERT_EQ(0, pipe(pfd));
  pid_t pid = fork();
  if (pid == 0) {
    std::unique_ptr<Store> c, cw;
    char res[2] = {char('0' + (Store::open(p, ro, &c) == 0)),
                   char('0' + (Store::open(p, {}, &cw) == -EBUSY))};
    (void)!write(pfd[1], res, 2);
    _exit(0);
  }
  char res[2] = {};
  ASSERT_EQ(2, read(pfd[0], res, 2));
  waitpid(pid, nullptr, 0);
  EXPECT_EQ('1', res[0]) << "a reader in another process was refused";
  EXPECT_EQ('1', res[1]) << "a writer in another process was not refused";
  // One reader closes: closing a descriptor drops every POSIX lock this process has on the
  // file; the other reader's lock must hold still.
  r1.reset();
  pid = fork();
  if (pid == 0) {
    std::unique_ptr<Store> cw;
    _exit(Store::open(p, {}, &cw) == -EBUSY ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the remaining reader lost its lock";
  r2.reset();
  ASSERT_EQ(0, Store::open(p, {}, &w));
  EXPECT_EQ(-EBUSY, Store::open(p, ro, &r1)) << "a reader while a writer has it";
}

// A store the caller may read but not write (a backup copy, read-only media): run as nobody on
// a root-owned 0444 file, since root may write any file.
TEST(StoreSafety, ReadOnlyFileOpensForReading) {
  if (geteuid() != 0) {
    // Not root: the file is ours, and 0444 already keeps us from writing it.
    TempDir d;
    const std::string p = d.file("s");
    make_store(p);
    ASSERT_EQ(0, chmod(p.c_str(), 0444));
    std::unique_ptr<Store> s;
    EXPECT_EQ(-EACCES, Store::open(p, {}, &s));
    Options ro;
    ro.no_modify = true;
    EXPECT_EQ(0, Store::open(p, ro, &s));
    return;
  }
  TempDir d;
  ASSERT_EQ(0, chmod(d.path().c_str(), 0755));
  const std::string p = d.file("s");
  make_store(p);
  ASSERT_EQ(0, chmod(p.c_str(), 0444));
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    std::unique_ptr<Store> s;
    if (Store::open(p, {}, &s) != -EACCES) _exit(11);
    Options ro;
    ro.no_modify = true;
    if (Store::open(p, ro, &s) != 0) _exit(12);
    std::vector<uint8_t> buf(4096);
    if (s->read_region(1, buf.data(), buf.size(), nullptr) != 0 || buf[0] != 0x5a) _exit(13);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(0, WEXITSTATUS(st)) << "10 setuid, 11 the writable open was not EACCES, 12 the "
                                   "read-only open failed, 13 the read failed";
}

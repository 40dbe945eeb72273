// Whole-process image (tools/ckpt-tool/image.hpp): round trip, validation, and a fuzz of the
// decoder with random corruption and truncation: it must refuse (never crash, never read out of
// bounds) or return an image that passes the same validation.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <random>

#include "image.hpp"

using namespace ckpt_tool::image;

namespace {

Image sample() {
  Image img;
  img.pid = 1234;
  img.comm = "prog";
  img.cwd = "/tmp/x";
  img.exe = "/usr/bin/prog";
  img.start_code = 0x400000;
  img.end_code = 0x401000;
  img.start_data = 0x402000;
  img.end_data = 0x403000;
  img.start_brk = 0x500000;
  img.brk = 0x521000;
  img.start_stack = 0x7ffd0000f000;
  img.arg_start = 0x7ffd0000f100;
  img.arg_end = 0x7ffd0000f200;
  img.env_start = 0x7ffd0000f200;
  img.env_end = 0x7ffd0000f300;
  img.actions[9] = {0x401234, 0x04000004, 0x401000, 1 << 2};
  img.vvar_start = 0x7ffd00100000;
  img.vdso_start = 0x7ffd00104000;
  img.vdso_end = 0x7ffd00106000;
  for (int i = 0; i < 2; i++) {
    Thread t;
    t.tid = 1234 + i;
    t.regs.cs = 0x33;
    t.regs.ss = 0x2b;
    t.regs.ip = 0x400100;
    t.regs.sp = 0x7ffd0000e000;
    t.regs.fs_base = 0x7f0000001000;
    t.xsave.assign(832, 0);
    t.xsave[24] = 0x80;  // MXCSR 0x1f80
    t.xsave[25] = 0x1f;
    t.xsave[512] = 3;    // XSTATE_BV x87|SSE
    t.sigmask = 1 << 14;
    t.rseq = 0x7f0000002000;
    img.threads.push_back(t);
  }
  Vma a;
  a.start = 0x400000;
  a.end = 0x401000;
  a.prot = PROT_READ | PROT_EXEC;
  a.kind = kFile;
  a.file = {"/usr/bin/prog", 77, 8192, 123};
  a.runs = {{0, 4096, kHeaderSize}};
  img.vmas.push_back(a);
  Vma h;
  h.start = 0x500000;
  h.end = 0x521000;
  h.prot = PROT_READ | PROT_WRITE;
  h.runs = {{0, 8192, kHeaderSize + 4096}, {0x10000, 4096, kHeaderSize + 3 * 4096}};
  img.vmas.push_back(h);
  Vma s;
  s.start = 0x7ffd0000a000;
  s.end = 0x7ffd00010000;
  s.prot = PROT_READ | PROT_WRITE;
  s.growsdown = true;
  img.vmas.push_back(s);
  Fd f;
  f.fd = 1;
  f.kind = kFdRegular;
  f.flags = 01;
  f.pos = 99;
  f.file = {"/tmp/x/out", 5, 100, 1};
  img.fds.push_back(f);
  return img;
}

constexpr uint64_t kDataEnd = kHeaderSize + 4 * 4096;

}  // namespace

TEST(WpImage, RoundTrip) {
  Image in = sample();
  std::vector<uint8_t> meta = encode_meta(in);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, kDataEnd, &out, &why), 0) << why;
  EXPECT_EQ(out.pid, in.pid);
  EXPECT_EQ(out.cwd, in.cwd);
  ASSERT_EQ(out.threads.size(), 2u);
  EXPECT_EQ(out.threads[1].tid, 1235u);
  EXPECT_EQ(out.threads[0].xsave, in.threads[0].xsave);
  ASSERT_EQ(out.vmas.size(), 3u);
  EXPECT_EQ(out.vmas[0].file.path, "/usr/bin/prog");
  EXPECT_EQ(out.vmas[1].runs.size(), 2u);
  EXPECT_TRUE(out.vmas[2].growsdown);
  EXPECT_EQ(out.actions[9].handler, 0x401234u);
  ASSERT_EQ(out.fds.size(), 1u);
  EXPECT_EQ(out.fds[0].pos, 99u);
  // The encoding is canonical.
  EXPECT_EQ(encode_meta(out), meta);
}

TEST(WpImage, RefusesWhatRestoreCannotUse) {
  std::string why;
  Image out;
  auto refuses = [&](auto mutate) {
    Image img = sample();
    mutate(img);
    return decode_meta(encode_meta(img), kDataEnd, &out, &why) == -EBADMSG;
  };
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].regs.cs = 0x23; }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].regs.ip = 1ull << 63; }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave.resize(100); }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave[520] = 1; }));  // XCOMP_BV
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave[27] = 1; }));   // MXCSR reserved
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].start = 0x400800; }));   // unaligned / overlap
  EXPECT_TRUE(refuses([](Image& i) { std::swap(i.vmas[0], i.vmas[1]); }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].offset = 0x21000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].data_off = kDataEnd; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[0].data_off = 0; }));  // into the header
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[2].end = 0x800000000000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[2].start = 0x7ffd00101000; i.vmas[2].end = 0x7ffd00102000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].file.path = "relative"; }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads.clear(); }));
  EXPECT_TRUE(refuses([](Image& i) { i.brk = i.start_brk - 1; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[0].kind = 0; i.fds[0].fd = 5; }));
  EXPECT_TRUE(refuses([](Image& i) { i.cwd = "rel"; }));
  EXPECT_FALSE(refuses([](Image&) {}));
}

TEST(WpImage, Header) {
  Header h;
  h.data_len = 4 * 4096;
  h.meta_off = kDataEnd;
  h.meta_len = 1000;
  h.meta_hash = 42;
  auto b = encode_header(h);
  Header g;
  std::string why;
  EXPECT_EQ(decode_header(b, kDataEnd + 1000, &g, &why), 0) << why;
  EXPECT_EQ(g.meta_hash, 42u);
  EXPECT_EQ(decode_header(b, kDataEnd + 999, &g, &why), -EBADMSG);  // truncated file
  b[20] ^= 1;
  EXPECT_EQ(decode_header(b, kDataEnd + 1000, &g, &why), -EBADMSG);
  b = encode_header(h);
  b[0] = 'X';
  EXPECT_EQ(decode_header(b, kDataEnd + 1000, &g, &why), -EBADMSG);
  h.major = 2;
  b = encode_header(h);
  EXPECT_EQ(decode_header(b, kDataEnd + 1000, &g, &why), -EPROTO);
}

// Random corruption of the metadata (with the checksum out of the way, so the decoder itself
// is exercised): decode must refuse or produce something that re-encodes and re-validates.
TEST(WpImage, FuzzDecoder) {
  const std::vector<uint8_t> good = encode_meta(sample());
  std::mt19937_64 rng(12345);
  int refused = 0, accepted = 0;
  for (int iter = 0; iter < 20000; iter++) {
    std::vector<uint8_t> m = good;
    int kind = int(rng() % 4);
    if (kind == 0) {  // flip bits
      for (int k = 0, n = 1 + int(rng() % 8); k < n; k++) m[rng() % m.size()] ^= uint8_t(1u << (rng() % 8));
    } else if (kind == 1) {  // truncate
      m.resize(rng() % m.size());
    } else if (kind == 2) {  // overwrite a u64 with an extreme value
      size_t at = (rng() % (m.size() / 8)) * 8;
      uint64_t v = (rng() & 1) ? ~0ull : (1ull << (rng() % 64));
      std::memcpy(m.data() + at, &v, 8);
    } else {  // random garbage of random length
      m.resize(rng() % 4096);
      for (auto& c : m) c = uint8_t(rng());
    }
    Image out;
    std::string why;
    int e = decode_meta(m, kDataEnd, &out, &why);
    if (e) {
      EXPECT_EQ(e, -EBADMSG);
      EXPECT_FALSE(why.empty());
      refused++;
      continue;
    }
    accepted++;
    Image again;
    ASSERT_EQ(decode_meta(encode_meta(out), kDataEnd, &again, &why), 0) << why;
  }
  EXPECT_GT(refused, 10000);
  std::printf("fuzz: %d refused, %d accepted (harmless changes)\n", refused, accepted);
}

// SPDX-License-Identifier: MIT
// Whole-process image (tools/ckpt-tool/image.hpp): round trip, validation, and a fuzz of the
// "process" region decoder as restore reads it from a store, with random corruption and
// truncation: it must refuse (never crash, never read out of bounds) or return an image that
// passes the same validation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>

#include "image.hpp"
#include "store.hpp"

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
  a.runs = {{0, 4096}};
  img.vmas.push_back(a);
  Vma h;
  h.start = 0x500000;
  h.end = 0x521000;
  h.prot = PROT_READ | PROT_WRITE;
  h.runs = {{0, 8192}, {0x10000, 4096}};
  img.vmas.push_back(h);
  Vma s;
  s.start = 0x7ffd0000a000;
  s.end = 0x7ffd00010000;
  s.prot = PROT_READ | PROT_WRITE;
  s.growsdown = true;
  s.advice = kAdvNoHugepage | kAdvDontdump;
  img.vmas.push_back(s);
  img.vmas[1].advice = kAdvHugepage | kAdvWipeonfork;
  Fd f;
  f.fd = 1;
  f.kind = kFdRegular;
  f.flags = 01;
  f.pos = 99;
  f.file = {"/tmp/x/out", 5, 100, 1};
  img.fds.push_back(f);
  img.has_rlimits = true;
  for (int i = 0; i < kNlimits; i++) img.rlimits[i] = {uint64_t(i) * 100, ~0ull};
  img.rlimits[7] = {123, 456};  // RLIMIT_NOFILE
  std::vector<uint8_t> si(kSiginfo, 0);
  si[0] = 10;  // SIGUSR1, for thread 2
  img.threads[1].pending.push_back(si);
  si[0] = 34;  // SIGRTMIN, twice for the process
  img.shared_pending = {si, si};
  return img;
}

}  // namespace

// The bytes format 2.5 adds before the end marker when the image has no supplementary groups:
// 4 uids, 4 gids, the group count, 5 capability sets, nice, policy, priority, oom_score_adj.
// Format 2.8 adds, after them, coredump_filter, the timer slack and the affinity word count
// (the sample has no affinity): as27() drops them, making an image a 2.7 tool wrote.
constexpr long k28 = 3 * 8;
constexpr long k25 = 18 * 8 + k28;  // what follows 2.4's fields, up to the end marker
std::vector<uint8_t> as27(std::vector<uint8_t> m) {
  m.erase(m.end() - 8 - k28, m.end() - 8);
  return m;
}

TEST(WpImage, RoundTrip) {
  Image in = sample();
  std::vector<uint8_t> meta = encode_meta(in);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  EXPECT_EQ(out.pid, in.pid);
  EXPECT_EQ(out.cwd, in.cwd);
  ASSERT_EQ(out.threads.size(), 2u);
  EXPECT_EQ(out.threads[1].tid, 1235u);
  EXPECT_EQ(out.threads[0].xsave, in.threads[0].xsave);
  ASSERT_EQ(out.vmas.size(), 3u);
  EXPECT_EQ(out.vmas[0].file.path, "/usr/bin/prog");
  EXPECT_EQ(out.vmas[1].runs.size(), 2u);
  EXPECT_TRUE(out.vmas[2].growsdown);
  EXPECT_EQ(out.vmas[0].advice, 0u);
  EXPECT_EQ(out.vmas[1].advice, uint64_t(kAdvHugepage | kAdvWipeonfork));
  EXPECT_EQ(out.vmas[2].advice, uint64_t(kAdvNoHugepage | kAdvDontdump));
  EXPECT_EQ(out.actions[9].handler, 0x401234u);
  ASSERT_EQ(out.fds.size(), 1u);
  EXPECT_EQ(out.fds[0].pos, 99u);
  ASSERT_TRUE(out.has_rlimits);
  EXPECT_EQ(out.rlimits[7].cur, 123u);
  EXPECT_EQ(out.rlimits[7].max, 456u);
  EXPECT_EQ(out.rlimits[3].max, ~0ull);
  ASSERT_EQ(out.threads[1].pending.size(), 1u);
  EXPECT_EQ(out.threads[1].pending[0], in.threads[1].pending[0]);
  ASSERT_EQ(out.shared_pending.size(), 2u);
  EXPECT_EQ(out.shared_pending[1][0], 34);
  // The encoding is canonical.
  EXPECT_EQ(encode_meta(out), meta);
}

// A 2.0 image (written before resource limits were recorded) still decodes, without them; the
// same bytes read as 2.1 lack the limit count and are refused.
TEST(WpImage, Format20WithoutRlimits) {
  Image in = sample();
  in.has_rlimits = false;
  in.shared_pending.clear();
  for (auto& t : in.threads) t.pending.clear();
  // 2.1 ends with the limit count (0 here), one queued-signal count per thread (2) and the
  // process's (all 0 here); 2.2 then adds the mapping count and one madvise word per mapping
  // (3), 2.3 the two ITIMER_REAL words, 2.4 the personality and the prctl flags, then the end
  // marker: dropping those twelve is 2.0's layout.
  std::vector<uint8_t> meta = encode_meta(in);
  meta.erase(meta.end() - 104 - k25, meta.end() - 8);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why, 0), 0) << why;
  EXPECT_FALSE(out.has_rlimits);
  EXPECT_EQ(out.fds.size(), 1u);
  EXPECT_EQ(decode_meta(meta, &out, &why, 1), -EBADMSG);
}

// The madvise bits (and the descriptor kinds) 2.6 added round-trip, and are refused in an
// image that says it is 2.5 (which a 2.5 tool would call damaged): read only from 2.6 on.
TEST(WpImage, Format26AdviceBitsRoundTripAndAreRefusedIn25) {
  Image img = sample();
  img.vmas[1].advice |= kAdvSequential | kAdvMergeable | kAdvNoreserve;
  img.vmas[2].advice |= kAdvRandom;
  std::vector<uint8_t> meta = as27(encode_meta(img));
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why, 6), 0) << why;
  EXPECT_EQ(out.vmas[1].advice, uint64_t(kAdvHugepage | kAdvWipeonfork | kAdvSequential |
                                          kAdvMergeable | kAdvNoreserve));
  EXPECT_EQ(out.vmas[2].advice, uint64_t(kAdvNoHugepage | kAdvDontdump | kAdvRandom));
  EXPECT_EQ(decode_meta(meta, &out, &why, 5), -EBADMSG);
  meta = as27(encode_meta(sample()));
  EXPECT_EQ(decode_meta(meta, &out, &why, 5), 0) << why;
  img = sample();
  img.fds[0].kind = kFdDirectory;  // directory and O_PATH descriptors: 2.6 too
  meta = as27(encode_meta(img));
  EXPECT_EQ(decode_meta(meta, &out, &why, 6), 0) << why;
  EXPECT_EQ(decode_meta(meta, &out, &why, 5), -EBADMSG);
}

// A read-only shared file mapping (2.7) round-trips with its file and no pages, and is refused
// in an image that says it is 2.6, written, with pages, or with MAP_NORESERVE.
TEST(WpImage, Format27SharedFileMapping) {
  Image img = sample();
  img.vmas[0].kind = kSharedFile;
  img.vmas[0].prot = PROT_READ;
  img.vmas[0].pgoff = 0x2000;
  img.vmas[0].runs.clear();
  std::vector<uint8_t> meta = as27(encode_meta(img));
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why, 7), 0) << why;
  EXPECT_EQ(out.vmas[0].kind, uint64_t(kSharedFile));
  EXPECT_EQ(out.vmas[0].file.path, "/usr/bin/prog");
  EXPECT_EQ(out.vmas[0].file.ino, 77u);
  EXPECT_EQ(out.vmas[0].pgoff, 0x2000u);
  EXPECT_TRUE(out.vmas[0].runs.empty());
  EXPECT_EQ(as27(encode_meta(out)), meta);
  EXPECT_EQ(decode_meta(meta, &out, &why, 6), -EBADMSG);
  auto refuses = [&](auto mutate) {
    Image i = img;
    mutate(i);
    return decode_meta(as27(encode_meta(i)), &out, &why, 7) == -EBADMSG;
  };
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].prot |= PROT_WRITE; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].runs = {{0, 4096}}; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].advice = kAdvNoreserve; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].pgoff = 0x800; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].kind = kSharedFile + 1; }));
  EXPECT_FALSE(refuses([](Image& i) { i.vmas[0].advice = kAdvRandom; }));
}

// 2.8: the process group or session it leads, coredump_filter, timer slack and CPU affinity
// round-trip; a 2.7 image has none of them (has_attrs false) and may not carry the leader bits.
TEST(WpImage, Format28AttrsRoundTripAndAre27Free) {
  Image img = sample();
  img.task_flags = kTaskSessionLeader | kTaskNoNewPrivs;
  img.coredump_filter = 0x17;
  img.timer_slack_ns = 1234567;
  img.affinity = {0, 1ull << 3};  // CPU 67
  std::vector<uint8_t> meta = encode_meta(img);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  EXPECT_TRUE(out.has_attrs);
  EXPECT_EQ(out.task_flags, uint64_t(kTaskSessionLeader | kTaskNoNewPrivs));
  EXPECT_EQ(out.coredump_filter, 0x17u);
  EXPECT_EQ(out.timer_slack_ns, 1234567u);
  EXPECT_EQ(out.affinity, img.affinity);
  EXPECT_EQ(encode_meta(out), meta);
  ASSERT_EQ(decode_meta(as27(encode_meta(sample())), &out, &why, 7), 0) << why;
  EXPECT_FALSE(out.has_attrs);
  img = sample();
  img.task_flags = kTaskPgrpLeader;
  EXPECT_EQ(decode_meta(as27(encode_meta(img)), &out, &why, 7), -EBADMSG);
  auto refuses = [&](auto mutate) {
    Image i = sample();
    mutate(i);
    return decode_meta(encode_meta(i), &out, &why) == -EBADMSG;
  };
  EXPECT_TRUE(refuses([](Image& i) { i.task_flags = kTaskPgrpLeader | kTaskSessionLeader; }));
  EXPECT_TRUE(refuses([](Image& i) { i.coredump_filter = 0x200; }));
  EXPECT_TRUE(refuses([](Image& i) { i.affinity = {0}; }));             // no CPU at all
  EXPECT_TRUE(refuses([](Image& i) { i.affinity.assign(17, 1); }));     // beyond 1024 CPUs
  EXPECT_TRUE(refuses([](Image& i) { i.timer_slack_ns = ~0ull; }));
  EXPECT_FALSE(refuses([](Image& i) { i.affinity = {1}; i.task_flags = kTaskPgrpLeader; }));
}

// A 2.1 image (before the madvise state) decodes with no advice on any mapping; the same
// bytes read as 2.2 lack the madvise words and are refused.
TEST(WpImage, Format21WithoutAdvice) {
  std::vector<uint8_t> meta = encode_meta(sample());
  meta.erase(meta.end() - 72 - k25, meta.end() - 8);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why, 1), 0) << why;
  ASSERT_EQ(out.vmas.size(), 3u);
  for (const auto& v : out.vmas) EXPECT_EQ(v.advice, 0u);
  EXPECT_TRUE(out.has_rlimits);
  EXPECT_EQ(decode_meta(meta, &out, &why, 2), -EBADMSG);
}

// ITIMER_REAL (2.3) round-trips; a 2.2 image (without it) decodes with the timer disarmed,
// and the same bytes read as 2.3 lack the two words and are refused.
TEST(WpImage, Format22WithoutItimerAndItimerRoundTrip) {
  Image in = sample();
  in.itimer_real_ns = 1500000000;
  in.itimer_real_interval_ns = 20000000;
  std::vector<uint8_t> meta = encode_meta(in);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  EXPECT_EQ(out.itimer_real_ns, 1500000000u);
  EXPECT_EQ(out.itimer_real_interval_ns, 20000000u);
  meta.erase(meta.end() - 40 - k25, meta.end() - 8);
  ASSERT_EQ(decode_meta(meta, &out, &why, 2), 0) << why;
  EXPECT_EQ(out.itimer_real_ns, 0u);
  EXPECT_EQ(out.itimer_real_interval_ns, 0u);
  EXPECT_EQ(decode_meta(meta, &out, &why, 3), -EBADMSG);
}

// The personality and prctl state (2.4) round-trip; a 2.3 image (without them) decodes with
// has_task_state false (restore then leaves the restorer's own), and the same bytes read as 2.4
// lack the two words and are refused.
TEST(WpImage, Format23WithoutTaskStateAndTaskStateRoundTrip) {
  Image in = sample();
  in.personality = 0x0040000;  // ADDR_NO_RANDOMIZE
  in.task_flags = kTaskNoNewPrivs | kTaskThpDisable;
  std::vector<uint8_t> meta = encode_meta(in);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  EXPECT_TRUE(out.has_task_state);
  EXPECT_EQ(out.personality, 0x0040000u);
  EXPECT_EQ(out.task_flags, kTaskNoNewPrivs | kTaskThpDisable);
  meta.erase(meta.end() - 24 - k25, meta.end() - 8);
  ASSERT_EQ(decode_meta(meta, &out, &why, 3), 0) << why;
  EXPECT_FALSE(out.has_task_state);
  EXPECT_EQ(out.task_flags, 0u);
  EXPECT_EQ(decode_meta(meta, &out, &why, 4), -EBADMSG);
}

// Credentials, scheduling and oom_score_adj (2.5) round-trip; a 2.4 image (without them)
// decodes with has_creds false (restore then runs it as the caller, with its own scheduling),
// and the same bytes read as 2.5 lack them and are refused.
TEST(WpImage, Format24WithoutCredsAndCredsRoundTrip) {
  Image in = sample();
  in.creds.uid[0] = 1000, in.creds.uid[1] = 1001, in.creds.uid[2] = 1002, in.creds.uid[3] = 1001;
  in.creds.gid[0] = in.creds.gid[1] = in.creds.gid[2] = in.creds.gid[3] = 100;
  in.creds.groups = {4, 24, 24, 27};  // the kernel keeps duplicates, sorted
  in.creds.cap_prm = in.creds.cap_eff = 1ull << 21;
  in.creds.cap_inh = 1ull << 21;
  in.creds.cap_amb = 1ull << 21;
  in.creds.cap_bnd = kCapMask;
  in.nice = -3;
  in.sched_policy = 2;  // SCHED_RR
  in.sched_priority = 10;
  in.oom_score_adj = -500;
  std::vector<uint8_t> meta = encode_meta(in);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  EXPECT_TRUE(out.has_creds);
  EXPECT_TRUE(out.creds == in.creds);
  EXPECT_EQ(out.nice, -3);
  EXPECT_EQ(out.sched_policy, 2u);
  EXPECT_EQ(out.sched_priority, 10u);
  EXPECT_EQ(out.oom_score_adj, -500);
  EXPECT_EQ(encode_meta(out), meta);
  meta.erase(meta.end() - 8 - k25 - 4 * 8, meta.end() - 8);  // 4 groups
  ASSERT_EQ(decode_meta(meta, &out, &why, 4), 0) << why;
  EXPECT_FALSE(out.has_creds);
  EXPECT_EQ(out.nice, 0);
  EXPECT_EQ(decode_meta(meta, &out, &why, 5), -EBADMSG);
}

// 2.9: eventfd, signalfd and timerfd descriptors round-trip with their state (no file); an
// image that says it is 2.8 may not hold them, and what the kernel would refuse is refused.
Image with_event_fds() {
  Image img = sample();
  Fd e;
  e.fd = 4;
  e.kind = kFdEventfd;
  e.flags = O_RDWR | O_NONBLOCK;
  e.cloexec = true;
  e.count = 0x123456789ull;  // above 32 bits: eventfd2's initval could not hold it
  e.semaphore = true;
  Fd s;
  s.fd = 5;
  s.kind = kFdSignalfd;
  s.flags = O_RDWR;
  s.sigmask = (1ull << (SIGUSR1 - 1)) | (1ull << (SIGRTMIN - 1));
  Fd t;
  t.fd = 6;
  t.kind = kFdTimerfd;
  t.flags = O_RDWR;
  t.clock = CLOCK_REALTIME;
  t.timer_flags = kTimerAbstime | kTimerCancelOnSet;
  t.count = 3;
  t.value_ns = 1500000000;
  t.interval_ns = 20000000;
  img.fds.push_back(e);
  img.fds.push_back(s);
  img.fds.push_back(t);
  return img;
}

TEST(WpImage, Format29EventDescriptors) {
  Image img = with_event_fds();
  std::vector<uint8_t> meta = encode_meta(img);
  Image out;
  std::string why;
  ASSERT_EQ(decode_meta(meta, &out, &why), 0) << why;
  ASSERT_EQ(out.fds.size(), 4u);
  const Fd &e = out.fds[1], &s = out.fds[2], &t = out.fds[3];
  EXPECT_EQ(e.kind, uint64_t(kFdEventfd));
  EXPECT_EQ(e.flags, uint64_t(O_RDWR | O_NONBLOCK));
  EXPECT_TRUE(e.cloexec);
  EXPECT_EQ(e.count, 0x123456789ull);
  EXPECT_TRUE(e.semaphore);
  EXPECT_TRUE(e.file.path.empty());
  EXPECT_EQ(s.kind, uint64_t(kFdSignalfd));
  EXPECT_EQ(s.sigmask, img.fds[2].sigmask);
  EXPECT_EQ(t.kind, uint64_t(kFdTimerfd));
  EXPECT_EQ(t.clock, uint64_t(CLOCK_REALTIME));
  EXPECT_EQ(t.timer_flags, kTimerAbstime | kTimerCancelOnSet);
  EXPECT_EQ(t.count, 3u);
  EXPECT_EQ(t.value_ns, 1500000000u);
  EXPECT_EQ(t.interval_ns, 20000000u);
  EXPECT_EQ(encode_meta(out), meta);
  // Older minors: the same bytes are not an image a 2.8 tool wrote (no such kinds then), and
  // a 2.8 image without them still decodes as 2.8.
  EXPECT_EQ(decode_meta(meta, &out, &why, 8), -EBADMSG);
  EXPECT_NE(why.find("file descriptor fields"), std::string::npos) << why;
  ASSERT_EQ(decode_meta(encode_meta(sample()), &out, &why, 8), 0) << why;
  auto refuses = [&](auto mutate) {
    Image i = with_event_fds();
    mutate(i);
    return decode_meta(encode_meta(i), &out, &why) == -EBADMSG;
  };
  EXPECT_TRUE(refuses([](Image& i) { i.fds[1].count = ~0ull; }));  // eventfd's maximum is 2^64-2
  EXPECT_FALSE(refuses([](Image& i) { i.fds[1].count = ~0ull - 1; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[1].flags = O_RDONLY; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[1].flags |= O_APPEND; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[1].pos = 8; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[2].sigmask |= 1ull << (SIGKILL - 1); }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[2].sigmask |= 1ull << (SIGSTOP - 1); }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].clock = CLOCK_PROCESS_CPUTIME_ID; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].clock = 1ull << 32; }));
  EXPECT_FALSE(refuses([](Image& i) { i.fds[3].clock = CLOCK_BOOTTIME_ALARM; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].timer_flags = 4; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].value_ns = kMaxTimerNs + 1; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].interval_ns = ~0ull; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].count = 1ull << 63; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[3].kind = kFdTimerfd + 1; }));  // unknown kind
  // A damaged semaphore word: the encoder writes 0 or 1.
  std::vector<uint8_t> bad = encode_meta(with_event_fds());
  Image ok;
  ASSERT_EQ(decode_meta(bad, &ok, &why), 0) << why;
  // Find the eventfd's record (fd 4, kind 5, flags, pos 0, cloexec 1, count, semaphore 1).
  const uint64_t rec[] = {4, kFdEventfd, uint64_t(O_RDWR | O_NONBLOCK), 0, 1, 0x123456789ull, 1};
  std::vector<uint8_t> needle;
  for (uint64_t v : rec)
    for (int b = 0; b < 8; b++) needle.push_back(uint8_t(v >> (8 * b)));
  auto at = std::search(bad.begin(), bad.end(), needle.begin(), needle.end());
  ASSERT_NE(at, bad.end());
  at[6 * 8] = 2;
  EXPECT_EQ(decode_meta(bad, &out, &why), -EBADMSG);
  EXPECT_NE(why.find("eventfd"), std::string::npos) << why;
  // Cut inside the timerfd's record (its last word, the interval, is 20000000).
  bad = encode_meta(with_event_fds());
  needle.clear();
  for (uint64_t v : {uint64_t(1500000000), uint64_t(20000000)})
    for (int b = 0; b < 8; b++) needle.push_back(uint8_t(v >> (8 * b)));
  at = std::search(bad.begin(), bad.end(), needle.begin(), needle.end());
  ASSERT_NE(at, bad.end());
  std::vector<uint8_t> cut(bad.begin(), at + 12);
  EXPECT_EQ(decode_meta(cut, &out, &why), -EBADMSG);
  EXPECT_NE(why.find("truncated"), std::string::npos) << why;
}

// An image of a newer minor version (a newer tool's fields) is refused as such, not as damage.
TEST(WpImage, NewerMinorVersionIsRefusedClearly) {
  std::vector<uint8_t> b = encode_process(sample());
  b[12] = uint8_t(kVersionMinor + 1);  // the minor: high 32 bits of the version word
  Image out;
  std::string why;
  EXPECT_EQ(decode_process(b, &out, &why), -EPROTO);
  EXPECT_NE(why.find("newer than this ckpt-tool"), std::string::npos) << why;
  b[12] = uint8_t(kVersionMinor);
  EXPECT_EQ(decode_process(b, &out, &why), 0) << why;
}

TEST(WpImage, RefusesWhatRestoreCannotUse) {
  std::string why;
  Image out;
  auto refuses = [&](auto mutate) {
    Image img = sample();
    mutate(img);
    return decode_meta(encode_meta(img), &out, &why) == -EBADMSG;
  };
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].regs.cs = 0x23; }));
  EXPECT_TRUE(refuses([](Image& i) { i.itimer_real_ns = ~0ull; }));
  EXPECT_TRUE(refuses([](Image& i) { i.itimer_real_interval_ns = ~0ull; }));
  EXPECT_FALSE(refuses([](Image& i) { i.itimer_real_interval_ns = 1000; }));  // fired, pending
  EXPECT_TRUE(refuses([](Image& i) { i.rlimits[2] = {2, 1}; }));  // soft above hard
  EXPECT_TRUE(refuses([](Image& i) { i.shared_pending[0][0] = 9; }));     // SIGKILL queued
  EXPECT_TRUE(refuses([](Image& i) { i.shared_pending[0].resize(64); }));  // short siginfo
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].regs.ip = 1ull << 63; }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave.resize(100); }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave[520] = 1; }));  // XCOMP_BV
  EXPECT_TRUE(refuses([](Image& i) { i.threads[0].xsave[27] = 1; }));   // MXCSR reserved
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].start = 0x400800; }));   // unaligned / overlap
  EXPECT_TRUE(refuses([](Image& i) { std::swap(i.vmas[0], i.vmas[1]); }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].offset = 0x21000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].offset = 0x1000; }));  // overlaps run 0
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].len = 0; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].runs[1].len = 0x800; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[2].end = 0x800000000000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[2].start = 0x7ffd00101000; i.vmas[2].end = 0x7ffd00102000; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].file.path = "relative"; }));
  EXPECT_TRUE(refuses([](Image& i) { i.threads.clear(); }));
  EXPECT_TRUE(refuses([](Image& i) { i.brk = i.start_brk - 1; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[0].kind = 0; i.fds[0].fd = 5; }));
  EXPECT_TRUE(refuses([](Image& i) { i.cwd = "rel"; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].advice = kAdvHugepage | kAdvNoHugepage; }));
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].advice = 1 << 9; }));        // unknown bit
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[1].advice = kAdvSequential | kAdvRandom; }));
  EXPECT_FALSE(refuses([](Image& i) { i.vmas[1].advice = kAdvRandom; }));
  EXPECT_FALSE(refuses([](Image& i) { i.fds[0].kind = kFdDirectory; }));
  EXPECT_FALSE(refuses([](Image& i) { i.fds[0].kind = kFdPath; }));
  EXPECT_TRUE(refuses([](Image& i) { i.fds[0].kind = kFdPath + 1; }));  // unknown kind
  EXPECT_TRUE(refuses([](Image& i) { i.vmas[0].advice = kAdvWipeonfork; }));  // file mapping
  EXPECT_TRUE(refuses([](Image& i) { i.personality = 0xffffffff; }));  // personality()'s query
  EXPECT_TRUE(refuses([](Image& i) { i.task_flags = 16; }));            // unknown bit
  EXPECT_TRUE(refuses([](Image& i) { i.creds.uid[1] = 0xffffffff; }));  // (uid_t)-1
  EXPECT_TRUE(refuses([](Image& i) { i.creds.groups = {5, 4}; }));      // not sorted
  EXPECT_TRUE(refuses([](Image& i) { i.creds.cap_bnd = 1ull << 50; }));  // no such capability
  EXPECT_TRUE(refuses([](Image& i) { i.creds.cap_eff = 1; }));          // effective, not permitted
  EXPECT_TRUE(refuses([](Image& i) { i.creds.cap_prm = 1; i.creds.cap_amb = 1; }));  // not inheritable
  EXPECT_TRUE(refuses([](Image& i) { i.nice = -21; }));
  EXPECT_TRUE(refuses([](Image& i) { i.nice = 20; }));
  EXPECT_TRUE(refuses([](Image& i) { i.sched_policy = 6; }));           // SCHED_DEADLINE
  EXPECT_TRUE(refuses([](Image& i) { i.sched_policy = 1; }));           // FIFO, priority 0
  EXPECT_TRUE(refuses([](Image& i) { i.sched_priority = 5; }));         // OTHER with a priority
  EXPECT_TRUE(refuses([](Image& i) { i.oom_score_adj = 1001; }));
  EXPECT_FALSE(refuses([](Image& i) { i.sched_policy = 1; i.sched_priority = 99; i.nice = -20; }));
  EXPECT_FALSE(refuses([](Image&) {}));
}

TEST(WpImage, ProcessRegion) {
  std::vector<uint8_t> b = encode_process(sample());
  ASSERT_EQ(b.size() % kPage, 0u);
  Image out;
  std::string why;
  EXPECT_EQ(decode_process(b, &out, &why), 0) << why;
  EXPECT_EQ(out.vmas.size(), 3u);
  std::vector<uint8_t> c = b;
  c[0] = 'X';
  EXPECT_EQ(decode_process(c, &out, &why), -ENODATA);
  c = b;
  c[8] = 1;  // format version 1: the old standalone image file
  EXPECT_EQ(decode_process(c, &out, &why), -EPROTO);
  c = b;
  c[16 + 7] = 1;  // metadata longer than its region
  EXPECT_EQ(decode_process(c, &out, &why), -EBADMSG);
  c.assign(b.begin(), b.begin() + 20);
  EXPECT_EQ(decode_process(c, &out, &why), -ENODATA);
  EXPECT_EQ(vma_region(0x7ffd0000a000), "vma:7ffd0000a000");
}

// Random corruption of the metadata, written into a real store and read back the way restore
// reads it (the store's checksums are valid: the corruption is what a buggy or hostile writer
// committed, so the decoder itself is exercised): decode must refuse or produce something that
// re-encodes and re-validates.
TEST(WpImage, FuzzDecoderThroughStore) {
  char dir[] = "/tmp/wp-image-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/store";
  std::unique_ptr<ckpt::store::Store> st;
  ckpt::store::Options o;
  ASSERT_EQ(ckpt::store::Store::open(path, o, &st), 0);
  const std::vector<uint8_t> good = encode_process(sample());
  const size_t meta_len = good.size();
  uint32_t id = 0;
  ASSERT_EQ(st->define_region(kProcessRegion, meta_len + kPage, &id), 0);
  std::mt19937_64 rng(12345);
  int refused = 0, accepted = 0;
  for (int iter = 0; iter < 3000; iter++) {
    std::vector<uint8_t> m = good;
    m.resize(meta_len + kPage, 0);
    uint64_t n = meta_len - kProcessHeader;  // the real metadata length
    std::memcpy(&n, good.data() + 16, 8);
    int kind = int(rng() % 5);
    if (kind == 0) {  // flip bits in the metadata
      for (int k = 0, j = 1 + int(rng() % 8); k < j; k++)
        m[kProcessHeader + rng() % n] ^= uint8_t(1u << (rng() % 8));
    } else if (kind == 1) {  // a shorter declared length: truncated metadata
      uint64_t t = rng() % n;
      std::memcpy(m.data() + 16, &t, 8);
    } else if (kind == 2) {  // overwrite a u64 with an extreme value
      size_t at = kProcessHeader + (rng() % (n / 8)) * 8;
      uint64_t v = (rng() & 1) ? ~0ull : (1ull << (rng() % 64));
      std::memcpy(m.data() + at, &v, 8);
    } else if (kind == 3) {  // a length beyond the region, or huge
      uint64_t t = (rng() & 1) ? ~0ull : m.size() - kProcessHeader + 1 + rng() % 100000;
      std::memcpy(m.data() + 16, &t, 8);
    } else {  // random garbage after a valid header
      for (size_t k = kProcessHeader; k < m.size(); k++) m[k] = uint8_t(rng());
      uint64_t t = rng() % (m.size() - kProcessHeader);
      std::memcpy(m.data() + 16, &t, 8);
    }
    std::unique_ptr<ckpt::store::Txn> txn;
    ASSERT_EQ(st->begin(&txn), 0);
    for (size_t k = 0; k < m.size() / kPage; k++)
      ASSERT_EQ(txn->put_page(id, k, m.data() + k * kPage), 0);
    ASSERT_EQ(txn->commit(), 0);
    std::vector<uint8_t> back(m.size());
    ckpt::store::ReadReport rep;
    ASSERT_EQ(st->read_region(id, back.data(), back.size(), &rep), 0);
    ASSERT_EQ(back, m);
    Image out;
    std::string why;
    int e = decode_process(back, &out, &why);
    if (e) {
      EXPECT_EQ(e, -EBADMSG) << why;
      EXPECT_FALSE(why.empty());
      refused++;
      continue;
    }
    accepted++;
    Image again;
    ASSERT_EQ(decode_process(encode_process(out), &again, &why), 0) << why;
  }
  st.reset();
  unlink(path.c_str());
  rmdir(dir);
  EXPECT_GT(refused, 1500);
  std::printf("fuzz: %d refused, %d accepted (harmless changes)\n", refused, accepted);
}

// The decoder alone, many more cases (no store round trip).
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
    int e = decode_meta(m, &out, &why);
    if (e) {
      EXPECT_EQ(e, -EBADMSG);
      EXPECT_FALSE(why.empty());
      refused++;
      continue;
    }
    accepted++;
    Image again;
    ASSERT_EQ(decode_meta(encode_meta(out), &again, &why), 0) << why;
  }
  EXPECT_GT(refused, 10000);
  std::printf("fuzz: %d refused, %d accepted (harmless changes)\n", refused, accepted);
}

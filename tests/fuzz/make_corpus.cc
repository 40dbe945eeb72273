// SPDX-License-Identifier: MIT
// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/{store,image}), committed; run
// again only when a format changes:
//   cmake --build build/cmake --target fuzz_make_corpus && build/cmake/fuzz/make_corpus tests/fuzz/corpus
// store: a small file store, two epochs, two regions, the zero tail trimmed. image: "process"
// regions of a two-thread process with every kind of mapping and descriptor, credentials and
// scheduling (the current format), and a one-thread one-mapping minimal one.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "image.hpp"
#include "store.hpp"

using namespace ckpt_tool::image;

namespace {

void save(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

Thread thread(uint64_t tid) {
  Thread t;
  t.tid = tid;
  t.regs.cs = 0x33;
  t.regs.ss = 0x2b;
  t.regs.ip = 0x400100;
  t.regs.sp = 0x7ffd0000e000;
  t.regs.fs_base = 0x7f0000001000;
  t.xsave.assign(832, 0);
  t.xsave[24] = 0x80;  // MXCSR 0x1f80
  t.xsave[25] = 0x1f;
  t.xsave[512] = 3;  // XSTATE_BV x87|SSE
  return t;
}

Image minimal() {
  Image img;
  img.pid = 42;
  img.comm = "a";
  img.cwd = "/";
  img.exe = "/a";
  img.threads.push_back(thread(42));
  Vma v;
  v.start = 0x10000;
  v.end = 0x11000;
  v.prot = PROT_READ | PROT_WRITE;
  v.runs = {{0, 4096}};
  img.vmas.push_back(v);
  img.has_creds = true;
  return img;
}

Image full() {
  Image img = minimal();
  img.pid = 1234;
  img.comm = "prog";
  img.cwd = "/tmp/x";
  img.exe = "/usr/bin/prog";
  img.start_code = 0x400000;
  img.end_code = 0x401000;
  img.start_brk = 0x500000;
  img.brk = 0x521000;
  img.actions[9] = {0x401234, 0x04000004, 0x401000, 1 << 2};
  img.vvar_start = 0x7ffd00100000;
  img.vdso_start = 0x7ffd00104000;
  img.vdso_end = 0x7ffd00106000;
  img.threads = {thread(1234), thread(1240)};
  img.threads[1].rseq = 0x7f0000002000;
  img.threads[1].pending.push_back(std::vector<uint8_t>(kSiginfo, 0));
  img.threads[1].pending.back()[0] = 10;  // SIGUSR1
  img.vmas.clear();
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
  h.advice = kAdvHugepage | kAdvWipeonfork;
  img.vmas.push_back(h);
  Vma s;
  s.start = 0x7f0000000000;
  s.end = 0x7f0000004000;
  s.prot = PROT_READ | PROT_WRITE;
  s.kind = kSharedAnon;
  s.runs = {{0, 0x4000}};
  img.vmas.push_back(s);
  Fd in, reg, dev, ev, sig, tim;
  in.fd = 0;
  reg.fd = 3;
  reg.kind = kFdRegular;
  reg.pos = 100;
  reg.flags = 02;
  reg.file = {"/tmp/x/out", 5, 100, 9};
  dev.fd = 4;
  dev.kind = kFdDevice;
  dev.file = {"/dev/null", 0, 0, 0};
  ev.fd = 5;  // 2.9: the event descriptors
  ev.kind = kFdEventfd;
  ev.flags = 02;
  ev.count = 7;
  ev.semaphore = true;
  sig.fd = 6;
  sig.kind = kFdSignalfd;
  sig.flags = 02 | 04000;  // O_NONBLOCK
  sig.sigmask = 1ull << 9;  // SIGUSR1
  tim.fd = 7;
  tim.kind = kFdTimerfd;
  tim.flags = 02;
  tim.clock = 1;  // CLOCK_MONOTONIC
  tim.count = 2;
  tim.value_ns = 5000000;
  tim.interval_ns = 10000000;
  img.fds = {in, reg, dev, ev, sig, tim};
  img.has_rlimits = true;
  for (auto& r : img.rlimits) r = {1024, 4096};
  img.itimer_real_ns = 1000000;
  img.personality = 0x0040000;
  img.task_flags = kTaskNoNewPrivs;
  img.creds.uid[0] = img.creds.uid[1] = img.creds.uid[2] = img.creds.uid[3] = 1000;
  img.creds.gid[0] = img.creds.gid[1] = img.creds.gid[2] = img.creds.gid[3] = 1000;
  img.creds.groups = {4, 24, 1000};
  img.creds.cap_bnd = kCapMask;
  img.nice = 5;
  img.sched_policy = 3;  // SCHED_BATCH
  img.oom_score_adj = 300;
  return img;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  save(dir + "/image/full", encode_process(full()));
  save(dir + "/image/minimal", encode_process(minimal()));

  const std::string path = dir + "/store/.tmp-store";
  unlink(path.c_str());
  {
    std::unique_ptr<ckpt::store::Store> st;
    ckpt::store::Options o;
    if (ckpt::store::Store::open(path, o, &st)) return 1;
    std::vector<uint8_t> page(4096, 0x5a);
    for (int e = 0; e < 2; e++) {
      uint32_t r1 = 0, r2 = 0;
      if (e == 0 && (st->define_region("a", 2 * 4096, &r1) || st->define_region("b", 4096, &r2)))
        return 1;
      std::unique_ptr<ckpt::store::Txn> t;
      if (st->begin(&t)) return 1;
      for (const auto& r : st->regions()) t->put_page(r.id, 0, page.data());
      page[0]++;
      if (t->commit()) return 1;
    }
  }
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  unlink(path.c_str());
  while (b.size() > 4096 && std::all_of(b.end() - 4096, b.end(), [](uint8_t c) { return !c; }))
    b.resize(b.size() - 4096);
  save(dir + "/store/two-epochs", b);
  std::printf("corpus written to %s (store %zu bytes)\n", dir.c_str(), b.size());
  return 0;
}

// SPDX-License-Identifier: MIT
// ckpt-tool dump, capture: the threads. Registers and XSAVE state through ptrace (arch_*.cpp);
// what only the kernel knows (signal handlers, sigaltstack, clear_child_tid, robust list, rseq,
// brk, timers) from ckpt.ko's CKPT_IOC_DUMP_TASK, so no code is injected into the target; the
// queued signals with PTRACE_PEEKSIGINFO, left queued.
#include <linux/ckpt.h>
#include <signal.h>
#include <sys/ptrace.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "arch.hpp"
#include "ckptdev.hpp"
#include "cmd.hpp"
#include "dump.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump {
namespace {

using namespace image;

void read_thread(int tid, int ckpt_fd, uint64_t features, Image* img, Thread* t) {
  arch::capture_regs(tid, t);
  ckpt_sigaction acts[CKPT_NSIG];
  ckpt_dump_task d{};
  d.pid = uint64_t(tid);
  d.actions = uint64_t(uintptr_t(acts));
  // The process's timers, once (the thread group leader comes first), and the process state
  // only the process itself can read, from a module that has them.
  if (t == &img->threads.front()) {
    if (features & CKPT_FEATURE_DUMP_TIMERS) d.flags |= CKPT_DUMP_TIMERS;
    if (features & CKPT_FEATURE_DUMP_PROCESS) d.flags |= CKPT_DUMP_PROCESS;
  }
  int rc = ckptdev::dump_task(ckpt_fd, &d);
  if (rc < 0) throw Error{kFailed, std::string("ckpt.ko DUMP_TASK: ") + strerror(-rc)};
  if (d.process & CKPT_PROCESS_CHILD_SUBREAPER) refuse::child_subreaper();
  if (const uint64_t no = d.timers & (CKPT_TIMER_VIRTUAL | CKPT_TIMER_PROF | CKPT_TIMER_POSIX))
    refuse::timers(no);
  if (d.flags & CKPT_DUMP_TIMERS) {
    img->itimer_real_ns = d.itimer_real_ns;
    img->itimer_real_interval_ns = d.itimer_real_interval_ns;
  }
  for (int i = 0; i < kNsig; i++)
    img->actions[i] = {acts[i].handler, acts[i].flags, acts[i].restorer, acts[i].mask};
  t->sigmask = d.blocked;
  t->clear_child_tid = d.clear_child_tid;
  t->robust_list = d.robust_list;
  t->sas_sp = d.sas_ss_sp;
  t->sas_size = d.sas_ss_size;
  t->sas_flags = d.sas_ss_flags;
  t->rseq = d.rseq;
  t->rseq_sig = d.rseq_sig;
  img->start_brk = d.start_brk;
  img->brk = d.brk;
  t->pending = peek_signals(tid, 0);
}

}  // namespace

// Oldest first, without dequeuing them: a traced thread in a ptrace stop.
std::vector<std::vector<uint8_t>> peek_signals(int tid, unsigned flags) {
  std::vector<std::vector<uint8_t>> out;
  struct {
    uint64_t off;
    uint32_t flags;
    int32_t nr;
  } args{0, flags, 64};
  static_assert(sizeof(siginfo_t) == kSiginfo);
  siginfo_t buf[64];
  for (;;) {
    long n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, buf);
    if (n < 0) throw Error{kFailed, std::string("ptrace(PEEKSIGINFO): ") + strerror(errno)};
    for (long i = 0; i < n; i++) {
      const auto* p = reinterpret_cast<const uint8_t*>(&buf[i]);
      out.emplace_back(p, p + kSiginfo);
    }
    if (n < args.nr) return out;
    args.off += uint64_t(n);
    if (out.size() > kMaxPending) throw Error{kFailed, "more than 65536 queued signals"};
  }
}

void capture_threads(const Seized& s, int ckpt_fd, uint64_t features, Image* img) {
  const int pid = s.pid();
  if (s.tids().size() > kMaxThreads) refuse::too_many_threads();
  // The thread group leader first: restore turns it into the main thread.
  std::vector<int> order = s.tids();
  std::stable_partition(order.begin(), order.end(), [pid](int x) { return x == pid; });
  if (order.empty() || order[0] != pid) throw Error{kFailed, "the main thread has exited"};
  for (int tid : order) {
    img->threads.emplace_back();
    read_thread(tid, ckpt_fd, features, img, &img->threads.back());
  }
  img->shared_pending = peek_signals(pid, 1 /* PTRACE_PEEKSIGINFO_SHARED */);
}

}  // namespace ckpt_tool::dump

// SPDX-License-Identifier: MIT
// ckpt-tool: encoding and validation of the whole-process image (image.hpp).
#include "image.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace ckpt_tool::image {
namespace {

constexpr uint64_t kMetaMagic = 0x4154454d504b4331ULL;  // "1CKPMETA"
constexpr uint64_t kUserCs = 0x33, kUserDs = 0x2b;

class Writer {
 public:
  void u64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = uint8_t(v >> (8 * i));
    out_.insert(out_.end(), b, b + 8);
  }
  void bytes(const void* p, size_t n) {
    u64(n);
    const auto* c = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), c, c + n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

// Bounds-checked reader: after the first failure every read returns 0 / empty and ok() is false.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t left() const { return in_.size() - pos_; }
  const std::string& why() const { return why_; }
  bool fail(const std::string& why) {
    if (ok_) why_ = why;
    ok_ = false;
    return false;
  }
  uint64_t u64() {
    if (!ok_ || left() < 8) return fail("truncated metadata"), 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= uint64_t(in_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return v;
  }
  bool boolean() {
    uint64_t v = u64();
    if (v > 1) fail("bad boolean");
    return v == 1;
  }
  // A count of items each at least min_size bytes long, at most max.
  uint64_t count(size_t min_size, size_t max, const char* what) {
    uint64_t n = u64();
    if (ok_ && (n > max || n * min_size > left()))
      fail(std::string("implausible number of ") + what);
    return ok_ ? n : 0;
  }
  std::vector<uint8_t> bytes(size_t max) {
    uint64_t n = u64();
    if (!ok_) return {};
    if (n > max || n > left()) return fail("bad length"), std::vector<uint8_t>{};
    std::vector<uint8_t> v(in_.begin() + pos_, in_.begin() + pos_ + n);
    pos_ += n;
    return v;
  }
  std::string str() {
    auto v = bytes(kMaxString);
    std::string s(v.begin(), v.end());
    if (s.find('\0') != std::string::npos) fail("NUL in a string");
    return s;
  }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
  std::string why_;
};

bool aligned(uint64_t v) { return v % kPage == 0; }

void put_file(Writer& w, const FileId& f) {
  w.str(f.path);
  w.u64(f.ino);
  w.u64(f.size);
  w.u64(f.mtime_ns);
}

FileId get_file(Reader& r) {
  FileId f;
  f.path = r.str();
  f.ino = r.u64();
  f.size = r.u64();
  f.mtime_ns = r.u64();
  if (r.ok() && (f.path.empty() || f.path[0] != '/')) r.fail("file path is not absolute");
  return f;
}

void put_regs(Writer& w, const Regs& g) {
  const uint64_t* v = &g.r15;
  for (int i = 0; i < 27; i++) w.u64(v[i]);
}

void get_regs(Reader& r, Regs* g) {
  uint64_t* v = &g->r15;
  for (int i = 0; i < 27; i++) v[i] = r.u64();
  if (!r.ok()) return;
  if (g->cs != kUserCs || g->ss != kUserDs) r.fail("thread registers: not a 64-bit user context");
  else if ((g->ds && g->ds != kUserDs) || (g->es && g->es != kUserDs) || g->fs || g->gs)
    r.fail("thread registers: unexpected segment selectors");
  else if (g->ip >= kUserTop || g->fs_base >= kUserTop || g->gs_base >= kUserTop)
    r.fail("thread registers: address outside user space");
}

// The XSAVE header must be one XRSTOR accepts in standard form: no compaction, reserved zero.
bool xsave_ok(const std::vector<uint8_t>& x) {
  if (x.size() < kMinXsave) return false;
  uint32_t mxcsr;
  std::memcpy(&mxcsr, x.data() + 24, 4);
  if (mxcsr & 0xffff0000u) return false;
  for (size_t i = 512 + 8; i < 512 + 64; i++)
    if (x[i]) return false;
  return true;
}

}  // namespace

uint64_t hash(const void* p, size_t n, uint64_t seed) { return XXH64(p, n, seed); }

std::vector<uint8_t> encode_meta(const Image& img) {
  Writer w;
  w.u64(kMetaMagic);
  w.u64(img.pid);
  w.str(img.comm);
  w.str(img.cwd);
  w.str(img.exe);
  w.u64(img.umask);
  for (uint64_t v : {img.start_code, img.end_code, img.start_data, img.end_data, img.start_brk,
                     img.brk, img.start_stack, img.arg_start, img.arg_end, img.env_start,
                     img.env_end})
    w.u64(v);
  for (const auto& a : img.actions) {
    w.u64(a.handler);
    w.u64(a.flags);
    w.u64(a.restorer);
    w.u64(a.mask);
  }
  w.u64(img.vvar_start);
  w.u64(img.vdso_start);
  w.u64(img.vdso_end);
  w.u64(img.vdso_hash);
  w.u64(img.threads.size());
  for (const auto& t : img.threads) {
    w.u64(t.tid);
    put_regs(w, t.regs);
    w.bytes(t.xsave.data(), t.xsave.size());
    for (uint64_t v : {t.sigmask, t.clear_child_tid, t.robust_list, t.sas_sp, t.sas_size,
                       t.sas_flags, t.rseq, t.rseq_sig})
      w.u64(v);
  }
  w.u64(img.vmas.size());
  for (const auto& v : img.vmas) {
    for (uint64_t x : {v.start, v.end, v.prot, v.kind, uint64_t(v.growsdown), v.pgoff}) w.u64(x);
    if (v.kind == kFile || v.kind == kSharedFile) put_file(w, v.file);
    w.u64(v.runs.size());
    for (const auto& r : v.runs) {
      w.u64(r.offset);
      w.u64(r.len);
    }
  }
  w.u64(img.fds.size());
  for (const auto& f : img.fds) {
    for (uint64_t x : {f.fd, f.kind, f.flags, f.pos, uint64_t(f.cloexec)}) w.u64(x);
    if (f.kind == kFdEventfd) {  // 2.9
      w.u64(f.count);
      w.u64(uint64_t(f.semaphore));
    } else if (f.kind == kFdSignalfd) {
      w.u64(f.sigmask);
    } else if (f.kind == kFdTimerfd) {
      for (uint64_t x : {f.clock, f.timer_flags, f.count, f.value_ns, f.interval_ns}) w.u64(x);
    } else if (f.kind != kFdInherit) {
      put_file(w, f.file);
    }
  }
  w.u64(img.has_rlimits ? kNlimits : 0);  // 2.1
  for (int i = 0; img.has_rlimits && i < kNlimits; i++) {
    w.u64(img.rlimits[i].cur);
    w.u64(img.rlimits[i].max);
  }
  auto queue = [&w](const std::vector<std::vector<uint8_t>>& q) {  // 2.1
    w.u64(q.size());
    for (const auto& si : q) w.bytes(si.data(), si.size());
  };
  for (const auto& t : img.threads) queue(t.pending);
  queue(img.shared_pending);
  w.u64(img.vmas.size());  // 2.2
  for (const auto& v : img.vmas) w.u64(v.advice);
  w.u64(img.itimer_real_ns);  // 2.3
  w.u64(img.itimer_real_interval_ns);
  w.u64(img.personality);  // 2.4 (an image always has it from 2.4 on)
  w.u64(img.task_flags);
  const Creds& c = img.creds;  // 2.5 (an image always has them from 2.5 on)
  for (uint64_t v : c.uid) w.u64(v);
  for (uint64_t v : c.gid) w.u64(v);
  w.u64(c.groups.size());
  for (uint64_t g : c.groups) w.u64(g);
  for (uint64_t v : {c.cap_inh, c.cap_prm, c.cap_eff, c.cap_bnd, c.cap_amb}) w.u64(v);
  w.u64(uint64_t(img.nice));
  w.u64(img.sched_policy);
  w.u64(img.sched_priority);
  w.u64(uint64_t(img.oom_score_adj));
  w.u64(img.coredump_filter);  // 2.8 (an image always has them from 2.8 on)
  w.u64(img.timer_slack_ns);
  w.u64(img.affinity.size());
  for (uint64_t v : img.affinity) w.u64(v);
  w.u64(kMetaMagic);
  return w.take();
}

namespace {

// decode_meta's parts, one a section of the metadata in the order encode_meta writes them.
// Each reads its section into *img and checks it; false once the Reader failed (r.why() says
// why: the first read or check that failed).

// The process: pid, names, umask, the mm's layout fields, signal actions, vdso and vvar.
bool get_process(Reader& r, Image* img) {
  img->pid = r.u64();
  img->comm = r.str();
  img->cwd = r.str();
  img->exe = r.str();
  img->umask = r.u64();
  if (r.ok() &&
      (img->pid == 0 || img->pid > (1u << 22) || img->umask > 0777 || img->comm.size() > 15))
    return r.fail("process fields out of range");
  if (r.ok() && (img->cwd.empty() || img->cwd[0] != '/')) return r.fail("cwd is not absolute");
  uint64_t* mm[] = {&img->start_code, &img->end_code,    &img->start_data, &img->end_data,
                    &img->start_brk,  &img->brk,         &img->start_stack, &img->arg_start,
                    &img->arg_end,    &img->env_start,   &img->env_end};
  for (auto* p : mm) *p = r.u64();
  for (auto* p : mm)
    if (r.ok() && *p >= kUserTop) return r.fail("mm field outside user space");
  if (r.ok() && (img->start_code > img->end_code || img->start_data > img->end_data ||
                 img->start_brk > img->brk || img->arg_start > img->arg_end ||
                 img->env_start > img->env_end))
    return r.fail("mm fields out of order");
  for (auto& a : img->actions) {
    a.handler = r.u64();
    a.flags = r.u64();
    a.restorer = r.u64();
    a.mask = r.u64();
    if (r.ok() && (a.handler >= kUserTop || a.restorer >= kUserTop || a.flags > 0xffffffffu))
      return r.fail("signal action out of range");
  }
  img->vvar_start = r.u64();
  img->vdso_start = r.u64();
  img->vdso_end = r.u64();
  img->vdso_hash = r.u64();
  if (r.ok() && (img->vvar_start || img->vdso_start || img->vdso_end)) {
    if (!aligned(img->vvar_start) || !aligned(img->vdso_start) || !aligned(img->vdso_end) ||
        img->vvar_start >= img->vdso_start || img->vdso_start >= img->vdso_end ||
        img->vdso_end > kUserTop || img->vdso_end - img->vvar_start > 64 * kPage)
      return r.fail("vdso/vvar placement");
  }
  return r.ok();
}

// The threads: at least one, each with its registers, XSAVE image and per-thread fields.
bool get_threads(Reader& r, Image* img) {
  uint64_t nt = r.count(8 * 40, kMaxThreads, "threads");
  if (r.ok() && nt == 0) return r.fail("no threads");
  for (uint64_t i = 0; i < nt && r.ok(); i++) {
    Thread t;
    t.tid = r.u64();
    get_regs(r, &t.regs);
    t.xsave = r.bytes(kMaxXsave);
    if (r.ok() && !xsave_ok(t.xsave)) return r.fail("thread FPU state is not a valid XSAVE image");
    for (uint64_t* p : {&t.sigmask, &t.clear_child_tid, &t.robust_list, &t.sas_sp, &t.sas_size,
                        &t.sas_flags, &t.rseq, &t.rseq_sig})
      *p = r.u64();
    if (r.ok() && (t.clear_child_tid >= kUserTop || t.robust_list >= kUserTop ||
                   t.sas_sp >= kUserTop || t.sas_size >= kUserTop || t.rseq >= kUserTop ||
                   (t.rseq % 32) || t.rseq_sig > 0xffffffffu || t.sas_flags > 0xffffffffu))
      return r.fail("thread fields out of range");
    img->threads.push_back(std::move(t));
  }
  return r.ok();
}

// One mapping's page runs: in order, inside the mapping, *total_runs (all mappings') bounded.
bool get_runs(Reader& r, Vma* v, uint64_t* total_runs) {
  uint64_t nr = r.count(16, kMaxRuns, "runs");
  *total_runs += nr;
  if (*total_runs > kMaxRuns) return r.fail("too many runs");
  uint64_t prev = 0;
  for (uint64_t k = 0; k < nr && r.ok(); k++) {
    Run run;
    run.offset = r.u64();
    run.len = r.u64();
    if (!r.ok()) break;
    if (!aligned(run.offset) || !aligned(run.len) || !run.len || run.offset < prev ||
        run.offset + run.len < run.offset || run.offset + run.len > v->end - v->start)
      return r.fail("page run outside its mapping");
    prev = run.offset + run.len;
    v->runs.push_back(run);
  }
  return r.ok();
}

// The mappings: at least one, in address order, none over the vdso, each with its runs.
bool get_mappings(Reader& r, Image* img, uint32_t minor) {
  uint64_t nv = r.count(8 * 8, kMaxVmas, "mappings");
  uint64_t prev_end = 0, total_runs = 0;
  for (uint64_t i = 0; i < nv && r.ok(); i++) {
    Vma v;
    v.start = r.u64();
    v.end = r.u64();
    v.prot = r.u64();
    v.kind = r.u64();
    uint64_t gd = r.u64();
    v.pgoff = r.u64();
    if (!r.ok()) break;
    if (!aligned(v.start) || !aligned(v.end) || v.start >= v.end || v.end > kUserTop ||
        v.start < prev_end)
      return r.fail("mapping bounds or order");
    if (img->vdso_end && v.start < img->vdso_end && v.end > img->vvar_start)
      return r.fail("mapping overlaps the vdso");
    if (v.prot & ~uint64_t(PROT_READ | PROT_WRITE | PROT_EXEC)) return r.fail("mapping prot");
    if (v.kind > (minor >= 7 ? kSharedFile : kSharedAnon) || gd > 1) return r.fail("mapping kind");
    v.growsdown = gd;
    if (v.kind == kSharedAnon && !(v.prot & PROT_WRITE)) return r.fail("read-only shared mapping");
    if (v.kind == kSharedFile && ((v.prot & PROT_WRITE) || gd))
      return r.fail("writable shared file mapping");
    if (v.kind == kFile || v.kind == kSharedFile) {
      if (!aligned(v.pgoff) || v.pgoff + (v.end - v.start) < v.pgoff)
        return r.fail("file mapping offset");
      v.file = get_file(r);
    } else if (v.pgoff) {
      return r.fail("anonymous mapping with an offset");
    }
    prev_end = v.end;
    if (!get_runs(r, &v, &total_runs)) return false;
    if (v.kind == kSharedFile && !v.runs.empty())  // the file holds its bytes
      return r.fail("pages of a shared file mapping");
    img->vmas.push_back(std::move(v));
  }
  if (r.ok() && nv == 0) return r.fail("no mappings");
  return r.ok();
}

// 2.9: an eventfd's, signalfd's or timerfd's state, after its common fields (kind, flags).
// What the kernel would refuse to create or set is refused here.
bool get_event_fd(Reader& r, Fd* f) {
  // Their open flags are O_RDWR, and O_NONBLOCK if set (eventfd2, signalfd4, timerfd_create
  // and F_SETFL); the position is 0.
  if ((f->flags & ~uint64_t(O_NONBLOCK)) != uint64_t(O_RDWR) || f->pos)
    return r.fail("event descriptor flags");
  if (f->kind == kFdEventfd) {
    f->count = r.u64();
    uint64_t sem = r.u64();
    if (r.ok() && (f->count == ~0ull || sem > 1)) return r.fail("eventfd counter or flags");
    f->semaphore = sem;
  } else if (f->kind == kFdSignalfd) {
    f->sigmask = r.u64();
    constexpr uint64_t kUnblockable = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));
    if (r.ok() && (f->sigmask & kUnblockable)) return r.fail("signalfd mask");
  } else {
    f->clock = r.u64();
    f->timer_flags = r.u64();
    f->count = r.u64();
    f->value_ns = r.u64();
    f->interval_ns = r.u64();
    const uint64_t c = f->clock;
    if (r.ok() && ((c != CLOCK_REALTIME && c != CLOCK_MONOTONIC && c != CLOCK_BOOTTIME &&
                    c != CLOCK_REALTIME_ALARM && c != CLOCK_BOOTTIME_ALARM) ||
                   (f->timer_flags & ~kTimerFlags) || f->value_ns > kMaxTimerNs ||
                   f->interval_ns > kMaxTimerNs || f->count > uint64_t(INT64_MAX)))
      return r.fail("timerfd state");
  }
  return r.ok();
}

// The file descriptors, in increasing order; only 0-2 may be inherited (O_PATH and directory
// descriptors from 2.6 on).
bool get_fds(Reader& r, Image* img, uint32_t minor) {
  uint64_t nf = r.count(8 * 5, kMaxFiles, "files");
  uint64_t prev_fd = 0;
  for (uint64_t i = 0; i < nf && r.ok(); i++) {
    Fd f;
    f.fd = r.u64();
    f.kind = r.u64();
    f.flags = r.u64();
    f.pos = r.u64();
    uint64_t ce = r.u64();
    if (!r.ok()) break;
    const uint64_t last = minor >= 9 ? kFdTimerfd : minor >= 6 ? kFdPath : kFdDevice;
    if (f.fd > 1048576 || (i && f.fd <= prev_fd) || f.kind > last || ce > 1 ||
        f.flags > 0xffffffffu || f.pos > uint64_t(INT64_MAX))
      return r.fail("file descriptor fields");
    if (f.kind == kFdInherit && f.fd > 2) return r.fail("inherited descriptor above 2");
    f.cloexec = ce;
    prev_fd = f.fd;
    if (f.kind == kFdEventfd || f.kind == kFdSignalfd || f.kind == kFdTimerfd) {
      if (!get_event_fd(r, &f)) return false;
    } else if (f.kind != kFdInherit) {
      f.file = get_file(r);
    }
    img->fds.push_back(std::move(f));
  }
  return r.ok();
}

// A queue of signals: each a whole siginfo_t of a signal the process can be sent (not
// KILL/STOP).
bool get_queue(Reader& r, std::vector<std::vector<uint8_t>>* q) {
  uint64_t n = r.count(8 + kSiginfo, kMaxPending, "queued signals");
  for (uint64_t i = 0; i < n && r.ok(); i++) {
    std::vector<uint8_t> si = r.bytes(kSiginfo);
    if (!r.ok()) break;
    int32_t signo;
    if (si.size() != kSiginfo) return r.fail("queued signal");
    std::memcpy(&signo, si.data(), 4);
    if (signo < 1 || signo > kNsig || signo == SIGKILL || signo == SIGSTOP)
      return r.fail("queued signal");
    q->push_back(std::move(si));
  }
  return r.ok() || r.fail("queued signal");
}

// 2.1: resource limits (none, or all kNlimits), then each thread's and the process's queued
// signals.
bool get_rlimits_and_signals(Reader& r, Image* img) {
  uint64_t nl = r.u64();
  if (r.ok() && nl != 0 && nl != kNlimits) return r.fail("resource limit count");
  img->has_rlimits = nl != 0;
  for (uint64_t i = 0; i < nl && r.ok(); i++) {
    img->rlimits[i].cur = r.u64();
    img->rlimits[i].max = r.u64();
    if (r.ok() && img->rlimits[i].cur > img->rlimits[i].max)
      return r.fail("resource limit above its maximum");
  }
  for (auto& t : img->threads)
    if (!get_queue(r, &t.pending)) return false;
  return get_queue(r, &img->shared_pending);
}

// 2.2: each mapping's madvise state (2.6 adds sequential, random, mergeable, noreserve).
bool get_advice(Reader& r, Image* img, uint32_t minor) {
  if (r.u64() != img->vmas.size() && r.ok()) return r.fail("madvise state count");
  for (auto& v : img->vmas) {
    v.advice = r.u64();
    if (!r.ok()) break;
    if ((v.advice & ~uint64_t(minor >= 6 ? kAdvAll : kAdvAll22)) ||
        (v.advice & (kAdvHugepage | kAdvNoHugepage)) == (kAdvHugepage | kAdvNoHugepage) ||
        (v.advice & (kAdvSequential | kAdvRandom)) == (kAdvSequential | kAdvRandom) ||
        ((v.advice & kAdvNoreserve) && (v.kind == kSharedAnon || v.kind == kSharedFile)) ||
        ((v.advice & kAdvWipeonfork) && v.kind != kAnon))
      return r.fail("madvise state of a mapping");
  }
  return r.ok();
}

// 2.3: ITIMER_REAL.
bool get_itimer(Reader& r, Image* img) {
  img->itimer_real_ns = r.u64();
  img->itimer_real_interval_ns = r.u64();
  // setitimer takes seconds in a time_t; a century is beyond any real timer. An interval
  // with no time left is a periodic timer that fired while the process was stopped (the
  // kernel re-arms it when the pending SIGALRM is dequeued).
  constexpr uint64_t kCentury = 100ull * 366 * 86400 * 1000000000ull;
  if (r.ok() && (img->itimer_real_ns > kCentury || img->itimer_real_interval_ns > kCentury))
    return r.fail("interval timer");
  return r.ok();
}

// 2.4: personality and prctl state.
bool get_task_state(Reader& r, Image* img, uint32_t minor) {
  img->has_task_state = true;
  img->personality = r.u64();
  img->task_flags = r.u64();
  // personality(0xffffffff) only asks; the kernel keeps 32 bits. A session leader leads its
  // process group too (2.8 sets one bit or the other).
  if (r.ok() && (img->personality >= 0xffffffffu ||
                 (img->task_flags & ~(minor >= 8 ? kTaskAll : kTaskAll24)) ||
                 (img->task_flags & (kTaskPgrpLeader | kTaskSessionLeader)) ==
                     (kTaskPgrpLeader | kTaskSessionLeader)))
    return r.fail("personality or prctl state");
  return r.ok();
}

// 2.8: coredump_filter, timer slack, CPU affinity.
bool get_attrs(Reader& r, Image* img) {
  img->has_attrs = true;
  img->coredump_filter = r.u64();
  img->timer_slack_ns = r.u64();
  uint64_t n = r.count(8, kMaxCpuWords, "CPU affinity words");
  uint64_t any = 0;
  for (uint64_t i = 0; i < n && r.ok(); i++) {
    img->affinity.push_back(r.u64());
    any |= img->affinity.back();
  }
  if (r.ok() && (img->coredump_filter > 0x1ff || img->timer_slack_ns > uint64_t(INT64_MAX) ||
                 (n && !any)))
    return r.fail("coredump_filter, timer slack or CPU affinity");
  return r.ok();
}

// 2.5: credentials, then scheduling and oom_score_adj.
bool get_creds(Reader& r, Image* img) {
  img->has_creds = true;
  Creds& c = img->creds;
  for (uint64_t& v : c.uid) v = r.u64();
  for (uint64_t& v : c.gid) v = r.u64();
  for (int i = 0; i < 4 && r.ok(); i++)
    if (c.uid[i] > 0xfffffffeu || c.gid[i] > 0xfffffffeu) return r.fail("credentials");
  uint64_t ng = r.count(8, kMaxGroups, "groups");
  for (uint64_t i = 0; i < ng && r.ok(); i++) {
    c.groups.push_back(r.u64());
    if (r.ok() && (c.groups.back() > 0xfffffffeu || (i && c.groups[i] < c.groups[i - 1])))
      return r.fail("supplementary groups");
  }
  for (uint64_t* p : {&c.cap_inh, &c.cap_prm, &c.cap_eff, &c.cap_bnd, &c.cap_amb}) *p = r.u64();
  if (r.ok() && (((c.cap_inh | c.cap_prm | c.cap_eff | c.cap_bnd | c.cap_amb) & ~kCapMask) ||
                 (c.cap_eff & ~c.cap_prm) || (c.cap_amb & ~(c.cap_prm & c.cap_inh))))
    return r.fail("capabilities");
  img->nice = int64_t(r.u64());
  img->sched_policy = r.u64();
  img->sched_priority = r.u64();
  img->oom_score_adj = int64_t(r.u64());
  const bool rt = img->sched_policy == 1 || img->sched_policy == 2;
  if (r.ok() && (img->nice < -20 || img->nice > 19 ||
                 (img->sched_policy > 5 || img->sched_policy == 4) ||
                 (rt ? img->sched_priority < 1 || img->sched_priority > 99 : img->sched_priority) ||
                 img->oom_score_adj < -1000 || img->oom_score_adj > 1000))
    return r.fail("scheduling or oom_score_adj");
  return r.ok();
}

}  // namespace

int decode_meta(std::span<const uint8_t> meta, Image* out, std::string* why, uint32_t minor) {
  Reader r(meta);
  Image img;
  if (r.u64() != kMetaMagic) r.fail("metadata magic");
  // The sections 2.N adds are there from minor version N on.
  if (r.ok() && get_process(r, &img) && get_threads(r, &img) && get_mappings(r, &img, minor) &&
      get_fds(r, &img, minor) && (minor < 1 || get_rlimits_and_signals(r, &img)) &&
      (minor < 2 || get_advice(r, &img, minor)) && (minor < 3 || get_itimer(r, &img)) &&
      (minor < 4 || get_task_state(r, &img, minor)) && (minor < 5 || get_creds(r, &img)) &&
      (minor < 8 || get_attrs(r, &img))) {
    if (r.u64() != kMetaMagic) r.fail("metadata end marker");
    else if (r.left()) r.fail("trailing bytes after the metadata");
  }
  if (!r.ok()) {
    if (why) *why = "corrupted image: " + r.why();
    return -EBADMSG;
  }
  *out = std::move(img);
  return 0;
}

std::vector<uint8_t> encode_process(const Image& img) {
  std::vector<uint8_t> meta = encode_meta(img);
  uint64_t len = kProcessHeader + meta.size();
  std::vector<uint8_t> b((len + kPage - 1) / kPage * kPage, 0);
  std::memcpy(b.data(), kMagic, 8);
  uint64_t ver = uint64_t(kVersionMajor) | uint64_t(kVersionMinor) << 32, n = meta.size();
  std::memcpy(b.data() + 8, &ver, 8);
  std::memcpy(b.data() + 16, &n, 8);
  std::memcpy(b.data() + kProcessHeader, meta.data(), meta.size());
  return b;
}

int decode_process(std::span<const uint8_t> b, Image* img, std::string* why) {
  if (b.size() < kProcessHeader || std::memcmp(b.data(), kMagic, 8)) {
    if (why) *why = "the store's \"process\" region is not a ckpt process image (bad magic)";
    return -ENODATA;
  }
  uint64_t ver, n;
  std::memcpy(&ver, b.data() + 8, 8);
  std::memcpy(&n, b.data() + 16, 8);
  if (uint32_t(ver) != kVersionMajor) {
    if (why)
      *why = "process image format version " + std::to_string(uint32_t(ver)) +
             " is not supported (this ckpt-tool reads " + std::to_string(kVersionMajor) + ")";
    return -EPROTO;
  }
  if (uint32_t(ver >> 32) > kVersionMinor) {  // a newer tool's additions: not "corrupted"
    if (why)
      *why = "process image format 2." + std::to_string(uint32_t(ver >> 32)) +
             " is newer than this ckpt-tool reads (2." + std::to_string(kVersionMinor) +
             "): restore it with the ckpt-tool that dumped it";
    return -EPROTO;
  }
  if (n > kMaxMeta || n > b.size() - kProcessHeader) {
    if (why) *why = "corrupted image: metadata length exceeds its region";
    return -EBADMSG;
  }
  return decode_meta(b.subspan(kProcessHeader, n), img, why, uint32_t(ver >> 32));
}

uint64_t advice_from_vmflags(std::string_view f) {
  static const struct {
    const char* flag;
    uint64_t bit;
  } kFlags[] = {{"hg", kAdvHugepage},   {"nh", kAdvNoHugepage}, {"dc", kAdvDontfork},
                {"dd", kAdvDontdump},   {"wf", kAdvWipeonfork}, {"sr", kAdvSequential},
                {"rr", kAdvRandom},     {"mg", kAdvMergeable},  {"nr", kAdvNoreserve}};
  uint64_t a = 0;
  while (!f.empty()) {
    size_t sp = f.find(' ');
    std::string_view tok = f.substr(0, sp);
    for (const auto& k : kFlags)
      if (tok == k.flag) a |= k.bit;
    if (sp == std::string_view::npos) break;
    f.remove_prefix(sp + 1);
  }
  return a;
}

std::string vma_region(uint64_t start) {
  char b[32];
  snprintf(b, sizeof b, "vma:%llx", (unsigned long long)start);
  return b;
}

}  // namespace ckpt_tool::image

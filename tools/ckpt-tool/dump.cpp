// SPDX-License-Identifier: MIT
// ckpt-tool dump (and run's checkpoints): a running process into a libckpt store (image.hpp
// has the regions), one store transaction per checkpoint.
//
// Everything user space can read is read from user space: ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT for a stop, GETREGS, GETREGSET NT_X86_XSTATE), /proc/PID/{maps,pagemap,
// fd,fdinfo,cwd,stat,status}, process_vm_readv for memory. What only the kernel knows (signal
// handlers, sigaltstack, clear_child_tid, robust list, rseq, brk, timers) comes from ckpt.ko's
// CKPT_IOC_DUMP_TASK, so no code is injected into the target.
#include <dirent.h>
#include <fcntl.h>
#include <linux/ckpt.h>
#include <linux/elf.h>
#include <sched.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <exception>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "key.hpp"
#include "ckptdev.hpp"
#include "cmd.hpp"
#include "image.hpp"
#include "proc.hpp"
#include "store.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace wp {
constexpr size_t kBatch = 256;  // pages per read from the process (1 MiB)
constexpr size_t kDepth = 3;    // buffers of kBatch pages the reader thread may fill ahead
}  // namespace wp
namespace {

using namespace image;

constexpr long kERESTARTSYS = 512, kERESTARTNOINTR = 513, kERESTARTNOHAND = 514,
               kERESTART_RESTARTBLOCK = 516;

// A failure with the reason for the user; dump stops and the process is let go.
struct Error {
  int code;  // exit status
  std::string msg;
};

std::string errstr(int neg) { return strerror(-neg); }

// Holds the ptrace stop of every thread; lets the process continue unless told to kill it.
class Seized {
 public:
  explicit Seized(int pid) : pid_(pid) {}
  ~Seized() { detach(); }
  int pid() const { return pid_; }
  const std::vector<int>& tids() const { return tids_; }
  bool has(int tid) const { return std::find(tids_.begin(), tids_.end(), tid) != tids_.end(); }
  void add(int tid) { tids_.push_back(tid); }
  void detach() {
    for (int t : tids_) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
    tids_.clear();
  }
  void kill_it() {
    if (tids_.empty()) return;
    ::kill(pid_, SIGKILL);
    // The leader is reported only after every other thread was reaped: it goes last.
    std::stable_partition(tids_.begin(), tids_.end(), [this](int t) { return t != pid_; });
    for (int t : tids_) {
      int st;
      while (waitpid(t, &st, __WALL) < 0 && errno == EINTR) {
      }
    }
    tids_.clear();
  }

 private:
  int pid_;
  std::vector<int> tids_;
};

// Exit statuses the dump's own waitpid() took from a child that died meanwhile (run's
// supervisor asks for them: it is the parent and would otherwise lose the status).
std::map<int, int> g_reaped;

void stop_one(Seized& s, int tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) < 0) {
    if (errno == ESRCH && tid != s.pid()) return;  // a thread that just exited
    if (errno == EPERM)
      throw Error{kFailed, "not allowed to ptrace " + std::to_string(s.pid()) +
                               ": dump needs the same user (and a dumpable process) or "
                               "CAP_SYS_PTRACE; see also /proc/sys/kernel/yama/ptrace_scope"};
    throw Error{kFailed, "ptrace(SEIZE) " + std::to_string(tid) + ": " + strerror(errno)};
  }
  s.add(tid);
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
    throw Error{kFailed, std::string("ptrace(INTERRUPT): ") + strerror(errno)};
  for (;;) {
    int st;
    if (waitpid(tid, &st, __WALL) < 0) {
      if (errno == EINTR) continue;
      throw Error{kFailed, std::string("waitpid: ") + strerror(errno)};
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      g_reaped[tid] = st;
      throw Error{kFailed, "the process exited"};
    }
    if (!WIFSTOPPED(st)) continue;
    if ((st >> 16) == PTRACE_EVENT_STOP) return;
    // A signal-delivery stop came first: deliver it and wait for our interrupt.
    if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)WSTOPSIG(st)) < 0)
      throw Error{kFailed, std::string("ptrace(CONT): ") + strerror(errno)};
  }
}

// Stop every thread; threads created meanwhile are caught by listing again until stable.
void seize_and_stop(Seized& s) {
  for (int round = 0;; round++) {
    std::vector<int> tasks;
    if (int e = proc::list_tasks(s.pid(), &tasks); e)
      throw Error{kFailed, "process " + std::to_string(s.pid()) + ": " + errstr(e)};
    bool added = false;
    for (int t : tasks)
      if (!s.has(t)) {
        stop_one(s, t);
        added = true;
      }
    if (!added) return;
    if (round > 1000) throw Error{kFailed, "the process keeps creating threads"};
  }
}

// The signals queued for `tid` (flags 0) or for its whole process (PTRACE_PEEKSIGINFO_SHARED),
// oldest first, without dequeuing them: a traced thread in a ptrace stop.
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

void read_thread(int tid, int ckpt_fd, uint64_t features, Image* img, Thread* t) {
  user_regs_struct ur;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &ur) < 0)
    throw Error{kFailed, std::string("ptrace(GETREGS): ") + strerror(errno)};
  static_assert(sizeof(ur) == sizeof(Regs));
  std::memcpy(&t->regs, &ur, sizeof(ur));
  t->tid = uint64_t(tid);
  // Stopped inside a syscall that will be restarted: restart it after restore as the kernel
  // would have (what CRIU does). A restart_block cannot move to another process: -EINTR.
  Regs& g = t->regs;
  if (int64_t(g.orig_ax) >= 0) {
    switch (-int64_t(g.ax)) {
      case kERESTARTSYS:
      case kERESTARTNOINTR:
      case kERESTARTNOHAND:
        g.ax = g.orig_ax;
        g.ip -= 2;
        break;
      case kERESTART_RESTARTBLOCK:
        g.ax = uint64_t(-EINTR);
        break;
    }
  }
  alignas(64) static uint8_t xbuf[kMaxXsave];
  iovec iov{xbuf, sizeof(xbuf)};
  if (ptrace(PTRACE_GETREGSET, tid, (void*)NT_X86_XSTATE, &iov) < 0)
    throw Error{kFailed, std::string("ptrace(GETREGSET, NT_X86_XSTATE): ") + strerror(errno) +
                             " (a CPU with XSAVE is required)"};
  t->xsave.assign(xbuf, xbuf + iov.iov_len);

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
  if (d.process & CKPT_PROCESS_CHILD_SUBREAPER)
    throw Error{kFailed, "the process is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), which "
                         "is not saved: restored without it, orphans of its future children would "
                         "go to init instead (see Documentation/whole-process.md)"};
  if (const uint64_t no = d.timers & (CKPT_TIMER_VIRTUAL | CKPT_TIMER_PROF | CKPT_TIMER_POSIX)) {
    std::string what;
    if (no & CKPT_TIMER_VIRTUAL) what += ", ITIMER_VIRTUAL";
    if (no & CKPT_TIMER_PROF) what += ", ITIMER_PROF";
    if (no & CKPT_TIMER_POSIX) what += ", POSIX timers (timer_create)";
    throw Error{kFailed, "the process has timers that are not supported: " + what.substr(2) +
                             " (ITIMER_REAL and alarm() are; see Documentation/whole-process.md)"};
  }
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

// A session of ckpt.ko; *features: the module's CKPT_FEATURE_* bits.
int open_module(uint64_t* features = nullptr) {
  ckptdev::Session dev;
  if (int e = dev.open()) {
    if (e == -EPROTONOSUPPORT)
      throw Error{kUnavailable, "this ckpt.ko speaks API version " +
                                    std::to_string(dev.module_api()) + ", ckpt-tool " +
                                    std::to_string(CKPT_API_VERSION)};
    throw Error{kUnavailable, std::string("/dev/ckpt: ") + strerror(-e) +
                                  " (load ckpt.ko; see Documentation/admin-guide.md)"};
  }
  if (!dev.has(CKPT_FEATURE_DUMP))
    throw Error{kUnavailable, "this ckpt.ko does not offer CKPT_FEATURE_DUMP"};
  if (features) *features = dev.features();
  return dev.take_fd();
}

// Files already identified, by (path, inode): within one checkpoint a library is mapped several
// times, and `run`'s incremental checkpoints take the previous image's identities of the files
// the process still maps/has open under the same path and inode, instead of a stat (a round
// trip to a network file system) per mapping each time. Reusing the previous size and mtime is
// the conservative side: a file rewritten in place since is refused at restore as changed.
using KnownFiles = std::map<std::pair<std::string, uint64_t>, FileId>;

FileId file_id(const std::string& path, uint64_t expect_ino, const std::string& what,
               KnownFiles* known) {
  if (expect_ino)
    if (auto it = known->find({path, expect_ino}); it != known->end()) return it->second;
  struct stat st;
  if (stat(path.c_str(), &st) < 0)
    throw Error{kFailed, what + " " + path + ": " + strerror(errno)};
  if (!S_ISREG(st.st_mode)) throw Error{kFailed, what + " " + path + " is not a regular file"};
  if (expect_ino && st.st_ino != expect_ino)
    throw Error{kFailed, what + " " + path +
                             " is not the file the process has (another mount namespace?)"};
  FileId f{path, uint64_t(st.st_ino), uint64_t(st.st_size),
           uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec)};
  (*known)[{path, f.ino}] = f;
  return f;
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

void read_stat_fields(int pid, Image* img) {
  std::vector<uint64_t> f;  // f[0] is field 3 (state)
  if (int e = proc::read_stat(pid, &f); e)
    throw Error{kFailed, e == -EINVAL ? "unexpected /proc/PID/stat" : "/proc/PID/stat: " + errstr(e)};
  auto field = [&](size_t n) { return n - 3 < f.size() ? f[n - 3] : 0; };
  if (f.size() < 51 - 2) throw Error{kFailed, "/proc/PID/stat lacks the mm fields"};
  img->start_code = field(26);
  img->end_code = field(27);
  img->start_stack = field(28);
  img->start_data = field(45);
  img->end_data = field(46);
  img->arg_start = field(48);
  img->arg_end = field(49);
  img->env_start = field(50);
  img->env_end = field(51);
}

// "Name:\tvalue" of /proc/PID/status as a number in `base`, or -1 when the line is missing (a
// kernel without it).
long status_field(const std::string& status, const char* name, int base = 10) {
  const std::string key = std::string("\n") + name + ":\t";
  size_t p = status.find(key);
  return p == std::string::npos ? -1 : strtol(status.c_str() + p + key.size(), nullptr, base);
}

using proc::numbers;

// A thread's credentials from its status (Uid, Gid, Groups, Cap*).
Creds creds_from_status(const std::string& st) {
  Creds c;
  if (proc::creds_from_status(st, &c))
    throw Error{kFailed, "/proc/PID/status: unexpected Uid, Gid or Cap lines"};
  return c;
}

// A thread's scheduling: policy (with SCHED_RESET_ON_FORK), real-time priority, nice. Anyone
// may ask (no permission check).
struct Sched {
  int policy = 0, priority = 0, nice = 0;
  bool operator==(const Sched&) const = default;
};
Sched read_sched(int tid) {
  Sched s;
  s.policy = sched_getscheduler(tid);
  sched_param sp{};
  if (s.policy < 0 || sched_getparam(tid, &sp) < 0)
    throw Error{kFailed, "scheduling policy of thread " + std::to_string(tid) + ": " + strerror(errno)};
  s.priority = sp.sched_priority;
  errno = 0;
  s.nice = getpriority(PRIO_PROCESS, id_t(tid));
  if (s.nice == -1 && errno)
    throw Error{kFailed, "nice value of thread " + std::to_string(tid) + ": " + strerror(errno)};
  return s;
}

void read_process(int pid, Image* img) {
  std::string base = "/proc/" + std::to_string(pid);
  img->pid = uint64_t(pid);
  std::string s;
  if (proc::read_file(base + "/comm", &s) == 0) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    img->comm = s.substr(0, 15);
  }
  if (int e = proc::read_link(base + "/cwd", &img->cwd); e)
    throw Error{kFailed, "cwd: " + errstr(e)};
  if (ends_with(img->cwd, " (deleted)"))
    throw Error{kFailed, "the working directory " + img->cwd + " is not supported"};
  proc::read_link(base + "/exe", &img->exe);
  if (int e = proc::read_file(base + "/status", &s); e) throw Error{kFailed, "status: " + errstr(e)};
  if (const long umask = status_field(s, "Umask", 8); umask >= 0) img->umask = uint64_t(umask);
  if (status_field(s, "THP_enabled") == 0) img->task_flags |= kTaskThpDisable;  // per process
  // Credentials and scheduling, saved once for the process: threads that differ are refused.
  img->creds = creds_from_status(s);
  img->has_creds = true;
  const Sched sched = read_sched(pid);
  if (sched.policy & SCHED_RESET_ON_FORK)
    throw Error{kFailed, "the process has SCHED_RESET_ON_FORK set, which is not saved"};
  if (sched.policy != SCHED_OTHER && sched.policy != SCHED_BATCH && sched.policy != SCHED_IDLE &&
      sched.policy != SCHED_FIFO && sched.policy != SCHED_RR)
    throw Error{kFailed, "the process runs under scheduling policy " + std::to_string(sched.policy) +
                             " (SCHED_DEADLINE?), which is not saved"};
  img->sched_policy = uint64_t(sched.policy);
  img->sched_priority = uint64_t(sched.priority);
  img->nice = sched.nice;
  std::string oom;
  if (int e = proc::read_file(base + "/oom_score_adj", &oom); e)
    throw Error{kFailed, "oom_score_adj: " + errstr(e)};
  img->oom_score_adj = strtol(oom.c_str(), nullptr, 10);
  // no_new_privs and seccomp belong to each thread (the leader's status is the process's).
  for (size_t i = 0; i < img->threads.size(); i++) {
    std::string ts;
    if (i > 0) {
      const std::string path = base + "/task/" + std::to_string(img->threads[i].tid) + "/status";
      if (int e = proc::read_file(path, &ts); e) throw Error{kFailed, path + ": " + errstr(e)};
    }
    const std::string& st = i ? ts : s;
    if (const long mode = status_field(st, "Seccomp"); mode > 0)
      throw Error{kFailed, std::string("the process runs under seccomp (") +
                               (mode == 1 ? "strict mode" : "filters") +
                               "), which is not supported: restored without it, it would run "
                               "outside its sandbox (see Documentation/whole-process.md)"};
    if (status_field(st, "NoNewPrivs") == 1) img->task_flags |= kTaskNoNewPrivs;
    if (i > 0) {
      const int tid = int(img->threads[i].tid);
      if (!(creds_from_status(st) == img->creds))
        throw Error{kFailed, "thread " + std::to_string(tid) +
                                 " has other credentials (uid, gid, groups or capabilities) than "
                                 "the main thread, which is not saved: one set for the process is"};
      if (!(read_sched(tid) == sched))
        throw Error{kFailed, "thread " + std::to_string(tid) +
                                 " has another scheduling policy, priority or nice value than the "
                                 "main thread, which is not saved: one setting for the process is"};
    }
  }
  if (int e = proc::read_file(base + "/personality", &s); e)
    throw Error{kFailed, "personality: " + errstr(e)};
  img->personality = strtoull(s.c_str(), nullptr, 16);
  img->has_task_state = true;
  read_stat_fields(pid, img);
  for (int i = 0; i < kNlimits; i++) {
    struct rlimit rl;
    if (prlimit(pid, __rlimit_resource(i), nullptr, &rl) < 0)
      throw Error{kFailed, "prlimit " + std::to_string(i) + ": " + strerror(errno)};
    img->rlimits[i] = {uint64_t(rl.rlim_cur), uint64_t(rl.rlim_max)};
  }
  img->has_rlimits = true;
}

void read_fds(int pid, Image* img, KnownFiles* known) {
  std::string base = "/proc/" + std::to_string(pid);
  std::vector<int> fds;
  if (int e = proc::list_fds(pid, &fds); e) throw Error{kFailed, "fd list: " + errstr(e)};
  for (int n : fds) {
    std::string fdp = base + "/fd/" + std::to_string(n), link, info;
    if (proc::read_link(fdp, &link)) continue;  // closed meanwhile
    struct stat st;
    if (stat(fdp.c_str(), &st) < 0) throw Error{kFailed, "fd " + std::to_string(n) + ": " + strerror(errno)};
    if (int e = proc::read_file(base + "/fdinfo/" + std::to_string(n), &info); e)
      throw Error{kFailed, "fdinfo: " + errstr(e)};
    // A lock held through this descriptor (flock, a POSIX lock of this process, an OFD lock,
    // a lease): fdinfo lists it (fs/locks.c, show_fd_locks).
    if (size_t l = info.find("\nlock:\t"); l != std::string::npos) {
      std::vector<std::string> w;
      const std::string line = info.substr(l + 7, info.find('\n', l + 7) - (l + 7));
      for (size_t a = 0, b; a < line.size(); a = b + 1) {
        b = line.find_first_of(" \t", a);
        if (b == std::string::npos) b = line.size();
        if (b > a) w.push_back(line.substr(a, b - a));
      }
      const std::string type = w.size() > 1 ? w[1] : "?";
      const char* kind = type == "FLOCK"    ? "an flock() lock"
                         : type == "POSIX"  ? "a POSIX record lock (fcntl F_SETLK, lockf)"
                         : type == "OFDLCK" ? "an open file description lock (F_OFD_SETLK)"
                         : type == "LEASE"  ? "a lease"
                                            : "a file lock";
      throw Error{kFailed, "fd " + std::to_string(n) + " (" + link + ") holds " + kind +
                               ", which is not saved: restored without it, the process would "
                               "believe it holds the lock"};
    }
    Fd f;
    f.fd = uint64_t(n);
    size_t p = info.find("pos:");
    if (p != std::string::npos) f.pos = strtoull(info.c_str() + p + 4, nullptr, 10);
    p = info.find("flags:");
    if (p != std::string::npos) f.flags = strtoull(info.c_str() + p + 6, nullptr, 8);
    f.cloexec = f.flags & O_CLOEXEC;
    f.flags &= ~uint64_t(O_CLOEXEC);
    static const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
    bool device = false;
    for (const char* d : kDevices) device |= link == d;
    if (S_ISREG(st.st_mode) && !link.empty() && link[0] == '/' && !ends_with(link, " (deleted)")) {
      f.kind = kFdRegular;
      f.file = file_id(link, st.st_ino, "open file", known);
    } else if (S_ISCHR(st.st_mode) && device) {
      f.kind = kFdDevice;
      f.file = FileId{link, 0, 0, 0};
    } else if (n <= 2 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      f.kind = kFdInherit;  // tty, pipe, socket on stdio: the restorer's own stdio
    } else {
      throw Error{kFailed, "fd " + std::to_string(n) + " (" + link +
                               ") is not supported: only regular files, /dev/null-like devices "
                               "and stdio are (see Documentation/whole-process.md)"};
    }
    img->fds.push_back(std::move(f));
  }
}

// Per page of the mapping: does it hold data the restore must write? From pagemap.
// `ent` is scratch space kept by the caller (a fresh buffer costs page faults per checkpoint).
std::vector<bool> want_pages(int pagemap_fd, const Vma& v, std::vector<uint64_t>& ent) {
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kFilePage = 1ull << 61;
  uint64_t pages = (v.end - v.start) / kPage;
  if (v.kind == kSharedAnon) return std::vector<bool>(pages, true);  // every page, always
  std::vector<bool> want(pages);
  if (ent.size() < std::min<uint64_t>(pages, 65536)) ent.resize(std::min<uint64_t>(pages, 65536));
  for (uint64_t i = 0; i < pages;) {
    uint64_t n = std::min<uint64_t>(pages - i, ent.size());
    ssize_t got = pread(pagemap_fd, ent.data(), n * 8, off_t((v.start / kPage + i) * 8));
    if (got != ssize_t(n * 8)) throw Error{kFailed, std::string("pagemap: ") + strerror(errno)};
    for (uint64_t k = 0; k < n; k++) {
      uint64_t e = ent[k];
      if (v.kind == kFile)
        want[i + k] = (e & kSwapped) || ((e & kPresent) && !(e & kFilePage));
      else
        want[i + k] = e & (kPresent | kSwapped);
    }
    i += n;
  }
  return want;
}

bool same_layout(const std::vector<proc::MapsLine>& a, const std::vector<proc::MapsLine>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].start != b[i].start || a[i].end != b[i].end || a[i].perms != b[i].perms ||
        a[i].offset != b[i].offset || a[i].ino != b[i].ino || a[i].path != b[i].path)
      return false;
  return true;
}

// The layout, and each mapping's VmFlags: the madvise state restore reproduces (THP or not,
// DONTFORK, WIPEONFORK, DONTDUMP). Only smaps has VmFlags, and the kernel walks every page
// table to print it (a 64 MiB process: 4-12 ms under TCG, most of an incremental checkpoint).
// So with `last` (run's checkpoints: the previous one's mappings and flags), maps is read
// first, and smaps only when the layout differs from last time; an unchanged layout keeps
// the flags read then. The price: a madvise() that changes the flags of a whole existing
// mapping, and nothing else in the layout, reaches the image at the next checkpoint whose
// layout changed (or the next full one), not at once. Memory contents are not concerned.
void read_vmas(int pid, Image* img, KnownFiles* known, std::vector<proc::MapsLine>* last) {
  std::vector<proc::MapsLine> maps;
  if (last && !last->empty()) {
    if (int e = proc::read_maps(pid, &maps); e) throw Error{kFailed, "maps: " + errstr(e)};
    if (same_layout(maps, *last))
      maps = *last;  // with the flags
    else
      maps.clear();
  }
  if (maps.empty())
    if (int e = proc::read_smaps(pid, &maps); e) throw Error{kFailed, "smaps: " + errstr(e)};
  if (last) *last = maps;
  uint64_t vvar_end = 0;
  for (const auto& m : maps) {
    std::string where = "mapping " + m.path + " at 0x" +
                        [](uint64_t a) { char b[32]; snprintf(b, sizeof b, "%" PRIx64, a); return std::string(b); }(m.start);
    if (m.path == "[vsyscall]") continue;
    if (m.path == "[vvar]") {
      img->vvar_start = m.start;
      vvar_end = m.end;
      continue;
    }
    if (m.path == "[vdso]") {
      img->vdso_start = m.start;
      img->vdso_end = m.end;
      continue;
    }
    Vma v;
    v.start = m.start;
    v.end = m.end;
    v.prot = (m.perms[0] == 'r' ? PROT_READ : 0) | (m.perms[1] == 'w' ? PROT_WRITE : 0) |
             (m.perms[2] == 'x' ? PROT_EXEC : 0);
    bool shared = m.perms[3] == 's';
    if (shared) {
      if (m.path.rfind("/SYSV", 0) == 0)
        throw Error{kFailed, where + ": System V shared memory (shmat) is not saved"};
      if (m.path != "/dev/zero (deleted)" && !m.path.empty())
        throw Error{kFailed, where + ": shared file mappings (and System V / memfd shared "
                                     "memory) are not supported"};
      if (!(v.prot & PROT_WRITE))
        throw Error{kFailed, where + ": read-only shared anonymous memory is not supported"};
      v.kind = kSharedAnon;
    } else if (m.path.empty() || m.path == "[heap]" || m.path == "[stack]" ||
               m.path.rfind("[anon:", 0) == 0) {
      v.kind = kAnon;
      v.growsdown = m.path == "[stack]";
    } else if (m.path[0] == '[') {
      throw Error{kFailed, where + " is not supported"};
    } else {
      if (ends_with(m.path, " (deleted)"))
        throw Error{kFailed, where + ": the mapped file was deleted; not supported"};
      v.kind = kFile;
      v.pgoff = m.offset;
      v.file = file_id(m.path, m.ino, "mapped file", known);
    }
    v.advice = advice_from_vmflags(m.vmflags);
    img->vmas.push_back(std::move(v));
  }
  if (img->vdso_start && (!img->vvar_start || vvar_end != img->vdso_start))
    throw Error{kFailed, "unexpected layout: [vvar] is not directly below [vdso]"};
}

// What dump does not save and finds outside the process's own files: children, a file offset
// shared with another process, System V IPC objects it used. `lose`: what the caller accepts to
// lose (dump --lose).
void check_unsaved(int pid, const Image& img, const std::set<std::string>& lose) {
  const std::string base = "/proc/" + std::to_string(pid);
  // Children (and unreaped zombies), of every thread: only one process is restored.
  std::vector<uint64_t> kids;
  for (const Thread& t : img.threads) {
    std::string c;
    if (int e = proc::read_file(base + "/task/" + std::to_string(t.tid) + "/children", &c); e)
      throw Error{kFailed, "/proc/PID/task/TID/children: " + errstr(e)};
    for (uint64_t k : numbers(c, 10)) kids.push_back(k);
  }
  if (!kids.empty()) {
    std::string list;
    for (size_t i = 0; i < kids.size() && i < 8; i++) list += (i ? ", " : "") + std::to_string(kids[i]);
    if (kids.size() > 8) list += ", ...";
    throw Error{kFailed, "the process has child processes (pid " + list +
                             "), which are not saved: only the process itself would be restored"};
  }

  // System V IPC objects the process used last (the kernel keeps them, not the process: after
  // a restart of the system they are gone). Semaphore sets list no user: each semaphore's
  // last user is asked for (semctl GETPID, needs read permission on the set).
  if (!lose.count("sysv-ipc")) {
    auto table = [](const char* file, std::vector<std::vector<uint64_t>>* rows) {
      std::string t;
      if (proc::read_file(std::string("/proc/sysvipc/") + file, &t)) return;
      for (size_t p = t.find('\n'); p != std::string::npos && p + 1 < t.size();) {
        size_t e = t.find('\n', p + 1);
        rows->push_back(numbers(t.substr(p + 1, e == std::string::npos ? e : e - p - 1), 10));
        p = e;
      }
    };
    auto refuse = [](const char* what, uint64_t id) {
      throw Error{kRefused, std::string("the process used System V ") + what + " " +
                                std::to_string(id) +
                                ", which is not saved (it lives in the kernel: gone after a "
                                "restart); --lose sysv-ipc dumps it anyway"};
    };
    std::vector<std::vector<uint64_t>> rows;
    table("msg", &rows);  // key msqid perms cbytes qnum lspid lrpid ...
    for (const auto& r : rows)
      if (r.size() > 6 && (r[5] == uint64_t(pid) || r[6] == uint64_t(pid)))
        refuse("message queue (msqid)", r[1]);
    rows.clear();
    table("shm", &rows);  // key shmid perms size cpid lpid ...
    for (const auto& r : rows)
      if (r.size() > 5 && (r[4] == uint64_t(pid) || r[5] == uint64_t(pid)))
        refuse("shared memory segment (shmid)", r[1]);
    rows.clear();
    table("sem", &rows);  // key semid perms nsems ...
    for (const auto& r : rows)
      for (uint64_t k = 0; r.size() > 3 && k < r[3] && k < 65536; k++) {
        int last = semctl(int(r[1]), int(k), GETPID);
        if (last < 0) break;
        if (last == pid) refuse("semaphore set (semid)", r[1]);
      }
  }

  // A regular file's offset shared with another process (the same open file description:
  // inherited across fork, or passed over a socket): the restored process gets its own offset,
  // and the other process's writes no longer move it. Every process whose descriptors we may
  // read is compared with kcmp(KCMP_FILE); this tool itself is not (run's supervisor hands its
  // own standard output and error to the program it starts).
  if (lose.count("shared-offset")) return;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<uint64_t>> ours;  // (dev, ino) -> fds
  for (const Fd& f : img.fds) {
    if (f.kind != kFdRegular) continue;
    struct stat st;
    if (stat((base + "/fd/" + std::to_string(f.fd)).c_str(), &st) == 0)
      ours[{uint64_t(st.st_dev), uint64_t(st.st_ino)}].push_back(f.fd);
  }
  if (ours.empty()) return;
  std::vector<int> procs;
  DIR* d = opendir("/proc");
  if (!d) throw Error{kFailed, std::string("/proc: ") + strerror(errno)};
  while (dirent* e = readdir(d)) {
    char* end;
    long v = strtol(e->d_name, &end, 10);
    if (*e->d_name && !*end && v > 0 && v != pid && v != getpid()) procs.push_back(int(v));
  }
  closedir(d);
  for (int other : procs) {
    int dfd = open(("/proc/" + std::to_string(other) + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) continue;  // gone, or not ours to look at
    DIR* fdd = fdopendir(dfd);
    if (!fdd) {
      close(dfd);
      continue;
    }
    std::string hit;
    while (dirent* e = readdir(fdd)) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      if (fstatat(dfd, e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode)) continue;
      auto it = ours.find({uint64_t(st.st_dev), uint64_t(st.st_ino)});
      if (it == ours.end()) continue;
      const long theirs = strtol(e->d_name, nullptr, 10);
      for (uint64_t fd : it->second)
        if (syscall(SYS_kcmp, pid, other, KCMP_FILE, long(fd), theirs) == 0) {
          std::string path, comm;
          proc::read_link(base + "/fd/" + std::to_string(fd), &path);
          proc::read_file("/proc/" + std::to_string(other) + "/comm", &comm);
          while (!comm.empty() && comm.back() == '\n') comm.pop_back();
          hit = "fd " + std::to_string(fd) + " (" + path + ") shares its file offset with fd " +
                std::to_string(theirs) + " of process " + std::to_string(other) + " (" + comm +
                "), which is not saved: restored, it would have an offset of its own; --lose "
                "shared-offset dumps it anyway";
          break;
        }
      if (!hit.empty()) break;
    }
    closedir(fdd);
    if (!hit.empty()) throw Error{kRefused, hit};
  }
}

// Reads pages of the stopped process: process_vm_readv where the mapping is readable (many runs
// per call, straight into our buffer), /proc/PID/mem elsewhere (it reads through PROT_NONE and
// write-only protections, which process_vm_readv refuses).
class MemReader {
 public:
  explicit MemReader(int pid) : pid_(pid) {
    mem_ = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem_ < 0) throw Error{kFailed, std::string("/proc/PID/mem: ") + strerror(errno)};
  }
  ~MemReader() { close(mem_); }
  MemReader(const MemReader&) = delete;
  MemReader& operator=(const MemReader&) = delete;

  // Read the pages at page indices idx[0..n) of mapping v, ascending, into buf (n pages).
  void read(const Vma& v, const uint64_t* idx, size_t n, uint8_t* buf) {
    if (!(v.prot & PROT_READ)) {
      for (size_t i = 0; i < n;) {
        size_t e = i + 1;
        while (e < n && idx[e] == idx[i] + (e - i)) e++;
        size_t len = (e - i) * kPage;
        if (pread(mem_, buf + i * kPage, len, off_t(v.start + idx[i] * kPage)) != ssize_t(len))
          throw Error{kFailed, std::string("reading process memory: ") + strerror(errno)};
        i = e;
      }
      return;
    }
    std::vector<iovec> remote;
    for (size_t i = 0; i < n;) {
      size_t e = i + 1;
      while (e < n && idx[e] == idx[i] + (e - i)) e++;
      remote.push_back({reinterpret_cast<void*>(v.start + idx[i] * kPage), (e - i) * kPage});
      i = e;
    }
    uint8_t* dst = buf;
    for (size_t r = 0; r < remote.size();) {
      size_t m = std::min<size_t>(remote.size() - r, IOV_MAX);
      size_t want = 0;
      for (size_t k = r; k < r + m; k++) want += remote[k].iov_len;
      iovec local{dst, want};
      ssize_t got = process_vm_readv(pid_, &local, 1, &remote[r], m, 0);
      if (got != ssize_t(want))
        throw Error{kFailed, std::string("reading process memory: ") +
                                 (got < 0 ? strerror(errno) : "short read")};
      dst += want;
      r += m;
    }
  }

 private:
  int pid_;
  int mem_;
};

// The dirty pages of a tracked region (addresses), taking the module's log.
// `buf` is scratch space kept by the caller (a fresh buffer costs page faults per checkpoint).
std::vector<uint64_t> collect(int fd, uint64_t id, std::vector<uint64_t>& buf) {
  std::vector<uint64_t> out;
  if (buf.size() < 16384) buf.resize(16384);
  for (;;) {
    ckpt_collect c{};
    c.id = id;
    c.buf = uint64_t(uintptr_t(buf.data()));
    c.buf_len = buf.size() * 8;
    if (int e = ckptdev::collect(fd, &c))
      throw Error{kFailed, std::string("ckpt.ko COLLECT: ") + strerror(-e)};
    out.insert(out.end(), buf.begin(), buf.begin() + long(c.count));
    if (!c.remaining) return out;
  }
}

std::string store_error(const ckpt::store::Store& s, int e, const char* what) {
  std::string m = std::string(what) + ": " + strerror(-e);
  if (!s.last_error().empty()) m += " (" + s.last_error() + ")";
  return m;
}

}  // namespace

// The state kept between the checkpoints of one process: its store (open, locked), a ckpt.ko
// session ATTACHed to it with one region per private mapping, and the metadata of the last
// committed checkpoint.
struct wp::Tracker {
  std::string path;
  bool create = false;    // --create: make a store of an existing path that holds none
  bool force = false;     // --force: format whatever the path holds
  bool replace = false;   // dump --replace: overwrite the image of another process
  std::set<std::string> lose;  // dump --lose: state not saved that the caller accepts to lose
  std::unique_ptr<ckpt::store::Store> store;
  bool track = true;      // incremental checkpoints through ckpt.ko (run); false: dump
  int fd = -1;            // session ATTACHed to the process, -1 before the first checkpoint
  bool usable = true;     // false: the module cannot track this process (full checkpoints)
  struct Reg {
    uint64_t id, start, end;
  };
  std::map<uint64_t, Reg> regs;  // by start: mappings tracked since the last checkpoint
  bool have_prev = false;
  Image prev;                    // metadata of the last checkpoint this tracker committed
  // The buffers pages travel through from the process to the store (kDepth of kBatch pages,
  // for the reader thread of a big checkpoint; one for a small one), kept from one checkpoint
  // to the next: a fresh one costs a page fault per page in every checkpoint's pause.
  std::unique_ptr<uint8_t[]> buf;
  size_t nbuf = 0;
  uint8_t* buffers(size_t n) {
    if (nbuf < n) {
      buf.reset();  // freed before the bigger one is taken
      buf.reset(new uint8_t[n * kBatch * kPage]);
      nbuf = n;
    }
    return buf.get();
  }
  std::vector<uint64_t> scratch;  // pagemap entries, COLLECT addresses; kept for the same reason
  std::vector<proc::MapsLine> last_maps;  // the last checkpoint's mappings, with VmFlags
  ~Tracker() {
    if (fd >= 0) close(fd);
  }
  // Forget the dirty logs: the next checkpoint is a full one.
  void reset() {
    for (auto& [start, r] : regs) ckptdev::unregister(fd, r.id);
    regs.clear();
    have_prev = false;
  }
  void unregister(uint64_t id) { ckptdev::unregister(fd, id); }
};

bool wp::reaped_status(pid_t pid, int* wstatus) {
  auto it = g_reaped.find(pid);
  if (it == g_reaped.end()) return false;
  *wstatus = it->second;
  g_reaped.erase(it);
  return true;
}

std::unique_ptr<wp::Tracker, wp::TrackerDeleter> wp::make_tracker() {
  return std::unique_ptr<Tracker, TrackerDeleter>(new Tracker);
}
void wp::TrackerDeleter::operator()(Tracker* t) const { delete t; }

namespace {

using ckpt::store::RegionInfo;

void open_store(wp::Tracker& tr) {
  if (tr.store) return;
  ckpt::store::Options o;
  std::string why;
  o.why = &why;
  o.mac_key = store_key();
  o.create = tr.create;
  o.force_format = tr.force;
  int e = ckpt::store::Store::open(tr.path, o, &tr.store);
  if (e == -EBUSY)
    throw Error{kUnavailable, "--store " + tr.path + ": open in another program" +
                                  (why.empty() ? "" : " (" + why + ")")};
  // Nothing there is a store, and formatting it would destroy (or claim) it: the store's
  // reason names what it holds and the option that asks for it.
  if (e == -ENODATA || e == -EEXIST) throw Error{kRefused, "--store " + why};
  if (e)
    throw Error{kFailed, "--store " + tr.path + ": " + (why.empty() ? strerror(-e) : why)};
  // A store that holds something else (a libckpt program's regions) is not overwritten.
  for (const RegionInfo& r : tr.store->regions())
    if (r.name != kProcessRegion && r.name.rfind("vma:", 0) != 0) {
      tr.store.reset();
      throw Error{kFailed, "--store " + tr.path + " holds region \"" + r.name +
                               "\", not a process image; use another store"};
    }
}

// dump: a store that holds the image of another process (another PID, or another program at
// that PID) is not overwritten unless --replace. A process restored from the store keeps its
// PID and program, so dumping it again into its own store needs no option.
void check_replace(wp::Tracker& tr, const Image& img) {
  if (tr.replace || tr.store->epoch() == 0) return;
  uint32_t id = 0;
  uint64_t size = 0;
  for (const RegionInfo& r : tr.store->regions())
    if (r.name == kProcessRegion) id = r.id, size = r.size;
  if (!id) return;
  std::vector<uint8_t> meta(size);
  Image old;
  std::string why;
  if (tr.store->read_region(id, meta.data(), meta.size(), nullptr) != 0 ||
      decode_process(meta, &old, &why) != 0) {
    tr.store.reset();
    throw Error{kRefused, "--store " + tr.path + " holds a process image that cannot be read (" +
                              (why.empty() ? "damaged" : why) + "); --replace overwrites it"};
  }
  if (old.pid == img.pid && old.exe == img.exe) return;
  tr.store.reset();
  throw Error{kRefused, "--store " + tr.path + " holds the image of another process (pid " +
                            std::to_string(old.pid) + ", " + old.exe +
                            "); --replace overwrites it"};
}

// Per mapping: the pages the image holds after this checkpoint, and those to write now.
struct Plan {
  std::vector<bool> present;
  std::vector<uint64_t> put;  // page indices, ascending
  uint32_t region = 0;
};

struct Phases {  // seconds, for --stats and profiling
  double seize = 0, proc = 0, plan = 0, regions = 0, pages = 0, commit = 0;
  double read = 0;     // part of pages: reading the process's memory
  double threads = 0;  // part of proc: registers and DUMP_TASK
  double pagemap = 0;  // part of plan: /proc/PID/pagemap
  double meta = 0;     // part of plan: encoding (and checking) the metadata
  double begin = 0;    // the store's begin()
  double kill = 0;     // dump: SIGKILL and reaping the process (its memory is freed then)
  double vmas = 0;     // part of proc: /proc/PID/maps (or smaps)
  double fds = 0;      // part of proc: /proc/PID/fd and fdinfo
  double collect = 0;  // part of plan: ckpt.ko's dirty logs (COLLECT)
};

double since(std::chrono::steady_clock::time_point& t) {
  auto now = std::chrono::steady_clock::now();
  double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

enum class After { kRun, kLeaveRunning, kKill };

// One checkpoint of `pid` into tr's store. Full unless tr tracks the process and has a
// previous checkpoint: then only the pages ckpt.ko logged as written since are read.
int take(wp::Tracker& tr, int pid, After after, wp::DumpStats* stats) {
  auto t0 = std::chrono::steady_clock::now(), t = t0;
  Phases ph;
  struct rusage ru0 {};
  getrusage(RUSAGE_SELF, &ru0);
  if (kill(pid, 0) < 0 && errno == ESRCH)
    throw Error{kFailed, "no process " + std::to_string(pid)};
  uint64_t features = 0;
  int ckpt_fd = open_module(&features);
  std::unique_ptr<int, void (*)(int*)> ckpt_guard(new int(ckpt_fd), [](int* p) {
    close(*p);
    delete p;
  });
  Seized seized(pid);
  seize_and_stop(seized);
  if (seized.tids().size() > kMaxThreads)
    throw Error{kFailed, "more than " + std::to_string(kMaxThreads) + " threads"};
  if (tr.track && tr.usable && tr.fd < 0) {
    tr.fd = open_module();
    if (ckptdev::attach(tr.fd, uint64_t(pid))) tr.usable = false;
  }
  ph.seize = since(t);
  Image img;
  // The thread group leader first: restore turns it into the main thread.
  std::vector<int> order = seized.tids();
  std::stable_partition(order.begin(), order.end(), [pid](int x) { return x == pid; });
  if (order.empty() || order[0] != pid) throw Error{kFailed, "the main thread has exited"};
  for (int tid : order) {
    img.threads.emplace_back();
    read_thread(tid, ckpt_fd, features, &img, &img.threads.back());
  }
  img.shared_pending = peek_signals(pid, 1 /* PTRACE_PEEKSIGINFO_SHARED */);
  ph.threads = since(t);
  read_process(pid, &img);
  KnownFiles known;
  if (tr.have_prev) {
    for (const auto& v : tr.prev.vmas)
      if (v.kind == kFile) known[{v.file.path, v.file.ino}] = v.file;
    for (const auto& f : tr.prev.fds)
      if (f.kind == kFdRegular) known[{f.file.path, f.file.ino}] = f.file;
  }
  auto f0 = std::chrono::steady_clock::now();
  read_fds(pid, &img, &known);
  ph.fds = since(f0);
  read_vmas(pid, &img, &known, tr.track ? &tr.last_maps : nullptr);
  check_unsaved(pid, img, tr.lose);
  ph.vmas = since(f0);
  ph.proc = ph.threads + since(t);
  // Only now, with nothing refused: a refused dump leaves no store behind.
  open_store(tr);
  if (!tr.track) check_replace(tr, img);
  ckpt::store::Store& st = *tr.store;

  std::string base = "/proc/" + std::to_string(pid);
  int pm = open((base + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (pm < 0) throw Error{kFailed, base + "/pagemap: " + strerror(errno)};
  std::unique_ptr<int, void (*)(int*)> pm_guard(new int(pm), [](int* p) {
    close(*p);
    delete p;
  });
  MemReader mem(pid);
  if (img.vdso_start) {
    std::vector<uint8_t> vd(img.vdso_end - img.vdso_start);
    uint64_t idx[64];
    Vma vv;
    vv.start = img.vdso_start;
    vv.prot = PROT_READ;
    for (size_t k = 0; k < vd.size() / kPage && k < 64; k++) idx[k] = k;
    if (vd.size() > 64 * kPage) throw Error{kFailed, "unexpected vdso size"};
    mem.read(vv, idx, vd.size() / kPage, vd.data());
    img.vdso_hash = hash(vd.data(), vd.size());
  }

  uint64_t put = 0, kept = 0;
  try {
    // 1. Plan. Tracked regions whose mapping changed (split, grown, moved, gone) stop being
    // tracked first, so that the new mappings there can be registered.
    for (auto it = tr.regs.begin(); it != tr.regs.end();) {
      bool same = false;
      for (const auto& v : img.vmas) same |= v.start == it->second.start && v.end == it->second.end;
      if (same) {
        ++it;
        continue;
      }
      tr.unregister(it->second.id);
      it = tr.regs.erase(it);
    }
    std::vector<Plan> plan(img.vmas.size());
    std::map<uint64_t, wp::Tracker::Reg> keep;
    for (size_t i = 0; i < img.vmas.size(); i++) {
      Vma& v = img.vmas[i];
      Plan& p = plan[i];
      uint64_t pages = (v.end - v.start) / kPage;
      const Vma* pv = nullptr;
      auto it = tr.regs.find(v.start);
      if (tr.have_prev && it != tr.regs.end() && it->second.end == v.end)
        for (const auto& q : tr.prev.vmas)
          if (q.start == v.start && q.end == v.end && q.kind == v.kind && q.pgoff == v.pgoff &&
              q.file.ino == v.file.ino)
            pv = &q;
      if (pv) {
        // Incremental: a page is in the image if it is there now and was in the previous
        // image or was written since (a page that came back without a write, e.g. read after
        // MADV_DONTNEED, is a zero page the restore recreates by itself). Only the written
        // ones are read.
        auto c0 = std::chrono::steady_clock::now();
        std::vector<uint64_t> dirty;  // page indices, ascending, unique
        for (uint64_t a : collect(tr.fd, it->second.id, tr.scratch))
          if (a >= v.start && a < v.end) dirty.push_back((a - v.start) / kPage);
        if (!std::is_sorted(dirty.begin(), dirty.end())) std::sort(dirty.begin(), dirty.end());
        dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
        ph.collect += since(c0);
        // Is a page there now? ckpt.ko logs every page whose mapping changed since the last
        // checkpoint: written, or zapped (MADV_DONTNEED, munmap, swap-out, THP collapse; its
        // mmu notifier, kmod/mm.c). So a page of the last image that is not logged is still
        // there, unchanged, and only the logged ones are in question. A few logged pages of
        // an anonymous mapping are not worth a pagemap walk of the whole mapping (1-3 ms for
        // 64 MiB under TCG, the biggest part of a small checkpoint): they are taken as
        // present. One that was in fact dropped reads as zeros (process_vm_readv maps the
        // zero page there), so the image holds a page of zeros where the process has none:
        // the same bytes. Many logged pages (an munmap, a big MADV_DONTNEED, an mprotect) ask
        // pagemap, so as not to copy a dropped range's zeros; a private file mapping always
        // does, because a dropped page there shows the file again, which the image must not
        // freeze. Without pagemap the work is on runs and the logged pages, not per page.
        const bool ask = v.kind != kAnon || dirty.size() > pages / 8;
        if (!ask) {
          p.put = dirty;
          std::vector<Run> runs;  // the last image's runs and the logged pages, merged
          size_t d = 0;
          auto add = [&runs](uint64_t off, uint64_t len) {
            if (!runs.empty() && runs.back().offset + runs.back().len >= off) {
              const uint64_t end = std::max(runs.back().offset + runs.back().len, off + len);
              runs.back().len = end - runs.back().offset;
            } else {
              runs.push_back({off, len});
            }
          };
          for (const Run& r : pv->runs) {
            for (; d < dirty.size() && dirty[d] * kPage < r.offset; d++) add(dirty[d] * kPage, kPage);
            add(r.offset, r.len);
          }
          for (; d < dirty.size(); d++) add(dirty[d] * kPage, kPage);
          for (const Run& r : runs) kept += r.len / kPage;
          v.runs = std::move(runs);
        } else {
          std::vector<bool> was(pages, false), logged(pages, false);
          for (const auto& r : pv->runs)
            for (uint64_t k = 0; k < r.len / kPage; k++) was[r.offset / kPage + k] = true;
          for (uint64_t k : dirty) logged[k] = true;
          auto m0 = std::chrono::steady_clock::now();
          p.present = want_pages(pm, v, tr.scratch);
          ph.pagemap += since(m0);
          for (uint64_t k = 0; k < pages; k++) {
            p.present[k] = p.present[k] && (was[k] || logged[k]);
            if (p.present[k] && logged[k]) p.put.push_back(k);
          }
        }
        keep[v.start] = it->second;
        tr.regs.erase(it);
      } else {
        auto m0 = std::chrono::steady_clock::now();
        p.present = want_pages(pm, v, tr.scratch);
        ph.pagemap += since(m0);
        for (uint64_t k = 0; k < pages; k++)
          if (p.present[k]) p.put.push_back(k);
        if (tr.track && tr.usable && v.kind != kSharedAnon) {
          ckpt_register r{};
          r.start = v.start;
          r.len = v.end - v.start;
          if (ckptdev::register_range(tr.fd, &r) == 0) keep[v.start] = {r.id, v.start, v.end};
        }
      }
      for (uint64_t k = 0; k < p.present.size();) {  // empty when the runs are made above
        if (!p.present[k]) {
          k++;
          continue;
        }
        uint64_t e = k + 1;
        while (e < pages && p.present[e]) e++;
        v.runs.push_back({k * kPage, (e - k) * kPage});
        kept += e - k;
        k = e;
      }
      put += p.put.size();
    }
    kept -= put;
    // Regions whose mapping changed or went away: stop tracking them.
    for (auto& [start, r] : tr.regs) tr.unregister(r.id);
    tr.regs = std::move(keep);
    auto m0 = std::chrono::steady_clock::now();
    std::vector<uint8_t> meta = encode_process(img);
    {  // What restore will read must decode: a bug here must not make an image.
      Image check;
      std::string why;
      if (decode_process(meta, &check, &why))
        throw Error{kFailed, "internal error, the image does not validate: " + why};
    }
    ph.meta = since(m0);
    ph.plan = since(t);

    // 2. The store's regions follow the mappings: one per mapping with pages in the image,
    // resized as its pages change, removed when it is gone or empty; the metadata's.
    // A region ends with the mapping's last page in the image, not with the mapping: the store
    // reserves room for every region's full size, and a mostly untouched reservation (a big
    // malloc, a thread arena) would otherwise cost its whole size. Shrinking drops only pages
    // that are in no run; growing keeps every page.
    // Order: removals and shrinks first, then one reserve() for the whole new layout, then the
    // definitions and growths — so the store grows a file once, to exactly what the layout
    // needs, instead of a quarter more at each step (a 64 MiB dump made an 85 MB file).
    std::map<std::string, uint64_t> layout;  // name -> size after this checkpoint
    for (const Vma& v : img.vmas)
      if (!v.runs.empty()) layout[vma_region(v.start)] = v.runs.back().offset + v.runs.back().len;
    layout[kProcessRegion] = meta.size();
    std::map<std::string, RegionInfo> have;
    for (RegionInfo& r : st.regions()) have[r.name] = r;
    uint64_t layout_bytes = 0;
    for (const auto& [name, size] : layout) layout_bytes += size;
    for (auto it = have.begin(); it != have.end();) {
      auto w = layout.find(it->first);
      if (w == layout.end()) {
        if (int e = st.remove_region(it->second.id); e)
          throw Error{kFailed, store_error(st, e, ("removing region " + it->first).c_str())};
        it = have.erase(it);
        continue;
      }
      if (w->second < it->second.size) {
        if (int e = st.resize_region(it->second.id, w->second); e)
          throw Error{kFailed, store_error(st, e, ("resizing region " + it->first).c_str())};
        it->second.size = w->second;
      }
      ++it;
    }
    // run's later checkpoints write copies of the pages they change beside the committed ones:
    // a quarter more room now, so that those do not grow the file inside a pause (a growth of
    // 16 MiB on tmpfs cost the first incremental checkpoint of a 64 MiB process 0.15 s).
    // The quarter is a wish, not a need: a fixed-size store (a DAX device) or a full file
    // system that has room for the layout itself still takes the checkpoint.
    const uint64_t slack = tr.track ? layout_bytes / 4 / kPage * kPage : 0;
    int reserved = st.reserve(layout_bytes + slack, layout.size());
    if (reserved == -ENOSPC && slack) reserved = st.reserve(layout_bytes, layout.size());
    if (reserved) throw Error{kFailed, store_error(st, reserved, "making room in the store")};
    auto region = [&](const std::string& name) -> uint32_t {
      const uint64_t size = layout.at(name);
      auto it = have.find(name);
      uint32_t id;
      if (it == have.end()) {
        if (int e = st.define_region(name, size, &id); e)
          throw Error{kFailed, store_error(st, e, ("defining region " + name).c_str())};
        return id;
      }
      if (it->second.size != size)
        if (int e = st.resize_region(it->second.id, size); e)
          throw Error{kFailed, store_error(st, e, ("resizing region " + name).c_str())};
      return it->second.id;
    };
    for (size_t i = 0; i < img.vmas.size(); i++)
      if (!img.vmas[i].runs.empty()) plan[i].region = region(vma_region(img.vmas[i].start));
    uint32_t meta_region = region(kProcessRegion);
    ph.regions = since(t);

    // 3. While stopped: the pages to write, straight from the process into the store, in
    // batches of up to 1 MiB of one mapping. One put_pages per run of consecutive pages: the
    // store checksums and writes a run in few large writes.
    std::unique_ptr<ckpt::store::Txn> txn;
    if (int e = st.begin(&txn); e) throw Error{kFailed, store_error(st, e, "store")};
    ph.begin = since(t);
    struct Batch {
      size_t vma, first, n;  // plan[vma].put[first, first + n)
    };
    std::vector<Batch> batches;
    for (size_t i = 0; i < img.vmas.size(); i++)
      for (size_t k = 0; k < plan[i].put.size(); k += wp::kBatch)
        batches.push_back({i, k, std::min(wp::kBatch, plan[i].put.size() - k)});
    auto store_batch = [&](const Batch& b, const uint8_t* buf) {
      const Plan& p = plan[b.vma];
      for (size_t j = 0; j < b.n;) {
        size_t e = j + 1;
        while (e < b.n && p.put[b.first + e] == p.put[b.first + j] + (e - j)) e++;
        if (int err = txn->put_pages(p.region, p.put[b.first + j], buf + j * kPage, e - j); err)
          throw Error{kFailed, store_error(st, err, "writing the store")};
        j = e;
      }
    };
    // The process is let go as soon as what the checkpoint needs from it is in our hands: the
    // pages are then checksummed and written while it runs (ckpt.ko has logged and
    // write-protected them again, so a write now is the next checkpoint's).
    bool let_go = false;
    double paused = 0;
    auto release = [&] {
      if (let_go) return;
      if (after != After::kKill) seized.detach();
      paused = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      let_go = true;
    };
    uint8_t* bufs = tr.buffers(wp::kDepth);
    if (put <= wp::kDepth * wp::kBatch) {
      // A small checkpoint (run's incremental ones; pages of several mappings): every page is
      // read first, packed into the buffers, then the process goes on during the store's part.
      // A thread would cost more than it overlaps.
      std::vector<size_t> at(batches.size());
      size_t next = 0;
      auto r0 = std::chrono::steady_clock::now();
      for (size_t b = 0; b < batches.size(); b++) {
        at[b] = next;
        mem.read(img.vmas[batches[b].vma], &plan[batches[b].vma].put[batches[b].first],
                 batches[b].n, bufs + next * kPage);
        next += batches[b].n;
      }
      ph.read = since(r0);
      release();
      for (size_t b = 0; b < batches.size(); b++) store_batch(batches[b], bufs + at[b] * kPage);
    } else {
      // A reader thread fills the next buffers with process_vm_readv while this one checksums
      // and hands the last to the store (its writes run in io_uring's workers): the copy out of
      // the process, the checksums and the store's copy in then share the CPUs instead of
      // taking turns. Buffers are reused (a fresh one costs a page fault per page).
      struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        size_t read = 0, stored = 0;  // batches done by each side
        bool stop = false;            // the writer gave up
        std::exception_ptr failed;    // the reader's error
        double read_s = 0;
      } sh;
      const size_t nb = batches.size();
      std::thread reader([&] {
        double busy = 0;
        try {
          for (size_t b = 0; b < nb; b++) {
            {
              std::unique_lock<std::mutex> l(sh.mu);
              sh.cv.wait(l, [&] { return sh.stop || b - sh.stored < wp::kDepth; });
              if (sh.stop) break;
            }
            const Batch& x = batches[b];
            auto r0 = std::chrono::steady_clock::now();
            mem.read(img.vmas[x.vma], &plan[x.vma].put[x.first], x.n,
                     bufs + (b % wp::kDepth) * wp::kBatch * kPage);
            busy += since(r0);
            std::lock_guard<std::mutex> l(sh.mu);
            sh.read = b + 1;
            sh.cv.notify_all();
          }
        } catch (...) {
          std::lock_guard<std::mutex> l(sh.mu);
          sh.failed = std::current_exception();
          sh.cv.notify_all();
        }
        std::lock_guard<std::mutex> l(sh.mu);
        sh.read_s = busy;
      });
      auto finish = [&] {
        {
          std::lock_guard<std::mutex> l(sh.mu);
          sh.stop = true;
          sh.cv.notify_all();
        }
        reader.join();
      };
      try {
        for (size_t b = 0; b < nb; b++) {
          {
            std::unique_lock<std::mutex> l(sh.mu);
            sh.cv.wait(l, [&] { return sh.read > b || sh.failed; });
            if (sh.read <= b) std::rethrow_exception(sh.failed);
          }
          store_batch(batches[b], bufs + (b % wp::kDepth) * wp::kBatch * kPage);
          std::lock_guard<std::mutex> l(sh.mu);
          sh.stored = b + 1;
          sh.cv.notify_all();
        }
      } catch (...) {
        finish();
        throw;
      }
      finish();
      ph.read = sh.read_s;
    }
    if (int e = txn->put_pages(meta_region, 0, meta.data(), meta.size() / kPage); e)
      throw Error{kFailed, store_error(st, e, "writing the store")};
    ph.pages = ph.begin + since(t);
    // The pages are in the store's hands: the process may run on while the commit persists.
    release();
    if (int e = txn->commit(); e) throw Error{kFailed, store_error(st, e, "committing the store")};
    ph.commit = since(t);
    if (after == After::kKill) seized.kill_it();
    ph.kill = since(t);
    tr.have_prev = tr.track && tr.usable;
    if (stats) {
      stats->threads = img.threads.size();
      stats->vmas = img.vmas.size();
      stats->pages = put;
      stats->reused = kept;
      stats->stopped_s = after == After::kKill ? 0 : paused;
      stats->total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats->epoch = st.epoch();
      stats->bytes = (put + meta.size() / kPage) * kPage;
    }
    if (getenv("CKPT_TOOL_PHASES")) {
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      std::fprintf(stderr,
                   "ckpt-tool phases: seize %.4f proc %.4f (threads %.4f, fds %.4f, maps %.4f) "
                   "plan %.4f (pagemap %.4f, collect %.4f, metadata %.4f) regions %.4f pages "
                   "%.4f (begin %.4f, reading the process %.4f) commit %.4f kill %.4f s (%" PRIu64
                   " pages; the tool's own page faults %ld)\n",
                   ph.seize, ph.proc, ph.threads, ph.fds, ph.vmas, ph.plan, ph.pagemap, ph.collect,
                   ph.meta, ph.regions, ph.pages, ph.begin, ph.read, ph.commit, ph.kill, put,
                   ru.ru_minflt - ru0.ru_minflt);
    }
    tr.prev = std::move(img);
  } catch (...) {
    // The dirty logs taken so far are in no image: the next checkpoint must be a full one.
    tr.reset();
    throw;
  }
  return kOk;
}

}  // namespace

void wp::set_store_mode(Tracker* tr, bool create, bool force, bool replace) {
  tr->create = create;
  tr->force = force;
  tr->replace = replace;
}

bool wp::holds_image(const std::string& path, std::string* what) {
  ckpt::store::Options o;
  o.no_modify = true;
  o.mac_key = store_key();
  std::unique_ptr<ckpt::store::Store> st;
  if (ckpt::store::Store::open(path, o, &st) != 0 || st->epoch() == 0) return false;
  for (const RegionInfo& r : st->regions()) {
    if (r.name != kProcessRegion) continue;
    std::vector<uint8_t> meta(r.size);
    Image img;
    *what = "a process";
    if (st->read_region(r.id, meta.data(), meta.size(), nullptr) == 0 &&
        decode_process(meta, &img, nullptr) == 0)
      *what = "process " + std::to_string(img.pid) + " (" + img.exe + ")";
    return true;
  }
  return false;
}

int wp::checkpoint(const std::string& store, pid_t pid, Tracker* tr, DumpStats* stats,
                   std::string* why) {
  try {
    if (tr->path.empty()) tr->path = store;
    return take(*tr, pid, After::kRun, stats);
  } catch (const Error& e) {
    *why = e.msg;
    return e.code;
  }
}

void add_store_mode_flags(CLI::App* sub, StoreMode* m, const std::string& replace_help) {
  sub->add_flag("--create", m->create,
                "make a store of an existing path that holds none (an empty or zeroed file, a "
                "block device libblkid finds nothing on)");
  sub->add_flag("--force", m->force,
                "format the path whatever it holds: a file system, partition table, other data "
                "(destroys it)");
  sub->add_flag("--replace", m->replace, replace_help);
}

void add_dump(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    int pid = 0;
    bool leave_running = false;
    StoreMode mode;
    std::vector<std::string> lose;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "dump", "Checkpoint a running process (memory, registers, files) into a store; the "
              "process is killed afterwards unless --leave-running");
  add_key_file_option(sub);
  sub->add_option("--store", o->store,
                  "store to write (file, DAX file or device-DAX; created if missing); the "
                  "process image replaces the same process's earlier one, in one atomic commit")
      ->required();
  add_store_mode_flags(sub, &o->mode,
                       "overwrite the image of another process (another PID or program) the store "
                       "holds");
  sub->add_option("--lose", o->lose,
                  "dump although the process has this state, which is not saved and is lost at "
                  "restore: shared-offset (a file offset shared with another process), sysv-ipc "
                  "(System V IPC objects it used); repeatable")
      ->check(CLI::IsMember({"shared-offset", "sysv-ipc"}))
      ->allow_extra_args(false)
      ->delimiter(',');
  sub->add_option("pid", o->pid, "process to dump (you must be allowed to ptrace it)")
      ->required()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--leave-running", o->leave_running, "let the process continue after the dump");
  sub->callback([&run, o] {
    run = [o] {
      auto t0 = std::chrono::steady_clock::now();
      wp::Tracker tr;
      tr.path = o->store;
      tr.track = false;
      tr.create = o->mode.create;
      tr.force = o->mode.force;
      tr.replace = o->mode.replace;
      tr.lose.insert(o->lose.begin(), o->lose.end());
      wp::DumpStats ds;
      try {
        take(tr, o->pid, o->leave_running ? After::kLeaveRunning : After::kKill, &ds);
      } catch (const Error& e) {
        std::fprintf(stderr, "ckpt-tool dump: %s\n", e.msg.c_str());
        return e.code;
      }
      auto c0 = std::chrono::steady_clock::now();
      tr.store.reset();  // closed (io_uring torn down, lock released) before we say it is done
      if (getenv("CKPT_TOOL_PHASES"))
        std::fprintf(stderr, "ckpt-tool phases: store closed in %.4f s\n",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count());
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr,
                   "ckpt-tool dump: pid %d: %" PRIu64 " threads, %" PRIu64 " mappings, %" PRIu64
                   " pages (%.1f MiB) in %.3f s, epoch %" PRIu64 "; %s\n",
                   o->pid, ds.threads, ds.vmas, ds.pages, double(ds.pages * kPage) / (1 << 20),
                   secs, ds.epoch, o->leave_running ? "left running" : "killed");
      return int(kOk);
    };
  });
}

}  // namespace ckpt_tool

// SPDX-License-Identifier: MIT
// ckpt-tool restore, become (restore.hpp): what a process can set on itself, in the child:
// signal handlers and queued signals, alternate stacks, resource limits, ITIMER_REAL, the
// personality and prctl state, the image's credentials (--as-image-user), scheduling and
// oom_score_adj.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "proc.hpp"
#include "restore.hpp"

namespace ckpt_tool::restore {

using namespace image;
using arch::raw_syscall;

namespace {

struct KSigaction {
  uint64_t handler, flags, restorer, mask;
};

}  // namespace

void set_signals(const Image& img) {
  for (int sig = 1; sig <= kNsig; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const SigAction& a = img.actions[sig - 1];
    KSigaction k{a.handler, a.flags, a.restorer, a.mask};
    if (syscall(SYS_rt_sigaction, sig, &k, nullptr, 8) < 0)
      throw Error{kFailed, "restoring the handler of signal " + std::to_string(sig) + ": " + strerror(errno)};
  }
}

// The image's resource limits, set last (just before COMMIT): a low RLIMIT_AS, NPROC or
// NOFILE must not get in the way of the restorer's own work. Raising a hard limit needs
// CAP_SYS_RESOURCE, as it would for the process itself: refused otherwise.
void set_rlimits(const Image& img) {
  static const char* const kNames[kNlimits] = {
      "RLIMIT_CPU",    "RLIMIT_FSIZE",  "RLIMIT_DATA",   "RLIMIT_STACK",
      "RLIMIT_CORE",   "RLIMIT_RSS",    "RLIMIT_NPROC",  "RLIMIT_NOFILE",
      "RLIMIT_MEMLOCK", "RLIMIT_AS",    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
      "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
  if (!img.has_rlimits) return;
  for (int i = 0; i < kNlimits; i++) {
    struct rlimit rl = {rlim_t(img.rlimits[i].cur), rlim_t(img.rlimits[i].max)};
    if (prlimit(0, __rlimit_resource(i), &rl, nullptr) < 0)
      throw Error{kFailed, std::string("restoring ") + kNames[i] + ": " + strerror(errno) +
          (errno == EPERM ? " (the image's hard limit is above yours)" : "")};
  }
}

// Queue `q`'s signals again, to the calling thread (thread) or to the process: 0, or -errno
// with *signo the signal refused. Every signal is blocked in the restorer, so they wait, and
// COMMIT's mask decides which are delivered on the way into the image. A thread may queue any
// siginfo to itself, but no other thread may queue it a kernel-made or tgkill one (si_code >= 0
// or SI_TKILL): each queues its own, the helper threads too (raw syscalls only, no allocation).
long requeue(const std::vector<std::vector<uint8_t>>& q, bool thread, int* signo) {
  const long pid = raw_syscall(SYS_getpid, 0), tid = thread ? raw_syscall(SYS_gettid, 0) : 0;
  for (const auto& si : q) {
    siginfo_t info;
    std::memcpy(&info, si.data(), sizeof(info));
    *signo = info.si_signo;
    long e = thread ? raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, info.si_signo, long(&info))
                    : raw_syscall(SYS_rt_sigqueueinfo, pid, info.si_signo, long(&info));
    if (e < 0) return e;
  }
  return 0;
}

void queue_signals(const std::vector<std::vector<uint8_t>>& q, bool thread) {
  int signo = 0;
  if (long e = requeue(q, thread, &signo); e < 0)
    throw Error{kFailed, "queueing signal " + std::to_string(signo) + " again: " + strerror(int(-e)) +
        (e == -EAGAIN ? " (RLIMIT_SIGPENDING)" : "")};
}

// The calling thread's alternate signal stack as the image had it: 0 or -errno. Raw syscalls
// only, like requeue: the helper threads call it too.
long altstack(const Thread& t) {
  if (!t.sas_size) return 0;
  stack_t ss{};
  ss.ss_sp = reinterpret_cast<void*>(t.sas_sp);
  ss.ss_size = t.sas_size;
  ss.ss_flags = int(t.sas_flags & (1u << 31));  // SS_AUTODISARM
  return raw_syscall(SYS_sigaltstack, long(&ss));
}

void set_altstack(const Thread& t) {
  if (long e = altstack(t); e < 0)
    throw Error{kFailed, std::string("restoring the alternate signal stack: ") + strerror(int(-e))};
}

// ITIMER_REAL as the dump found it (format 2.3): the time it had left, and its interval. It is
// the process's (this child becomes the restored process), armed last, just before COMMIT; a
// SIGALRM that comes before the image's handlers are in place stays pending (every signal is
// blocked here) and is delivered under the image's mask.
void set_itimer(const Image& img) {
  if (!img.itimer_real_ns && !img.itimer_real_interval_ns) return;
  auto tv = [](uint64_t ns) {
    return timeval{time_t(ns / 1000000000), suseconds_t(ns % 1000000000 / 1000)};
  };
  // No time left but an interval: it fired while the process was stopped and the kernel would
  // have re-armed it for one interval when the (restored, pending) SIGALRM was dequeued.
  itimerval it{tv(img.itimer_real_interval_ns),
               tv(img.itimer_real_ns ? img.itimer_real_ns : img.itimer_real_interval_ns)};
  if (!it.it_value.tv_sec && !it.it_value.tv_usec) it.it_value.tv_usec = 1;  // < 1 us left
  if (setitimer(ITIMER_REAL, &it, nullptr) < 0) throw Error{kFailed, std::string("setitimer: ") + strerror(errno)};
}

namespace {

// 2.8: coredump_filter (the mm's: COMMIT keeps the mm), the timer slack and the CPU affinity,
// which the threads created afterwards inherit. An affinity with none of this system's usable
// CPUs fails the restore.
void set_attrs(const Image& img) {
  if (!img.has_attrs) return;
  char v[32];
  // The kernel reads it with base 0 (kstrtouint): without "0x" it would be decimal.
  std::snprintf(v, sizeof v, "0x%llx", static_cast<unsigned long long>(img.coredump_filter));
  int fd = open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, v, strlen(v)) != ssize_t(strlen(v)))
    throw Error{kFailed, std::string("restoring coredump_filter: ") + strerror(errno)};
  close(fd);
  if (img.timer_slack_ns && prctl(PR_SET_TIMERSLACK, img.timer_slack_ns, 0, 0, 0) < 0)
    throw Error{kFailed, std::string("restoring the timer slack: ") + strerror(errno)};
  if (!img.affinity.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (size_t w = 0; w < img.affinity.size(); w++)
      for (int b = 0; b < 64; b++)
        if (img.affinity[w] >> b & 1 && w * 64 + size_t(b) < CPU_SETSIZE) CPU_SET(w * 64 + size_t(b), &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
      throw Error{kFailed, std::string("restoring the CPU affinity: ") + strerror(errno) +
          (errno == EINVAL ? " (none of its CPUs is usable here)" : "")};
  }
}

}  // namespace

// personality(2) and prctl(2) state (format 2.4), set in the child before its mappings are
// built and its threads created, all of which inherit it: THP disabled (so that the reads do
// not fault huge pages in), no_new_privs (a one-way switch: the restored process never has
// fewer restrictions than the dump found), the personality. An older image leaves the
// restorer's own.
void set_task_state(const Image& img) {
  if (!img.has_task_state) return;
  if ((img.task_flags & kTaskThpDisable) && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
    throw Error{kFailed, std::string("PR_SET_THP_DISABLE: ") + strerror(errno)};
  if ((img.task_flags & kTaskNoNewPrivs) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    throw Error{kFailed, std::string("PR_SET_NO_NEW_PRIVS: ") + strerror(errno)};
  personality(static_cast<unsigned long>(img.personality));
  if (uint64_t(unsigned(personality(0xffffffff))) != img.personality)
    throw Error{kFailed, "the personality " + hex(img.personality) + " was not taken"};
  // 2.8: its own process group or session again (the child of `ckpt-tool restore` leads
  // neither, so both calls may succeed); a member of another's group stays in the restorer's.
  if ((img.task_flags & kTaskSessionLeader) && setsid() < 0)
    throw Error{kFailed, std::string("restoring the session (setsid): ") + strerror(errno)};
  if ((img.task_flags & kTaskPgrpLeader) && setpgid(0, 0) < 0)
    throw Error{kFailed, std::string("restoring the process group (setpgid): ") + strerror(errno)};
  set_attrs(img);
}

// restore --as-image-user: the image's credentials (format 2.5), exactly, or the restore fails.
// Set in the child once its /dev/ckpt sessions are open (the image's user need not be in the
// ckpt group) and before it opens or maps any file of the image, which it then does with the
// image's rights, not the caller's. The bounding set first (dropping needs CAP_SETPCAP), then
// groups, gids, uids (capabilities kept across the uid change), then the capability sets,
// which may only shrink: an image with a capability the caller lacks is refused. The child is
// single-threaded here, so the set*id calls concern it alone.
void become_image_user(const Image& img) {
  const Creds& c = img.creds;
  for (int cap = 0; cap < 64; cap++)
    if (!(c.cap_bnd >> cap & 1) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 &&
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
      throw Error{kFailed, "dropping capability " + std::to_string(cap) + " from the bounding set: " +
          strerror(errno)};
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) throw Error{kFailed, std::string("PR_SET_KEEPCAPS: ") + strerror(errno)};
  std::vector<gid_t> groups(c.groups.begin(), c.groups.end());
  auto need = [&](const char* what, long rc) {
    if (rc < 0)
      throw Error{kFailed, std::string("running as the image's user (uid ") + std::to_string(c.uid[1]) +
          ", gid " + std::to_string(c.gid[1]) + "): " + what + ": " + strerror(errno) +
          (errno == EPERM ? " (only a caller with CAP_SETUID and CAP_SETGID may)" : "")};
  };
  need("setgroups", setgroups(groups.size(), groups.data()));
  need("setresgid", setresgid(gid_t(c.gid[0]), gid_t(c.gid[1]), gid_t(c.gid[2])));
  setfsgid(gid_t(c.gid[3]));
  need("setresuid", setresuid(uid_t(c.uid[0]), uid_t(c.uid[1]), uid_t(c.uid[2])));
  setfsuid(uid_t(c.uid[3]));
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  for (int i = 0; i < 2; i++) {
    d[i].effective = uint32_t(c.cap_eff >> (32 * i));
    d[i].permitted = uint32_t(c.cap_prm >> (32 * i));
    d[i].inheritable = uint32_t(c.cap_inh >> (32 * i));
  }
  if (syscall(SYS_capset, &h, d) < 0)
    throw Error{kFailed, std::string("setting the image's capabilities: ") + strerror(errno) +
        (errno == EPERM ? " (the image had capabilities you do not have)" : "")};
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int cap = 0; cap < 64; cap++)
    if ((c.cap_amb >> cap & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      throw Error{kFailed, "raising ambient capability " + std::to_string(cap) + ": " + strerror(errno)};
  // A uid change made the child non-dumpable (its /proc files root's): a process of that user
  // started normally is dumpable, and restore writes its own /proc/self/oom_score_adj.
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  std::string st;
  Creds now;
  if (proc::read_file("/proc/self/status", &st) || proc::creds_from_status(st, &now) || !(now == c))
    throw Error{kFailed, "the restorer's credentials could not be made exactly the image's"};
}

// Scheduling and oom_score_adj (format 2.5), set just before COMMIT (after the resource
// limits: RLIMIT_NICE and RLIMIT_RTPRIO may be what allows them) for every thread: `tids`.
// What the caller may not set (a negative nice value or a real-time policy without
// CAP_SYS_NICE or the limit, a lower oom_score_adj without CAP_SYS_RESOURCE) fails the restore.
void set_sched(const Image& img, const std::vector<pid_t>& tids) {
  if (!img.has_creds) return;
  static const char* const kPolicy[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
                                        "?",           "SCHED_IDLE"};
  for (pid_t tid : tids) {
    sched_param sp{};
    sp.sched_priority = int(img.sched_priority);
    if (sched_setscheduler(tid, int(img.sched_policy), &sp) < 0)
      throw Error{kFailed, std::string("restoring the scheduling policy ") + kPolicy[img.sched_policy] +
          " (priority " + std::to_string(img.sched_priority) + "): " + strerror(errno)};
    if (setpriority(PRIO_PROCESS, id_t(tid), int(img.nice)) < 0)
      throw Error{kFailed, "restoring nice " + std::to_string(img.nice) + ": " + strerror(errno) +
          (errno == EACCES || errno == EPERM ? " (a lower nice value needs CAP_SYS_NICE or RLIMIT_NICE)" : "")};
  }
  std::string cur;
  if (proc::read_file("/proc/self/oom_score_adj", &cur) == 0 &&
      strtol(cur.c_str(), nullptr, 10) == img.oom_score_adj)
    return;
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  const std::string v = std::to_string(img.oom_score_adj);
  if (fd < 0 || write(fd, v.data(), v.size()) != ssize_t(v.size()))
    throw Error{kFailed, "restoring oom_score_adj " + v + ": " + strerror(errno) +
        (errno == EACCES ? " (a lower value needs CAP_SYS_RESOURCE)" : "")};
  close(fd);
}

}  // namespace ckpt_tool::restore

// SPDX-License-Identifier: MIT
// ckpt-tool dump, capture: the process's own state from /proc/PID (comm, cwd, exe, status,
// stat, personality, oom_score_adj), its scheduling and resource limits.
#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "dump.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump {
namespace {

using namespace image;

// stat's pgrp (5), session (6) and tty_nr (7): a process that leads its process group or its
// session is given one again at restore (setpgid(0, 0), setsid()); one that is a member of
// another's joins ckpt-tool restore's, as a shell job does (a relation to other processes,
// like its parent). A session leader with a controlling terminal is refused: setsid() gives
// none, and the terminal is not saved.
void group_and_session(int pid, uint64_t pgrp, uint64_t sid, uint64_t tty, Image* img) {
  if (sid == uint64_t(pid)) {
    if (tty) refuse::session_tty(tty);
    img->task_flags |= kTaskSessionLeader;
  } else if (pgrp == uint64_t(pid)) {
    img->task_flags |= kTaskPgrpLeader;
  }
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
  group_and_session(pid, field(5), field(6), field(7), img);
}

// "name : value" of a /proc/PID/task/TID/sched file ("" when missing: CONFIG_UCLAMP_TASK off).
std::string sched_line(const std::string& sched, const char* name) {
  const std::string key = std::string("\n") + name;
  for (size_t p = sched.find(key); p != std::string::npos; p = sched.find(key, p + 1)) {
    size_t c = p + key.size();
    while (c < sched.size() && sched[c] == ' ') c++;
    if (c >= sched.size() || sched[c] != ':') continue;  // a longer name
    c++;
    while (c < sched.size() && sched[c] == ' ') c++;
    return sched.substr(c, sched.find('\n', c) - c);
  }
  return "";
}

// A CPU mask, as many 64-bit words as CPUs this system may have (trailing zero words dropped).
std::vector<uint64_t> affinity_of(int tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof(set), &set) < 0)
    throw Error{kFailed, "CPU affinity of thread " + std::to_string(tid) + ": " + strerror(errno)};
  std::vector<uint64_t> w(kMaxCpuWords, 0);
  for (int c = 0; c < CPU_SETSIZE && size_t(c / 64) < kMaxCpuWords; c++)
    if (CPU_ISSET(c, &set)) w[size_t(c / 64)] |= 1ull << (c % 64);
  while (!w.empty() && !w.back()) w.pop_back();
  return w;
}

// What each thread set on itself that is not saved, compared with ckpt-tool's own (the
// default a process started by it would have): speculation control (PR_SET_SPECULATION_CTRL,
// status), utilisation clamps (sched_setattr, sched), CPU affinity (saved once for the
// process: a thread with another is refused).
struct Own {
  std::string ssb, ib, umin, umax;
  std::vector<uint64_t> affinity;
};
Own own_attrs() {
  Own o;
  std::string s;
  proc::read_file("/proc/self/status", &s);
  o.ssb = proc::status_line(s, "Speculation_Store_Bypass");
  o.ib = proc::status_line(s, "SpeculationIndirectBranch");
  s.clear();
  proc::read_file("/proc/self/sched", &s);
  o.umin = sched_line(s, "uclamp.min");
  o.umax = sched_line(s, "uclamp.max");
  o.affinity = affinity_of(0);
  return o;
}

void check_thread_attrs(int pid, int tid, const std::string& status, int policy, const Own& own,
                        const std::vector<uint64_t>& affinity) {
  for (const char* f : {"Speculation_Store_Bypass", "SpeculationIndirectBranch"}) {
    const std::string theirs = proc::status_line(status, f);
    const std::string& ours = std::strcmp(f, "Speculation_Store_Bypass") == 0 ? own.ssb : own.ib;
    if (theirs != ours) refuse::speculation(tid, f, theirs, ours);
  }
  std::string sched;
  proc::read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/sched", &sched);
  const std::string umin = sched_line(sched, "uclamp.min"), umax = sched_line(sched, "uclamp.max");
  // A real-time thread's minimum clamp is the system's default for real-time tasks.
  const bool rt = (policy & ~SCHED_RESET_ON_FORK) == SCHED_FIFO || (policy & ~SCHED_RESET_ON_FORK) == SCHED_RR;
  if ((!rt && umin != own.umin) || umax != own.umax) refuse::uclamp(tid, umin, umax);
  if (affinity_of(tid) != affinity) refuse::thread_affinity(tid);
}

// 2.8: coredump_filter (the mm's), the main thread's timer slack (reading another process's
// needs CAP_SYS_NICE: without it, 0 = not saved, the restorer's), the CPU affinity (recorded
// only when it differs from ckpt-tool's own), and KSM merge-any (refused: not saved).
void read_attrs(int pid, Image* img, const std::vector<uint64_t>& affinity, const Own& own) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::string s;
  if (int e = proc::read_file(base + "/coredump_filter", &s); e)
    throw Error{kFailed, "coredump_filter: " + errstr(e)};
  img->coredump_filter = strtoull(s.c_str(), nullptr, 16) & 0x1ff;
  s.clear();
  if (proc::read_file(base + "/timerslack_ns", &s) == 0) img->timer_slack_ns = strtoull(s.c_str(), nullptr, 10);
  if (affinity != own.affinity) img->affinity = affinity;
  s.clear();
  if (proc::read_file(base + "/ksm_stat", &s) == 0 && s.find("ksm_merge_any: yes") != std::string::npos)
    refuse::ksm_merge_any();
  img->has_attrs = true;
}

// "Name:\tvalue" of /proc/PID/status as a number in `base`, or -1 when the line is missing (a
// kernel without it).
long status_field(const std::string& status, const char* name, int base = 10) {
  const std::string key = std::string("\n") + name + ":\t";
  size_t p = status.find(key);
  return p == std::string::npos ? -1 : strtol(status.c_str() + p + key.size(), nullptr, base);
}

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

// no_new_privs and seccomp belong to each thread (the leader's status, `s`, is the process's);
// credentials and scheduling are saved once for the process: threads that differ are refused.
void check_threads(int pid, const std::string& s, const Sched& sched, Image* img) {
  const std::string base = "/proc/" + std::to_string(pid);
  static const Own own = own_attrs();  // ckpt-tool's own do not change: read once (run)
  const std::vector<uint64_t> affinity = affinity_of(pid);
  for (size_t i = 0; i < img->threads.size(); i++) {
    std::string ts;
    if (i > 0) {
      const std::string path = base + "/task/" + std::to_string(img->threads[i].tid) + "/status";
      if (int e = proc::read_file(path, &ts); e) throw Error{kFailed, path + ": " + errstr(e)};
    }
    const std::string& st = i ? ts : s;
    if (const long mode = status_field(st, "Seccomp"); mode > 0) refuse::seccomp(mode);
    if (status_field(st, "NoNewPrivs") == 1) img->task_flags |= kTaskNoNewPrivs;
    if (i > 0) {
      const int tid = int(img->threads[i].tid);
      if (!(creds_from_status(st) == img->creds)) refuse::thread_creds(tid);
      if (!(read_sched(tid) == sched)) refuse::thread_sched(tid);
    }
    check_thread_attrs(pid, int(img->threads[i].tid), st, sched.policy, own, affinity);
  }
  read_attrs(pid, img, affinity, own);
}

}  // namespace

void capture_process(int pid, Image* img) {
  std::string base = "/proc/" + std::to_string(pid);
  img->pid = uint64_t(pid);
  std::string s;
  if (proc::read_file(base + "/comm", &s) == 0) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    img->comm = s.substr(0, 15);
  }
  if (int e = proc::read_link(base + "/cwd", &img->cwd); e)
    throw Error{kFailed, "cwd: " + errstr(e)};
  if (ends_with(img->cwd, " (deleted)")) refuse::deleted_cwd(img->cwd);
  proc::read_link(base + "/exe", &img->exe);
  if (int e = proc::read_file(base + "/status", &s); e) throw Error{kFailed, "status: " + errstr(e)};
  if (const long umask = status_field(s, "Umask", 8); umask >= 0) img->umask = uint64_t(umask);
  if (status_field(s, "THP_enabled") == 0) img->task_flags |= kTaskThpDisable;  // per process
  // Credentials and scheduling, saved once for the process: threads that differ are refused.
  img->creds = creds_from_status(s);
  img->has_creds = true;
  const Sched sched = read_sched(pid);
  if (sched.policy & SCHED_RESET_ON_FORK) refuse::sched_reset_on_fork();
  if (sched.policy != SCHED_OTHER && sched.policy != SCHED_BATCH && sched.policy != SCHED_IDLE &&
      sched.policy != SCHED_FIFO && sched.policy != SCHED_RR)
    refuse::sched_policy(sched.policy);
  img->sched_policy = uint64_t(sched.policy);
  img->sched_priority = uint64_t(sched.priority);
  img->nice = sched.nice;
  std::string oom;
  if (int e = proc::read_file(base + "/oom_score_adj", &oom); e)
    throw Error{kFailed, "oom_score_adj: " + errstr(e)};
  img->oom_score_adj = strtol(oom.c_str(), nullptr, 10);
  check_threads(pid, s, sched, img);
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

}  // namespace ckpt_tool::dump

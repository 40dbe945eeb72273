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
  }
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

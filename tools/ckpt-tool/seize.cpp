// SPDX-License-Identifier: MIT
// ckpt-tool dump, step 1: seize. Every thread of the process stopped with PTRACE_SEIZE +
// PTRACE_INTERRUPT (no signal the process could see), let go or killed at the end.
#include <fcntl.h>
#include <linux/ckpt.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ckptdev.hpp"
#include "cmd.hpp"
#include "dump.hpp"

namespace ckpt_tool {
namespace {

// Exit statuses the dump's own waitpid() took from a child that died meanwhile (run's
// supervisor asks for them: it is the parent and would otherwise lose the status).
std::map<int, int> g_reaped;

}  // namespace

namespace dump {

bool Seized::has(int tid) const { return std::find(tids_.begin(), tids_.end(), tid) != tids_.end(); }

void Seized::detach() {
  for (int t : tids_) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
  tids_.clear();
}

void Seized::kill_it() {
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

void Seized::stop_one(int tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) < 0) {
    if (errno == ESRCH && tid != pid_) return;  // a thread that just exited
    if (errno == EPERM)
      throw Error{kFailed, "not allowed to ptrace " + std::to_string(pid_) +
                               ": dump needs the same user (and a dumpable process) or "
                               "CAP_SYS_PTRACE; see also /proc/sys/kernel/yama/ptrace_scope"};
    throw Error{kFailed, "ptrace(SEIZE) " + std::to_string(tid) + ": " + strerror(errno)};
  }
  tids_.push_back(tid);
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

void Seized::stop_all() {
  for (int round = 0;; round++) {
    std::vector<int> tasks;
    if (int e = proc::list_tasks(pid_, &tasks); e)
      throw Error{kFailed, "process " + std::to_string(pid_) + ": " + errstr(e)};
    bool added = false;
    for (int t : tasks)
      if (!has(t)) {
        stop_one(t);
        added = true;
      }
    if (!added) return;
    if (round > 1000) throw Error{kFailed, "the process keeps creating threads"};
  }
}

int open_module(uint64_t* features) {
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

}  // namespace dump

bool wp::reaped_status(pid_t pid, int* wstatus) {
  auto it = g_reaped.find(pid);
  if (it == g_reaped.end()) return false;
  *wstatus = it->second;
  g_reaped.erase(it);
  return true;
}

}  // namespace ckpt_tool

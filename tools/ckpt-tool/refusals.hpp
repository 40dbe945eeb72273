// SPDX-License-Identifier: MIT
// ckpt-tool dump: whatever dump does not save, it refuses by name, and every such refusal is
// here (refusals.cpp), with the message the user sees. The capture steps find the state;
// these say why it is refused. Each throws Error: kFailed, or kRefused when a --lose option
// accepts the loss (the message names it). Documentation/whole-process.md lists them.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "image.hpp"

namespace ckpt_tool::dump::refuse {

// capture_threads.cpp (ckpt.ko's DUMP_TASK)
[[noreturn]] void child_subreaper();
// `timers`: the CKPT_TIMER_* bits of the timers dump does not save.
[[noreturn]] void timers(uint64_t timers);
[[noreturn]] void too_many_threads();

// capture_process.cpp (/proc/PID/status, sched_getscheduler)
[[noreturn]] void deleted_cwd(const std::string& cwd);
[[noreturn]] void sched_reset_on_fork();
[[noreturn]] void sched_policy(int policy);
[[noreturn]] void seccomp(long mode);
[[noreturn]] void thread_creds(int tid);
[[noreturn]] void thread_sched(int tid);
// Not saved, refused when a thread's differs from ckpt-tool's own (the default): speculation
// control (status `field`), utilisation clamps; a thread whose CPU affinity is not the main
// thread's; KSM merge-any; a session leader with a controlling terminal; a NUMA memory policy
// (numa_maps: `policy` of the mapping at `where`).
[[noreturn]] void speculation(int tid, const char* field, const std::string& theirs,
                              const std::string& ours);
[[noreturn]] void uclamp(int tid, const std::string& min, const std::string& max);
[[noreturn]] void thread_affinity(int tid);
[[noreturn]] void ksm_merge_any();
[[noreturn]] void session_tty(uint64_t tty);
[[noreturn]] void mempolicy(const std::string& where, const std::string& policy);

// capture_fds.cpp. `fdinfo`: /proc/PID/fdinfo/N; refused if it lists a lock held through fd n.
void if_locked(int fd, const std::string& link, const std::string& fdinfo);
// A descriptor no FdKind takes.
[[noreturn]] void fd_kind(int fd, const std::string& link);
// An eventfd, signalfd or timerfd whose state is not saved: `what` says which part.
[[noreturn]] void event_fd(int fd, const std::string& link, const std::string& what);
// Event descriptors (number, /proc/PID/fd link) that are one open file with another of the
// process's own descriptors (dup) or with a descriptor of another process (fork, SCM_RIGHTS):
// restored, each would be an object of its own.
void shared_event_fds(int pid, const std::vector<std::pair<int, std::string>>& fds);

// capture_mappings.cpp. `where`: "mapping PATH at 0x...".
enum class Mapping {
  kSysvShm,           // shmat()
  kWritableSharedFile,  // MAP_SHARED|PROT_WRITE of a file
  kMayWriteSharedFile,  // read-only MAP_SHARED of a file opened for writing (VmFlags mw)
  kMemfd,               // MAP_SHARED of a memfd
  kReadOnlySharedAnon,
  kSpecial,           // [something] the image does not know
  kDeletedFile,
};
[[noreturn]] void mapping(const std::string& where, Mapping why);
// A mapping's VmFlags (smaps) that the image does not carry: refused by name. Those it
// carries or derives are listed in capture_mappings.cpp; `flag` is one of the others.
[[noreturn]] void vm_flag(const std::string& where, const std::string& flag);

// What dump does not save and finds outside the process's own files: children, a file offset
// shared with another process, System V IPC objects it used. `lose`: what the caller accepts to
// lose (dump --lose: "shared-offset", "sysv-ipc").
void outside_state(int pid, const image::Image& img, const std::set<std::string>& lose);

}  // namespace ckpt_tool::dump::refuse

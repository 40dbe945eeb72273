// SPDX-License-Identifier: MIT
// ckpt-tool's restore, from inside. restore.cpp loads the image and forks; then two sides:
//   preflight  preflight.cpp      in the parent, before anything is changed: the store's
//                                 metadata, the credentials, the files, the vdso, the CPU
//   become     become.cpp         in the child: the sequence that turns it into the image
//              become_memory.cpp  the vdso moved, the mappings built and filled from the store
//              become_fds.cpp     the fd table
//              become_task.cpp    signals, limits, timers, credentials, scheduling
//   arch       arch_x86_64.cpp    registers, XSAVE state and the jump into ckpt.ko
// The child starts at once and builds the layout while the parent checks; it hands itself to
// ckpt.ko (RESTORE_PREPARE) only on the parent's word. Both sides throw Error (error.hpp); the
// child reports its Error to the parent on the status pipe and exits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch.hpp"
#include "error.hpp"
#include "image.hpp"
#include "store.hpp"

namespace ckpt_tool::restore {

using image::Image;

// The store, the one epoch the restore reads (a Reader, opened before anything is read: the
// store picks the newest intact epoch once, so a damaged page of it makes the whole restore
// come from the retained epoch, never a mix) and that epoch's regions. The child inherits the
// Reader across the fork and reads the pages through it: a damaged page there is -EIO.
struct Loaded {
  std::unique_ptr<ckpt::store::Store> st;
  std::unique_ptr<ckpt::store::Reader> rd;
  std::map<std::string, ckpt::store::RegionInfo> regions;
  uint64_t epoch = 0;
};

// Status words on the pipe from the child: 0 restored, 1 + text failed, negative: the kernel's
// -errno past the point of no return.
constexpr int64_t kStatusFailed = 1;

// With CKPT_TOOL_PHASES set: when each step of the restore happened (stderr, for profiling).
void phase(const char* what);

// The image's PID and TIDs again, when they are free and the caller may choose them
// (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the PID namespace): clone3's set_tid asks for
// exactly one ID and fails rather than give another, so nothing else on the system can take
// it in between, as it could between a write to ns_last_pid and a fork (what CRIU did before
// set_tid, and this tool until it used set_tid). Why it matters: glibc caches every thread's
// TID in its struct pthread (pthread_kill, pthread_sigqueue, error-checking and robust mutex
// owners), and a PI or robust futex word holds its owner's TID, which the kernel checks.
// Without the right (EPERM), or with the ID in use (EEXIST), the clone takes a new one.
struct Clone3 {
  clone_args a{};
  pid_t want = 0;
  // flags, plus set_tid when want is a usable ID and `ask` is set.
  Clone3(uint64_t flags, uint64_t id, bool ask);
};

// --- preflight.cpp (the parent) ---

// Open the store and a Reader of its newest intact epoch, and read that epoch's metadata (the
// child reads the pages through the same Reader).
void load(const std::string& path, Image* img, Loaded* ld);
// The image's credentials against the caller's: refused (kRefused) unless as_image_user.
void check_creds(const Image& img, bool as_image_user);
// Everything that can be refused before anything is started (the pages are checked when read).
void check_image(const Image& img);
// "corrupted image: WHAT fails its checksum ..." with the first damaged pages (addresses from
// base, or page indices when base is 0).
std::string damaged_msg(const std::string& what, const ckpt::store::ReadReport& rep,
                        uint64_t base);

struct Vdso {
  uint64_t vvar_start = 0, vvar_end = 0, vdso_start = 0, vdso_end = 0;
};
// This process's [vvar] and [vdso]: 0 or -errno.
int own_vdso(Vdso* v);

// --- become*.cpp (the child) ---

// Turns the child into the image; reports on status_w; never returns.
[[noreturn]] void child(const Image& img, Loaded& ld, int status_w, int go_r, bool as_image_user);

// become_memory.cpp
void move_vdso(const Image& img, Vdso* own);
// The image's private mappings at their addresses, filled from the store; returns per mapping
// whether it was built (CKPT_VMA_PREBUILT); the others' pages are staged in *data (a memfd),
// at the offsets pushed to *data_off (one per run, in image order).
std::vector<bool> build_layout(const Image& img, Loaded& ld, const std::vector<int>& vfd,
                               bool prebuilt, int* data, std::vector<uint64_t>* data_off);

// become_fds.cpp: the image's descriptors at their numbers; everything else the restorer had
// open is closed but `helpers`, which are moved above the image's highest fd.
void set_fds(const Image& img, std::vector<int*> helpers);
// The timerfds set_fds made, armed with the time they had left at the dump: last before
// COMMIT (with ITIMER_REAL), so that the restore's own time does not count.
void arm_timerfds(const Image& img);

// become_task.cpp
void set_task_state(const Image& img);
void become_image_user(const Image& img);
void set_signals(const Image& img);
void queue_signals(const std::vector<std::vector<uint8_t>>& q, bool thread);
// Queue `q`'s signals again (raw syscalls only, for the helper threads): 0 or -errno.
long requeue(const std::vector<std::vector<uint8_t>>& q, bool thread, int* signo);
void set_rlimits(const Image& img);
void set_sched(const Image& img, const std::vector<pid_t>& tids);
// The calling thread's alternate signal stack: 0 or -errno (raw syscalls only).
long altstack(const image::Thread& t);
void set_altstack(const image::Thread& t);
void set_itimer(const Image& img);

}  // namespace ckpt_tool::restore

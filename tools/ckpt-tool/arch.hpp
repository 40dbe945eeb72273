// SPDX-License-Identifier: MIT
// ckpt-tool: what depends on the CPU architecture, for dump and restore. One implementation
// per architecture (arch_x86_64.cpp); nothing else in the tool reads or writes registers,
// extended (XSAVE) state or assembly.
#pragma once

#include <linux/sched.h>  // struct clone_args (glibc 2.36 has no clone3 wrapper)

#include <cstddef>
#include <cstdint>
#include <vector>

#include "image.hpp"

namespace ckpt_tool::arch {

// --- dump ---

// A stopped (ptrace) thread's registers and XSAVE state into t (t->tid too). A thread stopped
// inside a syscall that will be restarted gets the registers that restart it after restore.
void capture_regs(int tid, image::Thread* t);

// --- restore: the parent's checks ---

// Refuses (throws Error) the XSAVE image of one thread this CPU cannot load.
void check_xstate(const std::vector<uint8_t>& xsave);
// Refuses a CPU or kernel without XSAVE.
void check_cpu();

// --- restore: the child ---

// One thread's XSAVE image, aligned for XRSTOR.
struct alignas(64) Xsave {
  uint8_t b[image::kMaxXsave];
};

// The components XRSTOR loads.
uint64_t rfbm();

// A syscall without errno: -errno on failure. The helper threads may use nothing else.
long raw_syscall(long nr, long a1, long a2 = 0, long a3 = 0, long a4 = 0);

// Set fs/gs base, load the FPU/AVX state, and enter ckpt.ko with ioctl(fd, cmd, arg), which
// returns into the image's registers. If anything fails, exit_group(code).
[[noreturn]] void jump(uint64_t fs, uint64_t gs, const Xsave* xs, uint64_t rfbm, int fd,
                       unsigned long cmd, uint64_t arg, int code);

}  // namespace ckpt_tool::arch

// A thread running fn(arg) on [stack, stack + size), sharing everything (CLONE_THREAD) but the
// stack: its TID, or -errno. fn must not return.
extern "C" long restore_clone3_thread(clone_args* args, size_t size, void (*fn)(void*), void* arg);

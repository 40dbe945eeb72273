// SPDX-License-Identifier: MIT
// ckpt-tool on x86-64 (arch.hpp): the general registers (struct user_regs_struct), the XSAVE
// state (NT_X86_XSTATE, XRSTOR), syscall restart, and the assembly that enters the image.
#include <cpuid.h>
#include <linux/elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "arch.hpp"
#include "cmd.hpp"
#include "error.hpp"

namespace ckpt_tool::arch {
namespace {

using namespace image;

constexpr long kERESTARTSYS = 512, kERESTARTNOINTR = 513, kERESTARTNOHAND = 514,
               kERESTART_RESTARTBLOCK = 516;

}  // namespace

void capture_regs(int tid, Thread* t) {
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
}


namespace {

uint64_t xgetbv0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return uint64_t(hi) << 32 | lo;
}

bool has_xsave() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_OSXSAVE) != 0;
}

}  // namespace

// Every user component the OS enabled, but AMX tile data, which is refused in images and may
// be armed for #NM (XFD) in this process.
uint64_t rfbm() { return xgetbv0() & ~(1ull << 18); }

void check_cpu() {
  if (!has_xsave()) throw Error{kFailed, "this CPU/kernel has no XSAVE; not supported"};
}

void check_xstate(const std::vector<uint8_t>& xsave) {
  uint64_t bv;
  std::memcpy(&bv, xsave.data() + 512, 8);
  // AMX tile data needs a per-process permission (ARCH_REQ_XCOMP_PERM) this does not restore.
  if (bv & (1ull << 18)) throw Error{kFailed, "the image holds AMX tile state: not supported"};
  if (bv & ~xgetbv0())
    throw Error{kFailed, "the image uses CPU state (XCR0 features " + hex(bv & ~xgetbv0()) +
                             ") this CPU does not enable"};
  for (int i = 2; i < 64; i++) {
    if (!(bv & (1ull << i))) continue;
    unsigned a, b, c, d;
    __cpuid_count(0xd, i, a, b, c, d);
    if (uint64_t(a) + b > xsave.size())
      throw Error{kFailed, "corrupted image: FPU state shorter than its components"};
  }
}

long raw_syscall(long nr, long a1, long a2, long a3, long a4) {
  register long rax asm("rax") = nr;
  register long rdi asm("rdi") = a1;
  register long rsi asm("rsi") = a2;
  register long rdx asm("rdx") = a3;
  register long r10 asm("r10") = a4;
  asm volatile("syscall"
               : "+r"(rax)
               : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10)
               : "rcx", "r11", "memory");
  return rax;
}

void jump(uint64_t fs, uint64_t gs, const Xsave* xs, uint64_t rfbm, int fd,
                       unsigned long cmd, uint64_t arg, int code) {
  register uint64_t r8 asm("r8") = fs;
  register uint64_t r9 asm("r9") = gs;
  register const Xsave* r10 asm("r10") = xs;
  register uint64_t r12 asm("r12") = rfbm;
  register uint64_t r13 asm("r13") = uint64_t(fd);
  register uint64_t r14 asm("r14") = cmd;
  register uint64_t r15 asm("r15") = arg;
  register uint64_t rbx asm("rbx") = uint64_t(code);
  // From here on no TLS (fs changes), no vector registers (xrstor), no stack protector: one
  // block of raw syscalls.
  asm volatile(
      "mov $158, %%eax\n\t"  // arch_prctl(ARCH_SET_FS, fs)
      "mov $0x1002, %%edi\n\t"
      "mov %%r8, %%rsi\n\t"
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 9f\n\t"
      "mov $158, %%eax\n\t"  // arch_prctl(ARCH_SET_GS, gs)
      "mov $0x1001, %%edi\n\t"
      "mov %%r9, %%rsi\n\t"
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 9f\n\t"
      "mov %%r12, %%rax\n\t"
      "mov %%r12, %%rdx\n\t"
      "shr $32, %%rdx\n\t"
      "xrstor64 (%%r10)\n\t"
      "mov $16, %%eax\n\t"  // ioctl(fd, cmd, arg)
      "mov %%r13, %%rdi\n\t"
      "mov %%r14, %%rsi\n\t"
      "mov %%r15, %%rdx\n\t"
      "syscall\n\t"
      "9:\n\t"
      "mov $231, %%eax\n\t"  // exit_group(code)
      "mov %%rbx, %%rdi\n\t"
      "syscall\n\t"
      "ud2\n\t"
      :
      : "r"(r8), "r"(r9), "r"(r10), "r"(r12), "r"(r13), "r"(r14), "r"(r15), "r"(rbx)
      : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory");
  __builtin_unreachable();
}

}  // namespace ckpt_tool::arch

// restore_clone3_thread (arch.hpp): clone3 with the child's first instruction calling fn(arg)
// on the new stack (a C function cannot: the child would return into its parent's frame).
asm(R"(
  .text
  .p2align 4
  .globl restore_clone3_thread
  .hidden restore_clone3_thread
  .type restore_clone3_thread, @function
restore_clone3_thread:
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax
  syscall
  test %rax, %rax
  jnz 1f
  xor %ebp, %ebp
  mov %r9, %rdi
  call *%r8
  ud2
1:
  ret
  .size restore_clone3_thread, . - restore_clone3_thread
)");

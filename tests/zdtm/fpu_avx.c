// SPDX-License-Identifier: GPL-2.0
/*
 * FPU/SSE/AVX state live across the dump: ymm0-15 hold patterns and MXCSR a non-default
 * rounding mode while the process polls for the go file with raw syscalls (which preserve
 * them); after restore the registers must still hold the patterns.
 */
#include <immintrin.h>
#include "zdtm.h"

static uint64_t in[16 * 4] __attribute__((aligned(32)));
static uint64_t out[16 * 4] __attribute__((aligned(32)));

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	unsigned int mxcsr_in = 0x1f80 | (3 << 13), mxcsr_out = 0; /* round toward zero */
	int i;

	zdtm_init(argc, argv);
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2")) {
		zdtm_ready();
		zdtm_wait_go();
		return zdtm_skip("no AVX2 on this CPU");
	}
	for (i = 0; i < 64; i++)
		in[i] = zdtm_mix(i + 1);
	zdtm_ready();
	asm volatile(
		"ldmxcsr %[mi]\n\t"
		"vmovdqu 0(%[in]), %%ymm0\n\t"
		"vmovdqu 32(%[in]), %%ymm1\n\t"
		"vmovdqu 64(%[in]), %%ymm2\n\t"
		"vmovdqu 96(%[in]), %%ymm3\n\t"
		"vmovdqu 128(%[in]), %%ymm4\n\t"
		"vmovdqu 160(%[in]), %%ymm5\n\t"
		"vmovdqu 192(%[in]), %%ymm6\n\t"
		"vmovdqu 224(%[in]), %%ymm7\n\t"
		"vmovdqu 256(%[in]), %%ymm8\n\t"
		"vmovdqu 288(%[in]), %%ymm9\n\t"
		"vmovdqu 320(%[in]), %%ymm10\n\t"
		"vmovdqu 352(%[in]), %%ymm11\n\t"
		"vmovdqu 384(%[in]), %%ymm12\n\t"
		"vmovdqu 416(%[in]), %%ymm13\n\t"
		"vmovdqu 448(%[in]), %%ymm14\n\t"
		"vmovdqu 480(%[in]), %%ymm15\n\t"
		"1:\n\t"
		"mov $21, %%eax\n\t" /* access(go, F_OK) */
		"mov %[go], %%rdi\n\t"
		"xor %%esi, %%esi\n\t"
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jz 2f\n\t"
		"mov $35, %%eax\n\t" /* nanosleep(&ts, NULL) */
		"mov %[ts], %%rdi\n\t"
		"xor %%esi, %%esi\n\t"
		"syscall\n\t"
		"jmp 1b\n\t"
		"2:\n\t"
		"vmovdqu %%ymm0, 0(%[out])\n\t"
		"vmovdqu %%ymm1, 32(%[out])\n\t"
		"vmovdqu %%ymm2, 64(%[out])\n\t"
		"vmovdqu %%ymm3, 96(%[out])\n\t"
		"vmovdqu %%ymm4, 128(%[out])\n\t"
		"vmovdqu %%ymm5, 160(%[out])\n\t"
		"vmovdqu %%ymm6, 192(%[out])\n\t"
		"vmovdqu %%ymm7, 224(%[out])\n\t"
		"vmovdqu %%ymm8, 256(%[out])\n\t"
		"vmovdqu %%ymm9, 288(%[out])\n\t"
		"vmovdqu %%ymm10, 320(%[out])\n\t"
		"vmovdqu %%ymm11, 352(%[out])\n\t"
		"vmovdqu %%ymm12, 384(%[out])\n\t"
		"vmovdqu %%ymm13, 416(%[out])\n\t"
		"vmovdqu %%ymm14, 448(%[out])\n\t"
		"vmovdqu %%ymm15, 480(%[out])\n\t"
		"stmxcsr %[mo]\n\t"
		"vzeroupper\n\t"
		"ldmxcsr %[md]\n\t"
		: [mo] "=m"(mxcsr_out)
		: [in] "r"(in), [out] "r"(out), [go] "r"(zdtm_go_path), [ts] "r"(&ts),
		  [mi] "m"(mxcsr_in), [md] "m"((unsigned int){ 0x1f80 })
		: "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory", "xmm0", "xmm1", "xmm2",
		  "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		  "xmm13", "xmm14", "xmm15");
	if (mxcsr_out != mxcsr_in)
		return zdtm_fail("MXCSR is 0x%x, want 0x%x", mxcsr_out, mxcsr_in);
	for (i = 0; i < 64; i++)
		if (out[i] != in[i])
			return zdtm_fail("ymm%d lane %d differs", i / 4, i % 4);
	return zdtm_pass();
}

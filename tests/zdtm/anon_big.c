// SPDX-License-Identifier: GPL-2.0
/* 64 MiB of anonymous memory with a pattern; a checksum taken before the dump must match. */
#include <sys/mman.h>
#include "zdtm.h"

#define SIZE (64UL << 20)

static uint64_t sum(const uint64_t *p, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = zdtm_mix(s ^ p[i]);
	return s;
}

int main(int argc, char **argv)
{
	uint64_t *p, before;
	size_t n = SIZE / 8;

	zdtm_init(argc, argv);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return zdtm_fail("mmap");
	for (size_t i = 0; i < n; i += 7) /* leave most words zero, touch every page */
		p[i] = zdtm_mix(i);
	before = sum(p, n);
	zdtm_ready();
	zdtm_wait_go();
	if (sum(p, n) != before)
		return zdtm_fail("checksum differs");
	for (size_t i = 0; i < n; i++)
		if (p[i] != (i % 7 ? 0 : zdtm_mix(i)))
			return zdtm_fail("word %zu differs", i);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Many mappings with different protections (none, r, rw, rx, rwx, guard holes between them),
 * each written with its own pattern before its protection was dropped. After restore every
 * mapping must have the same protection (/proc/self/maps) and the same bytes.
 */
#include <sys/mman.h>
#include "zdtm.h"

#define N 24
#define PAGES 3

static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
			     PROT_READ | PROT_WRITE | PROT_EXEC };

static char *area[N];

static int prot_of(unsigned long addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e;
	char p[5];

	if (!f)
		return -1;
	while (fscanf(f, "%lx-%lx %4s %*[^\n]", &s, &e, p) == 3) {
		if (addr >= s && addr < e) {
			memcpy(perms, p, 5);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -1;
}

static char want_perm(int prot, char perms[5])
{
	perms[0] = prot & PROT_READ ? 'r' : '-';
	perms[1] = prot & PROT_WRITE ? 'w' : '-';
	perms[2] = prot & PROT_EXEC ? 'x' : '-';
	perms[3] = 'p';
	perms[4] = 0;
	return 0;
}

int main(int argc, char **argv)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *base;
	int i;

	zdtm_init(argc, argv);
	/* One reservation, then every other slot mapped: holes keep the kernel from merging. */
	base = mmap(NULL, 2 * N * PAGES * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return zdtm_fail("mmap");
	for (i = 0; i < N; i++) {
		area[i] = base + 2 * i * PAGES * pg;
		if (mmap(area[i], PAGES * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != area[i])
			return zdtm_fail("mmap fixed");
		for (long k = 0; k < PAGES * pg; k += 8)
			*(uint64_t *)(area[i] + k) = zdtm_mix(i * 100000 + k);
		if (mprotect(area[i], PAGES * pg, prots[i % 5]))
			return zdtm_fail("mprotect");
	}
	munmap(base + (2 * N - 1) * PAGES * pg, PAGES * pg);
	for (i = 0; i < N; i++)
		munmap(area[i] + PAGES * pg, PAGES * pg);
	zdtm_ready();
	zdtm_wait_go();
	for (i = 0; i < N; i++) {
		char got[5], want[5];

		want_perm(prots[i % 5], want);
		if (prot_of((unsigned long)area[i], got))
			return zdtm_fail("mapping %d is gone", i);
		if (memcmp(got, want, 4))
			return zdtm_fail("mapping %d: perms %.4s, want %.4s", i, got, want);
		if (prot_of((unsigned long)area[i] + PAGES * pg, got) == 0)
			return zdtm_fail("hole after mapping %d is mapped (%.4s)", i, got);
		if (!(prots[i % 5] & PROT_READ) && mprotect(area[i], PAGES * pg, PROT_READ))
			return zdtm_fail("mprotect back");
		for (long k = 0; k < PAGES * pg; k += 8)
			if (*(uint64_t *)(area[i] + k) != zdtm_mix(i * 100000 + k))
				return zdtm_fail("mapping %d offset %ld differs", i, k);
	}
	return zdtm_pass();
}

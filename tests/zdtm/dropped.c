// SPDX-License-Identifier: GPL-2.0
/* Pages dropped between two of `ckpt-tool run`'s checkpoints (tests/e2e/vm-zdtm-run.sh,
 * part "dropped"). The incremental checkpoint learns of dropped pages from ckpt.ko's log (its
 * mmu notifier logs the zap) and asks pagemap only when many pages of a mapping are logged:
 *   A: 8 scattered pages of 1024 dropped (MADV_DONTNEED) - few: taken as present, read as zeros;
 *   B: 512 of 1024 dropped - many: pagemap says they are gone, the image leaves them out.
 * After the restore both read as zeros, the rest of each mapping holds its pattern, the pages
 * written after the drop hold their new bytes, and B's dropped half is not resident (mincore):
 * the restore did not populate what the process did not have.
 *     dropped READY GO      SIGUSR2: drop and write, then create READY.dropped */
#include <signal.h>
#include <sys/mman.h>
#include "zdtm.h"

#define PAGE 4096UL
#define NPAGES 1024UL

static volatile sig_atomic_t drop_now;

static void on_usr2(int sig)
{
	(void)sig;
	drop_now = 1;
}

/* A and B: two mappings of NPAGES with a PROT_NONE page between them, so that they do not
 * merge into one (the choice between "few" and "many" is per mapping). */
static void map_areas(uint64_t **a, uint64_t **b)
{
	char *p = mmap(NULL, (2 * NPAGES + 1) * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	madvise(p, (2 * NPAGES + 1) * PAGE, MADV_NOHUGEPAGE);  /* 4 KiB pages: B's half is 512 */
	mprotect(p + NPAGES * PAGE, PAGE, PROT_NONE);
	*a = (uint64_t *)p;
	*b = (uint64_t *)(p + (NPAGES + 1) * PAGE);
}

static uint64_t want(int area, unsigned long page, int dropped, int rewritten)
{
	if (rewritten)
		return zdtm_mix(area * 1000003ULL + page) ^ 0x5555;
	if (dropped)
		return 0;
	return zdtm_mix(area * 1000003ULL + page);
}

static int a_dropped(unsigned long pg) { return pg % 128 == 5; }
static int a_rewritten(unsigned long pg) { return pg == 133 || pg == 7; }  /* 133: dropped too */
static int b_dropped(unsigned long pg) { return pg < 512; }
static int b_rewritten(unsigned long pg) { return pg == 600 || pg == 10; }  /* 10: dropped too */

int main(int argc, char **argv)
{
	uint64_t *A, *B;
	unsigned long pg, resident = 0;
	unsigned char vec[NPAGES];
	char path[4096];

	zdtm_init(argc, argv);
	signal(SIGUSR2, on_usr2);
	map_areas(&A, &B);
	for (pg = 0; pg < NPAGES; pg++) {
		for (unsigned long w = 0; w < PAGE / 8; w++) {
			A[pg * PAGE / 8 + w] = want(1, pg, 0, 0);
			B[pg * PAGE / 8 + w] = want(2, pg, 0, 0);
		}
	}
	zdtm_ready();
	while (!drop_now && !zdtm_go())
		zdtm_msleep(10);
	if (!drop_now)
		return zdtm_fail("go before the drop");
	for (pg = 0; pg < NPAGES; pg++)
		if (a_dropped(pg))
			madvise((char *)A + pg * PAGE, PAGE, MADV_DONTNEED);
	madvise(B, 512 * PAGE, MADV_DONTNEED);
	for (pg = 0; pg < NPAGES; pg++) {
		for (unsigned long w = 0; w < PAGE / 8; w++) {
			if (a_rewritten(pg))
				A[pg * PAGE / 8 + w] = want(1, pg, 0, 1);
			if (b_rewritten(pg))
				B[pg * PAGE / 8 + w] = want(2, pg, 0, 1);
		}
	}
	snprintf(path, sizeof(path), "%s.dropped", zdtm_ready_path);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	zdtm_wait_go();

	if (mincore(B, 512 * PAGE, vec))
		return zdtm_fail("mincore: %s", strerror(errno));
	for (pg = 0; pg < 512; pg++)
		resident += (vec[pg] & 1) && !b_rewritten(pg);
	/* Before reading anything (a read of a dropped page maps the zero page). */
	if (resident)
		return zdtm_fail("%lu of B's 510 dropped, unwritten pages are resident after the restore",
				 resident);
	/* Which way the checkpoint took A's few dropped pages (read as zeros: resident now). */
	if (mincore(A, NPAGES * PAGE, vec))
		return zdtm_fail("mincore: %s", strerror(errno));
	resident = 0;
	for (pg = 0; pg < NPAGES; pg++)
		resident += (vec[pg] & 1) && a_dropped(pg) && !a_rewritten(pg);
	printf("A: %lu of 7 dropped, unwritten pages resident\n", resident);
	for (pg = 0; pg < NPAGES; pg++) {
		for (unsigned long w = 0; w < PAGE / 8; w += 61) {
			uint64_t a = want(1, pg, a_dropped(pg), a_rewritten(pg));
			uint64_t b = want(2, pg, b_dropped(pg), b_rewritten(pg));

			if (A[pg * PAGE / 8 + w] != a)
				return zdtm_fail("A page %lu word %lu: %#llx, want %#llx", pg, w,
						 (unsigned long long)A[pg * PAGE / 8 + w], (unsigned long long)a);
			if (B[pg * PAGE / 8 + w] != b)
				return zdtm_fail("B page %lu word %lu: %#llx, want %#llx", pg, w,
						 (unsigned long long)B[pg * PAGE / 8 + w], (unsigned long long)b);
		}
	}
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/* The heap grown with sbrk: contents survive, and the heap keeps growing after restore. */
#include "zdtm.h"

#define STEP (256 * 1024)
#define STEPS 16

int main(int argc, char **argv)
{
	uint64_t *blk[STEPS], *more;
	char *top;
	int i;

	zdtm_init(argc, argv);
	for (i = 0; i < STEPS; i++) {
		blk[i] = sbrk(STEP);
		if (blk[i] == (void *)-1)
			return zdtm_fail("sbrk");
		for (size_t k = 0; k < STEP / 8; k += 3)
			blk[i][k] = zdtm_mix(i * 1000003 + k);
	}
	top = sbrk(0);
	zdtm_ready();
	zdtm_wait_go();
	if (sbrk(0) != top)
		return zdtm_fail("program break moved: %p, was %p", sbrk(0), (void *)top);
	for (i = 0; i < STEPS; i++)
		for (size_t k = 0; k < STEP / 8; k += 3)
			if (blk[i][k] != zdtm_mix(i * 1000003 + k))
				return zdtm_fail("heap block %d word %zu differs", i, k);
	more = sbrk(STEP);
	if (more == (void *)-1 || (char *)more != top)
		return zdtm_fail("the heap does not grow after restore");
	for (size_t k = 0; k < STEP / 8; k++)
		more[k] = k;
	if (brk(top))
		return zdtm_fail("the heap does not shrink after restore");
	return zdtm_pass();
}

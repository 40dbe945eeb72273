// SPDX-License-Identifier: GPL-2.0
/* Deep recursion with data in every frame: the dump happens at the bottom; unwinding after
 * restore checks every frame and the return path. */
#include "zdtm.h"

#define DEPTH 3000

static int bad;

static __attribute__((noinline)) uint64_t down(int level)
{
	volatile uint64_t frame[32];
	uint64_t s = 0;

	for (int i = 0; i < 32; i++)
		frame[i] = zdtm_mix(level * 32 + i);
	if (level == DEPTH) {
		zdtm_ready();
		zdtm_wait_go();
	} else {
		s = down(level + 1);
	}
	for (int i = 0; i < 32; i++) {
		if (frame[i] != zdtm_mix(level * 32 + i))
			bad = level + 1;
		s += frame[i];
	}
	return s;
}

int main(int argc, char **argv)
{
	uint64_t want = 0, got;

	zdtm_init(argc, argv);
	for (int l = 0; l <= DEPTH; l++)
		for (int i = 0; i < 32; i++)
			want += zdtm_mix(l * 32 + i);
	got = down(0);
	if (bad)
		return zdtm_fail("frame at depth %d differs", bad - 1);
	if (got != want)
		return zdtm_fail("sum differs");
	return zdtm_pass();
}

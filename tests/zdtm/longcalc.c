// SPDX-License-Identifier: GPL-2.0
/*
 * A long computation for `ckpt-tool run` (tests/e2e/vm-zdtm-run.sh): STEPS steps, each over
 * one sixteenth of an 8 MiB array and followed by a short sleep, then a check of the array against the closed
 * form of what the steps must have added, and "RESULT OK" or "RESULT BAD ..." on stdout.
 * Killed and restored any number of times, it must still end with RESULT OK.
 *   longcalc [STEPS]   (default 300)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N (1 << 20)

static uint64_t acc[N];

int main(int argc, char **argv)
{
	uint64_t steps = argc > 1 ? strtoull(argv[1], NULL, 10) : 300;
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	setvbuf(stdout, NULL, _IONBF, 0);
	for (uint64_t s = 0; s < steps; s++) {
		/* One sixteenth of the array per step: most pages stay clean between checkpoints. */
		uint64_t w = (s * 5) % 16;

		for (uint64_t i = w * (N / 16); i < (w + 1) * (N / 16); i += 1 + (s % 3))
			acc[i] += i * s + 1;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		ts.tv_nsec = 20 * 1000 * 1000;
	}
	for (uint64_t i = 0; i < N; i++) {
		uint64_t want = 0;

		for (uint64_t s = 0; s < steps; s++)
			if (i / (N / 16) == (s * 5) % 16 && (i % (N / 16)) % (1 + (s % 3)) == 0)
				want += i * s + 1;
		if (acc[i] != want) {
			printf("RESULT BAD at %llu\n", (unsigned long long)i);
			return 1;
		}
	}
	printf("RESULT OK\n");
	return 0;
}

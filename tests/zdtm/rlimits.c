// SPDX-License-Identifier: GPL-2.0
/* Resource limits survive: soft limits lowered below their hard ones, and lowered hard ones. */
#include <sys/resource.h>
#include "zdtm.h"

static const struct {
	int res;
	const char *name;
	rlim_t cur, max; /* RLIM_SAVED_MAX here: keep the current hard limit */
} want[] = {
	{ RLIMIT_NOFILE, "RLIMIT_NOFILE", 123, 456 },
	{ RLIMIT_CORE, "RLIMIT_CORE", 0, 1 << 20 },
	{ RLIMIT_FSIZE, "RLIMIT_FSIZE", 1 << 30, RLIM_SAVED_MAX },
	{ RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 4096, 8192 },
};

int main(int argc, char **argv)
{
	struct rlimit set[sizeof(want) / sizeof(want[0])], got;
	size_t i;

	zdtm_init(argc, argv);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (getrlimit(want[i].res, &set[i]))
			return zdtm_fail("getrlimit %s", want[i].name);
		set[i].rlim_cur = want[i].cur;
		if (want[i].max != RLIM_SAVED_MAX)
			set[i].rlim_max = want[i].max;
		if (setrlimit(want[i].res, &set[i]))
			return zdtm_fail("setrlimit %s", want[i].name);
	}
	zdtm_ready();
	zdtm_wait_go();
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (getrlimit(want[i].res, &got))
			return zdtm_fail("getrlimit %s", want[i].name);
		if (got.rlim_cur != set[i].rlim_cur || got.rlim_max != set[i].rlim_max)
			return zdtm_fail("%s is %llu/%llu, want %llu/%llu", want[i].name,
					 (unsigned long long)got.rlim_cur,
					 (unsigned long long)got.rlim_max,
					 (unsigned long long)set[i].rlim_cur,
					 (unsigned long long)set[i].rlim_max);
	}
	return zdtm_pass();
}

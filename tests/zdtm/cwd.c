// SPDX-License-Identifier: GPL-2.0
/* The working directory (a subdirectory with a space in its name) and umask survive. */
#include <sys/stat.h>
#include "zdtm.h"

int main(int argc, char **argv)
{
	char before[4096], after[4096];
	mode_t m;

	zdtm_init(argc, argv);
	if (mkdir("sub dir", 0755) || chdir("sub dir") || !getcwd(before, sizeof(before)))
		return zdtm_fail("mkdir/chdir");
	umask(027);
	zdtm_ready();
	zdtm_wait_go();
	if (!getcwd(after, sizeof(after)) || strcmp(before, after))
		return zdtm_fail("cwd is %s, want %s", after, before);
	if (access("../ready", F_OK))
		return zdtm_fail("relative paths do not resolve");
	m = umask(0);
	if (m != 027)
		return zdtm_fail("umask is 0%o", m);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Arguments and environment: the test re-executes itself with extra arguments and variables;
 * after restore argv/environ, getenv and /proc/self/cmdline + /proc/self/environ (which the
 * kernel reads through mm->arg_start..env_end) must be the same.
 */
#include "zdtm.h"

extern char **environ;

static int read_all(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	int n = 0, k;

	if (fd < 0)
		return -1;
	while ((k = read(fd, buf + n, len - n)) > 0)
		n += k;
	close(fd);
	return n;
}

int main(int argc, char **argv)
{
	static char cmd0[8192], env0[65536], cmd1[8192], env1[65536];
	int nc0, ne0, nc1, ne1;

	zdtm_init(argc, argv);
	if (argc == 3) {
		char *nargv[] = { argv[0], argv[1], argv[2], "first arg", "ß-ünïcode", "", "last", NULL };
		char *nenv[] = { "ZDTM_ONE=1", "ZDTM_TWO=two words", "EMPTY=", NULL };

		execve("/proc/self/exe", nargv, nenv);
		return zdtm_fail("execve: %s", strerror(errno));
	}
	if (argc != 7 || strcmp(argv[3], "first arg") || strcmp(argv[6], "last"))
		return zdtm_fail("bad arguments after exec");
	nc0 = read_all("/proc/self/cmdline", cmd0, sizeof(cmd0));
	ne0 = read_all("/proc/self/environ", env0, sizeof(env0));
	zdtm_ready();
	zdtm_wait_go();
	if (argc != 7 || strcmp(argv[3], "first arg") || strcmp(argv[4], "ß-ünïcode") ||
	    strcmp(argv[5], "") || strcmp(argv[6], "last"))
		return zdtm_fail("argv differs");
	if (!getenv("ZDTM_TWO") || strcmp(getenv("ZDTM_TWO"), "two words") ||
	    !getenv("ZDTM_ONE") || !getenv("EMPTY") || environ[3])
		return zdtm_fail("environment differs");
	nc1 = read_all("/proc/self/cmdline", cmd1, sizeof(cmd1));
	ne1 = read_all("/proc/self/environ", env1, sizeof(env1));
	if (nc0 <= 0 || nc1 != nc0 || memcmp(cmd0, cmd1, nc0))
		return zdtm_fail("/proc/self/cmdline differs (%d vs %d bytes)", nc1, nc0);
	if (ne0 <= 0 || ne1 != ne0 || memcmp(env0, env1, ne0))
		return zdtm_fail("/proc/self/environ differs (%d vs %d bytes)", ne1, ne0);
	return zdtm_pass();
}

// SPDX-License-Identifier: MIT
/* libckpt when ckpt.ko refuses the process's memory (-EXDEV, kmod/mm.c: another mmu notifier
 * may write it unseen; here, the mm was tracked by an earlier load of ckpt.ko). Driven by
 * tests/kselftest/lib_module_refused.sh in the VM, which reloads ckpt.ko between the phases:
 *   phase 1: a session on the module tracker checkpoints a region; prints "reload" and waits
 *            for a line on stdin (the script reloads ckpt.ko meanwhile);
 *   phase 2: an automatic session moves to the userspace tracker the automatic choice takes
 *            without the module, and checkpoints and restores byte-exactly through it; a forced
 *            module tracker and an asynchronous session get -EXDEV with the reason.
 * Usage: lib_module_refused DIR. Prints TAP. */
#define _DEFAULT_SOURCE
#include <ckpt/ckpt.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures, n;

static void ok(int cond, const char *what)
{
	n++;
	if (!cond)
		failures++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", n, what);
	fflush(stdout);
}

static ckpt_t *open_store(const char *path, uint32_t tracker, uint32_t flags)
{
	ckpt_config_t cfg;
	ckpt_t *c = NULL;
	int ret;

	ckpt_config_init(&cfg);
	cfg.tracker = tracker;
	cfg.flags = flags | CKPT_CFG_CREATE;
	ret = ckpt_open(path, &cfg, &c);
	if (ret) {
		printf("# ckpt_open %s: %s (%s)\n", path, strerror(-ret), ckpt_open_error());
		return NULL;
	}
	return c;
}

int main(int argc, char **argv)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = 64 * ps, i;
	struct ckpt_session_stats st;
	char path[4096], line[16];
	unsigned char *a;
	ckpt_t *c;
	int ret;

	if (argc != 2)
		return 2;
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 1;
	printf("TAP version 13\n1..8\n");

	/* Phase 1: the module tracks this mm. */
	snprintf(path, sizeof(path), "%s/one", argv[1]);
	c = open_store(path, CKPT_TRACKER_AUTO, 0);
	ret = c ? ckpt_register(c, "state", a, len) : -1;
	memset(a, 1, len);
	ret = ret ? ret : ckpt_checkpoint(c);
	ok(c && !ret && !ckpt_get_stats(c, &st) && !strcmp(st.tracker, "module"),
	   "before the reload: the automatic session is on the module tracker");
	if (c)
		ckpt_close(c);
	printf("reload\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin) || strncmp(line, "go", 2)) {
		printf("# no 'go' from the script\n");
		return 1;
	}

	/* Phase 2: the reloaded module refuses the mm for its life. */
	snprintf(path, sizeof(path), "%s/forced", argv[1]);
	c = open_store(path, CKPT_TRACKER_MODULE, 0);
	ret = c ? ckpt_register(c, "state", a, len) : -1;
	ok(ret == -EXDEV, "forced module tracker: ckpt_register is refused with -EXDEV");
	if (c) {
		printf("# %s\n", ckpt_last_error(c));
		ok(strstr(ckpt_last_error(c), "cannot track") != NULL, "... and says why");
		ckpt_close(c);
	} else {
		ok(0, "... and says why");
	}

	snprintf(path, sizeof(path), "%s/async", argv[1]);
	c = open_store(path, CKPT_TRACKER_AUTO, CKPT_CFG_ASYNC);
	ret = c ? ckpt_register(c, "state", a, len) : -1;
	ok(ret == -EXDEV, "asynchronous session (needs the module's hold): -EXDEV, not a silent move");
	if (c)
		ckpt_close(c);

	snprintf(path, sizeof(path), "%s/auto", argv[1]);
	c = open_store(path, CKPT_TRACKER_AUTO, 0);
	ret = c ? ckpt_register(c, "state", a, len) : -1;
	ok(ret == 0, "automatic session: ckpt_register succeeds");
	ok(c && !ckpt_get_stats(c, &st) && strcmp(st.tracker, "module") != 0,
	   "... on a userspace tracker");
	if (c)
		printf("# tracker: %s\n", st.tracker);
	/* Written before and after a checkpoint: the second checkpoint must hold both. */
	for (i = 0; i < len; i += ps)
		a[i] = (unsigned char)(i / ps);
	ret = c ? ckpt_checkpoint(c) : -1;
	for (i = 0; i < len; i += 3 * ps)
		a[i + 7] = 0xa5;
	ret = ret ? ret : ckpt_checkpoint(c);
	ok(ret == 0, "... and checkpoints through it");
	if (c)
		ckpt_close(c);

	{
		unsigned char *b = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int same = 0;

		c = open_store(path, CKPT_TRACKER_AUTO, 0);
		ret = c && b != MAP_FAILED ? ckpt_register(c, "state", b, len) : -1;
		ret = ret ? ret : ckpt_restore(c);
		if (!ret)
			same = memcmp(a, b, len) == 0;
		ok(ret == 0 && same, "the store holds the region byte-exactly (restored into fresh memory)");
		if (c)
			ckpt_close(c);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", n - failures, failures);
	return failures ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/* The C API of opaque handles, from C: built with -std=c11 -Wall -Werror -pedantic (CTest
 * capi_c11_test), and built again against an installed copy with pkg-config (capi_install_test).
 * Checkpoints a region, reopens the store, restores it into fresh memory and compares.
 * Usage: capi_c11_test [STORE]   (default: a new file under /tmp). Prints TAP. */
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
}

static int hook_ran;

static int on_restore(void *arg, const char *name, void *addr, size_t len)
{
	(void)arg;
	(void)addr;
	(void)len;
	hook_ran = strcmp(name, "state") == 0;
	return 0;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/ckpt-c11-XXXXXX", path[64];
	const char *store = argc > 1 ? argv[1] : NULL;
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = 4 * ps;
	ckpt_t *c = NULL;
	ckpt_config_t cfg;
	struct ckpt_session_stats st;
	unsigned char *a, *b;

	if (!store) {
		if (!mkdtemp(dir))
			return 1;
		snprintf(path, sizeof(path), "%s/store", dir);
		store = path;
	}
	printf("TAP version 13\n1..9\n");
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return 1;
	memset(a, 0x5a, len);
	strcpy((char *)a + ps, "from C11");

	ok(ckpt_open(NULL, NULL, &c) == -EINVAL, "ckpt_open(NULL) is -EINVAL");
	ckpt_config_init(&cfg);
	cfg.flags = argc > 1 ? CKPT_CFG_FORMAT : 0;
	ok(ckpt_open(store, &cfg, &c) == 0 && c, "ckpt_open creates the store");
	if (!c)
		return 1;
	ok(ckpt_register(c, "state", a + 1, len) == -EINVAL, "unaligned register is -EINVAL");
	ok(ckpt_register(c, "state", a, len) == 0, "ckpt_register");
	ok(ckpt_checkpoint(c) == 0 && ckpt_epoch(c) == 1, "ckpt_checkpoint commits epoch 1");
	ok(ckpt_close(c) == 0, "ckpt_close");

	c = NULL;
	ok(ckpt_open(store, NULL, &c) == 0 && ckpt_register(c, "state", b, len) == 0 &&
		   ckpt_on_restore(c, "state", on_restore, NULL) == 0,
	   "reopen and register the same name");
	ok(ckpt_restore(c) == 0 && memcmp(a, b, len) == 0 && hook_ran, "ckpt_restore brings the bytes back");
	ok(ckpt_get_stats(c, &st) == 0 && st.epoch == 1 && st.restores == 1, "ckpt_get_stats");
	ckpt_close(c);
	if (store == path) {
		unlink(path);
		rmdir(dir);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", n - failures, failures);
	return failures ? 1 : 0;
}

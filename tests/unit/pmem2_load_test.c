// SPDX-License-Identifier: MIT
/* libckpt loads libpmem2 only for a DAX store (libckpt/store/medium_dax.cpp), and says so
 * clearly when it cannot. Opens STORE through libckpt.so's C API, checkpoints one region, and
 * checks whether libpmem2 got into the process:
 *   pmem2_load_test absent  [STORE]  the open works and libpmem2 is not loaded (default STORE:
 *                                    a new file under /tmp, the io_uring writer; CTest)
 *   pmem2_load_test loaded  STORE    the open works and libpmem2 is loaded (a DAX store; VM)
 *   pmem2_load_test missing STORE    the open fails with -ELIBACC and an error naming libpmem2
 *                                    (a DAX store with CKPT_LIBPMEM2 naming no file; VM)
 * Prints TAP with a kselftest "# Totals:" line. */
#define _GNU_SOURCE
#include <ckpt/ckpt.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures, n;

static void ok(int cond, const char *what)
{
	n++;
	if (!cond)
		failures++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", n, what);
}

/* Both the loader's view (a handle without loading) and the address space. */
static int pmem2_in_process(void)
{
	void *h = dlopen("libpmem2.so.1", RTLD_NOW | RTLD_NOLOAD);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int mapped = 0;

	if (h)
		dlclose(h);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "libpmem2") || strstr(line, "libndctl"))
			mapped = 1;
	if (f)
		fclose(f);
	if (!h != !mapped)
		printf("# dlopen(RTLD_NOLOAD) %s, /proc/self/maps %s\n", h ? "found it" : "did not",
		       mapped ? "has it" : "does not");
	return h || mapped;
}

/* The first len bytes of a store: 0 or -errno. device-DAX has no read(), only mmap (of whole
 * 2 MiB alignment units). */
static int head(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0)
		r = -errno;
	else if (S_ISCHR(st.st_mode)) {
		void *p = mmap(NULL, 2ul << 20, PROT_READ, MAP_SHARED, fd, 0);

		if (p == MAP_FAILED) {
			r = -errno;
		} else {
			memcpy(buf, p, len);
			munmap(p, 2ul << 20);
		}
	} else if (pread(fd, buf, len, 0) != (ssize_t)len) {
		r = -EIO;
	}
	if (fd >= 0)
		close(fd);
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	char dir[] = "/tmp/ckpt-pmem2-XXXXXX", path[64];
	const char *store = argc > 2 ? argv[2] : NULL;
	size_t len = 4 * (size_t)sysconf(_SC_PAGESIZE);
	ckpt_config_t cfg;
	ckpt_t *c = NULL;
	char *a;
	int r;

	if (strcmp(mode, "absent") && strcmp(mode, "loaded") && strcmp(mode, "missing")) {
		fprintf(stderr, "usage: %s absent|loaded|missing [STORE]\n", argv[0]);
		return 2;
	}
	if (!store) {
		if (!mkdtemp(dir))
			return 1;
		snprintf(path, sizeof(path), "%s/store", dir);
		store = path;
	}
	printf("TAP version 13\n1..%d\n", strcmp(mode, "missing") ? 3 : 4);
	ok(!pmem2_in_process(), "libpmem2 is not loaded before the store is opened");
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 1;
	memset(a, 0x5a, len);
	ckpt_config_init(&cfg);
	if (!strcmp(mode, "missing")) {
		/* Bad set-up loses nothing: the store's first 64 KiB are the same after the open. */
		static char before[1 << 16], after[1 << 16];
		const char *why;
		int got = head(store, before, sizeof(before));

		r = ckpt_open(store, &cfg, &c);
		why = ckpt_open_error();
		printf("# ckpt_open: %d, %s\n", r, why);
		ok(r == -ELIBACC, "ckpt_open of a DAX store without libpmem2 is -ELIBACC");
		ok(strstr(why, "libpmem2") != NULL, "the error names libpmem2");
		ok(got == 0 && head(store, after, sizeof(after)) == 0 && !memcmp(before, after, sizeof(before)),
		   "the store's first bytes are unchanged");
	} else {
		cfg.flags = CKPT_CFG_FORMAT;
		r = ckpt_open(store, &cfg, &c);
		if (r)
			printf("# ckpt_open: %d, %s\n", r, ckpt_open_error());
		ok(r == 0 && ckpt_register(c, "state", a, len) == 0 && ckpt_checkpoint(c) == 0 &&
			   ckpt_close(c) == 0,
		   "open, checkpoint and close the store");
		if (!strcmp(mode, "absent"))
			ok(!pmem2_in_process(), "libpmem2 was not loaded for this store");
		else
			ok(pmem2_in_process(), "libpmem2 was loaded for this DAX store");
	}
	if (store == path) {
		unlink(path);
		rmdir(dir);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", n - failures, failures);
	return failures ? 1 : 0;
}

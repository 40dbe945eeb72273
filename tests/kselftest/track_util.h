/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the module's test programs: thin -errno ioctl wrappers, mappings, a
 * target process to attach to, the ptrace stop ATTACH requires.
 */
#ifndef CKPT_TRACK_UTIL_H
#define CKPT_TRACK_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/ckpt.h>

#define PAGE 4096UL

static inline int ck_open(void)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int fd = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, CKPT_IOC_API, &a)) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static inline int ck_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

/* Returns the region id (> 0) or -errno. */
static inline long ck_register(int fd, void *start, size_t len, uint64_t flags)
{
	struct ckpt_register r = { .start = (uintptr_t)start, .len = len, .flags = flags };
	int e = ck_ioctl(fd, CKPT_IOC_REGISTER, &r);

	return e ? e : (long)r.id;
}

static inline int ck_unregister(int fd, uint64_t id)
{
	struct ckpt_unregister u = { .id = id };

	return ck_ioctl(fd, CKPT_IOC_UNREGISTER, &u);
}

/* Array mode; returns count or -errno. */
static inline long ck_collect(int fd, uint64_t id, uint64_t *buf, size_t n, uint64_t flags,
			      struct ckpt_collect *out)
{
	struct ckpt_collect c = { .id = id, .flags = flags, .buf = (uintptr_t)buf,
				  .buf_len = n * sizeof(uint64_t) };
	int e = ck_ioctl(fd, CKPT_IOC_COLLECT, &c);

	if (out)
		*out = c;
	return e ? e : (long)c.count;
}

/* Bitmap mode into @bm (words = pages/64 rounded up); returns count or -errno. */
static inline long ck_collect_bitmap(int fd, uint64_t id, uint64_t *bm, size_t words)
{
	struct ckpt_collect c = { .id = id, .flags = CKPT_COLLECT_BITMAP, .buf = (uintptr_t)bm,
				  .buf_len = words * 8 };
	int e = ck_ioctl(fd, CKPT_IOC_COLLECT, &c);

	return e ? e : (long)c.count;
}

static inline int ck_stats(int fd, uint64_t id, struct ckpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->id = id;
	return ck_ioctl(fd, CKPT_IOC_STATS, st);
}

/* Anonymous private memory, aligned to @align (a power of two), not populated. */
static inline void *ck_map(size_t len, size_t align)
{
	size_t span = len + align;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + span > a + len)
		munmap((void *)(a + len), (uintptr_t)p + span - (a + len));
	return (void *)a;
}

/* xorshift64*: reproducible pseudo-random numbers for the randomized tests. */
static inline uint64_t ck_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Kbytes of AnonHugePages in /proc/self/smaps for the mapping containing @addr. */
static inline long ck_anon_huge_kb(void *addr)
{
	char line[256];
	unsigned long lo, hi, a = (uintptr_t)addr;
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* The caller's [vvar]+[vdso] range (what RESTORE_PREPARE keeps: keep_start, keep_end). */
static inline void ck_own_vdso(__u64 *start, __u64 *end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;

	*start = *end = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (strstr(line, "[vvar]"))
			*start = s;
		if (strstr(line, "[vdso]"))
			*end = e;
	}
	if (f)
		fclose(f);
}

/* PTRACE_SEIZE + PTRACE_INTERRUPT: @pid sits in a ptrace stop (what ATTACH requires). 0 or -errno. */
static inline int ck_seize_stop(pid_t pid, long options)
{
	int st;

	if (ptrace(PTRACE_SEIZE, pid, 0, options))
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0))
		return -errno;
	if (waitpid(pid, &st, __WALL) != pid)
		return -errno;
	return WIFSTOPPED(st) ? 0 : -ECHILD;
}

/*
 * A child that maps 16 pages (no THP), reports their address, then on command 'N' writes
 * page N and acknowledges, on 'e' execs this program with the argument "--sleeper", on 'q'
 * exits. It dies with the test (PR_SET_PDEATHSIG).
 */
struct ck_target {
	pid_t pid;
	int cmd, ack;
	uintptr_t addr;
};

static inline int ck_target_start(struct ck_target *t, int dumpable)
{
	int c[2], a[2];

	if (pipe(c) || pipe(a))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (!t->pid) {
		char *m = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uintptr_t addr = (uintptr_t)m;
		char op;

		if (m == MAP_FAILED)
			_exit(1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_DUMPABLE, dumpable);
		madvise(m, 16 * PAGE, MADV_NOHUGEPAGE);
		memset(m, 0, 16 * PAGE);
		close(c[1]);
		close(a[0]);
		if (write(a[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		while (read(c[0], &op, 1) == 1) {
			if (op == 'q')
				_exit(0);
			if (op == 'e') {
				execl("/proc/self/exe", "ck_target", "--sleeper", (char *)NULL);
				_exit(3);
			}
			m[(op - '0') * PAGE] ^= 1;
			if (write(a[1], &op, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(c[0]);
	close(a[1]);
	t->cmd = c[1];
	t->ack = a[0];
	return read(t->ack, &t->addr, sizeof(t->addr)) == sizeof(t->addr) ? 0 : -1;
}

/* The target writes page @page ('0'..'9', ...) and has done so when this returns 0. */
static inline int ck_target_write(struct ck_target *t, char page)
{
	char ack;

	return write(t->cmd, &page, 1) == 1 && read(t->ack, &ack, 1) == 1 ? 0 : -1;
}

static inline void ck_target_stop(struct ck_target *t)
{
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, __WALL);
	close(t->cmd);
	close(t->ack);
}

#endif

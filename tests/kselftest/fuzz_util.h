/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared parts of the /dev/ckpt fuzzer (fuzz_storm.c): the seed (random, printed, replayable
 * through CKPT_FUZZ_SEED), the call counter, the documented errnos of every command, and the
 * switches that keep sequences hitting a known, not yet fixed bug out of the default run.
 */
#ifndef CKPT_FUZZ_UTIL_H
#define CKPT_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/random.h>

#include "track_util.h"

/* Every command of include/uapi/linux/ckpt.h. */
static const unsigned long fz_cmds[] = {
	CKPT_IOC_API, CKPT_IOC_REGISTER, CKPT_IOC_UNREGISTER, CKPT_IOC_COLLECT, CKPT_IOC_STATS,
	CKPT_IOC_ATTACH, CKPT_IOC_RELEASE, CKPT_IOC_RESTORE_PREPARE, CKPT_IOC_RESTORE_COMMIT,
	CKPT_IOC_RESTORE_THREAD, CKPT_IOC_DUMP_TASK, CKPT_IOC_WATCH,
};
#define FZ_NCMDS (sizeof(fz_cmds) / sizeof(fz_cmds[0]))

/* The bits CKPT_IOC_API must report in @ioctls: exactly the commands above. */
static inline uint64_t fz_ioctl_bits(void)
{
	uint64_t m = 0;

	for (unsigned int i = 0; i < FZ_NCMDS; i++)
		m |= 1ULL << _IOC_NR(fz_cmds[i]);
	return m;
}

static inline bool fz_known_cmd(unsigned long cmd)
{
	for (unsigned int i = 0; i < FZ_NCMDS; i++)
		if (fz_cmds[i] == cmd)
			return true;
	return false;
}

/*
 * The errnos the UAPI header documents for @cmd (after a handshake). -EINVAL and -EFAULT
 * are documented for every command that takes a pointer.
 */
static inline bool fz_documented(unsigned long cmd, int e)
{
	if (!e)
		return true;
	if (!fz_known_cmd(cmd))
		return e == -ENOTTY;
	if (cmd == CKPT_IOC_RESTORE_COMMIT)
		return e == -EINVAL || e == -EBUSY;
	if (e == -EINVAL || e == -EFAULT)
		return true;
	switch (cmd) {
	case CKPT_IOC_API:
		return e == -EBUSY || e == -EPROTONOSUPPORT || e == -EOPNOTSUPP;
	case CKPT_IOC_REGISTER:
		return e == -ENOMEM || e == -EOPNOTSUPP || e == -EEXIST || e == -ENOSPC ||
		       e == -ESRCH || e == -EINTR;
	case CKPT_IOC_UNREGISTER:
	case CKPT_IOC_STATS:
	case CKPT_IOC_RELEASE:
		return e == -ENOENT;
	case CKPT_IOC_COLLECT:
		/* -ENOSPC: a HOLD's first bitmap past max_user_kmem_kb. */
		return e == -ENOENT || e == -ESRCH || e == -EINTR || e == -ENOSPC;
	case CKPT_IOC_ATTACH:
		return e == -ESRCH || e == -EPERM || e == -EBUSY;
	case CKPT_IOC_RESTORE_PREPARE:
		return e == -EBADF || e == -EACCES || e == -E2BIG || e == -ENOMEM;
	case CKPT_IOC_RESTORE_THREAD:
		/* -ECANCELED: the restore it waited for was dropped (see ckpt.h). */
		return e == -ENOENT || e == -EINTR || e == -ECANCELED;
	case CKPT_IOC_DUMP_TASK:
		return e == -ESRCH || e == -EPERM;
	case CKPT_IOC_WATCH:
		return e == -ESRCH || e == -EEXIST || e == -ENOENT || e == -ENOSPC || e == -ENOMEM;
	}
	return false;
}

/* The seed: CKPT_FUZZ_SEED if set, else random. */
static inline uint64_t fz_seed(void)
{
	const char *s = getenv("CKPT_FUZZ_SEED");
	uint64_t v = 0;

	if (s && *s)
		return strtoull(s, NULL, 0);
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
	return v ? v : 1;
}

static inline long fz_env_long(const char *name, long dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 0) : dflt;
}

/*
 * Known bug switch. hold.c's hold_take() copied a page out of r->copies without hold_lock
 * while a write fault on a held page of the same region (another thread, or RELEASE's own
 * copy_to_user into a @data buffer inside that region) replaced and freed it: a use-after-free
 * and double free (issue 15, "Memory safety"; fixed by f6dd93b, "RELEASE owns a copy before it
 * writes it to user memory"). These sequences run by default: COLLECT_HOLD on memory that
 * another thread or process writes meanwhile, and RELEASE buffers inside held memory.
 * CKPT_FUZZ_HOLD_TAKE_RACE=0 keeps them out (for a module without that fix).
 */
static inline bool fz_hold_take_race(void)
{
	return fz_env_long("CKPT_FUZZ_HOLD_TAKE_RACE", 1) != 0;
}

/* xorshift64* per thread. */
struct fz_rng {
	uint64_t s;
};

static inline uint64_t fz_r(struct fz_rng *r)
{
	return ck_rand(&r->s);
}

static inline uint64_t fz_below(struct fz_rng *r, uint64_t n)
{
	return n ? fz_r(r) % n : 0;
}

static inline bool fz_one_in(struct fz_rng *r, uint64_t n)
{
	return fz_below(r, n) == 0;
}

static inline void fz_rng_init(struct fz_rng *r, uint64_t seed, uint64_t stream)
{
	r->s = (seed ^ (stream + 1) * 0x9e3779b97f4a7c15ULL) | 1;
	for (int i = 0; i < 4; i++)
		fz_r(r);
}

/* Every ioctl the fuzzers make, all threads and processes (a shared counter page). */
static atomic_long *fz_calls;
static atomic_long *fz_failures;

static inline void fz_counters_init(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		abort();
	fz_calls = p;
	fz_failures = (atomic_long *)p + 1;
	atomic_store(fz_calls, 0);
	atomic_store(fz_failures, 0);
}

static __thread long fz_thread_calls;	/* this thread's */

static inline void fz_count(void)
{
	atomic_fetch_add_explicit(fz_calls, 1, memory_order_relaxed);
	fz_thread_calls++;
}

static inline long fz_ioctl(int fd, unsigned long cmd, unsigned long arg)
{
	long r = ioctl(fd, cmd, arg);

	fz_count();
	return r < 0 ? -errno : r;
}

/* A broken invariant: printed with the seed, counted; the test fails at its end. */
static inline void fz_fail(uint64_t seed, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_fetch_add(fz_failures, 1) < 30)
		fprintf(stderr, "# FAIL (seed %#llx): %s\n", (unsigned long long)seed, msg);
}

#endif

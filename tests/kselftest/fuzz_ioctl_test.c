// SPDX-License-Identifier: GPL-2.0
/*
 * A randomized ioctl fuzzer for /dev/ckpt: at least 100 000 calls from several processes at
 * once, mixing well-formed and malformed commands (random numbers and sizes, garbage fields,
 * bad pointers, stale ids, unmapped/shared/overlapping ranges) with changes to the memory
 * under the regions (munmap, mmap, mprotect, MADV_DONTNEED, writes) and with reopened files.
 * Every call must return 0 or one of the documented errnos; afterwards the kernel log must
 * hold nothing from ckpt but its load line (tests/vm/run-all also fails on any WARNING/BUG).
 * CKPT_FUZZ_CALLS and CKPT_FUZZ_SEED override the defaults.
 */
#include <liburing.h>
#include <sys/wait.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define POOL_PAGES 1024
#define NPROC 3

static const unsigned long cmds[] = { CKPT_IOC_API, CKPT_IOC_REGISTER, CKPT_IOC_UNREGISTER,
				      CKPT_IOC_COLLECT, CKPT_IOC_STATS, CKPT_IOC_ATTACH,
				      CKPT_IOC_RELEASE };

static int allowed(int e)
{
	switch (-e) {
	case 0: case EINVAL: case ENOMEM: case EOPNOTSUPP: case EEXIST: case ENOSPC: case ESRCH:
	case EFAULT: case ENOENT: case ENOTTY: case EBUSY: case EPERM:
		return 1;
	}
	return 0;
}

struct fz {
	uint64_t seed;
	char *pool;
	char *shared;
	uint64_t ids[64];
	int nids;
	uint64_t *buf;
	struct io_uring ring;
};

static uint64_t r64(struct fz *f)
{
	return ck_rand(&f->seed);
}

/* A pointer: mostly a good buffer, sometimes NULL, unmapped, kernel, misaligned or read-only. */
static uint64_t rptr(struct fz *f)
{
	switch (r64(f) % 12) {
	case 0: return 0;
	case 1: return 8;
	case 2: return 0xffff888000000000ULL;
	case 3: return (uintptr_t)f->buf + 1 + r64(f) % 7;
	case 4: return (uintptr_t)"read-only string";
	case 5: return r64(f);
	default: return (uintptr_t)f->buf;
	}
}

static uint64_t raddr(struct fz *f)
{
	switch (r64(f) % 10) {
	case 0: return r64(f);
	case 1: return (uintptr_t)f->shared;
	case 2: return (uintptr_t)f->pool + r64(f) % (POOL_PAGES * PAGE);	/* unaligned */
	case 3: return 1ULL << (40 + r64(f) % 24);
	default: return (uintptr_t)f->pool + (r64(f) % POOL_PAGES) * PAGE;
	}
}

static uint64_t rlen(struct fz *f)
{
	switch (r64(f) % 10) {
	case 0: return r64(f);
	case 1: return 0;
	case 2: return -PAGE;
	case 3: return 1 + r64(f) % PAGE;
	default: return (1 + r64(f) % 128) * PAGE;
	}
}

static uint64_t rid(struct fz *f)
{
	if (f->nids && r64(f) % 4)
		return f->ids[r64(f) % f->nids];
	return r64(f) % 3 ? r64(f) % 8 : r64(f);
}

static uint64_t rflags(struct fz *f, uint64_t valid)
{
	switch (r64(f) % 8) {
	case 0: return r64(f);
	case 1: return 1ULL << (r64(f) % 64);
	default: return r64(f) & valid;
	}
}

/* Occasionally garbage in one reserved word. */
static void rreserved(struct fz *f, __u64 *res, size_t n)
{
	if (r64(f) % 16 == 0)
		res[r64(f) % n] = r64(f) | 1;
}

static void mem_op(struct fz *f)
{
	char *p = f->pool + (r64(f) % (POOL_PAGES - 64)) * PAGE;
	size_t len = (1 + r64(f) % 64) * PAGE;

	switch (r64(f) % 6) {
	case 0:
		munmap(p, len);
		break;
	case 1:
		mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		break;
	case 2:
		mprotect(p, len, r64(f) % 2 ? PROT_READ : PROT_READ | PROT_WRITE);
		break;
	case 3:
		madvise(p, len, MADV_DONTNEED);
		break;
	default:
		/* Writes to whatever is mapped writable now; a fault is fine, we probe first. */
		if (!mprotect(p, len, PROT_READ | PROT_WRITE))
			memset(p, (int)r64(f), len);
	}
}

static int one_call(struct fz *f, int *fd)
{
	union {
		struct ckpt_api api;
		struct ckpt_register reg;
		struct ckpt_unregister unreg;
		struct ckpt_collect col;
		struct ckpt_stats st;
		struct ckpt_attach at;
		struct ckpt_release rel;
		__u64 raw[32];
	} a;
	unsigned long cmd = cmds[r64(f) % 7];
	void *arg = &a;
	int e;

	memset(&a, 0, sizeof(a));
	if (r64(f) % 20 == 0) {
		/* A random command number, size and direction in our magic. */
		cmd = _IOC(r64(f) % 4, CKPT_IOC_MAGIC, r64(f) % 64, r64(f) % 256);
		for (int i = 0; i < 32; i++)
			a.raw[i] = r64(f) % 3 ? 0 : r64(f);
	} else {
		switch (_IOC_NR(cmd)) {
		case 0:
			a.api.api = r64(f) % 4 ? CKPT_API_VERSION : r64(f);
			a.api.features = r64(f) % 8 ? 0 : r64(f);
			break;
		case 1:
			a.reg.start = raddr(f);
			a.reg.len = rlen(f);
			a.reg.flags = rflags(f, CKPT_REGISTER_DIRTY);
			rreserved(f, a.reg.reserved, 4);
			break;
		case 2:
			a.unreg.id = rid(f);
			a.unreg.flags = r64(f) % 10 ? 0 : r64(f);
			rreserved(f, a.unreg.reserved, 2);
			break;
		case 3:
			a.col.id = r64(f) % 5 ? rid(f) : 0;
			a.col.flags = rflags(f, CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK | CKPT_COLLECT_HOLD);
			a.col.buf = rptr(f);
			a.col.buf_len = r64(f) % 6 ? (r64(f) % (POOL_PAGES + 8)) * 8 :
				(r64(f) % 2 ? r64(f) : 8 * POOL_PAGES * 4);
			if (r64(f) % 20 == 0)
				a.col.count = 1;
			rreserved(f, a.col.reserved, 5);
			break;
		case 4:
			a.st.id = rid(f);
			a.st.flags = r64(f) % 10 ? 0 : 1;
			rreserved(f, a.st.reserved, 6);
			break;
		case 5:
			a.at.pid = r64(f) % 3 ? (uint64_t)getppid() : r64(f) % 100000;
			rreserved(f, a.at.reserved, 2);
			break;
		case 6:
			a.rel.id = r64(f) % 5 ? rid(f) : 0;
			a.rel.flags = rflags(f, CKPT_RELEASE_END);
			a.rel.addrs = rptr(f);
			/* At most 8 copies into f->buf (32 KiB); a huge @max only with a bad @data. */
			a.rel.max = r64(f) % 9;
			a.rel.data = rptr(f);
			if (r64(f) % 20 == 0) {
				a.rel.max = r64(f);
				a.rel.data = 8;
			}
			rreserved(f, a.rel.reserved, 4);
			break;
		}
	}
	if (r64(f) % 50 == 0)
		arg = (void *)(uintptr_t)rptr(f);
	if (cmd == CKPT_IOC_COLLECT && r64(f) % 8 == 0) {
		/* Through io_uring instead. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, *fd, NULL, 0, 0);
		sqe->cmd_op = r64(f) % 10 ? CKPT_IOC_COLLECT : (uint32_t)r64(f);
		*(uint64_t *)sqe->cmd = (uintptr_t)arg;
		io_uring_submit(&f->ring);
		if (io_uring_wait_cqe(&f->ring, &cqe))
			return -1000;
		e = cqe->res > 0 ? 0 : cqe->res;
		io_uring_cqe_seen(&f->ring, cqe);
	} else {
		e = ioctl(*fd, cmd, arg) ? -errno : 0;
	}
	if (!e && cmd == CKPT_IOC_REGISTER && arg == &a && f->nids < 64)
		f->ids[f->nids++] = a.reg.id;
	if (!allowed(e)) {
		fprintf(stderr, "cmd %#lx returned %d\n", cmd, e);
		return -1;
	}
	if (r64(f) % 500 == 0) {
		/* A fresh session, handshake or not. */
		close(*fd);
		*fd = r64(f) % 4 ? ck_open() : open("/dev/ckpt", O_RDWR);
		f->nids = 0;
	}
	return 0;
}

static int fuzz_proc(uint64_t seed, long calls)
{
	struct fz f = { .seed = seed | 1 };
	int fd = ck_open();

	f.pool = ck_map(POOL_PAGES * PAGE, 2 << 20);
	f.shared = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	f.buf = malloc(8 * POOL_PAGES * 4 + 64);
	if (fd < 0 || !f.pool || f.shared == MAP_FAILED || !f.buf ||
	    io_uring_queue_init(4, &f.ring, 0))
		return 2;
	memset(f.pool, 1, POOL_PAGES * PAGE);
	for (long i = 0; i < calls; i++) {
		if (r64(&f) % 10 == 0)
			mem_op(&f);
		if (one_call(&f, &fd))
			return 1;
	}
	close(fd);
	return 0;
}

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz)
{
}

FIXTURE_TEARDOWN(fuzz)
{
}

TEST_F_TIMEOUT(fuzz, random_ioctls, 1200)
{
	long calls = getenv("CKPT_FUZZ_CALLS") ? atol(getenv("CKPT_FUZZ_CALLS")) : 120000;
	uint64_t seed = getenv("CKPT_FUZZ_SEED") ? strtoull(getenv("CKPT_FUZZ_SEED"), 0, 0) : 0xf00d;
	pid_t pids[NPROC];
	int status, bad = 0;
	char line[512];
	FILE *p;

	TH_LOG("%ld calls in %d processes, seed %#lx", calls, NPROC, seed);
	system("dmesg -c > /dev/null 2>&1");
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(fuzz_proc(seed + i * 0x9e3779b97f4a7c15ULL, calls / NPROC + 1));
	}
	for (int i = 0; i < NPROC; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			TH_LOG("fuzzer %d: status %#x", i, status);
			bad++;
		}
	}
	ASSERT_EQ(0, bad);
	/* Nothing from the module in the kernel log. */
	p = popen("dmesg", "r");
	ASSERT_NE(NULL, p);
	while (fgets(line, sizeof(line), p)) {
		int noisy = strstr(line, "ckpt") || strstr(line, "WARNING") || strstr(line, "BUG");

		EXPECT_FALSE(noisy) TH_LOG("kernel log: %s", line);
	}
	pclose(p);
}

TEST_HARNESS_MAIN

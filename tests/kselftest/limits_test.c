// SPDX-License-Identifier: GPL-2.0
/*
 * What one user may pin in ckpt.ko (kmod/user.c; issue 15, "No unbounded kernel memory"):
 * max_user_sessions (open: -EMFILE) and max_user_kmem_kb (REGISTER, HOLD, RESTORE_PREPARE:
 * -ENOSPC; held copies beyond it count as lost). Each test lowers a parameter, runs as uid
 * 65534 (the saved uid stays 0 to put the parameter back), and checks that exceeding the cap
 * fails cleanly, that another uid is not affected, and that closing gives everything back (the
 * module WARNs if a uid's charge is not zero when its last session closes, which fails the
 * run). The module before these caps let any user open sessions and pin memory without bound.
 */
#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "track_util.h"
#include "kselftest_harness.h"

#define PARAM "/sys/module/ckpt/parameters/"
#define NOBODY 65534

static long read_param(const char *name)
{
	char path[128], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), PARAM "%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtol(buf, NULL, 10);
}

static int write_param(const char *name, long v)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), PARAM "%s", name);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* Become uid/gid @uid (effective and real), keeping saved uid 0 and the device's group. */
static int become(uid_t uid)
{
	struct stat st;

	if (stat("/dev/" CKPT_DEVICE_NAME, &st))
		return -errno;
	if (setresuid(0, 0, 0))
		return -errno;
	if (setgroups(1, &st.st_gid) || setresgid(uid, uid, 0) || setresuid(uid, uid, 0))
		return -errno;
	return 0;
}

FIXTURE(lim) {
	long sessions, kmem;
};

FIXTURE_SETUP(lim)
{
	if (geteuid())
		SKIP(return, "needs root to set the module's parameters");
	self->sessions = read_param("max_user_sessions");
	self->kmem = read_param("max_user_kmem_kb");
	ASSERT_LT(0, self->sessions) TH_LOG("ckpt.ko without max_user_sessions");
	ASSERT_LT(0, self->kmem) TH_LOG("ckpt.ko without max_user_kmem_kb");
}

FIXTURE_TEARDOWN(lim)
{
	if (setresuid(0, 0, 0) == 0) {
		write_param("max_user_sessions", self->sessions);
		write_param("max_user_kmem_kb", self->kmem);
	}
}

/* Open sessions until the cap; returns how many, the fds in @fds, the error after in *@err. */
static int open_all(int *fds, int room, int *err)
{
	int n = 0, fd;

	while (n < room && (fd = ck_open()) >= 0)
		fds[n++] = fd;
	*err = n < room ? fd : 0;
	return n;
}

TEST_F(lim, sessions_per_uid)
{
	int fds[16], other[16], n, m, err, st;
	pid_t pid;

	ASSERT_EQ(0, write_param("max_user_sessions", 5));
	ASSERT_EQ(0, become(NOBODY));
	n = open_all(fds, 16, &err);
	EXPECT_EQ(5, n);
	EXPECT_EQ(-EMFILE, err);
	/* Another uid has its own count. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (become(NOBODY - 1))
			_exit(10);
		m = open_all(other, 16, &err);
		_exit(m == 5 && err == -EMFILE ? 0 : 20 + m);
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	EXPECT_EQ(0, WEXITSTATUS(st)) TH_LOG("uid %d opened %d sessions", NOBODY - 1,
					     WEXITSTATUS(st) - 20);
	/* A closed session gives its place back. */
	close(fds[--n]);
	fds[n] = ck_open();
	EXPECT_LE(0, fds[n]);
	EXPECT_EQ(-EMFILE, ck_open());
	for (int i = 0; i <= n; i++)
		close(fds[i]);
	/* Raised again: more fit. */
	ASSERT_EQ(0, setresuid(0, 0, 0));
	ASSERT_EQ(0, write_param("max_user_sessions", 8));
	ASSERT_EQ(0, become(NOBODY));
	n = open_all(fds, 16, &err);
	EXPECT_EQ(8, n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* REGISTER charges a region's log (1 bit per page and its structure) to the cap. */
TEST_F(lim, register_beyond_kmem_is_enospc)
{
	size_t big = 1UL << 30;		/* 262144 pages: a 32 KiB log */
	char *m = mmap(NULL, 3 * big, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	long id1, id2, id3;
	int fd, fd2;

	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, write_param("max_user_kmem_kb", 80));
	ASSERT_EQ(0, become(NOBODY));
	fd = ck_open();
	ASSERT_LE(0, fd);
	id1 = ck_register(fd, m, big, 0);
	ASSERT_LT(0, id1);
	id2 = ck_register(fd, m + big, big, 0);
	ASSERT_LT(0, id2);
	/* A third 32 KiB log does not fit in 80 KiB, in this session or another of the uid. */
	EXPECT_EQ(-ENOSPC, ck_register(fd, m + 2 * big, big, 0));
	fd2 = ck_open();
	ASSERT_LE(0, fd2);
	EXPECT_EQ(-ENOSPC, ck_register(fd2, m + 2 * big, big, 0));
	/* A small one still fits; UNREGISTER gives the room back. */
	EXPECT_LT(0, ck_register(fd2, m + 2 * big, 64 * PAGE, 0));
	EXPECT_EQ(0, ck_unregister(fd, id1));
	id3 = ck_register(fd, m + 2 * big + 64 * PAGE, big - 64 * PAGE, 0);
	EXPECT_LT(0, id3);
	close(fd2);
	close(fd);
	/* Everything closed: the whole budget is back. */
	fd = ck_open();
	ASSERT_LE(0, fd);
	EXPECT_LT(0, ck_register(fd, m, big, 0));
	EXPECT_LT(0, ck_register(fd, m + big, big, 0));
	close(fd);
	munmap(m, 3 * big);
}

static long release_all(int fd, uint64_t id, char *data, size_t max, uint64_t *lost)
{
	uint64_t addrs[64];
	struct ckpt_release r = { .id = id, .flags = CKPT_RELEASE_END, .addrs = (uintptr_t)addrs,
				  .data = (uintptr_t)data, .max = max };

	if (ioctl(fd, CKPT_IOC_RELEASE, &r))
		return -errno;
	*lost = r.lost;
	return (long)r.count;
}

/*
 * Held copies are charged: past the cap a written held page is lost, not copied. A page that
 * reads as zeros (never populated) costs no copy and comes back as zeros. Closing the session
 * gives the copies' charge back.
 */
TEST_F(lim, held_copies_beyond_kmem_are_lost)
{
	char *m = ck_map(64 * PAGE, PAGE), *z = ck_map(64 * PAGE, PAGE);
	char *data = malloc(64 * PAGE), zero[PAGE];
	uint64_t addrs[64], lost;
	long id, copies, first = -1;

	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, z);
	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, madvise(m, 64 * PAGE, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, madvise(z, 64 * PAGE, MADV_NOHUGEPAGE));
	memset(zero, 0, PAGE);
	ASSERT_EQ(0, write_param("max_user_kmem_kb", 48));
	ASSERT_EQ(0, become(NOBODY));
	for (int round = 0; round < 2; round++) {
		int fd = ck_open();

		ASSERT_LE(0, fd);
		/* 64 never-populated pages: held and written, no copy charged. */
		ASSERT_EQ(0, madvise(z, 64 * PAGE, MADV_DONTNEED));	/* round 1: again */
		id = ck_register(fd, z, 64 * PAGE, CKPT_REGISTER_DIRTY);
		ASSERT_LT(0, id);
		ASSERT_EQ(64, ck_collect(fd, id, addrs, 64, CKPT_COLLECT_HOLD, NULL));
		for (int p = 0; p < 64; p++)
			z[p * PAGE] = 1;
		ASSERT_EQ(64, release_all(fd, id, data, 64, &lost));
		EXPECT_EQ(0, lost);
		for (int p = 0; p < 64; p++)
			ASSERT_EQ(0, memcmp(data + p * PAGE, zero, PAGE));
		ASSERT_EQ(0, ck_unregister(fd, id));
		/* 64 populated pages: about 11 copies fit in 48 KiB. */
		memset(m, 'm', 64 * PAGE);
		id = ck_register(fd, m, 64 * PAGE, CKPT_REGISTER_DIRTY);
		ASSERT_LT(0, id);
		ASSERT_EQ(64, ck_collect(fd, id, addrs, 64, CKPT_COLLECT_HOLD, NULL));
		for (int p = 0; p < 64; p++)
			m[p * PAGE] = 2;
		copies = release_all(fd, id, data, 64, &lost);
		TH_LOG("round %d: %ld copies, %llu lost", round, copies, (unsigned long long)lost);
		EXPECT_LT(0, copies);
		EXPECT_GE(12, copies);
		EXPECT_EQ(64, copies + (long)lost);
		for (long i = 0; i < copies; i++)
			EXPECT_EQ('m', data[i * PAGE]);
		/* Same budget after the session closed: the same number fits again. */
		if (round)
			EXPECT_EQ(first, copies);
		first = copies;
		close(fd);
	}
	free(data);
}

/* RESTORE_PREPARE's staged request is charged: too large for the cap is -ENOSPC. */
TEST_F(lim, restore_prepare_beyond_kmem_is_enospc)
{
	static struct ckpt_restore_vma vmas[2000];
	struct ckpt_restore_prepare p = { 0 };
	int fd;

	ck_own_vdso(&p.keep_start, &p.keep_end);
	ASSERT_NE(0, p.keep_end);
	p.vmas = (uintptr_t)vmas;
	p.nr_vmas = 2000;		/* 2000 * 72 bytes staged */
	p.vma_size = sizeof(struct ckpt_restore_vma);
	p.run_size = sizeof(struct ckpt_restore_run);
	p.thread.regs.cs = 0x33;
	p.thread.regs.ss = 0x2b;
	p.thread.regs.ip = 0x400000;
	ASSERT_EQ(0, become(NOBODY));
	fd = ck_open();
	ASSERT_LE(0, fd);
	p.self_fd = fd;
	/* Within the default cap the request is read and refused for its contents. */
	EXPECT_EQ(-EINVAL, ck_ioctl(fd, CKPT_IOC_RESTORE_PREPARE, &p));
	ASSERT_EQ(0, setresuid(0, 0, 0));
	ASSERT_EQ(0, write_param("max_user_kmem_kb", 64));
	ASSERT_EQ(0, become(NOBODY));
	EXPECT_EQ(-ENOSPC, ck_ioctl(fd, CKPT_IOC_RESTORE_PREPARE, &p));
	close(fd);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -errno;
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

/*
 * Held copies are charged to the writer's memory cgroup and never exceed its memory.max: past
 * it a written held page is lost, not copied (the module before this change allocated them
 * with GFP_ATOMIC, which 6.1's memcg charge lets past the limit).
 */
TEST(held_copies_stay_within_memcg)
{
	const char *cg = "/sys/fs/cgroup/ckpt_limits_test";
	const size_t np = 1024;			/* 4 MiB held and written, memory.max 2 MiB */
	char *m = ck_map(np * PAGE, PAGE), *data = ck_map(np * PAGE, PAGE), path[256], me[32];
	uint64_t *addrs = malloc(np * 8);
	struct ckpt_release r;
	long id;
	int fd, in, out;

	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, data);
	ASSERT_NE(NULL, addrs);
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		mount("none", "/sys/fs/cgroup", "cgroup2", 0, NULL);
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		SKIP(return, "no cgroup2 hierarchy");
	ASSERT_EQ(0, write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory\n"));
	rmdir(cg);
	ASSERT_EQ(0, mkdir(cg, 0755));
	snprintf(path, sizeof(path), "%s/memory.max", cg);
	ASSERT_EQ(0, write_file(path, "2097152\n"));
	/* Populated and charged out here, before this process joins the cgroup (charges stay). */
	ASSERT_EQ(0, madvise(m, np * PAGE, MADV_NOHUGEPAGE));
	memset(m, 'c', np * PAGE);
	memset(data, 0, np * PAGE);
	memset(addrs, 0, np * 8);
	fd = ck_open();
	ASSERT_LE(0, fd);
	id = ck_register(fd, m, np * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, id);
	ASSERT_EQ((long)np, ck_collect(fd, id, addrs, np, CKPT_COLLECT_HOLD, NULL));
	/*
	 * Inside the cgroup this process allocates nothing but the copies (it would be OOM-killed
	 * at the limit, as the old module's forced copies got it killed): both cgroup.procs files
	 * are opened beforehand, and only write(2) is used in between.
	 */
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(me, sizeof(me), "%d\n", getpid());
	in = open(path, O_WRONLY);
	out = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY);
	ASSERT_LE(0, in);
	ASSERT_LE(0, out);
	ASSERT_EQ((ssize_t)strlen(me), write(in, me, strlen(me)));
	for (size_t p = 0; p < np; p++)
		m[p * PAGE] = 'w';	/* each write copies the held page, charged in the cgroup */
	ASSERT_EQ((ssize_t)strlen(me), write(out, me, strlen(me)));
	close(in);
	close(out);
	r = (struct ckpt_release){ .id = id, .flags = CKPT_RELEASE_END, .addrs = (uintptr_t)addrs,
				   .data = (uintptr_t)data, .max = np };
	ASSERT_EQ(0, ck_ioctl(fd, CKPT_IOC_RELEASE, &r));
	TH_LOG("%llu copies, %llu lost under memory.max = 2 MiB", (unsigned long long)r.count,
	       (unsigned long long)r.lost);
	EXPECT_EQ(np, r.count + r.lost);
	EXPECT_LT(0, r.lost);
	EXPECT_GE(512, r.count);	/* 2 MiB of copies at most */
	close(fd);
	EXPECT_EQ(0, rmdir(cg));
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions and processes: 64 processes tracking at once (each checked against its own
 * oracle), a tracked process killed while collecting, exec and exit ending a session (-ESRCH),
 * and ATTACH to another process: allowed for the same user on a dumpable target, refused
 * otherwise.
 */
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "track_util.h"
#include "kselftest_harness.h"

/* The exec test re-runs this binary with CKPT_EXEC_FD set: check the session died, exit. */
__attribute__((constructor)) static void exec_helper(void)
{
	const char *v = getenv("CKPT_EXEC_FD");
	uint64_t out[8];

	if (!v)
		return;
	_exit(ck_collect(atoi(v), 0, out, 8, 0, NULL) == -ESRCH ? 0 : 1);
}

static int tracked_child_work(int epochs, uint64_t seed)
{
	size_t np = 64;
	char *m = ck_map(np * PAGE, PAGE), *copy = malloc(np * PAGE);
	uint64_t out[64];
	int fd = ck_open();
	long id;

	if (!m || fd < 0)
		return 2;
	madvise(m, np * PAGE, MADV_NOHUGEPAGE);
	memset(m, (int)seed, np * PAGE);
	memcpy(copy, m, np * PAGE);
	id = ck_register(fd, m, np * PAGE, 0);
	if (id <= 0)
		return 3;
	for (int e = 0; e < epochs; e++) {
		unsigned char wr[64] = { 0 };
		long n;

		for (int i = 0; i < 8; i++) {
			size_t p = ck_rand(&seed) % np;

			m[p * PAGE + ck_rand(&seed) % PAGE]++;
			wr[p] = 1;
		}
		n = ck_collect(fd, id, out, np, 0, NULL);
		if (n < 0)
			return 4;
		for (long i = 0; i < n; i++) {
			size_t p = (out[i] - (uintptr_t)m) / PAGE;

			if (!wr[p])
				return 5;	/* over-report on plain 4 KiB memory */
			wr[p] = 2;
			memcpy(copy + p * PAGE, m + p * PAGE, PAGE);
		}
		for (size_t p = 0; p < np; p++)
			if (wr[p] == 1)
				return 6;	/* written, not reported */
		if (memcmp(copy, m, np * PAGE))
			return 7;
		if (e % 8 == 7)
			sched_yield();
	}
	return 0;
}

TEST(sixty_four_processes)
{
	pid_t pids[64];
	int status, bad = 0;

	for (int i = 0; i < 64; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(tracked_child_work(40, 1000 + i));
	}
	for (int i = 0; i < 64; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			TH_LOG("process %d: status %#x", i, status);
			bad++;
		}
	}
	ASSERT_EQ(0, bad);
}

/* Killed while COLLECT runs on a large dirty region: the module cleans up (dmesg checked). */
TEST(killed_mid_collect)
{
	for (int round = 0; round < 12; round++) {
		int p[2], status;
		char c;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			size_t len = 32UL << 20;
			char *m = ck_map(len, 2 << 20);
			uint64_t *out = malloc(len / PAGE * 8);
			int fd = ck_open();
			long id = ck_register(fd, m, len, 0);

			if (id <= 0 || write(p[1], "x", 1) != 1)
				_exit(1);
			for (;;) {
				memset(m, round, len);
				ck_collect(fd, id, out, len / PAGE, 0, NULL);
			}
		}
		ASSERT_EQ(1, read(p[0], &c, 1));
		usleep(1000 + (round * 37 % 11) * 20000);
		kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status));
		close(p[0]);
		close(p[1]);
	}
}

TEST(exec_ends_session)
{
	int fd = ck_open(), status;
	char *m = ck_map(4 * PAGE, PAGE);
	char buf[16];
	pid_t pid;

	ASSERT_LE(0, fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* The child's own session, kept open across exec. */
		int cfd = ck_open();

		if (cfd < 0 || ck_register(cfd, m, 4 * PAGE, 0) <= 0)
			_exit(2);
		fcntl(cfd, F_SETFD, 0);
		snprintf(buf, sizeof(buf), "%d", cfd);
		setenv("CKPT_EXEC_FD", buf, 1);
		execl("/proc/self/exe", "exec_helper", NULL);
		_exit(3);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	close(fd);
}

TEST(attach_tracks_another_process)
{
	struct ck_target t;
	struct ckpt_attach at = {};
	uint64_t out[16];
	int fd = ck_open();
	long id;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	at.pid = t.pid;
	ASSERT_EQ(0, ck_seize_stop(t.pid, 0));
	ASSERT_EQ(0, ck_ioctl(fd, CKPT_IOC_ATTACH, &at));
	EXPECT_EQ(-EBUSY, ck_ioctl(fd, CKPT_IOC_ATTACH, &at));
	id = ck_register(fd, (void *)t.addr, 16 * PAGE, 0);
	ASSERT_LT(0, id);
	ASSERT_EQ(0, ptrace(PTRACE_DETACH, t.pid, 0, 0));	/* the session stays bound */
	ASSERT_EQ(0, ck_target_write(&t, '3'));
	ASSERT_EQ(0, ck_target_write(&t, '9'));
	ASSERT_EQ(2, ck_collect(fd, id, out, 16, 0, NULL));
	EXPECT_EQ(t.addr + 3 * PAGE, out[0]);
	EXPECT_EQ(t.addr + 9 * PAGE, out[1]);
	ASSERT_EQ(0, ck_target_write(&t, '9'));
	ASSERT_EQ(1, ck_collect(fd, id, out, 16, 0, NULL));
	/* The target exits: the session is dead. */
	ck_target_stop(&t);
	EXPECT_EQ(-ESRCH, ck_collect(fd, id, out, 16, 0, NULL));
	EXPECT_EQ(-ESRCH, ck_register(fd, (void *)(t.addr + 64 * PAGE), PAGE, 0));
	struct ckpt_stats st;

	EXPECT_EQ(0, ck_stats(fd, 0, &st));	/* the counters stay readable */
	EXPECT_EQ(3, st.faults);
	close(fd);
}

/*
 * Only a tracer's own ptrace stop: a root-owned target refuses uid 65534 (ptrace itself says
 * no), and a same-uid dumpable target is refused too until the caller has it stopped.
 */
TEST(attach_permissions)
{
	struct ck_target t;
	int status;
	pid_t pid;

	ASSERT_EQ(0, ck_target_start(&t, 1));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct ckpt_attach at = { .pid = t.pid };
		int fd = ck_open();

		if (fd < 0 || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(10);
		if (!ptrace(PTRACE_SEIZE, t.pid, 0, 0))
			_exit(11);
		_exit(ck_ioctl(fd, CKPT_IOC_ATTACH, &at) == -EPERM ? 0 : 12);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	ck_target_stop(&t);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct ck_target u;
		struct ckpt_attach at = {};
		int fd = ck_open(), e1, e2;

		if (fd < 0 || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(10);
		if (ck_target_start(&u, 1))
			_exit(12);
		at.pid = u.pid;
		e1 = ck_ioctl(fd, CKPT_IOC_ATTACH, &at);
		e2 = ck_seize_stop(u.pid, 0) ? -1 : ck_ioctl(fd, CKPT_IOC_ATTACH, &at);
		kill(u.pid, SIGKILL);
		waitpid(u.pid, NULL, __WALL);
		_exit(e1 == -EPERM && e2 == 0 ? 0 : 13);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST(attach_after_register_is_busy)
{
	int fd = ck_open();
	char *m = ck_map(PAGE, PAGE);
	struct ckpt_attach at = { .pid = getppid() };

	ASSERT_LT(0, ck_register(fd, m, PAGE, 0));
	EXPECT_EQ(-EBUSY, ck_ioctl(fd, CKPT_IOC_ATTACH, &at));
	close(fd);
}

TEST_HARNESS_MAIN

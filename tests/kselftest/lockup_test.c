// SPDX-License-Identifier: GPL-2.0
/*
 * No global lock-up (issue 15): a session whose ioctl sleeps with its lock held must not hold
 * up anyone else. A helper thread parks in RESTORE_THREAD (it sleeps in its own session's
 * ioctl until the restore is committed or dropped); meanwhile other processes open and close
 * /dev/ckpt and dump the netlink status, and must finish within a bounded time. The module
 * before the fix took every session's lock in the status dump while holding the global
 * sessions lock: the dump slept on the parked session, and every open and close of /dev/ckpt
 * on the system then slept on the global lock (D state) until the restore went away.
 */
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include "track_util.h"
#include "kselftest_harness.h"

#define LIMIT_S 10	/* each helper process must be done by then (TCG guest: ~1 s) */

/* One status dump; returns the number of messages or -1. */
static int status_dump(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	int fam, e = -1;

	if (!sk)
		return -1;
	if (genl_connect(sk))
		goto out;
	fam = genl_ctrl_resolve(sk, CKPT_GENL_NAME);
	if (fam < 0)
		goto out;
	if (genl_send_simple(sk, fam, CKPT_GENL_CMD_GET_SESSIONS, CKPT_GENL_VERSION, NLM_F_DUMP) < 0)
		goto out;
	e = nl_recvmsgs_default(sk) < 0 ? -1 : 0;
out:
	nl_socket_free(sk);
	return e;
}

struct parked {
	int fd;
	long ret;
};

static void *park(void *arg)
{
	struct parked *pk = arg;
	struct ckpt_restore_thread t = { .self_fd = pk->fd };

	t.thread.regs.cs = 0x33;
	t.thread.regs.ss = 0x2b;
	pk->ret = ck_ioctl(pk->fd, CKPT_IOC_RESTORE_THREAD, &t);
	return NULL;
}

/* Wait for @pid up to @limit seconds; returns its exit status, or -1 on timeout. */
static int wait_bounded(pid_t pid, int limit)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int st;

	for (int i = 0; i < limit * 20; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		nanosleep(&ts, NULL);
	}
	return -1;
}

TEST(open_close_and_status_while_a_session_sleeps)
{
	static char page[4096];
	struct ckpt_restore_prepare p = { 0 };
	struct ckpt_restore_vma vma;
	struct ckpt_restore_run run;
	struct parked pk;
	char path[] = "/tmp/lockup.XXXXXX";
	pthread_t th;
	pid_t dumper, opener;
	int fd, data, rc_dump, rc_open;
	void *hole;

	fd = ck_open();
	ASSERT_LE(0, fd);
	data = mkstemp(path);
	ASSERT_LE(0, data);
	unlink(path);
	ASSERT_EQ(4096, write(data, page, 4096));
	hole = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	munmap(hole, 16 * PAGE);
	vma = (struct ckpt_restore_vma){ .start = (uintptr_t)hole, .len = 4 * PAGE,
					 .prot = PROT_READ | PROT_WRITE };
	run = (struct ckpt_restore_run){ .addr = (uintptr_t)hole, .len = PAGE };
	ck_own_vdso(&p.keep_start, &p.keep_end);
	ASSERT_NE(0, p.keep_end);
	p.self_fd = fd;
	p.vmas = (uintptr_t)&vma;
	p.nr_vmas = 1;
	p.vma_size = sizeof(struct ckpt_restore_vma);
	p.run_size = sizeof(struct ckpt_restore_run);
	p.runs = (uintptr_t)&run;
	p.nr_runs = 1;
	p.data_fd = data;
	p.thread.regs.cs = 0x33;
	p.thread.regs.ss = 0x2b;
	p.thread.regs.ip = (uintptr_t)hole;
	ASSERT_EQ(0, ck_ioctl(fd, CKPT_IOC_RESTORE_PREPARE, &p));

	/* A helper thread parks in RESTORE_THREAD on a session of its own. */
	pk.fd = ck_open();
	ASSERT_LE(0, pk.fd);
	ASSERT_EQ(0, pthread_create(&th, NULL, park, &pk));
	for (int i = 0; i < 600; i++) {
		if (!ioctl(fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK))
			break;
		usleep(50000);
	}
	ASSERT_EQ(0, ck_ioctl(fd, CKPT_IOC_RESTORE_COMMIT, (void *)CKPT_COMMIT_CHECK))
		TH_LOG("the helper thread did not park");

	/* Meanwhile: status dumps in one process, open/close in another. */
	dumper = fork();
	ASSERT_LE(0, dumper);
	if (!dumper) {
		for (int i = 0; i < 20; i++)
			if (status_dump())
				_exit(2);
		_exit(0);
	}
	opener = fork();
	ASSERT_LE(0, opener);
	if (!opener) {
		usleep(200000);	/* let the dumper go first: it is what held the global lock */
		for (int i = 0; i < 50; i++) {
			int x = ck_open();

			if (x < 0)
				_exit(2);
			close(x);
		}
		_exit(0);
	}
	rc_dump = wait_bounded(dumper, LIMIT_S);
	rc_open = wait_bounded(opener, LIMIT_S);

	/*
	 * Stuck (the old module): fail without closing anything. Closing the prepared session
	 * would wait for the global lock the blocked dump holds, and the dump waits for the parked
	 * thread, which waits for that close; this process's exit kills the parked thread instead
	 * (its wait is killable), which lets the rest go.
	 */
	ASSERT_EQ(0, rc_dump) TH_LOG("status dumps: %s", rc_dump < 0 ? "still blocked after the limit" : "failed");
	ASSERT_EQ(0, rc_open) TH_LOG("open/close: %s", rc_open < 0 ? "still blocked after the limit" : "failed");
	/* Drop the restore: the parked thread wakes with -ECANCELED. */
	close(fd);
	pthread_join(th, NULL);
	EXPECT_EQ(-ECANCELED, pk.ret);
	close(pk.fd);
	close(data);
}

TEST_HARNESS_MAIN

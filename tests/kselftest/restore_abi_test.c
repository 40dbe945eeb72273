// SPDX-License-Identifier: GPL-2.0
/*
 * Whole-process ioctls of ckpt.ko (RESTORE_PREPARE / RESTORE_COMMIT / RESTORE_THREAD /
 * DUMP_TASK): every documented refusal, DUMP_TASK (with its timers) against a ptrace-stopped
 * child, and a COMMIT that fails past the point of no return (its data file shrinks after PREPARE): the
 * status fd reports -EIO and the task is killed, with no kernel warning (the VM harness checks
 * the log). The successful paths are exercised end to end by tests/e2e/vm-zdtm.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/ckpt.h>

#include "track_util.h"
#include "kselftest_harness.h"

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static int open_dev(void)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int fd = open("/dev/ckpt", O_RDWR | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, CKPT_IOC_API, &a))
		return -1;
	return fd;
}

static int ioc(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

FIXTURE(rs) {
	int fd, data;
	char path[64];
	struct ckpt_restore_vma vma;
	struct ckpt_restore_run run;
	struct ckpt_restore_prepare p;
	long pg;
};

FIXTURE_SETUP(rs)
{
	char page[4096] = { 1 };

	self->pg = getpagesize();
	self->fd = open_dev();
	ASSERT_LE(0, self->fd);
	strcpy(self->path, "/tmp/restore_abi.XXXXXX");
	self->data = mkstemp(self->path);
	ASSERT_LE(0, self->data);
	unlink(self->path);
	ASSERT_EQ(4096, write(self->data, page, 4096));
	/* An address nothing uses: a fresh mapping's, unmapped again. */
	void *hole = mmap(NULL, 16 * self->pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	munmap(hole, 16 * self->pg);
	self->vma = (struct ckpt_restore_vma){ .start = (__u64)hole, .len = 4 * self->pg,
					       .prot = PROT_READ | PROT_WRITE };
	self->run = (struct ckpt_restore_run){ .addr = (__u64)hole, .len = self->pg, .data_off = 0 };
	memset(&self->p, 0, sizeof(self->p));
	self->p.self_fd = self->fd;
	self->p.vmas = (__u64)&self->vma;
	self->p.nr_vmas = 1;
	self->p.runs = (__u64)&self->run;
	self->p.nr_runs = 1;
	self->p.vma_size = sizeof(struct ckpt_restore_vma);
	self->p.run_size = sizeof(struct ckpt_restore_run);
	self->p.data_fd = self->data;
	ck_own_vdso(&self->p.keep_start, &self->p.keep_end);
	self->p.thread.regs.cs = 0x33;
	self->p.thread.regs.ss = 0x2b;
	self->p.thread.regs.ip = (__u64)hole;
}

FIXTURE_TEARDOWN(rs)
{
	close(self->fd);
	close(self->data);
}

TEST_F(rs, handshake_reports_features)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int fd = open("/dev/ckpt", O_RDWR);

	ASSERT_EQ(0, ioc(fd, CKPT_IOC_API, &a));
	EXPECT_TRUE(a.features & CKPT_FEATURE_RESTORE);
	EXPECT_TRUE(a.features & CKPT_FEATURE_DUMP);
	/* DUMP_TASK's flags are advertised, not found out by -EINVAL. */
	EXPECT_TRUE(a.features & CKPT_FEATURE_DUMP_TIMERS);
	EXPECT_TRUE(a.features & CKPT_FEATURE_DUMP_PROCESS);
	EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(CKPT_IOC_RESTORE_PREPARE)));
	EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(CKPT_IOC_RESTORE_COMMIT)));
	EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(CKPT_IOC_RESTORE_THREAD)));
	EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(CKPT_IOC_DUMP_TASK)));
	close(fd);
}

TEST_F(rs, before_handshake)
{
	int fd = open("/dev/ckpt", O_RDWR);

	EXPECT_EQ(-EINVAL, ioc(fd, CKPT_IOC_RESTORE_PREPARE, &self->p));
	EXPECT_EQ(-EINVAL, ioctl(fd, CKPT_IOC_RESTORE_COMMIT, 0) ? -errno : 0);
	close(fd);
}

TEST_F(rs, valid_prepare_then_release)
{
	EXPECT_EQ(0, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p));
	/* A second one replaces the first. */
	EXPECT_EQ(0, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p));
	/* Single-threaded: COMMIT could start. */
	EXPECT_EQ(0, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK) ? -errno : 0);
	EXPECT_EQ(-EINVAL, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, 2) ? -errno : 0);
}

TEST_F(rs, commit_without_prepare)
{
	EXPECT_EQ(-EINVAL, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, 0) ? -errno : 0);
}

TEST_F(rs, thread_without_prepare)
{
	struct ckpt_restore_thread t = { .self_fd = self->fd };
	int fd2 = open_dev();

	t.thread.regs.cs = 0x33;
	t.thread.regs.ss = 0x2b;
	t.self_fd = fd2;
	EXPECT_EQ(-ENOENT, ioc(fd2, CKPT_IOC_RESTORE_THREAD, &t));
	t.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, ioc(fd2, CKPT_IOC_RESTORE_THREAD, &t));
	close(fd2);
}

#define REFUSED(err, stmt)                                                       \
	do {                                                                     \
		struct ckpt_restore_prepare q = self->p;                         \
		struct ckpt_restore_vma v[2] = { self->vma, self->vma };         \
		struct ckpt_restore_run r = self->run;                           \
		q.vmas = (__u64)v;                                               \
		q.runs = (__u64)&r;                                              \
		(void)v; (void)r;                                                \
		stmt;                                                            \
		EXPECT_EQ(err, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &q))      \
			TH_LOG("%s", #stmt);                                     \
	} while (0)

TEST_F(rs, prepare_refusals)
{
	int pfd[2];

	ASSERT_EQ(0, pipe(pfd));
	REFUSED(-EINVAL, q.flags = 1ULL << 40);
	REFUSED(-EINVAL, q.reserved[3] = 1);
	REFUSED(-EINVAL, q.status_fd = 5);		/* without CKPT_RESTORE_STATUS_FD */
	REFUSED(-EINVAL, q.thread.regs.cs = 0x23);	/* a 32-bit code segment */
	REFUSED(-EINVAL, q.thread.regs.ss = 0);
	REFUSED(-EINVAL, q.thread.regs.fs = 0x2b);
	REFUSED(-EINVAL, q.thread.regs.ip = 1ULL << 63);
	REFUSED(-EINVAL, q.start_brk = 2; q.brk = 1);
	REFUSED(-EINVAL, q.env_end = 1ULL << 62);
	REFUSED(-EINVAL, q.thread.rseq = 0x1008);	/* unaligned */
	REFUSED(-EINVAL, q.thread.rseq_sig = 1ULL << 32);
	REFUSED(-EINVAL, q.thread.clear_child_tid = 1ULL << 63);
	REFUSED(-E2BIG, q.nr_vmas = 0);
	REFUSED(-E2BIG, q.nr_vmas = CKPT_RESTORE_MAX_VMAS + 1);
	REFUSED(-E2BIG, q.nr_runs = CKPT_RESTORE_MAX_RUNS + 1);
	REFUSED(-EINVAL, q.self_fd = self->data);	/* not this session */
	REFUSED(-EINVAL, q.self_fd = 1U << 31);
	REFUSED(-EINVAL, q.keep_start = q.keep_end - 4096);	/* not all of vvar+vdso */
	REFUSED(-EINVAL, q.keep_start = self->vma.start; q.keep_end = self->vma.start + 4096);
	REFUSED(-EINVAL, v[0].start += 1);
	REFUSED(-EINVAL, v[0].len = 0);
	REFUSED(-EINVAL, v[0].start = 1ULL << 47);
	REFUSED(-EINVAL, v[0].prot = 8);
	REFUSED(-EINVAL, v[0].flags = 1ULL << 9);
	REFUSED(-EINVAL, v[0].reserved[1] = 1);
	REFUSED(-EINVAL, v[0].fd = 3);			/* fd on an anonymous vma */
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_SHARED; v[0].prot = PROT_READ);
	REFUSED(-EINVAL, q.nr_vmas = 2);		/* overlapping */
	REFUSED(-EINVAL, q.nr_vmas = 2; v[1].start -= 4096 * 8);	/* unsorted */
	REFUSED(-EINVAL, q.keep_start = v[0].start; q.keep_end = v[0].start + 4096);
	REFUSED(-EBADF, v[0].flags = CKPT_VMA_FILE; v[0].fd = 1000);
	REFUSED(-EACCES, v[0].flags = CKPT_VMA_FILE; v[0].fd = pfd[0]);	/* not a regular file */
	REFUSED(-EBADF, v[0].flags = CKPT_VMA_FILE; v[0].fd = pfd[1]);	/* not readable */
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_FILE | CKPT_VMA_SHARED; v[0].fd = self->data);
	REFUSED(-EINVAL, r.addr += 4096 * 4);		/* outside its vma */
	REFUSED(-EINVAL, r.len = 4096 * 5);
	REFUSED(-EINVAL, r.data_off = 4096);		/* beyond the data file */
	REFUSED(-EINVAL, r.data_off = 1);
	REFUSED(-EBADF, q.data_fd = 1000);
	REFUSED(-EACCES, q.data_fd = pfd[0]);
	REFUSED(-EBADF, q.flags = CKPT_RESTORE_STATUS_FD; q.status_fd = pfd[0]);	/* not writable */
	REFUSED(-EFAULT, q.vmas = 8);
	REFUSED(-EFAULT, q.runs = 8);
	EXPECT_EQ(-EFAULT, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, (void *)8));
	/* Nothing was prepared by any of them. */
	EXPECT_EQ(-EINVAL, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK) ? -errno : 0);
	close(pfd[0]);
	close(pfd[1]);
}

/* CKPT_VMA_PREBUILT: accepted only when the caller's own mappings match the entry. */
/*
 * The arrays' elements can grow (API version 2): PREPARE takes their size and refuses any
 * other, and a run's reserved field must be zero, as every reserved field.
 */
TEST_F(rs, array_elements)
{
	REFUSED(0, (void)0);
	REFUSED(-EINVAL, r.reserved = 1);
	REFUSED(-EINVAL, r.reserved = 1ULL << 63);
	REFUSED(-EINVAL, q.run_size = 0);		/* a version 1 caller's 0 */
	REFUSED(-EINVAL, q.run_size = 24);		/* version 1's element */
	REFUSED(-EINVAL, q.run_size = sizeof(struct ckpt_restore_run) + 8);
	REFUSED(-EINVAL, q.vma_size = 0);
	REFUSED(-EINVAL, q.vma_size = sizeof(struct ckpt_restore_vma) - 8);
	REFUSED(-EINVAL, q.vma_size = sizeof(struct ckpt_restore_vma) + 8);
	/* Without runs the run size is still checked: it says what the caller was built with. */
	REFUSED(-EINVAL, q.nr_runs = 0; q.run_size = 0);
	/* Nothing was prepared by the refused ones; the valid one was. */
	EXPECT_EQ(0, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK) ? -errno : 0);
}

TEST_F(rs, prebuilt)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	void *at = (void *)self->vma.start;
	int fd = open("/dev/ckpt", O_RDWR);
	void *m;

	ASSERT_EQ(0, ioc(fd, CKPT_IOC_API, &a));
	close(fd);
	ASSERT_TRUE(a.features & CKPT_FEATURE_RESTORE_PREBUILT);
	/* Nothing mapped there yet. */
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT; q.nr_runs = 0);
	m = mmap(at, self->vma.len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(at, m);
	REFUSED(0, v[0].flags = CKPT_VMA_PREBUILT; q.nr_runs = 0);
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT);	/* a run into it */
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT; v[0].prot = PROT_READ; q.nr_runs = 0);
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT | CKPT_VMA_GROWSDOWN; q.nr_runs = 0);
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT | CKPT_VMA_SHARED; q.nr_runs = 0);
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT | CKPT_VMA_FILE; v[0].fd = self->data;
		q.nr_runs = 0);					/* anonymous, not the file */
	/* A hole in the middle. */
	ASSERT_EQ(0, munmap((char *)at + self->pg, self->pg));
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT; q.nr_runs = 0);
	ASSERT_EQ(0, munmap(at, self->vma.len));
	/* A private mapping of the data file at offset 0, one page. */
	m = mmap(at, self->pg, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, self->data, 0);
	ASSERT_EQ(at, m);
	REFUSED(0, v[0].flags = CKPT_VMA_PREBUILT | CKPT_VMA_FILE; v[0].fd = self->data;
		v[0].len = self->pg; v[0].prot = PROT_READ; q.nr_runs = 0);
	REFUSED(-EINVAL, v[0].flags = CKPT_VMA_PREBUILT | CKPT_VMA_FILE; v[0].fd = self->data;
		v[0].len = self->pg; v[0].prot = PROT_READ; v[0].pgoff = 4096; q.nr_runs = 0);
	ASSERT_EQ(0, munmap(at, self->pg));
}

/* Random mutations of a valid request: PREPARE answers 0 or a documented errno, never more. */
TEST_F(rs, prepare_fuzz)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int ok = 0, refused = 0;

	for (int i = 0; i < 20000; i++) {
		struct ckpt_restore_prepare q = self->p;
		struct ckpt_restore_vma v[4] = { self->vma, self->vma, self->vma, self->vma };
		struct ckpt_restore_run r[4] = { self->run, self->run, self->run, self->run };
		__u64 *words[3] = { (__u64 *)&q, (__u64 *)v, (__u64 *)r };
		size_t nwords[3] = { sizeof(q) / 8, sizeof(v) / 8, sizeof(r) / 8 };
		int e;

		for (int k = 0; k < 4; k++) {
			v[k].start += k * 4 * 4096;
			r[k].addr += k * 4 * 4096;
		}
		q.vmas = (__u64)v;
		q.runs = (__u64)r;
		q.nr_vmas = 1 + i % 4;
		q.nr_runs = i % 5;
		for (int m = 0, n = 1 + i % 4; m < n; m++) {
			int which;
			size_t at;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			which = x % 3;
			at = (x >> 8) % nwords[which];
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			switch (x % 4) {
			case 0: words[which][at] ^= 1ULL << ((x >> 8) % 64); break;
			case 1: words[which][at] = x >> 3; break;
			case 2: words[which][at] += 4096; break;
			default: words[which][at] = 0; break;
			}
		}
		e = ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &q);
		if (e == 0) {
			ok++;
			/* Prepared (not committed): the check alone must agree. */
			ASSERT_EQ(0, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK) ? -errno : 0);
			continue;
		}
		refused++;
		ASSERT_TRUE(e == -EINVAL || e == -EBADF || e == -EACCES || e == -E2BIG ||
			    e == -EFAULT || e == -ENOMEM)
			TH_LOG("unexpected %d", e);
	}
	TH_LOG("%d accepted, %d refused", ok, refused);
	EXPECT_LT(0, refused);
}

/* COMMIT that fails past the point of no return: the data file is cut after PREPARE. */
TEST_F(rs, commit_fails_after_point_of_no_return)
{
	int pfd[2], ws;
	long long status = 1;
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(pfd[0]);
		self->p.flags = CKPT_RESTORE_STATUS_FD;
		self->p.status_fd = pfd[1];
		if (ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p))
			_exit(10);
		if (ftruncate(self->data, 0))
			_exit(11);
		ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, 0);
		_exit(12);	/* unreachable: the address space is gone */
	}
	close(pfd[1]);
	ASSERT_EQ(sizeof(status), read(pfd[0], &status, sizeof(status)));
	EXPECT_EQ(-EIO, status);
	ASSERT_EQ(pid, waitpid(pid, &ws, 0));
	EXPECT_TRUE(WIFSIGNALED(ws));
	EXPECT_EQ(SIGKILL, WTERMSIG(ws));
	close(pfd[0]);
}

/*
 * A thread parked in RESTORE_THREAD gives up its rseq registration (its area is about to be
 * unmapped). When the restore is cancelled instead, the address space stays and the thread
 * must get its registration back: glibc still uses the area. Registering the same area again
 * answers EBUSY while it is registered, and succeeds (0) once the kernel forgot it.
 */
struct rseq_park {
	int fd;
	long ret;
	int before, after;	/* errno of re-registering the thread's rseq area, 0 if it succeeded */
};

static int rseq_again(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	/* glibc registers its area with the original ABI size, 32 bytes; __rseq_size is the
	 * part of it that glibc uses (20), which the kernel would take for another area. */
	return syscall(SYS_rseq, area, 32, 0, RSEQ_SIG) ? errno : 0;
}

static void *park_with_rseq(void *arg)
{
	struct rseq_park *pk = arg;
	struct ckpt_restore_thread t = { .self_fd = pk->fd };

	pk->before = rseq_again();
	t.thread.regs.cs = 0x33;
	t.thread.regs.ss = 0x2b;
	pk->ret = ioc(pk->fd, CKPT_IOC_RESTORE_THREAD, &t);
	pk->after = rseq_again();
	return NULL;
}

TEST_F(rs, cancelled_thread_keeps_its_rseq)
{
	struct rseq_park pk = { .fd = open_dev() };
	pthread_t th;
	int i;

	if (!__rseq_size)
		SKIP(return, "glibc registered no rseq area (glibc.pthread.rseq=0?)");
	ASSERT_LE(0, pk.fd);
	ASSERT_EQ(0, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p));
	ASSERT_EQ(0, pthread_create(&th, NULL, park_with_rseq, &pk));
	/* COMMIT_CHECK answers 0 once every other thread is parked. */
	for (i = 0; i < 600; i++) {
		if (!ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK))
			break;
		usleep(50000);
	}
	EXPECT_LT(i, 600) TH_LOG("the thread did not park");
	/* A new PREPARE replaces the restore: the parked thread wakes with -ECANCELED. */
	ASSERT_EQ(0, ioc(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p));
	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ(-ECANCELED, pk.ret);
	ASSERT_EQ(EBUSY, pk.before) TH_LOG("the thread had no rseq registration to begin with");
	EXPECT_EQ(EBUSY, pk.after) TH_LOG("after the cancelled restore the kernel %s",
					  pk.after ? "refused the area" : "had forgotten the area");
	close(pk.fd);
}

static void on_usr1(int sig)
{
	(void)sig;
}

TEST(dump_task)
{
	static char alt[16384];
	struct ckpt_sigaction act[CKPT_NSIG];
	struct ckpt_dump_task d = { 0 };
	int fd = open_dev(), st, go[2];
	pid_t pid;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) };
		sigset_t m;
		char c;

		struct itimerval it = { { 2, 0 }, { 100, 0 } };

		signal(SIGUSR1, on_usr1);
		sigaltstack(&ss, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		sigemptyset(&m);
		sigaddset(&m, SIGUSR2);
		sigprocmask(SIG_BLOCK, &m, NULL);
		close(go[1]);
		(void)!read(go[0], &c, 1);
		pause();
		_exit(0);
	}
	close(go[0]);
	close(go[1]);	/* the child proceeds to pause() */
	usleep(100000);

	d.pid = pid;
	EXPECT_EQ(-EPERM, ioc(fd, CKPT_IOC_DUMP_TASK, &d));	/* not traced */
	d.pid = getpid();
	EXPECT_EQ(-EPERM, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	d.pid = 0;
	EXPECT_EQ(-EINVAL, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	d.pid = 1 << 22;
	EXPECT_EQ(-ESRCH, ioc(fd, CKPT_IOC_DUMP_TASK, &d));

	ASSERT_EQ(0, ptrace(PTRACE_SEIZE, pid, 0, 0));
	d.pid = pid;
	EXPECT_EQ(-EPERM, ioc(fd, CKPT_IOC_DUMP_TASK, &d));	/* traced but running */
	ASSERT_EQ(0, ptrace(PTRACE_INTERRUPT, pid, 0, 0));
	ASSERT_EQ(pid, waitpid(pid, &st, __WALL));
	ASSERT_TRUE(WIFSTOPPED(st));
	d.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	d.reserved[0] = 0;
	d.actions = 8;
	EXPECT_EQ(-EFAULT, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	d.actions = (__u64)act;
	ASSERT_EQ(0, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	EXPECT_EQ((__u64)on_usr1, act[SIGUSR1 - 1].handler);
	EXPECT_TRUE(act[SIGUSR1 - 1].flags & SA_RESTORER);	/* glibc sets its own restorer */
	EXPECT_NE(0, act[SIGUSR1 - 1].restorer);
	EXPECT_EQ(0, act[SIGUSR2 - 1].handler);
	EXPECT_EQ((__u64)alt, d.sas_ss_sp);
	EXPECT_EQ(sizeof(alt), d.sas_ss_size);
	EXPECT_EQ(1ULL << (SIGUSR2 - 1), d.blocked);
	EXPECT_LE(d.start_brk, d.brk);
	EXPECT_NE(0, d.robust_list);	/* glibc registers one per thread */
	EXPECT_EQ(24, d.robust_list_len);
	EXPECT_EQ(0, d.timers);	/* not asked for */
	/* CKPT_DUMP_TIMERS: ITIMER_REAL as getitimer would tell it; outputs on input ignored. */
	d.flags = 1ULL << 2;	/* no such flag */
	EXPECT_EQ(-EINVAL, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	/* CKPT_DUMP_PROCESS: not a subreaper (see dump_task_child_subreaper); outputs ignored. */
	d.flags = CKPT_DUMP_PROCESS;
	d.process = ~0ULL;
	ASSERT_EQ(0, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	EXPECT_EQ(0, d.process);
	EXPECT_EQ(0, d.timers);
	d.flags = CKPT_DUMP_TIMERS;
	d.timers = ~0ULL;
	ASSERT_EQ(0, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	EXPECT_EQ(CKPT_TIMER_REAL, d.timers);
	EXPECT_LT(90ULL * 1000000000, d.itimer_real_ns);
	EXPECT_GE(100ULL * 1000000000, d.itimer_real_ns);
	EXPECT_EQ(2ULL * 1000000000, d.itimer_real_interval_ns);
	kill(pid, SIGKILL);
	waitpid(pid, &st, __WALL);
	close(fd);
}


/*
 * The child-subreaper flag (prctl PR_SET_CHILD_SUBREAPER) is visible only to the process
 * itself: DUMP_TASK reports it with CKPT_DUMP_PROCESS, so that ckpt-tool dump refuses what it
 * does not save. Set by one thread, seen through any (it is per process).
 */
TEST(dump_task_child_subreaper)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	struct ckpt_dump_task d = { 0 };
	int fd = open_dev(), st, go[2];
	pid_t pid;
	char c;

	ASSERT_LE(0, fd);	/* handshaken: its features, from a descriptor of its own */
	int api_fd = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, api_fd);
	ASSERT_EQ(0, ioc(api_fd, CKPT_IOC_API, &a));
	close(api_fd);
	EXPECT_TRUE(a.features & CKPT_FEATURE_DUMP_PROCESS);
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(go[0]);
		if (prctl(PR_SET_CHILD_SUBREAPER, 1))
			_exit(1);
		(void)!write(go[1], "r", 1);
		pause();
		_exit(0);
	}
	close(go[1]);
	ASSERT_EQ(1, read(go[0], &c, 1));
	close(go[0]);
	ASSERT_EQ(0, ck_seize_stop(pid, 0));
	d.pid = pid;
	d.flags = CKPT_DUMP_PROCESS;
	ASSERT_EQ(0, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	EXPECT_EQ(CKPT_PROCESS_CHILD_SUBREAPER, d.process);
	d.flags = 0;	/* not asked: not reported */
	d.process = 0;
	ASSERT_EQ(0, ioc(fd, CKPT_IOC_DUMP_TASK, &d));
	EXPECT_EQ(0, d.process);
	kill(pid, SIGKILL);
	waitpid(pid, &st, __WALL);
	close(fd);
}
TEST_HARNESS_MAIN

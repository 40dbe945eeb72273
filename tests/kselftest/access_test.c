// SPDX-License-Identifier: GPL-2.0
/*
 * Who may touch whose memory through /dev/ckpt (Documentation/admin-guide.md, "Security model").
 *
 * ATTACH: only to a task the calling thread traces and that sits in a ptrace stop. Refused
 * without ptrace (even to root with CAP_SYS_PTRACE, which ptrace itself would check through the
 * LSM hooks the module cannot call), to a running tracee, from another thread of the tracer,
 * from uid 65534 to a root process; a session bound before an execve is dead after it. The
 * execve race of the old rule (same uids + dumpable, checked on the task's credentials after
 * the mm was taken): a uid-65534 process that loops ATTACH on its child while the child execs
 * a set-user-ID-root program bound sessions to the root process's new address space, and could
 * REGISTER and COLLECT its memory. Under ptrace the same execve does not raise privileges.
 *
 * The device node: not accessible to others; uid 65534 opens it only with its group.
 *
 * RESTORE: COMMIT writes read-only and executable pages (FOLL_FORCE) only into the mappings it
 * creates itself, so it refuses an address space another process shares (that process could
 * change the layout under it); no other ioctl sequence writes into a read-only or executable
 * mapping of the caller.
 *
 * Runs as root in the VM; the unprivileged parts drop to uid 65534 in children.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "track_util.h"

#define NOBODY 65534
/* Where the set-user-ID helper maps the page it reports (nothing else uses it). */
#define SECRET_ADDR 0x100000000000UL

/* Helper modes, entered from a constructor before the harness parses argv. */
static void suid_helper(int report_fd, int quit_fd);
static void sleeper(void);

__attribute__((constructor)) static void helper_modes(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--suid-helper"))
		suid_helper(atoi(argv[2]), atoi(argv[3]));
	if (argc == 2 && !strcmp(argv[1], "--sleeper"))
		sleeper();
}

/* What the set-user-ID helper reports once its secret page is mapped and written. */
struct report {
	uid_t euid;
	uintptr_t addr;
};

static void suid_helper(int report_fd, int quit_fd)
{
	struct report r = { .euid = geteuid(), .addr = SECRET_ADDR };
	char *m = mmap((void *)SECRET_ADDR, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	char c;

	if (m == MAP_FAILED)
		_exit(20);
	memset(m, 'S', PAGE);
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		_exit(21);
	if (read(quit_fd, &c, 1) < 0)
		_exit(22);
	m[0] = 'T';	/* one more write, for a COLLECT that might watch */
	_exit(0);
}

static void sleeper(void)
{
	for (;;)
		pause();
}

static int drop_to_nobody(const gid_t *groups, int n)
{
	if (setgroups(n, groups) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return -1;
	/* The uid change made it non-dumpable; its children are then not ptrace-able by it. */
	prctl(PR_SET_DUMPABLE, 1);
	/* Die with the test (a timeout kills only the test's own process). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return 0;
}

static int attach(int fd, pid_t pid)
{
	struct ckpt_attach at = { .pid = (uint64_t)pid };

	return ck_ioctl(fd, CKPT_IOC_ATTACH, &at);
}

/* ------------------------------------------------------------------------------------------ */
/* ATTACH */

TEST(attach_without_ptrace_refused)
{
	struct ck_target t;
	int fd = ck_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	/* Root, same uids, dumpable, CAP_SYS_PTRACE: still not this session's to read. */
	EXPECT_EQ(-EPERM, attach(fd, t.pid));
	ck_target_stop(&t);
	close(fd);
}

TEST(attach_running_tracee_refused)
{
	struct ck_target t;
	int fd = ck_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	ASSERT_EQ(0, ptrace(PTRACE_SEIZE, t.pid, 0, 0));	/* traced, not stopped */
	EXPECT_EQ(-EPERM, attach(fd, t.pid));
	ck_target_stop(&t);
	close(fd);
}

TEST(attach_stopped_tracee_tracks_it)
{
	struct ck_target t;
	uint64_t out[16];
	int fd = ck_open();
	long id;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	ASSERT_EQ(0, ck_seize_stop(t.pid, 0));
	ASSERT_EQ(0, attach(fd, t.pid));
	EXPECT_EQ(-EBUSY, attach(fd, t.pid));
	id = ck_register(fd, (void *)t.addr, 16 * PAGE, 0);
	ASSERT_LT(0, id);
	/* The session outlives the ptrace stop: detached, the target runs and is tracked. */
	ASSERT_EQ(0, ptrace(PTRACE_DETACH, t.pid, 0, 0));
	ASSERT_EQ(0, ck_target_write(&t, '3'));
	ASSERT_EQ(0, ck_target_write(&t, '9'));
	ASSERT_EQ(2, ck_collect(fd, id, out, 16, 0, NULL));
	EXPECT_EQ(t.addr + 3 * PAGE, out[0]);
	EXPECT_EQ(t.addr + 9 * PAGE, out[1]);
	ck_target_stop(&t);
	EXPECT_EQ(-ESRCH, ck_collect(fd, id, out, 16, 0, NULL));
	close(fd);
}

static int thread_fd;
static pid_t thread_pid;
static void *attach_thread(void *arg)
{
	return (void *)(intptr_t)attach(thread_fd, thread_pid);
}

TEST(attach_from_another_thread_of_the_tracer_refused)
{
	struct ck_target t;
	pthread_t th;
	void *ret;

	thread_fd = ck_open();
	ASSERT_LE(0, thread_fd);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	ASSERT_EQ(0, ck_seize_stop(t.pid, 0));
	thread_pid = t.pid;
	/* ptrace(2) answers only the thread that attached; so does ATTACH. */
	ASSERT_EQ(0, pthread_create(&th, NULL, attach_thread, NULL));
	ASSERT_EQ(0, pthread_join(th, &ret));
	EXPECT_EQ(-EPERM, (int)(intptr_t)ret);
	EXPECT_EQ(0, attach(thread_fd, t.pid));
	ck_target_stop(&t);
	close(thread_fd);
}

TEST(attach_by_nobody_to_root_refused)
{
	struct ck_target t;
	int status;
	pid_t pid;

	ASSERT_EQ(0, ck_target_start(&t, 1));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = ck_open();	/* opened as root: only ATTACH is in question */

		if (fd < 0 || drop_to_nobody(NULL, 0))
			_exit(10);
		if (attach(fd, t.pid) != -EPERM)
			_exit(11);
		/* ptrace refuses too, so there is no way to the stop ATTACH needs. */
		if (!ptrace(PTRACE_SEIZE, t.pid, 0, 0) || errno != EPERM)
			_exit(12);
		_exit(attach(fd, t.pid) == -EPERM ? 0 : 13);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	ck_target_stop(&t);
}

TEST(session_dead_after_execve)
{
	struct ck_target t;
	uint64_t out[16];
	int fd = ck_open(), fd2 = ck_open(), st;
	long id;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, ck_target_start(&t, 1));
	ASSERT_EQ(0, ck_seize_stop(t.pid, PTRACE_O_TRACEEXEC));
	ASSERT_EQ(0, attach(fd, t.pid));
	id = ck_register(fd, (void *)t.addr, 16 * PAGE, 0);
	ASSERT_LT(0, id);
	/* The target execs; wait for its exec stop: the old address space is gone. */
	ASSERT_EQ(0, ptrace(PTRACE_CONT, t.pid, 0, 0));
	ASSERT_EQ(1, write(t.cmd, "e", 1));
	ASSERT_EQ(t.pid, waitpid(t.pid, &st, __WALL));
	ASSERT_TRUE(WIFSTOPPED(st));
	ASSERT_EQ(SIGTRAP | (PTRACE_EVENT_EXEC << 8), st >> 8);
	EXPECT_EQ(-ESRCH, ck_collect(fd, id, out, 16, 0, NULL));
	EXPECT_EQ(-ESRCH, ck_register(fd, (void *)(t.addr + 64 * PAGE), PAGE, 0));
	/* A new session at the exec stop binds the new program's address space. */
	EXPECT_EQ(0, attach(fd2, t.pid));
	EXPECT_EQ(-ENOMEM, ck_register(fd2, (void *)t.addr, 16 * PAGE, 0));
	ck_target_stop(&t);
	close(fd);
	close(fd2);
}

/* ------------------------------------------------------------------------------------------ */
/* The execve of a set-user-ID program */

/* A copy of this program, owned by root, mode 04755, in /tmp (mounted without nosuid). */
static int make_suid_copy(char *path, size_t len)
{
	char buf[65536];
	int in = open("/proc/self/exe", O_RDONLY), out;
	ssize_t n;

	snprintf(path, len, "/tmp/access_test_suid.%d", getpid());
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	if (in < 0 || out < 0)
		return -1;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			return -1;
	close(in);
	if (fchown(out, 0, 0) || fchmod(out, 04755) || close(out))
		return -1;
	return 0;
}

/* The group /dev/ckpt gives access to (the harness sets it), for the uid-65534 children. */
static gid_t dev_group(void)
{
	struct stat st;

	return stat("/dev/ckpt", &st) ? 0 : st.st_gid;
}

static atomic_int race_pid, race_stop, race_hit;
static int race_fd;

/* Loop ATTACH on the child until it succeeds or the round ends. */
static void *race_thread(void *arg)
{
	while (!atomic_load(&race_stop)) {
		pid_t p = atomic_load(&race_pid);

		if (p && !attach(race_fd, p)) {
			atomic_store(&race_hit, 1);
			break;
		}
	}
	return NULL;
}

/*
 * As uid 65534 (with the device's group): fork a child that makes itself non-dumpable (so no
 * ATTACH can bind its own address space) and execs the set-user-ID-root copy, while a thread
 * loops ATTACH on it. Returns the rounds in which a session ended up bound to the address space
 * of the root process (REGISTER of the page only the root process maps succeeds: from then on
 * COLLECT and HOLD/RELEASE read it), capped at 99, or 100+ on a setup error.
 */
static int race_rounds(const char *suid, int rounds, int seconds)
{
	time_t end = time(NULL) + seconds;
	int bound = 0, i;

	for (i = 0; i < rounds && time(NULL) < end; i++) {
		int rep[2], quit[2], go[2];
		struct report r;
		pthread_t th;
		char a2[16], a3[16];
		pid_t pid;

		race_fd = ck_open();
		if (race_fd < 0 || pipe(rep) || pipe(quit) || pipe(go))
			return 101;
		pid = fork();
		if (pid < 0)
			return 102;
		if (!pid) {
			char c;

			prctl(PR_SET_DUMPABLE, 0);
			snprintf(a2, sizeof(a2), "%d", rep[1]);
			snprintf(a3, sizeof(a3), "%d", quit[0]);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			execl(suid, "access_test", "--suid-helper", a2, a3, NULL);
			_exit(2);
		}
		atomic_store(&race_stop, 0);
		atomic_store(&race_hit, 0);
		atomic_store(&race_pid, pid);
		if (pthread_create(&th, NULL, race_thread, NULL))
			return 103;
		if (write(go[1], "g", 1) != 1)
			return 104;
		if (read(rep[0], &r, sizeof(r)) != sizeof(r))
			return 105;
		atomic_store(&race_stop, 1);
		pthread_join(th, NULL);
		if (r.euid != 0)
			return 106;	/* the copy did not run as root: nothing to show */
		/* REGISTER of the page only the root process maps: the session is bound to it. */
		if (atomic_load(&race_hit) && ck_register(race_fd, (void *)r.addr, PAGE, 0) > 0)
			bound++;
		if (write(quit[1], "q", 1) != 1)
			return 107;
		waitpid(pid, NULL, 0);
		close(race_fd);
		close(rep[0]);
		close(rep[1]);
		close(quit[0]);
		close(quit[1]);
		close(go[0]);
		close(go[1]);
	}
	fprintf(stderr, "# %d rounds, %d bound to the root process's memory\n", i, bound);
	return bound > 99 ? 99 : bound;
}

FIXTURE(race) {};
FIXTURE_SETUP(race) {}
FIXTURE_TEARDOWN(race) {}

/* At most 400 rounds or 60 s (a round is a fork and two execs: ~20-100 ms under TCG). */
TEST_F_TIMEOUT(race, setuid_execve_race_binds_no_root_mm, 120)
{
	char suid[64];
	int status, rounds = 400;
	gid_t g = dev_group();
	pid_t pid;

	ASSERT_EQ(0, make_suid_copy(suid, sizeof(suid)));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (drop_to_nobody(&g, 1))
			_exit(100);
		_exit(race_rounds(suid, rounds, 60));
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	unlink(suid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_GT(100, WEXITSTATUS(status)) TH_LOG("setup failed: %d", WEXITSTATUS(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("%d rounds bound a uid-65534 session to a root process's memory",
		       WEXITSTATUS(status));
}

/*
 * The way ATTACH is meant to be used around an execve: uid 65534 traces its child, which
 * execs the set-user-ID-root copy. Under ptrace the kernel does not raise the child's
 * privileges; at its exec stop ATTACH binds the new address space of a uid-65534 process.
 */
TEST(traced_setuid_execve_not_elevated)
{
	char suid[64];
	int status;
	gid_t g = dev_group();
	pid_t pid;

	ASSERT_EQ(0, make_suid_copy(suid, sizeof(suid)));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int rep[2], quit[2], go[2], fd, st;
		char a2[16], a3[16];
		struct report r;
		pid_t c;

		if (drop_to_nobody(&g, 1))
			_exit(100);
		fd = ck_open();
		if (fd < 0 || pipe(rep) || pipe(quit) || pipe(go))
			_exit(101);
		c = fork();
		if (!c) {
			char x;

			snprintf(a2, sizeof(a2), "%d", rep[1]);
			snprintf(a3, sizeof(a3), "%d", quit[0]);
			if (read(go[0], &x, 1) != 1)
				_exit(1);
			execl(suid, "access_test", "--suid-helper", a2, a3, NULL);
			_exit(2);
		}
		if (ck_seize_stop(c, PTRACE_O_TRACEEXEC) || ptrace(PTRACE_CONT, c, 0, 0))
			_exit(102);
		if (write(go[1], "g", 1) != 1)
			_exit(103);
		/* The exec stop: the new program is loaded, it has run nothing yet. */
		if (waitpid(c, &st, __WALL) != c || st >> 8 != (SIGTRAP | (PTRACE_EVENT_EXEC << 8)))
			_exit(104);
		if (attach(fd, c))
			_exit(105);
		if (ptrace(PTRACE_DETACH, c, 0, 0))
			_exit(106);
		if (read(rep[0], &r, sizeof(r)) != sizeof(r))
			_exit(107);
		if (r.euid == 0)
			_exit(108);	/* elevated under ptrace: the rule would not hold */
		if (ck_register(fd, (void *)r.addr, PAGE, 0) <= 0)
			_exit(109);	/* bound to the (uid-65534) program's new memory */
		if (write(quit[1], "q", 1) != 1)
			_exit(110);
		waitpid(c, NULL, 0);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	unlink(suid);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* ------------------------------------------------------------------------------------------ */
/* The device node */

TEST(device_not_accessible_to_others)
{
	struct stat st;

	ASSERT_EQ(0, stat("/dev/ckpt", &st));
	EXPECT_EQ(0, st.st_mode & 0007) TH_LOG("/dev/ckpt mode %o", st.st_mode & 07777);
	EXPECT_EQ(0, st.st_uid);
}

/* uid 65534: -EACCES without the device's group, a session with it (the harness sets one). */
TEST(device_open_needs_the_group)
{
	struct stat st;
	int status;

	ASSERT_EQ(0, stat("/dev/ckpt", &st));
	ASSERT_NE(0, st.st_gid) TH_LOG("the VM harness gives /dev/ckpt a group (scripts/vm/guest.sh)");
	ASSERT_EQ(0060, st.st_mode & 0060);
	for (int with = 0; with <= 1; with++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (!pid) {
			gid_t g = st.st_gid;
			int fd;

			if (drop_to_nobody(&g, with))
				_exit(10);
			fd = ck_open();
			if (with)
				_exit(fd >= 0 ? 0 : 11);
			_exit(fd == -EACCES ? 0 : 12);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("with the group: %d", with);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* RESTORE writes only into the mappings COMMIT creates */

FIXTURE(rs) {
	int fd, data, rxfd;
	struct ckpt_restore_vma vma;
	struct ckpt_restore_run run;
	struct ckpt_restore_prepare p;
	char *ro, *rx;		/* a read-only anonymous page, an r-x page of a file */
};

FIXTURE_SETUP(rs)
{
	char page[PAGE], path[] = "/tmp/access_test.XXXXXX";
	int f;

	memset(page, 0x01, sizeof(page));	/* "add %eax,(%rcx)": faults at once if run */
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	self->data = mkstemp(path);
	ASSERT_LE(0, self->data);
	unlink(path);
	ASSERT_EQ(PAGE, write(self->data, page, PAGE));
	self->ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->ro);
	memset(self->ro, 'R', PAGE);
	ASSERT_EQ(0, mprotect(self->ro, PAGE, PROT_READ));
	strcpy(path, "/tmp/access_test.XXXXXX");
	f = mkstemp(path);
	ASSERT_LE(0, f);
	unlink(path);
	memset(page, 'X', sizeof(page));
	ASSERT_EQ(PAGE, write(f, page, PAGE));
	self->rx = mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, f, 0);
	ASSERT_NE(MAP_FAILED, self->rx);
	self->rxfd = f;

	/* A restore of one RW page at an address nothing uses, entered at that page. */
	void *hole = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	munmap(hole, 16 * PAGE);
	self->vma = (struct ckpt_restore_vma){ .start = (__u64)hole, .len = 4 * PAGE,
					       .prot = PROT_READ | PROT_WRITE | PROT_EXEC };
	self->run = (struct ckpt_restore_run){ .addr = (__u64)hole, .len = PAGE };
	memset(&self->p, 0, sizeof(self->p));
	self->p.self_fd = self->fd;
	self->p.vmas = (__u64)&self->vma;
	self->p.nr_vmas = 1;
	self->p.vma_size = sizeof(struct ckpt_restore_vma);
	self->p.run_size = sizeof(struct ckpt_restore_run);
	self->p.runs = (__u64)&self->run;
	self->p.nr_runs = 1;
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
	close(self->rxfd);
}

static int untouched(const char *p, char c)
{
	for (unsigned long i = 0; i < PAGE; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static int commit_thread_fd;
static void *commit_thread(void *arg)
{
	return (void *)(intptr_t)(ioctl(commit_thread_fd, CKPT_IOC_RESTORE_COMMIT, 0) ? -errno : 0);
}

/* Every way into a read-only or executable page of the caller, outside a COMMIT. */
TEST_F(rs, no_write_into_readonly_or_exec_outside_commit)
{
	char *pages[2] = { self->ro, self->rx };

	for (int i = 0; i < 2; i++) {
		char *m = pages[i], c = m[0];
		struct ckpt_restore_vma v = { .start = (__u64)m, .len = PAGE, .prot = PROT_READ,
					      .flags = CKPT_VMA_PREBUILT };
		struct ckpt_restore_run r = { .addr = (__u64)m, .len = PAGE };
		struct ckpt_restore_prepare p = self->p;
		uint64_t out[4];
		pthread_t th;
		void *ret;

		/* A prebuilt mapping keeps its pages: no run may point into it. */
		p.vmas = (__u64)&v;
		p.runs = (__u64)&r;
		if (m == self->rx) {
			v.prot |= PROT_EXEC;
			v.flags |= CKPT_VMA_FILE;
			v.fd = self->rxfd;
		}
		EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_RESTORE_PREPARE, &p));
		/* A run into a mapping the restore would create there: staged, nothing written. */
		v.flags &= ~(CKPT_VMA_PREBUILT | CKPT_VMA_FILE);
		v.fd = 0;
		v.prot = PROT_READ | PROT_WRITE;
		p.thread.regs.ip = (__u64)m;
		EXPECT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_RESTORE_PREPARE, &p));
		EXPECT_EQ(0, ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK) ? -errno : 0);
		/* COMMIT from a task other than the one that prepared. */
		commit_thread_fd = self->fd;
		ASSERT_EQ(0, pthread_create(&th, NULL, commit_thread, NULL));
		ASSERT_EQ(0, pthread_join(th, &ret));
		EXPECT_EQ(-EINVAL, (int)(intptr_t)ret);
		/* Buffers the module writes, inside the page: refused, nothing written. */
		int raw = open("/dev/ckpt", O_RDWR | O_CLOEXEC);

		ASSERT_LE(0, raw);
		EXPECT_EQ(-EFAULT, ck_ioctl(raw, CKPT_IOC_API, m));
		close(raw);
		EXPECT_NE(0, ck_ioctl(self->fd, CKPT_IOC_STATS, m));
		long id = ck_register(self->fd, self->ro, PAGE, CKPT_REGISTER_DIRTY);

		ASSERT_LT(0, id);
		EXPECT_EQ(-EFAULT, ck_collect(self->fd, id, (uint64_t *)m, 4, 0, NULL));
		EXPECT_EQ(-EFAULT, ck_collect(self->fd, id, (uint64_t *)m, 4, CKPT_COLLECT_HOLD, NULL));
		EXPECT_EQ(1, ck_collect(self->fd, id, out, 4, CKPT_COLLECT_HOLD, NULL));
		struct ckpt_release rel = { .id = id, .flags = CKPT_RELEASE_END,
					    .addrs = (__u64)m, .data = (__u64)m, .max = 1 };

		EXPECT_LE(0, ck_ioctl(self->fd, CKPT_IOC_RELEASE, &rel));
		EXPECT_EQ(0, ck_unregister(self->fd, id));
		EXPECT_TRUE(untouched(m, c)) TH_LOG("page %d was written", i);
	}
	/* Closing the session with a restore prepared writes nothing either. */
	close(self->fd);
	self->fd = ck_open();
	EXPECT_TRUE(untouched(self->ro, 'R'));
	EXPECT_TRUE(untouched(self->rx, 'X'));
}

static int sibling(void *arg)
{
	for (;;)
		syscall(SYS_pause);
	return 0;
}

/*
 * A process that shares the caller's address space (clone(CLONE_VM) without CLONE_THREAD)
 * could map its own pages where COMMIT is about to write: COMMIT refuses before it starts.
 */
TEST_F(rs, commit_refused_when_another_process_shares_the_mm)
{
	int pfd[2], ws;
	pid_t pid, sib = 0;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *stack = mmap(NULL, 65536, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pid_t s;

		close(pfd[0]);
		if (stack == MAP_FAILED)
			_exit(10);
		s = clone(sibling, stack + 65536, CLONE_VM | SIGCHLD, NULL);
		if (s < 0 || write(pfd[1], &s, sizeof(s)) != sizeof(s))
			_exit(11);
		if (ck_ioctl(self->fd, CKPT_IOC_RESTORE_PREPARE, &self->p))
			_exit(12);
		_exit(ioctl(self->fd, CKPT_IOC_RESTORE_COMMIT, 0) && errno == EBUSY ? 0 : 13);
	}
	close(pfd[1]);
	ASSERT_EQ(sizeof(sib), read(pfd[0], &sib, sizeof(sib)));
	ASSERT_EQ(pid, waitpid(pid, &ws, 0));
	kill(sib, SIGKILL);
	close(pfd[0]);
	EXPECT_TRUE(WIFEXITED(ws)) TH_LOG("COMMIT went ahead: the child died of signal %d",
					  WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
	if (WIFEXITED(ws))
		EXPECT_EQ(0, WEXITSTATUS(ws));
}

TEST_HARNESS_MAIN

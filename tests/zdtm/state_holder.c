// SPDX-License-Identifier: GPL-2.0
/*
 * A process holding one piece of state that ckpt-tool dump does not save, for
 * tests/e2e/vm-tool-refusals.sh and vm-tool-losses.sh.
 *     state_holder READY MODE
 * MODE: plain (nothing), child (a child process that sleeps), zombie (a child that exited,
 * not reaped), thread-child (a child forked by a second thread, which then sleeps), msg (a
 * System V message queue it sent to), sem (a System V semaphore set it operated on),
 * subreaper, flock-mapped / ofd-mapped (an flock or OFD lock on READY.lock, whose descriptor
 * is closed after the file is mapped private: the mapping keeps the lock), mlock (a locked
 * page), ofd-fd=PATH (an OFD lock on PATH through a descriptor it keeps open), map=PATH (PATH
 * mapped private, its descriptor closed, no lock), mempolicy (set_mempolicy MPOL_BIND to node
 * 0), speculation (PR_SET_SPECULATION_CTRL: store bypass disabled), uclamp (sched_setattr
 * uclamp.min 512), ksm-any (PR_SET_MEMORY_MERGE), thread-affinity (a second thread on CPU 0
 * alone). A mode the kernel or machine does not offer prints "SKIP: why" and exits 4. For msg and sem the object's id is written
 * to READY.id. Then READY is created and the process sleeps until killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Whether process c is a zombie (its /proc/c/stat state is Z). */
static int zombie(pid_t c)
{
	char path[64], buf[512], *p;
	FILE *f;
	int z = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)c);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		z = p[2] == 'Z';
	fclose(f);
	return z;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(path);
		exit(2);
	}
}

static void *forker(void *arg)
{
	pid_t c = fork();

	if (c == 0) {
		for (;;)
			pause();
	}
	*(pid_t *)arg = c;
	for (;;)
		pause();
	return NULL;
}

/* Locks READY.lock (flock or OFD), maps it private, closes the descriptor. */
static int lock_mapped(const char *ready, int ofd)
{
	char path[4096];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	snprintf(path, sizeof(path), "%s.lock", ready);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 4096) ||
	    (ofd ? fcntl(fd, F_OFD_SETLK, &fl) : flock(fd, LOCK_EX)) ||
	    mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED || close(fd)) {
		perror(path);
		return -1;
	}
	return 0;
}

static int skip(const char *what)
{
	printf("SKIP: %s: %s\n", what, strerror(errno));
	return 4;
}

static void *cpu0_thread(void *arg)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(0, &s);
	*(volatile int *)arg = sched_setaffinity(0, sizeof(s), &s) ? -1 : 1;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	char path[4096], id[32] = "";

	if (argc != 3) {
		fprintf(stderr, "usage: %s READY MODE (see the source)\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[2], "child")) {
		pid_t c = fork();

		if (c < 0)
			return 2;
		if (c == 0) {
			for (;;)
				pause();
		}
	} else if (!strcmp(argv[2], "zombie")) {
		pid_t c = fork();

		if (c < 0)
			return 2;
		if (c == 0)
			_exit(0);
		while (kill(c, 0) == 0 && !zombie(c))
			usleep(1000);
	} else if (!strcmp(argv[2], "thread-child")) {
		static volatile pid_t c;
		pthread_t t;

		if (pthread_create(&t, NULL, forker, (void *)&c))
			return 2;
		while (!c)
			usleep(1000);
	} else if (!strcmp(argv[2], "flock-mapped") || !strcmp(argv[2], "ofd-mapped")) {
		if (lock_mapped(argv[1], argv[2][0] == 'o'))
			return 2;
	} else if (!strncmp(argv[2], "ofd-fd=", 7) || !strncmp(argv[2], "map=", 4)) {
		const int ofd = argv[2][0] == 'o';
		const char *file = strchr(argv[2], '=') + 1;
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd = open(file, O_RDWR | O_CREAT, 0600);

		if (fd < 0 || ftruncate(fd, 4096) || (ofd && fcntl(fd, F_OFD_SETLK, &fl)) ||
		    (!ofd && (mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED ||
			      close(fd)))) {
			perror(file);
			return 2;
		}
	} else if (!strcmp(argv[2], "mempolicy")) {
		unsigned long node0 = 1;

		if (syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &node0, 64))
			return skip("set_mempolicy");
	} else if (!strcmp(argv[2], "speculation")) {
		/* PR_SET_SPECULATION_CTRL, PR_SPEC_STORE_BYPASS, PR_SPEC_DISABLE */
		if (prctl(53, 0, 4, 0, 0))
			return skip("PR_SET_SPECULATION_CTRL");
	} else if (!strcmp(argv[2], "uclamp")) {
		struct {
			uint32_t size, policy;
			uint64_t flags;
			int32_t nice;
			uint32_t priority;
			uint64_t runtime, deadline, period;
			uint32_t util_min, util_max;
		} a = { .size = 56, .flags = 0x08 | 0x10 | 0x20, .util_min = 512 };
		/* SCHED_FLAG_KEEP_POLICY | KEEP_PARAMS | UTIL_CLAMP_MIN */
		if (syscall(SYS_sched_setattr, 0, &a, 0))
			return skip("sched_setattr uclamp");
	} else if (!strcmp(argv[2], "ksm-any")) {
		if (prctl(67 /* PR_SET_MEMORY_MERGE */, 1, 0, 0, 0))
			return skip("PR_SET_MEMORY_MERGE");
	} else if (!strcmp(argv[2], "thread-affinity")) {
		static volatile int done;
		pthread_t t;

		if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
			errno = ENODEV;
			return skip("one CPU");
		}
		if (pthread_create(&t, NULL, cpu0_thread, (void *)&done))
			return 2;
		while (!done)
			usleep(1000);
		if (done < 0)
			return skip("sched_setaffinity");
	} else if (!strcmp(argv[2], "mlock")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || mlock(p, 4096)) {
			perror("mlock");
			return 2;
		}
	} else if (!strcmp(argv[2], "msg")) {
		struct {
			long type;
			char text[2];
		} m = { 1, "hi" };
		int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);

		if (q < 0 || msgsnd(q, &m, sizeof(m.text), 0)) {
			perror("msg");
			return 2;
		}
		snprintf(id, sizeof(id), "%d", q);
	} else if (!strcmp(argv[2], "sem")) {
		struct sembuf op = { 0, 1, 0 };
		int s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);

		if (s < 0 || semop(s, &op, 1)) {
			perror("sem");
			return 2;
		}
		snprintf(id, sizeof(id), "%d", s);
	} else if (!strcmp(argv[2], "subreaper")) {
		if (prctl(PR_SET_CHILD_SUBREAPER, 1)) {
			perror("PR_SET_CHILD_SUBREAPER");
			return 2;
		}
	} else if (strcmp(argv[2], "plain")) {
		fprintf(stderr, "unknown mode %s\n", argv[2]);
		return 2;
	}
	if (*id) {
		snprintf(path, sizeof(path), "%s.id", argv[1]);
		write_file(path, id);
	}
	write_file(argv[1], "");
	for (;;)
		pause();
}

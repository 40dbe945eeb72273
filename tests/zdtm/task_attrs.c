// SPDX-License-Identifier: GPL-2.0
/*
 * What a process sets on itself and its threads inherit (image format 2.8): its own session
 * (setsid: it leads its session and its process group), a CPU affinity (CPU 0 only), a timer
 * slack (PR_SET_TIMERSLACK) and a coredump_filter. A second thread is created afterwards, as
 * every thread of a real program inherits them. After restore both threads still have the
 * affinity and the timer slack, and the process still leads its session and group (the tool
 * before 2.8 gave them ckpt-tool restore's: 0x33, 50 us, every CPU, a member of its group).
 * Needs two CPUs (SKIP otherwise) and root (reading another process's timer slack needs
 * CAP_SYS_NICE; without it the dump does not save it).
 */
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include "zdtm.h"

#define SLACK 1234567UL
#define FILTER "0x17"  /* the kernel reads base 0: "17" would be decimal */

static int only_cpu0(void)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	if (sched_getaffinity(0, sizeof(s), &s))
		return 0;
	return CPU_COUNT(&s) == 1 && CPU_ISSET(0, &s);
}

static volatile int thread_ok = -1;
static volatile int thread_go;

static void *thread_main(void *arg)
{
	(void)arg;
	while (!thread_go)
		zdtm_msleep(10);
	thread_ok = only_cpu0() && (unsigned long)prctl(PR_GET_TIMERSLACK) == SLACK;
	return NULL;
}

int main(int argc, char **argv)
{
	cpu_set_t s;
	char buf[32] = "";
	pthread_t t;
	int fd;

	zdtm_init(argc, argv);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("SKIP %s: one CPU\n", zdtm_name);
		return 4;
	}
	if (setsid() < 0)
		return zdtm_fail("setsid");
	CPU_ZERO(&s);
	CPU_SET(0, &s);
	if (sched_setaffinity(0, sizeof(s), &s) || prctl(PR_SET_TIMERSLACK, SLACK, 0, 0, 0))
		return zdtm_fail("sched_setaffinity / PR_SET_TIMERSLACK");
	fd = open("/proc/self/coredump_filter", O_WRONLY);
	if (fd < 0 || write(fd, FILTER, 4) != 4)
		return zdtm_fail("coredump_filter");
	close(fd);
	if (pthread_create(&t, NULL, thread_main, NULL))
		return zdtm_fail("pthread_create");
	zdtm_ready();
	zdtm_wait_go();
	thread_go = 1;
	pthread_join(t, NULL);
	if (getsid(0) != getpid() || getpgrp() != getpid())
		return zdtm_fail("no longer leads its session and group (sid %d, pgrp %d, pid %d)",
				 getsid(0), getpgrp(), getpid());
	if (!only_cpu0())
		return zdtm_fail("the CPU affinity is not CPU 0 alone");
	if ((unsigned long)prctl(PR_GET_TIMERSLACK) != SLACK)
		return zdtm_fail("timer slack %ld", (long)prctl(PR_GET_TIMERSLACK));
	if (thread_ok != 1)
		return zdtm_fail("the second thread's affinity or timer slack differs");
	fd = open("/proc/self/coredump_filter", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0 || strtoul(buf, NULL, 16) != 0x17)
		return zdtm_fail("coredump_filter %s", buf);
	close(fd);
	return zdtm_pass();
}

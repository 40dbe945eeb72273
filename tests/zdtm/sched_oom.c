// SPDX-License-Identifier: GPL-2.0
/*
 * Scheduling and oom_score_adj survive (image format 2.5): the process runs under SCHED_BATCH
 * at nice 7 with oom_score_adj 321, a second thread too (it inherits them at creation). The
 * restorer itself runs under SCHED_OTHER at nice 0 with oom_score_adj 0, so a restore that does
 * not set them fails here (before format 2.5 it did: dump saved none of them).
 */
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include "zdtm.h"

#define WANT_NICE 7
#define WANT_OOM 321

static volatile int checking;
static const char *thread_result = "did not run";

static const char *check_thread(void)
{
	errno = 0;
	if (sched_getscheduler(0) != SCHED_BATCH)
		return "policy is not SCHED_BATCH";
	if (getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)) != WANT_NICE)
		return "nice differs";
	return NULL;
}

static void *thread_main(void *arg)
{
	(void)arg;
	while (!checking)
		zdtm_msleep(5);
	thread_result = check_thread();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sched_param sp = { 0 };
	pthread_t t;
	const char *why;
	char buf[32];
	int fd, n;

	zdtm_init(argc, argv);
	if (sched_setscheduler(0, SCHED_BATCH, &sp))
		return zdtm_fail("SCHED_BATCH: %s", strerror(errno));
	if (setpriority(PRIO_PROCESS, 0, WANT_NICE))
		return zdtm_fail("nice: %s", strerror(errno));
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || dprintf(fd, "%d", WANT_OOM) < 0)
		return zdtm_fail("oom_score_adj: %s", strerror(errno));
	close(fd);
	if (pthread_create(&t, NULL, thread_main, NULL))
		return zdtm_fail("pthread_create");
	zdtm_ready();
	zdtm_wait_go();

	why = check_thread();
	if (why)
		return zdtm_fail("main thread: %s (policy %d, nice %d)", why, sched_getscheduler(0),
				 getpriority(PRIO_PROCESS, 0));
	fd = open("/proc/self/oom_score_adj", O_RDONLY);
	n = fd < 0 ? -1 : (int)read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return zdtm_fail("reading oom_score_adj");
	buf[n] = 0;
	if (atoi(buf) != WANT_OOM)
		return zdtm_fail("oom_score_adj is %d, want %d", atoi(buf), WANT_OOM);
	checking = 1;
	pthread_join(t, NULL);
	if (thread_result)
		return zdtm_fail("second thread: %s", thread_result);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Per-process state that prctl(2) and personality(2) set survives: the personality
 * (ADDR_NO_RANDOMIZE, as `setarch -R` and gdb set it), no_new_privs and THP disabled
 * (PR_SET_THP_DISABLE). no_new_privs and the personality belong to each thread: a second thread,
 * created before the dump, checks its own after the restore. The restorer itself runs with none
 * of them, so a restore that drops them fails here.
 */
#include <pthread.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include "zdtm.h"

#define WANT_PERSONALITY (PER_LINUX | ADDR_NO_RANDOMIZE)

static volatile int checking;
static const char *thread_result = "did not run";

static const char *check_task(void)
{
	int p = personality(0xffffffff);

	if (p != WANT_PERSONALITY)
		return "personality differs";
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return "no_new_privs is not set";
	return NULL;
}

static void *thread_main(void *arg)
{
	(void)arg;
	while (!checking)
		zdtm_msleep(5);
	thread_result = check_task();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	const char *why;
	int p;

	zdtm_init(argc, argv);
	if (personality(WANT_PERSONALITY) < 0)
		return zdtm_fail("personality: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return zdtm_fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		return zdtm_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
	if (pthread_create(&t, NULL, thread_main, NULL))
		return zdtm_fail("pthread_create");
	zdtm_ready();
	zdtm_wait_go();

	p = personality(0xffffffff);
	why = check_task();
	if (why)
		return zdtm_fail("main thread: %s (personality %#x, want %#x)", why, p,
				 WANT_PERSONALITY);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		return zdtm_fail("THP is no longer disabled (PR_GET_THP_DISABLE %d)",
				 prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	checking = 1;
	pthread_join(t, NULL);
	if (thread_result)
		return zdtm_fail("second thread: %s", thread_result);
	return zdtm_pass();
}

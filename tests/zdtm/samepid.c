// SPDX-License-Identifier: GPL-2.0
/* The restored process has its PID and its threads their TIDs again (the restorer may choose
 * them: root in the VM), so glibc's cached TIDs are right: raise() and pthread_kill() reach the
 * main thread and each other thread. With other IDs, they would signal a TID that does not
 * exist (or another process's thread). */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include "zdtm.h"

#define NT 3

static volatile sig_atomic_t got_main;
static volatile int hits[NT], stop;
static __thread int me = -1;  /* thread index, -1 in main */
static pid_t tids[NT];

static void on_usr1(int sig)
{
	(void)sig;
	if (me < 0)
		got_main++;
	else
		hits[me]++;
}

static void *worker(void *arg)
{
	me = (int)(long)arg;
	tids[me] = (pid_t)syscall(SYS_gettid);
	while (!stop)
		zdtm_msleep(5);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[NT];
	pid_t before;
	int e, i;

	zdtm_init(argc, argv);
	signal(SIGUSR1, on_usr1);
	for (i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	for (i = 0; i < NT; i++)
		while (!__atomic_load_n(&tids[i], __ATOMIC_ACQUIRE))
			zdtm_msleep(1);
	before = getpid();
	zdtm_ready();
	zdtm_wait_go();

	if (geteuid() != 0)
		return zdtm_skip("the restorer is not root: it cannot choose the PID");
	if (getpid() != before)
		return zdtm_fail("restored as pid %d, dumped as %d (the PID was free)", getpid(), before);
	if (raise(SIGUSR1) != 0)
		return zdtm_fail("raise: %s", strerror(errno));
	if ((e = pthread_kill(pthread_self(), SIGUSR1)))
		return zdtm_fail("pthread_kill(self): %s", strerror(e));
	if (got_main != 2)
		return zdtm_fail("SIGUSR1 handled %d times by the main thread, want 2", (int)got_main);
	for (i = 0; i < NT; i++) {
		if ((e = pthread_kill(th[i], SIGUSR1)))
			return zdtm_fail("pthread_kill(thread %d, tid %d): %s", i, tids[i], strerror(e));
		for (int w = 0; w < 200 && !hits[i]; w++)
			zdtm_msleep(10);
		if (hits[i] != 1)
			return zdtm_fail("thread %d (tid %d) handled SIGUSR1 %d times, want 1", i, tids[i],
					 hits[i]);
	}
	stop = 1;
	for (i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	return zdtm_pass();
}

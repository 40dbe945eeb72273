// SPDX-License-Identifier: GPL-2.0
/*
 * Every thread keeps its TID (the restorer may choose them: root in the VM, clone3's set_tid).
 * glibc caches each thread's TID in its struct pthread, so pthread_kill()/pthread_sigqueue() of
 * another thread reach it only with the same TIDs (with new ones they fail with ESRCH, or with
 * a permuted TID reach the wrong thread). After restore each thread checks gettid() against the
 * TID it had and that its own pending signal (SIGUSR2, raised while blocked) is still pending for
 * it alone, and the main thread queues a signal to each one with pthread_sigqueue(): it must
 * run in that thread.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include "zdtm.h"

#define N 4

static pid_t tids[N];
static volatile pid_t got_in[N];
static volatile int go, parked;
static const char *results[N];

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int id = si->si_value.sival_int;

	if (id >= 0 && id < N)
		got_in[id] = (pid_t)syscall(SYS_gettid);
}

static void *nothing(void *arg)
{
	return arg;
}

static void *worker(void *arg)
{
	int id = (int)(long)arg;

	sigset_t usr2, pend;

	tids[id] = (pid_t)syscall(SYS_gettid);
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	if (id % 2)
		raise(SIGUSR2); /* pending for this thread only */
	__atomic_fetch_add(&parked, 1, __ATOMIC_SEQ_CST);
	while (!go)
		zdtm_msleep(2);
	if ((pid_t)syscall(SYS_gettid) != tids[id] && !results[id])
		results[id] = "TID differs";
	if (sigpending(&pend) || sigismember(&pend, SIGUSR2) != id % 2)
		results[id] = id % 2 ? "its pending SIGUSR2 is gone" : "another thread's SIGUSR2 is pending here";
	/* The main thread signals each worker once go is set; wait for ours. */
	for (int i = 0; i < 5000 && !got_in[id]; i++)
		zdtm_msleep(1);
	if (!got_in[id] && !results[id])
		results[id] = "pthread_kill's signal never arrived";
	else if (got_in[id] != tids[id] && !results[id])
		results[id] = "pthread_kill's signal ran in another thread";
	return results[id] ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO };
	pthread_t th[N];
	pid_t before;
	void *ret;

	zdtm_init(argc, argv);
	sigaction(SIGUSR1, &sa, NULL);
	before = getpid();
	/* A short-lived thread before each worker: the workers' TIDs are not consecutive, so a
	 * restorer that merely creates threads right after taking the PID does not get them back
	 * by luck. */
	for (long i = 0; i < N; i++) {
		pthread_t gap;

		if (pthread_create(&gap, NULL, nothing, NULL) || pthread_join(gap, NULL))
			return zdtm_fail("pthread_create");
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			return zdtm_fail("pthread_create");
	}
	while (parked < N)
		zdtm_msleep(1);
	zdtm_ready();
	zdtm_wait_go();

	if (geteuid() != 0)
		return zdtm_skip("the restorer is not root: it cannot choose TIDs");
	if (getpid() != before)
		return zdtm_fail("restored as pid %d, not %d", getpid(), before);
	go = 1;
	for (int i = 0; i < N; i++) {
		union sigval v = { .sival_int = i };
		int e = pthread_sigqueue(th[i], SIGUSR1, v);

		if (e)
			return zdtm_fail("pthread_sigqueue to thread %d (TID %d): %s", i, tids[i],
					 strerror(e));
	}
	for (int i = 0; i < N; i++) {
		if (pthread_join(th[i], &ret))
			return zdtm_fail("pthread_join %d", i);
		if (ret)
			return zdtm_fail("thread %d: %s", i, results[i]);
	}
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * 8 threads, each with its own state: a thread-local variable, a stack array, its own blocked
 * signal mask, its own alternate signal stack and a counter it keeps incrementing. Some poll
 * with nanosleep, some wait on a condition variable (futex), one spins. After restore each
 * thread checks its own state, keeps running, and the main thread joins them all (which needs
 * the kernel's clear_child_tid futex wake-up to work in the restored process).
 */
#include <pthread.h>
#include <signal.h>
#include "zdtm.h"

#define N 8

static __thread uint64_t tls_value;
static volatile int go, parked;
static volatile uint64_t counters[N];
static char altstacks[N][32768];
static const char *results[N];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *worker(void *arg)
{
	int id = (int)(long)arg;
	volatile uint64_t frame[64];
	stack_t ss = { .ss_sp = altstacks[id], .ss_size = sizeof(altstacks[id]) }, got;
	sigset_t mask, now;

	tls_value = zdtm_mix(id + 1000);
	for (int i = 0; i < 64; i++)
		frame[i] = zdtm_mix(id * 64 + i);
	sigemptyset(&mask);
	sigaddset(&mask, SIGRTMIN + id);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigaltstack(&ss, NULL);
	__atomic_fetch_add(&parked, 1, __ATOMIC_SEQ_CST);

	if (id % 3 == 0) {
		pthread_mutex_lock(&mu);
		while (!go)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	} else if (id % 3 == 1) {
		while (!go) {
			counters[id]++;
			zdtm_msleep(5);
		}
	} else {
		while (!go)
			counters[id]++;
	}

	results[id] = NULL;
	if (tls_value != zdtm_mix(id + 1000))
		results[id] = "thread-local variable differs";
	for (int i = 0; i < 64; i++)
		if (frame[i] != zdtm_mix(id * 64 + i))
			results[id] = "stack differs";
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	for (int k = 0; k < N; k++)
		if (sigismember(&now, SIGRTMIN + k) != (k == id))
			results[id] = "signal mask differs";
	if (sigaltstack(NULL, &got) || got.ss_sp != altstacks[id])
		results[id] = "sigaltstack differs";
	/* Keep going a little after restore. */
	for (uint64_t c = counters[id], end = c + 1000; c < end; c++)
		counters[id] = c + 1;
	return results[id] ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[N];
	void *ret;

	zdtm_init(argc, argv);
	for (long i = 0; i < N; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			return zdtm_fail("pthread_create");
	while (parked < N)
		zdtm_msleep(1);
	zdtm_msleep(50);
	zdtm_ready();
	zdtm_wait_go();
	pthread_mutex_lock(&mu);
	go = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < N; i++) {
		if (pthread_join(th[i], &ret))
			return zdtm_fail("pthread_join %d", i);
		if (ret)
			return zdtm_fail("thread %d: %s", i, results[i]);
	}
	return zdtm_pass();
}

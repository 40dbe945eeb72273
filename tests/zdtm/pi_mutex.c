// SPDX-License-Identifier: GPL-2.0
/*
 * A priority-inheritance mutex held across the dump by one thread, with another thread blocked
 * in the kernel waiting for it (FUTEX_LOCK_PI). Its futex word holds the owner's TID and the
 * waiters bit, and the kernel checks that TID against real threads: when the waiter's lock is
 * restarted after the restore (it looks the owner up by TID) and when the owner unlocks
 * (FUTEX_UNLOCK_PI refuses a caller whose TID is not the word's). With the TIDs kept (the
 * restorer may choose them: root in the VM, clone3 set_tid) the owner unlocks and the waiter
 * gets the mutex; with new TIDs the owner's unlock fails with EPERM and glibc parks the waiter
 * for ever (the lookup finds no owner).
 */
#include <pthread.h>
#include <time.h>
#include "zdtm.h"

static pthread_mutex_t m;
static volatile int locked, go, got;
static int unlock_err = -1;

static void *owner(void *arg)
{
	(void)arg;
	if (pthread_mutex_lock(&m))
		return (void *)1;
	locked = 1;
	while (!go)
		zdtm_msleep(2);
	zdtm_msleep(20); /* the waiter is back in FUTEX_LOCK_PI by now */
	unlock_err = pthread_mutex_unlock(&m);
	return NULL;
}

static void *nothing(void *arg)
{
	return arg;
}

/* A short-lived thread: the next thread's TID is not the one after the last (so a restorer
 * that merely creates threads after taking the PID does not get the TIDs back by luck). */
static int gap(void)
{
	pthread_t t;

	return pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL);
}

static void *waiter(void *arg)
{
	(void)arg;
	if (pthread_mutex_lock(&m))
		return (void *)1;
	got = 1;
	pthread_mutex_unlock(&m);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t ma;
	pthread_t o, w;
	struct timespec until;
	void *ret;

	zdtm_init(argc, argv);
	pthread_mutexattr_init(&ma);
	if (pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT) || pthread_mutex_init(&m, &ma))
		return zdtm_fail("a PI mutex");
	if (gap() || pthread_create(&o, NULL, owner, NULL))
		return zdtm_fail("pthread_create");
	while (!locked)
		zdtm_msleep(1);
	if (gap() || pthread_create(&w, NULL, waiter, NULL))
		return zdtm_fail("pthread_create");
	/* The waiter is in the kernel once the word has the waiters bit (FUTEX_WAITERS). */
	for (int i = 0; !(__atomic_load_n(&m.__data.__lock, __ATOMIC_SEQ_CST) & 0x80000000); i++) {
		if (i > 10000)
			return zdtm_fail("the waiter never blocked on the PI mutex");
		zdtm_msleep(1);
	}
	zdtm_ready();
	zdtm_wait_go();

	if (geteuid() != 0)
		return zdtm_skip("the restorer is not root: it cannot choose TIDs");
	go = 1;
	if (pthread_join(o, &ret) || ret)
		return zdtm_fail("the owner thread");
	if (unlock_err)
		return zdtm_fail("the owner's unlock: %s", strerror(unlock_err));
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	if (pthread_timedjoin_np(w, &ret, &until))
		return zdtm_fail("the waiter never got the mutex");
	if (ret || !got)
		return zdtm_fail("the waiter's lock failed");
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/* The restored process has its PID again (the restorer may choose PIDs: root in the VM), so
 * glibc's cached TID of the main thread is right and raise(), abort()'s path and
 * pthread_kill(pthread_self()) reach it. Without the same PID, raise() sends to a TID that
 * does not exist (or is another process's). */
#include <pthread.h>
#include <signal.h>
#include "zdtm.h"

static volatile sig_atomic_t got;

static void on_usr1(int sig)
{
	(void)sig;
	got++;
}

int main(int argc, char **argv)
{
	pid_t before;
	int e;

	zdtm_init(argc, argv);
	signal(SIGUSR1, on_usr1);
	before = getpid();
	zdtm_ready();
	zdtm_wait_go();

	if (geteuid() != 0)
		return zdtm_skip("the restorer is not root: it cannot choose the PID");
	if (getpid() != before)
		return zdtm_fail("restored as pid %d, dumped as %d (the PID was free)", getpid(), before);
	if (raise(SIGUSR1) != 0)
		return zdtm_fail("raise: %s", strerror(errno));
	e = pthread_kill(pthread_self(), SIGUSR1);
	if (e)
		return zdtm_fail("pthread_kill(self): %s", strerror(e));
	if (got != 2)
		return zdtm_fail("SIGUSR1 handled %d times, want 2", (int)got);
	return zdtm_pass();
}

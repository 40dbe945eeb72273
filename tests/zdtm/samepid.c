// SPDX-License-Identifier: GPL-2.0
/* The restored process has its PID again (the restorer may choose it: root in the VM; it asks
 * for it with clone3's set_tid, which nothing else can take in between, and vm-zdtm.sh reaps the
 * dumped process before the restore), so glibc's cached TID of the main thread is right:
 * raise() and pthread_kill(pthread_self()) reach it. Another PID is a failure. */
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
		return zdtm_fail("restored as pid %d, not %d", getpid(), before);
	if (raise(SIGUSR1) != 0)
		return zdtm_fail("raise: %s", strerror(errno));
	if ((e = pthread_kill(pthread_self(), SIGUSR1)))
		return zdtm_fail("pthread_kill(self): %s", strerror(e));
	if (got != 2)
		return zdtm_fail("SIGUSR1 handled %d times, want 2", (int)got);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Signals pending across the dump: blocked, queued for the process (sigqueue: two real-time
 * ones with their values, in order) and for the thread (raise: SIGUSR1), still pending after
 * restore with their siginfo.
 */
#include <signal.h>
#include "zdtm.h"

int main(int argc, char **argv)
{
	int rt = SIGRTMIN + 1;
	sigset_t set, pend;
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	pid_t sender = getpid(); /* the siginfo keeps the dumped pid; ours is new after restore */

	zdtm_init(argc, argv);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, rt);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return zdtm_fail("sigprocmask");
	if (sigqueue(getpid(), rt, (union sigval){ .sival_int = 42 }) ||
	    sigqueue(getpid(), rt, (union sigval){ .sival_int = 43 }) || raise(SIGUSR1))
		return zdtm_fail("queueing");
	zdtm_ready();
	zdtm_wait_go();
	if (sigpending(&pend) || !sigismember(&pend, SIGUSR1) || !sigismember(&pend, rt))
		return zdtm_fail("not pending any more");
	for (int want = 42; want <= 43; want++) {
		sigemptyset(&set);
		sigaddset(&set, rt);
		if (sigtimedwait(&set, &si, &zero) != rt)
			return zdtm_fail("real-time signal %d not queued", want - 41);
		if (si.si_code != SI_QUEUE || si.si_value.sival_int != want || si.si_pid != sender)
			return zdtm_fail("siginfo: code %d value %d pid %d, want %d %d %d", si.si_code,
					 si.si_value.sival_int, si.si_pid, SI_QUEUE, want, sender);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigtimedwait(&set, &si, &zero) != SIGUSR1)
		return zdtm_fail("SIGUSR1 lost");
	if (sigtimedwait(&set, &si, &zero) >= 0)
		return zdtm_fail("SIGUSR1 twice");
	return zdtm_pass();
}

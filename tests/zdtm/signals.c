// SPDX-License-Identifier: GPL-2.0
/*
 * Signal handlers (with SA_SIGINFO and SA_RESTART, an ignored signal, a handler mask) and the
 * blocked mask survive; the handlers run after restore and a blocked signal stays pending
 * until unblocked.
 */
#include <signal.h>
#include "zdtm.h"

static volatile sig_atomic_t usr1, term, usr1_code;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	usr1++;
	usr1_code = si->si_signo == sig;
}

static void on_term(int sig)
{
	(void)sig;
	term++;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 }, got;
	sigset_t block, now;

	zdtm_init(argc, argv);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGHUP);
	if (sigaction(SIGUSR1, &sa, NULL))
		return zdtm_fail("sigaction");
	signal(SIGUSR2, SIG_IGN);
	signal(SIGTERM, on_term);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &block, NULL);
	zdtm_ready();
	zdtm_wait_go();

	if (sigaction(SIGUSR1, NULL, &got) || got.sa_sigaction != on_usr1 ||
	    !(got.sa_flags & SA_SIGINFO) || !(got.sa_flags & SA_RESTART) ||
	    !sigismember(&got.sa_mask, SIGHUP))
		return zdtm_fail("SIGUSR1 disposition differs");
	if (sigaction(SIGUSR2, NULL, &got) || got.sa_handler != SIG_IGN)
		return zdtm_fail("SIGUSR2 is no longer ignored");
	sigprocmask(SIG_BLOCK, NULL, &now);
	if (!sigismember(&now, SIGTERM) || !sigismember(&now, SIGRTMIN + 3) ||
	    sigismember(&now, SIGUSR1))
		return zdtm_fail("blocked mask differs");
	raise(SIGUSR2);
	raise(SIGUSR1);
	if (usr1 != 1 || !usr1_code)
		return zdtm_fail("SIGUSR1 handler did not run properly (%d)", (int)usr1);
	raise(SIGTERM);
	if (term)
		return zdtm_fail("blocked SIGTERM was delivered");
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	if (term != 1)
		return zdtm_fail("SIGTERM handler did not run after unblocking");
	return zdtm_pass();
}

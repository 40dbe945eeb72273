// SPDX-License-Identifier: GPL-2.0
/* signalfd comes back with its mask and flags: one (SIGUSR1 and SIGRTMIN+1, non-blocking) reads
 * the SIGUSR1 queued before the dump (the pending signal is the process's, saved with it), then
 * has nothing (EAGAIN), then reads a real-time signal sent after the restore; another
 * (SIGUSR2, blocking, close-on-exec) reads its signal, and not the others. */
#include <signal.h>
#include <sys/signalfd.h>
#include "zdtm.h"

int main(int argc, char **argv)
{
	sigset_t block, m1, m2;
	struct signalfd_siginfo si;
	int a, b, fl;

	zdtm_init(argc, argv);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&m1);
	sigaddset(&m1, SIGUSR1);
	sigaddset(&m1, SIGRTMIN + 1);
	sigemptyset(&m2);
	sigaddset(&m2, SIGUSR2);
	a = signalfd(-1, &m1, SFD_NONBLOCK);
	b = signalfd(-1, &m2, SFD_CLOEXEC);
	if (a < 0 || b < 0)
		return zdtm_fail("signalfd: %s", strerror(errno));
	if (kill(getpid(), SIGUSR1))
		return zdtm_fail("kill: %s", strerror(errno));
	zdtm_ready();
	zdtm_wait_go();

	fl = fcntl(a, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK) || (fcntl(a, F_GETFD) & FD_CLOEXEC))
		return zdtm_fail("the first signalfd's flags differ after the restore");
	fl = fcntl(b, F_GETFL);
	if (fl < 0 || (fl & O_NONBLOCK) || !(fcntl(b, F_GETFD) & FD_CLOEXEC))
		return zdtm_fail("the second signalfd's flags differ after the restore");
	if (read(a, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR1)
		return zdtm_fail("the queued SIGUSR1 was not read (%s, signal %u)", strerror(errno),
				 si.ssi_signo);
	if (read(a, &si, sizeof si) != -1 || errno != EAGAIN)
		return zdtm_fail("the first signalfd reads more than the SIGUSR1");
	if (kill(getpid(), SIGUSR2) || kill(getpid(), SIGRTMIN + 1))
		return zdtm_fail("kill: %s", strerror(errno));
	if (read(a, &si, sizeof si) != sizeof si || si.ssi_signo != (uint32_t)(SIGRTMIN + 1))
		return zdtm_fail("the first signalfd did not read SIGRTMIN+1 (signal %u)",
				 si.ssi_signo);
	if (read(a, &si, sizeof si) != -1 || errno != EAGAIN)
		return zdtm_fail("the first signalfd reads a signal outside its mask");
	if (read(b, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR2)
		return zdtm_fail("the second signalfd did not read SIGUSR2 (signal %u)",
				 si.ssi_signo);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/* ITIMER_REAL comes back armed: a periodic SIGALRM (setitimer, 20 ms) keeps ticking after the
 * restore, with the same interval, and its handler (counting ticks) runs. The dump reads the
 * timer through ckpt.ko (CKPT_DUMP_TIMERS); restore arms it with the time it had left. */
#include <signal.h>
#include <sys/time.h>
#include "zdtm.h"

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

int main(int argc, char **argv)
{
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } }, now;
	struct sigaction sa = { 0 };
	sig_atomic_t before;

	zdtm_init(argc, argv);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	if (setitimer(ITIMER_REAL, &it, NULL))
		return zdtm_fail("setitimer: %s", strerror(errno));
	while (ticks < 3)
		zdtm_msleep(5);
	zdtm_ready();
	zdtm_wait_go();

	if (getitimer(ITIMER_REAL, &now))
		return zdtm_fail("getitimer: %s", strerror(errno));
	if (now.it_interval.tv_sec != 0 || now.it_interval.tv_usec != 20000)
		return zdtm_fail("interval %ld.%06ld s, want 0.020000",
				 (long)now.it_interval.tv_sec, (long)now.it_interval.tv_usec);
	if (!now.it_value.tv_sec && !now.it_value.tv_usec)
		return zdtm_fail("ITIMER_REAL is disarmed after the restore");
	before = ticks;
	for (int i = 0; i < 200 && ticks < before + 5; i++)
		zdtm_msleep(10);
	if (ticks < before + 5)
		return zdtm_fail("SIGALRM ticked %d times in 2 s after the restore",
				 (int)(ticks - before));
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/* timerfd comes back with its clock, flags, time left, interval and the expirations not read:
 *  rel     CLOCK_MONOTONIC, 300 s left: armed again with what it had left (no less than
 *          200 s: the time from ready to the dump counts, dump to restore does not)
 *  fired   a one-shot 1 ms timer that expired, not read: reads exactly 1 (TFD_IOC_SET_TICKS),
 *          then nothing; disarmed
 *  tick    periodic, 20 ms, expired many times and not read: reads at least 1 at once, keeps
 *          ticking, interval 20 ms
 *  abs     CLOCK_REALTIME, absolute, cancel-on-set, 300 s ahead: armed, settime flags 03
 *  idle    CLOCK_BOOTTIME, disarmed with an interval kept (1 s), non-blocking, close-on-exec */
#include <sys/timerfd.h>
#include "zdtm.h"

static uint64_t ns(struct timespec t)
{
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* fdinfo's value of `key` for fd, or "" */
static const char *info(int fd, const char *key)
{
	static char buf[4096], val[128];
	char path[64], *p;
	int f;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return "";
	n = read(f, buf, sizeof buf - 1);
	close(f);
	buf[n > 0 ? n : 0] = 0;
	p = strstr(buf, key);
	if (!p)
		return "";
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	snprintf(val, sizeof val, "%.*s", (int)strcspn(p, "\n"), p);
	return val;
}

int main(int argc, char **argv)
{
	struct itimerspec rel = { { 0, 0 }, { 300, 0 } }, fired = { { 0, 0 }, { 0, 1000000 } };
	struct itimerspec tick = { { 0, 20000000 }, { 0, 20000000 } }, idle = { { 1, 0 }, { 0, 0 } };
	struct itimerspec abs = { { 0, 0 }, { 0, 0 } }, now;
	struct timespec rt;
	int trel, tfired, ttick, tabs, tidle, fl;
	uint64_t v = 0;

	zdtm_init(argc, argv);
	trel = timerfd_create(CLOCK_MONOTONIC, 0);
	tfired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	ttick = timerfd_create(CLOCK_MONOTONIC, 0);
	tabs = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	tidle = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (trel < 0 || tfired < 0 || ttick < 0 || tabs < 0 || tidle < 0)
		return zdtm_fail("timerfd_create: %s", strerror(errno));
	clock_gettime(CLOCK_REALTIME, &rt);
	abs.it_value.tv_sec = rt.tv_sec + 300;
	if (timerfd_settime(trel, 0, &rel, NULL) || timerfd_settime(tfired, 0, &fired, NULL) ||
	    timerfd_settime(ttick, 0, &tick, NULL) ||
	    timerfd_settime(tabs, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &abs, NULL) ||
	    timerfd_settime(tidle, 0, &idle, NULL))
		return zdtm_fail("timerfd_settime: %s", strerror(errno));
	zdtm_msleep(100);  /* fired and tick expire */
	if (strcmp(info(tfired, "ticks:"), "1"))
		return zdtm_fail("the 1 ms timer shows ticks \"%s\" before the dump",
				 info(tfired, "ticks:"));
	zdtm_ready();
	zdtm_wait_go();

	if (timerfd_gettime(trel, &now))
		return zdtm_fail("timerfd_gettime: %s", strerror(errno));
	if (ns(now.it_value) > 300000000000ull || ns(now.it_value) < 200000000000ull ||
	    ns(now.it_interval))
		return zdtm_fail("the 300 s timer has %llu ns left, interval %llu",
				 (unsigned long long)ns(now.it_value),
				 (unsigned long long)ns(now.it_interval));
	if (strcmp(info(trel, "clockid:"), "1") || (fcntl(trel, F_GETFL) & O_NONBLOCK))
		return zdtm_fail("the 300 s timer's clock (%s) or flags differ",
				 info(trel, "clockid:"));

	if (read(tfired, &v, 8) != 8 || v != 1)
		return zdtm_fail("the expired one-shot timer reads %llu (%s), want 1",
				 (unsigned long long)v, strerror(errno));
	if (read(tfired, &v, 8) != -1 || errno != EAGAIN)
		return zdtm_fail("the expired one-shot timer reads twice");
	if (timerfd_gettime(tfired, &now) || ns(now.it_value) || ns(now.it_interval))
		return zdtm_fail("the expired one-shot timer is armed after the restore");

	if (timerfd_gettime(ttick, &now) || ns(now.it_interval) != 20000000ull ||
	    ns(now.it_value) > 20000000ull)
		return zdtm_fail("the periodic timer's interval or time left differ");
	v = 0;
	if (read(ttick, &v, 8) != 8 || v < 1)
		return zdtm_fail("the periodic timer reads %llu", (unsigned long long)v);
	v = 0;
	if (read(ttick, &v, 8) != 8 || v < 1)  /* blocks until the next tick */
		return zdtm_fail("the periodic timer does not tick after the restore");

	if (timerfd_gettime(tabs, &now) || ns(now.it_value) > 300000000000ull ||
	    ns(now.it_value) < 200000000000ull)
		return zdtm_fail("the absolute timer has %llu ns left",
				 (unsigned long long)ns(now.it_value));
	if (strcmp(info(tabs, "settime flags:"), "03") || strcmp(info(tabs, "clockid:"), "0"))
		return zdtm_fail("the absolute timer's settime flags \"%s\" / clock \"%s\", want 03 / 0",
				 info(tabs, "settime flags:"), info(tabs, "clockid:"));

	fl = fcntl(tidle, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK) || !(fcntl(tidle, F_GETFD) & FD_CLOEXEC) ||
	    strcmp(info(tidle, "clockid:"), "7"))
		return zdtm_fail("the idle timer's flags or clock (%s) differ",
				 info(tidle, "clockid:"));
	if (timerfd_gettime(tidle, &now) || ns(now.it_value) || ns(now.it_interval) != 1000000000ull)
		return zdtm_fail("the idle timer is armed, or lost its interval");
	if (read(tidle, &v, 8) != -1 || errno != EAGAIN)
		return zdtm_fail("the idle timer has expirations");
	return zdtm_pass();
}

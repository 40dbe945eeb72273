// SPDX-License-Identifier: GPL-2.0
/* eventfd comes back with its counter (one above 32 bits, which eventfd2's initial value cannot
 * hold), EFD_SEMAPHORE, O_NONBLOCK and close-on-exec: a semaphore reads 1 three times and then
 * would block (EAGAIN), a plain one reads its whole counter and then blocks; a third, empty,
 * still counts what is written to it after the restore. (On a kernel whose fdinfo does not show
 * EFD_SEMAPHORE, 6.1, dump learns it by probing the counter: the counts must be exact.) */
#include <poll.h>
#include <sys/eventfd.h>
#include "zdtm.h"

static int flags_are(int fd, int fl, int cloexec)
{
	int f = fcntl(fd, F_GETFL), d = fcntl(fd, F_GETFD);

	return f >= 0 && d >= 0 && (f & (O_ACCMODE | O_NONBLOCK)) == fl &&
	       !!(d & FD_CLOEXEC) == cloexec;
}

int main(int argc, char **argv)
{
	uint64_t three = 3, big = 0x100000005ull, v = 0;
	int sem, plain, empty;
	struct pollfd p;

	zdtm_init(argc, argv);
	sem = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	plain = eventfd(0, 0);
	empty = eventfd(0, EFD_NONBLOCK);
	if (sem < 0 || plain < 0 || empty < 0)
		return zdtm_fail("eventfd: %s", strerror(errno));
	if (write(sem, &three, 8) != 8 || write(plain, &big, 8) != 8)
		return zdtm_fail("write: %s", strerror(errno));
	zdtm_ready();
	zdtm_wait_go();

	if (!flags_are(sem, O_RDWR | O_NONBLOCK, 1) || !flags_are(plain, O_RDWR, 0) ||
	    !flags_are(empty, O_RDWR | O_NONBLOCK, 0))
		return zdtm_fail("open flags or close-on-exec differ after the restore");
	for (int i = 0; i < 3; i++)
		if (read(sem, &v, 8) != 8 || v != 1)
			return zdtm_fail("semaphore read %d: %s, value %llu", i + 1, strerror(errno),
					 (unsigned long long)v);
	if (read(sem, &v, 8) != -1 || errno != EAGAIN)
		return zdtm_fail("the semaphore holds more than 3 (or blocks)");
	p = (struct pollfd){ .fd = plain, .events = POLLIN };
	if (poll(&p, 1, 0) != 1)
		return zdtm_fail("the plain eventfd is not readable");
	if (read(plain, &v, 8) != 8 || v != big)
		return zdtm_fail("plain eventfd read %#llx, want %#llx", (unsigned long long)v,
				 (unsigned long long)big);
	p = (struct pollfd){ .fd = plain, .events = POLLIN };
	if (poll(&p, 1, 0) != 0)
		return zdtm_fail("the plain eventfd is still readable after its read");
	if (read(empty, &v, 8) != -1 || errno != EAGAIN)
		return zdtm_fail("the empty eventfd is not empty");
	if (write(empty, &three, 8) != 8 || write(empty, &three, 8) != 8 ||
	    read(empty, &v, 8) != 8 || v != 6)
		return zdtm_fail("the empty eventfd does not count after the restore (%llu)",
				 (unsigned long long)v);
	return zdtm_pass();
}

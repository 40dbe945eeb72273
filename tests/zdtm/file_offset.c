// SPDX-License-Identifier: GPL-2.0
/*
 * Regular files open at offsets with flags: a read-write file at offset 12345, an O_APPEND
 * file, a read-only close-on-exec file at offset 3 on fd 17 (with a gap below).
 */
#include "zdtm.h"

int main(int argc, char **argv)
{
	char buf[64];
	int rw, ap, ro, fl;

	zdtm_init(argc, argv);
	rw = open("rw.data", O_CREAT | O_TRUNC | O_RDWR, 0644);
	ap = open("append.data", O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
	ro = open("ro.data", O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (rw < 0 || ap < 0 || ro < 0)
		return zdtm_fail("open");
	if (write(ro, "0123456789", 10) != 10)
		return zdtm_fail("write");
	close(ro);
	ro = open("ro.data", O_RDONLY);
	if (dup3(ro, 17, O_CLOEXEC) != 17)
		return zdtm_fail("dup3");
	close(ro);
	ro = 17;
	lseek(ro, 3, SEEK_SET);
	for (int i = 0; i < 2000; i++)
		if (write(rw, "abcdefghij", 10) != 10)
			return zdtm_fail("write");
	lseek(rw, 12345, SEEK_SET);
	if (write(ap, "hello ", 6) != 6)
		return zdtm_fail("write");
	zdtm_ready();
	zdtm_wait_go();
	if (lseek(rw, 0, SEEK_CUR) != 12345)
		return zdtm_fail("rw offset is %ld", (long)lseek(rw, 0, SEEK_CUR));
	if (read(rw, buf, 3) != 3 || memcmp(buf, "fgh", 3))
		return zdtm_fail("rw data at the offset");
	fl = fcntl(rw, F_GETFL);
	if ((fl & O_ACCMODE) != O_RDWR)
		return zdtm_fail("rw access mode");
	if (fcntl(rw, F_GETFD) != 0)
		return zdtm_fail("rw became close-on-exec");
	fl = fcntl(ap, F_GETFL);
	if (!(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY)
		return zdtm_fail("append flags 0%o", fl);
	if (write(ap, "world", 5) != 5)
		return zdtm_fail("append write");
	if (!(fcntl(ro, F_GETFD) & FD_CLOEXEC) || (fcntl(ro, F_GETFL) & O_ACCMODE) != O_RDONLY)
		return zdtm_fail("fd 17 flags");
	if (read(ro, buf, 2) != 2 || memcmp(buf, "34", 2))
		return zdtm_fail("fd 17 offset");
	if (fcntl(16, F_GETFD) != -1)
		return zdtm_fail("fd 16 is open");
	close(ap);
	ap = open("append.data", O_RDONLY);
	if (read(ap, buf, 20) != 11 || memcmp(buf, "hello world", 11))
		return zdtm_fail("append file content");
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Directory descriptors and O_PATH descriptors (issue 20): a directory open with O_DIRECTORY
 * (read partway with getdents64, close-on-exec), an O_PATH descriptor of that directory and
 * one of a regular file. After restore each is the same inode, keeps its flags (O_PATH,
 * O_DIRECTORY, close-on-exec), the directory's position lets getdents64 go on with the
 * entries not read yet, and openat() through both directory descriptors finds the file.
 * Before, dump refused the first of them ("is not supported").
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include "zdtm.h"

#define ENTRIES 40

static int names(int fd, char seen[ENTRIES], int max)
{
	char buf[256];
	int n = 0;

	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));

		if (got <= 0)
			return got < 0 ? -1 : n;
		for (long off = 0; off < got;) {
			/* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
			unsigned short reclen;
			int i;

			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			if (sscanf(buf + off + 19, "e%d", &i) == 1 && i >= 0 && i < ENTRIES) {
				if (seen[i])
					return -2;  /* an entry read twice */
				seen[i] = 1;
				n++;
			}
			off += reclen;
		}
		if (max && n >= max)
			return n;
	}
}

int main(int argc, char **argv)
{
	char seen[ENTRIES] = { 0 }, p[64];
	struct stat dir_st, file_st, st;
	int dfd, pdfd, pffd, fd, first, rest;

	zdtm_init(argc, argv);
	if (mkdir("d", 0755) && errno != EEXIST)
		return zdtm_fail("mkdir");
	for (int i = 0; i < ENTRIES; i++) {
		snprintf(p, sizeof(p), "d/e%d", i);
		fd = open(p, O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			return zdtm_fail("create %s", p);
		close(fd);
	}
	dfd = open("d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pdfd = open("d", O_PATH | O_DIRECTORY);
	pffd = open("d/e7", O_PATH | O_CLOEXEC);
	if (dfd < 0 || pdfd < 0 || pffd < 0)
		return zdtm_fail("open: %s", strerror(errno));
	if (fstat(dfd, &dir_st) || fstat(pffd, &file_st))
		return zdtm_fail("fstat");
	first = names(dfd, seen, 10);   /* partway: the rest after the restore */
	if (first < 10)
		return zdtm_fail("getdents64 read %d entries", first);
	zdtm_ready();
	zdtm_wait_go();

	if (fstat(dfd, &st) || st.st_ino != dir_st.st_ino || !S_ISDIR(st.st_mode))
		return zdtm_fail("the directory fd is not the directory");
	if (fstat(pdfd, &st) || st.st_ino != dir_st.st_ino)
		return zdtm_fail("the O_PATH directory fd is not the directory");
	if (fstat(pffd, &st) || st.st_ino != file_st.st_ino)
		return zdtm_fail("the O_PATH file fd is not the file");
	if (!(fcntl(pdfd, F_GETFL) & O_PATH) || !(fcntl(pffd, F_GETFL) & O_PATH))
		return zdtm_fail("O_PATH lost: flags %o %o", fcntl(pdfd, F_GETFL), fcntl(pffd, F_GETFL));
	if (fcntl(pdfd, F_GETFL) & O_PATH && fcntl(dfd, F_GETFL) & O_PATH)
		return zdtm_fail("the directory fd became O_PATH");
	if (!(fcntl(dfd, F_GETFD) & FD_CLOEXEC) || (fcntl(pdfd, F_GETFD) & FD_CLOEXEC) ||
	    !(fcntl(pffd, F_GETFD) & FD_CLOEXEC))
		return zdtm_fail("close-on-exec flags differ");
	rest = names(dfd, seen, 0);
	if (rest < 0)
		return zdtm_fail("getdents64 after restore: %s", rest == -2 ? "an entry read twice" : strerror(errno));
	if (first + rest != ENTRIES)
		return zdtm_fail("%d entries before the dump and %d after, want %d in all", first, rest, ENTRIES);
	fd = openat(dfd, "e3", O_RDONLY);
	if (fd < 0)
		return zdtm_fail("openat through the directory fd: %s", strerror(errno));
	close(fd);
	fd = openat(pdfd, "e5", O_RDONLY);
	if (fd < 0)
		return zdtm_fail("openat through the O_PATH directory fd: %s", strerror(errno));
	close(fd);
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A private writable mapping of a regular file with some pages written: after restore the
 * written pages hold the process's bytes, the others still show the file, the file itself is
 * unchanged and the mapping is still of that file.
 */
#include <sys/mman.h>
#include "zdtm.h"

#define PAGES 64

int main(int argc, char **argv)
{
	long pg = sysconf(_SC_PAGESIZE);
	char path[] = "zdtm_file_private.data";
	uint64_t *p, *q;
	int fd, i;
	char buf[256];

	zdtm_init(argc, argv);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0)
		return zdtm_fail("open");
	for (i = 0; i < PAGES * pg / 8; i++) {
		uint64_t v = zdtm_mix(i);

		if (write(fd, &v, 8) != 8)
			return zdtm_fail("write");
	}
	p = mmap(NULL, PAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	/* A read-only private mapping of the same file with one page changed by ptrace-like
	 * means is what relocations do; here: write, then drop write permission. */
	q = mmap(NULL, PAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED || q == MAP_FAILED)
		return zdtm_fail("mmap");
	close(fd);
	for (i = 0; i < PAGES; i += 3)
		p[i * pg / 8 + 5] = ~zdtm_mix(i);
	q[7 * pg / 8] = 42;
	if (mprotect(q, PAGES * pg, PROT_READ))
		return zdtm_fail("mprotect");
	zdtm_ready();
	zdtm_wait_go();
	for (i = 0; i < PAGES * pg / 8; i++) {
		uint64_t want = zdtm_mix(i);

		if (i % (pg / 8) == 5 && (i / (pg / 8)) % 3 == 0)
			want = ~zdtm_mix(i / (pg / 8));
		if (p[i] != want)
			return zdtm_fail("word %d of the rw mapping differs", i);
		want = i == 7 * pg / 8 ? 42 : zdtm_mix(i);
		if (q[i] != want)
			return zdtm_fail("word %d of the ro mapping differs", i);
	}
	fd = open(path, O_RDONLY);
	for (i = 0; i < PAGES * pg / 8; i++) {
		uint64_t v;

		if (pread(fd, &v, 8, i * 8) != 8 || v != zdtm_mix(i))
			return zdtm_fail("the file changed at word %d", i);
	}
	close(fd);
	snprintf(buf, sizeof(buf), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + PAGES * pg);
	if (access(buf, F_OK))
		return zdtm_fail("the mapping is no longer a file mapping");
	return zdtm_pass();
}

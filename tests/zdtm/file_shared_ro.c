// SPDX-License-Identifier: GPL-2.0
/*
 * A read-only MAP_SHARED mapping of a regular file opened read-only (as glibc maps
 * gconv-modules.cache, so every python3 has one): after restore the mapping is still
 * MAP_SHARED of the same file at the same offset (/proc/self/maps: "r--s", the path, the
 * inode), its bytes are the file's, and a write(2) to the file after the restore shows
 * through it (it is the file's page cache, not a copy).
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include "zdtm.h"

#define PAGES 32
#define OFF_PAGES 3	/* the mapping starts at this page of the file */

int main(int argc, char **argv)
{
	long pg = sysconf(_SC_PAGESIZE);
	char path[] = "zdtm_file_shared_ro.data";
	char want[64], line[512];
	uint64_t *p;
	struct stat st;
	int fd, i, found = 0;
	FILE *maps;

	zdtm_init(argc, argv);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return zdtm_fail("open");
	for (i = 0; i < (PAGES + OFF_PAGES) * pg / 8; i++) {
		uint64_t v = zdtm_mix(i);

		if (write(fd, &v, 8) != 8)
			return zdtm_fail("write");
	}
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return zdtm_fail("open");
	p = mmap(NULL, PAGES * pg, PROT_READ, MAP_SHARED, fd, OFF_PAGES * pg);
	if (p == MAP_FAILED)
		return zdtm_fail("mmap");
	close(fd);
	if (p[5] != zdtm_mix(OFF_PAGES * pg / 8 + 5))  /* touch a page: it is in the page cache */
		return zdtm_fail("before the dump, word 5 differs");
	zdtm_ready();
	zdtm_wait_go();
	for (i = 0; i < PAGES * pg / 8; i++)
		if (p[i] != zdtm_mix(OFF_PAGES * pg / 8 + i))
			return zdtm_fail("word %d of the mapping differs from the file", i);
	snprintf(want, sizeof(want), "%lx-%lx r--s %08lx ", (unsigned long)p,
		 (unsigned long)p + PAGES * pg, (unsigned long)(OFF_PAGES * pg));
	maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return zdtm_fail("/proc/self/maps");
	while (fgets(line, sizeof(line), maps)) {
		unsigned long ino;
		char file[256];

		if (strncmp(line, want, strlen(want)))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %lu %255s", &ino, file) != 2 || ino != st.st_ino ||
		    !strstr(file, path))
			return zdtm_fail("the mapping is not of the file any more: %s", line);
		found = 1;
	}
	fclose(maps);
	if (!found)
		return zdtm_fail("no read-only shared mapping \"%s\" in /proc/self/maps", want);
	/* The file's page cache: a write to the file shows through the mapping. */
	fd = open(path, O_WRONLY);
	{
		uint64_t v = 0x5eed5eed5eed5eedULL;

		if (fd < 0 || pwrite(fd, &v, 8, (OFF_PAGES + 7) * pg) != 8)
			return zdtm_fail("writing the file");
		close(fd);
		if (p[7 * pg / 8] != v)
			return zdtm_fail("a write to the file does not show through the mapping");
	}
	return zdtm_pass();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * More mapped files than the restorer's soft RLIMIT_NOFILE: 1100 small files in the test's
 * directory, each mapped private read-only (one page) and its descriptor closed, and one more
 * file mapped 1100 times (every other page, so no two mappings merge): 2200 file mappings.
 * The restore gave each mapping a descriptor of its own and failed with "Too many open
 * files" at the soft limit (1024). After restore every mapping must show its file's bytes.
 * The process's own limits must be what they were (the restore raises the soft limit for
 * itself only).
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include "zdtm.h"

#define FILES 1100
#define REPEATS 1100

int main(int argc, char **argv)
{
	static char *map[FILES], *rep[REPEATS];
	long pg = sysconf(_SC_PAGESIZE);
	struct rlimit before, after;
	char path[64], *hole;
	int fd;

	zdtm_init(argc, argv);
	if (getrlimit(RLIMIT_NOFILE, &before))
		return zdtm_fail("getrlimit");
	for (int i = 0; i < FILES; i++) {
		uint64_t v = zdtm_mix(i);

		snprintf(path, sizeof(path), "many_files.%d", i);
		fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
		if (fd < 0 || ftruncate(fd, pg) || pwrite(fd, &v, 8, 0) != 8)
			return zdtm_fail("file %d", i);
		map[i] = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map[i] == MAP_FAILED)
			return zdtm_fail("mmap %d", i);
		close(fd);
	}
	/* One file, REPEATS mappings of its pages 0, 2, 4, ... at addresses with holes between. */
	fd = open("many_files.rep", O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || ftruncate(fd, 2 * REPEATS * pg))
		return zdtm_fail("rep file");
	for (int i = 0; i < REPEATS; i++) {
		uint64_t v = zdtm_mix(FILES + i);

		if (pwrite(fd, &v, 8, 2 * i * pg) != 8)
			return zdtm_fail("rep write");
	}
	hole = mmap(NULL, 2 * REPEATS * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED)
		return zdtm_fail("reserve");
	for (int i = 0; i < REPEATS; i++) {
		rep[i] = mmap(hole + 2 * i * pg, pg, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd,
			      2 * i * pg);
		if (rep[i] == MAP_FAILED)
			return zdtm_fail("rep mmap %d", i);
	}
	close(fd);
	zdtm_ready();
	zdtm_wait_go();
	for (int i = 0; i < FILES; i++)
		if (*(uint64_t *)map[i] != zdtm_mix(i))
			return zdtm_fail("the mapping of file %d differs", i);
	for (int i = 0; i < REPEATS; i++)
		if (*(uint64_t *)rep[i] != zdtm_mix(FILES + i))
			return zdtm_fail("mapping %d of the repeated file differs", i);
	if (getrlimit(RLIMIT_NOFILE, &after))
		return zdtm_fail("getrlimit");
	if (after.rlim_cur != before.rlim_cur || after.rlim_max != before.rlim_max)
		return zdtm_fail("RLIMIT_NOFILE %lu/%lu, was %lu/%lu", (unsigned long)after.rlim_cur,
				 (unsigned long)after.rlim_max, (unsigned long)before.rlim_cur,
				 (unsigned long)before.rlim_max);
	return zdtm_pass();
}

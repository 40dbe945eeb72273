// SPDX-License-Identifier: GPL-2.0
/* A shared anonymous mapping (MAP_SHARED|MAP_ANONYMOUS) keeps its bytes and stays shared:
 * after restore a forked child's writes are seen by the parent. */
#include <sys/mman.h>
#include <sys/wait.h>
#include "zdtm.h"

#define SIZE (1 << 20)

int main(int argc, char **argv)
{
	uint64_t *p;
	pid_t pid;
	int st;

	zdtm_init(argc, argv);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return zdtm_fail("mmap");
	for (size_t i = 0; i < SIZE / 8; i += 5)
		p[i] = zdtm_mix(i);
	zdtm_ready();
	zdtm_wait_go();
	for (size_t i = 0; i < SIZE / 8; i++)
		if (p[i] != (i % 5 ? 0 : zdtm_mix(i)))
			return zdtm_fail("word %zu differs", i);
	pid = fork();
	if (pid == 0) {
		p[1] = 0xfeedULL;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return zdtm_fail("fork");
	if (p[1] != 0xfeedULL)
		return zdtm_fail("the mapping is no longer shared");
	return zdtm_pass();
}

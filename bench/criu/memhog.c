// SPDX-License-Identifier: MIT
// The process dumped and restored by criu_bench.py: MIB MiB of anonymous memory filled with a
// pattern (THP allowed or not), then it waits. SIGUSR1: check the pattern and create
// DIR/ok (or DIR/bad), so a restore is proven to bring the memory back, not just a process.
//   memhog MIB thp|nothp DIR      (creates DIR/ready when filled)
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t *mem;
static size_t words;
static volatile sig_atomic_t check;

static void on_usr1(int sig) { (void)sig; check = 1; }

static void touch(const char *dir, const char *name) {
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: memhog MIB thp|nothp DIR\n");
		return 2;
	}
	size_t len = strtoull(argv[1], NULL, 0) << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	madvise(mem, len, strcmp(argv[2], "thp") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
	words = len / 8;
	for (size_t i = 0; i < words; i++)
		mem[i] = i * 0x9e3779b97f4a7c15ULL;
	signal(SIGUSR1, on_usr1);
	touch(argv[3], "ready");
	for (;;) {
		pause();
		if (!check)
			continue;
		check = 0;
		size_t bad = 0;
		for (size_t i = 0; i < words; i++)
			bad += mem[i] != i * 0x9e3779b97f4a7c15ULL;
		touch(argv[3], bad ? "bad" : "ok");
	}
}

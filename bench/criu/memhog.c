// SPDX-License-Identifier: MIT
// The process dumped and restored by criu_bench.py: MIB MiB of anonymous memory filled with a
// pattern (THP allowed or not), then it waits. SIGUSR1: check the pattern and create
// DIR/ok (or DIR/bad), so a restore is proven to bring the memory back, not just a process.
// SIGUSR2: write one word in 1% of its 4 KiB pages (every 100th), then create DIR/dirtied.N
// (N = 1, 2, ...): the write an incremental checkpoint must then save (after it the pattern
// check fails; the incremental comparison does not restore).
//   memhog MIB thp|nothp DIR      (writes its pid into DIR/ready when filled)
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
static volatile sig_atomic_t check, dirty;

static void on_usr1(int sig) { (void)sig; check = 1; }
static void on_usr2(int sig) { (void)sig; dirty = 1; }

/* DIR/NAME with `text` in it, written under a temporary name and renamed: who polls for it
 * never sees it empty. */
static void touch(const char *dir, const char *name, const char *text) {
	char p[4096], t[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	snprintf(t, sizeof t, "%s.tmp", p);
	int fd = open(t, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (text)
		(void)!write(fd, text, strlen(text));
	close(fd);
	rename(t, p);
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
	/* The signals stay blocked except inside sigsuspend(): one sent at any instant is seen. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	char pid[32];
	snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	touch(argv[3], "ready", pid);
	unsigned rounds = 0;
	for (;;) {
		while (!check && !dirty)
			sigsuspend(&old);
		if (dirty) {
			dirty = 0;
			for (size_t pg = 0; pg < len / 4096; pg += 100)
				mem[pg * 512] += 1;
			char n[32];
			snprintf(n, sizeof n, "dirtied.%u", ++rounds);
			touch(argv[3], n, NULL);
		}
		if (check) {
			check = 0;
			size_t bad = 0;
			for (size_t i = 0; i < words; i++)
				bad += mem[i] != i * 0x9e3779b97f4a7c15ULL;
			touch(argv[3], bad ? "bad" : "ok", NULL);
		}
	}
}

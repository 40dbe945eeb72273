// SPDX-License-Identifier: GPL-2.0
/*
 * A computation that keeps changing its memory layout, for `ckpt-tool run`'s incremental
 * checkpoints (tests/e2e/vm-zdtm-run.sh): every step writes scattered words of a 2 MiB region,
 * and now and then drops pages with MADV_DONTNEED, splits the region with mprotect, replaces
 * a mapping (munmap + mmap elsewhere), grows the heap with sbrk, and has the kernel write into
 * it with pread(2). At the end it replays the same steps into a fresh buffer and compares:
 * "RESULT OK" or "RESULT BAD ...". Killed and restored any number of times, it must still end
 * with RESULT OK.   layoutcalc [STEPS]   (default 600)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGES 512
#define WPP 512 /* uint64 words per 4 KiB page */
#define SLOTS 8

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static uint64_t filebuf[WPP];

/* One step on P; real != 0 also does the layout changes the replay does not need. */
static void step(uint64_t *P, uint64_t s, int real, int fd)
{
	/* Merge back what the previous step split off (see the end). */
	if (real && s % 11 == 6)
		mprotect(P + ((s - 1) % 8) * 64 * WPP, 8 * 4096, PROT_READ | PROT_WRITE);
	for (uint64_t j = 0; j < 8; j++) {
		uint64_t page = (s * 37 + j * 61) % PAGES;

		P[page * WPP + s % WPP] += s + j;
	}
	if (s % 7 == 3) {
		uint64_t first = (s % 16) * 32;

		if (real)
			madvise(P + first * WPP, 32 * 4096, MADV_DONTNEED);
		else
			memset(P + first * WPP, 0, 32 * 4096);
	}
	if (s % 13 == 6) {
		uint64_t page = (s * 11) % PAGES;

		if (real) {
			if (pread(fd, P + page * WPP, 4096, 0) != 4096)
				abort();
		} else {
			memcpy(P + page * WPP, filebuf, 4096);
		}
	}
	/* Split the region until the next step. */
	if (real && s % 11 == 5)
		mprotect(P + (s % 8) * 64 * WPP, 8 * 4096, PROT_READ);
}

int main(int argc, char **argv)
{
	uint64_t steps = argc > 1 ? strtoull(argv[1], NULL, 10) : 600;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint64_t *P, *R, *slot[SLOTS] = { 0 }, slot_step[SLOTS] = { 0 }, slot_pages[SLOTS] = { 0 };
	uint64_t *heap[64], nheap = 0;
	char path[] = "/tmp/layoutcalc.XXXXXX";
	int fd;

	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 0; i < WPP; i++)
		filebuf[i] = mix(i + 77);
	/* Kept on disk until the end: a deleted open file cannot be checkpointed. */
	fd = mkstemp(path);
	if (fd < 0 || write(fd, filebuf, 4096) != 4096)
		return 2;
	P = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (P == MAP_FAILED)
		return 2;
	for (uint64_t s = 0; s < steps; s++) {
		int k = s % SLOTS;

		step(P, s, 1, fd);
		if (slot[k])
			munmap(slot[k], slot_pages[k] * 4096);
		slot_pages[k] = 1 + s % 5;
		slot[k] = mmap(NULL, slot_pages[k] * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (slot[k] == MAP_FAILED)
			return 2;
		slot_step[k] = s;
		for (uint64_t w = 0; w < slot_pages[k] * WPP; w += 64)
			slot[k][w] = mix(s * 100000 + w);
		if (s % 10 == 9 && nheap < 64) {
			heap[nheap] = sbrk(4096);
			for (int w = 0; w < WPP; w++)
				heap[nheap][w] = mix(nheap * 1000 + w);
			nheap++;
		}
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		ts.tv_nsec = 20 * 1000 * 1000;
	}
	/* The region is read-write again unless the last step split it: make sure. */
	mprotect(P, PAGES * 4096, PROT_READ);
	R = calloc(PAGES, 4096);
	for (uint64_t s = 0; s < steps; s++)
		step(R, s, 0, fd);
	for (uint64_t w = 0; w < PAGES * WPP; w++)
		if (P[w] != R[w]) {
			printf("RESULT BAD region word %llu\n", (unsigned long long)w);
			return 1;
		}
	for (int k = 0; k < SLOTS; k++)
		for (uint64_t w = 0; slot[k] && w < slot_pages[k] * WPP; w += 64)
			if (slot[k][w] != mix(slot_step[k] * 100000 + w)) {
				printf("RESULT BAD slot %d\n", k);
				return 1;
			}
	for (uint64_t h = 0; h < nheap; h++)
		for (int w = 0; w < WPP; w++)
			if (heap[h][w] != mix(h * 1000 + w)) {
				printf("RESULT BAD heap page %llu\n", (unsigned long long)h);
				return 1;
			}
	unlink(path);
	printf("RESULT OK\n");
	return 0;
}

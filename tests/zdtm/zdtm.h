/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The protocol of the ckpt zdtm-like tests (modelled on the kinds of CRIU's ZDTM static tests;
 * written here). A test is run as
 *     TEST READY_FILE GO_FILE [args...]
 * It sets up its state, creates READY_FILE, then keeps its state live until GO_FILE exists
 * (tests/e2e/vm-zdtm.sh dumps it, kills it with SIGKILL, restores it and then creates GO_FILE).
 * Then it checks its state itself and prints "PASS <name>" or "FAIL <name>: <why>" on stdout,
 * exiting 0 or 1. Exit 4 = skipped (prints "SKIP <name>: <why>"), e.g. no AVX2.
 * Syscalls interrupted by the dump may return EINTR once after restore (a nanosleep cannot
 * carry its restart block to another process): everything here retries.
 */
#ifndef ZDTM_H
#define ZDTM_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *zdtm_name, *zdtm_ready_path, *zdtm_go_path;

static inline void zdtm_init(int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');

	zdtm_name = slash ? slash + 1 : argv[0];
	if (argc < 3) {
		fprintf(stderr, "usage: %s READY_FILE GO_FILE\n", argv[0]);
		exit(2);
	}
	zdtm_ready_path = argv[1];
	zdtm_go_path = argv[2];
	setvbuf(stdout, NULL, _IONBF, 0);
}

static inline void zdtm_ready(void)
{
	int fd = open(zdtm_ready_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	if (fd < 0) {
		perror("ready file");
		exit(2);
	}
	close(fd);
}

/* Non-blocking check whether the harness said go. */
static inline int zdtm_go(void)
{
	return access(zdtm_go_path, F_OK) == 0;
}

static inline void zdtm_msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline void zdtm_wait_go(void)
{
	while (!zdtm_go())
		zdtm_msleep(10);
}

static inline int zdtm_pass(void)
{
	printf("PASS %s\n", zdtm_name);
	return 0;
}

__attribute__((format(printf, 1, 2))) static inline int zdtm_fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: ", zdtm_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

__attribute__((format(printf, 1, 2))) static inline int zdtm_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP %s: ", zdtm_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 4;
}

/* A cheap deterministic generator for patterns. */
static inline uint64_t zdtm_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * heat: explicit finite-difference heat diffusion on an N x N plate, checkpointed with libckpt.
 *
 * Heat flows from a few fixed hot spots into a cold plate. Each step updates only the cells
 * inside the bounding box the heat has reached (plus one cell of margin), so a checkpoint writes
 * the pages the front has touched since the last one, not the whole plate.
 *
 *   heat --store PATH [--n 4096] [--steps 2000] [--interval-ms 200] [--quiet]
 *
 * Killed at any point and started again with the same arguments, it resumes from the last
 * checkpoint and prints the same result line as an uninterrupted run:
 *   result: steps=S checksum=XXXXXXXXXXXXXXXX
 * Progress lines ("step S", "resumed at step S") let a test measure the work lost per kill.
 */
#include <ckpt/ckpt.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Everything the computation needs to continue lives in registered memory. */
struct state {
	uint64_t n;		/* plate size, for a sanity check on restore */
	uint64_t step;		/* steps completed */
	uint64_t cur;		/* which grid holds step `step` */
	uint64_t r0, r1, c0, c1;	/* box of cells that may be non-zero: [r0,r1) x [c0,c1) */
};

static void *map_pages(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a over the bytes of the grid: order-fixed, so equal grids give equal checksums. */
static uint64_t checksum(const double *g, uint64_t n)
{
	const unsigned char *p = (const unsigned char *)g;
	uint64_t h = 1469598103934665603ULL;

	for (uint64_t i = 0; i < n * n * sizeof(double); i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void hot_spots(double *g, uint64_t n)
{
	/* Fixed-temperature sources (Dirichlet points), re-imposed after every step. */
	g[(n / 2) * n + n / 2] = 1000.0;
	g[(n / 2 + n / 16) * n + n / 2 - n / 16] = 800.0;
	g[(n / 2 - n / 32) * n + n / 2 + n / 20] = 600.0;
}

static void step(const double *src, double *dst, uint64_t n, struct state *s)
{
	const double k = 0.2;	/* alpha * dt / dx^2, stable below 0.25 */
	uint64_t r0 = s->r0 > 1 ? s->r0 - 1 : 1, r1 = s->r1 + 1 < n - 1 ? s->r1 + 1 : n - 1;
	uint64_t c0 = s->c0 > 1 ? s->c0 - 1 : 1, c1 = s->c1 + 1 < n - 1 ? s->c1 + 1 : n - 1;

	for (uint64_t r = r0; r < r1; r++)
		for (uint64_t c = c0; c < c1; c++) {
			const double *p = src + r * n + c;

			dst[r * n + c] = p[0] + k * (p[-1] + p[1] + p[-(long)n] + p[n] - 4 * p[0]);
		}
	hot_spots(dst, n);
	s->r0 = r0, s->r1 = r1, s->c0 = c0, s->c1 = c1;
}

int main(int argc, char **argv)
{
	const char *store = NULL;
	uint64_t n = 4096, steps = 2000, interval = 200;
	int quiet = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--store") && i + 1 < argc)
			store = argv[++i];
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
			interval = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--quiet"))
			quiet = 1;
		else {
			fprintf(stderr, "usage: heat --store PATH [--n N] [--steps S] [--interval-ms MS] [--quiet]\n");
			return 2;
		}
	}
	if (!store || n < 16 || n > 65536) {
		fprintf(stderr, "heat: --store is required and --n must be in 16..65536\n");
		return 2;
	}

	size_t grid = (n * n * sizeof(double) + 4095) & ~(size_t)4095;
	struct state *s = map_pages(4096);
	double *g[2] = { map_pages(grid), map_pages(grid) };

	if (!s || !g[0] || !g[1]) {
		fprintf(stderr, "heat: out of memory for a %llu x %llu plate\n",
			(unsigned long long)n, (unsigned long long)n);
		return 1;
	}

	ckpt_config_t cfg;
	ckpt_t *c;
	int rc;

	ckpt_config_init(&cfg);
	cfg.interval_ms = interval;
	/* An existing empty file or zeroed device becomes a store too (never one that holds
	 * a file system or other data: that is refused, see ckpt_open). */
	cfg.flags |= CKPT_CFG_CREATE;
	rc = ckpt_open(store, &cfg, &c);
	if (rc < 0) {
		fprintf(stderr, "heat: cannot open store %s: %s (%s)\n", store, strerror(-rc),
			ckpt_open_error());
		return 1;
	}
	if ((rc = ckpt_register(c, "heat.state", s, 4096)) < 0 ||
	    (rc = ckpt_register(c, "heat.grid0", g[0], grid)) < 0 ||
	    (rc = ckpt_register(c, "heat.grid1", g[1], grid)) < 0) {
		fprintf(stderr, "heat: register: %s (%s)\n", strerror(-rc), ckpt_last_error(c));
		return 1;
	}

	rc = ckpt_restore(c);
	if (rc == 0) {
		if (s->n != n) {
			fprintf(stderr, "heat: the store holds a %llu plate, not %llu\n",
				(unsigned long long)s->n, (unsigned long long)n);
			return 1;
		}
		printf("resumed at step %llu (epoch %llu)\n", (unsigned long long)s->step,
		       (unsigned long long)ckpt_epoch(c));
	} else if (rc == -ENOENT) {
		s->n = n;
		s->step = 0;
		s->cur = 0;
		/* The box around the hot spots; it grows by one cell a side per step. */
		s->r0 = n / 2 - n / 32, s->r1 = n / 2 + n / 16 + 1;
		s->c0 = n / 2 - n / 16, s->c1 = n / 2 + n / 20 + 1;
		hot_spots(g[0], n);
		hot_spots(g[1], n);
		printf("starting: %llu x %llu plate (%zu MiB of state), %llu steps\n",
		       (unsigned long long)n, (unsigned long long)n, 2 * grid >> 20,
		       (unsigned long long)steps);
	} else {
		fprintf(stderr, "heat: restore failed: %s (%s)\n", strerror(-rc), ckpt_last_error(c));
		return 1;
	}
	fflush(stdout);

	uint64_t last_report = now_ms();

	while (s->step < steps) {
		step(g[s->cur], g[s->cur ^ 1], n, s);
		s->cur ^= 1;
		s->step++;
		/* A consistent point: the step is complete and the state says so. */
		rc = ckpt_hook(c);
		if (rc < 0) {
			fprintf(stderr, "heat: checkpoint failed: %s (%s)\n", strerror(-rc),
				ckpt_last_error(c));
			return 1;
		}
		if (rc == 1 && !quiet) {
			struct ckpt_session_stats st;

			ckpt_get_stats(c, &st);
			printf("step %llu: checkpoint epoch %llu wrote %llu pages in %.2f ms\n",
			       (unsigned long long)s->step, (unsigned long long)st.epoch,
			       (unsigned long long)st.last_pages, st.last_ns / 1e6);
		} else if (!quiet && now_ms() - last_report >= 100) {
			printf("step %llu\n", (unsigned long long)s->step);
			last_report = now_ms();
		}
		fflush(stdout);
	}
	/* The final state is checkpointed too, so a restart after completion finishes at once. */
	rc = ckpt_checkpoint(c);
	if (rc < 0) {
		fprintf(stderr, "heat: final checkpoint failed: %s\n", strerror(-rc));
		return 1;
	}
	printf("result: steps=%llu checksum=%016llx\n", (unsigned long long)s->step,
	       (unsigned long long)checksum(g[s->cur], n));
	ckpt_close(c);
	return 0;
}

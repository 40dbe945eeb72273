// SPDX-License-Identifier: MIT
/*
 * stencil_mpi: a 2-D Jacobi heat stencil over an N x N grid split into blocks, one per rank (a
 * 2-D Cartesian decomposition), with halo exchange — checkpointed with libckpt-mpi, so the job
 * survives any rank being killed: relaunched, it resumes from the newest globally complete epoch
 * and ends with the same answer as an uninterrupted run.
 *
 *   mpirun -np 4 stencil_mpi --store '/scratch/stencil.%d.ckpt' [--shared DIR --shared-every K]
 *          [--n 512] [--steps 400] [--every 10 | --interval-ms 200]
 *
 * Prints, on rank 0, "answer <hex>": a hash of every rank's block in rank order.
 * Test options: --pid-dir DIR (each rank writes DIR/<rank>.pid once restored); --die-at-step S --die-rank R
 * (after step S's hook, once every rank's shared copy in flight is written, rank R SIGKILLs
 * itself); --sleep-us U (per step, to give a kill campaign time); --skew-us U (ranks sleep
 * different multiples of U per step: their clocks see a time trigger due at different steps);
 * --hooks-before-restore H (H calls of ckpt_mpi_hook between registering and restoring: each
 * due one must be skipped, not commit the fresh grid over the stored epoch); --late-region-at S
 * (a region registered at step S, see below).
 */
#include <ckpt/ckpt_mpi.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long argl(int argc, char **argv, const char *name, long def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return atol(argv[i + 1]);
	return def;
}

static const char *args(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return def;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

struct meta {
	uint64_t step;
	uint64_t magic;
};

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	int rank, size;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	const char *store = args(argc, argv, "--store", NULL);
	if (!store) {
		if (rank == 0)
			fprintf(stderr, "usage: stencil_mpi --store PATTERN(with %%d) [options]\n");
		MPI_Finalize();
		return 2;
	}
	long n = argl(argc, argv, "--n", 512), steps = argl(argc, argv, "--steps", 400);
	long die_step = argl(argc, argv, "--die-at-step", -1), die_rank = argl(argc, argv, "--die-rank", 0);
	long sleep_us = argl(argc, argv, "--sleep-us", 0), skew_us = argl(argc, argv, "--skew-us", 0);
	const char *piddir = args(argc, argv, "--pid-dir", NULL);

	int dims[2] = {0, 0}, periods[2] = {0, 0}, coords[2];
	MPI_Dims_create(size, 2, dims);
	MPI_Comm cart;
	MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
	MPI_Cart_coords(cart, rank, 2, coords);
	int up, down, left, right;
	MPI_Cart_shift(cart, 0, 1, &up, &down);
	MPI_Cart_shift(cart, 1, 1, &left, &right);
	long nx = n / dims[0], ny = n / dims[1];	/* block rows, columns (n divisible) */
	long ld = ny + 2;
	size_t bytes = (size_t)(nx + 2) * (size_t)ld * sizeof(double);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = (bytes + pg - 1) / pg * pg;
	double *g[2];
	for (int i = 0; i < 2; i++) {
		g[i] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g[i] == MAP_FAILED)
			MPI_Abort(MPI_COMM_WORLD, 1);
	}
	struct meta *meta = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ckpt_mpi_config_t cfg;
	ckpt_mpi_config_init(&cfg);
	cfg.base.every_n = (uint64_t)argl(argc, argv, "--every", 0);
	cfg.base.interval_ms = (uint64_t)argl(argc, argv, "--interval-ms", 0);
	cfg.shared_dir = args(argc, argv, "--shared", NULL);
	/* --late-region-at S: a region "late" (one page, counting steps; not part of the answer) is
	 * registered at step S, after some epochs are complete. A restore may then find an epoch
	 * without it (registered later again) or with it (registered right after): partial. */
	long late_at = argl(argc, argv, "--late-region-at", -1);
	uint64_t *late = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int late_on = 0;
	if (late_at >= 0)
		cfg.base.flags |= CKPT_CFG_PARTIAL_RESTORE;
	cfg.shared_every = (uint64_t)argl(argc, argv, "--shared-every", 1);
	ckpt_mpi_t *c;
	int r = ckpt_mpi_open(MPI_COMM_WORLD, store, &cfg, &c);
	if (r < 0) {
		fprintf(stderr, "rank %d: ckpt_mpi_open: %s: %s\n", rank, strerror(-r), ckpt_mpi_last_error(NULL));
		MPI_Finalize();
		return 3;
	}
	ckpt_mpi_register(c, "grid0", g[0], len);
	ckpt_mpi_register(c, "grid1", g[1], len);
	ckpt_mpi_register(c, "meta", meta, pg);
	long early = argl(argc, argv, "--hooks-before-restore", 0);
	if (early > 0) {
		long taken = 0, skipped = 0;
		for (long i = 0; i < early; i++) {
			r = ckpt_mpi_hook(c);
			taken += r == 1;
			skipped += r == -EAGAIN;
		}
		printf("rank %d: hooks before restore: %ld taken, %ld skipped\n", rank, taken, skipped);
	}
	r = ckpt_mpi_restore(c);
	if (r == 0) {
		printf("rank %d: restored epoch %llu step %llu from %s\n", rank,
		       (unsigned long long)ckpt_mpi_epoch(c), (unsigned long long)meta->step,
		       ckpt_mpi_restore_source(c));
		if (meta->magic != 0x57e9c11ull)
			MPI_Abort(MPI_COMM_WORLD, 4);
	} else if (r == -ENOENT) {
		printf("rank %d: fresh start\n", rank);
		memset(g[0], 0, len);
		memset(g[1], 0, len);
		meta->step = 0;
		meta->magic = 0x57e9c11ull;
	} else {
		printf("rank %d: ckpt_mpi_restore: %s: %s\n", rank, strerror(-r), ckpt_mpi_last_error(c));
		fflush(stdout);
		ckpt_mpi_close(c);
		MPI_Finalize();
		return 3;
	}
	fflush(stdout);
	if (piddir) {	/* once restored: a kill campaign's kills land in the computation */
		char p[4096];
		snprintf(p, sizeof(p), "%s/%d.pid", piddir, rank);
		FILE *f = fopen(p, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}

	if (late_at >= 0 && (long)meta->step >= late_at) {
		ckpt_mpi_register(c, "late", late, pg);
		late_on = 1;
	}
	MPI_Datatype col;
	MPI_Type_vector((int)nx, 1, (int)ld, MPI_DOUBLE, &col);
	MPI_Type_commit(&col);
	while ((long)meta->step < steps) {
		double *u = g[meta->step & 1], *v = g[(meta->step + 1) & 1];
#define U(i, j) u[(i) * ld + (j)]
#define V(i, j) v[(i) * ld + (j)]
		MPI_Sendrecv(&U(1, 1), (int)ny, MPI_DOUBLE, up, 0, &U(nx + 1, 1), (int)ny, MPI_DOUBLE, down, 0, cart, MPI_STATUS_IGNORE);
		MPI_Sendrecv(&U(nx, 1), (int)ny, MPI_DOUBLE, down, 1, &U(0, 1), (int)ny, MPI_DOUBLE, up, 1, cart, MPI_STATUS_IGNORE);
		MPI_Sendrecv(&U(1, 1), 1, col, left, 2, &U(1, ny + 1), 1, col, right, 2, cart, MPI_STATUS_IGNORE);
		MPI_Sendrecv(&U(1, ny), 1, col, right, 3, &U(1, 0), 1, col, left, 3, cart, MPI_STATUS_IGNORE);
		/* fixed boundary: the top edge of the global grid is hot */
		if (up == MPI_PROC_NULL)
			for (long j = 0; j < ld; j++)
				U(0, j) = 100.0;
		for (long i = 1; i <= nx; i++)
			for (long j = 1; j <= ny; j++)
				V(i, j) = 0.25 * (U(i - 1, j) + U(i + 1, j) + U(i, j - 1) + U(i, j + 1));
		meta->step++;
		if (late_at >= 0 && !late_on && (long)meta->step == late_at) {
			if (ckpt_mpi_register(c, "late", late, pg) < 0)
				MPI_Abort(MPI_COMM_WORLD, 5);
			late_on = 1;
		}
		if (late_on)
			late[0]++;
		if (sleep_us || skew_us)
			usleep((useconds_t)(sleep_us + skew_us * (rank * 7 % 5) * (long)(meta->step % 3)));
		r = ckpt_mpi_hook(c);
		if (r < 0 && rank == 0)
			fprintf(stderr, "checkpoint: %s: %s\n", strerror(-r), ckpt_mpi_last_error(c));
		if (r == 1 && rank == 0 && getenv("STENCIL_VERBOSE"))
			printf("epoch %llu at step %llu\n", (unsigned long long)ckpt_mpi_epoch(c),
			       (unsigned long long)meta->step);
		if (r == 1 && rank == 0)
			fflush(stdout);
		if ((long)meta->step == die_step) {
			/* A test's crash: after the shared copies in flight are written */
			ckpt_mpi_wait_shared(c);
			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == die_rank)
				raise(SIGKILL);
		}
	}
	double *u = g[meta->step & 1];
	uint64_t h = 1469598103934665603ull;
	for (long i = 1; i <= nx; i++)
		h = fnv(h, &U(i, 1), (size_t)ny * sizeof(double));
	uint64_t *all = rank == 0 ? malloc(sizeof(uint64_t) * (size_t)size) : NULL;
	MPI_Gather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		printf("answer %016llx steps %llu\n", (unsigned long long)fnv(1469598103934665603ull, all, sizeof(uint64_t) * (size_t)size),
		       (unsigned long long)meta->step);
		free(all);
	}
	MPI_Type_free(&col);
	ckpt_mpi_close(c);
	MPI_Comm_free(&cart);
	MPI_Finalize();
	return 0;
}

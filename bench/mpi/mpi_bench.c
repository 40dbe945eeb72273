// SPDX-License-Identifier: MIT
/*
 * mpi_bench: per-rank checkpoint time of libckpt-mpi against each rank writing the same state
 * with MPI-IO to one shared file (MPI_File_write_at_all + MPI_File_sync), in the same run,
 * interleaved, on the same storage. Every rank holds --mib MiB of state.
 *   - ckpt full: the first collective checkpoint (every page);
 *   - ckpt 1%: 1% of each rank's pages written, then a collective checkpoint ckpt_mpi_checkpoint,
 *     reported in parts (ckpt_mpi_get_stats):
 *       local commit: the rank's own checkpoint (its store's commit, durable), the slowest rank's;
 *       agreement:    the agreement's own cost (allreduce + the record's write), on the rank
 *                     that waited for nobody (the last to arrive: the smallest agreement time);
 *       collective:   the whole call, the slowest rank's (what the job waits for: the slowest
 *                     local commit, then the agreement);
 *     and the allreduce alone (every rank already there);
 *   - MPI-IO: the whole state, durable (MPI_File_sync), to a file in the same directory as the
 *     stores (like with like: disk against disk, RAM disk against RAM disk).
 * A repetition's time is the slowest rank's unless said otherwise. Prints one JSON object per
 * local level on rank 0 with the medians and the ratios local commit 1% / MPI-IO full (the
 * target, <= 1/20 = 0.05) and collective 1% / MPI-IO full.
 * With --dir2, a second local level (its own stores, MPI-IO file and copy of the state) is
 * measured in the same run: one JSON object per level, named by --local / --local2 (e.g. the
 * disk's file store and /dev/shm, a RAM disk as SCR's default cache).
 *   mpirun -np N mpi_bench --dir DIR [--local disk] [--dir2 /dev/shm/X --local2 shm] --mib 64
 *          [--reps 5] [--label openmpi]
 */
#include <ckpt/ckpt_mpi.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double slowest(double x)
{
	double m;
	MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	return m;
}

static double fastest(double x)
{
	double m;
	MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
	return m;
}

static const char *arg(int argc, char **argv, const char *n, const char *d)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], n))
			return argv[i + 1];
	return d;
}

#define MAXREP 32

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	int rank, np;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &np);
	const char *dir = arg(argc, argv, "--dir", NULL), *label = arg(argc, argv, "--label", "mpi");
	/* The local level: the store directory and what it is (a row each). --dir holds the MPI-IO
	 * file and the first level's stores; --dir2 (optional) a second local level's, measured in
	 * the same run against the same MPI-IO writes. */
	const char *ldir[2] = {dir, arg(argc, argv, "--dir2", NULL)};
	const char *lname[2] = {arg(argc, argv, "--local", "disk"), arg(argc, argv, "--local2", "shm")};
	int nl = ldir[1] ? 2 : 1;
	long mib = atol(arg(argc, argv, "--mib", "16"));
	int reps = atoi(arg(argc, argv, "--reps", "5"));
	if (!dir || mib <= 0 || reps < 1 || reps > MAXREP) {
		if (!rank)
			fprintf(stderr, "usage: mpi_bench --dir DIR [--local NAME] [--dir2 DIR --local2 NAME] "
					"--mib N [--reps 1..32] [--label L]\n");
		MPI_Finalize();
		return 2;
	}
	size_t len = (size_t)mib << 20, pg = (size_t)sysconf(_SC_PAGESIZE), pages = len / pg;
	/* One copy of the state per local level (a region belongs to one session), the same bytes
	 * and the same 1% written in each. */
	char *state[2];
	ckpt_mpi_t *c[2];
	for (int l = 0; l < nl; l++) {
		state[l] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (state[l] == MAP_FAILED)
			MPI_Abort(MPI_COMM_WORLD, 1);
		for (size_t i = 0; i < len; i += 8)
			*(uint64_t *)(state[l] + i) = i * 2654435761u + (uint64_t)rank;
		char pat[4096];
		snprintf(pat, sizeof(pat), "%s/ckpt.%%d", ldir[l]);
		ckpt_mpi_config_t cfg;
		ckpt_mpi_config_init(&cfg);
		cfg.base.flags |= CKPT_CFG_FORMAT;
		int r = ckpt_mpi_open(MPI_COMM_WORLD, pat, &cfg, &c[l]);
		if (r < 0) {
			fprintf(stderr, "rank %d: ckpt_mpi_open: %s\n", rank, ckpt_mpi_last_error(NULL));
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		if ((r = ckpt_mpi_register(c[l], "state", state[l], len)) < 0)
			MPI_Abort(MPI_COMM_WORLD, 1);
	}
	/* Each level's MPI-IO file beside its stores. */
	MPI_File fh[2];
	for (int l = 0; l < nl; l++) {
		char shared[4096];
		snprintf(shared, sizeof(shared), "%s/mpiio.dat", ldir[l]);
		if (MPI_File_open(MPI_COMM_WORLD, shared, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL,
				  &fh[l]) != MPI_SUCCESS)
			MPI_Abort(MPI_COMM_WORLD, 1);
	}

	double full[2], incr[2][MAXREP], local[2][MAXREP], agree[2][MAXREP], bare[MAXREP], mpiio[2][MAXREP], t;
	for (int l = 0; l < nl; l++) {
		MPI_Barrier(MPI_COMM_WORLD);
		t = now_ms();
		if (ckpt_mpi_checkpoint(c[l]) < 0)
			MPI_Abort(MPI_COMM_WORLD, 1);
		full[l] = slowest(now_ms() - t);
	}
	struct ckpt_mpi_stats st;
	size_t dirty = pages / 100 ? pages / 100 : 1;
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)rank;
	for (int i = 0; i < reps; i++) {
		/* MPI-IO: the whole state, durable, on each level's storage */
		for (int l = 0; l < nl; l++) {
			MPI_Barrier(MPI_COMM_WORLD);
			t = now_ms();
			MPI_Offset off = (MPI_Offset)rank * (MPI_Offset)len;
			for (size_t done = 0; done < len;) {
				size_t n = len - done > (1u << 30) ? (1u << 30) : len - done;
				MPI_File_write_at_all(fh[l], off + (MPI_Offset)done, state[l] + done, (int)n, MPI_BYTE,
						      MPI_STATUS_IGNORE);
				done += n;
			}
			MPI_File_sync(fh[l]);
			mpiio[l][i] = slowest(now_ms() - t);
		}
		/* 1% of the pages written (the same pages in every level's copy) */
		uint64_t s0 = seed;
		for (int l = 0; l < nl; l++) {
			seed = s0;
			for (size_t k = 0; k < dirty; k++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				state[l][(seed >> 17) % pages * pg + (size_t)i] += 1;
			}
		}
		/* then a collective checkpoint on each local level */
		for (int l = 0; l < nl; l++) {
			MPI_Barrier(MPI_COMM_WORLD);
			t = now_ms();
			if (ckpt_mpi_checkpoint(c[l]) < 0)
				MPI_Abort(MPI_COMM_WORLD, 1);
			double w = now_ms() - t;
			incr[l][i] = slowest(w);
			ckpt_mpi_get_stats(c[l], &st);
			if (getenv("MPI_BENCH_DEBUG"))
				fprintf(stderr, "rank %d level %d rep %d: wall %.2f local %.2f agree %.2f\n", rank, l, i, w,
					(double)st.last_local_ns / 1e6, (double)st.last_agree_ns / 1e6);
			local[l][i] = slowest((double)st.last_local_ns / 1e6);
			agree[l][i] = fastest((double)st.last_agree_ns / 1e6);
		}
		/* the agreement's message alone: the same allreduce with every rank already there */
		int one = 0, all;
		MPI_Barrier(MPI_COMM_WORLD);
		t = now_ms();
		MPI_Allreduce(&one, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
		bare[i] = slowest(now_ms() - t);
	}
	double mb = median(bare, reps);
	for (int l = 0; l < nl; l++) {
		double mf = full[l], mi = median(incr[l], reps), ml = median(local[l], reps),
		       ma = median(agree[l], reps), mm = median(mpiio[l], reps);
		if (!rank)
			printf("{\"mpi\": \"%s\", \"local\": \"%s\", \"ranks\": %d, \"mib_per_rank\": %ld, \"reps\": %d, "
			       "\"ckpt_full_ms\": %.3f, \"ckpt_1pct_ms\": %.3f, \"ckpt_1pct_local_ms\": %.3f, "
			       "\"agreement_ms\": %.3f, \"allreduce_ms\": %.3f, \"mpiio_full_ms\": %.3f, "
			       "\"ratio_local_1pct_over_mpiio\": %.4f, \"ratio_1pct_over_mpiio\": %.4f, "
			       "\"ratio_full_over_mpiio\": %.3f}\n",
			       label, lname[l], np, mib, reps, mf, mi, ml, ma, mb, mm, ml / mm, mi / mm, mf / mm);
		MPI_File_close(&fh[l]);
	}
	for (int l = 0; l < nl; l++)
		ckpt_mpi_close(c[l]);
	MPI_Finalize();
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Exactness against a full-copy oracle: over many epochs, random writes (every page, none,
 * random subsets), then COLLECT; every page whose bytes differ from the oracle's copy must be
 * reported (no miss), and on 4 KiB-mapped memory nothing else may be (no over-report). Then
 * threads writing while another thread collects: after the writers stop and a last COLLECT,
 * the oracle, updated only from reported pages, must equal the memory byte for byte.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define NP 1024

struct oracle {
	char *mem, *copy;
	unsigned char *written;	/* pages the test wrote this epoch */
	size_t pages;
};

static void oracle_init(struct __test_metadata *_metadata, struct oracle *o, size_t pages)
{
	o->pages = pages;
	o->mem = ck_map(pages * PAGE, PAGE);
	ASSERT_NE(NULL, o->mem);
	/* 4 KiB mappings: every reported page must be a written one. */
	ASSERT_EQ(0, madvise(o->mem, pages * PAGE, MADV_NOHUGEPAGE));
	o->copy = malloc(pages * PAGE);
	o->written = calloc(pages, 1);
	ASSERT_NE(NULL, o->copy);
	for (size_t i = 0; i < pages * PAGE; i += 64)
		o->mem[i] = (char)i;
	memcpy(o->copy, o->mem, pages * PAGE);
}

static void oracle_free(struct oracle *o)
{
	munmap(o->mem, o->pages * PAGE);
	free(o->copy);
	free(o->written);
}

/* One epoch of writes: pattern 0 none, 1 all, else a random subset of density 1/pattern. */
static void epoch_writes(struct oracle *o, uint64_t *seed, unsigned int pattern)
{
	memset(o->written, 0, o->pages);
	if (!pattern)
		return;
	for (size_t p = 0; p < o->pages; p++) {
		if (pattern != 1 && ck_rand(seed) % pattern)
			continue;
		size_t off = ck_rand(seed) % PAGE;

		o->mem[p * PAGE + off] += 1 + ck_rand(seed) % 250;	/* always changes */
		o->written[p] = 1;
	}
}

/* Check a report against the oracle, then update the oracle from it. */
static void check_report(struct __test_metadata *_metadata, struct oracle *o,
			 const unsigned char *reported, int exact)
{
	for (size_t p = 0; p < o->pages; p++) {
		int changed = memcmp(o->mem + p * PAGE, o->copy + p * PAGE, PAGE) != 0;

		if (changed)
			ASSERT_TRUE(reported[p]) TH_LOG("page %zu changed, not reported", p);
		if (exact)
			ASSERT_EQ(o->written[p], reported[p]) TH_LOG("page %zu over-reported", p);
		if (reported[p])
			memcpy(o->copy + p * PAGE, o->mem + p * PAGE, PAGE);
	}
	ASSERT_EQ(0, memcmp(o->mem, o->copy, o->pages * PAGE));
}

static const unsigned int patterns[] = { 0, 1, 2, 10, 100, 3, 0, 1000, 1, 7 };

TEST(random_epochs_array)
{
	struct oracle o;
	uint64_t seed = 0x1234567, *out = malloc(NP * 8);
	unsigned char rep[NP];
	int fd = ck_open();
	long id;

	ASSERT_LE(0, fd);
	oracle_init(_metadata, &o, NP);
	id = ck_register(fd, o.mem, NP * PAGE, 0);
	ASSERT_LT(0, id);
	for (int e = 0; e < 300; e++) {
		unsigned int pat = patterns[ck_rand(&seed) % 10];
		long n;

		epoch_writes(&o, &seed, pat);
		/* Collect in pieces of a random size: the same pages, however the buffer is cut. */
		memset(rep, 0, sizeof(rep));
		size_t piece = 1 + ck_rand(&seed) % NP;
		struct ckpt_collect c;

		do {
			n = ck_collect(fd, id, out, piece, 0, &c);
			ASSERT_LE(0, n);
			for (long i = 0; i < n; i++) {
				size_t p = (out[i] - (uintptr_t)o.mem) / PAGE;

				ASSERT_LT(p, NP);
				ASSERT_EQ(0, rep[p]);	/* each page once per epoch */
				ASSERT_TRUE(i == 0 || out[i] > out[i - 1]);
				rep[p] = 1;
			}
		} while (c.remaining);
		check_report(_metadata, &o, rep, 1);
	}
	close(fd);
	oracle_free(&o);
	free(out);
}

TEST(random_epochs_bitmap)
{
	struct oracle o;
	uint64_t seed = 0xabcdef, bm[NP / 64];
	unsigned char rep[NP];
	int fd = ck_open();
	long id;

	ASSERT_LE(0, fd);
	oracle_init(_metadata, &o, NP);
	id = ck_register(fd, o.mem, NP * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, id);
	ASSERT_EQ(NP, ck_collect_bitmap(fd, id, bm, NP / 64));
	for (int e = 0; e < 300; e++) {
		long n;

		epoch_writes(&o, &seed, patterns[ck_rand(&seed) % 10]);
		n = ck_collect_bitmap(fd, id, bm, NP / 64);
		ASSERT_LE(0, n);
		long cnt = 0;

		for (size_t p = 0; p < NP; p++) {
			rep[p] = (bm[p / 64] >> (p % 64)) & 1;
			cnt += rep[p];
		}
		ASSERT_EQ(cnt, n);
		check_report(_metadata, &o, rep, 1);
	}
	close(fd);
	oracle_free(&o);
}

/* Two sessions on the same memory (a library and a tool, say) do not steal each other's log. */
TEST(two_sessions_same_range)
{
	struct oracle o;
	uint64_t seed = 77, *out = malloc(NP * 8);
	unsigned char rep[2][NP];
	int fd[2] = { ck_open(), ck_open() };
	long id[2];

	ASSERT_LE(0, fd[0]);
	ASSERT_LE(0, fd[1]);
	oracle_init(_metadata, &o, NP);
	char *copy2 = malloc(NP * PAGE);

	memcpy(copy2, o.mem, NP * PAGE);
	for (int s = 0; s < 2; s++) {
		id[s] = ck_register(fd[s], o.mem, NP * PAGE, 0);
		ASSERT_LT(0, id[s]);
	}
	for (int e = 0; e < 100; e++) {
		epoch_writes(&o, &seed, patterns[ck_rand(&seed) % 10]);
		/* Session 1 collects only every third epoch: its report accumulates. */
		for (int s = 0; s < 2; s++) {
			if (s == 1 && e % 3)
				continue;
			long n = ck_collect(fd[s], id[s], out, NP, 0, NULL);

			ASSERT_LE(0, n);
			memset(rep[s], 0, NP);
			for (long i = 0; i < n; i++)
				rep[s][(out[i] - (uintptr_t)o.mem) / PAGE] = 1;
		}
		check_report(_metadata, &o, rep[0], 1);
		if (e % 3 == 0) {
			for (size_t p = 0; p < NP; p++) {
				if (memcmp(o.mem + p * PAGE, copy2 + p * PAGE, PAGE))
					ASSERT_TRUE(rep[1][p]) TH_LOG("session 2 missed page %zu", p);
				if (rep[1][p])
					memcpy(copy2 + p * PAGE, o.mem + p * PAGE, PAGE);
			}
		}
	}
	close(fd[0]);
	close(fd[1]);
	oracle_free(&o);
	free(copy2);
	free(out);
}

/* Writers race the collector. */
struct race {
	char *mem;
	size_t pages;
	atomic_int stop;
	atomic_ulong writes;
	uint64_t seed;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	uint64_t seed = __atomic_add_fetch(&r->seed, 0x9e3779b97f4a7c15ULL, __ATOMIC_RELAXED);
	unsigned long n = 0;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		size_t p = ck_rand(&seed) % r->pages;
		uint64_t *w = (uint64_t *)(r->mem + p * PAGE) + ck_rand(&seed) % (PAGE / 8);

		/* An increment: the value always changes, and no two writers lose each other's. */
		__atomic_add_fetch(w, 1, __ATOMIC_RELAXED);
		n++;
	}
	atomic_fetch_add(&r->writes, n);
	return NULL;
}

/*
 * COLLECT into @out: the page array, or with @bitmap the bitmap mode (its pages written to
 * @out as addresses). The two modes flush the TLB through different paths (kmod/pgtable.c).
 */
static long race_collect(int fd, long id, struct race *r, uint64_t *out, int bitmap)
{
	uint64_t bm[(r->pages + 63) / 64];
	long n, k = 0;

	if (!bitmap)
		return ck_collect(fd, id, out, r->pages, 0, NULL);
	n = ck_collect_bitmap(fd, id, bm, (r->pages + 63) / 64);
	if (n < 0)
		return n;
	for (size_t p = 0; p < r->pages; p++)
		if ((bm[p / 64] >> (p % 64)) & 1)
			out[k++] = (uintptr_t)r->mem + p * PAGE;
	return k == n ? n : -EPROTO;
}

static void race_run(struct __test_metadata *_metadata, size_t pages, int threads,
		     double seconds, int thp, int bitmap)
{
	struct race r = { .pages = pages, .seed = 42 };
	pthread_t th[16];
	uint64_t *out = malloc(pages * 8);
	char *copy = malloc(pages * PAGE);
	int fd = ck_open();
	long id, epochs = 0;
	struct timespec t0, t;

	ASSERT_LE(0, fd);
	r.mem = ck_map(pages * PAGE, 2 << 20);
	ASSERT_NE(NULL, r.mem);
	ASSERT_EQ(0, madvise(r.mem, pages * PAGE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
	memset(r.mem, 0, pages * PAGE);
	memcpy(copy, r.mem, pages * PAGE);
	id = ck_register(fd, r.mem, pages * PAGE, 0);
	ASSERT_LT(0, id);
	for (int i = 0; i < threads; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, writer, &r));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		long n = race_collect(fd, id, &r, out, bitmap);

		ASSERT_LE(0, n);
		/* Copy what was reported; a racing write may tear the copy: the next epoch fixes it. */
		for (long i = 0; i < n; i++)
			memcpy(copy + (out[i] - (uintptr_t)r.mem), (void *)(uintptr_t)out[i], PAGE);
		epochs++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	/* The last epoch: everything written after the previous COLLECT. */
	long n = race_collect(fd, id, &r, out, bitmap);

	ASSERT_LE(0, n);
	for (long i = 0; i < n; i++)
		memcpy(copy + (out[i] - (uintptr_t)r.mem), (void *)(uintptr_t)out[i], PAGE);
	for (size_t p = 0; p < pages; p++) {
		int same = !memcmp(copy + p * PAGE, r.mem + p * PAGE, PAGE);

		ASSERT_TRUE(same) TH_LOG("page %zu: a write was lost", p);
	}
	TH_LOG("%ld epochs, %lu writes", epochs, atomic_load(&r.writes));
	ASSERT_LT(10, epochs);
	close(fd);
	munmap(r.mem, pages * PAGE);
	free(copy);
	free(out);
}

TEST(threads_race_collect)
{
	race_run(_metadata, 256, 3, 4.0, 0, 0);
}

TEST(threads_race_collect_thp)
{
	race_run(_metadata, 1024, 3, 4.0, 1, 0);
}

TEST(threads_race_collect_bitmap)
{
	race_run(_metadata, 256, 3, 3.0, 0, 1);
}

/* tlb_flush_pages=0: every COLLECT takes the full-flush path instead of the per-page one. */
TEST(threads_race_collect_full_flush)
{
	const char *param = "/sys/module/ckpt/parameters/tlb_flush_pages";
	char old[32] = "";
	FILE *f = fopen(param, "r");

	ASSERT_NE(NULL, f) TH_LOG("%s: %s", param, strerror(errno));
	ASSERT_NE(NULL, fgets(old, sizeof(old), f));
	fclose(f);
	f = fopen(param, "w");
	ASSERT_NE(NULL, f);
	fputs("0\n", f);
	ASSERT_EQ(0, fclose(f));
	race_run(_metadata, 256, 3, 3.0, 0, 0);
	f = fopen(param, "w");
	ASSERT_NE(NULL, f);
	fputs(old, f);
	ASSERT_EQ(0, fclose(f));
}

TEST_HARNESS_MAIN

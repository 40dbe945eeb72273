// SPDX-License-Identifier: GPL-2.0
/*
 * Held pages (CKPT_COLLECT_HOLD, CKPT_IOC_RELEASE): the copy-before-write that asynchronous
 * checkpoints rely on. A page written after a HOLD COLLECT must come back from RELEASE with
 * its COLLECT-time contents; a page changed without a fault must count as lost.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include "track_util.h"
#include "kselftest_harness.h"

#define NP 64

static long ck_collect_hold(int fd, uint64_t id, uint64_t *buf, size_t n)
{
	return ck_collect(fd, id, buf, n, CKPT_COLLECT_HOLD, NULL);
}

/* RELEASE into @addrs/@data (room for @max); returns count or -errno, @r filled. */
static long ck_release(int fd, uint64_t id, uint64_t flags, uint64_t *addrs, void *data,
		       size_t max, struct ckpt_release *r)
{
	*r = (struct ckpt_release){ .id = id, .flags = flags, .addrs = (uintptr_t)addrs,
				    .data = (uintptr_t)data, .max = max };
	int e = ck_ioctl(fd, CKPT_IOC_RELEASE, r);

	return e ? e : (long)r->count;
}

static void fill(char *m, size_t pages, int v)
{
	for (size_t p = 0; p < pages; p++)
		memset(m + p * PAGE, v + (int)p, PAGE);
}

FIXTURE(hold) {
	int fd;
	long id;
	char *m;
	uint64_t addrs[NP];
	char *data;
};

FIXTURE_SETUP(hold)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int probe = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, probe);
	ASSERT_EQ(0, ck_ioctl(probe, CKPT_IOC_API, &a));
	close(probe);
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	if (!(a.features & CKPT_FEATURE_HOLD))
		SKIP(return, "module without CKPT_FEATURE_HOLD");
	self->m = mmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->m);
	ASSERT_EQ(0, madvise(self->m, NP * PAGE, MADV_NOHUGEPAGE));
	self->data = malloc(NP * PAGE);
	ASSERT_NE(NULL, self->data);
	fill(self->m, NP, 'A');
	self->id = ck_register(self->fd, self->m, NP * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, self->id);
}

FIXTURE_TEARDOWN(hold)
{
	close(self->fd);
	munmap(self->m, NP * PAGE);
	free(self->data);
}

/* Written held pages come back with their COLLECT-time bytes; unwritten ones do not. */
TEST_F(hold, copies_before_write)
{
	struct ckpt_release r;

	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	fill(self->m, NP / 2, 'a');	/* pages 0..31 change */
	ASSERT_EQ(NP / 2, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs,
				     self->data, NP, &r));
	EXPECT_EQ(0, r.remaining);
	EXPECT_EQ(0, r.lost);
	for (int i = 0; i < NP / 2; i++) {
		size_t p = (self->addrs[i] - (uintptr_t)self->m) / PAGE;
		char want[PAGE];

		ASSERT_LT(p, NP / 2);
		memset(want, 'A' + (int)p, PAGE);
		ASSERT_EQ(0, memcmp(self->data + i * PAGE, want, PAGE)) TH_LOG("page %zu", p);
	}
	/* The writes are logged as usual for the next checkpoint. */
	ASSERT_EQ(NP / 2, ck_collect(self->fd, self->id, self->addrs, NP, 0, NULL));
}

/* A small buffer drains over several calls; after END nothing more is copied. */
TEST_F(hold, drains_in_parts_and_end_stops_copies)
{
	struct ckpt_release r;
	long total = 0, n;

	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	fill(self->m, NP, 'b');
	ASSERT_EQ(5, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs, self->data, 5,
				&r));
	EXPECT_EQ(NP - 5, r.remaining);
	total = 5;
	while ((n = ck_release(self->fd, 0, 0, self->addrs, self->data, 7, &r)) > 0)
		total += n;
	ASSERT_EQ(0, n);
	EXPECT_EQ(NP, total);
	fill(self->m, NP, 'c');	/* the hold ended: no copies */
	ASSERT_EQ(0, ck_release(self->fd, self->id, 0, self->addrs, self->data, NP, &r));
	EXPECT_EQ(0, r.remaining);
}

/* A copy left untaken after END is replaced by the next hold's copy of that page. */
TEST_F(hold, untaken_copy_is_replaced)
{
	struct ckpt_release r;
	char want[PAGE];

	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	self->m[0] = 'x';	/* copy of page 0 as 'A' */
	ASSERT_EQ(0, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs, self->data, 0,
				&r));
	EXPECT_EQ(1, r.remaining);
	ASSERT_EQ(1, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	memcpy(want, self->m, PAGE);
	self->m[1] = 'y';	/* copy of page 0 as it is now */
	ASSERT_EQ(1, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs, self->data, NP,
				&r));
	EXPECT_EQ(0, r.remaining);
	EXPECT_EQ((uintptr_t)self->m, self->addrs[0]);
	EXPECT_EQ(0, memcmp(self->data, want, PAGE));
}

/* A held page changed without a write fault is reported lost, and END resets the count. */
TEST_F(hold, dontneed_is_lost)
{
	struct ckpt_release r;

	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	ASSERT_EQ(0, madvise(self->m + 3 * PAGE, 2 * PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs, self->data, NP,
				&r));
	EXPECT_EQ(2, r.lost);
	ASSERT_EQ(0, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs, self->data, NP,
				&r));
	EXPECT_EQ(0, r.lost);
}

/* Copies still held at UNREGISTER or close are freed (the VM harness checks for leaks/oopses). */
TEST_F(hold, unregister_and_close_with_copies)
{
	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	fill(self->m, NP, 'd');
	ASSERT_EQ(0, ck_unregister(self->fd, self->id));
	self->id = ck_register(self->fd, self->m, NP * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, self->id);
	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	fill(self->m, NP, 'e');
}

TEST_F(hold, bad_input)
{
	struct ckpt_release r = { .id = self->id, .reserved = { 1 } };
	uint64_t bm[1];

	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_RELEASE, &r));
	EXPECT_EQ(-EINVAL, ck_release(self->fd, self->id, 1ULL << 9, NULL, NULL, 0, &r));
	EXPECT_EQ(-ENOENT, ck_release(self->fd, self->id + 100, 0, NULL, NULL, 0, &r));
	EXPECT_EQ(-EINVAL, ck_collect(self->fd, self->id, bm, 1, CKPT_COLLECT_HOLD | CKPT_COLLECT_BITMAP,
				      NULL));
	EXPECT_EQ(-EINVAL, ck_collect(self->fd, self->id, self->addrs, NP,
				      CKPT_COLLECT_HOLD | CKPT_COLLECT_PEEK, NULL));
	/* A copy the caller cannot receive stays in the module. */
	ASSERT_EQ(NP, ck_collect_hold(self->fd, self->id, self->addrs, NP));
	self->m[0] = 1;
	EXPECT_EQ(-EFAULT, ck_release(self->fd, self->id, CKPT_RELEASE_END, self->addrs,
				      (void *)8, NP, &r));
	ASSERT_EQ(1, ck_release(self->fd, self->id, 0, self->addrs, self->data, NP, &r));
	EXPECT_EQ((uintptr_t)self->m, self->addrs[0]);
}

/*
 * Writers race the reader of held pages, as in an asynchronous checkpoint: the snapshot read
 * from memory, patched with RELEASE's copies, must equal memory as it was at the COLLECT.
 */
struct race {
	char *m;
	atomic_int stop;
	atomic_ulong writes;
	uint64_t seed;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	uint64_t seed = __atomic_add_fetch(&r->seed, 0x9e3779b97f4a7c15ULL, __ATOMIC_RELAXED);

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t *w = (uint64_t *)(r->m + (seed >> 33) % NP * PAGE) + (seed >> 13) % (PAGE / 8);

		__atomic_add_fetch(w, 1, __ATOMIC_RELAXED);
		atomic_fetch_add_explicit(&r->writes, 1, memory_order_relaxed);
	}
	return NULL;
}

/* 50 rounds of three writers: past the harness's 30 s under slub_debug/page_poison (vm/run). */
TEST_F_TIMEOUT(hold, threads_race_async_snapshot, 120)
{
	char *oracle = malloc(NP * PAGE), *snap = malloc(NP * PAGE);
	struct race rc = { .m = self->m, .seed = 7 };
	pthread_t th[3];
	long copied = 0;

	ASSERT_NE(NULL, oracle);
	ASSERT_NE(NULL, snap);
	for (int round = 0; round < 50; round++) {
		struct ckpt_release r;
		long n, got = 0;

		/* Quiesced: the COLLECT is the snapshot instant. */
		memcpy(oracle, self->m, NP * PAGE);
		n = ck_collect_hold(self->fd, self->id, self->addrs, NP);
		ASSERT_LE(0, n);
		atomic_store(&rc.stop, 0);
		for (int i = 0; i < 3; i++)
			ASSERT_EQ(0, pthread_create(&th[i], NULL, writer, &rc));
		/*
		 * The "persister": read what was collected while the writers run, letting them
		 * make progress between pages so that reads and writes of held pages overlap.
		 */
		for (long i = 0; i < n; i++) {
			size_t off = self->addrs[i] - (uintptr_t)self->m;
			unsigned long w0 = atomic_load(&rc.writes);

			for (int spin = 0; spin < 1000000 && atomic_load(&rc.writes) < w0 + 20; spin++)
				sched_yield();
			memcpy(snap + off, self->m + off, PAGE);
		}
		for (uint64_t flags = CKPT_RELEASE_END;; flags = 0) {
			uint64_t a[8];
			char d[8 * PAGE];

			long k = ck_release(self->fd, self->id, flags, a, d, 8, &r);

			ASSERT_LE(0, k);
			if (flags)
				ASSERT_EQ(0, r.lost);
			for (long i = 0; i < k; i++)
				memcpy(snap + (a[i] - (uintptr_t)self->m), d + i * PAGE, PAGE);
			got += k;
			if (!r.remaining)
				break;
		}
		atomic_store(&rc.stop, 1);
		for (int i = 0; i < 3; i++)
			pthread_join(th[i], NULL);
		for (long i = 0; i < n; i++) {
			size_t off = self->addrs[i] - (uintptr_t)self->m;

			ASSERT_EQ(0, memcmp(snap + off, oracle + off, PAGE))
				TH_LOG("round %d page %zu: not the COLLECT-time contents", round, off / PAGE);
		}
		copied += got;
	}
	TH_LOG("%ld pages copied before a write over 50 rounds", copied);
	/* Without concurrent writes to held pages the test proves nothing. */
	ASSERT_LT(0, copied);
	free(oracle);
	free(snap);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Races on held pages (kmod/hold.c, issue 15 "Memory safety"): RELEASE moving copies out while
 * other threads fault on held pages of the same region, with RELEASE's data buffer inside the
 * region (its copy_to_user faults on held pages itself) and outside it; UNREGISTER, close and
 * munmap while threads write held pages.
 *
 * Every word the program writes is a tag: TAG_MAGIC in the top 16 bits, the page index in the
 * next 16. A copy handed back by RELEASE that holds anything else is memory the program never
 * wrote (a freed page, page poison 0xaa..., another user's data). The module before the fix
 * copied a page out of r->copies without owning it while a fault replaced and freed it: the
 * copies came back with poison under page_poison=1, and "BUG: Bad page state" (double free)
 * showed in the kernel log after some rounds, which fails the run (tests/vm/run-all).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include "track_util.h"
#include "kselftest_harness.h"

#define NP 64		/* pages the writers write */
#define ND 8		/* pages of RELEASE's data buffer (inside the region in one variant) */
#define TAG_MAGIC 0xc7e5ULL
#define TAG(p, v) ((TAG_MAGIC << 48) | ((uint64_t)(p) << 32) | ((v) & 0xffffffffULL))

static long ck_release(int fd, uint64_t id, uint64_t flags, uint64_t *addrs, void *data,
		       size_t max, struct ckpt_release *r)
{
	*r = (struct ckpt_release){ .id = id, .flags = flags, .addrs = (uintptr_t)addrs,
				    .data = (uintptr_t)data, .max = max };
	int e = ck_ioctl(fd, CKPT_IOC_RELEASE, r);

	return e ? e : (long)r->count;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct ctx {
	char *m;		/* the region: NP + ND pages */
	atomic_int stop;
	atomic_ulong writes;
	int nthreads;
	pthread_t th[4];
};

static void *writer(void *arg)
{
	struct ctx *c = arg;
	uint64_t seed = (uint64_t)pthread_self() | 1;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t x = ck_rand(&seed);
		unsigned int p = x % NP;
		uint64_t *w = (uint64_t *)(c->m + p * PAGE) + (x >> 20) % (PAGE / 8);

		__atomic_store_n(w, TAG(p, x >> 32), __ATOMIC_RELAXED);
		atomic_fetch_add_explicit(&c->writes, 1, memory_order_relaxed);
	}
	return NULL;
}

static void start_writers(struct ctx *c, int n)
{
	atomic_store(&c->stop, 0);
	c->nthreads = n;
	for (int i = 0; i < n; i++)
		pthread_create(&c->th[i], NULL, writer, c);
}

static void stop_writers(struct ctx *c)
{
	atomic_store(&c->stop, 1);
	for (int i = 0; i < c->nthreads; i++)
		pthread_join(c->th[i], NULL);
	c->nthreads = 0;
}

static void fill_tags(char *m, unsigned int first, unsigned int n)
{
	for (unsigned int p = first; p < first + n; p++)
		for (size_t i = 0; i < PAGE / 8; i++)
			((uint64_t *)(m + p * PAGE))[i] = TAG(p, i);
}

/*
 * Is @d a page the program could have had at page @p of the region? Pages below NP hold only
 * their own tags; the data pages hold tags of any page (RELEASE wrote copies into them).
 * Returns the index of the first bad word, or -1.
 */
static long bad_word(const char *d, unsigned int p)
{
	const uint64_t *w = (const uint64_t *)d;

	for (size_t i = 0; i < PAGE / 8; i++) {
		unsigned int tp = (w[i] >> 32) & 0xffff;

		if (w[i] >> 48 != TAG_MAGIC || tp >= NP + ND || (p < NP && tp != p))
			return (long)i;
	}
	return -1;
}

FIXTURE(hr) {
	int fd;
	long id;
	struct ctx c;
	uint64_t addrs[NP + ND];
	char *outside;
};

FIXTURE_SETUP(hr)
{
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	self->c.m = ck_map((NP + ND) * PAGE, PAGE);
	ASSERT_NE(NULL, self->c.m);
	ASSERT_EQ(0, madvise(self->c.m, (NP + ND) * PAGE, MADV_NOHUGEPAGE));
	fill_tags(self->c.m, 0, NP + ND);
	self->outside = ck_map(ND * PAGE, PAGE);
	ASSERT_NE(NULL, self->outside);
	self->id = ck_register(self->fd, self->c.m, (NP + ND) * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, self->id);
}

FIXTURE_TEARDOWN(hr)
{
	if (self->c.nthreads)
		stop_writers(&self->c);
	close(self->fd);
	munmap(self->c.m, (NP + ND) * PAGE);
	munmap(self->outside, ND * PAGE);
}

/*
 * Writers fault on held pages while RELEASE takes copies in small batches and COLLECT holds
 * the written pages again before END (so a fault replaces a copy RELEASE may be taking).
 */
static void release_race(struct __test_metadata *_metadata, FIXTURE_DATA(hr) *self,
			 char *data, double seconds)
{
	uint64_t a[ND];
	long rounds = 0, copies = 0;
	double end = now() + seconds;

	start_writers(&self->c, 2);
	while (now() < end) {
		struct ckpt_release r;
		long n;

		for (int k = 0; k < 4; k++) {
			ASSERT_LE(0, ck_collect(self->fd, self->id, self->addrs, NP + ND,
						CKPT_COLLECT_HOLD, NULL));
			for (int j = 0; j < 3; j++) {
				n = ck_release(self->fd, self->id, 0, a, data, ND, &r);
				ASSERT_LE(0, n);
				for (long i = 0; i < n; i++) {
					unsigned int p = (a[i] - (uintptr_t)self->c.m) / PAGE;
					long w;

					ASSERT_LT(p, NP + ND);
					/* @data may be faulted on again meanwhile: check a snapshot. */
					char snap[PAGE];

					memcpy(snap, data + i * PAGE, PAGE);
					w = bad_word(snap, p);
					ASSERT_EQ(-1, w) TH_LOG("round %ld: copy of page %u, word %ld = %#llx: never written by the program",
							       rounds, p, w, (unsigned long long)((uint64_t *)snap)[w]);
				}
				copies += n;
			}
		}
		/* END and drain: the next round starts from an empty hold. */
		for (uint64_t fl = CKPT_RELEASE_END;; fl = 0) {
			n = ck_release(self->fd, self->id, fl, a, data, ND, &r);
			ASSERT_LE(0, n);
			copies += n;
			if (!r.remaining)
				break;
		}
		rounds++;
	}
	stop_writers(&self->c);
	TH_LOG("%ld rounds, %ld copies, %lu writes", rounds, copies,
	       (unsigned long)atomic_load(&self->c.writes));
	ASSERT_LT(0, copies);
}

TEST_F_TIMEOUT(hr, release_data_inside_region, 120)
{
	/* RELEASE writes into the region's last ND pages, which are held too. */
	release_race(_metadata, self, self->c.m + NP * PAGE, 20);
}

TEST_F_TIMEOUT(hr, release_data_outside_region, 120)
{
	release_race(_metadata, self, self->outside, 20);
}

/* UNREGISTER and REGISTER again while threads fault on held pages (region removal vs hook). */
TEST_F_TIMEOUT(hr, unregister_while_faulting, 120)
{
	double end = now() + 10;
	long rounds = 0;

	start_writers(&self->c, 2);
	while (now() < end) {
		ASSERT_LE(0, ck_collect(self->fd, self->id, self->addrs, NP + ND, CKPT_COLLECT_HOLD,
					NULL));
		sched_yield();
		ASSERT_EQ(0, ck_unregister(self->fd, self->id));
		self->id = ck_register(self->fd, self->c.m, (NP + ND) * PAGE, CKPT_REGISTER_DIRTY);
		ASSERT_LT(0, self->id);
		rounds++;
	}
	stop_writers(&self->c);
	TH_LOG("%ld rounds", rounds);
}

/* Close sessions holding pages while threads fault on them (session teardown vs hook). */
TEST_F_TIMEOUT(hr, close_while_faulting, 120)
{
	double end = now() + 10;
	long rounds = 0;

	start_writers(&self->c, 2);
	while (now() < end) {
		int fd = ck_open();
		long id;

		ASSERT_LE(0, fd);
		id = ck_register(fd, self->c.m, NP * PAGE, CKPT_REGISTER_DIRTY);
		ASSERT_LT(0, id);
		ASSERT_LE(0, ck_collect(fd, id, self->addrs, NP, CKPT_COLLECT_HOLD, NULL));
		sched_yield();
		close(fd);
		rounds++;
	}
	stop_writers(&self->c);
	TH_LOG("%ld rounds", rounds);
}

/*
 * Part of the region is replaced by fresh mappings (MAP_FIXED: never unmapped for the writers)
 * while held pages are written: those held pages count as lost, the rest come back intact,
 * and pages of the fresh mapping (never populated) come back as zeros or tags.
 */
TEST_F_TIMEOUT(hr, remap_during_hold, 120)
{
	double end = now() + 10;
	long rounds = 0, lost = 0;
	uint64_t a[ND];

	start_writers(&self->c, 2);
	while (now() < end) {
		struct ckpt_release r;
		long n;

		ASSERT_LE(0, ck_collect(self->fd, self->id, self->addrs, NP + ND, CKPT_COLLECT_HOLD,
					NULL));
		ASSERT_NE(MAP_FAILED, mmap(self->c.m + 8 * PAGE, 8 * PAGE, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
		for (uint64_t fl = CKPT_RELEASE_END;; fl = 0) {
			n = ck_release(self->fd, self->id, fl, a, self->outside, ND, &r);
			ASSERT_LE(0, n);
			if (fl)
				lost += r.lost;
			for (long i = 0; i < n; i++) {
				unsigned int p = (a[i] - (uintptr_t)self->c.m) / PAGE;
				const uint64_t *w = (const uint64_t *)(self->outside + i * PAGE);

				long bad = -1;

				/* A fresh page reads as zeros until a writer tags a word of it. */
				for (size_t k = 0; k < PAGE / 8 && bad < 0; k++)
					if (w[k] && ((w[k] >> 48) != TAG_MAGIC || ((w[k] >> 32) & 0xffff) != p))
						bad = (long)k;
				ASSERT_EQ(-1, bad) TH_LOG("page %u word %ld = %#llx", p, bad,
							  (unsigned long long)w[bad]);
			}
			if (!r.remaining)
				break;
		}
		rounds++;
	}
	stop_writers(&self->c);
	TH_LOG("%ld rounds, %ld held pages lost to the remap", rounds, lost);
	ASSERT_LT(0, lost);
}

/*
 * A held page of a private file mapping that was never mapped reads as the file's bytes, not
 * as zeros: when it is written it cannot be copied from the fault hook and counts as lost.
 * (The module before this test handed back a page of zeros for it.) A never-populated
 * anonymous page reads as zeros and comes back as zeros.
 */
TEST(unmapped_file_page_is_lost_anon_is_zero)
{
	char path[] = "/tmp/hold_race.XXXXXX", buf[PAGE];
	int fd = ck_open(), f = mkstemp(path);
	uint64_t addrs[4], a[4];
	struct ckpt_release r;
	char *fm, *am, *data;
	long id, id2;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, f);
	unlink(path);
	memset(buf, 'F', PAGE);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(PAGE, write(f, buf, PAGE));
	fm = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
	ASSERT_NE(MAP_FAILED, fm);
	am = ck_map(4 * PAGE, PAGE);
	ASSERT_NE(NULL, am);
	data = ck_map(4 * PAGE, PAGE);
	ASSERT_NE(NULL, data);
	memset(data, 0x55, 4 * PAGE);
	id = ck_register(fd, fm, 4 * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, id);
	id2 = ck_register(fd, am, 4 * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, id2);
	ASSERT_EQ(4, ck_collect(fd, id, addrs, 4, CKPT_COLLECT_HOLD, NULL));
	ASSERT_EQ(4, ck_collect(fd, id2, addrs, 4, CKPT_COLLECT_HOLD, NULL));
	fm[PAGE] = 'x';		/* never mapped: its old bytes were the file's */
	am[PAGE] = 'y';		/* never populated: its old bytes were zeros */
	ASSERT_EQ(0, ck_release(fd, id, CKPT_RELEASE_END, a, data, 4, &r));
	EXPECT_EQ(1, r.lost);
	EXPECT_EQ(0, r.remaining);
	ASSERT_EQ(1, ck_release(fd, id2, CKPT_RELEASE_END, a, data, 4, &r));
	EXPECT_EQ(0, r.lost);
	EXPECT_EQ((uintptr_t)am + PAGE, a[0]);
	memset(buf, 0, PAGE);
	EXPECT_EQ(0, memcmp(data, buf, PAGE));
	close(fd);
	close(f);
	munmap(fm, 4 * PAGE);
	munmap(am, 4 * PAGE);
	munmap(data, 4 * PAGE);
}

/*
 * RELEASE into a buffer whose second page cannot be written: the first copy is delivered and
 * counted, the second stays (the UAPI's -EFAULT contract). The module before this test freed
 * the delivered copy and reported count 0 and remaining 0 with the -EFAULT, so a caller that
 * retried lost that page's COLLECT-time contents.
 */
TEST(release_efault_counts_what_was_delivered)
{
	int fd = ck_open();
	char *m = ck_map(2 * PAGE, PAGE), *data = ck_map(2 * PAGE, PAGE);
	uint64_t addrs[2], a[2] = { 0, 0 };
	struct ckpt_release r;
	long id;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, madvise(m, 2 * PAGE, MADV_NOHUGEPAGE));
	memset(m, 'a', 2 * PAGE);
	ASSERT_EQ(0, mprotect(data + PAGE, PAGE, PROT_READ));
	id = ck_register(fd, m, 2 * PAGE, CKPT_REGISTER_DIRTY);
	ASSERT_LT(0, id);
	ASSERT_EQ(2, ck_collect(fd, id, addrs, 2, CKPT_COLLECT_HOLD, NULL));
	m[0] = 'b';
	m[PAGE] = 'b';
	EXPECT_EQ(-EFAULT, ck_release(fd, id, CKPT_RELEASE_END, a, data, 2, &r));
	EXPECT_EQ(1, r.count);
	EXPECT_EQ(1, r.remaining);
	EXPECT_EQ((uintptr_t)m, a[0]);
	EXPECT_EQ('a', data[0]);
	ASSERT_EQ(1, ck_release(fd, id, 0, a, data, 1, &r));
	EXPECT_EQ((uintptr_t)m + PAGE, a[0]);
	EXPECT_EQ('a', data[0]);
	EXPECT_EQ(0, r.remaining);
	close(fd);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Address-space changes under a region, each with its documented outcome
 * (Documentation/ioctl-abi.md, "Over-reporting"): fork, munmap, mremap, mprotect,
 * MADV_DONTNEED of part of a range, KSM-merged and zero-page-backed pages. In every case the
 * report stays a superset of the pages whose bytes changed (checked against a copy), and
 * tracking is 4 KiB-exact again afterwards.
 */
#include <sys/wait.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define NP 256

struct t {
	int fd;
	long id;
	char *m;
	char *copy;
	unsigned char rep[NP];
};

static long collect(struct t *t)
{
	uint64_t out[NP];
	long n = ck_collect(t->fd, t->id, out, NP, 0, NULL);

	memset(t->rep, 0, NP);
	for (long i = 0; i < n; i++)
		t->rep[(out[i] - (uintptr_t)t->m) / PAGE] = 1;
	return n;
}

/* Superset check against the copy for the pages in [from, to) that are mapped; refresh it. */
static void check_superset(struct __test_metadata *_metadata, struct t *t, int from, int to)
{
	for (int p = from; p < to; p++) {
		if (memcmp(t->m + p * PAGE, t->copy + p * PAGE, PAGE))
			ASSERT_TRUE(t->rep[p]) TH_LOG("page %d changed, not reported", p);
		memcpy(t->copy + p * PAGE, t->m + p * PAGE, PAGE);
	}
}

FIXTURE(mm) {
	struct t t;
};

FIXTURE_SETUP(mm)
{
	struct t *t = &self->t;

	t->fd = ck_open();
	ASSERT_LE(0, t->fd);
	t->m = ck_map(NP * PAGE, PAGE);
	ASSERT_NE(NULL, t->m);
	ASSERT_EQ(0, madvise(t->m, NP * PAGE, MADV_NOHUGEPAGE));
	for (int p = 0; p < NP; p++)
		memset(t->m + p * PAGE, p + 1, PAGE);
	t->copy = malloc(NP * PAGE);
	memcpy(t->copy, t->m, NP * PAGE);
	t->id = ck_register(t->fd, t->m, NP * PAGE, 0);
	ASSERT_LT(0, t->id);
}

FIXTURE_TEARDOWN(mm)
{
	close(self->t.fd);
	munmap(self->t.m, NP * PAGE);
	free(self->t.copy);
}

TEST_F(mm, fork_child_writes_not_reported_parent_cow_is)
{
	struct t *t = &self->t;
	int status;
	pid_t c;

	t->m[5 * PAGE] = 1;	/* dirty and writable at fork time */
	c = fork();
	ASSERT_LE(0, c);
	if (!c) {
		memset(t->m, 0xee, NP * PAGE);	/* the child's own copy */
		_exit(0);
	}
	ASSERT_EQ(c, waitpid(c, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(1, collect(t));	/* only the parent's write before fork */
	ASSERT_TRUE(t->rep[5]);
	check_superset(_metadata, t, 0, NP);
	/* The parent's copy-on-write faults are seen. */
	t->m[7 * PAGE] = 2;
	t->m[5 * PAGE] = 2;
	ASSERT_EQ(2, collect(t));
	ASSERT_TRUE(t->rep[5] && t->rep[7]);
	check_superset(_metadata, t, 0, NP);
}

TEST_F(mm, fork_child_uses_inherited_session)
{
	struct t *t = &self->t;
	int status;
	pid_t c = fork();

	ASSERT_LE(0, c);
	if (!c) {
		/* The session stays bound to the parent's mm: the child's writes are not in it. */
		uint64_t out[NP];

		t->m[9 * PAGE] = 1;
		_exit(ck_collect(t->fd, t->id, out, NP, 0, NULL) == 0 ? 0 : 1);
	}
	ASSERT_EQ(c, waitpid(c, &status, 0));
	ASSERT_EQ(0, status);
	t->m[9 * PAGE] = 3;
	ASSERT_EQ(1, collect(t));
	ASSERT_TRUE(t->rep[9]);
}

TEST_F(mm, munmap_part)
{
	struct t *t = &self->t;

	ASSERT_EQ(0, munmap(t->m + 100 * PAGE, 10 * PAGE));
	/* Unmapped pages are reported (their bytes are gone) for as long as they stay unmapped. */
	ASSERT_EQ(10, collect(t));
	for (int p = 100; p < 110; p++)
		ASSERT_TRUE(t->rep[p]);
	ASSERT_EQ(10, collect(t));
	/* The rest is tracked exactly. */
	t->m[3 * PAGE] = 0;
	ASSERT_EQ(11, collect(t));
	ASSERT_TRUE(t->rep[3]);
	check_superset(_metadata, t, 0, 100);
	check_superset(_metadata, t, 110, NP);
	/* Mapped again (MAP_FIXED, fresh zero pages): reported once more, then exact. */
	ASSERT_EQ(t->m + 100 * PAGE, mmap(t->m + 100 * PAGE, 10 * PAGE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_EQ(10, collect(t));
	check_superset(_metadata, t, 0, NP);
	t->m[105 * PAGE] = 1;
	ASSERT_EQ(1, collect(t));
	ASSERT_TRUE(t->rep[105]);
	check_superset(_metadata, t, 0, NP);
}

TEST_F(mm, mremap_away_and_back)
{
	struct t *t = &self->t;
	char *dst = ck_map(16 * PAGE, PAGE);
	char *moved;

	ASSERT_NE(NULL, dst);
	moved = mremap(t->m + 200 * PAGE, 16 * PAGE, 16 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);
	ASSERT_EQ(16, collect(t));	/* the moved-out pages */
	/* Writes at the new place are outside the region. */
	moved[0] = 1;
	ASSERT_EQ(16, collect(t));
	/* Moved back: reported once, then exact again. */
	ASSERT_EQ(t->m + 200 * PAGE, mremap(moved, 16 * PAGE, 16 * PAGE,
					    MREMAP_MAYMOVE | MREMAP_FIXED, t->m + 200 * PAGE));
	ASSERT_EQ(16, collect(t));
	check_superset(_metadata, t, 0, NP);
	ASSERT_EQ(0, collect(t));
	t->m[210 * PAGE] = 7;
	ASSERT_EQ(1, collect(t));
	check_superset(_metadata, t, 0, NP);
}

TEST_F(mm, mprotect_roundtrip)
{
	struct t *t = &self->t;

	t->m[20 * PAGE] = 1;
	ASSERT_EQ(0, mprotect(t->m + 16 * PAGE, 32 * PAGE, PROT_READ));
	ASSERT_EQ(0, mprotect(t->m + 16 * PAGE, 32 * PAGE, PROT_READ | PROT_WRITE));
	/* mprotect may make PTEs writable without a fault: the range is reported. */
	t->m[30 * PAGE] = 1;
	collect(t);
	check_superset(_metadata, t, 0, NP);
	ASSERT_TRUE(t->rep[20] && t->rep[30]);
	/* And exact after that. */
	t->m[31 * PAGE] = 1;
	ASSERT_EQ(1, collect(t));
	ASSERT_TRUE(t->rep[31]);
}

TEST_F(mm, madv_dontneed_part)
{
	struct t *t = &self->t;

	ASSERT_EQ(0, madvise(t->m + 50 * PAGE, 8 * PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, t->m[50 * PAGE]);	/* the bytes changed to zero */
	ASSERT_EQ(8, collect(t));
	check_superset(_metadata, t, 0, NP);
	/* Zero-page backed now: a write faults and is reported. */
	t->m[52 * PAGE] = 1;
	ASSERT_EQ(1, collect(t));
	ASSERT_TRUE(t->rep[52]);
	check_superset(_metadata, t, 0, NP);
}

TEST(zero_page_backed)
{
	int fd = ck_open();
	char *m = ck_map(64 * PAGE, PAGE);
	volatile char sink = 0;
	uint64_t out[64];
	long id;

	ASSERT_NE(NULL, m);
	madvise(m, 64 * PAGE, MADV_NOHUGEPAGE);
	for (int p = 0; p < 64; p++)
		sink += m[p * PAGE];	/* maps the shared zero page, read-only */
	id = ck_register(fd, m, 64 * PAGE, 0);
	ASSERT_LT(0, id);
	m[10 * PAGE] = 1;
	m[63 * PAGE] = 1;
	ASSERT_EQ(2, ck_collect(fd, id, out, 64, 0, NULL));
	EXPECT_EQ((uintptr_t)m + 10 * PAGE, out[0]);
	EXPECT_EQ((uintptr_t)m + 63 * PAGE, out[1]);
	close(fd);
	munmap(m, 64 * PAGE);
}

static long sysfs_read(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int sysfs_write(const char *path, const char *v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fputs(v, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

TEST(ksm_merged)
{
	int fd = ck_open();
	size_t np = 64;
	char *m = ck_map(np * PAGE, PAGE), *copy = malloc(np * PAGE);
	uint64_t out[64];
	long id, n;

	ASSERT_NE(NULL, m);
	madvise(m, np * PAGE, MADV_NOHUGEPAGE);
	memset(m, 0x5a, np * PAGE);	/* identical pages: KSM merges them */
	id = ck_register(fd, m, np * PAGE, 0);
	ASSERT_LT(0, id);
	if (madvise(m, np * PAGE, MADV_MERGEABLE) ||
	    sysfs_write("/sys/kernel/mm/ksm/sleep_millisecs", "0") ||
	    sysfs_write("/sys/kernel/mm/ksm/run", "1"))
		SKIP(return, "KSM not available");
	for (int i = 0; i < 300 && sysfs_read("/sys/kernel/mm/ksm/pages_sharing") < 8; i++)
		usleep(20000);
	TH_LOG("pages_sharing %ld", sysfs_read("/sys/kernel/mm/ksm/pages_sharing"));
	ASSERT_LE(8, sysfs_read("/sys/kernel/mm/ksm/pages_sharing"));
	memcpy(copy, m, np * PAGE);
	/* Merging does not change bytes; it may be reported (an invalidation). */
	ck_collect(fd, id, out, np, 0, NULL);
	/* A write to a merged page is a copy-on-write fault: reported. */
	m[3 * PAGE] = 1;
	m[40 * PAGE] = 1;
	n = ck_collect(fd, id, out, np, 0, NULL);
	ASSERT_LE(2, n);
	int seen3 = 0, seen40 = 0;

	for (long i = 0; i < n; i++) {
		seen3 |= out[i] == (uintptr_t)m + 3 * PAGE;
		seen40 |= out[i] == (uintptr_t)m + 40 * PAGE;
	}
	ASSERT_TRUE(seen3 && seen40);
	sysfs_write("/sys/kernel/mm/ksm/run", "2");	/* unmerge everything */
	close(fd);
	munmap(m, np * PAGE);
	free(copy);
}

/* After UNREGISTER the pages stay protected in the page table; writes just work. */
TEST_F(mm, unregister_leaves_memory_usable)
{
	struct t *t = &self->t;

	ASSERT_EQ(0, ck_unregister(t->fd, t->id));
	memset(t->m, 0x42, NP * PAGE);
	for (int p = 0; p < NP; p += 17)
		ASSERT_EQ(0x42, t->m[p * PAGE + 7]);
	struct ckpt_stats st;

	ASSERT_EQ(0, ck_stats(t->fd, 0, &st));
	ASSERT_EQ(0, st.regions);
	t->id = ck_register(t->fd, t->m, NP * PAGE, 0);
	ASSERT_LT(0, t->id);
}

TEST_HARNESS_MAIN

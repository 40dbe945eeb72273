// SPDX-License-Identifier: GPL-2.0
/*
 * Transparent huge pages: memory that really is PMD-mapped (AnonHugePages checked first) is
 * tracked at 4 KiB precision after REGISTER splits it; a huge fault on an empty PMD reports
 * its 2 MiB extent once, then 4 KiB again; a huge zero page is handled; a collapse back to a
 * huge PMD (MADV_COLLAPSE) never hides a write.
 */
#include "track_util.h"
#include "kselftest_harness.h"

#define HP (2UL << 20)
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

static void *thp_map(struct __test_metadata *_metadata, size_t len)
{
	char *p = ck_map(len, HP);

	if (!p)
		return NULL;
	if (madvise(p, len, MADV_HUGEPAGE))
		return NULL;
	return p;
}

static long collect_set(int fd, long id, char *base, size_t pages, unsigned char *rep)
{
	uint64_t *out = malloc(pages * 8);
	long n = ck_collect(fd, id, out, pages, 0, NULL);

	memset(rep, 0, pages);
	for (long i = 0; i < n; i++)
		rep[(out[i] - (uintptr_t)base) / PAGE] = 1;
	free(out);
	return n;
}

/* 1% of the 4 KiB pages of THP-backed memory written: exactly those are reported. */
TEST(split_gives_4k_precision)
{
	size_t len = 16 * HP, pages = len / PAGE;
	char *m = thp_map(_metadata, len);
	unsigned char *rep = malloc(pages), *wr = malloc(pages);
	uint64_t seed = 5;
	struct ckpt_stats st;
	int fd = ck_open();
	long id;

	ASSERT_NE(NULL, m);
	ASSERT_LE(0, fd);
	memset(m, 1, len);
	/* The premise: the memory is huge-page backed before REGISTER. */
	long kb = ck_anon_huge_kb(m);

	TH_LOG("AnonHugePages before REGISTER: %ld kB", kb);
	ASSERT_LE(4 * 2048, kb);
	id = ck_register(fd, m, len, 0);
	ASSERT_LT(0, id);
	ASSERT_EQ(0, ck_stats(fd, id, &st));
	EXPECT_LE(kb / 2048, st.thp_splits);
	EXPECT_EQ(0, st.dirty);	/* our own splits are not writes */
	for (int e = 0; e < 20; e++) {
		memset(wr, 0, pages);
		for (size_t i = 0; i < pages / 100; i++) {
			size_t p = ck_rand(&seed) % pages;

			m[p * PAGE + ck_rand(&seed) % PAGE]++;
			wr[p] = 1;
		}
		collect_set(fd, id, m, pages, rep);
		for (size_t p = 0; p < pages; p++) {
			ASSERT_EQ(wr[p], rep[p]) TH_LOG("epoch %d page %zu", e, p);
		}
	}
	close(fd);
	munmap(m, len);
	free(rep);
	free(wr);
}

/* An empty PMD's first write may map 2 MiB writable: that extent is reported, once. */
TEST(huge_fault_on_empty_pmd)
{
	size_t len = 4 * HP, pages = len / PAGE;
	char *m = thp_map(_metadata, len);
	unsigned char *rep = malloc(pages);
	int fd = ck_open();
	long id, n;

	ASSERT_NE(NULL, m);
	id = ck_register(fd, m, len, 0);
	ASSERT_LT(0, id);
	m[HP + 5 * PAGE] = 1;	/* first touch of the second 2 MiB extent */
	n = collect_set(fd, id, m, pages, rep);
	ASSERT_TRUE(rep[HP / PAGE + 5]);
	TH_LOG("first write into an empty PMD reported %ld pages", n);
	ASSERT_TRUE(n == 1 || n == (long)(HP / PAGE));
	for (size_t p = 0; p < pages; p++)
		if (rep[p])
			ASSERT_EQ(1, p / (HP / PAGE));	/* never outside that extent */
	/* The collect split it: 4 KiB precision from now on. */
	m[HP + 9 * PAGE] = 2;
	m[HP + 5 * PAGE] = 2;
	ASSERT_EQ(2, collect_set(fd, id, m, pages, rep));
	ASSERT_TRUE(rep[HP / PAGE + 5] && rep[HP / PAGE + 9]);
	close(fd);
	munmap(m, len);
	free(rep);
}

/* Read-faulted THP memory is the huge zero page: writes after REGISTER are 4 KiB exact. */
TEST(huge_zero_page)
{
	size_t len = 2 * HP, pages = len / PAGE;
	char *m = thp_map(_metadata, len);
	unsigned char *rep = malloc(pages);
	volatile char sink = 0;
	int fd = ck_open();
	long id;

	ASSERT_NE(NULL, m);
	for (size_t i = 0; i < len; i += PAGE)
		sink += m[i];
	id = ck_register(fd, m, len, 0);
	ASSERT_LT(0, id);
	m[3 * PAGE] = 1;
	m[600 * PAGE] = 1;
	ASSERT_EQ(2, collect_set(fd, id, m, pages, rep));
	ASSERT_TRUE(rep[3] && rep[600]);
	for (size_t i = 0; i < len; i += PAGE)
		ASSERT_EQ(i == 3 * PAGE || i == 600 * PAGE, m[i]);
	close(fd);
	munmap(m, len);
	free(rep);
}

/* A collapse into a fresh, writable huge PMD is reported (notifier), so no write is missed. */
TEST(collapse_never_hides_writes)
{
	size_t len = 2 * HP, pages = len / PAGE;
	char *m = thp_map(_metadata, len), *copy = malloc(len);
	unsigned char *rep = malloc(pages);
	int fd = ck_open();
	long id;

	ASSERT_NE(NULL, m);
	memset(m, 3, len);
	id = ck_register(fd, m, len, 0);
	ASSERT_LT(0, id);
	memcpy(copy, m, len);
	/* Collapse wants a writable PTE in each range (else SCAN_PAGE_RO, -EINVAL). */
	m[0] = 4;
	m[HP] = 4;
	if (madvise(m, len, MADV_COLLAPSE)) {
		TH_LOG("MADV_COLLAPSE: %s", strerror(errno));
		SKIP(goto out, "MADV_COLLAPSE not available");
	}
	TH_LOG("AnonHugePages after collapse: %ld kB", ck_anon_huge_kb(m));
	ASSERT_LE(2048, ck_anon_huge_kb(m));
	/* Writes to the collapsed (writable) PMD fault no more; they must still be reported. */
	m[7 * PAGE] = 9;
	m[HP + 100 * PAGE] = 9;
	collect_set(fd, id, m, pages, rep);
	for (size_t p = 0; p < pages; p++) {
		if (memcmp(m + p * PAGE, copy + p * PAGE, PAGE))
			ASSERT_TRUE(rep[p]) TH_LOG("page %zu missed after collapse", p);
	}
	/* Collected: split and protected again, precise. */
	m[11 * PAGE] = 9;
	ASSERT_EQ(1, collect_set(fd, id, m, pages, rep));
	ASSERT_TRUE(rep[11]);
out:
	close(fd);
	munmap(m, len);
	free(rep);
	free(copy);
}

TEST_HARNESS_MAIN

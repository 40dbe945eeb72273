// SPDX-License-Identifier: GPL-2.0
/*
 * COLLECT through io_uring (IORING_OP_URING_CMD, liburing): the same pages as the ioctl,
 * cqe->res = count, errors as -errno in cqe->res, several collects in flight on different
 * sessions (the module answers the non-blocking issue with -EAGAIN, so COLLECT runs in an
 * io-wq worker and completes with io_uring_cmd_done()).
 *
 * Also: pages pinned as io_uring fixed buffers (FOLL_PIN | FOLL_LONGTERM) can be written by the
 * kernel without a fault, so COLLECT keeps them logged ("sticky"). A caller that loops while
 * @remaining != 0 with a small buffer must still finish: each pass reports a page once.
 */
#include <liburing.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define NP 128

static int submit_collect(struct io_uring *ring, int fd, struct ckpt_collect *c, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = CKPT_IOC_COLLECT;
	*(uint64_t *)sqe->cmd = (uintptr_t)c;
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

static int wait_res(struct io_uring *ring, uint64_t *tag)
{
	struct io_uring_cqe *cqe;
	int res, e = io_uring_wait_cqe(ring, &cqe);

	if (e)
		return e;
	res = cqe->res;
	if (tag)
		*tag = io_uring_cqe_get_data64(cqe);
	io_uring_cqe_seen(ring, cqe);
	return res;
}

FIXTURE(u) {
	struct io_uring ring;
	int fd;
	long id;
	char *m;
};

FIXTURE_SETUP(u)
{
	ASSERT_EQ(0, io_uring_queue_init(16, &self->ring, 0));
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	self->m = ck_map(NP * PAGE, PAGE);
	madvise(self->m, NP * PAGE, MADV_NOHUGEPAGE);
	memset(self->m, 1, NP * PAGE);
	self->id = ck_register(self->fd, self->m, NP * PAGE, 0);
	ASSERT_LT(0, self->id);
}

FIXTURE_TEARDOWN(u)
{
	io_uring_queue_exit(&self->ring);
	close(self->fd);
	munmap(self->m, NP * PAGE);
}

TEST_F(u, collect_matches_ioctl)
{
	uint64_t out[NP];

	for (int e = 0; e < 50; e++) {
		struct ckpt_collect c = { .id = self->id, .buf = (uintptr_t)out,
					  .buf_len = sizeof(out) };
		int want = e % 7;

		for (int i = 0; i < want; i++)
			self->m[(e + i * 11) % NP * PAGE] ^= 1;
		ASSERT_EQ(0, submit_collect(&self->ring, self->fd, &c, e));
		ASSERT_EQ(1, io_uring_submit(&self->ring));
		ASSERT_EQ(want, wait_res(&self->ring, NULL));
		ASSERT_EQ(want, c.count);
		ASSERT_EQ(e + 1, c.seq);
		for (int i = 0; i < want; i++) {
			uint64_t a = (uintptr_t)self->m + (e + i * 11) % NP * PAGE;
			int found = 0;

			for (int j = 0; j < want; j++)
				found |= out[j] == a;
			ASSERT_TRUE(found);
		}
	}
}

TEST_F(u, errors_in_cqe)
{
	uint64_t out[NP];
	struct ckpt_collect bad_id = { .id = 999, .buf = (uintptr_t)out, .buf_len = 8 };
	struct ckpt_collect bad_flags = { .id = self->id, .flags = 1ULL << 40 };
	struct io_uring_sqe *sqe;

	ASSERT_EQ(0, submit_collect(&self->ring, self->fd, &bad_id, 1));
	io_uring_submit(&self->ring);
	EXPECT_EQ(-ENOENT, wait_res(&self->ring, NULL));
	ASSERT_EQ(0, submit_collect(&self->ring, self->fd, &bad_flags, 2));
	io_uring_submit(&self->ring);
	EXPECT_EQ(-EINVAL, wait_res(&self->ring, NULL));
	ASSERT_EQ(0, submit_collect(&self->ring, self->fd, (struct ckpt_collect *)8, 3));
	io_uring_submit(&self->ring);
	EXPECT_EQ(-EFAULT, wait_res(&self->ring, NULL));
	/* Another command number through uring_cmd. */
	sqe = io_uring_get_sqe(&self->ring);
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
	sqe->cmd_op = CKPT_IOC_STATS;
	io_uring_submit(&self->ring);
	EXPECT_EQ(-ENOTTY, wait_res(&self->ring, NULL));
}

/* Many sessions' collects in flight at once; each completes with its own pages. */
TEST_F(u, many_in_flight)
{
	enum { S = 8 };
	int fds[S];
	long ids[S];
	char *mem[S];
	uint64_t out[S][16];
	struct ckpt_collect c[S];
	int done = 0;

	for (int s = 0; s < S; s++) {
		fds[s] = ck_open();
		mem[s] = ck_map(16 * PAGE, PAGE);
		memset(mem[s], 0, 16 * PAGE);
		ids[s] = ck_register(fds[s], mem[s], 16 * PAGE, 0);
		ASSERT_LT(0, ids[s]);
		for (int i = 0; i <= s; i++)
			mem[s][i * PAGE] = 1;	/* session s: s + 1 pages */
		c[s] = (struct ckpt_collect){ .id = ids[s], .buf = (uintptr_t)out[s],
					      .buf_len = sizeof(out[s]) };
		ASSERT_EQ(0, submit_collect(&self->ring, fds[s], &c[s], s));
	}
	ASSERT_EQ(S, io_uring_submit(&self->ring));
	for (int i = 0; i < S; i++) {
		uint64_t tag;
		int res = wait_res(&self->ring, &tag);

		ASSERT_LT(tag, S);
		ASSERT_EQ((int)tag + 1, res);
		done |= 1 << tag;
	}
	ASSERT_EQ((1 << S) - 1, done);
	for (int s = 0; s < S; s++) {
		close(fds[s]);
		munmap(mem[s], 16 * PAGE);
	}
}

/* Collect one pass with an n-entry buffer; marks rep[], fails on a page seen twice. */
static long one_pass(struct __test_metadata *_metadata, int fd, uint64_t id, char *base,
		     size_t np, size_t n, unsigned char *rep, long *calls)
{
	uint64_t out[16];
	struct ckpt_collect c;
	long total = 0;

	memset(rep, 0, np);
	*calls = 0;
	do {
		long k = ck_collect(fd, id, out, n, 0, &c);

		if (k < 0 || ++*calls > (long)(np / n + 2))
			return -1;
		for (long i = 0; i < k; i++) {
			size_t p = (out[i] - (uintptr_t)base) / PAGE;

			if (p >= np || rep[p]++)
				return -1;
		}
		total += k;
	} while (c.remaining);
	return total;
}

TEST_F(u, pinned_pages_stay_logged_and_passes_end)
{
	struct iovec iov = { .iov_base = self->m, .iov_len = 64 * PAGE };	/* pages 0..63 */
	unsigned char rep[NP];
	long calls;

	memset(self->m, 2, NP * PAGE);
	ASSERT_EQ(NP, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	ASSERT_EQ(0, io_uring_register_buffers(&self->ring, &iov, 1));
	for (int p = 0; p < NP; p++)
		self->m[p * PAGE] = 2;
	/* Every page once, though the 64 pinned ones are re-logged behind the pass. */
	ASSERT_EQ(NP, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	EXPECT_GE(NP / 16 + 1, calls);
	/* Nothing written since: only the pinned pages, again (the documented over-report). */
	ASSERT_EQ(64, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	for (int p = 0; p < NP; p++) {
		ASSERT_EQ(p < 64, rep[p]) TH_LOG("page %d", p);
	}
	/* Pass after pass, with the smallest buffer: it ends every time. */
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(64, one_pass(_metadata, self->fd, self->id, self->m, NP, 1, rep, &calls));
	/* The same through id 0 (every region of the session). */
	ASSERT_EQ(64, one_pass(_metadata, self->fd, 0, self->m, NP, 7, rep, &calls));
	struct ckpt_stats st;

	ASSERT_EQ(0, ck_stats(self->fd, self->id, &st));
	EXPECT_LE(64 * 6, st.kept);	/* six passes kept the 64 pinned pages */
	/* Unpinned: the last re-logged copy is reported once more, then nothing. */
	ASSERT_EQ(0, io_uring_unregister_buffers(&self->ring));
	ASSERT_EQ(64, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	ASSERT_EQ(0, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	ASSERT_EQ(0, ck_stats(self->fd, self->id, &st));
	EXPECT_GT(64 * 8, st.kept);	/* no longer kept once unpinned */
}

/* A write behind a pass in progress is reported by the next pass, not lost. */
TEST_F(u, write_behind_the_pass_goes_to_the_next)
{
	unsigned char rep[NP];
	uint64_t out[8];
	struct ckpt_collect c;
	long calls;

	memset(self->m, 2, NP * PAGE);
	ASSERT_EQ(NP, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	for (int p = 0; p < 32; p++)
		self->m[p * PAGE] = 3;
	ASSERT_EQ(8, ck_collect(self->fd, self->id, out, 8, 0, &c));	/* pages 0..7 */
	EXPECT_EQ(24, c.remaining);
	self->m[2 * PAGE] = 4;		/* behind the pass */
	self->m[100 * PAGE] = 4;	/* ahead of it */
	ASSERT_EQ(25, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	EXPECT_EQ(1, rep[100]);
	EXPECT_EQ(0, rep[2]);
	ASSERT_EQ(1, one_pass(_metadata, self->fd, self->id, self->m, NP, 16, rep, &calls));
	EXPECT_EQ(1, rep[2]);
}

TEST_HARNESS_MAIN

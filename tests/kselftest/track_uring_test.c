// SPDX-License-Identifier: GPL-2.0
/*
 * COLLECT through io_uring (IORING_OP_URING_CMD, liburing): the same pages as the ioctl,
 * cqe->res = count, errors as -errno in cqe->res, several collects in flight on different
 * sessions (the module answers the non-blocking issue with -EAGAIN, so COLLECT runs in an
 * io-wq worker and completes with io_uring_cmd_done()).
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

TEST_HARNESS_MAIN

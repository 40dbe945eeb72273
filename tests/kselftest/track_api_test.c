// SPDX-License-Identifier: GPL-2.0
/*
 * The tracking commands one by one: what REGISTER/UNREGISTER/COLLECT/STATS accept, what they
 * report on simple write patterns, and the documented errno of every kind of bad input.
 * Runs in the VM with ckpt.ko loaded.
 */
#include <sys/syscall.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define NPAGES 64

FIXTURE(t) {
	int fd;
	char *buf;
};

FIXTURE_SETUP(t)
{
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	self->buf = ck_map(NPAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	/*
	 * The tests count reported pages exactly, so no THP collapse may touch the buffer: with
	 * the default flags it merges with a neighbouring anonymous mapping (huge_buffer's 8 MiB
	 * output), and when it straddles a 2 MiB boundary khugepaged may collapse the part inside
	 * the merged VMA, which the module rightly reports as written (design-tracking.md, 4).
	 */
	ASSERT_EQ(0, madvise(self->buf, NPAGES * PAGE, MADV_NOHUGEPAGE));
	memset(self->buf, 1, NPAGES * PAGE);
}

FIXTURE_TEARDOWN(t)
{
	close(self->fd);
	munmap(self->buf, NPAGES * PAGE);
}

TEST(features)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int fd = open("/dev/ckpt", O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ck_ioctl(fd, CKPT_IOC_API, &a));
	uint64_t want = CKPT_FEATURE_TRACK | CKPT_FEATURE_THP_SPLIT | CKPT_FEATURE_URING_CMD |
			CKPT_FEATURE_ATTACH | CKPT_FEATURE_GENL | CKPT_FEATURE_HOLD;

	EXPECT_EQ(want, a.features & want);
	unsigned long cmds[] = { CKPT_IOC_REGISTER, CKPT_IOC_UNREGISTER, CKPT_IOC_COLLECT,
				 CKPT_IOC_STATS, CKPT_IOC_ATTACH, CKPT_IOC_RELEASE };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(cmds[i])));
	close(fd);
}

/* Commands before the handshake are refused. */
TEST(needs_handshake)
{
	int fd = open("/dev/ckpt", O_RDWR);
	char *p = ck_map(PAGE, PAGE);
	struct ckpt_register r = { .start = (uintptr_t)p, .len = PAGE };
	struct ckpt_stats st = {};

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, ck_ioctl(fd, CKPT_IOC_REGISTER, &r));
	EXPECT_EQ(-EINVAL, ck_ioctl(fd, CKPT_IOC_STATS, &st));
	close(fd);
	munmap(p, PAGE);
}

TEST_F(t, write_some_pages)
{
	uint64_t out[NPAGES];
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);
	struct ckpt_collect c;

	ASSERT_LT(0, id);
	/* Nothing written since REGISTER. */
	EXPECT_EQ(0, ck_collect(self->fd, id, out, NPAGES, 0, &c));
	EXPECT_EQ(1, c.seq);
	EXPECT_EQ(0, c.remaining);
	self->buf[3 * PAGE] = 2;
	self->buf[3 * PAGE + 100] = 2;	/* same page: one fault, one report */
	self->buf[17 * PAGE + 5] = 2;
	self->buf[63 * PAGE + 4095] = 2;
	(void)*(volatile char *)&self->buf[20 * PAGE];	/* a read is not a write */
	ASSERT_EQ(3, ck_collect(self->fd, id, out, NPAGES, 0, &c));
	EXPECT_EQ((uintptr_t)self->buf + 3 * PAGE, out[0]);
	EXPECT_EQ((uintptr_t)self->buf + 17 * PAGE, out[1]);
	EXPECT_EQ((uintptr_t)self->buf + 63 * PAGE, out[2]);
	EXPECT_EQ(2, c.seq);
	/* Collected pages are protected again: the next write is seen again. */
	EXPECT_EQ(0, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
	self->buf[17 * PAGE] = 3;
	ASSERT_EQ(1, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
	EXPECT_EQ((uintptr_t)self->buf + 17 * PAGE, out[0]);
}

/* The outputs of a previous call may be left in the struct: they are ignored on input. */
TEST_F(t, collect_struct_reuse)
{
	uint64_t out[NPAGES];
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);
	struct ckpt_collect c = { .id = id, .buf = (uintptr_t)out, .buf_len = sizeof(out) };

	ASSERT_LT(0, id);
	self->buf[0] = 1;
	ASSERT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_COLLECT, &c));
	ASSERT_EQ(1, c.count);
	self->buf[PAGE] = 1;
	self->buf[2 * PAGE] = 1;
	ASSERT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_COLLECT, &c));
	EXPECT_EQ(2, c.count);
	EXPECT_EQ(2, c.seq);
}

TEST_F(t, register_dirty_and_stats)
{
	uint64_t out[NPAGES];
	struct ckpt_stats st;
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, CKPT_REGISTER_DIRTY);

	ASSERT_LT(0, id);
	ASSERT_EQ(0, ck_stats(self->fd, id, &st));
	EXPECT_EQ(1, st.regions);
	EXPECT_EQ(NPAGES, st.pages);
	EXPECT_EQ(NPAGES, st.dirty);
	EXPECT_EQ(NPAGES, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
	for (int i = 0; i < 5; i++)
		self->buf[i * PAGE] = 9;
	ASSERT_EQ(0, ck_stats(self->fd, id, &st));
	EXPECT_EQ(5, st.dirty);
	EXPECT_EQ(5, st.faults);
	EXPECT_EQ(1, st.collects);
	EXPECT_EQ(NPAGES, st.collected);
	ASSERT_EQ(0, ck_stats(self->fd, 0, &st));
	EXPECT_EQ(1, st.regions);
	EXPECT_EQ(5, st.dirty);
}

TEST_F(t, short_buffer_and_remaining)
{
	uint64_t out[NPAGES];
	struct ckpt_collect c;
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);

	ASSERT_LT(0, id);
	for (int i = 0; i < 10; i++)
		self->buf[i * 2 * PAGE] = 5;
	ASSERT_EQ(4, ck_collect(self->fd, id, out, 4, 0, &c));
	EXPECT_EQ(6, c.remaining);
	EXPECT_EQ((uintptr_t)self->buf + 6 * PAGE, out[3]);
	ASSERT_EQ(0, ck_collect(self->fd, id, out, 0, 0, &c));	/* empty buffer */
	EXPECT_EQ(6, c.remaining);
	ASSERT_EQ(6, ck_collect(self->fd, id, out, NPAGES, 0, &c));
	EXPECT_EQ((uintptr_t)self->buf + 8 * PAGE, out[0]);
	EXPECT_EQ(0, c.remaining);
}

TEST_F(t, huge_buffer)
{
	/* A buf_len far larger than the log: only what is logged is written. */
	size_t n = 1 << 20;
	uint64_t *out = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);

	ASSERT_NE(MAP_FAILED, out);
	self->buf[0] = 1;
	EXPECT_EQ(1, ck_collect(self->fd, id, out, n, 0, NULL));
	/* buf_len beyond the address space: still only what is needed is touched. */
	struct ckpt_collect c = { .id = id, .buf = (uintptr_t)out, .buf_len = ~7ULL };

	self->buf[PAGE] = 1;
	EXPECT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_COLLECT, &c));
	EXPECT_EQ(1, c.count);
	munmap(out, n * 8);
}

TEST_F(t, bitmap_and_peek)
{
	uint64_t bm[2] = { ~0ULL, ~0ULL }, out[NPAGES];
	struct ckpt_collect c;
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);

	ASSERT_LT(0, id);
	self->buf[1 * PAGE] = 1;
	self->buf[40 * PAGE] = 1;
	/* PEEK reports without taking. */
	ASSERT_EQ(2, ck_collect(self->fd, id, out, NPAGES, CKPT_COLLECT_PEEK, &c));
	EXPECT_EQ(2, c.remaining);
	ASSERT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_COLLECT,
			      &(struct ckpt_collect){ .id = id,
						      .flags = CKPT_COLLECT_PEEK | CKPT_COLLECT_BITMAP,
						      .buf = (uintptr_t)bm, .buf_len = 8 }));
	EXPECT_EQ((1ULL << 1) | (1ULL << 40), bm[0]);
	EXPECT_EQ(~0ULL, bm[1]);	/* only the region's words are written */
	bm[0] = ~0ULL;
	/* Bitmap too short for 64 pages. */
	EXPECT_EQ(-EINVAL, ck_collect_bitmap(self->fd, id, bm, 0));
	ASSERT_EQ(2, ck_collect_bitmap(self->fd, id, bm, 1));
	EXPECT_EQ((1ULL << 1) | (1ULL << 40), bm[0]);
	ASSERT_EQ(0, ck_collect_bitmap(self->fd, id, bm, 1));
	EXPECT_EQ(0, bm[0]);	/* clean pages are written as 0 */
}

TEST_F(t, id0_collects_all_regions)
{
	uint64_t out[NPAGES];
	long a = ck_register(self->fd, self->buf + 32 * PAGE, 32 * PAGE, 0);
	long b = ck_register(self->fd, self->buf, 16 * PAGE, 0);

	ASSERT_LT(0, a);
	ASSERT_LT(0, b);
	EXPECT_NE(a, b);
	self->buf[40 * PAGE] = 1;
	self->buf[2 * PAGE] = 1;
	self->buf[20 * PAGE] = 1;	/* not registered */
	ASSERT_EQ(2, ck_collect(self->fd, 0, out, NPAGES, 0, NULL));
	/* Ascending: the regions come in address order. */
	EXPECT_EQ((uintptr_t)self->buf + 2 * PAGE, out[0]);
	EXPECT_EQ((uintptr_t)self->buf + 40 * PAGE, out[1]);
	EXPECT_EQ(-EINVAL, ck_collect_bitmap(self->fd, 0, out, NPAGES));
}

TEST_F(t, unregister)
{
	uint64_t out[NPAGES];
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);
	struct ckpt_stats st;

	ASSERT_LT(0, id);
	self->buf[0] = 1;
	EXPECT_EQ(0, ck_unregister(self->fd, id));
	EXPECT_EQ(-ENOENT, ck_unregister(self->fd, id));
	EXPECT_EQ(-ENOENT, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
	EXPECT_EQ(-ENOENT, ck_stats(self->fd, id, &st));
	/* The memory stays usable; the range can be registered again. */
	memset(self->buf, 7, NPAGES * PAGE);
	id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);
	ASSERT_LT(0, id);
	self->buf[PAGE] = 1;
	EXPECT_EQ(1, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
}

TEST_F(t, bad_register)
{
	char *b = self->buf;
	struct ckpt_register r;

	EXPECT_EQ(-EINVAL, ck_register(self->fd, b + 1, PAGE, 0));	/* unaligned start */
	EXPECT_EQ(-EINVAL, ck_register(self->fd, b, PAGE + 1, 0));	/* unaligned length */
	EXPECT_EQ(-EINVAL, ck_register(self->fd, b, 0, 0));		/* empty */
	EXPECT_EQ(-EINVAL, ck_register(self->fd, (void *)-PAGE, 2 * PAGE, 0));	/* wraps */
	EXPECT_EQ(-EINVAL, ck_register(self->fd, (void *)(1ULL << 57), PAGE, 0)); /* kernel */
	EXPECT_EQ(-EINVAL, ck_register(self->fd, b, PAGE, 2));		/* unknown flag */
	r = (struct ckpt_register){ .start = (uintptr_t)b, .len = PAGE, .reserved[3] = 1 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_REGISTER, &r));
	r = (struct ckpt_register){ .start = (uintptr_t)b, .len = PAGE, .id = 5 };
	EXPECT_EQ(0, ck_ioctl(self->fd, CKPT_IOC_REGISTER, &r));	/* id is output only */
	EXPECT_EQ(-EEXIST, ck_register(self->fd, b, 2 * PAGE, 0));	/* overlap */
	EXPECT_EQ(-EFAULT, ck_ioctl(self->fd, CKPT_IOC_REGISTER, NULL));
	/* A hole in the range. */
	ASSERT_EQ(0, munmap(b + 10 * PAGE, PAGE));
	EXPECT_EQ(-ENOMEM, ck_register(self->fd, b + 8 * PAGE, 4 * PAGE, 0));
	/* Unmapped entirely. */
	EXPECT_EQ(-ENOMEM, ck_register(self->fd, (void *)PAGE, PAGE, 0));
	/* Shared memory. */
	char *sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, sh);
	EXPECT_EQ(-EOPNOTSUPP, ck_register(self->fd, sh, PAGE, 0));
	munmap(sh, PAGE);
}

TEST_F(t, too_many_regions)
{
	size_t n = CKPT_MAX_REGIONS + 1;
	char *m = ck_map(n * PAGE, PAGE);
	int i;

	ASSERT_NE(NULL, m);
	for (i = 0; i < CKPT_MAX_REGIONS; i++)
		ASSERT_LT(0, ck_register(self->fd, m + i * PAGE, PAGE, 0));
	EXPECT_EQ(-ENOSPC, ck_register(self->fd, m + i * PAGE, PAGE, 0));
	munmap(m, n * PAGE);
}

TEST_F(t, bad_collect)
{
	uint64_t out[NPAGES];
	long id = ck_register(self->fd, self->buf, NPAGES * PAGE, 0);
	struct ckpt_collect c;

	ASSERT_LT(0, id);
	EXPECT_EQ(-ENOENT, ck_collect(self->fd, id + 100, out, NPAGES, 0, NULL));
	EXPECT_EQ(-EINVAL, ck_collect(self->fd, id, out, NPAGES, 1ULL << 40, NULL));	/* unknown flag */
	c = (struct ckpt_collect){ .id = id, .buf = (uintptr_t)out, .buf_len = 12 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_COLLECT, &c));	/* not a multiple of 8 */
	c = (struct ckpt_collect){ .id = id, .buf = (uintptr_t)out, .buf_len = 8,
				   .reserved[4] = 1 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_COLLECT, &c));
	/* An unwritable buffer: -EFAULT and nothing is taken from the log. */
	self->buf[5 * PAGE] = 1;
	EXPECT_EQ(-EFAULT, ck_collect(self->fd, id, (uint64_t *)8, NPAGES, 0, NULL));
	EXPECT_EQ(-EFAULT, ck_collect_bitmap(self->fd, id, (uint64_t *)8, 1));
	ASSERT_EQ(1, ck_collect(self->fd, id, out, NPAGES, 0, NULL));
	EXPECT_EQ((uintptr_t)self->buf + 5 * PAGE, out[0]);
	EXPECT_EQ(-EFAULT, ck_ioctl(self->fd, CKPT_IOC_COLLECT, (void *)16));
}

TEST_F(t, bad_stats_unregister_attach)
{
	struct ckpt_stats st = { .flags = 1 };
	struct ckpt_unregister u = { .id = 1, .reserved[1] = 1 };
	struct ckpt_attach at = { .pid = getpid(), .flags = 1 };

	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_STATS, &st));
	st = (struct ckpt_stats){ .reserved[4] = 1 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_STATS, &st));
	EXPECT_EQ(-ENOENT, ck_stats(self->fd, 77, &st));
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_UNREGISTER, &u));
	EXPECT_EQ(-ENOENT, ck_unregister(self->fd, 0));
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_ATTACH, &at));
	at = (struct ckpt_attach){ .pid = 0 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_ATTACH, &at));
	at = (struct ckpt_attach){ .pid = 0x7ffffff0 };
	EXPECT_EQ(-ESRCH, ck_ioctl(self->fd, CKPT_IOC_ATTACH, &at));
	/* Wrong structure sizes are different ioctl numbers: -ENOTTY. */
	EXPECT_EQ(-ENOTTY, ck_ioctl(self->fd, _IOC(_IOC_READ | _IOC_WRITE, CKPT_IOC_MAGIC,
						   _IOC_NR(CKPT_IOC_COLLECT), 64), &st));
	EXPECT_EQ(-ENOTTY, ck_ioctl(self->fd, _IOW(CKPT_IOC_MAGIC, _IOC_NR(CKPT_IOC_REGISTER),
						   struct ckpt_register), &st));
}

TEST_HARNESS_MAIN

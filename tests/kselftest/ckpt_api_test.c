// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/ckpt basics: the node, the handshake (CKPT_IOC_API) and its documented errors.
 * Runs in the VM with ckpt.ko loaded (tests/vm/run-all).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/ckpt.h>

#include "kselftest_harness.h"

#define DEV "/dev/" CKPT_DEVICE_NAME

static int api(int fd, struct ckpt_api *a)
{
	return ioctl(fd, CKPT_IOC_API, a) ? -errno : 0;
}

static long module_param_value(const char *name)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/ckpt/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 0);
}

/*
 * The node is what the module was loaded with (dev_mode, dev_gid; the harness loads
 * 0660 and the ckpt group, as the udev rule makes it), owned by root, and never open to
 * others: the module refuses a dev_mode with "other" bits at load.
 */
TEST(device_node)
{
	long mode = module_param_value("dev_mode"), gid = module_param_value("dev_gid");
	struct stat st;

	ASSERT_LE(0, mode);
	ASSERT_LE(0, gid);
	ASSERT_EQ(0, stat(DEV, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(mode, st.st_mode & 07777);
	EXPECT_EQ(0, st.st_mode & 0007);
	EXPECT_EQ(0, st.st_uid);
	EXPECT_EQ(gid, st.st_gid);
}

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = open(DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST_F(dev, handshake)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };

	ASSERT_EQ(0, api(self->fd, &a));
	EXPECT_EQ(CKPT_API_VERSION, a.api);
	EXPECT_EQ((__u64)getpagesize(), a.page_size);
	EXPECT_TRUE(a.ioctls & (1ULL << _IOC_NR(CKPT_IOC_API)));
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(0, a.reserved[i]);
	/* Only once per file. */
	a = (struct ckpt_api){ .api = CKPT_API_VERSION };
	EXPECT_EQ(-EBUSY, api(self->fd, &a));
}

/*
 * A program built against another API version (an older one, 1, or a newer one) gets
 * -EPROTONOSUPPORT, and what the module speaks: its version and features are copied back.
 */
TEST_F(dev, handshake_wrong_version)
{
	const __u64 other[] = { CKPT_API_VERSION + 1, 1, 0, ~0ULL };

	for (unsigned int i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		struct ckpt_api a = { .api = other[i] };

		if (other[i] == CKPT_API_VERSION)
			continue;
		EXPECT_EQ(-EPROTONOSUPPORT, api(self->fd, &a)) TH_LOG("version %llu",
								      (unsigned long long)other[i]);
		EXPECT_EQ(CKPT_API_VERSION, a.api);
		EXPECT_TRUE(a.features & CKPT_FEATURE_TRACK);
		EXPECT_EQ((__u64)getpagesize(), a.page_size);
	}
	/* The handshake is still to be done: other commands are refused. */
	struct ckpt_stats st = { 0 };

	EXPECT_EQ(-EINVAL, ioctl(self->fd, CKPT_IOC_STATS, &st) ? -errno : 0);
	/* A failed handshake does not use up the file. */
	struct ckpt_api ok = { .api = CKPT_API_VERSION };

	EXPECT_EQ(0, api(self->fd, &ok));
}

TEST_F(dev, handshake_reserved_and_features)
{
	for (int i = 0; i < 4; i++) {
		struct ckpt_api a = { .api = CKPT_API_VERSION };

		a.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, api(self->fd, &a));
	}
	/* A feature to opt in to that the module does not have (none exists at version 2). */
	for (int bit = 0; bit < 64; bit += 7) {
		struct ckpt_api b = { .api = CKPT_API_VERSION, .features = 1ULL << bit };

		EXPECT_EQ(-EOPNOTSUPP, api(self->fd, &b)) TH_LOG("feature bit %d", bit);
		EXPECT_EQ(CKPT_API_VERSION, b.api);
		EXPECT_TRUE(b.features & CKPT_FEATURE_TRACK);
	}
	/* Reserved words are checked before features: -EINVAL. */
	struct ckpt_api c = { .api = CKPT_API_VERSION, .features = 1, .reserved = { 0, 0, 0, 1 } };

	EXPECT_EQ(-EINVAL, api(self->fd, &c));
	/* None of them used up the file. */
	struct ckpt_api d = { .api = CKPT_API_VERSION };

	EXPECT_EQ(0, api(self->fd, &d));
}

/*
 * Every optional behaviour is advertised (this module has all of the header's features, and
 * no bit the header does not name), and ioctls lists exactly the header's commands.
 */
TEST_F(dev, handshake_features_and_commands)
{
	const __u64 all = CKPT_FEATURE_TRACK | CKPT_FEATURE_THP_SPLIT | CKPT_FEATURE_URING_CMD |
			  CKPT_FEATURE_ATTACH | CKPT_FEATURE_GENL | CKPT_FEATURE_RESTORE |
			  CKPT_FEATURE_DUMP | CKPT_FEATURE_RESTORE_PREBUILT | CKPT_FEATURE_HOLD |
			  CKPT_FEATURE_DUMP_PROCESS | CKPT_FEATURE_DUMP_TIMERS | CKPT_FEATURE_WATCH;
	const unsigned long cmds[] = {
		CKPT_IOC_API, CKPT_IOC_REGISTER, CKPT_IOC_UNREGISTER, CKPT_IOC_COLLECT,
		CKPT_IOC_STATS, CKPT_IOC_ATTACH, CKPT_IOC_RELEASE, CKPT_IOC_RESTORE_PREPARE,
		CKPT_IOC_RESTORE_COMMIT, CKPT_IOC_RESTORE_THREAD, CKPT_IOC_DUMP_TASK, CKPT_IOC_WATCH,
	};
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	__u64 bits = 0;

	ASSERT_EQ(0, api(self->fd, &a));
	EXPECT_EQ(all, a.features);
	/* The dump timers: a caller asks for CKPT_DUMP_TIMERS only when this bit says so. */
	EXPECT_TRUE(a.features & CKPT_FEATURE_DUMP_TIMERS);
	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		bits |= 1ULL << _IOC_NR(cmds[i]);
	EXPECT_EQ(bits, a.ioctls);
}

TEST_F(dev, handshake_bad_pointer)
{
	EXPECT_EQ(-EFAULT, api(self->fd, NULL));
	EXPECT_EQ(-EFAULT, api(self->fd, (struct ckpt_api *)1));
}

TEST_F(dev, unknown_commands)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };

	/* Another magic, an unused number, and the right number with the wrong size. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR('x', 0, struct ckpt_api), &a));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(CKPT_IOC_MAGIC, 0x3f, struct ckpt_api), &a));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOC(_IOC_READ | _IOC_WRITE, CKPT_IOC_MAGIC, 0, 56), &a));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOR(CKPT_IOC_MAGIC, 0, struct ckpt_api), &a));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_HARNESS_MAIN

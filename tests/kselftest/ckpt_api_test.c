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

TEST_F(dev, handshake_wrong_version)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION + 1 };

	EXPECT_EQ(-EINVAL, api(self->fd, &a));
	/* The module's version is copied back so the caller can tell. */
	EXPECT_EQ(CKPT_API_VERSION, a.api);
	a = (struct ckpt_api){ .api = 0 };
	EXPECT_EQ(-EINVAL, api(self->fd, &a));
	/* A failed handshake does not use up the file. */
	a = (struct ckpt_api){ .api = CKPT_API_VERSION };
	EXPECT_EQ(0, api(self->fd, &a));
}

TEST_F(dev, handshake_reserved_and_features)
{
	for (int i = 0; i < 4; i++) {
		struct ckpt_api a = { .api = CKPT_API_VERSION };

		a.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, api(self->fd, &a));
	}
	struct ckpt_api b = { .api = CKPT_API_VERSION, .features = 1 };

	EXPECT_EQ(-EINVAL, api(self->fd, &b));
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

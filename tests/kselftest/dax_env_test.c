// SPDX-License-Identifier: GPL-2.0
/*
 * The VM's persistent memory is there and usable the way libckpt's DAX writer uses it:
 * /dev/dax0.0 maps shared and keeps what was written, and a file on the ext4 -o dax mount
 * (/mnt/pmem) maps with MAP_SHARED_VALIDATE | MAP_SYNC.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#define LEN (2UL << 20)	/* device-DAX maps in units of its 2 MiB alignment */

TEST(device_dax_maps_and_keeps_data)
{
	int fd = open("/dev/dax0.0", O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, fd);
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0xa5, LEN);
	ASSERT_EQ(0, munmap(p, LEN));
	p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ((char)0xa5, p[0]);
	EXPECT_EQ((char)0xa5, p[LEN - 1]);
	munmap(p, LEN);
	close(fd);
}

TEST(fsdax_file_maps_with_map_sync)
{
	const char *path = "/mnt/pmem/ckpt-map-sync-test";
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, LEN));
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);

	ASSERT_NE(MAP_FAILED, p) TH_LOG("MAP_SYNC refused: %s", strerror(errno));
	p[0] = 1;
	munmap(p, LEN);
	close(fd);
	unlink(path);
}

TEST(map_sync_refused_off_dax)
{
	/* The control: the same call on tmpfs must fail, or the test above proves nothing. */
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, LEN));
	void *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);

	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EOPNOTSUPP, errno);
	close(fd);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Writes the kernel makes for the process, without a CPU write fault in user mode:
 * read(2) into tracked memory (copy_to_user), process_vm_writev from another process (GUP on
 * a remote mm), and an O_DIRECT read from a block device (GUP, then the driver writes the
 * pages by their kernel address) - also while another thread collects.
 *
 * The O_DIRECT source is /dev/pmem0 itself, read at the physical offset (FIEMAP) of a file
 * written on the ext4 -o dax mount on it: a real direct block read, without writing to the
 * mounted device.
 */
#include <dirent.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "track_util.h"
#include "kselftest_harness.h"

#define NP 64

static long collect_mask(int fd, long id, char *base, unsigned char *rep, size_t pages)
{
	uint64_t out[4096];
	long n = ck_collect(fd, id, out, 4096, 0, NULL);

	memset(rep, 0, pages);
	for (long i = 0; i < n; i++)
		rep[(out[i] - (uintptr_t)base) / PAGE] = 1;
	return n;
}

FIXTURE(k) {
	int fd;
	long id;
	char *m;
	unsigned char rep[NP];
};

FIXTURE_SETUP(k)
{
	self->fd = ck_open();
	ASSERT_LE(0, self->fd);
	self->m = ck_map(NP * PAGE, PAGE);
	ASSERT_NE(NULL, self->m);
	madvise(self->m, NP * PAGE, MADV_NOHUGEPAGE);
	memset(self->m, 0x11, NP * PAGE);
	self->id = ck_register(self->fd, self->m, NP * PAGE, 0);
	ASSERT_LT(0, self->id);
}

FIXTURE_TEARDOWN(k)
{
	close(self->fd);
	munmap(self->m, NP * PAGE);
}

TEST_F(k, read_syscall)
{
	int p[2];
	char data[3 * PAGE];

	memset(data, 0x77, sizeof(data));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(sizeof(data), write(p[1], data, sizeof(data)));
	/* Pages 10..13: a read that starts mid-page and ends mid-page. */
	ASSERT_EQ(sizeof(data), read(p[0], self->m + 10 * PAGE + 100, sizeof(data)));
	ASSERT_EQ(4, collect_mask(self->fd, self->id, self->m, self->rep, NP));
	for (int i = 10; i < 14; i++)
		ASSERT_TRUE(self->rep[i]);
	close(p[0]);
	close(p[1]);
}

TEST_F(k, process_vm_writev_from_child)
{
	char data[2 * PAGE];
	pid_t parent = getpid(), child;
	int status;

	memset(data, 0x55, sizeof(data));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		struct iovec l = { data, sizeof(data) };
		struct iovec r = { self->m + 30 * PAGE, sizeof(data) };

		_exit(process_vm_writev(parent, &l, 1, &r, 1, 0) == sizeof(data) ? 0 : 1);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(0x55, self->m[30 * PAGE]);
	ASSERT_EQ(2, collect_mask(self->fd, self->id, self->m, self->rep, NP));
	ASSERT_TRUE(self->rep[30] && self->rep[31]);
}

/* A file on /mnt/pmem filled with @byte; returns its physical offset on the pmem device. */
static long long pmem_file(const char *path, int byte, size_t len)
{
	char *buf = malloc(len);
	char fm_buf[sizeof(struct fiemap) + sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)fm_buf;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	long long phys = -1;

	if (fd < 0 || !buf)
		goto out;
	memset(buf, byte, len);
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd))
		goto out;
	memset(fm_buf, 0, sizeof(fm_buf));
	fm->fm_length = len;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 1;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) || fm->fm_mapped_extents != 1 ||
	    fm->fm_extents[0].fe_length < len)
		goto out;
	phys = fm->fm_extents[0].fe_physical;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return phys;
}

static int open_pmem_direct(void)
{
	DIR *d = opendir("/dev");
	struct dirent *e;
	char path[300];
	int fd = -1;

	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "pmem", 4)) {
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			fd = open(path, O_RDONLY | O_DIRECT);
			break;
		}
	if (d)
		closedir(d);
	return fd;
}

TEST_F(k, o_direct_read)
{
	long long phys = pmem_file("/mnt/pmem/track_odirect", 0x66, 8 * PAGE);
	int dfd = open_pmem_direct();

	if (phys < 0 || dfd < 0)
		SKIP(return, "no /mnt/pmem file or /dev/pmem* for O_DIRECT");
	ASSERT_EQ(8 * PAGE, pread(dfd, self->m + 40 * PAGE, 8 * PAGE, phys));
	ASSERT_EQ(0x66, self->m[47 * PAGE + 4095]);
	ASSERT_EQ(8, collect_mask(self->fd, self->id, self->m, self->rep, NP));
	for (int i = 40; i < 48; i++)
		ASSERT_TRUE(self->rep[i]);
	close(dfd);
	unlink("/mnt/pmem/track_odirect");
}

struct dio {
	int dfd;
	long long phys[2];
	char *dst;
	atomic_int stop;
	atomic_long reads;
};

static void *dio_loop(void *arg)
{
	struct dio *d = arg;

	while (!atomic_load(&d->stop)) {
		/* Alternate the two files: every read changes the bytes. */
		if (pread(d->dfd, d->dst, 16 * PAGE, d->phys[atomic_load(&d->reads) & 1]) != 16 * PAGE)
			return (void *)1;
		atomic_fetch_add(&d->reads, 1);
	}
	return NULL;
}

/*
 * O_DIRECT reads into m[16 pages at dst) in flight while COLLECT runs over the np pages at m:
 * no lost write once the reads stop (a page copied at each report equals memory at the end).
 */
static void dio_race(struct __test_metadata *_metadata, int fd, long id, char *m, size_t np,
		     size_t dst)
{
	struct dio d = { .dfd = open_pmem_direct(), .dst = m + dst * PAGE };
	char *copy = malloc(np * PAGE);
	uint64_t *out = malloc(np * sizeof(*out));
	pthread_t th;
	void *ret;

	ASSERT_TRUE(copy && out);
	d.phys[0] = pmem_file("/mnt/pmem/track_dio0", 0xa0, 16 * PAGE);
	d.phys[1] = pmem_file("/mnt/pmem/track_dio1", 0xb1, 16 * PAGE);
	if (d.phys[0] < 0 || d.phys[1] < 0 || d.dfd < 0)
		SKIP(return, "no /mnt/pmem file or /dev/pmem* for O_DIRECT");
	memcpy(copy, m, np * PAGE);
	ASSERT_EQ(0, pthread_create(&th, NULL, dio_loop, &d));
	for (int e = 0; e < 400 || (atomic_load(&d.reads) < 300 && e < 200000); e++) {
		long n = ck_collect(fd, id, out, np, 0, NULL);

		ASSERT_LE(0, n);
		for (long i = 0; i < n; i++)
			memcpy(copy + (out[i] - (uintptr_t)m), (void *)(uintptr_t)out[i], PAGE);
	}
	atomic_store(&d.stop, 1);
	pthread_join(th, &ret);
	ASSERT_EQ(NULL, ret);
	long n = ck_collect(fd, id, out, np, 0, NULL);

	for (long i = 0; i < n; i++)
		memcpy(copy + (out[i] - (uintptr_t)m), (void *)(uintptr_t)out[i], PAGE);
	TH_LOG("%ld O_DIRECT reads raced the collects", atomic_load(&d.reads));
	ASSERT_LE(300, atomic_load(&d.reads));
	for (size_t p = 0; p < np; p++) {
		int same = !memcmp(copy + p * PAGE, m + p * PAGE, PAGE);

		ASSERT_TRUE(same) TH_LOG("page %zu: an O_DIRECT write was lost", p);
	}
	close(d.dfd);
	free(copy);
	free(out);
	unlink("/mnt/pmem/track_dio0");
	unlink("/mnt/pmem/track_dio1");
}

/* O_DIRECT reads in flight while COLLECT runs: no lost write once the reads stop. */
TEST_F(k, o_direct_races_collect)
{
	dio_race(_metadata, self->fd, self->id, self->m, NP, 16);
}

/*
 * The same into THP-backed memory. The PTEs of a split huge page map one large folio, whose
 * references are counted per folio: an I/O in flight into any of its pages keeps the folio's
 * reported pages logged.
 */
TEST(o_direct_races_collect_thp)
{
	size_t np = 512;
	char *m = ck_map(np * PAGE, np * PAGE);
	int fd = ck_open();
	long id;

	ASSERT_NE(NULL, m);
	ASSERT_LE(0, fd);
	madvise(m, np * PAGE, MADV_HUGEPAGE);
	memset(m, 0x22, np * PAGE);
	if (ck_anon_huge_kb(m) < 2048)
		TH_LOG("no huge page here (AnonHugePages %ld kB): runs as 4 KiB", ck_anon_huge_kb(m));
	id = ck_register(fd, m, np * PAGE, 0);
	ASSERT_LT(0, id);
	dio_race(_metadata, fd, id, m, np, 200);
	close(fd);
	munmap(m, np * PAGE);
}

/*
 * A reference taken with get_user_pages() and held (here: vmsplice() of a tracked page into a
 * pipe that nobody reads — the same FOLL_GET reference an O_DIRECT read holds while in flight)
 * keeps the page logged; once it is dropped the page is protected again. On THP-backed memory
 * the reference is the folio's: the folio's reported pages stay logged.
 */
static void gup_ref_case(struct __test_metadata *_metadata, size_t np, int huge, int partial)
{
	char *m = ck_map(np * PAGE, huge ? 512 * PAGE : PAGE);
	uint64_t *out = malloc(np * sizeof(*out));
	int fd = ck_open(), p[2];
	struct iovec iov;
	char sink[PAGE];
	long id, n;

	ASSERT_TRUE(m && out);
	ASSERT_LE(0, fd);
	madvise(m, np * PAGE, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(m, 0x33, np * PAGE);
	if (huge && ck_anon_huge_kb(m) < 2048)
		SKIP(return, "no huge page here");
	id = ck_register(fd, m, np * PAGE, 0);
	ASSERT_LT(0, id);
	/*
	 * Partly unmapped huge page: one mapping fewer, so the pipe's reference alone does not
	 * push the refcount past the page count; the module must count the mappings.
	 */
	if (partial)
		ASSERT_EQ(0, madvise(m + 100 * PAGE, PAGE, MADV_DONTNEED));
	m[3 * PAGE] = 1;
	m[7 * PAGE] = 1;
	ASSERT_EQ(0, pipe(p));
	iov = (struct iovec){ .iov_base = m + 3 * PAGE, .iov_len = PAGE };
	ASSERT_EQ(PAGE, vmsplice(p[1], &iov, 1, 0));
	/* Page 3 has a reference in the pipe (and, on THP, so has page 7's folio). */
	ASSERT_EQ(2 + partial, ck_collect(fd, id, out, np, 0, NULL));	/* + the dropped page */
	n = ck_collect(fd, id, out, np, 0, NULL);
	ASSERT_EQ(huge ? 2 : 1, n);
	EXPECT_EQ((uintptr_t)m + 3 * PAGE, out[0]);
	ASSERT_EQ(PAGE, read(p[0], sink, PAGE));
	/* Reference gone: reported once more (it was kept), then clean. */
	ASSERT_EQ(huge ? 2 : 1, ck_collect(fd, id, out, np, 0, NULL));
	ASSERT_EQ(0, ck_collect(fd, id, out, np, 0, NULL));
	close(p[0]);
	close(p[1]);
	close(fd);
	free(out);
	munmap(m, np * PAGE);
}

TEST(gup_reference_keeps_page_logged)
{
	gup_ref_case(_metadata, 64, 0, 0);
}

TEST(gup_reference_keeps_thp_folio_logged)
{
	gup_ref_case(_metadata, 512, 1, 0);
}

TEST(gup_reference_keeps_partly_unmapped_thp_logged)
{
	gup_ref_case(_metadata, 512, 1, 1);
}

TEST_HARNESS_MAIN

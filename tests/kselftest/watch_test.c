// SPDX-License-Identifier: GPL-2.0
/*
 * CKPT_IOC_WATCH (CKPT_FEATURE_WATCH): a watched thread's write faults in a session's regions
 * are reported as (tid, page); other threads' are not. And the command's hostile side: bad and
 * foreign tids, kernel threads, the set's and the report's bounds, a READ into memory it cannot
 * write, ATTACH after ADD, and a storm of threads writing, exiting, forking and unmapping while
 * others add, remove and read (the VM runner fails the run on any WARN/BUG in dmesg).
 */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "track_util.h"

static int watch(int fd, uint64_t op, uint64_t tid, struct ckpt_watch *out)
{
	struct ckpt_watch w = { .op = op, .tid = tid };
	int e = ck_ioctl(fd, CKPT_IOC_WATCH, &w);

	if (out)
		*out = w;
	return e;
}

/* READ up to @max hits into @h; the count, or -errno. *lost if non-NULL. */
static long watch_read(int fd, struct ckpt_watch_hit *h, uint64_t max, uint64_t *lost)
{
	struct ckpt_watch w = { .op = CKPT_WATCH_READ, .hits = (uintptr_t)h, .max = max,
				.hit_size = sizeof(*h) };
	int e = ck_ioctl(fd, CKPT_IOC_WATCH, &w);

	if (lost)
		*lost = w.lost;
	return e ? e : (long)w.count;
}

static pid_t tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

FIXTURE(watch)
{
	int fd;
	char *mem;
	long id;
};

#define NPAGES 512

FIXTURE_SETUP(watch)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	int fd = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, CKPT_IOC_API, &a));
	if (!(a.features & CKPT_FEATURE_WATCH))
		SKIP(return, "the module has no CKPT_FEATURE_WATCH");
	self->fd = fd;
	self->mem = ck_map(NPAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->mem);
	/* One fault per page (a huge page would log 512 pages with one fault). */
	ASSERT_EQ(0, madvise(self->mem, NPAGES * PAGE, MADV_NOHUGEPAGE));
	self->id = ck_register(fd, self->mem, NPAGES * PAGE, 0);
	ASSERT_LT(0, self->id);
}

FIXTURE_TEARDOWN(watch)
{
	close(self->fd);
	munmap(self->mem, NPAGES * PAGE);
}

struct writer {
	char *p;		/* writes here once go is set */
	atomic_int go, done, quit;
	pid_t tid;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->tid = tid();
	atomic_store(&w->done, 1);
	while (!atomic_load(&w->go))
		usleep(100);
	*(volatile char *)w->p = 1;
	atomic_store(&w->done, 2);
	while (!atomic_load(&w->quit))
		usleep(100);
	return NULL;
}

/* The watched thread's first write to a protected page is a hit; others' writes are not. */
TEST_F(watch, watched_thread_writes_are_reported)
{
	struct ckpt_watch_hit h[8];
	struct ckpt_watch w;
	struct writer wr = { .p = self->mem + 2 * PAGE + 100 };
	uint64_t lost = 1, buf[NPAGES];
	pthread_t t;

	ASSERT_EQ(0, pthread_create(&t, NULL, writer_main, &wr));
	while (atomic_load(&wr.done) < 1)
		usleep(100);
	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_ADD, wr.tid, &w));
	EXPECT_EQ(1, w.watched);
	/* Not watched: the main thread's write. */
	self->mem[5 * PAGE] = 1;
	EXPECT_EQ(0, watch_read(self->fd, h, 8, &lost));
	EXPECT_EQ(0, lost);
	atomic_store(&wr.go, 1);
	while (atomic_load(&wr.done) < 2)
		usleep(100);
	memset(h, 0xa5, sizeof(h));
	ASSERT_EQ(1, watch_read(self->fd, h, 8, NULL));
	EXPECT_EQ((uint64_t)wr.tid, h[0].tid);
	EXPECT_EQ((uintptr_t)self->mem + 2 * PAGE, h[0].addr);
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5ULL, h[1].tid);	/* nothing written past the count */
	EXPECT_EQ(0, watch_read(self->fd, h, 8, NULL));	/* taken */
	/* Watching the main thread too: a page already written is not protected (no fault)... */
	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_ADD, tid(), &w));
	EXPECT_EQ(2, w.watched);
	EXPECT_EQ(-EEXIST, watch(self->fd, CKPT_WATCH_ADD, tid(), NULL));
	self->mem[5 * PAGE + 1] = 2;
	EXPECT_EQ(0, watch_read(self->fd, h, 8, NULL));
	/* ...until COLLECT protects it again. */
	ASSERT_LE(2, ck_collect(self->fd, self->id, buf, NPAGES, 0, NULL));
	self->mem[5 * PAGE + 2] = 3;
	ASSERT_EQ(1, watch_read(self->fd, h, 8, NULL));
	EXPECT_EQ((uint64_t)tid(), h[0].tid);
	EXPECT_EQ((uintptr_t)self->mem + 5 * PAGE, h[0].addr);
	/* REMOVE by number; then the thread is not watched. */
	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_REMOVE, tid(), &w));
	EXPECT_EQ(1, w.watched);
	EXPECT_EQ(-ENOENT, watch(self->fd, CKPT_WATCH_REMOVE, tid(), NULL));
	self->mem[7 * PAGE] = 1;
	EXPECT_EQ(0, watch_read(self->fd, h, 8, NULL));
	atomic_store(&wr.quit, 1);
	pthread_join(t, NULL);
	/* The writer exited: it stays watched (its number is held) until REMOVE. */
	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_REMOVE, wr.tid, &w));
	EXPECT_EQ(0, w.watched);
}

/* A set made before the first REGISTER is seen by the hook once the session tracks. */
TEST(watch_before_register)
{
	struct ckpt_api a = { .api = CKPT_API_VERSION };
	struct ckpt_watch_hit h[2];
	int fd = open("/dev/" CKPT_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	char *m = ck_map(4 * PAGE, PAGE);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, CKPT_IOC_API, &a));
	if (!(a.features & CKPT_FEATURE_WATCH))
		SKIP(return, "the module has no CKPT_FEATURE_WATCH");
	ASSERT_EQ(0, watch(fd, CKPT_WATCH_ADD, tid(), NULL));
	EXPECT_EQ(0, watch_read(fd, h, 2, NULL));
	ASSERT_LT(0, ck_register(fd, m, 4 * PAGE, 0));
	m[3 * PAGE] = 1;
	ASSERT_EQ(1, watch_read(fd, h, 2, NULL));
	EXPECT_EQ((uintptr_t)m + 3 * PAGE, h[0].addr);
	close(fd);
	munmap(m, 4 * PAGE);
}

static void *sleeper_main(void *arg)
{
	atomic_int *quit = arg;

	while (!atomic_load(quit))
		usleep(1000);
	return NULL;
}

/* Bad fields, tids that are no thread of the session's process, and the set's bound. */
TEST_F(watch, hostile_arguments)
{
	struct ckpt_attach at = { 0 };
	struct ckpt_watch w;
	struct ckpt_watch_hit h[2];
	pthread_t th[CKPT_WATCH_MAX_TIDS];
	uint64_t watched = 0;
	atomic_int quit = 0;
	struct dirent *e;
	int i, n, added = 1, nospc = 0;
	pid_t child;
	DIR *d;

	EXPECT_EQ(-EINVAL, watch(self->fd, CKPT_WATCH_ADD, 0, NULL));
	EXPECT_EQ(-EINVAL, watch(self->fd, CKPT_WATCH_ADD, (uint64_t)INT_MAX + 1, NULL));
	EXPECT_EQ(-EINVAL, watch(self->fd, CKPT_WATCH_ADD, ~0ULL, NULL));
	EXPECT_EQ(-EINVAL, watch(self->fd, 0, tid(), NULL));
	EXPECT_EQ(-EINVAL, watch(self->fd, 4, tid(), NULL));
	EXPECT_EQ(-EINVAL, watch(self->fd, ~0ULL, tid(), NULL));
	w = (struct ckpt_watch){ .op = CKPT_WATCH_ADD, .tid = tid(), .reserved = { 0, 0, 0, 1 } };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_WATCH, &w));
	w = (struct ckpt_watch){ .op = CKPT_WATCH_ADD, .tid = tid(), .max = 1 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_WATCH, &w));
	w = (struct ckpt_watch){ .op = CKPT_WATCH_READ, .tid = 1, .hit_size = sizeof(h[0]) };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_WATCH, &w));
	w = (struct ckpt_watch){ .op = CKPT_WATCH_READ, .hits = (uintptr_t)h, .max = 2, .hit_size = 8 };
	EXPECT_EQ(-EINVAL, ck_ioctl(self->fd, CKPT_IOC_WATCH, &w));
	EXPECT_EQ(-EFAULT, ck_ioctl(self->fd, CKPT_IOC_WATCH, NULL));
	EXPECT_EQ(-EFAULT, ck_ioctl(self->fd, CKPT_IOC_WATCH, (void *)8));
	/* No such thread (above pid_max's ceiling), the idle task, kthreadd, init (another
	 * process), a child: none is a thread of this process. */
	EXPECT_EQ(-ESRCH, watch(self->fd, CKPT_WATCH_ADD, (1 << 22) + 1, NULL));
	EXPECT_EQ(-ESRCH, watch(self->fd, CKPT_WATCH_ADD, 2, NULL));
	if (getpid() != 1) {
		EXPECT_EQ(-ESRCH, watch(self->fd, CKPT_WATCH_ADD, 1, NULL));
	}
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		pause();
		_exit(0);
	}
	EXPECT_EQ(-ESRCH, watch(self->fd, CKPT_WATCH_ADD, child, NULL));
	/* A zombie: no address space any more. */
	kill(child, SIGKILL);
	usleep(100000);
	EXPECT_EQ(-ESRCH, watch(self->fd, CKPT_WATCH_ADD, child, NULL));
	waitpid(child, NULL, 0);
	EXPECT_EQ(-ENOENT, watch(self->fd, CKPT_WATCH_REMOVE, child, NULL));
	/* The set's bound: CKPT_WATCH_MAX_TIDS threads, the next one -ENOSPC. */
	/* This thread and CKPT_WATCH_MAX_TIDS others: one too many. */
	for (n = 0; n < CKPT_WATCH_MAX_TIDS; n++) {
		ASSERT_EQ(0, pthread_create(&th[n], NULL, sleeper_main, &quit));
	}
	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_ADD, tid(), NULL));
	/* The others' tids, from /proc/self/task. */
	d = opendir("/proc/self/task");
	ASSERT_NE(NULL, d);
	while ((e = readdir(d))) {
		long t = atol(e->d_name);
		int r;

		if (t <= 0 || t == tid())
			continue;
		r = watch(self->fd, CKPT_WATCH_ADD, t, &w);
		if (!r) {
			added++;
			watched = w.watched;
		} else if (r == -ENOSPC) {
			nospc++;
		} else {
			EXPECT_EQ(0, r);
		}
	}
	closedir(d);
	EXPECT_EQ(CKPT_WATCH_MAX_TIDS, added);
	EXPECT_EQ(1, nospc);
	EXPECT_EQ(CKPT_WATCH_MAX_TIDS, watched);
	/* ATTACH after ADD: the set is of this process. */
	at.pid = getpid();
	EXPECT_EQ(-EBUSY, ck_ioctl(self->fd, CKPT_IOC_ATTACH, &at));
	atomic_store(&quit, 1);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	/* Closing with 64 exited threads in the set frees it (kmemleak/slub_debug watch). */
}

/* The report's bound: CKPT_WATCH_MAX_HITS kept, the others counted as lost; READ into
 * memory it cannot write takes nothing. */
TEST_F(watch, report_bound_and_unwritable_buffer)
{
	static struct ckpt_watch_hit h[NPAGES];
	uint64_t lost = 0;
	char *ro;
	long n;
	int i;

	ASSERT_EQ(0, watch(self->fd, CKPT_WATCH_ADD, tid(), NULL));
	for (i = 0; i < NPAGES; i++)
		self->mem[i * PAGE] = 1;
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, watch_read(self->fd, (struct ckpt_watch_hit *)ro, 4, NULL));
	EXPECT_EQ(-EFAULT, watch_read(self->fd, (struct ckpt_watch_hit *)8, 4, NULL));
	/* Partly: 10 hits asked, the page ends after 4. */
	EXPECT_EQ(-EFAULT, watch_read(self->fd, (struct ckpt_watch_hit *)(ro + PAGE) - 4, 10, NULL));
	n = watch_read(self->fd, h, 10, &lost);
	ASSERT_EQ(10, n);
	EXPECT_EQ(NPAGES - CKPT_WATCH_MAX_HITS, lost);
	for (i = 0; i < 10; i++) {
		EXPECT_EQ((uintptr_t)self->mem + i * PAGE, h[i].addr);	/* oldest first */
	}
	n = watch_read(self->fd, h, NPAGES, &lost);
	ASSERT_EQ(CKPT_WATCH_MAX_HITS - 10, n);
	EXPECT_EQ(NPAGES - CKPT_WATCH_MAX_HITS, lost);
	EXPECT_EQ((uintptr_t)self->mem + 10 * PAGE, h[0].addr);
	n = watch_read(self->fd, h, NPAGES, &lost);
	EXPECT_EQ(0, n);
	EXPECT_EQ(0, lost);
	/* max 0: nothing taken. */
	EXPECT_EQ(0, watch_read(self->fd, NULL, 0, NULL));
	munmap(ro, PAGE);
}

/* Storm: watched threads write, exit and are replaced; others fork (the children write their
 * copy), unmap and remap part of the region; one thread adds, removes and reads all the time;
 * the session is closed at the end with everything in flight. */
struct storm {
	int fd;
	char *mem;
	atomic_int quit;
	atomic_long ops;
};

static void *storm_writer(void *arg)
{
	struct storm *s = arg;
	uint64_t r = (uint64_t)tid() * 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 200 && !atomic_load(&s->quit); i++) {
		size_t p = ck_rand(&r) % (NPAGES / 2);

		*(volatile char *)(s->mem + p * PAGE) = (char)i;
		if (i % 50 == 0)
			usleep(100);
	}
	return NULL;
}

static void *storm_adder(void *arg)
{
	struct storm *s = arg;
	struct ckpt_watch_hit h[16];
	uint64_t r = 7;

	while (!atomic_load(&s->quit)) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		if (!d)
			break;
		while ((e = readdir(d))) {
			long t = atol(e->d_name);
			int x;

			if (t <= 0)
				continue;
			x = watch(s->fd, ck_rand(&r) % 3 ? CKPT_WATCH_ADD : CKPT_WATCH_REMOVE, t, NULL);
			if (x && x != -EEXIST && x != -ENOENT && x != -ENOSPC && x != -ESRCH) {
				fprintf(stderr, "WATCH ADD/REMOVE %ld: %d\n", t, x);
				atomic_store(&s->quit, 2);
			}
		}
		closedir(d);
		if (watch_read(s->fd, h, 16, NULL) < 0) {
			fprintf(stderr, "WATCH READ failed\n");
			atomic_store(&s->quit, 2);
		}
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

static void *storm_mapper(void *arg)
{
	struct storm *s = arg;
	uint64_t buf[NPAGES];

	while (!atomic_load(&s->quit)) {
		char *p = s->mem + (NPAGES / 2) * PAGE;
		pid_t c;

		/* The upper half: unmapped and mapped again (the region's pages change). */
		munmap(p, 8 * PAGE);
		if (mmap(p, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == MAP_FAILED)
			atomic_store(&s->quit, 2);
		ck_collect(s->fd, 0, buf, NPAGES, 0, NULL);
		c = fork();
		if (c == 0) {
			s->mem[3 * PAGE] = 1;	/* the child's own copy: no session of its mm */
			_exit(0);
		}
		if (c > 0)
			waitpid(c, NULL, 0);
		usleep(1000);
	}
	return NULL;
}

TEST_F(watch, storm_of_threads_exiting_forking_unmapping)
{
	struct storm s = { .fd = self->fd, .mem = self->mem };
	pthread_t adder, mapper;
	time_t end = time(NULL) + 3;
	struct ckpt_watch_hit h[2];
	int rounds = 0, fd2;

	ASSERT_EQ(0, pthread_create(&adder, NULL, storm_adder, &s));
	ASSERT_EQ(0, pthread_create(&mapper, NULL, storm_mapper, &s));
	while (time(NULL) < end && atomic_load(&s.quit) != 2) {
		pthread_t w[6];

		for (int i = 0; i < 6; i++) {
			ASSERT_EQ(0, pthread_create(&w[i], NULL, storm_writer, &s));
		}
		for (int i = 0; i < 6; i++)
			pthread_join(w[i], NULL);
		rounds++;
	}
	EXPECT_NE(2, atomic_load(&s.quit));
	atomic_store(&s.quit, 1);
	pthread_join(adder, NULL);
	pthread_join(mapper, NULL);
	EXPECT_LT(0, rounds);
	EXPECT_LT(0, atomic_load(&s.ops));
	/* Close with a set full of exited threads; a second session of the same mm meanwhile. */
	fd2 = ck_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, watch(fd2, CKPT_WATCH_ADD, tid(), NULL));
	ASSERT_LT(0, ck_register(fd2, self->mem + 100 * PAGE, PAGE, 0));
	close(self->fd);
	self->fd = fd2;
	self->mem[100 * PAGE] = 1;
	EXPECT_EQ(1, watch_read(fd2, h, 2, NULL));
}

TEST_HARNESS_MAIN

/* SPDX-License-Identifier: MIT */
/*
 * workq: a multithreaded work queue that survives kill -9 (libckpt's thread model, C API).
 *
 *   workq --store PATH [--pairs P] [--items N] [--work W] [--interval-ms T]
 *   workq --bench SECONDS --mode pthread|ckpt [--pairs P] [--interval-ms T] [--store PATH]
 *
 * P producer and P consumer threads share a bounded persistent queue (the region "queue")
 * guarded by a ckpt_mutex_t. Each is a non-volatile thread ("producer-i", "consumer-j") with
 * persistent state of its own, updated in the same critical section as the queue, so that a
 * checkpoint (the timer's, taken only when no thread holds the lock) shows queue and threads
 * agreeing: a producer's count in its thread region, a consumer's count and checksum in its
 * thread-local persistent heap. A volatile thread logs progress (reads only). Restarted with
 * the same arguments it restores the queue (ckpt_restore), each thread its own state by name
 * (ckpt_thread_restore), and finishes with the same "result:" line as an uninterrupted run.
 *
 * --bench: run for SECONDS with no end of items and print the items consumed per second, with
 * plain pthread mutexes and no library (--mode pthread), or with ckpt_mutex_t and registered
 * state (--mode ckpt; checkpoints at --interval-ms, 0 = none).
 */
#define _GNU_SOURCE
#include <ckpt/ckpt.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CAP 1024
#define MAXP 16

struct queue {			/* the shared persistent region */
	ckpt_mutex_t mu;
	pthread_mutex_t pmu;	/* --mode pthread */
	uint64_t head, count;	/* ring of CAP items */
	uint64_t pushed, popped;	/* totals */
	uint64_t items[CAP];
};

struct producer_state {		/* a producer's thread region (one page) */
	uint64_t produced;
	uint64_t transient_tid;	/* reset on restore (ckpt_transient) */
};

struct consumer_state {		/* the root of a consumer's thread heap */
	uint64_t consumed;
	uint64_t sum;
};

static ckpt_t *c;
static struct queue *q;
static pthread_cond_t nonempty = PTHREAD_COND_INITIALIZER, nonfull = PTHREAD_COND_INITIALIZER;
static int pairs = 2, plain;
static uint64_t items = 200000, work = 200, per_producer;
static atomic_int stop_bench, finished;
static atomic_int restored;	/* worker threads past their ckpt_thread_restore */
static atomic_uint_fast64_t bench_consumed;
static _Atomic uint64_t tot_produced, tot_consumed, tot_sum;	/* the threads' state at their end */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "workq: %s: %s (%s)\n", what, strerror(-r), c ? ckpt_last_error(c) : "");
	exit(1);
}

static void lock(void)
{
	if (plain)
		pthread_mutex_lock(&q->pmu);
	else
		ckpt_mutex_lock(&q->mu);
}

static void unlock(void)
{
	if (plain)
		pthread_mutex_unlock(&q->pmu);
	else
		ckpt_mutex_unlock(&q->mu);
}

static void wait_on(pthread_cond_t *cv)
{
	if (plain)
		pthread_cond_wait(cv, &q->pmu);
	else
		ckpt_cond_wait(cv, &q->mu);
}

static void *page_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void *producer(void *arg)
{
	int i = (int)(intptr_t)arg;
	char name[32];
	struct producer_state *st = page_alloc(4096);
	int r;

	snprintf(name, sizeof(name), "producer-%d", i);
	if (c) {
		if ((r = ckpt_thread_attach_nv(c, name)) || (r = ckpt_thread_register(c, "state", st, 4096)) ||
		    (r = ckpt_transient(c, "state", offsetof(struct producer_state, transient_tid), 8, NULL)))
			die("producer attach", r);
		r = ckpt_thread_restore(c);
		if (r < 0 && r != -ENOENT)
			die("producer restore", r);
		st->transient_tid = (uint64_t)gettid();
		atomic_fetch_add(&restored, 1);
	}
	for (;;) {
		if (!stop_bench && per_producer && st->produced >= per_producer)
			break;
		if (stop_bench)
			break;
		uint64_t v = mix(((uint64_t)i << 40) + st->produced);
		for (uint64_t k = 0; k < work; k++)	/* making the item */
			v = mix(v);
		lock();
		while (q->count == CAP && !stop_bench)
			wait_on(&nonfull);
		if (stop_bench) {
			unlock();
			break;
		}
		q->items[(q->head + q->count) % CAP] = v;
		q->count++;
		q->pushed++;
		st->produced++;	/* in the same critical section as the push */
		pthread_cond_signal(&nonempty);
		unlock();
	}
	atomic_fetch_add(&tot_produced, st->produced);
	if (c)
		ckpt_thread_detach(c);
	return NULL;
}

static void *consumer(void *arg)
{
	int j = (int)(intptr_t)arg;
	char name[32];
	struct consumer_state *st = NULL;
	ckpt_heap_t *h;
	int r;

	snprintf(name, sizeof(name), "consumer-%d", j);
	if (c) {
		if ((r = ckpt_thread_attach_nv(c, name)) || (r = ckpt_thread_heap_open(c, "state", 1 << 16, NULL, &h)))
			die("consumer attach", r);
		r = ckpt_thread_restore(c);
		if (r < 0 && r != -ENOENT)
			die("consumer restore", r);
		ckpt_heap_root(h, (void **)&st);
		if (!st) {
			if ((r = ckpt_heap_alloc(h, sizeof(*st), (void **)&st)))
				die("heap alloc", r);
			memset(st, 0, sizeof(*st));
			ckpt_heap_set_root(h, st);
		}
		atomic_fetch_add(&restored, 1);
	} else {
		st = calloc(1, sizeof(*st));
	}
	for (;;) {
		lock();
		while (q->count == 0 && q->popped < items && !stop_bench)
			wait_on(&nonempty);
		if (stop_bench || q->popped >= items) {
			pthread_cond_broadcast(&nonempty);
			unlock();
			break;
		}
		uint64_t v = q->items[q->head];
		q->head = (q->head + 1) % CAP;
		q->count--;
		q->popped++;
		st->consumed++;	/* in the same critical section as the pop */
		st->sum += mix(v);
		pthread_cond_signal(&nonfull);
		unlock();
		for (uint64_t k = 0; k < work; k++)	/* using the item */
			v = mix(v);
		if (v == 42)
			fputc('\n', stderr);	/* keeps the loop from being optimised away */
		atomic_fetch_add(&bench_consumed, 1);
	}
	atomic_fetch_add(&tot_consumed, st->consumed);
	atomic_fetch_add(&tot_sum, st->sum);
	if (c)
		ckpt_thread_detach(c);
	else
		free(st);
	return NULL;
}

/* A volatile thread: reads the queue's counters and reports checkpoints. A line
 * "items N: checkpoint epoch E" has N <= the items popped in epoch E (N is read before the
 * epoch, and the checkpoint's world stop comes after that read or freezes it). */
static void *logger(void *arg)
{
	(void)arg;
	int r = ckpt_thread_attach_volatile(c);
	if (r)
		die("logger attach", r);
	uint64_t last = ckpt_epoch(c), n_prev = 0;
	while (!atomic_load(&finished)) {
		uint64_t n = __atomic_load_n(&q->popped, __ATOMIC_ACQUIRE);
		uint64_t e = ckpt_epoch(c);
		if (e > last) {
			printf("items %" PRIu64 ": checkpoint epoch %" PRIu64 "\n", n_prev, e);
			fflush(stdout);
			last = e;
		}
		n_prev = n;
		if ((r = ckpt_thread_check(c)))	/* it only reads: never told */
			die("logger wrote persistent memory", r);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	ckpt_thread_detach(c);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *store = NULL, *mode = "ckpt";
	uint64_t interval_ms = 100;
	double bench = 0;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			goto usage;
		if (!strcmp(a, "--store"))
			store = v;
		else if (!strcmp(a, "--pairs"))
			pairs = atoi(v);
		else if (!strcmp(a, "--items"))
			items = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--work"))
			work = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--interval-ms"))
			interval_ms = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--bench"))
			bench = atof(v);
		else if (!strcmp(a, "--mode"))
			mode = v;
		else
			goto usage;
		i++;
	}
	if (pairs < 1 || pairs > MAXP || (!bench && !store) || !items)
		goto usage;
	plain = !strcmp(mode, "pthread");
	if (bench) {
		items = UINT64_MAX;
	} else {
		if (items % (uint64_t)pairs)
			items -= items % (uint64_t)pairs;
		per_producer = items / (uint64_t)pairs;
	}

	q = page_alloc(sizeof(*q));
	pthread_mutex_init(&q->pmu, NULL);
	ckpt_mutex_init(&q->mu);
	if (!plain && store) {
		ckpt_config_t cfg;
		ckpt_config_init(&cfg);
		cfg.flags |= CKPT_CFG_CREATE;	/* a blank device (killed before its first checkpoint) too */
		if ((r = ckpt_open(store, &cfg, &c)) < 0) {
			fprintf(stderr, "workq: %s\n", ckpt_open_error());
			return 1;
		}
		if ((r = ckpt_register(c, "queue", q, (sizeof(*q) + 4095) & ~(size_t)4095)))
			die("register", r);
		r = ckpt_restore(c);
		if (r < 0 && r != -ENOENT)
			die("restore", r);
		if (!bench) {
			if (r == 0)
				printf("resumed at items %" PRIu64 "\n", q->popped);
			else
				printf("starting: %d pairs, %" PRIu64 " items\n", pairs, items);
			fflush(stdout);
		}
	} else if (!plain && bench) {
		fprintf(stderr, "workq: --mode ckpt needs --store\n");
		return 2;
	}

	pthread_t th[2 * MAXP], log_th;
	double t0 = now_s();
	for (int i = 0; i < pairs; i++) {
		pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i);
		pthread_create(&th[pairs + i], NULL, consumer, (void *)(intptr_t)i);
	}
	if (c) {
		/* The timer starts once every thread has restored: a checkpoint before ckpt_restore
		 * would commit the fresh queue over the stored one, and on a fresh store one taken
		 * before a thread has attached would hold the threads started so far, so that the
		 * late one's ckpt_thread_restore fails -ESRCH (a new name). Its checkpoints are
		 * automatic and lock-aligned. */
		while (atomic_load(&restored) < 2 * pairs) {
			struct timespec ts = {0, 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (interval_ms && (r = ckpt_set_timer(c, interval_ms)))
			die("timer", r);
	}
	if (c && !bench)
		pthread_create(&log_th, NULL, logger, NULL);
	if (bench) {
		struct timespec ts = {(time_t)bench, (long)((bench - (time_t)bench) * 1e9)};
		nanosleep(&ts, NULL);
		uint64_t n = atomic_load(&bench_consumed);
		double dt = now_s() - t0;
		struct ckpt_session_stats s = {0};
		if (c)
			ckpt_get_stats(c, &s);
		uint64_t ck = s.checkpoints;
		atomic_store(&stop_bench, 1);
		lock();
		pthread_cond_broadcast(&nonempty);
		pthread_cond_broadcast(&nonfull);
		unlock();
		for (int i = 0; i < 2 * pairs; i++)
			pthread_join(th[i], NULL);
		/* The checkpoints of the measured window (the count at its end) and the time the
		 * program spent in them: waiting for the threads to park, collecting, persisting. */
		printf("bench: mode=%s pairs=%d interval_ms=%" PRIu64 " items_per_s=%.0f checkpoints=%" PRIu64
		       " checkpoints_per_s=%.2f stop_ms=%.1f collect_ms=%.1f persist_ms=%.1f tracker=%s\n",
		       plain ? "pthread" : "ckpt", pairs, c ? interval_ms : 0, n / dt, ck, ck / dt,
		       s.total_stop_ns / 1e6, s.total_collect_ns / 1e6, s.total_persist_ns / 1e6,
		       c ? s.tracker : "-");
		if (c)
			ckpt_close(c);
		return 0;
	}
	for (int i = 0; i < 2 * pairs; i++)
		pthread_join(th[i], NULL);
	atomic_store(&finished, 1);
	if (c)
		pthread_join(log_th, NULL);

	/* The result: totals and a checksum that do not depend on which consumer got which item,
	 * summed from the threads' own persistent state (each restored by name from the same epoch
	 * as the queue): they must agree with the queue's counters. */
	int consistent = tot_produced == q->pushed && tot_consumed == q->popped && q->count == 0 &&
			 q->popped == items;
	printf("result: items=%" PRIu64 " checksum=%016" PRIx64 " %s\n", q->popped, tot_sum,
	       consistent ? "consistent" : "INCONSISTENT");
	if (!consistent)
		printf("# produced %" PRIu64 " pushed %" PRIu64 " consumed %" PRIu64 " popped %" PRIu64 " queued %" PRIu64 "\n",
		       tot_produced, q->pushed, tot_consumed, q->popped, q->count);
	fflush(stdout);
	if (c)
		ckpt_close(c);
	return 0;
usage:
	fprintf(stderr, "usage: workq --store PATH [--pairs P] [--items N] [--work W] [--interval-ms T]\n"
			"       workq --bench SECONDS --mode pthread|ckpt [--pairs P] [--interval-ms T] [--store PATH]\n");
	return 2;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The /dev/ckpt ioctl fuzzer: any bytes, every command, from several threads on shared and
 * private files, while other threads fault on tracked memory, unmap, remap and madvise it, fork
 * (the children keep using the inherited files) and exit. The hostile cases of the threat
 * model ("any local user in the ckpt group may call it with any bytes, from several threads,
 * while other threads fault, unmap, fork and exit") are the named tests below.
 *
 * Seed: random unless CKPT_FUZZ_SEED is set; printed with the number of calls made. Each
 * thread draws from its own stream derived from the seed, so a seed replays every thread's
 * choices (not their interleaving). CKPT_FUZZ_CALLS sets the calls of random_calls
 * (default 100000; make fuzz runs 1000000). CKPT_FUZZ_HOLD_TAKE_RACE=0: see fuzz_util.h.
 *
 * Besides "the kernel did not crash" (the harness fails a run whose kernel log shows a BUG,
 * WARNING or a SLUB/page-poison report), every call is checked:
 *   - its result is 0 or an errno the UAPI header documents for that command; a number that
 *     is not a command gives -ENOTTY, a command before the handshake -EINVAL, an argument
 *     pointer that cannot be read -EFAULT, a non-zero reserved word or unknown flag -EINVAL;
 *   - it wrote nothing outside its output (red zones around arguments and buffers, a
 *     read-only page used as the argument stays as it was);
 *   - what it reports is well-formed (COLLECT addresses page-aligned, inside the session's
 *     regions, ascending; counts within the buffer; the handshake's version, page size and
 *     command bits exact);
 * and sequences check the module's promises under the same storm:
 *   - a region's report is a superset of the pages written since the last COLLECT;
 *   - a HOLD's copies are exactly the held pages written after it, with their COLLECT-time
 *     bytes;
 *   - memory nobody writes (a tracked canary, registered and collected all the time; the
 *     untouched half of a child ATTACHed while traced and stopped) keeps its bytes, and gets
 *     no copies;
 *   - ATTACH is refused (-EPERM) for a process the calling thread does not trace, or traces
 *     but has not stopped; it succeeds for its stopped tracee (attach_round).
 */
#include <liburing.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>

#include "fuzz_util.h"
#include "kselftest_harness.h"

#define NWORK		4	/* fuzzing threads */
#define NSHARED		3	/* files every thread (and forked children) uses */
#define CHAOS_PAGES	512	/* memory the chaos threads fault on, unmap, remap, madvise */
#define ARENA_PAGES	128	/* per worker, for its oracle sequences */
#define SCRATCH_PAGES	16	/* per worker, tracked: argument pointers into tracked memory */
#define CANARY_PAGES	32	/* tracked, collected, never written */
#define BUF_PAGES	20	/* per worker: outputs, with red zones around */
#define TRACEE_PAGES	32	/* per worker: what its traced child's session tracks */
#define RED		0x5a	/* red-zone byte */

static uint64_t seed0;
static atomic_long attached_ok, attached_ops;	/* ATTACHes to a traced child, calls on them */
static bool hold_race;
static atomic_int stop_chaos;

static char *chaos, *canary;
static int canary_fd;
static uint64_t canary_id;
static int shared_fd[NSHARED];
static pthread_rwlock_t shared_lk[NSHARED];
static int data_fd, dir_fd, pipe_rw[2], wronly_fd;
static uint64_t keep_start, keep_end;
static uint64_t hole;			/* an address range nothing is mapped at (16 pages) */
static pid_t victim;
static volatile uint64_t *victim_info;	/* shared page: [0] pattern area, [1] pages, [2] scratch */

/* Set while a thread touches memory that may be unmapped on purpose (volatile: the signal
 * handler reads it, the compiler must not drop or move the stores around the accesses). */
static __thread sigjmp_buf *volatile tl_jmp;

static void segv(int sig, siginfo_t *si, void *uc)
{
	char msg[160];
	int n;

	if (tl_jmp)
		siglongjmp(*tl_jmp, 1);
	/* A real crash: say where (relative to segv(), for nm), then let it happen. */
	n = snprintf(msg, sizeof(msg), "# fuzzer crashed: signal %d at %p, rip %#llx, segv() at %p\n",
		     sig, si->si_addr,
		     (unsigned long long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP], (void *)segv);
	if (write(2, msg, n) < 0)
		n = 0;
	signal(sig, SIG_DFL);
}

static uint8_t canary_byte(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 12) * 7 + 0x33);
}

/* ---------------------------------------------------------------------------------------- */
/* Worker state */

struct wk {
	int idx;
	struct fz_rng r;
	int fd;			/* private session for random calls */
	int ofd;		/* private session for the oracle sequences only */
	char *arena;		/* ARENA_PAGES, oracle regions */
	char *scratch;		/* SCRATCH_PAGES, registered on @fd: tracked argument memory */
	uint64_t scratch_id;
	unsigned char *buf;	/* BUF_PAGES: red zone, outputs, red zone */
	char *ro;		/* 1 page, read-only with a known pattern */
	char *none;		/* 1 page, PROT_NONE */
	char *edge;		/* 1 page followed by an unmapped one */
	char *snap;		/* ARENA_PAGES: oracle snapshots */
	char *tarea;		/* TRACEE_PAGES: the traced child's copy is what attach_round tracks */
	uint64_t *list;		/* reported addresses, oracle */
	struct io_uring ring;
	bool ring_ok;
	long calls;
	bool child;		/* in a forked child: no PREPARE / RESTORE_THREAD */
	bool prepared;		/* a random PREPARE succeeded: drop it before anything else */
};

static void wk_seed_info(struct wk *w, char *s, size_t n)
{
	snprintf(s, n, "worker %d", w->idx);
}

#define FAIL(w, ...)                                                                          \
	do {                                                                                  \
		char _who[32];                                                                \
		char _m[400];                                                                 \
		wk_seed_info(w, _who, sizeof(_who));                                          \
		snprintf(_m, sizeof(_m), __VA_ARGS__);                                        \
		fz_fail(seed0, "%s: %s", _who, _m);                                           \
	} while (0)

static void ro_fill(struct wk *w)
{
	for (int i = 0; i < 4096; i++)
		w->ro[i] = (char)(i ^ 0xc3);
}

static bool ro_intact(struct wk *w)
{
	for (int i = 0; i < 4096; i++)
		if (w->ro[i] != (char)(i ^ 0xc3))
			return false;
	return true;
}

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int wk_init(struct wk *w, int idx)
{
	w->idx = idx;
	fz_rng_init(&w->r, seed0, 100 + idx);
	w->fd = ck_open();
	w->ofd = ck_open();
	w->arena = ck_map(ARENA_PAGES * PAGE, 2 << 20);
	w->scratch = map_anon(SCRATCH_PAGES * PAGE, PROT_READ | PROT_WRITE);
	w->buf = map_anon(BUF_PAGES * PAGE, PROT_READ | PROT_WRITE);
	w->ro = map_anon(PAGE, PROT_READ | PROT_WRITE);
	w->none = map_anon(PAGE, PROT_NONE);
	w->edge = map_anon(2 * PAGE, PROT_READ | PROT_WRITE);
	w->snap = map_anon(ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE);
	w->list = malloc(ARENA_PAGES * 8 * 8);
	w->tarea = map_anon(TRACEE_PAGES * PAGE, PROT_READ | PROT_WRITE);
	if (w->fd < 0 || w->ofd < 0 || !w->arena || !w->scratch || !w->buf || !w->ro || !w->none ||
	    !w->edge || !w->snap || !w->list || !w->tarea)
		return -1;
	/* Not collapsed into a THP (a collapse is logged, and held pages copied, as written). */
	madvise(w->tarea, TRACEE_PAGES * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < TRACEE_PAGES / 2 * PAGE; i++)
		w->tarea[i] = (char)canary_byte(i);
	/* Half of the arena may be THP-backed, half not. */
	madvise(w->arena, ARENA_PAGES * PAGE / 2, MADV_HUGEPAGE);
	madvise(w->arena + ARENA_PAGES * PAGE / 2, ARENA_PAGES * PAGE / 2, MADV_NOHUGEPAGE);
	memset(w->arena, 1, ARENA_PAGES * PAGE);
	memset(w->scratch, 2, SCRATCH_PAGES * PAGE);
	ro_fill(w);
	mprotect(w->ro, PAGE, PROT_READ);
	/* A guard page that stays: an unmapped one could be reused by the next mmap. */
	mprotect(w->edge + PAGE, PAGE, PROT_NONE);
	w->scratch_id = ck_register(w->fd, w->scratch, SCRATCH_PAGES * PAGE, 0);
	w->ring_ok = !io_uring_queue_init(4, &w->ring, 0);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Argument pointers */

enum pclass {
	P_GOOD,		/* in the worker's buffer, red zones around */
	P_MISALIGNED,	/* same, at an odd address */
	P_SCRATCH,	/* in tracked (and maybe held) memory of this worker */
	P_CHAOS,	/* in the chaos pool: tracked, unmapped, remapped meanwhile */
	P_RO,		/* a read-only page */
	P_EDGE,		/* straddling the end of a mapping */
	P_NULL, P_KERNEL, P_NONCANON, P_HOLE, P_NONE,	/* cannot be read: -EFAULT */
	P_NCLASS
};

static bool pclass_bad(enum pclass c)
{
	return c >= P_NULL;
}

static enum pclass pick_class(struct wk *w)
{
	uint64_t x = fz_below(&w->r, 100);

	if (x < 60)
		return P_GOOD;
	if (x < 66)
		return P_MISALIGNED;
	if (x < 72)
		return P_SCRATCH;
	if (x < 76)
		return P_CHAOS;
	if (x < 80)
		return P_RO;
	if (x < 84)
		return P_EDGE;
	return P_NULL + fz_below(&w->r, 5);
}

/*
 * Where an object of @size bytes goes for class @c; @slot picks one of several disjoint
 * places in the worker's buffer (the argument and its buffers must not overlap).
 */
static char *place(struct wk *w, enum pclass c, size_t size, int slot)
{
	switch (c) {
	case P_GOOD:
		return (char *)w->buf + PAGE + slot * 6 * PAGE;
	case P_MISALIGNED:
		return (char *)w->buf + PAGE + slot * 6 * PAGE + 1 + fz_below(&w->r, 7);
	case P_SCRATCH:
		return w->scratch + fz_below(&w->r, SCRATCH_PAGES - 5) * PAGE +
		       (size < PAGE ? fz_below(&w->r, (PAGE - size) / 8 + 1) * 8 : 0);
	case P_CHAOS:
		return chaos + fz_below(&w->r, CHAOS_PAGES - 8) * PAGE + fz_below(&w->r, 64) * 8;
	case P_RO:
		return w->ro;
	case P_EDGE:
		return w->edge + PAGE - 1 - fz_below(&w->r, size < PAGE ? size - 1 : PAGE - 1);
	case P_NULL:
		return fz_one_in(&w->r, 2) ? NULL : (char *)8;
	case P_KERNEL:
		return (char *)0xffff888000000000ULL + fz_below(&w->r, 1 << 20) * 8;
	case P_NONCANON:
		return (char *)0x0000900000000000ULL + (fz_r(&w->r) & 0x0000ffffffff0000ULL);
	case P_HOLE:
		return (char *)hole + fz_below(&w->r, 8) * PAGE;
	case P_NONE:
	default:
		return w->none;
	}
}

/* Copy into memory that may be unmapped or read-only: false if it faulted. */
static bool safe_write(void *dst, const void *src, size_t n)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		tl_jmp = NULL;
		return false;
	}
	tl_jmp = &jb;
	for (size_t i = 0; i < n; i++)
		((volatile char *)dst)[i] = ((const char *)src)[i];
	tl_jmp = NULL;
	return true;
}

/* Put the argument bytes @a (size @n) at @p for class @c. */
static void put_arg(struct wk *w, enum pclass c, char *p, const void *a, size_t n)
{
	if (pclass_bad(c))
		return;
	if (c == P_RO) {
		/* A read-only page whose bytes are the argument: its own copy, restored after. */
		mprotect(w->ro, PAGE, PROT_READ | PROT_WRITE);
		memcpy(w->ro, a, n);
		mprotect(w->ro, PAGE, PROT_READ);
		return;
	}
	if (c == P_EDGE) {
		memcpy(p, a, w->edge + PAGE - p);
		return;
	}
	safe_write(p, a, n);
}

/* Red zones: 64 bytes each side of [p, p + n) in the worker's buffer. */
static void red_set(char *p, size_t n)
{
	memset(p - 64, RED, 64);
	memset(p + n, RED, 64);
}

static bool red_ok(const char *p, size_t n)
{
	for (int i = 0; i < 64; i++)
		if ((uint8_t)p[-1 - i] != RED || (uint8_t)p[n + i] != RED)
			return false;
	return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Plausible arguments, then mutations */

union arg {
	struct ckpt_api api;
	struct ckpt_register reg;
	struct ckpt_unregister unreg;
	struct ckpt_collect col;
	struct ckpt_stats st;
	struct ckpt_attach at;
	struct ckpt_release rel;
	struct ckpt_restore_prepare prep;
	struct ckpt_restore_thread thr;
	struct ckpt_dump_task dump;
	struct ckpt_watch wat;
	uint64_t raw[64];
};

/* Where the reserved words of each struct are, in __u64 units. */
static void reserved_of(unsigned long cmd, int *off, int *n)
{
	*off = *n = 0;
	switch (cmd) {
	case CKPT_IOC_API: *off = 4; *n = 4; break;
	case CKPT_IOC_REGISTER: *off = 4; *n = 4; break;
	case CKPT_IOC_UNREGISTER: *off = 2; *n = 2; break;
	case CKPT_IOC_COLLECT: *off = 7; *n = 5; break;
	case CKPT_IOC_STATS: *off = 11; *n = 5; break;
	case CKPT_IOC_ATTACH: *off = 2; *n = 2; break;
	case CKPT_IOC_RELEASE: *off = 8; *n = 4; break;
	case CKPT_IOC_RESTORE_PREPARE:
		*off = offsetof(struct ckpt_restore_prepare, reserved) / 8; *n = 6; break;
	case CKPT_IOC_RESTORE_THREAD:
		*off = offsetof(struct ckpt_restore_thread, reserved) / 8; *n = 5; break;
	case CKPT_IOC_DUMP_TASK:
		*off = offsetof(struct ckpt_dump_task, reserved) / 8; *n = 2; break;
	case CKPT_IOC_WATCH: *off = 8; *n = 4; break;
	}
}

/* The flags word and its valid bits, in __u64 units; -1 if none. */
static int flags_of(unsigned long cmd, uint64_t *valid)
{
	switch (cmd) {
	case CKPT_IOC_REGISTER: *valid = CKPT_REGISTER_DIRTY; return 2;
	case CKPT_IOC_UNREGISTER: *valid = 0; return 1;
	case CKPT_IOC_COLLECT:
		*valid = CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK | CKPT_COLLECT_HOLD; return 1;
	case CKPT_IOC_STATS: *valid = 0; return 1;
	case CKPT_IOC_ATTACH: *valid = 0; return 1;
	case CKPT_IOC_RELEASE: *valid = CKPT_RELEASE_END; return 1;
	case CKPT_IOC_RESTORE_PREPARE: *valid = CKPT_RESTORE_STATUS_FD; return 0;
	case CKPT_IOC_RESTORE_THREAD:
		*valid = 0; return offsetof(struct ckpt_restore_thread, flags) / 8;
	case CKPT_IOC_DUMP_TASK: *valid = CKPT_DUMP_TIMERS | CKPT_DUMP_PROCESS; return 1;
	}
	return -1;
}

static uint64_t rand_addr(struct wk *w)
{
	switch (fz_below(&w->r, 8)) {
	case 0: return fz_r(&w->r);
	case 1: return (uint64_t)(uintptr_t)w->scratch + fz_below(&w->r, SCRATCH_PAGES) * PAGE;
	case 2: return (uint64_t)(uintptr_t)canary + fz_below(&w->r, CANARY_PAGES) * PAGE;
	case 3: return (uint64_t)(uintptr_t)w->buf + fz_below(&w->r, BUF_PAGES) * PAGE;
	case 4: return 1ULL << (40 + fz_below(&w->r, 24));
	default: return (uint64_t)(uintptr_t)chaos + fz_below(&w->r, CHAOS_PAGES) * PAGE;
	}
}

static uint64_t rand_len(struct wk *w)
{
	switch (fz_below(&w->r, 8)) {
	case 0: return fz_r(&w->r);
	case 1: return 0;
	case 2: return -PAGE;
	case 3: return 1 + fz_below(&w->r, PAGE);
	default: return (1 + fz_below(&w->r, 64)) * PAGE;
	}
}

static uint64_t rand_id(struct wk *w)
{
	switch (fz_below(&w->r, 6)) {
	case 0: return 0;
	case 1: return fz_r(&w->r);
	case 2: return w->scratch_id;
	default: return 1 + fz_below(&w->r, 24);
	}
}

static void plausible_regs(struct wk *w, struct ckpt_regs *g)
{
	memset(g, 0, sizeof(*g));
	g->cs = 0x33;
	g->ss = 0x2b;
	g->ip = hole;
	g->sp = hole + 4 * PAGE;
	g->flags = 0x202;
	if (fz_one_in(&w->r, 4))
		g->ds = g->es = 0x2b;
}

/* A PREPARE that must succeed on @fd (for the address space of the calling process). */
static void plausible_prepare(struct wk *w, int fd, struct ckpt_restore_prepare *p,
			      struct ckpt_restore_vma *v, struct ckpt_restore_run *run,
			      int *nv, int *nr)
{
	uint64_t a = hole;

	memset(p, 0, sizeof(*p));
	*nv = 1 + fz_below(&w->r, 3);
	for (int i = 0; i < *nv; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		v[i].start = a;
		v[i].len = (1 + fz_below(&w->r, 2)) * PAGE;
		v[i].prot = fz_below(&w->r, 8);
		if (fz_one_in(&w->r, 3)) {
			v[i].flags = CKPT_VMA_FILE;
			v[i].fd = data_fd;
			v[i].pgoff = fz_below(&w->r, 8) * PAGE;
		} else if (fz_one_in(&w->r, 4)) {
			v[i].flags = CKPT_VMA_SHARED;
			v[i].prot |= PROT_WRITE;
		}
		a += v[i].len + PAGE;
	}
	*nr = 0;
	for (int i = 0; i < *nv; i++)
		if (fz_one_in(&w->r, 2)) {
			memset(&run[*nr], 0, sizeof(run[*nr]));
			run[*nr].addr = v[i].start;
			run[*nr].len = PAGE;
			run[*nr].data_off = fz_below(&w->r, 16) * PAGE;
			(*nr)++;
		}
	/* The worker's arena as a mapping already in place. */
	if (fz_one_in(&w->r, 3) && (uint64_t)(uintptr_t)w->arena > a) {
		struct ckpt_restore_vma *b = &v[*nv];

		memset(b, 0, sizeof(*b));
		b->start = (uintptr_t)w->arena;
		b->len = PAGE * (1 + fz_below(&w->r, 4));
		b->prot = PROT_READ | PROT_WRITE;
		b->flags = CKPT_VMA_PREBUILT;
		(*nv)++;
	}
	p->self_fd = fd;
	p->vmas = (uintptr_t)v;
	p->nr_vmas = *nv;
	p->runs = (uintptr_t)run;
	p->nr_runs = *nr;
	p->vma_size = sizeof(*v);
	p->run_size = sizeof(*run);
	p->data_fd = data_fd;
	if (fz_one_in(&w->r, 2)) {
		p->flags = CKPT_RESTORE_STATUS_FD;
		p->status_fd = pipe_rw[1];
	}
	if (fz_one_in(&w->r, 2)) {
		p->keep_start = keep_start;
		p->keep_end = keep_end;
	}
	p->start_code = hole;
	p->end_code = hole + PAGE;
	p->start_brk = p->brk = hole + 8 * PAGE;
	plausible_regs(w, &p->thread.regs);
	p->thread.sigmask = fz_r(&w->r);
	if (fz_one_in(&w->r, 2))
		p->thread.rseq = hole + 32 * fz_below(&w->r, 64);
	p->thread.rseq_sig = fz_below(&w->r, 1ULL << 32);
}

/* Foreign ioctl numbers the VFS itself answers (FIONBIO, FIFREEZE, FIGETBSZ, FICLONE, ...). */
static bool vfs_type(unsigned int t)
{
	return t == 0 || t == 'T' || t == 'X' || t == 'f' || t == 0x94 || t == 0x15;
}

/*
 * One random call on @fd. @hs: 1 the file had its handshake, 0 it had not (and nobody else
 * can give it one meanwhile), -1 unknown. Returns the result; checks everything that can be
 * checked without knowing what the other threads did.
 */
static long random_call(struct wk *w, int fd, int hs, bool shared)
{
	static const int argslot = 0, bufslot = 1, dataslot = 2;
	union arg a;
	struct ckpt_restore_vma vmas[8];
	struct ckpt_restore_run runs[8];
	unsigned long cmd;
	enum pclass ac = pick_class(w), bc = P_GOOD, dc = P_GOOD;
	char *ap, *bp = NULL, *dp = NULL;
	size_t bsize = 0, dsize = 0, n;
	int expect = 1, alt = 1;	/* 1: any documented errno; else the result, or @alt */
	int nmut = 0, roff, rn, fo, nv, nr;
	uint64_t valid;
	long ret;
	bool raw_cmd = false;

	memset(&a, 0, sizeof(a));
	cmd = fz_cmds[fz_below(&w->r, FZ_NCMDS)];
	if (fz_one_in(&w->r, 12)) {
		/* A number of ours with a wrong direction or size, or any number. */
		raw_cmd = true;
		if (fz_one_in(&w->r, 4)) {
			do
				cmd = (uint32_t)fz_r(&w->r);
			while (vfs_type(_IOC_TYPE(cmd)));
		} else
			cmd = _IOC(fz_below(&w->r, 4), CKPT_IOC_MAGIC,
				   fz_one_in(&w->r, 2) ? _IOC_NR(cmd) : fz_below(&w->r, 256),
				   fz_one_in(&w->r, 2) ? _IOC_SIZE(cmd) ^ (8 << fz_below(&w->r, 6))
						       : fz_below(&w->r, 1 << 14));
		for (int i = 0; i < 64; i++)
			a.raw[i] = fz_one_in(&w->r, 3) ? fz_r(&w->r) : 0;
	}
	/* Never the one thing that replaces this process: COMMIT with arg 0 (see _in_child). */
	if (cmd == CKPT_IOC_RESTORE_COMMIT) {
		uint64_t arg = fz_one_in(&w->r, 2) ? CKPT_COMMIT_CHECK : (fz_r(&w->r) | 2);

		ret = fz_ioctl(fd, cmd, arg);
		if (hs == 0 && ret != -EINVAL)
			FAIL(w, "COMMIT before the handshake: %ld, not -EINVAL", ret);
		else if (arg != CKPT_COMMIT_CHECK && ret != -EINVAL)
			FAIL(w, "COMMIT with arg %#llx: %ld, not -EINVAL", (unsigned long long)arg, ret);
		else if (!fz_documented(cmd, ret))
			FAIL(w, "COMMIT check: undocumented %ld", ret);
		return ret;
	}

	if (!raw_cmd) {
		switch (cmd) {
		case CKPT_IOC_API:
			a.api.api = fz_one_in(&w->r, 8) ? fz_r(&w->r) : CKPT_API_VERSION;
			break;
		case CKPT_IOC_REGISTER:
			a.reg.start = rand_addr(w);
			a.reg.len = rand_len(w);
			a.reg.flags = fz_below(&w->r, 2);
			if (!hold_race && !shared && fd == w->fd) {
				/* Holds on this file only cover memory no other thread writes. */
				a.reg.start = (uintptr_t)w->scratch + fz_below(&w->r, SCRATCH_PAGES) * PAGE;
				a.reg.len = PAGE;
			}
			break;
		case CKPT_IOC_UNREGISTER:
			a.unreg.id = rand_id(w);
			if (a.unreg.id == w->scratch_id && fd == w->fd)
				a.unreg.id = 1000;
			break;
		case CKPT_IOC_COLLECT:
			a.col.id = rand_id(w);
			a.col.flags = fz_below(&w->r, 8);
			bc = pick_class(w);
			n = fz_one_in(&w->r, 8) ? fz_r(&w->r) : fz_below(&w->r, 4 * PAGE / 8 + 1) * 8;
			if (fz_one_in(&w->r, 10))
				n |= fz_below(&w->r, 8);
			a.col.buf_len = n;
			bsize = n;
			if (n > 4 * PAGE) {
				/* More than we have: the end of a mapping stops the kernel. */
				bc = P_EDGE;
				bsize = 0;
			}
			break;
		case CKPT_IOC_STATS:
			a.st.id = rand_id(w);
			break;
		case CKPT_IOC_ATTACH:
			switch (fz_below(&w->r, 4)) {
			case 0: a.at.pid = victim; break;
			case 1: a.at.pid = getpid(); break;
			case 2: a.at.pid = fz_below(&w->r, 1 << 22); break;
			default: a.at.pid = fz_r(&w->r); break;
			}
			break;
		case CKPT_IOC_RELEASE:
			a.rel.id = rand_id(w);
			a.rel.flags = fz_below(&w->r, 2);
			a.rel.max = fz_below(&w->r, 5);
			bc = pick_class(w);
			dc = pick_class(w);
			bsize = a.rel.max * 8;
			dsize = a.rel.max * PAGE;
			if (fz_one_in(&w->r, 16)) {
				a.rel.max = fz_r(&w->r);
				dc = P_HOLE;
				bsize = 8;
			}
			break;
		case CKPT_IOC_RESTORE_PREPARE:
			if (!w->child)
				plausible_prepare(w, fd, &a.prep, vmas, runs, &nv, &nr);
			break;
		case CKPT_IOC_RESTORE_THREAD:
			/*
			 * A plausible one parks until a restore prepared in this process is
			 * dropped: only on a private file (a shared one would keep other
			 * threads waiting for its lock), never in a child (a restore prepared by
			 * an exited child stays in the shared file: see the report).
			 */
			if (!shared && !w->child) {
				plausible_regs(w, &a.thr.thread.regs);
				a.thr.self_fd = fd;
			}
			a.thr.thread.sigmask = fz_r(&w->r);
			break;
		case CKPT_IOC_WATCH:
			/* ADD / REMOVE / READ, or a bad op; threads of this process, of the
			 * victim's, or any number. */
			a.wat.op = fz_below(&w->r, 5);
			if (a.wat.op == CKPT_WATCH_READ) {
				a.wat.max = fz_one_in(&w->r, 16) ? fz_r(&w->r) : fz_below(&w->r, 5);
				a.wat.hit_size = fz_one_in(&w->r, 16) ? fz_r(&w->r) : sizeof(struct ckpt_watch_hit);
				bc = pick_class(w);
				bsize = a.wat.max <= 4 ? a.wat.max * sizeof(struct ckpt_watch_hit) : 0;
				if (!bsize && a.wat.max)
					bc = P_EDGE;
				break;
			}
			switch (fz_below(&w->r, 5)) {
			case 0: a.wat.tid = (uint64_t)gettid(); break;
			case 1: a.wat.tid = (uint64_t)getpid(); break;
			case 2: a.wat.tid = (uint64_t)victim; break;
			case 3: a.wat.tid = fz_below(&w->r, 1 << 16); break;
			default: a.wat.tid = fz_r(&w->r); break;
			}
			break;
		case CKPT_IOC_DUMP_TASK:
			a.dump.pid = fz_one_in(&w->r, 2) ? (uint64_t)victim : fz_below(&w->r, 1 << 16);
			a.dump.flags = fz_below(&w->r, 2);
			a.dump.actions = fz_one_in(&w->r, 2) ? 0 : (uintptr_t)place(w, P_GOOD, 0, 1);
			break;
		}
		/* Mutations: one with a known answer, or garbage anywhere. */
		reserved_of(cmd, &roff, &rn);
		fo = flags_of(cmd, &valid);
		switch (fz_below(&w->r, 10)) {
		case 0:
			if (rn) {
				a.raw[roff + fz_below(&w->r, rn)] = fz_r(&w->r) | 1;
				nmut++;
			}
			break;
		case 1:
			if (fo >= 0) {
				uint64_t bit;

				do
					bit = 1ULL << fz_below(&w->r, 64);
				while (bit & valid);
				a.raw[fo] |= bit;
				nmut++;
			}
			break;
		case 2:
			a.raw[fz_below(&w->r, _IOC_SIZE(cmd) / 8)] = fz_r(&w->r);
			nmut = 100;	/* unknown effect */
			break;
		}
	}
	/* Garbage may have grown an output: make the end of a mapping stop the kernel there. */
	if (!raw_cmd && cmd == CKPT_IOC_COLLECT && a.col.buf_len > bsize && bc != P_EDGE) {
		bc = P_EDGE;
		bsize = 0;
	}
	if (!raw_cmd && cmd == CKPT_IOC_RELEASE && a.rel.max > 4 && dc != P_HOLE) {
		dc = P_EDGE;
		dsize = 0;
	}
	if (!hold_race && cmd == CKPT_IOC_COLLECT && (shared || fd != w->fd))
		a.col.flags &= ~CKPT_COLLECT_HOLD;
	/* RELEASE into held memory is the known hold_take() bug (fuzz_util.h). */
	if (!hold_race && cmd == CKPT_IOC_RELEASE) {
		if (bc == P_SCRATCH || bc == P_CHAOS)
			bc = P_GOOD;
		if (dc == P_SCRATCH || dc == P_CHAOS)
			dc = P_GOOD;
	}

	/* Buffers, filled with the red byte so unwritten parts can be told. */
	if (cmd == CKPT_IOC_WATCH && a.wat.op == CKPT_WATCH_READ) {
		if (a.wat.max > 4 && bc != P_EDGE) {
			bc = P_EDGE;
			bsize = 0;
		}
		bp = place(w, bc, bsize ? bsize : 8, bufslot);
		if (bc == P_EDGE && !bsize)
			bp = w->edge + PAGE - 16 * fz_below(&w->r, 16);
		if (bc == P_GOOD || bc == P_MISALIGNED)
			memset(bp - 64, RED, bsize + 128);
		a.wat.hits = (uintptr_t)bp;
	}
	if (cmd == CKPT_IOC_COLLECT || cmd == CKPT_IOC_RELEASE) {
		bp = place(w, bc, bsize ? bsize : 8, bufslot);
		if (bc == P_EDGE && !bsize)
			bp = w->edge + PAGE - 8 * fz_below(&w->r, 16);
		if (bc == P_GOOD || bc == P_MISALIGNED)
			memset(bp - 64, RED, bsize + 128);
		if (cmd == CKPT_IOC_COLLECT)
			a.col.buf = (uintptr_t)bp;
		else
			a.rel.addrs = (uintptr_t)bp;
	}
	if (cmd == CKPT_IOC_RELEASE) {
		dp = dc == P_HOLE && bsize == 8 ? (char *)8 : place(w, dc, dsize ? dsize : 8, dataslot);
		if (dc == P_EDGE && !dsize)
			dp = w->edge;	/* one page, then the guard */
		if ((dc == P_GOOD || dc == P_MISALIGNED) && dsize <= 3 * PAGE)
			memset(dp - 64, RED, dsize + 128);
		a.rel.data = (uintptr_t)dp;
	}
	/* The worker's private file keeps its binding (its scratch region is registered). */
	if (cmd == CKPT_IOC_ATTACH && !shared && fd == w->fd)
		ac = P_NULL;
	if (cmd == CKPT_IOC_RESTORE_THREAD && ac == P_GOOD && !nmut && fz_one_in(&w->r, 2))
		ac = P_MISALIGNED;

	n = _IOC_SIZE(cmd) ? _IOC_SIZE(cmd) : 8;
	if (raw_cmd && n > sizeof(a))
		n = sizeof(a);
	ap = place(w, ac, n, argslot);
	if (ac == P_GOOD || ac == P_MISALIGNED)
		red_set(ap, n);
	put_arg(w, ac, ap, &a, n);

	ret = fz_ioctl(fd, cmd, (unsigned long)ap);

	/* What the answer must be. */
	if (!fz_known_cmd(cmd)) {
		expect = -ENOTTY;
	} else if (hs == 0 && cmd != CKPT_IOC_API) {
		expect = -EINVAL;
	} else if (pclass_bad(ac) || (ac == P_EDGE && n > 1)) {
		expect = -EFAULT;
		if (hs < 0 && cmd != CKPT_IOC_API)
			alt = -EINVAL;
	} else if (nmut == 1 && ac != P_CHAOS) {
		expect = -EINVAL;
		/* A handshake checks: done already, then the version, then reserved (ckpt.h). */
		if (cmd == CKPT_IOC_API)
			expect = hs == 1 ? -EBUSY
				 : a.api.api != CKPT_API_VERSION ? -EPROTONOSUPPORT : -EINVAL,
			alt = hs < 0 ? -EBUSY : 1;
		/*
		 * A refused handshake still copies the struct back (ckpt.h): into a read-only
		 * argument that is -EFAULT (seed 0x400ab020750707c4 expected -EINVAL).
		 */
		if (cmd == CKPT_IOC_API && ac == P_RO && hs != 1)
			expect = -EFAULT;
	}
	if (expect != 1 && ret != expect && ret != alt)
		FAIL(w, "cmd %#lx (arg class %d, mutations %d, handshake %d): %ld, expected %d", cmd,
		     ac, nmut, hs, ret, expect);
	else if (!fz_documented(cmd, (int)ret) && !(cmd == CKPT_IOC_RESTORE_THREAD && ret > 0))
		FAIL(w, "cmd %#lx: %ld is not a documented answer", cmd, ret);

	/* Nothing written around the argument or into a read-only argument. */
	if ((ac == P_GOOD || ac == P_MISALIGNED) && !red_ok(ap, n))
		FAIL(w, "cmd %#lx wrote outside its %zu-byte argument", cmd, n);
	if (ac == P_RO) {
		/* The page holds the argument bytes: unchanged, since it is read-only. */
		if (memcmp(w->ro, &a, n))
			FAIL(w, "cmd %#lx changed its read-only argument", cmd);
		mprotect(w->ro, PAGE, PROT_READ | PROT_WRITE);
		ro_fill(w);
		mprotect(w->ro, PAGE, PROT_READ);
	} else if ((bc == P_RO || dc == P_RO) && !ro_intact(w)) {
		FAIL(w, "cmd %#lx wrote into a read-only buffer", cmd);
		mprotect(w->ro, PAGE, PROT_READ | PROT_WRITE);
		ro_fill(w);
		mprotect(w->ro, PAGE, PROT_READ);
	}
	if (cmd == CKPT_IOC_RESTORE_PREPARE && !ret)
		w->prepared = true;
	if (ret || ac != P_GOOD)
		goto out;

	/* Successful calls with a readable answer: is it well-formed? */
	memcpy(&a, ap, n);
	switch (cmd) {
	case CKPT_IOC_API:
		if (a.api.api != CKPT_API_VERSION || a.api.page_size != PAGE ||
		    a.api.ioctls != fz_ioctl_bits() || !(a.api.features & CKPT_FEATURE_TRACK))
			FAIL(w, "API answered api %llu page %llu ioctls %#llx features %#llx",
			     (unsigned long long)a.api.api, (unsigned long long)a.api.page_size,
			     (unsigned long long)a.api.ioctls, (unsigned long long)a.api.features);
		break;
	case CKPT_IOC_COLLECT:
		if (a.col.flags & CKPT_COLLECT_BITMAP)
			break;
		if (a.col.count > a.col.buf_len / 8)
			FAIL(w, "COLLECT reported %llu pages into %llu bytes",
			     (unsigned long long)a.col.count, (unsigned long long)a.col.buf_len);
		if (bc == P_GOOD && a.col.count <= bsize / 8) {
			uint64_t *e = (uint64_t *)bp;

			for (uint64_t i = 0; i < a.col.count; i++)
				if (e[i] & (PAGE - 1) || e[i] >= 1ULL << 47)
					FAIL(w, "COLLECT reported address %#llx",
					     (unsigned long long)e[i]);
			if (a.col.id && !(a.col.flags & CKPT_COLLECT_PEEK))
				for (uint64_t i = 1; i < a.col.count; i++)
					if (e[i] <= e[i - 1])
						FAIL(w, "COLLECT of one region not ascending");
			for (size_t i = a.col.count * 8; i < bsize + 64; i++)
				if ((uint8_t)bp[i] != RED) {
					FAIL(w, "COLLECT wrote past its %llu entries (byte %zu)",
					     (unsigned long long)a.col.count, i);
					break;
				}
		}
		break;
	case CKPT_IOC_RELEASE:
		if (a.rel.count > a.rel.max)
			FAIL(w, "RELEASE returned %llu copies for max %llu",
			     (unsigned long long)a.rel.count, (unsigned long long)a.rel.max);
		if (bc == P_GOOD && a.rel.count <= a.rel.max && a.rel.max <= 4)
			for (uint64_t i = 0; i < a.rel.count; i++)
				if (((uint64_t *)bp)[i] & (PAGE - 1))
					FAIL(w, "RELEASE returned address %#llx",
					     (unsigned long long)((uint64_t *)bp)[i]);
		if (dc == P_GOOD && a.rel.max <= 3 && dsize)
			for (size_t i = a.rel.count * PAGE; i < dsize + 64; i += 61)
				if ((uint8_t)dp[i] != RED) {
					FAIL(w, "RELEASE wrote past its %llu copies",
					     (unsigned long long)a.rel.count);
					break;
				}
		break;
	case CKPT_IOC_WATCH:
		if (a.wat.watched > CKPT_WATCH_MAX_TIDS)
			FAIL(w, "WATCH: %llu threads watched", (unsigned long long)a.wat.watched);
		if (a.wat.op != CKPT_WATCH_READ)
			break;
		if (a.wat.count > a.wat.max)
			FAIL(w, "WATCH READ returned %llu hits for max %llu",
			     (unsigned long long)a.wat.count, (unsigned long long)a.wat.max);
		if (bc == P_GOOD && a.wat.max <= 4 && a.wat.count <= a.wat.max) {
			struct ckpt_watch_hit *h = (struct ckpt_watch_hit *)bp;

			for (uint64_t i = 0; i < a.wat.count; i++)
				if (h[i].addr & (PAGE - 1) || !h[i].tid || h[i].tid > 0x7fffffffULL)
					FAIL(w, "WATCH READ hit tid %llu addr %#llx",
					     (unsigned long long)h[i].tid, (unsigned long long)h[i].addr);
			for (size_t i = a.wat.count * sizeof(*h); i < bsize + 64; i++)
				if ((uint8_t)bp[i] != RED) {
					FAIL(w, "WATCH READ wrote past its %llu hits",
					     (unsigned long long)a.wat.count);
					break;
				}
		}
		break;
	case CKPT_IOC_STATS:
		if (a.st.dirty > a.st.pages || (a.st.id && a.st.regions != 1))
			FAIL(w, "STATS: dirty %llu of %llu pages, %llu regions for id %llu",
			     (unsigned long long)a.st.dirty, (unsigned long long)a.st.pages,
			     (unsigned long long)a.st.regions, (unsigned long long)a.st.id);
		break;
	}
out:
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Oracle sequences, on the worker's own file and arena */

/* Drain @id (array mode, a pass over as many calls as it takes) into w->list; count or -e. */
static long drain(struct wk *w, int fd, uint64_t id, uint64_t flags, size_t room, long max)
{
	long total = 0;

	for (int guard = 0; guard < 10000; guard++) {
		struct ckpt_collect c = { .id = id, .flags = flags,
					  .buf = (uintptr_t)(w->list + total),
					  .buf_len = room * 8 };
		long e;

		if (total + (long)room > max)
			c.buf_len = (max - total) * 8;
		if (fz_one_in(&w->r, 4) && w->ring_ok && !(flags & ~CKPT_COLLECT_HOLD)) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
			struct io_uring_cqe *cqe;

			io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
			sqe->cmd_op = CKPT_IOC_COLLECT;
			*(uint64_t *)sqe->cmd = (uintptr_t)&c;
			io_uring_submit(&w->ring);
			atomic_fetch_add(fz_calls, 1);
			if (io_uring_wait_cqe(&w->ring, &cqe))
				return -EIO;
			e = cqe->res < 0 ? cqe->res : 0;
			io_uring_cqe_seen(&w->ring, cqe);
		} else {
			e = fz_ioctl(fd, CKPT_IOC_COLLECT, (uintptr_t)&c);
		}
		if (e)
			return e;
		total += c.count;
		if (!c.remaining)
			return total;
		if (total >= max)
			return -ENOSPC;
	}
	return -ELOOP;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* The report is a superset of the pages written since the last COLLECT. */
static void oracle_superset(struct wk *w)
{
	size_t first = fz_below(&w->r, ARENA_PAGES), pages = 1 + fz_below(&w->r, ARENA_PAGES - first);
	char *base = w->arena + first * PAGE;
	uint8_t wrote[ARENA_PAGES] = { 0 };
	long id = ck_register(w->ofd, base, pages * PAGE, fz_below(&w->r, 2));
	long got, k;

	if (id <= 0) {
		FAIL(w, "REGISTER of %zu arena pages: %ld", pages, id);
		return;
	}
	got = drain(w, w->ofd, id, 0, 1 + fz_below(&w->r, 64), ARENA_PAGES * 8);
	if (got < 0)
		FAIL(w, "first COLLECT: %ld", got);
	for (k = 0; k < (long)pages; k++)
		if (fz_one_in(&w->r, 3)) {
			base[k * PAGE + fz_below(&w->r, PAGE)]++;
			wrote[k] = 1;
		}
	/* A COLLECT into memory it cannot write takes nothing from the log. */
	if (fz_one_in(&w->r, 3)) {
		struct ckpt_collect c = { .id = id, .buf_len = 64 * 8,
					  .buf = (uintptr_t)(fz_one_in(&w->r, 2) ? w->ro : (char *)hole) };
		long e = fz_ioctl(w->ofd, CKPT_IOC_COLLECT, (uintptr_t)&c);
		bool any = false;

		for (k = 0; k < (long)pages; k++)
			any |= wrote[k];
		if (any ? e != -EFAULT : e && e != -EFAULT)
			FAIL(w, "COLLECT into an unwritable buffer: %ld", e);
	}
	if (fz_one_in(&w->r, 3)) {
		/* Bitmap mode. */
		struct ckpt_collect c = { .id = id, .flags = CKPT_COLLECT_BITMAP,
					  .buf = (uintptr_t)w->list, .buf_len = ARENA_PAGES / 8 };
		long e = fz_ioctl(w->ofd, CKPT_IOC_COLLECT, (uintptr_t)&c);

		if (e) {
			FAIL(w, "bitmap COLLECT: %ld", e);
			goto out;
		}
		for (k = 0; k < (long)pages; k++)
			if (wrote[k] && !(w->list[k / 64] >> (k % 64) & 1))
				FAIL(w, "page %ld of a %zu-page region written, not in the bitmap", k, pages);
		/* The words the region's bitmap spans are written whole: no bit past its end. */
		for (k = pages; k < (long)((pages + 63) / 64 * 64); k++)
			if (w->list[k / 64] >> (k % 64) & 1)
				FAIL(w, "bitmap bit %ld set beyond the region's %zu pages", k, pages);
	} else {
		got = drain(w, w->ofd, fz_one_in(&w->r, 3) ? 0 : id, 0, 1 + fz_below(&w->r, 64),
			    ARENA_PAGES * 8);
		if (got < 0) {
			FAIL(w, "COLLECT: %ld", got);
			goto out;
		}
		qsort(w->list, got, 8, cmp_u64);
		for (k = 0; k < got; k++) {
			uint64_t a = w->list[k];

			if (a < (uintptr_t)base || a >= (uintptr_t)base + pages * PAGE || a & (PAGE - 1))
				FAIL(w, "COLLECT reported %#llx outside the region", (unsigned long long)a);
			else if (k && a == w->list[k - 1])
				FAIL(w, "COLLECT reported %#llx twice in one pass", (unsigned long long)a);
			else
				wrote[(a - (uintptr_t)base) / PAGE] = 0;
		}
		for (k = 0; k < (long)pages; k++)
			if (wrote[k])
				FAIL(w, "page %ld of a %zu-page region written, not reported", k, pages);
	}
out:
	if (ck_unregister(w->ofd, id))
		FAIL(w, "UNREGISTER of the oracle region failed");
}

static void fill_page(char *p, uint64_t tag)
{
	uint64_t *q = (uint64_t *)p;

	for (int i = 0; i < (int)(PAGE / 8); i++)
		q[i] = tag * 0x100000001b3ULL + i;
}

/*
 * A hold's copies are exactly the held pages written after it, as they were at COLLECT. In the
 * arena's MADV_NOHUGEPAGE half: khugepaged collapsing a held range is a documented loss.
 */
static void oracle_hold(struct wk *w)
{
	size_t half = ARENA_PAGES / 2, first = half + fz_below(&w->r, half),
	       pages = 1 + fz_below(&w->r, ARENA_PAGES - first);
	char *base = w->arena + first * PAGE;
	uint8_t held[ARENA_PAGES] = { 0 }, wrote[ARENA_PAGES] = { 0 }, back[ARENA_PAGES] = { 0 };
	uint64_t tag = fz_r(&w->r);
	long id = ck_register(w->ofd, base, pages * PAGE, 0);
	long got, k, lost = 0, rounds = 0;
	uint64_t *addrs = (uint64_t *)w->buf;
	char *data = (char *)w->buf + 2 * PAGE;
	int max;

	if (id <= 0) {
		FAIL(w, "REGISTER of %zu arena pages: %ld", pages, id);
		return;
	}
	for (k = 0; k < (long)pages; k++)
		if (fz_one_in(&w->r, 2))
			fill_page(base + k * PAGE, tag + k);
	got = drain(w, w->ofd, id, CKPT_COLLECT_HOLD, 1 + fz_below(&w->r, 64), ARENA_PAGES * 8);
	if (got < 0) {
		FAIL(w, "HOLD COLLECT: %ld", got);
		goto out;
	}
	for (k = 0; k < got; k++) {
		uint64_t i = (w->list[k] - (uintptr_t)base) / PAGE;

		if (i < pages) {
			held[i] = 1;
			memcpy(w->snap + i * PAGE, base + i * PAGE, PAGE);
		}
	}
	for (k = 0; k < (long)pages; k++)
		if (fz_one_in(&w->r, 2)) {
			fill_page(base + k * PAGE, ~tag + k);
			wrote[k] = 1;
		}
	max = 1 + fz_below(&w->r, 4);
	for (;;) {
		struct ckpt_release r = { .id = fz_one_in(&w->r, 3) ? 0 : id,
					  .flags = rounds ? 0 : CKPT_RELEASE_END,
					  .addrs = (uintptr_t)addrs, .data = (uintptr_t)data, .max = max };
		long e = fz_ioctl(w->ofd, CKPT_IOC_RELEASE, (uintptr_t)&r);

		if (e) {
			FAIL(w, "RELEASE: %ld", e);
			break;
		}
		lost += r.lost;
		for (k = 0; k < (long)r.count; k++) {
			uint64_t i = (addrs[k] - (uintptr_t)base) / PAGE;

			if (i >= pages) {
				FAIL(w, "RELEASE returned %#llx outside the region",
				     (unsigned long long)addrs[k]);
				continue;
			}
			if (back[i]++)
				FAIL(w, "RELEASE returned page %llu twice", (unsigned long long)i);
			if (memcmp(data + k * PAGE, w->snap + i * PAGE, PAGE))
				FAIL(w, "RELEASE: the copy of page %llu is not its COLLECT-time bytes "
					"(first byte %#x, want %#x)", (unsigned long long)i,
				     (uint8_t)data[k * PAGE], (uint8_t)w->snap[i * PAGE]);
		}
		if (!r.remaining)
			break;
		if (++rounds > ARENA_PAGES + 2) {
			FAIL(w, "RELEASE: remaining never reaches 0");
			break;
		}
	}
	if (lost)
		FAIL(w, "RELEASE: %ld pages lost in a hold nothing unmapped", lost);
	for (k = 0; k < (long)pages; k++)
		if (held[k] && wrote[k] && !back[k])
			FAIL(w, "held page %ld written after the hold: no copy came back", k);
		else if (back[k] && !(held[k] && wrote[k]))
			FAIL(w, "page %ld came back, but it was %s", k,
			     held[k] ? "not written after the hold" : "not held");
out:
	if (ck_unregister(w->ofd, id))
		FAIL(w, "UNREGISTER of the oracle region failed");
}

/* The canary is tracked, collected, held and released, and never written. */
static void canary_round(struct wk *w)
{
	uint64_t *addrs = (uint64_t *)w->buf;
	struct ckpt_collect c = { .id = canary_id, .flags = fz_below(&w->r, 2) ? CKPT_COLLECT_HOLD : 0,
				  .buf = (uintptr_t)w->list, .buf_len = CANARY_PAGES * 8 };
	struct ckpt_release r = { .id = canary_id, .flags = CKPT_RELEASE_END,
				  .addrs = (uintptr_t)addrs, .data = (uintptr_t)(w->buf + 2 * PAGE),
				  .max = 2 };
	long e = fz_ioctl(canary_fd, CKPT_IOC_COLLECT, (uintptr_t)&c);

	if (e)
		FAIL(w, "canary COLLECT: %ld", e);
	e = fz_ioctl(canary_fd, CKPT_IOC_RELEASE, (uintptr_t)&r);
	if (e || r.count || r.lost)
		FAIL(w, "canary RELEASE: %ld, %llu copies, %llu lost of pages nobody wrote", e,
		     (unsigned long long)r.count, (unsigned long long)r.lost);
	for (size_t i = 0; i < CANARY_PAGES * PAGE; i += 509)
		if ((uint8_t)canary[i] != canary_byte(i)) {
			FAIL(w, "canary byte %zu changed: %#x", i, (uint8_t)canary[i]);
			break;
		}
}

/*
 * ATTACH. The victim (a child nobody traces) is refused: -EPERM. Then a child this thread
 * traces (PTRACE_SEIZE, PTRACE_INTERRUPT, its stop waited for) is attached, and its memory
 * registered, collected, held and released while it is resumed, stopped again, exits on its
 * own or is killed, and while the session is closed before or after its death. The child's
 * memory: TRACEE_PAGES / 2 pages it checks and never writes (a canary: no copy is ever
 * returned for them, and the child exits 3 if their bytes change), then as many it writes.
 */
static void tracee_main(struct wk *w, int go, long iters, uint64_t seed)
{
	char *a = w->tarea, *s = w->tarea + TRACEE_PAGES / 2 * PAGE, b;
	struct fz_rng r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fz_rng_init(&r, seed, 0);
	if (read(go, &b, 1) != 1)
		_exit(0);	/* the tracer gave up on us */
	for (long it = 0; it < iters; it++) {
		s[fz_below(&r, TRACEE_PAGES / 2 * PAGE)]++;
		if (it % 64 == 0)
			usleep(100);
		if (it % 512 == 0)
			for (size_t i = 0; i < TRACEE_PAGES / 2 * PAGE; i += 127)
				if ((uint8_t)a[i] != canary_byte(i))
					_exit(3);
	}
	for (size_t i = 0; i < TRACEE_PAGES / 2 * PAGE; i += 127)
		if ((uint8_t)a[i] != canary_byte(i))
			_exit(3);
	_exit(0);
}

/* Wait for @c's next ptrace stop or its end; true if it ended (its status in *st). */
static bool tracee_wait(pid_t c, int *st)
{
	if (waitpid(c, st, __WALL) != c)
		return true;	/* reaped already, or not ours: nothing to wait for */
	return WIFEXITED(*st) || WIFSIGNALED(*st);
}

static void attach_round(struct wk *w)
{
	struct ckpt_attach at = { .pid = victim };
	int fd = ck_open(), go[2] = { -1, -1 }, st = 0;
	bool stopped = false, ended = false, killed = false, closed = false;
	uint64_t tseed = fz_r(&w->r);
	long e, canary_rid = 0, scratch_rid = 0;
	pid_t c;

	if (fd < 0)
		return;
	e = fz_ioctl(fd, CKPT_IOC_ATTACH, (uintptr_t)&at);
	if (e != -EPERM)
		FAIL(w, "ATTACH to the victim, which nobody traces: %ld, not -EPERM", e);
	if (pipe2(go, O_CLOEXEC))
		goto out;
	c = fork();
	if (c < 0)
		goto out;
	if (!c) {
		close(go[1]);
		tracee_main(w, go[0], fz_one_in(&w->r, 4) ? fz_below(&w->r, 64) : fz_below(&w->r, 20000),
			    tseed);
	}
	close(go[0]);
	go[0] = -1;
	/* Not traced yet: refused. */
	at.pid = c;
	e = fz_ioctl(fd, CKPT_IOC_ATTACH, (uintptr_t)&at);
	if (e != -EPERM)
		FAIL(w, "ATTACH to an untraced child: %ld, not -EPERM", e);
	if (ptrace(PTRACE_SEIZE, c, 0, 0)) {
		FAIL(w, "PTRACE_SEIZE of the child: %s", strerror(errno));
		goto reap;
	}
	/* Traced but running: refused. */
	e = fz_ioctl(fd, CKPT_IOC_ATTACH, (uintptr_t)&at);
	if (e != -EPERM)
		FAIL(w, "ATTACH to a traced child that runs: %ld, not -EPERM", e);
	if (ptrace(PTRACE_INTERRUPT, c, 0, 0) || tracee_wait(c, &st)) {
		FAIL(w, "could not stop the traced child: %s", strerror(errno));
		ended = true;
		goto reap;
	}
	stopped = true;
	if (fz_one_in(&w->r, 8)) {
		kill(c, SIGKILL);	/* racing its death */
		killed = true;
	}
	e = fz_ioctl(fd, CKPT_IOC_ATTACH, (uintptr_t)&at);
	if (e && !(killed && (e == -ESRCH || e == -EPERM))) {
		FAIL(w, "ATTACH to a traced, stopped child: %ld", e);
		goto reap;
	}
	if (e)
		goto reap;
	atomic_fetch_add(&attached_ok, 1);
	e = fz_ioctl(fd, CKPT_IOC_ATTACH, (uintptr_t)&at);
	if (e != -EBUSY)
		FAIL(w, "second ATTACH: %ld, not -EBUSY", e);
	/* The canary half, and some or all of the written half, of the child's copy of tarea. */
	canary_rid = ck_register(fd, w->tarea, TRACEE_PAGES / 2 * PAGE, fz_below(&w->r, 2));
	if (canary_rid <= 0 && !(killed && fz_documented(CKPT_IOC_REGISTER, canary_rid)))
		FAIL(w, "REGISTER in the traced child: %ld", canary_rid);
	scratch_rid = ck_register(fd, w->tarea + (TRACEE_PAGES / 2 + fz_below(&w->r, 8)) * PAGE,
				  (1 + fz_below(&w->r, 8)) * PAGE, fz_below(&w->r, 2));
	if (write(go[1], "g", 1) != 1)
		FAIL(w, "the traced child's pipe");
	for (int i = 0; i < 24; i++) {
		uint64_t flags = fz_below(&w->r, 8), id;
		struct ckpt_release r;
		long act = fz_below(&w->r, 16);

		/* Make the child run, stop again, be killed, or lose its session meanwhile. */
		if (!ended && stopped && act < 4) {
			if (!ptrace(PTRACE_CONT, c, 0, 0))
				stopped = false;
		} else if (!ended && !stopped && act == 4) {
			if (!ptrace(PTRACE_INTERRUPT, c, 0, 0)) {
				ended = tracee_wait(c, &st);
				stopped = !ended;
			}
		} else if (!ended && act == 5 && fz_one_in(&w->r, 3)) {
			kill(c, SIGKILL);
			killed = true;
		} else if (!closed && act == 6 && fz_one_in(&w->r, 6)) {
			close(fd);
			closed = true;
			break;
		}
		atomic_fetch_add(&attached_ops, 1);
		id = fz_below(&w->r, 4) ? (fz_one_in(&w->r, 2) ? canary_rid : scratch_rid)
					: fz_below(&w->r, 4);
		switch (fz_below(&w->r, 4)) {
		case 0: case 1: {
			struct ckpt_collect col = { .id = id, .flags = flags, .buf = (uintptr_t)w->list,
						    .buf_len = fz_below(&w->r, 64) * 8 };

			e = fz_ioctl(fd, CKPT_IOC_COLLECT, (uintptr_t)&col);
			if (!fz_documented(CKPT_IOC_COLLECT, e))
				FAIL(w, "COLLECT in the traced child: %ld", e);
			break;
		}
		case 2:
			memset(&r, 0, sizeof(r));
			r.id = id;
			r.flags = fz_below(&w->r, 2);
			r.addrs = (uintptr_t)w->buf;
			r.data = (uintptr_t)(w->buf + 2 * PAGE);
			r.max = 2;
			e = fz_ioctl(fd, CKPT_IOC_RELEASE, (uintptr_t)&r);
			if (!fz_documented(CKPT_IOC_RELEASE, e))
				FAIL(w, "RELEASE in the traced child: %ld", e);
			/* Nobody writes the canary half: no copy of it, ever. */
			if (!e && id == (uint64_t)canary_rid && canary_rid > 0 && r.count)
				FAIL(w, "RELEASE returned %llu copies of the traced child's canary pages",
				     (unsigned long long)r.count);
			break;
		default: {
			struct ckpt_stats sts = { .id = fz_below(&w->r, 2) ? id : 0 };

			e = fz_ioctl(fd, CKPT_IOC_STATS, (uintptr_t)&sts);
			if (!fz_documented(CKPT_IOC_STATS, e))
				FAIL(w, "STATS in the traced child: %ld", e);
			break;
		}
		}
	}
reap:
	if (go[1] >= 0)
		close(go[1]);	/* a child never told to go exits */
	go[1] = -1;
	if (!ended && fz_one_in(&w->r, 2)) {
		/* Let it finish on its own: detach a stopped child, and wait. */
		if (stopped)
			ptrace(PTRACE_DETACH, c, 0, 0);
		for (int k = 0; k < 400 && !ended; k++) {
			pid_t p = waitpid(c, &st, __WALL | WNOHANG);

			if (p == c && (WIFEXITED(st) || WIFSIGNALED(st)))
				ended = true;
			else if (p == c)
				ptrace(PTRACE_CONT, c, 0, 0);	/* a stop we did not ask for */
			else if (p < 0)
				ended = true;
			else
				usleep(5000);
		}
	}
	if (!ended) {
		kill(c, SIGKILL);
		killed = true;
		while (!tracee_wait(c, &st))
			;
		ended = true;
	}
	if (!killed && WIFEXITED(st) && WEXITSTATUS(st) == 3)
		FAIL(w, "the traced child's canary pages changed");
out:
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	if (!closed)
		close(fd);
}

/* ---------------------------------------------------------------------------------------- */
/* DUMP_TASK on a child this thread traces, and a RESTORE_THREAD parked on a dropped restore */

static void usr1(int sig)
{
}

static void dump_round(struct wk *w)
{
	struct ckpt_sigaction act[CKPT_NSIG];
	struct ckpt_dump_task d;
	int st, ready[2];
	bool killed = false;
	char b;
	long e;
	pid_t c;

	if (pipe2(ready, O_CLOEXEC))
		return;
	c = fork();
	if (c < 0) {
		close(ready[0]);
		close(ready[1]);
		return;
	}
	if (!c) {
		sigset_t m;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGUSR1, usr1);
		sigemptyset(&m);
		sigaddset(&m, SIGUSR2);
		sigprocmask(SIG_BLOCK, &m, NULL);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &b, 1) != 1)
		FAIL(w, "the child to trace did not start");
	close(ready[0]);
	/* Not traced yet: refused. */
	memset(&d, 0, sizeof(d));
	d.pid = c;
	e = fz_ioctl(w->fd, CKPT_IOC_DUMP_TASK, (uintptr_t)&d);
	if (e != -EPERM)
		FAIL(w, "DUMP_TASK of an untraced child: %ld, not -EPERM", e);
	if (ptrace(PTRACE_SEIZE, c, 0, 0) || ptrace(PTRACE_INTERRUPT, c, 0, 0) ||
	    waitpid(c, &st, __WALL) != c) {
		FAIL(w, "could not trace the child: %s", strerror(errno));
		goto out;
	}
	if (fz_one_in(&w->r, 4)) {
		kill(c, SIGKILL);	/* racing its death */
		killed = true;
	}
	memset(&d, 0, sizeof(d));
	d.pid = c;
	d.flags = fz_below(&w->r, 2);
	d.actions = (uintptr_t)act;
	switch (fz_below(&w->r, 6)) {
	case 0: d.actions = (uintptr_t)hole; break;
	case 1: d.actions = (uintptr_t)w->ro; break;
	case 2: d.actions = (uintptr_t)(w->edge + PAGE - 64); break;
	}
	e = fz_ioctl(w->fd, CKPT_IOC_DUMP_TASK, (uintptr_t)&d);
	if (d.actions != (uintptr_t)act) {
		if (e != -EFAULT && !(killed && (e == -ESRCH || e == -EPERM)))
			FAIL(w, "DUMP_TASK with an unwritable action table: %ld", e);
	} else if (e == 0) {
		if (act[SIGUSR1 - 1].handler != (uintptr_t)usr1 || !(d.blocked & (1ULL << (SIGUSR2 - 1))))
			FAIL(w, "DUMP_TASK: handler %#llx (want %p), blocked %#llx",
			     (unsigned long long)act[SIGUSR1 - 1].handler, usr1,
			     (unsigned long long)d.blocked);
	} else if (!killed || (e != -ESRCH && e != -EPERM)) {
		FAIL(w, "DUMP_TASK of a traced, stopped child: %ld", e);
	}
out:
	kill(c, SIGKILL);
	waitpid(c, &st, __WALL);
}

struct parker {
	struct wk *w;
	long ret;
	int fd;
	atomic_int started;
};

static void *park_thread(void *arg)
{
	struct parker *p = arg;
	struct ckpt_restore_thread t;

	memset(&t, 0, sizeof(t));
	plausible_regs(p->w, &t.thread.regs);
	t.self_fd = p->fd;
	atomic_store(&p->started, 1);
	p->ret = fz_ioctl(p->fd, CKPT_IOC_RESTORE_THREAD, (uintptr_t)&t);
	return NULL;
}

/* PREPARE, plausible (must succeed) then mutated; a helper parks and is let go. */
static void prepare_round(struct wk *w)
{
	struct ckpt_restore_prepare p, q;
	struct ckpt_restore_vma v[8], vq[8];
	struct ckpt_restore_run run[8], rq[8];
	struct parker pk = { .w = w };
	pthread_t th;
	int nv, nr, fd = ck_open(), want;
	long e;

	if (fd < 0)
		return;
	plausible_prepare(w, fd, &p, v, run, &nv, &nr);
	e = fz_ioctl(fd, CKPT_IOC_RESTORE_PREPARE, (uintptr_t)&p);
	if (e) {
		FAIL(w, "a plausible PREPARE (%d vmas, %d runs): %ld", nv, nr, e);
		close(fd);
		return;
	}
	/* Other threads run: COMMIT could not start; arg 2 is no arg; another task is no preparer. */
	e = fz_ioctl(fd, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK);
	if (e != -EBUSY)
		FAIL(w, "COMMIT check with running threads: %ld, not -EBUSY", e);
	e = fz_ioctl(fd, CKPT_IOC_RESTORE_COMMIT, 2);
	if (e != -EINVAL)
		FAIL(w, "COMMIT arg 2: %ld", e);
	/* One mutation with a known answer; a refused PREPARE keeps the one before. */
	memcpy(vq, v, sizeof(v));
	memcpy(rq, run, sizeof(run));
	q = p;
	q.vmas = (uintptr_t)vq;
	q.runs = (uintptr_t)rq;
	switch (fz_below(&w->r, 19)) {
	case 0: q.flags |= 2; want = -EINVAL; break;
	case 1: q.reserved[fz_below(&w->r, 6)] = 1; want = -EINVAL; break;
	case 2: q.thread.regs.cs = 0x23; want = -EINVAL; break;
	case 3: q.nr_vmas = 0; want = -E2BIG; break;
	case 4: q.nr_runs = CKPT_RESTORE_MAX_RUNS + 1; want = -E2BIG; break;
	case 5: q.self_fd = w->fd; want = -EINVAL; break;
	case 6: vq[0].start += 8; want = -EINVAL; break;
	case 7: vq[0].prot = 8; want = -EINVAL; break;
	case 8: vq[0].flags = CKPT_VMA_FILE; vq[0].fd = 1 << 20; vq[0].pgoff = 0; want = -EBADF; break;
	case 9: vq[0].flags = CKPT_VMA_FILE; vq[0].fd = pipe_rw[0]; vq[0].pgoff = 0; want = -EACCES; break;
	case 10: q.data_fd = wronly_fd; want = -EBADF; break;
	case 11: q.data_fd = dir_fd; want = -EACCES; break;
	case 12: q.vmas = hole; want = -EFAULT; break;
	case 13: q.vmas = (uintptr_t)(w->edge + PAGE - 8); want = -EFAULT; break;
	case 14:
		q.nr_runs = 1; q.runs = (uintptr_t)rq;
		rq[0] = (struct ckpt_restore_run){ .addr = vq[0].start + vq[0].len, .len = PAGE };
		want = -EINVAL; break;	/* a run outside every vma */
	/* The arrays' element sizes and a run's reserved word (API version 2). */
	case 15: q.run_size = fz_one_in(&w->r, 2) ? 24 : sizeof(rq[0]) + 8; want = -EINVAL; break;
	case 16: q.vma_size = fz_below(&w->r, sizeof(vq[0])); want = -EINVAL; break;
	case 17:
		q.nr_runs = 1; q.runs = (uintptr_t)rq;
		rq[0] = (struct ckpt_restore_run){ .addr = vq[0].start, .len = PAGE,
						   .reserved = 1ULL << fz_below(&w->r, 64) };
		want = -EINVAL; break;
	default:
		q.flags = CKPT_RESTORE_STATUS_FD; q.status_fd = pipe_rw[0]; want = -EBADF; break;
	}
	e = fz_ioctl(fd, CKPT_IOC_RESTORE_PREPARE, (uintptr_t)&q);
	if (e != want)
		FAIL(w, "PREPARE mutation: %ld, expected %d", e, want);
	/* A helper thread parks on the prepared restore; dropping the restore lets it go. */
	if (fz_one_in(&w->r, 2)) {
		pk.fd = ck_open();
		if (pk.fd >= 0 && !pthread_create(&th, NULL, park_thread, &pk)) {
			struct timespec ts;

			while (!atomic_load(&pk.started))
				usleep(100);
			usleep(1000 * (1 + fz_below(&w->r, 20)));
			close(fd);
			fd = -1;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 20;
			if (pthread_timedjoin_np(th, NULL, &ts)) {
				FAIL(w, "RESTORE_THREAD still parked 20 s after its restore was dropped");
				pthread_join(th, NULL);
			}
			if (pk.ret != -ECANCELED && pk.ret != -ENOENT)
				FAIL(w, "RESTORE_THREAD on a dropped restore: %ld", pk.ret);
		}
		if (pk.fd >= 0)
			close(pk.fd);
	}
	if (fd >= 0)
		close(fd);
}

/* ---------------------------------------------------------------------------------------- */
/* Chaos threads */

static void *faulter(void *arg)
{
	struct fz_rng r;
	sigjmp_buf jb;

	fz_rng_init(&r, seed0, 200 + (long)arg);
	while (!atomic_load(&stop_chaos)) {
		if (sigsetjmp(jb, 1))
			continue;	/* that page was unmapped or read-only */
		tl_jmp = &jb;
		for (int i = 0; i < 64; i++)
			((volatile char *)chaos)[fz_below(&r, CHAOS_PAGES) * PAGE + fz_below(&r, PAGE)] =
				(char)fz_r(&r);
		tl_jmp = NULL;
		sched_yield();
	}
	tl_jmp = NULL;
	return NULL;
}

static void *mapper(void *arg)
{
	struct fz_rng r;

	fz_rng_init(&r, seed0, 300);
	while (!atomic_load(&stop_chaos)) {
		size_t off = fz_below(&r, CHAOS_PAGES - 16) * PAGE, len = (1 + fz_below(&r, 16)) * PAGE;
		char *p = chaos + off;

		switch (fz_below(&r, 9)) {
		case 0: munmap(p, len); break;
		case 1:
			mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		case 2:
			mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		case 3: mprotect(p, len, PROT_READ); break;
		case 4: mprotect(p, len, fz_one_in(&r, 4) ? PROT_NONE : PROT_READ | PROT_WRITE); break;
		case 5: madvise(p, len, MADV_DONTNEED); break;
		case 6: madvise(p, len, fz_one_in(&r, 2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); break;
		case 7: {
			/* Move pages elsewhere in the pool. */
			size_t to = fz_below(&r, CHAOS_PAGES - 16) * PAGE;

			if (to + len <= off || to >= off + len)
				mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, chaos + to);
			break;
		}
		default:
			/* Back to plain writable memory. */
			mmap(chaos, CHAOS_PAGES * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		}
		usleep(200 + fz_below(&r, 2000));
	}
	return NULL;
}

/* A child keeps using the inherited files on its own copy of the memory, then exits. */
static int child_calls(uint64_t seed, int calls)
{
	struct wk w;

	memset(&w, 0, sizeof(w));
	w.idx = 90;
	w.child = true;
	fz_rng_init(&w.r, seed, 400);
	w.fd = shared_fd[0];
	/* The parent's buffers are ours now (fork copied them); the oracle parts are unused. */
	w.buf = map_anon(BUF_PAGES * PAGE, PROT_READ | PROT_WRITE);
	w.ro = map_anon(PAGE, PROT_READ | PROT_WRITE);
	w.none = map_anon(PAGE, PROT_NONE);
	w.edge = map_anon(2 * PAGE, PROT_READ | PROT_WRITE);
	w.scratch = map_anon(SCRATCH_PAGES * PAGE, PROT_READ | PROT_WRITE);
	if (!w.buf || !w.ro || !w.none || !w.edge || !w.scratch)
		return 2;
	ro_fill(&w);
	mprotect(w.ro, PAGE, PROT_READ);
	mprotect(w.edge + PAGE, PAGE, PROT_NONE);
	for (int i = 0; i < calls; i++) {
		int s = fz_below(&w.r, NSHARED);

		char one = 1;

		random_call(&w, shared_fd[s], -1, true);
		if (fz_one_in(&w.r, 8))
			safe_write(chaos + fz_below(&w.r, CHAOS_PAGES) * PAGE, &one, 1);
	}
	return 0;
}

static void *forker(void *arg)
{
	struct fz_rng r;

	fz_rng_init(&r, seed0, 500);
	while (!atomic_load(&stop_chaos)) {
		int st;
		pid_t c;

		for (int s = 0; s < NSHARED; s++)
			pthread_rwlock_rdlock(&shared_lk[s]);
		c = fork();
		for (int s = 0; s < NSHARED; s++)
			pthread_rwlock_unlock(&shared_lk[s]);
		if (!c) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(child_calls(fz_r(&r), 20 + fz_below(&r, 200)));
		}
		if (c < 0)
			break;
		if (fz_one_in(&r, 4)) {
			usleep(fz_below(&r, 5000));
			kill(c, SIGKILL);	/* dies in the middle of a call */
		}
		if (waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st))
			fz_fail(seed0, "a forked child using the inherited files failed: %d",
				WEXITSTATUS(st));
		usleep(5000 + fz_below(&r, 20000));
	}
	return NULL;
}

/* Threads that make a few calls and exit, some while a call of another thread runs. */
static void *short_lived(void *arg)
{
	struct wk *w = arg;

	for (int i = 0; i < 5; i++)
		random_call(w, shared_fd[fz_below(&w->r, NSHARED)], -1, true);
	return NULL;
}

/*
 * The spawner's buffers, set up before the chaos threads start: mapped later, a page could land
 * in a hole the mapper left in the chaos pool, and the mapper's next MAP_FIXED there would
 * replace the read-only and PROT_NONE pages by writable ones (a false failure in the first
 * 1 000 000-call run, seed 0x72393d7f1983ce3c: "wrote into a read-only buffer").
 */
static struct wk spawn_wk;

static void *spawner(void *arg)
{
	struct wk *w = arg;

	while (!atomic_load(&stop_chaos)) {
		pthread_t t;

		for (int s = 0; s < NSHARED; s++)
			pthread_rwlock_rdlock(&shared_lk[s]);
		if (!pthread_create(&t, NULL, short_lived, w))
			pthread_join(t, NULL);
		for (int s = 0; s < NSHARED; s++)
			pthread_rwlock_unlock(&shared_lk[s]);
		usleep(1000 + fz_below(&w->r, 5000));
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The workers */

struct run {
	long calls_each;
	int oracle_pct;		/* per mille of steps that run an oracle sequence */
};

static struct run cfg;

/* Replace shared file @s by a fresh one (handshaken or not): its session, restore, regions go. */
static void reopen_shared(struct wk *w, int s)
{
	int nfd = fz_one_in(&w->r, 3) ? open("/dev/ckpt", O_RDWR | O_CLOEXEC) : ck_open();

	if (nfd < 0)
		return;
	pthread_rwlock_wrlock(&shared_lk[s]);
	dup2(nfd, shared_fd[s]);
	pthread_rwlock_unlock(&shared_lk[s]);
	close(nfd);
}

/* A random PREPARE succeeded on @fd: drop it now, so nothing stays parked on it. */
static void drop_prepared(struct wk *w, int fd, int slot)
{
	w->prepared = false;
	if (slot >= 0) {
		reopen_shared(w, slot);
		return;
	}
	if (fd == w->fd) {
		int nfd = ck_open();

		if (nfd < 0)
			return;
		dup2(nfd, w->fd);
		close(nfd);
		w->scratch_id = ck_register(w->fd, w->scratch, SCRATCH_PAGES * PAGE, 0);
	}
}

static void *worker(void *arg)
{
	struct wk *w = arg;

	while (fz_thread_calls < cfg.calls_each) {
		uint64_t x = fz_below(&w->r, 1000);

		if (x < (uint64_t)cfg.oracle_pct) {
			switch (fz_below(&w->r, 7)) {
			case 0: case 1: oracle_superset(w); break;
			case 2: case 3: oracle_hold(w); break;
			case 4: canary_round(w); break;
			case 5: attach_round(w); break;
			default: fz_one_in(&w->r, 2) ? dump_round(w) : prepare_round(w); break;
			}
		} else if (x < (uint64_t)cfg.oracle_pct + 5) {
			reopen_shared(w, fz_below(&w->r, NSHARED));
		} else if (x < (uint64_t)cfg.oracle_pct + 8) {
			/* A file without its handshake: every command but API is refused. */
			int nfd = open("/dev/ckpt", O_RDWR | O_CLOEXEC);

			if (nfd >= 0) {
				random_call(w, nfd, 0, false);
				close(nfd);
			}
		} else if (fz_one_in(&w->r, 3)) {
			random_call(w, w->fd, 1, false);
			if (w->prepared)
				drop_prepared(w, w->fd, -1);
		} else {
			int s = fz_below(&w->r, NSHARED);
			struct ckpt_api probe = { 0 };
			int hs;

			pthread_rwlock_rdlock(&shared_lk[s]);
			/* Handshaken? Then a second API answers -EBUSY (and stays so). */
			hs = ioctl(shared_fd[s], CKPT_IOC_API, &probe) && errno == EBUSY ? 1 : -1;
			fz_count();
			random_call(w, shared_fd[s], hs, true);
			pthread_rwlock_unlock(&shared_lk[s]);
			if (w->prepared)
				drop_prepared(w, -1, s);
		}
		w->calls++;
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Setup shared by the tests */

static void victim_main(void)
{
	size_t vp = 64;
	char *a = ck_map(vp * PAGE, 2 << 20), *s = map_anon(16 * PAGE, PROT_READ | PROT_WRITE);
	struct fz_rng r;
	int bad = 0;

	if (!a || !s)
		_exit(2);
	fz_rng_init(&r, seed0, 600);
	for (size_t i = 0; i < vp * PAGE; i++)
		a[i] = (char)canary_byte(i);
	victim_info[0] = (uintptr_t)a;
	victim_info[1] = vp;
	victim_info[2] = (uintptr_t)s;
	for (long it = 0; getppid() != 1; it++) {
		s[fz_below(&r, 16 * PAGE)]++;
		if (it % 64 == 0)
			usleep(500);
		if (it % 1024 == 0) {
			for (size_t i = 0; i < vp * PAGE; i += 61)
				if ((uint8_t)a[i] != canary_byte(i))
					bad = 1;
			if (victim_info[3])
				_exit(bad ? 3 : 0);
		}
	}
	_exit(bad ? 3 : 0);
}

static int setup_all(void)
{
	struct sigaction sa = { .sa_sigaction = segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
	char path[] = "/tmp/fuzz_ioctl.XXXXXX";
	char page[PAGE];
	FILE *f;
	char line[512];
	void *h;

	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	hold_race = fz_hold_take_race();
	victim_info = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (victim_info == MAP_FAILED)
		return -1;
	memset((void *)victim_info, 0, PAGE);
	victim = fork();
	if (!victim) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		victim_main();
	}
	for (int i = 0; i < 2000 && !victim_info[1]; i++)
		usleep(1000);
	if (!victim_info[1])
		return -1;

	chaos = ck_map(CHAOS_PAGES * PAGE, 2 << 20);
	canary = ck_map(CANARY_PAGES * PAGE, PAGE);
	if (!chaos || !canary)
		return -1;
	memset(chaos, 3, CHAOS_PAGES * PAGE);
	madvise(canary, CANARY_PAGES * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < CANARY_PAGES * PAGE; i++)
		canary[i] = (char)canary_byte(i);
	canary_fd = ck_open();
	canary_id = ck_register(canary_fd, canary, CANARY_PAGES * PAGE, CKPT_REGISTER_DIRTY);
	if (canary_fd < 0 || (long)canary_id <= 0)
		return -1;
	for (int s = 0; s < NSHARED; s++) {
		shared_fd[s] = ck_open();
		pthread_rwlock_init(&shared_lk[s], NULL);
		if (shared_fd[s] < 0)
			return -1;
	}
	data_fd = mkstemp(path);
	if (data_fd < 0)
		return -1;
	for (int i = 0; i < 16; i++) {
		memset(page, i, sizeof(page));
		if (write(data_fd, page, PAGE) != PAGE)
			return -1;
	}
	wronly_fd = open(path, O_WRONLY | O_CLOEXEC);
	unlink(path);
	dir_fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wronly_fd < 0 || dir_fd < 0 || pipe(pipe_rw))
		return -1;
	fcntl(pipe_rw[0], F_SETFL, O_NONBLOCK);
	fcntl(pipe_rw[1], F_SETFL, O_NONBLOCK);
	/*
	 * Unmapped: 4 GiB, far below where mmap places things top-down and above the heap of a
	 * PIE program (an address freed by munmap could be the next mmap's).
	 */
	hole = 1ULL << 32;
	h = mmap((void *)(uintptr_t)hole, 64 * PAGE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (h != (void *)(uintptr_t)hole)
		return -1;
	munmap(h, 64 * PAGE);
	f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (strstr(line, "[vvar]"))
			keep_start = s;
		if (strstr(line, "[vdso]"))
			keep_end = e;
	}
	if (f)
		fclose(f);
	return 0;
}

/* Stop the victim; false if its memory changed. */
static bool victim_done(void)
{
	int st;

	victim_info[3] = 1;
	if (waitpid(victim, &st, 0) != victim)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool canary_intact(void)
{
	for (size_t i = 0; i < CANARY_PAGES * PAGE; i++)
		if ((uint8_t)canary[i] != canary_byte(i))
			return false;
	return true;
}

/*
 * The storm: @calls calls from NWORK workers, with the chaos threads (faulter x2, mapper,
 * forker, spawner) running meanwhile if @chaos_on.
 */
static void storm(struct __test_metadata *_metadata, long calls, int oracle_pm, bool chaos_on)
{
	pthread_t wt[NWORK], ct[6];
	struct wk w[NWORK];
	int nct = 0;
	long c0;

	seed0 = fz_seed();
	fz_counters_init();
	ASSERT_EQ(0, setup_all());
	TH_LOG("seed %#llx (replay: CKPT_FUZZ_SEED=%#llx), %ld calls, %d threads%s%s",
	       (unsigned long long)seed0, (unsigned long long)seed0, calls, NWORK,
	       chaos_on ? " + chaos" : "", hold_race ? ", CKPT_FUZZ_HOLD_TAKE_RACE on" : "");
	cfg.calls_each = calls / NWORK + 1;
	cfg.oracle_pct = oracle_pm;
	c0 = atomic_load(fz_calls);
	for (int i = 0; i < NWORK; i++)
		ASSERT_EQ(0, wk_init(&w[i], i));
	if (chaos_on) {
		ASSERT_EQ(0, wk_init(&spawn_wk, 80));
		ASSERT_EQ(0, pthread_create(&ct[nct++], NULL, faulter, (void *)0));
		ASSERT_EQ(0, pthread_create(&ct[nct++], NULL, faulter, (void *)1));
		ASSERT_EQ(0, pthread_create(&ct[nct++], NULL, mapper, NULL));
		ASSERT_EQ(0, pthread_create(&ct[nct++], NULL, forker, NULL));
		ASSERT_EQ(0, pthread_create(&ct[nct++], NULL, spawner, &spawn_wk));
	}
	for (int i = 0; i < NWORK; i++)
		ASSERT_EQ(0, pthread_create(&wt[i], NULL, worker, &w[i]));
	for (int i = 0; i < NWORK; i++)
		pthread_join(wt[i], NULL);
	atomic_store(&stop_chaos, 1);
	for (int i = 0; i < nct; i++)
		pthread_join(ct[i], NULL);
	EXPECT_TRUE(canary_intact()) TH_LOG("the canary's bytes changed");
	EXPECT_TRUE(victim_done()) TH_LOG("the attached victim's memory changed");
	TH_LOG("seed %#llx: %ld calls made, %ld invariant failures; %ld ATTACHes to a traced child, %ld calls on them",
	       (unsigned long long)seed0, atomic_load(fz_calls) - c0, atomic_load(fz_failures),
	       atomic_load(&attached_ok), atomic_load(&attached_ops));
	EXPECT_LT(0, atomic_load(&attached_ok)) TH_LOG("no ATTACH succeeded");
	EXPECT_EQ(0, atomic_load(fz_failures));
	EXPECT_LE(calls, atomic_load(fz_calls) - c0);
	/* The line make fuzz reports (stderr: the harness ends a test with _exit). */
	fprintf(stderr, "# fuzz: seed %#llx, %ld calls, %ld failures\n", (unsigned long long)seed0,
		atomic_load(fz_calls) - c0, atomic_load(fz_failures));
}

/* ---------------------------------------------------------------------------------------- */
/* The named hostile cases */

/*
 * Any bytes, every command, several threads on shared and private files, while other threads
 * fault on tracked memory, unmap/remap/madvise it, fork children that keep using the files
 * (some killed in the middle of a call) and start and end threads. CKPT_FUZZ_CALLS calls.
 */
FIXTURE(fz) {
	int unused;
};

FIXTURE_SETUP(fz)
{
}

FIXTURE_TEARDOWN(fz)
{
}

TEST_F_TIMEOUT(fz, random_calls, 14400)
{
	storm(_metadata, fz_env_long("CKPT_FUZZ_CALLS", 100000), 8, true);
}

/* The same storm without calls of random bytes' luck: mostly the oracle sequences. */
TEST_F_TIMEOUT(fz, oracles_under_chaos, 1200)
{
	storm(_metadata, fz_env_long("CKPT_FUZZ_ORACLE_CALLS", 6000), 150, true);
}

/* Every reserved word and every unknown flag bit, alone, of every command: -EINVAL. */
TEST(reserved_and_flags_rejected)
{
	int fd = ck_open();
	char *m = ck_map(4 * PAGE, PAGE);
	long id;

	seed0 = 0;
	fz_counters_init();
	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, m);
	id = ck_register(fd, m, 4 * PAGE, 0);
	ASSERT_LT(0, id);
	for (unsigned int c = 0; c < FZ_NCMDS; c++) {
		unsigned long cmd = fz_cmds[c];
		int roff, rn, fo;
		uint64_t valid;
		union arg a;

		if (cmd == CKPT_IOC_RESTORE_COMMIT)
			continue;
		reserved_of(cmd, &roff, &rn);
		fo = flags_of(cmd, &valid);
		for (int i = 0; i < rn; i++) {
			memset(&a, 0, sizeof(a));
			a.raw[roff + i] = 1ULL << (i * 7 % 64);
			EXPECT_EQ(cmd == CKPT_IOC_API ? -EBUSY : -EINVAL, fz_ioctl(fd, cmd, (uintptr_t)&a))
				TH_LOG("cmd %#lx reserved word %d", cmd, i);
		}
		for (int b = 0; fo >= 0 && b < 64; b++) {
			if (valid & (1ULL << b))
				continue;
			memset(&a, 0, sizeof(a));
			a.raw[fo] = 1ULL << b;
			EXPECT_EQ(-EINVAL, fz_ioctl(fd, cmd, (uintptr_t)&a))
				TH_LOG("cmd %#lx flag bit %d", cmd, b);
		}
	}
	EXPECT_EQ(-EINVAL, fz_ioctl(fd, CKPT_IOC_RESTORE_COMMIT, 2));
	close(fd);
}

/* Every number that is not a command, in our magic and around it: -ENOTTY; commands are not. */
TEST(unknown_numbers_enotty)
{
	int fd = ck_open();
	char *m = map_anon(4 * PAGE, PROT_READ | PROT_WRITE);
	struct ckpt_api api = { .api = CKPT_API_VERSION };
	int f2 = open("/dev/ckpt", O_RDWR);

	fz_counters_init();
	ASSERT_LE(0, fd);
	ASSERT_LE(0, f2);
	ASSERT_EQ(0, fz_ioctl(f2, CKPT_IOC_API, (uintptr_t)&api));
	EXPECT_EQ(fz_ioctl_bits(), api.ioctls);
	for (unsigned int dir = 0; dir < 4; dir++)
		for (unsigned int nr = 0; nr < 256; nr++)
			for (unsigned int sz = 0; sz < 512; sz += 8) {
				unsigned long cmd = _IOC(dir, CKPT_IOC_MAGIC, nr, sz);

				if (fz_known_cmd(cmd))
					continue;
				EXPECT_EQ(-ENOTTY, fz_ioctl(fd, cmd, (uintptr_t)m))
					TH_LOG("cmd %#lx", cmd);
			}
	for (unsigned int t = 0; t < 256; t++)
		if (t != CKPT_IOC_MAGIC && !vfs_type(t))
			EXPECT_EQ(-ENOTTY, fz_ioctl(fd, _IOC(3, t, 3, sizeof(struct ckpt_collect)),
						    (uintptr_t)m));
	/* None of them wrote into the argument. */
	for (size_t i = 0; i < 4 * PAGE; i++)
		if (m[i]) {
			EXPECT_EQ(0, m[i]) TH_LOG("byte %zu of the argument written", i);
			break;
		}
	close(fd);
	close(f2);
}

/*
 * RELEASE's @data inside held pages of the region it returns copies of: the copy_to_user()
 * faults on a held page, whose copy replaces the one being returned (hold.c, hold_take()
 * against copy_held(): a use-after-free and double free until f6dd93b). The copy must come
 * back byte for byte (0xaa would be page poisoning's mark of a freed page).
 */
TEST(release_into_held_pages)
{
	int fd = ck_open();
	char *m = ck_map(8 * PAGE, PAGE);
	uint64_t list[16];
	struct ckpt_release r;
	long id;

	if (!fz_hold_take_race())
		SKIP(return, "CKPT_FUZZ_HOLD_TAKE_RACE=0: a module without the hold_take() fix");
	fz_counters_init();
	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, m);
	madvise(m, 8 * PAGE, MADV_NOHUGEPAGE);
	memset(m, 7, 8 * PAGE);
	id = ck_register(fd, m, 8 * PAGE, 0);
	ASSERT_LT(0, id);
	for (int round = 0; round < 30; round++) {
		/*
		 * Page 0 held and written (its copy: 1, 7, 7, ...), then held again; RELEASE
		 * (without END, so the hold stays) returns that copy into page 0 itself.
		 */
		memset(m, 7, PAGE);
		ASSERT_LE(0, ck_collect(fd, id, list, 16, 0, NULL));
		m[0] = 1;
		ASSERT_LE(0, ck_collect(fd, id, list, 16, CKPT_COLLECT_HOLD, NULL));
		m[1] = 2;
		ASSERT_LE(0, ck_collect(fd, id, list, 16, CKPT_COLLECT_HOLD, NULL));
		memset(&r, 0, sizeof(r));
		r.id = id;
		r.addrs = (uintptr_t)list;
		r.data = (uintptr_t)m;
		r.max = 1;
		ASSERT_EQ(0, fz_ioctl(fd, CKPT_IOC_RELEASE, (uintptr_t)&r));
		ASSERT_EQ(1, r.count);
		EXPECT_EQ((uintptr_t)m, list[0]);
		/* The copy, byte for byte; 0xaa would be a freed page's poison. */
		EXPECT_EQ(1, m[0]);
		EXPECT_EQ(7, m[1]) TH_LOG("round %d: copy byte 1 is %#x", round, (uint8_t)m[1]);
		for (int i = 2; i < (int)PAGE; i++)
			if (m[i] != 7) {
				EXPECT_EQ(7, m[i]) TH_LOG("round %d: copy byte %d is %#x", round, i,
							  (uint8_t)m[i]);
				break;
			}
		do {
			r.flags = CKPT_RELEASE_END;
			r.data = (uintptr_t)(m + 4 * PAGE);
			r.max = 1;
			ASSERT_EQ(0, fz_ioctl(fd, CKPT_IOC_RELEASE, (uintptr_t)&r));
		} while (r.remaining);
	}
	close(fd);
}

/*
 * COMMIT itself, in forked children (it replaces the caller's address space): random images of
 * anonymous, shared, growsdown and file mappings of every protection, filled by runs (read-only
 * and PROT_NONE ones through FOLL_FORCE), a mapping built by the caller (PREBUILT), helper
 * threads parked in RESTORE_THREAD. The image's code writes one of its pages to a pipe and
 * exits 42: the parent checks the page's bytes, the status fd and the exit. Some rounds change
 * things between PREPARE and COMMIT: the data file shrinks (past the point of no return: the
 * status fd says -EIO, the child is killed) or a PREBUILT mapping goes (refused before it).
 */
struct image {
	struct ckpt_restore_prepare p;
	struct ckpt_restore_vma v[8];
	struct ckpt_restore_run run[32];
	uint64_t verify;		/* the page the image writes to the pipe */
	char want[PAGE];		/* its bytes */
	uint64_t prebuilt;		/* address of the PREBUILT mapping (2 pages), or 0 */
	int helpers;
	int twist;			/* 0 none, 1 shrink the data file, 2 unmap the PREBUILT one */
};

static void put_u32(uint8_t *c, uint32_t v)
{
	memcpy(c, &v, 4);
}

/* Code page: write(@fd, @addr, 4096); exit_group(42). At +256: exit(0) for helper threads. */
static void image_code(uint8_t *c, int fd, uint64_t addr)
{
	int i = 0;

	memset(c, 0xcc, PAGE);
	c[i++] = 0xbf; put_u32(c + i, fd); i += 4;			/* mov edi, fd */
	c[i++] = 0x48; c[i++] = 0xbe; memcpy(c + i, &addr, 8); i += 8;	/* movabs rsi, addr */
	c[i++] = 0xba; put_u32(c + i, PAGE); i += 4;			/* mov edx, 4096 */
	c[i++] = 0xb8; put_u32(c + i, 1); i += 4;			/* mov eax, SYS_write */
	c[i++] = 0x0f; c[i++] = 0x05;					/* syscall */
	c[i++] = 0xbf; put_u32(c + i, 42); i += 4;			/* mov edi, 42 */
	c[i++] = 0xb8; put_u32(c + i, 231); i += 4;			/* mov eax, SYS_exit_group */
	c[i++] = 0x0f; c[i++] = 0x05;
	i = 256;
	c[i++] = 0xbf; put_u32(c + i, 0); i += 4;			/* mov edi, 0 */
	c[i++] = 0xb8; put_u32(c + i, 60); i += 4;			/* mov eax, SYS_exit */
	c[i++] = 0x0f; c[i++] = 0x05;
}

static void *helper_main(void *arg)
{
	struct image *im = arg;
	struct ckpt_restore_thread t;
	int fd = ck_open();

	memset(&t, 0, sizeof(t));
	t.thread.regs = im->p.thread.regs;
	t.thread.regs.ip = im->p.thread.regs.ip + 256;
	t.self_fd = fd;
	/* Returns only if the restore failed or was refused. */
	ioctl(fd, CKPT_IOC_RESTORE_THREAD, &t);
	return NULL;
}

static int commit_child(struct image *im, int data, int self)
{
	pthread_t th;
	long e;

	if (im->prebuilt) {
		char *p = mmap((void *)(uintptr_t)im->prebuilt, 2 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		if (p == MAP_FAILED)
			return 4;
		for (int i = 0; i < 2 * (int)PAGE; i++)
			p[i] = (char)(i * 3 + 1);
	}
	e = ioctl(self, CKPT_IOC_RESTORE_PREPARE, &im->p) ? -errno : 0;
	if (e) {
		fprintf(stderr, "# PREPARE of the image: %ld\n", e);
		return 5;
	}
	for (int i = 0; i < im->helpers; i++)
		if (pthread_create(&th, NULL, helper_main, im))
			return 6;
	for (int i = 0; ioctl(self, CKPT_IOC_RESTORE_COMMIT, CKPT_COMMIT_CHECK); i++) {
		if (errno != EBUSY || i > 20000)
			return 8;
		usleep(1000);
	}
	if (im->twist == 1 && ftruncate(data, 0))
		return 4;
	if (im->twist == 2)
		munmap((void *)(uintptr_t)im->prebuilt, PAGE);
	e = ioctl(self, CKPT_IOC_RESTORE_COMMIT, 0) ? -errno : 0;
	/* Only a refusal before the point of no return comes back here. */
	return im->twist == 2 && e == -EINVAL ? 7 : 9;
}

static void build_image(struct fz_rng *r, struct image *im, int data, int self, int status_w,
			int out_w, uint64_t h)
{
	uint8_t code[PAGE];
	char page[PAGE];
	int nv = 0, nr = 0, candidates = 0, vi = 0;

	memset(im, 0, sizeof(*im));
	/* The data file: page 0 the code, pages 1..31 bytes of their own. */
	for (int i = 1; i < 32; i++) {
		for (int k = 0; k < (int)PAGE; k++)
			page[k] = (char)(i * 37 + k * 11);
		pwrite(data, page, PAGE, i * PAGE);
	}
	im->v[nv++] = (struct ckpt_restore_vma){ .start = h, .len = PAGE,
						 .prot = PROT_READ | PROT_EXEC |
							 (fz_one_in(r, 3) ? PROT_WRITE : 0) };
	im->run[nr++] = (struct ckpt_restore_run){ .addr = h, .len = PAGE, .data_off = 0 };
	for (int i = 0, k = 1 + fz_below(r, 5); i < k; i++) {
		struct ckpt_restore_vma *v = &im->v[nv++];
		static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE,
					     PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC };

		v->start = h + (2 + 4 * i) * PAGE;
		v->len = (1 + fz_below(r, 3)) * PAGE;
		v->prot = prots[fz_below(r, 5)];
		switch (fz_below(r, 5)) {
		case 0: v->flags = CKPT_VMA_FILE; v->fd = data; v->pgoff = fz_below(r, 28) * PAGE; break;
		case 1: v->flags = CKPT_VMA_SHARED; v->prot |= PROT_WRITE; break;
		case 2: v->flags = CKPT_VMA_GROWSDOWN; break;
		}
		for (uint64_t a = v->start; a < v->start + v->len; a += PAGE)
			if (fz_one_in(r, 2))
				im->run[nr++] = (struct ckpt_restore_run){
					.addr = a, .len = PAGE, .data_off = (1 + fz_below(r, 31)) * PAGE };
	}
	if (fz_one_in(r, 3)) {
		im->prebuilt = h + 40 * PAGE;
		im->v[nv++] = (struct ckpt_restore_vma){ .start = im->prebuilt, .len = 2 * PAGE,
							 .prot = PROT_READ | PROT_WRITE,
							 .flags = CKPT_VMA_PREBUILT };
	}
	/* Pick a readable page to send back, and what it must hold. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 1; i < nv; i++) {
			struct ckpt_restore_vma *v = &im->v[i];

			if (!(v->prot & PROT_READ))
				continue;
			for (uint64_t a = v->start; a < v->start + v->len; a += PAGE) {
				if (!pass) {
					candidates++;
					continue;
				}
				if (fz_below(r, candidates--))
					continue;
				im->verify = a;
				vi = i;
				goto picked;
			}
		}
picked:
	if (!im->verify)
		im->verify = h;	/* the code page itself */
	image_code(code, out_w, im->verify);
	pwrite(data, code, PAGE, 0);
	/* What the page holds after COMMIT: a run's bytes, else the file's, else zeros. */
	if (im->verify == h) {
		memcpy(im->want, code, PAGE);
	} else if (im->v[vi].flags & CKPT_VMA_PREBUILT) {
		for (int k = 0; k < (int)PAGE; k++)
			im->want[k] = (char)((im->verify - im->v[vi].start + k) * 3 + 1);
	} else if (im->v[vi].flags & CKPT_VMA_FILE) {
		if (pread(data, im->want, PAGE, im->v[vi].pgoff + im->verify - im->v[vi].start) != PAGE)
			memset(im->want, 0, PAGE);
	}
	for (int k = 0; k < nr; k++)
		if (im->run[k].addr == im->verify && pread(data, im->want, PAGE, im->run[k].data_off) != PAGE)
			memset(im->want, 0xee, PAGE);
	im->p.self_fd = self;
	im->p.vmas = (uintptr_t)im->v;
	im->p.nr_vmas = nv;
	im->p.runs = (uintptr_t)im->run;
	im->p.nr_runs = nr;
	im->p.vma_size = sizeof(im->v[0]);
	im->p.run_size = sizeof(im->run[0]);
	im->p.data_fd = data;
	im->p.flags = CKPT_RESTORE_STATUS_FD;
	im->p.status_fd = status_w;
	if (fz_one_in(r, 2)) {
		im->p.keep_start = keep_start;
		im->p.keep_end = keep_end;
	}
	im->p.start_code = h;
	im->p.end_code = h + PAGE;
	im->p.thread.regs.cs = 0x33;
	im->p.thread.regs.ss = 0x2b;
	im->p.thread.regs.ip = h;
	im->p.thread.regs.flags = 0x202;
	im->helpers = fz_below(r, 3);
	im->twist = fz_one_in(r, 6) ? 1 : fz_one_in(r, 5) && im->prebuilt ? 2 : 0;
}

TEST_F_TIMEOUT(fz, restore_commit_in_child, 1200)
{
	long rounds = fz_env_long("CKPT_FUZZ_COMMITS", 40);
	struct fz_rng r;
	struct image *im = mmap(NULL, sizeof(*im), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[] = "/tmp/fuzz_commit.XXXXXX", got[PAGE];
	int done = 0;
	void *h;

	seed0 = fz_seed();
	fz_counters_init();
	fz_rng_init(&r, seed0, 700);
	ASSERT_NE(MAP_FAILED, im);
	ASSERT_EQ(0, setup_all());
	victim_done();
	h = mmap(NULL, 64 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, h);
	munmap(h, 64 * PAGE);
	TH_LOG("seed %#llx (replay: CKPT_FUZZ_SEED=%#llx), %ld images",
	       (unsigned long long)seed0, (unsigned long long)seed0, rounds);
	for (long round = 0; round < rounds; round++) {
		int data = mkstemp(path), st_pipe[2], out_pipe[2], self, st;
		struct pollfd pf;
		int64_t status = 1;
		ssize_t n = 0;
		pid_t c;

		ASSERT_LE(0, data);
		unlink(path);
		strcpy(path, "/tmp/fuzz_commit.XXXXXX");
		ASSERT_EQ(0, pipe(st_pipe));
		ASSERT_EQ(0, pipe(out_pipe));
		self = ck_open();
		ASSERT_LE(0, self);
		build_image(&r, im, data, self, st_pipe[1], out_pipe[1], (uintptr_t)h);
		c = fork();
		ASSERT_LE(0, c);
		if (!c)
			_exit(commit_child(im, data, self));
		close(st_pipe[1]);
		close(out_pipe[1]);
		close(self);
		pf = (struct pollfd){ .fd = out_pipe[0], .events = POLLIN };
		while (n < (ssize_t)PAGE && poll(&pf, 1, 120000) == 1) {
			ssize_t k = read(out_pipe[0], got + n, PAGE - n);

			if (k <= 0)
				break;
			n += k;
		}
		ASSERT_EQ(c, waitpid(c, &st, 0));
		if (read(st_pipe[0], &status, sizeof(status)) != sizeof(status))
			status = 1;
		if (im->twist == 1) {
			EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
				TH_LOG("round %ld: data file shrunk: status %#x", round, st);
			EXPECT_EQ(-EIO, status) TH_LOG("round %ld", round);
		} else if (im->twist == 2) {
			EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 7)
				TH_LOG("round %ld: PREBUILT gone: status %#x", round, st);
		} else {
			EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 42)
				TH_LOG("round %ld: %d vmas, %llu runs, %d helpers, keep %d: status %#x",
				       round, (int)im->p.nr_vmas, (unsigned long long)im->p.nr_runs,
				       im->helpers, im->p.keep_end != 0, st);
			EXPECT_EQ(0, status) TH_LOG("round %ld", round);
			EXPECT_EQ((ssize_t)PAGE, n);
			EXPECT_EQ(0, memcmp(got, im->want, PAGE))
				TH_LOG("round %ld: page %#llx of the image: byte 0 %#x, want %#x",
				       round, (unsigned long long)im->verify, (uint8_t)got[0],
				       (uint8_t)im->want[0]);
			done++;
		}
		close(st_pipe[0]);
		close(out_pipe[0]);
		close(data);
	}
	TH_LOG("%d images restored and checked, %ld calls", done, atomic_load(fz_calls));
}

TEST_HARNESS_MAIN

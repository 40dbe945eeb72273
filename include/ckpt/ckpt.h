/* SPDX-License-Identifier: MIT */
/*
 * libckpt: register program state, checkpoint it incrementally and atomically, restore it after
 * a crash. See Documentation/user-guide.md.
 *
 * Conventions (every call):
 *   - Returns 0 or a non-negative value on success, -errno on failure. errno is never set and
 *     nothing aborts on bad input (NULL handles and pointers give -EINVAL).
 *   - Handles are opaque. ckpt_last_error() gives a human-readable reason for the last failure
 *     of a session, naming the region or the store part concerned.
 *   - Compiles as C11 and as C++.
 *
 * Thread-safety: a session (ckpt_t) may be used from several threads at once; calls are
 * serialised internally. A checkpoint is *consistent* when every thread that writes registered
 * memory is attached to the session (ckpt_thread_attach) and reaches safepoints
 * (ckpt_safepoint / ckpt_hook / CKPT_HOOK): a checkpoint is taken only while every attached
 * thread other than the caller is parked at a safepoint, so the epoch shows registered memory
 * as it was between the attached threads' iterations. Threads that are not attached are not
 * waited for; they must not write registered memory while a checkpoint runs.
 *
 * After fork: a session belongs to the process that opened it. In a child of fork() (the
 * child's copy of the handle shares the parent's store lock, io_uring ring, DAX mapping and
 * module session), every call on the parent's sessions and heaps returns -ECHILD and touches
 * nothing of them: ckpt_close() too (the child's copy is freed by its exit or exec),
 * ckpt_epoch() returns 0 and ckpt_last_error() says why. The parent goes on checkpointing as
 * before. The child may open a store of its own (its parent's store gives -EBUSY). Writes the
 * child makes to registered memory are its own and are never checkpointed. Detected through
 * pthread_atfork, so a child made by a raw clone() system call is not detected: do not call
 * libckpt there.
 */
#ifndef CKPT_CKPT_H
#define CKPT_CKPT_H

#include <pthread.h>	/* ckpt_mutex_t (threads with persistent memory) */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_VERSION_MAJOR 0
#define CKPT_VERSION_MINOR 1

#ifdef __cplusplus
/* C++ spells the opaque tag differently: a struct named `ckpt` would collide with the C++
 * namespace ckpt (ckpt.hpp). Same type for the ABI: an incomplete struct behind a pointer. */
typedef struct ckpt_handle ckpt_t;
#else
typedef struct ckpt ckpt_t;
#endif
typedef struct ckpt_config ckpt_config_t;
typedef struct ckpt_heap ckpt_heap_t;

/* Which tracker finds the pages written since the last checkpoint. */
enum ckpt_tracker_kind {
	CKPT_TRACKER_AUTO = 0,	/* env CKPT_TRACKER if set, else module > uffd-async > uffd > mprotect */
	CKPT_TRACKER_MODULE = 1,	/* ckpt.ko (/dev/ckpt with CKPT_FEATURE_TRACK) */
	CKPT_TRACKER_UFFD = 2,	/* userfaultfd write-protect (sync), a handler thread */
	CKPT_TRACKER_MPROTECT = 3,	/* mprotect + SIGSEGV, chaining the program's handler */
	CKPT_TRACKER_FULL = 4,	/* no tracking: every checkpoint writes every page */
	CKPT_TRACKER_UFFD_ASYNC = 5,	/* Linux >= 6.7: userfaultfd WP_ASYNC + PAGEMAP_SCAN, */
					/* no handler (the kernel logs writes in the PTEs) */
};

/* Which writer persists pages; AUTO decides from the store path (DAX or io_uring). */
enum ckpt_writer_kind {
	CKPT_WRITER_AUTO = 0,
	CKPT_WRITER_DAX = 1,
	CKPT_WRITER_URING = 2,
};

/* ckpt_config.flags */
#define CKPT_CFG_TIMER		(1u << 0)	/* a timer thread checkpoints interval_ms after each checkpoint ends */
#define CKPT_CFG_PARTIAL_RESTORE (1u << 1)	/* restore even if the epoch holds regions */
						/* that are not registered (default: -ESRCH) */
#define CKPT_CFG_FORMAT		(1u << 2)	/* format the store even if it holds one or */
						/* other data (destroys it); implies CREATE */
#define CKPT_CFG_ASYNC		(1u << 3)	/* asynchronous checkpoints (see ckpt_checkpoint); */
						/* needs the module tracker, else ckpt_open: -EOPNOTSUPP */
						/* (uffd-async included: nothing copies before a write) */
#define CKPT_CFG_CREATE		(1u << 4)	/* make a store of an existing path that holds */
						/* none (an empty file, a blank device); see ckpt_open */
#define CKPT_CFG_OTHER_PROGRAM	(1u << 5)	/* open a store whose checkpoint another program */
						/* made (default: -EMEDIUMTYPE); see ckpt_open */

/*
 * Session configuration. Initialise with ckpt_config_init(), then change fields. Passing NULL
 * to ckpt_open() means all defaults. Unknown flags or non-zero reserved fields give -EINVAL.
 */
struct ckpt_config {
	uint32_t size;		/* sizeof(struct ckpt_config), set by ckpt_config_init */
	uint32_t tracker;	/* enum ckpt_tracker_kind; default AUTO */
	uint32_t writer;	/* enum ckpt_writer_kind; default AUTO */
	uint32_t flags;		/* CKPT_CFG_*; default 0 */
	uint64_t interval_ms;	/* timer period and hook interval; 0 = no time trigger */
	uint64_t every_n;	/* ckpt_hook checkpoints every N calls; 0 = off */
	uint64_t create_size;	/* a new file store's initial size; 0 = grow on demand */
	const void *key;	/* NULL, or key_len bytes: authenticate the store's commit */
	uint64_t key_len;	/* records with a keyed MAC (16..64 bytes; see ckpt_open) */
	uint64_t reserved[6];	/* must be zero */
};

/* Fill *cfg with the defaults. -EINVAL if cfg is NULL. */
int ckpt_config_init(ckpt_config_t *cfg);

/*
 * Open (or create) the store at `store` and start a session.
 * A store is opened. A path that does not exist becomes a new file store that grows as regions
 * are registered (a new file holds nothing to lose). A path that exists but holds no store is
 * never formatted unless asked:
 *   - CKPT_CFG_CREATE: an empty or blank (zeroed) file, a block device in which libblkid
 *     recognises nothing, a device-DAX whose header is zeroed, becomes a store;
 *   - CKPT_CFG_FORMAT: anything is formatted, a store or a file system included.
 * Refusals (nothing is written): -ENODATA no store there and CKPT_CFG_CREATE not given;
 * -EEXIST it holds a file system, partition table, LUKS header, swap area... (libblkid), or a
 * file holds other data: only CKPT_CFG_FORMAT formats it; -EUCLEAN a damaged store.
 * Symlinks in the path are followed (a store is never created through a dangling one).
 * With cfg->key, every checkpoint's commit record is authenticated with a keyed MAC (libsodium's
 * BLAKE2b, loaded when a key is given) and the newest one is checked here: -EKEYREJECTED the
 * store's record has no MAC (written without a key) or one this key does not verify (forged,
 * another store's, another key); -ENOKEY no key given but the store's records carry a MAC;
 * -ELIBACC libsodium cannot be loaded; -EINVAL key_len outside 16..64. XXH3 checksums stay the
 * damage check; the MAC covers the commit record and its provenance (store-format.md).
 * -EMEDIUMTYPE: the store's newest checkpoint was made by another program (another executable
 * path and another ELF build-id; a rebuilt program keeps its path, a moved copy its build-id):
 * restoring its regions, or checkpointing over them, is refused unless CKPT_CFG_OTHER_PROGRAM
 * is set. Stores whose checkpoint was written by a library before store format 1.2 record no
 * program and open as before; their next checkpoint records this one.
 * Other errors: -EBUSY the store is open in another process; -EPROTO another format version;
 * -ENOSPC too small; -ENODEV a forced tracker is not available here; -EOPNOTSUPP a forced writer
 * cannot write this store, or CKPT_CFG_ASYNC without a tracker that holds pages; -EINVAL bad
 * config; other -errno from the system. ckpt_open_error() says which, naming the path.
 */
int ckpt_open(const char *store, const ckpt_config_t *cfg, ckpt_t **out);

/* Reason for the calling thread's last failed ckpt_open() ("" if none). Never NULL; valid
 * until the thread's next ckpt_open(). */
const char *ckpt_open_error(void);

/*
 * Register [addr, addr+len) under `name` (1..200 bytes, no NUL). addr must be page-aligned and
 * len a non-zero multiple of the page size; the memory must stay mapped read-write while it is
 * registered. Registering a name the store already holds with another size gives -EINVAL (the
 * program changed; nothing is restored or overwritten). -EEXIST: the name or an overlapping
 * range is already registered in this session. -EXDEV: ckpt.ko cannot track this process's
 * memory (another mmu notifier may write it unseen) and the session cannot leave the module
 * tracker (forced, or CKPT_CFG_ASYNC); in AUTO mode a session with no region on the module yet
 * moves to the userspace tracker AUTO would pick without it (user-guide.md, "Choosing a tracker").
 */
int ckpt_register(ckpt_t *c, const char *name, void *addr, size_t len);

/* Stop tracking a region (the store keeps its last committed copy). -ENOENT unknown name. */
int ckpt_unregister(ckpt_t *c, const char *name);

/*
 * Commit one new epoch holding every registered region, atomically: after a crash at any
 * instant the store holds the previous epoch or this one. Writes only the pages written since
 * the previous checkpoint (plus metadata). With attached threads, waits until all others are
 * parked at a safepoint. On error the previous epoch stays live and the pages stay due for the
 * next checkpoint. Returns 0 or -errno.
 *
 * With CKPT_CFG_ASYNC the program is held only while the written pages are collected (and
 * write-protected by ckpt.ko): ckpt_checkpoint() returns then, and a background thread persists
 * and commits the epoch while the program runs on. A page the program writes before that
 * thread has read it is copied by the module first, so the epoch is memory exactly as it was at
 * the call. One epoch is in flight at a time: the next checkpoint, and every call but
 * ckpt_hook/ckpt_safepoint/ckpt_thread_attach/ckpt_thread_detach and the heap allocator, first
 * wait for it. ckpt_wait() waits and returns its result; a failure is also counted in the
 * stats and its pages go into the next checkpoint, which is then synchronous (as is every
 * checkpoint of a region the module could not take). The stats count the held time in
 * total_ns (stop + collect) and the background time in total_persist_ns.
 */
int ckpt_checkpoint(ckpt_t *c);

/*
 * Wait for the asynchronous checkpoint in flight (CKPT_CFG_ASYNC) to be committed. Returns 0,
 * or the -errno it failed with (ckpt_last_error() says why); 0 at once if none is in flight
 * and the last one succeeded (or the session is synchronous).
 */
int ckpt_wait(ckpt_t *c);

/*
 * Fill every registered region from the newest committed epoch, then run the restore hooks.
 * 0: restored. -ENOENT: nothing committed yet (memory untouched). -ESRCH: a registered region is
 * not in the epoch, or the epoch holds a region that is not registered (unless
 * CKPT_CFG_PARTIAL_RESTORE); memory untouched. -EIO: damage with no intact older copy. A restore
 * hook's negative return is returned as is. ckpt_last_error() names the region.
 */
int ckpt_restore(ckpt_t *c);

/* Last committed epoch; 0 = none (or c is NULL). After ckpt_restore_epoch(c, e): e. */
uint64_t ckpt_epoch(const ckpt_t *c);

/*
 * The epochs the store holds intact, newest first. Writes up to n of them to epochs[] and
 * returns how many it holds (may be > n), or -errno. Today at most two: the newest committed
 * epoch and the retained one before it (after a fallback from a damaged newest epoch, the one
 * it fell back to). "Intact" means their metadata is whole; a damaged page is found when it is
 * read (ckpt_restore_epoch then fails with -EIO). 0: nothing committed.
 */
int ckpt_list_epochs(const ckpt_t *c, uint64_t *epochs, size_t n);

/*
 * Restore exactly `epoch`, which must be one of ckpt_list_epochs (today: the newest or the one
 * before it), then run the restore hooks. -ENOENT: the store does not hold it intact (nothing
 * changed). -ESRCH: as ckpt_restore, checked against that epoch before anything is filled.
 * -EIO: a page of that epoch is damaged (no fallback to another epoch).
 * After it, ckpt_epoch(c) == epoch and the next checkpoint commits epoch+1, superseding
 * (forgetting) every epoch newer than `epoch`; it writes only the pages written since this call,
 * relative to `epoch`. A crash at any instant of that checkpoint leaves the store holding
 * `epoch` (as newest, or as retained behind the superseded newest) or the new epoch+1, never a
 * mix. Until that checkpoint commits, the superseded epochs stay on the store: a process that
 * exits first finds them again at ckpt_open.
 */
int ckpt_restore_epoch(ckpt_t *c, uint64_t epoch);

/*
 * Go back to `epoch` (one of ckpt_list_epochs) without restoring it: memory stays as it is, and
 * the next checkpoint commits epoch+1 on top of `epoch`, superseding (forgetting) every epoch
 * newer than it, with the crash safety of the checkpoint after ckpt_restore_epoch. The pages
 * the superseded epoch changed relative to `epoch` (the store lists them) count as written,
 * besides those written since: that checkpoint writes both (they must not be taken from
 * `epoch`). A region registered since `epoch` is written whole. For a caller that must not build on
 * an epoch it has not accepted: libckpt-mpi after a failed collective checkpoint, where a rank's
 * newest epoch was committed locally but never agreed on, so the retry does not push the last
 * agreed epoch out of the store. 0: done (or `epoch` is already the newest: nothing changes).
 * -ENOENT: the store does not hold it intact. -ESRCH: a registered region is in that epoch
 * with another size, or the epoch holds a region not registered (without CKPT_CFG_PARTIAL_RESTORE). -EBUSY: a checkpoint is in progress (ckpt_wait first). Nothing changed on error.
 */
int ckpt_supersede(ckpt_t *c, uint64_t epoch);

/* Stop the timer, unregister everything, unmap the session's heaps, close the store. Does not
 * checkpoint. Other threads must have detached and stopped using c. NULL is a no-op. */
int ckpt_close(ckpt_t *c);

/* ---- triggers ---- */

/*
 * Hook point for the program's loop: a safepoint, and a checkpoint when interval_ms has elapsed
 * since the end of the last checkpoint (any: hook, timer or ckpt_checkpoint; the first is due
 * interval_ms after ckpt_open) or every every_n calls (whichever is configured). Measuring from
 * the end means a checkpoint slower than the interval still leaves the program a whole interval
 * of work before the next one. Returns 1 if this call took a checkpoint, 0 if not, -errno if the
 * checkpoint failed; -EAGAIN if it was skipped because a region awaits its restore (below).
 *
 * Before the restore: a region registered while the store's newest committed epoch holds it
 * awaits its restore (its memory is the program's fresh memory, not the stored state) until
 * ckpt_restore/ckpt_restore_epoch fills it (a failed restore does not) or an explicit
 * ckpt_checkpoint commits it as it is (the program starting fresh); a thread region, until its
 * thread's ckpt_thread_restore. While any registered region awaits, automatic checkpoints (the
 * timer, ckpt_hook) are skipped whole, since an epoch is one instant of every region: nothing
 * is written, the skip is counted in skipped_checkpoints, ckpt_last_error names the regions. A
 * region the store does not hold never awaits. So CKPT_CFG_TIMER at open is safe.
 *
 * Cheap when nothing is due: an atomic load, a counter if every_n is set, and
 * if interval_ms is set a CLOCK_MONOTONIC_COARSE read (the precise clock is read only in the last
 * two clock ticks before the due time).
 */
int ckpt_hook(ckpt_t *c);
#define CKPT_HOOK(c) ((void)ckpt_hook(c))

/* Start or stop the timer thread (interval_ms > 0 starts, 0 stops). Its ticks are automatic
 * checkpoints: skipped while a region awaits its restore (ckpt_hook). */
int ckpt_set_timer(ckpt_t *c, uint64_t interval_ms);

/* ---- threads ---- */

/* Attach the calling thread: checkpoints wait for it to be parked at a safepoint. A thread can
 * be attached to one session at a time (-EBUSY). */
int ckpt_thread_attach(ckpt_t *c);
/* Detach the calling thread (call before it exits or blocks for long). -ENOENT if not attached. */
int ckpt_thread_detach(ckpt_t *c);
/* Park here if a checkpoint is waiting for this thread; returns at once otherwise. */
int ckpt_safepoint(ckpt_t *c);

/* ---- restore hooks ---- */

/*
 * Called by ckpt_restore() after every region is filled, once per hook, in registration order,
 * with the region's current address and length. Rebuild transient state here (fds, pointers
 * into other mappings, locks, thread ids). A negative return stops the restore and is returned.
 */
typedef int (*ckpt_restore_fn)(void *arg, const char *name, void *addr, size_t len);
/* Set (or with fn NULL clear) the restore hook of a registered region. -ENOENT unknown name. */
int ckpt_on_restore(ckpt_t *c, const char *name, ckpt_restore_fn fn, void *arg);

/* ---- stats ---- */

struct ckpt_session_stats {
	uint64_t epoch;			/* last committed epoch */
	uint64_t checkpoints;		/* committed by this session */
	uint64_t failed_checkpoints;
	uint64_t regions;		/* registered now */
	uint64_t registered_bytes;
	uint64_t pages_written;		/* pages put to the store by this session */
	uint64_t last_pages;		/* pages of the last checkpoint */
	uint64_t last_ns;		/* duration of the last checkpoint (stop-the-world included) */
	uint64_t total_ns;		/* of the committed checkpoints, = the three parts below */
					/* (CKPT_CFG_ASYNC: stop + collect, what the program waited) */
	uint64_t restores;
	uint64_t page_size;
	char tracker[16];		/* "module", "uffd-async", "uffd", "mprotect", "full" */
	char writer[16];		/* "dax", "io_uring" */
	uint64_t total_stop_ns;		/* waiting for attached threads to park */
	uint64_t total_collect_ns;	/* asking the trackers for written pages, re-protecting them */
	uint64_t total_persist_ns;	/* writing the pages to the store and committing the epoch */
	uint64_t skipped_checkpoints;	/* automatic ones skipped: a region awaited its restore */
	uint64_t reserved[4];
};
int ckpt_get_stats(const ckpt_t *c, struct ckpt_session_stats *out);

/* Reason for the last failure of a call on this session ("" if none). Valid until the next
 * call on the session. Never NULL. */
const char *ckpt_last_error(const ckpt_t *c);

/* ---- persistent heap ---- */

/*
 * Open a persistent heap of `size` bytes (rounded up to pages) named `name`: an arena mapped at
 * a fixed address and registered as a region, with an allocator whose metadata lives inside it,
 * so pointers between its objects stay valid across a crash and restore.
 * If the store holds the heap, it is mapped at its recorded address (MAP_FIXED_NOREPLACE):
 * -EEXIST if that address is taken in this process, -EINVAL if the size differs; its contents
 * come back with ckpt_restore(). Otherwise it is mapped at `addr_hint`, or with NULL in a window
 * of its own (1 GiB-aligned slots between 16 and 64 TiB on x86-64), away from the mmap area, so a
 * restarted program's own mappings do not take the address before it reopens the heap.
 * The heap is owned by the session: ckpt_close() unmaps it.
 */
int ckpt_heap_open(ckpt_t *c, const char *name, size_t size, void *addr_hint, ckpt_heap_t **out);
/* Allocate n bytes (16-byte aligned). -ENOMEM when the arena is full. Thread-safe. */
int ckpt_heap_alloc(ckpt_heap_t *h, size_t n, void **out);
/* Free a block from ckpt_heap_alloc; -EINVAL for a pointer that is not one. */
int ckpt_heap_free(ckpt_heap_t *h, void *p);
/* The heap's root pointer, kept in its metadata (NULL on a new heap). */
int ckpt_heap_root(ckpt_heap_t *h, void **out);
int ckpt_heap_set_root(ckpt_heap_t *h, void *root);
/* Base address and usable size. */
int ckpt_heap_info(ckpt_heap_t *h, void **base, size_t *size);

/* ---- threads with persistent memory (user-guide.md "Threads and persistent memory") ----
 *
 * Three kinds of thread:
 *   - attached (ckpt_thread_attach): waited for at checkpoints, owns no memory of its own;
 *   - non-volatile (ckpt_thread_attach_nv): attached, with a stable name (1..64 bytes of
 *     [A-Za-z0-9._-]) under which it owns thread-local regions and heaps, restored by name;
 *   - volatile (ckpt_thread_attach_volatile): never waited for, owns no persistent memory, and
 *     told -EROFS when it writes a registered region (detected by the mprotect and uffd
 *     trackers; see the guide for what each tracker guarantees).
 * Every attached thread (plain or non-volatile) is at a safepoint when it calls ckpt_safepoint or
 * ckpt_hook holding no ckpt_mutex_t, when it releases its last ckpt_mutex_t, and while it waits
 * for one holding none: so a checkpoint never shows a critical section half done.
 */
#define CKPT_THREAD_NAME_MAX 64

/* Attach the calling thread as non-volatile under `name`. -EBUSY already attached; -EEXIST
 * another attached thread has that name; -EINVAL bad name. */
int ckpt_thread_attach_nv(ckpt_t *c, const char *name);
/* Attach the calling thread as volatile. -EBUSY already attached. Detach with
 * ckpt_thread_detach (which returns -EROFS if a write to persistent memory was detected). */
int ckpt_thread_attach_volatile(ckpt_t *c);
/*
 * Register [addr, addr+len) as a region of the calling non-volatile thread, under `name`
 * (the store names it "@thread:<thread>:<name>"). Same rules as ckpt_register. -EPERM: the
 * caller is not a non-volatile thread of c. The region stays registered after the thread
 * detaches (ckpt_unregister(c, "@thread:<thread>:<name>") ends it).
 * While the checkpoint holds regions of this thread's name that it has not restored yet, its
 * regions await their restore: left out of ckpt_checkpoint (their stored copies stay), and
 * automatic checkpoints are skipped meanwhile (ckpt_hook), so a checkpoint never overwrites a
 * thread's state with what it had before its restore.
 */
int ckpt_thread_register(ckpt_t *c, const char *name, void *addr, size_t len);
/* A persistent heap owned by the calling non-volatile thread (ckpt_heap_open's rules;
 * restored by ckpt_thread_restore). -EPERM: not a non-volatile thread. */
int ckpt_thread_heap_open(ckpt_t *c, const char *name, size_t size, void *addr_hint, ckpt_heap_t **out);
/*
 * Restore the calling non-volatile thread's regions and heaps from the newest committed epoch
 * (after registering them), reset their transient ranges, run their restore hooks. Each thread
 * restores its own, when it starts; ckpt_restore() restores only the regions no thread owns.
 * 0 restored. -ENOENT nothing committed yet (or, with CKPT_CFG_PARTIAL_RESTORE, nothing of
 * this name: the thread starts fresh). -ESRCH: the epoch holds no thread of this name (a new
 * or renamed thread; the message lists the epoch's names), or this thread's registered
 * regions and the epoch's differ (unless CKPT_CFG_PARTIAL_RESTORE). -EPERM not a non-volatile
 * thread. Memory is untouched on -ESRCH.
 * A name in the epoch that no thread restores: checkpoints wait for it (automatic ones up to
 * the stop bound, then -ESRCH naming it; ckpt_checkpoint at once -ESRCH), unless
 * CKPT_CFG_PARTIAL_RESTORE, which checkpoints without it (its stored regions stay in the store).
 */
int ckpt_thread_restore(ckpt_t *c);
/* Volatile threads: -EROFS once if a write of this thread to a registered region was detected
 * since the last check (ckpt_last_error names the region and page), else 0. ckpt_safepoint,
 * ckpt_hook and ckpt_thread_detach report it too. 0 for other threads. */
int ckpt_thread_check(ckpt_t *c);
/*
 * The stop bound: how long an automatic checkpoint (timer, ckpt_hook) waits for attached
 * threads to reach a safepoint (to release their persistent locks) and for the threads of a
 * restored epoch to restore. Default 10000 ms; 0 = no bound. At the bound the checkpoint is
 * not taken: nothing is written, the threads run on, ckpt_hook returns -ETIMEDOUT (-ESRCH
 * for a thread that never restored), the timer counts a failed checkpoint and tries again at
 * its next tick, ckpt_last_error names the threads. ckpt_checkpoint waits without a bound.
 */
int ckpt_set_stop_bound(ckpt_t *c, uint64_t ms);

struct ckpt_thread_stats {
	uint64_t attached;		/* attached threads (plain and non-volatile) */
	uint64_t nonvolatile;		/* of which non-volatile */
	uint64_t volatile_threads;	/* volatile threads attached */
	uint64_t pending;		/* thread names of the restored epoch not restored yet */
	uint64_t stop_timeouts;		/* automatic checkpoints given up at the stop bound */
	uint64_t volatile_writes;	/* writes of volatile threads to registered memory detected */
	uint64_t reserved[4];
};
int ckpt_get_thread_stats(const ckpt_t *c, struct ckpt_thread_stats *out);

/*
 * A persistent lock: a pthread_mutex_t that counts, per thread, the persistent locks held.
 * May live in registered memory or a heap: a ckpt_mutex_t whose bytes come from another process
 * (restored after a crash, held or not when it was saved) is re-initialised, unlocked, at its
 * first use. Condition variables: keep them in ordinary memory and wait with ckpt_cond_wait.
 * All return 0 or -errno (pthread's error, negated).
 */
typedef struct ckpt_mutex {
	pthread_mutex_t m;
	uint64_t incarnation;	/* the process that initialised m; private */
} ckpt_mutex_t;
#define CKPT_MUTEX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0 }
int ckpt_mutex_init(ckpt_mutex_t *m);
int ckpt_mutex_destroy(ckpt_mutex_t *m);
int ckpt_mutex_lock(ckpt_mutex_t *m);
int ckpt_mutex_trylock(ckpt_mutex_t *m);	/* -EBUSY if held */
int ckpt_mutex_unlock(ckpt_mutex_t *m);
int ckpt_cond_wait(pthread_cond_t *cv, ckpt_mutex_t *m);	/* the caller is at a safepoint while it waits */
/* Persistent locks the calling thread holds now. */
int ckpt_mutex_held(void);

/*
 * Transient ranges: [offset, offset+len) of a registered region (or heap, by its name; a
 * non-volatile thread's own regions by their short name) is reset on every restore that fills
 * the region, after the fill and before the restore hooks: to `init` (len bytes, copied now) or
 * to zeros with init NULL. The bytes are still checkpointed (they share pages with persistent
 * bytes; leaving them out would cost a copy of each such page per checkpoint); they are never
 * restored. -ENOENT unknown region; -EINVAL range outside it. The C++ ckpt::transient<T> does
 * the same for an object member with no registration.
 */
int ckpt_transient(ckpt_t *c, const char *region, size_t offset, size_t len, const void *init);
/* The value ckpt::transient<T> compares with: changes at each process start and each
 * ckpt_restore(). */
uint64_t ckpt_transient_generation(void);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_CKPT_H */

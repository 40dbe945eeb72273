/* SPDX-License-Identifier: MIT */
/*
 * libckpt-mpi: checkpoints of an MPI job, one globally consistent epoch across its ranks.
 * Link with $(pkg-config --cflags --libs ckpt-mpi) (brings libckpt); plain libckpt users do not
 * link MPI. See Documentation/user-guide.md, "MPI jobs", and Documentation/design.md.
 *
 * Every rank keeps its state in a libckpt store of its own (the store pattern holds the rank).
 * ckpt_mpi_checkpoint() is collective: every rank commits epoch E to its own store, then the
 * ranks agree over the communicator; only then does each rank record E as globally complete (a
 * small record file beside its store, replaced atomically). ckpt_mpi_restore() agrees on the
 * newest epoch every rank holds as globally complete and restores exactly that epoch on every
 * rank. Optionally every K-th globally complete epoch is also copied, in the background, to a
 * shared directory (the parallel file system of a cluster); a rank whose local store is lost
 * restores from that copy, and the other ranks restore the same epoch.
 *
 * Conventions are libckpt's: 0 / non-negative or -errno, errno never set. Collective calls
 * (ckpt_mpi_open, ckpt_mpi_checkpoint, ckpt_mpi_restore, ckpt_mpi_close, and ckpt_mpi_hook)
 * must be called by every rank of the communicator, in the same order; they return the same
 * result on every rank (an error on one rank is the error of all, and ckpt_mpi_last_error()
 * gives the same text everywhere, naming the rank). ckpt_mpi_hook must be called the same
 * number of times on every rank (once per iteration of the main loop, say).
 * MPI must be initialised (MPI_THREAD_SINGLE is enough: only the calling thread uses MPI).
 */
#ifndef CKPT_CKPT_MPI_H
#define CKPT_CKPT_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include <ckpt/ckpt.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_mpi ckpt_mpi_t;
typedef struct ckpt_mpi_config ckpt_mpi_config_t;

struct ckpt_mpi_config {
	uint32_t size;		/* sizeof(struct ckpt_mpi_config), set by ckpt_mpi_config_init */
	uint32_t flags;		/* none yet: must be 0 */
	ckpt_config_t base;	/* each rank's libckpt session: tracker, writer, key... Its */
				/* interval_ms / every_n / CKPT_CFG_TIMER are the job's */
				/* collective triggers (see ckpt_mpi_hook), never a rank's own */
	const char *shared_dir;	/* NULL: no second level; else a directory every rank can */
				/* write (the parallel file system) */
	uint64_t shared_every;	/* copy every K-th globally complete epoch there (0 = 1) */
	const char *record_pattern; /* NULL: "<store>.mpi"; else a pattern like the store's */
				/* (needed when the store is a device, e.g. /dev/dax0.0) */
	uint64_t reserved[4];	/* must be zero */
};

/* Fill *cfg with the defaults (ckpt_config_init for cfg->base). -EINVAL if cfg is NULL. */
int ckpt_mpi_config_init(ckpt_mpi_config_t *cfg);

/*
 * Collective. Open this rank's store: `pattern` with "%d" replaced by the rank in `comm` ("%%"
 * is a '%'; exactly one "%d"; anything else after '%' is -EINVAL), e.g. "/scratch/job.%d.ckpt".
 * A missing store is created (empty) and counts as missing at restore. The communicator is
 * duplicated. Errors are the same on every rank: the first failing rank's -errno
 * (ckpt_mpi_last_error(NULL) says which rank and why); no handle is returned then.
 */
int ckpt_mpi_open(MPI_Comm comm, const char *pattern, const ckpt_mpi_config_t *cfg,
		  ckpt_mpi_t **out);

/* This rank's region calls, as libckpt's (not collective; register the same names on every
 * rank's restart as before the crash). */
int ckpt_mpi_register(ckpt_mpi_t *c, const char *name, void *addr, size_t len);
int ckpt_mpi_unregister(ckpt_mpi_t *c, const char *name);

/*
 * Collective: commit epoch E (= ckpt_mpi_epoch() + 1) on every rank, then agree. Returns 0 on
 * every rank once E is globally complete and recorded; or on every rank the same -errno (a
 * rank's local commit failed: its error; E is then not complete, each rank's store still has
 * E-1, and the next checkpoint commits E again, on top of E-1: a rank whose local commit of E
 * succeeded supersedes it first, see ckpt_supersede). Every K-th complete epoch is handed to the
 * background copy to the shared directory (the previous copy is waited for first).
 */
int ckpt_mpi_checkpoint(ckpt_mpi_t *c);

/*
 * Collective: restore the newest epoch that every rank holds and that is globally complete,
 * exactly that epoch on every rank — from the local store where it holds it, else from the
 * shared copy. 0: restored (ckpt_mpi_restore_source() says from where). -ENOENT on every rank:
 * the job has nothing globally complete (first run; memory untouched). -ENODATA on every rank:
 * an epoch is globally complete but some rank holds no copy of any epoch all ranks hold (its
 * store is missing or damaged and there is no shared copy); ckpt_mpi_last_error() names the
 * rank and its store. A rank's restore failing (-EIO, -ESRCH, ...) gives that -errno on all.
 */
int ckpt_mpi_restore(ckpt_mpi_t *c);

/* Where the last ckpt_mpi_restore() took this rank's state: "local", "shared", or "" if none. */
const char *ckpt_mpi_restore_source(const ckpt_mpi_t *c);

/* Last globally complete epoch known to this rank; 0 = none. */
uint64_t ckpt_mpi_epoch(const ckpt_mpi_t *c);

/*
 * Collective hook for the main loop (same count on every rank). A safepoint of the rank's
 * session, and a collective checkpoint when due, decided identically on every rank:
 *   - every_n: at every every_n-th call (the call count is the same everywhere);
 *   - interval_ms: each call starts a non-blocking MAX-allreduce of "my clock says the interval
 *     has elapsed since the last checkpoint ended" and waits for the one the previous call
 *     started; a 1 there means every rank checkpoints in this call. So the time trigger costs
 *     one small allreduce per call, overlapped with the loop's work, and fires one call after
 *     the first rank found it due.
 * Returns 1 if a checkpoint was taken, 0 if not, -errno (the same on every rank) if it failed.
 * Before ckpt_mpi_restore (or a ckpt_mpi_checkpoint), while the job holds a complete epoch, a
 * due checkpoint is not taken: the ranks' memory is not that epoch's yet, and committing it
 * would start a new timeline over the stored one. ckpt_mpi_hook then returns -EAGAIN on every
 * rank and counts it in skipped_checkpoints (ckpt_mpi_last_error says why).
 */
int ckpt_mpi_hook(ckpt_mpi_t *c);

/* Change the time trigger (interval_ms; 0 = off). Collective: call on every rank with the same
 * value at the same point, since the trigger is a collective protocol. */
int ckpt_mpi_set_timer(ckpt_mpi_t *c, uint64_t interval_ms);

/* Wait for the background copy to the shared directory in flight, if any; its result. */
int ckpt_mpi_wait_shared(ckpt_mpi_t *c);

struct ckpt_mpi_stats {
	uint64_t epoch;			/* last globally complete epoch */
	uint64_t checkpoints;		/* collective checkpoints completed by this handle */
	uint64_t last_local_ns;		/* this rank's local commit of the last checkpoint */
	uint64_t last_agree_ns;		/* the agreement: allreduce + record file */
	uint64_t total_local_ns;
	uint64_t total_agree_ns;
	uint64_t shared_copies;		/* copies completed to the shared directory */
	uint64_t last_shared_epoch;	/* epoch of the newest such copy; 0 = none */
	uint64_t skipped_checkpoints;	/* due in ckpt_mpi_hook before ckpt_mpi_restore: not taken */
	uint64_t reserved[7];
};
int ckpt_mpi_get_stats(const ckpt_mpi_t *c, struct ckpt_mpi_stats *out);

/* The rank's libckpt session (for ckpt_on_restore, ckpt_get_stats, ...). Do not checkpoint or
 * restore it directly, nor close it. */
ckpt_t *ckpt_mpi_session(ckpt_mpi_t *c);

/* Reason of the last failure, the same on every rank for collective calls; with c NULL the
 * calling thread's last failed ckpt_mpi_open. Never NULL. */
const char *ckpt_mpi_last_error(const ckpt_mpi_t *c);

/* Collective: wait for the shared copy in flight, close the rank's session, free the handle.
 * Does not checkpoint. NULL is a no-op. */
int ckpt_mpi_close(ckpt_mpi_t *c);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_CKPT_MPI_H */

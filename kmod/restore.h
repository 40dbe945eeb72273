/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whole-process restore: what restore.c (PREPARE: every check, and the staged request) and
 * commit.c (COMMIT and RESTORE_THREAD, the point of no return) share.
 */
#ifndef CKPT_RESTORE_H
#define CKPT_RESTORE_H

#include <linux/list.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include "ckpt.h"

/*
 * The rendezvous of one restore with the helper threads of its process. Helper threads come
 * in through their own sessions (dev.c holds a session's lock for the whole ioctl, so they
 * cannot sleep on the main thread's) and find it by their mm.
 */
struct ckpt_rdv {
	struct list_head node;		/* in ckpt_rdvs while its restore is prepared */
	refcount_t ref;			/* the restore's, plus one per parked thread */
	struct mm_struct *mm;		/* compared only; mmgrab'ed so no new mm reuses the address */
	wait_queue_head_t wq;		/* parked threads wait for @state != 0 */
	int parked;			/* threads sleeping in RESTORE_THREAD */
	int state;			/* 0 pending, 1 address space ready, -errno failed */
};

/* Protects ckpt_rdvs and every ckpt_rdv's @parked and @state. */
extern spinlock_t ckpt_rdv_lock;
extern struct list_head ckpt_rdvs;	/* the rendezvous of the prepared restores */

/* A staged restore: ckpt_session.restore, under ckpt_session.lock. */
struct ckpt_restore {
	struct ckpt_rdv *rdv;
	struct task_struct *task;	/* the task that prepared (compared only; referenced, so
					 * no later task reuses the address) */
	struct mm_struct *mm;		/* its mm at PREPARE (compared only; @rdv holds it) */
	struct ckpt_restore_prepare req;
	struct ckpt_restore_vma *vmas;
	struct file **files;		/* per vma, NULL for anonymous */
	struct ckpt_restore_run *runs;
	struct file *data;
	struct file *status;		/* NULL without CKPT_RESTORE_STATUS_FD */
	struct ckpt_user *user;		/* charged @charged bytes (user.c), or NULL */
	unsigned long charged;
};

void ckpt_rdv_put(struct ckpt_rdv *v);
void ckpt_rdv_finish(struct ckpt_rdv *v, int state);
int ckpt_restore_check_thread(const struct ckpt_thread_state *t);
long ckpt_restore_find_vma(const struct ckpt_restore *r, u64 addr, u64 len);
bool ckpt_restore_self_fd(struct ckpt_session *s, u64 fd);
int ckpt_restore_check_prebuilt(struct mm_struct *mm, const struct ckpt_restore *r);

#endif

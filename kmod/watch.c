// SPDX-License-Identifier: GPL-2.0
/*
 * CKPT_IOC_WATCH: which thread writes a session's regions. libckpt's volatile threads must not
 * write persistent memory; the write-fault hook runs in the writing task's context, so it can
 * tell a watched thread's write from the others' and log (thread, page) for user space.
 *
 * A session's set (struct ckpt_watch_set) is made at its first ADD, charged to its user, and
 * linked into its ckpt_mm's @watches list, where the fault hook finds it under RCU, once the
 * session has a tracking state (the first REGISTER; before it no fault is logged anyway).
 * The hook compares task_pid(current) with the set's struct pids under the set's spinlock, so
 * REMOVE (which takes that lock) may put a pid as soon as it unlocks: no hook still compares
 * with it. A pid reference keeps the number from naming another thread while watched.
 */
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

struct ckpt_watch_set {
	struct list_head cm_node;	/* in ckpt_mm.watches: RCU readers, ckpt_mm.lock writers */
	struct rcu_head rcu;
	struct ckpt_user *user;		/* charged sizeof(*ws) */
	bool linked;			/* in a ckpt_mm's @watches; under ckpt_session.lock */
	spinlock_t lock;		/* protects everything below (the hook and the ioctls) */
	unsigned int npids;
	struct pid *pids[CKPT_WATCH_MAX_TIDS];	/* referenced */
	u64 tids[CKPT_WATCH_MAX_TIDS];		/* as given at ADD */
	unsigned int nhits;
	u64 lost;
	struct ckpt_watch_hit hits[CKPT_WATCH_MAX_HITS];	/* oldest first */
};

/*
 * The fault hook (RCU read lock held): a write fault at @addr in a region of @cm. Logged for
 * every set of @cm that watches the current task, if the task is of @cm's address space (not
 * a kernel write on another task's behalf).
 */
void ckpt_watch_fault(struct ckpt_mm *cm, unsigned long addr)
{
	struct ckpt_watch_set *ws;
	struct pid *me;
	unsigned int i;

	if (list_empty(&cm->watches) || current->mm != cm->mn.mm)
		return;
	me = task_pid(current);
	list_for_each_entry_rcu(ws, &cm->watches, cm_node) {
		spin_lock(&ws->lock);
		for (i = 0; i < ws->npids; i++) {
			if (ws->pids[i] != me)
				continue;
			if (ws->nhits < CKPT_WATCH_MAX_HITS) {
				ws->hits[ws->nhits].tid = ws->tids[i];
				ws->hits[ws->nhits].addr = addr & PAGE_MASK;
				ws->nhits++;
			} else {
				ws->lost++;
			}
			break;
		}
		spin_unlock(&ws->lock);
	}
}

/* The session got its tracking state (REGISTER), or a set: link the set to the hook's view. */
void ckpt_watch_link(struct ckpt_session *s)
{
	struct ckpt_watch_set *ws = s->watch;

	lockdep_assert_held(&s->lock);
	if (!ws || ws->linked || !s->cm)
		return;
	spin_lock(&s->cm->lock);
	list_add_tail_rcu(&ws->cm_node, &s->cm->watches);
	spin_unlock(&s->cm->lock);
	ws->linked = true;
}

/* The session is closed (its regions are gone, s->cm still referenced): free its set. */
void ckpt_watch_free(struct ckpt_session *s)
{
	struct ckpt_watch_set *ws = s->watch;
	unsigned int i, n;
	struct pid *pids[CKPT_WATCH_MAX_TIDS];

	if (!ws)
		return;
	s->watch = NULL;
	if (ws->linked) {
		spin_lock(&s->cm->lock);
		list_del_rcu(&ws->cm_node);
		spin_unlock(&s->cm->lock);
	}
	spin_lock(&ws->lock);
	n = ws->npids;
	memcpy(pids, ws->pids, n * sizeof(pids[0]));
	ws->npids = 0;
	spin_unlock(&ws->lock);
	for (i = 0; i < n; i++)
		put_pid(pids[i]);
	ckpt_user_uncharge(ws->user, sizeof(*ws));
	kfree_rcu(ws, rcu);	/* a hook may still walk past it */
}

/* The struct pid of thread @tid (caller's namespace) if it is one of @s's process, or NULL. */
static struct pid *session_thread(struct ckpt_session *s, u64 tid)
{
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *pid;

	pid = find_get_pid((pid_t)tid);
	if (!pid)
		return NULL;
	task = get_pid_task(pid, PIDTYPE_PID);
	if (!task)
		goto out_pid;
	mm = get_task_mm(task);	/* NULL for kernel threads and exited tasks */
	put_task_struct(task);
	if (!mm)
		goto out_pid;
	if (mm == s->mm) {
		mmput(mm);
		return pid;
	}
	mmput(mm);
out_pid:
	put_pid(pid);
	return NULL;
}

static long watch_add(struct ckpt_session *s, u64 tid)
{
	struct ckpt_watch_set *ws = s->watch;
	struct mm_struct *mm;
	struct pid *pid;
	unsigned int i;

	mm = ckpt_session_mm(s);	/* the process exited: -ESRCH */
	if (!mm)
		return -ESRCH;
	mmput(mm);
	pid = session_thread(s, tid);
	if (!pid)
		return -ESRCH;
	if (!ws) {
		if (!ckpt_user_charge(s->user, sizeof(*ws))) {	/* max_user_kmem_kb */
			put_pid(pid);
			return -ENOSPC;
		}
		ws = kzalloc(sizeof(*ws), GFP_KERNEL_ACCOUNT);
		if (!ws) {
			ckpt_user_uncharge(s->user, sizeof(*ws));
			put_pid(pid);
			return -ENOMEM;
		}
		spin_lock_init(&ws->lock);
		ws->user = s->user;
		s->watch = ws;
		ckpt_watch_link(s);
	}
	spin_lock(&ws->lock);
	for (i = 0; i < ws->npids; i++)
		if (ws->pids[i] == pid)
			break;
	if (i < ws->npids || ws->npids == CKPT_WATCH_MAX_TIDS) {
		long ret = i < ws->npids ? -EEXIST : -ENOSPC;

		spin_unlock(&ws->lock);
		put_pid(pid);
		return ret;
	}
	ws->pids[ws->npids] = pid;	/* the reference moves into the set */
	ws->tids[ws->npids] = tid;
	ws->npids++;
	spin_unlock(&ws->lock);
	return 0;
}

static long watch_remove(struct ckpt_session *s, u64 tid)
{
	struct ckpt_watch_set *ws = s->watch;
	struct pid *gone = NULL;
	unsigned int i;

	if (!ws)
		return -ENOENT;
	/* By the number given at ADD: the thread may have exited (its pid is ours until now). */
	spin_lock(&ws->lock);
	for (i = 0; i < ws->npids; i++)
		if (ws->tids[i] == tid)
			break;
	if (i < ws->npids) {
		gone = ws->pids[i];
		ws->npids--;
		ws->pids[i] = ws->pids[ws->npids];
		ws->tids[i] = ws->tids[ws->npids];
	}
	spin_unlock(&ws->lock);
	if (!gone)
		return -ENOENT;
	put_pid(gone);
	return 0;
}

static long watch_read(struct ckpt_session *s, struct ckpt_watch *a)
{
	struct ckpt_watch_set *ws = s->watch;
	struct ckpt_watch_hit *buf;
	unsigned int n;
	u64 lost;

	a->count = 0;
	a->lost = 0;
	if (!ws)
		return 0;
	n = min_t(u64, a->max, CKPT_WATCH_MAX_HITS);
	buf = n ? kmalloc_array(n, sizeof(*buf), GFP_KERNEL) : NULL;
	if (n && !buf)
		return -ENOMEM;
	/* Copy out first, take after: a fault (-EFAULT) takes nothing. Only the hook adds hits
	 * meanwhile, at the end, and READs are serialised by the session's lock. */
	spin_lock(&ws->lock);
	n = min(n, ws->nhits);
	memcpy(buf, ws->hits, n * sizeof(*buf));
	spin_unlock(&ws->lock);
	if (n && copy_to_user(u64_to_user_ptr(a->hits), buf, n * sizeof(*buf))) {
		kfree(buf);
		return -EFAULT;
	}
	kfree(buf);
	spin_lock(&ws->lock);
	memmove(ws->hits, ws->hits + n, (ws->nhits - n) * sizeof(ws->hits[0]));
	ws->nhits -= n;
	lost = ws->lost;
	if (!ws->nhits)
		ws->lost = 0;
	spin_unlock(&ws->lock);
	a->count = n;
	a->lost = lost;
	return 0;
}

long ckpt_ioc_watch(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_watch a;
	long ret;

	lockdep_assert_held(&s->lock);
	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (!ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	switch (a.op) {
	case CKPT_WATCH_ADD:
	case CKPT_WATCH_REMOVE:
		if (a.hits || a.max || a.hit_size || !a.tid || a.tid > INT_MAX)
			return -EINVAL;
		ret = a.op == CKPT_WATCH_ADD ? watch_add(s, a.tid) : watch_remove(s, a.tid);
		break;
	case CKPT_WATCH_READ:
		if (a.tid || a.hit_size != sizeof(struct ckpt_watch_hit))
			return -EINVAL;
		ret = watch_read(s, &a);
		break;
	default:
		return -EINVAL;
	}
	if (ret)
		return ret;
	a.watched = 0;
	if (s->watch) {
		spin_lock(&s->watch->lock);
		a.watched = s->watch->npids;
		spin_unlock(&s->watch->lock);
	}
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	return 0;
}

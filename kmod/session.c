// SPDX-License-Identifier: GPL-2.0
/*
 * The tracking commands of a session: REGISTER, UNREGISTER, STATS, ATTACH (COLLECT: collect.c).
 * Every function here runs with ckpt_session.lock held (dev.c) and may sleep.
 *
 * Lock order: ckpt_session.lock -> mmap_lock -> ckpt_mm.split_lock -> ckpt_mm.lock.
 * REGISTER and COLLECT hold the mmap lock for writing while they take bits and protect
 * pages, so no write fault of the tracked mm is in progress meanwhile (see fault.c).
 * Nothing is copied to or from user memory while an mmap lock is held (the session's mm may
 * be the caller's own, whose faults take that lock).
 */
#include <linux/cred.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

struct ckpt_region *ckpt_session_region(struct ckpt_session *s, u64 id)
{
	struct ckpt_region *r;

	list_for_each_entry(r, &s->regions, s_node)
		if (r->id == id)
			return r;
	return NULL;
}

/* A reference on the session's live address space, or NULL if it exited. */
struct mm_struct *ckpt_session_mm(struct ckpt_session *s)
{
	if (!s->mm || (s->cm && READ_ONCE(s->cm->dead)) || !mmget_not_zero(s->mm))
		return NULL;
	return s->mm;
}

/* Check that [start, end) is entirely mapped by trackable mappings (mmap lock held). */
static int check_range(struct mm_struct *mm, unsigned long start, unsigned long end)
{
	while (start < end) {
		struct vm_area_struct *vma = find_vma(mm, start);

		if (!vma || vma->vm_start > start)
			return -ENOMEM;
		if (!ckpt_vma_supported(vma))
			return -EOPNOTSUPP;
		start = vma->vm_end;
	}
	return 0;
}

/* ckpt_wp_range()/ckpt_wp_pages() callback: @addr must stay logged in region @arg. */
void ckpt_relog_page(void *arg, unsigned long addr)
{
	struct ckpt_region *r = arg;

	ckpt_log_mark(r, (addr - r->start) >> PAGE_SHIFT, 1);
	r->kept++;
}

long ckpt_ioc_register(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_register a;
	struct ckpt_region *r, *pos;
	struct mm_struct *mm;
	struct ckpt_wp w = {};
	unsigned long end;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~CKPT_REGISTER_DIRTY) || !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	if (!a.len || (a.start | a.len) & ~PAGE_MASK || a.start + a.len < a.start ||
	    a.start + a.len > TASK_SIZE_MAX)
		return -EINVAL;
	end = a.start + a.len;
	if (s->nr_regions >= CKPT_MAX_REGIONS)
		return -ENOSPC;
	list_for_each_entry(pos, &s->regions, s_node)
		if (a.start < pos->end && pos->start < end)
			return -EEXIST;

	mm = ckpt_session_mm(s);
	if (!mm)
		return -ESRCH;
	r = ckpt_region_alloc(a.start, a.len, s->user);
	if (IS_ERR(r)) {
		ret = PTR_ERR(r);
		goto out_mm;
	}
	if (!s->cm) {
		struct ckpt_mm *cm = ckpt_mm_get(mm);

		if (IS_ERR(cm)) {
			ret = PTR_ERR(cm);
			goto out_free;
		}
		s->cm = cm;
		ckpt_watch_link(s);	/* a set made before: the hook sees it from now on */
	}
	/*
	 * Armed before the page tables are touched, so no fault after REGISTER goes unseen. An
	 * ftrace that will not take the hook (kernel.ftrace_enabled=0: -EBUSY, ftrace shut down
	 * after a bug: -ENODEV) fails REGISTER: tracking without the hook would miss every write.
	 */
	ret = ckpt_fault_get();
	if (ret)
		goto out_free;

	/*
	 * The write lock keeps out faults that passed the hook's filter before the region
	 * existed and would make a page writable after we protected it (see fault.c).
	 */
	ret = mmap_write_lock_killable(mm);
	if (ret)
		goto out_hook;
	ret = check_range(mm, a.start, end);
	if (ret)
		goto out_unlock;
	/* A secondary MMU would keep writing through mappings we cannot revoke (mm.c). */
	if (ckpt_mm_secondary(s->cm)) {
		ret = -EXDEV;
		goto out_unlock;
	}
	r->id = ++s->next_id;
	r->seen_missed = ckpt_fault_missed();
	ckpt_mm_add(s->cm, r);
	if (a.flags & CKPT_REGISTER_DIRTY)
		ckpt_log_mark(r, 0, r->pages);
	w.mm = mm;
	w.cm = s->cm;
	/* A page that could not be protected stays logged: the first COLLECT reports it. */
	ckpt_wp_range(&w, a.start, end, ckpt_relog_page, r);
	mmap_write_unlock(mm);
	ckpt_flush_tlb_mm(&w);
	r->thp_splits = w.splits;

	/* Keep the session's list sorted by address: COLLECT of id 0 reports in that order. */
	list_for_each_entry(pos, &s->regions, s_node)
		if (pos->start > r->start)
			break;
	list_add_tail_rcu(&r->s_node, &pos->s_node);
	s->nr_regions++;
	mmput(mm);

	a.id = r->id;
	if (put_user(a.id, &((struct ckpt_register __user *)uarg)->id))
		return -EFAULT;	/* the region exists; the caller can still UNREGISTER it */
	return 0;

out_unlock:
	mmap_write_unlock(mm);
out_hook:
	ckpt_fault_put();
out_free:
	ckpt_region_free(r);
out_mm:
	mmput(mm);
	return ret;
}

/*
 * Remove region @only, or every region (NULL): unlink them from the fault hook's and the
 * notifier's view (ckpt_mm.regions) and from the status's (s->regions), wait for an RCU grace
 * period, after which no hook, notifier or status dump still runs on them (a fault in the hook
 * holds rcu_read_lock() throughout, hold.c), and free them.
 */
static void remove_regions(struct ckpt_session *s, struct ckpt_region *only)
{
	struct ckpt_region *r, *tmp, *dead = NULL;

	lockdep_assert_held(&s->lock);
	list_for_each_entry_safe(r, tmp, &s->regions, s_node) {
		if (only && r != only)
			continue;
		ckpt_mm_del(s->cm, r);
		list_del_rcu(&r->s_node);
		r->dead_next = dead;
		dead = r;
	}
	if (!dead)
		return;
	synchronize_rcu();
	while (dead) {
		r = dead;
		dead = r->dead_next;
		WRITE_ONCE(s->old_faults, s->old_faults + atomic64_read(&r->faults));
		s->nr_regions--;
		ckpt_region_free(r);
		ckpt_fault_put();
	}
}

long ckpt_ioc_unregister(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_unregister a;
	struct ckpt_region *r;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	r = ckpt_session_region(s, a.id);
	if (!r)
		return -ENOENT;
	remove_regions(s, r);
	return 0;
}

/* The file is closed: no ioctl is in flight or will come; the status may still read @s. */
void ckpt_session_teardown(struct ckpt_session *s)
{
	mutex_lock(&s->lock);	/* uncontended: for remove_regions()'s assertion */
	remove_regions(s, NULL);
	ckpt_watch_free(s);
	mutex_unlock(&s->lock);
	if (s->cm)
		ckpt_mm_put(s->cm);
	if (s->mm)
		mmdrop(s->mm);
}

/* Under ckpt_session.lock, or racily under RCU (the netlink status). */
static void region_sum(struct ckpt_region *r, struct ckpt_stats *st)
{
	st->regions++;
	st->pages += r->pages;
	st->dirty += ckpt_log_count(r);
	st->faults += atomic64_read(&r->faults);
	st->collected += READ_ONCE(r->collected);
	st->thp_splits += READ_ONCE(r->thp_splits);
	st->invalidations += atomic64_read(&r->invalidations);
	st->kept += READ_ONCE(r->kept);
}

/*
 * Session totals (id 0 of STATS, under ckpt_session.lock; and the netlink status, under
 * rcu_read_lock() only: the regions cannot be freed under it, the counters may move).
 */
void ckpt_session_sum(struct ckpt_session *s, struct ckpt_stats *st)
{
	struct ckpt_region *r;

	list_for_each_entry_rcu(r, &s->regions, s_node, lockdep_is_held(&s->lock))
		region_sum(r, st);
	st->faults += READ_ONCE(s->old_faults);
	st->collects = READ_ONCE(s->seq);
	st->collected = READ_ONCE(s->collected);
}

long ckpt_ioc_stats(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_stats st;
	u64 id;

	if (copy_from_user(&st, uarg, sizeof(st)))
		return -EFAULT;
	if (st.flags || !ckpt_all_zero(st.reserved, ARRAY_SIZE(st.reserved)))
		return -EINVAL;
	id = st.id;
	memset(&st, 0, sizeof(st));
	st.id = id;
	if (id) {
		struct ckpt_region *r = ckpt_session_region(s, id);

		if (!r)
			return -ENOENT;
		region_sum(r, &st);
		st.collects = r->collects;
	} else {
		ckpt_session_sum(s, &st);
	}
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

/*
 * The address space of @task, if the calling thread is its ptrace tracer and it sits in a
 * ptrace stop (mmgrab'ed), else NULL with *err set.
 *
 * Why that is the permission: the kernel ran all of ptrace_may_access() when the caller
 * attached (PTRACE_ATTACH/SEIZE: uids and gids, dumpability, CAP_SYS_PTRACE and the LSM hooks,
 * Yama, SELinux, AppArmor), under the tracee's cred_guard_mutex, so no execve was half-way. While
 * the task stays traced, an execve of a set-user-ID or file-capability program does not gain
 * privileges its tracer lacks (LSM_UNSAFE_PTRACE). A task in a ptrace stop is not inside
 * execve, so the mm read here is the one of the credentials ptrace checked.
 *
 * Locking: task_lock() protects task->mm (exec_mmap and exit_mm change it under it). The
 * ptrace link (->ptrace, ->parent: RCU) is changed only by the tracer (PTRACE_DETACH, its own
 * exit: current is in this ioctl) and when the tracee is reaped (then it has no mm). The stop
 * (JOBCTL_TRACED) ends only by the tracer's resume (current again) or by SIGKILL, after which
 * the task can only exit. So what is checked here stays true while the mm is taken.
 */
static struct mm_struct *traced_mm(struct task_struct *task, long *err)
{
	struct mm_struct *mm = NULL;
	bool ours;

	task_lock(task);
	rcu_read_lock();
	ours = (task->ptrace & PT_PTRACED) && rcu_dereference(task->parent) == current &&
	       task_is_traced(task);
	rcu_read_unlock();
	if (!ours) {
		*err = -EPERM;
	} else if (!task->mm || (task->flags & PF_KTHREAD)) {
		*err = -ESRCH;
	} else {
		mm = task->mm;
		mmgrab(mm);
	}
	task_unlock(task);
	return mm;
}

long ckpt_ioc_attach(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_attach a;
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *pid;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)) || !a.pid || a.pid > INT_MAX)
		return -EINVAL;
	if (s->attached || s->nr_regions || s->cm || s->watch)
		return -EBUSY;
	pid = find_get_pid(a.pid);
	if (!pid)
		return -ESRCH;
	task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	if (!task)
		return -ESRCH;
	mm = traced_mm(task, &ret);
	if (!mm)
		goto out_task;
	if (s->mm)
		mmdrop(s->mm);
	s->mm = mm;
	s->attached = true;
	s->tgid = task_tgid_vnr(task);
	get_task_comm(s->comm, task);
	s->uid = task_euid(task);
out_task:
	put_task_struct(task);
	return ret;
}

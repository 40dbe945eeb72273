// SPDX-License-Identifier: GPL-2.0
/*
 * The tracking commands of a session: REGISTER, UNREGISTER, COLLECT, STATS, ATTACH.
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

/* Page addresses handled per mmap lock hold in array mode (the kernel buffer size). */
#define COLLECT_CHUNK 65536UL

static struct ckpt_region *find_region(struct ckpt_session *s, u64 id)
{
	struct ckpt_region *r;

	list_for_each_entry(r, &s->regions, s_node)
		if (r->id == id)
			return r;
	return NULL;
}

/* A reference on the session's live address space, or NULL if it exited. */
static struct mm_struct *session_mm(struct ckpt_session *s)
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
static void relog_page(void *arg, unsigned long addr)
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

	mm = session_mm(s);
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
	ckpt_wp_range(&w, a.start, end, relog_page, r);
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
	r = find_region(s, a.id);
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
	mutex_unlock(&s->lock);
	if (s->cm)
		ckpt_mm_put(s->cm);
	if (s->mm)
		mmdrop(s->mm);
}

/* Fold missed hook instances into the log: every page of the region counts as written. */
static void check_missed(struct ckpt_region *r)
{
	int missed = ckpt_fault_missed();

	if (missed != r->seen_missed) {
		r->seen_missed = missed;
		ckpt_log_mark(r, 0, r->pages);
	}
}

/* Re-log the pages of @addrs that belong to the session's regions (a failed copy-out). */
static void relog(struct ckpt_session *s, const u64 *addrs, unsigned long n)
{
	struct ckpt_region *r = NULL;

	while (n--) {
		unsigned long a = *addrs++;

		if (!r || a < r->start || a >= r->end)
			list_for_each_entry(r, &s->regions, s_node)
				if (a >= r->start && a < r->end)
					break;
		ckpt_log_mark_addr(r, a, a + PAGE_SIZE);
	}
}

/*
 * Under the mmap write lock, before COLLECT takes bits: an mmu notifier that appeared since
 * REGISTER (a KVM VM created on this mm, say) may have written through its own mappings
 * unseen, and would keep doing so. Fail with -EXDEV and log every page of the session, so the
 * first COLLECT after it went away reports everything.
 */
static int check_secondary(struct ckpt_session *s)
{
	struct ckpt_region *r;

	if (!ckpt_mm_secondary(s->cm))
		return 0;
	list_for_each_entry(r, &s->regions, s_node)
		ckpt_log_mark(r, 0, r->pages);
	return -EXDEV;
}

/* Array mode: page addresses, region after region, at most buf_len / 8 of them. */
static long collect_array(struct ckpt_session *s, struct mm_struct *mm, struct ckpt_collect *a,
			  struct ckpt_region *only)
{
	unsigned long room = a->buf_len / sizeof(u64), chunk = min(room, COLLECT_CHUNK), logged = 0;
	u64 __user *ubuf = u64_to_user_ptr(a->buf);
	struct ckpt_region *r, *stop = NULL;	/* @stop: where the pass resumes */
	bool hold = a->flags & CKPT_COLLECT_HOLD;
	u64 *kbuf = NULL;
	long ret = 0;

	/* Size the bounce buffer by what is logged now (more may come: it is taken next round). */
	list_for_each_entry(r, &s->regions, s_node) {
		if (only && r != only)
			continue;
		logged += ckpt_log_count(r);
		if (hold) {
			ret = ckpt_hold_prepare(r);
			if (ret)
				return ret;
		}
	}
	chunk = min(chunk, max(logged, 64UL));
	if (chunk) {
		kbuf = kvmalloc_array(chunk, sizeof(u64), GFP_KERNEL_ACCOUNT);
		if (!kbuf)
			return -ENOMEM;
	}
	/*
	 * A pass visits the logged pages once, in address order, over as many calls as the
	 * caller's buffer needs: r->pass_pos (and s->pass_start for id 0) say where it resumes.
	 * Pages logged behind it (written meanwhile, or kept logged by relog_page) wait for the
	 * next pass, so a caller looping while @remaining != 0 always ends.
	 */
	a->remaining = 0;
	list_for_each_entry(r, &s->regions, s_node) {
		if (only && r != only)
			continue;
		if (!only && s->pass_start && r->start < s->pass_start)
			continue;	/* done earlier in this pass */
		if (!room) {
			unsigned long left = ckpt_log_count_from(r, r->pass_pos);

			if (left && !stop)
				stop = r;
			a->remaining += left;
			continue;
		}
		check_missed(r);
		r->collects++;
		while (room) {
			unsigned long pos0 = r->pass_pos;
			struct ckpt_wp w = { .mm = mm, .cm = s->cm };
			unsigned long n, i;

			/* Write lock: no fault is half-way through, see fault.c. */
			ret = mmap_write_lock_killable(mm);
			if (ret)
				goto out;
			ret = check_secondary(s);
			if (ret) {
				mmap_write_unlock(mm);
				goto out;
			}
			n = ckpt_log_take(r, kbuf, min(room, chunk), &r->pass_pos);
			for (i = 0; i < n; i++)
				kbuf[i] = r->start + (kbuf[i] << PAGE_SHIFT);
			ckpt_wp_pages(&w, kbuf, n, relog_page, r);
			/* Under the write lock: no fault runs between the protection and the hold. */
			if (hold)
				ckpt_hold_pages(r, kbuf, n);
			mmap_write_unlock(mm);
			ckpt_flush_tlb_pages(&w, kbuf, n);
			r->thp_splits += w.splits;
			if (!n)
				break;
			if (copy_to_user(ubuf + a->count, kbuf, n * sizeof(u64))) {
				relog(s, kbuf, n);
				r->pass_pos = pos0;
				ret = -EFAULT;
				goto out;
			}
			a->count += n;
			room -= n;
			r->collected += n;
			if (r->pass_pos >= r->pages)
				break;	/* the pass reached the region's end */
		}
		if (r->pass_pos >= r->pages) {
			r->pass_pos = 0;
		} else if (r->pass_pos) {
			a->remaining += ckpt_log_count_from(r, r->pass_pos);
			stop = r;
		}
	}
	/* Nothing left ahead: the pass is complete, the next call starts a new one. */
	if (!a->remaining) {
		list_for_each_entry(r, &s->regions, s_node)
			if (!only || r == only)
				r->pass_pos = 0;
		stop = NULL;
	}
	if (!only)
		s->pass_start = stop ? stop->start : 0;
out:
	kvfree(kbuf);
	return ret;
}

static long collect_bitmap(struct ckpt_session *s, struct mm_struct *mm, struct ckpt_collect *a,
			   struct ckpt_region *r)
{
	unsigned long bytes = r->l0_words * sizeof(long);
	struct ckpt_wp w = { .mm = mm, .cm = s->cm };
	unsigned long *kbm, wi;
	long ret = 0;

	if (a->buf_len < bytes)
		return -EINVAL;
	kbm = kvzalloc(bytes, GFP_KERNEL_ACCOUNT);
	if (!kbm)
		return -ENOMEM;
	check_missed(r);
	r->collects++;
	ret = mmap_write_lock_killable(mm);
	if (ret)
		goto out;
	ret = check_secondary(s);
	if (ret) {
		mmap_write_unlock(mm);
		goto out;
	}
	r->pass_pos = 0;	/* a bitmap COLLECT is a whole pass: it ends any array pass */
	a->count = ckpt_log_take_bitmap(r, kbm);
	for (wi = 0; wi < r->l0_words; wi++) {
		unsigned long word = kbm[wi], n = 0;
		u64 addrs[BITS_PER_LONG];

		while (word) {
			unsigned long idx = wi * BITS_PER_LONG + __ffs(word);

			word &= word - 1;
			addrs[n++] = r->start + (idx << PAGE_SHIFT);
		}
		ckpt_wp_pages(&w, addrs, n, relog_page, r);
	}
	mmap_write_unlock(mm);
	ckpt_flush_tlb_bitmap(&w, r->start, kbm, r->l0_words, a->count);
	r->thp_splits += w.splits;
	if (copy_to_user(u64_to_user_ptr(a->buf), kbm, bytes)) {
		for (wi = 0; wi < r->l0_words; wi++)
			if (kbm[wi]) {
				atomic_long_or(kbm[wi], (atomic_long_t *)&r->l0[wi]);
				set_bit(wi, r->l1);
			}
		a->count = 0;
		ret = -EFAULT;
	} else {
		r->collected += a->count;
	}
out:
	kvfree(kbm);
	return ret;
}

/* PEEK: report without taking. Array mode only reports the first pages that fit. */
static long collect_peek(struct ckpt_session *s, struct ckpt_collect *a, struct ckpt_region *only)
{
	unsigned long room = a->buf_len / sizeof(u64);
	u64 __user *ubuf = u64_to_user_ptr(a->buf);
	bool bitmap = a->flags & CKPT_COLLECT_BITMAP;
	struct ckpt_region *r;

	list_for_each_entry(r, &s->regions, s_node) {
		unsigned long wi;

		if (only && r != only)
			continue;
		check_missed(r);
		if (bitmap) {
			if (a->buf_len < r->l0_words * sizeof(long))
				return -EINVAL;
			if (clear_user(ubuf, r->l0_words * sizeof(long)))
				return -EFAULT;
		}
		for_each_set_bit(wi, r->l1, r->l0_words) {
			unsigned long word = READ_ONCE(r->l0[wi]);

			if (bitmap) {
				if (word && put_user(word, ubuf + wi))
					return -EFAULT;
				a->count += hweight_long(word);
				continue;
			}
			while (word && room) {
				u64 addr = r->start + ((wi * BITS_PER_LONG + __ffs(word)) << PAGE_SHIFT);

				word &= word - 1;
				if (put_user(addr, ubuf + a->count))
					return -EFAULT;
				a->count++;
				room--;
			}
		}
	}
	return 0;
}

long ckpt_ioc_collect(struct ckpt_session *s, void __user *uarg, u64 *count)
{
	struct ckpt_collect a;
	struct ckpt_region *r = NULL;
	struct mm_struct *mm;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~(CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK | CKPT_COLLECT_HOLD)) ||
	    !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	/* A hold is of what an array COLLECT takes and protects. */
	if ((a.flags & CKPT_COLLECT_HOLD) && (a.flags & (CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK)))
		return -EINVAL;
	/* @count, @remaining and @seq are outputs: whatever they hold on input is ignored. */
	a.count = 0;
	if (!(a.flags & CKPT_COLLECT_BITMAP) && (a.buf_len % sizeof(u64)))
		return -EINVAL;
	if ((a.flags & CKPT_COLLECT_BITMAP) && !a.id)
		return -EINVAL;
	if (a.id) {
		r = find_region(s, a.id);
		if (!r)
			return -ENOENT;
	}
	mm = session_mm(s);
	if (!mm)
		return -ESRCH;

	if (a.flags & CKPT_COLLECT_PEEK)
		ret = collect_peek(s, &a, r);
	else if (a.flags & CKPT_COLLECT_BITMAP)
		ret = collect_bitmap(s, mm, &a, r);
	else
		ret = collect_array(s, mm, &a, r);
	mmput(mm);
	if (ret)
		return ret;
	if (!(a.flags & CKPT_COLLECT_PEEK)) {
		s->seq++;
		s->collected += a.count;
	}
	a.seq = s->seq;
	if (a.flags & CKPT_COLLECT_PEEK) {
		a.remaining = 0;
		list_for_each_entry(r, &s->regions, s_node)
			if (!a.id || r->id == a.id)
				a.remaining += ckpt_log_count(r);
	} else if (a.flags & CKPT_COLLECT_BITMAP) {
		a.remaining = 0;	/* one call is a whole pass */
	}
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	*count = a.count;
	return 0;
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
		struct ckpt_region *r = find_region(s, id);

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
	if (s->attached || s->nr_regions || s->cm)
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

// SPDX-License-Identifier: GPL-2.0
/*
 * CKPT_IOC_DUMP_TASK: the per-task state ptrace does not show (signal handlers, the alternate
 * signal stack, clear_child_tid, the robust list head, rseq, the heap bounds, the process's
 * timers), read for a task the caller has stopped under ptrace. This is what CRIU injects a
 * parasite for.
 *
 * Permission is the ptrace relationship itself: the caller must be the task's tracer and the
 * task must sit in a ptrace stop, so the fields cannot change while they are read and the
 * caller could read (and change) far more through ptrace anyway.
 */
#include <linux/mutex.h>
#include <linux/futex.h>
#include <linux/hrtimer.h>
#include <linux/pid.h>
#include <linux/posix-timers.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

/*
 * Lock @t's sighand (its siglock), or NULL if the task has exited. sighand is freed by RCU
 * (SLAB_TYPESAFE_BY_RCU) and cleared under its lock when the task exits: lock it, then check
 * it is still the task's (__lock_task_sighand is not exported). Returns with the RCU read
 * lock held; unlock_sighand() drops both.
 */
static struct sighand_struct *lock_sighand(struct task_struct *t)
{
	struct sighand_struct *sighand;

	rcu_read_lock();
	sighand = rcu_dereference(t->sighand);
	if (!sighand) {
		rcu_read_unlock();
		return NULL;
	}
	spin_lock_irq(&sighand->siglock);
	if (sighand != rcu_access_pointer(t->sighand)) {
		spin_unlock_irq(&sighand->siglock);
		rcu_read_unlock();
		return NULL;
	}
	return sighand;
}

static void unlock_sighand(struct sighand_struct *sighand)
{
	spin_unlock_irq(&sighand->siglock);
	rcu_read_unlock();
}

/* The handlers of @t's thread group into @out (CKPT_NSIG entries). */
static int read_actions(struct task_struct *t, struct ckpt_sigaction *out)
{
	struct sighand_struct *sighand = lock_sighand(t);
	int i;

	if (!sighand)
		return -ESRCH;
	for (i = 0; i < CKPT_NSIG && i < _NSIG; i++) {
		const struct sigaction *sa = &sighand->action[i].sa;

		out[i].handler = (unsigned long)sa->sa_handler;
		out[i].flags = sa->sa_flags;
		out[i].restorer = (unsigned long)sa->sa_restorer;
		out[i].mask = sa->sa_mask.sig[0];
	}
	unlock_sighand(sighand);
	return 0;
}

/*
 * The timers of @t's process, read as getitimer(2) does: under siglock, which serialises
 * setitimer() and the ITIMER_REAL expiry's re-arm. A POSIX timer is reported when it exists
 * (the list is changed under the same lock), armed or not: its state is not restorable yet.
 */
static int read_timers(struct task_struct *t, struct ckpt_dump_task *d)
{
	struct sighand_struct *sighand = lock_sighand(t);
	struct signal_struct *sig = t->signal;

	if (!sighand)
		return -ESRCH;
	d->timers = 0;
	d->itimer_real_ns = 0;
	d->itimer_real_interval_ns = 0;
#ifdef CONFIG_POSIX_TIMERS
	/*
	 * A periodic ITIMER_REAL is re-armed when its SIGALRM is dequeued, not when it fires: one
	 * that fired while the process was stopped is inactive, with its interval still set and
	 * SIGALRM pending. That is reported as armed with no time left (getitimer: value 0,
	 * interval kept), so restore can carry the period on.
	 */
	if (hrtimer_active(&sig->real_timer)) {
		ktime_t rem = __hrtimer_get_remaining(&sig->real_timer, true);

		d->timers |= CKPT_TIMER_REAL;
		/* getitimer's rule: an expired timer not yet re-armed still has a microsecond. */
		d->itimer_real_ns = rem > 0 ? (u64)ktime_to_ns(rem) : NSEC_PER_USEC;
	}
	if (sig->it_real_incr) {
		d->timers |= CKPT_TIMER_REAL;
		d->itimer_real_interval_ns = ktime_to_ns(sig->it_real_incr);
	}
	if (sig->it[CPUCLOCK_VIRT].expires)
		d->timers |= CKPT_TIMER_VIRTUAL;
	if (sig->it[CPUCLOCK_PROF].expires)
		d->timers |= CKPT_TIMER_PROF;
	if (ckpt_has_posix_timers(sig))
		d->timers |= CKPT_TIMER_POSIX;
#endif
	unlock_sighand(sighand);
	return 0;
}

long ckpt_ioc_dump_task(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_sigaction *actions = NULL;
	struct ckpt_dump_task d;
	struct task_struct *t;
	struct mm_struct *mm;
	long ret;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if ((d.flags & ~(CKPT_DUMP_TIMERS | CKPT_DUMP_PROCESS)) ||
	    !ckpt_all_zero(d.reserved, ARRAY_SIZE(d.reserved)) ||
	    !d.pid || d.pid > INT_MAX)
		return -EINVAL;
	/* Outputs: whatever they hold on input is ignored. */
	d.timers = d.itimer_real_ns = d.itimer_real_interval_ns = d.process = 0;

	rcu_read_lock();
	t = pid_task(find_vpid(d.pid), PIDTYPE_PID);
	if (t)
		get_task_struct(t);
	rcu_read_unlock();
	if (!t)
		return -ESRCH;

	ret = -EPERM;
	rcu_read_lock();
	if (!t->ptrace || rcu_dereference(t->parent) != current || !task_is_traced(t)) {
		rcu_read_unlock();
		goto out;
	}
	rcu_read_unlock();

	if (d.actions) {
		ret = -ENOMEM;
		actions = kcalloc(CKPT_NSIG, sizeof(*actions), GFP_KERNEL_ACCOUNT);
		if (!actions)
			goto out;
		ret = read_actions(t, actions);
		if (ret)
			goto out;
	}

	if (d.flags & CKPT_DUMP_TIMERS) {
		ret = read_timers(t, &d);
		if (ret)
			goto out;
	}

	/*
	 * Set by prctl() of a task of the process itself; the task is stopped, another thread may
	 * still change it: a snapshot, as /proc gives of what it shows.
	 */
	if ((d.flags & CKPT_DUMP_PROCESS) && t->signal->is_child_subreaper)
		d.process |= CKPT_PROCESS_CHILD_SUBREAPER;

	/* The task is stopped: these per-thread fields are stable. */
	d.clear_child_tid = (unsigned long)t->clear_child_tid;
	d.robust_list = (unsigned long)t->robust_list;
	d.robust_list_len = t->robust_list ? sizeof(*t->robust_list) : 0;
	d.sas_ss_sp = t->sas_ss_sp;
	d.sas_ss_size = t->sas_ss_size;
	d.sas_ss_flags = t->sas_ss_flags;
	d.blocked = t->blocked.sig[0];
#ifdef CONFIG_RSEQ
	d.rseq = (unsigned long)t->rseq;
	d.rseq_sig = t->rseq_sig;
#endif
	ret = -ESRCH;
	mm = get_task_mm(t);
	if (!mm)
		goto out;
	mmap_read_lock(mm);
	d.start_brk = mm->start_brk;
	d.brk = mm->brk;
	mmap_read_unlock(mm);
	mmput(mm);

	ret = -EFAULT;
	if (actions && copy_to_user(u64_to_user_ptr(d.actions), actions,
				    CKPT_NSIG * sizeof(*actions)))
		goto out;
	if (copy_to_user(uarg, &d, sizeof(d)))
		goto out;
	ret = 0;
out:
	kfree(actions);
	put_task_struct(t);
	return ret;
}

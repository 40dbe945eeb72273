// SPDX-License-Identifier: GPL-2.0
/*
 * CKPT_IOC_RESTORE_COMMIT: carry out the restore PREPARE staged (restore.c) on the calling
 * task. Every other thread of its process waits in CKPT_IOC_RESTORE_THREAD (this file) until
 * the address space is replaced, then sets its own state. Past the point of no return there
 * is no user context to return to: a failure is reported on the status fd and the task is
 * killed.
 *
 * Locking: the staged restore is the session's (ckpt_session.lock, held by dev.c around every
 * ioctl). COMMIT calls vm_munmap()/vm_mmap(), which take the mmap lock themselves; it takes the
 * mmap lock only to walk the VMAs and to set the mm fields. The rendezvous with the parked
 * threads is under ckpt_rdv_lock (restore.h).
 */
#include <linux/file.h>
#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/ptrace.h>
#include <asm/segment.h>
#include "restore.h"

/* The eflags bits user space may set (as PTRACE_SETREGS allows). */
#define CKPT_FLAG_MASK                                                                         \
	(X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | X86_EFLAGS_ZF | X86_EFLAGS_SF |      \
	 X86_EFLAGS_TF | X86_EFLAGS_DF | X86_EFLAGS_OF | X86_EFLAGS_RF | X86_EFLAGS_AC)

#define CKPT_BOUNCE	(256 * 1024)	/* bytes read from the data file per step */

/*
 * Unmap everything of the caller but [keep_start, keep_end) (its vdso) and the prebuilt
 * mappings: vm_munmap() of every gap between those, in address order (the vmas are sorted and
 * do not overlap the kept range). A gap with nothing mapped costs a lookup.
 */
static int unmap_all(const struct ckpt_restore *r)
{
	const struct ckpt_restore_prepare *p = &r->req;
	unsigned long from = 0;
	bool keep_done = !p->keep_end;
	int ret = 0;
	u64 i = 0;

	for (;;) {
		unsigned long ks, ke;

		while (i < p->nr_vmas && !(r->vmas[i].flags & CKPT_VMA_PREBUILT))
			i++;
		if (!keep_done && (i == p->nr_vmas || p->keep_start < r->vmas[i].start)) {
			ks = p->keep_start;
			ke = p->keep_end;
			keep_done = true;
		} else if (i < p->nr_vmas) {
			ks = r->vmas[i].start;
			ke = r->vmas[i].start + r->vmas[i].len;
			i++;
		} else {
			break;
		}
		if (ks > from)
			ret = vm_munmap(from, ks - from);
		if (ret)
			return ret;
		from = ke;
	}
	return from < TASK_SIZE ? vm_munmap(from, TASK_SIZE - from) : 0;
}

static int map_all(struct ckpt_restore *r)
{
	u64 i;

	for (i = 0; i < r->req.nr_vmas; i++) {
		const struct ckpt_restore_vma *v = &r->vmas[i];
		unsigned long flags = MAP_FIXED_NOREPLACE, addr;

		if (v->flags & CKPT_VMA_PREBUILT)
			continue;
		flags |= v->flags & CKPT_VMA_SHARED ? MAP_SHARED : MAP_PRIVATE;
		if (!(v->flags & CKPT_VMA_FILE))
			flags |= MAP_ANONYMOUS;
		if (v->flags & CKPT_VMA_GROWSDOWN)
			flags |= MAP_GROWSDOWN;
		addr = vm_mmap(r->files[i], v->start, v->len, v->prot, flags, v->pgoff);
		if (IS_ERR_VALUE(addr))
			return (int)addr;
		if (addr != v->start)
			return -EEXIST;
	}
	return 0;
}

static int fill_all(struct ckpt_restore *r)
{
	void *buf;
	u64 i;
	int ret = 0;

	buf = kvmalloc(CKPT_BOUNCE, GFP_KERNEL_ACCOUNT);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < r->req.nr_runs && !ret; i++) {
		const struct ckpt_restore_run *run = &r->runs[i];
		const struct ckpt_restore_vma *v = &r->vmas[ckpt_restore_find_vma(r, run->addr, run->len)];
		loff_t pos = run->data_off;
		u64 done = 0;

		while (done < run->len) {
			size_t n = min_t(u64, run->len - done, CKPT_BOUNCE);
			unsigned long addr = run->addr + done;
			ssize_t got;

			got = kernel_read(r->data, buf, n, &pos);
			if (got != n) {
				ret = got < 0 ? (int)got : -EIO;
				break;
			}
			/*
			 * FOLL_FORCE only here: @addr lies in a mapping map_all() has just created
			 * in an address space no other process uses (checked by COMMIT), before
			 * the task runs any of it. Writes as ptrace's would: private copies.
			 */
			if (v->prot & PROT_WRITE) {
				if (copy_to_user((void __user *)addr, buf, n)) {
					ret = -EFAULT;
					break;
				}
			} else if (access_process_vm(current, addr, buf, n,
						     FOLL_FORCE | FOLL_WRITE) != n) {
				ret = -EFAULT;
				break;
			}
			done += n;
			cond_resched();
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
		}
	}
	kvfree(buf);
	return ret;
}

static void set_mm_fields(struct mm_struct *mm, const struct ckpt_restore_prepare *p)
{
	/* As prctl(PR_SET_MM_MAP) does: mmap lock for the layout fields, arg_lock for all. */
	mmap_write_lock(mm);
	spin_lock(&mm->arg_lock);
	mm->start_code = p->start_code;
	mm->end_code = p->end_code;
	mm->start_data = p->start_data;
	mm->end_data = p->end_data;
	mm->start_brk = p->start_brk;
	mm->brk = p->brk;
	mm->start_stack = p->start_stack;
	mm->arg_start = p->arg_start;
	mm->arg_end = p->arg_end;
	mm->env_start = p->env_start;
	mm->env_end = p->env_end;
	spin_unlock(&mm->arg_lock);
	mmap_write_unlock(mm);
}

static void set_regs(struct pt_regs *regs, const struct ckpt_regs *g)
{
	regs->r15 = g->r15;
	regs->r14 = g->r14;
	regs->r13 = g->r13;
	regs->r12 = g->r12;
	regs->bp = g->bp;
	regs->bx = g->bx;
	regs->r11 = g->r11;
	regs->r10 = g->r10;
	regs->r9 = g->r9;
	regs->r8 = g->r8;
	regs->cx = g->cx;
	regs->dx = g->dx;
	regs->si = g->si;
	regs->di = g->di;
	regs->ip = g->ip;
	regs->sp = g->sp;
	regs->cs = __USER_CS;
	regs->ss = __USER_DS;
	regs->flags = (regs->flags & ~CKPT_FLAG_MASK) | (g->flags & CKPT_FLAG_MASK);
	/* No syscall in flight: the exit path must not apply restart logic to this one. */
	regs->orig_ax = -1;
	/* ax is set from our return value by the syscall exit path. */
}

/* What each restored thread sets on itself on the way out (checked by check_thread_state). */
static void set_thread_state(const struct ckpt_thread_state *t)
{
	sigset_t blocked;

	set_regs(current_pt_regs(), &t->regs);
	siginitset(&blocked, t->sigmask & ~(sigmask(SIGKILL) | sigmask(SIGSTOP)));
	sigprocmask(SIG_SETMASK, &blocked, NULL);
	current->clear_child_tid = u64_to_user_ptr(t->clear_child_tid);
	current->robust_list = u64_to_user_ptr(t->robust_list);
	current->rseq = u64_to_user_ptr(t->rseq);
	current->rseq_sig = t->rseq_sig;
	/* Refresh cpu_id & co. in the restored rseq area on the way out. */
	rseq_set_notify_resume(current);
}

long ckpt_ioc_restore_thread(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_restore_thread t;
	struct ckpt_rdv *v = NULL, *it;
	struct rseq __user *old_rseq;
	u32 old_rseq_sig;
	int state;
	long ret;

	if (copy_from_user(&t, uarg, sizeof(t)))
		return -EFAULT;
	if (t.flags || !ckpt_all_zero(t.reserved, ARRAY_SIZE(t.reserved)) ||
	    ckpt_restore_check_thread(&t.thread) || !ckpt_restore_self_fd(s, t.self_fd) || !current->mm)
		return -EINVAL;

	spin_lock(&ckpt_rdv_lock);
	list_for_each_entry(it, &ckpt_rdvs, node) {
		if (it->mm == current->mm && !it->state) {
			v = it;
			refcount_inc(&v->ref);
			v->parked++;
			break;
		}
	}
	spin_unlock(&ckpt_rdv_lock);
	if (!v)
		return -ENOENT;

	/*
	 * The old rseq area is about to disappear: nothing may write there meanwhile. A restore
	 * that is cancelled or fails before replacing the address space leaves it in place, and
	 * the thread gets its registration back with the error.
	 */
	old_rseq = current->rseq;
	old_rseq_sig = current->rseq_sig;
	current->rseq = NULL;
	current->rseq_sig = 0;
	ret = wait_event_killable(v->wq, READ_ONCE(v->state) != 0);
	spin_lock(&ckpt_rdv_lock);
	v->parked--;
	state = v->state;
	spin_unlock(&ckpt_rdv_lock);
	ckpt_rdv_put(v);
	if (ret || state < 0) {
		current->rseq = old_rseq;
		current->rseq_sig = old_rseq_sig;
		return ret ? -EINTR : state;
	}

	set_thread_state(&t.thread);
	close_fd(t.self_fd);
	return (long)t.thread.regs.ax;
}

static void report_status(struct ckpt_restore *r, s64 status)
{
	loff_t pos = 0;

	if (r->status)
		kernel_write(r->status, &status, sizeof(status), &pos);
}

/*
 * Does a task outside the caller's thread group use @mm: a clone(CLONE_VM) process, a vfork
 * parent or child, a kernel thread that borrowed it? Such a task could unmap and map pages
 * where COMMIT is about to write (fill_all writes read-only and executable pages with
 * FOLL_FORCE), or would find its memory gone. RCU keeps the task lists walkable; ->mm is only
 * compared. No such task can appear afterwards: only a task of @mm can share it (clone), and
 * every thread of the caller is parked or is the caller.
 */
static bool mm_shared(struct mm_struct *mm)
{
	struct task_struct *p, *t;
	bool shared = false;

	rcu_read_lock();
	for_each_process(p) {
		if (same_thread_group(p, current))
			continue;
		for_each_thread(p, t) {
			if (READ_ONCE(t->mm) == mm) {
				shared = true;
				goto out;
			}
		}
	}
out:
	rcu_read_unlock();
	return shared;
}

/* The argument is a value: 0 or CKPT_COMMIT_CHECK (the command is _IO). */
long ckpt_ioc_restore_commit(struct ckpt_session *s, void __user *uarg)
{
	unsigned long arg = (unsigned long)uarg;
	struct ckpt_restore *r = s->restore;
	struct mm_struct *mm = current->mm;
	const struct ckpt_restore_prepare *p;
	unsigned int self_fd;
	long ret;

	if ((arg & ~CKPT_COMMIT_CHECK) || !r || r->task != current || r->mm != mm)
		return -EINVAL;
	/* Every other thread must sleep in RESTORE_THREAD, away from user memory. */
	spin_lock(&ckpt_rdv_lock);
	ret = r->rdv->parked == get_nr_threads(current) - 1 ? 0 : -EBUSY;
	spin_unlock(&ckpt_rdv_lock);
	/* No other process may see the layout change, or change it under fill_all(). */
	if (!ret && mm_shared(mm))
		ret = -EBUSY;
	if (ret || arg == CKPT_COMMIT_CHECK)
		return ret;
	p = &r->req;

	/* What the caller built must still be there: checked while we can still say no. */
	ret = ckpt_restore_check_prebuilt(mm, r);
	if (ret)
		return ret;

	/* Point of no return. Stop the kernel writing into the old rseq area first. */
	current->rseq = NULL;
	current->rseq_sig = 0;
	ret = unmap_all(r);
	if (!ret)
		ret = map_all(r);
	if (!ret)
		ret = fill_all(r);
	if (ret) {
		pr_info_ratelimited("ckpt: restore of pid %d failed after the point of no return: %ld\n",
				    task_pid_nr(current), ret);
		report_status(r, ret);
		force_sig(SIGKILL);
		ckpt_rdv_finish(r->rdv, (int)ret);
		s->restore = NULL;
		ckpt_restore_free(r);
		return ret;
	}
	set_mm_fields(mm, p);
	set_thread_state(&p->thread);

	ckpt_rdv_finish(r->rdv, 1);
	report_status(r, 0);
	if (r->status)
		close_fd(p->status_fd);
	ret = (long)p->thread.regs.ax;
	self_fd = p->self_fd;	/* @p is in @r, freed next */
	s->restore = NULL;
	ckpt_restore_free(r);
	/*
	 * Our own fd goes last. The file is not released under us: the final fput of a user
	 * task is deferred to task work, which runs on the way back to user space.
	 */
	close_fd(self_fd);
	return ret;
}

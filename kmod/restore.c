// SPDX-License-Identifier: GPL-2.0
/*
 * Whole-process restore without a parasite: CKPT_IOC_RESTORE_PREPARE stages the image's
 * layout, CKPT_IOC_RESTORE_COMMIT replaces the calling task's address space with it and
 * returns to user space straight into the image's registers.
 *
 * PREPARE validates everything and copies it into the session, taking references on the
 * files, so that COMMIT has nothing left to check that could fail before it starts tearing
 * down the caller's mappings. Once it has started, there is no user context to return to: a
 * failure is reported on the status fd and the task is killed.
 *
 * Locking: the prepared state hangs off ckpt_session.restore and is protected by
 * ckpt_session.lock, which dev.c holds around every ioctl. COMMIT calls vm_munmap()/vm_mmap(),
 * which take the mmap lock themselves; it takes the mmap lock only to walk the VMAs and to set
 * the mm fields.
 */
#include <linux/file.h>
#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/refcount.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <asm/ptrace.h>
#include <asm/segment.h>
#include "ckpt.h"

/* The eflags bits user space may set (as PTRACE_SETREGS allows). */
#define CKPT_FLAG_MASK                                                                         \
	(X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | X86_EFLAGS_ZF | X86_EFLAGS_SF |      \
	 X86_EFLAGS_TF | X86_EFLAGS_DF | X86_EFLAGS_OF | X86_EFLAGS_RF | X86_EFLAGS_AC)

#define CKPT_BOUNCE	(256 * 1024)	/* bytes read from the data file per step */

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
static DEFINE_SPINLOCK(ckpt_rdv_lock);
static LIST_HEAD(ckpt_rdvs);

static void rdv_put(struct ckpt_rdv *v)
{
	if (refcount_dec_and_test(&v->ref)) {
		mmdrop(v->mm);
		kfree(v);
	}
}

/* Leave the list; parked threads are woken with @state (kept if already decided). */
static void rdv_finish(struct ckpt_rdv *v, int state)
{
	spin_lock(&ckpt_rdv_lock);
	if (!list_empty(&v->node))
		list_del_init(&v->node);
	if (!v->state)
		v->state = state;
	spin_unlock(&ckpt_rdv_lock);
	wake_up_all(&v->wq);
}

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

void ckpt_restore_free(struct ckpt_restore *r)
{
	u64 i;

	if (!r)
		return;
	if (r->rdv) {
		rdv_finish(r->rdv, -ECANCELED);
		rdv_put(r->rdv);
	}
	if (r->files) {
		for (i = 0; i < r->req.nr_vmas; i++)
			if (r->files[i])
				fput(r->files[i]);
		kvfree(r->files);
	}
	kvfree(r->vmas);
	kvfree(r->runs);
	if (r->data)
		fput(r->data);
	if (r->status)
		fput(r->status);
	if (r->user)
		ckpt_user_uncharge(r->user, r->charged);
	if (r->task)
		put_task_struct(r->task);
	kfree(r);
}

static bool user_range_ok(u64 start, u64 len)
{
	return PAGE_ALIGNED(start) && PAGE_ALIGNED(len) && len && start + len > start &&
	       start + len <= TASK_SIZE_MAX;
}

/* A file the kernel may read (or write, @mode FMODE_WRITE) for the caller; -errno else. */
static struct file *get_file_fd(u64 fd, fmode_t mode, bool regular)
{
	struct file *f;

	if (fd > INT_MAX)
		return ERR_PTR(-EBADF);
	f = fget(fd);
	if (!f)
		return ERR_PTR(-EBADF);
	if (!(f->f_mode & mode)) {
		fput(f);
		return ERR_PTR(-EBADF);
	}
	if (regular && !S_ISREG(file_inode(f)->i_mode)) {
		fput(f);
		return ERR_PTR(-EACCES);
	}
	return f;
}

static int check_regs(const struct ckpt_regs *g)
{
	if (g->cs != __USER_CS || g->ss != __USER_DS)
		return -EINVAL;
	if ((g->ds && g->ds != __USER_DS) || (g->es && g->es != __USER_DS) || g->fs || g->gs)
		return -EINVAL;
	if (g->ip >= TASK_SIZE_MAX)
		return -EINVAL;
	return 0;
}

/* A thread's state is checked before anything changes: -EINVAL, as its registers. */
static int check_thread_state(const struct ckpt_thread_state *t)
{
	if (check_regs(&t->regs))
		return -EINVAL;
	if (t->clear_child_tid >= TASK_SIZE_MAX || t->robust_list >= TASK_SIZE_MAX ||
	    t->rseq >= TASK_SIZE_MAX || !IS_ALIGNED(t->rseq, 32) || t->rseq_sig > U32_MAX)
		return -EINVAL;
	return 0;
}

static int check_mm_fields(const struct ckpt_restore_prepare *p)
{
	const __u64 *v = &p->start_code;
	int i;

	/* start_code .. env_end are 11 consecutive fields. */
	for (i = 0; i < 11; i++)
		if (v[i] >= TASK_SIZE_MAX)
			return -EINVAL;
	if (p->start_code > p->end_code || p->start_data > p->end_data ||
	    p->start_brk > p->brk || p->arg_start > p->arg_end || p->env_start > p->env_end)
		return -EINVAL;
	return 0;
}

/* The VMAs of [start, end) in the caller must be exactly its [vvar] and [vdso]. */
static int check_keep(struct mm_struct *mm, u64 start, u64 end)
{
	struct vm_area_struct *vma;
	unsigned long addr = start;
	bool vdso_in = false;
	int ret = 0;

	if (!start && !end)
		return 0;
	if (!PAGE_ALIGNED(start) || !PAGE_ALIGNED(end) || start >= end || end > TASK_SIZE_MAX)
		return -EINVAL;
	mmap_read_lock(mm);
	while (addr < end) {
		const char *name;

		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start != addr || vma->vm_end > end) {
			ret = -EINVAL;
			break;
		}
		name = vma->vm_ops && vma->vm_ops->name ? vma->vm_ops->name(vma) : NULL;
		if (!name || (strcmp(name, "[vdso]") && strcmp(name, "[vvar]"))) {
			ret = -EINVAL;
			break;
		}
		if ((unsigned long)mm->context.vdso >= vma->vm_start &&
		    (unsigned long)mm->context.vdso < vma->vm_end)
			vdso_in = true;
		addr = vma->vm_end;
	}
	mmap_read_unlock(mm);
	if (!ret && !vdso_in)
		ret = -EINVAL;
	return ret;
}

/* Index of the vma holding [addr, addr + len), or -1. vmas are sorted and disjoint. */
static long find_vma_idx(const struct ckpt_restore *r, u64 addr, u64 len)
{
	long lo = 0, hi = (long)r->req.nr_vmas - 1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;
		const struct ckpt_restore_vma *v = &r->vmas[mid];

		if (addr < v->start)
			hi = mid - 1;
		else if (addr >= v->start + v->len)
			lo = mid + 1;
		else
			return addr + len <= v->start + v->len ? mid : -1;
	}
	return -1;
}

static int prepare_vmas(struct ckpt_restore *r)
{
	const struct ckpt_restore_prepare *p = &r->req;
	u64 i, prev_end = 0;

	for (i = 0; i < p->nr_vmas; i++) {
		const struct ckpt_restore_vma *v = &r->vmas[i];
		struct file *f;

		if (!user_range_ok(v->start, v->len) || v->start < prev_end)
			return -EINVAL;
		if (v->prot & ~(u64)(PROT_READ | PROT_WRITE | PROT_EXEC))
			return -EINVAL;
		if (v->flags & ~(CKPT_VMA_FILE | CKPT_VMA_SHARED | CKPT_VMA_GROWSDOWN |
				 CKPT_VMA_PREBUILT))
			return -EINVAL;
		if ((v->flags & CKPT_VMA_PREBUILT) && (v->flags & CKPT_VMA_SHARED))
			return -EINVAL;
		if (!ckpt_all_zero(v->reserved, ARRAY_SIZE(v->reserved)))
			return -EINVAL;
		/* Overlapping the kept vdso would make vm_mmap replace it. */
		if (p->keep_end && v->start < p->keep_end && v->start + v->len > p->keep_start)
			return -EINVAL;
		prev_end = v->start + v->len;
		if (!(v->flags & CKPT_VMA_FILE)) {
			if (v->fd || v->pgoff)
				return -EINVAL;
			/* A shared anonymous page that is not writable could not be filled. */
			if ((v->flags & CKPT_VMA_SHARED) && !(v->prot & PROT_WRITE))
				return -EINVAL;
			continue;
		}
		if ((v->flags & CKPT_VMA_SHARED) || !PAGE_ALIGNED(v->pgoff) ||
		    v->pgoff + v->len < v->pgoff)
			return -EINVAL;
		f = get_file_fd(v->fd, FMODE_READ, true);
		if (IS_ERR(f))
			return PTR_ERR(f);
		r->files[i] = f;
	}
	return 0;
}

static int prepare_runs(struct ckpt_restore *r)
{
	loff_t size = i_size_read(file_inode(r->data));
	long idx;
	u64 i;

	for (i = 0; i < r->req.nr_runs; i++) {
		const struct ckpt_restore_run *run = &r->runs[i];

		if (!user_range_ok(run->addr, run->len) || !PAGE_ALIGNED(run->data_off) ||
		    run->reserved)
			return -EINVAL;
		if (run->data_off + run->len < run->data_off || run->data_off + run->len > size)
			return -EINVAL;
		idx = find_vma_idx(r, run->addr, run->len);
		/* A prebuilt mapping holds its pages already. */
		if (idx < 0 || (r->vmas[idx].flags & CKPT_VMA_PREBUILT))
			return -EINVAL;
	}
	return 0;
}

/*
 * Every CKPT_VMA_PREBUILT range must be covered, without a hole, by private mappings of the
 * caller that are what the entry says (protection, anonymous or the same file at the same
 * offset, growsdown). The kernel may have merged neighbours or split one; only what covers
 * the range counts.
 */
static int check_prebuilt(struct mm_struct *mm, const struct ckpt_restore *r)
{
	const unsigned long protmask = VM_READ | VM_WRITE | VM_EXEC;
	int ret = 0;
	u64 i;

	mmap_read_lock(mm);
	for (i = 0; i < r->req.nr_vmas && !ret; i++) {
		const struct ckpt_restore_vma *v = &r->vmas[i];
		unsigned long addr = v->start, end = v->start + v->len, want = 0;

		if (!(v->flags & CKPT_VMA_PREBUILT))
			continue;
		if (v->prot & PROT_READ)
			want |= VM_READ;
		if (v->prot & PROT_WRITE)
			want |= VM_WRITE;
		if (v->prot & PROT_EXEC)
			want |= VM_EXEC;
		while (addr < end) {
			struct vm_area_struct *vma = find_vma(mm, addr);

			if (!vma || vma->vm_start > addr || (vma->vm_flags & VM_SHARED) ||
			    (vma->vm_flags & protmask) != want ||
			    !!(vma->vm_flags & VM_GROWSDOWN) != !!(v->flags & CKPT_VMA_GROWSDOWN)) {
				ret = -EINVAL;
				break;
			}
			if (v->flags & CKPT_VMA_FILE) {
				unsigned long want_pgoff = (v->pgoff >> PAGE_SHIFT) +
							   ((addr - v->start) >> PAGE_SHIFT);

				if (!vma->vm_file ||
				    file_inode(vma->vm_file) != file_inode(r->files[i]) ||
				    vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT) != want_pgoff) {
					ret = -EINVAL;
					break;
				}
			} else if (vma->vm_file || vma->vm_ops) {
				ret = -EINVAL;
				break;
			}
			addr = vma->vm_end;
		}
	}
	mmap_read_unlock(mm);
	return ret;
}

long ckpt_ioc_restore_prepare(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_restore *r;
	struct ckpt_restore_prepare *p;
	struct file *self;
	long ret;

	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	p = &r->req;
	ret = -EFAULT;
	if (copy_from_user(p, uarg, sizeof(*p)))
		goto out_free;
	ret = -EINVAL;
	if (p->flags & ~CKPT_RESTORE_STATUS_FD || !ckpt_all_zero(p->reserved, ARRAY_SIZE(p->reserved)))
		goto out_free;
	if (!(p->flags & CKPT_RESTORE_STATUS_FD) && p->status_fd)
		goto out_free;
	if (!current->mm || check_thread_state(&p->thread) || check_mm_fields(p))
		goto out_free;
	/* Elements of another size are another layout (ckpt.h: API versions). */
	if (p->vma_size != sizeof(struct ckpt_restore_vma) ||
	    p->run_size != sizeof(struct ckpt_restore_run))
		goto out_free;
	ret = -E2BIG;
	if (!p->nr_vmas || p->nr_vmas > CKPT_RESTORE_MAX_VMAS || p->nr_runs > CKPT_RESTORE_MAX_RUNS)
		goto out_free;

	/* The fd must name this very file: COMMIT closes it. */
	ret = -EINVAL;
	if (p->self_fd > INT_MAX)
		goto out_free;
	self = fget(p->self_fd);
	if (!self)
		goto out_free;
	if (self->private_data != s) {
		fput(self);
		goto out_free;
	}
	fput(self);

	ret = check_keep(current->mm, p->keep_start, p->keep_end);
	if (ret)
		goto out_free;

	/*
	 * The staged request is kernel memory the caller holds until COMMIT or close: charged to
	 * the session's user (max_user_kmem_kb) and to the caller's memory cgroup.
	 */
	ret = -ENOSPC;
	r->charged = sizeof(*r) + sizeof(*r->rdv) +
		     p->nr_vmas * (sizeof(*r->vmas) + sizeof(*r->files)) +
		     p->nr_runs * sizeof(*r->runs);
	if (!ckpt_user_charge(s->user, r->charged))
		goto out_free;
	r->user = s->user;
	ret = -ENOMEM;
	r->vmas = kvmalloc_array(p->nr_vmas, sizeof(*r->vmas), GFP_KERNEL_ACCOUNT);
	r->files = kvcalloc(p->nr_vmas, sizeof(*r->files), GFP_KERNEL_ACCOUNT);
	if (!r->vmas || !r->files)
		goto out_free;
	if (p->nr_runs) {
		r->runs = kvmalloc_array(p->nr_runs, sizeof(*r->runs), GFP_KERNEL_ACCOUNT);
		if (!r->runs)
			goto out_free;
	}
	ret = -EFAULT;
	if (copy_from_user(r->vmas, u64_to_user_ptr(p->vmas), p->nr_vmas * sizeof(*r->vmas)))
		goto out_free;
	if (p->nr_runs &&
	    copy_from_user(r->runs, u64_to_user_ptr(p->runs), p->nr_runs * sizeof(*r->runs)))
		goto out_free;

	ret = prepare_vmas(r);
	if (!ret)
		ret = check_prebuilt(current->mm, r);
	if (ret)
		goto out_free;
	r->data = get_file_fd(p->data_fd, FMODE_READ, true);
	if (IS_ERR(r->data)) {
		ret = PTR_ERR(r->data);
		r->data = NULL;
		goto out_free;
	}
	ret = prepare_runs(r);
	if (ret)
		goto out_free;
	if (p->flags & CKPT_RESTORE_STATUS_FD) {
		r->status = get_file_fd(p->status_fd, FMODE_WRITE, false);
		if (IS_ERR(r->status)) {
			ret = PTR_ERR(r->status);
			r->status = NULL;
			goto out_free;
		}
	}

	ret = -ENOMEM;
	r->rdv = kzalloc(sizeof(*r->rdv), GFP_KERNEL_ACCOUNT);
	if (!r->rdv)
		goto out_free;
	refcount_set(&r->rdv->ref, 1);
	INIT_LIST_HEAD(&r->rdv->node);
	mmgrab(current->mm);
	r->rdv->mm = current->mm;
	init_waitqueue_head(&r->rdv->wq);
	get_task_struct(current);
	r->task = current;
	r->mm = current->mm;
	ckpt_restore_free(s->restore);
	s->restore = r;
	spin_lock(&ckpt_rdv_lock);
	list_add(&r->rdv->node, &ckpt_rdvs);
	spin_unlock(&ckpt_rdv_lock);
	return 0;

out_free:
	ckpt_restore_free(r);
	return ret;
}

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
		const struct ckpt_restore_vma *v = &r->vmas[find_vma_idx(r, run->addr, run->len)];
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

/* The fd must name this very file (it is closed on success). */
static bool is_self_fd(struct ckpt_session *s, u64 fd)
{
	struct file *f;
	bool ok;

	if (fd > INT_MAX)
		return false;
	f = fget(fd);
	if (!f)
		return false;
	ok = f->private_data == s;
	fput(f);
	return ok;
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
	    check_thread_state(&t.thread) || !is_self_fd(s, t.self_fd) || !current->mm)
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
	rdv_put(v);
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
	ret = check_prebuilt(mm, r);
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
		rdv_finish(r->rdv, (int)ret);
		s->restore = NULL;
		ckpt_restore_free(r);
		return ret;
	}
	set_mm_fields(mm, p);
	set_thread_state(&p->thread);

	rdv_finish(r->rdv, 1);
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

// SPDX-License-Identifier: GPL-2.0
/*
 * Whole-process restore without a parasite: CKPT_IOC_RESTORE_PREPARE (this file) stages the
 * image's layout, CKPT_IOC_RESTORE_COMMIT (commit.c) replaces the calling task's address space
 * with it and returns to user space straight into the image's registers.
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
#include "restore.h"

DEFINE_SPINLOCK(ckpt_rdv_lock);
LIST_HEAD(ckpt_rdvs);

void ckpt_rdv_put(struct ckpt_rdv *v)
{
	if (refcount_dec_and_test(&v->ref)) {
		mmdrop(v->mm);
		kfree(v);
	}
}

/* Leave the list; parked threads are woken with @state (kept if already decided). */
void ckpt_rdv_finish(struct ckpt_rdv *v, int state)
{
	spin_lock(&ckpt_rdv_lock);
	if (!list_empty(&v->node))
		list_del_init(&v->node);
	if (!v->state)
		v->state = state;
	spin_unlock(&ckpt_rdv_lock);
	wake_up_all(&v->wq);
}

void ckpt_restore_free(struct ckpt_restore *r)
{
	u64 i;

	if (!r)
		return;
	if (r->rdv) {
		ckpt_rdv_finish(r->rdv, -ECANCELED);
		ckpt_rdv_put(r->rdv);
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
int ckpt_restore_check_thread(const struct ckpt_thread_state *t)
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
long ckpt_restore_find_vma(const struct ckpt_restore *r, u64 addr, u64 len)
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
		idx = ckpt_restore_find_vma(r, run->addr, run->len);
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
int ckpt_restore_check_prebuilt(struct mm_struct *mm, const struct ckpt_restore *r)
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

/* The fd must name this very file (it is closed on success). */
bool ckpt_restore_self_fd(struct ckpt_session *s, u64 fd)
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

/*
 * The request's own fields, in this order: a request with several faults gets the first
 * one's errno.
 */
static long check_request(struct ckpt_session *s, const struct ckpt_restore_prepare *p)
{
	if (p->flags & ~CKPT_RESTORE_STATUS_FD || !ckpt_all_zero(p->reserved, ARRAY_SIZE(p->reserved)))
		return -EINVAL;
	if (!(p->flags & CKPT_RESTORE_STATUS_FD) && p->status_fd)
		return -EINVAL;
	if (!current->mm || ckpt_restore_check_thread(&p->thread) || check_mm_fields(p))
		return -EINVAL;
	/* Elements of another size are another layout (ckpt.h: API versions). */
	if (p->vma_size != sizeof(struct ckpt_restore_vma) ||
	    p->run_size != sizeof(struct ckpt_restore_run))
		return -EINVAL;
	if (!p->nr_vmas || p->nr_vmas > CKPT_RESTORE_MAX_VMAS || p->nr_runs > CKPT_RESTORE_MAX_RUNS)
		return -E2BIG;
	/* The fd must name this very file: COMMIT closes it. */
	if (!ckpt_restore_self_fd(s, p->self_fd))
		return -EINVAL;
	return check_keep(current->mm, p->keep_start, p->keep_end);
}

/*
 * The arrays, copied in. The staged request is kernel memory the caller holds until COMMIT or
 * close: charged to the session's user (max_user_kmem_kb) and to the caller's memory cgroup.
 */
static long copy_arrays(struct ckpt_session *s, struct ckpt_restore *r)
{
	const struct ckpt_restore_prepare *p = &r->req;

	r->charged = sizeof(*r) + sizeof(*r->rdv) +
		     p->nr_vmas * (sizeof(*r->vmas) + sizeof(*r->files)) +
		     p->nr_runs * sizeof(*r->runs);
	if (!ckpt_user_charge(s->user, r->charged))
		return -ENOSPC;
	r->user = s->user;
	r->vmas = kvmalloc_array(p->nr_vmas, sizeof(*r->vmas), GFP_KERNEL_ACCOUNT);
	r->files = kvcalloc(p->nr_vmas, sizeof(*r->files), GFP_KERNEL_ACCOUNT);
	if (!r->vmas || !r->files)
		return -ENOMEM;
	if (p->nr_runs) {
		r->runs = kvmalloc_array(p->nr_runs, sizeof(*r->runs), GFP_KERNEL_ACCOUNT);
		if (!r->runs)
			return -ENOMEM;
	}
	if (copy_from_user(r->vmas, u64_to_user_ptr(p->vmas), p->nr_vmas * sizeof(*r->vmas)))
		return -EFAULT;
	if (p->nr_runs &&
	    copy_from_user(r->runs, u64_to_user_ptr(p->runs), p->nr_runs * sizeof(*r->runs)))
		return -EFAULT;
	return 0;
}

/* The vmas and runs checked, the files taken: the vmas', the data file, the status fd. */
static long take_files(struct ckpt_restore *r)
{
	const struct ckpt_restore_prepare *p = &r->req;
	long ret;

	ret = prepare_vmas(r);
	if (!ret)
		ret = ckpt_restore_check_prebuilt(current->mm, r);
	if (ret)
		return ret;
	r->data = get_file_fd(p->data_fd, FMODE_READ, true);
	if (IS_ERR(r->data)) {
		ret = PTR_ERR(r->data);
		r->data = NULL;
		return ret;
	}
	ret = prepare_runs(r);
	if (ret)
		return ret;
	if (p->flags & CKPT_RESTORE_STATUS_FD) {
		r->status = get_file_fd(p->status_fd, FMODE_WRITE, false);
		if (IS_ERR(r->status)) {
			ret = PTR_ERR(r->status);
			r->status = NULL;
			return ret;
		}
	}
	return 0;
}

long ckpt_ioc_restore_prepare(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_restore *r;
	long ret;

	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	ret = -EFAULT;
	if (copy_from_user(&r->req, uarg, sizeof(r->req)))
		goto out_free;
	ret = check_request(s, &r->req);
	if (!ret)
		ret = copy_arrays(s, r);
	if (!ret)
		ret = take_files(r);
	if (ret)
		goto out_free;

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

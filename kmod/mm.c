// SPDX-License-Identifier: GPL-2.0
/*
 * Per address space tracking state (struct ckpt_mm) and its mmu notifier.
 *
 * The notifier logs pages whose mapping the kernel changes without a write fault that we
 * would see: the change may make a PTE writable again (mprotect's can_change_pte_writable(),
 * khugepaged's collapse into a fresh writable PMD) or change the bytes (munmap, MADV_DONTNEED,
 * mremap's move). Those pages are logged as if written: an over-report, never a miss.
 * Callbacks may be non-blockable, so they only take RCU and do atomic bit operations.
 */
#include <linux/hashtable.h>
#include <linux/kprobes.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/mmu_notifier.h>
#include <linux/slab.h>
#include "ckpt.h"

/* mm pointer -> ckpt_mm, for the fault hook. Writers hold ckpt_mm_hash_lock (bh: the
 * notifier's free callback runs from an RCU callback). */
static DEFINE_HASHTABLE(ckpt_mm_hash, 8);
static DEFINE_SPINLOCK(ckpt_mm_hash_lock);

static struct ckpt_mm *to_cm(struct mmu_notifier *mn)
{
	return container_of(mn, struct ckpt_mm, mn);
}

static void hash_remove(struct ckpt_mm *cm)
{
	spin_lock_bh(&ckpt_mm_hash_lock);
	if (!hlist_unhashed(&cm->hnode))
		hash_del_rcu(&cm->hnode);
	spin_unlock_bh(&ckpt_mm_hash_lock);
}

struct ckpt_mm *ckpt_mm_lookup(struct mm_struct *mm)
{
	struct ckpt_mm *cm;

	hash_for_each_possible_rcu(ckpt_mm_hash, cm, hnode, (unsigned long)mm)
		if (cm->mn.mm == mm)
			return cm;
	return NULL;
}

bool ckpt_mm_tracks(struct ckpt_mm *cm, unsigned long addr)
{
	struct ckpt_region *r;

	list_for_each_entry_rcu(r, &cm->regions, mm_node)
		if (addr >= r->start && addr < r->end)
			return true;
	return false;
}

/*
 * Log [start, end) in every region of @cm: a write fault in @fault_vma (its held pages are
 * copied first, hold.c), or an invalidation (@fault_vma NULL).
 */
void ckpt_mm_log(struct ckpt_mm *cm, unsigned long start, unsigned long end,
		 struct vm_area_struct *fault_vma)
{
	struct ckpt_region *r;

	rcu_read_lock();
	list_for_each_entry_rcu(r, &cm->regions, mm_node) {
		unsigned long s = max(start, r->start), e = min(end, r->end);

		if (s >= e)
			continue;
		if (fault_vma) {
			ckpt_hold_fault(fault_vma, r, s, e);
			atomic64_inc(&r->faults);
		} else {
			ckpt_hold_invalidate(r, s, e);
			atomic64_add((e - s) >> PAGE_SHIFT, &r->invalidations);
		}
		ckpt_log_mark_addr(r, s, e);
	}
	rcu_read_unlock();
}

void ckpt_mm_add(struct ckpt_mm *cm, struct ckpt_region *r)
{
	spin_lock(&cm->lock);
	list_add_tail_rcu(&r->mm_node, &cm->regions);
	spin_unlock(&cm->lock);
}

/* The caller waits for an RCU grace period before freeing @r. */
void ckpt_mm_del(struct ckpt_mm *cm, struct ckpt_region *r)
{
	spin_lock(&cm->lock);
	list_del_rcu(&r->mm_node);
	spin_unlock(&cm->lock);
}

static int cm_invalidate_range_start(struct mmu_notifier *mn,
				     const struct mmu_notifier_range *range)
{
	struct ckpt_mm *cm = to_cm(mn);

	switch (range->event) {
	case MMU_NOTIFY_UNMAP:		/* munmap, MADV_DONTNEED, mremap: bytes change */
	case MMU_NOTIFY_PROTECTION_VMA:	/* mprotect may re-enable write without a fault */
		break;
	case MMU_NOTIFY_CLEAR:		/* THP collapse (fresh writable PMD), swap-out, KSM, COW */
		/* Our own THP splits keep every PTE's write bit: not a write. */
		if (READ_ONCE(cm->splitter) == current)
			return 0;
		break;
	default:	/* PROTECTION_PAGE (fork), SOFT_DIRTY, MIGRATE, EXCLUSIVE: write-removing */
		return 0;
	}
	ckpt_mm_log(cm, range->start, range->end, NULL);
	return 0;
}

/*
 * The mm is exiting: the sessions tracking it are dead from now on (-ESRCH). The mm's own
 * reference goes (mmu_notifier_put() may be called from release); each session still puts its.
 */
static void cm_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct ckpt_mm *cm = to_cm(mn);

	WRITE_ONCE(cm->dead, true);
	hash_remove(cm);
	if (!test_and_set_bit(CKPT_MM_LIFETIME_PUT, &cm->flags))
		mmu_notifier_put(mn);
}

static struct mmu_notifier *cm_alloc(struct mm_struct *mm)
{
	struct ckpt_mm *cm = kzalloc(sizeof(*cm), GFP_KERNEL_ACCOUNT);

	if (!cm)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&cm->regions);
	INIT_LIST_HEAD(&cm->watches);
	spin_lock_init(&cm->lock);
	mutex_init(&cm->split_lock);
	/* Called under the mmap write lock, before ours is registered (ckpt_mm_get()). */
	mmap_assert_write_locked(mm);
	cm->inherited = mm_has_notifiers(mm);
	/* mn.mm is set by the notifier core after we return; the hash compares it. */
	cm->mn.mm = mm;
	spin_lock_bh(&ckpt_mm_hash_lock);
	hash_add_rcu(ckpt_mm_hash, &cm->hnode, (unsigned long)mm);
	spin_unlock_bh(&ckpt_mm_hash_lock);
	return &cm->mn;
}

/* Called after an SRCU grace period once the last user put it (softirq context). */
static void cm_free(struct mmu_notifier *mn)
{
	struct ckpt_mm *cm = to_cm(mn);

	hash_remove(cm);
	kfree_rcu(cm, mn.rcu);
}

static const struct mmu_notifier_ops cm_ops = {
	.release = cm_release,
	.invalidate_range_start = cm_invalidate_range_start,
	.alloc_notifier = cm_alloc,
	.free_notifier = cm_free,
};

/*
 * The tracking state of @mm, created on first use. The caller holds a reference on mm_users.
 *
 * A state, once made, stays until the mm exits (release) or the module is unloaded: it holds
 * a reference of its own besides the sessions'. So whether the mm had another mmu notifier
 * before ours is known for the mm's life (ckpt_mm_secondary()), and not confused with a
 * previous state of ours (the kernel keeps an mm's notifier_subscriptions until the mm goes).
 */
struct ckpt_mm *ckpt_mm_get(struct mm_struct *mm)
{
	struct mmu_notifier *mn;
	struct ckpt_mm *cm;
	int ret;

	ret = mmap_write_lock_killable(mm);
	if (ret)
		return ERR_PTR(ret);
	mn = mmu_notifier_get_locked(&cm_ops, mm);
	if (IS_ERR(mn))
		goto out;
	cm = to_cm(mn);
	if (!cm->head_pprev) {
		/* Just made: ours was added to the list; alone in it unless cm->inherited. */
		struct mmu_notifier *own = mmu_notifier_get_locked(&cm_ops, mm);

		if (IS_ERR(own)) {
			mmu_notifier_put(mn);
			mn = own;
			goto out;
		}
		cm->head_pprev = mn->hlist.pprev;
	}
out:
	mmap_write_unlock(mm);
	if (IS_ERR(mn))
		return ERR_CAST(mn);
	return to_cm(mn);
}

void ckpt_mm_put(struct ckpt_mm *cm)
{
	mmu_notifier_put(&cm->mn);
}

/*
 * Secondary MMUs. Write-protecting a page must tell every mmu notifier of the mm
 * (invalidate_range_start/end with MMU_NOTIFY_PROTECTION_PAGE, as change_protection() does),
 * or a device that mirrors the page tables — KVM's nested page tables, HMM, RDMA ODP and GPU
 * userptr through interval notifiers — keeps its writable mapping and writes unseen. Neither
 * 6.1 nor 6.12 exports __mmu_notifier_invalidate_range_start() to modules (Module.symvers),
 * so the module cannot send that event. It refuses instead: REGISTER and COLLECT fail with
 * -EXDEV while the mm may have any notifier but ours. Known from public interfaces only
 * (struct mmu_notifier_subscriptions is private to mm/mmu_notifier.c), all under the mmap
 * write lock, which every registration holds (__mmu_notifier_register() asserts it):
 *  - one there before ours: mm_has_notifiers() when our state was made (cm_alloc()). The
 *    kernel keeps the subscriptions of an mm once made, so an mm that ever had a notifier
 *    before ckpt tracked it is refused for its life (a KVM VM created and closed before
 *    REGISTER, or a state of a previous load of this module);
 *  - a notifier registered after ours: the notifier list held ours alone when our state was
 *    made (above), so a node added anywhere in it is next to ours: our hlist node's links
 *    (struct mmu_notifier's public @hlist) differ from what they were then. Once it is
 *    unregistered they are as they were, and tracking works again;
 *  - an interval notifier (not in that list): its first registration on an mm calls the
 *    exported __mmu_notifier_register(NULL, mm) (out of line in the 6.1 and 6.12 images, from
 *    every registration path); a kprobe there marks our state (@itree), for good, as the
 *    kernel's has_itree is.
 * One being registered or removed meanwhile only makes us refuse once more.
 */
bool ckpt_mm_secondary(struct ckpt_mm *cm)
{
	mmap_assert_write_locked(cm->mn.mm);
	if (cm->inherited || READ_ONCE(cm->itree))
		return true;
	return READ_ONCE(cm->mn.hlist.pprev) != cm->head_pprev || READ_ONCE(cm->mn.hlist.next);
}

/* __mmu_notifier_register(subscription, mm), mmap write lock held: NULL is an interval one. */
static int reg_probe_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct mm_struct *mm = (void *)regs_get_kernel_argument(regs, 1);
	struct ckpt_mm *cm;

	if (regs_get_kernel_argument(regs, 0))
		return 0;
	rcu_read_lock();
	cm = ckpt_mm_lookup(mm);
	if (cm)
		WRITE_ONCE(cm->itree, true);
	rcu_read_unlock();
	return 0;
}

static struct kprobe reg_probe = {
	.symbol_name = "__mmu_notifier_register",
	.pre_handler = reg_probe_pre,
};

int ckpt_mm_init(void)
{
	int ret = register_kprobe(&reg_probe);

	if (ret)
		pr_err("ckpt: cannot watch __mmu_notifier_register (%d): interval notifiers would go unseen\n",
		       ret);
	return ret;
}

void ckpt_mm_exit(void)
{
	struct ckpt_mm *cm, *tmp;
	LIST_HEAD(put);
	int b;

	unregister_kprobe(&reg_probe);
	/*
	 * No session is left: each state still in the hash holds only the mm's own reference.
	 * Collected under the lock (release may put it meanwhile: the flag says who does), put
	 * outside it (mmu_notifier_put() takes the subscriptions' lock, which is not bh-safe).
	 */
	spin_lock_bh(&ckpt_mm_hash_lock);
	hash_for_each(ckpt_mm_hash, b, cm, hnode)
		if (!test_and_set_bit(CKPT_MM_LIFETIME_PUT, &cm->flags))
			list_add(&cm->exit_node, &put);
	spin_unlock_bh(&ckpt_mm_hash_lock);
	list_for_each_entry_safe(cm, tmp, &put, exit_node)
		mmu_notifier_put(&cm->mn);
	/* Wait for pending free_notifier() callbacks, then for their kfree_rcu(). */
	mmu_notifier_synchronize();
	rcu_barrier();
}

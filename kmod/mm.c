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

/* The mm is exiting: the sessions tracking it are dead from now on (-ESRCH). */
static void cm_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct ckpt_mm *cm = to_cm(mn);

	WRITE_ONCE(cm->dead, true);
	hash_remove(cm);
}

static struct mmu_notifier *cm_alloc(struct mm_struct *mm)
{
	struct ckpt_mm *cm = kzalloc(sizeof(*cm), GFP_KERNEL_ACCOUNT);

	if (!cm)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&cm->regions);
	spin_lock_init(&cm->lock);
	mutex_init(&cm->split_lock);
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

/* The tracking state of @mm, created on first use. The caller holds a reference on mm_users. */
struct ckpt_mm *ckpt_mm_get(struct mm_struct *mm)
{
	struct mmu_notifier *mn = mmu_notifier_get(&cm_ops, mm);

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
 * -EXDEV while the mm has any notifier but ours (an interval notifier, once inserted, marks
 * the mm for good). Under the mmap write lock the answer is stable: a notifier is added only
 * with that lock held (mmu_notifier_register(), mmu_notifier_get_locked(), and the first
 * interval notifier's has_itree), and one being removed meanwhile only makes us refuse once.
 *
 * struct mmu_notifier_subscriptions is private to mm/mmu_notifier.c; its first two members,
 * the notifier list and has_itree, have been these since 5.5 and still are in 6.12.
 */
struct subscriptions_head {
	struct hlist_head list;
	bool has_itree;
};

bool ckpt_mm_secondary(struct ckpt_mm *cm)
{
	struct mm_struct *mm = cm->mn.mm;
	struct subscriptions_head *subs = (void *)READ_ONCE(mm->notifier_subscriptions);

	mmap_assert_write_locked(mm);
	if (!subs)
		return false;	/* not reached: ours is registered */
	if (READ_ONCE(subs->has_itree))
		return true;
	/* Ours alone: first in the list, nothing after it. */
	return READ_ONCE(subs->list.first) != &cm->mn.hlist || READ_ONCE(cm->mn.hlist.next);
}

int ckpt_mm_init(void)
{
	return 0;
}

void ckpt_mm_exit(void)
{
	/* Wait for pending free_notifier() callbacks, then for their kfree_rcu(). */
	mmu_notifier_synchronize();
	rcu_barrier();
}

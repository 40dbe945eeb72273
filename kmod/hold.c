// SPDX-License-Identifier: GPL-2.0
/*
 * Held pages: copy-before-write for asynchronous checkpoints (CKPT_COLLECT_HOLD,
 * CKPT_IOC_RELEASE; the UAPI header has the contract).
 *
 * COLLECT with HOLD protects the reported pages as always and sets their bits in r->held. The
 * program then runs on while its library reads those pages from memory. The first write to a
 * held page faults (COLLECT protected it); the fault hook, at handle_mm_fault() entry and so
 * before the kernel makes the PTE writable, copies the page into r->copies. A write can only
 * proceed after that copy: every path that makes the page writable again goes through a
 * fault, and a second fault on the same page waits on r->hold_lock until the first one's copy
 * is stored. RELEASE hands the copies to the library, which puts them over what it read.
 *
 * The hook runs with preemption disabled and under rcu_read_lock() (ftrace callback), so a copy
 * is allocated without sleeping and without reserves (HOLD_GFP: no __GFP_HIGH, no
 * __GFP_MEMALLOC, charged to the faulting task's memory cgroup, which it may not exceed) and
 * charged to the session's user (user.c, max_user_kmem_kb). A page that reads as zeros (never
 * populated in an anonymous mapping, or the shared zero page) is not copied: its entry is
 * HOLD_ZERO and RELEASE writes zeros. A copy that cannot be made, or a held page changed
 * without a fault we can copy at (unmap, MADV_DONTNEED, swap-out, THP collapse: the mmu
 * notifier sees them), counts in r->hold_lost and the library drops that epoch instead of
 * committing a page it cannot vouch for.
 *
 * What protects what, on every path that may run under the fault hook:
 *  - The region: the hook and the notifier find it on ckpt_mm.regions under rcu_read_lock();
 *    region removal (UNREGISTER, and session close, even while a fault is in the hook)
 *    unlinks it and frees it only after synchronize_rcu() (session.c remove_regions), so no
 *    hook or notifier still runs on it when ckpt_hold_free() runs. RELEASE and COLLECT use
 *    it under ckpt_session.lock, which removal holds too (close: no ioctl is in flight).
 *  - r->held: allocated once, under ckpt_session.lock, published with release order (the hook
 *    reads the pointer locklessly); its bits are set (COLLECT) and cleared (hook, notifier,
 *    END) only under r->hold_lock; freed by ckpt_hold_free() after the grace period above.
 *  - r->copies: an entry is stored (copy_held) and erased (hold_take) only under r->hold_lock.
 *    Whoever erases an entry owns its page: hold_take copies a page to user memory only after
 *    erasing it, with no lock held (the copy may fault on a held page of this very region,
 *    whose hook takes r->hold_lock), and puts it back if that copy fails. copy_held frees the
 *    page it replaces under r->hold_lock, so a page is never freed while another path uses it.
 *  - r->ncopies, r->hold_lost: atomics (counters for RELEASE).
 *
 * Lock order: r->hold_lock -> PTE lock -> the xarray's lock. Never taken in hard irq.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>
#include "ckpt.h"

/* An entry of r->copies for a page that read as zeros: nothing allocated. */
#define HOLD_ZERO xa_mk_value(0)
/* Allocations in the fault hook: no sleep, no reserves, no warning; cgroup-accounted. */
#define HOLD_GFP (GFP_NOWAIT | __GFP_NOWARN | __GFP_NOMEMALLOC | __GFP_ACCOUNT)

void ckpt_hold_init(struct ckpt_region *r)
{
	spin_lock_init(&r->hold_lock);
	/* XA_FLAGS_ACCOUNT: the xarray's nodes are charged to the memory cgroup too. */
	xa_init_flags(&r->copies, XA_FLAGS_ACCOUNT);
	atomic_long_set(&r->ncopies, 0);
}

static unsigned long held_bytes(struct ckpt_region *r)
{
	return r->l0_words * sizeof(long);
}

/* Before a HOLD COLLECT takes anything from @r's log. Caller holds the session lock. */
int ckpt_hold_prepare(struct ckpt_region *r)
{
	unsigned long *held;

	if (r->held)
		return 0;
	if (!ckpt_user_charge(r->user, held_bytes(r)))
		return -ENOSPC;
	held = kvzalloc(held_bytes(r), GFP_KERNEL_ACCOUNT);
	if (!held) {
		ckpt_user_uncharge(r->user, held_bytes(r));
		return -ENOMEM;
	}
	/* The hook reads r->held locklessly: publish a zeroed bitmap. */
	smp_store_release(&r->held, held);
	return 0;
}

/* Hold the pages @addr[0..n) of @r (prepared). Caller holds the session lock (COLLECT). */
void ckpt_hold_pages(struct ckpt_region *r, const u64 *addr, unsigned long n)
{
	unsigned long i;

	spin_lock(&r->hold_lock);
	for (i = 0; i < n; i++)
		set_bit((addr[i] - r->start) >> PAGE_SHIFT, r->held);
	WRITE_ONCE(r->holding, true);
	spin_unlock(&r->hold_lock);
}

/* Free an entry of r->copies that its caller owns (erased, or never stored). */
static void free_entry(struct ckpt_region *r, void *entry)
{
	if (entry && !xa_is_value(entry)) {
		__free_page(entry);
		ckpt_user_uncharge(r->user, PAGE_SIZE);
	}
}

struct copy_pte_arg {
	struct page *src;	/* the page mapped there, referenced */
	bool seen, zero;
};

/* apply_to_existing_page_range() callback: PTE lock held, *ptep not none. */
static int copy_pte(pte_t *ptep, unsigned long addr, void *data)
{
	struct copy_pte_arg *c = data;
	pte_t pte = ptep_get(ptep);

	c->seen = true;
	if (pte_present(pte) && is_zero_pfn(pte_pfn(pte))) {
		c->zero = true;
	} else if (pte_present(pte) && !pte_special(pte) && pfn_valid(pte_pfn(pte))) {
		c->src = pte_page(pte);
		get_page(c->src);
	}
	/* Anything else (a swap entry, a marker...) is not the page as it read: no copy. */
	return 0;
}

/*
 * The entry for a copy of the page mapped at @addr of @vma: a fresh page, HOLD_ZERO, or NULL if
 * it cannot be copied. Under r->hold_lock, from the fault hook.
 */
static void *copy_page_at(struct vm_area_struct *vma, struct ckpt_region *r, unsigned long addr)
{
	struct copy_pte_arg c = {};
	struct page *dst;
	void *entry = NULL;
	pmd_t *pmdp, pmd;

	lockdep_assert_held(&r->hold_lock);
	pmdp = ckpt_pmd_lookup(vma->vm_mm, addr);
	if (!pmdp)
		return NULL;
	pmd = READ_ONCE(*pmdp);
	/* COLLECT split held pages to PTEs; a huge or absent PMD means they were changed. */
	if (!pmd_present(pmd) || pmd_trans_huge(pmd) || pmd_devmap(pmd) || pmd_bad(pmd))
		return NULL;
	/*
	 * The PTE under its lock, through apply_to_existing_page_range() (pte_offset_map_lock()
	 * does not link in a module on 6.12; pgtable.c), which allocates nothing, as the fault
	 * hook's atomic context needs, and calls back only if the PTE is not none. The PMD is a
	 * page table and stays one while the fault holds the mmap or VMA lock: a collapse needs
	 * both for writing. The page is referenced under the PTE lock and copied after it.
	 */
	if (apply_to_existing_page_range(vma->vm_mm, addr, PAGE_SIZE, copy_pte, &c))
		return NULL;
	if (c.zero || (!c.seen && vma_is_anonymous(vma)))
		return HOLD_ZERO;	/* never written, zapped, or the zero page: it read as zeros */
	/* A none PTE of a file mapping read as the file's bytes: not copied here. */
	if (!c.src)
		return NULL;
	/*
	 * The page cannot change meanwhile: its PTE is read-only (COLLECT), and whatever would
	 * write it or make it writable faults here or calls the notifier, both of which wait for
	 * r->hold_lock.
	 */
	if (ckpt_user_charge(r->user, PAGE_SIZE)) {
		dst = alloc_page(HOLD_GFP);
		if (dst) {
			copy_highpage(dst, c.src);
			entry = dst;
		} else {
			ckpt_user_uncharge(r->user, PAGE_SIZE);
		}
	}
	put_page(c.src);
	return entry;
}

/* Copy the held page at @addr (index @idx) of @r into r->copies; false if it cannot be. */
static bool copy_held(struct vm_area_struct *vma, struct ckpt_region *r, unsigned long addr,
		      unsigned long idx)
{
	void *entry = copy_page_at(vma, r, addr), *old;

	if (!entry)
		return false;
	/* A copy from an earlier hold the caller never took is replaced: this one is due. */
	old = xa_store(&r->copies, idx, entry, HOLD_GFP & ~__GFP_ACCOUNT);
	if (xa_is_err(old)) {
		free_entry(r, entry);
		return false;
	}
	if (old)
		free_entry(r, old);	/* ours: erased under r->hold_lock, which we hold */
	else
		atomic_long_inc(&r->ncopies);
	return true;
}

/*
 * A write fault on [start, end) ∩ @r of @vma is about to be handled (fault hook; RCU,
 * preemption disabled). Copy every held page in it first.
 */
void ckpt_hold_fault(struct vm_area_struct *vma, struct ckpt_region *r, unsigned long start,
		     unsigned long end)
{
	unsigned long *held = smp_load_acquire(&r->held);
	unsigned long addr;

	if (!held || !READ_ONCE(r->holding))
		return;
	spin_lock(&r->hold_lock);
	for (addr = start; addr < end; addr += PAGE_SIZE) {
		unsigned long idx = (addr - r->start) >> PAGE_SHIFT;

		if (!test_and_clear_bit(idx, held))
			continue;
		if (!copy_held(vma, r, addr, idx))
			atomic_inc(&r->hold_lost);
	}
	spin_unlock(&r->hold_lock);
}

/* [start, end) ∩ @r changed without a write fault (mmu notifier, non-blockable). */
void ckpt_hold_invalidate(struct ckpt_region *r, unsigned long start, unsigned long end)
{
	unsigned long *held = smp_load_acquire(&r->held);
	unsigned long idx;

	if (!held || !READ_ONCE(r->holding))
		return;
	spin_lock(&r->hold_lock);
	for (idx = (start - r->start) >> PAGE_SHIFT; idx < (end - r->start) >> PAGE_SHIFT; idx++)
		if (test_and_clear_bit(idx, held))
			atomic_inc(&r->hold_lost);
	spin_unlock(&r->hold_lock);
}

/* End @r's hold: no copy is made after this returns. */
static void hold_end(struct ckpt_region *r)
{
	spin_lock(&r->hold_lock);
	if (r->held)
		bitmap_zero(r->held, r->pages);
	WRITE_ONCE(r->holding, false);
	spin_unlock(&r->hold_lock);
}

/* Take the lowest entry of r->copies at or after *@idx: the caller owns it, NULL if none. */
static void *take_entry(struct ckpt_region *r, unsigned long *idx)
{
	void *entry;

	spin_lock(&r->hold_lock);
	entry = xa_find(&r->copies, idx, ULONG_MAX, XA_PRESENT);
	if (entry) {
		xa_erase(&r->copies, *idx);
		atomic_long_dec(&r->ncopies);
	}
	spin_unlock(&r->hold_lock);
	return entry;
}

/* Put back an entry that could not be delivered, unless a newer copy took its place. */
static void put_back_entry(struct ckpt_region *r, unsigned long idx, void *entry)
{
	void *cur;

	spin_lock(&r->hold_lock);
	cur = xa_cmpxchg(&r->copies, idx, NULL, entry, GFP_NOWAIT | __GFP_NOWARN);
	if (!cur)
		atomic_long_inc(&r->ncopies);
	spin_unlock(&r->hold_lock);
	if (cur) {
		/* A newer copy is due (it replaces ours anyway); or no memory: the page is lost. */
		if (xa_is_err(cur))
			atomic_inc(&r->hold_lost);
		free_entry(r, entry);
	}
}

/*
 * Move up to @max copies of @r to user memory (@addrs, @data from entry @done on).
 * Returns the number moved; *@err = -EFAULT if a copy could not be written (it stays, and so
 * do the ones after it). No lock is held while user memory is written: it may be a held page
 * of @r, whose fault copies it first.
 */
static long hold_take(struct ckpt_region *r, u64 __user *addrs, void __user *data, u64 done,
		      u64 max, int *err)
{
	unsigned long idx = 0;
	long n = 0;

	while (done + n < max) {
		void __user *dst = data + (done + n) * PAGE_SIZE;
		unsigned long left;
		void *entry, *src;
		u64 a;

		entry = take_entry(r, &idx);
		if (!entry)
			break;
		a = r->start + ((u64)idx << PAGE_SHIFT);
		if (xa_is_value(entry)) {
			left = clear_user(dst, PAGE_SIZE);
		} else {
			src = kmap_local_page(entry);
			left = copy_to_user(dst, src, PAGE_SIZE);
			kunmap_local(src);
		}
		if (left || put_user(a, addrs + done + n)) {
			put_back_entry(r, idx, entry);
			*err = -EFAULT;
			break;
		}
		free_entry(r, entry);
		n++;
	}
	return n;
}

long ckpt_ioc_release(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_release a;
	struct ckpt_region *r;
	bool found = false;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~CKPT_RELEASE_END) || !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	a.count = a.remaining = a.lost = 0;
	/* The caller holds s->lock (dev.c). */
	list_for_each_entry(r, &s->regions, s_node) {
		int err = 0;

		if (a.id && r->id != a.id)
			continue;
		found = true;
		if (a.flags & CKPT_RELEASE_END)
			hold_end(r);
		/*
		 * After a copy failed to reach user memory no more are taken, but every region is
		 * still ended and counted, and @count says which copies the caller did get (they
		 * are freed here: a caller that lost track of them would lose their pages).
		 */
		if (!ret)
			a.count += hold_take(r, u64_to_user_ptr(a.addrs), u64_to_user_ptr(a.data),
					     a.count, a.max, &err);
		if (err)
			ret = err;
		a.remaining += atomic_long_read(&r->ncopies);
		a.lost += atomic_read(&r->hold_lost);
		if (a.flags & CKPT_RELEASE_END)
			atomic_set(&r->hold_lost, 0);
	}
	if (!ret && !found)
		ret = -ENOENT;
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	return ret;
}

/*
 * The region is gone: unlinked from every list the hook and the notifier walk, and a grace
 * period has passed (session.c remove_regions), so nothing else touches its hold any more.
 */
void ckpt_hold_free(struct ckpt_region *r)
{
	unsigned long idx;
	void *entry;

	xa_for_each(&r->copies, idx, entry)
		free_entry(r, entry);
	xa_destroy(&r->copies);
	if (r->held) {
		kvfree(r->held);
		ckpt_user_uncharge(r->user, held_bytes(r));
	}
}

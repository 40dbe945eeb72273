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
 * The hook runs with preemption disabled (ftrace), so the copy is GFP_ATOMIC; a failed
 * allocation, or a held page changed without a fault we can copy at (unmap, MADV_DONTNEED,
 * swap-out, THP collapse: the mmu notifier sees them), counts in r->hold_lost and the library
 * drops that epoch instead of committing a page it cannot vouch for.
 *
 * Locking: r->hold_lock (spinlock, any context but hard irq) protects r->held's bits against
 * the END that clears them and orders a copy's store before END returns; it nests outside the
 * PTE lock. r->copies is an xarray with its own lock.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>
#include "ckpt.h"

void ckpt_hold_init(struct ckpt_region *r)
{
	spin_lock_init(&r->hold_lock);
	xa_init(&r->copies);
	atomic_long_set(&r->ncopies, 0);
}

/* Before a HOLD COLLECT takes anything from @r's log. Caller holds the session lock. */
int ckpt_hold_prepare(struct ckpt_region *r)
{
	unsigned long *held;

	if (r->held)
		return 0;
	held = kvzalloc(r->l0_words * sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!held)
		return -ENOMEM;
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

struct copy_pte_arg {
	struct page *dst;
	bool seen, ok;
};

/* apply_to_existing_page_range() callback: PTE lock held, *ptep not none. */
static int copy_pte(pte_t *ptep, unsigned long addr, void *data)
{
	struct copy_pte_arg *c = data;
	pte_t pte = ptep_get(ptep);

	c->seen = true;
	if (pte_present(pte) && !pte_special(pte) && pfn_valid(pte_pfn(pte))) {
		copy_highpage(c->dst, pte_page(pte));
		c->ok = true;
	} else if (pte_present(pte) && is_zero_pfn(pte_pfn(pte))) {
		clear_highpage(c->dst);	/* never written: it read as zeros */
		c->ok = true;
	}
	return 0;
}

/* Copy the page mapped at @addr of @mm into @r->copies at @idx; false if it cannot be. */
static bool copy_held(struct mm_struct *mm, struct ckpt_region *r, unsigned long addr,
		      unsigned long idx)
{
	struct copy_pte_arg c = {};
	struct page *dst;
	pmd_t *pmdp, pmd;
	bool ok;

	pmdp = ckpt_pmd_lookup(mm, addr);
	if (!pmdp)
		return false;
	pmd = READ_ONCE(*pmdp);
	/* COLLECT split held pages to PTEs; a huge or absent PMD means they were changed. */
	if (!pmd_present(pmd) || pmd_trans_huge(pmd) || pmd_devmap(pmd) || pmd_bad(pmd))
		return false;
	/* Charged to the faulting task's memory cgroup, like the page it protects. */
	dst = alloc_page(GFP_ATOMIC | __GFP_ACCOUNT | __GFP_NOWARN);
	if (!dst)
		return false;
	/*
	 * The PTE under its lock, through apply_to_existing_page_range() (pte_offset_map_lock()
	 * does not link in a module on 6.12; pgtable.c), which allocates nothing, as the fault
	 * hook's atomic context needs, and calls back only if the PTE is not none (one page: its
	 * old bug of skipping PTEs after an empty one does not matter here). The PMD is a page
	 * table and stays one while the fault holds the mmap or VMA lock: a collapse needs both
	 * for writing.
	 */
	c.dst = dst;
	ok = !apply_to_existing_page_range(mm, addr, PAGE_SIZE, copy_pte, &c);
	if (ok && !c.seen) {
		clear_highpage(dst);	/* none: zapped, it reads as zeros */
		c.ok = true;
	}
	ok = ok && c.ok;
	if (ok) {
		/* A copy from an earlier hold the caller never took is replaced: this one is due. */
		struct page *old = xa_store(&r->copies, idx, dst, GFP_ATOMIC | __GFP_NOWARN);

		if (xa_is_err(old)) {
			ok = false;
		} else if (old) {
			__free_page(old);
		} else {
			atomic_long_inc(&r->ncopies);
		}
	}
	if (!ok)
		__free_page(dst);
	return ok;
}

/*
 * A write fault on [start, end) ∩ @r is about to be handled (fault hook; RCU, preemption
 * disabled). Copy every held page in it first.
 */
void ckpt_hold_fault(struct mm_struct *mm, struct ckpt_region *r, unsigned long start,
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
		if (!copy_held(mm, r, addr, idx))
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

/*
 * Move up to @max copies of @r to user memory (@addrs, @data from entry @done on).
 * Returns the number moved or -EFAULT (the copy that failed stays).
 */
static long hold_take(struct ckpt_region *r, u64 __user *addrs, void __user *data, u64 done,
		      u64 max)
{
	unsigned long idx = 0;
	struct page *pg;
	long n = 0;

	while (done + n < max) {
		u64 a;
		void *src;
		unsigned long left;

		pg = xa_find(&r->copies, &idx, ULONG_MAX, XA_PRESENT);
		if (!pg)
			break;
		a = r->start + ((u64)idx << PAGE_SHIFT);
		src = kmap_local_page(pg);
		left = copy_to_user(data + (done + n) * PAGE_SIZE, src, PAGE_SIZE);
		kunmap_local(src);
		if (left || put_user(a, addrs + done + n))
			return -EFAULT;
		xa_erase(&r->copies, idx);
		__free_page(pg);
		atomic_long_dec(&r->ncopies);
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
		long n;

		if (a.id && r->id != a.id)
			continue;
		found = true;
		if (a.flags & CKPT_RELEASE_END)
			hold_end(r);
		n = hold_take(r, u64_to_user_ptr(a.addrs), u64_to_user_ptr(a.data), a.count, a.max);
		if (n < 0) {
			ret = n;
			break;
		}
		a.count += n;
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

/* The region is gone (no hook or notifier can see it any more): free its hold. */
void ckpt_hold_free(struct ckpt_region *r)
{
	unsigned long idx;
	struct page *pg;

	xa_for_each(&r->copies, idx, pg)
		__free_page(pg);
	xa_destroy(&r->copies);
	kvfree(r->held);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Write-protection of tracked pages and the TLB flush, with the kernel's inline page-table
 * helpers (walk_page_range and change_protection are not exported).
 *
 * Callers hold the mmap lock for writing (REGISTER, COLLECT; see fault.c). With it held no page
 * table can be freed or collapsed under us; PTEs still change (faults, reclaim) and are
 * changed under the PTE lock, as here.
 *
 * Only the write bit is cleared: the hardware dirty bit stays, reclaim of swap-cache pages
 * relies on it.
 *
 * THP: a huge PMD is split to 4 KiB PTEs with get_user_pages_remote(FOLL_SPLIT_PMD), as
 * uprobes does (__split_huge_pmd is not exported). The split keeps each PTE's write bit, so it
 * is not a write; the notifier ignores the CLEAR event it raises (ckpt_mm.splitter).
 *
 * TLB: flush_tlb_mm_range() is not exported either. ckpt_flush_tlb_pages() bumps the mm's TLB
 * generation (CPUs that switch to the mm later see it and flush), then IPIs the CPUs in
 * mm_cpumask(mm) that are not in lazy TLB mode. Each drops the pages COLLECT protected one by
 * one with __flush_tlb_one_user() (paravirt, exported through pv_ops; it also handles the PTI
 * user ASID), or, above tlb_flush_pages pages or when nothing better is known (REGISTER),
 * everything with __flush_tlb_all(). One flush per COLLECT call, not per page.
 *
 * Why per page: a full flush makes the process refill every TLB entry it had, a cost that
 * grows with its working set, not with the pages checkpointed. Under QEMU's TCG, whose
 * software TLB holds a whole working set, one full flush cost a loop sweeping 256 MiB about
 * 20 ms of refills; at 10 checkpoints/s that was a fifth of its time (design-tracking.md
 * section 2). The kernel's own range flush goes global above 33 pages
 * (tlb_single_page_flush_ceiling), tuned for hardware TLBs; tlb_flush_pages is ours.
 */
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/pgtable.h>
#include <linux/smp.h>
#include <asm/tlbflush.h>
#ifdef CONFIG_PARAVIRT
#include <asm/paravirt.h>
#endif
#include "ckpt.h"

bool ckpt_vma_supported(struct vm_area_struct *vma)
{
	return !(vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_IO | VM_PFNMAP | VM_MIXEDMAP)) &&
	       !is_vm_hugetlb_page(vma);
}

/* The PMD entry covering @addr, or NULL; caller holds the mmap lock. */
pmd_t *ckpt_pmd_lookup(struct mm_struct *mm, unsigned long addr)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;
	pud_t *pud;

	if (pgd_none(*pgd) || pgd_bad(*pgd))
		return NULL;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d))
		return NULL;
	pud = pud_offset(p4d, addr);
	if (pud_none(*pud) || !pud_present(*pud) || pud_trans_huge(*pud) || pud_bad(*pud))
		return NULL;
	return pmd_offset(pud, addr);
}

static struct vm_area_struct *wp_vma(struct ckpt_wp *w, unsigned long addr)
{
	if (!w->vma || addr < w->vma->vm_start || addr >= w->vma->vm_end) {
		w->vma = find_vma(w->mm, addr);
		if (w->vma && addr < w->vma->vm_start)
			w->vma = NULL;
	}
	return w->vma;
}

/* Split the huge PMD mapping @addr. Returns false if it could not be split. */
static bool split_pmd(struct ckpt_wp *w, unsigned long addr)
{
	long n;

	mutex_lock(&w->cm->split_lock);
	WRITE_ONCE(w->cm->splitter, current);
	n = get_user_pages_remote(w->mm, addr, 1, FOLL_SPLIT_PMD | FOLL_FORCE, NULL, NULL, NULL);
	WRITE_ONCE(w->cm->splitter, NULL);
	mutex_unlock(&w->cm->split_lock);
	if (n == 1)
		w->splits++;
	return n == 1;
}

/*
 * Page-table mappings of a large folio: as a whole (PMD) plus each subpage's PTEs. 6.1's
 * folio_mapcount() is not exported; this is what it adds up. A PTE-mapped anonymous THP holds
 * one folio reference per mapping (__split_huge_pmd_locked adds HPAGE_PMD_NR - 1).
 */
static long large_mapcount(struct folio *folio)
{
	long i, n = folio_entire_mapcount(folio);

	for (i = 0; i < folio_nr_pages(folio); i++)
		n += atomic_read(&folio_page(folio, i)->_mapcount) + 1;
	return n;
}

/*
 * A page the kernel may write without a fault: pinned for DMA (FOLL_PIN), or holding more
 * references than mappings (FOLL_GET users such as 6.1's O_DIRECT). For a large folio the
 * references are the folio's, so an I/O into any of its pages counts for all of them: more
 * over-reporting, never a missed write. Such pages stay logged while the condition lasts.
 * @last caches the verdict for a large folio across one wp_pmd() batch (its pages are
 * usually under one PMD, and the mapcount sum costs a read per subpage).
 */
struct pin_cache {
	struct folio *folio;
	bool pinned;
};

static bool pte_maybe_pinned(pte_t pte, struct pin_cache *last)
{
	struct folio *folio;

	if (pte_special(pte) || !pfn_valid(pte_pfn(pte)))
		return false;
	folio = page_folio(pte_page(pte));
	if (folio_maybe_dma_pinned(folio))
		return true;
	if (folio_test_large(folio)) {
		if (last->folio != folio) {
			/*
			 * Expected: one per mapping, one per page in the swap cache, one of the
			 * per-CPU LRU-add batch while not on an LRU list yet.
			 */
			long extra = !folio_test_lru(folio) +
				     (folio_test_swapcache(folio) ? folio_nr_pages(folio) : 0);

			last->folio = folio;
			/*
			 * Fast path, exact: an anonymous THP is born fully mapped, and in 6.1
			 * unmapping any subpage queues it for deferred split. Off that queue
			 * every subpage is still mapped, so the mappings are at least
			 * folio_nr_pages() and a refcount within that leaves no room for a
			 * get_user_pages() reference. Only the rest (shared after fork, partly
			 * unmapped, references beyond) pays the walk over the subpages.
			 */
			if (list_empty(page_deferred_list(&folio->page)) &&
			    folio_ref_count(folio) <= folio_nr_pages(folio) + extra)
				last->pinned = false;
			else
				last->pinned = folio_ref_count(folio) >
					       large_mapcount(folio) + extra;
		}
		return last->pinned;
	}
	/*
	 * Expected references: one per mapping, the swap cache's, and the per-CPU LRU-add batch's
	 * while the folio is not on an LRU list yet. Anything beyond may be a get_user_pages()
	 * reference of an I/O in flight.
	 */
	return folio_ref_count(folio) > page_mapcount(&folio->page) +
					  !!folio_test_swapcache(folio) + !folio_test_lru(folio);
}

/*
 * Write-protect the present PTEs of the pages @addr[0..n) (ascending, all under one PMD).
 * With @check_pins, a page that may be written by DMA is passed to @sticky. Returns false
 * if the PMD could not be brought to 4 KiB PTEs (THP migration entry, split failure): the
 * caller keeps all @n pages logged.
 */
static bool wp_pmd(struct ckpt_wp *w, const u64 *addr, unsigned long n, bool check_pins,
		   void (*sticky)(void *arg, unsigned long addr), void *arg)
{
	unsigned long base = addr[0] & PMD_MASK, i;
	struct pin_cache last = {};
	pmd_t *pmdp, pmd;
	pte_t *start_pte;
	spinlock_t *ptl;

again:
	pmdp = ckpt_pmd_lookup(w->mm, base);
	if (!pmdp)
		return true;	/* nothing mapped */
	pmd = READ_ONCE(*pmdp);
	if (pmd_none(pmd))
		return true;
	if (pmd_trans_huge(pmd) || pmd_devmap(pmd)) {
		if (!split_pmd(w, addr[0]))
			return false;
		goto again;
	}
	if (!pmd_present(pmd) || pmd_bad(pmd))
		return false;	/* THP migration entry or garbage: keep logged */

	start_pte = pte_offset_map_lock(w->mm, pmdp, base, &ptl);
	for (i = 0; i < n; i++) {
		pte_t *ptep = start_pte + ((addr[i] - base) >> PAGE_SHIFT);
		pte_t pte = ptep_get(ptep);

		if (!pte_present(pte))
			continue;	/* none/swap: a write faults anyway */
		if (pte_write(pte)) {
			ptep_set_wrprotect(w->mm, addr[i], ptep);
			w->flush = true;
		}
		if (check_pins && pte_maybe_pinned(pte, &last))
			sticky(arg, addr[i]);
	}
	pte_unmap_unlock(start_pte, ptl);
	return true;
}

static void no_sticky(void *arg, unsigned long addr)
{
}

/* Protect all of [start, end) (REGISTER). */
void ckpt_wp_range(struct ckpt_wp *w, unsigned long start, unsigned long end)
{
	u64 batch[64];

	while (start < end) {
		unsigned long next = min(pmd_addr_end(start, end), end);
		pmd_t *pmdp = ckpt_pmd_lookup(w->mm, start);

		/* Nothing mapped under this PMD (sparse or reserved memory): skip it whole. */
		if (!pmdp || pmd_none(READ_ONCE(*pmdp))) {
			start = next;
			continue;
		}
		/* One PMD at a time, in batches of 64 PTEs. */
		while (start < next) {
			unsigned long n = 0;

			while (start < next && n < ARRAY_SIZE(batch)) {
				batch[n++] = start;
				start += PAGE_SIZE;
			}
			wp_pmd(w, batch, n, false, no_sticky, NULL);
		}
		cond_resched();
	}
}

/*
 * Protect reported pages (COLLECT): @addr[0..n) ascending. A page that must stay logged is
 * passed to @sticky: outside a supported mapping (unmapped, or replaced by a shared/special
 * one), under a PMD that would not split, or possibly written by DMA without a fault.
 */
void ckpt_wp_pages(struct ckpt_wp *w, const u64 *addr, unsigned long n,
		   void (*sticky)(void *arg, unsigned long addr), void *arg)
{
	unsigned long i = 0;

	while (i < n) {
		struct vm_area_struct *vma = wp_vma(w, addr[i]);
		unsigned long j = i + 1, k;

		if (!vma || !ckpt_vma_supported(vma)) {
			sticky(arg, addr[i++]);
			continue;
		}
		/* The run of pages under the same PMD and inside this vma. */
		while (j < n && (addr[j] & PMD_MASK) == (addr[i] & PMD_MASK) && addr[j] < vma->vm_end)
			j++;
		if (!wp_pmd(w, addr + i, j - i, true, sticky, arg))
			for (k = i; k < j; k++)
				sticky(arg, addr[k]);
		i = j;
	}
}

/* Which pages to drop from the TLB; NULL @addr and @bm: everything. */
struct flush_arg {
	const u64 *addr;		/* @n page addresses */
	unsigned long n;
	const unsigned long *bm;	/* or: bit i of @bm[0..@words) is page @base + i */
	unsigned long words, base;
};

static unsigned int tlb_flush_pages = 1024;
module_param(tlb_flush_pages, uint, 0644);
MODULE_PARM_DESC(tlb_flush_pages,
		 "flush at most this many pages one by one per COLLECT call, more with a full TLB flush");

static void flush_local(void *data)
{
#ifdef CONFIG_PARAVIRT
	const struct flush_arg *f = data;
	unsigned long i;

	if (f->addr) {
		for (i = 0; i < f->n; i++)
			__flush_tlb_one_user(f->addr[i]);
		return;
	}
	if (f->bm) {
		for_each_set_bit(i, f->bm, f->words * BITS_PER_LONG)
			__flush_tlb_one_user(f->base + (i << PAGE_SHIFT));
		return;
	}
#endif
	__flush_tlb_all();
}

/*
 * cpu_tlbstate_shared is exported but declared under #ifndef MODULE in asm/tlbflush.h; its
 * type in 6.1 is struct tlb_state_shared { bool is_lazy; }. A CPU in lazy TLB mode (running a
 * kernel thread on this mm's page tables) is skipped, as native flush_tlb_multi() does: it
 * compares the mm's TLB generation when it switches back and flushes then.
 */
struct ckpt_tlb_state_shared {
	bool is_lazy;
};
DECLARE_PER_CPU_SHARED_ALIGNED(struct ckpt_tlb_state_shared, cpu_tlbstate_shared);

static bool cpu_not_lazy(int cpu, void *unused)
{
	return !per_cpu(cpu_tlbstate_shared.is_lazy, cpu);
}

static void flush_mm(struct mm_struct *mm, struct flush_arg *f)
{
	/*
	 * inc_mm_tlb_gen() is hidden from modules (#ifndef MODULE in asm/tlbflush.h); this is its
	 * body. The full barrier orders the PTE writes before the read of mm_cpumask, which is
	 * what switch_mm_irqs_off() pairs with. The bump is also what covers a CPU that is not
	 * running the mm now but kept its entries under a PCID: it flushes when it switches back.
	 */
	atomic64_inc_return(&mm->context.tlb_gen);
	on_each_cpu_cond_mask(cpu_not_lazy, flush_local, f, true, mm_cpumask(mm));
}

void ckpt_flush_tlb_mm(struct mm_struct *mm)
{
	struct flush_arg f = {};

	flush_mm(mm, &f);
}

void ckpt_flush_tlb_pages(struct mm_struct *mm, const u64 *addr, unsigned long n)
{
	struct flush_arg f = { .addr = addr, .n = n };

	if (n > READ_ONCE(tlb_flush_pages))
		f.addr = NULL;
	flush_mm(mm, &f);
}

void ckpt_flush_tlb_bitmap(struct mm_struct *mm, unsigned long base, const unsigned long *bm,
			   unsigned long words, unsigned long n)
{
	struct flush_arg f = { .bm = bm, .words = words, .base = base };

	if (n > READ_ONCE(tlb_flush_pages))
		f.bm = NULL;
	flush_mm(mm, &f);
}

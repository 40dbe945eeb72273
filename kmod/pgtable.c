// SPDX-License-Identifier: GPL-2.0
/*
 * Write-protection of tracked pages and the TLB flush (walk_page_range and change_protection
 * are not exported).
 *
 * Callers hold the mmap lock for writing (REGISTER, COLLECT; see fault.c), and every VMA whose
 * page tables are changed here is write-locked too (ckpt_vma_start_write: with per-VMA locks,
 * 6.4+, faults run without the mmap lock). With both held no fault runs in the VMA and no page
 * table can be freed or collapsed under us; PTEs still change (reclaim, migration) and are
 * changed under the PTE lock, as here.
 *
 * PTEs are reached through apply_to_page_range(), exported on both kernels: its callback runs
 * for each PTE of the range with the PTE lock held (pte_offset_map_lock() itself does not link
 * in a module from 6.5 on: __pte_offset_map_lock is not exported). It WARNs and fails on a huge
 * PMD or PUD and on a bad PMD, so a PMD is looked at first (below), and the walk is only
 * started on a page table: under the locks above a page table cannot become a huge PMD (only a
 * collapse does that, and it takes the mmap lock for writing), while a huge PMD can be split
 * or migrated by rmap at any time, which is why huge ones are split first. On an existing page
 * table it allocates nothing. Not apply_to_existing_page_range(), which skips empty PTEs: until
 * "mm: fix apply_to_existing_page_range()" (a995199, 2025, in the stable 6.1 and 6.12 series)
 * it stopped calling back after the first empty one, and a module cannot tell which it has.
 *
 * Only the write bit is cleared: the hardware dirty bit stays, reclaim of swap-cache pages
 * relies on it.
 *
 * Non-present PTEs that come back writable without a fault are made read-only too, as
 * change_pte_range() does: a writable migration entry (remove_migration_pte() restores the
 * write bit once the page is copied; a page that was being migrated, by compaction, NUMA
 * balancing, move_pages(2) or soft offline, while COLLECT took it would be writable again
 * and every later write unseen), and writable device-private/device-exclusive entries.
 *
 * The TLB flush runs after the mmap lock is dropped (the IPIs wait for every CPU asked).
 * Between the PTE change and the flush other CPUs may still hold writable TLB entries of a
 * read-only PTE. Paths that decide from the PTE alone under its lock, without our mmap lock
 * (KSM's write_protect_page(), pte_accessible() in ptep_clear_flush(), tlb_finish_mmu()'s
 * nested-flush check), ask mm_tlb_flush_pending() whether such entries may exist; so the
 * first PTE change is preceded by inc_tlb_flush_pending() and the flush (ckpt_flush_tlb_*())
 * ends with dec_tlb_flush_pending(), as change_protection() brackets its own flush. Without
 * it KSM could compare a page, see it read-only and clean, and merge it while a stale entry
 * still let a thread write the old copy: a write lost to the process itself, not just to us.
 *
 * THP: a huge PMD is split to 4 KiB PTEs with get_user_pages_remote(FOLL_SPLIT_PMD), as
 * uprobes does (__split_huge_pmd is not exported). The split keeps each PTE's write bit, so it
 * is not a write; the notifier ignores the CLEAR event it raises (ckpt_mm.splitter).
 *
 * TLB: flush_tlb_mm_range() is not exported either, nor is anything that bumps an mm's TLB
 * generation (inc_mm_tlb_gen() is hidden from modules), so the module flushes with what is
 * exported, on_each_cpu_cond_mask() and the local flushes, and touches no private x86 state.
 * A CPU running a thread of the mm (current->mm) drops the pages COLLECT protected one by one
 * with __flush_tlb_one_user() (paravirt, exported through pv_ops; it also handles the PTI user
 * ASID), or, above tlb_flush_pages pages or when nothing better is known (REGISTER), everything
 * with __flush_tlb_all(). Any other CPU that may hold entries of the mm flushes everything:
 * without PCID those are the CPUs in mm_cpumask(mm) (a kernel thread borrowing the mm lazily,
 * a CPU switching away); with PCID a CPU keeps an mm's entries under its ASID after switching
 * away and trusts them again on return unless the mm's TLB generation moved, which a module
 * cannot move — so with PCID every online CPU is asked, and those not running the mm flush
 * everything (__flush_tlb_all() drops every PCID's entries). One flush per COLLECT call, not
 * per page.
 *
 * Why per page: a full flush makes the process refill every TLB entry it had, a cost that
 * grows with its working set, not with the pages checkpointed. Under QEMU's TCG, whose
 * software TLB holds a whole working set, one full flush cost a loop sweeping 256 MiB about
 * 20 ms of refills; at 10 checkpoints/s that was a fifth of its time (design-tracking.md
 * section 2). The kernel's own range flush goes global above 33 pages
 * (tlb_single_page_flush_ceiling), tuned for hardware TLBs; tlb_flush_pages is ours.
 * The price of not bumping the generation: with PCID, a full flush on CPUs that run other
 * processes at the time of a COLLECT (the kernel would flush them later, on switching back).
 */
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/mm_inline.h>
#include <linux/pgtable.h>
#include <linux/smp.h>
#include <linux/swapops.h>
#include <asm/cpufeature.h>
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

/* The VMA holding @addr, write-locked (see the top of this file), or NULL. */
static struct vm_area_struct *wp_vma(struct ckpt_wp *w, unsigned long addr)
{
	if (!w->vma || addr < w->vma->vm_start || addr >= w->vma->vm_end) {
		w->vma = find_vma(w->mm, addr);
		if (w->vma && addr < w->vma->vm_start)
			w->vma = NULL;
		if (w->vma)
			ckpt_vma_start_write(w->vma);
	}
	return w->vma;
}

/* Split the huge PMD mapping @addr. Returns false if it could not be split. */
static bool split_pmd(struct ckpt_wp *w, unsigned long addr)
{
	long n;

	mutex_lock(&w->cm->split_lock);
	WRITE_ONCE(w->cm->splitter, current);
	n = ckpt_gup_remote(w->mm, addr, 1, FOLL_SPLIT_PMD | FOLL_FORCE);
	WRITE_ONCE(w->cm->splitter, NULL);
	mutex_unlock(&w->cm->split_lock);
	if (n == 1)
		w->splits++;
	return n == 1;
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
			 * Fast path, exact: when every subpage is known to be still mapped
			 * (compat.h), the mappings are at least folio_nr_pages() and a
			 * refcount within that leaves no room for a get_user_pages()
			 * reference. Only the rest (shared after fork, partly unmapped,
			 * references beyond) pays the count (a walk over the subpages on 6.1).
			 */
			if (ckpt_folio_surely_fully_mapped(folio) &&
			    folio_ref_count(folio) <= folio_nr_pages(folio) + extra)
				last->pinned = false;
			else
				last->pinned = folio_ref_count(folio) >
					       ckpt_folio_mapcount(folio) + extra;
		}
		return last->pinned;
	}
	/*
	 * Expected references: one per mapping, the swap cache's, and the per-CPU LRU-add batch's
	 * while the folio is not on an LRU list yet. Anything beyond may be a get_user_pages()
	 * reference of an I/O in flight.
	 */
	return folio_ref_count(folio) > ckpt_folio_mapcount(folio) +
					  !!folio_test_swapcache(folio) + !folio_test_lru(folio);
}

/* One walk of apply_to_page_range() under one PMD. */
struct wp_walk {
	struct ckpt_wp *w;
	const u64 *addr;	/* the pages to protect, ascending; NULL: every page walked */
	unsigned long n, i;	/* @addr[@i] is the next one not yet passed */
	bool check_pins;
	void (*sticky)(void *arg, unsigned long addr);
	void *arg;
	struct pin_cache last;
};

/*
 * Under the PTE lock: a non-present @pte that would become a writable PTE without a write
 * fault is made read-only, as change_pte_range() does. Returns true if it changed.
 */
static bool wp_swap_pte(struct mm_struct *mm, unsigned long addr, pte_t *ptep, pte_t pte)
{
	swp_entry_t entry;
	pte_t newpte;

	if (pte_none(pte) || !is_swap_pte(pte))
		return false;
	entry = pte_to_swp_entry(pte);
	if (is_writable_migration_entry(entry)) {
		/* Writable implies exclusive for anon (try_to_migrate_one()): keep that. */
		if (PageAnon(pfn_swap_entry_to_page(entry)))
			entry = make_readable_exclusive_migration_entry(swp_offset(entry));
		else
			entry = make_readable_migration_entry(swp_offset(entry));
	} else if (is_writable_device_private_entry(entry)) {
		entry = make_readable_device_private_entry(swp_offset(entry));
	} else if (is_writable_device_exclusive_entry(entry)) {
		entry = make_readable_device_exclusive_entry(swp_offset(entry));
	} else {
		return false;	/* plain swap, readable entries, markers: a write faults */
	}
	newpte = swp_entry_to_pte(entry);
	if (pte_swp_soft_dirty(pte))
		newpte = pte_swp_mksoft_dirty(newpte);
	if (pte_swp_uffd_wp(pte))
		newpte = pte_swp_mkuffd_wp(newpte);
	set_pte_at(mm, addr, ptep, newpte);
	return true;
}

/* Before the first PTE change of a REGISTER/COLLECT step; see the top of this file. */
static void wp_changing(struct ckpt_wp *w)
{
	if (!w->flush) {
		inc_tlb_flush_pending(w->mm);
		w->flush = true;
	}
}

/* apply_to_page_range() callback: PTE lock held. */
static int wp_pte(pte_t *ptep, unsigned long a, void *data)
{
	struct wp_walk *ww = data;
	pte_t pte;

	if (ww->addr) {
		while (ww->i < ww->n && ww->addr[ww->i] < a)
			ww->i++;	/* cannot happen: every PTE of the range is visited */
		if (ww->i == ww->n || ww->addr[ww->i] != a)
			return 0;
		ww->i++;
	}
	pte = ptep_get(ptep);
	if (!pte_present(pte)) {
		/* Writable migration/device entries made read-only; in no TLB: no flush. */
		wp_swap_pte(ww->w->mm, a, ptep, pte);
		return 0;	/* none/swap: a write faults */
	}
	if (pte_write(pte)) {
		wp_changing(ww->w);
		ptep_set_wrprotect(ww->w->mm, a, ptep);
	}
	if (ww->check_pins && pte_maybe_pinned(pte, &ww->last))
		ww->sticky(ww->arg, a);
	return 0;
}

/*
 * Write-protect the present PTEs of [start, end) (all under one PMD), or with @ww->addr only
 * those of the pages listed there. With @ww->check_pins, a page that may be written by DMA is
 * passed to @ww->sticky. Returns false if the PMD could not be brought to 4 KiB PTEs (THP
 * migration entry, split failure, a huge PMD still there after one split): the caller keeps
 * all the pages logged. Never loops: one split per call.
 */
static bool wp_pmd(struct wp_walk *ww, unsigned long start, unsigned long end)
{
	struct ckpt_wp *w = ww->w;
	bool split = false;
	pmd_t *pmdp, pmd;

again:
	pmdp = ckpt_pmd_lookup(w->mm, start);
	if (!pmdp)
		return true;	/* nothing mapped */
	pmd = READ_ONCE(*pmdp);
	if (pmd_none(pmd))
		return true;
	if (pmd_devmap(pmd) && !pmd_write(pmd))
		/*
		 * A read-only device PMD: a private mapping of a file on a DAX file system (such
		 * a PMD is never writable there; a write falls back to 4 KiB and copies the page
		 * on write, a fault we log). GUP's FOLL_SPLIT_PMD is not meant for it
		 * (follow_devmap_pmd()): nothing to protect, leave it.
		 */
		return true;
	if (pmd_trans_huge(pmd) || pmd_devmap(pmd)) {
		if (split || !split_pmd(w, start))
			return false;
		split = true;
		goto again;
	}
	if (!pmd_present(pmd) || pmd_bad(pmd))
		return false;	/* THP migration entry or garbage: keep logged */
	/* A page table now, and it stays one (see the top of this file). */
	return !apply_to_page_range(w->mm, start, end - start, wp_pte, ww);
}

/*
 * Protect all of [start, end) (REGISTER). A page that could not be protected (its PMD would
 * not split, a THP under migration) is passed to @sticky: the caller logs it, so the first
 * COLLECT reports it and tries again.
 */
void ckpt_wp_range(struct ckpt_wp *w, unsigned long start, unsigned long end,
		   void (*sticky)(void *arg, unsigned long addr), void *arg)
{
	struct wp_walk ww = { .w = w };
	struct vm_area_struct *vma;
	unsigned long a;

	/* Every VMA of the range write-locked before any PTE is touched. */
	for (a = start; a < end; a = vma->vm_end) {
		vma = find_vma(w->mm, a);
		if (!vma || vma->vm_start >= end)
			break;
		ckpt_vma_start_write(vma);
	}
	while (start < end) {
		unsigned long next = min(pmd_addr_end(start, end), end), a;

		if (!wp_pmd(&ww, start, next))
			for (a = start; a < next; a += PAGE_SIZE)
				sticky(arg, a);
		start = next;
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
		struct wp_walk ww = { .w = w, .check_pins = true, .sticky = sticky, .arg = arg };

		if (!vma || !ckpt_vma_supported(vma)) {
			sticky(arg, addr[i++]);
			continue;
		}
		/* The run of pages under the same PMD and inside this vma. */
		while (j < n && (addr[j] & PMD_MASK) == (addr[i] & PMD_MASK) && addr[j] < vma->vm_end)
			j++;
		ww.addr = addr + i;
		ww.n = j - i;
		if (!wp_pmd(&ww, addr[i], addr[j - 1] + PAGE_SIZE))
			for (k = i; k < j; k++)
				sticky(arg, addr[k]);
		i = j;
	}
}

/* Which pages to drop from the TLB; NULL @addr and @bm: everything. */
struct flush_arg {
	struct mm_struct *mm;
	const u64 *addr;		/* @n page addresses */
	unsigned long n;
	const unsigned long *bm;	/* or: bit i of @bm[0..@words) is page @base + i */
	unsigned long words, base;
};

static unsigned int tlb_flush_pages = 1024;
module_param(tlb_flush_pages, uint, 0644);
MODULE_PARM_DESC(tlb_flush_pages,
		 "flush at most this many pages one by one per COLLECT call, more with a full TLB flush");

/* IPI callback (interrupts off, so current and its mm cannot change under us). */
static void flush_local(void *data)
{
	const struct flush_arg *f = data;
#ifdef CONFIG_PARAVIRT
	unsigned long i;

	/* A thread of the mm runs here, so its page tables are the loaded ones. */
	if (current->mm == f->mm && f->addr) {
		for (i = 0; i < f->n; i++)
			__flush_tlb_one_user(f->addr[i]);
		return;
	}
	if (current->mm == f->mm && f->bm) {
		for_each_set_bit(i, f->bm, f->words * BITS_PER_LONG)
			__flush_tlb_one_user(f->base + (i << PAGE_SHIFT));
		return;
	}
#endif
	__flush_tlb_all();
}

static void flush_mm(struct ckpt_wp *w, struct flush_arg *f)
{
	struct mm_struct *mm = w->mm;

	if (!w->flush)
		return;	/* no PTE lost its write bit */
	/*
	 * The PTE writes are ordered before the IPIs by smp_call_function_many_cond()'s own
	 * barriers, as for the kernel's flushes. See the top of this file for the CPUs asked.
	 */
	f->mm = mm;
	on_each_cpu_cond_mask(NULL, flush_local, f, true,
			      boot_cpu_has(X86_FEATURE_PCID) ? cpu_online_mask : mm_cpumask(mm));
	/* Paired with wp_changing(): no stale writable TLB entry is left. */
	dec_tlb_flush_pending(mm);
	w->flush = false;
}

/*
 * The flush after REGISTER or a COLLECT step, with the mmap lock dropped. Each one must follow
 * the protection it covers: it also ends the flush the protection marked pending.
 */

void ckpt_flush_tlb_mm(struct ckpt_wp *w)
{
	struct flush_arg f = {};

	flush_mm(w, &f);
}

void ckpt_flush_tlb_pages(struct ckpt_wp *w, const u64 *addr, unsigned long n)
{
	struct flush_arg f = { .addr = addr, .n = n };

	if (n > READ_ONCE(tlb_flush_pages))
		f.addr = NULL;
	flush_mm(w, &f);
}

void ckpt_flush_tlb_bitmap(struct ckpt_wp *w, unsigned long base, const unsigned long *bm,
			   unsigned long words, unsigned long n)
{
	struct flush_arg f = { .bm = bm, .words = words, .base = base };

	if (n > READ_ONCE(tlb_flush_pages))
		f.bm = NULL;
	flush_mm(w, &f);
}

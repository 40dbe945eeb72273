// SPDX-License-Identifier: GPL-2.0
/*
 * The write-fault hook: a kretprobe on handle_mm_fault(vma, address, flags, regs), which sees
 * CPU faults and the faults get_user_pages() takes for the kernel's own writes (read(2) into
 * tracked memory, process_vm_writev, O_DIRECT).
 *
 * The page is logged when handle_mm_fault() *returns*, not when it is entered. Logging at
 * entry races with COLLECT: COLLECT could take the bit while the PTE is still read-only, then
 * the fault makes the PTE writable and every later write of the page goes unseen. Logged at
 * return, the bit is set after the PTE became writable and before the faulting write can run,
 * so a COLLECT either sees the bit or finds the PTE read-only... and write-protects it again.
 *
 * The entry handler is the cheap filter: write faults of an mm with regions, inside a region.
 * Everything else returns non-zero so no return hook is installed. The probe is disabled while
 * no region exists anywhere, so processes that track nothing pay nothing.
 *
 * A THP fault on an empty PMD, or reuse of an exclusive read-only huge PMD, maps 2 MiB
 * writable at once: the return handler then logs the whole 2 MiB extent (the next COLLECT
 * splits it and protects 4 KiB pages again). When the fault dropped the mmap lock
 * (VM_FAULT_RETRY/COMPLETED) the page tables cannot be looked at and the entry-time guess is
 * used instead.
 *
 * Lost instances (kretprobe nmissed: too many faults in flight, or a probe recursion) are
 * turned into "every page dirty" by COLLECT, see ckpt_fault_missed().
 */
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/kprobes.h>
#include <linux/mutex.h>
#include <linux/pgtable.h>
#include "ckpt.h"

struct fault_data {
	struct mm_struct *mm;
	unsigned long addr;
	bool maybe_huge;	/* the fault may map a writable PMD */
};

/* The PMD entry covering @addr, or NULL; caller holds the mmap lock. */
static pmd_t *lookup_pmd(struct mm_struct *mm, unsigned long addr)
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

static bool fault_maybe_huge(struct vm_area_struct *vma, unsigned long addr)
{
	unsigned long haddr = addr & HPAGE_PMD_MASK;
	pmd_t *pmdp, pmd;

	if (!vma_is_anonymous(vma) || (vma->vm_flags & VM_NOHUGEPAGE) ||
	    haddr < vma->vm_start || haddr + HPAGE_PMD_SIZE > vma->vm_end)
		return false;
	pmdp = lookup_pmd(vma->vm_mm, addr);
	if (!pmdp)
		return true;	/* no PMD table yet: a huge fault can fill it */
	pmd = READ_ONCE(*pmdp);
	return pmd_none(pmd) || pmd_trans_huge(pmd);
}

static bool pmd_huge_writable(struct mm_struct *mm, unsigned long addr)
{
	pmd_t *pmdp = lookup_pmd(mm, addr);
	pmd_t pmd;

	if (!pmdp)
		return false;
	pmd = READ_ONCE(*pmdp);
	return pmd_trans_huge(pmd) && pmd_write(pmd);
}

static int fault_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct vm_area_struct *vma = (struct vm_area_struct *)regs->di;
	unsigned long addr = regs->si;
	unsigned int flags = regs->dx;
	struct fault_data *d = (struct fault_data *)ri->data;
	struct ckpt_mm *cm;
	bool hit;

	if (!(flags & FAULT_FLAG_WRITE))
		return 1;
	rcu_read_lock();
	cm = ckpt_mm_lookup(vma->vm_mm);
	hit = cm && ckpt_mm_tracks(cm, addr);
	rcu_read_unlock();
	if (!hit)
		return 1;
	/* The caller holds the mmap lock here: the page tables are stable enough to peek. */
	d->mm = vma->vm_mm;
	d->addr = addr & PAGE_MASK;
	d->maybe_huge = fault_maybe_huge(vma, addr);
	return 0;
}

static int fault_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct fault_data *d = (struct fault_data *)ri->data;
	vm_fault_t ret = regs_return_value(regs);
	bool unlocked = ret & (VM_FAULT_RETRY | VM_FAULT_COMPLETED);
	unsigned long start = d->addr, end = d->addr + PAGE_SIZE;
	struct ckpt_mm *cm;

	if ((ret & VM_FAULT_ERROR) && !unlocked)
		return 0;	/* nothing was mapped */
	/*
	 * With the mmap lock still held (no RETRY/COMPLETED) the PMD tells whether 2 MiB became
	 * writable. The faulting task keeps the mm alive.
	 */
	if (d->maybe_huge && (unlocked || pmd_huge_writable(d->mm, d->addr))) {
		start = d->addr & HPAGE_PMD_MASK;
		end = start + HPAGE_PMD_SIZE;
	}
	rcu_read_lock();
	cm = ckpt_mm_lookup(d->mm);
	if (cm)
		ckpt_mm_log(cm, start, end, true);
	rcu_read_unlock();
	return 0;
}

static struct kretprobe fault_krp = {
	.kp.symbol_name = "handle_mm_fault",
	.kp.flags = KPROBE_FLAG_DISABLED,
	.entry_handler = fault_entry,
	.handler = fault_return,
	.data_size = sizeof(struct fault_data),
	/* Faults sleep (I/O, locks): many can be in flight. A miss is not silent, see above. */
	.maxactive = 4096,
};

static DEFINE_MUTEX(hook_lock);	/* protects hook_users and the probe's enabled state */
static unsigned long hook_users;	/* regions that exist, all sessions */

void ckpt_fault_get(void)
{
	mutex_lock(&hook_lock);
	if (!hook_users++)
		WARN_ON_ONCE(enable_kretprobe(&fault_krp));
	mutex_unlock(&hook_lock);
}

void ckpt_fault_put(void)
{
	mutex_lock(&hook_lock);
	if (!--hook_users)
		disable_kretprobe(&fault_krp);
	mutex_unlock(&hook_lock);
}

int ckpt_fault_missed(void)
{
	return READ_ONCE(fault_krp.nmissed) + READ_ONCE(fault_krp.kp.nmissed);
}

int ckpt_fault_init(void)
{
	int ret = register_kretprobe(&fault_krp);

	if (ret)
		pr_err("ckpt: cannot hook handle_mm_fault: %d\n", ret);
	return ret;
}

void ckpt_fault_exit(void)
{
	unregister_kretprobe(&fault_krp);
}

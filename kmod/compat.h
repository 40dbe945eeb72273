/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the kernels ckpt.ko builds for — Debian 12's 6.1 and Debian's 6.12
 * (trixie, bookworm-backports) — and only that. Each helper has one meaning on both; the rest
 * of the module uses no version test. Thresholds are the releases where the interface changed
 * upstream; only 6.1 and 6.12 are built and tested (README.md, "Supported kernels").
 */
#ifndef CKPT_COMPAT_H
#define CKPT_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/ftrace.h>
#include <linux/sched/signal.h>
#if __has_include(<linux/io_uring/cmd.h>)
#include <linux/io_uring/cmd.h>		/* 6.7+: struct io_uring_cmd, io_uring_cmd_done() */
#else
#include <linux/io_uring.h>
#endif
#if __has_include(<linux/rseq.h>)
#include <linux/rseq.h>			/* rseq_set_notify_resume() left sched.h */
#endif

/*
 * Argument @n (0-based) of the function an ftrace callback interrupted. 6.1's struct
 * ftrace_regs is a pt_regs; later ones hide it behind accessors.
 */
#ifdef ftrace_regs_get_argument
#define ckpt_fregs_arg(fregs, n)	ftrace_regs_get_argument(fregs, n)
#else
#define ckpt_fregs_arg(fregs, n)	regs_get_kernel_argument(&(fregs)->regs, n)
#endif

/* class_create() lost its owner argument in 6.4. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define ckpt_class_create(name)		class_create(name)
#else
#define ckpt_class_create(name)		class_create(THIS_MODULE, name)
#endif

/* struct device_type's devnode() takes a const device since 6.2. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define CKPT_DEVNODE_CONST const
#else
#define CKPT_DEVNODE_CONST
#endif

/* get_user_pages_remote() lost its vmas argument in 6.5. */
static inline long ckpt_gup_remote(struct mm_struct *mm, unsigned long addr, unsigned long n,
				   unsigned int flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	return get_user_pages_remote(mm, addr, n, flags, NULL, NULL);
#else
	return get_user_pages_remote(mm, addr, n, flags, NULL, NULL, NULL);
#endif
}

/* The command bytes of an IORING_OP_URING_CMD SQE (6.6 keeps the SQE, not a payload pointer). */
static inline const void *ckpt_uring_cmd_payload(const struct io_uring_cmd *ioucmd)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	return io_uring_sqe_cmd(ioucmd->sqe);
#else
	return ioucmd->cmd;
#endif
}

/*
 * Page-table mappings of a folio: as a whole (PMD) plus each page's PTEs. 6.10+ counts a large
 * folio's in _large_mapcount (folio_mapcount(), inline). 6.1's folio_mapcount() calls
 * folio_total_mapcount(), which is not exported: add up what it adds up.
 */
static inline long ckpt_folio_mapcount(struct folio *folio)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return folio_mapcount(folio);
#else
	long i, n;

	if (!folio_test_large(folio))
		return atomic_read(&folio->_mapcount) + 1;
	n = folio_entire_mapcount(folio);
	for (i = 0; i < folio_nr_pages(folio); i++)
		n += atomic_read(&folio_page(folio, i)->_mapcount) + 1;
	return n;
#endif
}

/*
 * Is every page of this anonymous large folio still mapped, known without counting? 6.1 queues
 * a THP for deferred split when any page is unmapped, so off that queue it is. From 6.12 every
 * new THP sits on the queue (the underused-THP shrinker), so the queue says nothing; the
 * mapcount is cheap there, and "don't know" sends the caller to it.
 */
static inline bool ckpt_folio_surely_fully_mapped(struct folio *folio)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return false;
#else
	return list_empty(page_deferred_list(&folio->page));
#endif
}

/*
 * Mark @vma write-locked until mmap_write_unlock(): with CONFIG_PER_VMA_LOCK (6.4+, on in
 * Debian's 6.12) page faults run under a VMA lock without the mmap lock, so holding the mmap
 * lock for writing no longer keeps them out. This waits for the faults in the VMA and makes
 * new ones fall back to the mmap lock, as the kernel does before changing a VMA's page tables
 * (mprotect, khugepaged). Without per-VMA locks (6.1) the mmap write lock is enough.
 */
static inline void ckpt_vma_start_write(struct vm_area_struct *vma)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vma_start_write(vma);
#else
	mmap_assert_write_locked(vma->vm_mm);
#endif
}

/* Does the process have POSIX timers? (6.12's list is an hlist.) */
static inline bool ckpt_has_posix_timers(const struct signal_struct *sig)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	return !hlist_empty(&sig->posix_timers);
#else
	return !list_empty(&sig->posix_timers);
#endif
}

#endif /* CKPT_COMPAT_H */

/* SPDX-License-Identifier: MIT */
/* The kernel ABI of asynchronous userfaultfd write-protect and PAGEMAP_SCAN (Linux >= 6.7),
 * which Debian 12's linux-libc-dev (6.1) does not have. The values are the kernel's
 * (include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h); a newer <linux/fs.h> that
 * has them wins. Written for libckpt's uffd-async tracker and the host benchmark. */
#ifndef CKPT_UFFD_ASYNC_UAPI_H
#define CKPT_UFFD_ASYNC_UAPI_H

#include <linux/fs.h>
#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/* userfaultfd features (UFFDIO_API) */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4: protect none PTEs with markers */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7: the kernel resolves WP faults itself */
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#ifndef PAGEMAP_SCAN
/* Categories, reported in page_region.categories and matched by the masks below. */
#define PAGE_IS_WPALLOWED (1 << 0) /* the VMA is registered for async uffd-wp */
#define PAGE_IS_WRITTEN (1 << 1)   /* written since it was last write-protected */
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4) /* any non-present, non-none entry (swap, PTE markers) */
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start; /* first address of a run of pages with the same categories */
	__u64 end;   /* exclusive */
	__u64 categories;
};

/* pm_scan_arg.flags */
#define PM_SCAN_WP_MATCHING (1 << 0)   /* write-protect the pages that match */
#define PM_SCAN_CHECK_WPASYNC (1 << 1) /* fail (-EPERM) on a VMA without async uffd-wp */

struct pm_scan_arg {
	__u64 size; /* sizeof(struct pm_scan_arg) */
	__u64 flags;
	__u64 start, end; /* the range to walk */
	__u64 walk_end;   /* out: where the walk stopped (end, or earlier when vec filled up) */
	__u64 vec;        /* struct page_region[vec_len], or 0 */
	__u64 vec_len;
	__u64 max_pages; /* stop after this many matching pages; 0: no limit */
	/* A page matches when ((categories ^ inverted) & mask) == mask and, if anyof is not 0,
	 * ((categories ^ inverted) & anyof) != 0. */
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask; /* categories reported in vec (and which tell runs apart) */
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif /* PAGEMAP_SCAN */

#endif

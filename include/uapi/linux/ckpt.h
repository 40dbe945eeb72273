/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ckpt: the ioctl ABI of /dev/ckpt, shared by ckpt.ko and libckpt.
 *
 * This header is the reference for every command: what each field means, what is checked and
 * which errno each failure returns. Documentation/ioctl-abi.md explains the model around it.
 *
 * Conventions (every command):
 *   - Every field is a __u64. Structures only grow at the end; their size is part of the ioctl
 *     number, so a caller built against another layout gets -ENOTTY, never a misread.
 *   - Fields named "reserved" must be zero (-EINVAL otherwise), so they can carry meaning later.
 *   - Unknown bits in a "flags" field are rejected with -EINVAL.
 *   - A pointer that cannot be read or written gives -EFAULT.
 *   - CKPT_IOC_API must be the first command on an open file; any other command before it gives
 *     -EINVAL. After a successful handshake a second one gives -EBUSY.
 *
 * Model: each open() of /dev/ckpt is a tracking session bound to one address space (the
 * opener's, or with CKPT_IOC_ATTACH another process's). A session holds regions: page-aligned
 * ranges of that address space. The module write-protects a region's pages; the first write to
 * a page after it was (re)protected faults once, the module logs the page and lets the write
 * proceed. CKPT_IOC_COLLECT hands the logged pages to user space and write-protects exactly those
 * pages again, so its cost follows the number of dirty pages, not the size of the region.
 *
 * Guarantee: every write that completes after a COLLECT returns is reported by a later COLLECT
 * of the same region. Reports may include pages whose bytes did not change (see "over-reporting"
 * in Documentation/ioctl-abi.md), never omit one whose bytes did.
 */
#ifndef _UAPI_LINUX_CKPT_H
#define _UAPI_LINUX_CKPT_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define CKPT_DEVICE_NAME	"ckpt"		/* /dev/ckpt, mode 0666: a session only ever */
						/* touches its own address space unless */
						/* CKPT_IOC_ATTACH passes a ptrace check */

#define CKPT_API_VERSION	1ULL

/* Feature bits, reported by CKPT_IOC_API in ckpt_api.features. */
#define CKPT_FEATURE_TRACK	(1ULL << 0)	/* REGISTER / UNREGISTER / COLLECT / STATS */
#define CKPT_FEATURE_THP_SPLIT	(1ULL << 1)	/* 4 KiB precision on THP-backed memory */
#define CKPT_FEATURE_URING_CMD	(1ULL << 2)	/* COLLECT through io_uring (IORING_OP_URING_CMD) */
#define CKPT_FEATURE_ATTACH	(1ULL << 3)	/* CKPT_IOC_ATTACH to another process */
#define CKPT_FEATURE_GENL	(1ULL << 4)	/* generic netlink family CKPT_GENL_NAME */

#define CKPT_IOC_MAGIC		0xC7

/**
 * struct ckpt_api - handshake, CKPT_IOC_API (_IOWR)
 * @api:      in: the API version the caller speaks, CKPT_API_VERSION.
 *            out: the module's API version.
 * @features: in: must be 0 (reserved for opting in to features that change behaviour).
 *            out: the CKPT_FEATURE_* bits this module supports.
 * @ioctls:   out: bit (1 << _IOC_NR(cmd)) set for each command this module accepts.
 * @page_size: out: the page size all addresses, lengths and indices are counted in.
 * @reserved: must be zero.
 *
 * Errors: -EINVAL if @api is not a version the module speaks (the struct is still copied back
 * with the module's version in @api, so the caller can tell), if @features or @reserved is not
 * zero; -EBUSY on a second handshake on the same file; -EFAULT.
 */
struct ckpt_api {
	__u64 api;
	__u64 features;
	__u64 ioctls;
	__u64 page_size;
	__u64 reserved[4];
};

/* CKPT_IOC_REGISTER flags */
#define CKPT_REGISTER_DIRTY	(1ULL << 0)	/* start with every page logged, so the first */
						/* COLLECT reports (and protects) them all */

/**
 * struct ckpt_register - CKPT_IOC_REGISTER (_IOWR): track a range
 * @start:  page-aligned start address in the session's address space.
 * @len:    length in bytes, a non-zero multiple of the page size.
 * @flags:  CKPT_REGISTER_*.
 * @id:     out: the region id (> 0), unique within the session.
 * @reserved: must be zero.
 *
 * Every page of the range must be mapped, by private (MAP_PRIVATE) mappings that are neither
 * VM_IO/VM_PFNMAP nor hugetlbfs. Pages need not be populated. THP-backed memory is split to
 * 4 KiB mappings when it is protected (CKPT_FEATURE_THP_SPLIT).
 *
 * Errors: -EINVAL unaligned/zero/overflowing range, bad flags or reserved fields;
 * -ENOMEM some page of the range is not mapped (as mprotect(2) reports it), or no memory;
 * -EOPNOTSUPP the range contains a shared, I/O, PFN-mapped or hugetlb mapping;
 * -EEXIST the range overlaps a region of this session; -ENOSPC the session has
 * CKPT_MAX_REGIONS regions; -ESRCH the session's address space has exited; -EFAULT.
 */
struct ckpt_register {
	__u64 start;
	__u64 len;
	__u64 flags;
	__u64 id;
	__u64 reserved[4];
};

#define CKPT_MAX_REGIONS	4096

/**
 * struct ckpt_unregister - CKPT_IOC_UNREGISTER (_IOW): stop tracking a region
 * @id:    the region id from REGISTER.
 * @flags: must be 0.
 * @reserved: must be zero.
 *
 * Pages stay write-protected in the page table until their next write fault, which the kernel
 * then resolves as for any read-only private page (no copy for exclusively owned pages).
 * Errors: -ENOENT unknown id; -EINVAL bad flags/reserved; -EFAULT.
 */
struct ckpt_unregister {
	__u64 id;
	__u64 flags;
	__u64 reserved[2];
};

/* CKPT_IOC_COLLECT flags */
#define CKPT_COLLECT_BITMAP	(1ULL << 0)	/* @buf is a bitmap, bit i = page i of the region */
#define CKPT_COLLECT_PEEK	(1ULL << 1)	/* report only: do not clear the log or protect */

/**
 * struct ckpt_collect - CKPT_IOC_COLLECT (_IOWR): take the dirty log and re-protect
 * @id:     region id, or 0 for every region of the session (not with CKPT_COLLECT_BITMAP).
 * @flags:  CKPT_COLLECT_*.
 * @buf:    user pointer. Default: an array of __u64 page addresses (page-aligned virtual
 *          addresses), ascending within each region. With CKPT_COLLECT_BITMAP: a bitmap of
 *          the region's pages, as an array of __u64 words (bit i of word w is page 64*w+i);
 *          bits of clean pages are written as 0.
 * @buf_len: size of @buf in bytes. Array mode: any multiple of 8; if the log holds more pages
 *          than fit, the first ones are returned (and only they are cleared and protected) and
 *          @remaining says how many are left for the next call. Bitmap mode: at least
 *          DIV_ROUND_UP(pages, 64) * 8 bytes, else -EINVAL.
 * @count:  out: pages reported.
 * @remaining: out: pages still logged in the collected region(s) after this call.
 * @seq:    out: the session's collect sequence number (1 for the first COLLECT).
 * @reserved: must be zero.
 *
 * On return every reported page is write-protected again on every CPU (the TLB flush is done),
 * so a write that starts after the call returns faults and is logged for the next COLLECT.
 * Errors: -ENOENT unknown id; -EINVAL bad flags, reserved, buffer size, or id 0 with BITMAP;
 * -ESRCH the session's address space has exited; -EFAULT @buf not writable (nothing is taken
 * from the log then).
 *
 * Also available as IORING_OP_URING_CMD with cmd_op = CKPT_IOC_COLLECT and the first 8 bytes
 * of sqe->cmd holding the address of a struct ckpt_collect; cqe->res is @count or -errno.
 */
struct ckpt_collect {
	__u64 id;
	__u64 flags;
	__u64 buf;
	__u64 buf_len;
	__u64 count;
	__u64 remaining;
	__u64 seq;
	__u64 reserved[5];
};

/**
 * struct ckpt_stats - CKPT_IOC_STATS (_IOWR): counters of a region or a session
 * @id:        in: region id, or 0 for the whole session.
 * @flags:     in: must be 0.
 * @regions:   out: regions counted.
 * @pages:     out: pages registered.
 * @dirty:     out: pages logged now (what the next COLLECT would report).
 * @faults:    out: write faults logged since REGISTER.
 * @collects:  out: COLLECT calls.
 * @collected: out: pages reported by COLLECT calls.
 * @thp_splits: out: huge PMDs split to 4 KiB mappings.
 * @invalidations: out: pages logged because the kernel changed their mapping (munmap,
 *             mprotect, MADV_DONTNEED, THP collapse, swap-out...) rather than by a write fault.
 * @reserved:  must be zero.
 * Errors: -ENOENT unknown id; -EINVAL bad flags/reserved; -EFAULT.
 */
struct ckpt_stats {
	__u64 id;
	__u64 flags;
	__u64 regions;
	__u64 pages;
	__u64 dirty;
	__u64 faults;
	__u64 collects;
	__u64 collected;
	__u64 thp_splits;
	__u64 invalidations;
	__u64 reserved[6];
};

/**
 * struct ckpt_attach - CKPT_IOC_ATTACH (_IOW): bind the session to another process
 * @pid:   the target's pid, in the caller's pid namespace.
 * @flags: must be 0.
 * @reserved: must be zero.
 *
 * Only before the first REGISTER. The caller must be the target's ptrace tracer, or share its
 * uids with a dumpable target, or have CAP_SYS_PTRACE.
 * Errors: -ESRCH no such process or it has no address space; -EPERM not allowed;
 * -EBUSY the session already has regions or is already attached; -EINVAL; -EFAULT.
 */
struct ckpt_attach {
	__u64 pid;
	__u64 flags;
	__u64 reserved[2];
};

#define CKPT_IOC_API		_IOWR(CKPT_IOC_MAGIC, 0x00, struct ckpt_api)
#define CKPT_IOC_REGISTER	_IOWR(CKPT_IOC_MAGIC, 0x01, struct ckpt_register)
#define CKPT_IOC_UNREGISTER	_IOW(CKPT_IOC_MAGIC, 0x02, struct ckpt_unregister)
#define CKPT_IOC_COLLECT	_IOWR(CKPT_IOC_MAGIC, 0x03, struct ckpt_collect)
#define CKPT_IOC_STATS		_IOWR(CKPT_IOC_MAGIC, 0x04, struct ckpt_stats)
#define CKPT_IOC_ATTACH		_IOW(CKPT_IOC_MAGIC, 0x05, struct ckpt_attach)

/*
 * Generic netlink status family. CKPT_GENL_CMD_GET_SESSIONS is a dump: one message per
 * session, with the attributes below (all NLA_U64 but PID and COMM). Readable by anyone;
 * sessions of other users are listed only to callers with CAP_SYS_PTRACE.
 */
#define CKPT_GENL_NAME		"ckpt"
#define CKPT_GENL_VERSION	1

enum ckpt_genl_cmd {
	CKPT_GENL_CMD_UNSPEC,
	CKPT_GENL_CMD_GET_SESSIONS,
	__CKPT_GENL_CMD_MAX,
};
#define CKPT_GENL_CMD_MAX (__CKPT_GENL_CMD_MAX - 1)

enum ckpt_genl_attr {
	CKPT_GENL_A_UNSPEC,
	CKPT_GENL_A_PID,		/* NLA_U32: tgid of the tracked process */
	CKPT_GENL_A_COMM,		/* NLA_NUL_STRING: its comm */
	CKPT_GENL_A_REGIONS,
	CKPT_GENL_A_PAGES,
	CKPT_GENL_A_DIRTY,
	CKPT_GENL_A_FAULTS,
	CKPT_GENL_A_COLLECTS,
	CKPT_GENL_A_COLLECTED,
	CKPT_GENL_A_PAD,
	__CKPT_GENL_A_MAX,
};
#define CKPT_GENL_A_MAX (__CKPT_GENL_A_MAX - 1)

#endif /* _UAPI_LINUX_CKPT_H */

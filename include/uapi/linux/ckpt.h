/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ckpt: the ioctl ABI of /dev/ckpt, shared by ckpt.ko and libckpt.
 *
 * This header is the reference for every command: what each field means, what is checked and
 * which errno each failure returns. Documentation/ioctl-abi.md explains the model around it.
 *
 * open(): -EMFILE when the opener's effective uid already has the module parameter
 * max_user_sessions sessions open (Documentation/ioctl-abi.md, "Per-user limits").
 *
 * Conventions (every command):
 *   - Every field is a __u64. Structures only grow at the end; their size is part of the ioctl
 *     number, so a caller built against another layout gets -ENOTTY, never a misread.
 *   - Fields named "reserved" must be zero (-EINVAL otherwise), so they can carry meaning later.
 *   - Unknown bits in a "flags" field are rejected with -EINVAL.
 *   - A pointer that cannot be read or written gives -EFAULT.
 *   - CKPT_IOC_API must be the first command on an open file; any other command before it gives
 *     -EINVAL. After a successful handshake a second one gives -EBUSY.
 *   - Every optional behaviour is advertised by a feature bit (below, all in one place): a
 *     caller tests the bit, it never probes for -EINVAL.
 *   - An array a command reads (struct ckpt_restore_vma, struct ckpt_restore_run) comes with
 *     its element size, which must be this header's (-EINVAL otherwise); its elements have
 *     reserved fields, so they can grow.
 *   - The module speaks one API version, CKPT_API_VERSION: a program built against another
 *     gets -EPROTONOSUPPORT from the handshake, with the module's version written back.
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

/*
 * /dev/ckpt: root:ckpt 0660 with the shipped udev rule (udev/60-ckpt.rules), else as the
 * module's dev_mode/dev_gid parameters say (default 0600 root; never open to others). A session
 * only ever touches its own address space, or, after CKPT_IOC_ATTACH, that of a task its
 * caller has stopped under ptrace. Documentation/admin-guide.md, "Security model".
 */
#define CKPT_DEVICE_NAME	"ckpt"

/*
 * API versions. 1: ckpt 0.1.0's first ABI. 2: struct ckpt_restore_run has a reserved field,
 * RESTORE_PREPARE takes the element sizes of its arrays (@vma_size, @run_size), and the
 * per-thread fields of RESTORE_PREPARE and RESTORE_THREAD are one struct ckpt_thread_state
 * (same layout as before). The layout of every other struct is version 1's.
 */
#define CKPT_API_VERSION	2ULL

/*
 * Feature bits, reported by CKPT_IOC_API in ckpt_api.features: every optional behaviour of
 * the module, in one place.
 */
#define CKPT_FEATURE_TRACK	(1ULL << 0)	/* REGISTER / UNREGISTER / COLLECT / STATS */
#define CKPT_FEATURE_THP_SPLIT	(1ULL << 1)	/* 4 KiB precision on THP-backed memory */
#define CKPT_FEATURE_URING_CMD	(1ULL << 2)	/* COLLECT through io_uring (IORING_OP_URING_CMD) */
#define CKPT_FEATURE_ATTACH	(1ULL << 3)	/* CKPT_IOC_ATTACH to another process */
#define CKPT_FEATURE_GENL	(1ULL << 4)	/* generic netlink family CKPT_GENL_NAME */
#define CKPT_FEATURE_RESTORE	(1ULL << 5)	/* RESTORE_PREPARE / RESTORE_COMMIT / RESTORE_THREAD */
#define CKPT_FEATURE_DUMP	(1ULL << 6)	/* DUMP_TASK */
#define CKPT_FEATURE_RESTORE_PREBUILT (1ULL << 7) /* CKPT_VMA_PREBUILT */
#define CKPT_FEATURE_HOLD	(1ULL << 8)	/* CKPT_COLLECT_HOLD and CKPT_IOC_RELEASE */
#define CKPT_FEATURE_DUMP_PROCESS (1ULL << 9)	/* DUMP_TASK's CKPT_DUMP_PROCESS */
#define CKPT_FEATURE_DUMP_TIMERS (1ULL << 10)	/* DUMP_TASK's CKPT_DUMP_TIMERS */
#define CKPT_FEATURE_WATCH	(1ULL << 11)	/* CKPT_IOC_WATCH: writes of watched threads */

#define CKPT_IOC_MAGIC		0xC7

/**
 * struct ckpt_api - handshake, CKPT_IOC_API (_IOWR)
 * @api:      in: the API version the caller speaks, CKPT_API_VERSION.
 *            out: the module's API version.
 * @features: in: features the caller opts in to; none needs it at this version, so it must
 *            be 0. out: the CKPT_FEATURE_* bits this module supports.
 * @ioctls:   out: bit (1 << _IOC_NR(cmd)) set for each command this module accepts.
 * @page_size: out: the page size all addresses, lengths and indices are counted in.
 * @reserved: must be zero.
 *
 * Errors (the struct is copied back, with the module's values, on each but -EFAULT, so the
 * caller can tell what the module speaks): -EPROTONOSUPPORT @api is not the version the module
 * speaks (an older or newer program: rebuild it against this header; a module of version 1
 * answered -EINVAL); -EOPNOTSUPP @features asks for a feature the module does not have;
 * -EINVAL @reserved is not zero; -EBUSY a second handshake on the same file; -EFAULT.
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
 * CKPT_MAX_REGIONS regions, or the region's log would take the kernel memory held for the
 * opener's uid past the module parameter max_user_kmem_kb; -ESRCH the session's address space has exited; -EINTR a fatal
 * signal arrived while waiting for that address space's mmap lock; -EFAULT.
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
#define CKPT_COLLECT_HOLD	(1ULL << 2)	/* hold the reported pages (async checkpoint), see
						 * CKPT_IOC_RELEASE; array mode, CKPT_FEATURE_HOLD */

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
 * @remaining: out: array mode: pages still logged *ahead of* this pass, which did not fit in
 *          @buf; call again while it is non-zero. A pass goes through the log once in address
 *          order, over as many calls as the buffer needs, and reports each page at most once:
 *          pages logged behind it (written while it runs, or kept logged because they cannot
 *          be protected, see below) are reported by the next pass, so such a loop always ends.
 *          A caller that stops before @remaining is 0 resumes the same pass next time.
 *          Bitmap mode (one call is a whole pass): 0. PEEK: every page logged now.
 * @seq:    out: the session's collect sequence number (1 for the first COLLECT).
 * @reserved: must be zero.
 *
 * On return every reported page is write-protected again on every CPU (the TLB flush is done),
 * so a write that starts after the call returns faults and is logged for the next COLLECT.
 * Errors: -ENOENT unknown id; -EINVAL bad flags, reserved, buffer size, or id 0 with BITMAP;
 * -ENOSPC (HOLD) a region's first hold bitmap would pass max_user_kmem_kb;
 * -ESRCH the session's address space has exited; -EINTR a fatal signal arrived while waiting
 * for its mmap lock; -EFAULT @buf not writable (nothing is taken
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
 * @kept:      out: pages COLLECT reported but kept logged, because they could not be protected
 *             (pinned for DMA, or holding references of an I/O in flight; a huge PMD that did
 *             not split; no longer a trackable mapping): ioctl-abi.md, over-reporting case 4.
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
	__u64 kept;
	__u64 reserved[5];
};

/**
 * struct ckpt_attach - CKPT_IOC_ATTACH (_IOW): bind the session to another process
 * @pid:   the target's pid, in the caller's pid namespace.
 * @flags: must be 0.
 * @reserved: must be zero.
 *
 * Only before the first REGISTER. The calling thread must be the target's ptrace tracer
 * (PTRACE_ATTACH or PTRACE_SEIZE by this very thread, as ptrace(2) requests need) and the
 * target must sit in a ptrace stop: the kernel checked the caller's right to it, LSM hooks
 * included, when it attached, and a traced task's execve gains no privileges its tracer lacks.
 * @pid may be any thread of the process. The session stays bound to that address space after
 * the caller detaches; once the process execs or exits, the commands that need it answer
 * -ESRCH (the session never follows the process into a new address space).
 * Errors: -ESRCH no such task or it has no address space; -EPERM the calling thread is not the
 * task's tracer or the task is not in a ptrace stop; -EBUSY the session already has regions or
 * is already attached; -EINVAL; -EFAULT.
 */
struct ckpt_attach {
	__u64 pid;
	__u64 flags;
	__u64 reserved[2];
};

/* CKPT_IOC_RELEASE flags */
#define CKPT_RELEASE_END	(1ULL << 0)	/* end the hold first: no copies are made after it */

/**
 * struct ckpt_release - CKPT_IOC_RELEASE (_IOWR): the copies of held pages; end a hold
 * @id:     region id, or 0 for every region of the session.
 * @flags:  CKPT_RELEASE_*.
 * @addrs:  user pointer to @max __u64: out, the page addresses of the copies returned.
 * @data:   user pointer to @max * page size bytes: out, the copies, in the order of @addrs.
 * @max:    entries @addrs and @data have room for (0: only end the hold and count).
 * @count:  out: copies returned (and freed in the module).
 * @remaining: out: copies the module still holds for these regions after this call.
 * @lost:   out: held pages of these regions whose contents changed without a copy since their
 *          hold began (an unmap, MADV_DONTNEED, swap-out or THP collapse of a held page, a
 *          held page swapped out when written, a held page of a private file mapping not
 *          mapped yet when written, a copy that could not be allocated or would pass the
 *          module parameter max_user_kmem_kb). Reported and reset
 *          by the call with END. A held anonymous page never populated comes back as zeros.
 * @reserved: must be zero.
 *
 * Asynchronous checkpoints. COLLECT with CKPT_COLLECT_HOLD reports and protects pages as
 * usual and also *holds* them: until the hold ends, the first write fault on a held page copies
 * the page as it was at that COLLECT into the module before the write may proceed. The caller
 * lets its threads run and reads the held pages from its own memory (persisting them), then
 * calls RELEASE with CKPT_RELEASE_END and again until @remaining is 0: every page it read
 * while or after the program wrote it comes back here with its COLLECT-time contents, which
 * replace what it read. If @lost is non-zero the epoch cannot be completed from memory: the
 * caller drops it and keeps the pages for the next checkpoint (they are logged again anyway).
 * Held pages accumulate over HOLD COLLECT calls (a pass over several calls) until END.
 * A copy left untaken after END is replaced if its page is held and written again.
 * Unregistering a region or closing the session ends its hold and frees its copies.
 * Errors: -ENOENT unknown id; -EINVAL bad flags or reserved; -EFAULT (copies not returned stay
 * in the module; @count says how many were).
 */
struct ckpt_release {
	__u64 id;
	__u64 flags;
	__u64 addrs;
	__u64 data;
	__u64 max;
	__u64 count;
	__u64 remaining;
	__u64 lost;
	__u64 reserved[4];
};

/* CKPT_IOC_WATCH operations (ckpt_watch.op) */
#define CKPT_WATCH_ADD		1	/* watch thread @tid */
#define CKPT_WATCH_REMOVE	2	/* stop watching thread @tid */
#define CKPT_WATCH_READ		3	/* take the hits logged since the last READ */

#define CKPT_WATCH_MAX_TIDS	64	/* threads a session watches at most */
#define CKPT_WATCH_MAX_HITS	256	/* hits a session keeps between two READs */

/**
 * struct ckpt_watch_hit - one write of a watched thread (CKPT_WATCH_READ)
 * @tid:  the thread, as given to CKPT_WATCH_ADD.
 * @addr: the page address it wrote (page-aligned).
 */
struct ckpt_watch_hit {
	__u64 tid;
	__u64 addr;
};

/**
 * struct ckpt_watch - CKPT_IOC_WATCH (_IOWR): who writes the session's regions
 * @op:       in: CKPT_WATCH_*.
 * @tid:      in (ADD, REMOVE): a thread id in the caller's pid namespace; 0 for READ.
 * @hits:     in (READ): user pointer to @max struct ckpt_watch_hit; 0 for ADD and REMOVE.
 * @max:      in (READ): entries @hits has room for; 0 for ADD and REMOVE.
 * @hit_size: in (READ): sizeof(struct ckpt_watch_hit) (-EINVAL otherwise); 0 for ADD, REMOVE.
 * @count:    out (READ): hits returned, oldest first; they are taken (not returned again).
 * @lost:     out (READ): hits not kept since the last READ because CKPT_WATCH_MAX_HITS were
 *            waiting; reset by a READ that returns every waiting hit.
 * @watched:  out: threads watched after the call.
 * @reserved: must be zero.
 *
 * A write fault the module logs in a region of the session (the first write to a page after
 * REGISTER or COLLECT protected it) whose faulting task is a watched thread is also logged as a
 * hit (@tid, page address). A watched thread is one of the session's process (the opener's, or
 * the ATTACH target's); it is known by its struct pid, so a later thread that reuses the
 * number is not watched. A thread that exits stays in the set (its hits stay readable) until
 * REMOVE or close. Writes the kernel makes on another task's behalf (process_vm_writev, a
 * debugger) are no thread's: never hits. A write to a page already writable (written since
 * the last COLLECT) faults no more and is not seen: the first write after a COLLECT is.
 * After ADD, ATTACH answers -EBUSY.
 * Errors: -EINVAL bad @op, reserved, or a field the @op does not take that is not 0, @tid 0 or
 * above INT_MAX, @hit_size; -ESRCH no thread @tid, or not one of the session's process, or
 * that process exited; -EEXIST ADD of a watched thread; -ENOENT REMOVE of one not watched;
 * -ENOSPC ADD beyond CKPT_WATCH_MAX_TIDS, or the set's memory (about 5 KiB, at the first ADD)
 * would pass max_user_kmem_kb; -ENOMEM; -EFAULT (writing @hits: no hit is taken).
 */
struct ckpt_watch {
	__u64 op;
	__u64 tid;
	__u64 hits;
	__u64 max;
	__u64 hit_size;
	__u64 count;
	__u64 lost;
	__u64 watched;
	__u64 reserved[4];
};

#define CKPT_IOC_API		_IOWR(CKPT_IOC_MAGIC, 0x00, struct ckpt_api)
#define CKPT_IOC_REGISTER	_IOWR(CKPT_IOC_MAGIC, 0x01, struct ckpt_register)
#define CKPT_IOC_UNREGISTER	_IOW(CKPT_IOC_MAGIC, 0x02, struct ckpt_unregister)
#define CKPT_IOC_COLLECT	_IOWR(CKPT_IOC_MAGIC, 0x03, struct ckpt_collect)
#define CKPT_IOC_STATS		_IOWR(CKPT_IOC_MAGIC, 0x04, struct ckpt_stats)
#define CKPT_IOC_ATTACH		_IOW(CKPT_IOC_MAGIC, 0x05, struct ckpt_attach)
#define CKPT_IOC_RELEASE	_IOWR(CKPT_IOC_MAGIC, 0x06, struct ckpt_release)
#define CKPT_IOC_WATCH		_IOWR(CKPT_IOC_MAGIC, 0x07, struct ckpt_watch)

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
	CKPT_GENL_A_KEPT,		/* NLA_U64: struct ckpt_stats.kept, since the sessions' start */
	CKPT_GENL_A_INVALIDATIONS,	/* NLA_U64: struct ckpt_stats.invalidations */
	CKPT_GENL_A_THP_SPLITS,		/* NLA_U64: struct ckpt_stats.thp_splits */
	__CKPT_GENL_A_MAX,
};
#define CKPT_GENL_A_MAX (__CKPT_GENL_A_MAX - 1)

/*
 * ======================================================================================
 * Whole-process dump and restore (ckpt-tool dump / restore; Documentation/whole-process.md).
 * Commands 0x10 and up. Same conventions as above: __u64 fields, reserved must be zero,
 * unknown flags rejected, CKPT_IOC_API first, feature bits CKPT_FEATURE_RESTORE,
 * CKPT_FEATURE_RESTORE_PREBUILT, CKPT_FEATURE_DUMP, CKPT_FEATURE_DUMP_PROCESS and
 * CKPT_FEATURE_DUMP_TIMERS.
 * ======================================================================================
 */
#ifdef __x86_64__
/*
 * Restore writes a task's registers: x86-64 only (struct ckpt_regs). Dump (DUMP_TASK) is
 * below, outside this block.
 */

/* struct ckpt_restore_vma.flags */
#define CKPT_VMA_FILE		(1ULL << 0)	/* private mapping of @fd at @pgoff, else anonymous */
#define CKPT_VMA_SHARED		(1ULL << 1)	/* MAP_SHARED (anonymous only) */
#define CKPT_VMA_GROWSDOWN	(1ULL << 2)	/* MAP_GROWSDOWN (a stack) */
#define CKPT_VMA_PREBUILT	(1ULL << 3)	/* already mapped and filled by the caller: kept */

/**
 * struct ckpt_restore_vma - one mapping RESTORE_COMMIT creates
 * @start:  page-aligned address.
 * @len:    non-zero multiple of the page size; [start, start + len) below TASK_SIZE.
 * @prot:   PROT_READ | PROT_WRITE | PROT_EXEC, the final protection.
 * @flags:  CKPT_VMA_*.
 * @fd:     CKPT_VMA_FILE: a regular file the caller opened for reading (its permissions are
 *          the caller's: the kernel maps it as mmap(2) would, LSM checks included); else 0.
 * @pgoff:  CKPT_VMA_FILE: page-aligned file offset in bytes; else 0.
 * @reserved: must be zero.
 *
 * CKPT_VMA_PREBUILT (CKPT_FEATURE_RESTORE_PREBUILT; private mappings only): the caller has
 * already mapped [start, start + len) itself, as this entry describes (private, anonymous or
 * of @fd's file at @pgoff, @prot, MAP_GROWSDOWN as flagged), and written its pages. COMMIT
 * keeps those pages where they are instead of mapping and filling the range: no copy. PREPARE
 * and COMMIT check that the range is covered by mappings that match (-EINVAL otherwise,
 * before anything changes); no run may point into it. A read-only MAP_SHARED mapping of a
 * file opened read-only matches a CKPT_VMA_FILE entry: the kernel makes it without VM_SHARED
 * (only VM_MAYSHARE), and VM_SHARED is what the check compares (ckpt-tool restores such
 * mappings this way: the file holds their bytes).
 */
struct ckpt_restore_vma {
	__u64 start;
	__u64 len;
	__u64 prot;
	__u64 flags;
	__u64 fd;
	__u64 pgoff;
	__u64 reserved[2];
};

/**
 * struct ckpt_restore_run - page contents: @len bytes of the data file at @data_off go to
 * @addr. @addr, @len and @data_off are page-aligned, @len > 0, the range lies inside one
 * vma of the request and inside the data file. Read-only or PROT_NONE private mappings are
 * written as ptrace would (FOLL_FORCE, the pages become private copies): only the mappings
 * COMMIT itself has just created, in an address space no other process shares, before the
 * task runs any of it. No other command writes through a mapping's protection.
 * @reserved: must be zero.
 */
struct ckpt_restore_run {
	__u64 addr;
	__u64 len;
	__u64 data_off;
	__u64 reserved;
};

/**
 * struct ckpt_regs - general registers, in the order of struct user_regs_struct (x86-64).
 * On RESTORE_COMMIT: cs must be __USER_CS (0x33), ss __USER_DS (0x2b), ds/es 0 or __USER_DS,
 * fs/gs selectors 0, ip below TASK_SIZE; only the eflags bits ptrace may change are taken;
 * fs_base/gs_base are ignored (the caller sets them with arch_prctl before COMMIT);
 * orig_ax is ignored (the task returns with no syscall to restart).
 */
struct ckpt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
	__u64 fs_base, gs_base, ds, es, fs, gs;
};

/**
 * struct ckpt_thread_state - what a restored thread sets on itself (RESTORE_PREPARE for the
 * thread that commits, RESTORE_THREAD for each other one)
 * @regs:     the registers it resumes with; COMMIT / RESTORE_THREAD return @regs.ax.
 * @sigmask:  the blocked signal set (bit n-1 = signal n); SIGKILL/SIGSTOP are dropped.
 * @clear_child_tid, @robust_list, @rseq, @rseq_sig: as set_tid_address(2),
 *            set_robust_list(2) and rseq(2) would set them (0: none); each below TASK_SIZE,
 *            @rseq 32-byte aligned, @rseq_sig a 32-bit value (-EINVAL otherwise).
 */
struct ckpt_thread_state {
	struct ckpt_regs regs;
	__u64 sigmask;
	__u64 clear_child_tid;
	__u64 robust_list;
	__u64 rseq;
	__u64 rseq_sig;
};

/* struct ckpt_restore_prepare.flags */
#define CKPT_RESTORE_STATUS_FD	(1ULL << 0)	/* report COMMIT's outcome on @status_fd */

#define CKPT_RESTORE_MAX_VMAS	65530		/* the default vm.max_map_count */
#define CKPT_RESTORE_MAX_RUNS	(1ULL << 22)

/**
 * struct ckpt_restore_prepare - CKPT_IOC_RESTORE_PREPARE (_IOW): stage a restore of the
 * caller's own process
 * @flags:     CKPT_RESTORE_*.
 * @self_fd:   the fd of this /dev/ckpt file in the caller; COMMIT closes it.
 * @vmas, @nr_vmas: user pointer to @nr_vmas struct ckpt_restore_vma, sorted by start,
 *             not overlapping each other nor [@keep_start, @keep_end); 1..CKPT_RESTORE_MAX_VMAS.
 * @runs, @nr_runs: user pointer to @nr_runs struct ckpt_restore_run; 0..CKPT_RESTORE_MAX_RUNS.
 * @vma_size, @run_size: sizeof(struct ckpt_restore_vma), sizeof(struct ckpt_restore_run) as
 *             the caller was built with: must be this header's (-EINVAL otherwise).
 * @data_fd:   regular file open for reading that holds the runs' bytes.
 * @status_fd: with CKPT_RESTORE_STATUS_FD, a file open for writing (a pipe to the parent):
 *             COMMIT writes one __s64 there (0, or -errno when it failed past the point of no
 *             return) and closes the fd; else 0.
 * @keep_start, @keep_end: the caller's [vvar] + [vdso] mappings, exactly (already moved to the
 *             image's addresses by the caller); kept by COMMIT. Both 0: keep nothing.
 * @start_code .. @env_end: the mm_struct fields of the image (/proc/PID/stat), each below
 *             TASK_SIZE, each start <= its end; @start_brk <= @brk.
 * @thread:    the calling thread's state after COMMIT.
 * @reserved:  must be zero.
 *
 * Files are taken (fget) at PREPARE: the caller may close its fds afterwards. A second PREPARE
 * replaces the first. Nothing changes in the caller until COMMIT.
 * Errors: -EINVAL malformed request (unaligned, overlapping, out of range, bad flags/
 * reserved/registers/element sizes, no handshake); -EBADF an fd is not open or not open for
 * reading (writing for @status_fd); -EACCES a mapped or data file is not a regular file; -E2BIG too
 * many vmas or runs; -ENOSPC the staged request (72 bytes per vma, 32 per run) would take the kernel
 * memory held for the opener's uid past the module parameter max_user_kmem_kb; -ENOMEM; -EFAULT.
 */
struct ckpt_restore_prepare {
	__u64 flags;
	__u64 self_fd;
	__u64 vmas;
	__u64 nr_vmas;
	__u64 runs;
	__u64 nr_runs;
	__u64 data_fd;
	__u64 status_fd;
	__u64 keep_start;
	__u64 keep_end;
	__u64 start_code, end_code, start_data, end_data;
	__u64 start_brk, brk, start_stack;
	__u64 arg_start, arg_end, env_start, env_end;
	struct ckpt_thread_state thread;
	__u64 vma_size;
	__u64 run_size;
	__u64 reserved[6];
};

/**
 * struct ckpt_restore_thread - CKPT_IOC_RESTORE_THREAD (_IOW): park a helper thread for a
 * multi-threaded restore
 * @thread:   this thread's state after the COMMIT.
 * @self_fd:  this thread's own /dev/ckpt fd (one session per thread): closed on success.
 * @flags:    must be 0.
 * @reserved: must be zero.
 *
 * Called by every thread but the one that prepares, on its own session, after the PREPARE of
 * the main thread (same address space). The thread sleeps in the kernel until the main thread's
 * COMMIT has replaced the address space, then returns straight into @thread.regs with rax =
 * @thread.regs.ax,
 * like COMMIT. Set fs/gs base and FPU state before the call, as for COMMIT.
 * Errors (before sleeping): -ENOENT no restore prepared in this address space; -EINVAL; -EFAULT.
 * While sleeping: -EINTR if the process is killed (a failed COMMIT kills it); -ECANCELED if
 * the restore it waited for was dropped before its COMMIT (replaced by another PREPARE, or its
 * session closed).
 */
struct ckpt_restore_thread {
	struct ckpt_thread_state thread;
	__u64 self_fd;
	__u64 flags;
	__u64 reserved[5];
};

/* CKPT_IOC_RESTORE_COMMIT arg */
#define CKPT_COMMIT_CHECK	1ULL	/* only say whether COMMIT could start: 0, or -EBUSY while */
					/* not every other thread is parked in RESTORE_THREAD */

/*
 * CKPT_IOC_RESTORE_COMMIT (_IO, arg 0 or CKPT_COMMIT_CHECK): carry out the prepared restore on
 * the calling task, which must be the one that prepared it; every other thread of its process
 * must be parked in CKPT_IOC_RESTORE_THREAD (they resume with their own registers). Every
 * mapping except the kept [vvar]/[vdso] is unmapped, the image's mappings are created and
 * filled from the data file, the mm fields, signal mask, clear_child_tid, robust list and rseq
 * are set, the general registers are written, and the call "returns" into the image's context
 * with rax = regs.ax (no syscall restart). fs/gs base and the FPU/AVX state are the caller's
 * (set them just before the call, from code that no longer needs TLS).
 * Before the point of no return: -EINVAL nothing prepared / other task / bad arg; -EBUSY
 * not every other thread of the process is parked in RESTORE_THREAD, or another process shares
 * the address space (clone(CLONE_VM) without CLONE_THREAD, vfork). After it, a failure (no memory, a mapping refused by the
 * kernel or an LSM, a short read of the data file) is written to @status_fd and the task is
 * killed with SIGKILL: the address space is gone, there is nothing to return to.
 */

#define CKPT_IOC_RESTORE_PREPARE _IOW(CKPT_IOC_MAGIC, 0x10, struct ckpt_restore_prepare)
#define CKPT_IOC_RESTORE_COMMIT	_IO(CKPT_IOC_MAGIC, 0x11)
#define CKPT_IOC_RESTORE_THREAD	_IOW(CKPT_IOC_MAGIC, 0x12, struct ckpt_restore_thread)
#endif /* __x86_64__ */

/**
 * struct ckpt_sigaction - one signal's disposition as the kernel holds it
 * @handler: sa_handler (SIG_DFL 0, SIG_IGN 1, or an address).
 * @flags: sa_flags.  @restorer: sa_restorer.  @mask: sa_mask (bit n-1 = signal n).
 */
struct ckpt_sigaction {
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

#define CKPT_NSIG	64

/**
 * struct ckpt_dump_task - CKPT_IOC_DUMP_TASK (_IOWR): read what ptrace does not show of a
 * task the caller traces (PTRACE_SEIZE'd by this thread and in a ptrace stop)
 * @pid:      in: the task's tid in the caller's pid namespace.
 * @flags:    in: CKPT_DUMP_* (CKPT_DUMP_TIMERS when the module has CKPT_FEATURE_DUMP_TIMERS,
 *            CKPT_DUMP_PROCESS when it has CKPT_FEATURE_DUMP_PROCESS; any other bit: -EINVAL).
 * @actions:  in: user pointer to CKPT_NSIG struct ckpt_sigaction (entry n-1 = signal n),
 *            filled from the task's signal handlers (shared by its thread group); 0 = skip.
 * @clear_child_tid, @robust_list, @robust_list_len: out, per thread.
 * @sas_ss_sp, @sas_ss_size, @sas_ss_flags: out: the alternate signal stack (per thread).
 * @blocked:  out: the blocked signal set (per thread).
 * @start_brk, @brk: out: the process's heap bounds (brk is not in /proc/PID/stat).
 * @rseq, @rseq_sig: out.
 * @timers:   out, with CKPT_DUMP_TIMERS: CKPT_TIMER_* bits of the timers the task's process
 *            has (interval timers armed; POSIX timers that exist, armed or not).
 * @itimer_real_ns, @itimer_real_interval_ns: out, with CKPT_DUMP_TIMERS: ITIMER_REAL's time
 *            left and interval (what getitimer(2) would tell the process); 0 when disarmed. A
 *            periodic timer that fired while the process was stopped has no time left and its
 *            interval: the kernel re-arms it when the pending SIGALRM is dequeued.
 * @process:  out, with CKPT_DUMP_PROCESS: CKPT_PROCESS_* bits of the task's process state that
 *            neither ptrace nor /proc shows (prctl state only the process itself can read).
 * @reserved: must be zero.
 * Errors: -ESRCH no such task or it exited; -EPERM the caller is not its tracer or it is not
 * stopped; -EINVAL; -EFAULT.
 */
struct ckpt_dump_task {
	__u64 pid;
	__u64 flags;
	__u64 actions;
	__u64 clear_child_tid;
	__u64 robust_list;
	__u64 robust_list_len;
	__u64 sas_ss_sp;
	__u64 sas_ss_size;
	__u64 sas_ss_flags;
	__u64 blocked;
	__u64 start_brk;
	__u64 brk;
	__u64 rseq;
	__u64 rseq_sig;
	__u64 timers;
	__u64 itimer_real_ns;
	__u64 itimer_real_interval_ns;
	__u64 process;
	__u64 reserved[2];
};

/* CKPT_IOC_DUMP_TASK flags */
#define CKPT_DUMP_TIMERS	(1ULL << 0)	/* also report the process's timers */
#define CKPT_DUMP_PROCESS	(1ULL << 1)	/* also report @process */

/* struct ckpt_dump_task.process */
#define CKPT_PROCESS_CHILD_SUBREAPER (1ULL << 0) /* prctl(PR_SET_CHILD_SUBREAPER) is set */

/* struct ckpt_dump_task.timers */
#define CKPT_TIMER_REAL		(1ULL << 0)	/* setitimer(ITIMER_REAL) or alarm() armed */
#define CKPT_TIMER_VIRTUAL	(1ULL << 1)	/* setitimer(ITIMER_VIRTUAL) armed */
#define CKPT_TIMER_PROF		(1ULL << 2)	/* setitimer(ITIMER_PROF) armed */
#define CKPT_TIMER_POSIX	(1ULL << 3)	/* timer_create() timers exist */

#define CKPT_IOC_DUMP_TASK	_IOWR(CKPT_IOC_MAGIC, 0x18, struct ckpt_dump_task)

#endif /* _UAPI_LINUX_CKPT_H */

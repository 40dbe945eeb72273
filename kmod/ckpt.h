/* SPDX-License-Identifier: GPL-2.0 */
/* Internal declarations shared by the files of ckpt.ko. Only non-static symbols carry ckpt_. */
#ifndef CKPT_INTERNAL_H
#define CKPT_INTERNAL_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/xarray.h>
#include <linux/ckpt.h>
#include "compat.h"

/* user.c: what the sessions of one uid hold (max_user_sessions, max_user_kmem_kb). */
struct ckpt_user {
	struct hlist_node node;		/* in the uid hash, under its lock (user.c) */
	kuid_t uid;
	unsigned int sessions;		/* open sessions, under that lock; freed at 0 */
	atomic_long_t kmem;		/* bytes charged: regions, logs, hold copies, restores */
};

/*
 * A tracked range. Its dirty log is a two-level bitmap preallocated at REGISTER:
 * l0 has one bit per page, l1 one bit per l0 word that may be non-zero. Writers (the fault
 * hook, the mmu notifier) set the l0 bit and then the l1 bit, lock-free; COLLECT clears the l1
 * bit and then takes the l0 word with xchg, so it costs O(dirty + pages / 4096) and a bit set
 * concurrently is either taken now or left for the next COLLECT, never lost.
 */
struct ckpt_region {
	struct list_head mm_node;	/* in ckpt_mm.regions: RCU readers, ckpt_mm.lock writers */
	struct list_head s_node;	/* in ckpt_session.regions: RCU readers (the netlink
					 * status), ckpt_session.lock writers */
	struct ckpt_region *dead_next;	/* removal: the regions waiting for a grace period */
	struct rcu_head rcu;
	u64 id;
	struct ckpt_user *user;		/* charged for its memory; outlives the region */
	unsigned long start, end;	/* [start, end), page-aligned */
	unsigned long pages;
	unsigned long l0_words;
	unsigned long *l0;
	unsigned long *l1;
	int seen_missed;		/* ckpt_fault_missed() already folded into the log */
	atomic64_t faults;		/* write faults logged */
	atomic64_t invalidations;	/* pages logged by the mmu notifier */
	/* Written under ckpt_session.lock (read racily by the netlink status): */
	u64 collects, collected, thp_splits, kept;
	unsigned long pass_pos;		/* where an unfinished array COLLECT pass resumes, 0 = none */
	/* Held pages (hold.c): copy-before-write for asynchronous checkpoints. */
	spinlock_t hold_lock;		/* protects @held's bits against END; see hold.c */
	unsigned long *held;		/* one bit per page, NULL until the first HOLD COLLECT */
	bool holding;			/* a hold is open (some bit may be set) */
	struct xarray copies;		/* page index -> struct page *, the pre-write copies */
	atomic_long_t ncopies;		/* entries in @copies (RELEASE's @remaining) */
	atomic_t hold_lost;		/* held pages changed without a copy since the last END */
};

/*
 * The tracking state of one address space, shared by every session tracking it. It is the
 * mmu notifier of that mm (mmu_notifier_get() returns the same one to every session) and is
 * found from the fault hook through an RCU hash keyed by the mm pointer.
 */
struct ckpt_mm {
	struct mmu_notifier mn;
	struct hlist_node hnode;	/* ckpt_mm hash: RCU readers, writers hold the hash lock */
	struct list_head regions;	/* every session's regions of this mm */
	spinlock_t lock;		/* protects changes to @regions */
	bool dead;			/* the mm exited (notifier release) */
	struct mutex split_lock;	/* one THP split on our behalf at a time; */
	struct task_struct *splitter;	/* the task doing it: its own CLEAR events are not writes */
	/*
	 * Other mmu notifiers (mm.c, ckpt_mm_secondary()). Set under the mmap write lock:
	 * @inherited and @head_pprev once, when this state is made; @itree (sticky) by the
	 * probe on __mmu_notifier_register() for an interval notifier.
	 */
	bool inherited;			/* the mm had notifier subscriptions before ours */
	bool itree;			/* an interval notifier was registered since */
	struct hlist_node **head_pprev;	/* mn.hlist.pprev when ours was alone in the list */
	unsigned long flags;		/* CKPT_MM_* bits */
	struct list_head exit_node;	/* module exit's list of states to put */
	struct list_head watches;	/* ckpt_watch_set.cm_node (watch.c): RCU readers (the
					 * fault hook), @lock writers */
};

/* ckpt_mm.flags: the mm's own reference (taken at creation) was put: by release or exit. */
#define CKPT_MM_LIFETIME_PUT	0

/*
 * One open file of /dev/ckpt. Its ioctls run under @lock, which may be held for long (a
 * helper thread parked in RESTORE_THREAD, a COLLECT waiting for the mmap lock). The netlink
 * status never takes it: it walks ckpt_sessions and each session's @regions under RCU and
 * reads the counters and the identity racily (a snapshot, not a consistent one). A session
 * is freed an RCU grace period after it left ckpt_sessions.
 */
struct ckpt_session {
	struct mutex lock;	/* serialises ioctls of this session; protects the fields below */
	bool api_done;		/* CKPT_IOC_API succeeded; other commands refused before */
	bool attached;		/* CKPT_IOC_ATTACH succeeded */
	struct mm_struct *mm;	/* the bound address space (mmgrab'ed), NULL if none */
	struct ckpt_mm *cm;	/* its tracking state, from the first REGISTER on */
	struct list_head regions;	/* ckpt_region.s_node, sorted by start */
	unsigned int nr_regions;
	u64 next_id;
	u64 seq;		/* COLLECT calls */
	/* An unfinished id-0 array COLLECT pass resumes at the region starting here, 0 = none. */
	unsigned long pass_start;
	u64 collected;		/* pages reported, all regions, also removed ones */
	u64 old_faults;		/* faults of removed regions */
	/* Identity for the netlink status, set at open and ATTACH. */
	pid_t tgid;
	char comm[TASK_COMM_LEN];
	kuid_t uid;
	struct ckpt_user *user;	/* the opener's euid: what this session holds is charged there */
	struct list_head node;	/* ckpt_sessions: RCU readers, ckpt_sessions_lock writers */
	struct rcu_head rcu;
	struct ckpt_restore *restore;	/* restore.h: a prepared restore, or NULL; under @lock */
	struct ckpt_watch_set *watch;	/* watch.c: CKPT_IOC_WATCH's set, or NULL; under @lock */
};

extern struct list_head ckpt_sessions;
extern spinlock_t ckpt_sessions_lock;	/* changes to ckpt_sessions; nothing nests inside */

/* dev.c */
int ckpt_dev_init(void);
void ckpt_dev_exit(void);

/* session.c: the ioctls, and what collect.c shares (under ckpt_session.lock) */
long ckpt_ioc_register(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_unregister(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_stats(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_attach(struct ckpt_session *s, void __user *uarg);
struct ckpt_region *ckpt_session_region(struct ckpt_session *s, u64 id);
struct mm_struct *ckpt_session_mm(struct ckpt_session *s);
void ckpt_relog_page(void *arg, unsigned long addr);

/* collect.c */
long ckpt_ioc_collect(struct ckpt_session *s, void __user *uarg, u64 *count);
void ckpt_session_teardown(struct ckpt_session *s);
void ckpt_session_sum(struct ckpt_session *s, struct ckpt_stats *st);

/* user.c */
struct ckpt_user *ckpt_user_get(kuid_t uid);
void ckpt_user_put(struct ckpt_user *u);
bool ckpt_user_charge(struct ckpt_user *u, unsigned long bytes);
void ckpt_user_uncharge(struct ckpt_user *u, unsigned long bytes);

/* log.c: the dirty bitmaps */
struct ckpt_region *ckpt_region_alloc(unsigned long start, unsigned long len,
				      struct ckpt_user *user);
void ckpt_region_free(struct ckpt_region *r);
void ckpt_log_mark(struct ckpt_region *r, unsigned long first, unsigned long n);
void ckpt_log_mark_addr(struct ckpt_region *r, unsigned long start, unsigned long end);
unsigned long ckpt_log_take(struct ckpt_region *r, u64 *out, unsigned long max,
			    unsigned long *pos);
unsigned long ckpt_log_count_from(struct ckpt_region *r, unsigned long pos);
unsigned long ckpt_log_take_bitmap(struct ckpt_region *r, unsigned long *out);
/* Pages logged now, the whole region. */
static inline unsigned long ckpt_log_count(struct ckpt_region *r)
{
	return ckpt_log_count_from(r, 0);
}

/* mm.c: per-mm state and the mmu notifier */
int ckpt_mm_init(void);
void ckpt_mm_exit(void);
struct ckpt_mm *ckpt_mm_get(struct mm_struct *mm);
void ckpt_mm_put(struct ckpt_mm *cm);
struct ckpt_mm *ckpt_mm_lookup(struct mm_struct *mm);	/* RCU */
bool ckpt_mm_tracks(struct ckpt_mm *cm, unsigned long addr);	/* RCU */
void ckpt_mm_log(struct ckpt_mm *cm, unsigned long start, unsigned long end,
		 struct vm_area_struct *fault_vma);
void ckpt_mm_add(struct ckpt_mm *cm, struct ckpt_region *r);
void ckpt_mm_del(struct ckpt_mm *cm, struct ckpt_region *r);
bool ckpt_mm_secondary(struct ckpt_mm *cm);	/* another mmu notifier: -EXDEV; mmap lock held */

/* hold.c: held pages (CKPT_COLLECT_HOLD, CKPT_IOC_RELEASE) */
void ckpt_hold_init(struct ckpt_region *r);
int ckpt_hold_prepare(struct ckpt_region *r);
void ckpt_hold_pages(struct ckpt_region *r, const u64 *addr, unsigned long n);
void ckpt_hold_fault(struct vm_area_struct *vma, struct ckpt_region *r, unsigned long start,
		     unsigned long end);
void ckpt_hold_invalidate(struct ckpt_region *r, unsigned long start, unsigned long end);
void ckpt_hold_free(struct ckpt_region *r);
long ckpt_ioc_release(struct ckpt_session *s, void __user *uarg);

/* watch.c: writes of watched threads (CKPT_IOC_WATCH) */
struct ckpt_watch_set;
long ckpt_ioc_watch(struct ckpt_session *s, void __user *uarg);
void ckpt_watch_fault(struct ckpt_mm *cm, unsigned long addr);	/* RCU */
void ckpt_watch_link(struct ckpt_session *s);
void ckpt_watch_free(struct ckpt_session *s);

/* fault.c: the write-fault hook */
int ckpt_fault_init(void);
void ckpt_fault_exit(void);
int ckpt_fault_get(void);	/* a region exists: hook armed, or -errno */
void ckpt_fault_put(void);
int ckpt_fault_missed(void);	/* hook calls skipped (recursion) since load */

/* pgtable.c: write-protection and TLB */
struct ckpt_wp {
	struct mm_struct *mm;
	struct ckpt_mm *cm;
	struct vm_area_struct *vma;	/* cache of the last lookup */
	bool flush;			/* a PTE lost its write bit: a flush is pending (mm's
					 * tlb_flush_pending raised), ckpt_flush_tlb_*() before returning */
	unsigned long splits;		/* huge PMDs split */
};
bool ckpt_vma_supported(struct vm_area_struct *vma);
pmd_t *ckpt_pmd_lookup(struct mm_struct *mm, unsigned long addr);
void ckpt_wp_range(struct ckpt_wp *w, unsigned long start, unsigned long end,
		   void (*sticky)(void *arg, unsigned long addr), void *arg);
void ckpt_wp_pages(struct ckpt_wp *w, const u64 *addr, unsigned long n,
		   void (*sticky)(void *arg, unsigned long addr), void *arg);
void ckpt_flush_tlb_mm(struct ckpt_wp *w);
void ckpt_flush_tlb_pages(struct ckpt_wp *w, const u64 *addr, unsigned long n);
void ckpt_flush_tlb_bitmap(struct ckpt_wp *w, unsigned long base, const unsigned long *bm,
			   unsigned long words, unsigned long n);

/* genl.c */
int ckpt_genl_init(void);
void ckpt_genl_exit(void);

/* restore.c (PREPARE), commit.c (COMMIT, THREAD), dump.c: whole-process restore and dump */
struct ckpt_restore;
long ckpt_ioc_restore_prepare(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_restore_commit(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_restore_thread(struct ckpt_session *s, void __user *uarg);
long ckpt_ioc_dump_task(struct ckpt_session *s, void __user *uarg);
void ckpt_restore_free(struct ckpt_restore *r);

/* Reserved fields of every ioctl struct must be zero (the UAPI's rule). */
static inline bool ckpt_all_zero(const __u64 *v, size_t n)
{
	while (n--)
		if (*v++)
			return false;
	return true;
}

#endif

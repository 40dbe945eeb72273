// SPDX-License-Identifier: GPL-2.0
/*
 * What one user may pin in ckpt.ko (issue 15, "No unbounded kernel memory").
 *
 * Every session is charged to the effective uid that opened it (as inotify instances are).
 * Per uid the module counts its open sessions and the kernel memory its sessions hold: region
 * structures and dirty logs, hold bitmaps, held-page copies, staged restores. Two module
 * parameters cap them:
 *
 *   max_user_sessions  open /dev/ckpt files per uid; beyond it open() fails with -EMFILE.
 *   max_user_kmem_kb   kernel memory per uid; beyond it REGISTER, the first HOLD COLLECT of a
 *                      region and RESTORE_PREPARE fail with -ENOSPC, and a held page written
 *                      while no copy fits counts as lost (struct ckpt_release.lost).
 *
 * The same allocations are also charged to the caller's memory cgroup (__GFP_ACCOUNT): the cap
 * bounds one user machine-wide, the memcg bounds a container. Both are read at each charge, so
 * a lower value takes effect for new charges; what is already held stays until it is freed.
 *
 * Locking: ckpt_users_lock (spinlock) protects the hash and each entry's @sessions; @kmem is
 * atomic and may be charged from the fault hook (preemption disabled). An entry lives while
 * one of its sessions is open; a region or restore of a session points at it no longer than
 * that session lives.
 */
#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include "ckpt.h"

static unsigned int max_user_sessions = 1024;
module_param(max_user_sessions, uint, 0644);
MODULE_PARM_DESC(max_user_sessions, "open /dev/ckpt files per uid (open: -EMFILE beyond)");

static unsigned long max_user_kmem_kb = 256 * 1024;
module_param(max_user_kmem_kb, ulong, 0644);
MODULE_PARM_DESC(max_user_kmem_kb,
		 "kernel memory (KiB) the sessions of one uid may hold: logs, held copies, staged restores");

static DEFINE_HASHTABLE(ckpt_users, 6);
static DEFINE_SPINLOCK(ckpt_users_lock);

/* The accounting entry of @uid with one more session, or ERR_PTR(-EMFILE / -ENOMEM). */
struct ckpt_user *ckpt_user_get(kuid_t uid)
{
	unsigned long key = __kuid_val(uid);
	struct ckpt_user *u, *fresh = NULL;

	for (;;) {
		spin_lock(&ckpt_users_lock);
		hash_for_each_possible(ckpt_users, u, node, key)
			if (uid_eq(u->uid, uid))
				break;
		if (!u && fresh) {
			u = fresh;
			fresh = NULL;
			hash_add(ckpt_users, &u->node, key);
		}
		if (u) {
			if (u->sessions >= READ_ONCE(max_user_sessions))
				u = ERR_PTR(-EMFILE);
			else
				u->sessions++;
			spin_unlock(&ckpt_users_lock);
			kfree(fresh);
			return u;
		}
		spin_unlock(&ckpt_users_lock);
		/* First session of this uid: allocate outside the lock and look again. */
		fresh = kzalloc(sizeof(*fresh), GFP_KERNEL_ACCOUNT);
		if (!fresh)
			return ERR_PTR(-ENOMEM);
		fresh->uid = uid;
		atomic_long_set(&fresh->kmem, 0);
	}
}

/* A session of @u closed; everything it charged has been uncharged. */
void ckpt_user_put(struct ckpt_user *u)
{
	spin_lock(&ckpt_users_lock);
	if (--u->sessions) {
		u = NULL;
	} else {
		WARN_ON_ONCE(atomic_long_read(&u->kmem));
		hash_del(&u->node);
	}
	spin_unlock(&ckpt_users_lock);
	kfree(u);
}

/* Charge @bytes of kernel memory to @u; false (nothing charged) past max_user_kmem_kb. Any context. */
bool ckpt_user_charge(struct ckpt_user *u, unsigned long bytes)
{
	unsigned long kb = READ_ONCE(max_user_kmem_kb);
	long max = kb > LONG_MAX / 1024 ? LONG_MAX : (long)kb * 1024;

	if (bytes > max)
		return false;
	if (atomic_long_add_return(bytes, &u->kmem) > max) {
		atomic_long_sub(bytes, &u->kmem);
		return false;
	}
	return true;
}

void ckpt_user_uncharge(struct ckpt_user *u, unsigned long bytes)
{
	atomic_long_sub(bytes, &u->kmem);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * CKPT_IOC_COLLECT (ioctl and io_uring): take a session's logs and write-protect exactly the
 * reported pages again, in array, bitmap or peek mode, with or without a hold.
 * Every function here runs with ckpt_session.lock held (dev.c) and may sleep.
 *
 * Lock order as in session.c: ckpt_session.lock -> mmap_lock -> ckpt_mm.split_lock ->
 * ckpt_mm.lock. The logs are taken and the pages protected under the mmap write lock, so no
 * write fault of the tracked mm is in progress meanwhile (see fault.c); nothing is copied to
 * user memory while it is held.
 */
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

/* Page addresses handled per mmap lock hold in array mode (the kernel buffer size). */
#define COLLECT_CHUNK 65536UL

/* Fold missed hook instances into the log: every page of the region counts as written. */
static void check_missed(struct ckpt_region *r)
{
	int missed = ckpt_fault_missed();

	if (missed != r->seen_missed) {
		r->seen_missed = missed;
		ckpt_log_mark(r, 0, r->pages);
	}
}

/* Re-log the pages of @addrs that belong to the session's regions (a failed copy-out). */
static void relog(struct ckpt_session *s, const u64 *addrs, unsigned long n)
{
	struct ckpt_region *r = NULL;

	while (n--) {
		unsigned long a = *addrs++;

		if (!r || a < r->start || a >= r->end)
			list_for_each_entry(r, &s->regions, s_node)
				if (a >= r->start && a < r->end)
					break;
		ckpt_log_mark_addr(r, a, a + PAGE_SIZE);
	}
}

/*
 * Under the mmap write lock, before COLLECT takes bits: an mmu notifier that appeared since
 * REGISTER (a KVM VM created on this mm, say) may have written through its own mappings
 * unseen, and would keep doing so. Fail with -EXDEV and log every page of the session, so the
 * first COLLECT after it went away reports everything.
 */
static int check_secondary(struct ckpt_session *s)
{
	struct ckpt_region *r;

	if (!ckpt_mm_secondary(s->cm))
		return 0;
	list_for_each_entry(r, &s->regions, s_node)
		ckpt_log_mark(r, 0, r->pages);
	return -EXDEV;
}

/*
 * Takes the mmap write lock for a COLLECT that takes bits: no fault of @mm is half-way through
 * meanwhile (see fault.c). Returns 0 with the lock held, or an error without it (killed while
 * waiting, or check_secondary()'s -EXDEV).
 */
static int collect_lock(struct ckpt_session *s, struct mm_struct *mm)
{
	int ret = mmap_write_lock_killable(mm);

	if (ret)
		return ret;
	ret = check_secondary(s);
	if (ret)
		mmap_write_unlock(mm);
	return ret;
}

/*
 * Array mode's bounce buffer, sized by what is logged now (more may come: it is taken next
 * round), at most COLLECT_CHUNK and the caller's @room pages; with @hold, each region's hold
 * is made ready first. Sets *@chunk to its size in pages and *@kbuf (NULL when 0).
 */
static int array_buffer(struct ckpt_session *s, struct ckpt_region *only, bool hold,
			unsigned long room, unsigned long *chunk, u64 **kbuf)
{
	unsigned long logged = 0;
	struct ckpt_region *r;
	int ret;

	list_for_each_entry(r, &s->regions, s_node) {
		if (only && r != only)
			continue;
		logged += ckpt_log_count(r);
		if (hold) {
			ret = ckpt_hold_prepare(r);
			if (ret)
				return ret;
		}
	}
	*chunk = min3(room, COLLECT_CHUNK, max(logged, 64UL));
	*kbuf = NULL;
	if (*chunk) {
		*kbuf = kvmalloc_array(*chunk, sizeof(u64), GFP_KERNEL_ACCOUNT);
		if (!*kbuf)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Array mode, one region: takes its logged pages from r->pass_pos on, at most *@room of them,
 * @chunk (the size of @kbuf) per mmap lock hold; write-protects them (and holds them with
 * CKPT_COLLECT_HOLD) and appends their addresses to the caller's buffer at a->count. On a
 * failed copy the pages of that chunk are logged again and r->pass_pos goes back before them.
 */
static long array_region(struct ckpt_session *s, struct mm_struct *mm, struct ckpt_collect *a,
			 struct ckpt_region *r, u64 *kbuf, unsigned long chunk,
			 unsigned long *room)
{
	u64 __user *ubuf = u64_to_user_ptr(a->buf);
	bool hold = a->flags & CKPT_COLLECT_HOLD;
	long ret;

	check_missed(r);
	r->collects++;
	while (*room) {
		unsigned long pos0 = r->pass_pos;
		struct ckpt_wp w = { .mm = mm, .cm = s->cm };
		unsigned long n, i;

		ret = collect_lock(s, mm);
		if (ret)
			return ret;
		n = ckpt_log_take(r, kbuf, min(*room, chunk), &r->pass_pos);
		for (i = 0; i < n; i++)
			kbuf[i] = r->start + (kbuf[i] << PAGE_SHIFT);
		ckpt_wp_pages(&w, kbuf, n, ckpt_relog_page, r);
		/* Under the write lock: no fault runs between the protection and the hold. */
		if (hold)
			ckpt_hold_pages(r, kbuf, n);
		mmap_write_unlock(mm);
		ckpt_flush_tlb_pages(&w, kbuf, n);
		r->thp_splits += w.splits;
		if (!n)
			break;
		if (copy_to_user(ubuf + a->count, kbuf, n * sizeof(u64))) {
			relog(s, kbuf, n);
			r->pass_pos = pos0;
			return -EFAULT;
		}
		a->count += n;
		*room -= n;
		r->collected += n;
		if (r->pass_pos >= r->pages)
			break;	/* the pass reached the region's end */
	}
	return 0;
}

/* Array mode: page addresses, region after region, at most buf_len / 8 of them. */
static long collect_array(struct ckpt_session *s, struct mm_struct *mm, struct ckpt_collect *a,
			  struct ckpt_region *only)
{
	unsigned long room = a->buf_len / sizeof(u64), chunk;
	struct ckpt_region *r, *stop = NULL;	/* @stop: where the pass resumes */
	u64 *kbuf;
	long ret;

	ret = array_buffer(s, only, a->flags & CKPT_COLLECT_HOLD, room, &chunk, &kbuf);
	if (ret)
		return ret;
	/*
	 * A pass visits the logged pages once, in address order, over as many calls as the
	 * caller's buffer needs: r->pass_pos (and s->pass_start for id 0) say where it resumes.
	 * Pages logged behind it (written meanwhile, or kept logged by ckpt_relog_page) wait for the
	 * next pass, so a caller looping while @remaining != 0 always ends.
	 */
	a->remaining = 0;
	list_for_each_entry(r, &s->regions, s_node) {
		if (only && r != only)
			continue;
		if (!only && s->pass_start && r->start < s->pass_start)
			continue;	/* done earlier in this pass */
		if (!room) {
			unsigned long left = ckpt_log_count_from(r, r->pass_pos);

			if (left && !stop)
				stop = r;
			a->remaining += left;
			continue;
		}
		ret = array_region(s, mm, a, r, kbuf, chunk, &room);
		if (ret)
			goto out;
		if (r->pass_pos >= r->pages) {
			r->pass_pos = 0;
		} else if (r->pass_pos) {
			a->remaining += ckpt_log_count_from(r, r->pass_pos);
			stop = r;
		}
	}
	/* Nothing left ahead: the pass is complete, the next call starts a new one. */
	if (!a->remaining) {
		list_for_each_entry(r, &s->regions, s_node)
			if (!only || r == only)
				r->pass_pos = 0;
		stop = NULL;
	}
	if (!only)
		s->pass_start = stop ? stop->start : 0;
out:
	kvfree(kbuf);
	return ret;
}

static long collect_bitmap(struct ckpt_session *s, struct mm_struct *mm, struct ckpt_collect *a,
			   struct ckpt_region *r)
{
	unsigned long bytes = r->l0_words * sizeof(long);
	struct ckpt_wp w = { .mm = mm, .cm = s->cm };
	unsigned long *kbm, wi;
	long ret = 0;

	if (a->buf_len < bytes)
		return -EINVAL;
	kbm = kvzalloc(bytes, GFP_KERNEL_ACCOUNT);
	if (!kbm)
		return -ENOMEM;
	check_missed(r);
	r->collects++;
	ret = collect_lock(s, mm);
	if (ret)
		goto out;
	r->pass_pos = 0;	/* a bitmap COLLECT is a whole pass: it ends any array pass */
	a->count = ckpt_log_take_bitmap(r, kbm);
	for (wi = 0; wi < r->l0_words; wi++) {
		unsigned long word = kbm[wi], n = 0;
		u64 addrs[BITS_PER_LONG];

		while (word) {
			unsigned long idx = wi * BITS_PER_LONG + __ffs(word);

			word &= word - 1;
			addrs[n++] = r->start + (idx << PAGE_SHIFT);
		}
		ckpt_wp_pages(&w, addrs, n, ckpt_relog_page, r);
	}
	mmap_write_unlock(mm);
	ckpt_flush_tlb_bitmap(&w, r->start, kbm, r->l0_words, a->count);
	r->thp_splits += w.splits;
	if (copy_to_user(u64_to_user_ptr(a->buf), kbm, bytes)) {
		for (wi = 0; wi < r->l0_words; wi++)
			if (kbm[wi]) {
				atomic_long_or(kbm[wi], (atomic_long_t *)&r->l0[wi]);
				set_bit(wi, r->l1);
			}
		a->count = 0;
		ret = -EFAULT;
	} else {
		r->collected += a->count;
	}
out:
	kvfree(kbm);
	return ret;
}

/* PEEK: report without taking. Array mode only reports the first pages that fit. */
static long collect_peek(struct ckpt_session *s, struct ckpt_collect *a, struct ckpt_region *only)
{
	unsigned long room = a->buf_len / sizeof(u64);
	u64 __user *ubuf = u64_to_user_ptr(a->buf);
	bool bitmap = a->flags & CKPT_COLLECT_BITMAP;
	struct ckpt_region *r;

	list_for_each_entry(r, &s->regions, s_node) {
		unsigned long wi;

		if (only && r != only)
			continue;
		check_missed(r);
		if (bitmap) {
			if (a->buf_len < r->l0_words * sizeof(long))
				return -EINVAL;
			if (clear_user(ubuf, r->l0_words * sizeof(long)))
				return -EFAULT;
		}
		for_each_set_bit(wi, r->l1, r->l0_words) {
			unsigned long word = READ_ONCE(r->l0[wi]);

			if (bitmap) {
				if (word && put_user(word, ubuf + wi))
					return -EFAULT;
				a->count += hweight_long(word);
				continue;
			}
			while (word && room) {
				u64 addr = r->start + ((wi * BITS_PER_LONG + __ffs(word)) << PAGE_SHIFT);

				word &= word - 1;
				if (put_user(addr, ubuf + a->count))
					return -EFAULT;
				a->count++;
				room--;
			}
		}
	}
	return 0;
}

long ckpt_ioc_collect(struct ckpt_session *s, void __user *uarg, u64 *count)
{
	struct ckpt_collect a;
	struct ckpt_region *r = NULL;
	struct mm_struct *mm;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~(CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK | CKPT_COLLECT_HOLD)) ||
	    !ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	/* A hold is of what an array COLLECT takes and protects. */
	if ((a.flags & CKPT_COLLECT_HOLD) && (a.flags & (CKPT_COLLECT_BITMAP | CKPT_COLLECT_PEEK)))
		return -EINVAL;
	/* @count, @remaining and @seq are outputs: whatever they hold on input is ignored. */
	a.count = 0;
	if (!(a.flags & CKPT_COLLECT_BITMAP) && (a.buf_len % sizeof(u64)))
		return -EINVAL;
	if ((a.flags & CKPT_COLLECT_BITMAP) && !a.id)
		return -EINVAL;
	if (a.id) {
		r = ckpt_session_region(s, a.id);
		if (!r)
			return -ENOENT;
	}
	mm = ckpt_session_mm(s);
	if (!mm)
		return -ESRCH;

	if (a.flags & CKPT_COLLECT_PEEK)
		ret = collect_peek(s, &a, r);
	else if (a.flags & CKPT_COLLECT_BITMAP)
		ret = collect_bitmap(s, mm, &a, r);
	else
		ret = collect_array(s, mm, &a, r);
	mmput(mm);
	if (ret)
		return ret;
	if (!(a.flags & CKPT_COLLECT_PEEK)) {
		s->seq++;
		s->collected += a.count;
	}
	a.seq = s->seq;
	if (a.flags & CKPT_COLLECT_PEEK) {
		a.remaining = 0;
		list_for_each_entry(r, &s->regions, s_node)
			if (!a.id || r->id == a.id)
				a.remaining += ckpt_log_count(r);
	} else if (a.flags & CKPT_COLLECT_BITMAP) {
		a.remaining = 0;	/* one call is a whole pass */
	}
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	*count = a.count;
	return 0;
}

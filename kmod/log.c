// SPDX-License-Identifier: GPL-2.0
/*
 * The dirty log of a region: a two-level bitmap, set lock-free from the fault hook and the mmu
 * notifier (any context, including non-blockable notifier calls), taken by COLLECT.
 *
 * Ordering: a writer sets the l0 bit, then the l1 bit (both atomic, full barriers on x86).
 * COLLECT clears the l1 bit, then xchg()es the l0 word. A mark racing with COLLECT either lands
 * in the word before the xchg (taken now) or after it, in which case its l1 bit is set after
 * COLLECT cleared it and the next COLLECT finds it. Nothing is ever lost; at worst the next
 * COLLECT visits an empty word.
 */
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "ckpt.h"

/* kvmalloc() warns above INT_MAX; 1 GiB of l0 covers 32 TiB, more than any real region. */
#define MAX_L0_BYTES (1UL << 30)

/* What a region of @pages pages holds in kernel memory (charged to its user). */
static unsigned long region_bytes(unsigned long pages)
{
	unsigned long l0_words = BITS_TO_LONGS(pages);

	return sizeof(struct ckpt_region) + (l0_words + BITS_TO_LONGS(l0_words)) * sizeof(long);
}

/* A region, charged to @user; ERR_PTR(-ENOSPC) past the user's cap, ERR_PTR(-ENOMEM). */
struct ckpt_region *ckpt_region_alloc(unsigned long start, unsigned long len,
				      struct ckpt_user *user)
{
	struct ckpt_region *r;
	unsigned long pages = len >> PAGE_SHIFT;
	unsigned long l0_words = BITS_TO_LONGS(pages);

	if (l0_words * sizeof(long) > MAX_L0_BYTES)
		return ERR_PTR(-ENOMEM);
	if (!ckpt_user_charge(user, region_bytes(pages)))
		return ERR_PTR(-ENOSPC);
	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		goto err_charge;
	r->l0 = kvzalloc(l0_words * sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!r->l0)
		goto err_r;
	r->l1 = kvzalloc(BITS_TO_LONGS(l0_words) * sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!r->l1)
		goto err_l0;
	r->user = user;
	r->start = start;
	r->end = start + len;
	r->pages = pages;
	r->l0_words = l0_words;
	INIT_LIST_HEAD(&r->mm_node);
	INIT_LIST_HEAD(&r->s_node);
	ckpt_hold_init(r);
	return r;

err_l0:
	kvfree(r->l0);
err_r:
	kfree(r);
err_charge:
	ckpt_user_uncharge(user, region_bytes(pages));
	return ERR_PTR(-ENOMEM);
}

void ckpt_region_free(struct ckpt_region *r)
{
	ckpt_hold_free(r);
	kvfree(r->l1);
	kvfree(r->l0);
	ckpt_user_uncharge(r->user, region_bytes(r->pages));
	kfree(r);
}

/* Log pages [first, first + n) of @r. Atomic only: callable from any context. */
void ckpt_log_mark(struct ckpt_region *r, unsigned long first, unsigned long n)
{
	unsigned long end = first + n;

	while (first < end) {
		unsigned long w = first / BITS_PER_LONG;
		unsigned long b = first % BITS_PER_LONG;
		unsigned long k = min(end - first, BITS_PER_LONG - b);
		unsigned long mask = (k == BITS_PER_LONG ? ~0UL : ((1UL << k) - 1)) << b;

		atomic_long_or(mask, (atomic_long_t *)&r->l0[w]);
		set_bit(w, r->l1);
		first += k;
	}
}

/* Log the pages of [start, end) ∩ @r. */
void ckpt_log_mark_addr(struct ckpt_region *r, unsigned long start, unsigned long end)
{
	start = max(start & PAGE_MASK, r->start);
	end = min(PAGE_ALIGN(end), r->end);
	if (start < end)
		ckpt_log_mark(r, (start - r->start) >> PAGE_SHIFT, (end - start) >> PAGE_SHIFT);
}

/*
 * Take up to @max logged pages with index >= *@pos, lowest first, writing their page indices
 * to @out. Pages that do not fit stay logged. *@pos becomes the index after the last page
 * taken if @max was reached, else r->pages (nothing left at or after it). Pages below *@pos
 * are left alone: a COLLECT pass that goes on over several calls never takes a page twice,
 * even one re-logged behind it (see ckpt_collect.remaining). Returns the number taken.
 */
unsigned long ckpt_log_take(struct ckpt_region *r, u64 *out, unsigned long max,
			    unsigned long *pos)
{
	unsigned long n = 0, w = *pos / BITS_PER_LONG, first = w;

	if (!max || *pos >= r->pages)
		return 0;
	for_each_set_bit_from(w, r->l1, r->l0_words) {
		unsigned long mask = w == first ? BITMAP_FIRST_WORD_MASK(*pos) : ~0UL;
		unsigned long word;

		if (n == max)
			break;
		/*
		 * Clear the summary bit before taking the word: a concurrent mark sets l0 and then
		 * l1, so a bit it adds after our take is still found. Bits below *@pos that we did
		 * not take keep their summary bit.
		 */
		clear_bit(w, r->l1);
		word = atomic_long_fetch_andnot(mask, (atomic_long_t *)&r->l0[w]);
		if (word & ~mask)
			set_bit(w, r->l1);
		word &= mask;
		while (word) {
			if (n == max) {
				/* Put back what does not fit; still dirty. */
				atomic_long_or(word, (atomic_long_t *)&r->l0[w]);
				set_bit(w, r->l1);
				*pos = out[n - 1] + 1;
				return n;
			}
			out[n++] = w * BITS_PER_LONG + __ffs(word);
			word &= word - 1;
		}
	}
	*pos = n == max && n ? out[n - 1] + 1 : r->pages;
	return n;
}

/* Logged pages with index >= @pos; O(pages / 4096 + dirty words). */
unsigned long ckpt_log_count_from(struct ckpt_region *r, unsigned long pos)
{
	unsigned long n = 0, w = pos / BITS_PER_LONG, first = w;

	if (pos >= r->pages)
		return 0;
	for_each_set_bit_from(w, r->l1, r->l0_words) {
		unsigned long mask = w == first ? BITMAP_FIRST_WORD_MASK(pos) : ~0UL;

		n += hweight_long(READ_ONCE(r->l0[w]) & mask);
	}
	return n;
}

/* Take the whole log into @out (l0_words words, zeroed by the caller). Returns pages taken. */
unsigned long ckpt_log_take_bitmap(struct ckpt_region *r, unsigned long *out)
{
	unsigned long n = 0, w;

	for_each_set_bit(w, r->l1, r->l0_words) {
		clear_bit(w, r->l1);
		out[w] = xchg(&r->l0[w], 0UL);
		n += hweight_long(out[w]);
	}
	return n;
}


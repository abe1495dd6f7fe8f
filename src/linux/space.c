/* SPDX-License-Identifier: MIT */
/*
 * space.c - one address space: its registered ranges, the per-page
 * records and the VMA budget.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

/* ------------------------------------------------------------------------
 * Ranges and records.
 * --------------------------------------------------------------------- */
size_t sp_range_index(struct samepage *sp, uint64_t vpn)
{
	size_t lo = 0, hi = sp->nranges;

	while (lo < hi) {		/* first range with end > vpn */
		size_t mid = (lo + hi) / 2;

		if (sp->ranges[mid].end > vpn)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct sp_range *sp_range_find(struct samepage *sp, uint64_t vpn)
{
	size_t i = sp_range_index(sp, vpn);

	if (i < sp->nranges && sp->ranges[i].start <= vpn)
		return &sp->ranges[i];
	return NULL;
}

/* Would pages with records @a, @b (a just below b) share one VMA? */
static bool vma_compat(struct samepage *sp, uint32_t a, uint32_t b)
{
	if (!rec_file(a) && !rec_file(b))
		return true;
	if (!rec_file(a) || !rec_file(b))
		return false;
	uint32_t x = a & REC_SLOT, y = b & REC_SLOT;

	return slot_nid(sp, x) == slot_nid(sp, y) &&
	       slot_off(sp, y) == slot_off(sp, x) + 1;
}

/* Change in the number of VMA boundaries if page @i of @r got record @rec. */
static long vma_delta(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	uint64_t n = r->end - r->start;
	uint32_t old = r->rec[i];
	long d = 0;

	if (i > 0)
		d += (long)!vma_compat(sp, r->rec[i - 1], rec) -
		     (long)!vma_compat(sp, r->rec[i - 1], old);
	if (i + 1 < n)
		d += (long)!vma_compat(sp, rec, r->rec[i + 1]) -
		     (long)!vma_compat(sp, old, r->rec[i + 1]);
	return d;
}

void sp_set_rec(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	sp->vma_est += vma_delta(sp, r, i, rec);
	r->rec[i] = rec;
}

void sp_recount_vmas(struct samepage *sp)
{
	long n = sp_count_vmas();

	sp->last_recount_ms = sp_now_ms();
	if (n >= 0)
		sp->vma_est = n + 2 * SP_PENDING;
}

/* May page @i of @r get record @rec without spending the VMA budget? */
bool sp_budget_ok(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	long d = vma_delta(sp, r, i, rec);

	if (d <= 0 || sp->vma_est + d <= sp->vma_limit)
		return true;
	if (sp_now_ms() - sp->last_recount_ms >= 1000) {
		sp_recount_vmas(sp);
		if (sp->vma_est + d <= sp->vma_limit)
			return true;
	}
	sp->vma_budget_refusals++;
	return false;
}

/* ------------------------------------------------------------------------
 * Ranges (sorted, disjoint).
 * --------------------------------------------------------------------- */
/* Join ranges i and i+1 if they touch and have the same protection. */
void sp_range_join(struct samepage *sp, size_t i)
{
	struct sp_range *a = &sp->ranges[i], *b = &sp->ranges[i + 1];

	if (a->end != b->start || a->prot != b->prot)
		return;
	uint32_t *rec = sp_arena_realloc(&sp->arena, a->rec,
					 (b->end - a->start) * sizeof(*rec));

	if (!rec)
		return;
	memcpy(rec + (a->end - a->start), b->rec, (b->end - b->start) * sizeof(*rec));
	sp_arena_free(&sp->arena, b->rec);
	a->rec = rec;
	a->end = b->end;
	memmove(b, b + 1, (sp->nranges - i - 2) * sizeof(*b));
	sp->nranges--;
}

/* Insert [start, end) with its records @rec (taken over); no coalescing. */
int sp_range_insert_rec(struct samepage *sp, uint64_t start, uint64_t end, int prot,
			    uint32_t *rec)
{
	if (sp->nranges == sp->cranges) {
		size_t c = sp->cranges ? sp->cranges * 2 : 16;
		struct sp_range *r = sp_arena_realloc(&sp->arena, sp->ranges, c * sizeof(*r));

		if (!r)
			return -ENOMEM;
		sp->ranges = r;
		sp->cranges = c;
	}
	size_t i = 0;

	while (i < sp->nranges && sp->ranges[i].start < start)
		i++;
	memmove(&sp->ranges[i + 1], &sp->ranges[i], (sp->nranges - i) * sizeof(*sp->ranges));
	sp->ranges[i] = (struct sp_range){ .start = start, .end = end, .prot = prot, .rec = rec };
	sp->nranges++;
	return 0;
}

int sp_range_insert(struct samepage *sp, uint64_t start, uint64_t end, int prot)
{
	uint32_t *rec = sp_arena_alloc(&sp->arena, (end - start) * sizeof(*rec));

	if (!rec || sp_range_insert_rec(sp, start, end, prot, rec)) {
		sp_arena_free(&sp->arena, rec);
		return -ENOMEM;
	}
	size_t i = 0;

	while (sp->ranges[i].start != start)
		i++;
	/* coalesce with the neighbours, so that ranges do not fragment */
	if (i + 1 < sp->nranges)
		sp_range_join(sp, i);
	if (i > 0)
		sp_range_join(sp, i - 1);
	return 0;
}

/* Forget [start, end) (already unmerged): unregister it from our uffd. */
int sp_range_remove(struct samepage *sp, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < sp->nranges;) {
		struct sp_range *r = &sp->ranges[i];

		if (r->end <= start || r->start >= end) {
			i++;
			continue;
		}
		uint64_t a = start > r->start ? start : r->start;
		uint64_t b = end < r->end ? end : r->end;

		(void)sp_os_unregister(&sp->os, a, b - a);
		if (a == r->start && b == r->end) {
			sp_arena_free(&sp->arena, r->rec);
			memmove(r, r + 1, (sp->nranges - i - 1) * sizeof(*r));
			sp->nranges--;
			continue;
		}
		if (a == r->start) {
			memmove(r->rec, r->rec + (b - r->start), (r->end - b) * sizeof(*r->rec));
			r->start = b;
		} else if (b == r->end) {
			r->end = a;
		} else {
			/* split: the tail becomes its own range */
			uint64_t tail_start = b, tail_end = r->end;
			int prot = r->prot;
			uint32_t *old = r->rec;
			uint64_t old_start = r->start;

			size_t bytes = (tail_end - tail_start) * sizeof(uint32_t);
			uint32_t *tail = sp_arena_alloc(&sp->arena, bytes);

			if (!tail)
				return -ENOMEM;
			memcpy(tail, old + (tail_start - old_start),
			       (tail_end - tail_start) * sizeof(*old));
			if (sp_range_insert_rec(sp, tail_start, tail_end, prot, tail)) {
				sp_arena_free(&sp->arena, tail);
				return -ENOMEM;
			}
			r = &sp->ranges[i];	/* (the array may have moved) */
			r->end = a;
		}
		i++;
	}
	return 0;
}


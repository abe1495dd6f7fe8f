/* SPDX-License-Identifier: MIT */
/*
 * ops.c - struct sp_backend_ops (src/core/backend.h) over the space and
 * the store.
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
 * The operations.
 * --------------------------------------------------------------------- */
static int op_find_range(void *be, void *mm, uint64_t vpn, uint64_t *start, uint64_t *end)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -ENOENT;
	size_t i = sp_range_index(sp, vpn);

	if (i >= sp->nranges)
		return -ENOENT;
	*start = sp->ranges[i].start;
	*end = sp->ranges[i].end;
	return 0;
}

static void describe_slot(struct samepage *sp, uint32_t id, struct sp_page *pg)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s || !(s->flags & SLOT_USED)) {
		pg->kind = SP_PAGE_NONE;
		return;
	}
	if (s->nid_gen != (uint32_t)sp->pm_gen) {
		/* one move_pages() per slot and lock hold */
		s->nid = (int16_t)sp_query_slot_nid(sp, id);
		s->nid_gen = (uint32_t)sp->pm_gen;
	}
	pg->kind = SP_PAGE_KSM;
	pg->pfn = id;
	pg->nid = s->nid;
	pg->mapcount = (int)s->count;
	pg->stable_node = s->node;
	/* a zero slot is a hole of the store: reading it through our view
	 * would allocate a page there */
	pg->data = (s->flags & SLOT_ZERO) ? (const void *)sp_zero_page_data : slot_data(sp, id);
}

static int look(struct samepage *sp, void *mm, uint64_t vpn, struct sp_page *pg)
{

	memset(pg, 0, sizeof(*pg));
	if (mm != sp)
		return -EINVAL;
	if (sp_in_pending(sp, vpn))
		sp_flush(sp);
	struct sp_range *r = sp_range_find(sp, vpn);

	if (!r)
		return 0;
	uint64_t i = vpn - r->start, e;
	uint32_t rec = r->rec[i];
	int nid;
	int err = sp_pagemap_entry(sp, vpn, &e, &nid);

	if (err)
		return err;
	bool present = e & PM_PRESENT;

	if (rec_file(rec) && !(rec & REC_COWED)) {
		/* (no room to note one more: seen again next pass, after the
		 * flush at the end of this batch privatized the others) */
		if (((present && !(e & PM_FILE)) || (e & PM_SWAP)) && sp->ncow >= SP_COW_MAX)
			return 0;
		if ((present && !(e & PM_FILE)) || (e & PM_SWAP)) {
			/*
			 * Written since: a private copy (COW), maybe swapped
			 * out.  The VMA still maps the slot (MADV_DONTNEED
			 * would read it again), so the record keeps its count
			 * until the page is privatized at the next flush.
			 */
			sp_set_rec(sp, r, i, REC_COWED | rec);
			(void)sp_note_cowed(sp, vpn);	/* (room: above) */
			if (e & PM_SWAP)
				return 0;
		} else {
			describe_slot(sp, rec & REC_SLOT, pg);
			return 0;
		}
	} else if (rec & REC_ANON) {
		if ((!present && !(e & PM_SWAP)) || sp_entry_is_zero_page(sp, e, vpn)) {
			if (rec & REC_SLOT) {
				describe_slot(sp, rec & REC_SLOT, pg);
			} else {
				pg->kind = SP_PAGE_ZERO;
				pg->data = sp_zero_page_data;
			}
			return 0;
		}
		/* written since */
		sp_set_rec(sp, r, i, 0);
		if (rec & REC_SLOT)
			sp_slot_release(sp, rec & REC_SLOT);
		else
			ksm_zero_page_unmapped(sp->ksm, sp);
	}
	if (!present || (e & (PM_FILE | PM_SWAP)))
		return 0;
	if (sp_entry_is_zero_page(sp, e, vpn)) {
		pg->kind = SP_PAGE_ZERO;
		pg->data = sp_zero_page_data;
		return 0;
	}
	/* (the content: read_page, for the scan) */
	pg->kind = SP_PAGE_ANON;
	pg->pfn = SP_PFN_ANON | vpn;	/* (space 0: this process) */
	pg->nid = nid;
	return 0;
}

static int op_follow_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	return look(be, mm, vpn, pg);
}

static int op_read_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	struct samepage *sp = be;
	struct sp_range *r = sp_range_find(sp, vpn);

	if (mm != sp || !r || pg->kind != SP_PAGE_ANON)
		return -EINVAL;
	uint32_t run = sp_pagemap_present_run(sp, vpn, r->end);

	pg->data = sp_os_data(&sp->os, vpn, run ? run - 1 : 0);
	return pg->data ? 0 : -EFAULT;
}

static int op_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	struct samepage *sp = be;

	memset(pg, 0, sizeof(*pg));
	describe_slot(sp, (uint32_t)pfn, pg);
	return 0;
}

/*
 * The registered range holding (@mm, @vpn), with the page's index in *@i,
 * once no pending run holds the page any more; NULL if it is not ours.
 */
static struct sp_range *merge_target(struct samepage *sp, uint64_t vpn, uint64_t *i)
{
	if (sp_in_pending(sp, vpn))
		sp_flush(sp);
	struct sp_range *r = sp_range_find(sp, vpn);

	if (r)
		*i = vpn - r->start;
	return r;
}

/* Does record @rec still stand for the page the engine saw as @seen? */
static bool still_seen(uint32_t rec, const struct sp_page *seen)
{
	bool ours = (rec & REC_SLOT) && !(rec & REC_COWED);

	if (!seen)
		return true;
	if (seen->kind == SP_PAGE_KSM)
		return ours && (rec & REC_SLOT) == seen->pfn;
	return !ours;	/* a private page (anonymous, zero or copied-on-write) */
}

static int op_merge(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		    uint64_t kpfn)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	uint64_t i = 0;
	struct sp_range *r = merge_target(sp, vpn, &i);
	struct sp_slot *s = slot_get(sp, kpfn);

	if (!r || !s || !(s->flags & SLOT_USED) || !still_seen(r->rec[i], seen))
		return -EAGAIN;
	uint32_t id = (uint32_t)kpfn;
	uint32_t rec = (s->flags & SLOT_ZERO) ? (REC_ANON | id) : id;

	if (r->rec[i] == rec)
		return -EAGAIN;		/* already maps it */
	if (!sp_page_replaceable(sp, vpn, r->rec[i], (rec & REC_ANON) != 0))
		return -EAGAIN;
	if (!sp_budget_ok(sp, r, i, rec))
		return -ENOMEM;
	/*
	 * Hold the slot across sp_merge_page(): joining a run may flush other
	 * runs, and undoing an aborted one can drop the slot's last count and
	 * free it (punch its hole) while this page is about to map it.  The
	 * hold becomes this page's count on success.
	 */
	s->count++;
	int err = sp_merge_page(sp, r, i, rec, CHECK_EQUAL, slot_data(sp, id));

	if (err)
		sp_slot_release(sp, id);
	return err;
}

static int op_merge_zero(void *be, void *mm, uint64_t vpn, const struct sp_page *seen)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	uint64_t i = 0;
	struct sp_range *r = merge_target(sp, vpn, &i);

	if (!r || r->rec[i] == REC_ANON || !still_seen(r->rec[i], seen))
		return -EAGAIN;
	if (!sp_page_replaceable(sp, vpn, r->rec[i], true))
		return -EAGAIN;
	if (!sp_budget_ok(sp, r, i, REC_ANON))
		return -ENOMEM;
	return sp_merge_page(sp, r, i, REC_ANON, CHECK_ZERO, NULL);
}

static int op_make_ksm(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		       uint64_t *kpfn)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	uint64_t i = 0;
	struct sp_range *r = merge_target(sp, vpn, &i);

	if (!r)
		return -EAGAIN;
	int nid = seen && seen->nid >= 0 && seen->nid < sp->nr_nodes ? seen->nid : 0;
	int64_t hint = -1;

	/* consecutive store offsets for consecutive pages */
	hint = sp_run_next_off(sp, vpn, nid);
	if (hint < 0 && i > 0 && rec_file(r->rec[i - 1]) &&
	    slot_nid(sp, r->rec[i - 1] & REC_SLOT) == nid)
		hint = (int64_t)slot_off(sp, r->rec[i - 1] & REC_SLOT) + 1;

	/* zero content is mapped anonymously (checked again once protected) */
	bool zero = seen && seen->data ? sp_mem_is_zero(seen->data, sp->os.page) :
			 sp_os_is_zero(&sp->os, vpn);
	uint32_t guess;

	if (!sp_page_replaceable(sp, vpn, r->rec[i], zero))
		return -EAGAIN;
	if (zero)
		guess = REC_ANON | 1;
	else if (hint >= 0 && (uint64_t)hint < sp->store[nid].cap)
		guess = slot_id(sp, nid, (uint64_t)hint);
	else
		guess = slot_id(sp, nid, sp->store[nid].cap - 1);
	if (!sp_budget_ok(sp, r, i, guess))
		return -ENOMEM;
	/* allocate before protecting: no malloc while a page is protected */
	uint32_t id = sp_slot_alloc(sp, nid, hint);

	if (!id)
		return -ENOMEM;
	struct sp_slot *s = slot_get(sp, id);

	if (zero)
		s->flags |= SLOT_ZERO;	/* the hole already reads zeros */
	int err = sp_merge_page(sp, r, i, zero ? (REC_ANON | id) : id, CHECK_COPY,
				seen ? seen->data : NULL);

	if (err) {
		sp_slot_free_unused(sp, id);
		return err;
	}
	s->count = 1;
	*kpfn = id;
	return 0;
}

static int op_unmerge(void *be, void *mm, uint64_t start, uint64_t end, unsigned int flags)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	return sp_unmerge_range(sp, start, end, flags & SP_UNMERGE_DISCARD);
}

static void op_flush(void *be)
{
	sp_flush_batch(be);
}

static void op_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	struct samepage *sp = be;
	struct sp_slot *s = slot_get(sp, kpfn);

	if (s && (s->flags & SLOT_USED))
		s->node = node;
}

static uint64_t op_now_ms(void *be)
{
	(void)be;
	return sp_now_ms();
}

/* The engine's memory: the arena, never the heap (arena.c). */
static void *op_zalloc(void *be, size_t size)
{
	struct samepage *sp = be;

	return sp_arena_alloc(&sp->arena, size);
}

static void op_free(void *be, void *p, size_t size)
{
	struct samepage *sp = be;

	(void)size;
	sp_arena_free(&sp->arena, p);
}

const struct sp_backend_ops sp_linux_ops = {
	.find_range = op_find_range,
	.follow_page = op_follow_page,
	.read_page = op_read_page,
	.pfn_page = op_pfn_page,
	.merge = op_merge,
	.merge_zero = op_merge_zero,
	.make_ksm = op_make_ksm,
	.unmerge = op_unmerge,
	.flush = op_flush,
	.set_stable_node = op_set_stable_node,
	.now_ms = op_now_ms,
	.cond_resched = NULL,
	.zalloc = op_zalloc,
	.free = op_free,
};

/* SPDX-License-Identifier: MIT */
/*
 * merge.c - THE merge protocol: protect -> compare -> record -> map ->
 * register -> wake, batched in pending runs; and unmerge.
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
 * Batched mappings (pending runs).
 *
 * A page joins a run (under runs_lock) before it is write-protected, so
 * that every page we hold protected across engine code is in a run.  This
 * matters: between two operations the engine may call malloc(), and an
 * application thread parked on a pending page could hold the malloc lock
 * (if it registered memory that malloc writes).  So the fault reader thread
 * aborts a pending run as soon as a writer faults on one of its pages:
 * it marks the run RUN_ABORTED and removes the protection at once, without
 * the engine lock; the flush then undoes the run's records (the pages keep
 * their old mapping, as if they had been written).  A run being mapped
 * (RUN_MAPPING) is not aborted: its writers are woken in a moment.
 * --------------------------------------------------------------------- */
enum { RUN_FREE, RUN_PENDING, RUN_MAPPING, RUN_ABORTED };

/*
 * Is @vpn in a run?  vpn and n of a run are written only by the engine side
 * (under the engine lock and runs_lock), so the engine side reads them
 * without runs_lock; the fault reader only ever changes state.
 */
bool sp_in_pending(struct samepage *sp, uint64_t vpn)
{
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->n && vpn >= p->vpn && vpn < p->vpn + p->n)
			return true;
	}
	return false;
}

/*
 * Map [vpn, vpn+n) to a slot run (or anonymously), register the new VMA,
 * wake the writers parked on it.  The pages are write-protected and their
 * content checked.  On failure the protection is removed and the old
 * mapping is intact (mmap checks map_count before it unmaps anything).
 */
int sp_map_protected(struct samepage *sp, uint64_t vpn, uint64_t n, bool anon,
			 int nid, uint64_t off, int prot)
{
	int err = anon ? sp_os_map_anon(&sp->os, vpn, n, prot) :
			 sp_os_map_file(&sp->os, vpn, n, prot, sp->store[nid].fd, off);

	if (err) {
		sp_os_protect(&sp->os, vpn, n, false);
		return err;
	}
	(void)sp_os_register(&sp->os, vpn, n);
	sp_os_wake(&sp->os, vpn, n);
	sp_cache_forget(sp, vpn, n);
	return 0;
}

static void flush_run(struct samepage *sp, int k)
{
	struct sp_run *p = &sp->run[k];

	pthread_mutex_lock(&sp->runs_lock);
	int state = p->state;

	if (state == RUN_PENDING)
		p->state = RUN_MAPPING;
	pthread_mutex_unlock(&sp->runs_lock);
	if (state == RUN_FREE)
		return;
	int err = -EAGAIN;

	if (state == RUN_PENDING && p->n)
		err = sp_map_protected(sp, p->vpn, p->n, p->anon, p->nid, p->off, p->prot);
	if (err) {
		/* undo: the pages keep their old mapping, as if written */
		if (state == RUN_ABORTED)
			sp_os_protect(&sp->os, p->vpn, p->n, false);
		for (uint32_t j = 0; j < p->n; j++) {
			struct sp_range *r = sp_range_find(sp, p->vpn + j);

			if (!r)
				continue;
			uint64_t i = p->vpn + j - r->start;
			uint32_t rec = r->rec[i];

			if (rec == sp->run_old[k][j])
				continue;	/* never installed */
			sp_set_rec(sp, r, i, sp->run_old[k][j]);
			if (rec_counted(rec))
				sp_slot_release(sp, rec & REC_SLOT);
			else if (rec == REC_ANON)
				ksm_zero_page_unmapped(sp->ksm, sp);
		}
		if (state == RUN_ABORTED)
			sp->runs_aborted++;
	} else {
		sp->merge_runs++;
		sp->merges += p->n;
	}
	pthread_mutex_lock(&sp->runs_lock);
	p->n = 0;
	p->state = RUN_FREE;
	pthread_mutex_unlock(&sp->runs_lock);
}

int sp_flush(struct samepage *sp)
{
	for (int k = 0; k < SP_PENDING; k++)
		flush_run(sp, k);
	return 0;
}

/* The fault reader saw a writer parked at @addr: if the page is in a
 * pending run, abort the run and let the writer go.  Without the engine
 * lock.  Returns true if the address was in a run. */
bool sp_abort_at(struct samepage *sp, uint64_t addr)
{
	uint64_t vpn = addr >> sp->os.page_shift;
	bool found = false;

	pthread_mutex_lock(&sp->runs_lock);
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if ((p->state == RUN_PENDING || p->state == RUN_ABORTED) &&
		    vpn >= p->vpn && vpn < p->vpn + p->n) {
			p->state = RUN_ABORTED;
			sp_os_protect(&sp->os, p->vpn, p->n, false);
			found = true;
		}
	}
	pthread_mutex_unlock(&sp->runs_lock);
	return found;
}

/* Page @vpn joins a run (before it is protected).  Returns the run. */
static int run_reserve(struct samepage *sp, uint64_t vpn, bool anon, int nid,
		       uint64_t off, int prot, uint32_t old)
{
	for (int k = 0; k < SP_PENDING; k++)
		if (sp->run[k].n >= SP_RUN_MAX)
			flush_run(sp, k);
	pthread_mutex_lock(&sp->runs_lock);
	int freek = -1;

	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->state == RUN_FREE) {
			if (freek < 0)
				freek = k;
			continue;
		}
		if (p->state == RUN_PENDING && p->vpn + p->n == vpn && p->anon == anon &&
		    p->prot == prot && (anon || (p->nid == nid && p->off + p->n == off))) {
			sp->run_old[k][p->n] = old;
			p->n++;
			pthread_mutex_unlock(&sp->runs_lock);
			return k;
		}
	}
	pthread_mutex_unlock(&sp->runs_lock);
	if (freek < 0) {
		sp_flush(sp);
		freek = 0;
	}
	pthread_mutex_lock(&sp->runs_lock);
	struct sp_run *p = &sp->run[freek];

	p->vpn = vpn;
	p->anon = anon;
	p->nid = nid;
	p->off = off;
	p->prot = prot;
	sp->run_old[freek][0] = old;
	p->n = 1;
	p->state = RUN_PENDING;
	pthread_mutex_unlock(&sp->runs_lock);
	return freek;
}

/* The store offset that would extend a pending file run on @nid to @vpn,
 * or -1. */
int64_t sp_run_next_off(struct samepage *sp, uint64_t vpn, int nid)
{
	int64_t hint = -1;

	pthread_mutex_lock(&sp->runs_lock);
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->state == RUN_PENDING && !p->anon && p->nid == nid &&
		    p->vpn + p->n == vpn)
			hint = (int64_t)(p->off + p->n);
	}
	pthread_mutex_unlock(&sp->runs_lock);
	return hint;
}

/* The merge of @vpn failed before its record changed: leave the run. */
static void run_unreserve(struct samepage *sp, int k, uint64_t vpn)
{
	if (k < 0)
		return;
	pthread_mutex_lock(&sp->runs_lock);
	struct sp_run *p = &sp->run[k];

	if (p->state == RUN_PENDING && p->n && p->vpn + p->n - 1 == vpn) {
		p->n--;
		if (!p->n)
			p->state = RUN_FREE;
	}
	pthread_mutex_unlock(&sp->runs_lock);
}

/*
 * Merge page @i of @r into record @rec: join a run (or, when the page now
 * holds a slot, map it at once), write-protect, check the content (equal
 * to @want; all zeros; or copy it into the new slot of @rec), set the
 * record.  The caller updates the slot's count on success.
 */
int sp_merge_page(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec,
		      enum check how, const void *want)
{
	uint64_t vpn = r->start + i;
	uint32_t old = r->rec[i];
	bool anon = (rec & REC_ANON) != 0;
	uint32_t id = rec & REC_SLOT;
	int nid = id ? slot_nid(sp, id) : 0;
	uint64_t off = id ? slot_off(sp, id) : 0;
	bool now = rec_counted(old) || old == REC_ANON;
	int k = now ? -1 : run_reserve(sp, vpn, anon, nid, off, r->prot, old);
	bool ok;

	if (sp_os_protect(&sp->os, vpn, 1, true)) {
		run_unreserve(sp, k, vpn);
		return -EAGAIN;		/* not our mapping any more */
	}
	switch (how) {
	case CHECK_EQUAL:
		ok = sp_os_equal(&sp->os, vpn, want);
		break;
	case CHECK_ZERO:
		ok = sp_os_is_zero(&sp->os, vpn);
		break;
	default:
		/* make_ksm: the slot was chosen anonymous iff the page was zero */
		ok = sp_os_is_zero(&sp->os, vpn) == anon;
		if (ok && !anon)
			ok = sp_os_copy_to_file(&sp->os, vpn, sp->store[nid].fd, off) == 0;
		break;
	}
	if (!ok) {
		sp_os_protect(&sp->os, vpn, 1, false);
		run_unreserve(sp, k, vpn);
		return -EAGAIN;
	}
	if (now) {
		int err = sp_map_protected(sp, vpn, 1, anon, nid, off, r->prot);

		if (err)
			return err;
		sp_set_rec(sp, r, i, rec);
		sp->merges++;
		if (rec_counted(old))
			sp_slot_release(sp, old & REC_SLOT);
		else
			ksm_zero_page_unmapped(sp->ksm, sp);
		return 0;
	}
	sp_set_rec(sp, r, i, rec);
	return 0;
}

/* Turn the file VMAs over [vpn, vpn+n) (all in @r) back into anonymous
 * memory with the same content. */
int sp_convert_run(struct samepage *sp, struct sp_range *r, uint64_t vpn, uint64_t n)
{
	uint64_t i0 = vpn - r->start;

	if (sp->discard)
		goto drop;
	int err = sp_os_protect(&sp->os, vpn, n, true);

	if (err == -ENOENT) {
		(void)sp_os_register(&sp->os, vpn, n);
		err = sp_os_protect(&sp->os, vpn, n, true);
	}
	if (err)
		goto drop;	/* not our mapping any more */
	err = sp_os_privatize(&sp->os, vpn, n, r->prot);
	if (err) {
		sp_os_protect(&sp->os, vpn, n, false);
		return err;
	}
	(void)sp_os_register(&sp->os, vpn, n);
	sp_os_wake(&sp->os, vpn, n);
drop:
	for (uint64_t k = 0; k < n; k++) {
		uint32_t rec = r->rec[i0 + k];

		sp_set_rec(sp, r, i0 + k, 0);
		if (rec_counted(rec))
			sp_slot_release(sp, rec & REC_SLOT);
	}
	return 0;
}

/* break_ksm over [start, end): every page we mapped gets private memory */
int sp_unmerge_range(struct samepage *sp, uint64_t start, uint64_t end)
{
	sp_flush(sp);
	sp_cache_invalidate(sp);
	bool converted = false;

	for (size_t ri = sp_range_index(sp, start); ri < sp->nranges; ri++) {
		struct sp_range *r = &sp->ranges[ri];

		if (r->start >= end)
			break;
		uint64_t a = start > r->start ? start : r->start;
		uint64_t b = end < r->end ? end : r->end;

		for (uint64_t v = a; v < b;) {
			uint64_t i = v - r->start;
			uint32_t rec = r->rec[i];

			if (rec_file(rec)) {
				uint64_t w = v + 1;

				while (w < b && w - v < 4096 && rec_file(r->rec[w - r->start]))
					w++;
				int err = sp_convert_run(sp, r, v, w - v);

				if (err)
					return err;
				converted = true;
				v = w;
				continue;
			}
			if (rec & REC_ANON) {
				if (!sp->discard && (r->prot & PROT_WRITE))
					sp_os_touch(&sp->os, v);
				sp_set_rec(sp, r, i, 0);
				if (rec & REC_SLOT)
					sp_slot_release(sp, rec & REC_SLOT);
				else
					ksm_zero_page_unmapped(sp->ksm, sp);
			}
			v++;
		}
	}
	if (converted)
		sp_recount_vmas(sp);
	return 0;
}


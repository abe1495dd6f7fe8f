/* SPDX-License-Identifier: MIT */
/*
 * merge.c - THE merge protocol: protect -> compare -> record -> (check the
 * mapping) -> map -> register -> wake, batched in pending runs; privatizing
 * pages seen copied-on-write; and unmerge.
 *
 * Pending runs.  A page joins a run before it is write-protected, so every
 * page we hold protected across engine code is in a run, and the fault
 * reader can always let its writer go: it aborts the run (removes the
 * protection at once) without taking any lock the engine may hold.  This is
 * what makes it safe for the engine to touch memory the application
 * registered (the library's own state is never there, arena.c, but an
 * application thread calling samepage_scan() runs the engine on its own,
 * possibly registered, stack): a write of ours into a page we protected
 * parks us only until the reader has aborted that page's run.
 *
 * The handshake (sp_run.state):
 *   FREE -> PENDING            engine: a new run (vpn, n set first)
 *   PENDING -> ABORTING        reader: it unprotects [vpn, vpn+n), then
 *   ABORTING -> ABORTED        reader (again from ABORTED if a page was
 *                              added meanwhile and a writer faults on it)
 *   PENDING|ABORTED -> MAPPING engine, at flush: from then on the reader
 *                              keeps off; the engine maps or undoes, wakes,
 *   MAPPING -> FREE            and frees the run.
 * The engine waits while a run is ABORTING (the reader is inside one ioctl).
 * Between PENDING -> MAPPING and the wake the engine makes system calls
 * only: it writes no memory that could be a page of the run.
 *
 * Before a run is mapped, the mappings under it are read from /proc (one
 * read per batch): a page is mapped only if its VMA is still ours (our
 * userfaultfd registration, private, anonymous or our store at the
 * expected offset) and carries no flag a replacement cannot carry
 * (wipe-on-fork: the kernel refuses it on file mappings; the
 * application's own userfaultfd; shared), and the replacement gets the
 * VMA's protection and its dont-fork, dont-dump and mlock flags as they
 * are now, from its first instant (sp_os_map_*, os_self.c: mapped at a
 * scratch address, flagged there, moved over the pages with one
 * mremap(MREMAP_FIXED), so that no fork, even a raw one, copies a dont-fork
 * page and the lock never lapses).  A locked replacement is locked on fault
 * (lf: a plain mlock of a writable private mapping would copy every page);
 * privatizing gives the plain lock back, so a lock on fault the
 * application chose itself is refused (it could not be told from ours),
 * and so are zero runs of a locked range (their anonymous replacement
 * would keep lf).  Other pages are not merged (merges_refused) and keep
 * their mapping untouched.  The one window left: a protection or flag
 * change made by another thread between that read and the mapping, a few
 * microseconds (samepage(3)).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "linux_internal.h"

enum { RUN_FREE, RUN_PENDING, RUN_ABORTING, RUN_ABORTED, RUN_MAPPING };

/* Flags that forbid replacing a mapping (or that mean it is not ours). */
#define VMA_REFUSE (SP_VMA_WIPE | SP_VMA_UFFD | SP_VMA_SHARED | SP_VMA_OTHER)
/* Flags a merge and an unmerge carry over to the replacement (os.h). */
#define VMA_KEEP SP_VMA_KEEP
/*
 * ... and what refuses a page still in the application's own anonymous
 * memory: its own lock-on-fault (lf).  A locked store mapping of ours is
 * always lf (os_self.c: a plain lock would copy every page), and the plain
 * lock comes back when it is privatized; an lf the application chose
 * would not.
 */
#define VMA_REFUSE_ANON (VMA_REFUSE | SP_VMA_ONFAULT)
/* The flags a private replacement of our store mapping @f gets. */
#define PRIVATE_FLAGS(f) ((f) & VMA_KEEP & ~SP_VMA_ONFAULT)

/* Is @vpn in a run?  (Engine side: vpn and n change only under its lock.) */
bool sp_in_pending(struct samepage *sp, uint64_t vpn)
{
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];
		uint32_t n = atomic_load_explicit(&p->n, memory_order_relaxed);
		uint64_t v = atomic_load_explicit(&p->vpn, memory_order_relaxed);

		if (n && vpn >= v && vpn < v + n)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Looking at the mappings.
 * --------------------------------------------------------------------- */

static void vmas_read(struct samepage *sp, struct vmas *vs, uint64_t lo, uint64_t hi)
{
	bool gap;

	vs->v = NULL;
	vs->n = sp_os_vmas(&sp->os, lo << sp->os.page_shift, hi << sp->os.page_shift,
			   &vs->v, &gap);
}

/*
 * The mappings over [lo, hi) as of this hold of the engine lock (one batch):
 * /proc/self/smaps costs milliseconds for a large process, so it is read
 * once per batch that maps anything, not once per flush.  Our own changes
 * meanwhile (new mappings of ours at the same places) keep what matters:
 * protection, flags and our registration; the backing of a page we mapped
 * is checked through its record (vma_matches) against the VMA list of the
 * batch start, so a page merged twice in one batch is refused the second
 * time, never mismapped.
 */
static const struct vmas *vmas_batch(struct samepage *sp, uint64_t lo, uint64_t hi)
{
	struct vmas *vs = &sp->vma_cache;

	if (sp->vma_cache_gen == sp->pm_gen && sp->vma_cache_lo <= lo &&
	    sp->vma_cache_hi >= hi && vs->n >= 0)
		return vs;
	sp_arena_free(&sp->arena, vs->v);
	/* the whole registered span: one read serves the batch */
	uint64_t a = sp->nranges ? sp->ranges[0].start : lo;
	uint64_t b = sp->nranges ? sp->ranges[sp->nranges - 1].end : hi;

	if (lo < a)
		a = lo;
	if (hi > b)
		b = hi;
	vmas_read(sp, vs, a, b);
	sp->vma_cache_gen = sp->pm_gen;
	sp->vma_cache_lo = a;
	sp->vma_cache_hi = b;
	return vs;
}

void sp_vma_cache_free(struct samepage *sp)
{
	sp_arena_free(&sp->arena, sp->vma_cache.v);
	sp->vma_cache.v = NULL;
	sp->vma_cache.n = -1;
	sp->vma_cache_gen = 0;
}

static const struct sp_vma *vma_at(const struct vmas *vs, uint64_t vpn, unsigned int shift)
{
	uint64_t a = vpn << shift;
	int lo = 0, hi = vs->n;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (vs->v[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < vs->n && vs->v[lo].start <= a)
		return &vs->v[lo];
	return NULL;
}

/*
 * Is page @vpn, whose record is @rec, still mapped the way the record
 * says, by a VMA of ours?  @refuse: flags that disqualify the VMA.
 */
static bool vma_matches(struct samepage *sp, const struct sp_vma *vma, uint64_t vpn,
			uint32_t rec, unsigned int refuse)
{
	/* (lf refuses only the application's own memory: VMA_REFUSE_ANON) */
	if (rec_file(rec))
		refuse &= ~SP_VMA_ONFAULT;
	if (!vma || vma->exec || !(vma->flags & SP_VMA_UFFD_WP) || (vma->flags & refuse))
		return false;
	if (!rec_file(rec))
		return vma->inode == 0;
	uint32_t id = rec & REC_SLOT;
	uint64_t at = vma->offset + ((vpn << sp->os.page_shift) - vma->start);

	return vma->inode == sp->store[slot_nid(sp, id)].ino &&
	       at == slot_off(sp, id) << sp->os.page_shift;
}

/*
 * What refuses a merge: into a store page, or (@anon) into zeros, mapped
 * anonymously.  A locked range never gets an anonymous replacement: it
 * would be locked on fault (lf) and no privatize would give the plain lock
 * back; its zero pages stay as they are.
 */
static unsigned int merge_refuse(bool anon)
{
	return VMA_REFUSE_ANON | (anon ? SP_VMA_LOCKED : 0);
}

/*
 * May page @vpn (record @rec) be replaced (by zeros mapped anonymously if
 * @anon, else by a store page), as its mapping is in this batch?  Checked
 * before the engine counts a merge, so that pages the application flagged
 * in a way a replacement cannot carry are never counted as merged.
 */
bool sp_page_replaceable(struct samepage *sp, uint64_t vpn, uint32_t rec, bool anon)
{
	const struct vmas *vs = vmas_batch(sp, vpn, vpn + 1);

	if (vs->n > 0 && vma_matches(sp, vma_at(vs, vpn, sp->os.page_shift), vpn, rec,
				     merge_refuse(anon)))
		return true;
	sp->merges_refused++;
	return false;
}

/* ------------------------------------------------------------------------
 * Runs.
 * --------------------------------------------------------------------- */
/* The engine takes a run over from the reader; returns its state before. */
static int run_take(struct sp_run *p)
{
	for (;;) {
		int s = atomic_load(&p->state);

		if (s == RUN_FREE)
			return s;
		if (s == RUN_ABORTING) {
			sched_yield();
			continue;
		}
		if (atomic_compare_exchange_weak(&p->state, &s, RUN_MAPPING))
			return s;
	}
}

static void run_free(struct sp_run *p)
{
	atomic_store(&p->n, 0);
	atomic_store(&p->state, RUN_FREE);
}

/* Pages [j0, j1) of run @k keep their old mapping: restore their records. */
static void run_undo(struct samepage *sp, struct sp_run *p, uint32_t j0, uint32_t j1)
{
	uint64_t vpn = atomic_load(&p->vpn);

	for (uint32_t j = j0; j < j1; j++) {
		struct sp_range *r = sp_range_find(sp, vpn + j);

		if (!r)
			continue;
		uint64_t i = vpn + j - r->start;
		uint32_t rec = r->rec[i];

		if (rec == p->old[j])
			continue;	/* never installed */
		sp_set_rec(sp, r, i, p->old[j]);
		if (rec_counted(rec))
			sp_slot_release(sp, rec & REC_SLOT);
		else if (rec == REC_ANON)
			ksm_zero_page_unmapped(sp->ksm, sp);
	}
}

/* Pages [j0, j1) of run @k were mapped: what they held before goes. */
static void run_done(struct samepage *sp, struct sp_run *p, uint32_t j0, uint32_t j1)
{
	for (uint32_t j = j0; j < j1; j++) {
		uint32_t old = p->old[j];

		if (rec_counted(old))
			sp_slot_release(sp, old & REC_SLOT);
		else if (old == REC_ANON)
			ksm_zero_page_unmapped(sp->ksm, sp);
	}
}

/*
 * Write-protect the pending run @p and check each page against what it is
 * to map (its store slot's content, or zeros for an anonymous run): one
 * protection and one read per SP_OS_AHEAD pages instead of per page.  A
 * page that differs, or cannot be read, is marked in @bad; it keeps its
 * mapping and is unprotected by the caller.  Runs while the run is still
 * PENDING, so a writer parking on a page meanwhile makes the reader abort
 * the run, and the caller then undoes it whole.
 */
static void verify_run(struct samepage *sp, struct sp_run *p, uint64_t vpn, uint32_t n,
		       bool *bad)
{
	struct sp_os *os = &sp->os;
	unsigned int sh = os->page_shift;

	if (sp_os_protect(os, vpn, n, true)) {
		/* not all of it is ours any more: page by page */
		for (uint32_t j = 0; j < n; j++)
			bad[j] = sp_os_protect(os, vpn + j, 1, true) != 0;
	}
	for (uint32_t c = 0; c < n; c += SP_OS_AHEAD) {
		uint32_t m = n - c < SP_OS_AHEAD ? n - c : SP_OS_AHEAD;
		bool whole = sp_os_read_check(os, vpn + c, m) == 0;

		for (uint32_t j = c; j < c + m; j++) {
			const char *got = os->chk + ((size_t)(j - c) << sh);

			if (bad[j])
				continue;
			if (!whole && sp_os_read(os, vpn + j, 1, (void *)got)) {
				bad[j] = true;
				continue;
			}
			if (p->anon)
				bad[j] = !sp_mem_is_zero(got, os->page);
			else
				bad[j] = memcmp(got, slot_data(sp, slot_id(sp, p->nid, p->off + j)),
						os->page) != 0;
		}
	}
}

static void flush_run(struct samepage *sp, int k, const struct vmas *vs)
{
	struct sp_run *p = &sp->run[k];

	if (atomic_load(&p->state) == RUN_FREE)
		return;
	uint64_t vpn = atomic_load(&p->vpn);
	uint32_t n = atomic_load(&p->n);
	bool bad[SP_RUN_MAX] = { false };

	if (atomic_load(&p->state) == RUN_PENDING)
		verify_run(sp, p, vpn, n, bad);
	int state = run_take(p);
	unsigned int sh = sp->os.page_shift;

	if (state == RUN_FREE)
		return;
	n = atomic_load(&p->n);
	if (state == RUN_ABORTED) {
		/* (again: pages may have joined after the abort) */
		sp_os_protect(&sp->os, vpn, n, false);
		run_undo(sp, p, 0, n);
		sp->runs_aborted++;
		run_free(p);
		return;
	}
	/* map piece by piece: the pages of one VMA at a time */
	for (uint32_t j = 0; j < n;) {
		if (bad[j]) {
			/* changed since the engine saw it: keeps its mapping */
			sp_os_protect(&sp->os, vpn + j, 1, false);
			run_undo(sp, p, j, j + 1);
			sp->merges_changed++;
			j++;
			continue;
		}
		const struct sp_vma *vma = vs->n > 0 ? vma_at(vs, vpn + j, sh) : NULL;
		uint32_t e = j + 1;
		bool ok = vma != NULL;

		while (e < n && !bad[e])
			e++;
		if (vma && (vma->end >> sh) - vpn < e)
			e = (uint32_t)((vma->end >> sh) - vpn);
		for (uint32_t q = j; ok && q < e; q++)
			ok = vma_matches(sp, vma, vpn + q, p->old[q], merge_refuse(p->anon));
		if (!vma)
			e = j + 1;
		int err = -EAGAIN;

		/* (what it replaces freed at once, also inside a huge page) */
		if (ok && !vma->inode && vma->huge && !(vma->flags & SP_VMA_LOCKED))
			sp_os_split_huge(&sp->os, vpn + j, e - j);
		/* (with the VMA's flags: dont-fork, dont-dump, mlock, os.h) */
		if (ok)
			err = p->anon ? sp_os_map_anon(&sp->os, vpn + j, e - j, vma->prot,
						       vma->flags & VMA_KEEP) :
					sp_os_map_file(&sp->os, vpn + j, e - j, vma->prot,
						       vma->flags & VMA_KEEP, sp->store[p->nid].fd,
						       p->off + j);
		if (err) {
			/* the old mapping is intact (mmap checks the map count
			 * before it unmaps anything) */
			sp_os_protect(&sp->os, vpn + j, e - j, false);
			run_undo(sp, p, j, e);
			if (!ok)
				sp->merges_refused += e - j;
		} else {
			(void)sp_os_register(&sp->os, vpn + j, e - j);
			sp_os_wake(&sp->os, vpn + j, e - j);
			sp_cache_forget(sp, vpn + j, e - j);
			run_done(sp, p, j, e);
			sp->merge_runs++;
			sp->merges += e - j;
		}
		j = e;
	}
	run_free(p);
}

static void privatize_cowed(struct samepage *sp, const struct vmas *vs);

static void flush(struct samepage *sp, bool cowed)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (atomic_load(&p->state) == RUN_FREE)
			continue;
		uint64_t v = atomic_load(&p->vpn);

		if (v < lo)
			lo = v;
		if (v + atomic_load(&p->n) > hi)
			hi = v + atomic_load(&p->n);
	}
	for (unsigned int c = 0; cowed && c < sp->ncow; c++) {
		if (sp->cow[c] < lo)
			lo = sp->cow[c];
		if (sp->cow[c] + 1 > hi)
			hi = sp->cow[c] + 1;
	}
	if (lo >= hi)
		return;
	/* read while the runs are PENDING: this allocates */
	const struct vmas *vs = vmas_batch(sp, lo, hi);

	for (int k = 0; k < SP_PENDING; k++)
		flush_run(sp, k, vs);
	if (cowed)
		privatize_cowed(sp, vs);
}

/* Map the pending runs (inside an operation of the engine). */
int sp_flush(struct samepage *sp)
{
	flush(sp, false);
	return 0;
}

/*
 * The end of a batch (before the engine lock is released): map the runs
 * and privatize the pages seen copied-on-write.  Never inside an engine
 * operation: an operation in progress may hold a page's old record.
 */
void sp_flush_batch(struct samepage *sp)
{
	flush(sp, true);
}

/*
 * The fault reader saw a writer parked at @addr: if the page is in a
 * pending run, abort the run and let the writer go.  Takes no lock.
 * Returns true if the address was in a run.
 */
bool sp_abort_at(struct samepage *sp, uint64_t addr)
{
	uint64_t vpn = addr >> sp->os.page_shift;
	bool found = false;

	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];
		int s = atomic_load(&p->state);

		if (s != RUN_PENDING && s != RUN_ABORTED)
			continue;
		uint64_t v = atomic_load(&p->vpn);
		uint32_t n = atomic_load(&p->n);

		if (vpn < v || vpn >= v + n)
			continue;
		if (!atomic_compare_exchange_strong(&p->state, &s, RUN_ABORTING))
			continue;	/* the engine took it: it wakes soon */
		n = atomic_load(&p->n);
		sp_os_protect(&sp->os, v, n, false);
		atomic_store(&p->state, RUN_ABORTED);
		found = true;
	}
	return found;
}

/* Page @vpn joins a run (before it is protected).  Returns the run. */
static int run_reserve(struct samepage *sp, uint64_t vpn, bool anon, int nid,
		       uint64_t off, uint32_t old)
{
	int freek = -1;

	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];
		int s = atomic_load(&p->state);
		uint32_t n = atomic_load(&p->n);

		if (s == RUN_FREE) {
			if (freek < 0)
				freek = k;
			continue;
		}
		if (s == RUN_PENDING && n < SP_RUN_MAX && atomic_load(&p->vpn) + n == vpn &&
		    p->anon == anon && (anon || (p->nid == nid && p->off + n == off))) {
			p->old[n] = old;
			atomic_store(&p->n, n + 1);
			return k;
		}
	}
	if (freek < 0) {
		sp_flush(sp);
		freek = 0;
	}
	struct sp_run *p = &sp->run[freek];

	p->anon = anon;
	p->nid = nid;
	p->off = off;
	p->old[0] = old;
	atomic_store(&p->vpn, vpn);
	atomic_store(&p->n, 1);
	atomic_store(&p->state, RUN_PENDING);
	return freek;
}

/* The store offset that would extend a pending file run on @nid to @vpn,
 * or -1. */
int64_t sp_run_next_off(struct samepage *sp, uint64_t vpn, int nid)
{
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];
		uint32_t n = atomic_load(&p->n);

		if (atomic_load(&p->state) == RUN_PENDING && !p->anon && p->nid == nid &&
		    n < SP_RUN_MAX && atomic_load(&p->vpn) + n == vpn)
			return (int64_t)(p->off + n);
	}
	return -1;
}

/*
 * Merge page @i of @r into record @rec: join a run and set the record.  The
 * page is write-protected and checked (equal to its slot's content, or all
 * zeros for an anonymous record) when the run is flushed, and mapped only
 * if it passes.  CHECK_COPY: @rec's slot is new and gets the page's content
 * now, from @want (the engine's copy of it) or read; the check at the flush
 * then proves the page still holds it.  The caller holds a count on @rec's
 * slot, which becomes this page's on success.
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

	if (how == CHECK_COPY && !anon) {
		char *dst = slot_data(sp, id);

		if (want)
			memcpy(dst, want, sp->os.page);
		else if (sp_os_read(&sp->os, vpn, 1, dst))
			return -EAGAIN;		/* gone meanwhile */
		if (sp_mem_is_zero(dst, sp->os.page))
			return -EAGAIN;		/* zeros go to an anonymous record */
	}
	(void)run_reserve(sp, vpn, anon, nid, off, old);
	sp_set_rec(sp, r, i, rec);
	return 0;
}

/* ------------------------------------------------------------------------
 * Private again.
 * --------------------------------------------------------------------- */
/*
 * Pages [vpn, vpn+n) of @r map store slots through a VMA of ours (@vma):
 * give them private anonymous memory with the same content, protection
 * and flags.  Their records are dropped.
 */
static int privatize_run(struct samepage *sp, struct sp_range *r, uint64_t vpn, uint64_t n,
			 const struct sp_vma *vma, bool discard)
{
	uint64_t i0 = vpn - r->start;

	if (!discard) {
		/* (the mapping was just seen ours: a failure is an error, never a
		 * reason to forget pages that still map their slots) */
		int err = sp_os_protect(&sp->os, vpn, n, true);

		if (err)
			return err;
		err = sp_os_privatize(&sp->os, vpn, n, vma->prot, PRIVATE_FLAGS(vma->flags));
		if (err) {
			sp_os_protect(&sp->os, vpn, n, false);
			return err;
		}
		(void)sp_os_register(&sp->os, vpn, n);
		sp_os_wake(&sp->os, vpn, n);
	}
	for (uint64_t k = 0; k < n; k++) {
		uint32_t rec = r->rec[i0 + k];

		sp_set_rec(sp, r, i0 + k, 0);
		if (rec_counted(rec))
			sp_slot_release(sp, rec & REC_SLOT);
	}
	return 0;
}

/*
 * Page @vpn was seen copied-on-write: privatize it at the next flush, so
 * that its slot can go and MADV_DONTNEED on it reads zeros.  False when
 * the list is full: the caller flushes first, or does not mark the page
 * (a page marked and not listed would stay in the store's mapping, its
 * slot mapped, for good).
 */
bool sp_note_cowed(struct samepage *sp, uint64_t vpn)
{
	if (sp->ncow >= SP_COW_MAX)
		return false;
	sp->cow[sp->ncow++] = vpn;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void privatize_cowed(struct samepage *sp, const struct vmas *vs)
{
	unsigned int sh = sp->os.page_shift;

	qsort(sp->cow, sp->ncow, sizeof(sp->cow[0]), cmp_u64);
	for (unsigned int c = 0; c < sp->ncow;) {
		uint64_t vpn = sp->cow[c];
		struct sp_range *r = sp_range_find(sp, vpn);
		const struct sp_vma *vma = vs->n > 0 ? vma_at(vs, vpn, sh) : NULL;
		unsigned int d = c + 1;

		if (!r || !(r->rec[vpn - r->start] & REC_COWED)) {
			c = d;
			continue;
		}
		/* consecutive COWed pages of one VMA go together */
		while (d < sp->ncow && sp->cow[d] == sp->cow[d - 1] + 1 &&
		       sp->cow[d] < r->end && (sp->cow[d] << sh) < (vma ? vma->end : 0) &&
		       (r->rec[sp->cow[d] - r->start] & REC_COWED))
			d++;
		bool ok = true;

		for (unsigned int q = c; q < d; q++)
			ok = ok && vma_matches(sp, vma, sp->cow[q],
					       r->rec[sp->cow[q] - r->start], VMA_REFUSE & ~VMA_KEEP);
		if (ok)
			(void)privatize_run(sp, r, vpn, d - c, vma, false);
		c = d;
	}
	sp->ncow = 0;
}

/* Forget page @i of @r (its mapping is not ours any more). */
static void drop_rec(struct samepage *sp, struct sp_range *r, uint64_t i)
{
	uint32_t rec = r->rec[i];

	sp_set_rec(sp, r, i, 0);
	if (rec & REC_SLOT)
		sp_slot_release(sp, rec & REC_SLOT);
	else if (rec == REC_ANON)
		ksm_zero_page_unmapped(sp->ksm, sp);
}

/*
 * A fork child: the parts of our ranges this process does not map (the
 * parent's dont-fork mappings are not copied) are forgotten, records
 * included.  Their store pages are the parent's; reported to the daemon,
 * they would be counted for the child until it exits.  0 or -errno.
 */
int sp_forget_unmapped(struct samepage *sp)
{
	uint64_t sh = sp->os.page_shift, at = 0;

	for (;;) {
		uint64_t a = 0, b = 0;

		for (size_t ri = sp_range_index(sp, at); ri < sp->nranges && a == b; ri++) {
			struct sp_range *r = &sp->ranges[ri];
			uint64_t from = r->start > at ? r->start : at;
			struct sp_vma *v = NULL;
			bool gap = false;

			if (from >= r->end)
				continue;
			int n = sp_os_vmas(&sp->os, from << sh, r->end << sh, &v, &gap);

			if (n < 0)
				return n;
			uint64_t x = from;	/* the first page not yet seen mapped */

			for (int k = 0; gap && k < n && a == b; k++) {
				uint64_t vs = v[k].start >> sh, ve = v[k].end >> sh;

				if (vs > x) {
					a = x;
					b = vs;
				}
				if (ve > x)
					x = ve;
			}
			if (gap && a == b && x < r->end) {
				a = x;
				b = r->end;
			}
			sp_arena_free(&sp->arena, v);
		}
		if (a == b)
			return 0;
		struct sp_range *r = sp_range_find(sp, a);

		for (uint64_t p = a; r && p < b; p++)
			if (r->rec[p - r->start])
				drop_rec(sp, r, p - r->start);
		int err = sp_range_remove(sp, a, b);

		if (err)
			return err;
		at = b;
	}
}

/*
 * Ranges inside [start, end) with nothing of ours left in them, but cut
 * into several mappings by our merges and unmerges, become one mapping
 * again (when every piece is still ours, private anonymous, with one
 * protection and one set of flags).  Best effort: on any doubt the range
 * stays as it is, correct, only with more mappings.
 */
static void rebuild_ranges(struct samepage *sp, uint64_t start, uint64_t end)
{
	for (size_t ri = sp_range_index(sp, start); ri < sp->nranges; ri++) {
		struct sp_range *r = &sp->ranges[ri];

		if (r->start >= end)
			break;
		if (r->start < start || r->end > end)
			continue;
		bool clean = true;

		for (uint64_t i = 0; clean && i < r->end - r->start; i++)
			clean = r->rec[i] == 0;
		if (!clean)
			continue;
		struct vmas vs;

		vmas_read(sp, &vs, r->start, r->end);
		bool ok = vs.n > 1;
		uint64_t at = r->start << sp->os.page_shift;

		for (int k = 0; ok && k < vs.n; k++) {
			const struct sp_vma *v = &vs.v[k];

			ok = v->start <= at && v->inode == 0 && !v->exec &&
			     (v->flags & SP_VMA_UFFD_WP) && !(v->flags & VMA_REFUSE & ~VMA_KEEP) &&
			     v->prot == vs.v[0].prot && v->flags == vs.v[0].flags;
			at = v->end;
		}
		if (ok && at >= (r->end << sp->os.page_shift))
			(void)sp_os_rebuild(&sp->os, r->start, r->end - r->start, vs.v[0].prot,
					    vs.v[0].flags & VMA_KEEP);
		sp_arena_free(&sp->arena, vs.v);
	}
}

/*
 * break_ksm over [start, end): every page we mapped gets private memory,
 * if its mapping is still ours; mappings the application replaced (munmap
 * and mmap of something else, a shared mapping, another file) are left
 * alone and only forgotten.
 */
int sp_unmerge_range(struct samepage *sp, uint64_t start, uint64_t end, bool discard)
{
	unsigned int sh = sp->os.page_shift;
	bool converted = false;
	struct vmas vs;

	sp_flush(sp);
	sp_cache_invalidate(sp);
	vmas_read(sp, &vs, start, end);
	if (vs.n < 0)
		return vs.n;
	for (size_t ri = sp_range_index(sp, start); ri < sp->nranges; ri++) {
		struct sp_range *r = &sp->ranges[ri];

		if (r->start >= end)
			break;
		uint64_t a = start > r->start ? start : r->start;
		uint64_t b = end < r->end ? end : r->end;

		for (uint64_t v = a; v < b;) {
			uint64_t i = v - r->start;
			uint32_t rec = r->rec[i];

			if (!rec) {
				v++;
				continue;
			}
			const struct sp_vma *vma = vma_at(&vs, v, sh);
			bool ours = vma_matches(sp, vma, v, rec, SP_VMA_WIPE | SP_VMA_UFFD |
						SP_VMA_SHARED | SP_VMA_OTHER);

			if (rec_file(rec) && ours) {
				uint64_t w = v + 1;

				while (w < b && w - v < 4096 && (w << sh) < vma->end &&
				       rec_file(r->rec[w - r->start]) &&
				       vma_matches(sp, vma, w, r->rec[w - r->start], 0))
					w++;
				int err = privatize_run(sp, r, v, w - v, vma, discard);

				if (err) {
					sp_arena_free(&sp->arena, vs.v);
					return err;
				}
				converted = true;
				v = w;
				continue;
			}
			if ((rec & REC_ANON) && ours && !discard && (vma->prot & PROT_WRITE))
				sp_os_touch(&sp->os, v);
			drop_rec(sp, r, i);
			v++;
		}
	}
	sp_arena_free(&sp->arena, vs.v);
	if (converted && !discard)
		rebuild_ranges(sp, start, end);
	if (converted)
		sp_recount_vmas(sp);
	return 0;
}

/*
 * samepage_discard(): [start, end) (registered) reads zeros afterwards and
 * stays registered.  Merged pages are unmerged without copies and their
 * store mappings replaced by fresh anonymous memory; every other page gets
 * MADV_DONTNEED.
 */
static bool store_inode(struct samepage *sp, uint64_t ino)
{
	for (int nid = 0; nid < sp->nr_nodes; nid++)
		if (ino && ino == sp->store[nid].ino)
			return true;
	return false;
}

/*
 * [start, end) (registered) was just given MADV_DONTNEED by the caller
 * (samepage run's madvise), so it is not locked (EINVAL otherwise), and
 * every page reads zeros except those that map a store page of ours, which
 * read the store page again.  Those get zeros written by the kernel
 * (sp_os_write_zeros): a copy on write in the same mapping, which keeps
 * every flag and reads zeros, seen copied-on-write by the next scan
 * (privatized, then merged into zeros) as after any write.  Our zero
 * records are forgotten.  No /proc to read: QEMU's balloon discards 4 KiB
 * at a time, and smaps costs 0.1 s a read with 7,000 mappings.  -EAGAIN
 * if that cannot be done (a mapping not writable): sp_discard_range().
 */
int sp_discard_dontneeded(struct samepage *sp, uint64_t start, uint64_t end)
{
	struct sp_range *r = sp_range_find(sp, start);

	if (!r || end > r->end)
		return -EAGAIN;
	sp_flush(sp);
	for (uint64_t p = start; p < end;) {
		uint64_t q = p;

		while (q < end && rec_file(r->rec[q - r->start]))
			q++;
		if (q > p && sp_os_write_zeros(&sp->os, p, q - p))
			return -EAGAIN;
		p = q > p ? q : p + 1;
	}
	int dropped = 0;

	for (uint64_t p = start; p < end; p++)
		if (r->rec[p - r->start] && !rec_file(r->rec[p - r->start])) {
			drop_rec(sp, r, p - r->start);
			dropped = 1;
		}
	sp_cache_invalidate(sp);
	return dropped;
}

int sp_discard_range(struct samepage *sp, uint64_t start, uint64_t end)
{
	unsigned int sh = sp->os.page_shift;
	struct vmas vs;
	int err = 0;

	/* locked memory cannot be discarded (EINVAL, as MADV_DONTNEED says):
	 * nothing is changed then.  (The runs mapped first: then the
	 * unmerge, which changes no mapping when it discards, leaves this
	 * list right.) */
	sp_flush(sp);
	vmas_read(sp, &vs, start, end);
	if (vs.n < 0)
		return vs.n;
	for (int k = 0; k < vs.n && !err; k++)
		if ((vs.v[k].flags & SP_VMA_UFFD_WP) && (vs.v[k].flags & SP_VMA_LOCKED))
			err = -EINVAL;
	if (!err)
		err = sp_unmerge_range(sp, start, end, true);
	for (int k = 0; k < vs.n && !err; k++) {
		const struct sp_vma *v = &vs.v[k];
		uint64_t a = v->start >> sh > start ? v->start >> sh : start;
		uint64_t b = v->end >> sh < end ? v->end >> sh : end;

		if (a >= b || !(v->flags & SP_VMA_UFFD_WP))
			continue;	/* not ours: left alone */
		if (store_inode(sp, v->inode)) {
			/* (dont-fork, dont-dump kept) */
			err = sp_os_map_anon(&sp->os, a, b - a, v->prot, PRIVATE_FLAGS(v->flags));
			if (!err)
				(void)sp_os_register(&sp->os, a, b - a);
		} else if (!v->inode) {
			err = sp_os_dontneed(&sp->os, a, b - a);
		}
	}
	sp_arena_free(&sp->arena, vs.v);
	sp_cache_invalidate(sp);
	if (!err)
		rebuild_ranges(sp, start, end);
	sp_recount_vmas(sp);
	return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * mm.c - address spaces of the simulated machine: VMAs, page tables,
 * faults and copy-on-write, fork and exit, fills and writes.
 *
 * Page tables are a hash of chunks of PT_CHUNK virtual pages, created when
 * a page of the chunk is first touched and kept until the mm goes away, so
 * that a sparse or huge mapping costs nothing until it is used.  VMAs are a
 * sorted array; after every change adjacent VMAs with the same flags are
 * merged again, so the engine sees maximal mergeable ranges.
 *
 * Copy-on-write rules (the kernel's):
 *   - a write to a KSM frame always copies, even if mapped once;
 *   - a write to an anonymous frame mapped more than once (fork), or still
 *     referred to by a swap pte, copies;
 *   - otherwise the frame is reused: the pte becomes writable;
 *   - a write to a missing page or to the zero page allocates a zero-filled
 *     frame; when KSM had placed that zero page the engine is told first.
 * New frames come from the mm's home node, else (node full, its lingering
 * swap cache reclaimed, or offline) from the other nodes in order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- page tables ---------------------------------------------------- */

static size_t pt_hash(uint64_t idx, size_t cap)
{
	return (size_t)mix64(idx) & (cap - 1);
}

static struct ptchunk *pt_chunk(const struct sim_mm *mm, uint64_t idx)
{
	if (!mm->pt_cap)
		return NULL;
	for (size_t i = pt_hash(idx, mm->pt_cap);; i = (i + 1) & (mm->pt_cap - 1)) {
		struct ptchunk *c = mm->pt[i];

		if (!c)
			return NULL;
		if (c->idx == idx)
			return c;
	}
}

static int pt_grow(struct sim_mm *mm)
{
	size_t cap = mm->pt_cap ? mm->pt_cap * 2 : 16;
	struct ptchunk **pt = calloc(cap, sizeof(*pt));

	if (!pt)
		return -ENOMEM;
	for (size_t j = 0; j < mm->pt_cap; j++) {
		struct ptchunk *c = mm->pt[j];
		size_t i;

		if (!c)
			continue;
		for (i = pt_hash(c->idx, cap); pt[i]; i = (i + 1) & (cap - 1))
			;
		pt[i] = c;
	}
	free(mm->pt);
	mm->pt = pt;
	mm->pt_cap = cap;
	return 0;
}

struct vpage *vp_lookup(const struct sim_mm *mm, uint64_t vpn)
{
	struct ptchunk *c = pt_chunk(mm, vpn >> PT_CHUNK_SHIFT);

	return c ? &c->v[vpn & (PT_CHUNK - 1)] : NULL;
}

/* The vpage of @vpn, creating its chunk; NULL when out of memory. */
static struct vpage *vp_get(struct sim *s, struct sim_mm *mm, uint64_t vpn)
{
	uint64_t idx = vpn >> PT_CHUNK_SHIFT;
	struct ptchunk *c = pt_chunk(mm, idx);
	size_t i;

	if (c)
		return &c->v[vpn & (PT_CHUNK - 1)];
	if ((mm->pt_used + 1) * 4 > mm->pt_cap * 3 && pt_grow(mm))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->idx = idx;
	for (unsigned int j = 0; j < PT_CHUNK; j++)
		c->v[j].sh_hash = s->zero_hash;
	for (i = pt_hash(idx, mm->pt_cap); mm->pt[i]; i = (i + 1) & (mm->pt_cap - 1))
		;
	mm->pt[i] = c;
	mm->pt_used++;
	return &c->v[vpn & (PT_CHUNK - 1)];
}

int mm_walk(struct sim_mm *mm, uint64_t start, uint64_t end,
	    int (*fn)(void *arg, struct sim_mm *mm, uint64_t vpn, struct vpage *vp),
	    void *arg)
{
	uint64_t first, last;
	int ret;

	if (start >= end || !mm->pt_used)
		return 0;
	first = start >> PT_CHUNK_SHIFT;
	last = (end - 1) >> PT_CHUNK_SHIFT;
	if (last - first < mm->pt_cap) {
		/* address order */
		for (uint64_t idx = first; idx <= last; idx++) {
			struct ptchunk *c = pt_chunk(mm, idx);
			uint64_t base = idx << PT_CHUNK_SHIFT;

			if (!c)
				continue;
			for (unsigned int j = 0; j < PT_CHUNK; j++) {
				uint64_t vpn = base + j;

				if (vpn < start || vpn >= end)
					continue;
				ret = fn(arg, mm, vpn, &c->v[j]);
				if (ret)
					return ret;
			}
		}
		return 0;
	}
	/* a huge range over a small table: table order */
	for (size_t i = 0; i < mm->pt_cap; i++) {
		struct ptchunk *c = mm->pt[i];

		if (!c || c->idx < first || c->idx > last)
			continue;
		for (unsigned int j = 0; j < PT_CHUNK; j++) {
			uint64_t vpn = (c->idx << PT_CHUNK_SHIFT) + j;

			if (vpn < start || vpn >= end)
				continue;
			ret = fn(arg, mm, vpn, &c->v[j]);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* ---- VMAs ------------------------------------------------------------- */

/* Index of the first VMA that ends above @vpn (nr_vmas if none). */
static size_t vma_index(const struct sim_mm *mm, uint64_t vpn)
{
	size_t lo = 0, hi = mm->nr_vmas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mm->vmas[mid].end <= vpn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vma *vma_find(const struct sim_mm *mm, uint64_t vpn)
{
	size_t i = vma_index(mm, vpn);

	if (i < mm->nr_vmas && mm->vmas[i].start <= vpn)
		return &mm->vmas[i];
	return NULL;
}

/* Is every page of [start, end) inside some VMA? */
static bool range_mapped(const struct sim_mm *mm, uint64_t start, uint64_t end)
{
	size_t i = vma_index(mm, start);
	uint64_t at = start;

	for (; i < mm->nr_vmas && at < end; i++) {
		if (mm->vmas[i].start > at)
			return false;
		at = mm->vmas[i].end;
	}
	return at >= end;
}

static int vma_insert(struct sim_mm *mm, size_t at, struct vma v)
{
	if (mm->nr_vmas == mm->cap_vmas) {
		size_t cap = mm->cap_vmas ? mm->cap_vmas * 2 : 8;
		struct vma *nv = realloc(mm->vmas, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		mm->vmas = nv;
		mm->cap_vmas = cap;
	}
	memmove(&mm->vmas[at + 1], &mm->vmas[at],
		(mm->nr_vmas - at) * sizeof(*mm->vmas));
	mm->vmas[at] = v;
	mm->nr_vmas++;
	return 0;
}

/* Make @vpn a VMA boundary (split the VMA that strictly contains it). */
static int vma_split(struct sim_mm *mm, uint64_t vpn)
{
	size_t i = vma_index(mm, vpn);
	struct vma tail;

	if (i >= mm->nr_vmas || mm->vmas[i].start >= vpn)
		return 0;
	tail = mm->vmas[i];
	tail.start = vpn;
	mm->vmas[i].end = vpn;
	return vma_insert(mm, i + 1, tail);
}

static void vma_coalesce(struct sim_mm *mm)
{
	size_t out = 0;

	for (size_t i = 0; i < mm->nr_vmas; i++) {
		if (out && mm->vmas[out - 1].end == mm->vmas[i].start &&
		    mm->vmas[out - 1].mergeable == mm->vmas[i].mergeable)
			mm->vmas[out - 1].end = mm->vmas[i].end;
		else
			mm->vmas[out++] = mm->vmas[i];
	}
	mm->nr_vmas = out;
}

/* ---- mms ---------------------------------------------------------------- */

struct sim_mm *mm_find(const struct sim *s, const char *name)
{
	for (struct sim_mm *mm = s->mms; mm; mm = mm->next)
		if (!strcmp(mm->name, name))
			return mm;
	return NULL;
}

void *sim_mm_cookie(struct sim *s, const char *name)
{
	return mm_find(s, name);
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= SIM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static struct sim_mm *mm_alloc(struct sim *s, const char *name, int node)
{
	struct sim_mm *mm = calloc(1, sizeof(*mm));
	struct sim_mm **tail;

	if (!mm)
		return NULL;
	strcpy(mm->name, name);
	mm->home = node;
	for (tail = &s->mms; *tail; tail = &(*tail)->next)
		;
	*tail = mm;
	return mm;
}

/*
 * Free an mm's page tables and VMAs.  With @keep the struct itself stays
 * (on s->graveyard until sim_free): the engine may still hold a slot keyed
 * by its address, so the address must not come back as a new mm.
 */
static void mm_release(struct sim *s, struct sim_mm *mm, bool keep)
{
	for (struct sim_mm **pp = &s->mms; *pp; pp = &(*pp)->next) {
		if (*pp == mm) {
			*pp = mm->next;
			break;
		}
	}
	for (size_t i = 0; i < mm->pt_cap; i++) {
		struct ptchunk *c = mm->pt[i];

		if (!c)
			continue;
		for (unsigned int j = 0; j < PT_CHUNK; j++)
			free(c->v[j].sh_over);
		free(c);
	}
	free(mm->pt);
	free(mm->vmas);
	if (!keep) {
		free(mm);
		return;
	}
	memset(mm, 0, sizeof(*mm));
	mm->next = s->graveyard;
	s->graveyard = mm;
}

static void mm_unlink_free(struct sim *s, struct sim_mm *mm)
{
	mm_release(s, mm, false);
}

/* Free every mm's memory without touching frames or the engine. */
void mm_destroy_all(struct sim *s)
{
	while (s->mms)
		mm_unlink_free(s, s->mms);
	while (s->graveyard) {
		struct sim_mm *mm = s->graveyard;

		s->graveyard = mm->next;
		free(mm);
	}
}

int sim_mm_new(struct sim *s, const char *name, int node)
{
	if (!s->have_machine)
		return -ENODEV;
	if (!name_ok(name) || node < 0 || node >= s->nr_nodes)
		return -EINVAL;
	if (mm_find(s, name))
		return -EEXIST;
	return mm_alloc(s, name, node) ? 0 : -ENOMEM;
}

static int lookup(struct sim *s, const char *name, struct sim_mm **mmp)
{
	if (!s->have_machine)
		return -ENODEV;
	*mmp = mm_find(s, name);
	return *mmp ? 0 : -ENOENT;
}

static int range_ok(uint64_t vpn, uint64_t npages)
{
	if (npages == 0 || vpn >= SIM_VPN_LIMIT || npages > SIM_VPN_LIMIT - vpn)
		return -EINVAL;
	return 0;
}

/* ---- unmapping ------------------------------------------------------- */

/* Drop the pte of @vp (frames released, KSM zero pages reported). */
static void zap_vpage(struct sim *s, struct sim_mm *mm, struct vpage *vp)
{
	struct frame *f;

	switch (vp->kind) {
	case PTE_PRESENT:
		f = frame_of(s, vp->pfn);
		if (f && f->mapcount) {
			f->mapcount--;
			frame_release(s, vp->pfn);
		}
		break;
	case PTE_SWAP:
		f = frame_of(s, vp->pfn);
		if (f && f->swapcount) {
			f->swapcount--;
			frame_release(s, vp->pfn);
		}
		break;
	case PTE_ZERO:
		if (vp->ksm_zero && s->ksm)
			ksm_zero_page_unmapped(s->ksm, mm);
		break;
	}
	vp->kind = PTE_NONE;
	vp->writable = 0;
	vp->ksm_zero = 0;
	vp->pfn = 0;
	if (vp->sh_kind != SH_ZERO || vp->sh_over)
		shadow_clear(s, vp);
}

static int zap_cb(void *arg, struct sim_mm *mm, uint64_t vpn, struct vpage *vp)
{
	(void)vpn;
	zap_vpage(arg, mm, vp);
	return 0;
}

/* Unmap [start, end): ptes dropped, VMAs trimmed. */
static int do_munmap(struct sim *s, struct sim_mm *mm, uint64_t start,
		     uint64_t end)
{
	size_t i, j;
	int err;

	err = vma_split(mm, start);
	if (!err)
		err = vma_split(mm, end);
	if (err)
		return err;
	mm_walk(mm, start, end, zap_cb, s);
	i = vma_index(mm, start);
	for (j = i; j < mm->nr_vmas && mm->vmas[j].start < end; j++)
		;
	if (j > i) {
		memmove(&mm->vmas[i], &mm->vmas[j],
			(mm->nr_vmas - j) * sizeof(*mm->vmas));
		mm->nr_vmas -= j - i;
	}
	vma_coalesce(mm);
	return 0;
}

int sim_munmap(struct sim *s, const char *name, uint64_t vpn, uint64_t npages)
{
	struct sim_mm *mm;
	int err = lookup(s, name, &mm);

	if (!err)
		err = range_ok(vpn, npages);
	if (err)
		return err;
	return do_munmap(s, mm, vpn, vpn + npages);
}

int sim_mmap(struct sim *s, const char *name, uint64_t vpn, uint64_t npages,
	     bool mergeable)
{
	struct sim_mm *mm;
	struct vma v;
	int err = lookup(s, name, &mm);

	if (!err)
		err = range_ok(vpn, npages);
	if (err)
		return err;
	/* the scanner walks a range page by page: keep them sane */
	if (npages > SIM_MAX_MAP_PAGES)
		return -ENOMEM;
	v.start = vpn;
	v.end = vpn + npages;
	v.mergeable = mergeable;
	/* like MAP_FIXED: whatever was there goes away */
	err = do_munmap(s, mm, v.start, v.end);
	if (!err)
		err = vma_insert(mm, vma_index(mm, vpn), v);
	if (err)
		return err;
	vma_coalesce(mm);
	if (mergeable)
		return ksm_enter(s->ksm, mm);
	return 0;
}

int sim_madvise(struct sim *s, const char *name, uint64_t vpn, uint64_t npages,
		enum sim_advice advice)
{
	uint64_t start = vpn, end = vpn + npages;
	bool mergeable = advice == SIM_MERGEABLE;
	struct sim_mm *mm;
	size_t i;
	int err = lookup(s, name, &mm);

	if (!err)
		err = range_ok(vpn, npages);
	if (err)
		return err;
	if (advice != SIM_MERGEABLE && advice != SIM_UNMERGEABLE)
		return -EINVAL;
	if (!range_mapped(mm, start, end))
		return -ENOMEM;
	if (!mergeable && s->in_resched)
		return -EBUSY;
	err = vma_split(mm, start);
	if (!err)
		err = vma_split(mm, end);
	if (err)
		return err;
	if (!mergeable && ksm_mm_registered(s->ksm, mm)) {
		/* break sharing first; the flags change only if that worked */
		for (i = vma_index(mm, start); i < mm->nr_vmas &&
		     mm->vmas[i].start < end; i++) {
			if (!mm->vmas[i].mergeable)
				continue;
			err = ksm_unmerge_range(s->ksm, mm, mm->vmas[i].start,
						mm->vmas[i].end, 0);
			if (err) {
				vma_coalesce(mm);
				return err;
			}
		}
	}
	for (i = vma_index(mm, start); i < mm->nr_vmas && mm->vmas[i].start < end; i++)
		mm->vmas[i].mergeable = mergeable;
	vma_coalesce(mm);
	if (mergeable)
		return ksm_enter(s->ksm, mm);
	return 0;
}

/* ---- faults ------------------------------------------------------------ */

/*
 * Replace the none or zero pte @vp by a fresh zero-filled private frame
 * from the mm's home node (a write fault there, or breaking a KSM-placed
 * zero page), telling the engine when KSM had placed that zero page.
 */
static int give_fresh_page(struct sim *s, struct sim_mm *mm, struct vpage *vp)
{
	uint64_t pfn;
	int err;

	if (vp->kind == PTE_ZERO && vp->ksm_zero) {
		vp->ksm_zero = 0;
		ksm_zero_page_unmapped(s->ksm, mm);
	}
	err = frame_alloc(s, mm->home, true, &pfn);
	if (err)
		return err;
	frame_of(s, pfn)->mapcount = 1;
	vp->kind = PTE_PRESENT;
	vp->pfn = (uint32_t)pfn;
	vp->writable = 1;
	return 0;
}

/* Map a private copy of the frame @vp refers to, writable or not. */
static int give_private_copy(struct sim *s, struct sim_mm *mm,
			     struct vpage *vp, bool writable)
{
	uint64_t old = vp->pfn, pfn;
	struct frame *f = frame_of(s, old);
	int err = frame_copy(s, old, mm->home, true, &pfn);

	if (err)
		return err;
	frame_of(s, pfn)->mapcount = 1;
	if (vp->kind == PTE_SWAP)
		f->swapcount--;
	else
		f->mapcount--;
	vp->kind = PTE_PRESENT;
	vp->pfn = (uint32_t)pfn;
	vp->writable = writable;
	frame_release(s, old);
	return 0;
}

/*
 * Fault in the swap pte @vp.  A KSM frame that lost its back pointer, or
 * any KSM frame while run=2 is unmerging (seed 002, cause 3) or when
 * @for_unmerge, is copied; anything else is mapped again, read-only.
 */
int fault_swapin(struct sim *s, struct sim_mm *mm, struct vpage *vp,
		 bool for_unmerge)
{
	struct frame *f = frame_of(s, vp->pfn);
	bool copy = false;

	if (vp->kind != PTE_SWAP || !f || !(f->flags & FRAME_ALLOC))
		return -EINVAL;
	if (f->flags & FRAME_KSM)
		copy = for_unmerge || !f->stable_node || ksm_unmerging(s->ksm) ||
		       ksm_run_state(s->ksm) == KSM_RUN_UNMERGE;
	if (copy)
		return give_private_copy(s, mm, vp, for_unmerge);
	f->mapcount++;
	f->swapcount--;
	vp->kind = PTE_PRESENT;
	vp->writable = 0;
	frame_release(s, vp->pfn);
	return 0;
}

/* After this @vp maps a writable frame that nobody else refers to. */
static int fault_write(struct sim *s, struct sim_mm *mm, struct vpage *vp)
{
	struct frame *f;
	int err;

	if (vp->kind == PTE_SWAP) {
		err = fault_swapin(s, mm, vp, false);
		if (err)
			return err;
	}
	if (vp->kind == PTE_NONE || vp->kind == PTE_ZERO)
		return give_fresh_page(s, mm, vp);
	f = frame_of(s, vp->pfn);
	if (!(f->flags & FRAME_KSM) && f->mapcount == 1 && f->swapcount == 0) {
		vp->writable = 1;	/* reuse */
		return 0;
	}
	return give_private_copy(s, mm, vp, true);
}

/* ---- content ------------------------------------------------------------ */

int sim_fill(struct sim *s, const char *name, uint64_t vpn, uint64_t npages,
	     enum sim_fill_kind kind, uint8_t value)
{
	struct sim_mm *mm;
	int err = lookup(s, name, &mm);

	if (!err)
		err = range_ok(vpn, npages);
	if (err)
		return err;
	if (!range_mapped(mm, vpn, vpn + npages))
		return -EFAULT;
	for (uint64_t i = 0; i < npages; i++) {
		struct vpage *vp = vp_get(s, mm, vpn + i);
		struct blob *b;
		uint64_t arg = 0;
		int sh;

		if (!vp)
			return -ENOMEM;
		switch (kind) {
		case SIM_FILL_SEQ:
			sh = SH_SEQ;
			arg = i;
			break;
		case SIM_FILL_RANDOM:
			sh = SH_RANDOM;
			arg = mix64(s->seed * 0x9e3779b97f4a7c15ull + s->rng_counter++);
			break;
		default:
			sh = SH_BYTE;
			break;
		}
		err = fault_write(s, mm, vp);
		if (!err)
			err = content_blob(s, sh, value, arg, &b);
		if (err)
			return err;
		frame_set_content(s, frame_of(s, vp->pfn), b);
		shadow_set(s, vp, sh, value, arg);
	}
	return 0;
}

/* The mm of a one-byte access to @name:@vpn+@offset, checked. */
static int byte_access(struct sim *s, const char *name, uint64_t vpn, size_t offset,
		       struct sim_mm **mmp)
{
	int err = lookup(s, name, mmp);

	if (err)
		return err;
	if (offset >= s->page_size || vpn >= SIM_VPN_LIMIT)
		return -EINVAL;
	if (!vma_find(*mmp, vpn))
		return -EFAULT;
	return 0;
}

int sim_write(struct sim *s, const char *name, uint64_t vpn, size_t offset,
	      uint8_t value)
{
	struct sim_mm *mm;
	struct vpage *vp;
	int err = byte_access(s, name, vpn, offset, &mm);

	if (err)
		return err;
	vp = vp_get(s, mm, vpn);
	if (!vp)
		return -ENOMEM;
	err = fault_write(s, mm, vp);
	if (!err)
		err = frame_write_byte(s, frame_of(s, vp->pfn), offset, value);
	if (!err)
		err = shadow_write_byte(s, vp, offset, value);
	return err;
}

int sim_read(struct sim *s, const char *name, uint64_t vpn, size_t offset,
	     uint8_t *value)
{
	struct sim_mm *mm;
	struct vpage *vp;
	int err = byte_access(s, name, vpn, offset, &mm);

	if (err)
		return err;
	vp = vp_lookup(mm, vpn);
	*value = 0;
	if (vp && (vp->kind == PTE_PRESENT || vp->kind == PTE_SWAP))
		*value = frame_data(s, frame_of(s, vp->pfn))[offset];
	return 0;
}

/* ---- fork and exit -------------------------------------------------------- */

int sim_fork(struct sim *s, const char *parent, const char *child)
{
	struct sim_mm *pm, *cm;
	int err = lookup(s, parent, &pm);

	if (err)
		return err;
	if (!name_ok(child))
		return -EINVAL;
	if (mm_find(s, child))
		return -EEXIST;
	cm = mm_alloc(s, child, pm->home);
	if (!cm)
		return -ENOMEM;
	if (pm->nr_vmas) {
		cm->vmas = malloc(pm->nr_vmas * sizeof(*cm->vmas));
		if (!cm->vmas)
			goto undo;
		memcpy(cm->vmas, pm->vmas, pm->nr_vmas * sizeof(*cm->vmas));
		cm->nr_vmas = cm->cap_vmas = pm->nr_vmas;
	}
	for (size_t i = 0; i < pm->pt_cap; i++) {
		struct ptchunk *pc = pm->pt[i];
		uint64_t base;

		if (!pc)
			continue;
		base = pc->idx << PT_CHUNK_SHIFT;
		for (unsigned int j = 0; j < PT_CHUNK; j++) {
			struct vpage *pv = &pc->v[j], *cv;

			if (pv->kind == PTE_NONE && pv->sh_kind == SH_ZERO &&
			    !pv->sh_over)
				continue;
			cv = vp_get(s, cm, base + j);
			if (!cv || shadow_copy(cv, pv))
				goto undo;
			cv->kind = pv->kind;
			cv->pfn = pv->pfn;
			switch (pv->kind) {
			case PTE_PRESENT:
				frame_of(s, pv->pfn)->mapcount++;
				pv->writable = 0;	/* both copy on write */
				break;
			case PTE_SWAP:
				frame_of(s, pv->pfn)->swapcount++;
				break;
			}
		}
	}
	if (ksm_mm_registered(s->ksm, pm)) {
		err = ksm_enter(s->ksm, cm);
		if (err)
			goto undo_err;
	}
	return 0;
undo:
	err = -ENOMEM;
undo_err:
	mm_walk(cm, 0, SIM_VPN_LIMIT, zap_cb, s);
	mm_unlink_free(s, cm);
	return err;
}

static int exit_zero_cb(void *arg, struct sim_mm *mm, uint64_t vpn,
			struct vpage *vp)
{
	struct sim *s = arg;

	(void)vpn;
	if (vp->kind == PTE_ZERO && vp->ksm_zero) {
		vp->ksm_zero = 0;
		ksm_zero_page_unmapped(s->ksm, mm);
	}
	return 0;
}

/* Remember the name of an exited mm: its per-mm stats read 0, not "no mm". */
static void remember_ghost(struct sim *s, const char *name)
{
	char (*g)[SIM_NAME_MAX];

	for (size_t i = 0; i < s->nr_ghosts; i++)
		if (!strcmp(s->ghosts[i], name))
			return;
	g = realloc(s->ghosts, (s->nr_ghosts + 1) * sizeof(*g));
	if (!g)
		return;
	s->ghosts = g;
	strcpy(s->ghosts[s->nr_ghosts++], name);
}

int sim_exit(struct sim *s, const char *name)
{
	struct sim_mm *mm;
	int err = lookup(s, name, &mm);

	if (err)
		return err;
	if (s->in_resched)
		return -EBUSY;
	/*
	 * Tell the engine about its zero pages while it still knows the mm,
	 * then let it forget the mm: it never calls back for it afterwards.
	 */
	mm_walk(mm, 0, SIM_VPN_LIMIT, exit_zero_cb, s);
	ksm_exit(s->ksm, mm);
	mm_walk(mm, 0, SIM_VPN_LIMIT, zap_cb, s);
	remember_ghost(s, mm->name);
	mm_release(s, mm, true);
	return 0;
}

/* ---- unmerge (the backend's break_ksm) -------------------------------------- */

static int unmerge_cb(void *arg, struct sim_mm *mm, uint64_t vpn,
		      struct vpage *vp)
{
	struct sim *s = arg;
	struct frame *f;

	(void)vpn;
	switch (vp->kind) {
	case PTE_PRESENT:
		f = frame_of(s, vp->pfn);
		if (f->flags & FRAME_KSM)
			return give_private_copy(s, mm, vp, true);
		return 0;
	case PTE_SWAP:
		/*
		 * Like the kernel's break_ksm(), which follows present pages
		 * only: a swapped-out KSM page stays in swap cache.  The
		 * engine must then remove its stable node all the same (seed
		 * 002, cause 1), and a later swapin copies the page (no back
		 * pointer, or run=2: cause 3).
		 */
		return 0;
	case PTE_ZERO:
		return vp->ksm_zero ? give_fresh_page(s, mm, vp) : 0;
	}
	return 0;
}

int mm_unmerge_range(struct sim *s, struct sim_mm *mm, uint64_t start,
		     uint64_t end)
{
	return mm_walk(mm, start, end, unmerge_cb, s);
}

/* ---- introspection -------------------------------------------------------- */

int sim_page_info(struct sim *s, const char *name, uint64_t vpn,
		  struct sim_page_info *info)
{
	struct sim_mm *mm;
	struct vpage *vp;
	struct frame *f;
	int err = lookup(s, name, &mm);

	memset(info, 0, sizeof(*info));
	info->nid = -1;
	if (err)
		return err;
	if (!vma_find(mm, vpn))
		return -EFAULT;
	vp = vp_lookup(mm, vpn);
	if (!vp)
		return 0;
	info->kind = vp->kind;
	info->writable = vp->writable;
	info->ksm_zero = vp->ksm_zero;
	if (vp->kind != PTE_PRESENT && vp->kind != PTE_SWAP)
		return 0;
	f = frame_of(s, vp->pfn);
	info->pfn = vp->pfn;
	info->nid = pfn_nid(s, vp->pfn);
	if (!f)
		return 0;
	info->ksm = f->flags & FRAME_KSM;
	info->swapcache = f->flags & FRAME_SWAPCACHE;
	info->mapcount = f->mapcount;
	info->swapcount = f->swapcount;
	info->stable_node = f->stable_node;
	return 0;
}

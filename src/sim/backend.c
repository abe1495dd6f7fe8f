/* SPDX-License-Identifier: MIT */
/*
 * backend.c - the simulated machine seen through the engine's backend
 * contract (src/core/backend.h).
 *
 * mm cookies are struct sim_mm pointers, pfns are frame numbers.  The
 * operations check what the engine hands them: a call that breaks the
 * contract (a back pointer set on a frame that is not a KSM page, a merge
 * onto a frame that is not a KSM page, an unknown pfn) is refused and
 * remembered, and sim_check() reports it as a finding.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "sim_internal.h"

static void describe_frame(struct sim *s, uint64_t pfn, struct sp_page *pg)
{
	struct frame *f = frame_of(s, pfn);

	memset(pg, 0, sizeof(*pg));
	if (!f || !(f->flags & FRAME_ALLOC))
		return;		/* SP_PAGE_NONE: freed */
	pg->kind = (f->flags & FRAME_KSM) ? SP_PAGE_KSM : SP_PAGE_ANON;
	pg->pfn = pfn;
	pg->nid = pfn_nid(s, pfn);
	pg->mapcount = (int)f->mapcount;
	pg->stable_node = f->stable_node;
	pg->data = frame_data(s, f);
}

static int be_find_range(void *be, void *mmp, uint64_t vpn, uint64_t *start,
			 uint64_t *end)
{
	struct sim_mm *mm = mmp;
	size_t lo = 0, hi = mm->nr_vmas;

	(void)be;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mm->vmas[mid].end <= vpn)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < mm->nr_vmas; lo++) {
		if (mm->vmas[lo].mergeable) {
			*start = mm->vmas[lo].start;
			*end = mm->vmas[lo].end;
			return 0;
		}
	}
	return -ENOENT;
}

static int be_follow_page(void *be, void *mmp, uint64_t vpn, struct sp_page *pg)
{
	struct sim *s = be;
	struct vpage *vp = vp_lookup(mmp, vpn);

	memset(pg, 0, sizeof(*pg));
	if (!vp || !vma_find(mmp, vpn))
		return 0;
	switch (vp->kind) {
	case PTE_ZERO:
		pg->kind = SP_PAGE_ZERO;
		pg->data = s->zero_page;
		return 0;
	case PTE_PRESENT:
		describe_frame(s, vp->pfn, pg);
		return 0;
	default:
		return 0;	/* none or swapped */
	}
}

static int be_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	struct sim *s = be;

	if (!pfn_valid(s, pfn)) {
		memset(pg, 0, sizeof(*pg));
		sim_misuse(s, "pfn_page(%" PRIu64 "): no such frame", pfn);
		return -EINVAL;
	}
	describe_frame(s, pfn, pg);
	return 0;
}

/* The present pte at (mm, vpn) if it still maps @seen's page, else NULL. */
static struct vpage *still_seen(struct sim *s, void *mmp, uint64_t vpn,
				const struct sp_page *seen)
{
	struct vpage *vp = vp_lookup(mmp, vpn);
	struct vma *vma = vma_find(mmp, vpn);
	struct frame *f;

	/* like the kernel's find_mergeable_vma(): only in a mergeable VMA */
	if (!vp || vp->kind != PTE_PRESENT || !vma || !vma->mergeable)
		return NULL;
	vp->writable = 0;	/* write-protect first */
	if ((seen->kind != SP_PAGE_ANON && seen->kind != SP_PAGE_KSM) ||
	    vp->pfn != seen->pfn)
		return NULL;
	f = frame_of(s, vp->pfn);
	if ((seen->kind == SP_PAGE_KSM) != ((f->flags & FRAME_KSM) != 0))
		return NULL;
	return vp;
}

static bool same_content(struct sim *s, struct frame *a, struct frame *b)
{
	if (a->content == b->content)
		return true;
	return memcmp(frame_data(s, a), frame_data(s, b), s->page_size) == 0;
}

static int be_merge(void *be, void *mmp, uint64_t vpn,
		    const struct sp_page *seen, uint64_t kpfn)
{
	struct sim *s = be;
	struct frame *kf = frame_of(s, kpfn), *f;
	struct vpage *vp;
	uint64_t old;

	if (!kf || !(kf->flags & FRAME_ALLOC) || !(kf->flags & FRAME_KSM)) {
		sim_misuse(s, "merge onto pfn %" PRIu64 ", not a KSM page", kpfn);
		return -EINVAL;
	}
	vp = still_seen(s, mmp, vpn, seen);
	if (!vp)
		return -EAGAIN;
	old = vp->pfn;
	if (old == kpfn)
		return 0;
	f = frame_of(s, old);
	if (!same_content(s, f, kf))
		return -EAGAIN;
	vp->pfn = (uint32_t)kpfn;
	vp->writable = 0;
	kf->mapcount++;
	frame_revive(s, kpfn);	/* a KSM page may come back from swap cache */
	f->mapcount--;
	frame_release(s, old);
	return 0;
}

static int be_merge_zero(void *be, void *mmp, uint64_t vpn,
			 const struct sp_page *seen)
{
	struct sim *s = be;
	struct vpage *vp = still_seen(s, mmp, vpn, seen);
	struct frame *f;
	uint64_t old;

	if (!vp)
		return -EAGAIN;
	old = vp->pfn;
	f = frame_of(s, old);
	if (f->content && memcmp(f->content->data, s->zero_page, s->page_size))
		return -EAGAIN;
	vp->kind = PTE_ZERO;
	vp->pfn = 0;
	vp->writable = 0;
	vp->ksm_zero = 1;
	f->mapcount--;
	frame_release(s, old);
	return 0;
}

static int be_make_ksm(void *be, void *mmp, uint64_t vpn,
		       const struct sp_page *seen, uint64_t *kpfn)
{
	struct sim *s = be;
	struct vpage *vp = still_seen(s, mmp, vpn, seen);
	struct frame *f;

	if (!vp)
		return -EAGAIN;
	f = frame_of(s, vp->pfn);
	/*
	 * In place: every pte of a frame mapped more than once is already
	 * read-only (fork made it so), and this one was just protected.
	 */
	f->flags |= FRAME_KSM;
	*kpfn = vp->pfn;
	return 0;
}

static int be_unmerge(void *be, void *mmp, uint64_t start, uint64_t end, unsigned int flags)
{
	(void)flags;	/* the simulator keeps content either way */
	return mm_unmerge_range(be, mmp, start, end);
}

static void be_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	struct sim *s = be;
	struct frame *f = frame_of(s, kpfn);

	if (!f || !(f->flags & FRAME_ALLOC) || !(f->flags & FRAME_KSM)) {
		if (node)
			sim_misuse(s, "set_stable_node(%" PRIu64 ", %p): not a KSM page",
				   kpfn, (void *)node);
		return;
	}
	f->stable_node = node;
}

static uint64_t be_now_ms(void *be)
{
	return ((struct sim *)be)->clock_ms;
}

static void be_cond_resched(void *be)
{
	struct sim *s = be;

	if (!s->resched_fn || s->in_resched)
		return;
	s->in_resched = true;
	s->resched_fn(s, s->resched_arg);
	s->in_resched = false;
}

const struct sp_backend_ops sim_backend_ops = {
	.find_range = be_find_range,
	.follow_page = be_follow_page,
	.pfn_page = be_pfn_page,
	.merge = be_merge,
	.merge_zero = be_merge_zero,
	.make_ksm = be_make_ksm,
	.unmerge = be_unmerge,
	.set_stable_node = be_set_stable_node,
	.now_ms = be_now_ms,
	.cond_resched = be_cond_resched,
};

int sim_machine(struct sim *s, int nodes, unsigned long pages_per_node,
		size_t page_size)
{
	int err;

	if (s->have_machine)
		return -EEXIST;
	err = machine_init(s, nodes, pages_per_node, page_size);
	if (err) {
		machine_destroy(s);
		memset(s->nodes, 0, sizeof(s->nodes));
		s->fchunks = NULL;
		s->nr_fchunks = 0;
		s->zero_page = NULL;
		s->scratch = NULL;
		s->have_machine = false;
		return err;
	}
	s->backend.ops = &sim_backend_ops;
	s->backend.be = s;
	s->backend.page_size = page_size;
	s->backend.nr_node_ids = nodes;
	err = ksm_create(&s->ksm, &s->backend);
	if (err) {
		s->ksm = NULL;
		machine_destroy(s);
		s->fchunks = NULL;
		s->nr_fchunks = 0;
		s->zero_page = NULL;
		s->scratch = NULL;
		s->have_machine = false;
	}
	return err;
}

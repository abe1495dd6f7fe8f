/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - moving and reclaiming physical pages of the simulated
 * machine: page migration between nodes, memory hot-remove, swap out and
 * swap in.
 *
 * The machine keeps no reverse map: whoever moves a frame rewrites every
 * pte of every mm that refers to it, in one pass over all page tables (for
 * hot-remove, one pass for the whole node).  A KSM frame carries its flags
 * and back pointer to its new place, and the engine is told the new frame
 * number (ksm_migrate_page); with merge_across_nodes=0 the stable node is
 * then on the wrong node until the engine notices (seed 001).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/*
 * Rewrite every present or swap pte whose frame lies in
 * [first, first + count) and has map[pfn - first] != FRAME_NIL.
 */
static void remap_ptes(struct sim *s, uint64_t first, uint64_t count,
		       const uint32_t *map)
{
	for (struct sim_mm *mm = s->mms; mm; mm = mm->next) {
		for (size_t i = 0; i < mm->pt_cap; i++) {
			struct ptchunk *c = mm->pt[i];

			if (!c)
				continue;
			for (unsigned int j = 0; j < PT_CHUNK; j++) {
				struct vpage *vp = &c->v[j];

				if ((vp->kind != PTE_PRESENT && vp->kind != PTE_SWAP) ||
				    vp->pfn < first || vp->pfn - first >= count ||
				    map[vp->pfn - first] == FRAME_NIL)
					continue;
				vp->pfn = map[vp->pfn - first];
			}
		}
	}
}

/*
 * Move everything of frame @old to the (freshly allocated) frame @new,
 * free @old; ptes are the caller's business.  Returns the stable node to
 * report to the engine, if any.
 */
static struct stable_node *move_frame(struct sim *s, uint64_t old, uint64_t new)
{
	struct frame *of = frame_of(s, old), *nf = frame_of(s, new);
	struct stable_node *node = NULL;

	blob_put(nf->content);
	nf->content = of->content;
	of->content = NULL;
	nf->flags = of->flags;
	nf->mapcount = of->mapcount;
	nf->swapcount = of->swapcount;
	nf->stable_node = of->stable_node;
	if ((nf->flags & FRAME_KSM) && nf->stable_node)
		node = nf->stable_node;
	/* leave the old one with nothing, then free it */
	of->flags = FRAME_ALLOC;
	of->mapcount = 0;
	of->swapcount = 0;
	if (of->stable_node && s->ksm)
		ksm_page_gone(s->ksm);	/* (the caller may not tell the engine) */
	of->stable_node = NULL;
	frame_free(s, old);
	return node;
}

static int mapped_vpage(struct sim *s, const char *name, uint64_t vpn,
			struct sim_mm **mmp, struct vpage **vpp)
{
	struct sim_mm *mm;

	if (!s->have_machine)
		return -ENODEV;
	mm = mm_find(s, name);
	if (!mm)
		return -ENOENT;
	if (vpn >= SIM_VPN_LIMIT || !vma_find(mm, vpn))
		return -EFAULT;
	*mmp = mm;
	*vpp = vp_lookup(mm, vpn);
	return 0;
}

int sim_migrate(struct sim *s, const char *name, uint64_t vpn, int node)
{
	struct stable_node *sn;
	struct sim_mm *mm;
	struct vpage *vp;
	uint64_t old, new;
	uint32_t map;
	int err = mapped_vpage(s, name, vpn, &mm, &vp);

	if (err)
		return err;
	if (node < 0 || node >= s->nr_nodes)
		return -EINVAL;
	if (!vp || (vp->kind != PTE_PRESENT && vp->kind != PTE_SWAP))
		return -ENOENT;		/* no page there (move_pages says so) */
	old = vp->pfn;
	if (pfn_nid(s, old) == node)
		return 0;
	err = frame_alloc(s, node, false, &new);
	if (err)
		return err;
	map = (uint32_t)new;
	remap_ptes(s, old, 1, &map);
	sn = move_frame(s, old, new);
	if (sn)
		ksm_migrate_page(s->ksm, sn, new);
	return 0;
}

int sim_offline(struct sim *s, int node)
{
	struct sim_node *nd;
	uint64_t need = 0, room = 0;
	uint32_t *map;

	if (!s->have_machine)
		return -ENODEV;
	if (node < 0 || node >= s->nr_nodes || !s->nodes[node].online)
		return -EINVAL;
	if (s->in_resched)
		return -EBUSY;
	nd = &s->nodes[node];
	need = nd->nr_alloc - nd->nr_lingering;
	for (int n = 0; n < s->nr_nodes; n++) {
		if (n == node || !s->nodes[n].online)
			continue;
		room += s->node_pages - s->nodes[n].nr_alloc +
			s->nodes[n].nr_lingering;
	}
	if (room == 0 || need > room)
		return -EBUSY;
	map = malloc(s->node_pages * sizeof(*map));
	if (!map)
		return -ENOMEM;
	/* lingering swap cache just goes */
	for (uint32_t i = 0; i < nd->hwm; i++) {
		struct frame *f = frame_of(s, nd->first_pfn + i);

		map[i] = FRAME_NIL;
		if (f && (f->flags & FRAME_ALLOC) && frame_is_lingering(f))
			frame_free(s, nd->first_pfn + i);
	}
	/* every other frame to the lowest online node with room */
	for (uint32_t i = 0; i < nd->hwm; i++) {
		struct frame *f = frame_of(s, nd->first_pfn + i);
		uint64_t new;
		int n, err = -ENOMEM;

		if (!f || !(f->flags & FRAME_ALLOC))
			continue;
		for (n = 0; n < s->nr_nodes && err; n++)
			if (n != node)
				err = frame_alloc(s, n, false, &new);
		if (err) {	/* cannot happen: room was counted */
			free(map);
			return -EBUSY;
		}
		map[i] = (uint32_t)new;
	}
	remap_ptes(s, nd->first_pfn, nd->hwm, map);
	for (uint32_t i = 0; i < nd->hwm; i++) {
		struct stable_node *sn;

		if (map[i] == FRAME_NIL)
			continue;
		sn = move_frame(s, nd->first_pfn + i, map[i]);
		if (sn)
			ksm_migrate_page(s->ksm, sn, map[i]);
	}
	free(map);
	nd->online = false;
	ksm_offline(s->ksm, nd->first_pfn, nd->first_pfn + s->node_pages);
	return 0;
}

int sim_swapout(struct sim *s, const char *name, uint64_t vpn)
{
	struct sim_mm *mm;
	struct vpage *vp;
	struct frame *f;
	uint64_t pfn;
	uint32_t n = 0;
	int err = mapped_vpage(s, name, vpn, &mm, &vp);

	if (err)
		return err;
	if (!vp || vp->kind != PTE_PRESENT)
		return -EINVAL;
	pfn = vp->pfn;
	for (struct sim_mm *m = s->mms; m; m = m->next) {
		for (size_t i = 0; i < m->pt_cap; i++) {
			struct ptchunk *c = m->pt[i];

			if (!c)
				continue;
			for (unsigned int j = 0; j < PT_CHUNK; j++) {
				struct vpage *v = &c->v[j];

				if (v->kind == PTE_PRESENT && v->pfn == pfn) {
					v->kind = PTE_SWAP;
					v->writable = 0;
					n++;
				}
			}
		}
	}
	f = frame_of(s, pfn);
	f->mapcount -= n < f->mapcount ? n : f->mapcount;
	f->swapcount += n;
	f->flags |= FRAME_SWAPCACHE;
	return 0;
}

int sim_swapin(struct sim *s, const char *name, uint64_t vpn)
{
	struct sim_mm *mm;
	struct vpage *vp;
	int err = mapped_vpage(s, name, vpn, &mm, &vp);

	if (err)
		return err;
	if (!vp || vp->kind != PTE_SWAP)
		return -EINVAL;
	return fault_swapin(s, mm, vp, false);
}

/* SPDX-License-Identifier: MIT */
/*
 * check.c - the machine's consistency checker.
 *
 * Everything the machine keeps twice is compared: frame reference counts
 * against a recount of the ptes, node counters against the frames, the
 * engine's ksm_zero_pages against the zero ptes KSM placed, and every
 * virtual page's content against its shadow.  Copy-on-write safety: no
 * writable pte maps a KSM frame or a frame that anyone else refers to, and
 * KSM pages live only in mergeable VMAs.  Then the engine's own checker.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

struct checker {
	struct sim *s;
	ksm_report_fn report;
	void *arg;
	int findings;
	uint32_t **maps, **swaps;	/* recounts, chunked like the frames */
	long zero_ptes;			/* KSM zero ptes in the current mm */
	long zero_total;
	struct known_node {		/* the engine's stable nodes, by address */
		const struct stable_node *node;
		uint64_t kpfn;
		bool is_chain;
	} *nodes;
	size_t nr_nodes, cap_nodes;
	bool nodes_nomem;
};

static void finding(struct checker *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void finding(struct checker *c, const char *fmt, ...)
{
	char buf[320];
	va_list ap;

	c->findings++;
	if (!c->report)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->report(c->arg, buf);
}

static void collect_node(void *arg, const struct ksm_node_info *info)
{
	struct checker *c = arg;

	if (c->nr_nodes == c->cap_nodes) {
		size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 64;
		struct known_node *n = realloc(c->nodes, cap * sizeof(*n));

		if (!n) {
			c->nodes_nomem = true;
			return;
		}
		c->nodes = n;
		c->cap_nodes = cap;
	}
	c->nodes[c->nr_nodes].node = info->node;
	c->nodes[c->nr_nodes].kpfn = info->kpfn;
	c->nodes[c->nr_nodes].is_chain = info->is_chain;
	c->nr_nodes++;
}

static int node_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct known_node *)a)->node;
	uintptr_t y = (uintptr_t)((const struct known_node *)b)->node;

	return x < y ? -1 : x > y;
}

/* A frame's back pointer must name a stable node the engine has, whose
 * page is this frame (the engine checks the other direction). */
static void check_back_pointer(struct checker *c, uint64_t pfn,
			       const struct stable_node *sn)
{
	struct known_node key = { .node = sn }, *k;

	if (c->nodes_nomem)
		return;
	k = bsearch(&key, c->nodes, c->nr_nodes, sizeof(*c->nodes), node_cmp);
	if (!k)
		finding(c, "frame %" PRIu64 ": back pointer to %p, which is not a "
			"stable node of the engine", pfn, (const void *)sn);
	else if (k->is_chain)
		finding(c, "frame %" PRIu64 ": back pointer to a chain, not a dup", pfn);
	else if (k->kpfn != pfn)
		finding(c, "frame %" PRIu64 ": back pointer to a stable node whose "
			"page is frame %" PRIu64, pfn, k->kpfn);
}

static uint32_t *count_of(uint32_t **tab, uint64_t pfn)
{
	uint32_t *chunk = tab[pfn >> FRAME_CHUNK_SHIFT];

	return chunk ? &chunk[pfn & (FRAME_CHUNK - 1)] : NULL;
}

/* Where does the real content of @vp first differ from its shadow? */
static void report_content(struct checker *c, struct sim_mm *mm, uint64_t vpn,
			   struct vpage *vp, const unsigned char *real)
{
	struct sim *s = c->s;

	for (size_t off = 0; off < s->page_size; off++) {
		uint8_t want = shadow_byte(s, vp, off);

		if (real[off] != want) {
			finding(c, "%s:%" PRIu64 ": content lost: byte %zu is 0x%02x, "
				"0x%02x was written", mm->name, vpn, off, real[off], want);
			return;
		}
	}
	finding(c, "%s:%" PRIu64 ": shadow hash mismatch with equal bytes",
		mm->name, vpn);
}

static void check_vpage(struct checker *c, struct sim_mm *mm, uint64_t vpn,
			struct vpage *vp)
{
	struct sim *s = c->s;
	struct vma *vma = vma_find(mm, vpn);
	struct frame *f = NULL;
	uint64_t hash = s->zero_hash;
	const unsigned char *real = s->zero_page;
	uint32_t *cnt;

	if (!vma) {
		if (vp->kind != PTE_NONE || vp->sh_kind != SH_ZERO || vp->sh_over)
			finding(c, "%s:%" PRIu64 ": pte or content outside every VMA",
				mm->name, vpn);
		return;
	}
	switch (vp->kind) {
	case PTE_PRESENT:
	case PTE_SWAP:
		f = frame_of(s, vp->pfn);
		if (!f || !(f->flags & FRAME_ALLOC)) {
			finding(c, "%s:%" PRIu64 ": pte refers to free frame %" PRIu32,
				mm->name, vpn, vp->pfn);
			return;
		}
		cnt = count_of(vp->kind == PTE_PRESENT ? c->maps : c->swaps, vp->pfn);
		if (cnt)
			(*cnt)++;
		if (vp->kind == PTE_SWAP && !(f->flags & FRAME_SWAPCACHE))
			finding(c, "%s:%" PRIu64 ": swap pte to frame %" PRIu32
				" not in swap cache", mm->name, vpn, vp->pfn);
		if (vp->kind == PTE_PRESENT && vp->writable &&
		    ((f->flags & FRAME_KSM) || f->mapcount != 1 || f->swapcount))
			finding(c, "%s:%" PRIu64 ": writable pte to frame %" PRIu32
				" (%s, mapcount %" PRIu32 ", swapcount %" PRIu32 ")",
				mm->name, vpn, vp->pfn,
				(f->flags & FRAME_KSM) ? "KSM" : "anon",
				f->mapcount, f->swapcount);
		hash = frame_hash(s, f);
		real = frame_data(s, f);
		break;
	case PTE_ZERO:
		if (vp->writable)
			finding(c, "%s:%" PRIu64 ": writable zero page", mm->name, vpn);
		if (vp->ksm_zero) {
			c->zero_ptes++;
			if (!vma->mergeable)
				finding(c, "%s:%" PRIu64 ": KSM zero page in a VMA "
					"that is not mergeable", mm->name, vpn);
		}
		break;
	}
	if (hash != vp->sh_hash)
		report_content(c, mm, vpn, vp, real);
}

static void check_mm(struct checker *c, struct sim_mm *mm)
{
	struct sim *s = c->s;
	long engine = 0;

	c->zero_ptes = 0;
	for (size_t i = 0; i < mm->pt_cap; i++) {
		struct ptchunk *pc = mm->pt[i];

		if (!pc)
			continue;
		for (unsigned int j = 0; j < PT_CHUNK; j++)
			check_vpage(c, mm, (pc->idx << PT_CHUNK_SHIFT) + j, &pc->v[j]);
	}
	for (size_t i = 1; i < mm->nr_vmas; i++)
		if (mm->vmas[i - 1].end > mm->vmas[i].start ||
		    mm->vmas[i].start >= mm->vmas[i].end)
			finding(c, "%s: VMAs out of order", mm->name);
	if (s->ksm && ksm_mm_registered(s->ksm, mm) &&
	    ksm_mm_get(s->ksm, mm, "ksm_zero_pages", &engine))
		engine = 0;
	if (engine != c->zero_ptes)
		finding(c, "%s: ksm_zero_pages is %ld, %ld zero pages placed by KSM",
			mm->name, engine, c->zero_ptes);
	c->zero_total += c->zero_ptes;
}

static void check_frames(struct checker *c)
{
	struct sim *s = c->s;

	for (int n = 0; n < s->nr_nodes; n++) {
		struct sim_node *nd = &s->nodes[n];
		uint32_t alloc = 0, lingering = 0;

		for (uint32_t i = 0; i < nd->hwm; i++) {
			uint64_t pfn = nd->first_pfn + i;
			struct frame *f = frame_of(s, pfn);
			uint32_t maps = *count_of(c->maps, pfn);
			uint32_t swaps = *count_of(c->swaps, pfn);

			if (!(f->flags & FRAME_ALLOC)) {
				if (f->flags || f->stable_node || f->content ||
				    f->mapcount || f->swapcount)
					finding(c, "frame %" PRIu64 ": free but not clean%s",
						pfn, f->stable_node ?
						" (back pointer left)" : "");
				continue;
			}
			alloc++;
			if (!nd->online)
				finding(c, "frame %" PRIu64 ": allocated on offline node %d",
					pfn, n);
			if (f->mapcount != maps || f->swapcount != swaps)
				finding(c, "frame %" PRIu64 ": mapcount %" PRIu32
					" swapcount %" PRIu32 ", ptes say %" PRIu32 " and %" PRIu32,
					pfn, f->mapcount, f->swapcount, maps, swaps);
			if (frame_is_lingering(f)) {
				lingering++;
				if (f->mapcount || f->swapcount ||
				    !(f->flags & FRAME_SWAPCACHE))
					finding(c, "frame %" PRIu64 ": lingers but is in use", pfn);
			} else if (!f->mapcount && !f->swapcount) {
				finding(c, "frame %" PRIu64 ": allocated, nobody refers to it",
					pfn);
			} else if ((f->flags & FRAME_SWAPCACHE) && !f->swapcount) {
				finding(c, "frame %" PRIu64 ": mapped swap cache without swap ptes",
					pfn);
			}
			if (f->stable_node && !(f->flags & FRAME_KSM))
				finding(c, "frame %" PRIu64 ": back pointer on a page that "
					"is not KSM", pfn);
			if (f->stable_node)
				check_back_pointer(c, pfn, f->stable_node);
		}
		if (alloc != nd->nr_alloc || lingering != nd->nr_lingering)
			finding(c, "node %d: %" PRIu32 " frames allocated, %" PRIu32
				" lingering; counted %" PRIu32 " and %" PRIu32,
				n, nd->nr_alloc, nd->nr_lingering, alloc, lingering);
	}
}

static int check_all(struct sim *s, ksm_report_fn report, void *arg, bool engine)
{
	struct checker c = { .s = s, .report = report, .arg = arg };
	long global = 0;

	if (!s->have_machine)
		return 0;
	c.maps = calloc(s->nr_fchunks, sizeof(*c.maps));
	c.swaps = calloc(s->nr_fchunks, sizeof(*c.swaps));
	if (!c.maps || !c.swaps)
		goto nomem;
	for (size_t i = 0; i < s->nr_fchunks; i++) {
		if (!s->fchunks[i])
			continue;
		c.maps[i] = calloc(FRAME_CHUNK, sizeof(uint32_t));
		c.swaps[i] = calloc(FRAME_CHUNK, sizeof(uint32_t));
		if (!c.maps[i] || !c.swaps[i])
			goto nomem;
	}
	if (s->ksm) {
		ksm_walk_stable(s->ksm, collect_node, &c);
		if (c.nr_nodes)
			qsort(c.nodes, c.nr_nodes, sizeof(*c.nodes), node_cmp);
	}
	for (struct sim_mm *mm = s->mms; mm; mm = mm->next)
		check_mm(&c, mm);
	check_frames(&c);
	if (s->ksm && !ksm_get(s->ksm, "ksm_zero_pages", &global) &&
	    global != c.zero_total)
		finding(&c, "ksm_zero_pages is %ld, %ld zero pages placed by KSM",
			global, c.zero_total);
	if (s->misuse)
		finding(&c, "the engine broke the backend contract %lu times; "
			"first: %s", s->misuse, s->misuse_msg);
	if (s->ksm && engine) {
		int n = ksm_check(s->ksm, report, arg);

		if (n > 0)
			c.findings += n;
	}
	goto out;
nomem:
	finding(&c, "checker: out of memory");
out:
	for (size_t i = 0; i < s->nr_fchunks; i++) {
		if (c.maps)
			free(c.maps[i]);
		if (c.swaps)
			free(c.swaps[i]);
	}
	free(c.maps);
	free(c.swaps);
	free(c.nodes);
	return c.findings;
}

int sim_check(struct sim *s, ksm_report_fn report, void *arg)
{
	return check_all(s, report, arg, true);
}

int sim_check_machine(struct sim *s, ksm_report_fn report, void *arg)
{
	return check_all(s, report, arg, false);
}

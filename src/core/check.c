/* SPDX-License-Identifier: MIT */
/*
 * check.c - the consistency checker: the seeds' ksm_check_stable_tree,
 * extended to the whole engine.  It reads everything and changes nothing
 * (it does not prune stale nodes: staleness is legal until a walk passes).
 *
 * Checked: red-black shape of every tree; the stable trees in strictly
 * increasing content order (over nodes whose page is still theirs); every
 * stable node in the tree of its nid, or a dup of a chain of that tree, or
 * on migrate_nodes; dups of one chain with equal content; back pointers both
 * ways (a node's page, when valid, points back to it; every rmap_item on a
 * node's list points to that node, and every stable rmap_item is on exactly
 * one node's list); unstable tree entries belong to this scan and their
 * tree; per-mm rmap lists sorted; every counter equal to a recount.
 *
 * The core may not use stdio, so findings are formatted by hand.
 */
#include <limits.h>
#include <string.h>

#define LONG_MIN_SENTINEL LONG_MIN

#include "internal.h"

struct msg {
	char buf[256];
	size_t len;
};

static void msg_str(struct msg *m, const char *s)
{
	while (*s && m->len + 1 < sizeof(m->buf))
		m->buf[m->len++] = *s++;
	m->buf[m->len] = '\0';
}

static void msg_num(struct msg *m, long v)
{
	char tmp[24];
	int i = 0;
	unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;

	if (v < 0)
		msg_str(m, "-");
	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (i--) {
		char c[2] = { tmp[i], 0 };

		msg_str(m, c);
	}
}

struct checker {
	struct ksm *ksm;
	ksm_report_fn report;
	void *arg;
	int findings;
	/* recounts */
	long shared, sharing, chains, dups, stable_items, nodes;
};

static void finding(struct checker *ck, const char *what, long a, long b)
{
	struct msg m = { .len = 0 };

	msg_str(&m, what);
	if (a != LONG_MIN_SENTINEL) {
		msg_str(&m, ": ");
		msg_num(&m, a);
		if (b != LONG_MIN_SENTINEL) {
			msg_str(&m, " vs ");
			msg_num(&m, b);
		}
	}
	ck->findings++;
	if (ck->report)
		ck->report(ck->arg, m.buf);
}

#define NOARG LONG_MIN_SENTINEL

/* Is @node's page still its own?  Fills *pg. */
static bool node_valid(struct checker *ck, const struct stable_node *node, struct sp_page *pg)
{
	struct ksm *ksm = ck->ksm;

	return ksm->be.ops->pfn_page(ksm->be.be, node->kpfn, pg) == 0 &&
	       pg->kind == SP_PAGE_KSM && pg->stable_node == node;
}

/* A node with pages (plain, dup or parked): its rmap list and counters. */
static void check_page_node(struct checker *ck, const struct stable_node *node)
{
	const struct hlist_node *pos;
	struct sp_page pg;
	long n = 0;

	ck->nodes++;
	if (node->is_chain)
		finding(ck, "chain found where a page node belongs", NOARG, NOARG);
	for (pos = node->hlist.first; pos; pos = pos->next) {
		const struct rmap_item *item = rb_entry(pos, struct rmap_item, hlist);

		if (!(item->flags & RMAP_STABLE) || item->head != node)
			finding(ck, "rmap_item on a stable node does not point back to it",
				(long)item->vpn, NOARG);
		if (item->slot >= ck->ksm->nr_slots || !ck->ksm->slots[item->slot])
			finding(ck, "rmap_item on a stable node belongs to no mm",
				(long)item->vpn, NOARG);
		n++;
	}
	if (n != node->rmap_hlist_len)
		finding(ck, "stable node rmap_hlist_len differs from its list", node->rmap_hlist_len, n);
	if (n > 0) {
		ck->shared++;
		ck->sharing += n - 1;
	}
	ck->stable_items += n;
	if (node_valid(ck, node, &pg) && node->key != ksm_page_key(pg.data))
		finding(ck, "stable node's cached key differs from its page", (long)node->kpfn, NOARG);
	if (node_valid(ck, node, &pg) && node->checksum != ksm_calc_checksum(ck->ksm, pg.data))
		finding(ck, "stable node's cached checksum differs from its page",
			(long)node->kpfn, NOARG);
}

static int cmp_pages(struct ksm *ksm, const struct sp_page *a, const struct sp_page *b)
{
	return ksm_memcmp_pages(ksm, a->data, b->data);
}

/* The stable tree's order: key (the first 8 bytes), checksum, content. */
static int cmp_stable(struct ksm *ksm, const struct sp_page *a, const struct sp_page *b)
{
	uint64_t ka = ksm_page_key(a->data), kb = ksm_page_key(b->data);
	uint32_t ca, cb;

	if (ka != kb)
		return ka < kb ? -1 : 1;
	ca = ksm_calc_checksum(ksm, a->data);
	cb = ksm_calc_checksum(ksm, b->data);
	if (ca != cb)
		return ca < cb ? -1 : 1;
	return cmp_pages(ksm, a, b);
}

static void check_stable_tree(struct checker *ck, int nid)
{
	struct ksm *ksm = ck->ksm;
	struct rb_root *root = &ksm->root_stable_tree[nid];
	struct rb_node *rb;
	struct sp_page prev, cur;
	bool have_prev = false;
	uint64_t prev_pfn = 0;	/* the previous valid page, re-read when comparing */

	if (rb_verify(root) < 0) {
		finding(ck, "stable tree is not a valid red-black tree, nid", nid, NOARG);
		return;
	}
	if (ksm->knobs.merge_across_nodes && nid != 0 && root->node)
		finding(ck, "merge_across_nodes=1 but the stable tree of a node >0 is used", nid, NOARG);

	for (rb = rb_first(root); rb; rb = rb_next(rb)) {
		struct stable_node *node = rb_entry(rb, struct stable_node, node);
		struct stable_node *repr = NULL;

		if (node->place != SN_TREE)
			finding(ck, "node in a stable tree is not marked as in the tree", nid, NOARG);
		if (node->nid != nid)
			finding(ck, "stable node's nid differs from its tree's", node->nid, nid);
		if (node->is_chain) {
			struct list_head *pos;
			bool have_first = false;

			ck->chains++;
			for (pos = node->dups.next; pos != &node->dups; pos = pos->next) {
				struct stable_node *dup = list_entry(pos, struct stable_node, list);
				struct sp_page pg;

				ck->dups++;
				if (dup->place != SN_DUP || dup->chain != node)
					finding(ck, "dup does not point to its chain", nid, NOARG);
				if (dup->nid != node->nid)
					finding(ck, "dup's nid differs from its chain's", dup->nid, node->nid);
				check_page_node(ck, dup);
				if (!node_valid(ck, dup, &pg))
					continue;
				if (!have_first) {
					repr = dup;
					have_first = true;
				} else {
					struct sp_page again;

					node_valid(ck, repr, &again);
					node_valid(ck, dup, &pg);
					if (cmp_pages(ksm, &again, &pg))
						finding(ck, "dups of one chain differ in content", nid, NOARG);
				}
			}
		} else {
			check_page_node(ck, node);
			if (node_valid(ck, node, &cur))
				repr = node;
		}
		if (!repr)
			continue;	/* stale: no content to order by */
		if (have_prev && ksm->be.ops->pfn_page(ksm->be.be, prev_pfn, &prev) == 0 &&
		    node_valid(ck, repr, &cur) && cmp_stable(ksm, &prev, &cur) >= 0)
			finding(ck, "stable tree out of order, nid", nid, NOARG);
		prev_pfn = repr->kpfn;
		have_prev = true;
	}
}

static void check_unstable_tree(struct checker *ck, int nid, long *linked)
{
	struct ksm *ksm = ck->ksm;
	struct rb_root *root = &ksm->root_unstable_tree[nid];
	struct rb_node *rb;
	long n = rb_verify(root);

	if (n < 0) {
		finding(ck, "unstable tree is not a valid red-black tree, nid", nid, NOARG);
		return;
	}
	*linked += n;
	const struct rmap_item *prev = NULL;

	for (rb = rb_first(root); rb; rb = rb_next(rb)) {
		const struct rmap_item *item = rb_entry(rb, struct rmap_item, node);
		unsigned int seq = (item->flags & RMAP_SEQNR) ? 1 : 0;

		/* ordered by the keys they were inserted with (unstable.c) */
		if (prev && (prev->key > item->key ||
			     (prev->key == item->key && prev->oldchecksum > item->oldchecksum)))
			finding(ck, "unstable tree out of key order at vpn", (long)item->vpn, NOARG);
		prev = item;

		if (!(item->flags & RMAP_UNSTABLE) || (item->flags & RMAP_STABLE))
			finding(ck, "item in the unstable tree is not flagged unstable",
				(long)item->vpn, NOARG);
		if (seq != (ksm->scan.seqnr & 1))
			finding(ck, "item of an earlier scan still linked in the unstable tree",
				(long)item->vpn, NOARG);
		if (item->nid != nid)
			finding(ck, "unstable item's nid differs from its tree's", item->nid, nid);
	}
}

int ksm_check(struct ksm *ksm, ksm_report_fn report, void *arg)
{
	struct checker ck = { .ksm = ksm, .report = report, .arg = arg };
	struct list_head *pos;
	long items = 0, unstable_flagged = 0, unstable_current = 0, linked = 0;
	long stable_flagged = 0, zero = 0;
	uint32_t i;
	int nid;

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++)
		check_stable_tree(&ck, nid);

	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = pos->next) {
		struct stable_node *node = list_entry(pos, struct stable_node, list);

		if (node->place != SN_MIGRATE)
			finding(&ck, "node on migrate_nodes is not marked as parked", NOARG, NOARG);
		check_page_node(&ck, node);
	}

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++)
		check_unstable_tree(&ck, nid, &linked);

	for (i = 0; i < ksm->nr_slots; i++) {
		struct ksm_mm_slot *slot = ksm->slots[i];
		const struct rmap_item *item;
		long n = 0, merging = 0;
		bool first = true;
		uint64_t last = 0;

		if (!slot)
			continue;
		if (slot->id != i || ksm_find_slot(ksm, slot->mm) != slot)
			finding(&ck, "mm slot not found under its id or mm", (long)i, NOARG);
		for (item = slot->rmap_list; item; item = item->rmap_list) {
			if (item->slot != i)
				finding(&ck, "rmap_item on the wrong mm's list", (long)item->vpn, NOARG);
			if (!first && item->vpn <= last)
				finding(&ck, "rmap list not in ascending address order",
					(long)item->vpn, (long)last);
			first = false;
			last = item->vpn;
			n++;
			if (item->flags & RMAP_STABLE) {
				stable_flagged++;
				merging++;
			}
			if (item->flags & RMAP_UNSTABLE) {
				unstable_flagged++;
				if (((item->flags & RMAP_SEQNR) ? 1u : 0u) == (ksm->scan.seqnr & 1))
					unstable_current++;
			}
			if ((item->flags & RMAP_STABLE) && (item->flags & RMAP_UNSTABLE))
				finding(&ck, "rmap_item both stable and unstable", (long)item->vpn, NOARG);
		}
		if (n != slot->rmap_items)
			finding(&ck, "per-mm ksm_rmap_items differs from a recount", slot->rmap_items, n);
		if (merging != slot->merging_pages)
			finding(&ck, "per-mm ksm_merging_pages differs from a recount",
				slot->merging_pages, merging);
		if (slot->zero_pages < 0)
			finding(&ck, "per-mm ksm_zero_pages negative", slot->zero_pages, NOARG);
		zero += slot->zero_pages;
		items += n;
	}

	if (stable_flagged != ck.stable_items)
		finding(&ck, "stable rmap_items differ from the items on stable nodes",
			stable_flagged, ck.stable_items);
	if (unstable_current != linked)
		finding(&ck, "unstable items of this scan differ from the unstable trees' size",
			unstable_current, linked);
	if (items != ksm->c.rmap_items)
		finding(&ck, "rmap_items counter differs from a recount", ksm->c.rmap_items, items);
	if (ck.shared != ksm->c.pages_shared)
		finding(&ck, "pages_shared differs from a recount", ksm->c.pages_shared, ck.shared);
	if (ck.sharing != ksm->c.pages_sharing)
		finding(&ck, "pages_sharing differs from a recount", ksm->c.pages_sharing, ck.sharing);
	if (unstable_flagged != ksm->c.pages_unshared)
		finding(&ck, "pages_unshared differs from a recount", ksm->c.pages_unshared,
			unstable_flagged);
	if (ck.chains != ksm->c.stable_node_chains)
		finding(&ck, "stable_node_chains differs from a recount",
			ksm->c.stable_node_chains, ck.chains);
	if (ck.dups != ksm->c.stable_node_dups)
		finding(&ck, "stable_node_dups differs from a recount",
			ksm->c.stable_node_dups, ck.dups);
	if (ck.nodes + ck.chains != ksm->c.stable_nodes)
		finding(&ck, "allocated stable nodes differ from the nodes reachable",
			ksm->c.stable_nodes, ck.nodes + ck.chains);
	if (zero != ksm->c.ksm_zero_pages)
		finding(&ck, "ksm_zero_pages differs from the per-mm sum", ksm->c.ksm_zero_pages, zero);
	return ck.findings;
}

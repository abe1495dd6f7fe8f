/* SPDX-License-Identifier: MIT */
/*
 * scan.c - the scan cursor over mm_slots and their mergeable ranges, the
 * rmap_item list of each mm, smart scan, and ksm_do_scan (one ksmd batch).
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/*
 * get_next_rmap_item - the rmap_item for @vpn, at *@link or created there.
 * Items passed over on the way (their page went away) are freed.
 */
static struct rmap_item *get_next_rmap_item(struct ksm *ksm, struct ksm_mm_slot *slot,
					    struct rmap_item **link, uint64_t vpn)
{
	struct rmap_item *item;

	while (*link) {
		item = *link;
		if (item->vpn == vpn)
			return item;
		if (item->vpn > vpn)
			break;
		*link = item->rmap_list;
		remove_rmap_item_from_tree(ksm, item);
		ksm_free_rmap_item(ksm, item);
	}
	item = ksm_alloc_rmap_item(ksm);
	if (!item)
		return NULL;
	item->vpn = vpn;
	item->slot = slot->id;
	item->rmap_list = *link;
	*link = item;
	slot->rmap_items++;
	ksm->c.rmap_items++;
	return item;
}

static unsigned int skip_age(unsigned int age)
{
	if (age <= 3)
		return 1;
	if (age <= 5)
		return 2;
	if (age <= 8)
		return 4;
	return 8;
}

/*
 * The pass, modulo SKIP_PERIOD, on which every page at the longest back-off
 * is looked at: 4 is where the kernel puts a page first visited on pass 0,
 * so that pages registered together are skipped exactly as the kernel skips
 * them.
 */
#define SKIP_PERIOD	9
#define SKIP_PHASE	4

/*
 * should_skip_rmap_item - smart scan: a page that has failed to merge on
 * many visits is looked at less often (every 2nd, 3rd, 5th, then 9th visit).
 * KSM pages are never skipped, so sharing stays accounted.
 *
 * Unlike the kernel, the 9th-visit back-off is aligned to the pass count
 * (ksm->scan.seqnr): the kernel counts each page's skips from its own
 * history, so two equal pages that started back-off on different passes
 * (one mapped later, or a pair unmerged by writes one pass apart, since a
 * KSM page does not age) are in the unstable tree on disjoint passes and
 * never merge.  The kernel's own KSM showed both on 6.18 (see
 * smart_scan_late_page_merges.sp).  Aligned, any two such pages are looked
 * at on the same pass once both reached the longest back-off.
 */
static bool should_skip_rmap_item(struct ksm *ksm, const struct sp_page *page,
				  struct rmap_item *item)
{
	unsigned int age;

	if (!ksm->knobs.smart_scan || page->kind == SP_PAGE_KSM)
		return false;
	age = item->age;
	if (age != RMAP_AGE_MAX)
		item->age++;
	if (age < 3)
		return false;
	if (!item->remaining_skips) {
		unsigned int skips = skip_age(age);

		if (skips == SKIP_PERIOD - 1)
			/* next looked at on a pass = SKIP_PHASE (mod SKIP_PERIOD) */
			skips = (unsigned int)((SKIP_PHASE + 2 * SKIP_PERIOD - 1 -
						ksm->scan.seqnr % SKIP_PERIOD) % SKIP_PERIOD);
		item->remaining_skips = skips & 0xf;
		return false;
	}
	ksm->c.pages_skipped++;
	item->remaining_skips--;
	remove_rmap_item_from_tree(ksm, item);
	return true;
}

/*
 * The unstable trees are dropped wholesale: the kernel resets the roots at
 * the start of each full scan and lets the items' seqnr tell that they are
 * no longer linked.  Resetting them also at the end of a scan (nothing
 * searches them in between) means no root ever points at an item that was
 * freed meanwhile.
 */
void ksm_reset_unstable_trees(struct ksm *ksm)
{
	int nid;

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++)
		ksm->root_unstable_tree[nid] = RB_ROOT_INIT;
}

/*
 * ksm_abort_scan_pass - the cursor goes back to the list head without
 * completing the pass (run=2 failed half way).  The pass's unstable items
 * are still flagged as linked in this pass's trees; take them out before the
 * roots are reset, or a later removal would unlink them from a tree they are
 * not in.  (Linux leaves them flagged: a latent corruption after a failed
 * unmerge.)
 */
void ksm_abort_scan_pass(struct ksm *ksm)
{
	uint32_t i;

	for (i = 0; i < ksm->nr_slots; i++) {
		struct rmap_item *item;

		if (!ksm->slots[i])
			continue;
		for (item = ksm->slots[i]->rmap_list; item; item = item->rmap_list)
			if (item->flags & RMAP_UNSTABLE)
				remove_rmap_item_from_tree(ksm, item);
	}
	ksm_reset_unstable_trees(ksm);
	ksm->scan.mm_slot = NULL;
}

static void start_full_scan(struct ksm *ksm)
{
	if (!ksm->knobs.merge_across_nodes)
		ksm_prune_migrate_nodes(ksm);
	ksm_reset_unstable_trees(ksm);
}

static void scan_enter_slot(struct ksm *ksm, struct ksm_mm_slot *slot)
{
	ksm->scan.mm_slot = slot;
	ksm->scan.vpn = 0;
	ksm->scan.rmap_list = &slot->rmap_list;
	ksm->scan.mm_has_range = false;
}

/*
 * scan_get_next_rmap_item - advance the cursor to the next page to scan and
 * return its rmap_item, with the page in *@page.  NULL at the end of a full
 * scan (seqnr is then incremented) or when nothing is registered.
 */
static struct rmap_item *scan_get_next_rmap_item(struct ksm *ksm, struct sp_page *page)
{
	const struct sp_backend_ops *ops = ksm->be.ops;
	struct ksm_mm_slot *slot;

	if (list_empty(&ksm->mm_head))
		return NULL;
	slot = ksm->scan.mm_slot;
	if (!slot) {
		start_full_scan(ksm);
		slot = list_entry(ksm->mm_head.next, struct ksm_mm_slot, mm_list);
		scan_enter_slot(ksm, slot);
	}

	for (;;) {
		uint64_t start, end;
		struct list_head *next;

		while (!slot->exiting &&
		       ops->find_range(ksm->be.be, slot->mm, ksm->scan.vpn, &start, &end) == 0) {
			ksm->scan.mm_has_range = true;
			if (ksm->scan.vpn < start)
				ksm->scan.vpn = start;
			for (; ksm->scan.vpn < end; ksm->scan.vpn++) {
				struct rmap_item *item;
				uint64_t vpn = ksm->scan.vpn;

				if (ops->follow_page(ksm->be.be, slot->mm, vpn, page))
					continue;
				if (page->kind != SP_PAGE_ANON && page->kind != SP_PAGE_KSM)
					continue;
				if (vpn >> RMAP_VPN_BITS)
					continue;	/* beyond what an rmap_item can hold */
				item = get_next_rmap_item(ksm, slot, ksm->scan.rmap_list, vpn);
				if (!item)
					continue;	/* out of memory: try again next pass */
				ksm->scan.rmap_list = &item->rmap_list;
				if (should_skip_rmap_item(ksm, page, item))
					continue;	/* (never read) */
				if (!page->data && ops->read_page &&
				    ops->read_page(ksm->be.be, slot->mm, vpn, page))
					page->data = NULL;
				if (!page->data) {
					/*
					 * Gone meanwhile.  The cursor is past the
					 * item already: take it out of its tree
					 * now, as its visit would have, or it would
					 * still look linked in a later scan's tree.
					 */
					remove_rmap_item_from_tree(ksm, item);
					continue;
				}
				ksm->scan.vpn = vpn + 1;
				return item;
			}
		}

		if (slot->exiting) {
			ksm->scan.vpn = 0;
			ksm->scan.rmap_list = &slot->rmap_list;
		}
		/* Items above the last page seen: their memory is gone. */
		ksm_remove_trailing_rmap_items(ksm, ksm->scan.rmap_list);

		next = slot->mm_list.next;
		if (slot->exiting || !ksm->scan.mm_has_range) {
			/* Nothing mergeable left in this mm: forget it. */
			ksm_free_slot(ksm, slot);
		}
		if (next == &ksm->mm_head)
			break;
		slot = list_entry(next, struct ksm_mm_slot, mm_list);
		scan_enter_slot(ksm, slot);
	}

	ksm->scan.mm_slot = NULL;
	ksm->scan.seqnr++;
	ksm_reset_unstable_trees(ksm);
	return NULL;
}

int ksm_do_scan(struct ksm *ksm, unsigned long npages, unsigned long *done)
{
	unsigned long n = 0;

	while (npages--) {
		struct sp_page page;
		struct rmap_item *item = scan_get_next_rmap_item(ksm, &page);

		if (!item)
			break;
		cmp_and_merge_page(ksm, item, &page);
		ksm->c.pages_scanned++;
		n++;
	}
	/* merges may be deferred by the backend: complete them now */
	if (ksm->be.ops->flush)
		ksm->be.ops->flush(ksm->be.be);
	if (done)
		*done = n;
	return 0;
}

int ksm_scan_full(struct ksm *ksm, unsigned int nscans)
{
	unsigned long target = ksm->scan.seqnr + nscans;
	unsigned long batch = ksm->knobs.pages_to_scan ? ksm->knobs.pages_to_scan : 1;

	while (ksm->scan.seqnr < target && !list_empty(&ksm->mm_head)) {
		int err = ksm_do_scan(ksm, batch, NULL);

		if (err)
			return err;
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * merge.c - cmp_and_merge_page: what the scanner does with one page.
 */
#include <errno.h>

#include "internal.h"

static inline const struct sp_backend_ops *ops(const struct ksm *ksm)
{
	return ksm->be.ops;
}

static inline void *item_mm(const struct ksm *ksm, const struct rmap_item *item)
{
	return rmap_slot(ksm, item)->mm;
}

/*
 * try_to_merge_with_ksm_page - map @kpage at @item's address instead of
 * @page.  Mapping a KSM page onto itself (a forked KSM page) is a no-op.
 *
 * A page that is itself a KSM page (it has a stable node) never merges into
 * a different KSM page: -EFAULT, nothing done.  That is what Linux does, in
 * the seeds' 3.9 as in 6.1 and today: to write-protect and then replace the
 * page's mapping, the kernel first computes the page's address in the VMA
 * from the page's anon_vma (page_address_in_vma(), called by
 * write_protect_page() and replace_page()), and a KSM page has none: its
 * mapping field holds its stable node instead.  So when a migrated KSM page
 * mapped once finds an equal KSM page on its new node (seed 001 meant its
 * mapping to move there), the caller has already taken @item off the
 * migrated page's node (pages_shared or pages_sharing one less), the merge
 * fails, and @item is left in no tree, its page still a KSM page whose node
 * stays parked on migrate_nodes (not stale: the page still points back to
 * it).  Every later visit finds the same and fails the same way.  A KSM page
 * without a back pointer (an undo that failed left it; the kernel has no
 * such lasting state) is still merged like an ordinary page.
 */
static int try_to_merge_with_ksm_page(struct ksm *ksm, struct rmap_item *item,
				      const struct sp_page *page,
				      const struct sp_page *kpage)
{
	int err;

	if (page->kind == SP_PAGE_KSM && page->pfn == kpage->pfn)
		return 0;
	if (page->kind == SP_PAGE_KSM && page->stable_node)
		return -EFAULT;
	err = ops(ksm)->merge(ksm->be.be, item_mm(ksm, item), item->vpn, page, kpage->pfn);
	if (err)
		return err;
	/* The unstable tree link shares memory with the stable one. */
	remove_rmap_item_from_tree(ksm, item);
	return 0;
}

/*
 * try_to_merge_with_zero_page - use_zero_pages: a page whose checksum is the
 * zero page's is mapped to the zero page, if it really is all zeroes.
 * Returns 0 when done with the page, nonzero to go on with the trees.
 */
static int try_to_merge_with_zero_page(struct ksm *ksm, struct rmap_item *item,
				       const struct sp_page *page)
{
	struct ksm_mm_slot *slot;
	int err;

	if (!ksm->knobs.use_zero_pages || item->oldchecksum != ksm->zero_checksum)
		return -EFAULT;
	slot = rmap_slot(ksm, item);
	err = ops(ksm)->merge_zero(ksm->be.be, slot->mm, item->vpn, page);
	if (err)
		return err;
	ksm->c.ksm_zero_pages++;
	slot->zero_pages++;
	return 0;
}

/* break_cow - undo a half-done merge: (mm, vpn) gets a private copy again. */
static void break_cow(struct ksm *ksm, struct rmap_item *item)
{
	/* Failure leaves a KSM page mapped outside the tree: the next visit
	 * finds it by its (absent) back pointer and tries again. */
	ops(ksm)->unmerge(ksm->be.be, item_mm(ksm, item), item->vpn, item->vpn + 1, 0);
}

/*
 * try_to_merge_two_pages - @item's page and @tree_item's (equal) page
 * become one new KSM page.  Returns 0 with *@kpage describing it.
 */
static int try_to_merge_two_pages(struct ksm *ksm, struct rmap_item *item,
				  const struct sp_page *page,
				  struct rmap_item *tree_item,
				  const struct sp_page *tree_page,
				  struct sp_page *kpage)
{
	uint64_t kpfn;
	int err;

	err = ops(ksm)->make_ksm(ksm->be.be, item_mm(ksm, item), item->vpn, page, &kpfn);
	if (err)
		return err;
	err = ops(ksm)->pfn_page(ksm->be.be, kpfn, kpage);
	if (!err)
		err = ops(ksm)->merge(ksm->be.be, item_mm(ksm, tree_item), tree_item->vpn,
				      tree_page, kpfn);
	if (err) {
		break_cow(ksm, item);
		return err;
	}
	remove_rmap_item_from_tree(ksm, tree_item);
	/*
	 * Describe the KSM page afresh.  It must still be there: a backend
	 * that lost it meanwhile (its mappings undone) gets both pages
	 * unmerged rather than a stable node for a page that is gone.
	 */
	err = ops(ksm)->pfn_page(ksm->be.be, kpfn, kpage);
	if (!err && (kpage->kind != SP_PAGE_KSM || !kpage->data))
		err = -EAGAIN;
	if (err) {
		break_cow(ksm, tree_item);
		break_cow(ksm, item);
	}
	return err;
}

/*
 * cmp_and_merge_page - the scanner visits @item, whose page is @page.
 *
 * A KSM page with a back pointer is checked for misplacement (its node's
 * tree nid no longer its page's node: park it on migrate_nodes) and is
 * otherwise left alone if @item is already on its node.  Any other page
 * must first show the same checksum as at the previous visit.  Then: zero
 * page (use_zero_pages), stable tree, unstable tree.
 */
void cmp_and_merge_page(struct ksm *ksm, struct rmap_item *item, struct sp_page *page)
{
	struct stable_node *node = NULL, *found;
	struct rmap_item *tree_item;
	struct sp_page kpage, tree_page;
	bool bypass = false;
	uint32_t checksum = 0;
	int err;

	if (page->kind == SP_PAGE_KSM)
		node = page->stable_node;
	if (node) {
		if (node->place != SN_MIGRATE &&
		    ksm_numa(ksm, page->nid) != node->nid) {
			stable_node_dup_del(ksm, node);
			stable_node_park(ksm, node);
		}
		if (node->place != SN_MIGRATE && (item->flags & RMAP_STABLE) &&
		    item->head == node)
			return;
		/* A forked KSM page may go over max_page_sharing. */
		if (!is_page_sharing_candidate(ksm, node))
			bypass = true;
	} else {
		remove_rmap_item_from_tree(ksm, item);
		checksum = ksm_calc_checksum(ksm, page->data);
		if (item->oldchecksum != checksum) {
			item->oldchecksum = checksum;
			return;
		}
		if (!try_to_merge_with_zero_page(ksm, item, page))
			return;
	}

	if (node)	/* a KSM page: its content's checksum is its node's */
		checksum = node->checksum;
	stable_tree_search(ksm, page, checksum, &found, &kpage);
	if (found && kpage.pfn == page->pfn && page->kind == SP_PAGE_KSM &&
	    (item->flags & RMAP_STABLE) && item->head == found)
		return;

	remove_rmap_item_from_tree(ksm, item);

	if (found) {
		if (!try_to_merge_with_ksm_page(ksm, item, page, &kpage))
			stable_tree_append(ksm, item, found, bypass);
		return;
	}

	tree_item = unstable_tree_search_insert(ksm, item, page, checksum, &tree_page);
	if (!tree_item)
		return;
	err = try_to_merge_two_pages(ksm, item, page, tree_item, &tree_page, &kpage);
	if (err)
		return;
	node = stable_tree_insert(ksm, &kpage);
	if (node) {
		stable_tree_append(ksm, tree_item, node, false);
		stable_tree_append(ksm, item, node, false);
	} else {
		break_cow(ksm, tree_item);
		break_cow(ksm, item);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * unstable.c - the unstable tree(s): rmap_items of pages whose content was
 * unchanged since the previous visit, ordered by content.  Their pages are
 * not write-protected, so the order can decay; the trees are reset at the
 * start of every full scan (scan.c) instead of being kept valid.
 */
#include "internal.h"

/*
 * remove_rmap_item_from_tree - take @item out of the stable node or the
 * unstable tree it is in, with the counters.
 */
void remove_rmap_item_from_tree(struct ksm *ksm, struct rmap_item *item)
{
	if (item->flags & RMAP_STABLE) {
		struct stable_node *node = item->head;
		struct sp_page pg;

		/* A stale node is removed whole, this item with it. */
		if (!get_ksm_page(ksm, node, &pg))
			return;
		hlist_del(&item->hlist);
		if (node->hlist.first)
			ksm->c.pages_sharing--;
		else
			ksm->c.pages_shared--;
		rmap_slot(ksm, item)->merging_pages--;
		node->rmap_hlist_len--;
		item->head = NULL;
		item->flags &= ~RMAP_STABLE;
	} else if (item->flags & RMAP_UNSTABLE) {
		unsigned int inserted = (item->flags & RMAP_SEQNR) ? 1 : 0;

		/*
		 * Items inserted by an earlier full scan are no longer in any
		 * tree (the roots were reset); only this scan's are linked.
		 */
		if (inserted == (ksm->scan.seqnr & 1))
			rb_erase(&item->node, &ksm->root_unstable_tree[item->nid]);
		ksm->c.pages_unshared--;
		item->flags &= ~(RMAP_UNSTABLE | RMAP_SEQNR);
	}
}

/*
 * unstable_tree_search_insert - look for a page equal to @page in the
 * unstable tree of its node (@checksum: @page's).  Returns the tree item found (its page in
 * *@tree_page), or NULL after inserting @item (or after giving up: a tree
 * page that went away, or an equal page on another node, ends the search
 * without inserting, as in the kernel).
 *
 * Where samepage differs from the kernel, on purpose: the tree is ordered
 * by a key taken from each page when it was inserted - its first two bytes,
 * then its checksum (a page is inserted only when its checksum is the one
 * of its previous visit) - and by content only among equal keys.  Equal
 * pages have equal keys, so the same pages are found as in the kernel's
 * content order; but a level whose key differs from @page's is decided
 * without looking the tree page up at all, which spares the lookup and a
 * cache miss at almost every level, and (on real memory) a read of another
 * page.  (A tree page that went away is then noticed only where the walk
 * needs it, not on the way there.)  The keys also keep the tree a valid
 * search tree when its pages change meanwhile (the kernel's tree then goes
 * out of order and misses merges).  Equal keys compare the current pages in
 * full where the backend hands out their content, else the match is left
 * to the merge's own check of the content (backend.h).
 */
struct rmap_item *unstable_tree_search_insert(struct ksm *ksm, struct rmap_item *item,
					      const struct sp_page *page, uint32_t checksum,
					      struct sp_page *tree_page)
{
	const struct sp_backend_ops *ops = ksm->be.ops;
	int nid = ksm_numa(ksm, page->nid);
	struct rb_root *root = &ksm->root_unstable_tree[nid];
	struct rb_node **link = &root->node, *parent = NULL;
	uint16_t key = ksm_page_key16(page->data);

	while (*link) {
		struct rmap_item *tree_item = rb_entry(*link, struct rmap_item, node);
		struct ksm_mm_slot *slot = rmap_slot(ksm, tree_item);
		int ret;

		/* the next level's item is a cache miss: start it now (a
		 * prefetch of NULL is harmless) */
		__builtin_prefetch((*link)->left);
		__builtin_prefetch((*link)->right);

		if (slot->exiting)
			return NULL;
		if (key != tree_item->key) {
			/* decided without the tree page (see above) */
			ret = key < tree_item->key ? -1 : 1;
		} else if (checksum != tree_item->oldchecksum) {
			ret = checksum < tree_item->oldchecksum ? -1 : 1;
		} else if (ops->follow_page(ksm->be.be, slot->mm, tree_item->vpn, tree_page) ||
			   tree_page->kind != SP_PAGE_ANON ||
			   /* never merge a page with itself (shared by fork) */
			   tree_page->pfn == page->pfn) {
			return NULL;
		} else if (!tree_page->data) {
			/*
			 * Equal prefixes and checksums: taken as equal without
			 * reading the page.  The backend checks every page
			 * against the KSM page under write protection before
			 * it maps it, so a page that differs after all (a
			 * checksum collision, or written since it was
			 * inserted) is simply not merged, as if written right
			 * after the merge.
			 */
			ret = 0;
		} else {
			ret = ksm_memcmp_pages(ksm, page->data, tree_page->data);
		}
		parent = *link;
		if (ret < 0) {
			link = &parent->left;
		} else if (ret > 0) {
			link = &parent->right;
		} else if (!ksm->knobs.merge_across_nodes && tree_page->nid != nid) {
			/* Migrated meanwhile: it goes to its node's tree next scan. */
			return NULL;
		} else {
			return tree_item;
		}
	}

	item->flags |= RMAP_UNSTABLE;
	if (ksm->scan.seqnr & 1)
		item->flags |= RMAP_SEQNR;
	else
		item->flags &= ~RMAP_SEQNR;
	item->nid = (unsigned int)nid;
	item->key = key;
	item->oldchecksum = checksum;	/* (a KSM page's: its content's) */
	rb_link_node(&item->node, parent, link);
	rb_insert_color(&item->node, root);
	ksm->c.pages_unshared++;
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * stable.c - the stable tree(s): stable nodes, chains and dups
 * (max_page_sharing), migrate_nodes (merge_across_nodes=0), stale pruning.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static inline const struct sp_backend_ops *ops(const struct ksm *ksm)
{
	return ksm->be.ops;
}

static struct stable_node *alloc_stable_node(struct ksm *ksm)
{
	struct stable_node *node = ksm_zalloc(&ksm->be, sizeof(*node));

	if (!node)
		return NULL;
	list_init(&node->list);
	list_init(&node->dups);
	ksm->c.stable_nodes++;
	return node;
}

void free_stable_node(struct ksm *ksm, struct stable_node *node)
{
	ksm->c.stable_nodes--;
	ksm_free(&ksm->be, node, sizeof(*node));
}

/*
 * is_page_sharing_candidate - may one more mapping go onto @node's page?
 * A node with no mapping left is not one (its page is on its way out).
 */
bool is_page_sharing_candidate(const struct ksm *ksm, const struct stable_node *node)
{
	return node->rmap_hlist_len > 0 &&
	       (unsigned long)node->rmap_hlist_len < ksm->knobs.max_page_sharing;
}

/*
 * Clearing a back pointer leaves its node stale.  Setting one on a new KSM
 * page (which had none) leaves none stale: a node that pointed to that page
 * before was made stale when the page was freed (ksm_page_gone), and could
 * not be found valid since.
 */
static void set_back_pointer(struct ksm *ksm, uint64_t kpfn, struct stable_node *node)
{
	ops(ksm)->set_stable_node(ksm->be.be, kpfn, node);
	if (!node)
		ksm_page_gone(ksm);
}

static bool __is_page_sharing_candidate(const struct ksm *ksm,
					const struct stable_node *node, int offset)
{
	return node->rmap_hlist_len > 0 &&
	       (unsigned long)(node->rmap_hlist_len + offset) < ksm->knobs.max_page_sharing;
}

static void free_stable_node_chain(struct ksm *ksm, struct stable_node *chain,
				   struct rb_root *root)
{
	rb_erase(&chain->node, root);
	free_stable_node(ksm, chain);
	ksm->c.stable_node_chains--;
}

static void stable_node_chain_add_dup(struct ksm *ksm, struct stable_node *dup,
				      struct stable_node *chain)
{
	dup->place = SN_DUP;
	dup->chain = chain;
	dup->nid = chain->nid;
	list_add(&dup->list, &chain->dups);
	ksm->c.stable_node_dups++;
}

/*
 * stable_node_dup_del - take a regular node out of its tree, or a dup out of
 * its chain (the chain itself stays, even if now empty: the next walk that
 * meets it frees it).  The caller decides where the node goes next.
 */
void stable_node_dup_del(struct ksm *ksm, struct stable_node *node)
{
	if (node->place == SN_DUP) {
		list_del(&node->list);
		node->chain = NULL;
		ksm->c.stable_node_dups--;
	} else if (node->place == SN_TREE) {
		rb_erase(&node->node, &ksm->root_stable_tree[node->nid]);
	} else {
		list_del(&node->list);
	}
}

/* stable_node_park - put a misplaced node on migrate_nodes. */
void stable_node_park(struct ksm *ksm, struct stable_node *node)
{
	node->place = SN_MIGRATE;
	node->chain = NULL;
	list_add(&node->list, &ksm->migrate_nodes);
}

/*
 * remove_node_from_stable_tree - forget @node and every mapping listed on
 * it.  The rmap_items stay with their mm and are looked at again by the
 * scanner; their page may have gone or may still be a KSM page, which the
 * next visit sorts out.
 */
void remove_node_from_stable_tree(struct ksm *ksm, struct stable_node *node)
{
	struct hlist_node *pos;
	struct sp_page pg;

	for (pos = node->hlist.first; pos; pos = pos->next) {
		struct rmap_item *item = rb_entry(pos, struct rmap_item, hlist);

		if (pos->next)
			ksm->c.pages_sharing--;
		else
			ksm->c.pages_shared--;
		rmap_slot(ksm, item)->merging_pages--;
		node->rmap_hlist_len--;
		item->flags &= ~RMAP_STABLE;
	}
	node->hlist.first = NULL;

	/* Never leave a page pointing at freed memory. */
	if (ops(ksm)->pfn_page(ksm->be.be, node->kpfn, &pg) == 0 &&
	    pg.kind == SP_PAGE_KSM && pg.stable_node == node)
		set_back_pointer(ksm, node->kpfn, NULL);

	stable_node_dup_del(ksm, node);
	free_stable_node(ksm, node);
}

/*
 * get_ksm_page - is @node's page still its KSM page?  The page must point
 * back to the node (seed 004).  If not, the node is stale: it is removed
 * here and false returned.  On success *pg describes the page.
 */
bool get_ksm_page(struct ksm *ksm, struct stable_node *node, struct sp_page *pg)
{
	int err = ops(ksm)->pfn_page(ksm->be.be, node->kpfn, pg);

	if (!err && pg->kind == SP_PAGE_KSM && pg->stable_node == node) {
		node->valid_epoch = ksm->gone_epoch;
		return true;
	}
	remove_node_from_stable_tree(ksm, node);
	return false;
}

/*
 * stable_node_dup - choose the dup of the chain *@chainp to compare with and
 * merge into: the one with the most mappings among those with room
 * ("densest first", so that emptier dups drain and go away), else any valid
 * one.  When @prune and the prune interval has passed, every dup is
 * validated (stale ones removed); otherwise the walk stops at the first dup
 * with room.  A chain left with a single dup collapses back into a plain
 * node, which replaces the chain in the tree and in *@chainp (as Linux 6.11
 * and later do, whether or not that dup has room); a chain whose dups all
 * turned out stale is freed.  Returns true with *@dupp and *@pg set, or
 * false (restart the walk).
 */
static bool stable_node_dup(struct ksm *ksm, struct stable_node **chainp,
			    struct rb_root *root, bool prune,
			    struct stable_node **dupp, struct sp_page *pg)
{
	struct stable_node *chain = *chainp, *found = NULL;
	struct list_head *pos, *next;

	if (prune) {
		uint64_t now = ops(ksm)->now_ms(ksm->be.be);

		if (now < chain->chain_prune_time +
			  ksm->knobs.stable_node_chains_prune_millisecs)
			prune = false;
		else
			chain->chain_prune_time = now;
	}

	for (pos = chain->dups.next; pos != &chain->dups; pos = next) {
		struct stable_node *dup = list_entry(pos, struct stable_node, list);
		struct sp_page tmp;

		next = pos->next;
		if (!get_ksm_page(ksm, dup, &tmp))
			continue;	/* stale: removed from the chain */
		if (!found || (is_page_sharing_candidate(ksm, dup) &&
			       (!is_page_sharing_candidate(ksm, found) ||
				dup->rmap_hlist_len > found->rmap_hlist_len))) {
			found = dup;
			*pg = tmp;
			if (!prune && is_page_sharing_candidate(ksm, found))
				break;
		}
	}

	*dupp = found;
	if (!found) {
		free_stable_node_chain(ksm, chain, root);
		return false;
	}
	if (chain->dups.next == &found->list && found->list.next == &chain->dups) {
		/* The only dup left: the chain is not needed any more. */
		list_del(&found->list);
		ksm->c.stable_node_dups--;
		rb_replace_node(&chain->node, &found->node, root);
		found->place = SN_TREE;
		found->chain = NULL;
		free_stable_node(ksm, chain);
		ksm->c.stable_node_chains--;
		*chainp = found;
	} else if (chain->dups.next != &found->list &&
		   __is_page_sharing_candidate(ksm, found, 1)) {
		/* Keep the best candidate first for the next quick search. */
		list_del(&found->list);
		list_add(&found->list, &chain->dups);
	}
	return true;
}

/*
 * stable_node_chain - the page node of tree node *@nodep to compare with:
 * the node itself, or for a chain the dup chosen by stable_node_dup().
 * Returns false when the walk must restart (a stale node was removed).
 */
static bool stable_node_chain(struct ksm *ksm, struct stable_node **nodep,
			      struct rb_root *root, bool prune,
			      struct stable_node **dupp, struct sp_page *pg)
{
	struct stable_node *node = *nodep;

	if (!node->is_chain) {
		*dupp = node;
		return get_ksm_page(ksm, node, pg);
	}
	return stable_node_dup(ksm, nodep, root, prune, dupp, pg);
}

static struct stable_node *alloc_stable_node_chain(struct ksm *ksm,
						   struct stable_node *dup,
						   struct rb_root *root)
{
	struct stable_node *chain = alloc_stable_node(ksm);

	if (!chain)
		return NULL;
	chain->is_chain = true;
	chain->place = SN_TREE;
	chain->nid = dup->nid;
	chain->key = dup->key;
	chain->checksum = dup->checksum;
	chain->chain_prune_time = ops(ksm)->now_ms(ksm->be.be);
	ksm->c.stable_node_chains++;
	/* The chain takes the node's place in the tree; the node becomes its first dup. */
	rb_replace_node(&dup->node, &chain->node, root);
	stable_node_chain_add_dup(ksm, dup, chain);
	return chain;
}

/*
 * Order @page (whose key is @key, its checksum @checksum) against tree node
 * @dup's page: by the cached keys, then checksums, when they differ, which
 * spares a cache miss on the tree page at almost every level of the walk.
 * Equal keys and checksums compare the pages in full if @exact; otherwise
 * they are taken as equal (a search: the merge checks the content in full,
 * write-protected, before it maps anything, so a page that differs after
 * all is only not merged).
 */
static int cmp_with_node(const struct ksm *ksm, uint64_t key, uint32_t checksum,
			 const void *data, const struct stable_node *dup,
			 const struct sp_page *tree_pg, bool exact)
{
	if (key != dup->key)
		return key < dup->key ? -1 : 1;
	if (checksum != dup->checksum)
		return checksum < dup->checksum ? -1 : 1;
	return exact ? ksm_memcmp_pages(ksm, data, tree_pg->data) : 0;
}

/*
 * stable_tree_search - find the KSM page that @page should be merged into.
 *
 * Sets *@found to the stable node (a plain node or a dup) and *@kpage to its
 * page, or *@found to NULL when there is none with room.  Special cases:
 * - @page is itself a KSM page whose node is in place (a forked KSM page,
 *   seed 004): found is that node, no tree walk.
 * - @page is a KSM page whose node is parked on migrate_nodes (seed 001):
 *   if no equal page lives in this node's tree, the parked node is slotted
 *   right into it with all its mappings (found = the parked node); if one
 *   does and @page is mapped once, found is that page (seed 001 moved the
 *   mappings onto it one by one; the kernel's merge of a KSM page into
 *   another fails, see try_to_merge_with_ksm_page()).
 * - an equal node found misplaced (its page migrated) is parked, replaced by
 *   the parked node of @page if there is one.
 * - a parked node whose equal page is full joins that content's chain as a
 *   dup (what Linux does since chains exist).
 */
int stable_tree_search(struct ksm *ksm, const struct sp_page *page, uint32_t checksum,
		       struct stable_node **found, struct sp_page *kpage)
{
	struct stable_node *page_node = page->kind == SP_PAGE_KSM ? page->stable_node : NULL;
	struct stable_node *node, *dup;
	struct rb_node **link, *parent;
	struct rb_root *root;
	struct sp_page tree_pg;
	uint64_t key;
	int nid, ret;

	*found = NULL;
	if (page_node && page_node->place != SN_MIGRATE) {
		*found = page_node;	/* KSM page forked */
		*kpage = *page;
		return 0;
	}

	nid = ksm_numa(ksm, page->nid);
	root = &ksm->root_stable_tree[nid];
	key = ksm_page_key(page->data);
again:
	link = &root->node;
	parent = NULL;
	while (*link) {
		node = rb_entry(*link, struct stable_node, node);
		__builtin_prefetch((*link)->left);	/* (see unstable.c) */
		__builtin_prefetch((*link)->right);
		/*
		 * A plain node of another key, found valid since the last page
		 * went away (ksm_page_gone), is passed without asking the
		 * backend about its page again: it is not stale, and KSM pages
		 * never change, so its key orders it.  Any other node is
		 * looked at as the kernel does at every level, which prunes it
		 * if stale (and a chain's stale dups).
		 */
		if (!node->is_chain && node->valid_epoch == ksm->gone_epoch &&
		    (key != node->key || checksum != node->checksum)) {
			parent = &node->node;
			link = cmp_with_node(ksm, key, checksum, NULL, node, NULL, false) < 0 ?
				       &parent->left : &parent->right;
			continue;
		}
		if (!stable_node_chain(ksm, &node, root, true, &dup, &tree_pg))
			goto again;
		ret = cmp_with_node(ksm, key, checksum, page->data, dup, &tree_pg, false);
		parent = &node->node;
		if (ret < 0) {
			link = &parent->left;
		} else if (ret > 0) {
			link = &parent->right;
		} else {
			/*
			 * A parked KSM page mapped more than once cannot give
			 * its mappings up in one go: it joins the content's
			 * chain as a dup, keeping them (Linux since 4.13,
			 * stable_node chains; seed 001 predates them and moved
			 * the mappings one by one).  With one mapping the equal
			 * page is returned, and the merge into it fails as the
			 * kernel's does (try_to_merge_with_ksm_page()).
			 */
			if (page_node && page->mapcount > 1)
				goto chain_append;
			/*
			 * Equal content but no room on any of its pages: the
			 * page waits in the unstable tree for a twin, to make
			 * a new dup with it.
			 */
			if (!is_page_sharing_candidate(ksm, dup)) {
				if (page_node)
					goto chain_append;
				return 0;
			}
			if (ksm_numa(ksm, tree_pg.nid) != dup->nid)
				goto replace;	/* the equal page was migrated away */
			*found = dup;
			*kpage = tree_pg;
			return 0;
		}
	}

	if (!page_node)
		return 0;

	/* No equal page on this node: re-slot the parked node here. */
	list_del(&page_node->list);
	page_node->nid = nid;
	page_node->place = SN_TREE;
	rb_link_node(&page_node->node, parent, link);
	rb_insert_color(&page_node->node, root);
	goto out;

replace:
	if (dup == node) {
		/* A plain node (or a chain that just collapsed into it). */
		if (page_node) {
			list_del(&page_node->list);
			page_node->nid = nid;
			page_node->place = SN_TREE;
			rb_replace_node(&dup->node, &page_node->node, root);
		} else {
			rb_erase(&dup->node, root);
		}
	} else {
		stable_node_dup_del(ksm, dup);
		if (page_node) {
			list_del(&page_node->list);
			stable_node_chain_add_dup(ksm, page_node, node);
		}
	}
	stable_node_park(ksm, dup);
	if (!page_node)
		return 0;
	goto out;

chain_append:
	/*
	 * The parked node collides with a full page: it cannot move its
	 * mappings there, so it joins that content's chain as one more dup
	 * (making the chain if the equal node was a plain one).
	 */
	if (dup == node) {
		node = alloc_stable_node_chain(ksm, dup, root);
		if (!node)
			return 0;
	}
	list_del(&page_node->list);
	stable_node_chain_add_dup(ksm, page_node, node);
out:
	if (is_page_sharing_candidate(ksm, page_node)) {
		*found = page_node;
		*kpage = *page;
	}
	return 0;
}

/*
 * stable_tree_insert - give the new KSM page @kpage a stable node, in the
 * tree of its node.  An equal page already there (one that reached
 * max_page_sharing) makes the two of them dups of a chain.  Returns the new
 * node, or NULL when out of memory.
 */
struct stable_node *stable_tree_insert(struct ksm *ksm, const struct sp_page *kpage)
{
	int nid = ksm_numa(ksm, kpage->nid);
	struct rb_root *root = &ksm->root_stable_tree[nid];
	uint64_t key = ksm_page_key(kpage->data);
	uint32_t checksum = ksm_calc_checksum(ksm, kpage->data);
	struct stable_node *node = NULL, *dup, *newn;
	struct rb_node **link, *parent;
	struct sp_page tree_pg;
	bool need_chain;
	int ret;

again:
	link = &root->node;
	parent = NULL;
	need_chain = false;
	while (*link) {
		node = rb_entry(*link, struct stable_node, node);
		if (!stable_node_chain(ksm, &node, root, false, &dup, &tree_pg))
			goto again;
		ret = cmp_with_node(ksm, key, checksum, kpage->data, dup, &tree_pg, true);
		parent = &node->node;
		if (ret < 0) {
			link = &parent->left;
		} else if (ret > 0) {
			link = &parent->right;
		} else {
			need_chain = true;
			break;
		}
	}

	newn = alloc_stable_node(ksm);
	if (!newn)
		return NULL;
	newn->kpfn = kpage->pfn;
	newn->key = key;
	newn->checksum = checksum;
	newn->nid = nid;
	newn->place = SN_TREE;

	if (!need_chain) {
		rb_link_node(&newn->node, parent, link);
		rb_insert_color(&newn->node, root);
	} else {
		struct stable_node *chain = node;

		if (!node->is_chain) {
			chain = alloc_stable_node_chain(ksm, node, root);
			if (!chain) {
				free_stable_node(ksm, newn);
				return NULL;
			}
		}
		stable_node_chain_add_dup(ksm, newn, chain);
	}
	set_back_pointer(ksm, kpage->pfn, newn);
	return newn;
}

/* stable_tree_append - @item now maps @node's page. */
void stable_tree_append(struct ksm *ksm, struct rmap_item *item,
			struct stable_node *node, bool max_page_sharing_bypass)
{
	(void)max_page_sharing_bypass;	/* the kernel only warns without it */
	node->rmap_hlist_len++;
	item->head = node;
	item->flags |= RMAP_STABLE;
	hlist_add_head(&item->hlist, &node->hlist);
	if (item->hlist.next)
		ksm->c.pages_sharing++;
	else
		ksm->c.pages_shared++;
	rmap_slot(ksm, item)->merging_pages++;
}

/*
 * remove_stable_node - remove @node for good (run=2, knob switches): stale
 * nodes go as usual; a page that lingers unmapped (swap cache) loses its
 * back pointer and the node goes too; a page still mapped means an unmerge
 * missed a mapping: -EBUSY, never a crash (seed 002).
 */
static int remove_stable_node(struct ksm *ksm, struct stable_node *node)
{
	struct sp_page pg;

	if (!get_ksm_page(ksm, node, &pg))
		return 0;
	if (pg.mapcount > 0)
		return -EBUSY;
	set_back_pointer(ksm, node->kpfn, NULL);
	remove_node_from_stable_tree(ksm, node);
	return 0;
}

static int remove_stable_node_chain(struct ksm *ksm, struct stable_node *chain,
				    struct rb_root *root)
{
	struct list_head *pos, *next;

	for (pos = chain->dups.next; pos != &chain->dups; pos = next) {
		next = pos->next;
		if (remove_stable_node(ksm, list_entry(pos, struct stable_node, list)))
			return -EBUSY;
	}
	free_stable_node_chain(ksm, chain, root);
	return 0;
}

/*
 * remove_all_stable_nodes - empty every stable tree (of either
 * merge_across_nodes layout) and migrate_nodes.  -EBUSY if a page is still
 * mapped.
 */
int remove_all_stable_nodes(struct ksm *ksm)
{
	struct list_head *pos, *next;
	int nid, err = 0;

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++) {
		struct rb_root *root = &ksm->root_stable_tree[nid];

		while (root->node) {
			struct stable_node *node =
				rb_entry(root->node, struct stable_node, node);
			int ret = node->is_chain ?
				remove_stable_node_chain(ksm, node, root) :
				remove_stable_node(ksm, node);
			if (ret) {
				err = -EBUSY;
				break;
			}
		}
	}
	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = next) {
		next = pos->next;
		if (remove_stable_node(ksm, list_entry(pos, struct stable_node, list)))
			err = -EBUSY;
	}
	return err;
}

/*
 * ksm_prune_migrate_nodes - drop stale nodes from migrate_nodes.  Searches
 * prune the trees as they pass; nothing passes through this list, so the
 * scanner does it once per full scan (seed 001).
 */
void ksm_prune_migrate_nodes(struct ksm *ksm)
{
	struct list_head *pos, *next;
	struct sp_page pg;

	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = next) {
		next = pos->next;
		get_ksm_page(ksm, list_entry(pos, struct stable_node, list), &pg);
	}
}

void ksm_migrate_page(struct ksm *ksm, struct stable_node *node, uint64_t newpfn)
{
	node->kpfn = newpfn;
	ksm_page_gone(ksm);	/* (the old frame may be reused at once) */
}

void ksm_page_gone(struct ksm *ksm)
{
	ksm->gone_epoch++;
}

static bool kpfn_in(const struct stable_node *node, uint64_t start, uint64_t end)
{
	return node->kpfn >= start && node->kpfn < end;
}

/*
 * ksm_offline - memory [start_pfn, end_pfn) is gone: remove the stable nodes
 * whose page was there (pages that were migrated away updated their kpfn,
 * so these are the ones whose page is gone), in the trees and on
 * migrate_nodes.  The walk restarts after every removal.
 */
void ksm_offline(struct ksm *ksm, uint64_t start_pfn, uint64_t end_pfn)
{
	struct list_head *pos, *next;
	int nid;

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++) {
		struct rb_root *root = &ksm->root_stable_tree[nid];
		struct rb_node *rb;
restart:
		for (rb = rb_first(root); rb; rb = rb_next(rb)) {
			struct stable_node *node = rb_entry(rb, struct stable_node, node);

			if (node->is_chain) {
				struct list_head *dpos, *dnext;
				bool removed = false;

				for (dpos = node->dups.next; dpos != &node->dups; dpos = dnext) {
					struct stable_node *dup =
						list_entry(dpos, struct stable_node, list);

					dnext = dpos->next;
					if (kpfn_in(dup, start_pfn, end_pfn)) {
						remove_node_from_stable_tree(ksm, dup);
						removed = true;
					}
				}
				if (list_empty(&node->dups)) {
					free_stable_node_chain(ksm, node, root);
					goto restart;
				}
				if (removed)
					goto restart;
			} else if (kpfn_in(node, start_pfn, end_pfn)) {
				remove_node_from_stable_tree(ksm, node);
				goto restart;
			}
		}
	}
	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = next) {
		struct stable_node *node = list_entry(pos, struct stable_node, list);

		next = pos->next;
		if (kpfn_in(node, start_pfn, end_pfn))
			remove_node_from_stable_tree(ksm, node);
	}
}

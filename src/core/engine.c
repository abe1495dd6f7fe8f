/* SPDX-License-Identifier: MIT */
/*
 * engine.c - creating and destroying an engine; page checksums and
 * comparison; metadata accounting and introspection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#define ksm_xxh3(data, len) XXH3_64bits_dispatch(data, len)
#else
#define ksm_xxh3(data, len) XXH3_64bits(data, len)
#endif

#include "internal.h"

/*
 * The checksum only detects change between two visits; it never orders or
 * identifies pages.  Like the kernel (xxhash truncated to 32 bits), but
 * XXH3, which is several times faster on 4 KiB; libxxhash's dispatching
 * entry picks the widest vector unit (AVX2, AVX-512) at run time.
 */
uint32_t ksm_calc_checksum(const struct ksm *ksm, const void *data)
{
	/*
	 * The page is usually cold, and the hardware prefetcher stops at page
	 * boundaries and ramps up slowly within one: ask for every line at
	 * once, so the misses overlap instead of queueing behind the hash.
	 */
	for (size_t off = 0; off < ksm->be.page_size; off += 64)
		__builtin_prefetch((const char *)data + off);
	return (uint32_t)ksm_xxh3(data, ksm->be.page_size);
}

int ksm_memcmp_pages(const struct ksm *ksm, const void *a, const void *b)
{
	return memcmp(a, b, ksm->be.page_size);
}

void *ksm_zalloc(const struct sp_backend *be, size_t size)
{
	if (be->ops->zalloc)
		return be->ops->zalloc(be->be, size);
	return calloc(1, size);
}

void ksm_free(const struct sp_backend *be, void *p, size_t size)
{
	if (!p)
		return;
	if (be->ops->free)
		be->ops->free(be->be, p, size);
	else
		free(p);
}

/* The trees' roots and the zero page, then the engine itself. */
static void free_engine(struct ksm *ksm)
{
	struct sp_backend be = ksm->be;
	size_t roots = (size_t)be.nr_node_ids * sizeof(struct rb_root);

	ksm_free(&be, ksm->root_stable_tree, roots);
	ksm_free(&be, ksm->root_unstable_tree, roots);
	ksm_free(&be, ksm->zero_page, be.page_size);
	ksm_free(&be, ksm, sizeof(*ksm));
}

int ksm_create(struct ksm **ksmp, const struct sp_backend *backend)
{
	struct ksm *ksm;
	int nid, n;

	if (!ksmp || !backend || !backend->ops || backend->page_size < 64 ||
	    (backend->page_size & (backend->page_size - 1)) ||
	    backend->nr_node_ids < 1 || backend->nr_node_ids > KSM_MAX_NODES ||
	    !backend->ops->zalloc != !backend->ops->free)
		return -EINVAL;
	ksm = ksm_zalloc(backend, sizeof(*ksm));
	if (!ksm)
		return -ENOMEM;
	ksm->be = *backend;
	n = backend->nr_node_ids;
	ksm->root_stable_tree = ksm_zalloc(backend, (size_t)n * sizeof(struct rb_root));
	ksm->root_unstable_tree = ksm_zalloc(backend, (size_t)n * sizeof(struct rb_root));
	ksm->zero_page = ksm_zalloc(backend, backend->page_size);
	if (!ksm->root_stable_tree || !ksm->root_unstable_tree || !ksm->zero_page) {
		free_engine(ksm);
		return -ENOMEM;
	}
	for (nid = 0; nid < n; nid++) {
		ksm->root_stable_tree[nid] = RB_ROOT_INIT;
		ksm->root_unstable_tree[nid] = RB_ROOT_INIT;
	}
#define KNOB_DEFAULT(name, def) ksm->knobs.name = (def);
	KSM_KNOBS(KNOB_DEFAULT)
#undef KNOB_DEFAULT
	ksm->nr_node_ids = 1;
	list_init(&ksm->migrate_nodes);
	list_init(&ksm->mm_head);
	ksm->zero_checksum = ksm_calc_checksum(ksm, ksm->zero_page);
	ksm->gone_epoch = 1;	/* (0: a node never found valid) */
	*ksmp = ksm;
	return 0;
}

static void free_stable_subtree(struct ksm *ksm, struct rb_node *rb)
{
	while (rb) {
		struct stable_node *node = rb_entry(rb, struct stable_node, node);
		struct rb_node *left = rb->left;

		free_stable_subtree(ksm, rb->right);
		if (node->is_chain) {
			struct list_head *pos, *next;

			for (pos = node->dups.next; pos != &node->dups; pos = next) {
				next = pos->next;
				ksm_free(&ksm->be, list_entry(pos, struct stable_node, list),
					 sizeof(struct stable_node));
			}
		}
		ksm_free(&ksm->be, node, sizeof(*node));
		rb = left;
	}
}

/* Free everything without asking the backend anything. */
void ksm_destroy(struct ksm *ksm)
{
	struct list_head *pos, *next;
	uint32_t i;
	int nid;

	if (!ksm)
		return;
	for (i = 0; i < ksm->nr_slots; i++) {
		struct ksm_mm_slot *slot = ksm->slots[i];
		struct rmap_item *item, *next;

		if (!slot)
			continue;
		for (item = slot->rmap_list; RMAP_SLABS_DISABLED && item; item = next) {
			next = item->rmap_list;
			ksm_free(&ksm->be, item, sizeof(*item));
		}
		ksm_free(&ksm->be, slot, sizeof(*slot));
	}
	ksm_free(&ksm->be, ksm->slots, ksm->nr_slots * sizeof(*ksm->slots));
	while (ksm->slabs) {
		struct rmap_slab *slab = ksm->slabs;

		ksm->slabs = slab->next;
		ksm_free(&ksm->be, slab, sizeof(*slab));
	}
	for (nid = 0; nid < ksm->be.nr_node_ids; nid++)
		free_stable_subtree(ksm, ksm->root_stable_tree[nid].node);
	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = next) {
		next = pos->next;
		ksm_free(&ksm->be, list_entry(pos, struct stable_node, list),
			 sizeof(struct stable_node));
	}
	free_engine(ksm);
}

size_t ksm_rmap_item_size(void)
{
	return sizeof(struct rmap_item);
}

size_t ksm_metadata_bytes(const struct ksm *ksm)
{
	return (RMAP_SLABS_DISABLED ? (size_t)ksm->c.rmap_items * sizeof(struct rmap_item) :
				      (size_t)ksm->nr_slabs * sizeof(struct rmap_slab)) +
	       (size_t)ksm->c.stable_nodes * sizeof(struct stable_node) +
	       ksm->nr_slots * (sizeof(struct ksm_mm_slot) + sizeof(void *));
}

int ksm_run_state(const struct ksm *ksm)
{
	return (int)ksm->knobs.run;
}

unsigned long ksm_pages_to_scan(const struct ksm *ksm)
{
	return ksm->knobs.pages_to_scan;
}

unsigned long ksm_sleep_millisecs(const struct ksm *ksm)
{
	return ksm->knobs.sleep_millisecs;
}

bool ksm_unmerging(const struct ksm *ksm)
{
	return ksm->unmerging;
}

static void walk_one(struct ksm *ksm, struct stable_node *node, bool on_list,
		     bool is_dup, ksm_node_fn fn, void *arg)
{
	struct ksm_node_info info = {
		.node = node,
		.kpfn = node->kpfn,
		.nid = node->nid,
		.page_nid = -1,
		.mappings = node->rmap_hlist_len,
		.on_migrate_list = on_list,
		.is_chain = node->is_chain,
		.is_dup = is_dup,
	};
	struct sp_page pg;

	if (node->is_chain) {
		struct list_head *pos;

		info.mappings = 0;
		for (pos = node->dups.next; pos != &node->dups; pos = pos->next)
			info.mappings++;
	} else if (ksm->be.ops->pfn_page(ksm->be.be, node->kpfn, &pg) == 0 &&
		   pg.kind == SP_PAGE_KSM && pg.stable_node == node) {
		info.page_nid = pg.nid;
	}
	fn(arg, &info);
	if (node->is_chain) {
		struct list_head *pos;

		for (pos = node->dups.next; pos != &node->dups; pos = pos->next)
			walk_one(ksm, list_entry(pos, struct stable_node, list),
				 false, true, fn, arg);
	}
}

void ksm_walk_stable(struct ksm *ksm, ksm_node_fn fn, void *arg)
{
	struct list_head *pos;
	int nid;

	for (nid = 0; nid < ksm->be.nr_node_ids; nid++) {
		struct rb_node *rb;

		for (rb = rb_first(&ksm->root_stable_tree[nid]); rb; rb = rb_next(rb))
			walk_one(ksm, rb_entry(rb, struct stable_node, node), false,
				 false, fn, arg);
	}
	for (pos = ksm->migrate_nodes.next; pos != &ksm->migrate_nodes; pos = pos->next)
		walk_one(ksm, list_entry(pos, struct stable_node, list), true, false,
			 fn, arg);
}

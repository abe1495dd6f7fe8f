/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the engine's data structures, shared by the files of src/core.
 *
 * How the engine works (the kernel's design, mm/ksm.c):
 *
 * Pages are found identical by their content, so both trees are ordered by a
 * full-page comparison (memcmp), never by a hash: a hash would need a second
 * compare anyway and could not give an order for the binary search.
 *
 * The STABLE tree holds one stable_node per KSM page: a write-protected page
 * that several virtual pages map.  Its content cannot change, so the tree's
 * order stays valid.  The UNSTABLE tree holds rmap_items of ordinary pages
 * whose content did not change since the previous visit; they may still
 * change under us, so that tree can go out of order: it is simply thrown
 * away at the start of every full scan and rebuilt.  A page is looked up in
 * the stable tree first (merge with an existing KSM page), then in the
 * unstable tree (merge two ordinary pages into a new KSM page, which moves
 * into the stable tree), else it is inserted into the unstable tree.
 *
 * Two passes: a page enters a tree only if its checksum is the same as at
 * the previous visit, which keeps pages that are being written out of the
 * unstable tree (they are "volatile").  So a page merges on the second full
 * scan at the earliest.
 *
 * Stable nodes do not pin their page.  The backend frees a KSM page when its
 * last mapping goes, clearing the page's back pointer; every lookup
 * re-validates a stable node through that back pointer (get_ksm_page) and
 * removes the nodes found stale, restarting the walk from the root.
 *
 * max_page_sharing bounds the mappings of one KSM page: beyond it, further
 * identical pages make a second KSM page, and the stable node becomes a
 * "chain" holding "dups", each a KSM page with its own mappings.
 *
 * merge_across_nodes=0 keeps one stable and one unstable tree per NUMA
 * node, so pages only merge with pages on their node.  Each stable node
 * remembers the nid of the tree holding it.  When the backend migrates a
 * KSM page to another node only the node's kpfn changes; the misplaced node
 * is found later (by the scanner visiting one of its pages, or by a search
 * reaching it) and parked on migrate_nodes.  A later search for its content
 * either re-slots it into the right tree with all its mappings, or finds an
 * equal KSM page there, onto which its mappings then move one at a time.
 */
#ifndef SAMEPAGE_CORE_INTERNAL_H
#define SAMEPAGE_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ksm.h"
#include "rbtree.h"

/* ---- minimal intrusive lists ------------------------------------------ */

struct list_head {
	struct list_head *next, *prev;
};

static inline void list_init(struct list_head *h)
{
	h->next = h->prev = h;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}

static inline void list_insert_between(struct list_head *n, struct list_head *prev,
				       struct list_head *next)
{
	n->next = next;
	n->prev = prev;
	prev->next = n;
	next->prev = n;
}

/* Insert @n right after @h (at the front of list @h). */
static inline void list_add(struct list_head *n, struct list_head *h)
{
	list_insert_between(n, h, h->next);
}

/* Insert @n right before @h (at the back of list @h). */
static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	list_insert_between(n, h->prev, h);
}

static inline void list_del(struct list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

#define list_entry(ptr, type, member) rb_entry(ptr, type, member)

/* Doubly linked list with a one-pointer head (the kernel's hlist). */
struct hlist_node {
	struct hlist_node *next, **pprev;
};

struct hlist_head {
	struct hlist_node *first;
};

static inline void hlist_add_head(struct hlist_node *n, struct hlist_head *h)
{
	n->next = h->first;
	if (h->first)
		h->first->pprev = &n->next;
	h->first = n;
	n->pprev = &h->first;
}

static inline void hlist_del(struct hlist_node *n)
{
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
}

/* ---- rmap_item ---------------------------------------------------------- */

/* rmap_item.flags */
#define RMAP_UNSTABLE	0x1	/* in (or left over from) an unstable tree */
#define RMAP_STABLE	0x2	/* on a stable node's list (head valid) */
#define RMAP_SEQNR	0x4	/* low bit of the full scan that inserted it (unstable) */

#define RMAP_VPN_BITS	36	/* 2^36 pages of 4 KiB: a 48-bit address space */
#define RMAP_SLOT_BITS	18	/* 262144 address spaces */
#define RMAP_NID_BITS	10
#define KSM_MAX_NODES	(1 << RMAP_NID_BITS)
#define RMAP_AGE_MAX	15	/* smart scan's thresholds stop at 8: saturating
				 * here behaves exactly like the kernel's 255 */

/*
 * struct rmap_item - one per scanned virtual page of a mergeable range.
 *
 * Kept to 48 bytes (the kernel's is 64): the mm is an 18-bit slot id, the
 * address a 36-bit page number, the smart scan state two nibbles, and the
 * tree link shares a union with the stable-node link since an item is in at
 * most one of them.  That leaves room for a 16-bit content prefix, which
 * lets the unstable tree walk decide most levels without reading a page.
 */
struct rmap_item {
	struct rmap_item *rmap_list;	/* next item of the same mm, ascending vpn */
	uint64_t vpn : RMAP_VPN_BITS;	/* virtual page number in its mm */
	uint64_t slot : RMAP_SLOT_BITS;	/* id of its ksm_mm_slot */
	uint64_t nid : RMAP_NID_BITS;	/* RMAP_UNSTABLE: nid of the unstable tree */
	uint32_t oldchecksum;		/* checksum at the previous visit */
	uint16_t key;			/* RMAP_UNSTABLE: first 2 bytes of the page
					 * when inserted, big-endian */
	uint8_t age : 4;		/* smart scan: visits while not shared
					 * (saturates at RMAP_AGE_MAX) */
	uint8_t remaining_skips : 4;	/* smart scan: visits still to skip (<= 8) */
	uint8_t flags;			/* RMAP_* */
	union {
		struct rb_node node;	/* RMAP_UNSTABLE (this scan): in unstable tree */
		struct {		/* RMAP_STABLE */
			struct stable_node *head;	/* the KSM page's node (or dup) */
			struct hlist_node hlist;	/* on head->hlist */
		};
	};
};

/* ---- stable_node -------------------------------------------------------- */

enum stable_node_place {
	SN_TREE,	/* in root_stable_tree[nid] (regular node or chain) */
	SN_DUP,		/* one dup of a chain, on chain->dups */
	SN_MIGRATE,	/* parked on migrate_nodes, pending re-placement */
};

/*
 * struct stable_node - one per KSM page (or one chain per content when
 * max_page_sharing made several KSM pages of the same content).
 */
struct stable_node {
	/* what a tree walk reads at each level, together at the start */
	struct rb_node node;		/* SN_TREE: link in root_stable_tree[nid] */
	uint64_t key;			/* first 8 bytes of the page, big-endian: the
					 * tree order without touching the page (KSM
					 * pages never change; a chain has its dups') */
	uint64_t valid_epoch;		/* !is_chain: ksm->gone_epoch when its page
					 * was last found to be its own */
	uint32_t checksum;		/* its page's checksum: the order after key
					 * (a chain has its dups') */
	bool is_chain;			/* a chain: no page of its own */
	uint8_t place;			/* enum stable_node_place */
	/* the rest */
	int nid;			/* nid of the tree holding it (chain's for a dup) */
	struct list_head list;		/* SN_MIGRATE: on migrate_nodes;
					 * SN_DUP: on chain->dups */
	struct stable_node *chain;	/* SN_DUP: the chain holding it */
	struct hlist_head hlist;	/* !is_chain: rmap_items mapping the page */
	struct list_head dups;		/* is_chain: its dups, candidates first */
	uint64_t kpfn;			/* !is_chain: the KSM page (may be on another
					 * node than nid after a migration) */
	uint64_t chain_prune_time;	/* is_chain: last full prune (ms) */
	int rmap_hlist_len;		/* !is_chain: items on hlist; chain: dups */
};

/* ---- mm_slot ------------------------------------------------------------- */

struct ksm_mm_slot {
	void *mm;			/* backend's address space cookie */
	struct list_head mm_list;	/* on ksm->mm_head, scan order */
	struct ksm_mm_slot *hash_next;	/* mm hash chain */
	struct rmap_item *rmap_list;	/* its rmap_items, ascending vpn */
	uint32_t id;			/* index in ksm->slots (rmap_item.slot) */
	bool exiting;			/* ksm_exit() called: never touch mm again */
	long rmap_items;		/* /proc/PID/ksm_stat fields */
	long merging_pages;
	long zero_pages;
};

/* ---- the scan cursor ---------------------------------------------------- */

struct ksm_scan {
	struct ksm_mm_slot *mm_slot;	/* current slot; NULL = at the list head */
	uint64_t vpn;			/* next page to look at in that mm */
	struct rmap_item **rmap_list;	/* link where the next item is (or goes) */
	unsigned long seqnr;		/* completed full scans (= full_scans) */
	bool mm_has_range;		/* the current mm had a mergeable range */
};

/* ---- knobs and counters ------------------------------------------------- */

/* X(name, default) for every knob, kernel sysfs names. */
#define KSM_KNOBS(X)					\
	X(run, 0)					\
	X(pages_to_scan, 100)				\
	X(sleep_millisecs, 20)				\
	X(merge_across_nodes, 1)			\
	X(max_page_sharing, 256)			\
	X(use_zero_pages, 0)				\
	X(smart_scan, 1)				\
	X(stable_node_chains_prune_millisecs, 2000)

/* Counters kept as they change (the others are computed). */
#define KSM_COUNTERS(X)		\
	X(pages_shared)		\
	X(pages_sharing)	\
	X(pages_unshared)	\
	X(pages_scanned)	\
	X(pages_skipped)	\
	X(stable_node_chains)	\
	X(stable_node_dups)	\
	X(ksm_zero_pages)	\
	X(rmap_items)

struct ksm_knobs {
#define KNOB_FIELD(name, def) unsigned long name;
	KSM_KNOBS(KNOB_FIELD)
#undef KNOB_FIELD
};

struct ksm_counters {
#define COUNTER_FIELD(name) long name;
	KSM_COUNTERS(COUNTER_FIELD)
#undef COUNTER_FIELD
	long stable_nodes;		/* allocated stable_nodes (for metadata size) */
};

#define MM_HASH_SIZE 256

/*
 * rmap_items come from slabs of RMAP_SLAB_ITEMS, so that each costs its 48
 * bytes and not malloc's rounding and header on top.  Free items are kept
 * on a list threaded through rmap_list; slabs are returned at destroy.
 */
#define RMAP_SLAB_ITEMS 1360	/* ~64 KiB */
#if defined(__SANITIZE_ADDRESS__)
#define RMAP_SLABS_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RMAP_SLABS_DISABLED 1
#endif
#endif
#ifndef RMAP_SLABS_DISABLED
#define RMAP_SLABS_DISABLED 0
#endif

struct rmap_slab {
	struct rmap_slab *next;
	struct rmap_item items[RMAP_SLAB_ITEMS];
};

struct ksm {
	struct sp_backend be;
	struct ksm_knobs knobs;
	struct ksm_counters c;

	int nr_node_ids;		/* trees in use: 1, or backend's nodes */
	struct rb_root *root_stable_tree;	/* [be.nr_node_ids] */
	struct rb_root *root_unstable_tree;	/* [be.nr_node_ids] */
	struct list_head migrate_nodes;	/* SN_MIGRATE stable nodes */

	struct list_head mm_head;	/* ksm_mm_slot.mm_list, scan order */
	struct ksm_mm_slot *mm_hash[MM_HASH_SIZE];
	struct ksm_mm_slot **slots;	/* by id; NULL = free */
	uint32_t nr_slots;		/* allocated entries of slots[] */
	uint32_t free_slot_hint;

	struct ksm_scan scan;
	struct rmap_slab *slabs;	/* every slab allocated */
	struct rmap_item *free_items;	/* free rmap_items, via rmap_list */
	long nr_slabs;
	uint32_t zero_checksum;		/* checksum of a zero-filled page */
	uint64_t gone_epoch;		/* ksm_page_gone() calls, from 1 */
	void *zero_page;		/* page_size zero bytes */
	bool unmerging;			/* run=2 in progress */
};

/* ---- cross-file internals ----------------------------------------------- */

/* NUMA helpers: with merge_across_nodes=1 everything lives in tree 0. */
static inline int ksm_numa(const struct ksm *ksm, int nid)
{
	return ksm->knobs.merge_across_nodes ? 0 : nid;
}

static inline struct ksm_mm_slot *rmap_slot(const struct ksm *ksm,
					    const struct rmap_item *item)
{
	return ksm->slots[item->slot];
}

/* The engine's memory: the backend's zalloc/free (backend.h), else calloc
 * and free.  Zeroed; freed with the size it was allocated with. */
void *ksm_zalloc(const struct sp_backend *be, size_t size);
void ksm_free(const struct sp_backend *be, void *p, size_t size);

uint32_t ksm_calc_checksum(const struct ksm *ksm, const void *data);
int ksm_memcmp_pages(const struct ksm *ksm, const void *a, const void *b);

/* The first 8 bytes as a big-endian number: ordering two pages by it agrees
 * with memcmp() whenever the two numbers differ. */
static inline uint16_t ksm_page_key16(const void *data)
{
	const uint8_t *b = data;

	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint64_t ksm_page_key(const void *data)
{
	uint64_t v;

	__builtin_memcpy(&v, data, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* mm.c */
struct ksm_mm_slot *ksm_find_slot(struct ksm *ksm, void *mm);
void ksm_free_slot(struct ksm *ksm, struct ksm_mm_slot *slot);
struct rmap_item *ksm_alloc_rmap_item(struct ksm *ksm);
void ksm_free_rmap_item(struct ksm *ksm, struct rmap_item *item);
void ksm_remove_trailing_rmap_items(struct ksm *ksm, struct rmap_item **link);

/* stable.c */
bool get_ksm_page(struct ksm *ksm, struct stable_node *node, struct sp_page *pg);
void remove_node_from_stable_tree(struct ksm *ksm, struct stable_node *node);
void stable_node_dup_del(struct ksm *ksm, struct stable_node *dup);
void stable_node_park(struct ksm *ksm, struct stable_node *node);
int stable_tree_search(struct ksm *ksm, const struct sp_page *page, uint32_t checksum,
		       struct stable_node **found, struct sp_page *kpage);
struct stable_node *stable_tree_insert(struct ksm *ksm, const struct sp_page *kpage);
void stable_tree_append(struct ksm *ksm, struct rmap_item *item,
			struct stable_node *node, bool max_page_sharing_bypass);
bool is_page_sharing_candidate(const struct ksm *ksm, const struct stable_node *node);
int remove_all_stable_nodes(struct ksm *ksm);
void ksm_prune_migrate_nodes(struct ksm *ksm);
void free_stable_node(struct ksm *ksm, struct stable_node *node);

/* unstable.c */
void remove_rmap_item_from_tree(struct ksm *ksm, struct rmap_item *item);
struct rmap_item *unstable_tree_search_insert(struct ksm *ksm, struct rmap_item *item,
					      const struct sp_page *page, uint32_t checksum,
					      struct sp_page *tree_page);

/* scan.c */
void ksm_reset_unstable_trees(struct ksm *ksm);
void ksm_abort_scan_pass(struct ksm *ksm);

/* merge.c */
void cmp_and_merge_page(struct ksm *ksm, struct rmap_item *item, struct sp_page *page);

/* unmerge.c */
int unmerge_and_remove_all_rmap_items(struct ksm *ksm);

#endif /* SAMEPAGE_CORE_INTERNAL_H */

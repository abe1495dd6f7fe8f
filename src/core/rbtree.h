/* SPDX-License-Identifier: MIT */
/*
 * rbtree.h - an intrusive red-black tree in the kernel's style.
 *
 * Why not libbsd's <bsd/sys/tree.h>: (1) its entry is three pointers and an
 * int colour, 32 bytes; the engine keeps one tree link in every rmap_item and
 * needs the rmap_item within 48 bytes, so the colour lives in the low bit of
 * the parent pointer here (24 bytes).  (2) KSM's walks compare full pages,
 * may find a node stale half way down and restart, and then link the new
 * node exactly where the walk ended (rb_link_node + rb_insert_color); BSD's
 * RB_INSERT re-walks the tree with a comparison function that cannot fail,
 * which would double the page compares and cannot restart.
 *
 * Callers do their own descent (comparing as they like), then link the new
 * node at the empty child slot the descent ended on and rebalance.
 */
#ifndef SAMEPAGE_CORE_RBTREE_H
#define SAMEPAGE_CORE_RBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rb_node {
	uintptr_t parent_color;	/* parent pointer | colour (bit 0: 1 = black) */
	struct rb_node *left;
	struct rb_node *right;
};

struct rb_root {
	struct rb_node *node;
};

#define RB_ROOT_INIT ((struct rb_root){ NULL })

static inline struct rb_node *rb_parent(const struct rb_node *n)
{
	return (struct rb_node *)(n->parent_color & ~(uintptr_t)1);
}

static inline bool rb_empty_root(const struct rb_root *root)
{
	return root->node == NULL;
}

/* Link @node as a red leaf at *@link, a child slot of @parent (NULL: root). */
static inline void rb_link_node(struct rb_node *node, struct rb_node *parent,
				struct rb_node **link)
{
	node->parent_color = (uintptr_t)parent;	/* red */
	node->left = node->right = NULL;
	*link = node;
}

void rb_insert_color(struct rb_node *node, struct rb_root *root);
void rb_erase(struct rb_node *node, struct rb_root *root);
/* Put @newn in @victim's place (same position, colour, children). */
void rb_replace_node(struct rb_node *victim, struct rb_node *newn,
		     struct rb_root *root);
struct rb_node *rb_first(const struct rb_root *root);
struct rb_node *rb_next(const struct rb_node *node);
/*
 * Verify the red-black invariants and parent links.  Returns the number of
 * nodes, or -1 if the tree is malformed.
 */
long rb_verify(const struct rb_root *root);

#define rb_entry(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#endif /* SAMEPAGE_CORE_RBTREE_H */

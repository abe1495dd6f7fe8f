/* SPDX-License-Identifier: MIT */
/*
 * rbtree.c - red-black tree rebalancing (insert fix-up, erase fix-up).
 *
 * The textbook algorithm (Cormen et al., ch. 13) written for nodes with a
 * packed parent/colour word and NULL leaves instead of a sentinel.
 */
#include "rbtree.h"

#define RB_RED		0
#define RB_BLACK	1

static inline int rb_color(const struct rb_node *n)
{
	return n ? (int)(n->parent_color & 1) : RB_BLACK;
}

static inline bool rb_is_red(const struct rb_node *n)
{
	return n && !(n->parent_color & 1);
}

static inline void rb_set_parent(struct rb_node *n, struct rb_node *p)
{
	n->parent_color = (uintptr_t)p | (n->parent_color & 1);
}

static inline void rb_set_color(struct rb_node *n, int color)
{
	n->parent_color = (n->parent_color & ~(uintptr_t)1) | (uintptr_t)color;
}

/* Make @newn take @old's place under @parent (or as the root). */
static void rb_change_child(struct rb_node *old, struct rb_node *newn,
			    struct rb_node *parent, struct rb_root *root)
{
	if (!parent)
		root->node = newn;
	else if (parent->left == old)
		parent->left = newn;
	else
		parent->right = newn;
}

static void rb_rotate_left(struct rb_node *x, struct rb_root *root)
{
	struct rb_node *y = x->right;
	struct rb_node *p = rb_parent(x);

	x->right = y->left;
	if (y->left)
		rb_set_parent(y->left, x);
	rb_set_parent(y, p);
	rb_change_child(x, y, p, root);
	y->left = x;
	rb_set_parent(x, y);
}

static void rb_rotate_right(struct rb_node *x, struct rb_root *root)
{
	struct rb_node *y = x->left;
	struct rb_node *p = rb_parent(x);

	x->left = y->right;
	if (y->right)
		rb_set_parent(y->right, x);
	rb_set_parent(y, p);
	rb_change_child(x, y, p, root);
	y->right = x;
	rb_set_parent(x, y);
}

void rb_insert_color(struct rb_node *node, struct rb_root *root)
{
	struct rb_node *parent, *gparent, *uncle;

	while ((parent = rb_parent(node)) && rb_is_red(parent)) {
		gparent = rb_parent(parent);	/* exists: a red node is never the root */
		if (parent == gparent->left) {
			uncle = gparent->right;
			if (rb_is_red(uncle)) {
				rb_set_color(uncle, RB_BLACK);
				rb_set_color(parent, RB_BLACK);
				rb_set_color(gparent, RB_RED);
				node = gparent;
				continue;
			}
			if (node == parent->right) {
				rb_rotate_left(parent, root);
				node = parent;
				parent = rb_parent(node);
			}
			rb_set_color(parent, RB_BLACK);
			rb_set_color(gparent, RB_RED);
			rb_rotate_right(gparent, root);
		} else {
			uncle = gparent->left;
			if (rb_is_red(uncle)) {
				rb_set_color(uncle, RB_BLACK);
				rb_set_color(parent, RB_BLACK);
				rb_set_color(gparent, RB_RED);
				node = gparent;
				continue;
			}
			if (node == parent->left) {
				rb_rotate_right(parent, root);
				node = parent;
				parent = rb_parent(node);
			}
			rb_set_color(parent, RB_BLACK);
			rb_set_color(gparent, RB_RED);
			rb_rotate_left(gparent, root);
		}
	}
	rb_set_color(root->node, RB_BLACK);
}

/* Restore the black height after a black node was removed above @x (which
 * may be NULL), @parent being x's parent. */
static void rb_erase_fixup(struct rb_node *x, struct rb_node *parent,
			   struct rb_root *root)
{
	struct rb_node *w;

	while (x != root->node && !rb_is_red(x)) {
		if (x == parent->left) {
			w = parent->right;
			if (rb_is_red(w)) {
				rb_set_color(w, RB_BLACK);
				rb_set_color(parent, RB_RED);
				rb_rotate_left(parent, root);
				w = parent->right;
			}
			if (!rb_is_red(w->left) && !rb_is_red(w->right)) {
				rb_set_color(w, RB_RED);
				x = parent;
				parent = rb_parent(x);
			} else {
				if (!rb_is_red(w->right)) {
					rb_set_color(w->left, RB_BLACK);
					rb_set_color(w, RB_RED);
					rb_rotate_right(w, root);
					w = parent->right;
				}
				rb_set_color(w, rb_color(parent));
				rb_set_color(parent, RB_BLACK);
				rb_set_color(w->right, RB_BLACK);
				rb_rotate_left(parent, root);
				x = root->node;
				break;
			}
		} else {
			w = parent->left;
			if (rb_is_red(w)) {
				rb_set_color(w, RB_BLACK);
				rb_set_color(parent, RB_RED);
				rb_rotate_right(parent, root);
				w = parent->left;
			}
			if (!rb_is_red(w->left) && !rb_is_red(w->right)) {
				rb_set_color(w, RB_RED);
				x = parent;
				parent = rb_parent(x);
			} else {
				if (!rb_is_red(w->left)) {
					rb_set_color(w->right, RB_BLACK);
					rb_set_color(w, RB_RED);
					rb_rotate_left(w, root);
					w = parent->left;
				}
				rb_set_color(w, rb_color(parent));
				rb_set_color(parent, RB_BLACK);
				rb_set_color(w->left, RB_BLACK);
				rb_rotate_right(parent, root);
				x = root->node;
				break;
			}
		}
	}
	if (x)
		rb_set_color(x, RB_BLACK);
}

void rb_erase(struct rb_node *z, struct rb_root *root)
{
	struct rb_node *x, *xparent;
	int removed_color;

	if (!z->left || !z->right) {
		/* z has at most one child: splice it out. */
		x = z->left ? z->left : z->right;
		xparent = rb_parent(z);
		removed_color = rb_color(z);
		if (x)
			rb_set_parent(x, xparent);
		rb_change_child(z, x, xparent, root);
	} else {
		/* y = z's successor, which has no left child, takes z's place. */
		struct rb_node *y = z->right;

		while (y->left)
			y = y->left;
		removed_color = rb_color(y);
		x = y->right;
		if (rb_parent(y) == z) {
			xparent = y;
		} else {
			xparent = rb_parent(y);
			xparent->left = x;
			if (x)
				rb_set_parent(x, xparent);
			y->right = z->right;
			rb_set_parent(z->right, y);
		}
		y->left = z->left;
		rb_set_parent(z->left, y);
		rb_change_child(z, y, rb_parent(z), root);
		y->parent_color = z->parent_color;	/* parent and colour */
	}
	if (removed_color == RB_BLACK)
		rb_erase_fixup(x, xparent, root);
}

void rb_replace_node(struct rb_node *victim, struct rb_node *newn,
		     struct rb_root *root)
{
	struct rb_node *parent = rb_parent(victim);

	*newn = *victim;
	if (victim->left)
		rb_set_parent(victim->left, newn);
	if (victim->right)
		rb_set_parent(victim->right, newn);
	rb_change_child(victim, newn, parent, root);
}

struct rb_node *rb_first(const struct rb_root *root)
{
	struct rb_node *n = root->node;

	if (!n)
		return NULL;
	while (n->left)
		n = n->left;
	return n;
}

struct rb_node *rb_next(const struct rb_node *node)
{
	struct rb_node *parent;

	if (node->right) {
		node = node->right;
		while (node->left)
			node = node->left;
		return (struct rb_node *)node;
	}
	while ((parent = rb_parent(node)) && node == parent->right)
		node = parent;
	return parent;
}

/* Returns the black height of the subtree, or -1; counts nodes in *count. */
static int rb_verify_subtree(const struct rb_node *n, const struct rb_node *parent,
			     long *count, int depth)
{
	int lh, rh;

	if (!n)
		return 1;
	if (depth > 128 || rb_parent(n) != parent)
		return -1;
	if (rb_is_red(n) && (rb_is_red(n->left) || rb_is_red(n->right)))
		return -1;
	(*count)++;
	lh = rb_verify_subtree(n->left, n, count, depth + 1);
	rh = rb_verify_subtree(n->right, n, count, depth + 1);
	if (lh < 0 || rh < 0 || lh != rh)
		return -1;
	return lh + (rb_is_red(n) ? 0 : 1);
}

long rb_verify(const struct rb_root *root)
{
	long count = 0;

	if (root->node && rb_is_red(root->node))
		return -1;
	if (rb_verify_subtree(root->node, NULL, &count, 0) < 0)
		return -1;
	return count;
}

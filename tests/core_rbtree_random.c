/* SPDX-License-Identifier: MIT */
/*
 * The engine's red-black tree (src/core/rbtree.c) against a sorted array:
 * random inserts (linked where a descent ended, as the engine does),
 * erases and replacements; after every operation the tree must satisfy the
 * red-black rules (rb_verify) and its in-order walk must equal the array.
 * Prints its seed; SAMEPAGE_SEED replays one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rbtree.h"

#define MAXN	2000
#define OPS	60000

struct item {
	struct rb_node rb;
	uint32_t key;
	int in_tree;
};

static struct item items[MAXN];
static uint64_t rng;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* Descend like stable_tree_insert(); returns 0 if @it was linked, 1 if its
 * key is already there. */
static int insert(struct rb_root *root, struct item *it)
{
	struct rb_node **link = &root->node, *parent = NULL;

	while (*link) {
		struct item *cur = rb_entry(*link, struct item, rb);

		parent = *link;
		if (it->key < cur->key)
			link = &parent->left;
		else if (it->key > cur->key)
			link = &parent->right;
		else
			return 1;
	}
	rb_link_node(&it->rb, parent, link);
	rb_insert_color(&it->rb, root);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The tree must be valid and hold exactly the keys of the items in it. */
static int verify(struct rb_root *root, int op)
{
	static uint32_t want[MAXN];
	struct rb_node *n;
	long count = rb_verify(root);
	int nwant = 0, i = 0;

	for (int k = 0; k < MAXN; k++)
		if (items[k].in_tree)
			want[nwant++] = items[k].key;
	qsort(want, (size_t)nwant, sizeof(want[0]), cmp_u32);
	if (count != nwant) {
		fprintf(stderr, "op %d: rb_verify says %ld (-1: malformed), expected %d nodes\n",
			op, count, nwant);
		return 1;
	}
	for (n = rb_first(root); n; n = rb_next(n), i++) {
		if (i >= nwant || rb_entry(n, struct item, rb)->key != want[i]) {
			fprintf(stderr, "op %d: in-order walk differs at position %d\n", op, i);
			return 1;
		}
	}
	if (i != nwant) {
		fprintf(stderr, "op %d: in-order walk has %d nodes, expected %d\n", op, i, nwant);
		return 1;
	}
	return 0;
}

int main(void)
{
	const char *env = getenv("SAMEPAGE_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) :
			((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	struct rb_root root = RB_ROOT_INIT;
	int op;

	if (!seed)
		seed = 1;
	rng = seed;
	printf("core_rbtree_random: seed %llu (SAMEPAGE_SEED=%llu to replay)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	for (op = 0; op < OPS; op++) {
		struct item *it = &items[next_rand() % MAXN];
		unsigned int what = next_rand() % 8;

		if (!it->in_tree && what < 5) {
			it->key = next_rand() % (MAXN * 4);
			if (!insert(&root, it))
				it->in_tree = 1;
		} else if (it->in_tree && what < 7) {
			rb_erase(&it->rb, &root);
			it->in_tree = 0;
		} else if (it->in_tree) {
			/* replace by a free item with the same key (chain collapse) */
			for (int k = 0; k < MAXN; k++) {
				if (!items[k].in_tree) {
					rb_replace_node(&it->rb, &items[k].rb, &root);
					items[k].key = it->key;
					items[k].in_tree = 1;
					it->in_tree = 0;
					break;
				}
			}
		}
		if ((op < 5000 || op % 97 == 0) && verify(&root, op))
			goto fail;
	}
	/* empty it completely */
	for (int k = 0; k < MAXN; k++) {
		if (items[k].in_tree) {
			rb_erase(&items[k].rb, &root);
			items[k].in_tree = 0;
		}
	}
	if (verify(&root, op) || root.node) {
		fprintf(stderr, "tree not empty at the end\n");
		goto fail;
	}
	printf("%d operations, tree valid after each\n", OPS);
	return 0;
fail:
	fprintf(stderr, "core_rbtree_random: FAILED with seed %llu\n", (unsigned long long)seed);
	return 1;
}

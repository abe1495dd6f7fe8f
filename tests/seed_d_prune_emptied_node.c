/* SPDX-License-Identifier: MIT */
/*
 * Seed 001, case (d), on a node that no search will ever brush past: a
 * migrated KSM page mapped once meets an equal KSM page on its new node.
 * Linux cannot remap a page that is already KSM (it finds the mapping
 * through the page's anon_vma, and a KSM page has none), so the scanner
 * takes the rmap_item off the page's stable node and the merge fails: the
 * node stays parked on migrate_nodes with no rmap_item, its page still
 * valid (tests/scenarios/seed_b_collide_mapped_once.sp has the counters).
 * Nothing in any tree leads to it: when its page is freed, only the prune
 * of migrate_nodes at the start of a full scan removes it.
 *
 * Checked here through the engine's walk of the trees and the list: the
 * parked node stays (valid, no mapping) over many passes; after the page's
 * last mapping is written it is stale, still listed; one full scan later it
 * is gone, and only B's node is left.
 */
#include <stdio.h>

#include "ksm.h"
#include "sim_test.h"

struct census {
	int nodes;		/* stable nodes of any kind */
	int parked;		/* on migrate_nodes */
	int parked_stale;	/* ... whose page is gone */
	int parked_mappings;	/* rmap_items on the parked nodes */
	int parked_page_nid;	/* node of the (last) parked node's page */
};

static void count(void *arg, const struct ksm_node_info *info)
{
	struct census *c = arg;

	c->nodes++;
	if (!info->on_migrate_list)
		return;
	c->parked++;
	c->parked_mappings += info->mappings;
	c->parked_page_nid = info->page_nid;
	if (info->page_nid < 0)
		c->parked_stale++;
}

static struct census census(struct sim *s)
{
	struct census c = { .parked_page_nid = -2 };

	ksm_walk_stable(sim_ksm(s), count, &c);
	return c;
}

int main(void)
{
	struct census c;
	struct sim *s;

	if (sim_new(&s, SIM_DEFAULT_SEED)) {
		fprintf(stderr, "seed_d_prune_emptied_node: cannot create the simulator\n");
		return 1;
	}
	sim_set_output(s, NULL);
	run(s, "machine nodes=2 pages=64\n"
	       "set merge_across_nodes 0\n"
	       "set smart_scan 0\n"
	       "mm A node=0\nmmap A 0 2 mergeable\nfill A 0 2 'm'\n"
	       "mm B node=1\nmmap B 0 3 mergeable\nfill B 0 3 'm'\n"
	       "set run 1\nscan full 2\n"
	       "write A 1 0 'w'\nscan full 1\n"
	       "migrate A 0 1\n"
	       "expect pages_shared 2\n");
	c = census(s);
	EXPECT(c.nodes == 2 && c.parked == 0);

	/* A:0: parked, the merge onto B's page fails, the node stays listed */
	run(s, "scan 1\nexpect pages_shared 1\nexpect-ksm A 0 yes\n");
	c = census(s);
	EXPECT(c.nodes == 2);
	EXPECT(c.parked == 1 && c.parked_stale == 0 && c.parked_mappings == 0);
	EXPECT(c.parked_page_nid == 1);
	checked(s);

	/* valid, so the prunes at the start of these passes keep it */
	run(s, "scan full 10\nexpect pages_shared 1\nexpect-ksm A 0 yes\n");
	c = census(s);
	EXPECT(c.nodes == 2 && c.parked == 1 && c.parked_stale == 0);
	checked(s);

	/* its page freed: stale, and still listed until the next full scan */
	run(s, "write A 0 0 'v'\nexpect-ksm A 0 no\n");
	c = census(s);
	EXPECT(c.nodes == 2 && c.parked == 1 && c.parked_stale == 1);
	checked(s);

	run(s, "scan full 1\nexpect pages_shared 1\nexpect pages_sharing 2\n");
	c = census(s);
	EXPECT(c.nodes == 1 && c.parked == 0);
	checked(s);

	sim_free(s);
	if (failures)
		fprintf(stderr, "seed_d_prune_emptied_node: %d failures\n", failures);
	return failures ? 1 : 0;
}

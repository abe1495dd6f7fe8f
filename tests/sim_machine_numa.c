/* SPDX-License-Identifier: MIT */
/*
 * sim_machine_numa - page migration and memory hot-remove on the simulated
 * machine: every mapper of a migrated frame follows it, a KSM frame keeps
 * its flag and back pointer and the engine learns the new frame number,
 * content moves intact; offline moves a node's frames to the lowest online
 * node with room, frees its lingering swap cache, refuses (EBUSY) when the
 * other nodes cannot take them, and afterwards the node allocates nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim_test.h"

static void migrate_ksm_page(void)
{
	struct sim_page_info a, b;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=2 pages=64\n"
	       "set merge_across_nodes 0\n"
	       "set smart_scan 0\n"
	       "mm A node=0\nmm B node=0\nmm C node=1\n"
	       "mmap A 0 2 mergeable\nmmap B 0 2 mergeable\nmmap C 0 2 mergeable\n"
	       "fill A 0 2 seq\nfill B 0 2 seq\nfill C 0 2 seq\n"
	       "set run 1\nscan full 2\n"
	       "expect pages_shared 2\n"	/* A+B: 2 pages on node 0; C alone */
	       "expect pages_sharing 2\n"
	       "expect-shared A 0 B 0\n"
	       "expect-node A 0 0\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && a.ksm && a.stable_node);
	run(s, "migrate A 0 1\n"
	       "expect-node A 0 1\n"
	       "expect-node B 0 1\n"
	       "expect-shared A 0 B 0\n"
	       "expect-ksm B 0 yes\n");
	EXPECT(sim_page_info(s, "B", 0, &b) == 0);
	EXPECT(b.pfn != a.pfn && b.ksm && b.stable_node == a.stable_node &&
	       b.mapcount == 2 && !b.writable);
	checked(s);
	/* the engine finds the misplaced node and moves it to node 1's tree,
	 * where C's page 0 joins it */
	run(s, "scan full 3\n"
	       "expect-shared A 0 C 0\n"
	       "expect-node C 0 1\n"
	       "expect-byte C 0 8 0x5a\n"
	       "expect pages_shared 2\nexpect pages_sharing 3\n");
	checked(s);
	/* no-ops and errors */
	EXPECT(sim_page_info(s, "A", 0, &a) == 0);
	run(s, "migrate A 0 1\n"
	       "expect-error EINVAL migrate A 0 2\n"
	       "mmap A 10 1\n"
	       "expect-error ENOENT migrate A 10 0\n"
	       "expect-error EFAULT migrate A 11 0\n");
	EXPECT(sim_page_info(s, "A", 0, &b) == 0 && b.pfn == a.pfn);
	checked(s);
	sim_free(s);
}

static void offline_node(void)
{
	struct sim_page_info a;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=3 pages=8\n"
	       "set smart_scan 0\n"
	       "mm A node=1\nmm B node=2\n"
	       "mmap A 0 6 mergeable\nmmap B 0 4 mergeable\n"
	       "fill A 0 4 'k'\nfill A 4 2 random\nfill B 0 4 'k'\n"
	       "set run 1\nscan full 2\n"
	       "expect pages_shared 1\nexpect pages_sharing 7\n"
	       "expect-node A 0 1\n"
	       "expect-node B 0 1\n");	/* the KSM page is A's */
	checked(s);
	run(s, "offline 1\n"
	       "expect-node A 0 0\nexpect-node B 3 0\nexpect-node A 5 0\n"
	       "expect-shared A 0 B 2\n"
	       "expect-ksm A 1 yes\n"
	       "expect-byte B 1 4095 'k'\n"
	       "expect-error EINVAL offline 1\n"
	       "expect-error EINVAL migrate A 0 3\n"
	       "expect-error ENOMEM migrate A 0 1\n");
	EXPECT(sim_free_frames(s, 1) == 0);
	checked(s);
	/* A's home is offline: new frames come from node 0 */
	run(s, "write A 0 0 1\nexpect-node A 0 0\n"
	       "scan full 2\n"
	       "expect pages_shared 1\nexpect pages_sharing 6\n");
	checked(s);
	/* node 0 holds 4 frames; node 2, filled by B, has room for 1 */
	run(s, "mmap B 10 7\nfill B 10 7 random\nexpect-node B 16 2\n"
	       "expect-error EBUSY offline 0\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && a.nid == 0);
	/* the last online node can never go */
	run(s, "munmap A 0 6\nexit B\n"
	       "offline 2\nexpect-error EBUSY offline 0\n");
	checked(s);
	sim_free(s);
}

static void single_node(void)
{
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=1 pages=4\n"
	       "expect-error EBUSY offline 0\n"
	       "expect-error EINVAL offline 1\n"
	       "mm A\nmmap A 0 1\nfill A 0 1 1\n"
	       "migrate A 0 0\n"
	       "expect-error EINVAL migrate A 0 1\n");
	checked(s);
	sim_free(s);
}

int main(void)
{
	migrate_ksm_page();
	offline_node();
	single_node();
	if (failures)
		fprintf(stderr, "sim_machine_numa: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}

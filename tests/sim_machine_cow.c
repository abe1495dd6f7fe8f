/* SPDX-License-Identifier: MIT */
/*
 * sim_machine_cow - copy-on-write on the simulated machine: fork shares
 * anonymous frames read-only, a write copies them; a KSM frame is copied
 * even when mapped once; a frame mapped once is reused in place; a write to
 * a KSM-placed zero page is reported to the engine; new frames come from
 * the mm's home node, then the other nodes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim_test.h"

static void fork_cow(void)
{
	struct sim *s;
	struct sim_page_info a, b;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=2 pages=64\n"
	       "mm P node=1\n"
	       "mmap P 0 4\n"
	       "fill P 0 4 0x11\n"
	       "fork P C\n"
	       "expect-shared P 0 C 0\n"
	       "expect-shared P 3 C 3\n"
	       "expect-node C 0 1\n");
	EXPECT(sim_page_info(s, "P", 0, &a) == 0);
	EXPECT(a.kind == SIM_PTE_PRESENT && !a.writable && a.mapcount == 2);
	checked(s);
	/* the child writes: it gets a copy, the parent keeps the frame */
	run(s, "write C 0 5 'z'\n"
	       "expect-not-shared P 0 C 0\n"
	       "expect-byte C 0 5 'z'\n"
	       "expect-byte C 0 4 0x11\n"
	       "expect-byte P 0 5 0x11\n");
	EXPECT(sim_page_info(s, "P", 0, &a) == 0 && sim_page_info(s, "C", 0, &b) == 0);
	EXPECT(a.mapcount == 1 && !a.writable && b.mapcount == 1 && b.writable);
	checked(s);
	/* the parent writes its now exclusive frame: reused, no copy */
	{
		uint64_t before = a.pfn;

		run(s, "write P 0 0 1");
		EXPECT(sim_page_info(s, "P", 0, &a) == 0);
		EXPECT(a.pfn == before && a.writable);
	}
	/* exit of the child drops its references */
	run(s, "exit C");
	EXPECT(sim_page_info(s, "P", 1, &a) == 0 && a.mapcount == 1);
	checked(s);
	sim_free(s);
}

static void ksm_cow(void)
{
	struct sim *s;
	struct sim_page_info a;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=1 pages=64\n"
	       "mm A\n"
	       "mmap A 0 2 mergeable\n"
	       "fill A 0 2 'q'\n"
	       "set run 1\n"
	       "scan full 2\n"
	       "expect pages_shared 1\n"
	       "expect pages_sharing 1\n"
	       "expect-ksm A 0 yes\n"
	       "expect-shared A 0 A 1\n");
	/* write the same byte: still copies */
	run(s, "write A 0 0 'q'\n"
	       "expect-ksm A 0 no\n"
	       "expect-ksm A 1 yes\n"
	       "expect-not-shared A 0 A 1\n");
	/* the KSM page is now mapped once: a write still copies */
	EXPECT(sim_page_info(s, "A", 1, &a) == 0 && a.ksm && a.mapcount == 1);
	{
		uint64_t kpfn = a.pfn;

		run(s, "write A 1 9 'r'\nexpect-ksm A 1 no\nexpect-byte A 1 9 'r'\n");
		EXPECT(sim_page_info(s, "A", 1, &a) == 0 && a.pfn != kpfn && a.writable);
	}
	run(s, "scan full 2\nexpect pages_shared 0\nexpect pages_sharing 0\n");
	checked(s);
	sim_free(s);
}

static void zero_pages(void)
{
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=1 pages=64\n"
	       "set use_zero_pages 1\n"
	       "mm A\n"
	       "mmap A 0 4 mergeable\n"
	       "fill A 0 4 0\n"
	       "set run 1\n"
	       "scan full 2\n"
	       "expect ksm_zero_pages 4\n"
	       "expect A:ksm_zero_pages 4\n"
	       "expect-ksm A 0 no\n"
	       "expect-shared A 0 A 1\n"
	       "write A 0 0 7\n"
	       "expect ksm_zero_pages 3\n"
	       "expect A:ksm_zero_pages 3\n"
	       "expect-byte A 0 0 7\n"
	       "expect-byte A 1 0 0\n"
	       "munmap A 1 1\n"
	       "expect ksm_zero_pages 2\n"
	       "fork A B\n"
	       "expect B:ksm_zero_pages 0\n"
	       "write B 2 0 1\n"
	       "expect ksm_zero_pages 2\n"
	       "expect A:ksm_zero_pages 2\n"
	       "expect-error ENOMEM madvise A 0 4 unmergeable\n"
	       "madvise A 2 2 unmergeable\n"
	       "expect ksm_zero_pages 0\n"
	       "expect-not-shared A 2 A 3\n"
	       "check\n");
	checked(s);
	sim_free(s);
}

static void allocation(void)
{
	struct sim *s;
	struct sim_page_info a;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=3 pages=4\n"
	       "mm A node=1\n"
	       "mmap A 0 14\n"
	       "fill A 0 4 1\n"
	       "expect-node A 0 1\n"
	       "expect-node A 3 1\n"
	       "fill A 4 1 2\n"
	       "expect-node A 4 0\n"	/* node 1 full: fall back in node order */
	       "fill A 5 4 3\n"
	       "expect-node A 7 0\n"
	       "expect-node A 8 2\n"
	       "fill A 9 3 5\n"
	       "expect-error ENOMEM fill A 12 1 4\n"
	       "expect-error EFAULT fill A 13 2 4\n"	/* 14 is not mapped */
	       "expect-error ENOMEM write A 12 0 1\n"
	       "munmap A 0 1\n"
	       "fill A 12 1 4\n"
	       "expect-node A 12 1\n"
	       "check\n");
	EXPECT(sim_free_frames(s, 1) == 0 && sim_free_frames(s, 0) == 0);
	EXPECT(sim_page_info(s, "A", 20, &a) == -EFAULT);
	EXPECT(sim_page_info(s, "nobody", 0, &a) == -ENOENT);
	checked(s);
	sim_free(s);
}

int main(void)
{
	fork_cow();
	ksm_cow();
	zero_pages();
	allocation();
	if (failures)
		fprintf(stderr, "sim_machine_cow: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}

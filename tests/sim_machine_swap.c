/* SPDX-License-Identifier: MIT */
/*
 * sim_machine_swap - swap on the simulated machine, and the seed 002 cases:
 * swapout turns every mapper of a frame into a swap pte; swapin maps a KSM
 * frame again while it has a back pointer and run=2 is not unmerging, and
 * copies it otherwise; an unreferenced swap-cache frame lingers, keeping
 * its KSM flag and back pointer, until allocation pressure reclaims it.
 * Through the resched hook: a swapin and a fork in the middle of run=2's
 * unmerge (seed 002 causes 3 and 2) leave no KSM page behind.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim_test.h"

static const char merged_pair[] =
	"machine nodes=1 pages=16\n"
	"set smart_scan 0\n"
	"mm A\n"
	"mmap A 0 4 mergeable\n"
	"fill A 0 2 'x'\n"
	"fill A 2 2 random\n"
	"set run 1\n"
	"scan full 2\n"
	"expect pages_shared 1\n"
	"expect pages_sharing 1\n";

static void swap_anon(void)
{
	struct sim_page_info a, b;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, "machine nodes=1 pages=16\n"
	       "mm A\nmmap A 0 2\nfill A 0 2 0x33\n"
	       "fork A B\n"
	       "swapout A 0\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && sim_page_info(s, "B", 0, &b) == 0);
	EXPECT(a.kind == SIM_PTE_SWAP && b.kind == SIM_PTE_SWAP && a.pfn == b.pfn);
	EXPECT(a.swapcache && a.mapcount == 0 && a.swapcount == 2);
	run(s, "expect-byte B 0 100 0x33\n"
	       "expect-error EINVAL swapout A 0\n"
	       "expect-error EINVAL swapin A 1\n"
	       "swapin A 0\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0);
	EXPECT(a.kind == SIM_PTE_PRESENT && !a.writable && a.mapcount == 1 &&
	       a.swapcount == 1 && a.swapcache);
	checked(s);
	/* a write while B still holds a swap entry: copy */
	run(s, "write A 0 0 1\nexpect-byte A 0 0 1\nexpect-byte B 0 0 0x33\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && a.pfn != b.pfn);
	/* B faults it in: last reference, leaves swap cache, then reuse */
	run(s, "swapin B 0\nwrite B 0 1 2\n");
	EXPECT(sim_page_info(s, "B", 0, &b) == 0);
	EXPECT(b.kind == SIM_PTE_PRESENT && b.writable && !b.swapcache &&
	       b.mapcount == 1 && b.swapcount == 0);
	/* unmapping a swap pte drops the swap reference; the frame lingers */
	run(s, "swapout B 1\nswapout B 0\nmunmap B 0 2\nexit B\n");
	checked(s);
	sim_free(s);
}

static void swap_ksm(void)
{
	struct sim_page_info a;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, merged_pair);
	run(s, "swapout A 0\n"
	       "expect-ksm A 0 yes\n"
	       "expect-shared A 0 A 1\n"
	       "expect pages_shared 1\n"
	       "swapin A 1\n"
	       "expect-ksm A 1 yes\n"		/* back pointer, run=1: same page */
	       "expect-shared A 0 A 1\n");
	EXPECT(sim_page_info(s, "A", 1, &a) == 0 && a.kind == SIM_PTE_PRESENT &&
	       a.ksm && a.stable_node && !a.writable);
	checked(s);
	run(s, "swapin A 0\nexpect-shared A 0 A 1\n"
	       "scan full 2\nexpect pages_shared 1\nexpect pages_sharing 1\n");
	checked(s);
	sim_free(s);
}

/*
 * Seed 002 cause 1: run=2 while both mappers of a KSM page are swapped out.
 * The page stays in swap cache; the engine must still drop its stable node;
 * a later swapin copies.
 */
static void unmerge_swapped(void)
{
	struct sim_page_info a;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, merged_pair);
	run(s, "swapout A 0\n"
	       "set run 2\n"
	       "expect pages_shared 0\nexpect pages_sharing 0\n");
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && a.kind == SIM_PTE_SWAP);
	EXPECT(a.stable_node == NULL);	/* no stable node may remain */
	checked(s);
	run(s, "set merge_across_nodes 0\n"
	       "set run 1\n"
	       "swapin A 0\n"
	       "expect-ksm A 0 no\n"
	       "swapin A 1\n"
	       "expect-ksm A 1 no\n"
	       "expect-not-shared A 0 A 1\n"
	       "expect-byte A 1 4095 'x'\n");
	checked(s);
	/* the old swap-cache frame now lingers; pressure reclaims it */
	run(s, "mm F\nmmap F 0 16\n"
	       "expect-error ENOMEM fill F 0 16 1\n"
	       "scan full 2\nexpect pages_shared 1\n");
	checked(s);
	sim_free(s);
}

struct hook_ctx {
	const char *line;	/* what to run from inside the unmerge walk */
	int fired;
	int ret;
	char err[256];
};

static void hook(struct sim *s, void *arg)
{
	struct hook_ctx *h = arg;

	if (h->fired++)
		return;
	h->ret = sim_run_line(s, h->line);
	snprintf(h->err, sizeof(h->err), "%s", sim_error(s));
}

/* Seed 002 cause 3: a KSM page faulted back from swap cache during run=2. */
static void swapin_during_unmerge(void)
{
	struct hook_ctx h = { .line = "swapin A 0" };
	struct sim_page_info a;
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, merged_pair);
	/* a second mm, so that the walk reschedules between mms */
	run(s, "mm B\nmmap B 0 2 mergeable\nfill B 0 2 'x'\n"
	       "scan full 2\nexpect pages_sharing 3\n"
	       "swapout A 0\n");
	sim_set_resched_hook(s, hook, &h);
	run(s, "set run 2\n");
	sim_set_resched_hook(s, NULL, NULL);
	EXPECT(h.fired >= 1 && h.ret == 0);
	if (h.ret)
		fprintf(stderr, "hook: %s\n", h.err);
	EXPECT(sim_page_info(s, "A", 0, &a) == 0 && a.kind == SIM_PTE_PRESENT && !a.ksm);
	run(s, "expect pages_shared 0\nexpect pages_sharing 0\n"
	       "expect-byte A 0 17 'x'\n"
	       "expect-not-shared A 0 A 1\n");
	checked(s);
	/* commands that re-enter the engine are refused from the hook */
	h = (struct hook_ctx){ .line = "set run 1" };
	run(s, "swapin A 1\nswapin B 0\nswapin B 1\n"
	       "set run 1\nscan full 2\nexpect pages_sharing 3\n");
	sim_set_resched_hook(s, hook, &h);
	run(s, "set run 2\n");
	sim_set_resched_hook(s, NULL, NULL);
	EXPECT(h.fired >= 1 && h.ret == SIM_FAILED && strstr(h.err, "EBUSY"));
	checked(s);
	sim_free(s);
}

/* Seed 002 cause 2: an mm forked in the middle of run=2's unmerge. */
static void fork_during_unmerge(void)
{
	struct hook_ctx h = { .line = "fork A C" };
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	run(s, merged_pair);
	run(s, "mm B\nmmap B 0 2 mergeable\nfill B 0 2 'x'\n"
	       "scan full 2\nexpect pages_sharing 3\n");
	sim_set_resched_hook(s, hook, &h);
	run(s, "set run 2\n");
	sim_set_resched_hook(s, NULL, NULL);
	EXPECT(h.fired >= 1 && h.ret == 0);
	run(s, "expect pages_shared 0\nexpect pages_sharing 0\n"
	       "expect-ksm C 0 no\nexpect-ksm C 1 no\nexpect-ksm A 0 no\n"
	       "expect-byte C 1 0 'x'\n");
	checked(s);
	sim_free(s);
}

int main(void)
{
	swap_anon();
	swap_ksm();
	unmerge_swapped();
	swapin_during_unmerge();
	fork_during_unmerge();
	if (failures)
		fprintf(stderr, "sim_machine_swap: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}

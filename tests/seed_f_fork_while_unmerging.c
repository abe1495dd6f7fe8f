/* SPDX-License-Identifier: MIT */
/*
 * Seed 002, cause 2 -- case (f): an address space forked while run=2 is
 * unmerging must not be missed.
 *
 * __ksm_enter() inserts a new mm just behind the scan cursor (so it gets a
 * full pass to settle).  run=2's unmerge walks the same list with the same
 * cursor: a child forked from an mm the unmerge has NOT reached yet would
 * land behind the cursor -- in the part already walked -- and keep its KSM
 * mappings.  The fix: while unmerging, insert at the end of the list.
 *
 * Here three mms hold merged pages; from the engine's resched hook (between
 * address spaces while run=2 walks them) every mm that still maps a KSM page
 * is forked.  Afterwards no pte anywhere maps a KSM page, no stable node is
 * left, every page reads what was written, and the checker is clean; then
 * run=1 merges everything again.
 *
 * Exit 0 pass, 1 fail (with a message), 77 skip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define NPAGES	4
#define MAXMM	16

static const char *names[MAXMM] = { "A", "B", "D" };
static int nmm = 3;
static int forks, hook_calls, failures;

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "seed_f_fork_while_unmerging: FAIL: %s%s%s\n", what,
		detail ? ": " : "", detail ? detail : "");
	failures++;
}

static void run(struct sim *s, const char *line)
{
	if (sim_run_line(s, line) != SIM_OK) {
		fprintf(stderr, "seed_f_fork_while_unmerging: FAIL: `%s`: %s\n",
			line, sim_error(s));
		exit(1);
	}
}

static int maps_ksm(struct sim *s, const char *mm, uint64_t vpn)
{
	struct sim_page_info info;

	if (sim_page_info(s, mm, vpn, &info))
		return 0;
	return (info.kind == SIM_PTE_PRESENT || info.kind == SIM_PTE_SWAP) &&
	       info.ksm;
}

static void hook(struct sim *s, void *arg)
{
	int i, n = nmm;

	(void)arg;
	hook_calls++;
	for (i = 0; i < n && nmm < MAXMM; i++) {
		char line[64], *child;

		if (!maps_ksm(s, names[i], 0))
			continue;
		child = malloc(8);
		snprintf(child, 8, "C%d", forks++);
		snprintf(line, sizeof(line), "fork %s %s", names[i], child);
		if (sim_run_line(s, line) != SIM_OK) {
			fail("fork inside the unmerge hook", sim_error(s));
			free(child);
			return;
		}
		names[nmm++] = child;
		/* the child maps the same KSM page as its parent right now */
		if (!maps_ksm(s, child, 0))
			fail("forked child does not map the KSM page", child);
	}
}

static void count_node(void *arg, const struct ksm_node_info *info)
{
	(void)info;
	(*(int *)arg)++;
}

static void report(void *arg, const char *finding)
{
	(void)arg;
	fail("checker", finding);
}

int main(void)
{
	struct sim *s;
	char line[128];
	int i, nodes = 0;
	uint64_t v;
	long val;

	if (sim_new(&s, SIM_DEFAULT_SEED)) {
		fprintf(stderr, "seed_f_fork_while_unmerging: sim_new failed\n");
		return 1;
	}
	sim_set_output(s, NULL);
	run(s, "machine nodes=1");
	run(s, "set smart_scan 0");
	for (i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "mm %s", names[i]);
		run(s, line);
		snprintf(line, sizeof(line), "mmap %s 0 %d mergeable", names[i], NPAGES);
		run(s, line);
		snprintf(line, sizeof(line), "fill %s 0 %d 'f'", names[i], NPAGES);
		run(s, line);
	}
	run(s, "set run 1");
	run(s, "scan full 2");
	run(s, "expect pages_shared 1");
	run(s, "expect pages_sharing 11");

	sim_set_resched_hook(s, hook, NULL);
	run(s, "set run 2");
	sim_set_resched_hook(s, NULL, NULL);

	if (!hook_calls)
		fail("the resched hook was never called during run=2", NULL);
	if (!forks)
		fail("no mm still mapped a KSM page when the hook ran", NULL);
	printf("hook calls %d, forks during unmerge %d\n", hook_calls, forks);

	/* No KSM page mapped anywhere, content intact. */
	for (i = 0; i < nmm; i++)
		for (v = 0; v < NPAGES; v++) {
			if (maps_ksm(s, names[i], v)) {
				snprintf(line, sizeof(line), "%s:%llu still maps a KSM page",
					 names[i], (unsigned long long)v);
				fail(line, "missed by the unmerge");
			}
			snprintf(line, sizeof(line), "expect-byte %s %llu 0 'f'",
				 names[i], (unsigned long long)v);
			if (sim_run_line(s, line) != SIM_OK)
				fail(line, sim_error(s));
		}
	/* No stable node left, counters zero. */
	ksm_walk_stable(sim_ksm(s), count_node, &nodes);
	if (nodes) {
		snprintf(line, sizeof(line), "%d stable node(s) left after run=2", nodes);
		fail(line, NULL);
	}
	if (ksm_get(sim_ksm(s), "pages_shared", &val) || val)
		fail("pages_shared != 0 after run=2", NULL);
	if (ksm_get(sim_ksm(s), "pages_sharing", &val) || val)
		fail("pages_sharing != 0 after run=2", NULL);
	if (sim_check(s, report, NULL))
		fail("sim_check found problems after run=2", NULL);

	/* The children are registered: run=1 merges all of them again. */
	run(s, "set run 1");
	run(s, "scan full 2");
	snprintf(line, sizeof(line), "expect pages_sharing %d", nmm * NPAGES - 1);
	if (sim_run_line(s, line) != SIM_OK)
		fail(line, sim_error(s));
	if (sim_check(s, report, NULL))
		fail("sim_check found problems after re-merging", NULL);

	sim_free(s);
	if (failures)
		return 1;
	printf("seed_f_fork_while_unmerging: ok\n");
	return 0;
}

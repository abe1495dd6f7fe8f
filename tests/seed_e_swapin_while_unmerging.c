/* SPDX-License-Identifier: MIT */
/*
 * Seed 002, cause 3 -- case (e'): a KSM page faulted back from swap cache
 * while run=2 is unmerging must be COPIED, not mapped as the KSM page:
 * otherwise the fault can come just after the unmerge walked past that mm,
 * leaving a KSM mapping (and its stable node) behind.
 *
 * Three mms map one KSM page; it is swapped out (all ptes become swap
 * entries, the page lingers in swap cache).  From the resched hook (called
 * between address spaces while run=2 walks them) one swapped pte is faulted
 * back in per call; each must get a private copy with the right content.
 * Afterwards no pte maps a KSM page, no stable node is left, the checker is
 * clean, and the remaining swap entries fault in as copies too.
 *
 * Exit 0 pass, 1 fail (with a message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define NPAGES	2

static const char *names[] = { "A", "B", "D" };
#define NMM	3
static int hook_calls, swapins, failures;

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "seed_e_swapin_while_unmerging: FAIL: %s%s%s\n", what,
		detail ? ": " : "", detail ? detail : "");
	failures++;
}

static void run(struct sim *s, const char *line)
{
	if (sim_run_line(s, line) != SIM_OK) {
		fprintf(stderr, "seed_e_swapin_while_unmerging: FAIL: `%s`: %s\n",
			line, sim_error(s));
		exit(1);
	}
}

static int kind(struct sim *s, const char *mm, uint64_t vpn, struct sim_page_info *info)
{
	if (sim_page_info(s, mm, vpn, info))
		return -1;
	return info->kind;
}

/* fault in the first pte still swapped out, and check it got a copy */
static void hook(struct sim *s, void *arg)
{
	struct sim_page_info info;
	char line[64];
	int i;
	uint64_t v;

	(void)arg;
	hook_calls++;
	for (i = 0; i < NMM; i++)
		for (v = 0; v < NPAGES; v++) {
			if (kind(s, names[i], v, &info) != SIM_PTE_SWAP)
				continue;
			snprintf(line, sizeof(line), "swapin %s %llu", names[i],
				 (unsigned long long)v);
			if (sim_run_line(s, line) != SIM_OK) {
				fail("swapin inside the unmerge hook", sim_error(s));
				return;
			}
			swapins++;
			if (kind(s, names[i], v, &info) != SIM_PTE_PRESENT)
				fail(line, "page not present after swapin");
			else if (info.ksm)
				fail(line, "faulted back as the KSM page while unmerging (must copy)");
			else if (info.swapcache)
				fail(line, "mapped the swap-cache page itself while unmerging (must copy)");
			snprintf(line, sizeof(line), "expect-byte %s %llu 9 's'", names[i],
				 (unsigned long long)v);
			if (sim_run_line(s, line) != SIM_OK)
				fail(line, sim_error(s));
			return;
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
	struct sim_page_info info;
	char line[128];
	int i, nodes = 0;
	uint64_t v;
	long val;

	if (sim_new(&s, SIM_DEFAULT_SEED)) {
		fprintf(stderr, "seed_e_swapin_while_unmerging: sim_new failed\n");
		return 1;
	}
	sim_set_output(s, NULL);
	run(s, "machine nodes=1");
	run(s, "set smart_scan 0");
	for (i = 0; i < NMM; i++) {
		snprintf(line, sizeof(line), "mm %s", names[i]);
		run(s, line);
		snprintf(line, sizeof(line), "mmap %s 0 %d mergeable", names[i], NPAGES);
		run(s, line);
		snprintf(line, sizeof(line), "fill %s 0 %d 's'", names[i], NPAGES);
		run(s, line);
	}
	run(s, "set run 1");
	run(s, "scan full 2");
	run(s, "expect pages_shared 1");
	run(s, "expect pages_sharing 5");
	/* one KSM page, six mappings: all become swap entries */
	run(s, "swapout A 0");
	for (i = 0; i < NMM; i++)
		for (v = 0; v < NPAGES; v++)
			if (kind(s, names[i], v, &info) != SIM_PTE_SWAP) {
				snprintf(line, sizeof(line), "%s:%llu not swapped out",
					 names[i], (unsigned long long)v);
				fail(line, "swapout must take all mappers");
			}
	run(s, "expect pages_shared 1");

	sim_set_resched_hook(s, hook, NULL);
	run(s, "set run 2");
	sim_set_resched_hook(s, NULL, NULL);
	printf("hook calls %d, swapins during unmerge %d\n", hook_calls, swapins);
	if (!swapins)
		fail("no swapin happened inside the unmerge", NULL);

	nodes = 0;
	ksm_walk_stable(sim_ksm(s), count_node, &nodes);
	if (nodes) {
		snprintf(line, sizeof(line), "%d stable node(s) left after run=2", nodes);
		fail(line, NULL);
	}
	if (ksm_get(sim_ksm(s), "pages_shared", &val) || val)
		fail("pages_shared != 0 after run=2", NULL);
	if (sim_check(s, report, NULL))
		fail("sim_check found problems after run=2", NULL);

	/* the rest faults in after the unmerge: still copies (no stable node) */
	for (i = 0; i < NMM; i++)
		for (v = 0; v < NPAGES; v++) {
			if (kind(s, names[i], v, &info) == SIM_PTE_SWAP) {
				snprintf(line, sizeof(line), "swapin %s %llu", names[i],
					 (unsigned long long)v);
				run(s, line);
			}
			if (kind(s, names[i], v, &info) != SIM_PTE_PRESENT || info.ksm) {
				snprintf(line, sizeof(line), "%s:%llu", names[i],
					 (unsigned long long)v);
				fail(line, "maps a KSM page (or nothing) after run=2");
			}
			snprintf(line, sizeof(line), "expect-byte %s %llu 4095 's'",
				 names[i], (unsigned long long)v);
			if (sim_run_line(s, line) != SIM_OK)
				fail(line, sim_error(s));
		}
	run(s, "expect-not-shared A 0 B 0");
	run(s, "expect-not-shared A 0 A 1");
	if (sim_check(s, report, NULL))
		fail("sim_check found problems after the swapins", NULL);

	/* merge_across_nodes may switch now, and merging works again */
	run(s, "set merge_across_nodes 0");
	run(s, "set run 1");
	run(s, "scan full 2");
	run(s, "expect pages_shared 1");
	run(s, "expect pages_sharing 5");
	if (sim_check(s, report, NULL))
		fail("sim_check found problems after re-merging", NULL);

	sim_free(s);
	if (failures)
		return 1;
	printf("seed_e_swapin_while_unmerging: ok\n");
	return 0;
}

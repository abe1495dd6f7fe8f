/* SPDX-License-Identifier: MIT */
/*
 * estimate_matches_kernel_ksm - three processes with known content (an image
 * copied within and across processes, zero pages, unique pages, 700 copies
 * of one page: chains of max_page_sharing=256): the estimate equals the
 * kernel's rules, and, as root with /sys/kernel/mm/ksm writable, what the
 * kernel's KSM really converges to on the same processes (global counters
 * and each process's ksm_merging_pages).
 */
#include "estimate_util.h"

int main(void)
{
	static const struct child_spec specs[3] = {
		{ .image_copies = 2, .image_pages = 300, .zero = 50, .unique = 100, .x_copies = 600 },
		{ .image_copies = 1, .image_pages = 300, .zero = 30, .unique = 100, .x_copies = 100 },
		{ .unique = 40 },
	};
	struct child ch[3];
	struct est_proc procs[3] = { 0 };
	struct est_opts o = { .mergeable = true };
	struct est_counters total;
	struct est_stats st;
	long want_shared = 0, want_sharing = 0;
	char why[256];

	seed_from_env();
	ksm_lock();	/* our children become mergeable */
	for (int i = 0; i < 3; i++) {
		child_start(&ch[i], i, &specs[i]);
		if (child_cmd(&ch[i], 'm') != 'k')
			SKIP("madvise(MADV_MERGEABLE) fails: kernel without KSM");
		procs[i].pid = ch[i].pid;
	}
	CHECK_EQ(estimate_run(&o, procs, 3, &total, &st), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(procs[i].error, EST_OK);
		CHECK_EQ(procs[i].c.pages, ch[i].pages);
		CHECK_EQ(procs[i].c.zero_pages, specs[i].zero);
		CHECK_EQ(procs[i].c.pages_volatile, 0);
	}
	/* each process alone */
	long s, g;
	s = g = 0;
	for (unsigned long i = 0; i < 300; i++)
		rule_add(2, &s, &g);
	rule_add(50, &s, &g);
	rule_add(600, &s, &g);
	CHECK_EQ(procs[0].c.pages_shared, s);
	CHECK_EQ(procs[0].c.pages_sharing, g);
	CHECK_EQ(procs[0].c.saved_bytes, (unsigned long)g * PG);
	s = g = 0;
	rule_add(30, &s, &g);
	rule_add(100, &s, &g);
	CHECK_EQ(procs[1].c.pages_shared, s);
	CHECK_EQ(procs[1].c.pages_sharing, g);
	CHECK_EQ(procs[2].c.pages_shared, 0);
	CHECK_EQ(procs[2].c.pages_sharing, 0);
	/* all together */
	for (unsigned long i = 0; i < 300; i++)
		rule_add(3, &want_shared, &want_sharing);
	rule_add(80, &want_shared, &want_sharing);
	rule_add(700, &want_shared, &want_sharing);
	CHECK_EQ(total.pages, ch[0].pages + ch[1].pages + ch[2].pages);
	CHECK_EQ(total.zero_pages, 80);
	CHECK_EQ(total.pages_shared, want_shared);
	CHECK_EQ(total.pages_sharing, want_sharing);
	CHECK_EQ(total.saved_bytes, (unsigned long)want_sharing * PG);
	CHECK_EQ(procs[2].merging_pages, 0);
	CHECK_EQ(procs[0].merging_pages + procs[1].merging_pages, want_shared + want_sharing);
	printf("estimate: pages_shared %ld pages_sharing %ld (rules: %ld %ld); "
	       "ksm_merging_pages %ld %ld %ld\n", total.pages_shared, total.pages_sharing,
	       want_shared, want_sharing, procs[0].merging_pages, procs[1].merging_pages,
	       procs[2].merging_pages);

	if (!kernel_ksm_begin(why, sizeof(why))) {
		printf("kernel's KSM not measured (%s): compared with the kernel's rules only\n",
		       why);
	} else {
		long ks = -1, kg = -1, m[3];
		bool ok = kernel_ksm_converge(&ks, &kg);

		for (int i = 0; i < 3; i++)
			m[i] = ksm_merging_of(ch[i].pid);
		kernel_ksm_end();
		if (!ok)
			FAIL("the kernel's KSM did not converge within 15 s");
		printf("kernel: pages_shared %ld pages_sharing %ld; ksm_merging_pages %ld %ld %ld\n",
		       ks, kg, m[0], m[1], m[2]);
		if (m[0] + m[1] + m[2] != ks + kg)
			SKIP("the kernel merged pages of other processes too (%ld merging in "
			     "ours, %ld in all; their owners do not hold the KSM lock): the "
			     "estimate matched the rules, the kernel could not be compared",
			     m[0] + m[1] + m[2], ks + kg);
		CHECK_EQ(total.pages_shared, ks);
		CHECK_EQ(total.pages_sharing, kg);
		for (int i = 0; i < 3; i++)
			if (m[i] >= 0)
				CHECK_EQ(procs[i].merging_pages, m[i]);
	}
	for (int i = 0; i < 3; i++)
		child_stop(&ch[i]);
	printf("PASS\n");
	return 0;
}

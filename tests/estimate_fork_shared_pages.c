/* SPDX-License-Identifier: MIT */
/*
 * estimate_fork_shared_pages - pages a fork left shared between two
 * processes (one physical page, two mappings) never merge with themselves
 * in the kernel; the estimate of parent and child together agrees: 10
 * copies of one page in each (10 physical pages, 20 mappings) give
 * pages_shared 1, pages_sharing 19; 20 unique pages shared by fork give
 * nothing.  Compared with the kernel's KSM when it is available.  Needs
 * PFNs in pagemap (root).
 */
#include "estimate_util.h"

static pid_t grandchild;

static void kill_grandchild(void)
{
	if (grandchild > 0)
		kill(grandchild, SIGKILL);	/* the test's own, paused for ever */
}

int main(void)
{
	static const struct child_spec spec = { .unique = 20, .x_copies = 10 };
	struct child ch;
	struct est_proc procs[2] = { 0 };
	struct est_opts o = { .mergeable = true };
	struct est_counters total;
	struct est_stats st;
	pid_t g = 0;
	char why[256], c = 'f';

	seed_from_env();
	ksm_lock();	/* our children become mergeable */
	child_start(&ch, 0, &spec);
	if (child_cmd(&ch, 'm') != 'k')
		SKIP("madvise(MADV_MERGEABLE) fails: kernel without KSM");
	if (write(ch.cmd, &c, 1) != 1 || read(ch.ack, &g, sizeof(g)) != sizeof(g) || g <= 0)
		FAIL("no grandchild");
	grandchild = g;
	atexit(kill_grandchild);
	procs[0].pid = ch.pid;
	procs[1].pid = g;
	CHECK_EQ(estimate_run(&o, procs, 2, &total, &st), 0);
	if (!st.pfns_visible) {
		child_stop(&ch);
		SKIP("PFNs not visible in pagemap (not root): shared pages look like copies");
	}
	CHECK_EQ(procs[0].error, EST_OK);
	CHECK_EQ(procs[1].error, EST_OK);
	CHECK_EQ(procs[0].c.pages, 30);
	CHECK_EQ(procs[1].c.pages, 30);
	CHECK_EQ(procs[0].c.pages_shared, 1);	/* alone: 10 distinct X pages */
	CHECK_EQ(procs[0].c.pages_sharing, 9);
	CHECK_EQ(total.pages_shared, 1);
	CHECK_EQ(total.pages_sharing, 19);
	CHECK_EQ(procs[0].merging_pages, 10);
	CHECK_EQ(procs[1].merging_pages, 10);
	/* Reading did not unshare them (a second estimate sees the same). */
	CHECK_EQ(estimate_run(&o, procs, 2, &total, &st), 0);
	CHECK_EQ(total.pages_shared, 1);
	CHECK_EQ(total.pages_sharing, 19);

	if (!kernel_ksm_begin(why, sizeof(why))) {
		printf("kernel's KSM not measured (%s): compared with the kernel's rules only\n",
		       why);
	} else {
		long ks = -1, kg = -1, m0, m1;
		bool ok = kernel_ksm_converge(&ks, &kg);

		m0 = ksm_merging_of(ch.pid);
		m1 = ksm_merging_of(g);
		kernel_ksm_end();
		if (!ok)
			FAIL("the kernel's KSM did not converge within 15 s");
		printf("kernel: pages_shared %ld pages_sharing %ld; ksm_merging_pages %ld %ld\n",
		       ks, kg, m0, m1);
		if (m0 + m1 != ks + kg)
			SKIP("the kernel merged pages of other processes too");
		CHECK_EQ(ks, total.pages_shared);
		CHECK_EQ(kg, total.pages_sharing);
		CHECK_EQ(m0, procs[0].merging_pages);
		CHECK_EQ(m1, procs[1].merging_pages);
	}
	child_stop(&ch);
	printf("PASS\n");
	return 0;
}

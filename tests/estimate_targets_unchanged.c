/* SPDX-License-Identifier: MIT */
/*
 * estimate_targets_unchanged - the targets' memory reads the same after an
 * estimate as before (checksummed by the targets themselves), and their
 * pages are still not merged (the estimate only reads).
 */
#include "estimate_util.h"

int main(void)
{
	static const struct child_spec specs[2] = {
		{ .image_copies = 3, .image_pages = 200, .zero = 64, .unique = 300, .x_copies = 300 },
		{ .image_copies = 1, .image_pages = 200, .zero = 10, .unique = 50, .x_copies = 10 },
	};
	struct child ch[2];
	struct est_proc procs[2] = { 0 };
	struct est_opts o = { 0 };
	struct est_counters total;
	uint64_t before[2];

	seed_from_env();
	for (int i = 0; i < 2; i++) {
		child_start(&ch[i], i, &specs[i]);
		procs[i].pid = ch[i].pid;
		before[i] = child_checksum(&ch[i]);
	}
	for (int round = 0; round < 3; round++) {
		CHECK_EQ(estimate_run(&o, procs, 2, &total, NULL), 0);
		for (int i = 0; i < 2; i++) {
			CHECK_EQ(procs[i].error, EST_OK);
			CHECK(procs[i].c.pages >= ch[i].pages);
			CHECK_EQ(child_checksum(&ch[i]), before[i]);
			if (ksm_merging_of(ch[i].pid) > 0)
				FAIL("pages of pid %d are merged after the estimate", (int)ch[i].pid);
		}
	}
	for (int i = 0; i < 2; i++)
		child_stop(&ch[i]);
	printf("PASS\n");
	return 0;
}

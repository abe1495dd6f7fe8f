/* SPDX-License-Identifier: MIT */
/*
 * estimate_unique_pages_change_nothing - leaving the pages whose content no
 * other page has out of the engine (what the estimate does for speed) gives
 * exactly the counters of the engine run over every page.
 */
#include "estimate_util.h"

int main(void)
{
	static const struct child_spec specs[2] = {
		{ .image_copies = 2, .image_pages = 150, .zero = 20, .unique = 500, .x_copies = 520 },
		{ .image_copies = 1, .image_pages = 150, .zero = 7, .unique = 300, .x_copies = 3 },
	};
	struct child ch[2];
	struct est_proc a[2] = { 0 }, b[2] = { 0 };
	struct est_opts o = { .mergeable = true };
	struct est_counters ta, tb;
	struct est_stats sa, sb;

	seed_from_env();
	ksm_lock();	/* our children become mergeable */
	for (int i = 0; i < 2; i++) {
		child_start(&ch[i], i, &specs[i]);
		if (child_cmd(&ch[i], 'm') != 'k')
			SKIP("madvise(MADV_MERGEABLE) fails: kernel without KSM");
		a[i].pid = b[i].pid = ch[i].pid;
	}
	CHECK_EQ(estimate_run(&o, a, 2, &ta, &sa), 0);
	o.engine_all_pages = true;
	CHECK_EQ(estimate_run(&o, b, 2, &tb, &sb), 0);
	CHECK(sb.engine_pages > sa.engine_pages);
	CHECK_EQ(sb.engine_pages, ta.pages);
	CHECK_EQ(ta.pages_shared, tb.pages_shared);
	CHECK_EQ(ta.pages_sharing, tb.pages_sharing);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(a[i].c.pages_shared, b[i].c.pages_shared);
		CHECK_EQ(a[i].c.pages_sharing, b[i].c.pages_sharing);
		CHECK_EQ(a[i].merging_pages, b[i].merging_pages);
	}
	printf("engine over %lu pages or %lu: pages_shared %ld pages_sharing %ld both ways\n",
	       sa.engine_pages, sb.engine_pages, ta.pages_shared, ta.pages_sharing);
	for (int i = 0; i < 2; i++)
		child_stop(&ch[i]);
	printf("PASS\n");
	return 0;
}

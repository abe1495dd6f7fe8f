/* SPDX-License-Identifier: MIT */
/*
 * estimate_volatile_pages - pages written between the two reads are counted
 * in pages_volatile and merged with nothing; the others are still estimated
 * exactly.  (The target changes 3 unique pages; then a second estimate, with
 * nothing changing, reports no volatile page.)
 */
#include "estimate_util.h"

static struct child ch;

static void change_pages(void *arg)
{
	(void)arg;
	CHECK_EQ(child_cmd(&ch, 'v'), 'k');
}

int main(void)
{
	static const struct child_spec spec = {
		.image_copies = 2, .image_pages = 10, .zero = 5, .unique = 20, .x_copies = 4,
	};
	struct est_proc p = { 0 };
	struct est_opts o = { .mergeable = true, .between_passes = change_pages };
	struct est_counters total;

	seed_from_env();
	ksm_lock();	/* our children become mergeable */
	child_start(&ch, 0, &spec);
	if (child_cmd(&ch, 'm') != 'k')
		SKIP("madvise(MADV_MERGEABLE) fails: kernel without KSM");
	p.pid = ch.pid;
	CHECK_EQ(estimate_run(&o, &p, 1, &total, NULL), 0);
	CHECK_EQ(p.error, EST_OK);
	CHECK_EQ(p.c.pages, ch.pages);
	CHECK_EQ(p.c.pages_volatile, 3);
	CHECK_EQ(p.c.zero_pages, 5);
	CHECK_EQ(p.c.pages_shared, 10 + 1 + 1);
	CHECK_EQ(p.c.pages_sharing, 10 + 4 + 3);
	CHECK_EQ(total.pages_volatile, 3);

	o.between_passes = NULL;
	CHECK_EQ(estimate_run(&o, &p, 1, &total, NULL), 0);
	CHECK_EQ(p.c.pages_volatile, 0);
	CHECK_EQ(p.c.pages_shared, 12);
	CHECK_EQ(p.c.pages_sharing, 17);
	child_stop(&ch);
	printf("PASS\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_unmerge_vmas_rejoin - the application's mapping count recovers once
 * its pages are unmerged: 80,000 pages, every other one merged (one
 * mapping each while merged), then run=2 and close: the count returns to
 * about what it was before registering (it stayed at ~32,800, 44 before).
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_unmerge_vmas_rejoin";
	size_t ps = page_size(), n = 80000;
	long before = count_maps();
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	for (size_t i = 0; i < n; i++) {
		if (i % 2)
			memset(p + i * ps, 0x3C, ps);	/* merged: all one content */
		else
			for (size_t j = 0; j < ps; j += 8)
				*(uint64_t *)(p + i * ps + j) = i * 0x9E3779B97F4A7C15ull + j;
	}
	long registered = count_maps();

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	long merged = count_maps();

	CHECK(get(sp, "pages_sharing") > 1000);
	set(sp, "run", 2);
	long unmerged = count_maps();

	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	long closed = count_maps();

	printf("mappings: before %ld, registered %ld, merged %ld, after run=2 %ld, "
	       "after close %ld\n", before, registered, merged, unmerged, closed);
	CHECK(merged > registered + 1000);
	/* (a sanitizer's allocator maps memory of its own meanwhile: slack) */
	if (unmerged > registered + 64)
		FAIL("after run=2: %ld mappings, %ld before merging", unmerged, registered);
	if (closed > registered + 64)
		FAIL("after close: %ld mappings, %ld before merging", closed, registered);
	for (size_t i = 0; i < n; i += 7) {
		if (i % 2)
			CHECK_EQ((unsigned char)p[i * ps + 5], 0x3C);
		else
			CHECK(*(uint64_t *)(p + i * ps + 64) == i * 0x9E3779B97F4A7C15ull + 64);
	}
	printf("PASS real_unmerge_vmas_rejoin\n");
	return 0;
}

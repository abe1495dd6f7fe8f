/* SPDX-License-Identifier: MIT */
/*
 * real_smart_scan_skips_reads - with smart_scan=1, a page the scanner skips
 * is not read either (the kernel skips it before looking at its content).
 * 2048 pages of unique content are scanned 24 times: smart scan skips most
 * visits after the first few (pages_skipped), and the pages the library
 * copied (pages_read) are exactly the visits it made (pages_scanned), not
 * pages_scanned + pages_skipped as when every page was read before the
 * skip was decided.
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_smart_scan_skips_reads";
	size_t ps = page_size(), n = 2048;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ps; j += 8)
			*(uint64_t *)(p + i * ps + j) = (i + 1) * 0x9e3779b97f4a7c15ull ^ j;
	set(sp, "pages_to_scan", 100000);
	CHECK_EQ(samepage_scan_full(sp, 24), 0);

	long scanned = get(sp, "pages_scanned");
	long skipped = get(sp, "pages_skipped");
	long read = get(sp, "pages_read");

	printf("%s: pages_scanned %ld, pages_skipped %ld, pages_read %ld\n", real_test_name,
	       scanned, skipped, read);
	CHECK_EQ(scanned + skipped, 24 * (long)n);
	/* smart scan did skip: most of the later visits */
	if (skipped < 12 * (long)n)
		FAIL("only %ld visits skipped", skipped);
	/* every page has the same age, so each pass is skipped or visited
	 * whole: nothing is read along that is then skipped */
	CHECK_EQ(read, scanned);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS %s\n", real_test_name);
	return 0;
}

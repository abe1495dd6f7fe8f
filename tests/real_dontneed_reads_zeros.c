/* SPDX-License-Identifier: MIT */
/*
 * real_dontneed_reads_zeros - MADV_DONTNEED on a merged page that was
 * written (copy-on-write) and seen by the scanner reads zeros, as with the
 * kernel, even after its old store page was freed and reused by other
 * content (it used to read that other content).
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_dontneed_reads_zeros";
	size_t ps = page_size(), n = 8;
	struct samepage *sp = open_or_skip();
	char *a = samepage_alloc(sp, n * ps);

	CHECK(a);
	memset(a, 0x58, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), (long)n - 1);
	/* every copy written: the store page is freed once the scanner sees it */
	for (size_t i = 0; i < n; i++)
		memset(a + i * ps, (int)(0x80 + i), ps);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	/* other content merges, into the slot that was freed */
	char *b = samepage_alloc(sp, n * ps);

	CHECK(b);
	memset(b, 0x59, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), (long)n - 1);
	for (size_t i = 0; i < n; i++) {
		CHECK(madvise(a + i * ps, ps, MADV_DONTNEED) == 0);
		for (size_t j = 0; j < ps; j++)
			if (a[i * ps + j] != 0)
				FAIL("page %zu byte %zu reads %#x after MADV_DONTNEED, "
				     "expected 0", i, j, (unsigned char)a[i * ps + j]);
	}
	for (size_t j = 0; j < n * ps; j += 61)
		CHECK_EQ((unsigned char)b[j], 0x59);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS real_dontneed_reads_zeros\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_mprotect_readonly_kept - memory the application made read-only after
 * registering it stays read-only through a merge and after close: the
 * replacement mapping takes the protection the VMA has now, never the one
 * it had at registration (it used to become rw-p).
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_mprotect_readonly_kept";
	size_t ps = page_size(), n = 16;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);
	char perms[8], flags[512];

	CHECK(p);
	memset(p, 0x5A, n * ps);
	CHECK(mprotect(p, n * ps, PROT_READ) == 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), 15);
	for (size_t i = 0; i < n; i++) {
		CHECK(maps_file(p + i * ps) || !(pagemap(p + i * ps) >> 63));
		CHECK(vma_of(p + i * ps, perms, flags));
		if (strcmp(perms, "r--p"))
			FAIL("page %zu is %s after the merge, expected r--p", i, perms);
		CHECK_EQ((unsigned char)p[i * ps + 7], 0x5A);
	}
	CHECK_EQ(samepage_close(sp), 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(vma_of(p + i * ps, perms, flags));
		if (strcmp(perms, "r--p"))
			FAIL("page %zu is %s after close, expected r--p", i, perms);
		CHECK_EQ((unsigned char)p[i * ps + ps - 1], 0x5A);
	}
	check_all_private(p, n);
	printf("PASS real_mprotect_readonly_kept\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_mprotect_readwrite_kept - memory registered while read-only and made
 * writable by the application afterwards is writable after the merge: the
 * application's own write must not fault (it used to get SIGSEGV, the
 * replacement was r--p).
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_mprotect_readwrite_kept";
	size_t ps = page_size(), n = 16;
	struct samepage *sp = open_or_skip();
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char perms[8], flags[512];

	CHECK(p != MAP_FAILED);
	memset(p, 0x33, n * ps);
	CHECK(mprotect(p, n * ps, PROT_READ) == 0);
	CHECK_EQ(samepage_madvise(sp, p, n * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK(mprotect(p, n * ps, PROT_READ | PROT_WRITE) == 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 15);
	for (size_t i = 0; i < n; i++) {
		CHECK(vma_of(p + i * ps, perms, flags));
		if (strcmp(perms, "rw-p"))
			FAIL("page %zu is %s after the merge, expected rw-p", i, perms);
	}
	/* the application's own writes: a SIGSEGV here is the defect */
	for (size_t i = 0; i < n; i++)
		p[i * ps + 1] = (char)i;
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ((unsigned char)p[i * ps], 0x33);
		CHECK_EQ((unsigned char)p[i * ps + 1], i);
	}
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(vma_of(p, perms, flags));
	CHECK(!strcmp(perms, "rw-p"));
	printf("PASS real_mprotect_readwrite_kept\n");
	return 0;
}

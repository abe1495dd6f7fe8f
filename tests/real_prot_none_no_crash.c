/* SPDX-License-Identifier: MIT */
/*
 * real_prot_none_no_crash - mprotect(PROT_NONE) on registered memory never
 * crashes the process (the scanner used to take SIGSEGV reading it, with
 * samepage_scan_full and with run=1); the pages keep PROT_NONE and their
 * content, and read back intact once the application opens them again.
 */
#include "real_util.h"

#include <time.h>

int main(void)
{
	real_test_name = "real_prot_none_no_crash";
	size_t ps = page_size(), n = 64;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);
	char perms[8], flags[512];

	CHECK(p);
	for (size_t i = 0; i < n; i++)
		memset(p + i * ps, (int)(i % 4) + 1, ps);
	CHECK(mprotect(p, n * ps, PROT_NONE) == 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	/* the merge keeps the protection it found */
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), 60);
	CHECK(vma_of(p, perms, flags));
	if (strcmp(perms, "---p"))
		FAIL("merged PROT_NONE page is %s, expected ---p", perms);
	/* the scanner thread too */
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	set(sp, "run", 0);
	CHECK(mprotect(p, n * ps, PROT_READ | PROT_WRITE) == 0);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ps; j += 511)
			CHECK_EQ((unsigned char)p[i * ps + j], i % 4 + 1);
	CHECK(mprotect(p, n * ps, PROT_NONE) == 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(vma_of(p, perms, flags));
	CHECK(!strcmp(perms, "---p"));
	CHECK(mprotect(p, n * ps, PROT_READ) == 0);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ((unsigned char)p[i * ps + 100], i % 4 + 1);
	printf("PASS real_prot_none_no_crash\n");
	return 0;
}

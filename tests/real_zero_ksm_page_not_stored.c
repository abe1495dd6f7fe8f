/* SPDX-License-Identifier: MIT */
/*
 * real_zero_ksm_page_not_stored - with use_zero_pages=0 (the default),
 * pages of zeros merge into one KSM page, as in the kernel; samepage maps
 * that page anonymously (it reads zeros) and never allocates it in its
 * store: the store memfd holds no block for it, even after the scanner
 * compared pages against it many times.
 */
#include "real_util.h"

#include <dirent.h>
#include <sys/stat.h>

/* Blocks allocated in the library's store memfds (found by name). */
static long store_blocks(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long blocks = 0;
	int stores = 0;

	CHECK(d);
	while ((de = readdir(d))) {
		char path[300], target[256];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strstr(target, "memfd:samepage-node"))
			continue;
		struct stat st;

		if (stat(path, &st) == 0) {
			blocks += st.st_blocks;
			stores++;
		}
	}
	closedir(d);
	if (!stores)
		FAIL("no store memfd found in /proc/self/fd");
	return blocks;
}

int main(void)
{
	real_test_name = "real_zero_ksm_page_not_stored";
	size_t ps = page_size(), n = 256;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	memset(p, 0, n * ps);			/* present pages of zeros */
	CHECK_EQ(samepage_scan_full(sp, 6), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), (long)n - 1);
	CHECK_EQ(get(sp, "ksm_zero_pages"), 0);
	CHECK_EQ(store_blocks(), 0);
	for (size_t j = 0; j < n * ps; j += 64)
		CHECK_EQ(p[j], 0);
	p[5 * ps] = 7;				/* copy-on-write still right */
	CHECK_EQ(p[5 * ps], 7);
	CHECK_EQ(p[6 * ps], 0);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS %s\n", real_test_name);
	return 0;
}

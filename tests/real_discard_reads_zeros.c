/* SPDX-License-Identifier: MIT */
/*
 * real_discard_reads_zeros - samepage_discard() is MADV_DONTNEED for
 * registered memory: merged pages, pages written since their merge and
 * plain pages all read zeros afterwards (plain MADV_DONTNEED on a merged
 * page reads its merged content again), the memory stays registered and
 * merges again, and memory never registered is refused (-EINVAL, intact).
 */
#include "real_util.h"

int main(void)
{
	real_test_name = "real_discard_reads_zeros";
	size_t ps = page_size(), n = 32;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	memset(p, 0x6B, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), (long)n - 1);
	p[3 * ps] = 1;				/* one written since */
	CHECK_EQ(samepage_discard(sp, p, n * ps), 0);
	/* nothing present any more, as after MADV_DONTNEED: nothing merged
	 * (scanned before the pages are read: a read would fault them in) */
	for (size_t i = 0; i < n; i++)
		CHECK(!(pagemap(p + i * ps) >> 63));
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	for (size_t j = 0; j < n * ps; j++)
		if (p[j])
			FAIL("byte %zu reads %#x after samepage_discard", j, (unsigned char)p[j]);
	for (size_t i = 0; i < n; i++)
		CHECK(!maps_file(p + i * ps));
	memset(p, 0x2E, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), (long)n - 1);
	for (size_t j = 0; j < n * ps; j += 17)
		CHECK_EQ((unsigned char)p[j], 0x2E);

	char *q = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(q != MAP_FAILED);
	q[0] = 9;
	CHECK_EQ(samepage_discard(sp, q, ps), -EINVAL);
	CHECK_EQ(q[0], 9);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS real_discard_reads_zeros\n");
	return 0;
}

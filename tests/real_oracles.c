/* SPDX-License-Identifier: MIT */
/*
 * real_oracles - the kernel's own KSM oracles (ksm-behaviour.md) on real
 * memory, with physical-page identity checked through /proc/self/pagemap.
 */
#include "real_util.h"

static size_t ps;

static char *region(struct samepage *sp, size_t npages, int byte)
{
	char *p = samepage_alloc(sp, npages * ps);

	if (!p)
		FAIL("samepage_alloc: %s (%s)", strerror(errno), samepage_last_error());
	memset(p, byte, npages * ps);
	return p;
}

#define counters(sp, shared, sharing) do { \
	CHECK_EQ(get(sp, "pages_shared"), shared); \
	CHECK_EQ(get(sp, "pages_sharing"), sharing); \
} while (0)

/* 10 pages of 0x2A -> after 2 full scans shared 1 sharing 9, same PFN. */
static void ten_pages(void)
{
	struct samepage *sp = open_or_skip();
	char *p = region(sp, 10, 0x2A);

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	counters(sp, 1, 9);
	if (pfns_visible()) {
		uint64_t pf = pfn_of(p);

		CHECK(pf != 0);
		for (int i = 1; i < 10; i++)
			CHECK_EQ(pfn_of(p + i * ps), pf);
	}
	for (int i = 0; i < 10; i++)
		for (size_t j = 0; j < ps; j++)
			if (p[i * ps + j] != 0x2A)
				FAIL("content changed at page %d byte %zu", i, j);
	CHECK_EQ(samepage_free(sp, p, 10 * ps), 0);
	CHECK_EQ(samepage_close(sp), 0);
}

/* 2 merged pages; write byte 0 of each differently; 1 more scan -> 0/0. */
static void cow_breaks(void)
{
	struct samepage *sp = open_or_skip();
	char *p = region(sp, 2, 0x2A);

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	counters(sp, 1, 1);
	p[0] = 1;
	p[ps] = 2;
	CHECK_EQ(p[0], 1);
	CHECK_EQ(p[ps], 2);
	CHECK_EQ(p[1], 0x2A);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	counters(sp, 0, 0);
	if (pfns_visible())
		CHECK(pfn_of(p) != pfn_of(p + ps));
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(p[0], 1);
	CHECK_EQ(p[ps], 2);
	munmap(p, 2 * ps);
}

/* 10 zero-filled pages, use_zero_pages 0 / 1. */
static void zero_pages(int use_zero)
{
	struct samepage *sp = open_or_skip();

	set(sp, "use_zero_pages", (unsigned long)use_zero);
	char *p = region(sp, 10, 0);

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	if (use_zero) {
		counters(sp, 0, 0);
		CHECK_EQ(get(sp, "ksm_zero_pages"), 10);
	} else {
		counters(sp, 1, 9);
	}
	for (int i = 0; i < 10; i++)
		for (size_t j = 0; j < ps; j++)
			if (p[i * ps + j])
				FAIL("zero page %d reads %d", i, p[i * ps + j]);
	/* a write to a zero-merged page is private */
	p[3 * ps + 7] = 9;
	CHECK_EQ(p[3 * ps + 7], 9);
	CHECK_EQ(p[4 * ps + 7], 0);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	if (use_zero) {
		CHECK_EQ(get(sp, "ksm_zero_pages"), 9);
	} else {
		counters(sp, 1, 8);
	}
	CHECK_EQ(samepage_madvise(sp, p, 10 * ps, SAMEPAGE_UNMERGEABLE), 0);
	check_all_private(p, 10);
	CHECK_EQ(p[3 * ps + 7], 9);
	CHECK_EQ(samepage_close(sp), 0);
	munmap(p, 10 * ps);
}

/* 512 identical pages, max_page_sharing 256 -> shared 2 sharing 510. */
static void chains(void)
{
	struct samepage *sp = open_or_skip();
	char *p = region(sp, 512, 0x2A);

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* (the dups fill up over the scans, as in the kernel's test) */
	for (int i = 0; i < 4 && get(sp, "pages_sharing") != 510; i++)
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
	counters(sp, 2, 510);
	CHECK_EQ(get(sp, "stable_node_chains"), 1);
	CHECK_EQ(get(sp, "stable_node_dups"), 2);
	if (pfns_visible()) {
		uint64_t a = pfn_of(p), b = 0;
		int na = 0;

		for (int i = 0; i < 512; i++) {
			uint64_t f = pfn_of(p + i * ps);

			if (f == a)
				na++;
			else if (!b)
				b = f;
			else
				CHECK_EQ(f, b);
		}
		CHECK(na == 256 || na == 256);
	}
	CHECK_EQ(samepage_close(sp), 0);
	check_all_private(p, 512);
	for (size_t j = 0; j < 512 * ps; j++)
		if (p[j] != 0x2A)
			FAIL("content changed at byte %zu", j);
	munmap(p, 512 * ps);
}

/* Merged range, UNMERGEABLE (also after discarding half): no two pages
 * share a physical page; content intact. */
static void unmerge(void)
{
	struct samepage *sp = open_or_skip();
	size_t n = 64;
	char *p = region(sp, n, 0);

	for (size_t i = 0; i < n; i++)
		memset(p + i * ps, (int)(i % 4) + 1, ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	counters(sp, 4, 60);
	CHECK_EQ(samepage_madvise(sp, p, n * ps, SAMEPAGE_UNMERGEABLE), 0);
	check_all_private(p, n);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ps; j++)
			if (p[i * ps + j] != (char)(i % 4 + 1))
				FAIL("page %zu byte %zu changed", i, j);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	counters(sp, 0, 0);

	/* again, after discarding half of it through the library */
	CHECK_EQ(samepage_madvise(sp, p, n * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	counters(sp, 4, 60);
	CHECK_EQ(samepage_free(sp, p + n / 2 * ps, n / 2 * ps), 0);
	CHECK_EQ(samepage_madvise(sp, p, n / 2 * ps, SAMEPAGE_UNMERGEABLE), 0);
	check_all_private(p, n / 2);
	for (size_t i = 0; i < n / 2; i++)
		for (size_t j = 0; j < ps; j++)
			if (p[i * ps + j] != (char)(i % 4 + 1))
				FAIL("page %zu byte %zu changed", i, j);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	counters(sp, 0, 0);
	CHECK_EQ(get(sp, "store_pages"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	munmap(p, n / 2 * ps);
}

int main(void)
{
	real_test_name = "real_oracles";
	ps = page_size();
	ten_pages();
	printf("ten_pages ok\n");
	cow_breaks();
	printf("cow_breaks ok\n");
	zero_pages(0);
	zero_pages(1);
	printf("zero_pages ok\n");
	chains();
	printf("chains ok\n");
	unmerge();
	printf("unmerge ok\n");
	return 0;
}

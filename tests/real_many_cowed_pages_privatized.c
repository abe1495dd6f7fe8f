/* SPDX-License-Identifier: MIT */
/*
 * real_many_cowed_pages_privatized - every merged page the application
 * writes is made private again, however many at once.  NPAIR pairs of
 * equal pages are merged (NPAIR store pages), then all 2 * NPAIR pages are
 * written with content of their own; the next passes see far more copies
 * than one flush privatizes (SP_COW_MAX, 512: the others are seen again at
 * the next pass).  Within n / 512 + 4 passes no page maps the store any
 * more, the store is empty (store_pages 0), nothing is shared,
 * and every page reads what was written.  Before, pages seen past the
 * 512th of a batch were marked copied and never privatized: their store
 * pages stayed for as long as the mapping.
 */
#include "real_util.h"

#define NPAIR	2048

int main(void)
{
	real_test_name = "real_many_cowed_pages_privatized";
	size_t ps = page_size(), n = 2 * NPAIR;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < ps; k += 8)
			*(uint64_t *)(p + i * ps + k) = ((i % NPAIR) << 20 | k) ^ 0x6c00000000000000ull;
	set(sp, "pages_to_scan", 100000);
	set(sp, "smart_scan", 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPAIR);
	CHECK_EQ(get(sp, "pages_sharing"), NPAIR);
	CHECK_EQ(get(sp, "store_pages"), NPAIR);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < ps; k += 8)
			*(uint64_t *)(p + i * ps + k) = (i << 20 | k) ^ 0x6d00000000000000ull;
	/* (512 privatized per flush, the others seen again at the next pass) */
	int passes = 0;
	long store;

	do {
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		store = get(sp, "store_pages");
	} while (store && ++passes < (int)(n / 512) + 4);

	printf("%s: %d pages written after merging: store_pages %ld after %d passes "
	       "(quarantined %ld), pages_shared %ld\n", real_test_name, (int)n, store, passes + 1,
	       get(sp, "store_quarantined"), get(sp, "pages_shared"));
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(store, 0);
	check_all_private(p, n);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < ps; k += 8)
			CHECK_EQ(*(uint64_t *)(p + i * ps + k), (i << 20 | k) ^ 0x6d00000000000000ull);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS %s\n", real_test_name);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_state_outside_registered - the library's own state never lives in
 * memory the application registers.  The application registers its whole
 * brk heap (where malloc hands out memory, 8 MiB of zero pages free in it)
 * plus a zero-filled buffer, and every zero page is merged: the library
 * never writes a page it write-protected for a merge.  Each such write
 * would reach the fault reader as a parked writer (writers_parked) and
 * cost its run the merge (runs_aborted); this program writes nothing
 * meanwhile, so both stay 0.  The engine runs in this thread
 * (samepage_scan_full), whose malloc arena is the brk heap: the engine's
 * rmap items and stable nodes, the ranges' records and the store's slots
 * would all be allocated there if the library used malloc.
 */
#include "real_util.h"

#include <malloc.h>

#define ZERO_BYTES	(8u << 20)	/* zero pages left free in the heap */
#define BUF_BYTES	(16u << 20)	/* the samepage_alloc buffer */

int main(void)
{
	real_test_name = "real_state_outside_registered";
	size_t ps = page_size();

	/* everything in brk, and a freed block kept there, its pages
	 * present and zero: where malloc hands out memory next */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	/* (through a pointer the compiler cannot see through: malloc and
	 * memset with 0 would become a calloc that writes nothing) */
	static void *(*volatile fill)(void *, int, size_t) = memset;
	char *zeros = malloc(ZERO_BYTES);

	CHECK(zeros);
	fill(zeros, 0, ZERO_BYTES);
	uintptr_t z = (uintptr_t)zeros;

	free(zeros);

	struct samepage *sp = open_or_skip();
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned long hs = 0, he = 0;

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		/* (the heap may be several mappings: take them all) */
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &s, &e) == 2) {
			if (!hs || s < hs)
				hs = s;
			if (e > he)
				he = e;
		}
	}
	fclose(f);
	if (he <= hs || z < hs || z >= he) {
		printf("SKIP %s: malloc does not use the brk heap here (a sanitizer's "
		       "allocator)\n", real_test_name);
		return 77;
	}
	char *buf = samepage_alloc(sp, BUF_BYTES);

	CHECK(buf);
	memset(buf, 0, BUF_BYTES);
	CHECK_EQ(samepage_madvise(sp, (void *)hs, he - hs, SAMEPAGE_MERGEABLE), 0);
	set(sp, "pages_to_scan", 1000000);	/* a full scan in one batch */
	CHECK_EQ(samepage_scan_full(sp, 6), 0);

	long merges = get(sp, "merges");
	long parked = get(sp, "writers_parked");
	long aborted = get(sp, "runs_aborted");

	/* the heap's zero pages were merged too (write-protected first) */
	if (merges < (long)((BUF_BYTES + ZERO_BYTES / 2) / ps))
		FAIL("only %ld pages merged: the heap's zero pages were not", merges);
	if (parked || aborted)
		FAIL("the library wrote pages it had write-protected in the registered "
		     "heap (writers_parked %ld, runs_aborted %ld): its own state is there",
		     parked, aborted);
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS %s (%ld pages merged, heap %lu pages)\n", real_test_name, merges,
	       (he - hs) / ps);
	return 0;
}

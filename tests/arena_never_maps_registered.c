/* SPDX-License-Identifier: MIT */
/*
 * arena_never_maps_registered - the library's own allocator
 * (src/linux/arena.c) never keeps a mapping inside a registered range,
 * even where the application unmapped registered memory without telling
 * the library (the range is still recorded, and the kernel is about to
 * reuse the hole): with a 1 GiB hole reported as registered, no block,
 * small or large, lands in it, and each allocation still succeeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "linux_internal.h"
#include "test_check.h"

#define HOLE (1ul << 30)

static uintptr_t hole;
static int refused;

static bool registered(void *arg, uintptr_t lo, uintptr_t hi)
{
	(void)arg;
	if (lo < hole + HOLE && hi > hole) {
		refused++;
		return true;
	}
	return false;
}

int main(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	static const size_t sizes[] = { 100, 5000, 200u << 20, 64, 600u << 20, 1u << 20 };
	void *blk[sizeof(sizes) / sizeof(sizes[0])];
	struct sp_arena a;

	/* the hole: where the kernel places the next mappings */
	void *h = mmap(NULL, HOLE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	CHECK(h != MAP_FAILED);
	CHECK_EQ(munmap(h, HOLE), 0);
	hole = (uintptr_t)h;
	sp_arena_init(&a, page, registered, NULL);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uintptr_t p = (uintptr_t)(blk[k] = sp_arena_alloc(&a, sizes[k]));

		CHECK(p);
		if (p < hole + HOLE && p + sizes[k] > hole)
			FAIL("a block of %zu bytes at %#lx is in the registered range "
			     "[%#lx, %#lx)", sizes[k], (unsigned long)p, (unsigned long)hole,
			     (unsigned long)(hole + HOLE));
		memset(blk[k], 1, sizes[k] < (1u << 20) ? sizes[k] : 4096);
	}
	for (int r = 0; r < a.nregion; r++) {
		uintptr_t b = (uintptr_t)a.region[r].base;

		if (b < hole + HOLE && b + (a.region[r].pages * page) > hole)
			FAIL("region %d at %#lx overlaps the registered range", r,
			     (unsigned long)b);
	}
	/* (0 when this kernel placed nothing in the hole: nothing was tried) */
	printf("arena_never_maps_registered: %d mappings refused, %d regions\n", refused,
	       a.nregion);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		sp_arena_free(&a, blk[k]);
	sp_arena_release(&a);
	printf("PASS arena_never_maps_registered\n");
	return 0;
}

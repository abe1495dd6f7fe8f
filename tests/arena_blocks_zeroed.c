/* SPDX-License-Identifier: MIT */
/*
 * arena_blocks_zeroed - every block the library's own allocator
 * (src/linux/arena.c) hands out reads zeros, whether its memory is fresh
 * or was another block's before (objects of every size class, short and
 * long runs of pages), and blocks alive at the same time never overlap
 * (each keeps its own fill until it is freed).  Random allocations and
 * frees; prints its seed, SAMEPAGE_SEED replays one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"
#include "test_check.h"

#define NBLK	1500
#define OPS	12000

static const size_t sizes[] = {
	1, 16, 17, 48, 100, 200, 777, 1024, 2048, 2049, 4096, 5000, 70000, 300000,
};

static struct {
	unsigned char *p;
	size_t n;
} blk[NBLK];

static uint64_t rng;

static uint64_t next_rand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return rng >> 17;
}

/* Block @k still holds its own fill. */
static void check_fill(int k)
{
	for (size_t i = 0; i < blk[k].n; i++)
		if (blk[k].p[i] != (unsigned char)(k | 1))
			FAIL("block %d (%zu bytes at %p) byte %zu reads %#x: another block "
			     "overlaps it", k, blk[k].n, (void *)blk[k].p, i, blk[k].p[i]);
}

int main(void)
{
	const char *s = getenv("SAMEPAGE_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct sp_arena a;

	printf("arena_blocks_zeroed: seed %llu\n", (unsigned long long)seed);
	rng = seed;
	sp_arena_init(&a, page, NULL, NULL);
	for (int op = 0; op < OPS; op++) {
		int k = (int)(next_rand() % NBLK);

		if (blk[k].p) {
			check_fill(k);
			CHECK(sp_arena_owns(&a, (uintptr_t)blk[k].p));
			CHECK(sp_arena_owns(&a, (uintptr_t)blk[k].p + blk[k].n - 1));
			sp_arena_free(&a, blk[k].p);
			blk[k].p = NULL;
			continue;
		}
		size_t n = sizes[next_rand() % (sizeof(sizes) / sizeof(sizes[0]))];
		unsigned char *p = sp_arena_alloc(&a, n);

		CHECK(p);
		CHECK_EQ((uintptr_t)p % 16, 0);
		for (size_t i = 0; i < n; i++)
			if (p[i])
				FAIL("op %d: a new block of %zu bytes at %p reads %#x at "
				     "byte %zu", op, n, (void *)p, p[i], i);
		memset(p, k | 1, n);
		blk[k].p = p;
		blk[k].n = n;
	}
	for (int k = 0; k < NBLK; k++) {
		if (!blk[k].p)
			continue;
		check_fill(k);
		sp_arena_free(&a, blk[k].p);
	}
	CHECK_EQ(a.live, 0);
	int x = 0;

	CHECK(!sp_arena_owns(&a, (uintptr_t)&x));
	sp_arena_release(&a);
	printf("PASS arena_blocks_zeroed\n");
	return 0;
}

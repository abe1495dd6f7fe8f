/* SPDX-License-Identifier: MIT */
/*
 * arena_realloc_keeps_content - a block of the library's own allocator
 * (src/linux/arena.c) grown by sp_arena_realloc() keeps every byte it
 * held, from a small object to many pages, whether it grows in place or
 * moves (another block allocated after it each time, freed every other
 * time, so that both happen).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "linux_internal.h"
#include "test_check.h"

int main(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct sp_arena a;
	unsigned char *p = NULL;
	size_t n = 0;
	int moved = 0, in_place = 0, nkept = 0;
	void *kept[64];

	sp_arena_init(&a, page, NULL, NULL);
	for (size_t want = 8; want <= (8u << 20); want = want * 3 / 2 + 8) {
		unsigned char *q = sp_arena_realloc(&a, p, want);

		CHECK(q);
		if (p && q == p)
			in_place++;
		else if (p)
			moved++;
		for (size_t i = 0; i < n; i++)
			if (q[i] != (unsigned char)(i * 7 + i / 4096))
				FAIL("grown from %zu to %zu bytes: byte %zu reads %#x", n,
				     want, i, q[i]);
		for (size_t i = n; i < want; i++)
			q[i] = (unsigned char)(i * 7 + i / 4096);
		p = q;
		n = want;
		/* something right after it, kept every other time */
		void *other = sp_arena_alloc(&a, want / 2 + 1);

		CHECK(other);
		if (n % 2 || nkept == 64)
			sp_arena_free(&a, other);
		else
			kept[nkept++] = other;
	}
	printf("arena_realloc_keeps_content: %d moves, %d in place\n", moved, in_place);
	CHECK(moved > 0);
	CHECK(in_place > 0);
	while (nkept > 0)
		sp_arena_free(&a, kept[--nkept]);
	sp_arena_free(&a, p);
	CHECK_EQ(a.live, 0);
	sp_arena_release(&a);
	printf("PASS arena_realloc_keeps_content\n");
	return 0;
}

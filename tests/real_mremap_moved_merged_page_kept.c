/* SPDX-License-Identifier: MIT */
/*
 * real_mremap_moved_merged_page_kept - a merged page is a mapping of the
 * store of its own, and the application may move it with mremap(), which
 * the library never learns of.  Two KSM pages, of 4 pages each:
 *   A: page 0 moved with MREMAP_DONTUNMAP (its old place stays a mapping
 *      of the store, the page itself at a new address), then pages 0-3
 *      written: no record counts the store page any more;
 *   B: page 4 moved to another address (its old place unmapped), pages 5-7
 *      written, the library closed.
 * Meanwhile other content merges (new store pages wanted).  The moved
 * mappings read what they read before, at every step and after
 * samepage_close (before: the store page was punched once no record
 * counted it, and they read zeros; or it was given to other content).  A's
 * store page is kept while the moved mapping maps it (counter
 * store_pages_mapped_elsewhere 1, seen in /proc/self/maps) and freed once
 * the application unmapped it.
 */
#include "real_util.h"

#define NP	16	/* pages 0-3 equal (A), 4-7 equal (B), 8-15 unique */
#define NQ	8	/* other content merged afterwards: 4 pairs */

static char content(size_t i)
{
	return i < 4 ? 0x41 : i < 8 ? 0x42 : (char)(0x60 + i);
}

static void check_page(const char *m, size_t ps, char want, const char *what)
{
	for (size_t k = 0; k < ps; k++)
		if (m[k] != want)
			FAIL("%s: byte %zu reads %#x, the page held %#x", what, k,
			     (unsigned char)m[k], (unsigned char)want);
}

/* Does @a map the store (read first: a mapping made is not faulted in)? */
static bool maps_store(const char *a)
{
	(void)*(volatile const char *)a;
	return maps_file(a);
}

/* scan until @name reads @want */
static long scan_until(struct samepage *sp, const char *name, long want)
{
	long v = get(sp, name);

	for (int k = 0; k < 100 && v != want; k++) {
		usleep(30 * 1000);
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		v = get(sp, name);
	}
	return v;
}

int main(void)
{
	real_test_name = "real_mremap_moved_merged_page_kept";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();

	set(sp, "pages_to_scan", 100000);
	set(sp, "smart_scan", 0);
	char *p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q = mmap(NULL, NQ * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED && q != MAP_FAILED);
	for (size_t i = 0; i < NP; i++)
		memset(p + i * ps, content(i), ps);
	for (size_t i = 0; i < NQ; i++)
		memset(q + i * ps, (int)(0x30 + i / 2), ps);	/* pairs, merged later */
	CHECK_EQ(samepage_madvise(sp, p, NP * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), 2);
	CHECK_EQ(get(sp, "pages_sharing"), 6);
	CHECK_EQ(get(sp, "store_pages"), 2);
	CHECK(maps_store(p) && maps_store(p + 4 * ps));

	char *c = mremap(p, ps, ps, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);

	if (c == MAP_FAILED)
		skip_test("mremap(MREMAP_DONTUNMAP) of a file mapping refused (Linux < 5.13?)");
	char *b = mmap(NULL, ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(b != MAP_FAILED);
	CHECK(mremap(p + 4 * ps, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, b) == b);
	check_page(c, ps, 0x41, "A's page moved with MREMAP_DONTUNMAP");
	check_page(b, ps, 0x42, "B's page moved");

	/* A: no record counts its store page any more */
	for (size_t i = 0; i < 8; i++)
		if (i != 4)
			p[i * ps] = (char)(0x50 + i);	/* (each its own: none merges) */
	/* other content wants store pages */
	CHECK_EQ(samepage_madvise(sp, q, NQ * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	long kept = scan_until(sp, "store_pages_mapped_elsewhere", 1);

	printf("A's page written, B's moved: store_pages %ld, store_pages_mapped_elsewhere %ld, "
	       "store_maps_checks %ld, store_quarantined %ld\n", get(sp, "store_pages"), kept,
	       get(sp, "store_maps_checks"), get(sp, "store_quarantined"));
	check_page(c, ps, 0x41, "A's moved page, after A's pages were written");
	check_page(b, ps, 0x42, "B's moved page");
	CHECK_EQ(kept, 1);
	CHECK_EQ(get(sp, "store_quarantined"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), NQ / 2);
	/* B's (its old place's record still counts it), A's kept, the pairs */
	CHECK_EQ(get(sp, "store_pages"), 2 + NQ / 2);
	CHECK_EQ(get(sp, "pages_shared"), 1 + NQ / 2);
	for (size_t i = 0; i < NP; i++)
		if (i != 4 && (p[i * ps] != (i < 8 ? (char)(0x50 + i) : content(i)) ||
			       p[i * ps + 1] != content(i)))
			FAIL("page %zu reads %#x %#x", i, (unsigned char)p[i * ps],
			     (unsigned char)p[i * ps + 1]);

	/* the application lets A's go: its store page is freed */
	CHECK(munmap(c, ps) == 0);
	CHECK_EQ(scan_until(sp, "store_quarantined", 0), 0);
	CHECK_EQ(get(sp, "store_pages_mapped_elsewhere"), 0);
	CHECK_EQ(get(sp, "store_pages"), 1 + NQ / 2);

	/* B's across close */
	CHECK_EQ(samepage_close(sp), 0);
	check_page(b, ps, 0x42, "B's moved page, after close");
	for (size_t i = 0; i < NQ; i++)
		check_page(q + i * ps, ps, (char)(0x30 + i / 2), "q after close");
	printf("PASS real_mremap_moved_merged_page_kept\n");
	return 0;
}

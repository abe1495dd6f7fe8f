/* SPDX-License-Identifier: MIT */
/*
 * arena.c - the library's own memory.
 *
 * Everything samepage keeps (the engine's objects, through the core's
 * zalloc/free hooks; the registered ranges and their records; the store's
 * slot arrays; the pagemap cache; the lists of VMAs) lives in mappings of
 * its own, never in the malloc heap.  The application may register its
 * heap, or any of its anonymous memory, and the merge protocol
 * write-protects pages there: a page the library writes must never be one
 * of them.  (struct samepage and the page buffers have mappings of their
 * own as well: api.c, os_self.c.)
 *
 * Layout.  Memory comes from a few large regions (mmap with MAP_NORESERVE:
 * a page costs nothing until it is touched), the first SP_ARENA_FIRST
 * bytes long, each next one twice as long up to SP_ARENA_STEP_MAX, or as
 * long as one block needs.  The first pages of a region describe it: one
 * map entry per page (what the page holds, AP_* below) and two bitmaps
 * (pages in use; pages that may hold old content).  A block larger than
 * the largest size class is a run of whole pages, found first fit; a
 * smaller one is an object of its size class, carved from a slab of
 * SP_ARENA_SLAB bytes and kept on the class's free list once freed (slabs
 * stay until the arena is released).  A freed run of SP_ARENA_RETURN
 * pages or more goes back to the system (MADV_DONTNEED) and reads zeros
 * again; other freed memory is cleared when it is handed out again.  Every
 * block is handed out zeroed, and sp_arena_free() finds a block's size
 * from the map entry of its page.
 *
 * Never registered.  sp_arena_owns() tells whether an address is in a
 * region, and registering memory skips those pages (api.c).  A region
 * mapped later could land where the application had registered memory
 * and unmapped it since (the library sees munmap only through /proc): such
 * a mapping is never taken (region_add).  So no page of the arena is ever
 * inside a registered range, whichever came first.
 *
 * No lock of its own: every allocation and every free happens under the
 * engine lock (sp->lock), or while no other thread of the handle runs
 * (open, close).  The fault reader never allocates.
 *
 * Under AddressSanitizer freed objects are poisoned (a use after free or
 * a double free is reported as in the heap), and releasing an arena with
 * blocks still handed out aborts: LeakSanitizer cannot see leaks here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "linux_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define arena_poison(p, n)	ASAN_POISON_MEMORY_REGION(p, n)
#define arena_unpoison(p, n)	ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ARENA_ASAN 0
#define arena_poison(p, n)	do { (void)(p); (void)(n); } while (0)
#define arena_unpoison(p, n)	do { (void)(p); (void)(n); } while (0)
#endif

#define SP_ARENA_FIRST		(64ul << 20)	/* bytes of the first region */
#define SP_ARENA_STEP_MAX	(4ul << 30)	/* regions grow up to this */
#define SP_ARENA_SLAB		(64ul << 10)	/* bytes of a slab of small objects */
#define SP_ARENA_RETURN		16		/* freed runs this long go back */
#define SP_ARENA_POISON_MAX	256		/* (ASan) longer freed runs: not poisoned */
#define SP_ARENA_TRIES		8		/* mappings tried for one region */

/* Map entries: a kind in the top 4 bits, a value below. */
enum {
	AP_NONE,	/* free, or inside a block (not its first page) */
	AP_META,	/* the region's map and bitmaps */
	AP_SLAB,	/* a page of a slab; value: the size class */
	AP_BLOCK,	/* first page of a block; value: its length in pages */
};
#define AP_KIND(e)	((e) >> 28)
#define AP_VAL(e)	((e) & 0x0fffffffu)
#define AP_VAL_MAX	0x0fffffffu
#define AP(kind, val)	((uint32_t)(kind) << 28 | (uint32_t)(val))

/* Object sizes of the small classes (multiples of 16: any type fits). */
static const uint16_t class_size[SP_ARENA_CLASSES] = {
	16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
};
#define SMALL_MAX 2048

/* A programming error of the library (a free of something not ours):
 * fatal where a sanitizer would have caught it, ignored otherwise. */
static void arena_bug(const char *what, const void *p)
{
	if (ARENA_ASAN) {
		fprintf(stderr, "samepage: arena: %s %p\n", what, p);
		abort();
	}
}

void sp_arena_init(struct sp_arena *a, size_t page,
		   bool (*registered)(void *arg, uintptr_t lo, uintptr_t hi), void *arg)
{
	memset(a, 0, sizeof(*a));
	a->page = page;
	while ((1ul << a->page_shift) < page)
		a->page_shift++;
	a->next_bytes = SP_ARENA_FIRST;
	a->registered = registered;
	a->arg = arg;
}

/* ------------------------------------------------------------------------
 * Bitmaps.
 * --------------------------------------------------------------------- */
static inline bool bit(const uint64_t *b, size_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void bits_set(uint64_t *b, size_t i, size_t n, bool on)
{
	size_t e = i + n;

	while (i < e) {
		if (i % 64 == 0 && e - i >= 64) {
			b[i / 64] = on ? ~0ull : 0;
			i += 64;
			continue;
		}
		if (on)
			b[i / 64] |= 1ull << (i % 64);
		else
			b[i / 64] &= ~(1ull << (i % 64));
		i++;
	}
}

/* Are pages [i, i + n) all clear in @b? */
static bool bits_clear(const uint64_t *b, size_t i, size_t n)
{
	size_t e = i + n;

	while (i < e) {
		if (i % 64 == 0 && e - i >= 64) {
			if (b[i / 64])
				return false;
			i += 64;
			continue;
		}
		if (bit(b, i))
			return false;
		i++;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Regions.
 * --------------------------------------------------------------------- */
/* Pages of metadata of a region of @pages pages. */
static size_t meta_pages(const struct sp_arena *a, size_t pages)
{
	size_t words = (pages + 63) / 64;
	size_t bytes = pages * sizeof(uint32_t) + 2 * words * sizeof(uint64_t) + 8;

	return (bytes + a->page - 1) >> a->page_shift;
}

static struct sp_arena_region *region_of(const struct sp_arena *a, uintptr_t addr)
{
	int lo = 0, hi = a->nregion;

	while (lo < hi) {		/* first region above addr */
		int mid = (lo + hi) / 2;

		if ((uintptr_t)a->region[mid].base > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == 0)
		return NULL;
	const struct sp_arena_region *r = &a->region[lo - 1];

	if (addr - (uintptr_t)r->base >= r->pages << a->page_shift)
		return NULL;
	return (struct sp_arena_region *)r;
}

bool sp_arena_owns(const struct sp_arena *a, uintptr_t addr)
{
	return region_of(a, addr) != NULL;
}

/*
 * A new region with room for a block of @need pages.  Returns 0 or
 * -ENOMEM.  A mapping the kernel places in a registered range (memory the
 * application unmapped without telling us) is not taken: it is held while
 * the next, larger one is tried, so that the kernel does not place that
 * one in the same hole, and then given back.  (The region array is kept
 * in address order: pointers into it do not survive this.)
 */
static int region_add(struct sp_arena *a, size_t need)
{
	struct { char *p; size_t bytes; } held[SP_ARENA_TRIES];
	size_t pages = a->next_bytes >> a->page_shift;
	char *base = NULL;
	size_t bytes = 0;
	int nheld = 0;

	if (a->nregion == SP_ARENA_REGIONS)
		return -ENOMEM;
	while (nheld < SP_ARENA_TRIES) {
		while (pages < need + meta_pages(a, pages))
			pages = need + meta_pages(a, pages) + 1;
		bytes = pages << a->page_shift;
		base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (base == MAP_FAILED) {
			base = NULL;
			break;
		}
		if (!a->registered ||
		    !a->registered(a->arg, (uintptr_t)base, (uintptr_t)base + bytes))
			break;
		held[nheld].p = base;
		held[nheld++].bytes = bytes;
		base = NULL;
		pages *= 2;
	}
	while (nheld > 0) {
		nheld--;
		munmap(held[nheld].p, held[nheld].bytes);
	}
	if (!base)
		return -ENOMEM;

	int k = a->nregion;

	while (k > 0 && a->region[k - 1].base > base) {
		a->region[k] = a->region[k - 1];
		k--;
	}
	a->nregion++;
	struct sp_arena_region *r = &a->region[k];
	size_t words = (pages + 63) / 64;
	size_t meta = meta_pages(a, pages);
	uintptr_t at = ((uintptr_t)base + pages * sizeof(uint32_t) + 7) & ~(uintptr_t)7;

	*r = (struct sp_arena_region){
		.base = base, .pages = pages, .map = (uint32_t *)base,
		.used = (uint64_t *)at, .dirty = (uint64_t *)at + words, .low = meta,
	};
	bits_set(r->used, 0, meta, true);
	for (size_t i = 0; i < meta; i++)
		r->map[i] = AP(AP_META, 0);
	if (a->next_bytes < SP_ARENA_STEP_MAX)
		a->next_bytes *= 2;
	return 0;
}

/* The first run of @n free pages of @r, or 0 (page 0 is never free). */
static size_t region_find(const struct sp_arena_region *r, size_t n)
{
	size_t i = r->low;

	while (i + n <= r->pages) {
		if (i % 64 == 0 && r->used[i / 64] == ~0ull) {
			i += 64;
			continue;
		}
		if (bit(r->used, i)) {
			i++;
			continue;
		}
		size_t j = i + 1;

		while (j < i + n) {
			if (j % 64 == 0 && i + n - j >= 64 && !r->used[j / 64])
				j += 64;
			else if (!bit(r->used, j))
				j++;
			else
				break;
		}
		if (j == i + n)
			return i;
		i = j + 1;
	}
	return 0;
}

/* Pages [i, i + n) of @r become used, with zeros in them. */
static void pages_take(struct sp_arena *a, struct sp_arena_region *r, size_t i, size_t n)
{
	unsigned int sh = a->page_shift;

	bits_set(r->used, i, n, true);
	arena_unpoison(r->base + (i << sh), n << sh);
	for (size_t s = i; s < i + n;) {
		if (!bit(r->dirty, s)) {
			s++;
			continue;
		}
		size_t e = s + 1;

		while (e < i + n && bit(r->dirty, e))
			e++;
		char *p = r->base + (s << sh);

		if (e - s < SP_ARENA_RETURN || madvise(p, (e - s) << sh, MADV_DONTNEED))
			memset(p, 0, (e - s) << sh);
		bits_set(r->dirty, s, e - s, false);
		s = e;
	}
	if (i == r->low)
		r->low = i + n;
}

/* Pages [i, i + n) of @r are free again. */
static void pages_release(struct sp_arena *a, struct sp_arena_region *r, size_t i, size_t n)
{
	unsigned int sh = a->page_shift;
	char *p = r->base + (i << sh);

	if (n >= SP_ARENA_RETURN && madvise(p, n << sh, MADV_DONTNEED) == 0)
		bits_set(r->dirty, i, n, false);
	else
		bits_set(r->dirty, i, n, true);
	if (n < SP_ARENA_POISON_MAX)
		arena_poison(p, n << sh);
	bits_set(r->used, i, n, false);
	if (i < r->low)
		r->low = i;
}

/* A run of @n zeroed pages whose first page's map entry is @entry (every
 * page's, for a slab), or NULL. */
static void *pages_alloc(struct sp_arena *a, size_t n, uint32_t entry)
{
	for (int tries = 0; tries < 2; tries++) {
		for (int k = 0; k < a->nregion; k++) {
			struct sp_arena_region *r = &a->region[k];
			size_t i = region_find(r, n);

			if (!i)
				continue;
			pages_take(a, r, i, n);
			for (size_t j = 0; j < (AP_KIND(entry) == AP_SLAB ? n : 1); j++)
				r->map[i + j] = entry;
			return r->base + (i << a->page_shift);
		}
		if (region_add(a, n))
			return NULL;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Blocks.
 * --------------------------------------------------------------------- */
static void *small_alloc(struct sp_arena *a, int k)
{
	struct sp_arena_class *c = &a->cls[k];
	size_t size = class_size[k];
	char *p = c->free;

	if (p) {
		arena_unpoison(p, size);
		c->free = *(void **)p;
		memset(p, 0, size);
		return p;
	}
	if (!c->cur || (size_t)(c->end - c->cur) < size) {
		size_t n = SP_ARENA_SLAB > a->page ? SP_ARENA_SLAB >> a->page_shift : 1;
		char *s = pages_alloc(a, n, AP(AP_SLAB, k));

		if (!s)
			return NULL;
		c->cur = s;
		c->end = s + (n << a->page_shift);
	}
	p = c->cur;
	c->cur += size;
	return p;
}

void *sp_arena_alloc(struct sp_arena *a, size_t size)
{
	void *p = NULL;
	int k = 0;

	while (k < SP_ARENA_CLASSES && size > class_size[k])
		k++;
	if (k < SP_ARENA_CLASSES) {
		p = small_alloc(a, k);
	} else if (size <= (size_t)AP_VAL_MAX << a->page_shift) {
		size_t n = (size + a->page - 1) >> a->page_shift;

		p = pages_alloc(a, n, AP(AP_BLOCK, n));
	}
	if (p)
		a->live++;
	return p;
}

/*
 * The block @p: its region, first page and map entry.  Returns the bytes
 * it holds, or 0 (a bug) if @p is not a block of the arena.
 */
static size_t block_of(const struct sp_arena *a, const void *p, struct sp_arena_region **rp,
		       size_t *ip)
{
	struct sp_arena_region *r = region_of(a, (uintptr_t)p);

	if (!r)
		return 0;
	size_t i = ((uintptr_t)p - (uintptr_t)r->base) >> a->page_shift;
	uint32_t e = r->map[i];

	*rp = r;
	*ip = i;
	if (AP_KIND(e) == AP_SLAB)
		return class_size[AP_VAL(e)];
	if (AP_KIND(e) == AP_BLOCK && !((uintptr_t)p & (a->page - 1)))
		return (size_t)AP_VAL(e) << a->page_shift;
	return 0;
}

void sp_arena_free(struct sp_arena *a, void *p)
{
	struct sp_arena_region *r;
	size_t i;

	if (!p)
		return;
	size_t size = block_of(a, p, &r, &i);

	if (!size) {
		arena_bug("free of a block it never handed out:", p);
		return;
	}
	if (AP_KIND(r->map[i]) == AP_SLAB) {
		struct sp_arena_class *c = &a->cls[AP_VAL(r->map[i])];

		*(void **)p = c->free;	/* (a double free writes a poisoned object) */
		c->free = p;
		arena_poison(p, size);
	} else {
		r->map[i] = AP(AP_NONE, 0);
		pages_release(a, r, i, size >> a->page_shift);
	}
	a->live--;
}

void *sp_arena_realloc(struct sp_arena *a, void *p, size_t size)
{
	struct sp_arena_region *r;
	size_t i;

	if (!p)
		return sp_arena_alloc(a, size);
	size_t have = block_of(a, p, &r, &i);

	if (!have) {
		arena_bug("realloc of a block it never handed out:", p);
		return NULL;
	}
	if (size <= have)
		return p;
	/* a run of pages grows in place when the pages after it are free */
	if (AP_KIND(r->map[i]) == AP_BLOCK && size <= (size_t)AP_VAL_MAX << a->page_shift) {
		size_t n = have >> a->page_shift;
		size_t m = (size + a->page - 1) >> a->page_shift;

		if (i + m <= r->pages && bits_clear(r->used, i + n, m - n)) {
			pages_take(a, r, i + n, m - n);
			r->map[i] = AP(AP_BLOCK, m);
			return p;
		}
	}
	void *q = sp_arena_alloc(a, size);

	if (!q)
		return NULL;
	memcpy(q, p, have);
	sp_arena_free(a, p);
	return q;
}

/* Unmap every region: the blocks still handed out go with them. */
void sp_arena_release(struct sp_arena *a)
{
	if (ARENA_ASAN && a->live) {
		fprintf(stderr, "samepage: %ld blocks of the library's own memory were never "
			"freed (a leak LeakSanitizer cannot see)\n", a->live);
		abort();
	}
	for (int k = 0; k < a->nregion; k++) {
		size_t bytes = a->region[k].pages << a->page_shift;

		arena_unpoison(a->region[k].base, bytes);
		munmap(a->region[k].base, bytes);
	}
	a->nregion = 0;
	a->live = 0;
	memset(a->cls, 0, sizeof(a->cls));
}

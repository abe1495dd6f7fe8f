/* SPDX-License-Identifier: MIT */
/*
 * workload.c - the content of the reference workload.
 *
 * Every region holds `pages` pages: the first 40% are a common image (page i
 * has the same content in every region, depending only on i), the next 20%
 * are zero-filled, the last 40% are unique.  Non-zero pages are filled
 * entirely with a pseudo-random stream seeded from the page's identity, so
 * that checksums and comparisons cost what they cost on real data (two
 * different pages already differ in their first bytes, as real data mostly
 * does).
 */
#include <string.h>

#include "bench.h"

void bench_layout(const struct bench_opts *o, struct bench_layout *l)
{
	l->pages = o->pages;
	l->seq_end = o->pages * 2 / 5;		/* 32768 -> 13107 */
	l->zero_end = o->pages * 3 / 5;		/* 32768 -> 19660 */
}

/*
 * N identical pages under max_page_sharing M, as the kernel's test
 * (ksm_functional_tests / ksm_tests -N) asserts it.
 */
static void identical_pages(unsigned long n, unsigned long m, long *shared,
			    long *sharing)
{
	if (n < 2)
		return;
	if (n % m == 0 || n % m == 1) {
		*shared += (long)(n / m);
		*sharing += (long)(n / m * (m - 1));
	} else {
		*shared += (long)(n / m + 1);
		*sharing += (long)(n - (n / m + 1));
	}
}

void bench_expected(const struct bench_opts *o, long *pages_shared,
		    long *pages_sharing)
{
	struct bench_layout l;
	long shared = 0, sharing = 0;

	bench_layout(o, &l);
	/* each image of the common part: one copy per region */
	for (unsigned long i = 0; i < l.seq_end; i++)
		identical_pages(o->regions, BENCH_MAX_PAGE_SHARING, &shared, &sharing);
	/* all zero pages of all regions are one content */
	identical_pages((l.zero_end - l.seq_end) * o->regions,
			BENCH_MAX_PAGE_SHARING, &shared, &sharing);
	*pages_shared = shared;
	*pages_sharing = sharing;
}

static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_stream(uint64_t *dst, uint64_t seed)
{
	uint64_t state = seed * 0xd6e8feb86659fd93ULL;

	for (size_t i = 0; i < BENCH_PAGE_SIZE / sizeof(uint64_t); i++)
		dst[i] = splitmix64(&state);
}

void bench_fill_pages(void *dst, unsigned int region, unsigned long first,
		      unsigned long n, const struct bench_layout *l)
{
	char *p = dst;

	for (unsigned long pg = first; pg < first + n; pg++, p += BENCH_PAGE_SIZE) {
		if (pg < l->seq_end)
			fill_stream((uint64_t *)p, 0x5e90000000000000ULL ^ pg);
		else if (pg < l->zero_end)
			memset(p, 0, BENCH_PAGE_SIZE);
		else
			fill_stream((uint64_t *)p, 0xa11ce00000000000ULL ^
				    ((uint64_t)region << 32) ^ pg);
	}
}

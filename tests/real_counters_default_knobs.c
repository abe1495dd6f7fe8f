/* SPDX-License-Identifier: MIT */
/*
 * real_counters_default_knobs - with run=1 and the kernel's default
 * pages_to_scan and sleep_millisecs, samepage_get shows the scanner's
 * progress within seconds: full_scans, pages_scanned and the exact
 * pages_sharing of duplicate memory.
 */
#include "real_util.h"

#include <time.h>

#define NPAGES	 320
#define CONTENTS 5	/* 64 pages of each */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	real_test_name = "real_counters_default_knobs";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();

	/* the kernel's defaults */
	CHECK_EQ(get(sp, "pages_to_scan"), 100);
	CHECK_EQ(get(sp, "sleep_millisecs"), 20);
	char *p = samepage_alloc(sp, NPAGES * ps);

	CHECK(p);
	for (size_t i = 0; i < NPAGES; i++) {
		memset(p + i * ps, (int)(1 + i % CONTENTS), ps);
	}
	set(sp, "run", 1);
	double t0 = now_s();
	long scans = 0, scanned = 0, sharing = 0, shared = 0;

	while (now_s() - t0 < 10) {
		scans = get(sp, "full_scans");
		scanned = get(sp, "pages_scanned");
		sharing = get(sp, "pages_sharing");
		shared = get(sp, "pages_shared");
		if (scans >= 2 && scanned > 0 && sharing == NPAGES - CONTENTS && shared == CONTENTS)
			break;
		usleep(10000);
	}
	printf("after %.2f s: full_scans %ld, pages_scanned %ld, pages_shared %ld, "
	       "pages_sharing %ld\n", now_s() - t0, scans, scanned, shared, sharing);
	CHECK(scans >= 2);
	CHECK(scanned > 0);
	CHECK_EQ(shared, CONTENTS);
	CHECK_EQ(sharing, NPAGES - CONTENTS);
	for (size_t i = 0; i < NPAGES; i++)
		for (size_t j = 0; j < ps; j++)
			if ((unsigned char)p[i * ps + j] != 1 + i % CONTENTS)
				FAIL("page %zu byte %zu changed", i, j);
	CHECK_EQ(samepage_close(sp), 0);
	printf("counters with default knobs ok\n");
	return 0;
}

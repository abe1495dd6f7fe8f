/* SPDX-License-Identifier: MIT */
/*
 * real_run.c - samepage on real memory: the reference workload in this
 * process's own memory, through the public API only, as an application
 * would use it.
 *
 * The scanner is the library's own thread (run=1).  Its CPU is the
 * process's CPU minus this thread's: this thread only sleeps and polls
 * the counters while the scanner works, so everything else the process
 * spends is the library's (scanner and any helper thread it runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "ksm.h"
#include "linux_internal.h"	/* sp_linux_ksm(): the engine's metadata size */
#include "samepage.h"

static long counter(struct samepage *sp, const char *name)
{
	long v = -1;

	if (samepage_get(sp, name, &v) < 0)
		return -1;
	return v;
}

static double process_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Compare every page with what was written; returns the pages that differ. */
static long verify(char **regions, const struct bench_opts *o,
		   const struct bench_layout *l)
{
	static _Alignas(64) char want[64 * BENCH_PAGE_SIZE];
	const unsigned long chunk = sizeof(want) / BENCH_PAGE_SIZE;
	long bad = 0;

	for (unsigned int i = 0; i < o->regions; i++) {
		for (unsigned long pg = 0; pg < o->pages; pg += chunk) {
			unsigned long n = o->pages - pg < chunk ? o->pages - pg : chunk;

			bench_fill_pages(want, i, pg, n, l);
			for (unsigned long j = 0; j < n; j++) {
				const char *have = regions[i] + (pg + j) * BENCH_PAGE_SIZE;

				if (memcmp(have, want + j * BENCH_PAGE_SIZE, BENCH_PAGE_SIZE)) {
					if (bad < 10)
						fprintf(stderr, "bench: real: region %u page %lu "
							"does not read what was written\n", i, pg + j);
					bad++;
				}
			}
		}
	}
	return bad;
}

int bench_real_run(const struct bench_opts *o, struct bench_result *r)
{
	struct bench_layout l;
	size_t region_bytes = o->pages * BENCH_PAGE_SIZE;
	struct samepage *sp;
	char **regions;
	int err;

	bench_result_init(r);
	bench_layout(o, &l);
	err = samepage_open(&sp, 0);
	if (err) {
		snprintf(r->why_not, sizeof(r->why_not), "samepage_open: %s: %s",
			 strerror(-err), samepage_last_error());
		return 0;
	}
	regions = calloc(o->regions, sizeof(*regions));
	if (!regions) {
		err = -ENOMEM;
		goto out_close;
	}

	double t = bench_now();
	for (unsigned int i = 0; i < o->regions; i++) {
		regions[i] = samepage_alloc(sp, region_bytes);
		if (!regions[i]) {
			err = -errno;
			fprintf(stderr, "bench: real: samepage_alloc(%zu): %s: %s\n",
				region_bytes, strerror(errno), samepage_last_error());
			goto out_free;
		}
		bench_fill_pages(regions[i], i, 0, o->pages, &l);
	}
	r->fill_seconds = bench_now() - t;

	err = samepage_set(sp, "pages_to_scan", o->pages_to_scan);
	if (!err)
		err = samepage_set(sp, "sleep_millisecs", 0);
	if (err) {
		fprintf(stderr, "bench: real: cannot set the knobs: %s: %s\n",
			strerror(-err), samepage_last_error());
		goto out_free;
	}
	r->ran = true;
	r->pss_before_kb = bench_pss_kb();
	r->avail_before_kb = bench_meminfo_kb("MemAvailable");

	long scans0 = counter(sp, "full_scans");
	long scanned0 = counter(sp, "pages_scanned");
	struct bench_converge c;
	bool converged = false;

	r->loadavg = bench_loadavg();
	bench_progress("real: run=1 (pages_to_scan %lu, sleep_millisecs 0)",
		       o->pages_to_scan);
	double self0 = bench_thread_cpu(), proc0 = process_cpu();
	double t0 = bench_now();
	bench_converge_init(&c, scans0, counter(sp, "pages_sharing"), t0);
	err = samepage_set(sp, "run", 1);
	if (err) {
		fprintf(stderr, "bench: real: run=1: %s: %s\n", strerror(-err),
			samepage_last_error());
		goto out_free;
	}
	while (!converged) {
		bench_sleep_ms(1);
		long scans = counter(sp, "full_scans");
		long sharing = counter(sp, "pages_sharing");
		double now = bench_now();

		converged = bench_converge_step(&c, scans, sharing, now, "real");
		if (!converged && now - t0 > o->timeout_s) {
			fprintf(stderr, "bench: real: no convergence after %u s\n",
				o->timeout_s);
			break;
		}
	}
	double t1 = bench_now();
	double cpu = (process_cpu() - proc0) - (bench_thread_cpu() - self0);

	r->converge_seconds = converged ? t1 - t0 : -1;
	r->settled_seconds = c.settled_at - t0;
	r->cpu_seconds = cpu;
	r->full_scans = counter(sp, "full_scans") - scans0;
	r->pages_scanned = counter(sp, "pages_scanned") - scanned0;
	r->pages_shared = counter(sp, "pages_shared");
	r->pages_sharing = counter(sp, "pages_sharing");
	r->pages_unshared = counter(sp, "pages_unshared");
	r->pages_volatile = counter(sp, "pages_volatile");
	r->stable_node_chains = counter(sp, "stable_node_chains");
	r->stable_node_dups = counter(sp, "stable_node_dups");
	if (r->pages_scanned > 0)
		r->scan_us_per_page = cpu * 1e6 / (double)r->pages_scanned;
	/* The rmap item size from the profit formula, as for the kernel. */
	long items = r->pages_shared + r->pages_sharing + r->pages_unshared +
		     r->pages_volatile;
	long profit = counter(sp, "general_profit");
	long zero = counter(sp, "ksm_zero_pages");
	if (items > 0 && zero >= 0)
		r->bytes_per_rmap_item =
			(double)((r->pages_sharing + zero) * (long)BENCH_PAGE_SIZE - profit) /
			(double)items;
	r->pss_after_kb = bench_pss_kb();
	r->avail_after_kb = bench_meminfo_kb("MemAvailable");
	bench_progress("real: %s after %.2f s: shared %ld, sharing %ld; stopping",
		       converged ? "converged" : "stopped", t1 - t0,
		       r->pages_shared, r->pages_sharing);

	/* Stop the scanner (keeping the merges), then read everything back. */
	samepage_set(sp, "run", 0);
	if (items > 0) {
		/* the scanner is idle now: nothing changes the engine under us */
		r->metadata_bytes_per_page =
			(double)ksm_metadata_bytes(sp_linux_ksm(sp)) / (double)items;
	}
	r->content_errors = verify(regions, o, &l);

out_free:
	for (unsigned int i = 0; i < o->regions; i++)
		if (regions[i])
			samepage_free(sp, regions[i], region_bytes);
	free(regions);
out_close:
	{
		int cerr = samepage_close(sp);

		if (cerr && !err) {
			fprintf(stderr, "bench: real: samepage_close: %s: %s\n",
				strerror(-cerr), samepage_last_error());
			err = cerr;
		}
	}
	return err;
}

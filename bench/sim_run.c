/* SPDX-License-Identifier: MIT */
/*
 * sim_run.c - the engine's own cost: the reference workload on the
 * simulated machine.
 *
 * One NUMA node, one address space per region.  The sim's `seq` content is
 * its own (not the bytes of workload.c) but has the same structure, page i
 * equal in every region and nothing else equal, which is all the counters
 * depend on.  The scanner runs as ksmd does, one batch of pages_to_scan
 * after the other (ksm_do_scan, which ends a batch early at the end of a
 * full scan, so the counters are read exactly at each scan's end); only the
 * time inside those calls is the scanner's CPU.  With sleep_millisecs 0 the
 * simulator's clock would not advance between batches anyway.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "ksm.h"
#include "sim.h"

static long counter(struct ksm *ksm, const char *name)
{
	long v = -1;

	if (ksm_get(ksm, name, &v) < 0)
		return -1;
	return v;
}

/* Set up the machine and the content: every region, every page. */
static int build_machine(struct sim *s, const struct bench_opts *o)
{
	struct bench_layout l;
	/* room for every page once, plus the copies COW or unmerge may make */
	unsigned long frames = (unsigned long)o->regions * o->pages + o->pages + 1024;
	int err;

	bench_layout(o, &l);
	if (frames > SIM_MAX_FRAMES)
		return -E2BIG;
	err = sim_machine(s, 1, frames, BENCH_PAGE_SIZE);
	if (err)
		return err;
	for (unsigned int i = 0; i < o->regions; i++) {
		char name[SIM_NAME_MAX];

		snprintf(name, sizeof(name), "r%u", i);
		err = sim_mm_new(s, name, 0);
		if (!err)
			err = sim_mmap(s, name, 0, o->pages, true);
		if (!err && l.seq_end)
			err = sim_fill(s, name, 0, l.seq_end, SIM_FILL_SEQ, 0);
		if (!err && l.zero_end > l.seq_end)
			err = sim_fill(s, name, l.seq_end, l.zero_end - l.seq_end,
				       SIM_FILL_BYTE, 0);
		if (!err && o->pages > l.zero_end)
			err = sim_fill(s, name, l.zero_end, o->pages - l.zero_end,
				       SIM_FILL_RANDOM, 0);
		if (err)
			return err;
	}
	return 0;
}

static void count_finding(void *arg, const char *finding)
{
	long *n = arg;

	if (*n < 10)
		fprintf(stderr, "bench: sim: checker: %s\n", finding);
	(*n)++;
}

int bench_sim_run(const struct bench_opts *o, struct bench_result *r)
{
	struct sim *s;
	struct ksm *ksm;
	int err;

	bench_result_init(r);
	err = sim_new(&s, SIM_DEFAULT_SEED);
	if (err)
		return err;
	sim_set_output(s, NULL);

	double t = bench_now();
	err = build_machine(s, o);
	if (err) {
		fprintf(stderr, "bench: sim: cannot build the machine: %s\n",
			strerror(-err));
		goto out;
	}
	r->fill_seconds = bench_now() - t;
	ksm = sim_ksm(s);
	err = sim_set(s, "pages_to_scan", o->pages_to_scan);
	if (!err)
		err = sim_set(s, "sleep_millisecs", 0);
	if (err) {
		fprintf(stderr, "bench: sim: cannot set the knobs: %s\n", strerror(-err));
		goto out;
	}
	r->ran = true;

	long scans0 = counter(ksm, "full_scans");
	long scanned0 = counter(ksm, "pages_scanned");
	struct bench_converge c;
	bool converged = false;
	double cpu = 0;

	r->loadavg = bench_loadavg();
	bench_progress("sim: run=1 (pages_to_scan %lu, sleep_millisecs 0)",
		       o->pages_to_scan);
	double t0 = bench_now();
	bench_converge_init(&c, scans0, counter(ksm, "pages_sharing"), t0);
	err = sim_set(s, "run", 1);
	if (err)
		goto out;
	while (!converged) {
		double c0 = bench_thread_cpu();

		err = ksm_do_scan(ksm, o->pages_to_scan, NULL);
		cpu += bench_thread_cpu() - c0;
		if (err) {
			fprintf(stderr, "bench: sim: scan: %s\n", strerror(-err));
			goto out;
		}
		double now = bench_now();
		converged = bench_converge_step(&c, counter(ksm, "full_scans"),
						counter(ksm, "pages_sharing"), now, "sim");
		if (!converged && now - t0 > o->timeout_s) {
			fprintf(stderr, "bench: sim: no convergence after %u s\n",
				o->timeout_s);
			break;
		}
	}
	double t1 = bench_now();

	r->converge_seconds = converged ? t1 - t0 : -1;
	r->settled_seconds = c.settled_at - t0;
	r->cpu_seconds = cpu;
	r->full_scans = counter(ksm, "full_scans") - scans0;
	r->pages_scanned = counter(ksm, "pages_scanned") - scanned0;
	r->pages_shared = counter(ksm, "pages_shared");
	r->pages_sharing = counter(ksm, "pages_sharing");
	r->pages_unshared = counter(ksm, "pages_unshared");
	r->pages_volatile = counter(ksm, "pages_volatile");
	r->stable_node_chains = counter(ksm, "stable_node_chains");
	r->stable_node_dups = counter(ksm, "stable_node_dups");
	if (r->pages_scanned > 0)
		r->scan_us_per_page = cpu * 1e6 / (double)r->pages_scanned;
	r->bytes_per_rmap_item = (double)ksm_rmap_item_size();
	long items = r->pages_shared + r->pages_sharing + r->pages_unshared +
		     r->pages_volatile;
	if (items > 0)
		r->metadata_bytes_per_page = (double)ksm_metadata_bytes(ksm) / (double)items;
	bench_progress("sim: %s after %.2f s: shared %ld, sharing %ld; checking",
		       converged ? "converged" : "stopped", t1 - t0,
		       r->pages_shared, r->pages_sharing);

	/* Nothing lost: every page reads what was written, trees consistent. */
	r->content_errors = 0;
	sim_check(s, count_finding, &r->content_errors);
out:
	sim_free(s);
	return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * bench.h - `samepage bench`: the reference workload merged by samepage
 * (on the simulated machine or on real memory) and, in the same run, by
 * the kernel's own KSM, with the figures side by side.
 *
 * Only cmd_bench() is for the command line; the rest is shared between the
 * files of bench/ (each part of the benchmark lives in its own file:
 * workload.c the content, kernel_ksm.c the kernel reference, sim_run.c and
 * real_run.c the two samepage runs, report.c the table and the JSON).
 */
#ifndef SAMEPAGE_BENCH_H
#define SAMEPAGE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `samepage bench [options]`; returns the process exit status. */
int cmd_bench(int argc, char **argv);

/* ---- shared between the files of bench/ ---- */

#define BENCH_PAGE_SIZE		4096UL
#define BENCH_MAX_PAGE_SHARING	256UL	/* the kernel's default, used throughout */

struct bench_opts {
	bool sim;			/* samepage on the simulated machine */
	bool json;			/* one JSON object on stdout */
	bool kernel;			/* also run the kernel's KSM */
	bool estimate;			/* samepage estimate on child processes */
	unsigned int regions;		/* address spaces / regions */
	unsigned long pages;		/* pages per region */
	unsigned long pages_to_scan;
	unsigned int timeout_s;		/* give up converging after this long */
	unsigned int repeat;		/* runs per side; times are their medians */
	unsigned int processes;		/* --processes: regions in that many processes */
	unsigned int steady_scans;	/* full scans after convergence to time (0: none) */
};

/*
 * The layout of one region: [0, seq_end) the common image (page i has the
 * same content in every region), [seq_end, zero_end) zero-filled, the rest
 * unique to (region, page).  The reference: 13107 / 19660 / 32768.
 */
struct bench_layout {
	unsigned long seq_end;
	unsigned long zero_end;
	unsigned long pages;
};
void bench_layout(const struct bench_opts *o, struct bench_layout *l);

/* Counters the kernel's KSM must reach on this workload (use_zero_pages=0). */
void bench_expected(const struct bench_opts *o, long *pages_shared,
		    long *pages_sharing);

/* Write the content of pages [first, first+n) of @region at @dst. */
void bench_fill_pages(void *dst, unsigned int region, unsigned long first,
		      unsigned long n, const struct bench_layout *l);

/*
 * The figures of one run.  Fields are -1 (or NAN for doubles) when they do
 * not apply to that run; report.c prints those as "-".
 */
struct bench_result {
	bool ran;
	char why_not[256];		/* when !ran: the reason, in words */
	long pages_shared, pages_sharing, pages_unshared, pages_volatile;
	long full_scans;		/* completed during the run */
	long pages_scanned;		/* during the run */
	long stable_node_chains, stable_node_dups;
	double converge_seconds;	/* run=1 -> sharing unchanged for 2 full scans */
	double settled_seconds;		/* run=1 -> final pages_sharing first seen */
	double cpu_seconds;		/* scanner CPU until convergence */
	double steady_cpu_per_scan;	/* scanner CPU per full scan once converged */
	double scan_us_per_page;	/* cpu_seconds / pages_scanned */
	double bytes_per_rmap_item;
	double metadata_bytes_per_page;	/* all engine metadata / rmap items */
	double fill_seconds;		/* writing the workload's content */
	long pss_before_kb, pss_after_kb;	/* this process, smaps_rollup */
	long avail_before_kb, avail_after_kb;	/* MemAvailable */
	double loadavg;			/* 1-minute load average at the start */
	long content_errors;		/* pages that did not read back their content */
};
void bench_result_init(struct bench_result *r);

/* Each run fills @r; returns 0, or a negative errno after a failure that
 * makes the whole benchmark fail (a run that cannot happen here is not a
 * failure: it sets r->ran = false and r->why_not). */
int bench_kernel_run(const struct bench_opts *o, struct bench_result *r);
int bench_sim_run(const struct bench_opts *o, struct bench_result *r);
int bench_real_run(const struct bench_opts *o, struct bench_result *r);
/* --estimate (estimate_bench.c): the whole benchmark; returns the exit status. */
int bench_estimate(const struct bench_opts *o);
int bench_kernel_converge_mergeable(const struct bench_opts *o, struct bench_result *r,
				    void (*at_converged)(void *arg, struct bench_result *r),
				    void *arg);
/* --processes (proc_run.c): the workload in o->regions child processes, one
 * region each: merged by the kernel's KSM (madvise), or as clients of a
 * samepage daemon started for the run. */
int bench_proc_kernel_run(const struct bench_opts *o, struct bench_result *r);
int bench_proc_samepage_run(const struct bench_opts *o, struct bench_result *r);

/* Convergence: pages_sharing unchanged over two full scans. */
struct bench_converge {
	long last_scans;		/* full_scans at the previous observation */
	long sharing[3];		/* pages_sharing at the last 3 scan ends */
	int seen;			/* scan ends observed so far */
	long last_value;		/* pages_sharing at the previous observation */
	double settled_at;		/* when pages_sharing last changed */
};
void bench_converge_init(struct bench_converge *c, long full_scans,
			 long pages_sharing, double now);
/* Feed one observation (any time, not only at scan ends); true when
 * converged.  Prints a progress line per full scan, naming @who. */
bool bench_converge_step(struct bench_converge *c, long full_scans,
			 long pages_sharing, double now, const char *who);

/* Small helpers (util.c). */
double bench_now(void);				/* CLOCK_MONOTONIC seconds */
void bench_sleep_ms(long ms);
double bench_thread_cpu(void);			/* this thread's CPU seconds */
double bench_task_cpu(int pid, int tid);	/* a task's CPU seconds, <0 if gone */
long bench_meminfo_kb(const char *field);	/* /proc/meminfo, -1 if unknown */
long bench_pss_kb(void);			/* /proc/self/smaps_rollup Pss */
double bench_loadavg(void);			/* 1-minute load average, -1 */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool bench_quiet;			/* no progress lines */

/* Output (report.c). */
void bench_print_table(const struct bench_opts *o, const struct bench_result *sp,
		       const struct bench_result *k);
void bench_print_json(const struct bench_opts *o, const struct bench_result *sp,
		      const struct bench_result *k);

#endif /* SAMEPAGE_BENCH_H */

/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `samepage bench`: options, then the runs, then the report.
 *
 *   samepage bench [--sim | --estimate | --processes N] [--json] [--regions N]
 *                  [--pages N]
 *                  [--pages-to-scan N] [--repeat N] [--timeout S]
 *                  [--no-kernel] [--quiet]
 *
 * Exit status: 0 the runs completed and samepage's counters equal the
 * kernel's (or, without the kernel, the expected ones); 1 a run failed,
 * the counters differ, or memory did not read back what was written; 2 a
 * usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char usage_text[] =
"usage: samepage bench [--sim | --estimate | --processes N] [--json] [--regions N]\n"
"                      [--pages N]\n"
"                      [--pages-to-scan N] [--repeat N] [--timeout S]\n"
"                      [--no-kernel] [--quiet]\n"
"\n"
"Merge the reference workload with samepage and, in the same run, with the\n"
"kernel's KSM, and print the figures side by side (samepage | kernel | ratio).\n"
"Workload: 8 regions of 32768 pages of 4 KiB (1 GiB); in each region the\n"
"first 40% of the pages hold a common image (page i is the same in every\n"
"region), the next 20% are zero, the rest unique.  Knobs are the kernel's\n"
"defaults except pages_to_scan and sleep_millisecs=0.  Converged:\n"
"pages_sharing unchanged for two full scans.\n"
"\n"
"  --sim              run samepage's engine on the simulated machine instead\n"
"                     of real memory (scanner CPU per page, metadata size)\n"
"  --estimate         `samepage estimate` on the workload held by --regions\n"
"                     child processes: read speed, counters, next to the\n"
"                     time the kernel's KSM takes to converge on them\n"
"  --json             print one JSON object instead of the table\n"
"  --regions N        regions / address spaces (default 8)\n"
"  --processes N      the regions in N processes, one each: for samepage the\n"
"                     clients of one `samepage daemon` started for the run,\n"
"                     for the kernel madvise(MADV_MERGEABLE) in each; CPU:\n"
"                     the daemon's and the clients' agents' against ksmd's,\n"
"                     also per full scan once converged (sets --regions)\n"
"  --pages N          pages per region (default 32768)\n"
"  --pages-to-scan N  pages per scanner batch (default 100000)\n"
"  --repeat N         run each side N times, alternating, and report the\n"
"                     median of each time (default 1)\n"
"  --timeout S        give up converging after S seconds (default 600)\n"
"  --no-kernel        do not run the kernel's KSM\n"
"  --quiet            no progress lines on stderr\n"
"  --help             this text\n"
"\n"
"The kernel's KSM runs only as root with /sys/kernel/mm/ksm writable and not\n"
"in use; every knob it touches is restored afterwards (also on ^C).\n"
"Exit status: 0 done and counters equal the kernel's (or the expected ones);\n"
"1 a run failed or the counters differ; 2 bad usage.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "samepage bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(try 'samepage bench --help')\n");
	return 2;
}

/* A decimal number in [min, max]; false if @s is not one. */
static bool parse_ulong(const char *s, unsigned long min, unsigned long max,
			unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

struct num_opt {
	const char *name;
	unsigned long min, max;
};

#define BENCH_MAX_REPEAT 25

static const struct num_opt num_opts[] = {
	{ "--regions", 1, 4096 },
	{ "--pages", 1, 1UL << 26 },
	{ "--pages-to-scan", 1, UINT_MAX },
	{ "--timeout", 1, 86400 },
	{ "--repeat", 1, BENCH_MAX_REPEAT },
	{ "--processes", 1, 256 },
};

static int parse_opts(int argc, char **argv, struct bench_opts *o, bool *help)
{
	unsigned long *targets[6], timeout = 600, regions = 8, pages = 32768;
	unsigned long pts = 100000, repeat = 1, processes = 0;

	targets[0] = &regions;
	targets[1] = &pages;
	targets[2] = &pts;
	targets[3] = &timeout;
	targets[4] = &repeat;
	targets[5] = &processes;
	memset(o, 0, sizeof(*o));
	o->kernel = true;
	*help = false;

	/* argv[0] is "bench" */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t k;

		if (strcmp(a, "--sim") == 0) {
			o->sim = true;
		} else if (strcmp(a, "--estimate") == 0) {
			o->estimate = true;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--no-kernel") == 0) {
			o->kernel = false;
		} else if (strcmp(a, "--quiet") == 0) {
			bench_quiet = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*help = true;
		} else {
			for (k = 0; k < sizeof(num_opts) / sizeof(num_opts[0]); k++) {
				size_t len = strlen(num_opts[k].name);
				const char *val;

				if (strncmp(a, num_opts[k].name, len) != 0)
					continue;
				if (a[len] == '=')
					val = a + len + 1;
				else if (a[len] == '\0')
					val = i + 1 < argc ? argv[++i] : NULL;
				else
					continue;
				if (!val)
					return usage_error("option '%s' needs a number", num_opts[k].name);
				if (!parse_ulong(val, num_opts[k].min, num_opts[k].max, targets[k])) {
					fprintf(stderr, "samepage bench: option '%s': '%s' is not a "
						"number from %lu to %lu\n(try 'samepage bench --help')\n",
						num_opts[k].name, val, num_opts[k].min, num_opts[k].max);
					return 2;
				}
				break;
			}
			if (k == sizeof(num_opts) / sizeof(num_opts[0])) {
				if (a[0] == '-')
					return usage_error("unknown option '%s'", a);
				return usage_error("unexpected argument '%s'", a);
			}
		}
	}
	if (processes) {
		if (o->sim || o->estimate)
			return usage_error("%s: --processes is for real memory",
					   o->sim ? "--sim" : "--estimate");
		regions = processes;
		o->processes = (unsigned int)processes;
		o->steady_scans = 3;
	}
	o->regions = (unsigned int)regions;
	o->pages = pages;
	o->pages_to_scan = pts;
	o->timeout_s = (unsigned int)timeout;
	o->repeat = (unsigned int)repeat;

	/* Each run holds the whole workload in memory, one run at a time. */
	double need_kb = (double)o->regions * (double)o->pages * (BENCH_PAGE_SIZE / 1024);
	long avail_kb = bench_meminfo_kb("MemAvailable");
	if (avail_kb > 0 && need_kb > 0.7 * (double)avail_kb) {
		fprintf(stderr, "samepage bench: --regions %u --pages %lu needs %.0f MiB, "
			"more than 70%% of the %ld MiB available\n",
			o->regions, o->pages, need_kb / 1024, avail_kb / 1024);
		return 2;
	}
	return 0;
}

/* Do samepage's counters equal the reference?  Says why not on stderr. */
static bool counters_agree(const struct bench_opts *o, const struct bench_result *sp,
			   const struct bench_result *k)
{
	long want_shared, want_sharing;
	const char *ref = "kernel";

	if (k->ran) {
		want_shared = k->pages_shared;
		want_sharing = k->pages_sharing;
	} else {
		bench_expected(o, &want_shared, &want_sharing);
		ref = "expected";
	}
	if (sp->pages_shared == want_shared && sp->pages_sharing == want_sharing)
		return true;
	fprintf(stderr, "samepage bench: counters differ: samepage pages_shared %ld "
		"pages_sharing %ld, %s %ld %ld\n", sp->pages_shared, sp->pages_sharing,
		ref, want_shared, want_sharing);
	return false;
}

/*
 * The figures that vary from run to run: with --repeat, each is the median
 * of the runs (the counters must not vary: every run is checked).
 */
static const size_t timed_fields[] = {
	offsetof(struct bench_result, converge_seconds),
	offsetof(struct bench_result, settled_seconds),
	offsetof(struct bench_result, cpu_seconds),
	offsetof(struct bench_result, steady_cpu_per_scan),
	offsetof(struct bench_result, scan_us_per_page),
	offsetof(struct bench_result, fill_seconds),
	offsetof(struct bench_result, loadavg),
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* @out = the last run that ran, with every timed field the median of all. */
static void combine_runs(const struct bench_result *runs, unsigned int n,
			 struct bench_result *out)
{
	double v[BENCH_MAX_REPEAT];
	unsigned int ran = 0;

	for (unsigned int i = 0; i < n; i++)
		if (runs[i].ran)
			*out = runs[i], ran++;
	if (ran < 2)
		return;
	for (size_t f = 0; f < sizeof(timed_fields) / sizeof(timed_fields[0]); f++) {
		unsigned int k = 0;

		for (unsigned int i = 0; i < n; i++) {
			double x;

			memcpy(&x, (const char *)&runs[i] + timed_fields[f], sizeof(x));
			if (runs[i].ran && x >= 0)
				v[k++] = x;
		}
		if (k == 0)
			continue;
		qsort(v, k, sizeof(v[0]), cmp_double);
		double med = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
		memcpy((char *)out + timed_fields[f], &med, sizeof(med));
	}
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_result sp, k;
	bool help;
	int err, status = 0;

	bench_quiet = false;
	err = parse_opts(argc, argv, &o, &help);
	if (err)
		return err;
	if (help) {
		fputs(usage_text, stdout);
		return 0;
	}

	if (o.estimate)
		return bench_estimate(&o);

	struct bench_result sp_runs[BENCH_MAX_REPEAT], k_runs[BENCH_MAX_REPEAT];
	unsigned int nruns = 0;

	bench_result_init(&sp);
	bench_result_init(&k);
	for (unsigned int i = 0; i < o.repeat; i++) {
		if (o.repeat > 1)
			bench_progress("run %u of %u", i + 1, o.repeat);
		bench_result_init(&k_runs[i]);
		if (o.kernel) {
			err = o.processes ? bench_proc_kernel_run(&o, &k_runs[i]) :
					    bench_kernel_run(&o, &k_runs[i]);
			if (err) {
				fprintf(stderr, "samepage bench: the kernel's run failed: %s\n",
					strerror(-err));
				status = 1;
			}
			if (!k_runs[i].ran)
				bench_progress("kernel: skipped: %s", k_runs[i].why_not);
		} else {
			snprintf(k_runs[i].why_not, sizeof(k_runs[i].why_not), "--no-kernel");
		}

		struct bench_result *r = &sp_runs[i];

		err = o.sim ? bench_sim_run(&o, r) :
		      o.processes ? bench_proc_samepage_run(&o, r) : bench_real_run(&o, r);
		if (err) {
			fprintf(stderr, "samepage bench: the samepage run failed: %s\n",
				strerror(-err));
			status = 1;
		}
		if (r->ran) {
			if (!counters_agree(&o, r, &k_runs[i]))
				status = 1;
			if (r->content_errors > 0)
				status = 1;
			if (r->converge_seconds < 0)
				status = 1;	/* did not converge */
		} else {
			if (!err)
				fprintf(stderr, "samepage bench: samepage could not run: %s\n",
					r->why_not);
			status = 1;
		}
		nruns++;
		if (status)
			break;		/* a failure: report that run as it is */
	}
	k = k_runs[0];
	sp = sp_runs[0];
	combine_runs(k_runs, nruns, &k);
	combine_runs(sp_runs, nruns, &sp);

	if (o.json)
		bench_print_json(&o, &sp, &k);
	else
		bench_print_table(&o, &sp, &k);
	fflush(stdout);
	return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * report.c - the figures of `samepage bench` as a table for people and as
 * one JSON object for programs.  Both are written from the same row list,
 * so that they cannot disagree.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* Targets of the issues. */
#define TARGET_SCAN_US_PER_PAGE		1.0
#define TARGET_BYTES_PER_RMAP_ITEM	48.0

enum target_kind {
	TARGET_NONE,
	TARGET_EQUAL_KERNEL,	/* must equal the kernel's figure */
	TARGET_AT_MOST_KERNEL,	/* at most the kernel's (then push for half) */
	TARGET_AT_MOST,		/* at most a fixed figure */
};

struct row {
	const char *name;	/* also the JSON key */
	const char *unit;	/* for the table */
	double sp, k;		/* NAN: does not apply */
	int decimals;
	enum target_kind target;
	double limit;		/* TARGET_AT_MOST */
};

/* Result fields use negative values for "does not apply"; rows use NAN,
 * because a difference (memory gained) may be legitimately negative. */
static double val(bool ran, double v)
{
	return ran && v >= 0 ? v : NAN;
}

static double kb_saved(bool ran, long before, long after)
{
	return ran && before >= 0 && after >= 0 ? (double)(before - after) : NAN;
}

static double kb_gained(bool ran, long before, long after)
{
	return ran && before >= 0 && after >= 0 ? (double)(after - before) : NAN;
}

/* Fill @rows from the two results; returns how many. */
static int make_rows(const struct bench_opts *o, const struct bench_result *sp,
		     const struct bench_result *k, struct row *rows)
{
	const struct bench_result none = { .ran = false };
	int n = 0;

	if (!k->ran)
		k = &none;
#define ROW(nm, u, field, dec, tk, lim)						\
	rows[n++] = (struct row){ nm, u, val(sp->ran, (double)sp->field),	\
				  val(k->ran, (double)k->field), dec, tk, lim }
	ROW("pages_shared", "", pages_shared, 0, TARGET_EQUAL_KERNEL, 0);
	ROW("pages_sharing", "", pages_sharing, 0, TARGET_EQUAL_KERNEL, 0);
	ROW("pages_unshared", "", pages_unshared, 0, TARGET_NONE, 0);
	ROW("pages_volatile", "", pages_volatile, 0, TARGET_NONE, 0);
	ROW("stable_node_chains", "", stable_node_chains, 0, TARGET_NONE, 0);
	ROW("stable_node_dups", "", stable_node_dups, 0, TARGET_NONE, 0);
	ROW("full_scans", "", full_scans, 0, TARGET_NONE, 0);
	ROW("pages_scanned", "", pages_scanned, 0, TARGET_NONE, 0);
	ROW("converge_seconds", "s", converge_seconds, 3, TARGET_AT_MOST_KERNEL, 0);
	ROW("settled_seconds", "s", settled_seconds, 3, TARGET_NONE, 0);
	ROW("cpu_seconds", "s", cpu_seconds, 3, TARGET_AT_MOST_KERNEL, 0);
	if (o->steady_scans)
		ROW("steady_cpu_per_full_scan", "s", steady_cpu_per_scan, 4,
		    TARGET_AT_MOST_KERNEL, 0);
	ROW("scan_us_per_page", "us", scan_us_per_page, 3,
	    o->sim ? TARGET_AT_MOST : TARGET_AT_MOST_KERNEL, TARGET_SCAN_US_PER_PAGE);
	ROW("bytes_per_rmap_item", "B", bytes_per_rmap_item, 1, TARGET_AT_MOST,
	    TARGET_BYTES_PER_RMAP_ITEM);
	ROW("metadata_bytes_per_page", "B", metadata_bytes_per_page, 1, TARGET_NONE, 0);
	ROW("fill_seconds", "s", fill_seconds, 3, TARGET_NONE, 0);
	ROW("loadavg", "", loadavg, 2, TARGET_NONE, 0);
#undef ROW
	rows[n++] = (struct row){ "memory_saved_kb", "KiB",
				  kb_saved(sp->ran, sp->pss_before_kb, sp->pss_after_kb),
				  kb_saved(k->ran, k->pss_before_kb, k->pss_after_kb),
				  0, TARGET_NONE, 0 };
	rows[n++] = (struct row){ "memavailable_gain_kb", "KiB",
				  kb_gained(sp->ran, sp->avail_before_kb, sp->avail_after_kb),
				  kb_gained(k->ran, k->avail_before_kb, k->avail_after_kb),
				  0, TARGET_NONE, 0 };
	return n;
}

/* "ok", "MISSED" or "" (not applicable / not measurable). */
static const char *verdict(const struct row *r)
{
	switch (r->target) {
	case TARGET_EQUAL_KERNEL:
		if (isnan(r->sp) || isnan(r->k))
			return "";
		return r->sp == r->k ? "ok" : "MISSED";
	case TARGET_AT_MOST_KERNEL:
		if (isnan(r->sp) || isnan(r->k))
			return "";
		return r->sp <= r->k ? "ok" : "MISSED";
	case TARGET_AT_MOST:
		if (isnan(r->sp))
			return "";
		return r->sp <= r->limit ? "ok" : "MISSED";
	case TARGET_NONE:
		break;
	}
	return "";
}

static void target_text(const struct row *r, char *buf, size_t size)
{
	switch (r->target) {
	case TARGET_EQUAL_KERNEL:
		snprintf(buf, size, "= kernel");
		break;
	case TARGET_AT_MOST_KERNEL:
		snprintf(buf, size, "<= kernel (then 0.5x)");
		break;
	case TARGET_AT_MOST:
		snprintf(buf, size, "<= %g", r->limit);
		break;
	case TARGET_NONE:
		buf[0] = '\0';
		break;
	}
}

static void fmt_num(char *buf, size_t size, double v, int decimals)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.*f", decimals, v);
}

static double ratio(const struct row *r)
{
	if (isnan(r->sp) || isnan(r->k) || r->k == 0)
		return NAN;
	return r->sp / r->k;
}

static const char *mode_name(const struct bench_opts *o)
{
	return o->sim ? "sim" : o->processes ? "processes" : "real";
}

void bench_print_table(const struct bench_opts *o, const struct bench_result *sp,
		       const struct bench_result *k)
{
	struct row rows[32];
	int n = make_rows(o, sp, k, rows);
	long exp_shared, exp_sharing;

	bench_expected(o, &exp_shared, &exp_sharing);
	printf("samepage bench (%s): %u regions x %lu pages of %lu KiB (%lu MiB), "
	       "pages_to_scan %lu, sleep_millisecs 0\n",
	       o->sim ? "engine on the simulated machine" :
	       o->processes ? "real memory, one region per process: clients of one daemon"
			      " | madvise(MADV_MERGEABLE)" : "real memory",
	       o->regions, o->pages, BENCH_PAGE_SIZE / 1024,
	       (unsigned long)((double)o->regions * (double)o->pages *
			       BENCH_PAGE_SIZE / (1024 * 1024)),
	       o->pages_to_scan);
	printf("expected (kernel rules): pages_shared %ld, pages_sharing %ld\n",
	       exp_shared, exp_sharing);
	if (o->repeat > 1)
		printf("times: the median of %u runs per side, alternating\n", o->repeat);
	putchar('\n');
	printf("%-24s %14s %14s %9s   %s\n", "", "samepage", "kernel",
	       "ratio", "target");
	for (int i = 0; i < n; i++) {
		char a[32], b[32], c[32], t[32];
		double q = ratio(&rows[i]);

		fmt_num(a, sizeof(a), rows[i].sp, rows[i].decimals);
		fmt_num(b, sizeof(b), rows[i].k, rows[i].decimals);
		if (isnan(q))
			snprintf(c, sizeof(c), "-");
		else
			snprintf(c, sizeof(c), "%.3f", q);
		target_text(&rows[i], t, sizeof(t));
		printf("%-24s %14s %14s %9s   %-21s %s\n", rows[i].name, a, b, c, t,
		       verdict(&rows[i]));
	}
	if (!sp->ran)
		printf("\nsamepage: not run: %s\n", sp->why_not);
	if (!k->ran)
		printf("\nkernel: skipped: %s\n", k->why_not);
	if (sp->ran && sp->content_errors > 0)
		printf("\nsamepage: %ld findings of the content and consistency checks (on stderr)!\n",
		       sp->content_errors);
	printf("\nscan_us_per_page = scanner CPU / pages scanned; ratio = samepage / kernel.\n");
	if (o->processes)
		printf("samepage's CPU: the daemon process (scanner, requests, the bench's polls) and"
		       " the clients'\nthreads but their main ones (agents); the kernel's: ksmd."
		       "  memory_saved_kb: the Pss of the\nprocesses (and of the daemon)."
		       "  steady_cpu_per_full_scan: over %u full scans after convergence.\n",
		       o->steady_scans);
	if ((sp->ran && sp->loadavg > 1.5) || (k->ran && k->loadavg > 1.5))
		printf("The machine was busy (loadavg above 1.5 at the start of a run; "
		       "the benchmark itself accounts for about 1): "
		       "wall times are unreliable.\n");
	if (o->sim)
		printf("The samepage column is the engine on the simulated machine: its "
		       "times are the engine's own cost,\nnot comparable with the "
		       "kernel's handling of real page tables; counters must be equal.\n");
}

static void json_num(const char *key, double v, int decimals, bool *first)
{
	printf("%s\"%s\": ", *first ? "" : ", ", key);
	*first = false;
	if (isnan(v))
		printf("null");
	else
		printf("%.*f", decimals, v);
}

static void json_result(const struct row *rows, int n, bool kernel_side,
			const struct bench_result *r, bool *first)
{
	for (int i = 0; i < n; i++)
		json_num(rows[i].name, kernel_side ? rows[i].k : rows[i].sp,
			 rows[i].decimals, first);
	if (!kernel_side)
		json_num("content_errors", val(r->ran, (double)r->content_errors),
			 0, first);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

void bench_print_json(const struct bench_opts *o, const struct bench_result *sp,
		      const struct bench_result *k)
{
	struct row rows[32];
	int n = make_rows(o, sp, k, rows);
	long exp_shared, exp_sharing;
	bool first = true;

	bench_expected(o, &exp_shared, &exp_sharing);
	printf("{\"mode\": \"%s\", ", mode_name(o));
	printf("\"workload\": {\"regions\": %u, \"pages\": %lu, \"page_size\": %lu, "
	       "\"pages_to_scan\": %lu, \"sleep_millisecs\": 0, \"repeat\": %u, "
	       "\"expected_pages_shared\": %ld, \"expected_pages_sharing\": %ld}, ",
	       o->regions, o->pages, BENCH_PAGE_SIZE, o->pages_to_scan, o->repeat,
	       exp_shared, exp_sharing);
	printf("\"ran\": %s, ", sp->ran ? "true" : "false");
	if (!sp->ran) {
		printf("\"why_not\": ");
		json_string(sp->why_not);
		printf(", ");
	}
	json_result(rows, n, false, sp, &first);

	printf(", \"kernel\": {\"ran\": %s", k->ran ? "true" : "false");
	if (k->ran) {
		first = false;
		json_result(rows, n, true, k, &first);
	} else {
		printf(", \"skipped\": ");
		json_string(k->why_not);
	}
	printf("}, \"ratio\": {");
	first = true;
	for (int i = 0; i < n; i++) {
		double q = ratio(&rows[i]);

		json_num(rows[i].name, q, 4, &first);
	}
	printf("}, \"targets\": {");
	first = true;
	for (int i = 0; i < n; i++) {
		const char *v = verdict(&rows[i]);
		char t[32];

		if (rows[i].target == TARGET_NONE)
			continue;
		target_text(&rows[i], t, sizeof(t));
		printf("%s\"%s\": {\"target\": \"%s\", \"met\": %s}", first ? "" : ", ",
		       rows[i].name, t, *v ? (strcmp(v, "ok") == 0 ? "true" : "false")
					   : "null");
		first = false;
	}
	printf("}}\n");
}

/* SPDX-License-Identifier: MIT */
/*
 * util.c - clocks, /proc readers and the convergence rule shared by the
 * three runs of `samepage bench`.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

bool bench_quiet;

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bench_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

double bench_thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * CPU time of a task.  schedstat's first field is the time on CPU in
 * nanoseconds (exact); without schedstats fall back to utime+stime of the
 * stat file, in clock ticks.  @tid <= 0: the whole process @pid.
 */
double bench_task_cpu(int pid, int tid)
{
	char path[96];
	FILE *f;

	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (f) {
		unsigned long long ns;
		int n = fscanf(f, "%llu", &ns);

		fclose(f);
		if (n == 1)
			return (double)ns * 1e-9;
	}

	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1.0;
	char buf[1024];
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* The command name may contain spaces: fields restart after ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1.0;
	unsigned long utime, stime;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &utime, &stime) != 2)
		return -1.0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static long read_kb_field(const char *path, const char *field)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t flen = strlen(field);
	long value = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			value = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return value;
}

long bench_meminfo_kb(const char *field)
{
	return read_kb_field("/proc/meminfo", field);
}

long bench_pss_kb(void)
{
	return read_kb_field("/proc/self/smaps_rollup", "Pss");
}

double bench_loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double load = -1;

	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = -1;
		fclose(f);
	}
	return load;
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	if (bench_quiet)
		return;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void bench_result_init(struct bench_result *r)
{
	memset(r, 0, sizeof(*r));
	r->pages_shared = r->pages_sharing = r->pages_unshared = -1;
	r->pages_volatile = r->full_scans = r->pages_scanned = -1;
	r->stable_node_chains = r->stable_node_dups = -1;
	r->converge_seconds = r->settled_seconds = r->cpu_seconds = -1;
	r->steady_cpu_per_scan = -1;
	r->scan_us_per_page = r->bytes_per_rmap_item = -1;
	r->metadata_bytes_per_page = r->fill_seconds = -1;
	r->pss_before_kb = r->pss_after_kb = -1;
	r->avail_before_kb = r->avail_after_kb = -1;
	r->content_errors = -1;
	r->loadavg = -1;
}

void bench_converge_init(struct bench_converge *c, long full_scans,
			 long pages_sharing, double now)
{
	memset(c, 0, sizeof(*c));
	c->last_scans = full_scans;
	c->sharing[0] = pages_sharing;	/* the state at run=1 counts as a scan end */
	c->seen = 1;
	c->last_value = pages_sharing;
	c->settled_at = now;
}

/*
 * The rule of the issue: converged when pages_sharing has not changed for
 * two full scans, i.e. it is equal at three consecutive scan ends.  (If the
 * observer misses a scan end, the next one counts in its place: that can
 * only make the rule stricter.)
 */
bool bench_converge_step(struct bench_converge *c, long full_scans,
			 long pages_sharing, double now, const char *who)
{
	if (pages_sharing != c->last_value) {
		c->last_value = pages_sharing;
		c->settled_at = now;
	}
	if (full_scans == c->last_scans)
		return false;
	c->last_scans = full_scans;
	if (c->seen < 3) {
		c->sharing[c->seen++] = pages_sharing;
	} else {
		c->sharing[0] = c->sharing[1];
		c->sharing[1] = c->sharing[2];
		c->sharing[2] = pages_sharing;
	}
	bench_progress("%s: full scan %ld done, pages_sharing %ld", who,
		       full_scans, pages_sharing);
	return c->seen >= 3 && c->sharing[0] == c->sharing[1] &&
	       c->sharing[1] == c->sharing[2];
}

/* SPDX-License-Identifier: MIT */
/*
 * cmd_estimate.c - `samepage estimate [--json] [--mergeable] PID...`: what
 * KSM would give on running processes, read-only (src/estimate/).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "estimate.h"

static const char usage_text[] =
"usage: samepage estimate [--json] [--mergeable] [--rate MIB/S]\n"
"                         [--progress | --no-progress] PID...\n"
"\n"
"What Kernel Samepage Merging with the kernel's default knobs would reach on\n"
"these processes' resident private anonymous memory, if it were mergeable.\n"
"Read-only: the processes are never written to, stopped or signalled; each\n"
"page is read twice (plus once more for the first page of every content seen\n"
"twice), with process_vm_readv.\n"
"\n"
"Per process (that process merged alone, duplicates within it) and in total\n"
"(all of them merged together, duplicates within and across):\n"
"  pages           resident private anonymous pages read\n"
"  zero_pages      of those, pages filled with zeros (merged like any other\n"
"                  content: use_zero_pages=0)\n"
"  pages_volatile  of those, pages that changed between two reads; they are\n"
"                  not merged (the kernel's two-pass rule)\n"
"  pages_shared    KSM pages KSM would keep\n"
"  pages_sharing   further mappings of them: the pages given back\n"
"  saved_bytes     pages_sharing * 4096\n"
"  ksm_merging_pages  (per process) its pages on KSM pages when all the\n"
"                  processes listed merge together\n"
"\n"
"  --json          one JSON object {\"processes\": [...], \"total\": {...}}\n"
"  --mergeable     only ranges already marked mergeable (VmFlag mg)\n"
"  --rate MIB/S    read at most MIB/S MiB per second (default: no bound)\n"
"  --progress      progress on stderr (default: when stderr is a terminal);\n"
"                  shown once reading takes more than half a second\n"
"  --no-progress   no progress\n"
"  --stats         the time spent reading and in the engine, on stderr\n"
"  --help          this text\n"
"\n"
"Reading another process needs the same user id and a dumpable target, or\n"
"CAP_SYS_PTRACE (root).  Exit status: 0 every process estimated; 1 some\n"
"could not be (no such process, permission denied, exited meanwhile: the\n"
"others are still reported); 2 bad usage.\n";

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "samepage estimate: ");
	fprintf(stderr, msg, arg);
	fprintf(stderr, "\n(try 'samepage estimate --help')\n");
	return 2;
}

static bool parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > INT_MAX)
		return false;
	*pid = (int)v;
	return true;
}

/* Bytes in a human unit, into @buf. */
static const char *human(unsigned long long bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned int u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

struct progress_state {
	bool on, tty, shown;
	double last;
};

static void on_progress(void *arg, const struct est_progress *p)
{
	static const char *const what[] = { "", "read 1/2", "read 2/2", "check" };
	struct progress_state *s = arg;
	double rate;

	if (!s->on || p->seconds < 0.5 || p->seconds - s->last < (s->tty ? 0.1 : 1.0))
		return;
	s->last = p->seconds;
	rate = (double)p->bytes_read / (1024.0 * 1024.0) / p->seconds;
	fprintf(stderr, "%ssamepage estimate: pid %d %s: %lu/%lu pages, %.0f MiB/s%s",
		s->tty ? "\r" : "", p->pid, what[p->pass & 3], p->pages_done,
		p->pages_total, rate, s->tty ? "\033[K" : "\n");
	s->shown = true;
}

static int cmp_saved(const void *a, const void *b)
{
	const struct est_proc *x = a, *y = b;

	if (x->c.saved_bytes != y->c.saved_bytes)
		return x->c.saved_bytes < y->c.saved_bytes ? 1 : -1;
	if (x->merging_pages != y->merging_pages)
		return x->merging_pages < y->merging_pages ? 1 : -1;
	return x->pid - y->pid;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_counters(const struct est_counters *c)
{
	printf("\"pages\": %lu, \"zero_pages\": %lu, \"pages_volatile\": %lu, "
	       "\"pages_shared\": %ld, \"pages_sharing\": %ld, \"saved_bytes\": %lu",
	       c->pages, c->zero_pages, c->pages_volatile, c->pages_shared,
	       c->pages_sharing, c->saved_bytes);
}

static void print_json(const struct est_proc *procs, size_t n,
		       const struct est_counters *total, size_t reported)
{
	bool first = true;

	printf("{\"processes\": [");
	for (size_t i = 0; i < n; i++) {
		if (procs[i].error != EST_OK)
			continue;
		printf("%s\n  {\"pid\": %d, \"comm\": ", first ? "" : ",", procs[i].pid);
		json_string(procs[i].comm);
		printf(", ");
		json_counters(&procs[i].c);
		printf(", \"ksm_merging_pages\": %ld}", procs[i].merging_pages);
		first = false;
	}
	printf("%s],\n \"total\": {\"processes\": %zu, ", first ? "" : "\n ", reported);
	json_counters(total);
	printf("}}\n");
}

static void print_table(const struct est_proc *procs, size_t n,
			const struct est_counters *total, size_t reported)
{
	char a[32], b[32], c[32], d[32], e[32], f[32];

	printf("%7s  %-15s %10s %10s %10s %10s %11s %13s\n", "PID", "COMMAND", "RESIDENT",
	       "ZERO", "VOLATILE", "KSM PAGES", "SAVES ALONE", "MERGING (ALL)");
	for (size_t i = 0; i < n; i++) {
		const struct est_proc *p = &procs[i];

		if (p->error != EST_OK)
			continue;
		printf("%7d  %-15.15s %10s %10s %10s %10s %11s %13s\n", p->pid, p->comm,
		       human(p->c.pages * EST_PAGE_SIZE, a, sizeof(a)),
		       human(p->c.zero_pages * EST_PAGE_SIZE, b, sizeof(b)),
		       human(p->c.pages_volatile * EST_PAGE_SIZE, c, sizeof(c)),
		       human((unsigned long)p->c.pages_shared * EST_PAGE_SIZE, d, sizeof(d)),
		       human(p->c.saved_bytes, e, sizeof(e)),
		       human((unsigned long)p->merging_pages * EST_PAGE_SIZE, f, sizeof(f)));
	}
	printf("total: %zu process%s, %s resident anonymous: merged together they "
	       "would save %s (%.1f%%; pages_shared %ld, pages_sharing %ld)\n",
	       reported, reported == 1 ? "" : "es",
	       human(total->pages * EST_PAGE_SIZE, a, sizeof(a)),
	       human(total->saved_bytes, b, sizeof(b)),
	       total->pages ? 100.0 * (double)total->pages_sharing / (double)total->pages : 0.0,
	       total->pages_shared, total->pages_sharing);
}

int cmd_estimate(int argc, char **argv)
{
	struct est_opts o = { 0 };
	struct progress_state ps = { .tty = isatty(2) == 1 };
	struct est_counters total;
	struct est_proc *procs;
	struct est_stats st;
	bool json = false, stats = false;
	int progress = -1, status = 0, err;
	size_t n = 0, reported = 0;

	procs = calloc((size_t)argc, sizeof(*procs));
	if (!procs) {
		fprintf(stderr, "samepage estimate: out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			free(procs);
			return 0;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--mergeable")) {
			o.mergeable = true;
		} else if (!strcmp(a, "--progress")) {
			progress = 1;
		} else if (!strcmp(a, "--no-progress")) {
			progress = 0;
		} else if (!strcmp(a, "--stats")) {
			stats = true;	/* timings on stderr (for the benchmark) */
		} else if (!strncmp(a, "--rate", 6) && (a[6] == '=' || !a[6])) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;

			if (!v) {
				free(procs);
				return usage_error("option '%s' needs a number of MiB/s", "--rate");
			}
			errno = 0;
			o.rate_mib = strtod(v, &end);
			if (errno || end == v || *end || !(o.rate_mib > 0) || o.rate_mib > 1e9) {
				free(procs);
				return usage_error("--rate: '%s' is not a positive number of MiB/s", v);
			}
		} else if (!strcmp(a, "--")) {
			for (i++; i < argc; i++) {
				if (!parse_pid(argv[i], &procs[n].pid)) {
					free(procs);
					return usage_error("'%s' is not a process id", argv[i]);
				}
				n++;
			}
		} else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
			free(procs);
			return usage_error("unknown option '%s'", a);
		} else if (!parse_pid(a, &procs[n++].pid)) {
			free(procs);
			return usage_error("'%s' is not a process id", a);
		}
	}
	if (!n) {
		free(procs);
		return usage_error("%sno process id given", "");
	}
	ps.on = progress < 0 ? ps.tty : progress == 1;
	o.progress = on_progress;
	o.progress_arg = &ps;

	err = estimate_run(&o, procs, n, &total, &st);
	if (ps.shown && ps.tty)
		fprintf(stderr, "\r\033[K");
	if (err) {
		fprintf(stderr, "samepage estimate: %s\n", strerror(-err));
		free(procs);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		char why[512];

		if (procs[i].error == EST_OK) {
			reported++;
			continue;
		}
		fprintf(stderr, "samepage estimate: pid %d: %s\n", procs[i].pid,
			estimate_strerror(&procs[i], why, sizeof(why)));
		status = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (procs[i].error == EST_OK && procs[i].shared_frames) {
			fprintf(stderr, "samepage estimate: note: pages mapped more than "
				"once (fork) are counted as copies: their physical pages are "
				"visible to root only\n");
			break;
		}
	qsort(procs, n, sizeof(*procs), cmp_saved);
	if (json)
		print_json(procs, n, &total, reported);
	else
		print_table(procs, n, &total, reported);
	if (stats)
		fprintf(stderr, "samepage estimate: read %.1f MiB in %.3f s (%.2f GiB/s, "
			"hashing included); engine %.3f s on %lu pages (%u full scans); "
			"total %.3f s\n", (double)st.bytes_read / 1048576.0, st.read_seconds,
			st.read_seconds > 0 ? (double)st.bytes_read / 1073741824.0 /
			st.read_seconds : 0.0, st.engine_seconds, st.engine_pages,
			st.full_scans, st.total_seconds);
	fflush(stdout);
	free(procs);
	return status;
}

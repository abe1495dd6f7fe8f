/* SPDX-License-Identifier: MIT */
/*
 * proc_run.c - `samepage bench --processes N`: the reference workload spread
 * over N child processes, one region each, merged across the processes:
 *
 *   kernel:   each child maps, fills and madvise(MADV_MERGEABLE)s its
 *             region; ksmd merges (kernel_ksm.c, under the machine's KSM
 *             lock, every knob restored);
 *   samepage: a `samepage daemon` started for the run on a private socket;
 *             each child is a client (samepage_connect, samepage_alloc) and
 *             fills its region; the daemon's scanner merges.
 *
 * Both are measured by the same rule (converged when pages_sharing stays
 * the same for two full scans).  CPU: ksmd's; for samepage the daemon
 * process's (all its threads: the scanner, and the main thread answering
 * requests, the bench's polls included) plus every client thread but the
 * main one (the agent, which does the merges), which only waits meanwhile.
 * Every child reads its region back while it is merged.  This process only
 * watches (a control connection, no thread), so that its forks are plain.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "proto.h"
#include "samepage.h"

#define CHILD_MS	600000	/* a child's answer, at most */

struct child {
	pid_t pid;
	int cmd;	/* we write: 'v' verify, 'q' (or EOF) quit */
	int ans;	/* we read: one int64 per step, >= 0 ok, < 0 -errno */
};

struct procs {
	const struct bench_opts *o;
	struct child *c;
	unsigned int n;
};

static void say(int fd, int64_t v)
{
	if (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		_exit(1);
}

static long verify_region(const char *mem, unsigned int region, const struct bench_layout *l)
{
	static _Alignas(64) char want[64 * BENCH_PAGE_SIZE];
	const unsigned long chunk = sizeof(want) / BENCH_PAGE_SIZE;
	long bad = 0;

	for (unsigned long pg = 0; pg < l->pages; pg += chunk) {
		unsigned long n = l->pages - pg < chunk ? l->pages - pg : chunk;

		bench_fill_pages(want, region, pg, n, l);
		for (unsigned long j = 0; j < n; j++)
			if (memcmp(mem + (pg + j) * BENCH_PAGE_SIZE, want + j * BENCH_PAGE_SIZE,
				   BENCH_PAGE_SIZE)) {
				if (bad < 5)
					fprintf(stderr, "bench: process %u: page %lu does not read "
						"what was written\n", region, pg + j);
				bad++;
			}
	}
	return bad;
}

/* A child: region @i, a client of the daemon at @sock, or (NULL) mergeable
 * for the kernel's KSM. */
static void child_main(const struct bench_opts *o, unsigned int i, const char *sock,
		       int cmd, int ans)
{
	size_t len = o->pages * BENCH_PAGE_SIZE;
	struct bench_layout l;
	struct samepage *sp = NULL;
	char *p, c;
	int err;

	bench_layout(o, &l);
	if (sock) {
		err = samepage_connect(&sp, sock);
		if (err) {
			fprintf(stderr, "bench: process %u: samepage_connect: %s\n", i,
				samepage_last_error());
			say(ans, err);
			_exit(1);
		}
		p = samepage_alloc(sp, len);
		if (!p) {
			say(ans, -errno);
			_exit(1);
		}
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			say(ans, -errno);
			_exit(1);
		}
	}
	bench_fill_pages(p, i, 0, o->pages, &l);
	if (!sock && madvise(p, len, MADV_MERGEABLE)) {
		say(ans, -errno);
		_exit(1);
	}
	say(ans, 0);
	while (read(cmd, &c, 1) == 1 && c == 'v')
		say(ans, verify_region(p, i, &l));
	if (sp)
		samepage_close(sp);
	_exit(0);
}

static void stop_children(struct procs *ps)
{
	for (unsigned int i = 0; i < ps->n; i++) {
		if (ps->c[i].pid <= 0)
			continue;
		close(ps->c[i].cmd);	/* EOF: it leaves */
		close(ps->c[i].ans);
		while (waitpid(ps->c[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		ps->c[i].pid = 0;
	}
	free(ps->c);
	ps->c = NULL;
}

/* One answer of every child: their sum, or the first error. */
static int64_t gather(struct procs *ps)
{
	int64_t sum = 0;

	for (unsigned int i = 0; i < ps->n; i++) {
		struct pollfd pfd = { .fd = ps->c[i].ans, .events = POLLIN };
		int64_t v;

		if (poll(&pfd, 1, CHILD_MS) != 1 ||
		    read(ps->c[i].ans, &v, sizeof(v)) != (ssize_t)sizeof(v))
			return -EIO;
		if (v < 0)
			return v;
		sum += v;
	}
	return sum;
}

static int start_children(struct procs *ps, const struct bench_opts *o, const char *sock,
			  int keep_fd)
{
	ps->o = o;
	ps->n = 0;
	ps->c = calloc(o->regions, sizeof(*ps->c));
	if (!ps->c)
		return -ENOMEM;
	fflush(NULL);
	for (unsigned int i = 0; i < o->regions; i++) {
		int a[2], b[2];

		if (pipe(a))
			return -errno;
		if (pipe(b)) {
			close(a[0]);
			close(a[1]);
			return -errno;
		}
		pid_t pid = fork();

		if (pid < 0) {
			close(a[0]);
			close(a[1]);
			close(b[0]);
			close(b[1]);
			return -errno;
		}
		if (pid == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (keep_fd >= 0)
				close(keep_fd);
			for (unsigned int j = 0; j < ps->n; j++) {
				close(ps->c[j].cmd);
				close(ps->c[j].ans);
			}
			close(a[1]);
			close(b[0]);
			child_main(o, i, sock, a[0], b[1]);
		}
		close(a[0]);
		close(b[1]);
		ps->c[ps->n++] = (struct child){ pid, a[1], b[0] };
	}
	return 0;
}

static long pid_pss(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static long children_pss(const struct procs *ps)
{
	long sum = 0;

	for (unsigned int i = 0; i < ps->n; i++) {
		long v = pid_pss(ps->c[i].pid);

		if (v < 0)
			return -1;
		sum += v;
	}
	return sum;
}

/* CPU seconds of every thread of @pid, but its main thread if @skip_main. */
static double threads_cpu(pid_t pid, bool skip_main)
{
	char path[64];
	struct dirent *de;
	double sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		int tid = atoi(de->d_name);

		if (tid <= 0 || (skip_main && tid == pid))
			continue;
		double v = bench_task_cpu(pid, tid);

		if (v > 0)
			sum += v;
	}
	closedir(d);
	return sum;
}

static void verify_merged(void *arg, struct bench_result *r)
{
	struct procs *ps = arg;
	int64_t bad;

	r->pss_after_kb = children_pss(ps);
	r->avail_after_kb = bench_meminfo_kb("MemAvailable");
	for (unsigned int i = 0; i < ps->n; i++)
		(void)!write(ps->c[i].cmd, "v", 1);	/* (else its answer is missing) */
	bad = gather(ps);
	r->content_errors = bad < 0 ? (long)ps->n * (long)ps->o->pages : bad;
	if (bad < 0)
		fprintf(stderr, "bench: a process did not read its region back: %s\n",
			strerror((int)-bad));
}

int bench_proc_kernel_run(const struct bench_opts *o, struct bench_result *r)
{
	struct procs ps = { 0 };
	int lock, err;
	double t;

	bench_result_init(r);
	/* the kernel's KSM is one per machine: hold its lock while our
	 * regions are mergeable */
	lock = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock >= 0 && flock(lock, LOCK_EX)) {
		close(lock);
		lock = -1;
	}
	t = bench_now();
	err = start_children(&ps, o, NULL, -1);
	if (!err) {
		int64_t v = gather(&ps);

		err = v < 0 ? (int)v : 0;
	}
	if (err) {
		fprintf(stderr, "bench: kernel: the processes could not fill their regions: %s\n",
			strerror(-err));
		goto out;
	}
	double fill = bench_now() - t;
	long pss0 = children_pss(&ps), avail0 = bench_meminfo_kb("MemAvailable");

	bench_progress("kernel: %u processes filled; run=1", ps.n);
	err = bench_kernel_converge_mergeable(o, r, verify_merged, &ps);
	r->fill_seconds = fill;
	r->pss_before_kb = pss0;
	r->avail_before_kb = avail0;
	if (r->ran && r->converge_seconds >= 0)
		bench_progress("kernel: converged after %.2f s: shared %ld, sharing %ld",
			       r->converge_seconds, r->pages_shared, r->pages_sharing);
	else if (r->ran)
		bench_progress("kernel: no convergence after %u s: shared %ld, sharing %ld",
			       o->timeout_s, r->pages_shared, r->pages_sharing);
out:
	stop_children(&ps);
	if (lock >= 0) {
		flock(lock, LOCK_UN);
		close(lock);
	}
	return err;
}

static long ctl_counter(struct cli_conn *c, const char *name)
{
	long v = -1;

	return cli_conn_get(c, name, &v) ? -1 : v;
}

/* The daemon's counters at one moment: one STAT, answered under its lock. */
enum { SN_FULL_SCANS, SN_PAGES_SCANNED, SN_SHARED, SN_SHARING, SN_UNSHARED, SN_VOLATILE,
       SN_CHAINS, SN_DUPS, SN_PROFIT, SN_ZERO, SN_N };
static const char *const snap_name[SN_N] = {
	"full_scans", "pages_scanned", "pages_shared", "pages_sharing", "pages_unshared",
	"pages_volatile", "stable_node_chains", "stable_node_dups", "general_profit",
	"ksm_zero_pages",
};

static int ctl_snapshot(struct cli_conn *c, long v[SN_N])
{
	uint64_t arg[4] = { SP_STAT_TEXT, 0, 0, 0 };
	bool counters = false, seen[SN_N] = { false };

	for (int k = 0; k < SN_N; k++)
		v[k] = -1;
	int err = cli_conn_ask(c, SP_MSG_STAT, arg, NULL, 0);

	if (err)
		return err;
	const char *p = c->pk->payload, *end = p + c->pk->plen;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		if (len && p[0] == '[')
			counters = len == 10 && !memcmp(p, "[counters]", 10);
		else if (counters)
			for (int k = 0; k < SN_N; k++) {
				size_t kl = strlen(snap_name[k]);

				if (len > kl + 1 && !memcmp(p, snap_name[k], kl) && p[kl] == ':') {
					v[k] = strtol(p + kl + 1, NULL, 10);
					seen[k] = true;
				}
			}
		p += len + 1;
	}
	for (int k = 0; k < SN_N; k++)
		if (!seen[k])
			return -EPROTO;	/* (general_profit may be negative) */
	return 0;
}

static double samepage_cpu(pid_t daemon, const struct procs *ps)
{
	double sum = threads_cpu(daemon, false);

	for (unsigned int i = 0; i < ps->n; i++)
		sum += threads_cpu(ps->c[i].pid, true);
	return sum;
}

int bench_proc_samepage_run(const struct bench_opts *o, struct bench_result *r)
{
	struct cli_daemon d;
	struct cli_conn c = { .fd = -1 };
	struct procs ps = { 0 };
	long pss_daemon0 = -1;
	int err, rc;
	double t;

	bench_result_init(r);
	err = cli_daemon_start(&d);
	if (err) {
		snprintf(r->why_not, sizeof(r->why_not), "cannot start `samepage daemon`: %s",
			 strerror(-err));
		return 0;
	}
	err = cli_conn_open(&c, d.sock);
	if (err) {
		snprintf(r->why_not, sizeof(r->why_not), "cannot connect to the daemon: %s",
			 strerror(-err));
		err = 0;
		goto out;
	}
	t = bench_now();
	err = start_children(&ps, o, d.sock, c.fd);
	if (!err) {
		int64_t v = gather(&ps);

		err = v < 0 ? (int)v : 0;
	}
	if (err) {
		snprintf(r->why_not, sizeof(r->why_not), "the client processes could not fill "
			 "their regions: %s", strerror(-err));
		err = 0;	/* (no userfaultfd here, typically: not a failure) */
		goto out;
	}
	r->fill_seconds = bench_now() - t;
	if (cli_conn_set(&c, "pages_to_scan", o->pages_to_scan) ||
	    cli_conn_set(&c, "sleep_millisecs", 0)) {
		fprintf(stderr, "bench: samepage: cannot set the daemon's knobs\n");
		err = -EIO;
		goto out;
	}
	r->ran = true;
	r->pss_before_kb = children_pss(&ps);
	pss_daemon0 = pid_pss(d.pid);
	r->avail_before_kb = bench_meminfo_kb("MemAvailable");
	r->loadavg = bench_loadavg();

	long sn[SN_N];

	if (ctl_snapshot(&c, sn)) {
		fprintf(stderr, "bench: samepage: the daemon does not answer STAT\n");
		err = -EIO;
		goto out;
	}
	long scans0 = sn[SN_FULL_SCANS], scanned0 = sn[SN_PAGES_SCANNED];
	struct bench_converge cv;
	bool converged = false;

	bench_progress("samepage: %u client processes filled; run=1 (pages_to_scan %lu, "
		       "sleep_millisecs 0)", ps.n, o->pages_to_scan);
	double cpu0 = samepage_cpu(d.pid, &ps), t0 = bench_now();

	bench_converge_init(&cv, scans0, sn[SN_SHARING], t0);
	err = cli_conn_set(&c, "run", 1);
	if (err) {
		fprintf(stderr, "bench: samepage: run=1: %s\n", strerror(-err));
		goto out;
	}
	while (!converged) {
		bench_sleep_ms(2);	/* (each poll is a request the daemon answers) */
		double now;

		if (ctl_snapshot(&c, sn)) {
			fprintf(stderr, "bench: samepage: the daemon stopped answering\n");
			err = -EIO;
			goto out;
		}
		now = bench_now();
		converged = bench_converge_step(&cv, sn[SN_FULL_SCANS], sn[SN_SHARING], now,
						"samepage");
		if (!converged && now - t0 > o->timeout_s) {
			fprintf(stderr, "bench: samepage: no convergence after %u s\n", o->timeout_s);
			break;
		}
	}
	double t1 = bench_now();

	r->cpu_seconds = samepage_cpu(d.pid, &ps) - cpu0;
	r->converge_seconds = converged ? t1 - t0 : -1;
	r->settled_seconds = cv.settled_at - t0;
	/* the counters as that last poll saw them, one state: read one by
	 * one, each waiting for the lock (a batch), they would show the scans
	 * run meanwhile */
	r->full_scans = sn[SN_FULL_SCANS] - scans0;
	r->pages_scanned = sn[SN_PAGES_SCANNED] - scanned0;
	r->pages_shared = sn[SN_SHARED];
	r->pages_sharing = sn[SN_SHARING];
	r->pages_unshared = sn[SN_UNSHARED];
	r->pages_volatile = sn[SN_VOLATILE];
	r->stable_node_chains = sn[SN_CHAINS];
	r->stable_node_dups = sn[SN_DUPS];
	if (r->pages_scanned > 0)
		r->scan_us_per_page = r->cpu_seconds * 1e6 / (double)r->pages_scanned;
	long items = r->pages_shared + r->pages_sharing + r->pages_unshared + r->pages_volatile;
	long profit = sn[SN_PROFIT];
	long zero = sn[SN_ZERO];

	if (items > 0 && zero >= 0 && profit >= 0)
		r->bytes_per_rmap_item =
			(double)((r->pages_sharing + zero) * (long)BENCH_PAGE_SIZE - profit) /
			(double)items;
	if (converged && o->steady_scans) {
		(void)cli_conn_set(&c, "run", 1);
		long s0 = ctl_counter(&c, "full_scans"), s = s0;
		double c0 = samepage_cpu(d.pid, &ps), ts = bench_now();

		while (s >= 0 && s < s0 + (long)o->steady_scans && bench_now() - ts < o->timeout_s) {
			bench_sleep_ms(2);
			s = ctl_counter(&c, "full_scans");
		}
		if (s > s0)
			r->steady_cpu_per_scan = (samepage_cpu(d.pid, &ps) - c0) / (double)(s - s0);
	}
	bench_progress("samepage: %s after %.2f s: shared %ld, sharing %ld",
		       converged ? "converged" : "stopped", t1 - t0, r->pages_shared,
		       r->pages_sharing);
	cli_conn_set(&c, "run", 0);	/* (keeping the merges) */
	verify_merged(&ps, r);
	/* the daemon's share of the store pages is memory too */
	if (r->pss_after_kb >= 0 && r->pss_before_kb >= 0 && pss_daemon0 >= 0) {
		long v = pid_pss(d.pid);

		if (v >= 0) {
			r->pss_before_kb += pss_daemon0;
			r->pss_after_kb += v;
		}
	}
out:
	stop_children(&ps);
	if (c.fd >= 0)
		cli_conn_close(&c);
	rc = cli_daemon_stop(&d);
	if (rc && !err && r->ran) {
		fprintf(stderr, "bench: samepage: the daemon exited with status %d\n", rc);
		err = -EIO;
	}
	return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * demo_workers.c - `samepage demo`: worker processes with largely identical
 * memory under one daemon, the memory given back shown live.
 *
 *   1. a daemon: the one at --socket, else `samepage daemon` started here
 *      on a private socket (stopped at the end, which must exit 0);
 *   2. N worker processes (fork), each a client (samepage_connect) that
 *      fills its memory: 3/4 of the pages the same image in every worker,
 *      1/4 its own;
 *   3. run=1: a line per full scan with pages_sharing, the workers' total
 *      Pss (and the daemon's) and MemAvailable, before and now, until
 *      pages_sharing stays the same for two full scans;
 *   4. every worker reads all its memory back, then writes to some of its
 *      merged pages (breaking their sharing) and reads everything back
 *      again; after two more full scans once more, then after
 *      samepage_close once more;
 *   5. the last line: memory given back, and whether every page of every
 *      worker read what it wrote.  Exit status 1 on any mismatch or
 *      failure, 77 when this process may not use userfaultfd.
 *
 * This process only watches, through a control connection; it starts no
 * thread, so that its forks are plain copies.  With --socket the check for
 * userfaultfd is left to the workers: a root daemon passes its
 * /dev/userfaultfd to clients that may not make one themselves.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "proto.h"
#include "samepage.h"

#define WRITE_EVERY	16	/* after merging, each worker writes every 16th shared page */
#define ANSWER_MS	120000	/* a worker's answer, at most */

struct answer {
	int32_t status;		/* 0 or a negative errno */
	int32_t bad;		/* pages that did not read what was written */
};

struct worker {
	pid_t pid;
	int cmd;		/* we write */
	int ans;		/* we read */
	int bad;
	bool failed;
};

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long kb_field(const char *path, const char *field)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t n = strlen(field);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static long pss_of(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	return kb_field(path, "Pss");
}

/* Page @i of worker @w: the common image below @common, its own above;
 * @written: the worker has since written to every WRITE_EVERY-th common
 * page (its first 8 bytes flipped with a value of its own). */
static void page_content(unsigned char *p, size_t page, int w, size_t i, size_t common,
			 bool written)
{
	uint64_t x = (i < common ? i : i + ((uint64_t)(w + 1) << 40)) * 0x9e3779b97f4a7c15ull + 7;

	for (size_t k = 0; k < page; k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + k, &x, 8);
	}
	if (written && i < common && i % WRITE_EVERY == 0) {
		uint64_t v, tag = (uint64_t)(w + 1) * 0x0101010101010101ull;

		memcpy(&v, p, 8);
		v ^= tag;
		memcpy(p, &v, 8);
	}
}

static int verify(const unsigned char *mem, unsigned char *want, size_t page, int w,
		  size_t pages, size_t common, bool written)
{
	int bad = 0;

	for (size_t i = 0; i < pages; i++) {
		page_content(want, page, w, i, common, written);
		if (memcmp(want, mem + i * page, page)) {
			if (bad < 5)
				fprintf(stderr, "samepage demo: worker %d: page %zu does not "
					"read what was written\n", w, i);
			bad++;
		}
	}
	return bad;
}

static void answer(int fd, int status, int bad)
{
	struct answer a = { status, bad };

	if (write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
		_exit(1);
}

static char command(int fd)
{
	char c = 0;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	return c;
}

static void worker_main(int w, int cmd, int ans, const char *sock, size_t pages)
{
	size_t page = page_size(), common = pages * 3 / 4;
	struct samepage *sp;
	unsigned char *mem, *want = malloc(page);
	int bad = 0, err;

	err = samepage_connect(&sp, sock);
	if (err) {
		fprintf(stderr, "samepage demo: worker %d: samepage_connect: %s\n", w,
			samepage_last_error());
		answer(ans, err, 0);
		_exit(1);
	}
	mem = samepage_alloc(sp, pages * page);
	if (!mem || !want) {
		fprintf(stderr, "samepage demo: worker %d: samepage_alloc: %s\n", w,
			samepage_last_error());
		answer(ans, -ENOMEM, 0);
		_exit(1);
	}
	for (size_t i = 0; i < pages; i++)
		page_content(mem + i * page, page, w, i, common, false);
	answer(ans, 0, 0);

	/* merged: read back, write (copy-on-write), read back */
	if (command(cmd) != 'c')
		_exit(1);
	bad = verify(mem, want, page, w, pages, common, false);
	for (size_t i = 0; i < common; i += WRITE_EVERY) {
		uint64_t v, tag = (uint64_t)(w + 1) * 0x0101010101010101ull;

		memcpy(&v, mem + i * page, 8);
		v ^= tag;
		memcpy(mem + i * page, &v, 8);
	}
	bad += verify(mem, want, page, w, pages, common, true);
	answer(ans, 0, bad);

	/* scanned again; then private again */
	if (command(cmd) != 'v')
		_exit(1);
	bad = verify(mem, want, page, w, pages, common, true);
	err = samepage_close(sp);
	if (err)
		fprintf(stderr, "samepage demo: worker %d: samepage_close: %s\n", w,
			samepage_last_error());
	bad += verify(mem, want, page, w, pages, common, true);
	answer(ans, err, bad);
	_exit(bad || err ? 1 : 0);
}

/* Each worker's answer; false if one failed or did not answer. */
static bool collect(struct worker *wk, unsigned int n, const char *step)
{
	bool ok = true;

	for (unsigned int i = 0; i < n; i++) {
		struct pollfd pfd = { .fd = wk[i].ans, .events = POLLIN };
		struct answer a;

		if (wk[i].failed) {
			ok = false;
			continue;
		}
		if (poll(&pfd, 1, ANSWER_MS) != 1 ||
		    read(wk[i].ans, &a, sizeof(a)) != (ssize_t)sizeof(a)) {
			fprintf(stderr, "samepage demo: worker %u did not answer (%s)\n", i, step);
			wk[i].failed = true;
			ok = false;
			continue;
		}
		if (a.status) {
			fprintf(stderr, "samepage demo: worker %u failed (%s): %s\n", i, step,
				strerror(-a.status));
			wk[i].failed = true;
			ok = false;
		}
		wk[i].bad += a.bad;
		if (a.bad)
			ok = false;
	}
	return ok;
}

static void tell(struct worker *wk, unsigned int n, char c)
{
	for (unsigned int i = 0; i < n; i++)
		if (!wk[i].failed && write(wk[i].cmd, &c, 1) != 1)
			wk[i].failed = true;
}

static long counter(struct cli_conn *c, const char *name)
{
	long v = -1;

	return cli_conn_get(c, name, &v) ? -1 : v;
}

struct mem_now {
	long workers_kb, daemon_kb, avail_kb;
};

static void measure(struct cli_conn *c, const struct worker *wk, unsigned int n,
		    struct mem_now *m)
{
	m->workers_kb = 0;
	for (unsigned int i = 0; i < n; i++) {
		long v = pss_of(wk[i].pid);

		if (v > 0)
			m->workers_kb += v;
	}
	m->daemon_kb = c->daemon_pid > 0 ? pss_of(c->daemon_pid) : -1;
	m->avail_kb = kb_field("/proc/meminfo", "MemAvailable");
}

static void progress_line(struct cli_conn *c, const struct worker *wk, unsigned int n,
			  long scans, const struct mem_now *before)
{
	struct mem_now m;

	measure(c, wk, n, &m);
	printf("  full scan %-3ld pages_sharing %-7ld workers' Pss %5ld MiB (before %ld)",
	       scans, counter(c, "pages_sharing"), m.workers_kb >> 10, before->workers_kb >> 10);
	if (m.daemon_kb >= 0)
		printf(", daemon's %ld", m.daemon_kb >> 10);
	printf("; MemAvailable %ld MiB (before %ld)\n", m.avail_kb >> 10, before->avail_kb >> 10);
	fflush(stdout);
}

/* Watch full scans until pages_sharing stays the same for two of them (or
 * @more scans when @more > 0); a line per full scan.  true when done. */
static bool watch(struct cli_conn *c, const struct worker *wk, unsigned int n,
		  const struct mem_now *before, int more, unsigned int timeout_s)
{
	long last = counter(c, "full_scans"), at_end[3] = { -1, -2, -3 };
	double t0 = now_s();
	int seen = 0;

	while (now_s() - t0 < timeout_s) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
		long scans = counter(c, "full_scans");

		if (scans < 0)
			return false;
		if (scans == last)
			continue;
		last = scans;
		at_end[2] = at_end[1];
		at_end[1] = at_end[0];
		at_end[0] = counter(c, "pages_sharing");
		seen++;
		progress_line(c, wk, n, scans, before);
		if (more > 0 ? seen >= more :
		    at_end[0] > 0 && at_end[0] == at_end[1] && at_end[1] == at_end[2])
			return true;
	}
	fprintf(stderr, "samepage demo: no convergence after %u s\n", timeout_s);
	return false;
}

/* Can this process make a userfaultfd the library can use?  Asked in a
 * child, so that this process stays without threads; @why gets the
 * library's words when not. */
static int probe_uffd(char *why, size_t len)
{
	int p[2], st;
	ssize_t n;

	if (pipe(p))
		return -errno;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct samepage *sp = NULL;
		int err = samepage_open(&sp, 0);

		close(p[0]);
		if (err) {
			const char *e = samepage_last_error();

			if (write(p[1], e, strlen(e)) < 0)
				_exit(2);
			_exit(1);
		}
		samepage_close(sp);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], why, len - 1);
	why[n > 0 ? n : 0] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EPERM;
}

/* The daemon's figures per merge domain and per process (`ctl stat`), a
 * line each, with the fields that tell the memory given back. */
static void show_domains(struct cli_conn *c)
{
	static const char *const keep[] = {
		"processes", "store_pages", "pages_shared", "pages_sharing", "general_profit",
		"ksm_merging_pages", "ksm_process_profit", NULL,
	};
	uint64_t arg[4] = { 0 };	/* SP_STAT_TEXT */
	bool open_line = false, in_section = false;

	if (cli_conn_ask(c, SP_MSG_STAT, arg, NULL, 0))
		return;
	const char *s = c->pk->payload, *end = s + c->pk->plen;

	printf("  the daemon's figures (samepage ctl stat):\n");
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		int len = (int)((nl ? nl : end) - s);

		if (len > 8 && (!strncmp(s, "[domain ", 8) || !strncmp(s, "[process ", 9))) {
			printf("%s    %.*s", open_line ? "\n" : "", len - 2, s + 1);
			open_line = in_section = true;
		} else if (len && s[0] == '[') {
			in_section = false;
		} else if (in_section) {
			for (int k = 0; keep[k]; k++) {
				size_t kl = strlen(keep[k]);

				if ((size_t)len > kl + 1 && !strncmp(s, keep[k], kl) && s[kl] == ':')
					printf(" %.*s=%.*s", (int)kl, s, len - (int)kl - 2, s + kl + 2);
			}
		}
		s += len + 1;
	}
	if (open_line)
		printf("\n");
	fflush(stdout);
}

static const char *const saved_knobs[] = { "pages_to_scan", "sleep_millisecs", "run" };
#define NSAVED (sizeof(saved_knobs) / sizeof(saved_knobs[0]))

int demo_workers(const struct demo_opts *o)
{
	size_t page = page_size(), pages = (size_t)(o->mib << 20) / page;
	size_t common = pages * 3 / 4;
	struct cli_daemon daemon = { .pid = -1 };
	struct worker *wk;
	struct cli_conn c;
	struct mem_now before, merged;
	long saved[NSAVED];
	const char *sock = o->socket;
	char why[512];
	bool ok = true, started = false, converged;
	long shared_at, sharing_at;
	int err, status = 0;

	if (!o->socket && probe_uffd(why, sizeof(why))) {
		if (o->explain)
			demo_explain_unavailable(why);
		else
			fprintf(stderr, "samepage demo: %s\n", why[0] ? why : "no userfaultfd");
		return 77;
	}
	if (!sock) {
		err = cli_daemon_start(&daemon);
		if (err) {
			fprintf(stderr, "samepage demo: cannot start `samepage daemon`: %s\n",
				strerror(-err));
			return 1;
		}
		sock = daemon.sock;
		started = true;
	}
	err = cli_conn_open(&c, sock);
	if (err) {
		fprintf(stderr, "samepage demo: cannot connect to the daemon at %s: %s\n", sock,
			strerror(-err));
		if (started)
			cli_daemon_stop(&daemon);
		return 1;
	}
	for (size_t k = 0; k < NSAVED; k++)
		saved[k] = counter(&c, saved_knobs[k]);

	wk = calloc(o->workers, sizeof(*wk));
	if (!wk) {
		status = 1;
		goto out_conn;
	}
	printf("samepage demo: %u worker processes of %lu MiB each, clients of one samepage\n"
	       "daemon (%s%s).  3/4 of every worker's pages\n"
	       "are the same image in all of them, 1/4 its own: the daemon merges them\n"
	       "across the processes.\n\n", o->workers, o->mib,
	       started ? "started here on a private socket" : "at ", started ? "" : sock);
	fflush(stdout);
	for (unsigned int i = 0; i < o->workers; i++) {
		int a[2], b[2];

		if (pipe(a) || pipe(b)) {
			status = 1;
			goto out_workers;
		}
		wk[i].pid = fork();
		if (wk[i].pid < 0) {
			status = 1;
			goto out_workers;
		}
		if (wk[i].pid == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(c.fd);
			close(a[1]);
			close(b[0]);
			for (unsigned int j = 0; j < i; j++) {
				close(wk[j].cmd);
				close(wk[j].ans);
			}
			worker_main((int)i, a[0], b[1], sock, pages);
		}
		close(a[0]);
		close(b[1]);
		wk[i].cmd = a[1];
		wk[i].ans = b[0];
	}
	if (!collect(wk, o->workers, "filling its memory")) {
		status = 1;
		goto out_workers;
	}
	measure(&c, wk, o->workers, &before);
	printf("  filled: %u x %zu pages; workers' Pss %ld MiB, MemAvailable %ld MiB\n",
	       o->workers, pages, before.workers_kb >> 10, before.avail_kb >> 10);
	printf("  run=1: one line per full scan of the daemon's scanner\n");
	fflush(stdout);

	unsigned long pts = pages * o->workers / 8;

	err = cli_conn_set(&c, "pages_to_scan", pts < 100 ? 100 : pts);
	if (!err)
		err = cli_conn_set(&c, "sleep_millisecs", 20);
	if (!err)
		err = cli_conn_set(&c, "run", 1);
	if (err == -EPERM && counter(&c, "run") == 1) {
		/* somebody else's daemon, already scanning: its knobs, then */
		printf("  (the daemon's knobs are not ours to set: its pages_to_scan %ld,"
		       " sleep_millisecs %ld)\n", counter(&c, "pages_to_scan"),
		       counter(&c, "sleep_millisecs"));
		err = 0;
	}
	if (err) {
		fprintf(stderr, "samepage demo: cannot set the daemon's knobs (run=1): %s%s\n",
			strerror(-err), err == -EPERM ? "; only root or the daemon's user may"
			" (samepage ctl set run 1)" : "");
		status = 1;
		goto out_workers;
	}
	converged = watch(&c, wk, o->workers, &before, 0, o->timeout_s);
	measure(&c, wk, o->workers, &merged);
	shared_at = counter(&c, "pages_shared");
	sharing_at = counter(&c, "pages_sharing");
	printf("  merged: pages_shared %ld, pages_sharing %ld (the images: %zu pages shared by"
	       " %u workers each)\n", shared_at, sharing_at, common, o->workers);
	if (!converged)
		status = 1;

	printf("  each worker reads its memory back, writes to every %dth shared page\n"
	       "  (a private copy for it, the others keep the image) and reads it all again\n",
	       WRITE_EVERY);
	fflush(stdout);
	tell(wk, o->workers, 'c');
	ok = collect(wk, o->workers, "checking its merged memory") && ok;
	if (!watch(&c, wk, o->workers, &before, 2, o->timeout_s))
		status = 1;
	printf("  after the writes: pages_shared %ld, pages_sharing %ld\n",
	       counter(&c, "pages_shared"), counter(&c, "pages_sharing"));
	show_domains(&c);
	tell(wk, o->workers, 'v');
	ok = collect(wk, o->workers, "checking its memory again, and after samepage_close") && ok;

out_workers:
	for (unsigned int i = 0; i < o->workers; i++) {
		int st;

		if (wk[i].pid <= 0)
			continue;
		close(wk[i].cmd);
		close(wk[i].ans);
		while (waitpid(wk[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			ok = false;
	}
	{
		long bad = 0;

		for (unsigned int i = 0; i < o->workers; i++)
			bad += wk[i].bad;
		free(wk);
		if (!status && !ok)
			status = 1;
		if (!status) {
			long b = before.workers_kb + (before.daemon_kb > 0 ? before.daemon_kb : 0);
			long m = merged.workers_kb + (merged.daemon_kb > 0 ? merged.daemon_kb : 0);

			printf("samepage demo: %u workers, %ld MiB of %lu MiB given back (Pss of"
			       " the workers%s %ld -> %ld MiB); every page read back as"
			       " written\n", o->workers, (b - m) >> 10, o->mib * o->workers,
			       before.daemon_kb > 0 && merged.daemon_kb > 0 ? " and the daemon" : "",
			       b >> 10, m >> 10);
		} else {
			printf("samepage demo: FAILED: %ld pages did not read back what was"
			       " written%s\n", bad, bad ? "" : " (a step failed: see above)");
		}
	}
out_conn:
	if (!started)	/* somebody else's daemon: put its knobs back */
		for (size_t k = NSAVED; k-- > 0;)
			if (saved[k] >= 0)
				cli_conn_set(&c, saved_knobs[k], (unsigned long)saved[k]);
	cli_conn_close(&c);
	if (started) {
		int rc = cli_daemon_stop(&daemon);

		if (rc) {
			fprintf(stderr, "samepage demo: the daemon exited with status %d on"
				" SIGTERM\n", rc);
			status = 1;
		}
	}
	fflush(stdout);
	return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * estimate_bench.c - `samepage bench --estimate`: the reference workload held
 * by --regions child processes (one region each, marked mergeable),
 * estimated by `samepage estimate`'s code (read speed, time, counters), then
 * merged by the kernel's KSM (time to converge, counters), side by side.
 * The estimate must equal the kernel's counters (or, without the kernel,
 * the expected ones).  The kernel's KSM is used under the machine's lock
 * (/tmp/samepage-kernel-ksm.lock), every knob restored afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "estimate.h"

struct holder {
	pid_t pid;
	int cmd;		/* write end: closing it (or 'q') ends the child */
};

/* A child holding region @i of the workload, mergeable; 0 or -errno. */
static int start_holder(const struct bench_opts *o, unsigned int i, struct holder *h)
{
	struct bench_layout l;
	int cmd[2], ack[2];
	char c = 0;

	bench_layout(o, &l);
	if (pipe(cmd) || pipe(ack))
		return -errno;
	fflush(NULL);
	h->pid = fork();
	if (h->pid < 0)
		return -errno;
	if (h->pid == 0) {
		size_t len = o->pages * BENCH_PAGE_SIZE;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		close(cmd[1]);
		close(ack[0]);
		if (p == MAP_FAILED)
			_exit(1);
		bench_fill_pages(p, i, 0, o->pages, &l);
		c = madvise(p, len, MADV_MERGEABLE) ? 'e' : 'r';
		if (write(ack[1], &c, 1) != 1)
			_exit(1);
		while (read(cmd[0], &c, 1) == 1 && c != 'q')
			;
		_exit(0);
	}
	close(cmd[0]);
	close(ack[1]);
	h->cmd = cmd[1];
	if (read(ack[0], &c, 1) != 1 || c != 'r') {
		close(ack[0]);
		return c == 'e' ? -EINVAL : -EIO;
	}
	close(ack[0]);
	return 0;
}

static void stop_holder(struct holder *h)
{
	char c = 'q';

	if (h->pid <= 0)
		return;
	if (write(h->cmd, &c, 1) != 1)
		kill(h->pid, SIGKILL);	/* our own child */
	close(h->cmd);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}

int bench_estimate(const struct bench_opts *o)
{
	struct holder *h = calloc(o->regions, sizeof(*h));
	struct est_proc *procs = calloc(o->regions, sizeof(*procs));
	struct est_opts eo = { .mergeable = true };
	struct est_counters total;
	struct est_stats st;
	struct bench_result k;
	long want_shared, want_sharing;
	int err = 0, status = 0, lock = -1;
	const char *ref = "expected";
	double t;

	bench_result_init(&k);
	if (!h || !procs) {
		free(h);
		free(procs);
		return 1;
	}
	/* Our regions are mergeable from now on: hold the KSM lock throughout. */
	lock = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock >= 0 && flock(lock, LOCK_EX)) {
		close(lock);
		lock = -1;
	}
	bench_progress("estimate: filling %u processes of %lu pages", o->regions, o->pages);
	t = bench_now();
	for (unsigned int i = 0; i < o->regions && !err; i++) {
		err = start_holder(o, i, &h[i]);
		procs[i].pid = h[i].pid;
	}
	if (err) {
		fprintf(stderr, "samepage bench: cannot start the processes: %s\n",
			strerror(-err));
		status = 1;
		goto out;
	}
	double fill = bench_now() - t;

	/* The estimate, reading from other processes as the command does. */
	double cpu = bench_thread_cpu();

	err = estimate_run(&eo, procs, o->regions, &total, &st);
	cpu = bench_thread_cpu() - cpu;
	if (err) {
		fprintf(stderr, "samepage bench: estimate: %s\n", strerror(-err));
		status = 1;
		goto out;
	}
	for (unsigned int i = 0; i < o->regions; i++)
		if (procs[i].error != EST_OK)
			status = 1;

	if (o->kernel) {
		err = bench_kernel_converge_mergeable(o, &k, NULL, NULL);
		if (err)
			status = 1;
		if (!k.ran)
			bench_progress("kernel: skipped: %s", k.why_not);
	}
	if (k.ran && k.converge_seconds >= 0) {
		want_shared = k.pages_shared;
		want_sharing = k.pages_sharing;
		ref = "kernel";
	} else {
		bench_expected(o, &want_shared, &want_sharing);
	}
	if (total.pages_shared != want_shared || total.pages_sharing != want_sharing) {
		fprintf(stderr, "samepage bench: estimate pages_shared %ld pages_sharing %ld, "
			"%s %ld %ld\n", total.pages_shared, total.pages_sharing, ref,
			want_shared, want_sharing);
		status = 1;
	}

	double target_gib = (double)total.pages * BENCH_PAGE_SIZE / (1 << 30);
	double read_gibs = st.read_seconds > 0 ?
		(double)st.bytes_read / (1 << 30) / st.read_seconds : 0;
	double whole_gibs = st.total_seconds > 0 ? target_gib / st.total_seconds : 0;

	if (o->json) {
		printf("{\"estimate\": {\"processes\": %u, \"pages\": %lu, \"bytes_read\": %llu, "
		       "\"read_seconds\": %.4f, \"read_gib_per_s\": %.3f, "
		       "\"engine_seconds\": %.4f, \"total_seconds\": %.4f, "
		       "\"target_gib_per_s\": %.3f, \"pages_shared\": %ld, "
		       "\"pages_sharing\": %ld, \"zero_pages\": %lu, \"fill_seconds\": %.3f},\n"
		       " \"kernel\": {\"ran\": %s, \"converge_seconds\": %.3f, "
		       "\"cpu_seconds\": %.3f, \"full_scans\": %ld, \"pages_shared\": %ld, "
		       "\"pages_sharing\": %ld}}\n",
		       o->regions, total.pages, (unsigned long long)st.bytes_read,
		       st.read_seconds, read_gibs, st.engine_seconds, st.total_seconds,
		       whole_gibs, total.pages_shared, total.pages_sharing, total.zero_pages,
		       fill, k.ran ? "true" : "false", k.converge_seconds, k.cpu_seconds,
		       k.full_scans, k.pages_shared, k.pages_sharing);
	} else {
		printf("samepage bench --estimate: %u processes x %lu pages (%.2f GiB of "
		       "target memory)\n", o->regions, o->pages, target_gib);
		printf("%-28s %18s %18s\n", "", "samepage estimate", "kernel's KSM");
		printf("%-28s %18ld %18ld\n", "pages_shared", total.pages_shared,
		       k.ran ? k.pages_shared : -1L);
		printf("%-28s %18ld %18ld\n", "pages_sharing", total.pages_sharing,
		       k.ran ? k.pages_sharing : -1L);
		printf("%-28s %16.3f s %16.3f s\n", "time to the counters", st.total_seconds,
		       k.ran ? k.converge_seconds : -1.0);
		printf("%-28s %16.3f s %16.3f s\n", "CPU", cpu,
		       k.ran ? k.cpu_seconds : -1.0);
		printf("read and hashed: %.1f MiB (two reads and the checks) in %.3f s = "
		       "%.2f GiB/s; engine %.3f s on %lu pages; whole estimate %.2f GiB/s "
		       "of target memory\n", (double)st.bytes_read / (1 << 20), st.read_seconds,
		       read_gibs, st.engine_seconds, st.engine_pages, whole_gibs);
		if (!k.ran)
			printf("kernel's KSM: not run (%s)\n", o->kernel ? k.why_not : "--no-kernel");
	}
out:
	for (unsigned int i = 0; i < o->regions; i++)
		stop_holder(&h[i]);
	if (lock >= 0) {
		flock(lock, LOCK_UN);
		close(lock);
	}
	free(h);
	free(procs);
	fflush(stdout);
	return status;
}

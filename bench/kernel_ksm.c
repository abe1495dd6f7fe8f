/* SPDX-License-Identifier: MIT */
/*
 * kernel_ksm.c - the reference: the same workload merged by the kernel's
 * own KSM (ksmd), measured the same way as samepage.
 *
 * It needs root and a writable /sys/kernel/mm/ksm, and it refuses to run
 * when somebody else is using KSM (run != 0 or pages already merged): its
 * counters are global, and the run=2 at the end would unmerge their pages.
 *
 * Every knob it touches is saved first and restored at the end, also on
 * SIGINT/SIGTERM/SIGHUP: run=2 first (our pages become private again), then
 * the other knobs, then run last.  The restore path uses only open/write/
 * close, so that it is safe inside a signal handler.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <unistd.h>

#include "bench.h"

#define KSM_DIR "/sys/kernel/mm/ksm/"

/* Every knob the benchmark may write; run must stay first. */
static const char *const knob_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"max_page_sharing", "use_zero_pages", "smart_scan",
	"stable_node_chains_prune_millisecs", "advisor_mode",
};
#define NR_KNOBS (sizeof(knob_names) / sizeof(knob_names[0]))

static struct {
	char value[128];	/* as read, ready to write back */
	bool present;		/* the file exists on this kernel */
	bool touched;		/* we wrote it: restore it */
} saved[NR_KNOBS];
static volatile sig_atomic_t restore_armed;

/* Read a sysfs file into @buf (newline stripped).  0 or -errno. */
static int sysfs_read(const char *name, char *buf, size_t size)
{
	char path[128];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static long sysfs_long(const char *name)
{
	char buf[64];

	if (sysfs_read(name, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* The kernel's counters after a run, into @r (its CPU already there). */
static void read_counters(struct bench_result *r)
{
	r->pages_shared = sysfs_long("pages_shared");
	r->pages_sharing = sysfs_long("pages_sharing");
	r->pages_unshared = sysfs_long("pages_unshared");
	r->pages_volatile = sysfs_long("pages_volatile");
	r->stable_node_chains = sysfs_long("stable_node_chains");
	r->stable_node_dups = sysfs_long("stable_node_dups");
	if (r->pages_scanned > 0)
		r->scan_us_per_page = r->cpu_seconds * 1e6 / (double)r->pages_scanned;
}

/* Async-signal-safe: no stdio, no allocation. */
static int sysfs_write(const char *name, const char *value)
{
	char path[128] = KSM_DIR;
	size_t dl = sizeof(KSM_DIR) - 1, nl = strlen(name), vl = strlen(value);
	int fd, err = 0;

	if (dl + nl + 1 > sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path + dl, name, nl + 1);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, vl) != (ssize_t)vl)
		err = -errno;
	close(fd);
	return err;
}

static int knob_index(const char *name)
{
	for (size_t i = 0; i < NR_KNOBS; i++)
		if (strcmp(knob_names[i], name) == 0)
			return (int)i;
	return -1;
}

/* Set a knob if it differs from its saved value; remember to restore it. */
static int knob_set(const char *name, const char *value)
{
	int i = knob_index(name);
	char now[64];
	int err;

	if (i < 0 || !saved[i].present)
		return 0;		/* this kernel does not have it */
	if (sysfs_read(name, now, sizeof(now)) == 0 && strcmp(now, value) == 0)
		return 0;
	saved[i].touched = true;
	err = sysfs_write(name, value);
	if (err < 0)
		fprintf(stderr, "bench: cannot write %s%s=%s: %s\n", KSM_DIR, name,
			value, strerror(-err));
	return err;
}

static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP };
#define NR_CAUGHT (sizeof(caught_signals) / sizeof(caught_signals[0]))
static struct sigaction old_actions[NR_CAUGHT];

/*
 * Put everything back: run=2, the other knobs, run last.  Signal-safe.
 * The caught signals are blocked meanwhile: the kernel aborts a run=2 that
 * has a signal pending (EINTR), and a second ^C must not cut the restore
 * short either.
 */
static void knobs_restore(void)
{
	sigset_t block, old;

	sigemptyset(&block);
	for (size_t i = 0; i < NR_CAUGHT; i++)
		sigaddset(&block, caught_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (restore_armed) {
		restore_armed = 0;
		while (sysfs_write("run", "2") == -EINTR)
			;
		for (size_t i = NR_KNOBS; i-- > 1;)
			if (saved[i].touched)
				sysfs_write(knob_names[i], saved[i].value);
		sysfs_write("run", saved[0].value);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void on_signal(int sig)
{
	knobs_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void knobs_save(void)
{
	struct sigaction sa;

	for (size_t i = 0; i < NR_KNOBS; i++) {
		char buf[128];

		saved[i].present = sysfs_read(knob_names[i], buf, sizeof(buf)) == 0;
		saved[i].touched = false;
		if (!saved[i].present)
			continue;
		/* advisor_mode reads "[none] scan-time": keep the bracketed one */
		char *open_br = strchr(buf, '['), *close_br;
		if (open_br && (close_br = strchr(open_br, ']'))) {
			*close_br = '\0';
			memmove(buf, open_br + 1, strlen(open_br + 1) + 1);
		}
		snprintf(saved[i].value, sizeof(saved[i].value), "%s", buf);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NR_CAUGHT; i++)
		sigaddset(&sa.sa_mask, caught_signals[i]);
	for (size_t i = 0; i < NR_CAUGHT; i++)
		sigaction(caught_signals[i], &sa, &old_actions[i]);
	restore_armed = 1;
}

static void knobs_release(void)
{
	knobs_restore();
	for (size_t i = 0; i < NR_CAUGHT; i++)
		sigaction(caught_signals[i], &old_actions[i], NULL);
}

/* The pid of the ksmd kernel thread, or -1. */
static int find_ksmd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int pid = -1;

	if (!d)
		return -1;
	while ((de = readdir(d)) && pid < 0) {
		char path[300], comm[32];
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strcmp(comm, "ksmd\n") == 0)
			pid = atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return pid;
}

static bool can_run(struct bench_result *r)
{
	long run, shared, sharing;

	if (geteuid() != 0) {
		snprintf(r->why_not, sizeof(r->why_not),
			 "not root: the kernel's KSM knobs need root");
		return false;
	}
	if (access(KSM_DIR "run", W_OK) != 0) {
		snprintf(r->why_not, sizeof(r->why_not),
			 "%srun is not writable (%s): kernel without KSM or "
			 "read-only sysfs", KSM_DIR, strerror(errno));
		return false;
	}
	run = sysfs_long("run");
	shared = sysfs_long("pages_shared");
	sharing = sysfs_long("pages_sharing");
	if (run != 0 || shared != 0 || sharing != 0) {
		snprintf(r->why_not, sizeof(r->why_not),
			 "the kernel's KSM is in use by others (run=%ld, "
			 "pages_shared=%ld, pages_sharing=%ld)", run, shared, sharing);
		return false;
	}
	if (find_ksmd() < 0) {
		snprintf(r->why_not, sizeof(r->why_not), "no ksmd thread found");
		return false;
	}
	return true;
}

static int set_reference_knobs(const struct bench_opts *o)
{
	char pts[32];
	int err = 0;

	snprintf(pts, sizeof(pts), "%lu", o->pages_to_scan);
	/* The defaults, in case somebody changed them, then the two we vary. */
	err |= knob_set("advisor_mode", "none");
	err |= knob_set("merge_across_nodes", "1");
	err |= knob_set("max_page_sharing", "256");
	err |= knob_set("use_zero_pages", "0");
	err |= knob_set("smart_scan", "1");
	err |= knob_set("stable_node_chains_prune_millisecs", "2000");
	err |= knob_set("pages_to_scan", pts);
	err |= knob_set("sleep_millisecs", "0");
	return err ? -EIO : 0;
}

static int kernel_run_locked(const struct bench_opts *o, struct bench_result *r)
{
	struct bench_layout l;
	size_t region_bytes = o->pages * BENCH_PAGE_SIZE;
	char **regions;
	int ksmd, err = 0;

	bench_result_init(r);
	if (!can_run(r))
		return 0;
	ksmd = find_ksmd();
	bench_layout(o, &l);

	regions = calloc(o->regions, sizeof(*regions));
	if (!regions)
		return -ENOMEM;
	double t = bench_now();
	for (unsigned int i = 0; i < o->regions; i++) {
		void *p = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			err = -errno;
			fprintf(stderr, "bench: kernel: mmap of %zu bytes: %s\n",
				region_bytes, strerror(errno));
			goto out_unmap;
		}
		regions[i] = p;
		bench_fill_pages(p, i, 0, o->pages, &l);
	}
	r->fill_seconds = bench_now() - t;

	knobs_save();
	r->ran = true;
	err = set_reference_knobs(o);
	if (err)
		goto out_restore;
	for (unsigned int i = 0; i < o->regions; i++) {
		if (madvise(regions[i], region_bytes, MADV_MERGEABLE) != 0) {
			err = -errno;
			fprintf(stderr, "bench: kernel: madvise(MADV_MERGEABLE): %s\n",
				strerror(errno));
			goto out_restore;
		}
	}

	r->pss_before_kb = bench_pss_kb();
	r->avail_before_kb = bench_meminfo_kb("MemAvailable");
	long scans0 = sysfs_long("full_scans");
	long scanned0 = sysfs_long("pages_scanned");
	double cpu0 = bench_task_cpu(ksmd, 0);
	struct bench_converge c;
	bool converged = false;

	r->loadavg = bench_loadavg();
	bench_progress("kernel: run=1 (pages_to_scan %lu, sleep_millisecs 0)",
		       o->pages_to_scan);
	double t0 = bench_now();
	bench_converge_init(&c, scans0, sysfs_long("pages_sharing"), t0);
	err = sysfs_write("run", "1");
	if (err) {
		fprintf(stderr, "bench: kernel: cannot start ksmd: %s\n", strerror(-err));
		goto out_restore;
	}
	saved[0].touched = true;
	while (!converged) {
		double now;

		bench_sleep_ms(1);
		long scans = sysfs_long("full_scans");
		long sharing = sysfs_long("pages_sharing");
		now = bench_now();
		converged = bench_converge_step(&c, scans, sharing, now, "kernel");
		if (!converged && now - t0 > o->timeout_s) {
			fprintf(stderr, "bench: kernel: no convergence after %u s\n",
				o->timeout_s);
			break;
		}
	}
	double t1 = bench_now();
	double cpu1 = bench_task_cpu(ksmd, 0);

	r->converge_seconds = converged ? t1 - t0 : -1;
	r->settled_seconds = c.settled_at - t0;
	r->cpu_seconds = cpu1 - cpu0;
	r->full_scans = sysfs_long("full_scans") - scans0;
	r->pages_scanned = sysfs_long("pages_scanned") - scanned0;
	read_counters(r);
	/*
	 * The kernel's rmap_item size, from its own profit formula:
	 * general_profit = (sharing + zero pages) * page - rmap items * size.
	 */
	long items = r->pages_shared + r->pages_sharing + r->pages_unshared +
		     r->pages_volatile;
	long profit = sysfs_long("general_profit");
	long zero = sysfs_long("ksm_zero_pages");
	if (items > 0 && profit >= 0 && zero >= 0)
		r->bytes_per_rmap_item =
			(double)((r->pages_sharing + zero) * (long)BENCH_PAGE_SIZE - profit) /
			(double)items;
	r->pss_after_kb = bench_pss_kb();
	r->avail_after_kb = bench_meminfo_kb("MemAvailable");
	bench_progress("kernel: %s after %.2f s: shared %ld, sharing %ld; run=2",
		       converged ? "converged" : "stopped", t1 - t0,
		       r->pages_shared, r->pages_sharing);

out_restore:
	knobs_release();
out_unmap:
	for (unsigned int i = 0; i < o->regions; i++)
		if (regions[i])
			munmap(regions[i], region_bytes);
	free(regions);
	return err;
}

/*
 * bench_kernel_converge_mergeable - for `bench --estimate`: the memory is
 * already marked mergeable, in other processes; run ksmd on it the same way
 * as above (reference knobs, converged when pages_sharing stayed the same
 * over two full scans), then run=2 and every knob restored.  The caller
 * holds the machine's KSM lock.  With o->steady_scans, the CPU per full scan
 * after convergence is measured over that many more.  @at_converged (may be
 * NULL) runs before run=2, while the pages are still merged.
 */
int bench_kernel_converge_mergeable(const struct bench_opts *o, struct bench_result *r,
				    void (*at_converged)(void *arg, struct bench_result *r),
				    void *arg)
{
	struct bench_converge c;
	bool converged = false;
	int ksmd, err;

	bench_result_init(r);
	if (!can_run(r))
		return 0;
	ksmd = find_ksmd();
	knobs_save();
	r->ran = true;
	err = set_reference_knobs(o);
	if (err)
		goto out;
	long scans0 = sysfs_long("full_scans");
	long scanned0 = sysfs_long("pages_scanned");
	double cpu0 = bench_task_cpu(ksmd, 0), t0 = bench_now();

	r->loadavg = bench_loadavg();
	bench_converge_init(&c, scans0, sysfs_long("pages_sharing"), t0);
	err = sysfs_write("run", "1");
	if (err)
		goto out;
	saved[0].touched = true;
	while (!converged) {
		bench_sleep_ms(1);
		double now = bench_now();

		converged = bench_converge_step(&c, sysfs_long("full_scans"),
						sysfs_long("pages_sharing"), now, "kernel");
		if (!converged && now - t0 > o->timeout_s)
			break;
	}
	r->converge_seconds = converged ? bench_now() - t0 : -1;
	r->settled_seconds = c.settled_at - t0;
	r->cpu_seconds = bench_task_cpu(ksmd, 0) - cpu0;
	r->full_scans = sysfs_long("full_scans") - scans0;
	r->pages_scanned = sysfs_long("pages_scanned") - scanned0;
	read_counters(r);
	if (converged && o->steady_scans) {
		/* the cost of staying converged: CPU per full scan from here */
		long s0 = sysfs_long("full_scans");
		double c0 = bench_task_cpu(ksmd, 0), ts = bench_now();

		while (sysfs_long("full_scans") < s0 + (long)o->steady_scans &&
		       bench_now() - ts < o->timeout_s)
			bench_sleep_ms(1);
		long done = sysfs_long("full_scans") - s0;

		if (done > 0)
			r->steady_cpu_per_scan = (bench_task_cpu(ksmd, 0) - c0) / (double)done;
	}
	if (at_converged)
		at_converged(arg, r);
out:
	knobs_release();
	return err;
}

/*
 * The kernel's KSM is one per machine: other runs of ours (tests, other
 * benchmarks) take the same lock around their use of it.
 */
int bench_kernel_run(const struct bench_opts *o, struct bench_result *r)
{
	int lock = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);

	if (lock >= 0 && flock(lock, LOCK_EX)) {
		close(lock);
		lock = -1;
	}
	int err = kernel_run_locked(o, r);

	if (lock >= 0) {
		flock(lock, LOCK_UN);
		close(lock);
	}
	return err;
}

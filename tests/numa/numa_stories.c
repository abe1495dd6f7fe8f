/* SPDX-License-Identifier: MIT */
/*
 * numa_stories - the seeds' stories on a real machine of two NUMA nodes,
 * each told twice: once to the kernel's KSM (madvise(MADV_MERGEABLE) and
 * /sys/kernel/mm/ksm) and once to libsamepage (its public API only).  One
 * table, one row per step: pages_shared, pages_sharing, pages_unshared and
 * the node of every shared page (or the result of a knob write), for the
 * kernel and for samepage, and whether they agree.
 *
 * Run it as root on a machine with two nodes: `make numa` runs it inside the
 * virtual machine of scripts/numa-vm.sh.  Exit 0 when every row agrees, 1
 * otherwise, 77 when this machine cannot tell the stories (one node, no KSM).
 *
 * Pages are placed with move_pages(MPOL_MF_MOVE) after being written, and a
 * shared page is moved with MPOL_MF_MOVE_ALL (it is mapped many times).  For
 * samepage that moves the store page under the application's mapping: the
 * page the kernel migrates behind the engine's back, as in the seeds.  The
 * node of a page is move_pages(0, n, addrs, NULL, status, 0).
 *
 * A page is "shared" when the kernel flags it KSM (/proc/kpageflags) or,
 * for samepage, when the application's page maps the store (pagemap: a file
 * page); each distinct physical page counts once.
 *
 * Story e also counts the stable nodes that exist, parked and stale ones
 * included, which no counter of either world shows: for the kernel, the
 * objects of its ksm_stable_node slab cache (a cache of its own because
 * scripts/numa-vm.sh boots with slab_nomerge; shrunk first, so that objects
 * freed into per-CPU slabs are not counted); for samepage, the nodes the
 * engine's own walk finds (the one place this program looks past the public
 * API, which is why it links the static library).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "ksm.h"		/* ksm_walk_stable(): story e's stable nodes */
#include "linux_internal.h"	/* sp_linux_ksm(), sp_lock() */

#define K		32	/* pages of one group (one node's copies) */
#define MAX_STEPS	16
#define KSM_SYSFS	"/sys/kernel/mm/ksm/"
#define KSM_SLAB	"/sys/kernel/slab/ksm_stable_node"
#define KPF_KSM		21
#define PM_PRESENT	(1ull << 63)
#define PM_FILE		(1ull << 61)
#define PM_PFN		((1ull << 55) - 1)

static size_t ps;
static char wp_note[160] = "not probed";

static uint64_t pagemap(int fd, const void *addr);

/* ------------------------------------------------------------------------
 * The two worlds behind one small interface.
 * --------------------------------------------------------------------- */
struct world {
	bool kernel;
	struct samepage *sp;
	char err[512];		/* set when a call failed: the story stops */
};

static int sysfs_write(const char *knob, unsigned long v)
{
	char path[128], buf[32];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", knob);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%lu", v);
	if (write(fd, buf, (size_t)n) != n)
		err = -errno;
	close(fd);
	return err;
}

static int sysfs_read(const char *name, long *v)
{
	char path[128], buf[32] = { 0 };
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	*v = strtol(buf, NULL, 10);
	return 0;
}

/* A failure of the system (not of a samepage call): no samepage_last_error(). */
static void fail_os(struct world *w, const char *what, int err)
{
	if (!w->err[0])
		snprintf(w->err, sizeof(w->err), "%s: %s", what, strerror(-err));
}

static void fail(struct world *w, const char *what, int err)
{
	if (w->err[0])
		return;
	if (w->kernel)
		snprintf(w->err, sizeof(w->err), "%s: %s", what, strerror(-err));
	else
		snprintf(w->err, sizeof(w->err), "%s: %s (%s)", what, strerror(-err),
			 samepage_last_error());
}

static int w_set(struct world *w, const char *knob, unsigned long v)
{
	return w->kernel ? sysfs_write(knob, v) : samepage_set(w->sp, knob, v);
}

static long w_get(struct world *w, const char *name)
{
	long v = -1;
	int err = w->kernel ? sysfs_read(name, &v) : samepage_get(w->sp, name, &v);

	if (err)
		fail(w, name, err);
	return v;
}

static void w_must_set(struct world *w, const char *knob, unsigned long v)
{
	int err = w_set(w, knob, v);

	if (err) {
		char what[64];

		snprintf(what, sizeof(what), "set %s=%lu", knob, v);
		fail(w, what, err);
	}
}

/*
 * At least @n complete passes over all mergeable memory.  The kernel's ksmd
 * runs only inside this call (run=1 here, run=0 when done: that write waits
 * for ksmd's batch), and its first pass may have begun before: wait n + 1.
 * samepage scans in this thread (run stays 0).
 */
static void w_scan(struct world *w, unsigned int n)
{
	if (w->err[0])
		return;
	if (!w->kernel) {
		int err = samepage_scan_full(w->sp, n);

		if (err)
			fail(w, "samepage_scan_full", err);
		return;
	}
	long start = w_get(w, "full_scans"), now = start;
	struct timespec t0, t;

	w_must_set(w, "run", 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!w->err[0] && now < start + (long)n + 1) {
		usleep(2000);
		now = w_get(w, "full_scans");
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 120) {
			fail(w, "waiting for ksmd's full scans", -ETIMEDOUT);
			break;
		}
	}
	w_must_set(w, "run", 0);
}

/* run=2 (everything unmerged), then run=0. */
static void w_unmerge(struct world *w)
{
	w_must_set(w, "run", 2);
	w_must_set(w, "run", 0);
}

static int w_open(struct world *w, bool kernel)
{
	memset(w, 0, sizeof(*w));
	w->kernel = kernel;
	if (kernel) {
		w_unmerge(w);
		w_must_set(w, "merge_across_nodes", 1);
		w_must_set(w, "pages_to_scan", 100);
		w_must_set(w, "sleep_millisecs", 5);
		w_must_set(w, "max_page_sharing", 256);
		w_must_set(w, "use_zero_pages", 0);
		return w->err[0] ? -EIO : 0;
	}
	int err = samepage_open(&w->sp, 0);

	if (err) {
		fail(w, "samepage_open", err);
		w->sp = NULL;
		return err;
	}
	/* the 6.1 kernel has no smart scan (6.7): compare like with like */
	w_must_set(w, "smart_scan", 0);
	return w->err[0] ? -EIO : 0;
}

static void w_close(struct world *w)
{
	if (w->kernel) {
		int err = sysfs_write("run", 2);

		if (!err)
			err = sysfs_write("run", 0);
		if (err)
			fail(w, "set run=2", err);
	} else if (w->sp) {
		int err = samepage_close(w->sp);

		if (err)
			fail(w, "samepage_close", err);
		w->sp = NULL;
	}
}

/* Mergeable private anonymous memory of @n pages, none touched. */
static char *w_alloc(struct world *w, size_t n)
{
	if (w->err[0])
		return NULL;
	if (!w->kernel) {
		char *p = samepage_alloc(w->sp, n * ps);

		if (!p)
			fail(w, "samepage_alloc", -errno);
		return p;
	}
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fail_os(w, "mmap", -errno);
		return NULL;
	}
	if (madvise(p, n * ps, MADV_MERGEABLE)) {
		fail_os(w, "madvise(MADV_MERGEABLE)", -errno);
		munmap(p, n * ps);
		return NULL;
	}
	return p;
}

/* MADV_DONTNEED: the pages' memory is given back (they would read zeros). */
static void w_discard(struct world *w, char *p, size_t n)
{
	if (w->err[0])
		return;
	if (w->kernel) {
		if (madvise(p, n * ps, MADV_DONTNEED))
			fail_os(w, "madvise(MADV_DONTNEED)", -errno);
		return;
	}
	int err = samepage_discard(w->sp, p, n * ps);

	if (err)
		fail(w, "samepage_discard", err);
}

static void w_free(struct world *w, char *p, size_t n)
{
	if (!p)
		return;
	if (w->kernel) {
		munmap(p, n * ps);
		return;
	}
	int err = samepage_free(w->sp, p, n * ps);

	if (err)
		fail(w, "samepage_free", err);
}

static void count_node(void *arg, const struct ksm_node_info *info)
{
	(void)info;
	++*(long *)arg;
}

/*
 * The stable nodes that exist now (chains, dups, parked and stale nodes
 * included), or -1 after recording why they cannot be counted.
 */
static long w_stable_nodes(struct world *w)
{
	char buf[64] = { 0 };
	struct stat st;
	long n = 0;
	int fd;

	if (w->err[0])
		return -1;
	if (!w->kernel) {
		sp_lock(w->sp);
		ksm_walk_stable(sp_linux_ksm(w->sp), count_node, &n);
		sp_unlock(w->sp);
		return n;
	}
	if (lstat(KSM_SLAB, &st) || !S_ISDIR(st.st_mode)) {
		fail_os(w, KSM_SLAB " is not a slab cache of its own (boot with slab_nomerge)",
			-ENOENT);
		return -1;
	}
	/* objects counts those free in per-CPU slabs as used: flush them first */
	fd = open(KSM_SLAB "/shrink", O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		fail_os(w, KSM_SLAB "/shrink", -errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	fd = open(KSM_SLAB "/objects", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0) {
		fail_os(w, KSM_SLAB "/objects", fd < 0 ? -errno : -EIO);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return strtol(buf, NULL, 10);
}

/* ------------------------------------------------------------------------
 * Pages: where they are, what they hold.
 * --------------------------------------------------------------------- */
struct region {
	char *p;
	size_t n;
	unsigned char want[3 * K + 4];	/* content byte of each page; 0: untouched */
	signed char node[3 * K + 4];	/* the node each written page was put on */
};

static int node_of(const void *addr)
{
	void *a = (void *)addr;
	int status = -1;

	if (move_pages(0, 1, &a, NULL, &status, 0))
		return -errno;
	return status;
}

/* Move the page at @addr to @node (all its mappings follow). */
static void move_to(struct world *w, const void *addr, int node, int flags)
{
	void *a = (void *)addr;
	int status = -1;

	if (w->err[0])
		return;
	(void)*(const volatile char *)addr;
	if (move_pages(0, 1, &a, &node, &status, flags)) {
		fail_os(w, "move_pages", -errno);
		return;
	}
	if (status != node) {
		char what[64];

		snprintf(what, sizeof(what), "move_pages to node %d", node);
		fail_os(w, what, status < 0 ? status : -EAGAIN);
	}
}

/* Write pages [i, i+n) of @r whole with @byte, on @node. */
static void fill(struct world *w, struct region *r, size_t i, size_t n, unsigned char byte,
		 int node)
{
	if (w->err[0])
		return;
	for (size_t j = i; j < i + n; j++) {
		memset(r->p + j * ps, byte, ps);
		r->want[j] = byte;
		r->node[j] = (signed char)node;
		move_to(w, r->p + j * ps, node, MPOL_MF_MOVE);
	}
}

/*
 * After run=2 no page of @r may map a shared page any more (samepage: the
 * store).  On kernels before 6.5 samepage's unmerge fails there (see
 * wp_across_vmas below): say so, the story cannot go on.
 */
static void check_unmerged(struct world *w, struct region *r)
{
	int pm = open("/proc/self/pagemap", O_RDONLY), left = 0;

	if (w->err[0] || w->kernel || pm < 0) {
		if (pm >= 0)
			close(pm);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (!r->want[i])
			continue;
		(void)*(const volatile char *)(r->p + i * ps);
		if (pagemap(pm, r->p + i * ps) & PM_FILE)
			left++;
	}
	close(pm);
	if (left)
		snprintf(w->err, sizeof(w->err),
			 "run=2 returned 0 but left %d pages mapping the store, their slots "
			 "freed (they read zeros): its UFFDIO_WRITEPROTECT over a run of "
			 "several VMAs fails with ENOENT on this kernel (%s)", left, wp_note);
}

/*
 * Put every written page back on its node.  Unmerging (run=2) gives each
 * page a private copy allocated where the unmerging CPU is, so without this
 * the next merge_across_nodes=0 would see all of them on one node.
 */
static void replace(struct world *w, struct region *r)
{
	for (size_t j = 0; j < r->n && !w->err[0]; j++)
		if (r->want[j])
			move_to(w, r->p + j * ps, r->node[j], MPOL_MF_MOVE);
}

static uint64_t pagemap(int fd, const void *addr)
{
	uint64_t e = 0;

	if (pread(fd, &e, 8, (off_t)((uintptr_t)addr / ps) * 8) != 8)
		return 0;
	return e;
}

static bool kernel_ksm_pfn(int fd, uint64_t pfn)
{
	uint64_t f = 0;

	if (pread(fd, &f, 8, (off_t)(pfn * 8)) != 8)
		return false;
	return f & (1ull << KPF_KSM);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* "0 1": the node of each distinct shared physical page of @r; "-": none. */
static void shared_nodes(struct world *w, struct region *r, char *out, size_t size)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = w->kernel ? open("/proc/kpageflags", O_RDONLY) : -1;
	uint64_t pfns[3 * K + 4];
	int nodes[3 * K + 4], count = 0;

	snprintf(out, size, "?");
	if (pm < 0 || (w->kernel && kf < 0)) {
		fail_os(w, "open /proc/self/pagemap or /proc/kpageflags", -errno);
		goto out;
	}
	for (size_t i = 0; i < r->n; i++) {
		const char *a = r->p + i * ps;

		if (!r->want[i])
			continue;
		(void)*(const volatile char *)a;
		uint64_t e = pagemap(pm, a), pfn = e & PM_PFN;

		if (!(e & PM_PRESENT) || !pfn)
			continue;
		bool shared = w->kernel ? kernel_ksm_pfn(kf, pfn) : (e & PM_FILE) != 0;

		if (!shared)
			continue;
		int k;

		for (k = 0; k < count; k++)
			if (pfns[k] == pfn)
				break;
		if (k < count)
			continue;
		pfns[count] = pfn;
		nodes[count++] = node_of(a);
	}
	qsort(nodes, (size_t)count, sizeof(nodes[0]), cmp_int);
	size_t len = 0;

	out[0] = 0;
	for (int k = 0; k < count && len + 8 < size; k++)
		len += (size_t)snprintf(out + len, size - len, "%s%d", k ? " " : "", nodes[k]);
	if (!count)
		snprintf(out, size, "-");
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
}

/* (g): every written page reads what was written to it, byte for byte. */
static int bad_pages(const struct region *r)
{
	int bad = 0;

	for (size_t i = 0; i < r->n; i++) {
		const unsigned char *a = (const unsigned char *)r->p + i * ps;

		if (!r->want[i])
			continue;
		for (size_t b = 0; b < ps; b++) {
			if (a[b] != r->want[i]) {
				bad++;
				break;
			}
		}
	}
	return bad;
}

/* ------------------------------------------------------------------------
 * Steps and the table.
 * --------------------------------------------------------------------- */
struct obs {
	long shared, sharing, unshared;
	char where[48];		/* nodes of the shared pages, or a result */
	char err[512];		/* the step could not run: why */
};

struct story {
	const char *id;
	const char *title;
	void (*tell)(struct world *w, struct story *s);
	int nsteps;
	const char *step[MAX_STEPS];
	const char *note[MAX_STEPS];	/* kernel behaviour differing from the seeds */
	struct obs obs[2][MAX_STEPS];	/* [kernel, samepage] */
	int cur;			/* which world is telling it */
	int at;
};

static struct obs *next_obs(struct world *w, struct story *s, const char *label)
{
	if (s->at >= MAX_STEPS)
		abort();
	if (s->cur == 0)
		s->step[s->at] = label;
	struct obs *o = &s->obs[s->cur][s->at++];

	if (s->at > s->nsteps)
		s->nsteps = s->at;
	memset(o, 0, sizeof(*o));
	if (w->err[0])
		snprintf(o->err, sizeof(o->err), "%s", w->err);
	return o;
}

/* Record the counters and the nodes of the shared pages of @r. */
static void step(struct world *w, struct story *s, const char *label, struct region *r)
{
	struct obs *o = next_obs(w, s, label);

	if (o->err[0])
		return;
	o->shared = w_get(w, "pages_shared");
	o->sharing = w_get(w, "pages_sharing");
	o->unshared = w_get(w, "pages_unshared");
	shared_nodes(w, r, o->where, sizeof(o->where));
	if (w->err[0])
		snprintf(o->err, sizeof(o->err), "%s", w->err);
}

/* step(), and the number of stable nodes after the nodes of the pages. */
static void step_stable(struct world *w, struct story *s, const char *label, struct region *r)
{
	step(w, s, label, r);

	struct obs *o = &s->obs[s->cur][s->at - 1];

	if (o->err[0])
		return;
	long n = w_stable_nodes(w);
	size_t len = strlen(o->where);

	if (w->err[0])
		snprintf(o->err, sizeof(o->err), "%s", w->err);
	else
		snprintf(o->where + len, sizeof(o->where) - len, "; stable %ld", n);
}

/* Record the result of a knob write (with the counters after it). */
static void step_set(struct world *w, struct story *s, const char *label, const char *knob,
		     unsigned long v)
{
	struct obs *o = next_obs(w, s, label);

	if (o->err[0])
		return;
	int err = w_set(w, knob, v);

	o->shared = w_get(w, "pages_shared");
	o->sharing = w_get(w, "pages_sharing");
	o->unshared = w_get(w, "pages_unshared");
	snprintf(o->where, sizeof(o->where), "%s", err == 0 ? "write ok" :
		 err == -EBUSY ? "EBUSY" : err == -EINVAL ? "EINVAL" : strerror(-err));
	if (w->err[0])
		snprintf(o->err, sizeof(o->err), "%s", w->err);
}

/* stable_node_chains and stable_node_dups (the max_page_sharing chains). */
static void step_chains(struct world *w, struct story *s, const char *label)
{
	struct obs *o = next_obs(w, s, label);

	if (o->err[0])
		return;
	o->shared = w_get(w, "pages_shared");
	o->sharing = w_get(w, "pages_sharing");
	o->unshared = w_get(w, "pages_unshared");
	snprintf(o->where, sizeof(o->where), "chains %ld dups %ld",
		 w_get(w, "stable_node_chains"), w_get(w, "stable_node_dups"));
	if (w->err[0])
		snprintf(o->err, sizeof(o->err), "%s", w->err);
}

/* A note under the last step: where the kernel differs from the seeds. */
static void note(struct story *s, const char *text)
{
	if (s->at > 0)
		s->note[s->at - 1] = text;
}

/* (g) as a row of its own at the end of a story. */
static void step_contents(struct world *w, struct story *s, struct region *r)
{
	struct obs *o = next_obs(w, s, "(g) every page's bytes as written");

	/* checked even after a failure: what did the failure cost? */
	o->err[0] = 0;
	if (!r->p)
		return;
	o->shared = w_get(w, "pages_shared");
	o->sharing = w_get(w, "pages_sharing");
	o->unshared = w_get(w, "pages_unshared");
	int bad = bad_pages(r);

	if (bad)
		snprintf(o->where, sizeof(o->where), "%d pages differ", bad);
	else
		snprintf(o->where, sizeof(o->where), "bytes ok");
}

static bool same(const struct obs *a, const struct obs *b)
{
	return !a->err[0] && !b->err[0] && a->shared == b->shared &&
	       a->sharing == b->sharing && a->unshared == b->unshared &&
	       !strcmp(a->where, b->where);
}

static void cell(const struct obs *o, char *buf, size_t size)
{
	if (o->err[0])
		snprintf(buf, size, "cannot run");
	else
		snprintf(buf, size, "%4ld %4ld %4ld  %-17s", o->shared, o->sharing, o->unshared,
			 o->where);
}

static int print_story(const struct story *s)
{
	int disagree = 0;

	for (int i = 0; i < s->nsteps; i++) {
		const struct obs *k = &s->obs[0][i], *m = &s->obs[1][i];
		char ck[96], cm[96];
		bool ok = same(k, m);

		cell(k, ck, sizeof(ck));
		cell(m, cm, sizeof(cm));
		printf("%-3s %-44.44s | %-34s | %-34s | %s\n", i ? "" : s->id,
		       s->step[i] ? s->step[i] : "?", ck, cm, ok ? "yes" : "NO");
		if (s->note[i])
			printf("    note: %s\n", s->note[i]);
		/* a reason once, not under every row it stops */
		if (k->err[0] && (!i || strcmp(k->err, s->obs[0][i - 1].err)))
			printf("    kernel: %s\n", k->err);
		if (m->err[0] && (!i || strcmp(m->err, s->obs[1][i - 1].err)))
			printf("    samepage: %s\n", m->err);
		disagree += !ok;
	}
	return disagree;
}

/* ------------------------------------------------------------------------
 * The stories.
 * --------------------------------------------------------------------- */
static struct region *new_region(struct world *w, size_t n)
{
	struct region *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->n = n;
	r->p = w_alloc(w, n);
	return r;
}

static void end_region(struct world *w, struct region *r)
{
	w_free(w, r->p, r->n);
	free(r);
}

#define CHAIN_NOTE \
	"kernel differs from seed 001 here (since Linux 4.13, max_page_sharing and " \
	"stable_node chains): a migrated KSM page mapped more than once that collides " \
	"with an equal KSM page joins it as a dup of a stable_node chain, keeping its " \
	"mappings, instead of moving them one by one; the kernel is followed"

/* (a) identical pages on node 0 and node 1 (the kernel selftest's -N). */
static void tell_a(struct world *w, struct story *s)
{
	struct region *r = new_region(w, 2 * K);

	fill(w, r, 0, K, 0xa1, 0);
	fill(w, r, K, K, 0xa1, 1);
	w_scan(w, 2);
	step(w, s, "32+32 equal pages, node 0+1; man=1, 2 scans", r);
	w_unmerge(w);
	check_unmerged(w, r);
	step(w, s, "run=2: all unmerged", r);
	replace(w, r);
	step_set(w, s, "pages back on their nodes; man=0", "merge_across_nodes", 0);
	w_scan(w, 2);
	step(w, s, "2 full scans: one KSM page per node", r);
	step_contents(w, s, r);
	end_region(w, r);
}

/* (b) a KSM page migrated to a node with no equal page. */
static void tell_b(struct world *w, struct story *s)
{
	struct region *r = new_region(w, K + 2);

	w_must_set(w, "merge_across_nodes", 0);
	fill(w, r, 0, K, 0xb2, 0);
	w_scan(w, 2);
	step(w, s, "man=0: 32 equal pages on node 0, 2 scans", r);
	move_to(w, r->p, 1, MPOL_MF_MOVE_ALL);
	step(w, s, "its KSM page moved to node 1 (move_pages)", r);
	w_scan(w, 2);
	step(w, s, "2 full scans: re-slotted in node 1's tree", r);
	fill(w, r, K, 1, 0xb2, 1);
	w_scan(w, 2);
	step(w, s, "an equal page written on node 1: merges", r);
	fill(w, r, K + 1, 1, 0xb2, 0);
	w_scan(w, 2);
	step(w, s, "an equal page written on node 0: does not", r);
	step_contents(w, s, r);
	end_region(w, r);
}

/* (c) migrated to a node that already has an equal KSM page. */
static void tell_c(struct world *w, struct story *s)
{
	struct region *r = new_region(w, 2 * K);

	w_must_set(w, "merge_across_nodes", 0);
	fill(w, r, 0, K, 0xc3, 0);
	fill(w, r, K, K, 0xc3, 1);
	w_scan(w, 2);
	step(w, s, "man=0: 32+32 equal pages, node 0+1, 2 scans", r);
	move_to(w, r->p, 1, MPOL_MF_MOVE_ALL);
	step(w, s, "node 0's KSM page moved to node 1", r);
	w_scan(w, 2);
	step(w, s, "2 full scans: its mappings on node 1's page", r);
	note(s, CHAIN_NOTE);
	step_chains(w, s, "the same: chains and dups");
	step_contents(w, s, r);
	end_region(w, r);
}

/* (d) the misplaced node found by the scanner / by another page's search. */
static void tell_d(struct world *w, struct story *s)
{
	/* by the scanner: the KSM page's own pages come first in the pass */
	struct region *r = new_region(w, K + 1);

	w_must_set(w, "merge_across_nodes", 0);
	fill(w, r, 0, K, 0xd4, 0);
	w_scan(w, 2);
	step(w, s, "man=0: 32 equal pages on node 0, 2 scans", r);
	move_to(w, r->p, 1, MPOL_MF_MOVE_ALL);
	w_scan(w, 2);
	step(w, s, "moved to node 1; 2 scans (found by scanner)", r);
	fill(w, r, K, 1, 0xd4, 0);
	w_scan(w, 2);
	step(w, s, "an equal page after it on node 0: no merge", r);
	step_contents(w, s, r);
	end_region(w, r);

	/* by a search: an equal page before the KSM page's pages, on node 0 */
	r = new_region(w, K + 2);
	fill(w, r, 2, K, 0xd5, 0);
	w_scan(w, 2);
	step(w, s, "again, the 32 pages after two free ones", r);
	move_to(w, r->p + 2 * ps, 1, MPOL_MF_MOVE_ALL);
	fill(w, r, 1, 1, 0xd5, 0);
	w_scan(w, 2);
	step(w, s, "moved; an equal page before it (search)", r);
	fill(w, r, 0, 1, 0xd5, 0);
	w_scan(w, 2);
	step(w, s, "a 2nd equal page on node 0: the two merge", r);
	step_contents(w, s, r);
	end_region(w, r);
}

#define MAPPED_ONCE_NOTE \
	"the kernel does not do what seed 001 says here, with the seed's own code (3.9) as with " \
	"6.1 and today, and is followed: it cannot remap a page that is already a KSM page onto " \
	"another one (write_protect_page() " \
	"-> page_address_in_vma() finds a mapping through the page's anon_vma, and a KSM page has " \
	"none: -EFAULT), so the migrated page's one mapping leaves its stable node (pages_shared " \
	"2 -> 1) and keeps its own KSM page, the node parked on migrate_nodes, not stale"

/*
 * (e) stale nodes left on migrate_nodes pruned within one full scan.  A
 * migrated KSM page mapped once meets an equal KSM page on its new node:
 * the kernel cannot move the mapping there (MAPPED_ONCE_NOTE), so the page's
 * stable node stays parked on migrate_nodes, valid, its page mapped by an
 * rmap_item in no tree; no search will ever pass it.  Then that one mapping
 * is discarded (MADV_DONTNEED): the KSM page is freed and the parked node is
 * stale.  Only the prune of migrate_nodes at the start of a full scan can
 * remove it: the stable nodes counted go from 2 to 1 in one full scan.
 *
 * (Discarded rather than written: a write is copy-on-write, which the
 * kernel sees at once, whereas libsamepage learns of it only when its
 * scanner next looks at the page, during the following pass; the node is
 * then pruned one full scan later than the kernel's.)
 */
static void tell_e(struct world *w, struct story *s)
{
	struct region *r = new_region(w, K + 2);

	w_must_set(w, "merge_across_nodes", 0);
	fill(w, r, 0, 2, 0xe6, 0);
	fill(w, r, 2, K, 0xe6, 1);
	w_scan(w, 2);
	step_stable(w, s, "man=0: 2 equal pages on node 0, 32 on 1", r);
	fill(w, r, 1, 1, 0xe7, 0);
	w_scan(w, 2);
	step_stable(w, s, "one of the 2 rewritten: a page of 1 mapping", r);
	move_to(w, r->p, 1, MPOL_MF_MOVE_ALL);
	step_stable(w, s, "that KSM page moved to node 1", r);
	w_scan(w, 1);
	step_stable(w, s, "1 full scan: the mapping leaves its node", r);
	note(s, MAPPED_ONCE_NOTE);
	w_scan(w, 20);
	step_stable(w, s, "20 more full scans: the node stays parked", r);
	w_discard(w, r->p, 1);
	r->want[0] = 0;		/* gone: no longer looked at */
	step_stable(w, s, "that mapping discarded: the node is stale", r);
	w_scan(w, 1);
	step_stable(w, s, "1 full scan: the stale node pruned", r);
	w_unmerge(w);
	check_unmerged(w, r);
	step_stable(w, s, "run=2: all unmerged", r);
	replace(w, r);
	step_set(w, s, "pages back on their nodes; man=1", "merge_across_nodes", 1);
	w_scan(w, 2);
	step_stable(w, s, "2 full scans: one KSM page for all 32", r);
	step_contents(w, s, r);
	end_region(w, r);
}

/* (f) run=2, then merge_across_nodes switched both ways without EBUSY. */
static void tell_f(struct world *w, struct story *s)
{
	struct region *r = new_region(w, 2 * K);

	w_must_set(w, "merge_across_nodes", 0);
	fill(w, r, 0, K, 0xf7, 0);
	fill(w, r, K, K, 0xf7, 1);
	w_scan(w, 2);
	step(w, s, "man=0: 32+32 equal pages, node 0+1, 2 scans", r);
	step_set(w, s, "merge_across_nodes=1 while pages are shared", "merge_across_nodes", 1);
	w_must_set(w, "run", 2);
	check_unmerged(w, r);
	step(w, s, "run=2: all unmerged", r);
	w_must_set(w, "run", 0);
	replace(w, r);
	step_set(w, s, "pages back on their nodes; man=1", "merge_across_nodes", 1);
	w_scan(w, 2);
	step(w, s, "2 full scans", r);
	w_unmerge(w);
	check_unmerged(w, r);
	step(w, s, "run=2: all unmerged", r);
	replace(w, r);
	step_set(w, s, "pages back on their nodes; man=0", "merge_across_nodes", 0);
	w_scan(w, 2);
	step(w, s, "2 full scans", r);
	step_contents(w, s, r);
	end_region(w, r);
}

static struct story stories[] = {
	{ .id = "a", .title = "identical pages on two nodes", .tell = tell_a },
	{ .id = "b", .title = "KSM page migrated, no equal page there", .tell = tell_b },
	{ .id = "c", .title = "KSM page migrated onto an equal KSM page", .tell = tell_c },
	{ .id = "d", .title = "misplaced node found by scan and by search", .tell = tell_d },
	{ .id = "e", .title = "stale nodes on migrate_nodes", .tell = tell_e },
	{ .id = "f", .title = "run=2 and merge_across_nodes both ways", .tell = tell_f },
};

/*
 * Can UFFDIO_WRITEPROTECT take a range over two VMAs?  Linux 6.5 made it
 * ("mm/userfaultfd: support WP on multiple VMAs"); before, ENOENT.  Probed on
 * scratch memory with a userfaultfd of our own.
 */
static void wp_across_vmas(void)
{
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API };
	char *p = MAP_FAILED;

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		snprintf(wp_note, sizeof(wp_note), "userfaultfd: %s", strerror(errno));
		goto out;
	}
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + ps, ps, PROT_READ) || mprotect(p + ps, ps,
	    PROT_READ | PROT_WRITE)) {
		snprintf(wp_note, sizeof(wp_note), "probe: mmap: %s", strerror(errno));
		goto out;
	}
	/* two VMAs: a file mapping beside the anonymous page */
	int mfd = memfd_create("probe", MFD_CLOEXEC);

	if (mfd < 0 || ftruncate(mfd, (off_t)ps) ||
	    mmap(p + ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, mfd, 0) == MAP_FAILED) {
		snprintf(wp_note, sizeof(wp_note), "probe: memfd: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		goto out;
	}
	close(mfd);
	memset(p, 1, 2 * ps);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = 2 * ps }, .mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = 2 * ps }, .mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		snprintf(wp_note, sizeof(wp_note), "UFFDIO_REGISTER_MODE_WP over 2 VMAs: %s",
			 strerror(errno));
	else if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		snprintf(wp_note, sizeof(wp_note), "probe: UFFDIO_WRITEPROTECT over 2 VMAs: %s; "
			 "multi-VMA ranges came in Linux 6.5", strerror(errno));
	else
		snprintf(wp_note, sizeof(wp_note), "probe: UFFDIO_WRITEPROTECT over 2 VMAs works");
out:
	if (p != MAP_FAILED)
		munmap(p, 2 * ps);
	if (uffd >= 0)
		close(uffd);
}

static int write_proc(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, v, strlen(v)) < 0)
		err = -errno;
	close(fd);
	return err;
}

int main(void)
{
	struct timespec t0, t1;
	int disagree = 0;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (numa_available() < 0 || numa_max_node() < 1) {
		printf("SKIP numa_stories: needs two NUMA nodes (try scripts/numa-vm.sh)\n");
		return 77;
	}
	if (access(KSM_SYSFS "merge_across_nodes", W_OK)) {
		printf("SKIP numa_stories: needs the kernel's KSM with merge_across_nodes, "
		       "as root\n");
		return 77;
	}
	/* nothing but the stories moves pages */
	(void)write_proc("/proc/sys/kernel/numa_balancing", "0");

	FILE *f = fopen("/proc/sys/kernel/osrelease", "r");
	char rel[64] = "?";

	if (f) {
		if (fgets(rel, sizeof(rel), f))
			rel[strcspn(rel, "\n")] = 0;
		fclose(f);
	}
	wp_across_vmas();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < sizeof(stories) / sizeof(stories[0]); i++) {
		struct story *s = &stories[i];

		for (s->cur = 0; s->cur < 2; s->cur++) {
			struct world w;

			s->at = 0;
			(void)w_open(&w, s->cur == 0);	/* a failure: every row says why */
			s->tell(&w, s);
			w_close(&w);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	printf("\nThe seeds' stories on two NUMA nodes (kernel %s, %d pages per group);\n"
	       "samepage with smart_scan=0 (the %s kernel has none: smart scan came in 6.7).\n"
	       "Each cell: pages_shared pages_sharing pages_unshared, then the node of each\n"
	       "shared page (- none) or the result of the step's knob write; in story e,\n"
	       "\"stable N\": the stable nodes that exist, parked and stale ones included\n"
	       "(kernel: objects of its ksm_stable_node slab cache; samepage: the engine's).\n"
	       "userfaultfd %s.\n\n",
	       rel, K, rel, wp_note);
	printf("%-3s %-44s | %-34s | %-34s | %s\n", "", "step", "kernel", "samepage", "agree");
	for (size_t i = 0; i < sizeof(stories) / sizeof(stories[0]); i++) {
		printf("%s) %s\n", stories[i].id, stories[i].title);
		disagree += print_story(&stories[i]);
	}
	printf("\n%d rows disagree; %.1f s\n", disagree,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return disagree ? 1 : 0;
}

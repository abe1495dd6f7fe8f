/* SPDX-License-Identifier: MIT */
/*
 * estimate.c - the estimate, step by step.
 *
 *  1. Find each target's resident private anonymous pages (proc.c).
 *  2. Read them all once and hash each (XXH3-64).
 *  3. Read them all a second time.  A page whose hash differs, or that can
 *     no longer be read, changed while being read: it is counted in
 *     pages_volatile and merges with nothing - the kernel's own two-pass
 *     rule (a page enters the trees only if its checksum did not change
 *     since the previous full scan), with our two reads as the two scans.
 *     The others are grouped by content (dedup.c).
 *  4. Read the first page of every group again and compare it with the
 *     group's stored copy (the only page of a group that was hashed but not
 *     compared byte for byte); a mismatch makes it volatile.
 *  5. Targets that exited meanwhile (pidfd) are dropped, with their pages.
 *  6. The engine (src/core) runs full scans over the pages of the groups
 *     with two pages or more (snapshot.c) until a full scan changes
 *     nothing: once with every reported process (the total, and each one's
 *     ksm_merging_pages), once for each process alone (its own line).
 *
 * Why leaving the unique pages out of the engine changes no counter: a page
 * whose content no other page has is never merged (a merge needs a byte
 * equal page), and since no page ever changes here, the trees stay ordered
 * and every search for another content ends where it would have ended with
 * that page in the tree.  tests/estimate_unique_pages_change_nothing
 * checks it by running both ways (est_opts.engine_all_pages).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#define est_xxh3(data, len) XXH3_64bits_dispatch(data, len)
#else
#define est_xxh3(data, len) XXH3_64bits(data, len)
#endif

#include "estimate.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct est_ctx {
	const struct est_opts *o;
	struct est_proc *procs;
	struct est_target *targets;
	size_t n;
	struct est_dedup *dedup;
	void *buf;			/* EST_BATCH pages */
	bool ok[EST_BATCH];
	uint32_t idx[EST_BATCH];
	double t0;
	uint64_t bytes_read;
	double read_seconds;
	uint64_t zero_hash;
	bool pfns_visible;
};

static bool live(const struct est_ctx *c, size_t i)
{
	return c->procs[i].error == EST_OK;
}

static void fail(struct est_ctx *c, size_t i, int err)
{
	struct est_proc *p = &c->procs[i];

	if (p->error != EST_OK)
		return;
	p->errnum = -err;
	if (err == -ESRCH)
		p->error = EST_EXITED;
	else if (err == -EACCES || err == -EPERM)
		p->error = EST_PERMISSION;
	else
		p->error = EST_FAILED;
}

/* --rate: sleep until the bytes read so far fit the bound. */
static void throttle(struct est_ctx *c)
{
	double rate = c->o->rate_mib * 1024 * 1024, due, now;

	if (c->o->rate_mib <= 0)
		return;
	due = c->t0 + (double)c->bytes_read / rate;
	now = now_s();
	if (due > now) {
		struct timespec ts = {
			.tv_sec = (time_t)(due - now),
			.tv_nsec = (long)((due - now - (double)(time_t)(due - now)) * 1e9),
		};
		nanosleep(&ts, NULL);
	}
}

static void progress(struct est_ctx *c, size_t i, int pass, unsigned long done,
		     unsigned long total)
{
	struct est_progress p = {
		.pid = c->procs[i].pid, .pass = pass, .pages_done = done,
		.pages_total = total, .seconds = now_s() - c->t0,
		.bytes_read = c->bytes_read,
	};

	if (c->o->progress)
		c->o->progress(c->o->progress_arg, &p);
}

/* Read c->idx[0..n) of target i into c->buf; updates counters.  0 or -errno. */
static int read_batch(struct est_ctx *c, size_t i, size_t n)
{
	double t = now_s();
	int err = est_read_pages(&c->targets[i], c->idx, n, c->buf, c->ok);

	c->read_seconds += now_s() - t;
	if (err)
		return err;
	c->bytes_read += n * EST_PAGE_SIZE;
	return 0;
}

static bool is_zero(const struct est_ctx *c, const void *data, uint64_t hash)
{
	static const char zeros[EST_PAGE_SIZE];

	return hash == c->zero_hash && !memcmp(data, zeros, EST_PAGE_SIZE);
}

/* Pass 1: hash every page. */
static void first_pass(struct est_ctx *c, size_t i)
{
	struct est_target *t = &c->targets[i];

	for (size_t k = 0; k < t->nr_pages && live(c, i);) {
		size_t n = 0;
		int err;

		while (n < EST_BATCH && k + n < t->nr_pages) {
			c->idx[n] = (uint32_t)(k + n);
			n++;
		}
		err = read_batch(c, i, n);
		if (err) {
			fail(c, i, err);
			return;
		}
		double t1 = now_s();
		for (size_t j = 0; j < n; j++) {
			struct est_page *pg = &t->pages[k + j];

			if (!c->ok[j])
				pg->flags |= EST_PG_SKIP;	/* never readable: not counted */
			else
				pg->hash = est_xxh3((char *)c->buf + j * EST_PAGE_SIZE,
						    EST_PAGE_SIZE);
		}
		c->read_seconds += now_s() - t1;
		k += n;
		progress(c, i, 1, k, t->nr_pages);
		throttle(c);
	}
}

/* Pass 2: hash again; equal pages go into their group. */
static int second_pass(struct est_ctx *c, size_t i)
{
	struct est_target *t = &c->targets[i];

	for (size_t k = 0; k < t->nr_pages && live(c, i);) {
		size_t n = 0, m = 0;
		int err;

		for (; m < EST_BATCH && k < t->nr_pages; k++)
			if (!(t->pages[k].flags & EST_PG_SKIP))
				c->idx[m++] = (uint32_t)k;
		n = m;
		if (!n)
			break;
		err = read_batch(c, i, n);
		if (err) {
			fail(c, i, err);
			return 0;
		}
		double t1 = now_s();
		for (size_t j = 0; j < n; j++) {
			struct est_page *pg = &t->pages[c->idx[j]];
			const char *data = (char *)c->buf + j * EST_PAGE_SIZE;
			uint64_t h;

			if (!c->ok[j]) {
				pg->flags |= EST_PG_VOLATILE;	/* went away */
				continue;
			}
			h = est_xxh3(data, EST_PAGE_SIZE);
			if (h != pg->hash) {
				pg->flags |= EST_PG_VOLATILE;
				continue;
			}
			if (is_zero(c, data, h)) {
				/* Without PFNs, a page of zeros mapped more than
				 * once is taken for the shared zero page. */
				if (!c->pfns_visible && !t->zero_page_known &&
				    !(pg->flags & EST_PG_EXCLUSIVE)) {
					pg->flags |= EST_PG_SKIP;
					continue;
				}
				pg->flags |= EST_PG_ZERO;
			}
			err = est_dedup_add(c->dedup, data, h, (uint32_t)i, c->idx[j],
					    &pg->group);
			if (err)
				return err;
			pg->flags |= EST_PG_GROUPED;
		}
		c->read_seconds += now_s() - t1;
		progress(c, i, 2, k, t->nr_pages);
		throttle(c);
	}
	return 0;
}

static void ungroup(struct est_ctx *c, struct est_page *pg)
{
	if (pg->flags & EST_PG_GROUPED)
		est_dedup_drop(c->dedup, pg->group);
	pg->flags &= (uint8_t)~EST_PG_GROUPED;
	pg->group = EST_NO_GROUP;
}

/* Targets found gone: their pages leave their groups. */
static void drop_exited(struct est_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct est_target *t = &c->targets[i];

		if (live(c, i) && est_target_exited(t))
			fail(c, i, -ESRCH);
		if (live(c, i) || !t->pages)
			continue;
		for (size_t k = 0; k < t->nr_pages; k++)
			ungroup(c, &t->pages[k]);
		free(t->pages);
		t->pages = NULL;
		t->nr_pages = 0;
	}
}

/* Step 4: the first page of each group, compared with the stored copy. */
static int verify_first_pages(struct est_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct est_target *t = &c->targets[i];
		uint32_t *todo, ti, pi;
		size_t nr = 0;

		if (!live(c, i))
			continue;
		todo = malloc((t->nr_pages ? t->nr_pages : 1) * sizeof(*todo));
		if (!todo)
			return -ENOMEM;
		for (size_t p = 0; p < t->nr_pages; p++) {
			uint32_t g = t->pages[p].group;

			if ((t->pages[p].flags & EST_PG_GROUPED) &&
			    est_dedup_unverified(c->dedup, g, &ti, &pi) && ti == i && pi == p)
				todo[nr++] = (uint32_t)p;
		}
		for (size_t k = 0; k < nr && live(c, i);) {
			size_t n = nr - k < EST_BATCH ? nr - k : EST_BATCH;
			int err;

			memcpy(c->idx, todo + k, n * sizeof(*todo));
			err = read_batch(c, i, n);
			if (err) {
				fail(c, i, err);
				break;
			}
			for (size_t j = 0; j < n; j++) {
				struct est_page *pg = &t->pages[c->idx[j]];
				const char *data = (char *)c->buf + j * EST_PAGE_SIZE;
				const void *want = est_dedup_data(c->dedup, pg->group);

				est_dedup_verified(c->dedup, pg->group);
				if (c->ok[j] && want && !memcmp(data, want, EST_PAGE_SIZE))
					continue;
				/* Changed since the second read (or, once in 2^64,
				 * another content with the same hash). */
				if (!c->ok[j] || est_xxh3(data, EST_PAGE_SIZE) != pg->hash) {
					pg->flags |= EST_PG_VOLATILE;
					pg->flags &= (uint8_t)~EST_PG_ZERO;
				}
				ungroup(c, pg);
			}
			k += n;
			progress(c, i, 3, k, nr);
			throttle(c);
		}
		free(todo);
	}
	return 0;
}

static void count_pages(struct est_ctx *c, size_t i)
{
	struct est_counters *cnt = &c->procs[i].c;
	struct est_target *t = &c->targets[i];

	for (size_t k = 0; k < t->nr_pages; k++) {
		uint8_t f = t->pages[k].flags;

		if (f & EST_PG_SKIP)
			continue;
		cnt->pages++;
		if (f & EST_PG_VOLATILE)
			cnt->pages_volatile++;
		else if (f & EST_PG_ZERO)
			cnt->zero_pages++;
		if (c->pfns_visible ? false : !(f & EST_PG_EXCLUSIVE))
			c->procs[i].shared_frames++;
	}
}

/* The frame identity of a page for the engine (see est_snap_add_page). */
static uint64_t frame_key(const struct est_page *pg, int kpf)
{
	/*
	 * A page mapped more than once is one frame (shared by fork): the
	 * kernel never merges it with itself.  Not so a KSM page already:
	 * each of its mappings counts.
	 */
	if (pg->pfn && !(pg->flags & EST_PG_EXCLUSIVE) && !est_pfn_is_ksm(kpf, pg->pfn))
		return pg->pfn;
	return 0;
}

static bool engine_page(const struct est_ctx *c, const struct est_page *pg)
{
	if (!(pg->flags & EST_PG_GROUPED) || (pg->flags & EST_PG_VOLATILE))
		return false;
	return c->o->engine_all_pages || est_dedup_count(c->dedup, pg->group) >= 2;
}

/*
 * Step 6: the engine.  Each process has two address spaces in the
 * snapshot: its pages of every content seen twice anywhere (the joint run),
 * and its pages of every content it holds twice itself (its own run; the
 * others could only go unshared there).
 */
static int run_engine(struct est_ctx *c, struct est_counters *total,
		      struct est_stats *st)
{
	size_t n = c->n ? c->n : 1, nlive = 0;
	struct est_snap *s = NULL;
	uint32_t *mms = calloc(n, sizeof(*mms)), *own = calloc(n, sizeof(*own));
	uint32_t *count = calloc(est_dedup_groups(c->dedup) + 1, sizeof(*count));
	long *merging = calloc(n, sizeof(*merging));
	size_t *which = calloc(n, sizeof(*which));
	int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	int err = -ENOMEM;
	double t = now_s();

	if (!mms || !own || !count || !merging || !which)
		goto out;
	err = est_snap_create(&s);
	for (size_t i = 0; !err && i < c->n; i++) {
		struct est_target *tg = &c->targets[i];

		if (!live(c, i))
			continue;
		err = est_snap_add_mm(s, &mms[nlive]);
		if (!err)
			err = est_snap_add_mm(s, &own[nlive]);
		which[nlive] = i;
		for (size_t k = 0; !err && k < tg->nr_pages; k++)
			if (engine_page(c, &tg->pages[k]))
				count[tg->pages[k].group]++;
		for (size_t k = 0; !err && k < tg->nr_pages; k++) {
			struct est_page *pg = &tg->pages[k];
			const void *data;
			uint64_t key;

			if (!engine_page(c, pg))
				continue;
			data = est_dedup_data(c->dedup, pg->group);
			key = frame_key(pg, kpf);
			err = est_snap_add_page(s, mms[nlive], data, key);
			if (!err && (count[pg->group] >= 2 || c->o->engine_all_pages))
				err = est_snap_add_page(s, own[nlive], data, key);
			if (st)
				st->engine_pages++;
		}
		for (size_t k = 0; k < tg->nr_pages; k++)
			if (tg->pages[k].flags & EST_PG_GROUPED)
				count[tg->pages[k].group] = 0;
		nlive++;
	}
	if (err)
		goto out;
	err = est_snap_converge(s, mms, nlive, &total->pages_shared, &total->pages_sharing,
				merging, st ? &st->full_scans : NULL);
	if (err)
		goto out;
	total->saved_bytes = (unsigned long)total->pages_sharing * EST_PAGE_SIZE;
	for (size_t j = 0; j < nlive; j++) {
		struct est_proc *p = &c->procs[which[j]];

		p->merging_pages = merging[j];
		err = est_snap_converge(s, &own[j], 1, &p->c.pages_shared,
					&p->c.pages_sharing, NULL, NULL);
		if (err)
			goto out;
		p->c.saved_bytes = (unsigned long)p->c.pages_sharing * EST_PAGE_SIZE;
	}
out:
	if (st)
		st->engine_seconds = now_s() - t;
	if (kpf >= 0)
		close(kpf);
	est_snap_destroy(s);
	free(mms);
	free(own);
	free(count);
	free(merging);
	free(which);
	return err;
}

int estimate_run(const struct est_opts *o, struct est_proc *procs, size_t n,
		 struct est_counters *total, struct est_stats *stats)
{
	static const char zeros[EST_PAGE_SIZE];
	struct est_ctx c = { .o = o, .procs = procs, .n = n };
	struct est_stats st = { 0 };
	size_t all_pages = 0;
	uint64_t zero_pfn;
	int err = -ENOMEM;

	memset(total, 0, sizeof(*total));
	c.t0 = now_s();
	c.zero_hash = est_xxh3(zeros, EST_PAGE_SIZE);
	zero_pfn = est_zero_pfn();
	c.pfns_visible = st.pfns_visible = zero_pfn != 0;
	c.targets = calloc(n ? n : 1, sizeof(*c.targets));
	c.buf = aligned_alloc(EST_PAGE_SIZE, EST_BATCH * EST_PAGE_SIZE);
	if (!c.targets || !c.buf)
		goto out;
	for (size_t i = 0; i < n; i++) {
		procs[i].error = EST_OK;
		procs[i].errnum = 0;
		memset(&procs[i].c, 0, sizeof(procs[i].c));
		procs[i].merging_pages = 0;
		procs[i].shared_frames = 0;
		c.targets[i].dirfd = c.targets[i].pidfd = -1;
	}

	/* 1. the pages */
	for (size_t i = 0; i < n; i++) {
		err = est_target_open(&c.targets[i], procs[i].pid, procs[i].comm,
				      sizeof(procs[i].comm));
		if (err) {
			procs[i].error = err == -ESRCH ? EST_NO_SUCH_PROCESS : EST_FAILED;
			if (err == -EACCES || err == -EPERM)
				procs[i].error = EST_PERMISSION;
			procs[i].errnum = -err;
			continue;
		}
		err = est_target_find_pages(&c.targets[i], o->mergeable, zero_pfn);
		if (err == -ENOMEM)
			goto out;
		if (err)
			fail(&c, i, err);
		all_pages += c.targets[i].nr_pages;
	}
	err = est_dedup_create(&c.dedup, all_pages, o->engine_all_pages);
	if (err)
		goto out;

	/* 2. and 3. two reads */
	for (size_t i = 0; i < n; i++)
		first_pass(&c, i);
	if (o->between_passes)
		o->between_passes(o->between_arg);
	for (size_t i = 0; i < n; i++) {
		err = second_pass(&c, i);
		if (err)
			goto out;
	}
	drop_exited(&c);
	/* 4. the first page of each group */
	err = verify_first_pages(&c);
	if (err)
		goto out;
	drop_exited(&c);

	for (size_t i = 0; i < n; i++) {
		if (!live(&c, i))
			continue;
		count_pages(&c, i);
		total->pages += procs[i].c.pages;
		total->zero_pages += procs[i].c.zero_pages;
		total->pages_volatile += procs[i].c.pages_volatile;
	}
	st.groups = est_dedup_groups(c.dedup);
	st.read_seconds = c.read_seconds;
	st.bytes_read = c.bytes_read;

	/* 6. the engine */
	err = run_engine(&c, total, &st);
out:
	st.total_seconds = now_s() - c.t0;
	if (stats)
		*stats = st;
	for (size_t i = 0; c.targets && i < n; i++)
		est_target_close(&c.targets[i]);
	free(c.targets);
	free(c.buf);
	est_dedup_destroy(c.dedup);
	return err;
}

const char *estimate_strerror(const struct est_proc *p, char *buf, size_t size)
{
	switch (p->error) {
	case EST_OK:
		snprintf(buf, size, "estimated");
		break;
	case EST_NO_SUCH_PROCESS:
		snprintf(buf, size, "no such process");
		break;
	case EST_EXITED:
		snprintf(buf, size, "exited while being read (left out of the total)");
		break;
	case EST_PERMISSION:
		snprintf(buf, size, "permission denied: reading another process's memory "
			 "needs the same user id and a dumpable target (not setuid, no "
			 "prctl(PR_SET_DUMPABLE, 0)), or CAP_SYS_PTRACE (root)%s",
			 access("/proc/sys/kernel/yama/ptrace_scope", F_OK) == 0 ?
			 "; with kernel.yama.ptrace_scope 1 the target must also be a "
			 "descendant, and 3 forbids it to everyone" : "");
		break;
	default:
		snprintf(buf, size, "%s", strerror(p->errnum));
		break;
	}
	return buf;
}

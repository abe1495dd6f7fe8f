/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - the engine (src/core) run over read-only snapshots of other
 * processes' pages: a backend (src/core/backend.h) whose "memory" is the
 * contents read from the targets, which nothing ever writes.
 *
 * Each target is one address space whose pages are numbered 0, 1, 2, ... in
 * address order (only the pages given to the engine: holes would cost a
 * follow_page each).  A frame is a physical page: usually one per virtual
 * page, but pages that the targets map more than once (shared by fork, same
 * PFN in pagemap) are one frame with several mappings, so that the engine
 * never merges such a page with itself, as the kernel does not either.
 * Making a KSM page converts a frame in place, merging remaps a virtual page
 * onto a KSM frame, unmerge gives a virtual page a fresh private frame: the
 * engine's own rules decide everything, the backend only keeps the books.
 * Contents are pointers into the deduplicated store (identical pages share
 * one copy), never copied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "estimate.h"
#include "ksm.h"

/* The snapshot as read, shared by every run. */
struct snap_page {
	const void *data;
	uint32_t frame;			/* index in snap->frame_data */
};

struct snap_mm {
	struct snap_page *pages;
	size_t n, cap;
};

struct est_snap {
	struct snap_mm *mms;
	size_t nr_mms, cap_mms;
	const void **frame_data;	/* initial frames: their content */
	size_t nr_frames, cap_frames;
	/* frame keys (PFNs of pages mapped several times) -> frame, open hash */
	uint64_t *key_keys;
	uint32_t *key_frames;
	size_t key_cap, key_used;
};

/* The state of one run (the engine changes it). */
enum { FR_FREE, FR_ANON, FR_KSM };

struct run_frame {
	const void *data;
	struct stable_node *node;
	uint32_t mapcount;
	uint8_t state;
};

struct run_mm {
	const struct snap_mm *snap;
	uint32_t *frame;		/* per vpn: the frame mapped */
};

struct run {
	struct run_frame *frames;
	size_t nr_frames, cap_frames;
	struct run_mm *mms;
	size_t nr_mms;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

int est_snap_create(struct est_snap **sp)
{
	struct est_snap *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	*sp = s;
	return 0;
}

void est_snap_destroy(struct est_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nr_mms; i++)
		free(s->mms[i].pages);
	free(s->mms);
	free(s->frame_data);
	free(s->key_keys);
	free(s->key_frames);
	free(s);
}

int est_snap_add_mm(struct est_snap *s, uint32_t *mm)
{
	int err = grow((void **)&s->mms, &s->cap_mms, s->nr_mms + 1, sizeof(*s->mms));

	if (err)
		return err;
	memset(&s->mms[s->nr_mms], 0, sizeof(s->mms[0]));
	*mm = (uint32_t)s->nr_mms++;
	return 0;
}

static int new_frame(struct est_snap *s, const void *data, uint32_t *frame)
{
	int err = grow((void **)&s->frame_data, &s->cap_frames, s->nr_frames + 1,
		       sizeof(*s->frame_data));

	if (err)
		return err;
	s->frame_data[s->nr_frames] = data;
	*frame = (uint32_t)s->nr_frames++;
	return 0;
}

static size_t key_slot(uint64_t key, size_t cap)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1);
}

static int key_rehash(struct est_snap *s)
{
	size_t ncap = s->key_cap ? s->key_cap * 2 : 1024;
	uint64_t *keys = calloc(ncap, sizeof(*keys));
	uint32_t *frames = calloc(ncap, sizeof(*frames));

	if (!keys || !frames) {
		free(keys);
		free(frames);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->key_cap; i++) {
		size_t j;

		if (!s->key_keys[i])
			continue;
		for (j = key_slot(s->key_keys[i], ncap); keys[j]; j = (j + 1) & (ncap - 1))
			;
		keys[j] = s->key_keys[i];
		frames[j] = s->key_frames[i];
	}
	free(s->key_keys);
	free(s->key_frames);
	s->key_keys = keys;
	s->key_frames = frames;
	s->key_cap = ncap;
	return 0;
}

int est_snap_add_page(struct est_snap *s, uint32_t mm, const void *data,
		      uint64_t frame_key)
{
	struct snap_mm *m;
	uint32_t frame;
	int err;

	if (mm >= s->nr_mms)
		return -EINVAL;
	m = &s->mms[mm];
	err = grow((void **)&m->pages, &m->cap, m->n + 1, sizeof(*m->pages));
	if (err)
		return err;
	if (!frame_key) {
		err = new_frame(s, data, &frame);
	} else {
		size_t j;

		if ((s->key_used + 1) * 2 > s->key_cap && (err = key_rehash(s)))
			return err;
		for (j = key_slot(frame_key, s->key_cap); s->key_keys[j];
		     j = (j + 1) & (s->key_cap - 1))
			if (s->key_keys[j] == frame_key)
				break;
		if (s->key_keys[j]) {
			frame = s->key_frames[j];
		} else {
			err = new_frame(s, data, &frame);
			if (err)
				return err;
			s->key_keys[j] = frame_key;
			s->key_frames[j] = frame;
			s->key_used++;
		}
	}
	if (err)
		return err;
	m->pages[m->n].data = data;
	m->pages[m->n].frame = frame;
	m->n++;
	return 0;
}

/* ---- the backend ---- */

static struct run_frame *frame_of(struct run *r, uint64_t pfn)
{
	if (pfn == 0 || pfn > r->nr_frames)
		return NULL;
	return &r->frames[pfn - 1];
}

static void describe(struct run *r, uint64_t pfn, struct sp_page *pg)
{
	struct run_frame *f = frame_of(r, pfn);

	memset(pg, 0, sizeof(*pg));
	if (!f || f->state == FR_FREE)
		return;
	pg->kind = f->state == FR_KSM ? SP_PAGE_KSM : SP_PAGE_ANON;
	pg->pfn = pfn;
	pg->mapcount = (int)f->mapcount;
	pg->stable_node = f->node;
	pg->data = f->data;
}

static void release(struct run_frame *f)
{
	if (--f->mapcount == 0) {
		f->state = FR_FREE;
		f->node = NULL;
	}
}

static int be_find_range(void *be, void *mmp, uint64_t vpn, uint64_t *start,
			 uint64_t *end)
{
	struct run_mm *mm = mmp;

	(void)be;
	if (vpn >= mm->snap->n)
		return -ENOENT;
	*start = 0;
	*end = mm->snap->n;
	return 0;
}

static int be_follow_page(void *be, void *mmp, uint64_t vpn, struct sp_page *pg)
{
	struct run_mm *mm = mmp;

	if (vpn >= mm->snap->n) {
		memset(pg, 0, sizeof(*pg));
		return 0;
	}
	describe(be, (uint64_t)mm->frame[vpn] + 1, pg);
	return 0;
}

static int be_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	if (!frame_of(be, pfn)) {
		memset(pg, 0, sizeof(*pg));
		return -EINVAL;
	}
	describe(be, pfn, pg);
	return 0;
}

/* The frame at (mm, vpn), if it is still the one @seen describes. */
static struct run_frame *still_seen(struct run *r, struct run_mm *mm, uint64_t vpn,
				    const struct sp_page *seen)
{
	struct run_frame *f;

	if (vpn >= mm->snap->n || (uint64_t)mm->frame[vpn] + 1 != seen->pfn)
		return NULL;
	f = frame_of(r, seen->pfn);
	if (!f || f->state == FR_FREE ||
	    (seen->kind == SP_PAGE_KSM) != (f->state == FR_KSM))
		return NULL;
	return f;
}

static int be_merge(void *be, void *mmp, uint64_t vpn, const struct sp_page *seen,
		    uint64_t kpfn)
{
	struct run *r = be;
	struct run_mm *mm = mmp;
	struct run_frame *kf = frame_of(r, kpfn), *f;

	if (!kf || kf->state != FR_KSM)
		return -EINVAL;
	f = still_seen(r, mm, vpn, seen);
	if (!f)
		return -EAGAIN;
	if (f == kf)
		return 0;
	if (f->data != kf->data && memcmp(f->data, kf->data, EST_PAGE_SIZE))
		return -EAGAIN;
	mm->frame[vpn] = (uint32_t)(kpfn - 1);
	kf->mapcount++;
	release(f);
	return 0;
}

static int be_merge_zero(void *be, void *mmp, uint64_t vpn, const struct sp_page *seen)
{
	/* use_zero_pages stays 0 (the kernel's default): never asked. */
	(void)be, (void)mmp, (void)vpn, (void)seen;
	return -EAGAIN;
}

static int be_make_ksm(void *be, void *mmp, uint64_t vpn, const struct sp_page *seen,
		       uint64_t *kpfn)
{
	struct run_frame *f = still_seen(be, mmp, vpn, seen);

	if (!f)
		return -EAGAIN;
	f->state = FR_KSM;	/* in place, like the kernel's page */
	*kpfn = seen->pfn;
	return 0;
}

static int be_unmerge(void *be, void *mmp, uint64_t start, uint64_t end, unsigned int flags)
{
	struct run *r = be;

	(void)flags;
	struct run_mm *mm = mmp;

	for (uint64_t vpn = start; vpn < end && vpn < mm->snap->n; vpn++) {
		struct run_frame *f = &r->frames[mm->frame[vpn]];
		const void *data = f->data;

		if (f->state != FR_KSM)
			continue;
		if (grow((void **)&r->frames, &r->cap_frames, r->nr_frames + 1,
			 sizeof(*r->frames)))
			return -ENOMEM;
		f = &r->frames[mm->frame[vpn]];	/* may have moved */
		release(f);
		r->frames[r->nr_frames] = (struct run_frame){
			.data = data, .mapcount = 1, .state = FR_ANON,
		};
		mm->frame[vpn] = (uint32_t)r->nr_frames++;
	}
	return 0;
}

static void be_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	struct run_frame *f = frame_of(be, kpfn);

	if (f && f->state == FR_KSM)
		f->node = node;
}

static uint64_t be_now_ms(void *be)
{
	(void)be;
	return 0;	/* memory that never changes leaves nothing to prune */
}

static const struct sp_backend_ops snap_ops = {
	.find_range = be_find_range,
	.follow_page = be_follow_page,
	.pfn_page = be_pfn_page,
	.merge = be_merge,
	.merge_zero = be_merge_zero,
	.make_ksm = be_make_ksm,
	.unmerge = be_unmerge,
	.set_stable_node = be_set_stable_node,
	.now_ms = be_now_ms,
};

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->nr_mms; i++)
		free(r->mms[i].frame);
	free(r->mms);
	free(r->frames);
}

static int run_init(struct run *r, const struct est_snap *s, const uint32_t *mms,
		    size_t n)
{
	memset(r, 0, sizeof(*r));
	r->cap_frames = s->nr_frames ? s->nr_frames : 1;
	r->frames = calloc(r->cap_frames, sizeof(*r->frames));
	r->mms = calloc(n ? n : 1, sizeof(*r->mms));
	if (!r->frames || !r->mms)
		return -ENOMEM;
	r->nr_frames = s->nr_frames;
	for (size_t i = 0; i < s->nr_frames; i++)
		r->frames[i].data = s->frame_data[i];
	for (size_t i = 0; i < n; i++) {
		const struct snap_mm *m = &s->mms[mms[i]];
		struct run_mm *rm = &r->mms[i];

		rm->snap = m;
		rm->frame = malloc((m->n ? m->n : 1) * sizeof(*rm->frame));
		r->nr_mms = i + 1;
		if (!rm->frame)
			return -ENOMEM;
		for (size_t v = 0; v < m->n; v++) {
			rm->frame[v] = m->pages[v].frame;
			r->frames[m->pages[v].frame].state = FR_ANON;
			r->frames[m->pages[v].frame].mapcount++;
		}
	}
	return 0;
}

struct counters {
	long shared, sharing, unshared, chains, dups;
};

static void read_counters(struct ksm *ksm, struct counters *c)
{
	ksm_get(ksm, "pages_shared", &c->shared);
	ksm_get(ksm, "pages_sharing", &c->sharing);
	ksm_get(ksm, "pages_unshared", &c->unshared);
	ksm_get(ksm, "stable_node_chains", &c->chains);
	ksm_get(ksm, "stable_node_dups", &c->dups);
}

#define EST_MAX_FULL_SCANS 64

int est_snap_converge(struct est_snap *s, const uint32_t *mms, size_t n,
		      long *pages_shared, long *pages_sharing, long *merging,
		      unsigned int *full_scans)
{
	struct sp_backend backend;
	struct counters prev = { -1, -1, -1, -1, -1 }, cur;
	struct ksm *ksm = NULL;
	struct run r;
	unsigned int scans = 0;
	int err;

	for (size_t i = 0; i < n; i++)
		if (mms[i] >= s->nr_mms)
			return -EINVAL;
	err = run_init(&r, s, mms, n);
	if (err)
		goto out;
	backend = (struct sp_backend){
		.ops = &snap_ops, .be = &r, .page_size = EST_PAGE_SIZE, .nr_node_ids = 1,
	};
	err = ksm_create(&ksm, &backend);
	if (err)
		goto out;
	/* Batches as large as possible: the batch size changes nothing else. */
	err = ksm_set(ksm, "pages_to_scan", 1UL << 30);
	for (size_t i = 0; !err && i < n; i++)
		if (r.mms[i].snap->n)
			err = ksm_enter(ksm, &r.mms[i]);
	if (err)
		goto out;
	/* Converged: a full scan that changed no counter (3 scans at least:
	 * checksums, merges, and one to see nothing move). */
	while (scans < EST_MAX_FULL_SCANS) {
		err = ksm_scan_full(ksm, 1);
		if (err)
			goto out;
		scans++;
		read_counters(ksm, &cur);
		if (scans >= 3 && !memcmp(&cur, &prev, sizeof(cur)))
			break;
		prev = cur;
	}
	if (scans >= EST_MAX_FULL_SCANS) {
		err = -ETIMEDOUT;
		goto out;
	}
	*pages_shared = cur.shared;
	*pages_sharing = cur.sharing;
	for (size_t i = 0; merging && i < n; i++) {
		merging[i] = 0;
		ksm_mm_get(ksm, &r.mms[i], "ksm_merging_pages", &merging[i]);
	}
	if (full_scans)
		*full_scans = scans;
out:
	ksm_destroy(ksm);
	run_free(&r);
	return err;
}

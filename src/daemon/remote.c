/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the engine's backend (backend.h) over the clients of one
 * merge domain: the "remote" OS layer.
 *
 * Looking: a client's pagemap (/proc/PID/pagemap, windows of SD_PM_WIN
 * entries kept for one hold of the daemon lock) and content (read here:
 * /proc/PID/mem, which pins nothing, and process_vm_readv with read-ahead
 * along the scan for pages mapped by the client alone).  The engine's
 * walks decide by the keys of the pages (core/unstable.c) and the agent's
 * check under write protection confirms a match, so a tree walk needs no
 * remote read per level.
 *
 * Records: one per page of each range, with the meaning of
 * linux_internal.h (slot, REC_ANON | slot for a zero-content slot,
 * REC_ANON for the zero page), kept here: the daemon's view of what the
 * agent mapped.  A record changes when the engine merges (at once,
 * "pending" until the flush; undone if the agent refuses), when the daemon
 * sees the page written (copy-on-write seen in pagemap: the agent is told
 * to privatize it), on unmerge, and when the client's ranges change.
 *
 * Merging: merge, merge_zero and make_ksm only decide and record; the
 * pages go to the agent at the flush, one MERGE message per client (up to
 * SP_BATCH_MAX pages), as the contract allows (deferred merges).  A new
 * KSM page's content is copied into its slot before the agent is asked;
 * the agent compares the page with it in full once write-protected, so a
 * write in between only loses the merge.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"

static inline struct sd_daemon *D(void *be)
{
	return ((struct sd_domain *)be)->d;
}

/* The live client of domain @be behind @mm, or NULL. */
static struct sd_client *client_of(void *be, void *mm)
{
	struct sd_client *c = sd_client_by_mm(D(be), mm);

	if (!c || c->dead || c->dom != be)
		return NULL;
	return c;
}

/* ------------------------------------------------------------------------
 * The client's address space, read from here.
 * --------------------------------------------------------------------- */
int sd_client_open_os(struct sd_daemon *d, struct sd_client *c)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d/pagemap", (int)c->pid);
	c->pagemap_fd = open(p, O_RDONLY | O_CLOEXEC);
	snprintf(p, sizeof(p), "/proc/%d/mem", (int)c->pid);
	c->mem_fd = open(p, O_RDONLY | O_CLOEXEC);
	if (c->pagemap_fd < 0 || c->mem_fd < 0)
		return -errno;
	char *buf = mmap(NULL, (SP_OS_AHEAD + 1) * d->page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return -ENOMEM;
	c->win = buf;
	c->tmp = buf + SP_OS_AHEAD * d->page;
	c->win_n = 0;
	return 0;
}

void sd_client_close_os(struct sd_daemon *d, struct sd_client *c)
{
	if (c->pagemap_fd >= 0)
		close(c->pagemap_fd);
	if (c->mem_fd >= 0)
		close(c->mem_fd);
	if (c->win)
		munmap(c->win, (SP_OS_AHEAD + 1) * d->page);
	c->win = c->tmp = NULL;
	c->pagemap_fd = c->mem_fd = -1;
	for (int i = 0; i < SD_PM_CACHE; i++) {
		free(c->win_pm[i]);
		c->win_pm[i] = NULL;
	}
}

/* Pages [vpn, vpn+n) of @c through /proc/PID/mem (any protection; pins
 * nothing, so a page it shares with a fork stays shared). */
static int remote_read(struct sd_daemon *d, struct sd_client *c, uint64_t vpn, uint64_t n,
		       void *buf)
{
	return sp_mem_read(c->mem_fd, vpn << d->page_shift, n << d->page_shift, buf);
}

/*
 * The content of present page @vpn; @ahead more pages after it, which
 * pagemap showed present and mapped by @c alone, are read along with one
 * process_vm_readv (it pins pages: never for a page shared with a fork,
 * which pinning would unshare).  Valid until the next call.
 */
static const void *remote_data(struct sd_daemon *d, struct sd_client *c, uint64_t vpn,
			       uint32_t ahead)
{
	if (c->win_n && vpn >= c->win_start && vpn < c->win_start + c->win_n)
		return c->win + ((vpn - c->win_start) << d->page_shift);
	c->win_n = 0;
	if (ahead) {
		if (ahead >= SP_OS_AHEAD)
			ahead = SP_OS_AHEAD - 1;
		size_t len = (size_t)(ahead + 1) << d->page_shift;
		struct iovec l = { .iov_base = c->win, .iov_len = len };
		struct iovec r = { .iov_base = (void *)(uintptr_t)(vpn << d->page_shift),
				   .iov_len = len };

		if (process_vm_readv(c->pid, &l, 1, &r, 1, 0) == (ssize_t)len) {
			c->win_start = vpn;
			c->win_n = ahead + 1;
			return c->win;
		}
	}
	if (remote_read(d, c, vpn, 1, c->win))
		return NULL;
	c->win_start = vpn;
	c->win_n = 1;
	return c->win;
}

static int remote_pagemap(struct sd_daemon *d, struct sd_client *c, uint64_t vpn,
			  uint64_t *e, uint32_t n)
{
	(void)d;
	ssize_t got = pread(c->pagemap_fd, e, (size_t)n * 8, (off_t)(vpn * 8));

	return got < 0 ? -errno : (int)(got / 8);
}

static bool remote_is_zero(struct sd_daemon *d, struct sd_client *c, uint64_t vpn)
{
	return remote_read(d, c, vpn, 1, c->tmp) == 0 && sp_mem_is_zero(c->tmp, d->page);
}

/* The PFN of the shared zero page as this process sees it (0: hidden). */
uint64_t sd_find_zero_pfn(size_t page, unsigned int shift)
{
	volatile char *p = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (p != MAP_FAILED && fd >= 0) {
		(void)p[0];
		if (pread(fd, &e, 8, (off_t)(((uintptr_t)p >> shift) * 8)) != 8)
			e = 0;
	}
	if (fd >= 0)
		close(fd);
	if (p != MAP_FAILED)
		munmap((void *)p, page);
	return (e & PM_PRESENT) ? (e & PM_PFN) : 0;
}

static int pagemap_entry(struct sd_daemon *d, struct sd_client *c, uint64_t vpn,
			 uint64_t *e, int *nid)
{
	struct sd_pmwin **slot = &c->win_pm[(vpn / SD_PM_WIN) % SD_PM_CACHE];
	struct sd_pmwin *w = *slot;
	uint64_t gen = d->gen + c->pm_gen;

	if (!w || w->gen != gen || vpn < w->start || vpn >= w->start + w->n) {
		if (!w) {
			w = *slot = malloc(sizeof(*w));
			if (!w)
				return -ENOMEM;
		}
		uint64_t start = vpn & ~(uint64_t)(SD_PM_WIN - 1);
		int got = remote_pagemap(d, c, start, w->e, SD_PM_WIN);

		if (got < 1) {
			w->n = 0;
			return got < 0 ? got : -EIO;
		}
		w->start = start;
		w->n = (uint32_t)got;
		w->gen = gen;
		memset(w->nid, 0, sizeof(w->nid));
		if (d->nr_nodes > 1) {
			void *addr[SD_PM_WIN];
			int status[SD_PM_WIN];

			for (uint32_t k = 0; k < w->n; k++)
				addr[k] = (void *)(uintptr_t)((start + k) << d->page_shift);
			if (move_pages(c->pid, w->n, addr, NULL, status, 0) == 0)
				for (uint32_t k = 0; k < w->n; k++)
					w->nid[k] = (int16_t)(status[k] >= 0 &&
							      status[k] < d->nr_nodes ? status[k] : 0);
		}
		if (vpn >= w->start + w->n)
			return -EIO;
	}
	*e = w->e[vpn - w->start];
	*nid = w->nid[vpn - w->start];
	return 0;
}

static bool is_zero_page(struct sd_daemon *d, struct sd_client *c, uint64_t e, uint64_t vpn)
{
	if (!(e & PM_PRESENT) || (e & PM_FILE))
		return false;
	if (d->zero_pfn)
		return (e & PM_PFN) == d->zero_pfn;
	/* PFNs hidden: the zero page is never mapped exclusively */
	return !(e & PM_EXCL) && remote_is_zero(d, c, vpn);
}

/* Present private pages mapped by the client alone from @vpn on, up to
 * SP_OS_AHEAD, inside the cached window and below @end. */
static uint32_t exclusive_run(struct sd_daemon *d, struct sd_client *c, uint64_t vpn,
			      uint64_t end)
{
	uint32_t n = 0;

	for (uint64_t v = vpn; v < end && n < SP_OS_AHEAD; v++, n++) {
		uint64_t e;
		int nid;

		if ((v / SD_PM_WIN) != (vpn / SD_PM_WIN) || pagemap_entry(d, c, v, &e, &nid))
			break;
		if ((e & (PM_PRESENT | PM_EXCL | PM_FILE | PM_SWAP)) != (PM_PRESENT | PM_EXCL))
			break;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Ranges and records.
 * --------------------------------------------------------------------- */
static size_t range_index(struct sd_client *c, uint64_t vpn)
{
	size_t lo = 0, hi = c->nranges;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (c->ranges[mid].end > vpn)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static struct sd_range *range_find(struct sd_client *c, uint64_t vpn)
{
	size_t i = range_index(c, vpn);

	if (i < c->nranges && c->ranges[i].start <= vpn)
		return &c->ranges[i];
	return NULL;
}

/* The count (or zero-page mapping) record @rec stood for goes. */
static void rec_put(struct sd_client *c, uint32_t rec, bool notify)
{
	if (rec & REC_SLOT)
		sd_slot_put(c->dom, rec & REC_SLOT);
	else if (rec == REC_ANON && notify)
		ksm_zero_page_unmapped(c->dom->ksm, (void *)(uintptr_t)c->id);
}

/* Forget the records of [a, b) (the pages are private already, or gone). */
void sd_drop_records(struct sd_client *c, uint64_t a, uint64_t b, bool notify)
{
	for (size_t ri = range_index(c, a); ri < c->nranges; ri++) {
		struct sd_range *r = &c->ranges[ri];

		if (r->start >= b)
			break;
		uint64_t s = a > r->start ? a : r->start, e = b < r->end ? b : r->end;

		for (uint64_t v = s; v < e; v++) {
			uint32_t rec = r->rec[v - r->start];

			r->rec[v - r->start] = 0;
			rec_put(c, rec, notify);
		}
	}
}

static bool ranges_valid(const uint64_t *r, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		if (r[2 * k] >= r[2 * k + 1] || r[2 * k + 1] > (1ull << 52))
			return false;
		if (k && r[2 * k] < r[2 * k - 1])
			return false;
	}
	return true;
}

/*
 * RANGES: the client's registered ranges are now @r (n pairs); it made
 * [forget_a, forget_b) private itself.  Records of pages still inside a
 * range are kept.
 */
int sd_set_ranges(struct sd_daemon *d, struct sd_client *c, const uint64_t *r, uint32_t n,
		  uint64_t forget_a, uint64_t forget_b)
{
	if (!ranges_valid(r, n) || forget_a > forget_b)
		return -EINVAL;
	/* a record per page is kept here: no more pages than the machine could
	 * hold a few times over (a client must not make the daemon's memory go) */
	uint64_t pages = 0;

	for (uint32_t k = 0; k < n; k++)
		pages += r[2 * k + 1] - r[2 * k];
	if (pages > 4 * d->cap)
		return -E2BIG;
	(void)sd_flush_client(d, c);
	struct sd_range *nr = calloc(n ? n : 1, sizeof(*nr));

	if (!nr)
		return -ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		nr[k].start = r[2 * k];
		nr[k].end = r[2 * k + 1];
		nr[k].rec = calloc(nr[k].end - nr[k].start, sizeof(uint32_t));
		if (!nr[k].rec) {
			while (k--)
				free(nr[k].rec);
			free(nr);
			return -ENOMEM;
		}
	}
	if (forget_a < forget_b)
		sd_drop_records(c, forget_a, forget_b, true);
	/* carry the records over; those of pages no longer registered go */
	for (size_t i = 0; i < c->nranges; i++) {
		struct sd_range *o = &c->ranges[i];

		for (uint64_t v = o->start; v < o->end; v++) {
			uint32_t rec = o->rec[v - o->start];

			if (!rec)
				continue;
			struct sd_range *t = NULL;

			for (uint32_t k = 0; k < n && !t; k++)
				if (nr[k].start <= v && v < nr[k].end)
					t = &nr[k];
			if (t)
				t->rec[v - t->start] = rec;
			else
				rec_put(c, rec, true);
		}
		free(o->rec);
	}
	free(c->ranges);
	c->ranges = nr;
	c->nranges = n;
	c->pm_gen++;
	void *mm = (void *)(uintptr_t)c->id;

	if (n && !ksm_mm_registered(c->dom->ksm, mm))
		return ksm_enter(c->dom->ksm, mm);
	return 0;
}

/*
 * RECORDS: a fork of a client maps @n store pages as its parent did; take
 * over those whose store page is still counted (shared by someone: its
 * content and stable node are alive), refuse the others (the agent makes
 * them private).  @ok[k]: 1 taken over.
 */
void sd_take_records(struct sd_daemon *d, struct sd_client *c, const struct sp_merge_req *q,
		     uint32_t n, uint8_t *ok)
{
	(void)sd_flush_client(d, c);
	for (uint32_t k = 0; k < n; k++) {
		struct sd_range *r = range_find(c, q[k].vpn);
		struct sd_slot *s = q[k].slot ? sd_slot_get(c->dom, q[k].slot) : NULL;
		bool zero = q[k].kind == SP_MERGE_ZERO_SLOT;

		ok[k] = r && s && !r->rec[q[k].vpn - r->start] &&
			(q[k].kind == SP_MERGE_FILE || zero) &&
			(s->flags & (SD_SLOT_USED | SD_SLOT_SENT)) == (SD_SLOT_USED | SD_SLOT_SENT) &&
			!(s->flags & SD_SLOT_ZERO) == !zero;
		if (!ok[k])
			continue;
		s->count++;
		r->rec[q[k].vpn - r->start] = zero ? (REC_ANON | q[k].slot) : q[k].slot;
	}
	c->pm_gen++;
}

/* ------------------------------------------------------------------------
 * The flush: the agent maps what was decided.
 * --------------------------------------------------------------------- */
/* Where @vpn is or would go in @c's batch, kept in ascending vpn order. */
static uint32_t batch_index(const struct sd_client *c, uint64_t vpn)
{
	uint32_t lo = 0, hi = c->nbatch;

	if (hi && c->batch[hi - 1].vpn < vpn)
		return hi;	/* (the usual case: the scan goes up) */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->batch[mid].vpn < vpn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool in_batch(struct sd_client *c, uint64_t vpn)
{
	uint32_t k = batch_index(c, vpn);

	return k < c->nbatch && c->batch[k].vpn == vpn;
}

static void send_privatize(struct sd_client *c)
{
	if (!c->npriv)
		return;
	if (sp_msg_send(c->fd, SP_MSG_PRIVATIZE, ++c->seq, 0, c->npriv, NULL, c->priv,
			c->npriv * sizeof(uint64_t), NULL, 0))
		c->dead = true;
	c->npriv = 0;
}

int sd_flush_client(struct sd_daemon *d, struct sd_client *c)
{
	struct sp_merge_req q[SP_BATCH_MAX];
	uint32_t n = c->nbatch;
	int err = 0;

	send_privatize(c);
	if (!n)
		return 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t rec = c->batch[k].rec, id = rec & REC_SLOT;

		q[k] = (struct sp_merge_req){
			.vpn = c->batch[k].vpn, .slot = id,
			.kind = !(rec & REC_ANON) ? SP_MERGE_FILE :
				id ? SP_MERGE_ZERO_SLOT : SP_MERGE_ZERO,
		};
		if (id) {
			/* from now on an agent may map it, whatever happens */
			struct sd_slot *s = sd_slot_get(c->dom, id);

			if (s)
				s->flags |= SD_SLOT_SENT;
		}
	}
	uint32_t seq = ++c->seq;
	bool sent = false;

	if (c->dead)
		err = -ESRCH;
	if (!err) {
		sent = true;	/* (even a send that failed may have gone in part) */
		err = sp_msg_send(c->fd, SP_MSG_MERGE, seq, 0, n, NULL, q, n * sizeof(q[0]),
				  NULL, 0);
	}
	if (!err)
		err = sd_wait_answer(d, c, SP_MSG_MERGE, seq);
	if (!err && (d->rx.plen != n || d->rx.h.count != n))
		err = -EPROTO;
	if (err && sent) {
		/* no answer: the agent may still map these, late */
		uint32_t id[SP_BATCH_MAX], m = 0;

		for (uint32_t k = 0; k < n; k++)
			if (q[k].slot)
				id[m++] = q[k].slot;
		if (m)
			sd_store_limbo(c, id, m);
	}
	const uint8_t *ok = d->rx.payload;

	for (uint32_t k = 0; k < n; k++) {
		struct sd_pending *p = &c->batch[k];
		struct sd_range *r = range_find(c, p->vpn);
		bool merged = !err && ok[k] == 1;

		if (merged) {
			rec_put(c, p->old, true);
			c->merges++;
			d->merges++;
			continue;
		}
		if (r && r->rec[p->vpn - r->start] == p->rec)
			r->rec[p->vpn - r->start] = p->old;
		rec_put(c, p->rec, true);
		c->merges_refused++;
		d->merges_refused++;
	}
	c->nbatch = 0;
	c->pm_gen++;		/* its mappings changed */
	c->win_n = 0;
	if (err && err != -ESRCH)
		sd_client_gone(d, c);
	return err;
}

/* Page @vpn (range @r, record @old) gets record @rec at the flush. */
static int add_pending(struct sd_daemon *d, struct sd_client *c, struct sd_range *r,
		       uint64_t vpn, uint32_t rec)
{
	if (c->nbatch == SP_BATCH_MAX)
		sd_flush_client(d, c);
	if (c->dead)
		return -EAGAIN;
	r = range_find(c, vpn);		/* (the flush may have changed it) */
	if (!r)
		return -EAGAIN;
	/* (out of order now and then: a tree page merged after a later one) */
	uint32_t k = batch_index(c, vpn);

	memmove(&c->batch[k + 1], &c->batch[k], (c->nbatch - k) * sizeof(c->batch[0]));
	c->nbatch++;
	c->batch[k] = (struct sd_pending){
		.vpn = vpn, .rec = rec, .old = r->rec[vpn - r->start],
	};
	r->rec[vpn - r->start] = rec;
	return 0;
}

/* ------------------------------------------------------------------------
 * The operations.
 * --------------------------------------------------------------------- */
static int op_find_range(void *be, void *mm, uint64_t vpn, uint64_t *start, uint64_t *end)
{
	struct sd_client *c = client_of(be, mm);

	if (!c)
		return -ENOENT;
	size_t i = range_index(c, vpn);

	if (i >= c->nranges)
		return -ENOENT;
	*start = c->ranges[i].start;
	*end = c->ranges[i].end;
	return 0;
}

static void describe_slot(struct sd_domain *dom, uint32_t id, struct sp_page *pg)
{
	struct sd_slot *s = sd_slot_get(dom, id);

	if (!s || !(s->flags & SD_SLOT_USED)) {
		pg->kind = SP_PAGE_NONE;
		return;
	}
	pg->kind = SP_PAGE_KSM;
	pg->pfn = id;
	pg->nid = (int)((id - 1) >> dom->d->node_shift);
	pg->mapcount = (int)s->count;
	pg->stable_node = s->node;
	/* (a zero slot is a hole: reading it through the view would allocate
	 * a page of the store for nothing) */
	pg->data = (s->flags & SD_SLOT_ZERO) ? (const void *)sp_zero_page_data :
		   sd_slot_data(dom, id);
}

/* Page @vpn was seen written: the agent gives it private memory. */
static void note_written(struct sd_daemon *d, struct sd_client *c, uint64_t vpn)
{
	if (c->npriv == SP_BATCH_MAX)
		send_privatize(c);
	(void)d;
	c->priv[c->npriv++] = vpn;
}

static int op_follow_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	struct sd_domain *dom = be;
	struct sd_daemon *d = dom->d;
	struct sd_client *c = client_of(be, mm);

	memset(pg, 0, sizeof(*pg));
	if (!c)
		return 0;
	if (in_batch(c, vpn))
		sd_flush_client(d, c);
	struct sd_range *r = range_find(c, vpn);

	if (!r || c->dead)
		return 0;
	uint64_t i = vpn - r->start, e;
	uint32_t rec = r->rec[i];
	int nid;
	int err = pagemap_entry(d, c, vpn, &e, &nid);

	if (err)
		return 0;	/* (gone meanwhile: nothing there) */
	bool present = e & PM_PRESENT;

	if (rec && !(rec & REC_ANON)) {
		if (!((present && !(e & PM_FILE)) || (e & PM_SWAP))) {
			describe_slot(dom, rec, pg);
			return 0;
		}
		/* written since: a private copy now */
		r->rec[i] = 0;
		sd_slot_put(dom, rec);
		note_written(d, c, vpn);
		if (e & PM_SWAP)
			return 0;
	} else if (rec & REC_ANON) {
		if ((!present && !(e & PM_SWAP)) || is_zero_page(d, c, e, vpn)) {
			if (rec & REC_SLOT) {
				describe_slot(dom, rec & REC_SLOT, pg);
			} else {
				pg->kind = SP_PAGE_ZERO;
				pg->data = sp_zero_page_data;
			}
			return 0;
		}
		r->rec[i] = 0;
		rec_put(c, rec, true);
		note_written(d, c, vpn);
	}
	if (!present || (e & (PM_FILE | PM_SWAP)))
		return 0;
	if (is_zero_page(d, c, e, vpn)) {
		pg->kind = SP_PAGE_ZERO;
		pg->data = sp_zero_page_data;
		return 0;
	}
	/* (data: read_page, for the pages the scan does not skip) */
	pg->kind = SP_PAGE_ANON;
	pg->pfn = SP_PFN_ANON | (c->id << 40) | vpn;
	pg->nid = nid;
	return 0;
}

/* The content of an ordinary page the scan cursor does not skip; the
 * pages after it that the client alone maps are read along. */
static int op_read_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	struct sd_domain *dom = be;
	struct sd_client *c = client_of(be, mm);

	if (!c || pg->kind != SP_PAGE_ANON)
		return -EINVAL;
	/* (read along already: no need to look at what follows it) */
	uint32_t run = 0;

	if (!c->win_n || vpn < c->win_start || vpn >= c->win_start + c->win_n) {
		struct sd_range *r = range_find(c, vpn);

		run = exclusive_run(dom->d, c, vpn, r ? r->end : vpn + 1);
	}

	pg->data = remote_data(dom->d, c, vpn, run ? run - 1 : 0);
	return pg->data ? 0 : -EFAULT;
}

static int op_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	memset(pg, 0, sizeof(*pg));
	if (pfn <= REC_SLOT)
		describe_slot(be, (uint32_t)pfn, pg);
	return 0;
}

/* The range of (@mm, @vpn) once no pending merge holds the page. */
static struct sd_range *merge_target(void *be, void *mm, uint64_t vpn, struct sd_client **cp)
{
	struct sd_client *c = client_of(be, mm);

	if (!c)
		return NULL;
	if (in_batch(c, vpn))
		sd_flush_client(D(be), c);
	*cp = c;
	return c->dead ? NULL : range_find(c, vpn);
}

static bool still_seen(uint32_t rec, const struct sp_page *seen)
{
	bool ksm = (rec & REC_SLOT) != 0;

	if (!seen)
		return true;
	if (seen->kind == SP_PAGE_KSM)
		return ksm && (rec & REC_SLOT) == seen->pfn;
	return !ksm;
}

static int op_merge(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		    uint64_t kpfn)
{
	struct sd_domain *dom = be;
	struct sd_client *c = NULL;
	struct sd_range *r = merge_target(be, mm, vpn, &c);
	struct sd_slot *s = kpfn <= REC_SLOT ? sd_slot_get(dom, (uint32_t)kpfn) : NULL;

	if (!r || !s || !(s->flags & SD_SLOT_USED) || !still_seen(r->rec[vpn - r->start], seen))
		return -EAGAIN;
	uint32_t id = (uint32_t)kpfn;
	uint32_t rec = (s->flags & SD_SLOT_ZERO) ? (REC_ANON | id) : id;

	if (r->rec[vpn - r->start] == rec)
		return -EAGAIN;
	s->count++;
	int err = add_pending(dom->d, c, r, vpn, rec);

	if (err)
		sd_slot_put(dom, id);
	return err;
}

static int op_merge_zero(void *be, void *mm, uint64_t vpn, const struct sp_page *seen)
{
	struct sd_domain *dom = be;
	struct sd_client *c = NULL;
	struct sd_range *r = merge_target(be, mm, vpn, &c);

	if (!r || r->rec[vpn - r->start] == REC_ANON || !still_seen(r->rec[vpn - r->start], seen))
		return -EAGAIN;
	return add_pending(dom->d, c, r, vpn, REC_ANON);
}

static int op_make_ksm(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		       uint64_t *kpfn)
{
	struct sd_domain *dom = be;
	struct sd_daemon *d = dom->d;
	struct sd_client *c = NULL;
	struct sd_range *r = merge_target(be, mm, vpn, &c);

	if (!r || (r->rec[vpn - r->start] & REC_SLOT))
		return -EAGAIN;
	int nid = seen && seen->nid >= 0 && seen->nid < d->nr_nodes ? seen->nid : 0;

	/* the content as it is now (the agent compares it under protection) */
	if (remote_read(d, c, vpn, 1, c->tmp))
		return -EAGAIN;
	uint32_t id = sd_slot_alloc(dom, nid);

	if (!id)
		return -ENOMEM;
	struct sd_slot *s = sd_slot_get(dom, id);
	bool zero = sp_mem_is_zero(c->tmp, d->page);

	if (zero)
		s->flags |= SD_SLOT_ZERO;	/* (its page reads zeros: a hole) */
	else
		memcpy(sd_slot_data(dom, id), c->tmp, d->page);
	int err = add_pending(d, c, r, vpn, zero ? (REC_ANON | id) : id);

	if (err) {
		sd_slot_put(dom, id);
		return err;
	}
	*kpfn = id;
	return 0;
}

static int op_unmerge(void *be, void *mm, uint64_t start, uint64_t end, unsigned int flags)
{
	struct sd_domain *dom = be;
	struct sd_daemon *d = dom->d;
	struct sd_client *c = client_of(be, mm);
	int err = 0;

	if (!c)
		return 0;	/* gone: nothing of it is shared any more */
	sd_flush_client(d, c);
	if (!c->dead) {
		uint64_t arg[4] = { start, end, flags & SP_UNMERGE_DISCARD, 0 };
		uint32_t seq = ++c->seq;

		err = sp_msg_send(c->fd, SP_MSG_UNMERGE, seq, 0, 0, arg, NULL, 0, NULL, 0);
		if (!err)
			err = sd_wait_answer(d, c, SP_MSG_UNMERGE, seq);
		if (!err)
			err = d->rx.h.status;
		else
			sd_client_gone(d, c);
		if (c->dead)
			err = 0;
	}
	if (!err)
		sd_drop_records(c, start, end, true);
	c->pm_gen++;
	return err;
}

/*
 * The end of a batch: the deferred merges, then forget what was read of
 * the clients (pagemap windows, pages read along).  They run on while the
 * lock is held, and one hold may span several batches: a full scan of
 * many passes, or requests handled one after the other.  A view kept
 * across batches showed a page written since as still the store page.
 */
static void op_flush(void *be)
{
	struct sd_domain *dom = be;

	for (struct sd_client *c = dom->d->clients; c; c = c->next)
		if (c->dom == dom && !c->dead && (c->nbatch || c->npriv))
			sd_flush_client(dom->d, c);
	dom->d->gen++;
	for (struct sd_client *c = dom->d->clients; c; c = c->next)
		c->win_n = 0;
}

static void op_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	struct sd_slot *s = kpfn <= REC_SLOT ? sd_slot_get(be, (uint32_t)kpfn) : NULL;

	if (s && (s->flags & SD_SLOT_USED))
		s->node = node;
}

static uint64_t op_now_ms(void *be)
{
	(void)be;
	return sp_now_ms();
}

const struct sp_backend_ops sd_remote_ops = {
	.find_range = op_find_range,
	.follow_page = op_follow_page,
	.read_page = op_read_page,
	.pfn_page = op_pfn_page,
	.merge = op_merge,
	.merge_zero = op_merge_zero,
	.make_ksm = op_make_ksm,
	.unmerge = op_unmerge,
	.flush = op_flush,
	.set_stable_node = op_set_stable_node,
	.now_ms = op_now_ms,
	.cond_resched = NULL,
};

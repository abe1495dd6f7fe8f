/* SPDX-License-Identifier: MIT */
/*
 * store.c - the stores of a merge domain: one sealed memfd per node, its
 * slots and their counts.
 *
 * The memfd is mapped here once, MAP_SHARED read-write (the view: the
 * daemon writes a new KSM page's content there, and the engine compares
 * against it), then sealed: F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_FUTURE_WRITE (no new writable mapping, no write(2), no truncate,
 * no hole punch: not even ours), and reopened O_RDONLY through /proc/self/fd
 * for the clients (a read-only fd cannot write, and may still be mapped
 * MAP_PRIVATE read-write: a write there copies).  cross-process.md.
 *
 * Slots: a slot is free, or counted (the records of clients and the merges
 * pending that name it), or spent: counted no more, but held by an agent
 * it was named to.  An agent holds a slot from the MERGE that names it
 * until it says RELEASE: its quarantine (src/linux/store.c) found that
 * neither it nor any child of it (however made: its canaries) can map the
 * slot any more.  A spent slot's content must never change; once no agent
 * holds it, it is free and may get new content.  An agent that dies, or
 * stops answering, never releases what it held (a child the daemon does
 * not know of may map it): those slots stay spent until the domain's
 * memfd goes (sd_store_fini, when the domain has no clients: the kernel
 * frees the file when its last mapping goes).  A fork's slots, inherited
 * from its parent, are its parent's to release.  Memory is not given back
 * by a slot that becomes free (the memfd is sealed: no hole punch), but it
 * is reused, so the store grows no larger than the slots in use and spent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static int store_open(struct sd_domain *dom, int nid, struct sd_store *st)
{
	struct sd_daemon *d = dom->d;
	char name[SP_NAME_MAX + 48];
	size_t bytes = d->cap << d->page_shift;

	snprintf(name, sizeof(name), "samepage-uid%u-%s-node%d", (unsigned)dom->uid,
		 dom->name, nid);
	st->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (st->fd < 0)
		return -errno;
	if (ftruncate(st->fd, (off_t)bytes))
		return -errno;
	st->view = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			st->fd, 0);
	if (st->view == MAP_FAILED) {
		st->view = NULL;
		return -errno;
	}
	if (d->nr_nodes > 1) {
		unsigned long mask[16] = { 0 };

		if (nid < (int)(sizeof(mask) * 8)) {
			mask[nid / (8 * sizeof(long))] |= 1ul << (nid % (8 * sizeof(long)));
			(void)mbind(st->view, bytes, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
		}
	}
	/* (older kernels lack FUTURE_WRITE: the read-only fd still protects) */
	if (fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE))
		(void)fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	(void)fcntl(st->fd, F_ADD_SEALS, F_SEAL_SEAL);
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", st->fd);
	st->ro_fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (st->ro_fd < 0)
		return -errno;
	st->cap = d->cap;
	return 0;
}

int sd_store_init(struct sd_domain *dom)
{
	struct sd_daemon *d = dom->d;

	dom->store = calloc((size_t)d->nr_nodes, sizeof(*dom->store));
	if (!dom->store)
		return -ENOMEM;
	for (int n = 0; n < d->nr_nodes; n++)
		dom->store[n].fd = dom->store[n].ro_fd = -1;
	for (int n = 0; n < d->nr_nodes; n++) {
		int err = store_open(dom, n, &dom->store[n]);

		if (err)
			return err;
	}
	return 0;
}

void sd_store_fini(struct sd_domain *dom)
{
	if (!dom->store)
		return;
	for (int n = 0; n < dom->d->nr_nodes; n++) {
		struct sd_store *st = &dom->store[n];

		if (st->view)
			munmap(st->view, dom->d->cap << dom->d->page_shift);
		if (st->fd >= 0)
			close(st->fd);
		if (st->ro_fd >= 0)
			close(st->ro_fd);
		free(st->slot);
	}
	free(dom->store);
	dom->store = NULL;
}

static int slot_nid_of(struct sd_daemon *d, uint32_t id)
{
	return (int)((id - 1) >> d->node_shift);
}

static uint64_t slot_off_of(struct sd_daemon *d, uint32_t id)
{
	return (id - 1) & ((1ull << d->node_shift) - 1);
}

struct sd_slot *sd_slot_get(struct sd_domain *dom, uint32_t id)
{
	struct sd_daemon *d = dom->d;

	if (!dom->store || id == 0 || id > REC_SLOT)
		return NULL;
	int nid = slot_nid_of(d, id);
	uint64_t off = slot_off_of(d, id);

	if (nid >= d->nr_nodes || off >= dom->store[nid].hwm)
		return NULL;
	return &dom->store[nid].slot[off];
}

char *sd_slot_data(struct sd_domain *dom, uint32_t id)
{
	struct sd_daemon *d = dom->d;

	return dom->store[slot_nid_of(d, id)].view + (slot_off_of(d, id) << d->page_shift);
}

/* A free slot on node @nid, counted once.  0 if the store is full. */
uint32_t sd_slot_alloc(struct sd_domain *dom, int nid)
{
	struct sd_daemon *d = dom->d;
	struct sd_store *st = &dom->store[nid];
	uint64_t off = st->hwm;

	if (st->free) {
		for (uint64_t k = 0; k < st->hwm; k++) {
			uint64_t o = (st->next + k) % st->hwm;

			if (st->slot[o].flags == 0) {
				off = o;
				break;
			}
		}
	}
	if (off == st->hwm) {
		if (off >= st->cap)
			return 0;
		if (off >= st->nslot) {
			uint64_t n = st->nslot ? 2 * st->nslot : 1024;
			struct sd_slot *s = realloc(st->slot, n * sizeof(*s));

			if (!s)
				return 0;
			memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
			st->slot = s;
			st->nslot = n;
		}
		st->hwm++;
	} else {
		st->free--;
	}
	st->next = off + 1;
	st->used++;
	dom->store_pages++;
	st->slot[off] = (struct sd_slot){ .flags = SD_SLOT_USED, .count = 1 };
	return (uint32_t)(((uint64_t)nid << d->node_shift) | off) + 1;
}

/* One count of slot @id goes. */
void sd_slot_put(struct sd_domain *dom, uint32_t id)
{
	struct sd_slot *s = sd_slot_get(dom, id);

	if (!s || !(s->flags & SD_SLOT_USED) || s->count == 0)
		return;
	if (--s->count)
		return;
	struct sd_store *st = &dom->store[slot_nid_of(dom->d, id)];

	s->node = NULL;
	st->used--;
	dom->store_pages--;
	if (s->holders) {
		s->flags &= SD_SLOT_SENT | SD_SLOT_ZERO;	/* spent */
		dom->store_spent++;
		return;
	}
	/* no agent may map it: its old content may be overwritten */
	s->flags = 0;
	st->free++;
}

/* ------------------------------------------------------------------------
 * What each agent holds: an open-addressing set of slot ids.
 * --------------------------------------------------------------------- */
#define SD_HELD_GONE	0xffffffffu

static uint32_t held_hash(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1);
}

static bool held_grow(struct sd_held *h)
{
	uint32_t cap = h->cap ? (h->n * 4 >= h->cap ? h->cap * 2 : h->cap) : 256;
	uint32_t *v = calloc(cap, sizeof(*v));

	if (!v)
		return false;
	for (uint32_t k = 0; k < h->cap; k++) {
		uint32_t id = h->v[k];

		if (!id || id == SD_HELD_GONE)
			continue;
		uint32_t i = held_hash(id, cap);

		while (v[i])
			i = (i + 1) & (cap - 1);
		v[i] = id;
	}
	free(h->v);
	h->v = v;
	h->cap = cap;
	h->used = h->n;
	return true;
}

/* Add @id; true if it was not there. */
static bool held_add(struct sd_held *h, uint32_t id)
{
	if ((h->used + 1) * 2 > h->cap && !held_grow(h))
		return false;	/* (not counted: the caller keeps it spent) */
	uint32_t i = held_hash(id, h->cap), tomb = UINT32_MAX;

	for (; h->v[i]; i = (i + 1) & (h->cap - 1)) {
		if (h->v[i] == id)
			return false;
		if (h->v[i] == SD_HELD_GONE && tomb == UINT32_MAX)
			tomb = i;
	}
	if (tomb != UINT32_MAX)
		i = tomb;
	else
		h->used++;
	h->v[i] = id;
	h->n++;
	return true;
}

/* Remove @id; true if it was there. */
static bool held_del(struct sd_held *h, uint32_t id)
{
	if (!h->cap)
		return false;
	for (uint32_t i = held_hash(id, h->cap); h->v[i]; i = (i + 1) & (h->cap - 1))
		if (h->v[i] == id) {
			h->v[i] = SD_HELD_GONE;
			h->n--;
			return true;
		}
	return false;
}

void sd_held_free(struct sd_held *h)
{
	free(h->v);
	*h = (struct sd_held){ 0 };
}

/* Slot @id is named to @c's agent: it holds it until it releases it. */
void sd_slot_sent(struct sd_client *c, uint32_t id)
{
	struct sd_slot *s = sd_slot_get(c->dom, id);

	if (!s)
		return;
	s->flags |= SD_SLOT_SENT;
	if (held_add(&c->held, id))
		s->holders++;
	else if (!(s->holders))
		s->holders = 1;	/* (no memory to note it: spent for good) */
}

/* @c's agent will never map slots @ids again. */
void sd_slot_released(struct sd_client *c, const uint32_t *ids, uint32_t n)
{
	struct sd_domain *dom = c->dom;

	for (uint32_t k = 0; k < n; k++) {
		struct sd_slot *s = sd_slot_get(dom, ids[k]);

		if (!s || !held_del(&c->held, ids[k]) || !s->holders || --s->holders)
			continue;
		if (s->flags & SD_SLOT_USED)
			continue;	/* (counted still: free when it goes) */
		s->flags = 0;
		dom->store_spent--;
		dom->store[slot_nid_of(dom->d, ids[k])].free++;
	}
}

long sd_store_spent(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		n += dom->store_spent;
	return n;
}

/* Slots handed out at least once: the stores' size in use, in pages. */
long sd_store_slots(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		for (int k = 0; dom->store && k < d->nr_nodes; k++)
			n += (long)dom->store[k].hwm;
	return n;
}

long sd_store_pages(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		n += dom->store_pages;
	return n;
}

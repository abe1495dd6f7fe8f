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
 * pending that name it), or spent: named to an agent once and counted no
 * more.  A spent slot is never handed out again: an agent that was asked to
 * map it may still map it (a late answer, a stopped client) and a forked
 * child of a client may map it, so its content must never change.  Its
 * memory returns with its domain's memfd (sd_store_fini, when the domain
 * has no clients: the kernel frees the file when its last mapping goes).
 * A slot never named to any agent (a make_ksm whose merge was refused) is
 * free again at once.
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
	if (s->flags & SD_SLOT_SENT) {
		s->flags &= SD_SLOT_SENT | SD_SLOT_ZERO;	/* spent */
		return;
	}
	/* never named to anyone: its old content may be overwritten */
	s->flags = 0;
	st->free++;
}

long sd_store_pages(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		n += dom->store_pages;
	return n;
}

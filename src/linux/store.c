/* SPDX-License-Identifier: MIT */
/*
 * store.c - the store: one memfd per NUMA node holding every KSM page
 * (a "slot"), with an exact count of the mappings made of each slot.
 * Knows no address space.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

/* ------------------------------------------------------------------------
 * The store.
 * --------------------------------------------------------------------- */
int sp_store_init(struct samepage *sp)
{
	int bits = 0;

	while ((1 << bits) < sp->nr_nodes)
		bits++;
	sp->node_shift = 30 - bits;
	if (sp->node_shift > 24)
		sp->node_shift = 24;
	if (sp->node_shift < 12)
		return -EINVAL;

	uint64_t cap = 1ull << sp->node_shift;
	long phys = sysconf(_SC_PHYS_PAGES);

	/* A node cannot share more pages than the machine has. */
	if (phys > 0 && (uint64_t)phys * 4096 / sp->os.page + 1 < cap)
		cap = (uint64_t)phys * 4096 / sp->os.page + 1;

	sp->store = calloc((size_t)sp->nr_nodes, sizeof(*sp->store));
	if (!sp->store)
		return -ENOMEM;
	for (int n = 0; n < sp->nr_nodes; n++)
		sp->store[n].fd = -1;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];
		char name[32];

		snprintf(name, sizeof(name), "samepage-node%d", n);
		st->fd = memfd_create(name, MFD_CLOEXEC);
		if (st->fd < 0) {
			sp_set_error("samepage: memfd_create failed: %s", strerror(errno));
			return -errno;
		}
		if (ftruncate(st->fd, (off_t)(cap << sp->os.page_shift))) {
			sp_set_error("samepage: cannot size the store: %s", strerror(errno));
			return -errno;
		}
		struct stat sb;

		if (fstat(st->fd, &sb) == 0)
			st->ino = (uint64_t)sb.st_ino;
		st->cap = cap;
		st->view = mmap(NULL, cap << sp->os.page_shift, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_NORESERVE, st->fd, 0);
		if (st->view == MAP_FAILED) {
			st->view = NULL;
			sp_set_error("samepage: cannot map the store: %s", strerror(errno));
			return -errno;
		}
		/*
		 * Place the node's store pages on the node, preferably: with
		 * MPOL_BIND a full node would make our own store writes fail.
		 * The kernel may still move them; follow_page/pfn_page report
		 * where each page is now.
		 */
		if (sp->nr_nodes > 1 && !sp->opts.node_of && numa_available() >= 0) {
			unsigned long mask[16] = { 0 };

			if (n < (int)(sizeof(mask) * 8)) {
				mask[n / (8 * sizeof(long))] |= 1ul << (n % (8 * sizeof(long)));
				(void)mbind(st->view, cap << sp->os.page_shift, MPOL_PREFERRED,
					    mask, sizeof(mask) * 8, 0);
			}
		}
	}
	return 0;
}

void sp_store_fini(struct samepage *sp)
{
	if (!sp->store)
		return;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];

		if (st->view)
			munmap(st->view, st->cap << sp->os.page_shift);
		if (st->fd >= 0)
			close(st->fd);
		free(st->slot);
	}
	free(sp->store);
	sp->store = NULL;
}

/* The node a store slot's page is on now. */
int sp_query_slot_nid(struct samepage *sp, uint32_t id)
{
	return sp_os_own_node(&sp->os, slot_data(sp, id), slot_nid(sp, id));
}

static int grow_slots(struct sp_store *st, uint64_t need)
{
	if (need <= st->nslot)
		return 0;
	uint64_t n = st->nslot ? st->nslot : 1024;

	while (n < need)
		n *= 2;
	struct sp_slot *s = realloc(st->slot, n * sizeof(*s));

	if (!s)
		return -ENOMEM;
	memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
	st->slot = s;
	st->nslot = n;
	return 0;
}

/* A free slot on node @nid, @hint preferred (consecutive offsets keep runs
 * of merged pages in one VMA).  Returns the slot id, or 0. */
uint32_t sp_slot_alloc(struct samepage *sp, int nid, int64_t hint)
{
	struct sp_store *st = &sp->store[nid];
	uint64_t off;

	if (hint >= 0 && (uint64_t)hint < st->hwm && st->slot[hint].flags == 0) {
		off = (uint64_t)hint;
	} else if (hint >= 0 && (uint64_t)hint == st->hwm && st->hwm < st->cap) {
		off = st->hwm;
	} else {
		/* next-fit among freed slots, else fresh space */
		uint64_t freed = st->hwm - st->used;

		off = st->hwm;
		if (freed) {
			for (uint64_t k = 0; k < st->hwm; k++) {
				uint64_t o = (st->next + k) % st->hwm;

				if (st->slot[o].flags == 0) {
					off = o;
					break;
				}
			}
		}
		if (off >= st->cap)
			return 0;
	}
	if (off >= st->hwm) {
		if (grow_slots(st, off + 1))
			return 0;
		st->hwm = off + 1;
	}
	st->next = off + 1;
	st->used++;
	sp->store_pages++;
	st->slot[off] = (struct sp_slot){ .flags = SLOT_USED, .nid = (int16_t)nid };
	return slot_id(sp, nid, off);
}

/* One mapping of slot @id went away. */
void sp_slot_release(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s || !(s->flags & SLOT_USED) || s->count == 0)
		return;
	if (--s->count)
		return;
	s->node = NULL;
	if (s->flags & SLOT_PINNED) {
		/* a forked child may still map it: never reuse */
		s->flags = SLOT_DEAD;
		return;
	}
	struct sp_store *st = &sp->store[slot_nid(sp, id)];
	uint64_t off = slot_off(sp, id);

	(void)fallocate(st->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)(off << sp->os.page_shift), (off_t)sp->os.page);
	s->flags = 0;
	st->used--;
	sp->store_pages--;
}

/* Slot discarded before any mapping counted on it (failed make_ksm). */
void sp_slot_free_unused(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s)
		return;
	s->count = 1;
	s->flags &= (uint8_t)~SLOT_PINNED;
	sp_slot_release(sp, id);
}

void sp_pin_all_slots(struct samepage *sp)
{
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];

		for (uint64_t o = 0; o < st->hwm; o++)
			if ((st->slot[o].flags & SLOT_USED) && st->slot[o].count)
				st->slot[o].flags |= SLOT_PINNED;
	}
}


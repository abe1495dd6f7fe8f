/* SPDX-License-Identifier: MIT */
/*
 * mm.c - mm_slots (the address spaces registered for merging) and the
 * allocation of rmap_items.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static unsigned int mm_hash(const void *mm)
{
	uintptr_t v = (uintptr_t)mm;

	v ^= v >> 17;
	v *= 0x9e3779b97f4a7c15ull;
	return (unsigned int)(v >> 56) % MM_HASH_SIZE;
}

struct ksm_mm_slot *ksm_find_slot(struct ksm *ksm, void *mm)
{
	struct ksm_mm_slot *slot;

	for (slot = ksm->mm_hash[mm_hash(mm)]; slot; slot = slot->hash_next)
		if (slot->mm == mm)
			return slot;
	return NULL;
}

bool ksm_mm_registered(struct ksm *ksm, void *mm)
{
	struct ksm_mm_slot *slot = ksm_find_slot(ksm, mm);

	return slot && !slot->exiting;
}

static int alloc_slot_id(struct ksm *ksm, uint32_t *id)
{
	uint32_t i;

	for (i = ksm->free_slot_hint; i < ksm->nr_slots; i++) {
		if (!ksm->slots[i]) {
			*id = i;
			ksm->free_slot_hint = i + 1;
			return 0;
		}
	}
	if (ksm->nr_slots >= (1u << RMAP_SLOT_BITS))
		return -ENOSPC;
	{
		uint32_t n = ksm->nr_slots ? ksm->nr_slots * 2 : 16;
		struct ksm_mm_slot **s;

		if (n > (1u << RMAP_SLOT_BITS))
			n = 1u << RMAP_SLOT_BITS;
		s = ksm_zalloc(&ksm->be, n * sizeof(*s));
		if (!s)
			return -ENOMEM;
		if (ksm->nr_slots)
			memcpy(s, ksm->slots, ksm->nr_slots * sizeof(*s));
		ksm_free(&ksm->be, ksm->slots, ksm->nr_slots * sizeof(*s));
		*id = ksm->nr_slots;
		ksm->slots = s;
		ksm->nr_slots = n;
		ksm->free_slot_hint = *id + 1;
	}
	return 0;
}

/*
 * ksm_enter - register @mm.  It goes just behind the scan cursor, so that
 * it gets a whole pass to settle before the scanner reaches it; while
 * run=2 is unmerging it goes to the very end instead, where the unmerge
 * walk cannot miss it (seed 002).
 */
int ksm_enter(struct ksm *ksm, void *mm)
{
	struct ksm_mm_slot *slot = ksm_find_slot(ksm, mm);
	struct list_head *at;
	uint32_t id;
	int err;

	if (slot)
		return slot->exiting ? -EINVAL : 0;
	err = alloc_slot_id(ksm, &id);
	if (err)
		return err;
	slot = ksm_zalloc(&ksm->be, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	slot->mm = mm;
	slot->id = id;
	ksm->slots[id] = slot;
	slot->hash_next = ksm->mm_hash[mm_hash(mm)];
	ksm->mm_hash[mm_hash(mm)] = slot;

	if (ksm->unmerging || !ksm->scan.mm_slot)
		at = &ksm->mm_head;
	else
		at = &ksm->scan.mm_slot->mm_list;
	list_add_tail(&slot->mm_list, at);
	return 0;
}

/*
 * A zeroed rmap_item from the slabs, or NULL when out of memory.  Under
 * AddressSanitizer every item is its own allocation instead, so that a use
 * after free is caught rather than hidden by the free list.
 */
struct rmap_item *ksm_alloc_rmap_item(struct ksm *ksm)
{
	struct rmap_item *item = ksm->free_items;

	if (RMAP_SLABS_DISABLED)
		return ksm_zalloc(&ksm->be, sizeof(*item));

	if (!item) {
		struct rmap_slab *slab = ksm_zalloc(&ksm->be, sizeof(*slab));
		int i;

		if (!slab)
			return NULL;
		slab->next = ksm->slabs;
		ksm->slabs = slab;
		ksm->nr_slabs++;
		for (i = RMAP_SLAB_ITEMS - 1; i >= 0; i--) {
			slab->items[i].rmap_list = ksm->free_items;
			ksm->free_items = &slab->items[i];
		}
		item = ksm->free_items;
	}
	ksm->free_items = item->rmap_list;
	memset(item, 0, sizeof(*item));
	return item;
}

void ksm_free_rmap_item(struct ksm *ksm, struct rmap_item *item)
{
	struct ksm_mm_slot *slot = rmap_slot(ksm, item);

	slot->rmap_items--;
	ksm->c.rmap_items--;
	if (RMAP_SLABS_DISABLED) {
		ksm_free(&ksm->be, item, sizeof(*item));
		return;
	}
	item->flags = 0;
	item->rmap_list = ksm->free_items;
	ksm->free_items = item;
}

/* Free the rmap_items from *@link to the end of their list. */
void ksm_remove_trailing_rmap_items(struct ksm *ksm, struct rmap_item **link)
{
	while (*link) {
		struct rmap_item *item = *link;

		*link = item->rmap_list;
		remove_rmap_item_from_tree(ksm, item);
		ksm_free_rmap_item(ksm, item);
	}
}

/* Unlink @slot (its rmap_items must be gone) and free it. */
void ksm_free_slot(struct ksm *ksm, struct ksm_mm_slot *slot)
{
	struct ksm_mm_slot **pp = &ksm->mm_hash[mm_hash(slot->mm)];

	while (*pp != slot)
		pp = &(*pp)->hash_next;
	*pp = slot->hash_next;
	list_del(&slot->mm_list);
	ksm->c.ksm_zero_pages -= slot->zero_pages;
	ksm->slots[slot->id] = NULL;
	if (slot->id < ksm->free_slot_hint)
		ksm->free_slot_hint = slot->id;
	ksm_free(&ksm->be, slot, sizeof(*slot));
}

/*
 * ksm_exit - @mm is going away.  If the scanner is not in the middle of it
 * and it has no rmap_items, forget it now; otherwise mark it and move it
 * right after the cursor, so that the scanner frees its rmap_items (and the
 * counters drop) at its next step, as ksmd does.
 */
void ksm_exit(struct ksm *ksm, void *mm)
{
	struct ksm_mm_slot *slot = ksm_find_slot(ksm, mm);

	if (!slot || slot->exiting)
		return;
	slot->exiting = true;
	/* Its KSM zero pages go with it. */
	ksm->c.ksm_zero_pages -= slot->zero_pages;
	slot->zero_pages = 0;
	if (slot == ksm->scan.mm_slot)
		return;
	if (!slot->rmap_list) {
		ksm_free_slot(ksm, slot);
		return;
	}
	list_del(&slot->mm_list);
	list_add(&slot->mm_list, ksm->scan.mm_slot ? &ksm->scan.mm_slot->mm_list
						   : &ksm->mm_head);
}

void ksm_zero_page_unmapped(struct ksm *ksm, void *mm)
{
	struct ksm_mm_slot *slot = ksm_find_slot(ksm, mm);

	if (!slot || slot->exiting || slot->zero_pages <= 0)
		return;
	slot->zero_pages--;
	ksm->c.ksm_zero_pages--;
}

int ksm_unmerge_range(struct ksm *ksm, void *mm, uint64_t start, uint64_t end,
		      unsigned int flags)
{
	if (start >= end)
		return 0;
	return ksm->be.ops->unmerge(ksm->be.be, mm, start, end, flags);
}

/* SPDX-License-Identifier: MIT */
/*
 * unmerge.c - run=2: break every merge, free every rmap_item, remove every
 * stable node (seed 002: thoroughly, even with pages lingering in swap cache).
 */
#include "internal.h"

static int unmerge_mm(struct ksm *ksm, struct ksm_mm_slot *slot)
{
	const struct sp_backend_ops *ops = ksm->be.ops;
	uint64_t vpn = 0, start, end;

	while (ops->find_range(ksm->be.be, slot->mm, vpn, &start, &end) == 0) {
		int err = ops->unmerge(ksm->be.be, slot->mm, start, end, 0);

		if (err)
			return err;
		vpn = end;
	}
	return 0;
}

/*
 * unmerge_and_remove_all_rmap_items - walk every mm with the scan cursor,
 * unmerging each mergeable range.  Address spaces registered meanwhile
 * (forks) go to the end of the list (ksm_enter), so the walk reaches them.
 */
int unmerge_and_remove_all_rmap_items(struct ksm *ksm)
{
	int err = 0;

	ksm->scan.mm_slot = list_empty(&ksm->mm_head) ? NULL :
		list_entry(ksm->mm_head.next, struct ksm_mm_slot, mm_list);
	while (ksm->scan.mm_slot) {
		struct ksm_mm_slot *slot = ksm->scan.mm_slot;
		struct list_head *next;

		if (!slot->exiting) {
			err = unmerge_mm(ksm, slot);
			if (err)
				break;
		}
		ksm_remove_trailing_rmap_items(ksm, &slot->rmap_list);
		if (ksm->be.ops->cond_resched)
			ksm->be.ops->cond_resched(ksm->be.be);
		next = slot->mm_list.next;
		ksm->scan.mm_slot = next == &ksm->mm_head ? NULL :
			list_entry(next, struct ksm_mm_slot, mm_list);
		if (slot->exiting)
			ksm_free_slot(ksm, slot);
	}
	if (err) {
		ksm_abort_scan_pass(ksm);
		return err;
	}
	ksm->scan.mm_slot = NULL;
	/* Clean up stable nodes, but do not fail if some are still busy. */
	remove_all_stable_nodes(ksm);
	ksm->scan.seqnr = 0;
	ksm_reset_unstable_trees(ksm);
	return 0;
}

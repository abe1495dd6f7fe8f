/* SPDX-License-Identifier: MIT */
/*
 * ksm.h - the engine's interface to the code around it: the two backends
 * (src/sim, src/linux) and the front ends (public API, command line).
 *
 * The engine is not thread-safe by itself: callers serialise every call
 * (the Linux backend holds one mutex around the engine, the simulator is
 * single-threaded).  Every function returns 0 or a negative errno unless
 * said otherwise.
 */
#ifndef SAMEPAGE_CORE_KSM_H
#define SAMEPAGE_CORE_KSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct ksm;

/* The values of the run knob, as in the kernel. */
#define KSM_RUN_STOP	0
#define KSM_RUN_MERGE	1
#define KSM_RUN_UNMERGE	2

int ksm_create(struct ksm **ksmp, const struct sp_backend *backend);
/* Free all metadata.  Does not unmerge: set run=2 first if pages must be private. */
void ksm_destroy(struct ksm *ksm);

/*
 * Knobs and counters by their kernel sysfs names.  ksm_set() applies the
 * kernel's rules (-EINVAL out of range, -EBUSY for merge_across_nodes and
 * max_page_sharing while pages are shared, run=2 unmerges synchronously,
 * writing the current value does nothing).  ksm_get() answers knobs and
 * counters; -ENOENT for an unknown name.
 */
int ksm_set(struct ksm *ksm, const char *knob, unsigned long value);
int ksm_get(struct ksm *ksm, const char *name, long *value);
/* Per address space statistics (/proc/PID/ksm_stat): ksm_rmap_items,
 * ksm_merging_pages, ksm_zero_pages, ksm_process_profit. */
int ksm_mm_get(struct ksm *ksm, void *mm, const char *name, long *value);

/* Iterate names: index 0.. until NULL.  Knobs first, then counters. */
const char *ksm_knob_name(unsigned int i);
const char *ksm_counter_name(unsigned int i);
/* The names ksm_mm_get() answers, index 0.. until NULL. */
const char *ksm_mm_stat_name(unsigned int i);

/*
 * Address spaces.  ksm_enter(): @mm has its first mergeable range (madvise)
 * or was forked from an mm that has one; it is inserted just behind the
 * scan cursor (at the end of the list while run=2 is unmerging).  Entering
 * twice is harmless.  ksm_exit(): @mm is going away; after this call the
 * engine never passes @mm to the backend again.  Its rmap_items are freed
 * now or, if the scanner is in the middle of it, when the scanner moves on.
 */
int ksm_enter(struct ksm *ksm, void *mm);
void ksm_exit(struct ksm *ksm, void *mm);
bool ksm_mm_registered(struct ksm *ksm, void *mm);

/*
 * MADV_UNMERGEABLE on [start, end) of @mm: break sharing synchronously
 * through the backend's unmerge.  (Like the kernel, the rmap_items stay
 * until the scanner next passes; the caller then clears the range's
 * mergeable flag.)
 */
int ksm_unmerge_range(struct ksm *ksm, void *mm, uint64_t start, uint64_t end,
		      unsigned int flags);	/* SP_UNMERGE_* (backend.h) */

/*
 * Scanning.  ksm_do_scan() is one ksmd batch: up to @npages pages, ending
 * early at the end of a full scan.  It scans whatever the value of run (the
 * callers decide when to call it).  *@done (may be NULL) gets the number of
 * pages scanned (smart scan skips are not counted, as in pages_scanned).  Returns 0 or a negative errno.
 * ksm_scan_full() runs batches of pages_to_scan until @nscans more full
 * scans completed, or until a full scan finds no page at all.
 */
int ksm_do_scan(struct ksm *ksm, unsigned long npages, unsigned long *done);
int ksm_scan_full(struct ksm *ksm, unsigned int nscans);
/* The knobs the scanner thread needs, read cheaply. */
int ksm_run_state(const struct ksm *ksm);
unsigned long ksm_pages_to_scan(const struct ksm *ksm);
unsigned long ksm_sleep_millisecs(const struct ksm *ksm);
bool ksm_unmerging(const struct ksm *ksm);	/* run=2 in progress */

/*
 * Notifications from the backend.
 * ksm_migrate_page(): the KSM page whose back pointer is @node moved to
 *   frame @newpfn (all its mappers followed).  Only kpfn is updated; a node
 *   now on the wrong NUMA node is found and moved later (seed 001).
 * ksm_zero_page_unmapped(): a zero-page mapping that KSM placed in @mm went
 *   away (write, unmap, unmerge).
 * ksm_offline(): memory [start_pfn, end_pfn) was hot-removed: drop stable
 *   nodes whose page lies there, in the trees and on migrate_nodes.
 * ksm_page_gone(): a page with a back pointer to a stable node lost it
 *   (freed, reused, or moved without ksm_migrate_page), so some stable node
 *   may be stale now.  A backend must call it whenever that happens: the
 *   stable tree walk passes nodes it found valid since the last call
 *   without asking the backend again (backend.h).
 */
void ksm_page_gone(struct ksm *ksm);
void ksm_migrate_page(struct ksm *ksm, struct stable_node *node, uint64_t newpfn);
void ksm_zero_page_unmapped(struct ksm *ksm, void *mm);
void ksm_offline(struct ksm *ksm, uint64_t start_pfn, uint64_t end_pfn);

/*
 * The consistency checker (the seeds' ksm_check_stable_tree, extended):
 * tree shape and order, back pointers both ways, every stable node in the
 * tree of its nid or on migrate_nodes, counters equal to a recount.  Each
 * finding is passed to @report; returns the number of findings.
 */
typedef void (*ksm_report_fn)(void *arg, const char *finding);
int ksm_check(struct ksm *ksm, ksm_report_fn report, void *arg);

/*
 * Introspection for the demo and tests: walk the stable trees and
 * migrate_nodes.  @fn is called once per stable node (dups of a chain are
 * visited after their chain with is_dup set).
 */
struct ksm_node_info {
	const struct stable_node *node;
	uint64_t kpfn;
	int nid;		/* nid of the tree holding it */
	int page_nid;		/* node its page is on now, -1 if stale */
	int mappings;		/* rmap_items on it (dups for a chain) */
	bool on_migrate_list;
	bool is_chain;
	bool is_dup;
};
typedef void (*ksm_node_fn)(void *arg, const struct ksm_node_info *info);
void ksm_walk_stable(struct ksm *ksm, ksm_node_fn fn, void *arg);
/* Rmap items of an mm in the unstable tree / total, for the demo. */
size_t ksm_rmap_item_size(void);
/* Bytes of engine metadata now allocated (rmap items, stable nodes, slots). */
size_t ksm_metadata_bytes(const struct ksm *ksm);

#endif /* SAMEPAGE_CORE_KSM_H */

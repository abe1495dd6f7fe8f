/* SPDX-License-Identifier: MIT */
/*
 * knobs.c - the control surface: knobs with the kernel's write rules, and
 * the counters (/sys/kernel/mm/ksm/...) and per-mm statistics
 * (/proc/PID/ksm_stat), by their kernel names.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

static const char *const knob_names[] = {
#define KNOB_NAME(name, def) #name,
	KSM_KNOBS(KNOB_NAME)
#undef KNOB_NAME
};

/* Counters as the kernel lists them; some are computed in ksm_get(). */
static const char *const counter_names[] = {
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"pages_scanned", "pages_skipped", "full_scans", "stable_node_chains",
	"stable_node_dups", "ksm_zero_pages", "general_profit",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *ksm_knob_name(unsigned int i)
{
	return i < ARRAY_SIZE(knob_names) ? knob_names[i] : NULL;
}

const char *ksm_counter_name(unsigned int i)
{
	return i < ARRAY_SIZE(counter_names) ? counter_names[i] : NULL;
}

/* The per address space figures of ksm_mm_get(), as /proc/PID/ksm_stat. */
static const char *const mm_stat_names[] = {
	"ksm_rmap_items", "ksm_merging_pages", "ksm_zero_pages", "ksm_process_profit",
};

const char *ksm_mm_stat_name(unsigned int i)
{
	return i < ARRAY_SIZE(mm_stat_names) ? mm_stat_names[i] : NULL;
}

static int set_run(struct ksm *ksm, unsigned long value)
{
	int err;

	if (value > KSM_RUN_UNMERGE)
		return -EINVAL;
	if (value == ksm->knobs.run)
		return 0;
	ksm->knobs.run = value;
	if (value != KSM_RUN_UNMERGE)
		return 0;
	ksm->unmerging = true;
	err = unmerge_and_remove_all_rmap_items(ksm);
	ksm->unmerging = false;
	if (err)
		ksm->knobs.run = KSM_RUN_STOP;
	return err;
}

/*
 * merge_across_nodes and max_page_sharing reshape the stable tree, so they
 * change only when nothing is shared; leftover nodes (pages lingering
 * unmapped) are removed first, and if that fails too: -EBUSY.
 */
static int set_when_unshared(struct ksm *ksm, unsigned long *knob, unsigned long value)
{
	if (*knob == value)
		return 0;
	if (ksm->c.pages_shared || remove_all_stable_nodes(ksm))
		return -EBUSY;
	*knob = value;
	return 0;
}

int ksm_set(struct ksm *ksm, const char *knob, unsigned long value)
{
	int err;

	if (!knob)
		return -EINVAL;
	if (!strcmp(knob, "run"))
		return set_run(ksm, value);
	if (!strcmp(knob, "merge_across_nodes")) {
		if (value > 1)
			return -EINVAL;
		err = set_when_unshared(ksm, &ksm->knobs.merge_across_nodes, value);
		if (!err)
			ksm->nr_node_ids = value ? 1 : ksm->be.nr_node_ids;
		return err;
	}
	if (!strcmp(knob, "max_page_sharing")) {
		if (value < 2 || value > INT_MAX)
			return -EINVAL;
		return set_when_unshared(ksm, &ksm->knobs.max_page_sharing, value);
	}
	if (!strcmp(knob, "use_zero_pages") || !strcmp(knob, "smart_scan")) {
		if (value > 1)
			return -EINVAL;
		if (knob[0] == 'u')
			ksm->knobs.use_zero_pages = value;
		else
			ksm->knobs.smart_scan = value;
		return 0;
	}
	if (value > UINT_MAX)
		return -EINVAL;
	if (!strcmp(knob, "pages_to_scan"))
		ksm->knobs.pages_to_scan = value;
	else if (!strcmp(knob, "sleep_millisecs"))
		ksm->knobs.sleep_millisecs = value;
	else if (!strcmp(knob, "stable_node_chains_prune_millisecs"))
		ksm->knobs.stable_node_chains_prune_millisecs = value;
	else
		return -ENOENT;
	return 0;
}

static long pages_volatile(const struct ksm *ksm)
{
	long v = ksm->c.rmap_items - ksm->c.pages_shared - ksm->c.pages_sharing -
		 ksm->c.pages_unshared;

	/* Transiently negative while counters race in the kernel; never here, but clamp like it. */
	return v < 0 ? 0 : v;
}

int ksm_get(struct ksm *ksm, const char *name, long *value)
{
	long v;

	if (!name || !value)
		return -EINVAL;
#define KNOB_GET(kname, def) \
	if (!strcmp(name, #kname)) { *value = (long)ksm->knobs.kname; return 0; }
	KSM_KNOBS(KNOB_GET)
#undef KNOB_GET
	if (!strcmp(name, "pages_shared"))
		v = ksm->c.pages_shared;
	else if (!strcmp(name, "pages_sharing"))
		v = ksm->c.pages_sharing;
	else if (!strcmp(name, "pages_unshared"))
		v = ksm->c.pages_unshared;
	else if (!strcmp(name, "pages_volatile"))
		v = pages_volatile(ksm);
	else if (!strcmp(name, "pages_scanned"))
		v = ksm->c.pages_scanned;
	else if (!strcmp(name, "pages_skipped"))
		v = ksm->c.pages_skipped;
	else if (!strcmp(name, "full_scans"))
		v = (long)ksm->scan.seqnr;
	else if (!strcmp(name, "stable_node_chains"))
		v = ksm->c.stable_node_chains;
	else if (!strcmp(name, "stable_node_dups"))
		v = ksm->c.stable_node_dups;
	else if (!strcmp(name, "ksm_zero_pages"))
		v = ksm->c.ksm_zero_pages;
	else if (!strcmp(name, "general_profit"))
		v = (ksm->c.pages_sharing + ksm->c.ksm_zero_pages) * (long)ksm->be.page_size -
		    ksm->c.rmap_items * (long)sizeof(struct rmap_item);
	else if (!strcmp(name, "ksm_rmap_items"))
		v = ksm->c.rmap_items;
	else
		return -ENOENT;
	*value = v;
	return 0;
}

int ksm_mm_get(struct ksm *ksm, void *mm, const char *name, long *value)
{
	struct ksm_mm_slot *slot = ksm_find_slot(ksm, mm);
	long items = 0, merging = 0, zero = 0;

	if (!name || !value)
		return -EINVAL;
	if (slot) {
		items = slot->rmap_items;
		merging = slot->merging_pages;
		zero = slot->zero_pages;
	}
	if (!strcmp(name, "ksm_rmap_items"))
		*value = items;
	else if (!strcmp(name, "ksm_merging_pages"))
		*value = merging;
	else if (!strcmp(name, "ksm_zero_pages"))
		*value = zero;
	else if (!strcmp(name, "ksm_process_profit"))
		*value = (merging + zero) * (long)ksm->be.page_size -
			 items * (long)sizeof(struct rmap_item);
	else
		return -ENOENT;
	return 0;
}

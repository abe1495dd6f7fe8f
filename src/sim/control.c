/* SPDX-License-Identifier: MIT */
/*
 * control.c - driving the engine on the simulated machine: knobs and the
 * scanner, with the virtual clock.
 *
 * The simulator has no scanner thread.  `scan` does what ksmd would do
 * with run=1: batches of pages_to_scan pages (ksm_do_scan), the virtual
 * clock advancing sleep_millisecs after each batch, so that anything the
 * engine times (chain pruning, stable_node_chains_prune_millisecs) happens
 * at the same point of every run.  With run 0 or 2 it does nothing.
 */
#include <errno.h>

#include "sim_internal.h"

int sim_set(struct sim *s, const char *knob, unsigned long value)
{
	if (!s->have_machine)
		return -ENODEV;
	if (s->in_resched)
		return -EBUSY;
	return ksm_set(s->ksm, knob, value);
}

static long full_scans(struct sim *s)
{
	long v = 0;

	ksm_get(s->ksm, "full_scans", &v);
	return v;
}

/* One ksmd wake-up of at most @npages pages. */
static int batch(struct sim *s, unsigned long npages, unsigned long *done)
{
	int err;

	*done = 0;
	err = ksm_do_scan(s->ksm, npages, done);
	s->clock_ms += ksm_sleep_millisecs(s->ksm);
	return err;
}

int sim_scan(struct sim *s, unsigned long npages)
{
	unsigned int idle = 0;

	if (!s->have_machine)
		return -ENODEV;
	if (s->in_resched)
		return -EBUSY;
	if (ksm_run_state(s->ksm) != KSM_RUN_MERGE)
		return 0;
	while (npages) {
		unsigned long n = ksm_pages_to_scan(s->ksm), done;
		int err;

		if (n == 0)
			break;
		if (n > npages)
			n = npages;
		err = batch(s, n, &done);
		if (err)
			return err;
		/* a pass without pages ends a batch with none: nothing to scan */
		if (done == 0) {
			if (++idle >= 2)
				break;
			continue;
		}
		idle = 0;
		npages -= done < npages ? done : npages;
	}
	return 0;
}

int sim_scan_full(struct sim *s, unsigned int nscans)
{
	unsigned int idle = 0;
	long target;

	if (!s->have_machine)
		return -ENODEV;
	if (s->in_resched)
		return -EBUSY;
	if (ksm_run_state(s->ksm) != KSM_RUN_MERGE)
		return 0;
	target = full_scans(s) + (long)nscans;
	while (full_scans(s) < target) {
		unsigned long n = ksm_pages_to_scan(s->ksm), done;
		long before = full_scans(s);
		int err;

		if (n == 0)
			break;
		err = batch(s, n, &done);
		if (err)
			return err;
		/*
		 * A batch may compare nothing when it starts at the end of a
		 * pass, or when smart scan skips every page: a pass that only
		 * skipped pages still counts (as ksmd's does).  Two batches in
		 * a row that neither compared a page nor ended a pass mean
		 * there is nothing to scan at all.
		 */
		if (done == 0 && full_scans(s) == before) {
			if (++idle >= 2)
				break;
		} else {
			idle = 0;
		}
	}
	return 0;
}

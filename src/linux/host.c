/* SPDX-License-Identifier: MIT */
/*
 * host.c - the engine host: the lock, the published counter table, the
 * scanner thread.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

/* ------------------------------------------------------------------------
 * Locking.
 * --------------------------------------------------------------------- */
void sp_lock(struct samepage *sp)
{
	atomic_fetch_add(&sp->lock_waiters, 1);
	pthread_mutex_lock(&sp->lock);
	atomic_fetch_sub(&sp->lock_waiters, 1);
	/* the application may have written anything since we last looked */
	sp_cache_invalidate(sp);
	/* slots quarantined before are unmapped by us now (store.c) */
	sp_store_epoch(sp);
}

/* The value of @name, with the lock held: the engine's, then our own. */
static int get_locked(struct samepage *sp, const char *name, long *value)
{
#define SP_GET(n, expr)				\
	if (!strcmp(name, #n)) {		\
		*value = (expr);		\
		return 0;			\
	}
	SP_LINUX_COUNTERS(SP_GET)
#undef SP_GET
	int err = ksm_get(sp->ksm, name, value);

	if (err == -ENOENT)
		err = ksm_mm_get(sp->ksm, sp, name, value);
	return err;
}

/* The names samepage_get() answers: knobs, counters, per-process, ours. */
void sp_stat_init(struct samepage *sp)
{
	static const char *const extra[] = {
		"ksm_rmap_items", "ksm_merging_pages", "ksm_process_profit",
#define SP_NAME(n, expr) #n,
		SP_LINUX_COUNTERS(SP_NAME)
#undef SP_NAME
		NULL,
	};
	const char *name;
	unsigned int i;

	sp->nstat = 0;
	for (i = 0; (name = ksm_knob_name(i)) && sp->nstat < SP_NSTAT; i++)
		sp->stat[sp->nstat++].name = name;
	for (i = 0; (name = ksm_counter_name(i)) && sp->nstat < SP_NSTAT; i++)
		sp->stat[sp->nstat++].name = name;
	for (i = 0; extra[i] && sp->nstat < SP_NSTAT; i++)
		sp->stat[sp->nstat++].name = extra[i];
}

/* Publish every value for lock-free readers (lock held). */
void sp_publish(struct samepage *sp)
{
	for (int i = 0; i < sp->nstat; i++) {
		long v = 0;

		if (get_locked(sp, sp->stat[i].name, &v) == 0)
			atomic_store_explicit(&sp->stat[i].value, v, memory_order_relaxed);
	}
}

void sp_unlock(struct samepage *sp)
{
	/* never leave a page write-protected behind the lock */
	sp_flush_batch(sp);
	if (sp->ksm)
		sp_publish(sp);
	pthread_mutex_unlock(&sp->lock);
}

/* ------------------------------------------------------------------------
 * fork().  A child (however made: fork, _Fork, clone) cannot use the handle:
 * the threads do not exist there, and the engine's view of the store is not
 * even mapped (MADV_DONTFORK).  Every call from the child returns -ECHILD.
 * The store slots it may still map are kept by the quarantine (store.c).
 * --------------------------------------------------------------------- */
int sp_check_handle(struct samepage *sp)
{
	if (!sp) {
		sp_set_error("samepage: NULL handle");
		return -EINVAL;
	}
	if (sp->pid != getpid()) {
		sp_set_error("samepage: this handle belongs to the parent process "
			     "(a forked child cannot use it)");
		return -ECHILD;
	}
	return 0;
}


/* The scanner: idle while run != 1; else pages_to_scan pages every
 * sleep_millisecs.  A knob write or close wakes it. */
void *sp_scanner_main(void *arg)
{
	struct samepage *sp = arg;

	sp_lock(sp);
	while (!sp->stop) {
		if (ksm_run_state(sp->ksm) != KSM_RUN_MERGE) {
			sp_flush_batch(sp);
			sp_publish(sp);
			pthread_cond_wait(&sp->wake, &sp->lock);
			sp_cache_invalidate(sp);
			sp_store_epoch(sp);
			continue;
		}
		(void)ksm_do_scan(sp->ksm, ksm_pages_to_scan(sp->ksm), NULL);
		unsigned long ms = ksm_sleep_millisecs(sp->ksm);

		sp_flush_batch(sp);
		if (ms == 0) {
			sp_unlock(sp);
			sp_hand_over(&sp->lock_waiters);
			sp_lock(sp);
			continue;
		}
		struct timespec ts;

		/* the batch's results, before sleeping with the lock */
		sp_publish(sp);
		sp_deadline_in(&ts, ms);
		pthread_cond_timedwait(&sp->wake, &sp->lock, &ts);
		sp_cache_invalidate(sp);
		sp_store_epoch(sp);
	}
	sp_unlock(sp);
	return NULL;
}


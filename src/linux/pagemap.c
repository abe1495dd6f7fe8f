/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - the pagemap cache: windows of /proc/self/pagemap entries
 * and the nodes of their pages, valid for one hold of the engine lock.
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
 * pagemap
 * --------------------------------------------------------------------- */

/*
 * The pagemap cache: windows of SP_PM_WIN entries read in one pread (about
 * 0.03 us per page instead of 1.3 us for a single entry), kept while the
 * engine lock is held (one scan batch); the unstable tree's lookups jump
 * around the address space, so many windows are kept.  An entry may go
 * stale while we hold it (the application writes meanwhile): that is
 * harmless, merge checks the content again under write protection, and a
 * copy-on-write is seen on the next visit.  Our own changes are applied to
 * the cache (cache_forget).
 */
void sp_cache_invalidate(struct samepage *sp)
{
	sp->pm_gen++;
	sp_os_invalidate(&sp->os);
}

static struct sp_pmwin *cache_win(struct samepage *sp, uint64_t vpn)
{
	struct sp_pmwin *w = sp->win[(vpn / SP_PM_WIN) % SP_PM_CACHE];

	if (w && w->gen == sp->pm_gen && vpn >= w->start && vpn < w->start + w->n)
		return w;
	return NULL;
}

/* Our own change: pages [vpn, vpn+n) are now not present. */
void sp_cache_forget(struct samepage *sp, uint64_t vpn, uint64_t n)
{
	for (uint64_t v = vpn; v < vpn + n; v++) {
		struct sp_pmwin *w = cache_win(sp, v);

		if (w)
			w->e[v - w->start] = 0;
	}
}

static int fill_win(struct samepage *sp, struct sp_pmwin *win, uint64_t vpn)
{
	int got = sp_os_pagemap(&sp->os, vpn, win->e, SP_PM_WIN);

	if (got < 1) {
		win->n = 0;
		return got < 0 ? got : -EIO;
	}
	win->start = vpn;
	win->gen = sp->pm_gen;
	win->n = (uint32_t)got;
	sp_os_nodes(&sp->os, vpn, win->n, win->e, win->nid);
	return 0;
}

/* The pagemap entry of @vpn, and the page's node. */
int sp_pagemap_entry(struct samepage *sp, uint64_t vpn, uint64_t *e, int *nid)
{
	struct sp_pmwin *w = cache_win(sp, vpn);

	if (!w) {
		struct sp_pmwin **slot = &sp->win[(vpn / SP_PM_WIN) % SP_PM_CACHE];

		if (!*slot) {
			*slot = sp_arena_alloc(&sp->arena, sizeof(**slot));
			if (!*slot)
				return -ENOMEM;
		}
		w = *slot;
		int err = fill_win(sp, w, vpn & ~(uint64_t)(SP_PM_WIN - 1));

		if (err)
			return err;
		if (vpn >= w->start + w->n)
			return -EIO;
	}
	*e = w->e[vpn - w->start];
	*nid = w->nid[vpn - w->start];
	return 0;
}

bool sp_entry_is_zero_page(struct samepage *sp, uint64_t e, uint64_t vpn)
{
	if (!(e & PM_PRESENT) || (e & PM_FILE))
		return false;
	if (sp->os.zero_pfn)
		return (e & PM_PFN) == sp->os.zero_pfn;
	/* PFNs hidden: the zero page is never "exclusively mapped" */
	return !(e & PM_EXCL) && sp_os_is_zero(&sp->os, vpn);
}


/*
 * How many pages from @vpn (at most SP_OS_AHEAD, below @end) are present
 * in memory (not swapped out): worth reading along in one call, and safe
 * to read without faulting anything in.
 */
uint32_t sp_pagemap_present_run(struct samepage *sp, uint64_t vpn, uint64_t end)
{
	struct sp_pmwin *w = cache_win(sp, vpn);
	uint32_t n = 0;

	if (!w)
		return 0;
	for (uint64_t v = vpn; v < w->start + w->n && v < end && n < SP_OS_AHEAD; v++, n++) {
		uint64_t e = w->e[v - w->start];

		if ((e & (PM_PRESENT | PM_SWAP)) != PM_PRESENT)
			break;
	}
	return n;
}

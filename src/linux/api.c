/* SPDX-License-Identifier: MIT */
/*
 * api.c - the public API (include/samepage.h) on real memory: opening the
 * engine, its threads, madvise, alloc/free, knobs, close.
 *
 * One mutex (sp->lock) serialises the engine and the backend; every public
 * call takes it, so calls are safe from any thread while the scanner runs
 * and the application writes its memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <numa.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* ------------------------------------------------------------------------
 * Errors in words, per thread.
 * --------------------------------------------------------------------- */
static __thread char last_error[512];

void sp_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *samepage_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}

/* (read without stdio: nothing of ours in the malloc heap) */
static long read_max_map_count(void)
{
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	char buf[32];
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	long v = 0;

	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = '\0';
		v = strtol(buf, NULL, 10);
	}
	return v > 0 ? v : 65530;
}

static void destroy(struct samepage *sp)
{
	sp_agent_free(sp);
	if (sp->ksm)
		ksm_destroy(sp->ksm);
	for (size_t i = 0; i < sp->nranges; i++)
		sp_arena_free(&sp->arena, sp->ranges[i].rec);
	sp_arena_free(&sp->arena, sp->ranges);
	for (int i = 0; i < SP_PM_CACHE; i++)
		sp_arena_free(&sp->arena, sp->win[i]);
	sp_store_fini(sp);
	sp_vma_cache_free(sp);
	/* (the threads were joined) */
	sp_arena_free(&sp->arena, sp->scanner_stack);
	sp_arena_free(&sp->arena, sp->reader_stack);
	sp_arena_release(&sp->arena);
	sp_os_close(&sp->os);
	if (sp->stop_pipe[0] >= 0)
		close(sp->stop_pipe[0]);
	if (sp->stop_pipe[1] >= 0)
		close(sp->stop_pipe[1]);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->lock);
	munmap(sp, sizeof(*sp));
}

/* The arena's question (arena.c): does [lo, hi) (bytes, page aligned)
 * overlap a registered range? */
static bool registered_in(void *arg, uintptr_t lo, uintptr_t hi)
{
	struct samepage *sp = arg;
	unsigned int sh = sp->os.page_shift;
	size_t i = sp_range_index(sp, lo >> sh);

	return i < sp->nranges && sp->ranges[i].start < (hi >> sh);
}

/*
 * Our threads run on stacks from the arena, so that they too are never
 * registered: an application that registers every anonymous mapping it
 * has would otherwise register them, and the fault reader could then park
 * on a write to its own stack.
 */
#define SP_THREAD_STACK (1u << 20)

int sp_start_thread(struct samepage *sp, pthread_t *t, void **stack, void *(*fn)(void *),
		    const char *name)
{
	pthread_attr_t attr;
	int err;

	*stack = sp_arena_alloc(&sp->arena, SP_THREAD_STACK);
	if (!*stack)
		return -ENOMEM;
	err = -pthread_attr_init(&attr);
	if (!err)
		err = -pthread_attr_setstack(&attr, *stack, SP_THREAD_STACK);
	/*
	 * Every signal blocked in our threads (they inherit the mask): a
	 * signal sent to the process goes to a thread of the application's,
	 * whose handler may write registered memory; run on the scanner, it
	 * would write a page the scanner itself protected and wait for it.
	 */
	sigset_t all, old;

	sigfillset(&all);
	if (!err)
		err = -pthread_sigmask(SIG_SETMASK, &all, &old);
	if (!err) {
		err = -pthread_create(t, &attr, fn, sp);
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!err)
		(void)pthread_setname_np(*t, name);	/* (top -H, ps -L) */
	pthread_attr_destroy(&attr);
	if (err) {
		sp_arena_free(&sp->arena, *stack);
		*stack = NULL;
	}
	return err;
}

int sp_linux_open_opts(struct samepage **spp, const struct sp_linux_opts *opts)
{
	if (!spp) {
		sp_set_error("samepage_open: NULL result pointer");
		return -EINVAL;
	}
	*spp = NULL;
	/* our own state in a mapping of its own, never in the heap: the
	 * application may register its heap, and these pages are excluded
	 * from registration (own_interval()); all it points to is in the arena
	 * (nothing there for LeakSanitizer to look into: no malloc'd block) */
	struct samepage *sp = mmap(NULL, sizeof(*sp), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (sp == MAP_FAILED) {
		sp_set_error("samepage_open: out of memory");
		return -ENOMEM;
	}
	sp_arena_init(&sp->arena, (size_t)sysconf(_SC_PAGESIZE), registered_in, sp);
	sp->os.arena = &sp->arena;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->wake, &ca);
	pthread_condattr_destroy(&ca);
	sp->os.uffd = sp->os.pagemap_fd = -1;
	sp->stop_pipe[0] = sp->stop_pipe[1] = -1;
	sp->pid = getpid();
	if (opts)
		sp->opts = *opts;

	int err = sp_os_open(&sp->os);

	if (err)
		goto fail;

	if (sp->opts.nr_node_ids > 0)
		sp->nr_nodes = sp->opts.nr_node_ids;
	else if (numa_available() >= 0)
		sp->nr_nodes = numa_max_node() + 1;
	else
		sp->nr_nodes = 1;
	if (sp->nr_nodes < 1)
		sp->nr_nodes = 1;
	sp->os.nr_nodes = sp->nr_nodes;
	sp->os.node_of = sp->opts.node_of;
	sp->os.node_arg = sp->opts.arg;
	if (!sp->opts.agent)
		err = sp_store_init(sp);	/* (an agent's is the daemon's) */
	if (err)
		goto fail;

	sp->max_map_count = read_max_map_count();
	long phys = sysconf(_SC_PHYS_PAGES);

	sp->max_range_pages = phys > 0 ? (uint64_t)phys : UINT64_MAX;
	sp->vma_limit = sp->max_map_count / 2;
	sp_recount_vmas(sp);

	sp->backend = (struct sp_backend){
		.ops = &sp_linux_ops, .be = sp, .page_size = sp->os.page,
		.nr_node_ids = sp->nr_nodes,
	};
	err = ksm_create(&sp->ksm, &sp->backend);
	if (err) {
		sp_set_error("samepage: the engine could not be created: %s", strerror(-err));
		goto fail;
	}
	sp_stat_init(sp);
	pthread_mutex_lock(&sp->lock);
	sp_publish(sp);
	pthread_mutex_unlock(&sp->lock);
	if (pipe2(sp->stop_pipe, O_CLOEXEC)) {
		err = -errno;
		sp_set_error("samepage: pipe: %s", strerror(errno));
		goto fail;
	}
	err = sp_start_thread(sp, &sp->reader, &sp->reader_stack, sp_reader_main,
			      "samepage-fault");
	if (err) {
		sp_set_error("samepage: cannot start the fault reader thread: %s",
			     strerror(-err));
		goto fail;
	}
	sp->reader_started = true;
	if (sp->opts.agent)
		goto done;	/* the daemon scans */
	err = sp_start_thread(sp, &sp->scanner, &sp->scanner_stack, sp_scanner_main,
			      "samepage-scan");
	if (err) {
		sp_set_error("samepage: cannot start the scanner thread: %s", strerror(-err));
		goto fail;
	}
	sp->scanner_started = true;
done:
	*spp = sp;
	return 0;
fail:
	if (sp->scanner_started || sp->reader_started) {
		pthread_mutex_lock(&sp->lock);
		sp->stop = true;
		pthread_cond_broadcast(&sp->wake);
		pthread_mutex_unlock(&sp->lock);
		if (write(sp->stop_pipe[1], "x", 1) < 0) {
			/* nothing */
		}
		if (sp->scanner_started)
			pthread_join(sp->scanner, NULL);
		if (sp->reader_started)
			pthread_join(sp->reader, NULL);
	}
	destroy(sp);
	return err;
}

int samepage_open(struct samepage **spp, unsigned int flags)
{
	if (flags) {
		sp_set_error("samepage_open: flags must be 0");
		return -EINVAL;
	}
	return sp_linux_open_opts(spp, NULL);
}

struct ksm *sp_linux_ksm(struct samepage *sp)
{
	return sp->ksm;
}

void *sp_linux_mm(struct samepage *sp)
{
	return sp;
}

/*
 * The library's own pages (its state, its page buffers, its arena) are
 * never registered.  own_interval: if @vpn is one of them, sets *@hi to
 * the end of the stretch of them holding it and returns true; otherwise
 * sets *@hi to the first of them above @vpn (or UINT64_MAX).
 */
static bool own_interval(struct samepage *sp, uint64_t vpn, uint64_t *hi)
{
	uint64_t sh = sp->os.page_shift;
	uint64_t iv[3 + SP_ARENA_REGIONS][2];
	int n = 0;

	if (sp->agent) {	/* (the agent's state: its own mapping) */
		iv[n][0] = (uintptr_t)sp->agent >> sh;
		iv[n][1] = (((uintptr_t)sp->agent + sp_agent_state_size() - 1) >> sh) + 1;
		n++;
	}

	iv[n][0] = (uintptr_t)sp >> sh;
	iv[n][1] = (((uintptr_t)sp + sizeof(*sp) - 1) >> sh) + 1;
	n++;
	iv[n][0] = (uintptr_t)sp->os.tmp >> sh;
	iv[n][1] = iv[n][0] + (sp->os.bufs_len >> sh);
	n++;
	for (int k = 0; k < sp->arena.nregion; k++, n++) {
		iv[n][0] = (uintptr_t)sp->arena.region[k].base >> sh;
		iv[n][1] = iv[n][0] + sp->arena.region[k].pages;
	}
	uint64_t next = UINT64_MAX;

	for (int k = 0; k < n; k++) {
		if (vpn >= iv[k][0] && vpn < iv[k][1]) {
			*hi = iv[k][1];
			return true;
		}
		if (iv[k][0] > vpn && iv[k][0] < next)
			next = iv[k][0];
	}
	*hi = next;
	return false;
}

/* The first registered range starting above @vpn, or UINT64_MAX. */
static uint64_t next_range_start(struct samepage *sp, uint64_t vpn)
{
	size_t i = sp_range_index(sp, vpn);

	while (i < sp->nranges && sp->ranges[i].start <= vpn)
		i++;
	return i < sp->nranges ? sp->ranges[i].start : UINT64_MAX;
}

static int madvise_mergeable(struct samepage *sp, uint64_t a, uint64_t b, bool *gap)
{
	struct sp_vma *v = NULL;
	int n = sp_os_vmas(&sp->os, a, b, &v, gap);

	if (n < 0)
		return n;
	int err = 0;
	uint64_t sh = sp->os.page_shift;

	for (int k = 0; k < n && !err; k++) {
		uint64_t x = v[k].start > a ? v[k].start : a;
		uint64_t y = v[k].end < b ? v[k].end : b;
		/*
		 * private anonymous, readable, no flag the replacement mapping
		 * would drop or corrupt (dont-fork, dont-dump and mlock it
		 * carries: merge.c); and not larger than the machine's
		 * memory (a sparse reservation, such as a sanitizer's shadow:
		 * every page of a range costs a record and a visit per scan)
		 */
		bool ok = v[k].heap && !v[k].exec && (v[k].prot & PROT_READ) &&
			  !(v[k].flags & ~SP_VMA_KEEP) &&
			  ((v[k].end - v[k].start) >> sh) <= sp->max_range_pages;

		if (!ok) {
			sp->ranges_skipped++;
			continue;
		}
		/* the parts not registered yet (ours were checked then), a
		 * stretch at a time */
		for (uint64_t p = x >> sh; p < (y >> sh);) {
			struct sp_range *r = sp_range_find(sp, p);
			uint64_t q;

			if (r) {
				p = r->end;
				continue;
			}
			if (own_interval(sp, p, &q)) {
				p = q;	/* never registered: see own_interval() */
				continue;
			}
			uint64_t nr = next_range_start(sp, p);

			if (nr < q)
				q = nr;
			if (q > (y >> sh))
				q = y >> sh;
			if (sp_os_register(&sp->os, p, q - p) == 0) {
				err = sp_range_insert(sp, p, q, v[k].prot);
				if (err)
					sp_os_unregister(&sp->os, p, q - p);
			}
			p = q;
		}
	}
	sp_arena_free(&sp->arena, v);
	/* (the engine forgets an mm whose ranges all went away) */
	if (!err && sp->nranges && !ksm_mm_registered(sp->ksm, sp))
		err = ksm_enter(sp->ksm, sp);
	if (!err)
		sp_recount_vmas(sp);
	return err;
}

static int madvise_unmergeable(struct samepage *sp, uint64_t a, uint64_t b, bool *gap)
{
	struct sp_vma *v = NULL;
	int n = sp_os_vmas(&sp->os, a, b, &v, gap);

	if (n < 0)
		return n;
	sp_arena_free(&sp->arena, v);
	uint64_t sh = sp->os.page_shift;
	int err = 0;

	if (ksm_mm_registered(sp->ksm, sp))
		err = ksm_unmerge_range(sp->ksm, sp, a >> sh, b >> sh, 0);
	if (!err)
		err = sp_range_remove(sp, a >> sh, b >> sh);
	sp_recount_vmas(sp);
	return err;
}

static int check_area(struct samepage *sp, const void *addr, size_t len,
		      uint64_t *a, uint64_t *b)
{
	uintptr_t start = (uintptr_t)addr;

	if (start & (sp->os.page - 1)) {
		sp_set_error("samepage: address %p is not page aligned", addr);
		return -EINVAL;
	}
	size_t rlen = (len + sp->os.page - 1) & ~(sp->os.page - 1);

	if (rlen < len || start + rlen < start) {
		sp_set_error("samepage: range wraps around the address space");
		return -EINVAL;
	}
	*a = start;
	*b = start + rlen;
	return 0;
}

int samepage_madvise(struct samepage *sp, void *addr, size_t len, int advice)
{
	int err = sp_check_handle(sp);
	uint64_t a, b;

	if (err)
		return err;
	if (advice != SAMEPAGE_MERGEABLE && advice != SAMEPAGE_UNMERGEABLE) {
		sp_set_error("samepage_madvise: unknown advice %d", advice);
		return -EINVAL;
	}
	err = check_area(sp, addr, len, &a, &b);
	if (err)
		return err;
	if (a == b)
		return 0;
	bool gap = false;

	sp_lock(sp);
	if (advice == SAMEPAGE_MERGEABLE)
		err = madvise_mergeable(sp, a, b, &gap);
	else
		err = madvise_unmergeable(sp, a, b, &gap);
	sp_unlock(sp);
	if (err) {
		sp_set_error("samepage_madvise: %s", strerror(-err));
		return err;
	}
	if (sp->agent) {
		bool un = advice == SAMEPAGE_UNMERGEABLE;

		err = sp_agent_ranges(sp, un ? a >> sp->os.page_shift : 0,
				      un ? b >> sp->os.page_shift : 0);
		if (err)
			return err;
	}
	if (gap) {
		sp_set_error("samepage_madvise: part of [%p, +%zu) is not mapped", addr, len);
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * alloc / free
 * --------------------------------------------------------------------- */
void *samepage_alloc(struct samepage *sp, size_t len)
{
	int err = sp_check_handle(sp);

	if (err) {
		errno = -err;
		return NULL;
	}
	if (len == 0 || len > SIZE_MAX - sp->os.page) {
		sp_set_error("samepage_alloc: bad length %zu", len);
		errno = EINVAL;
		return NULL;
	}
	len = (len + sp->os.page - 1) & ~(sp->os.page - 1);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		err = errno;
		sp_set_error("samepage_alloc: mmap of %zu bytes failed: %s", len, strerror(err));
		errno = err;
		return NULL;
	}
	err = samepage_madvise(sp, p, len, SAMEPAGE_MERGEABLE);
	if (err) {
		munmap(p, len);
		errno = -err;
		return NULL;
	}
	return p;
}

/* Only memory registered with this handle, all of it: else touch nothing
 * (lock held). */
static int all_registered(struct samepage *sp, const char *who, void *addr, size_t len,
			  uint64_t a, uint64_t b)
{
	uint64_t sh = sp->os.page_shift;

	for (uint64_t v = a >> sh; v < (b >> sh);) {
		struct sp_range *r = sp_range_find(sp, v);

		if (!r) {
			sp_set_error("%s: [%p, +%zu) is not memory registered with this "
				     "handle (page %p is not; never registered, or freed "
				     "already); nothing was done", who, addr, len,
				     (void *)(uintptr_t)(v << sh));
			return -EINVAL;
		}
		v = r->end;
	}
	return 0;
}

/*
 * The arguments of samepage_free/discard: a valid handle, a non-empty area,
 * every page of it registered.  On success the lock is held.
 */
static int lock_registered(struct samepage *sp, const char *who, void *addr, size_t len,
			   uint64_t *a, uint64_t *b)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (len == 0) {
		sp_set_error("%s: zero length", who);
		return -EINVAL;
	}
	err = check_area(sp, addr, len, a, b);
	if (err)
		return err;
	sp_lock(sp);
	err = all_registered(sp, who, addr, len, *a, *b);
	if (err)
		sp_unlock(sp);
	return err;
}

int samepage_free(struct samepage *sp, void *addr, size_t len)
{
	uint64_t a, b, sh;
	int err = lock_registered(sp, "samepage_free", addr, len, &a, &b);

	if (err)
		return err;
	sh = sp->os.page_shift;
	/* the content goes away: no copies */
	if (ksm_mm_registered(sp->ksm, sp))
		err = ksm_unmerge_range(sp->ksm, sp, a >> sh, b >> sh, SP_UNMERGE_DISCARD);
	if (!err)
		err = sp_range_remove(sp, a >> sh, b >> sh);
	if (!err && munmap(addr, b - a))
		err = -errno;
	sp_recount_vmas(sp);
	sp_unlock(sp);
	if (!err && sp->agent)
		err = sp_agent_ranges(sp, a >> sh, b >> sh);
	if (err)
		sp_set_error("samepage_free: %s", strerror(-err));
	return err;
}

int samepage_discard(struct samepage *sp, void *addr, size_t len)
{
	uint64_t a, b;
	int err = lock_registered(sp, "samepage_discard", addr, len, &a, &b);

	if (err)
		return err;
	err = sp_discard_range(sp, a >> sp->os.page_shift, b >> sp->os.page_shift);
	sp_unlock(sp);
	if (!err && sp->agent)
		err = sp_agent_ranges(sp, a >> sp->os.page_shift, b >> sp->os.page_shift);
	if (err)
		sp_set_error("samepage_discard: %s", strerror(-err));
	return err;
}

/* ------------------------------------------------------------------------
 * Knobs, counters, scanning.
 * --------------------------------------------------------------------- */
int samepage_set(struct samepage *sp, const char *knob, unsigned long value)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (!knob) {
		sp_set_error("samepage_set: NULL knob name");
		return -EINVAL;
	}
	if (sp->agent)
		return sp_agent_set(sp, knob, value);
	sp_lock(sp);
	err = ksm_set(sp->ksm, knob, value);
	pthread_cond_broadcast(&sp->wake);
	sp_unlock(sp);
	if (err)
		sp_set_error("samepage_set %s=%lu: %s", knob, value, strerror(-err));
	return err;
}

/*
 * Counters of our own, beyond the kernel's (documented in samepage(3)):
 *   vma_budget_refusals  merges refused because they would have taken the
 *                        process's mappings above half of vm.max_map_count
 *   vmas                 estimated mappings (VMAs) of the process now
 *   store_pages          pages of the store in use (KSM pages and
 *                        quarantined slots)
 *   store_quarantined    store pages unused by us that a forked child may
 *                        still map: released once no child shares our pages
 *   merges               pages mapped to a KSM page or the zero page, ever
 *   merge_runs           batched mappings made (one mmap each)
 *   runs_aborted         batches given up because a writer touched one of
 *                        their pages before they were mapped
 *   writers_parked       application writes that waited on a page being
 *                        merged (userfaultfd messages read)
 */
int samepage_get(struct samepage *sp, const char *name, long *value)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (!name || !value) {
		sp_set_error("samepage_get: NULL argument");
		return -EINVAL;
	}
	if (sp->agent)
		return sp_agent_get(sp, name, value);
	/*
	 * Answered from the values published when the engine lock was last
	 * released: never waits behind a scanner batch.  Every call that
	 * changes the engine publishes before it returns, so a caller sees
	 * its own samepage_scan() or samepage_set() at once.
	 */
	err = -ENOENT;
	for (int i = 0; i < sp->nstat; i++) {
		if (!strcmp(name, sp->stat[i].name)) {
			*value = atomic_load_explicit(&sp->stat[i].value, memory_order_relaxed);
			err = 0;
			break;
		}
	}
	if (err)
		sp_set_error("samepage_get %s: %s", name, strerror(-err));
	return err;
}

int samepage_scan(struct samepage *sp, unsigned long npages)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (sp->agent)
		return sp_agent_scan(sp, false, npages);
	sp_lock(sp);
	err = ksm_do_scan(sp->ksm, npages, NULL);
	sp_unlock(sp);
	if (err)
		sp_set_error("samepage_scan: %s", strerror(-err));
	return err;
}

int samepage_scan_full(struct samepage *sp, unsigned int nscans)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (sp->agent)
		return sp_agent_scan(sp, true, nscans);
	sp_lock(sp);
	err = ksm_scan_full(sp->ksm, nscans);
	sp_unlock(sp);
	if (err)
		sp_set_error("samepage_scan_full: %s", strerror(-err));
	return err;
}

/* ------------------------------------------------------------------------
 * close
 * --------------------------------------------------------------------- */
int samepage_close(struct samepage *sp)
{
	int err = sp_check_handle(sp);

	if (err)
		return err;
	if (sp->agent)
		sp_agent_stop(sp);	/* no more merges: the daemon is not asked now */
	sp_lock(sp);
	/* run=2 unmerges everything (run 0 first: 2 -> 2 would do nothing) */
	(void)ksm_set(sp->ksm, "run", KSM_RUN_STOP);
	err = ksm_set(sp->ksm, "run", KSM_RUN_UNMERGE);
	sp->stop = true;
	pthread_cond_broadcast(&sp->wake);
	sp_unlock(sp);
	if (write(sp->stop_pipe[1], "x", 1) < 0) {
		/* the reader also stops when the uffd closes */
	}
	if (sp->scanner_started)
		pthread_join(sp->scanner, NULL);
	pthread_join(sp->reader, NULL);

	/*
	 * If the unmerge failed, pages may still map the store: that is safe,
	 * the mappings keep the memfd alive and we never punch it again.
	 */
	for (size_t i = 0; i < sp->nranges; i++)
		(void)sp_os_unregister(&sp->os, sp->ranges[i].start,
					 sp->ranges[i].end - sp->ranges[i].start);
	if (ksm_mm_registered(sp->ksm, sp))
		ksm_exit(sp->ksm, sp);
	destroy(sp);
	if (err)
		sp_set_error("samepage_close: unmerging failed: %s", strerror(-err));
	return err;
}


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
}

/* The value of @name, with the lock held: the engine's, then our own. */
static int get_locked(struct samepage *sp, const char *name, long *value)
{
	int err = 0;

	if (!strcmp(name, "vma_budget_refusals"))
		*value = sp->vma_budget_refusals;
	else if (!strcmp(name, "vmas"))
		*value = sp->vma_est;
	else if (!strcmp(name, "store_pages"))
		*value = sp->store_pages;
	else if (!strcmp(name, "merges"))
		*value = sp->merges;
	else if (!strcmp(name, "runs_aborted"))
		*value = sp->runs_aborted;
	else if (!strcmp(name, "merge_runs"))
		*value = sp->merges_flushed_runs;
	else if (!strcmp(name, "writers_parked"))
		*value = atomic_load(&sp->writers_parked);
	else {
		err = ksm_get(sp->ksm, name, value);
		if (err == -ENOENT)
			err = ksm_mm_get(sp->ksm, sp, name, value);
	}
	return err;
}

/* The names samepage_get() answers: knobs, counters, per-process, ours. */
static void stat_init(struct samepage *sp)
{
	static const char *const extra[] = {
		"ksm_rmap_items", "ksm_merging_pages", "ksm_process_profit",
		"vma_budget_refusals", "vmas", "store_pages", "merges",
		"runs_aborted", "merge_runs", "writers_parked", NULL,
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
static void sp_publish(struct samepage *sp)
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
	sp_flush(sp);
	if (sp->ksm)
		sp_publish(sp);
	pthread_mutex_unlock(&sp->lock);
}

/* ------------------------------------------------------------------------
 * fork(): instances of this process, and their store slots.
 *
 * A forked child inherits our MAP_PRIVATE mappings of the store: it may map
 * any slot that is in use at the moment of fork(), and we cannot see its page
 * tables.  So every slot in use at fork time is pinned: when its count drops
 * to zero in the parent it is not hole-punched or reused, but leaked on
 * purpose (SLOT_DEAD).  The prepare handler takes every instance's lock, so
 * no merge is half done while the kernel copies the address space.  The
 * child cannot use the handle (its threads do not exist there): every call
 * from the child returns -ECHILD.
 * --------------------------------------------------------------------- */
static pthread_mutex_t instances_lock = PTHREAD_MUTEX_INITIALIZER;
static struct samepage *instances;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&instances_lock);
	for (struct samepage *sp = instances; sp; sp = sp->next_instance)
		pthread_mutex_lock(&sp->lock);
}

static void atfork_parent(void)
{
	for (struct samepage *sp = instances; sp; sp = sp->next_instance) {
		sp_pin_all_slots(sp);
		pthread_mutex_unlock(&sp->lock);
	}
	pthread_mutex_unlock(&instances_lock);
}

static void atfork_child(void)
{
	for (struct samepage *sp = instances; sp; sp = sp->next_instance)
		pthread_mutex_unlock(&sp->lock);
	pthread_mutex_unlock(&instances_lock);
}

static void atfork_register(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int check_handle(struct samepage *sp)
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

/* ------------------------------------------------------------------------
 * Threads.
 * --------------------------------------------------------------------- */
/*
 * The fault reader: the messages of writers parked on a protected page.
 * A writer parked on a page of a pending run (see backend.c) gets the run
 * aborted and goes on at once; other protections (one page being merged
 * right now) end in a moment by themselves.  A fault that arrives before
 * its page's run is visible is checked again for a while.
 */
#define UNRESOLVED 64

static void *reader_main(void *arg)
{
	struct samepage *sp = arg;
	struct uffd_msg msg[32];
	uint64_t pend[UNRESOLVED], since[UNRESOLVED];
	int npend = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sp->uffd, .events = POLLIN },
			{ .fd = sp->stop_pipe[0], .events = POLLIN },
		};

		if (poll(pfd, 2, npend ? 1 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		uint64_t now = sp_now_ms();

		for (int i = 0; i < npend;) {
			if (sp_abort_at(sp, pend[i]) || now - since[i] > 100) {
				pend[i] = pend[--npend];
				since[i] = since[npend];
			} else {
				i++;
			}
		}
		if (pfd[0].revents & POLLIN) {
			ssize_t got = read(sp->uffd, msg, sizeof(msg));

			for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof(msg[0]); i++) {
				if (msg[i].event != UFFD_EVENT_PAGEFAULT)
					continue;
				atomic_fetch_add(&sp->writers_parked, 1);
				uint64_t addr = msg[i].arg.pagefault.address;

				if (!sp_abort_at(sp, addr) && npend < UNRESOLVED) {
					pend[npend] = addr;
					since[npend++] = now;
				}
			}
		} else if (pfd[0].revents & (POLLERR | POLLHUP)) {
			break;
		}
	}
	return NULL;
}

static void deadline_in(struct timespec *ts, unsigned long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* The scanner: idle while run != 1; else pages_to_scan pages every
 * sleep_millisecs.  A knob write or close wakes it. */
static void *scanner_main(void *arg)
{
	struct samepage *sp = arg;

	sp_lock(sp);
	while (!sp->stop) {
		if (ksm_run_state(sp->ksm) != KSM_RUN_MERGE) {
			sp_flush(sp);
			pthread_cond_wait(&sp->wake, &sp->lock);
			sp_cache_invalidate(sp);
			continue;
		}
		(void)ksm_do_scan(sp->ksm, ksm_pages_to_scan(sp->ksm), NULL);
		unsigned long ms = ksm_sleep_millisecs(sp->ksm);

		sp_flush(sp);
		if (ms == 0) {
			sp_unlock(sp);
			/*
			 * Hand the lock over: a thread waiting for it (a
			 * samepage_get, a madvise) counts itself in
			 * lock_waiters until it holds the lock.  A mere
			 * sched_yield() lets this thread take the mutex back
			 * before the woken waiter runs, starving callers for
			 * many batches.  Bounded, in case waiters keep coming.
			 */
			for (int i = 0; i < 2000 && atomic_load(&sp->lock_waiters); i++)
				sched_yield();
			sp_lock(sp);
			continue;
		}
		struct timespec ts;

		deadline_in(&ts, ms);
		pthread_cond_timedwait(&sp->wake, &sp->lock, &ts);
		sp_cache_invalidate(sp);
	}
	sp_unlock(sp);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Opening.
 * --------------------------------------------------------------------- */
/*
 * Our userfaultfd must make the kernel itself wait on a protected page, not
 * only user-mode accesses: the application may write its memory with
 * read(2), process_vm_writev(2), io syscalls... and those writes must be
 * parked like a store instruction, or they would land in the page we are
 * about to replace (a lost write).  UFFD_USER_MODE_ONLY would open without
 * privileges, but then a kernel-mode write into a protected page fails
 * with EFAULT instead of waiting: unsafe, so it is never used.  Kernel-mode
 * faults need CAP_SYS_PTRACE (or vm.unprivileged_userfaultfd=1), or access
 * to /dev/userfaultfd.  No feature is requested: UFFD_FEATURE_EVENT_UNMAP
 * in particular would make our own mmap(MAP_FIXED) wait for its event to be
 * read (a self-deadlock for an engine that reads its own events).
 */
static int open_uffd(void)
{
	int fd = -1, dev_err = 0, sys_err = 0;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			dev_err = errno;
		close(dev);
	} else {
		dev_err = errno;
	}
	if (fd < 0) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			sys_err = errno;
	}
	if (fd < 0) {
		sp_set_error("samepage: no userfaultfd with kernel-fault handling: "
			     "/dev/userfaultfd: %s; userfaultfd(2): %s.  Needed: read-write "
			     "access to /dev/userfaultfd, or CAP_SYS_PTRACE, or the sysctl "
			     "vm.unprivileged_userfaultfd=1",
			     strerror(dev_err), strerror(sys_err));
		return -(sys_err ? sys_err : dev_err ? dev_err : EPERM);
	}
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };

	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		sp_set_error("samepage: UFFDIO_API failed: %s", strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

/* Does the kernel do write-protect mode on anonymous memory? */
static int probe_wp(struct samepage *sp)
{
	void *p = mmap(NULL, sp->page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	int err = sp_uffd_register(sp, (uintptr_t)p >> sp->page_shift, 1);

	if (err)
		sp_set_error("samepage: this kernel cannot write-protect anonymous "
			     "memory with userfaultfd (UFFDIO_REGISTER_MODE_WP: %s); "
			     "Linux 5.7 or later with CONFIG_HAVE_ARCH_USERFAULTFD_WP "
			     "is needed", strerror(-err));
	else
		sp_uffd_unregister(sp, (uintptr_t)p >> sp->page_shift, 1);
	munmap(p, sp->page);
	return err;
}

/* The PFN of the shared zero page, or 0 if PFNs are hidden from us. */
static uint64_t find_zero_pfn(struct samepage *sp)
{
	volatile char *p = mmap(NULL, sp->page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	if (pread(sp->pagemap_fd, &e, 8, (off_t)((uintptr_t)p >> sp->page_shift) * 8) != 8)
		e = 0;
	munmap((void *)p, sp->page);
	if (!(e & (1ull << 63)))
		return 0;
	return e & ((1ull << 55) - 1);
}

static long read_max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long v = 65530;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

static void destroy(struct samepage *sp)
{
	if (sp->ksm)
		ksm_destroy(sp->ksm);
	for (size_t i = 0; i < sp->nranges; i++)
		free(sp->ranges[i].rec);
	free(sp->ranges);
	for (int i = 0; i < SP_PM_CACHE; i++)
		free(sp->win[i]);
	sp_store_fini(sp);
	if (sp->uffd >= 0)
		close(sp->uffd);
	if (sp->pagemap_fd >= 0)
		close(sp->pagemap_fd);
	if (sp->stop_pipe[0] >= 0)
		close(sp->stop_pipe[0]);
	if (sp->stop_pipe[1] >= 0)
		close(sp->stop_pipe[1]);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->runs_lock);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

int sp_linux_open_opts(struct samepage **spp, const struct sp_linux_opts *opts)
{
	if (!spp) {
		sp_set_error("samepage_open: NULL result pointer");
		return -EINVAL;
	}
	*spp = NULL;
	struct samepage *sp = calloc(1, sizeof(*sp));

	if (!sp) {
		sp_set_error("samepage_open: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_init(&sp->runs_lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->wake, &ca);
	pthread_condattr_destroy(&ca);
	sp->uffd = sp->pagemap_fd = -1;
	sp->stop_pipe[0] = sp->stop_pipe[1] = -1;
	sp->pid = getpid();
	sp->page = (size_t)sysconf(_SC_PAGESIZE);
	while ((1ul << sp->page_shift) < sp->page)
		sp->page_shift++;
	if (opts)
		sp->opts = *opts;

	int err = open_uffd();

	if (err < 0)
		goto fail;
	sp->uffd = err;
	err = probe_wp(sp);
	if (err)
		goto fail;
	sp->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (sp->pagemap_fd < 0) {
		err = -errno;
		sp_set_error("samepage: cannot open /proc/self/pagemap: %s (is /proc "
			     "mounted?)", strerror(errno));
		goto fail;
	}
	sp->zero_pfn = find_zero_pfn(sp);

	if (sp->opts.nr_node_ids > 0)
		sp->nr_nodes = sp->opts.nr_node_ids;
	else if (numa_available() >= 0)
		sp->nr_nodes = numa_max_node() + 1;
	else
		sp->nr_nodes = 1;
	if (sp->nr_nodes < 1)
		sp->nr_nodes = 1;
	err = sp_store_init(sp);
	if (err)
		goto fail;

	sp->max_map_count = read_max_map_count();
	sp->vma_limit = sp->max_map_count / 2;
	sp_recount_vmas(sp);

	sp->backend = (struct sp_backend){
		.ops = &sp_linux_ops, .be = sp, .page_size = sp->page,
		.nr_node_ids = sp->nr_nodes,
	};
	err = ksm_create(&sp->ksm, &sp->backend);
	if (err) {
		sp_set_error("samepage: the engine could not be created: %s", strerror(-err));
		goto fail;
	}
	stat_init(sp);
	pthread_mutex_lock(&sp->lock);
	sp_publish(sp);
	pthread_mutex_unlock(&sp->lock);
	if (pipe2(sp->stop_pipe, O_CLOEXEC)) {
		err = -errno;
		sp_set_error("samepage: pipe: %s", strerror(errno));
		goto fail;
	}
	err = -pthread_create(&sp->reader, NULL, reader_main, sp);
	if (err) {
		sp_set_error("samepage: cannot start the fault reader thread: %s",
			     strerror(-err));
		goto fail;
	}
	sp->reader_started = true;
	err = -pthread_create(&sp->scanner, NULL, scanner_main, sp);
	if (err) {
		sp_set_error("samepage: cannot start the scanner thread: %s", strerror(-err));
		goto fail;
	}
	sp->scanner_started = true;

	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&instances_lock);
	sp->next_instance = instances;
	instances = sp;
	pthread_mutex_unlock(&instances_lock);
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

/* ------------------------------------------------------------------------
 * Ranges (sorted, disjoint).
 * --------------------------------------------------------------------- */
/* Join ranges i and i+1 if they touch and have the same protection. */
static void range_join(struct samepage *sp, size_t i)
{
	struct sp_range *a = &sp->ranges[i], *b = &sp->ranges[i + 1];

	if (a->end != b->start || a->prot != b->prot)
		return;
	uint32_t *rec = realloc(a->rec, (b->end - a->start) * sizeof(*rec));

	if (!rec)
		return;
	memcpy(rec + (a->end - a->start), b->rec, (b->end - b->start) * sizeof(*rec));
	free(b->rec);
	a->rec = rec;
	a->end = b->end;
	memmove(b, b + 1, (sp->nranges - i - 2) * sizeof(*b));
	sp->nranges--;
}

/* Insert [start, end) with its records @rec (taken over); no coalescing. */
static int range_insert_rec(struct samepage *sp, uint64_t start, uint64_t end, int prot,
			    uint32_t *rec)
{
	if (sp->nranges == sp->cranges) {
		size_t c = sp->cranges ? sp->cranges * 2 : 16;
		struct sp_range *r = realloc(sp->ranges, c * sizeof(*r));

		if (!r)
			return -ENOMEM;
		sp->ranges = r;
		sp->cranges = c;
	}
	size_t i = 0;

	while (i < sp->nranges && sp->ranges[i].start < start)
		i++;
	memmove(&sp->ranges[i + 1], &sp->ranges[i], (sp->nranges - i) * sizeof(*sp->ranges));
	sp->ranges[i] = (struct sp_range){ .start = start, .end = end, .prot = prot, .rec = rec };
	sp->nranges++;
	return 0;
}

static int range_insert(struct samepage *sp, uint64_t start, uint64_t end, int prot)
{
	uint32_t *rec = calloc(end - start, sizeof(*rec));

	if (!rec || range_insert_rec(sp, start, end, prot, rec)) {
		free(rec);
		return -ENOMEM;
	}
	size_t i = 0;

	while (sp->ranges[i].start != start)
		i++;
	/* coalesce with the neighbours, so that ranges do not fragment */
	if (i + 1 < sp->nranges)
		range_join(sp, i);
	if (i > 0)
		range_join(sp, i - 1);
	return 0;
}

/* Forget [start, end) (already unmerged): unregister it from our uffd. */
static int range_remove(struct samepage *sp, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < sp->nranges;) {
		struct sp_range *r = &sp->ranges[i];

		if (r->end <= start || r->start >= end) {
			i++;
			continue;
		}
		uint64_t a = start > r->start ? start : r->start;
		uint64_t b = end < r->end ? end : r->end;

		(void)sp_uffd_unregister(sp, a, b - a);
		if (a == r->start && b == r->end) {
			free(r->rec);
			memmove(r, r + 1, (sp->nranges - i - 1) * sizeof(*r));
			sp->nranges--;
			continue;
		}
		if (a == r->start) {
			memmove(r->rec, r->rec + (b - r->start), (r->end - b) * sizeof(*r->rec));
			r->start = b;
		} else if (b == r->end) {
			r->end = a;
		} else {
			/* split: the tail becomes its own range */
			uint64_t tail_start = b, tail_end = r->end;
			int prot = r->prot;
			uint32_t *old = r->rec;
			uint64_t old_start = r->start;

			uint32_t *tail = malloc((tail_end - tail_start) * sizeof(*tail));

			if (!tail)
				return -ENOMEM;
			memcpy(tail, old + (tail_start - old_start),
			       (tail_end - tail_start) * sizeof(*old));
			if (range_insert_rec(sp, tail_start, tail_end, prot, tail)) {
				free(tail);
				return -ENOMEM;
			}
			r = &sp->ranges[i];	/* (the array may have moved) */
			r->end = a;
		}
		i++;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * madvise
 * --------------------------------------------------------------------- */
struct vma_info {
	uint64_t start, end;	/* bytes */
	int prot;
	bool ok;		/* private anonymous, nothing the replacement
				 * mapping would change or corrupt */
};

/*
 * The VMAs over [a, b) (bytes) from /proc/self/smaps.  Returns the number,
 * or a negative errno; *gap is set if part of [a, b) is not mapped.
 */
static int read_vmas(uint64_t a, uint64_t b, struct vma_info **out, bool *gap)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char *line = NULL;
	size_t cap = 0, n = 0, c = 0;
	struct vma_info *v = NULL, *cur = NULL;
	uint64_t covered = a;

	*gap = false;
	if (!f) {
		sp_set_error("samepage: cannot read /proc/self/smaps: %s", strerror(errno));
		return -errno;
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned long long s, e;
		char perms[8] = "", path[256] = "";
		unsigned long long ino = 0;
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu%n", &s, &e, perms, &ino, &pos) >= 4 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			cur = NULL;
			if (e <= a || s >= b)
				continue;
			if (sscanf(line + pos, " %255[^\n]", path) != 1)
				path[0] = 0;
			if (n == c) {
				c = c ? 2 * c : 16;
				struct vma_info *nv = realloc(v, c * sizeof(*v));

				if (!nv) {
					free(v);
					free(line);
					fclose(f);
					return -ENOMEM;
				}
				v = nv;
			}
			cur = &v[n++];
			cur->start = s;
			cur->end = e;
			cur->prot = (perms[0] == 'r' ? PROT_READ : 0) |
				    (perms[1] == 'w' ? PROT_WRITE : 0) |
				    (perms[2] == 'x' ? PROT_EXEC : 0);
			cur->ok = perms[0] == 'r' && perms[2] != 'x' && perms[3] == 'p' &&
				  ino == 0 &&
				  (path[0] == 0 || !strcmp(path, "[heap]") ||
				   !strncmp(path, "[anon:", 6));
			if (s > covered)
				*gap = true;
			if (e > covered)
				covered = e;
			continue;
		}
		if (cur && !strncmp(line, "VmFlags:", 8)) {
			/* flags the replacement mapping would lose or break */
			static const char *const bad[] = {
				"lo", "lf", "wf", "dc", "dd", "um", "uw", "ui", "ht", "sh",
				"ms", "gd", "gu", "io", "pf", "de", "mm", "sl", "dp", NULL,
			};
			char *p = line + 8;
			char fl[8];
			int k;

			while (sscanf(p, " %7s%n", fl, &k) == 1) {
				p += k;
				for (int j = 0; bad[j]; j++)
					if (!strcmp(fl, bad[j]))
						cur->ok = false;
			}
		}
	}
	free(line);
	fclose(f);
	if (covered < b)
		*gap = true;
	*out = v;
	return (int)n;
}

static int madvise_mergeable(struct samepage *sp, uint64_t a, uint64_t b, bool *gap)
{
	struct vma_info *v = NULL;
	int n = read_vmas(a, b, &v, gap);

	if (n < 0)
		return n;
	int err = 0;
	uint64_t sh = sp->page_shift;

	for (int k = 0; k < n && !err; k++) {
		uint64_t x = v[k].start > a ? v[k].start : a;
		uint64_t y = v[k].end < b ? v[k].end : b;

		/* walk the parts not registered yet (ours were checked then) */
		for (uint64_t p = x >> sh; p < (y >> sh);) {
			struct sp_range *r = sp_range_find(sp, p);

			if (r) {
				p = r->end;
				continue;
			}
			uint64_t q = p + 1;

			while (q < (y >> sh) && !sp_range_find(sp, q))
				q++;
			if (v[k].ok && sp_uffd_register(sp, p, q - p) == 0) {
				err = range_insert(sp, p, q, v[k].prot);
				if (err)
					sp_uffd_unregister(sp, p, q - p);
			}
			p = q;
		}
	}
	free(v);
	/* (the engine forgets an mm whose ranges all went away) */
	if (!err && sp->nranges && !ksm_mm_registered(sp->ksm, sp))
		err = ksm_enter(sp->ksm, sp);
	if (!err)
		sp_recount_vmas(sp);
	return err;
}

static int madvise_unmergeable(struct samepage *sp, uint64_t a, uint64_t b, bool *gap)
{
	struct vma_info *v = NULL;
	int n = read_vmas(a, b, &v, gap);

	if (n < 0)
		return n;
	free(v);
	uint64_t sh = sp->page_shift;
	int err = 0;

	if (ksm_mm_registered(sp->ksm, sp))
		err = ksm_unmerge_range(sp->ksm, sp, a >> sh, b >> sh);
	if (!err)
		err = range_remove(sp, a >> sh, b >> sh);
	sp_recount_vmas(sp);
	return err;
}

static int check_area(struct samepage *sp, const void *addr, size_t len,
		      uint64_t *a, uint64_t *b)
{
	uintptr_t start = (uintptr_t)addr;

	if (start & (sp->page - 1)) {
		sp_set_error("samepage: address %p is not page aligned", addr);
		return -EINVAL;
	}
	size_t rlen = (len + sp->page - 1) & ~(sp->page - 1);

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
	int err = check_handle(sp);
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
	int err = check_handle(sp);

	if (err) {
		errno = -err;
		return NULL;
	}
	if (len == 0 || len > SIZE_MAX - sp->page) {
		sp_set_error("samepage_alloc: bad length %zu", len);
		errno = EINVAL;
		return NULL;
	}
	len = (len + sp->page - 1) & ~(sp->page - 1);
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

int samepage_free(struct samepage *sp, void *addr, size_t len)
{
	int err = check_handle(sp);
	uint64_t a, b;

	if (err)
		return err;
	if (len == 0) {
		sp_set_error("samepage_free: zero length");
		return -EINVAL;
	}
	err = check_area(sp, addr, len, &a, &b);
	if (err)
		return err;
	uint64_t sh = sp->page_shift;

	sp_lock(sp);
	sp->discard = true;	/* the content goes away: no copies */
	if (ksm_mm_registered(sp->ksm, sp))
		err = ksm_unmerge_range(sp->ksm, sp, a >> sh, b >> sh);
	sp->discard = false;
	if (!err)
		err = range_remove(sp, a >> sh, b >> sh);
	if (!err && munmap(addr, b - a))
		err = -errno;
	sp_recount_vmas(sp);
	sp_unlock(sp);
	if (err)
		sp_set_error("samepage_free: %s", strerror(-err));
	return err;
}

/* ------------------------------------------------------------------------
 * Knobs, counters, scanning.
 * --------------------------------------------------------------------- */
int samepage_set(struct samepage *sp, const char *knob, unsigned long value)
{
	int err = check_handle(sp);

	if (err)
		return err;
	if (!knob) {
		sp_set_error("samepage_set: NULL knob name");
		return -EINVAL;
	}
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
 *   store_pages          pages of the store in use (KSM pages + pinned)
 *   merges               pages mapped to a KSM page or the zero page, ever
 *   merge_runs           batched mappings made (one mmap each)
 *   runs_aborted         batches given up because a writer touched one of
 *                        their pages before they were mapped
 *   writers_parked       application writes that waited on a page being
 *                        merged (userfaultfd messages read)
 */
int samepage_get(struct samepage *sp, const char *name, long *value)
{
	int err = check_handle(sp);

	if (err)
		return err;
	if (!name || !value) {
		sp_set_error("samepage_get: NULL argument");
		return -EINVAL;
	}
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
	int err = check_handle(sp);

	if (err)
		return err;
	sp_lock(sp);
	err = ksm_do_scan(sp->ksm, npages, NULL);
	sp_unlock(sp);
	if (err)
		sp_set_error("samepage_scan: %s", strerror(-err));
	return err;
}

int samepage_scan_full(struct samepage *sp, unsigned int nscans)
{
	int err = check_handle(sp);

	if (err)
		return err;
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
	int err = check_handle(sp);

	if (err)
		return err;
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
	pthread_join(sp->scanner, NULL);
	pthread_join(sp->reader, NULL);

	pthread_mutex_lock(&instances_lock);
	for (struct samepage **pp = &instances; *pp; pp = &(*pp)->next_instance) {
		if (*pp == sp) {
			*pp = sp->next_instance;
			break;
		}
	}
	pthread_mutex_unlock(&instances_lock);

	/*
	 * If the unmerge failed, pages may still map the store: that is safe,
	 * the mappings keep the memfd alive and we never punch it again.
	 */
	for (size_t i = 0; i < sp->nranges; i++)
		(void)sp_uffd_unregister(sp, sp->ranges[i].start,
					 sp->ranges[i].end - sp->ranges[i].start);
	if (ksm_mm_registered(sp->ksm, sp))
		ksm_exit(sp->ksm, sp);
	destroy(sp);
	if (err)
		sp_set_error("samepage_close: unmerging failed: %s", strerror(-err));
	return err;
}

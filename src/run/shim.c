/* SPDX-License-Identifier: MIT */
/*
 * shim.c - libsamepage-run.so, the preload library of `samepage run`.
 *
 * A program that asks the kernel's KSM to merge (madvise MADV_MERGEABLE,
 * prctl PR_SET_MEMORY_MERGE) asks samepage's daemon instead, through the
 * agent of libsamepage (samepage_connect, one handle per process, made on
 * first use; a fork of a connected process becomes a client of its own by
 * the agent's atfork handling).  Nothing of it reaches the kernel's KSM.
 *
 * Interposed (and exported, src/run/shim.map): madvise, prctl, ioctl,
 * munmap, mremap.
 *   madvise  MERGEABLE/UNMERGEABLE: samepage_madvise.  The kernel's answers
 *            are kept: 0 for memory that cannot merge, EINVAL for an
 *            unaligned address, ENOMEM for a range with unmapped parts.
 *            DONTNEED/FREE on registered pages: samepage_discard, so that
 *            they read zeros afterwards (a plain DONTNEED on a merged page
 *            would read the store page back); every other call, and the
 *            parts of the range that are not registered: the real madvise.
 *   prctl    PR_SET_MEMORY_MERGE 1: all private anonymous memory, now and
 *            later (as --all); 0: none any more; PR_GET_MEMORY_MERGE: what
 *            was set.  Every other option: the real prctl.
 *   munmap   registered pieces: samepage_free (the records and the daemon's
 *            ranges go with the memory, so that a new mapping there is
 *            registered anew); the rest: the real munmap.
 *   mremap   registered memory: unmerged (private again) and given up
 *            first, then moved or resized, then registered at its new
 *            place; merged pages never travel as store mappings.
 *   ioctl    UFFDIO_REGISTER by the program on memory we registered (EBUSY):
 *            that memory is given up (unmerged, unregistered) and the
 *            program's registration retried: its own userfaultfd wins.
 *
 * The whole library is linked into this one (its objects, hidden), with its
 * own calls of madvise, ioctl, munmap and mremap wrapped (-Wl,--wrap) to the real ones, so
 * that nothing the library does comes back here.
 *
 * "All" mode (SAMEPAGE_RUN_ALL=1 from `samepage run --all`, or
 * PR_SET_MEMORY_MERGE): memory is found by reading /proc/self/smaps, at
 * start and then every SAMEPAGE_RUN_RESCAN_MS (default 500) from a thread
 * of ours (on a stack of the library's own memory, never registered).  No
 * mmap/munmap/mremap/brk is interposed: glibc's own calls (malloc, realloc)
 * do not go through interposable symbols anyway, so the maps are the one
 * source.  A rescan registers every eligible mapping not registered yet and
 * gives up registered memory whose mapping went away or was replaced (no
 * uffd-wp flag any more: munmap, mremap, a new mmap at the same address).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux_internal.h"
#include "samepage.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define SHIM_API __attribute__((visibility("default")))

/* The library's own calls (--wrap): straight to the kernel. */
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_munmap(void *addr, size_t len);
void *__wrap_mremap(void *old, size_t olen, size_t nlen, int flags, ...);

int __wrap_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

void *__wrap_mremap(void *old, size_t olen, size_t nlen, int flags, ...)
{
	va_list ap;

	va_start(ap, flags);
	void *na = va_arg(ap, void *);

	va_end(ap);
	return (void *)syscall(SYS_mremap, old, olen, nlen, flags, na);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;

	va_start(ap, req);
	void *arg = va_arg(ap, void *);

	va_end(ap);
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

static pthread_mutex_t shim_lock = PTHREAD_MUTEX_INITIALIZER;
static struct samepage *shim_sp;	/* this process's handle, once connected */
static bool shim_tried;			/* connecting was tried (once per process) */
static _Atomic bool shim_all;		/* all private anonymous memory */
static bool shim_thread_on;
static pthread_t shim_thread;
static void *shim_stack;
static int shim_rescan_ms = 500;
static uint64_t shim_sig;		/* the eligible mappings at the last rescan */
static pthread_mutex_t rescan_lock = PTHREAD_MUTEX_INITIALIZER;	/* one at a time */

static int (*real_madvise)(void *, size_t, int);
static int (*real_prctl)(int, unsigned long, unsigned long, unsigned long, unsigned long);
static int (*real_ioctl)(int, unsigned long, void *);
static int (*real_munmap)(void *, size_t);
static void *(*real_mremap)(void *, size_t, size_t, int, void *);

static void find_real(void)
{
	if (!real_madvise)
		real_madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
	if (!real_prctl)
		real_prctl = (int (*)(int, unsigned long, unsigned long, unsigned long,
				      unsigned long))dlsym(RTLD_NEXT, "prctl");
	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl");
	if (!real_munmap)
		real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	if (!real_mremap)
		real_mremap = (void *(*)(void *, size_t, size_t, int, void *))dlsym(RTLD_NEXT,
										     "mremap");
}

static int call_madvise(void *addr, size_t len, int advice)
{
	find_real();
	return real_madvise ? real_madvise(addr, len, advice) : __wrap_madvise(addr, len, advice);
}

static void start_rescan_thread(void);

static uintptr_t shim_main_tcb;	/* the main thread's (its TLS is there too) */

static void atfork_child(void)
{
	/* (after the library's own handler: the handle is the child's now) */
	pthread_mutex_init(&shim_lock, NULL);
	pthread_mutex_init(&rescan_lock, NULL);
	shim_main_tcb = (uintptr_t)pthread_self();	/* (the one thread here) */
	shim_thread_on = false;
	shim_stack = NULL;	/* (the parent thread's copy: left as it is) */
	if (shim_sp && atomic_load(&shim_all))
		start_rescan_thread();
}

/* The handle, connected on first use; NULL without a daemon. */
static struct samepage *handle(void)
{
	pthread_mutex_lock(&shim_lock);
	if (!shim_tried) {
		shim_tried = true;
		int err = samepage_connect(&shim_sp, NULL);

		if (err) {
			shim_sp = NULL;
			if (err != -ENOENT && err != -ECONNREFUSED)
				fprintf(stderr, "samepage run: process %d runs unmerged: %s\n",
					(int)getpid(), samepage_last_error());
		} else {
			(void)pthread_atfork(NULL, NULL, atfork_child);
		}
	}
	struct samepage *sp = shim_sp;

	pthread_mutex_unlock(&shim_lock);
	return sp;
}

/* ------------------------------------------------------------------------
 * All private anonymous memory.
 * --------------------------------------------------------------------- */
static bool eligible(const struct sp_vma *v)
{
	/* (dont-fork, dont-dump, mlock: carried by merges) */
	return v->heap && !v->exec && (v->prot & PROT_READ) && !(v->flags & ~SP_VMA_KEEP);
}

/*
 * Never registered by a rescan: a mapping right above an inaccessible one
 * (a thread's stack above its guard page, with the thread's TLS at its
 * top; a malloc heap after another's reservation is taken for one, and
 * just not merged), and the pages around the main thread's thread pointer
 * (its static TLS below it, its descriptor above), and this library's own
 * data and bss (the bss beyond the file is anonymous memory).  The agent's
 * own state the library never registers itself.
 */
#define TCB_ABOVE	(8u << 10)	/* glibc's struct pthread: ~2.3 KiB */
#define TLS_SURPLUS	(8u << 10)	/* glibc's reserve for dlopen'd TLS: ~2 KiB */

static size_t shim_tls_below = 64u << 10;	/* (until measured) */
static uint64_t shim_own[2];	/* our own writable data and bss */
static uintptr_t shim_base;	/* where this library is loaded */

/* The static TLS of the objects loaded at start: their PT_TLS sizes. */
static int tls_size(struct dl_phdr_info *info, size_t size, void *arg)
{
	size_t *sum = arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_TLS)
			*sum += ph->p_memsz + ph->p_align;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && info->dlpi_addr == shim_base) {
			uint64_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;

			if (!shim_own[1] || a < shim_own[0])
				shim_own[0] = a;
			if (b > shim_own[1])
				shim_own[1] = b;
		}
	}
	return 0;
}

static bool stack_like(const struct sp_vma *v, int j)
{
	return j > 0 && v[j - 1].end == v[j].start && !v[j - 1].prot && !v[j - 1].inode;
}

/* One rescan: give up what went away, register what is new. */
static void rescan_locked(struct samepage *sp)
{
	struct sp_vma *v = NULL;
	bool gap;
	uint64_t gone[2 * 64];
	int ngone = 0;
	uint64_t sh, sig = 1469598103934665603ull;

	sp_lock(sp);
	sh = sp->os.page_shift;
	int n = sp_os_vmas(&sp->os, 0, UINT64_MAX >> 1, &v, &gap);

	if (n < 0) {
		sp_unlock(sp);
		return;
	}
	/* registered pages no mapping of ours backs any more (unmapped,
	 * moved, or mapped anew: no uffd-wp flag) */
	for (size_t i = 0; i < sp->nranges && ngone < 64; i++) {
		uint64_t p = sp->ranges[i].start, e = sp->ranges[i].end;
		int k = 0;

		while (p < e && ngone < 64) {
			while (k < n && (v[k].end >> sh) <= p)
				k++;
			bool in = k < n && (v[k].start >> sh) <= p;
			bool ok = in && (v[k].flags & SP_VMA_UFFD_WP);
			uint64_t q = k >= n ? e : in ? v[k].end >> sh : v[k].start >> sh;

			if (q > e)
				q = e;
			if (!ok) {
				if (ngone && gone[2 * ngone - 1] == p) {
					gone[2 * ngone - 1] = q;
				} else {
					gone[2 * ngone] = p;
					gone[2 * ngone + 1] = q;
					ngone++;
				}
			}
			p = q;
		}
	}
	/* what to register: stretches of eligible mappings, split around
	 * the ones a thread of the process may write while it holds pages of
	 * its own protected (unmerging in madvise, munmap...): thread stacks
	 * with their TLS, the main thread's TLS, the agent's state */
	uint64_t want[2 * 256];
	int nwant = 0;
	bool open = false;

	uint64_t pg = sp->os.page, w[2][2] = {
		{ (shim_main_tcb - shim_tls_below) & ~(pg - 1),
		  (shim_main_tcb + TCB_ABOVE + pg) & ~(pg - 1) },
		{ shim_own[0] & ~(pg - 1), (shim_own[1] + pg - 1) & ~(pg - 1) },
	};

	for (int j = 0; j < n; j++) {
		if (!eligible(&v[j]))
			continue;
		sig = (sig ^ v[j].start) * 1099511628211ull;
		sig = (sig ^ v[j].end) * 1099511628211ull;
		if (stack_like(v, j)) {
			open = false;
			continue;
		}
		/* the pieces of it outside the windows, the first joined to the
		 * stretch before when nothing excluded lies between */
		uint64_t x = v[j].start;

		while (x < v[j].end) {
			uint64_t y = v[j].end, skip = 0;

			for (int h = 0; h < 2; h++) {
				if (w[h][0] <= x && w[h][1] > x)
					skip = skip > w[h][1] ? skip : w[h][1];
				else if (w[h][0] > x && w[h][0] < y)
					y = w[h][0];
			}
			if (skip) {
				open = false;
				x = skip;
				continue;
			}
			if (open && nwant) {
				want[2 * nwant - 1] = y;
			} else if (nwant < 256) {
				want[2 * nwant] = x;
				want[2 * nwant + 1] = y;
				nwant++;
			}
			open = y == v[j].end;
			x = y;
		}
	}
	sp_arena_free(&sp->arena, v);
	sp_unlock(sp);
	for (int j = 0; j < ngone; j++)
		(void)samepage_madvise(sp, (void *)(uintptr_t)(gone[2 * j] << sh),
				       (gone[2 * j + 1] - gone[2 * j]) << sh, SAMEPAGE_UNMERGEABLE);
	if (sig != shim_sig || ngone) {
		/* (the library registers what is eligible and not its own) */
		for (int j = 0; j < nwant; j++)
			(void)samepage_madvise(sp, (void *)(uintptr_t)want[2 * j],
					       want[2 * j + 1] - want[2 * j], SAMEPAGE_MERGEABLE);
	}
	shim_sig = sig;
}

static void rescan(struct samepage *sp)
{
	pthread_mutex_lock(&rescan_lock);
	rescan_locked(sp);
	pthread_mutex_unlock(&rescan_lock);
}

static void *rescan_main(void *arg)
{
	struct samepage *sp = arg;

	for (;;) {
		pthread_mutex_lock(&shim_lock);
		if (!atomic_load(&shim_all)) {
			shim_thread_on = false;	/* (set_all starts another) */
			pthread_mutex_unlock(&shim_lock);
			return NULL;
		}
		pthread_mutex_unlock(&shim_lock);
		rescan(sp);
		usleep((useconds_t)shim_rescan_ms * 1000);
	}
}

static void start_rescan_thread(void)
{
	struct samepage *sp = shim_sp;

	if (!sp || shim_thread_on)
		return;
	if (sp_start_thread(sp, &shim_thread, &shim_stack, rescan_main, "samepage-maps") == 0) {
		shim_thread_on = true;
		pthread_detach(shim_thread);
	}
}

static void set_all(bool on)
{
	struct samepage *sp = handle();

	atomic_store(&shim_all, on);
	if (!sp)
		return;
	if (on) {
		rescan(sp);	/* (before returning: what is mapped now) */
		pthread_mutex_lock(&shim_lock);
		start_rescan_thread();
		pthread_mutex_unlock(&shim_lock);
	} else {
		/* (the thread sees the flag and ends within a period) */
		uint64_t r[2 * 64];
		int nr = 1;

		for (int round = 0; round < 64 && nr; round++) {
			nr = 0;
			sp_lock(sp);
			for (size_t i = 0; i < sp->nranges && nr < 64; i++, nr++) {
				r[2 * nr] = sp->ranges[i].start << sp->os.page_shift;
				r[2 * nr + 1] = sp->ranges[i].end << sp->os.page_shift;
			}
			sp_unlock(sp);
			for (int i = 0; i < nr; i++)
				(void)samepage_madvise(sp, (void *)(uintptr_t)r[2 * i],
						       r[2 * i + 1] - r[2 * i], SAMEPAGE_UNMERGEABLE);
		}
		pthread_mutex_lock(&rescan_lock);
		shim_sig = 0;
		pthread_mutex_unlock(&rescan_lock);
	}
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *ms = getenv("SAMEPAGE_RUN_RESCAN_MS");
	const char *all = getenv("SAMEPAGE_RUN_ALL");

	find_real();
	shim_main_tcb = (uintptr_t)pthread_self();
	size_t tls = 0;
	Dl_info self;

	if (dladdr((void *)&shim_sig, &self))
		shim_base = (uintptr_t)self.dli_fbase;
	dl_iterate_phdr(tls_size, &tls);
	shim_tls_below = tls + TLS_SURPLUS;
	if (ms && atoi(ms) > 0)
		shim_rescan_ms = atoi(ms);
	if (all && !strcmp(all, "1"))
		set_all(true);
}

/* ------------------------------------------------------------------------
 * The interposed functions.
 * --------------------------------------------------------------------- */
/*
 * The pieces of [addr, addr + len), registered or not, in order: @fn on
 * each; the first failure is the answer (-1 and errno), as the kernel's.
 */
static int pieces(struct samepage *sp, void *addr, size_t len,
		  int (*fn)(struct samepage *sp, void *x, size_t xl, bool reg, int arg), int arg)
{
	uint64_t sh = sp->os.page_shift, a = (uintptr_t)addr;
	uint64_t b = a + ((len + sp->os.page - 1) & ~(uint64_t)(sp->os.page - 1));
	int ret = 0, saved = 0;

	for (uint64_t p = a >> sh; p < (b >> sh);) {
		uint64_t q = b >> sh;
		bool reg = false;

		sp_lock(sp);
		size_t i = sp_range_index(sp, p);

		if (i < sp->nranges && sp->ranges[i].start <= p) {
			reg = true;
			if (sp->ranges[i].end < q)
				q = sp->ranges[i].end;
		} else if (i < sp->nranges && sp->ranges[i].start < q) {
			q = sp->ranges[i].start;
		}
		sp_unlock(sp);
		int r = fn(sp, (void *)(uintptr_t)(p << sh), (q - p) << sh, reg, arg);

		if (r && !ret) {
			ret = -1;
			saved = -r;
		}
		p = q;
	}
	if (ret)
		errno = saved;
	return ret;
}

/* Whether [addr, addr + len) is page aligned and does not wrap. */
static bool aligned(struct samepage *sp, void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	return !(a & (sp->os.page - 1)) && a + len >= a && len <= SIZE_MAX - sp->os.page;
}

/*
 * DONTNEED/FREE: the kernel's DONTNEED first (also where our records are
 * stale: a mapping made anew there), then, on registered pages,
 * samepage_discard, which replaces merged pages (whose DONTNEED would read
 * the store page back) by zeros.  A merge in between finds zeros.
 */
/*
 * After the DONTNEED, a registered piece reads zeros already except where
 * it maps a store page of ours: those pages get zeros written in place,
 * and our zero records go (sp_discard_dontneeded), with nothing of /proc
 * to read, which costs milliseconds a call in a large process (QEMU's
 * balloon discards 4 KiB at a time).  The daemon hears of
 * it as from samepage_discard when records went (a round trip, and the
 * daemon's copy of every record of ours: not for every page).  Otherwise
 * samepage_discard.
 */
static int discard_quick(struct samepage *sp, void *x, size_t xl)
{
	uint64_t sh = sp->os.page_shift, a = (uintptr_t)x >> sh, b = a + (xl >> sh);

	sp_lock(sp);
	int r = sp_discard_dontneeded(sp, a, b);

	sp_unlock(sp);
	if (r == 1 && sp->agent)	/* (records forgotten: the daemon's too) */
		return sp_agent_ranges(sp, a, b);
	return r < 0 ? r : 0;
}

static int discard_piece(struct samepage *sp, void *x, size_t xl, bool reg, int advice)
{
	int r = call_madvise(x, xl, reg ? MADV_DONTNEED : advice) ? -errno : 0;

	if (reg && !r && discard_quick(sp, x, xl) == -EAGAIN) {
		r = samepage_discard(sp, x, xl);
		if (r == -EINVAL)
			r = 0;	/* (given up meanwhile: the DONTNEED did it) */
	}
	return r;
}

static int discard(struct samepage *sp, void *addr, size_t len, int advice)
{
	if (!aligned(sp, addr, len))
		return call_madvise(addr, len, advice);
	return pieces(sp, addr, len, discard_piece, advice);
}

/* munmap: registered pieces through samepage_free (records, store pages
 * and the daemon's ranges go with them), the others the kernel's. */
static int unmap_piece(struct samepage *sp, void *x, size_t xl, bool reg, int arg)
{
	(void)arg;
	if (reg && samepage_free(sp, x, xl) == 0)
		return 0;
	find_real();
	int r = real_munmap ? real_munmap(x, xl) : __wrap_munmap(x, xl);

	return r ? -errno : 0;
}

SHIM_API int munmap(void *addr, size_t len)
{
	struct samepage *sp = shim_sp;

	if (sp && sp->nranges && len && aligned(sp, addr, len))
		return pieces(sp, addr, len, unmap_piece, 0);
	find_real();
	return real_munmap ? real_munmap(addr, len) : __wrap_munmap(addr, len);
}

static int any_piece(struct samepage *sp, void *x, size_t xl, bool reg, int arg)
{
	(void)sp, (void)x, (void)xl, (void)arg;
	return reg ? -EEXIST : 0;
}

/* mremap: registered memory is made private (unmerged) and given up
 * first, moved or resized by the kernel, then registered where it is now:
 * merged pages are never carried along as mappings of the store. */
SHIM_API void *mremap(void *old, size_t olen, size_t nlen, int flags, ...)
{
	va_list ap;
	struct samepage *sp = shim_sp;
	bool reg = false;

	va_start(ap, flags);
	void *na = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;

	va_end(ap);
	if (sp && sp->nranges && olen && aligned(sp, old, olen) &&
	    pieces(sp, old, olen, any_piece, 0)) {
		reg = true;
		(void)samepage_madvise(sp, old, olen, SAMEPAGE_UNMERGEABLE);
	}
	find_real();
	void *r = real_mremap ? real_mremap(old, olen, nlen, flags, na) :
			       __wrap_mremap(old, olen, nlen, flags, na);

	if (reg) {
		int e = errno;

		if (r != MAP_FAILED)
			(void)samepage_madvise(sp, r, nlen, SAMEPAGE_MERGEABLE);
		else
			(void)samepage_madvise(sp, old, olen, SAMEPAGE_MERGEABLE);
		errno = e;
	}
	return r;
}

SHIM_API int madvise(void *addr, size_t len, int advice)
{
	long page = sysconf(_SC_PAGESIZE);

	switch (advice) {
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE: {
		if ((uintptr_t)addr & (uintptr_t)(page - 1)) {
			errno = EINVAL;
			return -1;
		}
		if (!len)
			return 0;
		struct samepage *sp = handle();

		if (!sp)
			return 0;	/* no daemon: unmerged, as asked */
		int err = samepage_madvise(sp, addr, len, advice == MADV_MERGEABLE ?
					   SAMEPAGE_MERGEABLE : SAMEPAGE_UNMERGEABLE);

		if (err == -ENOMEM || err == -EINVAL) {
			errno = -err;
			return -1;
		}
		return 0;	/* (other failures: unmerged, as the kernel's KSM may) */
	}
	case MADV_DONTNEED:
	case MADV_FREE: {
		struct samepage *sp = shim_sp;

		if (sp && sp->nranges)
			return discard(sp, addr, len, advice);
		return call_madvise(addr, len, advice);
	}
	default:
		return call_madvise(addr, len, advice);
	}
}

SHIM_API int prctl(int option, ...)
{
	va_list ap;
	unsigned long a2, a3, a4, a5;

	va_start(ap, option);
	a2 = va_arg(ap, unsigned long);
	a3 = va_arg(ap, unsigned long);
	a4 = va_arg(ap, unsigned long);
	a5 = va_arg(ap, unsigned long);
	va_end(ap);
	if (option == PR_SET_MEMORY_MERGE) {
		if (a3 || a4 || a5) {
			errno = EINVAL;
			return -1;
		}
		set_all(a2 != 0);
		/* (inherited across exec, as the kernel's flag is) */
		if (a2)
			setenv("SAMEPAGE_RUN_ALL", "1", 1);
		else
			unsetenv("SAMEPAGE_RUN_ALL");
		return 0;
	}
	if (option == PR_GET_MEMORY_MERGE) {
		if (a2 || a3 || a4 || a5) {
			errno = EINVAL;
			return -1;
		}
		return atomic_load(&shim_all) ? 1 : 0;
	}
	find_real();
	if (real_prctl)
		return real_prctl(option, a2, a3, a4, a5);
	return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

SHIM_API int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;

	va_start(ap, req);
	void *arg = va_arg(ap, void *);

	va_end(ap);
	find_real();
	int r = real_ioctl ? real_ioctl(fd, req, arg) : __wrap_ioctl(fd, req, arg);

	/* the program's own userfaultfd on memory we took: its own (again,
	 * if a rescan took it back in between) */
	for (int i = 0; i < 8 && r == -1 && errno == EBUSY && req == UFFDIO_REGISTER &&
	     shim_sp && arg; i++) {
		struct uffdio_register *ur = arg;

		(void)samepage_madvise(shim_sp, (void *)(uintptr_t)ur->range.start,
				       ur->range.len, SAMEPAGE_UNMERGEABLE);
		errno = 0;
		r = real_ioctl ? real_ioctl(fd, req, arg) : __wrap_ioctl(fd, req, arg);
	}
	return r;
}

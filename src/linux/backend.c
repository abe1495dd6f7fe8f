/* SPDX-License-Identifier: MIT */
/*
 * backend.c - the engine's operations on a real process's memory.
 *
 * The mechanism and its invariants are described at the top of
 * linux_internal.h.  Every function here runs with sp->lock held.
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
 * Reading and writing the application's memory.
 *
 * The application writes its memory while we read it; that is by design
 * (the protection makes the content stable before anything is decided).
 * These helpers are kept out of ThreadSanitizer's sight, and written as
 * plain loops the compiler must not turn into memcmp/memcpy calls (which
 * the sanitizer intercepts).
 * --------------------------------------------------------------------- */
#if defined(__SANITIZE_THREAD__)
#define SP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SP_TSAN 1
#endif
#endif

#define NO_TSAN __attribute__((no_sanitize("thread"), noinline, \
	optimize("no-tree-loop-distribute-patterns")))

static const uint64_t zero_page_data[65536 / 8] __attribute__((aligned(4096)));

NO_TSAN static bool mem_equal(const void *a, const void *b, size_t len)
{
	const volatile uint64_t *x = a, *y = b;
	uint64_t diff = 0;

	for (size_t i = 0; i < len / 8; i += 8) {
		diff |= (x[i] ^ y[i]) | (x[i + 1] ^ y[i + 1]) |
			(x[i + 2] ^ y[i + 2]) | (x[i + 3] ^ y[i + 3]) |
			(x[i + 4] ^ y[i + 4]) | (x[i + 5] ^ y[i + 5]) |
			(x[i + 6] ^ y[i + 6]) | (x[i + 7] ^ y[i + 7]);
		if (diff)
			return false;
	}
	return true;
}

NO_TSAN static bool mem_is_zero(const void *a, size_t len)
{
	const volatile uint64_t *x = a;
	uint64_t acc = 0;

	for (size_t i = 0; i < len / 8; i += 8) {
		acc |= x[i] | x[i + 1] | x[i + 2] | x[i + 3] |
		       x[i + 4] | x[i + 5] | x[i + 6] | x[i + 7];
		if (acc)
			return false;
	}
	return true;
}

NO_TSAN static void mem_copy(void *dst, const void *src, size_t len)
{
	volatile uint64_t *d = dst;
	const volatile uint64_t *s = src;

	for (size_t i = 0; i < len / 8; i++)
		d[i] = s[i];
}

/*
 * A private copy of a page that is possibly shared: a locked read-modify-
 * write of zero.  It is a write access (the kernel copies the page) that
 * cannot lose a concurrent store of the application, whatever the order.
 */
NO_TSAN static void touch_page(void *p)
{
#if defined(__x86_64__)
	__asm__ volatile("lock addq $0, (%0)" : : "r"(p) : "memory", "cc");
#else
	__atomic_fetch_add((uint64_t *)p, 0, __ATOMIC_SEQ_CST);
#endif
}

#ifdef SP_TSAN
/* Under ThreadSanitizer the engine gets snapshots of application pages, so
 * that its own (instrumented) reads never race with the application. */
#define SNAP_RING 256
static __thread char (*snap_ring)[4096];
static __thread unsigned int snap_next;

static const void *snapshot(struct samepage *sp, const void *addr)
{
	if (sp->page != 4096)
		return addr;
	if (!snap_ring) {
		snap_ring = calloc(SNAP_RING, 4096);
		if (!snap_ring)
			return addr;
	}
	char *buf = snap_ring[snap_next++ % SNAP_RING];
	mem_copy(buf, addr, 4096);
	return buf;
}
#else
static inline const void *snapshot(struct samepage *sp, const void *addr)
{
	(void)sp;
	return addr;
}
#endif

uint64_t sp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * mmap, mremap and pwrite of application memory go straight to the kernel:
 * the sanitizers' interceptors would otherwise "write" the whole range
 * (ThreadSanitizer resets its shadow on mmap) or read the source buffer,
 * racing with the application's own writes, which the protection already
 * orders for real.
 */
static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);

	return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

static void *raw_mremap(void *old, size_t olen, size_t nlen, int flags, void *naddr)
{
	long r = syscall(SYS_mremap, old, olen, nlen, flags, naddr);

	return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

static ssize_t raw_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return (ssize_t)syscall(SYS_pwrite64, fd, buf, len, off);
}

static inline void *vaddr(struct samepage *sp, uint64_t vpn)
{
	return (void *)(uintptr_t)(vpn << sp->page_shift);
}

/* ------------------------------------------------------------------------
 * userfaultfd
 * --------------------------------------------------------------------- */
static int uffd_wp(struct samepage *sp, uint64_t vpn, uint64_t n, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = vpn << sp->page_shift, .len = n << sp->page_shift },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(sp->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

static int uffd_wake(struct samepage *sp, uint64_t vpn, uint64_t n)
{
	struct uffdio_range r = {
		.start = vpn << sp->page_shift, .len = n << sp->page_shift,
	};

	return ioctl(sp->uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int sp_uffd_register(struct samepage *sp, uint64_t vpn, uint64_t n)
{
	struct uffdio_register reg = {
		.range = { .start = vpn << sp->page_shift, .len = n << sp->page_shift },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(sp->uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

int sp_uffd_unregister(struct samepage *sp, uint64_t vpn, uint64_t n)
{
	struct uffdio_range r = {
		.start = vpn << sp->page_shift, .len = n << sp->page_shift,
	};

	return ioctl(sp->uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/* ------------------------------------------------------------------------
 * The store.
 * --------------------------------------------------------------------- */
static inline uint32_t slot_id(struct samepage *sp, int nid, uint64_t off)
{
	return (uint32_t)(((uint64_t)nid << sp->node_shift) | off) + 1;
}

static inline int slot_nid(struct samepage *sp, uint32_t id)
{
	return (int)((id - 1) >> sp->node_shift);
}

static inline uint64_t slot_off(struct samepage *sp, uint32_t id)
{
	return (id - 1) & ((1ull << sp->node_shift) - 1);
}

static struct sp_slot *slot_get(struct samepage *sp, uint64_t id)
{
	if (id == 0 || id > REC_SLOT)
		return NULL;
	int nid = slot_nid(sp, (uint32_t)id);
	uint64_t off = slot_off(sp, (uint32_t)id);

	if (nid >= sp->nr_nodes || off >= sp->store[nid].hwm)
		return NULL;
	return &sp->store[nid].slot[off];
}

static inline char *slot_data(struct samepage *sp, uint32_t id)
{
	return sp->store[slot_nid(sp, id)].view + (slot_off(sp, id) << sp->page_shift);
}

int sp_store_init(struct samepage *sp)
{
	int bits = 0;

	while ((1 << bits) < sp->nr_nodes)
		bits++;
	sp->node_shift = 30 - bits;
	if (sp->node_shift > 24)
		sp->node_shift = 24;
	if (sp->node_shift < 12)
		return -EINVAL;

	uint64_t cap = 1ull << sp->node_shift;
	long phys = sysconf(_SC_PHYS_PAGES);

	/* A node cannot share more pages than the machine has. */
	if (phys > 0 && (uint64_t)phys * 4096 / sp->page + 1 < cap)
		cap = (uint64_t)phys * 4096 / sp->page + 1;

	sp->store = calloc((size_t)sp->nr_nodes, sizeof(*sp->store));
	if (!sp->store)
		return -ENOMEM;
	for (int n = 0; n < sp->nr_nodes; n++)
		sp->store[n].fd = -1;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];
		char name[32];

		snprintf(name, sizeof(name), "samepage-node%d", n);
		st->fd = memfd_create(name, MFD_CLOEXEC);
		if (st->fd < 0) {
			sp_set_error("samepage: memfd_create failed: %s", strerror(errno));
			return -errno;
		}
		if (ftruncate(st->fd, (off_t)(cap << sp->page_shift))) {
			sp_set_error("samepage: cannot size the store: %s", strerror(errno));
			return -errno;
		}
		st->cap = cap;
		st->view = mmap(NULL, cap << sp->page_shift, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_NORESERVE, st->fd, 0);
		if (st->view == MAP_FAILED) {
			st->view = NULL;
			sp_set_error("samepage: cannot map the store: %s", strerror(errno));
			return -errno;
		}
		/*
		 * Place the node's store pages on the node, preferably: with
		 * MPOL_BIND a full node would make our own store writes fail.
		 * The kernel may still move them; follow_page/pfn_page report
		 * where each page is now.
		 */
		if (sp->nr_nodes > 1 && !sp->opts.node_of && numa_available() >= 0) {
			unsigned long mask[16] = { 0 };

			if (n < (int)(sizeof(mask) * 8)) {
				mask[n / (8 * sizeof(long))] |= 1ul << (n % (8 * sizeof(long)));
				(void)mbind(st->view, cap << sp->page_shift, MPOL_PREFERRED,
					    mask, sizeof(mask) * 8, 0);
			}
		}
	}
	return 0;
}

void sp_store_fini(struct samepage *sp)
{
	if (!sp->store)
		return;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];

		if (st->view)
			munmap(st->view, st->cap << sp->page_shift);
		if (st->fd >= 0)
			close(st->fd);
		free(st->slot);
	}
	free(sp->store);
	sp->store = NULL;
}

/* The node a store slot's page is on now. */
static int query_slot_nid(struct samepage *sp, uint32_t id)
{
	int home = slot_nid(sp, id);
	void *addr = slot_data(sp, id);

	if (sp->opts.node_of)
		return sp->opts.node_of(sp->opts.arg, addr, true);
	if (sp->nr_nodes == 1)
		return 0;
	int status = -1;

	if (move_pages(0, 1, &addr, NULL, &status, 0) == 0 && status >= 0 &&
	    status < sp->nr_nodes)
		return status;
	return home;
}

static int grow_slots(struct sp_store *st, uint64_t need)
{
	if (need <= st->nslot)
		return 0;
	uint64_t n = st->nslot ? st->nslot : 1024;

	while (n < need)
		n *= 2;
	struct sp_slot *s = realloc(st->slot, n * sizeof(*s));

	if (!s)
		return -ENOMEM;
	memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
	st->slot = s;
	st->nslot = n;
	return 0;
}

/* A free slot on node @nid, @hint preferred (consecutive offsets keep runs
 * of merged pages in one VMA).  Returns the slot id, or 0. */
static uint32_t alloc_slot(struct samepage *sp, int nid, int64_t hint)
{
	struct sp_store *st = &sp->store[nid];
	uint64_t off;

	if (hint >= 0 && (uint64_t)hint < st->hwm && st->slot[hint].flags == 0) {
		off = (uint64_t)hint;
	} else if (hint >= 0 && (uint64_t)hint == st->hwm && st->hwm < st->cap) {
		off = st->hwm;
	} else {
		/* next-fit among freed slots, else fresh space */
		uint64_t freed = st->hwm - st->used;

		off = st->hwm;
		if (freed) {
			for (uint64_t k = 0; k < st->hwm; k++) {
				uint64_t o = (st->next + k) % st->hwm;

				if (st->slot[o].flags == 0) {
					off = o;
					break;
				}
			}
		}
		if (off >= st->cap)
			return 0;
	}
	if (off >= st->hwm) {
		if (grow_slots(st, off + 1))
			return 0;
		st->hwm = off + 1;
	}
	st->next = off + 1;
	st->used++;
	sp->store_pages++;
	st->slot[off] = (struct sp_slot){ .flags = SLOT_USED, .nid = (int16_t)nid };
	return slot_id(sp, nid, off);
}

/* One mapping of slot @id went away. */
static void release_slot(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s || !(s->flags & SLOT_USED) || s->count == 0)
		return;
	if (--s->count)
		return;
	s->node = NULL;
	if (s->flags & SLOT_PINNED) {
		/* a forked child may still map it: never reuse */
		s->flags = SLOT_DEAD;
		return;
	}
	struct sp_store *st = &sp->store[slot_nid(sp, id)];
	uint64_t off = slot_off(sp, id);

	(void)fallocate(st->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)(off << sp->page_shift), (off_t)sp->page);
	s->flags = 0;
	st->used--;
	sp->store_pages--;
}

/* Slot discarded before any mapping counted on it (failed make_ksm). */
static void free_unused_slot(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s)
		return;
	s->count = 1;
	s->flags &= (uint8_t)~SLOT_PINNED;
	release_slot(sp, id);
}

void sp_pin_all_slots(struct samepage *sp)
{
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];

		for (uint64_t o = 0; o < st->hwm; o++)
			if ((st->slot[o].flags & SLOT_USED) && st->slot[o].count)
				st->slot[o].flags |= SLOT_PINNED;
	}
}

/* ------------------------------------------------------------------------
 * Ranges and records.
 * --------------------------------------------------------------------- */
static size_t range_index(struct samepage *sp, uint64_t vpn)
{
	size_t lo = 0, hi = sp->nranges;

	while (lo < hi) {		/* first range with end > vpn */
		size_t mid = (lo + hi) / 2;

		if (sp->ranges[mid].end > vpn)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct sp_range *sp_range_find(struct samepage *sp, uint64_t vpn)
{
	size_t i = range_index(sp, vpn);

	if (i < sp->nranges && sp->ranges[i].start <= vpn)
		return &sp->ranges[i];
	return NULL;
}

static inline bool rec_file(uint32_t rec)
{
	return (rec & REC_SLOT) && !(rec & REC_ANON);
}

/* The record holds a count on its slot. */
static inline bool rec_counted(uint32_t rec)
{
	return (rec & REC_SLOT) && !(rec & REC_COWED);
}

/* Would pages with records @a, @b (a just below b) share one VMA? */
static bool vma_compat(struct samepage *sp, uint32_t a, uint32_t b)
{
	if (!rec_file(a) && !rec_file(b))
		return true;
	if (!rec_file(a) || !rec_file(b))
		return false;
	uint32_t x = a & REC_SLOT, y = b & REC_SLOT;

	return slot_nid(sp, x) == slot_nid(sp, y) &&
	       slot_off(sp, y) == slot_off(sp, x) + 1;
}

/* Change in the number of VMA boundaries if page @i of @r got record @rec. */
static long vma_delta(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	uint64_t n = r->end - r->start;
	uint32_t old = r->rec[i];
	long d = 0;

	if (i > 0)
		d += (long)!vma_compat(sp, r->rec[i - 1], rec) -
		     (long)!vma_compat(sp, r->rec[i - 1], old);
	if (i + 1 < n)
		d += (long)!vma_compat(sp, rec, r->rec[i + 1]) -
		     (long)!vma_compat(sp, old, r->rec[i + 1]);
	return d;
}

static void set_rec(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	sp->vma_est += vma_delta(sp, r, i, rec);
	r->rec[i] = rec;
}

long sp_count_vmas(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	char buf[65536];
	long n = 0;
	ssize_t got;

	if (fd < 0)
		return -1;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < got; i++)
			n += buf[i] == '\n';
	close(fd);
	return n;
}

void sp_recount_vmas(struct samepage *sp)
{
	long n = sp_count_vmas();

	sp->last_recount_ms = sp_now_ms();
	if (n >= 0)
		sp->vma_est = n + 2 * SP_PENDING;
}

/* May page @i of @r get record @rec without spending the VMA budget? */
static bool budget_ok(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec)
{
	long d = vma_delta(sp, r, i, rec);

	if (d <= 0 || sp->vma_est + d <= sp->vma_limit)
		return true;
	if (sp_now_ms() - sp->last_recount_ms >= 1000) {
		sp_recount_vmas(sp);
		if (sp->vma_est + d <= sp->vma_limit)
			return true;
	}
	sp->vma_budget_refusals++;
	return false;
}

/* ------------------------------------------------------------------------
 * pagemap
 * --------------------------------------------------------------------- */
#define PM_PRESENT	(1ull << 63)
#define PM_SWAP		(1ull << 62)
#define PM_FILE		(1ull << 61)
#define PM_EXCL		(1ull << 56)
#define PM_PFN		((1ull << 55) - 1)

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
}

static struct sp_pmwin *cache_win(struct samepage *sp, uint64_t vpn)
{
	struct sp_pmwin *w = sp->win[(vpn / SP_PM_WIN) % SP_PM_CACHE];

	if (w && w->gen == sp->pm_gen && vpn >= w->start && vpn < w->start + w->n)
		return w;
	return NULL;
}

/* Our own change: pages [vpn, vpn+n) are now not present. */
static void cache_forget(struct samepage *sp, uint64_t vpn, uint64_t n)
{
	for (uint64_t v = vpn; v < vpn + n; v++) {
		struct sp_pmwin *w = cache_win(sp, v);

		if (w)
			w->e[v - w->start] = 0;
	}
}

static int fill_win(struct samepage *sp, struct sp_pmwin *win, uint64_t vpn)
{
	ssize_t got = pread(sp->pagemap_fd, win->e, SP_PM_WIN * 8, (off_t)(vpn * 8));

	if (got < 8) {
		win->n = 0;
		return got < 0 ? -errno : -EIO;
	}
	win->start = vpn;
	win->gen = sp->pm_gen;
	win->n = (uint32_t)(got / 8);
	if (sp->nr_nodes > 1 || sp->opts.node_of) {
		void *addrs[SP_PM_WIN];
		int status[SP_PM_WIN];

		for (uint32_t k = 0; k < win->n; k++) {
			addrs[k] = vaddr(sp, vpn + k);
			status[k] = -1;
		}
		if (sp->opts.node_of) {
			for (uint32_t k = 0; k < win->n; k++)
				status[k] = (win->e[k] & PM_PRESENT) ?
					sp->opts.node_of(sp->opts.arg, addrs[k], false) : 0;
		} else if (move_pages(0, win->n, addrs, NULL, status, 0)) {
			for (uint32_t k = 0; k < win->n; k++)
				status[k] = 0;
		}
		for (uint32_t k = 0; k < win->n; k++)
			win->nid[k] = (int16_t)(status[k] >= 0 && status[k] < sp->nr_nodes ?
						status[k] : 0);
	} else {
		memset(win->nid, 0, win->n * sizeof(win->nid[0]));
	}
	return 0;
}

/* The pagemap entry of @vpn, and the page's node. */
static int pagemap_entry(struct samepage *sp, uint64_t vpn, uint64_t *e, int *nid)
{
	struct sp_pmwin *w = cache_win(sp, vpn);

	if (!w) {
		struct sp_pmwin **slot = &sp->win[(vpn / SP_PM_WIN) % SP_PM_CACHE];

		if (!*slot) {
			*slot = malloc(sizeof(**slot));
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

static bool entry_is_zero_page(struct samepage *sp, uint64_t e, uint64_t vpn)
{
	if (!(e & PM_PRESENT) || (e & PM_FILE))
		return false;
	if (sp->zero_pfn)
		return (e & PM_PFN) == sp->zero_pfn;
	/* PFNs hidden: the zero page is never "exclusively mapped" */
	return !(e & PM_EXCL) && mem_is_zero(vaddr(sp, vpn), sp->page);
}

/* ------------------------------------------------------------------------
 * Batched mappings (pending runs).
 *
 * A page joins a run (under runs_lock) before it is write-protected, so
 * that every page we hold protected across engine code is in a run.  This
 * matters: between two operations the engine may call malloc(), and an
 * application thread parked on a pending page could hold the malloc lock
 * (if it registered memory that malloc writes).  So the fault reader thread
 * aborts a pending run as soon as a writer faults on one of its pages:
 * it marks the run RUN_ABORTED and removes the protection at once, without
 * the engine lock; the flush then undoes the run's records (the pages keep
 * their old mapping, as if they had been written).  A run being mapped
 * (RUN_MAPPING) is not aborted: its writers are woken in a moment.
 * --------------------------------------------------------------------- */
enum { RUN_FREE, RUN_PENDING, RUN_MAPPING, RUN_ABORTED };

/*
 * Is @vpn in a run?  vpn and n of a run are written only by the engine side
 * (under the engine lock and runs_lock), so the engine side reads them
 * without runs_lock; the fault reader only ever changes state.
 */
static bool in_pending(struct samepage *sp, uint64_t vpn)
{
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->n && vpn >= p->vpn && vpn < p->vpn + p->n)
			return true;
	}
	return false;
}

/*
 * Map [vpn, vpn+n) to a slot run (or anonymously), register the new VMA,
 * wake the writers parked on it.  The pages are write-protected and their
 * content checked.  On failure the protection is removed and the old
 * mapping is intact (mmap checks map_count before it unmaps anything).
 */
static int map_protected(struct samepage *sp, uint64_t vpn, uint64_t n, bool anon,
			 int nid, uint64_t off, int prot)
{
	void *addr = vaddr(sp, vpn);
	size_t len = n << sp->page_shift;
	void *m;

	if (anon)
		m = raw_mmap(addr, len, prot, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
	else
		m = raw_mmap(addr, len, prot, MAP_PRIVATE | MAP_FIXED, sp->store[nid].fd,
			     (off_t)(off << sp->page_shift));
	if (m == MAP_FAILED) {
		int err = -errno;

		uffd_wp(sp, vpn, n, false);
		return err;
	}
	(void)sp_uffd_register(sp, vpn, n);
	uffd_wake(sp, vpn, n);
	cache_forget(sp, vpn, n);
	return 0;
}

static void flush_run(struct samepage *sp, int k)
{
	struct sp_run *p = &sp->run[k];

	pthread_mutex_lock(&sp->runs_lock);
	int state = p->state;

	if (state == RUN_PENDING)
		p->state = RUN_MAPPING;
	pthread_mutex_unlock(&sp->runs_lock);
	if (state == RUN_FREE)
		return;
	int err = -EAGAIN;

	if (state == RUN_PENDING && p->n)
		err = map_protected(sp, p->vpn, p->n, p->anon, p->nid, p->off, p->prot);
	if (err) {
		/* undo: the pages keep their old mapping, as if written */
		if (state == RUN_ABORTED)
			uffd_wp(sp, p->vpn, p->n, false);
		for (uint32_t j = 0; j < p->n; j++) {
			struct sp_range *r = sp_range_find(sp, p->vpn + j);

			if (!r)
				continue;
			uint64_t i = p->vpn + j - r->start;
			uint32_t rec = r->rec[i];

			if (rec == sp->run_old[k][j])
				continue;	/* never installed */
			set_rec(sp, r, i, sp->run_old[k][j]);
			if (rec_counted(rec))
				release_slot(sp, rec & REC_SLOT);
			else if (rec == REC_ANON)
				ksm_zero_page_unmapped(sp->ksm, sp);
		}
		if (state == RUN_ABORTED)
			sp->runs_aborted++;
	} else {
		sp->merges_flushed_runs++;
		sp->merges += p->n;
	}
	pthread_mutex_lock(&sp->runs_lock);
	p->n = 0;
	p->state = RUN_FREE;
	pthread_mutex_unlock(&sp->runs_lock);
}

int sp_flush(struct samepage *sp)
{
	for (int k = 0; k < SP_PENDING; k++)
		flush_run(sp, k);
	return 0;
}

/* The fault reader saw a writer parked at @addr: if the page is in a
 * pending run, abort the run and let the writer go.  Without the engine
 * lock.  Returns true if the address was in a run. */
bool sp_abort_at(struct samepage *sp, uint64_t addr)
{
	uint64_t vpn = addr >> sp->page_shift;
	bool found = false;

	pthread_mutex_lock(&sp->runs_lock);
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if ((p->state == RUN_PENDING || p->state == RUN_ABORTED) &&
		    vpn >= p->vpn && vpn < p->vpn + p->n) {
			p->state = RUN_ABORTED;
			uffd_wp(sp, p->vpn, p->n, false);
			found = true;
		}
	}
	pthread_mutex_unlock(&sp->runs_lock);
	return found;
}

/* Page @vpn joins a run (before it is protected).  Returns the run. */
static int run_reserve(struct samepage *sp, uint64_t vpn, bool anon, int nid,
		       uint64_t off, int prot, uint32_t old)
{
	for (int k = 0; k < SP_PENDING; k++)
		if (sp->run[k].n >= SP_RUN_MAX)
			flush_run(sp, k);
	pthread_mutex_lock(&sp->runs_lock);
	int freek = -1;

	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->state == RUN_FREE) {
			if (freek < 0)
				freek = k;
			continue;
		}
		if (p->state == RUN_PENDING && p->vpn + p->n == vpn && p->anon == anon &&
		    p->prot == prot && (anon || (p->nid == nid && p->off + p->n == off))) {
			sp->run_old[k][p->n] = old;
			p->n++;
			pthread_mutex_unlock(&sp->runs_lock);
			return k;
		}
	}
	pthread_mutex_unlock(&sp->runs_lock);
	if (freek < 0) {
		sp_flush(sp);
		freek = 0;
	}
	pthread_mutex_lock(&sp->runs_lock);
	struct sp_run *p = &sp->run[freek];

	p->vpn = vpn;
	p->anon = anon;
	p->nid = nid;
	p->off = off;
	p->prot = prot;
	sp->run_old[freek][0] = old;
	p->n = 1;
	p->state = RUN_PENDING;
	pthread_mutex_unlock(&sp->runs_lock);
	return freek;
}

/* The merge of @vpn failed before its record changed: leave the run. */
static void run_unreserve(struct samepage *sp, int k, uint64_t vpn)
{
	if (k < 0)
		return;
	pthread_mutex_lock(&sp->runs_lock);
	struct sp_run *p = &sp->run[k];

	if (p->state == RUN_PENDING && p->n && p->vpn + p->n - 1 == vpn) {
		p->n--;
		if (!p->n)
			p->state = RUN_FREE;
	}
	pthread_mutex_unlock(&sp->runs_lock);
}

enum check { CHECK_EQUAL, CHECK_ZERO, CHECK_COPY };

/*
 * Merge page @i of @r into record @rec: join a run (or, when the page now
 * holds a slot, map it at once), write-protect, check the content (equal
 * to @want; all zeros; or copy it into the new slot of @rec), set the
 * record.  The caller updates the slot's count on success.
 */
static int merge_page(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec,
		      enum check how, const void *want)
{
	uint64_t vpn = r->start + i;
	uint32_t old = r->rec[i];
	bool anon = (rec & REC_ANON) != 0;
	uint32_t id = rec & REC_SLOT;
	int nid = id ? slot_nid(sp, id) : 0;
	uint64_t off = id ? slot_off(sp, id) : 0;
	bool now = rec_counted(old) || old == REC_ANON;
	int k = now ? -1 : run_reserve(sp, vpn, anon, nid, off, r->prot, old);
	const void *v = vaddr(sp, vpn);
	bool ok;

	if (uffd_wp(sp, vpn, 1, true)) {
		run_unreserve(sp, k, vpn);
		return -EAGAIN;		/* not our mapping any more */
	}
	switch (how) {
	case CHECK_EQUAL:
		ok = mem_equal(v, want, sp->page);
		break;
	case CHECK_ZERO:
		ok = mem_is_zero(v, sp->page);
		break;
	default:
		/* make_ksm: the slot was chosen anonymous iff the page was zero */
		ok = mem_is_zero(v, sp->page) == anon;
		if (ok && !anon)
			ok = raw_pwrite(sp->store[nid].fd, v, sp->page,
					(off_t)(off << sp->page_shift)) == (ssize_t)sp->page;
		break;
	}
	if (!ok) {
		uffd_wp(sp, vpn, 1, false);
		run_unreserve(sp, k, vpn);
		return -EAGAIN;
	}
	if (now) {
		int err = map_protected(sp, vpn, 1, anon, nid, off, r->prot);

		if (err)
			return err;
		set_rec(sp, r, i, rec);
		sp->merges++;
		if (rec_counted(old))
			release_slot(sp, old & REC_SLOT);
		else
			ksm_zero_page_unmapped(sp->ksm, sp);
		return 0;
	}
	set_rec(sp, r, i, rec);
	return 0;
}

/* ------------------------------------------------------------------------
 * The operations.
 * --------------------------------------------------------------------- */
static int op_find_range(void *be, void *mm, uint64_t vpn, uint64_t *start, uint64_t *end)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -ENOENT;
	size_t i = range_index(sp, vpn);

	if (i >= sp->nranges)
		return -ENOENT;
	*start = sp->ranges[i].start;
	*end = sp->ranges[i].end;
	return 0;
}

static void describe_slot(struct samepage *sp, uint32_t id, struct sp_page *pg)
{
	struct sp_slot *s = slot_get(sp, id);

	if (!s || !(s->flags & SLOT_USED)) {
		pg->kind = SP_PAGE_NONE;
		return;
	}
	if (s->nid_gen != (uint32_t)sp->pm_gen) {
		/* one move_pages() per slot and lock hold */
		s->nid = (int16_t)query_slot_nid(sp, id);
		s->nid_gen = (uint32_t)sp->pm_gen;
	}
	pg->kind = SP_PAGE_KSM;
	pg->pfn = id;
	pg->nid = s->nid;
	pg->mapcount = (int)s->count;
	pg->stable_node = s->node;
	pg->data = slot_data(sp, id);
}

static int op_follow_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	struct samepage *sp = be;

	memset(pg, 0, sizeof(*pg));
	if (mm != sp)
		return -EINVAL;
	if (in_pending(sp, vpn))
		sp_flush(sp);
	struct sp_range *r = sp_range_find(sp, vpn);

	if (!r)
		return 0;
	uint64_t i = vpn - r->start, e;
	uint32_t rec = r->rec[i];
	int nid;
	int err = pagemap_entry(sp, vpn, &e, &nid);

	if (err)
		return err;
	bool present = e & PM_PRESENT;

	if (rec_counted(rec) && rec_file(rec)) {
		if (present && !(e & PM_FILE)) {
			/* written since: a private copy (COW) */
			release_slot(sp, rec & REC_SLOT);
			set_rec(sp, r, i, REC_COWED | (rec & REC_SLOT));
		} else if (e & PM_SWAP) {
			/* a private copy, swapped out */
			release_slot(sp, rec & REC_SLOT);
			set_rec(sp, r, i, REC_COWED | (rec & REC_SLOT));
			return 0;
		} else {
			describe_slot(sp, rec & REC_SLOT, pg);
			return 0;
		}
	} else if (rec & REC_ANON) {
		if ((!present && !(e & PM_SWAP)) || entry_is_zero_page(sp, e, vpn)) {
			if (rec & REC_SLOT) {
				describe_slot(sp, rec & REC_SLOT, pg);
			} else {
				pg->kind = SP_PAGE_ZERO;
				pg->data = zero_page_data;
			}
			return 0;
		}
		/* written since */
		set_rec(sp, r, i, 0);
		if (rec & REC_SLOT)
			release_slot(sp, rec & REC_SLOT);
		else
			ksm_zero_page_unmapped(sp->ksm, sp);
	}
	if (!present || (e & (PM_FILE | PM_SWAP)))
		return 0;
	if (entry_is_zero_page(sp, e, vpn)) {
		pg->kind = SP_PAGE_ZERO;
		pg->data = zero_page_data;
		return 0;
	}
	pg->kind = SP_PAGE_ANON;
	pg->pfn = vpn << sp->page_shift;
	pg->nid = nid;
	pg->data = snapshot(sp, vaddr(sp, vpn));
	return 0;
}

static int op_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	struct samepage *sp = be;

	memset(pg, 0, sizeof(*pg));
	describe_slot(sp, (uint32_t)pfn, pg);
	return 0;
}

static int op_merge(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		    uint64_t kpfn)
{
	struct samepage *sp = be;
	(void)seen;

	if (mm != sp)
		return -EINVAL;
	struct sp_range *r = sp_range_find(sp, vpn);
	struct sp_slot *s = slot_get(sp, kpfn);

	if (!r || !s || !(s->flags & SLOT_USED) || !(r->prot & PROT_READ))
		return -EAGAIN;
	uint64_t i = vpn - r->start;
	uint32_t id = (uint32_t)kpfn;
	uint32_t rec = (s->flags & SLOT_ZERO) ? (REC_ANON | id) : id;

	if ((r->rec[i] & ~REC_COWED) == rec && rec_counted(r->rec[i]))
		return -EAGAIN;		/* already maps it */
	if (in_pending(sp, vpn))
		sp_flush(sp);
	if (!budget_ok(sp, r, i, rec))
		return -ENOMEM;
	/*
	 * Hold the slot across merge_page(): joining a run may flush other
	 * runs, and undoing an aborted one can drop the slot's last count and
	 * free it (punch its hole) while this page is about to map it.  The
	 * hold becomes this page's count on success.
	 */
	s->count++;
	int err = merge_page(sp, r, i, rec, CHECK_EQUAL, slot_data(sp, id));

	if (err)
		release_slot(sp, id);
	return err;
}

static int op_merge_zero(void *be, void *mm, uint64_t vpn, const struct sp_page *seen)
{
	struct samepage *sp = be;
	(void)seen;

	if (mm != sp)
		return -EINVAL;
	struct sp_range *r = sp_range_find(sp, vpn);

	if (!r || !(r->prot & PROT_READ))
		return -EAGAIN;
	uint64_t i = vpn - r->start;

	if (r->rec[i] == REC_ANON)
		return -EAGAIN;
	if (in_pending(sp, vpn))
		sp_flush(sp);
	if (!budget_ok(sp, r, i, REC_ANON))
		return -ENOMEM;
	return merge_page(sp, r, i, REC_ANON, CHECK_ZERO, NULL);
}

static int op_make_ksm(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		       uint64_t *kpfn)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	struct sp_range *r = sp_range_find(sp, vpn);

	if (!r || !(r->prot & PROT_READ))
		return -EAGAIN;
	uint64_t i = vpn - r->start;
	int nid = seen && seen->nid >= 0 && seen->nid < sp->nr_nodes ? seen->nid : 0;
	int64_t hint = -1;

	if (in_pending(sp, vpn))
		sp_flush(sp);
	/* consecutive store offsets for consecutive pages */
	pthread_mutex_lock(&sp->runs_lock);
	for (int k = 0; k < SP_PENDING; k++) {
		struct sp_run *p = &sp->run[k];

		if (p->state == RUN_PENDING && !p->anon && p->nid == nid &&
		    p->vpn + p->n == vpn)
			hint = (int64_t)(p->off + p->n);
	}
	pthread_mutex_unlock(&sp->runs_lock);
	if (hint < 0 && i > 0 && rec_file(r->rec[i - 1]) &&
	    slot_nid(sp, r->rec[i - 1] & REC_SLOT) == nid)
		hint = (int64_t)slot_off(sp, r->rec[i - 1] & REC_SLOT) + 1;

	/* zero content is mapped anonymously (checked again once protected) */
	bool zero = mem_is_zero(vaddr(sp, vpn), sp->page);
	uint32_t guess;

	if (zero)
		guess = REC_ANON | 1;
	else if (hint >= 0 && (uint64_t)hint < sp->store[nid].cap)
		guess = slot_id(sp, nid, (uint64_t)hint);
	else
		guess = slot_id(sp, nid, sp->store[nid].cap - 1);
	if (!budget_ok(sp, r, i, guess))
		return -ENOMEM;
	/* allocate before protecting: no malloc while a page is protected */
	uint32_t id = alloc_slot(sp, nid, hint);

	if (!id)
		return -ENOMEM;
	struct sp_slot *s = slot_get(sp, id);

	if (zero)
		s->flags |= SLOT_ZERO;	/* the hole already reads zeros */
	int err = merge_page(sp, r, i, zero ? (REC_ANON | id) : id, CHECK_COPY, NULL);

	if (err) {
		free_unused_slot(sp, id);
		return err;
	}
	s->count = 1;
	*kpfn = id;
	return 0;
}

/* Turn the file VMAs over [vpn, vpn+n) (all in @r) back into anonymous
 * memory with the same content. */
static int convert_run(struct samepage *sp, struct sp_range *r, uint64_t vpn, uint64_t n)
{
	uint64_t i0 = vpn - r->start;

	if (sp->discard)
		goto drop;
	int err = uffd_wp(sp, vpn, n, true);

	if (err == -ENOENT) {
		(void)sp_uffd_register(sp, vpn, n);
		err = uffd_wp(sp, vpn, n, true);
	}
	if (err)
		goto drop;	/* not our mapping any more */
	size_t len = n << sp->page_shift;
	void *addr = vaddr(sp, vpn);
	void *st = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (st == MAP_FAILED) {
		err = -errno;
		uffd_wp(sp, vpn, n, false);
		return err;
	}
	mem_copy(st, addr, len);
	if (r->prot != (PROT_READ | PROT_WRITE))
		(void)mprotect(st, len, r->prot);
	if (raw_mremap(st, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, addr) == MAP_FAILED) {
		err = -errno;
		munmap(st, len);
		uffd_wp(sp, vpn, n, false);
		return err;
	}
	(void)sp_uffd_register(sp, vpn, n);
	uffd_wake(sp, vpn, n);
drop:
	for (uint64_t k = 0; k < n; k++) {
		uint32_t rec = r->rec[i0 + k];

		set_rec(sp, r, i0 + k, 0);
		if (rec_counted(rec))
			release_slot(sp, rec & REC_SLOT);
	}
	return 0;
}

static int op_unmerge(void *be, void *mm, uint64_t start, uint64_t end)
{
	struct samepage *sp = be;

	if (mm != sp)
		return -EINVAL;
	sp_flush(sp);
	sp_cache_invalidate(sp);
	bool converted = false;

	for (size_t ri = range_index(sp, start); ri < sp->nranges; ri++) {
		struct sp_range *r = &sp->ranges[ri];

		if (r->start >= end)
			break;
		uint64_t a = start > r->start ? start : r->start;
		uint64_t b = end < r->end ? end : r->end;

		for (uint64_t v = a; v < b;) {
			uint64_t i = v - r->start;
			uint32_t rec = r->rec[i];

			if (rec_file(rec)) {
				uint64_t w = v + 1;

				while (w < b && w - v < 4096 && rec_file(r->rec[w - r->start]))
					w++;
				int err = convert_run(sp, r, v, w - v);

				if (err)
					return err;
				converted = true;
				v = w;
				continue;
			}
			if (rec & REC_ANON) {
				if (!sp->discard && (r->prot & PROT_WRITE))
					touch_page(vaddr(sp, v));
				set_rec(sp, r, i, 0);
				if (rec & REC_SLOT)
					release_slot(sp, rec & REC_SLOT);
				else
					ksm_zero_page_unmapped(sp->ksm, sp);
			}
			v++;
		}
	}
	if (converted)
		sp_recount_vmas(sp);
	return 0;
}

static void op_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	struct samepage *sp = be;
	struct sp_slot *s = slot_get(sp, kpfn);

	if (s && (s->flags & SLOT_USED))
		s->node = node;
}

static uint64_t op_now_ms(void *be)
{
	(void)be;
	return sp_now_ms();
}

const struct sp_backend_ops sp_linux_ops = {
	.find_range = op_find_range,
	.follow_page = op_follow_page,
	.pfn_page = op_pfn_page,
	.merge = op_merge,
	.merge_zero = op_merge_zero,
	.make_ksm = op_make_ksm,
	.unmerge = op_unmerge,
	.set_stable_node = op_set_stable_node,
	.now_ms = op_now_ms,
	.cond_resched = NULL,
};

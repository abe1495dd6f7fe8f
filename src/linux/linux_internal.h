/* SPDX-License-Identifier: MIT */
/*
 * linux_internal.h - the real-memory backend of samepage (private to src/linux
 * and to the tests/real_* programs).
 *
 * How a page of the application is merged (see linux-backend.md):
 *
 *   The store: one memfd per NUMA node holds one copy of every KSM page.  A
 *   store page is a "slot".  The engine maps each node's memfd once,
 *   MAP_SHARED (the "view"), to fill and compare slots.  A merged virtual page
 *   V is a MAP_PRIVATE|MAP_FIXED mapping of its slot: every merged page reads
 *   the single page-cache page of the slot, and the kernel copies on write.
 *
 *   Safety against lost writes: every mergeable range is registered with our
 *   userfaultfd in write-protect mode.  A merge is
 *       UFFDIO_WRITEPROTECT(V) -> full compare -> mmap(V, MAP_FIXED) ->
 *       UFFDIO_REGISTER(V, WP) -> UFFDIO_WAKE(V)
 *   so a writer that touches V between the compare and the replacement is
 *   parked by the protection and resumes after the wake, writing into a
 *   private copy of the slot.
 *
 *   Why the re-registration: mmap(MAP_FIXED) over part of a registered VMA
 *   makes a new VMA that userfaultfd knows nothing about.  A merged page does
 *   not need protection for its own sake (the kernel does copy-on-write), but
 *   the engine may later merge the same virtual page again (after the
 *   application wrote it), or unmerge it, and both need UFFDIO_WRITEPROTECT,
 *   which fails with ENOENT on an unregistered VMA.  So every piece we map is
 *   registered again before the wake, and the invariant is: every VMA inside
 *   a registered range is registered with our uffd.  Registering also lets
 *   the kernel merge the new VMA with a registered neighbour (consecutive
 *   store offsets, or anonymous next to anonymous), which keeps the VMA count
 *   down.  A writer arriving between the mmap and the registration is not
 *   parked: its write copies the slot, which is exactly right.
 *
 *   Batching: merges of consecutive virtual pages into consecutive slots (or
 *   into anonymous zero mappings) are protected and compared page by page
 *   but mapped, registered and woken once per run ("pending runs", flushed
 *   at the end of every batch and before any operation that would look at
 *   those pages).  Writers of a pending page stay parked until the flush,
 *   at most one scan batch, unless the fault reader aborts the run first
 *   (without any lock: merge.c).  Every page we protect is in a run.
 *
 *   Never a fault of ours: the application's pages are read through the
 *   kernel (pwrite into a scratch memfd, /proc/self/mem for pages it made
 *   unreadable: os_self.c),
 *   never with loads of our own, so mprotect(PROT_NONE) at any moment
 *   cannot kill the process.
 *
 *   Merging memory as it is now: before a run is mapped, the VMAs under it
 *   are looked up (smaps, read once per batch): a page is replaced only if
 *   its mapping is still ours as the record says (our registration,
 *   private, anonymous or our store at the slot's offset) with no flag a
 *   replacement cannot carry (wipe-on-fork, an own userfaultfd, an own
 *   lock-on-fault); the replacement takes the VMA's protection of now and
 *   its mlock, dont-fork and dont-dump flags, from its first instant
 *   (merge.c, os_self.c).  Unmerge privatizes only mappings that are still
 *   ours, keeping protection, mlock, dont-fork and dont-dump; then a range
 *   cut into many mappings is rebuilt as one (sp_os_rebuild).
 *
 *   Per-page records (one uint32_t per page of each registered range):
 *     0                      nothing of ours; an anonymous VMA
 *     slot                   a file VMA mapping that slot; the page has not
 *                            been seen written: it holds one count on the slot
 *     REC_COWED | slot       a file VMA of that slot whose page was written
 *                            (copy-on-write seen in pagemap); it still holds
 *                            its count (MADV_DONTNEED would read the slot)
 *                            until the page is privatized at the end of the
 *                            batch
 *     REC_ANON | slot        an anonymous mapping standing for a slot whose
 *                            content is all zeros (reads map the zero page);
 *                            holds one count on the slot
 *     REC_ANON               a zero page placed by KSM (use_zero_pages)
 *
 *   Slots are reused (hole-punched) only when no process can still map
 *   them.  When a slot's count drops to zero it is not punched but put in
 *   quarantine: a child forked (by any means: fork, _Fork, clone without
 *   CLONE_VM) while we mapped the slot may still map it.  A quarantined
 *   slot is released only after a check of the canary pages, made in a
 *   later lock hold, saw that no child made while the slot was mapped is
 *   left (pagemap "exclusive" bit of the canaries of those generations; no
 *   privilege needed; the argument is in store.c).  Zero-content slots are
 *   never mapped from the file and are released at once.  At close nothing
 *   is punched (the kernel keeps the memfd while a child maps it).
 *
 *   What the library cannot see, and so excludes by contract (samepage(3)):
 *   memory pinned for device or io_uring I/O (a merged pinned page would
 *   silently lose the device's writes); a protection or flag change made
 *   by another thread while the same page is being merged in that batch;
 *   MADV_DONTNEED on a merged page not yet seen written (it reads the page's
 *   merged content again, not zeros: use samepage_discard()).  Ranges that
 *   are wipe-on-fork, hugetlb, shared, executable, sealed, grow-down, or
 *   userfaultfd'd by the application are never registered (madvise returns
 *   0 for them, as the kernel does); locked, dont-fork and dont-dump ranges
 *   are, and merge with their flags.
 *
 *   The library's own memory: struct samepage and the page buffers are
 *   mappings of their own, and everything else it allocates (the engine's
 *   objects through the core's zalloc/free hooks included) comes from the
 *   arena (arena.c), regions it maps itself; never the malloc heap, which
 *   the application may register.  None of these pages is ever registered,
 *   so the library never writes a page it write-protected.
 *
 *   Counters of our own (samepage_get): SP_LINUX_COUNTERS below.
 */
#ifndef SAMEPAGE_LINUX_INTERNAL_H
#define SAMEPAGE_LINUX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "ksm.h"
#include "os.h"
#include "samepage.h"

#define REC_COWED	0x80000000u
#define REC_ANON	0x40000000u
#define REC_SLOT	0x3fffffffu

/* The pfn (backend.h) of an ordinary anonymous page: this flag, the
 * address space's number above bit 40, the vpn below.  Slot ids (KSM
 * pages) are below 2^30, so the two never collide. */
#define SP_PFN_ANON	(1ull << 62)

#define SP_RUN_MAX	64	/* pages per batched mapping: the pages and their KSM pages
				 * are still in the cache when the run is checked */
#define SP_PENDING	8	/* runs batched at once */
#define SP_PM_WIN	512	/* pagemap entries read per call */
#define SP_NSTAT	40	/* names samepage_get() answers */
#define SP_COW_MAX	512	/* copied-on-write pages privatized per flush */

/* Slot flags. */
#define SLOT_USED	0x01	/* allocated (count may be 0 only transiently) */
#define SLOT_ZERO	0x02	/* content is all zeros: mapped anonymously */
#define SLOT_QUARANTINE	0x04	/* unused, a child may still map it (store.c) */

struct sp_slot {
	struct stable_node *node;	/* back pointer (set_stable_node) */
	uint32_t count;			/* exact number of mappings we made */
	uint8_t flags;
	int16_t nid;			/* last node seen */
	uint32_t nid_gen;		/* ... during this lock hold (pm_gen) */
	uint32_t qnext;			/* next quarantined slot id (0: none) */
	uint32_t gen;			/* canary generation open at allocation */
	uint32_t qgen;			/* ... at quarantine */
};

/* Slots waiting for no child to map them (store.c), linked through qnext. */
#define SP_CANARIES	32	/* canary generations alive at once, at most */
struct sp_quarantine {
	uint32_t new_head, new_tail;	/* quarantined during this lock hold */
	uint32_t old_head, old_tail;	/* ... during an earlier one */
	long n;				/* slots in both lists */
	uint64_t epoch;			/* lock holds so far */
	uint64_t checked;		/* epoch of the last canary check */
	uint64_t alloc_checked;		/* ... made because the store would grow */
	/* canaries not known free of children, oldest first; the last one
	 * is open (inherited by forks), the others MADV_DONTFORK */
	struct sp_canary {
		char *page;
		uint32_t gen;
		bool locked;		/* mlock()ed: never swapped */
	} canary[SP_CANARIES];
	int ncanary;
	bool canary_unlocked;		/* one could not be mlock()ed */
	bool canary_broken;		/* seen swapped or gone: never trust them */
	long checks;			/* canary checks */
	/* slots free of children are reused only once /proc/self/maps shows
	 * no private mapping of them left here (one the application moved
	 * with mremap, which the records do not know; store.c) */
	uint64_t maps_next_us;		/* no maps check before (CLOCK_MONOTONIC) */
	long maps_checks;
	long mapped_elsewhere;		/* slots kept by the last check */
};

struct sp_store {
	int fd;			/* memfd */
	char *view;		/* MAP_SHARED, the engine's own view */
	uint64_t ino;		/* the memfd's inode (to recognise our mappings) */
	uint64_t dev;		/* ... and device */
	uint64_t cap;		/* pages reserved (file size) */
	uint64_t hwm;		/* slots [0, hwm) have been handed out once */
	uint64_t next;		/* next-fit cursor */
	uint64_t used;		/* slots in use */
	struct sp_slot *slot;	/* [hwm rounded up] */
	uint64_t nslot;		/* allocated entries of slot[] */
};

struct sp_range {
	uint64_t start, end;	/* vpn, [start, end) */
	int prot;
	uint32_t *rec;		/* end - start records */
};

/*
 * A pending run: consecutive pages protected and checked, to be mapped to
 * consecutive slots (or anonymously) in one go.  The fault reader aborts
 * runs without any lock (merge.c): state is the handshake, vpn and n are
 * atomics the engine writes only while the run is PENDING (n grows), the
 * rest is the engine's alone.
 */
struct vmas {
	struct sp_vma *v;
	int n;			/* < 0: could not be read: nothing is ours */
};

struct sp_run {
	_Atomic int state;	/* RUN_* (merge.c) */
	_Atomic uint64_t vpn;	/* first page */
	_Atomic uint32_t n;	/* pages */
	bool anon;		/* anonymous mapping (zero content) */
	int nid;		/* store of a file run */
	uint64_t off;		/* store offset of the first page */
	uint32_t old[SP_RUN_MAX];	/* each page's record before the run */
};

/* A window of pagemap entries, aligned to SP_PM_WIN pages. */
struct sp_pmwin {
	uint64_t start;
	uint64_t gen;		/* valid while equal to sp->pm_gen */
	uint32_t n;
	uint64_t e[SP_PM_WIN];
	int16_t nid[SP_PM_WIN];
};

#define SP_PM_CACHE 512	/* windows cached (direct-mapped): 2 GiB of address space */

/*
 * The library's own memory (arena.c): regions of its own mappings, never
 * the malloc heap, never registered.  Used under the engine lock only.
 */
#define SP_ARENA_REGIONS	64
#define SP_ARENA_CLASSES	14	/* small size classes, 16 .. 2048 bytes */

struct sp_arena_region {
	char *base;		/* the mapping (page aligned) */
	size_t pages;		/* its length */
	uint32_t *map;		/* [pages] what each page holds (arena.c) */
	uint64_t *used;		/* [pages / 64] handed out, or metadata */
	uint64_t *dirty;	/* [pages / 64] may hold old content */
	size_t low;		/* no free page below this index */
};

struct sp_arena {
	size_t page;			/* bytes */
	unsigned int page_shift;
	struct sp_arena_region region[SP_ARENA_REGIONS];	/* in address order */
	int nregion;
	size_t next_bytes;		/* length of the next region */
	struct sp_arena_class {
		void *free;		/* freed objects, linked through their first word */
		char *cur, *end;	/* what is left of the class's current slab */
	} cls[SP_ARENA_CLASSES];
	long live;			/* blocks handed out and not freed */
	/* does [lo, hi) (bytes) overlap a registered range?  A region is
	 * never mapped there */
	bool (*registered)(void *arg, uintptr_t lo, uintptr_t hi);
	void *arg;
};

/* Test hooks (tests/real_*): see sp_linux_open_opts(). */
struct sp_linux_opts {
	int nr_node_ids;	/* 0: from libnuma */
	/* If set, the node of the page at @addr (an application page or a
	 * store page in the engine's view); replaces move_pages(). */
	int (*node_of)(void *arg, const void *addr, bool store);
	void *arg;
	bool agent;		/* samepage_connect: no store, no scanner (agent.c) */
};

struct samepage {
	pthread_mutex_t lock;		/* serialises the engine and all below */
	struct ksm *ksm;
	struct sp_backend backend;
	struct sp_arena arena;		/* all the memory below points into */
	struct sp_os os;		/* this process's address space */
	int nr_nodes;
	int node_shift;			/* slot id = (nid << shift | off) + 1 */
	struct sp_linux_opts opts;
	pid_t pid;

	struct sp_store *store;		/* [nr_nodes] */
	struct sp_quarantine q;		/* store.c */

	struct sp_range *ranges;
	size_t nranges, cranges;

	struct sp_run run[SP_PENDING];	/* shared with the fault reader */
	struct vmas vma_cache;		/* the mappings, as of vma_cache_gen */
	uint64_t vma_cache_gen, vma_cache_lo, vma_cache_hi;
	uint64_t cow[SP_COW_MAX];	/* pages seen copied-on-write: to privatize */
	unsigned int ncow;
	struct sp_pmwin *win[SP_PM_CACHE];	/* pagemap cache, lazily allocated */
	uint64_t pm_gen;			/* bumped at each lock: cache invalid */

	/* VMA budget */
	long max_map_count;
	long vma_est;			/* estimated VMAs of the process */
	long vma_limit;			/* refuse isolated merges above this */
	uint64_t last_recount_ms;

	/* counters of our own (samepage_get; SP_LINUX_COUNTERS) */
	long vma_budget_refusals;
	long store_pages;		/* slots in use (all nodes) */
	long merge_runs;		/* batched mappings made */
	long merges;			/* pages mapped to a KSM or zero page */
	long runs_aborted;		/* runs given up for a parked writer */
	long merges_refused;		/* pages whose mapping changed: not merged */
	long merges_changed;		/* pages whose content changed: not merged */
	long ranges_skipped;		/* mappings samepage_madvise left alone */
	uint64_t max_range_pages;	/* larger mappings are not registered */
	atomic_long writers_parked;	/* uffd fault messages read */

	/*
	 * Every name samepage_get() answers, with its value as of the last
	 * time the engine lock was released (sp_publish).  Readers never wait
	 * for the scanner, as reading /sys/kernel/mm/ksm never waits for ksmd.
	 */
	struct sp_stat {
		const char *name;
		atomic_long value;
	} stat[SP_NSTAT];
	int nstat;

	/* threads */
	pthread_t scanner, reader;
	bool scanner_started, reader_started;
	void *scanner_stack, *reader_stack;	/* in the arena: never registered */
	pthread_cond_t wake;
	bool stop;
	int stop_pipe[2];
	atomic_int lock_waiters;

	struct sp_agent *agent;		/* a client of the daemon (agent.c), or NULL */
};

/*
 * The library's own counters, beyond the kernel's (samepage(3)): name,
 * value.  One list: the published table, samepage_get() and the manual
 * follow it.
 */
#define SP_LINUX_COUNTERS(X)						\
	X(vma_budget_refusals, sp->vma_budget_refusals)			\
	X(vmas, sp->vma_est)						\
	X(store_pages, sp->store_pages)					\
	X(store_quarantined, sp->q.n)					\
	X(store_maps_checks, sp->q.maps_checks)				\
	X(store_pages_mapped_elsewhere, sp->q.mapped_elsewhere)		\
	X(merges, sp->merges)						\
	X(runs_aborted, sp->runs_aborted)				\
	X(merge_runs, sp->merge_runs)					\
	X(merges_refused, sp->merges_refused)				\
	X(merges_changed, sp->merges_changed)				\
	X(pages_read, (long)sp->os.pages_read)				\
	X(ranges_skipped, sp->ranges_skipped)				\
	X(writers_parked, atomic_load(&sp->writers_parked))

enum check { CHECK_EQUAL, CHECK_ZERO, CHECK_COPY };

extern const struct sp_backend_ops sp_linux_ops;

/* Slot ids and records. */
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

static inline struct sp_slot *slot_get(struct samepage *sp, uint64_t id)
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
	return sp->store[slot_nid(sp, id)].view + (slot_off(sp, id) << sp->os.page_shift);
}

static inline bool rec_file(uint32_t rec)
{
	return (rec & REC_SLOT) && !(rec & REC_ANON);
}

/* The record holds a count on its slot (every record naming a slot: a
 * mapping of ours still refers to it, copied-on-write or not). */
static inline bool rec_counted(uint32_t rec)
{
	return (rec & REC_SLOT) != 0;
}


/* arena.c: blocks are zeroed (realloc: the added bytes are not); NULL
 * when out of memory */
void sp_arena_init(struct sp_arena *a, size_t page,
		   bool (*registered)(void *arg, uintptr_t lo, uintptr_t hi), void *arg);
void sp_arena_release(struct sp_arena *a);
void *sp_arena_alloc(struct sp_arena *a, size_t size);
void *sp_arena_realloc(struct sp_arena *a, void *p, size_t size);
void sp_arena_free(struct sp_arena *a, void *p);
bool sp_arena_owns(const struct sp_arena *a, uintptr_t addr);

/* store.c */
int sp_store_init(struct samepage *sp);
void sp_store_fini(struct samepage *sp);
int sp_query_slot_nid(struct samepage *sp, uint32_t id);
uint32_t sp_slot_alloc(struct samepage *sp, int nid, int64_t hint);
void sp_slot_release(struct samepage *sp, uint32_t id);
void sp_slot_free_unused(struct samepage *sp, uint32_t id);
void sp_store_epoch(struct samepage *sp);

/* space.c */
size_t sp_range_index(struct samepage *sp, uint64_t vpn);
struct sp_range *sp_range_find(struct samepage *sp, uint64_t vpn);
void sp_set_rec(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec);
bool sp_budget_ok(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec);
void sp_recount_vmas(struct samepage *sp);
int sp_range_insert(struct samepage *sp, uint64_t start, uint64_t end, int prot);
int sp_range_remove(struct samepage *sp, uint64_t start, uint64_t end);

/* pagemap.c */
void sp_cache_invalidate(struct samepage *sp);
void sp_cache_forget(struct samepage *sp, uint64_t vpn, uint64_t n);
int sp_pagemap_entry(struct samepage *sp, uint64_t vpn, uint64_t *e, int *nid);
bool sp_entry_is_zero_page(struct samepage *sp, uint64_t e, uint64_t vpn);
uint32_t sp_pagemap_present_run(struct samepage *sp, uint64_t vpn, uint64_t end);

/* merge.c */
bool sp_in_pending(struct samepage *sp, uint64_t vpn);
int sp_flush(struct samepage *sp);
void sp_flush_batch(struct samepage *sp);
bool sp_abort_at(struct samepage *sp, uint64_t addr);
int sp_merge_page(struct samepage *sp, struct sp_range *r, uint64_t i, uint32_t rec,
		  enum check how, const void *want);
int sp_unmerge_range(struct samepage *sp, uint64_t start, uint64_t end, bool discard);
int sp_discard_range(struct samepage *sp, uint64_t start, uint64_t end);
int sp_forget_unmapped(struct samepage *sp);
int sp_discard_dontneeded(struct samepage *sp, uint64_t start, uint64_t end);
int64_t sp_run_next_off(struct samepage *sp, uint64_t vpn, int nid);
bool sp_note_cowed(struct samepage *sp, uint64_t vpn);
void sp_vma_cache_free(struct samepage *sp);
bool sp_page_replaceable(struct samepage *sp, uint64_t vpn, uint32_t rec, bool anon);

/* host.c */
void sp_lock(struct samepage *sp);
void sp_unlock(struct samepage *sp);
void sp_stat_init(struct samepage *sp);
void sp_publish(struct samepage *sp);
int sp_check_handle(struct samepage *sp);
void *sp_scanner_main(void *arg);

/* faults.c */
void *sp_reader_main(void *arg);

/* api.c */
/* a thread of ours on a stack from the arena (never registered) */
int sp_start_thread(struct samepage *sp, pthread_t *t, void **stack, void *(*fn)(void *),
		    const char *name);
void sp_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* agent.c: a handle of samepage_connect() asks the daemon */
int sp_agent_get(struct samepage *sp, const char *name, long *value);
int sp_agent_set(struct samepage *sp, const char *knob, unsigned long value);
int sp_agent_scan(struct samepage *sp, bool full, unsigned long n);
int sp_agent_ranges(struct samepage *sp, uint64_t forget_a, uint64_t forget_b);
void sp_agent_stop(struct samepage *sp);
size_t sp_agent_state_size(void);	/* the mapping sp->agent points to */
void sp_agent_free(struct samepage *sp);

/* For tests: open with hooks; reach the engine and the backend. */
int sp_linux_open_opts(struct samepage **spp, const struct sp_linux_opts *opts);
struct ksm *sp_linux_ksm(struct samepage *sp);
void *sp_linux_mm(struct samepage *sp);
long sp_count_vmas(void);

#endif /* SAMEPAGE_LINUX_INTERNAL_H */

/* SPDX-License-Identifier: MIT */
/*
 * store.c - the store: one memfd per NUMA node holding every KSM page
 * (a "slot"), with an exact count of the mappings made of each slot, and
 * the quarantine of slots that a forked child may still map (the canary).
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

/* ------------------------------------------------------------------------
 * The quarantine and the canaries.
 *
 * Which processes can read slot K through a file mapping?  We, while a
 * record of ours counts on K; and any process made by copying our address
 * space (fork, _Fork, clone without CLONE_VM, and their descendants) while
 * we had a mapping of K, until that process exits or execs.  A pthread_atfork
 * handler misses _Fork() and raw clone/fork syscalls, and we cannot see a
 * child's page tables, so we ask the kernel one question instead: is our
 * canary page still mapped by us alone?
 *
 * A canary is one private anonymous page, written once (so it is a real
 * page, with content no other page has), mlock()ed if allowed, never
 * written or exposed again.  /proc/self/pagemap bit 56 (PM_MMAP_EXCLUSIVE,
 * no privilege needed) reads 1 while only our page tables map it; every
 * copy of our address space maps it too (read 0) until that copy is torn
 * down (exit, exec).  Measured on Linux 6.18 for fork, _Fork,
 * syscall(SYS_fork), clone(SIGCHLD) and a grandchild whose parent exited:
 * 0 while alive, 1 once exited (zombie or reaped) or exec'd.
 *
 * Generations, so that a long-lived child does not hold slots it never saw:
 * exactly one canary is "open" (a fork copies it); when a check finds the
 * open one shared while slots wait for it, a new canary is made and opened
 * first, then the old one is closed (MADV_DONTFORK: later forks do not copy
 * it).  A fork copies every open canary at its instant, so a child made
 * while generation j was open maps canary j until it is gone.  Slot K
 * records the generation open when it was allocated (gen) and when it was
 * quarantined (qgen); forks before its allocation cannot map K (a slot is
 * only handed out again after all its earlier mappers were gone).
 *
 * The rule: a slot whose count drops to zero is quarantined; it is released
 * (punched, reusable) only after a check, made in a later lock hold than
 * its quarantine, found every canary of generations [gen, qgen] exclusive.
 * Why this is enough, whatever instant another thread calls fork():
 *   1. By the end of the lock hold in which K was quarantined, we no longer
 *      map K from the file (its pages were converted, replaced, unmapped,
 *      or copied on write: a private page, which a child inherits as such).
 *      So only a fork before that point can give a process a mapping of K,
 *      and it happened while one of generations [gen, qgen] was open
 *      (generations change only when a lock hold begins).
 *   2. The kernel copies an address space (dup_mmap) under its mmap lock,
 *      all mappings at once; madvise(MADV_DONTFORK) and reading pagemap
 *      take the same lock: a fork that copied a mapping of K also copied
 *      the canary open at that instant, entirely before or after our read.
 *   3. That copy maps the canary until it exits or execs, which is also
 *      when its mapping of K goes: if it still existed at the check, the
 *      check read 0.  Forks after the end of K's quarantine hold copy no
 *      mapping of K.  So "exclusive" for all of [gen, qgen] means nobody
 *      maps K and nobody can later: K may be reused.
 *   A closed canary found exclusive stays so (no fork copies it any more):
 *   it is unmapped and forgotten.
 * Conservative cases: a canary not present, swapped, being migrated or
 * unreadable counts as shared; once one is seen swapped (not locked) or gone
 * they are never trusted again (a swapped-in canary would not count a
 * child's swap entry), and the quarantine is kept for good.  More than SP_CANARIES generations alive:
 * no new one is opened (slots wait longer).  Kernel KSM cannot merge a
 * canary (unique content; MADV_DONTDUMP, so samepage never registers it).
 * What the application must not do: write, unmap, MADV_DONTNEED or
 * MADV_WIPEONFORK the library's canary pages in the parent or a child (it
 * never learns their addresses); without mlock (RLIMIT_MEMLOCK 0), a
 * canary swapped out and faulted in again by someone else between two
 * checks would be missed.
 * --------------------------------------------------------------------- */
static int canary_open(struct samepage *sp, uint32_t gen)
{
	struct sp_quarantine *q = &sp->q;

	if (q->ncanary >= SP_CANARIES)
		return -ENOSPC;
	char *c = mmap(NULL, sp->os.page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (c == MAP_FAILED)
		return -errno;
	(void)madvise(c, sp->os.page, MADV_NOHUGEPAGE);
	(void)madvise(c, sp->os.page, MADV_DONTDUMP);
	/* content no other page has: its address, pid, generation, time */
	uint64_t seed = (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32) ^
			((uint64_t)gen << 20) ^ sp_now_ms();

	for (size_t i = 0; i < sp->os.page / 8; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(c + i * 8, &seed, 8);
	}
	bool locked = mlock(c, sp->os.page) == 0;

	if (!locked)
		q->canary_unlocked = true;
	q->canary[q->ncanary++] = (struct sp_canary){ .page = c, .gen = gen, .locked = locked };
	return 0;
}

static int canary_init(struct samepage *sp)
{
	int err = canary_open(sp, 0);

	if (err)
		sp_set_error("samepage: cannot map the canary page: %s", strerror(-err));
	return err;
}

/* Is canary @k mapped by no other process now?  One pagemap read. */
static bool canary_exclusive(struct samepage *sp, int k)
{
	struct sp_quarantine *q = &sp->q;
	uint64_t e = 0;

	if (q->canary_broken)
		return false;
	if (sp_os_pagemap(&sp->os, (uintptr_t)q->canary[k].page >> sp->os.page_shift,
			  &e, 1) != 1)
		return false;
	/*
	 * A locked page is never swapped: a swap entry is a migration entry
	 * (NUMA balancing, compaction), which ends with every mapper's entry
	 * restored: shared this time.  A swapped or missing canary is broken.
	 */
	if ((e & PM_SWAP) && q->canary[k].locked)
		return false;
	if (!(e & PM_PRESENT) || (e & PM_SWAP) || (e & PM_FILE)) {
		q->canary_broken = true;
		return false;
	}
	return (e & PM_EXCL) != 0;
}

/* Slot @id goes back to the free space: punch its page, make it reusable. */
static void slot_reclaim(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);
	struct sp_store *st = &sp->store[slot_nid(sp, id)];
	uint64_t off = slot_off(sp, id);

	if (!(s->flags & SLOT_ZERO))
		(void)fallocate(st->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)(off << sp->os.page_shift), (off_t)sp->os.page);
	s->flags = 0;
	s->node = NULL;
	s->qnext = 0;
	st->used--;
	sp->store_pages--;
}

/* ------------------------------------------------------------------------
 * Mappings of the store the records do not know.
 *
 * A merged page is a private mapping of the store, a VMA of its own or
 * part of one, and the application may move it: mremap() of a merged
 * page's VMA succeeds (MREMAP_MAYMOVE, MREMAP_DONTUNMAP too), and the
 * mapping at its new address goes on reading the slot.  The records see
 * only that their page is gone; the slot's count drops, and reusing or
 * punching it would change what that mapping reads (zeros, another page's
 * content).  So a slot that the canaries let go is reused only after
 * /proc/self/maps showed no private mapping of it here: by step 1 above,
 * none of ours maps it any more, so one that does is the application's.
 * Such a slot stays quarantined, checked again later (the application may
 * unmap it, or write it: a private page of its own).  The maps are read
 * twice (the kernel lists them a VMA at a time, dropping its lock between
 * reads: a mapping moved during one read is seen by the other).  A read
 * costs about 1 us a mapping here (35 ms with 30,000): a check of
 * SP_MAPS_CHEAP mappings or more is not made again for SP_MAPS_US_EACH
 * per mapping (at most about a tenth of the time goes to it); cheaper ones
 * are made whenever slots wait.  Counted in mappings, not timed: on a
 * loaded machine a cheap check can take long, and slots would wait for
 * nothing.
 * --------------------------------------------------------------------- */
#define SP_MAPS_CHEAP	1000
#define SP_MAPS_US_EACH	20

struct maps_seen {
	struct samepage *sp;
	uint64_t **bits;	/* [nr_nodes]: a bit per slot below its hwm */
};

static void mark_mapped(void *arg, uint64_t dev, uint64_t ino, uint64_t pgoff, uint64_t np)
{
	struct maps_seen *m = arg;

	for (int k = 0; k < m->sp->nr_nodes; k++) {
		struct sp_store *st = &m->sp->store[k];
		uint64_t end = pgoff < st->hwm && np < st->hwm - pgoff ? pgoff + np : st->hwm;

		if (st->ino != ino || st->dev != dev)
			continue;
		for (uint64_t o = pgoff; o < end; o++)
			m->bits[k][o / 64] |= 1ull << (o % 64);
	}
}

static void maps_free(struct samepage *sp, uint64_t **bits)
{
	if (!bits)
		return;
	for (int n = 0; n < sp->nr_nodes; n++)
		sp_arena_free(&sp->arena, bits[n]);
	sp_arena_free(&sp->arena, bits);
}

/* The slots private mappings of this process cover now; NULL if it may
 * not be asked yet or cannot be told (then no slot is reused). */
static uint64_t **maps_snapshot(struct samepage *sp)
{
	struct sp_quarantine *q = &sp->q;

	if (sp_now_us() < q->maps_next_us)
		return NULL;
	struct maps_seen m = { .sp = sp };
	int err = 0, lines = 0;

	m.bits = sp_arena_alloc(&sp->arena, (size_t)sp->nr_nodes * sizeof(*m.bits));
	if (!m.bits)
		err = -ENOMEM;
	for (int n = 0; !err && n < sp->nr_nodes; n++) {
		m.bits[n] = sp_arena_alloc(&sp->arena,
					   (size_t)((sp->store[n].hwm + 63) / 64 + 1) * 8);
		if (!m.bits[n])
			err = -ENOMEM;
	}
	for (int pass = 0; !err && pass < 2; pass++) {
		lines = sp_proc_file_maps(0, sp->os.page_shift, mark_mapped, &m);
		err = lines < 0 ? lines : 0;
	}
	q->maps_next_us = lines >= SP_MAPS_CHEAP ?
			  sp_now_us() + (uint64_t)lines * SP_MAPS_US_EACH : 0;
	q->maps_checks++;
	if (err) {
		maps_free(sp, m.bits);
		return NULL;
	}
	return m.bits;
}

/*
 * Check the canaries and release the slots quarantined in earlier lock
 * holds that no child can map.  @may_open: a lock hold begins here, a new
 * generation may be opened.
 */
static void quarantine_reclaim(struct samepage *sp, bool may_open)
{
	struct sp_quarantine *q = &sp->q;

	if (!q->old_head || q->canary_broken || !q->ncanary)
		return;
	q->checks++;
	q->checked = q->epoch;

	/* closed canaries found exclusive are done with for good */
	int open = q->ncanary - 1, n = 0;
	bool open_excl = canary_exclusive(sp, open);

	for (int k = 0; k < open; k++) {
		if (canary_exclusive(sp, k))
			munmap(q->canary[k].page, sp->os.page);
		else
			q->canary[n++] = q->canary[k];
	}
	q->canary[n++] = q->canary[open];
	q->ncanary = n;
	open = n - 1;
	if (q->canary_broken)
		return;

	uint32_t keep_head = 0, keep_tail = 0;
	bool wait_open = false, asked = false;
	uint64_t **mapped = NULL;
	long elsewhere = 0;

	for (uint32_t id = q->old_head, next; id; id = next) {
		struct sp_slot *s = slot_get(sp, id);
		bool blocked = false;

		next = s->qnext;
		/* the canaries left are shared, but the open one maybe */
		for (int k = 0; k < q->ncanary && !blocked; k++)
			blocked = q->canary[k].gen >= s->gen && q->canary[k].gen <= s->qgen &&
				  (k != open || !open_excl);
		if (!blocked) {
			uint64_t off = slot_off(sp, id);

			if (!asked) {
				asked = true;
				mapped = maps_snapshot(sp);
			}
			/* kept if the maps were not read, or show it mapped */
			if (mapped && !(mapped[slot_nid(sp, id)][off / 64] >> (off % 64) & 1)) {
				slot_reclaim(sp, id);
				q->n--;
				continue;
			}
			elsewhere += mapped != NULL;
		} else {
			wait_open |= s->qgen == q->canary[open].gen && !open_excl;
		}
		s->qnext = 0;
		if (keep_tail)
			slot_get(sp, keep_tail)->qnext = id;
		else
			keep_head = id;
		keep_tail = id;
	}
	q->old_head = keep_head;
	q->old_tail = keep_tail;
	if (mapped)
		q->mapped_elsewhere = elsewhere;
	maps_free(sp, mapped);
	/*
	 * Slots wait for children made while this generation is open: open a
	 * new one (first), then close this one, so that children made from
	 * now on do not hold them.
	 */
	if (may_open && wait_open) {
		char *old = q->canary[open].page;

		if (canary_open(sp, q->canary[open].gen + 1) == 0)
			(void)madvise(old, sp->os.page, MADV_DONTFORK);
	}
}

/* The generation open now. */
static uint32_t open_gen(struct samepage *sp)
{
	return sp->q.ncanary ? sp->q.canary[sp->q.ncanary - 1].gen : 0;
}

/*
 * The engine lock was just taken (or taken back after a wait): every slot
 * quarantined before is unmapped by us now (step 1 above) and becomes
 * eligible; then one check of the canaries if any slot waits.
 */
void sp_store_epoch(struct samepage *sp)
{
	struct sp_quarantine *q = &sp->q;

	if (!sp->store)
		return;
	q->epoch++;
	if (q->new_head) {
		if (q->old_tail)
			slot_get(sp, q->old_tail)->qnext = q->new_head;
		else
			q->old_head = q->new_head;
		q->old_tail = q->new_tail;
		q->new_head = q->new_tail = 0;
	}
	quarantine_reclaim(sp, true);
}

/* ------------------------------------------------------------------------
 * The store.
 * --------------------------------------------------------------------- */
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
	if (phys > 0 && (uint64_t)phys * 4096 / sp->os.page + 1 < cap)
		cap = (uint64_t)phys * 4096 / sp->os.page + 1;

	sp->store = sp_arena_alloc(&sp->arena, (size_t)sp->nr_nodes * sizeof(*sp->store));
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
		if (ftruncate(st->fd, (off_t)(cap << sp->os.page_shift))) {
			sp_set_error("samepage: cannot size the store: %s", strerror(errno));
			return -errno;
		}
		struct stat sb;

		if (fstat(st->fd, &sb) == 0) {
			st->ino = (uint64_t)sb.st_ino;
			st->dev = (uint64_t)sb.st_dev;
		}
		st->cap = cap;
		st->view = mmap(NULL, cap << sp->os.page_shift, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_NORESERVE, st->fd, 0);
		if (st->view == MAP_FAILED) {
			st->view = NULL;
			sp_set_error("samepage: cannot map the store: %s", strerror(errno));
			return -errno;
		}
		/* a child has no business with the engine's own view, nor
		 * has a core dump: the view spans the machine's memory (the
		 * merged pages are in the core through the application's
		 * own mappings) */
		(void)madvise(st->view, cap << sp->os.page_shift, MADV_DONTFORK);
		(void)madvise(st->view, cap << sp->os.page_shift, MADV_DONTDUMP);
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
				(void)mbind(st->view, cap << sp->os.page_shift, MPOL_PREFERRED,
					    mask, sizeof(mask) * 8, 0);
			}
		}
	}
	return canary_init(sp);
}

/* At close nothing is punched: a child may still map any slot, and the
 * kernel frees the memfd when its last mapping goes. */
void sp_store_fini(struct samepage *sp)
{
	for (int k = 0; k < sp->q.ncanary; k++)
		munmap(sp->q.canary[k].page, sp->os.page);
	sp->q.ncanary = 0;
	if (!sp->store)
		return;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];

		if (st->view)
			munmap(st->view, st->cap << sp->os.page_shift);
		if (st->fd >= 0)
			close(st->fd);
		sp_arena_free(&sp->arena, st->slot);
	}
	sp_arena_free(&sp->arena, sp->store);
	sp->store = NULL;
}

/* The node a store slot's page is on now. */
int sp_query_slot_nid(struct samepage *sp, uint32_t id)
{
	return sp_os_own_node(&sp->os, slot_data(sp, id), slot_nid(sp, id));
}

static int grow_slots(struct samepage *sp, struct sp_store *st, uint64_t need)
{
	if (need <= st->nslot)
		return 0;
	uint64_t n = st->nslot ? st->nslot : 1024;

	while (n < need)
		n *= 2;
	struct sp_slot *s = sp_arena_realloc(&sp->arena, st->slot, n * sizeof(*s));

	if (!s)
		return -ENOMEM;
	memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
	st->slot = s;
	st->nslot = n;
	return 0;
}

/* A free slot on node @nid, @hint preferred (consecutive offsets keep runs
 * of merged pages in one VMA).  Returns the slot id, or 0. */
uint32_t sp_slot_alloc(struct samepage *sp, int nid, int64_t hint)
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
		if (off == st->hwm && freed == 0 && sp->q.old_head &&
		    sp->q.alloc_checked != sp->q.epoch) {
			/* fresh space: first see if children let slots go
			 * since the check at the start of this lock hold
			 * (once per hold) */
			sp->q.alloc_checked = sp->q.epoch;
			quarantine_reclaim(sp, false);
			if (st->hwm > st->used)
				return sp_slot_alloc(sp, nid, hint);
		}
		if (off >= st->cap)
			return 0;
	}
	if (off >= st->hwm) {
		if (grow_slots(sp, st, off + 1))
			return 0;
		st->hwm = off + 1;
	}
	st->next = off + 1;
	st->used++;
	sp->store_pages++;
	st->slot[off] = (struct sp_slot){ .flags = SLOT_USED, .nid = (int16_t)nid,
					  .gen = open_gen(sp) };
	return slot_id(sp, nid, off);
}

/* One mapping of slot @id went away.  The last one quarantines the slot
 * (a zero slot was never mapped from the file: released at once). */
void sp_slot_release(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);
	struct sp_quarantine *q = &sp->q;

	if (!s || !(s->flags & SLOT_USED) || s->count == 0)
		return;
	if (--s->count)
		return;
	if (s->node)
		ksm_page_gone(sp->ksm);	/* its stable node is stale now */
	s->node = NULL;
	if (s->flags & SLOT_ZERO) {
		slot_reclaim(sp, id);
		return;
	}
	s->flags = SLOT_QUARANTINE;
	s->qgen = open_gen(sp);
	s->qnext = 0;
	if (q->new_tail)
		slot_get(sp, q->new_tail)->qnext = id;
	else
		q->new_head = id;
	q->new_tail = id;
	q->n++;
}

/* Slot discarded before any mapping was made of it (failed make_ksm): no
 * process can map it. */
void sp_slot_free_unused(struct samepage *sp, uint32_t id)
{
	struct sp_slot *s = slot_get(sp, id);

	if (s && (s->flags & SLOT_USED))
		slot_reclaim(sp, id);
}

/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the contract between the KSM engine and memory.
 *
 * The engine (src/core/) never touches memory itself.  Everything it learns
 * about pages, and everything it does to them, goes through the operations
 * below.  Two backends implement them: the simulated NUMA machine (src/sim/)
 * and a real process's memory (src/linux/).  The engine cannot tell which one
 * it talks to.
 *
 * Vocabulary
 *   mm     an opaque address space cookie chosen by the backend.  The engine
 *          only compares it for equality and passes it back.
 *   vpn    virtual page number inside an mm (address / page size).
 *   pfn    a 64-bit identity of a physical page chosen by the backend,
 *          unique across all the address spaces of one engine: two pages
 *          with the same pfn are the same page (the engine never merges a
 *          page with itself).  The frame number in the simulator; for real
 *          memory, the store slot of a KSM page, or a tag, the address
 *          space's number and the vpn for an ordinary anonymous page.
 *          A KSM page keeps its pfn until it is freed or migrated (then the
 *          backend calls ksm_migrate_page() with the new one).
 *   KSM page  a write-protected page that several mappings may share.  It
 *          carries a back pointer to one struct stable_node (or none), which
 *          only the engine sets (set_stable_node).  A KSM page is never
 *          written in place: a write to any of its mappings gets a private
 *          copy (copy-on-write), done by the backend.
 *
 * General rules
 *   - Every operation returns 0 or a negative errno.  -EAGAIN always means
 *     "the page changed meanwhile, nothing was done": the engine treats it as
 *     an ordinary failed merge, never as an error.
 *   - Operations are called with the engine's lock held and never re-enter
 *     the engine, except for the notifications listed in ksm.h
 *     (ksm_zero_page_unmapped, ksm_migrate_page, ksm_enter for forks) which a
 *     backend may make from inside an operation.
 *   - The engine allocates its memory only through zalloc/free (below),
 *     when the backend provides them.
 *   - struct sp_page::data stays readable until the next operation that may
 *     change memory (merge, merge_zero, make_ksm, unmerge, set_stable_node,
 *     flush), and across at least 64 further follow_page/pfn_page calls
 *     (a tree walk keeps its candidate's content while it looks at the
 *     tree's pages); read_page's only until the next read_page call.  It may be a snapshot (real
 *     memory copies pages through the kernel) or the page itself, whose
 *     content may change under a concurrent writer: the engine only uses
 *     it to order trees and to choose candidates; merge re-checks content
 *     after write-protecting, so a race loses a merge, never a write.
 *   - Merges may be deferred.  A merge, merge_zero or make_ksm that
 *     returned 0 is certain only after the next flush: until then the
 *     backend may still undo it (a writer touched the page, or its mapping
 *     changed), in which case the engine meets the page unmerged at its
 *     next visit and treats it like a page written since (copy-on-write).
 *     The engine calls flush at the end of every batch (ksm_do_scan).
 *   - The backend owns the lifetime of pages: it counts the mappings of
 *     every KSM page and frees the page when the last mapping (and the last
 *     swap reference) is gone, clearing the back pointer at that moment.  It
 *     may learn late that a mapping went away (real memory sees a
 *     copy-on-write only when it next looks at the page); until then the KSM
 *     page simply stays valid, which is harmless because it is never written.
 */
#ifndef SAMEPAGE_CORE_BACKEND_H
#define SAMEPAGE_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct stable_node;

/* What is mapped at a virtual page. */
enum sp_page_kind {
	SP_PAGE_NONE = 0,	/* nothing present (never touched, swapped, unmapped) */
	SP_PAGE_ZERO,		/* the shared zero page */
	SP_PAGE_ANON,		/* an ordinary private anonymous page */
	SP_PAGE_KSM,		/* a KSM page (see above) */
};

struct sp_page {
	enum sp_page_kind kind;
	uint64_t pfn;		/* identity (see above); valid for ANON and KSM */
	int nid;		/* NUMA node the page is on now; 0 if unknown */
	int mapcount;		/* KSM: mappings the backend knows of */
	struct stable_node *stable_node; /* KSM: its back pointer, or NULL */
	const void *data;	/* page_size bytes of content (ANON, KSM, ZERO) */
};

struct sp_backend_ops {
	/*
	 * find_range - the first mergeable range of @mm that ends above @vpn.
	 * Sets [*start, *end) and returns 0, or -ENOENT when there is none
	 * (also when @mm is exiting).  Ranges are visited in address order.
	 */
	int (*find_range)(void *be, void *mm, uint64_t vpn,
			  uint64_t *start, uint64_t *end);

	/*
	 * follow_page - describe what is mapped at (@mm, @vpn) now.  Never
	 * faults anything in, never allocates.  Returns 0 (pg->kind may be
	 * SP_PAGE_NONE), or a negative errno if @mm cannot be looked at.  It
	 * may leave pg->data NULL for an SP_PAGE_ANON page (reading it costs
	 * real memory a system call): the unstable tree walk then takes the
	 * page as equal to its candidate when their keys are equal, and the
	 * merge's check of the content decides (unstable.c).
	 */
	int (*follow_page)(void *be, void *mm, uint64_t vpn, struct sp_page *pg);

	/*
	 * read_page - optional (NULL: follow_page always sets data).  Sets
	 * pg->data of an SP_PAGE_ANON page that follow_page just described
	 * without it; called only by the scan cursor, for the pages it does
	 * not skip (smart scan skips without reading, as the kernel does),
	 * in increasing order of address: the backend may read the following
	 * pages along (real memory reads through the kernel, one call for
	 * many).  Returns 0, or an errno if the page went away meanwhile.
	 */
	int (*read_page)(void *be, void *mm, uint64_t vpn, struct sp_page *pg);

	/*
	 * pfn_page - describe the page @pfn (a KSM page the engine knows by
	 * its stable node's kpfn).  If the page was freed, pg->kind is
	 * SP_PAGE_NONE; if it was freed and reused, pg->stable_node will not
	 * point back to the caller's node.  That is the stale check: the engine
	 * trusts a stable node only while its page points back to it.
	 */
	int (*pfn_page)(void *be, uint64_t pfn, struct sp_page *pg);

	/*
	 * merge - replace the page mapped at (@mm, @vpn), which the engine saw
	 * as @seen, by a read-only mapping of the KSM page @kpfn.  In this
	 * order: write-protect the mapping, check that it still maps @seen's
	 * page and that its content equals @kpfn's in full, replace the
	 * mapping, release the old page, let writers that were held by the
	 * protection continue (their write then copies the KSM page).
	 * Returns 0, -EAGAIN if the page changed or differs (mapping left as
	 * it was, apart from a harmless write-protection), or another errno
	 * (e.g. -ENOMEM when the backend has no room for the mapping).
	 */
	int (*merge)(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		     uint64_t kpfn);

	/*
	 * merge_zero - like merge, with the shared zero page as the target
	 * (use_zero_pages).  The mapping is marked as KSM's, so that when it
	 * goes away (write, unmap, unmerge) the backend calls
	 * ksm_zero_page_unmapped().
	 */
	int (*merge_zero)(void *be, void *mm, uint64_t vpn,
			  const struct sp_page *seen);

	/*
	 * make_ksm - turn the page mapped at (@mm, @vpn), seen as @seen, into
	 * a new KSM page, write-protected, still mapped at (@mm, @vpn), with no
	 * back pointer yet.  (The simulator converts the page in place; real
	 * memory copies @seen's content into its store at once, and maps the
	 * page there only once it has checked, write-protected, at the flush,
	 * that the page still holds exactly that.)  Sets
	 * *kpfn.  -EAGAIN if the page changed meanwhile.
	 */
	int (*make_ksm)(void *be, void *mm, uint64_t vpn,
			const struct sp_page *seen, uint64_t *kpfn);

	/*
	 * unmerge - break_ksm over [@start, @end) of @mm: every page there that
	 * maps a KSM page, or the zero page placed by KSM, gets a private
	 * writable copy with the same content.  Other pages are untouched.
	 * Synchronous: when it returns 0 no page in the range is shared by
	 * KSM any more.  -ENOMEM if a copy could not be made.
	 * @flags: SP_UNMERGE_DISCARD: the caller frees the range right after;
	 * its content need not be kept (no copies are made).
	 */
	int (*unmerge)(void *be, void *mm, uint64_t start, uint64_t end,
		       unsigned int flags);

	/*
	 * set_stable_node - set (or, with NULL, clear) the back pointer of the
	 * KSM page @kpfn.
	 */
	void (*set_stable_node)(void *be, uint64_t kpfn, struct stable_node *node);

	/*
	 * flush - optional.  Complete every deferred merge (see the general
	 * rules): afterwards each of them is either mapped or undone.
	 */
	void (*flush)(void *be);

	/* now_ms - the only clock the engine reads (milliseconds, monotonic). */
	uint64_t (*now_ms)(void *be);

	/*
	 * cond_resched - optional (may be NULL).  Called between address
	 * spaces of a long walk (unmerge); lets the backend do work that could
	 * race with the walk, e.g. the simulator's scripted interleavings.
	 * It may call ksm_enter() (a fork).
	 */
	void (*cond_resched)(void *be);

	/*
	 * zalloc, free - optional, both or neither (NULL: calloc and free).
	 * Every byte of the engine's own state (the engine, its trees' roots,
	 * mm_slots, rmap_items, stable nodes) comes from zalloc and goes back
	 * through free, so that a backend can keep it out of the memory it
	 * merges: a process that registers its own heap must not have the
	 * engine write into pages the backend write-protected there.  zalloc
	 * returns @size bytes (> 0) of zeroed memory aligned for any type, or
	 * NULL (the engine then fails with -ENOMEM); free takes a block zalloc
	 * returned, with the same @size (@p may be NULL).  Called like every
	 * op (under the engine's lock), and also from ksm_create() and
	 * ksm_destroy().  Neither may call back into the engine.
	 */
	void *(*zalloc)(void *be, size_t size);
	void (*free)(void *be, void *p, size_t size);
};

/* unmerge flags */
#define SP_UNMERGE_DISCARD	0x1u	/* the content is going away: no copies */

/* The description of one backend, given to ksm_create(). */
struct sp_backend {
	const struct sp_backend_ops *ops;
	void *be;		/* passed as the first argument of every op */
	size_t page_size;	/* bytes; a power of two, >= 64 */
	int nr_node_ids;	/* NUMA nodes: node ids are 0..nr_node_ids-1 */
};

#endif /* SAMEPAGE_CORE_BACKEND_H */

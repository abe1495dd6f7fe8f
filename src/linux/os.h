/* SPDX-License-Identifier: MIT */
/*
 * os.h - the OS contract for one address space.
 *
 * Everything samepage does to an application's memory goes through these
 * calls: read it, read its pagemap, write-protect and wake it (userfaultfd),
 * map store pages or anonymous memory over it, give it private copies back,
 * and learn what its mappings are.  os_self.c implements them for this
 * process; a client process reached through its agent is the other world
 * (the daemon) and implements the same calls.
 *
 * Rules
 *   - Addresses are virtual page numbers (vpn) and page counts.
 *   - Every call returns 0 (or a count) or a negative errno; -ESRCH means
 *     the address space is gone.  No call ever faults on the application's
 *     memory, whatever its protection: reads go through the kernel
 *     (pwrite into a scratch memfd or /proc/self/mem here,
 *     process_vm_readv or the agent remotely).
 *   - sp_os_protect(on) parks every writer of the pages (user and kernel
 *     mode) until sp_os_wake() or sp_os_protect(off); mapping over a
 *     protected page does not wake its writers: the caller must wake.
 *   - sp_os_map_file/map_anon replace the pages atomically (the old pages
 *     are freed) and do not register the new mapping: the caller does.
 *     On failure the old mapping is intact.  The new mapping has the
 *     SP_VMA_KEEP flags asked for from its first instant (no fork, core
 *     dump or reclaim sees it without them); a locked one is locked on
 *     fault (lf) and populated for reading, so that it keeps mapping the
 *     store page (a plain mlock of a writable private mapping would
 *     copy every page).
 */
#ifndef SAMEPAGE_LINUX_OS_H
#define SAMEPAGE_LINUX_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT	(1ull << 63)
#define PM_SWAP		(1ull << 62)
#define PM_FILE		(1ull << 61)
#define PM_UFFD_WP	(1ull << 57)
#define PM_EXCL		(1ull << 56)
#define PM_PFN		((1ull << 55) - 1)

#define SP_UFFD_WP_UNPOPULATED	(1ull << 13)	/* UFFD_FEATURE_WP_UNPOPULATED, 6.4 */

/* VmFlags of a mapping that matter to merging (from smaps). */
enum {
	SP_VMA_LOCKED	= 1u << 0,	/* lo, lf: mlock */
	SP_VMA_WIPE	= 1u << 1,	/* wf: MADV_WIPEONFORK */
	SP_VMA_DONTFORK	= 1u << 2,	/* dc: MADV_DONTFORK */
	SP_VMA_DONTDUMP	= 1u << 3,	/* dd: MADV_DONTDUMP */
	SP_VMA_UFFD	= 1u << 4,	/* um, ui: userfaultfd missing/minor */
	SP_VMA_UFFD_WP	= 1u << 5,	/* uw: userfaultfd write-protect */
	SP_VMA_SHARED	= 1u << 6,	/* sh, ms: shared */
	SP_VMA_OTHER	= 1u << 7,	/* hugetlb, io, pfnmap, growsdown, sealed... */
	SP_VMA_ONFAULT	= 1u << 8,	/* lf: mlock2(MLOCK_ONFAULT), with SP_VMA_LOCKED */
};

/* The flags a replacement mapping carries over from the mapping it
 * replaces (sp_os_map_*, sp_os_privatize, sp_os_rebuild). */
#define SP_VMA_KEEP (SP_VMA_LOCKED | SP_VMA_ONFAULT | SP_VMA_DONTFORK | SP_VMA_DONTDUMP)

/* One mapping (VMA) as /proc says it is now. */
struct sp_vma {
	uint64_t start, end;	/* bytes, [start, end) */
	int prot;		/* PROT_* */
	unsigned int flags;	/* SP_VMA_* */
	uint64_t inode;		/* 0: anonymous */
	uint64_t offset;	/* bytes, file mappings */
	bool heap;		/* [heap], [anon:...] or unnamed anonymous */
	bool exec;		/* executable */
	bool huge;		/* holds transparent huge pages (AnonHugePages > 0) */
};

#define SP_OS_AHEAD	32	/* pages read ahead in one call */

struct sp_arena;

struct sp_os {
	struct sp_arena *arena;	/* the library's own memory (sp_os_vmas' lists) */
	int uffd;		/* our userfaultfd, write-protect mode */
	int pagemap_fd;		/* /proc/self/pagemap */
	int mem_fd;		/* /proc/self/mem: reads the scratch copy refuses */
	pid_t pid;
	size_t page;		/* bytes */
	unsigned int page_shift;
	uint64_t zero_pfn;	/* the shared zero page's PFN; 0 if PFNs are hidden */
	bool wp_unpopulated;	/* UFFD_FEATURE_WP_UNPOPULATED in use */
	int nr_nodes;
	/* test hook: the node of the page at @addr, replacing move_pages() */
	int (*node_of)(void *arg, const void *addr, bool store);
	void *node_arg;
	/* page buffers: one spare page (our own mapping, bufs_len bytes); the
	 * read-ahead window (handed out in place) and the merge check's,
	 * SP_OS_AHEAD pages each, in a mapping of the scratch memfd */
	char *tmp, *ra, *chk;
	size_t bufs_len;
	int scratch_fd;
	uint64_t ra_start;	/* read-ahead window [ra_start, +ra_n) */
	uint32_t ra_n;
	uint64_t pages_read;	/* application pages copied (all reads) */
	uint64_t ra_last;	/* the page asked for last */
	uint32_t ra_size;	/* pages to read at the next miss: doubles while
				 * the pages asked for are consecutive */
};

/* Open the uffd (checking write-protect support) and the pagemap. */
int sp_os_open(struct sp_os *os);
/* A /dev/userfaultfd received from a root daemon (agent.c): sp_os_open
 * makes its userfaultfd there when this process cannot open one itself.
 * Kept for the life of the process (its forks too); -1: none. */
void sp_os_set_uffd_dev(int fd);
void sp_os_close(struct sp_os *os);

/* userfaultfd */
int sp_os_register(struct sp_os *os, uint64_t vpn, uint64_t n);
int sp_os_unregister(struct sp_os *os, uint64_t vpn, uint64_t n);
int sp_os_protect(struct sp_os *os, uint64_t vpn, uint64_t n, bool on);
int sp_os_wake(struct sp_os *os, uint64_t vpn, uint64_t n);
/* fault messages: the addresses of parked writers; returns the count */
int sp_os_read_faults(struct sp_os *os, uint64_t *addr, int max);

/* pagemap: @n entries from @vpn; returns the number read */
int sp_os_pagemap(struct sp_os *os, uint64_t vpn, uint64_t *e, uint32_t n);
/* the nodes of present pages [vpn, vpn+n) (e: their pagemap entries) */
void sp_os_nodes(struct sp_os *os, uint64_t vpn, uint32_t n, const uint64_t *e,
		 int16_t *nid);
/* the node of a page of our own (a store page at @addr) */
int sp_os_own_node(struct sp_os *os, void *addr, int fallback);

/* content (read through the kernel: any protection, never a fault) */
int sp_os_read(struct sp_os *os, uint64_t vpn, uint64_t n, void *buf);
/* @n <= SP_OS_AHEAD pages into os->chk, the cheaper way where pagemap
 * shows them present */
int sp_os_read_check(struct sp_os *os, uint64_t vpn, uint64_t n);
/* the content of present page @vpn (reading @ahead present pages after
 * it along); valid until the next call; NULL if unreadable */
const void *sp_os_data(struct sp_os *os, uint64_t vpn, uint32_t ahead);
void sp_os_invalidate(struct sp_os *os);	/* forget the read-ahead */
bool sp_os_equal(struct sp_os *os, uint64_t vpn, const void *want);
bool sp_os_is_zero(struct sp_os *os, uint64_t vpn);
bool sp_mem_is_zero(const void *p, size_t len);
/* a write access that changes no byte: breaks a shared zero page */
void sp_os_touch(struct sp_os *os, uint64_t vpn);
/* zeros written into [vpn, vpn+n) by the kernel (process_vm_writev, the
 * mapping's own protection: a private mapping copies on write); 0 or a
 * negative errno, some pages written on failure */
int sp_os_write_zeros(struct sp_os *os, uint64_t vpn, uint64_t n);

/* mappings */
int sp_os_map_file(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags,
		   int fd, uint64_t off);
int sp_os_map_anon(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags);
/* pages [vpn, vpn+n), protected by the caller, become private anonymous
 * memory with the same content and protection @prot */
int sp_os_privatize(struct sp_os *os, uint64_t vpn, uint64_t n, int prot,
		     unsigned int flags);
/* private anonymous pages [vpn, vpn+n) about to be replaced, in a mapping
 * that holds huge pages (sp_vma.huge): a transparent huge page holding some
 * of them is split now (MADV_COLD on them splits it), so that replacing them
 * frees them at once; otherwise the whole huge page stays allocated until
 * the kernel's deferred split.  Best effort; not called on mappings without
 * huge pages, whose pages it would only age. */
void sp_os_split_huge(struct sp_os *os, uint64_t vpn, uint64_t n);
int sp_os_unmap(struct sp_os *os, uint64_t vpn, uint64_t n);
int sp_os_dontneed(struct sp_os *os, uint64_t vpn, uint64_t n);
/* one registered range of private anonymous memory becomes one mapping
 * again (same content, protection @prot, flags @flags); -EOPNOTSUPP
 * without UFFD_FEATURE_WP_UNPOPULATED */
int sp_os_rebuild(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags);

/* what /proc says */
long sp_os_count_vmas(struct sp_os *os);
/* the VMAs over [a, b) (bytes); returns their number; *gap if part of
 * [a, b) is not mapped; *out from os->arena (sp_arena_free) */
int sp_os_vmas(struct sp_os *os, uint64_t a, uint64_t b, struct sp_vma **out,
	       bool *gap);

/* @fn(@arg, dev, inode, first page offset, pages) for each private file
 * mapping in /proc/@pid/maps (0: this process) now, pages of
 * 1 << @page_shift bytes; the number of mappings read, or -errno if the
 * file cannot be read to its end */
int sp_proc_file_maps(pid_t pid, unsigned int page_shift,
		      void (*fn)(void *arg, uint64_t dev, uint64_t ino, uint64_t pgoff,
				 uint64_t npages),
		      void *arg);

extern const uint64_t sp_zero_page_data[];

uint64_t sp_now_ms(void);
uint64_t sp_now_us(void);
int sp_mem_read(int mem_fd, uint64_t off, size_t len, void *buf);
void sp_deadline_in(struct timespec *ts, unsigned long ms);	/* CLOCK_MONOTONIC */
void sp_hand_over(atomic_int *waiters);

#endif /* SAMEPAGE_LINUX_OS_H */

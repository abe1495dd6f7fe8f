/* SPDX-License-Identifier: MIT */
/*
 * estimate.h - `samepage estimate`: what KSM with the kernel's default knobs
 * would reach on running processes' private anonymous memory, read-only.
 *
 * How (each step in its own file):
 *   proc.c      finds the pages: /proc/PID/smaps (VMAs and VmFlags) and
 *               /proc/PID/pagemap (present, anonymous, PFN when visible),
 *               and reads them with process_vm_readv in batches (rate bound).
 *   dedup.c     groups the pages read by content: XXH3-64 to find candidates,
 *               memcmp against one stored copy per group to decide.
 *   snapshot.c  a read-only backend of the engine (src/core) over those
 *               groups: the engine's own full scans decide the counters.
 *   estimate.c  the passes, volatility, exits, and the engine runs.
 *
 * Every function returns 0 or a negative errno.
 */
#ifndef SAMEPAGE_ESTIMATE_H
#define SAMEPAGE_ESTIMATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a process could not be estimated (est_proc.error). */
enum est_error {
	EST_OK = 0,
	EST_NO_SUCH_PROCESS,	/* no /proc/PID when the estimate started */
	EST_PERMISSION,		/* its memory may not be read by us */
	EST_EXITED,		/* it went away while being read */
	EST_FAILED,		/* another error (errno in est_proc.errnum) */
};

struct est_counters {
	unsigned long pages;		/* resident private anonymous pages read */
	unsigned long zero_pages;	/* of those, filled with zeros */
	unsigned long pages_volatile;	/* of those, changed while being read */
	long pages_shared;		/* KSM pages the kernel would keep */
	long pages_sharing;		/* mappings saved: the pages given back */
	unsigned long saved_bytes;	/* pages_sharing * page size */
};

struct est_proc {
	int pid;			/* in: the process */
	enum est_error error;		/* out: EST_OK when reported */
	int errnum;			/* out: the errno behind error */
	char comm[32];			/* out: /proc/PID/comm */
	struct est_counters c;		/* out: this process alone */
	long merging_pages;		/* out: ksm_merging_pages (kernel's
					 * /proc/PID/ksm_stat) when all the
					 * processes merge together */
	unsigned long shared_frames;	/* out: pages mapped more than once
					 * (fork) whose frame we could not see */
};

/* Progress of the reading, for the command's progress line. */
struct est_progress {
	int pid;
	int pass;			/* 1, 2: the two reads; 3: verification */
	unsigned long pages_done;	/* in this pass, this process */
	unsigned long pages_total;
	double seconds;			/* since the estimate started */
	uint64_t bytes_read;		/* so far, all passes and processes */
};
typedef void (*est_progress_fn)(void *arg, const struct est_progress *p);

struct est_opts {
	bool mergeable;			/* only VMAs with the `mg` VmFlag */
	double rate_mib;		/* read at most this many MiB/s; 0: no bound */
	est_progress_fn progress;	/* may be NULL; called after each batch */
	void *progress_arg;
	/* For tests: give the engine every page, unique ones included. */
	bool engine_all_pages;
	/* For tests: called between the first and the second read. */
	void (*between_passes)(void *arg);
	void *between_arg;
};

struct est_stats {
	double read_seconds;		/* the reads (all passes), hashing included */
	double engine_seconds;		/* the engine's full scans */
	double total_seconds;
	uint64_t bytes_read;		/* every byte read from the targets */
	unsigned long groups;		/* contents present more than once */
	unsigned long engine_pages;	/* pages given to the engine */
	unsigned int full_scans;	/* of the joint run, until converged */
	bool pfns_visible;		/* pagemap showed PFNs (CAP_SYS_ADMIN) */
};

/*
 * estimate_run - estimate @n processes.  Fills procs[i] (error set for those
 * that could not be estimated; they are left out of @total), @total (all the
 * reported processes merged together), and @stats (may be NULL).  Returns 0
 * when it ran (even if some processes failed), or a negative errno when it
 * could not (out of memory).
 */
int estimate_run(const struct est_opts *o, struct est_proc *procs, size_t n,
		 struct est_counters *total, struct est_stats *stats);

/* A sentence for procs[i].error, naming the privilege needed when it is one. */
const char *estimate_strerror(const struct est_proc *p, char *buf, size_t size);

/* ---- shared between the files of src/estimate ---- */

#define EST_PAGE_SIZE 4096UL

/* One page found in a target, and what the reads made of it. */
struct est_page {
	uint64_t addr;			/* virtual address in the target */
	uint64_t pfn;			/* from pagemap; 0 if not visible */
	uint64_t hash;			/* XXH3-64 of the first read */
	uint32_t group;			/* dedup group after the second read */
	uint8_t flags;			/* EST_PG_* */
};
#define EST_PG_EXCLUSIVE	0x01	/* pagemap: mapped exactly once */
#define EST_PG_VOLATILE		0x02	/* changed (or vanished) between reads */
#define EST_PG_ZERO		0x04	/* all zeros */
#define EST_PG_SKIP		0x08	/* not a page KSM would scan (the shared
					 * zero page) or unreadable: not counted */
#define EST_PG_GROUPED		0x10	/* group is valid */
#define EST_NO_GROUP		UINT32_MAX

/* proc.c: one target. */
struct est_target {
	int pid;
	int dirfd;			/* /proc/PID, or -1 */
	int pidfd;			/* pidfd_open(PID), or -1: exit detection */
	int memfd;			/* /proc/PID/mem, or -1 */
	struct est_page *pages;
	size_t nr_pages, cap_pages;
	bool gone;			/* ESRCH seen */
	bool no_pagemap_scan;		/* the kernel has no PAGEMAP_SCAN */
	bool zero_page_known;		/* PAGEMAP_SCAN left out zero-page ptes */
};

int est_target_open(struct est_target *t, int pid, char *comm, size_t comm_size);
void est_target_close(struct est_target *t);
/* The pages of its eligible VMAs that pagemap shows present and anonymous. */
int est_target_find_pages(struct est_target *t, bool mergeable, uint64_t zero_pfn);
bool est_target_exited(struct est_target *t);
/* The PFN of the shared zero page (0 if PFNs are not visible to us). */
uint64_t est_zero_pfn(void);
/* Whether the frame @pfn is a KSM page (/proc/kpageflags), false if unknown. */
bool est_pfn_is_ksm(int kpageflags_fd, uint64_t pfn);

/*
 * The reader: reads pages [idx[0..n)] of @t (indexes into t->pages) into
 * @buf (n pages), in one process_vm_readv per batch.  ok[i] says whether
 * page i could be read.  Returns 0, or -ESRCH when the target is gone.
 */
#define EST_BATCH 256
int est_read_pages(struct est_target *t, const uint32_t *idx, size_t n, void *buf,
		   bool *ok);

/* dedup.c: groups of identical content. */
struct est_dedup;
/* @keep_all: store every content at its first page (no later check needed). */
int est_dedup_create(struct est_dedup **d, size_t expected_pages, bool keep_all);
void est_dedup_destroy(struct est_dedup *d);
/*
 * Add one page (owner: target @t, page index @i) of content @data and hash
 * @hash.  Sets *group.  The first page of a group is not kept in memory;
 * its content is stored when a second page with its hash comes, and the
 * first one must then be checked again (est_dedup_unverified).
 */
int est_dedup_add(struct est_dedup *d, const void *data, uint64_t hash,
		  uint32_t t, uint32_t i, uint32_t *group);
unsigned long est_dedup_groups(const struct est_dedup *d);
uint32_t est_dedup_count(const struct est_dedup *d, uint32_t group);
void est_dedup_drop(struct est_dedup *d, uint32_t group);	/* count-- */
/* The content of a group seen at least twice (NULL otherwise). */
const void *est_dedup_data(const struct est_dedup *d, uint32_t group);
/* The first page of the group, if its content still needs checking. */
bool est_dedup_unverified(const struct est_dedup *d, uint32_t group,
			  uint32_t *t, uint32_t *i);
void est_dedup_verified(struct est_dedup *d, uint32_t group);

/* snapshot.c: the engine over read-only snapshots. */
struct est_snap;
int est_snap_create(struct est_snap **s);
void est_snap_destroy(struct est_snap *s);
/* A new address space; returns its index. */
int est_snap_add_mm(struct est_snap *s, uint32_t *mm);
/*
 * Append a page to address space @mm (pages get consecutive vpns), with
 * content @data (must stay valid) and frame identity @frame_key: pages with
 * the same nonzero key are one physical page mapped several times (fork);
 * key 0 means a frame of its own.
 */
int est_snap_add_page(struct est_snap *s, uint32_t mm, const void *data,
		      uint64_t frame_key);
/*
 * Run the engine with the kernel's default knobs over the address spaces
 * @mms[0..n) until a full scan changes nothing (at least 3 full scans).
 * Gives the global counters and each mm's ksm_merging_pages (may be NULL).
 */
int est_snap_converge(struct est_snap *s, const uint32_t *mms, size_t n,
		      long *pages_shared, long *pages_sharing, long *merging,
		      unsigned int *full_scans);

#endif /* SAMEPAGE_ESTIMATE_H */

/* SPDX-License-Identifier: MIT */
/*
 * sim.h - the simulated NUMA machine and the scenario language.
 *
 * A struct sim is one machine: NUMA nodes of page frames, address spaces
 * (mm) with VMAs and page tables, copy-on-write, fork/exit, migration,
 * memory hot-remove and swap, plus one KSM engine (src/core) that sees the
 * machine only through the backend contract of src/core/backend.h.  It is
 * single-threaded and deterministic: the same script and seed always give
 * the same result.
 *
 * Every virtual page also carries a shadow: what it must contain, derived
 * from the fills and byte writes alone (never from the frames).  sim_check()
 * compares the real content of every page with its shadow, recounts frame
 * references, checks copy-on-write protection, and runs the engine's own
 * checker.
 *
 * Two ways to drive a machine:
 *   - the scenario language (DESIGN.md), one command per line, through
 *     sim_run_line(), sim_run_string() or sim_run_file();
 *   - the typed calls below (sim_machine(), sim_mmap(), sim_fill(), ...),
 *     which the language is built on; they return 0 or a negative errno.
 *
 * Content of fills (for expect-byte writers):
 *   VALUE   every byte is VALUE;
 *   seq     page i of the fill: bytes 0-7 hold i (64-bit little endian),
 *           byte 8 is 0x5a, the rest are a fixed pseudo-random function of
 *           i.  The same in every mm and every run, never all zero;
 *   random  bytes 0-7 hold a key unique to this fill of this page (drawn
 *           from the seed), byte 8 is 0xa5, the rest derived from the key.
 */
#ifndef SAMEPAGE_SIM_H
#define SAMEPAGE_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ksm.h"

struct sim;

/* Results of sim_run_line(), sim_run_string(), sim_run_file(). */
#define SIM_OK		0	/* the command(s) succeeded, expectations held */
#define SIM_FAILED	1	/* an expectation failed (or a command failed) */
#define SIM_USAGE	2	/* syntax or usage error */

/* Limits of the machine (a larger request is -EINVAL). */
#define SIM_MAX_NODES		64
#define SIM_MAX_FRAMES		(1ul << 26)	/* nodes * pages */
#define SIM_MIN_PAGE_SIZE	64
#define SIM_MAX_PAGE_SIZE	65536
#define SIM_VPN_LIMIT		(1ull << 36)	/* VPN + NPAGES <= this */
#define SIM_MAX_MAP_PAGES	(1ull << 24)	/* one mmap (larger: -ENOMEM) */
#define SIM_NAME_MAX		32		/* mm names, with the NUL */

/* The default of --seed. */
#define SIM_DEFAULT_SEED	20130223ul

/* Lifetime.  sim_free() destroys the engine without unmerging. */
int sim_new(struct sim **sp, unsigned long seed);
void sim_free(struct sim *s);

/*
 * The scenario language.  sim_run_line() runs one line (comments and blank
 * lines are fine).  sim_run_string() runs a whole text, sim_run_file() a
 * file ("-" is stdin); they stop at the first line that does not return
 * SIM_OK, and sim_error() then starts with "NAME:LINE: ".  Output of
 * `stats` and `echo` goes to stdout unless sim_set_output() says otherwise
 * (NULL discards it).
 */
int sim_run_line(struct sim *s, const char *line);
int sim_run_string(struct sim *s, const char *name, const char *text);
int sim_run_file(struct sim *s, const char *path);
const char *sim_error(const struct sim *s);
void sim_set_output(struct sim *s, FILE *out);

/*
 * Reading scripts (sim_run_file() and `samepage sim --keep-going`).
 * sim_open_script() opens @path ("-": stdin): 0, -EISDIR for a directory, or
 * fopen's negative errno.  sim_read_line() reads one line into @buf of @size
 * bytes (at least SIM_MAX_LINE + 1), without its newline: 1 a line, 0 the
 * end of the file, -E2BIG a line longer than SIM_MAX_LINE characters (the
 * rest of the file is not read), -EILSEQ a NUL byte in the line, or the read's
 * negative errno.
 */
#define SIM_MAX_LINE	4096
int sim_open_script(const char *path, FILE **f);
int sim_read_line(FILE *f, char *buf, size_t size);
/* Where `check` writes every finding, one per line (default NULL: only the
 * first is in sim_error()). */
void sim_set_diag(struct sim *s, FILE *diag);

/* The engine of this machine (NULL before the machine line). */
struct ksm *sim_ksm(struct sim *s);

/*
 * The backend's cond_resched() calls @fn (once at a time, never nested)
 * while the engine walks address spaces, e.g. inside run=2's unmerge.  From
 * there only commands that do not re-enter the engine's locked paths work:
 * fork, write, fill, swapin, swapout, migrate, expect...; set, scan, exit,
 * madvise unmergeable, offline and check fail with -EBUSY.
 */
void sim_set_resched_hook(struct sim *s, void (*fn)(struct sim *, void *),
			  void *arg);

/*
 * The consistency checker: frame reference counts equal a recount of the
 * ptes, no writable pte maps a KSM frame or a frame mapped twice, free
 * frames carry no back pointer, every virtual page reads what its shadow
 * says, per-mm and global ksm_zero_pages equal the KSM zero ptes, the
 * engine never misused the backend; then ksm_check().  Each finding goes
 * to @report (may be NULL).  Returns the number of findings.
 */
int sim_check(struct sim *s, ksm_report_fn report, void *arg);
/* The same without ksm_check(): the machine's side only (to tell whose
 * finding it is). */
int sim_check_machine(struct sim *s, ksm_report_fn report, void *arg);

/* Typed API: the commands of the language.  0 or a negative errno. */
enum sim_fill_kind {
	SIM_FILL_BYTE,		/* every byte the same value */
	SIM_FILL_SEQ,		/* page i of the fill gets content i */
	SIM_FILL_RANDOM,	/* content unique to this page */
};
enum sim_advice { SIM_MERGEABLE, SIM_UNMERGEABLE };

int sim_machine(struct sim *s, int nodes, unsigned long pages_per_node,
		size_t page_size);
int sim_mm_new(struct sim *s, const char *name, int node);
int sim_mmap(struct sim *s, const char *mm, uint64_t vpn, uint64_t npages,
	     bool mergeable);
int sim_madvise(struct sim *s, const char *mm, uint64_t vpn, uint64_t npages,
		enum sim_advice advice);
int sim_munmap(struct sim *s, const char *mm, uint64_t vpn, uint64_t npages);
int sim_fill(struct sim *s, const char *mm, uint64_t vpn, uint64_t npages,
	     enum sim_fill_kind kind, uint8_t value);
int sim_write(struct sim *s, const char *mm, uint64_t vpn, size_t offset,
	      uint8_t value);
int sim_read(struct sim *s, const char *mm, uint64_t vpn, size_t offset,
	     uint8_t *value);		/* reads without faulting anything in */
int sim_fork(struct sim *s, const char *parent, const char *child);
int sim_exit(struct sim *s, const char *mm);
int sim_migrate(struct sim *s, const char *mm, uint64_t vpn, int node);
int sim_offline(struct sim *s, int node);
int sim_swapout(struct sim *s, const char *mm, uint64_t vpn);
int sim_swapin(struct sim *s, const char *mm, uint64_t vpn);
int sim_set(struct sim *s, const char *knob, unsigned long value);
/* Scan as ksmd would with run=1 (nothing otherwise): batches of
 * pages_to_scan, the virtual clock advancing sleep_millisecs per batch. */
int sim_scan(struct sim *s, unsigned long npages);
int sim_scan_full(struct sim *s, unsigned int nscans);

/* What a virtual page maps now. */
enum sim_pte_kind {
	SIM_PTE_NONE,		/* not present (inside a VMA) */
	SIM_PTE_PRESENT,	/* a page frame */
	SIM_PTE_SWAP,		/* a swap entry (refers to a swap-cache frame) */
	SIM_PTE_ZERO,		/* the shared zero page */
};
struct sim_page_info {
	enum sim_pte_kind kind;
	bool writable;		/* PRESENT: pte writable */
	bool ksm_zero;		/* ZERO: placed by KSM (use_zero_pages) */
	uint64_t pfn;		/* PRESENT, SWAP: the frame */
	int nid;		/* PRESENT, SWAP: node of the frame */
	bool ksm;		/* PRESENT, SWAP: frame is PageKsm */
	bool swapcache;		/* PRESENT, SWAP: frame is in swap cache */
	unsigned int mapcount;	/* PRESENT, SWAP: ptes mapping the frame */
	unsigned int swapcount;	/* PRESENT, SWAP: swap ptes referring to it */
	const struct stable_node *stable_node;	/* the frame's back pointer */
};
/* -ENOENT unknown mm, -EFAULT vpn outside every VMA. */
int sim_page_info(struct sim *s, const char *mm, uint64_t vpn,
		  struct sim_page_info *info);

/* The mm cookie the engine knows (for ksm_mm_get()), or NULL. */
void *sim_mm_cookie(struct sim *s, const char *mm);
/* Machine geometry and state. */
int sim_nr_nodes(const struct sim *s);
unsigned long sim_pages_per_node(const struct sim *s);
size_t sim_page_size(const struct sim *s);
unsigned long sim_free_frames(const struct sim *s, int node);
uint64_t sim_now_ms(const struct sim *s);

/*
 * For tests of the checker: change one byte of frame @pfn behind the
 * machine's back (no copy-on-write, no shadow update).  -EINVAL if the
 * frame is not allocated.
 */
int sim_poke(struct sim *s, uint64_t pfn, size_t offset, uint8_t value);

/* Errno names for expect-error: "EBUSY" <-> EBUSY.  NULL / 0 if unknown. */
const char *sim_errno_name(int err);
int sim_errno_value(const char *name);

#endif /* SAMEPAGE_SIM_H */

/* SPDX-License-Identifier: MIT */
/*
 * sim_internal.h - the structures of the simulated machine, shared by the
 * files of src/sim/ and by nothing else.
 *
 * Glossary
 *   frame    one physical page frame.  Frame number (pfn) f lies on node
 *            f / pages_per_node.  Content is a reference-counted blob
 *            (NULL = all zero), shared between frames until one is written
 *            (content-level copy-on-write, invisible to the engine: it only
 *            makes fills and copies cheap).
 *   mm       an address space: sorted VMAs and a page table.
 *   vpage    one virtual page: its pte and its shadow.
 *   shadow   what a virtual page must contain, from fills and writes only.
 *
 * Frame states
 *   free       !FRAME_ALLOC; no content, no flags, no back pointer.
 *   mapped     mapcount > 0 (and maybe swapcount > 0, FRAME_SWAPCACHE).
 *   swapped    mapcount == 0, swapcount > 0, FRAME_SWAPCACHE.
 *   lingering  mapcount == 0, swapcount == 0, FRAME_SWAPCACHE: nobody refers
 *              to it, but it stays (keeping FRAME_KSM and its back pointer)
 *              until allocation pressure on its node or hot-remove frees
 *              it (seed 002, cause 1).
 */
#ifndef SAMEPAGE_SIM_INTERNAL_H
#define SAMEPAGE_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"
#include "ksm.h"
#include "backend.h"

/* Content of a frame: shared, copy-on-write at the content level. */
struct blob {
	uint32_t ref;		/* holders: frames and the machine's caches */
	bool hash_ok;		/* hash is valid (cleared on every change) */
	uint64_t hash;		/* XXH3 of data, when hash_ok */
	unsigned char data[];	/* page_size bytes */
};

#define FRAME_ALLOC	0x01	/* allocated */
#define FRAME_KSM	0x02	/* PageKsm: write-protected, never written */
#define FRAME_SWAPCACHE	0x04	/* in swap cache (swapped, or lingering) */

#define FRAME_NIL	UINT32_MAX	/* end of a free list */

struct frame {
	struct blob *content;		/* NULL: all zero; valid when allocated */
	struct stable_node *stable_node; /* back pointer, only via set_stable_node */
	uint32_t mapcount;		/* present ptes mapping it */
	uint32_t swapcount;		/* swap ptes referring to it */
	uint32_t next_free;		/* free list link (free frames only) */
	uint8_t flags;			/* FRAME_* */
};

/* Frames are kept in chunks, allocated when first used. */
#define FRAME_CHUNK_SHIFT	12
#define FRAME_CHUNK		(1u << FRAME_CHUNK_SHIFT)

struct sim_node {
	uint64_t first_pfn;	/* node n: [n * pages, (n + 1) * pages) */
	uint32_t hwm;		/* frames [0, hwm) of the node were used once */
	uint32_t free_head;	/* free list of used-then-freed frames (pfns) */
	uint32_t nr_alloc;	/* allocated frames */
	uint32_t nr_lingering;	/* lingering swap-cache frames (see above) */
	bool online;		/* false after offline: allocates nothing */
};

/* pte kinds: enum sim_pte_kind values */
#define PTE_NONE	SIM_PTE_NONE
#define PTE_PRESENT	SIM_PTE_PRESENT
#define PTE_SWAP	SIM_PTE_SWAP
#define PTE_ZERO	SIM_PTE_ZERO

/* shadow kinds */
#define SH_ZERO		0	/* never written: all zero */
#define SH_BYTE		1	/* every byte sh_byte */
#define SH_SEQ		2	/* seq content of index sh_arg */
#define SH_RANDOM	3	/* random content of key sh_arg */

/* Single-byte writes on top of a shadow's base content. */
struct overlay {
	uint32_t nr, cap;
	struct overlay_byte { uint16_t off; uint8_t val; } e[];	/* sorted by off */
};

struct vpage {
	uint8_t kind;		/* PTE_* */
	uint8_t writable : 1;	/* PRESENT: may be written without a fault */
	uint8_t ksm_zero : 1;	/* ZERO: KSM placed it (ksm_zero_page_unmapped) */
	uint8_t sh_kind;	/* SH_* */
	uint8_t sh_byte;	/* SH_BYTE: the value */
	uint32_t pfn;		/* PRESENT, SWAP: the frame */
	uint64_t sh_arg;	/* SH_SEQ: index; SH_RANDOM: key */
	uint64_t sh_hash;	/* XXH3 of the expected content (base + overlay) */
	struct overlay *sh_over;	/* byte writes since the last fill, or NULL */
};

/* Page tables are hashed chunks of PT_CHUNK consecutive virtual pages. */
#define PT_CHUNK_SHIFT	9
#define PT_CHUNK	(1u << PT_CHUNK_SHIFT)

struct ptchunk {
	uint64_t idx;			/* first vpn >> PT_CHUNK_SHIFT */
	struct vpage v[PT_CHUNK];
};

struct vma {
	uint64_t start, end;	/* [start, end) in pages, non-empty */
	bool mergeable;		/* MADV_MERGEABLE */
};

struct sim_mm {
	char name[SIM_NAME_MAX];
	int home;			/* node it allocates on */
	struct vma *vmas;		/* sorted, disjoint, adjacent equal ones merged */
	size_t nr_vmas, cap_vmas;
	struct ptchunk **pt;		/* open addressing on idx; NULL = empty */
	size_t pt_cap, pt_used;		/* pt_cap is a power of two or 0 */
	struct sim_mm *next;		/* all mms, in creation order */
};

struct sim {
	/* the machine (valid once have_machine) */
	bool have_machine;
	int nr_nodes;
	uint32_t node_pages;		/* frames per node */
	size_t page_size;
	struct sim_node nodes[SIM_MAX_NODES];
	struct frame **fchunks;		/* pfn >> FRAME_CHUNK_SHIFT */
	size_t nr_fchunks;
	unsigned char *zero_page;	/* page_size zero bytes */
	uint64_t zero_hash;
	struct blob *byte_blobs[256];	/* cached content of `fill VALUE` */
	struct blob **seq_blobs;	/* cached content of `fill seq` by index */
	size_t nr_seq_blobs;
	uint64_t byte_hash[256];	/* shadow side: hash of a VALUE page */
	uint8_t byte_hash_ok[256];
	uint64_t *seq_hash;		/* shadow side: hash of seq index i, or 0 */
	size_t nr_seq_hash;
	unsigned char *scratch;		/* page_size bytes of work space */

	struct sim_mm *mms;
	struct sim_mm *graveyard;	/* exited mms, kept so that no cookie is reused */

	/* the engine */
	struct ksm *ksm;
	struct sp_backend backend;
	uint64_t clock_ms;		/* the virtual clock (now_ms) */

	/* random content */
	uint64_t seed;
	uint64_t rng_counter;

	/* scripted interleavings */
	void (*resched_fn)(struct sim *, void *);
	void *resched_arg;
	bool in_resched;

	/* protocol errors of the engine seen by the backend (checker findings) */
	unsigned long misuse;
	char misuse_msg[160];

	/* the interpreter */
	FILE *out;			/* stats, echo (NULL: discarded) */
	FILE *diag;			/* checker findings (NULL: quiet) */
	bool out_set;
	char (*ghosts)[SIM_NAME_MAX];	/* names of mms that exited */
	size_t nr_ghosts;
	char err[512];
	unsigned long lineno;
	int depth;			/* expect-error nesting */
};

/* machine.c: frames, nodes, content */
struct frame *frame_of(const struct sim *s, uint64_t pfn);	/* NULL if never used */
bool pfn_valid(const struct sim *s, uint64_t pfn);
int pfn_nid(const struct sim *s, uint64_t pfn);
int frame_alloc(struct sim *s, int node, bool fallback, uint64_t *pfn);
void frame_release(struct sim *s, uint64_t pfn);	/* after a count dropped */
void frame_free(struct sim *s, uint64_t pfn);
const unsigned char *frame_data(const struct sim *s, const struct frame *f);
uint64_t frame_hash(struct sim *s, struct frame *f);
int frame_write_byte(struct sim *s, struct frame *f, size_t off, uint8_t val);
void frame_set_content(struct sim *s, struct frame *f, struct blob *b);
int frame_copy(struct sim *s, uint64_t from, int node, bool fallback, uint64_t *pfn);
bool frame_is_lingering(const struct frame *f);
void frame_revive(struct sim *s, uint64_t pfn);	/* lingering -> mapped */
void blob_put(struct blob *b);
int content_blob(struct sim *s, int kind, uint8_t byte, uint64_t arg,
		 struct blob **bp);	/* a reference to the content of a fill */
void gen_content(const struct sim *s, int kind, uint8_t byte, uint64_t arg,
		 unsigned char *buf);
uint64_t mix64(uint64_t x);
void machine_destroy(struct sim *s);
int machine_init(struct sim *s, int nodes, unsigned long pages, size_t page_size);
void sim_misuse(struct sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* mm.c: address spaces */
struct sim_mm *mm_find(const struct sim *s, const char *name);
struct vma *vma_find(const struct sim_mm *mm, uint64_t vpn);
struct vpage *vp_lookup(const struct sim_mm *mm, uint64_t vpn);
int mm_unmerge_range(struct sim *s, struct sim_mm *mm, uint64_t start, uint64_t end);
int fault_swapin(struct sim *s, struct sim_mm *mm, struct vpage *vp, bool for_unmerge);
void mm_destroy_all(struct sim *s);
/* Iterate every vpage with a pte in [start, end): fn returns 0 to go on. */
int mm_walk(struct sim_mm *mm, uint64_t start, uint64_t end,
	    int (*fn)(void *arg, struct sim_mm *mm, uint64_t vpn, struct vpage *vp),
	    void *arg);

/* shadow.c: expected content */
void shadow_set(struct sim *s, struct vpage *vp, int kind, uint8_t byte, uint64_t arg);
int shadow_write_byte(struct sim *s, struct vpage *vp, size_t off, uint8_t val);
void shadow_clear(struct sim *s, struct vpage *vp);
int shadow_copy(struct vpage *dst, const struct vpage *src);
uint8_t shadow_byte(struct sim *s, const struct vpage *vp, size_t off);

/* backend.c */
extern const struct sp_backend_ops sim_backend_ops;

#endif /* SAMEPAGE_SIM_INTERNAL_H */

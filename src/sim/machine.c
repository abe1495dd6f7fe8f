/* SPDX-License-Identifier: MIT */
/*
 * machine.c - the physical side of the simulated NUMA machine: nodes, page
 * frames, their allocation and reclaim, and page content.
 *
 * Frame numbers are global: node n owns [n * P, (n + 1) * P).  A node hands
 * out never-used frames in order, then frames from its free list.  When it
 * has neither, it reclaims a lingering swap-cache frame (nobody refers to
 * it any more); only then do callers that allow it fall back to the other
 * nodes, in node order.  An offline node allocates nothing.
 *
 * Content lives in reference-counted blobs so that a fill of thousands of
 * identical pages and a copy-on-write copy cost no memcpy.  A blob is
 * written in place only while one frame holds it.  This sharing is below
 * the machine's model: frames still have distinct content as far as the
 * engine and the checker can tell.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "sim_internal.h"

#define SEQ_CACHE_MAX	65536	/* seq indexes whose content is cached */
#define FRAME_LINGER	0x08	/* counted in nr_lingering */

uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser: a bijection on 64-bit values */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/*
 * The content of a page filled with (kind, byte, arg).  Used both for the
 * frames and, separately, for the shadow's expected hash.
 */
void gen_content(const struct sim *s, int kind, uint8_t byte, uint64_t arg,
		 unsigned char *buf)
{
	size_t ps = s->page_size;
	uint64_t domain, state;

	switch (kind) {
	case SH_BYTE:
		memset(buf, byte, ps);
		return;
	case SH_SEQ:
		domain = 0x5e9c0de5e9c0de00ull;
		break;
	case SH_RANDOM:
		domain = 0x7a11d0a7a11d0a00ull;
		break;
	default:
		memset(buf, 0, ps);
		return;
	}
	state = mix64(arg ^ domain);
	for (size_t off = 0; off < ps; off += 8)
		put_le64(buf + off, mix64(state + off));
	put_le64(buf, arg);
	buf[8] = kind == SH_SEQ ? 0x5a : 0xa5;
}

static struct blob *blob_new(const struct sim *s)
{
	struct blob *b = malloc(sizeof(*b) + s->page_size);

	if (!b)
		return NULL;
	b->ref = 1;
	b->hash_ok = false;
	b->hash = 0;
	return b;
}

void blob_put(struct blob *b)
{
	if (b && --b->ref == 0)
		free(b);
}

static struct blob *blob_get(struct blob *b)
{
	if (b)
		b->ref++;
	return b;
}

/* A new reference to the content of a fill; *bp = NULL means all zero. */
int content_blob(struct sim *s, int kind, uint8_t byte, uint64_t arg,
		 struct blob **bp)
{
	struct blob *b;

	*bp = NULL;
	if (kind == SH_ZERO || (kind == SH_BYTE && byte == 0))
		return 0;
	if (kind == SH_BYTE && s->byte_blobs[byte]) {
		*bp = blob_get(s->byte_blobs[byte]);
		return 0;
	}
	if (kind == SH_SEQ && arg < s->nr_seq_blobs && s->seq_blobs[arg]) {
		*bp = blob_get(s->seq_blobs[arg]);
		return 0;
	}
	b = blob_new(s);
	if (!b)
		return -ENOMEM;
	gen_content(s, kind, byte, arg, b->data);
	if (kind == SH_BYTE) {
		s->byte_blobs[byte] = blob_get(b);
	} else if (kind == SH_SEQ && arg < SEQ_CACHE_MAX) {
		if (arg >= s->nr_seq_blobs) {
			size_t n = s->nr_seq_blobs ? s->nr_seq_blobs : 256;
			struct blob **nb;

			while (n <= arg)
				n *= 2;
			nb = realloc(s->seq_blobs, n * sizeof(*nb));
			if (nb) {
				memset(nb + s->nr_seq_blobs, 0,
				       (n - s->nr_seq_blobs) * sizeof(*nb));
				s->seq_blobs = nb;
				s->nr_seq_blobs = n;
			}
		}
		if (arg < s->nr_seq_blobs)	/* else: uncached, still fine */
			s->seq_blobs[arg] = blob_get(b);
	}
	*bp = b;
	return 0;
}

static uint64_t total_frames(const struct sim *s)
{
	return (uint64_t)s->nr_nodes * s->node_pages;
}

bool pfn_valid(const struct sim *s, uint64_t pfn)
{
	return s->have_machine && pfn < total_frames(s);
}

int pfn_nid(const struct sim *s, uint64_t pfn)
{
	/* Every page lookup asks; spare the division on one node. */
	if (s->nr_nodes == 1)
		return 0;
	return (int)(pfn / s->node_pages);
}

struct frame *frame_of(const struct sim *s, uint64_t pfn)
{
	struct frame *chunk;

	if (!pfn_valid(s, pfn))
		return NULL;
	chunk = s->fchunks[pfn >> FRAME_CHUNK_SHIFT];
	return chunk ? &chunk[pfn & (FRAME_CHUNK - 1)] : NULL;
}

/* The frame @pfn, allocating its chunk if needed (NULL: out of memory). */
static struct frame *frame_slot(struct sim *s, uint64_t pfn)
{
	size_t c = pfn >> FRAME_CHUNK_SHIFT;

	if (!s->fchunks[c]) {
		s->fchunks[c] = calloc(FRAME_CHUNK, sizeof(struct frame));
		if (!s->fchunks[c])
			return NULL;
	}
	return &s->fchunks[c][pfn & (FRAME_CHUNK - 1)];
}

bool frame_is_lingering(const struct frame *f)
{
	return (f->flags & FRAME_LINGER) != 0;
}

void frame_free(struct sim *s, uint64_t pfn)
{
	struct frame *f = frame_of(s, pfn);
	struct sim_node *nd = &s->nodes[pfn_nid(s, pfn)];

	if (!f || !(f->flags & FRAME_ALLOC))
		return;
	if (f->flags & FRAME_LINGER)
		nd->nr_lingering--;
	blob_put(f->content);
	f->content = NULL;
	if (f->stable_node && s->ksm)
		ksm_page_gone(s->ksm);	/* its node is stale now */
	f->stable_node = NULL;
	f->mapcount = 0;
	f->swapcount = 0;
	f->flags = 0;
	f->next_free = nd->free_head;
	nd->free_head = (uint32_t)pfn;
	nd->nr_alloc--;
}

/* Free one lingering swap-cache frame of node @n (allocation pressure). */
static bool reclaim_one(struct sim *s, int n)
{
	struct sim_node *nd = &s->nodes[n];

	if (!nd->nr_lingering)
		return false;
	for (uint32_t i = 0; i < nd->hwm; i++) {
		uint64_t pfn = nd->first_pfn + i;
		struct frame *f = frame_of(s, pfn);

		if (f && (f->flags & FRAME_LINGER)) {
			frame_free(s, pfn);
			return true;
		}
	}
	return false;
}

static int node_alloc(struct sim *s, int n, uint64_t *pfnp)
{
	struct sim_node *nd = &s->nodes[n];
	struct frame *f;
	uint64_t pfn;

	if (!nd->online)
		return -ENOMEM;
	if (nd->free_head == FRAME_NIL && nd->hwm >= s->node_pages &&
	    !reclaim_one(s, n))
		return -ENOMEM;
	if (nd->free_head != FRAME_NIL) {
		pfn = nd->free_head;
		f = frame_of(s, pfn);
		nd->free_head = f->next_free;
	} else {
		pfn = nd->first_pfn + nd->hwm;
		f = frame_slot(s, pfn);
		if (!f)
			return -ENOMEM;
		nd->hwm++;
	}
	memset(f, 0, sizeof(*f));
	f->flags = FRAME_ALLOC;
	f->next_free = FRAME_NIL;
	nd->nr_alloc++;
	*pfnp = pfn;
	return 0;
}

/* A fresh zero-filled frame on @node, or (fallback) on any node in order. */
int frame_alloc(struct sim *s, int node, bool fallback, uint64_t *pfn)
{
	if (node_alloc(s, node, pfn) == 0)
		return 0;
	if (!fallback)
		return -ENOMEM;
	for (int n = 0; n < s->nr_nodes; n++)
		if (n != node && node_alloc(s, n, pfn) == 0)
			return 0;
	return -ENOMEM;
}

/* A new frame with the content of @from (not its flags). */
int frame_copy(struct sim *s, uint64_t from, int node, bool fallback,
	       uint64_t *pfn)
{
	int err = frame_alloc(s, node, fallback, pfn);

	if (err)
		return err;
	frame_of(s, *pfn)->content = blob_get(frame_of(s, from)->content);
	return 0;
}

/*
 * Called after a frame's mapcount or swapcount dropped: free it when nobody
 * refers to it, unless it is in swap cache (then it lingers); leave swap
 * cache when the last swap reference went while it is mapped.
 */
void frame_release(struct sim *s, uint64_t pfn)
{
	struct frame *f = frame_of(s, pfn);

	if (!f || !(f->flags & FRAME_ALLOC))
		return;
	if (f->mapcount == 0 && f->swapcount == 0) {
		if (!(f->flags & FRAME_SWAPCACHE)) {
			frame_free(s, pfn);
		} else if (!(f->flags & FRAME_LINGER)) {
			f->flags |= FRAME_LINGER;
			s->nodes[pfn_nid(s, pfn)].nr_lingering++;
		}
	} else if (f->swapcount == 0) {
		f->flags &= (uint8_t)~FRAME_SWAPCACHE;
	}
}

/*
 * A lingering swap-cache frame got a mapping again: the engine still knew
 * it as a valid KSM page (its back pointer was never cleared) and merged
 * a page into it.  It is an ordinary mapped frame from now on.
 */
void frame_revive(struct sim *s, uint64_t pfn)
{
	struct frame *f = frame_of(s, pfn);

	if (!f || !(f->flags & FRAME_LINGER))
		return;
	f->flags &= (uint8_t)~(FRAME_LINGER | FRAME_SWAPCACHE);
	s->nodes[pfn_nid(s, pfn)].nr_lingering--;
}

const unsigned char *frame_data(const struct sim *s, const struct frame *f)
{
	return f->content ? f->content->data : s->zero_page;
}

uint64_t frame_hash(struct sim *s, struct frame *f)
{
	struct blob *b = f->content;

	if (!b)
		return s->zero_hash;
	if (!b->hash_ok) {
		b->hash = XXH3_64bits(b->data, s->page_size);
		b->hash_ok = true;
	}
	return b->hash;
}

/* Make @f's content private to it (content level), then change one byte. */
int frame_write_byte(struct sim *s, struct frame *f, size_t off, uint8_t val)
{
	struct blob *b = f->content;

	if (!b || b->ref > 1) {
		struct blob *nb;

		if (!b && val == 0)
			return 0;
		nb = blob_new(s);
		if (!nb)
			return -ENOMEM;
		memcpy(nb->data, frame_data(s, f), s->page_size);
		blob_put(b);
		f->content = b = nb;
	}
	b->data[off] = val;
	b->hash_ok = false;
	return 0;
}

/* Replace @f's content with a reference the caller gives away. */
void frame_set_content(struct sim *s, struct frame *f, struct blob *b)
{
	(void)s;
	blob_put(f->content);
	f->content = b;
}

void sim_misuse(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->misuse++ == 0) {
		va_start(ap, fmt);
		vsnprintf(s->misuse_msg, sizeof(s->misuse_msg), fmt, ap);
		va_end(ap);
	}
}

int machine_init(struct sim *s, int nodes, unsigned long pages,
		 size_t page_size)
{
	uint64_t total;

	if (nodes < 1 || nodes > SIM_MAX_NODES || pages < 1 ||
	    pages > SIM_MAX_FRAMES)
		return -EINVAL;
	total = (uint64_t)nodes * pages;
	if (total > SIM_MAX_FRAMES)
		return -EINVAL;
	if (page_size < SIM_MIN_PAGE_SIZE || page_size > SIM_MAX_PAGE_SIZE ||
	    (page_size & (page_size - 1)))
		return -EINVAL;

	s->nr_nodes = nodes;
	s->node_pages = (uint32_t)pages;
	s->page_size = page_size;
	s->nr_fchunks = (size_t)((total + FRAME_CHUNK - 1) >> FRAME_CHUNK_SHIFT);
	s->fchunks = calloc(s->nr_fchunks, sizeof(*s->fchunks));
	s->zero_page = calloc(1, page_size);
	s->scratch = malloc(page_size);
	if (!s->fchunks || !s->zero_page || !s->scratch)
		return -ENOMEM;
	s->zero_hash = XXH3_64bits(s->zero_page, page_size);
	for (int n = 0; n < nodes; n++) {
		s->nodes[n].first_pfn = (uint64_t)n * pages;
		s->nodes[n].free_head = FRAME_NIL;
		s->nodes[n].online = true;
	}
	s->have_machine = true;
	return 0;
}

void machine_destroy(struct sim *s)
{
	for (size_t c = 0; c < s->nr_fchunks; c++) {
		struct frame *chunk = s->fchunks[c];

		if (!chunk)
			continue;
		for (size_t i = 0; i < FRAME_CHUNK; i++)
			if (chunk[i].flags & FRAME_ALLOC)
				blob_put(chunk[i].content);
		free(chunk);
	}
	free(s->fchunks);
	for (int i = 0; i < 256; i++)
		blob_put(s->byte_blobs[i]);
	for (size_t i = 0; i < s->nr_seq_blobs; i++)
		blob_put(s->seq_blobs[i]);
	free(s->seq_blobs);
	free(s->seq_hash);
	free(s->zero_page);
	free(s->scratch);
}

int sim_new(struct sim **sp, unsigned long seed)
{
	struct sim *s = calloc(1, sizeof(*s));

	*sp = NULL;
	if (!s)
		return -ENOMEM;
	s->seed = seed;
	s->out = stdout;
	*sp = s;
	return 0;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	if (s->ksm)
		ksm_destroy(s->ksm);
	s->ksm = NULL;
	mm_destroy_all(s);
	machine_destroy(s);
	free(s->ghosts);
	free(s);
}

struct ksm *sim_ksm(struct sim *s)
{
	return s->ksm;
}

void sim_set_resched_hook(struct sim *s, void (*fn)(struct sim *, void *),
			  void *arg)
{
	s->resched_fn = fn;
	s->resched_arg = arg;
}

void sim_set_output(struct sim *s, FILE *out)
{
	s->out = out;
	s->out_set = true;
}

void sim_set_diag(struct sim *s, FILE *diag)
{
	s->diag = diag;
}

int sim_nr_nodes(const struct sim *s)
{
	return s->have_machine ? s->nr_nodes : 0;
}

unsigned long sim_pages_per_node(const struct sim *s)
{
	return s->have_machine ? s->node_pages : 0;
}

size_t sim_page_size(const struct sim *s)
{
	return s->have_machine ? s->page_size : 0;
}

unsigned long sim_free_frames(const struct sim *s, int node)
{
	if (!s->have_machine || node < 0 || node >= s->nr_nodes ||
	    !s->nodes[node].online)
		return 0;
	return s->node_pages - s->nodes[node].nr_alloc;
}

uint64_t sim_now_ms(const struct sim *s)
{
	return s->clock_ms;
}

int sim_poke(struct sim *s, uint64_t pfn, size_t offset, uint8_t value)
{
	struct frame *f = frame_of(s, pfn);
	struct blob *b;

	if (!f || !(f->flags & FRAME_ALLOC) || offset >= s->page_size)
		return -EINVAL;
	/* give the frame its own blob, without anyone noticing */
	b = blob_new(s);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, frame_data(s, f), s->page_size);
	b->data[offset] = value;
	blob_put(f->content);
	f->content = b;
	return 0;
}

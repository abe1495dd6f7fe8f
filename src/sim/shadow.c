/* SPDX-License-Identifier: MIT */
/*
 * shadow.c - what every virtual page must contain.
 *
 * The shadow of a virtual page is computed from the commands alone: the
 * last whole-page fill (a byte value, a seq index or a random key) plus the
 * single-byte writes since, kept as a small sorted overlay.  It never looks
 * at a frame.  Its XXH3 hash is kept up to date so that the checker can
 * compare it cheaply with the (cached) hash of the real content.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "sim_internal.h"

#define SEQ_HASH_MAX	65536	/* seq indexes whose hash is cached */

static uint64_t base_hash(struct sim *s, int kind, uint8_t byte, uint64_t arg)
{
	switch (kind) {
	case SH_ZERO:
		return s->zero_hash;
	case SH_BYTE:
		if (!s->byte_hash_ok[byte]) {
			gen_content(s, kind, byte, arg, s->scratch);
			s->byte_hash[byte] = XXH3_64bits(s->scratch, s->page_size);
			s->byte_hash_ok[byte] = 1;
		}
		return s->byte_hash[byte];
	case SH_SEQ:
		if (arg < SEQ_HASH_MAX) {
			if (arg >= s->nr_seq_hash) {
				size_t n = s->nr_seq_hash ? s->nr_seq_hash : 256;
				uint64_t *nh;

				while (n <= arg)
					n *= 2;
				nh = realloc(s->seq_hash, n * sizeof(*nh));
				if (nh) {
					memset(nh + s->nr_seq_hash, 0,
					       (n - s->nr_seq_hash) * sizeof(*nh));
					s->seq_hash = nh;
					s->nr_seq_hash = n;
				}
			}
			if (arg < s->nr_seq_hash) {
				if (!s->seq_hash[arg]) {
					gen_content(s, kind, byte, arg, s->scratch);
					s->seq_hash[arg] = XXH3_64bits(s->scratch,
								       s->page_size);
				}
				return s->seq_hash[arg];
			}
		}
		break;
	default:
		break;
	}
	gen_content(s, kind, byte, arg, s->scratch);
	return XXH3_64bits(s->scratch, s->page_size);
}

/* Expected content of @vp into s->scratch. */
static void shadow_expected(struct sim *s, const struct vpage *vp)
{
	gen_content(s, vp->sh_kind, vp->sh_byte, vp->sh_arg, s->scratch);
	if (vp->sh_over)
		for (uint32_t i = 0; i < vp->sh_over->nr; i++)
			s->scratch[vp->sh_over->e[i].off] = vp->sh_over->e[i].val;
}

void shadow_set(struct sim *s, struct vpage *vp, int kind, uint8_t byte,
		uint64_t arg)
{
	free(vp->sh_over);
	vp->sh_over = NULL;
	vp->sh_kind = (uint8_t)kind;
	vp->sh_byte = byte;
	vp->sh_arg = arg;
	vp->sh_hash = base_hash(s, kind, byte, arg);
}

void shadow_clear(struct sim *s, struct vpage *vp)
{
	shadow_set(s, vp, SH_ZERO, 0, 0);
}

int shadow_write_byte(struct sim *s, struct vpage *vp, size_t off, uint8_t val)
{
	struct overlay *o = vp->sh_over;
	uint32_t lo = 0, hi = o ? o->nr : 0;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (o->e[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (o && lo < o->nr && o->e[lo].off == off) {
		o->e[lo].val = val;
	} else {
		if (!o || o->nr == o->cap) {
			uint32_t cap = o ? o->cap * 2 : 4;
			struct overlay *no = realloc(o, sizeof(*o) +
						     cap * sizeof(o->e[0]));

			if (!no)
				return -ENOMEM;
			if (!o)
				no->nr = 0;
			no->cap = cap;
			vp->sh_over = o = no;
		}
		memmove(&o->e[lo + 1], &o->e[lo], (o->nr - lo) * sizeof(o->e[0]));
		o->e[lo].off = (uint16_t)off;
		o->e[lo].val = val;
		o->nr++;
	}
	shadow_expected(s, vp);
	vp->sh_hash = XXH3_64bits(s->scratch, s->page_size);
	return 0;
}

int shadow_copy(struct vpage *dst, const struct vpage *src)
{
	dst->sh_kind = src->sh_kind;
	dst->sh_byte = src->sh_byte;
	dst->sh_arg = src->sh_arg;
	dst->sh_hash = src->sh_hash;
	dst->sh_over = NULL;
	if (src->sh_over) {
		size_t sz = sizeof(*src->sh_over) +
			    src->sh_over->cap * sizeof(src->sh_over->e[0]);

		dst->sh_over = malloc(sz);
		if (!dst->sh_over)
			return -ENOMEM;
		memcpy(dst->sh_over, src->sh_over, sz);
	}
	return 0;
}

uint8_t shadow_byte(struct sim *s, const struct vpage *vp, size_t off)
{
	shadow_expected(s, vp);
	return s->scratch[off];
}

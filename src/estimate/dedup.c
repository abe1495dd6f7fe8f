/* SPDX-License-Identifier: MIT */
/*
 * dedup.c - pages grouped by identical content, with one stored copy per
 * content seen at least twice.
 *
 * An open-addressing table maps the XXH3-64 of a page to its group.  The
 * hash only finds candidates; a page joins a group only if it equals the
 * group's stored copy byte for byte.  Unique pages (most pages of most
 * processes) are never copied: a group keeps the content of its second
 * page, and its first page, which was hashed but not kept, is compared with
 * that copy later by the caller (est_dedup_unverified), reading it again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "estimate.h"

#define STORE_CHUNK_PAGES 256	/* 1 MiB */

struct group {
	uint64_t hash;
	const void *data;		/* stored copy, NULL while seen once */
	uint32_t count;			/* pages in the group */
	uint32_t first_t, first_i;	/* its first page */
	bool unverified;		/* first page not yet compared with data */
};

struct est_dedup {
	struct group *groups;
	size_t nr_groups, cap_groups;
	uint32_t *table;		/* group index + 1; 0 = empty */
	size_t table_cap;
	void **chunks;			/* stored copies */
	size_t nr_chunks, cap_chunks, chunk_used;
	bool keep_all;			/* store every content at once */
};

static size_t slot_of(uint64_t hash, size_t cap)
{
	return (size_t)(hash ^ (hash >> 29)) & (cap - 1);
}

static int table_resize(struct est_dedup *d, size_t cap)
{
	uint32_t *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t g = 0; g < d->nr_groups; g++) {
		size_t j = slot_of(d->groups[g].hash, cap);

		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = (uint32_t)g + 1;
	}
	free(d->table);
	d->table = t;
	d->table_cap = cap;
	return 0;
}

int est_dedup_create(struct est_dedup **dp, size_t expected_pages, bool keep_all)
{
	struct est_dedup *d = calloc(1, sizeof(*d));
	size_t cap = 1024;
	int err;

	if (!d)
		return -ENOMEM;
	while (cap < expected_pages * 2 && cap < (1UL << 32))
		cap *= 2;
	err = table_resize(d, cap);
	if (err) {
		free(d);
		return err;
	}
	d->keep_all = keep_all;
	*dp = d;
	return 0;
}

void est_dedup_destroy(struct est_dedup *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nr_chunks; i++)
		free(d->chunks[i]);
	free(d->chunks);
	free(d->groups);
	free(d->table);
	free(d);
}

static const void *store(struct est_dedup *d, const void *data)
{
	void *dst;

	if (!d->nr_chunks || d->chunk_used == STORE_CHUNK_PAGES) {
		void *c;

		if (d->nr_chunks == d->cap_chunks) {
			size_t ncap = d->cap_chunks ? d->cap_chunks * 2 : 16;
			void **n = realloc(d->chunks, ncap * sizeof(*n));

			if (!n)
				return NULL;
			d->chunks = n;
			d->cap_chunks = ncap;
		}
		c = aligned_alloc(EST_PAGE_SIZE, STORE_CHUNK_PAGES * EST_PAGE_SIZE);
		if (!c)
			return NULL;
		d->chunks[d->nr_chunks++] = c;
		d->chunk_used = 0;
	}
	dst = (char *)d->chunks[d->nr_chunks - 1] + d->chunk_used++ * EST_PAGE_SIZE;
	memcpy(dst, data, EST_PAGE_SIZE);
	return dst;
}

int est_dedup_add(struct est_dedup *d, const void *data, uint64_t hash,
		  uint32_t t, uint32_t i, uint32_t *group)
{
	size_t j;

	if ((d->nr_groups + 1) * 2 > d->table_cap) {
		int err = table_resize(d, d->table_cap * 2);

		if (err)
			return err;
	}
	for (j = slot_of(hash, d->table_cap); d->table[j]; j = (j + 1) & (d->table_cap - 1)) {
		struct group *g = &d->groups[d->table[j] - 1];

		if (g->hash != hash)
			continue;
		if (!g->data) {
			/* Seen once: keep this copy; its first page is checked later. */
			g->data = store(d, data);
			if (!g->data)
				return -ENOMEM;
			g->unverified = true;
		} else if (memcmp(g->data, data, EST_PAGE_SIZE)) {
			continue;	/* a hash collision: another content */
		}
		g->count++;
		*group = d->table[j] - 1;
		return 0;
	}
	if (d->nr_groups >= UINT32_MAX - 1)
		return -E2BIG;
	if (d->nr_groups == d->cap_groups) {
		size_t ncap = d->cap_groups ? d->cap_groups * 2 : 1024;
		struct group *n = realloc(d->groups, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->groups = n;
		d->cap_groups = ncap;
	}
	d->groups[d->nr_groups] = (struct group){
		.hash = hash, .count = 1, .first_t = t, .first_i = i,
	};
	if (d->keep_all && !(d->groups[d->nr_groups].data = store(d, data)))
		return -ENOMEM;
	d->table[j] = (uint32_t)++d->nr_groups;
	*group = (uint32_t)d->nr_groups - 1;
	return 0;
}

unsigned long est_dedup_groups(const struct est_dedup *d)
{
	return d->nr_groups;
}

uint32_t est_dedup_count(const struct est_dedup *d, uint32_t group)
{
	return group < d->nr_groups ? d->groups[group].count : 0;
}

void est_dedup_drop(struct est_dedup *d, uint32_t group)
{
	if (group < d->nr_groups && d->groups[group].count)
		d->groups[group].count--;
}

const void *est_dedup_data(const struct est_dedup *d, uint32_t group)
{
	return group < d->nr_groups ? d->groups[group].data : NULL;
}

bool est_dedup_unverified(const struct est_dedup *d, uint32_t group, uint32_t *t,
			  uint32_t *i)
{
	const struct group *g;

	if (group >= d->nr_groups)
		return false;
	g = &d->groups[group];
	if (!g->unverified)
		return false;
	*t = g->first_t;
	*i = g->first_i;
	return true;
}

void est_dedup_verified(struct est_dedup *d, uint32_t group)
{
	if (group < d->nr_groups)
		d->groups[group].unverified = false;
}

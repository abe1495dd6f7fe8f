/* SPDX-License-Identifier: MIT */
/*
 * daemon_writers.h - writer threads inside a client of the daemon, each
 * checked against a shadow copy: plain stores of whole pages (a few
 * templates, the zero page among them, so that pages keep merging),
 * read(2) from a pipe into a page (a write by the kernel), atomic adds,
 * and reads compared with the shadow.  Each thread owns the pages i with
 * i % NWRITERS == its number, so its shadow needs no lock.
 */
#ifndef SAMEPAGE_TESTS_DAEMON_WRITERS_H
#define SAMEPAGE_TESTS_DAEMON_WRITERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "daemon_util.h"

#define NWRITERS 3
#define NTEMPLATES 4

struct writers {
	char *mem, *shadow;	/* registered; not registered */
	size_t npg;
	unsigned int seed;
	int idx;
	_Atomic bool stop;
	atomic_long ops[NWRITERS];
	pthread_t t[NWRITERS];
	int pipe[NWRITERS][2];
	char *tmpl[NTEMPLATES];
};

static struct writers W;

static void template_fill(char *p, int t)
{
	if (t == 0) {
		memset(p, 0, page_size());
		return;
	}
	for (size_t k = 0; k < page_size(); k += 8)
		memcpy(p + k, &(uint64_t){ 0x1000000000000000ull * (uint64_t)t + k }, 8);
}

static unsigned int rnd(unsigned int *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void writer_fail(size_t pg, const char *how)
{
	const char *m = W.mem + pg * page_size(), *sh = W.shadow + pg * page_size();
	size_t k = 0;

	while (k < page_size() && m[k] == sh[k])
		k++;
	FAIL("process %d (seed %u): page %zu differs from its shadow at byte %zu "
	     "(%d, expected %d) after %s", W.idx, W.seed, pg, k, m[k], sh[k], how);
}

static void *writer_main(void *arg)
{
	int w = (int)(intptr_t)arg;
	unsigned int s = W.seed * 31u + (unsigned int)w;
	size_t mine = (W.npg + NWRITERS - 1 - (size_t)w) / NWRITERS;

	while (!atomic_load(&W.stop)) {
		size_t pg = (size_t)w + NWRITERS * (rnd(&s) % mine);
		char *m = W.mem + pg * page_size(), *sh = W.shadow + pg * page_size();
		unsigned int op = rnd(&s) % 8;

		if (op < 3) {		/* a whole page from a template */
			int t = (int)(rnd(&s) % NTEMPLATES);

			memcpy(m, W.tmpl[t], page_size());
			memcpy(sh, W.tmpl[t], page_size());
		} else if (op == 3) {	/* the kernel writes it: read(2) */
			int t = (int)(rnd(&s) % NTEMPLATES);

			CHECK(write(W.pipe[w][1], W.tmpl[t], page_size()) == (ssize_t)page_size());
			size_t got = 0;

			while (got < page_size()) {
				ssize_t n = read(W.pipe[w][0], m + got, page_size() - got);

				CHECK(n > 0);
				got += (size_t)n;
			}
			memcpy(sh, W.tmpl[t], page_size());
		} else if (op == 4) {	/* atomics */
			size_t k = (rnd(&s) % (page_size() / 8)) * 8;

			__atomic_fetch_add((uint64_t *)(m + k), 1, __ATOMIC_SEQ_CST);
			*(uint64_t *)(sh + k) += 1;
		} else if (memcmp(m, sh, page_size())) {
			writer_fail(pg, "a read");
		}
		atomic_fetch_add(&W.ops[w], 1);
	}
	return NULL;
}

/* Map and register @npg pages (filled from the templates), start the writers. */
static void writers_start(struct samepage *sp, size_t npg, unsigned int seed, int idx)
{
	size_t len = npg * page_size();

	W.npg = npg;
	W.seed = seed;
	W.idx = idx;
	W.mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	W.shadow = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(W.mem != MAP_FAILED && W.shadow != MAP_FAILED);
	for (int t = 0; t < NTEMPLATES; t++) {
		W.tmpl[t] = malloc(page_size());
		CHECK(W.tmpl[t]);
		template_fill(W.tmpl[t], t);
	}
	for (size_t i = 0; i < npg; i++)
		template_fill(W.mem + i * page_size(), (int)(i % NTEMPLATES));
	memcpy(W.shadow, W.mem, len);
	CHECK_EQ(samepage_madvise(sp, W.mem, len, SAMEPAGE_MERGEABLE), 0);
	for (int w = 0; w < NWRITERS; w++) {
		CHECK(pipe(W.pipe[w]) == 0);
		CHECK(pthread_create(&W.t[w], NULL, writer_main, (void *)(intptr_t)w) == 0);
	}
}

static long writers_ops(int w)
{
	return atomic_load(&W.ops[w]);
}

/* Stop the writers and compare every page with its shadow. */
static void writers_stop_and_verify(void)
{
	atomic_store(&W.stop, true);
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(W.t[w], NULL);
	for (size_t i = 0; i < W.npg; i++)
		if (memcmp(W.mem + i * page_size(), W.shadow + i * page_size(), page_size()))
			writer_fail(i, "the end");
}

#endif /* SAMEPAGE_TESTS_DAEMON_WRITERS_H */

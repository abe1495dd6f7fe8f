/* SPDX-License-Identifier: MIT */
/*
 * real_fork_during_scan - children made by _Fork() at any instant while the
 * scanner thread merges (run=1, sleep_millisecs=0) and the parent keeps
 * rewriting and freeing its memory (so store slots are freed and reused all
 * the time): every child reads exactly the memory it inherited, checked a
 * while later against a shadow copy made before the fork.  Once the
 * children are gone the quarantine empties.
 */
#include "real_util.h"

#include <sys/wait.h>
#include <time.h>

#define NPAGES	64	/* pages i and i + NPAGES/2 equal */
#define ROUNDS	150
#define INFLIGHT 6

static void fill(char *p, size_t ps, unsigned v)
{
	for (size_t i = 0; i < NPAGES; i++) {
		uint32_t k = (uint32_t)(i % (NPAGES / 2)) * 7919u + v * 104729u;

		memset(p + i * ps, (int)(1 + (k % 251)), ps);
		memcpy(p + i * ps, &k, sizeof(k));
		memcpy(p + i * ps + ps - sizeof(k), &v, sizeof(v));
	}
}

int main(void)
{
	real_test_name = "real_fork_during_scan";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, NPAGES * ps);
	char *shadow = malloc(NPAGES * ps);
	pid_t kids[INFLIGHT] = { 0 };
	int nk = 0, failed = 0;

	CHECK(p && shadow);
	set(sp, "pages_to_scan", 1000);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	srand(1);
	for (unsigned v = 0; v < ROUNDS; v++) {
		fill(p, ps, v);
		memcpy(shadow, p, NPAGES * ps);
		usleep((useconds_t)(rand() % 3000));	/* let some merges happen */
		if (nk == INFLIGHT) {
			int st;

			CHECK(waitpid(kids[0], &st, 0) == kids[0]);
			failed += !WIFEXITED(st) || WEXITSTATUS(st);
			memmove(kids, kids + 1, sizeof(kids[0]) * (INFLIGHT - 1));
			nk--;
		}
		pid_t pid = _Fork();

		CHECK(pid >= 0);
		if (pid == 0) {
			/* while the parent frees, reuses and rewrites */
			struct timespec ts = { 0, 20 * 1000 * 1000 };

			nanosleep(&ts, NULL);
			for (size_t j = 0; j < NPAGES * ps; j++)
				if (p[j] != shadow[j]) {
					fprintf(stderr, "child of round %u: page %zu byte %zu reads %#x, "
						"expected %#x\n", v, j / ps, j % ps,
						(unsigned char)p[j], (unsigned char)shadow[j]);
					_exit(1);
				}
			_exit(0);
		}
		kids[nk++] = pid;
		if (v % 4 == 3) {
			/* give everything back, take new memory: slots are freed */
			CHECK_EQ(samepage_free(sp, p, NPAGES * ps), 0);
			p = samepage_alloc(sp, NPAGES * ps);
			CHECK(p);
		}
	}
	for (int k = 0; k < nk; k++) {
		int st;

		CHECK(waitpid(kids[k], &st, 0) == kids[k]);
		failed += !WIFEXITED(st) || WEXITSTATUS(st);
	}
	if (failed)
		FAIL("%d of %d children read memory they did not inherit", failed, ROUNDS);
	/* the children are gone: the scanner's next batches release it all */
	long q = -1;

	for (int t = 0; t < 500 && (q = get(sp, "store_quarantined")) != 0; t++)
		usleep(10000);
	CHECK_EQ(q, 0);
	set(sp, "run", 0);
	printf("%d children made during scans read their memory; store_pages %ld, "
	       "pages_shared %ld\n", ROUNDS, get(sp, "store_pages"), get(sp, "pages_shared"));
	CHECK_EQ(samepage_close(sp), 0);
	free(shadow);
	return 0;
}

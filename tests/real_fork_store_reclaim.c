/* SPDX-License-Identifier: MIT */
/*
 * real_fork_store_reclaim - a forking server does not leak store pages: 620
 * short-lived children (fork(), the child exits at once, the parent reaps
 * it) while the parent keeps 64 shared pages and changes a little merged
 * memory between forks.  Store pages a child might have mapped are
 * quarantined while it lives and released once it is gone: store_pages
 * stays within a constant of pages_shared, and equals it at the end.
 * A long-lived child, forked at the start and alive throughout, holds the
 * slots it may map (the first churn contents) and no others.
 */
#include "real_util.h"

#include <sys/wait.h>

#define SHARED	64	/* contents kept shared, two pages each */
#define CHURN	2	/* contents changed between forks, two pages each */
#define CHILDREN 620

static void fill(char *p, size_t ps, size_t npages, unsigned tag)
{
	for (size_t i = 0; i < npages; i++) {
		memset(p + i * ps, (int)(1 + tag % 200), ps);
		/* pages i and i + npages/2 are equal */
		uint32_t k = (uint32_t)(i % (npages / 2)) + tag * 1000;

		memcpy(p + i * ps, &k, sizeof(k));
	}
}

int main(void)
{
	real_test_name = "real_fork_store_reclaim";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();
	char *keep = samepage_alloc(sp, 2 * SHARED * ps);
	char *churn = samepage_alloc(sp, 2 * CHURN * ps);

	CHECK(keep && churn);
	fill(keep, ps, 2 * SHARED, 1);
	fill(churn, ps, 2 * CHURN, 2);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), SHARED + CHURN);
	long before = get(sp, "store_pages");

	CHECK_EQ(before, SHARED + CHURN);

	/* the long-lived child: checks its memory when told, then exits */
	char *shadow_churn = malloc(2 * CHURN * ps);
	int go[2];

	CHECK(shadow_churn && pipe(go) == 0);
	fill(shadow_churn, ps, 2 * CHURN, 2);
	pid_t longpid = fork();

	CHECK(longpid >= 0);
	if (longpid == 0) {
		char c;

		close(go[1]);	/* (a test that failed ends it: end of file) */
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(memcmp(churn, shadow_churn, 2 * CHURN * ps) ? 1 : 0);
	}

	/*
	 * Bound: the CHURN old slots are quarantined by samepage_free (a
	 * child forked while they were mapped existed) and released at the
	 * next lock hold (the first scan), the child being reaped by then;
	 * CHURN new ones are made by the scans.  The first churn's CHURN
	 * slots stay quarantined while the long-lived child lives (it was
	 * forked while they were mapped); later ones do not wait for it.  So
	 * pages_shared + CHURN after the scans, and never more than
	 * pages_shared + 2 * CHURN in between.
	 */
	long max_store = 0, max_quarantined = 0, quarantined = 0;

	for (unsigned i = 0; i < CHILDREN; i++) {
		pid_t pid = fork();

		CHECK(pid >= 0);
		if (pid == 0)
			_exit(0);
		int st;

		CHECK(waitpid(pid, &st, 0) == pid);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		/* a little churn: a new region with new content is merged, the
		 * old one (its slots were mapped when the child was forked) is
		 * freed */
		char *next = samepage_alloc(sp, 2 * CHURN * ps);

		CHECK(next);
		fill(next, ps, 2 * CHURN, 3 + i);
		CHECK_EQ(samepage_free(sp, churn, 2 * CHURN * ps), 0);
		churn = next;
		/* quarantined, still counted, until the next lock hold (and
		 * the first churn's while the long-lived child lives) */
		CHECK_EQ(get(sp, "store_quarantined"), i == 0 ? CHURN : 2 * CHURN);
		quarantined += CHURN;
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		long shared = get(sp, "pages_shared");
		long store = get(sp, "store_pages");

		CHECK_EQ(shared, SHARED + CHURN);
		if (store > max_store)
			max_store = store;
		if (get(sp, "store_quarantined") > max_quarantined)
			max_quarantined = get(sp, "store_quarantined");
		CHECK_EQ(get(sp, "pages_sharing"), SHARED + CHURN);
		CHECK_EQ(get(sp, "store_quarantined"), CHURN);
		if (store > shared + CHURN)
			FAIL("after %u children: store_pages %ld > pages_shared %ld + %d",
			     i + 1, store, shared, CHURN);
	}
	long during = get(sp, "store_pages");

	/* the first churn's slots, which the long-lived child may map */
	CHECK_EQ(get(sp, "store_quarantined"), CHURN);
	/* it still reads them */
	int status;

	CHECK(write(go[1], "x", 1) == 1);
	CHECK(waitpid(longpid, &status, 0) == longpid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("the long-lived child read wrong data (status %#x)", status);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	long after = get(sp, "store_pages");

	printf("children %d (and one alive throughout): store_pages before %ld, max %ld, "
	       "with the long-lived child still alive %ld, after it is gone %ld; "
	       "pages_shared %ld; slots quarantined %ld in all, left after scans (max) %ld\n",
	       CHILDREN, before, max_store, during, after, get(sp, "pages_shared"),
	       quarantined, max_quarantined);
	CHECK_EQ(after, get(sp, "pages_shared"));
	CHECK_EQ(get(sp, "store_quarantined"), 0);
	/* the data is intact */
	char *shadow = malloc(2 * SHARED * ps);

	CHECK(shadow);
	fill(shadow, ps, 2 * SHARED, 1);
	CHECK(memcmp(keep, shadow, 2 * SHARED * ps) == 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(memcmp(keep, shadow, 2 * SHARED * ps) == 0);
	free(shadow);
	free(shadow_churn);
	printf("fork store reclaim ok\n");
	return 0;
}

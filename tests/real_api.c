/* SPDX-License-Identifier: MIT */
/*
 * real_api - the public API on real memory: bad input gets the kernel's
 * errors and changes nothing; memory the replacement mapping would break is
 * never merged; samepage_close leaves every page private with its content;
 * the VMA budget leaves the application room to map memory.
 */
#include "real_util.h"

#include <pthread.h>
#include <sys/syscall.h>

#include "linux_internal.h"

static size_t ps;

static void report(void *arg, const char *finding)
{
	(void)arg;
	fprintf(stderr, "ksm_check: %s\n", finding);
}

static void engine_consistent(struct samepage *sp)
{
	sp_lock(sp);
	int findings = ksm_check(sp_linux_ksm(sp), report, NULL);
	sp_unlock(sp);
	CHECK_EQ(findings, 0);
}

static void bad_input(void)
{
	struct samepage *sp = NULL;

	CHECK_EQ(samepage_open(NULL, 0), -EINVAL);
	CHECK(strlen(samepage_last_error()) > 0);
	CHECK_EQ(samepage_open(&sp, 1), -EINVAL);
	sp = open_or_skip();

	char *p = samepage_alloc(sp, 10 * ps);

	CHECK(p);
	memset(p, 0x2A, 10 * ps);

	/* handles, alignment, advice, lengths */
	CHECK_EQ(samepage_madvise(NULL, p, ps, SAMEPAGE_MERGEABLE), -EINVAL);
	CHECK_EQ(samepage_madvise(sp, p + 1, ps, SAMEPAGE_MERGEABLE), -EINVAL);
	CHECK_EQ(samepage_madvise(sp, p, ps, 0), -EINVAL);
	CHECK_EQ(samepage_madvise(sp, p, ps, 99), -EINVAL);
	CHECK_EQ(samepage_madvise(sp, p, 0, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_madvise(sp, p, (size_t)-1, SAMEPAGE_MERGEABLE), -EINVAL);
	/* nothing mapped at 0: the kernel's answer is ENOMEM */
	CHECK_EQ(samepage_madvise(sp, NULL, ps, SAMEPAGE_MERGEABLE), -ENOMEM);
	CHECK(strstr(samepage_last_error(), "not mapped") != NULL);
	errno = 0;
	CHECK(samepage_alloc(sp, 0) == NULL && errno == EINVAL);
	CHECK_EQ(samepage_free(sp, p + 1, ps), -EINVAL);
	CHECK_EQ(samepage_free(sp, p, 0), -EINVAL);

	/* an unmapped gap: ENOMEM, the mapped part is registered anyway */
	char *g = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(g != MAP_FAILED);
	munmap(g + ps, ps);
	memset(g, 0x77, ps);
	memset(g + 2 * ps, 0x77, ps);
	CHECK_EQ(samepage_madvise(sp, g, 3 * ps, SAMEPAGE_MERGEABLE), -ENOMEM);

	/* knobs: the kernel's rules; nothing changes on error */
	CHECK_EQ(samepage_set(sp, "run", 3), -EINVAL);
	CHECK_EQ(get(sp, "run"), 0);
	CHECK_EQ(samepage_set(sp, "merge_across_nodes", 2), -EINVAL);
	CHECK_EQ(samepage_set(sp, "max_page_sharing", 1), -EINVAL);
	CHECK_EQ(samepage_set(sp, "no_such_knob", 1), -ENOENT);
	long v;

	CHECK_EQ(samepage_get(sp, "no_such_counter", &v), -ENOENT);
	CHECK_EQ(samepage_get(sp, NULL, &v), -EINVAL);
	CHECK_EQ(samepage_set(sp, NULL, 1), -EINVAL);

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 2);		/* 0x2A and 0x77 */
	CHECK_EQ(get(sp, "pages_sharing"), 10);
	CHECK_EQ(samepage_set(sp, "merge_across_nodes", 0), -EBUSY);
	CHECK_EQ(get(sp, "merge_across_nodes"), 1);
	CHECK_EQ(samepage_set(sp, "max_page_sharing", 100), -EBUSY);
	CHECK_EQ(get(sp, "max_page_sharing"), 256);
	CHECK_EQ(samepage_set(sp, "run", 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(samepage_set(sp, "merge_across_nodes", 0), 0);
	CHECK_EQ(samepage_set(sp, "merge_across_nodes", 1), 0);
	engine_consistent(sp);
	CHECK_EQ(samepage_close(sp), 0);
	munmap(p, 10 * ps);
	munmap(g, ps);
	munmap(g + 2 * ps, ps);
}

/* Shared, wipe-on-fork and inaccessible memory: madvise says 0 (like the
 * kernel) but none of it is ever merged.  (Locked, dont-fork and dont-dump
 * memory merges, its flags kept: real_madvise_flags_kept.) */
static void never_merged(void)
{
	struct samepage *sp = open_or_skip();
	size_t n = 8;
	char *sh = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *wf = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ro = mmap(NULL, n * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(sh != MAP_FAILED && wf != MAP_FAILED && ro != MAP_FAILED);
	CHECK_EQ(madvise(wf, n * ps, MADV_WIPEONFORK), 0);
	char *all[] = { sh, wf };

	for (int k = 0; k < 2; k++) {
		memset(all[k], 0x2A, n * ps);
		CHECK_EQ(samepage_madvise(sp, all[k], n * ps, SAMEPAGE_MERGEABLE), 0);
	}
	CHECK_EQ(samepage_madvise(sp, ro, n * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(get(sp, "ksm_rmap_items"), 0);
	for (int k = 0; k < 2; k++)
		for (size_t j = 0; j < n * ps; j++)
			if (all[k][j] != 0x2A)
				FAIL("mapping %d byte %zu changed", k, j);
	CHECK_EQ(samepage_close(sp), 0);
	for (int k = 0; k < 2; k++)
		munmap(all[k], n * ps);
	munmap(ro, n * ps);
}

static bool maps_store(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "samepage-node"))
			found = true;
	if (f)
		fclose(f);
	return found;
}

/* samepage_close: every page private again, content intact, no store left. */
static void close_all_private(void)
{
	struct samepage *sp = open_or_skip();
	size_t n = 256;
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	set(sp, "use_zero_pages", 1);
	for (size_t i = 0; i < n; i++)
		memset(p + i * ps, i % 3 == 2 ? 0 : (int)(i % 3) + 1, ps);
	p[7 * ps + 100] = 'x';		/* one unique page */
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK(get(sp, "pages_sharing") > 0);
	CHECK(get(sp, "ksm_zero_pages") > 0);
	engine_consistent(sp);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(!maps_store());
	check_all_private(p, n);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ps; j++) {
			char want = i % 3 == 2 ? 0 : (char)(i % 3 + 1);

			if (i == 7 && j == 100)
				want = 'x';
			if (p[i * ps + j] != want)
				FAIL("page %zu byte %zu changed", i, j);
		}
	/* normal anonymous memory again: MADV_DONTNEED gives zeros */
	CHECK_EQ(madvise(p, n * ps, MADV_DONTNEED), 0);
	for (size_t j = 0; j < n * ps; j++)
		if (p[j])
			FAIL("byte %zu not zero after MADV_DONTNEED", j);
	munmap(p, n * ps);
}

static void *nothing(void *arg)
{
	return arg;
}

/* Isolated merges stop at half of vm.max_map_count; the application can
 * still map memory and start threads. */
static void vma_budget(void)
{
	struct samepage *sp = open_or_skip();
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long max = 65530;

	if (f) {
		if (fscanf(f, "%ld", &max) != 1)
			max = 65530;
		fclose(f);
	}
	/* every other page identical: each merge is isolated (+2 VMAs) */
	size_t n = (size_t)max + 4096;
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	for (size_t i = 0; i < n; i++) {
		memset(p + i * ps, 0x2A, 64);
		if (i % 2)
			memcpy(p + i * ps, &i, sizeof(i));
	}
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	long refusals = get(sp, "vma_budget_refusals");
	long vmas = sp_count_vmas();

	printf("vma budget: %ld merged pages, %ld refusals, %ld VMAs of max %ld\n",
	       get(sp, "pages_sharing"), refusals, vmas, max);
	CHECK(refusals > 0);
	CHECK(vmas <= max / 2 + 64);
	CHECK(get(sp, "pages_sharing") > max / 8);
	/* the application has room */
	char *m[1000];

	for (int i = 0; i < 1000; i++) {
		m[i] = mmap(NULL, ps, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(m[i] != MAP_FAILED);
	}
	pthread_t t;

	CHECK_EQ(pthread_create(&t, NULL, nothing, NULL), 0);
	pthread_join(t, NULL);
	for (int i = 0; i < 1000; i++)
		munmap(m[i], ps);
	CHECK_EQ(samepage_close(sp), 0);
	for (size_t i = 0; i < n; i += 97) {
		size_t k;

		if (i % 2) {
			memcpy(&k, p + i * ps, sizeof(k));
			CHECK_EQ(k, i);
		} else {
			CHECK_EQ(p[i * ps + 8], 0x2A);
		}
	}
	munmap(p, n * ps);
}

int main(void)
{
	real_test_name = "real_api";
	ps = page_size();
	bad_input();
	printf("bad input ok\n");
	never_merged();
	printf("never merged ok\n");
	close_all_private();
	printf("close ok\n");
	vma_budget();
	printf("vma budget ok\n");
	return 0;
}

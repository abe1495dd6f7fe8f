/* SPDX-License-Identifier: MIT */
/*
 * core_page_gone_before_read_leaves_tree - a page that goes away between
 * follow_page and read_page (the daemon reads a client's page after its
 * pagemap said present; the client unmapped it meanwhile) takes its
 * rmap_item out of the unstable tree it was left in by the previous full
 * scan.  It did not: the item stayed flagged as in the tree of two scans
 * before, counted in pages_unshared, and at its next visit, two scans
 * later (same seqnr parity), it was rb_erase'd from a tree it was not in:
 * the daemon's crash in rb_erase under `samepage run --all` churn.
 *
 * A backend of its own that hands out page contents through read_page
 * only, and fails it for chosen pages in one scan.  Exact counters after
 * each full scan, the checker after each.  (Before the fix: pages_unshared
 * 64 instead of 44 after scan 3, the checker's "unstable items of this scan
 * differ from the unstable trees' size", and scan 4 looped for ever in a
 * tree made cyclic by that rb_erase.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksm.h"

#define PAGE	256
#define NPG	64
#define NGONE	20	/* pages gone at read time in scan 3 */

static unsigned char mem[NPG][PAGE];
static int mm_token;
static int gone_now;	/* read_page fails for vpn < NGONE */
static int failures;

static int be_find_range(void *be, void *mm, uint64_t vpn, uint64_t *s, uint64_t *e)
{
	(void)be;
	(void)mm;
	if (vpn >= NPG)
		return -ENOENT;
	*s = 0;
	*e = NPG;
	return 0;
}

static int be_follow_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	(void)be;
	(void)mm;
	memset(pg, 0, sizeof(*pg));
	pg->kind = SP_PAGE_ANON;
	pg->pfn = 1000 + vpn;
	pg->mapcount = 1;
	/* (no data: read_page gives it) */
	return 0;
}

static int be_read_page(void *be, void *mm, uint64_t vpn, struct sp_page *pg)
{
	(void)be;
	(void)mm;
	if (gone_now && vpn < NGONE)
		return -EFAULT;		/* unmapped since follow_page */
	pg->data = mem[vpn];
	return 0;
}

static int be_pfn_page(void *be, uint64_t pfn, struct sp_page *pg)
{
	(void)be;
	(void)pfn;
	memset(pg, 0, sizeof(*pg));
	return 0;
}

static int be_merge(void *be, void *mm, uint64_t vpn, const struct sp_page *seen, uint64_t kpfn)
{
	(void)be, (void)mm, (void)vpn, (void)seen, (void)kpfn;
	return -EAGAIN;		/* every page is unique: never called */
}

static int be_merge_zero(void *be, void *mm, uint64_t vpn, const struct sp_page *seen)
{
	(void)be, (void)mm, (void)vpn, (void)seen;
	return -EAGAIN;
}

static int be_make_ksm(void *be, void *mm, uint64_t vpn, const struct sp_page *seen,
		       uint64_t *kpfn)
{
	(void)be, (void)mm, (void)vpn, (void)seen, (void)kpfn;
	return -EAGAIN;
}

static int be_unmerge(void *be, void *mm, uint64_t start, uint64_t end, unsigned int flags)
{
	(void)be, (void)mm, (void)start, (void)end, (void)flags;
	return 0;
}

static void be_set_stable_node(void *be, uint64_t kpfn, struct stable_node *node)
{
	(void)be, (void)kpfn, (void)node;
}

static uint64_t be_now_ms(void *be)
{
	(void)be;
	return 0;
}

static const struct sp_backend_ops ops = {
	.find_range = be_find_range,
	.follow_page = be_follow_page,
	.read_page = be_read_page,
	.pfn_page = be_pfn_page,
	.merge = be_merge,
	.merge_zero = be_merge_zero,
	.make_ksm = be_make_ksm,
	.unmerge = be_unmerge,
	.set_stable_node = be_set_stable_node,
	.now_ms = be_now_ms,
};

static void report(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "checker: %s\n", msg);
	failures++;
}

static long counter(struct ksm *ksm, const char *name)
{
	long v = -1;

	if (ksm_get(ksm, name, &v)) {
		fprintf(stderr, "ksm_get(%s) failed\n", name);
		exit(1);
	}
	return v;
}

static void expect(struct ksm *ksm, int scan, long unshared, long volatil)
{
	long u = counter(ksm, "pages_unshared"), v = counter(ksm, "pages_volatile");

	printf("full scan %d: pages_unshared %ld, pages_volatile %ld\n", scan, u, v);
	if (u != unshared || v != volatil) {
		fprintf(stderr, "FAIL: full scan %d: pages_unshared %ld, pages_volatile %ld; "
			"expected %ld, %ld\n", scan, u, v, unshared, volatil);
		failures++;
	}
	(void)ksm_check(ksm, report, NULL);	/* (each finding counted) */
	if (failures) {
		/* (scanning a corrupt tree again may never end) */
		fprintf(stderr, "FAIL core_page_gone_before_read_leaves_tree: %d findings\n",
			failures);
		exit(1);
	}
}

int main(void)
{
	struct sp_backend be = { .ops = &ops, .be = NULL, .page_size = PAGE, .nr_node_ids = 1 };
	struct ksm *ksm;

	for (int i = 0; i < NPG; i++)
		for (int k = 0; k < PAGE; k++)
			mem[i][k] = (unsigned char)(i * 37 + k * 11 + (k >> 3) * i);
	if (ksm_create(&ksm, &be) || ksm_set(ksm, "smart_scan", 0) ||
	    ksm_enter(ksm, &mm_token)) {
		fprintf(stderr, "FAIL: setting up the engine\n");
		return 1;
	}
	ksm_scan_full(ksm, 1);
	expect(ksm, 1, 0, NPG);			/* checksums taken */
	ksm_scan_full(ksm, 1);
	expect(ksm, 2, NPG, 0);			/* all in the tree */
	gone_now = 1;
	ksm_scan_full(ksm, 1);
	expect(ksm, 3, NPG - NGONE, NGONE);	/* the gone ones in no tree */
	gone_now = 0;
	for (int s = 4; s <= 7; s++) {	/* (4 and 6: scan 2's parity) */
		ksm_scan_full(ksm, 1);
		expect(ksm, s, NPG, 0);
	}
	ksm_destroy(ksm);
	printf("PASS core_page_gone_before_read_leaves_tree\n");
	return 0;
}

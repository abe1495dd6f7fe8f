/* SPDX-License-Identifier: MIT */
/*
 * real_numa - NUMA on real memory, through the backend interface, on a
 * machine of one node: the node query (move_pages) is replaced by a test
 * hook that says where each application page and each store page is.
 *   - one 0x2A page on node 0 and one on node 1: merge_across_nodes=1
 *     merges them, merge_across_nodes=0 does not;
 *   - a store page the kernel "migrated" to another node is handled as a
 *     misplaced stable node: it ends in the tree of its new node, with all
 *     its mappings, and the engine's checker is happy.
 */
#include "real_util.h"

#include "linux_internal.h"

static size_t ps;
static char *region_lo, *region_hi;	/* app pages in [lo, hi) are on node 1 */
static int store_node = -1;		/* >= 0: every store page is there */
static int store_home_calls;

static int node_of(void *arg, const void *addr, bool store)
{
	(void)arg;
	if (store) {
		store_home_calls++;
		if (store_node >= 0)
			return store_node;
		return 0;	/* the store's pages are where the test says */
	}
	return (const char *)addr >= region_lo && (const char *)addr < region_hi;
}

static struct samepage *open_numa(void)
{
	struct sp_linux_opts o = { .nr_node_ids = 2, .node_of = node_of };
	struct samepage *sp = NULL;
	int err = sp_linux_open_opts(&sp, &o);

	if (err) {
		printf("SKIP real_numa: %s\n", samepage_last_error());
		exit(77);
	}
	return sp;
}

static void report(void *arg, const char *finding)
{
	(void)arg;
	fprintf(stderr, "ksm_check: %s\n", finding);
}

static void consistent(struct samepage *sp)
{
	sp_lock(sp);
	int n = ksm_check(sp_linux_ksm(sp), report, NULL);
	sp_unlock(sp);
	CHECK_EQ(n, 0);
}

struct walk {
	int nodes, nid, page_nid, mappings, on_list;
};

static void walk_fn(void *arg, const struct ksm_node_info *info)
{
	struct walk *w = arg;

	if (info->is_dup)
		return;
	w->nodes++;
	w->nid = info->nid;
	w->page_nid = info->page_nid;
	w->mappings = info->mappings;
	w->on_list += info->on_migrate_list;
}

static struct walk walk(struct samepage *sp)
{
	struct walk w = { 0 };

	sp_lock(sp);
	ksm_walk_stable(sp_linux_ksm(sp), walk_fn, &w);
	sp_unlock(sp);
	return w;
}

static void across_nodes(int man)
{
	struct samepage *sp = open_numa();

	set(sp, "merge_across_nodes", (unsigned long)man);
	char *p = samepage_alloc(sp, 2 * ps);

	CHECK(p);
	region_lo = p + ps;
	region_hi = p + 2 * ps;
	memset(p, 0x2A, 2 * ps);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), man);
	CHECK_EQ(get(sp, "pages_sharing"), man);
	consistent(sp);
	CHECK_EQ(samepage_close(sp), 0);
	munmap(p, 2 * ps);
	region_lo = region_hi = NULL;
}

static void migrated_store_page(void)
{
	struct samepage *sp = open_numa();

	set(sp, "merge_across_nodes", 0);
	char *p = samepage_alloc(sp, 10 * ps);

	CHECK(p);
	memset(p, 0x2A, 10 * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), 9);
	struct walk w = walk(sp);

	CHECK_EQ(w.nodes, 1);
	CHECK_EQ(w.nid, 0);
	CHECK_EQ(w.page_nid, 0);

	/* the kernel moves the store page to node 1 (all mappers follow) */
	store_node = 1;
	w = walk(sp);
	CHECK_EQ(w.page_nid, 1);	/* seen through pfn_page */
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	w = walk(sp);
	CHECK_EQ(w.nodes, 1);
	CHECK_EQ(w.nid, 1);		/* now in node 1's tree */
	CHECK_EQ(w.page_nid, 1);
	CHECK_EQ(w.on_list, 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), 9);
	consistent(sp);
	for (size_t j = 0; j < 10 * ps; j++)
		CHECK_EQ(p[j], 0x2A);
	CHECK(store_home_calls > 0);
	CHECK_EQ(samepage_close(sp), 0);
	check_all_private(p, 10);
	munmap(p, 10 * ps);
	store_node = -1;
}

int main(void)
{
	real_test_name = "real_numa";
	ps = page_size();
	across_nodes(1);
	across_nodes(0);
	printf("merge_across_nodes ok\n");
	migrated_store_page();
	printf("migrated store page ok\n");
	return 0;
}

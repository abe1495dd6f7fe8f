/* SPDX-License-Identifier: MIT */
/*
 * daemon_client_api - the calls of a connected handle: samepage_alloc and
 * samepage_madvise register memory with the daemon, samepage_get answers
 * the daemon's knobs and counters and this process's ksm_stat figures,
 * samepage_scan scans synchronously, MADV_UNMERGEABLE / samepage_discard /
 * samepage_free make pages private (or zero, or gone) at once and the
 * daemon forgets them, samepage_close leaves every page private with its
 * content; the other client keeps its pages right throughout.
 */
#include "daemon_util.h"

#define NPG 32

static void fill(char *p, size_t npg)
{
	for (size_t i = 0; i < npg; i++)
		memset(p + i * page_size(), 'A' + (int)(i % 8), page_size());
}

static bool filled(const char *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		for (size_t k = 0; k < page_size(); k++)
			if (p[i * page_size() + k] != 'A' + (int)(i % 8))
				return false;
	return true;
}

static bool zeros(const char *p, size_t from, size_t to)
{
	for (size_t i = from * page_size(); i < to * page_size(); i++)
		if (p[i])
			return false;
	return true;
}

/* The other client: the same pages, checked at the end. */
static void other(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *p = samepage_alloc(sp, NPG * page_size());

	(void)idx;
	CHECK(p);
	fill(p, NPG);
	send_byte(ack, 'r');
	(void)recv_byte(cmd, 60000);
	CHECK(filled(p, 0, NPG));
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

int main(void)
{
	need_uffd("daemon_client_api");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child o = child_start(other, 0);

	CHECK_EQ(recv_byte(o.ack, 30000), 'r');
	struct samepage *sp = connect_daemon();
	size_t ps = page_size();
	char *p = samepage_alloc(sp, NPG * ps);

	CHECK(p);
	fill(p, NPG);
	set(sp, "max_page_sharing", 1000);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	/* 8 contents, 64 pages */
	CHECK_EQ(get(sp, "pages_shared"), 8);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG - 8);
	CHECK_EQ(get(sp, "ksm_rmap_items"), NPG);
	CHECK(get(sp, "ksm_merging_pages") > 0);
	CHECK_EQ(get(sp, "ksm_zero_pages"), 0);
	CHECK(get(sp, "ksm_process_profit") > 0);
	CHECK_EQ(get(sp, "clients"), 2);
	CHECK(get(sp, "store_pages") == 8);
	CHECK(filled(p, 0, NPG));

	/* MADV_UNMERGEABLE: private at once, content kept */
	CHECK_EQ(samepage_madvise(sp, p, 8 * ps, SAMEPAGE_UNMERGEABLE), 0);
	CHECK(filled(p, 0, NPG));
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "ksm_rmap_items"), NPG - 8);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG - 8 - 8);

	/* samepage_discard: zeros, still registered */
	CHECK_EQ(samepage_discard(sp, p + 8 * ps, 8 * ps), 0);
	CHECK(zeros(p, 8, 16));
	CHECK(filled(p, 16, NPG));
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* (not present, or the zero page once read: no rmap_items, as in the
	 * kernel) */
	CHECK_EQ(get(sp, "ksm_rmap_items"), NPG - 16);

	/* samepage_free: gone */
	CHECK_EQ(samepage_free(sp, p + 16 * ps, 8 * ps), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "ksm_rmap_items"), NPG - 24);
	CHECK_EQ(get(sp, "pages_sharing"), NPG + 8 - 8);
	CHECK(filled(p, 24, NPG));

	/* samepage_scan: pages, synchronously */
	CHECK_EQ(samepage_scan(sp, 10), 0);
	long v;

	CHECK_EQ(samepage_get(sp, "no_such_name", &v), -ENOENT);
	CHECK_EQ(samepage_set(sp, "run", 3), -EINVAL);
	CHECK_EQ(samepage_set(sp, "pages_shared", 1), -EACCES);

	/* close: private with its content */
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(filled(p, 0, 8) && zeros(p, 8, 16) && filled(p, 24, NPG));
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "samepage-uid"))
			FAIL("a store is still mapped after close: %s", line);
	fclose(f);
	send_byte(o.cmd, 'x');
	CHECK_EQ(child_wait(&o), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_client_api\n");
	return 0;
}

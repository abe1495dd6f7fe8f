/* SPDX-License-Identifier: MIT */
/*
 * run_mergeable_three_copies - a program that asks the kernel's KSM to
 * merge (madvise MADV_MERGEABLE), run in three copies under `samepage run`
 * against one daemon: its pages merge through the daemon (its counters),
 * the kernel's KSM is untouched (no `mg` VmFlag, its pages_sharing
 * unchanged), a write copies (the other copies keep their content),
 * MADV_DONTNEED reads zeros afterwards, also on merged pages, and
 * PR_GET_MEMORY_MERGE answers 0 (never set).
 */
#include "run_util.h"

#define NP	256	/* pages: [0, 128) the same in every copy, the rest unique */
#define SAME	128
#define COPIES	3

static unsigned char same_byte(size_t pg, size_t k)
{
	return (unsigned char)(pg * 7 + k / 64 + 1);
}

static unsigned char uniq_byte(int idx, size_t pg, size_t k)
{
	return k == 0 ? (unsigned char)(idx + 1) : k == 1 ? (unsigned char)pg :
	       (unsigned char)(pg * 3 + k);
}

static int child(int cmd, int ack, int idx)
{
	size_t ps = page_size();
	unsigned char *p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 2;
	for (size_t pg = 0; pg < NP; pg++)
		for (size_t k = 0; k < ps; k++)
			p[pg * ps + k] = pg < SAME ? same_byte(pg % 8, k) :
					 uniq_byte(idx, pg, k);
	if (madvise(p, NP * ps, MADV_MERGEABLE))
		return 3;
	if (has_vmflag(p, NP * ps, "mg") || any_vmflag("mg"))
		return 4;	/* the kernel's KSM was asked */
	if (!has_vmflag(p, NP * ps, "uw"))
		return 5;	/* not registered with samepage */
	if (prctl(68 /* PR_GET_MEMORY_MERGE */, 0, 0, 0, 0) != 0)
		return 6;
	send_byte(ack, 'r');
	bool written = false, dropped = false;

	for (;;) {
		int c = recv_byte(cmd, 60000);
		bool ok = true;

		if (c < 0 || c == 'q')
			break;
		if (c == 'w' && idx == 0) {
			p[5 * ps + 100] ^= 0xff;	/* a merged page of copy 0 only */
			written = true;
		} else if (c == 'd') {
			/* half the shared pages and a unique one */
			if (madvise(p, 64 * ps, MADV_DONTNEED) ||
			    madvise(p + 200 * ps, ps, MADV_DONTNEED))
				ok = false;
			dropped = true;
		}
		/* every page as it must be now */
		for (size_t pg = 0; pg < NP && ok; pg++) {
			for (size_t k = 0; k < ps && ok; k++) {
				unsigned char want = pg < SAME ? same_byte(pg % 8, k) :
						     uniq_byte(idx, pg, k);

				if (pg == 5 && k == 100 && written)
					want ^= 0xff;
				if (dropped && (pg < 64 || pg == 200))
					want = 0;
				if (p[pg * ps + k] != want) {
					fprintf(stderr, "copy %d: page %zu byte %zu: %u, expected %u "
						"(after '%c')\n", idx, pg, k, p[pg * ps + k], want, c);
					ok = false;
				}
			}
		}
		send_byte(ack, ok ? 'y' : 'n');
	}
	return 0;
}

static void all_say(struct child *c, char cmd)
{
	for (int i = 0; i < COPIES; i++)
		send_byte(c[i].cmd, cmd);
	for (int i = 0; i < COPIES; i++) {
		int r = recv_byte(c[i].ack, 30000);

		if (r != 'y')
			FAIL("copy %d after '%c': %s", i, cmd, r == 'n' ? "wrong content" : "no answer");
	}
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]), atoi(argv[2]));

	pid_t d = run_setup("run_mergeable_three_copies", argv[0]);
	long k_run = kernel_ksm("run"), k_sharing = kernel_ksm("pages_sharing");
	struct child c[COPIES];
	char mode[COPIES][4];

	for (int i = 0; i < COPIES; i++) {
		snprintf(mode[i], sizeof(mode[i]), "%d", i);
		c[i] = run_child(NULL, mode[i], NULL);
	}
	for (int i = 0; i < COPIES; i++) {
		int r = recv_byte(c[i].ack, 30000);

		if (r != 'r')
			FAIL("copy %d did not start (exit status %d)", i, child_wait(&c[i]));
	}
	struct samepage *sp = connect_daemon();

	if (samepage_scan_full(sp, 3))
		FAIL("scan: %s", samepage_last_error());
	long shared = get(sp, "pages_shared"), sharing = get(sp, "pages_sharing");

	printf("merged: pages_shared %ld pages_sharing %ld\n", shared, sharing);
	/* 8 contents x 16 pages x 3 copies: 8 store pages, 376 mappers */
	CHECK_EQ(shared, 8);
	CHECK_EQ(sharing, COPIES * SAME - 8);
	all_say(c, 'w');
	/* (a merged page given MADV_DONTNEED gets zeros written in place,
	 * which keeps its mapping's flags: it may merge into zeros then,
	 * counted apart with use_zero_pages) */
	if (samepage_set(sp, "use_zero_pages", 1))
		FAIL("use_zero_pages: %s", samepage_last_error());
	all_say(c, 'd');
	if (samepage_scan_full(sp, 2))
		FAIL("scan: %s", samepage_last_error());
	sharing = get(sp, "pages_sharing");
	printf("after DONTNEED: pages_shared %ld pages_sharing %ld ksm_zero_pages %ld\n",
	       get(sp, "pages_shared"), sharing, get(sp, "ksm_zero_pages"));
	CHECK(sharing <= COPIES * (SAME - 64));
	CHECK(get(sp, "ksm_zero_pages") <= COPIES * 65);
	all_say(c, 'c');	/* (and still right after the rescans) */
	if (k_run == 0 && k_sharing >= 0)
		CHECK_EQ(kernel_ksm("pages_sharing"), k_sharing);
	for (int i = 0; i < COPIES; i++) {
		send_byte(c[i].cmd, 'q');
		CHECK_EQ(child_wait(&c[i]), 0);
	}
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_mergeable_three_copies\n");
	return 0;
}

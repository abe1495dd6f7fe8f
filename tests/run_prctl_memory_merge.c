/* SPDX-License-Identifier: MIT */
/*
 * run_prctl_memory_merge - under `samepage run` (without --all), a program
 * that asks as systemd's MemoryKSM= does, prctl(PR_SET_MEMORY_MERGE, 1):
 * PR_GET_MEMORY_MERGE answers what was set, all its private anonymous
 * memory is registered with samepage (at once, and memory mapped later
 * within a rescan) and merges through the daemon, never the kernel's KSM
 * (no `mg` VmFlag); the setting is passed on to programs it executes
 * ($SAMEPAGE_RUN_ALL); bad arguments get the kernel's EINVAL; and
 * PR_SET_MEMORY_MERGE 0 gives every page back, its content unchanged.
 */
#include "run_util.h"

#define NP 64
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

static unsigned char *region(void)
{
	size_t ps = page_size();
	/* (shared pages above it: a mapping of its own, away from the pages
	 * around the main thread's TLS, which are never registered) */
	unsigned char *p = mmap(NULL, (NP + 32) * ps, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED &&
	    mmap(p + NP * ps, 32 * ps, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		return NULL;
	if (p != MAP_FAILED)
		for (size_t k = 0; k < NP * ps; k++)
			p[k] = (unsigned char)(k % 4096 % 13 + 3);
	return p == MAP_FAILED ? NULL : p;
}

static bool intact(const unsigned char *p)
{
	for (size_t k = 0; k < NP * page_size(); k++)
		if (p[k] != (unsigned char)(k % 4096 % 13 + 3))
			return false;
	return true;
}

static int child(int cmd, int ack)
{
	size_t ps = page_size();
	unsigned char *a = region();

	if (!a || prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 0)
		return 2;
	if (prctl(PR_SET_MEMORY_MERGE, 1, 1, 0, 0) != -1 || errno != EINVAL)
		return 3;
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) || prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1)
		return 4;
	if (!has_vmflag(a, NP * ps, "uw") || any_vmflag("mg"))
		return 5;
	const char *all = getenv("SAMEPAGE_RUN_ALL");

	if (!all || strcmp(all, "1"))
		return 6;
	unsigned char *b = region();	/* mapped later: a rescan finds it */

	for (int i = 0; b && i < 300 && !has_vmflag(b, NP * ps, "uw"); i++)
		usleep(10000);
	if (!b || !has_vmflag(b, NP * ps, "uw"))
		return 7;
	send_byte(ack, 'r');
	if (recv_byte(cmd, 30000) != 'o')
		return 8;
	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) || prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 0)
		return 9;
	usleep(100000);	/* (a rescan that would take them back, if any) */
	if (has_vmflag(a, NP * ps, "uw") || has_vmflag(b, NP * ps, "uw") || !intact(a) ||
	    !intact(b))
		return 10;
	send_byte(ack, 'y');
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	pid_t d = run_setup("run_prctl_memory_merge", argv[0]);
	struct child c = run_child(NULL, "0", "SAMEPAGE_RUN_RESCAN_MS=20");

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program failed (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();

	if (samepage_scan_full(sp, 3))
		FAIL("scan: %s", samepage_last_error());
	long sharing = get(sp, "pages_sharing");

	printf("pages_shared %ld pages_sharing %ld\n", get(sp, "pages_shared"), sharing);
	CHECK(sharing >= 2 * NP - 1);	/* (both regions: one page content) */
	send_byte(c.cmd, 'o');
	int r = recv_byte(c.ack, 30000);

	if (r != 'y')
		FAIL("after PR_SET_MEMORY_MERGE 0: exit status %d", child_wait(&c));
	CHECK_EQ(child_wait(&c), 0);
	if (samepage_scan_full(sp, 2))
		FAIL("scan: %s", samepage_last_error());
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_prctl_memory_merge\n");
	return 0;
}

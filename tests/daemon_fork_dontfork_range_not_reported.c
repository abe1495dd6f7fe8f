/* SPDX-License-Identifier: MIT */
/*
 * daemon_fork_dontfork_range_not_reported - a client's fork reports to
 * the daemon only the merged pages it has.  The client registers two
 * ranges, A and B, of NPAIR equal pairs each (2 * NPAIR KSM pages), then
 * marks B MADV_DONTFORK and forks: the child has A only.  It becomes a
 * client that owns A's 2 * NPAIR merged pages (ksm_merging_pages,
 * ksm_rmap_items, pages_sharing counted at once), none of B's.  Once the
 * parent wrote all of B and the daemon saw it, B's store pages are free:
 * store_pages falls to NPAIR (A's, which both still map), and the child
 * reads A as written.  Before, the child also reported B's records: its
 * ksm_merging_pages read 4 * NPAIR, and B's NPAIR store pages stayed
 * counted until the child exited.
 */
#include "daemon_util.h"

#define NPAIR	16
#define NPG	(2 * NPAIR)	/* pages per range */

static int up[2], down[2];	/* fork -> test, test -> fork */

static uint64_t word(int range, int i, size_t k)
{
	return 0x3300000000000000ull | ((uint64_t)range << 40) | ((uint64_t)(i % NPAIR) << 20) | k;
}

static void fill(char *mem, int range)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k, &(uint64_t){ word(range, i, k) }, 8);
}

static bool right(const char *mem, int range)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8) {
			uint64_t w;

			memcpy(&w, mem + i * page_size() + k, 8);
			if (w != word(range, i, k))
				return false;
		}
	return true;
}

static void tell(long v)
{
	if (write(up[1], &v, sizeof(v)) != (ssize_t)sizeof(v))
		_exit(1);
}

static char hear(void)
{
	char c = 0;

	if (read(down[0], &c, 1) != 1)
		_exit(1);
	return c;
}

static void fork_child(struct samepage *sp, const char *a)
{
	long v = -1;
	int k = 0;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* a client of its own once its agent is connected */
	while (samepage_get(sp, "run", &v) && k++ < 500)
		usleep(10000);
	tell(getpid());
	if (hear() != 'q')
		_exit(1);
	if (samepage_get(sp, "ksm_merging_pages", &v))
		v = -1;
	tell(v);
	if (samepage_get(sp, "ksm_rmap_items", &v))
		v = -1;
	tell(v);
	if (hear() != 'c')
		_exit(1);
	tell(right(a, 0) ? 1 : 0);
	tell(samepage_close(sp));
	_exit(0);
}

static void client(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	size_t len = NPG * page_size();
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)idx;
	CHECK(a != MAP_FAILED && b != MAP_FAILED);
	fill(a, 0);
	fill(b, 1);
	CHECK_EQ(samepage_madvise(sp, a, len, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_madvise(sp, b, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	CHECK_EQ(recv_byte(cmd, 60000), 'f');
	CHECK(madvise(b, len, MADV_DONTFORK) == 0);
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0)
		fork_child(sp, a);
	send_byte(ack, 'f');
	CHECK_EQ(recv_byte(cmd, 60000), 'w');
	for (int i = 0; i < NPG; i++)	/* B's pages copied, all different now */
		memset(b + i * page_size(), 'A' + i, page_size());
	send_byte(ack, 'w');
	CHECK_EQ(recv_byte(cmd, 60000), 'x');
	int st;

	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(right(a, 0));
	for (size_t k = 0; k < len; k++)
		CHECK(b[k] == 'A' + (int)(k / page_size()));
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static long from_fork(void)
{
	struct pollfd p = { .fd = up[0], .events = POLLIN };
	long v = -1;

	CHECK_EQ(poll(&p, 1, 30000), 1);
	CHECK(read(up[0], &v, sizeof(v)) == (ssize_t)sizeof(v));
	return v;
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
	skip("daemon_fork_dontfork_range_not_reported", "ThreadSanitizer cannot follow a "
	     "threaded process that starts threads in its child after fork");
#endif
	need_uffd("daemon_fork_dontfork_range_not_reported");
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child c = child_start(client, 0);

	CHECK_EQ(recv_byte(c.ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	set(sp, "smart_scan", 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), 2 * NPAIR);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPAIR);
	CHECK_EQ(get(sp, "store_pages"), 2 * NPAIR);

	send_byte(c.cmd, 'f');
	CHECK_EQ(recv_byte(c.ack, 30000), 'f');
	CHECK(from_fork() > 0);
	CHECK_EQ(get(sp, "clients"), 3);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* A's pages count twice more (the fork's), B's not */
	CHECK_EQ(get(sp, "pages_shared"), 2 * NPAIR);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPAIR + NPG);
	send_byte(down[1], 'q');
	long merging = from_fork(), items = from_fork();

	printf("fork: ksm_merging_pages %ld, ksm_rmap_items %ld (range A: %d pages)\n", merging,
	       items, NPG);
	CHECK_EQ(merging, NPG);
	CHECK_EQ(items, NPG);

	send_byte(c.cmd, 'w');
	CHECK_EQ(recv_byte(c.ack, 30000), 'w');
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* B's pages private: its store pages are nobody's */
	CHECK_EQ(get(sp, "pages_shared"), NPAIR);
	CHECK_EQ(get(sp, "pages_sharing"), NPAIR + NPG);
	long store = get(sp, "store_pages");

	if (store != NPAIR)
		dump_counters(sp);
	CHECK_EQ(store, NPAIR);

	send_byte(down[1], 'c');
	CHECK_EQ(from_fork(), 1);	/* the fork reads A as written */
	CHECK_EQ(from_fork(), 0);	/* and closes */
	send_byte(c.cmd, 'x');
	CHECK_EQ(child_wait(&c), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_fork_dontfork_range_not_reported\n");
	return 0;
}

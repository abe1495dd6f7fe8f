/* SPDX-License-Identifier: MIT */
/*
 * daemon_client_killed_midmerge - clients killed with SIGKILL while the
 * daemon merges their pages (eight of them, one after the other, each at a
 * random moment of its merging) are exiting mms: the daemon goes on, the
 * two clients that stay keep their memory and end up sharing exactly their
 * own pages, nothing of the dead is counted (rmap items, store pages), and
 * `clients` counts the living.  Seed printed (SAMEPAGE_SEED to repeat).
 */
#include "daemon_util.h"

#define NPG	64	/* the two that stay */
#define NVICTIM	8
#define VPG	1024	/* a victim's pages: several batches to merge */

static void fill(char *mem, size_t npg)
{
	for (size_t i = 0; i < npg; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k,
			       &(uint64_t){ 0x7700000000000000ull + (i % NPG) * 4099 + k }, 8);
}

static char *region(struct samepage *sp, size_t npg)
{
	char *mem = mmap(NULL, npg * page_size(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	fill(mem, npg);
	CHECK_EQ(samepage_madvise(sp, mem, npg * page_size(), SAMEPAGE_MERGEABLE), 0);
	return mem;
}

static void stayer(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *mem = region(sp, NPG);
	char *want = malloc(NPG * page_size());

	CHECK(want);
	fill(want, NPG);
	send_byte(ack, 'r');
	(void)recv_byte(cmd, 300000);
	if (memcmp(mem, want, NPG * page_size()))
		FAIL("process %d: its memory changed", idx);
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static void victim(int cmd, int ack, int idx)
{
	(void)idx;
	if (recv_byte(cmd, 300000) != 'g')
		_exit(0);
	struct samepage *sp = connect_daemon();

	(void)region(sp, VPG);
	send_byte(ack, 'r');
	for (;;)
		pause();
}

int main(void)
{
	need_uffd("daemon_client_killed_midmerge");
	const char *e = getenv("SAMEPAGE_SEED");
	unsigned int seed = e ? (unsigned int)strtoul(e, NULL, 0) : (unsigned int)time(NULL);

	printf("seed %u\n", seed);
	fflush(stdout);
	srand(seed);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child a = child_start(stayer, 0), c = child_start(stayer, 1);
	struct child v[NVICTIM];

	for (int i = 0; i < NVICTIM; i++)
		v[i] = child_start(victim, i);
	CHECK_EQ(recv_byte(a.ack, 30000), 'r');
	CHECK_EQ(recv_byte(c.ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	set(sp, "max_page_sharing", 100000);
	set(sp, "pages_to_scan", 64);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	for (int i = 0; i < NVICTIM; i++) {
		send_byte(v[i].cmd, 'g');
		CHECK_EQ(recv_byte(v[i].ack, 30000), 'r');
		usleep((useconds_t)(rand() % 20000));
		kill(v[i].pid, SIGKILL);
		CHECK_EQ(child_wait(&v[i]), 128 + SIGKILL);
	}
	printf("merges %ld, refused %ld while the victims died\n", get(sp, "merges"),
	       get(sp, "merges_refused"));
	/* the dead are gone at once (socket end, pidfd) */
	for (int k = 0; k < 500 && get(sp, "clients") != 3; k++)
		usleep(10000);
	CHECK_EQ(get(sp, "clients"), 3);
	set(sp, "run", 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPG);
	CHECK_EQ(get(sp, "pages_sharing"), NPG);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	CHECK_EQ(get(sp, "pages_volatile"), 0);
	CHECK_EQ(get(sp, "store_pages"), NPG);
	send_byte(a.cmd, 'x');
	send_byte(c.cmd, 'x');
	CHECK_EQ(child_wait(&a), 0);
	CHECK_EQ(child_wait(&c), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_client_killed_midmerge\n");
	return 0;
}

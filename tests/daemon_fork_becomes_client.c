/* SPDX-License-Identifier: MIT */
/*
 * daemon_fork_becomes_client - the fork of a client becomes a client (the
 * kernel's ksm_fork): its handle works, its merged pages stay merged (they
 * count as sharing at once, on the same physical pages as its parent's),
 * a write gives it a private copy only there, it is scanned like any other
 * process, and when it closes and exits the daemon forgets it; its parent
 * and the other client keep their memory throughout.
 */
#include "daemon_util.h"

#define NPG 16

static int result[2];	/* fork -> test */
static int go[2];	/* test -> fork */

static uint64_t word(int i, size_t k)
{
	return 0x5500000000000000ull + (uint64_t)i * 257 + k;
}

static bool right(const char *mem, int mine)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8) {
			uint64_t w;

			memcpy(&w, mem + i * page_size() + k, 8);
			if (i == mine ? mem[i * page_size() + k] != 'w' : w != word(i, k))
				return false;
		}
	return true;
}

static void say(char c)
{
	if (write(result[1], &c, 1) != 1)
		_exit(1);
}

static char hear(void)
{
	char c = 0;

	if (read(go[0], &c, 1) != 1)
		_exit(1);
	return c;
}

static void fork_child(struct samepage *sp, char *mem)
{
	long v = -1;
	int k = 0;

	/* a client of its own once its agent is connected */
	while (samepage_get(sp, "run", &v) && k++ < 500)
		usleep(10000);
	if (v != 0 || !right(mem, -1))
		_exit(2);
	pid_t me = getpid();

	if (write(result[1], &me, sizeof(me)) != (ssize_t)sizeof(me))
		_exit(1);
	if (hear() != 'w')
		_exit(1);
	if (samepage_get(sp, "ksm_rmap_items", &v) || v != NPG)
		say('R');
	memset(mem, 'w', page_size());
	say(right(mem, 0) ? 'w' : '3');
	if (hear() != 'c')
		_exit(1);
	say(samepage_close(sp) == 0 && right(mem, 0) ? 'c' : '4');
	_exit(0);
}

static void client(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *mem = mmap(NULL, NPG * page_size(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k, &(uint64_t){ word(i, k) }, 8);
	CHECK_EQ(samepage_madvise(sp, mem, NPG * page_size(), SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	int c = recv_byte(cmd, 60000);

	if (c == 'f') {
		pid_t pid = fork();

		CHECK(pid >= 0);
		if (pid == 0)
			fork_child(sp, mem);
		send_byte(ack, 'f');
		c = recv_byte(cmd, 60000);
		int st;

		CHECK_EQ(waitpid(pid, &st, 0), pid);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CHECK(right(mem, -1));
	CHECK_EQ(samepage_close(sp), 0);
	(void)idx;
	_exit(0);
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
	skip("daemon_fork_becomes_client", "ThreadSanitizer cannot follow a threaded process "
	     "that starts threads in its child after fork");
#endif
	need_uffd("daemon_fork_becomes_client");
	CHECK(pipe(result) == 0 && pipe(go) == 0);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child a = child_start(client, 0), b = child_start(client, 1);

	CHECK_EQ(recv_byte(a.ack, 30000), 'r');
	CHECK_EQ(recv_byte(b.ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	set(sp, "max_page_sharing", 1000);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPG);
	CHECK_EQ(get(sp, "pages_sharing"), NPG);

	long merges = get(sp, "merges");

	send_byte(a.cmd, 'f');
	CHECK_EQ(recv_byte(a.ack, 30000), 'f');
	pid_t fpid = 0;
	struct pollfd p = { .fd = result[0], .events = POLLIN };

	CHECK_EQ(poll(&p, 1, 30000), 1);
	CHECK(read(result[0], &fpid, sizeof(fpid)) == (ssize_t)sizeof(fpid) && fpid > 0);
	CHECK_EQ(get(sp, "clients"), 4);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* its merged pages count at once, as its parent's */
	CHECK_EQ(get(sp, "pages_shared"), NPG);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	/* taken over as they were, not merged again */
	CHECK_EQ(get(sp, "merges"), merges);
	send_byte(go[1], 'w');
	CHECK_EQ(recv_byte(result[0], 30000), 'w');
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG - 1);
	send_byte(go[1], 'c');
	CHECK_EQ(recv_byte(result[0], 30000), 'c');
	send_byte(a.cmd, 'x');
	CHECK_EQ(child_wait(&a), 0);
	/* A and its fork gone: B and this one */
	for (int k = 0; k < 500 && get(sp, "clients") != 2; k++)
		usleep(10000);
	CHECK_EQ(get(sp, "clients"), 2);
	send_byte(b.cmd, 'x');
	CHECK_EQ(child_wait(&b), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_fork_becomes_client\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * daemon_dead_client_slots_back - what a client killed with SIGKILL held
 * comes back once nobody can map it, and not before.
 *   1. Client A merges NPAIR pairs of pages (NPAIR store slots), then makes
 *      a child K with a raw fork system call (no atfork handler runs: the
 *      daemon may not know K), and is killed.  K maps A's slots still: they
 *      stay (store_pages + store_pages_spent == NPAIR), and client B's new
 *      merges get slots of their own (store_slots 2 * NPAIR); K's pages read
 *      what A wrote, not B's content.
 *   2. K exits: A's slots are free again (store_pages_spent 0), B's are
 *      still in use; B is killed too: everything is free, and a new merge
 *      reuses the slots (store_slots stays 2 * NPAIR).
 */
#include <sys/syscall.h>

#include "daemon_util.h"

#define NPAIR	32

static uint64_t word(int who, int i, size_t k)
{
	return ((uint64_t)(who + 1) << 56) | ((uint64_t)(i % NPAIR) << 32) | k | 1;
}

static void fill(char *mem, int who)
{
	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			*(uint64_t *)(mem + i * page_size() + k) = word(who, i, k);
}

static void check(const char *mem, int who, const char *name)
{
	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < page_size(); k += 8) {
			uint64_t got = *(const uint64_t *)(mem + i * page_size() + k);

			if (got != word(who, i, k))
				FAIL("%s: page %d offset %zu reads %#llx, wrote %#llx", name, i, k,
				     (unsigned long long)got, (unsigned long long)word(who, i, k));
		}
}

/* A client: merge its pairs, say 'r'; idx 0 then makes K on 'k'. */
static void client(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	size_t len = 2 * NPAIR * page_size();
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	fill(mem, idx);
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 120000);

		if (c != 'k')
			break;
		long pid = syscall(SYS_fork);

		CHECK(pid >= 0);
		if (pid == 0) {
			/* K: no agent, no atfork; waits for 'x' (A is dead by then) */
			send_byte(ack, 'K');
			if (recv_byte(cmd, 120000) != 'x')
				_exit(1);
			check(mem, idx, "the raw fork of the killed client");
			send_byte(ack, 'k');
			_exit(0);
		}
	}
	_exit(0);
}

static long scan_until(struct samepage *sp, const char *name, long want)
{
	uint64_t until = now_ms() + 20000;
	long v;

	do {
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		v = get(sp, name);
		if (v == want)
			return v;
		usleep(100 * 1000);
	} while (now_ms() < until);
	return v;
}

static void kill_client(struct child *ch)
{
	kill(ch->pid, SIGKILL);
	CHECK_EQ(child_wait(ch), 128 + SIGKILL);
}

int main(void)
{
	need_uffd("daemon_dead_client_slots_back");
	/* (K is reparented to us when A dies: we can wait for it) */
	CHECK_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct samepage *sp = connect_daemon();
	struct child a = child_start(client, 0);

	CHECK_EQ(recv_byte(a.ack, 30000), 'r');
	CHECK_EQ(scan_until(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "store_slots"), NPAIR);
	send_byte(a.cmd, 'k');
	CHECK_EQ(recv_byte(a.ack, 30000), 'K');
	kill_client(&a);

	struct child b = child_start(client, 1);

	CHECK_EQ(recv_byte(b.ack, 30000), 'r');
	CHECK_EQ(scan_until(sp, "pages_sharing", NPAIR), NPAIR);	/* B's */
	for (int k = 0; k < 4; k++) {	/* (the daemon looks once a second) */
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		usleep(400 * 1000);
	}
	long pages = get(sp, "store_pages"), spent = get(sp, "store_pages_spent");
	long slots = get(sp, "store_slots");

	printf("A killed, K alive, B merged: store_pages %ld, store_pages_spent %ld, "
	       "store_slots %ld\n", pages, spent, slots);
	CHECK_EQ(pages + spent, 2 * NPAIR);	/* B's, and A's for K */
	CHECK_EQ(slots, 2 * NPAIR);
	send_byte(a.cmd, 'x');	/* K checks what A wrote, exits */
	CHECK_EQ(recv_byte(a.ack, 30000), 'k');
	int st;

	CHECK(wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(scan_until(sp, "store_pages_spent", 0), 0);
	CHECK_EQ(get(sp, "store_pages"), NPAIR);	/* B's */
	printf("K exited: store_pages %d, store_pages_spent 0\n", NPAIR);
	kill_client(&b);
	CHECK_EQ(scan_until(sp, "store_pages", 0), 0);
	CHECK_EQ(scan_until(sp, "store_pages_spent", 0), 0);
	/* and a new client's merges reuse them */
	struct child c = child_start(client, 2);

	CHECK_EQ(recv_byte(c.ack, 30000), 'r');
	CHECK_EQ(scan_until(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "store_slots"), 2 * NPAIR);
	printf("all gone, a new client merged: store_slots %d\n", 2 * NPAIR);
	kill_client(&c);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_dead_client_slots_back\n");
	return 0;
}

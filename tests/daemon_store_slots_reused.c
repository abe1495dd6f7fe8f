/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_slots_reused - store slots come back while the domain lives.
 * One client, NPAIR pairs of equal pages, merged: NPAIR KSM pages, NPAIR
 * store slots.  Then every page is written with content of its own: the
 * daemon sees the copies, its agent makes them private, its quarantine
 * finds no child that could map them and releases them; the slots are
 * free again (store_pages and store_pages_spent 0).  Five rounds, new
 * content each time: the store never grows past NPAIR slots (store_slots),
 * and every page reads what was written last.  (What a client that dies
 * held stays spent: a child of it the daemon does not know may map it.)
 * Before slots were released they were never handed out again:
 * store_slots grew by NPAIR every round.
 */
#include "daemon_util.h"

#define NPAIR	64
#define ROUNDS	5

static char *mem;

static void fill(int round)
{
	size_t pg = page_size();

	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < pg; k += 8)
			*(uint64_t *)(mem + i * pg + k) =
				((uint64_t)round << 48) | ((uint64_t)(i % NPAIR) << 32) | k | 1;
}

static void fill_unique(int round)
{
	size_t pg = page_size();

	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < pg; k += 8)
			*(uint64_t *)(mem + i * pg + k) =
				((uint64_t)(round | 0x80) << 48) | ((uint64_t)i << 32) | k | 1;
}

static void check(int round, bool unique, const char *who)
{
	size_t pg = page_size();

	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < pg; k += 8) {
			uint64_t want = unique ?
				((uint64_t)(round | 0x80) << 48) | ((uint64_t)i << 32) | k | 1 :
				((uint64_t)round << 48) | ((uint64_t)(i % NPAIR) << 32) | k | 1;
			uint64_t got = *(uint64_t *)(mem + i * pg + k);

			if (got != want)
				FAIL("%s, round %d: page %d offset %zu reads %#llx, wrote %#llx",
				     who, round, i, k, (unsigned long long)got,
				     (unsigned long long)want);
		}
}

/* The client: 'f' fill round r (next byte), 'u' unique, 'c' check, 'q' quit. */
static void client(int cmd, int ack, int idx)
{
	(void)idx;
	struct samepage *sp = connect_daemon();
	size_t len = 2 * NPAIR * page_size();
	int round = 0;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	fill(0);
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 120000);

		if (c == 'f') {
			round = recv_byte(cmd, 1000);
			fill(round);
			check(round, false, "client");
		} else if (c == 'u') {
			fill_unique(round);
			check(round, true, "client");
		} else if (c == 'c') {
			check(round, false, "client before its writes");
		} else {
			break;
		}
		send_byte(ack, 'd');
	}
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static void ask(struct child *ch, char c)
{
	send_byte(ch->cmd, c);
	CHECK_EQ(recv_byte(ch->ack, 60000), 'd');
}

/* Scan until @name reads @want (at most 20 s); its last value. */
static long scan_until(struct samepage *sp, const char *name, long want)
{
	uint64_t until = now_ms() + 20000;
	long v;

	do {
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		v = get(sp, name);
		if (v == want)
			return v;
		usleep(100 * 1000);	/* (the agent's quarantine looks every 250 ms) */
	} while (now_ms() < until);
	return v;
}

int main(void)
{
	need_uffd("daemon_store_slots_reused");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(client, 0);
	struct samepage *sp = connect_daemon();

	CHECK_EQ(recv_byte(ch.ack, 30000), 'r');
	for (int round = 1; round <= ROUNDS; round++) {
		send_byte(ch.cmd, 'f');
		ask(&ch, (char)round);
		CHECK_EQ(scan_until(sp, "pages_sharing", NPAIR), NPAIR);
		CHECK_EQ(get(sp, "pages_shared"), NPAIR);
		CHECK_EQ(get(sp, "store_pages"), NPAIR);
		long slots = get(sp, "store_slots");

		printf("round %d: merged, store_pages %d, store_slots %ld\n", round, NPAIR, slots);
		if (slots != NPAIR)
			FAIL("round %d: the store has %ld slots, %d were enough (not reused)",
			     round, slots, NPAIR);
		ask(&ch, 'c');
		ask(&ch, 'u');
		CHECK_EQ(scan_until(sp, "store_pages", 0), 0);
		long spent = scan_until(sp, "store_pages_spent", 0);

		if (spent != 0)
			FAIL("round %d: %ld slots still spent 20 s after the last writes", round,
			     spent);
		CHECK_EQ(get(sp, "pages_sharing"), 0);
	}
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_slots_reused\n");
	return 0;
}

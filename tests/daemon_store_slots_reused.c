/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_slots_reused - store slots come back while the domain lives.
 * One client, NPAIR pairs of equal pages, merged: NPAIR KSM pages in NPAIR
 * store slots.  Then every page is written with content of its own: the
 * daemon sees the copies, the agent makes them private, the slots are
 * spent; the sweep finds no process mapping them and frees them
 * (store_pages_spent 0, store_pages_reclaimed + NPAIR).  Five rounds, new
 * content each time: the store never grows past NPAIR slots (store_slots),
 * and every page reads what was written last.  Before the sweep a slot
 * named to an agent once was never handed out again: store_slots grew by
 * NPAIR every round.
 */
#include "daemon_util.h"

#define NPAIR	64
#define ROUNDS	5

#include "daemon_store_pages.h"

int main(void)
{
	need_uffd("daemon_store_slots_reused");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(store_client, 0);
	struct samepage *sp = connect_daemon();

	store_knobs(sp);
	CHECK_EQ(recv_byte(ch.ack, 30000), 'r');
	for (int round = 1; round <= ROUNDS; round++) {
		long reclaimed = get(sp, "store_pages_reclaimed");

		send_byte(ch.cmd, 'f');
		store_ask(&ch, (char)round);
		CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
		CHECK_EQ(get(sp, "pages_shared"), NPAIR);
		CHECK_EQ(get(sp, "store_pages"), NPAIR);
		long slots = get(sp, "store_slots");

		printf("round %d: merged, store_pages %d, store_slots %ld\n", round, NPAIR, slots);
		if (slots != NPAIR)
			FAIL("round %d: the store has %ld slots, %d were enough (not reused)",
			     round, slots, NPAIR);
		store_ask(&ch, 'c');
		store_ask(&ch, 'u');
		CHECK_EQ(wait_counter(sp, "store_pages", 0), 0);
		long spent = wait_counter(sp, "store_pages_spent", 0);

		if (spent != 0)
			FAIL("round %d: %ld slots still spent 20 s after the last writes", round,
			     spent);
		CHECK_EQ(get(sp, "store_pages_reclaimed") - reclaimed, NPAIR);
		CHECK_EQ(get(sp, "pages_sharing"), 0);
		store_ask(&ch, 'U');
	}
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_slots_reused\n");
	return 0;
}

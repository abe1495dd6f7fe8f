/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_slot_kept_while_child_maps - a spent store slot is reused
 * only once no process can map it.  A client merges NPAIR pairs (NPAIR
 * slots) and forks a child by the raw system call: not a client, unknown
 * to the daemon, it maps the same store pages.  The client then writes
 * every page (the slots are spent: no record names them) and merges new
 * pairs: the sweep sees the child's mappings, keeps the old slots, and the
 * new pages take NPAIR new ones (store_slots 2 * NPAIR); the child still
 * reads exactly the first content.  Once the child has exited the old
 * slots are free (store_pages_spent 0) and a third content reuses them
 * (store_slots stays 2 * NPAIR).  Reusing by the records alone would have
 * shown the child the second content.
 */
#include "daemon_util.h"

#define NPAIR	64

#include "daemon_store_pages.h"

int main(void)
{
	need_uffd("daemon_store_slot_kept_while_child_maps");
	daemon_socket();
	store_pipes();
	pid_t dpid = daemon_start();
	struct child ch = child_start(store_client, 0);
	struct samepage *sp = connect_daemon();

	store_knobs(sp);
	CHECK_EQ(recv_byte(ch.ack, 30000), 'r');
	send_byte(ch.cmd, 'f');
	store_ask(&ch, 1);
	CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "store_slots"), NPAIR);
	store_ask(&ch, 'k');		/* the child maps round 1's store pages */
	store_ask(&ch, 'u');
	CHECK_EQ(wait_counter(sp, "store_pages", 0), 0);
	CHECK_EQ(wait_counter(sp, "store_pages_spent", NPAIR), NPAIR);
	/* two sweeps at least: the child's mappings keep every slot */
	long sweeps = get(sp, "store_sweeps");

	CHECK(wait_counter(sp, "store_sweeps", sweeps + 2) >= sweeps + 2);
	CHECK_EQ(get(sp, "store_pages_spent"), NPAIR);
	CHECK_EQ(get(sp, "store_pages_reclaimed"), 0);
	send_byte(ch.cmd, 'f');
	store_ask(&ch, 2);
	CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "store_slots"), 2 * NPAIR);
	printf("round 2 merged beside the child: store_slots %ld, spent %ld\n",
	       get(sp, "store_slots"), get(sp, "store_pages_spent"));
	send_byte(kid_go[1], 'c');	/* the child checks round 1's content */
	CHECK_EQ(recv_byte(kid_ack[0], 30000), 'K');
	send_byte(kid_go[1], 'x');
	store_ask(&ch, 'w');
	CHECK_EQ(wait_counter(sp, "store_pages_spent", 0), 0);
	CHECK_EQ(get(sp, "store_pages_reclaimed"), NPAIR);
	store_ask(&ch, 'u');
	CHECK_EQ(wait_counter(sp, "store_pages", 0), 0);
	send_byte(ch.cmd, 'f');
	store_ask(&ch, 3);
	CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "store_slots"), 2 * NPAIR);
	store_ask(&ch, 'c');
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_slot_kept_while_child_maps\n");
	return 0;
}

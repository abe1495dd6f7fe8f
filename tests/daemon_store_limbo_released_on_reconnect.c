/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_limbo_released_on_reconnect - the store pages held for a
 * client that did not answer a merge (see
 * daemon_store_limbo_kept_while_client_stopped) are freed as soon as that
 * same agent connects again, not only when its process exits.  A client
 * with NPAIR pairs of equal pages is stopped (SIGSTOP) between the two
 * passes that merge them; the daemon names NPAIR store pages in a MERGE,
 * gets no answer and drops it.  Continued, the agent finishes that request
 * (it may map those pages: the daemon is gone for it), makes its pages
 * private again and says hello with the same agent instance: the daemon
 * then knows that nothing of the old request can come late, and the
 * sweeps free the NPAIR pages while the process lives (before, they stayed
 * spent until it exited).  The client's memory reads what it wrote, and
 * its pairs merge again through the new connection.
 */
#include "daemon_util.h"

#define NPAIR	32

#include "daemon_store_pages.h"

int main(void)
{
	need_uffd("daemon_store_limbo_released_on_reconnect");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(store_client, 0);
	struct samepage *sp = connect_daemon();

	store_merge_unanswered(sp, &ch);
	long reclaimed = get(sp, "store_pages_reclaimed");

	/* continued: it finds the request, the daemon gone for it, and
	 * connects again */
	CHECK(kill(ch.pid, SIGCONT) == 0);
	CHECK_EQ(wait_counter(sp, "clients", 2), 2);
	set(sp, "sleep_millisecs", 20);
	set(sp, "run", 1);	/* (the sweeps are the scanner's) */
	CHECK_EQ(wait_counter(sp, "store_pages_spent", 0), 0);
	long freed = get(sp, "store_pages_reclaimed") - reclaimed;

	printf("reconnected: clients %ld, store_pages_spent 0, reclaimed %ld, process alive\n",
	       get(sp, "clients"), freed);
	CHECK(freed >= NPAIR);
	CHECK(kill(ch.pid, 0) == 0);
	store_ask(&ch, 'c');	/* its memory reads what it wrote */
	/* and the new connection merges them again */
	CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
	CHECK_EQ(get(sp, "pages_shared"), NPAIR);
	CHECK_EQ(get(sp, "store_pages"), NPAIR);
	store_ask(&ch, 'c');
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(wait_counter(sp, "store_pages", 0), 0);
	CHECK_EQ(wait_counter(sp, "store_pages_spent", 0), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_limbo_released_on_reconnect\n");
	return 0;
}

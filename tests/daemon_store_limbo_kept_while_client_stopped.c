/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_limbo_kept_while_client_stopped - store pages named in a
 * merge that got no answer are not given to other content while the
 * client that was asked lives.  A client with NPAIR pairs of equal pages
 * is stopped (SIGSTOP) between the two passes that merge them: the daemon
 * writes NPAIR store pages, names them in a MERGE, waits SD_ANSWER_MS for
 * the answer and drops the client.  Nobody maps those pages (the sweep
 * finds no mapping), but the stopped agent still has the request in its
 * socket and would map them once it runs: they must stay spent across
 * sweeps (store_pages_spent NPAIR, nothing reclaimed).  Continued, the
 * client's memory reads what it wrote; once it exited, the sweeps free
 * them (or once the same agent connected again:
 * daemon_store_limbo_released_on_reconnect).
 */
#include "daemon_util.h"

#define NPAIR	32

#include "daemon_store_pages.h"

int main(void)
{
	need_uffd("daemon_store_limbo_kept_while_client_stopped");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(store_client, 0);
	struct samepage *sp = connect_daemon();

	store_merge_unanswered(sp, &ch);
	long reclaimed = get(sp, "store_pages_reclaimed"), sweeps = get(sp, "store_sweeps");

	/* the scanner sweeps (nothing else to scan: the client is gone) */
	set(sp, "sleep_millisecs", 20);
	set(sp, "run", 1);
	for (int k = 0; k < 100 && get(sp, "store_sweeps") < sweeps + 3; k++)
		usleep(50 * 1000);
	long spent = get(sp, "store_pages_spent");

	printf("stopped client: %ld sweeps, store_pages_spent %ld, reclaimed %ld\n",
	       get(sp, "store_sweeps") - sweeps, spent,
	       get(sp, "store_pages_reclaimed") - reclaimed);
	if (spent != NPAIR)
		dump_counters(sp);
	CHECK_EQ(spent, NPAIR);
	CHECK_EQ(get(sp, "store_pages_reclaimed"), reclaimed);
	CHECK(get(sp, "store_sweeps") >= sweeps + 3);

	/* continued: it finds the request, and the daemon gone for it */
	CHECK(kill(ch.pid, SIGCONT) == 0);
	store_ask(&ch, 'c');	/* its memory reads what it wrote */
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(wait_counter(sp, "store_pages_spent", 0), 0);
	printf("after its exit: reclaimed %ld\n", get(sp, "store_pages_reclaimed") - reclaimed);
	CHECK(get(sp, "store_pages_reclaimed") - reclaimed >= NPAIR);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_limbo_kept_while_client_stopped\n");
	return 0;
}

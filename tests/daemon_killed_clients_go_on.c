/* SPDX-License-Identifier: MIT */
/*
 * daemon_killed_clients_go_on - the daemon killed with SIGKILL while it
 * merges the pages of three clients whose writers keep writing
 * (daemon_writers.h): no writer stays parked (every one of them goes on),
 * the merged pages stay valid, calls that need the daemon fail at once
 * with -ENOTCONN; a new daemon on the same socket gets every client back
 * by itself (the agents reconnect) and merges again; in the end every page
 * is what its writer wrote.  Seed printed (SAMEPAGE_SEED to repeat).
 */
#include "daemon_writers.h"

#define NPROC 3
#define NPG 256

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	unsigned int seed = 0;

	CHECK(read(cmd, &seed, sizeof(seed)) == (ssize_t)sizeof(seed));
	writers_start(sp, NPG, seed + (unsigned int)idx, idx);
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 300000);

		if (c != 'k')
			break;
		/* the daemon is dead: every writer must go on */
		long before[NWRITERS];
		long v;

		for (int w = 0; w < NWRITERS; w++)
			before[w] = writers_ops(w);
		/* (within 3 s: on a loaded machine, and under ThreadSanitizer, a
		 * writer that goes on may still get no CPU for a few 100 ms) */
		for (int w = 0; w < NWRITERS; w++) {
			for (int t = 0; t < 300 && writers_ops(w) <= before[w] + 10; t++)
				usleep(10000);
			if (writers_ops(w) <= before[w] + 10)
				FAIL("process %d: writer %d stopped (%ld -> %ld operations in 3 s)",
				     idx, w, before[w], writers_ops(w));
		}
		CHECK_EQ(samepage_get(sp, "run", &v), -ENOTCONN);
		send_byte(ack, 'p');
	}
	writers_stop_and_verify();
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static long get_when_connected(struct samepage *sp, const char *name)
{
	long v = -1;
	int err = 0;

	for (int k = 0; k < 1000; k++) {
		err = samepage_get(sp, name, &v);
		if (err != -ENOTCONN)
			break;
		usleep(10000);
	}
	if (err)
		FAIL("samepage_get(%s): %s", name, strerror(-err));
	return v;
}

int main(void)
{
	need_uffd("daemon_killed_clients_go_on");
	const char *e = getenv("SAMEPAGE_SEED");
	unsigned int seed = e ? (unsigned int)strtoul(e, NULL, 0) : (unsigned int)time(NULL);

	printf("seed %u\n", seed);
	fflush(stdout);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch[NPROC];

	for (int i = 0; i < NPROC; i++) {
		ch[i] = child_start(child, i);
		CHECK(write(ch[i].cmd, &seed, sizeof(seed)) == (ssize_t)sizeof(seed));
	}
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	set(sp, "pages_to_scan", 200);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	for (int k = 0; k < 1000 && get(sp, "merges") < 200; k++)
		usleep(5000);
	CHECK(get(sp, "merges") >= 200);
	kill(dpid, SIGKILL);
	int st;

	CHECK_EQ(waitpid(dpid, &st, 0), dpid);
	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'k');
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'p');

	/* a new daemon: everybody comes back */
	dpid = daemon_start();
	for (int k = 0; k < 1000 && get_when_connected(sp, "clients") != NPROC + 1; k++)
		usleep(10000);
	CHECK_EQ(get(sp, "clients"), NPROC + 1);
	set(sp, "pages_to_scan", 200);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	for (int k = 0; k < 1000 && get(sp, "merges") < 200; k++)
		usleep(5000);
	CHECK(get(sp, "merges") >= 200);
	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'x');
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(child_wait(&ch[i]), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_killed_clients_go_on\n");
	return 0;
}

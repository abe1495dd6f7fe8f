/* SPDX-License-Identifier: MIT */
/*
 * daemon_nolostwrites - writers in three clients of one daemon (plain
 * stores, read(2) into memory, atomics; daemon_writers.h), each checked
 * against a shadow copy, while the daemon merges (ksmd with sleep 0, and
 * synchronous full scans), unmerges (run=2) and merges again, with and
 * without use_zero_pages.  No write may be lost.  Seed printed
 * (SAMEPAGE_SEED to repeat); SAMEPAGE_STRESS_SECONDS, SAMEPAGE_STRESS_PAGES.
 */
#include "daemon_writers.h"

#include "linux_internal.h"	/* (the agent's own counters) */

#define NPROC 3

static size_t npg = 256;

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	unsigned int seed = 0;

	CHECK(read(cmd, &seed, sizeof(seed)) == (ssize_t)sizeof(seed));
	writers_start(sp, npg, seed + (unsigned int)idx, idx);
	send_byte(ack, 'r');
	(void)recv_byte(cmd, 600000);
	writers_stop_and_verify();
	/* (the agent thread counts aborted runs under the handle's lock) */
	sp_lock(sp);
	long aborted = sp->runs_aborted;

	sp_unlock(sp);
	long n[3] = { 0, atomic_load(&sp->writers_parked), aborted };

	for (int w = 0; w < NWRITERS; w++)
		n[0] += writers_ops(w);
	CHECK(write(ack, n, sizeof(n)) == (ssize_t)sizeof(n));
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

int main(void)
{
	need_uffd("daemon_nolostwrites");
	const char *e = getenv("SAMEPAGE_SEED");
	unsigned int seed = e ? (unsigned int)strtoul(e, NULL, 0) : (unsigned int)time(NULL);
	double secs = getenv("SAMEPAGE_STRESS_SECONDS") ? atof(getenv("SAMEPAGE_STRESS_SECONDS")) : 5;

	if (getenv("SAMEPAGE_STRESS_PAGES"))
		npg = (size_t)atol(getenv("SAMEPAGE_STRESS_PAGES"));
	printf("seed %u, %zu pages x %d processes, %.0f s\n", seed, npg, NPROC, secs);
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
	uint64_t end = now_ms() + (uint64_t)(secs * 1000);
	long merges = 0, rounds = 0;

	set(sp, "pages_to_scan", 200);
	set(sp, "sleep_millisecs", 0);
	while (now_ms() < end) {
		set(sp, "use_zero_pages", rounds % 2);
		set(sp, "run", 1);
		usleep(150000);
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		merges = get(sp, "merges");
		set(sp, "run", 2);	/* every page private again */
		CHECK_EQ(get(sp, "pages_shared"), 0);
		CHECK_EQ(get(sp, "pages_sharing"), 0);
		set(sp, "run", 0);
		rounds++;
	}
	set(sp, "run", 1);
	usleep(100000);
	long ops = 0, parked = 0, aborted = 0;

	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'x');
	for (int i = 0; i < NPROC; i++) {
		long n[3] = { 0 };

		CHECK(read(ch[i].ack, n, sizeof(n)) == (ssize_t)sizeof(n));
		ops += n[0];
		parked += n[1];
		aborted += n[2];
		CHECK_EQ(child_wait(&ch[i]), 0);
	}
	printf("%ld rounds, %ld pages merged by agents, %ld refused, %ld writer operations, "
	       "%ld writers parked, %ld runs aborted, 0 mismatches\n", rounds, merges,
	       get(sp, "merges_refused"), ops, parked, aborted);
	CHECK(merges > 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_nolostwrites\n");
	return 0;
}

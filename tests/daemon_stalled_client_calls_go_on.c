/* SPDX-License-Identifier: MIT */
/*
 * daemon_stalled_client_calls_go_on - a client that does not answer the
 * daemon's MERGE within SD_ANSWER_MS (stopped, stalled on a loaded machine;
 * here its agent waits for the handle's lock, which a thread holds) is
 * disconnected by the daemon.  Its calls made before its agent has seen the
 * hang-up go on: samepage_get says -ENOTCONN (not reachable: the agent
 * reconnects by itself), samepage_madvise / samepage_discard /
 * samepage_free succeed (they once failed with EPIPE, and `samepage run`
 * passed that on to the program's own madvise(MADV_DONTNEED)); its memory is
 * what it wrote; its agent connects again and its pages merge exactly
 * (pages_shared 4, pages_sharing 60); when it leaves, nothing of it is
 * counted.
 */

#include "daemon_util.h"

#include <pthread.h>
#include "linux_internal.h"

#define NPG 64	/* 4 contents, 16 pages each */
#define NPG2 16

static void fill(char *mem, size_t npg, unsigned int salt)
{
	for (size_t i = 0; i < npg; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k,
			       &(uint64_t){ 0x5100000000000000ull + (i % 4) * 7919 + k + salt }, 8);
}

/* A thread that holds the handle's lock until told (the program's own
 * threads then call the library in its lock order). */
static struct samepage *held;
static int hold_pipe[2], holding_pipe[2];

static void *holder(void *arg)
{
	(void)arg;
	sp_lock(held);
	send_byte(holding_pipe[1], 'l');
	(void)recv_byte(hold_pipe[0], 60000);
	sp_unlock(held);
	return NULL;
}

static void stalled(int cmd, int ack, int idx)
{
	(void)idx;
	struct samepage *sp = connect_daemon();
	size_t ps = page_size();
	char *mem = samepage_alloc(sp, NPG * ps);
	char *want = malloc(NPG * ps);

	CHECK(mem && want);
	fill(mem, NPG, 0);
	fill(want, NPG, 0);
	send_byte(ack, 'r');
	CHECK_EQ(recv_byte(cmd, 60000), 'h');
	/* the agent's next request of the daemon waits for this lock */
	pthread_t t;

	held = sp;
	CHECK(pipe(hold_pipe) == 0 && pipe(holding_pipe) == 0);
	CHECK(pthread_create(&t, NULL, holder, NULL) == 0);
	CHECK_EQ(recv_byte(holding_pipe[0], 60000), 'l');
	send_byte(ack, 'h');
	CHECK_EQ(recv_byte(cmd, 60000), 'g');
	/* disconnected meanwhile; the agent has not seen it (it waits) */
	long v = -1;

	CHECK_EQ(samepage_get(sp, "run", &v), -ENOTCONN);
	send_byte(hold_pipe[1], 'u');
	CHECK(pthread_join(t, NULL) == 0);
	char *more = mmap(NULL, NPG2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	CHECK(more != MAP_FAILED);
	fill(more, NPG2, 1);
	CHECK_EQ(samepage_madvise(sp, more, NPG2 * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_discard(sp, more, NPG2 / 2 * ps), 0);
	for (size_t k = 0; k < NPG2 / 2 * ps; k++)
		if (more[k])
			FAIL("byte %zu of discarded memory: %#x, not 0", k, (unsigned char)more[k]);
	CHECK_EQ(samepage_free(sp, more, NPG2 * ps), 0);
	if (memcmp(mem, want, NPG * ps))
		FAIL("its memory changed");
	send_byte(ack, 'd');
	CHECK_EQ(recv_byte(cmd, 60000), 'c');
	if (memcmp(mem, want, NPG * ps))
		FAIL("its memory changed once merged again");
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static long wait_for(struct samepage *sp, const char *name, long want, int ms)
{
	long v = -1;

	for (int t = 0; t < ms / 10; t++) {
		v = get(sp, name);
		if (v == want)
			break;
		usleep(10000);
	}
	return v;
}

int main(void)
{
	need_uffd("daemon_stalled_client_calls_go_on");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child a = child_start(stalled, 0);

	CHECK_EQ(recv_byte(a.ack, 60000), 'r');
	struct samepage *sp = connect_daemon();

	CHECK_EQ(get(sp, "clients"), 2);
	send_byte(a.cmd, 'h');
	CHECK_EQ(recv_byte(a.ack, 60000), 'h');
	uint64_t t0 = now_ms();

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	uint64_t waited = now_ms() - t0;

	printf("the scans took %llu ms (the daemon gave up on the client)\n",
	       (unsigned long long)waited);
	CHECK(waited >= 4000);
	CHECK_EQ(get(sp, "clients"), 1);
	/* an exiting mm: its rmap items go at the scanner's next step */
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	send_byte(a.cmd, 'g');
	CHECK_EQ(recv_byte(a.ack, 60000), 'd');
	/* the agent connects again by itself, with its one range */
	CHECK_EQ(wait_for(sp, "clients", 2, 20000), 2);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), NPG - 4);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	send_byte(a.cmd, 'c');
	CHECK_EQ(child_wait(&a), 0);
	CHECK_EQ(wait_for(sp, "clients", 1, 20000), 1);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	CHECK_EQ(get(sp, "pages_volatile"), 0);
	CHECK_EQ(get(sp, "store_pages"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_stalled_client_calls_go_on\n");
	return 0;
}

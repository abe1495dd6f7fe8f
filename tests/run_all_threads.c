/* SPDX-License-Identifier: MIT */
/*
 * run_all_threads - `samepage run --all` on a program with four threads
 * that each map, fill, check, DONTNEED (zeros), munmap and malloc memory of
 * their own while the rescans register it and the daemon merges it: no
 * thread ever hangs (a thread unmerging its own memory never finds its
 * stack or TLS protected), every byte is right.
 *
 * The daemon's scanner runs as well, so its sweeps free spent store pages
 * and new merges reuse them while the threads churn (about 100 a run): a
 * store page reused while some page still mapped it would show up here as
 * wrong bytes.  (This churn once crashed the daemon in rb_erase: a page gone
 * between follow_page and read_page, fixed in the engine and pinned down by
 * core_page_gone_before_read_leaves_tree.)  SAMEPAGE_RUN_THREADS=0 skips it.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "run_util.h"

#define THREADS 4
#define NP 16

static _Atomic bool stop;
static _Atomic long bad, rounds;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	size_t ps = page_size();

	while (!atomic_load(&stop)) {
		unsigned char *p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *m = malloc(20000);

		if (p == MAP_FAILED || !m) {
			atomic_fetch_add(&bad, 1);
			return NULL;
		}
		/* even pages alike in every thread, odd ones this thread's */
		for (size_t k = 0; k < NP * ps; k++)
			p[k] = (k / ps) % 2 ? (unsigned char)(id * 16 + k / ps) : 0x5A;
		memset(m, id + 1, 20000);
		usleep(30000);	/* (a rescan or two, a scan of the daemon) */
		for (size_t k = 0; k < NP * ps; k++)
			if (p[k] != ((k / ps) % 2 ? (unsigned char)(id * 16 + k / ps) : 0x5A))
				atomic_fetch_add(&bad, 1);
		if (madvise(p, NP / 2 * ps, MADV_DONTNEED))
			atomic_fetch_add(&bad, 1);
		for (size_t k = 0; k < NP / 2 * ps; k++)
			if (p[k])
				atomic_fetch_add(&bad, 1);
		for (size_t k = 0; k < 20000; k++)
			if (m[k] != id + 1)
				atomic_fetch_add(&bad, 1);
		free(m);
		if (munmap(p, NP * ps))
			atomic_fetch_add(&bad, 1);
		atomic_fetch_add(&rounds, 1);
	}
	return NULL;
}

static int child(int cmd, int ack)
{
	pthread_t t[THREADS];

	(void)cmd;
	send_byte(ack, 'r');
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i))
			return 2;
	sleep(3);
	atomic_store(&stop, true);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	printf("%ld rounds, %ld wrong bytes or failed calls\n", atomic_load(&rounds),
	       atomic_load(&bad));
	if (atomic_load(&bad) || !atomic_load(&rounds))
		return 1;
	send_byte(ack, 'y');
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	const char *opt = getenv("SAMEPAGE_RUN_THREADS");

	if (opt && !strcmp(opt, "0"))
		skip("run_all_threads", "SAMEPAGE_RUN_THREADS=0");
	pid_t d = run_setup("run_all_threads", argv[0]);
	const char *opts[] = { "--all", NULL };
	struct child c = run_child(opts, "0", "SAMEPAGE_RUN_RESCAN_MS=10");

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program did not start (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();
	long most = 0;

	/* the scanner thread runs too: it sweeps, and spent store pages are
	 * reused while the program runs */
	set(sp, "sleep_millisecs", 10);
	set(sp, "run", 1);

	for (;;) {
		struct pollfd p = { .fd = c.ack, .events = POLLIN };

		if (poll(&p, 1, 0) == 1)
			break;
		if (samepage_scan(sp, 1000))
			FAIL("scan: %s", samepage_last_error());
		long v = get(sp, "pages_sharing");

		most = v > most ? v : most;
		usleep(5000);
	}
	int r = recv_byte(c.ack, 30000);

	printf("most pages_sharing meanwhile: %ld; store sweeps %ld, store pages reused %ld\n",
	       most, get(sp, "store_sweeps"), get(sp, "store_pages_reclaimed"));
	if (r != 'y')
		FAIL("the program failed: exit status %d", child_wait(&c));
	CHECK(most > 0);
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_all_threads\n");
	return 0;
}

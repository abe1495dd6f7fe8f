/* SPDX-License-Identifier: MIT */
/*
 * real_signal_handler_writes_kept - writes made by signal handlers are
 * never lost, and a signal never breaks a write parked on a page being
 * merged.  A timer (ITIMER_REAL, every 200 us, SIGALRM) interrupts the main
 * thread, whose handler rewrites one page of registered memory (its own
 * half) and notes the value in a shadow; the main thread meanwhile writes
 * the other half, while the scanner merges at full speed (run=1,
 * sleep_millisecs=0: pages of 8 kinds, many equal, so merges and
 * copy-on-write breaks never stop).  A handler can interrupt the main
 * thread while its own store is parked in a write-protect fault, and then
 * take such a fault itself.  With signals blocked, every page is checked
 * against the shadow every 2,000 writes of the main thread, for 3 s; after
 * samepage_close once more.  The seed
 * of the writers' order is printed.
 */
#include "real_util.h"

#include <signal.h>
#include <sys/time.h>
#include <time.h>

#define NP	512	/* pages: [0, NP/2) the handler's, the rest the main thread's */

static size_t ps;
static unsigned char *mem;
static unsigned char want[NP];		/* the value every byte of page i holds */
static volatile sig_atomic_t next;	/* the handler's next page */
static volatile long handled;

static void fill(size_t i, unsigned char v)
{
	memset(mem + i * ps, v, ps);
	want[i] = v;
}

static void on_alarm(int sig)
{
	(void)sig;
	size_t i = (size_t)next;

	next = (sig_atomic_t)((i + 7) % (NP / 2));
	fill(i, (unsigned char)((want[i] + 1) % 8 + 1));
	handled++;
}

static void check_all(const char *when)
{
	for (size_t i = 0; i < NP; i++)
		for (size_t k = 0; k < ps; k++)
			if (mem[i * ps + k] != want[i])
				FAIL("%s: page %zu byte %zu reads %#x, written %#x (lost write)", when,
				     i, k, mem[i * ps + k], want[i]);
}

int main(void)
{
	real_test_name = "real_signal_handler_writes_kept";
	ps = page_size();
	struct samepage *sp = open_or_skip();
	unsigned int seed = (unsigned int)time(NULL);
	sigset_t alrm, old;

	printf("seed %u\n", seed);
	srand(seed);
	mem = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	for (size_t i = 0; i < NP; i++)
		fill(i, (unsigned char)(i % 8 + 1));
	CHECK_EQ(samepage_madvise(sp, mem, NP * ps, SAMEPAGE_MERGEABLE), 0);
	set(sp, "pages_to_scan", 100000);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);

	struct sigaction sa = { .sa_handler = on_alarm };

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	struct itimerval it = { .it_interval = { 0, 200 }, .it_value = { 0, 200 } };

	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	long writes = 0;

	struct timespec t0, t;
	int rounds = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int k = 0; k < 2000; k++) {
			size_t i = NP / 2 + (size_t)rand() % (NP / 2);

			fill(i, (unsigned char)((want[i] + rand() % 3) % 8 + 1));
			writes++;
			if (k % 64 == 0)
				usleep(50);	/* (time for merges to finish) */
		}
		CHECK(sigprocmask(SIG_BLOCK, &alrm, &old) == 0);
		check_all("while merging");
		CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 3 || rounds < 10);
	it = (struct itimerval){ 0 };
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	printf("%ld handler writes, %ld main-thread writes, %ld merges, %ld writers parked, "
	       "%ld runs aborted\n", (long)handled, writes, get(sp, "merges"),
	       get(sp, "writers_parked"), get(sp, "runs_aborted"));
	CHECK(handled > 100);
	CHECK(get(sp, "merges") > 0);
	check_all("at the end");
	CHECK_EQ(samepage_close(sp), 0);
	check_all("after close");
	printf("PASS real_signal_handler_writes_kept\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_pages.h - the client of the store tests: 2 * NPAIR pages,
 * page i equal to page i + NPAIR in each round, or all unique; driven by
 * one-byte commands.  Define NPAIR first.
 */
#ifndef SAMEPAGE_TESTS_DAEMON_STORE_PAGES_H
#define SAMEPAGE_TESTS_DAEMON_STORE_PAGES_H

static char *store_mem;
static int kid_go[2], kid_ack[2];	/* the test <-> the raw-forked child */
static pid_t kid_pid;

static inline uint64_t store_word(int round, bool unique, int i, size_t k)
{
	return unique ? ((uint64_t)(round | 0x80) << 48) | ((uint64_t)i << 32) | k | 1 :
			((uint64_t)round << 48) | ((uint64_t)(i % NPAIR) << 32) | k | 1;
}

static inline void store_fill(int round, bool unique)
{
	size_t pg = page_size();

	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < pg; k += 8)
			*(uint64_t *)(store_mem + i * pg + k) = store_word(round, unique, i, k);
}

/* Does every page read round @round's content?  Fails the test if not. */
static inline void store_check(const char *mem, int round, bool unique, const char *who)
{
	size_t pg = page_size();

	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < pg; k += 8) {
			uint64_t want = store_word(round, unique, i, k);
			uint64_t got = *(const uint64_t *)(mem + i * pg + k);

			if (got != want)
				FAIL("%s, round %d: page %d offset %zu reads %#llx, wrote %#llx",
				     who, round, i, k, (unsigned long long)got,
				     (unsigned long long)want);
		}
}

/*
 * The client: 'f' + round: fill that round's pairs; 'u': unique content;
 * 'U': check the unique content; 'c': check the pairs; 'k': fork a child
 * by the raw system call (no atfork handler: not a client) that checks the
 * pairs when it reads a byte on kid_go, answers 'K' on kid_ack, and exits
 * on the next byte; 'w': reap it; 'q': quit.  Answers 'd'.  Call
 * store_pipes() before starting the client.
 */
static inline void store_client(int cmd, int ack, int idx)
{
	(void)idx;
	struct samepage *sp = connect_daemon();
	size_t len = 2 * NPAIR * page_size();
	int round = 0;

	store_mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(store_mem != MAP_FAILED);
	store_fill(0, true);
	CHECK_EQ(samepage_madvise(sp, store_mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 120000);

		if (c == 'f') {
			round = recv_byte(cmd, 1000);
			store_fill(round, false);
			store_check(store_mem, round, false, "client");
		} else if (c == 'u') {
			store_fill(round, true);
			store_check(store_mem, round, true, "client");
		} else if (c == 'U') {
			store_check(store_mem, round, true, "client after merges");
		} else if (c == 'c') {
			store_check(store_mem, round, false, "client before its writes");
		} else if (c == 'k') {
			pid_t pid = (pid_t)syscall(SYS_fork);

			CHECK(pid >= 0);
			if (pid == 0) {
				char b;

				/* (never outlive a failed test) */
				(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
				close(kid_go[1]);
				close(kid_ack[0]);

				if (read(kid_go[0], &b, 1) != 1)
					_exit(1);
				store_check(store_mem, round, false, "raw-forked child");
				send_byte(kid_ack[1], 'K');
				if (read(kid_go[0], &b, 1) != 1)
					_exit(1);
				_exit(0);
			}
			kid_pid = pid;
		} else if (c == 'w') {
			int st;

			CHECK_EQ(waitpid(kid_pid, &st, 0), kid_pid);
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		} else {
			break;
		}
		send_byte(ack, 'd');
	}
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static inline void store_pipes(void)
{
	CHECK(pipe(kid_go) == 0 && pipe(kid_ack) == 0);
}

static inline void store_ask(struct child *ch, char c)
{
	send_byte(ch->cmd, c);
	CHECK_EQ(recv_byte(ch->ack, 60000), 'd');
}

/*
 * The limbo tests' start: the client's pairs checksummed, the client
 * stopped, the merge pass that names NPAIR store pages to it unanswered:
 * it is dropped, and they are spent.
 */
static inline void store_merge_unanswered(struct samepage *sp, struct child *ch)
{
	CHECK_EQ(recv_byte(ch->ack, 30000), 'r');
	set(sp, "smart_scan", 0);
	set(sp, "pages_to_scan", 100000);
	send_byte(ch->cmd, 'f');
	store_ask(ch, 1);	/* pairs: page i = page i + NPAIR */
	CHECK_EQ(samepage_scan_full(sp, 1), 0);	/* (checksums) */
	CHECK_EQ(get(sp, "clients"), 2);
	child_stop(ch);
	uint64_t t0 = now_ms();

	(void)samepage_scan_full(sp, 1);	/* the merge: no answer */
	printf("merge pass: %llu ms, clients %ld\n", (unsigned long long)(now_ms() - t0),
	       get(sp, "clients"));
	CHECK_EQ(get(sp, "clients"), 1);	/* dropped */
	CHECK_EQ(get(sp, "store_pages"), 0);
	CHECK_EQ(get(sp, "store_pages_spent"), NPAIR);
}

/* The daemon scans on its own (the sweep is the scanner's). */
static inline void store_knobs(struct samepage *sp)
{
	set(sp, "pages_to_scan", 1000);
	set(sp, "sleep_millisecs", 20);
	set(sp, "run", 1);
}

/* Wait until @name reads @want (at most 20 s); its last value (the
 * counters go to stderr if it never does). */
static inline long wait_counter(struct samepage *sp, const char *name, long want)
{
	uint64_t until = now_ms() + 20000;
	long v;

	do {
		v = get(sp, name);
		if (v == want)
			return v;
		usleep(50 * 1000);
	} while (now_ms() < until);
	fprintf(stderr, "%s: %ld after 20 s, waited for %ld\n", name, v, want);
	dump_counters(sp);
	return v;
}

#endif

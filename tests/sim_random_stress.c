/* SPDX-License-Identifier: MIT */
/*
 * sim_random_stress - thousands of random operations on small simulated
 * machines (1-4 nodes, few frames so that allocation pressure, fallback and
 * swap-cache reclaim happen), both merge_across_nodes values, knob changes
 * including run=2, merge_across_nodes and max_page_sharing switches, fork,
 * exit, munmap, madvise, migrate, offline, swap, and interleavings inside
 * run=2's unmerge.  The whole checker (machine and engine) runs after every
 * operation; any finding fails, printing the seed and the last commands.
 *
 * SAMEPAGE_SEED=N replays one seed.  Debugging aids, never set in `make
 * test`: SAMEPAGE_STRESS_IGNORE=TEXT|TEXT... ignores findings containing a
 * TEXT; SAMEPAGE_STRESS_MACHINE_ONLY=1 skips the engine's own checker (to
 * tell a machine bug from an engine bug); SAMEPAGE_STRESS_TRACE=1 prints
 * every command as it runs.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define ROUNDS		16
#define OPS_PER_ROUND	1500
#define TIME_LIMIT_S	40
#define NR_NAMES	6
#define HISTORY		40
#define SPAN		40	/* virtual pages used per mm */

static uint64_t rng;

static uint64_t next(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static unsigned int below(unsigned int n)
{
	return n ? (unsigned int)(next() % n) : 0;
}

static unsigned long nr_ok, nr_failed;	/* commands that worked / got an errno */
static char history[HISTORY][160];
static unsigned int nr_history;
static const char *ignore;
static bool machine_only;
static bool trace;		/* SAMEPAGE_STRESS_TRACE: print every command */

struct round {
	struct sim *s;
	int nodes;
	bool exists[NR_NAMES];
	int findings;
	char first[512];
};

static void remember(const char *line)
{
	snprintf(history[nr_history++ % HISTORY], sizeof(history[0]), "%s", line);
}

static void dump_history(void)
{
	unsigned int from = nr_history > HISTORY ? nr_history - HISTORY : 0;

	fprintf(stderr, "last commands:\n");
	for (unsigned int i = from; i < nr_history; i++)
		fprintf(stderr, "  %s\n", history[i % HISTORY]);
}

/* Run one command; usage errors are bugs of this generator. */
static int cmd(struct round *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int cmd(struct round *r, const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	remember(line);
	if (trace)
		fprintf(stderr, "%s\n", line);
	ret = sim_run_line(r->s, line);
	if (ret == SIM_OK)
		nr_ok++;
	else if (ret == SIM_FAILED)
		nr_failed++;
	if (ret == SIM_USAGE) {
		fprintf(stderr, "generator bug: '%s': %s\n", line, sim_error(r->s));
		r->findings++;
	}
	return ret;
}

/* SAMEPAGE_STRESS_IGNORE: substrings separated by '|' */
static bool ignored(const char *finding)
{
	const char *p = ignore;

	while (p && *p) {
		size_t n = strcspn(p, "|");
		char part[128];

		if (n && n < sizeof(part)) {
			memcpy(part, p, n);
			part[n] = '\0';
			if (strstr(finding, part))
				return true;
		}
		p += n;
		if (*p == '|')
			p++;
	}
	return false;
}

static void on_finding(void *arg, const char *finding)
{
	struct round *r = arg;

	if (ignored(finding))
		return;
	if (r->findings++ < 20)
		fprintf(stderr, "  finding: %s\n", finding);
	if (r->findings == 1)
		snprintf(r->first, sizeof(r->first), "%s", finding);
}

static int pick_mm(struct round *r, bool existing)
{
	for (int tries = 0; tries < 20; tries++) {
		int i = (int)below(NR_NAMES);

		if (r->exists[i] == existing)
			return i;
	}
	return -1;
}

static const char *content(void)
{
	static const char *const values[] = {
		"0", "0", "0x2a", "0x2a", "0x2a", "'x'", "1", "seq", "seq", "random",
	};
	return values[below(sizeof(values) / sizeof(values[0]))];
}

/* An operation that does not re-enter the engine (for the resched hook). */
static void light_op(struct round *r)
{
	int m = pick_mm(r, true);

	if (m < 0)
		return;
	switch (below(5)) {
	case 0:
		cmd(r, "swapin m%d %u", m, below(SPAN));
		break;
	case 1:
		cmd(r, "write m%d %u %u %u", m, below(SPAN), below(64), below(3));
		break;
	case 2: {
		int c = pick_mm(r, false);

		if (c >= 0 && cmd(r, "fork m%d m%d", m, c) == SIM_OK)
			r->exists[c] = true;
		break;
	}
	case 3:
		cmd(r, "swapout m%d %u", m, below(SPAN));
		break;
	default:
		cmd(r, "migrate m%d %u %u", m, below(SPAN), below((unsigned int)r->nodes));
		break;
	}
}

static void hook(struct sim *s, void *arg)
{
	struct round *r = arg;

	(void)s;
	if (below(2))
		light_op(r);
}

static void set_knob(struct round *r)
{
	switch (below(12)) {
	case 0:
	case 1:
		cmd(r, "set run %u", below(3));
		break;
	case 2:
		/* the procedure: unmerge, switch, run again */
		if (below(2))
			cmd(r, "set run 2");
		cmd(r, "set merge_across_nodes %u", below(2));
		cmd(r, "set run 1");
		break;
	case 3:
		if (below(2))
			cmd(r, "set run 2");
		cmd(r, "set max_page_sharing %u", 2 + below(4));
		cmd(r, "set run 1");
		break;
	case 4:
		cmd(r, "set use_zero_pages %u", below(2));
		break;
	case 5:
		cmd(r, "set smart_scan %u", below(2));
		break;
	case 6:
		cmd(r, "set pages_to_scan %u", 1 + below(64));
		break;
	case 7:
		cmd(r, "set sleep_millisecs %u", below(50));
		break;
	case 8:
		cmd(r, "set stable_node_chains_prune_millisecs %u", below(100));
		break;
	case 9:
		/* run=2 with interleavings from the resched hook */
		sim_set_resched_hook(r->s, hook, r);
		cmd(r, "set run 2");
		sim_set_resched_hook(r->s, NULL, NULL);
		break;
	default:
		cmd(r, "set run 1");
		break;
	}
}

static void random_op(struct round *r)
{
	int m = pick_mm(r, true);
	unsigned int vpn = below(SPAN), n = 1 + below(8);

	if (m < 0 || below(40) == 0) {
		int c = pick_mm(r, false);

		if (c >= 0 && cmd(r, "mm m%d node=%u", c, below((unsigned int)r->nodes)) == SIM_OK) {
			r->exists[c] = true;
			cmd(r, "mmap m%d 0 %u mergeable", c, SPAN);
		}
		return;
	}
	switch (below(22)) {
	case 0: case 1: case 2: case 3:
		cmd(r, "fill m%d %u %u %s", m, vpn, n, content());
		break;
	case 4: case 5:
		cmd(r, "write m%d %u %u %u", m, vpn, below(64), below(3) ? 0x2a : below(256));
		break;
	case 6: {
		int c = pick_mm(r, false);

		if (c >= 0 && cmd(r, "fork m%d m%d", m, c) == SIM_OK)
			r->exists[c] = true;
		break;
	}
	case 7:
		if (below(3) == 0 && cmd(r, "exit m%d", m) == SIM_OK)
			r->exists[m] = false;
		break;
	case 8:
		cmd(r, "munmap m%d %u %u", m, vpn, n);
		break;
	case 9:
		cmd(r, "mmap m%d %u %u%s", m, vpn, n, below(4) ? " mergeable" : "");
		break;
	case 10:
		cmd(r, "madvise m%d %u %u %s", m, vpn, n,
		    below(3) ? "mergeable" : "unmergeable");
		break;
	case 11:
		cmd(r, "migrate m%d %u %u", m, vpn, below((unsigned int)r->nodes));
		break;
	case 12:
		cmd(r, "swapout m%d %u", m, vpn);
		break;
	case 13:
		cmd(r, "swapin m%d %u", m, vpn);
		break;
	case 14:
		if (r->nodes > 1 && below(8) == 0)
			cmd(r, "offline %u", below((unsigned int)r->nodes));
		break;
	case 15: case 16:
		set_knob(r);
		break;
	case 17:
		cmd(r, "scan full 1");
		break;
	default:
		cmd(r, "scan %u", 1 + below(120));
		break;
	}
}

static int run_round(unsigned int round, double deadline)
{
	struct round r = { 0 };
	char line[128];
	int ops;

	sim_new(&r.s, next());
	sim_set_output(r.s, NULL);
	r.nodes = 1 + (int)below(4);
	snprintf(line, sizeof(line), "machine nodes=%d pages=%u page_size=%u",
		 r.nodes, 24 + below(80), below(2) ? 64 : 256);
	cmd(&r, "%s", line);
	cmd(&r, "set merge_across_nodes %u", below(2));
	cmd(&r, "set max_page_sharing %u", below(2) ? 256 : 2 + below(3));
	cmd(&r, "set smart_scan %u", below(2));
	cmd(&r, "set use_zero_pages %u", below(2));
	cmd(&r, "set pages_to_scan %u", 5 + below(50));
	cmd(&r, "set run 1");
	for (ops = 0; ops < OPS_PER_ROUND && !r.findings; ops++) {
		random_op(&r);
		if (!r.findings && machine_only)
			sim_check_machine(r.s, on_finding, &r);
		else if (!r.findings)
			sim_check(r.s, on_finding, &r);
		if ((ops & 63) == 0 && (double)clock() / CLOCKS_PER_SEC > deadline)
			break;
	}
	if (r.findings) {
		fprintf(stderr, "round %u, operation %d: %d finding(s); first: %s\n",
			round, ops, r.findings, r.first);
		dump_history();
	}
	sim_free(r.s);
	return r.findings;
}

int main(void)
{
	const char *env = getenv("SAMEPAGE_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) :
			((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
	int bad = 0;

	ignore = getenv("SAMEPAGE_STRESS_IGNORE");
	machine_only = getenv("SAMEPAGE_STRESS_MACHINE_ONLY") != NULL;
	trace = getenv("SAMEPAGE_STRESS_TRACE") != NULL;
	if (!seed)
		seed = 1;
	printf("sim_random_stress: seed %llu (SAMEPAGE_SEED=%llu to replay)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	fflush(stdout);
	rng = seed;
	for (unsigned int i = 0; i < ROUNDS && !bad; i++) {
		bad = run_round(i, TIME_LIMIT_S);
		if ((double)clock() / CLOCKS_PER_SEC > TIME_LIMIT_S)
			break;
	}
	printf("sim_random_stress: %lu commands done, %lu refused with an errno\n",
	       nr_ok, nr_failed);
	if (bad)
		fprintf(stderr, "sim_random_stress: FAILED with seed %llu\n",
			(unsigned long long)seed);
	return bad ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * sim_test.h - what the simulator's C tests share: a failure count, a
 * non-fatal EXPECT, running a script that must succeed, and the checker.
 * Each test program includes it once (the functions are static); one that
 * has helpers of its own defines SIM_TEST_EXPECT_ONLY first.
 */
#ifndef SAMEPAGE_TESTS_SIM_TEST_H
#define SAMEPAGE_TESTS_SIM_TEST_H

#include <stdio.h>

#include "sim.h"

static int failures;

#define EXPECT(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__,	\
				__LINE__, #cond);			\
			failures++;					\
		}							\
	} while (0)

#ifndef SIM_TEST_EXPECT_ONLY
/* Run a script that must succeed. */
static inline void run(struct sim *s, const char *text)
{
	int r = sim_run_string(s, "script", text);

	if (r != SIM_OK) {
		fprintf(stderr, "FAILED (%d): %s\n", r, sim_error(s));
		failures++;
	}
}

static inline void report(void *arg, const char *finding)
{
	(void)arg;
	fprintf(stderr, "  finding: %s\n", finding);
}

/* The whole machine and engine must be consistent. */
static inline void checked(struct sim *s)
{
	EXPECT(sim_check(s, report, NULL) == 0);
}

#endif /* SIM_TEST_EXPECT_ONLY */

#endif /* SAMEPAGE_TESTS_SIM_TEST_H */

/* SPDX-License-Identifier: MIT */
/*
 * sim_checker_catches - the machine checker is not blind: a byte changed
 * behind the machine's back (sim_poke) in an anonymous frame or in a KSM
 * frame shared by several mms is reported for every virtual page that
 * reads it, and `check` fails; restoring the byte makes the machine clean
 * again.
 */
#include <stdio.h>
#include <string.h>

#define SIM_TEST_EXPECT_ONLY
#include "sim_test.h"

struct findings {
	int n;
	char text[4096];
};

static void collect(void *arg, const char *finding)
{
	struct findings *f = arg;
	size_t len = strlen(f->text);

	f->n++;
	snprintf(f->text + len, sizeof(f->text) - len, "%s\n", finding);
}

static struct findings check(struct sim *s)
{
	struct findings f = { 0 };

	sim_check(s, collect, &f);
	return f;
}

static void run(struct sim *s, const char *text, int want)
{
	int r = sim_run_string(s, "script", text);

	if (r != want) {
		fprintf(stderr, "FAILED (%d, want %d): %s\n", r, want, sim_error(s));
		failures++;
	}
}

int main(void)
{
	struct sim_page_info pa, pb;
	struct findings f;
	struct sim *s;
	int base;

	sim_new(&s, 3);
	sim_set_output(s, NULL);
	run(s, "machine nodes=2 pages=64\n"
	       "set smart_scan 0\n"
	       "mm A\nmm B node=1\n"
	       "mmap A 0 8 mergeable\nmmap B 0 8 mergeable\n"
	       "fill A 0 4 'v'\nfill A 4 4 random\n"
	       "fill B 0 4 'v'\nfill B 4 4 seq\n"
	       "set run 1\nscan full 2\n"
	       "expect pages_shared 1\nexpect pages_sharing 7\n", SIM_OK);
	f = check(s);
	EXPECT(f.n == 0);
	if (f.n)
		fprintf(stderr, "%s", f.text);
	base = f.n;	/* below: what poking adds (the engine's part is above) */

	/* an anonymous frame */
	EXPECT(sim_page_info(s, "A", 5, &pa) == 0 && pa.kind == SIM_PTE_PRESENT && !pa.ksm);
	EXPECT(sim_poke(s, pa.pfn, 100, 0xee) == 0);
	f = check(s);
	EXPECT(f.n == base + 1 && strstr(f.text, "A:5: content lost: byte 100"));
	run(s, "check\n", SIM_FAILED);
	EXPECT(strstr(sim_error(s), "expected a consistent machine, got") != NULL);

	/* the shared KSM frame: every mapper reads the damage */
	EXPECT(sim_page_info(s, "B", 2, &pb) == 0 && pb.ksm && pb.mapcount == 8);
	EXPECT(sim_poke(s, pb.pfn, 4095, 'w') == 0);
	f = check(s);
	/* 8 mappings + A:5 + the engine's: the node's cached checksum */
	EXPECT(f.n == base + 10);
	EXPECT(strstr(f.text, "stable node's cached checksum differs from its page"));
	EXPECT(strstr(f.text, "B:3: content lost: byte 4095 is 0x77, 0x76 was written"));
	EXPECT(strstr(f.text, "A:0: content lost"));

	/* undo both */
	EXPECT(sim_poke(s, pb.pfn, 4095, 'v') == 0);
	{
		struct sim *ref;
		struct sim_page_info r;
		uint8_t want;

		/* A:5's random content is reproducible from the same seed */
		sim_new(&ref, 3);
		sim_set_output(ref, NULL);
		run(ref, "machine nodes=2 pages=64\nmm A\nmm B node=1\n"
			 "mmap A 0 8\nfill A 0 4 'v'\nfill A 4 4 random\n", SIM_OK);
		EXPECT(sim_page_info(ref, "A", 5, &r) == 0);
		EXPECT(sim_read(ref, "A", 5, 100, &want) == 0);
		EXPECT(sim_poke(s, pa.pfn, 100, want) == 0);
		sim_free(ref);
	}
	f = check(s);
	EXPECT(f.n == base);
	run(s, "check\n", base ? SIM_FAILED : SIM_OK);

	/* poking a free frame is refused */
	EXPECT(sim_poke(s, 63, 0, 1) != 0);
	sim_free(s);
	if (failures)
		fprintf(stderr, "sim_checker_catches: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}

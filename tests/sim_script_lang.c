/* SPDX-License-Identifier: MIT */
/*
 * sim_script_lang - the scenario language: exit codes (0 held, 1 failed,
 * 2 syntax/usage), messages "NAME:LINE: expected ..., got ...", numbers in
 * decimal and hex, quoted characters (including '#' and ' '), comments,
 * expect operators, per-mm fields, expect-error, echo and stats output,
 * scripts from files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIM_TEST_EXPECT_ONLY
#include "sim_test.h"

/* Run @text on a fresh machine; check the result and the message. */
static void expect_run(const char *text, int want, const char *msg)
{
	struct sim *s;
	int r;

	sim_new(&s, 7);
	sim_set_output(s, NULL);
	r = sim_run_string(s, "t", text);
	if (r != want || (msg && !strstr(sim_error(s), msg))) {
		fprintf(stderr, "FAILED: got %d (want %d), message '%s' (want '%s')\n"
			"script:\n%s\n", r, want, sim_error(s), msg ? msg : "", text);
		failures++;
	}
	sim_free(s);
}

#define M "machine nodes=2 pages=32 page_size=256\n"

static void exit_codes(void)
{
	expect_run("", SIM_OK, NULL);
	expect_run("# only a comment\n\n   \n", SIM_OK, NULL);
	expect_run("mm A\n", SIM_USAGE, "t:1: no machine yet");
	expect_run(M "frobnicate\n", SIM_USAGE, "t:2: unknown command 'frobnicate'");
	expect_run(M M, SIM_USAGE, "t:2: there is a machine already");
	expect_run("machine nodes=0\n", SIM_USAGE, "t:1:");
	expect_run("machine nodes=2 page_size=100\n", SIM_USAGE, "page_size");
	expect_run("machine pages=4\n", SIM_USAGE, "nodes=N is required");
	expect_run("machine nodes=1 colour=1\n", SIM_USAGE, "unknown parameter");
	expect_run(M "mm A\nmm A\n", SIM_USAGE, "t:3:");
	expect_run(M "mm A node=2\n", SIM_USAGE, "no node 2");
	expect_run(M "mm A:b\n", SIM_USAGE, "bad mm name");
	expect_run(M "mmap B 0 1\n", SIM_USAGE, "no mm named 'B'");
	expect_run(M "mm A\nmmap A 0 x1\n", SIM_USAGE, "not a number");
	expect_run(M "mm A\nmmap A 0 1 shared\n", SIM_USAGE, "t:3:");
	expect_run(M "mm A\nmmap A 0 1\nfill A 0 1 256\n", SIM_USAGE, "not a byte");
	expect_run(M "mm A\nmmap A 0 1\nfill A 0 1 'ab'\n", SIM_USAGE, "t:4:");
	expect_run(M "mm A\nmmap A 0 1\nfill A 0 1 'a\n", SIM_USAGE, "unterminated");
	expect_run(M "set no_such_knob 1\n", SIM_USAGE, "no knob named");
	expect_run(M "expect no_such_counter 1\n", SIM_USAGE, "no counter or knob");
	expect_run(M "expect run ~ 1\n", SIM_USAGE, "unknown operator");
	expect_run(M "expect A:ksm_rmap_items 0\n", SIM_USAGE, "no mm named 'A'");
	expect_run(M "mm A\nexpect A:bogus 0\n", SIM_USAGE, "no per-mm field");
	expect_run(M "expect-error EWHAT set run 3\n", SIM_USAGE, "unknown error name");
	expect_run(M "expect-error EINVAL frob\n", SIM_USAGE, "unknown command");
	expect_run(M "scan\n", SIM_USAGE, "usage: scan");
	expect_run(M "scan full x\n", SIM_USAGE, "t:2:");
	expect_run(M "a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3 4 5 6 7\n",
		   SIM_USAGE, "more than");
	/* failures of commands and expectations */
	expect_run(M "set run 3\n", SIM_FAILED, "t:2: expected success, got EINVAL");
	expect_run(M "expect run 1\n", SIM_FAILED, "t:2: expected run == 1, got 0");
	expect_run(M "expect-error EBUSY set run 3\n", SIM_FAILED,
		   "expected EBUSY, got EINVAL");
	expect_run(M "expect-error EINVAL set run 1\n", SIM_FAILED,
		   "expected EINVAL, got success");
	expect_run(M "expect-error EINVAL set run 3\n", SIM_OK, NULL);
	expect_run(M "mm A\nexpect-error EFAULT write A 0 0 1\n", SIM_OK, NULL);
	expect_run(M "mm A\nmmap A 0 1\nexpect-error EINVAL write A 0 256 1\n", SIM_OK, NULL);
	expect_run(M "mm A\nmmap A 0 1\nexpect-byte A 0 0 1\n", SIM_FAILED,
		   "expected byte 0x01 at A:0+0, got 0x00");
	expect_run(M "mm A\nmmap A 0 2\nexpect-shared A 0 A 1\n", SIM_FAILED,
		   "got no page and no page");
	expect_run(M "mm A\nmmap A 0 2\nfill A 0 2 1\nexpect-ksm A 1 yes\n", SIM_FAILED,
		   "expected A:1 to be a KSM page, got anon frame");
	expect_run(M "mm A node=1\nmmap A 0 2\nfill A 0 2 1\nexpect-node A 1 0\n",
		   SIM_FAILED, "expected A:1 on node 0, got anon frame 33 on node 1");
	/* stop at the first failure */
	expect_run(M "expect run 1\nfrobnicate\n", SIM_FAILED, "t:2:");
}

static void syntax(void)
{
	expect_run(M "mm A\nmmap A 0x10 0x2 mergeable   # a comment\n"
		   "fill A 16 1 '#'\n"
		   "fill A 17 1 ' '\n"
		   "write A 16 0x1f '\\n'\n"
		   "expect-byte A 16 31 10\n"
		   "expect-byte A 16 0 0x23\n"
		   "expect-byte A 17 255 32\n"
		   "expect-byte A 17 255 ' '   # trailing comment\n"
		   "\texpect-byte\tA 16 1 '#'\r\n"
		   "expect-not-shared A 16 A 17\n", SIM_OK, NULL);
	expect_run(M "expect run == 0\nexpect run != 1\nexpect run < 1\n"
		   "expect run <= 0\nexpect sleep_millisecs > 19\n"
		   "expect pages_to_scan >= 100\nexpect general_profit >= -5\n"
		   "expect max_page_sharing 0x100\n", SIM_OK, NULL);
	/* per-mm fields: 0 when not registered, after exit too */
	expect_run(M "mm A\nmmap A 0 4\nexpect A:ksm_rmap_items 0\n"
		   "exit A\nexpect A:ksm_process_profit 0\n", SIM_OK, NULL);
	/* scan does nothing while run=0 */
	expect_run(M "mm A\nmmap A 0 4 mergeable\nfill A 0 4 1\nscan full 3\n"
		   "scan 100\nexpect full_scans 0\nexpect pages_scanned 0\n"
		   "set run 1\nscan full 2\nexpect full_scans 2\n"
		   "expect pages_sharing 3\nexpect A:ksm_merging_pages 4\n", SIM_OK, NULL);
	/* seq: page i of the fill is the same in every mm, i in bytes 0-7 */
	expect_run(M "mm A\nmm B\nmmap A 0 4\nmmap B 10 4\n"
		   "fill A 0 4 seq\nfill B 11 3 seq\n"
		   "expect-byte A 2 0 2\nexpect-byte B 13 0 2\nexpect-byte A 2 8 0x5a\n"
		   "expect-byte A 0 0 0\n"
		   "fill B 10 1 random\nexpect-byte B 10 8 0xa5\n", SIM_OK, NULL);
}

static char *read_all(FILE *f)
{
	static char buf[8192];
	size_t n;

	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	return buf;
}

static void output(void)
{
	struct sim *s;
	FILE *out = tmpfile();
	const char *text, *name;

	if (!out) {
		perror("tmpfile");
		failures++;
		return;
	}
	sim_new(&s, 1);
	sim_set_output(s, out);
	EXPECT(sim_run_string(s, "t", M "echo hello   world # not this\nstats\n") == 0);
	text = read_all(out);
	EXPECT(!strncmp(text, "hello   world\n", 14));
	for (unsigned int i = 0; (name = ksm_counter_name(i)); i++) {
		char line[128];

		snprintf(line, sizeof(line), "\n%s: ", name);
		EXPECT(strstr(text, line) != NULL);
	}
	EXPECT(strstr(text, "\nfull_scans: 0\n") != NULL);
	sim_free(s);
	fclose(out);
}

static void files(void)
{
	char path[] = "/tmp/sim_script_langXXXXXX";
	int fd = mkstemp(path);
	struct sim *s;
	FILE *f;

	if (fd < 0) {
		perror("mkstemp");
		failures++;
		return;
	}
	f = fdopen(fd, "w");
	fputs(M "mm A\r\nmmap A 0 1\n\nexpect run 0\nexpect run 5\n", f);
	fclose(f);
	sim_new(&s, 1);
	sim_set_output(s, NULL);
	EXPECT(sim_run_file(s, path) == SIM_FAILED);
	EXPECT(strstr(sim_error(s), ":6: expected run == 5, got 0") != NULL);
	EXPECT(!strncmp(sim_error(s), path, strlen(path)));
	sim_free(s);
	sim_new(&s, 1);
	EXPECT(sim_run_file(s, "/nonexistent/script.sp") == SIM_USAGE);
	sim_free(s);
	unlink(path);
}

int main(void)
{
	exit_codes();
	syntax();
	output();
	files();
	if (failures)
		fprintf(stderr, "sim_script_lang: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}

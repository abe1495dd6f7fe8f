/* SPDX-License-Identifier: MIT */
/*
 * cmd_sim.c - `samepage sim [--seed N] [--no-final-check] SCRIPT|-`: run a
 * scenario on the simulated NUMA machine.
 *
 * Exit status: 0 every expectation held, 1 an expectation (or a command)
 * failed, 2 a syntax or usage error; the message, `SCRIPT:LINE: ...`, goes
 * to stderr.  After the last line the consistency checker runs once more
 * (unless --no-final-check), so that a scenario never ends on a machine
 * that lost data or an engine that broke its invariants.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sim.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: samepage sim [--seed N] [--no-final-check] SCRIPT|-\n"
		"\n"
		"Run a scenario (one command per line, see samepage(1)) on the simulated\n"
		"NUMA machine with the KSM engine.  '-' reads the script from stdin.\n"
		"\n"
		"  --seed N           seed of `fill ... random` (default %lu)\n"
		"  --no-final-check   do not run the consistency checker after the last line\n"
		"  --keep-going       report a failed line and go on (exit status: the worst)\n"
		"  -h, --help         this text\n"
		"\n"
		"Exit status: 0 all expectations held, 1 an expectation failed,\n"
		"2 syntax or usage error.\n",
		SIM_DEFAULT_SEED);
}

static int parse_seed(const char *t, unsigned long *seed)
{
	char *end;

	errno = 0;
	*seed = strtoul(t, &end, 0);
	return errno || end == t || *end || *t == '-' ? -EINVAL : 0;
}

struct final_ctx {
	const char *script;
	int n;
};

static void final_finding(void *arg, const char *finding)
{
	struct final_ctx *c = arg;

	c->n++;
	fprintf(stderr, "%s: check: %s\n", c->script, finding);
}

/* Every line, whatever the result of the others; the worst result. */
static int run_keep_going(struct sim *s, const char *script)
{
	char line[SIM_MAX_LINE + 1];
	unsigned long lineno = 0;
	int worst = SIM_OK, err;
	FILE *f;

	err = sim_open_script(script, &f);
	if (err) {
		fprintf(stderr, "%s: %s\n", script,
			err == -EISDIR ? "is a directory" : strerror(-err));
		return SIM_USAGE;
	}
	while ((err = sim_read_line(f, line, sizeof(line))) != 0) {
		int r;

		lineno++;
		if (err == -E2BIG || (err < 0 && err != -EILSEQ)) {
			/* the rest of the file cannot be read line by line */
			fprintf(stderr, "%s:%lu: %s\n", script, lineno, err == -E2BIG ?
				"line longer than 4096 characters" : strerror(-err));
			worst = SIM_USAGE;
			break;
		}
		r = err == -EILSEQ ? SIM_USAGE : sim_run_line(s, line);
		if (r != SIM_OK) {
			fprintf(stderr, "%s:%lu: %s\n", script, lineno,
				err == -EILSEQ ? "NUL byte in the line" : sim_error(s));
			if (r > worst)
				worst = r;
		}
	}
	if (f != stdin)
		fclose(f);
	return worst;
}

int cmd_sim(int argc, char **argv)
{
	unsigned long seed = SIM_DEFAULT_SEED;
	bool final_check = true, keep_going = false;
	const char *script = NULL;
	struct sim *s;
	int i, ret;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--seed") || !strncmp(a, "--seed=", 7)) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v || parse_seed(v, &seed)) {
				fprintf(stderr, "samepage sim: --seed needs a number\n");
				return 2;
			}
		} else if (!strcmp(a, "--no-final-check")) {
			final_check = false;
		} else if (!strcmp(a, "--keep-going")) {
			keep_going = true;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "samepage sim: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		} else if (script) {
			fprintf(stderr, "samepage sim: one script at a time\n");
			return 2;
		} else {
			script = a;
		}
	}
	if (!script) {
		usage(stderr);
		return 2;
	}
	if (sim_new(&s, seed)) {
		fprintf(stderr, "samepage sim: out of memory\n");
		return 1;
	}
	sim_set_diag(s, stderr);
	ret = keep_going ? run_keep_going(s, script) : sim_run_file(s, script);
	if (ret != SIM_OK && !keep_going) {
		fprintf(stderr, "%s\n", sim_error(s));
	} else if (final_check && sim_ksm(s)) {
		struct final_ctx c = {
			.script = strcmp(script, "-") ? script : "<stdin>",
		};
		int n = sim_check(s, final_finding, &c);

		if (n || c.n) {
			fprintf(stderr, "%s: end: expected a consistent machine, got %d "
				"finding%s\n", c.script, n > c.n ? n : c.n,
				(n > c.n ? n : c.n) == 1 ? "" : "s");
			ret = SIM_FAILED;
		}
	}
	sim_free(s);
	return ret;
}

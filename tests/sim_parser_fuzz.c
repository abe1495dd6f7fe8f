/* SPDX-License-Identifier: MIT */
/*
 * sim_parser_fuzz - the scenario interpreter never crashes and only ever
 * answers 0, 1 or 2, whatever it is fed: thousands of scripts made by
 * mutating valid ones (tokens swapped, dropped, duplicated, replaced by
 * odd numbers, quotes, comments, control and non-ASCII bytes) and by
 * random tokens, through sim_run_line(), sim_run_string() and
 * sim_run_file().  Runs under ASan+UBSan in `make test`.
 *
 * Every script starts with a small machine, and scan counts are kept
 * small, so that no input is merely slow.  SAMEPAGE_SEED=N picks the seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define SCRIPTS		2500
#define MAX_LINES	40

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static unsigned int below(unsigned int n)
{
	return n ? (unsigned int)(next() % n) : 0;
}

static const char *const valid[] = {
	"mm A", "mm B node=1", "mm C node=0",
	"mmap A 0 16 mergeable", "mmap B 0 8 mergeable", "mmap C 4 4",
	"madvise A 0 8 mergeable", "madvise A 2 4 unmergeable",
	"munmap A 3 2", "munmap B 0 100",
	"fill A 0 8 0x2a", "fill A 8 8 seq", "fill B 0 8 'x'", "fill A 0 4 random",
	"fill C 4 4 0", "fill B 0 8 seq",
	"write A 0 0 'y'", "write B 1 4095 0xff", "write A 3 17 9",
	"fork A D", "fork B E", "exit D", "exit E", "exit A",
	"set run 1", "set run 0", "set run 2", "set merge_across_nodes 0",
	"set merge_across_nodes 1", "set max_page_sharing 2",
	"set max_page_sharing 256", "set use_zero_pages 1", "set smart_scan 0",
	"set pages_to_scan 7", "set sleep_millisecs 0",
	"set stable_node_chains_prune_millisecs 0",
	"scan 10", "scan 100", "scan full", "scan full 2",
	"migrate A 0 1", "migrate B 1 0", "offline 1", "offline 0",
	"swapout A 0", "swapin A 0", "swapout B 2", "swapin B 2",
	"expect pages_shared 1", "expect pages_sharing >= 0", "expect run != 2",
	"expect A:ksm_rmap_items 0", "expect B:ksm_merging_pages > 0",
	"expect general_profit < 0",
	"expect-byte A 0 0 0x2a", "expect-byte B 0 4095 'x'",
	"expect-shared A 0 A 1", "expect-not-shared A 0 B 0",
	"expect-ksm A 0 yes", "expect-ksm B 1 no", "expect-node A 0 0",
	"expect-error EBUSY set merge_across_nodes 0",
	"expect-error EINVAL set run 3", "expect-error ENOMEM fill A 0 16 random",
	"check", "stats", "echo hello # there", "# comment", "",
};

static const char *const odd[] = {
	"0", "1", "-1", "0x", "0x0", "0xffffffffffffffff", "18446744073709551616",
	"99999999999999999999", "4294967296", "65535", "256", "'", "''", "'''",
	"'\\'", "'\\n'", "'#'", "' '", "#", "==", "<=", ">", "!", ":", "A:",
	":ksm_zero_pages", "A:ksm_zero_pages", "nodes=", "nodes=2", "pages=0",
	"page_size=3", "node=-1", "node=9", "mergeable", "unmergeable", "yes",
	"no", "seq", "random", "full", "EBUSY", "EINVAL", "expect-error",
	"machine", "\t", "\x01", "\xff\xfe", "é", "A", "B", "Z", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

/* Keep every input fast: no huge scans. */
static void tame(char *line)
{
	char *p = line;
	unsigned long long v;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!strncmp(p, "mmap", 4) || strstr(p, " mmap ")) {
		/* a huge sparse range makes every scan pass long */
		char name[64];
		unsigned long long vpn, n;

		if (sscanf(strstr(p, "mmap"), "mmap %63s %lli %lli", name, &vpn, &n) == 3 &&
		    n > 4096) {
			char buf[128];

			snprintf(buf, sizeof(buf), "mmap %s %llu 64", name, vpn % 100000);
			strcpy(p, buf);
		}
		return;
	}
	if (strncmp(p, "scan", 4) && !strstr(p, " scan "))
		return;
	for (char *q = p; *q; q++) {
		if ((*q >= '0' && *q <= '9') &&
		    (sscanf(q, "%lli", &v) != 1 || v > 300)) {
			strcpy(p, "scan 50");
			return;
		}
	}
}

static void mutate(char *out, size_t len)
{
	const char *src = valid[below(sizeof(valid) / sizeof(valid[0]))];
	char words[12][64];
	int n = 0;
	const char *p = src;

	/* split */
	while (*p && n < 12) {
		size_t k;

		while (*p == ' ')
			p++;
		k = strcspn(p, " ");
		if (!k)
			break;
		if (k > 63)
			k = 63;
		memcpy(words[n], p, k);
		words[n++][k] = '\0';
		p += k;
	}
	switch (below(8)) {
	case 0:	/* replace a word */
		if (n)
			snprintf(words[below((unsigned int)n)], 64, "%s",
				 odd[below(sizeof(odd) / sizeof(odd[0]))]);
		break;
	case 1:	/* drop a word */
		if (n) {
			int i = (int)below((unsigned int)n);

			memmove(words[i], words[i + 1], (size_t)(n - i - 1) * 64);
			n--;
		}
		break;
	case 2:	/* duplicate a word */
		if (n && n < 12) {
			int i = (int)below((unsigned int)n);

			memmove(words[i + 1], words[i], (size_t)(n - i) * 64);
			n++;
		}
		break;
	case 3:	/* add a random word */
		if (n < 12)
			snprintf(words[n++], 64, "%s", odd[below(sizeof(odd) / sizeof(odd[0]))]);
		break;
	case 4:	/* a random number somewhere */
		if (n)
			snprintf(words[below((unsigned int)n)], 64, "%llu",
				 (unsigned long long)(below(2) ? below(70) : next()));
		break;
	default:
		break;
	}
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		strncat(out, words[i], len - strlen(out) - 2);
		strncat(out, below(10) ? " " : "\t", len - strlen(out) - 1);
	}
	/* byte-level damage */
	if (below(10) == 0 && strlen(out)) {
		size_t at = below((unsigned int)strlen(out));

		out[at] = (char)(1 + below(255));
	}
	if (below(20) == 0)
		strncat(out, "# trailing", len - strlen(out) - 1);
	tame(out);
}

static int bad;

static void verdict(int r, const char *how, const char *script, struct sim *s)
{
	if (r == SIM_OK || r == SIM_FAILED || r == SIM_USAGE) {
		if (strlen(sim_error(s)) >= 512) {
			fprintf(stderr, "%s: error message not terminated\n", how);
			bad++;
		}
		return;
	}
	fprintf(stderr, "%s returned %d for:\n%s\n", how, r, script);
	bad++;
}

static void one_script(unsigned int i)
{
	static char script[MAX_LINES * 600];
	char line[512];
	struct sim *s;
	int lines = 1 + (int)below(MAX_LINES);
	int mode = (int)below(3);

	snprintf(script, sizeof(script), "machine nodes=%u pages=%u page_size=%s\n",
		 1 + below(3), 4 + below(60), below(2) ? "64" : "4096");
	for (int l = 0; l < lines; l++) {
		if (below(3))
			mutate(line, sizeof(line));
		else
			snprintf(line, sizeof(line), "%s", valid[below(sizeof(valid) / sizeof(valid[0]))]);
		strncat(script, line, sizeof(script) - strlen(script) - 2);
		strcat(script, below(15) ? "\n" : "\r\n");
	}
	if (sim_new(&s, i))
		return;
	sim_set_output(s, NULL);
	if (mode == 0) {
		/* line by line, going on after failures */
		char *p = script;

		while (*p) {
			size_t k = strcspn(p, "\n");
			char save = p[k];
			int r;

			p[k] = '\0';
			r = sim_run_line(s, p);
			verdict(r, "sim_run_line", p, s);
			p[k] = save;
			p += k + (save ? 1 : 0);
		}
	} else if (mode == 1) {
		verdict(sim_run_string(s, "fuzz", script), "sim_run_string", script, s);
	} else {
		char path[] = "/tmp/sim_parser_fuzzXXXXXX";
		int fd = mkstemp(path);
		FILE *f;

		if (fd >= 0 && (f = fdopen(fd, "w"))) {
			fputs(script, f);
			if (below(4) == 0)
				fwrite("mm \0X\n", 1, 6, f);	/* a NUL byte */
			fclose(f);
			verdict(sim_run_file(s, path), "sim_run_file", script, s);
			unlink(path);
		}
	}
	sim_check(s, NULL, NULL);
	sim_free(s);
}

int main(void)
{
	const char *env = getenv("SAMEPAGE_SEED");

	rng = env ? strtoull(env, NULL, 0) : 0x5eed5eedull;
	if (!rng)
		rng = 1;
	printf("sim_parser_fuzz: seed %llu\n", (unsigned long long)rng);
	fflush(stdout);
	for (unsigned int i = 0; i < SCRIPTS && bad < 5; i++)
		one_script(i);
	/* a few fixed nasty ones */
	{
		struct sim *s;
		static char big[10000];

		sim_new(&s, 1);
		sim_set_output(s, NULL);
		memset(big, 'a', sizeof(big) - 1);
		verdict(sim_run_line(s, big), "long line", "(10000 x a)", s);
		verdict(sim_run_line(s, "machine nodes=1 pages=8"), "machine", "", s);
		verdict(sim_run_line(s, "mm A\nmm B"), "two lines", "", s);
		verdict(sim_run_line(s, "fill A 0 1 '"), "quote", "", s);
		verdict(sim_run_line(s, "expect-error EINVAL expect-error EINVAL expect-error "
				     "EINVAL expect-error EINVAL expect-error EINVAL "
				     "expect-error EINVAL set run 9"), "nesting", "", s);
		verdict(sim_run_string(s, "x", "\n\n\r\n#\n"), "blank", "", s);
		sim_free(s);
	}
	if (bad)
		fprintf(stderr, "sim_parser_fuzz: %d bad answer(s)\n", bad);
	return bad ? 1 : 0;
}

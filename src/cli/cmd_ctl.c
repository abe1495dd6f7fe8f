/* SPDX-License-Identifier: MIT */
/*
 * cmd_ctl.c - `samepage ctl`: the running daemon's knobs and counters
 * (kernel names), synchronous scans, and its figures per domain and per
 * process.  A control connection: it registers no memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: samepage ctl [--socket PATH] COMMAND\n\n"
		"  get NAME...         knobs and counters (the kernel's names), `name: value`\n"
		"  set KNOB VALUE      set a knob with the kernel's rules (root or the\n"
		"                      daemon's user)\n"
		"  scan [full] N       scan now, synchronously: N pages, or N full scans\n"
		"  stat [--json]       knobs, counters, per-domain and per-process figures\n"
		"  metrics             the same as Prometheus text exposition\n\n"
		"The socket: --socket, else $SAMEPAGE_SOCKET, else /run/samepage/samepage.sock\n"
		"for root, else $XDG_RUNTIME_DIR/samepage.sock.\n");
}

static int fail(const char *what, const char *name, int err)
{
	const char *why;

	switch (err) {
	case -ENOENT:
		why = "no knob or counter of that name";
		break;
	case -EACCES:
		why = "a counter, read-only";
		break;
	case -EPERM:
		why = "only root or the daemon's user may set knobs";
		break;
	case -EBUSY:
		why = "busy: pages are shared (the kernel's rule: set run=2 first)";
		break;
	case -EINVAL:
		why = "invalid value (the kernel's range)";
		break;
	default:
		why = strerror(-err);
		break;
	}
	fprintf(stderr, "samepage ctl %s%s%s: %s\n", what, name ? " " : "", name ? name : "",
		why);
	return 1;
}

static bool parse_ulong(const char *s, unsigned long *v)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return !errno && *end == 0;
}

static int run(struct cli_conn *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	uint64_t arg[4] = { 0 };

	if (!strcmp(cmd, "get")) {
		if (argc < 2) {
			fprintf(stderr, "samepage ctl get: which NAME?\n");
			return 2;
		}
		int status = 0;

		for (int i = 1; i < argc; i++) {
			if (strlen(argv[i]) >= SP_NAME_MAX) {
				status = fail("get", argv[i], -ENOENT);
				continue;
			}
			int err = cli_conn_ask(c, SP_MSG_GET, NULL, argv[i], strlen(argv[i]));

			if (err)
				status = fail("get", argv[i], err);
			else
				printf("%s: %lld\n", argv[i], (long long)(int64_t)c->pk->h.arg[0]);
		}
		return status;
	}
	if (!strcmp(cmd, "set")) {
		unsigned long v;

		if (argc != 3) {
			fprintf(stderr, "samepage ctl set: KNOB VALUE expected\n");
			return 2;
		}
		if (!parse_ulong(argv[2], &v))
			return fail("set", argv[1], -EINVAL);
		if (strlen(argv[1]) >= SP_NAME_MAX)
			return fail("set", argv[1], -ENOENT);
		arg[0] = v;
		int err = cli_conn_ask(c, SP_MSG_SET, arg, argv[1], strlen(argv[1]));

		return err ? fail("set", argv[1], err) : 0;
	}
	if (!strcmp(cmd, "scan")) {
		unsigned long n;
		int i = 1;

		if (argc > 1 && !strcmp(argv[1], "full")) {
			arg[0] = 1;
			i = 2;
		}
		if (argc != i + 1 || !parse_ulong(argv[i], &n)) {
			fprintf(stderr, "samepage ctl scan: [full] N expected (a number)\n");
			return 2;
		}
		arg[1] = n;
		int err = cli_conn_ask(c, SP_MSG_SCAN, arg, NULL, 0);

		return err ? fail("scan", NULL, err) : 0;
	}
	if (!strcmp(cmd, "stat") || !strcmp(cmd, "metrics")) {
		if (!strcmp(cmd, "metrics"))
			arg[0] = SP_STAT_METRICS;
		else if (argc == 2 && !strcmp(argv[1], "--json"))
			arg[0] = SP_STAT_JSON;
		if (argc > 2 || (argc == 2 && arg[0] != SP_STAT_JSON)) {
			fprintf(stderr, "samepage ctl %s: unexpected '%s'\n", cmd, argv[1]);
			return 2;
		}
		int err = cli_conn_ask(c, SP_MSG_STAT, arg, NULL, 0);

		if (err)
			return fail(cmd, NULL, err);
		fwrite(c->pk->payload, 1, c->pk->plen, stdout);
		return 0;
	}
	fprintf(stderr, "samepage ctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}

int cmd_ctl(int argc, char **argv)
{
	const char *opt = NULL;
	int i = 1;
	char path[108], why[160];

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			opt = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			opt = argv[i] + 9;
		} else {
			fprintf(stderr, "samepage ctl: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "samepage ctl: which command?\n");
		usage(stderr);
		return 2;
	}
	if (sp_socket_path(opt, path, sizeof(path), why, sizeof(why))) {
		fprintf(stderr, "samepage ctl: %s\n", why);
		return 2;
	}
	struct cli_conn c;
	int err = cli_conn_open(&c, path);

	if (err == -ENOMEM) {
		fprintf(stderr, "samepage ctl: out of memory\n");
		return 1;
	}
	if (err && c.seq) {	/* connected, HELLO refused */
		fprintf(stderr, "samepage ctl: the daemon at %s refused: %s\n", path,
			strerror(-err));
		return 1;
	}
	if (err) {
		fprintf(stderr, "samepage ctl: cannot connect to the daemon at %s: %s\n", path,
			strerror(-err));
		return 1;
	}
	int status = run(&c, argc - i, argv + i);

	cli_conn_close(&c);
	return status;
}

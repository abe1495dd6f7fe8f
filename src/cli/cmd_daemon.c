/* SPDX-License-Identifier: MIT */
/*
 * cmd_daemon.c - `samepage daemon [--socket PATH]`: KSM across processes,
 * in the foreground (src/daemon/daemon.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage daemon [--socket PATH]\n\n"
		   "Run the samepage daemon in the foreground: processes that call\n"
		   "samepage_connect() (or run under `samepage run`) merge their pages with\n"
		   "those of the other processes of their merge domain.  SIGTERM makes every\n"
		   "page private again and exits 0.\n\n"
		   "  --socket PATH  listen on PATH; default $SAMEPAGE_SOCKET, else\n"
		   "                 /run/samepage/samepage.sock for root, else\n"
		   "                 $XDG_RUNTIME_DIR/samepage.sock\n");
}

int cmd_daemon(int argc, char **argv)
{
	const char *opt = NULL;
	char path[108], why[160];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			opt = argv[++i];
			continue;
		}
		if (!strncmp(argv[i], "--socket=", 9)) {
			opt = argv[i] + 9;
			continue;
		}
		fprintf(stderr, "samepage daemon: %s '%s'\n",
			!strcmp(argv[i], "--socket") ? "missing PATH after" : "unknown argument",
			argv[i]);
		usage(stderr);
		return 2;
	}
	if (sp_socket_path(opt, path, sizeof(path), why, sizeof(why))) {
		fprintf(stderr, "samepage daemon: %s\n", why);
		return 2;
	}
	return sd_daemon_run(path);
}

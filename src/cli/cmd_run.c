/* SPDX-License-Identifier: MIT */
/*
 * cmd_run.c - `samepage run [--socket PATH] [--domain NAME] [--all]
 * [--require] -- CMD [ARG...]`: run an unmodified program with its
 * madvise(MADV_MERGEABLE) and prctl(PR_SET_MEMORY_MERGE) going to the
 * daemon instead of the kernel's KSM (src/run/shim.c).
 *
 * The command becomes CMD (execvp, same process): its exit status is CMD's,
 * a signal that ends CMD ends it.  LD_PRELOAD (appended to an existing
 * one), SAMEPAGE_SOCKET, SAMEPAGE_DOMAIN and SAMEPAGE_RUN_ALL are set in
 * its environment, so that children and programs it executes inherit them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto.h"

#define SHIM_NAME "libsamepage-run.so"

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage run [--socket PATH] [--domain NAME] [--all] [--require] "
		   "-- CMD [ARG...]\n\n"
		   "Run CMD (unmodified) so that its madvise(MADV_MERGEABLE/MADV_UNMERGEABLE)\n"
		   "and prctl(PR_SET_MEMORY_MERGE) go to the samepage daemon instead of the\n"
		   "kernel's KSM; children and programs it executes inherit it.  Exits with\n"
		   "CMD's status.\n\n"
		   "  --socket PATH  the daemon's socket; default $SAMEPAGE_SOCKET, else\n"
		   "                 /run/samepage/samepage.sock for root, else\n"
		   "                 $XDG_RUNTIME_DIR/samepage.sock\n"
		   "  --domain NAME  the merge domain (default $SAMEPAGE_DOMAIN, else empty)\n"
		   "  --all          all of CMD's private anonymous memory, also mapped later\n"
		   "                 (found in /proc/self/smaps, every $SAMEPAGE_RUN_RESCAN_MS,\n"
		   "                 default 500)\n"
		   "  --require      fail (exit 1) when no daemon answers, instead of running\n"
		   "                 CMD unmerged\n");
}

/* The preload library: next to this program, or in the install libdir. */
static int find_shim(char *out, size_t len)
{
	char self[4096], dir[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = 0;
		snprintf(dir, sizeof(dir), "%s", dirname(self));
		const char *cand[] = { "%s/" SHIM_NAME, "%s/../" SAMEPAGE_REL_LIBDIR "/" SHIM_NAME };

		for (size_t i = 0; i < 2; i++) {
			char p[8192];

			snprintf(p, sizeof(p), cand[i], dir);
			if (access(p, R_OK) == 0 && realpath(p, out))
				return 0;
		}
	}
	snprintf(out, len, "%s/%s", SAMEPAGE_LIBDIR, SHIM_NAME);
	return access(out, R_OK) ? -ENOENT : 0;
}

int cmd_run(int argc, char **argv)
{
	const char *opt = NULL, *domain = NULL;
	bool all = false, require = false;
	int i = 1;

	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if ((!strcmp(argv[i], "--socket") || !strcmp(argv[i], "--domain")) && i + 1 < argc) {
			if (argv[i][2] == 's')
				opt = argv[i + 1];
			else
				domain = argv[i + 1];
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--socket=", 9)) {
			opt = argv[i] + 9;
			continue;
		}
		if (!strncmp(argv[i], "--domain=", 9)) {
			domain = argv[i] + 9;
			continue;
		}
		if (!strcmp(argv[i], "--all")) {
			all = true;
			continue;
		}
		if (!strcmp(argv[i], "--require")) {
			require = true;
			continue;
		}
		if (argv[i][0] != '-')
			break;	/* (CMD without --) */
		fprintf(stderr, "samepage run: %s '%s'\n",
			!strcmp(argv[i], "--socket") || !strcmp(argv[i], "--domain") ?
			"missing value after" : "unknown argument", argv[i]);
		usage(stderr);
		return 2;
	}
	if (i >= argc) {
		fprintf(stderr, "samepage run: no command to run\n");
		usage(stderr);
		return 2;
	}
	char path[108], why[160], shim[4096];

	if (sp_socket_path(opt, path, sizeof(path), why, sizeof(why))) {
		fprintf(stderr, "samepage run: %s\n", why);
		return 2;
	}
	if (domain && strlen(domain) >= SP_NAME_MAX) {
		fprintf(stderr, "samepage run: --domain: longer than %d bytes\n", SP_NAME_MAX - 1);
		return 2;
	}
	if (find_shim(shim, sizeof(shim))) {
		fprintf(stderr, "samepage run: cannot find %s next to this program or in %s\n",
			SHIM_NAME, SAMEPAGE_LIBDIR);
		return 1;
	}
	int fd = sp_socket_connect(path);

	if (fd < 0) {
		fprintf(stderr, "samepage run: no daemon at %s (%s): %s\n", path, strerror(-fd),
			require ? "not running the command (--require)" :
			"running the command unmerged");
		if (require)
			return 1;
	} else {
		close(fd);
	}
	/* (LD_PRELOAD entries are separated by spaces or colons) */
	const char *old = getenv("LD_PRELOAD");
	char *pre = NULL;

	if (old && *old && !strstr(old, shim)) {
		if (asprintf(&pre, "%s:%s", old, shim) < 0)
			pre = NULL;
	} else {
		pre = strdup(old && *old ? old : shim);
	}
	if (!pre || setenv("LD_PRELOAD", pre, 1) || setenv("SAMEPAGE_SOCKET", path, 1) ||
	    (domain && setenv("SAMEPAGE_DOMAIN", domain, 1)) ||
	    (all ? setenv("SAMEPAGE_RUN_ALL", "1", 1) : unsetenv("SAMEPAGE_RUN_ALL"))) {
		fprintf(stderr, "samepage run: cannot set the environment: %s\n", strerror(errno));
		return 1;
	}
	free(pre);
	execvp(argv[i], argv + i);
	int err = errno;

	fprintf(stderr, "samepage run: cannot run %s: %s\n", argv[i], strerror(err));
	return err == ENOENT ? 127 : 126;
}

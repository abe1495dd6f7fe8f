/* SPDX-License-Identifier: MIT */
/*
 * sim_file_directory - a directory given as the script says "is a
 * directory" (not "read error"), and `samepage sim --keep-going DIR` exits
 * with the usage status 2, not 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sim.h"

int main(void)
{
	const char *build = getenv("SAMEPAGE_BUILD_DIR");
	struct sim *s;
	int failures = 0;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	int r = sim_run_file(s, "/");

	if (r != SIM_USAGE || !strstr(sim_error(s), "/: is a directory")) {
		fprintf(stderr, "FAILED: sim_run_file(/): %d '%s'\n", r, sim_error(s));
		failures++;
	}
	sim_free(s);

	if (!build) {
		printf("SKIP the --keep-going half: SAMEPAGE_BUILD_DIR not set\n");
		return failures ? 1 : 77;
	}
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "'%s/samepage' sim --keep-going / 2>&1 | grep -q 'is a directory'"
		 " && exit 10; exit 11", build);
	int st = system(cmd);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 10) {
		fprintf(stderr, "FAILED: --keep-going / does not say 'is a directory'\n");
		failures++;
	}
	snprintf(cmd, sizeof(cmd), "'%s/samepage' sim --keep-going / 2>/dev/null", build);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != SIM_USAGE) {
		fprintf(stderr, "FAILED: --keep-going / exits %d, want %d\n",
			WIFEXITED(st) ? WEXITSTATUS(st) : -1, SIM_USAGE);
		failures++;
	}
	if (failures)
		return 1;
	printf("directory ok\n");
	return 0;
}

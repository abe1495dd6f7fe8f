/* SPDX-License-Identifier: MIT */
/*
 * sim_file_line_limit - a script file is read a line of at most 4096
 * characters at a time: a longer line (or /dev/zero, one endless line) is a
 * usage error at that line, found without reading further; a line of
 * exactly 4096 characters is read whole.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

static int failures;

static void expect_file(const char *path, int want, const char *msg)
{
	struct sim *s;

	sim_new(&s, 1);
	sim_set_output(s, NULL);
	int r = sim_run_file(s, path);

	if (r != want || (msg && !strstr(sim_error(s), msg))) {
		fprintf(stderr, "FAILED %s: got %d '%s', want %d '%s'\n", path, r,
			sim_error(s), want, msg ? msg : "");
		failures++;
	}
	sim_free(s);
}

/* A file of one comment line of @len characters. */
static void write_line(const char *path, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(1);
	}
	fputc('#', f);
	for (size_t i = 1; i < len; i++)
		fputc('x', f);
	fputs("\necho after\n", f);
	fclose(f);
}

int main(void)
{
	char path[] = "/tmp/sim_file_line_limit.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	expect_file("/dev/zero", SIM_USAGE, "/dev/zero:1: line longer than 4096 characters");
	write_line(path, SIM_MAX_LINE + 1);
	expect_file(path, SIM_USAGE, ":1: line longer than 4096 characters");
	write_line(path, SIM_MAX_LINE);
	expect_file(path, SIM_OK, NULL);
	unlink(path);
	if (failures)
		return 1;
	printf("line limit ok\n");
	return 0;
}

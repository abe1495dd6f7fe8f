/* SPDX-License-Identifier: MIT */
/*
 * cmd_stat.c - `samepage stat [PID]`: the kernel's KSM knobs and counters
 * (/sys/kernel/mm/ksm), or one process's /proc/PID/ksm_stat, printed as
 * `name: value` with the names samepage uses too.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define KSM_SYSFS "/sys/kernel/mm/ksm"

static int print_file(const char *dir, const char *name)
{
	char path[512], buf[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		printf("%s: %s\n", name, buf);
	}
	fclose(f);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_stat(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: samepage stat [PID]\n\n"
		       "Without PID: every file of " KSM_SYSFS " (the kernel's KSM) as `name: value`.\n"
		       "With PID: that process's /proc/PID/ksm_stat.\n");
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "samepage stat: too many arguments (see --help)\n");
		return 2;
	}
	if (argc == 2) {
		char path[64], line[256];
		char *end;
		long pid = strtol(argv[1], &end, 10);
		FILE *f;

		if (*end || pid <= 0) {
			fprintf(stderr, "samepage stat: '%s' is not a process id\n", argv[1]);
			return 2;
		}
		snprintf(path, sizeof(path), "/proc/%ld/ksm_stat", pid);
		f = fopen(path, "r");
		if (!f) {
			fprintf(stderr, "samepage stat: %s: %s\n", path, strerror(errno));
			return 1;
		}
		while (fgets(line, sizeof(line), f))
			fputs(line, stdout);
		fclose(f);
		return 0;
	}
	{
		DIR *d = opendir(KSM_SYSFS);
		struct dirent *de;
		char *names[128];
		size_t n = 0, i;

		if (!d) {
			fprintf(stderr, "samepage stat: %s: %s (kernel built without KSM?)\n",
				KSM_SYSFS, strerror(errno));
			return 1;
		}
		while ((de = readdir(d)) && n < 128)
			if (de->d_name[0] != '.')
				names[n++] = strdup(de->d_name);
		closedir(d);
		qsort(names, n, sizeof(names[0]), cmp_names);
		for (i = 0; i < n; i++) {
			print_file(KSM_SYSFS, names[i]);
			free(names[i]);
		}
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * main.c - the samepage command: dispatch to the subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "demo",  cmd_demo,  "worker processes give memory back under one daemon (--sim: the NUMA story)" },
	{ "sim",   cmd_sim,   "run a scenario script on the simulated NUMA machine" },
	{ "stat",  cmd_stat,  "show the kernel's KSM knobs and counters, or a process's ksm_stat" },
	{ "estimate", cmd_estimate, "what merging would give on running processes, read-only" },
	{ "daemon", cmd_daemon, "merge across processes: the samepage daemon, in the foreground" },
	{ "run",   cmd_run,   "run a program with its KSM requests (madvise, prctl) sent to the daemon" },
	{ "ctl",   cmd_ctl,   "knobs, counters, scans and figures of the running daemon" },
	{ "bench", cmd_bench, "benchmark samepage (simulated or real memory) against the kernel's KSM" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: samepage COMMAND [ARGS...]\n\n"
		   "Kernel Samepage Merging, rebuilt as a library and tools.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'samepage COMMAND --help' describes each command; see samepage(1).\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("samepage 0.1.0\n");
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "samepage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}

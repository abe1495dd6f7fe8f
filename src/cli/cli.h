/* SPDX-License-Identifier: MIT */
#ifndef SAMEPAGE_CLI_H
#define SAMEPAGE_CLI_H

/* Each subcommand takes argv with argv[0] = its name; returns the exit status. */
int cmd_demo(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_estimate(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif

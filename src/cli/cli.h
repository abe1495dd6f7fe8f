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

/* ---- `samepage demo` (cmd_demo.c, demo_workers.c) ---- */
#include <stdbool.h>

struct demo_opts {
	unsigned int workers;		/* worker processes */
	unsigned long mib;		/* memory of each, MiB */
	const char *socket;		/* a running daemon; NULL: start one */
	bool explain;			/* say at length why userfaultfd is missing */
	unsigned int timeout_s;		/* to converge, at most */
};
/* Workers under one daemon: 0, 1 on a failure or mismatch, 77 without
 * userfaultfd. */
int demo_workers(const struct demo_opts *o);
/* Why this process cannot merge real memory and how to allow it (stderr);
 * @why: the library's words. */
void demo_explain_unavailable(const char *why);

/* ---- driving a daemon (daemon_conn.c) ---- */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sp_packet;

/* A control connection: knobs, counters, scans; registers no memory. */
struct cli_conn {
	int fd;
	uint32_t seq;
	pid_t daemon_pid;	/* SO_PEERCRED, -1 unknown */
	struct sp_packet *pk;	/* the last answer */
};
/* 0 or a negative errno (the daemon's status for a refused request); after a
 * failure c->seq is non-zero when the daemon was reached but refused HELLO. */
int cli_conn_open(struct cli_conn *c, const char *path);
void cli_conn_close(struct cli_conn *c);
int cli_conn_ask(struct cli_conn *c, uint16_t type, const uint64_t *arg,
		 const void *payload, size_t plen);
int cli_conn_get(struct cli_conn *c, const char *name, long *value);
int cli_conn_set(struct cli_conn *c, const char *knob, unsigned long value);

/* A private daemon: `samepage daemon --socket DIR/sock`, a child of this
 * process, DIR a fresh directory of /tmp. */
struct cli_daemon {
	pid_t pid;
	char dir[64];
	char sock[108];
};
/* 0 once it listens, or a negative errno. */
int cli_daemon_start(struct cli_daemon *d);
/* SIGTERM; its exit status (-1 killed or never started); the directory goes. */
int cli_daemon_stop(struct cli_daemon *d);

#endif

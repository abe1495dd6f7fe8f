/* SPDX-License-Identifier: MIT */
/*
 * daemon_conn.c - what `samepage ctl`, `samepage demo` and `samepage bench
 * --processes` share to drive a daemon: a control connection (no address
 * space: knobs, counters, scans) and a private daemon started as a child
 * of this process (`samepage daemon --socket PATH`, this same program).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "proto.h"

int cli_conn_ask(struct cli_conn *c, uint16_t type, const uint64_t *arg,
		 const void *payload, size_t plen)
{
	uint32_t seq = ++c->seq;
	int err = sp_msg_send(c->fd, type, seq, 0, 0, arg, payload, plen, NULL, 0);

	while (!err) {
		int r = sp_msg_recv(c->fd, c->pk, 0);

		if (r <= 0)
			return r ? r : -ECONNRESET;
		sp_packet_close_fds(c->pk);
		if (c->pk->h.type == (type | SP_MSG_REPLY) && c->pk->h.seq == seq)
			return c->pk->h.status;
	}
	return err;
}

int cli_conn_open(struct cli_conn *c, const char *path)
{
	uint64_t arg[4] = { SP_HELLO_CONTROL, 0, 0, 0 };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int err;

	memset(c, 0, sizeof(*c));
	c->fd = sp_socket_connect(path);
	if (c->fd < 0)
		return c->fd;
	c->pk = malloc(sizeof(*c->pk));
	if (!c->pk) {
		close(c->fd);
		return -ENOMEM;
	}
	c->daemon_pid = -1;
	if (!getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		c->daemon_pid = cred.pid;
	err = cli_conn_ask(c, SP_MSG_HELLO, arg, NULL, 0);
	if (err) {
		cli_conn_close(c);
		return err > 0 ? -EPROTO : err;
	}
	return 0;
}

void cli_conn_close(struct cli_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->pk);
	c->fd = -1;
	c->pk = NULL;
}

int cli_conn_get(struct cli_conn *c, const char *name, long *value)
{
	size_t n = strlen(name);
	int err;

	if (n >= SP_NAME_MAX)
		return -ENOENT;
	err = cli_conn_ask(c, SP_MSG_GET, NULL, name, n);
	if (!err)
		*value = (long)(int64_t)c->pk->h.arg[0];
	return err;
}

int cli_conn_set(struct cli_conn *c, const char *knob, unsigned long value)
{
	uint64_t arg[4] = { value, 0, 0, 0 };
	size_t n = strlen(knob);

	if (n >= SP_NAME_MAX)
		return -ENOENT;
	return cli_conn_ask(c, SP_MSG_SET, arg, knob, n);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int cli_daemon_start(struct cli_daemon *d)
{
	char exe[4096];
	ssize_t n;
	struct stat st;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/samepage-daemon-XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		int err = n < 0 ? -errno : -ENOENT;

		rmdir(d->dir);
		return err;
	}
	exe[n] = '\0';
	d->pid = fork();
	if (d->pid < 0) {
		int err = -errno;

		rmdir(d->dir);
		return err;
	}
	if (d->pid == 0) {
		/* never outlive the demo or the bench that started it */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(exe, "samepage", "daemon", "--socket", d->sock, (char *)NULL);
		fprintf(stderr, "samepage: cannot run %s daemon: %s\n", exe, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		int st_child;

		if (stat(d->sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(d->pid, &st_child, WNOHANG) == d->pid) {
			d->pid = -1;
			rmdir(d->dir);
			return -ECHILD;
		}
		sleep_ms(10);
	}
	cli_daemon_stop(d);
	return -ETIMEDOUT;
}

int cli_daemon_stop(struct cli_daemon *d)
{
	int st, ret = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
			;
		ret = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		d->pid = -1;
	}
	unlink(d->sock);	/* (the daemon removes it itself on SIGTERM) */
	rmdir(d->dir);
	return ret;
}

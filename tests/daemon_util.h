/* SPDX-License-Identifier: MIT */
/*
 * daemon_util.h - helpers of the daemon tests (tests/daemon_*.c): a daemon
 * in a child process on a socket of its own, clients in children, steps
 * told through pipes.
 *
 * Threads and fork: ThreadSanitizer cannot follow a fork of a threaded
 * process, so a test forks the daemon and every client first, and only
 * then connects itself (samepage_connect starts threads).
 */
#ifndef SAMEPAGE_TESTS_DAEMON_UTIL_H
#define SAMEPAGE_TESTS_DAEMON_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "test_check.h"

int sd_daemon_run(const char *socket_path);	/* src/daemon */

static char daemon_sock[108];

static inline size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Become @uid (0: stay root), keeping CAP_SYS_PTRACE (a userfaultfd that
 * parks kernel writes needs it); exit 77 if the machine does not let us. */
static inline void become_user(uid_t uid)
{
	if (uid == 0)
		return;
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct cap[2] = { { 0 } };

	cap[0].effective = cap[0].permitted = 1u << CAP_SYS_PTRACE;
	if (prctl(PR_SET_KEEPCAPS, 1) || setgroups(0, NULL) || setgid(uid) ||
	    setuid(uid) || syscall(SYS_capset, &hdr, cap))
		_exit(77);
	(void)prctl(PR_SET_DUMPABLE, 1);
}

static inline void skip(const char *test, const char *why)
{
	printf("SKIP %s: %s\n", test, why);
	exit(77);
}

/* userfaultfd with kernel faults is what every agent needs. */
static inline void need_uffd(const char *test)
{
	int p[2];
	char why[256] = "";

	if (pipe(p))
		FAIL("pipe: %s", strerror(errno));
	pid_t pid = fork();

	if (pid == 0) {	/* (in a child: this process stays single-threaded) */
		struct samepage *sp = NULL;
		int err = samepage_open(&sp, 0);

		if (err && write(p[1], samepage_last_error(), strlen(samepage_last_error())) < 0)
			_exit(2);
		if (!err)
			samepage_close(sp);
		_exit(err ? 1 : 0);
	}
	close(p[1]);
	ssize_t n = read(p[0], why, sizeof(why) - 1);
	int st;

	close(p[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		why[n > 0 ? n : 0] = 0;
		skip(test, why[0] ? why : "no userfaultfd");
	}
}

/* A fresh socket path (its directory made here). */
static inline const char *daemon_socket(void)
{
	char dir[] = "/tmp/samepage-test-XXXXXX";

	if (!mkdtemp(dir))
		FAIL("mkdtemp: %s", strerror(errno));
	(void)chmod(dir, 0755);	/* (clients of other users too) */
	snprintf(daemon_sock, sizeof(daemon_sock), "%s/sock", dir);
	return daemon_sock;
}

static inline bool daemon_listening(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * Start a daemon on daemon_sock; returns its pid once it listens.  The
 * `samepage daemon` of the build when ctest says where it is (a process
 * with threads may fork and exec), else this program run as the daemon.
 */
static inline pid_t daemon_start(void)
{
	const char *dir = getenv("SAMEPAGE_BUILD_DIR");
	char bin[512] = "";

	if (!daemon_sock[0])
		daemon_socket();
	if (dir)
		snprintf(bin, sizeof(bin), "%s/samepage", dir);
	if (bin[0] && access(bin, X_OK))
		bin[0] = 0;
	pid_t pid = fork();

	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);	/* (never outlive a failed test) */
	if (pid == 0 && bin[0]) {
		execl(bin, "samepage", "daemon", "--socket", daemon_sock, (char *)NULL);
		_exit(127);
	}
	if (pid == 0)
		_exit(sd_daemon_run(daemon_sock));
	for (int i = 0; i < 500 && !daemon_listening(daemon_sock); i++)
		usleep(10000);
	if (!daemon_listening(daemon_sock))
		FAIL("the daemon did not start");
	return pid;
}

/* SIGTERM; returns its exit status (-1 if killed). */
static inline int daemon_stop(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid)
		FAIL("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline struct samepage *connect_daemon(void)
{
	struct samepage *sp = NULL;
	int err = samepage_connect(&sp, daemon_sock);

	if (err)
		FAIL("samepage_connect: %s (%s)", strerror(-err), samepage_last_error());
	return sp;
}

static inline long get(struct samepage *sp, const char *name)
{
	long v = -1;
	int err = samepage_get(sp, name, &v);

	if (err)
		FAIL("samepage_get(%s): %s (%s)", name, strerror(-err), samepage_last_error());
	return v;
}

/* The counters that tell why pages did not merge, to stderr (on a failure). */
static inline void dump_counters(struct samepage *sp)
{
	static const char *const names[] = {
		"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
		"full_scans", "merges", "merges_refused", "store_pages", "store_pages_spent",
		"store_slots", "store_sweeps", "store_pages_reclaimed", "stable_node_dups",
		"stable_node_chains", "pages_skipped",
	};

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		long v = -1;

		(void)samepage_get(sp, names[k], &v);
		fprintf(stderr, "  %s %ld\n", names[k], v);
	}
}

static inline void set(struct samepage *sp, const char *knob, unsigned long v)
{
	int err = samepage_set(sp, knob, v);

	if (err)
		FAIL("samepage_set(%s, %lu): %s (%s)", knob, v, strerror(-err),
		     samepage_last_error());
}

/* A child process driven by one-byte commands. */
struct child {
	pid_t pid;
	int cmd;	/* parent writes */
	int ack;	/* parent reads */
};

static inline struct child child_start(void (*fn)(int cmd, int ack, int idx), int idx)
{
	int a[2], b[2];
	struct child c;

	if (pipe(a) || pipe(b))
		FAIL("pipe: %s", strerror(errno));
	c.pid = fork();
	if (c.pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (c.pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(a[1]);
		close(b[0]);
		fn(a[0], b[1], idx);
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	c.cmd = a[1];
	c.ack = b[0];
	return c;
}

static inline void send_byte(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		FAIL("write: %s", strerror(errno));
}

/* One byte from @fd, or -1 at end of file (within @ms, else a failure). */
static inline int recv_byte(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1)
		FAIL("no answer within %d ms", ms);
	ssize_t n = read(fd, &c, 1);

	return n == 1 ? (unsigned char)c : -1;
}

static inline int child_wait(struct child *c)
{
	int st;

	if (waitpid(c->pid, &st, 0) != c->pid)
		FAIL("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Stop child @c and return once it is stopped (kill() does not wait). */
static inline void child_stop(struct child *c)
{
	int st;

	CHECK(kill(c->pid, SIGSTOP) == 0);
	if (waitpid(c->pid, &st, WUNTRACED) != c->pid)
		FAIL("waitpid: %s", strerror(errno));
	CHECK(WIFSTOPPED(st));
}

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif /* SAMEPAGE_TESTS_DAEMON_UTIL_H */

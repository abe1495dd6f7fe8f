/* SPDX-License-Identifier: MIT */
/*
 * run_util.h - helpers of the `samepage run` tests (tests/run_*.c): each
 * program is the driver (a daemon, the counters) and, started again under
 * `samepage run` with "child" as first argument, the unmodified program
 * whose memory is checked.  Steps are told through two inherited pipes.
 *
 * Skipped under the sanitizers: their runtimes must come first in a
 * process and cannot be preloaded into one built without them.
 */
#ifndef SAMEPAGE_TESTS_RUN_UTIL_H
#define SAMEPAGE_TESTS_RUN_UTIL_H

#include "daemon_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RUN_UNDER_SANITIZER 1
#else
#define RUN_UNDER_SANITIZER 0
#endif

static char run_self[4096];

/* Skip what cannot run here; start the daemon (scanning on demand only). */
static inline pid_t run_setup(const char *test, char *argv0)
{
	(void)argv0;
	if (RUN_UNDER_SANITIZER)
		skip(test, "a sanitizer's runtime cannot be preloaded into an uninstrumented "
			   "program under `samepage run`");
	if (!getenv("SAMEPAGE_BUILD_DIR"))
		skip(test, "SAMEPAGE_BUILD_DIR is not set (run it through ctest)");
	ssize_t n = readlink("/proc/self/exe", run_self, sizeof(run_self) - 1);

	if (n <= 0)
		FAIL("readlink /proc/self/exe: %s", strerror(errno));
	run_self[n] = 0;
	need_uffd(test);
	return daemon_start();
}

/*
 * Start `samepage run --socket S OPTS... -- SELF child MODE CMDFD ACKFD`;
 * @opts NULL-terminated; @env "NAME=VALUE" or NULL.
 */
static inline struct child run_child(const char **opts, const char *mode, const char *env)
{
	int a[2], b[2];
	struct child c;
	char bin[600], fa[16], fb[16];

	snprintf(bin, sizeof(bin), "%s/samepage", getenv("SAMEPAGE_BUILD_DIR"));
	if (pipe(a) || pipe(b))
		FAIL("pipe: %s", strerror(errno));
	c.pid = fork();
	if (c.pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (c.pid == 0) {
		const char *argv[32];
		int n = 0;

		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(a[1]);
		close(b[0]);
		snprintf(fa, sizeof(fa), "%d", a[0]);
		snprintf(fb, sizeof(fb), "%d", b[1]);
		argv[n++] = "samepage";
		argv[n++] = "run";
		argv[n++] = "--socket";
		argv[n++] = daemon_sock;
		for (int k = 0; opts && opts[k] && n < 20; k++)
			argv[n++] = opts[k];
		argv[n++] = "--";
		argv[n++] = run_self;
		argv[n++] = "child";
		argv[n++] = mode;
		argv[n++] = fa;
		argv[n++] = fb;
		argv[n] = NULL;
		if (env)
			putenv((char *)env);
		execv(bin, (char **)argv);
		_exit(127);
	}
	close(a[0]);
	close(b[1]);
	c.cmd = a[1];
	c.ack = b[0];
	return c;
}

/* Does this process show VmFlag @flag ("mg", "uw") on a mapping of
 * [p, p + len)?  (any mapping that overlaps) */
static inline bool has_vmflag(const void *p, size_t len, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long long s, e;
	bool in = false, found = false;
	uintptr_t a = (uintptr_t)p, b = a + len;

	if (!f)
		FAIL("/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s < b && e > a;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char pat[8];

			snprintf(pat, sizeof(pat), " %s", flag);
			char *q = strstr(line, pat);

			if (q && (q[3] == ' ' || q[3] == '\n'))
				found = true;
		}
	}
	fclose(f);
	return found;
}

/* Does any mapping of this process show @flag? */
static inline bool any_vmflag(const char *flag)
{
	return has_vmflag((void *)0x1000, (size_t)0x7fffffffe000ull, flag);
}

static inline long kernel_ksm(const char *name)
{
	char path[128];
	long v = -1;

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

#endif /* SAMEPAGE_TESTS_RUN_UTIL_H */

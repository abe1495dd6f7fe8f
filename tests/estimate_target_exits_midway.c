/* SPDX-License-Identifier: MIT */
/*
 * estimate_target_exits_midway - a target killed while `samepage estimate
 * --rate` reads it is reported as exited (exit status 1); the other target
 * is still reported in full, and the total holds only it.
 */
#include "estimate_util.h"

int main(void)
{
	static const struct child_spec small = { .image_copies = 1, .image_pages = 5,
						 .zero = 3, .unique = 10, .x_copies = 4 };
	static const struct child_spec big = { .unique = 16384 };	/* 64 MiB */
	struct child a, b;
	char bin[4096], pa[16], pb[16], out[8192], err[8192], want[256];
	const char *dir = getenv("SAMEPAGE_BUILD_DIR");
	int op[2], ep[2], st;
	ssize_t n;
	pid_t pid;

	seed_from_env();
	ksm_lock();	/* our children become mergeable */
	child_start(&a, 0, &small);
	child_start(&b, 1, &big);
	if (child_cmd(&a, 'm') != 'k' || child_cmd(&b, 'm') != 'k')
		SKIP("madvise(MADV_MERGEABLE) fails: kernel without KSM");
	snprintf(bin, sizeof(bin), "%s/samepage", dir ? dir : ".");
	snprintf(pa, sizeof(pa), "%d", (int)a.pid);
	snprintf(pb, sizeof(pb), "%d", (int)b.pid);
	if (pipe(op) || pipe(ep))
		FAIL("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(op[1], 1);
		dup2(ep[1], 2);
		/* 2 x 64 MiB at 32 MiB/s: 4 s of reading */
		execl(bin, "samepage", "estimate", "--json", "--mergeable", "--rate", "32",
		      pa, pb, (char *)NULL);
		_exit(127);
	}
	close(op[1]);
	close(ep[1]);
	usleep(700 * 1000);
	kill(b.pid, SIGKILL);		/* our own child: the estimate never signals */
	waitpid(b.pid, &st, 0);
	b.pid = 0;
	size_t got = 0;	/* until the estimate exits */
	while (got + 1 < sizeof(out) && (n = read(op[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	got = 0;
	while (got + 1 < sizeof(err) && (n = read(ep[0], err + got, sizeof(err) - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		SKIP("cannot run %s", bin);
	printf("stdout: %s\nstderr: %s\n", out, err);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
	snprintf(want, sizeof(want), "pid %s: exited while being read", pb);
	CHECK(strstr(err, want));
	snprintf(want, sizeof(want), "{\"pid\": %s, \"comm\": ", pa);
	CHECK(strstr(out, want));
	snprintf(want, sizeof(want), "\"pages\": %lu, \"zero_pages\": 3, \"pages_volatile\": 0, "
		 "\"pages_shared\": 2, \"pages_sharing\": 5", a.pages);
	CHECK(strstr(out, want));
	snprintf(want, sizeof(want), "\"total\": {\"processes\": 1, \"pages\": %lu,", a.pages);
	CHECK(strstr(out, want));
	snprintf(want, sizeof(want), "{\"pid\": %s,", pb);
	CHECK(!strstr(out, want));
	child_stop(&a);
	printf("PASS\n");
	return 0;
}

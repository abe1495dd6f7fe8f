/* SPDX-License-Identifier: MIT */
/*
 * estimate_pid_not_a_number - `samepage estimate` refuses a PID that is not a
 * positive decimal number, and no PID at all, with exit status 2 and a
 * message; a PID with no process gives exit status 1 and "no such process".
 */
#include "estimate_util.h"

static int run(const char *a1, const char *a2, char *err, size_t size)
{
	char bin[4096];
	const char *dir = getenv("SAMEPAGE_BUILD_DIR");
	int ep[2], st;
	ssize_t n;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/samepage", dir ? dir : ".");
	if (pipe(ep))
		FAIL("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(ep[1], 2);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(bin, "samepage", "estimate", a1, a2, (char *)NULL);
		_exit(127);
	}
	close(ep[1]);
	size_t got = 0;

	while (got + 1 < size && (n = read(ep[0], err + got, size - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(ep[0]);
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		SKIP("cannot run %s", bin);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
	static const char *const bad[] = { "abc", "12x", "-5", "0", "", "0x10", "1.5",
					   "99999999999999999999" };
	char err[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(run(bad[i], NULL, err, sizeof(err)), 2);
		if (!strstr(err, "is not a process id") && !strstr(err, "unknown option"))
			FAIL("'%s': message: %s", bad[i], err);
	}
	CHECK_EQ(run("1", "abc", err, sizeof(err)), 2);	/* one bad PID among good ones */
	CHECK(strstr(err, "'abc' is not a process id"));
	CHECK_EQ(run(NULL, NULL, err, sizeof(err)), 2);
	CHECK(strstr(err, "no process id"));
	/* PIDs above pid_max never exist */
	CHECK_EQ(run("2147483647", NULL, err, sizeof(err)), 1);
	CHECK(strstr(err, "no such process"));
	printf("PASS\n");
	return 0;
}

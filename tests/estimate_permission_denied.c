/* SPDX-License-Identifier: MIT */
/*
 * estimate_permission_denied - a process whose memory we may not read is
 * reported as such, naming the privilege needed, and the others are still
 * estimated.  As root: the estimating process drops to nobody and looks at
 * a root-owned target; otherwise the target makes itself non-dumpable.
 */
#include "estimate_util.h"

int main(void)
{
	struct child_spec spec = { .unique = 8 };
	struct child target, mine;
	bool root = geteuid() == 0;
	int pfd[2], st;
	pid_t pid;

	seed_from_env();
	spec.nondumpable = !root;
	child_start(&target, 0, &spec);
	if (pipe(pfd))
		FAIL("pipe");
	pid = fork();
	if (pid == 0) {
		struct est_proc procs[2] = { { .pid = target.pid }, { .pid = 0 } };
		struct est_opts o = { 0 };
		struct est_counters total;
		struct child_spec own = { .unique = 4 };
		char why[512];

		if (root && (setgid(65534) || setuid(65534)))
			_exit(4);
		/* changing uid cleared our dumpable flag: set it back, so that
		 * our own child below is readable by us */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		/* a process of our own, readable */
		child_start(&mine, 1, &own);
		procs[1].pid = mine.pid;
		if (estimate_run(&o, procs, 2, &total, NULL))
			_exit(5);
		estimate_strerror(&procs[0], why, sizeof(why));
		printf("pid %d: %s\n", (int)target.pid, why);
		if (procs[0].error != EST_PERMISSION)
			_exit(6);
		if (!strstr(why, "CAP_SYS_PTRACE") || !strstr(why, "dumpable"))
			_exit(7);
		if (procs[1].error != EST_OK || procs[1].c.pages < 4) {
			printf("own child: %s\n", estimate_strerror(&procs[1], why, sizeof(why)));
			_exit(8);
		}
		child_stop(&mine);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	child_stop(&target);
	if (!WIFEXITED(st))
		FAIL("estimating child died");
	if (WEXITSTATUS(st) == 4)
		SKIP("cannot become nobody");
	CHECK_EQ(WEXITSTATUS(st), 0);
	printf("PASS\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * run_fork_exec_child - under `samepage run`, a program that madvises its
 * memory MERGEABLE and forks twice: one child executes a program (itself
 * again), which inherits the preload, the socket and the domain, and
 * madvises memory of the same content; the other child just runs on with
 * its copy of the parent's memory.  All three merge through the daemon
 * (the exec'd one as a client of its own), and a write of the parent
 * leaves both children's content as it was.
 */
#include "run_util.h"

#define NP 64

static unsigned char *region(void)
{
	size_t ps = page_size();
	unsigned char *p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* every page alike: they all merge into one store page */
	for (size_t pg = 0; pg < NP; pg++)
		for (size_t k = 0; k < ps; k++)
			p[pg * ps + k] = (unsigned char)(k % 251 + 1);
	return p;
}

static bool intact(const unsigned char *p, int skip_page)
{
	size_t ps = page_size();

	for (size_t pg = 0; pg < NP; pg++)
		for (size_t k = 0; k < ps; k++)
			if ((int)pg != skip_page && p[pg * ps + k] != (unsigned char)(k % 251 + 1))
				return false;
	return true;
}

/* A child of the parent: told 'c' (check) or 'q' (quit) on @cmd. */
static int serve(unsigned char *p, int cmd, int ack)
{
	for (;;) {
		int c = recv_byte(cmd, 60000);

		if (c < 0 || c == 'q')
			return 0;
		send_byte(ack, intact(p, -1) ? 'y' : 'n');
	}
}

static int exec_child(int cmd, int ack)
{
	const char *pre = getenv("LD_PRELOAD"), *sock = getenv("SAMEPAGE_SOCKET");

	if (!pre || !strstr(pre, "libsamepage-run.so") || !sock) {
		fprintf(stderr, "exec'd child: LD_PRELOAD=%s SAMEPAGE_SOCKET=%s\n",
			pre ? pre : "(none)", sock ? sock : "(none)");
		return 3;
	}
	unsigned char *p = region();

	if (!p || madvise(p, NP * page_size(), MADV_MERGEABLE) ||
	    !has_vmflag(p, NP * page_size(), "uw") || has_vmflag(p, NP * page_size(), "mg"))
		return 4;
	send_byte(ack, 'r');
	return serve(p, cmd, ack);
}

static int parent(int cmd, int ack)
{
	int e[4], f[4];
	char a0[16], a1[16];
	unsigned char *p = region();
	size_t ps = page_size();

	if (!p || madvise(p, NP * ps, MADV_MERGEABLE))
		return 2;
	if (pipe(e) || pipe(e + 2) || pipe(f) || pipe(f + 2))
		return 2;
	/* e[0]/f[0]: the children read commands; e[3]/f[3]: they answer */
	pid_t x = fork();

	if (x == 0) {
		snprintf(a0, sizeof(a0), "%d", e[0]);
		snprintf(a1, sizeof(a1), "%d", e[3]);
		execl(run_self, run_self, "child", "exec", a0, a1, (char *)NULL);
		_exit(127);
	}
	pid_t y = fork();

	if (y == 0)
		_exit(serve(p, f[0], f[3]));
	if (x < 0 || y < 0)
		return 2;
	if (recv_byte(e[2], 30000) != 'r')
		return 5;
	send_byte(ack, 'r');
	int st, bad = 0;

	for (;;) {
		int c = recv_byte(cmd, 60000);

		if (c < 0 || c == 'q')
			break;
		if (c == 'w')
			p[3 * ps + 17] ^= 0x55;
		send_byte(e[1], 'c');
		send_byte(f[1], 'c');
		bool ok = recv_byte(e[2], 30000) == 'y';

		ok = recv_byte(f[2], 30000) == 'y' && ok;
		ok = ok && intact(p, c == 'w' || bad ? 3 : -1) &&
		     p[3 * ps + 17] == (unsigned char)((17 % 251 + 1) ^ 0x55);
		bad = 1;
		send_byte(ack, ok ? 'y' : 'n');
	}
	send_byte(e[1], 'q');
	send_byte(f[1], 'q');
	if (waitpid(x, &st, 0) != x || !WIFEXITED(st) || WEXITSTATUS(st))
		return 6;
	if (waitpid(y, &st, 0) != y || !WIFEXITED(st) || WEXITSTATUS(st))
		return 7;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child")) {
		ssize_t n = readlink("/proc/self/exe", run_self, sizeof(run_self) - 1);

		run_self[n > 0 ? n : 0] = 0;
		if (!strcmp(argv[2], "exec"))
			return exec_child(atoi(argv[3]), atoi(argv[4]));
		return parent(atoi(argv[3]), atoi(argv[4]));
	}
	pid_t d = run_setup("run_fork_exec_child", argv[0]);
	struct child c = run_child(NULL, "parent", NULL);

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program did not start (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();

	if (samepage_scan_full(sp, 3))
		FAIL("scan: %s", samepage_last_error());
	long shared = get(sp, "pages_shared"), sharing = get(sp, "pages_sharing");

	printf("pages_shared %ld pages_sharing %ld\n", shared, sharing);
	/* parent and exec'd child at least (and the fork, a client too) */
	CHECK_EQ(shared, 1);
	CHECK(sharing >= 2 * NP - 1);
	send_byte(c.cmd, 'w');
	CHECK_EQ(recv_byte(c.ack, 30000), 'y');
	if (samepage_scan_full(sp, 2))
		FAIL("scan: %s", samepage_last_error());
	send_byte(c.cmd, 'c');
	CHECK_EQ(recv_byte(c.ack, 30000), 'y');
	send_byte(c.cmd, 'q');
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_fork_exec_child\n");
	return 0;
}

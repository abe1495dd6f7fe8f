/* SPDX-License-Identifier: MIT */
/*
 * run_all_python - `samepage run --all -- python3`: an interpreter that
 * never asks for merging, its objects in its brk heap and in mappings
 * glibc and Python make themselves, keeps 6,000 alike 8 KiB bytes objects
 * and a dict of unique ones; the daemon merges them (its counters), and
 * Python finds every object as it made it (a checksum over all of them,
 * before and after).  Skipped (77) without python3.
 */
#include "run_util.h"

static const char script[] =
	"import os, sys, hashlib, time\n"
	"cmd, ack = int(sys.argv[1]), int(sys.argv[2])\n"
	"alike = [bytes([7]) * 8192 for _ in range(6000)]\n"
	"uniq = {i: os.urandom(3000) for i in range(2000)}\n"
	"def digest():\n"
	"    h = hashlib.sha256()\n"
	"    for b in alike: h.update(b)\n"
	"    for i in range(2000): h.update(uniq[i])\n"
	"    return h.hexdigest()\n"
	"d = digest()\n"
	"os.write(ack, b'r')\n"
	"os.read(cmd, 1)\n"
	"alike[::2] = [bytes([9]) * 8192 for _ in range(3000)]\n"
	"for b in alike[1::2]: assert b == bytes([7]) * 8192\n"
	"for b in alike[::2]: assert b == bytes([9]) * 8192\n"
	"alike[::2] = [bytes([7]) * 8192 for _ in range(3000)]\n"
	"assert digest() == d, 'content changed'\n"
	"os.write(ack, b'y')\n";

int main(int argc, char **argv)
{
	(void)argc;
	if (system("python3 -c 'import hashlib' >/dev/null 2>&1") != 0)
		skip("run_all_python", "no python3 here");
	pid_t d = run_setup("run_all_python", argv[0]);
	int a[2], b[2];
	char bin[600], fa[16], fb[16];

	snprintf(bin, sizeof(bin), "%s/samepage", getenv("SAMEPAGE_BUILD_DIR"));
	if (pipe(a) || pipe(b))
		FAIL("pipe: %s", strerror(errno));
	pid_t pid = fork();

	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		snprintf(fa, sizeof(fa), "%d", a[0]);
		snprintf(fb, sizeof(fb), "%d", b[1]);
		execl(bin, "samepage", "run", "--socket", daemon_sock, "--all", "--", "python3", "-c",
		      script, fa, fb, (char *)NULL);
		_exit(127);
	}
	close(a[0]);
	close(b[1]);
	struct child c = { .pid = pid, .cmd = a[1], .ack = b[0] };

	if (recv_byte(c.ack, 60000) != 'r')
		FAIL("python3 did not start (exit status %d)", child_wait(&c));
	usleep(700000);	/* (a rescan after the objects were made) */
	struct samepage *sp = connect_daemon();

	if (samepage_scan_full(sp, 3))
		FAIL("scan: %s", samepage_last_error());
	long sharing = get(sp, "pages_sharing");

	printf("python3: pages_shared %ld pages_sharing %ld\n", get(sp, "pages_shared"), sharing);
	CHECK(sharing >= 6000);	/* (at least one whole page in each object) */
	send_byte(c.cmd, 'g');
	if (recv_byte(c.ack, 60000) != 'y')
		FAIL("python3 found its objects changed (exit status %d)", child_wait(&c));
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_all_python\n");
	return 0;
}

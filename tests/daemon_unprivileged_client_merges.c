/* SPDX-License-Identifier: MIT */
/*
 * daemon_unprivileged_client_merges - two clients running as nobody without
 * any capability, which may not make a userfaultfd that handles kernel
 * faults themselves (samepage_open fails for them), still merge under a
 * root daemon: it passes them its /dev/userfaultfd (SCM_RIGHTS) and their
 * USERFAULTFD_IOC_NEW on it gives a full uffd.  Their pages merge with each
 * other, read back what was written, and a kernel-mode write (read(2) from
 * a pipe) into a merged page lands.  77 unless root with /dev/userfaultfd
 * and vm.unprivileged_userfaultfd=0.
 */
#include "daemon_util.h"

#include <grp.h>

#define NPG 64

static void fill(char *p)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(p + i * page_size() + k,
			       &(uint64_t){ 0x5500000000000000ull + (uint64_t)i * 131 + k }, 8);
}

static bool filled(const char *p, int from, int to)
{
	for (int i = from; i < to; i++)
		for (size_t k = 0; k < page_size(); k += 8) {
			uint64_t v;

			memcpy(&v, p + i * page_size() + k, 8);
			if (v != 0x5500000000000000ull + (uint64_t)i * 131 + k)
				return false;
		}
	return true;
}

/* nobody, no capability left; 'n' to the parent if that cannot be */
static void become_nobody(int ack)
{
	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
	    setresuid(65534, 65534, 65534)) {
		send_byte(ack, 'n');
		_exit(0);
	}
	(void)prctl(PR_SET_DUMPABLE, 1);
}

/* idx 0 and 1: the same pages; 1 scans and checks */
static void client(int cmd, int ack, int idx)
{
	become_nobody(ack);
	struct samepage *sp = NULL;

	if (!samepage_open(&sp, 0)) {	/* it may: nothing to show here */
		samepage_close(sp);
		send_byte(ack, 'u');
		_exit(0);
	}
	int err = samepage_connect(&sp, daemon_sock);

	if (err)
		FAIL("samepage_connect as nobody: %s (%s)", strerror(-err), samepage_last_error());
	char *p = samepage_alloc(sp, NPG * page_size());

	CHECK(p);
	fill(p);
	send_byte(ack, 'r');
	CHECK_EQ(recv_byte(cmd, 60000), 'g');
	if (idx == 1) {
		CHECK_EQ(samepage_scan_full(sp, 3), 0);
		CHECK_EQ(get(sp, "pages_shared"), NPG);
		CHECK_EQ(get(sp, "pages_sharing"), NPG);
		CHECK_EQ(get(sp, "ksm_merging_pages"), NPG);
	}
	CHECK(filled(p, 0, NPG));
	if (idx == 1) {
		/* a kernel-mode write into a merged page: parks, then lands */
		int pfd[2];
		char buf[64];

		memset(buf, 0x77, sizeof(buf));
		CHECK_EQ(pipe(pfd), 0);
		CHECK_EQ(write(pfd[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
		CHECK_EQ(read(pfd[0], p + 5 * page_size(), sizeof(buf)), (ssize_t)sizeof(buf));
		CHECK(!memcmp(p + 5 * page_size(), buf, sizeof(buf)));
		CHECK(filled(p, 0, 5) && filled(p, 6, NPG));
	}
	send_byte(ack, 'd');
	CHECK_EQ(recv_byte(cmd, 60000), 'x');
	CHECK(idx == 1 || filled(p, 0, NPG));
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_unprivileged_client_merges", "needs root (the daemon's /dev/userfaultfd)");
	if (access("/dev/userfaultfd", R_OK | W_OK))
		skip("daemon_unprivileged_client_merges", "no /dev/userfaultfd (Linux 6.1 or later)");
	need_uffd("daemon_unprivileged_client_merges");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child c[2];

	for (int i = 0; i < 2; i++)
		c[i] = child_start(client, i);
	for (int i = 0; i < 2; i++) {
		int b = recv_byte(c[i].ack, 30000);

		if (b == 'n' || b == 'u') {
			for (int j = 0; j < 2; j++)
				kill(c[j].pid, SIGKILL);
			daemon_stop(dpid);
			skip("daemon_unprivileged_client_merges", b == 'n' ?
			     "cannot become nobody" :
			     "nobody may make a userfaultfd here (vm.unprivileged_userfaultfd=1?)");
		}
		CHECK_EQ(b, 'r');
	}
	send_byte(c[1].cmd, 'g');
	CHECK_EQ(recv_byte(c[1].ack, 60000), 'd');
	send_byte(c[0].cmd, 'g');
	CHECK_EQ(recv_byte(c[0].ack, 60000), 'd');
	for (int i = 0; i < 2; i++) {
		send_byte(c[i].cmd, 'x');
		CHECK_EQ(child_wait(&c[i]), 0);
	}
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_unprivileged_client_merges\n");
	return 0;
}

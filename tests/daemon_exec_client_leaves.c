/* SPDX-License-Identifier: MIT */
/*
 * daemon_exec_client_leaves - a client that execs (its address space
 * replaced, the same pid going on) is an exiting mm for the daemon: its
 * connection closes with the exec (close-on-exec), the daemon's counters
 * drop to exactly the other client's (pages_shared 4, pages_sharing 28,
 * rmap items, store pages, clients), the other client's memory is what it
 * wrote and stays merged; the new program holds nothing of samepage (no
 * store, userfaultfd or socket descriptor) and runs to its end.
 */

#include "daemon_util.h"

#include <dirent.h>

#define NPG 32	/* 4 contents, 8 pages each */

static char self[4096];

static void fill(char *mem)
{
	for (size_t i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k,
			       &(uint64_t){ 0x3300000000000000ull + (i % 4) * 104729 + k }, 8);
}

/* The program after the exec: what it holds, then wait for the word. */
static int after_exec(int cmd, int ack)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int held = 0;

	CHECK(dir);
	while ((de = readdir(dir))) {
		char p[300], t[300];
		ssize_t n;

		snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
		n = readlink(p, t, sizeof(t) - 1);
		if (n <= 0)
			continue;
		t[n] = 0;
		if (strstr(t, "samepage") || strstr(t, "userfaultfd") || strstr(t, "socket:")) {
			printf("after exec: fd %s -> %s\n", de->d_name, t);
			held++;
		}
	}
	closedir(dir);
	send_byte(ack, held ? 'f' : 'e');
	(void)recv_byte(cmd, 60000);
	return 0;
}

static void client(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *mem = samepage_alloc(sp, NPG * page_size());
	CHECK(mem);
	fill(mem);
	send_byte(ack, 'r');
	int c = recv_byte(cmd, 60000);

	if (c == 'x' && idx == 0) {
		char a[16], b[16];

		snprintf(a, sizeof(a), "%d", cmd);
		snprintf(b, sizeof(b), "%d", ack);
		execl(self, self, "after-exec", a, b, (char *)NULL);
		FAIL("exec %s: %s", self, strerror(errno));
	}
	char *copy = malloc(NPG * page_size());

	CHECK(copy);
	fill(copy);
	if (memcmp(mem, copy, NPG * page_size()))
		FAIL("process %d: its memory changed", idx);
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static long wait_for(struct samepage *sp, const char *name, long want)
{
	long v = -1;

	for (int t = 0; t < 2000; t++) {
		v = get(sp, name);
		if (v == want)
			break;
		usleep(10000);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "after-exec"))
		return after_exec(atoi(argv[2]), atoi(argv[3]));
	need_uffd("daemon_exec_client_leaves");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	CHECK(n > 0);
	self[n] = 0;
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child c[2];

	for (int i = 0; i < 2; i++)
		c[i] = child_start(client, i);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(recv_byte(c[i].ack, 60000), 'r');
	struct samepage *sp = connect_daemon();

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG - 4);
	CHECK_EQ(get(sp, "clients"), 3);
	long items = get(sp, "pages_volatile") + get(sp, "pages_unshared") +
		     get(sp, "pages_shared") + get(sp, "pages_sharing");

	CHECK_EQ(items, 2 * NPG);
	/* process 0 execs: same pid, new address space */
	send_byte(c[0].cmd, 'x');
	int said = recv_byte(c[0].ack, 60000);

	CHECK_EQ(said, 'e');	/* ('f': the new program holds a descriptor of ours) */
	CHECK_EQ(wait_for(sp, "clients", 2), 2);
	/* (an exiting mm's rmap items go at the scanner's next step) */
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), NPG - 4);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	CHECK_EQ(get(sp, "pages_volatile"), 0);
	CHECK_EQ(get(sp, "store_pages"), 4);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), NPG - 4);
	send_byte(c[0].cmd, 'q');
	CHECK_EQ(child_wait(&c[0]), 0);
	send_byte(c[1].cmd, 'q');
	CHECK_EQ(child_wait(&c[1]), 0);
	CHECK_EQ(wait_for(sp, "clients", 1), 1);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(get(sp, "store_pages"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_exec_client_leaves\n");
	return 0;
}

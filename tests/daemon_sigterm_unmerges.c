/* SPDX-License-Identifier: MIT */
/*
 * daemon_sigterm_unmerges - SIGTERM on a daemon whose three clients share
 * their pages: it exits 0, and every client's pages are private again (no
 * mapping of a store left, every page present as its own anonymous page),
 * with their content; the clients write on as before.
 */
#include "daemon_util.h"

#define NPROC	3
#define NPG	64

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	size_t len = NPG * page_size();
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	for (int i = 0; i < NPG; i++)
		memset(mem + i * page_size(), 'A' + i % 4, page_size());
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	if (recv_byte(cmd, 60000) != 'c')
		_exit(1);
	/* no private mapping of a store left (the agent's own shared
	 * read-only view of it stays until it connects again) */
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "samepage-uid") && strchr(line, ' ')[4] == 'p')
			FAIL("process %d still maps a store: %s", idx, line);
	fclose(f);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	CHECK(fd >= 0);
	for (int i = 0; i < NPG; i++) {
		uint64_t e = 0;

		CHECK(pread(fd, &e, 8, (off_t)((uintptr_t)mem / page_size() + (size_t)i) * 8) == 8);
		if (!(e >> 63) || (e & (1ull << 61)))
			FAIL("process %d page %d: pagemap %#llx, not a private page", idx, i,
			     (unsigned long long)e);
		for (size_t k = 0; k < page_size(); k++)
			CHECK_EQ(mem[i * page_size() + k], 'A' + i % 4);
	}
	close(fd);
	memset(mem, 'z', len);	/* (no writer may wait for anything) */
	CHECK_EQ(mem[len - 1], 'z');
	CHECK_EQ(samepage_close(sp), 0);
	send_byte(ack, 'k');
	_exit(0);
}

int main(void)
{
	need_uffd("daemon_sigterm_unmerges");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch[NPROC];

	for (int i = 0; i < NPROC; i++)
		ch[i] = child_start(child, i);
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), NPROC * NPG - 4);
	CHECK_EQ(daemon_stop(dpid), 0);
	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'c');
	for (int i = 0; i < NPROC; i++) {
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'k');
		CHECK_EQ(child_wait(&ch[i]), 0);
	}
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS daemon_sigterm_unmerges\n");
	return 0;
}

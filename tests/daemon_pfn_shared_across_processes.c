/* SPDX-License-Identifier: MIT */
/*
 * daemon_pfn_shared_across_processes - three clients with the same pages
 * (page i of each process has content i): once merged, page i of all three
 * is one physical page (pagemap PFNs, root), different for each i; a write
 * in one process gives that page a frame of its own there, the others keep
 * theirs, and every process reads what it wrote.
 */
#include "daemon_util.h"

#define NPROC	3
#define NPG	32

static char *mem;

static void fill_page(char *p, int i)
{
	for (size_t k = 0; k < page_size(); k += 8)
		memcpy(p + k, &(uint64_t){ 0x5a5a000000000000ull + (uint64_t)i * 7919 + k }, 8);
}

static void pfns(uint64_t *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);

	CHECK(fd >= 0);
	for (int i = 0; i < NPG; i++) {
		uint64_t e = 0;

		/* (a merged page is mapped at the first access) */
		(void)*(volatile char *)(mem + (size_t)i * page_size());
		off_t off = (off_t)(((uintptr_t)mem / page_size()) + (size_t)i) * 8;

		CHECK(pread(fd, &e, 8, off) == 8);
		out[i] = (e >> 63) ? (e & ((1ull << 55) - 1)) : 0;
	}
	close(fd);
}

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *want = malloc(NPG * page_size());

	mem = mmap(NULL, NPG * page_size(), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED && want);
	for (int i = 0; i < NPG; i++)
		fill_page(mem + i * page_size(), i);
	memcpy(want, mem, NPG * page_size());
	CHECK_EQ(samepage_madvise(sp, mem, NPG * page_size(), SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 60000);
		uint64_t pfn[NPG];

		if (c == 'p') {
			pfns(pfn);
			CHECK(write(ack, pfn, sizeof(pfn)) == (ssize_t)sizeof(pfn));
		} else if (c == 'w') {
			mem[100] ^= 1;
			want[100] ^= 1;
			send_byte(ack, 'w');
		} else {
			break;
		}
	}
	CHECK(memcmp(mem, want, NPG * page_size()) == 0);
	(void)idx;
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static void read_pfns(struct child *c, uint64_t *pfn)
{
	send_byte(c->cmd, 'p');
	size_t got = 0;

	while (got < NPG * 8) {
		ssize_t n = read(c->ack, (char *)pfn + got, NPG * 8 - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_pfn_shared_across_processes", "PFNs in pagemap need root");
	need_uffd("daemon_pfn_shared_across_processes");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch[NPROC];
	uint64_t pfn[NPROC][NPG];

	for (int i = 0; i < NPROC; i++)
		ch[i] = child_start(child, i);
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	struct samepage *sp = connect_daemon();

	set(sp, "max_page_sharing", 1000);
	/*
	 * No smart scan: a page whose first merge was refused (an agent
	 * slower than the scan, under a sanitizer) has aged by then, and once
	 * written after its merge it may be skipped for a few full scans,
	 * still counted as sharing, as with the kernel's KSM (seen: 64
	 * instead of 63).  This test is about page identity.
	 */
	set(sp, "smart_scan", 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPG);
	CHECK_EQ(get(sp, "pages_sharing"), (NPROC - 1) * NPG);
	for (int i = 0; i < NPROC; i++)
		read_pfns(&ch[i], pfn[i]);
	for (int k = 0; k < NPG; k++) {
		CHECK(pfn[0][k] != 0);
		for (int i = 1; i < NPROC; i++)
			CHECK_EQ(pfn[i][k], pfn[0][k]);
		for (int j = 0; j < k; j++)
			CHECK(pfn[0][j] != pfn[0][k]);
	}
	/* a write in process 0 copies page 0 there only */
	send_byte(ch[0].cmd, 'w');
	CHECK_EQ(recv_byte(ch[0].ack, 30000), 'w');
	uint64_t after[NPROC][NPG];

	for (int i = 0; i < NPROC; i++)
		read_pfns(&ch[i], after[i]);
	CHECK(after[0][0] != pfn[0][0] && after[0][0] != 0);
	for (int i = 1; i < NPROC; i++)
		CHECK_EQ(after[i][0], pfn[i][0]);
	for (int i = 0; i < NPROC; i++)
		for (int k = 1; k < NPG; k++)
			CHECK_EQ(after[i][k], pfn[i][k]);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	if (get(sp, "pages_sharing") != (NPROC - 1) * NPG - 1)
		dump_counters(sp);
	CHECK_EQ(get(sp, "pages_sharing"), (NPROC - 1) * NPG - 1);
	for (int i = 0; i < NPROC; i++) {
		send_byte(ch[i].cmd, 'x');
		CHECK_EQ(child_wait(&ch[i]), 0);
	}
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_pfn_shared_across_processes\n");
	return 0;
}

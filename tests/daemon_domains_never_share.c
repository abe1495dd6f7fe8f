/* SPDX-License-Identifier: MIT */
/*
 * daemon_domains_never_share - six clients with the same pages, in merge
 * domains (uid, $SAMEPAGE_DOMAIN):
 *     A (root, "x")  B (root, "y")  C (root, "x")
 *     D (nobody, "x")  E (nobody, "")  F (nobody, "")
 * Only A with C and E with F share (one physical frame per page, pagemap
 * PFNs read as root); B and D, alone in their domains, share with nobody,
 * whatever the name; every domain has its own figures; nobody may read
 * the knobs but not set them.
 */
#include "daemon_util.h"


#define NPG 32

static const struct who {
	uid_t uid;
	const char *domain;
} who[] = {
	{ 0, "x" }, { 0, "y" }, { 0, "x" }, { 65534, "x" }, { 65534, "" }, { 65534, "" },
};
#define NPROC ((int)(sizeof(who) / sizeof(who[0])))

static void child(int cmd, int ack, int idx)
{
	become_user(who[idx].uid);
	setenv("SAMEPAGE_DOMAIN", who[idx].domain, 1);
	struct samepage *sp = NULL;

	if (samepage_connect(&sp, daemon_sock))
		_exit(77);
	size_t len = NPG * page_size();
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k, &(uint64_t){ 0x3300000000000000ull +
								   (uint64_t)i * 65537 + k }, 8);
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	uintptr_t at = (uintptr_t)mem;

	CHECK(write(ack, &at, sizeof(at)) == (ssize_t)sizeof(at));
	/* knobs: the daemon's user or root only */
	long v;

	CHECK_EQ(samepage_get(sp, "run", &v), 0);
	if (who[idx].uid)
		CHECK_EQ(samepage_set(sp, "pages_to_scan", 1), -EPERM);
	while (recv_byte(cmd, 300000) == 'p') {
		for (int i = 0; i < NPG; i++)
			(void)*(volatile char *)(mem + i * page_size());
		send_byte(ack, 'p');
	}
	for (int i = 0; i < NPG; i++)
		CHECK_EQ(*(uint64_t *)(mem + i * page_size()), 0x3300000000000000ull +
			 (uint64_t)i * 65537);
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static void frames(struct child *c, uintptr_t at, uint64_t *pfn)
{
	char path[64];

	send_byte(c->cmd, 'p');
	CHECK_EQ(recv_byte(c->ack, 30000), 'p');
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)c->pid);
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0);
	for (int i = 0; i < NPG; i++) {
		uint64_t e = 0;

		CHECK(pread(fd, &e, 8, (off_t)((at / page_size() + (size_t)i) * 8)) == 8);
		CHECK(e >> 63);
		pfn[i] = e & ((1ull << 55) - 1);
		CHECK(pfn[i] != 0);
	}
	close(fd);
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_domains_never_share", "needs root (other users, PFNs)");
	need_uffd("daemon_domains_never_share");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch[NPROC];
	uintptr_t at[NPROC];

	for (int i = 0; i < NPROC; i++)
		ch[i] = child_start(child, i);
	for (int i = 0; i < NPROC; i++) {
		struct pollfd p = { .fd = ch[i].ack, .events = POLLIN };

		CHECK_EQ(poll(&p, 1, 30000), 1);
		if (read(ch[i].ack, &at[i], sizeof(at[i])) != (ssize_t)sizeof(at[i])) {
			if (child_wait(&ch[i]) == 77)
				skip("daemon_domains_never_share",
				     "cannot run a client as nobody with CAP_SYS_PTRACE");
			FAIL("client %d did not start", i);
		}
	}
	struct samepage *sp = connect_daemon();

	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	/* (0, "") of this process, (0, x), (0, y), (nobody, x), (nobody, "") */
	CHECK_EQ(get(sp, "domains"), 5);
	CHECK_EQ(get(sp, "pages_shared"), 2 * NPG);
	CHECK_EQ(get(sp, "pages_sharing"), 2 * NPG);
	CHECK_EQ(get(sp, "pages_unshared"), 2 * NPG);
	uint64_t pfn[NPROC][NPG];

	for (int i = 0; i < NPROC; i++)
		frames(&ch[i], at[i], pfn[i]);
	for (int k = 0; k < NPG; k++) {
		CHECK_EQ(pfn[0][k], pfn[2][k]);	/* A, C */
		CHECK_EQ(pfn[4][k], pfn[5][k]);	/* E, F */
		for (int i = 0; i < NPROC; i++)
			for (int j = 0; j < i; j++)
				if (!((j == 0 && i == 2) || (j == 4 && i == 5)))
					CHECK(pfn[i][k] != pfn[j][k]);
	}
	for (int i = 0; i < NPROC; i++) {
		send_byte(ch[i].cmd, 'x');
		CHECK_EQ(child_wait(&ch[i]), 0);
	}
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_domains_never_share\n");
	return 0;
}

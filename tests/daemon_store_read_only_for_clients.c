/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_read_only_for_clients - a client (nobody, no capability)
 * cannot change its domain's store, which holds the pages it shares with
 * others: through the descriptor the daemon gave it, write(2),
 * fallocate(2) (punch, resize), ftruncate(2), a shared writable mapping and
 * fchmod(2) fail; reopening it read-write through /proc/self/fd fails;
 * a private writable mapping copies on write, the store page unchanged.
 * Its own merged pages read what was written all along.  77 unless root
 * with /dev/userfaultfd (the daemon passes it to the client).
 */
#include "daemon_util.h"

#include <dirent.h>
#include <grp.h>

#define NPAIR 16

static uint64_t word(int i, size_t k)
{
	return 0x6600000000000000ull + (uint64_t)(i % NPAIR) * 977 + k;
}

static void check(const char *p, const char *when)
{
	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			if (*(const uint64_t *)(p + i * page_size() + k) != word(i, k))
				FAIL("%s: page %d offset %zu changed", when, i, k);
}

/* The store descriptors the agent holds (their links name the memfd). */
static int store_fds(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d);
	for (struct dirent *e; (e = readdir(d)) && n < max;) {
		char path[300], link[256];

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, link, sizeof(link) - 1);

		if (len <= 0)
			continue;
		link[len] = 0;
		if (strstr(link, "memfd:samepage-uid"))
			fds[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static void client(int cmd, int ack, int idx)
{
	(void)cmd;
	(void)idx;
	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
	    setresuid(65534, 65534, 65534)) {
		send_byte(ack, 'n');
		_exit(0);
	}
	(void)prctl(PR_SET_DUMPABLE, 1);
	struct samepage *sp = NULL;
	int err = samepage_connect(&sp, daemon_sock);

	if (err)
		FAIL("samepage_connect as nobody: %s (%s)", strerror(-err), samepage_last_error());
	char *p = samepage_alloc(sp, 2 * NPAIR * page_size());

	CHECK(p);
	for (int i = 0; i < 2 * NPAIR; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			*(uint64_t *)(p + i * page_size() + k) = word(i, k);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_sharing"), NPAIR);
	int fds[16];
	int n = store_fds(fds, 16);

	if (n < 1)
		FAIL("no store descriptor in the client");
	char page[4096];
	size_t pg = page_size();

	memset(page, 0x5a, sizeof(page));
	for (int k = 0; k < n; k++) {
		int fd = fds[k];
		char path[64];

		CHECK(write(fd, page, sizeof(page)) < 0 && errno == EBADF);
		CHECK(pwrite(fd, page, sizeof(page), 0) < 0 && errno == EBADF);
		CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)pg) < 0);
		CHECK(fallocate(fd, 0, 0, (off_t)pg * 2) < 0);
		CHECK(ftruncate(fd, 0) < 0);
		CHECK(fchmod(fd, 0666) < 0 && errno == EPERM);
		CHECK(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
		      errno == EACCES);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		CHECK(open(path, O_RDWR) < 0 && errno == EACCES);
		CHECK(open(path, O_WRONLY) < 0 && errno == EACCES);
		/* a private writable mapping: the write is its own copy */
		char *m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

		CHECK(m != MAP_FAILED);
		char before = m[0];

		m[0] = (char)~before;
		munmap(m, pg);
		m = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
		CHECK(m != MAP_FAILED);
		CHECK_EQ(m[0], before);
		munmap(m, pg);
	}
	check(p, "after the attempts");
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), NPAIR);
	check(p, "after two more full scans");
	printf("%d store descriptor(s): every way to write refused\n", n);
	fflush(stdout);
	CHECK_EQ(samepage_close(sp), 0);
	check(p, "after close");
	send_byte(ack, 'd');
	_exit(0);
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_store_read_only_for_clients", "needs root (the daemon's /dev/userfaultfd)");
	if (access("/dev/userfaultfd", R_OK | W_OK))
		skip("daemon_store_read_only_for_clients", "no /dev/userfaultfd (Linux 6.1 or later)");
	need_uffd("daemon_store_read_only_for_clients");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child c = child_start(client, 0);
	int b = recv_byte(c.ack, 60000);

	if (b == 'n') {
		daemon_stop(dpid);
		skip("daemon_store_read_only_for_clients", "cannot become nobody");
	}
	CHECK_EQ(b, 'd');
	CHECK_EQ(child_wait(&c), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_read_only_for_clients\n");
	return 0;
}

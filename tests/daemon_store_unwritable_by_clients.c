/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_unwritable_by_clients - a client cannot change its domain's
 * store, whose pages other processes map.  A client running as nobody
 * (with CAP_SYS_PTRACE, as a client needs) holds the store's read-only fd
 * after it connected; every way to write through it fails: write(2), a
 * shared writable mapping, a hole punched, fchmod back to writable,
 * truncation, and opening it again read-write through /proc/self/fd
 * (EACCES: a root daemon's store is root's, mode 0400, since it keeps no
 * write seal; a seal would refuse every write through such an fd).  Pages merged in the domain read as written throughout.
 */

#include "daemon_util.h"

#include <dirent.h>

#define NPG 16

/* The store fds this process holds (memfd:samepage-uid...); how many. */
static int store_fds(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d);
	for (struct dirent *de; (de = readdir(d)) && n < max;) {
		char path[300], target[256];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = 0;
		if (strstr(target, "memfd:samepage-uid"))
			fds[n++] = atoi(de->d_name);
	}
	closedir(d);
	return n;
}

/* Exit status: 0 every write refused, 10 + k the k-th way succeeded. */
static void child(int cmd, int ack, int idx)
{
	(void)idx;
	become_user(65534);
	struct samepage *sp = NULL;

	if (samepage_connect(&sp, daemon_sock))
		_exit(77);
	size_t len = NPG * page_size();
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	memset(mem, 'n', len);
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	CHECK_EQ(recv_byte(cmd, 60000), 't');
	int fds[8], n = store_fds(fds, 8), bad = 0;
	bool reopened = false;

	CHECK(n >= 1);
	for (int k = 0; k < n && !bad; k++) {
		char path[64];
		int fd = fds[k];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int rw = open(path, O_RDWR), open_err = errno;

		/* (opened, a write seal must refuse every write through it) */
		if (rw >= 0 && (write(rw, "x", 1) >= 0 ||
				mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, rw,
				     0) != MAP_FAILED ||
				fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
					  (off_t)page_size()) == 0))
			bad = 10;
		else if (write(fd, "x", 1) >= 0)
			bad = 11;
		else if (mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) !=
			 MAP_FAILED)
			bad = 12;
		else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				   (off_t)page_size()) == 0)
			bad = 13;
		else if (fchmod(fd, 0666) == 0)
			bad = 14;
		else if (ftruncate(fd, 0) == 0)
			bad = 15;
		if (rw >= 0) {
			reopened = true;
			close(rw);
		} else if (open_err != EACCES) {
			bad = 16;
		}
	}
	printf("client as nobody: %d store fd(s), reopened read-write: %s; %s\n", n,
	       reopened ? "yes" : "no (EACCES)", bad ? "one could write" : "every write refused");
	fflush(stdout);
	for (size_t k = 0; k < len; k++)
		CHECK_EQ(mem[k], 'n');
	CHECK_EQ(samepage_close(sp), 0);
	_exit(bad);
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_store_unwritable_by_clients", "needs root (a client as another user)");
	need_uffd("daemon_store_unwritable_by_clients");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(child, 0);

	if (recv_byte(ch.ack, 30000) != 'r') {
		if (child_wait(&ch) == 77)
			skip("daemon_store_unwritable_by_clients",
			     "cannot run a client as nobody with CAP_SYS_PTRACE");
		FAIL("the client did not start");
	}
	struct samepage *sp = connect_daemon();

	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_sharing"), NPG - 1);
	send_byte(ch.cmd, 't');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_unwritable_by_clients\n");
	return 0;
}

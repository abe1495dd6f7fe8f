/* SPDX-License-Identifier: MIT */
/*
 * daemon_fork_child_memory_correct - a client whose pages are merged with
 * another client's forks: the child reads exactly what its parent had, its
 * writes stay its own (and its parent's and the other client's stay
 * theirs), it closes its handle (it is a client of its own:
 * daemon_fork_becomes_client), and its memory stays right after both
 * clients exited and the daemon dropped their merge domain and its store.
 */
#include "daemon_util.h"

#include "proto.h"

#define NPG 16

#include "daemon_fork_pages.h"

static int result[2];	/* grandchild -> test */
static int go[2];	/* test -> grandchild */

static void grandchild(struct samepage *sp, char *mem)
{
	long v;
	char r = 'o';
	int k = 0;

	if (!right(mem, -1, 0))
		r = '1';
	while (samepage_get(sp, "run", &v) && k++ < 500)
		usleep(10000);	/* (its agent connects) */
	memset(mem, 'g', page_size());
	if (!right(mem, 0, 'g') || samepage_close(sp) || !right(mem, 0, 'g'))
		r = '2';
	if (write(result[1], &r, 1) != 1 || read(go[0], &r, 1) != 1)
		_exit(1);
	r = right(mem, 0, 'g') ? 'O' : '3';
	if (write(result[1], &r, 1) != 1)
		_exit(1);
	_exit(0);
}

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	char *mem = mmap(NULL, NPG * page_size(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	fill(mem);
	CHECK_EQ(samepage_madvise(sp, mem, NPG * page_size(), SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	int c = recv_byte(cmd, 60000);

	if (c == 'f') {
		pid_t pid = fork();

		CHECK(pid >= 0);
		if (pid == 0)
			grandchild(sp, mem);
		memset(mem + page_size(), 'p', page_size());	/* the parent's own */
		send_byte(ack, 'f');
		c = recv_byte(cmd, 60000);
	}
	CHECK(idx == 0 ? right(mem, 1, 'p') : right(mem, -1, 0));
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

/* A control connection to the daemon: one value. */
static long ctl_get(int fd, const char *name)
{
	static struct sp_packet pk;
	static uint32_t seq;

	CHECK_EQ(sp_msg_send(fd, SP_MSG_GET, ++seq, 0, 0, NULL, name, strlen(name), NULL, 0), 0);
	CHECK_EQ(sp_msg_recv(fd, &pk, 0), 1);
	CHECK_EQ(pk.h.status, 0);
	return (long)pk.h.arg[0];
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
	skip("daemon_fork_child_memory_correct", "ThreadSanitizer cannot follow a threaded "
	     "process that starts threads in its child after fork");
#endif
	need_uffd("daemon_fork_child_memory_correct");
	CHECK(pipe(result) == 0 && pipe(go) == 0);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child a = child_start(child, 0), b = child_start(child, 1);

	CHECK_EQ(recv_byte(a.ack, 30000), 'r');
	CHECK_EQ(recv_byte(b.ack, 30000), 'r');
	int fd = sp_socket_connect(daemon_sock);
	static struct sp_packet pk;
	uint64_t arg[4] = { SP_HELLO_CONTROL, 0, 0, 0 };

	CHECK(fd >= 0);
	CHECK_EQ(sp_msg_send(fd, SP_MSG_HELLO, 1, 0, 0, arg, NULL, 0, NULL, 0), 0);
	CHECK_EQ(sp_msg_recv(fd, &pk, 0), 1);
	arg[0] = 1;
	arg[1] = 3;
	CHECK_EQ(sp_msg_send(fd, SP_MSG_SCAN, 2, 0, 0, arg, NULL, 0, NULL, 0), 0);
	CHECK_EQ(sp_msg_recv(fd, &pk, 0), 1);
	CHECK_EQ(pk.h.status, 0);
	CHECK_EQ(ctl_get(fd, "pages_shared"), NPG);
	CHECK_EQ(ctl_get(fd, "pages_sharing"), NPG);

	send_byte(a.cmd, 'f');
	CHECK_EQ(recv_byte(a.ack, 30000), 'f');
	CHECK_EQ(recv_byte(result[0], 30000), 'o');
	send_byte(a.cmd, 'x');
	send_byte(b.cmd, 'x');
	CHECK_EQ(child_wait(&a), 0);
	CHECK_EQ(child_wait(&b), 0);
	/* both clients gone: their domain and its store too */
	for (int k = 0; k < 500 && ctl_get(fd, "domains"); k++)
		usleep(10000);
	CHECK_EQ(ctl_get(fd, "domains"), 0);
	send_byte(go[1], 'g');
	CHECK_EQ(recv_byte(result[0], 30000), 'O');
	close(fd);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_fork_child_memory_correct\n");
	return 0;
}

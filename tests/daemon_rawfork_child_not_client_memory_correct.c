/* SPDX-License-Identifier: MIT */
/*
 * daemon_rawfork_child_not_client_memory_correct - children of a client
 * made without the atfork handlers (_Fork(), clone(SIGCHLD), the raw fork
 * system call) are not clients: no code of the library runs in them to map
 * store pages (there is no remote mmap), and the handle they inherit may
 * have been taken in the middle of an operation of another thread.  What
 * holds for them, and is checked here for each of the three: the child
 * reads exactly what its parent had (merged pages are private file
 * mappings of store pages, valid in the child), its writes stay its own
 * (the parent and the other client keep theirs), its writes never park
 * (the userfaultfd registration is not inherited), every call on the
 * handle says -ECHILD, the daemon does not count it (clients, rmap items),
 * and its memory stays right after both clients exited and the daemon
 * dropped their merge domain and its store.
 */
#define _GNU_SOURCE
#include "daemon_util.h"

#include <sched.h>

#include "proto.h"

#define NPG 16

#include "daemon_fork_pages.h"
#define NWAYS 3

static const char *way_name[NWAYS] = { "_Fork", "clone(SIGCHLD)", "syscall(SYS_fork)" };
static int result[NWAYS][2];	/* grandchild -> test */
static int go[NWAYS][2];	/* test -> grandchild */

static void grandchild(struct samepage *sp, char *mem, int way)
{
	long v;
	char r = 'o';

	if (!right(mem, -1, 0))
		r = '1';
	else if (samepage_get(sp, "run", &v) != -ECHILD)
		r = '2';
	memset(mem + (size_t)way * page_size(), 'g', page_size());
	if (r == 'o' && !right(mem, way, 'g'))
		r = '3';
	if (r == 'o' && samepage_scan(sp, 1) != -ECHILD)
		r = '4';
	if (write(result[way][1], &r, 1) != 1 || read(go[way][0], &r, 1) != 1)
		_exit(1);
	r = right(mem, way, 'g') ? 'O' : '5';
	if (write(result[way][1], &r, 1) != 1)
		_exit(1);
	_exit(0);
}

static char clone_stack[64 * 1024] __attribute__((aligned(16)));
static struct samepage *g_sp;
static char *g_mem;

static int clone_main(void *arg)
{
	grandchild(g_sp, g_mem, (int)(intptr_t)arg);
	return 0;
}

static pid_t fork_by(int way, struct samepage *sp, char *mem)
{
	pid_t pid;

	switch (way) {
	case 0:
		pid = _Fork();
		break;
	case 1:
		g_sp = sp;
		g_mem = mem;
		return clone(clone_main, clone_stack + sizeof(clone_stack), SIGCHLD,
			     (void *)(intptr_t)way);
	default:
		pid = (pid_t)syscall(SYS_fork);
		break;
	}
	if (pid == 0)
		grandchild(sp, mem, way);
	return pid;
}

static void child(int cmd, int ack, int idx)
{
	(void)idx;
	struct samepage *sp = connect_daemon();
	char *mem = mmap(NULL, NPG * page_size(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	fill(mem);
	CHECK_EQ(samepage_madvise(sp, mem, NPG * page_size(), SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	int c = recv_byte(cmd, 60000);

	if (c == 'f') {
		for (int way = 0; way < NWAYS; way++)
			CHECK(fork_by(way, sp, mem) > 0);
		send_byte(ack, 'f');
		c = recv_byte(cmd, 60000);
	}
	CHECK(right(mem, -1, 0));
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
	skip("daemon_rawfork_child_not_client_memory_correct", "ThreadSanitizer cannot "
	     "follow a fork of a threaded process that bypasses its interceptors");
#endif
	need_uffd("daemon_rawfork_child_not_client_memory_correct");
	for (int w = 0; w < NWAYS; w++)
		CHECK(pipe(result[w]) == 0 && pipe(go[w]) == 0);
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
	for (int w = 0; w < NWAYS; w++) {
		int r = recv_byte(result[w][0], 30000);

		if (r != 'o')
			FAIL("the child made by %s: '%c' (1: content, 2: get not -ECHILD, "
			     "3: its write, 4: scan not -ECHILD)", way_name[w], r);
	}
	/* not clients: the daemon sees the two it had, and their pages alone */
	CHECK_EQ(ctl_get(fd, "clients"), 2);
	arg[0] = 1;
	arg[1] = 2;
	CHECK_EQ(sp_msg_send(fd, SP_MSG_SCAN, 3, 0, 0, arg, NULL, 0, NULL, 0), 0);
	CHECK_EQ(sp_msg_recv(fd, &pk, 0), 1);
	CHECK_EQ(pk.h.status, 0);
	CHECK_EQ(ctl_get(fd, "pages_shared"), NPG);
	CHECK_EQ(ctl_get(fd, "pages_sharing"), NPG);
	send_byte(a.cmd, 'x');
	send_byte(b.cmd, 'x');
	CHECK_EQ(child_wait(&a), 0);
	CHECK_EQ(child_wait(&b), 0);
	/* both clients gone: their domain and its store too */
	for (int k = 0; k < 500 && ctl_get(fd, "domains"); k++)
		usleep(10000);
	CHECK_EQ(ctl_get(fd, "domains"), 0);
	for (int w = 0; w < NWAYS; w++) {
		send_byte(go[w][1], 'g');
		int r = recv_byte(result[w][0], 30000);

		if (r != 'O')
			FAIL("the child made by %s: its memory changed once the domain was gone",
			     way_name[w]);
	}
	close(fd);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_rawfork_child_not_client_memory_correct\n");
	return 0;
}

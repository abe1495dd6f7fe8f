/* SPDX-License-Identifier: MIT */
/*
 * daemon_bad_requests_change_nothing - garbage on the daemon's socket
 * (random packets, truncated, too large, a wrong version or magic, wrong
 * lengths, unknown types, requests out of order, bad names, bad or vast ranges,
 * counters written, an agent's message sent by a client) gets an error
 * answer and changes nothing: the knobs are as before, and two clients go
 * on merging exactly as without it.  An empty packet reads as the end of
 * the connection.  Seed printed (SAMEPAGE_SEED to repeat).
 */
#include "daemon_util.h"

#include <sys/socket.h>

#include "ksm.h"
#include "proto.h"

#define NPG 16

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = connect_daemon();
	size_t len = NPG * page_size();
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	for (int i = 0; i < NPG; i++)
		memset(mem + i * page_size(), 'a' + i, page_size());
	CHECK_EQ(samepage_madvise(sp, mem, len, SAMEPAGE_MERGEABLE), 0);
	send_byte(ack, 'r');
	(void)recv_byte(cmd, 120000);
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k++)
			CHECK_EQ(mem[i * page_size() + k], 'a' + i);
	(void)idx;
	CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static struct sp_packet pk;

static int raw_connect(void)
{
	int fd = sp_socket_connect(daemon_sock);

	CHECK(fd >= 0);
	return fd;
}

/* The answer to what was just sent: its status. */
static int answer(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 10000) != 1)
		FAIL("no answer from the daemon");
	int r = sp_msg_recv(fd, &pk, 0);

	if (r != 1)
		FAIL("the daemon answered with no message (%d)", r);
	sp_packet_close_fds(&pk);
	CHECK(pk.h.type & SP_MSG_REPLY);
	return pk.h.status;
}

static int ask(int fd, uint16_t type, uint64_t a0, uint64_t a1, const void *pl, size_t plen,
	       uint32_t count)
{
	uint64_t arg[4] = { a0, a1, 0, 0 };

	CHECK_EQ(sp_msg_send(fd, type, 7, 0, count, arg, pl, plen, NULL, 0), 0);
	return answer(fd);
}

static void send_raw(int fd, const void *buf, size_t len)
{
	CHECK(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

int main(void)
{
	need_uffd("daemon_bad_requests_change_nothing");
	const char *env = getenv("SAMEPAGE_SEED");
	unsigned int seed = env ? (unsigned int)strtoul(env, NULL, 0) : (unsigned int)time(NULL);

	printf("seed %u\n", seed);
	srand(seed);
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch[2];

	for (int i = 0; i < 2; i++)
		ch[i] = child_start(child, i);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	struct samepage *sp = connect_daemon();
	long knobs[16];
	const char *n;

	for (unsigned int i = 0; (n = ksm_knob_name(i)); i++)
		knobs[i] = get(sp, n);

	/* random packets: each one an error answer */
	int fd = raw_connect();

	for (int k = 0; k < 300; k++) {
		unsigned char buf[512];
		size_t len = 1 + (size_t)rand() % sizeof(buf);

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand();
		send_raw(fd, buf, len);
		CHECK(answer(fd) < 0);
	}
	/* a header cut short, a wrong magic, version, length */
	struct sp_msg h = { .magic = SP_PROTO_MAGIC, .version = SP_PROTO_VERSION,
			    .type = SP_MSG_GET, .len = sizeof(h) };

	send_raw(fd, &h, sizeof(h) - 1);
	CHECK_EQ(answer(fd), -EBADMSG);
	h.magic ^= 1;
	send_raw(fd, &h, sizeof(h));
	CHECK_EQ(answer(fd), -EBADMSG);
	h.magic ^= 1;
	h.version = 99;
	send_raw(fd, &h, sizeof(h));
	CHECK_EQ(answer(fd), -EPROTO);
	h.version = SP_PROTO_VERSION;
	h.len = sizeof(h) + 10;
	send_raw(fd, &h, sizeof(h));
	CHECK_EQ(answer(fd), -EBADMSG);
	/* too large for any message */
	size_t big = SP_MSG_MAX + 4096;
	char *huge = calloc(1, big);
	int sz = (int)(2 * big);

	CHECK(huge);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (send(fd, huge, big, MSG_NOSIGNAL) == (ssize_t)big)
		CHECK_EQ(answer(fd), -EMSGSIZE);
	free(huge);
	/* requests before hello; bad hellos */
	CHECK_EQ(ask(fd, SP_MSG_GET, 0, 0, "run", 3, 0), -ENOTCONN);
	CHECK_EQ(ask(fd, SP_MSG_SET, 1, 0, "run", 3, 0), -ENOTCONN);
	CHECK_EQ(ask(fd, SP_MSG_HELLO, 0, page_size(), "a/b", 3, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_HELLO, 0, page_size(), "a b", 3, 0), -EINVAL);
	char longname[SP_NAME_MAX + 8];

	memset(longname, 'n', sizeof(longname));
	CHECK_EQ(ask(fd, SP_MSG_HELLO, 0, page_size(), longname, sizeof(longname), 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_HELLO, 0, page_size() * 2, "", 0, 0), -EINVAL);
	CHECK_EQ(ask(fd, 999, 0, 0, NULL, 0, 0), -ENOTCONN);
	/* a control connection */
	CHECK_EQ(ask(fd, SP_MSG_HELLO, SP_HELLO_CONTROL, 0, NULL, 0, 0), 0);
	CHECK_EQ(ask(fd, 999, 0, 0, NULL, 0, 0), -EBADMSG);
	CHECK_EQ(ask(fd, SP_MSG_HELLO, SP_HELLO_CONTROL, 0, NULL, 0, 0), -EISCONN);
	uint64_t r[4] = { 0x1000, 0x1010, 0, 0 };

	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, r, 16, 1), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_GET, 0, 0, "no_such_name", 12, 0), -ENOENT);
	CHECK_EQ(ask(fd, SP_MSG_GET, 0, 0, longname, sizeof(longname), 0), -ENOENT);
	CHECK_EQ(ask(fd, SP_MSG_GET, 0, 0, "ksm_rmap_items", 14, 0), -ENOENT);
	CHECK_EQ(ask(fd, SP_MSG_SET, 1, 0, "pages_shared", 12, 0), -EACCES);
	CHECK_EQ(ask(fd, SP_MSG_SET, 1, 0, "no_such_knob", 12, 0), -ENOENT);
	CHECK_EQ(ask(fd, SP_MSG_SET, 3, 0, "run", 3, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_SET, 1, 0, "max_page_sharing", 16, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_SET, 1ull << 40, 0, "pages_to_scan", 13, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_SCAN, 7, 1, NULL, 0, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_SCAN, 0, 1, "x", 1, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_STAT, 9, 0, NULL, 0, 0), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_MERGE, 0, 0, NULL, 0, 0), -EBADMSG);
	CHECK_EQ(ask(fd, SP_MSG_UNMERGE, 0, 100, NULL, 0, 0), -EBADMSG);
	close(fd);

	/* a client connection with bad ranges */
	fd = raw_connect();
	CHECK_EQ(ask(fd, SP_MSG_HELLO, 0, page_size(), "", 0, 0), 0);
	sp_packet_close_fds(&pk);
	uint64_t unsorted[4] = { 0x2000, 0x2010, 0x1000, 0x1010 };
	uint64_t empty[2] = { 0x2000, 0x2000 };
	uint64_t beyond[2] = { 1ull << 53, (1ull << 53) + 1 };

	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, unsorted, 32, 2), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, empty, 16, 1), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, beyond, 16, 1), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, unsorted, 16, 2), -EINVAL);
	CHECK_EQ(ask(fd, SP_MSG_RANGES, 5, 1, NULL, 0, 0), -EINVAL);
	/* more pages than the daemon would keep records of */
	uint64_t vast[2] = { 0x1000, 0x1000 + (1ull << 44) };

	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, vast, 16, 1), -E2BIG);
	/* memory it does not have: nothing to merge there */
	CHECK_EQ(ask(fd, SP_MSG_RANGES, 0, 0, r, 16, 1), 0);
	/* answers nobody asked for are dropped */
	CHECK_EQ(sp_msg_send(fd, SP_MSG_MERGE | SP_MSG_REPLY, 1, 0, 0, NULL, NULL, 0, NULL, 0), 0);
	CHECK_EQ(ask(fd, SP_MSG_GET, 0, 0, "ksm_rmap_items", 14, 0), 0);
	close(fd);

	/* an empty packet: the end of that connection */
	fd = raw_connect();
	send_raw(fd, "", 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };

	CHECK_EQ(poll(&p, 1, 10000), 1);
	CHECK_EQ(sp_msg_recv(fd, &pk, 0), 0);
	close(fd);

	/* nothing changed: the knobs, and merging */
	for (unsigned int i = 0; (n = ksm_knob_name(i)); i++)
		CHECK_EQ(get(sp, n), knobs[i]);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPG);
	CHECK_EQ(get(sp, "pages_sharing"), NPG);
	CHECK_EQ(get(sp, "pages_unshared"), 0);
	CHECK_EQ(get(sp, "clients"), 3);
	for (int i = 0; i < 2; i++) {
		send_byte(ch[i].cmd, 'x');
		CHECK_EQ(child_wait(&ch[i]), 0);
	}
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_bad_requests_change_nothing\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * proto.c - sending and receiving the daemon's messages (proto.h), and
 * finding its socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

int sp_msg_send(int fd, uint16_t type, uint32_t seq, int32_t status, uint32_t count,
		const uint64_t *arg, const void *payload, size_t plen,
		const int *fds, int nfds)
{
	struct sp_msg h = {
		.magic = SP_PROTO_MAGIC, .version = SP_PROTO_VERSION, .type = type,
		.len = (uint32_t)(sizeof(h) + plen), .seq = seq, .status = status,
		.count = count,
	};
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(sizeof(int) * SP_FDS_MAX)];
	} ctl;
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = plen },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = plen ? 2 : 1 };

	if (sizeof(h) + plen > SP_MSG_MAX || nfds < 0 || nfds > SP_FDS_MAX)
		return -EMSGSIZE;
	if (arg)
		memcpy(h.arg, arg, sizeof(h.arg));
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n >= 0)
			return n == (ssize_t)h.len ? 0 : -EIO;
		if (errno != EINTR)
			return -errno;
	}
}

void sp_packet_close_fds(struct sp_packet *pk)
{
	for (int i = 0; i < pk->nfds; i++)
		close(pk->fds[i]);
	pk->nfds = 0;
}

/* Take the fds out of the control messages; keep at most SP_FDS_MAX. */
static void take_fds(struct sp_packet *pk, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *d = CMSG_DATA(c);

		for (size_t i = 0; i < n; i++) {
			int f;

			memcpy(&f, d + i * sizeof(int), sizeof(int));
			if (pk->nfds < SP_FDS_MAX)
				pk->fds[pk->nfds++] = f;
			else
				close(f);
		}
	}
}

int sp_msg_recv(int fd, struct sp_packet *pk, int flags)
{
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(sizeof(int) * SP_FDS_MAX)];
	} ctl;
	struct iovec iov = { .iov_base = pk->buf, .iov_len = sizeof(pk->buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b),
	};
	ssize_t n;

	pk->nfds = 0;
	pk->payload = NULL;
	pk->plen = 0;
	do {
		n = recvmsg(fd, &mh, flags | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	take_fds(pk, &mh);
	if (n == 0 && !pk->nfds)
		return 0;
	int err = 0;

	if ((size_t)n > sizeof(pk->buf) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		err = -EMSGSIZE;
	else if ((size_t)n < sizeof(pk->h))
		err = -EBADMSG;
	if (!err) {
		memcpy(&pk->h, pk->buf, sizeof(pk->h));
		if (pk->h.magic != SP_PROTO_MAGIC || pk->h.len != (uint32_t)n)
			err = -EBADMSG;
		else if (pk->h.version != SP_PROTO_VERSION)
			err = -EPROTO;
	}
	if (err) {
		sp_packet_close_fds(pk);
		return err;
	}
	pk->payload = pk->buf + sizeof(pk->h);
	pk->plen = (size_t)n - sizeof(pk->h);
	return 1;
}

int sp_socket_path(const char *opt, char *buf, size_t len, char *why, size_t whylen)
{
	const char *env = getenv("SAMEPAGE_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (opt && *opt)
		n = snprintf(buf, len, "%s", opt);
	else if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/samepage/samepage.sock");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/samepage.sock", xdg);
	else {
		snprintf(why, whylen, "no socket: not root, and neither --socket, "
			 "$SAMEPAGE_SOCKET nor $XDG_RUNTIME_DIR is set");
		return -ENOENT;
	}
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(why, whylen, "socket path too long (at most %zu bytes)",
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

int sp_socket_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the messages between the daemon (src/daemon) and the clients:
 * the agent of libsamepage (agent.c) and `samepage ctl`.
 *
 * Transport: one unix SOCK_SEQPACKET connection per client; one message per
 * packet.  Every message is a fixed header (struct sp_msg) followed by a
 * payload whose layout the type fixes.  A receiver checks, before it acts:
 * the packet was not truncated (at most SP_MSG_MAX bytes), magic, version,
 * len equal to the packet's size, a known type, and the payload size the
 * type requires.  Anything else is answered with -EBADMSG (or -EPROTO for
 * another version) and changes nothing.
 *
 * Two directions on one socket:
 *   requests of the client (HELLO, RANGES, GET, SET, SCAN, STAT), each
 *     answered by the daemon with the same type | SP_MSG_REPLY and the
 *     request's seq;
 *   requests of the daemon to the agent (MERGE, UNMERGE, answered; and
 *     PRIVATIZE, not answered).
 * All fields are in the host's byte order (both ends run on one machine).
 */
#ifndef SAMEPAGE_LINUX_PROTO_H
#define SAMEPAGE_LINUX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SP_PROTO_MAGIC		0x31445053u	/* "SPD1" */
#define SP_PROTO_VERSION	1
#define SP_MSG_MAX		(256 * 1024)	/* bytes, header included */
#define SP_NAME_MAX		64		/* knob, counter and domain names */
#define SP_BATCH_MAX		4096		/* pages per MERGE / PRIVATIZE */
#define SP_RANGES_MAX		((SP_MSG_MAX - sizeof(struct sp_msg)) / 16)
#define SP_FDS_MAX		16		/* store fds in a HELLO reply */

enum sp_msg_type {
	/*
	 * HELLO  client: arg[0] flags (SP_HELLO_*), arg[1] page size, arg[2]
	 *        the agent's instance (0: not said): the same agent connecting
	 *        again gives the same, having finished every request of its
	 *        earlier connection; payload: the domain name (0..SP_NAME_MAX-1
	 *        bytes, no NUL).
	 *        reply: arg[0] nr_nodes, arg[1] node_shift, arg[2] pages per
	 *        store; count store fds (SCM_RIGHTS, read-only), one per node.
	 */
	SP_MSG_HELLO = 1,
	/*
	 * RANGES client: every range it has registered now (count times
	 *        {start, end} vpn, uint64_t); [arg[0], arg[1]) vpn: pages it
	 *        made private or discarded by itself, to be forgotten.
	 */
	SP_MSG_RANGES,
	SP_MSG_GET,		/* payload name; reply arg[0] value (int64) */
	SP_MSG_SET,		/* payload name, arg[0] value */
	SP_MSG_SCAN,		/* arg[0] 1: full scans, arg[1] how many */
	SP_MSG_STAT,		/* arg[0] SP_STAT_*; reply payload text */
	/*
	 * RECORDS client (a fork of a client, after RANGES): count times
	 *        struct sp_merge_req, pages it maps merged as its parent did;
	 *        reply payload: count bytes, 1 taken over, 0 refused (the
	 *        client then makes those pages private).
	 */
	SP_MSG_RECORDS,
	/*
	 * UFFD   client, before HELLO, on a connection of its own: a process
	 *        that may not make a userfaultfd handling kernel faults asks a
	 *        root daemon for its /dev/userfaultfd; reply: count 1, the fd
	 *        (SCM_RIGHTS), on which USERFAULTFD_IOC_NEW gives a full uffd
	 *        (-ENODEV: the daemon has none).
	 */
	SP_MSG_UFFD,
	/*
	 * MERGE  daemon: count times struct sp_merge_req; the agent does the
	 *        critical section (merge.c) for each page; reply payload: count
	 *        bytes, 1 merged, 0 refused.
	 */
	SP_MSG_MERGE = 32,
	SP_MSG_PRIVATIZE,	/* daemon: count vpns seen copied-on-write; no reply */
	SP_MSG_UNMERGE,		/* daemon: [arg[0], arg[1]) vpn private again, arg[2] discard */
};
#define SP_MSG_REPLY		0x8000

#define SP_HELLO_CONTROL	0x1	/* a control connection (ctl): no address space */

enum { SP_STAT_TEXT, SP_STAT_JSON, SP_STAT_METRICS };

/* The kind of mapping a MERGE entry asks for. */
enum sp_merge_kind {
	SP_MERGE_FILE = 1,	/* store slot @slot, mapped from the store memfd */
	SP_MERGE_ZERO_SLOT,	/* store slot @slot whose content is all zeros:
				 * mapped anonymously */
	SP_MERGE_ZERO,		/* the shared zero page (use_zero_pages) */
};

struct sp_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;		/* bytes, header included */
	uint32_t seq;		/* a request's number, echoed by its reply */
	int32_t status;		/* replies: 0 or a negative errno */
	uint32_t count;		/* entries of the payload (by type) */
	uint64_t arg[4];	/* by type */
};

struct sp_merge_req {
	uint64_t vpn;
	uint32_t slot;		/* slot id (linux_internal.h), 0 for SP_MERGE_ZERO */
	uint32_t kind;		/* enum sp_merge_kind */
};

/* A message received whole: header, payload, and the fds that came along. */
struct sp_packet {
	struct sp_msg h;
	const void *payload;
	size_t plen;
	int fds[SP_FDS_MAX];
	int nfds;
	char buf[SP_MSG_MAX] __attribute__((aligned(16)));	/* (payloads hold uint64_t) */
};

/* Send one message (fds along, may be NULL).  0 or a negative errno. */
int sp_msg_send(int fd, uint16_t type, uint32_t seq, int32_t status, uint32_t count,
		const uint64_t *arg, const void *payload, size_t plen,
		const int *fds, int nfds);
/*
 * Receive one message into @pk (@flags: MSG_DONTWAIT or 0).  Returns 1, 0
 * at end of file, -EAGAIN, -EBADMSG / -EPROTO / -EMSGSIZE for a packet that
 * is not a well-formed message (consumed, its fds closed), or another
 * negative errno.  Received fds beyond SP_FDS_MAX are closed.
 */
int sp_msg_recv(int fd, struct sp_packet *pk, int flags);
void sp_packet_close_fds(struct sp_packet *pk);

/* The socket: @opt, else $SAMEPAGE_SOCKET, else /run/samepage/samepage.sock
 * for root, else $XDG_RUNTIME_DIR/samepage.sock.  0, or -ENOENT with the
 * reason in @why. */
int sp_socket_path(const char *opt, char *buf, size_t len, char *why, size_t whylen);
/* A connected SOCK_SEQPACKET socket to @path, or a negative errno. */
int sp_socket_connect(const char *path);

#endif /* SAMEPAGE_LINUX_PROTO_H */

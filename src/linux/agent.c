/* SPDX-License-Identifier: MIT */
/*
 * agent.c - the agent: a thread of libsamepage in a client of the daemon
 * (samepage_connect).  The daemon holds the engine and decides; the agent
 * owns this process's userfaultfd and does every critical section on its
 * own memory itself, with the one merge protocol of merge.c.
 *
 * The handle of a connected process is an ordinary struct samepage in
 * "agent" mode (api.c): its own address space (os_self), ranges and
 * per-page records, pending runs and the fault reader, all as in-process,
 * but no scanner, and an idle engine of its own that only serves
 * samepage_close's run=2 (which unmerges through merge.c) and the zero-page
 * notifications of merge.c.  Its store is the daemon's: one memfd per node
 * of the process's merge domain, received read-only (SCM_RIGHTS), mapped
 * MAP_SHARED PROT_READ as the view merge.c compares against; store pages
 * are mapped MAP_PRIVATE|MAP_FIXED over merged pages as in-process.
 *
 * The daemon asks (proto.h):
 *   MERGE (vpn, slot, kind) x n  for each page: join a run, write-protect,
 *       compare in full with the store page (or check zeros), record; then
 *       one flush maps, re-registers and wakes the runs; the reply says per
 *       page whether its record now names the slot (merged) or not
 *       (refused: changed meanwhile, a parked writer aborted the run, the
 *       mapping is not ours any more...).  Nothing stays protected once
 *       the request is answered.
 *   PRIVATIZE vpn x n  pages the daemon saw copied-on-write: give them
 *       private anonymous memory (as in-process at the end of a batch).
 *   UNMERGE [a, b)  break_ksm there (run=2, SIGTERM of the daemon).
 * Slot counts: the agent never frees or punches a slot (it cannot: its fd
 * is read-only); every slot it learns of holds one count for the daemon,
 * so merge.c's releases never reach zero here.  The daemon alone decides
 * when a store page may go (src/daemon/store.c).
 *
 * The daemon gone (end of file on the socket): every range is unprotected
 * (UFFDIO_WRITEPROTECT mode 0: no writer can stay parked), merged pages
 * stay mapped and valid (a write copies), and the agent tries to connect
 * again every SP_AGENT_RETRY_MS.  Once connected to a new daemon, it first
 * makes every page private again (the old store is not the new daemon's),
 * then registers its ranges there.
 *
 * Locks: the engine lock (sp->lock) around all of the above, as for any
 * call of the API; calls that ask the daemon (samepage_get/set/scan) never
 * hold it while they wait for the answer, since the daemon may meanwhile
 * ask this agent to merge.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux_internal.h"
#include "proto.h"

#define SP_AGENT_RETRY_MS	200
#define SP_AGENT_WAIT_MS	30000	/* an answer of the daemon, at most */

struct sp_agent {
	char path[108];			/* the daemon's socket */
	char domain[SP_NAME_MAX];	/* $SAMEPAGE_DOMAIN at connect */
	int fd;				/* the connection; -1 none */
	pthread_t thread;
	bool thread_started;
	_Atomic bool stop;
	bool forked;			/* a fork's copy, not connected yet (ksm_fork) */
	uint64_t instance;		/* this agent among its process's (never 0) */

	/* calls of the API through the daemon: one at a time */
	pthread_mutex_t call_lock;
	pthread_mutex_t mu;		/* connected, want, have */
	pthread_cond_t cv;
	bool connected;
	uint32_t seq;
	uint32_t want;			/* seq of the call waiting, 0 none */
	bool have;
	int gone_err;			/* the call ended without an answer */

	struct sp_packet rx;		/* the agent thread's */
	struct sp_packet reply;		/* the answer to the call waiting */
	uint64_t ranges[2 * SP_RANGES_MAX] __attribute__((aligned(16)));
	uint8_t result[SP_BATCH_MAX];
};

static void handle_remove(struct samepage *sp);

/*
 * A number for this agent, said in every HELLO: the daemon tells by it a
 * connection of this very agent again (whose earlier requests are over:
 * one thread reads them and reconnects) from another handle of the process.
 */
static uint64_t new_instance(const struct sp_agent *a)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint64_t)(uintptr_t)a ^ sp_now_ms() ^ ((uint64_t)getpid() << 40);
	return v ? v : 1;
}

/* (own_interval() in api.c: these pages are never registered) */
size_t sp_agent_state_size(void)
{
	return sizeof(struct sp_agent);
}

/* ------------------------------------------------------------------------
 * The store of the domain, read-only.
 * --------------------------------------------------------------------- */
static void store_drop(struct samepage *sp)
{
	sp_store_fini(sp);
}

static int store_install(struct samepage *sp, const struct sp_packet *pk)
{
	int nr = (int)pk->h.arg[0], shift = (int)pk->h.arg[1];
	uint64_t cap = pk->h.arg[2];

	if (nr < 1 || nr != pk->nfds || shift < 12 || shift > 30 || !cap ||
	    cap > (1ull << shift))
		return -EPROTO;
	struct sp_store *st = sp_arena_alloc(&sp->arena, (size_t)nr * sizeof(*st));

	if (!st)
		return -ENOMEM;
	for (int n = 0; n < nr; n++) {
		struct stat sb;

		st[n].fd = pk->fds[n];
		st[n].cap = cap;
		if (fstat(st[n].fd, &sb) == 0) {
			st[n].ino = (uint64_t)sb.st_ino;
			st[n].dev = (uint64_t)sb.st_dev;
		}
		st[n].view = mmap(NULL, cap << sp->os.page_shift, PROT_READ,
				  MAP_SHARED | MAP_NORESERVE, st[n].fd, 0);
		if (st[n].view == MAP_FAILED) {
			int err = -errno;

			for (int k = 0; k < n; k++)
				munmap(st[k].view, cap << sp->os.page_shift);
			sp_arena_free(&sp->arena, st);
			return err;
		}
		/* (not for children, not for core dumps: store.c) */
		(void)madvise(st[n].view, cap << sp->os.page_shift, MADV_DONTFORK);
		(void)madvise(st[n].view, cap << sp->os.page_shift, MADV_DONTDUMP);
	}
	sp->store = st;
	sp->nr_nodes = nr;
	sp->node_shift = shift;
	return 0;
}

/* The slot @id as the daemon names it: known from now on, with the
 * daemon's count on it.  NULL if it cannot be one. */
static struct sp_slot *adopt_slot(struct samepage *sp, uint32_t id, bool zero)
{
	if (!sp->store || id == 0 || id > REC_SLOT)
		return NULL;
	int nid = slot_nid(sp, id);
	uint64_t off = slot_off(sp, id);

	if (nid >= sp->nr_nodes)
		return NULL;
	struct sp_store *st = &sp->store[nid];

	if (off >= st->cap)
		return NULL;
	if (off >= st->nslot) {
		uint64_t n = st->nslot ? st->nslot : 1024;

		while (n <= off)
			n *= 2;
		struct sp_slot *s = sp_arena_realloc(&sp->arena, st->slot, n * sizeof(*s));

		if (!s)
			return NULL;
		memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
		st->slot = s;
		st->nslot = n;
	}
	if (off >= st->hwm)
		st->hwm = off + 1;
	struct sp_slot *s = &st->slot[off];

	if (!(s->flags & SLOT_USED)) {
		*s = (struct sp_slot){ .flags = SLOT_USED | (zero ? SLOT_ZERO : 0), .count = 1,
				       .nid = (int16_t)nid };
		st->used++;
	}
	if (!(s->flags & SLOT_ZERO) != !zero) {
		/* the daemon reuses a slot once nobody maps it (its sweep):
		 * with nothing of ours on it but the daemon's count, take the
		 * new kind; pages of ours still on it as it was: refused */
		if (s->count > 1)
			return NULL;
		s->flags = (uint8_t)((s->flags & ~SLOT_ZERO) | (zero ? SLOT_ZERO : 0));
	}
	return s;
}

/* ------------------------------------------------------------------------
 * The daemon's requests.
 * --------------------------------------------------------------------- */
/* One page of a MERGE: the record it should get, or 0 if refused now. */
static uint32_t merge_one(struct samepage *sp, const struct sp_merge_req *q)
{
	struct sp_range *r;
	uint64_t i;
	uint32_t rec;
	enum check how = CHECK_ZERO;
	struct sp_slot *s = NULL;

	if (sp_in_pending(sp, q->vpn))
		sp_flush(sp);
	r = sp_range_find(sp, q->vpn);
	if (!r)
		return 0;
	i = q->vpn - r->start;
	switch (q->kind) {
	case SP_MERGE_FILE:
		s = adopt_slot(sp, q->slot, false);
		rec = q->slot;
		how = CHECK_EQUAL;
		break;
	case SP_MERGE_ZERO_SLOT:
		s = adopt_slot(sp, q->slot, true);
		rec = REC_ANON | q->slot;
		break;
	case SP_MERGE_ZERO:
		rec = REC_ANON;
		break;
	default:
		return 0;
	}
	if (q->kind != SP_MERGE_ZERO && !s)
		return 0;
	if (r->rec[i] == rec)
		return rec;		/* already */
	if (!sp_page_replaceable(sp, q->vpn, r->rec[i], (rec & REC_ANON) != 0) ||
	    !sp_budget_ok(sp, r, i, rec))
		return 0;
	if (s)
		s->count++;	/* the page's, if it merges */
	int err = sp_merge_page(sp, r, i, rec, how,
				how == CHECK_EQUAL ? slot_data(sp, q->slot) : NULL);

	if (err) {
		if (s)
			sp_slot_release(sp, q->slot);
		return 0;
	}
	return rec;
}

static void do_merge(struct samepage *sp, struct sp_agent *a, const struct sp_packet *pk)
{
	uint32_t n = pk->h.count;
	const struct sp_merge_req *q = pk->payload;
	uint32_t want[SP_BATCH_MAX];
	int status = 0;

	if (n > SP_BATCH_MAX || pk->plen != n * sizeof(*q)) {
		n = 0;
		status = -EBADMSG;
	}
	sp_lock(sp);
	for (uint32_t k = 0; k < n; k++)
		want[k] = merge_one(sp, &q[k]);
	/* map, register, wake: afterwards each page is merged or undone */
	sp_flush_batch(sp);
	for (uint32_t k = 0; k < n; k++) {
		struct sp_range *r = want[k] ? sp_range_find(sp, q[k].vpn) : NULL;

		a->result[k] = r && r->rec[q[k].vpn - r->start] == want[k];
	}
	sp_unlock(sp);
	(void)sp_msg_send(a->fd, SP_MSG_MERGE | SP_MSG_REPLY, pk->h.seq, status, n, NULL,
			  a->result, n, NULL, 0);
}

static void do_privatize(struct samepage *sp, const struct sp_packet *pk)
{
	uint32_t n = pk->h.count;
	const uint64_t *vpn = pk->payload;

	if (n > SP_BATCH_MAX || pk->plen != n * sizeof(*vpn))
		return;
	sp_lock(sp);
	for (uint32_t k = 0; k < n; k++) {
		if (sp_in_pending(sp, vpn[k]))
			sp_flush(sp);
		struct sp_range *r = sp_range_find(sp, vpn[k]);

		if (!r)
			continue;
		uint64_t i = vpn[k] - r->start;
		uint32_t rec = r->rec[i];

		if (rec_file(rec) && !(rec & REC_COWED)) {
			if (sp->ncow >= SP_COW_MAX)
				sp_flush_batch(sp);	/* (privatizes those noted) */
			sp_set_rec(sp, r, i, rec | REC_COWED);
			(void)sp_note_cowed(sp, vpn[k]);
		} else if (rec & REC_ANON) {
			/* a zero mapping written since: an ordinary page now */
			sp_set_rec(sp, r, i, 0);
			if (rec & REC_SLOT)
				sp_slot_release(sp, rec & REC_SLOT);
		}
	}
	sp_unlock(sp);	/* (the flush privatizes them) */
}

static void do_unmerge(struct samepage *sp, struct sp_agent *a, const struct sp_packet *pk)
{
	uint64_t s = pk->h.arg[0], e = pk->h.arg[1];
	int err = -EBADMSG;

	if (s < e && pk->plen == 0) {
		sp_lock(sp);
		err = sp_unmerge_range(sp, s, e, pk->h.arg[2] != 0);
		sp_unlock(sp);
	}
	(void)sp_msg_send(a->fd, SP_MSG_UNMERGE | SP_MSG_REPLY, pk->h.seq, err, 0, NULL,
			  NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------------
 * Connecting.
 * --------------------------------------------------------------------- */
static void dispatch(struct samepage *sp, struct sp_agent *a, struct sp_packet *pk);

/*
 * Wait for the answer to @seq on @fd, while connecting (the agent thread
 * is the one reading): requests of the daemon meanwhile (it may ask to
 * merge as soon as it knows our ranges) are served on the way.
 */
static int read_answer(struct samepage *sp, int fd, struct sp_packet *pk, uint16_t type,
		       uint32_t seq)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, SP_AGENT_WAIT_MS);

		if (r <= 0)
			return r ? -errno : -ETIMEDOUT;
		r = sp_msg_recv(fd, pk, 0);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return r;
		if (pk->h.type == (type | SP_MSG_REPLY) && pk->h.seq == seq)
			return pk->h.status;
		sp_packet_close_fds(pk);
		if (!(pk->h.type & SP_MSG_REPLY) && sp && sp->agent->fd == fd)
			dispatch(sp, sp->agent, pk);
		else if (!(pk->h.type & SP_MSG_REPLY))
			return -EPROTO;
	}
}

/* The ranges registered now, into a->ranges; returns their number. */
static uint32_t collect_ranges(struct samepage *sp, struct sp_agent *a)
{
	uint32_t n = 0;

	for (size_t i = 0; i < sp->nranges && n < SP_RANGES_MAX; i++, n++) {
		a->ranges[2 * n] = sp->ranges[i].start;
		a->ranges[2 * n + 1] = sp->ranges[i].end;
	}
	return n;
}

/* Is the store of the hello answer @pk the one we map (same files)? */
static bool same_store(struct samepage *sp, const struct sp_packet *pk)
{
	if (!sp->store || (int)pk->h.arg[0] != sp->nr_nodes || pk->nfds != sp->nr_nodes ||
	    (int)pk->h.arg[1] != sp->node_shift)
		return false;
	for (int n = 0; n < sp->nr_nodes; n++) {
		struct stat sb;

		if (fstat(pk->fds[n], &sb) || (uint64_t)sb.st_ino != sp->store[n].ino)
			return false;
	}
	return true;
}

/*
 * A fork tells the daemon which of its pages map store pages (as its
 * parent's did when it forked); those the daemon does not take over are
 * made private here.
 */
static int send_records(struct samepage *sp, struct sp_agent *a, int fd)
{
	static struct sp_merge_req q[SP_BATCH_MAX];	/* (agent thread only) */
	uint32_t seq = 3;
	size_t ri = 0;
	uint64_t v = sp->nranges ? sp->ranges[0].start : 0;
	int err = 0;

	for (;;) {
		uint32_t n = 0;

		sp_lock(sp);
		for (; ri < sp->nranges && n < SP_BATCH_MAX; ri++) {
			struct sp_range *r = &sp->ranges[ri];

			if (v < r->start)
				v = r->start;
			for (; v < r->end && n < SP_BATCH_MAX; v++) {
				uint32_t rec = r->rec[v - r->start];

				if (!(rec & REC_SLOT) || (rec & REC_COWED))
					continue;
				q[n++] = (struct sp_merge_req){
					.vpn = v, .slot = rec & REC_SLOT,
					.kind = (rec & REC_ANON) ? SP_MERGE_ZERO_SLOT : SP_MERGE_FILE,
				};
			}
			if (v < r->end)
				break;
		}
		sp_unlock(sp);
		if (!n)
			return err;
		err = sp_msg_send(fd, SP_MSG_RECORDS, ++seq, 0, n, NULL, q, n * sizeof(q[0]),
				  NULL, 0);
		if (!err)
			err = read_answer(sp, fd, &a->rx, SP_MSG_RECORDS, seq);
		if (!err && a->rx.plen != n)
			err = -EPROTO;
		/* refused (or no answer): private pages, as anywhere else */
		sp_lock(sp);
		for (uint32_t k = 0; k < n; k++) {
			if (!err && ((const uint8_t *)a->rx.payload)[k] == 1)
				continue;
			struct sp_range *r = sp_range_find(sp, q[k].vpn);

			if (!r)
				continue;
			uint64_t i = q[k].vpn - r->start;
			uint32_t rec = r->rec[i];

			if (rec_file(rec) && !(rec & REC_COWED)) {
				sp_set_rec(sp, r, i, rec | REC_COWED);
				(void)sp_note_cowed(sp, q[k].vpn);	/* (room: below) */
			} else if (rec & REC_ANON) {
				sp_set_rec(sp, r, i, 0);
				if (rec & REC_SLOT)
					sp_slot_release(sp, rec & REC_SLOT);
			}
			if (sp->ncow >= SP_COW_MAX)
				sp_flush_batch(sp);
		}
		sp_unlock(sp);	/* (the flush privatizes them) */
		if (err)
			return err;
	}
}

/*
 * Connect to the daemon, say hello, take the domain's store, tell our
 * ranges.  Pages merged through an earlier daemon are made private first.
 * Called before the agent thread runs, or by it.
 */
static int attach(struct samepage *sp, struct sp_agent *a)
{
	int fd = sp_socket_connect(a->path);

	if (fd < 0)
		return fd;
	uint64_t arg[4] = { 0, sp->os.page, a->instance, 0 };
	int err = sp_msg_send(fd, SP_MSG_HELLO, 1, 0, 0, arg, a->domain, strlen(a->domain),
			      NULL, 0);

	if (!err)
		err = read_answer(NULL, fd, &a->rx, SP_MSG_HELLO, 1);
	if (err) {
		sp_packet_close_fds(&a->rx);
		close(fd);
		return err;
	}
	sp_lock(sp);
	bool inherit = a->forked && same_store(sp, &a->rx);

	if (inherit) {
		/* a fork of a client of this daemon: its merged pages stay
		 * merged (the daemon takes them over below) */
		sp_packet_close_fds(&a->rx);
	} else if (sp->store) {
		/* the old daemon's pages: private again (its store is not the
		 * new daemon's), then forget that store */
		for (size_t i = 0; i < sp->nranges; i++)
			(void)sp_unmerge_range(sp, sp->ranges[i].start, sp->ranges[i].end, false);
		store_drop(sp);
	}
	err = inherit ? 0 : store_install(sp, &a->rx);
	uint32_t n = err ? 0 : collect_ranges(sp, a);

	sp_unlock(sp);
	if (err) {
		sp_packet_close_fds(&a->rx);
		close(fd);
		return err;
	}
	a->fd = fd;	/* (the agent thread's own from here: requests on the way) */
	err = sp_msg_send(fd, SP_MSG_RANGES, 2, 0, n, NULL, a->ranges, n * 16, NULL, 0);
	if (!err)
		err = read_answer(sp, fd, &a->rx, SP_MSG_RANGES, 2);
	if (!err && inherit)
		err = send_records(sp, a, fd);
	if (err) {
		a->fd = -1;
		close(fd);
		return err;
	}
	pthread_mutex_lock(&a->mu);
	a->seq = 3;
	a->connected = true;
	a->forked = false;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

/* The daemon is gone: nothing of ours may keep a writer parked. */
static void detach(struct samepage *sp, struct sp_agent *a)
{
	pthread_mutex_lock(&a->mu);
	a->connected = false;
	if (a->fd >= 0)
		shutdown(a->fd, SHUT_RDWR);
	if (a->want) {
		a->gone_err = -ENOTCONN;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	sp_lock(sp);
	for (size_t i = 0; i < sp->nranges; i++)
		(void)sp_os_protect(&sp->os, sp->ranges[i].start,
				    sp->ranges[i].end - sp->ranges[i].start, false);
	sp_unlock(sp);
}

static void deliver(struct sp_agent *a, struct sp_packet *pk)
{
	pthread_mutex_lock(&a->mu);
	if (a->want && pk->h.seq == a->want && !a->have) {
		a->reply.h = pk->h;
		memcpy(a->reply.buf, pk->payload, pk->plen);
		a->reply.payload = a->reply.buf;
		a->reply.plen = pk->plen;
		a->have = true;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	sp_packet_close_fds(pk);
}

/* Sleep up to @ms, false if asked to stop. */
static bool nap(struct samepage *sp, int ms)
{
	struct pollfd p = { .fd = sp->stop_pipe[0], .events = POLLIN };

	(void)poll(&p, 1, ms);
	return !atomic_load(&sp->agent->stop);
}

static void *agent_main(void *arg)
{
	struct samepage *sp = arg;
	struct sp_agent *a = sp->agent;

	while (!atomic_load(&a->stop)) {
		if (!a->connected) {
			pthread_mutex_lock(&a->call_lock);
			if (a->fd >= 0)
				close(a->fd);
			a->fd = -1;
			int err = attach(sp, a);

			pthread_mutex_unlock(&a->call_lock);
			if (err == -EDEADLK)
				break;	/* this process runs the daemon itself */
			if (err && !nap(sp, SP_AGENT_RETRY_MS))
				break;
			continue;
		}
		struct pollfd p[2] = {
			{ .fd = a->fd, .events = POLLIN },
			{ .fd = sp->stop_pipe[0], .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		int r = sp_msg_recv(a->fd, &a->rx, MSG_DONTWAIT);

		if (r == -EAGAIN || r == -EBADMSG || r == -EPROTO || r == -EMSGSIZE)
			continue;	/* (a bad message changes nothing) */
		if (r <= 0) {
			detach(sp, a);
			continue;
		}
		struct sp_packet *pk = &a->rx;

		if (pk->h.type & SP_MSG_REPLY) {
			deliver(a, pk);
			continue;
		}
		sp_packet_close_fds(pk);
		dispatch(sp, a, pk);
	}
	return NULL;
}

/* A request of the daemon. */
static void dispatch(struct samepage *sp, struct sp_agent *a, struct sp_packet *pk)
{
	switch (pk->h.type) {
	case SP_MSG_MERGE:
		do_merge(sp, a, pk);
		break;
	case SP_MSG_PRIVATIZE:
		do_privatize(sp, pk);
		break;
	case SP_MSG_UNMERGE:
		do_unmerge(sp, a, pk);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------
 * Calls of the API through the daemon.
 * --------------------------------------------------------------------- */
/*
 * Ask the daemon; its answer in a->reply.  Called without the engine lock.
 * The caller holds a->call_lock (the answer stays valid until it drops it).
 */
static int call_locked(struct sp_agent *a, uint16_t type, uint32_t count, const uint64_t *arg,
		       const void *payload, size_t plen)
{
	pthread_mutex_lock(&a->mu);
	if (!a->connected) {
		pthread_mutex_unlock(&a->mu);
		return -ENOTCONN;
	}
	uint32_t seq = ++a->seq;

	if (!seq)
		seq = a->seq = 3;
	a->want = seq;
	a->have = false;
	a->gone_err = 0;
	pthread_mutex_unlock(&a->mu);
	int err = sp_msg_send(a->fd, type, seq, 0, count, arg, payload, plen, NULL, 0);

	/* the daemon hung up (it died, or it gave up on us: a stopped
	 * process does not answer in time) and the agent thread has not seen
	 * it yet: as not connected (it reconnects and tells our ranges) */
	if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN || err == -ESHUTDOWN)
		err = -ENOTCONN;
	pthread_mutex_lock(&a->mu);
	while (!err && !a->have && !a->gone_err)
		pthread_cond_wait(&a->cv, &a->mu);
	if (!err)
		err = a->have ? a->reply.h.status : a->gone_err;
	a->want = 0;
	pthread_mutex_unlock(&a->mu);
	return err;
}

static int call(struct samepage *sp, uint16_t type, uint32_t count, const uint64_t *arg,
		const void *payload, size_t plen, int64_t *value)
{
	struct sp_agent *a = sp->agent;

	pthread_mutex_lock(&a->call_lock);
	int err = call_locked(a, type, count, arg, payload, plen);

	if (!err && value)
		*value = (int64_t)a->reply.h.arg[0];
	pthread_mutex_unlock(&a->call_lock);
	return err;
}

static void say(const char *what, const char *name, int err)
{
	if (err == -ENOTCONN)
		sp_set_error("%s%s%s: the daemon is not reachable (the agent reconnects by "
			     "itself)", what, name ? " " : "", name ? name : "");
	else
		sp_set_error("%s%s%s: %s", what, name ? " " : "", name ? name : "",
			     strerror(-err));
}

int sp_agent_get(struct samepage *sp, const char *name, long *value)
{
	int64_t v = 0;
	size_t len = strlen(name);
	int err = len < SP_NAME_MAX ? call(sp, SP_MSG_GET, 0, NULL, name, len, &v) : -ENOENT;

	if (err)
		say("samepage_get", name, err);
	else
		*value = (long)v;
	return err;
}

int sp_agent_set(struct samepage *sp, const char *knob, unsigned long value)
{
	uint64_t arg[4] = { value, 0, 0, 0 };
	size_t len = strlen(knob);
	int err = len < SP_NAME_MAX ? call(sp, SP_MSG_SET, 0, arg, knob, len, NULL) : -ENOENT;

	if (err)
		say("samepage_set", knob, err);
	return err;
}

int sp_agent_scan(struct samepage *sp, bool full, unsigned long n)
{
	uint64_t arg[4] = { full, n, 0, 0 };
	int err = call(sp, SP_MSG_SCAN, 0, arg, NULL, 0, NULL);

	if (err)
		say(full ? "samepage_scan_full" : "samepage_scan", NULL, err);
	return err;
}

/*
 * Our ranges changed (madvise, free, discard): tell the daemon, with the
 * pages [forget_a, forget_b) we made private or discarded ourselves.  Not
 * connected: nothing to do, the ranges go along when we connect again.
 */
int sp_agent_ranges(struct samepage *sp, uint64_t forget_a, uint64_t forget_b)
{
	struct sp_agent *a = sp->agent;

	pthread_mutex_lock(&a->call_lock);
	sp_lock(sp);
	uint32_t n = collect_ranges(sp, a);

	sp_unlock(sp);
	uint64_t arg[4] = { forget_a, forget_b, 0, 0 };
	int err = call_locked(a, SP_MSG_RANGES, n, arg, a->ranges, n * 16);

	pthread_mutex_unlock(&a->call_lock);
	if (err == -ENOTCONN)
		err = 0;
	if (err)
		say("samepage_madvise: the daemon refused the ranges", NULL, err);
	return err;
}

/* samepage_close: no more requests of the daemon from here on. */
void sp_agent_stop(struct samepage *sp)
{
	struct sp_agent *a = sp->agent;

	handle_remove(sp);

	atomic_store(&a->stop, true);
	if (write(sp->stop_pipe[1], "x", 1) < 0) {
		/* (the pipe is never full: one byte) */
	}
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	a->thread_started = false;
}

/* After the pages are private again: hang up (the daemon forgets us). */
void sp_agent_free(struct samepage *sp)
{
	struct sp_agent *a = sp->agent;

	if (!a)
		return;
	if (a->thread_started)
		sp_agent_stop(sp);
	if (a->fd >= 0)
		close(a->fd);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->call_lock);
	munmap(a, sizeof(*a));
	sp->agent = NULL;
}

/* ------------------------------------------------------------------------
 * fork(): the child becomes a client of its own (the kernel's ksm_fork).
 *
 * Around fork() (pthread_atfork) every connected handle's engine lock is
 * held, so the child's copy is consistent: no run pending, no page of ours
 * protected.  In the child the handle is made this process's: a new
 * userfaultfd (a child inherits the parent's, which acts on the parent's
 * memory, and no registration), its ranges registered with it, the store
 * views mapped again (they are MADV_DONTFORK), a stop pipe and threads of
 * its own; then its agent connects as a new client and hands the daemon
 * its merged pages (RECORDS), which stay shared until written.  If any of
 * that fails, the child's handle refuses every call (-ECHILD), and its
 * memory is right all the same (merged pages are private file mappings of
 * store pages that never change).  _Fork(), clone() and raw fork system
 * calls run no atfork handler: such a child is not a client, and its
 * handle refuses every call.
 * --------------------------------------------------------------------- */
#define SP_HANDLES_MAX 16
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct samepage *handles[SP_HANDLES_MAX];
static int nhandles;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&handles_lock);
	for (int i = 0; i < nhandles; i++)
		pthread_mutex_lock(&handles[i]->lock);
}

static void fork_parent(void)
{
	for (int i = nhandles; i-- > 0;)
		pthread_mutex_unlock(&handles[i]->lock);
	pthread_mutex_unlock(&handles_lock);
}

/* The child's copy of @sp becomes this process's handle; 0 or an errno. */
static int reborn(struct samepage *sp)
{
	struct sp_agent *a = sp->agent;
	int err;

	/* (other threads of the parent may have held these: they are gone) */
	pthread_mutex_init(&a->call_lock, NULL);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->thread_started = false;
	sp->reader_started = false;
	a->connected = false;
	a->want = 0;
	atomic_store(&a->stop, false);
	if (a->fd >= 0)
		close(a->fd);	/* (the parent's connection) */
	a->fd = -1;
	for (int k = 0; k < 2; k++)
		if (sp->stop_pipe[k] >= 0)
			close(sp->stop_pipe[k]);
	if (pipe2(sp->stop_pipe, O_CLOEXEC))
		return -errno;
	/* this process's memory: a uffd, /proc/self/{pagemap,mem}, buffers */
	sp_os_close(&sp->os);
	err = sp_os_open(&sp->os);
	if (err)
		return err;
	sp->os.nr_nodes = sp->nr_nodes;
	err = sp_forget_unmapped(sp);
	if (err)
		return err;
	for (size_t i = 0; i < sp->nranges; i++)
		(void)sp_os_register(&sp->os, sp->ranges[i].start,
				     sp->ranges[i].end - sp->ranges[i].start);
	for (int n = 0; sp->store && n < sp->nr_nodes; n++) {
		struct sp_store *st = &sp->store[n];
		size_t bytes = st->cap << sp->os.page_shift;

		st->view = mmap(NULL, bytes, PROT_READ, MAP_SHARED | MAP_NORESERVE, st->fd, 0);
		if (st->view == MAP_FAILED) {
			st->view = NULL;
			return -errno;
		}
		(void)madvise(st->view, bytes, MADV_DONTFORK);
		(void)madvise(st->view, bytes, MADV_DONTDUMP);
	}
	sp_cache_invalidate(sp);
	sp->pid = getpid();
	a->forked = true;
	a->instance = new_instance(a);
	/* (the parent's threads' stacks, copied: not ours to run on) */
	sp_arena_free(&sp->arena, sp->reader_stack);
	sp_arena_free(&sp->arena, sp->scanner_stack);
	sp->reader_stack = sp->scanner_stack = NULL;
	err = sp_start_thread(sp, &sp->reader, &sp->reader_stack, sp_reader_main,
			      "samepage-fault");
	if (err)
		return err;
	sp->reader_started = true;
	err = sp_start_thread(sp, &a->thread, &sp->scanner_stack, agent_main,
			      "samepage-agent");
	if (err)
		return err;
	a->thread_started = true;
	return 0;
}

static void fork_child(void)
{
	for (int i = 0; i < nhandles; i++) {
		struct samepage *sp = handles[i];
		pid_t parent = sp->pid;

#if defined(__SANITIZE_THREAD__)
		/* ThreadSanitizer cannot run threads started in the child of a
		 * threaded process: under it, forks of clients stay no clients */
		sp->agent->thread_started = false;
		pthread_mutex_unlock(&sp->lock);
		continue;
#endif
		if (reborn(sp)) {
			sp->pid = parent;	/* every call: -ECHILD */
			sp->agent->thread_started = false;
		}
		pthread_mutex_unlock(&sp->lock);
	}
	pthread_mutex_unlock(&handles_lock);
}

static void atfork_init(void)
{
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void handle_add(struct samepage *sp)
{
	pthread_once(&atfork_once, atfork_init);
	pthread_mutex_lock(&handles_lock);
	if (nhandles < SP_HANDLES_MAX)
		handles[nhandles++] = sp;
	pthread_mutex_unlock(&handles_lock);
}

static void handle_remove(struct samepage *sp)
{
	pthread_mutex_lock(&handles_lock);
	for (int i = 0; i < nhandles; i++) {
		if (handles[i] == sp) {
			handles[i] = handles[--nhandles];
			break;
		}
	}
	pthread_mutex_unlock(&handles_lock);
}

/* ------------------------------------------------------------------------
 * samepage_connect
 * --------------------------------------------------------------------- */

/* This process may not make a userfaultfd that handles kernel faults: ask
 * the daemon at @path for its /dev/userfaultfd (a root daemon has one), on
 * a connection of its own.  0 (sp_os_open will use it) or -errno. */
static int fetch_uffd_dev(const char *path)
{
	struct sp_packet *pk = mmap(NULL, sizeof(*pk), PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = sp_socket_connect(path), err;

	if (pk == MAP_FAILED) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	err = fd < 0 ? fd : sp_msg_send(fd, SP_MSG_UFFD, 1, 0, 0, NULL, NULL, 0, NULL, 0);
	if (!err) {
		int r = sp_msg_recv(fd, pk, 0);

		err = r < 0 ? r : r == 0 ? -ECONNRESET :
		      pk->h.type != (SP_MSG_UFFD | SP_MSG_REPLY) ? -EPROTO : pk->h.status;
		if (!err && pk->nfds == 1) {
			sp_os_set_uffd_dev(pk->fds[0]);
			pk->nfds = 0;
		} else if (!err) {
			err = -EPROTO;
		}
		sp_packet_close_fds(pk);
	}
	if (fd >= 0)
		close(fd);
	munmap(pk, sizeof(*pk));
	return err;
}
int samepage_connect(struct samepage **spp, const char *socket_path)
{
	char path[108], why[160];
	const char *dom = getenv("SAMEPAGE_DOMAIN");

	if (!spp) {
		sp_set_error("samepage_connect: NULL result pointer");
		return -EINVAL;
	}
	*spp = NULL;
	int err = sp_socket_path(socket_path, path, sizeof(path), why, sizeof(why));

	if (err) {
		sp_set_error("samepage_connect: %s", why);
		return err;
	}
	if (dom && strlen(dom) >= SP_NAME_MAX) {
		sp_set_error("samepage_connect: $SAMEPAGE_DOMAIN is longer than %d bytes",
			     SP_NAME_MAX - 1);
		return -EINVAL;
	}
	struct sp_linux_opts opts = { .agent = true };
	struct samepage *sp;

	err = sp_linux_open_opts(&sp, &opts);
	if ((err == -EPERM || err == -EACCES) && !fetch_uffd_dev(path))
		err = sp_linux_open_opts(&sp, &opts);
	if (err)
		return err;
	/* our own mapping, never the heap (the application may register it) */
	struct sp_agent *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED) {
		samepage_close(sp);
		sp_set_error("samepage_connect: out of memory");
		return -ENOMEM;
	}
	(void)madvise(a, sizeof(*a), MADV_DONTDUMP);
	snprintf(a->path, sizeof(a->path), "%s", path);
	snprintf(a->domain, sizeof(a->domain), "%s", dom ? dom : "");
	a->fd = -1;
	a->instance = new_instance(a);
	pthread_mutex_init(&a->call_lock, NULL);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	sp->agent = a;
	err = attach(sp, a);
	if (err) {
		samepage_close(sp);
		sp_set_error("samepage_connect: cannot reach the daemon at %s: %s", path,
			     strerror(-err));
		return err;
	}
	/* (the scanner's stack: an agent has no scanner) */
	err = sp_start_thread(sp, &a->thread, &sp->scanner_stack, agent_main,
			      "samepage-agent");
	if (err) {
		samepage_close(sp);
		sp_set_error("samepage_connect: cannot start the agent thread: %s",
			     strerror(-err));
		return err;
	}
	a->thread_started = true;
	handle_add(sp);
	*spp = sp;
	return 0;
}

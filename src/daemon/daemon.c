/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - `samepage daemon`: the socket, the clients' lives, the
 * requests, the scanner thread (ksmd), SIGTERM.  The architecture is in
 * daemon.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

void sd_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "samepage daemon: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ------------------------------------------------------------------------
 * The lock.
 * --------------------------------------------------------------------- */
void sd_lock(struct sd_daemon *d)
{
	atomic_fetch_add(&d->lock_waiters, 1);
	pthread_mutex_lock(&d->lock);
	atomic_fetch_sub(&d->lock_waiters, 1);
	/* the clients may have written anything since */
	d->gen++;
	for (struct sd_client *c = d->clients; c; c = c->next)
		c->win_n = 0;
}

void sd_unlock(struct sd_daemon *d)
{
	pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------------------------------
 * Clients.
 * --------------------------------------------------------------------- */
struct sd_client *sd_client_by_mm(struct sd_daemon *d, void *mm)
{
	uint64_t id = (uintptr_t)mm;

	for (struct sd_client *c = d->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

long sd_nclients(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_client *c = d->clients; c; c = c->next)
		n += !c->control && c->dom && !c->dead;
	return n;
}

long sd_ndomains(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		n++;
	return n;
}

/* @c is gone or will not answer: an exiting mm at the next reap. */
void sd_client_gone(struct sd_daemon *d, struct sd_client *c)
{
	(void)d;
	if (c->dead)
		return;
	c->dead = true;
	shutdown(c->fd, SHUT_RDWR);
	if (d->kick[1] >= 0 && write(d->kick[1], "r", 1) < 0) {
		/* (full: a reap is due anyway) */
	}
}

static void client_free(struct sd_daemon *d, struct sd_client *c)
{
	if (c->dom) {
		void *mm = (void *)(uintptr_t)c->id;

		ksm_exit(c->dom->ksm, mm);
		/* (its KSM zero pages went with ksm_exit) */
		c->nbatch = 0;
		for (size_t i = 0; i < c->nranges; i++)
			sd_drop_records(c, c->ranges[i].start, c->ranges[i].end, false);
		struct sd_domain *dom = c->dom;

		c->dom = NULL;
		sd_domain_put(d, dom);
	}
	for (size_t i = 0; i < c->nranges; i++)
		free(c->ranges[i].rec);
	free(c->ranges);
	sd_client_close_os(d, c);
	while (c->stash) {
		struct sd_stash *s = c->stash;

		c->stash = s->next;
		free(s);
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	close(c->fd);
	free(c);
}

/* Exiting mms: no engine call may be running (lock held). */
void sd_reap(struct sd_daemon *d)
{
	for (struct sd_client **pp = &d->clients; *pp;) {
		struct sd_client *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		client_free(d, c);
	}
}

/* Keep a request that came while we waited for an answer. */
static void stash(struct sd_daemon *d, struct sd_client *c)
{
	struct sd_stash *s = malloc(sizeof(*s) + d->rx.plen);

	if (!s)
		return;
	s->next = NULL;
	s->h = d->rx.h;
	s->plen = d->rx.plen;
	memcpy(s->payload, d->rx.payload, d->rx.plen);
	if (!c->stash)
		c->stash_tail = &c->stash;
	*c->stash_tail = s;
	c->stash_tail = &s->next;
	if (write(d->kick[1], "s", 1) < 0) {
		/* (the main thread looks at the stashes after every event) */
	}
}

static void reply_error(struct sd_client *c, const struct sp_msg *h, int err)
{
	uint16_t type = h ? (uint16_t)(h->type | SP_MSG_REPLY) : SP_MSG_REPLY;

	(void)sp_msg_send(c->fd, type, h ? h->seq : 0, err, 0, NULL, NULL, 0, NULL, 0);
}

/*
 * Wait for the agent's answer @type | REPLY, @seq, on @c (lock held): it
 * lands in d->rx.  Requests meanwhile are stashed, garbage is answered
 * with an error.  Returns 0, or a negative errno (the client is then gone).
 */
int sd_wait_answer(struct sd_daemon *d, struct sd_client *c, uint16_t type, uint32_t seq)
{
	uint64_t until = sp_now_ms() + SD_ANSWER_MS;

	for (;;) {
		uint64_t now = sp_now_ms();

		if (now >= until) {
			sd_log("pid %d did not answer within %d ms: disconnected", (int)c->pid,
			      SD_ANSWER_MS);
			sd_client_gone(d, c);
			return -ETIMEDOUT;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, (int)(until - now));

		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = sp_msg_recv(c->fd, &d->rx, MSG_DONTWAIT);
		if (r == -EAGAIN)
			continue;
		if (r == -EBADMSG || r == -EPROTO || r == -EMSGSIZE) {
			reply_error(c, NULL, r);
			continue;
		}
		if (r <= 0) {
			sd_client_gone(d, c);
			return r ? r : -ECONNRESET;
		}
		sp_packet_close_fds(&d->rx);
		if (d->rx.h.type == (type | SP_MSG_REPLY) && d->rx.h.seq == seq)
			return 0;
		if (!(d->rx.h.type & SP_MSG_REPLY))
			stash(d, c);
		/* (a stray answer: ignored) */
	}
}

/* ------------------------------------------------------------------------
 * Requests.
 * --------------------------------------------------------------------- */
static bool name_ok(const void *p, size_t len)
{
	const unsigned char *s = p;

	if (len >= SP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '/')
			return false;
	return true;
}

static int hello(struct sd_daemon *d, struct sd_client *c, const struct sp_msg *h,
		 const void *payload, size_t plen)
{
	char name[SP_NAME_MAX];

	if (c->hello)
		return -EISCONN;
	if (!name_ok(payload, plen))
		return -EINVAL;
	memcpy(name, payload, plen);
	name[plen] = 0;
	if (h->arg[0] & SP_HELLO_CONTROL) {
		c->control = true;
		c->hello = true;
		return sp_msg_send(c->fd, h->type | SP_MSG_REPLY, h->seq, 0, 0, NULL, NULL, 0,
				   NULL, 0);
	}
	if (h->arg[1] != d->page)
		return -EINVAL;
	/* (the agent a daemon's own process inherited from a client it was
	 * forked from: it would wait for itself) */
	if (c->pid == getpid())
		return -EDEADLK;
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0)
		return -errno;
	int err = sd_client_open_os(d, c);
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	if (!err && poll(&p, 1, 0) != 0)
		err = -ESRCH;	/* (exited, its pid maybe reused: not this one) */
	if (!err) {
		c->dom = sd_domain_get(d, c->uid, name);
		if (!c->dom)
			err = -ENOMEM;
	}
	if (err) {
		/* as before the hello */
		sd_client_close_os(d, c);
		close(c->pidfd);
		c->pidfd = -1;
		return err;
	}
	int fds[SP_FDS_MAX];
	uint64_t arg[4] = { (uint64_t)d->nr_nodes, (uint64_t)d->node_shift, d->cap, 0 };

	for (int n = 0; n < d->nr_nodes; n++)
		fds[n] = c->dom->store[n].ro_fd;
	c->hello = true;
	c->instance = h->arg[2];
	sd_store_limbo_release(d, c->pid, c->instance);
	return sp_msg_send(c->fd, h->type | SP_MSG_REPLY, h->seq, 0, (uint32_t)d->nr_nodes, arg,
			   NULL, 0, fds, d->nr_nodes);
}

static bool may_control(struct sd_daemon *d, struct sd_client *c)
{
	return c->uid == 0 || c->uid == d->uid;
}

/* One request of @c (lock held, no engine call running). */
static void handle(struct sd_daemon *d, struct sd_client *c, const struct sp_msg *h,
		   const void *payload, size_t plen)
{
	char name[SP_NAME_MAX];
	uint16_t rtype = h->type | SP_MSG_REPLY;
	int err;

	/* clients found gone since (in this round of events too) are exiting
	 * mms before any request looks at the counters or the engines */
	sd_reap(d);
	if (h->type == SP_MSG_HELLO) {
		err = hello(d, c, h, payload, plen);
		if (err)
			reply_error(c, h, err);
		return;
	}
	if (h->type == SP_MSG_UFFD) {
		err = c->hello ? -EISCONN : plen || h->count ? -EINVAL :
		      d->uffd_dev < 0 ? -ENODEV : 0;
		if (!err)
			err = sp_msg_send(c->fd, rtype, h->seq, 0, 1, NULL, NULL, 0,
					  &d->uffd_dev, 1);
		if (err)
			reply_error(c, h, err);
		return;
	}
	if (!c->hello) {
		reply_error(c, h, -ENOTCONN);
		return;
	}
	switch (h->type) {
	case SP_MSG_RANGES:
		if (c->control || plen != (size_t)h->count * 16 || h->count > SP_RANGES_MAX) {
			err = -EINVAL;
			break;
		}
		err = sd_set_ranges(d, c, payload, h->count, h->arg[0], h->arg[1]);
		break;
	case SP_MSG_RECORDS: {
		uint8_t ok[SP_BATCH_MAX];

		if (c->control || !c->dom || h->count > SP_BATCH_MAX ||
		    plen != (size_t)h->count * sizeof(struct sp_merge_req)) {
			err = -EINVAL;
			break;
		}
		sd_take_records(d, c, payload, h->count, ok);
		(void)sp_msg_send(c->fd, rtype, h->seq, 0, h->count, NULL, ok, h->count, NULL, 0);
		return;
	}
	case SP_MSG_GET: {
		long v = 0;

		if (!name_ok(payload, plen)) {
			err = -ENOENT;
			break;
		}
		memcpy(name, payload, plen);
		name[plen] = 0;
		err = sd_get(d, c, name, &v);
		if (!err) {
			uint64_t arg[4] = { (uint64_t)v, 0, 0, 0 };

			(void)sp_msg_send(c->fd, rtype, h->seq, 0, 0, arg, NULL, 0, NULL, 0);
			return;
		}
		break;
	}
	case SP_MSG_SET:
		if (!name_ok(payload, plen)) {
			err = -ENOENT;
			break;
		}
		memcpy(name, payload, plen);
		name[plen] = 0;
		if (!may_control(d, c)) {
			err = -EPERM;
			break;
		}
		err = sd_set(d, name, h->arg[0]);
		pthread_cond_broadcast(&d->wake);
		break;
	case SP_MSG_SCAN:
		err = plen || h->arg[0] > 1 ? -EINVAL : sd_scan(d, h->arg[0], h->arg[1]);
		break;
	case SP_MSG_STAT: {
		if (plen || h->arg[0] > SP_STAT_METRICS) {
			err = -EINVAL;
			break;
		}
		int n = sd_stat(d, c, (int)h->arg[0], d->out, sizeof(d->out));

		if (n < 0) {
			err = n;
			break;
		}
		(void)sp_msg_send(c->fd, rtype, h->seq, 0, 0, NULL, d->out, (size_t)n, NULL, 0);
		return;
	}
	default:
		err = -EBADMSG;
		break;
	}
	reply_error(c, h, err);	/* (0: the plain answer) */
}

static void handle_stashed(struct sd_daemon *d)
{
	for (struct sd_client *c = d->clients; c; c = c->next) {
		while (c->stash && !c->dead) {
			struct sd_stash *s = c->stash;

			c->stash = s->next;
			handle(d, c, &s->h, s->payload, s->plen);
			free(s);
		}
	}
}

/* Everything @c has sent (lock held). */
static void drain(struct sd_daemon *d, struct sd_client *c)
{
	while (!c->dead) {
		int r = sp_msg_recv(c->fd, &d->rx, MSG_DONTWAIT);

		if (r == -EAGAIN)
			return;
		if (r == -EBADMSG || r == -EPROTO || r == -EMSGSIZE) {
			reply_error(c, NULL, r);
			continue;
		}
		if (r <= 0) {
			sd_client_gone(d, c);
			return;
		}
		sp_packet_close_fds(&d->rx);	/* clients send us no fds */
		if (d->rx.h.type & SP_MSG_REPLY)
			continue;	/* a late answer (timed out before) */
		struct sp_msg h = d->rx.h;
		size_t plen = d->rx.plen;

		memcpy(d->req, d->rx.payload, plen);
		handle(d, c, &h, d->req, plen);
	}
}

static void accept_client(struct sd_daemon *d)
{
	int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct sd_client *c = calloc(1, sizeof(*c));

	if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len)) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->pidfd = -1;
	c->pagemap_fd = c->mem_fd = -1;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	sd_lock(d);
	c->id = ++d->next_id;
	c->next = d->clients;
	d->clients = c;
	sd_unlock(d);
}

/* ------------------------------------------------------------------------
 * The scanner: ksmd.
 * --------------------------------------------------------------------- */

static void *scanner_main(void *arg)
{
	struct sd_daemon *d = arg;

	sd_lock(d);
	while (!d->stop) {
		if (ksm_run_state(d->knobs) != KSM_RUN_MERGE || !d->domains) {
			struct timespec ts;

			sp_deadline_in(&ts, 1000);
			pthread_cond_timedwait(&d->wake, &d->lock, &ts);
			d->gen++;
			continue;
		}
		for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
			(void)ksm_do_scan(dom->ksm, ksm_pages_to_scan(d->knobs), NULL);
		sd_reap(d);
		sd_store_sweep(d);
		handle_stashed(d);
		unsigned long ms = ksm_sleep_millisecs(d->knobs);

		if (ms == 0) {
			sd_unlock(d);
			sp_hand_over(&d->lock_waiters);	/* (a waiting request) */
			sd_lock(d);
			continue;
		}
		struct timespec ts;

		sp_deadline_in(&ts, ms);
		pthread_cond_timedwait(&d->wake, &d->lock, &ts);
		d->gen++;
	}
	sd_unlock(d);
	return NULL;
}

/* ------------------------------------------------------------------------
 * The socket.
 * --------------------------------------------------------------------- */
/*
 * Listen on @path.  The socket is bound and listening under a temporary
 * name first and then renamed into place, so that whoever sees @path can
 * connect (no window between bind and listen).  A live daemon on @path is
 * an error; a stale socket (nobody listens) is replaced.
 */
static int listen_on(struct sd_daemon *d, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char tmp[sizeof(a.sun_path)];
	int n = snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	struct stat st;

	if (n < 0 || (size_t)n >= sizeof(tmp))
		snprintf(tmp, sizeof(tmp), "%s", path);	/* (too long: in place) */
	if (!strcmp(path, "/run/samepage/samepage.sock"))
		(void)mkdir("/run/samepage", 0755);
	int other = sp_socket_connect(path);

	if (other >= 0) {
		close(other);
		sd_log("another daemon already listens on %s", path);
		return -EADDRINUSE;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		sd_log("%s exists and is not a socket", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", tmp);
	(void)unlink(tmp);	/* (a stale socket: nobody listens there) */
	int err = bind(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;

	if (!err)
		(void)chmod(tmp, 0666);	/* anyone may connect: SO_PEERCRED decides */
	if (!err && listen(fd, 64))
		err = -errno;
	if (!err && strcmp(tmp, path) && rename(tmp, path))
		err = -errno;
	if (err) {
		sd_log("cannot listen on %s: %s", path, strerror(-err));
		(void)unlink(tmp);
		close(fd);
		return -EADDRNOTAVAIL;
	}
	d->listen_fd = fd;
	snprintf(d->path, sizeof(d->path), "%s", path);
	return 0;
}

static int setup(struct sd_daemon *d, const char *path)
{
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_condattr_destroy(&ca);
	d->listen_fd = d->kick[0] = d->kick[1] = -1;
	d->uid = geteuid();
	/* clients that may not make a userfaultfd get this one's fd */
	d->uffd_dev = d->uid == 0 ? open("/dev/userfaultfd", O_RDWR | O_CLOEXEC) : -1;
	d->page = (size_t)sysconf(_SC_PAGESIZE);
	while ((1ul << d->page_shift) < d->page)
		d->page_shift++;
	d->nr_nodes = numa_available() >= 0 ? numa_max_node() + 1 : 1;
	if (d->nr_nodes < 1 || d->nr_nodes > SP_FDS_MAX)
		d->nr_nodes = 1;
	int bits = 0;

	while ((1 << bits) < d->nr_nodes)
		bits++;
	d->node_shift = 30 - bits > 24 ? 24 : 30 - bits;
	d->cap = 1ull << d->node_shift;
	long phys = sysconf(_SC_PHYS_PAGES);

	if (phys > 0 && (uint64_t)phys + 1 < d->cap)
		d->cap = (uint64_t)phys + 1;
	d->zero_pfn = sd_find_zero_pfn(d->page, d->page_shift);
	/* the knob values: an engine that never gets an address space */
	static const struct sp_backend_ops none;
	struct sp_backend be = { .ops = &none, .be = d, .page_size = d->page,
				 .nr_node_ids = d->nr_nodes };
	int err = ksm_create(&d->knobs, &be);

	if (err)
		return err;
	if (pipe2(d->kick, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	return listen_on(d, path);
}

/* SIGTERM: every client's pages private again, then exit 0. */
static int shut_down(struct sd_daemon *d)
{
	sd_lock(d);
	d->stop = true;
	pthread_cond_broadcast(&d->wake);
	int err = sd_unmerge_all(d);

	sd_unlock(d);
	pthread_join(d->scanner, NULL);
	sd_lock(d);
	for (struct sd_client *c = d->clients; c; c = c->next)
		c->dead = true;
	sd_reap(d);
	sd_unlock(d);
	unlink(d->path);
	close(d->listen_fd);
	if (d->uffd_dev >= 0)
		close(d->uffd_dev);
	close(d->kick[0]);
	close(d->kick[1]);
	ksm_destroy(d->knobs);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	if (err)
		sd_log("unmerging at exit: %s", strerror(-err));
	free(d);
	return err ? 1 : 0;
}

int sd_daemon_run(const char *socket_path)
{
	struct sd_daemon *d = calloc(1, sizeof(*d));
	sigset_t set;

	if (!d)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	int err = sfd < 0 ? -errno : setup(d, socket_path);

	if (err) {
		if (err != -EADDRINUSE)
			sd_log("cannot start on %s: %s", socket_path, strerror(-err));
		return 1;
	}
	err = -pthread_create(&d->scanner, NULL, scanner_main, d);
	if (err) {
		sd_log("cannot start the scanner thread: %s", strerror(-err));
		return 1;
	}
	sd_log("listening on %s (pid %d)", d->path, (int)getpid());
	struct pollfd *p = NULL;
	uint64_t *who = NULL;	/* the client of p[k] by id (never reused) */
	size_t cap = 0;

	for (;;) {
		size_t n = 3;

		sd_lock(d);
		for (struct sd_client *c = d->clients; c; c = c->next)
			n += 2;
		if (n > cap) {
			cap = 2 * n;
			p = realloc(p, cap * sizeof(*p));
			who = realloc(who, cap * sizeof(*who));
			if (!p || !who) {
				sd_unlock(d);
				sd_log("out of memory");
				return 1;
			}
		}
		p[0] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = d->kick[0], .events = POLLIN };
		n = 3;
		for (struct sd_client *c = d->clients; c; c = c->next) {
			who[n] = c->id;
			p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
			who[n] = c->id;
			p[n++] = (struct pollfd){ .fd = c->pidfd, .events = POLLIN };
		}
		sd_unlock(d);
		if (poll(p, n, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents) {
			free(p);
			free(who);
			close(sfd);
			return shut_down(d);
		}
		if (p[0].revents)
			accept_client(d);
		char junk[64];

		if (p[2].revents && read(d->kick[0], junk, sizeof(junk)) < 0) {
			/* (empty) */
		}
		sd_lock(d);
		for (size_t k = 3; k < n; k++) {
			if (!p[k].revents)
				continue;
			/* (still there?  The scanner may have reaped it meanwhile,
			 * and a new client may have its fd numbers now) */
			struct sd_client *c = d->clients;

			while (c && c->id != who[k])
				c = c->next;
			if (!c || c->dead)
				continue;
			if (k % 2 == 0)
				sd_client_gone(d, c);	/* its pidfd: exited */
			else
				drain(d, c);
		}
		handle_stashed(d);
		sd_reap(d);
		sd_unlock(d);
	}
	return 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * store.c - the stores of a merge domain: one sealed memfd per node, its
 * slots and their counts.
 *
 * The memfd is mapped here once, MAP_SHARED read-write (the view: the
 * daemon writes a new KSM page's content there, and the engine compares
 * against it), then sealed (F_SEAL_SHRINK | F_SEAL_GROW; for a daemon not
 * run by root F_SEAL_FUTURE_WRITE too, store_open says why), and reopened
 * O_RDONLY through /proc/self/fd for the clients (a read-only fd cannot
 * write, and may still be mapped MAP_PRIVATE read-write: a write there
 * copies).  cross-process.md.
 *
 * Slots: a slot is free, or counted (the records of clients and the merges
 * pending that name it), or spent: named to an agent once and counted no
 * more.  A slot never named to any agent (a make_ksm whose merge was
 * refused) is free again at once.  A spent slot may still be mapped where
 * the records do not say: by a child of a client the daemon does not know
 * (a raw fork, a child of a client that died), at an address the program
 * moved it to without the agent seeing (glibc's realloc calls mremap
 * inside libc, out of LD_PRELOAD's reach), or later, by an agent that was
 * asked to map it and has not answered (a stopped process).  So its content
 * may change only once no process can map it, and that is asked of the
 * kernel, not of the records: the sweep (sd_store_sweep, at most every
 * SD_SWEEP_MS while slots are spent) reads /proc/PID/maps of every process
 * and frees the spent slots that no private mapping of the store covers,
 * and none that a MERGE without an answer named while that process lives
 * (sd_limbo).  A free slot is written again (with a new KSM page's content)
 * and its memory reused.  A root daemon's stores have no write seal
 * (store_open): their freed slots are punched out (store_punch), so the
 * memory of pages nobody shares any more returns at once; a user's
 * daemon's stores keep their pages until the domain ends (sd_store_fini,
 * when the domain has no clients: the kernel frees the file when its last
 * mapping goes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "daemon.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* Now, in the unit of a process's start time in /proc/PID/stat. */
static unsigned long long boot_ticks(void)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);

	clock_gettime(CLOCK_BOOTTIME, &ts);
	if (hz <= 0)
		hz = 100;
	return (unsigned long long)ts.tv_sec * (unsigned long long)hz +
	       (unsigned long long)ts.tv_nsec / (1000000000ull / (unsigned long long)hz);
}

static int store_open(struct sd_domain *dom, int nid, struct sd_store *st)
{
	struct sd_daemon *d = dom->d;
	char name[SP_NAME_MAX + 48];
	size_t bytes = d->cap << d->page_shift;

	snprintf(name, sizeof(name), "samepage-uid%u-%s-node%d", (unsigned)dom->uid,
		 dom->name, nid);
	st->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (st->fd < 0)
		return -errno;
	if (ftruncate(st->fd, (off_t)bytes))
		return -errno;
	st->view = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			st->fd, 0);
	if (st->view == MAP_FAILED) {
		st->view = NULL;
		return -errno;
	}
	/* (it spans the machine's memory: never in a core of the daemon) */
	(void)madvise(st->view, bytes, MADV_DONTDUMP);
	if (d->nr_nodes > 1) {
		unsigned long mask[16] = { 0 };

		if (nid < (int)(sizeof(mask) * 8)) {
			mask[nid / (8 * sizeof(long))] |= 1ul << (nid % (8 * sizeof(long)));
			(void)mbind(st->view, bytes, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
		}
	}
	/*
	 * Who may write the store: only this view.  Clients get a read-only
	 * fd, but a read-only fd of a memfd can be opened again read-write
	 * through /proc/PID/fd, as far as the file's mode allows.  As root:
	 * the file is root's, mode 0400, so that no client but root can (and
	 * root can write any process's memory anyway); then no write seal,
	 * and swept slots give their memory back (a hole punched, st->punch).
	 * Otherwise the clients are our own uid, who could chmod the file:
	 * F_SEAL_FUTURE_WRITE, which forbids holes too, so the memfd never
	 * shrinks.  (Older kernels lack FUTURE_WRITE: the read-only fd still
	 * protects against all but a reopen.)
	 */
	st->punch = geteuid() == 0 && fchmod(st->fd, 0400) == 0;
	if (st->punch)
		(void)fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	else if (fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE))
		(void)fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	(void)fcntl(st->fd, F_ADD_SEALS, F_SEAL_SEAL);
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", st->fd);
	st->ro_fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (st->ro_fd < 0)
		return -errno;
	st->cap = d->cap;
	struct stat sb;

	if (fstat(st->fd, &sb))
		return -errno;
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	st->born = boot_ticks();
	return 0;
}

int sd_store_init(struct sd_domain *dom)
{
	struct sd_daemon *d = dom->d;

	dom->store = calloc((size_t)d->nr_nodes, sizeof(*dom->store));
	if (!dom->store)
		return -ENOMEM;
	for (int n = 0; n < d->nr_nodes; n++)
		dom->store[n].fd = dom->store[n].ro_fd = -1;
	for (int n = 0; n < d->nr_nodes; n++) {
		int err = store_open(dom, n, &dom->store[n]);

		if (err)
			return err;
	}
	return 0;
}

void sd_store_fini(struct sd_domain *dom)
{
	if (!dom->store)
		return;
	for (int n = 0; n < dom->d->nr_nodes; n++) {
		struct sd_store *st = &dom->store[n];

		if (st->view)
			munmap(st->view, dom->d->cap << dom->d->page_shift);
		if (st->fd >= 0)
			close(st->fd);
		if (st->ro_fd >= 0)
			close(st->ro_fd);
		free(st->slot);
	}
	free(dom->store);
	dom->store = NULL;
	while (dom->limbo) {
		struct sd_limbo *l = dom->limbo;

		dom->limbo = l->next;
		close(l->pidfd);
		free(l);
	}
}

static int slot_nid_of(struct sd_daemon *d, uint32_t id)
{
	return (int)((id - 1) >> d->node_shift);
}

static uint64_t slot_off_of(struct sd_daemon *d, uint32_t id)
{
	return (id - 1) & ((1ull << d->node_shift) - 1);
}

struct sd_slot *sd_slot_get(struct sd_domain *dom, uint32_t id)
{
	struct sd_daemon *d = dom->d;

	if (!dom->store || id == 0 || id > REC_SLOT)
		return NULL;
	int nid = slot_nid_of(d, id);
	uint64_t off = slot_off_of(d, id);

	if (nid >= d->nr_nodes || off >= dom->store[nid].hwm)
		return NULL;
	return &dom->store[nid].slot[off];
}

char *sd_slot_data(struct sd_domain *dom, uint32_t id)
{
	struct sd_daemon *d = dom->d;

	return dom->store[slot_nid_of(d, id)].view + (slot_off_of(d, id) << d->page_shift);
}

/* A free slot on node @nid, counted once.  0 if the store is full. */
uint32_t sd_slot_alloc(struct sd_domain *dom, int nid)
{
	struct sd_daemon *d = dom->d;
	struct sd_store *st = &dom->store[nid];
	uint64_t off = st->hwm;

	if (st->free) {
		for (uint64_t k = 0; k < st->hwm; k++) {
			uint64_t o = (st->next + k) % st->hwm;

			if (st->slot[o].flags == 0) {
				off = o;
				break;
			}
		}
	}
	if (off == st->hwm) {
		if (off >= st->cap)
			return 0;
		if (off >= st->nslot) {
			uint64_t n = st->nslot ? 2 * st->nslot : 1024;
			struct sd_slot *s = realloc(st->slot, n * sizeof(*s));

			if (!s)
				return 0;
			memset(s + st->nslot, 0, (n - st->nslot) * sizeof(*s));
			st->slot = s;
			st->nslot = n;
		}
		st->hwm++;
	} else {
		st->free--;
	}
	st->next = off + 1;
	st->used++;
	dom->store_pages++;
	st->slot[off] = (struct sd_slot){ .flags = SD_SLOT_USED, .count = 1 };
	return (uint32_t)(((uint64_t)nid << d->node_shift) | off) + 1;
}

/* One count of slot @id goes. */
void sd_slot_put(struct sd_domain *dom, uint32_t id)
{
	struct sd_slot *s = sd_slot_get(dom, id);

	if (!s || !(s->flags & SD_SLOT_USED) || s->count == 0)
		return;
	if (--s->count)
		return;
	struct sd_store *st = &dom->store[slot_nid_of(dom->d, id)];

	s->node = NULL;
	st->used--;
	dom->store_pages--;
	if (s->flags & SD_SLOT_SENT) {
		s->flags &= SD_SLOT_SENT | SD_SLOT_ZERO;	/* spent */
		st->spent++;
		return;
	}
	/* never named to anyone: its old content may be overwritten */
	s->flags = 0;
	st->free++;
}

long sd_store_pages(struct sd_daemon *d)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		n += dom->store_pages;
	return n;
}

long sd_store_sum(struct sd_daemon *d, int what)
{
	long n = 0;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		for (int k = 0; dom->store && k < d->nr_nodes; k++)
			n += (long)(what == SD_SUM_SPENT ? dom->store[k].spent : dom->store[k].hwm);
	return n;
}

/* ------------------------------------------------------------------------
 * The sweep: which spent slots does some process still map?
 * --------------------------------------------------------------------- */
/* One store looked at: its spent slots when the sweep began, and those
 * some mapping covers. */
struct sweep_store {
	uint64_t dom_id;
	int nid;
	dev_t dev;
	ino_t ino;
	uint64_t hwm;
	uint64_t *spent, *mapped;	/* bitmaps [hwm] */
};

/* When @pid started (clock ticks since boot); 0 if unknown. */
static unsigned long long started(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long t = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');

	/* (after the name: state, then fields 4..21, then the start time) */
	if (!p || sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
				"%*s %*s %*s %*s %llu", &t) != 1)
		return 0;
	return t;
}

struct sweep {
	struct sweep_store *t;
	int nt;
	unsigned int page_shift;
	pid_t *done;			/* processes read, sorted */
	size_t ndone, cdone;
	bool root;
	unsigned long long oldest;	/* the oldest store's birth (clock ticks) */
};

static void bit_set_range(uint64_t *map, uint64_t hwm, uint64_t a, uint64_t n)
{
	for (uint64_t o = a; o < a + n && o < hwm; o++)
		map[o / 64] |= 1ull << (o % 64);
}

static bool bit_test(const uint64_t *map, uint64_t o)
{
	return map[o / 64] >> (o % 64) & 1;
}

/* A private file mapping of process being read: ours, if of a store. */
static void sweep_mapping(void *arg, uint64_t dev, uint64_t ino, uint64_t pgoff, uint64_t np)
{
	struct sweep *w = arg;

	for (int k = 0; k < w->nt; k++) {
		struct sweep_store *t = &w->t[k];

		if (t->ino == (ino_t)ino && t->dev == (dev_t)dev)
			bit_set_range(t->mapped, t->hwm, pgoff, np);
	}
}

/*
 * One process: its maps read twice and both counted, so that a mapping the
 * process moves while one read goes on (the kernel reads maps VMA by VMA,
 * not as one snapshot) is seen at one place or the other.  0, or a
 * negative errno that ends the sweep (a process we may not read, as root).
 */
static int sweep_process(struct sweep *w, pid_t pid)
{
	for (int pass = 0; pass < 2; pass++) {
		int n = sp_proc_file_maps(pid, w->page_shift, sweep_mapping, w);

		if (n == -ENOENT || n == -ESRCH)
			return 0;	/* gone: it maps nothing */
		if (n == -EACCES || n == -EPERM) {
			/*
			 * A process that cannot be read maps no store of ours if
			 * it started before them (a mapping is inherited by fork
			 * only; exec drops every one): a descriptor passed to it
			 * by a client would be needed (samepage(1)).  Without
			 * privilege, other users' processes are taken as not
			 * mapping one either: a child of a client becomes
			 * another user without exec only with privilege.
			 */
			unsigned long long t = started(pid);

			if (t && t < w->oldest)
				return 0;
			return w->root ? n : 0;
		}
		if (n < 0)
			return n;
	}
	return 0;
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/*
 * Every process, then every process that appeared meanwhile, until none
 * is new: a fork copies its parent's mappings, and a child whose parent was
 * read before it forked is listed by the time its parent's read is over.
 */
static int sweep_processes(struct sweep *w)
{
	for (int round = 0; round < 32; round++) {
		DIR *dir = opendir("/proc");
		struct dirent *de;
		size_t before = w->ndone;
		int err = 0;

		if (!dir)
			return -errno;
		if (w->ndone)
			qsort(w->done, w->ndone, sizeof(pid_t), pid_cmp);
		while (!err && (de = readdir(dir))) {
			char *end;
			long v = strtol(de->d_name, &end, 10);

			if (*end || v <= 0)
				continue;
			pid_t pid = (pid_t)v;

			if (before && bsearch(&pid, w->done, before, sizeof(pid_t), pid_cmp))
				continue;
			if (w->ndone == w->cdone) {
				size_t c = w->cdone ? 2 * w->cdone : 1024;
				pid_t *nd = realloc(w->done, c * sizeof(pid_t));

				if (!nd) {
					err = -ENOMEM;
					break;
				}
				w->done = nd;
				w->cdone = c;
			}
			w->done[w->ndone++] = pid;
			err = sweep_process(w, pid);
		}
		closedir(dir);
		if (err)
			return err;
		if (w->ndone == before)
			return 0;
	}
	return -EAGAIN;		/* (processes come faster than we read them) */
}

static struct sd_domain *domain_by_id(struct sd_daemon *d, uint64_t id)
{
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		if (dom->id == id)
			return dom;
	return NULL;
}

/* Slots named in a MERGE of @c's that was not answered. */
void sd_store_limbo(struct sd_client *c, const uint32_t *id, uint32_t n)
{
	struct sd_domain *dom = c->dom;
	struct sd_limbo *l = malloc(sizeof(*l) + n * sizeof(*id));
	int fd = c->pidfd >= 0 ? fcntl(c->pidfd, F_DUPFD_CLOEXEC, 0) : -1;

	if (!l || fd < 0) {
		/* (cannot tell when it ends: a count nobody gives back; the
		 * batch's own counts still hold them here) */
		for (uint32_t k = 0; k < n; k++) {
			struct sd_slot *s = sd_slot_get(dom, id[k]);

			if (s && (s->flags & SD_SLOT_USED))
				s->count++;
		}
		free(l);
		if (fd >= 0)
			close(fd);
		return;
	}
	l->pidfd = fd;
	l->pid = c->pid;
	l->instance = c->instance;
	l->n = n;
	memcpy(l->id, id, n * sizeof(*id));
	l->next = dom->limbo;
	dom->limbo = l;
}

/*
 * Agent @instance of process @pid said hello again: the requests of its
 * earlier connections are over (one thread answers them, then reconnects),
 * so what it mapped of them shows in its maps, and nothing comes late.
 * (Alive, the limbo's process is the one of that pid.)
 */
void sd_store_limbo_release(struct sd_daemon *d, pid_t pid, uint64_t instance)
{
	if (!instance)
		return;
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		for (struct sd_limbo **pp = &dom->limbo; *pp;) {
			struct sd_limbo *l = *pp;
			struct pollfd p = { .fd = l->pidfd, .events = POLLIN };

			if (l->pid != pid || l->instance != instance || poll(&p, 1, 0) != 0) {
				pp = &l->next;
				continue;
			}
			*pp = l->next;
			close(l->pidfd);
			free(l);
		}
}

/* Limbo slots count as mapped; the entries of processes gone go. */
static void sweep_limbo(struct sd_domain *dom, struct sweep_store *t, int nt)
{
	struct sd_daemon *d = dom->d;

	for (struct sd_limbo **pp = &dom->limbo; *pp;) {
		struct sd_limbo *l = *pp;
		struct pollfd p = { .fd = l->pidfd, .events = POLLIN };

		if (poll(&p, 1, 0) != 0) {
			*pp = l->next;
			close(l->pidfd);
			free(l);
			continue;
		}
		for (uint32_t k = 0; k < l->n; k++) {
			int nid = (int)((l->id[k] - 1) >> d->node_shift);
			uint64_t off = (l->id[k] - 1) & ((1ull << d->node_shift) - 1);

			for (int i = 0; i < nt; i++)
				if (t[i].dom_id == dom->id && t[i].nid == nid && off < t[i].hwm)
					bit_set_range(t[i].mapped, t[i].hwm, off, 1);
		}
		pp = &l->next;
	}
}

/*
 * Slots [o, o + n) are free: their memory goes back to the machine (the
 * next KSM page written there allocates again).  Nobody maps them.
 */
static void store_punch(struct sd_daemon *d, struct sd_store *st, uint64_t o, uint64_t n)
{
	if (!st->punch)
		return;
	if (fallocate(st->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(o << d->page_shift), (off_t)(n << d->page_shift)) == 0)
		d->punched += n;
}

/*
 * Free the spent slots no process maps (lock held; dropped while /proc is
 * read, so that clients' requests go on).  At most every SD_SWEEP_MS.
 */
void sd_store_sweep(struct sd_daemon *d)
{
	uint64_t now = sp_now_ms();
	struct sweep w = { .page_shift = d->page_shift, .root = geteuid() == 0 };
	int cap = 0;

	if (now < d->sweep_at || sd_store_sum(d, SD_SUM_SPENT) == 0)
		return;
	d->sweep_at = now + SD_SWEEP_MS;
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		for (int k = 0; dom->store && k < d->nr_nodes; k++) {
			struct sd_store *st = &dom->store[k];

			if (!st->spent)
				continue;
			if (w.nt == cap) {
				cap = cap ? 2 * cap : 4;
				struct sweep_store *nt = realloc(w.t, (size_t)cap * sizeof(*nt));

				if (!nt)
					goto out;
				w.t = nt;
			}
			struct sweep_store *t = &w.t[w.nt];
			size_t words = (st->hwm + 63) / 64;

			*t = (struct sweep_store){ .dom_id = dom->id, .nid = k, .dev = st->dev,
						   .ino = st->ino, .hwm = st->hwm };
			if (!w.oldest || st->born < w.oldest)
				w.oldest = st->born;
			t->spent = calloc(words ? words : 1, sizeof(uint64_t));
			t->mapped = calloc(words ? words : 1, sizeof(uint64_t));
			w.nt++;
			if (!t->spent || !t->mapped)
				goto out;
			for (uint64_t o = 0; o < st->hwm; o++)
				if ((st->slot[o].flags & (SD_SLOT_SENT | SD_SLOT_USED)) == SD_SLOT_SENT)
					bit_set_range(t->spent, t->hwm, o, 1);
		}
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
		sweep_limbo(dom, w.t, w.nt);
	sd_unlock(d);
	int err = sweep_processes(&w);

	sd_lock(d);
	d->sweeps++;
	if (err) {
		sd_log("store sweep: %s: spent slots kept", strerror(-err));
		goto out;
	}
	for (int i = 0; i < w.nt; i++) {
		struct sweep_store *t = &w.t[i];
		struct sd_domain *dom = domain_by_id(d, t->dom_id);

		if (!dom || !dom->store)
			continue;
		struct sd_store *st = &dom->store[t->nid];
		uint64_t run = 0, n = 0;	/* freed slots [run, run + n) */

		for (uint64_t o = 0; o <= t->hwm; o++) {
			struct sd_slot *s = o < t->hwm ? &st->slot[o] : NULL;

			if (!s || !bit_test(t->spent, o) || bit_test(t->mapped, o) ||
			    (s->flags & (SD_SLOT_SENT | SD_SLOT_USED)) != SD_SLOT_SENT) {
				if (n)
					store_punch(d, st, run, n);
				n = 0;
				continue;
			}
			if (!n)
				run = o;
			n++;
			*s = (struct sd_slot){ 0 };
			st->spent--;
			st->free++;
			d->reclaimed++;
		}
	}
out:
	for (int i = 0; i < w.nt; i++) {
		free(w.t[i].spent);
		free(w.t[i].mapped);
	}
	free(w.t);
	free(w.done);
}

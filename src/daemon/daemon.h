/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - `samepage daemon`: KSM across processes.
 *
 * Architecture (issue 8; DESIGN.md "Many processes"):
 *
 *   samepage daemon                          client process
 *   ----------------------------------       -------------------------------
 *   one engine (src/core) per merge          libsamepage: samepage_connect()
 *   domain, one mm_slot per client           starts the agent thread
 *   the scanner thread (ksmd)                (src/linux/agent.c), which owns
 *   remote.c: the backend ops over the       the process's userfaultfd and
 *     clients: pagemap (/proc/PID/pagemap)   does each critical section with
 *     and content (process_vm_readv,         merge.c, as in-process:
 *     /proc/PID/mem) read from here, the     protect -> full compare with its
 *     per-page records kept here; merges     read-only view of the store ->
 *     batched per client, sent at flush  --> map MAP_PRIVATE|MAP_FIXED ->
 *     ("MERGE vpn slot kind" x n)        <-- re-register -> wake; per page:
 *   store.c: per domain and node one         merged or refused
 *     sealed memfd, read-only to clients
 *   control.c: knobs, counters, ctl
 *
 * Why the agent does the critical section: nothing cross-process can stay
 * half done (cross-process.md): when the daemon dies, no page of a client
 * is protected, and merged pages are ordinary private file mappings of a
 * store page (valid, copied on write).  The daemon only decides which page
 * goes to which store page, with the engine's rules and counters.
 *
 * Merge domains: a domain is (uid, name): the uid of the process when it
 * connected (SO_PEERCRED) and $SAMEPAGE_DOMAIN then.  Each domain has its
 * own engine (so its own stable and unstable trees: a page can only ever
 * be compared with pages of its domain) and its own store (so a client can
 * read only its domain's store pages).  Processes of different users never
 * share; root puts processes in one named domain by connecting them as root
 * (e.g. `samepage run --domain NAME` before the program drops privileges).
 * Knobs are the daemon's: one value for every domain engine, set only by
 * root or the daemon's uid.  Counters: the sums over the domains (full_scans:
 * the fewest full scans of any domain).
 *
 * Locking: one mutex (d->lock) around the engines, the clients and their
 * sockets' reading.  The scanner and the main thread (requests) both call
 * the engines with it held; a flush waits for the agents' answers with it
 * held, and requests that arrive meanwhile are kept (stash) for the main
 * thread.  A client that does not answer within SD_ANSWER_MS (stopped,
 * stuck) is disconnected: it is an exiting mm from then on.
 *
 * Forks: the fork of a client becomes a client (agent.c, ksm_fork) and
 * hands over its merged pages (RECORDS): the daemon counts those whose
 * store page is still counted, the agent makes the others private.
 *
 * Death: end of file on a client's socket, or its pidfd, make it an
 * exiting mm (ksm_exit) at the next point where no engine call is running:
 * its records go, the store pages they counted go when no one else maps
 * them.  A store page once sent to any agent is never handed out again
 * (a stopped or disconnected agent may still map it later); the memory of
 * such pages returns when their domain has no clients left and its memfd
 * is closed (the kernel frees it when the last mapping goes).
 */
#ifndef SAMEPAGE_DAEMON_H
#define SAMEPAGE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "ksm.h"
#include "linux_internal.h"
#include "os.h"
#include "proto.h"

#define SD_ANSWER_MS	5000	/* an agent's answer to MERGE/UNMERGE, at most */
#define SD_PM_WIN	512	/* pagemap entries per window */
#define SD_PM_CACHE	64	/* windows cached per client */

/* Store slot flags (store.c). */
#define SD_SLOT_USED	0x1	/* counted: some record or pending merge names it */
#define SD_SLOT_ZERO	0x2	/* content all zeros: agents map it anonymously */
#define SD_SLOT_SENT	0x4	/* named to an agent once: free again only after a sweep */

#define SD_SWEEP_MS	1000	/* sweeps for mappers of spent slots, at most this often */

struct sd_slot {
	struct stable_node *node;	/* the engine's back pointer */
	uint32_t count;			/* records and pending merges naming it */
	uint8_t flags;
};

/* One node's store of one domain. */
struct sd_store {
	int fd;			/* memfd, sealed; ours is read-write */
	int ro_fd;		/* the same file reopened O_RDONLY: what clients get */
	char *view;		/* MAP_SHARED read-write: slots are written here */
	uint64_t cap;		/* pages */
	uint64_t hwm;		/* slots [0, hwm) were handed out once */
	uint64_t used;		/* slots counted */
	uint64_t free;		/* slots below hwm free again */
	uint64_t spent;		/* slots named to an agent, counted no more, not yet swept */
	uint64_t next;		/* next-fit cursor among free ones */
	dev_t dev;		/* the memfd's, as /proc/PID/maps shows it */
	ino_t ino;
	unsigned long long born;	/* clock ticks since boot, as /proc/PID/stat */
	bool punch;		/* swept slots give their memory back (no write seal) */
	struct sd_slot *slot;	/* [nslot] */
	uint64_t nslot;
};

struct sd_daemon;

/* Slots named in a MERGE that was never answered: the agent may still map
 * them (a stopped process), so they are held while its process lives, or
 * until that agent connects again (it has then given the request up). */
struct sd_limbo {
	struct sd_limbo *next;
	int pidfd;
	pid_t pid;
	uint64_t instance;	/* the agent's (HELLO arg[2]), 0 unknown */
	uint32_t n;
	uint32_t id[];
};

struct sd_domain {
	struct sd_domain *next;
	struct sd_daemon *d;
	uint64_t id;			/* unique for the daemon's life */
	struct sd_limbo *limbo;
	uid_t uid;
	char name[SP_NAME_MAX];
	struct ksm *ksm;		/* this domain's engine */
	struct sp_backend backend;	/* be = this domain */
	struct sd_store *store;		/* [d->nr_nodes] */
	int nclients;
	long store_pages;		/* slots counted, all nodes */
};

struct sd_range {
	uint64_t start, end;	/* vpn */
	uint32_t *rec;		/* records as in linux_internal.h (REC_*) */
};

/* A merge decided, to be sent at the flush. */
struct sd_pending {
	uint64_t vpn;
	uint32_t rec;		/* the record it will have */
	uint32_t old;		/* ... it had before */
};

struct sd_pmwin {
	uint64_t start;
	uint64_t gen;
	uint32_t n;
	uint64_t e[SD_PM_WIN];
	int16_t nid[SD_PM_WIN];
};

/* A request that arrived while the daemon waited for an answer. */
struct sd_stash {
	struct sd_stash *next;
	struct sp_msg h;
	size_t plen;
	char payload[] __attribute__((aligned(16)));
};

struct sd_client {
	struct sd_client *next;
	uint64_t id;		/* the engine's mm cookie: never reused */
	int fd;			/* the connection */
	int pidfd;		/* -1 for control connections */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t instance;	/* its agent's, from the HELLO (0: not said) */
	bool hello;		/* said hello */
	bool control;		/* `samepage ctl`: no address space */
	bool dead;		/* gone (or disconnected): reaped soon */
	struct sd_domain *dom;
	/* reading its memory from here (remote.c) */
	int pagemap_fd;		/* /proc/PID/pagemap */
	int mem_fd;		/* /proc/PID/mem */
	char *win;		/* read-ahead window: SP_OS_AHEAD pages */
	char *tmp;		/* one page */
	uint64_t win_start;	/* the window holds [win_start, +win_n) */
	uint32_t win_n;
	struct sd_range *ranges;
	size_t nranges;
	struct sd_pending batch[SP_BATCH_MAX];	/* ascending vpn */
	uint32_t nbatch;
	uint64_t priv[SP_BATCH_MAX];	/* seen copied-on-write: to privatize */
	uint32_t npriv;
	uint32_t seq;
	struct sd_pmwin *win_pm[SD_PM_CACHE];
	uint64_t pm_gen;
	struct sd_stash *stash, **stash_tail;
	long merges;		/* pages merged, ever */
	long merges_refused;	/* ... refused by its agent */
};

/* The daemon's own counters (beyond the engines'): name, value. */
#define SD_COUNTERS(X)					\
	X(store_pages, sd_store_pages(d))		\
	X(store_pages_spent, sd_store_sum(d, SD_SUM_SPENT)) \
	X(store_slots, sd_store_sum(d, SD_SUM_SLOTS))	\
	X(store_sweeps, d->sweeps)			\
	X(store_pages_reclaimed, d->reclaimed)		\
	X(store_pages_punched, d->punched)		\
	X(merges, d->merges)				\
	X(merges_refused, d->merges_refused)		\
	X(clients, (long)sd_nclients(d))		\
	X(domains, (long)sd_ndomains(d))

struct sd_daemon {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the scanner: knobs changed, stop */
	atomic_int lock_waiters;
	struct ksm *knobs;		/* engine without mms: the knob values */
	struct sd_domain *domains;
	struct sd_client *clients;
	uint64_t next_id;
	uint64_t gen;			/* pagemap cache generation */
	int nr_nodes, node_shift;
	uint64_t cap;			/* pages per store */
	size_t page;
	unsigned int page_shift;
	uint64_t zero_pfn;		/* the zero page's PFN, 0 if hidden */
	uid_t uid;			/* the daemon's */
	int listen_fd;
	int uffd_dev;			/* /dev/userfaultfd (root), for SP_MSG_UFFD; -1 */
	int kick[2];			/* wakes the main thread (stashed requests) */
	char path[108];
	bool stop;
	pthread_t scanner;
	struct sp_packet rx;		/* receive buffer (lock held) */
	char req[SP_MSG_MAX] __attribute__((aligned(16)));	/* the request being handled (a copy: the
					 * engine may receive answers into rx) */
	char out[SP_MSG_MAX];		/* reply text (lock held) */
	long merges, merges_refused;
	uint64_t next_dom_id;
	uint64_t sweep_at;		/* sp_now_ms() of the next sweep allowed */
	long sweeps, reclaimed;		/* sweeps done, slots freed by them */
	long punched;			/* ... whose memory went back (holes) */
};

/* daemon.c */
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sd_lock(struct sd_daemon *d);
void sd_unlock(struct sd_daemon *d);
struct sd_client *sd_client_by_mm(struct sd_daemon *d, void *mm);
void sd_client_gone(struct sd_daemon *d, struct sd_client *c);
void sd_reap(struct sd_daemon *d);
int sd_wait_answer(struct sd_daemon *d, struct sd_client *c, uint16_t type, uint32_t seq);
long sd_nclients(struct sd_daemon *d);
long sd_ndomains(struct sd_daemon *d);
int sd_daemon_run(const char *socket_path);

/* store.c */
int sd_store_init(struct sd_domain *dom);
void sd_store_fini(struct sd_domain *dom);
struct sd_slot *sd_slot_get(struct sd_domain *dom, uint32_t id);
char *sd_slot_data(struct sd_domain *dom, uint32_t id);
uint32_t sd_slot_alloc(struct sd_domain *dom, int nid);
void sd_slot_put(struct sd_domain *dom, uint32_t id);
long sd_store_pages(struct sd_daemon *d);
enum { SD_SUM_SPENT, SD_SUM_SLOTS };
long sd_store_sum(struct sd_daemon *d, int what);
void sd_store_sweep(struct sd_daemon *d);
void sd_store_limbo(struct sd_client *c, const uint32_t *id, uint32_t n);
void sd_store_limbo_release(struct sd_daemon *d, pid_t pid, uint64_t instance);

/* remote.c */
extern const struct sp_backend_ops sd_remote_ops;
int sd_client_open_os(struct sd_daemon *d, struct sd_client *c);
void sd_client_close_os(struct sd_daemon *d, struct sd_client *c);
int sd_set_ranges(struct sd_daemon *d, struct sd_client *c, const uint64_t *r, uint32_t n,
		  uint64_t forget_a, uint64_t forget_b);
void sd_drop_records(struct sd_client *c, uint64_t a, uint64_t b, bool notify);
void sd_take_records(struct sd_daemon *d, struct sd_client *c, const struct sp_merge_req *q,
		     uint32_t n, uint8_t *ok);
int sd_flush_client(struct sd_daemon *d, struct sd_client *c);
uint64_t sd_find_zero_pfn(size_t page, unsigned int shift);

/* control.c */
struct sd_domain *sd_domain_get(struct sd_daemon *d, uid_t uid, const char *name);
void sd_domain_put(struct sd_daemon *d, struct sd_domain *dom);
int sd_get(struct sd_daemon *d, struct sd_client *c, const char *name, long *value);
int sd_set(struct sd_daemon *d, const char *name, unsigned long value);
int sd_scan(struct sd_daemon *d, bool full, unsigned long n);
int sd_stat(struct sd_daemon *d, struct sd_client *c, int format, char *buf, size_t len);
int sd_unmerge_all(struct sd_daemon *d);

#endif /* SAMEPAGE_DAEMON_H */

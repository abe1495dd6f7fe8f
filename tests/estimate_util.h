/* SPDX-License-Identifier: MIT */
/*
 * estimate_util.h - helpers of the estimate tests (tests/estimate_*.c):
 * child processes holding pages of known content, controlled over a pipe,
 * the kernel rules for N identical pages, and the kernel's own KSM (under
 * the machine-wide lock, every knob restored afterwards).
 */
#ifndef SAMEPAGE_TESTS_ESTIMATE_UTIL_H
#define SAMEPAGE_TESTS_ESTIMATE_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "estimate.h"

#include "test_check.h"

#define SKIP(...) do { \
	printf("SKIP: "); \
	printf(__VA_ARGS__); \
	putchar('\n'); \
	exit(77); \
} while (0)

#define PG 4096UL

/* What a child holds, in one region, in this order. */
struct child_spec {
	unsigned long image_copies;	/* copies of the common image */
	unsigned long image_pages;	/* pages of the image */
	unsigned long zero;		/* zero-filled pages */
	unsigned long unique;		/* pages no other page equals */
	unsigned long x_copies;		/* copies of one page X */
	bool nondumpable;		/* prctl(PR_SET_DUMPABLE, 0) */
};

struct child {
	pid_t pid;
	int cmd, ack;			/* pipes: to the child, from it */
	struct child_spec spec;
	unsigned long pages;
};

static uint64_t test_seed;

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Page content from a tag: the same tag, the same page. */
static inline void fill_tag(void *page, uint64_t tag)
{
	uint64_t *w = page;

	for (size_t j = 0; j < PG / 8; j++)
		w[j] = mix64(tag * 1315423911ULL + j + 1);
}

static inline uint64_t checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 1099511628211ULL;
	return h;
}

static inline void child_main(int id, const struct child_spec *s, unsigned long pages,
			      int cmd, int ack)
{
	char *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long k = 0;
	char c;

	if (p == MAP_FAILED)
		_exit(3);
	madvise(p, pages * PG, MADV_NOHUGEPAGE);
	for (unsigned long r = 0; r < s->image_copies; r++)
		for (unsigned long i = 0; i < s->image_pages; i++)
			fill_tag(p + k++ * PG, 1000 + i + (test_seed << 24));
	for (unsigned long i = 0; i < s->zero; i++)
		memset(p + k++ * PG, 0, PG);
	for (unsigned long i = 0; i < s->unique; i++)
		fill_tag(p + k++ * PG, ((uint64_t)(id + 1) << 40) + i + (test_seed << 20) + 7);
	for (unsigned long i = 0; i < s->x_copies; i++)
		memset(p + k++ * PG, 0x5A, PG);
	if (s->nondumpable)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	c = 'r';
	if (write(ack, &c, 1) != 1)
		_exit(3);
	while (read(cmd, &c, 1) == 1) {
		char reply = 'k';

		if (c == 'm') {		/* make the region mergeable */
			if (madvise(p, pages * PG, MADV_MERGEABLE))
				reply = 'e';
		} else if (c == 'c') {	/* checksum of the region */
			uint64_t h = checksum(p, pages * PG);

			if (write(ack, &h, sizeof(h)) != sizeof(h))
				_exit(3);
			continue;
		} else if (c == 'v') {	/* change the first 3 unique pages */
			char *u = p + (s->image_copies * s->image_pages + s->zero) * PG;

			for (int i = 0; i < 3 && (unsigned long)i < s->unique; i++)
				u[i * PG + 100] ^= 0x11;
		} else if (c == 'f') {	/* fork a process sharing every page */
			pid_t g = fork();

			if (g == 0) {
				for (;;)
					pause();	/* until the test kills it */
			}
			if (write(ack, &g, sizeof(g)) != sizeof(g))
				_exit(3);
			continue;
		} else if (c == 'q') {
			_exit(0);
		}
		if (write(ack, &reply, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static inline void child_start(struct child *ch, int id, const struct child_spec *s)
{
	int cmd[2], ack[2];
	char c;

	memset(ch, 0, sizeof(*ch));
	ch->spec = *s;
	ch->pages = s->image_copies * s->image_pages + s->zero + s->unique + s->x_copies;
	if (pipe(cmd) || pipe(ack))
		FAIL("pipe: %s", strerror(errno));
	fflush(NULL);
	ch->pid = fork();
	if (ch->pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (ch->pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		child_main(id, s, ch->pages, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	ch->cmd = cmd[1];
	ch->ack = ack[0];
	if (read(ch->ack, &c, 1) != 1 || c != 'r')
		FAIL("child %d did not start", id);
}

/* Send a one-letter command; the reply letter ('k' done, 'e' failed). */
static inline char child_cmd(struct child *ch, char c)
{
	char r = 0;

	if (write(ch->cmd, &c, 1) != 1 || read(ch->ack, &r, 1) != 1)
		FAIL("child %d: no reply to '%c'", (int)ch->pid, c);
	return r;
}

static inline uint64_t child_checksum(struct child *ch)
{
	uint64_t h = 0;
	char c = 'c';

	if (write(ch->cmd, &c, 1) != 1 || read(ch->ack, &h, sizeof(h)) != sizeof(h))
		FAIL("child %d: no checksum", (int)ch->pid);
	return h;
}

static inline void child_stop(struct child *ch)
{
	int st;

	char c = 'q';

	if (ch->pid <= 0)
		return;
	/* (EOF would not do: later children hold this pipe open too) */
	if (write(ch->cmd, &c, 1) != 1)
		kill(ch->pid, SIGKILL);
	close(ch->cmd);
	close(ch->ack);
	waitpid(ch->pid, &st, 0);
	ch->pid = 0;
}

/* The kernel's rule for N identical pages, M = max_page_sharing. */
static inline void rule(unsigned long n, long *shared, long *sharing)
{
	const unsigned long m = 256;

	if (n < 2) {
		*shared = *sharing = 0;
	} else if (n % m == 0 || n % m == 1) {
		*shared = (long)(n / m);
		*sharing = *shared * (long)(m - 1);
	} else {
		*shared = (long)(n / m + 1);
		*sharing = (long)n - *shared;
	}
}

static inline void rule_add(unsigned long n, long *shared, long *sharing)
{
	long a, b;

	rule(n, &a, &b);
	*shared += a;
	*sharing += b;
}

static inline void seed_from_env(void)
{
	const char *s = getenv("SAMEPAGE_TEST_SEED");

	test_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	test_seed &= 0xffff;
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("seed %llu (SAMEPAGE_TEST_SEED to repeat)\n", (unsigned long long)test_seed);
}

/* ---- the kernel's KSM ---- */

#define KSM "/sys/kernel/mm/ksm/"

static const char *const kknobs[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"max_page_sharing", "use_zero_pages", "smart_scan",
	"stable_node_chains_prune_millisecs", "advisor_mode",
};
#define NR_KKNOBS (sizeof(kknobs) / sizeof(kknobs[0]))
static char ksaved[NR_KKNOBS][64];
static bool kpresent[NR_KKNOBS];
static volatile sig_atomic_t kernel_armed;
static int ksm_lock_fd = -1;

static inline int ksm_read(const char *name, char *buf, size_t size)
{
	char path[128];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), KSM "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static inline long ksm_long(const char *name)
{
	char buf[64];

	return ksm_read(name, buf, sizeof(buf)) ? -1 : strtol(buf, NULL, 10);
}

/* Signal-safe. */
static inline int ksm_write(const char *name, const char *value)
{
	char path[128] = KSM;
	int fd, err = 0;

	strcat(path, name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		err = -errno;
	close(fd);
	return err;
}

static inline void ksm_restore(void)
{
	if (!kernel_armed)
		return;
	kernel_armed = 0;
	while (ksm_write("run", "2") == -EINTR)
		;
	for (size_t i = NR_KKNOBS; i-- > 1;)
		if (kpresent[i])
			ksm_write(kknobs[i], ksaved[i]);
	ksm_write("run", ksaved[0]);
}

static void ksm_on_signal(int sig)
{
	ksm_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Hold the machine-wide KSM lock: a test whose children have mergeable
 * memory holds it, so that no kernel KSM run of another test merges them.
 */
static inline void ksm_lock(void)
{
	if (ksm_lock_fd >= 0)
		return;
	ksm_lock_fd = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (ksm_lock_fd >= 0 && flock(ksm_lock_fd, LOCK_EX)) {
		close(ksm_lock_fd);
		ksm_lock_fd = -1;
	}
}

/*
 * Take the kernel's KSM for this test: root, writable, the lock, nobody else
 * using it.  Returns false with @why when it is not available.
 */
static inline bool kernel_ksm_begin(char *why, size_t size)
{
	if (geteuid() != 0) {
		snprintf(why, size, "not root");
		return false;
	}
	if (access(KSM "run", W_OK)) {
		snprintf(why, size, KSM "run not writable");
		return false;
	}
	ksm_lock();
	if (ksm_lock_fd < 0) {
		snprintf(why, size, "cannot lock /tmp/samepage-kernel-ksm.lock");
		return false;
	}
	for (size_t i = 0; i < NR_KKNOBS; i++) {
		char buf[64], *a, *b;

		kpresent[i] = ksm_read(kknobs[i], buf, sizeof(buf)) == 0;
		if ((a = strchr(buf, '[')) && (b = strchr(a, ']'))) {
			*b = '\0';
			memmove(buf, a + 1, strlen(a + 1) + 1);
		}
		snprintf(ksaved[i], sizeof(ksaved[i]), "%s", buf);
	}
	if (ksm_long("run") != 0 || ksm_long("pages_shared") != 0 ||
	    ksm_long("pages_sharing") != 0) {
		snprintf(why, size, "the kernel's KSM is in use (run %ld, pages_shared %ld)",
			 ksm_long("run"), ksm_long("pages_shared"));
		flock(ksm_lock_fd, LOCK_UN);
		close(ksm_lock_fd);
		ksm_lock_fd = -1;
		return false;
	}
	signal(SIGINT, ksm_on_signal);
	signal(SIGTERM, ksm_on_signal);
	kernel_armed = 1;
	return true;
}

/*
 * Run ksmd with the default knobs (pages_to_scan high, sleep 0) until
 * pages_shared and pages_sharing stayed the same over 2 full scans (3 at
 * least).  false on timeout.
 */
static inline bool kernel_ksm_converge(long *shared, long *sharing)
{
	long scans0 = ksm_long("full_scans"), last = scans0, prev[2] = { -1, -1 };
	int same = 0;
	struct timespec t0, t;

	if (kpresent[8])
		ksm_write("advisor_mode", "none");
	ksm_write("merge_across_nodes", "1");
	ksm_write("max_page_sharing", "256");
	ksm_write("use_zero_pages", "0");
	ksm_write("smart_scan", "1");
	ksm_write("pages_to_scan", "20000");
	ksm_write("sleep_millisecs", "0");
	if (ksm_write("run", "1"))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		long scans = ksm_long("full_scans");

		if (scans != last) {
			long a = ksm_long("pages_shared"), b = ksm_long("pages_sharing");

			last = scans;
			same = (a == prev[0] && b == prev[1]) ? same + 1 : 0;
			prev[0] = a;
			prev[1] = b;
			if (scans - scans0 >= 3 && same >= 2) {
				*shared = a;
				*sharing = b;
				ksm_write("run", "0");
				return true;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 15)
			return false;
		usleep(2000);
	}
}

/* /proc/PID/ksm_stat's ksm_merging_pages, -1 if unknown. */
static inline long ksm_merging_of(pid_t pid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ksm_merging_pages %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Knobs back, run=2.  The lock stays held until the test exits: our
 * children are still mergeable, another test's KSM run must not meet them. */
static inline void kernel_ksm_end(void)
{
	ksm_restore();
}

#endif /* SAMEPAGE_TESTS_ESTIMATE_UTIL_H */

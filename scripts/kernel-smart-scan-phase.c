/* SPDX-License-Identifier: MIT */
/*
 * kernel-smart-scan-phase - does the kernel's own KSM, with smart_scan=1,
 * merge two equal pages whose back-off started on different passes?
 *
 *   cc -O2 -o /tmp/ksp scripts/kernel-smart-scan-phase.c && sudo /tmp/ksp
 *
 * Story "late": page A alone for 30 passes, then an equal page B mapped
 * 0..8 passes later; does the pair merge within 120 passes?
 * Story "apart": a merged pair written 0..3 passes apart, left 30 passes,
 * then made equal again; does it merge within 300 passes?
 * Root; takes /tmp/samepage-kernel-ksm.lock (as samepage bench does),
 * refuses when KSM is in use, and puts every knob it writes back (run=2
 * first, so our pages are private again).  Exit 0 when it ran, 1 if not.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#define KSM "/sys/kernel/mm/ksm/"
#define PG 4096

static long knob_get(const char *name)
{
	char path[128], buf[64] = "";
	int fd;
	long v = -1;

	snprintf(path, sizeof(path), KSM "%s", name);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = strtol(buf, NULL, 10);
		close(fd);
	}
	return v;
}

static int knob_put(const char *name, long v)
{
	char path[128], buf[32];
	int fd, n, ok;

	snprintf(path, sizeof(path), KSM "%s", name);
	n = snprintf(buf, sizeof(buf), "%ld", v);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? 0 : -1;
}

static long saved_pts, saved_sleep, saved_smart;

static void restore(void)
{
	knob_put("run", 2);
	while (knob_get("pages_shared") > 0)
		usleep(1000);
	knob_put("pages_to_scan", saved_pts);
	knob_put("sleep_millisecs", saved_sleep);
	knob_put("smart_scan", saved_smart);
	knob_put("run", 0);
}

static void on_signal(int sig)
{
	(void)sig;
	restore();
	_exit(1);
}

/* Wait until @n more full scans completed (at most 60 s for each). */
static int passes(int n)
{
	long want = knob_get("full_scans") + n;

	for (int ms = 0; knob_get("full_scans") < want; ms++) {
		if (ms > 60000 * n)
			return -1;
		usleep(1000);
	}
	return 0;
}

/* Full scans until pages_sharing reaches @want, at most @max; how many. */
static int until_sharing(long want, int max)
{
	int i;

	for (i = 0; i < max && knob_get("pages_sharing") < want; i++)
		if (passes(1))
			return -1;
	return i;
}

static char *page_new(int c)
{
	char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || madvise(p, PG, MADV_MERGEABLE)) {
		perror("mmap/madvise");
		restore();
		exit(1);
	}
	memset(p, c, PG);
	return p;
}

int main(void)
{
	int lock = open("/tmp/samepage-kernel-ksm.lock", O_CREAT | O_RDWR, 0644);

	setvbuf(stdout, NULL, _IONBF, 0);
	if (geteuid() != 0 || lock < 0 || knob_get("smart_scan") < 0) {
		fprintf(stderr, "kernel-smart-scan-phase: needs root and a kernel with KSM smart_scan\n");
		return 1;
	}
	flock(lock, LOCK_EX);
	if (knob_get("run") != 0 || knob_get("pages_shared") != 0) {
		fprintf(stderr, "kernel-smart-scan-phase: KSM is in use (run != 0 or pages shared)\n");
		return 1;
	}
	saved_pts = knob_get("pages_to_scan");
	saved_sleep = knob_get("sleep_millisecs");
	saved_smart = knob_get("smart_scan");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* an anchor page keeps the scanner's passes going between stories */
	(void)page_new(0x11);
	knob_put("smart_scan", 1);
	knob_put("pages_to_scan", 1000);
	knob_put("sleep_millisecs", 2);
	knob_put("run", 1);

	for (int d = 0; d < 9; d++) {
		char *a = page_new(0x40 + d), *b;

		passes(30 + d);
		b = page_new(0x40 + d);
		int n = until_sharing(1, 120);

		printf("late  %d passes: %s (%d passes)\n", d,
		       knob_get("pages_sharing") ? "merged" : "apart", n);
		munmap(a, PG);
		munmap(b, PG);
		passes(2);
	}
	for (int d = 0; d < 4; d++) {
		char *a = page_new(0x60 + d), *b = page_new(0x70 + d);

		passes(20);
		memset(a, 0x5a, PG);
		memset(b, 0x5a, PG);
		if (until_sharing(1, 100) < 0 || !knob_get("pages_sharing")) {
			printf("apart %d: the pair never merged the first time\n", d);
		} else {
			memset(a, 0x61, PG);
			passes(d);
			memset(b, 0x62, PG);
			passes(30);
			memset(a, 0x63, PG);
			memset(b, 0x63, PG);
			int n = until_sharing(1, 300);

			printf("apart %d passes: %s (%d passes)\n", d,
			       knob_get("pages_sharing") ? "merged again" : "apart", n);
		}
		munmap(a, PG);
		munmap(b, PG);
		passes(2);
	}
	restore();
	return 0;
}

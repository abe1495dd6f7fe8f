/* SPDX-License-Identifier: MIT */
/*
 * qemu-frames PID... - the physical memory the processes named hold
 * through their mappings, in MiB: every distinct page frame any of them
 * maps (a page shared by several, a KSM or store page, counted once), and a
 * transparent huge page counted whole as soon as any part of it is mapped
 * (its unmapped parts stay allocated until the kernel splits it, which Pss
 * and Rss do not show).  The shared zero page is not counted.  Root only
 * (/proc/PID/pagemap PFNs, /proc/kpageflags).  Built and used by
 * scripts/qemu-run-compare.sh.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_PRESENT	(1ull << 63)
#define PM_PFN		((1ull << 55) - 1)
#define KPF_HEAD	(1ull << 15)
#define KPF_TAIL	(1ull << 16)
#define KPF_THP		(1ull << 22)
#define HUGE_PAGES	512	/* 4 KiB pages in a 2 MiB huge page */

struct set {
	uint64_t *v;
	size_t n, cap;
};

static void add(struct set *s, uint64_t pfn)
{
	if (s->n && s->v[s->n - 1] == pfn)
		return;		/* (consecutive pages of one huge page) */
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1 << 16;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v) {
			perror("qemu-frames");
			exit(1);
		}
	}
	s->v[s->n++] = pfn;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t zero_pfn(void)
{
	volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	(void)p[0];
	if (fd >= 0 && pread(fd, &e, 8, (off_t)((uintptr_t)p / 4096) * 8) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return e & PM_PFN;
}

int main(int argc, char **argv)
{
	int kf = open("/proc/kpageflags", O_RDONLY);
	uint64_t zpfn = zero_pfn(), e[512];
	struct set small = { 0 }, huge = { 0 };

	if (kf < 0 || argc < 2) {
		fprintf(stderr, "usage: qemu-frames PID... (as root)\n");
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		char path[64], line[512];

		snprintf(path, sizeof(path), "/proc/%s/maps", argv[a]);
		FILE *m = fopen(path, "r");
		snprintf(path, sizeof(path), "/proc/%s/pagemap", argv[a]);
		int pm = open(path, O_RDONLY);

		if (!m || pm < 0) {
			fprintf(stderr, "qemu-frames: process %s: cannot read it\n", argv[a]);
			return 1;
		}
		while (fgets(line, sizeof(line), m)) {
			unsigned long long s, t;

			if (sscanf(line, "%llx-%llx", &s, &t) != 2 || strstr(line, "[vsyscall]"))
				continue;
			for (uint64_t v = s / 4096; v < t / 4096;) {
				size_t n = t / 4096 - v < 512 ? t / 4096 - v : 512;
				ssize_t got = pread(pm, e, n * 8, (off_t)(v * 8));

				if (got <= 0)
					break;
				for (size_t i = 0; i < (size_t)got / 8; i++) {
					uint64_t pfn = e[i] & PM_PFN, f = 0;

					if (!(e[i] & PM_PRESENT) || !pfn || pfn == zpfn)
						continue;
					if (pread(kf, &f, 8, (off_t)(pfn * 8)) != 8)
						f = 0;
					if ((f & KPF_THP) && (f & (KPF_HEAD | KPF_TAIL))) {
						add(&huge, pfn & ~(uint64_t)(HUGE_PAGES - 1));
					} else {
						add(&small, pfn);
					}
				}
				v += (uint64_t)got / 8;
			}
		}
		fclose(m);
		close(pm);
	}
	size_t frames = 0;
	struct set *sets[2] = { &small, &huge };

	for (int k = 0; k < 2; k++) {
		struct set *st = sets[k];

		qsort(st->v, st->n, sizeof(*st->v), cmp);
		for (size_t i = 0; i < st->n; i++)
			if (!i || st->v[i] != st->v[i - 1])
				frames += k ? HUGE_PAGES : 1;
	}
	printf("%zu\n", frames * 4096 / (1024 * 1024));
	return 0;
}

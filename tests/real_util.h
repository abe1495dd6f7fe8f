/* SPDX-License-Identifier: MIT */
/* real_util.h - helpers of the real-memory tests (tests/real_*.c). */
#ifndef SAMEPAGE_TESTS_REAL_UTIL_H
#define SAMEPAGE_TESTS_REAL_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "samepage.h"

static const char *real_test_name = "real";

#include "test_check.h"

static inline size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Exit 77: the machine cannot run this test, for @why. */
static inline void skip_test(const char *why)
{
	printf("SKIP %s: %s\n", real_test_name, why);
	exit(77);
}

/* Open an engine, or exit 77 with the reason when the machine lacks what
 * samepage needs (userfaultfd with kernel faults, privileges). */
static inline struct samepage *open_or_skip(void)
{
	struct samepage *sp = NULL;
	int err = samepage_open(&sp, 0);

	if (err == -EPERM || err == -EACCES || err == -ENOENT || err == -ENOSYS ||
	    err == -EINVAL || err == -EOPNOTSUPP) {
		printf("SKIP %s: %s\n", real_test_name, samepage_last_error());
		exit(77);
	}
	if (err)
		FAIL("samepage_open: %s (%s)", strerror(-err), samepage_last_error());
	return sp;
}

static inline long get(struct samepage *sp, const char *name)
{
	long v = -1;
	int err = samepage_get(sp, name, &v);

	if (err)
		FAIL("samepage_get(%s): %s", name, strerror(-err));
	return v;
}

static inline void set(struct samepage *sp, const char *knob, unsigned long v)
{
	int err = samepage_set(sp, knob, v);

	if (err)
		FAIL("samepage_set(%s, %lu): %s", knob, v, strerror(-err));
}

/* The pagemap entry of the page at @addr. */
static inline uint64_t pagemap(const void *addr)
{
	static int fd = -1;
	uint64_t e = 0;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)addr / page_size()) * 8) != 8)
		return 0;
	return e;
}

/* PFN of the page at @addr after reading it (0 if PFNs are hidden). */
static inline uint64_t pfn_of(const void *addr)
{
	(void)*(const volatile char *)addr;
	return pagemap(addr) & ((1ull << 55) - 1);
}

static inline bool pfns_visible(void)
{
	static int v = -1;

	if (v < 0) {
		char *p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p[0] = 1;
		v = pfn_of(p) != 0;
		munmap(p, page_size());
	}
	return v;
}

/* No two pages of [a, a+n pages) share a physical page (when PFNs are
 * visible), and none maps a KSM store page. */
static inline void check_all_private(const char *a, size_t n)
{
	size_t ps = page_size();
	uint64_t *pf = calloc(n, sizeof(*pf));

	for (size_t i = 0; i < n; i++) {
		pf[i] = pfn_of(a + i * ps);
		uint64_t e = pagemap(a + i * ps);

		if (e & (1ull << 61))
			FAIL("page %zu still maps a file (store) page", i);
	}
	if (pfns_visible()) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n && j < i + 4096; j++)
				if (pf[i] && pf[i] == pf[j])
					FAIL("pages %zu and %zu share PFN %#llx", i, j,
					     (unsigned long long)pf[i]);
	}
	free(pf);
}

/*
 * The mapping (VMA) holding @addr, as /proc/self/smaps says: its
 * permissions ("rw-p") and VmFlags line.  Returns false if unmapped.
 */
static inline bool vma_of(const void *addr, char perms[8], char flags[512])
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[1024];
	bool in = false, found = false;
	uintptr_t a = (uintptr_t)addr;

	if (!f)
		FAIL("cannot read /proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char p[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, p) == 3 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= s && a < e;
			if (in) {
				strcpy(perms, p);
				found = true;
			}
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			size_t l = strlen(line + 8);

			if (l > 511)
				l = 511;
			memcpy(flags, line + 8, l);
			flags[l] = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Does the VmFlags line @flags hold flag @fl ("lo", "wf", ...)? */
static inline bool has_flag(const char *flags, const char *fl)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s", fl);
	for (const char *p = flags; (p = strstr(p, pat)); p++)
		if (p[3] == ' ' || p[3] == '\n' || p[3] == 0)
			return true;
	return false;
}

/* Is the page at @addr mapped from a file (our store) right now? */
static inline bool maps_file(const void *addr)
{
	return (pagemap(addr) >> 61) & 1;
}

/* The number of mappings of this process. */
static inline long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	long n = 0;
	int c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

#endif /* SAMEPAGE_TESTS_REAL_UTIL_H */

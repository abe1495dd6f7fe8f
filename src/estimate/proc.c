/* SPDX-License-Identifier: MIT */
/*
 * proc.c - finding and reading another process's pages, read-only.
 *
 * Which pages: the VMAs of /proc/PID/smaps that KSM could merge (private;
 * not VM_SHARED, VM_MAYSHARE, VM_PFNMAP, VM_IO, VM_DONTEXPAND, VM_HUGETLB,
 * VM_MIXEDMAP, VM_DROPPABLE: the kernel's vma_ksm_compatible(); with
 * --mergeable also VM_MERGEABLE, VmFlag `mg`), and in them the pages that
 * /proc/PID/pagemap shows present and not file-backed: the resident anonymous
 * pages, including the copied-on-write pages of private file mappings, which
 * KSM scans too.  Swapped-out pages are not resident and KSM does not scan
 * them either.  A pte mapping the shared zero page is no anonymous page: KSM
 * skips it, and so do we (by its PFN when PFNs are visible, i.e. with
 * CAP_SYS_ADMIN; otherwise the caller treats a not-exclusively-mapped page of
 * zeros as one).
 *
 * Reading: process_vm_readv with up to EST_BATCH pages per call, adjacent
 * pages coalesced into one remote iovec, for the pages pagemap shows mapped
 * exclusively.  A page mapped more than once (shared by fork, or a KSM page
 * already) is read with pread on /proc/PID/mem instead: process_vm_readv
 * pins the pages it reads, and pinning an anonymous page that is not
 * exclusive makes the kernel give the target a private copy of it (GUP
 * unsharing) - the target would lose its sharing, and memory.  /proc/PID/mem
 * reads without pinning.  Nothing here writes to, stops or signals the
 * target; it needs what process_vm_readv needs (same uid and a dumpable
 * target, or CAP_SYS_PTRACE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "estimate.h"

#define PM_PFN_MASK	((1ULL << 55) - 1)
#define PM_EXCLUSIVE	(1ULL << 56)
#define PM_FILE		(1ULL << 61)
#define PM_SWAP		(1ULL << 62)
#define PM_PRESENT	(1ULL << 63)
#define KPF_KSM		21

/*
 * PAGEMAP_SCAN (Linux 6.7): the present pages of a range without reading an
 * entry per page of it (sparse ranges, such as a sanitizer's shadow memory,
 * span terabytes).  Declared here: the installed headers may predate it.
 */
struct est_page_region {
	uint64_t start, end, categories;
};

struct est_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define EST_PAGEMAP_SCAN	_IOWR('f', 16, struct est_pm_scan_arg)
#define EST_PAGE_IS_FILE	(1ULL << 2)
#define EST_PAGE_IS_PRESENT	(1ULL << 3)
#define EST_PAGE_IS_PFNZERO	(1ULL << 5)

static int errno_of_open(void)
{
	return errno == ENOENT ? -ESRCH : -errno;
}

int est_target_open(struct est_target *t, int pid, char *comm, size_t comm_size)
{
	char path[64];
	int fd;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->dirfd = t->pidfd = t->memfd = -1;
	if (comm_size)
		comm[0] = '\0';
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	t->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return errno_of_open();
	/* A pidfd tells, at the end, whether the process exited meanwhile (and
	 * so whether its PID could have been reused under our reads). */
	t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (t->pidfd < 0 && errno == ESRCH)
		return -ESRCH;
	fd = openat(t->dirfd, "comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, comm, comm_size ? comm_size - 1 : 0);

		if (n > 0) {
			comm[n] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
		}
		close(fd);
	}
	return 0;
}

void est_target_close(struct est_target *t)
{
	if (t->dirfd >= 0)
		close(t->dirfd);
	if (t->pidfd >= 0)
		close(t->pidfd);
	if (t->memfd >= 0)
		close(t->memfd);
	free(t->pages);
	t->pages = NULL;
	t->dirfd = t->pidfd = t->memfd = -1;
}

bool est_target_exited(struct est_target *t)
{
	struct pollfd p = { .fd = t->pidfd, .events = POLLIN };

	if (t->gone)
		return true;
	if (t->pidfd < 0) {
		/* no pidfd: /proc/PID, opened at the start, answers ESRCH once
		 * that process is gone */
		int fd = openat(t->dirfd, "stat", O_RDONLY | O_CLOEXEC);

		if (fd >= 0)
			close(fd);
		else if (errno == ESRCH || errno == ENOENT)
			t->gone = true;
		return t->gone;
	}
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)))
		t->gone = true;
	return t->gone;
}

/* Is VmFlag @flag (two letters) in the VmFlags line @flags? */
static bool has_flag(const char *flags, const char *flag)
{
	for (const char *p = flags; *p; p++) {
		while (*p == ' ')
			p++;
		if (p[0] == flag[0] && p[1] == flag[1] && (p[2] == ' ' || p[2] == '\n' || !p[2]))
			return true;
		while (*p && *p != ' ')
			p++;
		if (!*p)
			break;
	}
	return false;
}

static bool ksm_compatible(const char *flags, bool mergeable)
{
	static const char *const never[] = {
		"sh", "ms", "pf", "io", "de", "ht", "mm", "dp",
	};

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (has_flag(flags, never[i]))
			return false;
	return !mergeable || has_flag(flags, "mg");
}

static int add_page(struct est_target *t, uint64_t addr, uint64_t pm)
{
	if (t->nr_pages == t->cap_pages) {
		size_t ncap = t->cap_pages ? t->cap_pages * 2 : 4096;
		struct est_page *n = realloc(t->pages, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->pages = n;
		t->cap_pages = ncap;
	}
	if (t->nr_pages >= UINT32_MAX)
		return -E2BIG;
	t->pages[t->nr_pages++] = (struct est_page){
		.addr = addr,
		.pfn = pm & PM_PFN_MASK,
		.group = EST_NO_GROUP,
		.flags = (pm & PM_EXCLUSIVE) ? EST_PG_EXCLUSIVE : 0,
	};
	return 0;
}

#define PM_CHUNK 512

/* Read the pagemap entries of [start, end) and keep the anonymous pages. */
static int scan_entries(struct est_target *t, int pm_fd, uint64_t start, uint64_t end,
			uint64_t zero_pfn)
{
	uint64_t buf[PM_CHUNK];

	for (uint64_t a = start; a < end;) {
		size_t want = (size_t)((end - a) / EST_PAGE_SIZE);
		ssize_t n;

		if (want > PM_CHUNK)
			want = PM_CHUNK;
		n = pread(pm_fd, buf, want * sizeof(buf[0]),
			  (off_t)(a / EST_PAGE_SIZE * sizeof(buf[0])));
		if (n < 0)
			return errno == ESRCH ? -ESRCH : -errno;
		if (n == 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(buf[0]); i++, a += EST_PAGE_SIZE) {
			uint64_t pm = buf[i];
			int err;

			if (!(pm & PM_PRESENT) || (pm & (PM_FILE | PM_SWAP)))
				continue;
			if (zero_pfn && (pm & PM_PFN_MASK) == zero_pfn)
				continue;	/* the shared zero page: not anonymous */
			err = add_page(t, a, pm);
			if (err)
				return err;
		}
	}
	return 0;
}

#define SCAN_REGIONS 256

/*
 * The anonymous pages of [start, end): PAGEMAP_SCAN finds the present,
 * not file-backed, not zero-page ptes; their entries give PFN and
 * exclusivity.  Without PAGEMAP_SCAN, every entry of the range is read.
 */
static int scan_pagemap(struct est_target *t, int pm_fd, uint64_t start, uint64_t end,
			uint64_t zero_pfn)
{
	struct est_page_region r[SCAN_REGIONS];

	while (!t->no_pagemap_scan && start < end) {
		struct est_pm_scan_arg arg = {
			.size = sizeof(arg), .start = start, .end = end,
			.vec = (uint64_t)(uintptr_t)r, .vec_len = SCAN_REGIONS,
			.category_mask = EST_PAGE_IS_PRESENT | EST_PAGE_IS_FILE |
					 EST_PAGE_IS_PFNZERO,
			.category_inverted = EST_PAGE_IS_FILE | EST_PAGE_IS_PFNZERO,
			.return_mask = EST_PAGE_IS_PRESENT,
		};
		int n = ioctl(pm_fd, EST_PAGEMAP_SCAN, &arg);

		if (n < 0) {
			if (errno == ESRCH)
				return -ESRCH;
			if (errno == EINTR)
				continue;
			t->no_pagemap_scan = true;	/* older kernel: read it all */
			break;
		}
		t->zero_page_known = true;
		for (int i = 0; i < n; i++) {
			int err = scan_entries(t, pm_fd, r[i].start, r[i].end, zero_pfn);

			if (err)
				return err;
		}
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	if (start < end)
		return scan_entries(t, pm_fd, start, end, zero_pfn);
	return 0;
}

int est_target_find_pages(struct est_target *t, bool mergeable, uint64_t zero_pfn)
{
	char line[4096];
	uint64_t start = 0, end = 0;
	bool in_vma = false, vma_ok = false;
	FILE *f;
	int fd, pm_fd, err = 0;

	fd = openat(t->dirfd, "smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno_of_open();
	pm_fd = openat(t->dirfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0) {
		err = errno_of_open();
		close(fd);
		return err;
	}
	if (t->memfd < 0)
		t->memfd = openat(t->dirfd, "mem", O_RDONLY | O_CLOEXEC);
	if (t->memfd < 0) {
		err = errno_of_open();
		close(fd);
		close(pm_fd);
		return err;
	}
	f = fdopen(fd, "r");
	if (!f) {
		err = -errno;
		close(fd);
		close(pm_fd);
		return err;
	}
	errno = 0;
	while (!err && fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char perms[8], name[512] = "";
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %*s %*s %*s%n", &s, &e, perms, &pos) == 3 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			sscanf(line + pos, " %511s", name);
			start = s;
			end = e;
			in_vma = true;
			/* private, and not the kernel's special mappings */
			vma_ok = perms[3] == 'p' && strcmp(name, "[vsyscall]") &&
				 strcmp(name, "[vvar]") && strcmp(name, "[vvar_vclock]") &&
				 strcmp(name, "[vdso]");
			continue;
		}
		unsigned long anon_kb;

		if (in_vma && sscanf(line, "Anonymous: %lu kB", &anon_kb) == 1 && !anon_kb)
			vma_ok = false;		/* nothing anonymous in it */
		if (in_vma && !strncmp(line, "VmFlags:", 8)) {
			in_vma = false;
			if (vma_ok && ksm_compatible(line + 8, mergeable))
				err = scan_pagemap(t, pm_fd, start, end, zero_pfn);
		}
	}
	if (!err && ferror(f))
		err = errno == ESRCH ? -ESRCH : (errno ? -errno : -EIO);
	fclose(f);
	close(pm_fd);
	if (err == -ESRCH)
		t->gone = true;
	return err;
}

/* A page mapped more than once: pread on /proc/PID/mem, which pins nothing. */
static int read_shared_page(struct est_target *t, uint64_t addr, void *dst, bool *ok)
{
	ssize_t n;

	do
		n = pread(t->memfd, dst, EST_PAGE_SIZE, (off_t)addr);
	while (n < 0 && errno == EINTR);
	*ok = n == (ssize_t)EST_PAGE_SIZE;
	if (n < 0 && errno == ESRCH) {
		t->gone = true;
		return -ESRCH;
	}
	if (n < 0 && (errno == EPERM || errno == EACCES))
		return -errno;
	if (n == 0 && est_target_exited(t))	/* its mm is gone */
		return -ESRCH;
	return 0;
}

/* The vectors for pages slot[first..pages) of the batch. */
static void build_vectors(const struct est_target *t, const uint32_t *idx, void *buf,
			  const size_t *slot, size_t first, size_t pages,
			  struct iovec *remote, size_t *nr, struct iovec *local, size_t *nl)
{
	*nr = *nl = 0;
	for (size_t j = first; j < pages; j++) {
		uint64_t a = t->pages[idx[slot[j]]].addr;
		char *dst = (char *)buf + slot[j] * EST_PAGE_SIZE;

		if (*nr && (uint64_t)(uintptr_t)remote[*nr - 1].iov_base +
				   remote[*nr - 1].iov_len == a)
			remote[*nr - 1].iov_len += EST_PAGE_SIZE;
		else
			remote[(*nr)++] = (struct iovec){
				.iov_base = (void *)(uintptr_t)a, .iov_len = EST_PAGE_SIZE,
			};
		if (*nl && (char *)local[*nl - 1].iov_base + local[*nl - 1].iov_len == dst)
			local[*nl - 1].iov_len += EST_PAGE_SIZE;
		else
			local[(*nl)++] = (struct iovec){ .iov_base = dst, .iov_len = EST_PAGE_SIZE };
	}
}

int est_read_pages(struct est_target *t, const uint32_t *idx, size_t n, void *buf,
		   bool *ok)
{
	struct iovec remote[EST_BATCH], local[EST_BATCH];
	size_t slot[EST_BATCH];
	size_t k = 0;

	while (k < n) {
		size_t pages = 0, first = 0;
		int err;

		/* The exclusive pages of the next EST_BATCH; the others by pread. */
		for (; k < n && pages < EST_BATCH; k++) {
			const struct est_page *pg = &t->pages[idx[k]];

			if (pg->flags & EST_PG_EXCLUSIVE) {
				slot[pages++] = k;
				continue;
			}
			err = read_shared_page(t, pg->addr, (char *)buf + k * EST_PAGE_SIZE,
					       &ok[k]);
			if (err)
				return err;
		}
		/* One call for them; after a page that fails, on from the next. */
		while (first < pages) {
			size_t nr, nl, full;
			ssize_t got;

			build_vectors(t, idx, buf, slot, first, pages, remote, &nr, local, &nl);
			got = process_vm_readv(t->pid, local, nl, remote, nr, 0);
			if (got < 0) {
				if (errno == ESRCH) {
					t->gone = true;
					return -ESRCH;
				}
				if (errno == EPERM || errno == EACCES)
					return -errno;
				if (errno == EINTR)
					continue;
				got = 0;	/* EFAULT, ENOMEM: the first page failed */
			}
			full = (size_t)got / EST_PAGE_SIZE;
			for (size_t j = 0; j < full; j++)
				ok[slot[first + j]] = true;
			first += full;
			if (first < pages)
				ok[slot[first++]] = false;	/* unmapped or unreadable */
		}
	}
	return 0;
}

uint64_t est_zero_pfn(void)
{
	volatile char *p = mmap(NULL, EST_PAGE_SIZE, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pm = 0;
	int fd;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];	/* a read fault maps the shared zero page */
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &pm, sizeof(pm),
			  (off_t)((uintptr_t)p / EST_PAGE_SIZE * sizeof(pm))) != sizeof(pm))
			pm = 0;
		close(fd);
	}
	munmap((void *)p, EST_PAGE_SIZE);
	return (pm & PM_PRESENT) ? (pm & PM_PFN_MASK) : 0;
}

bool est_pfn_is_ksm(int kpageflags_fd, uint64_t pfn)
{
	uint64_t fl;

	if (kpageflags_fd < 0 || !pfn)
		return false;
	if (pread(kpageflags_fd, &fl, sizeof(fl), (off_t)(pfn * sizeof(fl))) != sizeof(fl))
		return false;
	return (fl >> KPF_KSM) & 1;
}

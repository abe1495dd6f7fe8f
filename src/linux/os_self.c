/* SPDX-License-Identifier: MIT */
/*
 * os_self.c - the OS layer (os.h) for this process: the only system calls
 * on the application's memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <numa.h>
#include <sched.h>
#include <stdatomic.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

#ifndef MADV_COLD
#define MADV_COLD 20
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* ------------------------------------------------------------------------
 * Reading the application's memory.
 *
 * Never with loads of our own: the application may make any page
 * unreadable (mprotect PROT_NONE) at any moment, and a load would then
 * kill the process.  The kernel copies instead, two ways:
 *  - pwrite() from the page's own address into a scratch memfd of ours,
 *    whose pages we map: the kernel's ordinary user access, which pins
 *    nothing (a page shared with a forked child stays shared), touches no
 *    page's LRU state, and fails with EFAULT on a page the application made
 *    unreadable.  It would fault a missing page in, so only pages pagemap
 *    shows present (not swapped) are read this way.
 *  - /proc/self/mem for everything else: the kernel's forced access (as a
 *    debugger reads), which reads a page of any protection, and gives an
 *    error for a page that went away.
 * Both are the kernel's copies, so the sanitizers see no race with the
 * application's own writes either.
 * --------------------------------------------------------------------- */
const uint64_t sp_zero_page_data[65536 / 8] __attribute__((aligned(4096)));

static bool mem_is_zero(const void *a, size_t len)
{
	const uint64_t *x = a;
	uint64_t acc = 0;

	for (size_t i = 0; i < len / 8; i += 8) {
		acc |= x[i] | x[i + 1] | x[i + 2] | x[i + 3] |
		       x[i + 4] | x[i + 5] | x[i + 6] | x[i + 7];
		if (acc)
			return false;
	}
	return true;
}

static inline void *vaddr(struct sp_os *os, uint64_t vpn)
{
	return (void *)(uintptr_t)(vpn << os->page_shift);
}

/* @len bytes at @off of a process's /proc/PID/mem (any protection); 0, or
 * -EFAULT for what is not mapped.  The daemon reads its clients so too. */
int sp_mem_read(int mem_fd, uint64_t off, size_t len, void *buf)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(mem_fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EFAULT;
		done += (size_t)r;
	}
	return 0;
}

/* Through /proc/self/mem: reads any protection. */
int sp_os_read(struct sp_os *os, uint64_t vpn, uint64_t n, void *buf)
{
	os->pages_read += n;
	return sp_mem_read(os->mem_fd, vpn << os->page_shift, n << os->page_shift, buf);
}

/*
 * Present pages [vpn, vpn+n) into the scratch view at @dst (inside ra or
 * chk) through pwrite; what it refuses through /proc/self/mem.
 */
static int read_present(struct sp_os *os, uint64_t vpn, uint64_t n, char *dst)
{
	size_t len = n << os->page_shift;
	long got = syscall(SYS_pwrite64, os->scratch_fd, vaddr(os, vpn), len,
			   (long)(dst - os->ra));
	uint64_t done = got > 0 ? (uint64_t)got >> os->page_shift : 0;

	os->pages_read += done;
	if (done == n)
		return 0;
	return sp_os_read(os, vpn + done, n - done, dst + (done << os->page_shift));
}

/*
 * @n pages from @vpn (n <= SP_OS_AHEAD) into the check buffer, the cheaper
 * way if pagemap shows them all present now.
 */
int sp_os_read_check(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	uint64_t e[SP_OS_AHEAD];

	if (n > SP_OS_AHEAD)
		return -EINVAL;
	bool present = sp_os_pagemap(os, vpn, e, (uint32_t)n) == (int)n;

	for (uint64_t i = 0; present && i < n; i++)
		present = (e[i] & (PM_PRESENT | PM_SWAP)) == PM_PRESENT;
	return present ? read_present(os, vpn, n, os->chk) : sp_os_read(os, vpn, n, os->chk);
}

void sp_os_invalidate(struct sp_os *os)
{
	os->ra_n = 0;
}

/*
 * The content of the present page @vpn, with @ahead more present pages
 * after it read along (the scan goes in address order).  Handed out where
 * it was read: valid until the next call.
 */
const void *sp_os_data(struct sp_os *os, uint64_t vpn, uint32_t ahead)
{
	/*
	 * Read ahead as far as the pages asked for are consecutive: the scan
	 * skips pages (smart scan) without asking, and reading those along
	 * would cost more than it saves.
	 */
	if (vpn == os->ra_last + 1)
		os->ra_size = os->ra_size ? (os->ra_size < SP_OS_AHEAD ? 2 * os->ra_size :
					     SP_OS_AHEAD) : 2;
	else
		os->ra_size = 1;
	os->ra_last = vpn;
	if (ahead >= os->ra_size)
		ahead = os->ra_size - 1;
	if (!(vpn >= os->ra_start && vpn < os->ra_start + os->ra_n)) {
		os->ra_n = 0;
		if (read_present(os, vpn, ahead + 1, os->ra)) {
			/* a page of the window went away meanwhile: this one */
			if (ahead == 0 || sp_os_read(os, vpn, 1, os->ra))
				return NULL;
			ahead = 0;
		}
		os->ra_start = vpn;
		os->ra_n = ahead + 1;
	}
	return os->ra + ((vpn - os->ra_start) << os->page_shift);
}

bool sp_os_equal(struct sp_os *os, uint64_t vpn, const void *want)
{
	return sp_os_read(os, vpn, 1, os->tmp) == 0 && !memcmp(os->tmp, want, os->page);
}

bool sp_os_is_zero(struct sp_os *os, uint64_t vpn)
{
	return sp_os_read(os, vpn, 1, os->tmp) == 0 && mem_is_zero(os->tmp, os->page);
}

bool sp_mem_is_zero(const void *p, size_t len)
{
	return mem_is_zero(p, len);
}

/*
 * A write access that changes no byte: the kernel gives the page a private
 * copy (breaking a shared zero page).  MADV_POPULATE_WRITE (5.14) fails
 * instead of faulting if the page is not writable any more.
 */
void sp_os_touch(struct sp_os *os, uint64_t vpn)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
	(void)madvise(vaddr(os, vpn), os->page, MADV_POPULATE_WRITE);
}

int sp_os_write_zeros(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	struct iovec local[64], remote[64];

	for (uint64_t done = 0; done < n;) {
		uint64_t k = n - done < 64 ? n - done : 64;

		for (uint64_t i = 0; i < k; i++) {
			local[i] = (struct iovec){ (void *)sp_zero_page_data, os->page };
			remote[i] = (struct iovec){ vaddr(os, vpn + done + i), os->page };
		}
		ssize_t w = process_vm_writev(os->pid, local, k, remote, k, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if ((uint64_t)w < k * os->page)
			return -EFAULT;
		done += k;
	}
	return 0;
}

uint64_t sp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t sp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void sp_deadline_in(struct timespec *ts, unsigned long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/*
 * Hand a lock just dropped over: a thread waiting for it (a samepage_get,
 * a madvise, a daemon request) counts itself in @waiters until it holds
 * it.  A mere sched_yield() lets the scanner take the mutex back before
 * the woken waiter runs, starving callers for many batches.  Bounded, in
 * case waiters keep coming.
 */
void sp_hand_over(atomic_int *waiters)
{
	for (int i = 0; i < 2000 && atomic_load(waiters); i++)
		sched_yield();
}

/*
 * mmap, mremap and pwrite of application memory go straight to the kernel:
 * the sanitizers' interceptors would otherwise "write" the whole range
 * (ThreadSanitizer resets its shadow on mmap) or read the source buffer,
 * racing with the application's own writes, which the protection already
 * orders for real.
 */
static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);

	return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

static void *raw_mremap(void *old, size_t olen, size_t nlen, int flags, void *naddr)
{
	long r = syscall(SYS_mremap, old, olen, nlen, flags, naddr);

	return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}


/* ------------------------------------------------------------------------
 * userfaultfd
 * --------------------------------------------------------------------- */
static int protect_range(struct sp_os *os, uint64_t vpn, uint64_t n, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = vpn << os->page_shift, .len = n << os->page_shift },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(os->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Before Linux 6.5 UFFDIO_WRITEPROTECT fails with ENOENT over a range of
 * several VMAs (merged pages of one content are one VMA each): then page by
 * page, each within one VMA; ENOENT for a single page means it is really
 * not registered with us.
 */
int sp_os_protect(struct sp_os *os, uint64_t vpn, uint64_t n, bool on)
{
	int err = protect_range(os, vpn, n, on);

	if (err != -ENOENT || n == 1)
		return err;
	for (uint64_t i = 0; i < n; i++) {
		err = protect_range(os, vpn + i, 1, on);
		if (err && on) {
			while (i--)
				(void)protect_range(os, vpn + i, 1, false);
			return err;
		}
	}
	return on ? 0 : err;
}

int sp_os_wake(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	struct uffdio_range r = {
		.start = vpn << os->page_shift, .len = n << os->page_shift,
	};

	return ioctl(os->uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int sp_os_register(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	struct uffdio_register reg = {
		.range = { .start = vpn << os->page_shift, .len = n << os->page_shift },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(os->uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

int sp_os_unregister(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	struct uffdio_range r = {
		.start = vpn << os->page_shift, .len = n << os->page_shift,
	};

	return ioctl(os->uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int sp_os_read_faults(struct sp_os *os, uint64_t *addr, int max)
{
	struct uffd_msg msg[32];
	int n = 0;

	if (max > 32)
		max = 32;
	ssize_t got = read(os->uffd, msg, (size_t)max * sizeof(msg[0]));

	if (got < 0)
		return errno == EAGAIN ? 0 : -errno;
	for (ssize_t i = 0; i < got / (ssize_t)sizeof(msg[0]); i++)
		if (msg[i].event == UFFD_EVENT_PAGEFAULT)
			addr[n++] = msg[i].arg.pagefault.address;
	return n;
}

/*
 * Our userfaultfd must make the kernel itself wait on a protected page, not
 * only user-mode accesses: the application may write its memory with
 * read(2), process_vm_writev(2), io syscalls... and those writes must be
 * parked like a store instruction, or they would land in the page we are
 * about to replace (a lost write).  UFFD_USER_MODE_ONLY would open without
 * privileges, but then a kernel-mode write into a protected page fails
 * with EFAULT instead of waiting: unsafe, so it is never used.  Kernel-mode
 * faults need CAP_SYS_PTRACE (or vm.unprivileged_userfaultfd=1), or access
 * to /dev/userfaultfd.  No feature is requested: UFFD_FEATURE_EVENT_UNMAP
 * in particular would make our own mmap(MAP_FIXED) wait for its event to be
 * read (a self-deadlock for an engine that reads its own events).
 */
static atomic_int given_dev = -1;

void sp_os_set_uffd_dev(int fd)
{
	int old = atomic_exchange(&given_dev, fd);

	if (old >= 0 && old != fd)
		close(old);
}

static int open_uffd(uint64_t features)
{
	int fd = -1, dev_err = 0, sys_err = 0;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			dev_err = errno;
		close(dev);
	} else {
		dev_err = errno;
	}
	if (fd < 0) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			sys_err = errno;
	}
	/* the device a root daemon opened for us (cross-process.md) */
	if (fd < 0 && atomic_load(&given_dev) >= 0) {
		fd = ioctl(atomic_load(&given_dev), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0)
			dev_err = sys_err = 0;
	}
	if (fd < 0) {
		sp_set_error("samepage: no userfaultfd with kernel-fault handling: "
			     "/dev/userfaultfd: %s; userfaultfd(2): %s.  Needed: read-write "
			     "access to /dev/userfaultfd, or CAP_SYS_PTRACE, or the sysctl "
			     "vm.unprivileged_userfaultfd=1",
			     strerror(dev_err), strerror(sys_err));
		return -(sys_err ? sys_err : dev_err ? dev_err : EPERM);
	}
	/*
	 * UFFD_FEATURE_WP_UNPOPULATED (6.4): write-protecting a page never
	 * touched installs a marker, so a first write to it parks too.  Used
	 * when the kernel has it (rebuilding a range in one mapping needs
	 * it); a fresh uffd is needed to retry without it.
	 */
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		if (features)
			return -EAGAIN;
		sp_set_error("samepage: UFFDIO_API failed: %s", strerror(err));
		return -err;
	}
	return fd;
}

/* Does the kernel do write-protect mode on anonymous memory? */
static int probe_wp(struct sp_os *os)
{
	void *p = mmap(NULL, os->page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	int err = sp_os_register(os, (uintptr_t)p >> os->page_shift, 1);

	if (err)
		sp_set_error("samepage: this kernel cannot write-protect anonymous "
			     "memory with userfaultfd (UFFDIO_REGISTER_MODE_WP: %s); "
			     "Linux 5.7 or later with CONFIG_HAVE_ARCH_USERFAULTFD_WP "
			     "is needed", strerror(-err));
	else
		sp_os_unregister(os, (uintptr_t)p >> os->page_shift, 1);
	munmap(p, os->page);
	return err;
}

/* The PFN of the shared zero page, or 0 if PFNs are hidden from us. */
static uint64_t find_zero_pfn(struct sp_os *os)
{
	volatile char *p = mmap(NULL, os->page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	if (pread(os->pagemap_fd, &e, 8, (off_t)((uintptr_t)p >> os->page_shift) * 8) != 8)
		e = 0;
	munmap((void *)p, os->page);
	if (!(e & PM_PRESENT))
		return 0;
	return e & PM_PFN;
}

int sp_os_open(struct sp_os *os)
{
	os->uffd = os->pagemap_fd = os->mem_fd = os->scratch_fd = -1;
	os->pid = getpid();
	os->page = (size_t)sysconf(_SC_PAGESIZE);
	os->page_shift = 0;
	while ((1ul << os->page_shift) < os->page)
		os->page_shift++;
	bool unpopulated = true;
	int err = open_uffd(SP_UFFD_WP_UNPOPULATED);

	if (err == -EAGAIN) {
		unpopulated = false;
		err = open_uffd(0);
	}
	if (err < 0)
		return err;
	os->wp_unpopulated = unpopulated;
	os->uffd = err;
	err = probe_wp(os);
	if (err)
		return err;
	os->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (os->pagemap_fd < 0) {
		err = -errno;
		sp_set_error("samepage: cannot open /proc/self/pagemap: %s (is /proc "
			     "mounted?)", strerror(errno));
		return err;
	}
	os->zero_pfn = find_zero_pfn(os);
	os->mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (os->mem_fd < 0) {
		err = -errno;
		sp_set_error("samepage: cannot open /proc/self/mem: %s", strerror(errno));
		return err;
	}
	os->tmp = mmap(NULL, os->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (os->tmp == MAP_FAILED) {
		os->tmp = NULL;
		sp_set_error("samepage: out of memory for page buffers");
		return -ENOMEM;
	}
	os->bufs_len = os->page;
	/* the read-ahead window and the check buffer: the scratch memfd */
	size_t bytes = 2 * SP_OS_AHEAD * os->page;

	os->scratch_fd = memfd_create("samepage-scratch", MFD_CLOEXEC);
	if (os->scratch_fd < 0 || ftruncate(os->scratch_fd, (off_t)bytes)) {
		err = -errno;
		sp_set_error("samepage: cannot create the scratch memfd: %s", strerror(errno));
		return err;
	}
	os->ra = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, os->scratch_fd, 0);
	if (os->ra == MAP_FAILED) {
		os->ra = NULL;
		sp_set_error("samepage: out of memory for page buffers");
		return -ENOMEM;
	}
	(void)madvise(os->ra, bytes, MADV_DONTDUMP);	/* (copies of pages: not the application's) */
	os->chk = os->ra + SP_OS_AHEAD * os->page;
	return 0;
}

void sp_os_close(struct sp_os *os)
{
	if (os->uffd >= 0)
		close(os->uffd);
	if (os->pagemap_fd >= 0)
		close(os->pagemap_fd);
	if (os->mem_fd >= 0)
		close(os->mem_fd);
	if (os->scratch_fd >= 0)
		close(os->scratch_fd);
	if (os->tmp)
		munmap(os->tmp, os->bufs_len);
	if (os->ra)
		munmap(os->ra, 2 * SP_OS_AHEAD * os->page);
	os->tmp = os->ra = os->chk = NULL;
	os->uffd = os->pagemap_fd = os->mem_fd = os->scratch_fd = -1;
}

/* ------------------------------------------------------------------------
 * pagemap and nodes
 * --------------------------------------------------------------------- */
int sp_os_pagemap(struct sp_os *os, uint64_t vpn, uint64_t *e, uint32_t n)
{
	ssize_t got = pread(os->pagemap_fd, e, (size_t)n * 8, (off_t)(vpn * 8));

	if (got < 0)
		return -errno;
	return (int)(got / 8);
}

void sp_os_nodes(struct sp_os *os, uint64_t vpn, uint32_t n, const uint64_t *e,
		 int16_t *nid)
{
	void *addrs[512];
	int status[512];

	if (os->nr_nodes <= 1 && !os->node_of) {
		memset(nid, 0, n * sizeof(*nid));
		return;
	}
	if (n > 512)
		n = 512;
	for (uint32_t k = 0; k < n; k++) {
		addrs[k] = vaddr(os, vpn + k);
		status[k] = -1;
	}
	if (os->node_of) {
		for (uint32_t k = 0; k < n; k++)
			status[k] = (e[k] & PM_PRESENT) ?
				os->node_of(os->node_arg, addrs[k], false) : 0;
	} else if (move_pages(0, n, addrs, NULL, status, 0)) {
		for (uint32_t k = 0; k < n; k++)
			status[k] = 0;
	}
	for (uint32_t k = 0; k < n; k++)
		nid[k] = (int16_t)(status[k] >= 0 && status[k] < os->nr_nodes ? status[k] : 0);
}

int sp_os_own_node(struct sp_os *os, void *addr, int fallback)
{
	if (os->node_of)
		return os->node_of(os->node_arg, addr, true);
	if (os->nr_nodes == 1)
		return 0;
	int status = -1;

	if (move_pages(0, 1, &addr, NULL, &status, 0) == 0 && status >= 0 &&
	    status < os->nr_nodes)
		return status;
	return fallback;
}

/* ------------------------------------------------------------------------
 * mappings
 * --------------------------------------------------------------------- */
/* A replacement (still our own scratch memory) gets the protection and
 * the flags of the mapping it will replace.  Private anonymous memory
 * holding its content already (privatize, rebuild): a plain mlock only
 * populates what is absent. */
static int give_prot_flags(void *p, size_t len, int prot, unsigned int flags)
{
	if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot))
		return -errno;
	if ((flags & SP_VMA_DONTFORK) && madvise(p, len, MADV_DONTFORK))
		return -errno;
	if ((flags & SP_VMA_DONTDUMP) && madvise(p, len, MADV_DONTDUMP))
		return -errno;
	if ((flags & SP_VMA_LOCKED) &&
	    syscall(SYS_mlock2, p, len, (flags & SP_VMA_ONFAULT) ? MLOCK_ONFAULT : 0))
		return -errno;
	return 0;
}

/*
 * A merge's replacement that must carry flags of the mapping it replaces
 * (dont-fork, dont-dump, mlock): mapped PROT_NONE at an address of our own,
 * given the flags and the protection there, then moved over the pages with
 * mremap(MREMAP_FIXED), which unmaps the old pages and moves the new VMA,
 * flags and page tables with it, in one call under the mmap lock.  A fork
 * (any kind: fork holds the same lock) copies either the old VMA or the new
 * one, both dont-fork; a core dump sees either, both dont-dump; the range is
 * locked throughout.  Only the scratch mapping itself is without flags for
 * the microseconds before its madvise: a fork then gives the child that
 * mapping of store pages at our scratch address, never at the
 * application's (the child can read the store through the descriptor it
 * inherits anyway).
 *
 * mlock: a plain mlock() of a writable private file mapping writes every
 * page (copy-on-write: nothing stays merged), and so does mprotect() adding
 * write to a locked one.  So: locked on fault while PROT_NONE (nothing to
 * populate), then the protection, then populated for reading (every page
 * maps the store page, locked in memory through this mapping).  The range
 * shows the VmFlags "lo lf" while merged; privatizing gives the plain lock
 * back (merge.c).
 *
 * mremap() unmaps the destination before moving: if the move fails after
 * that (an allocation of the kernel, or strict overcommit at its limit),
 * the hole is filled at once with the same backing (MAP_FIXED_NOREPLACE:
 * the pages' content, checked under protection by the caller) and the
 * flags given in place.
 */
/*
 * Core dumps: with the default coredump_filter (0x33, no MAPPED_PRIVATE)
 * the kernel dumps a private file mapping only if it has an anon_vma,
 * which it attaches at the mapping's first copy-on-write; a store mapping
 * never written would be left out of the application's core (measured:
 * 31 of 64 merged pages missing, test real_core_dump_has_merged_pages).
 * So one page of the scratch mapping is copied (MADV_POPULATE_WRITE: same
 * content) and dropped again (MADV_DONTNEED: the store page shows through
 * once more); the VMA keeps its anon_vma when mremap moves it.  Only at
 * our own scratch address, which nobody else writes.  Best effort (a
 * kernel without MADV_POPULATE_WRITE, a run of the daemon's zero slot:
 * the mapping is right, only left out of cores).
 */
static void give_anon_vma(struct sp_os *os, char *st, size_t len, int *cur_prot)
{
	size_t pg = (size_t)1 << os->page_shift;
	unsigned char in_core = 0;

	/* (a hole of the store, the zero slot's: a fault would allocate a
	 * page of the store for it; such a run stays out of cores, zeros) */
	if (mincore(st, pg, &in_core) || !(in_core & 1))
		return;
	if (*cur_prot != (PROT_READ | PROT_WRITE)) {
		if (mprotect(st, len, PROT_READ | PROT_WRITE))
			return;
		*cur_prot = PROT_READ | PROT_WRITE;
	}
	if (madvise(st, pg, MADV_POPULATE_WRITE) == 0)
		(void)madvise(st, pg, MADV_DONTNEED);
}

static int map_carry(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags,
		     int mflags, int fd, off_t off)
{
	size_t len = n << os->page_shift;
	void *dst = vaddr(os, vpn);
	/* (flags to give first: no access until they are there) */
	int cur = flags ? PROT_NONE : PROT_READ | PROT_WRITE;
	char *st = raw_mmap(NULL, len, cur, mflags, fd, off);
	int err = 0;

	if (st == MAP_FAILED)
		return -errno;
	if (fd >= 0 && !(flags & SP_VMA_DONTDUMP))
		give_anon_vma(os, st, len, &cur);
	if ((flags & SP_VMA_DONTFORK) && madvise(st, len, MADV_DONTFORK))
		err = -errno;
	if (!err && (flags & SP_VMA_DONTDUMP) && madvise(st, len, MADV_DONTDUMP))
		err = -errno;
	if (!err && (flags & SP_VMA_LOCKED) && syscall(SYS_mlock2, st, len, MLOCK_ONFAULT))
		err = -errno;
	if (!err && prot != cur && mprotect(st, len, prot))
		err = -errno;
	if (!err && (flags & SP_VMA_LOCKED) && (prot & PROT_READ) &&
	    madvise(st, len, MADV_POPULATE_READ))
		err = -errno;
	if (err) {
		munmap(st, len);
		return err;
	}
	if (raw_mremap(st, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != MAP_FAILED)
		return 0;
	err = -errno;
	munmap(st, len);
	void *h = raw_mmap(dst, len, prot, mflags | MAP_FIXED_NOREPLACE, fd, off);

	if (h == MAP_FAILED)
		return err;	/* (EEXIST: the old mapping is there, intact) */
	if (h != dst) {		/* (a kernel without MAP_FIXED_NOREPLACE) */
		munmap(h, len);
		return err;
	}
	(void)give_prot_flags(h, len, prot, flags | SP_VMA_ONFAULT);	/* (prot: as mapped) */
	return 0;
}

int sp_os_map_file(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags,
		   int fd, uint64_t off)
{
	/* (always through a scratch mapping: give_anon_vma) */
	return map_carry(os, vpn, n, prot, flags & SP_VMA_KEEP, MAP_PRIVATE, fd,
			 (off_t)(off << os->page_shift));
}

int sp_os_map_anon(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags)
{
	if (flags & SP_VMA_KEEP)
		return map_carry(os, vpn, n, prot, flags, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *m = raw_mmap(vaddr(os, vpn), n << os->page_shift, prot,
			   MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);

	return m == MAP_FAILED ? -errno : 0;
}

int sp_os_privatize(struct sp_os *os, uint64_t vpn, uint64_t n, int prot,
		     unsigned int flags)
{
	size_t len = n << os->page_shift;
	void *addr = vaddr(os, vpn);
	void *st = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (st == MAP_FAILED)
		return -errno;
	int err = sp_os_read(os, vpn, n, st);

	if (!err)
		err = give_prot_flags(st, len, prot, flags);
	if (err) {
		munmap(st, len);
		return err;
	}
	if (raw_mremap(st, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, addr) == MAP_FAILED) {
		int err = -errno;

		munmap(st, len);
		return err;
	}
	return 0;
}

/*
 * Rebuild [vpn, vpn+n) (one registered range, private anonymous, one
 * protection and one set of flags) as a single mapping: after unmerging,
 * every page we privatized is a mapping of its own (the kernel never joins
 * anonymous mappings made apart), so the application's mapping count would
 * stay high.  Chunk by chunk: protect (never-touched pages too: needs
 * WP_UNPOPULATED), copy the present pages into one scratch mapping at the
 * same offsets (the zero page and absent pages stay absent), move the
 * chunk in place, register, wake.  Chunks moved from one scratch mapping
 * join each other.
 */
#define REBUILD_CHUNK 512

int sp_os_rebuild(struct sp_os *os, uint64_t vpn, uint64_t n, int prot, unsigned int flags)
{
	if (!os->wp_unpopulated)
		return -EOPNOTSUPP;
	size_t len = n << os->page_shift;
	char *st = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t e[REBUILD_CHUNK];
	uint64_t moved = 0;	/* pages of st moved away: [0, moved) */
	int err = 0;

	if (st == MAP_FAILED)
		return -errno;
	for (uint64_t c = 0; c < n && !err; c += REBUILD_CHUNK) {
		uint64_t m = n - c < REBUILD_CHUNK ? n - c : REBUILD_CHUNK;
		char *dst = st + (c << os->page_shift);
		size_t clen = m << os->page_shift;

		err = sp_os_protect(os, vpn + c, m, true);
		if (err)
			break;
		int got = sp_os_pagemap(os, vpn + c, e, (uint32_t)m);

		if (got != (int)m)
			err = got < 0 ? got : -EIO;
		for (uint64_t i = 0; !err && i < m;) {
			bool zero = os->zero_pfn && (e[i] & PM_PRESENT) &&
				    (e[i] & PM_PFN) == os->zero_pfn;

			if (!(e[i] & (PM_PRESENT | PM_SWAP)) || zero) {
				i++;
				continue;
			}
			uint64_t j = i + 1;

			while (j < m && (e[j] & (PM_PRESENT | PM_SWAP)) &&
			       !(os->zero_pfn && (e[j] & PM_PFN) == os->zero_pfn))
				j++;
			err = sp_os_read(os, vpn + c + i, j - i, dst + (i << os->page_shift));
			i = j;
		}
		if (!err)
			err = give_prot_flags(dst, clen, prot, flags);
		if (!err && raw_mremap(dst, clen, clen, MREMAP_MAYMOVE | MREMAP_FIXED,
				       vaddr(os, vpn + c)) == MAP_FAILED)
			err = -errno;
		if (err) {
			/* the old mapping is intact: let the writers go */
			sp_os_protect(os, vpn + c, m, false);
			break;
		}
		moved = c + m;
		(void)sp_os_register(os, vpn + c, m);
		sp_os_wake(os, vpn + c, m);
	}
	/*
	 * What was not moved (nothing, unless it failed).  Never the chunks
	 * moved away: their addresses are free again, and another thread's
	 * mmap (malloc, a thread stack, a sanitizer's own memory) may have
	 * been placed there meanwhile.
	 */
	if (moved < n)
		munmap(st + (moved << os->page_shift), len - (moved << os->page_shift));
	return err;
}

int sp_os_dontneed(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	return madvise(vaddr(os, vpn), n << os->page_shift, MADV_DONTNEED) ? -errno : 0;
}

/*
 * MADV_COLD over part of a huge page that this process alone maps splits
 * it (mm/madvise.c, madvise_cold_or_pageout_pte_range(), as the kernel's
 * KSM splits one before merging a page of it); on small pages it only
 * moves them to the inactive list, and they are about to go.  Measured:
 * half the pages of 256 MiB of huge pages replaced by a file mapping freed
 * nothing; with MADV_COLD on each first, 99 MiB.  The split keeps the
 * userfaultfd write-protection of every page.
 */
void sp_os_split_huge(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	(void)madvise(vaddr(os, vpn), n << os->page_shift, MADV_COLD);
}

int sp_os_unmap(struct sp_os *os, uint64_t vpn, uint64_t n)
{
	return munmap(vaddr(os, vpn), n << os->page_shift) ? -errno : 0;
}

/* ------------------------------------------------------------------------
 * What /proc says.
 * --------------------------------------------------------------------- */
long sp_os_count_vmas(struct sp_os *os)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	char buf[65536];
	long n = 0;
	ssize_t got;

	(void)os;
	if (fd < 0)
		return -1;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < got; i++)
			n += buf[i] == '\n';
	close(fd);
	return n;
}

static unsigned int vm_flag(const char *fl)
{
	static const struct { char name[3]; unsigned int bit; } tab[] = {
		{ "lo", SP_VMA_LOCKED }, { "lf", SP_VMA_LOCKED | SP_VMA_ONFAULT }, { "wf", SP_VMA_WIPE },
		{ "dc", SP_VMA_DONTFORK }, { "dd", SP_VMA_DONTDUMP }, { "um", SP_VMA_UFFD },
		{ "ui", SP_VMA_UFFD }, { "uw", SP_VMA_UFFD_WP }, { "sh", SP_VMA_SHARED },
		{ "ms", SP_VMA_SHARED }, { "ht", SP_VMA_OTHER }, { "gd", SP_VMA_OTHER },
		{ "gu", SP_VMA_OTHER }, { "io", SP_VMA_OTHER }, { "pf", SP_VMA_OTHER },
		{ "de", SP_VMA_OTHER }, { "mm", SP_VMA_OTHER }, { "sl", SP_VMA_OTHER },
		{ "dp", SP_VMA_OTHER },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(fl, tab[i].name))
			return tab[i].bit;
	return 0;
}

/*
 * The lines of a /proc file, read without stdio: its buffers would be
 * malloc'd, and nothing of ours lives in the heap (the application may
 * register it).  A line longer than the buffer is cut (only the start of a
 * line matters here).
 */
struct proc_lines {
	int fd;
	int err;		/* a read failed: -errno (the lines stop there) */
	size_t len, pos;	/* bytes in buf; start of the next line */
	bool eof, skip;		/* skip: the rest of a cut line */
	char buf[16384];
};

/* The next line, NUL-terminated, without its newline; NULL at the end. */
static char *proc_line(struct proc_lines *l)
{
	for (;;) {
		char *s = l->buf + l->pos;
		char *nl = memchr(s, '\n', l->len - l->pos);

		if (l->skip) {
			l->pos = nl ? (size_t)(nl - l->buf) + 1 : l->len;
			l->skip = !nl;
			if (nl)
				continue;
		} else if (nl) {
			*nl = '\0';
			l->pos = (size_t)(nl - l->buf) + 1;
			return s;
		} else if (l->eof) {
			if (l->pos == l->len)
				return NULL;
			l->buf[l->len] = '\0';
			l->pos = l->len;
			return s;
		} else if (l->pos == 0 && l->len == sizeof(l->buf) - 1) {
			l->buf[l->len] = '\0';
			l->pos = l->len;
			l->skip = true;
			return s;
		}
		memmove(l->buf, l->buf + l->pos, l->len - l->pos);
		l->len -= l->pos;
		l->pos = 0;
		ssize_t got = read(l->fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			l->err = -errno;
		if (got <= 0)
			l->eof = true;
		else
			l->len += (size_t)got;
	}
}

int sp_os_vmas(struct sp_os *os, uint64_t a, uint64_t b, struct sp_vma **out, bool *gap)
{
	struct proc_lines f;
	char *line;
	size_t n = 0, c = 0;
	struct sp_vma *v = NULL, *cur = NULL;
	uint64_t covered = a;

	*gap = false;
	*out = NULL;
	f.fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	f.err = 0;
	f.len = f.pos = 0;
	f.eof = f.skip = false;
	if (f.fd < 0) {
		sp_set_error("samepage: cannot read /proc/self/smaps: %s", strerror(errno));
		return -errno;
	}
	while ((line = proc_line(&f))) {
		unsigned long long s, e, off = 0;
		char perms[8] = "", path[256] = "";
		unsigned long long ino = 0;
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %*s %llu%n", &s, &e, perms, &off, &ino,
			   &pos) >= 5 && strchr(line, '-') < strchr(line, ' ')) {
			cur = NULL;
			if (e <= a || s >= b)
				continue;
			if (sscanf(line + pos, " %255[^\n]", path) != 1)
				path[0] = 0;
			if (n == c) {
				c = c ? 2 * c : 16;
				struct sp_vma *nv = sp_arena_realloc(os->arena, v,
								     c * sizeof(*v));

				if (!nv) {
					sp_arena_free(os->arena, v);
					close(f.fd);
					return -ENOMEM;
				}
				v = nv;
			}
			cur = &v[n++];
			*cur = (struct sp_vma){
				.start = s, .end = e, .inode = ino, .offset = off,
				.prot = (perms[0] == 'r' ? PROT_READ : 0) |
					(perms[1] == 'w' ? PROT_WRITE : 0) |
					(perms[2] == 'x' ? PROT_EXEC : 0),
				.flags = perms[3] == 's' ? SP_VMA_SHARED : 0,
				.exec = perms[2] == 'x',
				.heap = ino == 0 && (path[0] == 0 || !strcmp(path, "[heap]") ||
						     !strncmp(path, "[anon:", 6)),
			};
			if (s > covered)
				*gap = true;
			if (e > covered)
				covered = e;
			continue;
		}
		unsigned long long kb;

		if (cur && sscanf(line, "AnonHugePages: %llu", &kb) == 1 && kb > 0)
			cur->huge = true;
		if (cur && !strncmp(line, "VmFlags:", 8)) {
			char *p = line + 8;
			char fl[8];
			int k;

			while (sscanf(p, " %7s%n", fl, &k) == 1) {
				p += k;
				cur->flags |= vm_flag(fl);
			}
		}
	}
	close(f.fd);
	if (covered < b)
		*gap = true;
	*out = v;
	return (int)n;
}

int sp_proc_file_maps(pid_t pid, unsigned int page_shift,
		      void (*fn)(void *arg, uint64_t dev, uint64_t ino, uint64_t pgoff,
				 uint64_t npages),
		      void *arg)
{
	struct proc_lines f;
	char path[64], *line;
	int lines = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	f.fd = open(path, O_RDONLY | O_CLOEXEC);
	f.err = 0;
	f.len = f.pos = 0;
	f.eof = f.skip = false;
	if (f.fd < 0)
		return -errno;
	while ((line = proc_line(&f))) {
		unsigned long long s, e, off, ino;
		unsigned int maj, mn;
		char perms[8] = "";

		if (lines < INT_MAX)
			lines++;
		/* (shared ones are not copies: the views of a store) */
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &s, &e, perms, &off, &maj, &mn,
			   &ino) == 7 && perms[3] == 'p' && ino != 0)
			fn(arg, makedev(maj, mn), ino, off >> page_shift, (e - s) >> page_shift);
	}
	close(f.fd);
	return f.err ? f.err : lines;
}

long sp_count_vmas(void)
{
	return sp_os_count_vmas(NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * real_own_userfaultfd_after_unmergeable - the application's own
 * userfaultfd on memory the library registered: a mapping has one
 * userfaultfd, so its UFFDIO_REGISTER fails with EBUSY while the library
 * holds the range (the memory unchanged); after SAMEPAGE_UNMERGEABLE it
 * succeeds, its missing-page faults reach its own handler (the pages
 * merged before read what the handler gives after MADV_DONTNEED), the
 * scanner leaves the range alone, and a new SAMEPAGE_MERGEABLE skips it
 * (ranges_skipped).  Skipped (77) where this user may not create a
 * userfaultfd.
 */
#include "real_util.h"

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#define NP 32

static int uffd;
static unsigned char *area;

/* The application's fault handler: a missing page gets its number + 100. */
static void *handler(void *arg)
{
	size_t ps = page_size();
	unsigned char *src = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);

	(void)arg;
	for (;;) {
		struct uffd_msg m;

		if (read(uffd, &m, sizeof(m)) != sizeof(m))
			return NULL;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t at = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)(ps - 1);

		memset(src, (int)((at - (uintptr_t)area) / ps + 100), ps);
		struct uffdio_copy cp = { .dst = at, .src = (uintptr_t)src, .len = ps };

		(void)ioctl(uffd, UFFDIO_COPY, &cp);
	}
}

int main(void)
{
	real_test_name = "real_own_userfaultfd_after_unmergeable";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();

	area = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	memset(area, 7, NP * ps);
	CHECK_EQ(samepage_madvise(sp, area, NP * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), NP - 1);

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		skip_test("this user may not create a userfaultfd");
	struct uffdio_api api = { .api = UFFD_API };

	CHECK(ioctl(uffd, UFFDIO_API, &api) == 0);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)area, .len = NP * ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	/* the library's range: busy, and nothing changed */
	CHECK(ioctl(uffd, UFFDIO_REGISTER, &reg) == -1);
	CHECK_EQ(errno, EBUSY);
	for (size_t k = 0; k < NP * ps; k++)
		if (area[k] != 7)
			FAIL("byte %zu reads %d after the refused register", k, area[k]);

	/* given up by the library: the application's */
	CHECK_EQ(samepage_madvise(sp, area, NP * ps, SAMEPAGE_UNMERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);	/* (the kernel's counters drop then too) */
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	for (size_t k = 0; k < NP * ps; k++)
		if (area[k] != 7)
			FAIL("byte %zu reads %d after UNMERGEABLE", k, area[k]);
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
		FAIL("UFFDIO_REGISTER after UNMERGEABLE: %s", strerror(errno));
	pthread_t t;

	CHECK(pthread_create(&t, NULL, handler, NULL) == 0);
	CHECK(madvise(area, NP * ps, MADV_DONTNEED) == 0);
	for (size_t i = 0; i < NP; i++)
		for (size_t k = 0; k < ps; k += 256)
			if (area[i * ps + k] != i + 100)
				FAIL("page %zu reads %d, the application's handler gave %zu", i,
				     area[i * ps + k], i + 100);

	/* registered again: skipped, never touched */
	long skipped = get(sp, "ranges_skipped"), merges = get(sp, "merges");

	memset(area, 9, NP * ps);
	CHECK_EQ(samepage_madvise(sp, area, NP * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK(get(sp, "ranges_skipped") > skipped);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "merges"), merges);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	for (size_t k = 0; k < NP * ps; k++)
		if (area[k] != 9)
			FAIL("byte %zu reads %d after close", k, area[k]);
	printf("PASS real_own_userfaultfd_after_unmergeable\n");
	return 0;
}

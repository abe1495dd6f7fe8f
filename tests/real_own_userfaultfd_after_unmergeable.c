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
#include "app_uffd.h"

#define NP 32

int main(void)
{
	real_test_name = "real_own_userfaultfd_after_unmergeable";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();

	app_area = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(app_area != MAP_FAILED);
	memset(app_area, 7, NP * ps);
	CHECK_EQ(samepage_madvise(sp, app_area, NP * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), NP - 1);

	app_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (app_uffd < 0)
		app_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (app_uffd < 0)
		skip_test("this user may not create a userfaultfd");
	struct uffdio_api api = { .api = UFFD_API };

	CHECK(ioctl(app_uffd, UFFDIO_API, &api) == 0);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)app_area, .len = NP * ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	/* the library's range: busy, and nothing changed */
	CHECK(ioctl(app_uffd, UFFDIO_REGISTER, &reg) == -1);
	CHECK_EQ(errno, EBUSY);
	for (size_t k = 0; k < NP * ps; k++)
		if (app_area[k] != 7)
			FAIL("byte %zu reads %d after the refused register", k, app_area[k]);

	/* given up by the library: the application's */
	CHECK_EQ(samepage_madvise(sp, app_area, NP * ps, SAMEPAGE_UNMERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);	/* (the kernel's counters drop then too) */
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	for (size_t k = 0; k < NP * ps; k++)
		if (app_area[k] != 7)
			FAIL("byte %zu reads %d after UNMERGEABLE", k, app_area[k]);
	if (ioctl(app_uffd, UFFDIO_REGISTER, &reg) != 0)
		FAIL("UFFDIO_REGISTER after UNMERGEABLE: %s", strerror(errno));
	pthread_t t;

	CHECK(pthread_create(&t, NULL, app_uffd_handler, NULL) == 0);
	CHECK(madvise(app_area, NP * ps, MADV_DONTNEED) == 0);
	for (size_t i = 0; i < NP; i++)
		for (size_t k = 0; k < ps; k += 256)
			if (app_area[i * ps + k] != i + 100)
				FAIL("page %zu reads %d, the application's handler gave %zu", i,
				     app_area[i * ps + k], i + 100);

	/* registered again: skipped, never touched */
	long skipped = get(sp, "ranges_skipped"), merges = get(sp, "merges");

	memset(app_area, 9, NP * ps);
	CHECK_EQ(samepage_madvise(sp, app_area, NP * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK(get(sp, "ranges_skipped") > skipped);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "merges"), merges);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	CHECK_EQ(samepage_close(sp), 0);
	for (size_t k = 0; k < NP * ps; k++)
		if (app_area[k] != 9)
			FAIL("byte %zu reads %d after close", k, app_area[k]);
	printf("PASS real_own_userfaultfd_after_unmergeable\n");
	return 0;
}

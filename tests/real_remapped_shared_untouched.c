/* SPDX-License-Identifier: MIT */
/*
 * real_remapped_shared_untouched - the application munmaps merged memory
 * and maps a MAP_SHARED memfd at the same address: neither the scanner nor
 * samepage_close touch that mapping (close used to replace it with a
 * private copy, so the application's writes no longer reached its file).
 */
#include "real_util.h"

#include <sys/syscall.h>

int main(void)
{
	real_test_name = "real_remapped_shared_untouched";
	size_t ps = page_size(), n = 16;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);
	char perms[8], flags[512];

	CHECK(p);
	memset(p, 0x21, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 15);

	int fd = (int)syscall(SYS_memfd_create, "app-file", 0);

	CHECK(fd >= 0 && ftruncate(fd, (off_t)(n * ps)) == 0);
	CHECK(munmap(p, n * ps) == 0);
	char *q = mmap(p, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);

	CHECK(q == p);
	memset(q, 0x21, n * ps);	/* the same bytes as before: tempting */
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK(vma_of(q, perms, flags));
	if (strcmp(perms, "rw-s"))
		FAIL("the application's shared mapping became %s", perms);
	for (size_t i = 0; i < n; i++)
		q[i * ps + 3] = (char)(0x60 + i);
	for (size_t i = 0; i < n; i++) {
		char c;

		CHECK(pread(fd, &c, 1, (off_t)(i * ps + 3)) == 1);
		if ((unsigned char)c != 0x60 + i)
			FAIL("page %zu: the write did not reach the file (%#x)", i,
			     (unsigned char)c);
	}
	printf("PASS real_remapped_shared_untouched\n");
	return 0;
}

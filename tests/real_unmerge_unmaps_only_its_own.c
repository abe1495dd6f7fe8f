/* SPDX-License-Identifier: MIT */
/*
 * real_unmerge_unmaps_only_its_own - the library never unmaps addresses
 * that are not mapped: once memory is moved away or unmapped, its
 * addresses may already hold another thread's new mapping (a malloc
 * arena, a thread stack, a sanitizer's own memory), and a munmap there
 * destroys it.  Merged pages unmerged by run=2 are moved back into one
 * mapping (sp_os_rebuild, one scratch mapping moved chunk by chunk); this
 * program's munmap() sees every call of the library (a static link binds
 * them to it) and fails the test on a range with any page not mapped.
 * That is what made daemon clients under ThreadSanitizer die of a SEGV in
 * about 1 run of 10: the scratch mapping's addresses, free again once
 * moved, were unmapped again after TSan had mapped its own memory there.
 */
#include <dlfcn.h>
#include <sys/syscall.h>

#include "real_util.h"

static int (*next_munmap)(void *, size_t);
static long bad_calls;
static void *bad_addr;
static size_t bad_len;
static long calls;

/* Is every page of [p, p + len) mapped?  (msync: ENOMEM for a hole) */
static bool all_mapped(void *p, size_t len)
{
	return syscall(SYS_msync, p, len, MS_ASYNC) == 0;
}

int munmap(void *addr, size_t len)
{
	if (!next_munmap)
		next_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	calls++;
	if (len && !all_mapped(addr, len)) {
		if (!bad_calls++) {
			bad_addr = addr;
			bad_len = len;
		}
	}
	if (!next_munmap)
		return (int)syscall(SYS_munmap, addr, len);
	return next_munmap(addr, len);
}

int main(void)
{
	real_test_name = "real_unmerge_unmaps_only_its_own";
	size_t ps = page_size();
	struct samepage *sp = open_or_skip();

	for (int round = 0; round < 3; round++) {
		/* one range a chunk long, one of several chunks, one in between */
		size_t npg[3] = { 256, 3 * 512 + 7, 700 };
		char *p[3];

		for (int k = 0; k < 3; k++) {
			p[k] = samepage_alloc(sp, npg[k] * ps);
			CHECK(p[k]);
			for (size_t i = 0; i < npg[k]; i++) {
				if (i % 3)
					memset(p[k] + i * ps, 0x5A, ps);	/* merged */
				else
					for (size_t j = 0; j < ps; j += 8)
						*(uint64_t *)(p[k] + i * ps + j) =
							(i + 1) * 0x9E3779B97F4A7C15ull + j + (size_t)k;
			}
		}
		CHECK_EQ(samepage_scan_full(sp, 2), 0);
		CHECK(get(sp, "pages_sharing") > 1000);
		set(sp, "run", 2);
		CHECK_EQ(get(sp, "pages_sharing"), 0);
		CHECK_EQ(get(sp, "pages_shared"), 0);
		for (int k = 0; k < 3; k++) {
			for (size_t i = 0; i < npg[k]; i++) {
				if (i % 3)
					CHECK_EQ((unsigned char)p[k][i * ps + 17], 0x5A);
				else
					CHECK(*(uint64_t *)(p[k] + i * ps + 64) ==
					      (i + 1) * 0x9E3779B97F4A7C15ull + 64 + (size_t)k);
			}
			CHECK_EQ(samepage_free(sp, p[k], npg[k] * ps), 0);
		}
		set(sp, "run", 0);
	}
	CHECK_EQ(samepage_close(sp), 0);
	printf("munmap calls: %ld, of ranges not wholly mapped: %ld\n", calls, bad_calls);
	if (bad_calls)
		FAIL("the library unmapped %ld ranges not wholly mapped (first %p, %zu bytes): "
		     "addresses that may be another mapping's by then", bad_calls, bad_addr,
		     bad_len);
	printf("PASS real_unmerge_unmaps_only_its_own\n");
	return 0;
}

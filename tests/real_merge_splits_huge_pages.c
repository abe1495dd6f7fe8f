/* SPDX-License-Identifier: MIT */
/*
 * real_merge_splits_huge_pages - merging pages inside transparent huge
 * pages splits those huge pages first (as the kernel's KSM does), so that
 * the pages merged away are freed at once: without the split, the whole
 * huge page stays allocated until the kernel's deferred split, under
 * memory pressure (QEMU's guest RAM is MADV_HUGEPAGE).  Every other page
 * of 8 MiB of huge pages holds one content: those merge (exact
 * pages_shared and pages_sharing) and the pages left unmerged are no part of a huge page
 * any more (/proc/kpageflags: neither THP nor compound), content intact.
 * Needs transparent huge pages (always or madvise) and visible PFNs
 * (root); skips (77) otherwise, and when the kernel gave no huge page.
 */
#include "real_util.h"

#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define KPF_THP			22

static uint64_t kpageflags(uint64_t pfn)
{
	static int fd = -1;
	uint64_t f = 0;

	if (fd < 0)
		fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &f, 8, (off_t)(pfn * 8)) != 8)
		FAIL("cannot read /proc/kpageflags: %s", strerror(errno));
	return f;
}

static bool in_huge_page(const void *p)
{
	uint64_t pfn = pfn_of(p);

	return pfn && (kpageflags(pfn) & ((1ull << KPF_THP) | (1ull << KPF_COMPOUND_HEAD) |
					 (1ull << KPF_COMPOUND_TAIL)));
}

int main(void)
{
	real_test_name = "real_merge_splits_huge_pages";
	size_t ps = page_size(), huge = 2u << 20, n = (8u << 20) / ps;
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (!f || !fgets(mode, sizeof(mode), f) || strstr(mode, "[never]")) {
		printf("SKIP %s: transparent huge pages are off here\n", real_test_name);
		return 77;
	}
	fclose(f);
	if (!pfns_visible() || access("/proc/kpageflags", R_OK)) {
		printf("SKIP %s: PFNs and /proc/kpageflags are not visible (not root)\n",
		       real_test_name);
		return 77;
	}
	struct samepage *sp = open_or_skip();
	char *raw = mmap(NULL, n * ps + huge, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(raw != MAP_FAILED);
	char *a = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
	char *shadow = malloc(n * ps);

	CHECK(shadow);
	CHECK_EQ(madvise(a, n * ps, MADV_HUGEPAGE), 0);
	for (size_t i = 0; i < n; i++) {
		/* even pages: one content; odd ones: each its own */
		memset(shadow + i * ps, i % 2 ? (int)(i & 0x7f) + 1 : 0x5a, ps);
		if (i % 2)
			memcpy(shadow + i * ps, &i, sizeof(i));
	}
	memcpy(a, shadow, n * ps);
	size_t huge_before = 0;

	for (size_t i = 0; i < n; i++)
		huge_before += in_huge_page(a + i * ps);
	if (huge_before < n / 2) {
		printf("SKIP %s: the kernel gave only %zu of %zu pages in huge pages\n",
		       real_test_name, huge_before, n);
		free(shadow);
		samepage_close(sp);
		return 77;
	}
	CHECK_EQ(samepage_madvise(sp, a, n * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* (max_page_sharing 256: a KSM page per 256 of them) */
	long shared = (long)(n / 2 + 255) / 256;

	CHECK_EQ(get(sp, "pages_shared"), shared);
	CHECK_EQ(get(sp, "pages_sharing"), (long)(n / 2) - shared);
	if (memcmp(a, shadow, n * ps))
		FAIL("the memory differs from its shadow after merging");
	size_t still = 0;

	for (size_t i = 1; i < n; i += 2)
		still += in_huge_page(a + i * ps);
	printf("%zu of %zu pages in huge pages before; after merging the even ones, "
	       "%zu of the %zu odd ones\n", huge_before, n, still, n / 2);
	if (still)
		FAIL("%zu unmerged pages are still part of a huge page: the pages merged "
		     "away next to them were not freed", still);
	CHECK_EQ(samepage_close(sp), 0);
	if (memcmp(a, shadow, n * ps))
		FAIL("the memory differs from its shadow after close");
	free(shadow);
	munmap(raw, n * ps + huge);
	printf("PASS %s\n", real_test_name);
	return 0;
}

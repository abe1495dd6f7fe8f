/* SPDX-License-Identifier: MIT */
/*
 * real_madvise_flags_kept - MADV_WIPEONFORK, MADV_DONTFORK, MADV_DONTDUMP
 * and mlock applied by the application after registering are never lost:
 * pages under such flags are not merged (merges_refused counts them), a
 * forked child sees zeros in the wipe-on-fork range and has no mapping of
 * the dont-fork range, and the flags are still there after close.  Flags
 * applied to pages already merged are kept by the unmerge at close.
 */
#include "real_util.h"

#include <sys/wait.h>

enum { WIPE, DONTFORK, DONTDUMP, LOCK, NKIND };
static const char *const flag_name[NKIND] = { "wf", "dc", "dd", "lo" };

static bool lock_works = true;	/* mlock is a no-op under AddressSanitizer */

static void apply(char *p, size_t len, int kind)
{
	int r = kind == WIPE ? madvise(p, len, MADV_WIPEONFORK) :
		kind == DONTFORK ? madvise(p, len, MADV_DONTFORK) :
		kind == DONTDUMP ? madvise(p, len, MADV_DONTDUMP) : mlock(p, len);

	if (r)
		FAIL("flag %s: %s", flag_name[kind], strerror(errno));
	if (kind == LOCK) {
		char perms[8], flags[512];

		CHECK(vma_of(p, perms, flags));
		if (!has_flag(flags, "lo")) {
			printf("note: mlock() had no effect here (a sanitizer intercepts "
			       "it): the lock case is not checked\n");
			lock_works = false;
		}
	}
}

static void expect_flag(char *p, size_t n, int kind, const char *when)
{
	char perms[8], flags[512];

	if (kind == LOCK && !lock_works)
		return;
	for (size_t i = 0; i < n; i++) {
		CHECK(vma_of(p + i * page_size(), perms, flags));
		if (!has_flag(flags, flag_name[kind]))
			FAIL("%s: page %zu lost VmFlag %s (VmFlags:%s)", when, i,
			     flag_name[kind], flags);
	}
}

int main(void)
{
	real_test_name = "real_madvise_flags_kept";
	size_t ps = page_size(), n = 8;
	struct samepage *sp = open_or_skip();
	char *r[NKIND], *m[NKIND];

	/* flags set after registering, before any merge: refused */
	for (int k = 0; k < NKIND; k++) {
		r[k] = samepage_alloc(sp, n * ps);
		CHECK(r[k]);
		memset(r[k], 0x77, n * ps);		/* a secret */
		apply(r[k], n * ps, k);
	}
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	/* (an mlock without effect leaves an ordinary range: it merges) */
	CHECK_EQ(get(sp, "pages_sharing"), lock_works ? 0 : (long)n - 1);
	CHECK(get(sp, "merges_refused") >= NKIND - !lock_works);
	for (int k = 0; k < NKIND; k++) {
		for (size_t i = 0; (k != LOCK || lock_works) && i < n; i++)
			CHECK(!maps_file(r[k] + i * ps));
		expect_flag(r[k], n, k, "after the scans");
	}
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		unsigned char vec;

		for (size_t i = 0; i < n * ps; i++)
			if (r[WIPE][i] != 0)
				_exit(10);	/* read the parent's secret */
		if (mincore(r[DONTFORK], ps, &vec) == 0)
			_exit(11);	/* dont-fork range mapped in the child */
		_exit(0);
	}
	int st;

	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("child: %s", WIFEXITED(st) && WEXITSTATUS(st) == 10 ?
		     "wipe-on-fork range shows the parent's data" :
		     WIFEXITED(st) && WEXITSTATUS(st) == 11 ? "dont-fork range is mapped" :
		     "crashed");

	/* flags set on merged pages (wipe-on-fork cannot be: EINVAL there) */
	for (int k = DONTFORK; k < NKIND; k++) {
		m[k] = samepage_alloc(sp, n * ps);
		CHECK(m[k]);
		memset(m[k], 0x41 + k, n * ps);
	}
	long before = get(sp, "pages_sharing");

	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), before + 3 * (long)(n - 1));

	for (int k = DONTFORK; k < NKIND; k++) {
		CHECK(maps_file(m[k]) || !(pagemap(m[k]) >> 63));
		apply(m[k], n * ps, k);
	}
	CHECK_EQ(samepage_close(sp), 0);
	for (int k = 0; k < NKIND; k++)
		expect_flag(r[k], n, k, "after close");
	for (int k = DONTFORK; k < NKIND; k++) {
		expect_flag(m[k], n, k, "merged, after close");
		for (size_t i = 0; i < n * ps; i += 97)
			CHECK_EQ((unsigned char)m[k][i], 0x41 + k);
		check_all_private(m[k], n);
	}
	printf("PASS real_madvise_flags_kept\n");
	return 0;
}

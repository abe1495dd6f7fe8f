/* SPDX-License-Identifier: MIT */
/*
 * real_madvise_flags_kept - MADV_DONTFORK, MADV_DONTDUMP and mlock applied
 * by the application after registering are carried by merges: such ranges
 * merge (exact pages_shared/pages_sharing; one physical page per content
 * where PFNs are visible) and keep their VmFlags while merged (a locked
 * range is locked on fault there, "lo lf") and after close (exactly as
 * the application set them: "lf" gone again).  A child made by fork(),
 * _Fork() or syscall(SYS_fork) while they are merged has no mapping of the
 * dont-fork ranges and reads the others right.  What a replacement cannot
 * carry stays unmerged with its flags: MADV_WIPEONFORK (the child reads
 * zeros there), mlock2(MLOCK_ONFAULT) by the application, zero pages of a
 * locked range.  Flags applied to pages already merged are kept by the
 * unmerge at close.  Every byte is checked against a shadow copy.
 */
#include "real_util.h"

#include <sys/syscall.h>
#include <sys/wait.h>

enum { WIPE, DONTFORK, DONTDUMP, LOCK, ALL3, ONFAULT, LOCKZERO, NKIND };
static const char *const kind_name[NKIND] = {
	"wipe-on-fork", "dont-fork", "dont-dump", "mlock", "dont-fork+dont-dump+mlock",
	"mlock-on-fault", "mlock (zeros)",
};
/* merged by samepage? */
static const bool merges[NKIND] = { false, true, true, true, true, false, false };

#define N 8	/* pages per range, all of one content */

static size_t ps;
static char *r[NKIND], *shadow[NKIND];

static bool has(int kind, const char *fl)
{
	switch (kind) {
	case WIPE: return !strcmp(fl, "wf");
	case DONTFORK: return !strcmp(fl, "dc");
	case DONTDUMP: return !strcmp(fl, "dd");
	case LOCK: case LOCKZERO: return !strcmp(fl, "lo");
	case ALL3: return !strcmp(fl, "dc") || !strcmp(fl, "dd") || !strcmp(fl, "lo");
	case ONFAULT: return !strcmp(fl, "lo") || !strcmp(fl, "lf");
	}
	return false;
}

static void apply(char *p, size_t len, int kind)
{
	int e = 0;

	if (kind == WIPE)
		e = madvise(p, len, MADV_WIPEONFORK);
	if (kind == DONTFORK || kind == ALL3)
		e = e ? e : madvise(p, len, MADV_DONTFORK);
	if (kind == DONTDUMP || kind == ALL3)
		e = e ? e : madvise(p, len, MADV_DONTDUMP);
	/* (the system call: a sanitizer's mlock() does nothing) */
	if (kind == LOCK || kind == ALL3 || kind == LOCKZERO)
		e = e ? e : (int)syscall(SYS_mlock, p, len);
	if (kind == ONFAULT)
		e = (int)syscall(SYS_mlock2, p, len, MLOCK_ONFAULT);
	if (e)
		FAIL("%s: %s", kind_name[kind], strerror(errno));
}

/* Every page of range @k has exactly its flags; @lf: lock on fault too
 * (a locked range while merged), else none. */
static void expect_flags(int k, bool lf, const char *when)
{
	static const char *const all[] = { "wf", "dc", "dd", "lo", "lf" };
	char perms[8], flags[512];

	for (size_t i = 0; i < N; i++) {
		CHECK(vma_of(r[k] + i * ps, perms, flags));
		for (size_t f = 0; f < sizeof(all) / sizeof(all[0]); f++) {
			bool want = has(k, all[f]) || (lf && !strcmp(all[f], "lf"));

			if (has_flag(flags, all[f]) != want)
				FAIL("%s: %s range, page %zu: VmFlag %s %s (VmFlags:%s)", when,
				     kind_name[k], i, all[f], want ? "lost" : "added", flags);
		}
	}
}

static void expect_content(const char *when)
{
	for (int k = 0; k < NKIND; k++)
		if (memcmp(r[k], shadow[k], N * ps))
			FAIL("%s: %s range differs from its shadow", when, kind_name[k]);
}

/* The merged ranges map one store page each: the same PFN on every page
 * (when visible), from the file. */
static void expect_merged(const char *when)
{
	for (int k = 0; k < NKIND; k++) {
		uint64_t pf0 = pfn_of(r[k]);

		for (size_t i = 0; i < N; i++) {
			uint64_t pf = pfn_of(r[k] + i * ps);

			if (maps_file(r[k] + i * ps) != merges[k])
				FAIL("%s: %s range, page %zu %s", when, kind_name[k], i,
				     merges[k] ? "not merged" : "merged");
			if (pfns_visible() && merges[k] && pf != pf0)
				FAIL("%s: %s range, page %zu: PFN %#llx, page 0 %#llx", when,
				     kind_name[k], i, (unsigned long long)pf,
				     (unsigned long long)pf0);
		}
		if (!merges[k])
			check_all_private(r[k], N);
	}
}

/* In a child: 0 if what it inherited is right, else a code of what not. */
static int child_check(void)
{
	unsigned char vec;

	for (int k = 0; k < NKIND; k++) {
		if (k == DONTFORK || k == ALL3) {
			for (size_t i = 0; i < N; i++)
				if (mincore(r[k] + i * ps, ps, &vec) == 0 || errno != ENOMEM)
					return 10 + k;	/* mapped in the child */
			continue;
		}
		for (size_t i = 0; i < N * ps; i++)
			if ((unsigned char)r[k][i] != (k == WIPE ? 0 : (unsigned char)shadow[k][i]))
				return 20 + k;	/* wrong byte */
	}
	return 0;
}

static void forks(const char *when)
{
	static const char *const how[3] = { "fork()", "_Fork()", "syscall(SYS_fork)" };

	for (int h = 0; h < 3; h++) {
		pid_t pid = h == 0 ? fork() : h == 1 ? _Fork() : (pid_t)syscall(SYS_fork);

		CHECK(pid >= 0);
		if (pid == 0)
			_exit(child_check());
		int st;

		CHECK(waitpid(pid, &st, 0) == pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			int c = WIFEXITED(st) ? WEXITSTATUS(st) : -1;

			FAIL("%s, child of %s: %s %s", when, how[h],
			     c >= 10 ? kind_name[c % 10] : "",
			     c >= 20 ? "range reads wrong (wipe-on-fork: not zeros)" :
			     c >= 10 ? "range is mapped" : "crashed");
		}
	}
}

int main(void)
{
	real_test_name = "real_madvise_flags_kept";
	ps = page_size();
	struct samepage *sp = open_or_skip();

	/* flags set after registering, before any merge */
	for (int k = 0; k < NKIND; k++) {
		r[k] = samepage_alloc(sp, N * ps);
		shadow[k] = malloc(N * ps);
		CHECK(r[k] && shadow[k]);
		memset(shadow[k], k == LOCKZERO ? 0 : 0x70 + k, N * ps);	/* a secret */
		memcpy(r[k], shadow[k], N * ps);
		apply(r[k], N * ps, k);
	}
	for (int k = 0; k < NKIND; k++)
		expect_flags(k, k == ONFAULT, "before the scans");
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 4);
	CHECK_EQ(get(sp, "pages_sharing"), 4 * (N - 1));
	/* wipe-on-fork, on-fault and the locked zeros: tried at each visit */
	CHECK(get(sp, "merges_refused") >= 3);
	expect_content("merged");
	expect_merged("merged");
	for (int k = 0; k < NKIND; k++)
		expect_flags(k, k == ONFAULT || (merges[k] && has(k, "lo")), "merged");
	forks("merged");
	expect_content("merged, after the forks");

	/* writes into merged pages copy (the flags stay) */
	for (int k = 0; k < NKIND; k++) {
		r[k][3 * ps + 5] = shadow[k][3 * ps + 5] = 0x11;
		r[k][6 * ps] = shadow[k][6 * ps] = 0x22;
	}
	expect_content("written");
	for (int k = 0; k < NKIND; k++) {
		if (merges[k])
			CHECK(!maps_file(r[k] + 3 * ps) && maps_file(r[k] + 4 * ps));
		expect_flags(k, k == ONFAULT || (merges[k] && has(k, "lo")), "written");
	}
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 4 * (N - 3));
	forks("written");
	expect_content("written, after the forks");

	/* flags set on merged pages (wipe-on-fork cannot be: EINVAL there) */
	char *m[NKIND] = { NULL };
	long before = get(sp, "pages_sharing");

	for (int k = DONTFORK; k <= ALL3; k++) {
		m[k] = samepage_alloc(sp, N * ps);
		CHECK(m[k]);
		memset(m[k], 0x41 + k, N * ps);
	}
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_sharing"), before + 4 * (N - 1));
	for (int k = DONTFORK; k <= ALL3; k++) {
		CHECK(maps_file(m[k]) || !(pagemap(m[k]) >> 63));
		apply(m[k], N * ps, k);
	}

	CHECK_EQ(samepage_close(sp), 0);
	expect_content("after close");
	for (int k = 0; k < NKIND; k++) {
		expect_flags(k, k == ONFAULT, "after close");
		check_all_private(r[k], N);
	}
	for (int k = DONTFORK; k <= ALL3; k++) {
		char *save = r[k];

		r[k] = m[k];	/* (expect_flags looks at r[]) */
		expect_flags(k, false, "merged, flagged, after close");
		r[k] = save;
		for (size_t i = 0; i < N * ps; i++)
			if ((unsigned char)m[k][i] != 0x41 + k)
				FAIL("%s range flagged while merged: byte %zu changed",
				     kind_name[k], i);
		check_all_private(m[k], N);
	}
	printf("PASS real_madvise_flags_kept\n");
	return 0;
}

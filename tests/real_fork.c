/* SPDX-License-Identifier: MIT */
/*
 * real_fork - fork() with merged pages: parent and child each see their own
 * writes and nothing else; the store pages the child may still map are
 * not reused by the parent while the child lives (quarantined), even after
 * the parent unmerged everything and merged other content; once the child
 * is gone they are released.
 */
#include "real_util.h"

#include <sys/wait.h>

static void wait_byte(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		FAIL("pipe read: %s", strerror(errno));
}

static void send_byte(int fd)
{
	if (write(fd, "x", 1) != 1)
		FAIL("pipe write: %s", strerror(errno));
}

static void expect(const char *p, size_t len, unsigned char v, const char *who)
{
	for (size_t j = 0; j < len; j++)
		if ((unsigned char)p[j] != v)
			FAIL("%s: byte %zu reads %#x, expected %#x", who, j,
			     (unsigned char)p[j], v);
}

int main(void)
{
	real_test_name = "real_fork";
	size_t ps = page_size(), n = 16;
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, n * ps);

	CHECK(p);
	memset(p, 0x2A, n * ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), 15);

	int to_child[2], to_parent[2];

	CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		long v;

		/* the handle is the parent's */
		if (samepage_get(sp, "pages_shared", &v) != -ECHILD)
			FAIL("child: samepage_get should fail with ECHILD");
		expect(p, n * ps, 0x2A, "child before writes");
		p[0] = 'c';
		send_byte(to_parent[1]);
		wait_byte(to_child[0]);		/* parent wrote, unmerged, merged */
		CHECK_EQ(p[0], 'c');
		expect(p + 1, ps - 1, 0x2A, "child page 0");
		expect(p + ps, (n - 1) * ps, 0x2A, "child pages 1..");
		_exit(0);
	}
	wait_byte(to_parent[0]);
	p[ps] = 'p';
	expect(p, ps, 0x2A, "parent page 0");
	CHECK_EQ(p[ps], 'p');
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), 14);

	/* the parent lets go of everything and merges other content */
	CHECK_EQ(samepage_madvise(sp, p, n * ps, SAMEPAGE_UNMERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	/* quarantined: the child may map it */
	CHECK_EQ(get(sp, "store_pages"), 1);
	CHECK_EQ(get(sp, "store_quarantined"), 1);
	char *q = samepage_alloc(sp, n * ps);

	CHECK(q);
	for (size_t i = 0; i < n; i++)
		memset(q + i * ps, 0x55 + (int)(i % 2), ps);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	CHECK_EQ(get(sp, "pages_shared"), 2);
	send_byte(to_child[1]);

	int status;

	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("child failed (status %#x)", status);
	expect(p, ps, 0x2A, "parent page 0 at the end");
	CHECK_EQ(p[ps], 'p');
	expect(p + ps + 1, ps - 1, 0x2A, "parent page 1 at the end");
	/* the child is gone: its slot is released at the next batch */
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "store_quarantined"), 0);
	CHECK_EQ(get(sp, "store_pages"), 2);
	CHECK_EQ(samepage_close(sp), 0);
	for (size_t i = 0; i < n; i++)
		expect(q + i * ps, ps, 0x55 + (int)(i % 2), "second region");
	check_all_private(q, n);
	printf("fork ok\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_fork_without_atfork - a child made without atfork handlers (_Fork(),
 * the raw clone(SIGCHLD) syscall, syscall(SYS_fork)) reads exactly the data
 * it inherited in every byte of its merged pages, after the parent wrote its
 * own copies (freeing the store slots), merged other content into fresh and
 * freed slots, and either closed the handle or kept running.
 */
#include "real_util.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define NPAGES	32	/* 16 contents, two pages each */

static size_t ps;

static unsigned char content(char tag, size_t page, size_t byte)
{
	/* pages i and i + NPAGES/2 are equal, except for tag 'X' (all
	 * unique); tags differ in every byte; never 0 */
	size_t k = tag == 'X' ? page : page % (NPAGES / 2);

	return (unsigned char)(1 + ((size_t)tag * 131 + k * 17 + byte * 7) % 251);
}

static void fill(char *p, char tag)
{
	for (size_t i = 0; i < NPAGES; i++)
		for (size_t j = 0; j < ps; j++)
			p[i * ps + j] = (char)content(tag, i, j);
}

/* 0 if @p holds exactly @shadow; else prints the first difference. */
static int compare(const char *p, const char *shadow, const char *who)
{
	for (size_t j = 0; j < NPAGES * ps; j++) {
		if (p[j] != shadow[j]) {
			fprintf(stderr, "%s: page %zu byte %zu reads %#x, expected %#x\n", who,
				j / ps, j % ps, (unsigned char)p[j], (unsigned char)shadow[j]);
			return -1;
		}
	}
	return 0;
}

static pid_t make_child(int how)
{
	switch (how) {
	case 0:
		return _Fork();
	case 1:
		/* x86-64 argument order; flags alone make it a plain fork */
		return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	default:
		return (pid_t)syscall(SYS_fork);
	}
}

static const char *const how_name[] = { "_Fork()", "clone(SIGCHLD)", "syscall(SYS_fork)" };

static void one(int how, bool parent_closes)
{
	struct samepage *sp = open_or_skip();
	char *p = samepage_alloc(sp, NPAGES * ps);
	char *shadow = malloc(NPAGES * ps);

	CHECK(p && shadow);
	fill(p, 'A');
	memcpy(shadow, p, NPAGES * ps);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPAGES / 2);
	CHECK_EQ(get(sp, "pages_sharing"), NPAGES / 2);

	int go[2], done[2];

	CHECK(pipe(go) == 0 && pipe(done) == 0);
	pid_t pid = make_child(how);

	CHECK(pid >= 0);
	if (pid == 0) {
		char c;

		/* no handler ran: the handle is still the parent's */
		long v;

		if (samepage_get(sp, "pages_shared", &v) != -ECHILD)
			_exit(3);
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		int bad = compare(p, shadow, "child");

		if (write(done[1], "x", 1) != 1)
			_exit(5);
		_exit(bad ? 1 : 0);
	}
	/* the parent writes its copies: every slot loses its last mapping here */
	fill(p, 'X');
	CHECK_EQ(samepage_scan_full(sp, 1), 0);
	CHECK_EQ(get(sp, "pages_shared"), 0);
	CHECK_EQ(get(sp, "pages_sharing"), 0);
	/* other content, merged into whatever slots the store hands out */
	char *q = samepage_alloc(sp, NPAGES * ps);

	CHECK(q);
	fill(q, 'B');
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPAGES / 2);
	/* and again: unmerge, merge (slots cycle through the free list) */
	CHECK_EQ(samepage_madvise(sp, q, NPAGES * ps, SAMEPAGE_UNMERGEABLE), 0);
	CHECK_EQ(samepage_madvise(sp, q, NPAGES * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 3), 0);
	CHECK_EQ(get(sp, "pages_shared"), NPAGES / 2);
	if (parent_closes)
		CHECK_EQ(samepage_close(sp), 0);

	char c;

	if (write(go[1], "x", 1) != 1 || read(done[0], &c, 1) != 1)
		FAIL("%s: pipe to the child broken", how_name[how]);
	int status;

	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("%s, parent %s: child failed (status %#x)", how_name[how],
		     parent_closes ? "closed" : "running", status);

	char *shadow_q = malloc(NPAGES * ps);

	CHECK(shadow_q);
	fill(shadow_q, 'B');
	if (compare(q, shadow_q, "parent q"))
		FAIL("%s: the parent's second region changed", how_name[how]);
	fill(shadow, 'X');
	if (compare(p, shadow, "parent p"))
		FAIL("%s: the parent's own writes changed", how_name[how]);
	if (!parent_closes) {
		/* the child is gone: its slots come back after one batch */
		CHECK_EQ(samepage_scan_full(sp, 1), 0);
		CHECK_EQ(get(sp, "store_quarantined"), 0);
		CHECK_EQ(get(sp, "store_pages"), get(sp, "pages_shared"));
		CHECK_EQ(samepage_close(sp), 0);
	}
	printf("%s, parent %s: child read its data\n", how_name[how],
	       parent_closes ? "closed" : "running");
	free(shadow_q);
	free(shadow);
	munmap(p, NPAGES * ps);
	munmap(q, NPAGES * ps);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

int main(void)
{
	real_test_name = "real_fork_without_atfork";
	ps = page_size();
	for (int how = 0; how < 3; how++) {
		one(how, true);
		one(how, false);
	}
	printf("fork without atfork ok\n");
	return 0;
}

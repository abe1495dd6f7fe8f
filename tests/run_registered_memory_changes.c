/* SPDX-License-Identifier: MIT */
/*
 * run_registered_memory_changes - under `samepage run`, memory the program
 * madvised MERGEABLE and the daemon merged, then changed by the program as
 * the kernel allows: mprotect (read-only, then writable again), mlock and
 * munlock, mremap (moved and grown), munmap and a new mapping at the same
 * place, MADV_DONTNEED after each: the content is always what it would be
 * without samepage (zeros after DONTNEED, also on pages moved by mremap),
 * a new mapping where registered memory was merges again once madvised.
 */
#include "run_util.h"

#define NP 64

static unsigned char want(size_t pg, size_t k)
{
	return (unsigned char)((pg % 4) * 50 + k % 7 + 1);
}

static void fill(unsigned char *p, size_t np)
{
	size_t ps = page_size();

	for (size_t pg = 0; pg < np; pg++)
		for (size_t k = 0; k < ps; k++)
			p[pg * ps + k] = want(pg, k);
}

/* pages [0, np) as filled, except those in [z0, z1): zeros */
static bool same(const unsigned char *p, size_t np, size_t z0, size_t z1, const char *what)
{
	size_t ps = page_size();

	for (size_t pg = 0; pg < np; pg++)
		for (size_t k = 0; k < ps; k++) {
			unsigned char w = pg >= z0 && pg < z1 ? 0 : want(pg, k);

			if (p[pg * ps + k] != w) {
				fprintf(stderr, "%s: page %zu byte %zu: %u, expected %u\n", what, pg, k,
					p[pg * ps + k], w);
				return false;
			}
		}
	return true;
}

static unsigned char *p;

/* one step, told by the driver once the pages are merged */
static bool step(int c)
{
	size_t ps = page_size();

	switch (c) {
	case 'p':	/* read-only: readable, unchanged; writable again */
		if (mprotect(p, NP * ps, PROT_READ) || !same(p, NP, 0, 0, "read-only"))
			return false;
		if (mprotect(p, NP * ps, PROT_READ | PROT_WRITE))
			return false;
		p[9 * ps] = want(9, 0);	/* (a write that changes nothing) */
		return same(p, NP, 0, 0, "writable again") &&
		       !madvise(p + 8 * ps, 2 * ps, MADV_DONTNEED) && same(p, NP, 8, 10, "dontneed");
	case 'l':	/* locked and unlocked */
		fill(p, NP);
		if (mlock(p, NP * ps) && errno != EPERM && errno != ENOMEM)
			return false;
		bool ok = same(p, NP, 0, 0, "mlocked");

		(void)munlock(p, NP * ps);
		return ok && same(p, NP, 0, 0, "munlocked");
	case 'r': {	/* moved and grown: the content goes along */
		unsigned char *q = mremap(p, NP * ps, 2 * NP * ps, MREMAP_MAYMOVE);

		if (q == MAP_FAILED)
			return false;
		p = q;
		fill(p + NP * ps, NP);	/* (the new half: pages NP.. as 0..) */
		if (!same(p, NP, 0, 0, "moved"))
			return false;
		if (madvise(p + 4 * ps, 4 * ps, MADV_DONTNEED))
			return false;
		if (!same(p, NP, 4, 8, "moved, dontneed"))
			return false;
		fill(p, NP);
		return true;
	}
	case 'u': {	/* unmapped, mapped anew at the same place */
		unsigned char *old = p;

		if (munmap(p, 2 * NP * ps))
			return false;
		p = mmap(old, NP * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			return false;
		if (!same(p, NP, 0, NP, "mapped anew"))
			return false;
		fill(p, NP);
		return !madvise(p, NP * ps, MADV_MERGEABLE) && has_vmflag(p, NP * ps, "uw");
	}
	case 'd':	/* all of it */
		return !madvise(p, NP * ps, MADV_DONTNEED) && same(p, NP, 0, NP, "dontneed all");
	default:
		return false;
	}
}

static int child(int cmd, int ack)
{
	size_t ps = page_size();

	p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	fill(p, NP);
	if (madvise(p, NP * ps, MADV_MERGEABLE))
		return 3;
	send_byte(ack, 'r');
	for (;;) {
		int c = recv_byte(cmd, 60000);

		if (c < 0 || c == 'q')
			return 0;
		send_byte(ack, step(c) ? 'y' : 'n');
	}
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	pid_t d = run_setup("run_registered_memory_changes", argv[0]);
	struct child c = run_child(NULL, "0", NULL);

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program did not start (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();
	const char *steps = "plrud";

	for (const char *s = steps; *s; s++) {
		if (samepage_scan_full(sp, 2))
			FAIL("scan: %s", samepage_last_error());
		long sharing = get(sp, "pages_sharing");

		printf("before '%c': pages_shared %ld pages_sharing %ld\n", *s,
		       get(sp, "pages_shared"), sharing);
		if (*s != 'd')
			CHECK(sharing >= NP - 4 - 8);	/* (4 contents; some pages dropped) */
		send_byte(c.cmd, *s);
		if (recv_byte(c.ack, 30000) != 'y')
			FAIL("step '%c': wrong content", *s);
	}
	send_byte(c.cmd, 'q');
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_registered_memory_changes\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * run_dontfork_memory_merges - under `samepage run`, memory a program marks
 * MADV_MERGEABLE and then MADV_DONTFORK, as QEMU does with guest RAM,
 * merges through the daemon (exact pages_sharing), every mapping of it
 * keeps the dc VmFlag, and no child made by fork(), _Fork() or
 * syscall(SYS_fork) has any of it mapped (its content nowhere there): while merged, after
 * MADV_DONTNEED on merged pages (they read zeros; the flag stays) and after
 * the scans that follow.  The rest of the memory keeps its content.
 */
#include "run_util.h"

#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define NP	128	/* pages: [0, SAME) one content, the rest each its own */
#define SAME	64
#define DROP	32	/* pages [0, DROP) get MADV_DONTNEED */

static unsigned char byte(size_t pg, size_t k)
{
	return pg < SAME ? (unsigned char)(k % 251 + 1) : (unsigned char)((pg * 31 + k) % 253 + 1);
}

/* Is the page at @p mapped from a file (the store) now? */
static bool maps_file(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (fd >= 0 && pread(fd, &e, 8, (off_t)((uintptr_t)p / page_size()) * 8) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return (e >> 61) & 1;
}

/* Every mapping over [p, p + len) shows VmFlag @flag. */
static bool every_vmflag(const void *p, size_t len, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long long s, e;
	bool in = false, all = true;
	uintptr_t a = (uintptr_t)p, b = a + len;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s < b && e > a;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char pat[8];

			snprintf(pat, sizeof(pat), " %s", flag);
			char *q = strstr(line, pat);

			if (!q || (q[3] != ' ' && q[3] != '\n'))
				all = false;
		}
	}
	fclose(f);
	return all;
}

static bool right(const unsigned char *p, bool dropped)
{
	size_t ps = page_size();

	for (size_t pg = 0; pg < NP; pg++)
		for (size_t k = 0; k < ps; k++)
			if (p[pg * ps + k] != (dropped && pg < DROP ? 0 : byte(pg, k)))
				return false;
	return true;
}

/* 0 if no child of any kind has a page of [p, p + len) mapped. */
static int forks(const unsigned char *p)
{
	for (int h = 0; h < 3; h++) {
		pid_t pid = h == 0 ? fork() : h == 1 ? _Fork() : (pid_t)syscall(SYS_fork);

		if (pid < 0)
			return 20;
		if (pid == 0) {
			/* nothing there, or (the child's own mappings may take the
			 * free addresses: a forked client's agent maps its views)
			 * not the parent's data, read without faulting */
			static unsigned char buf[65536];
			unsigned char vec;
			size_t ps = page_size();

			for (size_t pg = DROP; pg < NP; pg++) {
				struct iovec l = { buf, ps }, r = { (void *)(p + pg * ps), ps };

				if (mincore((void *)(p + pg * ps), ps, &vec))
					continue;
				if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != (ssize_t)ps)
					continue;
				size_t k = 0;

				while (k < ps && buf[k] == byte(pg, k))
					k++;
				if (k == ps)
					_exit(1);
			}
			_exit(0);
		}
		int st;

		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "run_dontfork_memory_merges: child %d of fork #%d: status %#x\n",
				(int)pid, h, st);
			return 21 + h;
		}
	}
	return 0;
}

static int check(const unsigned char *p, bool dropped)
{
	size_t len = NP * page_size();

	if (!right(p, dropped))
		return 10;
	if (!every_vmflag(p, len, "dc"))
		return 11;
	if (any_vmflag("mg"))
		return 12;
	(void)len;
	return forks(p);
}

static int child(int cmd, int ack)
{
	size_t ps = page_size();
	unsigned char *p = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (p == MAP_FAILED)
		return 2;
	for (size_t pg = 0; pg < NP; pg++)
		for (size_t k = 0; k < ps; k++)
			p[pg * ps + k] = byte(pg, k);
	if (madvise(p, NP * ps, MADV_MERGEABLE) || madvise(p, NP * ps, MADV_DONTFORK))
		return 3;
	if (!has_vmflag(p, NP * ps, "uw"))
		return 4;
	if ((r = check(p, false)))
		return r;
	send_byte(ack, 'r');
	if (recv_byte(cmd, 30000) != 'm')
		return 5;
	if ((r = check(p, false)))
		return 30 + r;
	/* merged now: the same content maps the store (read just now) */
	for (size_t pg = 0; pg < SAME; pg++)
		if (!maps_file(p + pg * ps))
			return 6;
	if (madvise(p, DROP * ps, MADV_DONTNEED))
		return 7;
	if ((r = check(p, true)))
		return 60 + r;
	send_byte(ack, 'y');
	if (recv_byte(cmd, 30000) != 'c')
		return 8;
	if ((r = check(p, true)))
		return 90 + r;
	send_byte(ack, 'y');
	return recv_byte(cmd, 30000) == 'q' ? 0 : 9;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	pid_t d = run_setup("run_dontfork_memory_merges", argv[0]);
	struct child c = run_child(NULL, "0", NULL);

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program failed (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();

	if (samepage_scan_full(sp, 3))
		FAIL("scan: %s", samepage_last_error());
	printf("merged: pages_shared %ld pages_sharing %ld merges_refused %ld\n",
	       get(sp, "pages_shared"), get(sp, "pages_sharing"), get(sp, "merges_refused"));
	CHECK_EQ(get(sp, "pages_shared"), 1);
	CHECK_EQ(get(sp, "pages_sharing"), SAME - 1);
	send_byte(c.cmd, 'm');
	if (recv_byte(c.ack, 30000) != 'y')
		FAIL("merged, or after MADV_DONTNEED: exit status %d (10 wrong bytes, 11 a "
		     "mapping without dc, 12 mg, 2x a child has it mapped; +30 merged, +60 "
		     "after MADV_DONTNEED)", child_wait(&c));
	if (samepage_scan_full(sp, 2))
		FAIL("scan: %s", samepage_last_error());
	printf("after MADV_DONTNEED: pages_shared %ld pages_sharing %ld\n",
	       get(sp, "pages_shared"), get(sp, "pages_sharing"));
	/* (the zeros may merge: one more KSM page at most) */
	CHECK(get(sp, "pages_sharing") >= SAME - DROP - 1);
	CHECK(get(sp, "pages_sharing") <= SAME - 1);
	send_byte(c.cmd, 'c');
	if (recv_byte(c.ack, 30000) != 'y')
		FAIL("after the scans: exit status %d (+90)", child_wait(&c));
	send_byte(c.cmd, 'q');
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_dontfork_memory_merges\n");
	return 0;
}

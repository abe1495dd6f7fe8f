/* SPDX-License-Identifier: MIT */
/*
 * real_thread_stacks_unregistered - an application that registers every
 * private anonymous mapping it has (as `samepage run --all` will) never
 * registers the stacks of the library's own threads.  If it did, a merge
 * could write-protect a page of the fault reader's stack, and the reader
 * would park on its own write with nobody left to let it go.
 *
 * The library's threads are found in /proc/self/task by their names
 * (samepage-scan, samepage-fault); the stack pointer of
 * each (blocked in a system call) comes from /proc/self/task/TID/syscall.
 * After registering everything, the mapping holding each stack pointer must
 * not carry the userfaultfd write-protect flag ("uw" in VmFlags), while the
 * application's own mappings do.
 */
#include "real_util.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/syscall.h>

/* The stack pointer of thread @tid, blocked in a system call; 0 if not. */
static unsigned long thread_sp(long tid)
{
	char path[64], buf[512];
	unsigned long sp = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
	for (int tries = 0; tries < 200 && !sp; tries++) {
		FILE *f = fopen(path, "re");

		if (!f)
			FAIL("open %s: %s", path, strerror(errno));
		if (fgets(buf, sizeof(buf), f) && strncmp(buf, "running", 7) != 0) {
			/* "nr a1 a2 a3 a4 a5 a6 sp pc" */
			unsigned long v[9];

			if (sscanf(buf, "%lu %lx %lx %lx %lx %lx %lx %lx %lx", &v[0], &v[1],
				   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 9)
				sp = v[7];
		}
		fclose(f);
		if (!sp)
			usleep(10000);
	}
	return sp;
}

/* Does the mapping holding @addr carry VmFlags "uw"?  -1: no mapping. */
static int mapping_registered(unsigned long addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[1024];
	bool in = false;
	int found = -1;

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		/* a mapping's first line starts with its (lower-case hex) range,
		 * its fields with a capitalized name */
		if (!isupper((unsigned char)line[0]) && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = addr >= s && addr < e;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, " uw") != NULL;
			in = false;
		}
	}
	fclose(f);
	return found;
}

/* Register every private, writable, anonymous mapping; returns how many. */
static int register_everything(struct samepage *sp)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned long s[4096], e[4096];
	int n = 0, done = 0;

	CHECK(f);
	while (n < 4096 && fgets(line, sizeof(line), f)) {
		char perms[8] = "", name[256] = "";
		unsigned long off, ino;
		unsigned int ma, mi;

		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %255s", &s[n], &e[n], perms, &off,
			   &ma, &mi, &ino, name) < 7)
			continue;
		if (strcmp(perms, "rw-p") || ino != 0 ||
		    (name[0] && strncmp(name, "[heap]", 6) && strncmp(name, "[stack]", 7) &&
		     strncmp(name, "[anon:", 6)))
			continue;
		n++;
	}
	fclose(f);
	for (int i = 0; i < n; i++) {
		int err = samepage_madvise(sp, (void *)s[i], e[i] - s[i], SAMEPAGE_MERGEABLE);

		if (err == 0)
			done++;
	}
	return done;
}

int main(void)
{
	real_test_name = "real_thread_stacks_unregistered";
	long self = syscall(SYS_gettid);
	struct samepage *sp = open_or_skip();
	/* the application's own: a buffer it mapped itself */
	size_t len = 64 * page_size();
	char *mine = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mine != MAP_FAILED);
	memset(mine, 1, len);

	long tids[16];
	int nt = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	CHECK(d);
	while ((de = readdir(d)) && nt < 16) {
		long tid = strtol(de->d_name, NULL, 10);
		char path[64], comm[32] = "";

		if (tid <= 0 || tid == self)
			continue;
		/* the library's threads by their names (a sanitizer has its own) */
		snprintf(path, sizeof(path), "/proc/self/task/%ld/comm", tid);
		FILE *c = fopen(path, "re");

		if (c) {
			if (!fgets(comm, sizeof(comm), c))
				comm[0] = '\0';
			fclose(c);
		}
		if (strncmp(comm, "samepage-", 9) == 0)
			tids[nt++] = tid;
	}
	closedir(d);
	if (nt < 2)
		FAIL("expected the library's scanner and fault reader threads, found %d", nt);

	int registered = register_everything(sp);

	if (registered < 1)
		FAIL("registered no mapping at all");
	CHECK_EQ(mapping_registered((unsigned long)mine), 1);
	for (int i = 0; i < nt; i++) {
		unsigned long stack = thread_sp(tids[i]);

		if (!stack)
			FAIL("thread %ld never seen blocked in a system call", tids[i]);
		int r = mapping_registered(stack);

		if (r != 0)
			FAIL("the stack of library thread %ld (sp %#lx) is %s", tids[i], stack,
			     r < 0 ? "in no mapping" : "registered (VmFlags uw)");
	}
	CHECK_EQ(samepage_close(sp), 0);
	printf("PASS %s: %d mappings registered, the stacks of %d library threads not\n",
	       real_test_name, registered, nt);
	return 0;
}

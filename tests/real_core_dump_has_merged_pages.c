/* SPDX-License-Identifier: MIT */
/*
 * real_core_dump_has_merged_pages - a core dump shows merged memory as it
 * is.  A child merges 2 * NPAIR pages (pairs of equal pages), writes one
 * of them afterwards, and aborts with RLIMIT_CORE unlimited in a
 * directory of its own.  The kernel dumps a private file mapping (a store
 * page mapped over the application's) only if it has an anon_vma, with
 * the default coredump_filter (0x33: no MAPPED_PRIVATE); every page of the
 * region must be in the core's PT_LOAD segments with exactly the content
 * the child had, and the core fits in CORE_MAX.  Skips where cores do not go to a file in the current
 * directory (core_pattern), or under a sanitizer (no cores).
 */
#include <elf.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "real_util.h"

#define NPAIR	32
#define NPG	(2 * NPAIR)
/* The library's own mappings stay out of the core (its store view spans
 * the machine's memory: 24 GB of core once); a core of this small process
 * fits in CORE_MAX, beyond which the kernel cuts it short. */
#define CORE_MAX	(256ul << 20)

static uint64_t word(int i, size_t k)
{
	return 0x7100000000000000ull | ((uint64_t)(i % NPAIR) << 24) | k;
}

static bool expected(const char *pg, int i)
{
	for (size_t k = 0; k < page_size(); k += 8) {
		uint64_t w;

		memcpy(&w, pg + k, 8);
		if (i == 1 ? (k == 0 ? w != 0x5757575757575757ull : w != word(i, k)) :
			     w != word(i, k))
			return false;
	}
	return true;
}

static void child(const char *dir, int out)
{
	struct rlimit rl = { CORE_MAX, CORE_MAX };

	if (chdir(dir) || setrlimit(RLIMIT_CORE, &rl))
		_exit(3);
	struct samepage *sp = open_or_skip();
	size_t ps = page_size();
	char *p = samepage_alloc(sp, NPG * ps);

	if (!p)
		_exit(3);
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < ps; k += 8)
			memcpy(p + i * ps + k, &(uint64_t){ word(i, k) }, 8);
	set(sp, "pages_to_scan", 100000);
	if (samepage_scan_full(sp, 3))
		_exit(4);
	(void)*(volatile char *)(p + 2 * ps);	/* (a merged page maps at its first access) */
	if (get(sp, "pages_sharing") != NPAIR ||
	    !maps_file(p + 2 * ps))
		FAIL("child: pages_sharing %ld, page 2 %s", get(sp, "pages_sharing"),
		     maps_file(p + 2 * ps) ? "a store page" : "not a store page");
	memcpy(p + ps, &(uint64_t){ 0x5757575757575757ull }, 8);	/* copied: its own now */
	uintptr_t at = (uintptr_t)p;

	if (write(out, &at, sizeof(at)) != (ssize_t)sizeof(at))
		_exit(3);
	close(out);
	abort();
}

int main(void)
{
	real_test_name = "real_core_dump_has_merged_pages";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip_test("the sanitizers' runtimes write no core dumps");
#endif
	char pattern[256] = "";
	FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");

	if (!f || !fgets(pattern, sizeof(pattern), f))
		skip_test("cannot read /proc/sys/kernel/core_pattern");
	fclose(f);
	pattern[strcspn(pattern, "\n")] = 0;
	if (strcmp(pattern, "core") != 0)
		skip_test("cores do not go to ./core here (core_pattern)");
	char dir[] = "/tmp/samepage-core-XXXXXX";
	int pfd[2];

	CHECK(mkdtemp(dir) != NULL);
	CHECK(pipe(pfd) == 0);
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		child(dir, pfd[1]);
	}
	close(pfd[1]);
	uintptr_t at = 0;
	ssize_t got = read(pfd[0], &at, sizeof(at));
	int st;

	CHECK_EQ(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		skip_test("the child could not use userfaultfd");
	if (got != (ssize_t)sizeof(at))
		FAIL("the child did not merge (status %#x)", st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	char path[300];

	snprintf(path, sizeof(path), "%s/core", dir);
	if (!WCOREDUMP(st))
		skip_test("no core was written (RLIMIT_CORE or the file system refused)");
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0);
	struct stat sb;

	CHECK(fstat(fd, &sb) == 0);
	char *core = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);

	CHECK(core != MAP_FAILED);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)core;

	CHECK(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_CORE);
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(core + eh->e_phoff);
	size_t ps = page_size();
	int missing = 0, wrong = 0;

	for (int i = 0; i < NPG; i++) {
		uint64_t va = at + (uint64_t)i * ps;
		const char *pg = NULL;

		for (int k = 0; k < eh->e_phnum && !pg; k++)
			if (ph[k].p_type == PT_LOAD && va >= ph[k].p_vaddr &&
			    va + ps <= ph[k].p_vaddr + ph[k].p_filesz) {
				uint64_t at_off = ph[k].p_offset + (va - ph[k].p_vaddr);

				if (at_off + ps > (uint64_t)sb.st_size)
					FAIL("the core is cut short: page %d at %#llx, %lld bytes",
					     i, (unsigned long long)at_off, (long long)sb.st_size);
				pg = core + at_off;
			}
		if (!pg) {
			if (!missing++)
				fprintf(stderr, "page %d (%#llx) is not in the core\n", i,
					(unsigned long long)va);
		} else if (!expected(pg, i)) {
			if (!wrong++)
				fprintf(stderr, "page %d reads other bytes in the core\n", i);
		}
	}
	printf("%s: core of %lld bytes; %d pages, %d not in the core, %d wrong\n",
	       real_test_name, (long long)sb.st_size, NPG, missing, wrong);
	munmap(core, (size_t)sb.st_size);
	close(fd);
	unlink(path);
	rmdir(dir);
	CHECK_EQ(missing, 0);
	CHECK_EQ(wrong, 0);
	printf("PASS %s\n", real_test_name);
	return 0;
}

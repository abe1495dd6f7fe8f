/* SPDX-License-Identifier: MIT */
/*
 * real_heap_registered_no_deadlock - the application registers its brk
 * heap (where the library's own state lived once), plus a zero-filled 16 MiB
 * buffer, turns the scanner on with sleep_millisecs=0 and keeps setting
 * knobs: every call returns (it used to hang for ever: the scanner wrote
 * its own state into a heap page it had write-protected and parked on
 * it).  The heap's data is intact afterwards.  Run in a child with a
 * deadline, so that a hang is a failure, not a stuck test.
 */
#include "real_util.h"

#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define BLOCKS 2048

static int child(void)
{
	size_t ps = page_size();
	unsigned char *blk[BLOCKS];

	mallopt(M_MMAP_THRESHOLD, 64 << 20);	/* keep everything in brk */
	for (int i = 0; i < BLOCKS; i++) {
		blk[i] = malloc(ps);
		CHECK(blk[i]);
		memset(blk[i], i % 8, ps);
	}
	struct samepage *sp = open_or_skip();
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned long hs = 0, he = 0;

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		/* (the heap may be several mappings: take them all) */
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &s, &e) == 2) {
			if (!hs || s < hs)
				hs = s;
			if (e > he)
				he = e;
		}
	}
	fclose(f);
	if (he <= hs || (uintptr_t)blk[0] < hs || (uintptr_t)blk[0] >= he) {
		printf("SKIP real_heap_registered_no_deadlock: malloc does not use the brk "
		       "heap here (a sanitizer's allocator)\n");
		exit(77);
	}
	CHECK_EQ(samepage_madvise(sp, (void *)hs, he - hs, SAMEPAGE_MERGEABLE), 0);
	char *z = samepage_alloc(sp, 16 << 20);

	CHECK(z);
	memset(z, 0, 16 << 20);
	set(sp, "sleep_millisecs", 0);
	set(sp, "run", 1);
	for (int k = 0; k < 400; k++) {
		set(sp, "pages_to_scan", 100 + (unsigned long)(k % 7) * 1000);
		for (int i = k % 16; i < BLOCKS; i += 16)
			blk[i][k % ps] = (unsigned char)(i % 8);	/* same bytes */
		struct timespec ts = { 0, 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	CHECK(get(sp, "full_scans") >= 1);
	CHECK_EQ(samepage_close(sp), 0);
	for (int i = 0; i < BLOCKS; i++)
		for (size_t j = 0; j < ps; j += 7)
			if (blk[i][j] != i % 8)
				FAIL("heap block %d byte %zu reads %#x, expected %#x", i, j,
				     blk[i][j], i % 8);
	for (size_t j = 0; j < (16u << 20); j += 4093)
		CHECK_EQ(z[j], 0);
	return 0;
}

int main(void)
{
	real_test_name = "real_heap_registered_no_deadlock";
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0)
		_exit(child());
	for (int t = 0; t < 600; t++) {		/* 60 s */
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
				return 77;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				FAIL("child failed (status %#x)", st);
			printf("PASS real_heap_registered_no_deadlock\n");
			return 0;
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	FAIL("samepage calls did not return within 60 s (deadlock)");
}

/* SPDX-License-Identifier: MIT */
/*
 * The engine (src/core) must reach memory only through the backend: its
 * object files may not reference system calls, stdio, the environment or a
 * clock.  Checked with `nm -u` on the core's objects in the build tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const forbidden[] = {
	"mmap", "munmap", "mremap", "mprotect", "madvise", "ioctl", "open", "open64",
	"openat", "close", "read", "write", "pread", "pwrite", "syscall", "fork",
	"printf", "fprintf", "sprintf", "snprintf", "vsnprintf", "puts", "fputs",
	"fopen", "fwrite", "perror", "getenv", "secure_getenv", "clock_gettime",
	"gettimeofday", "time", "nanosleep", "usleep", "sleep", "pthread_create",
	"move_pages", "mbind", "userfaultfd", "memfd_create", "fallocate", "abort",
	"exit", "_exit", "signal", "sigaction", "rand", "random", NULL,
};

int main(void)
{
	const char *build = getenv("SAMEPAGE_BUILD_DIR");
	char cmd[1024], sym[256];
	int objects = 0, bad = 0;
	FILE *p;

	if (!build) {
		fprintf(stderr, "SAMEPAGE_BUILD_DIR not set (run through ctest)\n");
		return 77;
	}
	snprintf(cmd, sizeof(cmd),
		 "for f in $(find '%s/CMakeFiles/samepage_core.dir' -name '*.o'); do "
		 "echo OBJ; nm -u \"$f\"; done", build);
	p = popen(cmd, "r");
	if (!p) {
		perror("popen");
		return 1;
	}
	while (fscanf(p, "%255s", sym) == 1) {
		char *at;
		int i;

		if (!strcmp(sym, "OBJ")) {
			objects++;
			continue;
		}
		if (!strcmp(sym, "U"))
			continue;
		at = strchr(sym, '@');
		if (at)
			*at = '\0';
		for (i = 0; forbidden[i]; i++) {
			if (!strcmp(sym, forbidden[i])) {
				printf("core references forbidden symbol: %s\n", sym);
				bad++;
			}
		}
		/* Sanitizer builds add __asan_* etc.; anything else starting with
		 * __ is the compiler's own. */
	}
	pclose(p);
	if (objects < 5) {
		printf("found only %d core objects under %s: build layout changed?\n", objects, build);
		return 1;
	}
	printf("%d core objects checked, %d forbidden references\n", objects, bad);
	return bad ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * library.c - libsamepage in an application, every error checked.
 *
 * Allocates 32 MiB of mergeable memory, fills it with 16 different page
 * images (so 32 shared pages hold the content of 8192: at most
 * max_page_sharing = 256 mappings per shared page), lets the library's scanner
 * thread merge it, waits for the merge with a timeout, shows the memory
 * saved, writes to a merged page (the kernel copies it) and gives everything
 * back.
 *
 *   cc library.c $(pkg-config --cflags --libs samepage) -o library
 *
 * Exit status: 0 done, 1 a failure, 77 this process may not use
 * userfaultfd (the way the tests count a skip).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <samepage.h>

#define MIB		(1024 * 1024)
#define LEN		(32 * MIB)
#define IMAGES		16
#define TIMEOUT_S	60

/* Every samepage call returns 0 or a negative errno; the words are in
 * samepage_last_error(). */
static int failed(const char *call, int err)
{
	fprintf(stderr, "library: %s: %s\n  (%s)\n", call, strerror(-err),
		samepage_last_error());
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait until the scanner thread has completed @nscans more full scans
 * (two merge whatever can merge), or @timeout_s seconds passed. */
static int wait_full_scans(struct samepage *sp, long nscans, double timeout_s)
{
	long start, scans;
	double deadline = now_s() + timeout_s;
	int err = samepage_get(sp, "full_scans", &start);

	if (err)
		return failed("samepage_get(full_scans)", err);
	for (;;) {
		err = samepage_get(sp, "full_scans", &scans);
		if (err)
			return failed("samepage_get(full_scans)", err);
		if (scans - start >= nscans)
			return 0;
		if (now_s() > deadline) {
			fprintf(stderr, "library: %ld of %ld full scans after %.0f s\n",
				scans - start, nscans, timeout_s);
			return 1;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	}
}

static unsigned char image_byte(size_t page, size_t off)
{
	return (unsigned char)((page % IMAGES) * 31 + off % 251);
}

int main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	long shared, sharing;
	struct samepage *sp;
	unsigned char *mem;
	int err;

	err = samepage_open(&sp, 0);
	if (err) {
		fprintf(stderr, "library: samepage_open: %s\n  (%s)\n", strerror(-err),
			samepage_last_error());
		/* not permitted or not supported here (flags is 0, so EINVAL
		 * too means a missing kernel feature): see samepage(3) */
		return err == -EPERM || err == -EACCES || err == -ENOENT || err == -ENOSYS ||
		       err == -EINVAL || err == -EOPNOTSUPP ? 77 : 1;
	}

	mem = samepage_alloc(sp, LEN);	/* zero-filled, registered mergeable */
	if (!mem) {
		failed("samepage_alloc", -errno);
		samepage_close(sp);
		return 1;
	}
	for (size_t i = 0; i < LEN / ps; i++)
		for (size_t k = 0; k < ps; k++)
			mem[i * ps + k] = image_byte(i, k);

	/*
	 * Merge quickly at first (no pause between batches of 4096 pages),
	 * then go on gently in the background with the kernel's defaults
	 * (100 pages every 20 ms), which is what an application would keep.
	 */
	if ((err = samepage_set(sp, "pages_to_scan", 4096)) ||
	    (err = samepage_set(sp, "sleep_millisecs", 0)) ||
	    (err = samepage_set(sp, "run", 1)))
		return failed("samepage_set", err);
	if (wait_full_scans(sp, 2, TIMEOUT_S))
		return 1;
	if ((err = samepage_set(sp, "pages_to_scan", 100)) ||
	    (err = samepage_set(sp, "sleep_millisecs", 20)))
		return failed("samepage_set", err);

	if ((err = samepage_get(sp, "pages_shared", &shared)) ||
	    (err = samepage_get(sp, "pages_sharing", &sharing)))
		return failed("samepage_get", err);
	printf("library: %zu MiB in %zu pages of %d images: pages_shared %ld,"
	       " pages_sharing %ld (%zu MiB saved)\n", (size_t)LEN / MIB, LEN / ps,
	       IMAGES, shared, sharing, (size_t)sharing * ps / MIB);
	if (sharing <= 0) {
		fprintf(stderr, "library: nothing merged after two full scans\n");
		return 1;
	}

	/* Merged memory reads and writes as before; a write gets a copy. */
	for (size_t i = 0; i < LEN / ps; i++)
		for (size_t k = 0; k < ps; k++)
			if (mem[i * ps + k] != image_byte(i, k)) {
				fprintf(stderr, "library: page %zu byte %zu changed\n", i, k);
				return 1;
			}
	mem[0] ^= 1;
	if (mem[ps * IMAGES] != image_byte(0, 0)) {
		fprintf(stderr, "library: a write reached another page\n");
		return 1;
	}

	/* Unmerge and unmap; then stop the engine (every page private). */
	if ((err = samepage_free(sp, mem, LEN)))
		return failed("samepage_free", err);
	if ((err = samepage_close(sp)))
		return failed("samepage_close", err);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * qemu-guest-init - the /init of the small QEMU guests of
 * scripts/qemu-run-compare.sh and tests/cli/run_qemu_guests.sh: a guest
 * that keeps checking its own memory and says so on the serial console.
 *
 * Built static.  It takes the console, loads the kernel modules listed in
 * /mods/order (virtio, virtio_pci, virtio_balloon: the balloon), fills a
 * buffer of sp_mb MiB (kernel command line; default 32) with pages that
 * repeat (64 templates: three pages of four) and pages of their own (the
 * fourth), the same in every guest of one sp_seed, and keeps a checksum of
 * every page.  Then once a second ("heartbeat") it rewrites one page with
 * new content, checks every page against its checksum and prints
 *     sp-guest: hb T ok PAGES memtotal KB
 * or, for each page that differs,
 *     sp-guest: BAD page I tick T
 * With sp_fresh=M, every fifth heartbeat it also maps M MiB afresh, checks
 * that every byte reads zero (with init_on_free=1 and the balloon's free
 * page reporting the guest kernel relies on the host's MADV_DONTNEED giving
 * zeros back), dirties it and unmaps it again:
 *     sp-guest: fresh T ok M     or    sp-guest: BAD fresh T offset O
 * It never ends (the host stops the guest).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define TEMPLATES 64u

static uint64_t seed = 1;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Page @i's content at generation @gen (0: as filled). */
static void fill(uint64_t *p, uint64_t i, uint64_t gen)
{
	uint64_t key = gen ? mix(seed ^ (i << 20) ^ gen) :
		       (i % 4 != 3) ? mix(seed * 7 + (i % TEMPLATES)) : mix(seed ^ (i << 8) ^ 3);

	for (unsigned w = 0; w < WORDS; w++)
		p[w] = mix(key + w);
}

static uint64_t sum(const uint64_t *p)
{
	uint64_t h = 1469598103934665603ull;

	for (unsigned w = 0; w < WORDS; w++)
		h = (h ^ p[w]) * 1099511628211ull;
	return h;
}

static void take_console(void)
{
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mkdir("/proc", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static void load_modules(void)
{
	FILE *f = fopen("/mods/order", "r");
	char name[256], path[300];

	if (!f)
		return;
	while (fscanf(f, "%255s", name) == 1) {
		snprintf(path, sizeof(path), "/mods/%s", name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
			printf("sp-guest: module %s: %s\n", name, strerror(errno));
		else
			printf("sp-guest: module %s loaded\n", name);
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
}

static long memtotal_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	long kb = -1;

	if (f) {
		if (fscanf(f, "MemTotal: %ld kB", &kb) != 1)
			kb = -1;
		fclose(f);
	}
	return kb;
}

static unsigned long param(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

int main(void)
{
	take_console();
	seed = param("sp_seed", 1);
	size_t mb = param("sp_mb", 32), fresh = param("sp_fresh", 0);
	size_t npages = mb * (1u << 20) / PAGE;

	load_modules();
	uint64_t *buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *want = calloc(npages, sizeof(*want));

	if (buf == MAP_FAILED || !want) {
		printf("sp-guest: BAD no memory for %zu MiB\n", mb);
		for (;;)
			pause();
	}
	for (size_t i = 0; i < npages; i++) {
		fill(buf + i * WORDS, i, 0);
		want[i] = sum(buf + i * WORDS);
	}
	printf("sp-guest: ready pages %zu seed %llu\n", npages, (unsigned long long)seed);
	for (uint64_t t = 1;; t++) {
		sleep(1);
		size_t p = (size_t)(mix(t ^ seed) % npages);
		unsigned bad = 0;

		fill(buf + p * WORDS, p, t);
		want[p] = sum(buf + p * WORDS);
		for (size_t i = 0; i < npages; i++) {
			if (sum(buf + i * WORDS) != want[i] && bad++ < 8)
				printf("sp-guest: BAD page %zu tick %llu\n", i,
				       (unsigned long long)t);
		}
		if (!bad)
			printf("sp-guest: hb %llu ok %zu memtotal %ld\n", (unsigned long long)t,
			       npages, memtotal_kb());
		if (fresh && t % 5 == 0) {
			size_t len = fresh << 20;
			uint64_t *f = mmap(NULL, len, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
			size_t off = len;

			if (f == MAP_FAILED) {
				printf("sp-guest: fresh %llu no memory\n", (unsigned long long)t);
				continue;
			}
			for (size_t w = 0; w < len / 8 && off == len; w++)
				if (f[w])
					off = w * 8;
			if (off == len)
				printf("sp-guest: fresh %llu ok %zu\n", (unsigned long long)t, fresh);
			else
				printf("sp-guest: BAD fresh %llu offset %zu\n",
				       (unsigned long long)t, off);
			for (size_t w = 0; w < len / 8; w += 512)
				f[w] = mix(t + w);	/* dirty: freed, zeroed, reported */
			munmap(f, len);
		}
	}
}

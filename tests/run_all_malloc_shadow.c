/* SPDX-License-Identifier: MIT */
/*
 * run_all_malloc_shadow - `samepage run --all` on a program that allocates,
 * frees, reallocates and reuses memory through malloc (small chunks in the
 * brk heap, large ones mmap'd and munmap'd by glibc itself, calloc, trims),
 * while the daemon merges it: every byte is checked against a shadow kept
 * as a checksum per block (the seed is printed, SAMEPAGE_SEED repeats one).
 * The memory is found by the rescans of the maps: nothing here asks.
 */
#include <malloc.h>

#include "run_util.h"

#define SLOTS	256
#define SECONDS	4

struct blk {
	unsigned char *p;
	size_t len;
	unsigned tmpl;		/* the content: template of the block */
	unsigned salt;		/* 0: template only (merges); else unique */
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned char byte_at(const struct blk *b, size_t k)
{
	unsigned char v = (unsigned char)(b->tmpl * 37 + (k >> 9));

	if (b->salt && (k & 511) == 0)
		v ^= (unsigned char)(b->salt + (k >> 12));
	return v;
}

static void fill(struct blk *b, size_t from)
{
	for (size_t k = from; k < b->len; k++)
		b->p[k] = byte_at(b, k);
}

static bool check(const struct blk *b, size_t upto, uint64_t seed, long op)
{
	for (size_t k = 0; k < upto; k++) {
		if (b->p[k] != byte_at(b, k)) {
			fprintf(stderr, "seed %llu op %ld: block of %zu bytes, byte %zu: %u, "
				"expected %u\n", (unsigned long long)seed, op, b->len, k, b->p[k],
				byte_at(b, k));
			return false;
		}
	}
	return true;
}

static int child(int cmd, int ack)
{
	const char *s = getenv("SAMEPAGE_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	static struct blk b[SLOTS];
	long ops = 0;

	printf("seed %llu\n", (unsigned long long)seed);
	fflush(stdout);
	rng_state = seed | 1;
	if (prctl(68 /* PR_GET_MEMORY_MERGE */, 0, 0, 0, 0) != 1) {
		fprintf(stderr, "PR_GET_MEMORY_MERGE is not 1 under --all\n");
		return 3;
	}
	send_byte(ack, 'r');
	uint64_t end = now_ms() + SECONDS * 1000;
	bool registered = false;

	while (now_ms() < end) {
		struct blk *x = &b[rnd() % SLOTS];
		unsigned what = (unsigned)(rnd() % 100);

		ops++;
		if (x->p && !check(x, x->len, seed, ops))
			return 1;
		if (x->p && what < 35) {
			free(x->p);
			x->p = NULL;
		} else if (x->p && what < 55) {
			/* grow or shrink, the content up to the smaller length kept */
			size_t nl = 4096 + rnd() % (what < 45 ? 300000 : 20000);
			unsigned char *q = realloc(x->p, nl);

			if (!q)
				return 2;
			x->p = q;
			size_t keep = nl < x->len ? nl : x->len;

			x->len = nl;
			if (!check(x, keep, seed, ops))
				return 1;
			fill(x, keep);
		} else if (!x->p) {
			size_t len = (rnd() % 4 == 0) ? 131072 + rnd() % 400000 : 64 + rnd() % 60000;

			x->tmpl = (unsigned)(rnd() % 6);
			x->salt = (rnd() % 3 == 0) ? (unsigned)(rnd() % 250 + 1) : 0;
			x->len = len;
			if (what < 80) {
				x->p = calloc(1, len);
				if (!x->p)
					return 2;
				for (size_t k = 0; k < len; k++)
					if (x->p[k]) {
						fprintf(stderr, "seed %llu op %ld: calloc'd byte %zu is %u\n",
							(unsigned long long)seed, ops, k, x->p[k]);
						return 1;
					}
			} else {
				x->p = malloc(len);
				if (!x->p)
					return 2;
			}
			fill(x, 0);
		}
		if (ops % 500 == 0) {
			(void)malloc_trim(0);	/* (DONTNEED inside glibc) */
			registered = registered || any_vmflag("uw");
		}
		if (ops % 1000 == 0 && any_vmflag("mg")) {
			fprintf(stderr, "a mapping shows the kernel's mg flag\n");
			return 4;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (b[i].p && !check(&b[i], b[i].len, seed, ops))
			return 1;
	printf("%ld operations, all content right\n", ops);
	if (!registered) {
		fprintf(stderr, "no memory was ever registered (no uw VmFlag seen)\n");
		return 5;
	}
	send_byte(ack, 'y');
	(void)recv_byte(cmd, 30000);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	pid_t d = run_setup("run_all_malloc_shadow", argv[0]);
	const char *opts[] = { "--all", NULL };
	struct child c = run_child(opts, "0", "SAMEPAGE_RUN_RESCAN_MS=50");

	if (recv_byte(c.ack, 30000) != 'r')
		FAIL("the program did not start (exit status %d)", child_wait(&c));
	struct samepage *sp = connect_daemon();
	long most = 0;

	for (;;) {
		struct pollfd p = { .fd = c.ack, .events = POLLIN };

		if (poll(&p, 1, 0) == 1)
			break;
		if (samepage_scan(sp, 2000))
			FAIL("scan: %s", samepage_last_error());
		long v = get(sp, "pages_sharing") + get(sp, "pages_shared");

		if (v > most)
			most = v;
		usleep(20000);
	}
	int r = recv_byte(c.ack, 30000);

	printf("most pages merged meanwhile: %ld\n", most);
	if (r != 'y')
		FAIL("the program failed: exit status %d", child_wait(&c));
	CHECK(most > 0);
	send_byte(c.cmd, 'q');
	CHECK_EQ(child_wait(&c), 0);
	samepage_close(sp);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_all_malloc_shadow\n");
	return 0;
}

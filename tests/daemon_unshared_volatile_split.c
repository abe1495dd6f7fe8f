/* SPDX-License-Identifier: MIT */
/*
 * daemon_unshared_volatile_split - pages_unshared and pages_volatile under
 * the daemon are exactly the kernel's, full scan by full scan: two clients,
 * 512 pages each, the first half 8 contents found in both (pages_shared 8,
 * pages_sharing 504), the second half unique.  The kernel's rule:
 * pages_unshared = rmap items in an unstable tree (inserted this full scan,
 * or the previous one and not visited again yet), pages_volatile = rmap
 * items - shared - sharing - unshared.  With smart_scan=1 a unique page is
 * skipped on its 5th, 7th, 8th, 10th-12th... visits, and a skipped page
 * leaves the tree (volatile until its next visit), so the split swings
 * between full scans; with smart_scan=0 it settles at 512 unshared.
 *
 * Each full scan is one batch of the scanner (pages_to_scan covers every
 * page, and a batch ends with its full scan), sleep_millisecs between
 * batches: the counters are read while the scanner sleeps.
 *
 * SAMEPAGE_SPLIT_KERNEL=1 runs the same against the kernel's KSM (root,
 * under the exclusive flock on /tmp/samepage-kernel-ksm.lock, knobs
 * restored) and prints what it gives: that is how the values below were
 * measured (Linux 6.18, x86_64, 4 KiB pages).
 */
#include "daemon_util.h"

#include <sys/file.h>

#define NPROC 2
#define NPG 512
#define NSCANS 8

struct split {
	long shared, sharing, unshared, volatil;
};

/* [smart_scan][full scan - 1] */
static const struct split want[2][NSCANS] = {
	{	/* smart_scan=0 */
		{ 0, 0, 0, 1024 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 },
		{ 8, 504, 512, 0 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 },
	},
	{	/* smart_scan=1 */
		{ 0, 0, 0, 1024 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 }, { 8, 504, 512, 0 },
		{ 8, 504, 0, 512 }, { 8, 504, 512, 0 }, { 8, 504, 0, 512 }, { 8, 504, 0, 512 },
	},
};

static bool kernel;
static struct samepage *ctl;

static void fill(char *m, int idx)
{
	for (size_t i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			*(uint64_t *)(m + i * page_size() + k) =
				i < NPG / 2 ? (i % 8) * 1000003 + k :
				(uint64_t)(idx + 1) * 0x100000000ull + i * 7777 + k;
}

static void client(int cmd, int ack, int idx)
{
	struct samepage *sp = NULL;
	size_t len = NPG * page_size();
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(m != MAP_FAILED);
	fill(m, idx);
	if (kernel) {
		CHECK(madvise(m, len, MADV_MERGEABLE) == 0);
	} else {
		sp = connect_daemon();
		CHECK_EQ(samepage_madvise(sp, m, len, SAMEPAGE_MERGEABLE), 0);
	}
	send_byte(ack, 'r');
	(void)recv_byte(cmd, 600000);
	char *copy = malloc(len);

	CHECK(copy);
	fill(copy, idx);
	if (memcmp(m, copy, len))
		FAIL("process %d: its memory changed", idx);
	if (sp)
		CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

static long kget(const char *name)
{
	char path[128];
	long v = -1;

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	FILE *f = fopen(path, "r");

	if (!f || fscanf(f, "%ld", &v) != 1)
		FAIL("cannot read %s", path);
	fclose(f);
	return v;
}

static void kset(const char *name, long v)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld", v) < 0 || fclose(f))
		FAIL("cannot write %ld to %s: %s", v, path, strerror(errno));
}

static long val(const char *name)
{
	return kernel ? kget(name) : get(ctl, name);
}

static void knob(const char *name, long v)
{
	if (kernel)
		kset(name, v);
	else
		set(ctl, name, (unsigned long)v);
}

/* Full scans with @smart; false if a value differed. */
static bool round_of(int smart)
{
	bool ok = true;

	knob("run", 2);
	knob("smart_scan", smart);
	knob("pages_to_scan", 4 * NPROC * NPG);
	knob("sleep_millisecs", 400);
	long start = val("full_scans");

	knob("run", 1);
	for (int s = 0; s < NSCANS; s++) {
		uint64_t t0 = now_ms();

		while (val("full_scans") < start + s + 1) {
			if (now_ms() - t0 > 60000)
				FAIL("no full scan within 60 s");
			usleep(1000);
		}
		struct split g = {
			val("pages_shared"), val("pages_sharing"), val("pages_unshared"),
			val("pages_volatile"),
		};
		const struct split *w = &want[smart][s];
		bool same = g.shared == w->shared && g.sharing == w->sharing &&
			    g.unshared == w->unshared && g.volatil == w->volatil;

		printf("smart_scan=%d, full scan %d: pages_shared %ld, pages_sharing %ld, "
		       "pages_unshared %ld, pages_volatile %ld%s\n", smart, s + 1, g.shared,
		       g.sharing, g.unshared, g.volatil,
		       kernel || same ? "" : "   <- differs from the kernel's");
		ok = ok && same;
	}
	knob("run", 2);
	return ok;
}

static const char *saved_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "smart_scan", NULL,
};

int main(void)
{
	const char *env = getenv("SAMEPAGE_SPLIT_KERNEL");
	long saved[8];
	int lock = -1;
	pid_t dpid = 0;

	kernel = env && *env == '1';
	if (kernel) {
		if (access("/sys/kernel/mm/ksm/run", W_OK))
			skip("daemon_unshared_volatile_split", "the kernel's KSM needs root");
		lock = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		CHECK(lock >= 0 && flock(lock, LOCK_EX) == 0);
		for (int i = 0; saved_names[i]; i++)
			saved[i] = kget(saved_names[i]);
	} else {
		need_uffd("daemon_unshared_volatile_split");
		daemon_socket();
		dpid = daemon_start();
	}
	struct child ch[NPROC];

	for (int i = 0; i < NPROC; i++)
		ch[i] = child_start(client, i);
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	if (!kernel)
		ctl = connect_daemon();
	bool ok = round_of(0);

	ok = round_of(1) && ok;
	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'x');
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(child_wait(&ch[i]), 0);
	if (kernel) {
		kset("run", 2);
		for (int i = 1; saved_names[i]; i++)
			kset(saved_names[i], saved[i]);
		kset("run", saved[0]);
		printf("(the kernel's values; knobs restored)\n");
		return 0;
	}
	CHECK_EQ(samepage_close(ctl), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	if (!ok)
		FAIL("the split differs from the kernel's (above)");
	printf("PASS daemon_unshared_volatile_split\n");
	return 0;
}

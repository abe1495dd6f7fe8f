/* SPDX-License-Identifier: MIT */
/*
 * daemon_ksm01_counters - LTP ksm01's setup (testcases/kernel/mem/ksm,
 * create_same_memory) with three clients of one daemon: three processes,
 * three regions each, filled in four steps
 *     process 0: c c d d
 *     process 1: a b d d (the last byte of its last region 'e' in step 4)
 *     process 2: a a d d
 * with run=1, pages_to_scan = every page, sleep_millisecs=0 and
 * max_page_sharing = every page; after each step three full scans, then the
 * counters with run=0; then run=2 and run=0.  The counters must be exactly
 * the kernel's.
 *
 * SAMEPAGE_KSM01_KERNEL=1 runs the same steps with madvise(MADV_MERGEABLE)
 * against the kernel's KSM (/sys/kernel/mm/ksm, root) and prints what it
 * gives: that is how the expected values below were measured (Linux 6.18,
 * x86_64, 4 KiB pages, 2 vCPUs, under the exclusive flock on
 * /tmp/samepage-kernel-ksm.lock, every knob restored afterwards):
 *     step 1: pages_shared 2, pages_sharing 574, pages_unshared 0, pages_volatile 0
 *     step 2: 3, 573, 0, 0
 *     step 3: 1, 575, 0, 0
 *     step 4: 1, 574, 1, 0  (three runs, all alike; with two full scans and
 *             smart_scan=1 the kernel gave 1, 574, 0, 1 or 1, 573, 0, 2)
 *     run=2:  0, 0, 0, 0;  run=0: 0, 0, 0, 0
 * (LTP's own expectations, in pages: 2, N-2; 3, N-3; 1, N-1; 1, N-2 with 1
 * unshared; N = 3 * 3 * 64 = 576.)
 */
#include "daemon_util.h"

#include <sys/file.h>

#define NPROC	3
#define NREG	3
#define REGPAGES 64
#define NPAGES	(NPROC * NREG * REGPAGES)

static const char data[NPROC][4] = {
	{ 'c', 'c', 'd', 'd' },
	{ 'a', 'b', 'd', 'd' },
	{ 'a', 'a', 'd', 'd' },
};

static bool kernel;

struct expect {
	long shared, sharing, unshared, volatil;
};

static const struct expect steps[4] = {
	{ 2, NPAGES - 2, 0, 0 },
	{ 3, NPAGES - 3, 0, 0 },
	{ 1, NPAGES - 1, 0, 0 },
	{ 1, NPAGES - 2, 1, 0 },
};

static void fill(char **reg, int idx, int step)
{
	size_t len = REGPAGES * page_size();

	for (int r = 0; r < NREG; r++)
		memset(reg[r], data[idx][step], len);
	if (idx == 1 && step == 3)
		reg[NREG - 1][len - 1] = 'e';
}

static void verify(char **reg, int idx, int step)
{
	size_t len = REGPAGES * page_size();

	for (int r = 0; r < NREG; r++)
		for (size_t i = 0; i < len; i++) {
			char want = idx == 1 && step == 3 && r == NREG - 1 && i == len - 1 ?
				    'e' : data[idx][step];

			if (reg[r][i] != want)
				FAIL("process %d step %d: region %d byte %zu is '%c', not '%c'",
				     idx, step, r, i, reg[r][i], want);
		}
}

static void child(int cmd, int ack, int idx)
{
	struct samepage *sp = NULL;
	char *reg[NREG];
	size_t len = REGPAGES * page_size();

	if (!kernel)
		sp = connect_daemon();
	for (int r = 0; r < NREG; r++) {
		reg[r] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
		CHECK(reg[r] != MAP_FAILED);
		if (kernel)
			CHECK(madvise(reg[r], len, MADV_MERGEABLE) == 0);
		else
			CHECK_EQ(samepage_madvise(sp, reg[r], len, SAMEPAGE_MERGEABLE), 0);
	}
	send_byte(ack, 'r');
	for (int step = 0; step < 4; step++) {
		if (recv_byte(cmd, 120000) != 'g')
			_exit(1);
		if (step)
			verify(reg, idx, step - 1);
		fill(reg, idx, step);
		send_byte(ack, 'f');
	}
	if (recv_byte(cmd, 120000) != 'x')
		_exit(1);
	verify(reg, idx, 3);
	if (sp)
		CHECK_EQ(samepage_close(sp), 0);
	_exit(0);
}

/* ------------------------------------------------------------------------
 * The two worlds: the kernel's sysfs, or the daemon through a client.
 * --------------------------------------------------------------------- */
static struct samepage *ctl;

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

/*
 * LTP waits for two full scans; the scan in progress then may or may not
 * visit a page written in the step again, so the page written last is
 * seen once (volatile) or twice (unshared), by the kernel as by samepage.
 * Three make it twice for certain (and smart_scan=0, as LTP sets it, never
 * skips it).
 */
static void full_scans(void)
{
	long start = val("full_scans");
	uint64_t t0 = now_ms();

	while (val("full_scans") < start + 3) {
		if (now_ms() - t0 > 120000)
			FAIL("no three full scans within 120 s");
		usleep(2000);
	}
}

static void check(const char *what, const struct expect *e)
{
	long run = val("run");

	knob("run", 0);	/* (LTP reads with the scanner stopped) */
	long sh = val("pages_shared"), sg = val("pages_sharing");
	long un = val("pages_unshared"), vo = val("pages_volatile");

	printf("%s: pages_shared %ld, pages_sharing %ld, pages_unshared %ld, "
	       "pages_volatile %ld\n", what, sh, sg, un, vo);
	if (!kernel) {
		CHECK_EQ(sh, e->shared);
		CHECK_EQ(sg, e->sharing);
		CHECK_EQ(un, e->unshared);
		CHECK_EQ(vo, e->volatil);
	}
	knob("run", run);
}

static const char *saved_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "max_page_sharing", "smart_scan", NULL,
};

int main(void)
{
	const char *env = getenv("SAMEPAGE_KSM01_KERNEL");
	long saved[8];
	int lock = -1;
	pid_t dpid = 0;

	kernel = env && *env == '1';
	if (kernel) {
		if (access("/sys/kernel/mm/ksm/run", W_OK))
			skip("daemon_ksm01_counters", "the kernel's KSM needs root");
		lock = open("/tmp/samepage-kernel-ksm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		CHECK(lock >= 0 && flock(lock, LOCK_EX) == 0);
		for (int i = 0; saved_names[i]; i++)
			saved[i] = kget(saved_names[i]);
	} else {
		need_uffd("daemon_ksm01_counters");
		daemon_socket();
		dpid = daemon_start();
	}
	struct child ch[NPROC];

	for (int i = 0; i < NPROC; i++)
		ch[i] = child_start(child, i);
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(recv_byte(ch[i].ack, 30000), 'r');
	if (!kernel)
		ctl = connect_daemon();

	knob("run", 2);
	knob("smart_scan", 0);	/* (as LTP's ksm tests set it) */
	knob("max_page_sharing", NPAGES);
	knob("run", 1);
	knob("pages_to_scan", NPAGES);
	knob("sleep_millisecs", 0);
	for (int step = 0; step < 4; step++) {
		char what[16];

		for (int i = 0; i < NPROC; i++)
			send_byte(ch[i].cmd, 'g');
		for (int i = 0; i < NPROC; i++)
			CHECK_EQ(recv_byte(ch[i].ack, 120000), 'f');
		full_scans();
		snprintf(what, sizeof(what), "step %d", step + 1);
		check(what, &steps[step]);
	}
	static const struct expect none = { 0, 0, 0, 0 };

	knob("run", 2);
	check("run=2", &none);
	knob("run", 0);
	check("run=0", &none);
	for (int i = 0; i < NPROC; i++)
		send_byte(ch[i].cmd, 'x');
	for (int i = 0; i < NPROC; i++)
		CHECK_EQ(child_wait(&ch[i]), 0);
	if (kernel) {
		kset("run", 2);	/* (max_page_sharing changes only unshared) */
		for (int i = 1; saved_names[i]; i++)
			kset(saved_names[i], saved[i]);
		kset("run", saved[0]);
		close(lock);
		return 0;
	}
	CHECK_EQ(samepage_close(ctl), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_ksm01_counters\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * cmd_demo.c - `samepage demo --sim`: the story of the seed patches told on
 * the simulated NUMA machine.  Two nodes, merge_across_nodes=0, pages merged
 * per node; then a KSM page migrates to the other node: once to a node with
 * no equal page (its stable node is re-slotted there with all its mappings)
 * and twice to a node that already has an equal KSM page, where samepage
 * does what Linux does rather than what seed 001 describes (moving the
 * mappings onto that page one by one): a page mapped twice joins that
 * content's stable_node chain as a dup; a page mapped once cannot be merged
 * (the kernel cannot remap a page that is already KSM), its node stays parked
 * until its page is freed, and then the next full scan prunes it from
 * migrate_nodes.  The trees, migrate_nodes and the counters are shown at
 * every step, and the consistency checker runs after each.
 *
 * `samepage demo` (or --real) shows real savings instead: worker processes
 * of mostly identical memory merged by one daemon (demo_workers.c).
 * `--in-process` shows sandboxes of mostly identical memory in this
 * process, merged through the public API.  Without an option, when this
 * process may not use userfaultfd the way the library needs it, the demo
 * says why and how to allow it, and tells the simulated story instead;
 * --real and --in-process then exit 77 (skipped).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "samepage.h"
#include "sim.h"

/* The virtual pages the demo watches, to name the mappings of a node. */
static const struct {
	const char *mm;
	uint64_t vpn;
} watched[] = {
	{ "A", 0 }, { "A", 1 }, { "A", 2 }, { "A", 3 },
	{ "B", 0 }, { "B", 1 }, { "B", 2 }, { "B", 3 },
	{ "C", 0 }, { "C", 1 }, { "D", 0 }, { "D", 1 },
};

struct show_ctx {
	struct sim *sim;
	int shown;
};

static void mappings_of(struct sim *sim, const struct stable_node *node,
			char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
		struct sim_page_info pi;

		if (sim_page_info(sim, watched[i].mm, watched[i].vpn, &pi) ||
		    pi.kind != SIM_PTE_PRESENT || !pi.ksm || pi.stable_node != node)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s:%lu", off ? " " : "",
					watched[i].mm, (unsigned long)watched[i].vpn);
		if (off >= len)
			break;
	}
}

static void show_node(void *arg, const struct ksm_node_info *info)
{
	struct show_ctx *ctx = arg;
	char maps[256], where[16];

	ctx->shown++;
	if (info->is_chain) {
		printf("    chain of %d dups\n", info->mappings);
		return;
	}
	mappings_of(ctx->sim, info->node, maps, sizeof(maps));
	/* a stale node's page is on no node: "-" */
	snprintf(where, sizeof(where), info->page_nid < 0 ? "-" : "%d", info->page_nid);
	printf("    %s%s page %-6lu on node %-2s  tree nid %d  mapped by %s%s\n",
	       info->is_dup ? "  dup " : "", info->on_migrate_list ? "[migrate_nodes]" : "",
	       (unsigned long)info->kpfn, where, info->nid,
	       maps[0] ? maps : "(none)",
	       info->page_nid >= 0 && info->page_nid != info->nid && !info->on_migrate_list ?
	       "   <- misplaced: page migrated" :
	       info->page_nid < 0 ? "   <- stale: its page is gone" : "");
}

static void show_state(struct sim *sim)
{
	static const char *const counters[] = {
		"pages_shared", "pages_sharing", "pages_unshared", "full_scans", NULL,
	};
	struct show_ctx ctx = { .sim = sim };
	struct ksm *ksm = sim_ksm(sim);
	int i, findings;

	printf("  stable trees and migrate_nodes:\n");
	ksm_walk_stable(ksm, show_node, &ctx);
	if (!ctx.shown)
		printf("    (empty)\n");
	printf("  counters:");
	for (i = 0; counters[i]; i++) {
		long v = 0;

		ksm_get(ksm, counters[i], &v);
		printf(" %s=%ld", counters[i], v);
	}
	findings = sim_check(sim, NULL, NULL);
	printf("\n  consistency checker: %s\n\n", findings ? "FINDINGS" : "clean");
}

static int run(struct sim *sim, const char *line)
{
	int ret = sim_run_line(sim, line);

	printf("  > %s\n", line);
	if (ret != SIM_OK)
		fprintf(stderr, "samepage demo: '%s' failed: %s\n", line, sim_error(sim));
	return ret;
}

static void say(const char *text)
{
	printf("%s\n", text);
}

static int demo_sim(void)
{
	static const char *const setup[] = {
		"machine nodes=2 pages=1024",
		"mm A node=0", "mm B node=0", "mm C node=1", "mm D node=1",
		"mmap A 0 4 mergeable", "mmap B 0 4 mergeable",
		"mmap C 0 2 mergeable", "mmap D 0 2 mergeable",
		"fill A 0 4 seq", "fill B 0 4 seq", "fill C 0 2 seq", "fill D 0 2 seq",
		"set merge_across_nodes 0", "set pages_to_scan 100", "set run 1",
		NULL,
	};
	struct sim *sim;
	int i, err;

	err = sim_new(&sim, SIM_DEFAULT_SEED);
	if (err) {
		fprintf(stderr, "samepage demo: cannot create the simulator: %s\n", strerror(-err));
		return 1;
	}
	sim_set_output(sim, NULL);

	say("samepage demo: KSM on a simulated two-node NUMA machine (the seeds' story)\n");
	say("1. Processes A and B run on node 0 with four pages of the same four images;");
	say("   C and D run on node 1 with the first two of those images.");
	say("   merge_across_nodes=0: every node has its own stable and unstable tree,");
	say("   and pages merge only with pages of their own node.");
	for (i = 0; setup[i]; i++)
		if (run(sim, setup[i]))
			goto fail;
	if (run(sim, "scan full 2"))
		goto fail;
	say("\n   After two full scans (the first records checksums, the second merges):");
	say("   four KSM pages on node 0 (A+B), two on node 1 (C+D).");
	show_state(sim);

	say("2. The kernel migrates the KSM page of image 2 (mapped by A:2 and B:2) to");
	say("   node 1.  Migration only updates the stable node's page (kpfn): the node");
	say("   stays in node 0's tree for now, misplaced.  Nothing merges onto it.");
	if (run(sim, "migrate A 2 1"))
		goto fail;
	show_state(sim);

	say("3. The scanner reaches A:2, sees its stable node misplaced, parks it on");
	say("   migrate_nodes, and searches node 1's tree for image 2: there is none,");
	say("   so the parked node is slotted into node 1's tree with all its mappings.");
	if (run(sim, "scan full 1"))
		goto fail;
	show_state(sim);

	say("4. Now the KSM page of image 0 (A:0, B:0) migrates to node 1, where C and D");
	say("   already share a KSM page of image 0: a collision.");
	if (run(sim, "migrate A 0 1"))
		goto fail;
	show_state(sim);

	say("5. The scanner visits A:0 first: the node is parked on migrate_nodes and");
	say("   the search finds the equal page of node 1.  Seed 001 moved the mappings");
	say("   onto it one by one; Linux since 4.13 does not: a parked page mapped more");
	say("   than once (A:0, B:0) joins that content as one more dup of a stable_node");
	say("   chain, keeping its mappings.  samepage does what Linux does.");
	if (run(sim, "scan 1"))
		goto fail;
	show_state(sim);

	say("6. B writes its page of image 1 (copy-on-write): that KSM page is left");
	say("   with one mapping, A:1, and is migrated to node 1, where C and D share an");
	say("   equal page.  The scanner parks its node and finds the equal page, but");
	say("   the kernel cannot remap a page that is already a KSM page (it finds");
	say("   the mapping through the page's anon_vma, and a KSM page has none):");
	say("   A:1 leaves the stable tree and keeps its page; the node stays parked,");
	say("   valid, mapped by nobody the tree knows of.");
	if (run(sim, "write B 1 0 0x77") || run(sim, "scan full 1") ||
	    run(sim, "migrate A 1 1") || run(sim, "scan full 1"))
		goto fail;
	show_state(sim);

	say("7. A writes A:1 too: its KSM page is freed, and the parked node is stale.");
	say("   No search will ever pass it; the prune of migrate_nodes at the start of");
	say("   the next full scan removes it.");
	if (run(sim, "write A 1 0 0x55"))
		goto fail;
	show_state(sim);
	if (run(sim, "scan full 1"))
		goto fail;
	show_state(sim);

	say("8. run=2 unmerges everything: every page private again, no stable node left,");
	say("   and merge_across_nodes can be switched back without EBUSY.");
	if (run(sim, "set run 2") || run(sim, "set merge_across_nodes 1"))
		goto fail;
	show_state(sim);

	if (sim_check(sim, NULL, NULL)) {
		fprintf(stderr, "samepage demo: the consistency checker has findings\n");
		goto fail;
	}
	say("The story is over; every step passed the consistency checker.");
	sim_free(sim);
	return 0;
fail:
	sim_free(sim);
	return 1;
}

/* ---- real memory --------------------------------------------------------- */

#define REAL_SANDBOXES	4
#define REAL_PAGES	16384		/* 64 MiB each with 4 KiB pages */

/* This process's proportional set size, from /proc/self/smaps_rollup. */
static long pss_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Page @i of sandbox @s: the same "image" in every sandbox for the first
 * 3/4 of the pages, data of its own for the rest. */
static void fill_page(unsigned char *p, size_t page, int s, size_t i)
{
	uint64_t x = (i < REAL_PAGES * 3 / 4 ? i : i + ((uint64_t)s << 40)) * 0x9e3779b97f4a7c15ull + 1;

	for (size_t k = 0; k < page; k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + k, &x, 8);
	}
}

static long stat_of(struct samepage *sp, const char *name)
{
	long v = -1;

	samepage_get(sp, name, &v);
	return v;
}

/* samepage_open's errors that mean "not permitted or not supported here"
 * rather than a failure of the library. */
static bool not_available(int err)
{
	return err == -EPERM || err == -EACCES || err == -ENOENT || err == -ENOSYS ||
	       err == -EINVAL || err == -EOPNOTSUPP;
}

void demo_explain_unavailable(const char *why)
{
	fprintf(stderr,
		"samepage demo: real memory cannot be merged by this process:\n  %s\n"
		"libsamepage needs userfaultfd with write-protection of anonymous memory\n"
		"(Linux 5.7 or later) and the right to handle kernel-mode faults: run as\n"
		"root, or with CAP_SYS_PTRACE, or with read-write access to /dev/userfaultfd\n"
		"(Linux 6.1 or later), or after 'sysctl vm.unprivileged_userfaultfd=1'.\n",
		why);
}

/* Returns 0, 1 on failure, or 77 when userfaultfd is not available (after
 * explaining why, when @explain). */
static int demo_real(bool explain)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = REAL_PAGES * page;
	unsigned char *box[REAL_SANDBOXES], *check;
	struct samepage *sp;
	long before, after, shared, sharing;
	int s, bad = 0, err;

	err = samepage_open(&sp, 0);
	if (err && not_available(err)) {
		if (explain)
			demo_explain_unavailable(samepage_last_error());
		else
			fprintf(stderr, "samepage demo: %s\n", samepage_last_error());
		return 77;
	}
	if (err) {
		fprintf(stderr, "samepage demo: samepage_open: %s\n", samepage_last_error());
		return 1;
	}
	printf("samepage demo: %d sandboxes of %zu MiB in this process, 3/4 of each\n"
	       "the same image, merged by libsamepage (no kernel KSM).\n\n",
	       REAL_SANDBOXES, len >> 20);
	for (s = 0; s < REAL_SANDBOXES; s++) {
		box[s] = samepage_alloc(sp, len);
		if (!box[s]) {
			fprintf(stderr, "samepage demo: samepage_alloc: %s\n", samepage_last_error());
			samepage_close(sp);
			return 1;
		}
		for (size_t i = 0; i < REAL_PAGES; i++)
			fill_page(box[s] + i * page, page, s, i);
	}
	check = malloc(page);
	before = pss_kib();
	printf("  filled:  Pss %ld MiB\n", before >> 10);
	samepage_set(sp, "pages_to_scan", 100000);
	samepage_set(sp, "sleep_millisecs", 0);
	samepage_scan_full(sp, 2);
	after = pss_kib();
	shared = stat_of(sp, "pages_shared");
	sharing = stat_of(sp, "pages_sharing");
	printf("  merged:  Pss %ld MiB after two full scans; pages_shared %ld, pages_sharing %ld\n"
	       "           (%ld MiB given back)\n", after >> 10, shared, sharing, (before - after) >> 10);

	/* Every page still reads what was written. */
	for (s = 0; s < REAL_SANDBOXES && check; s++)
		for (size_t i = 0; i < REAL_PAGES; i++) {
			fill_page(check, page, s, i);
			bad += memcmp(check, box[s] + i * page, page) != 0;
		}
	printf("  checked: %d of %d pages differ from what was written\n", bad,
	       REAL_SANDBOXES * REAL_PAGES);

	/* A write gets a private copy; the other sandboxes keep the image. */
	box[0][0] ^= 0xff;
	printf("  wrote:   sandbox 0 page 0 changed (%s); sandbox 1 page 0 unchanged (%s)\n",
	       box[0][0] != box[1][0] ? "yes" : "NO", (fill_page(check, page, 1, 0),
	       !memcmp(check, box[1], page)) ? "yes" : "NO");
	box[0][0] ^= 0xff;
	samepage_scan_full(sp, 1);
	printf("           byte written back: the copy re-merges on the next scan,"
	       " pages_sharing %ld\n", stat_of(sp, "pages_sharing"));

	samepage_close(sp);
	printf("  closed:  every page private again, Pss %ld MiB\n", pss_kib() >> 10);
	free(check);
	for (s = 0; s < REAL_SANDBOXES; s++)
		munmap(box[s], len);
	return bad ? 1 : 0;
}

static const char demo_usage[] =
"usage: samepage demo [--real] [--workers N] [--mib M] [--quick] [--socket PATH]\n"
"       samepage demo --in-process\n"
"       samepage demo --sim\n"
"\n"
"Without an option: several worker processes (4) of 64 MiB each, 3/4 of\n"
"every worker's pages the same image in all of them, merged across the\n"
"processes by one samepage daemon: `samepage daemon` started here on a\n"
"private socket and stopped at the end, or the one at --socket.  The memory\n"
"given back is shown live, one line per full scan (pages_sharing, the\n"
"workers' total Pss and the daemon's, MemAvailable before and now); then\n"
"each worker reads all its memory back, writes to some of its merged pages\n"
"(breaking their sharing) and reads everything back again.  Exit status 1\n"
"if any page did not read what was written.  When this process may not use\n"
"userfaultfd (it needs root, CAP_SYS_PTRACE, read-write access to\n"
"/dev/userfaultfd or vm.unprivileged_userfaultfd=1), say why and tell the\n"
"simulated story of --sim instead.\n"
"\n"
"  --real          real memory only: exit status 77 without userfaultfd\n"
"  --workers N     worker processes (2 to 64, default 4)\n"
"  --mib M         memory of each worker in MiB (1 to 4096, default 64)\n"
"  --quick         4 workers of 8 MiB\n"
"  --socket PATH   use the daemon at PATH (its knobs are put back after);\n"
"                  a daemon run by root lets users without userfaultfd\n"
"                  privileges run the demo (it passes them /dev/userfaultfd);\n"
"                  when its knobs are not theirs, its scanner must run already\n"
"  --in-process    the single-process demo: four 64 MiB sandboxes in this\n"
"                  process merged by libsamepage (samepage_open), Pss before\n"
"                  and after, every page read back, a copy-on-write, the\n"
"                  unmerge at close; exit status 77 without userfaultfd\n"
"  --sim           tell the story of KSM's NUMA design (merge_across_nodes=0,\n"
"                  a KSM page migrated to another node, migrate_nodes) on the\n"
"                  simulated machine, showing the trees and counters at every\n"
"                  step\n";

static bool demo_number(const char *s, unsigned long min, unsigned long max,
			unsigned long *v)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return !errno && !*end && *v >= min && *v <= max;
}

int cmd_demo(int argc, char **argv)
{
	enum { DEFAULT, REAL, IN_PROCESS, SIM } mode = DEFAULT;
	struct demo_opts o = { .workers = 4, .mib = 64, .timeout_s = 300 };
	unsigned long v;
	int i, ret;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(demo_usage, stdout);
			return 0;
		}
		if (!strcmp(a, "--real")) {
			mode = REAL;
		} else if (!strcmp(a, "--in-process")) {
			mode = IN_PROCESS;
		} else if (!strcmp(a, "--sim")) {
			mode = SIM;
		} else if (!strcmp(a, "--quick")) {
			o.workers = 4;
			o.mib = 8;
		} else if (!strcmp(a, "--workers") || !strcmp(a, "--mib")) {
			bool w = !strcmp(a, "--workers");

			if (!demo_number(i + 1 < argc ? argv[i + 1] : NULL, w ? 2 : 1,
					 w ? 64 : 4096, &v)) {
				fprintf(stderr, "samepage demo: %s needs a number from %d to %d\n",
					a, w ? 2 : 1, w ? 64 : 4096);
				return 2;
			}
			i++;
			if (w)
				o.workers = (unsigned int)v;
			else
				o.mib = v;
		} else if (!strcmp(a, "--socket") && i + 1 < argc) {
			o.socket = argv[++i];
		} else {
			fprintf(stderr, "samepage demo: unknown option '%s' (see --help)\n", a);
			return 2;
		}
	}
	if (mode == SIM)
		return demo_sim();
	if (mode == IN_PROCESS)
		return demo_real(false);
	o.explain = mode == DEFAULT;
	ret = demo_workers(&o);
	if (ret != 77 || mode == REAL)
		return ret;
	fprintf(stderr, "samepage demo: showing the simulated machine instead"
		" (samepage demo --sim).\n\n");
	return demo_sim();
}

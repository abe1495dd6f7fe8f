/* SPDX-License-Identifier: MIT */
/*
 * lib_app_symbol_not_interposed - an application that happens to define
 * functions named like the library's internals (rb_insert_color, rb_erase,
 * get_ksm_page, sp_lock, ksm_do_scan) and exports them (it is linked with
 * -rdynamic) keeps them to itself: the shared libsamepage, merging pages
 * through its trees, never calls them, and still merges.
 *
 * Linked against the shared library and the public header only, as an
 * application is.  Skips (77) when userfaultfd is not permitted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "samepage.h"

/*
 * The application's own functions.  Called by the library, they would
 * corrupt its trees or deadlock it; here a call is reported and ends the
 * test at once, failed.
 */
static void called(const char *name)
{
	static const char msg[] = "FAIL lib_app_symbol_not_interposed: libsamepage called"
				  " the application's ";

	/* async-signal-safe and lock-free: the library may hold its locks */
	(void)!write(2, msg, sizeof(msg) - 1);
	(void)!write(2, name, strlen(name));
	(void)!write(2, "()\n", 3);
	_exit(1);
}

void rb_insert_color(void *node, void *root);
void rb_erase(void *node, void *root);
void *get_ksm_page(void *stable_node, int flags);
void sp_lock(void *sp);
unsigned long ksm_do_scan(void *ksm, unsigned long npages, void *arg);

void rb_insert_color(void *node, void *root)
{
	(void)node, (void)root;
	called("rb_insert_color");
}

void rb_erase(void *node, void *root)
{
	(void)node, (void)root;
	called("rb_erase");
}

void *get_ksm_page(void *stable_node, int flags)
{
	(void)stable_node, (void)flags;
	called("get_ksm_page");
	return NULL;
}

void sp_lock(void *sp)
{
	(void)sp;
	called("sp_lock");
}

unsigned long ksm_do_scan(void *ksm, unsigned long npages, void *arg)
{
	(void)ksm, (void)npages, (void)arg;
	called("ksm_do_scan");
	return 0;
}

#define NPAGES 16	/* two contents, eight copies each */

int main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	struct samepage *sp;
	unsigned char *mem;
	long sharing = -1, shared = -1;
	int err;

	err = samepage_open(&sp, 0);
	if (err == -EPERM || err == -EACCES || err == -ENOENT || err == -ENOSYS ||
	    err == -EINVAL || err == -EOPNOTSUPP) {
		printf("SKIP lib_app_symbol_not_interposed: %s\n", samepage_last_error());
		return 77;
	}
	if (err) {
		fprintf(stderr, "FAIL: samepage_open: %s (%s)\n", strerror(-err),
			samepage_last_error());
		return 1;
	}
	mem = samepage_alloc(sp, NPAGES * ps);
	if (!mem) {
		fprintf(stderr, "FAIL: samepage_alloc: %s\n", samepage_last_error());
		return 1;
	}
	for (int i = 0; i < NPAGES; i++)
		memset(mem + i * ps, i % 2 ? 0x5a : 0xa5, ps);

	/* first scan: checksums; second: the unstable tree, then the stable
	 * tree (rb_insert_color, get_ksm_page inside the library) */
	err = samepage_scan_full(sp, 2);
	if (err) {
		fprintf(stderr, "FAIL: samepage_scan_full: %s (%s)\n", strerror(-err),
			samepage_last_error());
		return 1;
	}
	if (samepage_get(sp, "pages_shared", &shared) ||
	    samepage_get(sp, "pages_sharing", &sharing)) {
		fprintf(stderr, "FAIL: samepage_get: %s\n", samepage_last_error());
		return 1;
	}
	/* one KSM page per content, seven more mappings of each */
	if (shared != 2 || sharing != NPAGES - 2) {
		fprintf(stderr, "FAIL: pages_shared %ld, pages_sharing %ld after two full scans;"
			" expected 2 and %d\n", shared, sharing, NPAGES - 2);
		return 1;
	}
	for (int i = 0; i < NPAGES; i++)
		for (size_t k = 0; k < ps; k++)
			if (mem[i * ps + k] != (i % 2 ? 0x5a : 0xa5)) {
				fprintf(stderr, "FAIL: page %d byte %zu changed\n", i, k);
				return 1;
			}
	/* the unmerge at close erases tree nodes too */
	err = samepage_free(sp, mem, NPAGES * ps);
	if (!err)
		err = samepage_close(sp);
	if (err) {
		fprintf(stderr, "FAIL: free/close: %s (%s)\n", strerror(-err),
			samepage_last_error());
		return 1;
	}
	printf("lib_app_symbol_not_interposed: merged (pages_sharing %ld) without calling"
	       " the application's functions\n", sharing);
	return 0;
}

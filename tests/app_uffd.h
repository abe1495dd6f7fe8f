/* SPDX-License-Identifier: MIT */
/*
 * app_uffd.h - the application's own userfaultfd in the tests that give a
 * program one: app_uffd_handler() serves its missing-page faults, each
 * page of app_area getting its number + 100.  Include after page_size().
 */
#ifndef SAMEPAGE_TESTS_APP_UFFD_H
#define SAMEPAGE_TESTS_APP_UFFD_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int app_uffd;
static unsigned char *app_area;

static void *app_uffd_handler(void *arg)
{
	size_t ps = page_size();
	unsigned char *src = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);

	(void)arg;
	for (;;) {
		struct uffd_msg m;

		if (read(app_uffd, &m, sizeof(m)) != sizeof(m))
			return NULL;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t at = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)(ps - 1);

		memset(src, (int)((at - (uintptr_t)app_area) / ps + 100), ps);
		struct uffdio_copy cp = { .dst = at, .src = (uintptr_t)src, .len = ps };

		(void)ioctl(app_uffd, UFFDIO_COPY, &cp);
	}
}

#endif

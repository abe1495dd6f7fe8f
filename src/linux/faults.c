/* SPDX-License-Identifier: MIT */
/*
 * faults.c - the fault reader: userfaultfd messages of writers parked on
 * a protected page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux_internal.h"

/* ------------------------------------------------------------------------
 * Threads.
 * --------------------------------------------------------------------- */
/*
 * The fault reader: the messages of writers parked on a protected page.
 * A writer parked on a page of a pending run (see backend.c) gets the run
 * aborted and goes on at once; other protections (one page being merged
 * right now) end in a moment by themselves.  A fault that arrives before
 * its page's run is visible is checked again for a while.
 */
#define UNRESOLVED 64

void *sp_reader_main(void *arg)
{
	struct samepage *sp = arg;
	uint64_t fault[32];
	uint64_t pend[UNRESOLVED], since[UNRESOLVED];
	int npend = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sp->os.uffd, .events = POLLIN },
			{ .fd = sp->stop_pipe[0], .events = POLLIN },
		};

		if (poll(pfd, 2, npend ? 1 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		uint64_t now = sp_now_ms();

		for (int i = 0; i < npend;) {
			if (sp_abort_at(sp, pend[i]) || now - since[i] > 100) {
				pend[i] = pend[--npend];
				since[i] = since[npend];
			} else {
				i++;
			}
		}
		if (pfd[0].revents & POLLIN) {
			int got = sp_os_read_faults(&sp->os, fault, 32);

			for (int i = 0; i < got; i++) {
				atomic_fetch_add(&sp->writers_parked, 1);
				uint64_t addr = fault[i];

				if (!sp_abort_at(sp, addr) && npend < UNRESOLVED) {
					pend[npend] = addr;
					since[npend++] = now;
				}
			}
		} else if (pfd[0].revents & (POLLERR | POLLHUP)) {
			break;
		}
	}
	return NULL;
}


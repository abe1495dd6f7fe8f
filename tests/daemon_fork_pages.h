/* SPDX-License-Identifier: MIT */
/*
 * daemon_fork_pages.h - the pages the fork tests fill and check: NPG pages
 * (defined by the test before it includes this), each with content of its
 * own; one page may have been written by the process checking it.
 */
#ifndef SAMEPAGE_TESTS_DAEMON_FORK_PAGES_H
#define SAMEPAGE_TESTS_DAEMON_FORK_PAGES_H

#include "daemon_util.h"

static uint64_t word(int i, size_t k)
{
	return 0x4400000000000000ull + (uint64_t)i * 131 + k;
}

static void fill(char *mem)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8)
			memcpy(mem + i * page_size() + k, &(uint64_t){ word(i, k) }, 8);
}

/* Page i as it should be (@mine: the one page this process wrote). */
static bool right(const char *mem, int mine, char with)
{
	for (int i = 0; i < NPG; i++)
		for (size_t k = 0; k < page_size(); k += 8) {
			uint64_t w;

			memcpy(&w, mem + i * page_size() + k, 8);
			if (i == mine ? mem[i * page_size() + k] != with : w != word(i, k))
				return false;
		}
	return true;
}

#endif /* SAMEPAGE_TESTS_DAEMON_FORK_PAGES_H */

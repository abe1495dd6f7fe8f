/* SPDX-License-Identifier: MIT */
/*
 * daemon_store_memory_returned - store pages nobody uses any more give
 * their memory back while the domain lives.  One client, NPAIR pairs of
 * equal pages, merged: the store holds NPAIR pages (the blocks of its
 * memfd, read through /proc/DAEMON/fd).  Then every page is written with
 * content of its own; once the sweep freed the slots
 * (store_pages_reclaimed + NPAIR), their pages are holes again
 * (store_pages_punched + NPAIR, the memfd's blocks back to what they were
 * before the merge), and merging again fills them anew.  Three rounds;
 * the client reads what it wrote throughout.  Before, the memfd kept
 * every page it ever held until the domain ended (its write seal forbids
 * holes).  Root only: only a root daemon makes its stores its own,
 * unwritable by clients, without that seal.
 */
#include "daemon_util.h"

#include <dirent.h>
#include <sys/stat.h>

#define NPAIR	1024
#define ROUNDS	3

#include "daemon_store_pages.h"

/* Pages allocated in the daemon's store memfds (each file once). */
static long store_blocks(pid_t dpid)
{
	char dir[64];
	ino_t seen[16];
	int nseen = 0;
	long pages = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)dpid);
	DIR *d = opendir(dir);

	CHECK(d);
	for (struct dirent *de; (de = readdir(d));) {
		char path[384], target[256];
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (!strstr(target, "memfd:samepage-uid"))
			continue;
		int fd = open(path, O_RDONLY);
		struct stat sb;

		CHECK(fd >= 0 && fstat(fd, &sb) == 0);
		close(fd);
		bool dup = false;

		for (int k = 0; k < nseen; k++)
			dup |= seen[k] == sb.st_ino;
		if (dup || nseen == 16)
			continue;
		seen[nseen++] = sb.st_ino;
		pages += (long)(sb.st_blocks * 512 / (long)page_size());
	}
	closedir(d);
	return pages;
}

int main(void)
{
	if (geteuid() != 0)
		skip("daemon_store_memory_returned", "only a root daemon punches its stores");
	need_uffd("daemon_store_memory_returned");
	daemon_socket();
	pid_t dpid = daemon_start();
	struct child ch = child_start(store_client, 0);
	struct samepage *sp = connect_daemon();

	store_knobs(sp);
	CHECK_EQ(recv_byte(ch.ack, 30000), 'r');
	long base = store_blocks(dpid);

	for (int round = 1; round <= ROUNDS; round++) {
		long reclaimed = get(sp, "store_pages_reclaimed");
		long punched = get(sp, "store_pages_punched");

		send_byte(ch.cmd, 'f');
		store_ask(&ch, (char)round);
		CHECK_EQ(wait_counter(sp, "pages_sharing", NPAIR), NPAIR);
		CHECK_EQ(get(sp, "store_pages"), NPAIR);
		long merged = store_blocks(dpid);

		store_ask(&ch, 'c');
		store_ask(&ch, 'u');
		CHECK_EQ(wait_counter(sp, "store_pages", 0), 0);
		CHECK_EQ(wait_counter(sp, "store_pages_spent", 0), 0);
		long after = store_blocks(dpid);

		printf("round %d: store memfd %ld pages before, %ld merged, %ld after the sweep; "
		       "reclaimed %ld, punched %ld\n", round, base, merged, after,
		       get(sp, "store_pages_reclaimed") - reclaimed,
		       get(sp, "store_pages_punched") - punched);
		CHECK(merged >= base + NPAIR);
		CHECK_EQ(get(sp, "store_pages_reclaimed") - reclaimed, NPAIR);
		CHECK_EQ(get(sp, "store_pages_punched") - punched, NPAIR);
		if (after > base)
			FAIL("round %d: %ld store pages kept after the sweep (%ld before merging)",
			     round, after, base);
		store_ask(&ch, 'U');
	}
	send_byte(ch.cmd, 'q');
	CHECK_EQ(child_wait(&ch), 0);
	CHECK_EQ(samepage_close(sp), 0);
	CHECK_EQ(daemon_stop(dpid), 0);
	printf("PASS daemon_store_memory_returned\n");
	return 0;
}

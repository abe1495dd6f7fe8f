/* SPDX-License-Identifier: MIT */
/*
 * run_own_userfaultfd - under `samepage run --all`, a program with its own
 * userfaultfd on its memory: its UFFDIO_REGISTER succeeds although the
 * rescans registered that memory with samepage first (the shim gives it
 * up and retries), later rescans leave it alone, and its missing-page
 * faults are served by its own handler (UFFDIO_COPY) as without samepage.
 * Skipped (77) where this user may not create a userfaultfd.
 */

#include "run_util.h"
#include "app_uffd.h"

#define NP 32

static int child(int cmd, int ack)
{
	size_t ps = page_size();

	(void)cmd;
	app_area = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (app_area == MAP_FAILED)
		return 2;
	memset(app_area, 7, NP * ps);	/* (mergeable content) */
	/* until a rescan has taken it */
	for (int i = 0; i < 200 && !has_vmflag(app_area, NP * ps, "uw"); i++)
		usleep(10000);
	if (!has_vmflag(app_area, NP * ps, "uw"))
		return 3;
	app_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (app_uffd < 0)
		return 77;
	struct uffdio_api api = { .api = UFFD_API };

	if (ioctl(app_uffd, UFFDIO_API, &api))
		return 4;
	/* the pages go, then the program's own app_uffd serves them */
	if (madvise(app_area, NP * ps, MADV_DONTNEED))
		return 5;
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)app_area, .len = NP * ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(app_uffd, UFFDIO_REGISTER, &reg)) {
		fprintf(stderr, "UFFDIO_REGISTER: %s\n", strerror(errno));
		return 6;
	}
	pthread_t t;

	if (pthread_create(&t, NULL, app_uffd_handler, NULL))
		return 2;
	for (int round = 0; round < 3; round++) {
		usleep(200000);	/* (rescans meanwhile: they must leave it alone) */
		for (size_t pg = round; pg < NP; pg += 3) {
			if (app_area[pg * ps + 5] != (unsigned char)(pg + 100)) {
				fprintf(stderr, "page %zu: %u, expected %zu\n", pg, app_area[pg * ps + 5],
					pg + 100);
				return 7;
			}
		}
	}
	if (has_vmflag(app_area, NP * ps, "uw"))
		return 8;	/* (missing mode only: no wp of ours left) */
	send_byte(ack, 'y');
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(atoi(argv[3]), atoi(argv[4]));

	pid_t d = run_setup("run_own_userfaultfd", argv[0]);
	const char *opts[] = { "--all", NULL };
	struct child c = run_child(opts, "0", "SAMEPAGE_RUN_RESCAN_MS=20");
	int r = recv_byte(c.ack, 30000), st = child_wait(&c);

	if (st == 77)
		skip("run_own_userfaultfd", "userfaultfd(2) is not permitted to this user");
	if (r != 'y' || st != 0)
		FAIL("the program failed: exit status %d", st);
	CHECK_EQ(daemon_stop(d), 0);
	printf("PASS run_own_userfaultfd\n");
	return 0;
}

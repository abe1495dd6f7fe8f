/* SPDX-License-Identifier: MIT */
/*
 * numa-vm-init - the /init of the virtual machine of scripts/numa-vm.sh.
 *
 * Built static by that script.  It mounts /proc, /sys, /dev (devtmpfs) and
 * debugfs (the initramfs itself is writable, /tmp included), takes the
 * console as stdin/stdout/stderr, runs the command written in /numa-vm.cmd,
 * waits for it, prints a status line the script looks for, and powers the
 * machine off.
 *
 * /numa-vm.cmd: a marker word, a newline, then the argument vector, each
 * argument terminated by a NUL byte.  The status line is
 *     MARKER exit STATUS        (STATUS 0-255; 128+N for death by signal N)
 * on a line of its own; the marker is chosen by the script for each run, so
 * that the command's own output cannot forge it.  "MARKER start" is printed
 * just before the command runs: its absence means the machine never got
 * that far.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD_FILE "/numa-vm.cmd"
#define MAX_ARGS 256

static void take_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void mount_one(const char *src, const char *dir, const char *type)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, 0, NULL) && errno != EBUSY)
		fprintf(stderr, "numa-vm-init: mount %s on %s: %s\n", type, dir,
			strerror(errno));
}

static void power_off(void)
{
	fflush(stdout);
	fflush(stderr);
	sync();
	reboot(RB_POWER_OFF);
	/* not reached; if it were, the kernel panics and qemu stops (-no-reboot) */
	_exit(1);
}

/* Read the whole command file; returns its length or -1. */
static ssize_t read_cmd(char *buf, size_t size)
{
	int fd = open(CMD_FILE, O_RDONLY);
	size_t len = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

int main(void)
{
	static char buf[1 << 16];
	char *argv[MAX_ARGS + 1];
	int argc = 0;

	mount_one("devtmpfs", "/dev", "devtmpfs");
	take_console();
	mount_one("proc", "/proc", "proc");
	mount_one("sysfs", "/sys", "sysfs");
	mount_one("debugfs", "/sys/kernel/debug", "debugfs");
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", "/", 1);
	setenv("TMPDIR", "/tmp", 1);

	ssize_t len = read_cmd(buf, sizeof(buf));
	char *nl = len > 0 ? memchr(buf, '\n', (size_t)len) : NULL;

	if (!nl) {
		fprintf(stderr, "numa-vm-init: no usable %s\n", CMD_FILE);
		power_off();
	}
	*nl = 0;
	const char *marker = buf;

	for (char *p = nl + 1; p < buf + len && argc < MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	if (!argc) {
		printf("\n%s exit 127\n", marker);
		power_off();
	}

	printf("%s start\n", marker);
	fflush(stdout);
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "numa-vm-init: fork: %s\n", strerror(errno));
		printf("\n%s exit 126\n", marker);
		power_off();
	}
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "numa-vm-init: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}

	/* init reaps every orphan; only the command's own status matters */
	int status = 0, code;

	for (;;) {
		pid_t w = waitpid(-1, &status, 0);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 0xff00;
			break;
		}
	}
	if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		code = 128 + WTERMSIG(status);
	else
		code = 255;
	fflush(stdout);
	printf("\n%s exit %d\n", marker, code);
	power_off();
	return 0;
}

#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/demo_fallback - `samepage demo` run by a user who may not use
# userfaultfd says why real memory cannot be merged, tells the simulated
# story instead and exits 0.  Runs the command as nobody without
# capabilities (needs root and setpriv to get there; 77 otherwise).
# usage: demo_fallback.sh PATH-TO-samepage
cmd=$1
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
	echo "SKIP cli/demo_fallback: needs root and setpriv(1) to drop privileges"
	exit 77
fi
if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ]; then
	echo "SKIP cli/demo_fallback: vm.unprivileged_userfaultfd=1 lets anybody merge"
	exit 77
fi
drop="setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all"
if ! $drop sh -c 'test -x "$1"' sh "$cmd" 2>/dev/null; then
	echo "SKIP cli/demo_fallback: user nobody cannot run $cmd (a directory on its path is private)"
	exit 77
fi
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	"$cmd" demo 2>&1)
rc=$?
printf '%s\n' "$out"
fail() { echo "FAIL cli/demo_fallback: $*"; exit 1; }
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
printf '%s\n' "$out" | grep -q "real memory cannot be merged by this process" ||
	fail "no explanation why real memory cannot be merged"
printf '%s\n' "$out" | grep -q "/dev/userfaultfd" ||
	fail "the explanation does not say how to allow it"
printf '%s\n' "$out" | grep -q "every step passed the consistency checker" ||
	fail "the simulated story did not run to its end"
exit 0

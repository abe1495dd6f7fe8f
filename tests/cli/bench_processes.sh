#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/bench_processes - `samepage bench --processes N` on tiny sizes without
# the kernel: three client processes of a daemon the bench starts, counters
# equal to the kernel rules' expected ones, every page read back, exit 0;
# --help names the option.  (The benchmark itself is `make bench`, never a
# test.)  77 without userfaultfd.
# usage: bench_processes.sh PATH-TO-samepage
cmd=$1
fail() { echo "FAIL cli/bench_processes: $*"; exit 1; }
"$cmd" bench --help | grep -q -- "--processes N" || fail "--help does not name --processes"
"$cmd" bench --processes 2 --sim >/dev/null 2>&1; [ $? = 2 ] || fail "--processes with --sim: not a usage error"
out=$("$cmd" bench --processes 3 --pages 512 --no-kernel --quiet 2>&1)
rc=$?
printf '%s\n' "$out"
if printf '%s\n' "$out" | grep -q "^samepage: not run: the client processes could not fill"; then
	echo "SKIP cli/bench_processes: the clients cannot use userfaultfd here"
	exit 77
fi
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
printf '%s\n' "$out" | grep -q "one region per process: clients of one daemon" ||
	fail "the table does not say the regions were in processes"
exp=$(printf '%s\n' "$out" | sed -n 's/^expected (kernel rules): pages_shared \([0-9]*\), pages_sharing \([0-9]*\)$/\1 \2/p')
got=$(printf '%s\n' "$out" | awk '$1 == "pages_shared" { s = $2 } $1 == "pages_sharing" { printf "%s %s\n", s, $2 }')
[ -n "$exp" ] && [ "$exp" = "$got" ] || fail "counters '$got', expected '$exp'"
printf '%s\n' "$out" | grep -q "^steady_cpu_per_full_scan  *[0-9]" ||
	fail "no CPU per full scan once converged"
exit 0

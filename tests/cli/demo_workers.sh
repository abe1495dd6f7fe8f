#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/demo_workers - `samepage demo --real --quick`: four worker processes
# under a daemon the demo starts itself; a line per full scan; every worker
# reads back what it wrote (also after writes that break sharing); exit 0
# and the last line tells the memory given back.  77 without userfaultfd.
# usage: demo_workers.sh PATH-TO-samepage
cmd=$1
out=$("$cmd" demo --real --quick 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" = 77 ] && { echo "SKIP cli/demo_workers: no userfaultfd here"; exit 77; }
fail() { echo "FAIL cli/demo_workers: $*"; exit 1; }
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
printf '%s\n' "$out" | grep -q "^  full scan 2 .*pages_sharing [1-9]" ||
	fail "no progress line with pages shared by the second full scan"
last=$(printf '%s\n' "$out" | grep -v "^samepage daemon:" | tail -n 1)
printf '%s\n' "$last" |
	grep -Eq "^samepage demo: 4 workers, [1-9][0-9]* MiB of 32 MiB given back .*every page read back as written$" ||
	fail "the last line does not report memory given back: '$last'"
exit 0

#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/demo_unprivileged - `samepage demo --socket PATH` run as nobody
# without capabilities, against a daemon run by root that is already
# scanning: the workers get the daemon's /dev/userfaultfd, merge, read back
# what they wrote; exit 0, the last line tells the memory given back.
# Needs root, setpriv(1) and /dev/userfaultfd (77 otherwise).
# usage: demo_unprivileged.sh PATH-TO-samepage
cmd=$1
skip() { echo "SKIP cli/demo_unprivileged: $*"; exit 77; }
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 || skip "needs root and setpriv(1)"
[ -c /dev/userfaultfd ] || skip "no /dev/userfaultfd (Linux 6.1 or later)"
drop="setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all"
$drop sh -c 'test -x "$1"' sh "$cmd" 2>/dev/null ||
	skip "user nobody cannot run $cmd (a directory on its path is private)"
dir=$(mktemp -d /tmp/samepage-demo-XXXXXX)
chmod 755 "$dir"
sock=$dir/sock
fail() { echo "FAIL cli/demo_unprivileged: $*"; kill "$dpid" 2>/dev/null; rm -rf "$dir"; exit 1; }
"$cmd" daemon --socket "$sock" 2>"$dir/log" &
dpid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
[ -S "$sock" ] || fail "the daemon did not start: $(cat "$dir/log")"
"$cmd" ctl --socket "$sock" set pages_to_scan 2000 || fail "ctl set pages_to_scan"
"$cmd" ctl --socket "$sock" set run 1 || fail "ctl set run 1"
out=$($drop "$cmd" demo --real --quick --socket "$sock" 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
printf '%s\n' "$out" | grep -q 'domain uid=65534 name="" processes=4' ||
	fail "the workers are not nobody's clients of the daemon"
last=$(printf '%s\n' "$out" | tail -n 1)
printf '%s\n' "$last" |
	grep -Eq "^samepage demo: 4 workers, [1-9][0-9]* MiB of 32 MiB given back .*every page read back as written$" ||
	fail "the last line does not report memory given back: '$last'"
kill -TERM "$dpid"
wait "$dpid" || fail "the daemon's exit status on SIGTERM is not 0"
rm -rf "$dir"
exit 0

#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/daemon_ctl - `samepage daemon` and `samepage ctl` from the command
# line: --help on each, `name: value` lines with the kernel's names, the
# kernel's errors with a message naming what was wrong and a non-zero exit,
# scans, stat as text and JSON, Prometheus metrics; SIGTERM exits 0.
# usage: daemon_ctl.sh PATH-TO-samepage
cmd=$1
dir=$(mktemp -d /tmp/samepage-ctl-XXXXXX)
sock=$dir/sock
fail() { echo "FAIL cli/daemon_ctl: $*"; kill "$dpid" 2>/dev/null; rm -rf "$dir"; exit 1; }
ctl() { "$cmd" ctl --socket "$sock" "$@"; }

"$cmd" daemon --help | grep -q "usage: samepage daemon" || fail "daemon --help"
"$cmd" ctl --help | grep -q "usage: samepage ctl" || fail "ctl --help"
"$cmd" daemon --bogus 2>/dev/null; [ $? = 2 ] || fail "daemon --bogus: exit status not 2"
out=$(ctl get run 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "cannot connect to the daemon at $sock" ||
	fail "no daemon: '$out' (exit $rc)"

"$cmd" daemon --socket "$sock" 2>"$dir/log" &
dpid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
[ -S "$sock" ] || fail "the daemon did not start: $(cat "$dir/log")"

[ "$(ctl get run)" = "run: 0" ] || fail "get run: $(ctl get run)"
[ "$(ctl get pages_to_scan sleep_millisecs)" = "pages_to_scan: 100
sleep_millisecs: 20" ] || fail "get two names"
ctl set pages_to_scan 250 || fail "set pages_to_scan 250"
[ "$(ctl get pages_to_scan)" = "pages_to_scan: 250" ] || fail "set did not set"
out=$(ctl set run 3 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "set run: invalid value" || fail "set run 3: '$out' ($rc)"
out=$(ctl set run -1 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "invalid value" || fail "set run -1: '$out' ($rc)"
out=$(ctl set no_such_knob 1 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "no_such_knob: no knob or counter of that name" ||
	fail "set no_such_knob: '$out' ($rc)"
out=$(ctl set pages_shared 1 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "read-only" || fail "set pages_shared: '$out' ($rc)"
out=$(ctl get no_such_counter 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "no_such_counter" || fail "get no_such_counter: '$out'"
out=$(ctl frobnicate 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "unknown command 'frobnicate'" || fail "unknown command"
out=$(ctl scan 2>&1); rc=$?
[ $rc = 2 ] || fail "scan without N: exit $rc"
ctl scan 100 || fail "scan 100"
ctl scan full 2 || fail "scan full 2"
ctl stat | grep -q "^pages_sharing: 0" || fail "stat: no pages_sharing"
ctl stat | grep -q "^\[knobs\]" || fail "stat: no knobs"
ctl stat --json | grep -q '^{"knobs":{"run":0,' || fail "stat --json: $(ctl stat --json)"
if command -v python3 >/dev/null; then
	ctl stat --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "pages_shared" in d["counters"]' ||
		fail "stat --json is not JSON"
fi
ctl metrics | grep -q '^samepage_pages_shared 0$' || fail "metrics: no samepage_pages_shared"
ctl metrics | grep -q '^# TYPE samepage_full_scans gauge$' || fail "metrics: no TYPE line"
kill -TERM "$dpid"
wait "$dpid"; rc=$?
[ $rc = 0 ] || fail "SIGTERM: exit status $rc"
[ ! -e "$sock" ] || fail "the socket is left behind"
rm -rf "$dir"
echo "PASS cli/daemon_ctl"

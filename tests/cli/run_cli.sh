#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/run_cli - `samepage run` from the command line: --help, bad
# arguments (exit 2), no daemon (said on stderr, the command runs unmerged
# with its own exit status; --require: exit 1, the command not run), CMD's
# exit status and 128+signal, LD_PRELOAD appended to an existing one and
# SAMEPAGE_SOCKET/SAMEPAGE_DOMAIN/SAMEPAGE_RUN_ALL set for CMD, and a
# daemon killed under a running program: the program goes on, its memory
# right.
# usage: run_cli.sh PATH-TO-samepage
cmd=$1
if [ -n "$SAMEPAGE_SANITIZE" ]; then
	echo "SKIP cli/run_cli: a sanitizer's runtime cannot be preloaded (build with SANITIZE=$SAMEPAGE_SANITIZE)"
	exit 77
fi
dir=$(mktemp -d /tmp/samepage-run-XXXXXX)
sock=$dir/sock
fail() { echo "FAIL cli/run_cli: $*"; [ -n "$dpid" ] && kill "$dpid" 2>/dev/null; rm -rf "$dir"; exit 1; }

"$cmd" run --help | grep -q "usage: samepage run" || fail "run --help"
"$cmd" run 2>/dev/null; [ $? = 2 ] || fail "run without a command: exit status not 2"
"$cmd" run --bogus -- true 2>/dev/null; [ $? = 2 ] || fail "run --bogus: exit status not 2"
"$cmd" run --socket "$sock" -- /nonexistent/program 2>/dev/null; [ $? = 127 ] ||
	fail "a command that does not exist: exit status not 127"

# no daemon
out=$("$cmd" run --socket "$sock" -- sh -c 'exit 7' 2>&1); rc=$?
[ $rc = 7 ] || fail "no daemon: exit status $rc, not the command's 7"
echo "$out" | grep -q "no daemon at $sock.*running the command unmerged" || fail "no daemon: '$out'"
out=$("$cmd" run --require --socket "$sock" -- sh -c 'echo ran' 2>&1); rc=$?
[ $rc = 1 ] || fail "--require without a daemon: exit status $rc"
echo "$out" | grep -q ran && fail "--require without a daemon ran the command"
"$cmd" run --socket "$sock" -- sh -c 'kill -TERM $$' 2>/dev/null; rc=$?
[ $rc = 143 ] || fail "a command killed by SIGTERM: exit status $rc, not 143"

# the environment of the command
env=$(LD_PRELOAD=/lib/nothing-such.so "$cmd" run --socket "$sock" --domain blue --all -- \
	sh -c 'echo "$LD_PRELOAD|$SAMEPAGE_SOCKET|$SAMEPAGE_DOMAIN|$SAMEPAGE_RUN_ALL"' 2>/dev/null)
case "$env" in
/lib/nothing-such.so:/*libsamepage-run.so"|$sock|blue|1") ;;
*) fail "the command's environment: '$env'" ;;
esac

# a daemon, then killed under the program
"$cmd" daemon --socket "$sock" 2>"$dir/log" &
dpid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
[ -S "$sock" ] || fail "the daemon did not start: $(cat "$dir/log")"
"$cmd" ctl --socket "$sock" set run 1 || fail "ctl set run 1"
"$cmd" ctl --socket "$sock" set sleep_millisecs 5 || fail "ctl set sleep_millisecs"
out=$("$cmd" run --require --socket "$sock" --all -- sh -c 'echo ran' 2>&1); rc=$?
[ $rc = 0 ] && [ "$out" = ran ] || fail "with a daemon: '$out' (exit $rc)"
# (a shell whose variables are alike: merged meanwhile, then the daemon dies)
SAMEPAGE_RUN_RESCAN_MS=20 "$cmd" run --socket "$sock" --all -- sh -c '
	i=0; s=""; while [ $i -lt 3000 ]; do s="$s abcdefghabcdefgh"; i=$((i + 1)); done
	sleep 1; t="$s"; i=0; while [ $i -lt 20 ]; do [ "$t" = "$s" ] || exit 9; i=$((i + 1)); sleep 0.1; done
	[ ${#s} = 51000 ] || exit 8; exit 5' &
ppid=$!
sleep 1.2
kill -KILL "$dpid"
wait "$dpid" 2>/dev/null
dpid=
wait "$ppid"; rc=$?
[ $rc = 5 ] || fail "a program whose daemon was killed: exit status $rc, not 5"
rm -rf "$dir"
echo "PASS cli/run_cli"

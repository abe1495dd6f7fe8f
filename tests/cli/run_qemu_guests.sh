#!/bin/bash
# SPDX-License-Identifier: MIT
# cli/run_qemu_guests - two QEMU guests (TCG, 256 MiB each, -machine
# mem-merge=on) started as `samepage run -- qemu-system-x86_64 ...` with a
# daemon of their own merge their memory through samepage: pages_sharing
# above a threshold (from scripts/qemu-run-compare.sh), no mg VmFlag in
# either QEMU (the kernel's KSM never asked), and the guests stay right: each
# checks a 16 MiB buffer against its checksums every second and says so on
# its console (scripts/qemu-guest-init.c), through the merging and through a
# balloon inflated by 64 MiB and deflated again (QEMU's MADV_DONTNEED of
# guest RAM, most of it merged by then); memory the guest maps afresh reads
# zeros.
#
# Skips (77), saying why: not root (the guests' memory needs the daemon's
# userfaultfd; the test is for the machine's administrator anyway), a
# sanitizer build, no qemu-system-x86_64 (Debian package qemu-system-x86; the
# numa/vm test installs it), no guest kernel (the numa/vm test, which runs
# first, and `make numa` fetch Debian's cloud kernel into build/numa-vm), no
# static glibc for the guest's init.
# usage: run_qemu_guests.sh PATH-TO-samepage   ($SAMEPAGE_VM_CACHE: the kernel)
set -u
cmd=$1
name=cli/run_qemu_guests
skip() { echo "SKIP $name: $*"; exit 77; }
[ -z "${SAMEPAGE_SANITIZE:-}" ] ||
	skip "a sanitizer's runtime cannot be preloaded into qemu (SANITIZE=$SAMEPAGE_SANITIZE)"
[ "$(id -u)" = 0 ] || skip "not root"
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
here=$(cd "$(dirname "$0")" && pwd)
cache=${SAMEPAGE_VM_CACHE:-$here/../../build/numa-vm}
. "$here/../../scripts/qemu-guests.sh"
w=$(mktemp -d /tmp/samepage-qemu-XXXXXX)
d=
cleanup() {
	qg_stop
	[ -n "$d" ] && kill -TERM "$d" 2>/dev/null && wait "$d"
	rm -rf "$w"
}
trap cleanup EXIT
fail() { echo "FAIL $name: $*"; for g in g1 g2; do echo "--- $g:"; tail -n 5 "$w/$g.serial"; done; exit 1; }
qg_prepare "$cache/kernel" "$w" || skip "$qg_why"

s=$w/sock
"$cmd" daemon --socket "$s" 2>"$w/daemon.err" &
d=$!
for i in $(seq 100); do [ -S "$s" ] && break; sleep 0.05; done
[ -S "$s" ] || fail "the daemon did not start: $(cat "$w/daemon.err")"
ctl() { "$cmd" ctl --socket "$s" "$@"; }
get() { ctl get "$1" | awk '{ print $NF }'; }
for kv in "pages_to_scan 20000" "sleep_millisecs 20" "run 1"; do ctl set $kv >/dev/null ||
	fail "ctl set $kv"; done
args="sp_mb=16 sp_seed=11 sp_fresh=8"
qg_start g1 256 "$args" "$cmd" run --require --socket "$s" --; p1=$qg_pid
qg_start g2 256 "$args" "$cmd" run --require --socket "$s" --; p2=$qg_pid
qg_wait_ready g1 60 && qg_wait_ready g2 60 || fail "the guests did not come up"

# merging: two full scans of both guests, at least
t0=$(date +%s)
want=20000
while [ "$(get pages_sharing)" -lt "$want" ] && [ $(($(date +%s) - t0)) -lt 30 ]; do sleep 1; done
shared=$(get pages_shared) sharing=$(get pages_sharing)
echo "pages_shared $shared pages_sharing $sharing after $(($(date +%s) - t0)) s" \
	"(merges_refused $(get merges_refused), store_pages $(get store_pages))"
[ "$sharing" -ge "$want" ] || fail "pages_sharing $sharing, expected at least $want"
[ "$shared" -gt 0 ] || fail "pages_shared 0"
for p in $p1 $p2; do
	n=$(grep -c ' mg' "/proc/$p/smaps")
	[ "$n" = 0 ] || fail "qemu $p: $n mappings with the mg VmFlag (the kernel's KSM was asked)"
done

# the balloon: 64 MiB out of each guest, and back
for g in g1 g2; do qg_mon $g "balloon 192"; done
for g in g1 g2; do
	t0=$(date +%s)
	until qg_mon $g "info balloon"; sleep 1; grep -aq "actual=192" "$w/$g.monout"; do
		[ $(($(date +%s) - t0)) -lt 40 ] || fail "$g: the balloon did not inflate to 192 MiB" \
			"($(grep -a actual "$w/$g.monout" | tail -n 1))"
	done
done
for g in g1 g2; do qg_mon $g "balloon 256"; done
h1=$(qg_hb g1) h2=$(qg_hb g2)
sleep 6
for g in g1 g2; do
	bad=$(qg_bad $g)
	[ "$bad" = 0 ] || fail "$g: $(grep -a BAD "$w/$g.serial" | head -n 3)"
	grep -aq "sp-guest: fresh .* ok" "$w/$g.serial" || fail "$g: no fresh memory checked"
done
[ "$(qg_hb g1)" -gt "$h1" ] && [ "$(qg_hb g2)" -gt "$h2" ] ||
	fail "a guest stopped after the balloon (heartbeats $h1 -> $(qg_hb g1), $h2 -> $(qg_hb g2))"
echo "heartbeats $(qg_hb g1) $(qg_hb g2), every page right; balloon 256 -> 192 -> 256 MiB"
echo "PASS $name"

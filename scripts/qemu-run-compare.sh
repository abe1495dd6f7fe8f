#!/bin/bash
# SPDX-License-Identifier: MIT
# qemu-run-compare.sh - two TCG guests of 512 MiB (the Debian cloud kernel
# that `make numa` keeps in build/numa-vm, scripts/qemu-guest-init.c as
# init: a 32 MiB buffer checked every second, a heartbeat on the serial
# console), started with -machine mem-merge=on: first under the kernel's
# KSM, then under `samepage run` with a daemon of its own.  For each side:
# pages_shared, pages_sharing, the memory given back (the guests' Pss, and
# the daemon's, before merging and after $SECONDS_EACH seconds of it; the
# page frames they hold, a huge page counted whole while any part of it is
# mapped, scripts/qemu-frames.c; the machine's MemAvailable, noisy), the
# guests' mg VmFlags (none under samepage run), their heartbeats and BAD
# lines (none).  With BALLOON=1 (default) each side then inflates both
# balloons to half the guest and deflates them again (QEMU gives the pages
# back with MADV_DONTNEED; the guest kernel, with init_on_free=1 and free
# page reporting, relies on zeros afterwards, which the guests check every
# fifth second in 16 MiB mapped afresh).
#
# Root only: it sets the kernel's KSM knobs (under flock
# /tmp/samepage-kernel-ksm.lock) and puts them back.  Not part of `make test`
# (tests/cli/run_qemu_guests.sh is the short version there).
# usage: scripts/qemu-run-compare.sh [BUILD-DIR]
#   SECONDS_EACH (default 25), BALLOON (1), GUEST_MB (512), BUF_MB (32),
#   SIDES (kernel,samepage; or one of them), KEEP (1: keep the guests'
#   consoles and monitor logs), QG_REPORTING (1: the balloon's free page
#   reporting too), GUEST_ARGS (added to the guests' kernel command line,
#   e.g. init_on_free=1), SMAPS (a directory: the guests' and daemon's
#   /proc/PID/smaps before and after merging are saved there, to see where
#   the memory went mapping by mapping)
set -u
B=$(cd "${1:-build}" && pwd) || exit 2
here=$(cd "$(dirname "$0")" && pwd)
T=${SECONDS_EACH:-25}
BALLOON=${BALLOON:-1}
GMB=${GUEST_MB:-512}
BMB=${BUF_MB:-32}
[ "$(id -u)" = 0 ] || { echo "root only (the kernel's KSM knobs)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64"; exit 77; }
. "$here/qemu-guests.sh"
w=$(mktemp -d /tmp/qemu-run-XXXXXX)
ksm=/sys/kernel/mm/ksm
exec 8>/tmp/samepage-kernel-ksm.lock
flock 8
o_pts=$(cat $ksm/pages_to_scan) o_sl=$(cat $ksm/sleep_millisecs) o_run=$(cat $ksm/run)
o_man=$(cat $ksm/merge_across_nodes)
d=
restore() {
	qg_stop
	[ -n "$d" ] && kill -TERM "$d" 2>/dev/null && wait "$d"
	echo 2 > $ksm/run
	echo "$o_pts" > $ksm/pages_to_scan; echo "$o_sl" > $ksm/sleep_millisecs
	echo "$o_man" > $ksm/merge_across_nodes 2>/dev/null; echo "$o_run" > $ksm/run
	echo "kernel KSM knobs back: run $(cat $ksm/run) pages_to_scan $(cat $ksm/pages_to_scan)" \
		"sleep_millisecs $(cat $ksm/sleep_millisecs)" \
		"merge_across_nodes $(cat $ksm/merge_across_nodes)"
	[ "${KEEP:-0}" = 1 ] && echo "logs kept in $w" || rm -rf "$w"
}
trap restore EXIT
qg_prepare "$B/numa-vm/kernel" "$w" || { echo "$qg_why"; exit 77; }
gcc -O2 -Wall -Wextra -Werror -o "$w/frames" "$here/qemu-frames.c" || exit 2
# the page frames the processes named hold, MiB (huge pages counted whole)
frames_mb() { "$w/frames" "$@"; }
args="sp_mb=$BMB sp_seed=7 sp_fresh=16 ${GUEST_ARGS:-}"

# sum of the Pss of the processes named, MiB
pss_mb() {
	local s=0 p
	for p in "$@"; do s=$((s + $(qg_pss "$p"))); done
	echo $((s / 1024))
}
# the machine's MemAvailable, MiB (the whole machine: noisy, but it sees
# what Pss cannot: huge pages partly unmapped, waiting to be split)
avail_mb() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
# save the smaps of the processes named, as $SMAPS/<label>-<pid>.smaps
save_smaps() {
	local label=$1 p; shift
	[ -n "${SMAPS:-}" ] || return 0
	mkdir -p "$SMAPS"
	for p in "$@"; do cat "/proc/$p/smaps" > "$SMAPS/$label-$p.smaps"; done
}
# Pss_Anon, Pss_Shmem and AnonHugePages of the processes named, MiB
detail() {
	local p
	for p in "$@"; do
		awk -v p="$p" '/^(Pss_Anon|Pss_Shmem|AnonHugePages):/ { v[$1] = int($2 / 1024) }
			END { printf "    pid %s: Pss_Anon %d Pss_Shmem %d AnonHugePages %d MiB\n", p,
				v["Pss_Anon:"], v["Pss_Shmem:"], v["AnonHugePages:"] }' \
			"/proc/$p/smaps_rollup"
	done
}

report_guests() {
	local label=$1 n
	for n in 1 2; do
		echo "  guest $label$n: heartbeat $(qg_hb "$label$n"), BAD lines $(qg_bad "$label$n")," \
			"fresh checks ok $(grep -ac 'fresh .* ok' "$w/$label$n.serial")"
	done
}

balloon() {
	local label=$1 n
	[ "$BALLOON" = 1 ] || return 0
	for n in 1 2; do qg_mon "$label$n" "balloon $((GMB / 2))"; done
	sleep 8
	for n in 1 2; do qg_mon "$label$n" "info balloon"; done
	sleep 1
	echo "  balloon inflated to $((GMB / 2)) MiB: $(grep -ah 'actual' "$w/${label}1.monout" "$w/${label}2.monout" | tr -d '\r' | tr '\n' ' ')"
	for n in 1 2; do qg_mon "$label$n" "balloon $GMB"; done
	sleep 8
	for n in 1 2; do qg_mon "$label$n" "info balloon"; done
	sleep 1
	echo "  deflated: $(for n in 1 2; do grep -a 'actual' "$w/$label$n.monout" | tail -n 1; done | tr -d '\r' | tr '\n' ' ')"
}

# --- the kernel's KSM ---
if [ "${SIDES:-kernel,samepage}" != samepage ]; then
echo 2 > $ksm/run; echo 20000 > $ksm/pages_to_scan; echo 20 > $ksm/sleep_millisecs
qg_start k1 "$GMB" "$args"; k1=$qg_pid
qg_start k2 "$GMB" "$args"; k2=$qg_pid
qg_wait_ready k1 120 && qg_wait_ready k2 120 || { echo "kernel side: guests did not come up"; exit 1; }
sleep 3
before=$(pss_mb $k1 $k2) abefore=$(avail_mb) fbefore=$(frames_mb $k1 $k2)
save_smaps kernel-before $k1 $k2
detail $k1 $k2
echo 1 > $ksm/run
sleep "$T"
after=$(pss_mb $k1 $k2) aafter=$(avail_mb) fafter=$(frames_mb $k1 $k2)
save_smaps kernel-after $k1 $k2
echo "kernel KSM:    pages_shared $(cat $ksm/pages_shared) pages_sharing $(cat $ksm/pages_sharing)" \
	"($(( $(cat $ksm/pages_sharing) * 4 / 1024 )) MiB); guests' Pss $before -> $after MiB:" \
	"given back $((before - after)) MiB; MemAvailable +$((aafter - abefore)) MiB"
echo "  page frames held (huge pages whole): $fbefore -> $fafter MiB: given back $((fbefore - fafter)) MiB"
# ksmd's own metadata (rmap items, stable nodes) is kernel memory, in no
# Pss; general_profit = (pages_sharing + ksm_zero_pages) * page - rmap items'
# size: samepage's is in the daemon's Pss above
if [ -r $ksm/general_profit ]; then
	meta=$(( ( ($(cat $ksm/pages_sharing) + $(cat $ksm/ksm_zero_pages 2>/dev/null || echo 0)) * 4096 \
		- $(cat $ksm/general_profit) ) / 1048576 ))
	echo "  ksmd's metadata (from general_profit, in no Pss): $meta MiB; given back net of it:" \
		"$((before - after - meta)) MiB"
fi
detail $k1 $k2
balloon k
sleep 6
echo "  after the balloon: pages_shared $(cat $ksm/pages_shared) pages_sharing $(cat $ksm/pages_sharing)," \
	"guests' Pss $(pss_mb $k1 $k2) MiB"
report_guests k
qg_stop
echo 2 > $ksm/run; sleep 1
echo "$o_pts" > $ksm/pages_to_scan; echo "$o_sl" > $ksm/sleep_millisecs; echo "$o_run" > $ksm/run
fi
[ "${SIDES:-kernel,samepage}" = kernel ] && exit 0

# --- samepage run, a daemon of its own ---
s=$w/sock
"$B/samepage" daemon --socket "$s" 2>"$w/daemon.err" &
d=$!
while [ ! -S "$s" ]; do sleep 0.05; done
ctl() { "$B/samepage" ctl --socket "$s" "$@"; }
for kv in "run 0" "pages_to_scan 20000" "sleep_millisecs 20"; do ctl set $kv; done
qg_start s1 "$GMB" "$args" "$B/samepage" run --socket "$s" --; s1=$qg_pid
qg_start s2 "$GMB" "$args" "$B/samepage" run --socket "$s" --; s2=$qg_pid
qg_wait_ready s1 120 && qg_wait_ready s2 120 || { echo "samepage side: guests did not come up"; exit 1; }
sleep 3
# (samepage run execs qemu: the pids are qemu's)
before=$(pss_mb $s1 $s2 $d) abefore=$(avail_mb) fbefore=$(frames_mb $s1 $s2 $d)
save_smaps samepage-before $s1 $s2 $d
detail $s1 $s2 $d
ctl set run 1
sleep "$T"
after=$(pss_mb $s1 $s2 $d) aafter=$(avail_mb) fafter=$(frames_mb $s1 $s2 $d)
save_smaps samepage-after $s1 $s2 $d
get() { ctl get "$@" | awk '{ printf "%s ", $0 }'; }
sharing=$(ctl get pages_sharing | awk '{ print $NF }')
echo "samepage run:  $(get pages_shared pages_sharing merges_refused store_pages)" \
	"($((sharing * 4 / 1024)) MiB); guests' and daemon's Pss $before -> $after MiB:" \
	"given back $((before - after)) MiB; MemAvailable +$((aafter - abefore)) MiB"
echo "  page frames held (huge pages whole): $fbefore -> $fafter MiB: given back $((fbefore - fafter)) MiB"
echo "  store: $(get store_slots store_pages_spent store_sweeps store_pages_reclaimed store_pages_punched)"
detail $s1 $s2 $d
for p in $s1 $s2; do echo "  qemu $p: $(grep -c ' mg' /proc/$p/smaps) mappings with the mg VmFlag"; done
balloon s
sleep 6
echo "  after the balloon: $(get pages_shared pages_sharing), guests' and daemon's Pss" \
	"$(pss_mb $s1 $s2 $d) MiB"
report_guests s
qg_stop
kill -TERM "$d"; wait "$d"; echo "daemon exit status $?"; d=

#!/bin/sh
# SPDX-License-Identifier: MIT
# qemu-run-compare.sh - two idle TCG guests (the Debian cloud kernel that
# `make numa` keeps in build/numa-vm, an init that only pauses), started with
# -machine mem-merge=on: first under the kernel's KSM, then under
# `samepage run` with a daemon of their own; prints both sides' counters and
# the guests' mg VmFlags (none under samepage run).  Root only: it sets the
# kernel's KSM knobs and puts them back.  Not part of `make test`.
# usage: scripts/qemu-run-compare.sh [BUILD-DIR]   ($SECONDS_EACH, default 25)
set -u
B=$(cd "${1:-build}" && pwd) || exit 2
K=$(ls "$B"/numa-vm/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
T=${SECONDS_EACH:-25}
[ "$(id -u)" = 0 ] || { echo "root only (the kernel's KSM knobs)"; exit 77; }
[ -n "$K" ] || { echo "no kernel in $B/numa-vm (run make numa once)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64"; exit 77; }
w=$(mktemp -d /tmp/qemu-run-XXXXXX)
trap 'rm -rf "$w"' EXIT
printf '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n' > "$w/idle.c"
mkdir "$w/root" && gcc -static -O2 -o "$w/root/init" "$w/idle.c" || exit 2
(cd "$w/root" && find . | cpio -o -H newc --quiet -R 0:0) > "$w/initrd" || exit 2
pids=
guest() {
	$pre qemu-system-x86_64 -machine pc,mem-merge=on -accel tcg -m 512 -smp 1 \
		-kernel "$K" -initrd "$w/initrd" -append "console=ttyS0 quiet panic=-1" \
		-display none -serial null -monitor none -nodefaults -no-reboot 2>/dev/null &
	pids="$pids $!"
}
stop() { for p in $pids; do kill "$p"; done; wait $pids 2>/dev/null; pids=; }
ksm=/sys/kernel/mm/ksm
o_pts=$(cat $ksm/pages_to_scan) o_sl=$(cat $ksm/sleep_millisecs) o_run=$(cat $ksm/run)
echo 20000 > $ksm/pages_to_scan; echo 20 > $ksm/sleep_millisecs; echo 1 > $ksm/run
pre=; guest; guest
sleep "$T"
echo "kernel KSM:    pages_shared $(cat $ksm/pages_shared) pages_sharing $(cat $ksm/pages_sharing)"
stop
echo 2 > $ksm/run; sleep 1
echo "$o_pts" > $ksm/pages_to_scan; echo "$o_sl" > $ksm/sleep_millisecs; echo "$o_run" > $ksm/run
s=$w/sock
"$B/samepage" daemon --socket "$s" 2>/dev/null &
d=$!
while [ ! -S "$s" ]; do sleep 0.05; done
for kv in "pages_to_scan 20000" "sleep_millisecs 20" "run 1"; do
	"$B/samepage" ctl --socket "$s" set $kv
done
pre="$B/samepage run --socket $s --"; guest; guest
sleep "$T"
echo "samepage run:  $("$B/samepage" ctl --socket "$s" get pages_shared pages_sharing merges_refused | tr '\n' ' ')"
for p in $pids; do echo "guest $p: $(grep -c ' mg' /proc/$p/smaps) mappings with the mg VmFlag"; done
stop
kill -TERM "$d"; wait "$d"; echo "daemon exit status $?"

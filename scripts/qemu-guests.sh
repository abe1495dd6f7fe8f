# SPDX-License-Identifier: MIT
# qemu-guests.sh - sourced by bash scripts (scripts/qemu-run-compare.sh,
# tests/cli/run_qemu_guests.sh): small TCG guests of the Debian cloud kernel
# that `make numa` keeps in build/numa-vm, running scripts/qemu-guest-init.c,
# each with its serial console in a file, its monitor on a fifo, a
# virtio-balloon with free page reporting.
#
#   qg_prepare KERNEL-DIR WORK   build the init and the initramfs in WORK
#                                (0, or 1 with the reason in $qg_why)
#   qg_start NAME MB ARGS PRE... start guest NAME (MB MiB of RAM, ARGS added
#                                to the kernel command line) under the
#                                command PRE... (empty: none); sets qg_pid
#   qg_mon NAME CMD              a monitor command (HMP)
#   qg_stop                      stop every guest started
#   qg_wait_ready NAME SECONDS   until the guest's buffer is filled
#   qg_hb NAME                   the last heartbeat number (0: none)
#   qg_bad NAME                  the number of BAD lines on its console
#   qg_pss PID                   Pss of a process, KiB (smaps_rollup)
qg_pids=
qg_names=

qg_prepare() {
	local kdir=$1 here
	qg_work=$2
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	qg_kernel=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | head -n 1)
	if [ -z "$qg_kernel" ]; then
		qg_why="no guest kernel in $kdir (make numa fetches it)"
		return 1
	fi
	mkdir -p "$qg_work/root/mods" || { qg_why="cannot create $qg_work"; return 1; }
	if ! gcc -static -O2 -Wall -Wextra -Werror -o "$qg_work/root/init" \
		"$here/qemu-guest-init.c" 2>"$qg_work/gcc.err"; then
		qg_why="cannot build the guest init static: $(head -n 3 "$qg_work/gcc.err")"
		return 1
	fi
	# the balloon's driver, a module of this kernel, in dependency order
	local m f
	: > "$qg_work/root/mods/order"
	for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
		virtio_balloon; do
		f=$(find "$kdir/lib/modules" -name "$m.ko" 2>/dev/null | head -n 1)
		[ -n "$f" ] || continue
		cp "$f" "$qg_work/root/mods/" && echo "$m.ko" >> "$qg_work/root/mods/order"
	done
	(cd "$qg_work/root" && find . | cpio -o -H newc --quiet -R 0:0) > "$qg_work/initrd" ||
		{ qg_why="cannot build the initramfs (cpio)"; return 1; }
	return 0
}

qg_start() {
	local name=$1 mb=$2 args=$3
	shift 3
	mkfifo "$qg_work/$name.mon" || return 1
	# (the fifo kept open for writing: the monitor never sees an end)
	eval "exec {qg_fd_$name}<>\"\$qg_work/\$name.mon\""
	"$@" qemu-system-x86_64 -machine pc,mem-merge=on -accel tcg -m "$mb" -smp 1 \
		-kernel "$qg_kernel" -initrd "$qg_work/initrd" \
		-append "console=ttyS0 quiet panic=-1 $args" \
		-display none -nodefaults -no-reboot -serial "file:$qg_work/$name.serial" \
		-device "virtio-balloon-pci${QG_REPORTING:+,free-page-reporting=on}" \
		-monitor stdio < "$qg_work/$name.mon" > "$qg_work/$name.monout" 2>&1 &
	qg_pid=$!
	qg_pids="$qg_pids $qg_pid"
	qg_names="$qg_names $name"
	eval "qg_pid_$name=$qg_pid"
}

qg_mon() {
	local fd
	eval "fd=\$qg_fd_$1"
	printf '%s\n' "$2" >&"$fd"
}

qg_stop() {
	local p
	for p in $qg_pids; do kill "$p" 2>/dev/null; done
	for p in $qg_pids; do wait "$p" 2>/dev/null; done
	qg_pids=
}

qg_wait_ready() {
	local i=0
	while ! grep -q "sp-guest: ready" "$qg_work/$1.serial" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
	return 0
}

qg_hb() {
	grep -a "sp-guest: hb " "$qg_work/$1.serial" 2>/dev/null | tail -n 1 | awk '{ print $3 + 0 }'
}

qg_bad() {
	grep -ac "BAD" "$qg_work/$1.serial" 2>/dev/null
}

qg_pss() {
	awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}

qg_rss() {
	awk '/^Rss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}

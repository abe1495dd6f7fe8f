#!/bin/bash
# numa-vm.sh BINARY [ARG...] - run BINARY as root inside a virtual machine with
# two NUMA nodes and two CPUs (qemu TCG, Debian's cloud kernel, KSM and
# userfaultfd on), stream its output and exit with its status.
#
# BINARY may be static or dynamic: the libraries `ldd` lists are copied into
# the machine at the same paths, and so is BINARY itself.
#
# Exit status: BINARY's (128+N if a signal N killed it); 124 when the machine
# ran out of time; 125 when it could not be set up or did not boot (the reason
# on stderr).
#
# Environment:
#   SAMEPAGE_VM_CACHE     where the kernel and the init are kept
#                         (default: build/numa-vm beside this script's repository)
#   SAMEPAGE_VM_TIMEOUT   seconds before the machine is stopped (default 600)
#   SAMEPAGE_VM_NODE_MB   memory of each node in MiB (default 256)
#   SAMEPAGE_VM_VERBOSE   1: also show the kernel's boot messages
set -u

die() {
	echo "numa-vm: $*" >&2
	exit 125
}

[ $# -ge 1 ] || { echo "usage: numa-vm.sh BINARY [ARG...]" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${SAMEPAGE_VM_CACHE:-$repo/build/numa-vm}
timeout_s=${SAMEPAGE_VM_TIMEOUT:-600}
node_mb=${SAMEPAGE_VM_NODE_MB:-256}
verbose=${SAMEPAGE_VM_VERBOSE:-0}

bin=$1
shift
case "$bin" in
*/*) ;;
*) bin=$(command -v "$bin" 2>/dev/null) || die "no such program: $1" ;;
esac
[ -f "$bin" ] && [ -x "$bin" ] || die "not an executable file: $bin"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

mkdir -p "$cache" || die "cannot create the cache directory $cache"

# --- what the machine needs, once (under a lock: runs may be concurrent) ---
setup() {
	local missing=""
	command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
	command -v cpio >/dev/null || missing="$missing cpio"
	command -v gcc >/dev/null || missing="$missing gcc libc6-dev"
	if [ -n "$missing" ]; then
		"$here/install-deps.sh" $missing >&2 ||
			die "cannot install$missing (needed to run the virtual machine)"
	fi

	# The kernel: Debian's cloud kernel, unpacked here (never installed on
	# this machine: its /boot is not ours to change).
	if ! ls "$cache"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
		local pkg tmp
		pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			awk '/Depends: linux-image-/ { print $2; exit }')
		if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
			apt-get update -qq >/dev/null 2>&1
			pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
				awk '/Depends: linux-image-/ { print $2; exit }')
		fi
		[ -n "$pkg" ] || die "no Debian package linux-image-cloud-amd64 known to apt"
		tmp=$(mktemp -d "$cache/dl.XXXXXX") || die "mktemp failed"
		chmod 777 "$tmp"
		(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
			{ rm -rf "$tmp"; die "cannot download $pkg"; }
		rm -rf "$cache/kernel"
		dpkg-deb -x "$tmp"/*.deb "$cache/kernel" ||
			{ rm -rf "$tmp"; die "cannot unpack $pkg"; }
		rm -rf "$tmp"
	fi

	# The init: a small static program of ours.
	if [ ! -x "$cache/init" ] || [ "$here/numa-vm-init.c" -nt "$cache/init" ]; then
		gcc -static -O2 -Wall -Wextra -Werror -o "$cache/init.tmp" \
			"$here/numa-vm-init.c" || die "cannot build the init (static glibc needed)"
		mv "$cache/init.tmp" "$cache/init"
	fi
}

exec 9>"$cache/.lock"
flock 9
setup
flock -u 9
exec 9>&-

kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
[ -n "$kernel" ] || die "no kernel in $cache/kernel/boot"

# --- the initramfs of this run ---
work=$(mktemp -d "${TMPDIR:-/tmp}/numa-vm.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{dev,proc,sys,tmp,etc} || die "cannot build the initramfs"
cp "$cache/init" "$root/init"

copy_in() {	# copy a file to the same path inside the machine
	mkdir -p "$root$(dirname "$1")" && cp -L "$1" "$root$1"
}
copy_in "$bin" || die "cannot copy $bin"
if ldd "$bin" >/dev/null 2>&1; then
	for lib in $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
		copy_in "$lib" || die "cannot copy $lib (a library of $bin)"
	done
fi

marker="numa-vm-$$-$RANDOM$RANDOM"
{
	printf '%s\n' "$marker"
	printf '%s\0' "$bin" "$@"
} > "$root/numa-vm.cmd"

(cd "$root" && find . | cpio -o -H newc --quiet -R 0:0) > "$work/initrd.cpio" ||
	die "cannot build the initramfs"

# --- boot ---
# slab_nomerge: every slab cache stays its own, so that a program can count
# the objects of one (numa_stories counts KSM's ksm_stable_node).
append="console=ttyS0 panic=-1 numa_balancing=disable mitigations=off slab_nomerge"
[ "$verbose" = 1 ] || append="$append quiet loglevel=1"
log=$work/console.log
started=0
status=""
blank=0		# empty lines held back (the one before the status line is ours)

while IFS= read -r line; do
	line=${line%$'\r'}
	printf '%s\n' "$line" >> "$log"
	case "$line" in
	"$marker start") started=1; continue ;;
	"$marker exit "*) status=${line#"$marker exit "}; continue ;;
	"$marker qemu "*) continue ;;
	esac
	if [ "$started" = 1 ] && [ -z "$status" ] || [ "$verbose" = 1 ]; then
		if [ -z "$line" ]; then
			blank=$((blank + 1))
			continue
		fi
		while [ "$blank" -gt 0 ]; do echo; blank=$((blank - 1)); done
		printf '%s\n' "$line"
	fi
done < <(timeout -k 10 "$timeout_s" qemu-system-x86_64 \
	-machine q35 -smp 2 -m $((2 * node_mb))M \
	-object memory-backend-ram,id=m0,size=${node_mb}M \
	-object memory-backend-ram,id=m1,size=${node_mb}M \
	-numa node,nodeid=0,cpus=0,memdev=m0 \
	-numa node,nodeid=1,cpus=1,memdev=m1 \
	-kernel "$kernel" -initrd "$work/initrd.cpio" -append "$append" \
	-display none -serial stdio -monitor none -no-reboot -nodefaults \
	< /dev/null 2>&1; echo "$marker qemu $?")

qemu_rc=$(sed -n "s/^$marker qemu //p" "$log" 2>/dev/null | tail -n 1)
if [ -n "$status" ]; then
	exit "$status"
fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "numa-vm: the virtual machine ran out of time (${timeout_s}s; SAMEPAGE_VM_TIMEOUT)" >&2
	exit 124
fi
if [ "$started" = 1 ]; then
	echo "numa-vm: $bin did not report a status (the machine stopped: qemu status $qemu_rc)" >&2
	exit 125
fi
echo "numa-vm: the virtual machine did not boot (qemu status ${qemu_rc:-unknown}; SAMEPAGE_VM_VERBOSE=1 shows the kernel's messages); its last lines:" >&2
grep -v "^$marker" "$log" 2>/dev/null | tail -n 20 >&2
exit 125

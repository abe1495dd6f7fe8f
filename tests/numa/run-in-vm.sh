#!/bin/sh
# run-in-vm.sh BINARY [ARG...] - ctest's way to scripts/numa-vm.sh: a machine
# that cannot boot the virtual machine skips (77) instead of failing.
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../scripts/numa-vm.sh" "$@"
rc=$?
if [ "$rc" = 125 ]; then
	echo "SKIP: the two-node virtual machine cannot run here (see the reason above)"
	exit 77
fi
exit "$rc"

#!/bin/sh
# SPDX-License-Identifier: MIT
# cli/run_shim_exports - libsamepage-run.so exports exactly the functions it
# interposes (madvise, ioctl, mremap, munmap, prctl), unversioned, so that
# they stand in for glibc's, and none of the library linked into it; and
# the library's own calls of them are wrapped (no undefined reference).
# usage: run_shim_exports.sh PATH-TO-libsamepage-run.so
lib=$1
command -v nm >/dev/null || { echo "SKIP cli/run_shim_exports: no nm"; exit 77; }
fail() { echo "FAIL cli/run_shim_exports: $*"; exit 1; }
got=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | sort | tr '\n' ' ')
[ "$got" = "ioctl madvise mremap munmap prctl " ] || fail "exports: '$got'"
und=$(nm -D --undefined-only "$lib" | awk '{ print $2 }' |
	grep -E '^(madvise|ioctl|munmap|mremap|prctl)(@|$)' | tr '\n' ' ')
[ -z "$und" ] || fail "the library's own calls reach the interposed symbols: '$und'"
echo "PASS cli/run_shim_exports"

#!/bin/sh
# SPDX-License-Identifier: MIT
# docs/readme_snippet - the library code shown in README.md is the code of
# examples/library.c (which make test compiles and runs): every line of the
# block after "<!-- snippet: examples/library.c -->", except "..." lines,
# is a line of that file, in the same order.
# usage: readme_snippet.sh SOURCE-DIR
src=$1
readme=$src/README.md
example=$src/examples/library.c
block=$(awk '/<!-- snippet: examples\/library.c -->/ { on = 1; next }
	on && /^```c$/ { inside = 1; next }
	inside && /^```$/ { exit }
	inside { print }' "$readme")
[ -n "$block" ] || { echo "FAIL docs/readme_snippet: no snippet block in $readme"; exit 1; }
# each line must be found after the previous one's line number
last=0
n=0
printf '%s\n' "$block" | {
	while IFS= read -r line; do
		case "$line" in *...|"") continue ;; esac
		# (through the environment: awk -v would interpret backslashes)
		at=$(WANT=$line awk -v after="$last" \
			'NR > after && $0 == ENVIRON["WANT"] { print NR; exit }' "$example")
		if [ -z "$at" ]; then
			echo "FAIL docs/readme_snippet: this README line is not in $example" \
				"(after its line $last):"
			printf '  %s\n' "$line"
			exit 1
		fi
		last=$at
		n=$((n + 1))
	done
	echo "docs/readme_snippet: $n lines, all in examples/library.c in order"
}

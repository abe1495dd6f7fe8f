/* SPDX-License-Identifier: MIT */
/*
 * sim_fuzz.c - libFuzzer harness for the scenario interpreter (built by
 * hand, never by `make test`):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/sim -Isrc/core \
 *     -Iinclude tests/fuzz/sim_fuzz.c src/sim/[a-z]*.c src/core/[a-z]*.c -lxxhash \
 *     -o /tmp/sim_fuzz && /tmp/sim_fuzz -max_len=4096 tests/scenarios
 *
 * Each input is a script after a fixed small machine line; every line runs
 * whatever the previous ones answered.  Lines that would only be slow (big
 * scans, huge mappings) are skipped.  Any answer other than 0, 1 or 2 aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static int slow(const char *line)
{
	const char *p = line;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strstr(p, "machine"))
		return 1;
	if (strstr(p, "scan") || strstr(p, "mmap")) {
		for (const char *q = p; *q; q++)
			if (*q >= '0' && *q <= '9' && strtoull(q, NULL, 0) > 300)
				return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *p;
	struct sim *s;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i < size; i++)
		if (!text[i])
			text[i] = '\n';
	if (sim_new(&s, 1)) {
		free(text);
		return 0;
	}
	sim_set_output(s, NULL);
	sim_run_line(s, "machine nodes=2 pages=32 page_size=64");
	for (p = text; *p;) {
		size_t k = strcspn(p, "\n");
		char save = p[k];

		p[k] = '\0';
		if (!slow(p)) {
			int r = sim_run_line(s, p);

			if (r < 0 || r > 2)
				abort();
		}
		p[k] = save;
		p += k + (save ? 1 : 0);
	}
	sim_check(s, NULL, NULL);
	sim_free(s);
	free(text);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * real_free_unregistered - samepage_free refuses memory that is not
 * registered with the handle (never registered, freed already, or only in
 * part) with -EINVAL and a message, and leaves it mapped and intact.
 */
#include "real_util.h"

static void expect_intact(const char *p, const char *shadow, size_t len, const char *what)
{
	/* still mapped (reading would fault otherwise) and unchanged */
	if (memcmp(p, shadow, len))
		FAIL("%s: content changed", what);
}

static void expect_einval(struct samepage *sp, void *p, size_t len, const char *what)
{
	int err = samepage_free(sp, p, len);

	if (err != -EINVAL)
		FAIL("%s: samepage_free returned %d, expected -EINVAL", what, err);
	if (!strstr(samepage_last_error(), "not memory registered"))
		FAIL("%s: unclear error: %s", what, samepage_last_error());
}

int main(void)
{
	real_test_name = "real_free_unregistered";
	size_t ps = page_size(), n = 8;
	struct samepage *sp = open_or_skip();
	char *shadow = malloc(2 * n * ps);

	CHECK(shadow);
	for (size_t j = 0; j < 2 * n * ps; j++)
		shadow[j] = (char)(1 + j % 253);

	/* never registered */
	char *u = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(u != MAP_FAILED);
	memcpy(u, shadow, n * ps);
	expect_einval(sp, u, n * ps, "never registered");
	expect_intact(u, shadow, n * ps, "never registered");

	/* double free */
	char *a = samepage_alloc(sp, n * ps);

	CHECK(a);
	memcpy(a, shadow, n * ps);
	CHECK_EQ(samepage_free(sp, a, n * ps), 0);
	char *again = mmap(a, n * ps, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	/* the address is free after the first free: something else may live
	 * there now (here: new memory of the application's) */
	CHECK(again == a);
	memcpy(again, shadow, n * ps);
	expect_einval(sp, a, n * ps, "double free");
	expect_intact(again, shadow, n * ps, "double free");
	munmap(again, n * ps);

	/* partly registered: a registered half and an unregistered half */
	char *m = mmap(NULL, 2 * n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(m != MAP_FAILED);
	memcpy(m, shadow, 2 * n * ps);
	CHECK_EQ(samepage_madvise(sp, m, n * ps, SAMEPAGE_MERGEABLE), 0);
	CHECK_EQ(samepage_scan_full(sp, 2), 0);
	expect_einval(sp, m, 2 * n * ps, "partly registered");
	expect_intact(m, shadow, 2 * n * ps, "partly registered");
	/* the registered half is still registered: freeing it works */
	CHECK_EQ(samepage_free(sp, m, n * ps), 0);
	expect_intact(m + n * ps, shadow + n * ps, n * ps, "the other half");

	CHECK_EQ(samepage_close(sp), 0);
	expect_intact(u, shadow, n * ps, "never registered, after close");
	munmap(u, n * ps);
	munmap(m + n * ps, n * ps);
	free(shadow);
	printf("free of unregistered memory refused\n");
	return 0;
}

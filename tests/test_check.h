/* SPDX-License-Identifier: MIT */
/*
 * test_check.h - the assertions of the test programs: a failure prints
 * FILE:LINE and what was expected, and exits 1.
 */
#ifndef SAMEPAGE_TESTS_TEST_CHECK_H
#define SAMEPAGE_TESTS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FAIL(...) do { \
	fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); \
	exit(1); \
} while (0)

#define CHECK(cond) do { if (!(cond)) FAIL("%s", #cond); } while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) FAIL("%s == %lld, expected %s == %lld", #a, _a, #b, _b); \
} while (0)

#endif /* SAMEPAGE_TESTS_TEST_CHECK_H */

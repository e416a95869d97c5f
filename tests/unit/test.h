/* test.h - a tiny unit test harness: TEST() functions, CHECK macros, and a
 * summary line "RESULT <passed> <failed>" that tests/run.sh adds up. */
#ifndef RF_TEST_H
#define RF_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name;

#define CHECK(cond) do { \
	if (!(cond)) { \
		test_cur_failed++; \
		fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", \
			__FILE__, __LINE__, test_cur_name, #cond); \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { \
		test_cur_failed++; \
		fprintf(stderr, "  %s:%d: %s: %s == %lld, expected %lld\n", \
			__FILE__, __LINE__, test_cur_name, #a, a_, b_); \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
		test_cur_failed++; \
		fprintf(stderr, "  %s:%d: %s: %s == \"%s\", expected \"%s\"\n", \
			__FILE__, __LINE__, test_cur_name, #a, \
			a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} \
} while (0)

/* CHECK_MEM(ptr, len, "literal"): a length-delimited view equals a C string. */
#define CHECK_MEM(p, n, lit) do { \
	const char *p_ = (p); size_t n_ = (n); \
	if (!p_ || n_ != strlen(lit) || memcmp(p_, lit, n_) != 0) { \
		test_cur_failed++; \
		fprintf(stderr, "  %s:%d: %s: %s == \"%.*s\", expected \"%s\"\n", \
			__FILE__, __LINE__, test_cur_name, #p, \
			p_ ? (int)n_ : 6, p_ ? p_ : "(null)", lit); \
	} \
} while (0)

#define RUN(fn) do { \
	test_cur_name = #fn; \
	test_cur_failed = 0; \
	fn(); \
	if (test_cur_failed) { \
		test_failed++; \
		printf("FAIL %s\n", #fn); \
	} else { \
		test_passed++; \
		printf("ok   %s\n", #fn); \
	} \
} while (0)

#define TEST_REPORT() do { \
	printf("RESULT %d %d\n", test_passed, test_failed); \
	return test_failed ? 1 : 0; \
} while (0)

#endif

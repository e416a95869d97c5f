/* fuzz.h - what the libFuzzer targets in tests/fuzz/ share: an invariant
 * check that stops the run with a message (libFuzzer then saves the input),
 * and small helpers to test that a view lies inside the fuzzed buffer.
 *
 * The same fuzz_*.c files are built three ways: with -fsanitize=fuzzer by
 * tests/fuzz/run.sh (`make fuzz`), with replay.c as a plain program that
 * runs files through the target, and #included by tests/unit/
 * test_fuzz_corpus.c (FUZZ_UNIT) so `make test` replays every corpus file.
 * In FUZZ_UNIT mode a failed check jumps back to the runner instead of
 * aborting, so the unit test can name the input that failed. */
#ifndef RF_FUZZ_H
#define RF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FUZZ_UNIT
#include <setjmp.h>
static jmp_buf *fuzz_unit_jmp;          /* set by the unit runner around a call */
#define FUZZ_FAIL() do { if (fuzz_unit_jmp) longjmp(*fuzz_unit_jmp, 1); abort(); } while (0)
#else
#define FUZZ_FAIL() abort()
#endif

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		FUZZ_FAIL(); \
	} \
} while (0)

/* [p, p + n) lies inside [b, b + len). A NULL view must be empty. */
static inline int fuzz_inside(const void *b, size_t len, const void *p, size_t n)
{
	const char *cb = b, *cp = p;

	if (!cp)
		return n == 0;
	return cp >= cb && cp <= cb + len && n <= (size_t)(cb + len - cp);
}

/* ASCII case-insensitive compare of a view with a lower-case literal. */
static inline int fuzz_ieq(const char *p, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'Z')
			c += 32;
		if (c != (unsigned char)lit[i])
			return 0;
	}
	return 1;
}

/* A small deterministic PRNG seeded from the input, to pick split points. */
static inline uint64_t fuzz_seed(const uint8_t *d, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3ULL;
	return h | 1;
}

static inline uint64_t fuzz_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* A private copy of <d, n> of exactly n bytes (ASan sees reads past it). */
static inline char *fuzz_dup(const uint8_t *d, size_t n)
{
	char *p = malloc(n ? n : 1);

	if (!p)
		abort();
	if (n)
		memcpy(p, d, n);
	return p;
}

#endif

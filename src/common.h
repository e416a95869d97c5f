/* common.h - small helpers every ringfront file may use: likely/unlikely,
 * container_of, array sizes, rf_free() and the banned-call poison. */
#ifndef RF_COMMON_H
#define RF_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define RF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RF_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Free *pp and set it to NULL, so a stale pointer cannot be freed twice. */
#define rf_free(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

/* Boot-time allocations only: abort with a message when memory is gone.
 * The request path never calls these; it uses pools that return -ENOMEM. */
void *rf_xcalloc(size_t n, size_t size);
char *rf_xstrdup(const char *s);
char *rf_xstrndup(const char *s, size_t n);

/* Case-insensitive compare of a length-delimited view with a C string. */
static inline int rf_ieq(const char *p, size_t len, const char *lit)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char a = (unsigned char)p[i], b = (unsigned char)lit[i];

		if (b == 0)
			return 0;
		if (a >= 'A' && a <= 'Z')
			a += 32;
		if (b >= 'A' && b <= 'Z')
			b += 32;
		if (a != b)
			return 0;
	}
	return lit[len] == 0;
}

/* Banned: unbounded writes. The headers that declare them are included
 * above, so only uses in ringfront's own code trip the poison. */
#ifndef RF_NO_POISON
#pragma GCC poison strcpy strcat sprintf vsprintf gets
#endif

#endif

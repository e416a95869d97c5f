/* common.c - boot-time allocation wrappers that abort on exhaustion. */
#include <stdio.h>
#include "common.h"

void *rf_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fputs("ringfront: out of memory at start-up\n", stderr);
		abort();
	}
	return p;
}

char *rf_xstrndup(const char *s, size_t n)
{
	char *p = rf_xcalloc(1, n + 1);

	memcpy(p, s, n);
	return p;
}

char *rf_xstrdup(const char *s)
{
	return rf_xstrndup(s, strlen(s));
}

/* outbuf.c - growable output buffer with a hard cap (see outbuf.h). */
#include <stdarg.h>
#include "common.h"
#include "outbuf.h"

#define OB_DEFAULT_MAX (16u << 20)

void ob_init(struct outbuf *ob, size_t max)
{
	memset(ob, 0, sizeof(*ob));
	ob->max = max ? max : OB_DEFAULT_MAX;
}

void ob_free(struct outbuf *ob)
{
	rf_free(&ob->p);
	ob->len = ob->cap = 0;
}

static int ob_reserve(struct outbuf *ob, size_t n)
{
	size_t cap;
	char *p;

	if (ob->failed)
		return -1;
	if (ob->len + n <= ob->cap)
		return 0;
	if (ob->len + n > ob->max) {
		ob->failed = 1;
		return -1;
	}
	cap = ob->cap ? ob->cap : 1024;
	while (cap < ob->len + n)
		cap *= 2;
	if (cap > ob->max)
		cap = ob->max;
	p = realloc(ob->p, cap);
	if (!p) {
		ob->failed = 1;
		return -1;
	}
	ob->p = p;
	ob->cap = cap;
	return 0;
}

void ob_put(struct outbuf *ob, const char *s, size_t n)
{
	if (ob_reserve(ob, n) < 0)
		return;
	memcpy(ob->p + ob->len, s, n);
	ob->len += n;
}

void ob_puts(struct outbuf *ob, const char *s)
{
	ob_put(ob, s, strlen(s));
}

void ob_printf(struct outbuf *ob, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || ob_reserve(ob, (size_t)n + 1) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(ob->p + ob->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ob->len += (size_t)n;
}

void ob_json_str(struct outbuf *ob, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	ob_put(ob, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };

		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			ob_put(ob, esc, 2);
		} else if (ch < 0x20) {
			ob_put(ob, esc, 6);
		} else {
			ob_put(ob, s + i, 1);
		}
	}
	ob_put(ob, "\"", 1);
}

char *ob_take(struct outbuf *ob, size_t *len)
{
	char *p = ob->p;

	*len = ob->len;
	ob->p = NULL;
	ob->len = ob->cap = 0;
	return p;
}

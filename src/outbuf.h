/* outbuf.h - a growable byte buffer for responses built off the hot path
 * (admin API, metrics): printf-style and JSON-escaped appends, with a hard
 * cap so a runaway body fails instead of eating memory. */
#ifndef RF_OUTBUF_H
#define RF_OUTBUF_H

#include <stddef.h>

struct outbuf {
	char *p;                /* owned (malloc) */
	size_t len;
	size_t cap;
	size_t max;             /* hard limit; 0 = 16 MiB */
	int failed;             /* an append did not fit: the result is unusable */
};

void ob_init(struct outbuf *ob, size_t max);
void ob_free(struct outbuf *ob);
void ob_put(struct outbuf *ob, const char *s, size_t n);
void ob_puts(struct outbuf *ob, const char *s);
void ob_printf(struct outbuf *ob, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append <s> as a JSON string literal, quotes included. */
void ob_json_str(struct outbuf *ob, const char *s, size_t n);

/* Hand the bytes over to the caller (who frees them); the buffer is reset. */
char *ob_take(struct outbuf *ob, size_t *len);

#endif

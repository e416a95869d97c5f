/* redis_reply.h - the client side of RESP2: a bounded parser of server
 * replies (status, error, integer, bulk, nil, nested arrays) into a flat
 * pre-order list of values that point into the received bytes, and the
 * encoder of commands as arrays of bulk strings. The server side (parsing
 * commands, writing replies) is resp.c; this is what ringfront's own Redis
 * client (redis_conn.c) reads and writes. */
#ifndef RF_REDIS_REPLY_H
#define RF_REDIS_REPLY_H

#include <stddef.h>
#include <stdint.h>

enum rr_type {
	RR_STATUS = 1,          /* +OK */
	RR_ERROR,               /* -ERR ... */
	RR_INT,                 /* :42 */
	RR_BULK,                /* $3\r\nabc */
	RR_NIL,                 /* $-1 or *-1 */
	RR_ARRAY,               /* *N, its N elements follow in the list */
};

#define RR_MAX_DEPTH    8       /* nesting of arrays */

/* One value. Strings point into the parsed buffer: valid until it moves. */
struct rr_val {
	uint8_t type;           /* enum rr_type */
	int64_t n;              /* RR_INT: the value; RR_ARRAY: elements; strings: length */
	const char *p;          /* RR_STATUS, RR_ERROR, RR_BULK: the bytes (not NUL-ended) */
	uint32_t end;           /* index past this value and all its elements */
};

/* A parsed reply: v[0] is the reply, arrays' elements follow it in
 * pre-order. Zero it to start; rr_reply_free() releases the list. */
struct rr_reply {
	struct rr_val *v;       /* owned, grows up to max_vals */
	uint32_t n, cap;
	uint32_t max_vals;      /* 0 = 4M values */
	uint64_t max_bulk;      /* 0 = 512 MiB, Redis's own limit */
};

/* Parse one whole reply from the start of <buf> (<len> bytes) into <r>.
 * Returns the bytes it took (> 0), -EAGAIN when the reply is not complete
 * yet (call again with more bytes: parsing restarts from the start),
 * -EBADMSG for bytes that are not RESP2, or -ENOMEM / -E2BIG past the
 * limits. */
int rr_parse(struct rr_reply *r, const char *buf, size_t len);

void rr_reply_free(struct rr_reply *r);

/* Index of the <k>th element (0-based) of the array at index <i>, or -1. */
int rr_elem(const struct rr_reply *r, uint32_t i, uint32_t k);

/* 1 when value <i> is a string (status, error or bulk) equal to <s>,
 * compared without case. */
int rr_is(const struct rr_reply *r, int i, const char *s);

/* ---- commands ---- */

/* A growable byte buffer; zero it to start. */
struct rr_buf {
	char *p;                /* owned */
	size_t len, cap;
};

void rr_buf_free(struct rr_buf *b);

/* Make room for <more> bytes after len. Returns 0 or -ENOMEM. */
int rr_buf_reserve(struct rr_buf *b, size_t more);

/* Append <n> bytes. Returns 0 or -ENOMEM. */
int rr_buf_put(struct rr_buf *b, const void *p, size_t n);

/* Append a command of <argc> arguments (lens[i] bytes each; lens NULL =
 * NUL-ended strings) as a RESP array of bulk strings. Returns 0 or
 * -ENOMEM (the buffer is left as it was). */
int rr_cmd(struct rr_buf *b, int argc, const char *const *argv, const size_t *lens);

/* The same from a printf-free vararg list of NUL-ended strings ending in
 * NULL: rr_cmdv(b, "SET", key, val, NULL). */
int rr_cmdv(struct rr_buf *b, ...);

#endif

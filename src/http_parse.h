/* http_parse.h - strict, resumable, zero-copy HTTP/1.x message parser.
 *
 * Parses request and response heads in place: every name, value and target
 * is a view into the caller's buffer, nothing is allocated. A head is parsed
 * again from the start when more bytes arrive; `last_len` lets the parser
 * skip the CRLFCRLF search over bytes it has already seen. The chunked
 * decoder tracks message framing over any number of buffers and reports the
 * data spans inside them. */
#ifndef RF_HTTP_PARSE_H
#define RF_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS 100

/* Negative return values shared by the head parsers:
 *   -EAGAIN           head incomplete, call again with more bytes
 *   -EBADMSG          malformed or ambiguous message       -> 400 / 502
 *   -EMSGSIZE         head larger than max_head, or too many fields -> 431
 *   -ENAMETOOLONG     request target longer than max_uri   -> 414
 *   -EPROTONOSUPPORT  HTTP version other than 1.0 / 1.1    -> 505
 *   -ENOSYS           transfer coding other than chunked   -> 501 */

enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_PATCH,
	HTTP_M_OPTIONS,
	HTTP_M_CONNECT,
	HTTP_M_TRACE,
};

/* Idempotent methods (RFC 9110 9.2.2): sending one twice does no more
 * than sending it once, so a retry is safe. */
static inline int http_method_idempotent(uint8_t meth)
{
	return meth == HTTP_M_GET || meth == HTTP_M_HEAD || meth == HTTP_M_PUT ||
	       meth == HTTP_M_DELETE || meth == HTTP_M_OPTIONS || meth == HTTP_M_TRACE;
}

/* Well-known fields the parser recognises while scanning, so callers can
 * skip them without comparing names again. */
enum http_field {
	HTTP_F_OTHER = 0,
	HTTP_F_HOST,
	HTTP_F_CONTENT_LENGTH,
	HTTP_F_TRANSFER_ENCODING,
	HTTP_F_CONNECTION,
	HTTP_F_KEEP_ALIVE,
	HTTP_F_PROXY_CONNECTION,
	HTTP_F_TE,
	HTTP_F_TRAILER,
	HTTP_F_UPGRADE,
	HTTP_F_EXPECT,
	HTTP_F_X_FORWARDED_FOR,
	HTTP_F_X_FORWARDED_PROTO,
	HTTP_F_X_REQUEST_ID,
	HTTP_F_VIA,
};

struct http_hdr {
	const char *name;       /* view into the buffer */
	const char *value;      /* view, leading and trailing OWS trimmed */
	uint16_t name_len;
	uint16_t field;         /* enum http_field */
	uint32_t value_len;
};

/* Flags derived from the Connection, Transfer-Encoding and Expect fields. */
#define HTTP_FL_CHUNKED      0x01  /* Transfer-Encoding ends in chunked */
#define HTTP_FL_CONN_CLOSE   0x02  /* Connection: close */
#define HTTP_FL_CONN_KEEP    0x04  /* Connection: keep-alive */
#define HTTP_FL_CONN_UPGRADE 0x08  /* Connection: upgrade (and Upgrade present) */
#define HTTP_FL_EXPECT_100   0x10  /* Expect: 100-continue */
#define HTTP_FL_ABSOLUTE     0x20  /* request target was absolute-form */
#define HTTP_FL_TE_OTHER     0x40  /* response: Transfer-Encoding without chunked last */

struct http_limits {
	uint32_t max_head;      /* bytes of request/status line + fields + CRLF */
	uint32_t max_uri;       /* bytes of the request target */
};

struct http_req {
	const char *method;
	const char *target;     /* as sent; origin-form path for absolute-form */
	const char *host;       /* Host field, or the authority of an absolute-form target */
	uint32_t target_len;
	uint16_t method_len;
	uint16_t host_len;
	uint8_t meth;           /* enum http_method */
	uint8_t minor;          /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
	uint16_t flags;         /* HTTP_FL_* */
	int64_t content_length; /* -1 when absent */
	uint32_t head_len;      /* bytes up to and including the final CRLF */
	uint32_t nhdrs;
	struct http_hdr hdrs[HTTP_MAX_HEADERS];
};

struct http_resp {
	const char *reason;
	uint16_t reason_len;
	uint16_t status;
	uint8_t minor;
	uint16_t flags;         /* HTTP_FL_* */
	int64_t content_length; /* -1 when absent */
	uint32_t head_len;
	uint32_t nhdrs;
	struct http_hdr hdrs[HTTP_MAX_HEADERS];
};

/* Parse a request head from <buf, len>. <last_len> is the length passed on
 * the previous call for the same head (0 the first time).
 * Returns head_len (>0) when complete, or a negative value listed above. */
int http_parse_request(const char *buf, size_t len, size_t last_len,
		       const struct http_limits *lim, struct http_req *req);

/* Parse a response head. Same contract as http_parse_request(); malformed
 * responses return -EBADMSG (the proxy answers 502). */
int http_parse_response(const char *buf, size_t len, size_t last_len,
			const struct http_limits *lim, struct http_resp *resp);

/* Map a negative parser result to the HTTP status the proxy answers with. */
int http_parse_error_status(int err);

/* Chunked transfer-coding framing tracker (RFC 9112 section 7.1). */
struct http_chunked {
	uint64_t remaining;     /* data bytes left in the current chunk */
	uint32_t line_len;      /* bytes seen of the current size/trailer line */
	uint8_t state;          /* private to http_parse.c */
	uint8_t done;           /* set once the last chunk and trailers ended */
};

struct http_span {
	uint32_t off;           /* offset of chunk data inside the fed buffer */
	uint32_t len;
};

void http_chunked_init(struct http_chunked *ck);

/* Feed <buf, len> into the tracker. Data spans found are written to <spans>
 * (at most <max_spans>; *nspans set to the count). Stops early when the
 * message ends (ck->done) or the span array is full.
 * Returns the bytes consumed (0..len), or -EBADMSG on a malformed chunk
 * (bad hex, size overflow, missing CRLF, over-long line). */
ssize_t http_chunked_feed(struct http_chunked *ck, const char *buf, size_t len,
			  struct http_span *spans, unsigned max_spans,
			  unsigned *nspans);

/* Call <fn> for each comma-separated token in a list field value (trimmed
 * of OWS, empty elements skipped). Stops and returns fn's value when it is
 * non-zero; returns 0 after the last token. */
int http_list_each(const char *value, size_t len,
		   int (*fn)(const char *tok, size_t tok_len, void *arg),
		   void *arg);

/* 1 when the list field value contains <token> (case-insensitive). */
int http_list_has(const char *value, size_t len, const char *token);

#endif

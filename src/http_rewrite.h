/* http_rewrite.h - the heads ringfront writes: the request head sent to a
 * backend (hop-by-hop fields removed, forwarding fields added), the
 * response head sent to a client, and ringfront's own JSON error
 * responses. All write into caller-provided memory; nothing allocates. */
#ifndef RF_HTTP_REWRITE_H
#define RF_HTTP_REWRITE_H

#include <stdint.h>
#include "http_parse.h"

/* What the request rewrite needs besides the parsed request. */
struct fwd_info {
	const char *peer;       /* client address, for X-Forwarded-For */
	uint32_t peer_len;
	const char *reqid;      /* X-Request-Id to send */
	uint32_t reqid_len;
	uint8_t tunnel;         /* keep Upgrade/Connection: upgrade */
	uint8_t own_validators; /* the cache revalidates: drop the client's
				 * If-None-Match / If-Modified-Since, send <extra> */
	const char *extra;      /* complete header lines to add, or NULL */
	uint32_t extra_len;
};

/* Write the backend request head into <out> (capacity <cap>).
 * Returns its length, or -ENOSPC when it does not fit. */
int rewrite_request(char *out, uint32_t cap, const struct http_req *req,
		    const struct fwd_info *fi);

struct resp_info {
	const char *reqid;
	uint32_t reqid_len;
	uint8_t client_minor;   /* client's HTTP/1.x */
	uint8_t keepalive;      /* client connection stays open */
	uint8_t dechunk;        /* body is decoded: drop Transfer-Encoding */
	uint8_t tunnel;         /* 101 Switching Protocols */
	uint8_t cache_status;   /* <extra> has X-Cache-Status: drop the backend's */
	const char *extra;      /* complete header lines to add (RateLimit-*), or NULL */
	uint32_t extra_len;
};

/* Write the client response head into <out>. Returns its length or -ENOSPC. */
int rewrite_response(char *out, uint32_t cap, const struct http_resp *resp,
		     const struct resp_info *ri);

/* Write a complete error response with a {"code":N,"message":"..."} body.
 * <reqid> may be NULL. Returns its length or -ENOSPC. */
int error_response(char *out, uint32_t cap, int status, int keepalive,
		   const char *reqid, uint32_t reqid_len);
/* The same with <message> (a JSON-safe literal; NULL = the status's own)
 * and a Retry-After of <retry_after_s> seconds (0 = none). */
int error_response_ex(char *out, uint32_t cap, int status, int keepalive,
		      const char *reqid, uint32_t reqid_len, const char *message,
		      uint32_t retry_after_s);

/* Reason phrase and error message for a status ringfront produces. */
const char *http_reason(int status);

/* The X-Request-Id value of <req> when it is usable (printable, at most
 * <max> bytes), else NULL. */
const char *request_id_from(const struct http_req *req, uint32_t max,
			    uint32_t *len);

/* Write 32 lowercase hex digits of a fresh request id into <out>. */
void request_id_generate(char *out, uint64_t seed, uint64_t seq);

#endif

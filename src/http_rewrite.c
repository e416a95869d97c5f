/* http_rewrite.c - writing the heads ringfront forwards and the error
 * responses it makes itself (see http_rewrite.h). */
#include <errno.h>
#include <stdio.h>
#include "common.h"
#include "http_rewrite.h"

struct out {
	char *p;
	uint32_t len;
	uint32_t cap;
	int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += (uint32_t)n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_field(struct out *o, const struct http_hdr *h)
{
	put(o, h->name, h->name_len);
	PUT_LIT(o, ": ");
	put(o, h->value, h->value_len);
	PUT_LIT(o, "\r\n");
}

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, tmp + i, sizeof(tmp) - i);
}

/* Connection may name further hop-by-hop fields; they are dropped too.
 * Only lists naming something besides close/keep-alive/upgrade matter. */
struct conn_names {
	const struct http_hdr *vals[4];
	unsigned n;
};

static int is_plain_option(const char *tok, size_t len, void *arg)
{
	(void)arg;
	return !(rf_ieq(tok, len, "close") || rf_ieq(tok, len, "keep-alive") ||
		 rf_ieq(tok, len, "upgrade"));
}

static void conn_names_collect(struct conn_names *cn, const struct http_hdr *h,
			       uint32_t n)
{
	uint32_t i;

	cn->n = 0;
	for (i = 0; i < n; i++) {
		if (h[i].field != HTTP_F_CONNECTION || cn->n == ARRAY_SIZE(cn->vals))
			continue;
		if (http_list_each(h[i].value, h[i].value_len, is_plain_option, NULL))
			cn->vals[cn->n++] = &h[i];
	}
}

static int conn_names_has(const struct conn_names *cn, const struct http_hdr *h)
{
	char name[128];
	unsigned i;

	if (!cn->n || h->name_len >= sizeof(name))
		return 0;
	memcpy(name, h->name, h->name_len);
	name[h->name_len] = 0;
	for (i = 0; i < cn->n; i++)
		if (http_list_has(cn->vals[i]->value, cn->vals[i]->value_len, name))
			return 1;
	return 0;
}

/* Append the values of every field of kind <field>, comma separated. */
static int put_joined(struct out *o, const struct http_hdr *h, uint32_t n,
		      uint16_t field)
{
	uint32_t i;
	int any = 0;

	for (i = 0; i < n; i++) {
		if (h[i].field != field || !h[i].value_len)
			continue;
		if (any)
			PUT_LIT(o, ", ");
		put(o, h[i].value, h[i].value_len);
		any = 1;
	}
	return any;
}

int rewrite_request(char *buf, uint32_t cap, const struct http_req *req,
		    const struct fwd_info *fi)
{
	struct out o = { buf, 0, cap, 0 };
	struct conn_names cn;
	uint32_t i;

	put(&o, req->method, req->method_len);
	PUT_LIT(&o, " ");
	put(&o, req->target, req->target_len);
	PUT_LIT(&o, " HTTP/1.1\r\n");
	if (req->flags & HTTP_FL_ABSOLUTE) {
		PUT_LIT(&o, "Host: ");
		put(&o, req->host, req->host_len);
		PUT_LIT(&o, "\r\n");
	} else if (!req->host) {
		/* HTTP/1.0 may omit Host; HTTP/1.1 needs one, empty when there is
		 * no authority (RFC 9112 section 3.2). */
		PUT_LIT(&o, "Host: \r\n");
	}
	conn_names_collect(&cn, req->hdrs, req->nhdrs);
	for (i = 0; i < req->nhdrs; i++) {
		const struct http_hdr *h = &req->hdrs[i];

		switch (h->field) {
		case HTTP_F_HOST:
			if (req->flags & HTTP_FL_ABSOLUTE)
				continue;
			break;
		case HTTP_F_UPGRADE:
			if (fi->tunnel)
				break;
			continue;
		case HTTP_F_OTHER:
			if (conn_names_has(&cn, h))
				continue;
			if (fi->own_validators &&
			    (rf_ieq(h->name, h->name_len, "if-none-match") ||
			     rf_ieq(h->name, h->name_len, "if-modified-since")))
				continue;
			break;
		case HTTP_F_CONNECTION:
		case HTTP_F_KEEP_ALIVE:
		case HTTP_F_PROXY_CONNECTION:
		case HTTP_F_TE:
		case HTTP_F_TRAILER:
		case HTTP_F_EXPECT:
		case HTTP_F_CONTENT_LENGTH:
		case HTTP_F_TRANSFER_ENCODING:
		case HTTP_F_X_FORWARDED_FOR:
		case HTTP_F_X_FORWARDED_PROTO:
		case HTTP_F_X_REQUEST_ID:
		case HTTP_F_VIA:
			continue;
		default:
			break;
		}
		put_field(&o, h);
	}
	PUT_LIT(&o, "X-Forwarded-For: ");
	if (put_joined(&o, req->hdrs, req->nhdrs, HTTP_F_X_FORWARDED_FOR))
		PUT_LIT(&o, ", ");
	put(&o, fi->peer, fi->peer_len);
	PUT_LIT(&o, "\r\nX-Forwarded-Proto: http\r\nVia: ");
	if (put_joined(&o, req->hdrs, req->nhdrs, HTTP_F_VIA))
		PUT_LIT(&o, ", ");
	PUT_LIT(&o, "1.1 ringfront\r\nX-Request-Id: ");
	put(&o, fi->reqid, fi->reqid_len);
	PUT_LIT(&o, "\r\n");
	if (req->flags & HTTP_FL_CHUNKED) {
		PUT_LIT(&o, "Transfer-Encoding: chunked\r\n");
	} else if (req->content_length >= 0) {
		PUT_LIT(&o, "Content-Length: ");
		put_u64(&o, (uint64_t)req->content_length);
		PUT_LIT(&o, "\r\n");
	}
	if (fi->tunnel)
		PUT_LIT(&o, "Connection: upgrade\r\n");
	if (fi->extra)
		put(&o, fi->extra, fi->extra_len);
	PUT_LIT(&o, "\r\n");
	return o.overflow ? -ENOSPC : (int)o.len;
}

int rewrite_response(char *buf, uint32_t cap, const struct http_resp *resp,
		     const struct resp_info *ri)
{
	struct out o = { buf, 0, cap, 0 };
	struct conn_names cn;
	int have_reqid = 0;
	char code[4];
	uint32_t i;

	code[0] = (char)('0' + resp->status / 100);
	code[1] = (char)('0' + resp->status / 10 % 10);
	code[2] = (char)('0' + resp->status % 10);
	PUT_LIT(&o, "HTTP/1.1 ");
	put(&o, code, 3);
	PUT_LIT(&o, " ");
	put(&o, resp->reason, resp->reason_len);
	PUT_LIT(&o, "\r\n");
	conn_names_collect(&cn, resp->hdrs, resp->nhdrs);
	for (i = 0; i < resp->nhdrs; i++) {
		const struct http_hdr *h = &resp->hdrs[i];

		switch (h->field) {
		case HTTP_F_UPGRADE:
			if (ri->tunnel)
				break;
			continue;
		case HTTP_F_TRANSFER_ENCODING:
			if (ri->dechunk)
				continue;
			break;
		case HTTP_F_X_REQUEST_ID:
			have_reqid = 1;
			break;
		case HTTP_F_OTHER:
			if (conn_names_has(&cn, h))
				continue;
			/* the cache's own status replaces one from behind it */
			if (ri->cache_status && rf_ieq(h->name, h->name_len, "x-cache-status"))
				continue;
			break;
		case HTTP_F_CONNECTION:
		case HTTP_F_KEEP_ALIVE:
		case HTTP_F_PROXY_CONNECTION:
		case HTTP_F_TE:
		case HTTP_F_TRAILER:
			continue;
		default:
			break;
		}
		put_field(&o, h);
	}
	if (ri->extra_len)
		put(&o, ri->extra, ri->extra_len);
	if (!have_reqid && ri->reqid_len) {
		PUT_LIT(&o, "X-Request-Id: ");
		put(&o, ri->reqid, ri->reqid_len);
		PUT_LIT(&o, "\r\n");
	}
	if (ri->tunnel)
		PUT_LIT(&o, "Connection: upgrade\r\n");
	else if (!ri->keepalive)
		PUT_LIT(&o, "Connection: close\r\n");
	else if (ri->client_minor == 0)
		PUT_LIT(&o, "Connection: keep-alive\r\n");
	PUT_LIT(&o, "\r\n");
	return o.overflow ? -ENOSPC : (int)o.len;
}

struct status_text {
	int status;
	const char *reason;
	const char *message;
};

static const struct status_text status_texts[] = {
	{ 500, "Internal Server Error", "internal error" },    /* first: the fallback */
	{ 400, "Bad Request", "malformed request" },
	{ 401, "Unauthorized", "authentication required" },
	{ 403, "Forbidden", "forbidden" },
	{ 404, "Not Found", "no route for this path" },
	{ 405, "Method Not Allowed", "method not allowed" },
	{ 408, "Request Timeout", "request head not received in time" },
	{ 413, "Content Too Large", "request body too large" },
	{ 414, "URI Too Long", "request target too long" },
	{ 409, "Conflict", "conflict" },
	{ 429, "Too Many Requests", "rate limit exceeded" },
	{ 431, "Request Header Fields Too Large", "request header fields too large" },
	{ 501, "Not Implemented", "transfer coding not implemented" },
	{ 502, "Bad Gateway", "backend unavailable or sent an invalid response" },
	{ 503, "Service Unavailable", "no server available" },
	{ 504, "Gateway Timeout", "backend timed out" },
	{ 505, "HTTP Version Not Supported", "HTTP version not supported" },
};

static const struct status_text *status_find(int status)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(status_texts); i++)
		if (status_texts[i].status == status)
			return &status_texts[i];
	return &status_texts[0];
}

const char *http_reason(int status)
{
	return status_find(status)->reason;
}

int error_response_ex(char *buf, uint32_t cap, int status, int keepalive,
		      const char *reqid, uint32_t reqid_len, const char *message,
		      uint32_t retry_after_s)
{
	const struct status_text *st = status_find(status);
	char body[160], ra[32] = "";
	int blen, n;

	blen = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}\n",
			status, message ? message : st->message);
	if (retry_after_s)
		snprintf(ra, sizeof(ra), "Retry-After: %u\r\n", retry_after_s);
	n = snprintf(buf, cap,
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %d\r\n"
		     "%s%s%.*s%s"
		     "Connection: %s\r\n\r\n%s",
		     status, st->reason, blen, ra,
		     reqid_len ? "X-Request-Id: " : "", (int)reqid_len,
		     reqid ? reqid : "", reqid_len ? "\r\n" : "",
		     keepalive ? "keep-alive" : "close", body);
	if (n < 0 || (uint32_t)n >= cap)
		return -ENOSPC;
	return n;
}

int error_response(char *buf, uint32_t cap, int status, int keepalive,
		   const char *reqid, uint32_t reqid_len)
{
	return error_response_ex(buf, cap, status, keepalive, reqid, reqid_len, NULL, 0);
}

const char *request_id_from(const struct http_req *req, uint32_t max,
			    uint32_t *len)
{
	uint32_t i, j;

	for (i = 0; i < req->nhdrs; i++) {
		const struct http_hdr *h = &req->hdrs[i];

		if (h->field != HTTP_F_X_REQUEST_ID)
			continue;
		if (!h->value_len || h->value_len > max)
			return NULL;
		for (j = 0; j < h->value_len; j++) {
			unsigned char ch = (unsigned char)h->value[j];

			if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
				return NULL;
		}
		*len = h->value_len;
		return h->value;
	}
	return NULL;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void request_id_generate(char *out, uint64_t seed, uint64_t seq)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = mix64(seed ^ seq), b = mix64(a ^ seq);
	int i;

	for (i = 0; i < 16; i++) {
		out[i] = hex[(a >> (60 - 4 * i)) & 15];
		out[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
	}
}

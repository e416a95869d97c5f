/* test_cache_http.c - stored responses: the bytes kept for a response (the
 * fields dropped, Content-Length, tags), a hit's iovecs, validators, the
 * 304 refresh, and Vary-aware store and lookup over a real store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_http.h"
#include "common.h"
#include "test.h"

#define NOW 1700000000000LL

static const struct http_limits lim = { 16384, 8192 };

static struct cache *mk(uint32_t workers)
{
	struct cache_conf cc = { .memory = 4 << 20, .max_object_size = 64 << 10,
				 .nworkers = workers };
	struct cache *c = NULL;

	CHECK_INT(cache_create(&cc, &c), 0);
	return c;
}

static int parse_resp(const char *text, struct http_resp *r)
{
	memset(r, 0, sizeof *r);
	return http_parse_response(text, strlen(text), 0, &lim, r) == (int)strlen(text);
}

static int parse_req(const char *text, struct http_req *r)
{
	memset(r, 0, sizeof *r);
	return http_parse_request(text, strlen(text), 0, &lim, r) == (int)strlen(text);
}

/* The whole response a hit would send, with <status> fields, as a string. */
static char *hit_bytes(const struct cache_entry *e, int64_t now, enum cache_outcome st,
		       int head_only)
{
	static char out[8192];
	char extra[128];
	struct iovec iov[3];
	size_t n = 0;
	int i, el = cache_http_hit_fields(e, now, st, extra, sizeof extra);

	CHECK(el > 0);
	cache_http_iov(e, extra, (size_t)el, head_only, iov);
	for (i = 0; i < 3; i++) {
		memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	out[n] = 0;
	return out;
}

static const char *ORIGIN =
	"HTTP/1.1 200 OK\r\n"
	"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
	"Connection: keep-alive, X-Hop\r\n"
	"X-Hop: secret\r\n"
	"Keep-Alive: timeout=5\r\n"
	"Cache-Control: max-age=60\r\n"
	"ETag: \"v1\"\r\n"
	"Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n"
	"Age: 3\r\n"
	"Surrogate-Key: product-1  list\r\n"
	"Cache-Tag: a, b\r\n"
	"X-Old: kept\r\n"
	"Transfer-Encoding: chunked\r\n"
	"\r\n";

static struct cache_entry *build_origin(struct cache *c, struct http_resp *r)
{
	struct cache_policy_conf pc = { 0 };
	struct cache_reqinfo ri;
	struct cache_storeinfo si;
	struct http_req q;
	struct iovec body[2] = { { "hel", 3 }, { "lo", 2 } };
	struct cache_entry *e = NULL;

	CHECK(parse_req("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &q));
	cache_policy_request(&q, &ri);
	CHECK(parse_resp(ORIGIN, r));
	CHECK_INT(cache_policy_response(&ri, r, NOW, NOW, &pc, &si), CACHE_STORE_OK);
	CHECK_INT(cache_http_build(c, "http://h:80/x", 13, r, &si, body, 2, &e), 0);
	return e;
}

static void test_build(void)
{
	struct cache *c = mk(1);
	struct http_resp r;
	struct cache_entry *e;
	const struct cache_http_meta *m;
	const char *v, *aux;

	if (!c)
		return;
	e = build_origin(c, &r);
	if (!e)
		goto out;
	m = cache_entry_http(e);
	v = cache_entry_value(e);
	CHECK_MEM(v, e->vlen,
		  "HTTP/1.1 200 OK\r\n"
		  "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
		  "Cache-Control: max-age=60\r\n"
		  "ETag: \"v1\"\r\n"
		  "Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n"
		  "X-Old: kept\r\n"
		  "Content-Length: 5\r\n"
		  "\r\n"
		  "hello");
	CHECK_INT(m->status, 200);
	CHECK_MEM(v + m->etag_off, m->etag_len, "\"v1\"");
	CHECK_MEM(v + m->lm_off, m->lm_len, "Tue, 14 Nov 2023 20:00:00 GMT");
	CHECK_MEM(v + m->hdr_end, 2, "\r\n");
	CHECK_INT(m->head_len, m->hdr_end + 2);
	CHECK_INT(m->lifetime_ms, 60000);
	CHECK_INT(m->initial_age_ms, 3000);
	CHECK_INT(atomic_load(&e->expires_ms), NOW - 3000 + 60000 + 10 * 60 * 1000);   /* + validator keep */
	CHECK_INT(m->ntags, 4);
	aux = cache_entry_aux(e);
	CHECK(e->auxlen == 19 && !memcmp(aux, "product-1\0list\0a\0b", 19));

	/* a hit: stored head, Age and X-Cache-Status, final CRLF and body */
	CHECK_STR(hit_bytes(e, NOW + 2000, CACHE_OUT_HIT, 0),
		  "HTTP/1.1 200 OK\r\n"
		  "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
		  "Cache-Control: max-age=60\r\n"
		  "ETag: \"v1\"\r\n"
		  "Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n"
		  "X-Old: kept\r\n"
		  "Content-Length: 5\r\n"
		  "Age: 5\r\n"
		  "X-Cache-Status: HIT\r\n"
		  "\r\n"
		  "hello");
	CHECK(strstr(hit_bytes(e, NOW, CACHE_OUT_STALE, 1), "X-Cache-Status: STALE\r\n\r\n") != NULL);
	CHECK(strstr(hit_bytes(e, NOW, CACHE_OUT_STALE, 1), "hello") == NULL);
	{
		char small[8];

		CHECK_INT(cache_http_hit_fields(e, NOW, CACHE_OUT_HIT, small, sizeof small), -ENOSPC);
	}
	cache_entry_free(e);

	/* 204: no Content-Length; a body over max_object_size: -E2BIG */
	{
		struct cache_storeinfo si = { .store_until_ms = NOW + 1 };
		struct iovec big = { NULL, 65 << 10 };

		CHECK(parse_resp("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", &r));
		CHECK_INT(cache_http_build(c, "k", 1, &r, &si, NULL, 0, &e), 0);
		if (e)
			CHECK_MEM(cache_entry_value(e), e->vlen, "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n");
		cache_entry_free(e);
		CHECK_INT(cache_http_build(c, "k", 1, &r, &si, &big, 1, &e), -E2BIG);
	}
out:
	cache_destroy(c);
}

static void test_conditional(void)
{
	struct cache *c = mk(1);
	struct cache_storeinfo si = { .store_until_ms = NOW + 1 };
	struct http_resp r;
	struct cache_entry *e;
	char buf[256];
	int n;

	if (!c)
		return;
	e = build_origin(c, &r);
	if (e) {
		n = cache_policy_conditional(e, buf, sizeof buf);
		CHECK_MEM(buf, (size_t)(n > 0 ? n : 0), "If-None-Match: \"v1\"\r\n"
			  "If-Modified-Since: Tue, 14 Nov 2023 20:00:00 GMT\r\n");
		CHECK_INT(cache_policy_conditional(e, buf, 10), -ENOSPC);
		CHECK_INT(cache_policy_conditional(e, buf, 25), -ENOSPC);
		cache_entry_free(e);
	}
	CHECK(parse_resp("HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\n\r\n", &r));
	CHECK_INT(cache_http_build(c, "k", 1, &r, &si, NULL, 0, &e), 0);
	if (e)
		CHECK_INT(cache_policy_conditional(e, buf, sizeof buf), 0);
	cache_entry_free(e);
	cache_destroy(c);
}

/* The client's validators against a stored copy, and the 304 made of it. */
static void test_not_modified(void)
{
	static const struct {
		const char *fields;
		int match;
	} cases[] = {
		{ "If-None-Match: \"v1\"\r\n", 1 },
		{ "If-None-Match: W/\"v1\"\r\n", 1 },           /* weak comparison */
		{ "If-None-Match: \"a,b\", \"v1\"\r\n", 1 },    /* commas inside a tag */
		{ "If-None-Match: \"x\"\r\nIf-None-Match: \"v1\"\r\n", 1 },
		{ "If-None-Match: *\r\n", 1 },
		{ "If-None-Match: \"v2\"\r\n", 0 },
		{ "If-None-Match: v1\r\n", 0 },                  /* not a quoted tag */
		{ "If-None-Match: \"v\r\n", 0 },
		/* If-None-Match decides alone, even when If-Modified-Since would match */
		{ "If-None-Match: \"v2\"\r\nIf-Modified-Since: Tue, 14 Nov 2023 20:00:00 GMT\r\n", 0 },
		{ "If-Modified-Since: Tue, 14 Nov 2023 20:00:00 GMT\r\n", 1 },
		{ "If-Modified-Since: Wed, 15 Nov 2023 00:00:00 GMT\r\n", 1 },
		{ "If-Modified-Since: Tue, 14 Nov 2023 19:59:59 GMT\r\n", 0 },
		{ "If-Modified-Since: yesterday\r\n", 0 },
		{ "", 0 },
	};
	struct cache *c = mk(1);
	struct http_resp r;
	struct http_req q;
	struct cache_reqinfo ri;
	struct cache_entry *e;
	char req[256], buf[512];
	size_t i;
	int n;

	if (!c)
		return;
	e = build_origin(c, &r);
	for (i = 0; e && i < ARRAY_SIZE(cases); i++) {
		snprintf(req, sizeof req, "GET /x HTTP/1.1\r\nHost: h\r\n%s\r\n", cases[i].fields);
		CHECK(parse_req(req, &q));
		CHECK_INT(cache_policy_not_modified(e, &q), cases[i].match);
		cache_policy_request(&q, &ri);
		CHECK_INT(ri.conditional, cases[i].fields[0] != 0);
		CHECK_INT(ri.action, CACHE_ACT_LOOKUP);
	}
	/* preconditions that can fail are the backend's to judge */
	CHECK(parse_req("GET /x HTTP/1.1\r\nHost: h\r\nIf-Match: \"v1\"\r\n\r\n", &q));
	cache_policy_request(&q, &ri);
	CHECK_INT(ri.action, CACHE_ACT_BYPASS);
	if (e) {
		n = cache_http_not_modified(e, buf, sizeof buf);
		CHECK_MEM(buf, (size_t)(n > 0 ? n : 0),
			  "HTTP/1.1 304 Not Modified\r\n"
			  "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
			  "Cache-Control: max-age=60\r\n"
			  "ETag: \"v1\"\r\n"
			  "Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n");
		CHECK_INT(cache_http_not_modified(e, buf, 40), -ENOSPC);
		cache_entry_free(e);
	}
	cache_destroy(c);
}

static void test_refresh(void)
{
	struct cache *c = mk(1);
	struct cache_policy_conf pc = { 0 };
	struct cache_reqinfo ri;
	struct http_req q;
	struct http_resp r, r304;
	struct cache_entry *old, *e = NULL;
	const struct cache_http_meta *m;

	if (!c)
		return;
	old = build_origin(c, &r);
	if (!old)
		goto out;
	CHECK(parse_req("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &q));
	cache_policy_request(&q, &ri);
	CHECK(parse_resp("HTTP/1.1 304 Not Modified\r\n"
			 "Date: Tue, 14 Nov 2023 22:20:00 GMT\r\n"
			 "Cache-Control: max-age=120\r\n"
			 "ETag: \"v1\"\r\n"
			 "Content-Length: 0\r\n"
			 "Connection: close\r\n"
			 "X-New: 1\r\n\r\n", &r304));
	CHECK_INT(cache_http_refresh(c, old, &r304, &ri, NOW + 400000, NOW + 400000, &pc, &e),
		  CACHE_STORE_OK);
	if (e) {
		m = cache_entry_http(e);
		CHECK_MEM(cache_entry_key(e), e->klen, "http://h:80/x");
		CHECK_MEM(cache_entry_value(e), e->vlen,
			  "HTTP/1.1 200 OK\r\n"
			  "Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n"
			  "X-Old: kept\r\n"
			  "Date: Tue, 14 Nov 2023 22:20:00 GMT\r\n"
			  "Cache-Control: max-age=120\r\n"
			  "ETag: \"v1\"\r\n"
			  "X-New: 1\r\n"
			  "Content-Length: 5\r\n"
			  "\r\n"
			  "hello");
		CHECK_INT(m->lifetime_ms, 120000);
		CHECK_INT(m->response_ms, NOW + 400000);
		CHECK_INT(m->initial_age_ms, 0);
		CHECK_INT(cache_policy_freshness(m, &ri, NOW + 400000 + 1000), CACHE_FRESH);
		cache_entry_free(e);
	}
	/* a 304 that now says no-store: served once, not stored */
	CHECK(parse_resp("HTTP/1.1 304 Not Modified\r\nCache-Control: no-store\r\n\r\n", &r304));
	CHECK_INT(cache_http_refresh(c, old, &r304, &ri, NOW, NOW, &pc, &e), CACHE_NS_NO_STORE);
	CHECK(e != NULL);
	if (e) {
		CHECK(strstr(cache_entry_value(e), "no-store") != NULL);
		CHECK_INT(atomic_load(&e->expires_ms), NOW);
	}
	cache_entry_free(e);
	cache_entry_free(old);
out:
	cache_destroy(c);
}

static void test_vary_store(void)
{
	struct cache *c = mk(2);
	struct cache_policy_conf pc = { 0 };
	struct cache_reqinfo ri;
	struct cache_storeinfo si;
	struct http_req gz, br, none;
	struct http_resp r;
	struct iovec body = { "zipped", 6 };
	char vbuf[CACHE_KEY_MAX], key[64];
	const struct cache_entry *e;
	struct cache_req *d;
	int klen, w, i;

	if (!c)
		return;
	CHECK(parse_req("GET /v HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n", &gz));
	CHECK(parse_req("GET /v HTTP/1.1\r\nHost: h\r\nAccept-Encoding: br\r\n\r\n", &br));
	CHECK(parse_req("GET /v HTTP/1.1\r\nHost: h\r\n\r\n", &none));
	klen = cache_policy_key("http", 80, &gz, key, sizeof key);
	CHECK_INT(klen, 13);
	w = (int)cache_shard_of(c, key, (size_t)klen);
	cache_policy_request(&gz, &ri);
	CHECK(parse_resp("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
			 "Vary: Accept-Encoding\r\nContent-Encoding: gzip\r\n\r\n", &r));
	CHECK_INT(cache_policy_response(&ri, &r, NOW, NOW, &pc, &si), CACHE_STORE_OK);
	/* stored from the other worker: queued until the owner polls */
	CHECK_INT(cache_http_store(c, 1 - w, key, (size_t)klen, &gz, &r, &si, &body, 1, NOW), 0);
	CHECK(cache_http_lookup(c, key, (size_t)klen, &gz, NOW, vbuf, sizeof vbuf) == NULL);
	cache_shard_poll(c, w, NOW);
	e = cache_http_lookup(c, key, (size_t)klen, &gz, NOW, vbuf, sizeof vbuf);
	CHECK(e != NULL);
	if (e)
		CHECK(memmem(cache_entry_value(e), e->vlen, "zipped", 6) != NULL);
	CHECK(cache_http_lookup(c, key, (size_t)klen, &br, NOW, vbuf, sizeof vbuf) == NULL);
	CHECK(cache_http_lookup(c, key, (size_t)klen, &none, NOW, vbuf, sizeof vbuf) == NULL);
	/* the marker is what the base key holds */
	e = cache_lookup(c, key, (size_t)klen, NOW);
	CHECK(e && e->kind == CACHE_KIND_VARY);
	if (e)
		CHECK_MEM(cache_entry_value(e), e->vlen, "accept-encoding");
	/* a second variant, stored by the owner: the marker is reused */
	body.iov_base = "brotli";
	CHECK_INT(cache_http_store(c, w, key, (size_t)klen, &br, &r, &si, &body, 1, NOW), 0);
	e = cache_http_lookup(c, key, (size_t)klen, &br, NOW, vbuf, sizeof vbuf);
	CHECK(e && memmem(cache_entry_value(e), e->vlen, "brotli", 6));
	e = cache_http_lookup(c, key, (size_t)klen, &gz, NOW, vbuf, sizeof vbuf);
	CHECK(e && memmem(cache_entry_value(e), e->vlen, "zipped", 6));
	/* DEL of the URL key (as over RESP) purges every variant */
	d = cache_req_new(CACHE_REQ_DEL, key, (size_t)klen);
	if (!cache_submit(c, w, d, NOW))
		cache_shard_poll(c, w, NOW);
	CHECK_INT(d->result, 1);
	cache_req_free(d);
	for (i = 0; i < 2; i++) {
		struct cache_stats st;

		cache_shard_stats(c, (uint32_t)i, &st);
		CHECK_INT(st.entries, 0);
	}
	/* a RESP string under a URL is no response */
	{
		struct cache_entry *s = NULL;

		cache_entry_new(c, CACHE_KIND_STRING, key, (size_t)klen, 1, 0, &s);
		cache_entry_value(s)[0] = 'x';
		cache_insert(c, w, s, NOW);
		CHECK(cache_lookup(c, key, (size_t)klen, NOW) != NULL);
		CHECK(cache_http_lookup(c, key, (size_t)klen, &gz, NOW, vbuf, sizeof vbuf) == NULL);
	}
	cache_destroy(c);
}

int main(void)
{
	RUN(test_build);
	RUN(test_conditional);
	RUN(test_not_modified);
	RUN(test_refresh);
	RUN(test_vary_store);
	TEST_REPORT();
}

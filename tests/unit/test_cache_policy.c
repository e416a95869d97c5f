/* test_cache_policy.c - RFC 9111 rules: Cache-Control parsing, request
 * classification, storability, lifetime and age, freshness and stale
 * windows, validators, invalidation, keys, Vary, and HTTP dates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_http.h"
#include "cache_policy.h"
#include "common.h"
#include "test.h"

#define NOW 1700000000000LL   /* ms; 2023-11-14T22:13:20Z */

static const struct http_limits lim = { 16384, 8192 };
static struct http_req req;
static struct http_resp resp;
static char reqbuf[8192], respbuf[8192];

/* Parse "GET / HTTP/1.1\r\n" + <fields> as the request under test. */
static void set_req(const char *method, const char *fields)
{
	int n = snprintf(reqbuf, sizeof reqbuf, "%s /p?q=1 HTTP/1.1\r\nHost: example.com\r\n%s\r\n",
			 method, fields);

	memset(&req, 0, sizeof req);
	CHECK_INT(http_parse_request(reqbuf, (size_t)n, 0, &lim, &req), n);
}

static void set_resp(int status, const char *fields)
{
	int n = snprintf(respbuf, sizeof respbuf, "HTTP/1.1 %d X\r\n%s\r\n", status, fields);

	memset(&resp, 0, sizeof resp);
	CHECK_INT(http_parse_response(respbuf, (size_t)n, 0, &lim, &resp), n);
}

/* Verdict for GET (plus <reqf>) answered by <status> + <respf>. */
static int verdict(const char *reqf, int status, const char *respf, int64_t ttl,
		   struct cache_storeinfo *si)
{
	struct cache_policy_conf pc = { ttl };
	struct cache_reqinfo ri;

	set_req("GET", reqf);
	cache_policy_request(&req, &ri);
	set_resp(status, respf);
	return cache_policy_response(&ri, &resp, NOW - 100, NOW, &pc, si);
}

/* ---- dates ---- */

static void test_dates(void)
{
	int64_t t = 0;
	char out[30];
	int64_t i;

	CHECK_INT(cache_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
	CHECK_INT(t, 784111777);
	t = 0;
	CHECK_INT(cache_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), 0);
	CHECK_INT(t, 784111777);
	t = 0;
	CHECK_INT(cache_parse_http_date("Sun Nov  6 08:49:37 1994", 24, &t), 0);
	CHECK_INT(t, 784111777);
	CHECK_INT(cache_parse_http_date("Thu Nov 16 08:49:37 2023", 24, &t), 0);
	CHECK_INT(cache_parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", 29, &t), 0);
	CHECK_INT(t, 0);
	CHECK_INT(cache_parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT", 29, &t), 0);
	CHECK_INT(t, 951825600);
	CHECK_INT(cache_parse_http_date("Wednesday, 01-Jan-25 00:00:00 GMT", 33, &t), 0);
	CHECK_INT(t, 1735689600);   /* two-digit year 25 -> 2025 */
	CHECK_INT(cache_parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT", 29, &t), 0);

#define BAD(s) CHECK_INT(cache_parse_http_date(s, strlen(s), &t), -EINVAL)
	BAD("");
	BAD("0");
	BAD("-1");
	BAD("Sun, 06 Nov 1994 08:49:37 UTC");
	BAD("Sun, 06 Nov 1994 08:49:37 GMT ");
	BAD("Sun, 06 Nov 1994 08:49:37");
	BAD("Sun, 6 Nov 1994 08:49:37 GMT");
	BAD("Sun, 06 nov 1994 08:49:37 GMT");
	BAD("Xyz, 06 Nov 1994 08:49:37 GMT");
	BAD("Sun, 31 Feb 2000 00:00:00 GMT");
	BAD("Mon, 29 Feb 2021 00:00:00 GMT");
	BAD("Thu, 29 Feb 1900 00:00:00 GMT");      /* 1900 was no leap year */
	BAD("Sun, 00 Nov 1994 08:49:37 GMT");
	BAD("Sun, 06 Nov 1994 24:00:00 GMT");
	BAD("Sun, 06 Nov 1994 08:60:00 GMT");
	BAD("Sun, 06 Nov 1994 08:49:61 GMT");
	BAD("Sun, 06 Nov 94 08:49:37 GMT");
	BAD("Sunday, 06-Nov-1994 08:49:37 GMT");
	BAD("Sun Nov 6 08:49:37 1994");
	BAD("Sun Nov  6 08:49:37 94");
	BAD("Sun,  06 Nov 1994 08:49:37 GMT");
	BAD("Sun, 06 Nov 1994 08:49:37 GMT\r\n");
	BAD("Sun, 06 Nov 1994 08:4a:37 GMT");
#undef BAD
	/* a view is not NUL-terminated: the length decides */
	CHECK_INT(cache_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMTxx", 29, &t), 0);

	cache_format_http_date(784111777, out);
	CHECK_STR(out, "Sun, 06 Nov 1994 08:49:37 GMT");
	cache_format_http_date(0, out);
	CHECK_STR(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	for (i = 0; i < 4000000000LL; i += 86400 * 37 + 3607) {
		cache_format_http_date(i, out);
		if (cache_parse_http_date(out, 29, &t) || t != i) {
			CHECK_INT(t, i);
			break;
		}
	}
}

/* ---- Cache-Control ---- */

static void cc_of(const char *fields, struct cache_cc *cc)
{
	set_resp(200, fields);
	cache_cc_parse(resp.hdrs, resp.nhdrs, cc);
}

static void test_cache_control(void)
{
	struct cache_cc cc;

	cc_of("", &cc);
	CHECK_INT(cc.flags, 0);
	CHECK_INT(cc.max_age, -1);
	cc_of("Cache-Control: public, max-age=60, s-maxage=30\r\n", &cc);
	CHECK(cc.flags & CACHE_CC_PUBLIC);
	CHECK(cc.flags & CACHE_CC_PRESENT);
	CHECK_INT(cc.max_age, 60);
	CHECK_INT(cc.s_maxage, 30);
	cc_of("Cache-Control: MAX-AGE=5,NO-STORE\r\n", &cc);
	CHECK_INT(cc.max_age, 5);
	CHECK(cc.flags & CACHE_CC_NO_STORE);
	/* the quoted comma does not split; qualified no-cache counts as no-cache */
	cc_of("Cache-Control: no-cache=\"Set-Cookie, X-Foo\", max-age=9\r\n", &cc);
	CHECK(cc.flags & CACHE_CC_NO_CACHE);
	CHECK_INT(cc.max_age, 9);
	cc_of("Cache-Control: private=\"a,b\"\r\n", &cc);
	CHECK(cc.flags & CACHE_CC_PRIVATE);
	/* the first occurrence wins, over several fields */
	cc_of("Cache-Control: max-age=10\r\nCache-Control: max-age=20, must-revalidate\r\n", &cc);
	CHECK_INT(cc.max_age, 10);
	CHECK(cc.flags & CACHE_CC_MUST_REVALIDATE);
	/* invalid max-age is stale (0); invalid stale-while-revalidate is absent */
	cc_of("Cache-Control: max-age=abc, stale-while-revalidate=x\r\n", &cc);
	CHECK_INT(cc.max_age, 0);
	CHECK_INT(cc.swr, -1);
	cc_of("Cache-Control: max-age\r\n", &cc);
	CHECK_INT(cc.max_age, 0);
	cc_of("Cache-Control: max-age=99999999999999999999\r\n", &cc);
	CHECK_INT(cc.max_age, 2147483648LL);
	cc_of("Cache-Control: stale-while-revalidate=30, stale-if-error=600, proxy-revalidate\r\n",
	      &cc);
	CHECK_INT(cc.swr, 30);
	CHECK_INT(cc.sie, 600);
	CHECK(cc.flags & CACHE_CC_PROXY_REVALIDATE);
	cc_of("Cache-Control: max-stale, min-fresh=3, only-if-cached, immutable\r\n", &cc);
	CHECK(cc.flags & CACHE_CC_MAX_STALE);
	CHECK_INT(cc.max_stale, -1);
	CHECK_INT(cc.min_fresh, 3);
	CHECK(cc.flags & CACHE_CC_ONLY_IF_CACHED);
	CHECK(cc.flags & CACHE_CC_IMMUTABLE);
	cc_of("Cache-Control: max-stale=7\r\n", &cc);
	CHECK_INT(cc.max_stale, 7);
	cc_of("Cache-Control: , ,max-age = 4 junk, foo=\"unterminated\r\n", &cc);
	CHECK_INT(cc.max_age, 4);
}

/* ---- requests ---- */

static void test_request(void)
{
	struct cache_reqinfo ri;

	set_req("GET", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_LOOKUP);
	CHECK_INT(ri.head, 0);
	set_req("HEAD", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_LOOKUP);
	CHECK_INT(ri.head, 1);
	set_req("POST", "Content-Length: 0\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_INVALIDATE);
	set_req("DELETE", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_INVALIDATE);
	set_req("PURGE", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_INVALIDATE);   /* unknown: not known safe */
	set_req("OPTIONS", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_BYPASS);
	set_req("GET", "Cache-Control: no-cache\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_REVALIDATE);
	set_req("GET", "Cache-Control: max-age=0\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_REVALIDATE);
	set_req("GET", "Cache-Control: max-age=5\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_LOOKUP);
	set_req("GET", "Pragma: no-cache\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_REVALIDATE);
	set_req("GET", "Pragma: no-cache\r\nCache-Control: max-age=5\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_LOOKUP);       /* Cache-Control wins over Pragma */
	set_req("GET", "Authorization: Bearer x\r\nCache-Control: no-store\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.auth, 1);
	CHECK_INT(ri.no_store, 1);
	CHECK_INT(ri.action, CACHE_ACT_LOOKUP);
	set_req("GET", "Range: bytes=0-10\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.action, CACHE_ACT_BYPASS);
	set_req("GET", "Cache-Control: only-if-cached\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(ri.only_if_cached, 1);
}

/* ---- responses ---- */

static void test_storable(void)
{
	struct cache_storeinfo si;

	CHECK_INT(verdict("", 200, "Cache-Control: max-age=60\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(si.lifetime_ms, 60000);
	CHECK_INT(si.flags, 0);
	CHECK_INT(si.store_until_ms, NOW - si.initial_age_ms + 60000);
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=60, s-maxage=30\r\n", 0, &si), 0);
	CHECK_INT(si.lifetime_ms, 30000);
	CHECK(si.flags & CACHE_HF_MUST_REVALIDATE);
	CHECK_INT(verdict("", 200, "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
			  "Expires: Tue, 14 Nov 2023 22:23:20 GMT\r\n", 0, &si), 0);
	CHECK_INT(si.lifetime_ms, 600000);
	CHECK_INT(si.date_ms, NOW);
	/* max-age beats Expires */
	CHECK_INT(verdict("", 200, "Expires: Tue, 14 Nov 2023 22:23:20 GMT\r\n"
			  "Cache-Control: max-age=5\r\n", 0, &si), 0);
	CHECK_INT(si.lifetime_ms, 5000);
	/* invalid Expires = already expired: only worth keeping with a validator */
	CHECK_INT(verdict("", 200, "Expires: 0\r\n", 0, &si), CACHE_NS_FRESHNESS);
	CHECK_INT(verdict("", 200, "Expires: 0\r\nETag: \"a\"\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(si.lifetime_ms, 0);
	CHECK(si.etag != NULL);
	CHECK(si.store_until_ms >= NOW + 10 * 60 * 1000 - si.initial_age_ms);
	/* no freshness at all: only with default_ttl, only for default-cacheable codes */
	CHECK_INT(verdict("", 200, "", 0, &si), CACHE_NS_FRESHNESS);
	CHECK_INT(verdict("", 200, "", 10000, &si), CACHE_STORE_OK);
	CHECK_INT(si.lifetime_ms, 10000);
	CHECK(si.flags & CACHE_HF_HEURISTIC);
	CHECK_INT(verdict("", 404, "", 10000, &si), CACHE_STORE_OK);
	CHECK_INT(verdict("", 302, "", 10000, &si), CACHE_NS_STATUS);
	CHECK_INT(verdict("", 302, "Cache-Control: public\r\n", 10000, &si), CACHE_STORE_OK);
	CHECK_INT(verdict("", 302, "Cache-Control: max-age=9\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(verdict("", 500, "Cache-Control: max-age=9\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(verdict("", 206, "Cache-Control: max-age=9\r\n", 0, &si), CACHE_NS_STATUS);
	CHECK_INT(verdict("", 304, "Cache-Control: max-age=9\r\n", 0, &si), CACHE_NS_STATUS);
	CHECK_INT(verdict("", 101, "Cache-Control: max-age=9\r\n", 0, &si), CACHE_NS_STATUS);
	/* forbidden outright */
	CHECK_INT(verdict("", 200, "Cache-Control: no-store, max-age=9\r\n", 0, &si),
		  CACHE_NS_NO_STORE);
	CHECK_INT(verdict("", 200, "Cache-Control: private, max-age=9\r\n", 0, &si),
		  CACHE_NS_PRIVATE);
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=9\r\nSet-Cookie: a=b\r\n", 0, &si),
		  CACHE_NS_SET_COOKIE);
	CHECK_INT(verdict("Cache-Control: no-store\r\n", 200, "Cache-Control: max-age=9\r\n", 0,
			  &si), CACHE_NS_REQUEST);
	/* Authorization: only public, s-maxage or must-revalidate allow it */
	CHECK_INT(verdict("Authorization: x\r\n", 200, "Cache-Control: max-age=9\r\n", 0, &si),
		  CACHE_NS_AUTH);
	CHECK_INT(verdict("Authorization: x\r\n", 200, "Cache-Control: max-age=9, public\r\n", 0,
			  &si), CACHE_STORE_OK);
	CHECK_INT(verdict("Authorization: x\r\n", 200, "Cache-Control: s-maxage=9\r\n", 0, &si),
		  CACHE_STORE_OK);
	CHECK_INT(verdict("Authorization: x\r\n", 200,
			  "Cache-Control: max-age=9, must-revalidate\r\n", 0, &si), CACHE_STORE_OK);
	/* Vary */
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=9\r\nVary: *\r\n", 0, &si),
		  CACHE_NS_VARY);
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=9\r\nVary: Accept-Encoding, X-A\r\n"
			  "Vary: User-Agent\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_MEM(si.vary, si.vary_len, "accept-encoding,x-a,user-agent");
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=9\r\nVary: A, *\r\n", 0, &si),
		  CACHE_NS_VARY);
	/* no-cache: stored, always revalidated, so it needs a validator */
	CHECK_INT(verdict("", 200, "Cache-Control: no-cache, max-age=60\r\n", 0, &si),
		  CACHE_NS_FRESHNESS);
	CHECK_INT(verdict("", 200, "Cache-Control: no-cache, max-age=60\r\n"
			  "Last-Modified: Tue, 14 Nov 2023 20:00:00 GMT\r\n", 0, &si), CACHE_STORE_OK);
	CHECK(si.flags & CACHE_HF_NO_CACHE);
	CHECK(si.last_modified != NULL);
	/* stale windows; must-revalidate cancels them */
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=10, stale-while-revalidate=20, "
			  "stale-if-error=300\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(si.swr_ms, 20000);
	CHECK_INT(si.sie_ms, 300000);
	CHECK_INT(si.store_until_ms, NOW - si.initial_age_ms + 10000 + 300000);
	CHECK_INT(verdict("", 200, "Cache-Control: max-age=10, must-revalidate, "
			  "stale-while-revalidate=20\r\n", 0, &si), CACHE_STORE_OK);
	CHECK_INT(si.swr_ms, 0);
	/* methods */
	{
		struct cache_policy_conf pc = { 0 };
		struct cache_reqinfo ri;

		set_req("HEAD", "");
		cache_policy_request(&req, &ri);
		set_resp(200, "Cache-Control: max-age=60\r\n");
		CHECK_INT(cache_policy_response(&ri, &resp, NOW, NOW, &pc, &si), CACHE_NS_METHOD);
		set_req("POST", "");
		cache_policy_request(&req, &ri);
		CHECK_INT(cache_policy_response(&ri, &resp, NOW, NOW, &pc, &si), CACHE_NS_METHOD);
	}
	CHECK_STR(cache_nostore_str(CACHE_NS_AUTH), "authorization");
	CHECK_STR(cache_nostore_str(99), "unknown");
}

static void test_age(void)
{
	struct cache_policy_conf pc = { 0 };
	struct cache_reqinfo ri;
	struct cache_storeinfo si;
	struct cache_http_meta m;

	set_req("GET", "");
	cache_policy_request(&req, &ri);
	/* Date 5 s before the response arrived: apparent age 5 s */
	set_resp(200, "Date: Tue, 14 Nov 2023 22:13:15 GMT\r\nCache-Control: max-age=60\r\n");
	CHECK_INT(cache_policy_response(&ri, &resp, NOW - 300, NOW, &pc, &si), 0);
	CHECK_INT(si.initial_age_ms, 5000);
	/* Age header plus the response delay beats a small apparent age */
	set_resp(200, "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\nAge: 10\r\n"
		 "Cache-Control: max-age=60\r\n");
	CHECK_INT(cache_policy_response(&ri, &resp, NOW - 300, NOW, &pc, &si), 0);
	CHECK_INT(si.initial_age_ms, 10300);
	/* a Date in the future is no negative age; a bad Age is ignored */
	set_resp(200, "Date: Tue, 14 Nov 2023 23:00:00 GMT\r\nAge: x\r\n"
		 "Cache-Control: max-age=60\r\n");
	CHECK_INT(cache_policy_response(&ri, &resp, NOW, NOW, &pc, &si), 0);
	CHECK_INT(si.initial_age_ms, 0);
	memset(&m, 0, sizeof m);
	m.response_ms = NOW;
	m.initial_age_ms = 10300;
	CHECK_INT(cache_policy_age_ms(&m, NOW + 1000), 11300);
	CHECK_INT(cache_policy_age_ms(&m, NOW - 1000), 10300);   /* clock went back */
}

static void test_freshness(void)
{
	struct cache_http_meta m;
	struct cache_reqinfo ri;

	memset(&m, 0, sizeof m);
	m.response_ms = NOW;
	m.initial_age_ms = 1000;
	m.lifetime_ms = 10000;
	set_req("GET", "");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW), CACHE_FRESH);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 8999), CACHE_FRESH);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 9000), CACHE_STALE);   /* age == lifetime */
	m.swr_ms = 5000;
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 9000), CACHE_STALE_SERVE);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 14000), CACHE_STALE_SERVE);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 14001), CACHE_STALE);
	m.flags = CACHE_HF_MUST_REVALIDATE;
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 9000), CACHE_STALE);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW), CACHE_FRESH);
	m.flags = CACHE_HF_NO_CACHE;
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW), CACHE_STALE);
	m.flags = 0;
	m.swr_ms = 0;
	/* the request's own limits */
	set_req("GET", "Cache-Control: max-age=2\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 500), CACHE_FRESH);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 1001), CACHE_STALE);
	set_req("GET", "Cache-Control: min-fresh=5\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 4000), CACHE_FRESH);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 4001), CACHE_STALE);
	set_req("GET", "Cache-Control: max-stale=3\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 12000), CACHE_STALE_SERVE);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 12001), CACHE_STALE);
	set_req("GET", "Cache-Control: max-stale\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 99999999), CACHE_STALE_SERVE);
	m.flags = CACHE_HF_MUST_REVALIDATE;
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW + 99999999), CACHE_STALE);
	m.flags = 0;
	set_req("GET", "Cache-Control: no-cache\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_freshness(&m, &ri, NOW), CACHE_STALE);

	/* stale-if-error */
	set_req("GET", "");
	cache_policy_request(&req, &ri);
	m.sie_ms = 60000;
	CHECK_INT(cache_policy_stale_if_error(&m, &ri, NOW + 69000), 1);
	CHECK_INT(cache_policy_stale_if_error(&m, &ri, NOW + 69001), 0);
	m.sie_ms = 0;
	CHECK_INT(cache_policy_stale_if_error(&m, &ri, NOW + 9001), 0);
	set_req("GET", "Cache-Control: stale-if-error=100\r\n");
	cache_policy_request(&req, &ri);
	CHECK_INT(cache_policy_stale_if_error(&m, &ri, NOW + 9000 + 100000), 1);
	m.flags = CACHE_HF_MUST_REVALIDATE;
	CHECK_INT(cache_policy_stale_if_error(&m, &ri, NOW + 9001), 0);
}

static void test_invalidation(void)
{
	set_req("POST", "Content-Length: 0\r\n");
	set_resp(200, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 1);
	set_resp(303, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 1);
	set_resp(500, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 0);
	set_resp(404, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 0);
	set_req("DELETE", "");
	set_resp(204, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 1);
	set_req("GET", "");
	set_resp(200, "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 0);
	set_req("OPTIONS", "");
	CHECK_INT(cache_policy_invalidates(&req, &resp), 0);
}

/* ---- keys ---- */

static int key_for(const char *host, const char *target, char *out, size_t cap)
{
	int n = snprintf(reqbuf, sizeof reqbuf, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);

	memset(&req, 0, sizeof req);
	if (http_parse_request(reqbuf, (size_t)n, 0, &lim, &req) != n)
		return -999;
	return cache_policy_key("http", 80, &req, out, cap);
}

static void test_keys(void)
{
	char k[256];
	int n;

	n = key_for("Example.COM", "/a/B?x=1", k, sizeof k);
	CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "http://example.com:80/a/B?x=1");
	n = key_for("example.com:8080", "/", k, sizeof k);
	CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "http://example.com:8080/");
	n = key_for("example.com:080", "/", k, sizeof k);
	CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "http://example.com:80/");
	n = key_for("[::1]:8080", "/", k, sizeof k);
	CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "http://[::1]:8080/");
	n = key_for("[::1]", "/", k, sizeof k);
	CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "http://[::1]:80/");
	CHECK_INT(key_for("example.com:", "/", k, sizeof k) > 0, 1);
	CHECK_INT(key_for("example.com", "/", k, 10), -ENOSPC);
	/* absolute-form: the parser gives origin-form target and the authority */
	n = snprintf(reqbuf, sizeof reqbuf, "GET http://Other.example:81/z HTTP/1.1\r\n"
		     "Host: other.example:81\r\n\r\n");
	memset(&req, 0, sizeof req);
	if (http_parse_request(reqbuf, (size_t)n, 0, &lim, &req) == n) {
		n = cache_policy_key("https", 443, &req, k, sizeof k);
		CHECK_MEM(k, (size_t)(n > 0 ? n : 0), "https://other.example:81/z");
	}
	/* the scheme and default port are the caller's (TLS listener: https/443) */
	memset(&req, 0, sizeof req);
	req.target = "/";
	req.target_len = 1;
	CHECK_INT(cache_policy_key("http", 80, &req, k, sizeof k), -EINVAL);   /* no Host */
	req.host = "a:b";
	req.host_len = 3;
	CHECK_INT(cache_policy_key("http", 80, &req, k, sizeof k), -EINVAL);
	req.host = "[::1";
	req.host_len = 4;
	CHECK_INT(cache_policy_key("http", 80, &req, k, sizeof k), -EINVAL);
	req.host = "h:123456";
	req.host_len = 8;
	CHECK_INT(cache_policy_key("http", 80, &req, k, sizeof k), -EINVAL);
	req.host = "h";
	req.host_len = 1;
	req.target = "*";
	CHECK_INT(cache_policy_key("http", 80, &req, k, sizeof k), -EINVAL);
}

static void test_variant_key(void)
{
	char a[512], b[512], want[128];
	int na, nb;
	const char *names = "accept-encoding,x-missing";

	set_req("GET", "Accept-Encoding: gzip, br\r\nX-Other: 1\r\naccept-encoding: zstd\r\n");
	na = cache_policy_variant_key("K", 1, names, strlen(names), &req, a, sizeof a);
	snprintf(want, sizeof want, "K%caccept-encoding=gzip,br,zstd\nx-missing=\n", CACHE_VARY_SEP);
	CHECK_MEM(a, (size_t)(na > 0 ? na : 0), want);
	/* spacing differences select the same variant */
	set_req("GET", "accept-encoding:gzip,br  \r\nAccept-Encoding:  zstd\r\n");
	nb = cache_policy_variant_key("K", 1, names, strlen(names), &req, b, sizeof b);
	CHECK(na == nb && !memcmp(a, b, (size_t)na));
	set_req("GET", "Accept-Encoding: br, gzip\r\n");
	nb = cache_policy_variant_key("K", 1, names, strlen(names), &req, b, sizeof b);
	CHECK(na != nb || memcmp(a, b, (size_t)na));
	CHECK_INT(cache_policy_variant_key("K", 1, names, strlen(names), &req, b, 8), -ENOSPC);
}

int main(void)
{
	RUN(test_dates);
	RUN(test_cache_control);
	RUN(test_request);
	RUN(test_storable);
	RUN(test_age);
	RUN(test_freshness);
	RUN(test_invalidation);
	RUN(test_keys);
	RUN(test_variant_key);
	TEST_REPORT();
}

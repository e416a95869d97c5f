/* test_http_parse.c - request/response head parser, chunked tracker and
 * list helpers: valid and hostile corpora, incremental feeding, a guard
 * page after the data, and a mutation fuzz loop checking the invariants. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"
#include "http_parse.h"
#include "common.h"

#define S(lit) lit, sizeof(lit) - 1

static const struct http_limits lim = { .max_head = 8192, .max_uri = 1024 };
static struct http_req req;
static struct http_resp resp;
static char *keep;	/* exact-size copy of the last input, so ASan sees overreads */

static const char *own(const char *s, size_t n)
{
	free(keep);
	keep = malloc(n ? n : 1);
	memcpy(keep, s, n);
	return keep;
}

static int preq_n(const char *s, size_t n)
{
	return http_parse_request(own(s, n), n, 0, &lim, &req);
}

static int preq(const char *s)
{
	return preq_n(s, strlen(s));
}

static int presp_n(const char *s, size_t n)
{
	return http_parse_response(own(s, n), n, 0, &lim, &resp);
}

static int presp(const char *s)
{
	return presp_n(s, strlen(s));
}

static void expect_req(const char *s, size_t n, int want, const char *why)
{
	int r = preq_n(s, n);

	if (r != want) {
		test_cur_failed++;
		fprintf(stderr, "  %s: request \"%s\": got %d, expected %d\n",
			test_cur_name, why, r, want);
	}
}

static void expect_resp(const char *s, size_t n, int want, const char *why)
{
	int r = presp_n(s, n);

	if (r != want) {
		test_cur_failed++;
		fprintf(stderr, "  %s: response \"%s\": got %d, expected %d\n",
			test_cur_name, why, r, want);
	}
}

/* A whole literal that must parse as a head of its full length. */
#define EXPECT_OK(lit, why) \
	expect_req(lit, sizeof(lit) - 1, (int)(sizeof(lit) - 1), why)

static int preq_lim(const char *s, const struct http_limits *l)
{
	return http_parse_request(own(s, strlen(s)), strlen(s), 0, l, &req);
}

static const struct http_hdr *find_hdr(const struct http_hdr *h, uint32_t n,
				       const char *name)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (rf_ieq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

/* xorshift32: deterministic randomness for splits and fuzzing */
static uint32_t rng = 2463534242u;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* ---------------------------------------------------------------- requests */

static void test_req_get(void)
{
	const char *s = "GET /index.html?q=1&r=%20 HTTP/1.1\r\n"
			"Host: example.com:8080\r\n"
			"User-Agent: curl/8.5.0\r\n"
			"Accept: */*\r\n"
			"X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n"
			"X-Request-Id: abc-123\r\n"
			"\r\n";
	const struct http_hdr *h;

	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.head_len, strlen(s));
	CHECK_MEM(req.method, req.method_len, "GET");
	CHECK_INT(req.meth, HTTP_M_GET);
	CHECK_MEM(req.target, req.target_len, "/index.html?q=1&r=%20");
	CHECK(req.target == keep + 4);
	CHECK_MEM(req.host, req.host_len, "example.com:8080");
	CHECK_INT(req.minor, 1);
	CHECK_INT(req.flags, 0);
	CHECK_INT(req.content_length, -1);
	CHECK_INT(req.nhdrs, 5);
	CHECK_MEM(req.hdrs[0].name, req.hdrs[0].name_len, "Host");
	CHECK_INT(req.hdrs[0].field, HTTP_F_HOST);
	CHECK(req.host == req.hdrs[0].value);
	CHECK_MEM(req.hdrs[1].name, req.hdrs[1].name_len, "User-Agent");
	CHECK_MEM(req.hdrs[1].value, req.hdrs[1].value_len, "curl/8.5.0");
	CHECK_INT(req.hdrs[1].field, HTTP_F_OTHER);
	CHECK_MEM(req.hdrs[2].name, req.hdrs[2].name_len, "Accept");
	CHECK_MEM(req.hdrs[2].value, req.hdrs[2].value_len, "*/*");
	CHECK_INT(req.hdrs[2].field, HTTP_F_OTHER);
	CHECK_MEM(req.hdrs[3].value, req.hdrs[3].value_len, "10.0.0.1, 10.0.0.2");
	CHECK_INT(req.hdrs[3].field, HTTP_F_X_FORWARDED_FOR);
	CHECK_MEM(req.hdrs[4].value, req.hdrs[4].value_len, "abc-123");
	CHECK_INT(req.hdrs[4].field, HTTP_F_X_REQUEST_ID);
	h = find_hdr(req.hdrs, req.nhdrs, "accept");
	CHECK(h == &req.hdrs[2]);

	/* a head with the Host field only, the smallest 1.1 request */
	s = "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.meth, HTTP_M_HEAD);
	CHECK_MEM(req.target, req.target_len, "/");
	CHECK_MEM(req.host, req.host_len, "a");
	CHECK_INT(req.nhdrs, 1);
}

static void test_req_post_cl(void)
{
	const char *s = "POST /submit HTTP/1.1\r\n"
			"Host: api.example\r\n"
			"Content-Type: application/json\r\n"
			"Content-Length: 13\r\n"
			"\r\n"
			"{\"a\":\"hello\"}";
	size_t head = strlen(s) - 13;

	CHECK_INT(preq(s), head);
	CHECK_INT(req.meth, HTTP_M_POST);
	CHECK_INT(req.content_length, 13);
	CHECK_INT(req.flags, 0);
	CHECK_INT(req.nhdrs, 3);
	CHECK_INT(req.hdrs[2].field, HTTP_F_CONTENT_LENGTH);
	CHECK_MEM(req.hdrs[2].value, req.hdrs[2].value_len, "13");

	/* identical repeats, as a list or as lines, collapse to one value */
	EXPECT_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		  "Content-Length: 5\r\n\r\n", "CL 5 twice");
	CHECK_INT(req.content_length, 5);
	CHECK_INT(req.meth, HTTP_M_PUT);
	EXPECT_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 ,7,\t7\r\n\r\n",
		  "CL list 7 ,7,\\t7");
	CHECK_INT(req.content_length, 7);
	EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "CL 0");
	CHECK_INT(req.content_length, 0);
	EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", "CL 007");
	CHECK_INT(req.content_length, 7);
	EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\n"
		  "Content-Length: 4611686018427387904\r\n\r\n", "CL 2^62");
	CHECK_INT(req.content_length, 4611686018427387904LL);
	EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  12  \r\n\r\n",
		  "CL with OWS");
	CHECK_INT(req.content_length, 12);
}

static void test_req_chunked(void)
{
	static const struct {
		const char *te;
	} ok[] = {
		{ "Transfer-Encoding: chunked\r\n" },
		{ "Transfer-Encoding:\tchunked\r\n" },
		{ "Transfer-Encoding: Chunked\r\n" },
		{ "transfer-encoding:   CHUNKED \t\r\n" },
		{ "TRANSFER-ENCODING:chunked\r\n" },
	};
	char buf[256];
	size_t i;
	int n;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		n = snprintf(buf, sizeof(buf), "POST /up HTTP/1.1\r\nHost: h\r\n%s\r\n",
			     ok[i].te);
		expect_req(buf, (size_t)n, n, ok[i].te);
		CHECK_INT(req.flags, HTTP_FL_CHUNKED);
		CHECK_INT(req.content_length, -1);
		CHECK_INT(req.hdrs[1].field, HTTP_F_TRANSFER_ENCODING);
		CHECK(rf_ieq(req.hdrs[1].value, req.hdrs[1].value_len, "chunked"));
	}
	/* body bytes after the head are not part of it */
	n = preq("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "5\r\nhello\r\n0\r\n\r\n");
	CHECK_INT(n, 56);
}

static void test_req_http10(void)
{
	const char *s = "GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n";

	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.minor, 0);
	CHECK(req.host == NULL);
	CHECK_INT(req.host_len, 0);
	CHECK_INT(req.flags, 0);
	CHECK_INT(req.nhdrs, 1);

	s = "GET /old HTTP/1.0\r\nHost: h.example\r\nConnection: Keep-Alive\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.minor, 0);
	CHECK_MEM(req.host, req.host_len, "h.example");
	CHECK_INT(req.flags, HTTP_FL_CONN_KEEP);
	CHECK_INT(req.hdrs[1].field, HTTP_F_CONNECTION);

	s = "POST /f HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
	CHECK_INT(preq(s), strlen(s) - 3);
	CHECK_INT(req.content_length, 3);

	/* a 1.0 request without any field */
	s = "GET / HTTP/1.0\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.nhdrs, 0);
}

static void test_req_absolute(void)
{
	const char *s = "GET http://example.com:8080/a/b?c=d HTTP/1.1\r\n"
			"Host: other.example\r\n\r\n";

	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_ABSOLUTE);
	CHECK_MEM(req.host, req.host_len, "example.com:8080");
	CHECK_MEM(req.target, req.target_len, "/a/b?c=d");
	CHECK(req.target > keep && req.target < keep + strlen(s));
	CHECK_INT(req.nhdrs, 1);

	/* absolute-form supplies the host on its own; empty path is "/" */
	s = "GET HTTP://Example.COM HTTP/1.1\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.host, req.host_len, "Example.COM");
	CHECK_MEM(req.target, req.target_len, "/");
	CHECK_INT(req.flags, HTTP_FL_ABSOLUTE);

	s = "POST https://[2001:db8::1]:443/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.host, req.host_len, "[2001:db8::1]:443");
	CHECK_MEM(req.target, req.target_len, "/x");
	CHECK_INT(req.content_length, 1);

	/* RFC 9112 3.2.4: OPTIONS with an empty path forwards "*" */
	s = "OPTIONS http://a.example HTTP/1.1\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.target, req.target_len, "*");

	/* 1.0 absolute-form (classic proxy request) */
	s = "GET http://a.example/p HTTP/1.0\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.host, req.host_len, "a.example");
	CHECK_INT(req.minor, 0);

	expect_req(S("GET ftp://a.example/ HTTP/1.1\r\n\r\n"), -EBADMSG, "ftp scheme");
	expect_req(S("GET http:///x HTTP/1.1\r\n\r\n"), -EBADMSG, "empty authority");
	expect_req(S("GET http:// HTTP/1.1\r\n\r\n"), -EBADMSG, "bare scheme");
	expect_req(S("GET http://u:p@a.example/ HTTP/1.1\r\n\r\n"), -EBADMSG, "userinfo");
	expect_req(S("GET http://a.example?x=1 HTTP/1.1\r\n\r\n"), -EBADMSG, "query, no path");
	expect_req(S("GET http://a,b/ HTTP/1.1\r\n\r\n"), -EBADMSG, "comma in authority");
	expect_req(S("GET http://a.example:80x/ HTTP/1.1\r\n\r\n"), -EBADMSG, "bad port");
	expect_req(S("GET http://[::1/ HTTP/1.1\r\n\r\n"), -EBADMSG, "open IPv6");
	expect_req(S("GET http:/a/ HTTP/1.1\r\n\r\n"), -EBADMSG, "one slash");
	expect_req(S("GET a.example/x HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "no scheme");
}

static void test_req_special_forms(void)
{
	const char *s = "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n";

	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.meth, HTTP_M_OPTIONS);
	CHECK_MEM(req.target, req.target_len, "*");
	CHECK_INT(req.flags, 0);

	s = "CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.meth, HTTP_M_CONNECT);
	CHECK_MEM(req.target, req.target_len, "db.example:5432");
	CHECK_MEM(req.host, req.host_len, "db.example:5432");

	s = "CONNECT [::1]:443 HTTP/1.1\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.host, req.host_len, "[::1]:443");

	expect_req(S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG, "* for GET");
	expect_req(S("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG, "*x");
	expect_req(S("GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "authority-form for GET");
	expect_req(S("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "origin-form for CONNECT");
	expect_req(S("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "CONNECT without port");
	expect_req(S("CONNECT a.example: HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "CONNECT empty port");
	expect_req(S("CONNECT http://a:1/ HTTP/1.1\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "CONNECT absolute-form");
	expect_req(S("CONNECT a:123456 HTTP/1.1\r\n\r\n"), -EBADMSG, "long port");
}

static void test_req_pipelined(void)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
			"GET /2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
	size_t first = 28, n = strlen(s);
	const char *buf;
	int r;

	CHECK_INT(preq(s), first);
	CHECK_MEM(req.target, req.target_len, "/1");
	CHECK_MEM(req.host, req.host_len, "a");
	CHECK_INT(req.flags, 0);
	buf = keep;
	r = http_parse_request(buf + first, n - first, 0, &lim, &req);
	CHECK_INT(r, n - first);
	CHECK_MEM(req.target, req.target_len, "/2");
	CHECK_MEM(req.host, req.host_len, "b");
	CHECK_INT(req.flags, HTTP_FL_CONN_CLOSE);

	/* the second request only partly arrived: the first is still whole */
	CHECK_INT(preq_n(s, first + 10), first);
	r = http_parse_request(keep + first, 10, 0, &lim, &req);
	CHECK_INT(r, -EAGAIN);
}

static void test_req_leading_crlf(void)
{
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";

	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.method, req.method_len, "GET");
	CHECK(req.method == keep + 4);
	CHECK_INT(preq("\r"), -EAGAIN);
	CHECK_INT(preq("\r\n"), -EAGAIN);
	CHECK_INT(preq("\r\n\r"), -EAGAIN);
	CHECK_INT(preq("\r\nGE"), -EAGAIN);
	CHECK_INT(preq("\rX"), -EBADMSG);
	CHECK_INT(preq("\r\n\n"), -EBADMSG);
	CHECK_INT(preq("\n"), -EBADMSG);
}

static void test_req_methods(void)
{
	static const struct {
		const char *m;
		int id;
	} t[] = {
		{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD },
		{ "POST", HTTP_M_POST }, { "PUT", HTTP_M_PUT },
		{ "DELETE", HTTP_M_DELETE }, { "PATCH", HTTP_M_PATCH },
		{ "OPTIONS", HTTP_M_OPTIONS }, { "TRACE", HTTP_M_TRACE },
		{ "get", HTTP_M_OTHER }, { "Get", HTTP_M_OTHER },
		{ "PROPFIND", HTTP_M_OTHER }, { "GETS", HTTP_M_OTHER },
		{ "GE", HTTP_M_OTHER }, { "M-SEARCH", HTTP_M_OTHER },
		{ "X!#$%&'*+-.^_`|~9", HTTP_M_OTHER },
	};
	char buf[128];
	size_t i;
	int n;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		n = snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", t[i].m);
		expect_req(buf, (size_t)n, n, t[i].m);
		CHECK_INT(req.meth, t[i].id);
		CHECK_MEM(req.method, req.method_len, t[i].m);
	}
}

static void test_req_field_ids(void)
{
	static const struct {
		const char *name;
		int id;
	} t[] = {
		{ "Host", HTTP_F_HOST }, { "CONTENT-LENGTH", HTTP_F_CONTENT_LENGTH },
		{ "transfer-encoding", HTTP_F_TRANSFER_ENCODING },
		{ "Connection", HTTP_F_CONNECTION }, { "Keep-Alive", HTTP_F_KEEP_ALIVE },
		{ "Proxy-Connection", HTTP_F_PROXY_CONNECTION }, { "TE", HTTP_F_TE },
		{ "Trailer", HTTP_F_TRAILER }, { "upGrade", HTTP_F_UPGRADE },
		{ "Expect", HTTP_F_EXPECT }, { "x-forwarded-FOR", HTTP_F_X_FORWARDED_FOR },
		{ "X-Forwarded-Proto", HTTP_F_X_FORWARDED_PROTO },
		{ "X-Request-ID", HTTP_F_X_REQUEST_ID }, { "VIA", HTTP_F_VIA },
		{ "Hosts", HTTP_F_OTHER }, { "Hos", HTTP_F_OTHER },
		{ "Content-Lengtx", HTTP_F_OTHER }, { "Content_Length", HTTP_F_OTHER },
		{ "Transfer-Encodinh", HTTP_F_OTHER }, { "X-Forwarded-Prot0", HTTP_F_OTHER },
		{ "Connectiom", HTTP_F_OTHER }, { "Keep_Alive", HTTP_F_OTHER },
		{ "Tf", HTTP_F_OTHER }, { "Vie", HTTP_F_OTHER }, { "Expect1", HTTP_F_OTHER },
		{ "Upgradf", HTTP_F_OTHER }, { "Trailex", HTTP_F_OTHER },
		{ "X-Request-Ie", HTTP_F_OTHER }, { "X-Forwarded-Fox", HTTP_F_OTHER },
		{ "Proxy-Connectiox", HTTP_F_OTHER }, { "Accept", HTTP_F_OTHER },
	};
	char buf[256];
	size_t i;
	int n;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		/* values chosen to be valid for every recognised field */
		n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n%s: %s\r\n%s\r\n",
			     t[i].name, t[i].id == HTTP_F_CONTENT_LENGTH ? "0" :
			     t[i].id == HTTP_F_TRANSFER_ENCODING ? "chunked" : "a",
			     t[i].id == HTTP_F_HOST ? "" : "Host: h\r\n");
		expect_req(buf, (size_t)n, n, t[i].name);
		CHECK_INT(req.hdrs[0].field, t[i].id);
		CHECK_MEM(req.hdrs[0].name, req.hdrs[0].name_len, t[i].name);
	}
}

static void test_req_values(void)
{
	const char *s = "GET / HTTP/1.1\r\n"
			"Host: a\r\n"
			"X-A:   v v  \t\r\n"
			"X-Empty:\r\n"
			"X-Blank: \t \r\n"
			"X-Utf8: caf\xc3\xa9 \xff\r\n"
			"X-Tab:\tin\tside\t\r\n"
			"X-Long: 0123456789abcdef0123456789abcdef0123456789abcdef!\r\n"
			"\r\n";

	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.nhdrs, 7);
	CHECK_MEM(req.hdrs[1].value, req.hdrs[1].value_len, "v v");
	CHECK_INT(req.hdrs[2].value_len, 0);
	CHECK_INT(req.hdrs[3].value_len, 0);
	CHECK_MEM(req.hdrs[4].value, req.hdrs[4].value_len, "caf\xc3\xa9 \xff");
	CHECK_MEM(req.hdrs[5].value, req.hdrs[5].value_len, "in\tside");
	CHECK_MEM(req.hdrs[6].value, req.hdrs[6].value_len,
		  "0123456789abcdef0123456789abcdef0123456789abcdef!");
	CHECK_MEM(req.hdrs[1].name, req.hdrs[1].name_len, "X-A");

	/* every tchar is allowed in a name */
	s = "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: 1\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.hdrs[1].name, req.hdrs[1].name_len, "!#$%&'*+-.^_`|~09azAZ");

	/* a long target goes through the vector scan */
	s = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/b?c=~!$'()*+,;=:@%25 HTTP/1.1\r\n"
	    "Host: a\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_MEM(req.target, req.target_len,
		  "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/b?c=~!$'()*+,;=:@%25");
}

static void test_req_flags(void)
{
	const char *s;

	s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Keep-Alive\r\n"
	    "Upgrade: websocket\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_CONN_UPGRADE | HTTP_FL_CONN_KEEP);

	/* Upgrade before Connection counts too */
	s = "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nHost: a\r\nConnection: upgrade\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_CONN_UPGRADE);

	/* "Connection: upgrade" without an Upgrade field means nothing */
	s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, 0);

	s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ,, CLOSE ,\r\n"
	    "Connection: x-custom\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_CONN_CLOSE);

	s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, keep-alivex\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, 0);

	s = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
	    "Expect: 100-Continue\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_EXPECT_100);
	CHECK_INT(req.content_length, 10);

	s = "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, 0);

	/* Proxy-Connection is only recognised, never obeyed */
	s = "GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, 0);
	CHECK_INT(req.hdrs[1].field, HTTP_F_PROXY_CONNECTION);

	s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\nExpect: 100-continue\r\n\r\n";
	CHECK_INT(preq(s), strlen(s));
	CHECK_INT(req.flags, HTTP_FL_CHUNKED | HTTP_FL_CONN_CLOSE | HTTP_FL_EXPECT_100);
}

static void test_req_host(void)
{
	static const struct {
		const char *host;
		int ok;
	} t[] = {
		{ "example.com", 1 }, { "example.com:80", 1 }, { "EXAMPLE.com", 1 },
		{ "127.0.0.1:8080", 1 }, { "[::1]", 1 }, { "[::1]:8443", 1 },
		{ "[2001:db8::a.b.c.d]", 1 }, { "a-b_c~d", 1 }, { "xn--bcher-kva.example", 1 },
		{ "a:", 1 }, { "%41", 1 },
		{ "", 0 }, { "a b", 0 }, { "a/b", 0 }, { "a@b", 0 }, { "u@a:80", 0 },
		{ "a,b", 0 }, { "a\x01" "b", 0 }, { "a\x7f", 0 }, { "\xc3\xa9.example", 0 },
		{ "a:b", 0 }, { "a:80:90", 0 }, { "a:123456", 0 }, { "[::1", 0 },
		{ "[]", 0 }, { "[::1]x", 0 }, { "[::g]", 0 }, { ":80", 0 }, { "a?b", 0 },
		{ "a#b", 0 }, { "a\\b", 0 }, { "\"a\"", 0 },
	};
	char buf[256];
	size_t i;
	int n;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			     t[i].host);
		expect_req(buf, (size_t)n, t[i].ok ? n : -EBADMSG, t[i].host);
		if (t[i].ok)
			CHECK_MEM(req.host, req.host_len, t[i].host);
	}
	/* a Host field must be valid even when absolute-form wins over it */
	expect_req(S("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"), -EBADMSG,
		   "bad Host beside absolute-form");
	expect_req(S("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -EBADMSG,
		   "two Hosts beside absolute-form");
	expect_req(S("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), -EBADMSG,
		   "two Hosts in 1.0");
	expect_req(S("GET / HTTP/1.0\r\nHost:\r\n\r\n"), -EBADMSG, "empty Host in 1.0");
}

/* Requests that must be refused, each with the error the proxy answers. */
static void test_req_invalid(void)
{
	static const struct {
		const char *s;
		size_t n;
		int err;
		const char *why;
	} t[] = {
#define BAD(lit, err, why) { lit, sizeof(lit) - 1, err, why }
#define H "Host: a\r\n"
		/* framing: Content-Length and Transfer-Encoding */
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		    -EBADMSG, "CL + TE"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		    -EBADMSG, "TE + CL"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
		    -EBADMSG, "two differing CL"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n", -EBADMSG, "CL 5, 6"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5,\r\n\r\n", -EBADMSG, "CL 5,"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: ,5\r\n\r\n", -EBADMSG, "CL ,5"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", -EBADMSG, "empty CL"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length:  \r\n\r\n", -EBADMSG, "blank CL"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", -EBADMSG, "CL -1"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", -EBADMSG, "CL +5"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", -EBADMSG, "CL hex"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", -EBADMSG, "CL 1 2"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n", -EBADMSG, "CL 5a"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1.0\r\n\r\n", -EBADMSG, "CL 1.0"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387905\r\n\r\n",
		    -EBADMSG, "CL 2^62+1"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n",
		    -EBADMSG, "CL overflow"),
		BAD("POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n", -EBADMSG, "CL space colon"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n",
		    -EBADMSG, "chunked, identity"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n",
		    -EBADMSG, "TE space before colon"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding\t: chunked\r\n\r\n",
		    -EBADMSG, "TE tab before colon"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", -EBADMSG, "xchunked"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunkedx\r\n\r\n", -EBADMSG, "chunkedx"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", -EBADMSG, "identity"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n",
		    -EBADMSG, "chunked twice"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		    -EBADMSG, "two chunked lines"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
		    -EBADMSG, "chunked then gzip line"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", -EBADMSG, "params"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked ;q=1\r\n\r\n", -EBADMSG, "params 2"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", -EBADMSG, "empty TE"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,\r\n\r\n", -EBADMSG, "TE ,"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n", -EBADMSG, "TE chunked,"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", -EBADMSG, "quoted"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chun ked\r\n\r\n", -EBADMSG, "chun ked"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", -EBADMSG, "gzip alone"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", -ENOSYS,
		    "gzip, chunked"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
		    -ENOSYS, "gzip line, chunked line"),
		BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity, chunked\r\n\r\n",
		    -EBADMSG, "identity, chunked"),
		BAD("POST / HTTP/1.0\r\n" H "Transfer-Encoding: chunked\r\n\r\n", -EBADMSG, "TE in 1.0"),
		/* line structure */
		BAD("GET / HTTP/1.1\r\n" H "X-A: 1\r\n 2\r\n\r\n", -EBADMSG, "obs-fold SP"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: 1\r\n\t2\r\n\r\n", -EBADMSG, "obs-fold HTAB"),
		BAD("GET / HTTP/1.1\r\n " H "\r\n", -EBADMSG, "space before first field"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", -EBADMSG, "bare CR in value"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: a\r\r\n\r\n", -EBADMSG, "CR CR LF"),
		BAD("GET / HTTP/1.1\r\r\n" H "\r\n", -EBADMSG, "CR CR LF request line"),
		BAD("GET / HTTP/1.1\r\n" H "\rX-A: b\r\n\r\n", -EBADMSG, "bare CR line start"),
		BAD("GET / HTTP/1.1\r\n" H "X\rA: b\r\n\r\n", -EBADMSG, "bare CR in name"),
		BAD("GET / HTTP/1.1\nHost: a\r\n\r\n", -EBADMSG, "bare LF request line"),
		BAD("GET / HTTP/1.1\r\nHost: a\n\r\n", -EBADMSG, "bare LF field"),
		BAD("GET / HTTP/1.1\r\nHost: a\r\n\n", -EBADMSG, "bare LF end"),
		BAD("GET / HTTP/1.1\n\n", -EBADMSG, "LF LF"),
		BAD("GET / HTTP/1.1\r\nX-A: a\nb\r\n" H "\r\n", -EBADMSG, "LF in value"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n", -EBADMSG, "NUL in value"),
		BAD("GET / HTTP/1.1\r\n" H "X-\0A: b\r\n\r\n", -EBADMSG, "NUL in name"),
		BAD("GET /\0 HTTP/1.1\r\n" H "\r\n", -EBADMSG, "NUL in target"),
		BAD("G\0T / HTTP/1.1\r\n" H "\r\n", -EBADMSG, "NUL in method"),
		BAD("\0GET / HTTP/1.1\r\n" H "\r\n", -EBADMSG, "leading NUL"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: \x01\r\n\r\n", -EBADMSG, "CTL in value"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: \x7f\r\n\r\n", -EBADMSG, "DEL in value"),
		BAD("GET / HTTP/1.1\r\n" H "X-A: \x1b[0m\r\n\r\n", -EBADMSG, "ESC in value"),
		BAD("GET / HTTP/1.1\r\n" H "X(A): b\r\n\r\n", -EBADMSG, "( in name"),
		BAD("GET / HTTP/1.1\r\n" H "X\"A: b\r\n\r\n", -EBADMSG, "quote in name"),
		BAD("GET / HTTP/1.1\r\n" H "X/A: b\r\n\r\n", -EBADMSG, "/ in name"),
		BAD("GET / HTTP/1.1\r\n" H "X@A: b\r\n\r\n", -EBADMSG, "@ in name"),
		BAD("GET / HTTP/1.1\r\n" H "X{A}: b\r\n\r\n", -EBADMSG, "{} in name"),
		BAD("GET / HTTP/1.1\r\n" H "X A: b\r\n\r\n", -EBADMSG, "space in name"),
		BAD("GET / HTTP/1.1\r\n" H "X\xc3\xa9: b\r\n\r\n", -EBADMSG, "utf-8 in name"),
		BAD("GET / HTTP/1.1\r\n" H ": b\r\n\r\n", -EBADMSG, "empty name"),
		BAD("GET / HTTP/1.1\r\n" H "X-A\r\n\r\n", -EBADMSG, "no colon"),
		BAD("GET / HTTP/1.1\r\n" H "X-A b\r\n\r\n", -EBADMSG, "no colon, value"),
		/* Host */
		BAD("GET / HTTP/1.1\r\n\r\n", -EBADMSG, "no Host in 1.1"),
		BAD("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", -EBADMSG, "no Host, X-Host"),
		BAD("GET / HTTP/1.1\r\n" H H "\r\n", -EBADMSG, "two identical Hosts"),
		BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EBADMSG, "two Hosts"),
		BAD("GET / HTTP/1.1\r\nHost:\r\n\r\n", -EBADMSG, "empty Host"),
		BAD("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", -EBADMSG, "Host list"),
		/* request line */
		BAD("GET / HTTP/2.0\r\n" H "\r\n", -EPROTONOSUPPORT, "HTTP/2.0"),
		BAD("GET / HTTP/1.2\r\n" H "\r\n", -EPROTONOSUPPORT, "HTTP/1.2"),
		BAD("GET / HTTP/0.9\r\n" H "\r\n", -EPROTONOSUPPORT, "HTTP/0.9"),
		BAD("GET / HTTP/3.1\r\n" H "\r\n", -EPROTONOSUPPORT, "HTTP/3.1"),
		BAD("GET /\r\n\r\n", -EBADMSG, "HTTP/0.9 request"),
		BAD("GET / \r\n\r\n", -EBADMSG, "empty version"),
		BAD("GET / HTTP/1.1 \r\n" H "\r\n", -EBADMSG, "space after version"),
		BAD("GET / http/1.1\r\n" H "\r\n", -EBADMSG, "lowercase version"),
		BAD("GET / HTTP/1.10\r\n" H "\r\n", -EBADMSG, "HTTP/1.10"),
		BAD("GET / HTTP/11\r\n" H "\r\n", -EBADMSG, "HTTP/11"),
		BAD("GET / HTTP/1\r\n" H "\r\n", -EBADMSG, "HTTP/1"),
		BAD("GET / HTTP/2\r\n" H "\r\n", -EBADMSG, "HTTP/2"),
		BAD("GET / HTTP/1.x\r\n" H "\r\n", -EBADMSG, "HTTP/1.x"),
		BAD("GET / HTTPS/1.1\r\n" H "\r\n", -EBADMSG, "HTTPS/1.1"),
		BAD("GET / HTTP/1.1x\r\n" H "\r\n", -EBADMSG, "HTTP/1.1x"),
		BAD("GET  / HTTP/1.1\r\n" H "\r\n", -EBADMSG, "two spaces after method"),
		BAD("GET /  HTTP/1.1\r\n" H "\r\n", -EBADMSG, "two spaces after target"),
		BAD(" GET / HTTP/1.1\r\n" H "\r\n", -EBADMSG, "leading space"),
		BAD("GET\t/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, "tab separator"),
		BAD("GET /\tHTTP/1.1\r\n" H "\r\n", -EBADMSG, "tab separator 2"),
		BAD("GET / HTTP/1.1\r\n\r\n", -EBADMSG, "no host (line only)"),
		BAD("GET HTTP/1.1\r\n" H "\r\n", -EBADMSG, "no target"),
		BAD("/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, "no method"),
		BAD("G(T / HTTP/1.1\r\n" H "\r\n", -EBADMSG, "bad method char"),
		BAD("GET /a\x01" "b HTTP/1.1\r\n" H "\r\n", -EBADMSG, "CTL in target"),
		BAD("GET /a\x7f HTTP/1.1\r\n" H "\r\n", -EBADMSG, "DEL in target"),
		BAD("GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", -EBADMSG, "utf-8 in target"),
		BAD("GET /a\tb HTTP/1.1\r\n" H "\r\n", -EBADMSG, "tab in target"),
		BAD("GET /aaaaaaaaaaaaaaaaaaaaaaaa\x01 HTTP/1.1\r\n" H "\r\n", -EBADMSG,
		    "CTL in long target"),
		BAD("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x80" "aaaa HTTP/1.1\r\n" H "\r\n",
		    -EBADMSG, "high byte in long target"),
#undef H
#undef BAD
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++)
		expect_req(t[i].s, t[i].n, t[i].err, t[i].why);
}

static int build_fields(char *buf, size_t cap, int nfields)
{
	int n = snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: a\r\n"), i;

	for (i = 1; i < nfields; i++)
		n += snprintf(buf + n, cap - (size_t)n, "X-F%d: %d\r\n", i, i);
	n += snprintf(buf + n, cap - (size_t)n, "\r\n");
	return n;
}

static void test_req_limits(void)
{
	static char buf[70000];
	struct http_limits l = { .max_head = 64, .max_uri = 16 };
	const char *base = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t n, bl = strlen(base);

	/* HTTP_MAX_HEADERS fields pass, one more is 431 */
	n = (size_t)build_fields(buf, sizeof(buf), HTTP_MAX_HEADERS);
	CHECK_INT(preq_n(buf, n), n);
	CHECK_INT(req.nhdrs, HTTP_MAX_HEADERS);
	CHECK_MEM(req.hdrs[99].name, req.hdrs[99].name_len, "X-F99");
	n = (size_t)build_fields(buf, sizeof(buf), HTTP_MAX_HEADERS + 1);
	CHECK_INT(preq_n(buf, n), -EMSGSIZE);

	/* a head of exactly max_head bytes passes, one more byte is 431 */
	memcpy(buf, base, bl);
	memset(buf + bl, 'v', 64 - bl - 4);
	memcpy(buf + 60, "\r\n\r\n", 4);
	CHECK_INT(http_parse_request(own(buf, 64), 64, 0, &l, &req), 64);
	memcpy(buf, base, bl);
	memset(buf + bl, 'v', 65 - bl - 4);
	memcpy(buf + 61, "\r\n\r\n", 4);
	CHECK_INT(http_parse_request(own(buf, 65), 65, 0, &l, &req), -EMSGSIZE);
	/* incomplete: 431 once max_head bytes are buffered, not before */
	CHECK_INT(http_parse_request(own(buf, 63), 63, 0, &l, &req), -EAGAIN);
	CHECK_INT(http_parse_request(own(buf, 64), 64, 0, &l, &req), -EMSGSIZE);
	CHECK_INT(http_parse_request(own(buf, 64), 64, 63, &l, &req), -EMSGSIZE);
	/* leading empty lines count against max_head */
	memset(buf, 0, 80);
	for (n = 0; n < 80; n += 2)
		memcpy(buf + n, "\r\n", 2);
	CHECK_INT(http_parse_request(own(buf, 62), 62, 0, &l, &req), -EAGAIN);
	CHECK_INT(http_parse_request(own(buf, 80), 80, 0, &l, &req), -EMSGSIZE);

	/* target of exactly max_uri passes, one more is 414 */
	CHECK_INT(preq_lim("GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", &l), 42);
	CHECK_INT(preq_lim("GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", &l),
		  -ENAMETOOLONG);
	/* 414 as soon as the request line is complete, before the fields */
	CHECK_INT(preq_lim("GET /2345678901234567 HTTP/1.1\r\nHo", &l), -ENAMETOOLONG);
	/* an endless request line is 414 at the cap, not 431 */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', 100);
	CHECK_INT(http_parse_request(own(buf, 40), 40, 0, &l, &req), -EAGAIN);
	CHECK_INT(http_parse_request(own(buf, 64), 64, 0, &l, &req), -ENAMETOOLONG);
	CHECK_INT(http_parse_request(own(buf, 105), 105, 0, &l, &req), -ENAMETOOLONG);

	/* NULL limits and zero fields mean the defaults: 64 KiB head, 8 KiB URI */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', 8191);
	n = 8196 + (size_t)snprintf(buf + 8196, 64, " HTTP/1.1\r\nHost: a\r\n\r\n");
	CHECK_INT(http_parse_request(own(buf, n), n, 0, NULL, &req), n);
	CHECK_INT(req.target_len, 8192);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', 8192);
	n = 8197 + (size_t)snprintf(buf + 8197, 64, " HTTP/1.1\r\nHost: a\r\n\r\n");
	CHECK_INT(http_parse_request(own(buf, n), n, 0, NULL, &req), -ENAMETOOLONG);
	l.max_head = 0;
	l.max_uri = 0;
	CHECK_INT(http_parse_request(own(buf, n), n, 0, &l, &req), -ENAMETOOLONG);
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(buf + n, 'x', 65536);
	CHECK_INT(http_parse_request(own(buf, 65536), 65536, 0, NULL, &req), -EMSGSIZE);
	CHECK_INT(http_parse_request(own(buf, 65535), 65535, 0, NULL, &req), -EAGAIN);
}

static void test_req_incremental(void)
{
	const char *s = "\r\nPOST /upload?id=7 HTTP/1.1\r\n"
			"Host: files.example\r\n"
			"Content-Length: 4\r\n"
			"X-Long: 0123456789012345678901234567890123456789\r\n"
			"Connection: keep-alive\r\n"
			"\r\nbody";
	size_t n = strlen(s), head = n - 4, i, last;
	int r, bad = 0;

	/* one byte at a time: every strict prefix is -EAGAIN */
	for (i = 1, last = 0; i < head; last = i++) {
		r = http_parse_request(own(s, i), i, last, &lim, &req);
		if (r != -EAGAIN && !bad++)
			fprintf(stderr, "  prefix %zu: %d\n", i, r);
	}
	CHECK_INT(bad, 0);
	/* the call after the last -EAGAIN, with or without body bytes */
	for (i = head; i <= n; i++) {
		CHECK_INT(http_parse_request(own(s, i), i, head - 1, &lim, &req), head);
		CHECK_INT(req.content_length, 4);
		CHECK_INT(req.flags, HTTP_FL_CONN_KEEP);
		CHECK_MEM(req.host, req.host_len, "files.example");
	}

	/* random splits, resuming with last_len */
	for (bad = 0, i = 0; i < 200; i++) {
		size_t at = 0;

		last = 0;
		for (;;) {
			at += 1 + rnd() % 20;
			if (at > n)
				at = n;
			r = http_parse_request(own(s, at), at, last, &lim, &req);
			if (at < head ? r != -EAGAIN : r != (int)head)
				bad++;
			if (r >= 0 || at == n)
				break;
			last = at;
		}
	}
	CHECK_INT(bad, 0);

	/* errors already visible in a partial head are reported at once */
	CHECK_INT(preq("GET / HTTP/1.1\nHo"), -EBADMSG);
	CHECK_INT(preq("GET / HTTP/1.1\r\nHost: a\nX"), -EBADMSG);
	CHECK_INT(preq("GET /\r\n"), -EBADMSG);
	CHECK_INT(preq("GET / HTTP/2.0\r\nHost"), -EPROTONOSUPPORT);
	CHECK_INT(preq("GET  / HTTP/1.1\r\n"), -EBADMSG);
	CHECK_INT(preq("GET * HTTP/1.1\r\n"), -EBADMSG);
	CHECK_INT(preq("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), -EBADMSG);
	CHECK_INT(preq("PRI * HTTP/2.0\r\n"), -EPROTONOSUPPORT);
	CHECK_INT(preq("G"), -EAGAIN);
	CHECK_INT(preq("GET"), -EAGAIN);
	CHECK_INT(preq("GET /"), -EAGAIN);
	CHECK_INT(preq("GET / HTTP/1.1\r"), -EAGAIN);
	CHECK_INT(preq("GET / HTTP/1.1\r\n"), -EAGAIN);
	CHECK_INT(preq("GET / HTTP/1.1\r\nHost: a\r\n\r"), -EAGAIN);
	CHECK_INT(preq_n("", 0), -EAGAIN);
	/* a request line already judged is not judged again */
	s = "GET / HTTP/1.1\r\nHost: a\r\n";
	CHECK_INT(http_parse_request(own(s, 16), 16, 0, &lim, &req), -EAGAIN);
	CHECK_INT(http_parse_request(own(s, 25), 25, 16, &lim, &req), -EAGAIN);
}

/* Place <s, n> so that its last byte is the last readable one before a
 * PROT_NONE page: any read past buf + len faults. */
static char *guard_mem;
static long guard_pg;

static char *guard_place(const char *s, size_t n)
{
	char *dst = guard_mem + guard_pg - n;

	memcpy(dst, s, n);
	return dst;
}

static void test_guard_page(void)
{
	static const char *const reqs[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\n\r\nGET http://a.example HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
		("POST /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: [::1]:80\r\n"
		 "Transfer-Encoding: chunked\r\nConnection: close, upgrade\r\n\r\n"),
		"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET /aaaaaaaaaaaaaaaaaaaaaaaa",
		"GET / HTTP/1.",
		"CONNECT a:1 HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00",
		"\r",
		"GET",
	};
	static const char *const resps[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 200 a long reason phrase with words\r\nX: y\r\n\r\n",
		"HTTP/1.1 2",
		"HTTP/1.1 200\r\n\r",
		"HTTP/",
		"HTT",
	};
	static const char *const chunks[] = {
		"5\r\nhello\r\n0\r\n\r\n",
		"5;a=\"b\\\"c\";d\r\nhello\r\n0\r\nX: y\r\n\r\n",
		"ffff",
		"5\r\nhel",
		"0\r\nX: y\r",
	};
	struct http_limits l = { .max_head = 8192, .max_uri = 8192 };
	struct http_chunked ck;
	struct http_span sp[4];
	unsigned ns;
	size_t i, k, n;
	char *b;

	guard_pg = sysconf(_SC_PAGESIZE);
	guard_mem = mmap(NULL, (size_t)guard_pg * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(guard_mem != MAP_FAILED);
	if (guard_mem == MAP_FAILED)
		return;
	CHECK_INT(mprotect(guard_mem + guard_pg, (size_t)guard_pg, PROT_NONE), 0);

	/* every prefix of every input ends right at the guard page */
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		n = strlen(reqs[i]);
		for (k = 0; k <= n; k++) {
			b = guard_place(reqs[i], k);
			(void)http_parse_request(b, k, 0, &l, &req);
			(void)http_parse_request(b, k, k ? k - 1 : 0, &l, &req);
		}
	}
	n = strlen(reqs[0]);
	CHECK_INT(http_parse_request(guard_place(reqs[0], n), n, 0, &l, &req), n);
	for (i = 0; i < ARRAY_SIZE(resps); i++) {
		n = strlen(resps[i]);
		for (k = 0; k <= n; k++)
			(void)http_parse_response(guard_place(resps[i], k), k, 0, &l, &resp);
	}
	n = strlen(resps[0]);
	CHECK_INT(http_parse_response(guard_place(resps[0], n), n, 0, &l, &resp), n);
	for (i = 0; i < ARRAY_SIZE(chunks); i++) {
		n = strlen(chunks[i]);
		for (k = 0; k <= n; k++) {
			http_chunked_init(&ck);
			(void)http_chunked_feed(&ck, guard_place(chunks[i], k), k,
						sp, 4, &ns);
		}
	}
	/* a whole page of garbage, and of field bytes with no end */
	b = guard_mem + guard_pg - 4096;
	for (k = 0; k < 4096; k++)
		b[k] = (char)(rnd() & 0xff);
	(void)http_parse_request(b, 4096, 0, &l, &req);
	(void)http_parse_response(b, 4096, 0, &l, &resp);
	memcpy(b, "GET / HTTP/1.1\r\nX: ", 19);
	memset(b + 19, 'x', 4096 - 19);
	CHECK_INT(http_parse_request(b, 4096, 0, &l, &req), -EAGAIN);
	memcpy(b, "HTTP/1.1 200 ", 13);
	memset(b + 13, 'r', 4096 - 13);
	CHECK_INT(http_parse_response(b, 4096, 0, &l, &resp), -EAGAIN);
	memcpy(b + 4096 - 2, "\r\n", 2);
	CHECK_INT(http_parse_response(b, 4096, 0, &l, &resp), -EAGAIN);
	memcpy(b + 4096 - 4, "\r\n\r\n", 4);
	CHECK_INT(http_parse_response(b, 4096, 0, &l, &resp), 4096);
	CHECK_INT(resp.reason_len, 4096 - 13 - 4);
	munmap(guard_mem, (size_t)guard_pg * 2);
}

/* An accepted head has CRLF line ends only and no CTL but HTAB. */
static int head_clean(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = (uint8_t)p[i];

		if (c == '\r' ? i + 1 == n || p[i + 1] != '\n' :
		    c == '\n' ? i == 0 || p[i - 1] != '\r' :
		    (c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Mutate valid heads at random; any result must be a known error or a
 * head whose views all lie inside the buffer, and resuming with last_len
 * must agree with a parse from scratch. */
static void test_fuzz(void)
{
	static const char *const seeds[] = {
		("GET /a?b HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, Upgrade\r\n"
		 "Upgrade: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"),
		"POST http://h:1/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
		"PUT / HTTP/1.0\r\nContent-Length: 10, 10\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: [::1]\r\n\r\n",
	};
	static const char alpha[] = "\r\n\r\n :\t,;/*?@[]\"\\\0\x7f\x80\xffHTTP/1.0GET chunked";
	char buf[512];
	int bad = 0, iter, r, r2;
	size_t n, k, j;

	for (iter = 0; iter < 30000; iter++) {
		const char *seed = seeds[rnd() % ARRAY_SIZE(seeds)];
		const char *b, *e;

		n = strlen(seed);
		memcpy(buf, seed, n);
		for (j = 1 + rnd() % 3; j; j--) {
			k = rnd() % n;
			switch (rnd() % 3) {
			case 0:		/* replace a byte */
				buf[k] = alpha[rnd() % (sizeof(alpha) - 1)];
				break;
			case 1:		/* delete a byte */
				memmove(buf + k, buf + k + 1, n - k - 1);
				n--;
				break;
			default:	/* insert a byte */
				if (n + 1 >= sizeof(buf))
					break;
				memmove(buf + k + 1, buf + k, n - k);
				buf[k] = alpha[rnd() % (sizeof(alpha) - 1)];
				n++;
			}
		}
		r = http_parse_request(own(buf, n), n, 0, &lim, &req);
		b = keep;
		e = keep + n;
		if (r > 0) {
			uint32_t i;

			/* target may be a static "/" or "*" for absolute-form */
			if ((size_t)r > n || req.nhdrs > HTTP_MAX_HEADERS ||
			    req.method < b || req.method + req.method_len > e ||
			    (req.host && (req.host < b || req.host + req.host_len > e)) ||
			    ((req.target < b || req.target + req.target_len > e) &&
			     req.target_len != 1))
				bad++;
			for (i = 0; i < req.nhdrs; i++)
				if (req.hdrs[i].name < b || req.hdrs[i].value + req.hdrs[i].value_len > b + r)
					bad++;
			if (!head_clean(b, (size_t)r) ||
			    ((req.flags & HTTP_FL_CHUNKED) && req.content_length >= 0))
				bad++;
		} else if (r != -EAGAIN && r != -EBADMSG && r != -EMSGSIZE &&
			   r != -ENAMETOOLONG && r != -EPROTONOSUPPORT && r != -ENOSYS) {
			bad++;
		}
		/* the same bytes parsed after an -EAGAIN prefix give the same answer */
		k = rnd() % (n + 1);
		r2 = http_parse_request(keep, k, 0, &lim, &req);
		if (r2 == -EAGAIN) {
			r2 = http_parse_request(keep, n, k, &lim, &req);
			if (r2 != r && !bad++)
				fprintf(stderr, "  resume at %zu: %d vs %d: %.*s\n",
					k, r2, r, (int)n, keep);
		}
		r = http_parse_response(keep, n, 0, &lim, &resp);
		if (r > 0 && ((size_t)r > n || resp.reason + resp.reason_len > e))
			bad++;
	}
	CHECK_INT(bad, 0);
}

/* --------------------------------------------------------------- responses */

static void test_resp_valid(void)
{
	const char *s;

	s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
	CHECK_INT(presp(s), strlen(s) - 5);
	CHECK_INT(resp.status, 200);
	CHECK_INT(resp.minor, 1);
	CHECK_MEM(resp.reason, resp.reason_len, "OK");
	CHECK_INT(resp.content_length, 5);
	CHECK_INT(resp.flags, 0);
	CHECK_INT(resp.nhdrs, 2);
	CHECK_INT(resp.hdrs[1].field, HTTP_F_CONTENT_LENGTH);
	CHECK_INT(resp.head_len, strlen(s) - 5);

	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_CHUNKED);
	CHECK_INT(resp.content_length, -1);

	s = "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.status, 204);
	CHECK_MEM(resp.reason, resp.reason_len, "No Content");

	s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.status, 304);
	CHECK_INT(resp.content_length, 100);

	s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
	CHECK_INT(presp(s), 25);
	CHECK_INT(resp.status, 100);
	CHECK_INT(resp.nhdrs, 0);

	s = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_CONN_UPGRADE);

	s = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.minor, 0);
	CHECK_INT(resp.flags, HTTP_FL_CONN_KEEP);

	s = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.status, 503);
	CHECK_INT(resp.flags, HTTP_FL_CONN_CLOSE);

	/* reason phrase: absent, empty, odd bytes */
	s = "HTTP/1.1 200\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.reason_len, 0);
	CHECK_INT(resp.status, 200);
	s = "HTTP/1.1 200 \r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.reason_len, 0);
	s = "HTTP/1.1 404 Nicht  Gef\xc3\xbcnden\t!\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_MEM(resp.reason, resp.reason_len, "Nicht  Gef\xc3\xbcnden\t!");
	s = "HTTP/1.1 599 x\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));

	/* Transfer-Encoding variants */
	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_TE_OTHER);
	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_CHUNKED);
	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_TE_OTHER);
	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_CHUNKED);
	s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.flags, HTTP_FL_TE_OTHER);

	/* identical Content-Lengths collapse; responses do not check Host */
	s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\nHost: a b\r\n\r\n";
	CHECK_INT(presp(s), strlen(s));
	CHECK_INT(resp.content_length, 3);

	/* partial heads */
	CHECK_INT(presp("HTTP/1.1 200 OK\r\n"), -EAGAIN);
	CHECK_INT(presp("HTT"), -EAGAIN);
	CHECK_INT(presp_n("", 0), -EAGAIN);
	CHECK_INT(presp("XTTP"), -EBADMSG);
	CHECK_INT(presp("<html>"), -EBADMSG);
	CHECK_INT(presp("HTTP/1.1 200 OK\nX"), -EBADMSG);
}

static void test_resp_invalid(void)
{
	static const struct {
		const char *s;
		size_t n;
		int err;
		const char *why;
	} t[] = {
#define BAD(lit, err, why) { lit, sizeof(lit) - 1, err, why }
		BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		    -EBADMSG, "TE + CL"),
		BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
		    -EBADMSG, "CL + TE gzip"),
		BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		    -EBADMSG, "differing CL"),
		BAD("HTTP/1.1 200 OK\r\nContent-Length: 5,6\r\n\r\n", -EBADMSG, "CL list"),
		BAD("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", -EBADMSG, "CL -5"),
		BAD("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", -EBADMSG, "empty CL"),
		BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		    -EBADMSG, "chunked twice"),
		BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", -EBADMSG, "empty TE"),
		BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x\r\n\r\n", -EBADMSG, "TE params"),
		BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG, "TE in 1.0"),
		BAD("HTTP/1.1 20 OK\r\n\r\n", -EBADMSG, "2-digit status"),
		BAD("HTTP/1.1 2000 OK\r\n\r\n", -EBADMSG, "4-digit status"),
		BAD("HTTP/1.1 099 X\r\n\r\n", -EBADMSG, "status 099"),
		BAD("HTTP/1.1 600 X\r\n\r\n", -EBADMSG, "status 600"),
		BAD("HTTP/1.1 999 X\r\n\r\n", -EBADMSG, "status 999"),
		BAD("HTTP/1.1 000\r\n\r\n", -EBADMSG, "status 000"),
		BAD("HTTP/1.1  200 OK\r\n\r\n", -EBADMSG, "two spaces"),
		BAD("HTTP/1.1 2a0 OK\r\n\r\n", -EBADMSG, "letter in status"),
		BAD("HTTP/1.1 -20 OK\r\n\r\n", -EBADMSG, "signed status"),
		BAD("HTTP/1.1\t200 OK\r\n\r\n", -EBADMSG, "tab separator"),
		BAD("HTTP/1.1 200\tOK\r\n\r\n", -EBADMSG, "tab before reason"),
		BAD("HTTP/1.1 200OK\r\n\r\n", -EBADMSG, "no space before reason"),
		BAD("HTTP/1.1\r\n\r\n", -EBADMSG, "no status"),
		BAD("HTTP/1.1 \r\n\r\n", -EBADMSG, "empty status"),
		BAD("HTTP/2.0 200 OK\r\n\r\n", -EBADMSG, "HTTP/2.0"),
		BAD("HTTP/1.2 200 OK\r\n\r\n", -EBADMSG, "HTTP/1.2"),
		BAD("HTTP/0.9 200 OK\r\n\r\n", -EBADMSG, "HTTP/0.9"),
		BAD("http/1.1 200 OK\r\n\r\n", -EBADMSG, "lowercase"),
		BAD("ICY 200 OK\r\n\r\n", -EBADMSG, "ICY"),
		BAD("\r\nHTTP/1.1 200 OK\r\n\r\n", -EBADMSG, "leading CRLF"),
		BAD("HTTP/1.1 200 O\x01K\r\n\r\n", -EBADMSG, "CTL in reason"),
		BAD("HTTP/1.1 200 OK\rX\r\n\r\n", -EBADMSG, "bare CR in reason"),
		BAD("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", -EBADMSG, "obs-fold"),
		BAD("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", -EBADMSG, "space before colon"),
		BAD("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n", -EBADMSG, "NUL in value"),
		BAD("HTTP/1.1 200 OK\r\nX: a\r\n\n", -EBADMSG, "bare LF"),
		BAD("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -EBADMSG, "bare CR"),
#undef BAD
	};
	static char buf[20000];
	struct http_limits l = { .max_head = 64, .max_uri = 1 };
	size_t i;
	int n, k;

	for (i = 0; i < ARRAY_SIZE(t); i++)
		expect_resp(t[i].s, t[i].n, t[i].err, t[i].why);

	n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n");
	for (k = 0; k < HTTP_MAX_HEADERS; k++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "X-%d: v\r\n", k);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
	expect_resp(buf, (size_t)n, n, "100 fields");
	n -= 2;
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "X-last: v\r\n\r\n");
	expect_resp(buf, (size_t)n, -EMSGSIZE, "101 fields");

	/* the size cap applies to responses the same way */
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nX: %047d\r\n\r\n", 0);
	CHECK_INT(n, 71);
	CHECK_INT(http_parse_response(own(buf, 71), 71, 0, &l, &resp), -EMSGSIZE);
	CHECK_INT(http_parse_response(own(buf, 63), 63, 0, &l, &resp), -EAGAIN);
	CHECK_INT(http_parse_response(own(buf, 64), 64, 0, &l, &resp), -EMSGSIZE);
	l.max_head = 71;
	CHECK_INT(http_parse_response(own(buf, 71), 71, 0, &l, &resp), 71);
	/* resuming with last_len */
	CHECK_INT(http_parse_response(own(buf, 40), 40, 0, &l, &resp), -EAGAIN);
	CHECK_INT(http_parse_response(own(buf, 70), 70, 40, &l, &resp), -EAGAIN);
	CHECK_INT(http_parse_response(own(buf, 71), 71, 70, &l, &resp), 71);
}

static void test_error_status(void)
{
	CHECK_INT(http_parse_error_status(-EBADMSG), 400);
	CHECK_INT(http_parse_error_status(-EMSGSIZE), 431);
	CHECK_INT(http_parse_error_status(-ENAMETOOLONG), 414);
	CHECK_INT(http_parse_error_status(-EPROTONOSUPPORT), 505);
	CHECK_INT(http_parse_error_status(-ENOSYS), 501);
	CHECK_INT(http_parse_error_status(-EINVAL), 400);
	CHECK_INT(http_parse_error_status(-EAGAIN), 400);
}

/* ----------------------------------------------------------------- chunked */

enum { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

/* Feed <s, n> in pieces (each an exact-size heap copy), collecting data.
 * Returns the bytes consumed up to the end of the message, or the error. */
static long ck_drive(const char *s, size_t n, int split, unsigned max_spans,
		     char *out, size_t *olen, int *done)
{
	struct http_chunked ck;
	struct http_span sp[16];
	size_t pos = 0, piece;
	unsigned ns, i;
	ssize_t r;
	char *b;

	http_chunked_init(&ck);
	*olen = 0;
	while (pos < n && !ck.done) {
		piece = split == SPLIT_WHOLE ? n - pos : split == SPLIT_BYTE ? 1 : 1 + rnd() % 9;
		piece = RF_MIN(piece, n - pos);
		b = malloc(piece);
		memcpy(b, s + pos, piece);
		r = http_chunked_feed(&ck, b, piece, sp, max_spans, &ns);
		if (r < 0) {
			free(b);
			*done = 0;
			return r;
		}
		if ((size_t)r > piece || ns > max_spans)
			test_cur_failed++;
		for (i = 0; i < ns; i++) {
			/* spans are in order, inside what was consumed */
			if (sp[i].len == 0 || sp[i].off + sp[i].len > (size_t)r ||
			    (i && sp[i].off < sp[i - 1].off + sp[i - 1].len))
				test_cur_failed++;
			memcpy(out + *olen, b + sp[i].off, sp[i].len);
			*olen += sp[i].len;
		}
		free(b);
		if (r == 0 && !ck.done && max_spans == 0)
			break;
		pos += (size_t)r;
	}
	*done = ck.done;
	return (long)pos;
}

static void test_chunked_valid(void)
{
	static const struct {
		const char *s;
		const char *data;
		size_t tail;	/* bytes after the message */
		size_t n;	/* 0: strlen(s) */
	} t[] = {
		{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0, 0 },
		{ "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", 16, 0 },
		{ "0\r\n\r\n", "", 0, 0 },
		{ "000\r\n\r\nX", "", 1, 0 },
		{ "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0, 0 },
		{ "0005\r\nhe\r\nl\r\n0\r\n\r\n", "he\r\nl", 0, 0 },
		{ "1\r\n\0\r\n1\r\n\n\r\n0\r\n\r\n", NULL, 0, 17 },
		{ "5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello", 0, 0 },
		{ "5;a;b=c;d=\"q;\\\"x\\\\\"\r\nhello\r\n0\r\n\r\n", "hello", 0, 0 },
		{ "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello", 0, 0 },
		{ "5\t;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello", 0, 0 },
		{ "5;a=\"\xc3\xa9\t\"\r\nhello\r\n0\r\n\r\n", "hello", 0, 0 },
		{ "3\r\nabc\r\n0\r\nX-Sum: 123\r\nY:\r\nZ: a b\t\r\n\r\n", "abc", 0, 0 },
		{ "3\r\nabc\r\n0\r\nX: \xff\r\n\r\n\r\n", "abc", 2, 0 },
	};
	char out[256];
	size_t i, olen, n;
	int done, split;
	long r;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		n = t[i].n ? t[i].n : strlen(t[i].s);
		for (split = SPLIT_WHOLE; split <= SPLIT_RANDOM; split++) {
			r = ck_drive(t[i].s, n, split, 16, out, &olen, &done);
			if (r != (long)(n - t[i].tail) || !done ||
			    (t[i].data && (olen != strlen(t[i].data) ||
					   memcmp(out, t[i].data, olen)))) {
				test_cur_failed++;
				fprintf(stderr, "  case %zu split %d: r=%ld done=%d out=%.*s\n",
					i, split, r, done, (int)olen, out);
			}
			if (!t[i].data)
				CHECK(olen == 2 && out[0] == 0 && out[1] == '\n');
		}
	}
}

static void test_chunked_stream(void)
{
	static char msg[200000], data[100000], out[100000];
	struct http_chunked ck;
	struct http_span sp[4];
	size_t n = 0, dn = 0, olen, k;
	unsigned ns;
	ssize_t r;
	int done, split, i;

	/* many chunks of varied sizes, then trailers */
	for (i = 0; i < 300; i++) {
		size_t len = rnd() % 300 + 1;

		if (i % 7)
			n += (size_t)snprintf(msg + n, 32, "%zx\r\n", len);
		else
			n += (size_t)snprintf(msg + n, 32, "%zX;i=%d\r\n", len, i);
		for (k = 0; k < len; k++)
			data[dn + k] = msg[n + k] = (char)(rnd() & 0xff);
		n += len;
		dn += len;
		memcpy(msg + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)snprintf(msg + n, 32, "0\r\nX-Trailer: yes\r\n\r\n");
	for (split = SPLIT_WHOLE; split <= SPLIT_RANDOM; split++) {
		CHECK_INT(ck_drive(msg, n, split, 16, out, &olen, &done), n);
		CHECK_INT(done, 1);
		CHECK_INT(olen, dn);
		CHECK(memcmp(out, data, dn) == 0);
		/* one span per call: early returns, same data in the end */
		CHECK_INT(ck_drive(msg, n, split, 1, out, &olen, &done), n);
		CHECK_INT(olen, dn);
		CHECK(memcmp(out, data, dn) == 0);
	}

	/* the span array fills: return early, caller resumes with the rest */
	http_chunked_init(&ck);
	r = http_chunked_feed(&ck, S("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"), sp, 2, &ns);
	CHECK_INT(r, 15);
	CHECK_INT(ns, 2);
	CHECK_INT(sp[0].off, 3);
	CHECK_INT(sp[1].off, 9);
	CHECK_INT(ck.done, 0);
	r = http_chunked_feed(&ck, S("c\r\n0\r\n\r\n"), sp, 2, &ns);
	CHECK_INT(r, 8);
	CHECK_INT(ns, 1);
	CHECK_INT(sp[0].off, 0);
	CHECK_INT(sp[0].len, 1);
	CHECK_INT(ck.done, 1);
	/* done: nothing more is consumed */
	r = http_chunked_feed(&ck, S("5\r\n"), sp, 2, &ns);
	CHECK_INT(r, 0);
	CHECK_INT(ns, 0);

	/* no span room at all: framing is consumed up to the data */
	http_chunked_init(&ck);
	r = http_chunked_feed(&ck, S("5\r\nhello\r\n"), sp, 0, &ns);
	CHECK_INT(r, 3);
	CHECK_INT(ns, 0);
	r = http_chunked_feed(&ck, S("hello\r\n0\r\n\r\n"), sp, 4, &ns);
	CHECK_INT(r, 12);
	CHECK_INT(ck.done, 1);

	/* a chunk bigger than the buffer: partial spans, remaining counts down */
	http_chunked_init(&ck);
	r = http_chunked_feed(&ck, S("10\r\n0123456"), sp, 4, &ns);
	CHECK_INT(r, 11);
	CHECK_INT(ns, 1);
	CHECK_INT(sp[0].len, 7);
	CHECK_INT(ck.remaining, 9);
	r = http_chunked_feed(&ck, S("789abcdef\r"), sp, 4, &ns);
	CHECK_INT(r, 10);
	CHECK_INT(sp[0].len, 9);
	r = http_chunked_feed(&ck, S("\n0\r\n\r"), sp, 4, &ns);
	CHECK_INT(r, 5);
	CHECK_INT(ck.done, 0);
	r = http_chunked_feed(&ck, S("\nrest"), sp, 4, &ns);
	CHECK_INT(r, 1);
	CHECK_INT(ck.done, 1);

	/* 16 hex digits and 2^62 are the limits */
	http_chunked_init(&ck);
	r = http_chunked_feed(&ck, S("0000000000000010\r\n"), sp, 4, &ns);
	CHECK_INT(r, 18);
	CHECK_INT(ck.remaining, 16);
	http_chunked_init(&ck);
	r = http_chunked_feed(&ck, S("4000000000000000\r\nab"), sp, 4, &ns);
	CHECK_INT(r, 20);
	CHECK(ck.remaining == ((uint64_t)1 << 62) - 2);
}

static void test_chunked_invalid(void)
{
	static const struct {
		const char *s;
		size_t n;
		const char *why;
	} t[] = {
#define BAD(lit, why) { lit, sizeof(lit) - 1, why }
		BAD("g\r\n", "non-hex size"),
		BAD("\r\n", "empty size"),
		BAD("-5\r\n", "signed size"),
		BAD("+5\r\n", "plus size"),
		BAD("0x5\r\n", "0x prefix"),
		BAD(" 5\r\n", "leading space"),
		BAD("5 \r\n", "trailing space"),
		BAD("5\t\r\n", "trailing tab"),
		BAD("5\nhello\r\n0\r\n\r\n", "bare LF after size"),
		BAD("5\rhello", "bare CR after size"),
		BAD("5\r\nhelloX\r\n", "data overrun"),
		BAD("5\r\nhello\n0\r\n\r\n", "bare LF after data"),
		BAD("5\r\nhello\r0\r\n\r\n", "bare CR after data"),
		BAD("5\r\nhello0\r\n\r\n", "no CRLF after data"),
		BAD("5\r\nhell\r\n0\r\n\r\n", "short data"),
		BAD("00000000000000005\r\n", "17 hex digits"),
		BAD("4000000000000001\r\n", "size > 2^62"),
		BAD("ffffffffffffffff\r\n", "size 2^64-1"),
		BAD("fffffffffffffffff0\r\n", "size overflow"),
		BAD("5;\r\n", "empty extension"),
		BAD("5;=b\r\n", "extension without name"),
		BAD("5;a=\r\n", "empty extension value"),
		BAD("5;a b\r\n", "space inside extension"),
		BAD("5;a=b c\r\n", "space inside value"),
		BAD("5;a \r\n", "trailing space after name"),
		BAD("5;a=b \r\n", "trailing space after value"),
		BAD("5;a=\"b\r\n", "unterminated quote"),
		BAD("5;a=\"b\"c\r\n", "junk after quote"),
		BAD("5;a=\"\x01\"\r\n", "CTL in quote"),
		BAD("5;a=\"\\\x01\"\r\n", "CTL escaped"),
		BAD("5;a=b\nhello", "bare LF after extension"),
		BAD("5;a@b\r\n", "bad extension char"),
		BAD("5;a=b;\r\n", "dangling ;"),
		BAD("5;\0\r\n", "NUL in extension"),
		BAD("0\r\nX\r\n\r\n", "trailer without colon"),
		BAD("0\r\n X: y\r\n\r\n", "trailer obs-fold"),
		BAD("0\r\n: y\r\n\r\n", "trailer empty name"),
		BAD("0\r\nX : y\r\n\r\n", "trailer space before colon"),
		BAD("0\r\nX: y\n\r\n", "trailer bare LF"),
		BAD("0\r\nX: y\r\r\n", "trailer bare CR"),
		BAD("0\r\nX: \0\r\n\r\n", "trailer NUL"),
		BAD("0\r\nX: y\r\n\n", "final bare LF"),
		BAD("0\r\n\rX", "final bare CR"),
		BAD("0\r\n\n", "LF after last chunk"),
#undef BAD
	};
	static char big[40000];
	struct http_chunked ck;
	struct http_span sp[2];
	char out[64];
	size_t i, olen, n;
	unsigned ns;
	int split, done;
	long r;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		for (split = SPLIT_WHOLE; split <= SPLIT_RANDOM; split++) {
			r = ck_drive(t[i].s, t[i].n, split, 2, out, &olen, &done);
			if (r != -EBADMSG) {
				test_cur_failed++;
				fprintf(stderr, "  %s (split %d): got %ld\n", t[i].why, split, r);
			}
		}
	}

	/* once broken, always broken */
	http_chunked_init(&ck);
	CHECK_INT(http_chunked_feed(&ck, S("z"), sp, 2, &ns), -EBADMSG);
	CHECK_INT(http_chunked_feed(&ck, S("0\r\n\r\n"), sp, 2, &ns), -EBADMSG);

	/* size line cap: 4096 bytes with its extensions */
	n = (size_t)snprintf(big, sizeof(big), "1;x=");
	memset(big + n, 'a', 4000);
	n += 4000;
	n += (size_t)snprintf(big + n, 64, "\r\nz\r\n0\r\n\r\n");
	CHECK_INT(ck_drive(big, n, SPLIT_WHOLE, 2, out, &olen, &done), n);
	CHECK_INT(done, 1);
	n = (size_t)snprintf(big, sizeof(big), "1;x=");
	memset(big + n, 'a', 5000);
	n += 5000;
	n += (size_t)snprintf(big + n, 64, "\r\nz\r\n0\r\n\r\n");
	CHECK_INT(ck_drive(big, n, SPLIT_WHOLE, 2, out, &olen, &done), -EBADMSG);
	CHECK_INT(ck_drive(big, n, SPLIT_RANDOM, 2, out, &olen, &done), -EBADMSG);

	/* trailer line cap and trailer section cap */
	n = (size_t)snprintf(big, sizeof(big), "0\r\nX: ");
	memset(big + n, 'b', 5000);
	n += 5000;
	n += (size_t)snprintf(big + n, 64, "\r\n\r\n");
	CHECK_INT(ck_drive(big, n, SPLIT_WHOLE, 2, out, &olen, &done), -EBADMSG);
	n = (size_t)snprintf(big, sizeof(big), "0\r\n");
	for (i = 0; i < 20; i++) {
		n += (size_t)snprintf(big + n, 16, "X-%02zu: ", i);
		memset(big + n, 'c', 1000);
		n += 1000;
		memcpy(big + n, "\r\n", 2);
		n += 2;
	}
	memcpy(big + n, "\r\n", 2);
	n += 2;
	CHECK_INT(ck_drive(big, n, SPLIT_WHOLE, 2, out, &olen, &done), -EBADMSG);
	/* ... while 10 such lines are fine */
	n = 3 + 10 * 1008;
	memcpy(big + n, "\r\n", 2);
	n += 2;
	CHECK_INT(ck_drive(big, n, SPLIT_WHOLE, 2, out, &olen, &done), n);
	CHECK_INT(done, 1);
}

/* Mutated chunked bodies: fed whole, byte by byte or in random pieces,
 * the tracker must reach the same verdict and the same data. */
static void test_chunked_fuzz(void)
{
	static const char *const seeds[] = {
		"5\r\nhello\r\n6;a=b\r\n world\r\n0\r\nX: y\r\n\r\nNEXT",
		"1a;q=\"x\\\"y\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
		"3 ; e\r\nabc\r\n0\r\n\r\n",
	};
	static const char alpha[] = "\r\n;= \t\"\\0aF:xZ\0\x80";
	char buf[256], o1[256], o2[256];
	size_t n, k, j, l1, l2;
	int iter, d1, d2, split, bad = 0;
	long r1, r2;

	for (iter = 0; iter < 20000; iter++) {
		const char *seed = seeds[rnd() % ARRAY_SIZE(seeds)];

		n = strlen(seed);
		memcpy(buf, seed, n);
		for (j = 1 + rnd() % 2; j; j--) {
			k = rnd() % n;
			if (rnd() % 2) {
				buf[k] = alpha[rnd() % (sizeof(alpha) - 1)];
			} else {
				memmove(buf + k, buf + k + 1, n - k - 1);
				n--;
			}
		}
		r1 = ck_drive(buf, n, SPLIT_WHOLE, 16, o1, &l1, &d1);
		for (split = SPLIT_BYTE; split <= SPLIT_RANDOM; split++) {
			r2 = ck_drive(buf, n, split, 1, o2, &l2, &d2);
			if (r1 != r2 || (r1 >= 0 && (d1 != d2 || l1 != l2 ||
						     memcmp(o1, o2, l1)))) {
				if (!bad++)
					fprintf(stderr, "  split %d: %ld vs %ld: %.*s\n",
						split, r1, r2, (int)n, buf);
			}
		}
	}
	CHECK_INT(bad, 0);
}

/* ------------------------------------------------------------------- lists */

struct toks {
	char buf[128];
	size_t n;
	int calls;
	int stop_at;
};

static int collect(const char *tok, size_t len, void *arg)
{
	struct toks *t = arg;

	memcpy(t->buf + t->n, tok, len);
	t->n += len;
	t->buf[t->n++] = '|';
	t->buf[t->n] = 0;
	return ++t->calls == t->stop_at ? 42 : 0;
}

static void test_lists(void)
{
	struct toks t;

	memset(&t, 0, sizeof(t));
	CHECK_INT(http_list_each(S(" a , ,b,\tc d\t,, "), collect, &t), 0);
	CHECK_STR(t.buf, "a|b|c d|");
	CHECK_INT(t.calls, 3);

	memset(&t, 0, sizeof(t));
	t.stop_at = 2;
	CHECK_INT(http_list_each(S("x,y,z"), collect, &t), 42);
	CHECK_STR(t.buf, "x|y|");

	memset(&t, 0, sizeof(t));
	CHECK_INT(http_list_each(S(""), collect, &t), 0);
	CHECK_INT(http_list_each(S(" , ,\t"), collect, &t), 0);
	CHECK_INT(t.calls, 0);

	memset(&t, 0, sizeof(t));
	CHECK_INT(http_list_each(S("single"), collect, &t), 0);
	CHECK_STR(t.buf, "single|");

	CHECK_INT(http_list_has(S("Keep-Alive, Upgrade"), "upgrade"), 1);
	CHECK_INT(http_list_has(S("Keep-Alive, Upgrade"), "keep-alive"), 1);
	CHECK_INT(http_list_has(S("Keep-Alive,Upgrade "), "UPGRADE"), 1);
	CHECK_INT(http_list_has(S("upgrades"), "upgrade"), 0);
	CHECK_INT(http_list_has(S("x-upgrade"), "upgrade"), 0);
	CHECK_INT(http_list_has(S("upgrad"), "upgrade"), 0);
	CHECK_INT(http_list_has(S(""), "upgrade"), 0);
	CHECK_INT(http_list_has(S(",,close,,"), "close"), 1);
	CHECK_INT(http_list_has(S("gzip, chunked"), "chunked"), 1);
	/* only the given length is looked at */
	CHECK_INT(http_list_has("close, keep", 5, "keep"), 0);
}

int main(void)
{
	RUN(test_req_get);
	RUN(test_req_post_cl);
	RUN(test_req_chunked);
	RUN(test_req_http10);
	RUN(test_req_absolute);
	RUN(test_req_special_forms);
	RUN(test_req_pipelined);
	RUN(test_req_leading_crlf);
	RUN(test_req_methods);
	RUN(test_req_field_ids);
	RUN(test_req_values);
	RUN(test_req_flags);
	RUN(test_req_host);
	RUN(test_req_invalid);
	RUN(test_req_limits);
	RUN(test_req_incremental);
	RUN(test_guard_page);
	RUN(test_fuzz);
	RUN(test_resp_valid);
	RUN(test_resp_invalid);
	RUN(test_error_status);
	RUN(test_chunked_valid);
	RUN(test_chunked_stream);
	RUN(test_chunked_invalid);
	RUN(test_chunked_fuzz);
	RUN(test_lists);
	free(keep);
	TEST_REPORT();
}

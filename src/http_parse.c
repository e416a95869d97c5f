/* http_parse.c - strict, zero-copy HTTP/1.x head parser, chunked framing
 * tracker and list-field helpers. Byte classes come from one static table;
 * nothing is allocated and nothing past buf + len is ever read. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common.h"
#include "http_parse.h"

#define DEF_MAX_HEAD	(64u * 1024)
#define DEF_MAX_URI	(8u * 1024)
#define HEAD_CAP	(1u << 30)	/* head_len is returned as an int */
#define CL_MAX		((int64_t)1 << 62)
#define CK_SIZE_MAX	((uint64_t)1 << 62)
#define CK_HEX_MAX	16
#define CK_LINE_MAX	4096
#define CK_TRAILER_MAX	(16u * 1024)
#define METHOD_PEEK	32	/* bytes checked early on a partial request */

/* Byte classes (RFC 9110 5.6.2, 5.5, 5.6.4; RFC 3986 3.2.2). */
enum {
	CT_TOK	= 0x01,	/* tchar */
	CT_VAL	= 0x02,	/* field-value byte: HTAB, SP, VCHAR, obs-text */
	CT_URI	= 0x04,	/* request-target byte: VCHAR (0x21-0x7e) */
	CT_HOST	= 0x08,	/* reg-name byte, minus ',' (a list smuggled into Host) */
	CT_HEX	= 0x10,	/* HEXDIG */
	CT_QD	= 0x20,	/* qdtext: HTAB, SP, VCHAR except '"' and '\', obs-text */
	CT_DIG	= 0x40,	/* DIGIT */
};

/* No class contains CR, so every scan inside a complete head stops at or
 * before its final CRLF: the inner loops need no bounds check. */
static const uint8_t ct[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 00 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 10 */
	0x22, 0x2f, 0x06, 0x27, 0x2f, 0x2f, 0x2f, 0x2f, 0x2e, 0x2e, 0x2f, 0x2f, 0x26, 0x2f, 0x2f, 0x26,	/* 20 */
	0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x26, 0x2e, 0x26, 0x2e, 0x26, 0x26,	/* 30 */
	0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,	/* 40 */
	0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x06, 0x26, 0x27, 0x2f,	/* 50 */
	0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,	/* 60 */
	0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x27, 0x26, 0x2f, 0x00,	/* 70 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* 80 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* 90 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* a0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* b0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* c0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* d0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* e0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,	/* f0 */
};

#define CLS(c, m) (ct[(uint8_t)(c)] & (m))

static inline int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Compare a name or list element with a lowercase literal of the same
 * length. OR-ing 0x20 folds ASCII case; the other bytes it could fold onto
 * the literals' letters, digits and '-' are CTLs, never found in a head. */
static inline int tok_ieq(const char *p, const char *lit, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((uint8_t)p[i] | 0x20) != (uint8_t)lit[i])
			return 0;
	return 1;
}

/* Skip field-value bytes; stops at the first other byte (CR at the latest). */
static inline const char *scan_value(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i bias = _mm_set1_epi8((char)0x80);
	const __m128i sp = _mm_set1_epi8((char)(0x20 ^ 0x80));
	const __m128i tab = _mm_set1_epi8('\t');
	const __m128i del = _mm_set1_epi8(0x7f);

	while (e - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* unsigned v < 0x20 via a signed compare of v ^ 0x80 */
		__m128i bad = _mm_cmplt_epi8(_mm_xor_si128(v, bias), sp);
		int m;

		bad = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), bad);
		bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, del));
		m = _mm_movemask_epi8(bad);
		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (CLS(*p, CT_VAL))
		p++;
	return p;
}

/* Skip request-target bytes (0x21-0x7e); stops at SP, CR or a bad byte. */
static inline const char *scan_target(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i lo = _mm_set1_epi8(0x21);
	const __m128i lim = _mm_set1_epi8((char)(0x5e ^ 0x80));
	const __m128i bias = _mm_set1_epi8((char)0x80);

	while (e - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* good when (uint8)(v - 0x21) < 0x5e */
		__m128i x = _mm_xor_si128(_mm_sub_epi8(v, lo), bias);
		int m = ~_mm_movemask_epi8(_mm_cmplt_epi8(x, lim)) & 0xffff;

		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (CLS(*p, CT_URI))
		p++;
	return p;
}

static void get_limits(const struct http_limits *lim, size_t *max_head,
		       size_t *max_uri)
{
	*max_head = lim && lim->max_head ? lim->max_head : DEF_MAX_HEAD;
	*max_uri = lim && lim->max_uri ? lim->max_uri : DEF_MAX_URI;
	if (*max_head > HEAD_CAP)
		*max_head = HEAD_CAP;
}

#ifdef __SSE2__
static inline uint32_t eq16(const char *p, __m128i x)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

	return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x));
}

static inline uint64_t eq64(const char *p, __m128i x)
{
	return eq16(p, x) | (uint64_t)eq16(p + 16, x) << 16 |
	       (uint64_t)eq16(p + 32, x) << 32 | (uint64_t)eq16(p + 48, x) << 48;
}

/* Bit k set when byte k of a block is an LF that either follows no CR
 * (bare) or ends an empty line (CR LF right after an LF). pc and pl carry
 * CR and LF bits of the two bytes before the block (bit 1 = the last). */
#define LF_HITS(c, l, pc, pl) ((l) & (~((c) << 1 | (pc) >> 1) | (l) << 2 | (pl)))
#endif

/* Find the empty line that ends the head in buf[0, len) and set *end past
 * its LF. LFs before <from> were judged by an earlier call; LFs inside the
 * skipped leading CRLFs never start the final empty line. */
static int find_end(const char *buf, size_t len, size_t from, size_t skip,
		    size_t *end)
{
	size_t i = from;

#ifdef __SSE2__
	/* branch only on blocks holding a bare LF or the end of the head */
	const __m128i vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n');
	uint64_t c, l, hit = 0, pc = 0, pl = 0;

	if (i >= 1) {
		pc = (uint64_t)(buf[i - 1] == '\r') << 1;
		pl = (uint64_t)(buf[i - 1] == '\n' && i - 1 >= skip) << 1;
	}
	if (i >= 2) {
		pc |= buf[i - 2] == '\r';
		pl |= buf[i - 2] == '\n' && i - 2 >= skip;
	}
	for (; i + 64 <= len; i += 64, pc = c >> 62, pl = l >> 62) {
		c = eq64(buf + i, vcr);
		l = eq64(buf + i, vlf);
		if ((hit = LF_HITS(c, l, pc, pl)) != 0)
			goto found;
	}
	for (; i + 16 <= len; i += 16, pc = c >> 14, pl = l >> 14) {
		c = eq16(buf + i, vcr);
		l = eq16(buf + i, vlf);
		if ((hit = LF_HITS(c, l, pc, pl) & 0xffff) != 0)
			goto found;
	}
found:
	if (hit) {
		i += (size_t)__builtin_ctzll(hit);
		*end = i + 1;
		return i && buf[i - 1] == '\r' ? 0 : -EBADMSG;
	}
#endif
	for (; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (unlikely(i == 0 || buf[i - 1] != '\r'))
			return -EBADMSG;
		if (i >= skip + 2 && buf[i - 2] == '\n') {
			*end = i + 1;
			return 0;
		}
	}
	return -EAGAIN;
}

/* "HTTP/" DIGIT "." DIGIT at p (8 bytes present): the minor version, or
 * -EPROTONOSUPPORT for a well-formed other version, -EBADMSG otherwise. */
static int parse_version(const char *p)
{
	if (memcmp(p, "HTTP/", 5) || !CLS(p[5], CT_DIG) || p[6] != '.' ||
	    !CLS(p[7], CT_DIG))
		return -EBADMSG;
	if (p[5] != '1' || p[7] > '1')
		return -EPROTONOSUPPORT;
	return p[7] - '0';
}

/* Exact, case-sensitive method names (RFC 9110 9.1), by length. */
static uint8_t method_id(const char *m, size_t n)
{
	static const char names[][8] = {
		[HTTP_M_GET] = "GET", [HTTP_M_HEAD] = "HEAD",
		[HTTP_M_POST] = "POST", [HTTP_M_PUT] = "PUT",
		[HTTP_M_DELETE] = "DELETE", [HTTP_M_PATCH] = "PATCH",
		[HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_CONNECT] = "CONNECT",
		[HTTP_M_TRACE] = "TRACE",
	};
	unsigned i;

	if (n < 3 || n > 7)
		return HTTP_M_OTHER;
	/* names[i][n] == 0 and a NUL-free token: equal lengths when equal */
	for (i = HTTP_M_GET; i < ARRAY_SIZE(names); i++)
		if (!names[i][n] && !memcmp(m, names[i], n))
			return (uint8_t)i;
	return HTTP_M_OTHER;
}

/* One candidate per name length (the first letter splits the two that
 * share one), then a single case-folding compare. */
static uint16_t field_id(const char *n, size_t len)
{
	int t = n[0] | 0x20;
	const char *lit;
	uint16_t id;

	switch (len) {
	case 2: lit = "te"; id = HTTP_F_TE; break;
	case 3: lit = "via"; id = HTTP_F_VIA; break;
	case 4: lit = "host"; id = HTTP_F_HOST; break;
	case 6: lit = "expect"; id = HTTP_F_EXPECT; break;
	case 7:
		lit = t == 't' ? "trailer" : "upgrade";
		id = t == 't' ? HTTP_F_TRAILER : HTTP_F_UPGRADE;
		break;
	case 10:
		lit = t == 'c' ? "connection" : "keep-alive";
		id = t == 'c' ? HTTP_F_CONNECTION : HTTP_F_KEEP_ALIVE;
		break;
	case 12: lit = "x-request-id"; id = HTTP_F_X_REQUEST_ID; break;
	case 14: lit = "content-length"; id = HTTP_F_CONTENT_LENGTH; break;
	case 15: lit = "x-forwarded-for"; id = HTTP_F_X_FORWARDED_FOR; break;
	case 16: lit = "proxy-connection"; id = HTTP_F_PROXY_CONNECTION; break;
	case 17:
		lit = t == 't' ? "transfer-encoding" : "x-forwarded-proto";
		id = t == 't' ? HTTP_F_TRANSFER_ENCODING : HTTP_F_X_FORWARDED_PROTO;
		break;
	default:
		return HTTP_F_OTHER;
	}
	return tok_ieq(n, lit, len) ? id : HTTP_F_OTHER;
}

/* uri-host [ ":" port ]: reg-name or IPv6 literal, port of up to 5 digits
 * (required for CONNECT's authority-form). Userinfo, paths, spaces and
 * commas are refused: they are how two parsers come to disagree on a host. */
static int check_authority(const char *p, size_t n, int need_port)
{
	const char *e = p + n, *q = p;

	if (!n || n > UINT16_MAX)
		return -EBADMSG;
	if (*q == '[') {
		for (q++; q < e && (CLS(*q, CT_HEX) || *q == ':' || *q == '.'); q++)
			;
		if (q == p + 1 || q == e || *q != ']')
			return -EBADMSG;
		q++;
	} else {
		while (q < e && CLS(*q, CT_HOST))
			q++;
		if (q == p)
			return -EBADMSG;
	}
	if (q == e)
		return need_port ? -EBADMSG : 0;
	if (*q++ != ':' || e - q > 5 || (need_port && q == e))
		return -EBADMSG;
	for (; q < e; q++)
		if (!CLS(*q, CT_DIG))
			return -EBADMSG;
	return 0;
}

/* Next non-empty element of a comma list in [*pp, e), OWS trimmed. */
static int list_next(const char **pp, const char *e, const char **tok,
		     size_t *n)
{
	const char *p = *pp, *s, *t;

	while (p < e && (is_ows(*p) || *p == ','))
		p++;
	if (p == e) {
		*pp = p;
		return 0;
	}
	s = p;
	while (p < e && *p != ',')
		p++;
	for (t = p; is_ows(t[-1]); t--)
		;
	*tok = s;
	*n = (size_t)(t - s);
	*pp = p;
	return 1;
}

/* What the framing and connection fields said, gathered over the head. */
struct fstate {
	int64_t cl;		/* -1 until a Content-Length is seen */
	const char *host;
	size_t host_len;
	unsigned nhost;
	unsigned te_chunked;	/* times "chunked" was listed */
	uint16_t flags;
	uint8_t te_seen;
	uint8_t te_last;	/* the last coding listed is chunked */
	uint8_t te_other;	/* some coding other than chunked */
	uint8_t te_identity;
	uint8_t upgrade;	/* an Upgrade field is present */
	uint8_t conn_upgrade;	/* Connection lists "upgrade" */
};

/* One element of a framing list: a non-empty run of <cls> bytes, then
 * OWS and either the end or "," OWS and a further element. Anything odd,
 * empty elements included, is refused rather than skipped: a parser
 * downstream might read it differently. Returns the element length. */
static int strict_elem(const char **pp, const char *e, unsigned cls)
{
	const char *p = *pp, *s = p;
	int n;

	while (p < e && CLS(*p, cls))
		p++;
	n = (int)(p - s);
	while (p < e && is_ows(*p))
		p++;
	if (p < e) {
		if (*p++ != ',')
			return -EBADMSG;
		while (p < e && is_ows(*p))
			p++;
		if (p == e)
			return -EBADMSG;
	}
	*pp = p;
	return n ? n : -EBADMSG;
}

/* Content-Length = 1*DIGIT, or a list of identical values (RFC 9110 8.6). */
static int parse_cl(const char *p, const char *e, int64_t *cl)
{
	const char *s;
	int64_t v;
	int n;

	do {
		s = p;
		if ((n = strict_elem(&p, e, CT_DIG)) < 0)
			return n;
		for (v = 0; n--; s++) {
			if (v > (CL_MAX - (*s - '0')) / 10)
				return -EBADMSG;
			v = v * 10 + (*s - '0');
		}
		if (*cl >= 0 && *cl != v)
			return -EBADMSG;
		*cl = v;
	} while (p < e);
	return 0;
}

/* Add one Transfer-Encoding field to the combined list of codings. */
static int parse_te(struct fstate *st, const char *p, const char *e)
{
	const char *s;
	int n;

	st->te_seen = 1;
	do {
		s = p;
		if ((n = strict_elem(&p, e, CT_TOK)) < 0)
			return n;
		st->te_last = n == 7 && tok_ieq(s, "chunked", 7);
		st->te_chunked += st->te_last;
		st->te_other |= !st->te_last;
		st->te_identity |= n == 8 && tok_ieq(s, "identity", 8);
	} while (p < e);
	return 0;
}

static int field_sem(struct fstate *st, const struct http_hdr *h, int is_req)
{
	const char *v = h->value, *e = v + h->value_len, *s;
	size_t n;

	switch (h->field) {
	case HTTP_F_HOST:
		if (!is_req)
			return 0;
		if (st->nhost++ || check_authority(v, h->value_len, 0))
			return -EBADMSG;
		st->host = v;
		st->host_len = h->value_len;
		return 0;
	case HTTP_F_CONTENT_LENGTH:
		return parse_cl(v, e, &st->cl);
	case HTTP_F_TRANSFER_ENCODING:
		return parse_te(st, v, e);
	case HTTP_F_CONNECTION:
		while (list_next(&v, e, &s, &n)) {
			if (n == 5 && tok_ieq(s, "close", 5))
				st->flags |= HTTP_FL_CONN_CLOSE;
			else if (n == 10 && tok_ieq(s, "keep-alive", 10))
				st->flags |= HTTP_FL_CONN_KEEP;
			else if (n == 7 && tok_ieq(s, "upgrade", 7))
				st->conn_upgrade = 1;
		}
		return 0;
	case HTTP_F_UPGRADE:
		st->upgrade = 1;
		return 0;
	case HTTP_F_EXPECT:
		while (list_next(&v, e, &s, &n))
			if (n == 12 && tok_ieq(s, "100-continue", 12))
				st->flags |= HTTP_FL_EXPECT_100;
		return 0;
	}
	return 0;
}

/* Field lines from p up to the final CRLF at e - 2. A line that does not
 * start with a token followed directly by ':' is refused, which covers
 * obs-fold, whitespace before the colon and stray CR. */
static int parse_fields(const char *p, const char *e, struct http_hdr *hdrs,
			uint32_t *nhdrs, struct fstate *st, int is_req)
{
	const char *fend = e - 2, *name, *v, *ve;
	struct http_hdr *h;
	uint32_t nh = 0;
	size_t nlen;
	int r;

	memset(st, 0, sizeof(*st));
	st->cl = -1;
	while (p < fend) {
		if (unlikely(nh == HTTP_MAX_HEADERS))
			return -EMSGSIZE;
		name = p;
		while (CLS(*p, CT_TOK))
			p++;
		nlen = (size_t)(p - name);
		if (unlikely(!nlen || *p != ':' || nlen > UINT16_MAX))
			return -EBADMSG;
		p++;
		while (is_ows(*p))
			p++;
		v = p;
		p = scan_value(p, e);
		if (unlikely(p[0] != '\r' || p[1] != '\n'))
			return -EBADMSG;
		for (ve = p; ve > v && is_ows(ve[-1]); ve--)
			;
		p += 2;
		h = &hdrs[nh++];
		h->name = name;
		h->name_len = (uint16_t)nlen;
		h->value = v;
		h->value_len = (uint32_t)(ve - v);
		h->field = field_id(name, nlen);
		if (h->field && (r = field_sem(st, h, is_req)) != 0)
			return r;
	}
	*nhdrs = nh;
	if (st->conn_upgrade && st->upgrade)
		st->flags |= HTTP_FL_CONN_UPGRADE;
	return 0;
}

/* absolute-form: the authority becomes the host and the path, which stays
 * a view into the buffer, the target. A query right after the authority
 * would need "/" spliced in front of it, so it is refused instead. */
static int parse_absolute(struct http_req *req, const char *s, size_t n)
{
	const char *e = s + n, *a, *p;

	if (n >= 7 && rf_ieq(s, 7, "http://"))
		a = s + 7;
	else if (n >= 8 && rf_ieq(s, 8, "https://"))
		a = s + 8;
	else
		return -EBADMSG;
	for (p = a; p < e && *p != '/' && *p != '?' && *p != '#'; p++)
		;
	if (check_authority(a, (size_t)(p - a), 0) || (p < e && *p != '/'))
		return -EBADMSG;
	req->host = a;
	req->host_len = (uint16_t)(p - a);
	req->flags |= HTTP_FL_ABSOLUTE;
	if (p < e) {
		req->target = p;
		req->target_len = (uint32_t)(e - p);
	} else {
		/* RFC 9112 3.2.4: an empty path is "*" for OPTIONS */
		req->target = req->meth == HTTP_M_OPTIONS ? "*" : "/";
		req->target_len = 1;
	}
	return 0;
}

static int parse_target(struct http_req *req, const char *s, size_t n)
{
	req->target = s;
	req->target_len = (uint32_t)n;
	if (*s == '/')
		return req->meth == HTTP_M_CONNECT ? -EBADMSG : 0;
	if (req->meth == HTTP_M_CONNECT) {
		if (check_authority(s, n, 1))
			return -EBADMSG;
		req->host = s;
		req->host_len = (uint16_t)n;
		return 0;
	}
	if (*s == '*')
		return n == 1 && req->meth == HTTP_M_OPTIONS ? 0 : -EBADMSG;
	return parse_absolute(req, s, n);
}

/* request-line = method SP request-target SP HTTP-version CRLF, in
 * [p, e) where e is just past the line's LF. Sets *next past the line. */
static int parse_reqline(const char *p, const char *e, size_t max_uri,
			 struct http_req *req, const char **next)
{
	const char *s;
	size_t tlen;
	int r;

	req->host = NULL;
	req->host_len = 0;
	req->flags = 0;
	for (s = p; CLS(*p, CT_TOK); p++)
		;
	if (p == s || *p != ' ' || p - s > UINT16_MAX)
		return -EBADMSG;
	req->method = s;
	req->method_len = (uint16_t)(p - s);
	req->meth = method_id(s, (size_t)(p - s));
	s = ++p;
	p = scan_target(p, e);
	tlen = (size_t)(p - s);
	if (!tlen || *p != ' ')
		return -EBADMSG;
	if (tlen > max_uri)
		return -ENAMETOOLONG;
	p++;
	if (e - p < 10 || p[8] != '\r' || p[9] != '\n')
		return -EBADMSG;
	if ((r = parse_version(p)) < 0)
		return r;
	req->minor = (uint8_t)r;
	*next = p + 10;
	return parse_target(req, s, tlen);
}

/* The head is not complete yet. Refuse what is already certain to be
 * wrong (a TLS hello, an HTTP/0.9 line, a bad version) without waiting,
 * and at the size cap tell an endless request-line (414) from 431. */
static int req_partial(const char *buf, size_t len, size_t last_len,
		       size_t skip, size_t max_head, size_t max_uri,
		       struct http_req *req)
{
	size_t slen = RF_MIN(len, max_head);
	const char *p = buf + skip, *e = buf + slen, *lf, *s;
	int r;

	if (skip >= slen)
		return len >= max_head ? -EMSGSIZE : -EAGAIN;
	lf = memchr(p, '\n', (size_t)(e - p));
	if (lf) {
		/* judged once, on the call that brought its LF */
		if ((size_t)(lf - buf) >= last_len || len >= max_head) {
			r = parse_reqline(p, lf + 1, max_uri, req, &s);
			if (r)
				return r;
		}
		return len >= max_head ? -EMSGSIZE : -EAGAIN;
	}
	if (len >= max_head) {
		while (p < e && CLS(*p, CT_TOK))
			p++;
		if (p < e && *p == ' ') {
			for (s = ++p; p < e && CLS(*p, CT_URI); p++)
				;
			if ((size_t)(p - s) > max_uri)
				return -ENAMETOOLONG;
		}
		return -EMSGSIZE;
	}
	if (*p == '\r')
		return p + 1 == e ? -EAGAIN : -EBADMSG;
	if (e - p > METHOD_PEEK)
		e = p + METHOD_PEEK;
	while (p < e && CLS(*p, CT_TOK))
		p++;
	return p < e && *p != ' ' ? -EBADMSG : -EAGAIN;
}

int http_parse_request(const char *buf, size_t len, size_t last_len,
		       const struct http_limits *lim, struct http_req *req)
{
	size_t max_head, max_uri, skip = 0, end = 0;
	const char *p;
	struct fstate st;
	int r;

	if (!len)
		return -EAGAIN;
	get_limits(lim, &max_head, &max_uri);
	/* RFC 9112 2.2: ignore empty lines before the request-line */
	while (len - skip >= 2 && skip < max_head && buf[skip] == '\r' &&
	       buf[skip + 1] == '\n')
		skip += 2;
	r = find_end(buf, RF_MIN(len, max_head), RF_MAX(skip, last_len), skip,
		     &end);
	if (r == -EAGAIN)
		return req_partial(buf, len, last_len, skip, max_head, max_uri,
				   req);
	if (r)
		return r;

	req->nhdrs = 0;
	req->content_length = -1;
	if ((r = parse_reqline(buf + skip, buf + end, max_uri, req, &p)) != 0)
		return r;
	if ((r = parse_fields(p, buf + end, req->hdrs, &req->nhdrs, &st, 1)))
		return r;

	/* RFC 9112 3.2: a 1.1 request must name its host; the target's
	 * authority, when present, wins over the Host field. */
	if (!req->host) {
		if (!st.nhost && req->minor == 1)
			return -EBADMSG;
		req->host = st.host;
		req->host_len = (uint16_t)st.host_len;
	}
	/* RFC 9112 6.1-6.3: refuse every framing two parsers could read in
	 * two ways; chunked alone is the only coding we forward. */
	if (st.te_seen) {
		if (req->minor == 0 || st.cl >= 0 || st.te_chunked != 1 ||
		    !st.te_last || st.te_identity)
			return -EBADMSG;
		if (st.te_other)
			return -ENOSYS;
		st.flags |= HTTP_FL_CHUNKED;
	}
	req->flags |= st.flags;
	req->content_length = st.cl;
	req->head_len = (uint32_t)end;
	return (int)end;
}

int http_parse_response(const char *buf, size_t len, size_t last_len,
			const struct http_limits *lim, struct http_resp *resp)
{
	size_t max_head, max_uri, end = 0;
	const char *p, *e, *s;
	struct fstate st;
	int r;

	if (!len)
		return -EAGAIN;
	get_limits(lim, &max_head, &max_uri);
	r = find_end(buf, RF_MIN(len, max_head), last_len, 0, &end);
	if (r == -EAGAIN) {
		if (len >= max_head)
			return -EMSGSIZE;
		/* not HTTP at all: no need to wait for more */
		return memcmp(buf, "HTTP/", RF_MIN(len, 5)) ? -EBADMSG : r;
	}
	if (r)
		return r;

	p = buf;
	e = buf + end;
	/* status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ] CRLF */
	if (e - p < 14 || p[8] != ' ' || !CLS(p[9], CT_DIG) ||
	    !CLS(p[10], CT_DIG) || !CLS(p[11], CT_DIG) || parse_version(p) < 0)
		return -EBADMSG;
	resp->minor = (uint8_t)(p[7] - '0');
	resp->status = (uint16_t)((p[9] - '0') * 100 + (p[10] - '0') * 10 +
				  (p[11] - '0'));
	if (resp->status < 100 || resp->status > 599)
		return -EBADMSG;
	p += 12;
	s = p;
	if (*p == ' ')
		p = scan_value(++s, e);
	if (p[0] != '\r' || p[1] != '\n' || p - s > UINT16_MAX)
		return -EBADMSG;
	resp->reason = s;
	resp->reason_len = (uint16_t)(p - s);
	p += 2;
	resp->flags = 0;
	resp->nhdrs = 0;
	resp->content_length = -1;

	if ((r = parse_fields(p, e, resp->hdrs, &resp->nhdrs, &st, 0)) != 0)
		return r;
	/* A coding list that is not chunked-last means read-until-close
	 * (RFC 9112 6.3); TE with Content-Length, or in 1.0, is a broken
	 * backend whose connection cannot be trusted for reuse. */
	if (st.te_seen) {
		if (resp->minor == 0 || st.cl >= 0 || st.te_chunked > 1)
			return -EBADMSG;
		st.flags |= st.te_last ? HTTP_FL_CHUNKED : HTTP_FL_TE_OTHER;
	}
	resp->flags = st.flags;
	resp->content_length = st.cl;
	resp->head_len = (uint32_t)end;
	return (int)end;
}

int http_parse_error_status(int err)
{
	switch (err) {
	case -EMSGSIZE: return 431;
	case -ENAMETOOLONG: return 414;
	case -EPROTONOSUPPORT: return 505;
	case -ENOSYS: return 501;
	default: return 400;
	}
}

/* Chunked decoder states. The size line's states come first and the
 * trailer's last, so that the line and section caps are range checks. */
enum {
	CK_SIZE0 = 0,	/* first HEXDIG of chunk-size */
	CK_SIZE,	/* further HEXDIGs */
	CK_EXT_WS,	/* BWS, then ';' must follow */
	CK_EXT_NAME0,	/* BWS, then an extension name */
	CK_EXT_NAME,
	CK_EXT_NAME_WS,	/* BWS after a name: '=' or ';' must follow */
	CK_EXT_VAL0,	/* BWS, then a token or a quoted-string */
	CK_EXT_VAL,
	CK_EXT_VAL_END,	/* after a closing quote */
	CK_EXT_QS,
	CK_EXT_QS_ESC,
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TR_LINE0,	/* a trailer field line, or the final CRLF */
	CK_TR_NAME,
	CK_TR_VAL,
	CK_TR_LF,
	CK_END_LF,
	CK_DONE,
	CK_ERROR,
};

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 * (RFC 9112 7.1.1) as a transition table on byte classes; X_QD is qdtext
 * that is none of the other classes. Row CK_SIZE is the byte after the
 * digits. A missing entry is 0, CK_SIZE0, never a legal move: an error. */
enum { X_TOK, X_OWS, X_SEMI, X_EQ, X_DQ, X_BS, X_CR, X_QD, X_BAD, X_N };

static const uint8_t ext_next[CK_SIZE_LF][X_N] = {
	[CK_SIZE] = { [X_OWS] = CK_EXT_WS, [X_SEMI] = CK_EXT_NAME0,
		      [X_CR] = CK_SIZE_LF },
	[CK_EXT_WS] = { [X_OWS] = CK_EXT_WS, [X_SEMI] = CK_EXT_NAME0 },
	[CK_EXT_NAME0] = { [X_TOK] = CK_EXT_NAME, [X_OWS] = CK_EXT_NAME0 },
	[CK_EXT_NAME] = { [X_TOK] = CK_EXT_NAME, [X_OWS] = CK_EXT_NAME_WS,
			  [X_SEMI] = CK_EXT_NAME0, [X_EQ] = CK_EXT_VAL0,
			  [X_CR] = CK_SIZE_LF },
	[CK_EXT_NAME_WS] = { [X_OWS] = CK_EXT_NAME_WS, [X_SEMI] = CK_EXT_NAME0,
			     [X_EQ] = CK_EXT_VAL0 },
	[CK_EXT_VAL0] = { [X_TOK] = CK_EXT_VAL, [X_OWS] = CK_EXT_VAL0,
			  [X_DQ] = CK_EXT_QS },
	[CK_EXT_VAL] = { [X_TOK] = CK_EXT_VAL, [X_OWS] = CK_EXT_WS,
			 [X_SEMI] = CK_EXT_NAME0, [X_CR] = CK_SIZE_LF },
	[CK_EXT_VAL_END] = { [X_OWS] = CK_EXT_WS, [X_SEMI] = CK_EXT_NAME0,
			     [X_CR] = CK_SIZE_LF },
	[CK_EXT_QS] = { CK_EXT_QS, CK_EXT_QS, CK_EXT_QS, CK_EXT_QS,
			CK_EXT_VAL_END, CK_EXT_QS_ESC, 0, CK_EXT_QS },
	[CK_EXT_QS_ESC] = { CK_EXT_QS, CK_EXT_QS, CK_EXT_QS, CK_EXT_QS,
			    CK_EXT_QS, CK_EXT_QS, 0, CK_EXT_QS },
};

static inline unsigned ext_class(uint8_t c)
{
	static const char sym[] = " \t;=\"\\\r";
	static const uint8_t cls[] = { X_OWS, X_OWS, X_SEMI, X_EQ, X_DQ, X_BS, X_CR };
	const char *q;

	if (ct[c] & CT_TOK)
		return X_TOK;
	if (c && (q = strchr(sym, c)) != NULL)
		return cls[q - sym];
	return ct[c] & CT_QD ? X_QD : X_BAD;
}

void http_chunked_init(struct http_chunked *ck)
{
	memset(ck, 0, sizeof(*ck));
	ck->state = CK_SIZE0;
}

static inline unsigned hex_val(uint8_t c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

ssize_t http_chunked_feed(struct http_chunked *ck, const char *buf, size_t len,
			  struct http_span *spans, unsigned max_spans,
			  unsigned *nspans)
{
	unsigned st = ck->state, ns = 0;
	size_t i = 0, n;
	uint8_t c;

	*nspans = 0;
	if (st == CK_DONE)
		return 0;
	if (st == CK_ERROR)
		return -EBADMSG;
	if (len > UINT32_MAX)	/* span offsets are 32-bit */
		len = UINT32_MAX;

	while (i < len) {
		if (st == CK_DATA) {
			if (ns == max_spans)
				break;
			n = RF_MIN(len - i, ck->remaining);
			spans[ns].off = (uint32_t)i;
			spans[ns].len = (uint32_t)n;
			ns++;
			i += n;
			ck->remaining -= n;
			if (!ck->remaining)
				st = CK_DATA_CR;
			continue;
		}
		c = (uint8_t)buf[i++];
		if (st < CK_SIZE_LF) {
			if (++ck->line_len > CK_LINE_MAX)
				goto bad;
			if (st <= CK_SIZE && (ct[c] & CT_HEX)) {
				/* line_len counts the digits so far */
				if (ck->line_len > CK_HEX_MAX)
					goto bad;
				ck->remaining = ck->remaining << 4 | hex_val(c);
				if (ck->remaining > CK_SIZE_MAX)
					goto bad;
				st = CK_SIZE;
			} else if ((st = ext_next[st][ext_class(c)]) == 0) {
				goto bad;
			}
			continue;
		}
		/* remaining is free during trailers: the section size */
		if (st >= CK_TR_LINE0 && ++ck->remaining > CK_TRAILER_MAX)
			goto bad;

		switch (st) {
		case CK_SIZE_LF:
			if (c != '\n')
				goto bad;
			ck->line_len = 0;
			/* last-chunk: remaining is already 0 for the trailer count */
			st = ck->remaining ? CK_DATA : CK_TR_LINE0;
			break;
		case CK_DATA_CR:
			if (c != '\r')
				goto bad;
			st = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (c != '\n')
				goto bad;
			ck->line_len = 0;
			st = CK_SIZE0;
			break;
		case CK_TR_LINE0:
			if (c == '\r') {
				st = CK_END_LF;
			} else if (ct[c] & CT_TOK) {
				ck->line_len = 1;
				st = CK_TR_NAME;
			} else {
				goto bad;
			}
			break;
		case CK_TR_NAME:
		case CK_TR_VAL:
			if (++ck->line_len > CK_LINE_MAX)
				goto bad;
			if (st == CK_TR_NAME) {
				if (c == ':')
					st = CK_TR_VAL;
				else if (!(ct[c] & CT_TOK))
					goto bad;
			} else if (c == '\r') {
				st = CK_TR_LF;
			} else if (!(ct[c] & CT_VAL)) {
				goto bad;
			}
			break;
		case CK_TR_LF:
			if (c != '\n')
				goto bad;
			st = CK_TR_LINE0;
			break;
		case CK_END_LF:
			if (c != '\n')
				goto bad;
			st = CK_DONE;
			ck->done = 1;
			goto out;
		default:
			goto bad;
		}
	}
out:
	ck->state = (uint8_t)st;
	*nspans = ns;
	return (ssize_t)i;
bad:
	ck->state = CK_ERROR;
	*nspans = ns;
	return -EBADMSG;
}

int http_list_each(const char *value, size_t len,
		   int (*fn)(const char *tok, size_t tok_len, void *arg),
		   void *arg)
{
	const char *p = value, *e = value + len, *s;
	size_t n;
	int r;

	while (list_next(&p, e, &s, &n))
		if ((r = fn(s, n, arg)) != 0)
			return r;
	return 0;
}

int http_list_has(const char *value, size_t len, const char *token)
{
	const char *p = value, *e = value + len, *s;
	size_t n;

	while (list_next(&p, e, &s, &n))
		if (rf_ieq(s, n, token))
			return 1;
	return 0;
}

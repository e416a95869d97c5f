/* json.c - the bounded JSON parser of json.h: an explicit state machine
 * with a fixed stack of open containers, so hostile input can cost at most
 * one pass and JSON_MAX_DEPTH levels, never a deep C call stack. */
#include <errno.h>
#include <math.h>           /* isfinite: a macro, no libm */
#include <stdlib.h>
#include "common.h"
#include "json.h"

enum pstate {
	ST_VALUE,               /* a value must come */
	ST_FIRST_ELEM,          /* after '[': a value or ']' */
	ST_FIRST_KEY,           /* after '{': a key or '}' */
	ST_KEY,                 /* after ',' in an object: a key */
	ST_COLON,               /* after a key */
	ST_AFTER,               /* after a value: ',' or a closer, or the end */
};

struct parser {
	struct json_doc *d;
	const unsigned char *s;
	size_t len;
	size_t pos;
};

static int fail(struct parser *p, size_t off, int rc, const char *msg)
{
	p->d->err_off = off;
	p->d->err = msg;
	return rc;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Four hex digits at s[i..i+3] (bounds checked by the caller). */
static int hex4(const unsigned char *s, size_t i)
{
	int v = 0, k, h;

	for (k = 0; k < 4; k++) {
		h = hexval(s[i + k]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

size_t json_utf8_len(const unsigned char *s, size_t i, size_t end)
{
	unsigned char c = s[i], lo = 0x80, hi = 0xbf;
	size_t n, k;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (end - i < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;              /* overlong */
	else if (c == 0xed)
		hi = 0x9f;              /* UTF-16 surrogates */
	else if (c == 0xf0)
		lo = 0x90;              /* overlong */
	else if (c == 0xf4)
		hi = 0x8f;              /* above U+10FFFF */
	if (s[i + 1] < lo || s[i + 1] > hi)
		return 0;
	for (k = 2; k < n; k++)
		if (s[i + k] < 0x80 || s[i + k] > 0xbf)
			return 0;
	return n;
}

/* A string whose opening quote is at p->pos. On success p->pos is past the
 * closing quote and *start, *len give the raw content. */
static int scan_string(struct parser *p, uint32_t *start, uint32_t *len)
{
	const unsigned char *s = p->s;
	size_t i = p->pos + 1, end = p->len, n;
	int u, lo;

	*start = (uint32_t)i;
	while (i < end) {
		unsigned char c = s[i];

		if (c == '"') {
			*len = (uint32_t)(i - *start);
			p->pos = i + 1;
			return 0;
		}
		if (c < 0x20)
			return fail(p, i, -EINVAL, "control character in string");
		if (c >= 0x80) {
			n = json_utf8_len(s, i, end);
			if (!n)
				return fail(p, i, -EINVAL, "invalid UTF-8 in string");
			i += n;
			continue;
		}
		if (c != '\\') {
			i++;
			continue;
		}
		if (i + 1 >= end)
			break;
		switch (s[i + 1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			i += 2;
			continue;
		case 'u':
			break;
		default:
			return fail(p, i, -EINVAL, "invalid escape in string");
		}
		if (end - i < 6)
			break;
		u = hex4(s, i + 2);
		if (u < 0)
			return fail(p, i, -EINVAL, "invalid \\u escape");
		if (u >= 0xdc00 && u <= 0xdfff)
			return fail(p, i, -EINVAL, "unpaired low surrogate");
		if (u >= 0xd800 && u <= 0xdbff) {
			/* a high surrogate: "\uDC00".."\uDFFF" must follow */
			if ((end - i > 6 && s[i + 6] != '\\') ||
			    (end - i > 7 && s[i + 7] != 'u'))
				return fail(p, i, -EINVAL, "unpaired high surrogate");
			if (end - i < 12)
				break;
			lo = hex4(s, i + 8);
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail(p, i, -EINVAL, "unpaired high surrogate");
			i += 12;
			continue;
		}
		i += 6;
	}
	return fail(p, end, -EINVAL, "unexpected end of input in string");
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p->pos. */
static int scan_number(struct parser *p)
{
	const unsigned char *s = p->s;
	size_t i = p->pos, end = p->len;

	if (i < end && s[i] == '-')
		i++;
	if (i >= end || !is_digit(s[i]))
		return fail(p, i, -EINVAL, "expected a digit");
	if (s[i] == '0')
		i++;
	else
		while (i < end && is_digit(s[i]))
			i++;
	if (i < end && s[i] == '.') {
		i++;
		if (i >= end || !is_digit(s[i]))
			return fail(p, i, -EINVAL, "expected a digit after the decimal point");
		while (i < end && is_digit(s[i]))
			i++;
	}
	if (i < end && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < end && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= end || !is_digit(s[i]))
			return fail(p, i, -EINVAL, "expected a digit in the exponent");
		while (i < end && is_digit(s[i]))
			i++;
	}
	p->pos = i;
	return 0;
}

static int scan_literal(struct parser *p, const char *lit)
{
	size_t n = strlen(lit), k;

	for (k = 0; k < n; k++) {
		if (p->pos + k >= p->len)
			return fail(p, p->len, -EINVAL, "unexpected end of input");
		if (p->s[p->pos + k] != (unsigned char)lit[k])
			return fail(p, p->pos + k, -EINVAL, "invalid literal");
	}
	p->pos += n;
	return 0;
}

static int new_tok(struct parser *p, uint8_t type, size_t start)
{
	struct json_doc *d = p->d;
	struct json_tok *t;

	if (d->ntoks >= d->max)
		return fail(p, start, -E2BIG, "too many values");
	t = &d->toks[d->ntoks];
	t->type = type;
	t->start = (uint32_t)start;
	t->len = 0;
	t->size = 0;
	t->next = d->ntoks + 1;
	return (int)d->ntoks++;
}

/* A scalar or an opening bracket at p->pos. Returns the token index. */
static int parse_value(struct parser *p, int *opened)
{
	unsigned char c = p->s[p->pos];
	size_t at = p->pos;
	uint32_t start, len;
	int t, rc;

	*opened = 0;
	switch (c) {
	case '{':
	case '[':
		t = new_tok(p, c == '{' ? JSON_OBJECT : JSON_ARRAY, at);
		if (t < 0)
			return t;
		p->pos++;
		*opened = 1;
		return t;
	case '"':
		rc = scan_string(p, &start, &len);
		if (rc < 0)
			return rc;
		t = new_tok(p, JSON_STRING, start);
		if (t >= 0)
			p->d->toks[t].len = len;
		return t;
	case 't':
		rc = scan_literal(p, "true");
		t = JSON_TRUE;
		break;
	case 'f':
		rc = scan_literal(p, "false");
		t = JSON_FALSE;
		break;
	case 'n':
		rc = scan_literal(p, "null");
		t = JSON_NULL;
		break;
	default:
		if (c != '-' && !is_digit(c))
			return fail(p, at, -EINVAL, "expected a value");
		rc = scan_number(p);
		t = JSON_NUMBER;
		break;
	}
	if (rc < 0)
		return rc;
	rc = new_tok(p, (uint8_t)t, at);
	if (rc >= 0)
		p->d->toks[rc].len = (uint32_t)(p->pos - at);
	return rc;
}

int json_parse(struct json_doc *d, const char *text, size_t len,
	       struct json_tok *toks, uint32_t max)
{
	struct parser p = { d, (const unsigned char *)text, len, 0 };
	uint32_t stack[JSON_MAX_DEPTH];
	enum pstate st = ST_VALUE;
	int depth = 0, t, opened;
	struct json_tok *top;
	unsigned char c;

	memset(d, 0, sizeof(*d));
	d->text = text;
	d->len = len;
	d->toks = toks;
	d->max = max;
	if (len >= UINT32_MAX)
		return fail(&p, 0, -E2BIG, "document too large");
	for (;;) {
		while (p.pos < len && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' ||
				       p.s[p.pos] == '\n' || p.s[p.pos] == '\r'))
			p.pos++;
		if (p.pos >= len) {
			if (st == ST_AFTER && depth == 0)
				return 0;
			return fail(&p, len, -EINVAL, "unexpected end of input");
		}
		c = p.s[p.pos];
		top = depth ? &d->toks[stack[depth - 1]] : NULL;
		switch (st) {
		case ST_FIRST_ELEM:
		case ST_FIRST_KEY:
			if (c == (st == ST_FIRST_ELEM ? ']' : '}'))
				goto close;
			if (st == ST_FIRST_KEY)
				goto key;
			/* fall through */
		case ST_VALUE:
			if (depth == JSON_MAX_DEPTH && (c == '[' || c == '{'))
				return fail(&p, p.pos, -ELOOP, "nested too deep");
			t = parse_value(&p, &opened);
			if (t < 0)
				return t;
			if (top && top->type == JSON_ARRAY)
				top->size++;
			if (opened) {
				stack[depth++] = (uint32_t)t;
				st = c == '{' ? ST_FIRST_KEY : ST_FIRST_ELEM;
			} else {
				st = ST_AFTER;
			}
			break;
		case ST_KEY:
key:
			if (c != '"')
				return fail(&p, p.pos, -EINVAL, "expected a string key");
			t = parse_value(&p, &opened);
			if (t < 0)
				return t;
			top->size++;
			st = ST_COLON;
			break;
		case ST_COLON:
			if (c != ':')
				return fail(&p, p.pos, -EINVAL, "expected ':'");
			p.pos++;
			st = ST_VALUE;
			break;
		case ST_AFTER:
			if (!top)
				return fail(&p, p.pos, -EINVAL, "unexpected data after the value");
			if (c == ',') {
				p.pos++;
				st = top->type == JSON_OBJECT ? ST_KEY : ST_VALUE;
				break;
			}
			if (c == (top->type == JSON_OBJECT ? '}' : ']'))
				goto close;
			return fail(&p, p.pos, -EINVAL, top->type == JSON_OBJECT ?
				    "expected ',' or '}'" : "expected ',' or ']'");
		}
		continue;
close:
		p.pos++;
		top->len = (uint32_t)(p.pos - top->start);
		top->next = d->ntoks;
		depth--;
		st = ST_AFTER;
	}
}

/* ---- helpers ---- */

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode a validated string's raw bytes into <out> (room for <cap>, no
 * NUL added). Returns the decoded length; stops counting output past cap
 * but keeps the length right. Sets *nul when U+0000 appears. */
static size_t decode(const unsigned char *s, size_t n, char *out, size_t cap, int *nul)
{
	size_t i = 0, o = 0, k;
	uint32_t cp;
	char tmp[4];

	*nul = 0;
	while (i < n) {
		if (s[i] != '\\') {
			if (o < cap)
				out[o] = (char)s[i];
			o++, i++;
			continue;
		}
		switch (s[i + 1]) {
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			cp = (uint32_t)hex4(s, i + 2);
			if (cp >= 0xd800 && cp <= 0xdbff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     ((uint32_t)hex4(s, i + 8) - 0xdc00);
				i += 6;
			}
			i += 4;
			break;
		default: cp = s[i + 1]; break;
		}
		i += 2;
		if (!cp)
			*nul = 1;
		k = put_utf8(tmp, cp);
		if (o + k <= cap)
			memcpy(out + o, tmp, k);
		o += k;
	}
	return o;
}

int json_str(const struct json_doc *d, int tok, char *buf, size_t cap)
{
	const struct json_tok *t;
	size_t n;
	int nul;

	if (json_type(d, tok) != JSON_STRING || !cap)
		return -EINVAL;
	t = &d->toks[tok];
	n = decode((const unsigned char *)d->text + t->start, t->len, buf, cap - 1, &nul);
	if (nul)
		return -EINVAL;
	if (n >= cap)
		return -ENOSPC;
	buf[n] = 0;
	return (int)n;
}

int json_str_eq(const struct json_doc *d, int tok, const char *s)
{
	const struct json_tok *t;
	size_t want = strlen(s), n;
	char buf[256];
	int nul;

	if (json_type(d, tok) != JSON_STRING)
		return 0;
	t = &d->toks[tok];
	/* fast path: no escape, compare the raw bytes */
	if (t->len == want && !memchr(d->text + t->start, '\\', t->len))
		return memcmp(d->text + t->start, s, want) == 0;
	if (want >= sizeof(buf))
		return 0;
	n = decode((const unsigned char *)d->text + t->start, t->len, buf, sizeof(buf), &nul);
	return n == want && memcmp(buf, s, n) == 0;
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
	uint32_t m;
	int k;

	if (json_type(d, obj) != JSON_OBJECT)
		return -EINVAL;
	k = json_child(obj);
	for (m = 0; m < d->toks[obj].size; m++) {
		if (json_str_eq(d, k, key))
			return k + 1;
		k = json_next(d, k + 1);
	}
	return -ENOENT;
}

int json_double(const struct json_doc *d, int tok, double *out)
{
	const struct json_tok *t;
	char buf[400];
	double v;

	if (json_type(d, tok) != JSON_NUMBER)
		return -EINVAL;
	t = &d->toks[tok];
	if (t->len >= sizeof(buf))
		return -ERANGE;
	memcpy(buf, d->text + t->start, t->len);
	buf[t->len] = 0;
	v = strtod(buf, NULL);
	if (!isfinite(v))
		return -ERANGE;
	*out = v;
	return 0;
}

int json_u64(const struct json_doc *d, int tok, uint64_t max, uint64_t *out)
{
	const struct json_tok *t;
	const char *s;
	uint64_t v = 0;
	uint32_t i;
	double f;
	int rc;

	if (json_type(d, tok) != JSON_NUMBER)
		return -EINVAL;
	t = &d->toks[tok];
	s = d->text + t->start;
	if (s[0] == '-')
		return -EINVAL;
	for (i = 0; i < t->len && is_digit((unsigned char)s[i]); i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i < t->len) {
		/* 1.0, 1e3: accepted when the value is a whole number */
		rc = json_double(d, tok, &f);
		if (rc < 0)
			return rc;
		if (f >= 9007199254740992.0)
			return -ERANGE;
		v = (uint64_t)f;
		if ((double)v != f)
			return -EINVAL;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int json_bool(const struct json_doc *d, int tok, int *out)
{
	switch (json_type(d, tok)) {
	case JSON_TRUE:
		*out = 1;
		return 0;
	case JSON_FALSE:
		*out = 0;
		return 0;
	default:
		return -EINVAL;
	}
}

const char *json_type_name(int type)
{
	static const char *const names[] = { "nothing", "object", "array", "string",
		"number", "boolean", "boolean", "null" };

	return type >= 0 && (size_t)type < ARRAY_SIZE(names) ? names[type] : "nothing";
}

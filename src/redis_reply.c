/* redis_reply.c - RESP2 replies into a flat value list, commands into
 * bytes (the client side; resp.c is the server side). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "redis_reply.h"

#define DEF_MAX_VALS    (4u << 20)
#define DEF_MAX_BULK    (512ull << 20)
#define MAX_LINE        64      /* a header line: type byte, a number, CRLF */

static int add_val(struct rr_reply *r, uint8_t type, int64_t n, const char *p)
{
	uint32_t max = r->max_vals ? r->max_vals : DEF_MAX_VALS, ncap;
	struct rr_val *nv;

	if (r->n >= max)
		return -E2BIG;
	if (r->n == r->cap) {
		ncap = r->cap ? r->cap * 2 : 16;
		nv = realloc(r->v, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = ncap;
	}
	r->v[r->n].type = type;
	r->v[r->n].n = n;
	r->v[r->n].p = p;
	r->v[r->n].end = r->n + 1;
	r->n++;
	return 0;
}

/* A signed decimal of at most 19 digits, the whole of [p, e). */
static int parse_i64(const char *p, const char *e, int64_t *out)
{
	int neg = 0, digits = 0;
	uint64_t v = 0;

	if (p < e && *p == '-') {
		neg = 1;
		p++;
	}
	for (; p < e; p++, digits++) {
		if (*p < '0' || *p > '9' || digits >= 19)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (!digits)
		return -EBADMSG;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int rr_parse(struct rr_reply *r, const char *buf, size_t len)
{
	uint64_t max_bulk = r->max_bulk ? r->max_bulk : DEF_MAX_BULK;
	struct { uint32_t idx; int64_t left; } stack[RR_MAX_DEPTH];
	const char *p = buf, *e = buf + len, *nl;
	int depth = 0, rc;
	int64_t n;
	size_t room;
	char t;

	r->n = 0;
	for (;;) {
		if (p >= e)
			return -EAGAIN;
		room = (size_t)(e - p);
		nl = memchr(p, '\n', RF_MIN(room, (size_t)MAX_LINE));
		if (!nl) {
			if (room >= MAX_LINE && *p != '+' && *p != '-')
				return -EBADMSG;
			/* status and error lines may be long: look further */
			nl = memchr(p, '\n', room);
			if (!nl)
				return -EAGAIN;
		}
		if (nl == p || nl[-1] != '\r')
			return -EBADMSG;
		t = *p;
		if (t == '+' || t == '-') {
			rc = add_val(r, t == '+' ? RR_STATUS : RR_ERROR, nl - 1 - (p + 1), p + 1);
			p = nl + 1;
		} else if (t == ':' || t == '$' || t == '*') {
			if (parse_i64(p + 1, nl - 1, &n) < 0)
				return -EBADMSG;
			p = nl + 1;
			if (t == ':') {
				rc = add_val(r, RR_INT, n, NULL);
			} else if (n < 0) {
				if (n != -1)
					return -EBADMSG;
				rc = add_val(r, RR_NIL, 0, NULL);
			} else if (t == '$') {
				if ((uint64_t)n > max_bulk)
					return -E2BIG;
				if ((uint64_t)(e - p) < (uint64_t)n + 2)
					return -EAGAIN;
				if (p[n] != '\r' || p[n + 1] != '\n')
					return -EBADMSG;
				rc = add_val(r, RR_BULK, n, p);
				p += n + 2;
			} else {
				rc = add_val(r, RR_ARRAY, n, NULL);
				if (!rc && n > 0) {
					if (depth == RR_MAX_DEPTH)
						return -E2BIG;
					stack[depth].idx = r->n - 1;
					stack[depth].left = n;
					depth++;
					continue;       /* its first element comes next */
				}
			}
		} else {
			return -EBADMSG;
		}
		if (rc < 0)
			return rc;
		/* a value is complete: close the arrays it completes */
		while (depth > 0 && --stack[depth - 1].left == 0) {
			depth--;
			r->v[stack[depth].idx].end = r->n;
		}
		if (!depth)
			return (int)RF_MIN((size_t)(p - buf), (size_t)INT32_MAX);
	}
}

void rr_reply_free(struct rr_reply *r)
{
	rf_free(&r->v);
	r->n = r->cap = 0;
}

int rr_elem(const struct rr_reply *r, uint32_t i, uint32_t k)
{
	uint32_t j;

	if (i >= r->n || r->v[i].type != RR_ARRAY || (uint64_t)k >= (uint64_t)r->v[i].n)
		return -1;
	for (j = i + 1; k > 0; k--)
		j = r->v[j].end;
	return (int)j;
}

int rr_is(const struct rr_reply *r, int i, const char *s)
{
	const struct rr_val *v;
	size_t n = strlen(s);

	if (i < 0 || (uint32_t)i >= r->n)
		return 0;
	v = &r->v[i];
	if (v->type != RR_STATUS && v->type != RR_ERROR && v->type != RR_BULK)
		return 0;
	return (size_t)v->n == n && rf_ieq(v->p, n, s);
}

/* ---- commands ---- */

void rr_buf_free(struct rr_buf *b)
{
	rf_free(&b->p);
	b->len = b->cap = 0;
}

int rr_buf_reserve(struct rr_buf *b, size_t more)
{
	size_t ncap;
	char *np;

	if (b->len + more <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int rr_buf_put(struct rr_buf *b, const void *p, size_t n)
{
	if (rr_buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int rr_cmd(struct rr_buf *b, int argc, const char *const *argv, const size_t *lens)
{
	size_t start = b->len, n;
	char hdr[32];
	int i, h;

	h = snprintf(hdr, sizeof(hdr), "*%d\r\n", argc);
	if (rr_buf_put(b, hdr, (size_t)h) < 0)
		goto out_fail;
	for (i = 0; i < argc; i++) {
		n = lens ? lens[i] : strlen(argv[i]);
		h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
		if (rr_buf_put(b, hdr, (size_t)h) < 0 || rr_buf_put(b, argv[i], n) < 0 ||
		    rr_buf_put(b, "\r\n", 2) < 0)
			goto out_fail;
	}
	return 0;
out_fail:
	b->len = start;
	return -ENOMEM;
}

int rr_cmdv(struct rr_buf *b, ...)
{
	const char *argv[16];
	va_list ap;
	int argc = 0;
	const char *s;

	va_start(ap, b);
	while ((s = va_arg(ap, const char *)) != NULL && argc < (int)ARRAY_SIZE(argv))
		argv[argc++] = s;
	va_end(ap);
	return rr_cmd(b, argc, argv, NULL);
}

/* cache_http.c - stored HTTP responses (see cache_http.h): the bytes kept
 * for a response, Vary markers and variants, 304 refreshes, hit iovecs. */
#include <errno.h>
#include <stdio.h>

#include "cache_http.h"
#include "common.h"

#define MAX_TAGS 256

/* ---- which fields a stored head keeps ---- */

struct view {
	const char *p;
	size_t n;
};

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static int tok_matches(const char *tok, size_t n, void *arg)
{
	const struct view *v = arg;
	size_t i;

	if (n != v->n)
		return 0;
	for (i = 0; i < n; i++)
		if (lower(tok[i]) != lower(v->p[i]))
			return 0;
	return 1;
}

/* Named by a Connection field: hop-by-hop for this one message. */
static int conn_named(const struct http_hdr *hdrs, uint32_t n, const struct http_hdr *h)
{
	struct view v = { h->name, h->name_len };
	uint32_t i;

	for (i = 0; i < n; i++)
		if (hdrs[i].field == HTTP_F_CONNECTION &&
		    http_list_each(hdrs[i].value, hdrs[i].value_len, tok_matches, &v))
			return 1;
	return 0;
}

/* Fields never stored: hop-by-hop, those rewritten per hit (Content-Length,
 * Age, X-Cache-Status), and the ones meant for this cache only. */
static int dropped(const struct http_hdr *hdrs, uint32_t n, const struct http_hdr *h)
{
	static const char *const names[] = {
		"age", "set-cookie", "surrogate-key", "cache-tag", "x-cache-status",
		"proxy-authenticate", "proxy-authentication-info",
	};
	size_t i;

	switch (h->field) {
	case HTTP_F_CONNECTION: case HTTP_F_KEEP_ALIVE: case HTTP_F_PROXY_CONNECTION:
	case HTTP_F_TE: case HTTP_F_TRAILER: case HTTP_F_TRANSFER_ENCODING:
	case HTTP_F_UPGRADE: case HTTP_F_CONTENT_LENGTH:
		return 1;
	}
	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (rf_ieq(h->name, h->name_len, names[i]))
			return 1;
	return conn_named(hdrs, n, h);
}

/* ---- writing the stored head ---- */

struct wbuf {
	char *p;        /* NULL: only measure */
	size_t len;
};

static void put(struct wbuf *b, const void *s, size_t n)
{
	if (b->p)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void put_u64(struct wbuf *b, uint64_t v)
{
	char tmp[24];
	int i = sizeof tmp;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, tmp + i, sizeof tmp - (size_t)i);
}

/* Status line, kept fields, Content-Length, CRLF. Records validator
 * offsets and the head's end in <m> when writing. */
static void write_head(struct wbuf *b, const struct http_resp *resp, uint64_t body_len,
		       struct cache_http_meta *m)
{
	char st[4] = { (char)('0' + resp->status / 100), (char)('0' + resp->status / 10 % 10),
		       (char)('0' + resp->status % 10), ' ' };
	uint32_t i;

	put(b, "HTTP/1.1 ", 9);
	put(b, st, 4);
	put(b, resp->reason, resp->reason_len);
	put(b, "\r\n", 2);
	for (i = 0; i < resp->nhdrs; i++) {
		const struct http_hdr *h = &resp->hdrs[i];

		if (dropped(resp->hdrs, resp->nhdrs, h))
			continue;
		put(b, h->name, h->name_len);
		put(b, ": ", 2);
		if (m && !m->etag_len && rf_ieq(h->name, h->name_len, "etag")) {
			m->etag_off = (uint32_t)b->len;
			m->etag_len = h->value_len;
		}
		if (m && !m->lm_len && rf_ieq(h->name, h->name_len, "last-modified")) {
			m->lm_off = (uint32_t)b->len;
			m->lm_len = h->value_len;
		}
		put(b, h->value, h->value_len);
		put(b, "\r\n", 2);
	}
	/* 204 and 304 never carry a Content-Length; everything else states it */
	if (resp->status != 204 && resp->status != 304) {
		put(b, "Content-Length: ", 16);
		put_u64(b, body_len);
		put(b, "\r\n", 2);
	}
	if (m)
		m->hdr_end = (uint32_t)b->len;
	put(b, "\r\n", 2);
	if (m)
		m->head_len = (uint32_t)b->len;
}

struct tag_acc {
	struct wbuf *b;
	unsigned n;
};

static void add_tag(struct tag_acc *ta, const char *t, size_t n)
{
	if (!n || ta->n >= MAX_TAGS)
		return;
	put(ta->b, t, n);
	put(ta->b, "", 1);
	ta->n++;
}

static int add_comma_tag(const char *tok, size_t n, void *arg)
{
	add_tag(arg, tok, n);
	return 0;
}

/* Surrogate-Key is space separated, Cache-Tag comma separated: both go to
 * the aux area as NUL-terminated tags. */
static unsigned write_tags(struct wbuf *b, const struct http_resp *resp)
{
	struct tag_acc ta = { b, 0 };
	uint32_t i;

	for (i = 0; i < resp->nhdrs; i++) {
		const struct http_hdr *h = &resp->hdrs[i];
		const char *p = h->value, *e = p + h->value_len, *s;

		if (rf_ieq(h->name, h->name_len, "cache-tag")) {
			http_list_each(h->value, h->value_len, add_comma_tag, &ta);
		} else if (rf_ieq(h->name, h->name_len, "surrogate-key")) {
			while (p < e) {
				while (p < e && (*p == ' ' || *p == '\t'))
					p++;
				for (s = p; p < e && *p != ' ' && *p != '\t'; p++)
					;
				add_tag(&ta, s, (size_t)(p - s));
			}
		}
	}
	return ta.n;
}

int cache_http_build(const struct cache *c, const char *key, size_t klen,
		     const struct http_resp *resp, const struct cache_storeinfo *si,
		     const struct iovec *body, int nbody, struct cache_entry **out)
{
	struct wbuf hb = { NULL, 0 }, tb = { NULL, 0 };
	struct cache_http_meta *m;
	struct cache_entry *e;
	uint64_t blen = 0;
	char *v;
	int i, rc;

	*out = NULL;
	for (i = 0; i < nbody; i++)
		blen += body[i].iov_len;
	if (blen > cache_max_object(c))
		return -E2BIG;
	write_head(&hb, resp, blen, NULL);
	write_tags(&tb, resp);
	rc = cache_entry_new(c, CACHE_KIND_HTTP, key, klen, hb.len + blen, tb.len, &e);
	if (rc)
		return rc;
	m = cache_entry_http(e);
	v = cache_entry_value(e);
	hb.p = v;
	hb.len = 0;
	write_head(&hb, resp, blen, m);
	for (i = 0; i < nbody; i++) {
		memcpy(v + hb.len, body[i].iov_base, body[i].iov_len);
		hb.len += body[i].iov_len;
	}
	tb.p = cache_entry_aux(e);
	tb.len = 0;
	m->ntags = (uint16_t)write_tags(&tb, resp);
	m->status = resp->status;
	m->response_ms = si->response_ms;
	m->initial_age_ms = si->initial_age_ms;
	m->lifetime_ms = si->lifetime_ms;
	m->swr_ms = si->swr_ms;
	m->sie_ms = si->sie_ms;
	m->flags = si->flags;
	atomic_store_explicit(&e->expires_ms, si->store_until_ms, memory_order_relaxed);
	*out = e;
	return 0;
}

/* ---- Vary ---- */

const struct cache_entry *cache_http_lookup(struct cache *c, const char *key, size_t klen,
					    const struct http_req *req, int64_t now_ms,
					    char *vbuf, size_t vcap)
{
	const struct cache_entry *e = cache_lookup(c, key, klen, now_ms);
	int n;

	if (e && e->kind == CACHE_KIND_VARY) {
		n = cache_policy_variant_key(key, klen, cache_entry_value(e), e->vlen, req,
					     vbuf, vcap);
		e = n < 0 ? NULL : cache_lookup(c, vbuf, (size_t)n, now_ms);
	}
	/* a RESP string stored under a URL is not a response */
	return e && e->kind == CACHE_KIND_HTTP ? e : NULL;
}

int cache_http_store(struct cache *c, int w, const char *key, size_t klen,
		     const struct http_req *req, const struct http_resp *resp,
		     const struct cache_storeinfo *si, const struct iovec *body, int nbody,
		     int64_t now_ms)
{
	const struct cache_entry *cur;
	struct cache_entry *e, *marker;
	char vkey[CACHE_KEY_MAX];
	int n, rc;

	if (!si->vary_len) {
		rc = cache_http_build(c, key, klen, resp, si, body, nbody, &e);
		return rc ? rc : cache_insert(c, w, e, now_ms);
	}
	n = cache_policy_variant_key(key, klen, si->vary, si->vary_len, req, vkey, sizeof vkey);
	if (n < 0)
		return n;
	rc = cache_http_build(c, vkey, (size_t)n, resp, si, body, nbody, &e);
	if (rc)
		return rc;
	rc = cache_insert(c, w, e, now_ms);
	if (rc)
		return rc;
	/* the marker only changes when the names do; a worker can look first */
	cur = w >= 0 ? cache_lookup(c, key, klen, now_ms) : NULL;
	if (cur && cur->kind == CACHE_KIND_VARY && cur->vlen == si->vary_len &&
	    !memcmp(cache_entry_value(cur), si->vary, si->vary_len))
		return 0;
	/* no expiry: the marker is tiny and only leads to variants that have their own */
	rc = cache_entry_new(c, CACHE_KIND_VARY, key, klen, si->vary_len, 0, &marker);
	if (rc)
		return rc;
	memcpy(cache_entry_value(marker), si->vary, si->vary_len);
	return cache_insert(c, w, marker, now_ms);
}

/* ---- 304 refresh ---- */

/* Fields a 304 must not change in the stored response (RFC 9111 3.2): the
 * stored body depends on them. */
static int keeps_stored(const struct http_hdr *h)
{
	return rf_ieq(h->name, h->name_len, "content-length") ||
	       rf_ieq(h->name, h->name_len, "content-encoding") ||
	       rf_ieq(h->name, h->name_len, "content-range") ||
	       rf_ieq(h->name, h->name_len, "transfer-encoding");
}

static int same_name(const struct http_hdr *a, const struct http_hdr *b)
{
	size_t i;

	if (a->name_len != b->name_len)
		return 0;
	for (i = 0; i < a->name_len; i++)
		if (lower(a->name[i]) != lower(b->name[i]))
			return 0;
	return 1;
}

static int updated_by(const struct http_resp *r304, const struct http_hdr *h)
{
	uint32_t i;

	if (keeps_stored(h))
		return 0;
	for (i = 0; i < r304->nhdrs; i++)
		if (same_name(&r304->hdrs[i], h) && !dropped(r304->hdrs, r304->nhdrs, &r304->hdrs[i]))
			return 1;
	return 0;
}

int cache_http_refresh(const struct cache *c, const struct cache_entry *old,
		       const struct http_resp *r304, const struct cache_reqinfo *ri,
		       int64_t request_ms, int64_t response_ms,
		       const struct cache_policy_conf *pc, struct cache_entry **out)
{
	const struct cache_http_meta *om = cache_entry_http(old);
	const char *v = cache_entry_value(old);
	struct http_limits lim = { om->head_len + 1, om->head_len + 1 };
	struct http_resp *stored, *merged;
	struct cache_reqinfo get = *ri;
	struct cache_storeinfo si;
	struct iovec body;
	uint32_t i;
	int rc, verdict;

	*out = NULL;
	if (old->kind != CACHE_KIND_HTTP)
		return -EINVAL;
	/* two parsed heads are ~5 KB: too much for a worker's stack habits */
	stored = malloc(sizeof *stored * 2);   /* owner: this function */
	if (!stored)
		return -ENOMEM;
	merged = stored + 1;
	if (http_parse_response(v, om->head_len, 0, &lim, stored) != (int)om->head_len) {
		free(stored);
		return -EINVAL;
	}
	*merged = *stored;
	merged->nhdrs = 0;
	for (i = 0; i < stored->nhdrs; i++)
		if (!updated_by(r304, &stored->hdrs[i]))
			merged->hdrs[merged->nhdrs++] = stored->hdrs[i];
	for (i = 0; i < r304->nhdrs && merged->nhdrs < HTTP_MAX_HEADERS; i++)
		if (!keeps_stored(&r304->hdrs[i]))
			merged->hdrs[merged->nhdrs++] = r304->hdrs[i];
	/* the revalidation may have been for a HEAD: the entry is a GET's */
	get.head = 0;
	if (get.action != CACHE_ACT_REVALIDATE)
		get.action = CACHE_ACT_LOOKUP;
	verdict = cache_policy_response(&get, merged, request_ms, response_ms, pc, &si);
	if (verdict != CACHE_STORE_OK)
		si.store_until_ms = response_ms;   /* served once, never stored */
	body.iov_base = (void *)(v + om->head_len);
	body.iov_len = old->vlen - om->head_len;
	rc = cache_http_build(c, cache_entry_key(old), old->klen, merged, &si, &body, 1, out);
	free(stored);
	return rc ? rc : verdict;
}

/* ---- serving a hit ---- */

int cache_http_not_modified(const struct cache_entry *e, char *out, size_t cap)
{
	static const char *const kept[] = {
		"cache-control", "content-location", "date", "etag", "expires",
		"last-modified", "vary",
	};
	static const char status[] = "HTTP/1.1 304 Not Modified\r\n";
	const struct cache_http_meta *m = cache_entry_http(e);
	const char *v = cache_entry_value(e), *end = v + m->hdr_end;
	const char *line = memchr(v, '\n', m->hdr_end), *eol, *colon;
	size_t n = sizeof(status) - 1, len, i;

	if (cap < n)
		return -ENOSPC;
	memcpy(out, status, n);
	/* the stored head is ringfront's own writing: one "Name: value" per line */
	for (line = line ? line + 1 : end; line < end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon)
			continue;
		for (i = 0; i < ARRAY_SIZE(kept); i++)
			if (rf_ieq(line, (size_t)(colon - line), kept[i]))
				break;
		if (i == ARRAY_SIZE(kept))
			continue;
		len = (size_t)(eol + 1 - line);
		if (n + len > cap)
			return -ENOSPC;
		memcpy(out + n, line, len);
		n += len;
	}
	return (int)n;
}

int cache_http_hit_fields(const struct cache_entry *e, int64_t now_ms,
			  enum cache_outcome status, char *out, size_t cap)
{
	int64_t age = cache_policy_age_ms(cache_entry_http(e), now_ms) / 1000;
	int n = snprintf(out, cap, "Age: %lld\r\nX-Cache-Status: %s\r\n", (long long)age,
			 cache_outcome_name(status));

	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

size_t cache_http_iov(const struct cache_entry *e, const char *extra, size_t elen,
		      int head_only, struct iovec iov[3])
{
	const struct cache_http_meta *m = cache_entry_http(e);
	char *v = cache_entry_value(e);

	iov[0].iov_base = v;
	iov[0].iov_len = m->hdr_end;
	iov[1].iov_base = (void *)extra;
	iov[1].iov_len = elen;
	iov[2].iov_base = v + m->hdr_end;
	iov[2].iov_len = head_only ? m->head_len - m->hdr_end : e->vlen - m->hdr_end;
	return iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
}

/* cache_policy.c - RFC 9111 rules for ringfront's shared cache (see
 * cache_policy.h): Cache-Control parsing, request and response
 * classification, age and freshness, keys, Vary, and HTTP dates. */
#include <errno.h>
#include <stdio.h>

#include "cache_policy.h"
#include "common.h"

#define DELTA_MAX       2147483648LL    /* RFC 9111 1.2.2: larger delta-seconds clamp here */
#define REVALIDATE_KEEP (10 * 60 * 1000LL)  /* stale entries with a validator stay at least this long */

/* ---- small helpers ---- */

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static int name_is(const struct http_hdr *h, const char *lit)
{
	return rf_ieq(h->name, h->name_len, lit);
}

static const struct http_hdr *find_hdr(const struct http_hdr *hdrs, uint32_t n, const char *name)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (name_is(&hdrs[i], name))
			return &hdrs[i];
	return NULL;
}

/* delta-seconds: digits only; larger values clamp. Returns 0 or -EINVAL. */
static int parse_delta(const char *p, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (!n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		if (v < DELTA_MAX)
			v = v * 10 + (p[i] - '0');
	}
	*out = v > DELTA_MAX ? DELTA_MAX : v;
	return 0;
}

/* ---- Cache-Control ---- */

/* One element of a Cache-Control list: name [ "=" ( token / quoted-string ) ]. */
static void cc_directive(struct cache_cc *cc, const char *name, size_t nlen,
			 const char *val, size_t vlen, int has_val)
{
	static const struct { const char *name; uint32_t flag; } flags[] = {
		{ "no-store", CACHE_CC_NO_STORE }, { "no-cache", CACHE_CC_NO_CACHE },
		{ "private", CACHE_CC_PRIVATE }, { "public", CACHE_CC_PUBLIC },
		{ "must-revalidate", CACHE_CC_MUST_REVALIDATE },
		{ "proxy-revalidate", CACHE_CC_PROXY_REVALIDATE },
		{ "only-if-cached", CACHE_CC_ONLY_IF_CACHED },
		{ "no-transform", CACHE_CC_NO_TRANSFORM }, { "immutable", CACHE_CC_IMMUTABLE },
	};
	struct { const char *name; int64_t *dst; int invalid_is_zero; } nums[] = {
		{ "max-age", &cc->max_age, 1 }, { "s-maxage", &cc->s_maxage, 1 },
		{ "min-fresh", &cc->min_fresh, 0 }, { "stale-while-revalidate", &cc->swr, 0 },
		{ "stale-if-error", &cc->sie, 0 }, { "max-stale", &cc->max_stale, 0 },
	};
	int64_t v;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(flags); i++) {
		if (rf_ieq(name, nlen, flags[i].name)) {
			/* no-cache="f" / private="f" are treated as unqualified: stricter */
			cc->flags |= flags[i].flag;
			return;
		}
	}
	for (i = 0; i < ARRAY_SIZE(nums); i++) {
		if (!rf_ieq(name, nlen, nums[i].name))
			continue;
		if (nums[i].dst == &cc->max_stale) {
			if (cc->flags & CACHE_CC_MAX_STALE)
				return;
			cc->flags |= CACHE_CC_MAX_STALE;
			if (has_val && !parse_delta(val, vlen, &v))
				cc->max_stale = v;
			return;
		}
		if (*nums[i].dst >= 0)
			return;   /* the first occurrence wins */
		if (has_val && !parse_delta(val, vlen, &v))
			*nums[i].dst = v;
		else if (nums[i].invalid_is_zero)
			*nums[i].dst = 0;
		return;
	}
}

static void cc_parse_value(struct cache_cc *cc, const char *p, const char *e)
{
	const char *name, *val;
	size_t nlen, vlen;
	int has_val;

	while (p < e) {
		while (p < e && (is_ows(*p) || *p == ','))
			p++;
		if (p == e)
			break;
		name = p;
		while (p < e && *p != '=' && *p != ',' && !is_ows(*p))
			p++;
		nlen = (size_t)(p - name);
		while (p < e && is_ows(*p))
			p++;
		has_val = 0;
		val = p;
		vlen = 0;
		if (p < e && *p == '=') {
			has_val = 1;
			p++;
			while (p < e && is_ows(*p))
				p++;
			if (p < e && *p == '"') {
				/* quoted-string: commas inside do not split */
				val = ++p;
				while (p < e && *p != '"') {
					if (*p == '\\' && p + 1 < e)
						p++;
					p++;
				}
				vlen = (size_t)(p - val);
				if (p < e)
					p++;
			} else {
				val = p;
				while (p < e && *p != ',' && !is_ows(*p))
					p++;
				vlen = (size_t)(p - val);
			}
		}
		while (p < e && *p != ',')
			p++;   /* junk after a directive: skip to the next element */
		if (nlen)
			cc_directive(cc, name, nlen, val, vlen, has_val);
	}
}

void cache_cc_parse(const struct http_hdr *hdrs, uint32_t n, struct cache_cc *cc)
{
	uint32_t i;

	memset(cc, 0, sizeof *cc);
	cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = cc->swr = cc->sie = -1;
	for (i = 0; i < n; i++) {
		if (!name_is(&hdrs[i], "cache-control"))
			continue;
		cc->flags |= CACHE_CC_PRESENT;
		cc_parse_value(cc, hdrs[i].value, hdrs[i].value + hdrs[i].value_len);
	}
}

/* ---- requests ---- */

void cache_policy_request(const struct http_req *req, struct cache_reqinfo *ri)
{
	const struct http_hdr *h;

	memset(ri, 0, sizeof *ri);
	cache_cc_parse(req->hdrs, req->nhdrs, &ri->cc);
	ri->auth = find_hdr(req->hdrs, req->nhdrs, "authorization") != NULL;
	ri->no_store = !!(ri->cc.flags & CACHE_CC_NO_STORE);
	ri->only_if_cached = !!(ri->cc.flags & CACHE_CC_ONLY_IF_CACHED);
	switch (req->meth) {
	case HTTP_M_GET:
		break;
	case HTTP_M_HEAD:
		ri->head = 1;
		break;
	case HTTP_M_OPTIONS:
	case HTTP_M_TRACE:
	case HTTP_M_CONNECT:
		ri->action = CACHE_ACT_BYPASS;   /* safe, but never cached */
		return;
	default:
		/* POST, PUT, DELETE, PATCH and unknown methods: not known safe */
		ri->action = CACHE_ACT_INVALIDATE;
		return;
	}
	/* ranges would need 206 handling and preconditions that can fail need
	 * the current state: the backend answers both */
	if (find_hdr(req->hdrs, req->nhdrs, "range") || (req->flags & HTTP_FL_CONN_UPGRADE) ||
	    find_hdr(req->hdrs, req->nhdrs, "if-match") ||
	    find_hdr(req->hdrs, req->nhdrs, "if-unmodified-since")) {
		ri->action = CACHE_ACT_BYPASS;
		return;
	}
	ri->action = CACHE_ACT_LOOKUP;
	ri->conditional = find_hdr(req->hdrs, req->nhdrs, "if-none-match") ||
			  find_hdr(req->hdrs, req->nhdrs, "if-modified-since");
	if ((ri->cc.flags & CACHE_CC_NO_CACHE) || ri->cc.max_age == 0)
		ri->action = CACHE_ACT_REVALIDATE;
	/* Pragma: no-cache counts only when there is no Cache-Control (RFC 9111 5.4) */
	h = find_hdr(req->hdrs, req->nhdrs, "pragma");
	if (h && !(ri->cc.flags & CACHE_CC_PRESENT) && http_list_has(h->value, h->value_len, "no-cache"))
		ri->action = CACHE_ACT_REVALIDATE;
}

/* ---- responses ---- */

const char *cache_nostore_str(int reason)
{
	static const char *const s[] = {
		"storable", "method", "request no-store", "status", "no-store", "private",
		"authorization", "vary", "set-cookie", "no freshness",
	};

	return reason >= 0 && (size_t)reason < ARRAY_SIZE(s) ? s[reason] : "unknown";
}

/* Cacheable by default (RFC 9110 15.1), 206 left out: no range support. */
static int heuristic_status(unsigned st)
{
	switch (st) {
	case 200: case 203: case 204: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return 1;
	}
	return 0;
}

/* Statuses a cache understands and may store with explicit freshness. */
static int understood_status(unsigned st)
{
	return st >= 200 && st < 600 && st != 206 && st != 304;
}

struct vary_acc {
	struct cache_storeinfo *si;
	int star;
	int full;
};

static int vary_name(const char *tok, size_t n, void *arg)
{
	struct vary_acc *va = arg;
	struct cache_storeinfo *si = va->si;
	size_t i;

	if (n == 1 && tok[0] == '*') {
		va->star = 1;
		return 1;
	}
	if (si->vary_len + n + 1 > sizeof si->vary) {
		va->full = 1;
		return 1;
	}
	if (si->vary_len)
		si->vary[si->vary_len++] = ',';
	for (i = 0; i < n; i++)
		si->vary[si->vary_len++] = lower(tok[i]);
	return 0;
}

int cache_policy_response(const struct cache_reqinfo *ri, const struct http_resp *resp,
			  int64_t request_ms, int64_t response_ms,
			  const struct cache_policy_conf *pc, struct cache_storeinfo *si)
{
	const struct http_hdr *h;
	struct vary_acc va = { si, 0, 0 };
	struct cache_cc cc;
	int64_t t, age = 0, apparent, corrected, keep, fresh_end;
	uint32_t i;
	int explicit = 1;

	memset(si, 0, sizeof *si);
	si->request_ms = request_ms;
	si->response_ms = response_ms;
	si->date_ms = response_ms;
	h = find_hdr(resp->hdrs, resp->nhdrs, "date");
	if (h && !cache_parse_http_date(h->value, h->value_len, &t))
		si->date_ms = t * 1000;
	h = find_hdr(resp->hdrs, resp->nhdrs, "age");
	if (h && parse_delta(h->value, h->value_len, &age))
		age = 0;
	/* RFC 9111 4.2.3 */
	apparent = RF_MAX(0, response_ms - si->date_ms);
	corrected = age * 1000 + RF_MAX(0, response_ms - request_ms);
	si->initial_age_ms = RF_MAX(apparent, corrected);

	if (ri->action != CACHE_ACT_LOOKUP && ri->action != CACHE_ACT_REVALIDATE)
		return CACHE_NS_METHOD;
	if (ri->head)
		return CACHE_NS_METHOD;
	if (ri->no_store)
		return CACHE_NS_REQUEST;
	if (!understood_status(resp->status))
		return CACHE_NS_STATUS;
	cache_cc_parse(resp->hdrs, resp->nhdrs, &cc);
	if (cc.flags & CACHE_CC_NO_STORE)
		return CACHE_NS_NO_STORE;
	if (cc.flags & CACHE_CC_PRIVATE)
		return CACHE_NS_PRIVATE;
	/* RFC 9111 3.5: only these let a shared cache reuse an authorized answer */
	if (ri->auth && !(cc.flags & (CACHE_CC_PUBLIC | CACHE_CC_MUST_REVALIDATE)) &&
	    cc.s_maxage < 0)
		return CACHE_NS_AUTH;
	for (i = 0; i < resp->nhdrs; i++) {
		h = &resp->hdrs[i];
		if (name_is(h, "vary"))
			http_list_each(h->value, h->value_len, vary_name, &va);
		else if (name_is(h, "set-cookie"))
			return CACHE_NS_SET_COOKIE;
	}
	if (va.star || va.full)
		return CACHE_NS_VARY;

	/* freshness lifetime, RFC 9111 4.2.1: shared caches prefer s-maxage */
	if (cc.s_maxage >= 0) {
		si->lifetime_ms = cc.s_maxage * 1000;
		si->flags |= CACHE_HF_MUST_REVALIDATE;   /* s-maxage implies proxy-revalidate */
	} else if (cc.max_age >= 0) {
		si->lifetime_ms = cc.max_age * 1000;
	} else if ((h = find_hdr(resp->hdrs, resp->nhdrs, "expires"))) {
		/* an invalid Expires means "already expired" */
		if (!cache_parse_http_date(h->value, h->value_len, &t))
			si->lifetime_ms = RF_MAX(0, t * 1000 - si->date_ms);
	} else {
		explicit = 0;
	}
	if (!explicit) {
		if (pc->default_ttl_ms <= 0)
			return CACHE_NS_FRESHNESS;
		if (!heuristic_status(resp->status) && !(cc.flags & CACHE_CC_PUBLIC))
			return CACHE_NS_STATUS;
		si->lifetime_ms = pc->default_ttl_ms;
		si->flags |= CACHE_HF_HEURISTIC;
	}
	if (cc.flags & (CACHE_CC_MUST_REVALIDATE | CACHE_CC_PROXY_REVALIDATE))
		si->flags |= CACHE_HF_MUST_REVALIDATE;
	if (cc.flags & CACHE_CC_NO_CACHE)
		si->flags |= CACHE_HF_NO_CACHE;
	if (!(si->flags & (CACHE_HF_MUST_REVALIDATE | CACHE_HF_NO_CACHE))) {
		si->swr_ms = cc.swr > 0 ? cc.swr * 1000 : 0;
		si->sie_ms = cc.sie > 0 ? cc.sie * 1000 : 0;
	}
	si->etag = find_hdr(resp->hdrs, resp->nhdrs, "etag");
	si->last_modified = find_hdr(resp->hdrs, resp->nhdrs, "last-modified");

	/* keep it while it can still serve: fresh, stale windows, and with a
	 * validator long enough for a cheap 304 revalidation to pay off */
	fresh_end = response_ms - si->initial_age_ms + si->lifetime_ms;
	if (si->flags & CACHE_HF_NO_CACHE)
		fresh_end = RF_MIN(fresh_end, response_ms);
	keep = RF_MAX(si->swr_ms, si->sie_ms);
	if (si->etag || si->last_modified)
		keep = RF_MAX(keep, RF_MAX(si->lifetime_ms, REVALIDATE_KEEP));
	si->store_until_ms = fresh_end + keep;
	if (si->store_until_ms <= response_ms)
		return CACHE_NS_FRESHNESS;   /* stale on arrival and nothing to revalidate with */
	return CACHE_STORE_OK;
}

int64_t cache_policy_age_ms(const struct cache_http_meta *m, int64_t now_ms)
{
	return m->initial_age_ms + RF_MAX(0, now_ms - m->response_ms);
}

int cache_policy_freshness(const struct cache_http_meta *m, const struct cache_reqinfo *ri,
			   int64_t now_ms)
{
	int64_t age = cache_policy_age_ms(m, now_ms);
	int64_t left = m->lifetime_ms - age;   /* > 0: fresh */
	const struct cache_cc *cc = &ri->cc;

	if ((m->flags & CACHE_HF_NO_CACHE) || ri->action == CACHE_ACT_REVALIDATE)
		return CACHE_STALE;
	if (cc->max_age >= 0 && age > cc->max_age * 1000)
		return CACHE_STALE;
	if (cc->min_fresh >= 0 && left < cc->min_fresh * 1000)
		return CACHE_STALE;
	if (left > 0)
		return CACHE_FRESH;
	if (m->flags & CACHE_HF_MUST_REVALIDATE)
		return CACHE_STALE;
	if ((cc->flags & CACHE_CC_MAX_STALE) && (cc->max_stale < 0 || -left <= cc->max_stale * 1000))
		return CACHE_STALE_SERVE;
	if (m->swr_ms > 0 && -left <= m->swr_ms)
		return CACHE_STALE_SERVE;
	return CACHE_STALE;
}

int cache_policy_stale_if_error(const struct cache_http_meta *m,
				const struct cache_reqinfo *ri, int64_t now_ms)
{
	int64_t stale = cache_policy_age_ms(m, now_ms) - m->lifetime_ms;
	int64_t window = m->sie_ms;

	if (m->flags & (CACHE_HF_MUST_REVALIDATE | CACHE_HF_NO_CACHE))
		return 0;
	if (ri->cc.sie >= 0)
		window = RF_MAX(window, ri->cc.sie * 1000);
	return stale <= window;
}

int cache_policy_conditional(const struct cache_entry *e, char *out, size_t cap)
{
	const struct cache_http_meta *m;
	const char *v;
	size_t n = 0;
	int k;

	if (e->kind != CACHE_KIND_HTTP)
		return 0;
	m = cache_entry_http(e);
	v = cache_entry_value(e);
	if (m->etag_len) {
		k = snprintf(out, cap, "If-None-Match: %.*s\r\n", (int)m->etag_len, v + m->etag_off);
		if (k < 0 || (size_t)k >= cap)
			return -ENOSPC;
		n = (size_t)k;
	}
	if (m->lm_len) {
		k = snprintf(out + n, cap - n, "If-Modified-Since: %.*s\r\n", (int)m->lm_len,
			     v + m->lm_off);
		if (k < 0 || (size_t)k >= cap - n)
			return -ENOSPC;
		n += (size_t)k;
	}
	return (int)n;
}

/* Does the entity-tag list <list> name <tag> (weak comparison: W/ prefixes
 * ignored)? "*" matches any tag. Tags may contain commas: walk the quotes. */
static int etag_list_has(const char *list, size_t n, const char *tag, size_t tlen)
{
	const char *p = list, *end = list + n, *q;

	if (tlen >= 2 && tag[0] == 'W' && tag[1] == '/') {
		tag += 2;
		tlen -= 2;
	}
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p < end && *p == '*')
			return 1;
		if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
			p += 2;
		if (p >= end || *p != '"')
			return 0;       /* malformed: no match, the full response goes */
		q = memchr(p + 1, '"', (size_t)(end - p - 1));
		if (!q)
			return 0;
		if ((size_t)(q + 1 - p) == tlen && !memcmp(p, tag, tlen))
			return 1;
		p = q + 1;
	}
	return 0;
}

int cache_policy_not_modified(const struct cache_entry *e, const struct http_req *req)
{
	const struct cache_http_meta *m = cache_entry_http(e);
	const char *v = cache_entry_value(e);
	const struct http_hdr *h;
	int64_t since, lm;
	uint32_t i;

	if (m->status != 200)
		return 0;
	h = find_hdr(req->hdrs, req->nhdrs, "if-none-match");
	if (h) {
		/* every If-None-Match field line counts (RFC 9110 5.3) */
		if (!m->etag_len)
			return 0;
		for (i = 0; i < req->nhdrs; i++)
			if (name_is(&req->hdrs[i], "if-none-match") &&
			    etag_list_has(req->hdrs[i].value, req->hdrs[i].value_len,
					  v + m->etag_off, m->etag_len))
				return 1;
		return 0;
	}
	h = find_hdr(req->hdrs, req->nhdrs, "if-modified-since");
	if (!h || cache_parse_http_date(h->value, h->value_len, &since) < 0)
		return 0;
	/* without Last-Modified the time the response arrived stands in
	 * (RFC 9111 4.3.2) */
	if (!m->lm_len || cache_parse_http_date(v + m->lm_off, m->lm_len, &lm) < 0)
		lm = m->response_ms / 1000;
	return lm <= since;
}

int cache_policy_invalidates(const struct http_req *req, const struct http_resp *resp)
{
	switch (req->meth) {
	case HTTP_M_GET: case HTTP_M_HEAD: case HTTP_M_OPTIONS: case HTTP_M_TRACE:
		return 0;
	}
	return resp->status >= 200 && resp->status < 400;
}

/* ---- keys ---- */

struct kbuf {
	char *p;
	size_t len, cap;
	int full;
};

static void kput(struct kbuf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void kput_lower(struct kbuf *b, const char *s, size_t n)
{
	size_t i;

	if (b->len + n > b->cap) {
		b->full = 1;
		return;
	}
	for (i = 0; i < n; i++)
		b->p[b->len + i] = lower(s[i]);
	b->len += n;
}

int cache_policy_key(const char *scheme, uint16_t default_port, const struct http_req *req,
		     char *out, size_t cap)
{
	struct kbuf b = { out, 0, cap, 0 };
	const char *h = req->host, *colon = NULL, *port;
	size_t hlen = req->host_len, i, plen;
	char num[8];
	int n;

	if (!h || !hlen || !req->target_len || req->target[0] != '/')
		return -EINVAL;
	if (h[0] == '[') {
		const char *close = memchr(h, ']', hlen);

		if (!close)
			return -EINVAL;
		if ((size_t)(close - h) + 1 < hlen) {
			if (close[1] != ':')
				return -EINVAL;
			colon = close + 1;
		}
	} else {
		colon = memchr(h, ':', hlen);
	}
	port = colon ? colon + 1 : NULL;
	plen = colon ? hlen - (size_t)(port - h) : 0;
	if (colon)
		hlen = (size_t)(colon - h);
	if (!hlen || plen > 5)
		return -EINVAL;
	for (i = 0; i < plen; i++)
		if (port[i] < '0' || port[i] > '9')
			return -EINVAL;
	kput_lower(&b, scheme, strlen(scheme));
	kput(&b, "://", 3);
	kput_lower(&b, h, hlen);
	kput(&b, ":", 1);
	if (plen) {
		while (plen > 1 && *port == '0') {   /* ":080" and ":80" are one origin */
			port++;
			plen--;
		}
		kput(&b, port, plen);
	} else {
		n = snprintf(num, sizeof num, "%u", default_port);
		kput(&b, num, (size_t)n);
	}
	kput(&b, req->target, req->target_len);
	return b.full ? -ENOSPC : (int)b.len;
}

/* Append the request's values of field <name>: lines joined by ',', each
 * list element trimmed, so "a, b" and "a,b" select the same variant. */
static void put_values(struct kbuf *b, const struct http_req *req, const char *name, size_t nlen)
{
	uint32_t i;
	int first = 1;

	for (i = 0; i < req->nhdrs; i++) {
		const struct http_hdr *h = &req->hdrs[i];
		const char *p = h->value, *e = h->value + h->value_len, *s, *t;

		size_t k;

		if (h->name_len != nlen)
			continue;
		for (k = 0; k < nlen && lower(h->name[k]) == lower(name[k]); k++)
			;
		if (k != nlen)
			continue;
		while (p < e) {
			while (p < e && (is_ows(*p) || *p == ','))
				p++;
			if (p == e)
				break;
			for (s = p; p < e && *p != ','; p++)
				;
			for (t = p; t > s && is_ows(t[-1]); t--)
				;
			if (!first)
				kput(b, ",", 1);
			first = 0;
			kput(b, s, (size_t)(t - s));
		}
	}
}

int cache_policy_variant_key(const char *base, size_t blen, const char *names, size_t nlen,
			     const struct http_req *req, char *out, size_t cap)
{
	struct kbuf b = { out, 0, cap, 0 };
	const char *p = names, *e = names + nlen, *s;
	char sep = CACHE_VARY_SEP;

	kput(&b, base, blen);
	kput(&b, &sep, 1);
	while (p < e) {
		while (p < e && (*p == ',' || is_ows(*p)))
			p++;
		for (s = p; p < e && *p != ',' && !is_ows(*p); p++)
			;
		if (p == s)
			continue;
		kput(&b, s, (size_t)(p - s));
		kput(&b, "=", 1);
		put_values(&b, req, s, (size_t)(p - s));
		kput(&b, "\n", 1);
	}
	return b.full ? -ENOSPC : (int)b.len;
}

/* ---- HTTP dates (RFC 9110 5.6.7) ---- */

static const char month_names[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};
static const char day_names[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const long_days[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
};

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int num(const char **p, const char *e, int digits, int *out)
{
	int v = 0, i;

	for (i = 0; i < digits; i++, (*p)++) {
		if (*p >= e || **p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

static int lit(const char **p, const char *e, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(e - *p) < n || memcmp(*p, s, n))
		return -EINVAL;
	*p += n;
	return 0;
}

static int month(const char **p, const char *e, int *out)
{
	int i;

	for (i = 0; i < 12; i++) {
		if (!lit(p, e, month_names[i])) {
			*out = i + 1;
			return 0;
		}
	}
	return -EINVAL;
}

/* hh:mm:ss */
static int hms(const char **p, const char *e, int *h, int *m, int *s)
{
	if (num(p, e, 2, h) || lit(p, e, ":") || num(p, e, 2, m) || lit(p, e, ":") ||
	    num(p, e, 2, s))
		return -EINVAL;
	return *h > 23 || *m > 59 || *s > 60 ? -EINVAL : 0;
}

static int finish_date(int64_t y, int mo, int d, int h, int mi, int s, int64_t *out)
{
	static const unsigned char mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return -EINVAL;
	*out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
	return 0;
}

int cache_parse_http_date(const char *str, size_t len, int64_t *out)
{
	const char *p = str, *e = str + len;
	int d, mo, y, h, mi, s, i;

	for (i = 0; i < 7; i++)
		if (!lit(&p, e, day_names[i]))
			break;
	if (i == 7)
		return -EINVAL;
	if (p < e && *p == ',') {
		/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
		p++;
		if (lit(&p, e, " ") || num(&p, e, 2, &d) || lit(&p, e, " ") || month(&p, e, &mo) ||
		    lit(&p, e, " ") || num(&p, e, 4, &y) || lit(&p, e, " ") ||
		    hms(&p, e, &h, &mi, &s) || lit(&p, e, " GMT") || p != e)
			return -EINVAL;
		return finish_date(y, mo, d, h, mi, s, out);
	}
	if (p < e && *p == ' ') {
		/* asctime: Sun Nov  6 08:49:37 1994 */
		p++;
		if (month(&p, e, &mo) || lit(&p, e, " "))
			return -EINVAL;
		if (p < e && *p == ' ') {
			p++;
			if (num(&p, e, 1, &d))
				return -EINVAL;
		} else if (num(&p, e, 2, &d)) {
			return -EINVAL;
		}
		if (lit(&p, e, " ") || hms(&p, e, &h, &mi, &s) || lit(&p, e, " ") ||
		    num(&p, e, 4, &y) || p != e)
			return -EINVAL;
		return finish_date(y, mo, d, h, mi, s, out);
	}
	/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (the short name matched a prefix) */
	p = str;
	if (lit(&p, e, long_days[i]) || lit(&p, e, ", ") || num(&p, e, 2, &d) ||
	    lit(&p, e, "-") || month(&p, e, &mo) || lit(&p, e, "-") || num(&p, e, 2, &y) ||
	    lit(&p, e, " ") || hms(&p, e, &h, &mi, &s) || lit(&p, e, " GMT") || p != e)
		return -EINVAL;
	/* two-digit years: 70..99 are 19xx, the rest 20xx (RFC 9110's 50-year
	 * rule needs a clock; this pure version keeps 1970 as the pivot) */
	return finish_date(y >= 70 ? 1900 + y : 2000 + y, mo, d, h, mi, s, out);
}

void cache_format_http_date(int64_t t, char out[30])
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400, secs = t - days * 86400;
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
	int wd = (int)(((days % 7) + 11) % 7);   /* 1970-01-01 was a Thursday */

	unsigned yy = y < 0 ? 0 : y > 9999 ? 9999 : (unsigned)y;
	unsigned hh = (unsigned)(secs / 3600), mi = (unsigned)(secs / 60 % 60);
	unsigned ss = (unsigned)(secs % 60);

	/* fixed width by hand: "Sun, 06 Nov 1994 08:49:37 GMT" */
	memcpy(out, day_names[wd], 3);
	memcpy(out + 3, ", ", 2);
	out[5] = (char)('0' + d / 10);
	out[6] = (char)('0' + d % 10);
	out[7] = ' ';
	memcpy(out + 8, month_names[m - 1], 3);
	out[11] = ' ';
	out[12] = (char)('0' + yy / 1000);
	out[13] = (char)('0' + yy / 100 % 10);
	out[14] = (char)('0' + yy / 10 % 10);
	out[15] = (char)('0' + yy % 10);
	out[16] = ' ';
	out[17] = (char)('0' + hh / 10);
	out[18] = (char)('0' + hh % 10);
	out[19] = ':';
	out[20] = (char)('0' + mi / 10);
	out[21] = (char)('0' + mi % 10);
	out[22] = ':';
	out[23] = (char)('0' + ss / 10);
	out[24] = (char)('0' + ss % 10);
	memcpy(out + 25, " GMT", 5);
}

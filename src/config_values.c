/* config_values.c - the loader's value parsers: text to a table row's
 * field. Tokens and numbers, sizes and durations with their units, enum
 * names, host:port addresses (resolved once, at load), the setter of each
 * key type, the custom setters the tables name (servers, rates, rate limit
 * keys), and the public config_parse_*() and config_balance_*() helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>

#include "common.h"
#include "config_int.h"

#define WEIGHT_MIN      1
#define WEIGHT_MAX      1000
#define RL_PERIOD_MAX_MS (30ull * DAY_MS)

const char *const balance_names[] = {
	"round_robin", "weighted", "least_conn", "ip_hash", "least_time",
	"adaptive", "random2", NULL,
};

__attribute__((format(printf, 3, 4)))
int why(struct why *w, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof w->msg, fmt, ap);
	va_end(ap);
	return rc;
}

int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

char *trim(char *s)
{
	size_t n;

	while (is_ws(*s))
		s++;
	n = strlen(s);
	while (n && is_ws(s[n - 1]))
		s[--n] = 0;
	return s;
}

/* Spaces or control characters: not allowed in paths that go on the wire. */
int has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 1;
	return 0;
}

/* Next whitespace-separated token of *s into tok. Returns 1, 0 at the end,
 * or -E2BIG when it does not fit (tok then holds its truncated start). */
static int next_token(const char **s, char *tok, size_t n)
{
	const char *b = *s, *e;
	size_t len;

	while (is_ws(*b))
		b++;
	for (e = b; *e && !is_ws(*e); e++)
		;
	*s = e;
	len = (size_t)(e - b);
	memcpy(tok, b, RF_MIN(len, n - 1));
	tok[RF_MIN(len, n - 1)] = 0;
	return !len ? 0 : len < n ? 1 : -E2BIG;
}

/* Digits only (no sign, no space), at least one; -ERANGE on overflow. */
static int parse_uint(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	*end = s;
	return 0;
}

struct unit {
	const char *sfx;
	uint64_t mult;
};

/* Biggest unit first, so fmt_bound() prints 64k rather than 65536. */
static const struct unit size_units[] = {
	{ "g", 1ull << 30 }, { "m", 1ull << 20 }, { "k", 1ull << 10 }, { "", 1 }, { NULL, 0 },
};
static const struct unit ms_units[] = {
	{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 }, { "", 1000 }, { NULL, 0 },
};

static int parse_scaled(const char *text, uint64_t *out, const struct unit *u)
{
	const char *end;
	uint64_t v;
	int rc = parse_uint(text, &v, &end);

	if (rc)
		return rc;
	for (; u->sfx; u++) {
		if (rf_ieq(end, strlen(end), u->sfx)) {
			if (v > UINT64_MAX / u->mult)
				return -ERANGE;
			*out = v * u->mult;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_size(const char *text, uint64_t *out)
{
	return parse_scaled(text, out, size_units);
}

int config_parse_duration_ms(const char *text, uint64_t *out)
{
	return parse_scaled(text, out, ms_units);
}

static int enum_lookup(const char *const *names, const char *text, uint32_t *out)
{
	uint32_t i;

	for (i = 0; names[i]; i++) {
		if (rf_ieq(text, strlen(text), names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *config_balance_name(uint32_t balance)
{
	return balance < ARRAY_SIZE(balance_names) - 1 ? balance_names[balance] : "unknown";
}

int config_balance_parse(const char *text, uint32_t *out)
{
	return enum_lookup(balance_names, text, out);
}

/* ---- addresses ---- */

static int resolve(const char *host, int family, int flags, struct rf_addr *out,
		   struct why *w)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;   /* one result per address, not per protocol */
	hints.ai_flags = flags;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc)
		return why(w, -EINVAL, "cannot resolve '%s': %s", host, gai_strerror(rc));
	rc = -EINVAL;
	if (res->ai_addrlen <= sizeof out->ss &&
	    (res->ai_family == AF_INET || res->ai_family == AF_INET6)) {
		memcpy(&out->ss, res->ai_addr, res->ai_addrlen);   /* the first result wins */
		out->len = (socklen_t)res->ai_addrlen;
		rc = 0;
	}
	freeaddrinfo(res);
	return rc ? why(w, rc, "'%s' resolved to an unusable address", host) : 0;
}

static int parse_addr(const char *text, struct rf_addr *out, struct why *w)
{
	size_t len = strlen(text), hlen;
	const char *h = text, *port, *end, *close = NULL;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
	char host[sizeof out->text];
	uint64_t pv;
	int rc;

	memset(out, 0, sizeof *out);
	if (len >= sizeof out->text)
		return why(w, -EINVAL, "address too long");
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (!close || close[1] != ':')
			return why(w, -EINVAL, "expected [IPv6]:port");
		h = text + 1;
		port = close + 2;
	} else {
		port = strrchr(text, ':');
		if (!port)
			return why(w, -EINVAL, "missing :port");
		close = port++;
		if (memchr(text, ':', (size_t)(close - text)))
			return why(w, -EINVAL, "IPv6 addresses need brackets, e.g. [::1]:8080");
	}
	hlen = (size_t)(close - h);
	if (parse_uint(port, &pv, &end) || *end || pv < 1 || pv > 65535)
		return why(w, -EINVAL, "port must be 1..65535");
	memcpy(host, h, hlen);
	host[hlen] = 0;

	if (text[0] == '[') {
		/* getaddrinfo rather than inet_pton: it understands %scope ids */
		if (!hlen || resolve(host, AF_INET6, AI_NUMERICHOST, out, w))
			return why(w, -EINVAL, "bad IPv6 address");
	} else if (!hlen || !strcmp(host, "*")) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		out->len = sizeof *s4;
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		out->len = sizeof *s4;
	} else {
		/* keep typos like 10.0.0.300 and stray characters away from DNS */
		if (strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789.-_") != hlen)
			return why(w, -EINVAL, "bad host name");
		if (strspn(host, "0123456789.") == hlen)
			return why(w, -EINVAL, "bad IPv4 address");
		rc = resolve(host, AF_UNSPEC, 0, out, w);
		if (rc)
			return rc;
	}
	if (out->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)pv);
	else
		s4->sin_port = htons((uint16_t)pv);
	memcpy(out->text, text, len + 1);
	return 0;
}

int config_parse_addr(const char *text, struct rf_addr *out)
{
	struct why w;

	return parse_addr(text, out, &w);
}

/* ---- value setters, one per type ---- */

static void fmt_bound(const struct key_def *k, uint64_t v, char *buf, size_t n)
{
	const struct unit *u = k->type == KT_MS ? ms_units :
			       k->type == KT_U32 ? size_units + 3 : size_units;

	while (v && u->sfx && v % u->mult)
		u++;
	if (!v || !u->sfx)
		snprintf(buf, n, "%llu", ULL(v));
	else
		snprintf(buf, n, "%llu%s", ULL(v / u->mult), u->sfx);
}

/* Parse a number of the row's type and check its bounds and flags. */
static int parse_number(const struct key_def *k, const char *val, uint64_t *v, struct why *w)
{
	const char *expect, *end, *or_auto = k->flags & KF_AUTO ? " or auto" : "";
	char lo[32], hi[32];
	int rc;

	*v = 0;
	if ((k->flags & KF_AUTO) && rf_ieq(val, strlen(val), "auto"))
		return 0;
	if (k->type == KT_SIZE32 || k->type == KT_SIZE64) {
		rc = config_parse_size(val, v);
		expect = "a size such as 512, 8k, 1m or 1g";
	} else if (k->type == KT_MS) {
		rc = config_parse_duration_ms(val, v);
		expect = "a duration such as 250ms, 10s, 5m or 1h";
	} else {
		rc = parse_uint(val, v, &end);
		if (!rc && *end)
			rc = -EINVAL;
		expect = "a number";
	}
	if (!rc && (*v < k->min || *v > k->max))
		rc = -ERANGE;
	if (!rc && (k->flags & KF_POW2) && (*v & (*v - 1)))
		rc = -EINVAL;
	fmt_bound(k, k->min, lo, sizeof lo);
	fmt_bound(k, k->max, hi, sizeof hi);
	if (rc && (k->flags & KF_POW2))
		return why(w, rc, "expected a power of two from %s to %s", lo, hi);
	if (rc == -EINVAL)
		return why(w, rc, "expected %s%s", expect, or_auto);
	if (rc == -ERANGE)
		return why(w, rc, "expected %s..%s%s", lo, hi, or_auto);
	return 0;
}

static void store_number(const struct key_def *k, void *base, uint64_t v)
{
	if (k->type == KT_SIZE64)
		*(uint64_t *)FIELD(base, k) = v;
	else
		*(uint32_t *)FIELD(base, k) = (uint32_t)v;   /* rows keep max <= UINT32_MAX */
}

/* HTTP field-name characters (RFC 9110 tchar). */
static int is_token(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789!#$%&'*+-.^_`|~") == strlen(s);
}

static int set_string(const struct key_def *k, void *base, const char *val, struct why *w)
{
	char **dst = FIELD(base, k);

	/* KF_PATH values (health_path) go verbatim into a request line */
	if ((k->flags & KF_PATH) && *val && *val != '/')
		return why(w, -EINVAL, "must start with '/', or be empty to disable checks");
	if ((k->flags & KF_PATH) && has_space_or_ctl(val))
		return why(w, -EINVAL, "must not contain spaces or control characters");
	if ((k->flags & KF_TOKEN) && *val && !is_token(val))
		return why(w, -EINVAL, "expected a header name, or empty for none");
	free(*dst);
	*dst = *val ? rf_xstrdup(val) : NULL;
	return 0;
}

static int set_enum(const struct key_def *k, void *base, const char *val, struct why *w)
{
	size_t i, n;

	if (!enum_lookup(k->names, val, FIELD(base, k)))
		return 0;
	n = (size_t)snprintf(w->msg, sizeof w->msg, "expected one of:");
	for (i = 0; k->names[i] && n < sizeof w->msg; i++)
		n += (size_t)snprintf(w->msg + n, sizeof w->msg - n, " %s", k->names[i]);
	return -EINVAL;
}

static int set_addrs(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_addr *a = FIELD(base, k);
	uint32_t n = 0, i;
	int rc;

	/* the token buffer doubles as the "offending part" of the message */
	while ((rc = next_token(&val, w->tok, sizeof w->tok)) != 0) {
		if (rc < 0)
			return why(w, -EINVAL, "address too long");
		if (n == k->max) {
			w->tok[0] = 0;
			return why(w, -ERANGE, "at most %llu addresses", ULL(k->max));
		}
		rc = parse_addr(w->tok, &a[n], w);
		if (rc)
			return rc;
		for (i = 0; i < n; i++)   /* the second bind() would fail with EADDRINUSE */
			if (a[i].len == a[n].len && !memcmp(&a[i].ss, &a[n].ss, a[n].len))
				return why(w, -EINVAL, "listed twice");
		n++;
	}
	if (!n)
		return why(w, -EINVAL, "expected host:port, several separated by spaces");
	*(uint32_t *)((char *)base + k->aux) = n;
	return 0;
}

int set_value(const struct key_def *k, void *base, const char *val, struct why *w)
{
	uint64_t v;
	int rc;

	w->tok[0] = 0;
	w->msg[0] = 0;
	if (k->set)
		rc = k->set(k, base, val, w);
	else if (k->type == KT_STRING)
		rc = set_string(k, base, val, w);
	else if (k->type == KT_ENUM)
		rc = set_enum(k, base, val, w);
	else if (k->type == KT_ADDRS)
		rc = set_addrs(k, base, val, w);
	else if ((rc = parse_number(k, val, &v, w)) == 0)
		store_number(k, base, v);
	if (!rc)
		w->tok[0] = 0;
	return rc;
}

/* Options written after a server's address, NAME=N each. */
struct server_opt {
	const char *name;
	size_t off;             /* uint32_t field of struct rf_server_conf */
	uint32_t min, max;
	uint32_t bit;           /* RF_SRV_* */
};

static const struct server_opt server_opts[] = {
	{ "weight", offsetof(struct rf_server_conf, weight), WEIGHT_MIN, WEIGHT_MAX, RF_SRV_WEIGHT },
	{ "max_conns", offsetof(struct rf_server_conf, max_conns), 0, RF_MAX_CONNS_MAX,
	  RF_SRV_MAX_CONNS },
};

/* "NAME=N" after server <sv> (NULL: no address before it yet). Returns 0,
 * 1 when <tok> is not an option (an address), or -EINVAL / -ERANGE. */
static int server_option(struct rf_server_conf *sv, const char *tok, struct why *w)
{
	const struct server_opt *o;
	struct key_def kd = { .type = KT_U32 };
	size_t n;
	uint64_t v;
	int rc;

	for (o = server_opts; o < server_opts + ARRAY_SIZE(server_opts); o++) {
		n = strlen(o->name);
		if (!strncmp(tok, o->name, n) && tok[n] == '=')
			break;
	}
	if (o == server_opts + ARRAY_SIZE(server_opts))
		return 1;
	if (!sv)
		return why(w, -EINVAL, "%s= must follow a server address", o->name);
	if (sv->given & o->bit)
		return why(w, -EINVAL, "%s given twice for %s", o->name, sv->addr.text);
	kd.min = o->min;
	kd.max = o->max;
	rc = parse_number(&kd, tok + n + 1, &v, w);
	if (rc)
		return why(w, rc, "%s must be %u..%u", o->name, o->min, o->max);
	*(uint32_t *)((char *)sv + o->off) = (uint32_t)v;
	sv->given |= o->bit;
	return 0;
}

/* servers: "host:port [weight=N] [max_conns=N] host:port ...", options
 * apply to the server before them. */
int set_servers(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_upstream_conf *u = base;
	struct rf_server_conf *sv;
	const char *s = val;
	uint32_t cap = 0, n = 0, i;
	int rc;

	while (next_token(&s, w->tok, sizeof w->tok) != 0)
		cap++;     /* an upper bound: options are tokens too */
	sv = rf_xcalloc(cap, sizeof *sv);
	for (s = val; (rc = next_token(&s, w->tok, sizeof w->tok)) != 0; ) {
		if (rc < 0) {
			rc = why(w, -EINVAL, "too long");
		} else if ((rc = server_option(n ? &sv[n - 1] : NULL, w->tok, w)) == 1) {
			rc = parse_addr(w->tok, &sv[n].addr, w);
			n += !rc;
		}
		if (rc) {
			free(sv);
			return rc;
		}
	}
	if (!n) {
		free(sv);
		return why(w, -EINVAL, "expected at least one host:port");
	}
	for (i = 0; i < n; i++)
		sv[i].weight += !sv[i].weight;   /* default weight 1 */
	free(u->servers);
	u->servers = sv;
	u->nservers = n;
	return 0;
}

/* ---- the custom setters of [ratelimit], [tier] and routes ---- */

/* "COUNT/PERIOD": 100/60s, 5/m, 10/500ms; a bare unit means one (100/s);
 * a bare COUNT is per second. */
int set_rate(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_rate *r = FIELD(base, k);
	const char *end;
	char unit[32];
	uint64_t n, ms = 1000;
	int rc = parse_uint(val, &n, &end);

	if (rc || (*end && *end != '/'))
		return why(w, -EINVAL, "expected COUNT/PERIOD such as 100/60s, 20/m or 10/s");
	if (n < 1 || n > 1000000000)
		return why(w, -ERANGE, "COUNT must be 1..1000000000");
	if (*end == '/') {
		end++;
		if (*end >= '0' && *end <= '9') {
			rc = config_parse_duration_ms(end, &ms);
		} else if (*end && strlen(end) < sizeof unit - 1) {
			snprintf(unit, sizeof unit, "1%s", end);
			rc = config_parse_duration_ms(unit, &ms);
		} else {
			rc = -EINVAL;
		}
		if (rc || !ms)
			return why(w, -EINVAL, "PERIOD must be a duration such as 60s, 1m or 500ms");
		if (ms > RL_PERIOD_MAX_MS)
			return why(w, -ERANGE, "PERIOD must be at most 30 days");
	}
	r->count = (uint32_t)n;
	r->period_ms = (uint32_t)ms;
	return 0;
}

/* A route's own rate: empty keeps the [ratelimit] one. */
int set_route_rate(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_rate *r = FIELD(base, k);

	if (!*val) {
		r->count = 0;
		r->period_ms = 0;
		return 0;
	}
	return set_rate(k, base, val, w);
}

/* key = ip | ip+path | header:NAME */
int set_rl_key(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_ratelimit_conf *rc = base;

	if (!strcmp(val, "ip")) {
		rc->key = RF_RL_KEY_IP;
	} else if (!strcmp(val, "ip+path")) {
		rc->key = RF_RL_KEY_IP_PATH;
	} else if (!strncmp(val, "header:", 7) && is_token(val + 7) &&
		   strlen(val + 7) < sizeof rc->key_header) {
		rc->key = RF_RL_KEY_HEADER;
		memcpy(rc->key_header, val + 7, strlen(val + 7) + 1);
	} else {
		return why(w, -EINVAL, "expected ip, ip+path or header:NAME (NAME a header name "
			   "of at most %d characters)", (int)sizeof rc->key_header - 1);
	}
	return 0;
}

/* retry_on: space-separated conditions, or "none". */
int set_retry_on(const struct key_def *k, void *base, const char *val, struct why *w)
{
	static const struct { const char *name; uint32_t bit; } conds[] = {
		{ "connect-failure", RF_RETRY_CONNECT }, { "empty-response", RF_RETRY_EMPTY },
		{ "429", RF_RETRY_429 }, { "502", RF_RETRY_502 }, { "503", RF_RETRY_503 },
		{ "504", RF_RETRY_504 }, { "response-timeout", RF_RETRY_TIMEOUT }, { "none", 0 },
	};
	struct rf_upstream_conf *u = base;
	char tok[32];
	size_t i;

	u->retry_on = 0;
	while (next_token(&val, tok, sizeof tok)) {
		for (i = 0; i < ARRAY_SIZE(conds) && strcmp(tok, conds[i].name); i++)
			;
		if (i == ARRAY_SIZE(conds))
			return why(w, -EINVAL, "unknown condition '%s' (connect-failure, "
				   "empty-response, response-timeout, 429, 502, 503, 504 or none)",
				   tok);
		u->retry_on |= conds[i].bit;
	}
	return 0;
}

/* An address list that may be empty (= off). */
int set_opt_addrs(const struct key_def *k, void *base, const char *val, struct why *w)
{
	if (*val)
		return set_addrs(k, base, val, w);
	*(uint32_t *)((char *)base + k->aux) = 0;
	return 0;
}

/* config.c - the INI loader. One table row per key drives parsing, defaults,
 * bounds checks, config_free() and config_dump_keys(); [route] has free-form
 * keys and is resolved against the upstreams once the whole file is read. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>

#include "common.h"
#include "config.h"
#include "ratelimit.h"

#define CONFIG_MAX_FILE (1u << 20)   /* no real config is this big: refuse garbage */
#define WEIGHT_MIN      1
#define WEIGHT_MAX      1000
#define DAY_MS          86400000u

enum key_type {
	KT_U32,         /* plain number, stored uint32_t */
	KT_SIZE32,      /* bytes with optional k/m/g suffix, stored uint32_t */
	KT_SIZE64,      /* same, stored uint64_t */
	KT_MS,          /* duration (ms/s/m/h, bare = seconds), stored uint32_t ms */
	KT_STRING,      /* owned char *, empty -> NULL */
	KT_ENUM,        /* one of names[] -> uint32_t index */
	KT_ADDRS,       /* host:port list into struct rf_addr[max], count at aux */
	KT_CUSTOM,      /* only ->set knows the storage */
};

#define KF_OWNED 1u     /* field is a malloc'd pointer that config_free() frees */
#define KF_AUTO  2u     /* number that also takes "auto", stored as 0 */
#define KF_POW2  4u     /* number that must be a power of two */
#define KF_PATH  8u     /* string that is empty or an absolute URL path */

/* What a value parser says about a bad value: the offending token (when it
 * is not the whole value) and the text for the parentheses. */
struct why {
	char tok[96];
	char msg[160];
};

struct key_def;
typedef int (*set_fn)(const struct key_def *k, void *base, const char *val, struct why *w);

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;                  /* target field in the section's struct */
	uint64_t min, max;           /* bounds for numbers, count for KT_ADDRS */
	const char *def;             /* default, parsed like user input; NULL = required */
	const char *help;
	const char *const *names;    /* KT_ENUM: NULL terminated */
	size_t aux;                  /* KT_ADDRS: offset of the uint32_t count */
	set_fn set;                  /* replaces the type's parser */
	unsigned flags;
};

struct parser;

enum { SEC_SERVER, SEC_UPSTREAM, SEC_ROUTE, SEC_ADMIN, SEC_RATELIMIT, SEC_TIER, SEC_API_KEYS,
       SEC_CACHE, SEC_COUNT };

struct section_def {
	const char *name;
	int named;                   /* header carries a name: [upstream app] */
	const struct key_def *keys;  /* NULL: free-form keys, handled by ->entry */
	size_t nkeys;
	const char *help;
	int (*begin)(struct parser *p, const char *arg);    /* NULL: rows write into cfg */
	int (*entry)(struct parser *p, const char *key, const char *val);
	int (*end)(struct parser *p);
	const char *example;         /* for config_dump_keys(): a name if named, else lines */
};

struct parser {
	const char *name;            /* file name for messages */
	char *err;
	size_t errlen;
	struct rf_config *cfg;
	int line;
	const struct section_def *sec;   /* NULL before the first header */
	void *base;                  /* struct the current section's rows point into */
	int sec_line;
	int key_line[32];            /* where each row was given in this section, 0 = not */
	int first[SEC_COUNT];        /* first header line of each section, 0 = none yet */
	uint32_t up_cap, route_cap, name_cap;
	char **route_up;             /* upstream name per route, resolved at the end */
	uint32_t tier_cap, apikey_cap;
};

/* Compile-time check that a row's type matches the field it writes. */
#define OFF(st, f, T) (offsetof(st, f) + 0 * sizeof(char[_Generic(((st *)0)->f, T: 1)]))
#define SRV(f, T) OFF(struct rf_config, f, T)
#define UPS(f, T) OFF(struct rf_upstream_conf, f, T)
#define FIELD(base, k) ((void *)((char *)(base) + (k)->off))
#define ULL(x) ((unsigned long long)(x))

static const char *const balance_names[] = {
	"round_robin", "weighted", "least_conn", "ip_hash", "least_time",
	"adaptive", "random2", NULL,
};

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };

/* "FILE:LINE: message" (or "FILE: message" for line 0) into the caller's buffer. */
__attribute__((format(printf, 4, 5)))
static int perr(struct parser *p, int line, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->err || !p->errlen)
		return rc;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->name);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

__attribute__((format(printf, 3, 4)))
static int why(struct why *w, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof w->msg, fmt, ap);
	va_end(ap);
	return rc;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
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
static int has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 1;
	return 0;
}

/* Grow a boot-time array so that index n fits; new slots are zeroed. */
static void *grow(void *arr, uint32_t n, uint32_t *cap, size_t size)
{
	void *na;

	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 4;
	na = rf_xcalloc(*cap, size);
	if (n)
		memcpy(na, arr, (size_t)n * size);
	free(arr);
	return na;
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

static int set_string(const struct key_def *k, void *base, const char *val, struct why *w)
{
	char **dst = FIELD(base, k);

	/* KF_PATH values (health_path) go verbatim into a request line */
	if ((k->flags & KF_PATH) && *val && *val != '/')
		return why(w, -EINVAL, "must start with '/', or be empty to disable checks");
	if ((k->flags & KF_PATH) && has_space_or_ctl(val))
		return why(w, -EINVAL, "must not contain spaces or control characters");
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

static int set_value(const struct key_def *k, void *base, const char *val, struct why *w)
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

/* servers: "host:port [weight=N] host:port ...", weight applies to the server before it. */
static int set_servers(const struct key_def *k, void *base, const char *val, struct why *w)
{
	static const struct key_def weight = {
		.name = "weight", KT_U32, 0, WEIGHT_MIN, WEIGHT_MAX,
	};
	struct rf_upstream_conf *u = base;
	struct rf_server_conf *sv;
	const char *s = val;
	uint32_t cap = 0, n = 0, i;
	uint64_t v;
	int rc;

	while (next_token(&s, w->tok, sizeof w->tok) != 0)
		cap++;     /* an upper bound: weights are tokens too */
	sv = rf_xcalloc(cap, sizeof *sv);
	for (s = val; (rc = next_token(&s, w->tok, sizeof w->tok)) != 0; ) {
		if (rc < 0) {
			rc = why(w, -EINVAL, "too long");
		} else if (strncmp(w->tok, "weight=", 7) != 0) {
			rc = parse_addr(w->tok, &sv[n].addr, w);
			n += !rc;
		} else if (!n) {
			rc = why(w, -EINVAL, "weight= must follow a server address");
		} else if (sv[n - 1].weight) {
			rc = why(w, -EINVAL, "weight given twice for %s", sv[n - 1].addr.text);
		} else if ((rc = parse_number(&weight, w->tok + 7, &v, w)) != 0) {
			why(w, rc, "weight must be %d..%d", WEIGHT_MIN, WEIGHT_MAX);
		} else {
			sv[n - 1].weight = (uint32_t)v;
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

/* ---- the tables: after .name come type, offset, min, max, default, help ---- */

static const struct key_def server_keys[] = {
	{ .name = "listen", KT_ADDRS, offsetof(struct rf_config, listen), 1, RF_MAX_LISTEN,
	  "0.0.0.0:8080",
	  "where clients connect: host:port, [IPv6]:port or *:port, several separated by spaces",
	  .aux = SRV(nlisten, uint32_t) },
	{ .name = "workers", KT_U32, SRV(workers, uint32_t), 1, 256, "auto",
	  "worker threads, each with its own io_uring: auto = one per online CPU, or 1..256",
	  .flags = KF_AUTO },
	{ .name = "max_connections", KT_U32, SRV(max_connections, uint32_t), 1, 1000000, "10000",
	  "most client connections open at once; more are refused" },
	{ .name = "header_timeout", KT_MS, SRV(header_timeout_ms, uint32_t), 1, DAY_MS, "10s",
	  "the whole request head must arrive within this time (slowloris)" },
	{ .name = "keepalive_timeout", KT_MS, SRV(keepalive_timeout_ms, uint32_t), 1, DAY_MS, "75s",
	  "an idle client connection is closed after this long between requests" },
	{ .name = "shutdown_timeout", KT_MS, SRV(shutdown_timeout_ms, uint32_t), 0, DAY_MS, "10s",
	  "on graceful stop, in-flight requests get this long to finish" },
	{ .name = "max_header_size", KT_SIZE32, SRV(max_header_size, uint32_t), 1 << 10, 64 << 10,
	  "8k", "largest request head (request line + headers), 1k..64k; beyond -> 431" },
	{ .name = "max_uri_size", KT_SIZE32, SRV(max_uri_size, uint32_t), 256, 64 << 10, "4k",
	  "longest request target, 256..64k and at most max_header_size; beyond -> 414" },
	{ .name = "max_body_size", KT_SIZE64, SRV(max_body_size, uint64_t), 0, UINT64_MAX, "0",
	  "largest request body, e.g. 10m; 0 = unlimited; beyond -> 413" },
	{ .name = "recv_buffers", KT_U32, SRV(recv_buffers, uint32_t), 64, 32768, "1024",
	  "receive buffers per worker, a power of two from 64 to 32768 (io_uring buffer ring)",
	  .flags = KF_POW2 },
	{ .name = "recv_buffer_size", KT_SIZE32, SRV(recv_buffer_size, uint32_t), 4 << 10, 1 << 20,
	  "16k", "size of each receive buffer, 4k..1m" },
	{ .name = "log_level", KT_ENUM, SRV(log_level, uint32_t), 0, 0, "info",
	  "error, warn, info or debug", .names = log_level_names },
	{ .name = "log_file", KT_STRING, SRV(log_file, char *), 0, 0, "",
	  "error log file; empty = stderr" },
	{ .name = "access_log", KT_STRING, SRV(access_log, char *), 0, 0, "",
	  "access log file, one line per request; empty = off" },
	{ .name = "user", KT_STRING, SRV(user, char *), 0, 0, "",
	  "started as root: switch to this user once the listeners are bound; empty = stay" },
	{ .name = "group", KT_STRING, SRV(group, char *), 0, 0, "",
	  "group to switch to with user; empty = the user's primary group" },
};

#define ADM(f, T) OFF(struct rf_admin_conf, f, T)

static const struct key_def admin_keys[] = {
	{ .name = "listen", KT_ADDRS, offsetof(struct rf_admin_conf, listen), 1, 1,
	  "127.0.0.1:9090",
	  "where the admin API listens (JSON over HTTP); keep it on loopback or set a token",
	  .aux = ADM(nlisten, uint32_t) },
	{ .name = "token", KT_STRING, ADM(token, char *), 0, 0, "",
	  "bearer token every admin request must carry; required off loopback" },
	{ .name = "max_body", KT_SIZE64, ADM(max_body, uint64_t), 1 << 10, 64 << 20, "1m",
	  "largest admin request body; beyond -> 413" },
};

static const char *const fail_5xx_names[] = { "off", "on", NULL };

static const struct key_def upstream_keys[] = {
	{ .name = "servers", KT_CUSTOM, UPS(servers, struct rf_server_conf *), 0, 0, NULL,
	  "backends as host:port, space separated; weight=N (1..1000) after one weighs it",
	  .set = set_servers, .flags = KF_OWNED },
	{ .name = "balance", KT_ENUM, UPS(balance, uint32_t), 0, 0, "round_robin",
	  "round_robin, weighted, least_conn, ip_hash, least_time, adaptive or random2",
	  .names = balance_names },
	{ .name = "health_path", KT_STRING, UPS(health_path, char *), 0, 0, "/health",
	  "path probed with GET for active health checks; empty = no active checks",
	  .flags = KF_PATH },
	{ .name = "health_interval", KT_MS, UPS(health_interval_ms, uint32_t), 1, DAY_MS, "5s",
	  "time between two health checks of one server" },
	{ .name = "health_timeout", KT_MS, UPS(health_timeout_ms, uint32_t), 1, DAY_MS, "2s",
	  "a health check without a full answer within this time fails" },
	{ .name = "fall", KT_U32, UPS(fall, uint32_t), 1, 100, "3",
	  "consecutive failed checks that mark a server down, 1..100" },
	{ .name = "rise", KT_U32, UPS(rise, uint32_t), 1, 100, "2",
	  "consecutive good checks that mark a down server up again, 1..100" },
	{ .name = "max_retries", KT_U32, UPS(max_retries, uint32_t), 0, 10, "1",
	  "times a failed idempotent request is tried on another server, 0..10" },
	{ .name = "keepalive", KT_U32, UPS(keepalive, uint32_t), 0, 10000, "32",
	  "idle pooled connections kept per server per worker, 0..10000 (0 = no reuse)" },
	{ .name = "connect_timeout", KT_MS, UPS(connect_timeout_ms, uint32_t), 1, DAY_MS, "5s",
	  "a backend connection must be established within this time" },
	{ .name = "response_timeout", KT_MS, UPS(response_timeout_ms, uint32_t), 1, DAY_MS, "60s",
	  "a backend silent for this long gets the request a 504" },
	{ .name = "slow_start", KT_MS, UPS(slow_start_ms, uint32_t), 0, 3600000, "0s",
	  "a server back from down, ejection or an open circuit ramps its weight up over this; 0 = at once" },
	{ .name = "max_ejection_percent", KT_U32, UPS(max_ejection_percent, uint32_t), 0, 100, "50",
	  "at most this percent of the servers (rounded down) are ejected at once, 0..100" },
	{ .name = "eject_after", KT_U32, UPS(eject_after, uint32_t), 0, 63, "5",
	  "consecutive failures of real traffic that eject a server, 0..63 (0 = never)" },
	{ .name = "eject_time", KT_MS, UPS(eject_time_ms, uint32_t), 100, 300000, "10s",
	  "first ejection; doubles per repeat up to 300s, then one request probes the server" },
	{ .name = "fail_on_5xx", KT_ENUM, UPS(fail_on_5xx, uint32_t), 0, 0, "off",
	  "on: a 5xx response counts as a failure for ejection and the circuit breaker",
	  .names = fail_5xx_names },
	{ .name = "circuit_failures", KT_U32, UPS(circuit_failures, uint32_t), 0, 63, "5",
	  "consecutive failures that open a server's circuit, 0..63 (0 = no circuit breaker)" },
	{ .name = "circuit_open_time", KT_MS, UPS(circuit_open_time_ms, uint32_t), 100, 1800000,
	  "10s", "an open circuit passes no traffic for this long, then turns half-open" },
	{ .name = "circuit_half_open_requests", KT_U32, UPS(circuit_half_open_requests, uint32_t),
	  1, 15, "1", "trial requests a half-open circuit lets through, 1..15" },
	{ .name = "retry_budget", KT_U32, UPS(retry_budget, uint32_t), 0, 100, "20",
	  "retries stay under this percent of recent attempts (plus 10 per 5s), 0..100 (0 = none)" },
};

_Static_assert(ARRAY_SIZE(server_keys) <= 32, "parser.key_line is too small");
_Static_assert(ARRAY_SIZE(upstream_keys) <= 32, "parser.key_line is too small");

/* ---- [ratelimit], [tier NAME], [api_keys] ---- */

#define RLC(f, T) OFF(struct rf_ratelimit_conf, f, T)
#define TIER(f, T) OFF(struct rf_tier_conf, f, T)
#define RL_PERIOD_MAX_MS (30ull * DAY_MS)
#define RL_API_KEY_MAX 127      /* rl_clients.h RL_ID_MAX - 1 */

static const char *const off_on_names[] = { "off", "on", NULL };
static const char *const table_full_names[] = { "allow", "deny", NULL };

/* "COUNT/PERIOD": 100/60s, 5/m, 10/500ms; a bare unit means one (100/s);
 * a bare COUNT is per second. */
static int set_rate(const struct key_def *k, void *base, const char *val, struct why *w)
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

/* HTTP field-name characters (RFC 9110 tchar). */
static int is_token(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789!#$%&'*+-.^_`|~") == strlen(s);
}

/* key = ip | ip+path | header:NAME */
/* A route's own rate: empty keeps the [ratelimit] one. */
static int set_route_rate(const struct key_def *k, void *base, const char *val, struct why *w)
{
	struct rf_rate *r = FIELD(base, k);

	if (!*val) {
		r->count = 0;
		r->period_ms = 0;
		return 0;
	}
	return set_rate(k, base, val, w);
}

static int set_rl_key(const struct key_def *k, void *base, const char *val, struct why *w)
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

/* An address list that may be empty (= off). */
static int set_opt_addrs(const struct key_def *k, void *base, const char *val, struct why *w)
{
	if (*val)
		return set_addrs(k, base, val, w);
	*(uint32_t *)((char *)base + k->aux) = 0;
	return 0;
}

static const struct key_def ratelimit_keys[] = {
	{ .name = "rate", KT_CUSTOM, RLC(rate, struct rf_rate), 0, 0, "100/60s",
	  "tokens per period for each key, e.g. 100/60s, 20/m or 10/s; with key = header:NAME "
	  "the per-address limit that applies besides an API key's tier", .set = set_rate },
	{ .name = "burst", KT_U32, RLC(burst, uint32_t), 0, 100000000, "100",
	  "requests admitted at once from a full bucket; 0 = the rate's COUNT" },
	{ .name = "key", KT_CUSTOM, RLC(key, uint32_t), 0, 0, "ip",
	  "what a bucket belongs to: ip, ip+path or header:NAME (e.g. header:X-API-Key)",
	  .set = set_rl_key },
	{ .name = "listen", KT_ADDRS, offsetof(struct rf_ratelimit_conf, listen), 1, 1, "",
	  "line protocol (\"<key>\\n\" -> \"OK\\n\" | \"ERROR\\n\") on host:port; empty = off",
	  .aux = RLC(nlisten, uint32_t), .set = set_opt_addrs },
	{ .name = "max_keys", KT_U32, RLC(max_keys, uint32_t), 64, 100000000, "1000000",
	  "keys tracked at once, 8 bytes each, 64..100000000" },
	{ .name = "table_full", KT_ENUM, RLC(table_full, uint32_t), 0, 0, "allow",
	  "a new key when max_keys live keys fill its bucket: allow (fail open) or deny",
	  .names = table_full_names },
	{ .name = "ban_after", KT_U32, RLC(ban_after, uint32_t), 0, 1000, "0",
	  "consecutive rejections that ban a key, 0..1000; 0 = no bans" },
	{ .name = "ban_time", KT_MS, RLC(ban_time_ms, uint32_t), 1000, 30 * DAY_MS, "300s",
	  "length of a first ban, 1s..30 days" },
	{ .name = "ban_multiplier", KT_U32, RLC(ban_multiplier, uint32_t), 1, 16, "2",
	  "each repeated ban of a key lasts this many times longer, 1..16" },
	{ .name = "rate_limit_headers", KT_ENUM, RLC(headers, uint32_t), 0, 0, "on",
	  "RateLimit-Limit/-Remaining/-Reset/-Policy on responses of limited routes: on or off",
	  .names = off_on_names },
	{ .name = "require_key", KT_ENUM, RLC(require_key, uint32_t), 0, 0, "off",
	  "on: a request without a known API key (key = header:NAME) gets 401",
	  .names = off_on_names },
};

static const struct key_def tier_keys[] = {
	{ .name = "rate", KT_CUSTOM, TIER(rate, struct rf_rate), 0, 0, NULL,
	  "tokens per period for API keys of this tier, e.g. 5/m", .set = set_rate },
	{ .name = "burst", KT_U32, TIER(burst, uint32_t), 0, 100000000, "0",
	  "requests admitted at once from a full bucket; 0 = the rate's COUNT" },
};

_Static_assert(ARRAY_SIZE(ratelimit_keys) <= 32, "parser.key_line is too small");
_Static_assert(ARRAY_SIZE(tier_keys) <= 32, "parser.key_line is too small");

static int apply_defaults(struct parser *p, const struct key_def *keys, size_t n, void *base)
{
	struct why w;
	size_t i;

	for (i = 0; i < n; i++)
		if (keys[i].def && set_value(&keys[i], base, keys[i].def, &w))
			return perr(p, 0, -EINVAL, "internal error: bad default for '%s': '%s' (%s)",
				    keys[i].name, keys[i].def, w.msg);
	return 0;
}

static void free_owned(const struct key_def *keys, size_t n, void *base)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (keys[i].type == KT_STRING || (keys[i].flags & KF_OWNED))
			rf_free((void **)FIELD(base, &keys[i]));
}

/* ---- sections ---- */

static const char *sec_label(const struct parser *p, char *buf, size_t n)
{
	if (p->sec->named)
		snprintf(buf, n, "[%s %s]", p->sec->name,
			 ((const struct rf_upstream_conf *)p->base)->name);
	else
		snprintf(buf, n, "[%s]", p->sec->name);
	return buf;
}

static const struct key_def *find_key(const struct section_def *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++)
		if (!strcmp(s->keys[i].name, name))
			return &s->keys[i];
	return NULL;
}

static int server_end(struct parser *p)
{
	const struct section_def *s = p->sec;
	struct rf_config *c = p->cfg;
	int line;

	if (c->max_uri_size <= c->max_header_size)
		return 0;
	/* blame whichever of the two the file set, the uri first */
	line = p->key_line[find_key(s, "max_uri_size") - s->keys];
	if (!line)
		line = p->key_line[find_key(s, "max_header_size") - s->keys];
	return perr(p, line ? line : p->sec_line, -EINVAL,
		    "max_uri_size (%u) must not exceed max_header_size (%u)",
		    c->max_uri_size, c->max_header_size);
}

static int upstream_begin(struct parser *p, const char *name)
{
	struct rf_config *c = p->cfg;
	struct rf_upstream_conf *u;
	size_t len = strlen(name);
	uint32_t i;

	if (!len || len >= RF_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
		return perr(p, p->line, -EINVAL,
			    "bad upstream name '%s' (letters, digits, '_', '.', '-', at most %d)",
			    name, RF_NAME_MAX - 1);
	for (i = 0; i < c->nupstreams; i++)
		if (!strcmp(c->upstreams[i].name, name))
			return perr(p, p->line, -EINVAL, "duplicate upstream '%s' (first at line %d)",
				    name, c->upstreams[i].line);
	c->upstreams = grow(c->upstreams, c->nupstreams, &p->up_cap, sizeof *u);
	u = &c->upstreams[c->nupstreams++];   /* counted now so config_free sees it */
	memcpy(u->name, name, len + 1);
	u->line = p->line;
	p->base = u;
	return apply_defaults(p, upstream_keys, ARRAY_SIZE(upstream_keys), u);
}

static int admin_begin(struct parser *p, const char *arg)
{
	p->base = &p->cfg->admin;
	p->cfg->admin.enabled = 1;
	return apply_defaults(p, admin_keys, ARRAY_SIZE(admin_keys), &p->cfg->admin);
}

/* An API that changes routing must not be open to the network unguarded. */
static int admin_end(struct parser *p)
{
	const struct rf_admin_conf *a = &p->cfg->admin;
	const struct sockaddr_storage *ss = &a->listen[0].ss;
	int loopback;

	if (a->token && *a->token)
		return 0;
	if (ss->ss_family == AF_INET)
		loopback = (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	else
		loopback = IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	if (loopback)
		return 0;
	return perr(p, p->sec_line, -EINVAL,
		    "[admin] listen = %s is not a loopback address: set a token",
		    a->listen[0].text);
}

/* "/prefix = upstream": checked here, resolved once all upstreams are known. */
#define RT(f, T) OFF(struct rf_route_conf, f, T)

static const char *const route_key_names[] = { "default", "ip", "ip+path", NULL };
static const char *const route_require_names[] = { "default", "off", "on", NULL };

/* Options after a route's upstream name, "name=value" each. */
static const struct key_def route_keys[] = {
	{ .name = "cache", KT_ENUM, RT(cache, uint32_t), 0, 0, "on",
	  "off: this route's responses are never cached (with a [cache] section)",
	  .names = off_on_names },
	{ .name = "cache_ttl", KT_MS, RT(cache_ttl_ms, uint32_t), 0, 30 * DAY_MS, "0",
	  "lifetime of responses without caching headers; 0 = [cache] default_ttl" },
	{ .name = "ratelimit", KT_ENUM, RT(ratelimit, uint32_t), 0, 0, "on",
	  "off: no rate limit on this route", .names = off_on_names },
	{ .name = "rate", KT_CUSTOM, RT(rate, struct rf_rate), 0, 0, "",
	  "this route's own limit, e.g. 10/1s; empty = the [ratelimit] one",
	  .set = set_route_rate },
	{ .name = "burst", KT_U32, RT(burst, uint32_t), 0, 100000000, "0",
	  "requests admitted at once on this route; 0 = the rate's COUNT" },
	{ .name = "key", KT_ENUM, RT(rl_key, uint32_t), 0, 0, "default",
	  "this route's bucket key: ip, ip+path, or default ([ratelimit] key)",
	  .names = route_key_names },
	{ .name = "require_key", KT_ENUM, RT(require_key, uint32_t), 0, 0, "default",
	  "on: no known API key gets 401 on this route (with [ratelimit] key = header:NAME); "
	  "off, or default ([ratelimit] require_key)", .names = route_require_names },
};

/* require_key=on needs the [ratelimit] API key header, which the route
 * must use: checked once the whole file is read. */
static int route_require_key_check(struct parser *p, const struct rf_route_conf *r)
{
	const struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;

	if (r->require_key != 2)
		return 0;
	if (!rc->enabled || rc->key != RF_RL_KEY_HEADER)
		return perr(p, r->line, -EINVAL, "route '%s': require_key=on needs a [ratelimit] "
			    "section with key = header:NAME", r->prefix);
	if (!r->ratelimit || r->rl_key)
		return perr(p, r->line, -EINVAL, "route '%s': require_key=on needs ratelimit=on "
			    "and the [ratelimit] key (no key=ip or key=ip+path)", r->prefix);
	return 0;
}

/* Split "upstream opt=value ..." and apply the options through the rows. */
static int route_options(struct parser *p, struct rf_route_conf *r, char *opts)
{
	struct why w;
	char *tok, *save = NULL, *eq;
	size_t i;

	for (tok = strtok_r(opts, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		eq = strchr(tok, '=');
		if (!eq)
			return perr(p, p->line, -EINVAL,
				    "route option '%s' is not name=value", tok);
		*eq = 0;
		for (i = 0; i < ARRAY_SIZE(route_keys) && strcmp(route_keys[i].name, tok); i++)
			;
		if (i == ARRAY_SIZE(route_keys))
			return perr(p, p->line, -EINVAL, "unknown route option '%s' (%s)", tok,
				    "cache, cache_ttl, ratelimit, rate, burst, key, require_key");
		if (set_value(&route_keys[i], r, eq + 1, &w))
			return perr(p, p->line, -EINVAL, "bad value for route option '%s': '%s' (%s)",
				    tok, eq + 1, w.msg);
	}
	return 0;
}

static int route_entry(struct parser *p, const char *key, const char *val)
{
	struct rf_config *c = p->cfg;
	struct rf_route_conf *r;
	char name[RF_NAME_MAX + 1], *opts;
	size_t nlen;
	uint32_t i;
	int rc;

	if (key[0] != '/')
		return perr(p, p->line, -EINVAL, "route prefix '%s' must start with '/'", key);
	if (has_space_or_ctl(key))
		return perr(p, p->line, -EINVAL,
			    "route prefix '%s' contains spaces or control characters", key);
	for (i = 0; i < c->nroutes; i++)
		if (!strcmp(c->routes[i].prefix, key))
			return perr(p, p->line, -EINVAL, "duplicate route '%s' (first at line %d)",
				    key, c->routes[i].line);
	if (!*val)
		return perr(p, p->line, -EINVAL, "route '%s' needs an upstream name", key);
	nlen = strcspn(val, " \t");
	if (nlen > RF_NAME_MAX)
		return perr(p, p->line, -EINVAL, "route '%s': upstream name too long", key);
	memcpy(name, val, nlen);
	name[nlen] = 0;
	c->routes = grow(c->routes, c->nroutes, &p->route_cap, sizeof *r);
	p->route_up = grow(p->route_up, c->nroutes, &p->name_cap, sizeof *p->route_up);
	p->route_up[c->nroutes] = rf_xstrdup(name);
	r = &c->routes[c->nroutes++];
	memset(r, 0, sizeof(*r));
	r->prefix = rf_xstrdup(key);
	r->line = p->line;
	rc = apply_defaults(p, route_keys, ARRAY_SIZE(route_keys), r);
	if (rc)
		return rc;
	opts = rf_xstrdup(val + nlen);
	rc = route_options(p, r, opts);
	free(opts);
	return rc;
}

static int ratelimit_begin(struct parser *p, const char *arg)
{
	struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;

	p->base = rc;
	rc->enabled = 1;
	rc->line = p->line;
	return apply_defaults(p, ratelimit_keys, ARRAY_SIZE(ratelimit_keys), rc);
}

/* The bucket word bounds burst x (period / rate): check with the same code.
 * "rate" is row 0 of both [ratelimit] and [tier]. */
static int rate_end(struct parser *p, const struct rf_rate *r, uint32_t burst)
{
	struct rl_policy pol;
	char label[RF_NAME_MAX + 32];
	int line = p->key_line[0] ? p->key_line[0] : p->sec_line;

	if (rl_policy_init(&pol, r->count, (uint64_t)r->period_ms * 1000, burst) == 0)
		return 0;
	return perr(p, line, -ERANGE, "%s: burst %u at %u per %ums refills over more than "
		    "a year; lower the burst or raise the rate", sec_label(p, label, sizeof label),
		    burst ? burst : r->count, r->count, r->period_ms);
}

static int ratelimit_end(struct parser *p)
{
	struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;
	int line;

	if (rc->require_key && rc->key != RF_RL_KEY_HEADER) {
		line = p->key_line[find_key(p->sec, "require_key") - p->sec->keys];
		return perr(p, line, -EINVAL, "require_key = on needs key = header:NAME");
	}
	return rate_end(p, &rc->rate, rc->burst);
}

static int tier_begin(struct parser *p, const char *name)
{
	struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;
	struct rf_tier_conf *t;
	size_t len = strlen(name);
	uint32_t i;

	if (!len || len >= RF_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
		return perr(p, p->line, -EINVAL,
			    "bad tier name '%s' (letters, digits, '_', '.', '-', at most %d)",
			    name, RF_NAME_MAX - 1);
	for (i = 0; i < rc->ntiers; i++)
		if (!strcmp(rc->tiers[i].name, name))
			return perr(p, p->line, -EINVAL, "duplicate tier '%s' (first at line %d)",
				    name, rc->tiers[i].line);
	rc->tiers = grow(rc->tiers, rc->ntiers, &p->tier_cap, sizeof *t);
	t = &rc->tiers[rc->ntiers++];
	memcpy(t->name, name, len + 1);
	t->line = p->line;
	p->base = t;
	return apply_defaults(p, tier_keys, ARRAY_SIZE(tier_keys), t);
}

static int tier_end(struct parser *p)
{
	const struct rf_tier_conf *t = p->base;

	return rate_end(p, &t->rate, t->burst);
}

/* "KEY = tiername": the tier is resolved once every [tier] is read. */
static int api_key_entry(struct parser *p, const char *key, const char *val)
{
	struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;
	struct rf_api_key_conf *a;
	size_t len = strlen(key);

	if (len > RL_API_KEY_MAX || has_space_or_ctl(key))
		return perr(p, p->line, -EINVAL, "API key '%.32s...' is longer than %d characters "
			    "or holds spaces or control characters", key, RL_API_KEY_MAX);
	if (!*val || strpbrk(val, " \t") || strlen(val) >= RF_NAME_MAX)
		return perr(p, p->line, -EINVAL, "API key '%s' takes one tier name, not '%s'",
			    key, val);
	rc->api_keys = grow(rc->api_keys, rc->napi_keys, &p->apikey_cap, sizeof *a);
	a = &rc->api_keys[rc->napi_keys++];
	a->key = rf_xstrdup(key);
	memcpy(a->tier_name, val, strlen(val) + 1);
	a->line = p->line;
	return 0;
}

static int cmp_api_key(const void *a, const void *b)
{
	const struct rf_api_key_conf *x = *(const struct rf_api_key_conf *const *)a;
	const struct rf_api_key_conf *y = *(const struct rf_api_key_conf *const *)b;
	int c = strcmp(x->key, y->key);

	return c ? c : x->line - y->line;
}

/* Whole-file checks: tiers and keys need [ratelimit], keys name real tiers
 * and appear once (sorted, so a long key list stays cheap to check). */
static int ratelimit_finish(struct parser *p)
{
	struct rf_ratelimit_conf *rc = &p->cfg->ratelimit;
	struct rf_api_key_conf **sorted;
	uint32_t i, j;
	int rc_ = 0;

	if (!rc->enabled && (rc->ntiers || rc->napi_keys))
		return perr(p, rc->ntiers ? rc->tiers[0].line : p->first[SEC_API_KEYS], -EINVAL,
			    "[%s] has no effect without a [ratelimit] section",
			    rc->ntiers ? "tier" : "api_keys");
	for (i = 0; i < rc->napi_keys; i++) {
		for (j = 0; j < rc->ntiers && strcmp(rc->tiers[j].name, rc->api_keys[i].tier_name); j++)
			;
		if (j == rc->ntiers)
			return perr(p, rc->api_keys[i].line, -EINVAL,
				    "API key '%s' names unknown tier '%s'", rc->api_keys[i].key,
				    rc->api_keys[i].tier_name);
		rc->api_keys[i].tier = j;
	}
	if (rc->napi_keys < 2)
		return 0;
	sorted = rf_xcalloc(rc->napi_keys, sizeof *sorted);
	for (i = 0; i < rc->napi_keys; i++)
		sorted[i] = &rc->api_keys[i];
	qsort(sorted, rc->napi_keys, sizeof *sorted, cmp_api_key);
	for (i = 1; i < rc->napi_keys && !rc_; i++)
		if (!strcmp(sorted[i - 1]->key, sorted[i]->key))
			rc_ = perr(p, sorted[i]->line, -EINVAL, "duplicate API key '%s' (first at "
				   "line %d)", sorted[i]->key, sorted[i - 1]->line);
	free(sorted);
	return rc_;
}

/* ---- [cache] ---- */

#define CCF(f, T) OFF(struct rf_cache_conf, f, T)

static const struct key_def cache_keys[] = {
	{ .name = "memory", KT_SIZE64, CCF(memory, uint64_t), 1 << 20, 1ull << 40, "64m",
	  "bytes the cache may hold, entries and index overhead included, split evenly "
	  "between the workers' shards; at least 1m" },
	{ .name = "max_object_size", KT_SIZE32, CCF(max_object_size, uint32_t), 1 << 10, 512 << 20,
	  "1m", "largest response (head + body) or Redis value stored, 1k..512m" },
	{ .name = "listen", KT_ADDRS, offsetof(struct rf_cache_conf, listen), 1, 1, "",
	  "Redis protocol (RESP2 and inline commands) on host:port over the same store; "
	  "empty = off", .aux = CCF(nlisten, uint32_t), .set = set_opt_addrs },
	{ .name = "default_ttl", KT_MS, CCF(default_ttl_ms, uint32_t), 0, 30 * DAY_MS, "0",
	  "lifetime given to cacheable responses that state none; 0 = store only responses "
	  "with explicit freshness (s-maxage, max-age, Expires)" },
	{ .name = "coalesce", KT_ENUM, CCF(coalesce, uint32_t), 0, 0, "on",
	  "on: concurrent misses of one key wait for a single backend request",
	  .names = off_on_names },
	{ .name = "sweep_interval", KT_MS, CCF(sweep_interval_ms, uint32_t), 10, 3600000, "1s",
	  "a background pass over each shard removes expired entries this often, 10ms..1h" },
};

_Static_assert(ARRAY_SIZE(cache_keys) <= 32, "parser.key_line is too small");

static int cache_begin(struct parser *p, const char *arg)
{
	struct rf_cache_conf *cc = &p->cfg->cache;

	p->base = cc;
	cc->enabled = 1;
	cc->line = p->line;
	return apply_defaults(p, cache_keys, ARRAY_SIZE(cache_keys), cc);
}

static int cache_end(struct parser *p)
{
	const struct rf_cache_conf *cc = &p->cfg->cache;
	const struct section_def *s = p->sec;
	int line;

	if (cc->max_object_size <= cc->memory / 4)
		return 0;
	line = p->key_line[find_key(s, "max_object_size") - s->keys];
	if (!line)
		line = p->key_line[find_key(s, "memory") - s->keys];
	return perr(p, line ? line : p->sec_line, -EINVAL,
		    "[cache] max_object_size (%u) must be at most a quarter of memory (%llu)",
		    cc->max_object_size, ULL(cc->memory));
}

static const struct section_def sections[SEC_COUNT] = {
	[SEC_SERVER] = { "server", 0, server_keys, ARRAY_SIZE(server_keys),
		"listening sockets, workers, limits and logging",
		NULL, NULL, server_end },
	[SEC_UPSTREAM] = { "upstream", 1, upstream_keys, ARRAY_SIZE(upstream_keys),
		"a named group of backend servers, one section per group: [upstream NAME]",
		upstream_begin, NULL, NULL },
	[SEC_ROUTE] = { "route", 0, NULL, 0,
		"path prefix = upstream name; the longest matching prefix wins, no match -> 404",
		NULL, route_entry, NULL,
		.example = "; / = app\n; /api = app cache=off cache_ttl=10s ratelimit=on rate=10/1s burst=5 key=ip+path\n" },
	[SEC_ADMIN] = { "admin", 0, admin_keys, ARRAY_SIZE(admin_keys),
		"the admin API: stats, metrics, dashboard and run-time changes",
		admin_begin, NULL, admin_end },
	[SEC_RATELIMIT] = { "ratelimit", 0, ratelimit_keys, ARRAY_SIZE(ratelimit_keys),
		"admission control, on when the section is present: a token bucket per key, "
		"bans, the line protocol",
		ratelimit_begin, NULL, ratelimit_end },
	[SEC_TIER] = { "tier", 1, tier_keys, ARRAY_SIZE(tier_keys),
		"a named limit for API keys, one section per tier: [tier NAME]",
		tier_begin, NULL, tier_end, .example = "free" },
	[SEC_API_KEYS] = { "api_keys", 0, NULL, 0,
		"API key = tier name (key = header:NAME); other keys get only the address limit",
		NULL, api_key_entry, NULL, .example = "; demo-free-key = free\n" },
	[SEC_CACHE] = { "cache", 0, cache_keys, ARRAY_SIZE(cache_keys),
		"the response cache, on when the section is present: stores what HTTP allows "
		"on every route; optional Redis-protocol port over the same store",
		cache_begin, NULL, cache_end },
};

/* Required keys and cross-key checks run when a section is complete. */
static int end_section(struct parser *p)
{
	const struct section_def *s = p->sec;
	char label[RF_NAME_MAX + 32];
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < s->nkeys; i++)
		if (!s->keys[i].def && !p->key_line[i])
			return perr(p, p->sec_line, -EINVAL, "missing required key '%s' in %s",
				    s->keys[i].name, sec_label(p, label, sizeof label));
	return s->end ? s->end(p) : 0;
}

static int parse_header(struct parser *p, char *s)
{
	char *close = strchr(s, ']'), *rest, *word, *arg;
	size_t i;
	int rc;

	if (!close)
		return perr(p, p->line, -EINVAL, "unterminated section header '%s'", s);
	rest = trim(close + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return perr(p, p->line, -EINVAL, "unexpected text after section header: '%s'", rest);
	*close = 0;
	word = trim(s + 1);
	for (arg = word; *arg && !is_ws(*arg); arg++)
		;
	if (*arg)
		*arg++ = 0;
	arg = trim(arg);

	rc = end_section(p);
	if (rc)
		return rc;
	for (i = 0; i < SEC_COUNT && strcmp(sections[i].name, word); i++)
		;
	if (i == SEC_COUNT)
		return perr(p, p->line, -EINVAL, "unknown section [%s]", word);
	if (sections[i].named && !*arg)
		return perr(p, p->line, -EINVAL, "section [%s] needs a name, e.g. [%s app]",
			    word, word);
	if (!sections[i].named && *arg)
		return perr(p, p->line, -EINVAL, "section [%s] takes no name", word);
	/* a second [server] would make "duplicate key" depend on section order */
	if (!sections[i].named && p->first[i])
		return perr(p, p->line, -EINVAL, "duplicate section [%s] (first at line %d)",
			    word, p->first[i]);
	if (!p->first[i])
		p->first[i] = p->line;
	p->sec = &sections[i];
	p->sec_line = p->line;
	p->base = p->cfg;
	memset(p->key_line, 0, sizeof p->key_line);
	return p->sec->begin ? p->sec->begin(p, arg) : 0;
}

/* Strip an optional pair of quotes, else a comment that starts after
 * whitespace, then surrounding whitespace. */
static int clean_value(struct parser *p, const char *key, char *v, char **out)
{
	char *c, *rest;

	while (is_ws(*v))
		v++;
	if (*v == '"') {
		c = strchr(v + 1, '"');
		if (!c)
			return perr(p, p->line, -EINVAL, "unterminated quote in value of '%s'", key);
		rest = trim(c + 1);
		if (*rest && *rest != ';' && *rest != '#')
			return perr(p, p->line, -EINVAL,
				    "unexpected text after closing quote in value of '%s': '%s'",
				    key, rest);
		*c = 0;
		*out = v + 1;
		return 0;
	}
	for (c = v; *c; c++) {
		if ((*c == ';' || *c == '#') && (c == v || is_ws(c[-1]))) {
			*c = 0;
			break;
		}
	}
	*out = trim(v);
	return 0;
}

static int parse_line(struct parser *p, char *s)
{
	const struct key_def *k;
	char label[RF_NAME_MAX + 32], *eq, *key, *val = NULL;
	struct why w;
	size_t idx;
	int rc;

	if (p->line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
		s += 3;   /* UTF-8 byte order mark from some editors */
	s = trim(s);
	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return parse_header(p, s);
	eq = strchr(s, '=');
	if (!eq)
		return perr(p, p->line, -EINVAL, "missing '=' in '%s' (expected key = value)", s);
	*eq = 0;
	key = trim(s);
	if (!*key)
		return perr(p, p->line, -EINVAL, "missing key before '='");
	rc = clean_value(p, key, eq + 1, &val);
	if (rc)
		return rc;
	if (!p->sec)
		return perr(p, p->line, -EINVAL, "key '%s' outside of any section", key);
	if (p->sec->entry)
		return p->sec->entry(p, key, val);

	k = find_key(p->sec, key);
	if (!k)
		return perr(p, p->line, -EINVAL, "unknown key '%s' in %s", key,
			    sec_label(p, label, sizeof label));
	idx = (size_t)(k - p->sec->keys);
	if (p->key_line[idx])
		return perr(p, p->line, -EINVAL, "duplicate key '%s' in %s", key,
			    sec_label(p, label, sizeof label));
	p->key_line[idx] = p->line;
	rc = set_value(k, p->base, val, &w);
	if (rc)
		return perr(p, p->line, rc, rc == -ERANGE ? "'%s' out of range: '%s' (%s)" :
			    "bad value for '%s': '%s' (%s)", key, w.tok[0] ? w.tok : val, w.msg);
	return 0;
}

/* Whole-file checks: routes name real upstreams, sorted longest prefix first. */
static int finish(struct parser *p)
{
	struct rf_config *c = p->cfg;
	struct rf_route_conf tmp;
	uint32_t i, j;

	if (!c->nupstreams)
		return perr(p, 0, -EINVAL, "no [upstream] section");
	for (i = 0; i < c->nroutes; i++) {
		for (j = 0; j < c->nupstreams && strcmp(c->upstreams[j].name, p->route_up[i]); j++)
			;
		if (j == c->nupstreams)
			return perr(p, c->routes[i].line, -EINVAL,
				    "route '%s' names unknown upstream '%s'",
				    c->routes[i].prefix, p->route_up[i]);
		c->routes[i].upstream = j;
		if (route_require_key_check(p, &c->routes[i]))
			return -EINVAL;
	}
	if (!p->first[SEC_ROUTE]) {
		/* nothing would ever reach the others: surely a mistake */
		if (c->nupstreams > 1)
			return perr(p, 0, -EINVAL,
				    "%u upstreams but no [route] section to choose between them",
				    c->nupstreams);
		c->routes = rf_xcalloc(1, sizeof *c->routes);
		c->routes[0].prefix = rf_xstrdup("/");
		c->nroutes = 1;
		if (apply_defaults(p, route_keys, ARRAY_SIZE(route_keys), &c->routes[0]))
			return -EINVAL;
	}
	/* insertion sort: stable, so equal lengths keep file order */
	for (i = 1; i < c->nroutes; i++) {
		tmp = c->routes[i];
		for (j = i; j > 0 && strlen(c->routes[j - 1].prefix) < strlen(tmp.prefix); j--)
			c->routes[j] = c->routes[j - 1];
		c->routes[j] = tmp;
	}
	return 0;
}

int config_parse(const char *name, const char *text, size_t len,
		 struct rf_config **out, char *err, size_t errlen)
{
	struct parser p = { .name = name, .err = err, .errlen = errlen };
	const char *nul = memchr(text, 0, len);
	char *buf, *line, *next;
	uint32_t i;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	p.cfg = rf_xcalloc(1, sizeof *p.cfg);
	p.cfg->path = rf_xstrdup(name);
	rc = apply_defaults(&p, server_keys, ARRAY_SIZE(server_keys), p.cfg);
	if (!rc && nul) {
		for (i = 1; text < nul; text++)
			i += *text == '\n';
		rc = perr(&p, (int)i, -EINVAL, "NUL byte (not a text file?)");
	}
	if (!rc) {
		buf = rf_xstrndup(text, len);
		for (line = buf; line && !rc; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			p.line++;
			rc = parse_line(&p, line);
		}
		free(buf);
	}
	if (!rc)
		rc = end_section(&p);
	if (!rc)
		rc = finish(&p);
	if (!rc)
		rc = ratelimit_finish(&p);

	for (i = 0; p.route_up && i < p.cfg->nroutes; i++)
		free(p.route_up[i]);
	free(p.route_up);
	if (rc) {
		config_free(p.cfg);
		return rc;
	}
	*out = p.cfg;
	return 0;
}

int config_load(const char *path, struct rf_config **out, char *err, size_t errlen)
{
	struct parser p = { .name = path, .err = err, .errlen = errlen };
	FILE *f = fopen(path, "re");
	int rc = errno;
	char *buf;
	size_t len;

	*out = NULL;
	if (!f)
		return perr(&p, 0, -rc, "cannot open: %s", strerror(rc));
	buf = rf_xcalloc(1, CONFIG_MAX_FILE + 1);   /* +1 tells "too big" from "exactly the limit" */
	errno = 0;
	len = fread(buf, 1, CONFIG_MAX_FILE + 1, f);
	rc = errno ? errno : EIO;
	if (ferror(f))
		rc = perr(&p, 0, -rc, "cannot read: %s", strerror(rc));
	else if (len > CONFIG_MAX_FILE)
		rc = perr(&p, 0, -EFBIG, "larger than %u bytes", CONFIG_MAX_FILE);
	else
		rc = config_parse(path, buf, len, out, err, errlen);
	free(buf);
	fclose(f);
	return rc;
}

void config_free(struct rf_config *cfg)
{
	uint32_t i;

	if (!cfg)
		return;
	free_owned(server_keys, ARRAY_SIZE(server_keys), cfg);
	free_owned(admin_keys, ARRAY_SIZE(admin_keys), &cfg->admin);
	for (i = 0; i < cfg->nupstreams; i++)
		free_owned(upstream_keys, ARRAY_SIZE(upstream_keys), &cfg->upstreams[i]);
	free(cfg->upstreams);
	for (i = 0; i < cfg->nroutes; i++)
		free(cfg->routes[i].prefix);
	free(cfg->routes);
	for (i = 0; i < cfg->ratelimit.napi_keys; i++)
		free(cfg->ratelimit.api_keys[i].key);
	free(cfg->ratelimit.api_keys);
	free(cfg->ratelimit.tiers);
	free(cfg->path);
	free(cfg);
}

void config_dump_keys(FILE *out)
{
	const struct section_def *s;
	const struct key_def *k;
	size_t i, j;

	for (i = 0; i < SEC_COUNT; i++) {
		s = &sections[i];
		fprintf(out, "%s[%s%s%s]\n; %s\n", i ? "\n" : "", s->name, s->named ? " " : "",
			s->named ? (s->example ? s->example : "app") : "", s->help);
		if (!s->keys)
			fprintf(out, "%s", s->example ? s->example : "; /api = app\n; / = app\n");
		for (j = 0; j < s->nkeys; j++) {
			k = &s->keys[j];
			fprintf(out, "\n; %s\n", k->help);
			if (k->def)
				fprintf(out, "%s =%s%s\n", k->name, *k->def ? " " : "", k->def);
			else
				fprintf(out, "; (required, no default)\n%s =\n", k->name);
		}
	}
}

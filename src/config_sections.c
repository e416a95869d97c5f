/* config_sections.c - what each INI section holds: the key tables (one row
 * per key: type, bounds, default, target field, help), the begin/entry/end
 * handlers that create named sections and run cross-key checks, the
 * sections[] table that binds them, the whole-file checks of routes and
 * rate limits, and config_free(), which frees what the rows own. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>

#include "common.h"
#include "config_int.h"
#include "ratelimit.h"

#define SRV(f, T) OFF(struct rf_config, f, T)
#define UPS(f, T) OFF(struct rf_upstream_conf, f, T)

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const io_names[] = { "auto", "uring", "epoll", NULL };   /* enum rf_io */

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

/* ---- the tables: after .name come type, offset, min, max, default, help ---- */

static const struct key_def server_keys[] = {
	{ .name = "listen", KT_ADDRS, offsetof(struct rf_config, listen), 1, RF_MAX_LISTEN,
	  "0.0.0.0:8080",
	  "where clients connect: host:port, [IPv6]:port or *:port, several separated by spaces",
	  .aux = SRV(nlisten, uint32_t) },
	{ .name = "workers", KT_U32, SRV(workers, uint32_t), 1, RF_MAX_WORKERS, "auto",
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
	{ .name = "io", KT_ENUM, SRV(io, uint32_t), 0, 0, "auto",
	  "event backend: uring, epoll, or auto = io_uring unless it is blocked (seccomp), then epoll",
	  .names = io_names },
	{ .name = "batch_wait_us", KT_U32, SRV(batch_wait_us, uint32_t), 0, 10000, "0",
	  "io_uring under load: wait up to this many microseconds for a batch of completions "
	  "(fewer io_uring_enter calls, kernel 6.12+); 0 = off, handle each wake-up at once" },
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
	{ .name = "retry_on", KT_CUSTOM, UPS(retry_on, uint32_t), 0, 0,
	  "connect-failure empty-response",
	  "what is retried on another server: connect-failure (any request), empty-response, "
	  "response-timeout, 429, 502, 503, 504 (idempotent requests without a body), or none",
	  .set = set_retry_on },
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
	{ .name = "max_conns", KT_U32, UPS(max_conns, uint32_t), 0, RF_MAX_CONNS_MAX, "0",
	  "requests in flight per server across all workers (max_conns=N after a server "
	  "overrides it); a full server takes no more; 0 = unlimited" },
	{ .name = "queue_size", KT_U32, UPS(queue_size, uint32_t), 0, RF_MAX_CONNS_MAX, "0",
	  "requests that may wait, across all workers, when every server is at max_conns; "
	  "beyond -> 503; 0 = none wait" },
	{ .name = "queue_timeout", KT_MS, UPS(queue_timeout_ms, uint32_t), 1, 3600000, "5s",
	  "a request that waited this long for a free server gets 503, 1ms..1h" },
	{ .name = "queue_priority_header", KT_STRING, UPS(queue_priority_header, char *), 0, 0, "",
	  "request header with an integer priority; waiting requests go higher first "
	  "(else their client's tier priority); empty = none", .flags = KF_TOKEN },
};

_Static_assert(ARRAY_SIZE(server_keys) <= 32, "parser.key_line is too small");
_Static_assert(ARRAY_SIZE(upstream_keys) <= 32, "parser.key_line is too small");

/* ---- [ratelimit], [tier NAME], [api_keys] ---- */

#define RLC(f, T) OFF(struct rf_ratelimit_conf, f, T)
#define TIER(f, T) OFF(struct rf_tier_conf, f, T)
#define RL_API_KEY_MAX 127      /* rl_clients.h RL_ID_MAX - 1 */

static const char *const off_on_names[] = { "off", "on", NULL };
static const char *const table_full_names[] = { "allow", "deny", NULL };

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
	{ .name = "priority", KT_U32, TIER(priority, uint32_t), 0, 1000000, "0",
	  "requests of this tier's clients wait ahead of lower ones when servers are at "
	  "max_conns, 0..1000000" },
};

_Static_assert(ARRAY_SIZE(ratelimit_keys) <= 32, "parser.key_line is too small");
_Static_assert(ARRAY_SIZE(tier_keys) <= 32, "parser.key_line is too small");

static void free_owned(const struct key_def *keys, size_t n, void *base)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (keys[i].type == KT_STRING || (keys[i].flags & KF_OWNED))
			rf_free((void **)FIELD(base, &keys[i]));
}

/* ---- sections ---- */

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

/* Open [KIND NAME]: check the name, refuse a second one, and append an
 * entry of <size> bytes to *arr (count *n, capacity *cap). Every named
 * section's struct starts with its name and keeps its line at <line_off>.
 * Returns the zeroed entry (counted already, so config_free sees it), or
 * NULL after writing the error. */
static void *named_begin(struct parser *p, const char *kind, const char *name, void **arr,
			 uint32_t *n, uint32_t *cap, size_t size, size_t line_off)
{
	size_t len = strlen(name);
	char *e;
	uint32_t i;

	if (!len || len >= RF_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len) {
		perr(p, p->line, -EINVAL, "bad %s name '%s' (letters, digits, '_', '.', '-', "
		     "at most %d)", kind, name, RF_NAME_MAX - 1);
		return NULL;
	}
	for (i = 0; i < *n; i++) {
		e = (char *)*arr + i * size;
		if (!strcmp(e, name)) {
			perr(p, p->line, -EINVAL, "duplicate %s '%s' (first at line %d)", kind, name,
			     *(const int *)(e + line_off));
			return NULL;
		}
	}
	*arr = grow(*arr, *n, cap, size);
	e = (char *)*arr + (*n)++ * size;
	memcpy(e, name, len + 1);
	memcpy(e + line_off, &p->line, sizeof(int));
	p->base = e;
	return e;
}

static int upstream_begin(struct parser *p, const char *name)
{
	struct rf_config *c = p->cfg;

	if (!named_begin(p, "upstream", name, (void **)&c->upstreams, &c->nupstreams, &p->up_cap,
			 sizeof(*c->upstreams), offsetof(struct rf_upstream_conf, line)))
		return -EINVAL;
	return apply_defaults(p, upstream_keys, ARRAY_SIZE(upstream_keys), p->base);
}

/* Open a section that appears once ([ratelimit], [cache], ...): mark it
 * present, note its line, and give its keys their defaults. */
static int open_section(struct parser *p, void *base, uint8_t *enabled, int *line,
			const struct key_def *keys, size_t n)
{
	p->base = base;
	*enabled = 1;
	*line = p->line;
	return apply_defaults(p, keys, n, base);
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

/* Whole-file checks: routes name real upstreams, sorted longest prefix first. */
/* Longest prefix first, by insertion sort: stable, so equal lengths keep
 * file order. */
static void sort_routes(struct rf_config *c)
{
	struct rf_route_conf tmp;
	uint32_t i, j;

	for (i = 1; i < c->nroutes; i++) {
		tmp = c->routes[i];
		for (j = i; j > 0 && strlen(c->routes[j - 1].prefix) < strlen(tmp.prefix); j--)
			c->routes[j] = c->routes[j - 1];
		c->routes[j] = tmp;
	}
}

int route_finish(struct parser *p)
{
	struct rf_config *c = p->cfg;
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
	sort_routes(c);
	return 0;
}

/* The first name <src> shares with <dst>: an upstream or a route prefix. */
static const char *merge_clash(const struct rf_config *dst, const struct rf_config *src,
			       const char **what)
{
	uint32_t i, j;

	*what = "upstream";
	for (i = 0; i < src->nupstreams; i++)
		for (j = 0; j < dst->nupstreams; j++)
			if (!strcmp(src->upstreams[i].name, dst->upstreams[j].name))
				return src->upstreams[i].name;
	*what = "route";
	for (i = 0; i < src->nroutes; i++)
		for (j = 0; j < dst->nroutes; j++)
			if (!strcmp(src->routes[i].prefix, dst->routes[j].prefix))
				return src->routes[i].prefix;
	return NULL;
}

int config_merge(struct rf_config *dst, struct rf_config *src, char *err, size_t errlen)
{
	uint32_t i, base = dst->nupstreams;
	const char *what, *clash = merge_clash(dst, src, &what);
	void *ups, *routes;

	if (clash) {
		snprintf(err, errlen, "%s '%s' exists already", what, clash);
		config_free(src);
		return -EEXIST;
	}
	ups = realloc(dst->upstreams, (base + src->nupstreams) * sizeof(*dst->upstreams));
	if (ups)
		dst->upstreams = ups;
	routes = realloc(dst->routes, (dst->nroutes + src->nroutes) * sizeof(*dst->routes));
	if (routes)
		dst->routes = routes;
	if (!ups || !routes) {
		snprintf(err, errlen, "out of memory");
		config_free(src);
		return -ENOMEM;
	}
	memcpy(dst->upstreams + base, src->upstreams, src->nupstreams * sizeof(*src->upstreams));
	dst->nupstreams += src->nupstreams;
	for (i = 0; i < src->nroutes; i++) {
		dst->routes[dst->nroutes] = src->routes[i];
		dst->routes[dst->nroutes++].upstream += base;
	}
	/* what they own is dst's now */
	src->nupstreams = src->nroutes = 0;
	config_free(src);
	sort_routes(dst);
	return 0;
}

static int ratelimit_begin(struct parser *p, const char *arg)
{
	struct rf_config *c = p->cfg;

	return open_section(p, &c->ratelimit, &c->ratelimit.enabled, &c->ratelimit.line,
			    ratelimit_keys, ARRAY_SIZE(ratelimit_keys));
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

	if (!named_begin(p, "tier", name, (void **)&rc->tiers, &rc->ntiers, &p->tier_cap,
			 sizeof(*rc->tiers), offsetof(struct rf_tier_conf, line)))
		return -EINVAL;
	return apply_defaults(p, tier_keys, ARRAY_SIZE(tier_keys), p->base);
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
int ratelimit_finish(struct parser *p)
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
	struct rf_config *c = p->cfg;

	return open_section(p, &c->cache, &c->cache.enabled, &c->cache.line, cache_keys,
			    ARRAY_SIZE(cache_keys));
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

/* ---- [store] ---- */

#define STO(f, T) OFF(struct rf_store_conf, f, T)

static const struct key_def store_keys[] = {
	{ .name = "path", KT_STRING, STO(path, char *), 0, 0, "",
	  "directory of the journal and snapshot (created if missing, one process at a "
	  "time); empty = nothing survives a restart" },
	{ .name = "snapshot_interval", KT_MS, STO(snapshot_interval_ms, uint32_t), 1000, DAY_MS,
	  "5m", "the journal is compacted into a snapshot this often when it changed, and "
	  "stale clients are removed, 1s..24h" },
	{ .name = "journal_max", KT_SIZE64, STO(journal_max, uint64_t), 64 << 10, 1ull << 30,
	  "16m", "a journal larger than this is compacted at once, 64k..1g" },
	{ .name = "client_ttl", KT_MS, STO(client_ttl_ms, uint32_t), 0, 30 * DAY_MS, "0",
	  "a client (API key or address added at run time) without a request for this long "
	  "is removed at the next compaction, up to 720h; 0 = never" },
};

_Static_assert(ARRAY_SIZE(store_keys) <= 32, "parser.key_line is too small");

static int store_begin(struct parser *p, const char *arg)
{
	struct rf_config *c = p->cfg;

	return open_section(p, &c->store, &c->store.enabled, &c->store.line, store_keys,
			    ARRAY_SIZE(store_keys));
}

/* ---- [cluster] ---- */

#define CLU(f, T) OFF(struct rf_cluster_conf, f, T)

static const char *const fallback_names[] = { "local", "deny", NULL };

static const struct key_def cluster_keys[] = {
	{ .name = "redis", KT_ADDRS, offsetof(struct rf_cluster_conf, redis), 1,
	  RF_CLUSTER_MAX_REDIS, NULL,
	  "Redis servers as host:port, in failover order (a replica is skipped), up to 8",
	  .aux = CLU(nredis, uint32_t) },
	{ .name = "password", KT_STRING, CLU(password, char *), 0, 0, "",
	  "sent with AUTH after connecting; empty = no AUTH" },
	{ .name = "instance", KT_STRING, CLU(instance, char *), 0, 0, "",
	  "this instance's name in Redis, /stats and logs; empty = the host name" },
	{ .name = "prefix", KT_STRING, CLU(prefix, char *), 0, 0, "ringfront:",
	  "prefix of every Redis key and channel, so several clusters can share one Redis" },
	{ .name = "sync_interval", KT_MS, CLU(sync_interval_ms, uint32_t), 10, 10000, "100ms",
	  "leases are topped up and returned in one batch this often, 10ms..10s" },
	{ .name = "timeout", KT_MS, CLU(timeout_ms, uint32_t), 10, 60000, "1s",
	  "a connect or a reply slower than this drops the connection (then failover), 10ms..60s" },
	{ .name = "fallback", KT_ENUM, CLU(fallback, uint32_t), 0, 0, "local",
	  "Redis unreachable: local = each instance applies the full limit on its own, "
	  "deny = limited requests get 429", .names = fallback_names },
	{ .name = "lease", KT_U32, CLU(lease, uint32_t), 1, 1000000, "10",
	  "tokens an instance holds per active key (at most the key's burst); the cluster "
	  "overshoots a limit by at most lease x instances" },
	{ .name = "max_keys", KT_U32, CLU(max_keys, uint32_t), 64, 4194304, "65536",
	  "keys holding a lease at once; a key beyond gets the local limit only" },
};

_Static_assert(ARRAY_SIZE(cluster_keys) <= 32, "parser.key_line is too small");

static int cluster_begin(struct parser *p, const char *arg)
{
	struct rf_config *c = p->cfg;

	return open_section(p, &c->cluster, &c->cluster.enabled, &c->cluster.line, cluster_keys,
			    ARRAY_SIZE(cluster_keys));
}

static int cluster_end(struct parser *p)
{
	struct rf_cluster_conf *cc = &p->cfg->cluster;
	char host[RF_NAME_MAX];
	size_t i;

	if (!cc->prefix)
		cc->prefix = rf_xstrdup("");
	if (cc->instance) {
		for (i = 0; cc->instance[i]; i++)
			if ((unsigned char)cc->instance[i] <= ' ' || cc->instance[i] == 0x7f)
				return perr(p, p->key_line[find_key(p->sec, "instance") - p->sec->keys],
					    -EINVAL, "[cluster] instance must be one word");
		return 0;
	}
	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "pid%ld", (long)getpid());
	host[sizeof(host) - 1] = 0;
	cc->instance = rf_xstrdup(host);
	return 0;
}

const struct section_def sections[SEC_COUNT] = {
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
	[SEC_STORE] = { "store", 0, store_keys, ARRAY_SIZE(store_keys),
		"persistence of what the admin API changes: clients, API keys and tiers, "
		"blocks, strategy, weights and drain survive restarts and kill -9",
		store_begin, NULL, NULL },
	[SEC_CLUSTER] = { "cluster", 0, cluster_keys, ARRAY_SIZE(cluster_keys),
		"several instances as one, through Redis: global rate limits by leases, shared "
		"clients and blocks, cache purges broadcast; absent = a single instance",
		cluster_begin, NULL, cluster_end },
};

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
	free_owned(store_keys, ARRAY_SIZE(store_keys), &cfg->store);
	free_owned(cluster_keys, ARRAY_SIZE(cluster_keys), &cfg->cluster);
	free(cfg->source);
	free(cfg->path);
	free(cfg);
}

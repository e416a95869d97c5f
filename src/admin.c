/* admin.c - the admin API's front: bearer-token check, body collection,
 * the route registry ({method, path pattern, handler} plus what
 * /openapi.json says about each), dispatch with 404/405+Allow, the JSON
 * helpers handlers share, and the response head. The views live in
 * admin_stats.c, the changes in admin_ops.c, the documents in
 * admin_openapi.c and admin_dash.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include "common.h"
#include "admin_int.h"
#include "config.h"
#include "http_rewrite.h"

#define Q_LOGS "n:lines to return, 1-512 (100)|level:error, warn, info or debug: " \
	"that level and the more severe ones|after:only lines with a larger seq"
#define Q_USAGE "key:API key or client address (api_key and ip are accepted too)"
#define Q_LIST "offset:first entry (0)|limit:entries to return, 1-1000 (100)"

const struct admin_route admin_routes[] = {
	{ HTTP_M_GET, "/stats", admin_get_stats, "stats",
	  "Counters of workers, upstreams, servers, rate limiter and cache",
	  NULL, 200, "Stats", NULL, NULL },
	{ HTTP_M_GET, "/metrics", admin_get_metrics, "stats",
	  "The same figures in the Prometheus text exposition format",
	  NULL, 200, "text/plain", NULL, NULL },
	{ HTTP_M_GET, "/logs", admin_get_logs, "stats", "Recent log lines, oldest first",
	  NULL, 200, "Logs", Q_LOGS, "400" },
	{ HTTP_M_GET, "/events", admin_get_events, "dashboard",
	  "Live figures as Server-Sent Events (one data: event per second)",
	  NULL, 200, "text/event-stream", NULL, NULL },
	{ HTTP_M_GET, "/dashboard", admin_get_dashboard, "dashboard",
	  "The live dashboard: one self-contained HTML page",
	  NULL, 200, "text/html", NULL, NULL },
	{ HTTP_M_GET, "/openapi.json", admin_get_openapi, "meta",
	  "This OpenAPI 3 description of the admin API", NULL, 200, "OpenAPI", NULL, NULL },
	{ HTTP_M_POST, "/strategy", admin_post_strategy, "balancing",
	  "Change the balancing strategy of an upstream",
	  "StrategyChange", 200, "StrategyResult", NULL, "400 404 503" },
	{ HTTP_M_POST, "/reload", admin_post_reload, "operations",
	  "Read the configuration file again and switch to it (as SIGHUP)",
	  NULL, 200, "ReloadResult", NULL, "400" },
	{ HTTP_M_POST, "/cache/purge", admin_post_cache_purge, "cache",
	  "Drop stored responses: one key, a prefix, a tag, or all",
	  "PurgeRequest", 200, "PurgeResult", NULL, "400 409" },
	{ HTTP_M_POST, "/change_strategy", admin_post_strategy, "balancing",
	  "Same as POST /strategy", "StrategyChange", 200, "StrategyResult", NULL, "400 404 503" },
	{ HTTP_M_GET, "/upstreams", admin_get_upstreams, "balancing",
	  "Upstreams with their servers (as in /stats)", NULL, 200, "UpstreamList", NULL, NULL },
	{ HTTP_M_GET, "/upstreams/{name}", admin_get_upstream, "balancing",
	  "One upstream with its servers", NULL, 200, "Upstream", NULL, "404" },
	{ HTTP_M_GET, "/upstreams/{name}/servers/{addr}", admin_get_server, "balancing",
	  "One server", NULL, 200, "Server", NULL, "404" },
	{ HTTP_M_PATCH, "/upstreams/{name}/servers/{addr}", admin_patch_server, "balancing",
	  "Change a server's weight, or drain it (no new requests) and undrain it",
	  "ServerChange", 200, "Server", NULL, "400 404 503" },
	{ HTTP_M_GET, "/services", admin_list_services, "services",
	  "Services made through this API (upstreams with their route)", NULL, 200,
	  "ServiceList", NULL, NULL },
	{ HTTP_M_GET, "/services/{name}", admin_get_service, "services", "One service",
	  NULL, 200, "Service", NULL, "404" },
	{ HTTP_M_POST, "/services/{name}", admin_put_service, "services",
	  "Register or update a service: a JSON array of addresses, or an object with "
	  "servers, route (default /NAME/) and balance; it takes traffic at once",
	  "ServiceChange", 201, "ServiceResult", NULL, "400 409" },
	{ HTTP_M_PUT, "/services/{name}", admin_put_service, "services",
	  "Same as POST /services/{name}", "ServiceChange", 201, "ServiceResult", NULL,
	  "400 409" },
	{ HTTP_M_DELETE, "/services/{name}", admin_delete_service, "services",
	  "Remove a service and its route", NULL, 204, NULL, NULL, "404" },
	{ HTTP_M_GET, "/clients", admin_list_clients, "clients",
	  "Known clients (API keys and addresses with their own limit) and blocked ids",
	  NULL, 200, "ClientList", Q_LIST, "400" },
	{ HTTP_M_POST, "/clients", admin_create_client, "clients",
	  "Create a client; capacity and rate_per_sec default to the [ratelimit] limit",
	  "ClientCreate", 201, "Client", NULL, "400 404 409 503" },
	{ HTTP_M_PATCH, "/clients", admin_patch_client_body, "clients",
	  "Change the client named by client_id in the body", "ClientCreate", 200, "Client",
	  NULL, "400 404 503" },
	{ HTTP_M_GET, "/clients/{id}", admin_get_client, "clients",
	  "One client with its limit and current bucket", NULL, 200, "Client", NULL, "404" },
	{ HTTP_M_PUT, "/clients/{id}", admin_put_client, "clients",
	  "Create or replace a client", "ClientChange", 200, "Client", NULL, "400 404 503" },
	{ HTTP_M_PATCH, "/clients/{id}", admin_patch_client, "clients",
	  "Change some of a client's fields", "ClientChange", 200, "Client", NULL, "400 404 503" },
	{ HTTP_M_DELETE, "/clients/{id}", admin_delete_client, "clients",
	  "Delete a client (a blocked id stays blocked)", NULL, 204, NULL, NULL, "404 503" },
	{ HTTP_M_GET, "/usage", admin_get_usage, "ratelimit",
	  "Bucket, tier, block and ban state of an API key or address",
	  NULL, 200, "Usage", Q_USAGE, "400 409" },
	{ HTTP_M_GET, "/tiers", admin_get_tiers, "ratelimit", "The configured tiers",
	  NULL, 200, "TierList", NULL, NULL },
	{ HTTP_M_POST, "/tier", admin_post_tier, "ratelimit",
	  "Assign or upgrade the tier of an API key", "TierChange", 200, "Client", NULL,
	  "400 404 503" },
	{ HTTP_M_POST, "/block", admin_post_block, "ratelimit",
	  "Block an API key or address: its requests get 403", "KeyRef", 200, "BlockResult",
	  NULL, "400 503" },
	{ HTTP_M_POST, "/unblock", admin_post_unblock, "ratelimit",
	  "Unblock an API key or address", "KeyRef", 200, "BlockResult", NULL, "400 404 503" },
	{ HTTP_M_GET, "/admin/users", admin_list_clients, "ratelimit",
	  "Same as GET /clients", NULL, 200, "ClientList", Q_LIST, "400" },
	{ HTTP_M_POST, "/admin/upgrade_tier", admin_post_tier, "ratelimit",
	  "Same as POST /tier", "TierChange", 200, "Client", NULL, "400 404 503" },
	{ HTTP_M_POST, "/admin/block_key", admin_post_block, "ratelimit",
	  "Same as POST /block", "KeyRef", 200, "BlockResult", NULL, "400 503" },
	{ HTTP_M_POST, "/admin/unblock_key", admin_post_unblock, "ratelimit",
	  "Same as POST /unblock", "KeyRef", 200, "BlockResult", NULL, "400 404 503" },
};
const size_t admin_nroutes = ARRAY_SIZE(admin_routes);

static const char *meth_name(uint8_t m)
{
	static const char *const names[] = { "OTHER", "GET", "HEAD", "POST", "PUT",
		"DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE" };

	return m < ARRAY_SIZE(names) ? names[m] : "OTHER";
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	default: return http_reason(status);
	}
}

/* ---- JSON and text helpers ---- */

void admin_error(struct admin_ctx *x, int status, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->status = status;
	x->ctype = "application/json";
	x->extra = NULL;
	x->sse = 0;
	x->out.len = 0;
	x->out.failed = 0;
	ob_printf(&x->out, "{\"code\":%d,\"message\":", status);
	admin_json_str(&x->out, msg, strlen(msg));
	ob_puts(&x->out, "}\n");
}

void admin_json_str(struct outbuf *o, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0, k;

	ob_put(o, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c >= 0x80) {
			k = json_utf8_len(s, i, n);
			if (k) {
				i += k;
				run += k;
				continue;
			}
		} else if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' &&
			   c != '&' && c != 0x7f) {
			i++;
			run++;
			continue;
		}
		ob_put(o, str + i - run, run);
		run = 0;
		if (c >= 0x80)
			ob_puts(o, "\\ufffd");          /* not UTF-8: replaced */
		else if (c == '"' || c == '\\')
			esc[1] = (char)c, ob_put(o, esc, 2);
		else
			ob_put(o, esc, 6);              /* controls, and <>& for HTML */
		i++;
	}
	ob_put(o, str + i - run, run);
	ob_put(o, "\"", 1);
}

void admin_json_double(struct outbuf *o, double v)
{
	if (!(v == v) || v > 1e300 || v < -1e300)
		v = 0;
	ob_printf(o, "%.10g", v);
}

void admin_label(struct outbuf *o, const char *s)
{
	ob_put(o, "\"", 1);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			ob_put(o, "\\", 1), ob_put(o, s, 1);
		else if (*s == '\n')
			ob_puts(o, "\\n");
		else
			ob_put(o, s, 1);
	}
	ob_put(o, "\"", 1);
}

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode <n> bytes into <out> (NUL-terminated); '+' is a space in
 * a query. Returns the length, -EINVAL (bad escape, NUL) or -ENOSPC. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			if (i + 2 >= n)
				return -EINVAL;
			hi = hexdig(s[i + 1]);
			lo = hexdig(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (o + 1 >= cap)
			return -ENOSPC;
		out[o++] = c;
	}
	out[o] = 0;
	return (int)o;
}

/* Find <name> in query string <q>: its raw value and length, or NULL. */
static const char *query_find(const char *q, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	while (*q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);

		if ((size_t)(end - q) >= nl && !memcmp(q, name, nl) &&
		    (q + nl == end || q[nl] == '=')) {
			const char *v = q + nl == end ? end : q + nl + 1;

			*len = (size_t)(end - v);
			return v;
		}
		q = amp ? amp + 1 : end;
	}
	return NULL;
}

int admin_query(const struct admin_ctx *x, const char *name, char *buf, size_t cap)
{
	const char *v;
	size_t n;
	int rc;

	v = query_find(x->ar->query, name, &n);
	if (!v)
		return -ENOENT;
	rc = pct_decode(v, n, buf, cap, true);
	return rc == -EINVAL ? -ENOSPC : rc;
}

int admin_body_json(struct admin_ctx *x)
{
	const struct outbuf *b = &x->ar->body;
	int rc;

	if (!x->toks) {
		x->toks = malloc(ADMIN_JSON_TOKENS * sizeof(*x->toks));
		if (!x->toks) {
			admin_error(x, 503, "out of memory");
			return -ENOMEM;
		}
	}
	if (!b->len) {
		admin_error(x, 400, "a JSON body is required");
		return -EINVAL;
	}
	rc = json_parse(&x->doc, b->p, b->len, x->toks, ADMIN_JSON_TOKENS);
	if (rc < 0) {
		admin_error(x, 400, "invalid JSON at byte %zu: %s", x->doc.err_off, x->doc.err);
		/* the offset as a number too, for programs */
		if (x->out.len > 2 && !x->out.failed) {
			x->out.len -= 2;
			ob_printf(&x->out, ",\"offset\":%zu}\n", x->doc.err_off);
		}
		return rc;
	}
	return 0;
}

int admin_body_object(struct admin_ctx *x)
{
	if (admin_body_json(x) < 0)
		return -EINVAL;
	if (x->toks[0].type != JSON_OBJECT) {
		admin_error(x, 400, "the body must be a JSON object, not %s",
			    json_type_name(x->toks[0].type));
		return -EINVAL;
	}
	return 0;
}

/* The member's token, 0 when absent or null; <0 never (absent = 0). */
static int member(struct admin_ctx *x, const char *key)
{
	int t = json_get(&x->doc, 0, key);

	return t < 0 || json_type(&x->doc, t) == JSON_NULL ? 0 : t;
}

int admin_field_str(struct admin_ctx *x, const char *key, char *buf, size_t cap)
{
	int t = member(x, key), rc;

	if (!t)
		return 0;
	rc = json_str(&x->doc, t, buf, cap);
	if (rc > 0)
		return 1;
	if (json_type(&x->doc, t) != JSON_STRING)
		admin_error(x, 400, "field '%s' must be a string", key);
	else if (rc == -ENOSPC)
		admin_error(x, 400, "field '%s' is longer than %zu bytes", key, cap - 1);
	else
		admin_error(x, 400, "field '%s' must be a non-empty string without NUL", key);
	return -EINVAL;
}

int admin_field_str_any(struct admin_ctx *x, const char *const *keys, char *buf,
			size_t cap)
{
	int rc;

	for (; *keys; keys++) {
		rc = admin_field_str(x, *keys, buf, cap);
		if (rc)
			return rc;
	}
	return 0;
}

int admin_field_u32(struct admin_ctx *x, const char *key, uint32_t min, uint32_t max,
		    uint32_t *out)
{
	int t = member(x, key);
	uint64_t v;

	if (!t)
		return 0;
	if (json_u64(&x->doc, t, max, &v) < 0 || v < min) {
		admin_error(x, 400, "field '%s' must be a whole number from %u to %u",
			    key, min, max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 1;
}

int admin_field_double(struct admin_ctx *x, const char *key, double min, double max,
		       double *out)
{
	int t = member(x, key);
	double v;

	if (!t)
		return 0;
	if (json_double(&x->doc, t, &v) < 0 || v < min || v > max) {
		admin_error(x, 400, "field '%s' must be a number from %g to %g", key, min, max);
		return -EINVAL;
	}
	*out = v;
	return 1;
}

int admin_field_bool(struct admin_ctx *x, const char *key, int *out)
{
	int t = member(x, key);

	if (!t)
		return 0;
	if (json_bool(&x->doc, t, out) < 0) {
		admin_error(x, 400, "field '%s' must be true or false", key);
		return -EINVAL;
	}
	return 1;
}

/* ---- routing ---- */

/* Does <path> match pattern <pat>? Fills x->params from {name} segments. */
static bool route_match(const char *pat, const char *path, struct admin_ctx *x)
{
	uint32_t np = 0;

	while (*pat && *path) {
		const char *pe = strchr(pat + 1, '/'), *se = strchr(path + 1, '/');
		size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
		size_t sl = se ? (size_t)(se - path) : strlen(path);

		if (pat[0] != '/' || path[0] != '/')
			return false;
		if (pat[1] == '{') {
			if (sl < 2 || np >= ADMIN_MAX_PARAMS ||
			    pct_decode(path + 1, sl - 1, x->params[np], ADMIN_PATH_MAX, false) <= 0)
				return false;
			np++;
		} else if (pl != sl || memcmp(pat, path, pl)) {
			return false;
		}
		pat += pl;
		path += sl;
	}
	if (*pat || *path)
		return false;
	x->nparams = np;
	return true;
}

static void admin_dispatch(struct admin_ctx *x)
{
	const struct admin_route *found = NULL, *r;
	char path[ADMIN_PATH_MAX];
	uint8_t meth = x->ar->meth == HTTP_M_HEAD ? HTTP_M_GET : x->ar->meth;
	size_t i, n, al = strlen(ADMIN_ALIAS_FROM);

	if (!x->ar->authorized) {
		admin_error(x, 401, "missing or wrong bearer token");
		x->extra = "WWW-Authenticate: Bearer realm=\"ringfront admin\"\r\n";
		return;
	}
	/* /v1/api/clients[/...] is /clients[/...]; a trailing slash there too */
	snprintf(path, sizeof(path), "%s", x->ar->path);
	if (!strncmp(path, ADMIN_ALIAS_FROM, al) && (!path[al] || path[al] == '/')) {
		const char *rest = x->ar->path + al;

		snprintf(path, sizeof(path), "%s%s", ADMIN_ALIAS_TO, strcmp(rest, "/") ? rest : "");
	}
	for (i = 0; i < admin_nroutes; i++) {
		r = &admin_routes[i];
		if (!route_match(r->path, path, x))
			continue;
		if (r->meth == meth) {
			found = r;
			break;
		}
		n = strlen(x->allow);
		if (!strstr(x->allow, meth_name(r->meth)))
			snprintf(x->allow + n, sizeof(x->allow) - n, "%s%s",
				 n ? ", " : "", meth_name(r->meth));
	}
	if (found) {
		x->status = found->ok;
		found->fn(x);
		if (x->out.failed)
			admin_error(x, 500, "response too large");
		return;
	}
	if (*x->allow) {
		admin_error(x, 405, "method %s not allowed here; allowed: %s",
			    meth_name(x->ar->meth), x->allow);
		return;
	}
	admin_error(x, 404, "no such admin endpoint");
}

static void admin_respond(struct conn *c)
{
	struct worker *w = c->s.w;
	struct admin_ctx x = { .c = c, .w = w, .rt = w->rt, .ar = c->admin, .status = 200,
			       .ctype = "application/json" };
	struct outbuf resp;
	struct chunk *ck;
	int nobody;

	ob_init(&x.out, 0);
	admin_dispatch(&x);
	free(x.toks);
	if (x.sse)
		c->keepalive = 0;       /* the stream ends when the connection does */
	nobody = x.status == 204 || x.status == 304;
	ob_init(&resp, 0);
	ob_printf(&resp, "HTTP/1.1 %d %s\r\n", x.status, reason(x.status));
	if (!nobody)
		ob_printf(&resp, "Content-Type: %s\r\n", x.ctype);
	if (!nobody && !x.sse)
		ob_printf(&resp, "Content-Length: %zu\r\n", x.out.len);
	ob_printf(&resp, "Cache-Control: no-store\r\nX-Request-Id: %.*s\r\n",
		  (int)c->reqid_len, c->reqid);
	if (x.status == 405)
		ob_printf(&resp, "Allow: %s\r\n", x.allow);
	if (x.extra)
		ob_puts(&resp, x.extra);
	ob_printf(&resp, "Connection: %s\r\n\r\n", c->keepalive ? "keep-alive" : "close");
	if (c->admin->meth != HTTP_M_HEAD && !nobody)
		ob_put(&resp, x.out.p, x.out.len);
	ck = resp.failed ? NULL : chunk_from_bytes(resp.p, resp.len);
	ob_free(&resp);
	ob_free(&x.out);
	c->status = (uint16_t)x.status;
	admin_release(c);
	if (!ck || segq_push(w, &c->s.out, ck->data, ck->cap, -1, ck) < 0) {
		conn_abort(c);
		return;
	}
	c->head_sent = 1;
	/* /events stays open: the connection pushes an event every
	 * ADMIN_SSE_INTERVAL_MS until the client goes or ringfront stops */
	if (x.sse && c->meth != HTTP_M_HEAD)
		conn_start_events(c);
	else
		conn_response_done(c);
}

int admin_sse_push(struct conn *c)
{
	struct worker *w = c->s.w;
	struct outbuf ob;
	struct chunk *ck;
	int rc;

	if (c->s.out.bytes >= OUT_HIGH / 2)
		return -EAGAIN;         /* the client is not reading: skip this tick */
	ob_init(&ob, 0);
	rc = admin_sse_event(w, &ob);
	ck = rc < 0 ? NULL : chunk_from_bytes(ob.p, ob.len);
	ob_free(&ob);
	if (!ck || segq_push(w, &c->s.out, ck->data, ck->cap, -1, ck) < 0)
		return -ENOMEM;
	sock_flush(&c->s);
	return 0;
}

/* Constant time in the token's length: no early exit on a mismatch. */
static int token_eq(const char *v, size_t n, const char *token)
{
	size_t tlen = strlen(token), i;
	unsigned char diff = 0;

	if (n != tlen)
		return 0;
	for (i = 0; i < tlen; i++)
		diff |= (unsigned char)(v[i] ^ token[i]);
	return diff == 0;
}

/* The token comes in "Authorization: Bearer" or, for GET and HEAD only (a
 * browser opening the dashboard, EventSource), as ?access_token= (RFC 6750
 * 2.3). */
static int token_ok(const struct rf_admin_conf *a, const struct http_req *req,
		    const char *query)
{
	char qt[256];
	const char *v;
	size_t n;
	uint32_t k;

	if (!a->token || !*a->token)
		return 1;
	for (k = 0; k < req->nhdrs; k++) {
		const struct http_hdr *h = &req->hdrs[k];

		if (!rf_ieq(h->name, h->name_len, "authorization"))
			continue;
		if (h->value_len < 7 || !rf_ieq(h->value, 7, "bearer "))
			return 0;
		return token_eq(h->value + 7, h->value_len - 7, a->token);
	}
	if (req->meth != HTTP_M_GET && req->meth != HTTP_M_HEAD)
		return 0;
	v = query_find(query, "access_token", &n);
	if (!v || pct_decode(v, n, qt, sizeof(qt), true) < 0)
		return 0;
	return token_eq(qt, strlen(qt), a->token);
}

int admin_start(struct conn *c, const struct http_req *req)
{
	const struct rf_config *cfg = c->s.w->cfg;
	struct admin_req *ar = calloc(1, sizeof(*ar));
	const char *q;
	size_t plen;

	if (!ar)
		return -ENOMEM;
	c->admin = ar;
	ar->meth = req->meth;
	q = memchr(req->target, '?', req->target_len);
	plen = q ? (size_t)(q - req->target) : req->target_len;
	memcpy(ar->path, req->target, RF_MIN(plen, sizeof(ar->path) - 1));
	if (q)
		memcpy(ar->query, q + 1, RF_MIN(req->target_len - plen - 1,
					       sizeof(ar->query) - 1));
	ar->authorized = (uint8_t)token_ok(&cfg->admin, req, ar->query);
	ob_init(&ar->body, cfg->admin.max_body);
	if (c->req_body.kind == BODY_LENGTH && c->req_body.left > cfg->admin.max_body)
		return -EMSGSIZE;
	if (c->req_body.kind == BODY_CHUNKED)
		c->req_body.kind = BODY_DECHUNK;      /* the handler wants the data */
	return 0;
}

void admin_feed(struct conn *c)
{
	struct worker *w = c->s.w;
	struct admin_req *ar = c->admin;
	int done = 0, ret;

	if (!ar || c->head_sent)
		return;
	while (c->req_body.kind != BODY_NONE && c->s.in.head) {
		ret = body_relay(w, &c->req_body, &c->s.in, &ar->scratch, &done);
		while (ar->scratch.head) {
			ob_put(&ar->body, ar->scratch.head->p, ar->scratch.head->len);
			segq_consume(w, &ar->scratch, ar->scratch.head->len);
		}
		if (ret < 0 || ar->body.failed) {
			c->keepalive = 0;
			conn_fail(c, ret < 0 ? 400 : 413);
			return;
		}
		if (done)
			c->req_body.kind = BODY_NONE;
		else if (!c->s.in.head)
			return;
	}
	if (c->req_body.kind == BODY_NONE)
		admin_respond(c);
}

void admin_release(struct conn *c)
{
	struct admin_req *ar = c->admin;

	if (!ar)
		return;
	segq_clear(c->s.w, &ar->scratch);
	ob_free(&ar->body);
	free(ar);
	c->admin = NULL;
}

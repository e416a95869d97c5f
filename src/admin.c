/* admin.c - the admin API: bearer-token check, body collection, a route
 * table of {method, path, handler}, and the read-only views of the
 * workers and upstreams (/stats as JSON, /metrics in Prometheus text). */
#include <errno.h>
#include "common.h"
#include "admin.h"
#include "config.h"
#include "http_rewrite.h"
#include "outbuf.h"
#include "worker.h"

#define ADMIN_PATH_MAX 256
#define ADMIN_QUERY_MAX 512

/* State of one admin request while its body arrives. Owner: the conn. */
struct admin_req {
	uint8_t meth;
	uint8_t authorized;
	char path[ADMIN_PATH_MAX];
	char query[ADMIN_QUERY_MAX];
	struct outbuf body;
	struct segq scratch;            /* decoded body bytes before copying */
};

struct admin_ctx {
	struct conn *c;
	struct admin_req *ar;
	int status;
	const char *ctype;
	char allow[64];                 /* methods the path takes, for 405 */
	struct outbuf out;
};

typedef void (*admin_fn)(struct admin_ctx *x);

struct admin_route {
	uint8_t meth;                   /* enum http_method */
	const char *path;
	admin_fn fn;
};

static const char *meth_name(uint8_t m)
{
	static const char *const names[] = { "OTHER", "GET", "HEAD", "POST", "PUT",
		"DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE" };

	return m < ARRAY_SIZE(names) ? names[m] : "OTHER";
}

static void json_error(struct admin_ctx *x, int status, const char *msg)
{
	x->status = status;
	x->ctype = "application/json";
	x->out.len = 0;
	x->out.failed = 0;
	ob_printf(&x->out, "{\"code\":%d,\"message\":", status);
	ob_json_str(&x->out, msg, strlen(msg));
	ob_puts(&x->out, "}\n");
}

/* ---- views ---- */

static void admin_stats(struct admin_ctx *x)
{
	const struct runtime *rt = x->c->s.w->rt;
	uint64_t now = x->c->s.w->wheel.now;
	struct outbuf *o = &x->out;
	uint32_t i, j;

	ob_printf(o, "{\"connections\":%u,\"workers\":[",
		  atomic_load(&rf_total_conns));
	for (i = 0; i < rf_nworkers; i++) {
		struct worker_stats *st = &rf_workers[i].stats;

		ob_printf(o, "%s{\"id\":%u,\"accepted\":%llu,\"requests\":%llu,"
			  "\"errors\":%llu,\"rejected_connections\":%llu,\"active\":%llu}",
			  i ? "," : "", i,
			  (unsigned long long)STAT_GET(st->accepted),
			  (unsigned long long)STAT_GET(st->requests),
			  (unsigned long long)STAT_GET(st->errors),
			  (unsigned long long)STAT_GET(st->rejected_conns),
			  (unsigned long long)STAT_GET(st->active));
	}
	ob_puts(o, "],\"upstreams\":[");
	for (i = 0; i < rt->cfg->nupstreams; i++) {
		const struct upstream *up = &rt->ups[i];

		ob_printf(o, "%s{\"name\":", i ? "," : "");
		ob_json_str(o, up->conf->name, strlen(up->conf->name));
		ob_printf(o, ",\"balance\":\"%s\",\"servers\":[",
			  config_balance_name(balance_strategy(up)));
		for (j = 0; j < up->nservers; j++) {
			const struct server *s = &up->servers[j];
			struct health_view v;

			health_view(s, now, &v);
			ob_printf(o, "%s{\"address\":", j ? "," : "");
			ob_json_str(o, s->conf->addr.text, strlen(s->conf->addr.text));
			ob_printf(o, ",\"weight\":%u,\"state\":\"%s\",\"circuit\":\"%s\","
				  "\"draining\":%s,\"active\":%u,\"response_time_us\":%u,"
				  "\"consecutive_failures\":%u,\"slow_start_permille\":%u}",
				  (unsigned)atomic_load_explicit(&s->weight, memory_order_relaxed),
				  health_state_str(v.state), circuit_state_str(v.circuit),
				  v.draining ? "true" : "false", v.active, v.ewma_us, v.fails,
				  v.weight_permille);
		}
		ob_puts(o, "]}");
	}
	ob_puts(o, "]}\n");
}

static void metric_head(struct outbuf *o, const char *name, const char *type,
			const char *help)
{
	ob_printf(o, "# HELP ringfront_%s %s\n# TYPE ringfront_%s %s\n",
		  name, help, name, type);
}

static void admin_metrics(struct admin_ctx *x)
{
	static const struct {
		const char *name;
		const char *type;
		const char *help;
		size_t off;
	} rows[] = {
		{ "connections_accepted_total", "counter", "Client connections accepted.",
		  offsetof(struct worker_stats, accepted) },
		{ "connections_rejected_total", "counter",
		  "Client connections closed at once because max_connections was reached.",
		  offsetof(struct worker_stats, rejected_conns) },
		{ "requests_total", "counter", "Requests received.",
		  offsetof(struct worker_stats, requests) },
		{ "errors_total", "counter", "Requests answered with an error ringfront made.",
		  offsetof(struct worker_stats, errors) },
		{ "connections_active", "gauge", "Client connections open now.",
		  offsetof(struct worker_stats, active) },
	};
	struct outbuf *o = &x->out;
	size_t r;
	uint32_t i;

	x->ctype = "text/plain; version=0.0.4";
	for (r = 0; r < ARRAY_SIZE(rows); r++) {
		metric_head(o, rows[r].name, rows[r].type, rows[r].help);
		for (i = 0; i < rf_nworkers; i++) {
			_Atomic uint64_t *v = (_Atomic uint64_t *)(void *)
				((char *)&rf_workers[i].stats + rows[r].off);

			ob_printf(o, "ringfront_%s{worker=\"%u\"} %llu\n", rows[r].name, i,
				  (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
		}
	}
}

static const struct admin_route routes[] = {
	{ HTTP_M_GET, "/stats", admin_stats },
	{ HTTP_M_GET, "/metrics", admin_metrics },
};

/* ---- request handling ---- */

static void admin_dispatch(struct admin_ctx *x)
{
	const struct admin_route *found = NULL;
	size_t i, n;

	if (!x->ar->authorized) {
		json_error(x, 401, "missing or wrong bearer token");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		if (strcmp(routes[i].path, x->ar->path))
			continue;
		if (routes[i].meth == x->ar->meth ||
		    (x->ar->meth == HTTP_M_HEAD && routes[i].meth == HTTP_M_GET)) {
			found = &routes[i];
			break;
		}
		n = strlen(x->allow);
		snprintf(x->allow + n, sizeof(x->allow) - n, "%s%s",
			 n ? ", " : "", meth_name(routes[i].meth));
	}
	if (found) {
		found->fn(x);
		if (x->out.failed)
			json_error(x, 500, "response too large");
		return;
	}
	if (*x->allow) {
		json_error(x, 405, "method not allowed");
		return;
	}
	json_error(x, 404, "no such admin endpoint");
}

static void admin_respond(struct conn *c)
{
	struct worker *w = c->s.w;
	struct admin_ctx x = { .c = c, .ar = c->admin, .status = 200,
			       .ctype = "application/json" };
	struct outbuf resp;
	struct chunk *ck;

	ob_init(&x.out, 0);
	admin_dispatch(&x);
	ob_init(&resp, 0);
	ob_printf(&resp, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		  "Cache-Control: no-store\r\nX-Request-Id: %.*s\r\n%s%s%s"
		  "Connection: %s\r\n\r\n",
		  x.status, x.status == 200 ? "OK" : http_reason(x.status), x.ctype,
		  x.out.len, (int)c->reqid_len, c->reqid,
		  x.status == 405 ? "Allow: " : "", x.status == 405 ? x.allow : "",
		  x.status == 405 ? "\r\n" : "", c->keepalive ? "keep-alive" : "close");
	if (c->admin->meth != HTTP_M_HEAD)
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
	conn_response_done(c);
}

static int token_ok(const struct rf_admin_conf *a, const struct http_req *req)
{
	size_t tlen, i;
	uint32_t k;
	unsigned char diff = 0;

	if (!a->token || !*a->token)
		return 1;
	tlen = strlen(a->token);
	for (k = 0; k < req->nhdrs; k++) {
		const struct http_hdr *h = &req->hdrs[k];

		if (!rf_ieq(h->name, h->name_len, "authorization"))
			continue;
		if (h->value_len != 7 + tlen || !rf_ieq(h->value, 7, "bearer "))
			return 0;
		/* constant time: the loop does not stop at the first mismatch */
		for (i = 0; i < tlen; i++)
			diff |= (unsigned char)(h->value[7 + i] ^ a->token[i]);
		return diff == 0;
	}
	return 0;
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
	ar->authorized = (uint8_t)token_ok(&cfg->admin, req);
	q = memchr(req->target, '?', req->target_len);
	plen = q ? (size_t)(q - req->target) : req->target_len;
	memcpy(ar->path, req->target, RF_MIN(plen, sizeof(ar->path) - 1));
	if (q)
		memcpy(ar->query, q + 1, RF_MIN(req->target_len - plen - 1,
					       sizeof(ar->query) - 1));
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

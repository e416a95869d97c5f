/* cluster_state.c - what instances share besides limits: records (client,
 * tier and block changes) kept in the Redis hash <prefix>clients and
 * announced on <prefix>events, and cache purges announced on
 * <prefix>purge. Changes queue here (any thread) and worker 0 sends them
 * on its sync tick; a change lost with a connection is sent again. On
 * every (re)subscription the whole hash is loaded: Redis is the truth.
 *
 * Messages: events "KIND INSTANCE ID\nJSON" (no JSON = removed), purge
 * "INSTANCE TYPE\nPATTERN". An instance ignores its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cluster_int.h"
#include "common.h"
#include "json.h"
#include "log.h"
#include "outbuf.h"
#include "persist.h"
#include "proxy_cache.h"
#include "rl_clients.h"
#include "worker.h"

#define QUEUE_MAX       65536   /* changes kept while Redis is away */

/* ---- client records as JSON ---- */

static void esc(struct outbuf *o, const char *s)
{
	if (s && *s)
		ob_json_str(o, s, strlen(s));
	else
		ob_puts(o, "null");
}

int cluster_client_json(const struct rl_client *c, char *buf, size_t cap)
{
	struct outbuf o;
	int n = -ENOSPC;

	ob_init(&o, cap);
	ob_puts(&o, "{\"id\":");
	esc(&o, c->id);
	ob_printf(&o, ",\"client\":%s,\"blocked\":%s,\"capacity\":%u,\"rate_per_sec\":%.17g,"
		  "\"tier\":", c->is_client ? "true" : "false", c->blocked ? "true" : "false",
		  c->capacity, c->rate_per_sec);
	esc(&o, c->tier);
	ob_puts(&o, "}");
	if (o.p && !o.failed && o.len < cap) {
		memcpy(buf, o.p, o.len);
		buf[o.len] = 0;
		n = (int)o.len;
	}
	ob_free(&o);
	return n;
}

static int client_from_json(const char *id, const char *json, size_t len, struct rl_client *c)
{
	struct json_tok toks[32];
	struct json_doc d;
	uint64_t cap = 0;
	int t, b;

	memset(c, 0, sizeof(*c));
	if (strlen(id) >= sizeof(c->id))
		return -EINVAL;
	memcpy(c->id, id, strlen(id) + 1);
	if (!json || !len)
		return 0;       /* removed: neither a client nor blocked */
	if (json_parse(&d, json, len, toks, ARRAY_SIZE(toks)) < 0 || json_type(&d, 0) != JSON_OBJECT)
		return -EINVAL;
	if ((t = json_get(&d, 0, "client")) >= 0 && json_bool(&d, t, &b) == 0)
		c->is_client = (uint8_t)b;
	if ((t = json_get(&d, 0, "blocked")) >= 0 && json_bool(&d, t, &b) == 0)
		c->blocked = (uint8_t)b;
	if ((t = json_get(&d, 0, "capacity")) >= 0 && json_u64(&d, t, UINT32_MAX, &cap) < 0)
		return -EINVAL;
	c->capacity = (uint32_t)cap;
	if ((t = json_get(&d, 0, "rate_per_sec")) >= 0 && json_double(&d, t, &c->rate_per_sec) < 0)
		return -EINVAL;
	if ((t = json_get(&d, 0, "tier")) >= 0 && json_type(&d, t) == JSON_STRING &&
	    json_str(&d, t, c->tier, sizeof(c->tier)) < 0)
		return -EINVAL;
	return 0;
}

static int same_client(const struct rl_client *a, const struct rl_client *b)
{
	return a->is_client == b->is_client && a->blocked == b->blocked &&
	       a->capacity == b->capacity && a->rate_per_sec == b->rate_per_sec &&
	       !strcmp(a->tier, b->tier);
}

/* id = the key hash in hex, {"level":N,"left":SECONDS} */
static int ban_from_json(struct rl *rl, const char *id, const char *json, size_t len)
{
	struct json_tok toks[8];
	struct json_doc d;
	uint64_t level, left;
	char *end;
	unsigned long long h = strtoull(id, &end, 16);
	int t, u;

	if (*end || !*id || json_parse(&d, json, len, toks, 8) < 0 ||
	    (t = json_get(&d, 0, "level")) < 0 || json_u64(&d, t, 15, &level) < 0 ||
	    (u = json_get(&d, 0, "left")) < 0 || json_u64(&d, u, UINT32_MAX, &left) < 0)
		return -EINVAL;
	return rl_ban_apply(rl, (uint64_t)h, (unsigned)level, left);
}

int cluster_record_apply(struct rl *rl, const char *kind, const char *id, const char *json,
			 size_t len)
{
	struct rl_client c, cur;
	int rc;

	if (!strcmp(kind, "ban"))
		return ban_from_json(rl, id, json, len);
	if (strcmp(kind, "client"))
		return persist_apply_remote(kind, id, len ? json : NULL, len);
	rc = client_from_json(id, json, len, &c);
	if (rc)
		return rc;
	/* unchanged (the usual case of a full load): no directory copy */
	if (rl_client_get(rl, c.id, &cur) == 0 ? same_client(&cur, &c) :
	    !c.is_client && !c.blocked)
		return 0;
	return rl_apply_remote(rl, &c);
}

/* ---- the outgoing queue ---- */

static void msg_free(struct cl_msg *m)
{
	free(m->a);
	free(m->b);
	free(m);
}

/* Append (or, for a message to send again, prepend) <m>. */
static void enqueue(struct cluster *cl, struct cl_msg *m, int front)
{
	pthread_mutex_lock(&cl->lock);
	if (cl->qlen >= QUEUE_MAX) {
		pthread_mutex_unlock(&cl->lock);
		log_warn("msg=\"cluster queue full, a change is not shared\" kind=%s",
			 m->kind == CL_MSG_RECORD ? "record" : "purge");
		msg_free(m);
		return;
	}
	if (front) {
		m->next = cl->q;
		cl->q = m;
		if (cl->qtail == &cl->q)
			cl->qtail = &m->next;
	} else {
		m->next = NULL;
		*cl->qtail = m;
		cl->qtail = &m->next;
	}
	cl->qlen++;
	pthread_mutex_unlock(&cl->lock);
}

void cluster_record_changed(struct cluster *cl, const char *kind, const char *id,
			    const char *json)
{
	struct cl_msg *m = calloc(1, sizeof(*m));
	size_t ka = strlen(kind) + 1 + strlen(id) + 1;

	if (!m)
		return;
	m->kind = CL_MSG_RECORD;
	m->a = malloc(ka);
	m->b = json ? strdup(json) : NULL;
	if (!m->a || (json && !m->b)) {
		msg_free(m);
		return;
	}
	snprintf(m->a, ka, "%s %s", kind, id);
	m->blen = json ? strlen(json) : 0;
	enqueue(cl, m, 0);
}

void cluster_publish_purge(struct cluster *cl, uint8_t type, const char *pat, size_t len)
{
	struct cl_msg *m;

	if (!cl)
		return;
	m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->kind = CL_MSG_PURGE;
	m->type = type;
	m->b = malloc(len + 1);
	if (!m->b) {
		msg_free(m);
		return;
	}
	memcpy(m->b, pat, len);
	m->b[len] = 0;
	m->blen = len;
	enqueue(cl, m, 0);
}

void cl_queue_free(struct cluster *cl)
{
	struct cl_msg *m;

	while ((m = cl->q) != NULL) {
		cl->q = m->next;
		msg_free(m);
	}
	cl->qtail = &cl->q;
	cl->qlen = 0;
}

struct sent {
	struct cluster *cl;
	struct cl_msg *m;
};

/* The PUBLISH of a change answered: done; lost with the connection: the
 * change goes out again after the reconnect, before the hash is read. */
static void on_sent(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct sent *s = arg;

	if (r || s->cl->stopping)
		msg_free(s->m);
	else
		enqueue(s->cl, s->m, 1);
	free(s);
}

static int send_msg(struct cluster *cl, struct cl_msg *m)
{
	const char *inst = cl->self;
	struct rr_buf body = { 0 }, cmd = { 0 }, hset = { 0 };
	const char *sp, *argv[4];
	size_t lens[4];
	struct sent *s;
	char head[64];
	int rc = 0, h;

	if (m->kind == CL_MSG_RECORD) {
		/* a->"KIND ID": clients are fields ID of their hash, the other
		 * kinds fields "KIND ID" of the state hash */
		sp = strchr(m->a, ' ');
		argv[0] = m->b ? "HSET" : "HDEL";
		argv[1] = strncmp(m->a, "client ", 7) ? cl->k_state : cl->k_clients;
		argv[2] = argv[1] == cl->k_clients ? sp + 1 : m->a;
		argv[3] = m->b;
		/* a ban is news, not state: it ends by itself */
		if (strncmp(m->a, "ban ", 4))
			rc |= rr_cmd(&hset, m->b ? 4 : 3, argv, NULL);
		rc |= rr_buf_put(&body, m->a, (size_t)(sp - m->a));
		rc |= rr_buf_put(&body, " ", 1);
		rc |= rr_buf_put(&body, inst, strlen(inst));
		rc |= rr_buf_put(&body, sp, strlen(sp));
		rc |= rr_buf_put(&body, "\n", 1);
		if (m->b)
			rc |= rr_buf_put(&body, m->b, m->blen);
		argv[1] = cl->ch_events;
	} else {
		h = snprintf(head, sizeof(head), " %u\n", m->type);
		rc |= rr_buf_put(&body, inst, strlen(inst));
		rc |= rr_buf_put(&body, head, (size_t)h);
		rc |= rr_buf_put(&body, m->b, m->blen);
		argv[1] = cl->ch_purge;
	}
	argv[0] = "PUBLISH";
	argv[2] = body.p;
	lens[0] = 7;
	lens[1] = strlen(argv[1]);
	lens[2] = body.len;
	rc |= rr_cmd(&cmd, 3, argv, lens);
	s = malloc(sizeof(*s));
	if (rc || !s) {
		free(s);
		rc = -ENOMEM;
		goto out;
	}
	s->cl = cl;
	s->m = m;
	/* one pending entry per command: every reply finds its own */
	if (hset.len && (rc = rconn_queue(&cl->main, &hset, NULL, NULL)) < 0) {
		free(s);
		goto out;
	}
	rc = rconn_queue(&cl->main, &cmd, on_sent, s);
	if (rc < 0)
		free(s);
	else if (m->kind == CL_MSG_RECORD)
		atomic_fetch_add_explicit(&cl->n.records_sent, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&cl->n.purges_sent, 1, memory_order_relaxed);
out:
	rr_buf_free(&body);
	rr_buf_free(&cmd);
	rr_buf_free(&hset);
	return rc;
}

void cl_send_queued(struct cluster *cl)
{
	struct cl_msg *m, *list;

	pthread_mutex_lock(&cl->lock);
	list = cl->q;
	cl->q = NULL;
	cl->qtail = &cl->q;
	cl->qlen = 0;
	pthread_mutex_unlock(&cl->lock);
	while ((m = list) != NULL) {
		list = m->next;
		if (send_msg(cl, m) < 0) {
			/* out of memory or the connection went: keep the rest */
			enqueue(cl, m, 0);
			while ((m = list) != NULL) {
				list = m->next;
				enqueue(cl, m, 0);
			}
			return;
		}
	}
}

/* ---- incoming ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int config_key(const struct cluster *cl, const char *id)
{
	const struct rf_ratelimit_conf *rc = &cl->cfg->ratelimit;
	uint32_t i;

	for (i = 0; i < rc->napi_keys; i++)
		if (!strcmp(rc->api_keys[i].key, id))
			return 1;
	return 0;
}

/* The whole hash: apply every record, then drop the local records Redis
 * does not have (a delete made while this instance was away), except the
 * configuration's own API keys. */
static void on_full_load(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = arg;
	struct rl_client *local = NULL, gone;
	char **ids = NULL, id[RL_ID_MAX];
	size_t n, i, total, nids = 0;
	int e, v;

	cl->full_loading = 0;
	if (!r || r->v[0].type != RR_ARRAY) {
		cl->need_full_load = 1;
		return;
	}
	n = (size_t)r->v[0].n / 2;
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids) {
		cl->need_full_load = 1;
		return;
	}
	for (i = 0; i < n; i++) {
		e = rr_elem(r, 0, (uint32_t)(2 * i));
		v = rr_elem(r, 0, (uint32_t)(2 * i + 1));
		if (e < 0 || v < 0 || r->v[e].type != RR_BULK || r->v[e].n >= RL_ID_MAX)
			continue;
		memcpy(id, r->v[e].p, (size_t)r->v[e].n);
		id[r->v[e].n] = 0;
		ids[nids++] = strdup(id);
		if (cluster_record_apply(cl->rl, "client", id, r->v[v].p, (size_t)r->v[v].n) == 0)
			atomic_fetch_add_explicit(&cl->n.records_applied, 1, memory_order_relaxed);
	}
	qsort(ids, nids, sizeof(*ids), cmp_str);
	total = rl_client_list(cl->rl, 0, NULL, 0);
	local = total ? calloc(total, sizeof(*local)) : NULL;
	if (local)
		total = RF_MIN(rl_client_list(cl->rl, 0, local, total), total);
	for (i = 0; local && i < total; i++) {
		const char *key = local[i].id;
		char json[512];

		if (config_key(cl, key) || bsearch(&key, ids, nids, sizeof(*ids), cmp_str))
			continue;
		if (!nids) {
			/* an empty hash is a Redis that lost its data (restarted
			 * without persistence): give it what this instance knows */
			if (cluster_client_json(&local[i], json, sizeof(json)) > 0)
				cluster_record_changed(cl, "client", key, json);
			continue;
		}
		memset(&gone, 0, sizeof(gone));
		memcpy(gone.id, key, strlen(key) + 1);
		rl_apply_remote(cl->rl, &gone);
	}
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	free(local);
	atomic_fetch_add_explicit(&cl->n.full_loads, 1, memory_order_relaxed);
}

/* The state hash: services, strategies, weights and drain, applied where
 * they differ from what this instance has. */
static void on_state_load(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = arg;
	char kind[32], id[RL_ID_MAX + RF_NAME_MAX];
	const char *sp;
	size_t n, i;
	int e, v;

	if (!r || r->v[0].type != RR_ARRAY)
		return;
	n = (size_t)r->v[0].n / 2;
	for (i = 0; i < n; i++) {
		e = rr_elem(r, 0, (uint32_t)(2 * i));
		v = rr_elem(r, 0, (uint32_t)(2 * i + 1));
		if (e < 0 || v < 0 || r->v[e].type != RR_BULK || r->v[e].n >= (int64_t)sizeof(id) ||
		    !(sp = memchr(r->v[e].p, ' ', (size_t)r->v[e].n)) ||
		    (size_t)(sp - r->v[e].p) >= sizeof(kind))
			continue;
		memcpy(kind, r->v[e].p, (size_t)(sp - r->v[e].p));
		kind[sp - r->v[e].p] = 0;
		memcpy(id, sp + 1, (size_t)(r->v[e].p + r->v[e].n - sp - 1));
		id[r->v[e].p + r->v[e].n - sp - 1] = 0;
		if (cluster_record_apply(cl->rl, kind, id, r->v[v].p, (size_t)r->v[v].n) == 0)
			atomic_fetch_add_explicit(&cl->n.records_applied, 1, memory_order_relaxed);
	}
}

void cl_full_load(struct cluster *cl)
{
	rconn_sendv(&cl->main, on_state_load, cl, "HGETALL", cl->k_state, NULL);
	if (rconn_sendv(&cl->main, on_full_load, cl, "HGETALL", cl->k_clients, NULL) == 0) {
		cl->full_loading = 1;
		cl->need_full_load = 0;
	}
}

/* "WORD SP", the word NUL-ended into <out>; returns the rest or NULL. */
static const char *word(const char *p, const char *e, char *out, size_t cap, char stop)
{
	const char *s = memchr(p, stop, (size_t)(e - p));

	if (!s || (size_t)(s - p) >= cap)
		return NULL;
	memcpy(out, p, (size_t)(s - p));
	out[s - p] = 0;
	return s + 1;
}

static void on_event(struct cluster *cl, const char *p, size_t len)
{
	const char *e = p + len;
	char kind[32], inst[RF_NAME_MAX + 24], id[RL_ID_MAX];

	if (!(p = word(p, e, kind, sizeof(kind), ' ')) || !(p = word(p, e, inst, sizeof(inst), ' ')) ||
	    !(p = word(p, e, id, sizeof(id), '\n')))
		return;
	if (!strcmp(inst, cl->self))
		return;
	if (cluster_record_apply(cl->rl, kind, id, p, (size_t)(e - p)) == 0)
		atomic_fetch_add_explicit(&cl->n.records_applied, 1, memory_order_relaxed);
	else
		log_warn("msg=\"cluster record not applied\" kind=%s id=\"%s\" from=%s", kind, id,
			 inst);
}

static void on_purge(struct cluster *cl, const char *p, size_t len)
{
	const char *e = p + len;
	char inst[RF_NAME_MAX + 24], type[8];
	uint8_t t;

	if (!(p = word(p, e, inst, sizeof(inst), ' ')) || !(p = word(p, e, type, sizeof(type), '\n')))
		return;
	t = (uint8_t)atoi(type);
	if (!strcmp(inst, cl->self) || !rf_cache ||
	    (t != CACHE_REQ_DEL && t != CACHE_REQ_PURGE_PREFIX && t != CACHE_REQ_PURGE_TAG &&
	     t != CACHE_REQ_FLUSH))
		return;
	cache_purge(rf_cache, cl->w->id, t, p, (size_t)(e - p), cache_now_ms());
	atomic_fetch_add_explicit(&cl->n.purges_applied, 1, memory_order_relaxed);
}

void cl_on_message(void *owner, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = owner;
	int ch, body;

	if (r->v[0].type != RR_ARRAY || !rr_is(r, rr_elem(r, 0, 0), "message"))
		return;
	ch = rr_elem(r, 0, 1);
	body = rr_elem(r, 0, 2);
	if (ch < 0 || body < 0 || r->v[body].type != RR_BULK)
		return;
	if (rr_is(r, ch, cl->ch_events))
		on_event(cl, r->v[body].p, (size_t)r->v[body].n);
	else if (rr_is(r, ch, cl->ch_purge))
		on_purge(cl, r->v[body].p, (size_t)r->v[body].n);
}

/* proxy_cache.c - the response cache on the proxy path (see proxy_cache.h).
 * Hits cost one lookup and one send; only misses that may be stored
 * allocate (a copy of both heads and the body as it streams past). */
#include <errno.h>
#include <stdio.h>
#include "common.h"
#include "cache.h"
#include "cache_http.h"
#include "cache_policy.h"
#include "outbuf.h"
#include "proxy_cache.h"
#include "worker.h"

struct cache *rf_cache;

/* How long a waiter keeps looking for the entry its lead fetched. */
#define FILL_GRACE_MS 50

/* A request that went to a backend with the cache involved. Owner: conn. */
struct pcache_req {
	struct cache_reqinfo ri;
	int64_t request_ms;
	int64_t response_ms;
	uint8_t collecting;     /* storable: the body is being copied */
	uint8_t invalidate;     /* unsafe method: drop the key on success */
	uint8_t fill_lead;      /* this request fetches for the waiting others */
	uint8_t revalidating;   /* <old> is revalidated with its validators */
	uint64_t fill_tok;      /* coalescing token (lead or waited on) */
	int64_t grace_until;    /* waiter: stop looking for the lead's entry */
	const struct cache_entry *old;  /* held: the stale stored copy, to revalidate
					 * or to serve on error (stale-if-error) */
	uint16_t klen;
	uint32_t req_len;       /* request head copy, at the start of heads */
	uint32_t resp_len;      /* response head copy, after it */
	char *heads;            /* owned */
	struct outbuf body;
	char key[];             /* klen bytes */
};

static const char *const outcome_names[] = {
	[CACHE_OUT_HIT] = "HIT", [CACHE_OUT_MISS] = "MISS", [CACHE_OUT_STALE] = "STALE",
	[CACHE_OUT_REVALIDATED] = "REVALIDATED", [CACHE_OUT_BYPASS] = "BYPASS",
};

/* Lifetime for responses without caching headers: the route's, else
 * [cache] default_ttl (0 = only explicit freshness is stored). */
static int64_t route_ttl(const struct conn *c)
{
	return c->route->cache_ttl_ms ? c->route->cache_ttl_ms :
					c->s.w->cfg->cache.default_ttl_ms;
}

static struct pcache_req *pc_new(const char *key, size_t klen, const char *head,
				 uint32_t head_len)
{
	struct pcache_req *pc = calloc(1, sizeof(*pc) + klen);

	if (!pc)
		return NULL;
	pc->heads = malloc(head_len);
	if (!pc->heads) {
		free(pc);
		return NULL;
	}
	memcpy(pc->key, key, klen);
	pc->klen = (uint16_t)klen;
	memcpy(pc->heads, head, head_len);
	pc->req_len = head_len;
	return pc;
}

/* A stored copy answers: a hit, or 304 when the client's validators
 * match it. */
static int serve_stored(const struct cache_entry *e, const struct cache_reqinfo *ri,
			const struct http_req *req, enum cache_outcome o,
			const struct cache_entry **hit, uint8_t *outcome)
{
	cache_entry_hold(e);
	*hit = e;
	*outcome = (uint8_t)o;
	if (ri->conditional && cache_policy_not_modified(e, req))
		*outcome |= PCACHE_NOT_MODIFIED;
	return PCACHE_HIT;
}

static int has_validator(const struct cache_entry *e)
{
	const struct cache_http_meta *m = cache_entry_http(e);

	return m->etag_len || m->lm_len;
}

int pcache_request(struct conn *c, const struct http_req *req, const char *head,
		   uint32_t head_len, const struct cache_entry **hit, uint8_t *outcome)
{
	struct worker *w = c->s.w;
	char key[CACHE_KEY_MAX], vkey[CACHE_KEY_MAX];
	const struct cache_entry *e;
	struct cache_reqinfo ri;
	uint64_t swr_tok = 0;
	int64_t now;
	int klen, f;

	*outcome = CACHE_OUT_BYPASS;
	if (!c->route->cache)
		return PCACHE_FORWARD;          /* cache=off: no X-Cache-Status either */
	cache_policy_request(req, &ri);
	/* An authenticated request may see content meant for it alone: it
	 * neither gets nor leaves a shared copy (as Varnish does). */
	if (ri.action == CACHE_ACT_BYPASS || (ri.auth && ri.action != CACHE_ACT_INVALIDATE))
		goto bypass;
	klen = cache_policy_key("http", 80, req, key, sizeof(key));
	if (klen <= 0)
		goto bypass;
	if (ri.action == CACHE_ACT_INVALIDATE) {
		c->pc = pc_new(key, (size_t)klen, head, head_len);
		if (c->pc)
			c->pc->invalidate = 1;
		goto bypass;
	}
	now = cache_now_ms();
	e = cache_http_lookup(rf_cache, key, (size_t)klen, req, now, vkey, sizeof(vkey));
	if (!e && ri.only_if_cached)
		return PCACHE_GATEWAY_TIMEOUT;
	f = e ? cache_policy_freshness(cache_entry_http(e), &ri, now) : CACHE_STALE;
	if (f == CACHE_FRESH)
		return serve_stored(e, &ri, req, CACHE_OUT_HIT, hit, outcome);
	/* stale-while-revalidate: one request refreshes the entry while the
	 * others are answered with the stale copy at once */
	if (f == CACHE_STALE_SERVE &&
	    cache_fill_claim(rf_cache, key, (size_t)klen, now, &swr_tok) == CACHE_FILL_WAIT)
		return serve_stored(e, &ri, req, CACHE_OUT_STALE, hit, outcome);
	*outcome = CACHE_OUT_MISS;
	c->pc = pc_new(key, (size_t)klen, head, head_len);
	if (!c->pc) {
		cache_fill_release(rf_cache, swr_tok);
		return PCACHE_FORWARD;
	}
	c->pc->ri = ri;
	c->pc->request_ms = now;
	c->pc->fill_tok = swr_tok;
	c->pc->fill_lead = swr_tok != 0;
	/* A stale copy with a validator is revalidated (a 304 refreshes it);
	 * any stale copy may still answer if the backend fails. */
	if (e && (has_validator(e) || cache_policy_stale_if_error(cache_entry_http(e), &ri, now))) {
		cache_entry_hold(e);
		c->pc->old = e;
		c->pc->revalidating = (uint8_t)has_validator(e);
	}
	/* Coalescing: the first miss of a key fetches it, the others wait
	 * for its response instead of going to the backend too. */
	if (w->cfg->cache.coalesce && !swr_tok && req->content_length <= 0 &&
	    !(req->flags & HTTP_FL_CHUNKED)) {
		int claim = cache_fill_claim(rf_cache, key, (size_t)klen, now,
					     &c->pc->fill_tok);

		if (claim == CACHE_FILL_WAIT)
			return PCACHE_WAIT;
		c->pc->fill_lead = claim == CACHE_FILL_LEAD;
	}
	/* a revalidation is counted when its answer shows what it was */
	if (!c->pc->revalidating)
		cache_count(rf_cache, w->id, CACHE_OUT_MISS);
	return PCACHE_FORWARD;
bypass:
	cache_count(rf_cache, w->id, CACHE_OUT_BYPASS);
	return PCACHE_FORWARD;
}

int pcache_resume(struct conn *c, const struct http_req **req,
		  const struct cache_entry **hit, uint8_t *outcome)
{
	struct pcache_req *pc = c->pc;
	struct worker *w = c->s.w;
	char vkey[CACHE_KEY_MAX];
	const struct cache_entry *e;
	int64_t now = cache_now_ms();

	if (cache_fill_waiting(rf_cache, pc->fill_tok, now))
		return PCACHE_WAIT;
	if (http_parse_request(pc->heads, pc->req_len, 0, &w->limits, w->req) <= 0)
		return PCACHE_GATEWAY_TIMEOUT;
	*req = w->req;
	e = cache_http_lookup(rf_cache, pc->key, pc->klen, w->req, now, vkey, sizeof(vkey));
	if (e && cache_policy_freshness(cache_entry_http(e), &pc->ri, now) == CACHE_FRESH)
		return serve_stored(e, &pc->ri, w->req, CACHE_OUT_HIT, hit, outcome);
	/* The owning shard may not have applied the insert yet: look again for
	 * a moment before fetching (a response that was not storable costs the
	 * waiters this grace, never a wrong answer). */
	if (!pc->grace_until)
		pc->grace_until = now + FILL_GRACE_MS;
	if (now < pc->grace_until)
		return PCACHE_WAIT;
	/* the fetch we waited for gave nothing to share: fetch ourselves */
	*outcome = CACHE_OUT_MISS;
	pc->request_ms = now;
	if (!pc->revalidating)
		cache_count(rf_cache, w->id, CACHE_OUT_MISS);
	return PCACHE_FORWARD;
}

static void pc_fill_done(struct pcache_req *pc)
{
	if (pc->fill_lead) {
		cache_fill_release(rf_cache, pc->fill_tok);
		pc->fill_lead = 0;
	}
}

/* Queue a response made of stored bytes. The head comes from <head_e>:
 * sent from the entry when it is <body_e> itself, else copied (a refreshed
 * entry about to be handed to the store, or a 304 made from the fields);
 * then the per-request fields, then <body_e>'s final CRLF and body (only
 * the CRLF for HEAD and 304). The caller's reference on <body_e> passes to
 * the first segment that points into it; the others take their own. */
static int send_stored(struct conn *c, const struct cache_entry *head_e,
		       const struct cache_entry *body_e, uint8_t outcome)
{
	struct worker *w = c->s.w;
	struct chunk *ck = chunk_get(w);
	const struct cache_http_meta *hm = cache_entry_http(head_e);
	int not_modified = !!(outcome & PCACHE_NOT_MODIFIED);
	int copy = not_modified || head_e != body_e, passed = 0;
	enum cache_outcome o = (enum cache_outcome)(outcome & ~PCACHE_NOT_MODIFIED);
	struct iovec iov[3];
	int n = 0, m = 0, i;

	if (!ck) {
		cache_entry_release(body_e);
		return -ENOMEM;
	}
	if (not_modified) {
		n = cache_http_not_modified(head_e, ck->data, ck->cap);
	} else if (copy) {
		n = hm->hdr_end < ck->cap ? (int)hm->hdr_end : -ENOSPC;
		if (n > 0)
			memcpy(ck->data, cache_entry_value(head_e), hm->hdr_end);
	}
	if (n >= 0)
		m = cache_http_hit_fields(head_e, cache_now_ms(), o, ck->data + n,
					  ck->cap - (uint32_t)n);
	if (n >= 0 && m >= 0) {
		n += m;
		m = snprintf(ck->data + n, ck->cap - (uint32_t)n, "X-Request-Id: %.*s\r\n%s",
			     (int)c->reqid_len, c->reqid,
			     !c->keepalive ? "Connection: close\r\n" :
			     c->client_minor ? "" : "Connection: keep-alive\r\n");
	}
	if (n < 0 || m < 0 || (uint32_t)(n + m) >= ck->cap) {
		chunk_put(w, ck);
		cache_entry_release(body_e);
		return -ENOMEM;
	}
	cache_http_iov(body_e, ck->data, (size_t)(n + m), c->meth == HTTP_M_HEAD || not_modified,
		       iov);
	if (copy)
		iov[0].iov_len = 0;
	for (i = 0; i < 3; i++) {
		int ret;

		if (i == 1) {
			ret = segq_push(w, &c->s.out, iov[1].iov_base, (uint32_t)iov[1].iov_len,
					-1, ck);
		} else if (iov[i].iov_len) {
			if (passed++)
				cache_entry_hold(body_e);
			ret = segq_push_entry(w, &c->s.out, iov[i].iov_base,
					      (uint32_t)iov[i].iov_len, body_e);
		} else {
			continue;
		}
		if (ret < 0)
			return ret;
	}
	if (!passed)
		cache_entry_release(body_e);
	c->status = not_modified ? 304 : hm->status;
	c->head_sent = 1;
	cache_count(rf_cache, w->id, o);
	return 0;
}

int pcache_send_hit(struct conn *c, const struct cache_entry *e, uint8_t outcome)
{
	return send_stored(c, e, e, outcome);
}

int pcache_revalidated(struct conn *c, const struct http_resp *r304)
{
	struct pcache_req *pc = c->pc;
	struct worker *w = c->s.w;
	struct cache_policy_conf pconf;
	struct cache_entry *fresh = NULL;
	const struct cache_entry *old;
	uint8_t outcome = CACHE_OUT_REVALIDATED;
	int v, ret;

	if (!pc || !pc->revalidating || !pc->old)
		return -ENOENT;
	old = pc->old;
	pc->old = NULL;
	pconf.default_ttl_ms = route_ttl(c);
	v = cache_http_refresh(rf_cache, old, r304, &pc->ri, pc->request_ms, cache_now_ms(),
			       &pconf, &fresh);
	if (v < 0)      /* the stored copy is current all the same: serve it as it is */
		return send_stored(c, old, old, outcome);
	/* the client's own validators are checked against the refreshed copy */
	if (pc->ri.conditional &&
	    http_parse_request(pc->heads, pc->req_len, 0, &w->limits, w->req) > 0 &&
	    cache_policy_not_modified(fresh, w->req))
		outcome |= PCACHE_NOT_MODIFIED;
	ret = send_stored(c, fresh, old, outcome);
	/* Into the store either way: a copy the 304 made unstorable is born
	 * expired and so replaces the old one by nothing. */
	cache_insert(rf_cache, w->id, fresh, cache_now_ms());
	if (pc->fill_lead) {
		cache_fill_release_after(rf_cache, w->id, pc->key, pc->klen, pc->fill_tok);
		pc->fill_lead = 0;
	}
	return ret;
}

int pcache_forward_fields(struct conn *c, char *out, size_t cap)
{
	struct pcache_req *pc = c->pc;
	int n;

	if (!pc || !pc->revalidating || !pc->old)
		return 0;
	n = cache_policy_conditional(pc->old, out, cap);
	if (n <= 0)
		pc->revalidating = 0;   /* validators too long to send: fetch it whole */
	return n > 0 ? n : 0;
}

int pcache_response_head(struct conn *c, const struct http_resp *resp,
			 const char *head, uint32_t head_len, char *out, size_t cap)
{
	struct pcache_req *pc = c->pc;
	struct cache_policy_conf pconf;
	struct cache_storeinfo si;
	char *heads;
	int n;

	if (!c->route->cache)
		return 0;
	n = snprintf(out, cap, "X-Cache-Status: %s\r\n",
		     outcome_names[pc && !pc->invalidate ? CACHE_OUT_MISS : CACHE_OUT_BYPASS]);
	if (!pc || pc->invalidate)
		return n;
	if (pc->revalidating) {
		/* the backend sent a new response (or relays a 304 to the client's
		 * own validators): the stored copy was of no use */
		pc->revalidating = 0;
		cache_count(rf_cache, c->s.w->id, CACHE_OUT_MISS);
	}
	pc->response_ms = cache_now_ms();
	pconf.default_ttl_ms = route_ttl(c);
	if (pc->ri.head || cache_policy_response(&pc->ri, resp, pc->request_ms,
						 pc->response_ms, &pconf, &si) != CACHE_STORE_OK)
		return n;
	heads = realloc(pc->heads, pc->req_len + head_len);
	if (!heads)
		return n;
	pc->heads = heads;
	memcpy(heads + pc->req_len, head, head_len);
	pc->resp_len = head_len;
	ob_init(&pc->body, c->s.w->cfg->cache.max_object_size);
	pc->collecting = 1;
	return n;
}

void *pcache_collector(struct conn *c)
{
	return c->pc && c->pc->collecting ? c->pc : NULL;
}

void pcache_body(void *arg, const char *p, uint32_t n)
{
	struct pcache_req *pc = arg;

	if (pc->collecting) {
		ob_put(&pc->body, p, n);
		if (pc->body.failed) {
			/* larger than max_object_size: relayed, not stored */
			pc->collecting = 0;
			ob_free(&pc->body);
		}
	}
}

void pcache_response_done(struct conn *c)
{
	struct pcache_req *pc = c->pc;
	struct worker *w = c->s.w;
	struct cache_policy_conf pconf;
	struct cache_storeinfo si;
	struct iovec body;
	int64_t now;

	if (!pc)
		return;
	now = cache_now_ms();
	if (pc->invalidate) {
		if (c->status >= 200 && c->status < 400)
			cache_purge(rf_cache, w->id, CACHE_REQ_DEL, pc->key, pc->klen, now);
		return;
	}
	if (!pc->collecting || c->status == 0)
		return;
	/* The heads were copied: parse them again for the views the store
	 * needs (Vary values from the request, fields of the response). */
	if (http_parse_request(pc->heads, pc->req_len, 0, &w->limits, w->req) <= 0 ||
	    http_parse_response(pc->heads + pc->req_len, pc->resp_len, 0, &w->resp_limits,
				w->resp) <= 0)
		return;
	pconf.default_ttl_ms = route_ttl(c);
	if (cache_policy_response(&pc->ri, w->resp, pc->request_ms, pc->response_ms,
				  &pconf, &si) != CACHE_STORE_OK)
		return;
	body.iov_base = pc->body.p;
	body.iov_len = pc->body.len;
	cache_http_store(rf_cache, w->id, pc->key, pc->klen, w->req, w->resp, &si,
			 &body, 1, now);
	pc->collecting = 0;
	/* waiters look again once the owning shard has applied the insert */
	if (pc->fill_lead) {
		cache_fill_release_after(rf_cache, w->id, pc->key, pc->klen, pc->fill_tok);
		pc->fill_lead = 0;
	}
}

int pcache_serve_stale(struct conn *c)
{
	struct pcache_req *pc = c->pc;
	const struct cache_entry *e;

	if (!pc || !pc->old ||
	    !cache_policy_stale_if_error(cache_entry_http(pc->old), &pc->ri, cache_now_ms()))
		return -ENOENT;
	e = pc->old;
	pc->old = NULL;
	pc->collecting = 0;
	return pcache_send_hit(c, e, CACHE_OUT_STALE);
}

void pcache_release(struct conn *c)
{
	struct pcache_req *pc = c->pc;

	if (!pc)
		return;
	if (pc->old)
		cache_entry_release(pc->old);
	pc_fill_done(pc);
	ob_free(&pc->body);
	free(pc->heads);
	free(pc);
	c->pc = NULL;
}

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
	uint64_t fill_tok;      /* coalescing token (lead or waited on) */
	int64_t grace_until;    /* waiter: stop looking for the lead's entry */
	const struct cache_entry *stale;        /* held: a stale copy for stale-if-error */
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

int pcache_request(struct conn *c, const struct http_req *req, const char *head,
		   uint32_t head_len, const struct cache_entry **hit, uint8_t *outcome)
{
	struct worker *w = c->s.w;
	char key[CACHE_KEY_MAX], vkey[CACHE_KEY_MAX];
	const struct cache_entry *e;
	struct cache_reqinfo ri;
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
	if (e) {
		f = cache_policy_freshness(cache_entry_http(e), &ri, now);
		if (f == CACHE_FRESH || f == CACHE_STALE_SERVE) {
			cache_entry_hold(e);
			*hit = e;
			*outcome = f == CACHE_FRESH ? CACHE_OUT_HIT : CACHE_OUT_STALE;
			return PCACHE_HIT;
		}
	} else if (ri.only_if_cached) {
		return PCACHE_GATEWAY_TIMEOUT;
	}
	*outcome = CACHE_OUT_MISS;
	c->pc = pc_new(key, (size_t)klen, head, head_len);
	if (!c->pc)
		return PCACHE_FORWARD;
	c->pc->ri = ri;
	c->pc->request_ms = now;
	/* a stale copy is refetched; it may still answer if the backend fails */
	if (e && cache_policy_stale_if_error(cache_entry_http(e), &ri, now)) {
		cache_entry_hold(e);
		c->pc->stale = e;
	}
	/* Coalescing: the first miss of a key fetches it, the others wait
	 * for its response instead of going to the backend too. */
	if (w->cfg->cache.coalesce && req->content_length <= 0 &&
	    !(req->flags & HTTP_FL_CHUNKED)) {
		int claim = cache_fill_claim(rf_cache, key, (size_t)klen, now,
					     &c->pc->fill_tok);

		if (claim == CACHE_FILL_WAIT)
			return PCACHE_WAIT;
		c->pc->fill_lead = claim == CACHE_FILL_LEAD;
	}
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
	if (e && cache_policy_freshness(cache_entry_http(e), &pc->ri, now) == CACHE_FRESH) {
		cache_entry_hold(e);
		*hit = e;
		*outcome = CACHE_OUT_HIT;
		return PCACHE_HIT;
	}
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

int pcache_send_hit(struct conn *c, const struct cache_entry *e, uint8_t outcome)
{
	struct worker *w = c->s.w;
	struct chunk *ck = chunk_get(w);
	struct iovec iov[3];
	int n, m, i;

	if (!ck) {
		cache_entry_release(e);
		return -ENOMEM;
	}
	n = cache_http_hit_fields(e, cache_now_ms(), (enum cache_outcome)outcome,
				  ck->data, ck->cap);
	m = n < 0 ? -1 : snprintf(ck->data + n, ck->cap - (uint32_t)n,
				  "X-Request-Id: %.*s\r\n%s", (int)c->reqid_len, c->reqid,
				  !c->keepalive ? "Connection: close\r\n" :
				  c->client_minor ? "" : "Connection: keep-alive\r\n");
	if (n < 0 || m < 0 || (uint32_t)(n + m) >= ck->cap) {
		chunk_put(w, ck);
		cache_entry_release(e);
		return -ENOMEM;
	}
	cache_http_iov(e, ck->data, (size_t)(n + m), c->meth == HTTP_M_HEAD, iov);
	/* segments 0 and 2 point into the entry: each holds a reference, and
	 * the caller's reference goes to the first */
	for (i = 0; i < 3; i++) {
		int ret;

		if (!iov[i].iov_len) {
			if (i == 1)
				chunk_put(w, ck);
			continue;
		}
		if (i == 1)
			ret = segq_push(w, &c->s.out, iov[i].iov_base, (uint32_t)iov[i].iov_len,
					-1, ck);
		else {
			if (i == 2)
				cache_entry_hold(e);
			ret = segq_push_entry(w, &c->s.out, iov[i].iov_base,
					      (uint32_t)iov[i].iov_len, e);
		}
		if (ret < 0)
			return ret;
	}
	c->status = 200;
	c->head_sent = 1;
	cache_count(rf_cache, w->id, (enum cache_outcome)outcome);
	return 0;
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

	if (!pc || !pc->stale ||
	    !cache_policy_stale_if_error(cache_entry_http(pc->stale), &pc->ri, cache_now_ms()))
		return -ENOENT;
	e = pc->stale;
	pc->stale = NULL;
	pc->collecting = 0;
	return pcache_send_hit(c, e, CACHE_OUT_STALE);
}

void pcache_release(struct conn *c)
{
	struct pcache_req *pc = c->pc;

	if (!pc)
		return;
	if (pc->stale)
		cache_entry_release(pc->stale);
	pc_fill_done(pc);
	ob_free(&pc->body);
	free(pc->heads);
	free(pc);
	c->pc = NULL;
}

/* proxy_cache.h - the response cache on the proxy path: look up before a
 * backend is chosen and answer hits from the client's worker in one send;
 * on a miss, decide from the response head whether it may be stored, tap
 * the decoded body while it is relayed, and store it when it is complete.
 * Unsafe methods drop the stored response for their URI. */
#ifndef RF_PROXY_CACHE_H
#define RF_PROXY_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "http_parse.h"

struct cache;
struct conn;
struct cache_entry;

/* The process's cache (NULL when [cache] is absent); outlives reloads. */
extern struct cache *rf_cache;

enum pcache_verdict {
	PCACHE_FORWARD = 0,     /* go to a backend (c->pc may collect the response) */
	PCACHE_HIT,             /* *hit holds a stored response to serve */
	PCACHE_GATEWAY_TIMEOUT, /* only-if-cached and nothing stored: 504 */
	PCACHE_WAIT,            /* another request fetches this key: wait for it */
};

/* Added to an outcome: answer 304 Not Modified (the client's validators
 * match the stored response). */
#define PCACHE_NOT_MODIFIED 0x80

/* A routed, admitted request whose head is still in place at <head>.
 * Returns an enum pcache_verdict; for PCACHE_HIT *hit is held (the caller
 * serves it with pcache_send_hit(), which takes the reference over). */
int pcache_request(struct conn *c, const struct http_req *req, const char *head,
		   uint32_t head_len, const struct cache_entry **hit, uint8_t *outcome);

/* A request that waited for another one's fetch of its key: still
 * waiting (PCACHE_WAIT), now a hit (PCACHE_HIT, *hit held), or fetch it
 * after all (PCACHE_FORWARD; the request is parsed again into the
 * worker's scratch request, returned in *req). */
int pcache_resume(struct conn *c, const struct http_req **req,
		  const struct cache_entry **hit, uint8_t *outcome);

/* Queue a hit on the client: the stored head, this response's own fields
 * (Age, X-Cache-Status, X-Request-Id, Connection), then the stored body,
 * pointing into the entry (no copy); or a 304 made from the stored fields
 * when <outcome> has PCACHE_NOT_MODIFIED. Returns 0 or -ENOMEM. */
int pcache_send_hit(struct conn *c, const struct cache_entry *e, uint8_t outcome);

/* Validator fields to add to the backend request when a stale stored
 * copy is being revalidated (the client's own If-None-Match /
 * If-Modified-Since are then dropped). Returns their length, 0 for none. */
int pcache_forward_fields(struct conn *c, char *out, size_t cap);

/* A 304 answered the revalidation: queue the refreshed copy (or 304 when
 * the client's validators match it) and store it. Returns 0 when answered,
 * -ENOENT when the 304 is not the cache's (relay it), -ENOMEM. */
int pcache_revalidated(struct conn *c, const struct http_resp *r304);

/* The backend's response head: decide whether to store it, and write the
 * X-Cache-Status line for the client into <out>. Returns its length. */
int pcache_response_head(struct conn *c, const struct http_resp *resp,
			 const char *head, uint32_t head_len, char *out, size_t cap);

/* The argument for pcache_body() when the response is being collected,
 * else NULL. */
void *pcache_collector(struct conn *c);

/* Decoded body bytes of the response, as they are relayed. */
void pcache_body(void *arg, const char *p, uint32_t n);

/* The whole response was relayed: store what was collected. */
void pcache_response_done(struct conn *c);

/* The backend failed (connect error, timeout, 5xx): answer with the stale
 * copy when stale-if-error allows it. Returns 0 when queued, -ENOENT when
 * there is none to serve, -ENOMEM. */
int pcache_serve_stale(struct conn *c);

/* Drop the request's cache state (request finished or connection closed). */
void pcache_release(struct conn *c);

#endif

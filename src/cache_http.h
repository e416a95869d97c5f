/* cache_http.h - HTTP responses in the store: building the stored bytes of
 * a response (head ready to send + body), Vary-aware lookup and store, the
 * 304 refresh, and the iovecs of a hit (one send, no copy of the bytes). */
#ifndef RF_CACHE_HTTP_H
#define RF_CACHE_HTTP_H

#include <sys/uio.h>
#include "cache.h"
#include "cache_policy.h"

/* Find the stored response for <key> (from cache_policy_key) that the
 * request selects: through the Vary marker to the variant when there is
 * one. <vbuf>/<vcap> is scratch for the variant key. Valid like
 * cache_lookup() (until the next quiescent point). Returns NULL on a miss. */
const struct cache_entry *cache_http_lookup(struct cache *c, const char *key, size_t klen,
					    const struct http_req *req, int64_t now_ms,
					    char *vbuf, size_t vcap);

/* Build the entry to store for <resp> under <key>: status line, the
 * end-to-end fields (hop-by-hop fields, Content-Length, Age, Set-Cookie,
 * Surrogate-Key, Cache-Tag and X-Cache-Status dropped), Content-Length of
 * the body, CRLF, then the <nbody> body pieces (decoded: no chunk framing).
 * Surrogate-Key / Cache-Tag values become the entry's tags.
 * Returns 0 and *out (owned by the caller: cache_insert() it or
 * cache_entry_free() it), -E2BIG (over max_object_size), -ENOMEM. */
int cache_http_build(const struct cache *c, const char *key, size_t klen,
		     const struct http_resp *resp, const struct cache_storeinfo *si,
		     const struct iovec *body, int nbody, struct cache_entry **out);

/* Store a storable response (cache_policy_response() said CACHE_STORE_OK)
 * under the base <key>: directly, or as a variant plus a Vary marker.
 * Worker <w> (or -1) hands the inserts to the owning shards.
 * Returns 0, -E2BIG, -ENOSPC (variant key too long), -ENOMEM. */
int cache_http_store(struct cache *c, int w, const char *key, size_t klen,
		     const struct http_req *req, const struct http_resp *resp,
		     const struct cache_storeinfo *si, const struct iovec *body, int nbody,
		     int64_t now_ms);

/* A 304 answered the revalidation of <old> (held by the caller): build the
 * refreshed entry - <old>'s body, its fields updated by the 304's (RFC
 * 9111 4.3.4), new age and freshness. The caller serves it (REVALIDATED)
 * and, when the return value is CACHE_STORE_OK, cache_insert()s it; else
 * serves it once and frees it. Returns CACHE_STORE_OK, an enum
 * cache_nostore reason (> 0), or -ENOMEM / -E2BIG (*out NULL). */
int cache_http_refresh(const struct cache *c, const struct cache_entry *old,
		       const struct http_resp *r304, const struct cache_reqinfo *ri,
		       int64_t request_ms, int64_t response_ms,
		       const struct cache_policy_conf *pc, struct cache_entry **out);

/* Per-request fields of a hit: "Age: N\r\nX-Cache-Status: S\r\n". The
 * caller may append its own (Connection, X-Request-Id), each ending CRLF.
 * Returns the length or -ENOSPC. */
int cache_http_hit_fields(const struct cache_entry *e, int64_t now_ms,
			  enum cache_outcome status, char *out, size_t cap);

/* A 304 Not Modified head made from stored response <e>: the status line
 * and the stored fields a 304 carries (RFC 9110 15.4.5: Cache-Control,
 * Content-Location, Date, ETag, Expires, Last-Modified, Vary), without the
 * final CRLF, so the caller appends per-request fields and ends it.
 * Returns the length or -ENOSPC. */
int cache_http_not_modified(const struct cache_entry *e, char *out, size_t cap);

/* iov[0] = stored head up to its last field, iov[1] = <extra> (per-request
 * fields), iov[2] = the stored final CRLF and body (only the CRLF when
 * <head_only>). Returns the total length. */
size_t cache_http_iov(const struct cache_entry *e, const char *extra, size_t elen,
		      int head_only, struct iovec iov[3]);

#endif

/* cache_policy.h - HTTP caching rules for a shared cache (RFC 9111) as pure
 * functions over parsed heads: what a request may use, what a response may
 * store and for how long, how old and how fresh a stored response is, the
 * cache key, Vary, validators, invalidation, and HTTP date parsing.
 * Nothing here allocates or touches the store. */
#ifndef RF_CACHE_POLICY_H
#define RF_CACHE_POLICY_H

#include <stdint.h>
#include "cache.h"
#include "http_parse.h"

#define CACHE_KEY_MAX   8192    /* a buffer this big fits any key the proxy makes */
#define CACHE_VARY_MAX  256     /* bytes of a response's Vary field names */

/* Cache-Control directives (request or response). Seconds; -1 = absent. */
#define CACHE_CC_NO_STORE         0x0001
#define CACHE_CC_NO_CACHE         0x0002
#define CACHE_CC_PRIVATE          0x0004
#define CACHE_CC_PUBLIC           0x0008
#define CACHE_CC_MUST_REVALIDATE  0x0010
#define CACHE_CC_PROXY_REVALIDATE 0x0020
#define CACHE_CC_ONLY_IF_CACHED   0x0040
#define CACHE_CC_NO_TRANSFORM     0x0080
#define CACHE_CC_IMMUTABLE        0x0100
#define CACHE_CC_MAX_STALE        0x0200   /* present; max_stale -1 = any staleness */
#define CACHE_CC_PRESENT          0x8000   /* a Cache-Control field was there */

struct cache_cc {
	uint32_t flags;
	int64_t max_age;
	int64_t s_maxage;
	int64_t max_stale;
	int64_t min_fresh;
	int64_t swr;            /* stale-while-revalidate */
	int64_t sie;            /* stale-if-error */
};

/* Combine every Cache-Control field of <hdrs>. The first occurrence of a
 * directive wins; an invalid max-age / s-maxage counts as 0 (stale). */
void cache_cc_parse(const struct http_hdr *hdrs, uint32_t n, struct cache_cc *cc);

enum cache_action {
	CACHE_ACT_BYPASS = 0,   /* forward, do not store: X-Cache-Status: BYPASS */
	CACHE_ACT_LOOKUP,       /* look up: fresh -> HIT, else fetch or revalidate */
	CACHE_ACT_REVALIDATE,   /* look up, but a stored response must be revalidated */
	CACHE_ACT_INVALIDATE,   /* unsafe method: forward; on 2xx/3xx drop the URI */
};

/* What the request allows. */
struct cache_reqinfo {
	uint8_t action;         /* enum cache_action */
	uint8_t head;           /* HEAD: answer with the head only, never store */
	uint8_t auth;           /* Authorization present */
	uint8_t no_store;       /* the request forbids storing its response */
	uint8_t only_if_cached; /* answer 504 on a miss */
	uint8_t conditional;    /* If-None-Match / If-Modified-Since: a match gets 304 */
	struct cache_cc cc;
};

/* Classify a request: method, Cache-Control, Pragma, Authorization, Range,
 * preconditions (If-Match / If-Unmodified-Since go to the backend). */
void cache_policy_request(const struct http_req *req, struct cache_reqinfo *ri);

struct cache_policy_conf {
	int64_t default_ttl_ms; /* lifetime for responses without one; 0 = never guess */
};

/* Why a response is not stored (0 = storable). */
enum cache_nostore {
	CACHE_STORE_OK = 0,
	CACHE_NS_METHOD,        /* not a GET (HEAD responses have no body to keep) */
	CACHE_NS_REQUEST,       /* the request said no-store */
	CACHE_NS_STATUS,        /* status not cacheable, or needs explicit freshness */
	CACHE_NS_NO_STORE,
	CACHE_NS_PRIVATE,
	CACHE_NS_AUTH,          /* Authorization without public / s-maxage / must-revalidate */
	CACHE_NS_VARY,          /* Vary: * or too many names */
	CACHE_NS_SET_COOKIE,    /* one client's cookie must not reach the others */
	CACHE_NS_FRESHNESS,     /* no lifetime, or nothing usable (stale, no validator) */
};

const char *cache_nostore_str(int reason);

/* Everything the store needs about a storable response. */
struct cache_storeinfo {
	int64_t date_ms;        /* Date, or the response time when absent/invalid */
	int64_t lifetime_ms;
	int64_t initial_age_ms; /* corrected_initial_age */
	int64_t swr_ms, sie_ms;
	int64_t store_until_ms; /* when the store may drop it (fresh + stale windows) */
	int64_t request_ms, response_ms;
	uint32_t flags;         /* CACHE_HF_* */
	const struct http_hdr *etag;            /* views into the response */
	const struct http_hdr *last_modified;
	uint16_t vary_len;      /* 0 = no Vary */
	char vary[CACHE_VARY_MAX];      /* lower-case field names, comma separated */
};

/* May a shared cache store <resp> (answer to the request <ri> describes)?
 * <request_ms>/<response_ms>: when the request was sent / the response head
 * arrived. Fills <si> (also when refused, as far as it got).
 * Returns CACHE_STORE_OK or an enum cache_nostore reason. */
int cache_policy_response(const struct cache_reqinfo *ri, const struct http_resp *resp,
			  int64_t request_ms, int64_t response_ms,
			  const struct cache_policy_conf *pc, struct cache_storeinfo *si);

/* current_age of a stored response at <now_ms> (RFC 9111 4.2.3), in ms. */
int64_t cache_policy_age_ms(const struct cache_http_meta *m, int64_t now_ms);

enum cache_fresh {
	CACHE_FRESH = 0,        /* serve it: HIT */
	CACHE_STALE_SERVE,      /* serve it stale (stale-while-revalidate / max-stale)
				 * and refresh it in the background: STALE */
	CACHE_STALE,            /* revalidate (or refetch) before serving */
};

/* Can the stored response answer this request at <now_ms>? */
int cache_policy_freshness(const struct cache_http_meta *m, const struct cache_reqinfo *ri,
			   int64_t now_ms);

/* 1 when a stale stored response may answer because the fetch failed
 * (5xx, connect error, timeout): within stale-if-error of the response or
 * the request, and not must-revalidate / no-cache. */
int cache_policy_stale_if_error(const struct cache_http_meta *m,
				const struct cache_reqinfo *ri, int64_t now_ms);

/* Validator fields for revalidating <e>: "If-None-Match: ..\r\n" and/or
 * "If-Modified-Since: ..\r\n". Returns the length written, 0 when <e> has
 * no validator (fetch unconditionally), -ENOSPC. */
int cache_policy_conditional(const struct cache_entry *e, char *out, size_t cap);

/* 1 when the client's If-None-Match (or, without one, If-Modified-Since)
 * matches the stored 200 response <e>: the cache answers 304 Not Modified
 * (RFC 9110 13.2.2, weak comparison for If-None-Match). */
int cache_policy_not_modified(const struct cache_entry *e, const struct http_req *req);

/* 1 when the response to an unsafe request invalidates its target URI
 * (RFC 9111 4.4: method not known safe, status 2xx or 3xx). */
int cache_policy_invalidates(const struct http_req *req, const struct http_resp *resp);

/* Cache key "scheme://host:port" + target: host lower-cased, the default
 * port added when absent. Returns the length (no NUL), -EINVAL without a
 * usable Host, -ENOSPC. */
int cache_policy_key(const char *scheme, uint16_t default_port, const struct http_req *req,
		     char *out, size_t cap);

/* Key of the variant of <base> the request selects: base SEP then, per
 * name in <names> (comma separated), "name=value\n" with the request's
 * field lines joined by ',' and trimmed. Returns the length, -ENOSPC. */
int cache_policy_variant_key(const char *base, size_t blen, const char *names, size_t nlen,
			     const struct http_req *req, char *out, size_t cap);

/* Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime) into seconds since
 * the epoch. Returns 0 or -EINVAL. */
int cache_parse_http_date(const char *s, size_t len, int64_t *out);

/* Write <t> as an IMF-fixdate (29 characters + NUL) into <out>. */
void cache_format_http_date(int64_t t, char out[30]);

#endif

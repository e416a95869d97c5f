/* rl_clients.h - the rate limiter as the proxy uses it: [ratelimit]
 * defaults, tiers, API keys and per-client overrides, the block list and
 * bans. rl_admit() is the one call per request; the admin API edits an
 * immutable directory that is swapped by pointer and reclaimed after every
 * worker has passed rl_quiescent() (QSBR). */
#ifndef RF_RL_CLIENTS_H
#define RF_RL_CLIENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "ratelimit.h"

#define RL_ID_MAX       128     /* client id (API key or address) + NUL */
#define RL_HDR_MAX      64      /* key header name + NUL */
#define RL_LEVEL_MAX    15      /* ban escalation stops here */

enum rl_route_mode {
	RL_ROUTE_DEFAULT = 0,   /* the [ratelimit] limit */
	RL_ROUTE_OFF,           /* no limit on this route */
	RL_ROUTE_CUSTOM,        /* the limit in the struct */
};

/* A route's limit; zeroed = the defaults. Built by rl_route_custom(). */
struct rl_route {
	uint8_t mode;           /* enum rl_route_mode */
	uint8_t key;            /* enum rl_key_kind */
	uint8_t require_key;    /* missing or unknown API key -> 401 */
	uint8_t hdr_len;
	char hdr[RL_HDR_MAX];   /* header carrying the key (RL_KEY_HEADER) */
	struct rl_policy pol;   /* the key's limit; with RL_KEY_HEADER the address limit */
	uint64_t salt;          /* custom routes: own buckets, not the default's */
};

/* A named limit API keys map to. */
struct rl_tier {
	char name[RF_NAME_MAX];
	struct rl_policy pol;
	uint32_t priority;      /* queue order of its clients' requests, higher first */
};

/* A client record as the admin API sees it. A client is a known API key
 * (or address): its limit is the override when capacity or rate_per_sec
 * is set (the other then defaults to the [ratelimit] one), else its tier's,
 * else the default. An id that is only blocked is not a client. */
struct rl_client {
	char id[RL_ID_MAX];
	uint32_t capacity;      /* burst override, 0 = none */
	double rate_per_sec;    /* refill override, 0 = none */
	char tier[RF_NAME_MAX]; /* "" = none */
	uint8_t is_client;      /* a known key; 0 = block-list only */
	uint8_t blocked;
	uint8_t from_config;    /* listed in [api_keys]: never expires */
};

/* One directory entry: a client, a blocked id, or both. */
struct rl_entry {
	uint64_t hash;          /* rl_id_hash(id) */
	struct rl_policy pol;   /* effective limit when is_client */
	uint32_t priority;      /* its tier's, when is_client */
	struct rl_client c;
};

/* Immutable once published: replaced whole by the admin functions. */
struct rl_dir {
	struct rl_entry *e;     /* owned, n entries */
	uint32_t n;
	uint32_t mask;          /* index size - 1, a power of two */
	uint32_t *index;        /* owned: open addressing on hash, entry + 1, 0 = empty */
	_Atomic int64_t *used;  /* owned, n: last request of each entry, rl clock seconds;
				 * written by workers when rl->track_use */
	uint64_t retired_at;    /* epoch it was replaced at */
	struct rl_dir *next;    /* retired list */
};

/* The request pieces rl_admit() needs (views, nothing copied). */
struct rl_request {
	const void *ip;         /* binary client address: 4 or 16 bytes */
	uint32_t ip_len;
	const char *path;       /* request target; the query is ignored */
	uint32_t path_len;
	const char *key;        /* key header value ("Bearer " stripped), NULL = absent */
	uint32_t key_len;
};

/* What to do with the request. */
struct rl_result {
	uint16_t status;        /* 0 = go on; 401, 403 or 429 = answer it */
	uint8_t headers;        /* put RateLimit-* (from v) on the response */
	uint8_t banned;         /* 429 because of a ban */
	uint32_t priority;      /* the client's tier priority (queueing), 0 = none */
	struct rl_verdict v;
};

/* Per-worker state on its own cache line: counters and the QSBR epoch. */
struct rl_worker {
	_Alignas(64) _Atomic uint64_t seen;     /* last epoch observed quiescent */
	_Atomic uint64_t admitted, rejected, unauthorized, blocked, banned;
	_Atomic uint64_t bans, ban_table_full;
};

struct rl_stats {
	uint64_t admitted, rejected, unauthorized, blocked, banned, bans, ban_table_full;
	struct rl_table_stats table;
	uint64_t clients, keys_bytes;
	double bytes_per_key;
};

/* Bans: one word per key in 64-byte buckets of 8, like the bucket table:
 * tag (20 bits) | level (4) | consecutive rejections (10) | time (30 bits,
 * seconds since the epoch). Written only when a request is rejected and
 * when a key with rejections on record is admitted again. */
struct rl_bans {
	_Atomic uint64_t *w;    /* owned: mmap'd */
	size_t bytes;
	uint32_t nbuckets;
};

struct rl {
	uint8_t enabled;        /* [ratelimit] present */
	uint8_t headers;        /* rate_limit_headers */
	uint32_t ban_after, ban_mult;
	uint32_t ban_time_s;
	uint64_t seed;          /* random per process: keys cannot be aimed */
	uint64_t epoch_us;
	struct rl_route def;    /* [ratelimit] */
	struct rl_tier *tiers;  /* owned, immutable after rl_init */
	uint32_t ntiers;
	struct rl_table table;
	struct rl_bans bans;
	_Atomic(struct rl_dir *) dir;
	uint32_t nworkers;
	struct rl_worker *workers;      /* owned, nworkers */
	_Atomic uint64_t epoch;         /* QSBR: bumped by every directory swap */
	uint64_t (*clock)(void);        /* admin calls' time: rl_now_us, tests inject */
	_Atomic uint8_t track_use;      /* keep dir->used up to date (client expiry) */
	/* Called by every admin change of an entry, under the lock, before the
	 * change is published: <c> is the entry after it (is_client and
	 * blocked both 0 = gone), <used> its last use. A negative return
	 * refuses the change (the persistence layer could not record it). */
	int (*on_change)(void *arg, const struct rl_client *c, int64_t used);
	void *on_change_arg;
	pthread_mutex_t lock;           /* admin writers only, never the request path */
	struct rl_dir *retired;         /* under lock */
	/* Several instances (cluster.c); NULL hooks = a single instance.
	 * gate: after the local buckets admitted <key> under <p>, may the
	 * cluster's lease spend a token? 1 yes, 0 no (429), -1 not managed.
	 * on_share: a client or block changed here (called under lock, after
	 * it is published; not for changes from elsewhere or the store). */
	int (*gate)(void *arg, unsigned worker, uint64_t key, const struct rl_policy *p);
	void (*on_share)(void *arg, const struct rl_client *c);
	/* on_ban: this instance banned <key> (level, seconds), on the request
	 * path: rare, once per ban. */
	void (*on_ban)(void *arg, uint64_t key, unsigned level, uint64_t len_s);
	void *hook_arg;
	uint8_t quiet;                  /* under lock: applying a change from elsewhere */
};

/* Build the limiter from cfg->ratelimit for <nworkers> workers (one bucket
 * shard each) with the clock at <now_us> (rl_now_us()). Works when the
 * section is absent too: rl_admit() then admits everything. Returns 0,
 * -EINVAL or -ENOMEM. */
int rl_init(struct rl *rl, const struct rf_config *cfg, unsigned nworkers, uint64_t now_us);

/* Free everything; workers must have stopped. */
void rl_destroy(struct rl *rl);

/* A route limit other than the default: <rate> per <period_us>, <burst>
 * (0 = rate), keyed by <key> (header name <hdr> for RL_KEY_HEADER).
 * Returns 0, -EINVAL or -ERANGE. rl_route_off() makes a route unlimited. */
int rl_route_custom(struct rl_route *r, enum rl_key_kind key, const char *hdr,
		    uint32_t rate, uint64_t period_us, uint32_t burst, int require_key);
void rl_route_off(struct rl_route *r);

/* Fill <rq> from a parsed request and the peer address, for <route>
 * (NULL = default): finds the key header by name. No copy, no allocation. */
struct http_req;
void rl_request_from_http(struct rl_request *rq, const struct rl *rl,
			  const struct rl_route *route, const struct http_req *req,
			  const struct sockaddr *peer);

/* THE hot-path call: block list, API key, ban, bucket(s). Returns and sets
 * res->status: 0 (forward; add rl_format_headers() to the response when
 * res->headers), 401, 403 or 429 (answer with rl_format_response()).
 * <worker> is the calling worker's index. Lock-free, allocation-free. */
int rl_admit(struct rl *rl, unsigned worker, const struct rl_route *route,
	     const struct rl_request *rq, uint64_t now_us, struct rl_result *res);

/* Admit one line-protocol key (an address or client id as text), with the
 * default limit and the same buckets, block list and bans as HTTP. */
int rl_admit_id(struct rl *rl, unsigned worker, const char *id, size_t len,
		uint64_t now_us, struct rl_result *res);

/* rl_line_feed() callback: <arg> is a struct rl_line_ctx. */
struct rl_line_ctx {
	struct rl *rl;
	unsigned worker;
	uint64_t now_us;
};
int rl_line_check(void *arg, const char *key, size_t len);

/* QSBR: each worker calls rl_quiescent() once per loop iteration, when it
 * holds no pointer into the directory; a stopping worker calls
 * rl_offline(). A replaced directory is freed once all have passed. */
void rl_quiescent(struct rl *rl, unsigned worker);
void rl_offline(struct rl *rl, unsigned worker);
void rl_reclaim(struct rl *rl);

/* ---- admin API (any thread; writers serialise on rl->lock) ---- */

/* The key an id maps to: an address literal the same as rl_key_ip(),
 * anything else the same as an API key in the key header. */
uint64_t rl_id_hash(const struct rl *rl, const char *id);

/* Create a client (-EEXIST if it is one), replace one (-ENOENT if not),
 * create or replace, get, delete (-ENOENT). c->tier must name a tier
 * (-ENOENT) and the override must make a valid limit (-EINVAL/-ERANGE).
 * A blocked id stays blocked across these. */
int rl_client_create(struct rl *rl, const struct rl_client *c);
int rl_client_update(struct rl *rl, const struct rl_client *c);
int rl_client_put(struct rl *rl, const struct rl_client *c);
int rl_client_get(struct rl *rl, const char *id, struct rl_client *out);
int rl_client_delete(struct rl *rl, const char *id);

/* Copy up to <max> clients and blocked ids from <offset> on into <out>;
 * returns how many there are in all. */
size_t rl_client_list(struct rl *rl, size_t offset, struct rl_client *out, size_t max);

/* Assign or change the tier of an API key, making it a client if needed.
 * Returns 0 or -ENOENT (no such tier) / -EINVAL (bad id). */
int rl_set_tier(struct rl *rl, const char *id, const char *tier);

/* Block list: requests with this API key or from this address get 403.
 * Returns 0, -EINVAL, or -ENOENT (unblock of an id not blocked). */
int rl_block(struct rl *rl, const char *id);
int rl_unblock(struct rl *rl, const char *id);

/* Set the entry of c->id to <c> (is_client, blocked, the limit fields)
 * without calling on_change: replaying stored state. <used> is its last
 * use in rl clock seconds. Returns 0, -EINVAL, -ENOENT (no such tier),
 * -ERANGE, -ENOMEM, or -EOPNOTSUPP when rate limiting is off. */
int rl_restore(struct rl *rl, const struct rl_client *c, int64_t used);

/* Called by rl_sweep() under the lock for an entry that expired (<c> no
 * longer a client) or was used since <since>; <used> is its last use. */
typedef void (*rl_sweep_fn)(void *arg, const struct rl_client *c, int64_t used);

/* Expire clients without a request for <idle_s> seconds (0 = none; ids
 * from [api_keys] never), in one directory swap: a blocked id stays
 * blocked. <fn> sees each expired entry and each client (not from
 * [api_keys]) used at or after <since> (rl clock seconds). Returns how
 * many expired, or -ENOMEM. */
int rl_sweep(struct rl *rl, uint64_t idle_s, int64_t since, rl_sweep_fn fn, void *arg);

/* Seconds on the clock dir->used counts in: rl->clock() / 1e6. */
int64_t rl_clock_s(const struct rl *rl);

struct rl_usage {
	struct rl_client c;     /* .is_client 0 for an unknown id */
	struct rl_verdict v;    /* the bucket now, nothing taken */
	uint32_t rejections;    /* consecutive, toward ban_after */
	uint32_t ban_level;
	uint32_t ban_left_s;    /* 0 = not banned */
};

/* The state of id's bucket (its address or API key bucket) and ban. */
int rl_usage(struct rl *rl, const char *id, uint64_t now_us, struct rl_usage *out);

/* Apply a client record that changed on another instance (or was loaded
 * from Redis): <c> is the whole new state; an id that is neither a client
 * nor blocked is removed. on_change (the local store) records it,
 * on_share is not called. Returns 0, -EINVAL, -ENOENT (a tier this
 * instance does not have), -EOPNOTSUPP, or on_change's error. */
int rl_apply_remote(struct rl *rl, const struct rl_client *c);

/* Another instance banned key hash <h> at <level> for <left_s> more
 * seconds: ban it here too (keys hash alike on every instance of a
 * cluster). Returns 0, -EINVAL (bans off), -ENOSPC (ban table full). */
int rl_ban_apply(struct rl *rl, uint64_t h, unsigned level, uint64_t left_s);

/* ---- surviving a restart (persist.c) ---- */

/* The key-hash seed, and setting a stored one before any request ran (the
 * entries of [api_keys] are hashed again with it). */
uint64_t rl_seed(const struct rl *rl);
int rl_reseed(struct rl *rl, const struct rf_ratelimit_conf *rc, uint64_t seed);

/* Every ban in force: fn(arg, slot of the ban table, its word without the
 * time, its end as wall-clock seconds). */
typedef void (*rl_ban_fn)(void *arg, uint32_t slot, uint64_t word, int64_t until_wall);
void rl_bans_each(struct rl *rl, int64_t wall_now, rl_ban_fn fn, void *arg);

/* Put a ban from rl_bans_each() back (same seed, same table size). Returns
 * 0 or -EINVAL (ended, or not a ban). */
int rl_ban_restore(struct rl *rl, uint32_t slot, uint64_t word, int64_t until_wall,
		   int64_t wall_now);
uint32_t rl_ban_buckets(const struct rl *rl);

const struct rl_tier *rl_tier_find(const struct rl *rl, const char *name);

void rl_stats(struct rl *rl, struct rl_stats *out);

#endif

/* cache.h - the sharded in-memory store behind the HTTP response cache and
 * the Redis-protocol port: one shard per worker, lock-free lookups from any
 * worker, writes applied only by the shard's owner, QSBR reclamation.
 *
 * Threads. Worker i owns shard i. Any worker may call cache_lookup() on any
 * shard: it walks atomic pointers and takes no lock. Only the owner links,
 * replaces, evicts or expires entries of its shard; other threads hand their
 * writes over as a struct cache_req through the shard's lock-free inbox, and
 * the owner applies them in cache_shard_poll(), once per loop iteration.
 *
 * Lifetime. Entries are immutable once published (only the expiry word and
 * the CLOCK use count change, both atomics). A pointer from cache_lookup()
 * stays valid until the caller's next cache_quiescent()/cache_offline();
 * to keep it longer (a send in flight) take a reference with
 * cache_entry_hold() and drop it with cache_entry_release(). A removed entry
 * is freed by its owner once every online worker has passed a quiescent
 * point since the removal and no reference is left.
 *
 * Memory. `memory` bounds the bytes of the entries in the index plus the
 * index itself, per shard memory/nshards; every entry is charged its struct,
 * key, value, aux bytes and an allocator overhead estimate. Entries removed
 * but not yet reclaimed (a grace period, or a send still holding them) are
 * reported apart as retired_bytes. */
#ifndef RF_CACHE_H
#define RF_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_MAX_WORKERS 1024
#define CACHE_VARY_SEP    '\x1f'   /* base key | SEP | variant: routed by the base */

enum cache_kind {
	CACHE_KIND_STRING = 0,  /* a value set over RESP (or an INCR counter) */
	CACHE_KIND_HTTP,        /* a stored response: value = head + body, meta in .http */
	CACHE_KIND_VARY,        /* marker under the base key: value = Vary field names */
};

/* Stored-response flags (cache_http_meta.flags). */
#define CACHE_HF_MUST_REVALIDATE 0x01  /* never served stale (must-/proxy-revalidate, s-maxage) */
#define CACHE_HF_NO_CACHE        0x02  /* revalidate before every use */
#define CACHE_HF_HEURISTIC       0x04  /* lifetime came from default_ttl */

/* What an HTTP entry knows about its response. Times are wall-clock ms. */
struct cache_http_meta {
	int64_t response_ms;    /* when the response (or its 304 refresh) arrived */
	int64_t initial_age_ms; /* corrected_initial_age (RFC 9111 4.2.3) */
	int64_t lifetime_ms;    /* freshness lifetime */
	int64_t swr_ms;         /* stale-while-revalidate window, 0 = none */
	int64_t sie_ms;         /* stale-if-error window, 0 = none */
	uint32_t flags;         /* CACHE_HF_* */
	uint16_t status;
	uint16_t ntags;         /* tags in the aux area, each NUL-terminated */
	uint32_t hdr_end;       /* offset of the CRLF that ends the head */
	uint32_t head_len;      /* offset of the body (hdr_end + 2) */
	uint32_t etag_off, etag_len;    /* ETag value inside the value; len 0 = none */
	uint32_t lm_off, lm_len;        /* Last-Modified value; len 0 = none */
};

/* One stored key. Allocated in one piece by cache_entry_new(): the struct,
 * then (HTTP only) the meta, then key, value and aux bytes. Owned by the
 * creator until handed to the cache, then by the shard's owner, which frees
 * it after removal + grace period + last reference. */
struct cache_entry {
	_Atomic(struct cache_entry *) next;  /* hash chain: owner writes, anyone reads */
	struct cache_entry *ring_next;       /* CLOCK ring; retire list once removed (owner) */
	union {
		struct cache_entry *ring_prev;   /* CLOCK ring while linked (owner) */
		uint64_t retire_epoch;           /* epoch of removal once retired (owner) */
	};
	uint64_t hash;
	_Atomic int64_t expires_ms;  /* absolute, 0 = never; owner rewrites (EXPIRE) */
	atomic_uint refs;            /* holders beyond a quiescent point */
	atomic_uchar freq;           /* CLOCK use count 0..3, bumped by readers */
	uint8_t kind;                /* enum cache_kind */
	uint8_t linked;              /* in the index (owner only) */
	uint8_t pad_;
	uint32_t klen, vlen, auxlen;
	uint32_t charge;             /* bytes accounted for it */
	char data[];
};

static inline struct cache_http_meta *cache_entry_http(const struct cache_entry *e)
{
	return (struct cache_http_meta *)(void *)e->data;
}

static inline const char *cache_entry_key(const struct cache_entry *e)
{
	return e->data + (e->kind == CACHE_KIND_HTTP ? sizeof(struct cache_http_meta) : 0);
}

/* Writable before the entry is handed to the cache, read-only after. */
static inline char *cache_entry_value(const struct cache_entry *e)
{
	return (char *)cache_entry_key(e) + e->klen;
}

static inline char *cache_entry_aux(const struct cache_entry *e)
{
	return cache_entry_value(e) + e->vlen;
}

struct cache_conf {
	uint64_t memory;            /* bytes for all shards, index and overhead included */
	uint64_t max_object_size;   /* largest key + value + aux accepted */
	uint32_t nworkers;          /* = shards; each worker calls the per-loop hooks */
	uint32_t sweep_interval_ms; /* a background expiry pass starts this often */
	uint32_t fill_timeout_ms;   /* a coalesced fill older than this is abandoned */
};

struct cache;

/* Wake hook, called from any thread: worker <w> has work in the cache (its
 * inbox went non-empty, or a request it waits for completed). The caller of
 * cache_set_waker() makes it nudge that worker's event loop (eventfd write
 * or msg_ring). Must be thread-safe and must not call back into the cache. */
typedef void (*cache_wake_fn)(void *arg, int worker);

/* Create the store. Returns 0 and *out, -EINVAL on bad limits (memory too
 * small for the shards' indexes, no workers), -ENOMEM. Boot time only. */
int cache_create(const struct cache_conf *cc, struct cache **out);

/* Free everything. Only after every worker stopped using the cache. */
void cache_destroy(struct cache *c);

void cache_set_waker(struct cache *c, cache_wake_fn fn, void *arg);

uint32_t cache_nshards(const struct cache *c);
uint64_t cache_max_object(const struct cache *c);

/* Wall-clock milliseconds, the time base of expiries and HTTP dates. */
int64_t cache_now_ms(void);

/* 64-bit hash of a key (also what the shards and buckets are picked by). */
uint64_t cache_hash(const void *key, size_t len);

/* Shard that owns <key>: the part before CACHE_VARY_SEP decides, so every
 * variant of a response lives with its base key. */
uint32_t cache_shard_of(const struct cache *c, const void *key, size_t len);

/* ---- readers: any worker, no lock ---- */

/* Find <key>. Entries expired at <now_ms> are misses (the owner removes
 * them lazily or in its sweep). The result is valid until this worker's
 * next cache_quiescent()/cache_offline(); hold it to keep it longer.
 * Returns the entry or NULL. Outcomes are counted apart (cache_count). */
const struct cache_entry *cache_lookup(struct cache *c, const void *key, size_t klen,
				       int64_t now_ms);

/* Keep <e> alive past quiescent points (e.g. while a send of its bytes is
 * in flight). Only on an entry obtained from cache_lookup() since the last
 * quiescent point, or one already held. */
static inline void cache_entry_hold(const struct cache_entry *e)
{
	atomic_fetch_add_explicit(&((struct cache_entry *)e)->refs, 1, memory_order_relaxed);
}

/* Drop a reference from cache_entry_hold(), from any thread. The owner
 * frees the entry on a later poll once it is removed and unreferenced. */
static inline void cache_entry_release(const struct cache_entry *e)
{
	atomic_fetch_sub_explicit(&((struct cache_entry *)e)->refs, 1, memory_order_release);
}

/* Remaining time to live in ms at <now_ms>; -1 = no expiry. */
int64_t cache_entry_ttl_ms(const struct cache_entry *e, int64_t now_ms);

/* ---- per-loop hooks of worker <w> ---- */

/* <w> holds no pointer from cache_lookup() (held references are fine).
 * Call once per loop iteration; it also brings an offline worker back. */
void cache_quiescent(struct cache *c, int w);

/* <w> is about to block (io_uring wait) and holds no lookup pointer: the
 * owners need not wait for it. The next cache_quiescent() ends this. */
void cache_offline(struct cache *c, int w);

/* Owner's work on shard <w>: apply queued requests, reclaim retired
 * entries whose grace period ended, run a step of the expiry sweep.
 * Call once per loop iteration where <w> holds no lookup pointer.
 * Returns the number of requests applied. */
int cache_shard_poll(struct cache *c, int w, int64_t now_ms);

/* ---- writes ---- */

/* Allocate an unlinked entry of <kind> with <key> copied in and room for
 * <vlen> value and <auxlen> aux bytes, to fill before handing it over
 * (expires_ms defaults to 0 = never). Returns 0 and *out (owned by the
 * caller: hand it over or cache_entry_free() it), -E2BIG when larger than
 * max_object_size, -ENOMEM. */
int cache_entry_new(const struct cache *c, uint8_t kind, const void *key, size_t klen,
		    size_t vlen, size_t auxlen, struct cache_entry **out);

/* Free an entry that was never handed to the cache. */
void cache_entry_free(struct cache_entry *e);

enum cache_req_type {
	CACHE_REQ_INSERT = 1,   /* link ->entry, replacing any entry under its key */
	CACHE_REQ_SET,          /* same with CACHE_SET_* flags; result 1 stored, 0 not */
	CACHE_REQ_DEL,          /* result 1 removed, 0 absent; a Vary marker takes its variants */
	CACHE_REQ_EXPIRE,       /* arg = absolute ms, 0 = persist; result 1 / 0 absent */
	CACHE_REQ_INCR,         /* arg = delta; result = new value; rc -EINVAL / -ERANGE */
	CACHE_REQ_PURGE_PREFIX, /* key = prefix; one shard (->shard); result = removed */
	CACHE_REQ_PURGE_TAG,    /* key = tag; one shard; result = removed */
	CACHE_REQ_FLUSH,        /* one shard; result = removed */
	CACHE_REQ_FILL_RELEASE, /* arg = fill token: released when applied */
};

#define CACHE_SET_NX      0x01  /* only when absent */
#define CACHE_SET_XX      0x02  /* only when present */
#define CACHE_SET_KEEPTTL 0x04  /* keep the old entry's expiry */

enum { CACHE_RS_PENDING = 0, CACHE_RS_DONE, CACHE_RS_ABANDONED };

/* A write handed to a shard's owner. Allocated by cache_req_new(), owned
 * by the submitter except between cache_submit() and completion; a
 * submitter that loses interest calls cache_req_abandon() and the owner
 * frees it. */
struct cache_req {
	struct cache_req *next;     /* inbox link (queue-owned while queued) */
	struct cache_entry *entry;  /* INSERT/SET: owned by the req until applied */
	int64_t arg;
	int64_t result;             /* valid once done */
	int32_t rc;                 /* 0, -EINVAL, -ERANGE, -ENOMEM, -E2BIG */
	int32_t shard;              /* -1: by key; purge/flush: the target shard */
	int32_t waiter;             /* worker woken on completion, -1 = none */
	uint8_t type;               /* enum cache_req_type */
	uint8_t flags;              /* CACHE_SET_* */
	_Atomic int state;          /* CACHE_RS_* */
	uint32_t klen;
	char key[];
};

/* Allocate a request with a copy of <key> (may be NULL/0 for INSERT/SET,
 * whose key is the entry's). Returns NULL when out of memory. */
struct cache_req *cache_req_new(uint8_t type, const void *key, size_t klen);

/* Free a request that is done or was never submitted (frees a still
 * attached ->entry too). */
void cache_req_free(struct cache_req *r);

/* Apply <r> now when worker <w> owns its shard, else queue it for the
 * owner (w < 0: a thread that is no worker). The owner wakes r->waiter
 * (set it to w to be woken) when done. Returns 1 when done now (rc, result
 * set), 0 when queued: check cache_req_done() on later iterations. */
int cache_submit(struct cache *c, int w, struct cache_req *r, int64_t now_ms);

static inline int cache_req_done(const struct cache_req *r)
{
	return atomic_load_explicit(&((struct cache_req *)r)->state, memory_order_acquire) ==
	       CACHE_RS_DONE;
}

/* The submitter no longer waits for <r> (connection closed): free it now
 * if it is done, else let the owner free it when it is applied. */
void cache_req_abandon(struct cache_req *r);

/* Fire and forget: insert <e> (ownership passes to the cache). Returns 0
 * (applied or queued), -E2BIG (too large), -ENOMEM. */
int cache_insert(struct cache *c, int w, struct cache_entry *e, int64_t now_ms);

/* Fire and forget purges, for every shard (admin API). type is
 * CACHE_REQ_DEL (exact key), _PURGE_PREFIX, _PURGE_TAG or _FLUSH.
 * Returns 0 or -ENOMEM. */
int cache_purge(struct cache *c, int w, uint8_t type, const void *pat, size_t len,
		int64_t now_ms);

/* ---- request coalescing ---- */

enum cache_fill {
	CACHE_FILL_LEAD = 0,    /* fetch it; cache_fill_release(token) when done */
	CACHE_FILL_WAIT,        /* someone else fetches: poll cache_fill_waiting() */
	CACHE_FILL_NONE,        /* slot busy with another key: fetch, no release */
};

/* First miss of <key> claims the fill; others wait for it (any worker). */
int cache_fill_claim(struct cache *c, const void *key, size_t klen, int64_t now_ms,
		     uint64_t *token);

/* The lead's fetch ended (stored, not storable, or failed). */
void cache_fill_release(struct cache *c, uint64_t token);

/* Release the fill once the shard owning <key> has applied everything
 * queued to it before (the lead's inserts), so a waiter that looks again
 * finds the entry. Immediate when <w> owns that shard. */
void cache_fill_release_after(struct cache *c, int w, const void *key, size_t klen,
			      uint64_t token);

/* 1 while the fill behind <token> is running and not older than
 * fill_timeout_ms; 0 once it ended: look up again, and on a miss fetch. */
int cache_fill_waiting(struct cache *c, uint64_t token, int64_t now_ms);

/* ---- accounting ---- */

enum cache_outcome {            /* X-Cache-Status values, and RESP GETs */
	CACHE_OUT_HIT = 0,
	CACHE_OUT_MISS,
	CACHE_OUT_STALE,
	CACHE_OUT_REVALIDATED,
	CACHE_OUT_BYPASS,
	CACHE_OUT_COUNT,
};

/* Count one outcome for worker <w> (no contention: per-worker counters). */
void cache_count(struct cache *c, int w, enum cache_outcome o);

const char *cache_outcome_name(enum cache_outcome o);

struct cache_stats {
	uint64_t outcome[CACHE_OUT_COUNT];
	uint64_t hits;          /* HIT + STALE + REVALIDATED */
	uint64_t misses;        /* MISS */
	uint64_t inserts, evictions, expired;
	uint64_t entries;       /* keys in the index (expired ones not yet swept too) */
	uint64_t bytes;         /* accounted bytes in the index, index included */
	uint64_t retired_bytes; /* removed, awaiting grace period or last reference */
	uint64_t limit;         /* memory */
	uint64_t commands;      /* Redis-port commands, all connections */
};

/* Worker <w> ran a command of the Redis port. */
void cache_count_command(struct cache *c, int w);

/* Sum every shard's and worker's counters (any thread, relaxed reads). */
void cache_stats(const struct cache *c, struct cache_stats *out);

/* Counters of one shard (tests and the admin view). */
void cache_shard_stats(const struct cache *c, uint32_t shard, struct cache_stats *out);

#endif

/* cache_int.h - private to cache.c (readers, QSBR, accounting) and
 * cache_shard.c (the owner's writes): the store's structs and the helpers
 * both halves use. Nothing else includes it. */
#ifndef RF_CACHE_INT_H
#define RF_CACHE_INT_H

#include "cache.h"

#define CACHE_OFFLINE    UINT64_MAX  /* worker's seen: holds nothing, skip it */
#define BUCKET_BYTES_PER 256         /* one bucket per this many bytes of budget */
#define MIN_BUCKETS      16u
#define MAX_BUCKETS      (1u << 24)
#define SWEEP_STEP       256         /* buckets examined per poll while sweeping */
#define FREQ_MAX         3           /* CLOCK: hits an entry can bank */
#define FILL_SLOTS       4096u       /* coalescing slots for the whole cache */
#define FILL_HI          0xffffffff00000000ull

/* Per-worker reader state, one cache line each so that the counters and
 * the quiescent word never bounce between cores. */
struct cache_worker {
	_Alignas(64) _Atomic uint64_t seen;            /* epoch at the last quiescent point */
	_Atomic uint64_t out[CACHE_OUT_COUNT];         /* written by this worker only */
	_Atomic uint64_t commands;                     /* Redis-port commands run here */
};

struct cache_shard {
	/* read by every worker */
	_Alignas(64) _Atomic(struct cache_entry *) *buckets;  /* owned, mask + 1 heads */
	uint32_t mask;
	uint64_t limit;                 /* memory / nshards */
	uint64_t index_bytes;           /* the bucket array, charged up front */

	/* written by any thread */
	_Alignas(64) _Atomic(struct cache_req *) inbox;   /* LIFO stack, owner takes all */

	/* owner only */
	_Alignas(64) struct cache_entry *hand;  /* CLOCK hand into the ring, NULL = empty */
	struct cache_entry *pending;    /* removed since the last poll, no epoch yet */
	struct cache_entry *wait_head;  /* removed, tagged, oldest first */
	struct cache_entry *wait_tail;
	struct cache_entry *held;       /* grace period over, a reference still out */
	uint32_t sweep_cursor;
	uint8_t sweeping;
	int64_t next_sweep_ms;

	/* written by the owner, read by stats (relaxed) */
	_Atomic uint64_t bytes, retired_bytes, entries, inserts, evictions, expired;
};

struct cache {
	uint32_t nshards;
	uint64_t max_object;
	uint32_t sweep_ms;
	uint32_t fill_timeout_ms;
	uint64_t memory;
	cache_wake_fn wake;
	void *wake_arg;
	_Alignas(64) _Atomic uint64_t epoch;
	struct cache_worker *workers;   /* owned, nshards (aligned_alloc) */
	struct cache_shard *shards;     /* owned, nshards (aligned_alloc) */
	_Atomic uint64_t *fill;         /* owned, FILL_SLOTS coalescing words */
};

/* Counters have a single writer: a relaxed load + store, no locked RMW. */
static inline void bump(_Atomic uint64_t *x, int64_t d)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + (uint64_t)d,
			      memory_order_relaxed);
}

static inline uint64_t rd(const _Atomic uint64_t *x)
{
	return atomic_load_explicit((_Atomic uint64_t *)x, memory_order_relaxed);
}

/* Not expired at <now>: expires_ms 0 means never. */
static inline int cache__live(const struct cache_entry *e, int64_t now)
{
	int64_t x = atomic_load_explicit(&((struct cache_entry *)e)->expires_ms,
					 memory_order_relaxed);

	return !x || x > now;
}

/* Shard of <key> whose full hash is <h> (variants go by their base key). */
uint32_t cache__shard_for(const struct cache *c, const void *key, size_t len, uint64_t h);

/* Call the wake hook for worker <w> (no-op without one or for w < 0). */
void cache__wake(struct cache *c, int w);

/* Lowest epoch any online worker may still be reading under. */
uint64_t cache__min_seen(struct cache *c);

#endif

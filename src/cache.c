/* cache.c - the sharded store's shared half (see cache.h): hashing and
 * shard routing, creation, entries and requests, lock-free lookup, QSBR
 * quiescent points, fill coalescing slots and statistics. The owner's
 * writes live in cache_shard.c. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cache_int.h"
#include "common.h"

/* ---- small helpers ---- */

int64_t cache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* 64x64 -> 128 multiply folded to 64 bits: a fast, well-mixing step. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t cache_hash(const void *key, size_t len)
{
	static const uint64_t p0 = 0xa0761d6478bd642full, p1 = 0xe7037ed1a0b428dbull,
			      p2 = 0x8ebc6af09c88c6e3ull;
	const unsigned char *p = key;
	unsigned char tail[16] = { 0 };
	uint64_t h = p0 ^ ((uint64_t)len * p1);
	size_t n = len;

	for (; n >= 16; n -= 16, p += 16)
		h = mum(rd64(p) ^ p1 ^ h, rd64(p + 8) ^ p2);
	if (n)
		memcpy(tail, p, n);
	h = mum(rd64(tail) ^ p1 ^ h, rd64(tail + 8) ^ p2 ^ len);
	/* splitmix64 finalizer: every output bit depends on every input bit */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static uint32_t shard_by_hash(const struct cache *c, uint64_t h)
{
	return (uint32_t)(((h >> 32) * (uint64_t)c->nshards) >> 32);
}

/* Variants (key SEP suffix) route by their base key; <h> is the full hash. */
uint32_t cache__shard_for(const struct cache *c, const void *key, size_t len, uint64_t h)
{
	const char *sep = memchr(key, CACHE_VARY_SEP, len);

	if (c->nshards == 1)
		return 0;
	if (sep)
		h = cache_hash(key, (size_t)(sep - (const char *)key));
	return shard_by_hash(c, h);
}

uint32_t cache_shard_of(const struct cache *c, const void *key, size_t len)
{
	return cache__shard_for(c, key, len, cache_hash(key, len));
}

uint32_t cache_nshards(const struct cache *c)
{
	return c->nshards;
}

uint64_t cache_max_object(const struct cache *c)
{
	return c->max_object;
}

void cache_set_waker(struct cache *c, cache_wake_fn fn, void *arg)
{
	c->wake = fn;
	c->wake_arg = arg;
}

void cache__wake(struct cache *c, int w)
{
	if (c->wake && w >= 0)
		c->wake(c->wake_arg, w);
}

int64_t cache_entry_ttl_ms(const struct cache_entry *e, int64_t now_ms)
{
	int64_t x = atomic_load_explicit(&((struct cache_entry *)e)->expires_ms,
					 memory_order_relaxed);

	return !x ? -1 : x > now_ms ? x - now_ms : 0;
}

/* ---- create / destroy ---- */

static void *zalloc_aligned(size_t n)
{
	size_t sz = (n + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, sz);

	if (p)
		memset(p, 0, sz);
	return p;
}

int cache_create(const struct cache_conf *cc, struct cache **out)
{
	struct cache *c;
	uint64_t per;
	uint32_t i, nb;

	*out = NULL;
	if (!cc->nworkers || cc->nworkers > CACHE_MAX_WORKERS || !cc->max_object_size)
		return -EINVAL;
	per = cc->memory / cc->nworkers;
	for (nb = MIN_BUCKETS; nb < MAX_BUCKETS && (uint64_t)nb * BUCKET_BYTES_PER < per; nb *= 2)
		;
	/* the index must leave most of the budget to entries */
	if ((uint64_t)nb * sizeof(void *) * 2 > per)
		return -EINVAL;
	c = zalloc_aligned(sizeof *c);
	if (!c)
		return -ENOMEM;
	c->nshards = cc->nworkers;
	c->max_object = cc->max_object_size;
	c->sweep_ms = cc->sweep_interval_ms ? cc->sweep_interval_ms : 1000;
	c->fill_timeout_ms = cc->fill_timeout_ms ? cc->fill_timeout_ms : 10000;
	c->memory = cc->memory;
	atomic_init(&c->epoch, 1);
	c->workers = zalloc_aligned(sizeof *c->workers * c->nshards);
	c->shards = zalloc_aligned(sizeof *c->shards * c->nshards);
	c->fill = calloc(FILL_SLOTS, sizeof *c->fill);
	if (!c->workers || !c->shards || !c->fill)
		goto fail;
	for (i = 0; i < c->nshards; i++) {
		struct cache_shard *s = &c->shards[i];

		/* online from the start: a worker that never calls the hooks
		 * delays reclamation, it can never cause a use after free */
		atomic_init(&c->workers[i].seen, 1);
		s->buckets = calloc(nb, sizeof *s->buckets);
		if (!s->buckets)
			goto fail;
		s->mask = nb - 1;
		s->limit = per;
		s->index_bytes = (uint64_t)nb * sizeof *s->buckets;
		atomic_init(&s->bytes, s->index_bytes);
		atomic_init(&s->inbox, NULL);
	}
	*out = c;
	return 0;
fail:
	cache_destroy(c);
	return -ENOMEM;
}

static void free_list(struct cache_entry *e)
{
	struct cache_entry *n;

	for (; e; e = n) {
		n = e->ring_next;
		free(e);
	}
}

void cache_destroy(struct cache *c)
{
	struct cache_req *r, *rn;
	uint32_t i;

	if (!c)
		return;
	for (i = 0; c->shards && i < c->nshards; i++) {
		struct cache_shard *s = &c->shards[i];

		if (s->hand) {
			s->hand->ring_prev->ring_next = NULL;   /* open the ring */
			free_list(s->hand);
		}
		free_list(s->pending);
		free_list(s->wait_head);
		free_list(s->held);
		for (r = atomic_load(&s->inbox); r; r = rn) {
			rn = r->next;
			cache_req_free(r);
		}
		free(s->buckets);
	}
	free(c->shards);
	free(c->workers);
	free(c->fill);
	free(c);
}

/* ---- entries and requests ---- */

int cache_entry_new(const struct cache *c, uint8_t kind, const void *key, size_t klen,
		    size_t vlen, size_t auxlen, struct cache_entry **out)
{
	size_t meta = kind == CACHE_KIND_HTTP ? sizeof(struct cache_http_meta) : 0;
	size_t size = sizeof(struct cache_entry) + meta + klen + vlen + auxlen;
	struct cache_entry *e;

	*out = NULL;
	if (klen > c->max_object || vlen > c->max_object || auxlen > c->max_object ||
	    klen + vlen + auxlen > c->max_object)
		return -E2BIG;
	e = malloc(size);   /* owner: the caller until handed over, then the shard */
	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof *e + meta);
	atomic_init(&e->next, NULL);
	atomic_init(&e->expires_ms, 0);
	atomic_init(&e->refs, 0);
	atomic_init(&e->freq, 0);
	e->kind = kind;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	e->auxlen = (uint32_t)auxlen;
	/* what malloc really takes: rounded to 16 plus its header */
	e->charge = (uint32_t)(((size + 15) & ~(size_t)15) + 16);
	e->hash = cache_hash(key, klen);
	memcpy((char *)cache_entry_key(e), key, klen);
	*out = e;
	return 0;
}

void cache_entry_free(struct cache_entry *e)
{
	free(e);
}

struct cache_req *cache_req_new(uint8_t type, const void *key, size_t klen)
{
	struct cache_req *r = calloc(1, sizeof *r + klen + 1);   /* owner: the submitter */

	if (!r)
		return NULL;
	r->type = type;
	r->shard = -1;
	r->waiter = -1;
	r->klen = (uint32_t)klen;
	if (klen)
		memcpy(r->key, key, klen);
	atomic_init(&r->state, CACHE_RS_PENDING);
	return r;
}

void cache_req_free(struct cache_req *r)
{
	if (!r)
		return;
	free(r->entry);
	free(r);
}

void cache_req_abandon(struct cache_req *r)
{
	int st = CACHE_RS_PENDING;

	if (!atomic_compare_exchange_strong_explicit(&r->state, &st, CACHE_RS_ABANDONED,
						     memory_order_acq_rel, memory_order_acquire))
		cache_req_free(r);   /* already done: nobody else will touch it */
}

/* ---- readers ---- */

const struct cache_entry *cache_lookup(struct cache *c, const void *key, size_t klen,
				       int64_t now_ms)
{
	uint64_t h = cache_hash(key, klen);
	struct cache_shard *s = &c->shards[cache__shard_for(c, key, klen, h)];
	struct cache_entry *e;
	unsigned char f;

	e = atomic_load_explicit(&s->buckets[h & s->mask], memory_order_acquire);
	for (; e; e = atomic_load_explicit(&e->next, memory_order_acquire)) {
		if (e->hash != h || e->klen != klen || memcmp(cache_entry_key(e), key, klen))
			continue;
		if (!cache__live(e, now_ms))
			return NULL;
		/* only store when it changes: hot entries stop dirtying the line */
		f = atomic_load_explicit(&e->freq, memory_order_relaxed);
		if (f < FREQ_MAX)
			atomic_store_explicit(&e->freq, (unsigned char)(f + 1), memory_order_relaxed);
		return e;
	}
	return NULL;
}

/* ---- QSBR ---- */

void cache_quiescent(struct cache *c, int w)
{
	_Atomic uint64_t *seen = &c->workers[w].seen;
	uint64_t e = atomic_load(&c->epoch), e2;

	/* seq_cst store then re-load: a worker coming back online either
	 * publishes an epoch an owner will wait for, or sees the newer epoch
	 * (and with it every removal made before it). */
	atomic_store(seen, e);
	e2 = atomic_load(&c->epoch);
	if (e2 != e)
		atomic_store(seen, e2);
}

void cache_offline(struct cache *c, int w)
{
	atomic_store(&c->workers[w].seen, CACHE_OFFLINE);
}

uint64_t cache__min_seen(struct cache *c)
{
	uint64_t m = atomic_load(&c->epoch), v;
	uint32_t i;

	for (i = 0; i < c->nshards; i++) {
		v = atomic_load(&c->workers[i].seen);
		if (v < m)
			m = v;
	}
	return m;
}

/* ---- request coalescing ---- */

static _Atomic uint64_t *fill_slot(struct cache *c, uint64_t word)
{
	return &c->fill[(word >> 32) & (FILL_SLOTS - 1)];
}

/* Signed: a claim a thread made a moment "after" our clock reading is
 * young, not 49 days old. */
static int fill_stale(const struct cache *c, uint64_t word, int64_t now)
{
	return (int32_t)((uint32_t)now - (uint32_t)word) > (int32_t)c->fill_timeout_ms;
}

int cache_fill_claim(struct cache *c, const void *key, size_t klen, int64_t now_ms,
		     uint64_t *token)
{
	uint64_t tag = cache_hash(key, klen) & FILL_HI;
	/* low half: claim time in ms (| 1 keeps the word non-zero) */
	uint64_t word = tag | ((uint32_t)now_ms | 1u), cur = 0;
	_Atomic uint64_t *slot = fill_slot(c, word);

	*token = 0;
	if (atomic_compare_exchange_strong(slot, &cur, word)) {
		*token = word;
		return CACHE_FILL_LEAD;
	}
	if ((cur & FILL_HI) != tag)
		return CACHE_FILL_NONE;
	if (fill_stale(c, cur, now_ms) && atomic_compare_exchange_strong(slot, &cur, word)) {
		*token = word;   /* the previous lead vanished: take over */
		return CACHE_FILL_LEAD;
	}
	*token = cur;
	return CACHE_FILL_WAIT;
}

void cache_fill_release(struct cache *c, uint64_t token)
{
	uint64_t cur = token;

	if (token)
		atomic_compare_exchange_strong(fill_slot(c, token), &cur, 0);
}

int cache_fill_waiting(struct cache *c, uint64_t token, int64_t now_ms)
{
	return token && atomic_load(fill_slot(c, token)) == token && !fill_stale(c, token, now_ms);
}

/* ---- accounting ---- */

void cache_count(struct cache *c, int w, enum cache_outcome o)
{
	if (w >= 0 && (uint32_t)w < c->nshards && o < CACHE_OUT_COUNT)
		bump(&c->workers[w].out[o], 1);
}

void cache_count_command(struct cache *c, int w)
{
	if (w >= 0 && (uint32_t)w < c->nshards)
		bump(&c->workers[w].commands, 1);
}

const char *cache_outcome_name(enum cache_outcome o)
{
	static const char *const names[CACHE_OUT_COUNT] = {
		"HIT", "MISS", "STALE", "REVALIDATED", "BYPASS",
	};

	return o < CACHE_OUT_COUNT ? names[o] : "BYPASS";
}

static void add_shard(const struct cache_shard *s, struct cache_stats *out)
{
	out->inserts += rd(&s->inserts);
	out->evictions += rd(&s->evictions);
	out->expired += rd(&s->expired);
	out->entries += rd(&s->entries);
	out->bytes += rd(&s->bytes);
	out->retired_bytes += rd(&s->retired_bytes);
}

static void finish_stats(struct cache_stats *out)
{
	out->hits = out->outcome[CACHE_OUT_HIT] + out->outcome[CACHE_OUT_STALE] +
		    out->outcome[CACHE_OUT_REVALIDATED];
	out->misses = out->outcome[CACHE_OUT_MISS];
}

void cache_stats(const struct cache *c, struct cache_stats *out)
{
	uint32_t i, j;

	memset(out, 0, sizeof *out);
	for (i = 0; i < c->nshards; i++) {
		add_shard(&c->shards[i], out);
		for (j = 0; j < CACHE_OUT_COUNT; j++)
			out->outcome[j] += rd(&c->workers[i].out[j]);
		out->commands += rd(&c->workers[i].commands);
	}
	out->limit = c->memory;
	finish_stats(out);
}

void cache_shard_stats(const struct cache *c, uint32_t shard, struct cache_stats *out)
{
	uint32_t j;

	memset(out, 0, sizeof *out);
	if (shard >= c->nshards)
		return;
	add_shard(&c->shards[shard], out);
	for (j = 0; j < CACHE_OUT_COUNT; j++)
		out->outcome[j] = rd(&c->workers[shard].out[j]);
	out->limit = c->shards[shard].limit;
	finish_stats(out);
}

/* cache.c - the sharded store (see cache.h): lock-free chained index per
 * shard, owner-only writes fed by an MPSC inbox, CLOCK eviction under a
 * byte budget, TTL sweep, QSBR reclamation, and fill coalescing slots. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cache.h"
#include "common.h"

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

/* ---- small helpers ---- */

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
static uint32_t shard_for(const struct cache *c, const void *key, size_t len, uint64_t h)
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
	return shard_for(c, key, len, cache_hash(key, len));
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

static void wake(struct cache *c, int w)
{
	if (c->wake && w >= 0)
		c->wake(c->wake_arg, w);
}

static int live(const struct cache_entry *e, int64_t now)
{
	int64_t x = atomic_load_explicit(&((struct cache_entry *)e)->expires_ms,
					 memory_order_relaxed);

	return !x || x > now;
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
	struct cache_shard *s = &c->shards[shard_for(c, key, klen, h)];
	struct cache_entry *e;
	unsigned char f;

	e = atomic_load_explicit(&s->buckets[h & s->mask], memory_order_acquire);
	for (; e; e = atomic_load_explicit(&e->next, memory_order_acquire)) {
		if (e->hash != h || e->klen != klen || memcmp(cache_entry_key(e), key, klen))
			continue;
		if (!live(e, now_ms))
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

static uint64_t min_seen(struct cache *c)
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

/* ---- owner: index, ring, retirement ---- */

static struct cache_entry *find(struct cache_shard *s, const void *key, size_t klen,
				uint64_t h)
{
	struct cache_entry *e = atomic_load_explicit(&s->buckets[h & s->mask],
						     memory_order_relaxed);

	for (; e; e = atomic_load_explicit(&e->next, memory_order_relaxed))
		if (e->hash == h && e->klen == klen && !memcmp(cache_entry_key(e), key, klen))
			return e;
	return NULL;
}

static void ring_add(struct cache_shard *s, struct cache_entry *e)
{
	struct cache_entry *h = s->hand;

	if (!h) {
		e->ring_next = e->ring_prev = e;
		s->hand = e;
		return;
	}
	/* just behind the hand: the last place it will look */
	e->ring_next = h;
	e->ring_prev = h->ring_prev;
	h->ring_prev->ring_next = e;
	h->ring_prev = e;
}

static void ring_del(struct cache_shard *s, struct cache_entry *e)
{
	if (e->ring_next == e) {
		s->hand = NULL;
		return;
	}
	if (s->hand == e)
		s->hand = e->ring_next;
	e->ring_prev->ring_next = e->ring_next;
	e->ring_next->ring_prev = e->ring_prev;
}

static void link_entry(struct cache_shard *s, struct cache_entry *e)
{
	_Atomic(struct cache_entry *) *head = &s->buckets[e->hash & s->mask];

	atomic_store_explicit(&e->next, atomic_load_explicit(head, memory_order_relaxed),
			      memory_order_relaxed);
	/* release: readers that see the pointer see the entry's bytes */
	atomic_store_explicit(head, e, memory_order_release);
	ring_add(s, e);
	e->linked = 1;
}

/* Charged after the entry it replaces is gone: the bound holds at every
 * instant a stats reader can see. */
static void account(struct cache_shard *s, struct cache_entry *e)
{
	bump(&s->bytes, e->charge);
	bump(&s->entries, 1);
	bump(&s->inserts, 1);
}

/* Unlink from the index and the ring. Readers already on <e> still follow
 * its next pointer, which stays intact until <e> is freed. */
static void remove_entry(struct cache_shard *s, struct cache_entry *e)
{
	_Atomic(struct cache_entry *) *pp = &s->buckets[e->hash & s->mask];
	struct cache_entry *x;

	while ((x = atomic_load_explicit(pp, memory_order_relaxed)) != e)
		pp = &x->next;
	atomic_store_explicit(pp, atomic_load_explicit(&e->next, memory_order_relaxed),
			      memory_order_release);
	ring_del(s, e);
	e->linked = 0;
	e->ring_next = s->pending;
	s->pending = e;
	bump(&s->bytes, -(int64_t)e->charge);
	bump(&s->entries, -1);
	bump(&s->retired_bytes, e->charge);
}

/* Free what no reader can reach any more: removed before the epoch every
 * online worker has since observed, and no reference left. */
static void reclaim(struct cache *c, struct cache_shard *s, int w)
{
	struct cache_entry *e, *n, **pp;
	uint64_t tag, safe;

	if (s->pending) {
		tag = atomic_fetch_add(&c->epoch, 1) + 1;
		for (e = s->pending; e; e = n) {
			n = e->ring_next;
			e->retire_epoch = tag;
			e->ring_next = NULL;
			if (s->wait_tail)
				s->wait_tail->ring_next = e;
			else
				s->wait_head = e;
			s->wait_tail = e;
		}
		s->pending = NULL;
	}
	if (!s->wait_head && !s->held)
		return;
	cache_quiescent(c, w);   /* the owner holds no lookup pointer here */
	safe = min_seen(c);
	while ((e = s->wait_head) && e->retire_epoch <= safe) {
		s->wait_head = e->ring_next;
		if (!s->wait_head)
			s->wait_tail = NULL;
		e->ring_next = s->held;
		s->held = e;
	}
	for (pp = &s->held; (e = *pp); ) {
		if (atomic_load_explicit(&e->refs, memory_order_acquire)) {
			pp = &e->ring_next;
			continue;
		}
		*pp = e->ring_next;
		bump(&s->retired_bytes, -(int64_t)e->charge);
		free(e);
	}
}

/* CLOCK: entries with banked hits lose one and survive this pass. */
static int evict_one(struct cache_shard *s)
{
	struct cache_entry *e;
	unsigned char f;

	while ((e = s->hand)) {
		f = atomic_load_explicit(&e->freq, memory_order_relaxed);
		if (!f) {
			remove_entry(s, e);   /* moves the hand on */
			bump(&s->evictions, 1);
			return 1;
		}
		atomic_store_explicit(&e->freq, (unsigned char)(f - 1), memory_order_relaxed);
		s->hand = e->ring_next;
	}
	return 0;
}

/* Evict until <need> more bytes fit, counting <old> (about to be replaced)
 * as already gone. */
static void make_room(struct cache_shard *s, uint64_t need, const struct cache_entry *old)
{
	for (;;) {
		uint64_t used = rd(&s->bytes) - (old && old->linked ? old->charge : 0);

		if (used + need <= s->limit || !evict_one(s))
			return;
	}
}

static void drop_expired(struct cache_shard *s, struct cache_entry *e)
{
	remove_entry(s, e);
	bump(&s->expired, 1);
}

/* Owner's view of a key: expired entries are removed on the way. */
static struct cache_entry *find_live(struct cache_shard *s, const void *key, size_t klen,
				     uint64_t h, int64_t now)
{
	struct cache_entry *e = find(s, key, klen, h);

	if (e && !live(e, now)) {
		drop_expired(s, e);
		return NULL;
	}
	return e;
}

/* ---- owner: applying writes ---- */

/* Link <e> (ownership taken) under its key. Returns 0 with *stored 1/0
 * (NX/XX refused), or -E2BIG when it cannot fit even an empty shard. */
static int do_set(struct cache_shard *s, struct cache_entry *e, unsigned flags, int64_t now,
		  int *stored)
{
	struct cache_entry *old;
	int64_t x;

	*stored = 0;
	if (e->charge > s->limit - s->index_bytes) {
		free(e);
		return -E2BIG;
	}
	old = find_live(s, cache_entry_key(e), e->klen, e->hash, now);
	if (((flags & CACHE_SET_NX) && old) || ((flags & CACHE_SET_XX) && !old)) {
		free(e);
		return 0;
	}
	if ((flags & CACHE_SET_KEEPTTL) && old)
		atomic_store_explicit(&e->expires_ms,
				      atomic_load_explicit(&old->expires_ms, memory_order_relaxed),
				      memory_order_relaxed);
	*stored = 1;
	x = atomic_load_explicit(&e->expires_ms, memory_order_relaxed);
	if (x && x <= now) {
		/* born expired (an absolute time in the past): just a delete */
		if (old)
			remove_entry(s, old);
		free(e);
		return 0;
	}
	make_room(s, e->charge, old);
	link_entry(s, e);   /* the new one first: readers never see a gap */
	if (old && old->linked)
		remove_entry(s, old);
	account(s, e);
	return 0;
}

typedef int (*match_fn)(const struct cache_entry *e, const char *pat, size_t len);

static int match_prefix(const struct cache_entry *e, const char *pat, size_t len)
{
	return e->klen >= len && !memcmp(cache_entry_key(e), pat, len);
}

static int match_tag(const struct cache_entry *e, const char *pat, size_t len)
{
	const char *t = cache_entry_aux(e), *end = t + e->auxlen;
	uint16_t i;

	if (e->kind != CACHE_KIND_HTTP)
		return 0;
	for (i = 0; i < cache_entry_http(e)->ntags && t < end; i++) {
		size_t n = strnlen(t, (size_t)(end - t));

		if (n == len && !memcmp(t, pat, len))
			return 1;
		t += n + 1;
	}
	return 0;
}

static int match_all(const struct cache_entry *e, const char *pat, size_t len)
{
	return 1;
}

/* Remove every entry <fn> matches. Returns how many. */
static int64_t purge_scan(struct cache_shard *s, match_fn fn, const char *pat, size_t len)
{
	struct cache_entry *e, *n, *start = s->hand;
	int64_t count = 0;
	uint64_t left = rd(&s->entries);

	/* walk the ring once; removals may move the hand, so count instead */
	for (e = start; e && left; e = n, left--) {
		n = e->ring_next;
		if (fn(e, pat, len)) {
			remove_entry(s, e);
			count++;
		}
	}
	return count;
}

/* A Vary marker takes the variants stored under "key SEP ..." with it. */
static void purge_variants(struct cache_shard *s, const char *key, size_t klen)
{
	char stack[512], *pat = klen + 1 <= sizeof stack ? stack : malloc(klen + 1);

	if (!pat)
		return;   /* orphans are unreachable and age out */
	memcpy(pat, key, klen);
	pat[klen] = CACHE_VARY_SEP;
	purge_scan(s, match_prefix, pat, klen + 1);
	if (pat != stack)
		free(pat);
}

/* Redis's rule: optional '-', digits, no leading zero, fits int64. */
static int parse_i64(const char *p, size_t n, int64_t *out)
{
	uint64_t v = 0, lim;
	size_t i = 0;
	int neg = 0;

	if (!n || n > 20)
		return -EINVAL;
	if (p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || (p[i] == '0' && n - i > 1) || (neg && p[i] == '0'))
		return -EINVAL;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int do_incr(struct cache *c, struct cache_shard *s, struct cache_req *r, int64_t now)
{
	uint64_t h = cache_hash(r->key, r->klen);
	struct cache_entry *old = find_live(s, r->key, r->klen, h, now), *e;
	int64_t cur = 0, d = r->arg, nv;
	char buf[24];
	int n, rc, stored;

	if (old && (old->kind != CACHE_KIND_STRING ||
		    parse_i64(cache_entry_value(old), old->vlen, &cur)))
		return -EINVAL;
	if ((d > 0 && cur > INT64_MAX - d) || (d < 0 && cur < INT64_MIN - d))
		return -ERANGE;
	nv = cur + d;
	n = snprintf(buf, sizeof buf, "%lld", (long long)nv);
	rc = cache_entry_new(c, CACHE_KIND_STRING, r->key, r->klen, (size_t)n, 0, &e);
	if (rc)
		return rc;
	memcpy(cache_entry_value(e), buf, (size_t)n);
	rc = do_set(s, e, CACHE_SET_KEEPTTL, now, &stored);
	r->result = nv;
	return rc;
}

static void apply(struct cache *c, struct cache_shard *s, struct cache_req *r, int64_t now)
{
	struct cache_entry *e;
	int stored = 0;

	r->rc = 0;
	r->result = 0;
	switch (r->type) {
	case CACHE_REQ_INSERT:
	case CACHE_REQ_SET:
		e = r->entry;
		r->entry = NULL;
		if (!e) {
			r->rc = -EINVAL;
			break;
		}
		r->rc = do_set(s, e, r->type == CACHE_REQ_SET ? r->flags : 0, now, &stored);
		r->result = stored;
		break;
	case CACHE_REQ_DEL:
		e = find_live(s, r->key, r->klen, cache_hash(r->key, r->klen), now);
		if (e) {
			remove_entry(s, e);
			if (e->kind == CACHE_KIND_VARY)
				purge_variants(s, r->key, r->klen);
			r->result = 1;
		}
		break;
	case CACHE_REQ_EXPIRE:
		e = find_live(s, r->key, r->klen, cache_hash(r->key, r->klen), now);
		if (!e)
			break;
		r->result = 1;
		if (r->arg && r->arg <= now)
			remove_entry(s, e);
		else
			atomic_store_explicit(&e->expires_ms, r->arg, memory_order_relaxed);
		break;
	case CACHE_REQ_INCR:
		r->rc = do_incr(c, s, r, now);
		break;
	case CACHE_REQ_PURGE_PREFIX:
		r->result = purge_scan(s, match_prefix, r->key, r->klen);
		break;
	case CACHE_REQ_PURGE_TAG:
		r->result = purge_scan(s, match_tag, r->key, r->klen);
		break;
	case CACHE_REQ_FLUSH:
		r->result = purge_scan(s, match_all, NULL, 0);
		break;
	default:
		r->rc = -EINVAL;
	}
}

/* ---- owner: background expiry ---- */

static void sweep(struct cache *c, struct cache_shard *s, int64_t now)
{
	struct cache_entry *e, *n;
	uint32_t i;

	if (!s->sweeping) {
		if (now < s->next_sweep_ms)
			return;
		s->sweeping = 1;
		s->sweep_cursor = 0;
		s->next_sweep_ms = now + c->sweep_ms;
	}
	for (i = 0; i < SWEEP_STEP && s->sweeping; i++) {
		e = atomic_load_explicit(&s->buckets[s->sweep_cursor], memory_order_relaxed);
		for (; e; e = n) {
			n = atomic_load_explicit(&e->next, memory_order_relaxed);
			if (!live(e, now))
				drop_expired(s, e);
		}
		if (s->sweep_cursor++ == s->mask)
			s->sweeping = 0;
	}
}

/* ---- submission ---- */

static uint32_t req_shard(const struct cache *c, const struct cache_req *r)
{
	if (r->shard >= 0)
		return (uint32_t)r->shard % c->nshards;
	if (r->entry)
		return shard_for(c, cache_entry_key(r->entry), r->entry->klen, r->entry->hash);
	return cache_shard_of(c, r->key, r->klen);
}

/* Push onto the owner's inbox; wake it when the inbox was empty (a
 * non-empty inbox already has a wake-up on the way). */
static void push(struct cache *c, uint32_t si, struct cache_req *r)
{
	struct cache_shard *s = &c->shards[si];
	struct cache_req *old = atomic_load_explicit(&s->inbox, memory_order_relaxed);

	do {
		r->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&s->inbox, &old, r, memory_order_release,
							memory_order_relaxed));
	if (!old)
		wake(c, (int)si);
}

int cache_submit(struct cache *c, int w, struct cache_req *r, int64_t now_ms)
{
	uint32_t si = req_shard(c, r);

	r->shard = (int32_t)si;
	if (w >= 0 && (uint32_t)w == si) {
		apply(c, &c->shards[si], r, now_ms);
		atomic_store_explicit(&r->state, CACHE_RS_DONE, memory_order_release);
		return 1;
	}
	push(c, si, r);
	return 0;
}

int cache_insert(struct cache *c, int w, struct cache_entry *e, int64_t now_ms)
{
	uint32_t si = shard_for(c, cache_entry_key(e), e->klen, e->hash);
	struct cache_req *r;
	int stored;

	if (w >= 0 && (uint32_t)w == si)
		return do_set(&c->shards[si], e, 0, now_ms, &stored);
	if (e->charge > c->shards[si].limit - c->shards[si].index_bytes) {
		free(e);
		return -E2BIG;
	}
	r = cache_req_new(CACHE_REQ_INSERT, NULL, 0);
	if (!r) {
		free(e);
		return -ENOMEM;
	}
	r->entry = e;
	r->shard = (int32_t)si;
	atomic_store_explicit(&r->state, CACHE_RS_ABANDONED, memory_order_relaxed);
	push(c, si, r);
	return 0;
}

int cache_purge(struct cache *c, int w, uint8_t type, const void *pat, size_t len,
		int64_t now_ms)
{
	uint32_t i, first = 0, last = c->nshards;
	struct cache_req *r;

	if (type == CACHE_REQ_DEL) {
		first = cache_shard_of(c, pat, len);
		last = first + 1;
	}
	for (i = first; i < last; i++) {
		r = cache_req_new(type, pat, len);
		if (!r)
			return -ENOMEM;
		r->shard = (int32_t)i;
		if (cache_submit(c, w, r, now_ms)) {
			cache_req_free(r);
		} else {
			cache_req_abandon(r);   /* the owner frees it */
		}
	}
	return 0;
}

int cache_shard_poll(struct cache *c, int w, int64_t now_ms)
{
	struct cache_shard *s = &c->shards[w];
	struct cache_req *r, *n, *fifo = NULL;
	uint64_t wakes[CACHE_MAX_WORKERS / 64];
	int applied = 0, st;
	uint32_t i;

	r = atomic_exchange_explicit(&s->inbox, NULL, memory_order_acquire);
	if (r) {
		memset(wakes, 0, sizeof wakes);
		for (; r; r = n) {   /* the inbox is a stack: reverse to arrival order */
			n = r->next;
			r->next = fifo;
			fifo = r;
		}
		for (r = fifo; r; r = n, applied++) {
			int32_t waiter = r->waiter;

			n = r->next;
			apply(c, s, r, now_ms);
			st = CACHE_RS_PENDING;
			/* after DONE the submitter may free r: read nothing later */
			if (atomic_compare_exchange_strong_explicit(&r->state, &st, CACHE_RS_DONE,
								    memory_order_acq_rel,
								    memory_order_acquire)) {
				if (waiter >= 0 && waiter != w && waiter < (int32_t)c->nshards)
					wakes[waiter / 64] |= 1ull << (waiter % 64);
			} else {
				cache_req_free(r);
			}
		}
		for (i = 0; i < c->nshards; i++)
			if (wakes[i / 64] & (1ull << (i % 64)))
				wake(c, (int)i);
	}
	sweep(c, s, now_ms);
	reclaim(c, s, w);
	return applied;
}

/* ---- request coalescing ---- */

static _Atomic uint64_t *fill_slot(struct cache *c, uint64_t word)
{
	return &c->fill[(word >> 32) & (FILL_SLOTS - 1)];
}

static int fill_stale(const struct cache *c, uint64_t word, int64_t now)
{
	return (uint32_t)((uint32_t)now - (uint32_t)word) > c->fill_timeout_ms;
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

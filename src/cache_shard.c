/* cache_shard.c - the owner's half of the store (see cache.h): linking,
 * replacing and removing entries of its shard, CLOCK eviction under the
 * byte budget, purges, INCR, the background expiry sweep, retiring and
 * reclaiming removed entries, and the MPSC inbox other workers submit to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cache_int.h"
#include "common.h"

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
	safe = cache__min_seen(c);
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

	if (e && !cache__live(e, now)) {
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
	case CACHE_REQ_FILL_RELEASE:
		cache_fill_release(c, (uint64_t)r->arg);
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
			if (!cache__live(e, now))
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
		return cache__shard_for(c, cache_entry_key(r->entry), r->entry->klen, r->entry->hash);
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
		cache__wake(c, (int)si);
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
	uint32_t si = cache__shard_for(c, cache_entry_key(e), e->klen, e->hash);
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

void cache_fill_release_after(struct cache *c, int w, const void *key, size_t klen,
			      uint64_t token)
{
	uint32_t si = cache_shard_of(c, key, klen);
	struct cache_req *r;

	if (!token)
		return;
	if ((w >= 0 && (uint32_t)w == si) ||
	    !(r = cache_req_new(CACHE_REQ_FILL_RELEASE, NULL, 0))) {
		cache_fill_release(c, token);
		return;
	}
	r->arg = (int64_t)token;
	r->shard = (int32_t)si;
	atomic_store_explicit(&r->state, CACHE_RS_ABANDONED, memory_order_relaxed);
	push(c, si, r);
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
				cache__wake(c, (int)i);
	}
	sweep(c, s, now_ms);
	reclaim(c, s, w);
	return applied;
}


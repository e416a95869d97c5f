/* test_cache.c - the sharded store: insert/lookup/replace/delete, references
 * outliving removal, TTL (lazy and swept), the memory bound under churn,
 * CLOCK keeping hot keys, purges, the cross-shard inbox, INCR, coalescing,
 * and two threads reading and writing at once (run under ASan and TSan). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "common.h"
#include "test.h"

#define T0 1700000000000LL   /* a fixed "now" in ms */

static struct cache *mk(uint32_t workers, uint64_t memory, uint64_t max_obj)
{
	struct cache_conf cc = {
		.memory = memory, .max_object_size = max_obj, .nworkers = workers,
		.sweep_interval_ms = 1000, .fill_timeout_ms = 5000,
	};
	struct cache *c = NULL;

	CHECK_INT(cache_create(&cc, &c), 0);
	return c;
}

static struct cache_entry *str_entry(struct cache *c, const char *key, const char *val,
				     int64_t expires)
{
	struct cache_entry *e = NULL;

	CHECK_INT(cache_entry_new(c, CACHE_KIND_STRING, key, strlen(key), strlen(val), 0, &e), 0);
	if (!e)
		return NULL;
	memcpy(cache_entry_value(e), val, strlen(val));
	atomic_store(&e->expires_ms, expires);
	return e;
}

static int put(struct cache *c, int w, const char *key, const char *val, int64_t expires)
{
	struct cache_entry *e = str_entry(c, key, val, expires);

	return e ? cache_insert(c, w, e, T0) : -ENOMEM;
}

static const char *get(struct cache *c, const char *key, int64_t now, char *buf, size_t cap)
{
	const struct cache_entry *e = cache_lookup(c, key, strlen(key), now);

	if (!e)
		return NULL;
	snprintf(buf, cap, "%.*s", (int)e->vlen, cache_entry_value(e));
	return buf;
}

/* Run a request on worker <w>'s behalf and wait for it (single thread:
 * polls the owner when it was queued). Returns the request, done. */
static struct cache_req *run(struct cache *c, int w, struct cache_req *r, int64_t now)
{
	if (!cache_submit(c, w, r, now))
		cache_shard_poll(c, r->shard, now);
	CHECK(cache_req_done(r));
	return r;
}

static int64_t del(struct cache *c, int w, const char *key)
{
	struct cache_req *r = run(c, w, cache_req_new(CACHE_REQ_DEL, key, strlen(key)), T0);
	int64_t n = r->result;

	cache_req_free(r);
	return n;
}

static void test_basic(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	struct cache_stats st;
	char buf[64];

	if (!c)
		return;
	CHECK(get(c, "k", T0, buf, sizeof buf) == NULL);
	CHECK_INT(put(c, 0, "k", "v1", 0), 0);
	CHECK_STR(get(c, "k", T0, buf, sizeof buf), "v1");
	CHECK_INT(put(c, 0, "k", "v2", 0), 0);            /* replace */
	CHECK_STR(get(c, "k", T0, buf, sizeof buf), "v2");
	CHECK_INT(put(c, 0, "other", "x", 0), 0);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 2);
	CHECK_INT(st.inserts, 3);
	CHECK(st.bytes > 0 && st.bytes <= st.limit);
	CHECK_INT(del(c, 0, "k"), 1);
	CHECK_INT(del(c, 0, "k"), 0);
	CHECK(get(c, "k", T0, buf, sizeof buf) == NULL);
	CHECK_STR(get(c, "other", T0, buf, sizeof buf), "x");
	cache_shard_poll(c, 0, T0);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 1);
	CHECK_INT(st.retired_bytes, 0);   /* one worker: reclaimed at its own poll */
	/* keys are bytes: NUL and high bytes are fine, prefixes do not collide */
	CHECK_INT(put(c, 0, "oth", "y", 0), 0);
	CHECK_STR(get(c, "other", T0, buf, sizeof buf), "x");
	CHECK_STR(get(c, "oth", T0, buf, sizeof buf), "y");
	cache_destroy(c);
}

static void test_limits(void)
{
	struct cache_conf cc = { .memory = 1 << 20, .max_object_size = 1024, .nworkers = 1 };
	struct cache *c = NULL;
	struct cache_entry *e = NULL;
	char big[2048];

	CHECK_INT(cache_create(&cc, &c), 0);
	if (!c)
		return;
	CHECK_INT(cache_entry_new(c, CACHE_KIND_STRING, "k", 1, 1024, 0, &e), -E2BIG);
	CHECK(e == NULL);
	CHECK_INT(cache_entry_new(c, CACHE_KIND_STRING, "k", 1, 1023, 0, &e), 0);
	cache_entry_free(e);
	memset(big, 'x', sizeof big);
	CHECK_INT(cache_entry_new(c, CACHE_KIND_STRING, big, sizeof big, 0, 0, &e), -E2BIG);
	cache_destroy(c);

	cc.nworkers = 0;
	CHECK_INT(cache_create(&cc, &c), -EINVAL);
	cc.nworkers = 4;
	cc.memory = 64;   /* not even room for the indexes */
	CHECK_INT(cache_create(&cc, &c), -EINVAL);
}

static void test_ref_outlives_delete(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	const struct cache_entry *e;
	struct cache_stats st;

	if (!c)
		return;
	put(c, 0, "k", "payload", 0);
	cache_quiescent(c, 0);
	e = cache_lookup(c, "k", 1, T0);
	CHECK(e != NULL);
	if (!e)
		return;
	cache_entry_hold(e);               /* a send of its bytes is in flight */
	CHECK_INT(del(c, 0, "k"), 1);
	cache_quiescent(c, 0);
	cache_shard_poll(c, 0, T0);
	cache_shard_poll(c, 0, T0);
	cache_stats(c, &st);
	CHECK(st.retired_bytes > 0);
	CHECK(cache_lookup(c, "k", 1, T0) == NULL);
	CHECK_MEM(cache_entry_value(e), e->vlen, "payload");   /* ASan: still alive */
	cache_entry_release(e);
	cache_shard_poll(c, 0, T0);
	cache_stats(c, &st);
	CHECK_INT(st.retired_bytes, 0);

	/* a worker that has not passed a quiescent point holds removal back */
	cache_destroy(c);
	c = mk(2, 1 << 20, 64 << 10);
	if (!c)
		return;
	put(c, cache_shard_of(c, "k", 1), "k", "v", 0);
	CHECK_INT(del(c, 0, "k"), 1);
	cache_shard_poll(c, (int)cache_shard_of(c, "k", 1), T0);
	cache_stats(c, &st);
	CHECK(st.retired_bytes > 0);
	cache_quiescent(c, 0);
	cache_quiescent(c, 1);
	cache_shard_poll(c, (int)cache_shard_of(c, "k", 1), T0);
	cache_stats(c, &st);
	CHECK_INT(st.retired_bytes, 0);
	/* an offline worker does not */
	put(c, cache_shard_of(c, "k", 1), "k", "v", 0);
	CHECK_INT(del(c, 0, "k"), 1);
	cache_offline(c, 0);
	cache_offline(c, 1);
	cache_shard_poll(c, (int)cache_shard_of(c, "k", 1), T0);
	cache_stats(c, &st);
	CHECK_INT(st.retired_bytes, 0);
	cache_destroy(c);
}

static void test_ttl(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	struct cache_stats st;
	const struct cache_entry *e;
	char buf[32], key[32];
	int i;

	if (!c)
		return;
	put(c, 0, "t", "v", T0 + 100);
	e = cache_lookup(c, "t", 1, T0 + 50);
	CHECK(e != NULL);
	if (e)
		CHECK_INT(cache_entry_ttl_ms(e, T0 + 50), 50);
	CHECK(get(c, "t", T0 + 100, buf, sizeof buf) == NULL);   /* lazy: no poll needed */
	CHECK(get(c, "t", T0 + 99, buf, sizeof buf) != NULL);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 1);                                /* not removed yet */

	/* the background sweep removes expired entries a step per poll */
	for (i = 0; i < 500; i++) {
		snprintf(key, sizeof key, "exp%d", i);
		put(c, 0, key, "v", i % 2 ? T0 + 10 : 0);
	}
	for (i = 0; i < 100; i++)
		cache_shard_poll(c, 0, T0 + 1000);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 250);
	CHECK_INT(st.expired, 251);
	CHECK(get(c, "exp0", T0 + 1000, buf, sizeof buf) != NULL);
	CHECK(get(c, "exp1", T0 + 1000, buf, sizeof buf) == NULL);

	/* an entry born expired is a delete */
	put(c, 0, "exp0", "v", T0 - 1);
	CHECK(get(c, "exp0", T0, buf, sizeof buf) == NULL);
	cache_destroy(c);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

static void test_memory_bound(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	static char val[16 << 10];
	struct cache_stats st;
	struct cache_entry *e;
	char key[32];
	uint64_t maxb = 0;
	int i, bad = 0;

	if (!c)
		return;
	memset(val, 'v', sizeof val);
	for (i = 0; i < 100000; i++) {
		size_t vlen = rnd() % sizeof val;

		snprintf(key, sizeof key, "key:%llu", (unsigned long long)(rnd() % 50000));
		if (cache_entry_new(c, CACHE_KIND_STRING, key, strlen(key), vlen, 0, &e))
			continue;
		memcpy(cache_entry_value(e), val, vlen);
		CHECK_INT(cache_insert(c, 0, e, T0), 0);
		cache_stats(c, &st);
		if (st.bytes > st.limit)
			bad++;
		maxb = RF_MAX(maxb, st.bytes);
		if (i % 64 == 0) {
			cache_quiescent(c, 0);
			cache_shard_poll(c, 0, T0);
		}
	}
	cache_shard_poll(c, 0, T0);
	cache_stats(c, &st);
	CHECK_INT(bad, 0);
	CHECK(maxb <= (1 << 20));
	CHECK(maxb > (1 << 20) - (40 << 10));   /* and it is used, not left empty */
	CHECK(st.evictions > 50000);
	CHECK_INT(st.retired_bytes, 0);
	cache_destroy(c);
}

static void test_hot_keys_survive(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	static char val[1024];
	struct cache_entry *e;
	char key[32], buf[8];
	int i, j, hot_found = 0;

	if (!c)
		return;
	memset(val, 'h', sizeof val);
	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof key, "hot%d", i);
		cache_entry_new(c, CACHE_KIND_STRING, key, strlen(key), sizeof val, 0, &e);
		memcpy(cache_entry_value(e), val, sizeof val);
		cache_insert(c, 0, e, T0);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "cold%d", i);
		cache_entry_new(c, CACHE_KIND_STRING, key, strlen(key), sizeof val, 0, &e);
		memcpy(cache_entry_value(e), val, sizeof val);
		cache_insert(c, 0, e, T0);
		if (i % 8 == 0) {
			for (j = 0; j < 16; j++) {
				snprintf(key, sizeof key, "hot%d", j);
				cache_lookup(c, key, strlen(key), T0);
			}
		}
		if (i % 100 == 0)
			cache_shard_poll(c, 0, T0);
	}
	for (j = 0; j < 16; j++) {
		snprintf(key, sizeof key, "hot%d", j);
		hot_found += get(c, key, T0, buf, sizeof buf) != NULL;
	}
	CHECK_INT(hot_found, 16);
	CHECK(get(c, "cold0", T0, buf, sizeof buf) == NULL);   /* scanned once, gone */
	cache_destroy(c);
}

/* An HTTP-kind entry with tags, built by hand (cache_http.c has its own test). */
static void put_http(struct cache *c, const char *key, const char *tags, size_t tlen)
{
	struct cache_entry *e = NULL;
	size_t i;

	cache_entry_new(c, CACHE_KIND_HTTP, key, strlen(key), 4, tlen, &e);
	if (!e)
		return;
	memcpy(cache_entry_value(e), "body", 4);
	memcpy(cache_entry_aux(e), tags, tlen);
	for (i = 0; i < tlen; i++)
		cache_entry_http(e)->ntags += tags[i] == 0;
	cache_insert(c, (int)cache_shard_of(c, key, strlen(key)), e, T0);
}

static int64_t purge_all(struct cache *c, uint8_t type, const char *pat)
{
	int64_t n = 0;
	uint32_t i;

	for (i = 0; i < cache_nshards(c); i++) {
		struct cache_req *r = cache_req_new(type, pat, strlen(pat));

		r->shard = (int32_t)i;
		run(c, 0, r, T0);
		n += r->result;
		cache_req_free(r);
	}
	return n;
}

static void test_purge(void)
{
	struct cache *c = mk(3, 3 << 20, 64 << 10);
	struct cache_stats st;
	char buf[8];

	if (!c)
		return;
	put_http(c, "http://a:80/x", "t1\0t2", 6);
	put_http(c, "http://a:80/y", "t2", 3);
	put_http(c, "http://a:80/z", "", 0);
	put_http(c, "http://b:80/x", "t1", 3);
	put(c, (int)cache_shard_of(c, "http://a:80/s", 13), "http://a:80/s", "str", 0);
	CHECK_INT(purge_all(c, CACHE_REQ_PURGE_TAG, "t2"), 2);
	CHECK(get(c, "http://a:80/x", T0, buf, sizeof buf) == NULL);
	CHECK(get(c, "http://a:80/z", T0, buf, sizeof buf) != NULL);
	CHECK_INT(purge_all(c, CACHE_REQ_PURGE_TAG, "t"), 0);     /* whole tags only */
	CHECK_INT(purge_all(c, CACHE_REQ_PURGE_PREFIX, "http://a:80/"), 2);
	CHECK(get(c, "http://b:80/x", T0, buf, sizeof buf) != NULL);
	CHECK_INT(purge_all(c, CACHE_REQ_FLUSH, ""), 1);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 0);

	/* fire-and-forget purges from a thread that is no worker */
	put_http(c, "http://a:80/x", "t1", 3);
	put_http(c, "http://a:80/y", "t1", 3);
	CHECK_INT(cache_purge(c, -1, CACHE_REQ_PURGE_TAG, "t1", 2, T0), 0);
	cache_shard_poll(c, 0, T0);
	cache_shard_poll(c, 1, T0);
	cache_shard_poll(c, 2, T0);
	cache_stats(c, &st);
	CHECK_INT(st.entries, 0);
	cache_destroy(c);
}

static void test_vary_marker(void)
{
	struct cache *c = mk(4, 4 << 20, 64 << 10);
	struct cache_entry *e = NULL;
	char buf[8], k1[64], k2[64];
	int w;

	if (!c)
		return;
	snprintf(k1, sizeof k1, "http://h:80/v%caccept-encoding=gzip\n", CACHE_VARY_SEP);
	snprintf(k2, sizeof k2, "http://h:80/v%caccept-encoding=br\n", CACHE_VARY_SEP);
	/* variants live in their base key's shard */
	CHECK_INT(cache_shard_of(c, k1, strlen(k1)), cache_shard_of(c, "http://h:80/v", 13));
	CHECK_INT(cache_shard_of(c, k2, strlen(k2)), cache_shard_of(c, "http://h:80/v", 13));
	w = (int)cache_shard_of(c, "http://h:80/v", 13);
	put_http(c, k1, "", 0);
	put_http(c, k2, "", 0);
	cache_entry_new(c, CACHE_KIND_VARY, "http://h:80/v", 13, 15, 0, &e);
	memcpy(cache_entry_value(e), "accept-encoding", 15);
	cache_insert(c, w, e, T0);
	put_http(c, "http://h:80/vv", "", 0);
	CHECK(get(c, k1, T0, buf, sizeof buf) != NULL);
	CHECK_INT(del(c, 0, "http://h:80/v"), 1);                /* DEL of the marker... */
	CHECK(get(c, k1, T0, buf, sizeof buf) == NULL);          /* ...takes the variants */
	CHECK(get(c, k2, T0, buf, sizeof buf) == NULL);
	CHECK(get(c, "http://h:80/vv", T0, buf, sizeof buf) != NULL);
	cache_destroy(c);
}

struct wake_log {
	int calls[4];
};

static void on_wake(void *arg, int w)
{
	((struct wake_log *)arg)->calls[w]++;
}

static void test_inbox(void)
{
	struct cache *c = mk(2, 2 << 20, 64 << 10);
	struct wake_log log = { { 0 } };
	struct cache_req *r, *r2;
	char key[16], buf[8];
	int i, s1 = -1;

	if (!c)
		return;
	cache_set_waker(c, on_wake, &log);
	for (i = 0; i < 100 && s1 < 0; i++) {
		snprintf(key, sizeof key, "k%d", i);
		if (cache_shard_of(c, key, strlen(key)) == 1)
			s1 = i;
	}
	CHECK(s1 >= 0);
	/* worker 0 sets a key of shard 1: queued, the owner is woken */
	r = cache_req_new(CACHE_REQ_SET, NULL, 0);
	r->entry = str_entry(c, key, "v", 0);
	r->waiter = 0;
	CHECK_INT(cache_submit(c, 0, r, T0), 0);
	CHECK_INT(log.calls[1], 1);
	CHECK(!cache_req_done(r));
	CHECK(get(c, key, T0, buf, sizeof buf) == NULL);         /* not applied yet */
	r2 = cache_req_new(CACHE_REQ_DEL, "nothing", 7);
	r2->shard = 1;
	CHECK_INT(cache_submit(c, 0, r2, T0), 0);
	CHECK_INT(log.calls[1], 1);                              /* already non-empty */
	CHECK_INT(cache_shard_poll(c, 1, T0), 2);
	CHECK(cache_req_done(r) && cache_req_done(r2));
	CHECK_INT(r->result, 1);
	CHECK_INT(log.calls[0], 1);                              /* the waiter, once */
	CHECK(get(c, key, T0, buf, sizeof buf) != NULL);
	cache_req_free(r);
	cache_req_free(r2);

	/* abandoned while queued: the owner frees it (ASan checks the leak) */
	r = cache_req_new(CACHE_REQ_SET, NULL, 0);
	r->entry = str_entry(c, key, "w", 0);
	CHECK_INT(cache_submit(c, 0, r, T0), 0);
	cache_req_abandon(r);
	cache_shard_poll(c, 1, T0);
	CHECK_STR(get(c, key, T0, buf, sizeof buf), "w");
	/* abandoned after completion: freed by the abandoner */
	r = cache_req_new(CACHE_REQ_DEL, key, strlen(key));
	CHECK_INT(cache_submit(c, 0, r, T0), 0);
	cache_shard_poll(c, 1, T0);
	cache_req_abandon(r);
	/* still queued at destroy: freed with the cache */
	r = cache_req_new(CACHE_REQ_SET, NULL, 0);
	r->entry = str_entry(c, key, "x", 0);
	cache_insert(c, 0, r->entry, T0);
	r->entry = NULL;
	cache_req_free(r);
	cache_destroy(c);
}

static void test_set_flags(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	struct cache_req *r;
	const struct cache_entry *e;
	char buf[8];

	if (!c)
		return;
#define SETF(k, v, exp, fl) ({ r = cache_req_new(CACHE_REQ_SET, NULL, 0); \
	r->entry = str_entry(c, k, v, exp); r->flags = fl; run(c, 0, r, T0); \
	int64_t res_ = r->result; cache_req_free(r); res_; })
	CHECK_INT(SETF("k", "1", 0, CACHE_SET_XX), 0);
	CHECK(get(c, "k", T0, buf, sizeof buf) == NULL);
	CHECK_INT(SETF("k", "1", T0 + 5000, CACHE_SET_NX), 1);
	CHECK_INT(SETF("k", "2", 0, CACHE_SET_NX), 0);
	CHECK_STR(get(c, "k", T0, buf, sizeof buf), "1");
	CHECK_INT(SETF("k", "3", 0, CACHE_SET_XX | CACHE_SET_KEEPTTL), 1);
	e = cache_lookup(c, "k", 1, T0);
	CHECK(e && cache_entry_ttl_ms(e, T0) == 5000);
	CHECK_INT(SETF("k", "4", 0, 0), 1);
	e = cache_lookup(c, "k", 1, T0);
	CHECK(e && cache_entry_ttl_ms(e, T0) == -1);
	/* EXPIRE: set, persist, past = delete */
	r = run(c, 0, cache_req_new(CACHE_REQ_EXPIRE, "k", 1), T0);
	CHECK_INT(r->result, 1);   /* arg 0 = persist */
	cache_req_free(r);
	r = cache_req_new(CACHE_REQ_EXPIRE, "k", 1);
	r->arg = T0 + 10;
	run(c, 0, r, T0);
	cache_req_free(r);
	e = cache_lookup(c, "k", 1, T0);
	CHECK(e && cache_entry_ttl_ms(e, T0) == 10);
	r = cache_req_new(CACHE_REQ_EXPIRE, "k", 1);
	r->arg = T0 - 1;
	run(c, 0, r, T0);
	CHECK_INT(r->result, 1);
	cache_req_free(r);
	CHECK(get(c, "k", T0, buf, sizeof buf) == NULL);
	r = run(c, 0, cache_req_new(CACHE_REQ_EXPIRE, "k", 1), T0);
	CHECK_INT(r->result, 0);
	cache_req_free(r);
#undef SETF
	cache_destroy(c);
}

static int64_t incr(struct cache *c, const char *key, int64_t d, int *rc)
{
	struct cache_req *r = cache_req_new(CACHE_REQ_INCR, key, strlen(key));
	int64_t v;

	r->arg = d;
	run(c, 0, r, T0);
	*rc = r->rc;
	v = r->result;
	cache_req_free(r);
	return v;
}

static void test_incr(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	char buf[32];
	int rc;

	if (!c)
		return;
	CHECK_INT(incr(c, "n", 1, &rc), 1);
	CHECK_INT(rc, 0);
	CHECK_INT(incr(c, "n", 41, &rc), 42);
	CHECK_INT(incr(c, "n", -50, &rc), -8);
	CHECK_STR(get(c, "n", T0, buf, sizeof buf), "-8");
	put(c, 0, "n", "9223372036854775806", T0 + 1000);
	CHECK_INT(incr(c, "n", 1, &rc), INT64_MAX);
	{
		const struct cache_entry *e = cache_lookup(c, "n", 1, T0);

		CHECK(e && cache_entry_ttl_ms(e, T0) == 1000);   /* INCR keeps the TTL */
	}
	incr(c, "n", 1, &rc);
	CHECK_INT(rc, -ERANGE);
	CHECK_STR(get(c, "n", T0, buf, sizeof buf), "9223372036854775807");
	put(c, 0, "m", "-9223372036854775808", 0);
	incr(c, "m", -1, &rc);
	CHECK_INT(rc, -ERANGE);
	put(c, 0, "s", "abc", 0);
	incr(c, "s", 1, &rc);
	CHECK_INT(rc, -EINVAL);
	put(c, 0, "s", "012", 0);
	incr(c, "s", 1, &rc);
	CHECK_INT(rc, -EINVAL);
	put(c, 0, "s", " 1", 0);
	incr(c, "s", 1, &rc);
	CHECK_INT(rc, -EINVAL);
	put(c, 0, "s", "", 0);
	incr(c, "s", 1, &rc);
	CHECK_INT(rc, -EINVAL);
	put(c, 0, "s", "99999999999999999999", 0);
	incr(c, "s", 1, &rc);
	CHECK_INT(rc, -EINVAL);
	cache_destroy(c);
}

static void test_fill(void)
{
	struct cache *c = mk(1, 1 << 20, 64 << 10);
	uint64_t t1, t2, t3;

	if (!c)
		return;
	CHECK_INT(cache_fill_claim(c, "k", 1, T0, &t1), CACHE_FILL_LEAD);
	CHECK_INT(cache_fill_claim(c, "k", 1, T0 + 1, &t2), CACHE_FILL_WAIT);
	CHECK(t1 == t2);
	CHECK(cache_fill_waiting(c, t2, T0 + 10));
	CHECK(!cache_fill_waiting(c, t2, T0 + 6000));            /* the lead is too slow */
	cache_fill_release(c, t1);
	CHECK(!cache_fill_waiting(c, t2, T0 + 10));
	CHECK_INT(cache_fill_claim(c, "k", 1, T0 + 20, &t3), CACHE_FILL_LEAD);
	/* a stale lead is taken over */
	CHECK_INT(cache_fill_claim(c, "k", 1, T0 + 20 + 6000, &t2), CACHE_FILL_LEAD);
	CHECK(t2 != t3);
	cache_fill_release(c, t3);                               /* the old lead: no effect */
	CHECK(cache_fill_waiting(c, t2, T0 + 20 + 6001));
	cache_fill_release(c, t2);
	cache_destroy(c);
}

static void test_outcomes(void)
{
	struct cache *c = mk(2, 2 << 20, 64 << 10);
	struct cache_stats st;

	if (!c)
		return;
	cache_count(c, 0, CACHE_OUT_HIT);
	cache_count(c, 1, CACHE_OUT_HIT);
	cache_count(c, 1, CACHE_OUT_MISS);
	cache_count(c, 0, CACHE_OUT_STALE);
	cache_count(c, 0, CACHE_OUT_BYPASS);
	cache_stats(c, &st);
	CHECK_INT(st.hits, 3);
	CHECK_INT(st.misses, 1);
	CHECK_INT(st.outcome[CACHE_OUT_BYPASS], 1);
	CHECK_STR(cache_outcome_name(CACHE_OUT_REVALIDATED), "REVALIDATED");
	cache_destroy(c);
}

/* ---- two threads ---- */

#define NKEYS 2000

struct thr {
	struct cache *c;
	int w;
	atomic_int *stop;
	long lookups, hits, inserts, bad, over;
};

/* Values are the key repeated: a reader can check every byte it sees. */
static int value_ok(const struct cache_entry *e)
{
	const char *k = cache_entry_key(e), *v = cache_entry_value(e);
	uint32_t i;

	for (i = 0; i < e->vlen; i++)
		if (v[i] != k[i % e->klen])
			return 0;
	return 1;
}

static void *worker_thread(void *arg)
{
	struct thr *t = arg;
	const struct cache_entry *held[8] = { 0 };
	uint64_t x = 0x1234567 + (uint64_t)t->w * 7919;
	struct cache_entry *e;
	struct cache_stats st;
	char key[32];
	long it = 0;
	int i, n;

	while (!atomic_load(t->stop)) {
		cache_quiescent(t->c, t->w);
		for (i = 0; i < 64; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			n = snprintf(key, sizeof key, "key%llu", (unsigned long long)(x % NKEYS));
			if (t->w == 0 && i % 2 == 0) {
				/* the writer: inserts of random sizes into both shards */
				size_t vlen = (size_t)(x >> 20) % 3000, j;

				if (cache_entry_new(t->c, CACHE_KIND_STRING, key, (size_t)n, vlen, 0, &e))
					continue;
				for (j = 0; j < vlen; j++)
					cache_entry_value(e)[j] = key[j % (size_t)n];
				atomic_store(&e->expires_ms, (x & 7) == 0 ? T0 - 1 : 0);
				cache_insert(t->c, t->w, e, T0);
				t->inserts++;
				continue;
			}
			if (t->w == 0 && i % 7 == 3) {
				cache_purge(t->c, t->w, CACHE_REQ_DEL, key, (size_t)n, T0);
				continue;
			}
			{
				const struct cache_entry *f = cache_lookup(t->c, key, (size_t)n, T0);

				t->lookups++;
				if (!f)
					continue;
				t->hits++;
				if (f->klen != (uint32_t)n || memcmp(cache_entry_key(f), key, (size_t)n) ||
				    !value_ok(f))
					t->bad++;
				/* hold some across loop iterations, like a send in flight */
				if ((x & 15) == 0) {
					int slot = (int)((x >> 8) & 7);

					if (held[slot]) {
						if (!value_ok(held[slot]))
							t->bad++;
						cache_entry_release(held[slot]);
					}
					cache_entry_hold(f);
					held[slot] = f;
				}
			}
		}
		cache_shard_poll(t->c, t->w, T0);
		cache_stats(t->c, &st);
		t->over += st.bytes > st.limit;
		if (++it % 50 == 0) {
			/* sometimes "block in io_uring": offline, then back */
			cache_offline(t->c, t->w);
			sched_yield();
		}
	}
	for (i = 0; i < 8; i++)
		if (held[i])
			cache_entry_release(held[i]);
	cache_quiescent(t->c, t->w);
	return NULL;
}

static void test_two_threads(void)
{
	struct cache *c = mk(2, 1 << 20, 16 << 10);
	struct thr t[2];
	pthread_t th[2];
	atomic_int stop;
	struct timespec ts = { 1, 0 };
	struct cache_stats st;
	int i, k;

	if (!c)
		return;
	atomic_init(&stop, 0);
	for (i = 0; i < 2; i++) {
		memset(&t[i], 0, sizeof t[i]);
		t[i].c = c;
		t[i].w = i;
		t[i].stop = &stop;
		pthread_create(&th[i], NULL, worker_thread, &t[i]);
	}
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* drain: both owners apply what is queued and reclaim */
	for (k = 0; k < 4; k++)
		for (i = 0; i < 2; i++) {
			cache_quiescent(c, i);
			cache_shard_poll(c, i, T0);
		}
	cache_stats(c, &st);
	CHECK_INT(t[0].bad + t[1].bad, 0);
	CHECK_INT(t[0].over + t[1].over, 0);
	CHECK(t[0].inserts > 1000);
	CHECK(t[1].hits > 100);
	CHECK_INT(st.retired_bytes, 0);
	CHECK(st.bytes <= st.limit);
	printf("     two threads: %ld inserts, %ld + %ld lookups, %ld + %ld hits, %llu evictions\n",
	       t[0].inserts, t[0].lookups, t[1].lookups, t[0].hits, t[1].hits,
	       (unsigned long long)st.evictions);
	cache_destroy(c);
}

int main(void)
{
	RUN(test_basic);
	RUN(test_limits);
	RUN(test_ref_outlives_delete);
	RUN(test_ttl);
	RUN(test_memory_bound);
	RUN(test_hot_keys_survive);
	RUN(test_purge);
	RUN(test_vary_marker);
	RUN(test_inbox);
	RUN(test_set_flags);
	RUN(test_incr);
	RUN(test_fill);
	RUN(test_outcomes);
	RUN(test_two_threads);
	TEST_REPORT();
}

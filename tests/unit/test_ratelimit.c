/* test_ratelimit.c - the rate limiter: exact GCRA admission counts on an
 * injected clock, slot reuse and a full table, every key kind, tiers,
 * client overrides, bans, the block list, headers and bodies, the line
 * protocol, QSBR reclamation, two threads hammering one key, and threads
 * inserting the same fresh keys at once (exactly burst admissions each). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "http_parse.h"
#include "ratelimit.h"
#include "rl_clients.h"
#include "test.h"
#include "upstream.h"

#define S 1000000ull            /* one second in microseconds */
#define UP "[upstream app]\nservers = 127.0.0.1:9001\n"

/* A hash that lands in bucket 0 of shard 0 with the given tag. */
static uint64_t hkey(uint64_t tag)
{
	return tag << 48;
}

static struct rl_policy pol(uint32_t rate, uint64_t period_us, uint32_t burst)
{
	struct rl_policy p;

	if (rl_policy_init(&p, rate, period_us, burst))
		test_cur_failed++;
	return p;
}

/* Requests of one key at <now> until the first rejection: the admitted count. */
static int drain(struct rl_table *t, uint64_t h, const struct rl_policy *p, uint64_t now)
{
	struct rl_verdict v;
	int n = 0;

	while (rl_check(t, 0, h, p, now, &v) && n < 1000000)
		n++;
	return n;
}

static void test_policy(void)
{
	struct rl_policy p;

	CHECK_INT(rl_policy_init(&p, 100, 60 * S, 100), 0);
	CHECK_INT(p.t_us, 600000);
	CHECK_INT(p.tau_us, 99 * 600000ull);
	CHECK_INT(p.quota, 100);
	CHECK_INT(p.window_s, 60);
	CHECK_INT(rl_policy_init(&p, 3, S, 0), 0);      /* burst 0 = rate */
	CHECK_INT(p.burst, 3);
	CHECK_INT(p.t_us, 333334);                      /* rounded up: never over the rate */
	CHECK_INT(rl_policy_init(&p, 10, 500000, 10), 0);
	CHECK_INT(p.quota, 20);
	CHECK_INT(p.window_s, 1);
	CHECK_INT(rl_policy_init(&p, 0, S, 1), -EINVAL);
	CHECK_INT(rl_policy_init(&p, 1, 0, 1), -EINVAL);
	CHECK_INT(rl_policy_init(&p, 1, 86400 * S, 1000), -ERANGE);
	CHECK_INT(rl_policy_from_rps(&p, 1.4, 20), 0);
	CHECK_INT(p.burst, 20);
	CHECK_INT(p.quota, 84);
	CHECK_INT(p.window_s, 60);
	CHECK_INT(p.t_us, 714286);
	CHECK_INT(rl_policy_from_rps(&p, 5, 10), 0);
	CHECK_INT(p.quota, 5);
	CHECK_INT(p.window_s, 1);
	CHECK_INT(p.t_us, 200000);
	CHECK_INT(rl_policy_from_rps(&p, 0.5, 1), 0);
	CHECK_INT(p.quota, 30);
	CHECK_INT(p.t_us, 2000000);
	CHECK_INT(rl_policy_from_rps(&p, 0, 10), -EINVAL);
	CHECK_INT(rl_policy_from_rps(&p, 1, 0), -EINVAL);
}

/* Burst at once, then exactly one per emission interval. */
static void test_burst_then_rate(void)
{
	struct rl_table t;
	struct rl_policy p = pol(10, S, 5);     /* T = 100 ms, burst 5 */
	struct rl_verdict v;
	uint64_t now, admitted = 0;
	int i;

	CHECK_INT(rl_table_init(&t, 1, 64, RL_FULL_ALLOW, 0), 0);
	CHECK_INT(drain(&t, hkey(1), &p, 0), 5);
	CHECK_INT(drain(&t, hkey(1), &p, 99999), 0);
	CHECK_INT(drain(&t, hkey(1), &p, 100000), 1);
	CHECK_INT(drain(&t, hkey(1), &p, 250000), 1);
	CHECK_INT(drain(&t, hkey(1), &p, 300000), 1);
	/* hammered every millisecond for 10 s: 5 + 10 s / 100 ms, exactly */
	for (now = 1000 * S, i = 0; now <= 1010 * S; now += 1000, i++)
		admitted += rl_check(&t, 0, hkey(2), &p, now, &v);
	CHECK_INT(admitted, 5 + 100);
	/* idle long enough to refill completely: a full burst again */
	CHECK_INT(drain(&t, hkey(2), &p, 1011 * S), 5);
	rl_table_free(&t);
}

/* A rejected request takes nothing: a client that backs off recovers on schedule. */
static void test_rejections_free(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1, S, 2);
	struct rl_verdict v;
	uint64_t now;

	CHECK_INT(rl_table_init(&t, 2, 1000, RL_FULL_ALLOW, 0), 0);
	CHECK_INT(drain(&t, 42, &p, 0), 2);
	for (now = 0; now < S; now += 100)
		CHECK_INT(rl_check(&t, 1, 42, &p, now, &v), 0);
	CHECK_INT(drain(&t, 42, &p, S), 1);
	CHECK_INT(drain(&t, 42, &p, 2 * S), 1);
	rl_table_free(&t);
}

static void test_verdict(void)
{
	struct rl_table t;
	struct rl_policy p = pol(5, 60 * S, 5);         /* the "free" tier: 5/min */
	struct rl_verdict v;
	int i;

	CHECK_INT(rl_table_init(&t, 1, 64, RL_FULL_ALLOW, 0), 0);
	for (i = 0; i < 5; i++) {
		CHECK_INT(rl_check(&t, 0, 7, &p, 0, &v), 1);
		CHECK_INT(v.remaining, 4 - i);
		CHECK_INT(v.limit, 5);
		CHECK_INT(v.reset_s, 12 * (i + 1));     /* until the bucket is full again */
		CHECK_INT(v.retry_after_s, 0);
	}
	CHECK_INT(rl_check(&t, 0, 7, &p, 0, &v), 0);
	CHECK_INT(v.remaining, 0);
	CHECK_INT(v.retry_after_s, 12);
	CHECK_INT(v.reset_s, 60);
	CHECK_INT(rl_check(&t, 0, 7, &p, 11 * S + 1, &v), 0);
	CHECK_INT(v.retry_after_s, 1);                  /* 0.999999 s rounds up, never 0 */
	CHECK_INT(rl_check(&t, 0, 7, &p, 12 * S, &v), 1);
	CHECK_INT(v.remaining, 0);
	rl_peek(&t, 7, &p, 30 * S, &v);
	CHECK_INT(v.allowed, 1);
	CHECK_INT(v.remaining, 1);
	CHECK_INT(v.reset_s, 42);
	rl_peek(&t, hkey(8), &p, 30 * S, &v);           /* unknown key: full */
	CHECK_INT(v.remaining, 5);
	CHECK_INT(rl_refund(&t, 7, &p, 30 * S), 0);
	rl_peek(&t, 7, &p, 30 * S, &v);
	CHECK_INT(v.remaining, 2);
	CHECK_INT(rl_refund(&t, hkey(8), &p, 30 * S), -ENOENT);
	rl_table_free(&t);
}

/* One bucket of eight slots: live keys hold them, refilled keys give them up. */
static void test_slot_reuse_and_full(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1, S, 3);
	struct rl_table_stats st;
	struct rl_verdict v;
	uint64_t k;

	CHECK_INT(rl_table_init(&t, 1, 8, RL_FULL_ALLOW, 0), 0);
	CHECK_INT(t.nbuckets, 1);
	for (k = 1; k <= 8; k++)
		CHECK_INT(rl_check(&t, 0, hkey(k), &p, 0, &v), 1);
	/* a ninth key finds only live buckets: admitted untracked, counted */
	CHECK_INT(rl_check(&t, 0, hkey(9), &p, 0, &v), 1);
	CHECK_INT(v.tracked, 0);
	CHECK_INT(rl_check(&t, 0, hkey(9), &p, 0, &v), 1);
	rl_table_stats(&t, &st);
	CHECK_INT(st.table_full, 2);
	CHECK_INT(st.allowed, 8);
	/* the eight keep their state: none of them got a fresh burst */
	CHECK_INT(drain(&t, hkey(3), &p, 0), 2);
	/* key 1 has refilled at 1 s (one request): its slot is free again */
	CHECK_INT(drain(&t, hkey(9), &p, S), 3);
	CHECK_INT(rl_check(&t, 0, hkey(9), &p, S, &v), 0);
	CHECK_INT(v.tracked, 1);
	/* and key 1 comes back later as fresh: reuse lost nothing it had */
	CHECK_INT(drain(&t, hkey(1), &p, 10 * S), 3);
	rl_table_free(&t);

	/* deny: the new key waits until the soonest slot frees */
	CHECK_INT(rl_table_init(&t, 1, 8, RL_FULL_DENY, 0), 0);
	for (k = 1; k <= 8; k++)
		CHECK_INT(drain(&t, hkey(k), &p, 0), 3);
	CHECK_INT(rl_check(&t, 0, hkey(9), &p, 500000, &v), 0);
	CHECK_INT(v.retry_after_s, 3);
	CHECK_INT(v.remaining, 0);
	rl_table_stats(&t, &st);
	CHECK_INT(st.table_full, 1);
	CHECK_INT(st.limited, 9);
	CHECK_INT(rl_check(&t, 0, hkey(9), &p, 3 * S, &v), 1);
	rl_table_free(&t);
}

/* The insertion states one worker can meet (claim() in ratelimit.c): a
 * claim of the key by a stalled worker, a claim turned down, and the key's
 * own refilled bucket, which it charges again rather than inserting anew. */
static void test_claims(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1, S, 3);
	struct rl_table_stats st;
	struct rl_verdict v;
	uint64_t tag = hkey(5), i;

	CHECK_INT(rl_table_init(&t, 1, RL_SLOTS, RL_FULL_ALLOW, 0), 0);
	/* a claim turned down (its claimer has not cleared it yet) is no bucket */
	atomic_store(&t.slots[0], tag | RL_TAT_DEAD);
	CHECK_INT(rl_check(&t, 0, tag, &p, 0, &v), 1);
	CHECK(atomic_load(&t.slots[0]) == (tag | RL_TAT_DEAD));
	CHECK(atomic_load(&t.slots[1]) == (tag | S));
	CHECK_INT(drain(&t, tag, &p, 0), 2);
	rl_table_free(&t);

	/* a claim by a worker that stalls: after a short wait the key is
	 * inserted elsewhere and the stalled claim turned down, so the stalled
	 * worker's commit fails and it charges this bucket instead */
	CHECK_INT(rl_table_init(&t, 1, RL_SLOTS, RL_FULL_ALLOW, 0), 0);
	atomic_store(&t.slots[0], tag | RL_TAT_PEND);
	rl_peek(&t, tag, &p, 0, &v);                    /* a claim holds no tokens */
	CHECK_INT(v.remaining, 3);
	CHECK_INT(rl_refund(&t, tag, &p, 0), -ENOENT);
	CHECK_INT(rl_rescale(&t, tag, &p, &p, 0), -ENOENT);
	CHECK(atomic_load(&t.slots[0]) == (tag | RL_TAT_PEND));
	CHECK_INT(rl_check(&t, 0, tag, &p, 0, &v), 1);
	CHECK(atomic_load(&t.slots[0]) == (tag | RL_TAT_DEAD));
	CHECK(atomic_load(&t.slots[1]) == (tag | S));
	CHECK_INT(drain(&t, tag, &p, 0), 2);
	/* claims and turned-down claims are not free slots for other keys */
	for (i = 2; i < RL_SLOTS; i++)
		CHECK_INT(rl_check(&t, 0, hkey(10 + i), &p, 0, &v), 1);
	CHECK_INT(rl_check(&t, 0, hkey(99), &p, 0, &v), 1);
	CHECK_INT(v.tracked, 0);
	rl_table_stats(&t, &st);
	CHECK_INT(st.table_full, 1);
	rl_table_free(&t);

	/* the key's refilled bucket in slot 3, slot 0 free: charged in place */
	CHECK_INT(rl_table_init(&t, 1, RL_SLOTS, RL_FULL_ALLOW, 0), 0);
	atomic_store(&t.slots[3], tag | 1);
	CHECK_INT(rl_check(&t, 0, tag, &p, 10 * S, &v), 1);
	CHECK_INT(v.remaining, 2);
	CHECK(atomic_load(&t.slots[3]) == (tag | 11 * S));
	CHECK(atomic_load(&t.slots[0]) == 0);
	CHECK_INT(drain(&t, tag, &p, 10 * S), 2);
	/* while another key takes it over once it has refilled */
	CHECK_INT(rl_check(&t, 0, hkey(6), &p, 20 * S, &v), 1);
	CHECK(atomic_load(&t.slots[0]) == (hkey(6) | 21 * S));
	CHECK_INT(rl_check(&t, 0, hkey(7), &p, 20 * S, &v), 1);
	CHECK(atomic_load(&t.slots[1]) == (hkey(7) | 21 * S));
	rl_table_free(&t);
}

static void test_clock_range(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1, S, 1);
	struct rl_table_stats st;
	struct rl_verdict v;

	CHECK_INT(rl_table_init(&t, 1, 64, RL_FULL_ALLOW, 5 * S), 0);
	CHECK_INT(drain(&t, 1, &p, 4 * S), 1);   /* before the epoch: treated as the epoch */
	CHECK_INT(rl_check(&t, 0, 2, &p, 5 * S + RL_NOW_MAX, &v), 1);
	CHECK_INT(rl_check(&t, 0, 2, &p, 5 * S + RL_NOW_MAX, &v), 1);
	rl_table_stats(&t, &st);
	CHECK_INT(st.clock, 2);
	rl_table_free(&t);
	CHECK_INT(rl_table_init(&t, 0, 64, RL_FULL_ALLOW, 0), -EINVAL);
	CHECK_INT(rl_table_init(&t, 1, 0, RL_FULL_ALLOW, 0), -EINVAL);
}

static void test_keys(void)
{
	uint8_t v4[4] = { 10, 0, 0, 1 }, mapped[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 };
	uint8_t v6[16] = { [15] = 1 };
	struct rl_key_parts kp = { 0 };
	uint64_t seed = 12345, a, b;

	CHECK(rl_key_ip(v4, 4, seed) == rl_key_ip(mapped, 16, seed));
	CHECK(rl_key_id("10.0.0.1", 8, seed) == rl_key_ip(v4, 4, seed));
	CHECK(rl_key_id("::ffff:10.0.0.1", 15, seed) == rl_key_ip(v4, 4, seed));
	CHECK(rl_key_id("::1", 3, seed) == rl_key_ip(v6, 16, seed));
	CHECK(rl_key_id("abc", 3, seed) == rl_key_header("abc", 3, seed));
	CHECK(rl_key_header("abc", 3, seed) != rl_key_header("abd", 3, seed));
	CHECK(rl_key_ip(v4, 4, seed) != rl_key_ip(v4, 4, seed + 1));
	a = rl_key_ip(v4, 4, seed);
	CHECK(rl_key_ip_path(a, "/a?x=1", 6, seed) == rl_key_ip_path(a, "/a?y=2", 6, seed));
	CHECK(rl_key_ip_path(a, "/a", 2, seed) == rl_key_ip_path(a, "/a?", 3, seed));
	CHECK(rl_key_ip_path(a, "/a", 2, seed) != rl_key_ip_path(a, "/b", 2, seed));
	CHECK(rl_key_ip_path(a, "/a", 2, seed) != a);

	CHECK_INT(rl_key_make(RL_KEY_IP, &kp, seed, &b), -ENOENT);
	CHECK_INT(rl_key_make(RL_KEY_HEADER, &kp, seed, &b), -ENOENT);
	kp.ip = v4;
	kp.ip_len = 4;
	CHECK_INT(rl_key_make(RL_KEY_IP, &kp, seed, &b), 0);
	CHECK(b == a);
	CHECK_INT(rl_key_make(RL_KEY_IP_PATH, &kp, seed, &b), -ENOENT);
	kp.path = "/x?q";
	kp.path_len = 4;
	CHECK_INT(rl_key_make(RL_KEY_IP_PATH, &kp, seed, &b), 0);
	CHECK(b == rl_key_ip_path(a, "/x", 2, seed));
	kp.hdr = "k-1";
	kp.hdr_len = 3;
	CHECK_INT(rl_key_make(RL_KEY_HEADER, &kp, seed, &b), 0);
	CHECK(b == rl_key_header("k-1", 3, seed));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* 1M similar keys: no 64-bit collision, even spread over buckets and tags. */
static void test_hash_spread(void)
{
	enum { N = 1 << 20, NB = 1024 };
	uint64_t *h = malloc(N * sizeof *h), dups = 0;
	static uint32_t cnt[NB], tags[NB];
	double chi = 0, chit = 0, e = (double)N / NB;
	char buf[32];
	int i, n;

	if (!h)
		return;
	for (i = 0; i < N; i++) {
		n = snprintf(buf, sizeof buf, "client-%d", i);
		h[i] = rl_hash(buf, (size_t)n, 99);
		cnt[((h[i] & 0xffffffffu) * NB) >> 32]++;
		tags[(h[i] >> 48) % NB]++;
	}
	for (i = 0; i < NB; i++) {
		chi += (cnt[i] - e) * (cnt[i] - e) / e;
		chit += (tags[i] - e) * (tags[i] - e) / e;
	}
	qsort(h, N, sizeof *h, cmp_u64);
	for (i = 1; i < N; i++)
		dups += h[i] == h[i - 1];
	CHECK_INT(dups, 0);
	/* 1023 degrees of freedom: mean 1023, sd 45; 1300 is 6 sd out */
	CHECK(chi < 1300);
	CHECK(chit < 1300);
	/* every input length path (0..40 bytes) depends on every byte */
	for (n = 0; n <= 40; n++) {
		memset(buf, 'a', sizeof buf);
		for (i = 0; i < n && i < 32; i++) {
			uint64_t x = rl_hash(buf, (size_t)RF_MIN(n, 32), 1);

			buf[i] ^= 1;
			CHECK(rl_hash(buf, (size_t)RF_MIN(n, 32), 1) != x);
			buf[i] ^= 1;
		}
	}
	free(h);
}

static void test_format(void)
{
	struct rl_verdict v = { .allowed = 1, .tracked = 1, .limit = 100, .remaining = 99,
				.reset_s = 1, .quota = 100, .window_s = 60, .burst = 100 };
	char buf[512];
	int n;

	n = rl_format_headers(&v, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0), "RateLimit-Limit: 100\r\nRateLimit-Remaining: 99\r\n"
		  "RateLimit-Reset: 1\r\nRateLimit-Policy: 100;w=60\r\n");
	v.allowed = 0;
	v.remaining = 0;
	v.retry_after_s = 12;
	v.burst = v.limit = 200;
	n = rl_format_headers(&v, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0), "RateLimit-Limit: 200\r\nRateLimit-Remaining: 0\r\n"
		  "RateLimit-Reset: 1\r\nRateLimit-Policy: 100;w=60;burst=200\r\n"
		  "Retry-After: 12\r\n");
	CHECK_INT(rl_format_headers(&v, buf, 20), -ENOSPC);
	n = rl_format_body(429, &v, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0),
		  "{\"code\":429,\"message\":\"rate limit exceeded\",\"retry_after\":12}\n");
	n = rl_format_body(401, NULL, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0),
		  "{\"code\":401,\"message\":\"missing or unknown API key\"}\n");
	n = rl_format_body(403, NULL, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0), "{\"code\":403,\"message\":\"forbidden\"}\n");
	CHECK_INT(rl_format_body(500, NULL, buf, sizeof buf), -EINVAL);
	v.burst = v.limit = 100;
	v.retry_after_s = 0;            /* never "Retry-After: 0" */
	n = rl_format_response(429, &v, 1, 1, "X-Request-Id: r1\r\n", 18, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0), "HTTP/1.1 429 Too Many Requests\r\n"
		  "Content-Type: application/json\r\nContent-Length: 61\r\n"
		  "RateLimit-Limit: 100\r\nRateLimit-Remaining: 0\r\nRateLimit-Reset: 1\r\n"
		  "RateLimit-Policy: 100;w=60\r\nRetry-After: 1\r\nX-Request-Id: r1\r\n"
		  "Connection: keep-alive\r\n\r\n"
		  "{\"code\":429,\"message\":\"rate limit exceeded\",\"retry_after\":1}\n");
	n = rl_format_response(429, &v, 0, 0, NULL, 0, buf, sizeof buf);
	CHECK(n > 0 && !strstr(buf, "RateLimit-") && strstr(buf, "\r\nRetry-After: 1\r\n") &&
	      strstr(buf, "Connection: close\r\n\r\n{"));
	n = rl_format_response(403, NULL, 1, 1, NULL, 0, buf, sizeof buf);
	CHECK_MEM(buf, (size_t)RF_MAX(n, 0), "HTTP/1.1 403 Forbidden\r\n"
		  "Content-Type: application/json\r\nContent-Length: 35\r\n"
		  "Connection: keep-alive\r\n\r\n{\"code\":403,\"message\":\"forbidden\"}\n");
	CHECK_INT(rl_format_response(429, &v, 1, 1, NULL, 0, buf, 100), -ENOSPC);
}

/* ---- line protocol ---- */

static int starts_with_a(void *arg, const char *key, size_t len)
{
	int *calls = arg;

	(*calls)++;
	return key[0] == 'a';
}

/* Feed <in> in pieces of <step> bytes; returns what was written. */
static size_t feed(struct rl_line *ls, const char *in, size_t n, size_t step, char *out,
		   size_t cap, int *calls)
{
	size_t off = 0, olen = 0, c;

	while (off < n && !ls->closing) {
		c = rl_line_feed(ls, in + off, RF_MIN(step, n - off), out, cap, &olen,
				 starts_with_a, calls);
		off += c;
		if (!c)
			break;
	}
	out[olen] = 0;
	return olen;
}

static void test_line_protocol(void)
{
	static const char pipe[] = "a1\nb2\r\na3\n\nb\n";
	char out[4096], big[600];
	struct rl_line ls;
	size_t step, n, olen, c;
	int calls;

	for (step = 1; step <= sizeof pipe; step++) {
		memset(&ls, 0, sizeof ls);
		calls = 0;
		feed(&ls, pipe, sizeof pipe - 1, step, out, sizeof out, &calls);
		CHECK_STR(out, "OK\nERROR\nOK\nERROR\nERROR\n");
		CHECK_INT(calls, 4);            /* the empty line never reaches the check */
		CHECK_INT(ls.closing, 0);
	}
	/* junk: answered lines stay in order, then ERROR and close */
	memset(&ls, 0, sizeof ls);
	feed(&ls, "a\na\x01z\na\n", 8, 100, out, sizeof out, &calls);
	CHECK_STR(out, "OK\nERROR\n");
	CHECK_INT(ls.closing, 1);
	CHECK_INT(rl_line_feed(&ls, "a\n", 2, out, sizeof out, &olen, starts_with_a, &calls), 0);
	memset(&ls, 0, sizeof ls);
	feed(&ls, "ab\0c\n", 5, 2, out, sizeof out, &calls);
	CHECK_STR(out, "ERROR\n");
	CHECK_INT(ls.closing, 1);
	memset(&ls, 0, sizeof ls);
	feed(&ls, "a\rb\n", 4, 100, out, sizeof out, &calls);        /* \r only at the end */
	CHECK_STR(out, "ERROR\n");
	CHECK_INT(ls.closing, 1);
	/* 256 bytes is the longest key, with or without \r */
	memset(big, 'a', sizeof big);
	for (step = 7; step <= 600; step += 593) {
		memset(&ls, 0, sizeof ls);
		big[256] = '\n';
		feed(&ls, big, 257, step, out, sizeof out, &calls);
		CHECK_STR(out, "OK\n");
		memset(&ls, 0, sizeof ls);
		big[256] = '\r';
		big[257] = '\n';
		feed(&ls, big, 258, step, out, sizeof out, &calls);
		CHECK_STR(out, "OK\n");
		memset(&ls, 0, sizeof ls);
		big[256] = 'a';
		big[257] = '\n';
		feed(&ls, big, 258, step, out, sizeof out, &calls);
		CHECK_STR(out, "ERROR\n");
		CHECK_INT(ls.closing, 1);
		memset(&ls, 0, sizeof ls);
		big[257] = 'a';
		feed(&ls, big, 600, step, out, sizeof out, &calls);  /* no newline at all */
		CHECK_STR(out, "ERROR\n");
		CHECK_INT(ls.closing, 1);
	}
	/* a full output buffer stops the feed; the rest resumes after sending */
	memset(&ls, 0, sizeof ls);
	olen = 0;
	n = strlen("a\na\na\n");
	c = rl_line_feed(&ls, "a\na\na\n", n, out, 8, &olen, starts_with_a, &calls);
	CHECK_INT(c, 2);
	CHECK_INT(olen, 3);
	olen = 0;
	c += rl_line_feed(&ls, "a\na\na\n" + c, n - c, out, 8, &olen, starts_with_a, &calls);
	CHECK_INT(c, 4);
	olen = 0;
	c += rl_line_feed(&ls, "a\na\na\n" + c, n - c, out, 8, &olen, starts_with_a, &calls);
	CHECK_INT(c, n);
}

/* ---- the limiter over a parsed config ---- */

static int rl_from(struct rl *rl, const char *ini, unsigned nworkers)
{
	struct rf_config *c = NULL;
	char err[512];
	int rc = config_parse("t.ini", ini, strlen(ini), &c, err, sizeof err);

	if (rc) {
		fprintf(stderr, "  config: %s\n", err);
		test_cur_failed++;
		return rc;
	}
	rc = rl_init(rl, c, nworkers, 0);
	config_free(c);
	CHECK_INT(rc, 0);
	return rc;
}

static struct rl_request req_ip(const uint8_t *ip, const char *path, const char *key)
{
	struct rl_request r = { .ip = ip, .ip_len = 4, .path = path,
				.path_len = path ? (uint32_t)strlen(path) : 0,
				.key = key, .key_len = key ? (uint32_t)strlen(key) : 0 };
	return r;
}

/* Requests until one is refused: how many went through; *status the refusal. */
static int admit_n(struct rl *rl, const struct rl_route *route, struct rl_request rq,
		   uint64_t now, int *status)
{
	struct rl_result res;
	int n = 0;

	while (rl_admit(rl, 0, route, &rq, now, &res) == 0 && n < 100000)
		n++;
	if (status)
		*status = res.status;
	return n;
}

static const uint8_t ip1[4] = { 10, 0, 0, 1 }, ip2[4] = { 10, 0, 0, 2 };

static void test_config_keys(void)
{
	struct rl rl;
	struct rl_result res;
	struct rl_request rq = req_ip(ip1, "/a", NULL);
	int st;

	/* no [ratelimit]: everything passes, no headers */
	if (rl_from(&rl, UP, 2))
		return;
	CHECK_INT(admit_n(&rl, NULL, rq, 0, NULL), 100000);
	rl_destroy(&rl);

	if (rl_from(&rl, UP "[ratelimit]\nrate = 2/s\nburst = 3\n", 2))
		return;
	CHECK_INT(admit_n(&rl, NULL, rq, 0, &st), 3);
	CHECK_INT(st, 429);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/other", NULL), 0, NULL), 0);  /* per ip */
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/a", NULL), 0, NULL), 3);
	CHECK_INT(admit_n(&rl, NULL, rq, S / 2, NULL), 1);
	CHECK_INT(rl_admit(&rl, 1, NULL, &rq, S / 2, &res), 429);
	CHECK_INT(res.headers, 1);
	CHECK_INT(res.v.retry_after_s, 1);
	CHECK_INT(res.v.limit, 3);
	CHECK_INT(res.v.quota, 2);
	CHECK_INT(res.v.window_s, 1);
	rl_destroy(&rl);

	if (rl_from(&rl, UP "[ratelimit]\nrate = 1/s\nburst = 2\nkey = ip+path\n"
		    "rate_limit_headers = off\n", 1))
		return;
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/a?x=1", NULL), 0, NULL), 2);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/a?y=2", NULL), 0, NULL), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/b", NULL), 0, &st), 2);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/a", NULL), 0, NULL), 2);
	rl_admit(&rl, 0, NULL, &rq, 0, &res);
	CHECK_INT(res.headers, 0);
	rl_destroy(&rl);
}

static void test_routes(void)
{
	struct rl rl;
	struct rl_route off, custom, bad;
	struct rl_request rq = req_ip(ip1, "/a", "k");

	if (rl_from(&rl, UP "[ratelimit]\nrate = 1/s\nburst = 1\n", 1))
		return;
	rl_route_off(&off);
	CHECK_INT(rl_route_custom(&custom, RL_KEY_HEADER, "X-Key", 5, S, 5, 0), 0);
	CHECK_INT(rl_route_custom(&bad, RL_KEY_HEADER, "", 5, S, 5, 0), -EINVAL);
	CHECK_INT(rl_route_custom(&bad, RL_KEY_IP, NULL, 5, S, 5, 1), -EINVAL);
	CHECK_INT(rl_route_custom(&bad, RL_KEY_IP, NULL, 0, S, 5, 0), -EINVAL);
	CHECK_INT(admit_n(&rl, &off, rq, 0, NULL), 100000);
	/* an unknown key: only the route's address limit (5) applies */
	CHECK_INT(admit_n(&rl, &custom, rq, 0, NULL), 5);
	CHECK_INT(admit_n(&rl, NULL, rq, 0, NULL), 1);
	rl_destroy(&rl);
}

/* The limit runtime_init() gives a route (NULL = the [ratelimit] one). */
static const struct rl_route *limit_of(const struct runtime *rt, const char *path)
{
	const struct rf_route_conf *r = route_find(rt, path, (uint32_t)strlen(path));

	return r ? route_limit(rt, r) : NULL;
}

/* require_key per route: a route keyed by the API key inherits [ratelimit]'s
 * unless it sets its own; one whose require_key alone differs keeps the
 * [ratelimit] buckets (salt 0), one with its own rate gets its own. */
static void test_route_require_key(void)
{
	static const char *const ini[] = {
		UP "[route]\n/ = app\n/on = app require_key=on\n/off = app require_key=off\n"
		"/own = app rate=5/s\n/ip = app key=ip\n"
		"[ratelimit]\nkey = header:X-Key\nrequire_key = on\n",
		UP "[route]\n/ = app\n/on = app require_key=on\n/own = app rate=5/s\n"
		"[ratelimit]\nkey = header:X-Key\n",
	};
	const struct rl_route *l;
	struct rf_config *cfg;
	struct runtime rt;
	char err[256];

	CHECK_INT(config_parse("t.ini", ini[0], strlen(ini[0]), &cfg, err, sizeof err), 0);
	CHECK_INT(runtime_init(&rt, cfg), 0);
	CHECK(limit_of(&rt, "/x") == NULL);
	CHECK(limit_of(&rt, "/on") == NULL);            /* on, as [ratelimit] is */
	l = limit_of(&rt, "/off");
	CHECK(l && l->mode == RL_ROUTE_CUSTOM && !l->require_key && !l->salt);
	l = limit_of(&rt, "/own");
	CHECK(l && l->require_key && l->salt && l->key == RL_KEY_HEADER);
	l = limit_of(&rt, "/ip");
	CHECK(l && !l->require_key && l->key == RL_KEY_IP);
	runtime_free(&rt);

	CHECK_INT(config_parse("t.ini", ini[1], strlen(ini[1]), &cfg, err, sizeof err), 0);
	CHECK_INT(runtime_init(&rt, cfg), 0);
	CHECK(limit_of(&rt, "/x") == NULL);
	l = limit_of(&rt, "/on");
	CHECK(l && l->require_key && !l->salt && l->pol.burst == 100);   /* [ratelimit]'s */
	l = limit_of(&rt, "/own");
	CHECK(l && !l->require_key && l->salt);
	runtime_free(&rt);
}

static const char tiers_ini[] = UP
	"[ratelimit]\nrate = 50/m\nburst = 0\nkey = header:X-API-Key\nrequire_key = on\n"
	"[tier free]\nrate = 5/m\n[tier basic]\nrate = 20/m\n[tier premium]\nrate = 100/m\n"
	"[tier enterprise]\nrate = 1000/m\nburst = 10\n"
	"[api_keys]\nkf = free\nkb = basic\nkp = premium\nke = enterprise\n";

/* A distinct address per call site: 10.1.x.y. */
static const uint8_t *ipn(int n)
{
	static uint8_t ips[64][4];
	uint8_t *a = ips[n % 64];

	a[0] = 10;
	a[1] = 1;
	a[2] = (uint8_t)(n >> 8);
	a[3] = (uint8_t)n;
	return a;
}

static uint64_t test_now;

static uint64_t test_clock(void)
{
	return test_now;
}

static void test_tiers(void)
{
	struct rl rl;
	struct rl_result res;
	int st;

	if (rl_from(&rl, tiers_ini, 2))
		return;
	rl.clock = test_clock;
	test_now = 0;
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(1), "/", "kf"), 0, &st), 5);
	CHECK_INT(st, 429);
	rl_admit(&rl, 0, NULL, &(struct rl_request){ .ip = ipn(1), .ip_len = 4, .key = "kf",
			.key_len = 2 }, 0, &res);
	CHECK_INT(res.v.retry_after_s, 12);
	CHECK_INT(res.v.limit, 5);
	CHECK_INT(res.v.quota, 5);
	CHECK_INT(res.v.window_s, 60);
	/* the key is the bucket, whatever the address */
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(2), "/", "kf"), 0, NULL), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(2), "/", "kf"), 12 * S, NULL), 1);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(3), "/", "kb"), 0, NULL), 20);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(4), "/", "ke"), 0, NULL), 10);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(4), "/", "ke"), 60000, NULL), 1);
	/* premium allows 100, but the address limit (50/m) applies too... */
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(5), "/", "kp"), 0, &st), 50);
	CHECK_INT(st, 429);
	/* ...and the key's token the address limit refused was given back */
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(6), "/", "kp"), 0, NULL), 50);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(7), "/", "kp"), 0, &st), 0);
	CHECK_INT(st, 429);
	/* missing, empty or unknown key -> 401 */
	CHECK_INT(rl_admit(&rl, 0, NULL, &(struct rl_request){ .ip = ipn(8), .ip_len = 4 }, 0,
			   &res), 401);
	CHECK_INT(res.headers, 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(8), "/", "nope"), 0, &st), 0);
	CHECK_INT(st, 401);
	/* upgrade at run time: the 5 tokens kf owes are 5 enterprise tokens now
	 * (300 ms of its 600 ms tolerance), not a minute of free-tier debt */
	test_now = 12 * S;
	CHECK_INT(rl_set_tier(&rl, "kf", "enterprise"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(9), "/", "kf"), 12 * S, NULL), 5);
	CHECK_INT(rl_set_tier(&rl, "kf", "gold"), -ENOENT);
	/* and a downgrade leaves it empty, not with a fresh burst */
	CHECK_INT(rl_set_tier(&rl, "kf", "free"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(10), "/", "kf"), 12 * S, NULL), 0);
	CHECK_INT(rl_set_tier(&rl, "new-key", "basic"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(11), "/", "new-key"), 0, NULL), 20);
	rl_destroy(&rl);

	/* require_key off: no key or an unknown one gets the address limit alone */
	if (rl_from(&rl, UP "[ratelimit]\nrate = 3/m\nburst = 0\nkey = header:X-API-Key\n"
		    "[tier t]\nrate = 10/m\n[api_keys]\nk = t\n", 1))
		return;
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", NULL), 0, NULL), 3);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "junk-key"), 0, NULL), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "junk-key"), 0, NULL), 3);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ipn(12), "/", "k"), 0, NULL), 3);  /* address binds */
	rl_destroy(&rl);
}

static void test_request_from_http(void)
{
	struct rl rl;
	struct http_req req;
	struct rl_request rq;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

	if (rl_from(&rl, UP "[ratelimit]\nkey = header:Authorization\n", 1))
		return;
	memset(&req, 0, sizeof req);
	req.target = "/p?q";
	req.target_len = 4;
	req.nhdrs = 2;
	req.hdrs[0] = (struct http_hdr){ .name = "Host", .name_len = 4, .value = "h", .value_len = 1 };
	req.hdrs[1] = (struct http_hdr){ .name = "authorization", .name_len = 13,
					 .value = "Bearer  tok123", .value_len = 14 };
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	rl_request_from_http(&rq, &rl, NULL, &req, (struct sockaddr *)&sin);
	CHECK_INT(rq.ip_len, 4);
	CHECK(!memcmp(rq.ip, &sin.sin_addr, 4));
	CHECK_MEM(rq.path, rq.path_len, "/p?q");
	CHECK_MEM(rq.key, rq.key_len, "tok123");
	req.nhdrs = 1;
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	rl_request_from_http(&rq, &rl, NULL, &req, (struct sockaddr *)&sin6);
	CHECK_INT(rq.ip_len, 16);
	CHECK(rq.key == NULL);
	rl_destroy(&rl);
}

static void test_clients(void)
{
	struct rl rl;
	struct rl_client c = { .id = "c1", .capacity = 3, .rate_per_sec = 1 }, got, list[8];
	struct rl_usage u;
	uint8_t ip9[4] = { 10, 0, 0, 9 };
	int st;

	if (rl_from(&rl, tiers_ini, 1))
		return;
	CHECK_INT(rl_client_create(&rl, &c), 0);
	CHECK_INT(rl_client_create(&rl, &c), -EEXIST);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "c1"), 0, &st), 3);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "c1"), S, NULL), 1);
	CHECK_INT(rl_client_get(&rl, "c1", &got), 0);
	CHECK_INT(got.capacity, 3);
	CHECK_INT(got.is_client, 1);
	CHECK_INT(rl_usage(&rl, "c1", S, &u), 0);
	CHECK_INT(u.v.remaining, 0);
	CHECK_INT(u.v.limit, 3);
	CHECK_INT(rl_usage(&rl, "c1", 3 * S, &u), 0);
	CHECK_INT(u.v.remaining, 2);
	/* capacity only: the default refill (50/m) with a burst of 7 */
	c.capacity = 7;
	c.rate_per_sec = 0;
	CHECK_INT(rl_client_update(&rl, &c), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "c1"), 100 * S, NULL), 7);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "c1"), 101200000, NULL), 1);
	/* rate only, fractional */
	c.capacity = 0;
	c.rate_per_sec = 0.5;
	CHECK_INT(rl_client_put(&rl, &c), 0);
	CHECK_INT(rl_client_get(&rl, "c1", &got), 0);
	CHECK(got.rate_per_sec == 0.5);
	CHECK_INT(rl_client_delete(&rl, "c1"), 0);
	CHECK_INT(rl_client_delete(&rl, "c1"), -ENOENT);
	CHECK_INT(rl_client_get(&rl, "c1", &got), -ENOENT);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "c1"), 500 * S, &st), 0);
	CHECK_INT(st, 401);
	CHECK_INT(rl_client_update(&rl, &c), -ENOENT);
	memset(&c, 0, sizeof c);
	memcpy(c.id, "c2", 3);
	memcpy(c.tier, "platinum", 9);
	CHECK_INT(rl_client_create(&rl, &c), -ENOENT);
	memcpy(c.tier, "basic", 6);
	CHECK_INT(rl_client_create(&rl, &c), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip9, "/", "c2"), 0, NULL), 20);
	c.id[0] = 0;
	CHECK_INT(rl_client_create(&rl, &c), -EINVAL);
	memcpy(c.id, "has space", 10);
	CHECK_INT(rl_client_create(&rl, &c), -EINVAL);
	/* an address as client: its address limit (50/m by default) changes */
	memset(&c, 0, sizeof c);
	memcpy(c.id, "10.0.0.8", 9);
	c.capacity = 60;
	CHECK_INT(rl_client_create(&rl, &c), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip((uint8_t[4]){ 10, 0, 0, 8 }, "/", "kp"), 0, NULL), 60);
	/* the list: 4 config keys + c2 + the address */
	CHECK_INT(rl_client_list(&rl, 0, list, 8), 6);
	CHECK_INT(rl_client_list(&rl, 5, list, 8), 6);
	CHECK_STR(list[0].id, "10.0.0.8");
	CHECK_INT(rl_usage(&rl, "nobody", 0, &u), 0);
	CHECK_INT(u.c.is_client, 0);
	CHECK_INT(u.v.remaining, 50);
	rl_destroy(&rl);
}

static void test_block(void)
{
	struct rl rl;
	struct rl_client c;
	int st;

	if (rl_from(&rl, tiers_ini, 1))
		return;
	CHECK_INT(rl_block(&rl, "10.0.0.1"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "kb"), 0, &st), 0);
	CHECK_INT(st, 403);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "kb"), 0, NULL), 20);
	CHECK_INT(rl_unblock(&rl, "10.0.0.1"), 0);
	CHECK_INT(rl_unblock(&rl, "10.0.0.1"), -ENOENT);
	CHECK_INT(rl_unblock(&rl, "10.9.9.9"), -ENOENT);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip1, "/", "kf"), 0, NULL), 5);
	/* a blocked API key: 403 from any address, even a key not on file */
	CHECK_INT(rl_block(&rl, "kp"), 0);
	CHECK_INT(rl_block(&rl, "stolen"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "kp"), S, &st), 0);
	CHECK_INT(st, 403);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip2, "/", "stolen"), S, &st), 0);
	CHECK_INT(st, 403);
	/* deleting the client does not unblock; unblocking keeps the client */
	CHECK_INT(rl_client_get(&rl, "kp", &c), 0);
	CHECK_INT(c.blocked, 1);
	CHECK_INT(c.is_client, 1);
	CHECK_INT(rl_unblock(&rl, "kp"), 0);
	CHECK_INT(admit_n(&rl, NULL, req_ip((uint8_t[4]){ 1, 1, 1, 1 }, "/", "kp"), S, NULL), 50);
	CHECK_INT(rl_client_get(&rl, "stolen", &c), 0);
	CHECK_INT(c.is_client, 0);
	CHECK_INT(rl_unblock(&rl, "stolen"), 0);
	CHECK_INT(rl_client_get(&rl, "stolen", &c), -ENOENT);
	rl_destroy(&rl);
}

/* ban_after = 3: the third consecutive rejection bans for 300 s, the next
 * ban 600 s, then 1200 s; an admitted request resets the run. */
static void test_bans(void)
{
	struct rl rl;
	struct rl_result res;
	struct rl_request rq = req_ip(ip1, "/", NULL);
	struct rl_usage u;
	struct rl_stats st;
	uint64_t t0, len;
	int i, round;

	if (rl_from(&rl, UP "[ratelimit]\nrate = 1/s\nburst = 1\nban_after = 3\n", 1))
		return;
	/* not consecutive: rejected, rejected, admitted, rejected -> no ban */
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, 0, &res), 0);
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, 0, &res), 429);
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, 0, &res), 429);
	CHECK_INT(res.banned, 0);
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, S, &res), 0);
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, S, &res), 429);
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, S, &res), 429);
	CHECK_INT(res.banned, 0);
	CHECK_INT(rl_usage(&rl, "10.0.0.1", S, &u), 0);
	CHECK_INT(u.rejections, 2);

	t0 = 10 * S;
	for (round = 0, len = 300; round < 3; round++, len *= 2) {
		CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0, &res), 0);
		for (i = 0; i < 2; i++)
			CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0, &res), 429);
		CHECK_INT(res.banned, 0);
		CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0, &res), 429);
		CHECK_INT(res.banned, 1);
		CHECK_INT(res.v.retry_after_s, len);
		/* banned: even a refilled bucket does not help */
		CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0 + 5 * S, &res), 429);
		CHECK_INT(res.banned, 1);
		CHECK_INT(res.v.retry_after_s, len - 5);
		CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0 + (len - 1) * S, &res), 429);
		CHECK_INT(res.v.retry_after_s, 1);
		CHECK_INT(rl_usage(&rl, "10.0.0.1", t0 + S, &u), 0);
		CHECK_INT(u.ban_level, round + 1);
		CHECK_INT(u.ban_left_s, len - 1);
		/* other addresses are not affected */
		CHECK_INT(rl_admit(&rl, 0, NULL, &(struct rl_request){ .ip = ip2, .ip_len = 4 },
				   t0 + S, &res), 0);
		t0 += len * S;
		CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0, &res), 0);
		t0 += 10 * S;
	}
	rl_stats(&rl, &st);
	CHECK_INT(st.bans, 3);
	CHECK(st.banned >= 6);
	/* a long clean period forgets the level: the next ban is 300 s again */
	t0 += 10000 * S;
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, t0, &res), 0);
	for (i = 0; i < 3; i++)
		rl_admit(&rl, 0, NULL, &rq, t0, &res);
	CHECK_INT(res.banned, 1);
	CHECK_INT(res.v.retry_after_s, 300);
	rl_destroy(&rl);
}

static void test_qsbr(void)
{
	struct rl rl;

	if (rl_from(&rl, tiers_ini, 2))
		return;
	CHECK_INT(rl_block(&rl, "x1"), 0);
	CHECK(rl.retired != NULL);
	rl_quiescent(&rl, 0);
	rl_reclaim(&rl);
	CHECK(rl.retired != NULL);      /* worker 1 may still hold the old one */
	rl_quiescent(&rl, 1);
	rl_reclaim(&rl);
	CHECK(rl.retired == NULL);
	CHECK_INT(rl_block(&rl, "x2"), 0);
	CHECK_INT(rl_block(&rl, "x3"), 0);
	rl_offline(&rl, 1);
	rl_quiescent(&rl, 0);
	rl_reclaim(&rl);
	CHECK(rl.retired == NULL);
	rl_destroy(&rl);
}

/* The line protocol shares buckets, blocks and clients with HTTP. */
static void test_line_with_limiter(void)
{
	static const char lines[] = "10.0.0.1\n10.0.0.1\r\n10.0.0.1\nuser-7\nuser-7\n";
	struct rl rl;
	struct rl_line ls;
	struct rl_line_ctx cx = { &rl, 0, 0 };
	struct rl_request rq = req_ip(ip1, "/", NULL);
	struct rl_result res;
	char out[256];
	size_t olen = 0;

	if (rl_from(&rl, UP "[ratelimit]\nrate = 1/s\nburst = 2\nlisten = 127.0.0.1:7001\n", 1))
		return;
	memset(&ls, 0, sizeof ls);
	CHECK_INT(rl_line_feed(&ls, lines, sizeof lines - 1, out, sizeof out, &olen,
			       rl_line_check, &cx), sizeof lines - 1);
	CHECK_MEM(out, olen, "OK\nOK\nERROR\nOK\nOK\n");
	CHECK_INT(rl_admit(&rl, 0, NULL, &rq, 0, &res), 429);   /* same bucket as HTTP */
	CHECK_INT(rl_block(&rl, "user-7"), 0);
	olen = 0;
	cx.now_us = 10 * S;
	rl_line_feed(&ls, "user-7\n10.0.0.1\n", 16, out, sizeof out, &olen, rl_line_check, &cx);
	CHECK_MEM(out, olen, "ERROR\nOK\n");
	rl_destroy(&rl);
}

/* ---- concurrency ---- */

struct hammer {
	struct rl_table *t;
	const struct rl_policy *p;
	unsigned worker;
	uint64_t key, nkeys, end_us, admitted, calls;
	pthread_barrier_t *go;
};

static void *hammer_one_key(void *arg)
{
	struct hammer *h = arg;
	struct rl_verdict v;
	uint64_t now;

	pthread_barrier_wait(h->go);
	do {
		now = rl_now_us();
		h->admitted += (uint64_t)rl_check(h->t, h->worker, h->key, h->p, now, &v);
		h->calls++;
	} while (now < h->end_us);
	return NULL;
}

/* Two workers, one key, the real clock: admitted never exceeds
 * burst + rate x elapsed (no double spend), and is close to it. */
static void test_two_workers_one_key(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1000, S, 100);         /* T = 1 ms */
	struct hammer h[2];
	pthread_barrier_t go;
	pthread_t th[2];
	uint64_t start, elapsed, admitted, bound, calls;
	int i;

	CHECK_INT(rl_table_init(&t, 2, 1 << 16, RL_FULL_ALLOW, rl_now_us()), 0);
	pthread_barrier_init(&go, NULL, 3);
	for (i = 0; i < 2; i++) {
		h[i] = (struct hammer){ .t = &t, .p = &p, .worker = (unsigned)i,
					.key = 0x123456789abcdefull, .go = &go };
		pthread_create(&th[i], NULL, hammer_one_key, &h[i]);
	}
	start = rl_now_us();
	h[0].end_us = h[1].end_us = start + S;
	pthread_barrier_wait(&go);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	elapsed = rl_now_us() - start;
	pthread_barrier_destroy(&go);
	admitted = h[0].admitted + h[1].admitted;
	calls = h[0].calls + h[1].calls;
	bound = 100 + elapsed / p.t_us + 1;
	printf("     two workers, one key: %llu admitted of %llu calls in %llu us "
	       "(bound %llu; %llu + %llu)\n", (unsigned long long)admitted,
	       (unsigned long long)calls, (unsigned long long)elapsed, (unsigned long long)bound,
	       (unsigned long long)h[0].admitted, (unsigned long long)h[1].admitted);
	CHECK(admitted <= bound);
	/* at least the burst: a lower bound tied to the clock would fail on a
	 * busy machine, where descheduled threads let refill time go unused */
	CHECK(admitted >= 100);
	CHECK(h[0].admitted > 0 && h[1].admitted > 0);
	rl_table_free(&t);
}

static void *hammer_new_keys(void *arg)
{
	struct hammer *h = arg;
	struct rl_verdict v;
	uint64_t k;

	pthread_barrier_wait(h->go);
	for (k = 0; k < h->nkeys; k++) {
		/* a tag of its own per key: no two keys can share a slot */
		uint64_t key = (rl_hash(&k, sizeof k, 7) & ~(0xffffull << 48)) | k << 48;

		h->admitted += (uint64_t)rl_check(h->t, h->worker, key, h->p, rl_now_us(), &v);
	}
	return NULL;
}

/* Both workers see every key for the first time at once: each key gets its
 * one request admitted exactly once (the insert races never double a bucket). */
static void test_two_workers_insert_race(void)
{
	enum { NKEYS = 65536 };
	struct rl_table t;
	struct rl_policy p = pol(1, 3600 * S, 1);
	struct rl_table_stats st;
	struct hammer h[2];
	pthread_barrier_t go;
	pthread_t th[2];
	int i;

	CHECK_INT(rl_table_init(&t, 2, 2 * NKEYS, RL_FULL_ALLOW, rl_now_us()), 0);
	pthread_barrier_init(&go, NULL, 2);
	for (i = 0; i < 2; i++) {
		h[i] = (struct hammer){ .t = &t, .p = &p, .worker = (unsigned)i, .nkeys = NKEYS,
					.go = &go };
		pthread_create(&th[i], NULL, hammer_new_keys, &h[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	rl_table_stats(&t, &st);
	CHECK_INT(st.table_full, 0);
	CHECK_INT(h[0].admitted + h[1].admitted, NKEYS);
	CHECK_INT(st.allowed, h[0].admitted + h[1].admitted);
	rl_table_free(&t);
}

/* ---- the insert race, exactly ----
 *
 * Every round a few fresh keys (no refill within a round: the clock is
 * injected and stands still) are hit by STRESS_THREADS threads released
 * together by a spin barrier, each thread starting on a different key. All
 * keys share one bucket, and between its requests each thread inserts and
 * refunds a churn key of its own, so that free slots come and go under the
 * other inserters (two of them can then pick different slots for one key).
 * The next round moves the clock past every TAT: the old keys' slots are
 * free again. Each key must be admitted exactly burst times, never more. */
enum {
	STRESS_THREADS = 3,
	STRESS_KEYS = 2,        /* fresh keys per round */
	STRESS_TRIES = 4,       /* requests per thread, key and round */
};

#define STRESS_STEP     (100 * S)       /* clock step per round: every TAT expires */

struct stress {
	struct rl_table *t;
	const struct rl_policy *p;
	unsigned id, rounds;
	_Atomic unsigned *arrived;
	uint32_t *admitted;     /* owned: [round * STRESS_KEYS + key], this thread's */
};

static uint64_t stress_key(unsigned round, unsigned k)
{
	/* bucket 0 of a one-bucket table; tags never 0 */
	return hkey((round * STRESS_KEYS + k) % 60000 + 1);
}

static void spin_until(_Atomic unsigned *c, unsigned target)
{
	unsigned n = 0;

	while (atomic_load(c) < target)
		if (++n % 64 == 0)
			sched_yield();  /* more threads than cores: let the others arrive */
}

static void *stress_hammer(void *arg)
{
	struct stress *h = arg;
	uint64_t churn = hkey(60001 + h->id), now;
	struct rl_verdict v;
	unsigned r, i, k;

	for (r = 0; r < h->rounds; r++) {
		now = (uint64_t)r * STRESS_STEP;
		atomic_fetch_add(h->arrived, 1);
		spin_until(h->arrived, (r + 1) * STRESS_THREADS);
		for (i = 0; i < STRESS_TRIES * STRESS_KEYS; i++) {
			k = (h->id + i) % STRESS_KEYS;
			h->admitted[r * STRESS_KEYS + k] +=
				(uint32_t)rl_check(h->t, h->id, stress_key(r, k), h->p, now, &v);
			if (rl_check(h->t, h->id, churn, h->p, now, &v))
				rl_refund(h->t, churn, h->p, now);
		}
	}
	return NULL;
}

/* One run: <rounds> rounds at <burst>; returns the keys not admitted
 * exactly <burst> times. */
static unsigned stress_run(uint32_t burst, unsigned rounds)
{
	struct rl_table t;
	struct rl_policy p = pol(1, S, burst);
	struct rl_table_stats st;
	struct stress h[STRESS_THREADS];
	pthread_t th[STRESS_THREADS];
	_Atomic unsigned arrived = 0;
	unsigned r, k, i, n, bad = 0;
	uint64_t total = 0;

	CHECK_INT(rl_table_init(&t, 1, RL_SLOTS, RL_FULL_ALLOW, 0), 0);
	CHECK_INT(t.nbuckets, 1);
	for (i = 0; i < STRESS_THREADS; i++) {
		h[i] = (struct stress){ .t = &t, .p = &p, .id = i, .rounds = rounds,
					.arrived = &arrived };
		h[i].admitted = calloc((size_t)rounds * STRESS_KEYS, sizeof *h[i].admitted);
		pthread_create(&th[i], NULL, stress_hammer, &h[i]);
	}
	for (i = 0; i < STRESS_THREADS; i++)
		pthread_join(th[i], NULL);
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < STRESS_KEYS; k++) {
			for (n = 0, i = 0; i < STRESS_THREADS; i++)
				n += h[i].admitted[r * STRESS_KEYS + k];
			total += n;
			if (n != burst && bad++ < 5)
				fprintf(stderr, "  burst %u, round %u, key %u: %u admitted\n",
					burst, r, k, n);
		}
	}
	rl_table_stats(&t, &st);
	printf("     %u threads, %u rounds of %u fresh keys, burst %u: %llu admitted, "
	       "%u keys off\n", STRESS_THREADS, rounds, STRESS_KEYS, burst,
	       (unsigned long long)total, bad);
	CHECK_INT(total, (uint64_t)rounds * STRESS_KEYS * burst);
	CHECK_INT(st.table_full, 0);
	for (i = 0; i < STRESS_THREADS; i++)
		free(h[i].admitted);
	rl_table_free(&t);
	return bad;
}

/* RF_STRESS_ROUNDS overrides the rounds per burst (longer soak runs). */
static void test_insert_race_exact(void)
{
	const char *env = getenv("RF_STRESS_ROUNDS");
	unsigned rounds = env ? (unsigned)atoi(env) : 20000;

	CHECK_INT(stress_run(1, rounds), 0);
	CHECK_INT(stress_run(3, rounds), 0);
}

struct admin_race {
	struct rl *rl;
	int stop;
	uint64_t ok;
};

static void *admin_churn(void *arg)
{
	struct admin_race *a = arg;
	char id[32];
	int i;

	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "key-%d", i % 7);
		rl_set_tier(a->rl, id, i % 2 ? "free" : "premium");
		rl_block(a->rl, "10.9.9.9");
		rl_unblock(a->rl, "10.9.9.9");
	}
	__atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Readers admit while the admin thread swaps the directory (TSan/ASan
 * check the QSBR hand-over: nothing is freed under a reader). */
static void test_directory_swap_race(void)
{
	struct rl rl;
	struct admin_race a;
	struct rl_result res;
	pthread_t th;
	char key[8];
	uint64_t now = 0;
	int n = 0;

	if (rl_from(&rl, tiers_ini, 1))
		return;
	a = (struct admin_race){ .rl = &rl };
	pthread_create(&th, NULL, admin_churn, &a);
	while (!__atomic_load_n(&a.stop, __ATOMIC_ACQUIRE)) {
		struct rl_request rq = req_ip(ip1, "/", key);

		snprintf(key, sizeof key, "key-%d", n++ % 7);
		rq.key_len = (uint32_t)strlen(key);
		rl_admit(&rl, 0, NULL, &rq, now += 1000, &res);
		rl_quiescent(&rl, 0);
	}
	pthread_join(th, NULL);
	rl_quiescent(&rl, 0);
	rl_reclaim(&rl);
	CHECK(rl.retired == NULL);
	rl_destroy(&rl);
}

static void test_memory_per_key(void)
{
	struct rl_table t;
	struct rl_policy p = pol(1, 3600 * S, 1);
	struct rl_table_stats st;
	struct rl_verdict v;
	unsigned shards[] = { 1, 2, 4, 8, 64 }, load[] = { 50, 75, 90, 100 };
	uint64_t k = 0, n = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(shards); i++) {
		CHECK_INT(rl_table_init(&t, shards[i], 1000000, RL_FULL_ALLOW, 0), 0);
		printf("     max_keys 1000000, %2u shards: %zu bytes, %.3f bytes per key\n",
		       shards[i], t.bytes, rl_table_bytes_per_key(&t));
		CHECK(rl_table_bytes_per_key(&t) <= 8.01);
		rl_table_free(&t);
	}
	/* how full the table runs before new keys find no slot */
	CHECK_INT(rl_table_init(&t, 4, 1000000, RL_FULL_ALLOW, 0), 0);
	for (i = 0; i < ARRAY_SIZE(load); i++) {
		for (; n < load[i] * 10000ull; n++, k++)
			rl_check(&t, (unsigned)(k & 3), rl_hash(&k, sizeof k, 3), &p, 0, &v);
		rl_table_stats(&t, &st);
		printf("     1000000 slots, %u%% of max_keys live: %llu new keys found no slot\n",
		       load[i], (unsigned long long)st.table_full);
		if (load[i] == 50)
			CHECK_INT(st.table_full, 0);
	}
	rl_table_free(&t);
}

/* ---- persistence hooks: on_change, rl_restore, rl_sweep ---- */

static uint64_t fake_now_us;
static char hook_log[512];
static int hook_rc;

static uint64_t fake_clock(void)
{
	return fake_now_us;
}

static int on_change(void *arg, const struct rl_client *c, int64_t used)
{
	size_t n = strlen(hook_log);

	snprintf(hook_log + n, sizeof hook_log - n, "%s:%s%s%s@%lld;", c->id,
		 c->is_client ? "client" : "", c->blocked ? "+blocked" : "", c->tier,
		 (long long)used);
	return hook_rc;
}

static void on_sweep(void *arg, const struct rl_client *c, int64_t used)
{
	on_change(arg, c, used);
}

static void test_change_hook_restore_and_sweep(void)
{
	struct rl rl;
	struct rl_client c = { .id = "c1" }, got;
	uint8_t ip7[4] = { 10, 7, 7, 7 };

	if (rl_from(&rl, tiers_ini, 1))
		return;
	rl.clock = fake_clock;
	rl.on_change = on_change;
	fake_now_us = 1000 * S;
	hook_log[0] = 0;
	/* every admin change is seen, before it is published */
	CHECK_INT(rl_client_create(&rl, &c), 0);
	CHECK_INT(rl_set_tier(&rl, "c2", "basic"), 0);
	CHECK_INT(rl_block(&rl, "c1"), 0);
	CHECK_INT(rl_client_delete(&rl, "c1"), 0);
	CHECK_INT(rl_unblock(&rl, "c1"), 0);
	CHECK_STR(hook_log, "c1:client@1000;c2:clientbasic@1000;c1:client+blocked@1000;"
		  "c1:+blocked@1000;c1:@1000;");
	/* a refused change is not made */
	hook_rc = -EIO;
	memcpy(c.id, "c3", 3);
	CHECK_INT(rl_client_create(&rl, &c), -EIO);
	CHECK_INT(rl_client_get(&rl, "c3", &got), -ENOENT);
	CHECK_INT(rl_block(&rl, "c2"), -EIO);
	CHECK_INT(rl_client_get(&rl, "c2", &got), 0);
	CHECK_INT(got.blocked, 0);
	hook_rc = 0;
	/* a restore does not call the hook */
	hook_log[0] = 0;
	memset(&c, 0, sizeof c);
	memcpy(c.id, "c4", 3);
	c.is_client = 1;
	memcpy(c.tier, "premium", 8);
	CHECK_INT(rl_restore(&rl, &c, 900), 0);
	memcpy(c.tier, "nope", 5);
	CHECK_INT(rl_restore(&rl, &c, 900), -ENOENT);
	memset(&c, 0, sizeof c);
	memcpy(c.id, "10.9.9.9", 9);
	c.blocked = 1;
	CHECK_INT(rl_restore(&rl, &c, 900), 0);
	memcpy(c.id, "kf", 3);          /* a config key, deleted */
	c.blocked = 0;
	CHECK_INT(rl_restore(&rl, &c, 900), 0);
	CHECK_STR(hook_log, "");
	CHECK_INT(rl_client_get(&rl, "c4", &got), 0);
	CHECK_STR(got.tier, "premium");
	CHECK_INT(rl_client_get(&rl, "10.9.9.9", &got), 0);
	CHECK(got.blocked && !got.is_client);
	CHECK_INT(rl_client_get(&rl, "kf", &got), -ENOENT);
	CHECK_INT(rl_client_get(&rl, "kb", &got), 0);
	CHECK_INT(got.from_config, 1);
	/* requests mark a client used only while tracking is on */
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip7, "/", "c2"), 1500 * S, NULL), 20);
	CHECK_INT(rl_sweep(&rl, 0, 0, on_sweep, NULL), 0);
	CHECK(strstr(hook_log, "c2:clientbasic@1000;") != NULL);
	atomic_store(&rl.track_use, 1);
	CHECK_INT(admit_n(&rl, NULL, req_ip(ip7, "/", "c2"), 1600 * S, NULL), 20);
	CHECK_INT(rl_block(&rl, "c4"), 0);
	/* at 1700 s, 200 s idle expire: c4 (used 900) but it stays blocked;
	 * c2 (used 1600) stays; config keys never go */
	fake_now_us = 1700 * S;
	hook_log[0] = 0;
	CHECK_INT(rl_sweep(&rl, 200, 1200, on_sweep, NULL), 1);
	CHECK_STR(hook_log, "c2:clientbasic@1600;c4:+blocked@900;");
	CHECK_INT(rl_client_get(&rl, "c4", &got), 0);
	CHECK(got.blocked && !got.is_client && !got.tier[0]);
	CHECK_INT(rl_client_get(&rl, "c2", &got), 0);
	CHECK_INT(got.is_client, 1);
	fake_now_us = 1801 * S;
	CHECK_INT(rl_sweep(&rl, 200, 1700, NULL, NULL), 1);
	CHECK_INT(rl_client_get(&rl, "c2", &got), -ENOENT);
	CHECK_INT(rl_client_get(&rl, "kb", &got), 0);
	rl_destroy(&rl);
}

int main(void)
{
	RUN(test_policy);
	RUN(test_burst_then_rate);
	RUN(test_rejections_free);
	RUN(test_verdict);
	RUN(test_slot_reuse_and_full);
	RUN(test_claims);
	RUN(test_clock_range);
	RUN(test_keys);
	RUN(test_hash_spread);
	RUN(test_format);
	RUN(test_line_protocol);
	RUN(test_config_keys);
	RUN(test_routes);
	RUN(test_route_require_key);
	RUN(test_tiers);
	RUN(test_request_from_http);
	RUN(test_clients);
	RUN(test_block);
	RUN(test_bans);
	RUN(test_qsbr);
	RUN(test_line_with_limiter);
	RUN(test_two_workers_one_key);
	RUN(test_two_workers_insert_race);
	RUN(test_insert_race_exact);
	RUN(test_directory_swap_race);
	RUN(test_memory_per_key);
	RUN(test_change_hook_restore_and_sweep);
	TEST_REPORT();
}

/* test_balance.c - every strategy's distribution within a stated tolerance,
 * that unavailable servers are never picked, probes go first, slow start
 * ramps the share, the retry budget, client hashing, and a two-thread
 * hammer (run it under TSan) whose counters must balance afterwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balance.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "test.h"
#include "upstream.h"

#define T0 1000000ull

static struct runtime rt;
static struct upstream *up;
static struct balance_state bs;

static int setup(const char *servers, const char *extra)
{
	char text[2048], err[256];
	struct rf_config *cfg = NULL;
	int rc;

	snprintf(text, sizeof text, "[upstream app]\nservers = %s\n%s", servers, extra ? extra : "");
	rc = config_parse("t.ini", text, strlen(text), &cfg, err, sizeof err);
	if (rc) {
		fprintf(stderr, "  %s: config: %s\n", test_cur_name, err);
		test_cur_failed++;
		return rc;
	}
	rc = runtime_init(&rt, cfg);
	if (!rc)
		rc = balance_state_init(&bs, &rt.ups[0], 0);
	if (rc) {
		test_cur_failed++;
		return rc;
	}
	up = &rt.ups[0];
	return 0;
}

static void teardown(void)
{
	balance_state_free(&bs);
	runtime_free(&rt);
}

#define S2 "127.0.0.1:9001 127.0.0.1:9002"
#define S3 "127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003"
#define S4 "127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003 127.0.0.1:9004"

/* Index of the server picked for <hash> at <now>, or -1 for NULL. */
static int pick(uint64_t now, uint64_t hash)
{
	struct pick_ctx ctx = { .now_ms = now, .client_hash = hash };
	struct server *s = balance_choose(up, &bs, &ctx);

	return s ? (int)s->index : -1;
}

/* Same, for use as an index: a NULL pick fails the test and counts as 0. */
static int pickx(uint64_t now, uint64_t hash)
{
	int k = pick(now, hash);

	if (k < 0) {
		fprintf(stderr, "  %s: unexpected NULL pick\n", test_cur_name);
		test_cur_failed++;
		return 0;
	}
	return k;
}

/* Count <n> picks per server into <cnt> (cnt[4] counts NULL). */
static void tally(int n, uint64_t now, uint32_t cnt[5])
{
	int i, k;

	memset(cnt, 0, 5 * sizeof(*cnt));
	for (i = 0; i < n; i++) {
		k = pick(now, (uint64_t)i * 0x9e3779b97f4a7c15ull);
		cnt[k < 0 ? 4 : k]++;
	}
}

static int within(double got, double want, double tol)
{
	int ok = got >= want * (1 - tol) && got <= want * (1 + tol);

	if (!ok)
		fprintf(stderr, "  %s: got %.0f, want %.0f +- %.0f%%\n", test_cur_name, got, want,
			tol * 100);
	return ok;
}

static void test_round_robin_exact(void)
{
	int i;

	if (setup(S3, NULL))
		return;
	for (i = 0; i < 300; i++)
		CHECK_INT(pick(T0, 0), i % 3);
	teardown();

	/* with different weights round_robin weighs them, as HAProxy's and
	 * nginx's do: 5:1 over each cycle, the light server interleaved */
	if (setup("127.0.0.1:9001 weight=5 127.0.0.1:9002", NULL))
		return;
	{
		int n0 = 0, run = 0, maxrun = 0;

		for (i = 0; i < 600; i++) {
			int p = pick(T0, 0);

			n0 += p == 0;
			run = p == 0 ? run + 1 : 0;
			maxrun = run > maxrun ? run : maxrun;
		}
		CHECK_INT(n0, 500);
		CHECK(maxrun <= 5);
	}
	teardown();
}

static void test_weighted_smooth(void)
{
	static const int want[] = { 0, 0, 1, 0 };
	uint32_t cnt[5];
	int i, k, run = 0, maxrun = 0, prev = -1, c[3] = { 0, 0, 0 };
	double dev, maxdev = 0;

	if (setup("127.0.0.1:9001 weight=3 127.0.0.1:9002", "balance = weighted\n"))
		return;
	for (i = 0; i < 400; i++) {
		k = pick(T0, 0);
		CHECK_INT(k, want[i % 4]);         /* a a b a: interleaved, not a a a b */
		run = k == prev ? run + 1 : 1;
		prev = k;
		maxrun = RF_MAX(maxrun, k == 0 ? run : 0);
	}
	CHECK(maxrun <= 3);
	tally(4000, T0, cnt);
	CHECK_INT(cnt[0], 3000);                   /* exact over whole cycles */
	CHECK_INT(cnt[1], 1000);
	teardown();

	/* 5:1:1 - nginx's example: a a b a c a a. Every prefix stays within one
	 * pick of its exact share, and the heavy server runs at most
	 * ceil(5 / 2) + 1 in a row (across the cycle boundary). */
	if (setup("127.0.0.1:9001 weight=5 127.0.0.1:9002 127.0.0.1:9003", "balance = weighted\n"))
		return;
	run = maxrun = 0;
	prev = -1;
	for (i = 1; i <= 700; i++) {
		k = pickx(T0, 0);
		c[k]++;
		run = k == prev ? run + 1 : 1;
		prev = k;
		maxrun = RF_MAX(maxrun, k == 0 ? run : 0);
		dev = c[0] - i * 5.0 / 7;
		maxdev = RF_MAX(maxdev, dev < 0 ? -dev : dev);
	}
	CHECK_INT(c[0], 500);
	CHECK_INT(c[1], 100);
	CHECK_INT(c[2], 100);
	CHECK(maxrun <= 4);
	CHECK(maxdev < 1.0);
	teardown();
}

static void test_least_conn(void)
{
	struct server *s;
	uint32_t cnt[5];
	int i;

	if (setup(S3, "balance = least_conn\n"))
		return;
	for (i = 0; i < 3; i++)
		balance_on_start(&up->servers[0]);
	balance_on_start(&up->servers[1]);
	balance_on_start(&up->servers[2]);
	balance_on_start(&up->servers[2]);
	for (i = 0; i < 10; i++)
		CHECK_INT(pick(T0, 0), 1);
	/* requests that stay active spread evenly */
	for (i = 0; i < 300; i++) {
		s = &up->servers[pickx(T0, 0)];
		balance_on_start(s);
	}
	CHECK(within(atomic_load(&up->servers[0].active), 102, 0.02));
	CHECK(within(atomic_load(&up->servers[1].active), 102, 0.02));
	CHECK(within(atomic_load(&up->servers[2].active), 102, 0.02));
	teardown();

	/* weights 3:1 under load: 75 % / 25 % of the active requests (+-1) */
	if (setup("127.0.0.1:9001 weight=3 127.0.0.1:9002", "balance = least_conn\n"))
		return;
	for (i = 0; i < 400; i++)
		balance_on_start(&up->servers[pickx(T0, 0)]);
	CHECK(atomic_load(&up->servers[0].active) >= 299 && atomic_load(&up->servers[0].active) <= 301);
	for (i = 0; i < 2; i++)
		while (atomic_load(&up->servers[i].active))
			balance_on_done(&up->servers[i], 1000, BAL_OK, T0);
	/* at idle, ties rotate instead of always hitting the first server */
	teardown();
	if (setup(S2, "balance = least_conn\n"))
		return;
	tally(1000, T0, cnt);
	CHECK_INT(cnt[0], 500);
	CHECK_INT(cnt[1], 500);
	/* latency breaks ties when it clearly differs */
	balance_on_start(&up->servers[0]);
	balance_on_done(&up->servers[0], 9000, BAL_OK, T0);
	balance_on_start(&up->servers[1]);
	balance_on_done(&up->servers[1], 3000, BAL_OK, T0);
	tally(100, T0, cnt);
	CHECK_INT(cnt[1], 100);
	teardown();
}

static void test_least_time(void)
{
	static const uint32_t lat[] = { 10000, 2000, 5000 };
	uint32_t cnt[5];
	int i;

	if (setup(S3, "balance = least_time\n"))
		return;
	for (i = 0; i < 3; i++) {
		balance_on_start(&up->servers[i]);
		balance_on_done(&up->servers[i], lat[i], BAL_OK, T0);
		CHECK_INT(balance_ewma_us(&up->servers[i], T0), lat[i]);
	}
	tally(100, T0 + 1, cnt);
	CHECK_INT(cnt[1], 100);
	/* the average moves by 1/8 of each sample's difference */
	balance_on_start(&up->servers[1]);
	balance_on_done(&up->servers[1], 10000, BAL_OK, T0);
	CHECK_INT(balance_ewma_us(&up->servers[1], T0), 3000);
	/* a long-unmeasured server counts half per 10 s, so it is tried again */
	CHECK_INT(balance_ewma_us(&up->servers[0], T0 + 10000), 5000);
	CHECK_INT(balance_ewma_us(&up->servers[0], T0 + 25000), 2500);
	/* with load, the fast server stops winning: 3000 * 3 > 5000 * 1 */
	balance_on_start(&up->servers[1]);
	balance_on_start(&up->servers[1]);
	CHECK_INT(pick(T0 + 1, 0), 2);
	teardown();
}

/* A server without a response-time average does not take every request
 * until its first answer: it is assumed as fast as the fastest and gets
 * one request at a time. Without averages anywhere, load decides. */
static void test_least_time_unmeasured(void)
{
	static const char *const strategies[] = { "least_time", "adaptive" };
	uint32_t got[2];
	size_t k;
	int i, j;

	for (k = 0; k < ARRAY_SIZE(strategies); k++) {
		char extra[64];

		snprintf(extra, sizeof extra, "balance = %s\n", strategies[k]);
		if (setup(S2, extra))
			return;
		balance_on_start(&up->servers[0]);
		balance_on_done(&up->servers[0], 10000, BAL_OK, T0);
		/* server 1 never answers; server 0 answers at once */
		got[0] = got[1] = 0;
		for (i = 0; i < 50; i++) {
			j = pickx(T0 + 1, 0);
			got[j]++;
			balance_on_start(&up->servers[j]);
			if (j == 0)
				balance_on_done(&up->servers[0], 10000, BAL_OK, T0 + 1);
		}
		CHECK_INT(got[1], 1);
		CHECK_INT(got[0], 49);
		/* the probing server is still a choice when it is the only one */
		health_set_drain(&up->servers[0], 1, T0 + 1);
		CHECK_INT(pick(T0 + 1, 0), 1);
		health_set_drain(&up->servers[0], 0, T0 + 1);
		/* its answer, slow, gives it an average: the fast one keeps winning */
		balance_on_done(&up->servers[1], 500000, BAL_OK, T0 + 2);
		for (i = 0; i < 10; i++)
			CHECK_INT(pick(T0 + 2, 0), 0);
		teardown();

		/* cold start: no averages, so the load spreads */
		if (setup(S2, extra))
			return;
		got[0] = got[1] = 0;
		for (i = 0; i < 20; i++) {
			j = pickx(T0, 0);
			got[j]++;
			balance_on_start(&up->servers[j]);
		}
		CHECK_INT(got[0], 10);
		CHECK_INT(got[1], 10);
		teardown();
	}
}

static void test_adaptive(void)
{
	uint32_t cnt[5];
	int i;

	if (setup(S2, "balance = adaptive\n"))
		return;
	for (i = 0; i < 20; i++) {               /* same latency, s0 fails half */
		balance_on_start(&up->servers[0]);
		balance_on_done(&up->servers[0], 5000, i & 1 ? BAL_OK : BAL_5XX, T0);
		balance_on_start(&up->servers[1]);
		balance_on_done(&up->servers[1], 5000, BAL_OK, T0);
	}
	CHECK_INT(balance_fail_permille(&up->servers[0], T0), 500);
	CHECK_INT(balance_fail_permille(&up->servers[1], T0), 0);
	tally(100, T0, cnt);
	CHECK_INT(cnt[1], 100);
	/* 5.5x the failure penalty loses to 6x the active requests */
	for (i = 0; i < 5; i++)
		balance_on_start(&up->servers[1]);
	CHECK_INT(pick(T0, 0), 0);
	/* the window forgets: two buckets later s0 is clean again */
	CHECK_INT(balance_fail_permille(&up->servers[0], T0 + 5000), 500);
	CHECK_INT(balance_fail_permille(&up->servers[0], T0 + 10000), 0);
	teardown();
}

static void test_random2(void)
{
	uint32_t cnt[5];
	int i;

	if (setup(S4, "balance = random2\n"))
		return;
	tally(100000, T0, cnt);
	for (i = 0; i < 4; i++)
		CHECK(within(cnt[i], 25000, 0.10));
	/* a loaded server loses every comparison, so it is never chosen */
	for (i = 0; i < 50; i++)
		balance_on_start(&up->servers[3]);
	tally(10000, T0, cnt);
	CHECK_INT(cnt[3], 0);
	for (i = 0; i < 3; i++)
		CHECK(within(cnt[i], 3333, 0.10));
	teardown();

	/* weights: the draw is by weight; idle ties go to the first draw */
	if (setup("127.0.0.1:9001 weight=3 127.0.0.1:9002", "balance = random2\n"))
		return;
	tally(100000, T0, cnt);
	CHECK(within(cnt[0], 75000, 0.03));
	teardown();
}

static void test_ip_hash(void)
{
	enum { N = 20000 };
	static int8_t before[N];
	uint32_t cnt[5] = { 0 };
	int i, moved = 0, wrong = 0, k;
	uint64_t h;

	if (setup(S4, "balance = ip_hash\n"))
		return;
	for (i = 0; i < N; i++) {
		h = balance_hash_bytes(&i, sizeof(i));
		before[i] = (int8_t)pickx(T0, h);
		cnt[before[i]]++;
		CHECK_INT(pick(T0, h), before[i]);    /* sticky */
	}
	for (i = 0; i < 4; i++)
		CHECK(within(cnt[i], N / 4, 0.10));
	/* server 2 leaves: only its clients move, spread over the others */
	health_set_drain(&up->servers[2], 1, T0);
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < N; i++) {
		k = pickx(T0, balance_hash_bytes(&i, sizeof(i)));
		moved += k != before[i];
		wrong += (k != before[i]) != (before[i] == 2);
		if (before[i] == 2)
			cnt[k]++;
	}
	CHECK_INT(wrong, 0);
	CHECK(within(moved, N / 4, 0.10));
	for (i = 0; i < 4; i++)
		if (i != 2)
			CHECK(within(cnt[i], moved / 3.0, 0.15));
	/* it returns: exactly its clients come back */
	health_set_drain(&up->servers[2], 0, T0);
	for (i = 0, moved = 0; i < N; i++)
		moved += pick(T0, balance_hash_bytes(&i, sizeof(i))) != before[i];
	CHECK_INT(moved, 0);
	/* a retry of the same client goes to its second choice */
	{
		struct pick_ctx ctx = { .now_ms = T0, .client_hash = 12345 };
		struct server *a = balance_choose(up, &bs, &ctx), *b;

		ctx.tried = 1ull << a->index;
		b = balance_choose(up, &bs, &ctx);
		CHECK(b && b != a);
	}
	teardown();

	/* weights: shares follow them (weighted rendezvous) */
	if (setup("127.0.0.1:9001 weight=3 127.0.0.1:9002", "balance = ip_hash\n"))
		return;
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < N; i++)
		cnt[pickx(T0, balance_hash_bytes(&i, sizeof(i)))]++;
	CHECK(within(cnt[0], N * 0.75, 0.03));
	teardown();
}

/* Down, ejected and draining servers, open circuits and held servers never
 * get traffic, whatever the strategy; with nobody left, NULL at once. */
static void test_unavailable_never_picked(void)
{
	uint32_t cnt[5], strat;
	struct timespec a, b;
	uint32_t i;

	if (setup(S4, "eject_after = 1\nmax_ejection_percent = 100\ncircuit_failures = 0\n"
		  "fall = 1\n"))
		return;
	health_check_result(&up->servers[1], 0, T0);            /* down */
	health_set_drain(&up->servers[2], 1, T0);               /* draining */
	health_passive(&up->servers[3], BAL_CONNECT_FAIL, T0);  /* ejected */
	for (strat = RF_BAL_ROUND_ROBIN; strat <= RF_BAL_RANDOM2; strat++) {
		CHECK_INT(balance_set_strategy(up, strat), 0);
		tally(1000, T0, cnt);
		if (cnt[0] != 1000)
			fprintf(stderr, "  strategy %s\n", config_balance_name(strat));
		CHECK_INT(cnt[0], 1000);
	}
	health_hold(&up->servers[0], T0 + 3000, T0);            /* Retry-After */
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (strat = RF_BAL_ROUND_ROBIN; strat <= RF_BAL_RANDOM2; strat++) {
		balance_set_strategy(up, strat);
		for (i = 0; i < 1000; i++)
			CHECK_INT(pick(T0 + 1, i), -1);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* 7000 empty picks: microseconds each, never a wait */
	CHECK((b.tv_sec - a.tv_sec) * 1000.0 + (b.tv_nsec - a.tv_nsec) / 1e6 < 500);
	teardown();

	/* an open circuit too */
	if (setup(S2, "circuit_failures = 1\neject_after = 0\n"))
		return;
	health_passive(&up->servers[1], BAL_TIMEOUT, T0);
	tally(100, T0, cnt);
	CHECK_INT(cnt[0], 100);
	teardown();
}

static void test_tried(void)
{
	struct pick_ctx ctx = { .now_ms = T0 };
	struct server *s;

	if (setup(S3, NULL))
		return;
	ctx.tried = 1 << 0 | 1 << 1;
	s = balance_choose(up, &bs, &ctx);
	CHECK(s == &up->servers[2]);
	ctx.tried = 7;
	CHECK(balance_choose(up, &bs, &ctx) == NULL);
	/* with two servers tried, the third is the only choice */
	ctx.tried = 3;
	CHECK(balance_choose(up, &bs, &ctx) == &up->servers[2]);
	teardown();
}

/* max_conns: a full server is never picked by any strategy but counted
 * in ctx.full (the caller queues), balance_on_start() refuses a slot past
 * the limit, and a freed slot makes the server eligible again. */
static void test_max_conns(void)
{
	static const char *const strategies[] = { "round_robin", "weighted", "least_conn",
		"ip_hash", "least_time", "adaptive", "random2" };
	struct pick_ctx ctx;
	struct server *s;
	size_t k;
	int i;

	for (k = 0; k < ARRAY_SIZE(strategies); k++) {
		char extra[128];

		snprintf(extra, sizeof extra, "balance = %s\nmax_conns = 2\n", strategies[k]);
		if (setup("127.0.0.1:9001 127.0.0.1:9002 max_conns=0", extra))
			return;
		CHECK_INT(up->servers[0].max_conns, 2);
		CHECK_INT(up->servers[1].max_conns, 0);
		CHECK(up->queueing);
		CHECK_INT(balance_on_start(&up->servers[0]), 0);
		CHECK_INT(balance_on_start(&up->servers[0]), 0);
		CHECK_INT(balance_on_start(&up->servers[0]), -EBUSY);
		CHECK_INT(up->servers[0].active, 2);
		for (i = 0; i < 50; i++) {
			ctx = (struct pick_ctx){ .now_ms = T0, .client_hash = (uint64_t)i * 7919 };
			s = balance_choose(up, &bs, &ctx);
			CHECK(s == &up->servers[1]);
			CHECK_INT(ctx.full, 1);
		}
		/* the unlimited one tried already: nothing, and the caller queues */
		ctx = (struct pick_ctx){ .now_ms = T0, .tried = 2 };
		CHECK(balance_choose(up, &bs, &ctx) == NULL);
		CHECK(ctx.full >= 1);
		balance_on_done(&up->servers[0], 1000, BAL_OK, T0);
		ctx = (struct pick_ctx){ .now_ms = T0, .tried = 2 };
		CHECK(balance_choose(up, &bs, &ctx) == &up->servers[0]);
		CHECK_INT(ctx.full, 0);
		teardown();
	}
}

/* An ejected server whose time is up is picked first, once, as its probe. */
static void test_probe_first(void)
{
	uint32_t cnt[5];

	if (setup(S3, "balance = least_conn\neject_after = 1\ncircuit_failures = 0\n"
		  "eject_time = 1s\n"))
		return;
	health_passive(&up->servers[2], BAL_RESET, T0);
	tally(30, T0, cnt);
	CHECK_INT(cnt[2], 0);
	CHECK_INT(pick(T0 + 1000, 0), 2);
	tally(30, T0 + 1000, cnt);
	CHECK_INT(cnt[2], 0);                      /* its probe is out */
	health_passive(&up->servers[2], BAL_OK, T0 + 1001);
	tally(30, T0 + 1001, cnt);
	CHECK_INT(cnt[2], 10);
	teardown();
}

static void test_slow_start_share(void)
{
	uint32_t cnt[5];

	if (setup(S2, "balance = weighted\nslow_start = 10s\nfall = 1\nrise = 1\n"))
		return;
	health_check_result(&up->servers[1], 0, T0);
	health_check_result(&up->servers[1], 1, T0);
	/* halfway through: weight 1000 vs 500, exactly 2:1 over whole cycles */
	tally(3000, T0 + 5000, cnt);
	CHECK_INT(cnt[0], 2000);
	CHECK_INT(cnt[1], 1000);
	tally(3000, T0 + 10000, cnt);
	CHECK_INT(cnt[1], 1500);
	/* round_robin skips it with the complementary chance */
	balance_set_strategy(up, RF_BAL_ROUND_ROBIN);
	health_check_result(&up->servers[1], 0, T0 + 20000);
	health_check_result(&up->servers[1], 1, T0 + 20000);
	tally(20000, T0 + 22500, cnt);           /* 25 %: 1 : 4 of the turns taken */
	CHECK(within(cnt[1], 20000 * 0.25 / 1.25, 0.10));
	teardown();
}

static void test_admin(void)
{
	uint32_t cnt[5];

	if (setup(S2, NULL))
		return;
	CHECK_INT(balance_strategy(up), RF_BAL_ROUND_ROBIN);
	CHECK_INT(balance_set_strategy(up, 99), -EINVAL);
	CHECK_INT(balance_set_strategy(up, RF_BAL_WEIGHTED), 0);
	CHECK_INT(balance_strategy(up), RF_BAL_WEIGHTED);
	CHECK_INT(balance_set_weight(&up->servers[1], 0), -EINVAL);
	CHECK_INT(balance_set_weight(&up->servers[1], 1001), -EINVAL);
	CHECK_INT(balance_set_weight(&up->servers[1], 4), 0);
	tally(500, T0, cnt);
	CHECK_INT(cnt[1], 400);
	CHECK_INT(balance_set_drain(&up->servers[1], 1, T0), 0);
	tally(10, T0, cnt);
	CHECK_INT(cnt[0], 10);
	teardown();

	/* a zeroed balance_state (as worker.c callocs them) works too */
	if (setup("127.0.0.1:9001 weight=2 127.0.0.1:9002", "balance = weighted\n"))
		return;
	balance_state_free(&bs);
	memset(&bs, 0, sizeof(bs));
	tally(300, T0, cnt);
	CHECK_INT(cnt[0], 200);
	teardown();
}

static void test_retry_budget(void)
{
	int i, n;

	if (setup(S2, NULL))
		return;
	/* no traffic: the floor */
	for (n = 0; balance_retry_allowed(up, T0) && n < 1000; n++)
		;
	CHECK_INT(n, BALANCE_RETRY_FLOOR);
	/* 1000 attempts: 20 % more */
	for (i = 0; i < 1000; i++) {
		balance_on_start(&up->servers[i & 1]);
		balance_on_done(&up->servers[i & 1], 100, BAL_OK, T0);
	}
	for (n = 0; balance_retry_allowed(up, T0) && n < 1000; n++)
		;
	CHECK_INT(n, 200);
	/* two windows later everything is forgotten */
	for (n = 0; balance_retry_allowed(up, T0 + 10000) && n < 1000; n++)
		;
	CHECK_INT(n, BALANCE_RETRY_FLOOR);
	teardown();

	if (setup(S2, "retry_budget = 0\n"))
		return;
	CHECK_INT(balance_retry_allowed(up, T0), 0);
	teardown();
}

static void test_hash_addr(void)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct sockaddr_in b4 = { .sin_family = AF_INET, .sin_port = htons(2) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
	b4.sin_addr = a4.sin_addr;
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr);
	CHECK(balance_hash_addr((struct sockaddr *)&a4) == balance_hash_addr((struct sockaddr *)&b4));
	CHECK(balance_hash_addr((struct sockaddr *)&a4) == balance_hash_addr((struct sockaddr *)&a6));
	inet_pton(AF_INET6, "2001:db8::7", &a6.sin6_addr);
	CHECK(balance_hash_addr((struct sockaddr *)&a4) != balance_hash_addr((struct sockaddr *)&a6));
	b4.sin_addr.s_addr ^= htonl(1);
	CHECK(balance_hash_addr((struct sockaddr *)&a4) != balance_hash_addr((struct sockaddr *)&b4));
}

/* ---- two workers at once ---- */

#define HAMMER_ITERS 60000
#define HAMMER_INFLIGHT 8

struct hammer {
	pthread_t tid;
	int id;
	struct balance_state bs;
	uint64_t picks, nulls, starts, dones;
};

static _Atomic uint64_t hammer_clock;
static _Atomic int hammer_ready;

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct server *fl[HAMMER_INFLIGHT] = { 0 };
	struct pick_ctx ctx = { 0 };
	uint64_t r = 0x1234567ull + (uint64_t)h->id;
	int i, slot, outcome;

	/* start together, so the two really overlap */
	atomic_fetch_add(&hammer_ready, 1);
	while (atomic_load(&hammer_ready) < 2)
		;
	for (i = 0; i < HAMMER_ITERS; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		/* one clock for both, each reading it at its own moments, like two
		 * event loops refreshing the monotonic time once per iteration */
		ctx.now_ms = T0 + atomic_fetch_add_explicit(&hammer_clock, 1, memory_order_relaxed) / 8;
		ctx.client_hash = r >> 8;
		ctx.tried = (r & 7) == 0 ? 1ull << (r >> 40 & 3) : 0;
		slot = (int)((r >> 20) % HAMMER_INFLIGHT);
		if (fl[slot]) {
			static const int outs[] = { BAL_5XX, BAL_CONNECT_FAIL, BAL_RESET,
						    BAL_TIMEOUT, BAL_ABORT, BAL_OK, BAL_OK, BAL_OK };
			/* servers 0-2 fail one request in 16, server 3 every other */
			outcome = outs[(r >> 32) % ARRAY_SIZE(outs)];
			if (fl[slot]->index < 3 ? ((r >> 36) & 15) != 0 : ((r >> 36) & 1) != 0)
				outcome = BAL_OK;
			balance_on_done(fl[slot], (uint32_t)(r >> 48) % 20000, outcome, ctx.now_ms);
			fl[slot] = NULL;
			h->dones++;
		}
		fl[slot] = balance_choose(up, &h->bs, &ctx);
		h->picks++;
		if (fl[slot]) {
			balance_on_start(fl[slot]);
			h->starts++;
		} else {
			h->nulls++;
		}
		switch ((r >> 56) & 63) {
		case 0:
			/* checks pass on 0-2 (one blip in 8), fail on 3 half the time */
			health_check_result(&up->servers[(r >> 4) & 3],
					    ((r >> 4) & 3) == 3 ? (r >> 3) & 1 : ((r >> 6) & 7) != 0,
					    ctx.now_ms);
			break;
		case 1:
			/* mostly undrain, so that drains stay short */
			health_set_drain(&up->servers[(r >> 4) & 3], (r & 0x18) == 0, ctx.now_ms);
			break;
		case 2:
			if (h->id == 0)
				balance_set_strategy(up, (uint32_t)(r >> 8) % 7);
			break;
		case 3:
			if (((r >> 8) & 15) == 0)   /* rare: a hold outlasts 200 iterations */
				health_hold(&up->servers[(r >> 4) & 3], ctx.now_ms + 50, ctx.now_ms);
			break;
		case 4:
			balance_retry_allowed(up, ctx.now_ms);
			break;
		default:
			break;
		}
	}
	for (slot = 0; slot < HAMMER_INFLIGHT; slot++) {
		if (fl[slot]) {
			balance_on_done(fl[slot], 1000, BAL_OK, ctx.now_ms);
			h->dones++;
		}
	}
	return NULL;
}

static void test_two_workers(void)
{
	struct hammer h[2];
	struct health_view v;
	uint32_t i, ejected = 0;
	int t;

	if (setup(S4, "balance = random2\neject_after = 3\neject_time = 200ms\n"
		  "circuit_failures = 4\ncircuit_open_time = 300ms\ncircuit_half_open_requests = 2\n"
		  "fall = 2\nrise = 2\nslow_start = 1s\nfail_on_5xx = on\n"))
		return;
	memset(h, 0, sizeof(h));
	for (t = 0; t < 2; t++) {
		h[t].id = t;
		CHECK_INT(balance_state_init(&h[t].bs, up, (uint32_t)t), 0);
	}
	for (t = 0; t < 2; t++)
		CHECK_INT(pthread_create(&h[t].tid, NULL, hammer_run, &h[t]), 0);
	for (t = 0; t < 2; t++)
		pthread_join(h[t].tid, NULL);
	for (t = 0; t < 2; t++) {
		CHECK(h[t].picks == HAMMER_ITERS);
		CHECK(h[t].starts == h[t].dones);
		CHECK(h[t].starts > HAMMER_ITERS / 4);   /* the upstream was not stranded */
		if (getenv("RF_TEST_VERBOSE"))
			fprintf(stderr, "  worker %d: picks %llu starts %llu nulls %llu\n", t,
				(unsigned long long)h[t].picks, (unsigned long long)h[t].starts,
				(unsigned long long)h[t].nulls);
		balance_state_free(&h[t].bs);
	}
	for (i = 0; i < up->nservers; i++) {
		health_view(&up->servers[i], T0 + HAMMER_ITERS, &v);
		CHECK_INT(v.active, 0);                  /* every start was ended */
		CHECK(v.state <= HEALTH_EJECTED);
		CHECK(v.circuit <= CIRCUIT_HALF_OPEN);
		CHECK(v.gen > 0);                        /* things did happen */
		ejected += v.state == HEALTH_EJECTED;
		if (getenv("RF_TEST_VERBOSE"))
			fprintf(stderr, "  server %u: %s circuit %s drain %d held %d gen %u fails %u level %u\n",
				i, health_state_str(v.state), circuit_state_str(v.circuit), v.draining,
				v.held, v.gen, v.fails, v.eject_level);
	}
	CHECK_INT(atomic_load(&up->nejected), ejected);
	CHECK(ejected <= 2);                         /* max_ejection_percent = 50 */
	teardown();
}

int main(void)
{
	rf_log_level = LOG_ERROR;
	RUN(test_round_robin_exact);
	RUN(test_weighted_smooth);
	RUN(test_least_conn);
	RUN(test_least_time);
	RUN(test_least_time_unmeasured);
	RUN(test_adaptive);
	RUN(test_random2);
	RUN(test_ip_hash);
	RUN(test_unavailable_never_picked);
	RUN(test_tried);
	RUN(test_max_conns);
	RUN(test_probe_first);
	RUN(test_slow_start_share);
	RUN(test_admin);
	RUN(test_retry_budget);
	RUN(test_hash_addr);
	RUN(test_two_workers);
	TEST_REPORT();
}

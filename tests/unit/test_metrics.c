/* test_metrics.c - per-server counters and latency histograms: outcomes
 * are counted, only responses go into the histogram, bucket bounds are
 * inclusive, and per-upstream sums add up. */
#include "test.h"
#include "common.h"
#include "health.h"
#include "metrics.h"
#include "upstream.h"

static void test_buckets_and_outcomes(void)
{
	static struct server s;
	struct metrics_view v;
	unsigned i;

	memset(&s, 0, sizeof(s));
	metrics_observe(&s, 0, BAL_OK);                 /* <= 1 ms */
	metrics_observe(&s, 1000, BAL_OK);              /* bound is inclusive */
	metrics_observe(&s, 1001, BAL_OK);              /* <= 5 ms */
	metrics_observe(&s, 30000, BAL_5XX);            /* <= 50 ms */
	metrics_observe(&s, 5000000, BAL_OK);           /* <= 5 s */
	metrics_observe(&s, 5000001, BAL_OK);           /* +Inf */
	metrics_observe(&s, 7, BAL_CONNECT_FAIL);       /* no response: counted only */
	metrics_observe(&s, 7, BAL_TIMEOUT);
	metrics_observe(&s, 7, BAL_RESET);
	metrics_observe(&s, 7, BAL_ABORT);
	metrics_observe(&s, 7, 99);                     /* out of range: ignored */
	metrics_read(&s, &v);
	CHECK_INT(v.requests, 10);
	CHECK_INT(v.failures, 4);                       /* 5xx, connect, timeout, reset */
	CHECK_INT(v.responses, 6);
	CHECK_INT(v.outcome[BAL_OK], 5);
	CHECK_INT(v.outcome[BAL_ABORT], 1);
	CHECK_INT(v.bucket[0], 2);
	CHECK_INT(v.bucket[1], 1);
	CHECK_INT(v.bucket[4], 1);
	CHECK_INT(v.bucket[10], 1);
	CHECK_INT(v.bucket[METRICS_NBUCKETS - 1], 1);
	CHECK(v.lat_sum_us == 0 + 1000 + 1001 + 30000 + 5000000ull + 5000001ull);
	CHECK_INT(metrics_bound_us(0), 1000);
	CHECK_INT(metrics_bound_us(METRICS_NBUCKETS - 2), 5000000);
	CHECK(metrics_bound_us(METRICS_NBUCKETS - 1) == UINT32_MAX);
	for (i = 0; i + 2 < METRICS_NBUCKETS; i++)
		CHECK(metrics_bound_us(i) < metrics_bound_us(i + 1));
	CHECK_STR(metrics_outcome_name(BAL_CONNECT_FAIL), "connect_fail");
	CHECK_STR(metrics_outcome_name(BAL_5XX), "5xx");
}

static void test_sum(void)
{
	static struct server a, b;
	struct metrics_view va, vb, t;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	metrics_observe(&a, 2000, BAL_OK);
	metrics_observe(&b, 2000, BAL_OK);
	metrics_observe(&b, 200000, BAL_RESET);
	metrics_read(&a, &va);
	metrics_read(&b, &vb);
	memset(&t, 0, sizeof(t));
	metrics_add(&t, &va);
	metrics_add(&t, &vb);
	CHECK_INT(t.requests, 3);
	CHECK_INT(t.failures, 1);
	CHECK_INT(t.responses, 2);
	CHECK_INT(t.bucket[1], 2);
	CHECK_INT(t.lat_sum_us, 4000);
}

/* The counters sit on their own cache lines inside struct server. */
static void test_layout(void)
{
	CHECK_INT(offsetof(struct server, m) % 64, 0);
	CHECK_INT(_Alignof(struct server_metrics), 64);
	CHECK(metrics_started_us() > 0);
}

int main(void)
{
	RUN(test_buckets_and_outcomes);
	RUN(test_sum);
	RUN(test_layout);
	TEST_REPORT();
}

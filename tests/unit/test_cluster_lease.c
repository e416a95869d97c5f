/* test_cluster_lease.c - the lease table: credit on a key's first request,
 * spending, top-ups, returns and frees; and the overshoot bound, with two
 * instances' tables synced against a model of the Lua script (GCRA on one
 * TAT per key) under continuous load in simulated time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "test.h"

/* The script's arithmetic (cluster.c lease_script) for one key. */
struct fake_redis {
	uint64_t tat;
};

static int64_t fake_script(struct fake_redis *r, uint64_t now, const struct cl_item *it)
{
	uint64_t T = it->t_us, tat = r->tat < now ? now : r->tat, debt;
	int64_t n;

	tat = tat > it->ret * T ? tat - it->ret * T : 0;
	if (tat < now)
		tat = now;
	tat += it->force * T;
	debt = tat - now;
	n = debt > it->tau_us + T ? 0 : (int64_t)((it->tau_us + T - debt) / T);
	if (n > it->take)
		n = it->take;
	r->tat = tat + (uint64_t)n * T;
	return n;
}

static void test_take_and_sync(void)
{
	struct cl_table t;
	struct rl_policy p;
	struct cl_item it[4];
	uint32_t cursor = 0, n, i;
	int ok = 0;

	CHECK_INT(rl_policy_init(&p, 100, 60000000, 0), 0);    /* 100 per minute */
	CHECK_INT(cl_table_init(&t, 64, 5), 0);
	for (i = 0; i < 8; i++)
		ok += cl_take(&t, 0xabcdef1234567890ull, &p) == 1;
	CHECK_INT(ok, 5);                       /* the credit, then nothing */
	CHECK_INT(cl_active(&t), 1);
	n = cl_sync_collect(&t, 1000, 1000, 10000, it, 4, &cursor);
	CHECK_INT(n, 1);
	CHECK_INT(it[0].force, 5);              /* the credit is charged */
	CHECK(it[0].take >= 5);                 /* and the lease topped up */
	CHECK_INT(it[0].ret, 0);
	/* in flight: not collected twice */
	CHECK_INT(cl_sync_collect(&t, 1050, 1000, 10000, it + 1, 3, &cursor), 0);
	cl_sync_done(&t, &it[0], 4);
	for (i = 0, ok = 0; i < 8; i++)
		ok += cl_take(&t, 0xabcdef1234567890ull, &p) == 1;
	CHECK_INT(ok, 4);
	/* idle: after the key's period (60 s) it returns what it holds */
	cl_sync_collect(&t, 2000, 1000, 10000, it, 4, &cursor);
	cl_sync_done(&t, &it[0], 0);
	cl_sync_done(&t, &it[0], 0);
	n = cl_sync_collect(&t, 2000 + 61000, 1000, 10000, it, 4, &cursor);
	CHECK_INT(n, 0);                        /* nothing held: nothing to return */
	/* a dormant key's next request credits a new lease */
	CHECK_INT(cl_take(&t, 0xabcdef1234567890ull, &p), 1);
	n = cl_sync_collect(&t, 64000, 1000, 10000, it, 4, &cursor);
	CHECK_INT(n, 1);
	CHECK_INT(it[0].force, 5);
	cl_sync_done(&t, &it[0], 0);
	/* idle long enough: the lease goes back, then the slot is freed */
	n = cl_sync_collect(&t, 64000 + 60000, 1000, 10000, it, 4, &cursor);
	CHECK_INT(n, 1);
	CHECK_INT(it[0].ret, 4);
	cl_sync_done(&t, &it[0], 0);
	cl_sync_collect(&t, 64000 + 60000 + 70000, 1000, 10000, it, 4, &cursor);
	CHECK_INT(cl_active(&t), 0);
	cl_table_free(&t);
}

/* Two instances hammering one key for 30 simulated seconds, syncing every
 * 50 ms (replies one interval late): admitted <= burst + rate * t + lease * 2. */
static void test_overshoot_bound(void)
{
	const uint32_t lease = 10, burst = 100, rate = 100;   /* 100 per minute */
	const uint64_t key = 0x1122334455667788ull, sync_ms = 50, run_ms = 30000;
	struct fake_redis redis = { 0 };
	struct cl_table t[2];
	struct rl_policy p;
	struct cl_item items[2][8], held[2][8];
	uint32_t cursor[2] = { 0, 0 }, nheld[2] = { 0, 0 }, i, k;
	uint64_t now, admitted = 0, bound;
	int j;

	CHECK_INT(rl_policy_init(&p, rate, 60000000, burst), 0);
	for (i = 0; i < 2; i++)
		CHECK_INT(cl_table_init(&t[i], 64, lease), 0);
	for (now = 1; now <= run_ms; now += sync_ms) {
		for (i = 0; i < 2; i++) {
			/* replies to the last interval's calls arrive first */
			for (k = 0; k < nheld[i]; k++)
				cl_sync_done(&t[i], &held[i][k],
					     fake_script(&redis, now * 1000, &held[i][k]));
			for (j = 0; j < 200; j++)
				admitted += cl_take(&t[i], key, &p) == 1;
			nheld[i] = cl_sync_collect(&t[i], now, 1000, 10000, items[i], 8, &cursor[i]);
			memcpy(held[i], items[i], sizeof(items[i]));
		}
	}
	bound = burst + (uint64_t)rate * run_ms / 60000 + lease * 2;
	CHECK(admitted <= bound);
	CHECK(admitted + lease * 2 >= burst + (uint64_t)rate * run_ms / 60000 - 2);
	if (getenv("RF_VERBOSE") || admitted > bound)
		fprintf(stderr, "  admitted %llu, bound %llu\n", (unsigned long long)admitted,
			(unsigned long long)bound);
	for (i = 0; i < 2; i++)
		cl_table_free(&t[i]);
}

int main(void)
{
	RUN(test_take_and_sync);
	RUN(test_overshoot_bound);
	TEST_REPORT();
}

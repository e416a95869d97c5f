/* test_health.c - the per-server health state machine with an injected
 * clock: active checks (fall/rise), outlier ejection with growing intervals
 * and max_ejection_percent, half-open probes, the circuit breaker, 5xx
 * policy, drain, Retry-After holds, slow start, deadline wrap, and that
 * every state change is logged exactly once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balance.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "test.h"
#include "upstream.h"

#define T0 1000000ull   /* an arbitrary start of the injected clock */

static struct runtime rt;
static struct upstream *up;

/* A runtime with one upstream "app" of <servers> and extra keys. */
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
	if (rc) {
		test_cur_failed++;
		return rc;
	}
	up = &rt.ups[0];
	return 0;
}

#define S2 "127.0.0.1:9001 127.0.0.1:9002"
#define S4 "127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003 127.0.0.1:9004"

static struct health_view view(struct server *s, uint64_t now)
{
	struct health_view v;

	health_view(s, now, &v);
	return v;
}

static void fail_n(struct server *s, int n, int outcome, uint64_t now)
{
	while (n--)
		health_passive(s, outcome, now);
}

static void test_defaults(void)
{
	struct rf_upstream_conf *uc;
	struct health_view v;

	if (setup(S2, NULL))
		return;
	uc = rt.cfg->upstreams;
	CHECK_INT(uc->slow_start_ms, 0);
	CHECK_INT(uc->max_ejection_percent, 50);
	CHECK_INT(uc->eject_after, 5);
	CHECK_INT(uc->eject_time_ms, 10000);
	CHECK_INT(uc->fail_on_5xx, 0);
	CHECK_INT(uc->circuit_failures, 5);
	CHECK_INT(uc->circuit_open_time_ms, 10000);
	CHECK_INT(uc->circuit_half_open_requests, 1);
	CHECK_INT(uc->retry_budget, 20);
	v = view(&up->servers[0], T0);
	CHECK_INT(v.state, HEALTH_UP);
	CHECK_INT(v.circuit, CIRCUIT_CLOSED);
	CHECK_INT(v.draining, 0);
	CHECK_INT(v.held, 0);
	CHECK_INT(v.gen, 0);
	CHECK_INT(v.weight_permille, 1000);
	CHECK_INT(health_admit(&up->servers[0], T0), HEALTH_TAKE);
	CHECK_STR(health_state_str(HEALTH_EJECTED), "ejected");
	CHECK_STR(circuit_state_str(CIRCUIT_HALF_OPEN), "half_open");
	CHECK_STR(bal_outcome_str(BAL_CONNECT_FAIL), "connect_fail");
	runtime_free(&rt);

	/* the new keys parse and are bounded */
	if (setup(S2, "slow_start = 30s\nmax_ejection_percent = 100\neject_after = 0\n"
		  "eject_time = 250ms\nfail_on_5xx = on\ncircuit_failures = 63\n"
		  "circuit_open_time = 30m\ncircuit_half_open_requests = 15\nretry_budget = 0\n"))
		return;
	uc = rt.cfg->upstreams;
	CHECK_INT(uc->slow_start_ms, 30000);
	CHECK_INT(uc->max_ejection_percent, 100);
	CHECK_INT(uc->eject_after, 0);
	CHECK_INT(uc->eject_time_ms, 250);
	CHECK_INT(uc->fail_on_5xx, 1);
	CHECK_INT(uc->circuit_failures, 63);
	CHECK_INT(uc->circuit_open_time_ms, 1800000);
	CHECK_INT(uc->circuit_half_open_requests, 15);
	CHECK_INT(uc->retry_budget, 0);
	runtime_free(&rt);
}

static void test_bad_keys(void)
{
	static const char *const bad[] = {
		"max_ejection_percent = 101\n", "eject_after = 64\n", "eject_time = 301s\n",
		"eject_time = 50ms\n", "fail_on_5xx = maybe\n", "circuit_open_time = 31m\n",
		"circuit_half_open_requests = 0\n", "circuit_half_open_requests = 16\n",
		"retry_budget = 101\n", "slow_start = 2h\n",
	};
	char text[256], err[256];
	struct rf_config *cfg;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof text, "[upstream app]\nservers = %s\n%s", S2, bad[i]);
		cfg = NULL;
		if (config_parse("t.ini", text, strlen(text), &cfg, err, sizeof err) == 0) {
			fprintf(stderr, "  accepted: %s", bad[i]);
			test_cur_failed++;
			config_free(cfg);
		} else {
			CHECK(strncmp(err, "t.ini:3: ", 9) == 0);
		}
	}
}

static void test_fall_rise(void)
{
	struct server *s;
	uint64_t now = T0;

	if (setup(S2, "fall = 3\nrise = 2\n"))
		return;
	s = &up->servers[0];
	health_check_result(s, 0, now);
	health_check_result(s, 0, now);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	CHECK_INT(view(s, now).streak, 2);
	health_check_result(s, 1, now);          /* a pass breaks the streak */
	CHECK_INT(view(s, now).streak, 0);
	health_check_result(s, 0, now);
	health_check_result(s, 0, now);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	health_check_result(s, 0, now);
	CHECK_INT(view(s, now).state, HEALTH_DOWN);
	CHECK_INT(view(s, now).gen, 1);
	CHECK_INT(health_admit(s, now), HEALTH_SKIP);
	health_check_result(s, 0, now);          /* more failures: no new change */
	CHECK_INT(view(s, now).gen, 1);
	health_check_result(s, 1, now);
	CHECK_INT(view(s, now).state, HEALTH_DOWN);
	health_check_result(s, 0, now);          /* a failure breaks the pass streak */
	health_check_result(s, 1, now);
	CHECK_INT(view(s, now).state, HEALTH_DOWN);
	health_check_result(s, 1, now);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	CHECK_INT(view(s, now).gen, 2);
	CHECK_INT(health_admit(s, now), HEALTH_TAKE);
	/* passive failures while down do not eject or count as anything else */
	CHECK_INT(view(&up->servers[1], now).state, HEALTH_UP);
	runtime_free(&rt);
}

static void test_eject_probe_grow(void)
{
	struct server *s;
	uint64_t now = T0;

	if (setup(S2, "eject_after = 3\neject_time = 1s\ncircuit_failures = 0\n"))
		return;
	s = &up->servers[0];
	fail_n(s, 2, BAL_CONNECT_FAIL, now);
	health_passive(s, BAL_OK, now);          /* consecutive only */
	fail_n(s, 2, BAL_RESET, now);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	CHECK_INT(view(s, now).fails, 2);
	health_passive(s, BAL_TIMEOUT, now);
	CHECK_INT(view(s, now).state, HEALTH_EJECTED);
	CHECK_INT(view(s, now).eject_level, 1);
	CHECK_INT(atomic_load(&up->nejected), 1);
	CHECK_INT(health_admit(s, now), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 999), HEALTH_SKIP);
	/* a straggler's success from before the ejection does not readmit it */
	health_passive(s, BAL_OK, now + 500);
	CHECK_INT(view(s, now).state, HEALTH_EJECTED);

	/* ejection over: exactly one probe, even when asked twice */
	now += 1000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	CHECK_INT(health_admit(s, now), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 10), HEALTH_SKIP);
	/* the probe fails: ejected again, twice as long */
	health_passive(s, BAL_CONNECT_FAIL, now);
	CHECK_INT(view(s, now).state, HEALTH_EJECTED);
	CHECK_INT(view(s, now).eject_level, 2);
	CHECK_INT(health_admit(s, now + 1999), HEALTH_SKIP);
	now += 2000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	health_passive(s, BAL_CONNECT_FAIL, now);
	CHECK_INT(health_admit(s, now + 3999), HEALTH_SKIP);
	now += 4000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	health_passive(s, BAL_OK, now);          /* the probe succeeds */
	CHECK_INT(view(s, now).state, HEALTH_UP);
	CHECK_INT(view(s, now).fails, 0);
	CHECK_INT(atomic_load(&up->nejected), 0);
	CHECK_INT(health_admit(s, now), HEALTH_TAKE);
	/* healthy as long as the last ejection lasted (4 s): one level forgiven */
	CHECK_INT(view(s, now).eject_level, 3);
	health_passive(s, BAL_OK, now + 3999);
	CHECK_INT(view(s, now).eject_level, 3);
	health_passive(s, BAL_OK, now + 4000);
	CHECK_INT(view(s, now).eject_level, 2);
	health_passive(s, BAL_OK, now + 5999);
	CHECK_INT(view(s, now).eject_level, 2);
	health_passive(s, BAL_OK, now + 6000);
	CHECK_INT(view(s, now).eject_level, 1);
	/* the next ejection lasts 2 s (level 1), not 8 s */
	now += 6000;
	fail_n(s, 3, BAL_CONNECT_FAIL, now);
	CHECK_INT(view(s, now).state, HEALTH_EJECTED);
	CHECK_INT(health_admit(s, now + 1999), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 2000), HEALTH_PROBE);
	runtime_free(&rt);
}

static void test_eject_cap(void)
{
	struct server *s;
	uint64_t now = T0;
	int i;

	if (setup(S2, "eject_after = 1\neject_time = 100s\ncircuit_failures = 0\n"))
		return;
	s = &up->servers[0];
	health_passive(s, BAL_RESET, now);
	for (i = 0; i < 10; i++) {          /* 100, 200, then capped at 300 s */
		uint64_t len = i == 0 ? 100000 : i == 1 ? 200000 : HEALTH_EJECT_MAX_MS;

		CHECK_INT(health_admit(s, now + len - 1), HEALTH_SKIP);
		now += len;
		CHECK_INT(health_admit(s, now), HEALTH_PROBE);
		health_passive(s, BAL_RESET, now);
	}
	CHECK_INT(view(s, now).eject_level, 7);
	runtime_free(&rt);
}

/* A probe that never reports (the client went away) is granted again after
 * eject_time, so a server cannot stay ejected for ever. */
static void test_probe_lost(void)
{
	struct server *s;
	uint64_t now = T0;

	if (setup(S2, "eject_after = 1\neject_time = 1s\ncircuit_failures = 0\n"))
		return;
	s = &up->servers[1];
	health_passive(s, BAL_CONNECT_FAIL, now);
	now += 1000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	health_passive(s, BAL_ABORT, now);       /* says nothing */
	CHECK_INT(health_admit(s, now + 999), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 1000), HEALTH_PROBE);
	health_passive(s, BAL_OK, now + 1000);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	runtime_free(&rt);
}

static void test_max_ejection_percent(void)
{
	uint64_t now = T0;
	uint32_t i, ejected = 0;

	if (setup(S4, "eject_after = 2\neject_time = 1s\ncircuit_failures = 0\n"))
		return;
	for (i = 0; i < 4; i++)
		fail_n(&up->servers[i], 5, BAL_CONNECT_FAIL, now);
	for (i = 0; i < 4; i++)
		ejected += view(&up->servers[i], now).state == HEALTH_EJECTED;
	CHECK_INT(ejected, 2);                   /* 50 % of 4 */
	CHECK_INT(atomic_load(&up->nejected), 2);
	CHECK_INT(view(&up->servers[2], now).state, HEALTH_UP);
	CHECK_INT(view(&up->servers[2], now).fails, 5);
	CHECK_INT(health_admit(&up->servers[2], now), HEALTH_TAKE);
	/* one comes back: the next failure of a refused one ejects it */
	now += 1000;
	CHECK_INT(health_admit(&up->servers[0], now), HEALTH_PROBE);
	health_passive(&up->servers[0], BAL_OK, now);
	CHECK_INT(atomic_load(&up->nejected), 1);
	health_passive(&up->servers[2], BAL_CONNECT_FAIL, now);
	CHECK_INT(view(&up->servers[2], now).state, HEALTH_EJECTED);
	CHECK_INT(atomic_load(&up->nejected), 2);
	/* active checks taking an ejected server down free its slot */
	for (i = 0; i < rt.cfg->upstreams[0].fall; i++)
		health_check_result(&up->servers[2], 0, now);
	CHECK_INT(view(&up->servers[2], now).state, HEALTH_DOWN);
	CHECK_INT(atomic_load(&up->nejected), 1);
	runtime_free(&rt);

	/* a lone server is never ejected at 50 %: the upstream is not stranded */
	if (setup("127.0.0.1:9001", "eject_after = 1\ncircuit_failures = 0\n"))
		return;
	fail_n(&up->servers[0], 20, BAL_TIMEOUT, now);
	CHECK_INT(view(&up->servers[0], now).state, HEALTH_UP);
	CHECK_INT(health_admit(&up->servers[0], now), HEALTH_TAKE);
	runtime_free(&rt);
}

static void test_circuit(void)
{
	struct server *s;
	uint64_t now = T0;

	if (setup(S2, "eject_after = 0\ncircuit_failures = 3\ncircuit_open_time = 2s\n"
		  "circuit_half_open_requests = 2\n"))
		return;
	s = &up->servers[0];
	fail_n(s, 2, BAL_CONNECT_FAIL, now);
	CHECK_INT(view(s, now).circuit, CIRCUIT_CLOSED);
	health_passive(s, BAL_TIMEOUT, now);
	CHECK_INT(view(s, now).circuit, CIRCUIT_OPEN);
	CHECK_INT(view(s, now).state, HEALTH_UP);
	CHECK_INT(health_admit(s, now), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 1999), HEALTH_SKIP);
	health_passive(s, BAL_OK, now + 100);    /* straggler success: still open */
	CHECK_INT(view(s, now).circuit, CIRCUIT_OPEN);

	/* half-open: two trials, then nothing until one reports */
	now += 2000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	CHECK_INT(view(s, now).circuit, CIRCUIT_HALF_OPEN);
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	CHECK_INT(health_admit(s, now), HEALTH_SKIP);
	health_passive(s, BAL_RESET, now + 10);   /* a trial fails: open again */
	CHECK_INT(view(s, now).circuit, CIRCUIT_OPEN);
	CHECK_INT(health_admit(s, now + 2009), HEALTH_SKIP);
	now += 2010;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	health_passive(s, BAL_OK, now);          /* a trial succeeds: closed */
	CHECK_INT(view(s, now).circuit, CIRCUIT_CLOSED);
	CHECK_INT(health_admit(s, now), HEALTH_TAKE);
	CHECK_INT(health_admit(s, now), HEALTH_TAKE);

	/* trials that never report are granted anew after circuit_open_time */
	fail_n(s, 3, BAL_CONNECT_FAIL, now);
	now += 2000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	CHECK_INT(health_admit(s, now + 1999), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 2000), HEALTH_PROBE);
	runtime_free(&rt);
}

static void test_5xx_policy(void)
{
	struct server *s;

	if (setup(S2, "eject_after = 2\n"))
		return;
	s = &up->servers[0];
	CHECK_INT(health_is_failure(s, BAL_5XX), 0);
	fail_n(s, 10, BAL_5XX, T0);
	CHECK_INT(view(s, T0).state, HEALTH_UP);
	CHECK_INT(view(s, T0).fails, 0);
	runtime_free(&rt);

	if (setup(S2, "eject_after = 2\nfail_on_5xx = on\n"))
		return;
	s = &up->servers[0];
	CHECK_INT(health_is_failure(s, BAL_5XX), 1);
	CHECK_INT(health_is_failure(s, BAL_OK), 0);
	CHECK_INT(health_is_failure(s, BAL_ABORT), 0);
	fail_n(s, 2, BAL_5XX, T0);
	CHECK_INT(view(s, T0).state, HEALTH_EJECTED);
	runtime_free(&rt);
}

static void test_abort_neutral(void)
{
	struct server *s;

	if (setup(S2, NULL))
		return;
	s = &up->servers[0];
	fail_n(s, 3, BAL_CONNECT_FAIL, T0);
	fail_n(s, 10, BAL_ABORT, T0);
	CHECK_INT(view(s, T0).fails, 3);
	runtime_free(&rt);
}

static void test_drain(void)
{
	struct server *s;

	if (setup(S2, NULL))
		return;
	s = &up->servers[1];
	CHECK_INT(health_set_drain(s, 1, T0), 1);
	CHECK_INT(health_set_drain(s, 1, T0), 0);
	CHECK_INT(view(s, T0).draining, 1);
	CHECK_INT(view(s, T0).state, HEALTH_UP);
	CHECK_INT(health_admit(s, T0), HEALTH_SKIP);
	/* health keeps being tracked while draining */
	health_check_result(s, 0, T0);
	CHECK_INT(view(s, T0).streak, 1);
	CHECK_INT(health_set_drain(s, 0, T0), 1);
	CHECK_INT(health_admit(s, T0), HEALTH_TAKE);
	CHECK_INT(view(s, T0).gen, 2);
	runtime_free(&rt);
}

static void test_hold(void)
{
	struct server *s;

	if (setup(S2, NULL))
		return;
	s = &up->servers[0];
	health_hold(s, T0 + 5000, T0);
	CHECK_INT(health_admit(s, T0), HEALTH_SKIP);
	CHECK(view(s, T0 + 4999).held);
	health_hold(s, T0 + 1000, T0);           /* a shorter hold does not shorten it */
	CHECK_INT(health_admit(s, T0 + 4999), HEALTH_SKIP);
	CHECK_INT(health_admit(s, T0 + 5000), HEALTH_TAKE);
	CHECK(!view(s, T0 + 5000).held);
	CHECK_INT(view(s, T0).state, HEALTH_UP);  /* not a health state */
	/* a silly Retry-After is capped */
	health_hold(s, T0 + 100ull * 86400000, T0);
	CHECK_INT(health_admit(s, T0 + HEALTH_HOLD_MAX_MS - 1), HEALTH_SKIP);
	CHECK_INT(health_admit(s, T0 + HEALTH_HOLD_MAX_MS), HEALTH_TAKE);
	runtime_free(&rt);
}

static void test_slow_start(void)
{
	struct server *s;
	uint64_t t;

	if (setup(S2, "slow_start = 10s\nfall = 1\nrise = 1\n"))
		return;
	s = &up->servers[0];
	CHECK_INT(health_weight_permille(s, T0), 1000);   /* at boot: full weight */
	health_check_result(s, 0, T0);
	health_check_result(s, 1, T0 + 5000);
	t = T0 + 5000;
	CHECK_INT(health_weight_permille(s, t), 1);
	CHECK_INT(health_weight_permille(s, t + 1000), 100);
	CHECK_INT(health_weight_permille(s, t + 2500), 250);
	CHECK_INT(health_weight_permille(s, t + 5000), 500);
	CHECK_INT(health_weight_permille(s, t + 9999), 999);
	CHECK_INT(health_weight_permille(s, t + 10000), 1000);
	CHECK_INT(health_weight_permille(s, t + 99999), 1000);
	CHECK_INT(health_weight_permille(&up->servers[1], t), 1000);
	runtime_free(&rt);

	/* slow_start = 0: back at full weight at once */
	if (setup(S2, "fall = 1\nrise = 1\n"))
		return;
	s = &up->servers[0];
	health_check_result(s, 0, T0);
	health_check_result(s, 1, T0);
	CHECK_INT(health_weight_permille(s, T0), 1000);
	runtime_free(&rt);
}

/* Deadlines are 32-bit ms: after an idle month a long-passed ejection must
 * not look like one still 20 days away. */
static void test_deadline_wrap(void)
{
	struct server *s;
	uint64_t now = 0xffffff00ull;   /* the deadline wraps past 2^32 */

	if (setup(S2, "eject_after = 1\neject_time = 1s\ncircuit_failures = 1\n"))
		return;
	s = &up->servers[0];
	health_passive(s, BAL_RESET, now);
	CHECK_INT(health_admit(s, now + 999), HEALTH_SKIP);
	CHECK_INT(health_admit(s, now + 30ull * 86400000), HEALTH_PROBE);
	runtime_free(&rt);
}

static int count_in_file(const char *path, const char *needle)
{
	char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;
	const char *p;
	int count = 0;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (p = buf; (p = strstr(p, needle)) != NULL; p++)
		count++;
	return count;
}

/* Each change is logged once, by whoever made it, with its reason. */
static void test_logged_once(void)
{
	char path[] = "/tmp/rf-test-health-XXXXXX";
	struct server *s;
	uint64_t now = T0;
	int fd = mkstemp(path), i;

	CHECK(fd >= 0);
	if (fd < 0 || setup(S2, "eject_after = 3\neject_time = 1s\ncircuit_failures = 3\n"
			    "circuit_open_time = 1s\nfall = 2\nrise = 2\n")) {
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	rf_log_level = LOG_INFO;
	CHECK_INT(log_open(path), 0);
	s = &up->servers[0];
	for (i = 0; i < 10; i++)
		health_passive(s, BAL_CONNECT_FAIL, now);
	now += 1000;
	CHECK_INT(health_admit(s, now), HEALTH_PROBE);
	health_passive(s, BAL_OK, now);
	for (i = 0; i < 5; i++)
		health_check_result(s, 0, now);
	for (i = 0; i < 5; i++)
		health_check_result(s, 1, now);
	health_set_drain(s, 1, now);
	health_set_drain(s, 1, now);
	CHECK_INT(log_open("/dev/stderr"), 0);
	rf_log_level = LOG_ERROR;
	CHECK_INT(count_in_file(path, "msg=\"server ejected\""), 1);
	CHECK_INT(count_in_file(path, "reason=\"3 consecutive failures, last connect_fail\""), 2);
	CHECK_INT(count_in_file(path, "msg=\"circuit open\""), 1);
	CHECK_INT(count_in_file(path, "msg=\"circuit half-open\""), 1);
	CHECK_INT(count_in_file(path, "msg=\"circuit closed\""), 1);
	CHECK_INT(count_in_file(path, "msg=\"server probe\""), 1);
	CHECK_INT(count_in_file(path, "msg=\"server up\""), 2);
	CHECK_INT(count_in_file(path, "msg=\"server down\""), 1);
	CHECK_INT(count_in_file(path, "reason=\"2 consecutive health checks failed\""), 1);
	CHECK_INT(count_in_file(path, "msg=\"server draining\""), 1);
	CHECK_INT(count_in_file(path, "server=127.0.0.1:9001"), 9);
	unlink(path);
	runtime_free(&rt);
}

int main(void)
{
	rf_log_level = LOG_ERROR;     /* the transitions would log a lot */
	RUN(test_defaults);
	RUN(test_bad_keys);
	RUN(test_fall_rise);
	RUN(test_eject_probe_grow);
	RUN(test_eject_cap);
	RUN(test_probe_lost);
	RUN(test_max_ejection_percent);
	RUN(test_circuit);
	RUN(test_5xx_policy);
	RUN(test_abort_neutral);
	RUN(test_drain);
	RUN(test_hold);
	RUN(test_slow_start);
	RUN(test_deadline_wrap);
	RUN(test_logged_once);
	TEST_REPORT();
}

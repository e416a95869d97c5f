/* metrics.h - per-server traffic counters and response-time histograms for
 * the admin API (/stats, /metrics, the dashboard). They live inside struct
 * server, on their own cache lines, and are bumped with relaxed atomic adds
 * by whichever worker finishes an attempt: the same lines the balancer's
 * load counters already share, no lock, no allocation. Readers sum them
 * at scrape time; a per-upstream histogram is the sum of its servers'. */
#ifndef RF_METRICS_H
#define RF_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/* Bucket upper bounds in microseconds; the last bucket is +Inf. */
#define METRICS_NBUCKETS 12
#define METRICS_BOUNDS_US { 1000, 5000, 10000, 25000, 50000, 100000, 250000, \
			    500000, 1000000, 2500000, 5000000 }

/* Indexed by enum bal_outcome (health.h): ok, 5xx, connect_fail, reset,
 * timeout, abort. */
#define METRICS_NOUTCOMES 6

struct server_metrics {
	_Alignas(64) _Atomic uint64_t outcome[METRICS_NOUTCOMES];  /* attempts by outcome */
	_Atomic uint64_t lat_sum_us;    /* of the observed responses */
	_Atomic uint64_t lat_bucket[METRICS_NBUCKETS];  /* not cumulative */
};

struct server;

/* One attempt on <s> ended with <outcome> (enum bal_outcome) after
 * <latency_us> (request sent to response complete, or to the failure).
 * Counts it by outcome; responses (ok and 5xx) go into the histogram.
 * Call it once per attempt, beside balance_on_done(). Lock-free. */
void metrics_observe(struct server *s, uint32_t latency_us, int outcome);

/* A reload: <to> continues the totals of <from> (the same server in the
 * runtime before), so counters stay monotonic for Prometheus. */
void metrics_inherit(struct server_metrics *to, const struct server_metrics *from);

/* A consistent-enough snapshot (relaxed loads) for the admin views. */
struct metrics_view {
	uint64_t outcome[METRICS_NOUTCOMES];
	uint64_t requests;      /* all outcomes */
	uint64_t failures;      /* 5xx, connect_fail, reset, timeout */
	uint64_t responses;     /* ok + 5xx: the histogram's count */
	uint64_t lat_sum_us;
	uint64_t bucket[METRICS_NBUCKETS];      /* not cumulative */
};

void metrics_read(const struct server *s, struct metrics_view *v);
/* Add <b> into <a> (for per-upstream totals). */
void metrics_add(struct metrics_view *a, const struct metrics_view *b);

/* Upper bound of bucket <i> in microseconds; UINT32_MAX for +Inf. */
uint32_t metrics_bound_us(unsigned i);

/* Prometheus label name of an outcome: ok, 5xx, connect_fail, ... */
const char *metrics_outcome_name(unsigned outcome);

/* Process start, CLOCK_MONOTONIC microseconds (for uptime). */
uint64_t metrics_started_us(void);

#endif

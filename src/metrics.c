/* metrics.c - per-server counters and latency histograms (see metrics.h). */
#include <time.h>
#include "common.h"
#include "health.h"
#include "metrics.h"
#include "upstream.h"

_Static_assert(METRICS_NOUTCOMES == BAL_ABORT + 1, "one counter per enum bal_outcome");

static const uint32_t bounds[METRICS_NBUCKETS - 1] = METRICS_BOUNDS_US;
static uint64_t started_us;

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

__attribute__((constructor)) static void metrics_boot(void)
{
	started_us = mono_us();
}

uint64_t metrics_started_us(void)
{
	return started_us;
}

static inline void add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void metrics_inherit(struct server_metrics *to, const struct server_metrics *from)
{
	size_t i;

	for (i = 0; i < METRICS_NOUTCOMES; i++)
		atomic_store_explicit(&to->outcome[i], atomic_load_explicit(&from->outcome[i],
				      memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&to->lat_sum_us, atomic_load_explicit(&from->lat_sum_us,
			      memory_order_relaxed), memory_order_relaxed);
	for (i = 0; i < METRICS_NBUCKETS; i++)
		atomic_store_explicit(&to->lat_bucket[i], atomic_load_explicit(&from->lat_bucket[i],
				      memory_order_relaxed), memory_order_relaxed);
}

void metrics_observe(struct server *s, uint32_t latency_us, int outcome)
{
	struct server_metrics *m = &s->m;
	unsigned b = 0;

	if (unlikely(outcome < 0 || outcome >= METRICS_NOUTCOMES))
		return;
	add(&m->outcome[outcome], 1);
	if (outcome != BAL_OK && outcome != BAL_5XX)
		return;
	while (b < METRICS_NBUCKETS - 1 && latency_us > bounds[b])
		b++;
	add(&m->lat_bucket[b], 1);
	add(&m->lat_sum_us, latency_us);
}

static inline uint64_t rd(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void metrics_read(const struct server *s, struct metrics_view *v)
{
	const struct server_metrics *m = &s->m;
	unsigned i;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < METRICS_NOUTCOMES; i++) {
		v->outcome[i] = rd(&m->outcome[i]);
		v->requests += v->outcome[i];
		if (i != BAL_OK && i != BAL_ABORT)
			v->failures += v->outcome[i];
	}
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		v->bucket[i] = rd(&m->lat_bucket[i]);
		v->responses += v->bucket[i];
	}
	v->lat_sum_us = rd(&m->lat_sum_us);
}

void metrics_add(struct metrics_view *a, const struct metrics_view *b)
{
	unsigned i;

	for (i = 0; i < METRICS_NOUTCOMES; i++)
		a->outcome[i] += b->outcome[i];
	for (i = 0; i < METRICS_NBUCKETS; i++)
		a->bucket[i] += b->bucket[i];
	a->requests += b->requests;
	a->failures += b->failures;
	a->responses += b->responses;
	a->lat_sum_us += b->lat_sum_us;
}

uint32_t metrics_bound_us(unsigned i)
{
	return i < METRICS_NBUCKETS - 1 ? bounds[i] : UINT32_MAX;
}

const char *metrics_outcome_name(unsigned outcome)
{
	static const char *const names[METRICS_NOUTCOMES] = {
		"ok", "5xx", "connect_fail", "reset", "timeout", "abort",
	};

	return outcome < METRICS_NOUTCOMES ? names[outcome] : "unknown";
}

/* upstream.h - the run-time view of upstreams and routes: servers with their
 * shared health words and load counters, longest-prefix routing. Built once
 * from the config and shared by all workers; only the atomics change at run
 * time. Selection lives in balance.h, the health state machine in health.h. */
#ifndef RF_UPSTREAM_H
#define RF_UPSTREAM_H

#include <stdatomic.h>
#include <stdint.h>
#include "config.h"
#include "metrics.h"
#include "rl_clients.h"

struct upstream;

/* One backend. Every worker reads and writes the atomics below, so each
 * server sits on its own cache lines: a busy server's counters never slow
 * down a neighbour's. */
struct server {
	const struct rf_server_conf *conf;
	struct upstream *up;            /* the upstream it belongs to */
	uint32_t id;                    /* index over all upstreams' servers */
	uint32_t index;                 /* index within its upstream (bit in pick_ctx.tried) */
	uint64_t seed;                  /* hash of the address: ip_hash stays put across restarts */
	uint32_t max_conns;             /* most requests in flight (active); 0 = unlimited */
	_Atomic uint32_t weight;        /* configured weight, changeable at run time */

	/* Health (health.c): two CAS-updated words, see health.h for the layout.
	 * hw: up/down/ejected, drain, streaks, ejection level, deadline.
	 * cb: circuit breaker state, failures, trials, deadline. */
	_Alignas(64) _Atomic uint64_t hw;
	_Atomic uint64_t cb;
	_Atomic uint64_t hold_until;    /* Retry-After: no traffic before this monotonic ms */
	_Atomic uint64_t since_ms;      /* came back at this ms: slow start ramps from here */

	/* Load (balance.c), updated around every request by the worker running it. */
	_Atomic uint32_t active;        /* requests in flight, all workers */
	_Atomic uint64_t lat;           /* EWMA response time in us << 32 | last sample ms */
	_Atomic uint64_t win;           /* recent outcome window, see balance.c */

	/* Totals by outcome and the response-time histogram (metrics.c). */
	struct server_metrics m;
};

struct upstream {
	const struct rf_upstream_conf *conf;
	struct server *servers;         /* owned by the runtime */
	uint32_t nservers;
	uint32_t index;
	_Atomic uint32_t balance;       /* enum rf_balance; the admin API may change it */
	_Atomic uint32_t uneven;        /* servers' weights differ: round_robin weighs them */
	_Atomic uint32_t nejected;      /* servers in HEALTH_EJECTED, for max_ejection_percent */
	_Atomic uint64_t retry_win;     /* retry budget window, see balance.c */

	/* Queueing (queue.c): requests waiting for a server under max_conns.
	 * Written only when servers are full, so sharing lines costs little. */
	uint8_t queueing;               /* some server has max_conns */
	_Atomic uint32_t queued;        /* waiting now, all workers (bounded by queue_size) */
	_Atomic uint64_t queue_timeouts;    /* waited queue_timeout: 503 */
	_Atomic uint64_t queue_rejected;    /* queue full (or none): 503 at once */
	_Atomic uint64_t queue_served;      /* waited, then got a server */
	_Atomic uint64_t *qhead;        /* owned, RF_MAX_WORKERS when queueing: each worker's
					 * best waiting request as a queue key, 0 = none */
};

struct runtime {
	struct rf_config *cfg;          /* owned */
	struct upstream *ups;           /* owned, cfg->nupstreams entries */
	struct server *servers;         /* owned (aligned_alloc), all servers */
	uint32_t nservers;
	struct rl *rl;                  /* the process's rate limiter: outlives reloads */
	struct rl_route *route_rl;      /* owned: per route, used where route_own_rl[i] */
	uint8_t *route_own_rl;          /* owned: 1 = the route has its own limit (or none) */
	_Atomic uint32_t refs;          /* main's current ref + each worker + old users */
	uint32_t generation;            /* 1 for the first config, +1 per reload */
};

/* The runtime new requests use. Reloads publish a new one; workers switch
 * at the top of their loop and keep a reference on an old one while
 * requests started on it are still in flight. Comparing the pointer is
 * free (an acquire load); dereferencing it needs a reference taken with
 * runtime_current(): a publish may drop the last one at any moment. */
extern _Atomic(struct runtime *) rf_runtime;

/* The published runtime with a reference taken for the caller (NULL
 * before the first publish or after main cleared it). */
struct runtime *runtime_current(void);

/* Publish <rt>, taking over the caller's reference to it; returns the
 * runtime it replaced with the published reference, which the caller
 * drops (runtime_unref) when it is done with it. */
struct runtime *runtime_publish(struct runtime *rt);

/* A heap runtime for <cfg> (taken over) with one reference. NULL on
 * -ENOMEM (cfg is freed). */
struct runtime *runtime_new(struct rf_config *cfg, struct rl *rl, uint32_t generation);
void runtime_ref(struct runtime *rt);

/* Carry the running state of <old> into <rt> (not yet published): per
 * upstream by name, the strategy; per server by address, health, circuit,
 * response-time average, outcome window and totals, and the weight. A
 * strategy or weight the new file changed is the file's; otherwise a
 * change made through the admin API stays. Requests in flight on <old>
 * keep counting there. */
void runtime_inherit(struct runtime *rt, const struct runtime *old);

/* Drop a reference; the last one frees the runtime and its config. */
void runtime_unref(struct runtime *rt);

/* Build the runtime view of <cfg> (takes ownership of cfg).
 * Returns 0 or -ENOMEM. */
int runtime_init(struct runtime *rt, struct rf_config *cfg);
void runtime_free(struct runtime *rt);

/* The upstream serving <path>, or NULL when no route matches. */
struct upstream *route_lookup(const struct runtime *rt, const char *path,
			      uint32_t len);

/* The route serving <path> (longest prefix), or NULL. */
const struct rf_route_conf *route_find(const struct runtime *rt, const char *path,
				       uint32_t len);

/* The rate limit of <route>: its own, or NULL for the [ratelimit] one. */
const struct rl_route *route_limit(const struct runtime *rt,
				   const struct rf_route_conf *route);

/* Per-worker selection state for one upstream: never shared, so it needs no
 * atomics. A zeroed struct is valid (worker.c callocs an array of them);
 * balance_state_init() sizes the smooth-WRR array up front, otherwise the
 * first weighted pick allocates it. Free with balance_state_free(). */
struct balance_state {
	uint32_t rr;                    /* round-robin cursor, also rotates ties */
	uint32_t ncw;
	int64_t *cw;                    /* owned: smooth WRR current weights, ncw entries */
	uint64_t rng;                   /* xorshift64* state, 0 = not seeded yet */
};

#endif

/* balance.h - server selection for an upstream: round_robin, weighted
 * (smooth WRR), least_conn, ip_hash (weighted rendezvous hashing),
 * least_time, adaptive and random2; the shared per-server load counters
 * that feed them; the per-upstream retry budget.
 *
 * Per request: pick with balance_choose(), call balance_on_start() when the
 * request is bound to the server and balance_on_done() exactly once when
 * that attempt ends, whatever the reason. Only servers that health_admit()
 * lets through are picked: up, not ejected, not draining, circuit not open,
 * no Retry-After hold. Weights (times the slow-start factor) count in every
 * strategy but round_robin, which uses the factor only as a skip chance. */
#ifndef RF_BALANCE_H
#define RF_BALANCE_H

#include <stdint.h>
#include <sys/socket.h>
#include "health.h"
#include "upstream.h"

struct pick_ctx {
	uint64_t now_ms;        /* the worker's monotonic clock */
	uint64_t tried;         /* bit (index % 64) of every server already tried */
	uint64_t client_hash;   /* balance_hash_addr() of the client, for ip_hash */
	uint32_t full;          /* out: servers passed over for being at max_conns */
};

/* Size <bs> for <up> (smooth WRR weights) and seed its PRNG with <seed>
 * (the worker id spreads the workers' first picks).
 * Returns 0 or -ENOMEM. */
int balance_state_init(struct balance_state *bs, const struct upstream *up, uint32_t seed);
void balance_state_free(struct balance_state *bs);

/* The server for the next attempt of a request, or NULL when no untried
 * server may take traffic now: the caller queues the request when
 * ctx->full says servers were at max_conns, else answers 503 at once. A
 * server whose ejection or open circuit just ended is returned first, as
 * its probe. Never blocks, never allocates (except a weighted pick on a
 * balance_state that balance_state_init() did not size). */
struct server *balance_choose(struct upstream *up, struct balance_state *bs,
			      struct pick_ctx *ctx);

/* Around one attempt on <s>: on_start counts it as active (all workers see
 * it), and returns 0, or -EBUSY when another worker took the last slot
 * under max_conns since the pick (nothing is counted then); on_done ends
 * it with <latency_us> (send to full response, or to the failure) and an
 * enum bal_outcome, updates the response-time average, the failure window
 * and the health words. */
int balance_on_start(struct server *s);
void balance_on_done(struct server *s, uint32_t latency_us, int outcome, uint64_t now_ms);

/* Admin API. Each returns 0 or -EINVAL (unknown strategy, weight outside
 * 1..1000); the change applies to the next pick of every worker. */
int balance_set_strategy(struct upstream *up, uint32_t strategy);
int balance_set_weight(struct server *s, uint32_t weight);
/* Recompute the upstream's "weights differ" flag (after weights change). */
void balance_weights_changed(struct upstream *up);
int balance_set_drain(struct server *s, int on, uint64_t now_ms);
uint32_t balance_strategy(const struct upstream *up);

/* Retry budget: may a failed attempt on <up> be retried? Retries stay under
 * retry_budget percent of the attempts of the last 5-10 s, plus a floor of
 * BALANCE_RETRY_FLOOR so quiet upstreams can still retry. Counts the retry
 * when it answers 1; 0 means answer the client with the failure. */
#define BALANCE_RETRY_FLOOR 10
int balance_retry_allowed(struct upstream *up, uint64_t now_ms);

/* Load as the strategies see it: the response-time average, halved per
 * 10 s without a sample so a server once slow is tried again (0 = never
 * measured); and the failure share of the last 5-10 s, in 1/1000. */
uint32_t balance_ewma_us(const struct server *s, uint64_t now_ms);
uint32_t balance_fail_permille(const struct server *s, uint64_t now_ms);
/* Attempts completed on <s> in the last 5-10 s. */
uint32_t balance_recent_total(const struct server *s, uint64_t now_ms);

/* Stable 64-bit hashes: of a client's IP address (port ignored; an
 * IPv4-mapped IPv6 address hashes like the IPv4 one), of any bytes. */
uint64_t balance_hash_addr(const struct sockaddr *sa);
uint64_t balance_hash_bytes(const void *p, size_t n);

#endif

/* health.h - per-server health: a state machine packed into two atomic
 * words that any worker updates by compare-and-swap, fed by active checks,
 * passive results from real traffic and the admin API.
 *
 * hw (health word):  bits  0-1  state (enum health_state)
 *                    bit   2    draining (admin: no new traffic)
 *                    bit   3    a half-open probe of an ejected server is out
 *                    bits  4-10 active-check streak: fails while up, passes while down
 *                    bits 11-16 consecutive passive failures
 *                    bits 17-19 ejection level: the next ejection lasts eject_time << level
 *                    bits 20-31 generation, +1 on every state change
 *                    bits 32-63 deadline, monotonic ms mod 2^32: end of the ejection
 *                               (or of a probe's grace) while ejected, the next
 *                               ejection-level decay while up
 * cb (circuit word): bits  0-1  circuit state (enum circuit_state)
 *                    bits  2-7  consecutive failures
 *                    bits  8-11 trial requests let through while half-open
 *                    bits 12-31 generation
 *                    bits 32-63 deadline: end of the open period, or of the
 *                               trials' grace while half-open
 *
 * Two words rather than one so that each deadline keeps 32 bits of ms: a
 * deadline never lies more than an hour ahead, so a comparison that wraps
 * (an upstream idle for 49 days) is recognised and treated as expired.
 * Ejection and the circuit breaker are independent: the first respects
 * max_ejection_percent, the second protects one server unconditionally.
 * Every state change is made by exactly one CAS, and its winner logs it. */
#ifndef RF_HEALTH_H
#define RF_HEALTH_H

#include <stdint.h>
#include "upstream.h"

enum health_state {
	HEALTH_UP = 0,          /* takes traffic */
	HEALTH_DOWN,            /* active checks failed <fall> times in a row */
	HEALTH_EJECTED,         /* passive failures: out until the deadline, then probed */
};

enum circuit_state {
	CIRCUIT_CLOSED = 0,     /* normal */
	CIRCUIT_OPEN,           /* circuit_failures in a row: no traffic until the deadline */
	CIRCUIT_HALF_OPEN,      /* circuit_half_open_requests trials decide */
};

/* How a request to a server ended, for balance_on_done()/health_passive(). */
enum bal_outcome {
	BAL_OK = 0,             /* a response other than 5xx */
	BAL_5XX,                /* a 5xx response: a failure only with fail_on_5xx */
	BAL_CONNECT_FAIL,       /* connect refused, unreachable or timed out */
	BAL_RESET,              /* reset or closed before the response was complete */
	BAL_TIMEOUT,            /* response_timeout expired */
	BAL_ABORT,              /* the client went away: says nothing about the server */
};

/* What health_admit() decided for one candidate. */
enum health_admit {
	HEALTH_SKIP = 0,        /* no traffic now */
	HEALTH_TAKE,            /* may take a request */
	HEALTH_PROBE,           /* this call claimed a probe or trial: send it a request */
};

/* A consistent snapshot for the admin API, metrics and tests. */
struct health_view {
	enum health_state state;
	enum circuit_state circuit;
	int draining;
	int held;               /* a Retry-After hold is in force */
	uint32_t gen;           /* health word generation */
	uint32_t streak;        /* active checks: fails while up, passes while down */
	uint32_t fails;         /* consecutive passive failures */
	uint32_t eject_level;
	uint32_t weight_permille;   /* slow start factor, 1000 = full */
	uint32_t active;
	uint32_t ewma_us;
};

/* Ejection intervals double per repeat up to this; holds are capped too. */
#define HEALTH_EJECT_MAX_MS 300000u
#define HEALTH_HOLD_MAX_MS  3600000u

/* Reset <s> to up, closed, not draining. Called by runtime_init(). */
void health_init(struct server *s);

/* May <s> take a request at <now_ms>? Checks state, drain, circuit and
 * Retry-After hold. When the ejection or the open period is over, one
 * caller claims the probe (or one of the trials) and gets HEALTH_PROBE;
 * a claim whose result never comes back expires after its grace time.
 * Returns an enum health_admit. */
int health_admit(struct server *s, uint64_t now_ms);

/* A reload or services change: <to> (same address, new runtime) takes over
 * the health and circuit state of <from>. Returns 1 when it is ejected. */
int health_inherit(struct server *to, const struct server *from);

/* Passive result of a request that <s> served (enum bal_outcome): feeds
 * outlier ejection and the circuit breaker. A success on a healthy server
 * only loads the words. */
void health_passive(struct server *s, int outcome, uint64_t now_ms);

/* Active check result (<ok>: a 2xx/3xx answer in time): <fall> failures in a
 * row take the server down, <rise> passes bring it back up. */
void health_check_result(struct server *s, int ok, uint64_t now_ms);

/* Admin drain: no new traffic while <on>, requests in flight finish.
 * Returns 1 when the flag changed, 0 when it already had that value. */
int health_set_drain(struct server *s, int on, uint64_t now_ms);

/* A 429/503 from <s> carried Retry-After: no traffic before <until_ms>
 * (capped at HEALTH_HOLD_MAX_MS from <now_ms>); a later hold wins. */
void health_hold(struct server *s, uint64_t until_ms, uint64_t now_ms);

/* Slow start: the share of its weight <s> gets at <now_ms>, in 1/1000,
 * rising linearly from 1 to 1000 over slow_start after it came back. */
uint32_t health_weight_permille(const struct server *s, uint64_t now_ms);

void health_view(const struct server *s, uint64_t now_ms, struct health_view *v);
const char *health_state_str(int state);
const char *circuit_state_str(int state);
const char *bal_outcome_str(int outcome);

/* Does <outcome> count against the server (fail_on_5xx decides for 5xx)? */
int health_is_failure(const struct server *s, int outcome);

#endif

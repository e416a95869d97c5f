/* health.c - the per-server health state machine (see health.h for the word
 * layout): active checks, outlier ejection with growing intervals and
 * max_ejection_percent, the circuit breaker, drain, Retry-After holds and
 * the slow-start factor. Every transition is one CAS; its winner logs it. */
#include <errno.h>
#include "common.h"
#include "health.h"
#include "log.h"

/* No deadline is ever set further ahead than this (ejections are capped at
 * 5 min, circuit_open_time at 30 min): a deadline that seems further away
 * is a 32-bit wrap after a long idle spell, and has long passed. */
#define DL_HORIZON_MS 3600000u

#define HW_STATE_SH   0
#define HW_STATE_BITS 2
#define HW_DRAIN      (1ull << 2)
#define HW_PROBING    (1ull << 3)
#define HW_STREAK_SH  4
#define HW_STREAK_BITS 7
#define HW_FAILS_SH   11
#define HW_FAILS_BITS 6
#define HW_LEVEL_SH   17
#define HW_LEVEL_BITS 3
#define HW_GEN_SH     20
#define HW_GEN_BITS   12

#define CB_STATE_SH   0
#define CB_STATE_BITS 2
#define CB_FAILS_SH   2
#define CB_FAILS_BITS 6
#define CB_TRIALS_SH  8
#define CB_TRIALS_BITS 4
#define CB_GEN_SH     12
#define CB_GEN_BITS   20

#define DL_SH         32

static inline uint32_t fget(uint64_t w, unsigned sh, unsigned bits)
{
	return (uint32_t)(w >> sh) & ((1u << bits) - 1);
}

/* Store <v> in a field, saturating at the field's maximum. */
static inline uint64_t fset(uint64_t w, unsigned sh, unsigned bits, uint32_t v)
{
	uint64_t max = (1ull << bits) - 1, m = max << sh;

	return (w & ~m) | ((v > max ? max : (uint64_t)v) << sh);
}

/* Generations wrap: they only tell observers "something changed". */
static inline uint64_t bump_gen(uint64_t w, unsigned sh, unsigned bits)
{
	uint64_t m = ((1ull << bits) - 1) << sh;

	return (w & ~m) | ((w + (1ull << sh)) & m);
}

static inline uint64_t dl_set(uint64_t w, uint64_t ms)
{
	return (w & 0xffffffffull) | ((uint64_t)(uint32_t)ms << DL_SH);
}

/* Has the deadline in <w> passed at <now>? */
static inline int dl_passed(uint64_t w, uint64_t now)
{
	uint32_t left = (uint32_t)(w >> DL_SH) - (uint32_t)now;

	return left == 0 || left > DL_HORIZON_MS;
}

#define HW_STATE(w)  fget(w, HW_STATE_SH, HW_STATE_BITS)
#define HW_STREAK(w) fget(w, HW_STREAK_SH, HW_STREAK_BITS)
#define HW_FAILS(w)  fget(w, HW_FAILS_SH, HW_FAILS_BITS)
#define HW_LEVEL(w)  fget(w, HW_LEVEL_SH, HW_LEVEL_BITS)
#define HW_GEN(w)    fget(w, HW_GEN_SH, HW_GEN_BITS)
#define CB_STATE(w)  fget(w, CB_STATE_SH, CB_STATE_BITS)
#define CB_FAILS(w)  fget(w, CB_FAILS_SH, CB_FAILS_BITS)
#define CB_TRIALS(w) fget(w, CB_TRIALS_SH, CB_TRIALS_BITS)

/* A state change: new state, generation + 1. */
static inline uint64_t hw_state(uint64_t w, uint32_t st)
{
	return bump_gen(fset(w, HW_STATE_SH, HW_STATE_BITS, st), HW_GEN_SH, HW_GEN_BITS);
}

static inline uint64_t cb_state(uint64_t w, uint32_t st)
{
	return bump_gen(fset(w, CB_STATE_SH, CB_STATE_BITS, st), CB_GEN_SH, CB_GEN_BITS);
}

static inline int cas(_Atomic uint64_t *p, uint64_t *old, uint64_t n)
{
	return atomic_compare_exchange_weak_explicit(p, old, n, memory_order_acq_rel,
						     memory_order_relaxed);
}

/* One line per state change: what happened, to which server, and why. */
#define hlog(lvl, s, what, fmt, ...) do { \
	if (rf_log_level >= (lvl)) \
		rf_log((lvl), "msg=\"" what "\" upstream=%s server=%s " fmt, \
		       (s)->up->conf->name, (s)->conf->addr.text, __VA_ARGS__); \
} while (0)

static const char *const state_names[] = { "up", "down", "ejected" };
static const char *const circuit_names[] = { "closed", "open", "half_open" };
static const char *const outcome_names[] = {
	"ok", "5xx", "connect_fail", "reset", "timeout", "abort",
};

const char *health_state_str(int state)
{
	return state >= 0 && (size_t)state < ARRAY_SIZE(state_names) ? state_names[state] : "?";
}

const char *circuit_state_str(int state)
{
	return state >= 0 && (size_t)state < ARRAY_SIZE(circuit_names) ? circuit_names[state] : "?";
}

const char *bal_outcome_str(int outcome)
{
	return outcome >= 0 && (size_t)outcome < ARRAY_SIZE(outcome_names) ?
		outcome_names[outcome] : "?";
}

void health_init(struct server *s)
{
	atomic_init(&s->hw, 0);
	atomic_init(&s->cb, 0);
	atomic_init(&s->hold_until, 0);
	atomic_init(&s->since_ms, 0);
}

int health_inherit(struct server *to, const struct server *from)
{
	uint64_t h = atomic_load(&from->hw) & ~HW_PROBING;
	uint64_t cb = fset(atomic_load(&from->cb), CB_TRIALS_SH, CB_TRIALS_BITS, 0);

	/* probes and trial requests in flight finish on the old server: the
	 * new one starts without them, so it is never waiting for them */
	atomic_store(&to->hw, h);
	atomic_store(&to->cb, cb);
	atomic_store(&to->hold_until, atomic_load(&from->hold_until));
	atomic_store(&to->since_ms, atomic_load(&from->since_ms));
	return HW_STATE(h) == HEALTH_EJECTED;
}

int health_is_failure(const struct server *s, int outcome)
{
	switch (outcome) {
	case BAL_5XX:
		return s->up->conf->fail_on_5xx != 0;
	case BAL_CONNECT_FAIL:
	case BAL_RESET:
	case BAL_TIMEOUT:
		return 1;
	default:
		return 0;
	}
}

/* The server is back: slow start measures its ramp from here. */
static void mark_back(struct server *s, uint64_t now)
{
	atomic_store_explicit(&s->since_ms, now ? now : 1, memory_order_relaxed);
}

/* Length of an ejection at <level>: eject_time doubled per level, capped. */
static uint64_t eject_ms(const struct rf_upstream_conf *uc, uint32_t level)
{
	uint64_t ms = (uint64_t)uc->eject_time_ms << level;

	return RF_MIN(ms, (uint64_t)HEALTH_EJECT_MAX_MS);
}

/* Take one of the upstream's ejection slots (max_ejection_percent of its
 * servers, rounded down). Returns 1 when taken. */
static int eject_reserve(struct upstream *up)
{
	uint32_t max = (uint32_t)((uint64_t)up->nservers * up->conf->max_ejection_percent / 100);
	uint32_t n = atomic_load_explicit(&up->nejected, memory_order_relaxed);

	do {
		if (n >= max)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&up->nejected, &n, n + 1,
							memory_order_acq_rel, memory_order_relaxed));
	return 1;
}

static void eject_release(struct upstream *up)
{
	atomic_fetch_sub_explicit(&up->nejected, 1, memory_order_acq_rel);
}

/* Claim the half-open probe of an ejected server whose ejection is over.
 * Returns 1 when the caller holds the probe (or the server is up again),
 * 0 when someone else has it or the server is out. */
static int probe_claim(struct server *s, uint64_t now)
{
	const struct rf_upstream_conf *uc = s->up->conf;
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire), n;

	for (;;) {
		if (HW_STATE(h) == HEALTH_UP)
			return 1;
		if (HW_STATE(h) != HEALTH_EJECTED || !dl_passed(h, now) || (h & HW_DRAIN))
			return 0;
		/* the grace lets one probe out per eject_time if results get lost */
		n = dl_set(h | HW_PROBING, now + uc->eject_time_ms);
		if (cas(&s->hw, &h, n))
			break;
	}
	hlog(LOG_INFO, s, "server probe", "reason=\"ejection over\" level=%u", HW_LEVEL(h));
	return 1;
}

/* Undo a probe claim that the caller cannot use after all. */
static void probe_release(struct server *s, uint64_t now)
{
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire);

	while (HW_STATE(h) == HEALTH_EJECTED && (h & HW_PROBING))
		if (cas(&s->hw, &h, dl_set(h & ~HW_PROBING, now)))
			break;
}

/* Claim a trial request of a circuit whose open period is over.
 * Returns 1 when the caller may send (closed, or a trial claimed). */
static int trial_claim(struct server *s, uint64_t now)
{
	const struct rf_upstream_conf *uc = s->up->conf;
	uint64_t c = atomic_load_explicit(&s->cb, memory_order_acquire), n;
	uint32_t max = uc->circuit_half_open_requests;

	for (;;) {
		switch (CB_STATE(c)) {
		case CIRCUIT_CLOSED:
			return 1;
		case CIRCUIT_OPEN:
			if (!dl_passed(c, now))
				return 0;
			n = cb_state(c, CIRCUIT_HALF_OPEN);
			n = dl_set(fset(n, CB_TRIALS_SH, CB_TRIALS_BITS, 1), now + uc->circuit_open_time_ms);
			break;
		default:
			if (CB_TRIALS(c) < max)
				n = fset(c, CB_TRIALS_SH, CB_TRIALS_BITS, CB_TRIALS(c) + 1);
			else if (dl_passed(c, now))   /* the trials never reported: new ones */
				n = dl_set(fset(c, CB_TRIALS_SH, CB_TRIALS_BITS, 1),
					   now + uc->circuit_open_time_ms);
			else
				return 0;
			break;
		}
		if (cas(&s->cb, &c, n))
			break;
	}
	if (CB_STATE(c) == CIRCUIT_OPEN)
		hlog(LOG_INFO, s, "circuit half-open", "reason=\"open for %u ms\" trials=%u",
		     uc->circuit_open_time_ms, max);
	return 1;
}

int health_admit(struct server *s, uint64_t now)
{
	uint64_t h, c;
	int probe, trial;

	if (atomic_load_explicit(&s->hold_until, memory_order_relaxed) > now)
		return HEALTH_SKIP;
	h = atomic_load_explicit(&s->hw, memory_order_acquire);
	c = atomic_load_explicit(&s->cb, memory_order_acquire);
	if ((h & HW_DRAIN) || HW_STATE(h) == HEALTH_DOWN)
		return HEALTH_SKIP;
	probe = HW_STATE(h) == HEALTH_EJECTED;
	if (probe && !dl_passed(h, now))
		return HEALTH_SKIP;
	trial = CB_STATE(c) != CIRCUIT_CLOSED;
	if (trial && !dl_passed(c, now) &&
	    (CB_STATE(c) == CIRCUIT_OPEN || CB_TRIALS(c) >= s->up->conf->circuit_half_open_requests))
		return HEALTH_SKIP;
	if (likely(!probe && !trial))
		return HEALTH_TAKE;
	/* The single probe is the scarcer claim: take it first, so that two
	 * workers racing for a trial rarely strand a trial they cannot use. */
	if (probe && !probe_claim(s, now))
		return HEALTH_SKIP;
	if (trial && !trial_claim(s, now)) {
		if (probe)
			probe_release(s, now);
		return HEALTH_SKIP;
	}
	return HEALTH_PROBE;
}

/* Outlier ejection side of a passive result. */
static void hw_passive(struct server *s, int fail, int outcome, uint64_t now)
{
	const struct rf_upstream_conf *uc = s->up->conf;
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire), n;
	uint32_t st, fails, level;
	int reserved = 0, denied = 0;

	for (;;) {
		st = HW_STATE(h);
		level = HW_LEVEL(h);
		fails = fail ? HW_FAILS(h) + 1 : 0;
		n = fset(h, HW_FAILS_SH, HW_FAILS_BITS, fails);
		if (!fail && st == HEALTH_EJECTED) {
			if (!(h & HW_PROBING))
				return;   /* sent before the ejection: says little */
			n = hw_state(n & ~HW_PROBING, HEALTH_UP);
			n = dl_set(n, now + eject_ms(uc, level ? level - 1 : 0));
		} else if (!fail && st == HEALTH_UP && level && dl_passed(h, now)) {
			/* healthy for as long as its last ejection lasted: forgive one level */
			n = fset(n, HW_LEVEL_SH, HW_LEVEL_BITS, level - 1);
			n = dl_set(n, now + eject_ms(uc, level > 1 ? level - 2 : 0));
		} else if (fail && ((st == HEALTH_UP && uc->eject_after && fails >= uc->eject_after &&
				     !denied) || (st == HEALTH_EJECTED && (h & HW_PROBING)))) {
			if (st == HEALTH_UP && !reserved && !(reserved = eject_reserve(s->up))) {
				denied = 1;   /* max_ejection_percent: keep it, count on */
				continue;
			}
			n = hw_state(n & ~HW_PROBING, HEALTH_EJECTED);
			n = fset(n, HW_LEVEL_SH, HW_LEVEL_BITS, level + 1);
			n = dl_set(n, now + eject_ms(uc, level));
		}
		if (n == h)
			break;
		if (cas(&s->hw, &h, n))
			break;
	}
	if (reserved && !(st == HEALTH_UP && HW_STATE(n) == HEALTH_EJECTED))
		eject_release(s->up);
	if (n == h || HW_GEN(n) == HW_GEN(h))
		return;   /* counters only */
	if (HW_STATE(n) == HEALTH_UP) {
		mark_back(s, now);
		eject_release(s->up);
		hlog(LOG_INFO, s, "server up", "reason=\"probe succeeded\" was=ejected level=%u",
		     level);
	} else if (st == HEALTH_UP) {
		hlog(LOG_WARN, s, "server ejected",
		     "reason=\"%u consecutive failures, last %s\" for_ms=%llu level=%u",
		     fails, bal_outcome_str(outcome),
		     (unsigned long long)eject_ms(uc, level), level + 1);
	} else {
		/* ejected -> ejected is still a change: longer, and worth a line */
		hlog(LOG_WARN, s, "server ejected", "reason=\"probe failed: %s\" for_ms=%llu level=%u",
		     bal_outcome_str(outcome), (unsigned long long)eject_ms(uc, level), level + 1);
	}
}

/* Circuit breaker side of a passive result. */
static void cb_passive(struct server *s, int fail, int outcome, uint64_t now)
{
	const struct rf_upstream_conf *uc = s->up->conf;
	uint64_t c = atomic_load_explicit(&s->cb, memory_order_acquire), n;
	uint32_t st, fails;

	for (;;) {
		st = CB_STATE(c);
		fails = fail ? CB_FAILS(c) + 1 : 0;
		n = fset(c, CB_FAILS_SH, CB_FAILS_BITS, fails);
		if (!fail && st == CIRCUIT_HALF_OPEN) {
			n = fset(cb_state(n, CIRCUIT_CLOSED), CB_TRIALS_SH, CB_TRIALS_BITS, 0);
		} else if (fail && (st == CIRCUIT_HALF_OPEN || (st == CIRCUIT_CLOSED &&
			   uc->circuit_failures && fails >= uc->circuit_failures))) {
			n = fset(cb_state(n, CIRCUIT_OPEN), CB_TRIALS_SH, CB_TRIALS_BITS, 0);
			n = dl_set(n, now + uc->circuit_open_time_ms);
		}
		if (n == c)
			return;
		if (cas(&s->cb, &c, n))
			break;
	}
	if (CB_STATE(n) == st)
		return;
	if (CB_STATE(n) == CIRCUIT_CLOSED) {
		mark_back(s, now);
		hlog(LOG_INFO, s, "circuit closed", "reason=\"trial request succeeded\"%s", "");
	} else if (st == CIRCUIT_HALF_OPEN) {
		hlog(LOG_WARN, s, "circuit open", "reason=\"trial request failed: %s\" for_ms=%u",
		     bal_outcome_str(outcome), uc->circuit_open_time_ms);
	} else {
		hlog(LOG_WARN, s, "circuit open",
		     "reason=\"%u consecutive failures, last %s\" for_ms=%u",
		     fails, bal_outcome_str(outcome), uc->circuit_open_time_ms);
	}
}

void health_passive(struct server *s, int outcome, uint64_t now)
{
	int fail;

	if (outcome == BAL_ABORT)
		return;
	fail = health_is_failure(s, outcome);
	hw_passive(s, fail, outcome, now);
	cb_passive(s, fail, outcome, now);
}

void health_check_result(struct server *s, int ok, uint64_t now)
{
	const struct rf_upstream_conf *uc = s->up->conf;
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire), n;
	uint32_t st, streak;

	for (;;) {
		st = HW_STATE(h);
		/* down counts passes towards rise; up or ejected count fails towards fall */
		streak = (st == HEALTH_DOWN) == !!ok ? HW_STREAK(h) + 1 : 0;
		n = fset(h, HW_STREAK_SH, HW_STREAK_BITS, streak);
		if (st == HEALTH_DOWN && streak >= uc->rise) {
			n = hw_state(fset(n, HW_STREAK_SH, HW_STREAK_BITS, 0), HEALTH_UP);
			n = fset(n, HW_FAILS_SH, HW_FAILS_BITS, 0);
			/* the ejection level decays from now, as after a probe */
			n = dl_set(n, now + eject_ms(uc, HW_LEVEL(n) ? HW_LEVEL(n) - 1 : 0));
		} else if (st != HEALTH_DOWN && streak >= uc->fall) {
			n = hw_state(fset(n, HW_STREAK_SH, HW_STREAK_BITS, 0), HEALTH_DOWN);
			n &= ~HW_PROBING;
		}
		if (n == h)
			return;
		if (cas(&s->hw, &h, n))
			break;
	}
	if (HW_STATE(n) == st)
		return;
	if (st == HEALTH_EJECTED)
		eject_release(s->up);
	if (HW_STATE(n) == HEALTH_UP) {
		mark_back(s, now);
		hlog(LOG_INFO, s, "server up", "reason=\"%u consecutive health checks passed\"",
		     streak);
	} else {
		hlog(LOG_WARN, s, "server down",
		     "reason=\"%u consecutive health checks failed\" was=%s", streak,
		     health_state_str((int)st));
	}
}

int health_set_drain(struct server *s, int on, uint64_t now)
{
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire), n;

	do {
		if (!!(h & HW_DRAIN) == !!on)
			return 0;
		n = bump_gen(h ^ HW_DRAIN, HW_GEN_SH, HW_GEN_BITS);
	} while (!cas(&s->hw, &h, n));
	if (on) {
		hlog(LOG_INFO, s, "server draining", "reason=\"admin\" active=%u",
		     atomic_load_explicit(&s->active, memory_order_relaxed));
	} else {
		mark_back(s, now);
		hlog(LOG_INFO, s, "server drain ended", "reason=\"admin\"%s", "");
	}
	return 1;
}

void health_hold(struct server *s, uint64_t until, uint64_t now)
{
	uint64_t old = atomic_load_explicit(&s->hold_until, memory_order_relaxed);

	until = RF_MIN(until, now + HEALTH_HOLD_MAX_MS);
	do {
		if (old >= until)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&s->hold_until, &old, until,
							memory_order_acq_rel, memory_order_relaxed));
	if (old <= now)
		hlog(LOG_INFO, s, "server held", "reason=\"Retry-After\" for_ms=%llu",
		     (unsigned long long)(until - now));
}

uint32_t health_weight_permille(const struct server *s, uint64_t now)
{
	uint64_t since = atomic_load_explicit(&s->since_ms, memory_order_relaxed);
	uint64_t ss = s->up->conf->slow_start_ms, el;

	if (!ss || !since || now >= since + ss)
		return 1000;
	el = now > since ? now - since : 0;
	return (uint32_t)RF_MAX(1, el * 1000 / ss);
}

void health_view(const struct server *s, uint64_t now, struct health_view *v)
{
	uint64_t h = atomic_load_explicit(&s->hw, memory_order_acquire);
	uint64_t c = atomic_load_explicit(&s->cb, memory_order_acquire);

	memset(v, 0, sizeof(*v));
	v->state = (enum health_state)HW_STATE(h);
	v->circuit = (enum circuit_state)CB_STATE(c);
	v->draining = !!(h & HW_DRAIN);
	v->held = atomic_load_explicit(&s->hold_until, memory_order_relaxed) > now;
	v->gen = HW_GEN(h);
	v->streak = HW_STREAK(h);
	v->fails = HW_FAILS(h);
	v->eject_level = HW_LEVEL(h);
	v->weight_permille = health_weight_permille(s, now);
	v->active = atomic_load_explicit(&s->active, memory_order_relaxed);
	v->ewma_us = (uint32_t)(atomic_load_explicit(&s->lat, memory_order_relaxed) >> 32);
}

/* balance.c - the selection strategies (see balance.h), the shared load
 * counters behind them (active requests, response-time EWMA, a two-bucket
 * outcome window) and the retry budget. Counters are updated by whichever
 * worker runs the request; per-worker state (cursors, smooth-WRR weights,
 * PRNG) lives in struct balance_state and needs no atomics. */
#include <errno.h>
#include <netinet/in.h>
#include "balance.h"
#include "common.h"
#include "log.h"

#define EWMA_STALE_MS 10000u    /* no sample for this long: the average counts half */
#define WIN_MS        5000u     /* outcome and retry windows: current + previous bucket */
#define WIN_MAX       4095u     /* 12-bit counts; halved together to keep the ratio */

/* ---- hashing and randomness ---- */

/* splitmix64's finaliser: every input bit flips about half the output bits. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t balance_hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a, then mixed */
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return mix64(h ^ n);
}

uint64_t balance_hash_addr(const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET)
		return balance_hash_bytes(&((const struct sockaddr_in *)sa)->sin_addr, 4);
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (!memcmp(a, v4mapped, sizeof(v4mapped)))
			return balance_hash_bytes(a + 12, 4);
		return balance_hash_bytes(a, 16);
	}
	return balance_hash_bytes(&sa->sa_family, sizeof(sa->sa_family));
}

/* xorshift64*: per worker, so no atomics; quality is ample for choosing. */
static uint64_t rnd(struct balance_state *bs)
{
	uint64_t x = bs->rng;

	if (unlikely(!x))
		x = mix64(bs->rr + (uint64_t)(uintptr_t)bs) | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	bs->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* -ln(u) for u = the top 53 bits of <h> as a fraction in (0, 1), without
 * libm: split off the binary exponent, then ln of the mantissa (reduced to
 * [0.707, 1.414]) by the atanh series, good to ~1e-9. Rendezvous hashing
 * only compares these, so that is plenty. */
static double neg_ln_unit(uint64_t h)
{
	uint64_t m = (h >> 11) | 1;             /* 1 .. 2^53 - 1 */
	int e = 63 - __builtin_clzll(m);        /* m = mant * 2^e, mant in [1, 2) */
	double mant = (double)m / (double)(1ull << e), s, s2, ln;

	if (mant > 1.4142135623730951) {
		mant *= 0.5;
		e++;
	}
	s = (mant - 1) / (mant + 1);
	s2 = s * s;
	ln = 2 * s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 +
		s2 / 11)))));
	/* u = mant * 2^(e - 53): -ln u = (53 - e) ln 2 - ln mant */
	return (53 - e) * 0.6931471805599453 - ln;
}

/* ---- shared load counters ---- */

uint32_t balance_ewma_us(const struct server *s, uint64_t now)
{
	uint64_t v = atomic_load_explicit(&s->lat, memory_order_relaxed);
	uint32_t e = (uint32_t)(v >> 32), age = (uint32_t)now - (uint32_t)v;

	if (!e)
		return 0;
	age /= EWMA_STALE_MS;
	return age >= 32 ? 0 : e >> age;
}

/* A relaxed load and store, not a CAS: two workers finishing at once may
 * lose one sample, which an average shrugs off, and the hot path saves a
 * locked instruction. Weight 1/8, like TCP's srtt; 0 stays "no sample". */
static void ewma_add(struct server *s, uint32_t us, uint64_t now)
{
	uint64_t v = atomic_load_explicit(&s->lat, memory_order_relaxed);
	int64_t e = (int64_t)(v >> 32);

	e = e ? e + ((int64_t)us - e) / 8 : us;
	if (e <= 0)
		e = 1;
	atomic_store_explicit(&s->lat, ((uint64_t)e << 32) | (uint32_t)now, memory_order_relaxed);
}

/* Outcome window word: epoch (now / WIN_MS, 16 bits) << 48 | current bucket
 * total << 36 | current failures << 24 | previous total << 12 | previous
 * failures. */
#define W_EP(v)  ((uint32_t)((v) >> 48))
#define W_CT(v)  ((uint32_t)((v) >> 36) & WIN_MAX)
#define W_CF(v)  ((uint32_t)((v) >> 24) & WIN_MAX)
#define W_PT(v)  ((uint32_t)((v) >> 12) & WIN_MAX)
#define W_PF(v)  ((uint32_t)(v) & WIN_MAX)

static inline uint64_t w_pack(uint32_t ep, uint32_t ct, uint32_t cf, uint32_t pt, uint32_t pf)
{
	return (uint64_t)(ep & 0xffff) << 48 | (uint64_t)ct << 36 | (uint64_t)cf << 24 |
		(uint64_t)pt << 12 | pf;
}

/* Buckets between the word's epoch and <ep>: 0 same, 1 the next, 2 older.
 * Workers' clocks differ by a loop iteration, so a word slightly ahead of
 * the caller counts as the same bucket. */
static inline int w_age(uint32_t word_ep, uint32_t ep)
{
	uint16_t d = (uint16_t)(ep - word_ep);

	return d == 0 || d >= 0x8000 ? 0 : d == 1 ? 1 : 2;
}

static void win_add(struct server *s, int fail, uint64_t now)
{
	uint32_t ep = (uint32_t)(now / WIN_MS) & 0xffff, ct, cf, pt, pf;
	uint64_t v = atomic_load_explicit(&s->win, memory_order_relaxed), n;

	do {
		ct = W_CT(v), cf = W_CF(v), pt = W_PT(v), pf = W_PF(v);
		switch (w_age(W_EP(v), ep)) {
		case 0:
			ep = W_EP(v);
			break;
		case 1:
			pt = ct, pf = cf, ct = cf = 0;
			break;
		default:
			pt = pf = ct = cf = 0;
			break;
		}
		if (ct == WIN_MAX)
			ct >>= 1, cf >>= 1;
		n = w_pack(ep, ct + 1, cf + !!fail, pt, pf);
	} while (!atomic_compare_exchange_weak_explicit(&s->win, &v, n, memory_order_relaxed,
							memory_order_relaxed));
}

static void win_read(const struct server *s, uint64_t now, uint32_t *total, uint32_t *fails)
{
	uint64_t v = atomic_load_explicit(&s->win, memory_order_relaxed);

	switch (w_age(W_EP(v), (uint32_t)(now / WIN_MS) & 0xffff)) {
	case 0:
		*total = W_CT(v) + W_PT(v);
		*fails = W_CF(v) + W_PF(v);
		break;
	case 1:
		*total = W_CT(v);
		*fails = W_CF(v);
		break;
	default:
		*total = *fails = 0;
		break;
	}
}

uint32_t balance_fail_permille(const struct server *s, uint64_t now)
{
	uint32_t t, f;

	win_read(s, now, &t, &f);
	return t ? f * 1000 / t : 0;
}

uint32_t balance_recent_total(const struct server *s, uint64_t now)
{
	uint32_t t, f;

	win_read(s, now, &t, &f);
	return t;
}

int balance_on_start(struct server *s)
{
	uint32_t a;

	if (likely(!s->max_conns)) {
		atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
		return 0;
	}
	/* a CAS, not an add: two workers must not both take the last slot */
	a = atomic_load_explicit(&s->active, memory_order_relaxed);
	do {
		if (a >= s->max_conns)
			return -EBUSY;
	} while (!atomic_compare_exchange_weak_explicit(&s->active, &a, a + 1,
							memory_order_relaxed, memory_order_relaxed));
	return 0;
}

void balance_on_done(struct server *s, uint32_t latency_us, int outcome, uint64_t now)
{
	uint32_t prev = atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);

	if (unlikely(!prev)) {
		/* an on_done without its on_start: undo rather than wrap to 4 billion */
		atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
		log_error("msg=\"balance_on_done without balance_on_start\" server=%s",
			  s->conf->addr.text);
	}
	if (outcome == BAL_ABORT)
		return;
	/* A timeout's latency is the time waited: least_time should feel it. */
	if (outcome == BAL_OK || outcome == BAL_5XX || outcome == BAL_TIMEOUT)
		ewma_add(s, latency_us, now);
	/* adaptive steers away from 5xx even when fail_on_5xx does not eject */
	win_add(s, outcome != BAL_OK, now);
	health_passive(s, outcome, now);
}

/* ---- strategies ---- */

/* Weight times the slow-start factor, in 1/1000 units: 1 .. 10^6. */
static inline uint64_t eff_weight(const struct server *s, uint64_t now)
{
	return (uint64_t)atomic_load_explicit(&s->weight, memory_order_relaxed) *
		health_weight_permille(s, now);
}

static inline uint32_t active_of(const struct server *s)
{
	return atomic_load_explicit(&s->active, memory_order_relaxed);
}

static inline int was_tried(struct pick_ctx *ctx, uint32_t i)
{
	return (int)(ctx->tried >> (i % 64)) & 1;
}

/* May server <i> of <up> take this pick? Not tried yet, a free slot under
 * max_conns, and health_admit() agrees. The slot is looked at first so a
 * full server never claims a probe; it is counted in ctx->full, which
 * tells the caller to queue the request rather than fail it. Returns an
 * enum health_admit. */
static inline int eligible(struct upstream *up, uint32_t i, struct pick_ctx *ctx)
{
	struct server *s = &up->servers[i];

	if (was_tried(ctx, i))
		return HEALTH_SKIP;
	if (s->max_conns && active_of(s) >= s->max_conns) {
		ctx->full++;
		return HEALTH_SKIP;
	}
	return health_admit(s, ctx->now_ms);
}

/* Next index after <i> among <n>, without a division per step. */
static inline uint32_t next_idx(uint32_t i, uint32_t n)
{
	return ++i == n ? 0 : i;
}

/* Exact rotation. A server in slow start takes its turn only with the
 * probability of its factor, so it still ramps up. */
static struct server *pick_rr(struct upstream *up, struct balance_state *bs,
			      struct pick_ctx *ctx)
{
	uint32_t n = up->nservers, i = bs->rr % n, k, pm;
	struct server *s, *slow = NULL;
	int a;

	for (k = 0; k < n; k++, i = next_idx(i, n)) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		pm = health_weight_permille(s, ctx->now_ms);
		if (a == HEALTH_TAKE && pm < 1000 && rnd(bs) % 1000 >= pm) {
			if (!slow)
				slow = s;
			continue;
		}
		bs->rr = i + 1;
		return s;
	}
	if (slow)
		bs->rr = slow->index + 1;
	return slow;
}

static int cw_ensure(struct balance_state *bs, uint32_t n)
{
	int64_t *cw;

	if (likely(bs->ncw == n && bs->cw))
		return 0;
	cw = calloc(n, sizeof(*cw));
	if (!cw)
		return -ENOMEM;
	free(bs->cw);
	bs->cw = cw;
	bs->ncw = n;
	return 0;
}

/* Smooth weighted round robin (as in nginx): every eligible server gains
 * its weight, the richest is chosen and pays the total. Over a cycle each
 * server gets exactly its share, and the heavy one is interleaved with the
 * light ones instead of served in a burst. */
static struct server *pick_wrr(struct upstream *up, struct balance_state *bs,
			       struct pick_ctx *ctx)
{
	uint32_t n = up->nservers, i, best = UINT32_MAX;
	int64_t total = 0, w;
	struct server *s;
	int a;

	if (cw_ensure(bs, n))
		return pick_rr(up, bs, ctx);
	for (i = 0; i < n; i++) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		if (a == HEALTH_PROBE)
			return s;
		w = (int64_t)eff_weight(s, ctx->now_ms);
		bs->cw[i] += w;
		total += w;
		if (best == UINT32_MAX || bs->cw[i] > bs->cw[best])
			best = i;
	}
	if (best == UINT32_MAX)
		return NULL;
	bs->cw[best] -= total;
	return &up->servers[best];
}

/* Clearly faster: more than 1/8 apart, so near-equal servers share ties. */
static inline int lat_better(uint32_t a, uint32_t b)
{
	return a < b - b / 8;
}

/* Fewest active requests per unit of weight, counting the one about to be
 * sent (HAProxy's (active + 1) / weight), so a heavier server also wins at
 * idle. Ties go to a clearly lower response time, then rotate. */
static struct server *pick_least_conn(struct upstream *up, struct balance_state *bs,
				      struct pick_ctx *ctx)
{
	uint32_t n = up->nservers, i = bs->rr++ % n, k, blat = 0, lat;
	uint64_t bload = 0, bw = 1, load, w;
	struct server *s, *best = NULL;
	int a;

	for (k = 0; k < n; k++, i = next_idx(i, n)) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		if (a == HEALTH_PROBE)
			return s;
		load = (uint64_t)active_of(s) + 1;
		w = eff_weight(s, ctx->now_ms);
		lat = balance_ewma_us(s, ctx->now_ms);
		if (!best || load * bw < bload * w ||
		    (load * bw == bload * w && lat_better(lat, blat))) {
			best = s;
			bload = load;
			bw = w;
			blat = lat;
		}
	}
	return best;
}

/* Score-based strategies: the lowest score wins, ties rotate. <lat> is
 * the server's response-time average, or the estimate pick_scored() gives
 * a server not measured yet. */
static double score_least_time(const struct server *s, uint32_t lat, uint64_t now)
{
	return ((double)lat + 1) * (active_of(s) + 1) / (double)eff_weight(s, now);
}

/* Latency (floored at 1 ms so idle fast servers still feel load and
 * failures), times active requests, times up to 10x for failures. */
static double score_adaptive(const struct server *s, uint32_t lat, uint64_t now)
{
	double fail = balance_fail_permille(s, now) / 1000.0;

	return ((double)lat + 1000) * (active_of(s) + 1) * (1 + 9 * fail) /
		(double)eff_weight(s, now);
}

/* A server without a response-time average (new, back, or idle for
 * minutes) would score as infinitely fast and take every request until
 * its first answer comes back: a slow one would swallow a burst. While
 * another server has an average, it is assumed as fast as the fastest
 * (optimistic, never better) and takes one request at a time, its probe,
 * until it has an average of its own. With no average anywhere (a cold
 * start) all score by load alone. */
static struct server *pick_scored(struct upstream *up, struct balance_state *bs,
				  struct pick_ctx *ctx,
				  double (*score)(const struct server *, uint32_t, uint64_t))
{
	uint32_t n = up->nservers, i = bs->rr++ % n, k, lat, best_lat = 0;
	struct server *s, *best = NULL, *probing = NULL;
	double bsc = 0, sc;
	int a;

	for (k = 0; k < n; k++) {
		lat = balance_ewma_us(&up->servers[k], ctx->now_ms);
		if (lat && (!best_lat || lat < best_lat))
			best_lat = lat;
	}
	for (k = 0; k < n; k++, i = next_idx(i, n)) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		if (a == HEALTH_PROBE)
			return s;
		lat = balance_ewma_us(s, ctx->now_ms);
		if (!lat && best_lat) {
			if (active_of(s)) {
				probing = probing ? probing : s;
				continue;
			}
			lat = best_lat;
		}
		sc = score(s, lat, ctx->now_ms);
		if (!best || sc < bsc) {
			best = s;
			bsc = sc;
		}
	}
	/* only servers still waiting for their first answer: better than none */
	return best ? best : probing;
}

/* Weighted rendezvous hashing (highest random weight, logarithmic method):
 * each server scores weight / -ln(hash(client, server)) and the highest
 * wins. When a server leaves (down, ejected, draining) only its clients
 * move, each to its own next best; when it returns exactly those come back.
 * No ring to build or rebuild when servers or weights change, and shares
 * follow weights exactly; the price, O(servers) per pick, is what every
 * other strategy pays too. */
static struct server *pick_ip_hash(struct upstream *up, struct pick_ctx *ctx)
{
	uint32_t n = up->nservers, i;
	struct server *s, *best = NULL;
	double bsc = 0, sc;
	int a;

	for (i = 0; i < n; i++) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		if (a == HEALTH_PROBE)
			return s;
		sc = (double)eff_weight(s, ctx->now_ms) / neg_ln_unit(mix64(ctx->client_hash ^ s->seed));
		if (!best || sc > bsc) {
			best = s;
			bsc = sc;
		}
	}
	return best;
}

/* Power of two choices: two distinct servers drawn at random (by weight),
 * the one with fewer active requests per weight wins. Almost as good as
 * least_conn, without every worker herding onto the same idle server. */
static struct server *pick_random2(struct upstream *up, struct balance_state *bs,
				   struct pick_ctx *ctx)
{
	uint32_t n = up->nservers, i;
	uint64_t ok = 0, tw = 0, w, wa = 1, wb = 1;
	struct server *s, *sa = NULL, *sb = NULL;
	int a;

	/* one weighted reservoir draw per pass; the first pass remembers who
	 * was eligible (for the first 64 servers) so the second need not ask */
	for (i = 0; i < n; i++) {
		s = &up->servers[i];
		if (!(a = eligible(up, i, ctx)))
			continue;
		if (a == HEALTH_PROBE)
			return s;
		if (i < 64)
			ok |= 1ull << i;
		w = eff_weight(s, ctx->now_ms);
		tw += w;
		if (rnd(bs) % tw < w) {
			sa = s;
			wa = w;
		}
	}
	if (!sa)
		return NULL;
	tw = 0;
	for (i = 0; i < n; i++) {
		s = &up->servers[i];
		if (s == sa)
			continue;
		if (i < 64) {
			if (!(ok >> i & 1))
				continue;
		} else if (!(a = eligible(up, i, ctx))) {
			continue;
		} else if (a == HEALTH_PROBE) {
			return s;
		}
		w = eff_weight(s, ctx->now_ms);
		tw += w;
		if (rnd(bs) % tw < w) {
			sb = s;
			wb = w;
		}
	}
	/* active per weight, without counting the new request: at idle the
	 * two tie and the first (weighted) draw wins, so the weights are not
	 * applied twice */
	if (sb && (uint64_t)active_of(sb) * wa < (uint64_t)active_of(sa) * wb)
		return sb;
	return sa;
}

struct server *balance_choose(struct upstream *up, struct balance_state *bs,
			      struct pick_ctx *ctx)
{
	if (unlikely(!up->nservers))
		return NULL;
	switch (atomic_load_explicit(&up->balance, memory_order_relaxed)) {
	case RF_BAL_WEIGHTED:
		return pick_wrr(up, bs, ctx);
	case RF_BAL_LEAST_CONN:
		return pick_least_conn(up, bs, ctx);
	case RF_BAL_IP_HASH:
		return pick_ip_hash(up, ctx);
	case RF_BAL_LEAST_TIME:
		return pick_scored(up, bs, ctx, score_least_time);
	case RF_BAL_ADAPTIVE:
		return pick_scored(up, bs, ctx, score_adaptive);
	case RF_BAL_RANDOM2:
		return pick_random2(up, bs, ctx);
	default:
		/* Round robin honours weights, as HAProxy's and nginx's do; with
		 * equal weights the exact rotation is cheaper. */
		if (atomic_load_explicit(&up->uneven, memory_order_relaxed))
			return pick_wrr(up, bs, ctx);
		return pick_rr(up, bs, ctx);
	}
}

/* Recompute whether <up>'s servers have different weights. */
void balance_weights_changed(struct upstream *up)
{
	uint32_t i, w0 = up->nservers ?
		atomic_load_explicit(&up->servers[0].weight, memory_order_relaxed) : 1;
	uint32_t uneven = 0;

	for (i = 1; i < up->nservers; i++)
		uneven |= atomic_load_explicit(&up->servers[i].weight, memory_order_relaxed) != w0;
	atomic_store_explicit(&up->uneven, uneven, memory_order_relaxed);
}

int balance_state_init(struct balance_state *bs, const struct upstream *up, uint32_t seed)
{
	memset(bs, 0, sizeof(*bs));
	bs->rr = seed;
	bs->rng = mix64(((uint64_t)seed << 32 | up->index) + 0x9e3779b97f4a7c15ull) | 1;
	return up->nservers ? cw_ensure(bs, up->nservers) : 0;
}

void balance_state_free(struct balance_state *bs)
{
	rf_free(&bs->cw);
	bs->ncw = 0;
}

/* ---- admin ---- */

int balance_set_strategy(struct upstream *up, uint32_t strategy)
{
	uint32_t old;

	if (strategy > RF_BAL_RANDOM2)
		return -EINVAL;
	old = atomic_exchange_explicit(&up->balance, strategy, memory_order_relaxed);
	if (old != strategy)
		log_info("msg=\"balance strategy changed\" upstream=%s from=%s to=%s",
			 up->conf->name, config_balance_name(old), config_balance_name(strategy));
	return 0;
}

uint32_t balance_strategy(const struct upstream *up)
{
	return atomic_load_explicit(&up->balance, memory_order_relaxed);
}

int balance_set_weight(struct server *s, uint32_t weight)
{
	uint32_t old;

	if (weight < 1 || weight > 1000)
		return -EINVAL;
	old = atomic_exchange_explicit(&s->weight, weight, memory_order_relaxed);
	balance_weights_changed(s->up);
	if (old != weight)
		log_info("msg=\"server weight changed\" upstream=%s server=%s from=%u to=%u",
			 s->up->conf->name, s->conf->addr.text, old, weight);
	return 0;
}

int balance_set_drain(struct server *s, int on, uint64_t now)
{
	health_set_drain(s, on, now);
	return 0;
}

/* ---- retry budget ---- */

/* Retry window word: epoch << 48 | current bucket << 24 | previous bucket. */
int balance_retry_allowed(struct upstream *up, uint64_t now)
{
	uint32_t pct = up->conf->retry_budget, ep = (uint32_t)(now / WIN_MS) & 0xffff;
	uint64_t v = atomic_load_explicit(&up->retry_win, memory_order_relaxed), n, traffic = 0;
	uint32_t i, cur, prev;

	if (!pct)
		return 0;
	for (i = 0; i < up->nservers; i++)
		traffic += balance_recent_total(&up->servers[i], now);
	do {
		cur = (uint32_t)(v >> 24) & 0xffffff;
		prev = (uint32_t)v & 0xffffff;
		switch (w_age((uint32_t)(v >> 48), ep)) {
		case 0:
			ep = (uint32_t)(v >> 48);
			break;
		case 1:
			prev = cur, cur = 0;
			break;
		default:
			prev = cur = 0;
			break;
		}
		if ((uint64_t)cur + prev >= traffic * pct / 100 + BALANCE_RETRY_FLOOR ||
		    cur >= 0xffffff)
			return 0;
		n = (uint64_t)ep << 48 | (uint64_t)(cur + 1) << 24 | prev;
	} while (!atomic_compare_exchange_weak_explicit(&up->retry_win, &v, n,
							memory_order_relaxed, memory_order_relaxed));
	return 1;
}

/* ratelimit.c - the GCRA bucket table (one CAS-updated 64-bit word per key,
 * no lock, no allocation per check), the keyed hash and key builders,
 * RateLimit-* / 429 formatting and the line-protocol parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "common.h"
#include "log.h"
#include "ratelimit.h"

#define US_PER_S        1000000ull
#define TAG_MASK        (~RL_TAT_MASK)
#define FULL_WARN_S     10      /* at most one "table full" warning per 10 s */
#define CLAIM_WAIT      64      /* rescans while another worker inserts the key */

/* ---- time and policies ---- */

uint64_t rl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * US_PER_S + (uint64_t)ts.tv_nsec / 1000;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static uint64_t div_ceil(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* RateLimit-Policy wants a quota per whole-second window: use the period
 * itself when it is whole seconds, else the rate scaled to ceil(period). */
static void policy_window(struct rl_policy *p, uint32_t rate, uint64_t period_us)
{
	uint64_t w = div_ceil(period_us, US_PER_S), q;

	if (period_us % US_PER_S == 0) {
		q = rate;
	} else {
		q = (uint64_t)rate * w * US_PER_S / period_us;
		q += !q;
	}
	p->window_s = (uint32_t)RF_MIN(w, UINT32_MAX);
	p->quota = (uint32_t)RF_MIN(q, UINT32_MAX);
}

int rl_policy_init(struct rl_policy *p, uint32_t rate, uint64_t period_us, uint32_t burst)
{
	uint64_t t;

	memset(p, 0, sizeof *p);
	if (!rate || !period_us)
		return -EINVAL;
	if (!burst)
		burst = rate;
	/* rounding T up keeps admissions within burst + rate * elapsed */
	t = div_ceil(period_us, rate);
	if (t >= RL_TAU_MAX || burst > RL_TAU_MAX / t)
		return -ERANGE;
	p->t_us = t;
	p->tau_us = t * (burst - 1);
	p->burst = burst;
	policy_window(p, rate, period_us);
	return 0;
}

int rl_policy_from_rps(struct rl_policy *p, double rps, uint32_t capacity)
{
	static const uint32_t windows[] = { 1, 60, 3600 };
	double t, q;
	uint64_t ti, qi;
	size_t i;
	int rc;

	memset(p, 0, sizeof *p);
	if (!(rps > 0) || rps > 1e9 || !capacity)       /* !(x > 0) also catches NaN */
		return -EINVAL;
	/* a rate that is whole per second, minute or hour keeps exact arithmetic */
	for (i = 0; i < ARRAY_SIZE(windows); i++) {
		q = rps * windows[i];
		qi = (uint64_t)(q + 0.5);
		if (qi && qi <= UINT32_MAX && q - (double)qi < 1e-9 && (double)qi - q < 1e-9)
			return rl_policy_init(p, (uint32_t)qi, windows[i] * US_PER_S, capacity);
	}
	t = 1e6 / rps;
	ti = (uint64_t)t;
	ti += (double)ti < t;           /* ceil without libm */
	if (ti >= RL_TAU_MAX || capacity > RL_TAU_MAX / ti)
		return -ERANGE;
	rc = rl_policy_init(p, 1, ti, capacity);
	if (!rc) {
		qi = (uint64_t)(rps * 60);
		p->quota = (uint32_t)(qi ? qi : 1);
		p->window_s = 60;
	}
	return rc;
}

/* ---- the table ---- */

#define K0 0xa0761d6478bd642full
#define K1 0xe7037ed1a0b428dbull
#define K2 0x8ebc6af09c88c6e3ull

/* Domains keep the key kinds apart: an IP never shares a bucket with an
 * API key that happens to have the same bytes. */
#define DOM_IP          0x1d8e4e27c47d124full
#define DOM_PATH        0x2d358dccaa6c78a5ull
#define DOM_HDR         0x4f1bbcdcbfa53e0bull

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}


int rl_table_init(struct rl_table *t, unsigned nshards, uint64_t max_keys,
		  enum rl_full_policy full, uint64_t epoch_us)
{
	uint64_t per_shard, nb;
	void *m;

	memset(t, 0, sizeof *t);
	if (!nshards || nshards > 4096 || !max_keys || max_keys > (1ull << 34))
		return -EINVAL;
	per_shard = div_ceil(max_keys, nshards);
	nb = div_ceil(per_shard, RL_SLOTS);
	if (nb > UINT32_MAX)
		return -EINVAL;
	t->bytes = (size_t)(nshards * nb * RL_SLOTS * sizeof(uint64_t));
	/* anonymous pages are zero (= every slot free) and cost nothing until touched */
	m = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	t->counters = aligned_alloc(64, nshards * sizeof *t->counters);
	if (!t->counters) {
		munmap(m, t->bytes);
		return -ENOMEM;
	}
	memset(t->counters, 0, nshards * sizeof *t->counters);
	t->slots = m;
	t->max_keys = max_keys;
	t->epoch_us = epoch_us;
	t->nshards = nshards;
	t->nbuckets = (uint32_t)nb;
	t->full_policy = full;
	t->ncounters = nshards;
	return 0;
}

void rl_table_free(struct rl_table *t)
{
	if (t->slots)
		munmap((void *)t->slots, t->bytes);
	free(t->counters);
	memset(t, 0, sizeof *t);
}

double rl_table_bytes_per_key(const struct rl_table *t)
{
	return t->max_keys ? (double)t->bytes / (double)t->max_keys : 0;
}

/* Each key has two candidate buckets in its shard ("two choices"). A new
 * key goes to its first bucket while that holds fewer than FIRST_PREFERRED
 * live keys, else to the less loaded of the two. With one bucket per key
 * 2% of new keys would find no slot at half load; this way none do at
 * half load and 1 in 14000 at 75%, while 80-90% of keys still sit in
 * their first bucket, so most lookups read one cache line. Multiply-shift
 * range reduction: no modulo, no power-of-two rounding of the size. */
#define FIRST_PREFERRED 5

struct set {
	_Atomic uint64_t *b[2];
	unsigned n;             /* slots: 8 when both choices are one bucket */
};

static void set_of(const struct rl_table *t, uint64_t h, struct set *s)
{
	uint64_t base = ((((h >> 32) & 0xffff) * t->nshards) >> 16) * t->nbuckets;
	uint64_t b1 = ((h & 0xffffffffu) * t->nbuckets) >> 32;
	uint64_t b2 = ((mum(h ^ K1, K2) & 0xffffffffu) * t->nbuckets) >> 32;

	s->b[0] = t->slots + (base + b1) * RL_SLOTS;
	s->b[1] = t->slots + (base + b2) * RL_SLOTS;
	s->n = b1 == b2 ? RL_SLOTS : 2 * RL_SLOTS;
}

static _Atomic uint64_t *set_slot(const struct set *s, unsigned i)
{
	return s->b[i / RL_SLOTS] + i % RL_SLOTS;
}

static struct rl_counters *ctr(struct rl_table *t, unsigned worker)
{
	return &t->counters[worker < t->ncounters ? worker : worker % t->ncounters];
}

#define COUNT(t, w, field) \
	atomic_fetch_add_explicit(&ctr(t, w)->field, 1, memory_order_relaxed)

/* <w> is a committed bucket of the key: live or refilled, not a claim. */
static inline int is_ours(uint64_t w, uint64_t tag)
{
	return w && (w ^ tag) < RL_TAT_DEAD;
}

static int live_ours(uint64_t w, uint64_t tag, uint64_t now)
{
	return is_ours(w, tag) && (w & RL_TAT_MASK) > now;
}

/* What a scan of the slots of a set found. */
struct scan {
	_Atomic uint64_t *mine;         /* the key's bucket */
	_Atomic uint64_t *fr[2];        /* first free slot of each bucket */
	uint64_t mw, fw[2];             /* the words read there */
	unsigned live[2];               /* live keys in each bucket */
	unsigned claims;                /* claims of the key in progress elsewhere */
	uint64_t soonest;               /* earliest TAT seen: when a slot frees */
};

static void scan(const struct set *s, unsigned lo, unsigned hi, uint64_t tag, uint64_t now,
		 struct scan *sc)
{
	_Atomic uint64_t *p;
	uint64_t w, tat;
	unsigned i;

	for (i = lo; i < hi; i++) {
		p = set_slot(s, i);
		w = atomic_load_explicit(p, memory_order_relaxed);
		tat = w & RL_TAT_MASK;
		if (is_ours(w, tag)) {
			if (!sc->mine) {
				sc->mine = p;
				sc->mw = w;
			}
		} else if ((w ^ tag) == RL_TAT_PEND) {
			sc->claims++;
		}
		if (tat > now) {
			sc->live[i / RL_SLOTS]++;
			if (tat < RL_TAT_DEAD)
				sc->soonest = RF_MIN(sc->soonest, tat);
		} else if (!sc->fr[i / RL_SLOTS]) {
			sc->fr[i / RL_SLOTS] = p;       /* expired: no state to lose */
			sc->fw[i / RL_SLOTS] = w;
		}
	}
}

/* Where a new key goes: see FIRST_PREFERRED. Returns 0, 1 or -1 (none). */
static int place(const struct scan *sc)
{
	if (sc->fr[0] && (sc->live[0] < FIRST_PREFERRED || !sc->fr[1] ||
			  sc->live[0] <= sc->live[1]))
		return 0;
	return sc->fr[1] ? 1 : -1;
}

/* Fill <v> from the TAT the key holds after the decision. */
static void fill(struct rl_verdict *v, const struct rl_policy *p, int allowed,
		 uint64_t tat, uint64_t now)
{
	uint64_t debt = tat > now ? tat - now : 0;

	v->allowed = (uint8_t)allowed;
	v->tracked = 1;
	v->limit = p->burst;
	v->burst = p->burst;
	v->quota = p->quota;
	v->window_s = p->window_s;
	v->remaining = debt <= p->tau_us ? (uint32_t)((p->tau_us - debt) / p->t_us + 1) : 0;
	v->reset_s = (uint32_t)div_ceil(debt, US_PER_S);
	v->retry_after_s = 0;
	if (!allowed) {
		/* the next request fits once the debt is back down to tau */
		if (debt > p->tau_us)
			v->retry_after_s = (uint32_t)div_ceil(debt - p->tau_us, US_PER_S);
		v->retry_after_s += !v->retry_after_s;
	}
}

static void fill_untracked(struct rl_verdict *v, const struct rl_policy *p, int allowed)
{
	fill(v, p, allowed, 0, 0);
	v->tracked = 0;
	v->remaining = p->burst - 1;
}

/* Insert a new key in <slot> (free, read as <w>) with <tat>, so that one
 * bucket per key ever becomes visible, however many workers insert the key
 * at once:
 *  1. claim: CAS <w> -> tag|PEND. A claim is no bucket: nobody charges it.
 *  2. look at every other slot of the set. A committed bucket of the key
 *     wins: give up. Another claim of the key is turned to tag|DEAD.
 *  3. commit: CAS tag|PEND -> tag|<tat> (the caller's request is the
 *     bucket's first token). It fails only when another claimer turned the
 *     claim down: give up.
 * Giving up clears the slot; the caller then looks again and charges the
 * winner's bucket like any other request.
 *
 * Why two claimers X and Y never both commit: the claims and the loads of
 * step 2 are seq-cst, so at least one of them, say Y, loads the other's
 * slot after the other's claim (Dekker). From its claim until X gives up
 * or its bucket is freed, X's slot holds X's claim, DEAD, or X's bucket: a
 * committed bucket stays the key's, because only free slots are claimed and
 * the key's own refilled slot counts as the key's, not as free. So Y sees
 * X's bucket and gives up, or turns X's claim down (X's commit then fails),
 * or fails to because X just committed (Y gives up), or sees DEAD or a
 * cleared slot (X does not commit). Only a claimer clears its own claim,
 * DEAD included, so a commit CAS that finds tag|PEND finds its own claim:
 * no ABA. Returns 1 when committed, 0 to look again. */
static int claim(const struct set *s, _Atomic uint64_t *slot, uint64_t w, uint64_t tag,
		 uint64_t tat)
{
	uint64_t pend = tag | RL_TAT_PEND, o;
	_Atomic uint64_t *p;
	unsigned i;

	if (!atomic_compare_exchange_strong(slot, &w, pend))
		return 0;
	for (i = 0; i < s->n; i++) {
		p = set_slot(s, i);
		if (p == slot)
			continue;
		o = atomic_load(p);
		while ((o & TAG_MASK) == tag && !is_ours(o, tag)) {
			if ((o & RL_TAT_MASK) != RL_TAT_PEND)
				break;          /* empty, or turned down already */
			if (atomic_compare_exchange_strong(p, &o, tag | RL_TAT_DEAD))
				break;
		}
		if (is_ours(o, tag))
			goto give_up;
	}
	w = pend;
	if (atomic_compare_exchange_strong(slot, &w, tag | tat))
		return 1;
give_up:
	atomic_store(slot, 0);  /* our PEND or DEAD: no one else writes either */
	return 0;
}

static void warn_full(struct rl_table *t, uint64_t now_us)
{
	uint64_t s = now_us / US_PER_S, last = atomic_load_explicit(&t->full_warned_s,
								    memory_order_relaxed);

	if ((last && s < last + FULL_WARN_S) ||
	    !atomic_compare_exchange_strong(&t->full_warned_s, &last, s ? s : 1))
		return;
	log_warn("rate limit table full: a new key found every slot of its two buckets "
		 "held by a live key, %s (max_keys=%llu; counted in table_full)",
		 t->full_policy == RL_FULL_DENY ? "denied" : "admitted untracked",
		 (unsigned long long)t->max_keys);
}

int rl_check(struct rl_table *t, unsigned worker, uint64_t key_hash,
	     const struct rl_policy *p, uint64_t now_us, struct rl_verdict *v)
{
	uint64_t tag = key_hash & TAG_MASK, now, tat, ntat;
	unsigned waits = 0;
	struct scan sc;
	struct set s;
	int b;

	if (unlikely(now_us < t->epoch_us))
		now_us = t->epoch_us;   /* a clock read before init: treat as the epoch */
	now = now_us - t->epoch_us;
	if (unlikely(now >= RL_NOW_MAX)) {
		COUNT(t, worker, clock);
		fill_untracked(v, p, 1);
		return 1;
	}
	set_of(t, key_hash, &s);
	for (;;) {
		memset(&sc, 0, sizeof sc);
		sc.soonest = UINT64_MAX;
		scan(&s, 0, RL_SLOTS, tag, now, &sc);
		if (!sc.mine && s.n > RL_SLOTS)
			scan(&s, RL_SLOTS, s.n, tag, now, &sc);
		if (likely(sc.mine != NULL)) {
			tat = RF_MAX(sc.mw & RL_TAT_MASK, now);  /* refilled: a full bucket */
			if (tat - now > p->tau_us) {
				COUNT(t, worker, limited);
				fill(v, p, 0, tat, now);
				return 0;
			}
			ntat = tat + p->t_us;
			if (atomic_compare_exchange_weak_explicit(sc.mine, &sc.mw, tag | ntat,
								  memory_order_acq_rel,
								  memory_order_relaxed))
				break;
			continue;
		}
		if (sc.claims && waits < CLAIM_WAIT) {
			/* another worker is inserting the key: its bucket is a
			 * few loads away. Past CLAIM_WAIT (it was preempted) we
			 * claim a slot too and turn its claim down. */
			waits++;
			cpu_relax();
			continue;
		}
		b = place(&sc);
		if (unlikely(b < 0)) {
			COUNT(t, worker, table_full);
			warn_full(t, now_us);
			if (t->full_policy == RL_FULL_ALLOW) {
				fill_untracked(v, p, 1);
				return 1;
			}
			fill_untracked(v, p, 0);
			v->remaining = 0;
			v->retry_after_s = sc.soonest == UINT64_MAX ? 1 :
					   (uint32_t)div_ceil(sc.soonest - now, US_PER_S);
			v->retry_after_s += !v->retry_after_s;
			v->reset_s = v->retry_after_s;
			COUNT(t, worker, limited);
			return 0;
		}
		/* a fresh key: the first request of a full bucket always fits */
		ntat = now + p->t_us;
		if (claim(&s, sc.fr[b], sc.fw[b], tag, ntat))
			break;
	}
	COUNT(t, worker, allowed);
	fill(v, p, 1, ntat, now);
	return 1;
}

int rl_refund(struct rl_table *t, uint64_t key_hash, const struct rl_policy *p,
	      uint64_t now_us)
{
	uint64_t tag = key_hash & TAG_MASK, now, w, tat;
	_Atomic uint64_t *slot;
	struct set s;
	unsigned i;

	now = now_us > t->epoch_us ? now_us - t->epoch_us : 0;
	set_of(t, key_hash, &s);
	for (i = 0; i < s.n; i++) {
		slot = set_slot(&s, i);
		w = atomic_load_explicit(slot, memory_order_relaxed);
		do {
			if (!live_ours(w, tag, now))
				break;
			tat = (w & RL_TAT_MASK) - p->t_us;
		} while (!atomic_compare_exchange_weak(slot, &w, tat > now ? tag | tat : 0));
		if (live_ours(w, tag, now))
			return 0;
	}
	return -ENOENT;
}

int rl_rescale(struct rl_table *t, uint64_t key_hash, const struct rl_policy *from,
	       const struct rl_policy *to, uint64_t now_us)
{
	uint64_t tag = key_hash & TAG_MASK, now, w, debt;
	unsigned __int128 d;
	_Atomic uint64_t *slot;
	struct set s;
	unsigned i;

	now = now_us > t->epoch_us ? now_us - t->epoch_us : 0;
	if (now >= RL_NOW_MAX)
		return -ENOENT;         /* checks fail open by now: no TAT past 2^47 + 2^46 */
	set_of(t, key_hash, &s);
	for (i = 0; i < s.n; i++) {
		slot = set_slot(&s, i);
		w = atomic_load_explicit(slot, memory_order_relaxed);
		do {
			if (!live_ours(w, tag, now))
				break;
			/* debt in tokens is debt / T: the same tokens under the new T */
			d = (unsigned __int128)((w & RL_TAT_MASK) - now) * to->t_us / from->t_us;
			debt = (uint64_t)RF_MIN(d, (unsigned __int128)(to->tau_us + to->t_us));
		} while (!atomic_compare_exchange_weak(slot, &w, tag | (now + debt)));
		if (live_ours(w, tag, now))
			return 0;
	}
	return -ENOENT;
}

void rl_peek(struct rl_table *t, uint64_t key_hash, const struct rl_policy *p,
	     uint64_t now_us, struct rl_verdict *v)
{
	uint64_t tag = key_hash & TAG_MASK, now, w, tat = 0;
	struct set s;
	unsigned i;

	now = now_us > t->epoch_us ? now_us - t->epoch_us : 0;
	set_of(t, key_hash, &s);
	for (i = 0; i < s.n; i++) {
		w = atomic_load_explicit(set_slot(&s, i), memory_order_relaxed);
		if (live_ours(w, tag, now))
			tat = RF_MAX(tat, w & RL_TAT_MASK);
	}
	fill(v, p, !tat || tat - now <= p->tau_us, tat, now);
}

void rl_table_stats(const struct rl_table *t, struct rl_table_stats *out)
{
	unsigned i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < t->ncounters; i++) {
		const struct rl_counters *c = &t->counters[i];

		out->allowed += atomic_load_explicit(&c->allowed, memory_order_relaxed);
		out->limited += atomic_load_explicit(&c->limited, memory_order_relaxed);
		out->table_full += atomic_load_explicit(&c->table_full, memory_order_relaxed);
		out->clock += atomic_load_explicit(&c->clock, memory_order_relaxed);
	}
}

/* ---- hashing and keys ---- */

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

uint64_t rl_hash(const void *key, size_t n, uint64_t seed)
{
	const uint8_t *p = key;
	uint64_t s = seed ^ K0, k = mum(seed ^ K1, K2), a, b;
	size_t left = n;

	/* both multiplicands carry secret bits, so no block zeroes the state */
	while (left > 16) {
		s = mum(rd64(p) ^ k, rd64(p + 8) ^ s);
		p += 16;
		left -= 16;
	}
	if (left > 8) {
		a = rd64(p);
		b = rd64(p + left - 8);
	} else if (left >= 4) {
		a = rd32(p);
		b = rd32(p + left - 4);
	} else if (left) {
		a = ((uint64_t)p[0] << 16) | ((uint64_t)p[left >> 1] << 8) | p[left - 1];
		b = 0;
	} else {
		a = b = 0;
	}
	s = mum(a ^ k, b ^ s);
	return mum(s ^ K2 ^ n, k ^ K0);
}

uint64_t rl_key_ip(const void *addr, size_t len, uint64_t seed)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const uint8_t *a = addr;

	if (len == 16 && !memcmp(a, v4mapped, sizeof v4mapped)) {
		a += 12;
		len = 4;
	}
	return rl_hash(a, len, seed ^ DOM_IP);
}

uint64_t rl_key_header(const char *v, size_t n, uint64_t seed)
{
	return rl_hash(v, n, seed ^ DOM_HDR);
}

uint64_t rl_key_id(const char *s, size_t n, uint64_t seed)
{
	char buf[64];
	uint8_t a[16];

	if (n && n < sizeof buf) {
		memcpy(buf, s, n);
		buf[n] = 0;
		if (inet_pton(AF_INET, buf, a) == 1)
			return rl_key_ip(a, 4, seed);
		if (inet_pton(AF_INET6, buf, a) == 1)
			return rl_key_ip(a, 16, seed);
	}
	return rl_key_header(s, n, seed);
}

uint64_t rl_key_ip_path(uint64_t ip_key, const char *path, size_t n, uint64_t seed)
{
	const char *q = memchr(path, '?', n);

	if (q)
		n = (size_t)(q - path);
	return rl_hash(path, n, ip_key ^ seed ^ DOM_PATH);
}

int rl_key_make(enum rl_key_kind kind, const struct rl_key_parts *kp, uint64_t seed,
		uint64_t *out)
{
	if (kind == RL_KEY_HEADER) {
		if (!kp->hdr)
			return -ENOENT;
		*out = rl_key_header(kp->hdr, kp->hdr_len, seed);
		return 0;
	}
	if (!kp->ip || (kp->ip_len != 4 && kp->ip_len != 16))
		return -ENOENT;
	*out = rl_key_ip(kp->ip, kp->ip_len, seed);
	if (kind == RL_KEY_IP_PATH) {
		if (!kp->path)
			return -ENOENT;
		*out = rl_key_ip_path(*out, kp->path, kp->path_len, seed);
	}
	return 0;
}

/* ---- responses ---- */

/* A bounded writer: appends silently stop at the end and set .over. */
struct wbuf {
	char *p;
	size_t len, cap;
	int over;
};

static void put(struct wbuf *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->over = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define PUT_LIT(o, lit) put(o, lit, sizeof(lit) - 1)

static void put_u32(struct wbuf *o, uint32_t v)
{
	char d[10];
	size_t n = 0;

	do {
		d[sizeof d - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, d + sizeof d - n, n);
}

static int wdone(const struct wbuf *o)
{
	return o->over ? -ENOSPC : (int)o->len;
}

static void put_headers(struct wbuf *o, const struct rl_verdict *v)
{
	PUT_LIT(o, "RateLimit-Limit: ");
	put_u32(o, v->limit);
	PUT_LIT(o, "\r\nRateLimit-Remaining: ");
	put_u32(o, v->remaining);
	PUT_LIT(o, "\r\nRateLimit-Reset: ");
	put_u32(o, v->reset_s);
	PUT_LIT(o, "\r\nRateLimit-Policy: ");
	put_u32(o, v->quota);
	PUT_LIT(o, ";w=");
	put_u32(o, v->window_s);
	if (v->burst != v->quota) {
		PUT_LIT(o, ";burst=");
		put_u32(o, v->burst);
	}
	PUT_LIT(o, "\r\n");
}

static void put_retry_after(struct wbuf *o, const struct rl_verdict *v)
{
	PUT_LIT(o, "Retry-After: ");
	put_u32(o, v->retry_after_s ? v->retry_after_s : 1);    /* never 0 */
	PUT_LIT(o, "\r\n");
}

int rl_format_headers(const struct rl_verdict *v, char *out, size_t cap)
{
	struct wbuf o = { out, 0, cap, 0 };

	put_headers(&o, v);
	if (!v->allowed)
		put_retry_after(&o, v);
	return wdone(&o);
}

static void put_body(struct wbuf *o, int status, const struct rl_verdict *v)
{
	if (status == 401) {
		PUT_LIT(o, "{\"code\":401,\"message\":\"missing or unknown API key\"}\n");
	} else if (status == 403) {
		PUT_LIT(o, "{\"code\":403,\"message\":\"forbidden\"}\n");
	} else {
		PUT_LIT(o, "{\"code\":429,\"message\":\"rate limit exceeded\",\"retry_after\":");
		put_u32(o, v && v->retry_after_s ? v->retry_after_s : 1);
		PUT_LIT(o, "}\n");
	}
}

int rl_format_body(int status, const struct rl_verdict *v, char *out, size_t cap)
{
	struct wbuf o = { out, 0, cap, 0 };

	if (status != 401 && status != 403 && status != 429)
		return -EINVAL;
	put_body(&o, status, v);
	return wdone(&o);
}

int rl_format_response(int status, const struct rl_verdict *v, int headers,
		       int keepalive, const char *extra, size_t extra_len,
		       char *out, size_t cap)
{
	struct wbuf o = { out, 0, cap, 0 };
	char body[96];
	int blen = rl_format_body(status, v, body, sizeof body);

	if (blen < 0)
		return blen;
	if (status == 401)
		PUT_LIT(&o, "HTTP/1.1 401 Unauthorized\r\n");
	else if (status == 403)
		PUT_LIT(&o, "HTTP/1.1 403 Forbidden\r\n");
	else
		PUT_LIT(&o, "HTTP/1.1 429 Too Many Requests\r\n");
	PUT_LIT(&o, "Content-Type: application/json\r\nContent-Length: ");
	put_u32(&o, (uint32_t)blen);
	PUT_LIT(&o, "\r\n");
	if (status == 429 && v) {
		if (headers)
			put_headers(&o, v);
		put_retry_after(&o, v);
	}
	if (extra && extra_len)
		put(&o, extra, extra_len);
	if (keepalive)
		PUT_LIT(&o, "Connection: keep-alive\r\n\r\n");
	else
		PUT_LIT(&o, "Connection: close\r\n\r\n");
	put(&o, body, (size_t)blen);
	return wdone(&o);
}

/* ---- line protocol ---- */

static int is_junk(unsigned char c)
{
	return (c < 0x20 && c != '\r') || c == 0x7f;
}

static void answer(struct rl_line *ls, char *out, size_t *out_len, int ok, int close)
{
	if (ok) {
		memcpy(out + *out_len, "OK\n", 3);
		*out_len += 3;
	} else {
		memcpy(out + *out_len, "ERROR\n", 6);
		*out_len += 6;
	}
	ls->closing = (uint8_t)close;
}

size_t rl_line_feed(struct rl_line *ls, const char *in, size_t n,
		    char *out, size_t cap, size_t *out_len,
		    rl_line_check_fn check, void *arg)
{
	const char *nl, *line;
	size_t i = 0, seg, room, j, len;

	while (i < n && !ls->closing) {
		if (cap - *out_len < 6)
			break;          /* no room for the longest answer: resume later */
		nl = memchr(in + i, '\n', n - i);
		seg = nl ? (size_t)(nl - (in + i)) : n - i;
		room = sizeof ls->buf - ls->len;
		for (j = 0; j < RF_MIN(seg, room); j++) {
			if (is_junk((unsigned char)in[i + j])) {
				answer(ls, out, out_len, 0, 1);
				return i + j + 1;
			}
		}
		if (seg > room) {
			answer(ls, out, out_len, 0, 1);
			return i + room;
		}
		if (!nl) {
			memcpy(ls->buf + ls->len, in + i, seg);
			ls->len = (uint16_t)(ls->len + seg);
			return n;
		}
		if (!ls->len) {
			line = in + i;  /* whole line in this feed: no copy */
			len = seg;
		} else {
			memcpy(ls->buf + ls->len, in + i, seg);
			line = ls->buf;
			len = ls->len + seg;
			ls->len = 0;
		}
		i += seg + 1;
		if (len && line[len - 1] == '\r')
			len--;
		if (len > RL_LINE_MAX || memchr(line, '\r', len))
			answer(ls, out, out_len, 0, 1);
		else
			answer(ls, out, out_len, len && check(arg, line, len) > 0, 0);
	}
	return i;
}

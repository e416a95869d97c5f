/* rl_clients.c - per-request admission (block list, API keys and tiers,
 * client overrides, bans, then the buckets), the copy-on-write client
 * directory with QSBR reclamation, and the functions the admin API calls. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "common.h"
#include "http_parse.h"
#include "rl_clients.h"

#define US_PER_S        1000000ull

_Static_assert(RF_RL_KEY_IP == (int)RL_KEY_IP && RF_RL_KEY_IP_PATH == (int)RL_KEY_IP_PATH &&
	       RF_RL_KEY_HEADER == (int)RL_KEY_HEADER, "config and limiter key kinds differ");

static struct rl_worker *wk(struct rl *rl, unsigned worker)
{
	return &rl->workers[worker < rl->nworkers ? worker : worker % rl->nworkers];
}

#define COUNT(rl, w, field) \
	atomic_fetch_add_explicit(&wk(rl, w)->field, 1, memory_order_relaxed)

/* ---- bans ----
 * Word: tag (bits 44..63) | level (40..43) | count (30..39) | t (0..29).
 *   level 0, count > 0: t = last rejection; forgotten ban_time later.
 *   level > 0, count 0: banned while now < t (the ban's end); the level is
 *     kept (so a repeat escalates) until ban_len(level) after t.
 *   level > 0, count > 0: counting again after a ban; t = last rejection.
 * A 20-bit tag in a bucket of 8 makes a false match (someone else's ban)
 * at most 8 / 2^20 = 7.6e-6 for a key whose bucket is full of banned keys. */
#define BAN_TAG_MASK    (~0ull << 44)
#define BAN_T_MASK      ((1ull << 30) - 1)
#define BAN_LEN_MAX     (1ull << 28)    /* 8.5 years: t never leaves 30 bits */

static unsigned ban_level(uint64_t w) { return (unsigned)(w >> 40) & 15; }
static unsigned ban_count(uint64_t w) { return (unsigned)(w >> 30) & 0x3ff; }
static uint64_t ban_t(uint64_t w) { return w & BAN_T_MASK; }

static uint64_t ban_word(uint64_t tag, unsigned level, unsigned count, uint64_t t)
{
	if (!level && !count)
		return 0;       /* no state: the slot is free */
	return tag | (uint64_t)level << 40 | (uint64_t)count << 30 | (t & BAN_T_MASK);
}

/* Length of the <level>th ban: ban_time * multiplier^(level - 1). */
static uint64_t ban_len(const struct rl *rl, unsigned level)
{
	uint64_t len = rl->ban_time_s;
	unsigned i;

	for (i = 1; i < level && len < BAN_LEN_MAX; i++)
		len *= rl->ban_mult;
	return RF_MIN(len, BAN_LEN_MAX);
}

static int ban_free(const struct rl *rl, uint64_t w, uint64_t now_s)
{
	if (!w)
		return 1;
	if (!ban_level(w))
		return now_s >= ban_t(w) + rl->ban_time_s;
	return now_s >= ban_t(w) + ban_len(rl, ban_level(w));
}

static uint64_t ban_left(uint64_t w, uint64_t now_s)
{
	return ban_level(w) && !ban_count(w) && ban_t(w) > now_s ? ban_t(w) - now_s : 0;
}

static _Atomic uint64_t *ban_bucket(const struct rl_bans *b, uint64_t h)
{
	return b->w + (((h & 0xffffffffu) * b->nbuckets) >> 32) * RL_SLOTS;
}

/* The key's word in bucket <b>: its index, or -1. */
static int ban_find(const struct rl *rl, _Atomic uint64_t *b, uint64_t tag, uint64_t now_s,
		    uint64_t *out)
{
	uint64_t w;
	int i;

	for (i = 0; i < RL_SLOTS; i++) {
		w = atomic_load_explicit(&b[i], memory_order_relaxed);
		if (w && (w & BAN_TAG_MASK) == tag && !ban_free(rl, w, now_s)) {
			*out = w;
			return i;
		}
	}
	return -1;
}

/* Seconds since rl_init, rounded up so a ban is never shorter than asked. */
static uint64_t secs(const struct rl *rl, uint64_t now_us)
{
	uint64_t d = now_us > rl->epoch_us ? now_us - rl->epoch_us : 0;

	return (d + US_PER_S - 1) / US_PER_S;
}

/* One more consecutive rejection of <h>. Returns the length of the ban it
 * starts (its level in *level_out), or 0. */
static uint64_t ban_reject(struct rl *rl, unsigned worker, uint64_t h, uint64_t now_s,
			   unsigned *level_out)
{
	_Atomic uint64_t *b = ban_bucket(&rl->bans, h);
	uint64_t tag = h & BAN_TAG_MASK, old = 0, nw, len;
	unsigned level, count, j;
	int i;

	for (;;) {
		i = ban_find(rl, b, tag, now_s, &old);
		if (i < 0) {
			for (j = 0; j < RL_SLOTS && i < 0; j++) {
				old = atomic_load_explicit(&b[j], memory_order_relaxed);
				if (ban_free(rl, old, now_s))
					i = (int)j;
			}
			if (i < 0) {
				COUNT(rl, worker, ban_table_full);
				return 0;       /* bans fail open: the buckets still limit */
			}
			level = count = 0;
		} else {
			if (ban_left(old, now_s))
				return 0;       /* banned meanwhile by another worker */
			level = ban_level(old);
			count = ban_count(old);
		}
		len = 0;
		if (++count >= rl->ban_after) {
			level = RF_MIN(level + 1, RL_LEVEL_MAX);
			len = ban_len(rl, level);
			nw = ban_word(tag, level, 0, now_s + len);
		} else {
			nw = ban_word(tag, level, count, now_s);
		}
		if (atomic_compare_exchange_weak(&b[i], &old, nw)) {
			*level_out = level;
			return len;
		}
	}
}

int rl_ban_apply(struct rl *rl, uint64_t h, unsigned level, uint64_t left_s)
{
	uint64_t now_s = secs(rl, rl->clock()), tag = h & BAN_TAG_MASK, old = 0, until;
	_Atomic uint64_t *b;
	unsigned j;
	int i;

	if (!rl->bans.w || !level || !left_s)
		return -EINVAL;
	b = ban_bucket(&rl->bans, h);
	until = now_s + left_s;
	level = RF_MIN(level, RL_LEVEL_MAX);
	for (;;) {
		i = ban_find(rl, b, tag, now_s, &old);
		if (i >= 0 && ban_left(old, now_s) >= left_s)
			return 0;       /* banned here for as long already */
		for (j = 0; j < RL_SLOTS && i < 0; j++) {
			old = atomic_load_explicit(&b[j], memory_order_relaxed);
			if (ban_free(rl, old, now_s))
				i = (int)j;
		}
		if (i < 0)
			return -ENOSPC;         /* fail open, as a local ban does */
		if (atomic_compare_exchange_weak(&b[i], &old, ban_word(tag, level, 0, until)))
			return 0;
	}
}

uint64_t rl_seed(const struct rl *rl)
{
	return rl->seed;
}

void rl_bans_each(struct rl *rl, int64_t wall_now, rl_ban_fn fn, void *arg)
{
	uint64_t now_s = secs(rl, rl->clock()), w, n, i;

	if (!rl->bans.w)
		return;
	n = (uint64_t)rl->bans.nbuckets * RL_SLOTS;
	for (i = 0; i < n; i++) {
		w = atomic_load_explicit(&rl->bans.w[i], memory_order_relaxed);
		if (ban_left(w, now_s))
			fn(arg, (uint32_t)i, w & ~BAN_T_MASK,
			   wall_now + (int64_t)(ban_t(w) - now_s));
	}
}

int rl_ban_restore(struct rl *rl, uint32_t slot, uint64_t word, int64_t until_wall,
		   int64_t wall_now)
{
	uint64_t now_s = secs(rl, rl->clock());

	if (!rl->bans.w || slot >= (uint64_t)rl->bans.nbuckets * RL_SLOTS || !ban_level(word) ||
	    until_wall <= wall_now || until_wall - wall_now > (int64_t)BAN_LEN_MAX)
		return -EINVAL;
	word = ban_word(word & BAN_TAG_MASK, ban_level(word), 0,
			now_s + (uint64_t)(until_wall - wall_now));
	atomic_store_explicit(&rl->bans.w[slot], word, memory_order_relaxed);
	return 0;
}

uint32_t rl_ban_buckets(const struct rl *rl)
{
	return rl->bans.nbuckets;
}

/* An admitted request ends a run of rejections (the level stays). */
static void ban_clear(_Atomic uint64_t *b, int i, uint64_t w)
{
	uint64_t nw = ban_word(w & BAN_TAG_MASK, ban_level(w), 0, ban_t(w));

	/* a lost race means another worker changed the word: theirs is newer */
	atomic_compare_exchange_strong(&b[i], &w, nw);
}

/* ---- the directory ---- */

static const struct rl_entry *dir_find(const struct rl_dir *d, uint64_t h)
{
	uint32_t i, x;

	if (!d || !d->n)
		return NULL;
	for (i = (uint32_t)(h >> 32) & d->mask; (x = d->index[i]) != 0; i = (i + 1) & d->mask)
		if (d->e[x - 1].hash == h)
			return &d->e[x - 1];
	return NULL;
}

static void dir_free(struct rl_dir *d)
{
	if (!d)
		return;
	free(d->e);
	free(d->index);
	free((void *)d->used);
	free(d);
}

/* A directory over <e> with last-use times <used> (n entries each;
 * ownership of both passes). NULL on ENOMEM. */
static struct rl_dir *dir_new(struct rl_entry *e, int64_t *used, uint32_t n)
{
	struct rl_dir *d = calloc(1, sizeof *d);
	uint32_t size = 8, i, j;

	while (size < 2 * (uint64_t)n)
		size *= 2;
	if (d)
		d->index = calloc(size, sizeof *d->index);
	if (!d || !d->index || !used) {
		dir_free(d);
		free(e);
		free(used);
		return NULL;
	}
	d->used = calloc(n ? n : 1, sizeof *d->used);
	if (!d->used) {
		dir_free(d);
		free(e);
		free(used);
		return NULL;
	}
	for (i = 0; i < n; i++)
		atomic_init(&d->used[i], used[i]);
	free(used);
	d->e = e;
	d->n = n;
	d->mask = size - 1;
	for (i = 0; i < n; i++) {
		for (j = (uint32_t)(e[i].hash >> 32) & d->mask; d->index[j]; j = (j + 1) & d->mask)
			;
		d->index[j] = i + 1;
	}
	return d;
}

static uint64_t min_seen(struct rl *rl)
{
	uint64_t m = UINT64_MAX, s;
	uint32_t i;

	for (i = 0; i < rl->nworkers; i++) {
		s = atomic_load_explicit(&rl->workers[i].seen, memory_order_acquire);
		m = RF_MIN(m, s);
	}
	return m;
}

static void reclaim_locked(struct rl *rl)
{
	struct rl_dir **pp = &rl->retired, *d;
	uint64_t m = min_seen(rl);

	while ((d = *pp) != NULL) {
		if (d->retired_at <= m) {
			*pp = d->next;
			dir_free(d);
		} else {
			pp = &d->next;
		}
	}
}

/* Swap in <nd>; the old directory waits for every worker's next quiescent
 * point: the epoch is bumped after the swap, so a worker that reports it
 * has loaded the new pointer for good. */
static void publish(struct rl *rl, struct rl_dir *nd)
{
	struct rl_dir *old = atomic_exchange(&rl->dir, nd);

	if (old) {
		old->retired_at = atomic_fetch_add(&rl->epoch, 1) + 1;
		old->next = rl->retired;
		rl->retired = old;
	}
	reclaim_locked(rl);
}

void rl_quiescent(struct rl *rl, unsigned worker)
{
	struct rl_worker *w = wk(rl, worker);
	uint64_t e = atomic_load_explicit(&rl->epoch, memory_order_acquire);

	/* the store costs a line transfer only after a directory swap */
	if (atomic_load_explicit(&w->seen, memory_order_relaxed) != e)
		atomic_store_explicit(&w->seen, e, memory_order_release);
}

void rl_offline(struct rl *rl, unsigned worker)
{
	atomic_store_explicit(&wk(rl, worker)->seen, UINT64_MAX, memory_order_release);
}

void rl_reclaim(struct rl *rl)
{
	pthread_mutex_lock(&rl->lock);
	reclaim_locked(rl);
	pthread_mutex_unlock(&rl->lock);
}

/* ---- policies ---- */

const struct rl_tier *rl_tier_find(const struct rl *rl, const char *name)
{
	uint32_t i;

	for (i = 0; i < rl->ntiers; i++)
		if (!strcmp(rl->tiers[i].name, name))
			return &rl->tiers[i];
	return NULL;
}

/* The limit a client record gives: override, else tier, else default;
 * and the queue priority of its tier. Sets x->pol and x->priority. */
static int client_policy(const struct rl *rl, struct rl_entry *x)
{
	const struct rl_client *c = &x->c;
	const struct rl_policy *def = &rl->def.pol;
	const struct rl_tier *t = c->tier[0] ? rl_tier_find(rl, c->tier) : NULL;
	struct rl_policy *p = &x->pol;
	uint32_t cap;

	if (c->tier[0] && !t)
		return -ENOENT;
	x->priority = t ? t->priority : 0;
	if (c->capacity || c->rate_per_sec > 0) {
		cap = c->capacity ? c->capacity : def->burst;
		if (c->rate_per_sec > 0)
			return rl_policy_from_rps(p, c->rate_per_sec, cap);
		/* capacity only: the default refill with a different burst */
		if (def->t_us && cap > RL_TAU_MAX / def->t_us)
			return -ERANGE;
		*p = *def;
		p->burst = cap;
		p->tau_us = def->t_us * (cap - 1);
		return 0;
	}
	*p = t ? t->pol : *def;
	return 0;
}

/* ---- set-up ---- */

static _Atomic uint64_t route_seq;

int rl_route_custom(struct rl_route *r, enum rl_key_kind key, const char *hdr,
		    uint32_t rate, uint64_t period_us, uint32_t burst, int require_key)
{
	size_t n = hdr ? strlen(hdr) : 0;

	memset(r, 0, sizeof *r);
	if (key > RL_KEY_HEADER || (key == RL_KEY_HEADER && (!n || n >= RL_HDR_MAX)) ||
	    (require_key && key != RL_KEY_HEADER))
		return -EINVAL;
	r->mode = RL_ROUTE_CUSTOM;
	/* a route's own limit must not read the TAT another policy wrote */
	r->salt = rl_hash(&r, sizeof r, atomic_fetch_add(&route_seq, 1) + 1) | 1;
	r->key = (uint8_t)key;
	r->require_key = !!require_key;
	if (key == RL_KEY_HEADER) {
		memcpy(r->hdr, hdr, n + 1);
		r->hdr_len = (uint8_t)n;
	}
	return rl_policy_init(&r->pol, rate, period_us, burst);
}

void rl_route_off(struct rl_route *r)
{
	memset(r, 0, sizeof *r);
	r->mode = RL_ROUTE_OFF;
}

uint64_t rl_id_hash(const struct rl *rl, const char *id)
{
	return rl_key_id(id, strlen(id), rl->seed);
}

static int id_ok(const char *id)
{
	size_t n = id ? strnlen(id, RL_ID_MAX) : 0;
	size_t i;

	if (!n || n >= RL_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || id[i] == 0x7f)
			return 0;
	return 1;
}

int64_t rl_clock_s(const struct rl *rl)
{
	return (int64_t)((rl->clock ? rl->clock() : rl_now_us()) / US_PER_S);
}

static int dir_from_config(struct rl *rl, const struct rf_ratelimit_conf *rc)
{
	struct rl_entry *e = calloc(rc->napi_keys + 1, sizeof *e);
	int64_t *used = calloc(rc->napi_keys + 1, sizeof *used), now = rl_clock_s(rl);
	uint32_t i, n = 0;
	int err;

	if (!e || !used) {
		free(e);
		free(used);
		return -ENOMEM;
	}
	for (i = 0; i < rc->napi_keys; i++) {
		struct rl_entry *x = &e[n];

		if (!id_ok(rc->api_keys[i].key))
			continue;       /* the config parser already refused these */
		memcpy(x->c.id, rc->api_keys[i].key, strlen(rc->api_keys[i].key) + 1);
		memcpy(x->c.tier, rc->api_keys[i].tier_name, sizeof x->c.tier);
		x->c.is_client = 1;
		x->c.from_config = 1;
		x->hash = rl_id_hash(rl, x->c.id);
		err = client_policy(rl, x);
		if (err) {
			free(e);
			free(used);
			return err;
		}
		used[n++] = now;
	}
	atomic_store(&rl->dir, dir_new(e, used, n));
	return atomic_load(&rl->dir) ? 0 : -ENOMEM;
}

int rl_reseed(struct rl *rl, const struct rf_ratelimit_conf *rc, uint64_t seed)
{
	struct rl_dir *old = (struct rl_dir *)atomic_load(&rl->dir);
	int err;

	rl->seed = seed;
	err = dir_from_config(rl, rc);
	if (err)
		return err;
	if (old)
		dir_free(old);  /* no request has run: nobody reads it */
	return 0;
}

int rl_init(struct rl *rl, const struct rf_config *cfg, unsigned nworkers, uint64_t now_us)
{
	const struct rf_ratelimit_conf *rc = &cfg->ratelimit;
	uint64_t nb;
	uint32_t i;
	int err;

	memset(rl, 0, sizeof *rl);
	if (!nworkers)
		return -EINVAL;
	pthread_mutex_init(&rl->lock, NULL);
	rl->nworkers = nworkers;
	rl->workers = aligned_alloc(64, nworkers * sizeof *rl->workers);
	if (!rl->workers) {
		rl_destroy(rl);
		return -ENOMEM;
	}
	memset(rl->workers, 0, nworkers * sizeof *rl->workers);
	if (getrandom(&rl->seed, sizeof rl->seed, 0) != sizeof rl->seed)
		rl->seed = now_us * 0x9e3779b97f4a7c15ull ^ (uintptr_t)rl;
	if (cfg->cluster.enabled) {
		/* every instance must name a key alike: the seed comes from what
		 * they share, the password (secret) and the prefix */
		const char *pw = cfg->cluster.password ? cfg->cluster.password : "";
		const char *px = cfg->cluster.prefix ? cfg->cluster.prefix : "";

		rl->seed = rl_hash(pw, strlen(pw), rl_hash(px, strlen(px), 0x7265646973ull));
	}
	rl->epoch_us = now_us;
	rl->clock = rl_now_us;
	rl->enabled = rc->enabled;
	if (!rc->enabled)
		return 0;
	rl->headers = !!rc->headers;
	rl->ban_after = rc->ban_after;
	rl->ban_mult = rc->ban_multiplier ? rc->ban_multiplier : 1;
	rl->ban_time_s = (uint32_t)((rc->ban_time_ms + 999) / 1000);
	if (rc->key == RF_RL_KEY_HEADER)
		err = rl_route_custom(&rl->def, RL_KEY_HEADER, rc->key_header, rc->rate.count,
				      rc->rate.period_ms * 1000ull, rc->burst, rc->require_key);
	else
		err = rl_route_custom(&rl->def, (enum rl_key_kind)rc->key, NULL, rc->rate.count,
				      rc->rate.period_ms * 1000ull, rc->burst, 0);
	rl->def.mode = RL_ROUTE_DEFAULT;
	rl->def.salt = 0;       /* the line protocol shares the default buckets */
	if (err)
		goto fail;
	err = -ENOMEM;
	rl->tiers = calloc(rc->ntiers + 1, sizeof *rl->tiers);
	if (!rl->tiers)
		goto fail;
	for (i = 0; i < rc->ntiers; i++) {
		memcpy(rl->tiers[i].name, rc->tiers[i].name, sizeof rl->tiers[i].name);
		rl->tiers[i].priority = rc->tiers[i].priority;
		err = rl_policy_init(&rl->tiers[i].pol, rc->tiers[i].rate.count,
				     rc->tiers[i].rate.period_ms * 1000ull, rc->tiers[i].burst);
		if (err)
			goto fail;
	}
	rl->ntiers = rc->ntiers;
	err = rl_table_init(&rl->table, nworkers, rc->max_keys,
			    rc->table_full ? RL_FULL_DENY : RL_FULL_ALLOW, now_us);
	if (err)
		goto fail;
	if (rl->ban_after) {
		/* bans are rarer than keys: a sixteenth of max_keys, at least 1024 */
		nb = (RF_MAX(rc->max_keys / 16, 1024u) + RL_SLOTS - 1) / RL_SLOTS;
		rl->bans.bytes = nb * RL_SLOTS * sizeof(uint64_t);
		rl->bans.w = mmap(NULL, rl->bans.bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (rl->bans.w == MAP_FAILED) {
			rl->bans.w = NULL;
			err = -ENOMEM;
			goto fail;
		}
		rl->bans.nbuckets = (uint32_t)nb;
	}
	err = dir_from_config(rl, rc);
	if (err)
		goto fail;
	return 0;
fail:
	rl_destroy(rl);
	return err;
}

void rl_destroy(struct rl *rl)
{
	struct rl_dir *d;

	dir_free(atomic_load(&rl->dir));
	while ((d = rl->retired) != NULL) {
		rl->retired = d->next;
		dir_free(d);
	}
	if (rl->bans.w)
		munmap((void *)rl->bans.w, rl->bans.bytes);
	rl_table_free(&rl->table);
	free(rl->tiers);
	free(rl->workers);
	pthread_mutex_destroy(&rl->lock);
	memset(rl, 0, sizeof *rl);
}

/* ---- the request path ---- */

static void strip_bearer(const char **v, uint32_t *n)
{
	if (*n > 7 && rf_ieq(*v, 7, "bearer ")) {
		*v += 7;
		*n -= 7;
		while (*n && (**v == ' ' || **v == '\t')) {
			(*v)++;
			(*n)--;
		}
	}
}

void rl_request_from_http(struct rl_request *rq, const struct rl *rl,
			  const struct rl_route *route, const struct http_req *req,
			  const struct sockaddr *peer)
{
	const struct rl_route *r = route && route->mode == RL_ROUTE_CUSTOM ? route : &rl->def;
	uint32_t i;

	memset(rq, 0, sizeof *rq);
	if (peer && peer->sa_family == AF_INET) {
		rq->ip = &((const struct sockaddr_in *)(const void *)peer)->sin_addr;
		rq->ip_len = 4;
	} else if (peer && peer->sa_family == AF_INET6) {
		rq->ip = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
		rq->ip_len = 16;
	}
	rq->path = req->target;
	rq->path_len = req->target_len;
	if (r->key != RL_KEY_HEADER)
		return;
	for (i = 0; i < req->nhdrs; i++) {
		const struct http_hdr *h = &req->hdrs[i];

		if (h->name_len == r->hdr_len && rf_ieq(h->name, h->name_len, r->hdr)) {
			rq->key = h->value;
			rq->key_len = h->value_len;
			strip_bearer(&rq->key, &rq->key_len);
			if (!rq->key_len)
				rq->key = NULL;         /* an empty key is no key */
			return;
		}
	}
}

/* A request of a known client: note the second it came in (client_ttl).
 * A store only when the second changed; one lost to a concurrent swap of
 * the directory costs at most a second of accuracy. */
static inline void mark_used(const struct rl *rl, const struct rl_dir *d,
			     const struct rl_entry *e, uint64_t now_us)
{
	_Atomic int64_t *u;
	int64_t s;

	if (!e || !e->c.is_client || !atomic_load_explicit(&rl->track_use, memory_order_relaxed))
		return;
	u = &d->used[e - d->e];
	s = (int64_t)(now_us / US_PER_S);
	if (atomic_load_explicit(u, memory_order_relaxed) != s)
		atomic_store_explicit(u, s, memory_order_relaxed);
}

static int deny(struct rl *rl, unsigned worker, struct rl_result *res, int status)
{
	if (status == 401)
		COUNT(rl, worker, unauthorized);
	else
		COUNT(rl, worker, blocked);
	res->status = (uint16_t)status;
	return status;
}

static void ban_verdict(struct rl_verdict *v, const struct rl_policy *p, uint64_t left)
{
	memset(v, 0, sizeof *v);
	v->tracked = 1;
	v->limit = p->burst;
	v->burst = p->burst;
	v->quota = p->quota;
	v->window_s = p->window_s;
	v->reset_s = v->retry_after_s = (uint32_t)RF_MAX(left, 1);
}

/* Ban check, the key's bucket, then (API keys) the address bucket; a
 * rejection counts toward a ban, an admission ends the run. */
static int decide(struct rl *rl, unsigned worker, uint64_t key, const struct rl_policy *pol,
		  uint64_t ip, const struct rl_policy *ippol, uint64_t now_us,
		  struct rl_result *res)
{
	_Atomic uint64_t *bb = NULL;
	uint64_t bw = 0, now_s = 0, len;
	struct rl_verdict v2;
	unsigned level = 0;
	int bi = -1;

	res->headers = rl->headers;
	if (rl->ban_after) {
		now_s = secs(rl, now_us);
		bb = ban_bucket(&rl->bans, key);
		bi = ban_find(rl, bb, key & BAN_TAG_MASK, now_s, &bw);
		if (bi >= 0 && (len = ban_left(bw, now_s)) != 0) {
			ban_verdict(&res->v, pol, len);
			res->banned = 1;
			res->status = 429;
			COUNT(rl, worker, banned);
			return 429;
		}
	}
	rl_check(&rl->table, worker, key, pol, now_us, &res->v);
	if (res->v.allowed && ippol) {
		rl_check(&rl->table, worker, ip, ippol, now_us, &v2);
		if (!v2.allowed)
			rl_refund(&rl->table, key, pol, now_us);        /* rejected: no charge */
		if (!v2.allowed || v2.remaining < res->v.remaining)
			res->v = v2;    /* report the limit that binds */
	}
	if (res->v.allowed && rl->gate && rl->gate(rl->hook_arg, worker, key, pol) == 0) {
		/* the cluster's lease is empty: the local tokens go back */
		rl_refund(&rl->table, key, pol, now_us);
		if (ippol)
			rl_refund(&rl->table, ip, ippol, now_us);
		res->v.allowed = 0;
		res->v.remaining = 0;
		res->v.retry_after_s = RF_MAX(res->v.retry_after_s, 1);
		res->v.reset_s = RF_MAX(res->v.reset_s, 1);
	}
	if (res->v.allowed) {
		if (bi >= 0 && ban_count(bw))
			ban_clear(bb, bi, bw);
		COUNT(rl, worker, admitted);
		return 0;
	}
	if (rl->ban_after && (len = ban_reject(rl, worker, key, now_s, &level)) != 0) {
		COUNT(rl, worker, bans);
		if (rl->on_ban)
			rl->on_ban(rl->hook_arg, key, level, len);
		res->banned = 1;
		res->v.retry_after_s = (uint32_t)RF_MAX(res->v.retry_after_s, len);
		res->v.reset_s = (uint32_t)RF_MAX(res->v.reset_s, len);
	}
	COUNT(rl, worker, rejected);
	res->status = 429;
	return 429;
}

int rl_admit(struct rl *rl, unsigned worker, const struct rl_route *route,
	     const struct rl_request *rq, uint64_t now_us, struct rl_result *res)
{
	const struct rl_route *r = &rl->def;
	const struct rl_entry *ie, *ke = NULL;
	const struct rl_policy *pol, *ippol = NULL;
	const struct rl_dir *d;
	uint64_t ip, key;

	res->status = 0;
	res->headers = 0;
	res->banned = 0;
	res->priority = 0;
	if (!rl->enabled || (route && route->mode == RL_ROUTE_OFF))
		return 0;
	if (route && route->mode == RL_ROUTE_CUSTOM)
		r = route;
	/* valid until this worker's next rl_quiescent() */
	d = atomic_load_explicit(&rl->dir, memory_order_acquire);
	ip = rl_key_ip(rq->ip, rq->ip_len == 4 || rq->ip_len == 16 ? rq->ip_len : 0, rl->seed);
	ie = dir_find(d, ip);
	if (ie && ie->c.blocked)
		return deny(rl, worker, res, 403);
	pol = ie && ie->c.is_client ? &ie->pol : &r->pol;
	mark_used(rl, d, ie, now_us);
	res->priority = ie && ie->c.is_client ? ie->priority : 0;
	key = ip;
	if (r->key == RL_KEY_IP_PATH) {
		key = rl_key_ip_path(ip, rq->path ? rq->path : "", rq->path_len, rl->seed);
	} else if (r->key == RL_KEY_HEADER) {
		if (rq->key) {
			key = rl_key_header(rq->key, rq->key_len, rl->seed);
			ke = dir_find(d, key);
		}
		if (ke && ke->c.blocked)
			return deny(rl, worker, res, 403);
		if (ke && ke->c.is_client) {
			mark_used(rl, d, ke, now_us);
			ippol = pol;    /* the address limit applies besides the key's */
			pol = &ke->pol;
			res->priority = ke->priority;
		} else if (r->require_key) {
			return deny(rl, worker, res, 401);
		} else {
			key = ip;       /* no known key: the address limit alone */
		}
	}
	if (r->salt) {
		key = rl_hash(&key, sizeof key, r->salt);
		ip = rl_hash(&ip, sizeof ip, r->salt);
	}
	return decide(rl, worker, key, pol, ip, ippol, now_us, res);
}

int rl_admit_id(struct rl *rl, unsigned worker, const char *id, size_t len,
		uint64_t now_us, struct rl_result *res)
{
	const struct rl_entry *e;
	const struct rl_dir *d;
	uint64_t key;

	res->status = 0;
	res->headers = 0;
	res->banned = 0;
	if (!rl->enabled)
		return 0;
	key = rl_key_id(id, len, rl->seed);
	d = atomic_load_explicit(&rl->dir, memory_order_acquire);
	e = dir_find(d, key);
	if (e && e->c.blocked)
		return deny(rl, worker, res, 403);
	mark_used(rl, d, e, now_us);
	return decide(rl, worker, key, e && e->c.is_client ? &e->pol : &rl->def.pol, 0, NULL,
		      now_us, res);
}

int rl_line_check(void *arg, const char *key, size_t len)
{
	struct rl_line_ctx *cx = arg;
	struct rl_result res;

	return rl_admit_id(cx->rl, cx->worker, key, len, cx->now_us, &res) == 0;
}

/* ---- admin ---- */

/* Publish a copy of the directory in which <x> replaces the entry with its
 * hash (or is added), or that entry is dropped when <x> is neither a
 * client nor blocked; then carry the key's used tokens over to its new
 * limit. <used> is x's last use, NULL = its old one (now for a new
 * client). With <notify>, rl->on_change sees the change first and may
 * refuse it. Caller holds rl->lock. */
static int commit(struct rl *rl, const struct rl_entry *x, const int64_t *used, int notify)
{
	const struct rl_dir *d = atomic_load(&rl->dir);
	const struct rl_policy *from = &rl->def.pol, *to = x->c.is_client ? &x->pol : from;
	uint32_t n = d ? d->n : 0, i, k = 0;
	int keep = x->c.is_client || x->c.blocked, found = 0, err;
	struct rl_entry *e = malloc((n + 1) * sizeof *e);
	int64_t *uv = malloc((n + 1) * sizeof *uv), xu = used ? *used : rl_clock_s(rl);
	struct rl_policy old;
	struct rl_dir *nd;

	if (!e || !uv) {
		free(e);
		free(uv);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (d->e[i].hash != x->hash) {
			uv[k] = atomic_load_explicit(&d->used[i], memory_order_relaxed);
			e[k++] = d->e[i];
			continue;
		}
		found = 1;
		old = d->e[i].pol;      /* copied: d may be freed by publish() */
		if (d->e[i].c.is_client) {
			from = &old;
			if (!used)
				xu = atomic_load_explicit(&d->used[i], memory_order_relaxed);
		}
		if (keep) {
			uv[k] = xu;
			e[k++] = *x;
		}
	}
	if (keep && !found) {
		uv[k] = xu;
		e[k++] = *x;
	}
	nd = dir_new(e, uv, k);
	if (!nd)
		return -ENOMEM;
	if (notify && rl->on_change) {
		struct rl_client c = x->c;

		if (!keep)
			c.is_client = c.blocked = 0;
		err = rl->on_change(rl->on_change_arg, &c, xu);
		if (err < 0) {
			dir_free(nd);
			return err;
		}
	}
	publish(rl, nd);
	if (rl->on_share && !rl->quiet)
		rl->on_share(rl->hook_arg, &x->c);
	if (rl->table.slots && (from->t_us != to->t_us || from->tau_us != to->tau_us))
		rl_rescale(&rl->table, x->hash, from, to, rl->clock());
	return 0;
}

/* The current entry of <id> copied into <x> (1), or a fresh one (0). */
static int lookup(struct rl *rl, const char *id, struct rl_entry *x)
{
	const struct rl_entry *e;

	memset(x, 0, sizeof *x);
	x->hash = rl_id_hash(rl, id);
	e = dir_find(atomic_load(&rl->dir), x->hash);
	if (e) {
		*x = *e;
		return 1;
	}
	memcpy(x->c.id, id, strlen(id) + 1);
	return 0;
}

enum { PUT_CREATE, PUT_UPDATE, PUT_ANY };

static int client_put(struct rl *rl, const struct rl_client *c, int mode)
{
	struct rl_entry x;
	int had, err;

	if (!c || !id_ok(c->id) || c->rate_per_sec < 0 || c->rate_per_sec != c->rate_per_sec ||
	    memchr(c->tier, 0, sizeof c->tier) == NULL)
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	had = lookup(rl, c->id, &x) && x.c.is_client;
	err = mode == PUT_CREATE && had ? -EEXIST : mode == PUT_UPDATE && !had ? -ENOENT : 0;
	if (!err) {
		x.c.capacity = c->capacity;
		x.c.rate_per_sec = c->rate_per_sec;
		memcpy(x.c.tier, c->tier, sizeof x.c.tier);
		x.c.is_client = 1;
		err = client_policy(rl, &x);
	}
	if (!err)
		err = commit(rl, &x, NULL, 1);
	pthread_mutex_unlock(&rl->lock);
	return err;
}

int rl_client_create(struct rl *rl, const struct rl_client *c)
{
	return client_put(rl, c, PUT_CREATE);
}

int rl_client_update(struct rl *rl, const struct rl_client *c)
{
	return client_put(rl, c, PUT_UPDATE);
}

int rl_client_put(struct rl *rl, const struct rl_client *c)
{
	return client_put(rl, c, PUT_ANY);
}

int rl_client_get(struct rl *rl, const char *id, struct rl_client *out)
{
	struct rl_entry x;
	int found;

	if (!id_ok(id))
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	found = lookup(rl, id, &x);
	pthread_mutex_unlock(&rl->lock);
	if (!found)
		return -ENOENT;
	*out = x.c;
	return 0;
}

int rl_client_delete(struct rl *rl, const char *id)
{
	struct rl_entry x;
	int err = -ENOENT;

	if (!id_ok(id))
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	if (lookup(rl, id, &x) && x.c.is_client) {
		/* a blocked id stays blocked: delete is not unblock */
		x.c.is_client = 0;
		x.c.capacity = 0;
		x.c.rate_per_sec = 0;
		x.c.tier[0] = 0;
		err = commit(rl, &x, NULL, 1);
	}
	pthread_mutex_unlock(&rl->lock);
	return err;
}

size_t rl_client_list(struct rl *rl, size_t offset, struct rl_client *out, size_t max)
{
	const struct rl_dir *d;
	size_t n, i;

	pthread_mutex_lock(&rl->lock);
	d = atomic_load(&rl->dir);
	n = d ? d->n : 0;
	for (i = 0; offset + i < n && i < max; i++)
		out[i] = d->e[offset + i].c;
	pthread_mutex_unlock(&rl->lock);
	return n;
}

int rl_set_tier(struct rl *rl, const char *id, const char *tier)
{
	struct rl_entry x;
	int err;

	if (!id_ok(id) || !tier || strlen(tier) >= RF_NAME_MAX)
		return -EINVAL;
	if (!rl_tier_find(rl, tier))
		return -ENOENT;
	pthread_mutex_lock(&rl->lock);
	lookup(rl, id, &x);
	memcpy(x.c.tier, tier, strlen(tier) + 1);
	x.c.is_client = 1;
	err = client_policy(rl, &x);
	if (!err)
		err = commit(rl, &x, NULL, 1);
	pthread_mutex_unlock(&rl->lock);
	return err;
}

static int set_blocked(struct rl *rl, const char *id, int on)
{
	struct rl_entry x;
	int err = 0;

	if (!id_ok(id))
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	if (!lookup(rl, id, &x) && !on)
		err = -ENOENT;
	else if (!on && !x.c.blocked)
		err = -ENOENT;
	if (!err) {
		x.c.blocked = (uint8_t)on;
		err = commit(rl, &x, NULL, 1);
	}
	pthread_mutex_unlock(&rl->lock);
	return err;
}

int rl_block(struct rl *rl, const char *id)
{
	return set_blocked(rl, id, 1);
}

int rl_unblock(struct rl *rl, const char *id)
{
	return set_blocked(rl, id, 0);
}

/* Set <c> as the whole state of its id: replayed from the store (<used>
 * its last use; the store is not told again) or changed on another
 * instance (the store records it). Neither is shared with the cluster
 * again. */
static int set_record(struct rl *rl, const struct rl_client *c, const int64_t *used)
{
	struct rl_entry x;
	int err = 0;

	if (!rl->enabled)
		return -EOPNOTSUPP;
	if (!c || !id_ok(c->id) || !(c->rate_per_sec >= 0) ||
	    memchr(c->tier, 0, sizeof c->tier) == NULL)
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	lookup(rl, c->id, &x);
	x.c.is_client = !!c->is_client;
	x.c.blocked = !!c->blocked;
	x.c.capacity = c->is_client ? c->capacity : 0;
	x.c.rate_per_sec = c->is_client ? c->rate_per_sec : 0;
	memcpy(x.c.tier, c->is_client ? c->tier : "", c->is_client ? sizeof x.c.tier : 1);
	if (x.c.is_client)
		err = client_policy(rl, &x);
	if (!err) {
		rl->quiet = 1;
		err = commit(rl, &x, used, used == NULL);
		rl->quiet = 0;
	}
	pthread_mutex_unlock(&rl->lock);
	return err;
}

int rl_restore(struct rl *rl, const struct rl_client *c, int64_t used)
{
	return set_record(rl, c, &used);
}

int rl_apply_remote(struct rl *rl, const struct rl_client *c)
{
	return set_record(rl, c, NULL);
}

int rl_sweep(struct rl *rl, uint64_t idle_s, int64_t since, rl_sweep_fn fn, void *arg)
{
	const struct rl_dir *d;
	struct rl_entry *e = NULL, x;
	int64_t *uv = NULL, used, now = rl_clock_s(rl);
	uint32_t n, i, k = 0;
	int expired = 0;
	struct rl_dir *nd;

	pthread_mutex_lock(&rl->lock);
	d = atomic_load(&rl->dir);
	n = d ? d->n : 0;
	if (idle_s) {
		e = malloc((n + 1) * sizeof *e);
		uv = malloc((n + 1) * sizeof *uv);
		if (!e || !uv) {
			free(e);
			free(uv);
			pthread_mutex_unlock(&rl->lock);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		x = d->e[i];
		used = atomic_load_explicit(&d->used[i], memory_order_relaxed);
		if (idle_s && x.c.is_client && !x.c.from_config && used + (int64_t)idle_s <= now) {
			x.c.is_client = 0;
			x.c.capacity = 0;
			x.c.rate_per_sec = 0;
			x.c.tier[0] = 0;
			expired++;
			if (fn)
				fn(arg, &x.c, used);
			if (!x.c.blocked)
				continue;
			x.pol = rl->def.pol;
		} else if (fn && x.c.is_client && !x.c.from_config && used >= since) {
			fn(arg, &x.c, used);
		}
		if (e) {
			uv[k] = used;
			e[k++] = x;
		}
	}
	if (!expired) {
		free(e);
		free(uv);
	} else if ((nd = dir_new(e, uv, k)) != NULL) {
		/* an idle key's bucket is full: no tokens to carry over */
		publish(rl, nd);
	} else {
		expired = -ENOMEM;
	}
	pthread_mutex_unlock(&rl->lock);
	return expired;
}

int rl_usage(struct rl *rl, const char *id, uint64_t now_us, struct rl_usage *out)
{
	struct rl_entry x;
	uint64_t w = 0, now_s = secs(rl, now_us);

	memset(out, 0, sizeof *out);
	if (!id_ok(id))
		return -EINVAL;
	if (!rl->enabled)
		return -ENOENT;
	pthread_mutex_lock(&rl->lock);
	if (!lookup(rl, id, &x) || !x.c.is_client)
		x.pol = rl->def.pol;
	pthread_mutex_unlock(&rl->lock);
	out->c = x.c;
	rl_peek(&rl->table, x.hash, &x.pol, now_us, &out->v);
	if (rl->ban_after &&
	    ban_find(rl, ban_bucket(&rl->bans, x.hash), x.hash & BAN_TAG_MASK, now_s, &w) >= 0) {
		out->rejections = ban_count(w);
		out->ban_level = ban_level(w);
		out->ban_left_s = (uint32_t)ban_left(w, now_s);
	}
	return 0;
}

void rl_stats(struct rl *rl, struct rl_stats *out)
{
	const struct rl_dir *d;
	uint32_t i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < rl->nworkers; i++) {
		const struct rl_worker *w = &rl->workers[i];

		out->admitted += atomic_load_explicit(&w->admitted, memory_order_relaxed);
		out->rejected += atomic_load_explicit(&w->rejected, memory_order_relaxed);
		out->unauthorized += atomic_load_explicit(&w->unauthorized, memory_order_relaxed);
		out->blocked += atomic_load_explicit(&w->blocked, memory_order_relaxed);
		out->banned += atomic_load_explicit(&w->banned, memory_order_relaxed);
		out->bans += atomic_load_explicit(&w->bans, memory_order_relaxed);
		out->ban_table_full += atomic_load_explicit(&w->ban_table_full,
							    memory_order_relaxed);
	}
	if (rl->table.slots)
		rl_table_stats(&rl->table, &out->table);
	pthread_mutex_lock(&rl->lock);
	d = atomic_load(&rl->dir);
	out->clients = d ? d->n : 0;
	pthread_mutex_unlock(&rl->lock);
	out->keys_bytes = rl->table.bytes;
	out->bytes_per_key = rl_table_bytes_per_key(&rl->table);
}

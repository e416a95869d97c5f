/* upstream.c - run-time upstreams and longest-prefix routing (see
 * upstream.h). */
#include <errno.h>
#include <pthread.h>
#include "balance.h"
#include "common.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"

static void route_limits_init(struct runtime *rt);

int runtime_init(struct runtime *rt, struct rf_config *cfg)
{
	uint32_t i, j, n = 0;
	size_t bytes;

	memset(rt, 0, sizeof(*rt));
	rt->cfg = cfg;
	for (i = 0; i < cfg->nupstreams; i++)
		n += cfg->upstreams[i].nservers;
	rt->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*rt->ups));
	/* servers are cache-line aligned (see struct server): calloc is not */
	bytes = (n ? n : 1) * sizeof(*rt->servers);
	rt->servers = aligned_alloc(_Alignof(struct server), bytes);
	rt->route_rl = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*rt->route_rl));
	rt->route_own_rl = calloc(cfg->nroutes ? cfg->nroutes : 1, 1);
	if (!rt->ups || !rt->servers || !rt->route_rl || !rt->route_own_rl) {
		runtime_free(rt);
		return -ENOMEM;
	}
	route_limits_init(rt);
	memset(rt->servers, 0, bytes);
	rt->nservers = n;
	n = 0;
	for (i = 0; i < cfg->nupstreams; i++) {
		struct upstream *up = &rt->ups[i];

		up->conf = &cfg->upstreams[i];
		up->index = i;
		up->servers = &rt->servers[n];
		up->nservers = up->conf->nservers;
		atomic_init(&up->balance, up->conf->balance);
		atomic_init(&up->nejected, 0);
		atomic_init(&up->retry_win, 0);
		for (j = 0; j < up->nservers; j++) {
			struct server *s = &up->servers[j];

			s->conf = &up->conf->servers[j];
			s->up = up;
			s->id = n + j;
			s->index = j;
			/* by address, not position: ip_hash clients stay put when the
			 * list is reordered or the process restarts */
			s->seed = balance_hash_bytes(s->conf->addr.text, strlen(s->conf->addr.text));
			atomic_init(&s->weight, s->conf->weight ? s->conf->weight : 1);
			s->max_conns = (s->conf->given & RF_SRV_MAX_CONNS) ? s->conf->max_conns :
				       up->conf->max_conns;
			up->queueing |= s->max_conns != 0;
			atomic_init(&s->active, 0);
			atomic_init(&s->lat, 0);
			atomic_init(&s->win, 0);
			health_init(s);
		}
		atomic_init(&up->uneven, 0);
		balance_weights_changed(up);
		n += up->nservers;
		if (up->queueing && !(up->qhead = calloc(RF_MAX_WORKERS, sizeof(*up->qhead)))) {
			runtime_free(rt);
			return -ENOMEM;
		}
	}
	return 0;
}

_Atomic(struct runtime *) rf_runtime;

/* Orders taking a reference on the published runtime against a publish
 * dropping the published one: without it a worker could load the pointer,
 * lose the CPU while two reloads publish and free that runtime, then
 * reference freed memory. Taken only when the runtime changes. */
static pthread_mutex_t rt_pub_lock = PTHREAD_MUTEX_INITIALIZER;

struct runtime *runtime_current(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&rt_pub_lock);
	rt = atomic_load_explicit(&rf_runtime, memory_order_acquire);
	if (rt)
		runtime_ref(rt);
	pthread_mutex_unlock(&rt_pub_lock);
	return rt;
}

struct runtime *runtime_publish(struct runtime *rt)
{
	struct runtime *old;

	pthread_mutex_lock(&rt_pub_lock);
	old = atomic_exchange_explicit(&rf_runtime, rt, memory_order_acq_rel);
	pthread_mutex_unlock(&rt_pub_lock);
	return old;
}

static const struct upstream *find_upstream(const struct runtime *rt, const char *name)
{
	uint32_t i;

	for (i = 0; i < rt->cfg->nupstreams; i++)
		if (!strcmp(rt->ups[i].conf->name, name))
			return &rt->ups[i];
	return NULL;
}

static const struct server *find_server(const struct upstream *up, const char *addr)
{
	uint32_t i;

	for (i = 0; i < up->nservers; i++)
		if (!strcmp(up->servers[i].conf->addr.text, addr))
			return &up->servers[i];
	return NULL;
}

static void server_inherit(struct server *s, const struct server *o)
{
	if (s->conf->weight == o->conf->weight)
		atomic_store(&s->weight, atomic_load(&o->weight));
	if (health_inherit(s, o))
		atomic_fetch_add(&s->up->nejected, 1);
	atomic_store(&s->lat, atomic_load(&o->lat));
	atomic_store(&s->win, atomic_load(&o->win));
	metrics_inherit(&s->m, &o->m);
}

void runtime_inherit(struct runtime *rt, const struct runtime *old)
{
	uint32_t i, j;

	for (i = 0; i < rt->cfg->nupstreams; i++) {
		struct upstream *up = &rt->ups[i];
		const struct upstream *o = find_upstream(old, up->conf->name);

		if (!o)
			continue;
		if (up->conf->balance == o->conf->balance)
			atomic_store(&up->balance, atomic_load(&o->balance));
		atomic_store(&up->retry_win, atomic_load(&o->retry_win));
		for (j = 0; j < up->nservers; j++) {
			const struct server *os = find_server(o, up->servers[j].conf->addr.text);

			if (os)
				server_inherit(&up->servers[j], os);
		}
		balance_weights_changed(up);
	}
}

struct runtime *runtime_new(struct rf_config *cfg, struct rl *rl, uint32_t generation)
{
	struct runtime *rt = malloc(sizeof(*rt));

	if (!rt) {
		config_free(cfg);
		return NULL;
	}
	if (runtime_init(rt, cfg) < 0) {
		free(rt);
		return NULL;
	}
	rt->rl = rl;
	rt->generation = generation;
	atomic_init(&rt->refs, 1);
	return rt;
}

void runtime_ref(struct runtime *rt)
{
	atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
}

void runtime_unref(struct runtime *rt)
{
	if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
		return;
	runtime_free(rt);
	free(rt);
}

void runtime_free(struct runtime *rt)
{
	uint32_t i;

	for (i = 0; rt->ups && rt->cfg && i < rt->cfg->nupstreams; i++)
		rf_free(&rt->ups[i].qhead);
	rf_free(&rt->route_rl);
	rf_free(&rt->route_own_rl);
	rf_free(&rt->ups);
	rf_free(&rt->servers);
	if (rt->cfg)
		config_free(rt->cfg);
	rt->cfg = NULL;
}

const struct rf_route_conf *route_find(const struct runtime *rt, const char *path,
				       uint32_t len)
{
	const struct rf_config *cfg = rt->cfg;
	uint32_t i;

	/* Routes are sorted longest prefix first: the first match wins. */
	for (i = 0; i < cfg->nroutes; i++) {
		const struct rf_route_conf *r = &cfg->routes[i];
		size_t plen = strlen(r->prefix);

		if (plen <= len && memcmp(path, r->prefix, plen) == 0)
			return r;
	}
	return NULL;
}

struct upstream *route_lookup(const struct runtime *rt, const char *path,
			      uint32_t len)
{
	const struct rf_route_conf *r = route_find(rt, path, len);

	return r ? &rt->ups[r->upstream] : NULL;
}

const struct rl_route *route_limit(const struct runtime *rt,
				   const struct rf_route_conf *route)
{
	size_t i = (size_t)(route - rt->cfg->routes);

	return rt->route_own_rl[i] ? &rt->route_rl[i] : NULL;
}

/* A route with ratelimit=off, or its own rate, burst or key, gets its own
 * limit and buckets; one whose require_key alone differs gets its own
 * limit over [ratelimit]'s buckets; the others use [ratelimit]'s. A route
 * keyed by API key inherits [ratelimit]'s require_key unless it sets one. */
static void route_limits_init(struct runtime *rt)
{
	const struct rf_ratelimit_conf *g = &rt->cfg->ratelimit;
	uint32_t i;

	for (i = 0; i < rt->cfg->nroutes; i++) {
		const struct rf_route_conf *r = &rt->cfg->routes[i];
		const struct rf_rate *rate = r->rate.count ? &r->rate : &g->rate;
		uint32_t burst = r->burst ? r->burst : r->rate.count ? 0 : g->burst;
		enum rl_key_kind kind = r->rl_key == 1 ? RL_KEY_IP :
			r->rl_key == 2 ? RL_KEY_IP_PATH : (enum rl_key_kind)g->key;
		int own = r->rate.count || r->burst || r->rl_key;
		int req = r->require_key ? r->require_key == 2 :
			g->require_key && kind == RL_KEY_HEADER;

		if (!r->ratelimit) {
			rl_route_off(&rt->route_rl[i]);
			rt->route_own_rl[i] = 1;
		} else if (own || req != !!g->require_key) {
			rt->route_own_rl[i] = rl_route_custom(&rt->route_rl[i], kind,
				kind == RL_KEY_HEADER ? g->key_header : NULL, rate->count,
				(uint64_t)rate->period_ms * 1000, burst, req) == 0;
			if (!rt->route_own_rl[i])
				log_warn("msg=\"route limit invalid, the [ratelimit] one applies\" route=%s",
					 r->prefix);
			else if (!own)
				rt->route_rl[i].salt = 0;       /* same limit: same buckets */
			else if (rt->cfg->cluster.enabled)
				/* every instance names the route's keys alike */
				rt->route_rl[i].salt = rl_hash(r->prefix, strlen(r->prefix),
							       0x726f757465ull) | 1;
		}
	}
}

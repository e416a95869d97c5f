/* upstream.c - run-time upstreams, longest-prefix routing and round-robin
 * selection with passive health (see upstream.h). */
#include <errno.h>
#include "common.h"
#include "log.h"
#include "upstream.h"

/* Back-off after a failure: 1 s doubling per consecutive failure, capped. */
#define DOWN_BASE_MS 1000
#define DOWN_MAX_MS  30000

int runtime_init(struct runtime *rt, struct rf_config *cfg)
{
	uint32_t i, j, n = 0;

	memset(rt, 0, sizeof(*rt));
	rt->cfg = cfg;
	for (i = 0; i < cfg->nupstreams; i++)
		n += cfg->upstreams[i].nservers;
	rt->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*rt->ups));
	rt->servers = calloc(n ? n : 1, sizeof(*rt->servers));
	if (!rt->ups || !rt->servers) {
		runtime_free(rt);
		return -ENOMEM;
	}
	rt->nservers = n;
	n = 0;
	for (i = 0; i < cfg->nupstreams; i++) {
		struct upstream *up = &rt->ups[i];

		up->conf = &cfg->upstreams[i];
		up->index = i;
		up->servers = &rt->servers[n];
		up->nservers = up->conf->nservers;
		for (j = 0; j < up->nservers; j++) {
			struct server *s = &up->servers[j];

			s->conf = &up->conf->servers[j];
			s->id = n + j;
			s->weight = s->conf->weight ? s->conf->weight : 1;
		}
		n += up->nservers;
	}
	return 0;
}

void runtime_free(struct runtime *rt)
{
	rf_free(&rt->ups);
	rf_free(&rt->servers);
	if (rt->cfg)
		config_free(rt->cfg);
	rt->cfg = NULL;
}

struct upstream *route_lookup(const struct runtime *rt, const char *path,
			      uint32_t len)
{
	const struct rf_config *cfg = rt->cfg;
	uint32_t i;

	/* Routes are sorted longest prefix first: the first match wins. */
	for (i = 0; i < cfg->nroutes; i++) {
		const struct rf_route_conf *r = &cfg->routes[i];
		size_t plen = strlen(r->prefix);

		if (plen <= len && memcmp(path, r->prefix, plen) == 0)
			return &rt->ups[r->upstream];
	}
	return NULL;
}

static int server_available(struct server *s, uint64_t now_ms)
{
	return atomic_load_explicit(&s->down_until, memory_order_relaxed) <= now_ms;
}

struct server *balance_pick(struct upstream *up, struct balance_state *bs,
			    uint64_t tried, uint64_t now_ms)
{
	struct server *fallback = NULL;
	uint32_t i, n = up->nservers;

	for (i = 0; i < n; i++) {
		uint32_t idx = (bs->rr + i) % n;
		struct server *s = &up->servers[idx];

		if (tried & (1ULL << (idx % 64)))
			continue;
		if (server_available(s, now_ms)) {
			bs->rr = idx + 1;
			return s;
		}
		if (!fallback)
			fallback = s;
	}
	if (fallback)
		bs->rr = (uint32_t)(fallback - up->servers) + 1;
	return fallback;
}

void server_report_failure(struct server *s, uint64_t now_ms)
{
	uint32_t fails = atomic_fetch_add(&s->fails, 1) + 1;
	uint64_t delay = DOWN_BASE_MS;

	while (--fails && delay < DOWN_MAX_MS)
		delay *= 2;
	if (delay > DOWN_MAX_MS)
		delay = DOWN_MAX_MS;
	atomic_store(&s->down_until, now_ms + delay);
	if (delay == DOWN_BASE_MS)
		log_warn("msg=\"server marked down\" server=%s backoff_ms=%llu",
			 s->conf->addr.text, (unsigned long long)delay);
}

void server_report_success(struct server *s)
{
	/* Plain loads first: a healthy server costs no atomic write. */
	if (atomic_load_explicit(&s->fails, memory_order_relaxed)) {
		atomic_store(&s->fails, 0);
		atomic_store(&s->down_until, 0);
		log_info("msg=\"server back up\" server=%s", s->conf->addr.text);
	}
}

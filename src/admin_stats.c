/* admin_stats.c - the admin API's read-only views: /stats (JSON),
 * /metrics (Prometheus text), /logs (the in-memory log ring) and /events
 * (Server-Sent Events with the live figures the dashboard draws). */
#include <errno.h>
#include <time.h>
#include "common.h"
#include "persist.h"
#include "admin_int.h"
#include "balance.h"
#include "cache.h"
#include "cluster.h"
#include "health.h"
#include "io.h"
#include "logring.h"
#include "metrics.h"
#include "proxy_cache.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static const char *level_name(int level)
{
	return level >= 0 && (size_t)level < ARRAY_SIZE(level_names) ? level_names[level] : "info";
}

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

static uint64_t uptime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u -
		metrics_started_us()) / 1000000u;
}

/* Sum of every worker's counters. */
static void worker_totals(struct worker_stats *t)
{
	uint32_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < rf_nworkers; i++) {
		struct worker_stats *s = &rf_workers[i].stats;

		STAT_ADD(t->accepted, STAT_GET(s->accepted));
		STAT_ADD(t->requests, STAT_GET(s->requests));
		STAT_ADD(t->rejected_conns, STAT_GET(s->rejected_conns));
		STAT_ADD(t->errors, STAT_GET(s->errors));
		STAT_ADD(t->active, STAT_GET(s->active));
	}
}

/* ---- JSON pieces shared by /stats, /upstreams and /events ---- */

void admin_write_server(struct outbuf *o, const struct server *s, uint64_t now)
{
	struct health_view v;
	struct metrics_view m;
	unsigned k;

	health_view(s, now, &v);
	metrics_read(s, &m);
	ob_puts(o, "{\"address\":");
	admin_json_str(o, s->conf->addr.text, strlen(s->conf->addr.text));
	ob_printf(o, ",\"weight\":%u,\"state\":\"%s\",\"circuit\":\"%s\","
		  "\"draining\":%s,\"held\":%s,\"active\":%u,\"max_conns\":%u,"
		  "\"requests\":%llu,\"failures\":%llu,\"outcomes\":{",
		  (unsigned)atomic_load_explicit(&s->weight, memory_order_relaxed),
		  health_state_str(v.state), circuit_state_str(v.circuit),
		  v.draining ? "true" : "false", v.held ? "true" : "false", v.active,
		  s->max_conns, ull(m.requests), ull(m.failures));
	for (k = 0; k < METRICS_NOUTCOMES; k++)
		ob_printf(o, "%s\"%s\":%llu", k ? "," : "", metrics_outcome_name(k),
			  ull(m.outcome[k]));
	ob_printf(o, "},\"response_time_us\":%u,\"response_time_avg_us\":%llu,"
		  "\"consecutive_failures\":%u,\"slow_start_permille\":%u}",
		  v.ewma_us, ull(m.responses ? m.lat_sum_us / m.responses : 0), v.fails,
		  v.weight_permille);
}

void admin_write_upstream(struct outbuf *o, const struct upstream *up, uint64_t now)
{
	struct metrics_view tot, m;
	uint32_t j, active = 0;

	memset(&tot, 0, sizeof(tot));
	for (j = 0; j < up->nservers; j++) {
		metrics_read(&up->servers[j], &m);
		metrics_add(&tot, &m);
		active += atomic_load_explicit(&up->servers[j].active, memory_order_relaxed);
	}
	ob_puts(o, "{\"name\":");
	admin_json_str(o, up->conf->name, strlen(up->conf->name));
	ob_printf(o, ",\"balance\":\"%s\",\"active\":%u,\"requests\":%llu,\"failures\":%llu,"
		  "\"responses\":%llu,\"latency_sum_us\":%llu,\"response_time_avg_us\":%llu,",
		  config_balance_name(balance_strategy(up)), active, ull(tot.requests),
		  ull(tot.failures), ull(tot.responses), ull(tot.lat_sum_us),
		  ull(tot.responses ? tot.lat_sum_us / tot.responses : 0));
	ob_printf(o, "\"queue\":{\"length\":%u,\"size\":%u,\"timeout_ms\":%u,"
		  "\"timeouts\":%llu,\"rejected\":%llu,\"served\":%llu},\"servers\":[",
		  atomic_load_explicit(&up->queued, memory_order_relaxed), up->conf->queue_size,
		  up->conf->queue_timeout_ms,
		  ull(atomic_load_explicit(&up->queue_timeouts, memory_order_relaxed)),
		  ull(atomic_load_explicit(&up->queue_rejected, memory_order_relaxed)),
		  ull(atomic_load_explicit(&up->queue_served, memory_order_relaxed)));
	for (j = 0; j < up->nservers; j++) {
		if (j)
			ob_puts(o, ",");
		admin_write_server(o, &up->servers[j], now);
	}
	ob_puts(o, "]}");
}

static void write_ratelimit(struct outbuf *o, struct rl *rl)
{
	struct rl_stats st;

	if (!rl || !rl->enabled) {
		ob_puts(o, "{\"enabled\":false}");
		return;
	}
	rl_stats(rl, &st);
	ob_printf(o, "{\"enabled\":true,\"allowed\":%llu,\"limited\":%llu,\"banned\":%llu,"
		  "\"blocked\":%llu,\"unauthorized\":%llu,\"bans\":%llu,\"clients\":%llu,"
		  "\"tiers\":%u,\"table_full\":%llu}",
		  ull(st.admitted), ull(st.rejected), ull(st.banned), ull(st.blocked),
		  ull(st.unauthorized), ull(st.bans), ull(st.clients), rl->ntiers,
		  ull(st.table.table_full));
}

/* The cache figures, or {"enabled":false} without [cache]. */
static void write_cache(struct outbuf *o)
{
	struct cache *c = rf_cache;
	struct cache_stats st;
	uint64_t lookups;

	if (!c) {
		ob_puts(o, "{\"enabled\":false}");
		return;
	}
	cache_stats(c, &st);
	lookups = st.hits + st.misses;
	ob_printf(o, "{\"enabled\":true,\"hits\":%llu,\"misses\":%llu,\"hit_ratio\":",
		  ull(st.hits), ull(st.misses));
	admin_json_double(o, lookups ? (double)st.hits / (double)lookups : 0);
	ob_printf(o, ",\"bytes\":%llu,\"entries\":%llu,\"limit\":%llu,\"inserts\":%llu,"
		  "\"evictions\":%llu,\"expired\":%llu,\"bypass\":%llu}",
		  ull(st.bytes), ull(st.entries), ull(st.limit), ull(st.inserts),
		  ull(st.evictions), ull(st.expired), ull(st.outcome[CACHE_OUT_BYPASS]));
}

/* The state store: {"enabled":false} without [store] path. */
static void write_store(struct outbuf *o)
{
	struct store_stats st;
	const char *path;

	if (persist_stats(&st, &path) < 0 || !st.durable) {
		ob_puts(o, "{\"enabled\":false}");
		return;
	}
	ob_puts(o, "{\"enabled\":true,\"path\":");
	admin_json_str(o, path, strlen(path));
	ob_printf(o, ",\"records\":%llu,\"journal_bytes\":%llu,\"journal_records\":%llu,"
		  "\"sequence\":%llu,\"snapshot_sequence\":%llu,\"compactions\":%llu,"
		  "\"dropped_bytes\":%llu,\"write_errors\":%llu}",
		  ull(st.records), ull(st.journal_bytes), ull(st.journal_records),
		  ull(st.last_seq), ull(st.snapshot_seq), ull(st.compactions),
		  ull(st.dropped_bytes), ull(st.write_errors));
}

/* ---- GET /stats ---- */

void admin_get_stats(struct admin_ctx *x)
{
	const struct runtime *rt = x->rt;
	uint64_t now = x->w->wheel.now;
	struct outbuf *o = &x->out;
	struct worker_stats t;
	uint32_t i;

	worker_totals(&t);
	ob_printf(o, "{\"uptime_s\":%llu,\"io\":\"%s\",\"generation\":%u,\"connections\":%u,"
		  "\"totals\":{\"accepted\":%llu,\"requests\":%llu,\"errors\":%llu,"
		  "\"rejected_connections\":%llu,\"active\":%llu},\"workers\":[",
		  ull(uptime_s()), io_backend_name(rf_io_backend), rt->generation, atomic_load(&rf_total_conns),
		  ull(STAT_GET(t.accepted)), ull(STAT_GET(t.requests)), ull(STAT_GET(t.errors)),
		  ull(STAT_GET(t.rejected_conns)), ull(STAT_GET(t.active)));
	for (i = 0; i < rf_nworkers; i++) {
		struct worker_stats *st = &rf_workers[i].stats;

		ob_printf(o, "%s{\"id\":%u,\"accepted\":%llu,\"requests\":%llu,"
			  "\"errors\":%llu,\"rejected_connections\":%llu,\"active\":%llu}",
			  i ? "," : "", i, ull(STAT_GET(st->accepted)),
			  ull(STAT_GET(st->requests)), ull(STAT_GET(st->errors)),
			  ull(STAT_GET(st->rejected_conns)), ull(STAT_GET(st->active)));
	}
	ob_puts(o, "],\"upstreams\":[");
	for (i = 0; i < rt->cfg->nupstreams; i++) {
		if (i)
			ob_puts(o, ",");
		admin_write_upstream(o, &rt->ups[i], now);
	}
	ob_puts(o, "],\"ratelimit\":");
	write_ratelimit(o, rt->rl);
	ob_puts(o, ",\"cache\":");
	write_cache(o);
	ob_puts(o, ",\"store\":");
	write_store(o);
	if (rf_cluster) {
		ob_puts(o, ",");
		cluster_stats_json(rf_cluster, o);
	}
	ob_puts(o, "}\n");
}

/* ---- GET /metrics ---- */

static void family(struct outbuf *o, const char *name, const char *type, const char *help)
{
	ob_printf(o, "# HELP ringfront_%s %s\n# TYPE ringfront_%s %s\n",
		  name, help, name, type);
}

static void server_labels(struct outbuf *o, const struct server *s)
{
	ob_puts(o, "{upstream=");
	admin_label(o, s->up->conf->name);
	ob_puts(o, ",server=");
	admin_label(o, s->conf->addr.text);
}

/* One gauge per server: <get> gives its value. */
static void server_gauge(struct outbuf *o, const struct runtime *rt, uint64_t now,
			 const char *name, const char *help,
			 double (*get)(const struct server *, const struct health_view *))
{
	struct health_view v;
	uint32_t i;

	family(o, name, "gauge", help);
	for (i = 0; i < rt->nservers; i++) {
		health_view(&rt->servers[i], now, &v);
		ob_printf(o, "ringfront_%s", name);
		server_labels(o, &rt->servers[i]);
		ob_puts(o, "} ");
		admin_json_double(o, get(&rt->servers[i], &v));
		ob_puts(o, "\n");
	}
}

static double g_up(const struct server *s, const struct health_view *v)
{
	return v->state == HEALTH_UP;
}

static double g_draining(const struct server *s, const struct health_view *v)
{
	return v->draining;
}

static double g_circuit(const struct server *s, const struct health_view *v)
{
	return v->circuit;
}

static double g_active(const struct server *s, const struct health_view *v)
{
	return v->active;
}

static double g_max_conns(const struct server *s, const struct health_view *v)
{
	return s->max_conns;
}

static double g_weight(const struct server *s, const struct health_view *v)
{
	return atomic_load_explicit(&s->weight, memory_order_relaxed);
}

static double g_ewma(const struct server *s, const struct health_view *v)
{
	return v->ewma_us / 1e6;
}

static void metrics_workers(struct outbuf *o)
{
	static const struct {
		const char *name;
		const char *type;
		const char *help;
		size_t off;
	} rows[] = {
		{ "connections_accepted_total", "counter", "Client connections accepted.",
		  offsetof(struct worker_stats, accepted) },
		{ "connections_rejected_total", "counter",
		  "Client connections closed at once because max_connections was reached.",
		  offsetof(struct worker_stats, rejected_conns) },
		{ "requests_total", "counter", "Requests received.",
		  offsetof(struct worker_stats, requests) },
		{ "errors_total", "counter", "Requests answered with an error ringfront made.",
		  offsetof(struct worker_stats, errors) },
		{ "connections_active", "gauge", "Client connections open now.",
		  offsetof(struct worker_stats, active) },
		{ "io_waits_total", "counter",
		  "Waits for events (io_uring_enter or epoll_wait calls of the event loop).",
		  offsetof(struct worker_stats, waits) },
		{ "io_batched_waits_total", "counter",
		  "Of those, waits for a batch of completions (batch_wait_us).",
		  offsetof(struct worker_stats, batched_waits) },
	};
	size_t r;
	uint32_t i;

	for (r = 0; r < ARRAY_SIZE(rows); r++) {
		family(o, rows[r].name, rows[r].type, rows[r].help);
		for (i = 0; i < rf_nworkers; i++) {
			_Atomic uint64_t *v = (_Atomic uint64_t *)(void *)
				((char *)&rf_workers[i].stats + rows[r].off);

			ob_printf(o, "ringfront_%s{worker=\"%u\"} %llu\n", rows[r].name, i,
				  ull(atomic_load_explicit(v, memory_order_relaxed)));
		}
	}
}

/* The waiting requests of each upstream (queue.h). */
static void metrics_queues(struct outbuf *o, const struct runtime *rt)
{
	static const struct {
		const char *name;
		const char *type;
		const char *help;
		size_t off;
		int wide;               /* a 64-bit counter, else the 32-bit gauge */
	} rows[] = {
		{ "upstream_queue_length", "gauge",
		  "Requests waiting for a server under max_conns, all workers.",
		  offsetof(struct upstream, queued), 0 },
		{ "upstream_queue_timeouts_total", "counter",
		  "Requests answered 503 after waiting queue_timeout.",
		  offsetof(struct upstream, queue_timeouts), 1 },
		{ "upstream_queue_rejected_total", "counter",
		  "Requests answered 503 at once: every server full and the queue full (or none).",
		  offsetof(struct upstream, queue_rejected), 1 },
		{ "upstream_queue_served_total", "counter",
		  "Requests that waited, then got a server.",
		  offsetof(struct upstream, queue_served), 1 },
	};
	size_t r;
	uint32_t u;

	for (r = 0; r < ARRAY_SIZE(rows); r++) {
		family(o, rows[r].name, rows[r].type, rows[r].help);
		for (u = 0; u < rt->cfg->nupstreams; u++) {
			const char *p = (const char *)&rt->ups[u] + rows[r].off;
			uint64_t v = rows[r].wide ?
				atomic_load_explicit((const _Atomic uint64_t *)(const void *)p,
						     memory_order_relaxed) :
				atomic_load_explicit((const _Atomic uint32_t *)(const void *)p,
						     memory_order_relaxed);

			ob_printf(o, "ringfront_%s{upstream=", rows[r].name);
			admin_label(o, rt->ups[u].conf->name);
			ob_printf(o, "} %llu\n", ull(v));
		}
	}
}

static void metrics_servers(struct outbuf *o, const struct runtime *rt, uint64_t now)
{
	struct metrics_view m;
	uint32_t i, u, j;
	unsigned k;
	uint64_t cum;

	family(o, "server_requests_total", "counter",
	       "Attempts on a backend server by how they ended (ok, 5xx, connect_fail, "
	       "reset, timeout, abort).");
	for (i = 0; i < rt->nservers; i++) {
		metrics_read(&rt->servers[i], &m);
		for (k = 0; k < METRICS_NOUTCOMES; k++) {
			ob_puts(o, "ringfront_server_requests_total");
			server_labels(o, &rt->servers[i]);
			ob_printf(o, ",outcome=\"%s\"} %llu\n", metrics_outcome_name(k),
				  ull(m.outcome[k]));
		}
	}
	server_gauge(o, rt, now, "server_up", "1 when the server is up (not down or ejected).",
		     g_up);
	server_gauge(o, rt, now, "server_draining", "1 while the server is drained by the admin API.",
		     g_draining);
	server_gauge(o, rt, now, "server_circuit_state",
		     "Circuit breaker: 0 closed, 1 open, 2 half-open.", g_circuit);
	server_gauge(o, rt, now, "server_active_requests", "Requests in flight on the server.",
		     g_active);
	server_gauge(o, rt, now, "server_max_conns",
		     "Most requests in flight on the server (max_conns); 0 = unlimited.", g_max_conns);
	server_gauge(o, rt, now, "server_weight", "Balancing weight of the server.", g_weight);
	server_gauge(o, rt, now, "server_response_time_ewma_seconds",
		     "Moving average of the server's response time.", g_ewma);

	family(o, "upstream_response_time_seconds", "histogram",
	       "Time from sending a request to a backend to its complete response.");
	for (u = 0; u < rt->cfg->nupstreams; u++) {
		const struct upstream *up = &rt->ups[u];
		struct metrics_view tot;

		memset(&tot, 0, sizeof(tot));
		for (j = 0; j < up->nservers; j++) {
			metrics_read(&up->servers[j], &m);
			metrics_add(&tot, &m);
		}
		cum = 0;
		for (k = 0; k < METRICS_NBUCKETS; k++) {
			cum += tot.bucket[k];
			ob_puts(o, "ringfront_upstream_response_time_seconds_bucket{upstream=");
			admin_label(o, up->conf->name);
			if (k == METRICS_NBUCKETS - 1)
				ob_puts(o, ",le=\"+Inf\"}");
			else
				ob_printf(o, ",le=\"%g\"}", metrics_bound_us(k) / 1e6);
			ob_printf(o, " %llu\n", ull(cum));
		}
		ob_puts(o, "ringfront_upstream_response_time_seconds_sum{upstream=");
		admin_label(o, up->conf->name);
		ob_printf(o, "} %.6f\n", tot.lat_sum_us / 1e6);
		ob_puts(o, "ringfront_upstream_response_time_seconds_count{upstream=");
		admin_label(o, up->conf->name);
		ob_printf(o, "} %llu\n", ull(cum));
	}
}

static void counter1(struct outbuf *o, const char *name, const char *type,
		     const char *help, uint64_t v)
{
	family(o, name, type, help);
	ob_printf(o, "ringfront_%s %llu\n", name, ull(v));
}

void admin_get_metrics(struct admin_ctx *x)
{
	const struct runtime *rt = x->rt;
	struct outbuf *o = &x->out;
	struct cache *c = rf_cache;
	struct rl_stats rs;

	x->ctype = "text/plain; version=0.0.4; charset=utf-8";
	counter1(o, "uptime_seconds", "gauge", "Seconds since ringfront started.", uptime_s());
	metrics_workers(o);
	metrics_servers(o, rt, x->w->wheel.now);
	metrics_queues(o, rt);
	memset(&rs, 0, sizeof(rs));
	if (rt->rl && rt->rl->enabled)
		rl_stats(rt->rl, &rs);
	counter1(o, "ratelimit_allowed_total", "counter", "Requests the rate limiter admitted.",
		 rs.admitted);
	counter1(o, "ratelimit_limited_total", "counter",
		 "Requests rejected with 429 because their bucket was empty.", rs.rejected);
	counter1(o, "ratelimit_banned_total", "counter",
		 "Requests rejected with 429 because their key was banned.", rs.banned);
	counter1(o, "ratelimit_blocked_total", "counter",
		 "Requests rejected with 403 because their key or address is blocked.", rs.blocked);
	counter1(o, "ratelimit_unauthorized_total", "counter",
		 "Requests rejected with 401 for a missing or unknown API key.", rs.unauthorized);
	counter1(o, "ratelimit_clients", "gauge", "Clients and blocked ids known to the limiter.",
		 rs.clients);
	if (c) {
		struct cache_stats cs;

		cache_stats(c, &cs);
		counter1(o, "cache_hits_total", "counter",
			 "Cache lookups answered from the cache (fresh, stale or revalidated).",
			 cs.hits);
		counter1(o, "cache_misses_total", "counter", "Cache lookups that missed.", cs.misses);
		counter1(o, "cache_evictions_total", "counter",
			 "Entries evicted to stay within memory.", cs.evictions);
		counter1(o, "cache_bytes", "gauge", "Bytes held by the cache.", cs.bytes);
		counter1(o, "cache_entries", "gauge", "Entries in the cache.", cs.entries);
	}
	if (rf_cluster)
		cluster_metrics(rf_cluster, o);
}

/* ---- GET /logs ---- */

void admin_get_logs(struct admin_ctx *x)
{
	struct logring_line *lines;
	char arg[32], *end;
	unsigned long n = 100, level = LOG_DEBUG, i;
	unsigned long long after = 0;
	size_t got, k, first;
	int rc;

	if ((rc = admin_query(x, "n", arg, sizeof(arg))) >= 0) {
		n = strtoul(arg, &end, 10);
		if (!rc || *end || n < 1 || n > LOGRING_LINES) {
			admin_error(x, 400, "n must be a number from 1 to %d", LOGRING_LINES);
			return;
		}
	}
	if (admin_query(x, "level", arg, sizeof(arg)) >= 0) {
		for (level = 0; level < ARRAY_SIZE(level_names); level++)
			if (!strcmp(arg, level_names[level]))
				break;
		if (level == ARRAY_SIZE(level_names)) {
			admin_error(x, 400, "level must be error, warn, info or debug");
			return;
		}
	}
	if ((rc = admin_query(x, "after", arg, sizeof(arg))) >= 0) {
		after = strtoull(arg, &end, 10);
		if (!rc || *end) {
			admin_error(x, 400, "after must be a log line's seq");
			return;
		}
	}
	lines = malloc(LOGRING_LINES * sizeof(*lines));
	if (!lines) {
		admin_error(x, 503, "out of memory");
		return;
	}
	got = logring_read(after, lines, LOGRING_LINES);
	/* the newest <n> of the lines at or above the level */
	for (k = 0, i = got; i > 0 && k < n; i--)
		if (lines[i - 1].level <= (int)level)
			k++;
	first = i;
	ob_printf(&x->out, "{\"last_seq\":%llu,\"lines\":[", ull(logring_last_seq()));
	for (k = first, i = 0; k < got; k++) {
		if (lines[k].level > (int)level)
			continue;
		ob_printf(&x->out, "%s{\"seq\":%llu,\"level\":\"%s\",\"text\":", i++ ? "," : "",
			  ull(lines[k].seq), level_name(lines[k].level));
		admin_json_str(&x->out, lines[k].text, lines[k].len);
		ob_puts(&x->out, "}");
	}
	ob_puts(&x->out, "]}\n");
	free(lines);
}

/* ---- live figures: GET /events and the dashboard ---- */

void admin_write_live(struct worker *w, struct outbuf *o, unsigned nlogs)
{
	const struct runtime *rt = w->rt;
	struct logring_line *lines = NULL;
	struct worker_stats t;
	struct timespec ts;
	size_t got = 0, k;
	uint32_t i;

	clock_gettime(CLOCK_REALTIME, &ts);
	worker_totals(&t);
	ob_printf(o, "{\"time_ms\":%llu,\"uptime_s\":%llu,\"workers\":%u,\"requests\":%llu,"
		  "\"errors\":%llu,\"connections\":%llu,\"upstreams\":[",
		  ull((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u),
		  ull(uptime_s()), rf_nworkers, ull(STAT_GET(t.requests)),
		  ull(STAT_GET(t.errors)), ull(STAT_GET(t.active)));
	for (i = 0; i < rt->cfg->nupstreams; i++) {
		if (i)
			ob_puts(o, ",");
		admin_write_upstream(o, &rt->ups[i], w->wheel.now);
	}
	ob_puts(o, "],\"ratelimit\":");
	write_ratelimit(o, rt->rl);
	ob_puts(o, ",\"cache\":");
	write_cache(o);
	ob_puts(o, ",\"logs\":[");
	if (nlogs) {
		lines = malloc(nlogs * sizeof(*lines));
		got = lines ? logring_read(0, lines, nlogs) : 0;
	}
	for (k = 0; k < got; k++) {
		ob_printf(o, "%s{\"seq\":%llu,\"level\":\"%s\",\"text\":", k ? "," : "",
			  ull(lines[k].seq), level_name(lines[k].level));
		admin_json_str(o, lines[k].text, lines[k].len);
		ob_puts(o, "}");
	}
	free(lines);
	ob_puts(o, "]}");
}

int admin_sse_event(struct worker *w, struct outbuf *out)
{
	size_t at = out->len;

	ob_puts(out, "data: ");
	admin_write_live(w, out, 20);
	ob_puts(out, "\n\n");
	if (out->failed) {
		out->len = at;          /* usable again, without the torn event */
		out->failed = 0;
		return -ENOMEM;
	}
	return 0;
}

void admin_get_events(struct admin_ctx *x)
{
	x->ctype = "text/event-stream; charset=utf-8";
	x->sse = x->ar->meth != HTTP_M_HEAD;   /* HEAD: just the head, with a length */
	/* EventSource reconnects this long after the stream ends */
	ob_printf(&x->out, "retry: %d\n\n", ADMIN_SSE_INTERVAL_MS);
	if (admin_sse_event(x->w, &x->out) < 0)
		admin_error(x, 500, "event too large");
}

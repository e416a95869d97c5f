/* cluster.c - the cluster's life on worker 0: two Redis connections
 * (commands; a subscriber for change notices and purges), the sync tick
 * that sends lease batches through one Lua script, queued records and
 * purges, the fallback when Redis is unreachable, and the /stats and
 * /metrics views. The request path's part is cl_gate() (via rl->gate). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cluster_int.h"
#include "common.h"
#include "log.h"
#include "outbuf.h"
#include "rl_clients.h"
#include "worker.h"

struct cluster *rf_cluster;

#define BATCH_KEYS      256     /* keys per script call */
#define BATCHES_PER_TICK 64     /* the rest of a large table waits a tick */
#define PING_MS         2000    /* the subscriber's keep-alive */
#define FREE_EXTRA_MS   10000   /* a dormant key keeps its slot this much longer */

/* GCRA over a whole batch, server-side, atomic. Per key (KEYS[i]) five
 * ARGV: T (us per token), tau (us), force (tokens spent on credit, charged
 * whatever the bucket holds), take (tokens wanted), ret (tokens given
 * back). Returns the tokens granted per key. Redis's own clock (TIME)
 * keeps the instances' clocks out of it. */
static const char lease_script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local out = {}\n"
	"for i = 1, #KEYS do\n"
	"  local b = (i - 1) * 5\n"
	"  local T = tonumber(ARGV[b + 1])\n"
	"  local tau = tonumber(ARGV[b + 2])\n"
	"  local force = tonumber(ARGV[b + 3])\n"
	"  local take = tonumber(ARGV[b + 4])\n"
	"  local ret = tonumber(ARGV[b + 5])\n"
	"  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
	"  if tat < now then tat = now end\n"
	"  tat = tat - ret * T\n"
	"  if tat < now then tat = now end\n"
	"  tat = tat + force * T\n"
	"  local n = math.floor((tau + T - (tat - now)) / T)\n"
	"  if n > take then n = take end\n"
	"  if n < 0 then n = 0 end\n"
	"  tat = tat + n * T\n"
	"  if tat > now then\n"
	"    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX',\n"
	"               math.floor((tat - now) / 1000) + 1000)\n"
	"  else\n"
	"    redis.call('DEL', KEYS[i])\n"
	"  end\n"
	"  out[i] = n\n"
	"end\n"
	"return out\n";

static void set_error(struct cluster *cl, const char *why)
{
	pthread_mutex_lock(&cl->lock);
	snprintf(cl->last_error, sizeof(cl->last_error), "%s", why);
	pthread_mutex_unlock(&cl->lock);
}

/* ---- the request path ---- */

static int cl_gate(void *arg, unsigned worker, uint64_t key, const struct rl_policy *p)
{
	struct cluster *cl = arg;
	int rc;

	if (!atomic_load_explicit(&cl->up, memory_order_relaxed)) {
		if (cl->cc->fallback == RF_CLUSTER_FALLBACK_DENY) {
			atomic_fetch_add_explicit(&cl->n.fallback_denied, 1, memory_order_relaxed);
			return 0;
		}
		return -1;      /* the local limit alone */
	}
	rc = cl_take(&cl->table, key, p);
	if (rc < 0)
		atomic_fetch_add_explicit(&cl->n.unmanaged, 1, memory_order_relaxed);
	else if (!rc)
		atomic_fetch_add_explicit(&cl->n.lease_denied, 1, memory_order_relaxed);
	return rc;
}

/* A ban started here (request path, once per ban): the others ban the key
 * too, for what is left of it when they hear of it. */
static void cl_on_ban(void *arg, uint64_t key, unsigned level, uint64_t len_s)
{
	char id[20], json[64];

	snprintf(id, sizeof(id), "%016llx", (unsigned long long)key);
	snprintf(json, sizeof(json), "{\"level\":%u,\"left\":%llu}", level,
		 (unsigned long long)len_s);
	cluster_record_changed(arg, "ban", id, json);
}

static void cl_on_change(void *arg, const struct rl_client *c)
{
	struct cluster *cl = arg;
	char json[512];

	if (!c->is_client && !c->blocked) {
		cluster_record_changed(cl, "client", c->id, NULL);
		return;
	}
	if (cluster_client_json(c, json, sizeof(json)) > 0)
		cluster_record_changed(cl, "client", c->id, json);
}

/* ---- state ---- */

static void update_up(struct cluster *cl)
{
	int up = cl->main.state == RCONN_ST_READY && cl->sub.state == RCONN_ST_READY;
	char err[160];

	atomic_store_explicit(&cl->v_state, cl->main.state, memory_order_relaxed);
	atomic_store_explicit(&cl->v_cur, cl->main.cur, memory_order_relaxed);
	atomic_store_explicit(&cl->v_connects, cl->main.connects, memory_order_relaxed);
	atomic_store_explicit(&cl->v_failures, cl->main.failures, memory_order_relaxed);
	if (up == atomic_load(&cl->up))
		return;
	atomic_store(&cl->up, up);
	pthread_mutex_lock(&cl->lock);
	snprintf(err, sizeof(err), "%s", cl->last_error);
	if (up)
		cl->up_since_ms = cl->w->wheel.now;
	else
		cl->down_since_ms = cl->w->wheel.now;
	pthread_mutex_unlock(&cl->lock);
	if (up) {
		log_info("msg=\"cluster joined: limits are global\" instance=%s redis=%s",
			 cl->cc->instance, cl->main.addrs[cl->main.cur].text);
		cl->warned_down = 0;
	} else if (!cl->warned_down && !cl->stopping) {
		/* once per outage, not once per attempt */
		log_warn("msg=\"redis unreachable, cluster fallback active\" instance=%s fallback=%s "
			 "error=\"%s\"", cl->cc->instance,
			 cl->cc->fallback == RF_CLUSTER_FALLBACK_DENY ? "deny" : "local", err);
		cl->warned_down = 1;
	}
}

static void on_subscribed(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = arg;

	if (r && r->v[0].type != RR_ERROR)
		cl->need_full_load = 1;     /* notices were missed while away */
}

static void on_script_loaded(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = arg;

	cl->script_loading = 0;
	if (r && r->v[0].type == RR_BULK && r->v[0].n == 40) {
		memcpy(cl->sha, r->v[0].p, 40);
		cl->sha[40] = 0;
	}
}

static void on_conn_state(void *owner, struct rconn *c, int up, const char *why)
{
	struct cluster *cl = owner;

	if (!up) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%s: %s", c->name, why ? why : "lost");
		set_error(cl, msg);
		if (c == &cl->main) {
			cl->sha[0] = 0;
			cl->script_loading = cl->full_loading = 0;
		}
	} else if (c == &cl->sub) {
		if (rconn_sendv(c, on_subscribed, cl, "SUBSCRIBE", cl->ch_events, cl->ch_purge,
				NULL) < 0)
			set_error(cl, "subscriber: out of memory");
		return;         /* up once the subscription is confirmed: see tick */
	} else {
		cl->script_loading = 1;
		if (rconn_sendv(c, on_script_loaded, cl, "SCRIPT", "LOAD", lease_script, NULL) < 0)
			cl->script_loading = 0;
	}
	update_up(cl);
}

/* ---- lease sync ---- */

struct batch {
	struct cluster *cl;
	uint32_t n;
	struct cl_item items[];
};

static void on_batch(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct batch *b = arg;
	struct cluster *cl = b->cl;
	uint32_t i;
	int e;

	if (r && r->v[0].type == RR_ERROR) {
		if (r->v[0].n >= 8 && !memcmp(r->v[0].p, "NOSCRIPT", 8))
			cl->sha[0] = 0;         /* flushed: EVAL next time, then load it again */
		else
			set_error(cl, "lease script failed");
		atomic_fetch_add_explicit(&cl->n.sync_errors, 1, memory_order_relaxed);
	}
	for (i = 0; i < b->n; i++) {
		int64_t n = -1;

		if (r && r->v[0].type == RR_ARRAY && (e = rr_elem(r, 0, i)) >= 0 &&
		    r->v[e].type == RR_INT)
			n = r->v[e].n;
		if (n > 0)
			atomic_fetch_add_explicit(&cl->n.granted, (uint64_t)n, memory_order_relaxed);
		cl_sync_done(&cl->table, &b->items[i], n);
	}
	free(b);
}

static int put_num(struct rr_buf *args, uint64_t v)
{
	char s[24];
	int n = snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	char hdr[16];
	int h = snprintf(hdr, sizeof(hdr), "$%d\r\n", n);

	if (rr_buf_put(args, hdr, (size_t)h) < 0 || rr_buf_put(args, s, (size_t)n) < 0)
		return -ENOMEM;
	return rr_buf_put(args, "\r\n", 2);
}

static int put_str(struct rr_buf *args, const char *s, size_t n)
{
	char hdr[24];
	int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);

	if (rr_buf_put(args, hdr, (size_t)h) < 0 || rr_buf_put(args, s, n) < 0)
		return -ENOMEM;
	return rr_buf_put(args, "\r\n", 2);
}

/* EVALSHA sha|EVAL script, nkeys, keys..., 5 numbers per key. */
static int send_batch(struct cluster *cl, struct batch *b)
{
	struct rr_buf cmd = { 0 };
	const char *px = cl->cc->prefix;
	char hdr[32], name[160];
	uint32_t i;
	int rc = 0, h;

	h = snprintf(hdr, sizeof(hdr), "*%u\r\n", 3 + b->n * 6);
	rc |= rr_buf_put(&cmd, hdr, (size_t)h);
	if (cl->sha[0]) {
		rc |= put_str(&cmd, "EVALSHA", 7);
		rc |= put_str(&cmd, cl->sha, 40);
	} else {
		rc |= put_str(&cmd, "EVAL", 4);
		rc |= put_str(&cmd, lease_script, sizeof(lease_script) - 1);
	}
	rc |= put_num(&cmd, b->n);
	for (i = 0; i < b->n; i++) {
		h = snprintf(name, sizeof(name), "%srl:%016llx", px,
			     (unsigned long long)b->items[i].key);
		rc |= put_str(&cmd, name, (size_t)h);
	}
	for (i = 0; i < b->n; i++) {
		const struct cl_item *it = &b->items[i];

		rc |= put_num(&cmd, it->t_us);
		rc |= put_num(&cmd, it->tau_us);
		rc |= put_num(&cmd, it->force);
		rc |= put_num(&cmd, it->take);
		rc |= put_num(&cmd, it->ret);
	}
	if (!rc)
		rc = rconn_queue(&cl->main, &cmd, on_batch, b);
	rr_buf_free(&cmd);
	return rc;
}

static void sync_leases(struct cluster *cl)
{
	uint64_t now = cl->w->wheel.now, min_idle = 10ull * cl->cc->sync_interval_ms;
	uint32_t k, i;
	struct batch *b;

	for (k = 0; k < BATCHES_PER_TICK; k++) {
		b = malloc(sizeof(*b) + BATCH_KEYS * sizeof(b->items[0]));
		if (!b)
			return;
		b->cl = cl;
		b->n = cl_sync_collect(&cl->table, now, RF_MAX(min_idle, 1000u), FREE_EXTRA_MS,
				       b->items, BATCH_KEYS, &cl->cursor);
		if (!b->n) {
			free(b);
			break;
		}
		if (send_batch(cl, b) < 0) {
			for (i = 0; i < b->n; i++)
				cl_sync_done(&cl->table, &b->items[i], -1);
			free(b);
			break;
		}
		if (!cl->cursor)
			break;          /* the walk reached the end */
	}
	atomic_fetch_add_explicit(&cl->n.syncs, 1, memory_order_relaxed);
}

static void on_pong(void *arg, struct rconn *c, const struct rr_reply *r)
{
	struct cluster *cl = arg;

	if (r && c->state == RCONN_ST_READY && !atomic_load(&cl->up))
		update_up(cl);
}

static void on_tick(struct timer *t)
{
	struct cluster *cl = container_of(t, struct cluster, tick);
	uint64_t now = cl->w->wheel.now;

	if (cl->stopping)
		return;
	if (cl->main.state == RCONN_ST_READY) {
		cl_send_queued(cl);
		if (cl->need_full_load && !cl->full_loading)
			cl_full_load(cl);
		if (atomic_load(&cl->up))
			sync_leases(cl);
		rconn_flush(&cl->main);
	}
	if (cl->sub.state == RCONN_ST_READY && now - cl->last_ping_ms >= PING_MS &&
	    !rconn_pending(&cl->sub)) {
		cl->last_ping_ms = now;
		rconn_sendv(&cl->sub, on_pong, cl, "PING", NULL);
	}
	update_up(cl);
	timer_set(&cl->w->wheel, &cl->tick, cl->cc->sync_interval_ms);
}

/* ---- life ---- */

int cluster_create(const struct rf_config *cfg, struct rl *rl, unsigned nworkers,
		   struct cluster **out)
{
	const struct rf_cluster_conf *cc = &cfg->cluster;
	struct cluster *cl = calloc(1, sizeof(*cl));
	size_t n = strlen(cc->prefix) + 16;
	uint32_t rnd;

	*out = NULL;
	if (!cl)
		return -ENOMEM;
	cl->cfg = cfg;
	cl->cc = cc;
	cl->rl = rl;
	pthread_mutex_init(&cl->lock, NULL);
	cl->qtail = &cl->q;
	cl->k_clients = malloc(n);
	cl->ch_events = malloc(n);
	cl->ch_purge = malloc(n);
	cl->k_state = malloc(n);
	if (!cl->k_clients || !cl->ch_events || !cl->ch_purge || !cl->k_state ||
	    cl_table_init(&cl->table, cc->max_keys, cc->lease) < 0) {
		cluster_destroy(cl);
		return -ENOMEM;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)cl;
	/* two instances given one name (or host name) still tell apart */
	snprintf(cl->self, sizeof(cl->self), "%.*s#%08x", RF_NAME_MAX - 1, cc->instance, rnd);
	snprintf(cl->k_clients, n, "%sclients", cc->prefix);
	snprintf(cl->k_state, n, "%sstate", cc->prefix);
	snprintf(cl->ch_events, n, "%sevents", cc->prefix);
	snprintf(cl->ch_purge, n, "%spurge", cc->prefix);
	snprintf(cl->last_error, sizeof(cl->last_error), "not connected yet");
	cl->need_full_load = 1;
	timer_init(&cl->tick, on_tick);
	if (rl->enabled)
		rl->gate = cl_gate;
	rl->on_share = cl_on_change;
	rl->on_ban = cl_on_ban;
	rl->hook_arg = cl;
	*out = cl;
	return 0;
}

void cluster_destroy(struct cluster *cl)
{
	if (!cl)
		return;
	if (cl->rl && cl->rl->hook_arg == cl) {
		cl->rl->gate = NULL;
		cl->rl->on_share = NULL;
		cl->rl->on_ban = NULL;
		cl->rl->hook_arg = NULL;
	}
	cl_queue_free(cl);
	cl_table_free(&cl->table);
	free(cl->k_clients);
	free(cl->k_state);
	free(cl->ch_events);
	free(cl->ch_purge);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

void cluster_worker_start(struct cluster *cl, struct worker *w)
{
	if (w->id != 0)
		return;
	cl->w = w;
	rconn_init(&cl->main, w, "main", cl->cc);
	cl->main.owner = cl;
	cl->main.on_state = on_conn_state;
	rconn_init(&cl->sub, w, "subscriber", cl->cc);
	cl->sub.owner = cl;
	cl->sub.on_state = on_conn_state;
	cl->sub.on_push = cl_on_message;
	timer_set(&w->wheel, &cl->tick, cl->cc->sync_interval_ms);
}

void cluster_worker_stop(struct cluster *cl, struct worker *w)
{
	if (w->id != 0 || !cl->w)
		return;
	cl->stopping = 1;
	timer_cancel(&w->wheel, &cl->tick);
	/* what is queued and the changes made last go out before the close
	 * only if already on the wire: a stop does not wait on Redis */
	rconn_stop(&cl->main);
	rconn_stop(&cl->sub);
	atomic_store(&cl->up, 0);
}

int cluster_worker_busy(struct cluster *cl, const struct worker *w)
{
	return w->id == 0 && cl->w && (rconn_busy(&cl->main) || rconn_busy(&cl->sub));
}

void cluster_worker_free(struct cluster *cl, struct worker *w)
{
	if (w->id != 0 || !cl->w)
		return;
	rconn_free(&cl->main);
	rconn_free(&cl->sub);
}

/* ---- views ---- */


#define N(f) ((unsigned long long)atomic_load_explicit(&cl->f, memory_order_relaxed))

void cluster_stats_json(struct cluster *cl, struct outbuf *o)
{
	int up = atomic_load(&cl->up);
	uint32_t cur = atomic_load_explicit(&cl->v_cur, memory_order_relaxed) % cl->cc->nredis;
	const char *st = rconn_state_str(atomic_load_explicit(&cl->v_state, memory_order_relaxed));
	char err[160];

	uint32_t queued;

	pthread_mutex_lock(&cl->lock);
	snprintf(err, sizeof(err), "%s", up ? "" : cl->last_error);
	queued = cl->qlen;
	pthread_mutex_unlock(&cl->lock);
	ob_puts(o, "\"cluster\":{\"instance\":");
	ob_json_str(o, cl->cc->instance, strlen(cl->cc->instance));
	ob_printf(o, ",\"connected\":%s,\"state\":\"%s\",\"fallback_active\":%s,\"fallback\":\"%s\","
		  "\"redis\":", up ? "true" : "false", st, up ? "false" : "true",
		  cl->cc->fallback == RF_CLUSTER_FALLBACK_DENY ? "deny" : "local");
	ob_json_str(o, cl->cc->redis[cur].text, strlen(cl->cc->redis[cur].text));
	ob_puts(o, ",\"last_error\":");
	if (err[0])
		ob_json_str(o, err, strlen(err));
	else
		ob_puts(o, "null");
	ob_printf(o, ",\"lease\":%u,\"sync_interval_ms\":%u,\"keys\":%u,\"granted\":%llu,"
		  "\"lease_denied\":%llu,\"unmanaged\":%llu,\"fallback_denied\":%llu,\"syncs\":%llu,"
		  "\"sync_errors\":%llu,\"records_sent\":%llu,\"records_applied\":%llu,"
		  "\"purges_sent\":%llu,\"purges_applied\":%llu,\"full_loads\":%llu,"
		  "\"connects\":%llu,\"failures\":%llu,\"queued\":%u}",
		  cl->cc->lease, cl->cc->sync_interval_ms, cl_active(&cl->table), N(n.granted),
		  N(n.lease_denied), N(n.unmanaged), N(n.fallback_denied), N(n.syncs), N(n.sync_errors),
		  N(n.records_sent), N(n.records_applied), N(n.purges_sent), N(n.purges_applied),
		  N(n.full_loads), N(v_connects), N(v_failures), queued);
}

void cluster_metrics(struct cluster *cl, struct outbuf *o)
{
	int up = atomic_load(&cl->up);

	ob_puts(o, "# HELP ringfront_cluster_connected 1 while both Redis connections are ready "
		"(limits are global), 0 while the fallback applies\n"
		"# TYPE ringfront_cluster_connected gauge\n");
	ob_printf(o, "ringfront_cluster_connected %d\n", up);
	ob_puts(o, "# HELP ringfront_cluster_fallback_active 1 while Redis is unreachable\n"
		"# TYPE ringfront_cluster_fallback_active gauge\n");
	ob_printf(o, "ringfront_cluster_fallback_active %d\n", !up);
	ob_puts(o, "# HELP ringfront_cluster_lease_keys keys holding a lease\n"
		"# TYPE ringfront_cluster_lease_keys gauge\n");
	ob_printf(o, "ringfront_cluster_lease_keys %u\n", cl_active(&cl->table));
	ob_puts(o, "# HELP ringfront_cluster_events_total cluster events by kind\n"
		"# TYPE ringfront_cluster_events_total counter\n");
	ob_printf(o, "ringfront_cluster_events_total{kind=\"tokens_granted\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"lease_denied\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"unmanaged\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"fallback_denied\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"syncs\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"sync_errors\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"records_sent\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"records_applied\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"purges_sent\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"purges_applied\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"redis_connects\"} %llu\n"
		  "ringfront_cluster_events_total{kind=\"redis_failures\"} %llu\n",
		  N(n.granted), N(n.lease_denied), N(n.unmanaged), N(n.fallback_denied), N(n.syncs),
		  N(n.sync_errors), N(n.records_sent), N(n.records_applied), N(n.purges_sent),
		  N(n.purges_applied), N(v_connects), N(v_failures));
}

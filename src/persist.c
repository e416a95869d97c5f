/* persist.c - the state store's kinds (see persist.h): JSON records for
 * rate-limiter clients, upstream strategies and server weight/drain, the
 * callbacks that apply them at start-up and after a reload, the one place
 * each kind is changed from, and the periodic compaction with stale-client
 * expiry. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "cluster.h"
#include "common.h"
#include "health.h"
#include "json.h"
#include "log.h"
#include "outbuf.h"
#include "persist.h"
#include "reload.h"
#include "rl_clients.h"

#define K_META          "meta"          /* id "rl_seed": the key-hash seed */
#define K_BANS          "bans"          /* id "table": the bans in force */
#define K_CLIENT        "client"
#define K_SERVICE       "service"
#define K_UPSTREAM      "upstream"
#define K_SERVER        "server"
#define JSON_TOKS       32
#define RL_BANS_KEPT    10000   /* bans in force a restart keeps, at most */
#define VALUE_MAX       512     /* the JSON of one of these records */

/* The process's persistence. Set up by persist_start() before the workers
 * run; lock serialises the balancing changes with reloads. */
static struct {
	struct store *st;               /* owned */
	pthread_mutex_t lock;
	struct runtime *target;         /* runtime the balancing kinds apply to */
	struct rl *rl;
	char **config_keys;             /* owned: sorted ids of [api_keys] */
	uint32_t nconfig_keys;
	uint64_t interval_ms;           /* snapshot_interval */
	uint64_t ttl_s;                 /* client_ttl, 0 = never */
	uint64_t journal_max;
	uint64_t next_ms;               /* next periodic compaction, monotonic */
	int64_t last_sweep;             /* rl clock seconds of the previous sweep */
} P = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t mono_ms(void)
{
	return rl_now_us() / 1000;
}

static int64_t wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* Parse a record's value (a JSON object) into <d>. Returns 0 or -EINVAL. */
static int parse_obj(struct json_doc *d, struct json_tok *toks, const char *json, size_t len)
{
	if (json_parse(d, json, len, toks, JSON_TOKS) < 0 || json_type(d, 0) != JSON_OBJECT)
		return -EINVAL;
	return 0;
}

/* Member <key> of the record as a bool (0 when absent). -EINVAL if bad. */
static int get_bool(const struct json_doc *d, const char *key, int *out)
{
	int t = json_get(d, 0, key);

	*out = 0;
	return t < 0 ? 0 : json_bool(d, t, out);
}

/* ---- client ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int in_config(const char *id)
{
	return P.nconfig_keys &&
	       bsearch(&id, P.config_keys, P.nconfig_keys, sizeof(char *), cmp_str) != NULL;
}

/* The record of an entry; NULL-length 0 when it is gone and needs none. */
static size_t client_json(char *buf, size_t cap, const struct rl_client *c, int64_t used)
{
	int64_t used_wall = wall_s() - (rl_clock_s(P.rl) - used);
	int n;

	if (!c->is_client && !c->blocked) {
		/* a key from [api_keys] deleted at run time stays deleted */
		if (!in_config(c->id))
			return 0;
		n = snprintf(buf, cap, "{\"client\":false,\"blocked\":false}");
	} else if (!c->is_client) {
		n = snprintf(buf, cap, "{\"client\":false,\"blocked\":true}");
	} else {
		n = snprintf(buf, cap, "{\"client\":true,\"blocked\":%s,\"capacity\":%u,"
			     "\"rate_per_sec\":%.17g,\"tier\":\"%s\",\"used\":%lld}",
			     c->blocked ? "true" : "false", c->capacity, c->rate_per_sec,
			     c->tier, (long long)used_wall);
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* rl->on_change: every admin change of a client, key, tier or block, in
 * the order the limiter makes them (its lock is held). */
static int on_client_change(void *arg, const struct rl_client *c, int64_t used)
{
	char buf[VALUE_MAX];
	size_t n = client_json(buf, sizeof(buf), c, used);

	return n ? store_put(P.st, K_CLIENT, c->id, buf, n) : store_del(P.st, K_CLIENT, c->id);
}

/* rl_sweep(): expired clients leave the next snapshot, and clients used
 * since the last sweep get their new last-use time in it. */
static void on_client_sweep(void *arg, const struct rl_client *c, int64_t used)
{
	char buf[VALUE_MAX];
	size_t n = client_json(buf, sizeof(buf), c, used);

	if (!c->is_client)
		log_info("msg=\"stale client removed\" id=\"%s\" idle_s=%lld", c->id,
			 (long long)(rl_clock_s(P.rl) - used));
	store_note(P.st, K_CLIENT, c->id, n ? buf : NULL, n);
}

static int apply_client(void *arg, const char *id, const char *json, size_t len)
{
	struct json_tok toks[JSON_TOKS];
	struct json_doc d;
	struct rl_client c;
	uint64_t cap = 0, used_wall;
	int64_t used = rl_clock_s(P.rl);
	int t, v;

	memset(&c, 0, sizeof(c));
	if (strlen(id) >= sizeof(c.id))
		return -EINVAL;
	memcpy(c.id, id, strlen(id) + 1);
	if (!json)
		return rl_restore(P.rl, &c, used);
	if (parse_obj(&d, toks, json, len) < 0 || get_bool(&d, "client", &v) < 0)
		return -EINVAL;
	c.is_client = (uint8_t)v;
	if (get_bool(&d, "blocked", &v) < 0)
		return -EINVAL;
	c.blocked = (uint8_t)v;
	if ((t = json_get(&d, 0, "capacity")) >= 0 && json_u64(&d, t, UINT32_MAX, &cap) < 0)
		return -EINVAL;
	c.capacity = (uint32_t)cap;
	if ((t = json_get(&d, 0, "rate_per_sec")) >= 0 &&
	    (json_double(&d, t, &c.rate_per_sec) < 0 || c.rate_per_sec < 0))
		return -EINVAL;
	if ((t = json_get(&d, 0, "tier")) >= 0 && json_str(&d, t, c.tier, sizeof(c.tier)) < 0)
		return -EINVAL;
	if ((t = json_get(&d, 0, "used")) >= 0 && json_u64(&d, t, INT64_MAX, &used_wall) == 0)
		used -= RF_MAX(wall_s() - (int64_t)used_wall, 0);
	return rl_restore(P.rl, &c, used);
}

/* ---- service ---- */

/* {"servers":["host:port",...],"route":"/p/","balance":"least_conn"} */
/* A service record into <s> (service_free() it). Returns 0 or -EINVAL. */
static int service_from_json(const char *id, const char *json, size_t len, struct service *s)
{
	struct json_tok toks[JSON_TOKS + SERVICE_MAX_SERVERS];
	char addrs[SERVICE_MAX_SERVERS][128], route[256], balance[32], err[256];
	const char *ptrs[SERVICE_MAX_SERVERS];
	struct json_doc d;
	uint32_t i, n;
	int t, a;

	if (json_parse(&d, json, len, toks, ARRAY_SIZE(toks)) < 0 ||
	    json_type(&d, 0) != JSON_OBJECT || json_type(&d, (a = json_get(&d, 0, "servers"))) !=
	    JSON_ARRAY || (n = d.toks[a].size) > SERVICE_MAX_SERVERS)
		return -EINVAL;
	for (i = 0, t = json_child(a); i < n; i++, t = json_next(&d, t)) {
		if (json_str(&d, t, addrs[i], sizeof(addrs[i])) <= 0)
			return -EINVAL;
		ptrs[i] = addrs[i];
	}
	if ((t = json_get(&d, 0, "route")) >= 0 && json_str(&d, t, route, sizeof(route)) <= 0)
		return -EINVAL;
	if ((a = json_get(&d, 0, "balance")) >= 0 &&
	    json_str(&d, a, balance, sizeof(balance)) <= 0)
		return -EINVAL;
	return service_make(s, id, ptrs, n, t >= 0 ? route : NULL, a >= 0 ? balance : NULL, err,
			    sizeof(err)) < 0 ? -EINVAL : 0;
}

/* {"servers":["host:port",...],"route":"/p/","balance":"least_conn"} */
static int apply_service(void *arg, const char *id, const char *json, size_t len)
{
	struct service s;
	int rc;

	if (!json)
		return reload_service_restore(NULL, id);
	if (service_from_json(id, json, len, &s) < 0)
		return -EINVAL;
	rc = reload_service_restore(&s, NULL);
	service_free(&s);
	return rc;
}

/* Another instance's change (cluster.h): the same, but at run time. */
static int apply_service_now(const char *id, const char *json, size_t len)
{
	char err[256];
	struct service s;
	int rc;

	if (!json) {
		rc = reload_service(NULL, id, err, sizeof(err));
		return rc == -ENOENT ? 0 : rc;
	}
	if (service_from_json(id, json, len, &s) < 0)
		return -EINVAL;
	rc = reload_service(&s, NULL, err, sizeof(err));
	if (rc < 0)
		log_warn("msg=\"service from another instance refused\" service=%s error=\"%s\"",
			 id, err);
	service_free(&s);
	return rc;
}

/* A change made here, for the other instances (none without [cluster]). */
static void share(const char *kind, const char *id, const char *json)
{
	if (rf_cluster)
		cluster_record_changed(rf_cluster, kind, id, json);
}

int persist_set_service(const struct service *s, const char *remove)
{
	char buf[VALUE_MAX * 4];
	size_t n = 0;
	const char *a;
	int k;

	int rc;

	if (!s) {
		rc = store_del(P.st, K_SERVICE, remove);
		if (!rc)
			share(K_SERVICE, remove, NULL);
		return rc;
	}
	/* names, routes and addresses are plain tokens: nothing to escape */
	k = snprintf(buf, sizeof(buf), "{\"servers\":[");
	for (a = s->servers; k > 0 && (size_t)k < sizeof(buf) && *a;) {
		n = strcspn(a, " ");
		k += snprintf(buf + k, sizeof(buf) - (size_t)k, "%s\"%.*s\"", a == s->servers ? "" : ",",
			      (int)n, a);
		a += n + (a[n] == ' ');
	}
	if (k > 0 && (size_t)k < sizeof(buf))
		k += snprintf(buf + k, sizeof(buf) - (size_t)k, "],\"route\":\"%s\"%s%s%s}", s->route,
			      s->balance ? ",\"balance\":\"" : "", s->balance ? s->balance : "",
			      s->balance ? "\"" : "");
	if (k <= 0 || (size_t)k >= sizeof(buf))
		return -E2BIG;
	rc = store_put(P.st, K_SERVICE, s->name, buf, (size_t)k);
	if (!rc)
		share(K_SERVICE, s->name, buf);
	return rc;
}

/* ---- upstream, server ---- */

static struct upstream *upstream_of(const struct runtime *rt, const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; rt && i < rt->cfg->nupstreams; i++)
		if (strlen(rt->ups[i].conf->name) == len && !memcmp(rt->ups[i].conf->name, name, len))
			return &rt->ups[i];
	return NULL;
}

static struct server *server_of(const struct runtime *rt, const char *up, const char *addr)
{
	struct upstream *u = upstream_of(rt, up, strlen(up));
	uint32_t i;

	for (i = 0; u && i < u->nservers; i++)
		if (!strcmp(u->servers[i].conf->addr.text, addr))
			return &u->servers[i];
	return NULL;
}

/* "upstream/host:port" of <s> (names and addresses hold no '/'). */
static void server_id(char *buf, size_t cap, const struct server *s)
{
	snprintf(buf, cap, "%s/%s", s->up->conf->name, s->conf->addr.text);
}

static uint32_t conf_weight(const struct server *s)
{
	return s->conf->weight ? s->conf->weight : 1;
}

static int apply_upstream(void *arg, const char *id, const char *json, size_t len)
{
	struct upstream *up = upstream_of(P.target, id, strlen(id));
	struct json_tok toks[JSON_TOKS];
	struct json_doc d;
	char name[64];
	uint32_t v;
	int t;

	if (!up)
		return -ENOENT;         /* kept: a later configuration may have it */
	if (!json)
		return balance_set_strategy(up, up->conf->balance);
	if (parse_obj(&d, toks, json, len) < 0 || (t = json_get(&d, 0, "balance")) < 0 ||
	    json_str(&d, t, name, sizeof(name)) < 0 || config_balance_parse(name, &v) < 0)
		return -EINVAL;
	return balance_set_strategy(up, v);
}

static int apply_server(void *arg, const char *id, const char *json, size_t len)
{
	const char *slash = strchr(id, '/');
	struct json_tok toks[JSON_TOKS];
	struct upstream *up;
	struct server *s = NULL;
	struct json_doc d;
	uint64_t w;
	uint32_t i;
	int t, drain;

	up = slash ? upstream_of(P.target, id, (size_t)(slash - id)) : NULL;
	for (i = 0; up && i < up->nservers && !s; i++)
		if (!strcmp(up->servers[i].conf->addr.text, slash + 1))
			s = &up->servers[i];
	if (!s)
		return -ENOENT;
	if (!json) {
		balance_set_weight(s, conf_weight(s));
		balance_set_drain(s, 0, mono_ms());
		return 0;
	}
	if (parse_obj(&d, toks, json, len) < 0 || (t = json_get(&d, 0, "weight")) < 0 ||
	    json_u64(&d, t, 1000, &w) < 0 || w < 1 || get_bool(&d, "drain", &drain) < 0)
		return -EINVAL;
	balance_set_weight(s, (uint32_t)w);
	balance_set_drain(s, drain, mono_ms());
	return 0;
}

/* ---- meta, bans ---- */

/* {"seed":"<16 hex>"}: keys hash as they did, so stored bans find their
 * keys again. A cluster's seed comes from its settings instead. */
static int apply_meta(void *arg, const char *id, const char *json, size_t len)
{
	struct json_tok toks[JSON_TOKS];
	char hex[20], *end;
	struct json_doc d;
	uint64_t seed;
	int t;

	if (!json || strcmp(id, "rl_seed") || P.target->cfg->cluster.enabled || !P.rl->enabled)
		return 0;
	if (parse_obj(&d, toks, json, len) < 0 || (t = json_get(&d, 0, "seed")) < 0 ||
	    json_str(&d, t, hex, sizeof(hex)) != 16)
		return -EINVAL;
	seed = strtoull(hex, &end, 16);
	if (*end)
		return -EINVAL;
	return rl_reseed(P.rl, &P.target->cfg->ratelimit, seed);
}

/* {"buckets":N,"bans":[[slot,"<word hex>",until],...]}, until in wall-clock
 * seconds; a table of another size (max_keys changed) is left alone. */
static int apply_bans(void *arg, const char *id, const char *json, size_t len)
{
	struct json_tok *toks;
	struct json_doc d;
	uint64_t n, slot, until;
	char hex[20];
	int64_t now = wall_s();
	int t, b, e, rc = 0;
	uint32_t i;

	if (!json || !P.rl->enabled)
		return 0;
	toks = malloc(sizeof(*toks) * (4 * RL_BANS_KEPT + 8));
	if (!toks)
		return -ENOMEM;
	if (json_parse(&d, json, len, toks, 4 * RL_BANS_KEPT + 8) < 0 ||
	    json_type(&d, 0) != JSON_OBJECT || (t = json_get(&d, 0, "buckets")) < 0 ||
	    json_u64(&d, t, UINT32_MAX, &n) < 0 ||
	    json_type(&d, (b = json_get(&d, 0, "bans"))) != JSON_ARRAY) {
		free(toks);
		return -EINVAL;
	}
	for (i = 0, e = json_child(b); n == rl_ban_buckets(P.rl) && i < d.toks[b].size;
	     i++, e = json_next(&d, e)) {
		int x = json_child(e);

		if (json_type(&d, e) != JSON_ARRAY || d.toks[e].size != 3 ||
		    json_u64(&d, x, UINT32_MAX, &slot) < 0 ||
		    json_str(&d, json_next(&d, x), hex, sizeof(hex)) != 16 ||
		    json_u64(&d, json_next(&d, json_next(&d, x)), INT64_MAX, &until) < 0) {
			rc = -EINVAL;
			break;
		}
		rl_ban_restore(P.rl, (uint32_t)slot, strtoull(hex, NULL, 16), (int64_t)until, now);
	}
	free(toks);
	return rc;
}

struct ban_json {
	struct outbuf o;
	uint32_t n;
};

static void ban_to_json(void *arg, uint32_t slot, uint64_t word, int64_t until)
{
	struct ban_json *bj = arg;

	if (bj->n++ < RL_BANS_KEPT)
		ob_printf(&bj->o, "%s[%u,\"%016llx\",%lld]", bj->n > 1 ? "," : "", slot,
			  (unsigned long long)word, (long long)until);
}

/* Once a second (main thread): the bans in force, recorded when they
 * changed. A ban is made on the request path; this is where it is kept. */
static void save_bans(void)
{
	static uint64_t last;
	struct ban_json bj = { .n = 0 };
	uint64_t h;

	if (!rl_ban_buckets(P.rl))
		return;
	ob_init(&bj.o, 1 << 22);
	ob_printf(&bj.o, "{\"buckets\":%u,\"bans\":[", rl_ban_buckets(P.rl));
	rl_bans_each(P.rl, wall_s(), ban_to_json, &bj);
	ob_puts(&bj.o, "]}");
	h = bj.o.failed ? 0 : rl_hash(bj.o.p, bj.o.len, 0x62616e73ull);
	if (h && h != last) {
		if ((bj.n ? store_put(P.st, K_BANS, "table", bj.o.p, bj.o.len) :
			    store_del(P.st, K_BANS, "table")) == 0)
			last = h;
	}
	ob_free(&bj.o);
}

/* The kinds, in the order a replay applies them. A services registry goes
 * before "upstream": the records after it may name its upstreams. */
static const struct store_kind kinds[] = {
	{ K_META, apply_meta, NULL },           /* first: the seed the others hash with */
	{ K_CLIENT, apply_client, NULL },
	{ K_SERVICE, apply_service, NULL },    /* before the kinds naming its upstream */
	{ K_UPSTREAM, apply_upstream, NULL },
	{ K_SERVER, apply_server, NULL },
	{ K_BANS, apply_bans, NULL },
};

int persist_apply_remote(const char *kind, const char *id, const char *json, size_t len)
{
	char cur[VALUE_MAX * 4];
	int n, rc;

	if (!P.st || (strcmp(kind, K_SERVICE) && strcmp(kind, K_UPSTREAM) &&
		      strcmp(kind, K_SERVER)))
		return -ENOENT;
	/* what a full load mostly brings: nothing new */
	n = store_get(P.st, kind, id, cur, sizeof(cur));
	if (json ? n == (int)len && !memcmp(cur, json, len) : n == -ENOENT)
		return 0;
	if (!strcmp(kind, K_SERVICE)) {
		rc = apply_service_now(id, json, len);
		if (!rc)
			rc = json ? store_put(P.st, kind, id, json, len) : store_del(P.st, kind, id);
		return rc;
	}
	/* under the lock a reload takes: it re-applies from the store after */
	pthread_mutex_lock(&P.lock);
	P.target = atomic_load(&rf_runtime);
	rc = (!strcmp(kind, K_UPSTREAM) ? apply_upstream : apply_server)(NULL, id, json, len);
	if (!rc)
		rc = json ? store_put(P.st, kind, id, json, len) : store_del(P.st, kind, id);
	pthread_mutex_unlock(&P.lock);
	return rc;
}

int persist_set_strategy(struct upstream *up, uint32_t strategy)
{
	struct upstream *cur;
	char buf[VALUE_MAX];
	int n, rc;

	pthread_mutex_lock(&P.lock);
	cur = upstream_of(atomic_load(&rf_runtime), up->conf->name, strlen(up->conf->name));
	if (strategy == (cur ? cur : up)->conf->balance) {
		rc = store_del(P.st, K_UPSTREAM, up->conf->name);
		if (!rc)
			share(K_UPSTREAM, up->conf->name, NULL);
	} else {
		n = snprintf(buf, sizeof(buf), "{\"balance\":\"%s\"}", config_balance_name(strategy));
		rc = store_put(P.st, K_UPSTREAM, up->conf->name, buf, (size_t)n);
		if (!rc)
			share(K_UPSTREAM, up->conf->name, buf);
	}
	if (!rc) {
		balance_set_strategy(up, strategy);
		if (cur && cur != up)
			balance_set_strategy(cur, strategy);
	}
	pthread_mutex_unlock(&P.lock);
	return rc;
}

int persist_set_server(struct server *s, const uint32_t *weight, const int *drain,
		       uint64_t now_ms)
{
	struct health_view hv;
	struct server *cur;
	char id[RF_NAME_MAX + 80], buf[VALUE_MAX];
	uint32_t w;
	int d, n, rc;

	pthread_mutex_lock(&P.lock);
	health_view(s, now_ms, &hv);
	w = weight ? *weight : atomic_load_explicit(&s->weight, memory_order_relaxed);
	d = drain ? !!*drain : hv.draining;
	server_id(id, sizeof(id), s);
	cur = server_of(atomic_load(&rf_runtime), s->up->conf->name, s->conf->addr.text);
	if (w == conf_weight(cur ? cur : s) && !d) {
		rc = store_del(P.st, K_SERVER, id);
		if (!rc)
			share(K_SERVER, id, NULL);
	} else {
		n = snprintf(buf, sizeof(buf), "{\"weight\":%u,\"drain\":%s}", w,
			     d ? "true" : "false");
		rc = store_put(P.st, K_SERVER, id, buf, (size_t)n);
		if (!rc)
			share(K_SERVER, id, buf);
	}
	if (!rc) {
		balance_set_weight(s, w);
		balance_set_drain(s, d, now_ms);        /* health.c logs the change */
		if (cur && cur != s) {
			balance_set_weight(cur, w);
			balance_set_drain(cur, d, now_ms);
		}
	}
	pthread_mutex_unlock(&P.lock);
	return rc;
}

/* ---- life cycle ---- */

static void settings(const struct rf_store_conf *sc)
{
	P.interval_ms = sc->snapshot_interval_ms ? sc->snapshot_interval_ms : 300000;
	P.ttl_s = (sc->client_ttl_ms + 999) / 1000;
	P.journal_max = sc->journal_max;
	if (P.rl)
		atomic_store_explicit(&P.rl->track_use, P.ttl_s != 0, memory_order_relaxed);
}

static int copy_config_keys(const struct rf_ratelimit_conf *rc)
{
	uint32_t i;

	P.config_keys = calloc(rc->napi_keys + 1, sizeof(char *));
	if (!P.config_keys)
		return -ENOMEM;
	for (i = 0; i < rc->napi_keys; i++) {
		P.config_keys[i] = strdup(rc->api_keys[i].key);
		if (!P.config_keys[i])
			return -ENOMEM;
		P.nconfig_keys++;
	}
	qsort(P.config_keys, P.nconfig_keys, sizeof(char *), cmp_str);
	return 0;
}

int persist_start(struct runtime *rt, int chown, uid_t uid, gid_t gid, char *err,
		  size_t errlen)
{
	const struct rf_store_conf *sc = &rt->cfg->store;
	struct store_opts o = { sc->path, sc->journal_max, chown, uid, gid };
	size_t i;
	int rc;

	P.rl = rt->rl;
	P.target = rt;
	settings(sc);
	rc = store_open(&P.st, &o, err, errlen);
	for (i = 0; !rc && i < ARRAY_SIZE(kinds); i++)
		rc = store_add_kind(P.st, &kinds[i]);
	if (!rc)
		rc = copy_config_keys(&rt->cfg->ratelimit);
	if (rc < 0) {
		if (P.st)
			snprintf(err, errlen, "store: set-up failed: %s", strerror(-rc));
		persist_stop();
		return rc;
	}
	rc = store_load(P.st, err, errlen);
	if (rc < 0) {
		persist_stop();
		return rc;
	}
	/* the limiter's changes are recorded only when they can be kept */
	if (store_path(P.st) && P.rl->enabled) {
		char buf[48];
		int n;

		if (store_get(P.st, K_META, "rl_seed", buf, sizeof(buf)) < 0 &&
		    !rt->cfg->cluster.enabled) {
			n = snprintf(buf, sizeof(buf), "{\"seed\":\"%016llx\"}",
				     (unsigned long long)rl_seed(P.rl));
			store_put(P.st, K_META, "rl_seed", buf, (size_t)n);
		}
		P.rl->on_change = on_client_change;
		P.rl->on_change_arg = NULL;
	}
	P.last_sweep = rl_clock_s(P.rl);
	P.next_ms = mono_ms() + P.interval_ms;
	return 0;
}

int persist_check_writable(char *err, size_t errlen)
{
	const char *path = P.st ? store_path(P.st) : NULL;

	if (!path || access(path, W_OK | X_OK) == 0)
		return 0;
	snprintf(err, errlen, "store %s: not writable by uid %u after dropping privileges: "
		 "%s (compaction creates files there)", path, (unsigned)getuid(),
		 strerror(errno));
	return -EACCES;
}

void persist_stop(void)
{
	uint32_t i;

	if (P.rl) {
		P.rl->on_change = NULL;
		atomic_store(&P.rl->track_use, 0);
	}
	store_close(P.st);
	P.st = NULL;
	for (i = 0; i < P.nconfig_keys; i++)
		free(P.config_keys[i]);
	rf_free(&P.config_keys);
	P.nconfig_keys = 0;
	P.target = NULL;
}

void persist_adopt(struct runtime *nrt)
{
	const struct runtime *cur = atomic_load(&rf_runtime);

	pthread_mutex_lock(&P.lock);
	if (!P.st)
		return;
	if (cur && strcmp(cur->cfg->store.path ? cur->cfg->store.path : "",
			  nrt->cfg->store.path ? nrt->cfg->store.path : ""))
		log_warn("msg=\"changed setting needs a restart; the running value stays\" "
			 "setting=\"[store] path\"");
	settings(&nrt->cfg->store);
	P.target = nrt;
	store_reapply(P.st, K_UPSTREAM);
	store_reapply(P.st, K_SERVER);
}

void persist_adopt_done(void)
{
	pthread_mutex_unlock(&P.lock);
}

void persist_tick(void)
{
	struct store_stats ss;
	uint64_t now = mono_ms(), interval, ttl, jmax;
	int64_t since;
	int n;

	if (!P.st || !store_path(P.st))
		return;
	if (P.rl->enabled)
		save_bans();
	/* a reload may change them meanwhile (persist_adopt) */
	pthread_mutex_lock(&P.lock);
	interval = P.interval_ms;
	ttl = P.ttl_s;
	jmax = P.journal_max;
	pthread_mutex_unlock(&P.lock);
	store_stats(P.st, &ss);
	if (now < P.next_ms && (!jmax || ss.journal_bytes <= jmax))
		return;
	P.next_ms = now + interval;
	if (ttl && P.rl->enabled) {
		since = P.last_sweep;
		P.last_sweep = rl_clock_s(P.rl);
		n = rl_sweep(P.rl, ttl, since, on_client_sweep, NULL);
		if (n > 0)
			log_info("msg=\"stale clients removed\" count=%d client_ttl_s=%llu", n,
				 (unsigned long long)ttl);
	}
	store_compact(P.st, 1);
}

int persist_stats(struct store_stats *out, const char **path)
{
	if (!P.st)
		return -ENOENT;
	store_stats(P.st, out);
	*path = store_path(P.st);
	return 0;
}

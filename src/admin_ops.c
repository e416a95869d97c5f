/* admin_ops.c - the admin API's changes and lookups: balancing strategy,
 * server weight and drain, the rate limiter's clients (API keys and
 * addresses with their own limit or tier), usage, tiers and the block
 * list. Each handler validates its input fully before changing anything. */
#include <arpa/inet.h>
#include <errno.h>
#include "common.h"
#include "admin_int.h"
#include "balance.h"
#include "cache.h"
#include "cache_policy.h"
#include "cluster.h"
#include "proxy_cache.h"
#include "reload.h"
#include "health.h"
#include "persist.h"
#include "rl_clients.h"

#define CAPACITY_MAX 1000000000u
#define RATE_MAX     1e9

/* ---- balancing ---- */

/* A change the state store could not record: nothing was changed. */
static void store_error(struct admin_ctx *x, int rc)
{
	if (rc == -ENOMEM)
		admin_error(x, 503, "out of memory");
	else
		admin_error(x, 503, "the state store could not record the change: %s",
			    strerror(-rc));
}

static struct upstream *find_upstream(const struct runtime *rt, const char *name)
{
	uint32_t i;

	for (i = 0; i < rt->cfg->nupstreams; i++)
		if (!strcmp(rt->ups[i].conf->name, name))
			return &rt->ups[i];
	return NULL;
}

/* The names the seeds use for some strategies. */
static const char *strategy_alias(const char *s)
{
	static const char *const alias[][2] = {
		{ "least_connections", "least_conn" },
		{ "weighted_round_robin", "weighted" },
		{ "least_response_time", "least_time" },
		{ "sticky", "ip_hash" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(alias); i++)
		if (!strcmp(s, alias[i][0]))
			return alias[i][1];
	return s;
}

void admin_post_strategy(struct admin_ctx *x)
{
	static const char *const bal_keys[] = { "balance", "strategy", NULL };
	char name[RF_NAME_MAX], strat[64];
	struct upstream *up;
	uint32_t v, old;
	int rc;

	if (admin_body_object(x) < 0)
		return;
	rc = admin_field_str(x, "upstream", name, sizeof(name));
	if (rc < 0)
		return;
	if (!rc && x->rt->cfg->nupstreams != 1) {
		admin_error(x, 400, "field 'upstream' is required when there are several");
		return;
	}
	if (!rc)
		snprintf(name, sizeof(name), "%s", x->rt->ups[0].conf->name);
	rc = admin_field_str_any(x, bal_keys, strat, sizeof(strat));
	if (rc <= 0) {
		if (!rc)
			admin_error(x, 400, "field 'balance' (the strategy) is required");
		return;
	}
	up = find_upstream(x->rt, name);
	if (!up) {
		admin_error(x, 404, "no upstream '%s'", name);
		return;
	}
	old = balance_strategy(up);
	if (config_balance_parse(strategy_alias(strat), &v) < 0 || v > RF_BAL_RANDOM2) {
		admin_error(x, 400, "unknown strategy '%s': round_robin, weighted, least_conn, "
			    "ip_hash, least_time, adaptive or random2", strat);
		return;
	}
	rc = persist_set_strategy(up, v);
	if (rc < 0) {
		store_error(x, rc);
		return;
	}
	ob_puts(&x->out, "{\"upstream\":");
	admin_json_str(&x->out, up->conf->name, strlen(up->conf->name));
	ob_printf(&x->out, ",\"balance\":\"%s\",\"previous\":\"%s\"}\n",
		  config_balance_name(balance_strategy(up)), config_balance_name(old));
}

void admin_get_upstreams(struct admin_ctx *x)
{
	uint32_t i;

	ob_puts(&x->out, "{\"upstreams\":[");
	for (i = 0; i < x->rt->cfg->nupstreams; i++) {
		if (i)
			ob_puts(&x->out, ",");
		admin_write_upstream(&x->out, &x->rt->ups[i], x->w->wheel.now);
	}
	ob_puts(&x->out, "]}\n");
}

void admin_get_upstream(struct admin_ctx *x)
{
	struct upstream *up = find_upstream(x->rt, x->params[0]);

	if (!up) {
		admin_error(x, 404, "no upstream '%s'", x->params[0]);
		return;
	}
	admin_write_upstream(&x->out, up, x->w->wheel.now);
	ob_puts(&x->out, "\n");
}

/* The server {addr} of upstream {name}, or NULL after writing a 404. */
static struct server *find_server(struct admin_ctx *x)
{
	struct upstream *up = find_upstream(x->rt, x->params[0]);
	uint32_t j;

	if (!up) {
		admin_error(x, 404, "no upstream '%s'", x->params[0]);
		return NULL;
	}
	for (j = 0; j < up->nservers; j++)
		if (!strcmp(up->servers[j].conf->addr.text, x->params[1]))
			return &up->servers[j];
	admin_error(x, 404, "upstream '%s' has no server '%s'", x->params[0], x->params[1]);
	return NULL;
}

void admin_get_server(struct admin_ctx *x)
{
	struct server *s = find_server(x);

	if (!s)
		return;
	admin_write_server(&x->out, s, x->w->wheel.now);
	ob_puts(&x->out, "\n");
}

void admin_patch_server(struct admin_ctx *x)
{
	struct server *s;
	uint32_t weight;
	int hw, hd, drain;

	if (admin_body_object(x) < 0)
		return;
	hw = admin_field_u32(x, "weight", 1, 1000, &weight);
	if (hw < 0)
		return;
	hd = admin_field_bool(x, "drain", &drain);
	if (hd < 0 || (!hd && (hd = admin_field_bool(x, "draining", &drain)) < 0))
		return;
	if (!hw && !hd) {
		admin_error(x, 400, "nothing to change: give 'weight' (1-1000) and/or 'drain'");
		return;
	}
	s = find_server(x);
	if (!s)
		return;
	hw = persist_set_server(s, hw ? &weight : NULL, hd ? &drain : NULL, x->w->wheel.now);
	if (hw < 0) {
		store_error(x, hw);
		return;
	}
	admin_write_server(&x->out, s, x->w->wheel.now);
	ob_puts(&x->out, "\n");
}

/* ---- rate limiter ---- */

/* The limiter, or NULL after writing a 409 when rate limiting is off. */
static struct rl *limiter(struct admin_ctx *x)
{
	struct rl *rl = x->rt->rl;

	if (!rl || !rl->enabled) {
		admin_error(x, 409, "rate limiting is off: the configuration has no [ratelimit]");
		return NULL;
	}
	return rl;
}

static uint64_t rl_clock(const struct rl *rl)
{
	return rl->clock ? rl->clock() : rl_now_us();
}

static double policy_rate(const struct rl_policy *p)
{
	if (p->window_s && p->quota)
		return (double)p->quota / p->window_s;
	return p->t_us ? 1e6 / (double)p->t_us : 0;
}

static int is_address(const char *id)
{
	unsigned char a[16];

	return inet_pton(AF_INET, id, a) == 1 || inet_pton(AF_INET6, id, a) == 1;
}

/* The limit a record gives, as capacity and refill per second. */
static void effective(const struct rl *rl, const struct rl_client *c, uint32_t *cap,
		      double *rate)
{
	const struct rl_policy *def = &rl->def.pol;
	const struct rl_tier *t;

	if (c->capacity || c->rate_per_sec > 0) {
		*cap = c->capacity ? c->capacity : def->burst;
		*rate = c->rate_per_sec > 0 ? c->rate_per_sec : policy_rate(def);
		return;
	}
	t = c->tier[0] ? rl_tier_find(rl, c->tier) : NULL;
	*cap = t ? t->pol.burst : def->burst;
	*rate = policy_rate(t ? &t->pol : def);
}

/* A client record as JSON; with <usage>, its bucket now as well. */
static void write_client(struct admin_ctx *x, struct rl *rl, const struct rl_client *c,
			 int usage)
{
	struct outbuf *o = &x->out;
	size_t n = strlen(c->id);
	struct rl_usage u;
	uint32_t cap;
	double rate;

	effective(rl, c, &cap, &rate);
	ob_puts(o, "{\"id\":");
	admin_json_str(o, c->id, n);
	ob_puts(o, ",\"client_id\":");
	admin_json_str(o, c->id, n);
	ob_printf(o, ",\"kind\":\"%s\",\"client\":%s,\"blocked\":%s,\"tier\":",
		  is_address(c->id) ? "address" : "api_key", c->is_client ? "true" : "false",
		  c->blocked ? "true" : "false");
	if (c->tier[0])
		admin_json_str(o, c->tier, strlen(c->tier));
	else
		ob_puts(o, "null");
	ob_printf(o, ",\"override\":%s,\"capacity\":%u,\"rate_per_sec\":",
		  c->capacity || c->rate_per_sec > 0 ? "true" : "false", cap);
	admin_json_double(o, rate);
	if (usage && rl_usage(rl, c->id, rl_clock(rl), &u) == 0)
		ob_printf(o, ",\"tokens\":%u,\"reset_s\":%u,\"banned\":%s,\"ban_left_s\":%u",
			  u.v.remaining, u.v.reset_s, u.ban_left_s ? "true" : "false",
			  u.ban_left_s);
	ob_puts(o, "}");
}

/* Map an rl_client_* error to a response. */
static void client_error(struct admin_ctx *x, int rc, const char *id, const char *tier)
{
	switch (rc) {
	case -EEXIST:
		admin_error(x, 409, "client '%s' exists already", id);
		break;
	case -ENOENT:
		if (tier && *tier)
			admin_error(x, 404, "no client '%s' or no tier '%s'", id, tier);
		else
			admin_error(x, 404, "no client '%s'", id);
		break;
	case -ERANGE:
		admin_error(x, 400, "capacity / rate_per_sec give a limit out of range");
		break;
	case -ENOMEM:
		admin_error(x, 503, "out of memory");
		break;
	case -EIO:
		store_error(x, rc);
		break;
	default:
		admin_error(x, 400, "invalid client id or limit");
		break;
	}
}

/* The answer to a change of client <id> (<rc> from the limiter): its
 * error, or the client as it is now, logged as <what>. */
static void client_changed(struct admin_ctx *x, struct rl *rl, int rc, const char *id,
			   const char *tier, const char *what)
{
	struct rl_client now;

	if (rc < 0) {
		client_error(x, rc, id, tier);
		return;
	}
	log_info("msg=\"client %s\" id=\"%s\"", what, id);
	rl_client_get(rl, id, &now);
	write_client(x, rl, &now, 1);
	ob_puts(&x->out, "\n");
}

static int body_has_null(struct admin_ctx *x, const char *key)
{
	return json_type(&x->doc, json_get(&x->doc, 0, key)) == JSON_NULL;
}

/* Read capacity, rate_per_sec and tier from the body into <c> (fields that
 * are absent stay as they are; null clears). Returns 0 or < 0 after a 400. */
static int read_limit(struct admin_ctx *x, struct rl_client *c)
{
	static const char *const rate_keys[] = { "rate_per_sec", "rate_per_second", NULL };
	const char *const *k;
	char tier[RF_NAME_MAX];
	int rc;

	if (admin_field_u32(x, "capacity", 1, CAPACITY_MAX, &c->capacity) < 0)
		return -EINVAL;
	if (body_has_null(x, "capacity"))
		c->capacity = 0;
	for (k = rate_keys; *k; k++) {
		if (admin_field_double(x, *k, 1e-6, RATE_MAX, &c->rate_per_sec) < 0)
			return -EINVAL;
		if (body_has_null(x, *k))
			c->rate_per_sec = 0;
	}
	rc = admin_field_str(x, "tier", tier, sizeof(tier));
	if (rc < 0)
		return rc;
	if (rc) {
		if (!rl_tier_find(x->rt->rl, tier)) {
			admin_error(x, 404, "no tier '%s'", tier);
			return -ENOENT;
		}
		memcpy(c->tier, tier, sizeof(c->tier));
	} else if (body_has_null(x, "tier")) {
		c->tier[0] = 0;
	}
	return 0;
}

static const char *const id_keys[] = { "id", "client_id", "api_key", "key", "ip_address",
	"ip", NULL };

/* The client id from the body, or < 0 after a 400. */
static int body_id(struct admin_ctx *x, char *id)
{
	int rc = admin_field_str_any(x, id_keys, id, RL_ID_MAX);

	if (!rc) {
		admin_error(x, 400, "field 'client_id' (an API key or address) is required");
		return -EINVAL;
	}
	return rc < 0 ? rc : 0;
}

void admin_list_clients(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	struct rl_client *list;
	char arg[24], *end;
	unsigned long off = 0, lim = 100;
	size_t total, i;

	if (!rl)
		return;
	if (admin_query(x, "offset", arg, sizeof(arg)) > 0) {
		off = strtoul(arg, &end, 10);
		if (*end) {
			admin_error(x, 400, "offset must be a number");
			return;
		}
	}
	if (admin_query(x, "limit", arg, sizeof(arg)) >= 0) {
		lim = strtoul(arg, &end, 10);
		if (*end || lim < 1 || lim > 1000) {
			admin_error(x, 400, "limit must be a number from 1 to 1000");
			return;
		}
	}
	list = malloc(lim * sizeof(*list));
	if (!list) {
		admin_error(x, 503, "out of memory");
		return;
	}
	total = rl_client_list(rl, off, list, lim);
	ob_printf(&x->out, "{\"total\":%zu,\"offset\":%lu,\"clients\":[", total, off);
	for (i = 0; off + i < total && i < lim; i++) {
		if (i)
			ob_puts(&x->out, ",");
		write_client(x, rl, &list[i], 0);
	}
	ob_puts(&x->out, "]}\n");
	free(list);
}

void admin_create_client(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	struct rl_client c;

	if (!rl || admin_body_object(x) < 0)
		return;
	memset(&c, 0, sizeof(c));
	if (body_id(x, c.id) < 0 || read_limit(x, &c) < 0)
		return;
	client_changed(x, rl, rl_client_create(rl, &c), c.id, c.tier, "created");
}

/* Change the client <id> with the body's fields (PATCH semantics). */
static void patch_client(struct admin_ctx *x, struct rl *rl, const char *id)
{
	struct rl_client c;
	int rc;

	rc = rl_client_get(rl, id, &c);
	if (rc < 0 || !c.is_client) {
		client_error(x, rc < 0 ? rc : -ENOENT, id, NULL);
		return;
	}
	if (read_limit(x, &c) < 0)
		return;
	client_changed(x, rl, rl_client_update(rl, &c), id, c.tier, "changed");
}

void admin_patch_client(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);

	if (!rl || admin_body_object(x) < 0)
		return;
	patch_client(x, rl, x->params[0]);
}

void admin_patch_client_body(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	char id[RL_ID_MAX];

	if (!rl || admin_body_object(x) < 0 || body_id(x, id) < 0)
		return;
	patch_client(x, rl, id);
}

void admin_put_client(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	struct rl_client c;

	if (!rl || admin_body_object(x) < 0)
		return;
	memset(&c, 0, sizeof(c));
	if (strlen(x->params[0]) >= sizeof(c.id)) {
		admin_error(x, 400, "client id longer than %d bytes", RL_ID_MAX - 1);
		return;
	}
	memcpy(c.id, x->params[0], strlen(x->params[0]) + 1);
	if (read_limit(x, &c) < 0)
		return;
	client_changed(x, rl, rl_client_put(rl, &c), c.id, c.tier, "replaced");
}

void admin_get_client(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	struct rl_client c;
	int rc;

	if (!rl)
		return;
	rc = rl_client_get(rl, x->params[0], &c);
	if (rc < 0) {
		client_error(x, rc == -EINVAL ? -ENOENT : rc, x->params[0], NULL);
		return;
	}
	write_client(x, rl, &c, 1);
	ob_puts(&x->out, "\n");
}

void admin_delete_client(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	int rc;

	if (!rl)
		return;
	rc = rl_client_delete(rl, x->params[0]);
	if (rc < 0) {
		client_error(x, rc == -EINVAL ? -ENOENT : rc, x->params[0], NULL);
		return;
	}
	log_info("msg=\"client deleted\" id=\"%s\"", x->params[0]);
}

void admin_get_usage(struct admin_ctx *x)
{
	static const char *const keys[] = { "key", "api_key", "ip", "id", NULL };
	struct rl *rl = limiter(x);
	char id[RL_ID_MAX];
	struct rl_usage u;
	const char *const *k;
	struct outbuf *o = &x->out;
	int rc = -ENOENT;

	if (!rl)
		return;
	for (k = keys; *k && rc == -ENOENT; k++)
		rc = admin_query(x, *k, id, sizeof(id));
	if (rc <= 0) {
		admin_error(x, 400, "give the API key or address as ?key=");
		return;
	}
	if (rl_usage(rl, id, rl_clock(rl), &u) < 0) {
		admin_error(x, 400, "invalid key '%s'", id);
		return;
	}
	ob_puts(o, "{\"id\":");
	admin_json_str(o, id, strlen(id));
	ob_printf(o, ",\"kind\":\"%s\",\"client\":%s,\"blocked\":%s,\"tier\":",
		  is_address(id) ? "address" : "api_key", u.c.is_client ? "true" : "false",
		  u.c.blocked ? "true" : "false");
	if (u.c.tier[0])
		admin_json_str(o, u.c.tier, strlen(u.c.tier));
	else
		ob_puts(o, "null");
	ob_printf(o, ",\"limit\":%u,\"remaining\":%u,\"reset_s\":%u,\"quota\":%u,"
		  "\"window_s\":%u,\"tracked\":%s,\"rejections\":%u,\"ban_level\":%u,"
		  "\"banned\":%s,\"ban_left_s\":%u}\n",
		  u.v.limit, u.v.remaining, u.v.reset_s, u.v.quota, u.v.window_s,
		  u.v.tracked ? "true" : "false", u.rejections, u.ban_level,
		  u.ban_left_s ? "true" : "false", u.ban_left_s);
}

static void write_policy(struct outbuf *o, const struct rl_policy *p)
{
	ob_printf(o, "\"capacity\":%u,\"rate_per_sec\":", p->burst);
	admin_json_double(o, policy_rate(p));
	ob_printf(o, ",\"quota\":%u,\"window_s\":%u", p->quota, p->window_s);
}

void admin_get_tiers(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	uint32_t i;

	if (!rl)
		return;
	ob_puts(&x->out, "{\"default\":{");
	write_policy(&x->out, &rl->def.pol);
	ob_puts(&x->out, "},\"tiers\":[");
	for (i = 0; i < rl->ntiers; i++) {
		ob_printf(&x->out, "%s{\"name\":", i ? "," : "");
		admin_json_str(&x->out, rl->tiers[i].name, strlen(rl->tiers[i].name));
		ob_puts(&x->out, ",");
		write_policy(&x->out, &rl->tiers[i].pol);
		ob_puts(&x->out, "}");
	}
	ob_puts(&x->out, "]}\n");
}

void admin_post_tier(struct admin_ctx *x)
{
	struct rl *rl = limiter(x);
	char id[RL_ID_MAX], tier[RF_NAME_MAX];
	struct rl_client c;
	int rc;

	if (!rl || admin_body_object(x) < 0 || body_id(x, id) < 0)
		return;
	rc = admin_field_str(x, "tier", tier, sizeof(tier));
	if (rc <= 0) {
		if (!rc)
			admin_error(x, 400, "field 'tier' is required");
		return;
	}
	rc = rl_set_tier(rl, id, tier);
	if (rc == -ENOENT) {
		admin_error(x, 404, "no tier '%s'", tier);
		return;
	}
	if (rc < 0) {
		client_error(x, rc, id, tier);
		return;
	}
	log_info("msg=\"tier set\" id=\"%s\" tier=%s", id, tier);
	rl_client_get(rl, id, &c);
	write_client(x, rl, &c, 1);
	ob_puts(&x->out, "\n");
}

static void set_block(struct admin_ctx *x, int on)
{
	struct rl *rl = limiter(x);
	char id[RL_ID_MAX];
	int rc;

	if (!rl || admin_body_object(x) < 0 || body_id(x, id) < 0)
		return;
	rc = on ? rl_block(rl, id) : rl_unblock(rl, id);
	if (rc == -ENOENT) {
		admin_error(x, 404, "'%s' is not blocked", id);
		return;
	}
	if (rc < 0) {
		client_error(x, rc, id, NULL);
		return;
	}
	log_info("msg=\"%s\" id=\"%s\"", on ? "blocked" : "unblocked", id);
	ob_puts(&x->out, "{\"id\":");
	admin_json_str(&x->out, id, strlen(id));
	ob_printf(&x->out, ",\"blocked\":%s}\n", on ? "true" : "false");
}

void admin_post_block(struct admin_ctx *x)
{
	set_block(x, 1);
}

void admin_post_unblock(struct admin_ctx *x)
{
	set_block(x, 0);
}

/* POST /reload: the same as SIGHUP, but the caller learns the outcome. */
void admin_post_reload(struct admin_ctx *x)
{
	char err[512];
	uint32_t generation;

	if (reload_config(err, sizeof(err), &generation) < 0) {
		admin_error(x, 400, "%s", err);
		return;
	}
	ob_printf(&x->out, "{\"reloaded\":true,\"generation\":%u}\n", generation);
}

/* POST /cache/purge {"key"|"prefix"|"tag": "...", "all": true}: handed
 * to every shard that may hold a match; applied by their workers. */
void admin_post_cache_purge(struct admin_ctx *x)
{
	static const struct { const char *field; uint8_t type; } kinds[] = {
		{ "key", CACHE_REQ_DEL }, { "prefix", CACHE_REQ_PURGE_PREFIX },
		{ "tag", CACHE_REQ_PURGE_TAG },
	};
	char pat[CACHE_KEY_MAX];
	size_t i;
	int rc, all = 0;

	if (!rf_cache) {
		admin_error(x, 409, "there is no [cache] section");
		return;
	}
	if (admin_body_object(x) < 0)
		return;
	for (i = 0; i < ARRAY_SIZE(kinds); i++) {
		rc = admin_field_str(x, kinds[i].field, pat, sizeof(pat));
		if (rc < 0)
			return;
		if (rc) {
			cache_purge(rf_cache, x->w->id, kinds[i].type, pat, strlen(pat),
				    cache_now_ms());
			cluster_publish_purge(rf_cluster, kinds[i].type, pat, strlen(pat));
			ob_printf(&x->out, "{\"purged\":\"%s\"}\n", kinds[i].field);
			return;
		}
	}
	rc = admin_field_bool(x, "all", &all);
	if (rc < 0)
		return;
	if (!rc || !all) {
		admin_error(x, 400, "give one of 'key', 'prefix', 'tag', or \"all\": true");
		return;
	}
	cache_purge(rf_cache, x->w->id, CACHE_REQ_FLUSH, "", 0, cache_now_ms());
	cluster_publish_purge(rf_cluster, CACHE_REQ_FLUSH, "", 0);
	ob_puts(&x->out, "{\"purged\":\"all\"}\n");
}

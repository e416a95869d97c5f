/* resp_cmd.c - the Redis commands of the cache port (see resp.h). Reads run
 * on the calling worker against any shard; writes become cache requests,
 * applied at once on the worker's own shard or handed to the owner, and
 * the command's reply waits until every one of them is done. */
#include <errno.h>
#include <stdio.h>

#include "common.h"
#include "resp.h"

enum {
	FIN_SET = 1,    /* +OK, or nil when NX/XX refused */
	FIN_SUM,        /* :sum of results (DEL, PURGE) */
	FIN_INT,        /* :result (EXPIRE) */
	FIN_INCR,       /* :new value */
	FIN_OK,         /* +OK (MSET, FLUSHALL) */
};
#define FIN_OOM 0x80    /* a request could not be made: answer -OOM */

#define MSG_OOM     "OOM command not allowed when used memory > 'maxmemory'."
#define MSG_NOTINT  "ERR value is not an integer or out of range"
#define MSG_SYNTAX  "ERR syntax error"

typedef int (*cmd_fn)(struct resp_sess *s, uint32_t argc, int64_t now);

struct cmd {
	const char *name;
	int arity;      /* argc including the name; negative: at least -arity */
	cmd_fn fn;
};

/* ---- arguments ---- */

static int arg_is(const struct resp_sess *s, uint32_t i, const char *lit)
{
	size_t n;
	const char *p = resp__arg(s, i, &n);

	return rf_ieq(p, n, lit);
}

/* Redis's integer rule: optional '-', digits, no leading zero, no '+'. */
static int arg_i64(const struct resp_sess *s, uint32_t i, int64_t *out)
{
	size_t n, k = 0;
	const char *p = resp__arg(s, i, &n);
	uint64_t v = 0, lim = INT64_MAX;
	int neg = 0;

	if (!n || n > 20)
		return -EINVAL;
	if (p[0] == '-') {
		neg = 1;
		k = 1;
		lim = (uint64_t)INT64_MAX + 1;
	}
	if (k == n || (p[k] == '0' && (n - k > 1 || neg)))
		return -EINVAL;
	for (; k < n; k++) {
		if (p[k] < '0' || p[k] > '9' || v > (lim - (uint64_t)(p[k] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[k] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* now + v * unit, refusing overflow and non-positive values when <pos>. */
static int abs_expiry(int64_t now, int64_t v, int64_t unit, int pos, int64_t *out)
{
	if (pos && v <= 0)
		return -EINVAL;
	if (v > (INT64_MAX - now) / unit || v < (INT64_MIN + now) / unit)
		return -EINVAL;
	*out = now + v * unit;
	return 0;
}

/* ---- writes through the store ---- */

static int pend_push(struct resp_sess *s, struct cache_req *r)
{
	struct cache_req **np;
	uint32_t cap;

	if (s->npend == s->pend_cap) {
		cap = s->pend_cap ? s->pend_cap * 2 : 8;
		np = realloc(s->pend, cap * sizeof *np);   /* owner: the session */
		if (!np)
			return -ENOMEM;
		s->pend = np;
		s->pend_cap = cap;
	}
	s->pend[s->npend++] = r;
	return 0;
}

/* Submit <r> (ownership kept in s->pend until the reply is written). */
static void submit(struct resp_sess *s, struct cache_req *r, int64_t now)
{
	int done;

	if (!r) {
		s->fin |= FIN_OOM;
		return;
	}
	r->waiter = s->worker;
	done = cache_submit(s->c, s->worker, r, now);
	if (pend_push(s, r)) {
		s->fin |= FIN_OOM;
		if (done)
			cache_req_free(r);
		else
			cache_req_abandon(r);
	}
}

static int wait_all(struct resp_sess *s)
{
	uint32_t i;

	for (i = 0; i < s->npend; i++)
		if (!cache_req_done(s->pend[i]))
			return RESP__BLOCKED;
	resp__finish(s);
	return RESP__DONE;
}

static const char *rc_msg(int rc)
{
	switch (rc) {
	case -E2BIG: return "ERR value larger than the cache's max_object_size";
	case -EINVAL: return MSG_NOTINT;
	case -ERANGE: return "ERR increment or decrement would overflow";
	}
	return MSG_OOM;
}

void resp__finish(struct resp_sess *s)
{
	int64_t sum = 0;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < s->npend; i++) {
		if (!rc)
			rc = s->pend[i]->rc;
		sum += s->pend[i]->result;
	}
	if (s->fin & FIN_OOM)
		resp__err(s, MSG_OOM);
	else if (rc)
		resp__err(s, rc_msg(rc));
	else if (s->fin == FIN_SET)
		s->npend && s->pend[0]->result ? resp__status(s, "OK") : resp__nil(s);
	else if (s->fin == FIN_OK)
		resp__status(s, "OK");
	else
		resp__int(s, sum);   /* FIN_SUM, FIN_INT and FIN_INCR: one request or a sum */
	for (i = 0; i < s->npend; i++)
		cache_req_free(s->pend[i]);
	s->npend = 0;
	s->fin = 0;
}

/* A SET request carrying a fresh entry with <value>. */
static int set_req(struct resp_sess *s, uint32_t ki, uint32_t vi, int64_t expires,
		   unsigned flags, struct cache_req **out)
{
	size_t klen, vlen;
	const char *k = resp__arg(s, ki, &klen), *v = resp__arg(s, vi, &vlen);
	struct cache_entry *e;
	struct cache_req *r;
	int rc = cache_entry_new(s->c, CACHE_KIND_STRING, k, klen, vlen, 0, &e);

	*out = NULL;
	if (rc)
		return rc;
	memcpy(cache_entry_value(e), v, vlen);
	atomic_store_explicit(&e->expires_ms, expires, memory_order_relaxed);
	r = cache_req_new(CACHE_REQ_SET, NULL, 0);
	if (!r) {
		cache_entry_free(e);
		return -ENOMEM;
	}
	r->entry = e;
	r->flags = (uint8_t)flags;
	*out = r;
	return 0;
}

static struct cache_req *key_req(struct resp_sess *s, uint8_t type, uint32_t ki, int64_t arg)
{
	size_t klen;
	const char *k = resp__arg(s, ki, &klen);
	struct cache_req *r = cache_req_new(type, k, klen);

	if (r)
		r->arg = arg;
	return r;
}

/* ---- commands ---- */

static int c_ping(struct resp_sess *s, uint32_t argc, int64_t now)
{
	size_t n;
	const char *p;

	if (argc > 2) {
		resp__err(s, "ERR wrong number of arguments for 'ping' command");
		return RESP__DONE;
	}
	if (argc == 1) {
		resp__status(s, "PONG");
		return RESP__DONE;
	}
	p = resp__arg(s, 1, &n);
	resp__bulk(s, p, n);
	return RESP__DONE;
}

static int c_echo(struct resp_sess *s, uint32_t argc, int64_t now)
{
	size_t n;
	const char *p = resp__arg(s, 1, &n);

	resp__bulk(s, p, n);
	return RESP__DONE;
}

static void get_one(struct resp_sess *s, uint32_t i, int64_t now)
{
	size_t n;
	const char *k = resp__arg(s, i, &n);
	const struct cache_entry *e = cache_lookup(s->c, k, n, now);

	cache_count(s->c, s->worker, e ? CACHE_OUT_HIT : CACHE_OUT_MISS);
	if (e)
		resp__bulk(s, cache_entry_value(e), e->vlen);
	else
		resp__nil(s);
}

static int c_get(struct resp_sess *s, uint32_t argc, int64_t now)
{
	get_one(s, 1, now);
	return RESP__DONE;
}

static int c_mget(struct resp_sess *s, uint32_t argc, int64_t now)
{
	uint32_t i;

	resp__array(s, argc - 1);
	for (i = 1; i < argc; i++)
		get_one(s, i, now);
	return RESP__DONE;
}

static int c_set(struct resp_sess *s, uint32_t argc, int64_t now)
{
	unsigned flags = 0;
	int64_t expires = 0, v;
	struct cache_req *r;
	uint32_t i;
	int has_exp = 0, rc;

	for (i = 3; i < argc; i++) {
		int unit = arg_is(s, i, "ex") ? 1000 : arg_is(s, i, "px") ? 1 :
			   arg_is(s, i, "exat") ? -1000 : arg_is(s, i, "pxat") ? -1 : 0;

		if (unit) {
			if (has_exp || (flags & CACHE_SET_KEEPTTL) || i + 1 >= argc) {
				resp__err(s, MSG_SYNTAX);
				return RESP__DONE;
			}
			if (arg_i64(s, ++i, &v)) {
				resp__err(s, MSG_NOTINT);
				return RESP__DONE;
			}
			rc = unit > 0 ? abs_expiry(now, v, unit, 1, &expires) :
			     abs_expiry(0, v, -unit, 1, &expires);
			if (rc) {
				resp__err(s, "ERR invalid expire time in 'set' command");
				return RESP__DONE;
			}
			has_exp = 1;
		} else if (arg_is(s, i, "nx") && !(flags & CACHE_SET_XX)) {
			flags |= CACHE_SET_NX;
		} else if (arg_is(s, i, "xx") && !(flags & CACHE_SET_NX)) {
			flags |= CACHE_SET_XX;
		} else if (arg_is(s, i, "keepttl") && !has_exp) {
			flags |= CACHE_SET_KEEPTTL;
		} else {
			resp__err(s, MSG_SYNTAX);
			return RESP__DONE;
		}
	}
	rc = set_req(s, 1, 2, expires, flags, &r);
	if (rc) {
		resp__err(s, rc_msg(rc));
		return RESP__DONE;
	}
	s->fin = FIN_SET;
	submit(s, r, now);
	return wait_all(s);
}

static int c_mset(struct resp_sess *s, uint32_t argc, int64_t now)
{
	struct cache_req *r;
	uint32_t i;
	int rc;

	if (argc % 2 == 0) {
		resp__err(s, "ERR wrong number of arguments for 'mset' command");
		return RESP__DONE;
	}
	/* refuse the whole command before any write when one value is too big */
	for (i = 2; i < argc; i += 2) {
		size_t kl, vl;

		resp__arg(s, i - 1, &kl);
		resp__arg(s, i, &vl);
		if (kl + vl > cache_max_object(s->c)) {
			resp__err(s, rc_msg(-E2BIG));
			return RESP__DONE;
		}
	}
	s->fin = FIN_OK;
	for (i = 1; i < argc; i += 2) {
		rc = set_req(s, i, i + 1, 0, 0, &r);
		if (rc)
			s->fin |= FIN_OOM;
		else
			submit(s, r, now);
	}
	return wait_all(s);
}

static int c_del(struct resp_sess *s, uint32_t argc, int64_t now)
{
	uint32_t i;

	s->fin = FIN_SUM;
	for (i = 1; i < argc; i++)
		submit(s, key_req(s, CACHE_REQ_DEL, i, 0), now);
	return wait_all(s);
}

static int c_exists(struct resp_sess *s, uint32_t argc, int64_t now)
{
	int64_t n = 0;
	uint32_t i;

	for (i = 1; i < argc; i++) {
		size_t kl;
		const char *k = resp__arg(s, i, &kl);

		n += cache_lookup(s->c, k, kl, now) != NULL;
	}
	resp__int(s, n);
	return RESP__DONE;
}

static int expire_cmd(struct resp_sess *s, int64_t now, int64_t unit, const char *name)
{
	int64_t v, at;
	char msg[64];

	if (arg_i64(s, 2, &v)) {
		resp__err(s, MSG_NOTINT);
		return RESP__DONE;
	}
	if (abs_expiry(now, v, unit, 0, &at)) {
		snprintf(msg, sizeof msg, "ERR invalid expire time in '%s' command", name);
		resp__err(s, msg);
		return RESP__DONE;
	}
	if (at <= now)
		at = 1;   /* any past time: the owner deletes the key (0 would mean persist) */
	s->fin = FIN_INT;
	submit(s, key_req(s, CACHE_REQ_EXPIRE, 1, at), now);
	return wait_all(s);
}

static int c_expire(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return expire_cmd(s, now, 1000, "expire");
}

static int c_pexpire(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return expire_cmd(s, now, 1, "pexpire");
}

static int ttl_cmd(struct resp_sess *s, int64_t now, int ms)
{
	size_t kl;
	const char *k = resp__arg(s, 1, &kl);
	const struct cache_entry *e = cache_lookup(s->c, k, kl, now);
	int64_t t;

	if (!e) {
		resp__int(s, -2);
		return RESP__DONE;
	}
	t = cache_entry_ttl_ms(e, now);
	resp__int(s, t < 0 ? -1 : ms ? t : (t + 500) / 1000);
	return RESP__DONE;
}

static int c_ttl(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return ttl_cmd(s, now, 0);
}

static int c_pttl(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return ttl_cmd(s, now, 1);
}

static int incr_cmd(struct resp_sess *s, int64_t now, int64_t delta)
{
	s->fin = FIN_INCR;
	submit(s, key_req(s, CACHE_REQ_INCR, 1, delta), now);
	return wait_all(s);
}

static int c_incr(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return incr_cmd(s, now, 1);
}

static int c_decr(struct resp_sess *s, uint32_t argc, int64_t now)
{
	return incr_cmd(s, now, -1);
}

static int c_incrby(struct resp_sess *s, uint32_t argc, int64_t now)
{
	int64_t v;

	if (arg_i64(s, 2, &v)) {
		resp__err(s, MSG_NOTINT);
		return RESP__DONE;
	}
	return incr_cmd(s, now, v);
}

static int c_decrby(struct resp_sess *s, uint32_t argc, int64_t now)
{
	int64_t v;

	if (arg_i64(s, 2, &v)) {
		resp__err(s, MSG_NOTINT);
		return RESP__DONE;
	}
	if (v == INT64_MIN) {
		resp__err(s, "ERR decrement would overflow");
		return RESP__DONE;
	}
	return incr_cmd(s, now, -v);
}

static int c_dbsize(struct resp_sess *s, uint32_t argc, int64_t now)
{
	struct cache_stats st;

	cache_stats(s->c, &st);
	resp__int(s, (int64_t)st.entries);
	return RESP__DONE;
}

/* Every shard's requests, one per shard. */
static int all_shards(struct resp_sess *s, uint8_t type, uint32_t pi, int fin, int64_t now)
{
	uint32_t i, n = cache_nshards(s->c);
	size_t pl = 0;
	const char *p = pi ? resp__arg(s, pi, &pl) : NULL;
	struct cache_req *r;

	s->fin = (uint8_t)fin;
	for (i = 0; i < n; i++) {
		r = cache_req_new(type, p, pl);
		if (r)
			r->shard = (int32_t)i;
		submit(s, r, now);
	}
	return wait_all(s);
}

static int c_flushall(struct resp_sess *s, uint32_t argc, int64_t now)
{
	if (argc > 2 || (argc == 2 && !arg_is(s, 1, "async") && !arg_is(s, 1, "sync"))) {
		resp__err(s, MSG_SYNTAX);
		return RESP__DONE;
	}
	return all_shards(s, CACHE_REQ_FLUSH, 0, FIN_OK, now);
}

/* PURGE PREFIX <p> | PURGE TAG <t>: ringfront's own, for cached responses. */
static int c_purge(struct resp_sess *s, uint32_t argc, int64_t now)
{
	if (argc == 3 && arg_is(s, 1, "prefix"))
		return all_shards(s, CACHE_REQ_PURGE_PREFIX, 2, FIN_SUM, now);
	if (argc == 3 && arg_is(s, 1, "tag"))
		return all_shards(s, CACHE_REQ_PURGE_TAG, 2, FIN_SUM, now);
	resp__err(s, "ERR PURGE takes PREFIX <prefix> or TAG <tag>");
	return RESP__DONE;
}

static int c_info(struct resp_sess *s, uint32_t argc, int64_t now)
{
	struct { const char *name; int on; } sec[] = {
		{ "server", 1 }, { "memory", 1 }, { "stats", 1 }, { "keyspace", 1 },
	};
	struct cache_stats st;
	char buf[2048];
	size_t n = 0, i, j;

	if (argc > 1 && !arg_is(s, 1, "all") && !arg_is(s, 1, "default") &&
	    !arg_is(s, 1, "everything")) {
		for (i = 0; i < ARRAY_SIZE(sec); i++) {
			sec[i].on = 0;
			for (j = 1; j < argc; j++)
				sec[i].on |= arg_is(s, (uint32_t)j, sec[i].name);
		}
	}
	cache_stats(s->c, &st);
	/* snprintf returns the untruncated length: clamp before reusing n */
#define ADD(...) n += (size_t)snprintf(buf + RF_MIN(n, sizeof buf - 1), \
				       sizeof buf - RF_MIN(n, sizeof buf - 1), __VA_ARGS__)
	if (sec[0].on)
		ADD("# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n"
		    "server_name:ringfront\r\nshards:%u\r\n\r\n", cache_nshards(s->c));
	if (sec[1].on)
		ADD("# Memory\r\nused_memory:%llu\r\nused_memory_index:%llu\r\n"
		    "retired_memory:%llu\r\nmaxmemory:%llu\r\nmaxmemory_policy:allkeys-lru\r\n\r\n",
		    (unsigned long long)(st.bytes + st.retired_bytes),
		    (unsigned long long)st.bytes, (unsigned long long)st.retired_bytes,
		    (unsigned long long)st.limit);
	if (sec[2].on)
		ADD("# Stats\r\ntotal_commands_processed:%llu\r\nkeyspace_hits:%llu\r\n"
		    "keyspace_misses:%llu\r\nevicted_keys:%llu\r\nexpired_keys:%llu\r\n"
		    "inserts:%llu\r\nhttp_stale:%llu\r\nhttp_revalidated:%llu\r\n"
		    "http_bypass:%llu\r\n\r\n",
		    (unsigned long long)st.commands, (unsigned long long)st.hits,
		    (unsigned long long)st.misses, (unsigned long long)st.evictions,
		    (unsigned long long)st.expired, (unsigned long long)st.inserts,
		    (unsigned long long)st.outcome[CACHE_OUT_STALE],
		    (unsigned long long)st.outcome[CACHE_OUT_REVALIDATED],
		    (unsigned long long)st.outcome[CACHE_OUT_BYPASS]);
	if (sec[3].on)
		ADD("# Keyspace\r\ndb0:keys=%llu,expires=0,avg_ttl=0\r\n",
		    (unsigned long long)st.entries);
#undef ADD
	resp__bulk(s, buf, RF_MIN(n, sizeof buf - 1));
	return RESP__DONE;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Redis config globs: '*' and '?', case-insensitive. Iterative with one
 * backtrack point, so a long hostile pattern costs time linear in its
 * length times the (short) name, and no stack. */
static int glob(const char *p, size_t pl, const char *s)
{
	size_t pi = 0, si = 0, star = (size_t)-1, mark = 0, sl = strlen(s);

	while (si < sl) {
		if (pi < pl && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pl && (p[pi] == '?' || lower(p[pi]) == lower(s[si]))) {
			pi++;
			si++;
		} else if (star != (size_t)-1) {
			pi = star + 1;
			si = ++mark;
		} else {
			return 0;
		}
	}
	while (pi < pl && p[pi] == '*')
		pi++;
	return pi == pl;
}

static int c_config(struct resp_sess *s, uint32_t argc, int64_t now)
{
	char maxmem[24], bulk[24];
	const char *const params[][2] = {
		{ "save", "" }, { "appendonly", "no" }, { "databases", "1" },
		{ "maxmemory", maxmem }, { "maxmemory-policy", "allkeys-lru" },
		{ "proto-max-bulk-len", bulk },
	};
	uint64_t hit = 0;
	size_t i, pl;
	uint32_t j;

	if (arg_is(s, 1, "resetstat")) {
		resp__status(s, "OK");
		return RESP__DONE;
	}
	if (!arg_is(s, 1, "get")) {
		resp__err(s, "ERR CONFIG supports GET and RESETSTAT only");
		return RESP__DONE;
	}
	if (argc < 3) {
		resp__err(s, "ERR wrong number of arguments for 'config|get' command");
		return RESP__DONE;
	}
	{
		struct cache_stats st;

		cache_stats(s->c, &st);
		snprintf(maxmem, sizeof maxmem, "%llu", (unsigned long long)st.limit);
		snprintf(bulk, sizeof bulk, "%llu", (unsigned long long)s->lim.max_bulk);
	}
	for (i = 0; i < ARRAY_SIZE(params); i++)
		for (j = 2; j < argc; j++) {
			const char *pat = resp__arg(s, j, &pl);   /* sets pl first */

			if (glob(pat, pl, params[i][0])) {
				hit |= 1ull << i;
				break;
			}
		}
	resp__array(s, 2 * (uint64_t)__builtin_popcountll(hit));
	for (i = 0; i < ARRAY_SIZE(params); i++) {
		if (!(hit & (1ull << i)))
			continue;
		resp__bulk(s, params[i][0], strlen(params[i][0]));
		resp__bulk(s, params[i][1], strlen(params[i][1]));
	}
	return RESP__DONE;
}

static int c_select(struct resp_sess *s, uint32_t argc, int64_t now)
{
	if (arg_is(s, 1, "0"))
		resp__status(s, "OK");
	else
		resp__err(s, "ERR DB index is out of range");
	return RESP__DONE;
}

static int c_command(struct resp_sess *s, uint32_t argc, int64_t now)
{
	resp__array(s, 0);   /* redis-cli asks for command docs; it does without */
	return RESP__DONE;
}

static int c_client(struct resp_sess *s, uint32_t argc, int64_t now)
{
	if (arg_is(s, 1, "setname") || arg_is(s, 1, "setinfo"))
		resp__status(s, "OK");
	else if (arg_is(s, 1, "getname"))
		resp__nil(s);
	else
		resp__err(s, "ERR unknown CLIENT subcommand");
	return RESP__DONE;
}

static int c_quit(struct resp_sess *s, uint32_t argc, int64_t now)
{
	resp__status(s, "OK");
	return RESP__CLOSE;
}

static const struct cmd cmds[] = {
	{ "get", 2, c_get }, { "set", -3, c_set }, { "ping", -1, c_ping },
	{ "echo", 2, c_echo }, { "del", -2, c_del }, { "unlink", -2, c_del },
	{ "exists", -2, c_exists }, { "expire", 3, c_expire }, { "pexpire", 3, c_pexpire },
	{ "ttl", 2, c_ttl }, { "pttl", 2, c_pttl }, { "mget", -2, c_mget },
	{ "mset", -3, c_mset }, { "incr", 2, c_incr }, { "decr", 2, c_decr },
	{ "incrby", 3, c_incrby }, { "decrby", 3, c_decrby }, { "dbsize", 1, c_dbsize },
	{ "flushall", -1, c_flushall }, { "flushdb", -1, c_flushall }, { "info", -1, c_info },
	{ "quit", -1, c_quit }, { "config", -2, c_config }, { "select", 2, c_select },
	{ "command", -1, c_command }, { "client", -2, c_client }, { "purge", -2, c_purge },
};

/* "'arg' " pieces of an unknown command, as Redis words its message. */
static void unknown(struct resp_sess *s)
{
	char msg[320];
	size_t n, k, i, len;
	const char *p = resp__arg(s, 0, &len);

	n = (size_t)snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
			     (int)RF_MIN(len, 64), p);
	for (i = 1; i < s->nargs && n < sizeof msg - 80; i++) {
		p = resp__arg(s, (uint32_t)i, &len);
		k = (size_t)snprintf(msg + n, sizeof msg - n, "'%.*s' ", (int)RF_MIN(len, 64), p);
		n += k;
	}
	resp__err(s, msg);
}

int resp__exec(struct resp_sess *s, int64_t now_ms)
{
	size_t len, i;
	const char *name = resp__arg(s, 0, &len);
	const struct cmd *c = NULL;
	char msg[96];

	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (rf_ieq(name, len, cmds[i].name)) {
			c = &cmds[i];
			break;
		}
	}
	if (!c) {
		unknown(s);
		return RESP__DONE;
	}
	if ((c->arity > 0 && s->nargs != (uint32_t)c->arity) ||
	    (c->arity < 0 && s->nargs < (uint32_t)-c->arity)) {
		snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", c->name);
		resp__err(s, msg);
		return RESP__DONE;
	}
	return c->fn(s, s->nargs, now_ms);
}

/* config.h - the parsed configuration and the INI loader.
 *
 * The loader is table driven: each section has one table row per key
 * (name, type, bounds, default, target offset), so validation, defaults,
 * documentation and the test that conf/default.ini lists every key all read
 * the same rows. A config is built once at start-up (or reload) with calloc
 * and freed as a whole by config_free(); the request path only reads it. */
#ifndef RF_CONFIG_H
#define RF_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define RF_MAX_LISTEN   8
#define RF_NAME_MAX     64
#define RF_MAX_WORKERS  256     /* the largest workers = N */

struct rf_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64];          /* "host:port" as written, for logs and headers */
};

enum rf_balance {
	RF_BAL_ROUND_ROBIN = 0,
	RF_BAL_WEIGHTED,
	RF_BAL_LEAST_CONN,
	RF_BAL_IP_HASH,
	RF_BAL_LEAST_TIME,
	RF_BAL_ADAPTIVE,
	RF_BAL_RANDOM2,
};

/* [server] io: the event backend of the workers (io.h). */
enum rf_io {
	RF_IO_AUTO = 0,         /* io_uring, or epoll where io_uring is blocked */
	RF_IO_URING,
	RF_IO_EPOLL,
};

enum rf_log_level {
	RF_LOG_ERROR = 0,
	RF_LOG_WARN,
	RF_LOG_INFO,
	RF_LOG_DEBUG,
};

/* Bits of rf_server_conf.given: options written after the address. */
#define RF_SRV_WEIGHT     1u
#define RF_SRV_MAX_CONNS  2u

struct rf_server_conf {
	struct rf_addr addr;
	uint32_t weight;        /* weight=N after the address, default 1 */
	uint32_t max_conns;     /* max_conns=N after the address; 0 = unlimited */
	uint32_t given;         /* RF_SRV_* options given; else the upstream's value */
};

/* retry_on conditions (HAProxy's retry-on names) */
#define RF_RETRY_CONNECT   0x01    /* connect-failure: the request never left */
#define RF_RETRY_EMPTY     0x02    /* empty-response: closed or reset before a byte */
#define RF_RETRY_429       0x04    /* these answers, dropped unseen by the client */
#define RF_RETRY_502       0x08
#define RF_RETRY_503       0x10
#define RF_RETRY_504       0x20
#define RF_RETRY_TIMEOUT   0x40    /* response-timeout: no answer in response_timeout */

struct rf_upstream_conf {
	char name[RF_NAME_MAX];
	struct rf_server_conf *servers;  /* owned, nservers entries */
	uint32_t nservers;
	uint32_t balance;                /* enum rf_balance */
	char *health_path;               /* owned */
	uint32_t health_interval_ms;
	uint32_t health_timeout_ms;
	uint32_t fall;
	uint32_t rise;
	uint32_t max_retries;
	uint32_t retry_on;               /* RF_RETRY_* */
	uint32_t keepalive;              /* idle pooled connections per server per worker */
	uint32_t connect_timeout_ms;
	uint32_t response_timeout_ms;    /* backend silent this long -> 504 */
	uint32_t slow_start_ms;          /* a returning server ramps up over this; 0 = at once */
	uint32_t max_ejection_percent;   /* at most this share of servers ejected at once */
	uint32_t eject_after;            /* consecutive passive failures; 0 = never eject */
	uint32_t eject_time_ms;          /* first ejection; doubles per repeat, max 300 s */
	uint32_t fail_on_5xx;            /* 0 off, 1 on: a 5xx counts as a failure */
	uint32_t circuit_failures;       /* consecutive failures that open it; 0 = no breaker */
	uint32_t circuit_open_time_ms;   /* open this long, then half-open */
	uint32_t circuit_half_open_requests;  /* trial requests while half-open */
	uint32_t retry_budget;           /* retries as percent of recent attempts; 0 = none */
	uint32_t max_conns;              /* requests in flight per server, all workers; 0 = unlimited */
	uint32_t queue_size;             /* requests waiting for a slot, all workers; 0 = none */
	uint32_t queue_timeout_ms;       /* a waiting request gets 503 after this */
	char *queue_priority_header;     /* owned; integer header, higher served first; NULL = none */
	uint8_t dynamic;                 /* made through /services, not the file */
	int line;                        /* where the section starts, for errors */
};

struct rf_rate {
	uint32_t count;
	uint32_t period_ms;
};

/* A [route] line: "/prefix = upstream [option=value ...]". */
struct rf_route_conf {
	char *prefix;           /* owned, starts with '/' */
	uint32_t upstream;      /* index into rf_config.upstreams */
	int line;
	uint32_t cache;         /* 0 off, 1 on (with a [cache] section) */
	uint32_t cache_ttl_ms;  /* lifetime without caching headers; 0 = [cache] default_ttl */
	uint32_t ratelimit;     /* 0 off: no limit on this route */
	struct rf_rate rate;    /* count 0 = the [ratelimit] rate */
	uint32_t burst;         /* 0 = the rate's COUNT (or [ratelimit] burst) */
	uint32_t rl_key;        /* 0 = [ratelimit] key, 1 = ip, 2 = ip+path */
	uint32_t require_key;   /* 0 = [ratelimit] require_key, 1 off, 2 on */
};

/* [admin]: the operator API, served by the workers on its own listener. */
struct rf_admin_conf {
	uint8_t enabled;                 /* the section is present */
	struct rf_addr listen[1];
	uint32_t nlisten;
	char *token;                     /* owned; NULL = no bearer token */
	uint64_t max_body;               /* largest admin request body */
};

/* A rate written "100/60s": <count> tokens per <period_ms>. */
enum rf_rl_key {
	RF_RL_KEY_IP = 0,                /* client address */
	RF_RL_KEY_IP_PATH,               /* client address + request path */
	RF_RL_KEY_HEADER,                /* header:NAME, e.g. an API key */
};

/* [tier NAME]: a named limit that API keys map to. The name comes first,
 * as in rf_upstream_conf: error messages read it the same way. */
struct rf_tier_conf {
	char name[RF_NAME_MAX];
	struct rf_rate rate;
	uint32_t burst;                  /* 0 = rate.count */
	uint32_t priority;               /* queue order of its clients' requests, higher first */
	int line;
};

/* One [api_keys] line: KEY = tiername. */
struct rf_api_key_conf {
	char *key;                       /* owned */
	char tier_name[RF_NAME_MAX];
	uint32_t tier;                   /* index into rf_ratelimit_conf.tiers */
	int line;
};

/* [ratelimit]: present = enabled. rate/burst is the limit of each key; with
 * key = header:NAME it is the per-address limit that applies in addition
 * to the tier of a known API key. */
struct rf_ratelimit_conf {
	uint8_t enabled;                 /* the section is present */
	struct rf_rate rate;
	uint32_t burst;                  /* 0 = rate.count */
	uint32_t key;                    /* enum rf_rl_key */
	char key_header[RF_NAME_MAX];    /* NAME of key = header:NAME */
	struct rf_addr listen[1];        /* line protocol; nlisten 0 = off */
	uint32_t nlisten;
	uint32_t max_keys;               /* bucket slots */
	uint32_t table_full;             /* 0 = allow, 1 = deny */
	uint32_t ban_after;              /* consecutive rejections; 0 = no bans */
	uint32_t ban_time_ms;
	uint32_t ban_multiplier;
	uint32_t headers;                /* rate_limit_headers: 0 off, 1 on */
	uint32_t require_key;            /* 0 off, 1 on: missing/unknown key -> 401 */
	int line;

	struct rf_tier_conf *tiers;      /* owned, [tier NAME] in file order */
	uint32_t ntiers;
	struct rf_api_key_conf *api_keys;    /* owned */
	uint32_t napi_keys;
};

/* [cache]: present = the response cache is on, for every route (what HTTP
 * allows), and the Redis-protocol port when listen is set. */
struct rf_cache_conf {
	uint8_t enabled;                 /* the section is present */
	uint64_t memory;                 /* bytes for all shards, overhead included */
	uint32_t max_object_size;        /* largest stored response / value */
	struct rf_addr listen[1];        /* Redis protocol (RESP2 + inline); nlisten 0 = off */
	uint32_t nlisten;
	uint32_t default_ttl_ms;         /* lifetime of responses without one; 0 = never guess */
	uint32_t coalesce;               /* 0 off, 1 on: concurrent misses of a key share a fetch */
	uint32_t sweep_interval_ms;      /* a background expiry pass starts this often */
	int line;
};

/* [store]: the admin API's changes (clients, keys, tiers, blocks, strategy,
 * weights, drain) survive restarts when path is set. */
struct rf_store_conf {
	uint8_t enabled;                 /* the section is present */
	char *path;                      /* owned; NULL = no persistence */
	uint32_t snapshot_interval_ms;   /* compaction (and stale-client removal) this often */
	uint64_t journal_max;            /* compaction as soon as the journal is larger */
	uint32_t client_ttl_ms;          /* a client unused this long is removed; 0 = never */
	int line;
};

/* [cluster]: present = several instances share rate limits, clients and
 * cache purges through Redis (cluster.h). Absent = a single instance. */
#define RF_CLUSTER_MAX_REDIS 8
enum rf_cluster_fallback {
	RF_CLUSTER_FALLBACK_LOCAL = 0,   /* Redis down: each instance its own full limit */
	RF_CLUSTER_FALLBACK_DENY,        /* Redis down: limited requests get 429 */
};

struct rf_cluster_conf {
	uint8_t enabled;                 /* the section is present */
	struct rf_addr redis[RF_CLUSTER_MAX_REDIS];  /* failover order */
	uint32_t nredis;
	char *password;                  /* owned; NULL = no AUTH */
	char *instance;                  /* owned; the host name when not given */
	char *prefix;                    /* owned; Redis key and channel prefix */
	uint32_t sync_interval_ms;       /* lease batches and state polls */
	uint32_t timeout_ms;             /* connect and reply timeout */
	uint32_t fallback;               /* enum rf_cluster_fallback */
	uint32_t lease;                  /* tokens fetched per key per sync */
	uint32_t max_keys;               /* keys with a lease at once */
	int line;
};

struct rf_config {
	char *path;             /* owned: the file it was read from */
	char *source;           /* owned: the file's text (config_load), or NULL */
	size_t source_len;

	/* [server] */
	struct rf_addr listen[RF_MAX_LISTEN];
	uint32_t nlisten;
	uint32_t workers;                /* 0 = auto (one per online CPU) */
	uint32_t max_connections;        /* client connections per process */
	uint32_t header_timeout_ms;      /* whole request head must arrive in time */
	uint32_t keepalive_timeout_ms;   /* idle client connection between requests */
	uint32_t shutdown_timeout_ms;    /* graceful stop: in-flight requests finish */
	uint32_t max_header_size;        /* bytes -> 431 beyond */
	uint32_t max_uri_size;           /* bytes -> 414 beyond */
	uint64_t max_body_size;          /* bytes -> 413 beyond; 0 = unlimited */
	uint32_t recv_buffers;           /* provided receive buffers per worker */
	uint32_t recv_buffer_size;       /* bytes each */
	uint32_t io;                     /* enum rf_io */
	uint32_t batch_wait_us;          /* io_uring batched waits under load; 0 = off */
	uint32_t log_level;              /* enum rf_log_level */
	char *log_file;                  /* owned; NULL = stderr */
	char *access_log;                /* owned; NULL = off */
	char *user;                      /* owned; NULL = keep the identity started with */
	char *group;                     /* owned; NULL = the user's primary group */

	struct rf_admin_conf admin;

	/* [upstream NAME], in file order */
	struct rf_upstream_conf *upstreams;  /* owned */
	uint32_t nupstreams;

	/* [route], sorted longest prefix first */
	struct rf_route_conf *routes;        /* owned */
	uint32_t nroutes;

	/* [ratelimit], [tier NAME], [api_keys] */
	struct rf_ratelimit_conf ratelimit;

	/* [cache] */
	struct rf_cache_conf cache;

	/* [store] */
	struct rf_store_conf store;

	/* [cluster] */
	struct rf_cluster_conf cluster;
};

/* Load and validate <path>. On success returns 0 and sets *out (free with
 * config_free). On failure returns a negative errno and writes a message of
 * the form "FILE:LINE: message" (or "FILE: message" when no line applies)
 * into <err> (size <errlen>). */
int config_load(const char *path, struct rf_config **out, char *err, size_t errlen);

/* Same as config_load() over an in-memory text; <name> is used in messages. */
int config_parse(const char *name, const char *text, size_t len,
		 struct rf_config **out, char *err, size_t errlen);

void config_free(struct rf_config *cfg);

/* Move the upstreams and routes of <src> (a configuration of its own, e.g.
 * the dynamic services) into <dst>, keeping dst's routes sorted longest
 * prefix first; <src> is freed either way. A name or prefix <dst> has
 * already is refused: -EEXIST with a message in <err>. */
int config_merge(struct rf_config *dst, struct rf_config *src, char *err, size_t errlen);

/* Parse "host:port" (IPv4, [IPv6]:port, or "localhost"/hostname resolved
 * with getaddrinfo at load time). Returns 0 or -EINVAL. */
int config_parse_addr(const char *text, struct rf_addr *out);

/* Parse helpers shared by the tables and tests: sizes take k/m/g suffixes
 * (powers of 1024), durations take ms/s/m/h (a bare number is seconds).
 * Return 0 or -EINVAL / -ERANGE. */
int config_parse_size(const char *text, uint64_t *out);
int config_parse_duration_ms(const char *text, uint64_t *out);

/* Name of a balance strategy / parse one. */
const char *config_balance_name(uint32_t balance);
int config_balance_parse(const char *text, uint32_t *out);

/* Print every section and key with its default and help text, in INI form
 * (used to check conf/default.ini lists every key). */
void config_dump_keys(FILE *out);

#endif

/* cluster.h - several ringfront instances acting as one through Redis
 * ([cluster]): global rate limits by leases of tokens, client records and
 * blocks shared through a Redis hash and change notices, cache purges
 * broadcast. Worker 0 owns the two Redis connections (commands, and a
 * subscriber) as I/O on its ring; the request path only touches lock-free
 * lease slots and never waits on Redis. NULL rf_cluster = one instance. */
#ifndef RF_CLUSTER_H
#define RF_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct cluster;
struct rf_config;
struct rl;
struct worker;
struct outbuf;

extern struct cluster *rf_cluster;

/* Build the cluster of cfg->cluster over the limiter <rl> (its gate and
 * change hooks are set) for <nworkers> workers. Returns 0, -ENOMEM. */
int cluster_create(const struct rf_config *cfg, struct rl *rl, unsigned nworkers,
		   struct cluster **out);
void cluster_destroy(struct cluster *cl);

/* Worker <w>'s part: worker 0 starts the connections and the sync timer;
 * the others do nothing. stop: close for good; busy: I/O still owed a
 * CQE; free: release the connections' buffers. */
void cluster_worker_start(struct cluster *cl, struct worker *w);
void cluster_worker_stop(struct cluster *cl, struct worker *w);
int cluster_worker_busy(struct cluster *cl, const struct worker *w);
void cluster_worker_free(struct cluster *cl, struct worker *w);

/* A cache purge made through this instance's admin API, for the others
 * (the local one is done). <type> is a CACHE_REQ_* purge type. Any thread. */
void cluster_publish_purge(struct cluster *cl, uint8_t type, const char *pat, size_t len);

/* ---- shared state: the interface a journal can hook into ----
 * A record is (kind, id, JSON of its whole state, or NULL when removed).
 * Kinds: "client" (rl_client: capacity, rate_per_sec, tier, client,
 * blocked; hash <prefix>clients), and "service", "upstream", "server"
 * (persist.c's records; hash <prefix>state, fields "KIND ID"). */

/* A record changed on this instance: stored in Redis and announced. */
void cluster_record_changed(struct cluster *cl, const char *kind, const char *id,
			    const char *json);

/* Apply a record that changed elsewhere. Returns 0, -EINVAL (bad record),
 * -ENOENT (unknown kind or tier). */
int cluster_record_apply(struct rl *rl, const char *kind, const char *id, const char *json,
			 size_t len);

/* The JSON of a client record (the shape cluster_record_apply() reads),
 * into <buf>. Returns its length or -ENOSPC. */
struct rl_client;
int cluster_client_json(const struct rl_client *c, char *buf, size_t cap);

/* ---- views ---- */

/* "cluster":{...} members for /stats (no braces), and Prometheus lines. */
void cluster_stats_json(struct cluster *cl, struct outbuf *o);
void cluster_metrics(struct cluster *cl, struct outbuf *o);

#endif

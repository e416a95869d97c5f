/* persist.h - what ringfront keeps in the state store (store.h): one kind
 * of record per piece of state the admin API changes, each changed in one
 * place and applied back by one callback:
 *   client    id = API key or address: the rate limiter's entry (client
 *             limit or tier, blocked), through rl->on_change
 *   upstream  id = upstream name: a balancing strategy other than the
 *             file's, through persist_set_strategy()
 *   server    id = "upstream/host:port": a weight other than the file's,
 *             or drain, through persist_set_server()
 * A record that only restates the configuration is deleted, so editing
 * the file takes effect again. Upstream and server records are re-applied
 * to the runtime every reload builds; without [store] path they are kept
 * in memory for that alone.
 *   service   id = service name: a dynamic service (servers, route,
 *             balance), through persist_set_service(); replayed into the
 *             services registry before the kinds that may name its upstream */
#ifndef RF_PERSIST_H
#define RF_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "services.h"
#include "store.h"
#include "upstream.h"

/* Open the store of rt->cfg's [store] (memory only without a path), hook
 * the rate limiter (rt->rl, after rl_init), and replay the stored state
 * into <rt> and its limiter. Called once at start-up before the listeners
 * open. <chown>: files created now go to uid:gid (started as root, with a
 * user to switch to). Returns 0, or a negative errno with a message in
 * <err>: the process must not start. */
int persist_start(struct runtime *rt, int chown, uid_t uid, gid_t gid, char *err,
		  size_t errlen);

/* After dropping privileges: can this identity still write the store
 * directory (compaction creates files there)? Returns 0 or -errno with a
 * message in <err>. */
int persist_check_writable(char *err, size_t errlen);

/* Close the store (workers have stopped). */
void persist_stop(void);

/* The admin API's balancing changes: record the new state durably, then
 * apply it to <up> or <s> (of the caller's runtime) and to the same
 * upstream or server of the published runtime when a reload replaced it. <weight> and <drain>
 * may be NULL (unchanged). Returns 0, -EIO (could not be recorded: nothing
 * changed) or -ENOMEM. */
int persist_set_strategy(struct upstream *up, uint32_t strategy);
int persist_set_server(struct server *s, const uint32_t *weight, const int *drain,
		       uint64_t now_ms);

/* The admin API set service <s> (or removed the one named <remove>, s
 * NULL): record it. Returns 0, -EIO (not recorded), -E2BIG, -ENOMEM. */
int persist_set_service(const struct service *s, const char *remove);

/* A service, strategy or server record (kind "service", "upstream",
 * "server") changed on another instance (cluster.h): apply it here and
 * record it, without sharing it again. <json> NULL: removed. Returns 0,
 * -ENOENT (not one of these kinds, or nothing it names), -EINVAL. */
int persist_apply_remote(const char *kind, const char *id, const char *json, size_t len);

/* A reload built <nrt>: apply the stored balancing state to it and take
 * the lock that keeps admin changes out until persist_adopt_done(), which
 * the reload calls once <nrt> is published. */
void persist_adopt(struct runtime *nrt);
void persist_adopt_done(void);

/* Once a second from the main thread: every snapshot_interval, or when
 * the journal passed journal_max, expire stale clients (client_ttl) and
 * compact the journal into a snapshot. */
void persist_tick(void);

/* Figures for /stats: 0, or -ENOENT before persist_start(). */
int persist_stats(struct store_stats *out, const char **path);

#endif

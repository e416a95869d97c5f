/* upstream.h - the run-time view of upstreams and routes: servers with their
 * shared health word, longest-prefix routing, and server selection. Built
 * once from the config and shared read-only by all workers; only the health
 * words change, through atomics. */
#ifndef RF_UPSTREAM_H
#define RF_UPSTREAM_H

#include <stdatomic.h>
#include <stdint.h>
#include "config.h"

struct server {
	const struct rf_server_conf *conf;
	uint32_t id;                    /* index over all upstreams' servers */
	uint32_t weight;
	/* Passive health: the monotonic ms before which the server is skipped
	 * after a connect failure (0 = available). One atomic word, written by
	 * whichever worker saw the failure. */
	_Atomic uint64_t down_until;
	_Atomic uint32_t fails;         /* consecutive failures */
};

struct upstream {
	const struct rf_upstream_conf *conf;
	struct server *servers;         /* owned by the runtime */
	uint32_t nservers;
	uint32_t index;
};

struct runtime {
	struct rf_config *cfg;          /* owned */
	struct upstream *ups;           /* owned, cfg->nupstreams entries */
	struct server *servers;         /* owned, all servers */
	uint32_t nservers;
};

/* Build the runtime view of <cfg> (takes ownership of cfg).
 * Returns 0 or -ENOMEM. */
int runtime_init(struct runtime *rt, struct rf_config *cfg);
void runtime_free(struct runtime *rt);

/* The upstream serving <path>, or NULL when no route matches. */
struct upstream *route_lookup(const struct runtime *rt, const char *path,
			      uint32_t len);

/* Per-worker selection state for one upstream. */
struct balance_state {
	uint32_t rr;                    /* round-robin cursor */
};

/* Choose a server of <up> that is available at <now_ms> and whose bit is
 * not set in <tried> (servers already tried for this request). Falls back
 * to a server marked down when every untried one is down, so a recovered
 * server is found without waiting for its back-off. Returns the server or
 * NULL when every server was tried. */
struct server *balance_pick(struct upstream *up, struct balance_state *bs,
			    uint64_t tried, uint64_t now_ms);

/* Passive health reports from real traffic. */
void server_report_failure(struct server *s, uint64_t now_ms);
void server_report_success(struct server *s);

#endif

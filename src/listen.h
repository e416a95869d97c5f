/* listen.h - every address ringfront listens on, with the kind of traffic
 * it carries. Each worker gets its own SO_REUSEPORT socket per endpoint, so
 * the kernel spreads connections over the workers. */
#ifndef RF_LISTEN_H
#define RF_LISTEN_H

#include "config.h"

enum listen_kind {
	LISTEN_PROXY = 0,       /* [server] listen: proxied HTTP */
	LISTEN_ADMIN,           /* [admin] listen: the operator API */
	LISTEN_RL_LINE,         /* [ratelimit] listen: "<key>\n" -> "OK\n" | "ERROR\n" */
	LISTEN_RESP,            /* [cache] listen: Redis protocol over the cache */
	LISTEN_KINDS,
};

#define RF_MAX_ENDPOINTS (RF_MAX_LISTEN + LISTEN_KINDS)

struct endpoint {
	const struct rf_addr *addr;     /* points into the config */
	uint8_t kind;                   /* enum listen_kind */
};

/* Fill <out> (RF_MAX_ENDPOINTS entries) with every endpoint of <cfg>,
 * proxy listeners first. Returns the count. */
unsigned endpoints_collect(const struct rf_config *cfg, struct endpoint *out);

/* Open, bind and listen one socket for <ep>. Returns the fd or -errno. */
int endpoint_open(const struct endpoint *ep, int backlog);

const char *listen_kind_name(unsigned kind);

/* The first socket of an endpoint: as endpoint_open(), but -EADDRINUSE
 * when something else listens there already, even with SO_REUSEPORT. */
int endpoint_open_first(const struct endpoint *ep, int backlog);

#endif

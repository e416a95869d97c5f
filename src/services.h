/* services.h - the dynamic services registry (seed 002's /services): a
 * service is an upstream and its route made through the admin API rather
 * than the file. The registry is a plain list; reload.c owns the one in
 * use (under its lock) and rebuilds the runtime from the file's text plus
 * the services on every change, so a service lives exactly as a
 * configured upstream does: health checks, balancing, metrics, reloads. */
#ifndef RF_SERVICES_H
#define RF_SERVICES_H

#include <stddef.h>
#include <stdint.h>

struct rf_config;

#define SERVICE_MAX_SERVERS 64

struct service {
	char *name;             /* owned */
	char *servers;          /* owned: "host:port host:port", as [upstream] takes it */
	char *route;            /* owned: route prefix, "/NAME/" unless given */
	char *balance;          /* owned: strategy name, or NULL for the default */
};

struct services {
	struct service *v;      /* owned */
	uint32_t n;
};

/* Fill <s> from an admin request: <addrs> ("host:port", an http:// prefix
 * and a trailing '/' are accepted), <route> and <balance> may be NULL.
 * Returns 0, or -EINVAL with a message in <err>. Free with service_free(). */
int service_make(struct service *s, const char *name, const char *const *addrs,
		 uint32_t naddrs, const char *route, const char *balance, char *err,
		 size_t errlen);
void service_free(struct service *s);

/* <dst> = a deep copy of <src> with <s> added or replaced (by name), or
 * with the service named <remove> left out (s NULL). Returns 0, -ENOENT
 * (nothing to remove), -EEXIST (another service has s's route), -ENOMEM. */
int services_with(struct services *dst, const struct services *src, const struct service *s,
		  const char *remove);
void services_free(struct services *r);

/* The services as a configuration of their own (upstreams marked dynamic,
 * one route each), to config_merge() into the file's. With no services
 * *out is NULL. Returns 0, or a negative errno with "services: message"
 * in <err>. */
int services_config(const struct services *r, struct rf_config **out, char *err,
		    size_t errlen);

#endif

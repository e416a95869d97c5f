/* reload.h - switch the workers to a new runtime without dropping a
 * connection: after re-reading the file (SIGHUP and POST /reload) or a
 * change of the dynamic services (/services). */
#ifndef RF_RELOAD_H
#define RF_RELOAD_H

#include <stddef.h>
#include <stdint.h>
#include "services.h"

/* Load the running configuration's file again and publish it; its
 * generation goes to <*generation> when that is not NULL (the published
 * runtime may be replaced and freed as soon as this returns: read nothing
 * of it afterwards). On error the running configuration stays, and <err>
 * holds "FILE:LINE: message". Callable from any thread; reloads are
 * serialised. Returns 0 or the negative errno of the load. */
int reload_config(char *err, size_t errlen, uint32_t *generation);

/* Add or replace service <s> (by name), or remove the one named <remove>
 * (s NULL), and publish the runtime with it; the file is not read again.
 * Returns 0, -ENOENT (no such service), -EEXIST (its upstream name or
 * route is taken), -EINVAL (refused by the configuration rules, message
 * in <err>), -ENOTSUP (no file text to build on), -ENOMEM. */
int reload_service(const struct service *s, const char *remove, char *err, size_t errlen);

/* Start-up, while the store replays (no worker runs yet): put <s> into
 * the registry, or take out the one named <remove>, without building a
 * runtime. reload_services_start() then publishes them all at once.
 * Returns 0 or -ENOMEM. */
int reload_service_restore(const struct service *s, const char *remove);
int reload_services_start(char *err, size_t errlen);

#endif

/* reload.h - re-read the configuration file and switch the workers to it
 * without dropping a connection (SIGHUP and POST /reload). */
#ifndef RF_RELOAD_H
#define RF_RELOAD_H

#include <stddef.h>

/* Load the running configuration's file again and publish it. On error
 * the running configuration stays, and <err> holds "FILE:LINE: message".
 * Callable from any thread; reloads are serialised. Returns 0 or the
 * negative errno of the load. */
int reload_config(char *err, size_t errlen);

#endif

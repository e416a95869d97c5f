/* admin.h - the operator API on [admin] listen: HTTP requests parsed by the
 * connection state machine are answered here instead of being proxied.
 * Subsystems add their endpoints to the route table in admin.c. */
#ifndef RF_ADMIN_H
#define RF_ADMIN_H

#include "http_parse.h"

struct conn;

/* A request head arrived on an admin connection (the head is still in
 * place). Returns 0; the connection is then answered or reads the body. */
int admin_start(struct conn *c, const struct http_req *req);

/* More input on an admin connection that is reading a request body. */
void admin_feed(struct conn *c);

/* Release the admin state of <c> (request finished or connection closed). */
void admin_release(struct conn *c);

#endif

/* admin.h - the operator API on [admin] listen: HTTP requests parsed by the
 * connection state machine are answered here instead of being proxied.
 * Endpoints are rows of the route registry in admin.c; /openapi.json is
 * generated from it. */
#ifndef RF_ADMIN_H
#define RF_ADMIN_H

#include "http_parse.h"

struct conn;
struct worker;
struct outbuf;

/* How often a live /events stream should get an event. */
#define ADMIN_SSE_INTERVAL_MS 1000

/* A request head arrived on an admin connection (the head is still in
 * place). Returns 0, -ENOMEM, or -EMSGSIZE (body over max_body: 413); on 0
 * the connection is then answered or reads the body. */
int admin_start(struct conn *c, const struct http_req *req);

/* More input on an admin connection that is reading a request body. */
void admin_feed(struct conn *c);

/* Release the admin state of <c> (request finished or connection closed). */
void admin_release(struct conn *c);

/* Append one Server-Sent Event, "data: {...}\n\n", with the live figures
 * the dashboard draws (totals, per-server counters and states, rate
 * limiter, cache, the newest log lines) as seen from worker <w>.
 * Returns 0, or -ENOMEM when <out> could not take it. */
int admin_sse_event(struct worker *w, struct outbuf *out);

/* Queue the next event of a live /events stream on <c> (its head went out
 * with the first event) and start sending it. Returns 0, -EAGAIN when the
 * client has not read the earlier events yet (nothing queued: try at the
 * next tick), or -ENOMEM. */
int admin_sse_push(struct conn *c);

#endif

/* queue.h - requests waiting for a server slot. When every server of an
 * upstream that could take a request is at max_conns, the request waits in
 * its worker's queue for that upstream, highest priority first and in
 * arrival order within a priority, until a slot frees, queue_timeout
 * passes (503) or its client goes away.
 *
 * queue_size bounds the waiting requests of all workers together (one
 * shared counter). Each worker orders its own queue; between workers the
 * order holds too: each publishes its best request's key in the upstream,
 * a worker whose best is beaten elsewhere leaves the slot to that worker,
 * and a worker that frees a slot wakes the one with the best waiting
 * request (its eventfd). A worker with waiting requests also looks again
 * every QUEUE_POLL_MS, so a lost wake-up costs only that. */
#ifndef RF_QUEUE_H
#define RF_QUEUE_H

#include <stdint.h>

#define QUEUE_POLL_MS 10

struct conn;
struct worker;
struct upstream;
struct http_req;

/* One worker's waiting requests for one upstream, best first, linked
 * through conn.qnext/qprev. Owner: the worker (one per upstream). */
struct wqueue {
	struct conn *head, *tail;
	uint32_t len;
};

/* The priority of <req> on <up>: the integer in queue_priority_header
 * when the request carries a valid one, else <tier_prio> (its client's
 * tier). Higher is served first. */
int32_t queue_priority(const struct upstream *up, const struct http_req *req,
		       uint32_t tier_prio);

/* Should <c>'s first attempt wait behind requests already waiting for its
 * upstream (on any worker), rather than take a slot that frees before
 * they do? Returns 1 or 0. */
int queue_behind(const struct conn *c);

/* Put <c> (CONN_ST_PROXY, no server yet) in its worker's queue with
 * queue_timeout; when queue_size is 0 or reached, answer 503 with
 * Retry-After instead. Does nothing to a request already waiting. */
void queue_wait(struct conn *c);

/* <c> stops waiting (a server took it, or the request ends): out of the
 * queue, back to CONN_ST_PROXY. Does nothing to a request not waiting. */
void queue_leave(struct conn *c);

/* queue_timeout passed for waiting <c>: 503 with Retry-After. */
void queue_expire(struct conn *c);

/* Give waiting requests the slots that are free now, in order. Called by
 * the worker loop once per iteration while it has waiting requests. */
void queue_run(struct worker *w);

/* A request on <up> (of worker <w>) ended: if requests wait for it on
 * another worker, wake the one whose request comes first. */
void queue_slot_freed(struct worker *w, struct upstream *up);

/* The configuration is switching: every waiting request gets 503. */
void queue_fail_all(struct worker *w);

#endif

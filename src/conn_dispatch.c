/* conn_dispatch.c - from a routed request to an attempt on a backend
 * server: the balancer's choice, waiting in the queue when every server
 * is at max_conns, and trying again after a failure that came before any
 * response byte (connect errors, the keep-alive race, empty responses),
 * within max_retries and the retry budget. The client side's state
 * machine is conn.c; this is the part of it that talks to balance.c,
 * queue.c and link.c. */
#include <errno.h>
#include "common.h"
#include "worker.h"

/* Pick a server and a link for the current request, trying further servers
 * while connecting fails at once, within max_retries and the upstream's
 * retry budget. When every server that could take a first attempt is at
 * max_conns, the request waits in the queue instead (queue.h); the queue
 * calls this again when a slot frees. */
void conn_connect_backend(struct conn *c)
{
	struct worker *w = c->s.w;
	struct upstream *up = c->up;
	uint64_t lost = 0;

	/* requests wait already: a new one lines up rather than barge in */
	if (up->queueing && c->state != CONN_ST_QUEUED && queue_behind(c)) {
		queue_wait(c);
		return;
	}
	for (;;) {
		struct pick_ctx ctx = { w->wheel.now, c->tried | lost, c->client_hash, 0 };
		struct server *srv;
		struct link *l;
		int ret;

		/* a reload happened since the request was routed: its upstream's
		 * per-worker state is gone, so no retry */
		if (c->rt != w->rt) {
			conn_fail(c, 502);
			return;
		}
		if (c->attempts > up->conf->max_retries ||
		    (c->attempts && !balance_retry_allowed(up, w->wheel.now))) {
			conn_fail(c, 502);
			return;
		}
		srv = balance_choose(up, &w->bal[up->index], &ctx);
		if (!srv && (ctx.full || lost) && !c->tried) {
			queue_wait(c);
			return;
		}
		if (!srv) {
			conn_fail(c, c->attempts ? 502 : 503);
			return;
		}
		if (balance_on_start(srv) < 0) {
			lost |= 1ULL << (srv->index % 64);   /* another worker took the last slot */
			continue;
		}
		if (c->state == CONN_ST_QUEUED) {
			atomic_fetch_add_explicit(&up->queue_served, 1, memory_order_relaxed);
			queue_leave(c);
		}
		c->tried |= 1ULL << (srv->index % 64);
		c->attempts++;
		c->srv = srv;
		c->attempt_us = w->now_us;
		ret = link_acquire(c, srv, &l);
		if (ret == 0) {
			if (l->state == LINK_ST_BUSY)
				conn_backend_ready(c);
			return;
		}
		if (ret == -ENOMEM || ret == -EMFILE || ret == -ENFILE) {
			/* Short of memory or descriptors here: nothing to hold
			 * against the server (its health, circuit, ejection), and
			 * no other server would fare better. */
			if (ret != -ENOMEM)
				rf_log_limited(&w->rl_nofile, LOG_WARN,
					       "msg=\"out of descriptors for a backend connection\" error=%d",
					       -ret);
			conn_attempt_done(c, BAL_ABORT);
			conn_fail(c, 503);
			return;
		}
		conn_attempt_done(c, BAL_CONNECT_FAIL);
	}
}

int conn_retry_answer(struct conn *c, int status)
{
	static const struct { int status; uint32_t bit; } answers[] = {
		{ 0, RF_RETRY_TIMEOUT }, { 429, RF_RETRY_429 }, { 502, RF_RETRY_502 },
		{ 503, RF_RETRY_503 }, { 504, RF_RETRY_504 },
	};
	size_t i;

	if (!c->replayable || c->head_sent || c->attempts > c->up->conf->max_retries)
		return 0;
	for (i = 0; i < ARRAY_SIZE(answers); i++)
		if (answers[i].status == status)
			return !!(c->up->conf->retry_on & answers[i].bit);
	return 0;
}

/* The link failed before any response byte arrived. A connect failure
 * sent nothing, so any request may go to another server. A replayable
 * request (idempotent, no body) may be sent again: once more on a fresh
 * connection when a reused pooled link died under it (the keep-alive
 * race), and to another server when a fresh connection was closed or
 * reset before answering (HAProxy's retry-on empty-response); retries
 * to another server stay within max_retries and the retry budget.
 * Everything else gets an error. */
void conn_backend_failed(struct conn *c, int err, int reused)
{
	int nothing_sent = err == -ECONNREFUSED || err == -EHOSTUNREACH ||
			   err == -ENETUNREACH || err == -ETIMEDOUT;
	uint32_t on = c->up->conf->retry_on;

	if (c->state != CONN_ST_PROXY)
		return;
	c->link = NULL;
	if (reused && !c->fresh_retry && c->replayable) {
		c->fresh_retry = 1;
		c->attempts--;
		c->tried = 0;
		conn_connect_backend(c);
		return;
	}
	if (!reused && ((nothing_sent && (on & RF_RETRY_CONNECT)) ||
			(!nothing_sent && c->replayable && (on & RF_RETRY_EMPTY)))) {
		conn_connect_backend(c);
		return;
	}
	conn_fail(c, err == -ETIMEDOUT ? 504 : 502);
}

/* conn.c - the client side of the proxy: one state machine per accepted
 * connection. It reads request heads (several per connection with
 * keep-alive and pipelining), hands each request to a backend link, relays
 * the request body, answers errors itself, and closes cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "admin.h"
#include "http_rewrite.h"
#include "proxy_cache.h"
#include "cache.h"
#include "metrics.h"
#include "resp.h"
#include "worker.h"

#define LINGER_MS 2000
#define FILL_POLL_MS 8          /* a waiting request checks its fill this often */

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_on_timer(struct timer *t);
static int conn_forward(struct conn *c, const struct http_req *req, uint32_t head_len);

static void conn_set_state(struct conn *c, enum conn_state st)
{
	c->state = st;
}

static const struct rf_config *cfg_of(const struct conn *c)
{
	return c->s.w->cfg;
}

void conn_accept(struct worker *w, int fd, uint8_t kind)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint32_t total;
	struct conn *c;

	total = atomic_fetch_add(&rf_total_conns, 1) + 1;
	c = (total <= w->cfg->max_connections && !w->stopping) ?
		pool_get(&w->conn_pool) : NULL;
	if (!c) {
		atomic_fetch_sub(&rf_total_conns, 1);
		close(fd);
		STAT_ADD(w->stats.rejected_conns, 1);
		rf_log_limited(&w->rl_maxconn, LOG_WARN,
			       "msg=\"connection refused: max_connections reached\" max=%u",
			       w->cfg->max_connections);
		return;
	}
	STAT_ADD(w->stats.accepted, 1);
	STAT_ADD(w->stats.active, 1);
	sock_init(&c->s, w, fd, SOCK_CONN, conn_on_timer);
	c->kind = kind;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		const void *a = ss.ss_family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr :
			(const void *)&((struct sockaddr_in *)&ss)->sin_addr;

		if (inet_ntop(ss.ss_family, a, c->peer, sizeof(c->peer)))
			c->peer_len = (uint32_t)strlen(c->peer);
		c->client_hash = balance_hash_addr((const struct sockaddr *)&ss);
		memcpy(&c->peer_addr, &ss, RF_MIN(sizeof(c->peer_addr), (size_t)sl));
	}
	if (!c->peer_len) {
		memcpy(c->peer, "unknown", 7);
		c->peer_len = 7;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	c->keepalive = 1;
	if (kind == LISTEN_RL_LINE || kind == LISTEN_RESP) {
		/* no HTTP: an idle protocol client gets the keep-alive time */
		conn_set_state(c, CONN_ST_STREAM);
		timer_set(&w->wheel, &c->s.timer, w->cfg->keepalive_timeout_ms);
	} else {
		conn_set_state(c, CONN_ST_NEW);
		timer_set(&w->wheel, &c->s.timer, w->cfg->header_timeout_ms);
	}
	sock_arm_recv(&c->s);
}

static void conn_rt_release(struct conn *c)
{
	if (c->rt) {
		worker_rt_release(c->s.w, c->rt);
		c->rt = NULL;
	}
}

/* The attempt on c->srv ended with <outcome> (enum bal_outcome): feed the
 * balancer and the server's health exactly once. */
void conn_attempt_done(struct conn *c, int outcome)
{
	struct worker *w = c->s.w;
	uint32_t latency_us;

	if (!c->srv)
		return;
	latency_us = (uint32_t)RF_MIN(w->now_us - c->attempt_us, UINT32_MAX);
	balance_on_done(c->srv, latency_us, outcome, w->wheel.now);
	metrics_observe(c->srv, latency_us, outcome);
	c->srv = NULL;
}

/* Admin /events: the head is queued; an event follows every interval. */
void conn_start_events(struct conn *c)
{
	conn_set_state(c, CONN_ST_EVENTS);
	sock_flush(&c->s);
	timer_set(&c->s.w->wheel, &c->s.timer, ADMIN_SSE_INTERVAL_MS);
}

static void conn_close(struct conn *c)
{
	if (c->state == CONN_ST_CLOSED)
		return;
	conn_attempt_done(c, BAL_ABORT);
	if (c->link) {
		struct link *l = c->link;

		c->link = NULL;
		l->c = NULL;
		link_close(l);
	}
	conn_set_state(c, CONN_ST_CLOSED);
	sock_close(&c->s);
}

/* Every CQE has arrived: give the memory back. */
void conn_on_closed(struct conn *c)
{
	struct worker *w = c->s.w;

	segq_clear(w, &c->s.in);
	segq_clear(w, &c->s.out);
	headacc_reset(w, &c->acc);
	admin_release(c);
	pcache_release(c);
	conn_rt_release(c);
	if (c->blocked)
		w->nblocked--;
	if (c->kind == LISTEN_RESP && c->proto)
		resp_free(c->proto);
	rf_free(&c->proto);
	if (c->bhead)
		chunk_put(w, c->bhead);
	if (c->s.rd_starved) {
		struct sock **pp = &w->starved;

		while (*pp != &c->s)
			pp = &(*pp)->starved_next;
		*pp = c->s.starved_next;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	STAT_ADD(w->stats.active, -1);
	atomic_fetch_sub(&rf_total_conns, 1);
	pool_put(&w->conn_pool, c);
}

/* Close now, dropping whatever is queued: the peer is gone or the
 * response cannot be completed. */
void conn_abort(struct conn *c)
{
	if (c->state != CONN_ST_CLOSED && c->head_sent && !c->resp_done)
		STAT_ADD(c->s.w->stats.errors, 1);
	conn_close(c);
}

/* The final response is queued: send it, half-close, and drain what the
 * client still sends for a moment, so its unread data cannot turn our
 * close into a reset that destroys the response. */
static void conn_linger(struct conn *c)
{
	conn_set_state(c, CONN_ST_LINGER);
	timer_set(&c->s.w->wheel, &c->s.timer, LINGER_MS);
	segq_clear(c->s.w, &c->s.in);
	sock_flush(&c->s);
	if (!c->s.sending && !c->s.out.head)
		conn_on_sent(c, 0);
}

static int queue_static(struct conn *c, const char *p, uint32_t len)
{
	return segq_push(c->s.w, &c->s.out, p, len, -1, NULL);
}

static void conn_log_access(struct conn *c)
{
	struct worker *w = c->s.w;
	char line[512];
	int n;

	if (!w->alog)
		return;
	n = snprintf(line, sizeof(line),
		     "ts_ms=%llu client=%.*s target=\"%.*s\" status=%u bytes=%llu duration_ms=%llu request_id=%.*s\n",
		     (unsigned long long)w->wheel.now, (int)c->peer_len, c->peer,
		     (int)c->target_len, c->target, c->status,
		     (unsigned long long)c->resp_bytes,
		     (unsigned long long)(w->wheel.now - c->started_ms),
		     (int)c->reqid_len, c->reqid);
	if (n > 0)
		access_log_append(w->alog, line, RF_MIN((size_t)n, sizeof(line) - 1));
}

void conn_fail(struct conn *c, int status)
{
	struct worker *w = c->s.w;
	struct chunk *ck;
	int n, keep;

	if (c->state == CONN_ST_CLOSED || c->state == CONN_ST_LINGER)
		return;
	conn_attempt_done(c, BAL_ABORT);
	if (c->link) {
		struct link *l = c->link;

		c->link = NULL;
		l->c = NULL;
		link_close(l);
	}
	if (c->head_sent) {
		conn_abort(c);
		return;
	}
	/* stale-if-error: a stored copy beats an error page */
	if (c->pc && (status == 502 || status == 503 || status == 504) &&
	    pcache_serve_stale(c) == 0) {
		conn_response_done(c);
		return;
	}
	STAT_ADD(w->stats.errors, 1);
	c->status = (uint16_t)status;
	/* Only errors about a well-framed request whose body is fully read
	 * leave the connection usable. */
	keep = c->keepalive && c->req_body.kind == BODY_NONE && c->state == CONN_ST_PROXY &&
	       (status == 404 || status == 502 || status == 503 || status == 504);
	ck = chunk_get(w);
	if (!ck) {
		conn_close(c);
		return;
	}
	n = error_response(ck->data, ck->cap, status, keep, c->reqid, c->reqid_len);
	if (n < 0 || segq_push(w, &c->s.out, ck->data, (uint32_t)n, -1, ck) < 0) {
		if (n < 0)
			chunk_put(w, ck);
		conn_close(c);
		return;
	}
	c->head_sent = 1;
	c->resp_done = 1;
	if (keep) {
		c->keepalive = 1;
		sock_flush(&c->s);
		return;
	}
	c->keepalive = 0;
	conn_log_access(c);
	conn_linger(c);
}

static int parse_request_cb(const char *buf, size_t len, size_t last, void *arg)
{
	struct worker *w = arg;

	return http_parse_request(buf, len, last, &w->limits, w->req);
}

/* Pick a server and a link for the current request, trying further servers
 * while connecting fails at once, within max_retries and the upstream's
 * retry budget. */
static void conn_connect_backend(struct conn *c)
{
	struct worker *w = c->s.w;
	struct upstream *up = c->up;

	for (;;) {
		struct pick_ctx ctx = { w->wheel.now, c->tried, c->client_hash };
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
		if (!srv) {
			conn_fail(c, c->attempts ? 502 : 503);
			return;
		}
		c->tried |= 1ULL << (srv->index % 64);
		c->attempts++;
		balance_on_start(srv);
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

/* Rate limiting, block list and API keys: a rejected request is answered
 * from this worker with one prebuilt response and never reaches a backend.
 * Returns 1 when the request was answered, 0 to forward it. */
static int conn_admit(struct conn *c, const struct http_req *req, uint32_t head_len)
{
	struct worker *w = c->s.w;
	struct rl_request rq;
	struct rl_result res;
	char extra[96];
	struct chunk *ck;
	int n, keep;

	const struct rl_route *limit = route_limit(w->rt, c->route);

	rl_request_from_http(&rq, w->rt->rl, limit, req, &c->peer_addr.sa);
	rl_admit(w->rt->rl, (unsigned)w->id, limit, &rq, w->now_us, &res);
	c->rl_headers = res.headers;
	c->rlv = res.v;
	if (!res.status)
		return 0;
	headacc_finish(w, &c->acc, &c->s.in, head_len);
	/* The body of a rejected request is not read: keep-alive only
	 * without one. */
	keep = c->keepalive && c->req_body.kind == BODY_NONE;
	n = snprintf(extra, sizeof(extra), "X-Request-Id: %.*s\r\n",
		     (int)c->reqid_len, c->reqid);
	ck = chunk_get(w);
	if (ck)
		n = rl_format_response(res.status, &res.v, res.headers, keep, extra,
				       (size_t)n, ck->data, ck->cap);
	if (!ck || n < 0 || segq_push(w, &c->s.out, ck->data, (uint32_t)n, -1, ck) < 0) {
		if (ck && n < 0)
			chunk_put(w, ck);
		conn_close(c);
		return 1;
	}
	c->status = res.status;
	c->head_sent = 1;
	c->keepalive = (uint8_t)keep;
	if (!keep) {
		c->resp_done = 1;
		conn_log_access(c);
		conn_linger(c);
		return 1;
	}
	conn_response_done(c);
	return 1;
}

/* The response cache: a stored response answers the request here, with
 * one send and no backend. Returns 1 when answered, 0 to forward. */
static int conn_cache_lookup(struct conn *c, const struct http_req *req,
			     const char *head, uint32_t head_len)
{
	struct worker *w = c->s.w;
	const struct cache_entry *e = NULL;
	uint8_t outcome;
	int v = pcache_request(c, req, head, head_len, &e, &outcome);

	if (v == PCACHE_FORWARD)
		return 0;
	headacc_finish(w, &c->acc, &c->s.in, head_len);
	if (v == PCACHE_WAIT) {
		conn_set_state(c, CONN_ST_WAIT_FILL);
		c->blocked = 1;
		w->nblocked++;
		timer_set(&w->wheel, &c->s.timer, FILL_POLL_MS);
		return 1;
	}
	if (v == PCACHE_GATEWAY_TIMEOUT) {
		conn_fail(c, 504);
		return 1;
	}
	if (pcache_send_hit(c, e, outcome) < 0) {
		conn_close(c);
		return 1;
	}
	conn_response_done(c);
	return 1;
}

/* A request waiting for another request's fetch of the same key. */
static void conn_cache_resume(struct conn *c)
{
	struct worker *w = c->s.w;
	const struct cache_entry *e = NULL;
	const struct http_req *req;
	uint8_t outcome;
	int v = pcache_resume(c, &req, &e, &outcome);

	if (v == PCACHE_WAIT) {
		timer_set(&w->wheel, &c->s.timer, FILL_POLL_MS);
		return;
	}
	c->blocked = 0;
	w->nblocked--;
	conn_set_state(c, CONN_ST_PROXY);
	timer_cancel(&w->wheel, &c->s.timer);
	if (v == PCACHE_HIT) {
		if (pcache_send_hit(c, e, outcome) < 0)
			conn_close(c);
		else
			conn_response_done(c);
	} else if (v == PCACHE_FORWARD) {
		conn_forward(c, req, 0);
	} else {
		conn_fail(c, 503);
	}
}

/* A line-protocol connection: answer every complete line, in order, with
 * the replies of one feed going out in one send. */
static void conn_process_stream(struct conn *c)
{
	struct worker *w = c->s.w;
	struct rl_line_ctx ctx = { w->rt->rl, (unsigned)w->id, w->now_us };
	struct rl_line *ls = c->proto;

	if (!ls && c->s.in.head) {
		ls = c->proto = calloc(1, sizeof(*ls));
		if (!ls) {
			conn_close(c);
			return;
		}
	}
	timer_set(&w->wheel, &c->s.timer, cfg_of(c)->keepalive_timeout_ms);
	while (c->s.in.head && c->s.out.bytes < OUT_HIGH && !ls->closing) {
		struct seg *sg = c->s.in.head;
		struct chunk *ck = chunk_get(w);
		size_t olen = 0, used;

		if (!ck) {
			conn_close(c);
			return;
		}
		used = rl_line_feed(ls, sg->p, sg->len, ck->data, ck->cap, &olen,
				    rl_line_check, &ctx);
		segq_consume(w, &c->s.in, (uint32_t)used);
		if (!olen)
			chunk_put(w, ck);
		else if (segq_push(w, &c->s.out, ck->data, (uint32_t)olen, -1, ck) < 0)
			break;
		if (!used && !olen)
			break;
	}
	/* a stopping worker answers what has arrived, then closes */
	if ((ls && ls->closing) || c->s.eof || w->stopping) {
		c->keepalive = 0;
		conn_linger(c);
		return;
	}
	sock_flush(&c->s);
}

/* A Redis-protocol connection over the cache: feed what arrived, run the
 * buffered commands, and send their replies in one send. A write owned
 * by another worker's shard parks the session until it is applied. */
static void conn_process_resp(struct conn *c)
{
	struct worker *w = c->s.w;
	struct resp_sess *s = c->proto;
	int st = RESP_NEED_INPUT;

	if (!s) {
		struct resp_limits lim;

		s = c->proto = calloc(1, sizeof(*s));
		resp_limits_default(&lim, cfg_of(c)->cache.max_object_size);
		if (!s || resp_init(s, rf_cache, w->id, &lim) < 0) {
			rf_free(&c->proto);
			conn_close(c);
			return;
		}
	}
	if (c->blocked) {
		c->blocked = 0;
		w->nblocked--;
	}
	timer_set(&w->wheel, &c->s.timer, cfg_of(c)->keepalive_timeout_ms);
	while (c->s.out.bytes < OUT_HIGH) {
		const char *out;
		size_t len;

		while (c->s.in.head) {
			struct seg *sg = c->s.in.head;
			size_t used = resp_feed(s, sg->p, sg->len);

			segq_consume(w, &c->s.in, (uint32_t)used);
			if (used < sg->len)
				break;
		}
		st = resp_process(s, cache_now_ms());
		/* the session's buffer may move on the next call: send a copy */
		out = resp_out(s, &len);
		if (len) {
			struct chunk *ck = chunk_from_bytes(out, len);

			if (!ck || segq_push(w, &c->s.out, ck->data, ck->cap, -1, ck) < 0) {
				conn_close(c);
				return;
			}
			resp_out_consumed(s, len);
		}
		if (st == RESP_OUT_FULL)
			continue;
		if (st != RESP_NEED_INPUT || !c->s.in.head)
			break;
	}
	if (st == RESP_BLOCKED) {
		c->blocked = 1;
		w->nblocked++;
	}
	if (st == RESP_CLOSE || ((c->s.eof || w->stopping) && st != RESP_BLOCKED)) {
		c->keepalive = 0;
		conn_linger(c);
		return;
	}
	sock_flush(&c->s);
}

void conn_resume_blocked(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c && w->nblocked; c = next) {
		next = c->next;
		if (c->blocked)
			conn_process(c);
	}
}

static void conn_request_id(struct conn *c, const struct http_req *req)
{
	struct worker *w = c->s.w;
	uint32_t len = 0;
	const char *id = request_id_from(req, sizeof(c->reqid), &len);

	if (id) {
		memcpy(c->reqid, id, len);
		c->reqid_len = (uint8_t)len;
	} else {
		request_id_generate(c->reqid, w->reqid_seed, ++w->reqid_seq);
		c->reqid_len = 32;
	}
}

/* Write the backend request head and start the backend exchange. The
 * head (<head_len> bytes, 0 when already consumed) leaves the input queue
 * here. Returns 0 to keep processing, 1 when nothing more is to be done. */
static int conn_forward(struct conn *c, const struct http_req *req, uint32_t head_len)
{
	struct worker *w = c->s.w;
	struct fwd_info fi;
	char validators[512];
	struct chunk *ck;
	int n;

	ck = chunk_get(w);
	if (!ck) {
		headacc_finish(w, &c->acc, &c->s.in, head_len);
		conn_fail(c, 503);
		return 1;
	}
	fi.peer = c->peer;
	fi.peer_len = c->peer_len;
	fi.reqid = c->reqid;
	fi.reqid_len = c->reqid_len;
	fi.tunnel = c->upgrade;
	fi.extra = validators;
	fi.extra_len = c->pc ? (uint32_t)pcache_forward_fields(c, validators, sizeof(validators)) : 0;
	fi.own_validators = fi.extra_len > 0;
	n = rewrite_request(ck->data, ck->cap, req, &fi);
	headacc_finish(w, &c->acc, &c->s.in, head_len);
	if (n < 0) {
		chunk_put(w, ck);
		conn_fail(c, 431);
		return 1;
	}
	c->bhead = ck;
	c->bhead_len = (uint32_t)n;
	if ((req->flags & HTTP_FL_EXPECT_100) && req->minor &&
	    c->req_body.kind != BODY_NONE) {
		queue_static(c, continue_100, sizeof(continue_100) - 1);
		sock_flush(&c->s);
	}
	conn_connect_backend(c);
	return c->state == CONN_ST_PROXY ? 0 : 1;
}

/* A request head was parsed: decide its framing and route, write the
 * backend head, and start the backend exchange. Returns 0 to keep
 * processing, 1 when the connection needs no more input handling now. */
static int conn_start_request(struct conn *c, const struct http_req *req,
			      const char *head, uint32_t head_len)
{
	struct worker *w = c->s.w;
	const struct rf_config *cfg = cfg_of(c);
	int n;

	STAT_ADD(w->stats.requests, 1);
	c->started_ms = w->wheel.now;
	c->client_minor = req->minor;
	c->meth = req->meth;
	c->keepalive = (req->minor ? !(req->flags & HTTP_FL_CONN_CLOSE) :
			!!(req->flags & HTTP_FL_CONN_KEEP)) && !w->stopping;
	c->upgrade = !!(req->flags & HTTP_FL_CONN_UPGRADE);
	conn_request_id(c, req);
	if (w->alog) {
		c->target_len = (uint16_t)RF_MIN(req->target_len, sizeof(c->target));
		memcpy(c->target, req->target, c->target_len);
	}
	memset(&c->req_body, 0, sizeof(c->req_body));
	if (req->flags & HTTP_FL_CHUNKED) {
		c->req_body.kind = BODY_CHUNKED;
		c->req_body.limit = cfg->max_body_size;
		http_chunked_init(&c->req_body.ck);
	} else if (req->content_length > 0) {
		c->req_body.kind = BODY_LENGTH;
		c->req_body.left = (uint64_t)req->content_length;
	}
	conn_set_state(c, CONN_ST_PROXY);
	timer_cancel(&w->wheel, &c->s.timer);
	if (cfg->max_body_size && req->content_length > 0 &&
	    (uint64_t)req->content_length > cfg->max_body_size) {
		headacc_finish(w, &c->acc, &c->s.in, head_len);
		conn_fail(c, 413);
		return 1;
	}
	if (c->kind == LISTEN_ADMIN) {
		n = admin_start(c, req);
		headacc_finish(w, &c->acc, &c->s.in, head_len);
		if (n < 0) {
			c->keepalive = 0;
			conn_fail(c, n == -EMSGSIZE ? 413 : 503);
			return 1;
		}
		admin_feed(c);
		return 1;
	}
	/* the request keeps the runtime it was routed on until it ends */
	c->rt = w->rt;
	w->rt_inflight++;
	c->route = route_find(w->rt, req->target, req->target_len);
	c->up = c->route ? &w->rt->ups[c->route->upstream] : NULL;
	if (!c->up) {
		headacc_finish(w, &c->acc, &c->s.in, head_len);
		conn_fail(c, 404);
		return 1;
	}
	if (w->rt->rl->enabled && conn_admit(c, req, head_len))
		return 1;
	if (rf_cache && conn_cache_lookup(c, req, head, head_len))
		return 1;
	return conn_forward(c, req, head_len);
}

/* Try to parse the next request head from the input queue.
 * Returns 0 when a request started, 1 when waiting or finished. */
static int conn_read_head(struct conn *c)
{
	struct worker *w = c->s.w;
	const char *head;
	int ret;

	ret = headacc_parse_input(w, &c->acc, &c->s.in, parse_request_cb, w,
				  cfg_of(c)->max_header_size, &head);
	if (ret == -EAGAIN) {
		if (c->s.eof) {
			conn_close(c);
			return 1;
		}
		if (c->state != CONN_ST_READ_HEAD) {
			if (c->state == CONN_ST_IDLE)
				timer_set(&w->wheel, &c->s.timer,
					  cfg_of(c)->header_timeout_ms);
			conn_set_state(c, CONN_ST_READ_HEAD);
		}
		return 1;
	}
	if (ret < 0) {
		c->keepalive = 0;
		c->started_ms = w->wheel.now;
		conn_fail(c, ret == -ENOMEM ? 503 : http_parse_error_status(ret));
		return 1;
	}
	return conn_start_request(c, w->req, head, (uint32_t)ret);
}

/* The client closed its sending side during a request. A body that can
 * no longer complete ends the exchange; in a tunnel the close is passed on
 * to the backend once every byte before it was relayed; otherwise the
 * client still gets its response, then the connection closes. */
static void conn_client_eof(struct conn *c)
{
	struct link *l = c->link;
	int truncated;

	if (c->state == CONN_ST_TUNNEL) {
		if (l && !l->wr_shut && !c->s.in.head && !l->s.out.head && !l->s.sending) {
			shutdown(l->s.fd, SHUT_WR);     /* direct: see conn_on_sent() */
			l->wr_shut = 1;
		}
		return;
	}
	c->keepalive = 0;
	if (c->req_body.kind == BODY_NONE)
		return;
	/* Bytes still queued may hold the rest of the body. */
	truncated = !c->s.in.head ||
		    (c->req_body.kind == BODY_LENGTH && c->s.in.bytes < c->req_body.left);
	if (truncated)
		conn_abort(c);
}

/* Drive the connection from its input queue as far as it can go now. */
void conn_process(struct conn *c)
{
	struct worker *w = c->s.w;
	int done, ret;

	switch (c->state) {
	case CONN_ST_NEW:
	case CONN_ST_IDLE:
	case CONN_ST_READ_HEAD:
		if (!c->s.in.head) {
			if (c->s.eof)
				conn_close(c);
			break;
		}
		if (conn_read_head(c))
			break;
		/* the request started: relay the body that came with the head */
		__attribute__((fallthrough));
	case CONN_ST_PROXY:
	case CONN_ST_TUNNEL:
		if (c->admin)
			admin_feed(c);
		if (c->req_body.kind != BODY_NONE && c->link &&
		    c->link->state == LINK_ST_BUSY) {
			struct link *l = c->link;

			ret = body_relay(w, &c->req_body, &c->s.in, &l->s.out, &done);
			if (ret < 0) {
				c->keepalive = 0;
				conn_fail(c, ret == -ENOMEM ? 503 : ret == -EFBIG ? 413 : 400);
				break;
			}
			if (done)
				c->req_body.kind = BODY_NONE;
			sock_flush(&l->s);
		}
		if (c->s.eof && c->state != CONN_ST_CLOSED)
			conn_client_eof(c);
		break;
	case CONN_ST_WAIT_FILL:
		conn_cache_resume(c);
		break;
	case CONN_ST_EVENTS:
		segq_clear(w, &c->s.in);
		if (c->s.eof)
			conn_close(c);
		break;
	case CONN_ST_STREAM:
		if (c->kind == LISTEN_RESP)
			conn_process_resp(c);
		else
			conn_process_stream(c);
		break;
	case CONN_ST_LINGER:
		segq_clear(w, &c->s.in);
		if (c->s.eof && !c->s.sending)
			conn_close(c);
		break;
	default:
		break;
	}
	if (c->state != CONN_ST_CLOSED)
		sock_update_reading(&c->s);
}

void conn_on_input(struct conn *c, int err)
{
	if (c->state == CONN_ST_CLOSED)
		return;
	if (err) {
		conn_abort(c);
		return;
	}
	conn_process(c);
}

/* The response of the current request is complete and queued. */
void conn_response_done(struct conn *c)
{
	c->resp_done = 1;
	c->link = NULL;
	if (c->req_body.kind != BODY_NONE)
		c->keepalive = 0;
	sock_flush(&c->s);
	if (!c->s.sending && !c->s.out.head)
		conn_on_sent(c, 0);
}

static void conn_request_finished(struct conn *c)
{
	struct worker *w = c->s.w;

	conn_log_access(c);
	admin_release(c);
	pcache_release(c);
	conn_rt_release(c);
	if (c->bhead) {
		chunk_put(w, c->bhead);
		c->bhead = NULL;
	}
	if (!c->keepalive || w->stopping) {
		if (c->s.in.head || c->s.eof)
			conn_linger(c);
		else
			conn_close(c);
		return;
	}
	c->head_sent = 0;
	c->resp_done = 0;
	c->attempts = 0;
	c->fresh_retry = 0;
	c->interim = 0;
	c->rl_headers = 0;
	c->tried = 0;
	c->status = 0;
	c->resp_bytes = 0;
	c->up = NULL;
	conn_set_state(c, CONN_ST_IDLE);
	timer_set(&w->wheel, &c->s.timer, cfg_of(c)->keepalive_timeout_ms);
	conn_process(c);
}

void conn_on_sent(struct conn *c, int err)
{
	if (c->state == CONN_ST_CLOSED)
		return;
	if (err) {
		conn_abort(c);
		return;
	}
	sock_flush(&c->s);
	if (c->s.sending || c->s.out.head) {
		/* Room freed: the backend side may relay more. */
		if (c->link && c->link->state == LINK_ST_BUSY)
			link_process(c->link);
		return;
	}
	if (c->state == CONN_ST_LINGER) {
		if (c->s.eof) {
			conn_close(c);
			return;
		}
		/* Direct, not through the ring: an uncounted shutdown SQE runs
		 * later in io-wq and could hit a reused descriptor number. */
		shutdown(c->s.fd, SHUT_WR);
		return;
	}
	if (c->link && c->link->state == LINK_ST_BUSY) {
		link_process(c->link);
		return;
	}
	if (c->state == CONN_ST_STREAM) {
		conn_process(c);
		return;
	}
	if (c->resp_done)
		conn_request_finished(c);
}

/* The link for the current request is connected (or came from the pool):
 * send the request head, then whatever body has arrived. */
void conn_backend_ready(struct conn *c)
{
	struct worker *w = c->s.w;
	struct link *l = c->link;

	c->bhead->refs++;
	if (segq_push(w, &l->s.out, c->bhead->data, c->bhead_len, -1, c->bhead) < 0) {
		conn_fail(c, 503);
		return;
	}
	l->resp_state = RESP_HEAD;
	l->got_bytes = 0;
	timer_set(&w->wheel, &l->s.timer, c->up->conf->response_timeout_ms);
	sock_flush(&l->s);
	conn_process(c);
}

static int method_idempotent(uint8_t meth)
{
	return meth == HTTP_M_GET || meth == HTTP_M_HEAD || meth == HTTP_M_PUT ||
	       meth == HTTP_M_DELETE || meth == HTTP_M_OPTIONS || meth == HTTP_M_TRACE;
}

/* The link failed before any response byte arrived. A connect failure
 * sent nothing, so any request may go to another server; a reused pooled
 * link may have died under us, so an idempotent request without a body is
 * sent once more on a fresh connection. Everything else gets an error. */
void conn_backend_failed(struct conn *c, int err, int reused)
{
	int nothing_sent = err == -ECONNREFUSED || err == -EHOSTUNREACH ||
			   err == -ENETUNREACH || err == -ETIMEDOUT;

	if (c->state != CONN_ST_PROXY)
		return;
	c->link = NULL;
	if (reused && !c->fresh_retry && method_idempotent(c->meth) &&
	    c->req_body.kind == BODY_NONE) {
		c->fresh_retry = 1;
		c->attempts--;
		c->tried = 0;
		conn_connect_backend(c);
		return;
	}
	if (nothing_sent && !reused) {
		conn_connect_backend(c);
		return;
	}
	conn_fail(c, err == -ETIMEDOUT ? 504 : 502);
}

static void conn_on_timer(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, s.timer);

	switch (c->state) {
	case CONN_ST_READ_HEAD:
		c->keepalive = 0;
		conn_fail(c, 408);
		break;
	case CONN_ST_WAIT_FILL:
		conn_process(c);
		break;
	case CONN_ST_EVENTS:
		if (c->s.w->stopping || admin_sse_push(c) == -ENOMEM)
			conn_close(c);
		else
			timer_set(&c->s.w->wheel, &c->s.timer, ADMIN_SSE_INTERVAL_MS);
		break;
	case CONN_ST_NEW:
	case CONN_ST_IDLE:
	case CONN_ST_STREAM:
	case CONN_ST_LINGER:
		conn_close(c);
		break;
	default:
		break;
	}
}

/* Graceful stop: idle connections close now, busy ones after their
 * current response (keepalive is refused from here on). */
void conn_shutdown_idle(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_ST_NEW || c->state == CONN_ST_IDLE ||
		    c->state == CONN_ST_EVENTS)
			conn_close(c);
		else if (c->state == CONN_ST_STREAM && !c->s.in.head && !c->blocked &&
			 !c->s.out.head)
			conn_close(c);  /* an idle protocol client */
		else
			c->keepalive = 0;
	}
}

void conn_close_all(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
}

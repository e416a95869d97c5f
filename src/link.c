/* link.c - the backend side of the proxy: connections to backend servers,
 * kept in per-worker, per-server keep-alive pools, and the relay of each
 * response head and body to the client that asked for it. */
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "http_rewrite.h"
#include "io.h"
#include "proxy_cache.h"
#include "worker.h"

/* Bodies up to this size that arrived with the head are copied behind the
 * response head, so the client gets one send and the buffer returns now. */
#define INLINE_BODY_MAX 2048

/* 1xx responses relayed for one request before the backend is cut off. */
#define INTERIM_MAX 16

static void link_on_timer(struct timer *t);

static void link_set_state(struct link *l, enum link_state st)
{
	l->state = st;
}

static void pool_remove(struct worker *w, struct link *l)
{
	struct link_pool *p = &w->pools[l->srv->id];

	if (l->pool_prev)
		l->pool_prev->pool_next = l->pool_next;
	else
		p->head = l->pool_next;
	if (l->pool_next)
		l->pool_next->pool_prev = l->pool_prev;
	l->pool_next = l->pool_prev = NULL;
	p->count--;
}

static void pool_add(struct worker *w, struct link *l)
{
	struct link_pool *p = &w->pools[l->srv->id];

	l->pool_prev = NULL;
	l->pool_next = p->head;
	if (p->head)
		p->head->pool_prev = l;
	p->head = l;
	p->count++;
}

void link_close(struct link *l)
{
	if (l->state == LINK_ST_CLOSED)
		return;
	if (l->state == LINK_ST_IDLE)
		pool_remove(l->s.w, l);
	link_set_state(l, LINK_ST_CLOSED);
	l->c = NULL;
	sock_close(&l->s);
}

void link_on_closed(struct link *l)
{
	struct worker *w = l->s.w;

	segq_clear(w, &l->s.in);
	segq_clear(w, &l->s.out);
	headacc_reset(w, &l->acc);
	if (l->s.rd_starved) {
		struct sock **pp = &w->starved;

		while (*pp != &l->s)
			pp = &(*pp)->starved_next;
		*pp = l->s.starved_next;
	}
	w->nlinks--;
	pool_put(&w->link_pool_mem, l);
}

/* Take an idle pooled link to <srv>, or start connecting a new one, and
 * attach it to <c>. Returns 0, -ENOMEM, or the socket() error (-EMFILE,
 * -ENFILE: this process or system is out of descriptors). */
int link_acquire(struct conn *c, struct server *srv, struct link **out)
{
	struct worker *w = c->s.w;
	struct link_pool *p = &w->pools[srv->id];
	const struct rf_addr *addr = &srv->conf->addr;
	struct link *l = p->head;
	int fd, one = 1;

	if (l) {
		pool_remove(w, l);
		link_set_state(l, LINK_ST_BUSY);
		l->reused = 1;
		goto attach;
	}
	fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | io_sock_flags(w), 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? -ENOMEM : -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	l = pool_get(&w->link_pool_mem);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	w->nlinks++;
	sock_init(&l->s, w, fd, SOCK_LINK, link_on_timer);
	l->srv = srv;
	link_set_state(l, LINK_ST_CONNECTING);
	io_connect(w, fd, (const struct sockaddr *)&addr->ss, addr->len,
		   op_data(&l->s, OP_CONNECT));
	l->s.inflight++;
	timer_set(&w->wheel, &l->s.timer, c->up->conf->connect_timeout_ms);
attach:
	l->c = c;
	c->link = l;
	*out = l;
	return 0;
}

/* Detach from the client after a failure before any response byte. A
 * pooled link dying under a request is the usual keep-alive race and says
 * nothing about the server's health. */
static void link_fail_early(struct link *l, int err)
{
	struct conn *c = l->c;
	int reused = l->reused;

	if (c)
		conn_attempt_done(c, reused ? BAL_ABORT : BAL_RESET);
	link_close(l);
	if (c)
		conn_backend_failed(c, err, reused);
}

void link_on_connect(struct link *l, int res)
{
	struct worker *w = l->s.w;

	if (l->state != LINK_ST_CONNECTING)
		return;
	if (res < 0) {
		rf_log_limited(&w->rl_accept, LOG_WARN,
			       "msg=\"backend connect failed\" server=%s error=%d",
			       l->srv->conf->addr.text, -res);
		if (l->c)
			conn_attempt_done(l->c, BAL_CONNECT_FAIL);
		link_fail_early(l, res);
		return;
	}
	link_set_state(l, LINK_ST_BUSY);
	l->reused = 0;
	timer_cancel(&w->wheel, &l->s.timer);
	sock_arm_recv(&l->s);
	if (l->c)
		conn_backend_ready(l->c);
	else
		link_close(l);
}

/* The response is complete: hand the client its end, and pool or close. */
static void link_finish(struct link *l)
{
	struct worker *w = l->s.w;
	struct conn *c = l->c;
	const struct rf_upstream_conf *uc = c->up->conf;

	conn_attempt_done(c, c->status >= 500 ? BAL_5XX : BAL_OK);
	if (c->pc)
		pcache_response_done(c);
	l->c = NULL;
	timer_cancel(&w->wheel, &l->s.timer);
	if (l->s.in.head || l->s.out.head || l->s.eof || c->req_body.kind != BODY_NONE)
		l->reusable = 0;
	if (l->reusable && !w->stopping && c->rt == w->rt &&
	    w->pools[l->srv->id].count < uc->keepalive) {
		link_set_state(l, LINK_ST_IDLE);
		l->reused = 0;
		pool_add(w, l);
		/* Flow control may have paused it: idle links listen for a close. */
		sock_update_reading(&l->s);
	} else {
		link_close(l);
	}
	conn_response_done(c);
}

static int parse_response_cb(const char *buf, size_t len, size_t last, void *arg)
{
	struct worker *w = arg;

	return http_parse_response(buf, len, last, &w->resp_limits, w->resp);
}

/* Decide how the response body is framed (RFC 9112 section 6.3). */
static void link_frame_response(struct link *l, const struct http_resp *resp)
{
	struct conn *c = l->c;
	struct body *b = &l->body;

	memset(b, 0, sizeof(*b));
	l->reusable = resp->minor ? !(resp->flags & HTTP_FL_CONN_CLOSE) :
		      !!(resp->flags & HTTP_FL_CONN_KEEP);
	if (c->meth == HTTP_M_HEAD || resp->status == 204 || resp->status == 304) {
		b->kind = BODY_NONE;
	} else if (resp->status == 101) {
		b->kind = BODY_TUNNEL;
		l->reusable = 0;
	} else if (resp->flags & HTTP_FL_CHUNKED) {
		b->kind = c->client_minor ? BODY_CHUNKED : BODY_DECHUNK;
		http_chunked_init(&b->ck);
	} else if (resp->flags & HTTP_FL_TE_OTHER || resp->content_length < 0) {
		b->kind = BODY_EOF;
		l->reusable = 0;
	} else if (resp->content_length > 0) {
		b->kind = BODY_LENGTH;
		b->left = (uint64_t)resp->content_length;
	}
	if (b->kind == BODY_EOF || b->kind == BODY_DECHUNK || c->req_body.kind != BODY_NONE)
		c->keepalive = 0;
}

/* A backend that answers 429 or 503 with Retry-After (delay-seconds) gets
 * no new traffic before then. */
static void link_honour_retry_after(struct link *l, const struct http_resp *resp)
{
	uint64_t now = l->s.w->wheel.now, secs = 0;
	uint32_t i, j;

	for (i = 0; i < resp->nhdrs; i++) {
		const struct http_hdr *h = &resp->hdrs[i];

		if (!rf_ieq(h->name, h->name_len, "retry-after"))
			continue;
		for (j = 0; j < h->value_len && j < 10; j++) {
			if (h->value[j] < '0' || h->value[j] > '9')
				return;
			secs = secs * 10 + (uint64_t)(h->value[j] - '0');
		}
		if (j && secs)
			health_hold(l->srv, now + secs * 1000, now);
		return;
	}
}

/* Parse the response head and queue the rewritten head to the client.
 * Returns 0 to go on, 1 to wait for more bytes, -1 when the link failed. */
static int link_read_head(struct link *l)
{
	struct worker *w = l->s.w;
	struct conn *c = l->c;
	const struct http_resp *resp = w->resp;
	struct resp_info ri;
	struct chunk *ck;
	char rlh[256];
	const char *head;
	uint32_t len, extra = 0;
	int ret;

	ret = headacc_parse_input(w, &l->acc, &l->s.in, parse_response_cb, w,
				  w->resp_limits.max_head, &head);
	if (ret == -EAGAIN && !l->s.eof)
		return 1;
	if (ret < 0) {
		log_warn("msg=\"invalid backend response\" server=%s error=%d",
			 l->srv->conf->addr.text, -ret);
		conn_attempt_done(c, BAL_RESET);
		link_close(l);
		conn_fail(c, ret == -ENOMEM ? 503 : 502);
		return -1;
	}
	if (resp->status == 101 && !c->upgrade) {
		link_close(l);
		conn_fail(c, 502);
		return -1;
	}
	if (resp->status < 200 && resp->status != 101) {
		/* Interim response: relay it to HTTP/1.1 clients, keep waiting.
		 * A backend that sends them without end gets a 502. */
		if (++c->interim > INTERIM_MAX) {
			link_close(l);
			conn_fail(c, 502);
			return -1;
		}
		ri = (struct resp_info){ .client_minor = 1, .keepalive = 1, .extra = NULL };
		ck = chunk_get(w);
		if (ck && c->client_minor &&
		    (ret = rewrite_response(ck->data, ck->cap, resp, &ri)) > 0) {
			segq_push(w, &c->s.out, ck->data, (uint32_t)ret, -1, ck);
			ck = NULL;
		}
		if (ck)
			chunk_put(w, ck);
		headacc_finish(w, &l->acc, &l->s.in, resp->head_len);
		sock_flush(&c->s);
		return 0;
	}
	if (resp->status == 429 || resp->status == 503)
		link_honour_retry_after(l, resp);
	/* retry_on 429/5xx: the answer goes with its link, unseen by the
	 * client, and another server gets the request */
	if (conn_retry_answer(c, resp->status)) {
		conn_attempt_done(c, resp->status >= 500 ? BAL_5XX : BAL_OK);
		link_close(l);
		c->link = NULL;
		conn_connect_backend(c);
		return -1;
	}
	/* a 304 to the cache's validators: the stored copy answers, refreshed */
	if (resp->status == 304 && c->pc && !c->head_sent) {
		ret = pcache_revalidated(c, resp);
		if (ret != -ENOENT) {
			headacc_finish(w, &l->acc, &l->s.in, resp->head_len);
			if (ret < 0) {
				link_close(l);
				conn_abort(c);
			} else {
				link_finish(l);
			}
			return -1;
		}
	}
	/* stale-if-error covers a 5xx answer too: the stale copy goes out and
	 * the unread error body goes with the link */
	if (resp->status >= 500 && c->pc && !c->head_sent) {
		conn_attempt_done(c, BAL_5XX);
		if (pcache_serve_stale(c) == 0) {
			link_close(l);
			conn_response_done(c);
			return -1;
		}
	}
	link_frame_response(l, resp);
	ck = chunk_get(w);
	if (!ck) {
		link_close(l);
		conn_fail(c, 503);
		return -1;
	}
	ri.reqid = c->reqid;
	ri.reqid_len = c->reqid_len;
	ri.client_minor = c->client_minor;
	ri.keepalive = c->keepalive;
	ri.dechunk = l->body.kind == BODY_DECHUNK;
	ri.tunnel = l->body.kind == BODY_TUNNEL;
	ri.extra = rlh;
	ri.cache_status = 0;
	ri.extra_len = 0;
	if (c->rl_headers) {
		int n = rl_format_headers(&c->rlv, rlh, sizeof(rlh));

		ri.extra_len = n > 0 ? (uint32_t)n : 0;
	}
	if (rf_cache) {
		int n = pcache_response_head(c, resp, head, resp->head_len,
					     rlh + ri.extra_len, sizeof(rlh) - ri.extra_len);

		ri.extra_len += n > 0 ? (uint32_t)n : 0;
		ri.cache_status = n > 0;
		l->body.tap = pcache_collector(c) ? pcache_body : NULL;
		l->body.tap_arg = pcache_collector(c);
	}
	ret = rewrite_response(ck->data, ck->cap, resp, &ri);
	if (ret < 0) {
		chunk_put(w, ck);
		link_close(l);
		conn_fail(c, 502);
		return -1;
	}
	len = (uint32_t)ret;
	/* A small body that arrived with the head rides in the same chunk. */
	if (l->body.kind == BODY_LENGTH && l->body.left <= INLINE_BODY_MAX &&
	    len + l->body.left <= ck->cap) {
		uint32_t avail = (l->acc.ck ? l->acc.len : l->s.in.head->len) -
				 resp->head_len;

		if (avail >= l->body.left) {
			extra = (uint32_t)l->body.left;
			memcpy(ck->data + len, head + resp->head_len, extra);
			if (l->body.tap)
				l->body.tap(l->body.tap_arg, head + resp->head_len, extra);
			len += extra;
			l->body.left = 0;
		}
	}
	c->status = resp->status;
	c->head_sent = 1;
	headacc_finish(w, &l->acc, &l->s.in, resp->head_len + extra);
	if (segq_push(w, &c->s.out, ck->data, len, -1, ck) < 0) {
		link_close(l);
		conn_abort(c);
		return -1;
	}
	l->resp_state = RESP_BODY;
	if (l->body.kind == BODY_TUNNEL) {
		c->state = CONN_ST_TUNNEL;
		c->req_body.kind = BODY_TUNNEL;
		c->keepalive = 0;
		/* Bytes the client sent behind the upgrade request go now. */
		conn_process(c);
	}
	return 0;
}

/* Relay as much of the response as the client's queue takes now. */
void link_process(struct link *l)
{
	struct worker *w = l->s.w;
	struct conn *c = l->c;
	int done, ret;

	while (l->state == LINK_ST_BUSY && c) {
		if (l->resp_state == RESP_HEAD) {
			if (!l->s.in.head && !l->s.eof)
				break;
			if (c->s.out.bytes >= OUT_HIGH)
				break;          /* interim responses wait for a slow client */
			if (link_read_head(l))
				return;
			continue;
		}
		if (l->body.kind == BODY_NONE ||
		    (l->body.kind == BODY_LENGTH && !l->body.left)) {
			link_finish(l);
			return;
		}
		ret = body_relay(w, &l->body, &l->s.in, &c->s.out, &done);
		if (ret < 0) {
			link_close(l);
			conn_abort(c);
			return;
		}
		sock_flush(&c->s);
		if (done) {
			link_finish(l);
			return;
		}
		if (l->s.eof && !l->s.in.head) {
			if (l->body.kind == BODY_EOF || l->body.kind == BODY_TUNNEL) {
				link_finish(l);
			} else {
				/* Truncated: the client cannot be told but by a close. */
				log_warn("msg=\"backend closed mid-response\" server=%s",
					 l->srv->conf->addr.text);
				conn_attempt_done(c, BAL_RESET);
				link_close(l);
				conn_abort(c);
			}
			return;
		}
		break;
	}
	if (l->state != LINK_ST_CLOSED)
		sock_update_reading(&l->s);
}

void link_on_input(struct link *l, int err)
{
	struct worker *w = l->s.w;

	if (l->state == LINK_ST_IDLE) {
		/* A pooled link spoke or closed: it cannot be reused. */
		link_close(l);
		return;
	}
	if (l->state != LINK_ST_BUSY || !l->c)
		return;
	if (err || (l->s.eof && !l->got_bytes && !l->s.in.head)) {
		if (!l->got_bytes && l->resp_state == RESP_HEAD) {
			link_fail_early(l, err ? err : -ECONNRESET);
			return;
		}
		if (err) {
			struct conn *c = l->c;

			link_close(l);
			conn_abort(c);
			return;
		}
	}
	if (l->s.in.head) {
		l->got_bytes = 1;
		timer_set(&w->wheel, &l->s.timer, l->c->up->conf->response_timeout_ms);
	}
	link_process(l);
}

void link_on_sent(struct link *l, int err)
{
	if (l->state != LINK_ST_BUSY || !l->c)
		return;
	if (err) {
		if (!l->got_bytes)
			link_fail_early(l, err);
		return;
	}
	sock_flush(&l->s);
	timer_set(&l->s.w->wheel, &l->s.timer, l->c->up->conf->response_timeout_ms);
	/* Room freed: relay more of the request body. */
	conn_process(l->c);
}

static void link_on_timer(struct timer *t)
{
	struct link *l = container_of(t, struct link, s.timer);
	struct conn *c = l->c;

	if (l->state == LINK_ST_CONNECTING) {
		if (c)
			conn_attempt_done(c, BAL_CONNECT_FAIL);
		link_fail_early(l, -ETIMEDOUT);
		return;
	}
	if (l->state != LINK_ST_BUSY || !c)
		return;
	log_warn("msg=\"backend response timeout\" server=%s", l->srv->conf->addr.text);
	conn_attempt_done(c, BAL_TIMEOUT);
	link_close(l);
	if (conn_retry_answer(c, 0)) {
		c->link = NULL;
		conn_connect_backend(c);
	} else if (c->head_sent)
		conn_abort(c);
	else
		conn_fail(c, 504);
}

void link_close_idle(struct worker *w)
{
	uint32_t i;

	for (i = 0; i < w->rt->nservers; i++)
		while (w->pools[i].head)
			link_close(w->pools[i].head);
}

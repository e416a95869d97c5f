/* redis_conn.c - a Redis connection as I/O on a worker's ring: connect,
 * AUTH, ROLE, pipelined commands with in-order callbacks, timeouts, and
 * failover with back-off. See redis_conn.h. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "io.h"
#include "redis_conn.h"
#include "worker.h"

enum { K_CONNECT, K_SEND, K_RECV, K_CLOSE };

#define BACKOFF_MIN_MS  100
#define BACKOFF_MAX_MS  5000
#define NEXT_ADDR_MS    10      /* the next address of the list is tried at once */
#define RECV_ROOM       16384

static void fail(struct rconn *c, const char *why);

const char *rconn_state_str(uint8_t state)
{
	switch (state) {
	case RCONN_ST_IDLE: return "disconnected";
	case RCONN_ST_CONNECTING: return "connecting";
	case RCONN_ST_HANDSHAKE: return "handshake";
	case RCONN_ST_READY: return "connected";
	case RCONN_ST_CLOSING: return "closing";
	case RCONN_ST_STOPPED: return "stopped";
	}
	return "unknown";
}

/* The user_data of an operation of <kind>, counted in flight. */
static uint64_t op_ud(struct rconn *c, int kind)
{
	c->inflight++;
	return op_data(&c->ops[kind], OP_REDIS);
}

static uint64_t now_ms(const struct rconn *c)
{
	return c->w->wheel.now;
}

static void start_connect(struct rconn *c)
{
	const struct rf_addr *a = &c->addrs[c->cur];
	int one = 1;

	c->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | io_sock_flags(c->w), 0);
	c->state = RCONN_ST_CONNECTING;
	if (c->fd < 0) {
		fail(c, "socket() failed");
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	io_connect(c->w, c->fd, (const struct sockaddr *)&a->ss, a->len, op_ud(c, K_CONNECT));
	timer_set(&c->w->wheel, &c->timer, c->timeout_ms);
}

/* Submit a send of what is queued, unless one is in flight. */
static void flush(struct rconn *c)
{
	struct rr_buf t;

	if (c->sending || c->fd < 0)
		return;
	if (c->out_off >= c->out.len) {
		if (!c->next.len)
			return;
		t = c->out;             /* the sent buffer is reused for queuing */
		c->out = c->next;
		c->next = t;
		c->next.len = 0;
		c->out_off = 0;
	}
	c->sending = 1;
	io_send(c->w, c->fd, c->out.p + c->out_off, (uint32_t)(c->out.len - c->out_off),
		op_ud(c, K_SEND));
}

static void arm_recv(struct rconn *c)
{
	/* grow only here: no receive is in flight into the buffer */
	if (rr_buf_reserve(&c->in, RECV_ROOM) < 0) {
		fail(c, "out of memory");
		return;
	}
	c->recv_armed = 1;
	io_recv(c->w, c->fd, c->in.p + c->in.len, (uint32_t)(c->in.cap - c->in.len),
		op_ud(c, K_RECV));
}

static int queue_push(struct rconn *c, rconn_reply_fn fn, void *arg)
{
	struct rconn_pending *nq;
	uint32_t i, ncap;

	if (c->qlen == c->qcap) {
		ncap = c->qcap ? c->qcap * 2 : 64;
		nq = malloc(ncap * sizeof(*nq));
		if (!nq)
			return -ENOMEM;
		for (i = 0; i < c->qlen; i++)
			nq[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = nq;
		c->qcap = ncap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) % c->qcap].fn = fn;
	c->q[(c->qhead + c->qlen) % c->qcap].arg = arg;
	if (!c->qlen++) {
		c->since_ms = now_ms(c);
		timer_set(&c->w->wheel, &c->timer, c->timeout_ms);
	}
	return 0;
}

static int queue_pop(struct rconn *c, struct rconn_pending *out)
{
	if (!c->qlen)
		return 0;
	*out = c->q[c->qhead];
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	if (c->qlen) {
		/* the next command's reply gets a whole timeout from now */
		c->since_ms = now_ms(c);
		timer_set(&c->w->wheel, &c->timer, c->timeout_ms);
	} else if (c->state == RCONN_ST_READY) {
		timer_cancel(&c->w->wheel, &c->timer);
	}
	return 1;
}

static int queue_cmd(struct rconn *c, const struct rr_buf *cmd, rconn_reply_fn fn, void *arg)
{
	size_t len = c->next.len;

	if (rr_buf_put(&c->next, cmd->p, cmd->len) < 0)
		return -ENOMEM;
	if (queue_push(c, fn, arg) < 0) {
		c->next.len = len;
		return -ENOMEM;
	}
	return 0;
}

int rconn_send(struct rconn *c, const struct rr_buf *cmd, rconn_reply_fn fn, void *arg)
{
	int rc;

	if (c->state != RCONN_ST_READY && c->state != RCONN_ST_HANDSHAKE)
		return -ENOTCONN;
	rc = queue_cmd(c, cmd, fn, arg);
	if (!rc)
		flush(c);
	return rc;
}

int rconn_queue(struct rconn *c, const struct rr_buf *cmd, rconn_reply_fn fn, void *arg)
{
	if (c->state != RCONN_ST_READY && c->state != RCONN_ST_HANDSHAKE)
		return -ENOTCONN;
	return queue_cmd(c, cmd, fn, arg);
}

void rconn_flush(struct rconn *c)
{
	if (c->state == RCONN_ST_READY || c->state == RCONN_ST_HANDSHAKE)
		flush(c);
}

int rconn_sendv(struct rconn *c, rconn_reply_fn fn, void *arg, ...)
{
	const char *argv[16];
	struct rr_buf b = { 0 };
	va_list ap;
	int argc = 0, rc;
	const char *s;

	va_start(ap, arg);
	while ((s = va_arg(ap, const char *)) != NULL && argc < (int)ARRAY_SIZE(argv))
		argv[argc++] = s;
	va_end(ap);
	rc = rr_cmd(&b, argc, argv, NULL);
	if (!rc)
		rc = rconn_send(c, &b, fn, arg);
	rr_buf_free(&b);
	return rc;
}

/* ---- handshake ---- */

static void ready(struct rconn *c)
{
	c->state = RCONN_ST_READY;
	c->tried = 0;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->connects++;
	if (!c->qlen)
		timer_cancel(&c->w->wheel, &c->timer);
	log_info("msg=\"redis connected\" conn=%s address=%s", c->name, c->addrs[c->cur].text);
	if (c->on_state)
		c->on_state(c->owner, c, 1, NULL);
}

static void on_auth(void *arg, struct rconn *c, const struct rr_reply *r)
{
	char why[160];

	if (!r || r->v[0].type != RR_ERROR)
		return;
	snprintf(why, sizeof(why), "AUTH refused: %.*s", (int)RF_MIN(r->v[0].n, 120),
		 r->v[0].p);
	fail(c, why);
}

static void on_role(void *arg, struct rconn *c, const struct rr_reply *r)
{
	if (!r || c->state != RCONN_ST_HANDSHAKE)
		return;
	/* a server that cannot say (an old one, a restricted user) is taken
	 * for a primary; a replica refuses writes, so the next one is tried */
	if (r->v[0].type == RR_ARRAY && !rr_is(r, rr_elem(r, 0, 0), "master")) {
		fail(c, "the server is a replica");
		return;
	}
	ready(c);
}

static void on_connected(struct rconn *c)
{
	c->state = RCONN_ST_HANDSHAKE;
	arm_recv(c);
	if (c->state != RCONN_ST_HANDSHAKE)
		return;
	if ((c->password && rconn_sendv(c, on_auth, NULL, "AUTH", c->password, NULL) < 0) ||
	    rconn_sendv(c, on_role, NULL, "ROLE", NULL) < 0)
		fail(c, "out of memory");
}

/* ---- failure, reconnection ---- */

/* Every callback still waiting learns the connection is gone. */
static void fail_pending(struct rconn *c)
{
	struct rconn_pending p;

	while (queue_pop(c, &p))
		if (p.fn)
			p.fn(p.arg, c, NULL);
}

/* The wait before the next attempt: the next address of the list at once,
 * a back-off after a whole round failed. */
static uint32_t retry_delay(struct rconn *c)
{
	uint32_t d;

	if (++c->tried < c->naddrs)
		return NEXT_ADDR_MS;
	c->tried = 0;
	d = c->backoff_ms;
	c->backoff_ms = RF_MIN(c->backoff_ms * 2, BACKOFF_MAX_MS);
	return d;
}

static void closed(struct rconn *c)
{
	if (c->state == RCONN_ST_STOPPED)
		return;
	c->state = RCONN_ST_IDLE;
	timer_set(&c->w->wheel, &c->timer, retry_delay(c));
}

/* Drop the connection: close the socket, fail what waits, try again
 * later (the next address first). */
static void fail(struct rconn *c, const char *why)
{
	if (c->state == RCONN_ST_IDLE || c->state == RCONN_ST_STOPPED ||
	    c->state == RCONN_ST_CLOSING)
		return;
	c->failures++;
	c->state = RCONN_ST_CLOSING;
	timer_cancel(&c->w->wheel, &c->timer);
	if (c->fd >= 0) {
		int pending = c->inflight != 0;

		io_close(c->w, c->fd, pending, op_ud(c, K_CLOSE));
		c->fd = -1;
	}
	c->in.len = 0;
	c->out.len = c->out_off = 0;
	c->next.len = 0;
	log_debug("msg=\"redis connection failed\" conn=%s address=%s error=\"%s\"", c->name,
		  c->addrs[c->cur].text, why);
	c->cur = (c->cur + 1) % c->naddrs;
	fail_pending(c);
	if (c->on_state)
		c->on_state(c->owner, c, 0, why);
	if (!c->inflight)
		closed(c);
}

/* A pub/sub message, whatever the queue holds. */
static int is_message(const struct rr_reply *r)
{
	return r->v[0].type == RR_ARRAY &&
	       (rr_is(r, rr_elem(r, 0, 0), "message") || rr_is(r, rr_elem(r, 0, 0), "pmessage"));
}

static void on_replies(struct rconn *c)
{
	struct rconn_pending p;
	size_t pos = 0;
	int rc;

	while (pos < c->in.len) {
		rc = rr_parse(&c->reply, c->in.p + pos, c->in.len - pos);
		if (rc == -EAGAIN)
			break;
		if (rc < 0) {
			fail(c, rc == -EBADMSG ? "protocol error" : "reply too large");
			return;
		}
		pos += (size_t)rc;
		if (c->on_push && is_message(&c->reply))
			c->on_push(c->owner, c, &c->reply);
		else if (queue_pop(c, &p))
			p.fn ? p.fn(p.arg, c, &c->reply) : (void)0;
		else if (c->on_push)
			c->on_push(c->owner, c, &c->reply);
		if (c->state == RCONN_ST_CLOSING || c->state == RCONN_ST_STOPPED ||
		    c->state == RCONN_ST_IDLE)
			return;         /* a callback dropped the connection */
	}
	if (pos) {
		memmove(c->in.p, c->in.p + pos, c->in.len - pos);
		c->in.len -= pos;
	}
}

void rconn_on_cqe(void *obj, struct io_uring_cqe *cqe)
{
	struct rconn_op *op = obj;
	struct rconn *c = op->c;
	int res = cqe->res, live;
	char why[96];

	c->inflight--;
	live = c->state != RCONN_ST_CLOSING && c->state != RCONN_ST_STOPPED &&
	       c->state != RCONN_ST_IDLE;
	if (op->kind == K_SEND)
		c->sending = 0;
	if (op->kind == K_RECV)
		c->recv_armed = 0;
	if (!live) {
		if (!c->inflight && c->state == RCONN_ST_CLOSING)
			closed(c);
		return;
	}
	switch (op->kind) {
	case K_CONNECT:
		if (res < 0) {
			snprintf(why, sizeof(why), "connect: %s", strerror(-res));
			fail(c, why);
		} else {
			on_connected(c);
		}
		return;
	case K_SEND:
		if (res <= 0) {
			snprintf(why, sizeof(why), "send: %s", strerror(res ? -res : EPIPE));
			fail(c, why);
			return;
		}
		c->out_off += (size_t)res;
		flush(c);
		return;
	case K_RECV:
		if (res <= 0) {
			snprintf(why, sizeof(why), "%s", res ? strerror(-res) : "closed by the server");
			fail(c, why);
			return;
		}
		c->in.len += (size_t)res;
		on_replies(c);
		if (c->state == RCONN_ST_READY || c->state == RCONN_ST_HANDSHAKE)
			arm_recv(c);
		return;
	default:
		return;
	}
}

static void on_timer(struct timer *t)
{
	struct rconn *c = container_of(t, struct rconn, timer);

	switch (c->state) {
	case RCONN_ST_IDLE:
		start_connect(c);
		break;
	case RCONN_ST_CONNECTING:
		fail(c, "connect timeout");
		break;
	case RCONN_ST_HANDSHAKE:
	case RCONN_ST_READY:
		if (c->qlen || c->state == RCONN_ST_HANDSHAKE)
			fail(c, "reply timeout");
		break;
	default:
		break;
	}
}

int rconn_init(struct rconn *c, struct worker *w, const char *name,
	       const struct rf_cluster_conf *cc)
{
	int i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < 4; i++) {
		c->ops[i].c = c;
		c->ops[i].kind = (uint8_t)i;
	}
	c->w = w;
	c->name = name;
	c->addrs = cc->redis;
	c->naddrs = cc->nredis ? cc->nredis : 1;
	c->password = cc->password && *cc->password ? cc->password : NULL;
	c->timeout_ms = cc->timeout_ms ? cc->timeout_ms : 1000;
	c->fd = -1;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->reply.max_vals = 1u << 22;
	timer_init(&c->timer, on_timer);
	c->state = RCONN_ST_IDLE;
	start_connect(c);
	return 0;
}

void rconn_stop(struct rconn *c)
{
	int was = c->state;

	if (was == RCONN_ST_STOPPED)
		return;
	timer_cancel(&c->w->wheel, &c->timer);
	if (was == RCONN_ST_IDLE) {
		c->state = RCONN_ST_STOPPED;
		return;
	}
	c->on_state = NULL;
	fail(c, "stopping");
	c->state = RCONN_ST_STOPPED;
	timer_cancel(&c->w->wheel, &c->timer);
}

int rconn_busy(const struct rconn *c)
{
	return c->inflight != 0;
}

void rconn_free(struct rconn *c)
{
	rr_buf_free(&c->out);
	rr_buf_free(&c->next);
	rr_buf_free(&c->in);
	rr_reply_free(&c->reply);
	rf_free(&c->q);
	c->qlen = c->qcap = 0;
}

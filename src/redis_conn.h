/* redis_conn.h - ringfront's own Redis client: one TCP connection driven
 * as ordinary I/O on a worker's io_uring (connect, one send in flight,
 * one receive armed), commands pipelined, replies matched to their
 * callbacks in order. It authenticates (AUTH), skips a server that is a
 * replica (ROLE), times out a connect or a reply after timeout_ms, and on
 * any failure closes, fails the pending callbacks, moves to the next
 * address and reconnects with a back-off (100 ms doubling to 5 s).
 * Everything runs on the owning worker's thread; nothing blocks. */
#ifndef RF_REDIS_CONN_H
#define RF_REDIS_CONN_H

#include <stdint.h>
#include "config.h"
#include "redis_reply.h"
#include "timer.h"

struct worker;
struct io_uring_cqe;
struct rconn;

/* A reply to one command: <r> holds it at index 0, or <r> is NULL when
 * the connection was lost before it came. */
typedef void (*rconn_reply_fn)(void *arg, struct rconn *c, const struct rr_reply *r);

enum rconn_state {
	RCONN_ST_IDLE = 1,      /* not connected; the timer brings the next attempt */
	RCONN_ST_CONNECTING,    /* connect submitted */
	RCONN_ST_HANDSHAKE,     /* AUTH and ROLE sent, waiting for their replies */
	RCONN_ST_READY,         /* commands may be sent */
	RCONN_ST_CLOSING,       /* close submitted, waiting for the last CQEs */
	RCONN_ST_STOPPED,       /* rconn_stop(): no reconnect */
};

/* A user_data target: one per kind of operation, 16-byte aligned. */
struct rconn_op {
	struct rconn *c;
	uint8_t kind;
} __attribute__((aligned(16)));

struct rconn_pending {
	rconn_reply_fn fn;
	void *arg;
};

/* Owner: the cluster (cluster.c), inside its own struct. */
struct rconn {
	struct rconn_op ops[4];         /* connect, send, recv, close */
	struct worker *w;
	const char *name;               /* for logs: "main", "subscriber" */
	const struct rf_addr *addrs;    /* the [cluster] redis list */
	uint32_t naddrs, cur;           /* address in use or tried next */
	const char *password;           /* NULL = no AUTH */
	uint32_t timeout_ms;
	int fd;
	uint8_t state;                  /* enum rconn_state */
	uint8_t inflight;               /* SQEs awaiting their CQE */
	uint8_t sending;                /* a send of <out> is in flight */
	uint8_t recv_armed;
	uint32_t backoff_ms;
	uint32_t tried;                 /* addresses tried since the last success */
	struct rr_buf out;              /* owned: being sent (frozen while sending) */
	size_t out_off;                 /* bytes of <out> already sent */
	struct rr_buf next;             /* owned: queued while <out> is in flight */
	struct rr_buf in;               /* owned: received, not yet parsed */
	struct rr_reply reply;          /* owned: the parser's value list */
	struct rconn_pending *q;        /* owned ring of callbacks, qcap entries */
	uint32_t qhead, qlen, qcap;
	struct timer timer;             /* connect/reply timeout, or the next attempt */
	uint64_t since_ms;              /* when the oldest pending command was sent */
	/* called on the worker: up = 1 once the handshake is done, 0 on every
	 * failure (a lost connection or a failed attempt); <why> says what */
	void (*on_state)(void *owner, struct rconn *c, int up, const char *why);
	/* a reply no command waits for: pub/sub messages */
	void (*on_push)(void *owner, struct rconn *c, const struct rr_reply *r);
	void *owner;
	uint64_t connects, failures;    /* counters for /stats */
};

/* Set up <c> for worker <w> over <cc>'s addresses and start connecting.
 * Returns 0 or -ENOMEM. */
int rconn_init(struct rconn *c, struct worker *w, const char *name,
	       const struct rf_cluster_conf *cc);

/* Queue one command (RESP bytes from rr_cmd) with its callback (fn may be
 * NULL: the reply is dropped). Only in RCONN_ST_READY, and during the
 * handshake by the connection itself. Returns 0, -ENOTCONN or -ENOMEM. */
int rconn_send(struct rconn *c, const struct rr_buf *cmd, rconn_reply_fn fn, void *arg);

/* The same for a command of NUL-ended strings ending in NULL. */
int rconn_sendv(struct rconn *c, rconn_reply_fn fn, void *arg, ...);

/* Queue without submitting; rconn_flush() submits what is queued. For
 * batches: one send for many commands. Same returns as rconn_send(). */
int rconn_queue(struct rconn *c, const struct rr_buf *cmd, rconn_reply_fn fn, void *arg);
void rconn_flush(struct rconn *c);

/* Commands sent and not answered yet. */
static inline uint32_t rconn_pending(const struct rconn *c)
{
	return c->qlen;
}

/* A CQE whose user_data names one of c->ops. */
void rconn_on_cqe(void *op, struct io_uring_cqe *cqe);

/* Close for good (graceful stop). rconn_busy() says when its last CQE has
 * come; then rconn_free() releases the buffers. */
void rconn_stop(struct rconn *c);
int rconn_busy(const struct rconn *c);
void rconn_free(struct rconn *c);

const char *rconn_state_str(uint8_t state);

#endif

/* worker.h - the per-core worker: its io_uring (or epoll: io.h),
 * listeners, buffer ring, pools, timer wheel, and the two kinds of sockets
 * it drives - client connections (conn.c) and backend links (link.c) -
 * which share the byte stream machinery of stream.c. Nothing here is
 * shared between workers. */
#ifndef RF_WORKER_H
#define RF_WORKER_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include "balance.h"
#include "bufring.h"
#include "http_parse.h"
#include "listen.h"
#include "log.h"
#include "pool.h"
#include "queue.h"
#include "timer.h"
#include "upstream.h"

/* user_data = pointer to the owning object | op code in the low 4 bits.
 * Objects are 64-byte aligned (pools) so the bits are free. 0 = ignored. */
enum op {
	OP_IGNORE = 0,
	OP_ACCEPT,              /* multishot accept on a listener */
	OP_WAKE,                /* eventfd read: the main thread wants attention */
	OP_RECV,                /* multishot recv on a sock */
	OP_SEND,                /* sendmsg on a sock */
	OP_CONNECT,             /* connect on a backend link */
	OP_CLOSE,               /* close of a sock's fd */
	OP_HCHECK,              /* any step of an active health check */
	OP_REDIS,               /* any operation of a Redis connection (redis_conn.c) */
};
#define OP_MASK 0xfULL

static inline uint64_t op_data(void *obj, enum op op)
{
	return (uint64_t)(uintptr_t)obj | op;
}

/* A chunk: a pooled byte buffer for request/response heads, with a
 * reference count because segments queued for sending point into it. */
struct chunk {
	uint32_t refs;
	uint32_t cap : 31;
	uint32_t heap : 1;      /* malloc'd (large, off the hot path), not pooled */
	char data[];
};

/* A run of bytes queued for sending or waiting to be consumed. It holds one
 * reference on its backing memory: a provided buffer (bid >= 0), a chunk
 * (ck != NULL), a cache entry (ent != NULL), or static memory (none).
 * Nodes come from a worker pool. */
struct cache_entry;

struct seg {
	struct seg *next;
	const char *p;
	uint32_t len;
	int32_t bid;
	struct chunk *ck;
	const struct cache_entry *ent;  /* a held cache entry (hits), or NULL */
};

struct segq {
	struct seg *head, *tail;
	uint32_t n;
	uint32_t bytes;
};

/* Flow control: a sock stops receiving while its input queue holds
 * IN_HIGH bytes, and relaying stops filling an output queue at OUT_HIGH. */
#define IN_HIGH   (64 * 1024)
#define OUT_HIGH  (128 * 1024)
#define IOV_MAX_SEND 8

enum sock_kind { SOCK_CONN = 1, SOCK_LINK };

struct worker;

/* The sendmsg of several queued segments: taken from the worker's pool
 * for each such send and returned at its completion, so that an idle
 * connection does not carry it. */
struct sendv {
	struct msghdr msg;
	struct iovec iov[IOV_MAX_SEND];
};

/* The I/O half shared by client connections and backend links: one
 * multishot recv (paused by cancel when its input queue is full), at most
 * one send in flight, and the count of submitted ops still owed a CQE: the
 * object is recycled only when that reaches zero. */
struct sock {
	int fd;
	uint8_t kind;           /* enum sock_kind */
	uint8_t inflight;       /* SQEs awaiting their last CQE */
	uint8_t rd_armed;       /* a multishot recv is live in the kernel */
	uint8_t rd_cancelled;   /* its cancel was submitted */
	uint8_t rd_starved;     /* on the worker's ENOBUFS list */
	uint8_t sending;        /* a sendmsg is in flight */
	uint8_t closing;        /* close submitted; no new I/O */
	uint8_t eof;            /* peer closed its side */
	struct worker *w;
	struct sock *starved_next;
	struct segq in;         /* received, not yet consumed */
	struct segq out;        /* queued for sending */
	struct sendv *sv;       /* owned while a sendmsg is in flight */
	struct timer timer;
};

/* Accumulates a head that arrived in several receives. */
struct headacc {
	struct chunk *ck;       /* owned, NULL when the head fits one segment */
	uint32_t len;
	uint32_t last;          /* length at the previous parse attempt */
};

enum conn_state {
	CONN_ST_NEW = 1,        /* accepted, waiting for the first request head */
	CONN_ST_IDLE,           /* keep-alive, waiting for the next request */
	CONN_ST_READ_HEAD,      /* part of a request head received */
	CONN_ST_WAIT_FILL,      /* a cache miss waits for another request's fetch */
	CONN_ST_QUEUED,         /* every server at max_conns: waiting in a queue */
	CONN_ST_PROXY,          /* request forwarded / response being relayed */
	CONN_ST_TUNNEL,         /* upgraded: bytes relayed both ways */
	CONN_ST_STREAM,         /* a line/command protocol: bytes in, replies out */
	CONN_ST_EVENTS,         /* admin /events: a server-sent event every second */
	CONN_ST_LINGER,         /* final response sent, draining input before close */
	CONN_ST_CLOSED,         /* close submitted, waiting for the last CQEs */
};

enum link_state {
	LINK_ST_CONNECTING = 1, /* connect submitted */
	LINK_ST_IDLE,           /* in the keep-alive pool */
	LINK_ST_BUSY,           /* carrying one request */
	LINK_ST_CLOSED,         /* close submitted, waiting for the last CQEs */
};

enum resp_state {
	RESP_HEAD = 1,          /* waiting for the status line and fields */
	RESP_BODY,              /* relaying the body */
	RESP_DONE,              /* the whole response was queued to the client */
};

/* How a message body ends. */
enum body_kind {
	BODY_NONE = 0,
	BODY_LENGTH,            /* Content-Length */
	BODY_CHUNKED,           /* chunked, relayed as is */
	BODY_DECHUNK,           /* chunked from the backend, decoded for an HTTP/1.0 client */
	BODY_EOF,               /* delimited by the backend closing */
	BODY_TUNNEL,            /* after 101: everything, both ways */
};

struct body {
	uint8_t kind;           /* enum body_kind */
	uint64_t left;          /* BODY_LENGTH: bytes still to relay */
	uint64_t data;          /* chunked: data bytes seen so far */
	uint64_t limit;         /* chunked: most data bytes allowed, 0 = no limit */
	/* sees every decoded body byte as it is relayed (cache fills) */
	void (*tap)(void *arg, const char *p, uint32_t n);
	void *tap_arg;
	struct http_chunked ck;
};

struct link;

/* One client connection. Owner: the worker's conn pool. */
struct conn {
	struct sock s;                  /* first: user_data points here */
	uint8_t state;                  /* enum conn_state */
	uint8_t kind;                   /* enum listen_kind it arrived on */
	uint8_t keepalive;              /* keep the connection after this response */
	uint8_t client_minor;           /* HTTP/1.x of the current request */
	uint8_t meth;                   /* enum http_method of the current request */
	uint8_t upgrade;                /* request asked for an upgrade */
	uint8_t expect_sent;            /* 100 Continue already answered */
	uint8_t attempts;               /* backends tried for this request */
	uint8_t head_sent;              /* response head queued to the client */
	uint8_t resp_done;              /* whole response queued to the client */
	uint8_t fresh_retry;            /* the retry on a fresh link was used */
	uint8_t replayable;             /* idempotent, no body: may be sent again */
	uint8_t interim;                /* 1xx responses relayed for this request */
	uint16_t status;                /* response status, for the log */
	struct headacc acc;
	struct body req_body;           /* request body still to forward */
	struct link *link;              /* backend carrying the current request */
	struct runtime *rt;             /* runtime the current request started on */
	const struct rf_route_conf *route;  /* its route (in rt's config) */
	struct pcache_req *pc;          /* owned: the cache's view of the request */
	struct upstream *up;
	struct server *srv;             /* server of the attempt in progress, or NULL */
	uint64_t attempt_us;            /* when that attempt started */
	uint64_t client_hash;           /* of the client address, for ip_hash */
	struct chunk *bhead;            /* backend request head, kept for a retry */
	uint32_t bhead_len;
	uint64_t tried;                 /* servers tried, by index bit */
	int32_t prio;                   /* queue priority of the current request */
	uint64_t qkey;                  /* its place while CONN_ST_QUEUED, see queue.c */
	struct conn *qnext, *qprev;     /* its worker's queue while CONN_ST_QUEUED */
	uint64_t started_ms;
	uint64_t resp_bytes;
	struct admin_req *admin;        /* owned: the admin request being read */
	struct conn *next, *prev;       /* worker's list of live connections */
	uint32_t peer_len;
	char peer[48];                  /* client address as text, for X-Forwarded-For */
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} peer_addr;                    /* the same, binary: rate-limit keys */
	uint8_t rl_headers;             /* put RateLimit-* on this response */
	struct rl_verdict rlv;          /* the admission verdict behind them */
	void *proto;                    /* owned: CONN_ST_STREAM protocol state */
	uint8_t blocked;                /* RESP: a write waits for another shard */
	uint8_t reqid_len;
	char reqid[64];                 /* X-Request-Id of the current request */
	uint16_t target_len;
	char target[96];                /* request target prefix, for the access log */
};

/* One connection to a backend server. Owner: the worker's link pool. */
struct link {
	struct sock s;                  /* first: user_data points here */
	uint8_t state;                  /* enum link_state */
	uint8_t reused;                 /* came from the pool for this request */
	uint8_t resp_state;             /* enum resp_state */
	uint8_t reusable;               /* may go back to the pool when done */
	uint8_t got_bytes;              /* any response byte arrived */
	uint8_t wr_shut;                /* tunnel: our write side was shut down */
	struct headacc acc;
	struct body body;               /* response body still to relay */
	struct server *srv;
	struct conn *c;                 /* client it serves while BUSY */
	struct link *pool_next, *pool_prev;
};

/* Idle keep-alive links to one server, most recently used first. */
struct link_pool {
	struct link *head;
	uint32_t count;
};

struct listener {
	int fd;
	uint8_t armed;
	uint8_t kind;                   /* enum listen_kind */
	struct worker *w;
	const struct rf_addr *addr;
} __attribute__((aligned(16)));

/* Counters written only by their worker and read by the admin API from
 * any thread: relaxed atomics, bumped with STAT_ADD (no locked add). */
struct worker_stats {
	_Atomic uint64_t accepted;
	_Atomic uint64_t requests;
	_Atomic uint64_t rejected_conns;
	_Atomic uint64_t errors;
	_Atomic uint64_t active;        /* client connections open now */
	_Atomic uint64_t waits;         /* event waits (io_uring_enter / epoll_wait) */
	_Atomic uint64_t batched_waits; /* of which batched: see batch_wait_us */
};

#define STAT_ADD(field, n) \
	atomic_store_explicit(&(field), \
		atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
		memory_order_relaxed)
#define STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* A runtime a worker has switched away from while requests (or health
 * checks) started on it are still in flight; it holds one reference. */
struct rt_use {
	struct runtime *rt;
	uint32_t inflight;
	struct rt_use *next;
};

struct io_ep;

struct worker {
	struct io_uring ring;           /* unused on the epoll backend */
	struct io_ep *ep;               /* owned: the epoll backend, NULL on io_uring */
	struct bufring bufs;
	struct timer_wheel wheel;
	struct runtime *rt;             /* current runtime; the worker holds a ref */
	uint32_t rt_inflight;           /* requests in flight on it */
	struct rt_use *rt_old;          /* owned: older runtimes still in use */
	const struct rf_config *cfg;
	int id;
	int wake_fd;                    /* eventfd written by the main thread */
	uint64_t wake_val;
	uint8_t stopping;               /* graceful stop begun (worker_begin_stop) */
	uint8_t stop_now;               /* every connection closed at once (RF_STOP_NOW) */
	uint8_t wake_armed;
	uint8_t woken;                  /* a wake-up completed in this loop iteration */
	_Atomic uint8_t exited;         /* the thread is done: set last, read by main */
	pthread_t thread;
	struct listener *listeners;     /* owned, nlisteners entries */
	uint32_t nlisteners;
	struct pool conn_pool;
	struct pool link_pool_mem;
	struct pool chunk_pool;
	struct pool seg_pool;
	struct pool sendv_pool;         /* struct sendv: multi-segment sends in flight */
	struct link_pool *pools;        /* owned, one per server (rt->nservers) */
	struct balance_state *bal;      /* owned, one per upstream */
	struct wqueue *queues;          /* owned, one per upstream: requests waiting for a slot */
	uint32_t nqueued;               /* in all of them */
	struct conn *conns;             /* live client connections */
	uint32_t nconns;
	uint32_t nlinks;
	uint32_t nblocked;              /* RESP connections waiting for a shard */
	struct sock *starved;           /* socks waiting for buffers */
	struct http_limits limits;
	struct http_limits resp_limits;
	struct http_req *req;           /* owned scratch for request parsing */
	struct http_resp *resp;         /* owned scratch for response parsing */
	struct access_log *alog;        /* owned, NULL when off */
	uint64_t now_us;                /* monotonic, refreshed once per loop */
	uint64_t reqid_seed;
	uint64_t reqid_seq;
	struct worker_stats stats;
	struct log_ratelimit rl_maxconn, rl_accept, rl_nobufs, rl_nofile;
	uint64_t accept_backoff_until;
	struct timer accept_timer;      /* re-arms accept after EMFILE back-off */
	struct timer stop_timer;        /* shutdown_timeout during a graceful stop */
	struct hcheck *hchecks;         /* owned: the health checks this worker runs */
	uint32_t nhchecks;
	struct hc_retired *hc_retired;  /* owned: check sets of old runtimes, finishing */
	uint32_t hc_running;
	uint8_t ring_ready;
	uint8_t ring_fd_registered;     /* io_uring_enter takes the registered index */
	uint32_t batch_wait_us;         /* 0 = single waits; else see batch_adapt() */
	uint32_t batch_want;            /* completions the next wait asks for; 0 = 1 */
	uint32_t batch_cool;            /* waits left before batching may resume */
} __attribute__((aligned(64)));   /* user_data keeps an op code in the low bits */

/* Shared by all workers: the process-wide connection count, and the stop
 * request the main thread raises before waking the workers: 0, then
 * RF_STOP_GRACEFUL (finish what is in flight, up to shutdown_timeout),
 * then on a second signal RF_STOP_NOW (close everything). */
#define RF_STOP_GRACEFUL 1
#define RF_STOP_NOW      2
extern _Atomic uint32_t rf_total_conns;
extern _Atomic int rf_stop_requested;

/* An eventfd each worker writes as its thread ends (the main thread polls
 * it), or -1. Set by main before the first worker starts. */
extern int rf_worker_exit_fd;

/* All workers, for the admin API's read-only views (set once by main). */
extern struct worker *rf_workers;
extern uint32_t rf_nworkers;

/* worker.c */
void worker_rt_release(struct worker *w, struct runtime *rt);
int worker_prepare(struct worker *w, int id);
int worker_start(struct worker *w, struct runtime *rt,
		 const struct endpoint *eps, unsigned neps, int *listen_fds);
void worker_wake(struct worker *w);
void worker_join(struct worker *w);
int worker_exited(struct worker *w);
void worker_release(struct worker *w);
struct io_uring_sqe *worker_sqe(struct worker *w);

/* stream.c: chunks, segments and the socket I/O shared by conn and link */
struct chunk *chunk_get(struct worker *w);
struct chunk *chunk_from_bytes(const char *p, size_t len);
void chunk_put(struct worker *w, struct chunk *ck);
void seg_release(struct worker *w, struct seg *sg);
int segq_push(struct worker *w, struct segq *q, const char *p, uint32_t len,
	      int32_t bid, struct chunk *ck);
int segq_push_front(struct worker *w, struct segq *q, const char *p,
		    uint32_t len, int32_t bid, struct chunk *ck);
int segq_push_entry(struct worker *w, struct segq *q, const char *p, uint32_t len,
		    const struct cache_entry *e);
void segq_consume(struct worker *w, struct segq *q, uint32_t n);
void segq_clear(struct worker *w, struct segq *q);
uint32_t segq_move(struct worker *w, struct segq *from, struct segq *to,
		   uint32_t max);
void sock_init(struct sock *s, struct worker *w, int fd, enum sock_kind kind,
	       timer_cb on_timer);
void sock_arm_recv(struct sock *s);
void sock_update_reading(struct sock *s);
void sock_flush(struct sock *s);
void sock_close(struct sock *s);
void sock_rearm_starved(struct worker *w);
int headacc_parse_input(struct worker *w, struct headacc *acc, struct segq *in,
			int (*parse)(const char *, size_t, size_t, void *),
			void *arg, uint32_t limit, const char **headp);
void headacc_finish(struct worker *w, struct headacc *acc, struct segq *in,
		    uint32_t head_len);
void headacc_reset(struct worker *w, struct headacc *acc);
int body_relay(struct worker *w, struct body *b, struct segq *in,
	       struct segq *out, int *done);

/* Every change of a connection's state goes through here. */
static inline void conn_set_state(struct conn *c, enum conn_state st)
{
	c->state = (uint8_t)st;
}

/* conn.c: <err> is 0 for new input or end of stream (s.eof), or the
 * negative errno of a failed receive or send. */
void conn_accept(struct worker *w, int fd, uint8_t kind);
void conn_on_input(struct conn *c, int err);
void conn_on_sent(struct conn *c, int err);
void conn_on_closed(struct conn *c);
void conn_process(struct conn *c);
void conn_fail(struct conn *c, int status);
void conn_fail_ex(struct conn *c, int status, const char *message, uint32_t retry_after_s);
void conn_abort(struct conn *c);
void conn_response_done(struct conn *c);
void conn_backend_ready(struct conn *c);
void conn_attempt_done(struct conn *c, int outcome);
void conn_shutdown_idle(struct worker *w);
void conn_close_all(struct worker *w);
void conn_resume_blocked(struct worker *w);
void conn_start_events(struct conn *c);

/* conn_dispatch.c: choose a server (or wait for one) and connect; after a
 * failure before any response byte (<err>, on a pooled link if <reused>),
 * try again where that is safe, else answer the error. */
void conn_connect_backend(struct conn *c);
void conn_backend_failed(struct conn *c, int err, int reused);
/* May the backend's answer <status> (head only read so far; 0: none came
 * within response_timeout) be dropped and the request tried on another
 * server (retry_on, max_retries)? */
int conn_retry_answer(struct conn *c, int status);

/* link.c */
int link_acquire(struct conn *c, struct server *srv, struct link **out);
void link_on_input(struct link *l, int err);
void link_on_sent(struct link *l, int err);
void link_on_connect(struct link *l, int res);
void link_on_closed(struct link *l);
void link_process(struct link *l);
void link_close(struct link *l);
void link_close_idle(struct worker *w);

#endif

/* worker.c - one thread per core: it owns an io_uring, a provided-buffer
 * ring, SO_REUSEPORT listeners with multishot accept, and every connection
 * it accepts. The loop submits all queued SQEs and waits in one
 * io_uring_enter, handles every CQE, then runs due timers. On the epoll
 * backend (io.h) the wait is an epoll_wait and the CQEs are synthesised,
 * but they go through the same dispatch(). */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "common.h"
#include "cache.h"
#include "cluster.h"
#include "healthcheck.h"
#include "io.h"
#include "redis_conn.h"
#include "proxy_cache.h"
#include "worker.h"

#define RING_ENTRIES 1024
#define ACCEPT_BACKOFF_MS 100
/* The longest a worker waits for a completion. The wake eventfd ends the
 * wait for a stop or a reload; this bounds the harm of a wake-up lost for
 * any reason (ours or the kernel's) to a second, and the worker says so
 * when that is how it learnt of a stop. */
#define WAIT_CAP_MS 1000
/* io_uring_params.features: the kernel honours a minimum wait (6.12+);
 * liburing 2.3's header predates it */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

_Atomic uint32_t rf_total_conns;
_Atomic int rf_stop_requested;
int rf_worker_exit_fd = -1;
struct worker *rf_workers;
uint32_t rf_nworkers;

struct worker_boot {
	struct worker *w;
	const struct endpoint *eps;
	unsigned neps;
	int *listen_fds;
	sem_t ready;
	int ret;
};

/* An SQE, submitting queued ones first when the SQ ring is full. */
struct io_uring_sqe *worker_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	while (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

/* SINGLE_ISSUER and DEFER_TASKRUN keep completions on this thread and
 * batch them into our io_uring_enter; older kernels lack them. */
static int ring_setup(struct worker *w)
{
	static const unsigned flag_sets[] = {
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	size_t i;
	int ret = -EINVAL;

	for (i = 0; i < ARRAY_SIZE(flag_sets); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		return ret;
	w->ring_fd_registered = io_uring_register_ring_fd(&w->ring) == 1;
	if (i > 0)
		log_info("msg=\"io_uring without DEFER_TASKRUN\" setup_flags=%#x", flag_sets[i]);
	w->batch_wait_us = w->cfg->batch_wait_us;
	if (w->batch_wait_us && !(p.features & IORING_FEAT_MIN_TIMEOUT)) {
		if (w->id == 0)
			log_warn("msg=\"batch_wait_us needs kernel 6.12 or later; waits stay single\"");
		w->batch_wait_us = 0;
	}
	return 0;
}

/* The epoll backend: an epoll set, and the descriptors it runs accept
 * and read on made non-blocking (sockets the worker creates or accepts
 * are born so). */
static int epoll_setup(struct worker *w, const int *listen_fds, unsigned neps)
{
	unsigned i;
	int ret;

	ret = io_ep_create(&w->ep, &w->bufs);
	if (ret < 0) {
		log_error("msg=\"epoll setup failed\" error=%d", -ret);
		return ret;
	}
	for (i = 0; i <= neps; i++) {
		int fd = i < neps ? listen_fds[i] : w->wake_fd;
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			ret = -errno;
			log_error("msg=\"cannot make a descriptor non-blocking\" error=%d", -ret);
			return ret;
		}
	}
	return 0;
}

static void listener_arm(struct listener *ls)
{
	io_accept_multishot(ls->w, ls->fd, op_data(ls, OP_ACCEPT));
	ls->armed = 1;
}

static void wake_arm(struct worker *w)
{
	io_read(w, w->wake_fd, &w->wake_val, sizeof(w->wake_val), op_data(w, OP_WAKE));
	w->wake_armed = 1;
}

static void on_accept(struct listener *ls, struct io_uring_cqe *cqe)
{
	struct worker *w = ls->w;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		ls->armed = 0;
	if (cqe->res >= 0) {
		conn_accept(w, cqe->res, ls->kind);
	} else if (cqe->res == -EMFILE || cqe->res == -ENFILE ||
		   cqe->res == -ENOBUFS || cqe->res == -ENOMEM) {
		/* Out of descriptors: pause accepting for a moment, never spin. */
		rf_log_limited(&w->rl_accept, LOG_WARN,
			       "msg=\"accept failed, backing off\" error=%d", -cqe->res);
		w->accept_backoff_until = w->wheel.now + ACCEPT_BACKOFF_MS;
		timer_set(&w->wheel, &w->accept_timer, ACCEPT_BACKOFF_MS);
		return;
	} else if (cqe->res != -ECANCELED && cqe->res != -EINVAL) {
		rf_log_limited(&w->rl_accept, LOG_WARN,
			       "msg=\"accept failed\" error=%d", -cqe->res);
	}
	if (!ls->armed && !w->stopping && ls->fd >= 0 &&
	    w->wheel.now >= w->accept_backoff_until)
		listener_arm(ls);
}

static void accept_backoff_timer(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, accept_timer);
	uint32_t i;

	if (w->stopping)
		return;
	for (i = 0; i < w->nlisteners; i++)
		if (!w->listeners[i].armed && w->listeners[i].fd >= 0)
			listener_arm(&w->listeners[i]);
}

static inline __attribute__((always_inline)) void
sock_on_recv(struct sock *s, struct io_uring_cqe *cqe)
{
	struct worker *w = s->w;
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		s->rd_armed = 0;
		s->inflight--;
	}
	if (res > 0) {
		uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		bufring_take(&w->bufs, bid);
		if (s->closing) {
			bufring_unref(&w->bufs, bid);
			return;
		}
		if (segq_push(w, &s->in, bufring_ptr(&w->bufs, bid), (uint32_t)res,
			      (int32_t)bid, NULL) < 0)
			res = -ENOMEM;
		else
			res = 0;
	} else if (res == 0) {
		s->eof = 1;
	} else if (res == -ENOBUFS) {
		if (!s->closing && !s->rd_starved) {
			rf_log_limited(&w->rl_nobufs, LOG_WARN,
				       "msg=\"receive buffers exhausted\" buffers=%u",
				       w->bufs.nbufs);
			s->rd_starved = 1;
			s->starved_next = w->starved;
			w->starved = s;
		}
		return;
	} else if (res == -ECANCELED) {
		/* Paused by flow control: nothing arrived. */
		if (!s->closing)
			sock_update_reading(s);
		return;
	}
	if (s->closing)
		return;
	if (s->kind == SOCK_CONN)
		conn_on_input((struct conn *)s, res);
	else
		link_on_input((struct link *)s, res);
	if (!s->closing)
		sock_update_reading(s);
}

static inline __attribute__((always_inline)) void
sock_on_send(struct sock *s, int res)
{
	s->sending = 0;
	s->inflight--;
	if (s->sv) {
		pool_put(&s->w->sendv_pool, s->sv);
		s->sv = NULL;
	}
	if (s->closing)
		return;
	if (res > 0) {
		segq_consume(s->w, &s->out, (uint32_t)res);
		if (s->kind == SOCK_CONN)
			((struct conn *)s)->resp_bytes += (uint32_t)res;
		res = 0;
	} else if (res == 0) {
		res = -EPIPE;
	}
	if (s->kind == SOCK_CONN)
		conn_on_sent((struct conn *)s, res);
	else
		link_on_sent((struct link *)s, res);
}

/* Called from the io_uring loop and the epoll batch loop: inlined into
 * both (with the receive and send handlers), as it was into the one loop
 * before there were two - the io_uring path keeps its code. */
static inline __attribute__((always_inline)) void
dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum op op = (enum op)(ud & OP_MASK);
	void *obj = (void *)(uintptr_t)(ud & ~OP_MASK);
	struct sock *s = obj;

	switch (op) {
	case OP_IGNORE:
		return;
	case OP_ACCEPT:
		on_accept(obj, cqe);
		return;
	case OP_HCHECK:
		hcheck_on_cqe(obj, cqe);
		return;
	case OP_REDIS:
		rconn_on_cqe(obj, cqe);
		return;
	case OP_WAKE:
		w->wake_armed = 0;
		w->woken = 1;
		/* a graceful stop still listens: a second signal ends it now */
		if (atomic_load(&rf_stop_requested) < RF_STOP_NOW)
			wake_arm(w);
		return;
	case OP_RECV:
		sock_on_recv(s, cqe);
		break;
	case OP_SEND:
		sock_on_send(s, cqe->res);
		break;
	case OP_CONNECT:
		s->inflight--;
		if (!s->closing)
			link_on_connect((struct link *)s, cqe->res);
		break;
	case OP_CLOSE:
		s->inflight--;
		break;
	}
	if (s->closing && s->inflight == 0) {
		if (s->kind == SOCK_CONN)
			conn_on_closed((struct conn *)s);
		else
			link_on_closed((struct link *)s);
	}
}

static void stop_timer_cb(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, stop_timer);

	log_warn("msg=\"shutdown timeout, closing remaining connections\" connections=%u",
		 w->nconns);
	conn_close_all(w);
	link_close_idle(w);
}

/* Begin a graceful stop: no new connections, idle ones close now, busy
 * ones after their response, everything after shutdown_timeout. */
static void worker_begin_stop(struct worker *w)
{
	uint32_t i;

	w->stopping = 1;
	for (i = 0; i < w->nlisteners; i++) {
		struct listener *ls = &w->listeners[i];

		if (ls->fd < 0)
			continue;
		io_close(w, ls->fd, 1, OP_IGNORE);
		ls->fd = -1;
	}
	conn_shutdown_idle(w);
	link_close_idle(w);
	hcheck_stop(w);
	if (rf_cluster)
		cluster_worker_stop(rf_cluster, w);
	timer_set(&w->wheel, &w->stop_timer, w->cfg->shutdown_timeout_ms);
}

/* Follow the main thread's stop request <stop> (rf_stop_requested):
 * begin the graceful stop, or close everything at once. <timed_out>: the
 * wait just ended on WAIT_CAP_MS, not on a completion. */
static void worker_follow_stop(struct worker *w, int stop, int timed_out)
{
	if (!w->stopping) {
		if (!w->woken && timed_out)
			log_warn("msg=\"stop request seen without its wake-up\" waited_ms=%d",
				 WAIT_CAP_MS);
		worker_begin_stop(w);
	}
	if (stop >= RF_STOP_NOW && !w->stop_now) {
		w->stop_now = 1;
		conn_close_all(w);
		link_close_idle(w);
	}
}

/* A request (or retired check set) started on <rt> has ended. */
void worker_rt_release(struct worker *w, struct runtime *rt)
{
	struct rt_use **pp, *u;

	if (rt == w->rt) {
		w->rt_inflight--;
		return;
	}
	for (pp = &w->rt_old; (u = *pp) != NULL; pp = &u->next) {
		if (u->rt != rt)
			continue;
		if (--u->inflight == 0) {
			*pp = u->next;
			runtime_unref(u->rt);
			free(u);
		}
		return;
	}
}

/* Per-worker state sized by a runtime: balancer state per upstream and
 * idle-link pools per server. Returns 0 or -ENOMEM. */
static int worker_rt_state(struct worker *w, struct runtime *rt,
			   struct balance_state **bal, struct link_pool **pools,
			   struct wqueue **queues)
{
	uint32_t i, nups = rt->cfg->nupstreams;

	*pools = calloc(rt->nservers ? rt->nservers : 1, sizeof(**pools));
	*bal = calloc(nups ? nups : 1, sizeof(**bal));
	*queues = calloc(nups ? nups : 1, sizeof(**queues));
	if (!*pools || !*bal || !*queues)
		goto out_fail;
	for (i = 0; i < nups; i++)
		if (balance_state_init(&(*bal)[i], &rt->ups[i], (uint32_t)w->id) < 0)
			goto out_fail;
	return 0;
out_fail:
	for (i = 0; *bal && i < nups; i++)
		balance_state_free(&(*bal)[i]);
	rf_free(pools);
	rf_free(bal);
	rf_free(queues);
	return -ENOMEM;
}

static void worker_rt_state_free(struct worker *w, const struct runtime *rt)
{
	uint32_t i;

	for (i = 0; w->bal && i < rt->cfg->nupstreams; i++)
		balance_state_free(&w->bal[i]);
	rf_free(&w->bal);
	rf_free(&w->pools);
	rf_free(&w->queues);
}

/* A reload published a new runtime: new requests use it from now on. Idle
 * pooled links belong to the old servers and close; requests in flight
 * finish on the runtime they started with, which stays alive until they
 * end. */
static void worker_switch_runtime(struct worker *w)
{
	struct runtime *old = w->rt, *nrt = runtime_current();
	struct balance_state *bal;
	struct link_pool *pools;
	struct wqueue *queues;
	struct rt_use *u = NULL;

	if (!nrt || nrt == old) {
		if (nrt)
			runtime_unref(nrt);
		return;
	}
	if (w->rt_inflight && !(u = malloc(sizeof(*u))))
		goto out_nomem;
	if (worker_rt_state(w, nrt, &bal, &pools, &queues) < 0) {
		free(u);
		goto out_nomem;
	}
	/* the reference runtime_current() took is the worker's from now on */
	queue_fail_all(w);
	link_close_idle(w);
	hcheck_retire(w);
	worker_rt_state_free(w, old);
	if (u) {
		u->rt = old;            /* the worker's reference moves here */
		u->inflight = w->rt_inflight;
		u->next = w->rt_old;
		w->rt_old = u;
	} else {
		runtime_unref(old);
	}
	w->rt = nrt;
	w->cfg = nrt->cfg;
	w->rt_inflight = 0;
	w->bal = bal;
	w->pools = pools;
	w->queues = queues;
	if (hcheck_init(w, rf_nworkers) < 0)
		log_error("msg=\"out of memory setting up health checks\"");
	log_info("msg=\"configuration switched\" generation=%u", nrt->generation);
	return;
out_nomem:
	rf_log_limited(&w->rl_accept, LOG_ERROR,
		       "msg=\"out of memory switching to the reloaded configuration\"");
	runtime_unref(nrt);
}

/* Batched waits: under load, one io_uring_enter waits until BATCH_MAX
 * completions are ready or batch_wait_us has passed with at least one,
 * instead of returning at the first. A worker starts batching only after a
 * wait found BATCH_BUSY completions ready anyway; a batch that falls short
 * sends it back to single waits for BATCH_COOLDOWN waits, so a lightly
 * loaded worker does not hold requests back. */
#define BATCH_MAX 32
#define BATCH_BUSY 8
#define BATCH_COOLDOWN 64

static void batch_adapt(struct worker *w, unsigned ready)
{
	if (w->batch_want && ready < w->batch_want) {
		w->batch_want = 0;
		w->batch_cool = BATCH_COOLDOWN;
	} else if (w->batch_cool) {
		w->batch_cool--;
	} else if (w->batch_want || ready >= BATCH_BUSY) {
		w->batch_want = RF_MIN(2 * ready, BATCH_MAX);
	}
}

/* Submit what is queued and wait for w->batch_want completions, the
 * minimum wait, or the timeout <ts>. liburing 2.3 cannot pass the kernel's
 * minimum wait, so this publishes the SQ tail the way liburing does and
 * enters the ring itself. */
static int ring_wait_batch(struct worker *w, struct __kernel_timespec *ts)
{
	struct io_uring *r = &w->ring;
	struct io_uring_getevents_arg arg = {
		.sigmask_sz = _NSIG / 8,
		.pad = w->batch_wait_us,        /* min_wait_usec since 6.12 */
		.ts = (uint64_t)(uintptr_t)ts,
	};
	unsigned tail = r->sq.sqe_tail;
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int fd = r->ring_fd;

	if (r->sq.sqe_head != tail) {
		r->sq.sqe_head = tail;
		io_uring_smp_store_release(r->sq.ktail, tail);
	}
	if (w->ring_fd_registered) {
		flags |= IORING_ENTER_REGISTERED_RING;
		fd = r->enter_ring_fd;
	}
	return io_uring_enter2(fd, tail - *r->sq.khead, w->batch_want, flags,
			       (sigset_t *)(void *)&arg, sizeof(arg));
}

static void worker_loop(struct worker *w)
{
	struct io_uring_cqe *cqe, *batch = NULL;
	uint64_t last_flush = 0;

	for (;;) {
		struct __kernel_timespec ts, *tsp;
		int64_t next = timer_next_ms(&w->wheel);
		unsigned head, n = 0, i;
		int ret, stop, capped, timed_out;

		if (w->alog && w->alog->len)
			next = next < 0 || next > 1000 ? 1000 : next;
		/* slots freed by other workers: a wake-up may be lost, this is not */
		if (w->nqueued)
			next = next < 0 || next > QUEUE_POLL_MS ? QUEUE_POLL_MS : next;
		if (rf_cache) {
			int64_t sweep = w->cfg->cache.sweep_interval_ms;

			/* idle shards still expire entries; and a sleeping worker
			 * must not hold up reclaiming removed ones */
			next = next < 0 || next > sweep ? sweep : next;
			cache_offline(rf_cache, w->id);
		}
		capped = next < 0 || next >= WAIT_CAP_MS;
		if (capped)
			next = WAIT_CAP_MS;
		w->woken = 0;
		STAT_ADD(w->stats.waits, 1);
		if (unlikely(w->ep != NULL)) {
			ret = io_ep_wait(w->ep, next, &batch, &n);
			if (ret < 0) {
				/* main sees the thread end and stops the process */
				log_error("msg=\"epoll wait failed\" error=%d", -ret);
				break;
			}
			timed_out = !n;
		} else {
			ts.tv_sec = next / 1000;
			ts.tv_nsec = (next % 1000) * 1000000;
			tsp = &ts;
			if (likely(!w->batch_want)) {
				ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, tsp, NULL);
			} else {
				STAT_ADD(w->stats.batched_waits, 1);
				ret = ring_wait_batch(w, tsp);
			}
			timed_out = ret == -ETIME;
			if (ret == -EAGAIN || ret == -ENOMEM) {
				/* the kernel is short of memory for a moment: try again */
				rf_log_limited(&w->rl_accept, LOG_WARN,
					       "msg=\"io_uring wait failed, retrying\" error=%d", -ret);
			} else if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
				/* main sees the thread end and stops the process */
				log_error("msg=\"io_uring wait failed\" error=%d", -ret);
				break;
			}
		}
		w->now_us = rl_now_us();
		w->wheel.now = w->now_us / 1000;
		if (rf_cache)
			cache_quiescent(rf_cache, w->id);
		/* before this batch: a request that follows a reload or services
		 * change the client saw answered already meets the new runtime */
		if (unlikely(atomic_load_explicit(&rf_runtime, memory_order_acquire) != w->rt) &&
		    !w->stopping)
			worker_switch_runtime(w);
		if (unlikely(w->ep != NULL)) {
			for (i = 0; i < n; i++)
				dispatch(w, &batch[i]);
		} else {
			io_uring_for_each_cqe(&w->ring, head, cqe) {
				dispatch(w, cqe);
				n++;
			}
			io_uring_cq_advance(&w->ring, n);
			if (w->batch_wait_us)
				batch_adapt(w, n);
		}
		stop = atomic_load(&rf_stop_requested);
		if (stop && (!w->stopping || (stop >= RF_STOP_NOW && !w->stop_now)))
			worker_follow_stop(w, stop, capped && timed_out && !n);
		hcheck_reap(w);
		timer_run(&w->wheel, w->wheel.now);
		if (w->nqueued)
			queue_run(w);
		rl_quiescent(w->rt->rl, (unsigned)w->id);
		if (rf_cache) {
			cache_shard_poll(rf_cache, w->id, cache_now_ms());
			if (w->nblocked)
				conn_resume_blocked(w);
		}
		sock_rearm_starved(w);
		bufring_commit(&w->bufs);
		if (w->alog && w->wheel.now - last_flush >= 1000) {
			access_log_flush(w->alog);
			last_flush = w->wheel.now;
		}
		if (w->stopping && !w->nconns && !w->nlinks && !hcheck_inflight(w) &&
		    !w->hc_retired && !(rf_cluster && cluster_worker_busy(rf_cluster, w)))
			break;
	}
	if (w->alog)
		access_log_flush(w->alog);
	rl_offline(w->rt->rl, (unsigned)w->id);
}

static int worker_init(struct worker *w, const struct endpoint *eps,
		       unsigned neps, int *listen_fds)
{
	const struct rf_config *cfg = w->cfg;
	uint32_t i, per_worker;
	int ret;

	if (rf_io_backend == RF_IO_EPOLL) {
		ret = epoll_setup(w, listen_fds, neps);
		if (ret < 0)
			return ret;
	} else {
		ret = ring_setup(w);
		w->ring_ready = ret == 0;
		if (ret < 0) {
			log_error("msg=\"io_uring setup failed\" error=%d hint=\"%s\"", -ret,
				  ret == -EPERM || ret == -ENOSYS ?
				  "io_uring is disabled or blocked here (kernel.io_uring_disabled, "
				  "seccomp): set [server] io = auto or epoll" :
				  ret == -ENOMEM ? "raise RLIMIT_MEMLOCK (ulimit -l)" : "");
			return ret;
		}
	}
	ret = bufring_init(&w->bufs, w->ring_ready ? &w->ring : NULL, cfg->recv_buffers,
			   cfg->recv_buffer_size, 0);
	if (ret < 0) {
		log_error("msg=\"buffer ring setup failed\" error=%d buffers=%u size=%u hint=\"%s\"",
			  -ret, cfg->recv_buffers, cfg->recv_buffer_size,
			  ret == -ENOMEM ? "raise RLIMIT_MEMLOCK (ulimit -l) or lower recv_buffers" : "");
		return ret;
	}
	w->now_us = rl_now_us();
	timer_wheel_init(&w->wheel, w->now_us / 1000);
	per_worker = cfg->max_connections;
	pool_init(&w->conn_pool, sizeof(struct conn), per_worker, 64);
	pool_init(&w->link_pool_mem, sizeof(struct link), per_worker + 1024, 64);
	pool_init(&w->chunk_pool, sizeof(struct chunk) + cfg->max_header_size + 2048,
		  per_worker * 2 + 1024, 1);
	pool_init(&w->seg_pool, sizeof(struct seg), UINT32_MAX, 256);
	pool_init(&w->sendv_pool, sizeof(struct sendv), UINT32_MAX, 64);
	w->limits.max_head = cfg->max_header_size;
	w->limits.max_uri = cfg->max_uri_size;
	w->resp_limits.max_head = cfg->max_header_size;
	w->resp_limits.max_uri = cfg->max_header_size;
	w->req = calloc(1, sizeof(*w->req));
	w->resp = calloc(1, sizeof(*w->resp));
	if (worker_rt_state(w, w->rt, &w->bal, &w->pools, &w->queues) < 0)
		return -ENOMEM;
	w->listeners = calloc(neps, sizeof(*w->listeners));
	w->nlisteners = neps;
	if (rf_access_log_fd >= 0) {
		w->alog = calloc(1, sizeof(*w->alog));
		if (w->alog)
			w->alog->fd = rf_access_log_fd;
	}
	if (!w->req || !w->resp || !w->listeners ||
	    (rf_access_log_fd >= 0 && !w->alog))
		return -ENOMEM;
	w->reqid_seed = timer_clock_ms() * 0x100000001b3ULL ^ (uint64_t)getpid() << 20 ^
			(uint64_t)w->id << 56;
	timer_init(&w->accept_timer, accept_backoff_timer);
	timer_init(&w->stop_timer, stop_timer_cb);
	for (i = 0; i < neps; i++) {
		w->listeners[i].fd = listen_fds[i];
		w->listeners[i].w = w;
		w->listeners[i].addr = eps[i].addr;
		w->listeners[i].kind = eps[i].kind;
		listener_arm(&w->listeners[i]);
	}
	wake_arm(w);
	if (rf_cluster)
		cluster_worker_start(rf_cluster, w);
	return hcheck_init(w, rf_nworkers);
}

static void worker_destroy(struct worker *w)
{
	if (w->ring_ready) {
		bufring_destroy(&w->bufs, &w->ring);
		io_uring_queue_exit(&w->ring);
	} else {
		bufring_destroy(&w->bufs, NULL);
		io_ep_destroy(w->ep);
		w->ep = NULL;
	}
	pool_destroy(&w->conn_pool);
	pool_destroy(&w->link_pool_mem);
	pool_destroy(&w->chunk_pool);
	pool_destroy(&w->seg_pool);
	pool_destroy(&w->sendv_pool);
	rf_free(&w->req);
	rf_free(&w->resp);
	worker_rt_state_free(w, w->rt);
	while (w->rt_old) {
		struct rt_use *u = w->rt_old;

		w->rt_old = u->next;
		runtime_unref(u->rt);
		free(u);
	}
	runtime_unref(w->rt);
	rf_free(&w->listeners);
	rf_free(&w->alog);
	hcheck_free(w);
	if (rf_cluster)
		cluster_worker_free(rf_cluster, w);
	/* wake_fd stays open: the main thread and the other workers may still
	 * write to it until every worker is joined (worker_release) */
}

static void *worker_main(void *arg)
{
	struct worker_boot *boot = arg;
	struct worker *w = boot->w;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "rf-worker-%d", w->id);
	pthread_setname_np(pthread_self(), name);
	log_set_thread(w->id);
	ret = worker_init(w, boot->eps, boot->neps, boot->listen_fds);
	boot->ret = ret;
	sem_post(&boot->ready);         /* boot is gone after this */
	if (ret == 0)
		worker_loop(w);
	worker_destroy(w);
	atomic_store_explicit(&w->exited, 1, memory_order_release);
	if (rf_worker_exit_fd >= 0) {
		uint64_t one = 1;

		if (write(rf_worker_exit_fd, &one, sizeof(one)) < 0) {
			/* cannot fail short of 2^64 exits */
		}
	}
	return NULL;
}

/* Zero the slot of worker <id> and open its wake eventfd. Every slot is
 * prepared before the first worker starts: from then on any thread may
 * wake any worker (reloads, cache hand-overs, the stop), and the eventfd
 * outlives the worker until worker_release(). Returns 0 or -errno. */
int worker_prepare(struct worker *w, int id)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	return w->wake_fd < 0 ? -errno : 0;
}

/* Close what worker_prepare() opened, once no thread can wake <w> any
 * more: after every worker has been joined. */
void worker_release(struct worker *w)
{
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
}

/* Start prepared worker <w> on its own thread with the given listening
 * sockets (one per [server] listen address; the worker owns them from now
 * on). Returns 0 once the worker is running, or the negative errno of its
 * initialisation. */
int worker_start(struct worker *w, struct runtime *rt,
		 const struct endpoint *eps, unsigned neps, int *listen_fds)
{
	struct worker_boot boot;
	int ret;

	w->rt = rt;
	w->cfg = rt->cfg;
	runtime_ref(rt);
	boot.w = w;
	boot.eps = eps;
	boot.neps = neps;
	boot.listen_fds = listen_fds;
	boot.ret = 0;
	sem_init(&boot.ready, 0, 0);
	ret = pthread_create(&w->thread, NULL, worker_main, &boot);
	if (ret) {
		sem_destroy(&boot.ready);
		return -ret;
	}
	while (sem_wait(&boot.ready) < 0 && errno == EINTR)
		;
	sem_destroy(&boot.ready);
	if (boot.ret < 0) {
		pthread_join(w->thread, NULL);
		return boot.ret;
	}
	return 0;
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter saturates only after 2^64 wakes */
	}
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

/* 1 once <w>'s thread has finished (worker_join() will not block), else 0. */
int worker_exited(struct worker *w)
{
	return atomic_load_explicit(&w->exited, memory_order_acquire);
}

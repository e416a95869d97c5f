/* queue.c - requests waiting for a server under max_conns (see queue.h):
 * per-worker priority lists through the connections themselves (no
 * allocation), the shared count that bounds them, the keys that order
 * them across workers, and the wake-up of the worker whose turn it is. */
#include <errno.h>
#include "common.h"
#include "queue.h"
#include "worker.h"

/* A waiting request's place, comparable across workers: priority in the
 * high half (biased so that unsigned order is signed order), then arrival
 * (earlier is larger). Larger goes first; 0 means "none waiting". */
static uint64_t queue_key(int32_t prio, uint64_t now_ms)
{
	return (uint64_t)((uint32_t)prio ^ 0x80000000u) << 32 |
	       (UINT32_MAX - (uint32_t)now_ms);
}

/* Priorities are clamped here so that no key can be 0. */
#define PRIO_LIMIT 1000000000

/* An optionally signed decimal integer, clamped to +-PRIO_LIMIT.
 * Returns 0 or -EINVAL. */
static int parse_prio(const char *p, uint32_t n, int32_t *out)
{
	uint32_t i = 0;
	int64_t v = 0;
	int neg = 0;

	if (n && (p[0] == '-' || p[0] == '+'))
		neg = p[i++] == '-';
	if (i == n || n - i > 10)
		return -EINVAL;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (p[i] - '0');
	}
	v = RF_MIN(v, PRIO_LIMIT);
	*out = (int32_t)(neg ? -v : v);
	return 0;
}

int32_t queue_priority(const struct upstream *up, const struct http_req *req,
		       uint32_t tier_prio)
{
	const char *name = up->conf->queue_priority_header;
	int32_t v;
	uint32_t i;

	for (i = 0; name && i < req->nhdrs; i++) {
		const struct http_hdr *h = &req->hdrs[i];

		if (rf_ieq(h->name, h->name_len, name) &&
		    parse_prio(h->value, h->value_len, &v) == 0)
			return v;
	}
	return (int32_t)RF_MIN(tier_prio, (uint32_t)PRIO_LIMIT);
}

int queue_behind(const struct conn *c)
{
	return !c->tried && atomic_load_explicit(&c->up->queued, memory_order_relaxed) != 0;
}

static struct wqueue *queue_of(const struct conn *c)
{
	return &c->s.w->queues[c->up->index];
}

/* Tell the other workers where this worker's best waiting request stands. */
static void queue_publish(struct worker *w, struct upstream *up, const struct wqueue *q)
{
	if ((uint32_t)w->id < RF_MAX_WORKERS)
		atomic_store_explicit(&up->qhead[w->id], q->head ? q->head->qkey : 0,
				      memory_order_relaxed);
}

/* Retry-After of a 503 from the queue: its timeout, in whole seconds. */
static uint32_t queue_retry_after(const struct upstream *up)
{
	return RF_MIN(RF_MAX((up->conf->queue_timeout_ms + 999) / 1000, 1u), 60u);
}

/* Sorted insert from the tail: most requests share a priority, so the
 * walk is usually empty and arrival order holds within a priority. */
static void queue_insert(struct wqueue *q, struct conn *c)
{
	struct conn *p = q->tail;

	while (p && p->qkey < c->qkey)
		p = p->qprev;
	c->qprev = p;
	c->qnext = p ? p->qnext : q->head;
	if (c->qnext)
		c->qnext->qprev = c;
	else
		q->tail = c;
	if (p)
		p->qnext = c;
	else
		q->head = c;
	q->len++;
}

void queue_wait(struct conn *c)
{
	struct worker *w = c->s.w;
	struct upstream *up = c->up;
	uint32_t size = up->conf->queue_size, n;

	if (c->state == CONN_ST_QUEUED)
		return;
	/* reserve a place in the shared bound first: queue_size is exact */
	n = atomic_load_explicit(&up->queued, memory_order_relaxed);
	do {
		if (n >= size) {
			atomic_fetch_add_explicit(&up->queue_rejected, 1, memory_order_relaxed);
			conn_fail_ex(c, 503, size ? "all servers are busy and the queue is full" :
				     "all servers are at max_conns", queue_retry_after(up));
			return;
		}
	} while (!atomic_compare_exchange_weak_explicit(&up->queued, &n, n + 1,
							memory_order_relaxed, memory_order_relaxed));
	c->qkey = queue_key(c->prio, w->wheel.now);
	queue_insert(queue_of(c), c);
	queue_publish(w, up, queue_of(c));
	w->nqueued++;
	conn_set_state(c, CONN_ST_QUEUED);
	timer_set(&w->wheel, &c->s.timer, up->conf->queue_timeout_ms);
}

void queue_leave(struct conn *c)
{
	struct worker *w = c->s.w;
	struct wqueue *q;

	if (c->state != CONN_ST_QUEUED)
		return;
	q = queue_of(c);
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		q->head = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		q->tail = c->qprev;
	c->qnext = c->qprev = NULL;
	q->len--;
	w->nqueued--;
	atomic_fetch_sub_explicit(&c->up->queued, 1, memory_order_relaxed);
	queue_publish(w, c->up, q);
	timer_cancel(&w->wheel, &c->s.timer);
	conn_set_state(c, CONN_ST_PROXY);
}

void queue_expire(struct conn *c)
{
	atomic_fetch_add_explicit(&c->up->queue_timeouts, 1, memory_order_relaxed);
	conn_fail_ex(c, 503, "timed out waiting for a free server", queue_retry_after(c->up));
}

/* Is a better request waiting on another worker? Then this worker leaves
 * the free slot to it (that worker was woken, or polls). */
static int queue_yield(const struct worker *w, const struct upstream *up, uint64_t key)
{
	uint32_t i, n = RF_MIN(rf_nworkers, (uint32_t)RF_MAX_WORKERS);

	if ((uint32_t)w->id >= RF_MAX_WORKERS)
		return 0;
	for (i = 0; i < n; i++)
		if (i != (uint32_t)w->id &&
		    atomic_load_explicit(&up->qhead[i], memory_order_relaxed) > key)
			return 1;
	return 0;
}

void queue_run(struct worker *w)
{
	uint32_t u;

	for (u = 0; u < w->rt->cfg->nupstreams && w->nqueued; u++) {
		struct wqueue *q = &w->queues[u];
		struct upstream *up = &w->rt->ups[u];
		struct conn *c;

		while ((c = q->head) && !queue_yield(w, up, c->qkey)) {
			conn_connect_backend(c);
			if (c->state == CONN_ST_QUEUED)
				break;          /* still no slot */
		}
	}
}

void queue_slot_freed(struct worker *w, struct upstream *up)
{
	uint32_t i, n = RF_MIN(rf_nworkers, (uint32_t)RF_MAX_WORKERS), best = UINT32_MAX;
	uint64_t k, bk = 0;

	for (i = 0; i < n; i++) {
		k = atomic_load_explicit(&up->qhead[i], memory_order_relaxed);
		if (k > bk) {
			bk = k;
			best = i;
		}
	}
	/* this worker's own queue runs at the end of its loop iteration */
	if (best != UINT32_MAX && best != (uint32_t)w->id)
		worker_wake(&rf_workers[best]);
}

void queue_fail_all(struct worker *w)
{
	uint32_t u;

	for (u = 0; u < w->rt->cfg->nupstreams && w->nqueued; u++)
		while (w->queues[u].head)
			conn_fail_ex(w->queues[u].head, 503, "configuration reloaded while waiting",
				     queue_retry_after(&w->rt->ups[u]));
}

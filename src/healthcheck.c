/* healthcheck.c - active health checks: connect, send a GET for the
 * upstream's health_path, read the status line, close. A 2xx or 3xx answer
 * within health_timeout is a pass; anything else is a failure reported to
 * the server's shared health word (health.c), which applies fall/rise. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "health.h"
#include "healthcheck.h"
#include "io.h"
#include "worker.h"

/* Checks of one worker that may be in flight at once (the rest wait a
 * moment): a large pool must not open hundreds of sockets in one tick. */
#define HC_MAX_PARALLEL 64
#define HC_RETRY_MS 50

enum hc_stage {
	HC_IDLE = 0,            /* waiting for the next interval */
	HC_CONNECT,
	HC_SEND,
	HC_RECV,
	HC_CLOSING,             /* close submitted; waiting for the last CQEs */
};

/* A check set of an older runtime, finishing its last I/O. */
struct hc_retired {
	struct hcheck *v;       /* owned */
	uint32_t n;
	struct runtime *rt;     /* counted in the worker's use of that runtime */
	struct hc_retired *next;
};

/* One server's check. Owner: the worker's hchecks array. */
struct hcheck {
	struct worker *w;
	struct server *srv;
	const struct rf_upstream_conf *uc;
	struct timer timer;     /* next run while idle, the timeout while running */
	int fd;
	uint8_t stage;          /* enum hc_stage */
	uint8_t inflight;       /* SQEs awaiting a CQE */
	uint16_t req_len;
	uint16_t got;
	char req[320];
	char buf[64];
} __attribute__((aligned(16)));

static void hc_on_timer(struct timer *t);

/* The user_data of the check's next operation, counted in flight. */
static uint64_t hc_op(struct hcheck *hc)
{
	hc->inflight++;
	return op_data(hc, OP_HCHECK);
}

static void hc_schedule(struct hcheck *hc, uint64_t ms)
{
	timer_set(&hc->w->wheel, &hc->timer, ms);
}

/* Report the result and close the socket; the next run is scheduled when
 * the last CQE has arrived. */
static void hc_finish(struct hcheck *hc, int ok)
{
	struct worker *w = hc->w;
	int cancel = hc->inflight != 0;

	timer_cancel(&w->wheel, &hc->timer);
	if (!w->stopping && hc->uc)
		health_check_result(hc->srv, ok, w->wheel.now);
	hc->stage = HC_CLOSING;
	io_close(w, hc->fd, cancel, hc_op(hc));
	hc->fd = -1;
	w->hc_running--;
}

static void hc_start(struct hcheck *hc)
{
	struct worker *w = hc->w;
	const struct rf_addr *a = &hc->srv->conf->addr;
	int one = 1;

	if (w->hc_running >= HC_MAX_PARALLEL) {
		hc_schedule(hc, HC_RETRY_MS);
		return;
	}
	hc->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | io_sock_flags(w), 0);
	if (hc->fd < 0) {
		/* Out of descriptors says nothing about the server: try later. */
		hc_schedule(hc, hc->uc->health_interval_ms);
		return;
	}
	setsockopt(hc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	w->hc_running++;
	hc->stage = HC_CONNECT;
	hc->got = 0;
	io_connect(w, hc->fd, (const struct sockaddr *)&a->ss, a->len, hc_op(hc));
	hc_schedule(hc, hc->uc->health_timeout_ms);
}

/* "HTTP/1.x NNN": a pass for 2xx and 3xx. Returns 1, 0, or -1 when more
 * bytes are needed. */
static int hc_status_ok(const char *p, size_t n)
{
	if (n < 12)
		return -1;
	if (memcmp(p, "HTTP/1.", 7) || p[8] != ' ' || p[9] < '1' || p[9] > '5')
		return 0;
	return p[9] == '2' || p[9] == '3';
}

void hcheck_on_cqe(void *obj, struct io_uring_cqe *cqe)
{
	struct hcheck *hc = obj;
	int res = cqe->res, ok;

	hc->inflight--;
	if (hc->stage == HC_CLOSING) {
		if (!hc->inflight) {
			hc->stage = HC_IDLE;
			if (!hc->w->stopping && hc->uc)
				hc_schedule(hc, hc->uc->health_interval_ms);
		}
		return;
	}
	if (res < 0) {
		hc_finish(hc, 0);
		return;
	}
	switch (hc->stage) {
	case HC_CONNECT:
		hc->stage = HC_SEND;
		io_send(hc->w, hc->fd, hc->req, hc->req_len, hc_op(hc));
		break;
	case HC_SEND:
		if ((uint16_t)res != hc->req_len) {
			hc_finish(hc, 0);
			break;
		}
		hc->stage = HC_RECV;
		io_recv(hc->w, hc->fd, hc->buf, sizeof(hc->buf), hc_op(hc));
		break;
	case HC_RECV:
		hc->got += (uint16_t)res;
		ok = res ? hc_status_ok(hc->buf, hc->got) : 0;
		if (ok >= 0 || hc->got >= sizeof(hc->buf)) {
			hc_finish(hc, ok > 0);
			break;
		}
		io_recv(hc->w, hc->fd, hc->buf + hc->got, sizeof(hc->buf) - hc->got,
			hc_op(hc));
		break;
	default:
		break;
	}
}

static void hc_on_timer(struct timer *t)
{
	struct hcheck *hc = container_of(t, struct hcheck, timer);

	if (hc->stage == HC_IDLE)
		hc_start(hc);
	else if (hc->stage != HC_CLOSING)
		hc_finish(hc, 0);       /* health_timeout */
}

int hcheck_init(struct worker *w, uint32_t nworkers)
{
	const struct runtime *rt = w->rt;
	uint32_t i, j, n = 0;

	for (i = 0; i < rt->cfg->nupstreams; i++) {
		const struct upstream *up = &rt->ups[i];

		if (!up->conf->health_path)
			continue;
		for (j = 0; j < up->nservers; j++)
			n += up->servers[j].id % nworkers == (uint32_t)w->id;
	}
	if (!n)
		return 0;
	w->hchecks = aligned_alloc(16, n * sizeof(struct hcheck));
	if (!w->hchecks)
		return -ENOMEM;
	memset(w->hchecks, 0, n * sizeof(struct hcheck));
	for (i = 0; i < rt->cfg->nupstreams; i++) {
		struct upstream *up = &rt->ups[i];

		if (!up->conf->health_path)
			continue;
		for (j = 0; j < up->nservers; j++) {
			struct hcheck *hc = &w->hchecks[w->nhchecks];
			int len;

			if (up->servers[j].id % nworkers != (uint32_t)w->id)
				continue;
			hc->w = w;
			hc->srv = &up->servers[j];
			hc->uc = up->conf;
			hc->fd = -1;
			len = snprintf(hc->req, sizeof(hc->req),
				       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ringfront-health\r\n"
				       "Connection: close\r\n\r\n",
				       up->conf->health_path, hc->srv->conf->addr.text);
			if (len <= 0 || (size_t)len >= sizeof(hc->req))
				continue;       /* a path this long is not a health path */
			hc->req_len = (uint16_t)len;
			timer_init(&hc->timer, hc_on_timer);
			/* spread the first round over a tenth of the interval */
			hc_schedule(hc, 1 + (w->nhchecks * 7) % (up->conf->health_interval_ms / 10 + 1));
			w->nhchecks++;
		}
	}
	return 0;
}

static void set_stop(struct worker *w, struct hcheck *v, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct hcheck *hc = &v[i];

		timer_cancel(&w->wheel, &hc->timer);
		/* a retired check reports nothing: its server is the old one */
		hc->uc = NULL;
		if (hc->stage != HC_IDLE && hc->stage != HC_CLOSING)
			hc_finish(hc, 0);
	}
}

static uint32_t set_inflight(const struct hcheck *v, uint32_t n)
{
	uint32_t i, busy = 0;

	for (i = 0; i < n; i++)
		busy += v[i].stage != HC_IDLE;
	return busy;
}

void hcheck_stop(struct worker *w)
{
	set_stop(w, w->hchecks, w->nhchecks);
}

uint32_t hcheck_inflight(const struct worker *w)
{
	return set_inflight(w->hchecks, w->nhchecks);
}

void hcheck_retire(struct worker *w)
{
	struct hc_retired *r;

	if (!w->nhchecks)
		return;
	set_stop(w, w->hchecks, w->nhchecks);
	if (!set_inflight(w->hchecks, w->nhchecks) || !(r = malloc(sizeof(*r)))) {
		/* nothing in flight (or no memory to wait: the CQEs of a freed
		 * set would be lost, so this only happens when none is owed) */
		rf_free(&w->hchecks);
		w->nhchecks = 0;
		return;
	}
	r->v = w->hchecks;
	r->n = w->nhchecks;
	r->rt = w->rt;
	w->rt_inflight++;
	r->next = w->hc_retired;
	w->hc_retired = r;
	w->hchecks = NULL;
	w->nhchecks = 0;
}

void hcheck_reap(struct worker *w)
{
	struct hc_retired **pp = &w->hc_retired, *r;

	while ((r = *pp) != NULL) {
		if (set_inflight(r->v, r->n)) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		worker_rt_release(w, r->rt);
		free(r->v);
		free(r);
	}
}

void hcheck_free(struct worker *w)
{
	rf_free(&w->hchecks);
	w->nhchecks = 0;
}

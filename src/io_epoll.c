/* io_epoll.c - the epoll event backend: for runtimes that block io_uring
 * (seccomp) or kernels without it. It keeps the io_uring contract the
 * workers are written against: an operation is started now and completes
 * later with a CQE - user_data, res, and IORING_CQE_F_MORE /
 * IORING_CQE_F_BUFFER for multishot accept and recv, whose buffers come
 * from the worker's buffer ring exactly as the kernel would pick them.
 *
 * Each descriptor has at most one read-side operation (accept, recv,
 * read) and one write-side operation (send, sendmsg, connect) armed; its
 * epoll interest (level-triggered) is exactly what is armed, and changes
 * are applied in one pass before epoll_wait. Sends and connects are tried
 * at once; readiness runs the others. Completions are queued and handed
 * to the worker as one batch per loop; those produced while a batch is
 * dispatched go in the next one, as SQEs would wait for the next submit. */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "common.h"
#include "io.h"
#include "log.h"

#define EP_EVENTS 256           /* readiness events taken per epoll_wait */
#define EP_ACCEPTS 16           /* connections accepted per readiness event */
#define EP_RECVS 4              /* full buffers received per readiness event */
#define EP_FDS_MIN 1024
#define EP_CQ_MIN 1024

enum ep_rd {
	EP_RD_NONE = 0,
	EP_RD_ACCEPT,           /* multishot accept */
	EP_RD_RECV_MULTI,       /* multishot recv into the buffer ring */
	EP_RD_RECV,             /* one recv into rd_buf */
	EP_RD_READ,             /* one read into rd_buf */
};

enum ep_wr {
	EP_WR_NONE = 0,
	EP_WR_SEND,             /* wr_buf, wr_len */
	EP_WR_SENDMSG,          /* wr_buf is the struct msghdr */
	EP_WR_CONNECT,          /* in progress: SO_ERROR tells the result */
};

/* What is armed on one descriptor. Owner: io_ep.fds, indexed by fd. */
struct ep_fd {
	uint8_t rd;             /* enum ep_rd */
	uint8_t wr;             /* enum ep_wr */
	uint8_t dirty;          /* on the list of interest changes */
	uint32_t events;        /* interest registered with epoll; 0 = not in the set */
	uint32_t rd_len, wr_len;
	uint64_t rd_ud, wr_ud;
	void *rd_buf;
	const void *wr_buf;
};

/* A queue of synthesised completions. */
struct ep_cq {
	struct io_uring_cqe *v;  /* owned, cap entries */
	uint32_t n, cap;
};

struct io_ep {
	int epfd;
	struct bufring *bufs;   /* the worker's, consumed here as the kernel would */
	struct ep_fd *fds;      /* owned, nfds entries */
	uint32_t nfds;
	int *dirty;             /* owned, nfds entries: descriptors to re-register */
	uint32_t ndirty;
	struct ep_cq cq[2];     /* cq[cur] collects, the other is being dispatched */
	unsigned cur;
	struct epoll_event evs[EP_EVENTS];
};

/* Queue a completion. The queue grows like io_uring's overflow list; with
 * no memory left at all a completion cannot be dropped without hanging
 * its owner, so that is fatal. */
static void ep_post(struct io_ep *ep, uint64_t ud, int32_t res, uint32_t flags)
{
	struct ep_cq *q = &ep->cq[ep->cur];
	struct io_uring_cqe *cqe;

	if (!ud)
		return;
	if (unlikely(q->n == q->cap)) {
		void *nv = realloc(q->v, (size_t)q->cap * 2 * sizeof(*q->v));

		if (!nv) {
			log_error("msg=\"out of memory queueing an epoll completion\"");
			abort();
		}
		q->v = nv;
		q->cap *= 2;
	}
	cqe = &q->v[q->n++];
	cqe->user_data = ud;
	cqe->res = res;
	cqe->flags = flags;
}

/* The record of <fd>, growing the table to hold it; NULL without memory. */
static struct ep_fd *ep_fd(struct io_ep *ep, int fd)
{
	uint32_t n = ep->nfds;
	struct ep_fd *nf;
	int *nd;

	if (likely((uint32_t)fd < n))
		return &ep->fds[fd];
	if (fd < 0)
		return NULL;
	while (n <= (uint32_t)fd)
		n *= 2;
	nf = realloc(ep->fds, (size_t)n * sizeof(*nf));
	if (!nf)
		return NULL;
	ep->fds = nf;
	memset(nf + ep->nfds, 0, (size_t)(n - ep->nfds) * sizeof(*nf));
	nd = realloc(ep->dirty, (size_t)n * sizeof(*nd));
	if (!nd)
		return NULL;    /* the larger fds table stays; nfds says what is valid */
	ep->dirty = nd;
	ep->nfds = n;
	return &ep->fds[fd];
}

static void ep_mark(struct io_ep *ep, int fd, struct ep_fd *f)
{
	if (!f->dirty) {
		f->dirty = 1;
		ep->dirty[ep->ndirty++] = fd;
	}
}

static uint32_t ep_want(const struct ep_fd *f)
{
	return (f->rd ? EPOLLIN : 0) | (f->wr ? EPOLLOUT : 0);
}

/* Make the kernel's interest in each changed descriptor match what is
 * armed on it. A descriptor with nothing armed leaves the set: epoll
 * reports hang-ups whatever the interest, and level-triggered would spin. */
static void ep_apply(struct io_ep *ep)
{
	uint32_t i;

	for (i = 0; i < ep->ndirty; i++) {
		int fd = ep->dirty[i];
		struct ep_fd *f = &ep->fds[fd];
		uint32_t want = ep_want(f);
		struct epoll_event ev;
		int op, ret;

		f->dirty = 0;
		if (want == f->events)
			continue;
		op = !f->events ? EPOLL_CTL_ADD : !want ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
		ev.events = want;
		ev.data.u64 = (uint64_t)fd;
		ret = epoll_ctl(ep->epfd, op, fd, &ev);
		/* a descriptor closed behind our back left the set by itself */
		if (ret < 0 && errno == ENOENT && op == EPOLL_CTL_MOD)
			ret = epoll_ctl(ep->epfd, op = EPOLL_CTL_ADD, fd, &ev);
		if (ret < 0 && errno == EEXIST && op == EPOLL_CTL_ADD)
			ret = epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev);
		if (ret < 0 && op == EPOLL_CTL_DEL)
			ret = 0;
		if (ret < 0) {
			/* out of memory or max_user_watches: fail what waits */
			int err = -errno;

			if (f->rd)
				ep_post(ep, f->rd_ud, err, 0);
			if (f->wr)
				ep_post(ep, f->wr_ud, err, 0);
			f->rd = f->wr = 0;
			want = 0;
			if (f->events)
				epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, &ev);
		}
		f->events = want;
	}
	ep->ndirty = 0;
}

int io_ep_create(struct io_ep **out, struct bufring *bufs)
{
	struct io_ep *ep = calloc(1, sizeof(*ep));
	unsigned i;

	*out = NULL;
	if (!ep)
		return -ENOMEM;
	ep->bufs = bufs;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0) {
		int err = -errno;

		free(ep);
		return err;
	}
	ep->nfds = EP_FDS_MIN;
	ep->fds = calloc(ep->nfds, sizeof(*ep->fds));
	ep->dirty = calloc(ep->nfds, sizeof(*ep->dirty));
	for (i = 0; i < 2; i++) {
		ep->cq[i].cap = EP_CQ_MIN;
		ep->cq[i].v = calloc(EP_CQ_MIN, sizeof(*ep->cq[i].v));
	}
	if (!ep->fds || !ep->dirty || !ep->cq[0].v || !ep->cq[1].v) {
		io_ep_destroy(ep);
		return -ENOMEM;
	}
	*out = ep;
	return 0;
}

void io_ep_destroy(struct io_ep *ep)
{
	if (!ep)
		return;
	if (ep->epfd >= 0)
		close(ep->epfd);
	free(ep->fds);
	free(ep->dirty);
	free(ep->cq[0].v);
	free(ep->cq[1].v);
	free(ep);
}

/* The entry of <fd> for arming operation <ud>, or NULL with <ud> failed:
 * -EBADF, or -ENOMEM for a descriptor the table cannot hold. */
static struct ep_fd *ep_fd_for(struct io_ep *ep, int fd, uint64_t ud)
{
	struct ep_fd *f = ep_fd(ep, fd);

	if (!f)
		ep_post(ep, ud, fd < 0 ? -EBADF : -ENOMEM, 0);
	return f;
}

/* Arm the read side of <fd>. */
static void ep_arm_rd(struct io_ep *ep, int fd, enum ep_rd kind, void *buf,
		      uint32_t len, uint64_t ud)
{
	struct ep_fd *f = ep_fd_for(ep, fd, ud);

	if (!f)
		return;
	f->rd = (uint8_t)kind;
	f->rd_ud = ud;
	f->rd_buf = buf;
	f->rd_len = len;
	ep_mark(ep, fd, f);
}

/* Arm the write side of <fd>. */
static void ep_arm_wr(struct io_ep *ep, int fd, enum ep_wr kind, const void *buf,
		      uint32_t len, uint64_t ud)
{
	struct ep_fd *f = ep_fd_for(ep, fd, ud);

	if (!f)
		return;
	f->wr = (uint8_t)kind;
	f->wr_ud = ud;
	f->wr_buf = buf;
	f->wr_len = len;
	ep_mark(ep, fd, f);
}

static void ep_disarm_rd(struct io_ep *ep, int fd, struct ep_fd *f)
{
	f->rd = EP_RD_NONE;
	ep_mark(ep, fd, f);
}

static void ep_disarm_wr(struct io_ep *ep, int fd, struct ep_fd *f)
{
	f->wr = EP_WR_NONE;
	ep_mark(ep, fd, f);
}

void io_ep_accept_multishot(struct io_ep *ep, int fd, uint64_t ud)
{
	ep_arm_rd(ep, fd, EP_RD_ACCEPT, NULL, 0, ud);
}

void io_ep_read(struct io_ep *ep, int fd, void *buf, uint32_t len, uint64_t ud)
{
	ep_arm_rd(ep, fd, EP_RD_READ, buf, len, ud);
}

void io_ep_recv(struct io_ep *ep, int fd, void *buf, uint32_t len, uint64_t ud)
{
	ep_arm_rd(ep, fd, EP_RD_RECV, buf, len, ud);
}

void io_ep_recv_multishot(struct io_ep *ep, int fd, uint64_t ud)
{
	ep_arm_rd(ep, fd, EP_RD_RECV_MULTI, NULL, 0, ud);
}

/* Sends are tried at once: on a socket with room (nearly always) the
 * completion is queued without a trip through epoll. */
void io_ep_send(struct io_ep *ep, int fd, const void *p, uint32_t len, uint64_t ud)
{
	ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n >= 0)
		ep_post(ep, ud, (int32_t)n, 0);
	else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		ep_arm_wr(ep, fd, EP_WR_SEND, p, len, ud);
	else
		ep_post(ep, ud, -errno, 0);
}

void io_ep_sendmsg(struct io_ep *ep, int fd, const struct msghdr *msg, uint64_t ud)
{
	ssize_t n = sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n >= 0)
		ep_post(ep, ud, (int32_t)n, 0);
	else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		ep_arm_wr(ep, fd, EP_WR_SENDMSG, msg, 0, ud);
	else
		ep_post(ep, ud, -errno, 0);
}

void io_ep_connect(struct io_ep *ep, int fd, const struct sockaddr *sa,
		   socklen_t len, uint64_t ud)
{
	if (connect(fd, sa, len) == 0)
		ep_post(ep, ud, 0, 0);
	else if (errno == EINPROGRESS || errno == EINTR)
		ep_arm_wr(ep, fd, EP_WR_CONNECT, NULL, 0, ud);
	else
		ep_post(ep, ud, -errno, 0);
}

void io_ep_cancel(struct io_ep *ep, int fd, uint64_t ud)
{
	struct ep_fd *f;

	if (fd < 0 || (uint32_t)fd >= ep->nfds)
		return;
	f = &ep->fds[fd];
	if (f->rd && f->rd_ud == ud) {
		ep_disarm_rd(ep, fd, f);
		ep_post(ep, ud, -ECANCELED, 0);
	}
	if (f->wr && f->wr_ud == ud) {
		ep_disarm_wr(ep, fd, f);
		ep_post(ep, ud, -ECANCELED, 0);
	}
}

/* Cancel what is armed on <fd>, then close it. Closing takes it out of
 * the epoll set; the record is cleared for the next descriptor with this
 * number (a pending interest change on it then finds nothing to do). */
void io_ep_close(struct io_ep *ep, int fd, uint64_t ud)
{
	int ret;

	if (fd >= 0 && (uint32_t)fd < ep->nfds) {
		struct ep_fd *f = &ep->fds[fd];

		if (f->rd)
			ep_post(ep, f->rd_ud, -ECANCELED, 0);
		if (f->wr)
			ep_post(ep, f->wr_ud, -ECANCELED, 0);
		f->rd = f->wr = 0;
		f->events = 0;
	}
	ret = close(fd);
	ep_post(ep, ud, ret < 0 ? -errno : 0, 0);
}

static int ep_again(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* <fd> is readable (or hung up): run its read-side operation. */
static void ep_on_readable(struct io_ep *ep, int fd, struct ep_fd *f)
{
	struct bufring *b = ep->bufs;
	uint64_t ud = f->rd_ud;
	ssize_t n;
	int i, bid;

	switch (f->rd) {
	case EP_RD_ACCEPT:
		for (i = 0; i < EP_ACCEPTS; i++) {
			int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

			if (cfd >= 0) {
				ep_post(ep, ud, cfd, IORING_CQE_F_MORE);
				continue;
			}
			if (ep_again(errno))
				break;
			if (errno == ECONNABORTED)
				continue;
			/* like io_uring, an error ends the multishot accept */
			ep_disarm_rd(ep, fd, f);
			ep_post(ep, ud, -errno, 0);
			break;
		}
		return;
	case EP_RD_RECV_MULTI:
		for (i = 0; i < EP_RECVS; i++) {
			bid = bufring_peek(b);
			if (bid < 0) {
				/* data waits and no buffer: the receive ends, the
				 * worker re-arms it once buffers come back */
				ep_disarm_rd(ep, fd, f);
				ep_post(ep, ud, -ENOBUFS, 0);
				return;
			}
			n = recv(fd, bufring_ptr(b, (uint32_t)bid), b->size, MSG_DONTWAIT);
			if (n > 0) {
				bufring_consume(b);
				ep_post(ep, ud, (int32_t)n, IORING_CQE_F_MORE | IORING_CQE_F_BUFFER |
					(uint32_t)bid << IORING_CQE_BUFFER_SHIFT);
				if ((size_t)n < b->size)
					return;
				continue;
			}
			if (n < 0 && ep_again(errno))
				return;
			ep_disarm_rd(ep, fd, f);
			ep_post(ep, ud, n == 0 ? 0 : -errno, 0);
			return;
		}
		return;
	case EP_RD_RECV:
	case EP_RD_READ:
		if (f->rd == EP_RD_RECV)
			n = recv(fd, f->rd_buf, f->rd_len, MSG_DONTWAIT);
		else
			n = read(fd, f->rd_buf, f->rd_len);
		if (n < 0 && ep_again(errno))
			return;
		ep_disarm_rd(ep, fd, f);
		ep_post(ep, ud, n < 0 ? -errno : (int32_t)n, 0);
		return;
	default:
		return;
	}
}

/* <fd> is writable (or failed): retry its write-side operation. */
static void ep_on_writable(struct io_ep *ep, int fd, struct ep_fd *f)
{
	uint64_t ud = f->wr_ud;
	socklen_t sl;
	ssize_t n;
	int err;

	switch (f->wr) {
	case EP_WR_SEND:
	case EP_WR_SENDMSG:
		if (f->wr == EP_WR_SEND)
			n = send(fd, f->wr_buf, f->wr_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		else
			n = sendmsg(fd, f->wr_buf, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && ep_again(errno))
			return;
		ep_disarm_wr(ep, fd, f);
		ep_post(ep, ud, n < 0 ? -errno : (int32_t)n, 0);
		return;
	case EP_WR_CONNECT:
		err = 0;
		sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
		ep_disarm_wr(ep, fd, f);
		ep_post(ep, ud, -err, 0);
		return;
	default:
		return;
	}
}

/* Wait for readiness (not at all when completions are queued already, at
 * most <timeout_ms>, -1 = no limit), run what became possible, and hand
 * every queued completion over in *cqes: valid until the next call, which
 * queues new ones elsewhere. Returns 0 or the epoll_wait error. */
int io_ep_wait(struct io_ep *ep, int64_t timeout_ms, struct io_uring_cqe **cqes,
	       unsigned *n)
{
	struct ep_cq *q;
	int i, nev, tmo;

	ep_apply(ep);
	tmo = ep->cq[ep->cur].n ? 0 : timeout_ms < 0 ? -1 :
		timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms;
	nev = epoll_wait(ep->epfd, ep->evs, EP_EVENTS, tmo);
	if (nev < 0) {
		if (errno != EINTR)
			return -errno;
		nev = 0;
	}
	for (i = 0; i < nev; i++) {
		uint32_t e = ep->evs[i].events;
		int fd = (int)ep->evs[i].data.u64;
		struct ep_fd *f = &ep->fds[fd];

		if (f->rd && (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
			ep_on_readable(ep, fd, f);
		if (f->wr && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			ep_on_writable(ep, fd, f);
	}
	q = &ep->cq[ep->cur];
	*cqes = q->v;
	*n = q->n;
	ep->cur ^= 1;
	ep->cq[ep->cur].n = 0;
	return 0;
}

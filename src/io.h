/* io.h - the handful of I/O operations a worker issues, on one of two
 * event backends chosen once at start-up ([server] io):
 *  - io_uring (the default): each operation is an SQE, submitted with all
 *    the others in the loop's one io_uring_enter;
 *  - epoll (io_epoll.c): readiness plus non-blocking system calls, turned
 *    into the very same completions - user_data, res and the flags
 *    IORING_CQE_F_MORE and IORING_CQE_F_BUFFER with a buffer id from the
 *    same buffer ring - which worker.c feeds to the same dispatch().
 * So the connection and link state machines never know which one runs.
 * Each operation is an inline branch on the worker's w->ep (NULL on
 * io_uring): the io_uring path is the code it always was. */
#ifndef RF_IO_H
#define RF_IO_H

#include <stdint.h>
#include <sys/socket.h>
#include "common.h"
#include "worker.h"

/* io.c: the backend every worker uses (enum rf_io, never RF_IO_AUTO once
 * chosen), and its name for logs and the admin API. */
extern uint32_t rf_io_backend;
const char *io_backend_name(uint32_t io);

/* Decide the backend for [server] io = <want> (enum rf_io) before the
 * workers start: auto takes io_uring when this process may create a ring,
 * and falls back to epoll with one warning when io_uring_setup fails with
 * EPERM, EACCES or ENOSYS (seccomp, kernel.io_uring_disabled, old or
 * stripped kernels). <dropped> says the privileges were just dropped, for
 * the hint. Returns 0, or the negative errno of io_uring_setup when
 * io = uring (or auto, for other errors) cannot run - logged. */
int io_choose(uint32_t want, int dropped);

/* io_epoll.c: the epoll backend of one worker. Descriptors it is given
 * must be non-blocking for connect, accept and read (recv and send pass
 * MSG_DONTWAIT); user_data 0 (OP_IGNORE) gets no completion. */
struct io_ep;
int io_ep_create(struct io_ep **out, struct bufring *bufs);
void io_ep_destroy(struct io_ep *ep);
int io_ep_wait(struct io_ep *ep, int64_t timeout_ms, struct io_uring_cqe **cqes,
	       unsigned *n);
void io_ep_accept_multishot(struct io_ep *ep, int fd, uint64_t ud);
void io_ep_read(struct io_ep *ep, int fd, void *buf, uint32_t len, uint64_t ud);
void io_ep_recv(struct io_ep *ep, int fd, void *buf, uint32_t len, uint64_t ud);
void io_ep_recv_multishot(struct io_ep *ep, int fd, uint64_t ud);
void io_ep_send(struct io_ep *ep, int fd, const void *p, uint32_t len, uint64_t ud);
void io_ep_sendmsg(struct io_ep *ep, int fd, const struct msghdr *msg, uint64_t ud);
void io_ep_connect(struct io_ep *ep, int fd, const struct sockaddr *sa,
		   socklen_t len, uint64_t ud);
void io_ep_cancel(struct io_ep *ep, int fd, uint64_t ud);
void io_ep_close(struct io_ep *ep, int fd, uint64_t ud);

/* socket(2) type flags for the sockets a worker creates itself. */
static inline int io_sock_flags(const struct worker *w)
{
	return unlikely(w->ep != NULL) ? SOCK_NONBLOCK : 0;
}

/* Multishot accept: one completion per connection (res = the new fd,
 * non-blocking on epoll), F_MORE while it stays armed. */
static inline void io_accept_multishot(struct worker *w, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_accept_multishot(w->ep, fd, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud);
}

/* One read(2) of <len> bytes into <buf> (the wake eventfd). */
static inline void io_read(struct worker *w, int fd, void *buf, uint32_t len,
			   uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_read(w->ep, fd, buf, len, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
}

/* One recv(2) into the caller's <buf>. */
static inline void io_recv(struct worker *w, int fd, void *buf, uint32_t len,
			   uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_recv(w->ep, fd, buf, len, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
}

/* Multishot recv into buffers of the worker's buffer ring: each
 * completion carries F_BUFFER and the buffer id; F_MORE while armed. */
static inline void io_recv_multishot(struct worker *w, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_recv_multishot(w->ep, fd, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = w->bufs.bgid;
	io_uring_sqe_set_data64(sqe, ud);
}

/* One send (MSG_NOSIGNAL); the completion may report a short count. */
static inline void io_send(struct worker *w, int fd, const void *p, uint32_t len,
			   uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_send(w->ep, fd, p, len, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_send(sqe, fd, p, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
}

/* One sendmsg (MSG_NOSIGNAL); <msg> and its iovecs stay put until the
 * completion. */
static inline void io_sendmsg(struct worker *w, int fd, const struct msghdr *msg,
			      uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_sendmsg(w->ep, fd, msg, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
}

/* connect(2); <sa> stays put until the completion (res 0 or -errno). */
static inline void io_connect(struct worker *w, int fd, const struct sockaddr *sa,
			      socklen_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_connect(w->ep, fd, sa, len, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_connect(sqe, fd, sa, len);
	io_uring_sqe_set_data64(sqe, ud);
}

/* Cancel the operation <ud> on <fd> (a multishot recv paused by flow
 * control): it completes with -ECANCELED, unless it already ended. */
static inline void io_cancel(struct worker *w, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_cancel(w->ep, fd, ud);
		return;
	}
	sqe = worker_sqe(w);
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, OP_IGNORE);
}

/* Close <fd>; with <cancel>, every operation pending on it is cancelled
 * first (each completes, -ECANCELED when it had not ended). The close
 * completes with <ud>. On epoll pending operations are always cancelled. */
static inline void io_close(struct worker *w, int fd, int cancel, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (unlikely(w->ep != NULL)) {
		io_ep_close(w->ep, fd, ud);
		return;
	}
	if (cancel) {
		sqe = worker_sqe(w);
		io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, OP_IGNORE);
		sqe->flags |= IOSQE_IO_HARDLINK;
	}
	sqe = worker_sqe(w);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, ud);
}

#endif

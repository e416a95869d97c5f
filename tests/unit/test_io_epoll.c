/* test_io_epoll.c - the epoll backend on real sockets: each operation
 * completes the way io_uring completes it (user_data, res, F_MORE,
 * F_BUFFER and a buffer id from the buffer ring), ENOBUFS ends a multishot
 * receive until buffers come back, cancel and close complete what was
 * armed, and completions queued while a batch is handled come in the next
 * batch without waiting. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "test.h"
#include "common.h"
#include "io.h"

#define BUFSZ 4096
#define UD(n) ((uint64_t)(n) << 4 | OP_RECV)

static struct bufring bufs;
static struct io_ep *ep;
static struct io_uring_cqe got[64];
static unsigned ngot;

static void setup(uint32_t nbufs)
{
	CHECK_INT(bufring_init(&bufs, NULL, nbufs, BUFSZ, 0), 0);
	CHECK_INT(io_ep_create(&ep, &bufs), 0);
}

static void teardown(void)
{
	io_ep_destroy(ep);
	bufring_destroy(&bufs, NULL);
}

/* One io_ep_wait; the batch is copied to got[]. */
static void wait_batch(int timeout_ms)
{
	struct io_uring_cqe *c;
	unsigned n, i;

	CHECK_INT(io_ep_wait(ep, timeout_ms, &c, &n), 0);
	ngot = 0;
	for (i = 0; i < n && i < ARRAY_SIZE(got); i++)
		got[ngot++] = c[i];
}

static const struct io_uring_cqe *find(uint64_t ud)
{
	unsigned i;

	for (i = 0; i < ngot; i++)
		if (got[i].user_data == ud)
			return &got[i];
	return NULL;
}

static void nonblock_pair(int sv[2])
{
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_recv_multishot_buffers_and_eof(void)
{
	const struct io_uring_cqe *c;
	int sv[2];

	setup(8);
	nonblock_pair(sv);
	io_ep_recv_multishot(ep, sv[0], UD(1));
	wait_batch(0);
	CHECK_INT(ngot, 0);
	CHECK_INT(write(sv[1], "hello", 5), 5);
	wait_batch(1000);
	CHECK_INT(ngot, 1);
	c = find(UD(1));
	CHECK(c != NULL);
	if (c) {
		uint32_t bid = c->flags >> IORING_CQE_BUFFER_SHIFT;

		CHECK_INT(c->res, 5);
		CHECK(c->flags & IORING_CQE_F_MORE);
		CHECK(c->flags & IORING_CQE_F_BUFFER);
		CHECK(bid < 8);
		CHECK_MEM(bufring_ptr(&bufs, bid), 5, "hello");
	}
	/* the next one goes into the next buffer of the ring */
	CHECK_INT(write(sv[1], "world", 5), 5);
	wait_batch(1000);
	c = find(UD(1));
	CHECK(c && c->res == 5 && (c->flags >> IORING_CQE_BUFFER_SHIFT) == 1);
	shutdown(sv[1], SHUT_WR);
	wait_batch(1000);
	c = find(UD(1));
	CHECK(c && c->res == 0 && !(c->flags & IORING_CQE_F_MORE));
	/* ended: nothing more, and nothing spins */
	wait_batch(20);
	CHECK_INT(ngot, 0);
	close(sv[0]);
	close(sv[1]);
	teardown();
}

static void test_enobufs_then_rearm(void)
{
	const struct io_uring_cqe *c;
	static char big[BUFSZ * 4];
	int sv[2], i, more = 0;

	setup(4);
	nonblock_pair(sv);
	memset(big, 'x', sizeof(big));
	CHECK_INT(write(sv[1], big, sizeof(big)), (int)sizeof(big));
	CHECK_INT(write(sv[1], "tail", 4), 4);
	io_ep_recv_multishot(ep, sv[0], UD(2));
	/* four full buffers, then -ENOBUFS without F_MORE */
	for (i = 0; i < 4; i++) {
		wait_batch(1000);
		for (unsigned k = 0; k < ngot; k++) {
			if (got[k].res > 0) {
				CHECK_INT(got[k].res, BUFSZ);
				bufring_take(&bufs, got[k].flags >> IORING_CQE_BUFFER_SHIFT);
				more++;
			} else {
				CHECK_INT(got[k].res, -ENOBUFS);
				CHECK(!(got[k].flags & IORING_CQE_F_MORE));
				more += 100;
			}
		}
		if (more >= 100)
			break;
	}
	CHECK_INT(more, 104);
	CHECK_INT(bufs.avail, 0);
	/* a buffer comes back and is published: the re-armed receive gets the rest */
	bufring_unref(&bufs, 2);
	bufring_commit(&bufs);
	io_ep_recv_multishot(ep, sv[0], UD(2));
	wait_batch(1000);
	c = find(UD(2));
	CHECK(c && c->res == 4 && (c->flags >> IORING_CQE_BUFFER_SHIFT) == 2);
	if (c)
		CHECK_MEM(bufring_ptr(&bufs, 2), 4, "tail");
	close(sv[0]);
	close(sv[1]);
	teardown();
}

static void test_cancel_and_close(void)
{
	const struct io_uring_cqe *c;
	int sv[2];

	setup(8);
	nonblock_pair(sv);
	io_ep_recv_multishot(ep, sv[0], UD(3));
	io_ep_cancel(ep, sv[0], UD(3));
	io_ep_cancel(ep, sv[0], UD(3));        /* ended already: nothing */
	CHECK_INT(write(sv[1], "late", 4), 4);
	wait_batch(50);
	CHECK_INT(ngot, 1);
	c = find(UD(3));
	CHECK(c && c->res == -ECANCELED && !(c->flags & IORING_CQE_F_MORE));
	/* close cancels what is armed, then completes itself */
	io_ep_recv_multishot(ep, sv[0], UD(4));
	io_ep_close(ep, sv[0], UD(5));
	wait_batch(50);
	CHECK_INT(ngot, 2);
	c = find(UD(4));
	CHECK(c && c->res == -ECANCELED);
	c = find(UD(5));
	CHECK(c && c->res == 0);
	/* OP_IGNORE (0) gets no completion */
	io_ep_close(ep, sv[1], 0);
	wait_batch(20);
	CHECK_INT(ngot, 0);
	teardown();
}

static void test_send_full_then_writable(void)
{
	static char blob[1 << 20];
	const struct io_uring_cqe *c;
	int sv[2], sent = 0, n;
	char sink[65536];

	setup(8);
	nonblock_pair(sv);
	/* fill the socket: sends complete at once, short at the end */
	for (;;) {
		io_ep_send(ep, sv[0], blob, sizeof(blob), UD(6));
		wait_batch(0);
		c = find(UD(6));
		if (!c)
			break;          /* armed: the socket is full */
		CHECK(c->res > 0);
		sent += c->res;
	}
	CHECK(sent > 0);
	/* the reader drains: the armed send completes */
	while ((n = (int)read(sv[1], sink, sizeof(sink))) > 0)
		;
	wait_batch(1000);
	c = find(UD(6));
	CHECK(c && c->res > 0);
	/* the peer gone: the error comes back as res */
	close(sv[1]);
	io_ep_send(ep, sv[0], "x", 1, UD(7));
	wait_batch(0);
	c = find(UD(7));
	CHECK(c && c->res == -EPIPE);
	close(sv[0]);
	teardown();
}

static void test_accept_connect_and_next_batch(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	const struct io_uring_cqe *c;
	struct timespec t0, t1;
	int lfd, cfd[3], i, accepted = 0;

	setup(8);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_INT(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(lfd, 16), 0);
	CHECK_INT(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	io_ep_accept_multishot(ep, lfd, UD(8) | OP_ACCEPT);
	for (i = 0; i < 3; i++) {
		cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		io_ep_connect(ep, cfd[i], (struct sockaddr *)&sa, sizeof(sa), UD(10 + i));
	}
	for (i = 0; i < 10 && accepted < 3; i++) {
		unsigned k;

		wait_batch(1000);
		for (k = 0; k < ngot; k++) {
			if (got[k].user_data != (UD(8) | OP_ACCEPT))
				continue;
			CHECK(got[k].res >= 0 && (got[k].flags & IORING_CQE_F_MORE));
			if (got[k].res >= 0) {
				CHECK(fcntl(got[k].res, F_GETFL) & O_NONBLOCK);
				close(got[k].res);
			}
			accepted++;
		}
	}
	CHECK_INT(accepted, 3);
	/* a completion queued while a batch is handled comes in the next
	 * batch, and that wait does not block */
	io_ep_send(ep, cfd[0], "x", 1, UD(20));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wait_batch(5000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	c = find(UD(20));
	CHECK(c != NULL);
	CHECK(t1.tv_sec - t0.tv_sec < 2);
	for (i = 0; i < 3; i++)
		close(cfd[i]);
	/* connecting to a closed port fails with the connect error */
	close(lfd);
	cfd[0] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	io_ep_connect(ep, cfd[0], (struct sockaddr *)&sa, sizeof(sa), UD(21));
	c = NULL;
	for (i = 0; i < 10 && !c; i++) {
		wait_batch(1000);
		c = find(UD(21));
	}
	CHECK(c && c->res == -ECONNREFUSED);
	close(cfd[0]);
	teardown();
}

int main(void)
{
	RUN(test_recv_multishot_buffers_and_eof);
	RUN(test_enobufs_then_rearm);
	RUN(test_cancel_and_close);
	RUN(test_send_full_then_writable);
	RUN(test_accept_connect_and_next_batch);
	TEST_REPORT();
}

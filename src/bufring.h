/* bufring.h - the worker's provided-buffer ring for multishot receives.
 * The kernel picks a buffer for each receive; ringfront holds it (with a
 * reference count, since one buffer may carry the end of one request and
 * the start of the next) until every byte in it was sent or copied, then
 * hands it back. Returns are batched and published once per loop. On the
 * epoll backend the ring is the same memory, unregistered, and io_epoll.c
 * consumes it in the kernel's place (bufring_peek/bufring_consume). */
#ifndef RF_BUFRING_H
#define RF_BUFRING_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>

struct bufring {
	struct io_uring_buf_ring *br;   /* mmap'd ring shared with the kernel */
	char *base;                     /* owned: mmap'd, base_bytes = nbufs * size */
	uint16_t *refs;                 /* owned: references per buffer */
	size_t ring_bytes;
	size_t base_bytes;
	uint32_t nbufs;
	uint32_t size;
	uint32_t mask;
	uint32_t pending;               /* returned, not yet published */
	uint32_t avail;                 /* buffers the kernel may use */
	uint16_t bgid;
	uint16_t head;                  /* epoll: next ring entry to consume */
};

/* Map and register the ring with <nbufs> (power of two) buffers of <size>
 * bytes under group <bgid>; with <ring> NULL (epoll) it is not registered.
 * Returns 0 or -errno (-ENOMEM, -EINVAL, or the registration error;
 * -ENOMEM/-EPERM may mean RLIMIT_MEMLOCK is low). */
int bufring_init(struct bufring *b, struct io_uring *ring, uint32_t nbufs,
		 uint32_t size, uint16_t bgid);
void bufring_destroy(struct bufring *b, struct io_uring *ring);

static inline char *bufring_ptr(const struct bufring *b, uint32_t bid)
{
	return b->base + (size_t)bid * b->size;
}

/* A receive completed into <bid>: the caller now holds one reference. */
static inline void bufring_take(struct bufring *b, uint32_t bid)
{
	b->refs[bid] = 1;
	b->avail--;
}

static inline void bufring_ref(struct bufring *b, uint32_t bid)
{
	b->refs[bid]++;
}

static inline void bufring_unref(struct bufring *b, uint32_t bid)
{
	if (--b->refs[bid] == 0) {
		io_uring_buf_ring_add(b->br, bufring_ptr(b, bid), b->size, bid,
				      b->mask, b->pending++);
		b->avail++;
	}
}

/* Publish the buffers returned since the last call to the kernel. */
static inline void bufring_commit(struct bufring *b)
{
	if (b->pending) {
		io_uring_buf_ring_advance(b->br, b->pending);
		b->pending = 0;
	}
}

/* epoll: the buffer the next receive goes into, as the kernel would pick
 * it (returned buffers count once bufring_commit() published them).
 * Returns its id, or -ENOBUFS. */
static inline int bufring_peek(const struct bufring *b)
{
	if (b->head == __atomic_load_n(&b->br->tail, __ATOMIC_ACQUIRE))
		return -ENOBUFS;
	return b->br->bufs[b->head & b->mask].bid;
}

/* epoll: the peeked buffer received data; bufring_take() follows. */
static inline void bufring_consume(struct bufring *b)
{
	b->head++;
}

#endif

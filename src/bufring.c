/* bufring.c - set-up and tear-down of the provided-buffer ring. liburing
 * 2.3 has no io_uring_setup_buf_ring(), so the ring memory is mapped here;
 * the epoll backend uses the same ring without registering it. */
#include <errno.h>
#include <sys/mman.h>
#include "common.h"
#include "bufring.h"

#define GUARD 4096              /* PROT_NONE pages on both sides of the buffers */

int bufring_init(struct bufring *b, struct io_uring *ring, uint32_t nbufs,
		 uint32_t size, uint16_t bgid)
{
	struct io_uring_buf_reg reg;
	uint32_t i;
	int ret;

	memset(b, 0, sizeof(*b));
	if (!nbufs || (nbufs & (nbufs - 1)) || nbufs > 32768)
		return -EINVAL;
	b->nbufs = nbufs;
	b->size = size;
	b->mask = io_uring_buf_ring_mask(nbufs);
	b->bgid = bgid;
	b->ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
	b->br = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		return -ENOMEM;
	}
	/* The buffers get a mapping of their own between two guard pages, not
	 * the worker's malloc arena: the kernel touches their pages one by
	 * one as receives land (a FIFO ring cycles through all of them), so
	 * their RSS climbs towards nbufs * size over hours of mixed traffic.
	 * Apart, that growth is bounded, shows by itself in /proc/PID/smaps
	 * (a read-write mapping of exactly nbufs * size that the guards keep
	 * from merging with a neighbour; the soak test tells it from the
	 * rest), an overrun faults, and it all goes back at exit. */
	b->base_bytes = (size_t)nbufs * size;
	b->base = mmap(NULL, b->base_bytes + 2 * GUARD, PROT_NONE,
		       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (b->base == MAP_FAILED) {
		b->base = NULL;
	} else {
		b->base += GUARD;
		if (mprotect(b->base, b->base_bytes, PROT_READ | PROT_WRITE) < 0) {
			munmap(b->base - GUARD, b->base_bytes + 2 * GUARD);
			b->base = NULL;
		}
	}
	b->refs = calloc(nbufs, sizeof(*b->refs));
	if (!b->base || !b->refs) {
		ret = -ENOMEM;
		goto out_fail;
	}
	io_uring_buf_ring_init(b->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)b->br;
	reg.ring_entries = nbufs;
	reg.bgid = bgid;
	ret = ring ? io_uring_register_buf_ring(ring, &reg, 0) : 0;
	if (ret)
		goto out_fail;
	for (i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(b->br, bufring_ptr(b, i), size, i, b->mask, i);
	io_uring_buf_ring_advance(b->br, nbufs);
	b->avail = nbufs;
	return 0;

out_fail:
	if (b->base)
		munmap(b->base - GUARD, b->base_bytes + 2 * GUARD);
	b->base = NULL;
	rf_free(&b->refs);
	munmap(b->br, b->ring_bytes);
	b->br = NULL;
	return ret;
}

void bufring_destroy(struct bufring *b, struct io_uring *ring)
{
	if (!b->br)
		return;
	if (ring)
		io_uring_unregister_buf_ring(ring, b->bgid);
	munmap(b->br, b->ring_bytes);
	b->br = NULL;
	munmap(b->base - GUARD, b->base_bytes + 2 * GUARD);
	b->base = NULL;
	rf_free(&b->refs);
}

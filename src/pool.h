/* pool.h - per-worker pools of fixed-size objects. Objects are allocated on
 * first use and recycled through a free list, never returned to malloc, up
 * to a configured maximum: the request path gets NULL (-> 503) instead of
 * growing without bound. Objects are 16-byte aligned (user_data keeps an op
 * code in the low bits). A pool belongs to one worker and is not shared. */
#ifndef RF_POOL_H
#define RF_POOL_H

#include <stddef.h>
#include <stdint.h>

struct pool {
	void *free;             /* singly linked through the first word */
	void *slabs;            /* every slab, linked through its first word */
	size_t size;            /* object size, rounded up to 16 */
	uint32_t per_slab;      /* objects allocated together */
	uint32_t max;           /* objects that may exist at once */
	uint32_t live;          /* objects handed out */
	uint32_t allocated;     /* objects created so far (live + free) */
};

/* <per_slab> objects are allocated at a time (1 for large objects). */
void pool_init(struct pool *p, size_t size, uint32_t max, uint32_t per_slab);

/* Returns a zeroed object, or NULL when the pool is at its maximum or
 * memory is exhausted. */
void *pool_get(struct pool *p);

/* Same as pool_get() but the object is not zeroed (buffers). */
void *pool_get_raw(struct pool *p);

void pool_put(struct pool *p, void *obj);

/* Release every slab back to malloc (at worker exit). */
void pool_destroy(struct pool *p);

#endif

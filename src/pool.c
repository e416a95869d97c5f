/* pool.c - fixed-size object pools with a free list, allocated in slabs
 * (see pool.h). */
#include "common.h"
#include "pool.h"

#define SLAB_HEADER 64          /* keeps objects 64-byte aligned in a slab */

void pool_init(struct pool *p, size_t size, uint32_t max, uint32_t per_slab)
{
	memset(p, 0, sizeof(*p));
	p->size = (size + 15) & ~(size_t)15;
	p->max = max;
	p->per_slab = per_slab ? per_slab : 1;
}

static int pool_grow(struct pool *p)
{
	uint32_t n = RF_MIN(p->per_slab, p->max - p->allocated);
	char *slab;
	uint32_t i;

	if (!n)
		return -1;
	slab = aligned_alloc(64, (SLAB_HEADER + p->size * n + 63) & ~(size_t)63);
	if (!slab)
		return -1;
	*(void **)slab = p->slabs;
	p->slabs = slab;
	for (i = 0; i < n; i++) {
		void *obj = slab + SLAB_HEADER + p->size * i;

		*(void **)obj = p->free;
		p->free = obj;
	}
	p->allocated += n;
	return 0;
}

void *pool_get_raw(struct pool *p)
{
	void *obj;

	if (!p->free && pool_grow(p) < 0)
		return NULL;
	obj = p->free;
	p->free = *(void **)obj;
	p->live++;
	return obj;
}

void *pool_get(struct pool *p)
{
	void *obj = pool_get_raw(p);

	if (obj)
		memset(obj, 0, p->size);
	return obj;
}

void pool_put(struct pool *p, void *obj)
{
	*(void **)obj = p->free;
	p->free = obj;
	p->live--;
}

void pool_destroy(struct pool *p)
{
	while (p->slabs) {
		void *slab = p->slabs;

		p->slabs = *(void **)slab;
		free(slab);
	}
	p->free = NULL;
	p->allocated = 0;
}

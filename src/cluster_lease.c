/* cluster_lease.c - the lease table: one slot per active key, spent by
 * requests on any worker with a CAS, refilled and drained by worker 0.
 *
 * A key's life on one instance: the first request claims a slot and
 * credits itself a lease (tokens Redis has not granted yet, charged at the
 * next sync); each sync tops an active key's lease up from Redis (the
 * script grants what the key's global bucket holds); a key idle for its
 * limit's period returns what it holds and turns dormant (the next
 * request credits a new lease); a dormant key idle as long again frees
 * its slot. See README "Running several instances" for the bound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "common.h"

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

int cl_table_init(struct cl_table *t, uint32_t max_keys, uint32_t lease)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = (max_keys + CL_BUCKET - 1) / CL_BUCKET;
	t->nslots = t->nbuckets * CL_BUCKET;
	t->lease = lease ? lease : 1;
	t->keys = aligned_alloc(64, (size_t)t->nslots * sizeof(*t->keys));
	t->locks = calloc(t->nbuckets, sizeof(*t->locks));
	t->slots = aligned_alloc(64, (size_t)t->nslots * sizeof(*t->slots));
	t->own = calloc(t->nslots, sizeof(*t->own));
	if (!t->keys || !t->locks || !t->slots || !t->own) {
		cl_table_free(t);
		return -ENOMEM;
	}
	memset(t->keys, 0, (size_t)t->nslots * sizeof(*t->keys));
	memset(t->slots, 0, (size_t)t->nslots * sizeof(*t->slots));
	return 0;
}

void cl_table_free(struct cl_table *t)
{
	free(t->keys);
	free(t->locks);
	free(t->slots);
	free(t->own);
	memset(t, 0, sizeof(*t));
}

static uint32_t bucket_of(const struct cl_table *t, uint64_t key)
{
	return (uint32_t)(((key >> 32) * t->nbuckets) >> 32);
}

static int find(const struct cl_table *t, uint32_t b, uint64_t k)
{
	uint32_t i;

	for (i = b * CL_BUCKET; i < (b + 1) * CL_BUCKET; i++)
		if (atomic_load_explicit(&t->keys[i], memory_order_acquire) == k)
			return (int)i;
	return -1;
}

static void lock(struct cl_table *t, uint32_t b)
{
	uint8_t z = 0;

	while (!atomic_compare_exchange_weak_explicit(&t->locks[b], &z, 1, memory_order_acquire,
						      memory_order_relaxed)) {
		z = 0;
		relax();
	}
}

static void unlock(struct cl_table *t, uint32_t b)
{
	atomic_store_explicit(&t->locks[b], 0, memory_order_release);
}

/* A new key: a free slot of its bucket, set up with a lease on credit of
 * which the caller spends one token. Claims are rare (a key's first
 * request), so they take the bucket's lock; lookups never do. Returns 1,
 * 0 (another worker claimed the key first: look again) or -1 (full). */
static int claim(struct cl_table *t, uint32_t b, uint64_t k, const struct rl_policy *p)
{
	uint32_t lease = RF_MIN(t->lease, p->burst ? p->burst : 1), i;
	struct cl_slot *s;
	int rc = -1;

	lock(t, b);
	if (find(t, b, k) >= 0) {
		rc = 0;
		goto out;
	}
	for (i = b * CL_BUCKET; i < (b + 1) * CL_BUCKET; i++) {
		if (atomic_load_explicit(&t->keys[i], memory_order_relaxed))
			continue;
		s = &t->slots[i];
		s->lease = lease ? lease : 1;
		s->t_us = p->t_us;
		s->tau_us = p->tau_us;
		atomic_store_explicit(&s->avail, (int64_t)s->lease - 1, memory_order_relaxed);
		atomic_store_explicit(&s->spent, 1, memory_order_relaxed);
		atomic_store_explicit(&s->denied, 0, memory_order_relaxed);
		atomic_store_explicit(&s->credits, 1, memory_order_relaxed);
		atomic_store_explicit(&t->keys[i], k, memory_order_release);
		rc = 1;
		break;
	}
out:
	unlock(t, b);
	return rc;
}

int cl_take(struct cl_table *t, uint64_t key, const struct rl_policy *p)
{
	uint64_t k = key | 1;
	uint32_t b = bucket_of(t, key);
	struct cl_slot *s;
	int64_t v;
	int i, rc;

	for (;;) {
		i = find(t, b, k);
		if (i < 0) {
			rc = claim(t, b, k, p);
			if (rc)
				return rc;
			continue;
		}
		s = &t->slots[i];
		v = atomic_load_explicit(&s->avail, memory_order_relaxed);
		for (;;) {
			if (v == CL_GONE)
				break;          /* being freed: look again */
			if (v == CL_DORMANT) {
				if (!atomic_compare_exchange_weak(&s->avail, &v, (int64_t)s->lease - 1))
					continue;
				atomic_fetch_add_explicit(&s->credits, 1, memory_order_relaxed);
			} else if (v <= 0) {
				atomic_fetch_add_explicit(&s->denied, 1, memory_order_relaxed);
				return 0;
			} else if (!atomic_compare_exchange_weak_explicit(&s->avail, &v, v - 1,
									  memory_order_relaxed,
									  memory_order_relaxed)) {
				continue;
			}
			atomic_fetch_add_explicit(&s->spent, 1, memory_order_relaxed);
			return 1;
		}
		relax();
	}
}

/* Free a dormant slot, unless a request revived it meanwhile. */
static int slot_free(struct cl_table *t, uint32_t i)
{
	int64_t v = CL_DORMANT;
	uint32_t b = i / CL_BUCKET;
	int freed = 0;

	lock(t, b);
	if (atomic_compare_exchange_strong(&t->slots[i].avail, &v, CL_GONE)) {
		atomic_store_explicit(&t->keys[i], 0, memory_order_release);
		freed = 1;
	}
	unlock(t, b);
	return freed;
}

/* How long a key stays idle before it returns its lease: its limit's
 * period (the time a full bucket takes to refill), within bounds. */
static uint64_t idle_ms(const struct cl_slot *s, uint64_t min_ms)
{
	uint64_t w = (s->tau_us + s->t_us) / 1000;

	return RF_MAX(RF_MIN(w, 600000u), min_ms);
}

uint32_t cl_sync_collect(struct cl_table *t, uint64_t now_ms, uint64_t return_ms,
			 uint64_t free_ms, struct cl_item *items, uint32_t max, uint32_t *cursor)
{
	uint32_t i, n = 0, force, take, ret;
	struct cl_own *o;
	struct cl_slot *s;
	uint64_t k, sp, dn, idle, want;
	uint32_t cr;
	int64_t v;
	int active;

	for (i = *cursor; i < t->nslots && n < max; i++) {
		o = &t->own[i];
		k = atomic_load_explicit(&t->keys[i], memory_order_acquire);
		if (!k) {
			o->key = 0;
			continue;
		}
		if (o->key != k) {
			memset(o, 0, sizeof(*o));
			o->key = k;
			o->active_ms = now_ms;
		}
		if (o->inflight)
			continue;
		s = &t->slots[i];
		sp = atomic_load_explicit(&s->spent, memory_order_relaxed);
		dn = atomic_load_explicit(&s->denied, memory_order_relaxed);
		cr = atomic_load_explicit(&s->credits, memory_order_relaxed);
		active = sp != o->spent || dn != o->denied;
		/* top-ups follow demand: twice what went by in the last
		 * interval, at least a lease, at most the key's burst */
		want = RF_MAX((uint64_t)s->lease, 2 * (sp - o->spent) + (dn - o->denied));
		want = RF_MIN(want, s->tau_us / RF_MAX(s->t_us, 1) + 1);
		want = RF_MAX(want, (uint64_t)s->lease);
		o->spent = sp;
		o->denied = dn;
		if (active)
			o->active_ms = now_ms;
		force = (cr - o->credits) * s->lease;
		o->credits = cr;
		idle = now_ms - o->active_ms;
		take = ret = 0;
		v = atomic_load_explicit(&s->avail, memory_order_relaxed);
		if (v == CL_DORMANT) {
			if (!force && idle >= idle_ms(s, return_ms) + free_ms) {
				if (slot_free(t, i))
					o->key = 0;
				continue;
			}
		} else if (active) {
			if (v < (int64_t)want)
				take = (uint32_t)RF_MIN(want - (uint64_t)RF_MAX(v, 0), UINT32_MAX);
		} else if (idle >= idle_ms(s, return_ms)) {
			v = atomic_exchange(&s->avail, CL_DORMANT);
			ret = v > 0 ? (uint32_t)RF_MIN(v, (int64_t)UINT32_MAX) : 0;
		}
		if (!force && !take && !ret)
			continue;
		items[n].slot = i;
		items[n].key = k & ~1ull;
		items[n].t_us = s->t_us;
		items[n].tau_us = s->tau_us;
		items[n].force = force;
		items[n].take = take;
		items[n].ret = ret;
		o->inflight = 1;
		n++;
	}
	*cursor = i < t->nslots ? i : 0;
	return n;
}

void cl_sync_done(struct cl_table *t, const struct cl_item *it, int64_t n)
{
	struct cl_own *o = &t->own[it->slot];
	struct cl_slot *s = &t->slots[it->slot];
	int64_t v;

	o->inflight = 0;
	if (n <= 0 || o->key != (it->key | 1))
		return;
	v = atomic_load_explicit(&s->avail, memory_order_relaxed);
	do {
		if (v == CL_DORMANT || v == CL_GONE)
			return;         /* only a take grants, and a taking slot is live */
	} while (!atomic_compare_exchange_weak(&s->avail, &v, v + n));
}

uint32_t cl_active(const struct cl_table *t)
{
	uint32_t i, n = 0;

	for (i = 0; i < t->nslots; i++)
		n += atomic_load_explicit(&t->keys[i], memory_order_relaxed) != 0;
	return n;
}

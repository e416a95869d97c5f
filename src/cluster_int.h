/* cluster_int.h - what cluster.c (connections, sync, views),
 * cluster_lease.c (the lease table) and cluster_state.c (shared records
 * and purges) share. Nothing else includes it. */
#ifndef RF_CLUSTER_INT_H
#define RF_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "ratelimit.h"
#include "redis_conn.h"
#include "timer.h"

/* ---- leases ----
 * A slot holds one active key's lease. Requests on any worker spend its
 * tokens with a CAS on <avail>; worker 0 (the owner) tops leases up,
 * returns them and frees slots, through the Lua script in cluster.c. */
#define CL_DORMANT      INT64_MIN       /* lease returned: the next request re-credits it */
#define CL_GONE         (INT64_MIN + 1) /* being freed: look the key up again */
#define CL_BUCKET       8               /* keys per index line */

struct cl_slot {
	_Atomic int64_t avail;          /* tokens this instance may spend */
	_Atomic uint64_t spent;         /* tokens spent, ever */
	_Atomic uint64_t denied;        /* requests refused for want of a token, ever */
	_Atomic uint32_t credits;       /* times a request credited itself a lease */
	uint32_t lease;                 /* tokens per lease: min(lease, burst) */
	uint64_t t_us, tau_us;          /* the key's limit, for the script */
} __attribute__((aligned(64)));

/* The owner's private view of a slot (worker 0 only). */
struct cl_own {
	uint64_t key;                   /* the key it describes; 0 = none */
	uint64_t spent, denied;         /* at the last sync */
	uint64_t active_ms;             /* last sync that saw it used */
	uint32_t credits;               /* credits already charged */
	uint8_t inflight;               /* a script call for it is in flight */
};

struct cl_table {
	_Atomic uint64_t *keys;         /* owned: key | 1 per slot, 0 = free */
	_Atomic uint8_t *locks;         /* owned: one per bucket, for claims and frees */
	struct cl_slot *slots;          /* owned */
	struct cl_own *own;             /* owned: worker 0's view */
	uint32_t nslots, nbuckets;
	uint32_t lease;                 /* [cluster] lease */
};

int cl_table_init(struct cl_table *t, uint32_t max_keys, uint32_t lease);
void cl_table_free(struct cl_table *t);

/* Spend one token of <key>'s lease, creating the slot (with a lease on
 * credit) for a new key. Returns 1 (spent), 0 (no token left) or -1 (no
 * slot free: the key is not managed). */
int cl_take(struct cl_table *t, uint64_t key, const struct rl_policy *p);

/* One key's part of a sync batch. */
struct cl_item {
	uint32_t slot;
	uint64_t key;
	uint64_t t_us, tau_us;
	uint32_t force, take, ret;
};

/* Walk the table at <now_ms> and fill up to <max> items of work from
 * slot <*cursor> on (updated; 0 when the walk is done). Slots idle for
 * <return_ms> give their tokens back; dormant ones idle for <free_ms> are
 * freed. Returns the items filled. Owner only. */
uint32_t cl_sync_collect(struct cl_table *t, uint64_t now_ms, uint64_t return_ms,
			 uint64_t free_ms, struct cl_item *items, uint32_t max, uint32_t *cursor);

/* The script granted <n> tokens to item <it> (n < 0: the call failed). */
void cl_sync_done(struct cl_table *t, const struct cl_item *it, int64_t n);

/* Slots in use. */
uint32_t cl_active(const struct cl_table *t);

/* ---- the cluster ---- */

struct cl_msg {                         /* queued for the owner to send */
	struct cl_msg *next;
	uint8_t kind;                   /* CL_MSG_* */
	char *a, *b;                    /* owned: per kind (id + json, pattern) */
	size_t blen;
	uint8_t type;                   /* purge type */
};

enum { CL_MSG_RECORD = 1, CL_MSG_PURGE };

struct cl_counters {
	_Atomic uint64_t granted, lease_denied, unmanaged, fallback_denied;
	_Atomic uint64_t syncs, sync_errors, records_sent, records_applied, purges_sent,
		purges_applied, full_loads;
};

struct cluster {
	const struct rf_config *cfg;    /* the start-up configuration (outlives us) */
	const struct rf_cluster_conf *cc;
	struct rl *rl;
	struct cl_table table;
	struct worker *w;               /* the owner, worker 0 */
	struct rconn main, sub;         /* commands; the subscriber */
	struct timer tick;
	_Atomic int up;                 /* both connections ready: leases in use */
	uint8_t was_up;                 /* for the log-once transitions */
	uint8_t warned_down;
	uint8_t script_loading, full_loading, need_full_load, stopping;
	char sha[41];                   /* the script's SHA1 once loaded, "" = use EVAL */
	char self[RF_NAME_MAX + 24];    /* "<instance>#<random>": tells our own messages apart */
	uint32_t cursor;                /* sync walk position */
	uint64_t last_ping_ms;
	struct cl_counters n;
	char *k_clients;                /* owned: <prefix>clients */
	char *k_state;                  /* owned: <prefix>state, fields "KIND ID" */
	char *ch_events;                /* owned: <prefix>events */
	char *ch_purge;                 /* owned: <prefix>purge */
	pthread_mutex_t lock;           /* the queue and the views below */
	struct cl_msg *q, **qtail;      /* under lock */
	uint32_t qlen;
	char last_error[160];           /* under lock */
	/* copies of the owner's connection state for the views */
	_Atomic uint8_t v_state;
	_Atomic uint32_t v_cur;
	_Atomic uint64_t v_connects, v_failures;
	uint64_t up_since_ms, down_since_ms;
};

/* cluster_state.c */
void cl_send_queued(struct cluster *cl);
void cl_full_load(struct cluster *cl);
void cl_on_message(void *owner, struct rconn *c, const struct rr_reply *r);
void cl_queue_free(struct cluster *cl);

#endif

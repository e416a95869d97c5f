/* timer.h - one hashed timer wheel per worker. Arming, re-arming and
 * cancelling are O(1) pointer updates; expiry walks the slots passed since
 * the last iteration. Deadlines beyond one turn of the wheel stay in their
 * slot and are skipped until due, so any duration works. */
#ifndef RF_TIMER_H
#define RF_TIMER_H

#include <stdint.h>

#define TIMER_TICK_SHIFT 3              /* 8 ms per slot */
#define TIMER_SLOTS      512            /* about 4 s per turn */

struct timer;
typedef void (*timer_cb)(struct timer *t);

struct timer {
	struct timer *next;
	struct timer **pprev;   /* NULL when not armed */
	uint64_t expires;       /* monotonic ms */
	uint32_t slot;          /* slot it is linked in */
	timer_cb cb;
};

struct timer_wheel {
	uint64_t now;           /* monotonic ms, refreshed once per loop */
	uint64_t tick;          /* last tick processed */
	uint32_t count;         /* armed timers */
	struct timer *slots[TIMER_SLOTS];
	uint64_t used[TIMER_SLOTS / 64];   /* bitmap of non-empty slots */
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);

static inline void timer_init(struct timer *t, timer_cb cb)
{
	t->next = NULL;
	t->pprev = NULL;
	t->expires = 0;
	t->cb = cb;
}

static inline int timer_armed(const struct timer *t)
{
	return t->pprev != NULL;
}

/* Arm (or move) <t> to fire <ms> milliseconds from w->now. */
void timer_set(struct timer_wheel *w, struct timer *t, uint64_t ms);
void timer_cancel(struct timer_wheel *w, struct timer *t);

/* Fire every timer due at <now_ms>. Callbacks may arm or cancel timers. */
void timer_run(struct timer_wheel *w, uint64_t now_ms);

/* Milliseconds until the next slot holding a timer, or -1 when none. */
int64_t timer_next_ms(const struct timer_wheel *w);

/* Monotonic clock in milliseconds. */
uint64_t timer_clock_ms(void);

#endif

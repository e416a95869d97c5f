/* timer.c - the per-worker timer wheel (see timer.h). */
#include <time.h>
#include "common.h"
#include "timer.h"

#define SLOT_MASK (TIMER_SLOTS - 1)

uint64_t timer_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms)
{
	memset(w, 0, sizeof(*w));
	w->now = now_ms;
	w->tick = (now_ms >> TIMER_TICK_SHIFT) - 1;
}

static void slot_mark(struct timer_wheel *w, unsigned slot)
{
	w->used[slot / 64] |= 1ULL << (slot % 64);
}

static void slot_update(struct timer_wheel *w, unsigned slot)
{
	if (!w->slots[slot])
		w->used[slot / 64] &= ~(1ULL << (slot % 64));
}

static void unlink_timer(struct timer_wheel *w, struct timer *t)
{
	unsigned slot = t->slot;

	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
	w->count--;
	slot_update(w, slot);
}

static void link_timer(struct timer_wheel *w, struct timer *t)
{
	uint64_t tick = t->expires >> TIMER_TICK_SHIFT;
	unsigned slot;

	/* A deadline in an already-processed tick goes to the next slot. */
	if (tick <= w->tick)
		tick = w->tick + 1;
	slot = tick & SLOT_MASK;
	t->slot = slot;
	t->next = w->slots[slot];
	if (t->next)
		t->next->pprev = &t->next;
	t->pprev = &w->slots[slot];
	w->slots[slot] = t;
	w->count++;
	slot_mark(w, slot);
}

void timer_set(struct timer_wheel *w, struct timer *t, uint64_t ms)
{
	uint64_t expires = w->now + ms;

	if (t->pprev) {
		/* Unchanged slot: only the deadline moves (lazy re-arm). */
		if ((expires >> TIMER_TICK_SHIFT) > w->tick &&
		    ((expires >> TIMER_TICK_SHIFT) & SLOT_MASK) == t->slot) {
			t->expires = expires;
			return;
		}
		unlink_timer(w, t);
	}
	t->expires = expires;
	link_timer(w, t);
}

void timer_cancel(struct timer_wheel *w, struct timer *t)
{
	if (t->pprev)
		unlink_timer(w, t);
}

static void run_slot(struct timer_wheel *w, unsigned slot, uint64_t now_ms)
{
	struct timer *t = w->slots[slot], *next;
	struct timer *due = NULL;

	/* Detach the due timers first: callbacks may re-arm into this slot. */
	for (; t; t = next) {
		next = t->next;
		if (t->expires <= now_ms) {
			unlink_timer(w, t);
			t->next = due;
			due = t;
		}
	}
	while (due) {
		t = due;
		due = t->next;
		t->next = NULL;
		t->cb(t);
	}
}

void timer_run(struct timer_wheel *w, uint64_t now_ms)
{
	/* Only ticks that have fully elapsed: every timer in them is due, so
	 * none is passed over until the wheel comes round again. */
	uint64_t target = (now_ms >> TIMER_TICK_SHIFT) - 1;
	uint64_t tick;

	w->now = now_ms;
	if (target <= w->tick)
		return;
	if (target - w->tick > TIMER_SLOTS) {
		/* A long pause: every slot is visited once. */
		for (unsigned s = 0; s < TIMER_SLOTS; s++)
			if (w->slots[s])
				run_slot(w, s, now_ms);
	} else {
		for (tick = w->tick + 1; tick <= target; tick++) {
			unsigned s = tick & SLOT_MASK;

			if (w->slots[s])
				run_slot(w, s, now_ms);
		}
	}
	w->tick = target;
}

int64_t timer_next_ms(const struct timer_wheel *w)
{
	const unsigned words = TIMER_SLOTS / 64;
	unsigned start, k;

	if (!w->count)
		return -1;
	start = (w->tick + 1) & SLOT_MASK;
	/* the first used slot from start on, wrapping: a word of the bitmap
	 * at a time, the start word twice (its bits from start, then below) */
	for (k = 0; k <= words; k++) {
		unsigned word = (start / 64 + k) % words;
		uint64_t bits = w->used[word];

		if (k == 0)
			bits &= ~0ULL << (start % 64);
		else if (k == words)
			bits &= (1ULL << (start % 64)) - 1;
		if (bits) {
			unsigned i = (word * 64 + (unsigned)__builtin_ctzll(bits) - start) & SLOT_MASK;
			/* the slot's tick has elapsed one tick after it starts */
			uint64_t when = (w->tick + 2 + i) << TIMER_TICK_SHIFT;

			return when > w->now ? (int64_t)(when - w->now) : 0;
		}
	}
	return TIMER_SLOTS << TIMER_TICK_SHIFT;
}

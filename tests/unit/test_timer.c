/* test_timer.c - the timer wheel: timers fire once, not early, at most a
 * tick or two late when the loop sleeps exactly timer_next_ms(), across
 * wheel turns, with re-arming and cancelling. */
#include "test.h"
#include "common.h"
#include "timer.h"

static int fired[64];
static uint64_t fired_at[64];
static struct timer timers[64];
static struct timer_wheel *cur_wheel;

static void on_fire(struct timer *t)
{
	int i = (int)(t - timers);

	fired[i]++;
	fired_at[i] = cur_wheel->now;
}

/* Run the loop as worker_loop does: sleep until the next deadline. */
static void run_until(struct timer_wheel *w, uint64_t end)
{
	while (w->now < end) {
		int64_t next = timer_next_ms(w);
		uint64_t step = next < 0 ? end - w->now : (uint64_t)(next ? next : 1);

		if (w->now + step > end)
			step = end - w->now;
		timer_run(w, w->now + step);
	}
}

static void test_fire_on_time(void)
{
	static struct timer_wheel w;
	static const uint64_t delays[] = { 1, 7, 8, 9, 100, 1000, 4095, 4096, 5000, 75000 };
	unsigned i;

	memset(fired, 0, sizeof(fired));
	timer_wheel_init(&w, 123457);
	cur_wheel = &w;
	for (i = 0; i < ARRAY_SIZE(delays); i++) {
		timer_init(&timers[i], on_fire);
		timer_set(&w, &timers[i], delays[i]);
	}
	run_until(&w, 123457 + 80000);
	for (i = 0; i < ARRAY_SIZE(delays); i++) {
		CHECK_INT(fired[i], 1);
		CHECK(fired_at[i] >= 123457 + delays[i]);
		CHECK(fired_at[i] <= 123457 + delays[i] + 2 * (1 << TIMER_TICK_SHIFT));
	}
	CHECK_INT(w.count, 0);
	CHECK_INT(timer_next_ms(&w), -1);
}

static void test_rearm_and_cancel(void)
{
	static struct timer_wheel w;

	memset(fired, 0, sizeof(fired));
	timer_wheel_init(&w, 1000);
	cur_wheel = &w;
	timer_init(&timers[0], on_fire);
	timer_init(&timers[1], on_fire);
	timer_set(&w, &timers[0], 500);
	timer_set(&w, &timers[1], 500);
	timer_run(&w, 1300);
	timer_set(&w, &timers[0], 500);         /* moved: now due at 1800 */
	timer_cancel(&w, &timers[1]);
	run_until(&w, 1700);
	CHECK_INT(fired[0], 0);
	CHECK_INT(fired[1], 0);
	run_until(&w, 1900);
	CHECK_INT(fired[0], 1);
	CHECK_INT(fired[1], 0);
	CHECK(!timer_armed(&timers[0]));
}

static void test_lazy_rearm_same_slot(void)
{
	static struct timer_wheel w;

	memset(fired, 0, sizeof(fired));
	timer_wheel_init(&w, 0x10000);
	cur_wheel = &w;
	timer_init(&timers[0], on_fire);
	timer_set(&w, &timers[0], 1000);
	timer_run(&w, 0x10000 + 2);
	timer_set(&w, &timers[0], 1000);        /* same slot, later deadline */
	run_until(&w, 0x10000 + 1001);
	CHECK_INT(fired[0], 0);
	run_until(&w, 0x10000 + 1030);
	CHECK_INT(fired[0], 1);
}

static void test_long_pause(void)
{
	static struct timer_wheel w;

	memset(fired, 0, sizeof(fired));
	timer_wheel_init(&w, 5000);
	cur_wheel = &w;
	timer_init(&timers[0], on_fire);
	timer_init(&timers[1], on_fire);
	timer_set(&w, &timers[0], 100);
	timer_set(&w, &timers[1], 60000);
	timer_run(&w, 5000 + 20000);            /* the loop slept 20 s */
	CHECK_INT(fired[0], 1);
	CHECK_INT(fired[1], 0);
	run_until(&w, 5000 + 60100);
	CHECK_INT(fired[1], 1);
}

/* timer_next_ms() finds the first used slot a bitmap word at a time: it
 * must agree with a walk over every slot, wherever the wheel's position
 * and the timers are (word edges, wrapping, one timer, many). */
static int64_t next_ms_by_walking(const struct timer_wheel *w)
{
	unsigned i, s;

	if (!w->count)
		return -1;
	for (i = 0; i < TIMER_SLOTS; i++) {
		s = (unsigned)(w->tick + 1 + i) & (TIMER_SLOTS - 1);
		if (w->used[s / 64] & (1ULL << (s % 64))) {
			uint64_t when = (w->tick + 2 + i) << TIMER_TICK_SHIFT;

			return when > w->now ? (int64_t)(when - w->now) : 0;
		}
	}
	return TIMER_SLOTS << TIMER_TICK_SHIFT;
}

static void test_next_matches_a_walk(void)
{
	static struct timer_wheel w;
	uint64_t seed = 42, start;
	unsigned round, k, n;

	for (round = 0; round < 2000; round++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		start = 100000 + (seed >> 40) % 100000;
		timer_wheel_init(&w, start);
		n = 1 + (unsigned)(seed >> 20) % 3;
		for (k = 0; k < n; k++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			timer_init(&timers[k], on_fire);
			timer_set(&w, &timers[k], (seed >> 33) % (TIMER_SLOTS << TIMER_TICK_SHIFT));
		}
		CHECK_INT(timer_next_ms(&w), next_ms_by_walking(&w));
		for (k = 0; k < n; k++)
			timer_cancel(&w, &timers[k]);
	}
}

int main(void)
{
	RUN(test_fire_on_time);
	RUN(test_rearm_and_cancel);
	RUN(test_lazy_rearm_same_slot);
	RUN(test_long_pause);
	RUN(test_next_matches_a_walk);
	TEST_REPORT();
}

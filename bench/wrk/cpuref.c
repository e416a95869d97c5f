/* cpuref.c - a fixed unit of CPU work, timed: the speed reference that
 * bench/wrk/run.sh samples on the proxy's CPU before, during and after every
 * run. This machine's core speed changes about 2x from one second to the
 * next (a vCPU shares its core with other work), and CPU time per request
 * follows it, so a run is only comparable with another one if we know how
 * fast the core was while it ran.
 *
 * The work is 5M iterations of four interleaved add/xor/shift chains: it is
 * bound by how many instructions the core issues per cycle, so it slows down
 * when the core is shared, the way a proxy's code does (a single dependent
 * multiply chain, by contrast, runs at the same speed either way). Time is
 * the thread's CPU time, so being preempted does not count.
 *
 * Usage: cpuref [ITERATIONS [REPEATS]]        median of REPEATS (default 3)
 *        cpuref --every MS --for S [ITER]      one sample per line every MS
 *                                              milliseconds, for at most S s
 * Prints microseconds. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

volatile uint64_t cpuref_sink;   /* the result goes somewhere */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One unit of work; returns its CPU time in microseconds. */
static uint64_t unit(long iters)
{
	uint64_t a = 1, b = 2, c = 3, d = 4, t0 = cpu_ns();

	for (long i = 0; i < iters; i++) {
		a += (uint64_t)i;
		b ^= a;
		c += b >> 1;
		d ^= c + (uint64_t)i;
		/* keeps the four chains in registers and the loop as written */
		__asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
	}
	cpuref_sink = a + b + c + d;
	return (cpu_ns() - t0) / 1000;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

	return p < q ? -1 : p > q;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--every") == 0) {
		long ms = argc > 2 ? atol(argv[2]) : 0;
		long secs = argc > 4 && strcmp(argv[3], "--for") == 0 ? atol(argv[4]) : 0;
		long iters = argc > 5 ? atol(argv[5]) : 5000000;
		uint64_t end = mono_ns() + (uint64_t)secs * 1000000000u;
		struct timespec gap = { ms / 1000, (ms % 1000) * 1000000 };

		if (ms < 1 || secs < 1 || iters < 1) {
			fprintf(stderr, "usage: cpuref --every MS --for S [ITERATIONS]\n");
			return 2;
		}
		setvbuf(stdout, NULL, _IOLBF, 0);
		while (mono_ns() < end) {
			printf("%llu\n", (unsigned long long)unit(iters));
			nanosleep(&gap, NULL);
		}
		return 0;
	}

	long iters = argc > 1 ? atol(argv[1]) : 5000000;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	uint64_t t[16];

	if (iters < 1 || reps < 1 || reps > 16) {
		fprintf(stderr, "usage: cpuref [ITERATIONS [REPEATS<=16]]\n");
		return 2;
	}
	for (int r = 0; r < reps; r++)
		t[r] = unit(iters);
	qsort(t, (size_t)reps, sizeof(t[0]), cmp_u64);
	printf("%llu\n", (unsigned long long)t[reps / 2]);
	return 0;
}

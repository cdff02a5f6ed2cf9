/* bench_timing.c: best-of-N timing shared by the benchmarks (tools.h). */
#include "tools.h"

#include <math.h>
#include <time.h>

bool bench_cpu_clock;

static double clock_now(void)
{
	if (!bench_cpu_clock)
		return now_seconds();
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void timed_warm(BenchTimed *t)
{
	double t0 = clock_now();
	t->fn(t->arg);
	double once = clock_now() - t0;
	t->inner = once > 0.02 ? 1 : (int)(0.02 / (once > 1e-7 ? once : 1e-7)) + 1;
	t->best = INFINITY;
}

static void timed_rep(BenchTimed *t)
{
	double t0 = clock_now();
	for (int i = 0; i < t->inner; i++)
		t->fn(t->arg);
	double s = (clock_now() - t0) / t->inner;
	if (s < t->best)
		t->best = s;
}

void bench_best(BenchTimed *t, int n, int reps)
{
	for (int i = 0; i < n; i++)
		timed_warm(&t[i]);
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < n; i++)
			timed_rep(&t[i]);
}

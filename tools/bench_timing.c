/* bench_timing.c: best-of-N timing shared by the benchmarks (tools.h). */
#include "tools.h"

#include <math.h>
#include <string.h>
#include <time.h>

#ifdef MSW_HAVE_OPENBLAS
#include <cblas.h>
#endif

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

/* OpenBLAS picks its kernels by CPU model, and one older than the CPU
 * (Debian 12's 0.3.21 on an Intel family 6 model 207, say) falls back to
 * its SSE3 "Prescott" kernels, 5-8x slower than its AVX-512 ones: a peer
 * that slow says nothing, so say which kernels it ran and how to pick
 * others (the choice is made when the library loads). */
void bench_blas_note(FILE *f)
{
#ifdef MSW_HAVE_OPENBLAS
	const char *core = openblas_get_corename();
	fprintf(f, "OpenBLAS: %s kernels\n", core ? core : "unknown");
	bool generic = core && (!strcasecmp(core, "prescott") || !strcasecmp(core, "nehalem") ||
				!strcasecmp(core, "core2") || !strcasecmp(core, "katmai"));
	if (generic && __builtin_cpu_supports("avx2"))
		fprintf(f, "note: OpenBLAS does not know this CPU and runs generic SSE kernels; "
			"for a fair peer run with OPENBLAS_CORETYPE=%s\n",
			__builtin_cpu_supports("avx512f") ? "Cooperlake (or SkylakeX)" : "Haswell");
#else
	(void)f;
#endif
}

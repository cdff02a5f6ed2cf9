/* test_pool.c: the thread pool runs every task exactly once, for many task
 * and thread counts, gives identical results whatever the thread count, and
 * reports its per-call overhead. */
#include "../check.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "runtime/rt.h"

/* buf[0]: int counters, one per task */
static void count_tasks(void *const *buf, int64_t lo, int64_t hi)
{
	atomic_int *hit = buf[0];
	for (int64_t i = lo; i < hi; i++)
		atomic_fetch_add(&hit[i], 1);
}

/* buf[0]: float out[ntask], buf[1]: float in[ntask*64]; a row sum per task */
static void row_sums(void *const *buf, int64_t lo, int64_t hi)
{
	float *out = buf[0];
	const float *in = buf[1];
	for (int64_t i = lo; i < hi; i++) {
		float s = 0;
		for (int k = 0; k < 64; k++)
			s += in[i * 64 + k] * (float)(k + 1);
		out[i] = s;
	}
}

static void nothing(void *const *buf, int64_t lo, int64_t hi)
{
}

static void test_exactly_once(void)
{
	static atomic_int hit[1000];
	static const int64_t ntasks[] = {0, 1, 2, 3, 5, 7, 8, 13, 64, 999, 1000};
	int bad = 0;
	for (int nt = 1; nt <= 9; nt++) {
		rt_Pool *pool = rt_pool_create(nt);
		CHECK(pool && rt_pool_size(pool) == nt);
		for (size_t k = 0; k < sizeof ntasks / sizeof ntasks[0]; k++) {
			for (int rep = 0; rep < 3; rep++) {
				for (int i = 0; i < 1000; i++)
					atomic_store(&hit[i], 0);
				void *buf[1] = {hit};
				rt_pool_run(pool, count_tasks, buf, ntasks[k]);
				for (int64_t i = 0; i < 1000; i++)
					bad += atomic_load(&hit[i]) != (i < ntasks[k]);
			}
		}
		rt_pool_destroy(pool);
	}
	CHECK(bad == 0);
}

static void test_deterministic(void)
{
	enum { N = 777 };
	static float in[N * 64], ref[N], out[N];
	for (int i = 0; i < N * 64; i++)
		in[i] = (float)((i * 2654435761u) % 1000) / 999.0f - 0.5f;
	void *buf[2] = {ref, in};
	row_sums(buf, 0, N);
	for (int nt = 1; nt <= 8; nt++) {
		rt_Pool *pool = rt_pool_create(nt);
		memset(out, 0, sizeof out);
		buf[0] = out;
		rt_pool_run(pool, row_sums, buf, N);
		CHECK(memcmp(out, ref, sizeof out) == 0);
		rt_pool_destroy(pool);
	}
}

/* Calls spaced out so workers park between them: the wake-up path. */
static void test_parked_wakeup(void)
{
	static atomic_int hit[64];
	rt_Pool *pool = rt_pool_create(3);
	int bad = 0;
	for (int rep = 0; rep < 20; rep++) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
		for (int i = 0; i < 64; i++)
			atomic_store(&hit[i], 0);
		void *buf[1] = {hit};
		rt_pool_run(pool, count_tasks, buf, 64);
		for (int i = 0; i < 64; i++)
			bad += atomic_load(&hit[i]) != 1;
	}
	rt_pool_destroy(pool);
	CHECK(bad == 0);
}

static void test_default_size(void)
{
	rt_Pool *pool = rt_pool_create(0);
	CHECK(pool && rt_pool_size(pool) >= 1);
	rt_pool_destroy(pool);
	CHECK(rt_pool_size(NULL) == 1);
	rt_pool_destroy(NULL);
}

/* A failed allocation in create is an error, not a crash. */
static void test_oom(void)
{
	for (long k = 1; k <= 3; k++) {
		mem_fail_after(k);
		rt_Pool *pool = rt_pool_create(3);
		mem_fail_after(0);
		rt_pool_destroy(pool);
	}
	CHECK(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* No allocation per call, and the overhead of an empty call, printed. */
static void test_overhead(void)
{
	for (int nt = 1; nt <= 4; nt *= 2) {
		rt_Pool *pool = rt_pool_create(nt);
		rt_pool_run(pool, nothing, NULL, 64);
		long before = mem_count();
		int n = 2000;
		double t0 = now();
		for (int i = 0; i < n; i++)
			rt_pool_run(pool, nothing, NULL, 64);
		double us = (now() - t0) / n * 1e6;
		CHECK(mem_count() == before);
		printf("pool: %d thread%s, %.2f us per empty rt_pool_run\n", nt, nt > 1 ? "s" : "",
		       us);
		rt_pool_destroy(pool);
	}
}

int main(void)
{
	RUN(test_exactly_once);
	RUN(test_deterministic);
	RUN(test_parked_wakeup);
	RUN(test_default_size);
	RUN(test_oom);
	RUN(test_overhead);
	return check_report();
}

/* test_exec.c: a hand-built program of C kernels run through the executor.
 *
 * The program computes y = 2 * (x + w) + x with two kernels (add, scale)
 * and a temporary, with the arena laid out by hand: that is what the
 * backend does from pass_plan_memory's offsets. */
#include "../check.h"

#include <string.h>
#include <time.h>

#include "runtime/rt.h"

enum { N = 1000 };

/* buf: out, a, b (f32[N]); one element per task */
static void k_add(void *const *buf, int64_t lo, int64_t hi)
{
	float *o = buf[0];
	const float *a = buf[1], *b = buf[2];
	for (int64_t i = lo; i < hi; i++)
		o[i] = a[i] + b[i];
}

/* buf: out, in; out = 2 * in */
static void k_scale(void *const *buf, int64_t lo, int64_t hi)
{
	float *o = buf[0];
	const float *a = buf[1];
	for (int64_t i = lo; i < hi; i++)
		o[i] = 2 * a[i];
}

static rt_Slot slot(const char *name, rt_SlotKind kind, int64_t off)
{
	rt_Slot s = {.name = (char *)name, .kind = kind, .dtype = RT_F32, .rank = 1,
		     .offset = off, .nbytes = N * 4};
	s.dim[0] = N;
	return s;
}

/* layout: w @0, x @4096, y @8192, t @12288, u @16384 */
static rt_Program *build(void)
{
	rt_Program *p = rt_program_create();
	int64_t w = 0, x = 4096, y = 8192, t = 12288, u = 16384;
	p->arena_size = 16384 + 4096;
	rt_Slot s;
	s = slot("w", RT_SLOT_PARAM, w);
	s.init = 3;
	CHECK(rt_program_add_slot(p, &s) == 0);
	s = slot("x", RT_SLOT_INPUT, x);
	CHECK(rt_program_add_slot(p, &s) == 0);
	s = slot("y", RT_SLOT_OUTPUT, y);
	CHECK(rt_program_add_slot(p, &s) == 0);
	CHECK(rt_program_add_slot(p, &s) == 0);  /* same name, same tensor: an alias */
	s.offset = t;
	CHECK(rt_program_add_slot(p, &s) == -1); /* same name, another tensor */
	int64_t a1[] = {t, x, w}, a2[] = {u, t}, a3[] = {y, u, x};
	CHECK(rt_program_add_step(p, k_add, N, a1, 3, "add", N) == 0);
	CHECK(rt_program_add_step(p, k_scale, N, a2, 2, "scale", N) == 0);
	CHECK(rt_program_add_step(p, k_add, 7, a3, 3, "add_chunked", N) == 0);
	CHECK(rt_program_add_step(p, NULL, 1, a3, 3, "bad", 0) == -1);
	return p;
}

/* k_add over 7 tasks would compute only 7 elements: replace it with a
 * chunked kernel so task count and element count differ. */
static void k_add_chunked(void *const *buf, int64_t lo, int64_t hi)
{
	int64_t per = (N + 6) / 7;
	int64_t a = lo * per, b = hi * per < N ? hi * per : N;
	k_add(buf, a, b);
}

static void test_run(void)
{
	rt_Program *p = build();
	VEC_AT(p->step, rt_Step, 2).fn = k_add_chunked;
	for (int nt = 1; nt <= 4; nt++) {
		rt_Pool *pool = rt_pool_create(nt);
		rt_Exec *e;
		Diag d;
		diag_init(&d);
		CHECK(rt_exec_create(p, pool, &e, &d) == 0);
		rt_Tensor tw, tx, ty;
		CHECK(rt_exec_tensor(e, "w", &tw) == 0);
		CHECK(rt_exec_tensor(e, "x", &tx) == 0);
		CHECK(rt_exec_tensor(e, "y", &ty) == 0);
		CHECK(rt_exec_tensor(e, "nope", &ty) == -1);
		CHECK(rt_exec_tensor(e, "y", &ty) == 0);
		CHECK(tx.rank == 1 && tx.dim[0] == N && tx.dtype == RT_F32);
		CHECK(((uintptr_t)rt_exec_arena(e) % RT_ALIGN) == 0);
		float *w = tw.data, *x = tx.data, *y = ty.data;
		for (int i = 0; i < N; i++) {
			w[i] = (float)i * 0.5f;
			x[i] = (float)(i % 17) - 8;
		}
		rt_exec_profile(e, true);
		long before = mem_count();
		rt_exec_run(e);
		rt_exec_run(e);
		CHECK(mem_count() == before);
		int bad = 0;
		for (int i = 0; i < N; i++)
			bad += y[i] != 2 * (x[i] + w[i]) + x[i];
		CHECK(bad == 0);
		if (nt == 2) {
			FILE *f = tmpfile();
			rt_exec_print_profile(e, f);
			char text[2048] = {0};
			rewind(f);
			CHECK(fread(text, 1, sizeof text - 1, f) > 0);
			CHECK(strstr(text, "add_chunked") && strstr(text, "scale"));
			CHECK(strstr(text, "2 runs") != NULL);
			fclose(f);
		}
		rt_exec_destroy(e);
		rt_pool_destroy(pool);
		diag_free(&d);
	}
	rt_program_destroy(p);
}

static void test_run_without_pool(void)
{
	rt_Program *p = build();
	VEC_AT(p->step, rt_Step, 2).fn = k_add_chunked;
	rt_Exec *e;
	Diag d;
	diag_init(&d);
	CHECK(rt_exec_create(p, NULL, &e, &d) == 0);
	rt_Tensor tx, ty;
	rt_exec_tensor(e, "x", &tx);
	rt_exec_tensor(e, "y", &ty);
	((float *)tx.data)[5] = 1;
	rt_exec_run(e);
	CHECK(((float *)ty.data)[5] == 3);
	CHECK(((float *)ty.data)[6] == 0);
	rt_exec_destroy(e);
	rt_program_destroy(p);
	diag_free(&d);
}

static void test_bad_programs(void)
{
	Diag d;
	diag_init(&d);
	rt_Exec *e;
	rt_Program *p = build();
	p->arena_size = 8000;   /* operands and slots now past the end */
	CHECK(rt_exec_create(p, NULL, &e, &d) == -1 && e == NULL);
	CHECK(strstr(diag_text(&d), "outside the arena") != NULL);
	rt_program_destroy(p);

	p = build();
	VEC_AT(p->slot, rt_Slot, 0).nbytes = 12;
	CHECK(rt_exec_create(p, NULL, &e, &d) == -1);
	CHECK(strstr(diag_text(&d), "slot w") != NULL);
	rt_program_destroy(p);

	p = build();
	for (long k = 1; k <= 5; k++) {
		mem_fail_after(k);
		int rc = rt_exec_create(p, NULL, &e, &d);
		mem_fail_after(0);
		if (rc == 0)
			rt_exec_destroy(e);
		else
			CHECK(e == NULL);
	}
	rt_program_destroy(p);
	diag_free(&d);
}

static void k_nothing(void *const *buf, int64_t lo, int64_t hi)
{
}

/* Executor overhead: 200 empty steps of 64 tasks, printed per step. */
static void test_overhead(void)
{
	rt_Program *p = rt_program_create();
	p->arena_size = 64;
	int64_t off[1] = {0};
	for (int i = 0; i < 200; i++)
		CHECK(rt_program_add_step(p, k_nothing, 64, off, 1, "nothing", 0) == 0);
	for (int nt = 1; nt <= 2; nt++) {
		rt_Pool *pool = rt_pool_create(nt);
		rt_Exec *e;
		Diag d;
		diag_init(&d);
		CHECK(rt_exec_create(p, pool, &e, &d) == 0);
		rt_exec_run(e);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int r = 0; r < 20; r++)
			rt_exec_run(e);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 +
			     (double)(t1.tv_nsec - t0.tv_nsec) * 1e-3) / (20 * 200);
		printf("exec: %d thread%s, %.2f us per empty step\n", nt, nt > 1 ? "s" : "", us);
		rt_exec_destroy(e);
		rt_pool_destroy(pool);
		diag_free(&d);
	}
	rt_program_destroy(p);
}

static int released;
static void release(void *owner)
{
	released += *(int *)owner;
}

static void test_code_release(void)
{
	static int one = 1;
	rt_Program *p = rt_program_create();
	p->code_owner = &one;
	p->code_release = release;
	rt_program_destroy(p);
	CHECK(released == 1);
}

int main(void)
{
	RUN(test_run);
	RUN(test_run_without_pool);
	RUN(test_bad_programs);
	RUN(test_code_release);
	RUN(test_overhead);
	return check_report();
}

/* harness.h: what the backend's kernel tests share: a seeded xorshift
 * generator, shape literals, graph inputs, and a run of a program with every
 * task called on its own, last first (so a kernel whose result depends on
 * how its tasks are grouped is caught). Header-only: each test binary is one
 * translation unit. */
#ifndef MSW_TEST_HARNESS_H
#define MSW_TEST_HARNESS_H

#include <stdio.h>

#include "backend/backend.h"
#include "ir/ir.h"
#include "runtime/rt.h"

/* xorshift64: uniform in [0, 1) from the caller's state. */
static inline double harness_urand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (double)(*s >> 11) / 9007199254740992.0;
}

static inline Shape shape_of(const int64_t *dim, size_t rank)
{
	Shape s = {0};
	s.rank = (uint8_t)rank;
	for (size_t i = 0; i < rank; i++)
		s.dim[i] = dim[i];
	return s;
}
#define SH(...) shape_of((int64_t[]){__VA_ARGS__}, sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* An input node; a failure is printed and comes back as VAL_NONE. */
static inline ValId in(Graph *g, const char *name, DType t, Shape s)
{
	Diag d;
	diag_init(&d);
	ValId v = ir_input(g, name, t, &s, (SrcLoc){0}, &d);
	if (v == VAL_NONE)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	return v;
}

/* Run every step with its tasks one at a time, last task first. */
static inline void run_scrambled(rt_Exec *e, const rt_Program *p)
{
	char *arena = rt_exec_arena(e);
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		void *buf[65];
		for (uint32_t a = 0; a < st->narg; a++)
			buf[a] = arena + VEC_AT(p->argoff, int64_t, st->arg0 + a);
		for (int64_t t = st->ntask - 1; t >= 0; t--)
			st->fn(buf, t, t + 1);
	}
}

#endif

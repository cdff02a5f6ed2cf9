/* exec.c: a program bound to one arena and a thread pool.
 *
 * rt_exec_create checks the program against its own arena size (every
 * operand offset and every slot inside the arena, slot sizes matching their
 * shapes), allocates the arena once (RT_ALIGN-aligned, zeroed so a fresh
 * exec is deterministic), and precomputes for every step the array of
 * operand pointers (arena + offset) a kernel receives. rt_exec_run then
 * only walks the steps and hands each to the pool: no allocation, no
 * lookups. The program must outlive the exec.
 *
 * Profiling, when on, wraps each step in clock_gettime(CLOCK_MONOTONIC) and
 * accumulates per-step time over the runs since it was switched on; the
 * table printed by rt_exec_print_profile is sorted by time and shows the
 * mean per run. The buffers for it are allocated at creation, so turning
 * profiling on allocates nothing either.
 *
 * Checked mode (MSW_CHECK=1): a program planned that way lists guards,
 * byte ranges no tensor owns (passes/plan_memory.c, backend/jit.c). They
 * are filled with the byte CANARY when the exec is created and compared
 * with it before a run's first step and after every step, which is what
 * catches a JIT kernel writing outside its tensors (sanitizers do not see
 * inside JIT code). A changed guard is an internal error: it is reported
 * on stderr with the step and the tensor next to the guard, and the
 * process exits with status 1 (no further step may trust the arena). The
 * check reads every guard after every step: about 256 bytes per tensor. */
#include "rt.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CANARY = 0xfd };   /* as f32, -4.2e37: not a value a kernel writes by chance */

struct rt_Exec {
	const rt_Program *p;
	rt_Pool *pool;
	uint8_t *arena;
	bool own_arena;    /* false: the caller's memory (rt_exec_create_in) */
	void **ptr;        /* p->argoff.len operand pointers, steps' arrays back to back */
	bool profile;
	bool check;        /* the program has guards: verify them around every step */
	int64_t nrun;      /* runs since profiling was switched on */
	double *seconds;   /* per step, summed over nrun runs */
	uint32_t *order;   /* scratch for sorting the profile */
};

static int check_program(const rt_Program *p, Diag *d)
{
	if (p->arena_size < 0)
		return diag_error(d, (SrcLoc){0}, "program: negative arena size");
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		if (!st->fn)
			return diag_error(d, (SrcLoc){0}, "program: step %zu (%s) is not bound to "
					  "code (rt_program_bind)", i, st->name);
		if ((size_t)st->arg0 + st->narg > p->argoff.len)
			return diag_error(d, (SrcLoc){0}, "program: step %zu (%s) has operands "
					  "outside the offset table", i, st->name);
		for (uint32_t a = 0; a < st->narg; a++) {
			int64_t off = VEC_AT(p->argoff, int64_t, st->arg0 + a);
			if (off < 0 || off > p->arena_size)
				return diag_error(d, (SrcLoc){0}, "program: step %zu (%s) operand %u "
						  "at offset %" PRId64 " is outside the arena of %"
						  PRId64 " bytes", i, st->name, a, off, p->arena_size);
		}
	}
	for (size_t i = 0; i < p->guard.len; i++) {
		const rt_Guard *gd = &VEC_AT(p->guard, rt_Guard, i);
		if (gd->offset < 0 || gd->nbytes <= 0 || gd->nbytes > p->arena_size ||
		    gd->offset > p->arena_size - gd->nbytes)
			return diag_error(d, (SrcLoc){0}, "program: guard %zu (%" PRId64 " bytes at %"
					  PRId64 ") is outside the arena of %" PRId64 " bytes", i,
					  gd->nbytes, gd->offset, p->arena_size);
	}
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		rt_Tensor t = {.dtype = s->dtype, .rank = s->rank};
		memcpy(t.dim, s->dim, sizeof t.dim);
		if (s->offset < 0 || s->nbytes != rt_nbytes(&t) || s->nbytes > p->arena_size ||
		    s->offset > p->arena_size - s->nbytes)
			return diag_error(d, (SrcLoc){0}, "program: slot %s (%" PRId64 " bytes at %"
					  PRId64 ") does not fit its shape or the arena of %"
					  PRId64 " bytes", s->name, s->nbytes, s->offset,
					  p->arena_size);
	}
	return 0;
}

int rt_exec_create(const rt_Program *p, rt_Pool *pool, rt_Exec **out, Diag *d)
{
	return rt_exec_create_in(p, pool, NULL, 0, out, d);
}

int rt_exec_create_in(const rt_Program *p, rt_Pool *pool, void *arena, size_t size,
		      rt_Exec **out, Diag *d)
{
	*out = NULL;
	if (check_program(p, d))
		return -1;
	if (arena && (size < (uint64_t)p->arena_size || (uintptr_t)arena % RT_ALIGN))
		return diag_error(d, (SrcLoc){0}, "the arena given holds %zu bytes at %p; the "
				  "program needs %" PRId64 " bytes aligned to %d", size, arena,
				  p->arena_size, RT_ALIGN);
	rt_Exec *e = mem_calloc(1, sizeof *e);
	if (!e)
		goto oom;
	e->p = p;
	e->pool = pool;
	size_t nstep = p->step.len ? p->step.len : 1;
	e->own_arena = !arena;
	e->arena = arena ? arena : mem_aligned(p->arena_size ? (size_t)p->arena_size : 1, RT_ALIGN);
	e->ptr = mem_calloc(p->argoff.len ? p->argoff.len : 1, sizeof *e->ptr);
	e->seconds = mem_calloc(nstep, sizeof *e->seconds);
	e->order = mem_calloc(nstep, sizeof *e->order);
	if (!e->arena || !e->ptr || !e->seconds || !e->order)
		goto oom;
	memset(e->arena, 0, (size_t)p->arena_size);
	for (size_t i = 0; i < p->argoff.len; i++)
		e->ptr[i] = e->arena + VEC_AT(p->argoff, int64_t, i);
	/* Masks are constants of the program: written once, here. */
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_MASK || s->dtype != RT_F32 || !s->bits)
			continue;
		float *m = (float *)(e->arena + s->offset);
		for (int64_t k = 0; k < s->nbytes / 4; k++)
			m[k] = s->bits[k] ? 1.0f : 0.0f;
	}
	for (size_t i = 0; i < p->guard.len; i++) {
		const rt_Guard *gd = &VEC_AT(p->guard, rt_Guard, i);
		memset(e->arena + gd->offset, CANARY, (size_t)gd->nbytes);
	}
	e->check = p->guard.len > 0;
	*out = e;
	return 0;
oom:
	rt_exec_destroy(e);
	return diag_error(d, (SrcLoc){0}, "out of memory creating an executor (arena of %" PRId64
			  " bytes)", p->arena_size);
}

void rt_exec_destroy(rt_Exec *e)
{
	if (!e)
		return;
	if (e->own_arena)
		mem_aligned_free(e->arena);
	mem_free(e->ptr);
	mem_free(e->seconds);
	mem_free(e->order);
	mem_free(e);
}

const rt_Program *rt_exec_program(const rt_Exec *e)
{
	return e->p;
}

void *rt_exec_arena(rt_Exec *e)
{
	return e->arena;
}

rt_Pool *rt_exec_pool(rt_Exec *e)
{
	return e->pool;
}

static void slot_tensor(rt_Exec *e, const rt_Slot *s, rt_Tensor *out)
{
	memset(out, 0, sizeof *out);
	out->dtype = s->dtype;
	out->rank = s->rank;
	memcpy(out->dim, s->dim, sizeof out->dim);
	out->data = e->arena + s->offset;
}

int rt_exec_tensor(rt_Exec *e, const char *name, rt_Tensor *out)
{
	const rt_Slot *s = rt_program_find(e->p, name);
	if (!s)
		return -1;
	slot_tensor(e, s, out);
	return 0;
}

int rt_exec_slot_tensor(rt_Exec *e, const rt_Slot *s, rt_Tensor *out)
{
	slot_tensor(e, s, out);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Steps [lo, hi) of phase `ph`. A program that never set its phases
 * (phase_start all zero) is all forward. */
static void phase_range(const rt_Program *p, rt_Phase ph, size_t *lo, size_t *hi)
{
	if (p->phase_start[RT_PHASE_COUNT] == 0) {
		*lo = 0;
		*hi = ph == RT_PHASE_FORWARD ? p->step.len : 0;
		return;
	}
	*lo = p->phase_start[ph];
	*hi = p->phase_start[ph + 1];
}

bool rt_exec_checked(const rt_Exec *e)
{
	return e->check;
}

/* Offset of the first byte of [p, p+n) that is not CANARY, or -1. The
 * range is all CANARY iff its first byte is and it equals itself shifted
 * by one byte: one memcmp, as fast as the C library makes it. */
static int64_t first_changed(const uint8_t *p, int64_t n)
{
	if (p[0] == CANARY && !memcmp(p, p + 1, (size_t)n - 1))
		return -1;
	for (int64_t i = 0; i < n; i++)
		if (p[i] != CANARY)
			return i;
	return -1;
}

int64_t rt_exec_broken_guard(const rt_Exec *e, int64_t *at)
{
	const rt_Guard *gd = e->p->guard.data;
	for (size_t i = 0; i < e->p->guard.len; i++) {
		int64_t j = first_changed(e->arena + gd[i].offset, gd[i].nbytes);
		if (j >= 0) {
			if (at)
				*at = gd[i].offset + j;
			return (int64_t)i;
		}
	}
	return -1;
}

/* Report a changed guard and exit: step i changed it, or with `before`
 * something outside the kernels did before step i ran. */
static void guard_failed(const rt_Exec *e, size_t i, bool before, int64_t gi, int64_t at)
{
	const rt_Guard *gd = &VEC_AT(e->p->guard, rt_Guard, gi);
	const char *kernel = i < e->p->step.len ? VEC_AT(e->p->step, rt_Step, i).name : "?";
	int64_t last = gd->offset + gd->nbytes - 1;
	while (last > at && e->arena[last] == CANARY)
		last--;
	/* the nearer neighbour is the likelier culprit's tensor */
	bool past = gd->after &&
		    (!gd->before || at - gd->offset <= gd->offset + gd->nbytes - 1 - last);
	char where[128];
	if (past)
		snprintf(where, sizeof where, "bytes %" PRId64 "..%" PRId64 " after its end",
			 at - gd->offset, last - gd->offset);
	else
		snprintf(where, sizeof where, "bytes %" PRId64 "..%" PRId64 " before its start",
			 gd->offset + gd->nbytes - last, gd->offset + gd->nbytes - at);
	const char *who = past ? gd->after : gd->before;
	if (!who)   /* only in an arena that holds no tensor */
		who = "the arena's end";
	fflush(stdout);
	if (before)
		fprintf(stderr, "mswc: internal error: before kernel %s (step %zu) ran, a write "
			"outside the kernels went %s %s (%s changed)\n", kernel, i,
			past ? "past" : "before", who, where);
	else
		fprintf(stderr, "mswc: internal error: kernel %s (step %zu) wrote %s %s (%s "
			"changed)\n", kernel, i, past ? "past" : "before", who, where);
	fflush(stderr);
	_Exit(1);
}

static void check_guards(const rt_Exec *e, size_t i, bool before)
{
	int64_t at = 0, gi = rt_exec_broken_guard(e, &at);
	if (gi >= 0)
		guard_failed(e, i, before, gi, at);
}

static void run_steps(rt_Exec *e, size_t lo, size_t hi)
{
	const rt_Step *st = e->p->step.data;
	if (e->check && lo < hi)
		check_guards(e, lo, true);
	for (size_t i = lo; i < hi; i++) {
		double t0 = e->profile ? now() : 0;
		rt_pool_run(e->pool, st[i].fn, e->ptr + st[i].arg0, st[i].ntask);
		if (e->profile)
			e->seconds[i] += now() - t0;
		if (e->check)
			check_guards(e, i, false);
	}
}

void rt_exec_run(rt_Exec *e)
{
	run_steps(e, 0, e->p->step.len);
	if (e->profile)
		e->nrun++;
}

void rt_exec_run_phase(rt_Exec *e, rt_Phase ph)
{
	size_t lo, hi;
	phase_range(e->p, ph, &lo, &hi);
	run_steps(e, lo, hi);
	if (e->profile && ph == RT_PHASE_FORWARD)
		e->nrun++;
}

/* A NaN anywhere, or an infinity where the step is not a mask that writes
 * -inf on purpose. */
static bool bad_output(const rt_Step *st, const float *x)
{
	if (st->out_dtype != RT_F32)
		return false;
	for (int64_t i = 0; i < st->out_nbytes / 4; i++)
		if (isnan(x[i]) || (isinf(x[i]) && !st->out_masks))
			return true;
	return false;
}

int64_t rt_exec_first_nonfinite(rt_Exec *e)
{
	const rt_Program *p = e->p;
	const rt_Step *st = p->step.data;
	const int64_t *off = p->argoff.data;
	for (size_t i = 0; i < p->step.len; i++) {
		run_steps(e, i, i + 1);
		if (bad_output(&st[i], (const float *)((char *)e->arena + off[st[i].arg0])))
			return (int64_t)i;
	}
	return -1;
}

void rt_exec_profile(rt_Exec *e, bool on)
{
	e->profile = on;
	if (on) {
		e->nrun = 0;
		memset(e->seconds, 0, (e->p->step.len ? e->p->step.len : 1) * sizeof *e->seconds);
	}
}

/* Insertion sort by time, descending: profiles are printed rarely and the
 * order array was allocated up front, so printing needs no memory. */
static void sort_steps(const rt_Exec *e, uint32_t *order, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t k = (uint32_t)i;
		size_t j = i;
		for (; j > 0 && e->seconds[order[j - 1]] < e->seconds[k]; j--)
			order[j] = order[j - 1];
		order[j] = k;
	}
}

void rt_exec_print_profile(const rt_Exec *e, FILE *f)
{
	const rt_Program *p = e->p;
	size_t n = p->step.len;
	if (e->nrun == 0) {
		fprintf(f, "no profile: switch profiling on and run first\n");
		return;
	}
	sort_steps(e, e->order, n);
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += e->seconds[i];
	double runs = (double)e->nrun;
	fprintf(f, "%-5s %-32s %10s %6s %10s %9s\n", "step", "kernel", "ms/run", "%", "GFLOP/s",
		"tasks");
	for (size_t r = 0; r < n; r++) {
		uint32_t i = e->order[r];
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		double sec = e->seconds[i] / runs;
		double gflops = sec > 0 && st->flops > 0 ? st->flops / sec * 1e-9 : 0;
		fprintf(f, "%-5u %-32.32s %10.4f %6.2f %10.3f %9" PRId64 "\n", i, st->name,
			sec * 1e3, total > 0 ? 100 * e->seconds[i] / total : 0, gflops, st->ntask);
	}
	fprintf(f, "total %.4f ms/run over %" PRId64 " run%s, %zu steps, %d thread%s\n",
		total / runs * 1e3, e->nrun, e->nrun == 1 ? "" : "s", n,
		rt_pool_size(e->pool), rt_pool_size(e->pool) == 1 ? "" : "s");
}

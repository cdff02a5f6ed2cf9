/* program.c: building, binding and releasing an rt_Program.
 *
 * A program is plain data: steps (kernel, task count, operand offsets),
 * named slots, and the arena size. The backend describes it with kernels
 * named by symbol and binds the symbols to code (its JIT, or the table of
 * an ahead-of-time object); tests fill it by hand with C kernels, bound
 * from the start. Each distinct symbol is stored once (p->kernel) and
 * resolved once. Adding a step or slot copies every
 * string and array handed in, so callers may pass temporaries. Malformed
 * additions (no kernel, no output operand, rank too large, a slot name
 * already used for a different tensor, mask bits that do not fit the
 * slot, guards out of order or touching) are refused with -1 and leave the
 * program unchanged; rt_exec_create checks the rest
 * (offsets inside the arena) against the final arena size. */
#include "rt.h"

#include <string.h>

rt_Program *rt_program_create(void)
{
	return mem_calloc(1, sizeof(rt_Program));
}

void rt_program_destroy(rt_Program *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->step.len; i++)
		mem_free(VEC_AT(p->step, rt_Step, i).name);
	for (size_t i = 0; i < p->kernel.len; i++)
		mem_free(VEC_AT(p->kernel, char *, i));
	vec_free(&p->kernel);
	for (size_t i = 0; i < p->slot.len; i++) {
		mem_free(VEC_AT(p->slot, rt_Slot, i).name);
		mem_free(VEC_AT(p->slot, rt_Slot, i).bits);
	}
	for (size_t i = 0; i < p->guard.len; i++) {
		mem_free(VEC_AT(p->guard, rt_Guard, i).after);
		mem_free(VEC_AT(p->guard, rt_Guard, i).before);
	}
	vec_free(&p->step);
	vec_free(&p->argoff);
	vec_free(&p->slot);
	vec_free(&p->guard);
	if (p->code_release)
		p->code_release(p->code_owner);
	mem_free(p);
}

/* Two slots may share a name only if they are the same tensor (the loss
 * also listed as an output called "loss"): then a lookup by name cannot
 * pick the wrong one. */
static int same_tensor(const rt_Slot *a, const rt_Slot *b)
{
	return a->offset == b->offset && a->nbytes == b->nbytes && a->dtype == b->dtype &&
	       a->rank == b->rank && !memcmp(a->dim, b->dim, a->rank * sizeof a->dim[0]);
}

int rt_program_add_slot(rt_Program *p, const rt_Slot *s)
{
	const rt_Slot *old = s->name ? rt_program_find(p, s->name) : NULL;
	if (!s->name || s->rank > RT_MAX_RANK || s->dtype >= RT_DTYPE_COUNT ||
	    (old && !same_tensor(old, s)))
		return -1;
	/* A mask's bits: one byte per element of the slot's shape. */
	int64_t numel = 1;
	for (int i = 0; i < s->rank; i++)
		numel *= s->dim[i];
	if (s->bits && (s->kind != RT_SLOT_MASK || numel * rt_dtype_size(s->dtype) != s->nbytes))
		return -1;
	char *name = mem_strdup(s->name);
	uint8_t *bits = s->bits ? mem_alloc(numel > 0 ? (size_t)numel : 1) : NULL;
	rt_Slot *slot = name && (bits || !s->bits) ? vec_push(&p->slot, sizeof *slot) : NULL;
	if (!slot) {
		mem_free(name);
		mem_free(bits);
		return -1;
	}
	if (bits)
		memcpy(bits, s->bits, (size_t)numel);
	*slot = *s;
	slot->name = name;
	slot->bits = bits;
	return 0;
}

/* The index of symbol s in p->kernel, added if new; RT_NO_KERNEL when out
 * of memory. */
static uint32_t kernel_index(rt_Program *p, const char *s)
{
	for (size_t i = 0; i < p->kernel.len; i++)
		if (!strcmp(VEC_AT(p->kernel, char *, i), s))
			return (uint32_t)i;
	if (p->kernel.len >= RT_NO_KERNEL)
		return RT_NO_KERNEL;
	char *copy = mem_strdup(s);
	char **slot = copy ? vec_push(&p->kernel, sizeof *slot) : NULL;
	if (!slot) {
		mem_free(copy);
		return RT_NO_KERNEL;
	}
	*slot = copy;
	return (uint32_t)(p->kernel.len - 1);
}

static int add_step(rt_Program *p, rt_KernelFn fn, const char *symbol, int64_t ntask,
		    const int64_t *argoff, uint32_t narg, const char *name, double flops)
{
	if ((!fn && !symbol) || narg == 0 || ntask < 0)
		return -1;
	uint32_t kernel = RT_NO_KERNEL;
	if (symbol && (kernel = kernel_index(p, symbol)) == RT_NO_KERNEL)
		return -1;
	size_t nargoff = p->argoff.len;
	char *copy = mem_strdup(name ? name : "?");
	if (!copy || vec_reserve(&p->argoff, nargoff + narg, sizeof(int64_t)))
		goto fail;
	rt_Step *st = vec_push(&p->step, sizeof *st);
	if (!st)
		goto fail;
	memcpy((int64_t *)p->argoff.data + nargoff, argoff, narg * sizeof(int64_t));
	p->argoff.len = nargoff + narg;
	st->fn = fn;
	st->kernel = kernel;
	st->ntask = ntask;
	st->arg0 = (uint32_t)nargoff;
	st->narg = narg;
	st->name = copy;
	st->flops = flops;
	return 0;
fail:
	mem_free(copy);
	return -1;
}

int rt_program_add_step(rt_Program *p, rt_KernelFn fn, int64_t ntask, const int64_t *argoff,
			uint32_t narg, const char *name, double flops)
{
	return fn ? add_step(p, fn, NULL, ntask, argoff, narg, name, flops) : -1;
}

int rt_program_add_symbol_step(rt_Program *p, const char *symbol, int64_t ntask,
			       const int64_t *argoff, uint32_t narg, const char *name, double flops)
{
	return symbol ? add_step(p, NULL, symbol, ntask, argoff, narg, name, flops) : -1;
}

int rt_program_bind(rt_Program *p, rt_Resolver resolve, void *user, Diag *d)
{
	size_t nk = p->kernel.len;
	rt_KernelFn *fn = mem_calloc(nk ? nk : 1, sizeof *fn);
	if (!fn)
		return diag_error(d, (SrcLoc){0}, "out of memory binding a program");
	for (size_t k = 0; k < nk; k++) {
		const char *sym = VEC_AT(p->kernel, char *, k);
		int nerr = d->nerror;
		fn[k] = resolve(user, sym, (uint32_t)k, d);
		if (!fn[k]) {
			mem_free(fn);
			if (d->nerror == nerr)
				diag_error(d, (SrcLoc){0}, "program: no code for kernel '%s'", sym);
			return -1;
		}
	}
	for (size_t i = 0; i < p->step.len; i++) {
		rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		if (st->kernel != RT_NO_KERNEL)
			st->fn = fn[st->kernel];
	}
	mem_free(fn);
	return 0;
}

bool rt_program_bound(const rt_Program *p)
{
	for (size_t i = 0; i < p->step.len; i++)
		if (!VEC_AT(p->step, rt_Step, i).fn)
			return false;
	return true;
}

int rt_program_add_guard(rt_Program *p, int64_t offset, int64_t nbytes, const char *after,
			 const char *before)
{
	if (nbytes <= 0 || offset < 0)
		return -1;
	if (p->guard.len) {
		const rt_Guard *last = &VEC_AT(p->guard, rt_Guard, p->guard.len - 1);
		if (offset <= last->offset + last->nbytes)
			return -1;
	}
	char *a = after ? mem_strdup(after) : NULL, *b = before ? mem_strdup(before) : NULL;
	rt_Guard *gd = (!after || a) && (!before || b) ? vec_push(&p->guard, sizeof *gd) : NULL;
	if (!gd) {
		mem_free(a);
		mem_free(b);
		return -1;
	}
	*gd = (rt_Guard){offset, nbytes, a, b};
	return 0;
}

const rt_Slot *rt_program_find(const rt_Program *p, const char *name)
{
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (!strcmp(s->name, name))
			return s;
	}
	return NULL;
}

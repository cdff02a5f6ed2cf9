/* sparsity.c: the runtime half of static sparsity (docs/sparsity.md).
 *
 * The compiler decides the masks (passes/prune.c) and hands them over as
 * RT_SLOT_MASK slots whose bits the program owns; rt_exec_create writes
 * them into the arena as f32 0/1, where the forward pass multiplies the
 * weights by them and the update phase keeps pruned weights and moments at
 * zero. What is left for the runtime: zeroing pruned weights whenever
 * weights arrive from outside (init, loading), giving the masks to
 * checkpoint writers as U8 tensors, and checking the invariant.
 *
 * A pruned weight is set to +0.0, not multiplied by 0, so a weight that
 * was -3 or NaN does not leave -0.0 or NaN behind. */
#include "rt.h"

#include <string.h>

bool rt_is_mask_name(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".mask");
}

int rt_mask_validate(const char *file, const rt_NamedTensor *m, Diag *d)
{
	if (m->t.dtype != RT_U8)
		return rt_file_error(d, file, "mask '%s' is %s; a mask is U8 (or BOOL), 0 where the "
				     "weight is pruned and 1 where it is kept", m->name,
				     rt_dtype_name(m->t.dtype));
	const uint8_t *x = m->t.data;
	for (int64_t i = 0, n = rt_numel(&m->t); i < n; i++)
		if (x[i] > 1) {
			char at[160];
			rt_index_str(&m->t, i, at, sizeof at);
			return rt_file_error(d, file, "mask '%s' holds %u at %s; a mask holds only 0 "
					     "(pruned) and 1 (kept)", m->name, x[i], at);
		}
	return 0;
}

static const rt_Slot *param_of(const rt_Program *p, const rt_Slot *mask)
{
	if (mask->param < 0 || (size_t)mask->param >= p->slot.len)
		return NULL;
	const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, mask->param);
	return s->kind == RT_SLOT_PARAM && s->dtype == RT_F32 && s->nbytes == mask->nbytes ? s : NULL;
}

void rt_apply_masks(rt_Exec *e)
{
	const rt_Program *p = rt_exec_program(e);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *m = &VEC_AT(p->slot, rt_Slot, i);
		const rt_Slot *w = m->kind == RT_SLOT_MASK && m->bits ? param_of(p, m) : NULL;
		if (!w)
			continue;
		float *x = (float *)((char *)rt_exec_arena(e) + w->offset);
		for (int64_t k = 0; k < w->nbytes / 4; k++)
			if (!m->bits[k])
				x[k] = 0.0f;
	}
}

int rt_mask_tensors(const rt_Program *p, rt_NamedTensor **out, int *n)
{
	*n = 0;
	*out = mem_calloc(p->slot.len ? p->slot.len : 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_MASK || !s->bits)
			continue;
		rt_NamedTensor *t = &(*out)[(*n)++];
		t->name = s->name;
		t->t.dtype = RT_U8;
		t->t.rank = s->rank;
		for (int k = 0; k < s->rank; k++)
			t->t.dim[k] = s->dim[k];
		t->t.data = s->bits;
	}
	return 0;
}

int rt_sparsity_check(rt_Exec *e, const char *param, int64_t *zeros, int64_t *bad)
{
	const rt_Program *p = rt_exec_program(e);
	const rt_Slot *w = rt_program_find(p, param);
	*zeros = *bad = 0;
	if (!w || w->kind != RT_SLOT_PARAM || w->dtype != RT_F32)
		return -1;
	const rt_Slot *m = NULL;
	for (size_t i = 0; i < p->slot.len && !m; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_MASK && s->bits && param_of(p, s) == w)
			m = s;
	}
	const float *x = (const float *)((const char *)rt_exec_arena(e) + w->offset);
	for (int64_t k = 0; k < w->nbytes / 4; k++) {
		*zeros += x[k] == 0.0f;
		*bad += m && !m->bits[k] && x[k] != 0.0f;
	}
	return 0;
}

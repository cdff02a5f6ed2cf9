/* weights.c: parameters between an exec's arena and a safetensors file.
 *
 * Loading is all or nothing: the whole file is read and checked first (every
 * parameter present with the same dtype and shape, no tensor the program
 * does not know), every problem is reported, not just the first, and only
 * then are the parameters copied into the arena; on error the arena is
 * untouched. Hugging Face GPT-2 files carry two non-parameter buffers per
 * layer, "*.attn.bias" (the causal mask) and "*.attn.masked_bias"; those
 * are skipped silently. Saving writes every parameter slot, with the
 * metadata {"format":"pt"} that Hugging Face loaders expect, and each
 * sparse param's mask as a U8 tensor "<param>.mask" (1 = kept) beside it.
 * A file's masks must equal the program's, except that the masks of params
 * the program keeps dense are ignored (dense fine-tuning from a sparse
 * checkpoint); after loading, pruned weights are set to zero. */
#include "rt.h"

#include <math.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* Known buffers in Hugging Face GPT-2 checkpoints that are not parameters. */
static int hf_buffer(const char *name)
{
	return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

static void shape_str(const rt_Tensor *t, char *buf, size_t n)
{
	size_t at = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < t->rank && at < n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ",%lld" : "%lld", (long long)t->dim[i]);
	if (at < n)
		snprintf(buf + at, n - at, "]");
}

static int same_shape(const rt_Tensor *a, const rt_Tensor *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->dim[i] != b->dim[i])
			return 0;
	return 1;
}

/* "<param>.mask" in a file: the program's mask s must be the same
 * pattern (masks are compiled in; the tools read them before compiling),
 * or, when the program keeps that param dense, the mask is ignored. */
static int check_mask(const rt_Program *p, const rt_Slot *s, const rt_NamedTensor *nt,
		      const char *path, Diag *d)
{
	if (!s) {
		char base[512];
		size_t n = strlen(nt->name) - 5;
		snprintf(base, sizeof base, "%.*s", (int)n, nt->name);
		const rt_Slot *w = rt_program_find(p, base);
		if (w && w->kind == RT_SLOT_PARAM)
			return 0;
		return rt_file_error(d, path, "unknown tensor '%s' (a mask of no parameter of this "
				     "model)", nt->name);
	}
	int64_t numel = 1;
	for (int k = 0; k < s->rank; k++)
		numel *= s->dim[k];
	bool same = s->kind == RT_SLOT_MASK && s->bits && nt->t.dtype == RT_U8 &&
		    nt->t.rank == s->rank && rt_numel(&nt->t) == numel;
	for (int k = 0; same && k < s->rank; k++)
		same = nt->t.dim[k] == s->dim[k];
	for (int64_t k = 0; same && k < numel; k++)
		same = (((const uint8_t *)nt->t.data)[k] != 0) == s->bits[k];
	if (!same)
		return rt_file_error(d, path, "mask '%s' is not the one the model was compiled "
				     "with (masks are read before compiling; pass the same file)",
				     nt->name);
	return 0;
}

/* The program's mask bits of param slot index `param`, or NULL if it is dense. */
static const uint8_t *mask_bits(const rt_Program *p, size_t param)
{
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *m = &VEC_AT(p->slot, rt_Slot, i);
		if (m->kind == RT_SLOT_MASK && m->bits && m->param == (int32_t)param)
			return m->bits;
	}
	return NULL;
}

/* A NaN or infinity in a weight the model uses makes every output NaN, and
 * nothing downstream can say which tensor was to blame; weights the mask
 * prunes are set to zero on loading and do not count. */
static int check_finite(const rt_Program *p, size_t param, const rt_NamedTensor *nt,
			const char *path, Diag *d)
{
	if (nt->t.dtype != RT_F32)
		return 0;
	const uint8_t *bits = mask_bits(p, param);
	const float *x = nt->t.data;
	int64_t bad = 0, first = -1;
	for (int64_t k = 0, n = rt_numel(&nt->t); k < n; k++)
		if (!isfinite(x[k]) && (!bits || bits[k])) {
			first = first < 0 ? k : first;
			bad++;
		}
	if (!bad)
		return 0;
	char at[160];
	rt_index_str(&nt->t, first, at, sizeof at);
	return rt_file_error(d, path, "parameter '%s' holds %lld non-finite value%s (the first, "
			     "%g, at %s)", nt->name, (long long)bad, bad == 1 ? "" : "s",
			     (double)x[first], at);
}

static int check_params(rt_Exec *e, const rt_TensorFile *f, const char *path, unsigned flags,
			Diag *d)
{
	const rt_Program *p = rt_exec_program(e);
	int bad = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		const rt_NamedTensor *nt = rt_tensorfile_find(f, s->name);
		rt_Tensor want;
		rt_exec_slot_tensor(e, s, &want);
		if (!nt) {
			bad = rt_file_error(d, path, "parameter '%s' is missing", s->name);
			continue;
		}
		if (!same_shape(&want, &nt->t)) {
			char sw[160], sf[160];
			shape_str(&want, sw, sizeof sw);
			shape_str(&nt->t, sf, sizeof sf);
			bad = rt_file_error(d, path, "parameter '%s' is %s%s in the file, the model "
					    "wants %s%s", s->name, rt_dtype_name(nt->t.dtype), sf,
					    rt_dtype_name(want.dtype), sw);
		} else if (check_finite(p, i, nt, path, d)) {
			bad = -1;
		}
	}
	for (int i = 0; i < f->ntensor; i++) {
		const rt_Slot *s = rt_program_find(p, f->tensor[i].name);
		if (rt_is_mask_name(f->tensor[i].name)) {
			if (!(flags & RT_LOAD_IGNORE_MASKS) &&
			    (rt_mask_validate(path, &f->tensor[i], d) ||
			     check_mask(p, s, &f->tensor[i], path, d)))
				bad = -1;
			continue;
		}
		if ((!s || s->kind != RT_SLOT_PARAM) && !hf_buffer(f->tensor[i].name))
			bad = rt_file_error(d, path, "unknown tensor '%s' (not a parameter of this "
					    "model)", f->tensor[i].name);
	}
	return bad;
}

int rt_load_params_from(rt_Exec *e, const rt_TensorFile *f, const char *path, unsigned flags,
			Diag *d)
{
	if (check_params(e, f, path, flags, d))
		return -1;
	const rt_Program *p = rt_exec_program(e);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		rt_Tensor t;
		rt_exec_slot_tensor(e, s, &t);
		memcpy(t.data, rt_tensorfile_find(f, s->name)->t.data, (size_t)s->nbytes);
	}
	rt_apply_masks(e);
	return 0;
}

int rt_load_params(rt_Exec *e, const char *path, Diag *d)
{
	rt_TensorFile f;
	if (rt_safetensors_read(path, &f, d))
		return -1;
	int rc = rt_load_params_from(e, &f, path, 0, d);
	rt_tensorfile_free(&f);
	return rc;
}

int rt_save_params(rt_Exec *e, const char *path, Diag *d)
{
	const rt_Program *p = rt_exec_program(e);
	rt_NamedTensor *t = mem_calloc(2 * p->slot.len + 1, sizeof *t), *m = NULL;
	int nm = 0;
	if (!t || rt_mask_tensors(p, &m, &nm)) {
		mem_free(t);
		return rt_file_error(d, path, "out of memory");
	}
	int n = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		t[n].name = s->name;
		rt_exec_slot_tensor(e, s, &t[n].t);
		n++;
	}
	for (int i = 0; i < nm; i++)
		t[n++] = m[i];
	int rc = rt_safetensors_write(path, t, n, "{\"format\":\"pt\"}", d);
	mem_free(t);
	mem_free(m);
	return rc;
}

/* test_weights.c: parameters to and from safetensors checkpoints.
 *
 * Save and load round trip bit for bit; a load that finds a missing
 * parameter, a wrong shape or dtype, or an unknown tensor fails, names each
 * problem, and leaves the arena untouched; Hugging Face GPT-2's
 * ".attn.bias" / ".attn.masked_bias" buffers are skipped; NaN/Inf weights
 * and masks that are not U8 0/1 are refused by name. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

static void add(rt_Program *p, const char *name, rt_SlotKind kind, int rank, const int64_t *dim,
		int64_t *at)
{
	rt_Slot s = {.name = (char *)name, .kind = kind, .dtype = RT_F32, .rank = (uint8_t)rank,
		     .init = 1, .init_std = 1, .offset = *at};
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= s.dim[i] = dim[i];
	s.nbytes = n * 4;
	CHECK(rt_program_add_slot(p, &s) == 0);
	*at += (s.nbytes + 63) / 64 * 64;
}

static rt_Program *build(void)
{
	rt_Program *p = rt_program_create();
	int64_t at = 0, d1[2] = {3, 4}, d2[1] = {4}, d3[2] = {2, 2};
	add(p, "h.0.attn.c_attn.weight", RT_SLOT_PARAM, 2, d1, &at);
	add(p, "h.0.attn.c_attn.bias", RT_SLOT_PARAM, 1, d2, &at);
	add(p, "x", RT_SLOT_INPUT, 2, d3, &at);
	p->arena_size = at;
	return p;
}

static rt_Exec *exec_of(rt_Program *p)
{
	rt_Exec *e = NULL;
	Diag d;
	diag_init(&d);
	CHECK(rt_exec_create(p, NULL, &e, &d) == 0);
	diag_free(&d);
	return e;
}

static void test_round_trip(void)
{
	rt_Program *p = build();
	rt_Exec *a = exec_of(p), *b = exec_of(p);
	Diag d;
	diag_init(&d);
	CHECK(rt_init_params(a, 5) == 0);
	CHECK(rt_save_params(a, tmp_path("w.safetensors"), &d) == 0);
	CHECK(rt_load_params(b, tmp_path("w.safetensors"), &d) == 0);
	rt_Tensor ta, tb;
	rt_exec_tensor(a, "h.0.attn.c_attn.weight", &ta);
	rt_exec_tensor(b, "h.0.attn.c_attn.weight", &tb);
	CHECK(memcmp(ta.data, tb.data, 48) == 0);
	rt_exec_tensor(a, "h.0.attn.c_attn.bias", &ta);
	rt_exec_tensor(b, "h.0.attn.c_attn.bias", &tb);
	CHECK(memcmp(ta.data, tb.data, 16) == 0);
	/* only parameters are saved, with the HF metadata */
	rt_TensorFile f;
	CHECK(rt_safetensors_read(tmp_path("w.safetensors"), &f, &d) == 0);
	CHECK(f.ntensor == 2 && rt_tensorfile_find(&f, "x") == NULL);
	CHECK(f.metadata_json && strstr(f.metadata_json, "\"format\":\"pt\""));
	rt_tensorfile_free(&f);
	CHECK(d.nerror == 0);
	rt_exec_destroy(a);
	rt_exec_destroy(b);
	rt_program_destroy(p);
	diag_free(&d);
}

static void test_hf_buffers_skipped(void)
{
	float w[12] = {0}, bias[4] = {1, 2, 3, 4}, mask[4] = {1, 0, 1, 1}, mb = -1e4f;
	rt_NamedTensor t[4] = {
		{"h.0.attn.c_attn.weight", {.dtype = RT_F32, .rank = 2, .dim = {3, 4}, .data = w}},
		{"h.0.attn.c_attn.bias", {.dtype = RT_F32, .rank = 1, .dim = {4}, .data = bias}},
		{"h.0.attn.bias", {.dtype = RT_F32, .rank = 4, .dim = {1, 1, 2, 2}, .data = mask}},
		{"h.0.attn.masked_bias", {.dtype = RT_F32, .rank = 0, .data = &mb}},
	};
	Diag d;
	diag_init(&d);
	CHECK(rt_safetensors_write(tmp_path("hf.safetensors"), t, 4, NULL, &d) == 0);
	rt_Program *p = build();
	rt_Exec *e = exec_of(p);
	CHECK(rt_load_params(e, tmp_path("hf.safetensors"), &d) == 0);
	rt_Tensor tb;
	rt_exec_tensor(e, "h.0.attn.c_attn.bias", &tb);
	CHECK(((float *)tb.data)[3] == 4);
	rt_exec_destroy(e);
	rt_program_destroy(p);
	diag_free(&d);
}

static void test_mismatches(void)
{
	float w[16] = {0};
	rt_NamedTensor t[3] = {
		{"h.0.attn.c_attn.weight", {.dtype = RT_F32, .rank = 2, .dim = {4, 3}, .data = w}},
		{"lm_head.weight", {.dtype = RT_F32, .rank = 1, .dim = {2}, .data = w}},
		{"x", {.dtype = RT_F32, .rank = 2, .dim = {2, 2}, .data = w}},
	};
	Diag d;
	diag_init(&d);
	CHECK(rt_safetensors_write(tmp_path("bad.safetensors"), t, 3, NULL, &d) == 0);
	rt_Program *p = build();
	rt_Exec *e = exec_of(p);
	CHECK(rt_init_params(e, 1) == 0);
	rt_Tensor tw;
	rt_exec_tensor(e, "h.0.attn.c_attn.weight", &tw);
	float before[12];
	memcpy(before, tw.data, sizeof before);
	CHECK(rt_load_params(e, tmp_path("bad.safetensors"), &d) == -1);
	const char *msg = diag_text(&d);
	CHECK(strstr(msg, "parameter 'h.0.attn.c_attn.bias' is missing") != NULL);
	CHECK(strstr(msg, "'h.0.attn.c_attn.weight' is f32[4,3] in the file, the model wants "
			  "f32[3,4]") != NULL);
	CHECK(strstr(msg, "unknown tensor 'lm_head.weight'") != NULL);
	CHECK(strstr(msg, "unknown tensor 'x'") != NULL);  /* an input is not a parameter */
	CHECK(strstr(msg, "bad.safetensors: error:") != NULL);
	CHECK(d.nerror == 4);
	CHECK(memcmp(before, tw.data, sizeof before) == 0);
	CHECK(rt_load_params(e, tmp_path("missing.safetensors"), &d) == -1);
	rt_exec_destroy(e);
	rt_program_destroy(p);
	diag_free(&d);
}

/* Non-finite weights are named at load; masks must be U8 of 0 and 1. An F32
 * mask used to be ignored (its param trained dense), a byte 7 taken as kept. */
static void test_bad_values(void)
{
	float w[12] = {0}, bias[4] = {1, 2, 3, 4}, fmask[12] = {1};
	uint8_t m7[12] = {1, 1, 0, 7};
	w[6] = (float)INFINITY;
	w[7] = (float)NAN;
	rt_NamedTensor t[3] = {
		{"h.0.attn.c_attn.weight", {.dtype = RT_F32, .rank = 2, .dim = {3, 4}, .data = w}},
		{"h.0.attn.c_attn.bias", {.dtype = RT_F32, .rank = 1, .dim = {4}, .data = bias}},
		{"h.0.attn.c_attn.weight.mask", {.dtype = RT_F32, .rank = 2, .dim = {3, 4},
						 .data = fmask}},
	};
	Diag d;
	diag_init(&d);
	CHECK(rt_safetensors_write(tmp_path("nan.safetensors"), t, 2, NULL, &d) == 0);
	rt_Program *p = build();
	rt_Exec *e = exec_of(p);
	CHECK(rt_load_params(e, tmp_path("nan.safetensors"), &d) == -1);
	CHECK(strstr(diag_text(&d), "nan.safetensors: error: parameter 'h.0.attn.c_attn.weight' "
			  "holds 2 non-finite values (the first, inf, at [1, 2])") != NULL);
	diag_free(&d);
	w[6] = w[7] = 0;
	CHECK(rt_safetensors_write(tmp_path("fmask.safetensors"), t, 3, NULL, &d) == 0);
	CHECK(rt_load_params(e, tmp_path("fmask.safetensors"), &d) == -1);
	CHECK(strstr(diag_text(&d), "fmask.safetensors: error: mask 'h.0.attn.c_attn.weight.mask' "
			  "is f32; a mask is U8 (or BOOL)") != NULL);
	diag_free(&d);
	t[2].t = (rt_Tensor){.dtype = RT_U8, .rank = 2, .dim = {3, 4}, .data = m7};
	CHECK(rt_mask_validate("m.safetensors", &t[2], &d) == -1);
	CHECK(strstr(diag_text(&d), "m.safetensors: error: mask 'h.0.attn.c_attn.weight.mask' holds "
			  "7 at [0, 3]; a mask holds only 0 (pruned) and 1 (kept)") != NULL);
	m7[3] = 1;
	CHECK(rt_mask_validate("m.safetensors", &t[2], &d) == 0);
	rt_exec_destroy(e);
	rt_program_destroy(p);
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "test_w"))
		return 1;
	RUN(test_round_trip);
	RUN(test_hf_buffers_skipped);
	RUN(test_mismatches);
	RUN(test_bad_values);
	check_rmdir(dir);
	return check_report();
}

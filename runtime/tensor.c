/* tensor.c: dtype facts and tensor sizes shared by the rest of the runtime.
 *
 * The dtype numbering matches the IR's DType (the backend checks this), so
 * a slot's dtype byte can be copied across the boundary unchanged. Sizes of
 * tensors that came from files are validated by their readers before these
 * helpers see them, so plain int64 products do not overflow here. */
#include "rt.h"

#include <assert.h>
#include <stdio.h>

static const int dtype_size[] = {4, 4, 1};
static const char *const dtype_name[] = {"f32", "i32", "u8"};
static_assert(sizeof dtype_size / sizeof dtype_size[0] == RT_DTYPE_COUNT, "dtype sizes");
static_assert(sizeof dtype_name / sizeof dtype_name[0] == RT_DTYPE_COUNT, "dtype names");

int rt_dtype_size(rt_DType t)
{
	return (unsigned)t < RT_DTYPE_COUNT ? dtype_size[t] : 0;
}

const char *rt_dtype_name(rt_DType t)
{
	return (unsigned)t < RT_DTYPE_COUNT ? dtype_name[t] : "?";
}

/* A zero dim makes the count zero whatever the others are; checked first
 * so huge dims beside it cannot overflow the product. */
int64_t rt_numel(const rt_Tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		if (t->dim[i] == 0)
			return 0;
	for (int i = 0; i < t->rank; i++)
		n *= t->dim[i];
	return n;
}

int64_t rt_nbytes(const rt_Tensor *t)
{
	return rt_numel(t) * rt_dtype_size(t->dtype);
}

void rt_index_str(const rt_Tensor *t, int64_t flat, char *buf, size_t n)
{
	int64_t idx[RT_MAX_RANK] = {0};
	for (int i = t->rank - 1; i >= 0; i--) {
		idx[i] = t->dim[i] ? flat % t->dim[i] : 0;
		flat = t->dim[i] ? flat / t->dim[i] : 0;
	}
	size_t at = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < t->rank && at < n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)idx[i]);
	if (at < n)
		snprintf(buf + at, n - at, "]");
}

int rt_tokens_check(const char *file, const rt_Tensor *t, int64_t vocab, Diag *d)
{
	if (t->dtype != RT_I32 || vocab <= 0)
		return 0;
	const int32_t *x = t->data;
	for (int64_t i = 0, n = rt_numel(t); i < n; i++)
		if (x[i] < 0 || x[i] >= vocab) {
			char at[160];
			rt_index_str(t, i, at, sizeof at);
			return rt_file_error(d, file, "token %d at %s is outside the vocabulary "
					     "[0, %lld)", (int)x[i], at, (long long)vocab);
		}
	return 0;
}

void rt_tensor_free(rt_Tensor *t)
{
	if (!t)
		return;
	mem_aligned_free(t->data);
	t->data = NULL;
}

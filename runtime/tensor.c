/* tensor.c: dtype facts and tensor sizes shared by the rest of the runtime.
 *
 * The dtype numbering matches the IR's DType (the backend checks this), so
 * a slot's dtype byte can be copied across the boundary unchanged. Sizes of
 * tensors that came from files are validated by their readers before these
 * helpers see them, so plain int64 products do not overflow here. */
#include "rt.h"

#include <assert.h>

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

void rt_tensor_free(rt_Tensor *t)
{
	if (!t)
		return;
	mem_aligned_free(t->data);
	t->data = NULL;
}

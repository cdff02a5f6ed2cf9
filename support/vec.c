/* vec.c: the one growable array. Doubling growth; new slots are zeroed. */
#include "support.h"

#include <string.h>

int vec_reserve(Vec *v, size_t n, size_t elsize)
{
	if (n <= v->cap)
		return 0;
	size_t cap = v->cap ? v->cap : 8;
	while (cap < n)
		cap *= 2;
	if (cap > SIZE_MAX / elsize)
		return -1;
	void *p = mem_realloc(v->data, v->cap * elsize, cap * elsize);
	if (!p)
		return -1;
	v->data = p;
	v->cap = cap;
	return 0;
}

void *vec_push(Vec *v, size_t elsize)
{
	if (vec_reserve(v, v->len + 1, elsize))
		return NULL;
	void *slot = (char *)v->data + v->len * elsize;
	memset(slot, 0, elsize);
	v->len++;
	return slot;
}

void vec_free(Vec *v)
{
	mem_free(v->data);
	v->data = NULL;
	v->len = v->cap = 0;
}

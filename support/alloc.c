/* alloc.c: the single allocation hook.
 *
 * Every allocation in mswc goes through mem_*, so a test can install a hook or
 * ask the k-th allocation to fail and check that the failure comes back as an
 * error status rather than a crash. The default hook is the C library. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

static void *default_hook(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, nsize);
}

static mem_Hook hook = default_hook;
static void *hook_ud;
static long fail_at;    /* allocation number that fails; 0 = never */
static long nalloc;

void mem_set_hook(mem_Hook h, void *ud)
{
	hook = h ? h : default_hook;
	hook_ud = ud;
}

void mem_fail_after(long k)
{
	fail_at = k > 0 ? nalloc + k : 0;
}

long mem_count(void)
{
	return nalloc;
}

static int should_fail(void)
{
	nalloc++;
	return fail_at != 0 && nalloc == fail_at;
}

void *mem_realloc(void *p, size_t osize, size_t nsize)
{
	if (nsize == 0) {
		hook(hook_ud, p, osize, 0);
		return NULL;
	}
	if (should_fail())
		return NULL;
	return hook(hook_ud, p, osize, nsize);
}

void *mem_alloc(size_t n)
{
	return mem_realloc(NULL, 0, n ? n : 1);
}

void *mem_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	size_t total = n * size;
	void *p = mem_alloc(total);
	if (p)
		memset(p, 0, total ? total : 1);
	return p;
}

void mem_free(void *p)
{
	if (p)
		hook(hook_ud, p, 0, 0);
}

/* Aligned blocks keep the raw pointer just below the aligned one, so they can
 * go through the same hook as everything else. */
void *mem_aligned(size_t n, size_t align)
{
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (n > SIZE_MAX - align - sizeof(void *))
		return NULL;
	char *raw = mem_alloc(n + align + sizeof(void *));
	if (!raw)
		return NULL;
	uintptr_t at = ((uintptr_t)(raw + sizeof(void *)) + align - 1) & ~(uintptr_t)(align - 1);
	((void **)at)[-1] = raw;
	return (void *)at;
}

void mem_aligned_free(void *p)
{
	if (p)
		mem_free(((void **)p)[-1]);
}

char *mem_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = mem_alloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

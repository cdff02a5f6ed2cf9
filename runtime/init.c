/* init.c: parameter initialisation from the slots' initialisers.
 *
 * Normal initialisers draw from a counter-based generator: element i of the
 * parameter called `name` depends only on (seed, name, i). Adding, removing
 * or reordering parameters does not change the others, the result does not
 * depend on the thread count, and any tool can reproduce the values exactly
 * (docs/runtime.md spells the algorithm out; in short):
 *
 *   mix(z)   = splitmix64 finaliser of z + 0x9E3779B97F4A7C15
 *   key      = mix(seed ^ mix(fnv1a64(name)))
 *   bits(k)  = mix(key ^ mix(k))
 *   pair j:  u1 = ((bits(2j) >> 11) + 1) * 2^-53        in (0, 1]
 *            u2 =  (bits(2j+1) >> 11) * 2^-53           in [0, 1)
 *            r  = sqrt(-2 ln u1)
 *            element 2j   = (float)(std * r * cos(2 pi u2))
 *            element 2j+1 = (float)(std * r * sin(2 pi u2))
 *
 * all in IEEE double until the final rounding to f32. Zeros and ones are
 * fills; slots whose initialiser is "none" (values come from a checkpoint)
 * are left alone. Sparse params are then pruned (rt_apply_masks): a kept
 * weight has its dense value, a pruned one is zero. The work is split over
 * the exec's pool in chunks of pairs, which the kernel contract makes
 * deterministic. */
#include "rt.h"

#include <math.h>
#include <string.h>

enum { INIT_NONE_ = 0, INIT_NORMAL_ = 1, INIT_ZEROS_ = 2, INIT_ONES_ = 3 };
enum { PAIRS_PER_TASK = 4096 };

/* The splitmix64 finaliser: the one mixing function of every
 * counter-based stream in the runtime (data order and sampling use it
 * through rt_rng_bits too). */
uint64_t rt_mix64(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint64_t rt_rng_bits(uint64_t key, uint64_t counter)
{
	return rt_mix64(key ^ rt_mix64(counter));
}

double rt_rng_uniform(uint64_t key, uint64_t counter)
{
	return (double)(rt_rng_bits(key, counter) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xCBF29CE484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001B3ull;
	}
	return h;
}

uint64_t rt_init_key(uint64_t seed, const char *name)
{
	return rt_mix64(seed ^ rt_mix64(fnv1a64(name)));
}

/* The two normals of pair j, before scaling. */
static void normal_pair(uint64_t key, uint64_t j, double *z0, double *z1)
{
	const double two53 = 1.0 / 9007199254740992.0;
	double u1 = (double)((rt_rng_bits(key, 2 * j) >> 11) + 1) * two53;
	double u2 = (double)(rt_rng_bits(key, 2 * j + 1) >> 11) * two53;
	double r = sqrt(-2.0 * log(u1));
	double a = 2.0 * M_PI * u2;
	*z0 = r * cos(a);
	*z1 = r * sin(a);
}

void rt_init_normal(float *x, int64_t n, uint64_t key, double std, int64_t lo, int64_t hi)
{
	for (int64_t j = lo; j < hi; j++) {
		double z0, z1;
		normal_pair(key, (uint64_t)j, &z0, &z1);
		if (2 * j < n)
			x[2 * j] = (float)(std * z0);
		if (2 * j + 1 < n)
			x[2 * j + 1] = (float)(std * z1);
	}
}

/* buf[0]: float data, buf[1]: int64 numel, buf[2]: uint64 key, buf[3]: double std */
static void normal_kernel(void *const *buf, int64_t lo, int64_t hi)
{
	int64_t n = *(const int64_t *)buf[1];
	int64_t npair = (n + 1) / 2;
	int64_t a = lo * PAIRS_PER_TASK, b = hi * PAIRS_PER_TASK;
	rt_init_normal(buf[0], n, *(const uint64_t *)buf[2], *(const double *)buf[3], a,
		       b < npair ? b : npair);
}

static void fill(float *x, int64_t n, float v)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = v;
}

int rt_init_params(rt_Exec *e, uint64_t seed)
{
	const rt_Program *p = rt_exec_program(e);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM || s->init == INIT_NONE_)
			continue;
		if (s->dtype != RT_F32 || s->init > INIT_ONES_ ||
		    (s->init == INIT_NORMAL_ && !(s->init_std >= 0)))
			return -1;
	}
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM || s->init == INIT_NONE_)
			continue;
		rt_Tensor t;
		rt_exec_slot_tensor(e, s, &t);
		int64_t n = rt_numel(&t);
		if (s->init == INIT_ZEROS_)
			fill(t.data, n, 0.0f);
		else if (s->init == INIT_ONES_)
			fill(t.data, n, 1.0f);
		else {
			uint64_t key = rt_init_key(seed, s->name);
			double std = s->init_std;
			void *buf[4] = {t.data, &n, &key, &std};
			int64_t npair = (n + 1) / 2;
			rt_pool_run(rt_exec_pool(e), normal_kernel, buf,
				    (npair + PAIRS_PER_TASK - 1) / PAIRS_PER_TASK);
		}
	}
	/* Drawn densely, then pruned: a kept weight has the value it would
	 * have in the dense model with the same seed. */
	rt_apply_masks(e);
	return 0;
}

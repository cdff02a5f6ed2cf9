/* regrow.c: the mask updates of dynamic sparse training (docs/sparsity.md):
 * prune-and-regrow (RigL, Evci et al. 2020; SET, Mocanu et al. 2018) and
 * the drop step of gradual magnitude pruning (Zhu and Gupta 2017).
 *
 * Of the kept entries, the k with the smallest |w| are dropped (ties: the
 * lower index first, NaN counted smallest); as many are grown among the
 * entries that were pruned before this update (never one just dropped),
 * those with the largest score: RigL's |dense gradient|, or, without
 * scores (SET), a seeded random key per entry. Grown and dropped weights
 * are set to +0.0; the number of kept entries does not change. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>

typedef struct Ranked {
	double key;      /* ascending */
	int64_t i;
} Ranked;

static int ranked_cmp(const void *a, const void *b)
{
	const Ranked *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

int64_t rt_mask_drop(uint8_t *bits, float *w, int64_t n, int64_t k)
{
	int64_t nkept = 0;
	for (int64_t i = 0; i < n; i++)
		nkept += bits[i] != 0;
	if (k > nkept)
		k = nkept;
	if (k <= 0)
		return 0;
	Ranked *kept = mem_alloc((size_t)nkept * sizeof *kept);
	if (!kept)
		return -1;
	int64_t a = 0;
	for (int64_t i = 0; i < n; i++)
		if (bits[i]) {
			double m = fabs((double)w[i]);
			kept[a++] = (Ranked){isnan(m) ? -1.0 : m, i};
		}
	qsort(kept, (size_t)nkept, sizeof *kept, ranked_cmp);
	for (int64_t j = 0; j < k; j++) {
		bits[kept[j].i] = 0;
		w[kept[j].i] = 0.0f;
	}
	mem_free(kept);
	return k;
}

int64_t rt_mask_regrow(uint8_t *bits, float *w, const float *score, int64_t n, int64_t k,
		       uint64_t seed)
{
	int64_t nkept = 0;
	for (int64_t i = 0; i < n; i++)
		nkept += bits[i] != 0;
	if (k > nkept)
		k = nkept;
	if (k > n - nkept)
		k = n - nkept;
	if (k <= 0)
		return 0;
	/* the candidates before anything is dropped: never regrow a weight just cut */
	Ranked *cand = mem_alloc((size_t)(n - nkept) * sizeof *cand);
	if (!cand)
		return -1;
	int64_t b = 0;
	for (int64_t i = 0; i < n; i++)
		if (!bits[i]) {
			/* largest score first: rank by its negation */
			double s = score ? fabs((double)score[i]) :
					   (double)rt_rng_bits(seed, (uint64_t)i) / 18446744073709551616.0;
			cand[b++] = (Ranked){isnan(s) ? 1.0 : -s, i};
		}
	qsort(cand, (size_t)(n - nkept), sizeof *cand, ranked_cmp);
	if (rt_mask_drop(bits, w, n, k) < 0) {
		mem_free(cand);
		return -1;
	}
	for (int64_t j = 0; j < k; j++) {
		bits[cand[j].i] = 1;
		w[cand[j].i] = 0.0f;
	}
	mem_free(cand);
	return k;
}

double rt_regrow_fraction(double alpha, int64_t step, int64_t end)
{
	if (step >= end || end <= 0)
		return 0.0;
	return alpha / 2.0 * (1.0 + cos(M_PI * (double)step / (double)end));
}

double rt_gradual_sparsity(double target, int64_t step, int64_t end)
{
	if (end <= 0 || step >= end)
		return target;
	double r = 1.0 - (double)step / (double)end;
	return target * (1.0 - r * r * r);
}

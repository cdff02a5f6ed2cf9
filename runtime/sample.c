/* sample.c: picking the next token from a row of logits, and the
 * counter-based generator the trainer's data order and generation share.
 *
 * The generator is init.c's (rt_rng_bits): bits(key, counter) = mix(key ^ mix(counter)),
 * mix being the splitmix64 finaliser, keys made by rt_init_key(seed,
 * purpose). A draw depends on nothing but (seed, purpose, counter), so
 * generation and data order resume bit-exactly from a step number and any
 * tool can replay them with a few lines of 64-bit arithmetic.
 *
 * Sampling follows the order Hugging Face's warpers use: temperature, then
 * top-k, then top-p on the distribution renormalised over the top k. The
 * candidates are ordered by (logit descending, index ascending), a total
 * order, so ties never depend on the sort. The ordering is a heap over the
 * caller's scratch: building it is O(n) and only the m candidates actually
 * needed are popped, O(n + m log n); a plain temperature draw needs no order
 * at all. Probabilities are computed in double. Nothing is allocated. */
#include "rt.h"

#include <math.h>
#include <string.h>

typedef struct Cand {
	float v;
	int32_t i;
} Cand;

size_t rt_sample_scratch_size(int n)
{
	return n > 0 ? (size_t)n * sizeof(Cand) : 0;
}

/* a before b in the candidate order */
static int before(Cand a, Cand b)
{
	return a.v > b.v || (a.v == b.v && a.i < b.i);
}

static void sift_down(Cand *h, int n, int at)
{
	for (;;) {
		int best = at, l = 2 * at + 1, r = l + 1;
		if (l < n && before(h[l], h[best]))
			best = l;
		if (r < n && before(h[r], h[best]))
			best = r;
		if (best == at)
			return;
		Cand t = h[at];
		h[at] = h[best];
		h[best] = t;
		at = best;
	}
}

/* Pop the first candidate of heap h[0 .. n) into h[n-1]. */
static void pop(Cand *h, int n)
{
	Cand t = h[0];
	h[0] = h[n - 1];
	h[n - 1] = t;
	sift_down(h, n - 1, 0);
}

/* The index of the largest logit (lowest index on ties), NaN never; -1 if
 * none is finite or one is +inf (the distribution is undefined). */
static int argmax(const float *x, int n)
{
	int best = -1;
	for (int i = 0; i < n; i++) {
		if (isinf(x[i]) && x[i] > 0)
			return -1;
		if (x[i] == x[i] && isfinite(x[i]) && (best < 0 || x[i] > x[best]))
			best = i;
	}
	return best;
}

/* Inverse CDF in index order: no candidate order is needed. */
static int draw_all(const float *x, int n, double max, double t, double u)
{
	double z = 0;
	for (int i = 0; i < n; i++)
		if (x[i] == x[i])
			z += exp((x[i] - max) / t);
	double target = u * z, c = 0;
	int last = -1;
	for (int i = 0; i < n; i++) {
		if (x[i] != x[i])
			continue;
		double w = exp((x[i] - max) / t);
		c += w;
		if (w > 0)
			last = i;
		if (c > target)
			return i;
	}
	return last;   /* rounding left target at the very top */
}

int rt_sample(const float *logits, int n, const rt_SampleOpts *o, uint64_t counter,
	      void *scratch)
{
	int best = argmax(logits, n);
	if (best < 0 || !(o->temperature > 0) || o->top_k == 1)
		return best;
	double max = logits[best], t = o->temperature;
	double u = rt_rng_uniform(rt_init_key(o->seed, "sample"), counter);
	int k = o->top_k > 0 && o->top_k < n ? o->top_k : n;
	int nucleus = o->top_p > 0 && o->top_p < 1;
	if (k == n && !nucleus)
		return draw_all(logits, n, max, t, u);

	/* The heap over the non-NaN logits. Popped candidates collect at the
	 * end: the j-th best lands in h[m-1-j]. Only what is needed is popped. */
	Cand *h = scratch;
	int m = 0;
	for (int i = 0; i < n; i++)
		if (logits[i] == logits[i])
			h[m++] = (Cand){logits[i], i};
	for (int i = m / 2 - 1; i >= 0; i--)
		sift_down(h, m, i);
	if (k > m)
		k = m;
	int npop = 0;
	double z = 0;
	if (k < m)
		for (; npop < k; npop++) {
			pop(h, m - npop);
			z += exp((h[m - 1 - npop].v - max) / t);
		}
	else
		for (int i = 0; i < m; i++)
			z += exp((h[i].v - max) / t);
	int keep = k;
	if (nucleus) {
		double c = 0, need = o->top_p * z;
		for (keep = 0; keep < k;) {
			if (keep == npop)
				pop(h, m - npop++);
			c += exp((h[m - 1 - keep].v - max) / t);
			keep++;
			if (c >= need)
				break;
		}
		z = c;
	}
	double target = u * z, c = 0;
	for (int j = 0; j < keep; j++) {
		c += exp((h[m - 1 - j].v - max) / t);
		if (c > target)
			return h[m - 1 - j].i;
	}
	return h[m - keep].i;   /* rounding left target at the very top */
}

/* test_sample.c: next-token sampling and the counter-based generator.
 *
 * Expected values are computed here from the definitions, not by the
 * sampler: argmax by a plain scan, top-k sets and nucleus sets by sorting
 * the probabilities in the test, frequencies against softmax(logits / T)
 * with a chi-square bound, and the generator against splitmix64's published
 * first output and init.c's pinned key. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

enum { V = 64, DRAWS = 20000 };

static unsigned char scratch[V * 16];

/* Deterministic test logits in [-scale, scale). */
static void make_logits(float *x, int n, unsigned seed, float scale)
{
	for (int i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		x[i] = scale * ((float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f);
	}
}

static double probs(const float *x, int n, double t, double *p)
{
	double max = x[0], z = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (int i = 0; i < n; i++)
		z += p[i] = exp((x[i] - max) / t);
	for (int i = 0; i < n; i++)
		p[i] /= z;
	return z;
}

/* Indices by decreasing probability (selection sort: obviously right). */
static void order(const double *p, int n, int *idx)
{
	for (int i = 0; i < n; i++)
		idx[i] = i;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (p[idx[j]] > p[idx[i]]) {
				int t = idx[i];
				idx[i] = idx[j];
				idx[j] = t;
			}
}

static void test_generator(void)
{
	/* splitmix64 seeded with 0 first returns 0xE220A8397B1DCDAF */
	CHECK(rt_mix64(0) == 0xE220A8397B1DCDAFull);
	/* the same mix as init.c: its documented key for seed 0 */
	uint64_t h = 0xCBF29CE484222325ull;
	for (const char *s = "h.0.attn.c_attn.weight"; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
	CHECK(rt_mix64(0 ^ rt_mix64(h)) == 0xc7fd4e0fb0c92f8aull);
	CHECK(rt_init_key(0, "h.0.attn.c_attn.weight") == 0xc7fd4e0fb0c92f8aull);
	CHECK(rt_rng_bits(5, 7) == rt_mix64(5 ^ rt_mix64(7)));
	/* pinned by the Python transcription in docs/runtime.md */
	CHECK(rt_rng_uniform(rt_init_key(1234, "sample"), 0) == 0.5535713904978897);
	CHECK(rt_rng_uniform(rt_init_key(1234, "sample"), 7) == 0.6318306760709788);
	double lo = 1, hi = 0, sum = 0;
	for (int i = 0; i < 10000; i++) {
		double u = rt_rng_uniform(42, (uint64_t)i);
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
		sum += u;
	}
	CHECK(lo >= 0 && hi < 1);
	CHECK_NEAR(sum / 10000, 0.5, 0.02);
}

static void test_greedy(void)
{
	float x[V];
	for (unsigned s = 1; s <= 20; s++) {
		make_logits(x, V, s, 5);
		int want = 0;
		for (int i = 1; i < V; i++)
			if (x[i] > x[want])
				want = i;
		rt_SampleOpts g = {.temperature = 0, .seed = s};
		rt_SampleOpts k1 = {.temperature = 1.5, .top_k = 1, .seed = s};
		CHECK(rt_sample(x, V, &g, s, scratch) == want);
		CHECK(rt_sample(x, V, &k1, s, scratch) == want);
	}
	/* ties go to the lowest index; NaN never wins */
	float t[5] = {1, 3, NAN, 3, 2};
	rt_SampleOpts g = {0};
	CHECK(rt_sample(t, 5, &g, 0, scratch) == 1);
	float bad[3] = {NAN, -INFINITY, NAN};
	CHECK(rt_sample(bad, 3, &g, 0, scratch) == -1);
	float inf[3] = {0, INFINITY, 1};
	CHECK(rt_sample(inf, 3, &g, 0, scratch) == -1);
	rt_SampleOpts w = {.temperature = 1, .seed = 3};
	float masked[4] = {-INFINITY, 0, -INFINITY, NAN};
	int only = 1;
	for (int i = 0; i < 200; i++)
		only &= rt_sample(masked, 4, &w, (uint64_t)i, scratch) == 1;
	CHECK(only);
}

static void test_top_k(void)
{
	float x[V];
	double p[V];
	int idx[V];
	make_logits(x, V, 7, 1);
	probs(x, V, 1, p);
	order(p, V, idx);
	for (int k = 2; k <= 8; k += 3) {
		int in[V] = {0}, seen[V] = {0}, outside = 0, nseen = 0;
		for (int j = 0; j < k; j++)
			in[idx[j]] = 1;
		rt_SampleOpts o = {.temperature = 1, .top_k = k, .seed = 11};
		for (int i = 0; i < 4000; i++) {
			int tok = rt_sample(x, V, &o, (uint64_t)i, scratch);
			outside += tok < 0 || tok >= V || !in[tok];
			if (tok >= 0 && tok < V && !seen[tok]++)
				nseen++;
		}
		CHECK_MSG(outside == 0, "top_k %d: %d draws outside the top k", k, outside);
		CHECK_MSG(nseen == k, "top_k %d: %d distinct tokens", k, nseen);
	}
}

/* Frequencies of `n` draws against probabilities q; chi-square statistic. */
static double chi2(const int *count, const double *q, int v, int n)
{
	double c = 0;
	for (int i = 0; i < v; i++)
		if (q[i] > 0)
			c += (count[i] - n * q[i]) * (count[i] - n * q[i]) / (n * q[i]);
	return c;
}

static void test_top_p(void)
{
	/* halving probabilities: 1/2, 1/4, 1/8, ... (p = 0.7 keeps two, 0.8 three) */
	float x[10];
	for (int i = 0; i < 10; i++)
		x[i] = (float)(-i * log(2.0));
	double cut[2] = {0.7, 0.8};
	int want[2] = {2, 3};
	for (int c = 0; c < 2; c++) {
		int count[10] = {0};
		rt_SampleOpts o = {.temperature = 1, .top_p = cut[c], .seed = 5};
		for (int i = 0; i < 6000; i++) {
			int tok = rt_sample(x, 10, &o, (uint64_t)i, scratch);
			if (tok >= 0 && tok < 10)
				count[tok]++;
		}
		int used = 0;
		for (int i = 0; i < 10; i++)
			used += count[i] > 0;
		CHECK_MSG(used == want[c], "top_p %g: %d tokens used", cut[c], used);
		CHECK(count[want[c]] == 0);
	}

	/* top-p applies to the top k renormalised: with k = 3 the masses are
	 * 4/7, 2/7, 1/7, so p = 0.8 keeps two (over all ten it would keep three) */
	int count3[10] = {0}, used = 0;
	rt_SampleOpts kp = {.temperature = 1, .top_k = 3, .top_p = 0.8, .seed = 6};
	for (int i = 0; i < 3000; i++) {
		int tok = rt_sample(x, 10, &kp, (uint64_t)i, scratch);
		if (tok >= 0 && tok < 10)
			count3[tok]++;
	}
	for (int i = 0; i < 10; i++)
		used += count3[i] > 0;
	CHECK(used == 2 && count3[0] > count3[1] && count3[1] > 0);

	/* random logits: the nucleus computed here, frequencies renormalised */
	float y[V];
	double p[V], q[V] = {0};
	int idx[V];
	make_logits(y, V, 3, 3);
	double t = 0.8, top_p = 0.9;
	probs(y, V, t, p);
	order(p, V, idx);
	double cum = 0;
	int m = 0;
	while (m < V && cum < top_p)
		cum += p[idx[m++]];
	for (int j = 0; j < m; j++)
		q[idx[j]] = p[idx[j]] / cum;
	int count[V] = {0}, outside = 0;
	rt_SampleOpts o = {.temperature = t, .top_p = top_p, .seed = 9};
	for (int i = 0; i < DRAWS; i++) {
		int tok = rt_sample(y, V, &o, (uint64_t)i, scratch);
		if (tok < 0 || tok >= V || q[tok] == 0)
			outside++;
		else
			count[tok]++;
	}
	CHECK_MSG(outside == 0, "%d draws outside the nucleus of %d", outside, m);
	double c = chi2(count, q, V, DRAWS);
	/* m - 1 degrees of freedom; the bound is far in the tail (p < 1e-6) */
	CHECK_MSG(c < m - 1 + 8 * sqrt(2.0 * (m - 1)) + 20, "chi2 %.1f with %d dof", c, m - 1);
}

static void test_temperature(void)
{
	float x[12];
	double p[12];
	make_logits(x, 12, 17, 2);
	double temps[3] = {0.5, 1, 2};
	for (int k = 0; k < 3; k++) {
		probs(x, 12, temps[k], p);
		int count[12] = {0};
		rt_SampleOpts o = {.temperature = temps[k], .seed = 100 + (uint64_t)k};
		for (int i = 0; i < DRAWS; i++) {
			int tok = rt_sample(x, 12, &o, (uint64_t)i, scratch);
			if (tok >= 0 && tok < 12)
				count[tok]++;
		}
		/* 11 dof: the 1e-6 tail is about 48 */
		double c = chi2(count, p, 12, DRAWS);
		CHECK_MSG(c < 48, "T=%g: chi2 %.1f", temps[k], c);
		/* the heap path: top_k = n - 1 drops the least likely */
		int least = 0;
		for (int i = 1; i < 12; i++)
			if (p[i] < p[least])
				least = i;
		double q[12], rest = 1 - p[least];
		for (int i = 0; i < 12; i++)
			q[i] = i == least ? 0 : p[i] / rest;
		memset(count, 0, sizeof count);
		o.top_k = 11;
		for (int i = 0; i < DRAWS; i++) {
			int tok = rt_sample(x, 12, &o, (uint64_t)i, scratch);
			if (tok >= 0 && tok < 12)
				count[tok]++;
		}
		c = chi2(count, q, 12, DRAWS);
		CHECK_MSG(c < 46 && count[least] == 0, "T=%g top_k 11: chi2 %.1f", temps[k], c);
	}
	/* a wrong temperature is detected: T=0.5 draws tested against T=2 */
	probs(x, 12, 2, p);
	int count[12] = {0};
	rt_SampleOpts o = {.temperature = 0.5, .seed = 1};
	for (int i = 0; i < DRAWS; i++)
		count[rt_sample(x, 12, &o, (uint64_t)i, scratch)]++;
	CHECK(chi2(count, p, 12, DRAWS) > 48);
}

static void test_reproducible(void)
{
	float x[V];
	make_logits(x, V, 21, 1);
	rt_SampleOpts a = {.temperature = 1, .top_k = 20, .top_p = 0.95, .seed = 1234};
	rt_SampleOpts b = a;
	b.seed = 1235;
	int same = 1, differ = 0;
	long before = mem_count();
	for (int i = 0; i < 200; i++) {
		int t1 = rt_sample(x, V, &a, (uint64_t)i, scratch);
		int t2 = rt_sample(x, V, &a, (uint64_t)i, scratch);
		int t3 = rt_sample(x, V, &b, (uint64_t)i, scratch);
		same &= t1 == t2;
		differ += t1 != t3;
	}
	CHECK(same);
	CHECK(differ > 50);
	CHECK(mem_count() == before);
	/* order of calls does not matter: counter 150 alone gives the same */
	int t150 = rt_sample(x, V, &a, 150, scratch);
	for (int i = 0; i < 150; i++)
		rt_sample(x, V, &b, (uint64_t)i, scratch);
	CHECK(rt_sample(x, V, &a, 150, scratch) == t150);
	CHECK(rt_sample_scratch_size(V) <= sizeof scratch);
}

int main(void)
{
	RUN(test_generator);
	RUN(test_greedy);
	RUN(test_top_k);
	RUN(test_top_p);
	RUN(test_temperature);
	RUN(test_reproducible);
	return check_report();
}

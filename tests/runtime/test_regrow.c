/* test_regrow.c: prune-and-regrow (runtime/regrow.c) against a brute-force
 * reading of its rule on random masks, weights and scores:
 *   - the k kept entries of smallest |w| are dropped (ties by index), the k
 *     previously pruned entries of largest |score| grown, never one that
 *     was just dropped; the kept count is unchanged;
 *   - dropped and grown weights are +0.0, all others untouched;
 *   - SET (no scores) is a function of the seed: the same seed moves the
 *     same entries, another seed others;
 *   - k larger than the candidates moves what there is; k = 0 nothing;
 *   - the update fraction decays as RigL's cosine and is 0 from `end`;
 *   - gradual pruning's drop removes the k smallest kept weights, and its
 *     schedule follows Zhu and Gupta's cubic to the target. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

enum { N = 997 };

static uint64_t rng = 12345;
static double urand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/* The j-th smallest |w| among kept entries (ties by index), by counting. */
static bool dropped_by_rule(const uint8_t *bits, const float *w, int64_t i, int64_t k)
{
	if (!bits[i])
		return false;
	int64_t rank = 0;
	for (int64_t j = 0; j < N; j++)
		if (bits[j] && (fabsf(w[j]) < fabsf(w[i]) || (fabsf(w[j]) == fabsf(w[i]) && j < i)))
			rank++;
	return rank < k;
}

static bool grown_by_rule(const uint8_t *bits, const float *s, int64_t i, int64_t k)
{
	if (bits[i])
		return false;
	int64_t rank = 0;
	for (int64_t j = 0; j < N; j++)
		if (!bits[j] && (fabsf(s[j]) > fabsf(s[i]) || (fabsf(s[j]) == fabsf(s[i]) && j < i)))
			rank++;
	return rank < k;
}

static void test_rigl_rule(void)
{
	static uint8_t bits[N], before[N];
	static float w[N], w0[N], s[N];
	for (int rep = 0; rep < 5; rep++) {
		int64_t kept = 0;
		for (int i = 0; i < N; i++) {
			bits[i] = urand() < 0.3;
			kept += bits[i];
			w[i] = bits[i] ? (float)(urand() - 0.5) : 0.0f;
			if (i % 17 == 0)
				w[i] = 0.125f;   /* ties */
			s[i] = (float)(urand() - 0.5);
		}
		memcpy(before, bits, sizeof bits);
		memcpy(w0, w, sizeof w);
		int64_t k = 20 + rep * 30;
		CHECK(rt_mask_regrow(bits, w, s, N, k, 0) == k);
		int64_t now = 0, ok = 1;
		for (int i = 0; i < N; i++) {
			now += bits[i];
			bool drop = dropped_by_rule(before, w0, i, k), grow = grown_by_rule(before, s, i, k);
			int want = drop ? 0 : grow ? 1 : before[i];
			ok &= bits[i] == want;
			ok &= (drop || grow) ? (w[i] == 0.0f && !signbit(w[i])) : w[i] == w0[i];
		}
		CHECK_MSG(ok, "rep %d: the moved entries follow the rule", rep);
		CHECK(now == kept);
	}
}

static void test_set_seeded(void)
{
	static uint8_t a[N], b[N], c[N];
	static float wa[N], wb[N], wc[N];
	for (int i = 0; i < N; i++) {
		a[i] = b[i] = c[i] = i % 4 == 0;
		wa[i] = wb[i] = wc[i] = a[i] ? (float)(i + 1) : 0.0f;
	}
	CHECK(rt_mask_regrow(a, wa, NULL, N, 50, 7) == 50);
	CHECK(rt_mask_regrow(b, wb, NULL, N, 50, 7) == 50);
	CHECK(rt_mask_regrow(c, wc, NULL, N, 50, 8) == 50);
	CHECK(!memcmp(a, b, N) && !memcmp(wa, wb, sizeof wa));
	CHECK(memcmp(a, c, N) != 0);
	/* the 50 smallest kept (indices 0, 4, ..., 196) went, whatever the seed */
	int ok = 1;
	for (int i = 0; i < 200; i += 4)
		ok &= !a[i] && !c[i];
	CHECK(ok);
}

static void test_limits(void)
{
	uint8_t bits[8] = {1, 1, 1, 1, 1, 1, 0, 0};
	float w[8] = {1, 2, 3, 4, 5, 6, 0, 0};
	CHECK(rt_mask_regrow(bits, w, NULL, 8, 0, 1) == 0);
	CHECK(rt_mask_regrow(bits, w, NULL, 8, 5, 1) == 2);   /* only 2 candidates */
	CHECK(bits[0] == 0 && bits[1] == 0 && bits[6] == 1 && bits[7] == 1);
	CHECK_NEAR(rt_regrow_fraction(0.3, 0, 100), 0.3, 1e-12);
	CHECK_NEAR(rt_regrow_fraction(0.3, 50, 100), 0.15, 1e-12);
	CHECK(rt_regrow_fraction(0.3, 100, 100) == 0.0 && rt_regrow_fraction(0.3, 150, 100) == 0.0);
}

static void test_gradual(void)
{
	static uint8_t bits[N], before[N];
	static float w[N], w0[N];
	for (int i = 0; i < N; i++) {
		bits[i] = urand() < 0.8;
		w[i] = bits[i] ? (float)(urand() - 0.5) : 0.0f;
	}
	memcpy(before, bits, sizeof bits);
	memcpy(w0, w, sizeof w);
	CHECK(rt_mask_drop(bits, w, N, 100) == 100);
	int ok = 1;
	for (int i = 0; i < N; i++) {
		bool drop = dropped_by_rule(before, w0, i, 100);
		ok &= bits[i] == (drop ? 0 : before[i]) && w[i] == (drop ? 0.0f : w0[i]);
	}
	CHECK(ok);
	CHECK_NEAR(rt_gradual_sparsity(0.9, 0, 100), 0.0, 1e-12);
	CHECK_NEAR(rt_gradual_sparsity(0.9, 50, 100), 0.9 * (1 - 0.125), 1e-12);
	CHECK(rt_gradual_sparsity(0.9, 100, 100) == 0.9 && rt_gradual_sparsity(0.9, 120, 100) == 0.9);
}

int main(void)
{
	RUN(test_rigl_rule);
	RUN(test_set_seeded);
	RUN(test_limits);
	RUN(test_gradual);
	return check_report();
}

/* test_sparse_kernels.c: spmm and sddmm (backend/emit_sparse.c) against
 * plain loops in double over the dense W * mask.
 *
 * For awkward shapes (rows per block M not a multiple of the vector
 * width, M = 1, a single feature, several blocks) and masks of 0%, 50%, 75%, 90% and 100% zeros, in both
 * formats (compressed rows, unrolled):
 *   - results within 1e-5 normwise relative error of the reference
 *     (float sums of up to a few hundred terms of +-[0.1, 1) values);
 *   - pruned weights are never read: they hold NaN, and the result is
 *     finite;
 *   - sddmm writes exactly 0.0 at pruned positions (the output starts as
 *     garbage);
 *   - 1 and 2 threads, and the tasks called one at a time last first, give
 *     the same bits;
 *   - an entry of the weight gradient has the same bits whatever else its
 *     row keeps (sddmm reduces eight dots at a time, or one at a time for
 *     the rest of a panel: both must form the same sums). */
#include "backend/backend.h"
#include "harness.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5;

typedef struct Case {
	int64_t K, N, M, nb;  /* blocks of M rows */
	double sparsity;
	bool tb, sddmm;
	unsigned flags;       /* NF_UNROLLED */
	uint8_t *bits;
	const uint8_t *given; /* the mask, instead of a random one */
	Graph *g;
	rt_Program *p;
} Case;

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float rnd(void)
{
	double u = harness_urand(&rng);
	double x = 0.1 + 0.9 * u;
	return (float)((rng & 2) ? x : -x);
}

static int build(Case *t)
{
	Diag d;
	diag_init(&d);
	SrcLoc loc = {0};
	t->g = ir_graph_create();
	int64_t numel = t->K * t->N;
	t->bits = mem_alloc((size_t)numel);
	for (int64_t e = 0; e < numel; e++)
		t->bits[e] = t->given ? t->given[e] : harness_urand(&rng) >= t->sparsity;
	Shape sw = SH(t->K, t->N);
	ValId w = ir_param(t->g, "w", &sw, INIT_ZEROS, 0, loc, &d);
	Mask *m = w == VAL_NONE ? NULL : ir_set_mask(t->g, w, t->sparsity, SD_UNIFORM);
	int ok = m && !ir_mask_set_bits(m, t->bits, numel);
	ValId out = VAL_NONE;
	if (ok && t->sddmm) {
		ValId at = in(t->g, "at", DT_F32, SH(t->nb, t->K, t->M));
		ValId bt = in(t->g, "bt", DT_F32, SH(t->nb, t->N, t->M));
		out = ir_sddmm(t->g, at, bt, w, loc, &d);
	} else if (ok) {
		ValId at = in(t->g, "at", DT_F32, SH(t->nb, t->tb ? t->N : t->K, t->M));
		out = ir_spmm(t->g, at, w, (t->tb ? NF_TRANS_B : 0) | t->flags, loc, &d);
	}
	PassOptions po = {.verify = true, .alignment = 64};
	ok = out != VAL_NONE && !ir_set_output(t->g, "out", out) &&
	     !pass_infer_shapes(t->g, &po, &d) && !pass_plan_memory(t->g, &po, &d) &&
	     !be_build_program(t->g, NULL, &t->p, &d);
	if (!ok)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	return ok ? 0 : -1;
}

/* Plain loops in double over W * mask, block by block. */
static void reference(const Case *t, const float *at, const float *bt, const float *w,
		      double *out)
{
	int64_t K = t->K, N = t->N, M = t->M;
	if (t->sddmm) {
		for (int64_t k = 0; k < K; k++)
			for (int64_t n = 0; n < N; n++) {
				double s = 0;
				for (int64_t b = 0; b < t->nb && t->bits[k * N + n]; b++)
					for (int64_t m = 0; m < M; m++)
						s += (double)at[(b * K + k) * M + m] * bt[(b * N + n) * M + m];
				out[k * N + n] = s;
			}
		return;
	}
	int64_t J = t->tb ? K : N, I = t->tb ? N : K;
	for (int64_t b = 0; b < t->nb; b++)
		for (int64_t j = 0; j < J; j++)
			for (int64_t m = 0; m < M; m++) {
				double s = 0;
				for (int64_t i = 0; i < I; i++) {
					int64_t e = t->tb ? j * N + i : i * N + j;
					if (t->bits[e])
						s += (double)w[e] * at[(b * I + i) * M + m];
				}
				out[(b * J + j) * M + m] = s;
			}
}

static int run(const Case *t, int threads, bool scrambled, float *out, double *ref)
{
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(threads);
	rt_Exec *e = NULL;
	rt_Tensor at, bt = {0}, w, o;
	int rc = -1;
	if (!pool || rt_exec_create(t->p, pool, &e, &d) || rt_exec_tensor(e, "at", &at) ||
	    (t->sddmm && rt_exec_tensor(e, "bt", &bt)) || rt_exec_tensor(e, "w", &w) ||
	    rt_exec_tensor(e, "out", &o)) {
		fprintf(stderr, "%s", diag_text(&d));
		goto done;
	}
	rng = 0x9e3779b97f4a7c15ull;   /* the same operands every run */
	for (int64_t i = 0; i < rt_numel(&at); i++)
		((float *)at.data)[i] = rnd();
	for (int64_t i = 0; t->sddmm && i < rt_numel(&bt); i++)
		((float *)bt.data)[i] = rnd();
	for (int64_t i = 0; i < rt_numel(&w); i++)   /* pruned weights must not be read */
		((float *)w.data)[i] = t->bits[i] ? rnd() : NAN;
	for (int64_t i = 0; i < rt_numel(&o); i++)   /* nor the output before it is written */
		((float *)o.data)[i] = 1e30f;
	if (scrambled)
		run_scrambled(e, t->p);
	else
		rt_exec_run(e);
	memcpy(out, o.data, (size_t)rt_nbytes(&o));
	if (ref)
		reference(t, at.data, t->sddmm ? bt.data : NULL, w.data, ref);
	rc = 0;
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	diag_free(&d);
	return rc;
}

static void check_case(Case *t)
{
	char what[160];
	snprintf(what, sizeof what, "%s%s%s K=%lld N=%lld %lld blocks of M=%lld, sparsity %.2f",
		 t->sddmm ? "sddmm" : "spmm", t->tb ? " transb" : "",
		 t->flags & NF_UNROLLED ? " unrolled" : "", (long long)t->K, (long long)t->N,
		 (long long)t->nb, (long long)t->M, t->sparsity);
	int built = !build(t);
	CHECK_MSG(built, "build %s", what);
	int64_t n = built ? ir_numel(&ir_node(t->g, VEC_AT(t->g->out, Output, 0).val)->shape) : 0;
	float *o1 = mem_alloc((size_t)(n ? n : 1) * sizeof *o1);
	float *o2 = mem_alloc((size_t)(n ? n : 1) * sizeof *o2);
	float *o3 = mem_alloc((size_t)(n ? n : 1) * sizeof *o3);
	double *ref = mem_alloc((size_t)(n ? n : 1) * sizeof *ref);
	if (built && !run(t, 1, false, o1, ref) && !run(t, 2, false, o2, NULL) &&
	    !run(t, 1, true, o3, NULL)) {
		double num = 0, den = 0;
		bool finite = true, zeros = true;
		for (int64_t i = 0; i < n; i++) {
			finite &= isfinite(o1[i]);
			num += (o1[i] - ref[i]) * (o1[i] - ref[i]);
			den += ref[i] * ref[i];
			if (t->sddmm && !t->bits[i])
				zeros &= o1[i] == 0.0f && !signbit(o1[i]);
		}
		double err = den > 0 ? sqrt(num / den) : sqrt(num);
		CHECK_MSG(finite, "%s: non-finite result (a pruned weight or unwritten output read)",
			  what);
		CHECK_MSG(err < TOL, "%s: normwise relative error %.3g", what, err);
		CHECK_MSG(zeros, "%s: a pruned position of the weight gradient is not +0.0", what);
		CHECK_MSG(!memcmp(o1, o2, (size_t)n * sizeof *o1), "%s: 1 vs 2 threads differ", what);
		CHECK_MSG(!memcmp(o1, o3, (size_t)n * sizeof *o1), "%s: task order changes bits", what);
	} else {
		CHECK_MSG(0, "run %s", what);
	}
	mem_free(o1);
	mem_free(o2);
	mem_free(o3);
	mem_free(ref);
	rt_program_destroy(t->p);
	ir_graph_destroy(t->g);
	mem_free(t->bits);
}

static const int64_t shapes[][4] = {
	/* K, N, blocks, M */
	{1, 1, 1, 1},   {7, 5, 3, 1},  {33, 17, 1, 70}, {64, 96, 2, 64},
	{40, 24, 1, 203}, {3, 130, 2, 65}, {96, 32, 3, 17},
};
static const double sparsities[] = {0, 0.5, 0.75, 0.9, 1.0};

static void each(bool sddmm, bool tb, unsigned flags)
{
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (size_t q = 0; q < sizeof sparsities / sizeof sparsities[0]; q++) {
			Case t = {.K = shapes[s][0], .N = shapes[s][1], .nb = shapes[s][2],
				  .M = shapes[s][3],
				  .sparsity = sparsities[q], .tb = tb, .sddmm = sddmm, .flags = flags};
			check_case(&t);
		}
}

/* Masks a and b = a plus more entries: b's rows regroup a's entries
 * (other multiples of eight per panel), so any dependence of an entry's
 * sum on its neighbours shows as different bits. */
static void test_sddmm_grouping(void)
{
	enum { K = 6, N = 300, M = 160, NB = 2 };
	static uint8_t a[K * N], b[K * N];
	for (int i = 0; i < K * N; i++) {
		a[i] = harness_urand(&rng) < 0.3;
		b[i] = a[i] || harness_urand(&rng) < 0.3 + 0.1 * (i / N);
	}
	Case ca = {.K = K, .N = N, .M = M, .nb = NB, .sddmm = true, .given = a};
	Case cb = ca;
	cb.given = b;
	float *oa = mem_alloc(K * N * sizeof *oa), *ob = mem_alloc(K * N * sizeof *ob);
	int ok = !build(&ca) && !build(&cb) && !run(&ca, 1, false, oa, NULL) &&
		 !run(&cb, 1, false, ob, NULL);
	CHECK_MSG(ok, "build and run the two sddmm cases");
	int differ = 0;
	for (int i = 0; ok && i < K * N; i++)
		differ += a[i] && memcmp(&oa[i], &ob[i], sizeof *oa) != 0;
	CHECK_MSG(differ == 0, "%d entries of the weight gradient change bits when their row "
		  "keeps more entries", differ);
	for (Case *t = &ca; t; t = t == &ca ? &cb : NULL) {
		rt_program_destroy(t->p);
		ir_graph_destroy(t->g);
		mem_free(t->bits);
	}
	mem_free(oa);
	mem_free(ob);
}

static void test_spmm_csr(void) { each(false, false, 0); }
static void test_spmm_transb_csr(void) { each(false, true, 0); }
static void test_spmm_unrolled(void) { each(false, false, NF_UNROLLED); }
static void test_spmm_transb_unrolled(void) { each(false, true, NF_UNROLLED); }
static void test_sddmm(void) { each(true, false, 0); }

int main(void)
{
	RUN(test_spmm_csr);
	RUN(test_spmm_transb_csr);
	RUN(test_spmm_unrolled);
	RUN(test_spmm_transb_unrolled);
	RUN(test_sddmm);
	RUN(test_sddmm_grouping);
	return check_report();
}

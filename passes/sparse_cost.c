/* sparse_cost.c: which kernel computes each product of a sparse weight.
 *
 * A first-order time model per product, in seconds on one core:
 *   masked (dense) : 2*M*K*N / DENSE_FLOPS, the dense matmul of W*mask
 *   csr            : 2*M*nnz / CSR_FLOPS + per-row overhead
 *                    + the transposes into and out of the feature-major
 *                    layout the sparse kernels use (ops.h), as bytes moved
 *   unrolled       : 2*M*nnz / UNROLLED_FLOPS + the same transposes, only
 *                    when the code stays small (nnz <= UNROLL_MAX_NNZ):
 *                    every kept weight is a handful of instructions, LLVM
 *                    spends about 0.3 ms optimising each, and the gain over
 *                    compressed rows measured 0-6%, so it is worth it only
 *                    for small patterns
 * The rates are measured on the development machine (Zen 4, AVX-512) by
 * `mswc bench sparse` (docs/performance.md); only their ratios matter, so
 * they carry over to other x86 machines to first order. The transposes of
 * x and dy are shared by the weight gradient, so it is charged none when
 * the other two products are sparse. */
#include "sparse.h"

#include <math.h>

enum { UNROLL_MAX_NNZ = 4096 };

static const double DENSE_FLOPS = 115e9;
static const double CSR_FLOPS = 45e9;
static const double UNROLLED_FLOPS = 47e9;
static const double SDDMM_FLOPS = 50e9;
static const double TRANSPOSE_BYTES = 30e9;  /* read + write, per second */
static const double ROW_SECONDS = 2e-9;      /* per output row and 64 columns */

const char *const sparse_format_name[SPF_COUNT] = {"masked", "csr", "unrolled"};
const char *const sparse_product_name[SPP_COUNT] = {"forward", "input-grad", "weight-grad"};

static double transposes(const SparseShape *s)
{
	return 2.0 * 4.0 * (double)s->rows * (double)(s->k + s->n) / TRANSPOSE_BYTES;
}

double sparse_cost(SparseProduct p, SparseFormat f, const SparseShape *s, bool shared)
{
	double m = (double)s->rows, dense = 2.0 * m * (double)s->k * (double)s->n;
	double sparse = 2.0 * m * (double)s->nnz;
	double rows = (double)(p == SPP_INPUT_GRAD || p == SPP_WEIGHT_GRAD ? s->k : s->n);
	double over = ROW_SECONDS * rows * ceil(m / 64.0) + (shared ? 0.0 : transposes(s));
	switch (f) {
	case SPF_MASKED: return dense / DENSE_FLOPS;
	case SPF_CSR:
		return sparse / (p == SPP_WEIGHT_GRAD ? SDDMM_FLOPS : CSR_FLOPS) + over;
	case SPF_UNROLLED:
		if (p == SPP_WEIGHT_GRAD || s->nnz > UNROLL_MAX_NNZ)
			return INFINITY;
		return sparse / UNROLLED_FLOPS + over;
	default: return INFINITY;
	}
}

SparseFormat sparse_choose(SparseProduct p, const SparseShape *s, bool shared, SparseFormat force)
{
	if (force != SPF_AUTO) {
		if (force == SPF_UNROLLED && isinf(sparse_cost(p, SPF_UNROLLED, s, shared)))
			return SPF_CSR;   /* the product has no unrolled kernel */
		return force;
	}
	SparseFormat best = SPF_MASKED;
	for (int f = SPF_CSR; f < SPF_COUNT; f++)
		if (sparse_cost(p, (SparseFormat)f, s, shared) < sparse_cost(p, best, s, shared))
			best = (SparseFormat)f;
	return best;
}

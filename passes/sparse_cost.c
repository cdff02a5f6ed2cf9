/* sparse_cost.c: which kernel computes each product of a sparse weight.
 *
 * A first-order time model per product, in seconds on one core, from rates
 * measured on this machine (SparseRates, read from the host rates that
 * backend/calibrate.c measures and caches; docs/sparsity.md):
 *   masked (dense) : 2*M*K*N / dense_flops[p], the dense matmul of W*mask
 *   csr            : 2*M*nnz / csr_flops[p] + csr_dense[p] * M*K*N (the
 *                    kernel's work per output row and panel of features,
 *                    which the dense size measures) + the transposes into and out of the
 *                    feature-major layout the sparse kernels use (ops.h),
 *                    as bytes moved / transpose_bytes
 *   unrolled       : csr's kernel time / unrolled_speedup + the same
 *                    transposes, only for patterns small enough that
 *                    LLVM's time per entry stays affordable
 *                    (unroll_max_nnz, spmm only)
 * The transposes of x and dy are shared by the weight gradient, so it is
 * charged none when the other two products are sparse.
 *
 * The kernels vectorise along the activation rows of a block (ops.h), so
 * with fewer than SPARSE_MIN_ROWS rows (decoding a batch of a few
 * sequences) they run scalar code, an order of magnitude below the rates:
 * no sparse format is predicted there (mswc bench decode measured a 75%
 * sparse decode 4.8x slower than dense before this rule).
 *
 * A sparse format is picked only when its prediction beats masked by more
 * than the noise measured with the rates: where the two are within noise,
 * dense is the safe side (it needs no transposes, no index arrays and no
 * compile time per pattern). Without rates nothing is guessed: AUTO keeps
 * every product masked. */
#include "sparse.h"

#include <math.h>
#include <string.h>

const char *const sparse_format_name[SPF_COUNT] = {"masked", "csr", "unrolled"};
const char *const sparse_product_name[SPP_COUNT] = {"forward", "input-grad", "weight-grad"};

int sparse_rates(const HostRates *h, SparseRates *r)
{
	SparseRates x = {0};
	char name[RATES_NAME_MAX];
	if (!h)
		return -1;
	for (int p = 0; p < SPP_COUNT; p++) {
		snprintf(name, sizeof name, "dense.%s", sparse_product_name[p]);
		x.dense_flops[p] = rates_get(h, name);
		snprintf(name, sizeof name, "csr.%s.flops", sparse_product_name[p]);
		x.csr_flops[p] = rates_get(h, name);
		snprintf(name, sizeof name, "csr.%s.dense", sparse_product_name[p]);
		x.csr_dense[p] = rates_get(h, name);
		if (!(x.dense_flops[p] > 0) || !(x.csr_flops[p] > 0) || !(x.csr_dense[p] >= 0))
			return -1;
	}
	x.transpose_bytes = rates_get(h, "transpose.bytes");
	x.noise = rates_get(h, "noise");
	if (!(x.transpose_bytes > 0) || !(x.noise >= 0))
		return -1;
	/* optional: without them there is no unrolled pick */
	x.unrolled_speedup = rates_get(h, "unrolled.speedup");
	x.unroll_max_nnz = rates_get(h, "unrolled.max-nnz");
	if (!(x.unrolled_speedup > 0) || !(x.unroll_max_nnz > 0))
		x.unrolled_speedup = x.unroll_max_nnz = 0;
	snprintf(x.cpu, sizeof x.cpu, "%s", h->cpu);
	snprintf(x.source, sizeof x.source, "%s", h->source);
	*r = x;
	return 0;
}

void sparse_print_rates(FILE *f, const SparseRates *r)
{
	if (!r) {
		fprintf(f, "; sparse rates: none (the cost model keeps every product masked)\n");
		return;
	}
	fprintf(f, "; sparse rates on %s, from %s:\n", r->cpu, r->source);
	fprintf(f, ";   dense matmul %.1f / %.1f / %.1f GFLOP/s (forward / input-grad / weight-grad)\n",
		r->dense_flops[0] * 1e-9, r->dense_flops[1] * 1e-9, r->dense_flops[2] * 1e-9);
	fprintf(f, ";   csr %.1f / %.1f / %.1f GFLOP/s useful, + %.3f / %.3f / %.3f ps per dense "
		"multiply-add\n", r->csr_flops[0] * 1e-9, r->csr_flops[1] * 1e-9,
		r->csr_flops[2] * 1e-9, r->csr_dense[0] * 1e12, r->csr_dense[1] * 1e12,
		r->csr_dense[2] * 1e12);
	fprintf(f, ";   transposes %.1f GB/s; unrolled %s; noise %.1f%%\n", r->transpose_bytes * 1e-9,
		r->unrolled_speedup > 0 ? "measured" : "not measured", r->noise * 100);
	if (r->unrolled_speedup > 0)
		fprintf(f, ";   unrolled: %.2fx csr's kernel time^-1, patterns of at most %.0f entries\n",
			r->unrolled_speedup, r->unroll_max_nnz);
}

static double transposes(const SparseShape *s, const SparseRates *r)
{
	return 2.0 * 4.0 * (double)s->rows * (double)(s->k + s->n) / r->transpose_bytes;
}

double sparse_cost(SparseProduct p, SparseFormat f, const SparseShape *s, bool shared,
		   const SparseRates *r)
{
	if (!r)
		return f == SPF_MASKED ? 0.0 : INFINITY;
	if (f != SPF_MASKED && s->rows < SPARSE_MIN_ROWS)
		return INFINITY;
	double m = (double)s->rows, dense = 2.0 * m * (double)s->k * (double)s->n;
	double useful = 2.0 * m * (double)s->nnz;
	double kernel = useful / r->csr_flops[p] + r->csr_dense[p] * dense / 2.0;
	double around = shared ? 0.0 : transposes(s, r);
	switch (f) {
	case SPF_MASKED: return dense / r->dense_flops[p];
	case SPF_CSR: return kernel + around;
	case SPF_UNROLLED:
		if (p == SPP_WEIGHT_GRAD || !(r->unrolled_speedup > 0) ||
		    (double)s->nnz > r->unroll_max_nnz)
			return INFINITY;
		return kernel / r->unrolled_speedup + around;
	default: return INFINITY;
	}
}

SparseFormat sparse_choose(SparseProduct p, const SparseShape *s, bool shared, SparseFormat force,
			   const SparseRates *r, double cost[SPF_COUNT])
{
	double c[SPF_COUNT];
	for (int f = 0; f < SPF_COUNT; f++)
		c[f] = sparse_cost(p, (SparseFormat)f, s, shared, r);
	if (cost)
		memcpy(cost, c, sizeof c);
	if (force != SPF_AUTO) {
		if (force == SPF_UNROLLED && p == SPP_WEIGHT_GRAD)
			return SPF_CSR;   /* the product has no unrolled kernel */
		return force;
	}
	if (!r)
		return SPF_MASKED;
	SparseFormat best = SPF_MASKED;
	double bound = c[SPF_MASKED] / (1.0 + r->noise);
	for (int f = SPF_CSR; f < SPF_COUNT; f++)
		if (c[f] < bound && (best == SPF_MASKED || c[f] < c[best]))
			best = (SparseFormat)f;
	return best;
}

void sparse_print_choice(FILE *f, const char *weight, SparseProduct p, const SparseShape *s,
			 const double cost[SPF_COUNT], SparseFormat pick, bool forced)
{
	fprintf(f, "; %s [%lld,%lld] kept %lld (%.1f%% sparse) M %lld %-11s", weight,
		(long long)s->k, (long long)s->n, (long long)s->nnz,
		100.0 * (1.0 - (double)s->nnz / (double)(s->k * s->n)), (long long)s->rows,
		sparse_product_name[p]);
	for (int k = 0; k < SPF_COUNT; k++) {
		if (isinf(cost[k]))
			fprintf(f, " %s -", sparse_format_name[k]);
		else
			fprintf(f, " %s %.3f ms", sparse_format_name[k], cost[k] * 1e3);
	}
	fprintf(f, " -> %s%s\n", sparse_format_name[pick], forced ? " (forced)" : "");
}

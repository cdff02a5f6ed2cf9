/* sparse.h: the sparse products of a masked weight and the cost model that
 * picks a kernel for each (passes/sparse_cost.c, passes/sparse_lower.c). */
#ifndef MSW_PASSES_SPARSE_H
#define MSW_PASSES_SPARSE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../support/support.h"

/* How one product of a sparse weight is computed. */
typedef enum SparseFormat {
	SPF_AUTO = -1,   /* the cost model decides */
	SPF_MASKED,      /* the dense matmul of W*mask (what prune leaves) */
	SPF_CSR,         /* compressed rows: index arrays read at run time */
	SPF_UNROLLED,    /* code specialised to the pattern: indices as constants */
	SPF_COUNT
} SparseFormat;

/* The three products of a sparse linear layer y = x @ (W*mask). */
typedef enum SparseProduct {
	SPP_FORWARD,      /* y = x @ W           (spmm) */
	SPP_INPUT_GRAD,   /* dx = dy @ W^T       (spmm transb) */
	SPP_WEIGHT_GRAD,  /* dW = x^T @ dy, kept (sddmm) */
	SPP_COUNT
} SparseProduct;

/* Fewer activation rows than this, and the sparse kernels have no vector
 * code (16 lanes of AVX-512; sparse_cost.c). */
enum { SPARSE_MIN_ROWS = 16 };

typedef struct SparseShape {
	int64_t rows;     /* M: rows of x (batch * sequence) */
	int64_t k, n;     /* W is [k, n] */
	int64_t nnz;      /* kept entries */
} SparseShape;

extern const char *const sparse_format_name[SPF_COUNT];
extern const char *const sparse_product_name[SPP_COUNT];

/* The cost model's inputs: rates of this machine's kernels, read from the
 * host rates (support.h: measured by backend/calibrate.c, or given by a
 * test) by sparse_rates. Plain data: the passes never call the backend. */
typedef struct SparseRates {
	double dense_flops[SPP_COUNT];  /* the dense matmul of each product, flop/s */
	double csr_flops[SPP_COUNT];    /* compressed rows: useful flop/s (2 per kept entry and row) */
	double csr_dense[SPP_COUNT];    /* ... plus seconds per multiply-add of the dense
	                                 * product: the kernels' per row and panel work,
	                                 * which grows with rows x features x M */
	double transpose_bytes;         /* the feature-major transposes, bytes read + written per s */
	double unrolled_speedup;        /* csr time / unrolled time on a small pattern (0: unknown) */
	double unroll_max_nnz;          /* largest pattern worth unrolling (compile time), 0: none */
	double noise;                   /* relative timing noise: sparse must win by more than this */
	char cpu[RATES_TEXT_MAX], source[RATES_TEXT_MAX];
} SparseRates;
/* The rates the cost model needs, from h; -1 (r untouched) when h is NULL
 * or lacks one of them. */
int sparse_rates(const HostRates *h, SparseRates *r);
/* One line: the rates and where they were measured ("; sparse rates ..."). */
void sparse_print_rates(FILE *f, const SparseRates *r);

/* Estimated seconds of product p in format f on this machine (INFINITY: no
 * such kernel, or no rates). shared: the feature-major transposes are paid
 * by another product. */
double sparse_cost(SparseProduct p, SparseFormat f, const SparseShape *s, bool shared,
		   const SparseRates *r);
/* The format with the least predicted time, where a sparse format must
 * beat masked by more than the measured noise; `force` instead when it is
 * not SPF_AUTO (an unrolled request falls back to csr for the weight
 * gradient, which has no unrolled kernel). Without rates (r NULL) AUTO keeps the product masked:
 * the model never guesses. cost (may be NULL) gets every format's
 * prediction. */
SparseFormat sparse_choose(SparseProduct p, const SparseShape *s, bool shared, SparseFormat force,
			   const SparseRates *r, double cost[SPF_COUNT]);
/* One line per decision: weight, shape, kept entries, each format's
 * predicted time and the pick ("; h.0.mlp.c_fc.weight forward ..."). */
void sparse_print_choice(FILE *f, const char *weight, SparseProduct p, const SparseShape *s,
			 const double cost[SPF_COUNT], SparseFormat pick, bool forced);

#endif

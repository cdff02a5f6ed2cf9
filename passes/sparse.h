/* sparse.h: the sparse products of a masked weight and the cost model that
 * picks a kernel for each (passes/sparse_cost.c, passes/sparse_lower.c). */
#ifndef MSW_PASSES_SPARSE_H
#define MSW_PASSES_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

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

typedef struct SparseShape {
	int64_t rows;     /* M: rows of x (batch * sequence) */
	int64_t k, n;     /* W is [k, n] */
	int64_t nnz;      /* kept entries */
} SparseShape;

extern const char *const sparse_format_name[SPF_COUNT];
extern const char *const sparse_product_name[SPP_COUNT];

/* Estimated seconds of product p in format f (INFINITY: no such kernel).
 * shared: the feature-major transposes are paid by another product. */
double sparse_cost(SparseProduct p, SparseFormat f, const SparseShape *s, bool shared);
/* The cheapest format, or `force` when it is not SPF_AUTO (an unrolled
 * request falls back to csr where there is no unrolled kernel). */
SparseFormat sparse_choose(SparseProduct p, const SparseShape *s, bool shared, SparseFormat force);

#endif

/* sparse_lower.c: the products of a sparse weight become sparse kernels.
 *
 * After prune and autodiff, a sparse weight W is read as P = mul(W, mask)
 * and its linear layer y = x @ P has up to three products:
 *   forward       y  = matmul(x, P)                       x  [..., K]
 *   input grad    dx = matmul(dy, P) transb               dy [..., N]
 *   weight grad   dW = mul(matmul(x2, dy2) transa, mask)  x2 [M,K], dy2 [M,N]
 * Each becomes a sparse op in the blocked feature-major layout (ops.h):
 *   y  = T(spmm(T(x), W))          dx = T(spmm(T(dy), W) transb)
 *   dW = sddmm(T(x), T(dy), W)
 * where T turns x viewed as [M, K] into [M/B, K, B] blocks (a reshape and
 * a permute of the last two axes) and back. The
 * transposes of x and dy are made once and shared: the forward's T(x)
 * serves the weight gradient, the input gradient's T(dy) too.
 *
 * Per weight and product, the cost model (sparse_cost.c) or the forced
 * format decides: masked (the product is left alone), csr, or unrolled
 * (flag on the spmm). A product left masked keeps P alive; otherwise DCE
 * drops P and the dense matmul. The MASK node stays: the optimizer's masked
 * AdamW reads it.
 *
 * One rewrite (ir/rewrite.c) carries the whole pass: new nodes are
 * appended and placed before the old node being lowered, a replaced node's
 * readers move to its replacement at the commit, and repl[] lets the pass
 * itself look through the replacements made so far. */
#include "passes.h"

#include <string.h>

typedef struct Lower {
	Graph *g;
	Diag *d;
	SparseFormat force;
	const SparseRates *rates;   /* NULL: none (AUTO keeps products masked) */
	FILE *explain;
	Rewrite rw;
	ValId *repl;   /* old id -> its replacement (itself if none) */
	uint32_t n0;   /* nodes before the pass */
	Vec memo;      /* Transposed */
	ValId at;      /* the old node being lowered (placement of new nodes) */
} Lower;

/* The feature-major blocks of a value viewed as [rows, cols]. */
typedef struct Transposed {
	ValId base;    /* the value under any reshapes */
	int64_t cols;
	ValId t;       /* [rows / B, cols, B] */
} Transposed;

static ValId resolve(const Lower *L, ValId v)
{
	while (v < L->n0 && L->repl[v] != v)
		v = L->repl[v];
	return v;
}

/* Record the nodes appended since `before` as placed before L->at. */
static int placed(Lower *L, ValId v, uint32_t before)
{
	(void)before;   /* everything appended since the last place goes before L->at */
	if (v == VAL_NONE)
		return -1;
	return ir_rw_place(&L->rw, L->at, L->d);
}

static ValId through_reshapes(const Lower *L, ValId v)
{
	while (ir_node(L->g, v)->op == OP_RESHAPE)
		v = resolve(L, ir_operand(L->g, ir_node(L->g, v), 0));
	return v;
}

/* Rows per block of the feature-major layout (ops.h): 128 (eight AVX-512
 * vectors: the weight gradient's dot products run over a whole block
 * before their horizontal sum) or 64 when they divide M; otherwise one
 * block of all M rows. */
static int64_t block_rows(int64_t m)
{
	return m % 128 == 0 ? 128 : m % 64 == 0 ? 64 : m;
}

static const uint8_t swap_last[3] = {0, 2, 1};

/* x viewed as [M, cols], in blocks: [M/B, cols, B], made once per
 * (value, cols). */
static ValId feature_major(Lower *L, ValId x, int64_t cols, SrcLoc loc)
{
	Graph *g = L->g;
	ValId base = through_reshapes(L, x);
	for (size_t i = 0; i < L->memo.len; i++) {
		const Transposed *t = &VEC_AT(L->memo, Transposed, i);
		if (t->base == base && t->cols == cols)
			return t->t;
	}
	uint32_t before = ir_nnode(g);
	int64_t rows = ir_numel(&ir_node(g, base)->shape) / cols, b = block_rows(rows);
	Shape s3 = {.rank = 3, .dim = {rows / b, b, cols}};
	ValId v = base;
	if (!ir_shape_eq(&ir_node(g, base)->shape, &s3))
		v = ir_reshape(g, base, &s3, loc, L->d);
	if (v != VAL_NONE)
		v = ir_permute(g, v, swap_last, loc, L->d);
	Transposed *t = placed(L, v, before) ? NULL : vec_push(&L->memo, sizeof *t);
	if (!t)
		return VAL_NONE;
	*t = (Transposed){base, cols, v};
	return v;
}

/* Blocks [M/B, N, B] back to rows, in the shape of the matmul replaced. */
static ValId row_major(Lower *L, ValId yt, const Shape *shape, SrcLoc loc)
{
	uint32_t before = ir_nnode(L->g);
	ValId y = ir_permute(L->g, yt, swap_last, loc, L->d);
	if (y != VAL_NONE && !ir_shape_eq(&ir_node(L->g, y)->shape, shape))
		y = ir_reshape(L->g, y, shape, loc, L->d);
	return placed(L, y, before) ? VAL_NONE : y;
}

/* A weight's product P = mul(W, mask), its MASK node, shape and count. */
typedef struct Weight {
	ValId w, mask, prod;
	SparseShape s;
	bool lowered[SPP_COUNT];
} Weight;

static bool is_product(const Graph *g, const Node *n, ValId w, ValId mask)
{
	if (n->op != OP_MUL || n->narg != 2)
		return false;
	ValId a = ir_operand(g, n, 0), b = ir_operand(g, n, 1);
	return (a == w && b == mask) || (a == mask && b == w);
}

/* The products to lower: the weights whose mask and product exist. */
static int find_weights(const Graph *g, Vec *ws, Diag *d)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_MASK)
			continue;
		ValId w = ir_find_param(g, ir_str(g, n->name));
		const Mask *m = w == VAL_NONE ? NULL : ir_find_mask(g, w);
		if (!m || !m->bits || ir_node(g, w)->shape.rank != 2)
			continue;
		for (ValId u = v + 1; u < ir_nnode(g); u++)
			if (is_product(g, ir_node(g, u), w, v)) {
				Weight *x = vec_push(ws, sizeof *x);
				if (!x)
					return diag_error(d, (SrcLoc){0}, "out of memory");
				const Shape *s = &ir_node(g, w)->shape;
				*x = (Weight){.w = w, .mask = v, .prod = u,
					      .s = {.k = s->dim[0], .n = s->dim[1], .nnz = m->nkept}};
				break;
			}
	}
	return 0;
}

static SparseFormat choose(Lower *L, Weight *w, SparseProduct p, int64_t rows)
{
	w->s.rows = rows;
	bool shared = p == SPP_WEIGHT_GRAD && w->lowered[SPP_FORWARD] &&
		      w->lowered[SPP_INPUT_GRAD];
	double cost[SPF_COUNT];
	SparseFormat f = sparse_choose(p, &w->s, shared, L->force, L->rates, cost);
	if (L->explain)
		sparse_print_choice(L->explain, ir_str(L->g, ir_node(L->g, w->w)->name), p, &w->s,
				    cost, f, L->force != SPF_AUTO);
	return f;
}

/* y = matmul(x, P) or dx = matmul(dy, P) transb. */
static int lower_matmul(Lower *L, Weight *w, ValId v)
{
	Graph *g = L->g;
	const Node *n = ir_node(g, v);
	bool tb = n->flags & NF_TRANS_B;
	SparseProduct p = tb ? SPP_INPUT_GRAD : SPP_FORWARD;
	ValId x = resolve(L, ir_operand(g, n, 0));
	int64_t cols = tb ? w->s.n : w->s.k;
	SparseFormat f = choose(L, w, p, ir_numel(&ir_node(g, x)->shape) / cols);
	if (f == SPF_MASKED)
		return 0;
	Shape shape = n->shape;
	SrcLoc loc = n->loc;
	ValId xt = feature_major(L, x, cols, loc);
	if (xt == VAL_NONE)
		return -1;
	uint32_t before = ir_nnode(g);
	ValId yt = ir_spmm(g, xt, w->w, (tb ? NF_TRANS_B : 0) | (f == SPF_UNROLLED ? NF_UNROLLED : 0),
			   loc, L->d);
	if (placed(L, yt, before))
		return -1;
	ValId y = row_major(L, yt, &shape, loc);
	if (y == VAL_NONE)
		return -1;
	L->repl[v] = y;
	if (ir_rw_replace(&L->rw, v, y, L->d))
		return -1;
	w->lowered[p] = true;
	return 0;
}

/* dW = mul(matmul(x2, dy2) transa, mask), in either operand order. */
static int lower_weight_grad(Lower *L, Weight *w, ValId v)
{
	Graph *g = L->g;
	const Node *n = ir_node(g, v);
	ValId mm = ir_operand(g, n, ir_operand(g, n, 0) == w->mask ? 1 : 0);
	const Node *m = ir_node(g, mm);
	if (m->op != OP_MATMUL || m->flags != NF_TRANS_A)
		return 0;
	ValId x = resolve(L, ir_operand(g, m, 0)), dy = resolve(L, ir_operand(g, m, 1));
	if (ir_node(g, x)->shape.rank != 2 || ir_node(g, x)->shape.dim[1] != w->s.k)
		return 0;
	if (choose(L, w, SPP_WEIGHT_GRAD, ir_node(g, x)->shape.dim[0]) == SPF_MASKED)
		return 0;
	SrcLoc loc = n->loc;
	ValId xt = feature_major(L, x, w->s.k, loc);
	ValId dyt = xt == VAL_NONE ? VAL_NONE : feature_major(L, dy, w->s.n, loc);
	if (dyt == VAL_NONE)
		return -1;
	uint32_t before = ir_nnode(g);
	ValId dw = ir_sddmm(g, xt, dyt, w->w, loc, L->d);
	if (placed(L, dw, before))
		return -1;
	L->repl[v] = dw;
	if (ir_rw_replace(&L->rw, v, dw, L->d))
		return -1;
	w->lowered[SPP_WEIGHT_GRAD] = true;
	return 0;
}

static int lower_node(Lower *L, Vec *ws, ValId v)
{
	const Graph *g = L->g;
	const Node *n = ir_node(g, v);
	for (size_t i = 0; i < ws->len; i++) {
		Weight *w = &VEC_AT(*ws, Weight, i);
		if (n->op == OP_MATMUL && n->narg == 2 && ir_operand(g, n, 1) == w->prod &&
		    (n->flags & ~NF_TRANS_B) == 0)
			return lower_matmul(L, w, v);
		if (n->op == OP_MUL && n->narg == 2 && v != w->prod &&
		    (ir_operand(g, n, 0) == w->mask || ir_operand(g, n, 1) == w->mask))
			return lower_weight_grad(L, w, v);
	}
	return 0;
}

int pass_sparse_lower(Graph *g, const PassOptions *o, Diag *d)
{
	if (!g->mask.len || o->sparse_format == SPF_MASKED)
		return 0;
	Lower L = {.g = g, .d = d, .force = o->sparse_format, .n0 = ir_nnode(g),
		   .explain = o->explain};
	Vec ws = {0};
	SparseRates rates;
	int rc = -1;
	if (o->sparse_format == SPF_AUTO || o->explain) {
		const HostRates *h = o->rates;
		if (!h && o->get_rates && o->get_rates(o->rates_ctx, &h, d))
			return -1;
		L.rates = sparse_rates(h, &rates) ? NULL : &rates;
		if (L.explain)
			sparse_print_rates(L.explain, L.rates);
	}
	bool begun = false;
	L.repl = mem_alloc((L.n0 ? L.n0 : 1) * sizeof *L.repl);
	if (!L.repl) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	for (ValId v = 0; v < L.n0; v++)
		L.repl[v] = v;
	if (find_weights(g, &ws, d))
		goto done;
	if (ir_rw_begin(g, &L.rw, d))
		goto done;
	begun = true;
	for (ValId v = 0; v < L.n0; v++) {
		L.at = v;
		if (lower_node(&L, &ws, v))
			goto done;
	}
	begun = false;
	rc = ir_rw_commit(&L.rw, d);   /* on failure the graph is as it was */
done:
	if (begun)
		ir_rw_abort(&L.rw);   /* a failed pass leaves the graph unchanged */
	vec_free(&ws);
	vec_free(&L.memo);
	mem_free(L.repl);
	return rc;
}

/* emit_reduce.c: sum / mean / max over one axis, softmax, cross-entropy,
 * and their backward kernels (softmax_grad, cross_entropy_grad, max_grad).
 *
 * A reduction sees its input as [A, R, B]: A rows before the axis, R the
 * reduced length, B the contiguous run after it. With B == 1 each output is
 * the fold of a contiguous row: four vector accumulators side by side (to
 * hide add latency), combined pairwise, then the scalar tail. With B > 1 the
 * fold runs down columns: a block of up to four vectors of adjacent columns
 * stays in registers while r walks the reduced axis.
 *
 * Determinism: a fold is never split across tasks, and its order (vector
 * lanes, accumulator pairing, tail) is fixed by the shape alone, so the
 * result does not depend on how tasks are spread over threads.
 *
 * Softmax and cross-entropy work row by row over the last axis in one task
 * unit per row: max, then exp(x - max) and its sum (softmax stores the
 * exponentials on the way), then the scale. Cross-entropy produces one
 * scalar, the mean over rows, so it is a single task that sums the per-row
 * losses in double in row order; a target outside [0, V) makes that row's
 * loss NaN, and so the mean.
 *
 * The backward kernels keep the same row structure, one task unit per row:
 *   softmax_grad        dot = fold(dy * y), then y * (dy - dot);
 *   cross_entropy_grad  softmax's max and exp-sum passes, then
 *                       e * (scale / sum) with scale = dl / rows, minus
 *                       scale at the target; an out-of-range target makes
 *                       the row NaN (the interpreter rejects it);
 *   max_grad            [A, R, B] as above. B == 1: the row max by fold,
 *                       then the first index holding it, then a row of
 *                       zeros with dy there. B > 1: a block of columns
 *                       keeps (best, index) vectors down r (strict >, so
 *                       the first maximum wins, NaN never does: the
 *                       interpreter's rule), then writes each r's row as
 *                       index == r ? dy : 0. */
#include "backend.h"

#include <math.h>

enum { UNROLL = 4 };

/* What a fold accumulates: x itself, or map(x) (which may also store). */
typedef struct Map {
	LLVMValueRef (*fn)(be_Ctx *c, struct Map *m, LLVMValueRef x, LLVMValueRef j, int n);
	LLVMValueRef shift;   /* softmax/CE: the row max */
	LLVMValueRef out;     /* softmax: where exp(x - max) goes */
	LLVMValueRef obase;
} Map;

static LLVMValueRef combine(be_Ctx *c, int is_max, LLVMValueRef a, LLVMValueRef b)
{
	return is_max ? be_fmax(c, a, b) : LLVMBuildFAdd(c->b, a, b, "");
}

/* Fold p[base .. base+len) with + or max, after map when given. */
static LLVMValueRef fold(be_Ctx *c, int is_max, LLVMValueRef p, LLVMValueRef base, int64_t len,
			 Map *map)
{
	int L = c->vec_lanes;
	LLVMTypeRef vt = be_vtype(c, c->t_f32, L);
	LLVMValueRef init = be_f32c(c, is_max ? -INFINITY : 0.0);
	LLVMValueRef acc[UNROLL];
	for (int u = 0; u < UNROLL; u++)
		acc[u] = be_local(c, vt, be_splat(c, init, L));
	int64_t nmain = len / (UNROLL * L) * UNROLL * L, nvec = len / L * L;
	be_Loop lp;
	LLVMValueRef j = be_loop_begin(c, &lp, be_i64(c, 0), be_i64(c, nmain), UNROLL * L);
	for (int u = 0; u < UNROLL; u++) {
		LLVMValueRef ju = LLVMBuildNSWAdd(c->b, j, be_i64(c, u * L), "");
		LLVMValueRef x = be_load(c, c->t_f32, p, LLVMBuildNSWAdd(c->b, base, ju, ""), L);
		if (map)
			x = map->fn(c, map, x, ju, L);
		be_set(c, acc[u], combine(c, is_max, be_get(c, vt, acc[u]), x));
	}
	be_loop_end(c, &lp);
	be_loop_scalar(c, &lp);
	j = be_loop_begin(c, &lp, be_i64(c, nmain), be_i64(c, nvec), L);
	LLVMValueRef x = be_load(c, c->t_f32, p, LLVMBuildNSWAdd(c->b, base, j, ""), L);
	if (map)
		x = map->fn(c, map, x, j, L);
	be_set(c, acc[0], combine(c, is_max, be_get(c, vt, acc[0]), x));
	be_loop_end(c, &lp);
	be_loop_scalar(c, &lp);
	LLVMValueRef a01 = combine(c, is_max, be_get(c, vt, acc[0]), be_get(c, vt, acc[1]));
	LLVMValueRef a23 = combine(c, is_max, be_get(c, vt, acc[2]), be_get(c, vt, acc[3]));
	LLVMValueRef a = combine(c, is_max, a01, a23);
	LLVMValueRef s = be_local(c, c->t_f32, is_max ? be_hmax(c, a, L) : be_hsum(c, a, L));
	j = be_loop_begin(c, &lp, be_i64(c, nvec), be_i64(c, len), 1);
	x = be_load(c, c->t_f32, p, LLVMBuildNSWAdd(c->b, base, j, ""), 1);
	if (map)
		x = map->fn(c, map, x, j, 1);
	be_set(c, s, combine(c, is_max, be_get(c, c->t_f32, s), x));
	be_loop_end(c, &lp);
	be_loop_scalar(c, &lp);
	return be_get(c, c->t_f32, s);
}

static void reduce_shape(const Graph *g, const Node *nd, int64_t *A, int64_t *R, int64_t *B)
{
	const Shape *s = &ir_node(g, ir_operand(g, nd, 0))->shape;
	*A = *B = 1;
	for (int i = 0; i < s->rank; i++) {
		if (i < nd->axis)
			*A *= s->dim[i];
		else if (i > nd->axis)
			*B *= s->dim[i];
	}
	*R = s->dim[nd->axis];
}

static LLVMValueRef finish(be_Ctx *c, const Node *nd, LLVMValueRef acc, int64_t R, int n)
{
	if (nd->op != OP_MEAN)
		return acc;
	return LLVMBuildFDiv(c->b, acc, be_splat(c, be_f32c(c, (double)R), n), "");
}

/* Rows: out[a] = fold(x[a, 0..R)). */
static void reduce_rows(be_Ctx *c, const Node *nd, LLVMValueRef out, LLVMValueRef in,
			LLVMValueRef a, int64_t R)
{
	LLVMValueRef base = LLVMBuildNSWMul(c->b, a, be_i64(c, R), "");
	LLVMValueRef acc = fold(c, nd->op == OP_MAX, in, base, R, NULL);
	be_store(c, finish(c, nd, acc, R, 1), c->t_f32, out, a, 1);
}

/* Columns: out[a, j .. j + nvec*n) folded down r, in registers. */
static void reduce_cols(be_Ctx *c, const Node *nd, LLVMValueRef out, LLVMValueRef in,
			LLVMValueRef a, LLVMValueRef j, int64_t R, int64_t B, int nvec, int n)
{
	int is_max = nd->op == OP_MAX;
	LLVMTypeRef vt = be_vtype(c, c->t_f32, n);
	LLVMValueRef acc[UNROLL];
	for (int u = 0; u < nvec; u++)
		acc[u] = be_local(c, vt, be_splat(c, be_f32c(c, is_max ? -INFINITY : 0.0), n));
	LLVMValueRef base = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, R * B), ""), j, "");
	be_Loop lr;
	LLVMValueRef r = be_loop_begin(c, &lr, be_i64(c, 0), be_i64(c, R), 1);
	LLVMValueRef rb = LLVMBuildNSWAdd(c->b, base, LLVMBuildNSWMul(c->b, r, be_i64(c, B), ""), "");
	for (int u = 0; u < nvec; u++) {
		LLVMValueRef x = be_load(c, c->t_f32, in, LLVMBuildNSWAdd(c->b, rb, be_i64(c, u * n), ""), n);
		be_set(c, acc[u], combine(c, is_max, be_get(c, vt, acc[u]), x));
	}
	be_loop_end(c, &lr);
	be_loop_scalar(c, &lr);   /* R is a constant: full unrolling only bloats */
	LLVMValueRef obase = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, B), ""), j, "");
	for (int u = 0; u < nvec; u++)
		be_store(c, finish(c, nd, be_get(c, vt, acc[u]), R, n), c->t_f32, out,
			 LLVMBuildNSWAdd(c->b, obase, be_i64(c, u * n), ""), n);
}

/* One unit of a column reduction: row a, columns [j0, j1). */
static void reduce_block(be_Ctx *c, const Node *nd, LLVMValueRef out, LLVMValueRef in,
			 LLVMValueRef a, LLVMValueRef j0, LLVMValueRef j1, int64_t R, int64_t B)
{
	int L = c->vec_lanes;
	struct { int nvec, n; } pass[3] = {{UNROLL, L}, {1, L}, {1, 1}};
	LLVMValueRef from = j0;
	for (int p = 0; p < 3; p++) {
		int64_t w = (int64_t)pass[p].nvec * pass[p].n;
		LLVMValueRef len = LLVMBuildNSWSub(c->b, j1, from, "");
		LLVMValueRef to = LLVMBuildNSWAdd(c->b, from,
			LLVMBuildNSWMul(c->b, LLVMBuildSDiv(c->b, len, be_i64(c, w), ""), be_i64(c, w), ""), "");
		be_Loop l;
		LLVMValueRef j = be_loop_begin(c, &l, from, to, w);
		reduce_cols(c, nd, out, in, a, j, R, B, pass[p].nvec, pass[p].n);
		be_loop_end(c, &l);
		from = to;
	}
}

int be_emit_reduce(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	int64_t A, R, B;
	reduce_shape(g, nd, &A, &R, &B);
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi, u0, u1;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->flops = (double)A * R * B;
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32), in = be_kernel_arg(c, buf, 1, c->t_f32);
	int64_t per;
	be_Loop lu;
	if (B == 1) {
		be_split(A, (double)R, &per, &k->ntask);
		be_task_units(c, lo, hi, per, A, &u0, &u1);
		LLVMValueRef a = be_loop_begin(c, &lu, u0, u1, 1);
		reduce_rows(c, nd, out, in, a, R);
		be_loop_end(c, &lu);
		be_loop_scalar(c, &lu);
	} else {
		/* Units are (row, block of CB columns); narrower blocks when
		 * there are few rows, so a [K, N] -> [N] reduction still
		 * splits into tasks. */
		int64_t CB = 16 * (int64_t)c->vec_lanes;
		while (CB > UNROLL * c->vec_lanes && A * ((B + CB - 1) / CB) < 8)
			CB /= 2;
		int64_t nbc = (B + CB - 1) / CB;
		be_split(A * nbc, (double)R * (B < CB ? B : CB), &per, &k->ntask);
		be_task_units(c, lo, hi, per, A * nbc, &u0, &u1);
		LLVMValueRef t = be_loop_begin(c, &lu, u0, u1, 1);
		LLVMValueRef a = LLVMBuildUDiv(c->b, t, be_i64(c, nbc), "");
		LLVMValueRef j0 = LLVMBuildNSWMul(c->b, LLVMBuildURem(c->b, t, be_i64(c, nbc), ""),
						  be_i64(c, CB), "");
		LLVMValueRef j1 = be_min64(c, be_i64(c, B), LLVMBuildNSWAdd(c->b, j0, be_i64(c, CB), ""));
		reduce_block(c, nd, out, in, a, j0, j1, R, B);
		be_loop_end(c, &lu);
		be_loop_scalar(c, &lu);
	}
	LLVMBuildRetVoid(c->b);
	return 0;
}

/* exp(x - max), stored to the output row when m->out is set. */
static LLVMValueRef map_exp(be_Ctx *c, Map *m, LLVMValueRef x, LLVMValueRef j, int n)
{
	LLVMValueRef e = be_exp(c, LLVMBuildFSub(c->b, x, be_splat(c, m->shift, n), ""), n);
	if (m->out)
		be_store(c, e, c->t_f32, m->out, LLVMBuildNSWAdd(c->b, m->obase, j, ""), n);
	return e;
}

static void scale_row(be_Ctx *c, LLVMValueRef p, LLVMValueRef base, int64_t len, LLVMValueRef s)
{
	int L = c->vec_lanes;
	int64_t nvec = len / L * L;
	struct { int64_t from, to; int n; } pass[2] = {{0, nvec, L}, {nvec, len, 1}};
	for (int i = 0; i < 2; i++) {
		be_Loop l;
		int n = pass[i].n;
		LLVMValueRef j = be_loop_begin(c, &l, be_i64(c, pass[i].from), be_i64(c, pass[i].to), n);
		LLVMValueRef at = LLVMBuildNSWAdd(c->b, base, j, "");
		LLVMValueRef x = be_load(c, c->t_f32, p, at, n);
		be_store(c, LLVMBuildFMul(c->b, x, be_splat(c, s, n), ""), c->t_f32, p, at, n);
		be_loop_end(c, &l);
		if (n == 1)
			be_loop_scalar(c, &l);
	}
}

static int64_t last_dim(const Node *x)
{
	return x->shape.rank ? x->shape.dim[x->shape.rank - 1] : 1;
}

/* A kernel over the rows of the last axis (softmax and the two backward
 * row kernels): tasks are groups of whole rows, so a row is never split.
 * Begin the function (arguments are loaded between the two calls, in the
 * entry block), then the row loop; `cost` is the work per element. */
typedef struct RowKernel {
	LLVMValueRef buf, lo, hi, r, base;
	int64_t len, rows, per;
	be_Loop loop;
} RowKernel;

static void row_kernel_begin(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, double cost,
			     RowKernel *rk)
{
	const Node *nd = ir_node(g, v);
	char name[64];
	rk->len = last_dim(nd);
	rk->rows = rk->len ? ir_numel(&nd->shape) / rk->len : 0;
	be_kernel_name(g, v, name, sizeof name);
	k->fn = be_kernel_begin(c, name, &rk->buf, &rk->lo, &rk->hi);
	k->flops = (double)rk->rows * (double)rk->len * cost;
	be_split(rk->rows, (double)rk->len * cost, &rk->per, &k->ntask);
}

static void row_loop_begin(be_Ctx *c, RowKernel *rk)
{
	LLVMValueRef u0, u1;
	be_task_units(c, rk->lo, rk->hi, rk->per, rk->rows, &u0, &u1);
	rk->r = be_loop_begin(c, &rk->loop, u0, u1, 1);
	rk->base = LLVMBuildNSWMul(c->b, rk->r, be_i64(c, rk->len), "");
}

static void row_kernel_end(be_Ctx *c, RowKernel *rk)
{
	be_loop_end(c, &rk->loop);
	be_loop_scalar(c, &rk->loop);
	LLVMBuildRetVoid(c->b);
}

int be_emit_softmax(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	RowKernel rk;
	row_kernel_begin(c, g, v, k, 20, &rk);
	LLVMValueRef out = be_kernel_arg(c, rk.buf, 0, c->t_f32);
	LLVMValueRef in = be_kernel_arg(c, rk.buf, 1, c->t_f32);
	row_loop_begin(c, &rk);
	int64_t S = rk.len;
	LLVMValueRef m = fold(c, 1, in, rk.base, S, NULL);
	Map map = {map_exp, m, out, rk.base};
	LLVMValueRef s = fold(c, 0, in, rk.base, S, &map);
	scale_row(c, out, rk.base, S, LLVMBuildFDiv(c->b, be_f32c(c, 1.0), s, ""));
	row_kernel_end(c, &rk);
	return 0;
}

int be_emit_cross_entropy(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *lg = ir_node(g, ir_operand(g, nd, 0));
	int64_t V = last_dim(lg), rows = ir_numel(&lg->shape) / V;
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = 1;   /* one scalar: a fixed-order sum over all rows */
	k->flops = (double)rows * V * 20;
	LLVMTypeRef f64 = LLVMDoubleTypeInContext(c->ctx);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32);
	LLVMValueRef in = be_kernel_arg(c, buf, 1, c->t_f32);
	LLVMValueRef tgt = be_kernel_arg(c, buf, 2, c->t_i32);
	LLVMValueRef total = be_local(c, f64, LLVMConstReal(f64, 0.0));
	LLVMBasicBlockRef skip = be_if_begin(c, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""));
	be_Loop lr;
	LLVMValueRef r = be_loop_begin(c, &lr, be_i64(c, 0), be_i64(c, rows), 1);
	LLVMValueRef base = LLVMBuildNSWMul(c->b, r, be_i64(c, V), "");
	LLVMValueRef m = fold(c, 1, in, base, V, NULL);
	Map map = {map_exp, m, NULL, NULL};
	LLVMValueRef s = LLVMBuildFPExt(c->b, fold(c, 0, in, base, V, &map), f64, "");
	LLVMValueRef lse = LLVMBuildFAdd(c->b, be_intrin(c, "llvm.log", f64, &s, 1),
					 LLVMBuildFPExt(c->b, m, f64, ""), "lse");
	LLVMValueRef t = LLVMBuildSExt(c->b, be_load(c, c->t_i32, tgt, r, 1), c->t_i64, "");
	/* unsigned compare: t < 0 wraps around to a huge value */
	LLVMValueRef ok = LLVMBuildICmp(c->b, LLVMIntULT, t, be_i64(c, V), "");
	LLVMValueRef tc = LLVMBuildSelect(c->b, ok, t, be_i64(c, 0), "");
	LLVMValueRef xt = be_load(c, c->t_f32, in, LLVMBuildNSWAdd(c->b, base, tc, ""), 1);
	LLVMValueRef loss = LLVMBuildFSub(c->b, lse, LLVMBuildFPExt(c->b, xt, f64, ""), "");
	loss = LLVMBuildSelect(c->b, ok, loss, LLVMConstReal(f64, NAN), "");
	be_set(c, total, LLVMBuildFAdd(c->b, be_get(c, f64, total), loss, ""));
	be_loop_end(c, &lr);
	be_loop_scalar(c, &lr);
	LLVMValueRef mean = LLVMBuildFDiv(c->b, be_get(c, f64, total), LLVMConstReal(f64, (double)rows), "");
	be_store(c, LLVMBuildFPTrunc(c->b, mean, c->t_f32, ""), c->t_f32, out, be_i64(c, 0), 1);
	be_if_end(c, skip);
	LLVMBuildRetVoid(c->b);
	return 0;
}

/* ---- backward kernels ---- */

/* x * y[obase + j]: the dot product's map (loads the second row). */
static LLVMValueRef map_mul(be_Ctx *c, Map *m, LLVMValueRef x, LLVMValueRef j, int n)
{
	LLVMValueRef y = be_load(c, c->t_f32, m->out, LLVMBuildNSWAdd(c->b, m->obase, j, ""), n);
	return LLVMBuildFMul(c->b, x, y, "");
}

/* out[base + j] = f(j) for j in [0, len): vectors, then the scalar tail. */
typedef LLVMValueRef (*RowFn)(be_Ctx *c, void *ud, LLVMValueRef at, int n);
static void row_map(be_Ctx *c, LLVMValueRef out, LLVMValueRef base, int64_t len, RowFn f,
		    void *ud)
{
	int L = c->vec_lanes;
	int64_t nvec = len / L * L;
	struct { int64_t from, to; int n; } pass[2] = {{0, nvec, L}, {nvec, len, 1}};
	for (int i = 0; i < 2; i++) {
		be_Loop l;
		int n = pass[i].n;
		LLVMValueRef j = be_loop_begin(c, &l, be_i64(c, pass[i].from), be_i64(c, pass[i].to), n);
		LLVMValueRef at = LLVMBuildNSWAdd(c->b, base, j, "");
		be_store(c, f(c, ud, at, n), c->t_f32, out, at, n);
		be_loop_end(c, &l);
		if (n == 1)
			be_loop_scalar(c, &l);
	}
}

typedef struct SGrad {
	LLVMValueRef y, dy, dot;
} SGrad;

static LLVMValueRef softmax_grad_at(be_Ctx *c, void *ud, LLVMValueRef at, int n)
{
	SGrad *s = ud;
	LLVMValueRef y = be_load(c, c->t_f32, s->y, at, n), dy = be_load(c, c->t_f32, s->dy, at, n);
	return LLVMBuildFMul(c->b, y, LLVMBuildFSub(c->b, dy, be_splat(c, s->dot, n), ""), "");
}

int be_emit_softmax_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	RowKernel rk;
	row_kernel_begin(c, g, v, k, 4, &rk);
	SGrad s = {be_kernel_arg(c, rk.buf, 1, c->t_f32), be_kernel_arg(c, rk.buf, 2, c->t_f32), NULL};
	LLVMValueRef out = be_kernel_arg(c, rk.buf, 0, c->t_f32);
	row_loop_begin(c, &rk);
	Map map = {map_mul, NULL, s.y, rk.base};
	s.dot = fold(c, 0, s.dy, rk.base, rk.len, &map);
	row_map(c, out, rk.base, rk.len, softmax_grad_at, &s);
	row_kernel_end(c, &rk);
	return 0;
}

typedef struct CEGrad {
	LLVMValueRef out, f;
} CEGrad;

static LLVMValueRef scale_at(be_Ctx *c, void *ud, LLVMValueRef at, int n)
{
	CEGrad *s = ud;
	return LLVMBuildFMul(c->b, be_load(c, c->t_f32, s->out, at, n), be_splat(c, s->f, n), "");
}

static LLVMValueRef nan_at(be_Ctx *c, void *ud, LLVMValueRef at, int n)
{
	return be_splat(c, be_f32c(c, NAN), n);
}

int be_emit_cross_entropy_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	RowKernel rk;
	row_kernel_begin(c, g, v, k, 24, &rk);
	int64_t V = rk.len, rows = rk.rows;
	LLVMValueRef out = be_kernel_arg(c, rk.buf, 0, c->t_f32);
	LLVMValueRef in = be_kernel_arg(c, rk.buf, 1, c->t_f32);
	LLVMValueRef tgt = be_kernel_arg(c, rk.buf, 2, c->t_i32);
	LLVMValueRef dl = be_load(c, c->t_f32, be_kernel_arg(c, rk.buf, 3, c->t_f32), be_i64(c, 0), 1);
	/* the same rounding as dl * (1/rows) would differ: divide, as written */
	LLVMValueRef scale = LLVMBuildFDiv(c->b, dl, be_f32c(c, (double)(rows ? rows : 1)), "scale");
	row_loop_begin(c, &rk);
	LLVMValueRef r = rk.r, base = rk.base;
	LLVMValueRef m = fold(c, 1, in, base, V, NULL);
	Map map = {map_exp, m, out, base};
	LLVMValueRef s = fold(c, 0, in, base, V, &map);
	CEGrad cg = {out, LLVMBuildFDiv(c->b, scale, s, "")};
	row_map(c, out, base, V, scale_at, &cg);
	LLVMValueRef t = LLVMBuildSExt(c->b, be_load(c, c->t_i32, tgt, r, 1), c->t_i64, "");
	LLVMValueRef ok = LLVMBuildICmp(c->b, LLVMIntULT, t, be_i64(c, V), "");
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, fn, "target");
	LLVMBasicBlockRef no = LLVMAppendBasicBlockInContext(c->ctx, fn, "badtarget");
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
	LLVMBuildCondBr(c->b, ok, yes, no);
	LLVMPositionBuilderAtEnd(c->b, yes);
	LLVMValueRef at = LLVMBuildNSWAdd(c->b, base, t, "");
	LLVMValueRef old = be_load(c, c->t_f32, out, at, 1);
	be_store(c, LLVMBuildFSub(c->b, old, scale, ""), c->t_f32, out, at, 1);
	LLVMBuildBr(c->b, join);
	LLVMPositionBuilderAtEnd(c->b, no);
	row_map(c, out, base, V, nan_at, NULL);
	LLVMBuildBr(c->b, join);
	LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, join);
	row_kernel_end(c, &rk);
	return 0;
}

typedef struct MGrad {
	LLVMValueRef best, dy;
} MGrad;

/* at == best ? dy : 0 (at and best are element offsets of the row) */
static LLVMValueRef max_grad_at(be_Ctx *c, void *ud, LLVMValueRef at, int n)
{
	MGrad *s = ud;
	LLVMValueRef ids = LLVMBuildAdd(c->b, be_splat(c, at, n), be_lane_ids(c, c->t_i64, n), "");
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, ids, be_splat(c, s->best, n), "");
	return LLVMBuildSelect(c->b, hit, be_splat(c, s->dy, n), be_splat(c, be_f32c(c, 0), n), "");
}

/* B == 1: rows of R. */
static void max_grad_rows(be_Ctx *c, LLVMValueRef out, LLVMValueRef x, LLVMValueRef dy,
			  LLVMValueRef a, int64_t R)
{
	LLVMValueRef base = LLVMBuildNSWMul(c->b, a, be_i64(c, R), "");
	LLVMValueRef m = fold(c, 1, x, base, R, NULL);
	/* first k with x[k] == m; 0 if none (a row of NaN) */
	LLVMValueRef best = be_local(c, c->t_i64, be_i64(c, R));
	be_Loop l;
	LLVMValueRef kk = be_loop_begin(c, &l, be_i64(c, 0), be_i64(c, R), 1);
	LLVMValueRef e = be_load(c, c->t_f32, x, LLVMBuildNSWAdd(c->b, base, kk, ""), 1);
	LLVMValueRef first = LLVMBuildAnd(c->b, LLVMBuildFCmp(c->b, LLVMRealOEQ, e, m, ""),
		LLVMBuildICmp(c->b, LLVMIntEQ, be_get(c, c->t_i64, best), be_i64(c, R), ""), "");
	be_set(c, best, LLVMBuildSelect(c->b, first, kk, be_get(c, c->t_i64, best), ""));
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMValueRef k = be_get(c, c->t_i64, best);
	k = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, k, be_i64(c, R), ""), be_i64(c, 0), k, "");
	MGrad s = {LLVMBuildNSWAdd(c->b, base, k, ""), be_load(c, c->t_f32, dy, a, 1)};
	row_map(c, out, base, R, max_grad_at, &s);
}

/* B > 1: row a, columns j .. j + n of [A, R, B]. */
static void max_grad_cols(be_Ctx *c, LLVMValueRef out, LLVMValueRef x, LLVMValueRef dy,
			  LLVMValueRef a, LLVMValueRef j, int64_t R, int64_t B, int n)
{
	LLVMTypeRef vf = be_vtype(c, c->t_f32, n), vi = be_vtype(c, c->t_i64, n);
	LLVMValueRef base = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, R * B), ""), j, "");
	LLVMValueRef best = be_local(c, vf, be_load(c, c->t_f32, x, base, n));
	LLVMValueRef idx = be_local(c, vi, be_splat(c, be_i64(c, 0), n));
	be_Loop l;
	LLVMValueRef r = be_loop_begin(c, &l, be_i64(c, 1), be_i64(c, R), 1);
	LLVMValueRef at = LLVMBuildNSWAdd(c->b, base, LLVMBuildNSWMul(c->b, r, be_i64(c, B), ""), "");
	LLVMValueRef e = be_load(c, c->t_f32, x, at, n), bv = be_get(c, vf, best);
	LLVMValueRef gt = LLVMBuildFCmp(c->b, LLVMRealOGT, e, bv, "");
	be_set(c, best, LLVMBuildSelect(c->b, gt, e, bv, ""));
	be_set(c, idx, LLVMBuildSelect(c->b, gt, be_splat(c, r, n), be_get(c, vi, idx), ""));
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMValueRef g = be_load(c, c->t_f32, dy,
				 LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, B), ""), j, ""), n);
	LLVMValueRef iv = be_get(c, vi, idx), zero = be_splat(c, be_f32c(c, 0), n);
	r = be_loop_begin(c, &l, be_i64(c, 0), be_i64(c, R), 1);
	at = LLVMBuildNSWAdd(c->b, base, LLVMBuildNSWMul(c->b, r, be_i64(c, B), ""), "");
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, iv, be_splat(c, r, n), "");
	be_store(c, LLVMBuildSelect(c->b, hit, g, zero, ""), c->t_f32, out, at, n);
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
}

int be_emit_max_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	int64_t A, R, B, per;
	reduce_shape(g, nd, &A, &R, &B);   /* x is operand 0 and has the node's shape */
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi, u0, u1;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->flops = (double)A * R * B * 3;
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32), x = be_kernel_arg(c, buf, 1, c->t_f32);
	LLVMValueRef dy = be_kernel_arg(c, buf, 2, c->t_f32);
	be_Loop lu;
	if (A * R * B == 0) {
		k->ntask = 1;
		LLVMBuildRetVoid(c->b);
		return 0;
	}
	if (B == 1) {
		be_split(A, (double)R * 3, &per, &k->ntask);
		be_task_units(c, lo, hi, per, A, &u0, &u1);
		LLVMValueRef a = be_loop_begin(c, &lu, u0, u1, 1);
		max_grad_rows(c, out, x, dy, a, R);
	} else {
		/* units: (row a, one vector of columns); the last vector of a
		 * row may be partial and goes lane by lane */
		int L = c->vec_lanes;
		int64_t nbv = (B + L - 1) / L;
		be_split(A * nbv, (double)R * L * 3, &per, &k->ntask);
		be_task_units(c, lo, hi, per, A * nbv, &u0, &u1);
		LLVMValueRef t = be_loop_begin(c, &lu, u0, u1, 1);
		LLVMValueRef a = LLVMBuildUDiv(c->b, t, be_i64(c, nbv), "");
		LLVMValueRef j0 = LLVMBuildNSWMul(c->b, LLVMBuildURem(c->b, t, be_i64(c, nbv), ""),
						  be_i64(c, L), "");
		if (B % L == 0) {
			max_grad_cols(c, out, x, dy, a, j0, R, B, L);
		} else {
			LLVMValueRef full = LLVMBuildICmp(c->b, LLVMIntSLE,
				LLVMBuildNSWAdd(c->b, j0, be_i64(c, L), ""), be_i64(c, B), "");
			LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
			LLVMBasicBlockRef vb = LLVMAppendBasicBlockInContext(c->ctx, fn, "vec");
			LLVMBasicBlockRef sb = LLVMAppendBasicBlockInContext(c->ctx, fn, "lanes");
			LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, fn, "joined");
			LLVMBuildCondBr(c->b, full, vb, sb);
			LLVMPositionBuilderAtEnd(c->b, vb);
			if (B >= L)
				max_grad_cols(c, out, x, dy, a, j0, R, B, L);
			LLVMBuildBr(c->b, join);
			LLVMPositionBuilderAtEnd(c->b, sb);
			be_Loop lj;
			LLVMValueRef j = be_loop_begin(c, &lj, j0, be_i64(c, B), 1);
			max_grad_cols(c, out, x, dy, a, j, R, B, 1);
			be_loop_end(c, &lj);
			be_loop_scalar(c, &lj);
			LLVMBuildBr(c->b, join);
			LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(c->b));
			LLVMPositionBuilderAtEnd(c->b, join);
		}
	}
	be_loop_end(c, &lu);
	be_loop_scalar(c, &lu);
	LLVMBuildRetVoid(c->b);
	return 0;
}

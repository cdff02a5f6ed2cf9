/* emit_elementwise.c: unary and binary elementwise ops, cast, const, iota,
 * broadcast, and the elementwise backward kernels (gelu_grad, silu_grad,
 * relu_grad: binary ops of x and dy, broadcasting like add),
 * and iota_offset (an iota whose i32 scalar operand is broadcast like any
 * stride-0 operand and added to every element).
 *
 * Layout first, code second. The output is contiguous; each operand is
 * described by a stride per output axis (0 where numpy broadcasting repeats
 * it). Size-1 axes are dropped and neighbouring axes merged wherever every
 * operand is contiguous across them, so [7,1]+[1,129] stays two axes but a
 * plain [4,8,16] unary op becomes one axis of 512. After that the innermost
 * axis has stride 1 (read a vector) or 0 (broadcast: one scalar splatted
 * for the whole row) in every operand, which is what makes the inner loop
 * vectorisable without gathers.
 *
 * Work is split over output elements, not rows: task t owns elements
 * [t*per, (t+1)*per) (per a multiple of the vector width), and the kernel
 * walks that range one row segment at a time. So a [1,1e6] op and a
 * [1e6,3] op both split evenly, and every element is computed by the same
 * instructions whatever the split: results are bitwise independent of it.
 *
 * Broadcast is the one-operand case of the same machinery (its operand's
 * strides are 0 along the repeated axes), for any dtype: loads and stores
 * are typed by the dtype, so it is a strided copy that splats a repeated
 * innermost value instead of gathering. */
#include "backend.h"

#include <math.h>

typedef struct Layout {
	int rank;                       /* after merging; at least 1 */
	int64_t dim[IR_MAX_RANK];
	int nop;
	int64_t stride[2][IR_MAX_RANK]; /* per operand, in elements */
} Layout;

/* Strides of operand x seen through the output shape (broadcast -> 0). */
static void operand_strides(const Shape *out, const Shape *x, int64_t *stride)
{
	int64_t s = 1;
	for (int i = out->rank - 1; i >= 0; i--) {
		int j = x->rank - out->rank + i;
		int64_t dx = j >= 0 ? x->dim[j] : 1;
		stride[i] = dx == 1 ? 0 : s;
		s *= dx;
	}
}

static void layout(const Graph *g, const Node *n, Layout *l)
{
	int64_t st[2][IR_MAX_RANK];
	int nop = ir_op[n->op].flags & OPF_SOURCE ? 0 : (int)n->narg;
	for (int k = 0; k < nop; k++)
		operand_strides(&n->shape, &ir_node(g, ir_operand(g, n, (uint32_t)k))->shape, st[k]);
	l->nop = nop;
	l->rank = 0;
	for (int i = 0; i < n->shape.rank; i++) {
		if (n->shape.dim[i] == 1)
			continue;
		int r = l->rank;
		int merge = r > 0;
		for (int k = 0; k < nop && merge; k++)
			merge = l->stride[k][r - 1] == st[k][i] * n->shape.dim[i];
		if (merge) {
			l->dim[r - 1] *= n->shape.dim[i];
			for (int k = 0; k < nop; k++)
				l->stride[k][r - 1] = st[k][i];
			continue;
		}
		l->dim[r] = n->shape.dim[i];
		for (int k = 0; k < nop; k++)
			l->stride[k][r] = st[k][i];
		l->rank++;
	}
	if (l->rank == 0) {   /* a single element */
		l->rank = 1;
		l->dim[0] = 1;
		for (int k = 0; k < nop; k++)
			l->stride[k][0] = 1;
	}
}

static LLVMTypeRef elem_type(be_Ctx *c, int dtype)
{
	return dtype == DT_F32 ? c->t_f32 : dtype == DT_I32 ? c->t_i32 : c->t_i8;
}

/* 1 - s for s = 1 / (1 + e): e * s when e <= 1 (s >= 1/2, where 1 - s
 * would cancel), 1 - s otherwise (s < 1/2: exact enough, and e * s would be
 * inf * 0 once e overflows). */
static LLVMValueRef one_minus_sigmoid(be_Ctx *c, LLVMValueRef e, LLVMValueRef s, int n)
{
	LLVMValueRef one = be_splat(c, be_f32c(c, 1.0), n);
	LLVMValueRef big = LLVMBuildFCmp(c->b, LLVMRealOGT, e, one, "");
	return LLVMBuildSelect(c->b, big, LLVMBuildFSub(c->b, one, s, ""),
			       LLVMBuildFMul(c->b, e, s, ""), "");
}

/* The op on n-lane values x[] (already loaded); col is the i64 index of
 * lane 0 along the innermost axis (for iota). */
static LLVMValueRef compute(be_Ctx *c, const Graph *g, const Node *nd, LLVMValueRef *x,
			    LLVMValueRef col, int n)
{
	LLVMBuilderRef b = c->b;
	LLVMTypeRef ft = be_vtype(c, c->t_f32, n), ot = be_vtype(c, elem_type(c, nd->dtype), n);
#define K(v) be_splat(c, be_f32c(c, (v)), n)
	switch (nd->op) {
	case OP_CONST:
		if (nd->dtype == DT_F32)
			return K(nd->value);
		return be_splat(c, be_i32c(c, (int32_t)nd->value), n);
	case OP_IOTA: {
		LLVMValueRef i = LLVMBuildTrunc(b, col, c->t_i32, "");
		i = LLVMBuildAdd(b, be_splat(c, i, n), be_lane_ids(c, c->t_i32, n), "");
		return nd->dtype == DT_F32 ? LLVMBuildSIToFP(b, i, ft, "") : i;
	}
	case OP_IOTA_OFFSET: {
		/* [B,1] from offsets [B,1]: the layout merged the two into one
		 * axis of B, so col counts sequences, not positions; the count
		 * along a length-1 axis is 0. */
		if (nd->shape.dim[nd->shape.rank - 1] == 1) {
			LLVMValueRef i = x[0];
			return nd->dtype == DT_F32 ? LLVMBuildSIToFP(b, i, ft, "") : i;
		}
		LLVMValueRef i = LLVMBuildTrunc(b, col, c->t_i32, "");
		i = LLVMBuildAdd(b, be_splat(c, i, n), be_lane_ids(c, c->t_i32, n), "");
		i = LLVMBuildAdd(b, i, x[0], "");
		return nd->dtype == DT_F32 ? LLVMBuildSIToFP(b, i, ft, "") : i;
	}
	case OP_NEG: return LLVMBuildFNeg(b, x[0], "");
	case OP_EXP: return be_exp(c, x[0], n);
	case OP_LOG: return be_log(c, x[0], n);
	case OP_TANH: return be_tanh(c, x[0], n);
	case OP_SQRT: return be_intrin(c, "llvm.sqrt", ft, x, 1);
	case OP_RSQRT: return LLVMBuildFDiv(b, K(1.0), be_intrin(c, "llvm.sqrt", ft, x, 1), "");
	case OP_RELU: return be_fmax(c, x[0], K(0.0));
	case OP_SILU: {
		LLVMValueRef e = be_exp(c, LLVMBuildFNeg(b, x[0], ""), n);
		return LLVMBuildFDiv(b, x[0], LLVMBuildFAdd(b, e, K(1.0), ""), "");
	}
	case OP_GELU: {
		/* 0.5 x (1 + tanh u) == x / (1 + e^(-2u)): the same function
		 * without the cancellation in 1 + tanh u for negative x. */
		LLVMValueRef x3 = LLVMBuildFMul(b, LLVMBuildFMul(b, x[0], x[0], ""), x[0], "");
		LLVMValueRef u = be_fma(c, x3, K(0.044715), x[0], n);
		LLVMValueRef e = be_exp(c, LLVMBuildFMul(b, u, K(-2.0 * sqrt(2.0 / M_PI)), ""), n);
		return LLVMBuildFDiv(b, x[0], LLVMBuildFAdd(b, e, K(1.0), ""), "");
	}
	case OP_CAST: {
		int from = ir_node(g, ir_operand(g, nd, 0))->dtype, to = nd->dtype;
		if (from == to)
			return x[0];
		if (to == DT_F32)
			return from == DT_U8 ? LLVMBuildUIToFP(b, x[0], ft, "") :
					       LLVMBuildSIToFP(b, x[0], ft, "");
		if (from == DT_F32) {   /* truncate toward zero */
			LLVMValueRef i = LLVMBuildFPToSI(b, x[0], be_vtype(c, c->t_i32, n), "");
			return to == DT_I32 ? i : LLVMBuildTrunc(b, i, ot, "");
		}
		return from == DT_U8 ? LLVMBuildZExt(b, x[0], ot, "") : LLVMBuildTrunc(b, x[0], ot, "");
	}
	case OP_ADD: return LLVMBuildFAdd(b, x[0], x[1], "");
	case OP_SUB: return LLVMBuildFSub(b, x[0], x[1], "");
	case OP_MUL: return LLVMBuildFMul(b, x[0], x[1], "");
	case OP_DIV: return LLVMBuildFDiv(b, x[0], x[1], "");
	case OP_BROADCAST: return x[0];
	case OP_RELU_GRAD:
		/* NaN x gives 0, as in the interpreter (x > 0 is false) */
		return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x[0], K(0.0), ""), x[1],
				       K(0.0), "");
	case OP_SILU_GRAD: {
		/* dy * s (1 + x (1 - s)), s = 1 / (1 + e), e = exp(-x) */
		LLVMValueRef e = be_exp(c, LLVMBuildFNeg(b, x[0], ""), n);
		LLVMValueRef s = LLVMBuildFDiv(b, K(1.0), LLVMBuildFAdd(b, e, K(1.0), ""), "");
		LLVMValueRef oms = one_minus_sigmoid(c, e, s, n);
		LLVMValueRef t = be_fma(c, x[0], oms, K(1.0), n);
		return LLVMBuildFMul(b, x[1], LLVMBuildFMul(b, s, t, ""), "");
	}
	case OP_GELU_GRAD: {
		/* gelu' = 0.5 (1 + t) + 0.5 x (1 - t^2) u', t = tanh u. With
		 * s = 1 / (1 + e^(-2u)): 0.5 (1 + t) = s and 0.5 (1 - t^2) =
		 * 2 s (1 - s), so gelu' = s + 2 x s (1 - s) u', free of the
		 * cancellation in 1 + t for negative x. */
		const double k = sqrt(2.0 / M_PI);
		LLVMValueRef x2 = LLVMBuildFMul(b, x[0], x[0], "");
		LLVMValueRef u = LLVMBuildFMul(b, be_fma(c, LLVMBuildFMul(b, x2, x[0], ""), K(0.044715),
							 x[0], n), K(k), "");
		LLVMValueRef du = be_fma(c, x2, K(3 * 0.044715 * k), K(k), n);
		LLVMValueRef e = be_exp(c, LLVMBuildFMul(b, u, K(-2.0), ""), n);
		LLVMValueRef s = LLVMBuildFDiv(b, K(1.0), LLVMBuildFAdd(b, e, K(1.0), ""), "");
		LLVMValueRef oms = one_minus_sigmoid(c, e, s, n);
		LLVMValueRef t = LLVMBuildFMul(b, LLVMBuildFMul(b, s, oms, ""),
					       LLVMBuildFMul(b, x[0], du, ""), "");
		return LLVMBuildFMul(b, x[1], be_fma(c, t, K(2.0), s, n), "");
	}
	}
#undef K
	return NULL;
}

/* Rough instructions per element, for the task split and the profile. */
static double cost(int op)
{
	switch (op) {
	case OP_EXP: case OP_LOG: case OP_TANH: case OP_SILU: return 16;
	case OP_GELU: return 24;
	case OP_SILU_GRAD: return 24;
	case OP_GELU_GRAD: return 32;
	case OP_SQRT: case OP_RSQRT: case OP_DIV: return 4;
	default: return 1;
	}
}

typedef struct Row {
	LLVMValueRef out, in[2];      /* typed base pointers */
	LLVMTypeRef oty, ity[2];
	LLVMValueRef obase, ibase[2]; /* i64 element offsets of the row */
	LLVMValueRef bcast[2];        /* stride-0 operands: their one value in this row */
} Row;

/* out[obase + j .. +n) = op(operands at j) */
static void body(be_Ctx *c, const Graph *g, const Node *nd, const Layout *l, Row *r,
		 LLVMValueRef j, int n)
{
	LLVMValueRef x[2];
	int in = l->rank - 1;
	for (int k = 0; k < l->nop; k++) {
		if (l->stride[k][in] == 0)
			x[k] = be_splat(c, r->bcast[k], n);
		else
			x[k] = be_load(c, r->ity[k], r->in[k], LLVMBuildNSWAdd(c->b, r->ibase[k], j, ""), n);
	}
	LLVMValueRef y = compute(c, g, nd, x, j, n);
	be_store(c, y, r->oty, r->out, LLVMBuildNSWAdd(c->b, r->obase, j, ""), n);
}

/* Columns [j0, j1) of one row: vector loop, then scalar tail. */
static void row_segment(be_Ctx *c, const Graph *g, const Node *nd, const Layout *l, Row *r,
			LLVMValueRef j0, LLVMValueRef j1)
{
	int L = c->vec_lanes;
	/* i8 (u8) vectors use the same lane count: LLVM legalises them. */
	LLVMValueRef len = LLVMBuildNSWSub(c->b, j1, j0, "");
	LLVMValueRef jv = LLVMBuildNSWAdd(c->b, j0,
					  LLVMBuildAnd(c->b, len, be_i64(c, ~(int64_t)(L - 1)), ""), "");
	be_Loop lv, ls;
	LLVMValueRef j = be_loop_begin(c, &lv, j0, jv, L);
	body(c, g, nd, l, r, j, L);
	be_loop_end(c, &lv);
	j = be_loop_begin(c, &ls, jv, j1, 1);
	body(c, g, nd, l, r, j, 1);
	be_loop_end(c, &ls);
	be_loop_scalar(c, &ls);
}

/* Element offset of row `row` (index over the outer axes) in operand k. */
static LLVMValueRef row_offset(be_Ctx *c, const Layout *l, int k, LLVMValueRef row)
{
	LLVMValueRef off = be_i64(c, 0);
	for (int i = l->rank - 2; i >= 0; i--) {
		LLVMValueRef d = be_i64(c, l->dim[i]);
		LLVMValueRef idx = i ? LLVMBuildURem(c->b, row, d, "") : row;
		if (i)
			row = LLVMBuildUDiv(c->b, row, d, "");
		if (l->stride[k][i])
			off = LLVMBuildNSWAdd(c->b, off,
					      LLVMBuildNSWMul(c->b, idx, be_i64(c, l->stride[k][i]), ""), "");
	}
	return off;
}

/* Elements [s, e) of the output, one row segment [col, cend) at a time:
 *   for (pos = s; pos < e; pos += cend - col) { row = pos / N; ... } */
static void segments(be_Ctx *c, const Graph *g, const Node *nd, const Layout *l, Row *r,
		     LLVMValueRef s, LLVMValueRef e)
{
	int64_t N = l->dim[l->rank - 1];
	LLVMValueRef pos = be_local(c, c->t_i64, s);
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, fn, "rows");
	LLVMBasicBlockRef seg = LLVMAppendBasicBlockInContext(c->ctx, fn, "segment");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "end");
	LLVMBuildBr(c->b, head);
	LLVMPositionBuilderAtEnd(c->b, head);
	LLVMValueRef p = be_get(c, c->t_i64, pos);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, p, e, ""), seg, done);
	LLVMPositionBuilderAtEnd(c->b, seg);
	LLVMValueRef row = l->rank == 1 ? be_i64(c, 0) : LLVMBuildUDiv(c->b, p, be_i64(c, N), "row");
	r->obase = LLVMBuildNSWMul(c->b, row, be_i64(c, N), "");
	LLVMValueRef col = LLVMBuildNSWSub(c->b, p, r->obase, "col");
	LLVMValueRef cend = be_min64(c, be_i64(c, N),
				     LLVMBuildNSWAdd(c->b, col, LLVMBuildNSWSub(c->b, e, p, ""), ""));
	for (int i = 0; i < l->nop; i++) {
		r->ibase[i] = row_offset(c, l, i, row);
		if (l->stride[i][l->rank - 1] == 0)
			r->bcast[i] = be_load(c, r->ity[i], r->in[i], r->ibase[i], 1);
	}
	row_segment(c, g, nd, l, r, col, cend);
	be_set(c, pos, LLVMBuildNSWAdd(c->b, p, LLVMBuildNSWSub(c->b, cend, col, ""), ""));
	LLVMBuildBr(c->b, head);
	LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, done);
}

int be_emit_elementwise(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	Layout l;
	layout(g, nd, &l);
	int64_t total = ir_numel(&nd->shape), per, ntask;
	be_split(total, cost(nd->op), &per, &ntask);
	if (ntask > 1) {   /* whole vectors per task */
		per = (per + c->vec_lanes - 1) / c->vec_lanes * c->vec_lanes;
		ntask = (total + per - 1) / per;
	}
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi, s, e;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = ntask;
	k->flops = (double)total * cost(nd->op);
	Row r = {0};
	r.oty = elem_type(c, nd->dtype);
	r.out = be_kernel_arg(c, buf, 0, r.oty);
	for (int i = 0; i < l.nop; i++) {
		r.ity[i] = elem_type(c, ir_node(g, ir_operand(g, nd, (uint32_t)i))->dtype);
		r.in[i] = be_kernel_arg(c, buf, i + 1, r.ity[i]);
	}
	be_task_units(c, lo, hi, per, total, &s, &e);
	segments(c, g, nd, &l, &r, s, e);
	LLVMBuildRetVoid(c->b);
	return 0;
}

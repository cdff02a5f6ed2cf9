/* emit_movement.c: permute, slice, concat, gather, causal_mask and its
 * gradient causal_mask_grad, causal_mask_offset, cache_write.
 *
 * Data movement works on bytes, so one emitter serves f32, i32 and u8 (an
 * element is ir_dtype_size bytes). Every op here is reduced to copies of
 * contiguous runs, done with llvm.memcpy: with the run length known at
 * compile time LLVM inlines short runs as vector moves and calls the C
 * library's memcpy for long ones, which is as fast as copying gets.
 *   permute:     axes are merged where the input stays contiguous; when the
 *                innermost output axis is contiguous in the input (the
 *                attention head split/merge case) each output row is one
 *                memcpy, otherwise a transpose in tiles of one vector
 *                square (8 x 8, or 16 x 16 with AVX-512).
 *   slice:       one run per outer row.   concat: one run per operand per row.
 *   gather:      one table row per index; an index outside [0, V) fills its
 *                row with NaN (never a silent out-of-bounds read).
 *   causal_mask: row i of each [T,S] block keeps columns j <= i + S - T
 *                (one memcpy) and fills the rest with -inf (vector stores);
 *                causal_mask_grad is the same kernel filling with 0.
 *   causal_mask_offset: the same with S - T replaced by the i32 offset
 *                read at run time (one shared, or one per index of the
 *                leading axis: per sequence), the count of kept columns
 *                clamped to [0, S].
 *   cache_write: the output is the cache itself (plan_memory aliases them),
 *                so the kernel copies only x's rows, one memcpy per
 *                [T,D] block, to rows [pos, pos+T) of the block's [C,D]
 *                cache; pos is read at run time (one shared, or one per
 *                sequence) and a block whose pos is outside [0, C-T]
 *                writes nothing (callers check positions).
 * Tasks are groups of output rows; rows are independent, so any split gives
 * the same bytes. */
#include "backend.h"

#include <math.h>

static LLVMValueRef bytes(be_Ctx *c, LLVMValueRef p, LLVMValueRef elem_off, int64_t esize)
{
	return be_gep(c, c->t_i8, p, LLVMBuildNSWMul(c->b, elem_off, be_i64(c, esize), ""));
}

static void copy(be_Ctx *c, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef nbytes, int esize)
{
	LLVMBuildMemCpy(c->b, dst, (unsigned)esize, src, (unsigned)esize, nbytes);
}

static void begin(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, LLVMValueRef *buf,
		  LLVMValueRef *lo, LLVMValueRef *hi)
{
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	k->fn = be_kernel_begin(c, name, buf, lo, hi);
	k->flops = (double)ir_nbytes(g, v) / 4;
}

/* Split `nrow` rows of `rowbytes` each and open the row loop. */
static LLVMValueRef row_loop(be_Ctx *c, be_Kernel *k, be_Loop *l, LLVMValueRef lo,
			     LLVMValueRef hi, int64_t nrow, int64_t rowbytes)
{
	int64_t per;
	LLVMValueRef u0, u1;
	be_split(nrow, (double)rowbytes / 8, &per, &k->ntask);
	be_task_units(c, lo, hi, per, nrow, &u0, &u1);
	return be_loop_begin(c, l, u0, u1, 1);
}

static void finish(be_Ctx *c, be_Loop *l)
{
	be_loop_end(c, l);
	be_loop_scalar(c, l);
	LLVMBuildRetVoid(c->b);
}

/* A permute as output axes (size 1 dropped, merged where the input stays
 * contiguous) with their input strides. */
typedef struct Perm {
	int r;
	int64_t dim[IR_MAX_RANK], ist[IR_MAX_RANK], ost[IR_MAX_RANK];
} Perm;

static void perm_layout(const Node *nd, const Node *x, Perm *p)
{
	int64_t inst[IR_MAX_RANK], s = 1;
	for (int i = x->shape.rank - 1; i >= 0; i--) {
		inst[i] = s;
		s *= x->shape.dim[i];
	}
	p->r = 0;
	for (int i = 0; i < nd->shape.rank; i++) {
		int64_t di = nd->shape.dim[i], si = inst[nd->perm[i]];
		if (di == 1)
			continue;
		if (p->r > 0 && p->ist[p->r - 1] == si * di) {
			p->dim[p->r - 1] *= di;
			p->ist[p->r - 1] = si;
			continue;
		}
		p->dim[p->r] = di;
		p->ist[p->r++] = si;
	}
	if (p->r == 0) {
		p->dim[0] = 1;
		p->ist[p->r++] = 1;
	}
	s = 1;
	for (int i = p->r - 1; i >= 0; i--) {
		p->ost[i] = s;
		s *= p->dim[i];
	}
}

/* Input and output offsets of index q over the axes in `axes` (outermost
 * first), added to *ib / *ob. */
static void offsets(be_Ctx *c, const Perm *p, const int *axes, int n, LLVMValueRef q,
		    LLVMValueRef *ib, LLVMValueRef *ob)
{
	for (int t = n - 1; t >= 0; t--) {
		int i = axes[t];
		LLVMValueRef di = be_i64(c, p->dim[i]);
		LLVMValueRef idx = t ? LLVMBuildURem(c->b, q, di, "") : q;
		if (t)
			q = LLVMBuildUDiv(c->b, q, di, "");
		*ib = LLVMBuildNSWAdd(c->b, *ib, LLVMBuildNSWMul(c->b, idx, be_i64(c, p->ist[i]), ""), "");
		*ob = LLVMBuildNSWAdd(c->b, *ob, LLVMBuildNSWMul(c->b, idx, be_i64(c, p->ost[i]), ""), "");
	}
}

/* The innermost output axis is contiguous in the input: a memcpy per row. */
static void permute_rows(be_Ctx *c, be_Kernel *k, const Perm *p, int es, LLVMValueRef out,
			 LLVMValueRef in, LLVMValueRef lo, LLVMValueRef hi)
{
	int64_t N = p->dim[p->r - 1];
	int axes[IR_MAX_RANK];
	for (int i = 0; i < p->r - 1; i++)
		axes[i] = i;
	be_Loop l;
	LLVMValueRef row = row_loop(c, k, &l, lo, hi, p->r > 1 ? p->dim[0] * p->ost[0] / N : 1, N * es);
	LLVMValueRef ib = be_i64(c, 0), ob = be_i64(c, 0);
	offsets(c, p, axes, p->r - 1, row, &ib, &ob);
	copy(c, bytes(c, out, ob, es), bytes(c, in, ib, es), be_i64(c, N * es), es);
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
}

/* shufflevector(a, b) with the constant lanes idx[0..n) (n and above
 * select from b). */
static LLVMValueRef shuf(be_Ctx *c, LLVMValueRef a, LLVMValueRef b, const int *idx, int n)
{
	LLVMValueRef m[16];
	for (int i = 0; i < n; i++)
		m[i] = be_i32c(c, idx[i]);
	return LLVMBuildShuffleVector(c->b, a, b, LLVMConstVector(m, (unsigned)n), "");
}

/* One stage of an n x n transpose in registers: for the vectors i and
 * i + d (i & d == 0), swap bit d of the row index with bit d of the lane
 * index: x'[l] = l & d ? y[l - d] : x[l], y'[l] = l & d ? y[l] : x[l + d].
 * After the stages for d = 1, 2, .., n/2 every bit is swapped: r[i][l]
 * holds what was r[l][i]. Two shuffles per pair of vectors. */
static void tile_stage(be_Ctx *c, LLVMValueRef *r, int n, int d)
{
	int lo[16], hi[16];
	for (int l = 0; l < n; l++) {
		lo[l] = l & d ? n + l - d : l;
		hi[l] = l & d ? n + l : l + d;
	}
	for (int i = 0; i < n; i++)
		if (!(i & d)) {
			LLVMValueRef x = r[i], y = r[i + d];
			r[i] = shuf(c, x, y, lo, n);
			r[i + d] = shuf(c, x, y, hi, n);
		}
}

/* One full n x n tile of 4-byte elements through registers (n = the vector
 * width, 8 or 16): load n input rows (n consecutive q each, row j at
 * stride sj), transpose, store n output rows (n consecutive j each, row q
 * at stride sq). With n = 16 each row is a whole cache line, read once. */
static void transpose_tile(be_Ctx *c, LLVMTypeRef et, LLVMValueRef out, LLVMValueRef in,
			   LLVMValueRef iq, LLVMValueRef oq, LLVMValueRef j0, int64_t sj, int64_t sq,
			   int n)
{
	LLVMValueRef r[16];
	for (int j = 0; j < n; j++) {
		LLVMValueRef at = LLVMBuildNSWMul(c->b, LLVMBuildNSWAdd(c->b, j0, be_i64(c, j), ""),
						  be_i64(c, sj), "");
		r[j] = be_load(c, et, in, LLVMBuildNSWAdd(c->b, iq, at, ""), n);
	}
	for (int d = 1; d < n; d *= 2)
		tile_stage(c, r, n, d);
	for (int q = 0; q < n; q++) {
		LLVMValueRef at = LLVMBuildNSWAdd(c->b, oq, be_i64(c, q * sq), "");
		be_store(c, r[q], et, out, LLVMBuildNSWAdd(c->b, at, j0, ""), n);
	}
}

/* A transpose: the input's contiguous axis q is not the output's last axis
 * j. Tiles of T x T elements keep the input lines read along j in
 * L1 while the output is written along j contiguously; a task unit is a
 * run of one tile along q (all of j) for one index of the other axes.
 * Tiles are one vector square (8 x 8 with AVX2, 16 x 16 with AVX-512) on
 * purpose: with power-of-two row strides every input line of a tile falls
 * in the same L1 set, and more lines than ways thrash it (a 1024 x 1024
 * transpose ran 3x slower with 16 x 64 tiles); a 16 x 16 tile reads each
 * input line whole, so none has to survive until the next tile. */
static void permute_tiled(be_Ctx *c, be_Kernel *k, const Perm *p, int qa, LLVMTypeRef et,
			  int es, LLVMValueRef out, LLVMValueRef in, LLVMValueRef lo, LLVMValueRef hi)
{
	int jl = p->r - 1, axes[IR_MAX_RANK], na = 0;
	int64_t nother = 1;
	for (int i = 0; i < jl; i++)
		if (i != qa) {
			axes[na++] = i;
			nother *= p->dim[i];
		}
	const int T = c->vec_lanes >= 16 ? 16 : 8;
	int64_t Q = p->dim[qa], N = p->dim[jl], nqb = (Q + T - 1) / T;
	be_Loop lu, lj, lq, lj2;
	LLVMValueRef u = row_loop(c, k, &lu, lo, hi, nother * nqb, T * N * es);
	LLVMValueRef ib = be_i64(c, 0), ob = be_i64(c, 0);
	offsets(c, p, axes, na, LLVMBuildUDiv(c->b, u, be_i64(c, nqb), ""), &ib, &ob);
	LLVMValueRef q0 = LLVMBuildNSWMul(c->b, LLVMBuildURem(c->b, u, be_i64(c, nqb), ""),
					  be_i64(c, T), "");
	LLVMValueRef q1 = be_min64(c, be_i64(c, Q), LLVMBuildNSWAdd(c->b, q0, be_i64(c, T), ""));
	LLVMValueRef j0 = be_loop_begin(c, &lj, be_i64(c, 0), be_i64(c, N), T);
	LLVMValueRef j1 = be_min64(c, be_i64(c, N), LLVMBuildNSWAdd(c->b, j0, be_i64(c, T), ""));
	LLVMBasicBlockRef partial = NULL, join = NULL;
	if (es == 4 && Q >= T && N >= T) {
		LLVMValueRef full = LLVMBuildAnd(c->b,
			LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildNSWSub(c->b, q1, q0, ""), be_i64(c, T), ""),
			LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildNSWSub(c->b, j1, j0, ""), be_i64(c, T), ""), "");
		LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
		LLVMBasicBlockRef vec = LLVMAppendBasicBlockInContext(c->ctx, fn, "tile");
		partial = LLVMAppendBasicBlockInContext(c->ctx, fn, "partial");
		join = LLVMAppendBasicBlockInContext(c->ctx, fn, "tiled");
		LLVMBuildCondBr(c->b, full, vec, partial);
		LLVMPositionBuilderAtEnd(c->b, vec);
		LLVMValueRef iq = LLVMBuildNSWAdd(c->b, ib, LLVMBuildNSWMul(c->b, q0, be_i64(c, p->ist[qa]), ""), "");
		LLVMValueRef oq = LLVMBuildNSWAdd(c->b, ob, LLVMBuildNSWMul(c->b, q0, be_i64(c, p->ost[qa]), ""), "");
		transpose_tile(c, et, out, in, iq, oq, j0, p->ist[jl], p->ost[qa], T);
		LLVMBuildBr(c->b, join);
		LLVMPositionBuilderAtEnd(c->b, partial);
	}
	LLVMValueRef q = be_loop_begin(c, &lq, q0, q1, 1);
	LLVMValueRef iq = LLVMBuildNSWAdd(c->b, ib, LLVMBuildNSWMul(c->b, q, be_i64(c, p->ist[qa]), ""), "");
	LLVMValueRef oq = LLVMBuildNSWAdd(c->b, ob, LLVMBuildNSWMul(c->b, q, be_i64(c, p->ost[qa]), ""), "");
	LLVMValueRef j = be_loop_begin(c, &lj2, j0, j1, 1);
	LLVMValueRef src = LLVMBuildNSWAdd(c->b, iq, LLVMBuildNSWMul(c->b, j, be_i64(c, p->ist[jl]), ""), "");
	be_store(c, be_load(c, et, in, src, 1), et, out, LLVMBuildNSWAdd(c->b, oq, j, ""), 1);
	be_loop_end(c, &lj2);
	be_loop_end(c, &lq);
	if (join) {
		LLVMBuildBr(c->b, join);
		LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(c->b));
		LLVMPositionBuilderAtEnd(c->b, join);
	}
	be_loop_end(c, &lj);
	be_loop_end(c, &lu);
	be_loop_scalar(c, &lu);
}

int be_emit_permute(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *x = ir_node(g, ir_operand(g, nd, 0));
	int es = ir_dtype_size(nd->dtype);
	Perm p;
	perm_layout(nd, x, &p);
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMTypeRef et = es == 1 ? c->t_i8 : c->t_i32;
	LLVMValueRef out = be_kernel_arg(c, buf, 0, et), in = be_kernel_arg(c, buf, 1, et);
	int qa = -1;   /* the output axis that is contiguous in the input */
	for (int i = 0; i < p.r; i++)
		if (p.ist[i] == 1)
			qa = i;
	if (qa == p.r - 1 || qa < 0) {
		LLVMValueRef o8 = LLVMBuildBitCast(c->b, out, c->t_ptr, "");
		LLVMValueRef i8 = LLVMBuildBitCast(c->b, in, c->t_ptr, "");
		permute_rows(c, k, &p, es, o8, i8, lo, hi);
	} else {
		permute_tiled(c, k, &p, qa, et, es, out, in, lo, hi);
	}
	LLVMBuildRetVoid(c->b);
	return 0;
}

/* [A, D, B] view of shape s around axis. */
static void around(const Shape *s, int64_t axis, int64_t *A, int64_t *D, int64_t *B)
{
	*A = *B = 1;
	for (int i = 0; i < s->rank; i++) {
		if (i < axis)
			*A *= s->dim[i];
		else if (i > axis)
			*B *= s->dim[i];
	}
	*D = s->dim[axis];
}

int be_emit_slice(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *x = ir_node(g, ir_operand(g, nd, 0));
	int es = ir_dtype_size(nd->dtype);
	int64_t A, D, B;
	around(&x->shape, nd->axis, &A, &D, &B);
	int64_t run = (nd->hi - nd->lo) * B;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_i8), in = be_kernel_arg(c, buf, 1, c->t_i8);
	be_Loop l;
	LLVMValueRef a = row_loop(c, k, &l, lo, hi, A, run * es);
	LLVMValueRef src = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, D * B), ""),
					   be_i64(c, nd->lo * B), "");
	copy(c, bytes(c, out, LLVMBuildNSWMul(c->b, a, be_i64(c, run), ""), es), bytes(c, in, src, es),
	     be_i64(c, run * es), es);
	finish(c, &l);
	return 0;
}

int be_emit_concat(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	int es = ir_dtype_size(nd->dtype);
	int64_t A, D, B;
	around(&nd->shape, nd->axis, &A, &D, &B);
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_i8);
	be_Loop l;
	LLVMValueRef a = row_loop(c, k, &l, lo, hi, A, D * B * es);
	int64_t at = 0;
	for (uint32_t i = 0; i < nd->narg; i++) {
		int64_t run = ir_node(g, ir_operand(g, nd, i))->shape.dim[nd->axis] * B;
		LLVMValueRef in = be_kernel_arg(c, buf, (int)i + 1, c->t_i8);
		LLVMValueRef dst = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, a, be_i64(c, D * B), ""),
						   be_i64(c, at), "");
		copy(c, bytes(c, out, dst, es), bytes(c, in, LLVMBuildNSWMul(c->b, a, be_i64(c, run), ""), es),
		     be_i64(c, run * es), es);
		at += run;
	}
	finish(c, &l);
	return 0;
}

/* p[base + j] = value for j in [from, to), vectors then scalars. */
static void fill(be_Ctx *c, LLVMValueRef p, LLVMValueRef base, LLVMValueRef from, LLVMValueRef to,
		 double value)
{
	int L = c->vec_lanes;
	LLVMValueRef len = LLVMBuildNSWSub(c->b, to, from, "");
	LLVMValueRef mid = LLVMBuildNSWAdd(c->b, from, LLVMBuildAnd(c->b, len, be_i64(c, -(int64_t)L), ""), "");
	LLVMValueRef bound[3] = {from, mid, to};
	for (int pass = 0; pass < 2; pass++) {
		int n = pass ? 1 : L;
		be_Loop l;
		LLVMValueRef j = be_loop_begin(c, &l, bound[pass], bound[pass + 1], n);
		be_store(c, be_splat(c, be_f32c(c, value), n), c->t_f32, p,
			 LLVMBuildNSWAdd(c->b, base, j, ""), n);
		be_loop_end(c, &l);
		if (n == 1)
			be_loop_scalar(c, &l);
	}
}

int be_emit_gather(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *tab = ir_node(g, ir_operand(g, nd, 0));
	int64_t V = tab->shape.dim[0], D = tab->shape.dim[1], n = ir_numel(&nd->shape) / D;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32), table = be_kernel_arg(c, buf, 1, c->t_f32);
	LLVMValueRef idx = be_kernel_arg(c, buf, 2, c->t_i32);
	be_Loop l;
	LLVMValueRef i = row_loop(c, k, &l, lo, hi, n, D * 4);
	LLVMValueRef t = LLVMBuildSExt(c->b, be_load(c, c->t_i32, idx, i, 1), c->t_i64, "");
	LLVMValueRef obase = LLVMBuildNSWMul(c->b, i, be_i64(c, D), "");
	LLVMValueRef ok = LLVMBuildICmp(c->b, LLVMIntULT, t, be_i64(c, V), "");
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, fn, "inrange");
	LLVMBasicBlockRef no = LLVMAppendBasicBlockInContext(c->ctx, fn, "outofrange");
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
	LLVMBuildCondBr(c->b, ok, yes, no);
	LLVMPositionBuilderAtEnd(c->b, yes);
	LLVMValueRef o8 = LLVMBuildBitCast(c->b, out, c->t_ptr, "");
	LLVMValueRef t8 = LLVMBuildBitCast(c->b, table, c->t_ptr, "");
	copy(c, bytes(c, o8, obase, 4), bytes(c, t8, LLVMBuildNSWMul(c->b, t, be_i64(c, D), ""), 4),
	     be_i64(c, D * 4), 4);
	LLVMBuildBr(c->b, join);
	LLVMPositionBuilderAtEnd(c->b, no);
	fill(c, out, obase, be_i64(c, 0), be_i64(c, D), NAN);
	LLVMBuildBr(c->b, join);
	LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, join);
	finish(c, &l);
	return 0;
}

/* causal_mask (fill -inf) and causal_mask_grad (fill 0): one kernel shape. */
static int emit_masked(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, double value)
{
	const Node *nd = ir_node(g, v);
	int64_t T = nd->shape.dim[nd->shape.rank - 2], S = nd->shape.dim[nd->shape.rank - 1];
	int64_t rows = S ? ir_numel(&nd->shape) / S : 0;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32), in = be_kernel_arg(c, buf, 1, c->t_f32);
	be_Loop l;
	LLVMValueRef r = row_loop(c, k, &l, lo, hi, rows, S * 4);
	LLVMValueRef i = LLVMBuildURem(c->b, r, be_i64(c, T), "");
	LLVMValueRef keep = LLVMBuildNSWAdd(c->b, i, be_i64(c, S - T + 1), "keep"); /* <= S */
	LLVMValueRef base = LLVMBuildNSWMul(c->b, r, be_i64(c, S), "");
	LLVMValueRef o8 = LLVMBuildBitCast(c->b, out, c->t_ptr, "");
	LLVMValueRef i8 = LLVMBuildBitCast(c->b, in, c->t_ptr, "");
	copy(c, bytes(c, o8, base, 4), bytes(c, i8, base, 4),
	     LLVMBuildNSWMul(c->b, keep, be_i64(c, 4), ""), 4);
	fill(c, out, base, keep, be_i64(c, S), value);
	finish(c, &l);
	return 0;
}

int be_emit_causal_mask(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	return emit_masked(c, g, v, k, -INFINITY);
}

int be_emit_causal_mask_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	return emit_masked(c, g, v, k, 0.0);
}

int be_emit_causal_mask_offset(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *on = ir_node(g, ir_operand(g, nd, 1));
	int64_t T = nd->shape.dim[nd->shape.rank - 2], S = nd->shape.dim[nd->shape.rank - 1];
	int64_t rows = ir_numel(&nd->shape) / S;
	/* rows of one sequence, when each has its own offset */
	int64_t per = on->shape.rank == 1 ? rows / nd->shape.dim[0] : rows;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32), in = be_kernel_arg(c, buf, 1, c->t_f32);
	LLVMValueRef offp = be_kernel_arg(c, buf, 2, c->t_i32);
	be_Loop l;
	LLVMValueRef r = row_loop(c, k, &l, lo, hi, rows, S * 4);
	LLVMValueRef seq = LLVMBuildUDiv(c->b, r, be_i64(c, per), "");
	LLVMValueRef off = LLVMBuildSExt(c->b, be_load(c, c->t_i32, offp, seq, 1), c->t_i64, "");
	LLVMValueRef i = LLVMBuildURem(c->b, r, be_i64(c, T), "");
	/* keep = clamp(i + off + 1, 0, S); off is data, so clamp both ends. */
	LLVMValueRef keep = LLVMBuildAdd(c->b, LLVMBuildAdd(c->b, i, off, ""), be_i64(c, 1), "keep");
	keep = be_min64(c, keep, be_i64(c, S));
	keep = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, keep, be_i64(c, 0), ""),
			       be_i64(c, 0), keep, "");
	LLVMValueRef base = LLVMBuildNSWMul(c->b, r, be_i64(c, S), "");
	LLVMValueRef o8 = LLVMBuildBitCast(c->b, out, c->t_ptr, "");
	LLVMValueRef i8 = LLVMBuildBitCast(c->b, in, c->t_ptr, "");
	copy(c, bytes(c, o8, base, 4), bytes(c, i8, base, 4),
	     LLVMBuildNSWMul(c->b, keep, be_i64(c, 4), ""), 4);
	fill(c, out, base, keep, be_i64(c, S), -INFINITY);
	finish(c, &l);
	return 0;
}

/* Tasks are the [T,D] blocks (one per leading index): each writes its own
 * rows of the cache, so any split gives the same bytes. */
int be_emit_cache_write(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *x = ir_node(g, ir_operand(g, nd, 1));
	const Node *pn = ir_node(g, ir_operand(g, nd, 2));
	if (nd->offset != ir_node(g, ir_operand(g, nd, 0))->offset)
		return diag_error(d, nd->loc, "internal: cache_write %u does not alias its cache "
				  "(plan_memory gives it the cache's offset)", v);
	int r = nd->shape.rank;
	int64_t C = nd->shape.dim[r - 2], D = nd->shape.dim[r - 1], T = x->shape.dim[r - 2];
	int64_t blocks = ir_numel(&x->shape) / (T * D > 0 ? T * D : 1);
	/* blocks of one sequence, when each has its own position */
	int64_t per = pn->shape.rank == 1 ? blocks / nd->shape.dim[0] : blocks;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	k->flops = (double)ir_nbytes(g, ir_operand(g, nd, 1)) / 4;
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_i8), src = be_kernel_arg(c, buf, 2, c->t_i8);
	LLVMValueRef posp = be_kernel_arg(c, buf, 3, c->t_i32);
	be_Loop l;
	LLVMValueRef b = row_loop(c, k, &l, lo, hi, blocks, T * D * 4);
	LLVMValueRef seq = LLVMBuildUDiv(c->b, b, be_i64(c, per), "");
	LLVMValueRef pos = LLVMBuildSExt(c->b, be_load(c, c->t_i32, posp, seq, 1), c->t_i64, "pos");
	LLVMValueRef ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, pos, be_i64(c, 0), ""),
				       LLVMBuildICmp(c->b, LLVMIntSLE, pos, be_i64(c, C - T), ""), "");
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, fn, "fits");
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
	LLVMBuildCondBr(c->b, ok, yes, next);
	LLVMPositionBuilderAtEnd(c->b, yes);
	LLVMValueRef dst = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, b, be_i64(c, C), ""), pos, "");
	copy(c, bytes(c, out, LLVMBuildNSWMul(c->b, dst, be_i64(c, D), ""), 4),
	     bytes(c, src, LLVMBuildNSWMul(c->b, b, be_i64(c, T * D), ""), 4),
	     be_i64(c, T * D * 4), 4);
	LLVMBuildBr(c->b, next);
	LLVMPositionBuilderAtEnd(c->b, next);
	finish(c, &l);
	return 0;
}

/* A reshape whose output does not alias its operand (plan_memory normally
 * aliases views, so this is the safety net): a flat copy. */
int be_emit_copy(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	int64_t nbytes = ir_nbytes(g, v), chunk = 1 << 16;
	LLVMValueRef buf, lo, hi;
	begin(c, g, v, k, &buf, &lo, &hi);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_i8), in = be_kernel_arg(c, buf, 1, c->t_i8);
	int64_t nchunk = (nbytes + chunk - 1) / chunk;
	be_Loop l;
	LLVMValueRef i = row_loop(c, k, &l, lo, hi, nchunk, chunk);
	LLVMValueRef at = LLVMBuildNSWMul(c->b, i, be_i64(c, chunk), "");
	LLVMValueRef len = be_min64(c, be_i64(c, chunk), LLVMBuildNSWSub(c->b, be_i64(c, nbytes), at, ""));
	copy(c, be_gep(c, c->t_i8, out, at), be_gep(c, c->t_i8, in, at), len, 1);
	finish(c, &l);
	return 0;
}

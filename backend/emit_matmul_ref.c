/* emit_matmul_ref.c: the reference matmul emitter, simple on purpose.
 *
 * One task unit is one output row (batch b, row m). Without NF_TRANS_B the
 * row is built as a sum of rows of B scaled by A[m,k] (an axpy per k,
 * vectorised along N, the row kept hot in L1); with NF_TRANS_B every output
 * is a dot product of two rows, vectorised along K when A is not transposed
 * too (scalar when both are). Batch dims broadcast numpy-style: each
 * operand's batch offset comes from the output batch index with stride 0
 * on broadcast axes. Summation order depends only on the shape, so tasks
 * can be split any way. With NF_SKIPZEROS an A(m,k) of 0 adds nothing: the
 * axpy of row k is skipped, a dot product keeps its sum in those lanes. It
 * is the fallback when the blocked emitter
 * (emit_matmul.c) is absent, and the baseline it is measured against. */
#include "backend.h"

typedef struct MM {
	int64_t M, N, K, nbatch;
	int brank;
	int64_t bdim[IR_MAX_RANK], ast[IR_MAX_RANK], bst[IR_MAX_RANK]; /* batch strides, elements */
	int ta, tb, skip;
} MM;

static void batch_strides(const Shape *x, const MM *mm, int64_t mat, int64_t *st)
{
	int xr = x->rank - 2;
	int64_t s = mat;
	for (int i = mm->brank - 1; i >= 0; i--) {
		int j = xr - mm->brank + i;
		int64_t dx = j >= 0 ? x->dim[j] : 1;
		st[i] = dx == 1 ? 0 : s;
		s *= dx;
	}
}

static void shape_mm(const Graph *g, const Node *nd, MM *mm)
{
	const Node *a = ir_node(g, ir_operand(g, nd, 0)), *b = ir_node(g, ir_operand(g, nd, 1));
	mm->ta = !!(nd->flags & NF_TRANS_A);
	mm->tb = !!(nd->flags & NF_TRANS_B);
	mm->skip = !!(nd->flags & NF_SKIPZEROS);
	mm->M = nd->shape.dim[nd->shape.rank - 2];
	mm->N = nd->shape.dim[nd->shape.rank - 1];
	mm->K = a->shape.dim[a->shape.rank - (mm->ta ? 2 : 1)];
	mm->brank = nd->shape.rank - 2;
	mm->nbatch = 1;
	for (int i = 0; i < mm->brank; i++) {
		mm->bdim[i] = nd->shape.dim[i];
		mm->nbatch *= mm->bdim[i];
	}
	batch_strides(&a->shape, mm, mm->M * mm->K, mm->ast);
	batch_strides(&b->shape, mm, mm->K * mm->N, mm->bst);
}

/* A(m, k) and B(k, n) element offsets within one batch matrix. */
static LLVMValueRef a_at(be_Ctx *c, const MM *mm, LLVMValueRef m, LLVMValueRef k)
{
	return mm->ta ? LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, k, be_i64(c, mm->M), ""), m, "")
		      : LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, m, be_i64(c, mm->K), ""), k, "");
}

static LLVMValueRef add(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildNSWAdd(c->b, a, b, "");
}

static LLVMValueRef mul(be_Ctx *c, LLVMValueRef a, int64_t b)
{
	return LLVMBuildNSWMul(c->b, a, be_i64(c, b), "");
}

/* acc + x * y, or with skip acc where x is 0 (a NaN x is not 0) */
static LLVMValueRef fma_skip(be_Ctx *c, const MM *mm, LLVMValueRef x, LLVMValueRef y,
			     LLVMValueRef acc, int n)
{
	LLVMValueRef r = be_fma(c, x, y, acc, n);
	if (!mm->skip)
		return r;
	LLVMValueRef nz = LLVMBuildFCmp(c->b, LLVMRealUNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
	return LLVMBuildSelect(c->b, nz, r, acc, "");
}

/* out[o .. o+N) = sum_k A(m,k) * B[k, :] */
static void axpy_row(be_Ctx *c, const MM *mm, LLVMValueRef out, LLVMValueRef o, LLVMValueRef A,
		     LLVMValueRef ab, LLVMValueRef m, LLVMValueRef B, LLVMValueRef bb)
{
	int L = c->vec_lanes;
	int64_t nvec = mm->N / L * L;
	int width[2] = {L, 1};
	int64_t bound[3] = {0, nvec, mm->N};
	for (int p = 0; p < 2; p++) {
		be_Loop l;
		LLVMValueRef j = be_loop_begin(c, &l, be_i64(c, bound[p]), be_i64(c, bound[p + 1]), width[p]);
		be_store(c, be_splat(c, be_f32c(c, 0), width[p]), c->t_f32, out, add(c, o, j), width[p]);
		be_loop_end(c, &l);
	}
	be_Loop lk;
	LLVMValueRef k = be_loop_begin(c, &lk, be_i64(c, 0), be_i64(c, mm->K), 1);
	LLVMValueRef a = be_load(c, c->t_f32, A, add(c, ab, a_at(c, mm, m, k)), 1);
	LLVMValueRef brow = add(c, bb, mul(c, k, mm->N));
	LLVMBasicBlockRef join = NULL;
	if (mm->skip)
		join = be_if_begin(c, LLVMBuildFCmp(c->b, LLVMRealUNE, a, be_f32c(c, 0), ""));
	for (int p = 0; p < 2; p++) {
		int n = width[p];
		be_Loop l;
		LLVMValueRef j = be_loop_begin(c, &l, be_i64(c, bound[p]), be_i64(c, bound[p + 1]), n);
		LLVMValueRef y = be_load(c, c->t_f32, out, add(c, o, j), n);
		LLVMValueRef x = be_load(c, c->t_f32, B, add(c, brow, j), n);
		be_store(c, be_fma(c, be_splat(c, a, n), x, y, n), c->t_f32, out, add(c, o, j), n);
		be_loop_end(c, &l);
		if (n == 1)
			be_loop_scalar(c, &l);
	}
	if (join)
		be_if_end(c, join);
	be_loop_end(c, &lk);
}

/* out[o + j] = A(m, :) . B[j, :] for every j (B transposed) */
static void dot_row(be_Ctx *c, const MM *mm, LLVMValueRef out, LLVMValueRef o, LLVMValueRef A,
		    LLVMValueRef ab, LLVMValueRef m, LLVMValueRef B, LLVMValueRef bb)
{
	int L = mm->ta ? 1 : c->vec_lanes;   /* A's row is strided when transposed */
	int64_t kvec = mm->K / L * L;
	LLVMTypeRef vt = be_vtype(c, c->t_f32, L);
	be_Loop lj, lk;
	LLVMValueRef j = be_loop_begin(c, &lj, be_i64(c, 0), be_i64(c, mm->N), 1);
	LLVMValueRef brow = add(c, bb, mul(c, j, mm->K));
	LLVMValueRef acc = be_local(c, vt, be_splat(c, be_f32c(c, 0), L));
	LLVMValueRef k = be_loop_begin(c, &lk, be_i64(c, 0), be_i64(c, kvec), L);
	LLVMValueRef x = be_load(c, c->t_f32, A, add(c, ab, a_at(c, mm, m, k)), L);
	LLVMValueRef y = be_load(c, c->t_f32, B, add(c, brow, k), L);
	be_set(c, acc, fma_skip(c, mm, x, y, be_get(c, vt, acc), L));
	be_loop_end(c, &lk);
	LLVMValueRef s = be_local(c, c->t_f32, be_hsum(c, be_get(c, vt, acc), L));
	k = be_loop_begin(c, &lk, be_i64(c, kvec), be_i64(c, mm->K), 1);
	x = be_load(c, c->t_f32, A, add(c, ab, a_at(c, mm, m, k)), 1);
	y = be_load(c, c->t_f32, B, add(c, brow, k), 1);
	be_set(c, s, fma_skip(c, mm, x, y, be_get(c, c->t_f32, s), 1));
	be_loop_end(c, &lk);
	be_loop_scalar(c, &lk);
	be_store(c, be_get(c, c->t_f32, s), c->t_f32, out, add(c, o, j), 1);
	be_loop_end(c, &lj);
}

int be_emit_matmul_ref(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	MM mm;
	shape_mm(g, nd, &mm);
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi, u0, u1;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->flops = 2.0 * (double)mm.nbatch * mm.M * mm.N * mm.K;
	int64_t nrow = mm.nbatch * mm.M, per;
	be_split(nrow, 2.0 * mm.N * mm.K, &per, &k->ntask);
	LLVMValueRef out = be_kernel_arg(c, buf, 0, c->t_f32);
	LLVMValueRef A = be_kernel_arg(c, buf, 1, c->t_f32), B = be_kernel_arg(c, buf, 2, c->t_f32);
	be_task_units(c, lo, hi, per, nrow, &u0, &u1);
	be_Loop lu;
	LLVMValueRef u = be_loop_begin(c, &lu, u0, u1, 1);
	LLVMValueRef m = LLVMBuildURem(c->b, u, be_i64(c, mm.M), "m");
	LLVMValueRef q = LLVMBuildUDiv(c->b, u, be_i64(c, mm.M), "batch");
	LLVMValueRef ab = be_i64(c, 0), bb = be_i64(c, 0);
	for (int i = mm.brank - 1; i >= 0; i--) {
		LLVMValueRef idx = i ? LLVMBuildURem(c->b, q, be_i64(c, mm.bdim[i]), "") : q;
		if (i)
			q = LLVMBuildUDiv(c->b, q, be_i64(c, mm.bdim[i]), "");
		ab = add(c, ab, mul(c, idx, mm.ast[i]));
		bb = add(c, bb, mul(c, idx, mm.bst[i]));
	}
	LLVMValueRef o = mul(c, u, mm.N);
	if (mm.tb)
		dot_row(c, &mm, out, o, A, ab, m, B, bb);
	else
		axpy_row(c, &mm, out, o, A, ab, m, B, bb);
	be_loop_end(c, &lu);
	be_loop_scalar(c, &lu);
	LLVMBuildRetVoid(c->b);
	return 0;
}

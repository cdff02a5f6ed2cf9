/* emit_sparse.c: kernels for the sparse products of a masked weight.
 *
 * The operands are in feature-major blocks [blocks, features, B] (ops.h):
 * within a block a row is one feature over B rows of the activations, so a
 * vector of L lanes (16 with AVX-512) holds L consecutive rows m, and one
 * kept weight w of the pattern costs one broadcast and R vector FMAs over
 * R*L rows (R = 8: eight independent chains keep two FMA pipes busy). The
 * mask is known here (Graph.mask), so the pattern is compiled in, as
 * compressed rows: row j's kept entries are ptr[j]..ptr[j+1] of idx (the
 * feature each reads; the weight's offset is i*N + j, or j*N + i with
 * transb), as constant arrays. Features are cut into panels of as many
 * feature rows as fill the L1 data cache the CPU reports, and a row's
 * entries within panel q are pptr[q][j]..pptr[q+1][j]:
 *
 *   spmm, compressed rows: task t is row group g = t % G of block t / G:
 *                 for each panel q, for each row j of g:
 *                   acc[0..R) = q ? out[j][m..] : 0
 *                   for p in the panel's entries: acc[r] += at[idx[p]][m..] * W[..]
 *                   out[j][m..] = acc
 *                 The panel's features stay in L1 while every row of the
 *                 group reads them; a block's tasks are consecutive, so a
 *                 thread reads each block of at into L2 once.
 *   spmm, unrolled: the same, but each row's entries written out with the
 *                 indices and weight offsets as constants (SparseRT's
 *                 idea), one function per row, and no panels.
 *   sddmm:        task t is row group t of dW, over every block: zero the
 *                 rows, then per block and panel, for each row k: load
 *                 at[k][m..] once, and for each kept (k, n) the dot product
 *                 with bt[n][m..] (a chain of R FMAs), eight at a time
 *                 reduced together (be_hsum_many) and added to a packed
 *                 sum in dW's own row; at the end the packed sums move to
 *                 their columns. Compressed rows only.
 * Blocks of R*L rows come first, then blocks of L, then single rows, so any
 * M works. Row groups have about equal kept entries (balanced at compile
 * time). Every sum runs in a fixed order (entries by increasing index,
 * panels and m blocks in order, one reduction tree per dot whether reduced
 * alone or eight at a time), so results depend neither on the split, nor
 * on the thread count, nor on the panel width. */
#include "backend.h"

#include <string.h>

enum {
	SPMM_VECS = 8,    /* R for spmm: 8 accumulator chains cover the 4-cycle
	                   * latency of two FMA pipes, and 128 rows = B */
	SDDMM_VECS = 8,   /* R for sddmm: long dot products amortise the horizontal sum */
	SDDMM_GROUP = 8,  /* sddmm entries reduced together (be_hsum_many) */
	MIN_TASKS = 16,   /* unless there is little work: balance for 1..16 threads */
	SDDMM_GROUPS = 4, /* sddmm tasks: each reads all of bt, so few */
};

/* Row lists of one product, from the mask. */
typedef struct Rows {
	int64_t nrow, nnz;
	int32_t *ptr;     /* nrow + 1 */
	int32_t *idx;     /* nnz: the feature read (spmm) or the column n (sddmm) */
	int32_t *chunk;   /* ngroup + 1: the row groups' first rows */
	int ngroup;
	/* Panels (spmm): features [q*panel, (q+1)*panel) are panel q; row j's
	 * entries in panel q are [pptr[q][j], pptr[q+1][j]), a sub-range of its
	 * entries since they are sorted by feature. pptr[npanel][j] = ptr[j+1]. */
	int64_t panel;
	int npanel;
	int32_t *pptr;    /* (npanel + 1) * (nrow + 1) */
} Rows;

static int rows_panels(Rows *r, int64_t inner)
{
	r->npanel = (int)((inner + r->panel - 1) / r->panel);
	if (r->npanel < 1)
		r->npanel = 1;
	int64_t stride = r->nrow + 1;
	/* zeroed: the unused last column is part of the constant (and of the
	 * kernel cache's key), so it must not be garbage */
	r->pptr = mem_calloc((size_t)((r->npanel + 1) * stride), sizeof *r->pptr);
	if (!r->pptr)
		return -1;
	for (int64_t j = 0; j < r->nrow; j++) {
		int32_t p = r->ptr[j];
		for (int q = 0; q <= r->npanel; q++) {
			int64_t lo = q == r->npanel ? INT64_MAX : (int64_t)q * r->panel;
			while (p < r->ptr[j + 1] && r->idx[p] < lo)
				p++;
			r->pptr[q * stride + j] = p;
		}
	}
	return 0;
}

/* by_column: row j lists the k with bits[k][j] (spmm forward); otherwise
 * row k lists the n with bits[k][n]. */
static int rows_build(Rows *r, const uint8_t *bits, int64_t K, int64_t N, bool by_column,
		      int64_t panel)
{
	r->panel = panel;
	r->nrow = by_column ? N : K;
	r->ptr = mem_alloc((size_t)(r->nrow + 1) * sizeof *r->ptr);
	int64_t nnz = 0;
	for (int64_t e = 0; e < K * N; e++)
		nnz += bits[e] != 0;
	r->idx = mem_alloc((size_t)(nnz ? nnz : 1) * sizeof *r->idx);
	r->chunk = mem_alloc((size_t)(r->nrow + 2) * sizeof *r->chunk);
	if (!r->ptr || !r->idx || !r->chunk)
		return -1;
	r->nnz = 0;
	int64_t inner = by_column ? K : N;
	for (int64_t j = 0; j < r->nrow; j++) {
		r->ptr[j] = (int32_t)r->nnz;
		for (int64_t i = 0; i < inner; i++)
			if (bits[by_column ? i * N + j : j * N + i])
				r->idx[r->nnz++] = (int32_t)i;
	}
	r->ptr[r->nrow] = (int32_t)r->nnz;
	return rows_panels(r, inner);
}

static void rows_free(Rows *r)
{
	mem_free(r->ptr);
	mem_free(r->idx);
	mem_free(r->chunk);
	mem_free(r->pptr);
}



/* How many tasks the product's work is worth: enough for the pool to
 * balance, one for little work. */
static int64_t rows_tasks(const Rows *r, int64_t M)
{
	double total = (double)r->nnz + 8.0 * (double)r->nrow;
	int64_t n = (int64_t)(total * (double)M / (4.0 * BE_TASK_WORK)) + 1;
	return n < MIN_TASKS ? n : MIN_TASKS;
}

/* n groups of consecutive rows with about equal work (entries, plus a
 * little per row). */
static void rows_split(Rows *r, int64_t n)
{
	double per_row = 8.0, total = (double)r->nnz + per_row * (double)r->nrow;
	if (n > r->nrow)
		n = r->nrow > 0 ? r->nrow : 1;
	if (n < 1)
		n = 1;
	r->ngroup = (int)n;
	r->chunk[0] = 0;
	int t = 1;
	double acc = 0;
	for (int64_t j = 0; j < r->nrow && t < r->ngroup; j++) {
		acc += (double)(r->ptr[j + 1] - r->ptr[j]) + per_row;
		if (acc >= total * t / (double)r->ngroup)
			r->chunk[t++] = (int32_t)(j + 1);
	}
	while (t < r->ngroup)   /* fewer cut points than groups: empty tails */
		r->chunk[t++] = (int32_t)r->nrow;
	r->chunk[r->ngroup] = (int32_t)r->nrow;
}

/* A constant i32 array as a private global (its bytes as one constant
 * string, which LLVM builds without a value per element). */
static LLVMValueRef const_i32s(be_Ctx *c, const char *kernel, const char *what,
			       const int32_t *v, int64_t n)
{
	char name[96];
	snprintf(name, sizeof name, "%s.%s", kernel, what);
	LLVMValueRef init = LLVMConstStringInContext(c->ctx, (const char *)v,
						     (unsigned)(n * (int64_t)sizeof *v), 1);
	LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	LLVMSetAlignment(gv, 64);
	return LLVMBuildBitCast(c->b, gv, LLVMPointerType(c->t_i32, 0), "");
}

static LLVMValueRef load_i64(be_Ctx *c, LLVMValueRef arr, LLVMValueRef i)
{
	return LLVMBuildSExt(c->b, be_load(c, c->t_i32, arr, i, 1), c->t_i64, "");
}

static LLVMValueRef add(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildNSWAdd(c->b, a, b, "");
}

static LLVMValueRef mul(be_Ctx *c, LLVMValueRef a, int64_t k)
{
	return LLVMBuildNSWMul(c->b, a, be_i64(c, k), "");
}

/* ---- what one kernel needs, and the m-block loops ---- */

typedef struct Sp {
	const Rows *rows;
	int64_t M, N;         /* activation rows per block (B); the weight's second dim */
	int64_t nblk;         /* blocks of M rows */
	int64_t at_stride, bt_stride, out_stride;   /* floats per block (0: not blocked) */
	bool tb;
	LLVMValueRef out, at, bt, w;
	LLVMValueRef ptr, idx; /* compressed rows (not unrolled) */
	LLVMValueRef pptr;     /* their panels */
	LLVMValueRef r0, r1;  /* the task's rows */
	int group;            /* unrolled: the row group whose rows are emitted */
	const char *name;     /* the kernel's, a prefix for its helpers */
} Sp;

typedef void BlockFn(be_Ctx *c, const Sp *s, LLVMValueRef m0, int R, int n);

/* Blocks of R*L rows, then of L, then single rows; only the loops M needs. */
static void for_blocks(be_Ctx *c, const Sp *s, int R, BlockFn *body)
{
	int L = c->vec_lanes;
	int64_t big = (int64_t)R * L, m_big = s->M / big * big, m_vec = s->M / L * L;
	be_Loop l;
	if (m_big > 0) {
		body(c, s, be_loop_begin(c, &l, be_i64(c, 0), be_i64(c, m_big), big), R, L);
		be_loop_end(c, &l);
		be_loop_scalar(c, &l);
	}
	if (m_vec > m_big) {
		body(c, s, be_loop_begin(c, &l, be_i64(c, m_big), be_i64(c, m_vec), L), 1, L);
		be_loop_end(c, &l);
		be_loop_scalar(c, &l);
	}
	if (s->M > m_vec) {
		body(c, s, be_loop_begin(c, &l, be_i64(c, m_vec), be_i64(c, s->M), 1), 1, 1);
		be_loop_end(c, &l);
		be_loop_scalar(c, &l);
	}
}

/* for_blocks over every block of rows, with the operands' pointers moved
 * to the block. */
static void for_each_block(be_Ctx *c, const Sp *s, int R, BlockFn *body)
{
	be_Loop lb;
	LLVMValueRef blk = be_loop_begin(c, &lb, be_i64(c, 0), be_i64(c, s->nblk), 1);
	Sp b = *s;
	b.at = be_gep(c, c->t_f32, s->at, mul(c, blk, s->at_stride));
	if (s->bt)
		b.bt = be_gep(c, c->t_f32, s->bt, mul(c, blk, s->bt_stride));
	b.out = be_gep(c, c->t_f32, s->out, mul(c, blk, s->out_stride));
	for_blocks(c, &b, R, body);
	be_loop_end(c, &lb);
	be_loop_scalar(c, &lb);
}

/* ---- spmm ---- */

static LLVMValueRef zeros(be_Ctx *c, int n)
{
	return LLVMConstNull(be_vtype(c, c->t_f32, n));
}

static LLVMValueRef weight_offset(be_Ctx *c, const Sp *s, LLVMValueRef i, LLVMValueRef j)
{
	return s->tb ? add(c, mul(c, j, s->N), i) : add(c, mul(c, i, s->N), j);
}

/* acc[r] += at[i][m0 + r*n ..] * W's entry (i, j) (or (j, i) with transb),
 * read from W itself: the rows j of a task are consecutive, so without
 * transb one cache line of W serves 16 of them. */
static void spmm_entry(be_Ctx *c, const Sp *s, LLVMValueRef i, LLVMValueRef j, LLVMValueRef m0,
		       int R, int n, LLVMValueRef *acc)
{
	LLVMValueRef wv = be_splat(c, be_load(c, c->t_f32, s->w, weight_offset(c, s, i, j), 1), n);
	LLVMValueRef base = add(c, mul(c, i, s->M), m0);
	for (int r = 0; r < R; r++)
		acc[r] = be_fma(c, be_load(c, c->t_f32, s->at, add(c, base, be_i64(c, (int64_t)r * n)), n),
				wv, acc[r], n);
}

static void spmm_store(be_Ctx *c, const Sp *s, LLVMValueRef j, LLVMValueRef m0, int R, int n,
		       LLVMValueRef *acc)
{
	LLVMValueRef base = add(c, mul(c, j, s->M), m0);
	for (int r = 0; r < R; r++)
		be_store(c, acc[r], c->t_f32, s->out, add(c, base, be_i64(c, (int64_t)r * n)), n);
}

/* Panel by panel, so the features a panel reads stay in L1 while every
 * row of the task uses them; a row's partial sums wait in out between
 * panels (the same f32 sums in the same order as in one pass). */
static void spmm_csr_block(be_Ctx *c, const Sp *s, LLVMValueRef m0, int R, int n)
{
	LLVMTypeRef vt = be_vtype(c, c->t_f32, n);
	LLVMValueRef slot[SPMM_VECS], acc[SPMM_VECS];
	for (int r = 0; r < R; r++)
		slot[r] = be_local(c, vt, NULL);
	int64_t stride = s->rows->nrow + 1;
	be_Loop lq, lj, lp;
	LLVMValueRef q = be_loop_begin(c, &lq, be_i64(c, 0), be_i64(c, s->rows->npanel), 1);
	LLVMValueRef first = LLVMBuildICmp(c->b, LLVMIntEQ, q, be_i64(c, 0), "");
	LLVMValueRef pa = mul(c, q, stride), pb = add(c, pa, be_i64(c, stride));
	LLVMValueRef j = be_loop_begin(c, &lj, s->r0, s->r1, 1);
	LLVMValueRef obase = add(c, mul(c, j, s->M), m0);
	for (int r = 0; r < R; r++) {
		LLVMValueRef old = be_load(c, c->t_f32, s->out, add(c, obase, be_i64(c, (int64_t)r * n)), n);
		be_set(c, slot[r], LLVMBuildSelect(c->b, first, zeros(c, n), old, ""));
	}
	LLVMValueRef p0 = load_i64(c, s->pptr, add(c, pa, j)), p1 = load_i64(c, s->pptr, add(c, pb, j));
	LLVMValueRef p = be_loop_begin(c, &lp, p0, p1, 1);
	LLVMValueRef i = load_i64(c, s->idx, p);
	for (int r = 0; r < R; r++)
		acc[r] = be_get(c, vt, slot[r]);
	spmm_entry(c, s, i, j, m0, R, n, acc);
	for (int r = 0; r < R; r++)
		be_set(c, slot[r], acc[r]);
	be_loop_end(c, &lp);
	for (int r = 0; r < R; r++)
		acc[r] = be_get(c, vt, slot[r]);
	spmm_store(c, s, j, m0, R, n, acc);
	be_loop_end(c, &lj);
	be_loop_scalar(c, &lj);
	be_loop_end(c, &lq);
	be_loop_scalar(c, &lq);
}

/* Row j of the unrolled kernel as its own function
 * void row(float *out, const float *at, const float *w, i64 m0) for one
 * block shape (R vectors of n lanes). Small functions keep LLVM's
 * optimiser linear in the pattern's size: one straight-line body for all
 * rows took minutes to optimise beyond a few thousand entries. noinline
 * keeps them apart; a call per row and block costs a few cycles against
 * the row's R * entries FMAs. */
static LLVMValueRef unrolled_row(be_Ctx *c, const Sp *s, int32_t j, int R, int n)
{
	char name[128];
	snprintf(name, sizeof name, "%s.row%d.%dx%d", s->name, j, R, n);
	LLVMTypeRef fp = LLVMPointerType(c->t_f32, 0);
	LLVMTypeRef pt[4] = {fp, fp, fp, c->t_i64};
	LLVMTypeRef ft = LLVMFunctionType(c->t_void, pt, 4, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
	if (fn)
		return fn;
	fn = LLVMAddFunction(c->mod, name, ft);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	be_fn_attrs(c, fn);
	unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
				LLVMCreateEnumAttribute(c->ctx, noinline, 0));
	LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
	LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
	Sp r = *s;
	r.out = LLVMGetParam(fn, 0);
	r.at = LLVMGetParam(fn, 1);
	r.w = LLVMGetParam(fn, 2);
	LLVMValueRef m0 = LLVMGetParam(fn, 3), acc[SPMM_VECS];
	for (int q = 0; q < R; q++)
		acc[q] = zeros(c, n);
	const Rows *rw = s->rows;
	for (int32_t p = rw->ptr[j]; p < rw->ptr[j + 1]; p++)
		spmm_entry(c, &r, be_i64(c, rw->idx[p]), be_i64(c, j), m0, R, n, acc);
	spmm_store(c, &r, be_i64(c, j), m0, R, n, acc);
	LLVMBuildRetVoid(c->b);
	LLVMPositionBuilderAtEnd(c->b, saved);
	return fn;
}

static void spmm_unrolled_block(be_Ctx *c, const Sp *s, LLVMValueRef m0, int R, int n)
{
	const Rows *rw = s->rows;
	for (int32_t j = rw->chunk[s->group]; j < rw->chunk[s->group + 1]; j++) {
		LLVMValueRef fn = unrolled_row(c, s, j, R, n);
		LLVMValueRef args[4] = {s->out, s->at, s->w, m0};
		LLVMBuildCall2(c->b, LLVMGlobalGetValueType(fn), fn, args, 4, "");
	}
}

/* ---- sddmm ---- */

/* The dot product of at[k][m0..] (a, R vectors of n) with bt[col][m0..]
 * as n lanes of partial sums: one chain of R FMAs. */
static LLVMValueRef sddmm_dot(be_Ctx *c, const Sp *s, const LLVMValueRef *a, LLVMValueRef col,
			      LLVMValueRef m0, int R, int n)
{
	LLVMValueRef bbase = add(c, mul(c, col, s->M), m0), acc = zeros(c, n);
	for (int r = 0; r < R; r++)
		acc = be_fma(c, a[r], be_load(c, c->t_f32, s->bt, add(c, bbase, be_i64(c, (int64_t)r * n)), n),
			     acc, n);
	return acc;
}

/* Entries [p, p + count) of row k: their dots, reduced together
 * (be_hsum_many), added to their packed sums, which are the first entries
 * of dW's row k in entry order (sddmm_unpack puts them in place). With
 * count 1, one dot and be_hsum: the same bits. */
static void sddmm_entries(be_Ctx *c, const Sp *s, const LLVMValueRef *a, LLVMValueRef k,
			  LLVMValueRef p, LLVMValueRef m0, int R, int n, int count)
{
	LLVMValueRef dot[SDDMM_GROUP];
	for (int e = 0; e < count; e++)
		dot[e] = sddmm_dot(c, s, a, load_i64(c, s->idx, add(c, p, be_i64(c, e))), m0, R, n);
	LLVMValueRef sum = count == 1 ? be_hsum(c, dot[0], n) : be_hsum_many(c, dot, count, n);
	LLVMValueRef o = add(c, mul(c, k, s->N), LLVMBuildNSWSub(c->b, p, load_i64(c, s->ptr, k), ""));
	LLVMValueRef old = be_load(c, c->t_f32, s->out, o, count);
	be_store(c, LLVMBuildFAdd(c->b, old, sum, ""), c->t_f32, s->out, o, count);
}

/* Entries of width n vectors reduced per group: 8 with AVX-512 (8 dots and
 * 8 vectors of a in 32 registers), 4 with AVX2, 1 otherwise. */
static int sddmm_group(int n)
{
	return n >= 16 ? SDDMM_GROUP : n >= 8 ? SDDMM_GROUP / 2 : 1;
}

/* Panel by panel (bt's rows of a panel stay in L1 while every row k uses
 * them); row k's entries of the panel in groups, then one by one. */
static void sddmm_block(be_Ctx *c, const Sp *s, LLVMValueRef m0, int R, int n)
{
	LLVMValueRef a[SDDMM_VECS];
	int64_t stride = s->rows->nrow + 1;
	int group = sddmm_group(n);
	be_Loop lq, lk, lg, lp;
	LLVMValueRef q = be_loop_begin(c, &lq, be_i64(c, 0), be_i64(c, s->rows->npanel), 1);
	LLVMValueRef pa = mul(c, q, stride), pb = add(c, pa, be_i64(c, stride));
	LLVMValueRef k = be_loop_begin(c, &lk, s->r0, s->r1, 1);
	LLVMValueRef abase = add(c, mul(c, k, s->M), m0);
	for (int r = 0; r < R; r++)
		a[r] = be_load(c, c->t_f32, s->at, add(c, abase, be_i64(c, (int64_t)r * n)), n);
	LLVMValueRef p0 = load_i64(c, s->pptr, add(c, pa, k)), p1 = load_i64(c, s->pptr, add(c, pb, k));
	LLVMValueRef split = p0;
	if (group > 1) {
		LLVMValueRef full = LLVMBuildAnd(c->b, LLVMBuildNSWSub(c->b, p1, p0, ""),
						 be_i64(c, -(int64_t)group), "");
		split = add(c, p0, full);
		LLVMValueRef p = be_loop_begin(c, &lg, p0, split, group);
		sddmm_entries(c, s, a, k, p, m0, R, n, group);
		be_loop_end(c, &lg);
		be_loop_scalar(c, &lg);
	}
	LLVMValueRef p = be_loop_begin(c, &lp, split, p1, 1);
	sddmm_entries(c, s, a, k, p, m0, R, n, 1);
	be_loop_end(c, &lp);
	be_loop_scalar(c, &lp);
	be_loop_end(c, &lk);
	be_loop_scalar(c, &lk);
	be_loop_end(c, &lq);
	be_loop_scalar(c, &lq);
}

/* Row k's packed sums dW[k][0..e) to their columns, last first: entry q
 * goes to idx >= q, so no packed sum is overwritten before it moves, and
 * every slot left behind is zeroed. */
static void sddmm_unpack(be_Ctx *c, const Sp *s)
{
	be_Loop lk, lp;
	LLVMValueRef k = be_loop_begin(c, &lk, s->r0, s->r1, 1);
	LLVMValueRef p0 = load_i64(c, s->ptr, k), p1 = load_i64(c, s->ptr, add(c, k, be_i64(c, 1)));
	LLVMValueRef row = mul(c, k, s->N);
	LLVMValueRef i = be_loop_begin(c, &lp, be_i64(c, 0), LLVMBuildNSWSub(c->b, p1, p0, ""), 1);
	LLVMValueRef p = LLVMBuildNSWSub(c->b, p1, add(c, i, be_i64(c, 1)), "");
	LLVMValueRef from = add(c, row, LLVMBuildNSWSub(c->b, p, p0, ""));
	LLVMValueRef v = be_load(c, c->t_f32, s->out, from, 1);
	be_store(c, LLVMConstReal(c->t_f32, 0.0), c->t_f32, s->out, from, 1);
	be_store(c, v, c->t_f32, s->out, add(c, row, load_i64(c, s->idx, p)), 1);
	be_loop_end(c, &lp);
	be_loop_scalar(c, &lp);
	be_loop_end(c, &lk);
	be_loop_scalar(c, &lk);
}

/* out rows [r0, r1) of N floats set to 0. */
static void zero_rows(be_Ctx *c, const Sp *s)
{
	LLVMValueRef dst = be_gep(c, c->t_f32, s->out, mul(c, s->r0, s->N));
	LLVMValueRef bytes = mul(c, LLVMBuildNSWSub(c->b, s->r1, s->r0, ""), s->N * 4);
	LLVMBuildMemSet(c->b, LLVMBuildBitCast(c->b, dst, c->t_ptr, ""),
			LLVMConstInt(c->t_i8, 0, 0), bytes, 4);
}

/* ---- the kernels ---- */

static int sparse_pattern(const Graph *g, const Node *nd, const uint8_t **bits, Diag *d)
{
	ValId w = ir_operand(g, nd, nd->narg - 1);
	const Mask *m = ir_find_mask(g, w);
	if (!m || !m->bits)
		return diag_error(d, nd->loc, "the mask of '%s' is to be supplied (IR text carries "
				  "no mask bits)", ir_str(g, ir_node(g, w)->name));
	*bits = m->bits;
	return 0;
}

/* The row groups' bounds, rows [chunk[g], chunk[g+1]). */
static LLVMValueRef group_bounds(be_Ctx *c, Sp *s, const char *name)
{
	return const_i32s(c, name, "chunk", s->rows->chunk, s->rows->ngroup + 1);
}

static void set_group(be_Ctx *c, Sp *s, LLVMValueRef chunk, LLVMValueRef g)
{
	s->r0 = load_i64(c, chunk, g);
	s->r1 = load_i64(c, chunk, add(c, g, be_i64(c, 1)));
}

/* The compressed rows and their panels as the kernel's constants. */
static void pattern_constants(be_Ctx *c, Sp *s, const char *name)
{
	const Rows *rw = s->rows;
	s->ptr = const_i32s(c, name, "ptr", rw->ptr, rw->nrow + 1);
	s->idx = const_i32s(c, name, "idx", rw->idx, rw->nnz ? rw->nnz : 1);
	s->pptr = const_i32s(c, name, "pptr", rw->pptr, (rw->npanel + 1) * (rw->nrow + 1));
}

/* sddmm: task t is row group t of dW over every block of rows (the sum
 * over blocks stays in one task); it zeroes its rows first. */
static void sddmm_tasks(be_Ctx *c, Sp *s, const char *name, LLVMValueRef lo, LLVMValueRef hi)
{
	pattern_constants(c, s, name);
	LLVMValueRef chunk = group_bounds(c, s, name);
	be_Loop lt;
	LLVMValueRef t = be_loop_begin(c, &lt, lo, hi, 1);
	set_group(c, s, chunk, t);
	zero_rows(c, s);
	for_each_block(c, s, SDDMM_VECS, sddmm_block);
	sddmm_unpack(c, s);
	be_loop_end(c, &lt);
	be_loop_scalar(c, &lt);
}

/* The rows of group g for the block the operands point at: the compressed
 * rows' loop, or with unrolled code a switch over the groups. */
static void spmm_group(be_Ctx *c, Sp *s, LLVMValueRef chunk, LLVMValueRef g, bool unrolled)
{
	if (!unrolled) {
		set_group(c, s, chunk, g);
		for_blocks(c, s, SPMM_VECS, spmm_csr_block);
		return;
	}
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
	LLVMValueRef sw = LLVMBuildSwitch(c->b, g, next, (unsigned)s->rows->ngroup);
	for (int k = 0; k < s->rows->ngroup; k++) {
		LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "rows");
		LLVMAddCase(sw, be_i64(c, k), bb);
		LLVMPositionBuilderAtEnd(c->b, bb);
		s->group = k;
		for_blocks(c, s, SPMM_VECS, spmm_unrolled_block);
		LLVMBuildBr(c->b, next);
	}
	LLVMMoveBasicBlockAfter(next, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, next);
}

/* spmm: task t is row group t % ngroup of block t / ngroup. The tasks of a
 * block are consecutive, so a thread's range reads each block of at into
 * its L2 once and every row group uses it there (groups that each swept
 * all blocks read at once per group, from L3). */
static void spmm_tasks(be_Ctx *c, Sp *s, const char *name, LLVMValueRef lo, LLVMValueRef hi,
		       bool unrolled)
{
	const Rows *rw = s->rows;
	if (!unrolled)
		pattern_constants(c, s, name);
	LLVMValueRef chunk = group_bounds(c, s, name);
	be_Loop lt;
	LLVMValueRef t = be_loop_begin(c, &lt, lo, hi, 1);
	LLVMValueRef blk = LLVMBuildUDiv(c->b, t, be_i64(c, rw->ngroup), "");
	LLVMValueRef g = LLVMBuildNSWSub(c->b, t, mul(c, blk, rw->ngroup), "");
	Sp b = *s;
	b.at = be_gep(c, c->t_f32, s->at, mul(c, blk, s->at_stride));
	b.out = be_gep(c, c->t_f32, s->out, mul(c, blk, s->out_stride));
	spmm_group(c, &b, chunk, g, unrolled);
	be_loop_end(c, &lt);
	be_loop_scalar(c, &lt);
}

/* Feature rows per panel (R*L floats each): as many as fill L1 (measured
 * on the Xeon at 75% and 90%: half of L1 was no faster at 75% and slower
 * at 90%, twice or four times L1 no faster; the rows' streams of partial
 * sums and W do not seem to evict a panel that every row keeps using). */
static int64_t panel_rows(const be_Ctx *c)
{
	int64_t row = (int64_t)SPMM_VECS * c->vec_lanes * 4, p = c->l1d / row;
	return p >= 16 ? p : 16;
}

int be_emit_sparse(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v);
	const Node *wn = ir_node(g, ir_operand(g, nd, nd->narg - 1));
	const uint8_t *bits = NULL;
	if (sparse_pattern(g, nd, &bits, d))
		return -1;
	bool sddmm = nd->op == OP_SDDMM;
	const Shape *sa = &ir_node(g, ir_operand(g, nd, 0))->shape;
	Sp s = {.M = sa->dim[2], .N = wn->shape.dim[1], .nblk = sa->dim[0],
		.at_stride = sa->dim[1] * sa->dim[2],
		.tb = nd->flags & NF_TRANS_B};
	if (sddmm)
		s.bt_stride = ir_node(g, ir_operand(g, nd, 1))->shape.dim[1] * s.M;
	else
		s.out_stride = nd->shape.dim[1] * s.M;
	Rows rw = {0};
	if (rows_build(&rw, bits, wn->shape.dim[0], s.N, !sddmm && !s.tb, panel_rows(c))) {
		rows_free(&rw);
		return diag_error(d, nd->loc, "out of memory");
	}
	int64_t want = rows_tasks(&rw, s.M * s.nblk);
	if (sddmm)
		rows_split(&rw, want < SDDMM_GROUPS ? want : SDDMM_GROUPS);
	else
		rows_split(&rw, (want + s.nblk - 1) / s.nblk);
	s.rows = &rw;
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	s.name = name;
	LLVMValueRef buf, lo, hi;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = sddmm ? rw.ngroup : rw.ngroup * s.nblk;
	k->flops = 2.0 * (double)rw.nnz * (double)(s.M * s.nblk);
	s.out = be_kernel_arg(c, buf, 0, c->t_f32);
	s.at = be_kernel_arg(c, buf, 1, c->t_f32);
	if (sddmm) {
		s.bt = be_kernel_arg(c, buf, 2, c->t_f32);
		s.w = be_kernel_arg(c, buf, 3, c->t_f32);
		sddmm_tasks(c, &s, name, lo, hi);
	} else {
		s.w = be_kernel_arg(c, buf, 2, c->t_f32);
		spmm_tasks(c, &s, name, lo, hi, nd->flags & NF_UNROLLED);
	}
	LLVMBuildRetVoid(c->b);
	rows_free(&rw);
	return 0;
}

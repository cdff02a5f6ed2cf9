/* kernel.c: the small IR-building vocabulary every emitter shares.
 *
 * A kernel is `void kN_op(i8** buf, i64 lo, i64 hi)` (the rt.h contract).
 * Emitters build loops with be_loop_*, keep mutable state in be_local
 * slots (entry-block allocas that SROA turns back into registers, so no
 * hand-built phis), and write one loop body for a width n that serves as
 * the n = vec_lanes main loop and the n = 1 scalar tail.
 *
 * Math: exp, log and tanh are polynomials (Cephes expf/logf/tanhf) built
 * from plain vector instructions, because llvm.exp and llvm.log lower to a
 * libm call per lane and stop vectorisation dead; all are within ~2 ulp. sqrt and fma are
 * intrinsics that map to one instruction. Horizontal reductions halve the
 * vector in a fixed order, so results never depend on anything but the
 * data. */
#include "backend.h"

#include <llvm-c/DebugInfo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

LLVMValueRef be_i64(be_Ctx *c, int64_t v)
{
	return LLVMConstInt(c->t_i64, (unsigned long long)v, 1);
}

LLVMValueRef be_i32c(be_Ctx *c, int32_t v)
{
	return LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)v, 1);
}

LLVMValueRef be_f32c(be_Ctx *c, double v)
{
	return LLVMConstReal(c->t_f32, v);
}

LLVMTypeRef be_vtype(be_Ctx *c, LLVMTypeRef elem, int n)
{
	return n == 1 ? elem : LLVMVectorType(elem, (unsigned)n);
}

LLVMValueRef be_splat(be_Ctx *c, LLVMValueRef x, int n)
{
	if (n == 1)
		return x;
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)n);
	LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), x, be_i32c(c, 0), "");
	LLVMValueRef mask = LLVMConstNull(LLVMVectorType(c->t_i32, (unsigned)n));
	return LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(vt), mask, "splat");
}

LLVMValueRef be_lane_ids(be_Ctx *c, LLVMTypeRef elem, int n)
{
	LLVMValueRef lane[64];
	for (int i = 0; i < n; i++)
		lane[i] = elem == c->t_f32 ? be_f32c(c, i) :
					     LLVMConstInt(elem, (unsigned long long)i, 0);
	return n == 1 ? lane[0] : LLVMConstVector(lane, (unsigned)n);
}

LLVMValueRef be_gep(be_Ctx *c, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx)
{
	return LLVMBuildInBoundsGEP2(c->b, elem, p, &idx, 1, "");
}

static int elem_align(be_Ctx *c, LLVMTypeRef elem)
{
	return elem == c->t_i8 ? 1 : 4;
}

LLVMValueRef be_load(be_Ctx *c, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx, int n)
{
	LLVMTypeRef t = be_vtype(c, elem, n);
	LLVMValueRef q = be_gep(c, elem, p, idx);
	if (n > 1)
		q = LLVMBuildBitCast(c->b, q, LLVMPointerType(t, 0), "");
	LLVMValueRef v = LLVMBuildLoad2(c->b, t, q, "");
	LLVMSetAlignment(v, (unsigned)elem_align(c, elem));
	return v;
}

void be_store(be_Ctx *c, LLVMValueRef v, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx,
	      int n)
{
	LLVMValueRef q = be_gep(c, elem, p, idx);
	if (n > 1)
		q = LLVMBuildBitCast(c->b, q, LLVMPointerType(LLVMTypeOf(v), 0), "");
	LLVMValueRef s = LLVMBuildStore(c->b, v, q);
	LLVMSetAlignment(s, (unsigned)elem_align(c, elem));
}

LLVMValueRef be_local(be_Ctx *c, LLVMTypeRef t, LLVMValueRef init)
{
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
	LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(LLVMGetBasicBlockParent(cur));
	LLVMValueRef first = LLVMGetFirstInstruction(entry);
	if (first)
		LLVMPositionBuilderBefore(c->b, first);
	else
		LLVMPositionBuilderAtEnd(c->b, entry);
	LLVMValueRef slot = LLVMBuildAlloca(c->b, t, "");
	LLVMPositionBuilderAtEnd(c->b, cur);
	if (init)
		LLVMBuildStore(c->b, init, slot);
	return slot;
}

LLVMValueRef be_get(be_Ctx *c, LLVMTypeRef t, LLVMValueRef local)
{
	return LLVMBuildLoad2(c->b, t, local, "");
}

void be_set(be_Ctx *c, LLVMValueRef local, LLVMValueRef v)
{
	LLVMBuildStore(c->b, v, local);
}

LLVMValueRef be_min64(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMBasicBlockRef new_block(be_Ctx *c, const char *name)
{
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	return LLVMAppendBasicBlockInContext(c->ctx, fn, name);
}

LLVMValueRef be_loop_begin(be_Ctx *c, be_Loop *l, LLVMValueRef from, LLVMValueRef to,
			   int64_t step)
{
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	l->head = new_block(c, "loop");
	l->body = new_block(c, "body");
	l->exit = new_block(c, "done");
	l->step = be_i64(c, step);
	LLVMBuildBr(c->b, l->head);
	LLVMPositionBuilderAtEnd(c->b, l->head);
	l->i = LLVMBuildPhi(c->b, c->t_i64, "i");
	LLVMAddIncoming(l->i, &from, &pre, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->i, to, ""), l->body, l->exit);
	LLVMPositionBuilderAtEnd(c->b, l->body);
	return l->i;
}

void be_loop_end(be_Ctx *c, be_Loop *l)
{
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->i, l->step, "");
	l->latch = LLVMBuildBr(c->b, l->head);
	LLVMAddIncoming(l->i, &next, &latch, 1);
	/* Blocks were appended in creation order; keep the exit after the
	 * blocks the body added, so the printed IR reads top to bottom. */
	LLVMMoveBasicBlockAfter(l->exit, latch);
	LLVMPositionBuilderAtEnd(c->b, l->exit);
}

/* !llvm.loop !{self, !{"llvm.loop.vectorize.enable", false},
 *               !{"llvm.loop.unroll.disable"}}: the self reference goes
 * through a temporary node, which the C API's replace-all-uses deletes. */
void be_loop_scalar(be_Ctx *c, be_Loop *l)
{
	static const char vec[] = "llvm.loop.vectorize.enable", unroll[] = "llvm.loop.unroll.disable";
	LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
	LLVMMetadataRef v[2] = {LLVMMDStringInContext2(c->ctx, vec, sizeof vec - 1),
				LLVMValueAsMetadata(LLVMConstInt(c->t_i1, 0, 0))};
	LLVMMetadataRef u = LLVMMDStringInContext2(c->ctx, unroll, sizeof unroll - 1);
	LLVMMetadataRef ops[3] = {tmp, LLVMMDNodeInContext2(c->ctx, v, 2),
				  LLVMMDNodeInContext2(c->ctx, &u, 1)};
	LLVMMetadataRef loop = LLVMMDNodeInContext2(c->ctx, ops, 3);
	LLVMMetadataReplaceAllUsesWith(tmp, loop);
	unsigned kind = LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9);
	LLVMSetMetadata(l->latch, kind, LLVMMetadataAsValue(c->ctx, loop));
}

LLVMBasicBlockRef be_if_begin(be_Ctx *c, LLVMValueRef cond)
{
	LLVMBasicBlockRef then = new_block(c, "then"), join = new_block(c, "join");
	LLVMBuildCondBr(c->b, cond, then, join);
	LLVMPositionBuilderAtEnd(c->b, then);
	return join;
}

void be_if_end(be_Ctx *c, LLVMBasicBlockRef join)
{
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
	LLVMBuildBr(c->b, join);
	LLVMMoveBasicBlockAfter(join, cur);
	LLVMPositionBuilderAtEnd(c->b, join);
}

void be_split(int64_t nunit, double unit_work, int64_t *per, int64_t *ntask)
{
	if (unit_work < 1)
		unit_work = 1;
	if (nunit <= 1 || (double)nunit * unit_work <= BE_SMALL_WORK) {
		*per = nunit < 1 ? 1 : nunit;
		*ntask = 1;
		return;
	}
	int64_t p = (int64_t)(BE_TASK_WORK / unit_work);
	if (p < 1)
		p = 1;
	*per = p;
	*ntask = (nunit + p - 1) / p;
}

void be_task_units(be_Ctx *c, LLVMValueRef lo, LLVMValueRef hi, int64_t per, int64_t nunit,
		   LLVMValueRef *ulo, LLVMValueRef *uhi)
{
	*ulo = LLVMBuildNSWMul(c->b, lo, be_i64(c, per), "ulo");
	*uhi = be_min64(c, LLVMBuildNSWMul(c->b, hi, be_i64(c, per), ""), be_i64(c, nunit));
}

/* ---- math ---- */

/* The overloaded-intrinsic suffix: f32, v16f32, i32, v8i32, ... */
static void mangle(be_Ctx *c, LLVMTypeRef t, char *buf, size_t n)
{
	int lanes = 0;
	if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
		lanes = (int)LLVMGetVectorSize(t);
		t = LLVMGetElementType(t);
	}
	char e[8];
	switch (LLVMGetTypeKind(t)) {
	case LLVMFloatTypeKind: snprintf(e, sizeof e, "f32"); break;
	case LLVMDoubleTypeKind: snprintf(e, sizeof e, "f64"); break;
	default: snprintf(e, sizeof e, "i%u", LLVMGetIntTypeWidth(t)); break;
	}
	if (lanes)
		snprintf(buf, n, "v%d%s", lanes, e);
	else
		snprintf(buf, n, "%s", e);
}

LLVMValueRef be_intrin(be_Ctx *c, const char *name, LLVMTypeRef t, LLVMValueRef *args,
		       int nargs)
{
	char full[96], suffix[16];
	mangle(c, t, suffix, sizeof suffix);
	snprintf(full, sizeof full, "%s.%s", name, suffix);
	LLVMTypeRef pt[4] = {t, t, t, t};
	LLVMTypeRef ft = LLVMFunctionType(t, pt, (unsigned)nargs, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, full);
	if (!fn)
		fn = LLVMAddFunction(c->mod, full, ft);
	return LLVMBuildCall2(c->b, ft, fn, args, (unsigned)nargs, "");
}

LLVMValueRef be_fma(be_Ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc, int n)
{
	if (!c->has_fma)   /* llvm.fma would become a libm call */
		return LLVMBuildFAdd(c->b, LLVMBuildFMul(c->b, a, b, ""), acc, "");
	LLVMValueRef args[3] = {a, b, acc};
	return be_intrin(c, "llvm.fma", LLVMTypeOf(a), args, 3);
}

/* a > b ? a : b: one vmaxps, and the same rule in every kernel. */
LLVMValueRef be_fmax(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, a, b, ""), a, b, "");
}

static LLVMValueRef fk(be_Ctx *c, double v, int n)
{
	return be_splat(c, be_f32c(c, v), n);
}

static LLVMValueRef ik(be_Ctx *c, int32_t v, int n)
{
	return be_splat(c, be_i32c(c, v), n);
}

static LLVMValueRef poly(be_Ctx *c, LLVMValueRef x, const double *k, int nk, int n)
{
	LLVMValueRef p = fk(c, k[0], n);
	for (int i = 1; i < nk; i++)
		p = be_fma(c, p, x, fk(c, k[i], n), n);
	return p;
}

/* 2^e for integer e in [-126, 127]: the exponent field directly. */
static LLVMValueRef pow2i(be_Ctx *c, LLVMValueRef e, int n)
{
	LLVMValueRef bits = LLVMBuildShl(c->b, LLVMBuildAdd(c->b, e, ik(c, 127, n), ""),
					 ik(c, 23, n), "");
	return LLVMBuildBitCast(c->b, bits, be_vtype(c, c->t_f32, n), "");
}

/* Cephes expf: x = k ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial,
 * then times 2^k in two halves so k up to 129 and down to -150 cannot
 * overflow the exponent field (results go to inf / denormals / 0 as they
 * should). NaN goes through; -inf gives exactly 0, which softmax over a
 * causal mask relies on. */
LLVMValueRef be_exp(be_Ctx *c, LLVMValueRef x, int n)
{
	static const double P[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
				   4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
	LLVMBuilderRef b = c->b;
	LLVMTypeRef vi = be_vtype(c, c->t_i32, n);
	LLVMValueRef isnan = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "");
	LLVMValueRef xc = LLVMBuildSelect(b, isnan, fk(c, 0, n), x, "");
	xc = be_fmax(c, xc, fk(c, -104.0, n));
	xc = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, xc, fk(c, 89.0, n), ""), xc,
			     fk(c, 89.0, n), "");
	LLVMValueRef t = be_fma(c, xc, fk(c, 1.44269504088896341, n), fk(c, 0.5, n), n);
	LLVMValueRef kf = be_intrin(c, "llvm.floor", LLVMTypeOf(x), &t, 1);
	LLVMValueRef r = be_fma(c, kf, fk(c, -0.693359375, n), xc, n);
	r = be_fma(c, kf, fk(c, 2.12194440e-4, n), r, n);
	LLVMValueRef p = poly(c, r, P, 6, n);
	LLVMValueRef r2 = LLVMBuildFMul(b, r, r, "");
	LLVMValueRef y = be_fma(c, p, r2, LLVMBuildFAdd(b, r, fk(c, 1.0, n), ""), n);
	LLVMValueRef k = LLVMBuildFPToSI(b, kf, vi, "");
	LLVMValueRef k1 = LLVMBuildAShr(b, k, ik(c, 1, n), "");
	LLVMValueRef k2 = LLVMBuildSub(b, k, k1, "");
	y = LLVMBuildFMul(b, LLVMBuildFMul(b, y, pow2i(c, k1, n), ""), pow2i(c, k2, n), "");
	y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLE, x, fk(c, -104.0, n), ""),
			    fk(c, 0, n), y, "");
	return LLVMBuildSelect(b, isnan, x, y, "exp");
}

/* Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a
 * degree-9 polynomial in m - 1, plus e ln2 in two parts. Denormals are
 * scaled up first; 0 gives -inf, negatives NaN, +inf and NaN themselves. */
LLVMValueRef be_log(be_Ctx *c, LLVMValueRef x, int n)
{
	static const double P[] = {7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1,
				   -1.2420140846E-1, 1.4249322787E-1, -1.6668057665E-1,
				   2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1};
	LLVMBuilderRef b = c->b;
	LLVMTypeRef vi = be_vtype(c, c->t_i32, n), vf = be_vtype(c, c->t_f32, n);
	LLVMValueRef tiny = LLVMBuildFCmp(b, LLVMRealOLT, x, fk(c, 1.17549435e-38, n), "");
	LLVMValueRef xs = LLVMBuildSelect(b, tiny, LLVMBuildFMul(b, x, fk(c, 8388608.0, n), ""), x, "");
	LLVMValueRef bits = LLVMBuildBitCast(b, xs, vi, "");
	LLVMValueRef e = LLVMBuildSub(b, LLVMBuildLShr(b, bits, ik(c, 23, n), ""), ik(c, 126, n), "");
	e = LLVMBuildSub(b, e, LLVMBuildSelect(b, tiny, ik(c, 23, n), ik(c, 0, n), ""), "");
	LLVMValueRef mb = LLVMBuildOr(b, LLVMBuildAnd(b, bits, ik(c, 0x007fffff, n), ""),
				      ik(c, 0x3f000000, n), "");
	LLVMValueRef m = LLVMBuildBitCast(b, mb, vf, "");       /* [0.5, 1) */
	LLVMValueRef lo = LLVMBuildFCmp(b, LLVMRealOLT, m, fk(c, 0.707106781186547524, n), "");
	e = LLVMBuildSub(b, e, LLVMBuildZExt(b, lo, vi, ""), "");
	LLVMValueRef f = LLVMBuildFSub(b, LLVMBuildSelect(b, lo, LLVMBuildFAdd(b, m, m, ""), m, ""),
				       fk(c, 1.0, n), "");
	LLVMValueRef ef = LLVMBuildSIToFP(b, e, vf, "");
	LLVMValueRef z = LLVMBuildFMul(b, f, f, "");
	LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, poly(c, f, P, 9, n), f, ""), z, "");
	y = be_fma(c, ef, fk(c, -2.12194440e-4, n), y, n);
	y = be_fma(c, z, fk(c, -0.5, n), y, n);
	y = be_fma(c, ef, fk(c, 0.693359375, n), LLVMBuildFAdd(b, f, y, ""), n);
	/* x <= 0, inf, NaN: */
	y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, x, fk(c, 0, n), ""), fk(c, -INFINITY, n), y, "");
	y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealULT, x, fk(c, 0, n), ""), fk(c, NAN, n), y, "");
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, x, fk(c, INFINITY, n), ""), x, y, "log");
}

/* Cephes tanhf: odd polynomial below 0.625, 1 - 2/(e^2|x| + 1) above (no
 * cancellation there), sign restored. */
LLVMValueRef be_tanh(be_Ctx *c, LLVMValueRef x, int n)
{
	static const double P[] = {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
				   1.33314422036E-1, -3.33332819422E-1};
	LLVMBuilderRef b = c->b;
	LLVMValueRef ax = be_intrin(c, "llvm.fabs", LLVMTypeOf(x), &x, 1);
	LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
	LLVMValueRef small = be_fma(c, LLVMBuildFMul(b, poly(c, z, P, 5, n), z, ""), x, x, n);
	LLVMValueRef e = be_exp(c, LLVMBuildFAdd(b, ax, ax, ""), n);
	LLVMValueRef big = LLVMBuildFSub(b, fk(c, 1.0, n),
					 LLVMBuildFDiv(b, fk(c, 2.0, n),
						       LLVMBuildFAdd(b, e, fk(c, 1.0, n), ""), ""), "");
	LLVMValueRef args[2] = {big, x};
	big = be_intrin(c, "llvm.copysign", LLVMTypeOf(x), args, 2);
	LLVMValueRef is_small = LLVMBuildFCmp(b, LLVMRealOLT, ax, fk(c, 0.625, n), "");
	return LLVMBuildSelect(b, is_small, small, big, "tanh");
}

static LLVMValueRef halve(be_Ctx *c, LLVMValueRef v, int n, int hi)
{
	LLVMValueRef idx[32];
	for (int i = 0; i < n / 2; i++)
		idx[i] = be_i32c(c, i + (hi ? n / 2 : 0));
	if (n / 2 == 1)
		return LLVMBuildExtractElement(c->b, v, idx[0], "");
	return LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(LLVMTypeOf(v)),
				      LLVMConstVector(idx, (unsigned)(n / 2)), "");
}

LLVMValueRef be_hsum(be_Ctx *c, LLVMValueRef v, int n)
{
	for (; n > 1; n /= 2)
		v = LLVMBuildFAdd(c->b, halve(c, v, n, 0), halve(c, v, n, 1), "");
	return v;
}

/* shufflevector(x, y, lo) + shufflevector(x, y, hi) for `w` result lanes. */
static LLVMValueRef add_shuffled(be_Ctx *c, LLVMValueRef x, LLVMValueRef y, const int *lo,
				 const int *hi, int w)
{
	LLVMValueRef a[32], b[32];
	for (int i = 0; i < w; i++) {
		a[i] = be_i32c(c, lo[i]);
		b[i] = be_i32c(c, hi[i]);
	}
	return LLVMBuildFAdd(c->b, LLVMBuildShuffleVector(c->b, x, y, LLVMConstVector(a, (unsigned)w), ""),
			     LLVMBuildShuffleVector(c->b, x, y, LLVMConstVector(b, (unsigned)w), ""), "");
}

/* The sums be_hsum forms, for several vectors at once: a vector holds k
 * entries of seg lanes each; two such vectors merge into one of 2k entries
 * of seg/2 lanes, each lane l of an entry the sum of its lanes l and
 * l + seg/2 (be_hsum's first halving), so two shuffles and one add serve
 * two vectors where be_hsum spends two per halving per vector. When one
 * vector is left, its entries halve in place until one lane each. */
LLVMValueRef be_hsum_many(be_Ctx *c, const LLVMValueRef *v, int count, int n)
{
	LLVMValueRef cur[32];
	int lo[32], hi[32];
	memcpy(cur, v, (size_t)count * sizeof *v);
	int k = 1, seg = n, nv = count;
	for (; nv > 1; nv /= 2, k *= 2, seg /= 2) {
		for (int e = 0; e < 2 * k; e++)
			for (int l = 0; l < seg / 2; l++) {
				int src = (e < k ? 0 : n) + (e % k) * seg + l;
				lo[e * (seg / 2) + l] = src;
				hi[e * (seg / 2) + l] = src + seg / 2;
			}
		for (int i = 0; i < nv / 2; i++)
			cur[i] = add_shuffled(c, cur[2 * i], cur[2 * i + 1], lo, hi, n);
	}
	for (int w = n; seg > 1; seg /= 2) {
		w /= 2;
		for (int e = 0; e < k; e++)
			for (int l = 0; l < seg / 2; l++) {
				lo[e * (seg / 2) + l] = e * seg + l;
				hi[e * (seg / 2) + l] = e * seg + seg / 2 + l;
			}
		cur[0] = add_shuffled(c, cur[0], LLVMGetUndef(LLVMTypeOf(cur[0])), lo, hi, w);
	}
	return cur[0];
}

LLVMValueRef be_hmax(be_Ctx *c, LLVMValueRef v, int n)
{
	for (; n > 1; n /= 2)
		v = be_fmax(c, halve(c, v, n, 0), halve(c, v, n, 1));
	return v;
}

void be_fn_attrs(be_Ctx *c, LLVMValueRef fn)
{
	unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
				LLVMCreateEnumAttribute(c->ctx, nounwind, 0));
	/* The x86 backend splits 512-bit vectors unless told they are wanted;
	 * our IR uses them on purpose. */
	if (c->vec_lanes == 16) {
		static const char *const kv[][2] = {{"prefer-vector-width", "512"},
						    {"min-legal-vector-width", "512"}};
		for (int i = 0; i < 2; i++)
			LLVMAddAttributeAtIndex(
				fn, LLVMAttributeFunctionIndex,
				LLVMCreateStringAttribute(c->ctx, kv[i][0], (unsigned)strlen(kv[i][0]),
							  kv[i][1], (unsigned)strlen(kv[i][1])));
	}
}

LLVMValueRef be_kernel_begin(be_Ctx *c, const char *name, LLVMValueRef *buf, LLVMValueRef *lo,
			     LLVMValueRef *hi)
{
	LLVMValueRef fn = LLVMAddFunction(c->mod, name, c->t_kernel);
	LLVMSetLinkage(fn, LLVMExternalLinkage);
	be_fn_attrs(c, fn);
	LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
	LLVMPositionBuilderAtEnd(c->b, entry);
	*buf = LLVMGetParam(fn, 0);
	*lo = LLVMGetParam(fn, 1);
	*hi = LLVMGetParam(fn, 2);
	LLVMSetValueName2(*buf, "buf", 3);
	LLVMSetValueName2(*lo, "lo", 2);
	LLVMSetValueName2(*hi, "hi", 2);
	return fn;
}

LLVMValueRef be_kernel_arg(be_Ctx *c, LLVMValueRef buf, int i, LLVMTypeRef elem)
{
	LLVMValueRef slot = be_gep(c, c->t_ptr, buf, be_i64(c, i));
	LLVMValueRef p = LLVMBuildLoad2(c->b, c->t_ptr, slot, "");
	LLVMSetAlignment(p, 8);
	return LLVMBuildBitCast(c->b, p, LLVMPointerType(elem, 0), "");
}

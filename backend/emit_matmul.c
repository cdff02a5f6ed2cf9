/* emit_matmul.c: the dense matmul, blocked and vectorised GotoBLAS-style,
 * specialised to the shapes of one OP_MATMUL node.
 *
 * C[b] = A[b] @ B[b] for every batch index b (batch dims broadcast; A may be
 * stored [...,K,M] with NF_TRANS_A and B [...,N,K] with NF_TRANS_B). When B
 * has no batch and A is plain, the batch folds into M and the whole op is
 * one [batch*M, K] x [K, N] GEMM.
 *
 * Code shape, outermost first. Every size is a compile-time constant; only
 * the row and column range of a call is not:
 *
 *   kernel(buf, lo, hi)      tasks [lo, hi) -> runs of row tiles of one
 *                            (batch, column block), each run one block call
 *   block(A, B, C, r0, r1, c0, c1)
 *     for jc in [c0, c1) by NC             column block of C
 *       for pc in [0, K) by KC             K block: pack B into Bp (L2)
 *         for ir in [r0, r1) by MR         A's MR x kc sliver stays in L1
 *           for jr in [0, NC) by NR        Bp's kc x NR panels stream from L2
 *             micro(A, Bp, C, kc, first, next)
 *
 * The micro-kernel keeps an MR x NR tile of C in MR*NV vector registers
 * (6 x 64 floats = 24 zmm with AVX-512; narrower outputs use 8 x 48, 12 x
 * 32, 16 x 16) and per k broadcasts MR elements of A and loads NV vectors
 * of Bp, for MR*NV fused multiply-adds; its k loop is unrolled 4 times
 * (kc % 4 steps in a tail loop). Packing absorbs NF_TRANS_B (16 x 16
 * transposes in registers) and zero-pads the last column panel, so the
 * micro-kernel always reads whole vectors of B and only its loads and
 * stores of C are masked at the N edge; the M edge is a micro-kernel with
 * fewer rows. A is never packed: the micro-kernel reads it through two
 * constant strides, which makes NF_TRANS_A free. When M <= MR a packed
 * panel would be read only once, so B is read in place instead (M = 1 in
 * generation). Each micro-kernel call prefetches the next call's C tile.
 * Bp is an alloca of at most KC*NC floats (512 KiB of stack; glibc gives
 * threads 8 MiB), so nothing is allocated at run time.
 *
 * NF_SKIPZEROS (masked probabilities times values): each FMA becomes a
 * masked one, the accumulators kept where the broadcast A(i, k) is 0, so
 * a NaN or inf in B meets no masked probability. With AVX-512 that is one
 * compare per row and k and a merge-masked FMA; the sums are otherwise
 * the same, in the same order.
 *
 * Determinism: a task is MR rows of one column block of one batch and
 * computes its part of C with the whole K reduction in a fixed order (K
 * blocks in order, each element one FMA chain), so the result is bitwise
 * independent of how tasks are grouped over threads. Consecutive tasks of
 * one call share a packed B block; that is only an optimisation, since
 * packing copies values. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

/* Block sizes, measured on Zen 4 (32 KiB L1d, 1 MiB L2 per core): KC 512
 * beat 256 by 2-4% at K >= 1024 (fewer passes over C), NC 256 and 512 tie. */
enum {
	MM_KC = 512,          /* K block: a 6 x 512 sliver of A is 12 KiB of L1 */
	MM_KC_TRANS_A = 256,
	MM_NC = 256,          /* column block: Bp = KC*NC*4 = 512 KiB of L2 */
	MM_MAXACC = 32,
	MM_UNROLL = 4,        /* k steps per micro-kernel loop iteration */
	MM_MIN_TASKS = 16,    /* split columns too when rows give fewer tasks */
};

/* Every compile-time decision about one matmul. Strides are in elements. */
typedef struct MMPlan {
	int64_t M, N, K;
	int64_t sam, sak;     /* A(m, k) at m*sam + k*sak */
	int trans_b;          /* B(k, n) at n*K + k, else k*N + n */
	int skip;             /* NF_SKIPZEROS: A(m, k) = 0 adds nothing */
	int direct_b;         /* micro-kernels read B in place, unpacked */
	int64_t ldp;          /* row stride of the B panel a micro-kernel reads */
	int64_t nbatch;       /* after folding */
	int nbdim;            /* batch dims of C, with A's and B's strides (0: broadcast) */
	int64_t bdim[IR_MAX_RANK], bsa[IR_MAX_RANK], bsb[IR_MAX_RANK];
	int vl, mr, nv, nr;   /* vector lanes; micro tile MR x NR = MR x NV*VL */
	int64_t kc, nc;
	int64_t nmt, nnb, nt; /* row tiles (MR rows) x column blocks (nt columns) per batch */
	int64_t ntask;
} MMPlan;

/* ---- small emission helpers ---- */

/* i64 arithmetic, short enough to read an address computation at a glance */
static LLVMValueRef mm_add(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildAdd(c->b, a, b, "");
}

static LLVMValueRef mm_sub(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSub(c->b, a, b, "");
}

static LLVMValueRef mm_mul(be_Ctx *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildMul(c->b, a, b, "");
}

static LLVMValueRef mm_addk(be_Ctx *c, LLVMValueRef a, int64_t k)
{
	return mm_add(c, a, be_i64(c, k));
}

static LLVMValueRef mm_mulk(be_Ctx *c, LLVMValueRef a, int64_t k)
{
	return mm_mul(c, a, be_i64(c, k));
}

/* Packed panels are vector-aligned: Bp is, and every panel, row and
 * vector offset in it is a multiple of the vector size. */
static unsigned mm_valign(const MMPlan *p)
{
	return (unsigned)p->vl * 4;
}

static LLVMTypeRef mm_vt(be_Ctx *c, int lanes)
{
	return LLVMVectorType(c->t_f32, (unsigned)lanes);
}

static LLVMTypeRef mm_fptr(be_Ctx *c)
{
	return LLVMPointerType(c->t_f32, 0);
}

/* &p[i] for a float* p */
static LLVMValueRef mm_at(be_Ctx *c, LLVMValueRef p, LLVMValueRef i)
{
	return LLVMBuildGEP2(c->b, c->t_f32, p, &i, 1, "");
}

static LLVMValueRef mm_intrinsic(be_Ctx *c, const char *name, LLVMTypeRef *over, int nover,
				 LLVMTypeRef *fnty)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	*fnty = LLVMIntrinsicGetType(c->ctx, id, over, (size_t)nover);
	return LLVMGetIntrinsicDeclaration(c->mod, id, over, (size_t)nover);
}

static LLVMValueRef mm_call(be_Ctx *c, LLVMTypeRef fnty, LLVMValueRef fn, LLVMValueRef *args,
			    int nargs)
{
	return LLVMBuildCall2(c->b, fnty, fn, args, (unsigned)nargs, "");
}

/* <lanes x i1> with the first n lanes set */
static LLVMValueRef mm_mask(be_Ctx *c, int lanes, int n)
{
	LLVMValueRef bit[64];
	for (int i = 0; i < lanes; i++)
		bit[i] = LLVMConstInt(c->t_i1, i < n, 0);
	return LLVMConstVector(bit, (unsigned)lanes);
}

/* Load `lanes` floats at p; only the first n are read when n < lanes (the
 * rest are zero), so the load never touches memory past an edge. */
static LLVMValueRef mm_load(be_Ctx *c, LLVMValueRef p, int lanes, int n, unsigned align)
{
	LLVMTypeRef vt = mm_vt(c, lanes), pt = LLVMPointerType(vt, 0);
	LLVMValueRef vp = LLVMBuildBitCast(c->b, p, pt, "");
	if (n >= lanes) {
		LLVMValueRef l = LLVMBuildLoad2(c->b, vt, vp, "");
		LLVMSetAlignment(l, align);
		return l;
	}
	if (n <= 0)
		return LLVMConstNull(vt);
	LLVMTypeRef over[2] = {vt, pt}, fty;
	LLVMValueRef fn = mm_intrinsic(c, "llvm.masked.load", over, 2, &fty);
	LLVMValueRef a[4] = {vp, LLVMConstInt(c->t_i32, align, 0), mm_mask(c, lanes, n),
			     LLVMConstNull(vt)};
	return mm_call(c, fty, fn, a, 4);
}

static void mm_store(be_Ctx *c, LLVMValueRef v, LLVMValueRef p, int lanes, int n, unsigned align)
{
	LLVMTypeRef vt = mm_vt(c, lanes), pt = LLVMPointerType(vt, 0);
	LLVMValueRef vp = LLVMBuildBitCast(c->b, p, pt, "");
	if (n <= 0)
		return;
	if (n >= lanes) {
		LLVMValueRef s = LLVMBuildStore(c->b, v, vp);
		LLVMSetAlignment(s, align);
		return;
	}
	LLVMTypeRef over[2] = {vt, pt}, fty;
	LLVMValueRef fn = mm_intrinsic(c, "llvm.masked.store", over, 2, &fty);
	LLVMValueRef a[4] = {v, vp, LLVMConstInt(c->t_i32, align, 0), mm_mask(c, lanes, n)};
	mm_call(c, fty, fn, a, 4);
}

/* A counted loop `for (i = lo; i < hi; i += step)`, like be_loop_begin
 * but with the step a value given at the end: the task loop jumps to the
 * end of a run of tasks. (The micro-kernel's k loop carries accumulators
 * in phis and is built by hand in mm_kloop.) */
typedef struct MMLoop {
	LLVMBasicBlockRef head, body, exit;
	LLVMValueRef i;
} MMLoop;

static void mm_loop_begin(be_Ctx *c, MMLoop *l, LLVMValueRef lo, LLVMValueRef hi, const char *name)
{
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	char nm[64];
	snprintf(nm, sizeof nm, "%s.head", name);
	l->head = LLVMAppendBasicBlockInContext(c->ctx, fn, nm);
	snprintf(nm, sizeof nm, "%s.body", name);
	l->body = LLVMAppendBasicBlockInContext(c->ctx, fn, nm);
	snprintf(nm, sizeof nm, "%s.exit", name);
	l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, nm);
	LLVMBuildBr(c->b, l->head);
	LLVMPositionBuilderAtEnd(c->b, l->head);
	l->i = LLVMBuildPhi(c->b, c->t_i64, name);
	LLVMAddIncoming(l->i, &lo, &pre, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->i, hi, ""), l->body, l->exit);
	LLVMPositionBuilderAtEnd(c->b, l->body);
}

static void mm_loop_end(be_Ctx *c, MMLoop *l, LLVMValueRef step)
{
	LLVMValueRef next = mm_add(c, l->i, step);
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMAddIncoming(l->i, &next, &latch, 1);
	LLVMBuildBr(c->b, l->head);
	LLVMPositionBuilderAtEnd(c->b, l->exit);
}

/* Helpers are internal functions with the host's target attributes (the
 * JIT's default CPU may lack AVX-512) and 512-bit vectors allowed. A helper
 * whose name already exists is reused: the name encodes everything the code
 * depends on, so two matmuls of one shape share their code. */
static LLVMValueRef mm_helper(be_Ctx *c, const char *name, LLVMTypeRef fty, int *exists)
{
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
	*exists = fn != NULL;
	if (fn)
		return fn;
	fn = LLVMAddFunction(c->mod, name, fty);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	LLVMSetFunctionCallConv(fn, LLVMFastCallConv);
	char *cpu = LLVMGetTargetMachineCPU(c->tm), *feat = LLVMGetTargetMachineFeatureString(c->tm);
	struct {
		const char *k, *v;
	} attr[] = {{"target-cpu", cpu},
		    {"target-features", feat},
		    {"prefer-vector-width", "512"},
		    {"min-legal-vector-width", "512"}};
	for (size_t i = 0; i < sizeof attr / sizeof attr[0]; i++) {
		if (!attr[i].v || !*attr[i].v)
			continue;
		LLVMAttributeRef a = LLVMCreateStringAttribute(
			c->ctx, attr[i].k, (unsigned)strlen(attr[i].k), attr[i].v,
			(unsigned)strlen(attr[i].v));
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, a);
	}
	/* noinline: a micro-kernel is called from up to four places, and
	 * every inlined copy of its unrolled body would be optimised and
	 * compiled again (a third of the compile time, no speed gained) */
	const char *kind[] = {"nounwind", "noinline"};
	for (int i = 0; i < 2; i++) {
		unsigned id = LLVMGetEnumAttributeKindForName(kind[i], strlen(kind[i]));
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
					LLVMCreateEnumAttribute(c->ctx, id, 0));
	}
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(feat);
	return fn;
}

/* ---- the micro-kernel ---- */

/* One k step: acc[i][j] += A(i, k) * Bp[k][j*VL ..]. Packed panels are
 * aligned and zero-padded; B read in place is neither, so its last vector
 * is masked at the N edge. */
static void mm_kstep(be_Ctx *c, const MMPlan *p, int mr, int nv, int ncol, LLVMValueRef a,
		     LLVMValueRef bp, LLVMValueRef k, LLVMValueRef *acc, LLVMTypeRef fmaty,
		     LLVMValueRef fma)
{
	LLVMTypeRef vt = mm_vt(c, p->vl);
	LLVMValueRef bv[8];
	LLVMValueRef kb = mm_mulk(c, k, p->ldp);
	for (int j = 0; j < nv; j++)
		bv[j] = mm_load(c, mm_at(c, bp, mm_addk(c, kb, j * p->vl)),
				p->vl, p->direct_b ? ncol - j * p->vl : p->vl,
				p->direct_b ? 4 : mm_valign(p));
	LLVMValueRef ka = mm_mulk(c, k, p->sak);
	LLVMValueRef zero = LLVMConstNull(LLVMVectorType(c->t_i32, (unsigned)p->vl));
	for (int i = 0; i < mr; i++) {
		LLVMValueRef ai = mm_addk(c, ka, i * p->sam);
		LLVMValueRef s = LLVMBuildLoad2(c->b, c->t_f32, mm_at(c, a, ai), "");
		LLVMSetAlignment(s, 4);
		LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), s,
							LLVMConstInt(c->t_i32, 0, 0), "");
		v = LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(vt), zero, "");
		LLVMValueRef nz = NULL;   /* lanes where A(i, k) is not 0 (NaN is not) */
		if (p->skip)
			nz = LLVMBuildFCmp(c->b, LLVMRealUNE, v, LLVMConstNull(vt), "");
		for (int j = 0; j < nv; j++) {
			LLVMValueRef args[3] = {v, bv[j], acc[i * nv + j]};
			LLVMValueRef r = mm_call(c, fmaty, fma, args, 3);
			acc[i * nv + j] = nz ? LLVMBuildSelect(c->b, nz, r, args[2], "") : r;
		}
	}
}

/* A loop over k in [k0, k1) by `step` k steps per iteration, carrying the
 * accumulators in phis; entered from the current block, which must
 * already know k0 < k1 is possible. Leaves the builder in the exit block
 * with acc[] and *kout holding the values after the loop. */
static void mm_kloop(be_Ctx *c, const MMPlan *p, int mr, int nv, int ncol, LLVMValueRef a,
		     LLVMValueRef bp, LLVMValueRef k0, LLVMValueRef k1, int step, LLVMValueRef *acc,
		     LLVMValueRef *kout, LLVMTypeRef fmaty, LLVMValueRef fma, const char *name)
{
	int nacc = mr * nv;
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
	LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "kexit");
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, k0, k1, ""), body, exit);

	LLVMPositionBuilderAtEnd(c->b, body);
	LLVMValueRef kphi = LLVMBuildPhi(c->b, c->t_i64, "k");
	LLVMValueRef phi[MM_MAXACC], cur[MM_MAXACC];
	for (int i = 0; i < nacc; i++) {
		phi[i] = LLVMBuildPhi(c->b, mm_vt(c, p->vl), "acc");
		cur[i] = phi[i];
	}
	for (int s = 0; s < step; s++)
		mm_kstep(c, p, mr, nv, ncol, a, bp, mm_addk(c, kphi, s), cur, fmaty, fma);
	LLVMValueRef knext = mm_addk(c, kphi, step);
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, knext, k1, ""), body, exit);
	LLVMAddIncoming(kphi, &k0, &pre, 1);
	LLVMAddIncoming(kphi, &knext, &latch, 1);
	for (int i = 0; i < nacc; i++) {
		LLVMAddIncoming(phi[i], &acc[i], &pre, 1);
		LLVMAddIncoming(phi[i], &cur[i], &latch, 1);
	}

	LLVMPositionBuilderAtEnd(c->b, exit);
	LLVMValueRef kx = LLVMBuildPhi(c->b, c->t_i64, "k");
	LLVMAddIncoming(kx, &k0, &pre, 1);
	LLVMAddIncoming(kx, &knext, &latch, 1);
	*kout = kx;
	for (int i = 0; i < nacc; i++) {
		LLVMValueRef x = LLVMBuildPhi(c->b, mm_vt(c, p->vl), "acc");
		LLVMAddIncoming(x, &acc[i], &pre, 1);
		LLVMAddIncoming(x, &cur[i], &latch, 1);
		acc[i] = x;
	}
}

/* Ask for the C tile at pf (the next call's) to be brought into cache:
 * without it each call starts by waiting for its C rows from L3 or DRAM
 * (about 8% of the time at K = 3072, measured). One prefetch per line. */
static void mm_prefetch_tile(be_Ctx *c, const MMPlan *p, LLVMValueRef pf, int mr, int nv)
{
	LLVMTypeRef over = c->t_ptr, fty;
	LLVMValueRef fn = mm_intrinsic(c, "llvm.prefetch", &over, 1, &fty);
	int per_line = 16;   /* floats in a 64-byte line */
	for (int i = 0; i < mr; i++)
		for (int l = 0; l < nv * p->vl; l += per_line) {
			LLVMValueRef at = mm_at(c, pf, be_i64(c, i * p->N + l));
			LLVMValueRef a[4] = {LLVMBuildBitCast(c->b, at, c->t_ptr, ""),
					     LLVMConstInt(c->t_i32, 1, 0), LLVMConstInt(c->t_i32, 3, 0),
					     LLVMConstInt(c->t_i32, 1, 0)};
			mm_call(c, fty, fn, a, 4);
		}
}

/* micro(a, bp, cp, kc, first, pf): C[0..mr, 0..ncol) (+)= A[0..mr, 0..kc) @ Bp,
 * where a points at A(row0, k0), bp at a kc x NR panel (packed, or B itself
 * when direct_b) and cp at
 * C(row0, col0). first: start from zero instead of C (the first K block).
 * pf: the C tile the caller will work on next, to prefetch.
 * ncol < NR only for the last column panel: those C accesses are masked. */
static LLVMValueRef mm_micro(be_Ctx *c, const MMPlan *p, int mr, int ncol)
{
	int nv = (ncol + p->vl - 1) / p->vl;
	assert(mr * nv <= MM_MAXACC);
	char name[160];
	snprintf(name, sizeof name, "mm.micro.%dx%d.sa%lld.%lld.ldb%lld%s.ldc%lld.vl%d%s", mr, ncol,
		 (long long)p->sam, (long long)p->sak, (long long)p->ldp, p->direct_b ? "d" : "p",
		 (long long)p->N, p->vl, p->skip ? ".z" : "");
	LLVMTypeRef par[6] = {mm_fptr(c), mm_fptr(c), mm_fptr(c), c->t_i64, c->t_i1, mm_fptr(c)};
	LLVMTypeRef fty = LLVMFunctionType(c->t_void, par, 6, 0);
	int exists;
	LLVMValueRef fn = mm_helper(c, name, fty, &exists);
	if (exists)
		return fn;
	LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
	LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
	LLVMValueRef a = LLVMGetParam(fn, 0), bp = LLVMGetParam(fn, 1), cp = LLVMGetParam(fn, 2);
	LLVMValueRef kc = LLVMGetParam(fn, 3), first = LLVMGetParam(fn, 4);
	/* Only C is written, and it overlaps neither A nor B (plan_memory
	 * allocates an output before releasing its operands) nor Bp. */
	unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
	for (unsigned i = 1; i <= 3; i++)
		LLVMAddAttributeAtIndex(fn, i, LLVMCreateEnumAttribute(c->ctx, noalias, 0));

	LLVMTypeRef vt = mm_vt(c, p->vl), fmaty;
	LLVMValueRef fma = mm_intrinsic(c, c->has_fma ? "llvm.fma" : "llvm.fmuladd", &vt, 1, &fmaty);
	mm_prefetch_tile(c, p, LLVMGetParam(fn, 5), mr, nv);
	LLVMValueRef acc[MM_MAXACC];
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < nv; j++) {
			LLVMValueRef cij = mm_at(c, cp, be_i64(c, i * p->N + j * p->vl));
			LLVMValueRef old = mm_load(c, cij, p->vl, ncol - j * p->vl, 4);
			acc[i * nv + j] = LLVMBuildSelect(c->b, first, LLVMConstNull(vt), old, "");
		}
	/* Unrolled main loop, then single steps for kc % UNROLL. */
	LLVMValueRef kmain = LLVMBuildAnd(c->b, kc, be_i64(c, ~(int64_t)(MM_UNROLL - 1)), "");
	LLVMValueRef k;
	mm_kloop(c, p, mr, nv, ncol, a, bp, be_i64(c, 0), kmain, MM_UNROLL, acc, &k, fmaty, fma,
		 "kmain");
	mm_kloop(c, p, mr, nv, ncol, a, bp, k, kc, 1, acc, &k, fmaty, fma, "krem");
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < nv; j++) {
			LLVMValueRef cij = mm_at(c, cp, be_i64(c, i * p->N + j * p->vl));
			mm_store(c, acc[i * nv + j], cij, p->vl, ncol - j * p->vl, 4);
		}
	LLVMBuildRetVoid(c->b);
	LLVMPositionBuilderAtEnd(c->b, saved);
	return fn;
}

/* ---- packing B ---- */

/* Bp[q][k][0..NR) = B(k0 + k, n0 + q*NR + 0..NR) for panels q in [0, npan),
 * k in [0, kc); columns at or past `ncol` (only in the last panel) are zero. */
static void mm_pack_plain(be_Ctx *c, const MMPlan *p, LLVMValueRef b, LLVMValueRef bp,
			  LLVMValueRef k0, LLVMValueRef kc, LLVMValueRef n0, LLVMValueRef q0,
			  LLVMValueRef q1, int ncol)
{
	MMLoop lq, lk;
	mm_loop_begin(c, &lq, q0, q1, "packq");
	LLVMValueRef n = mm_add(c, n0, mm_mulk(c, lq.i, p->nr));
	LLVMValueRef src = mm_at(c, b, mm_add(c, mm_mulk(c, k0, p->N), n));
	LLVMValueRef dst = mm_at(c, bp, mm_mul(c, lq.i, mm_mulk(c, kc, p->nr)));
	mm_loop_begin(c, &lk, be_i64(c, 0), kc, "packk");
	LLVMValueRef s = mm_at(c, src, mm_mulk(c, lk.i, p->N));
	LLVMValueRef t = mm_at(c, dst, mm_mulk(c, lk.i, p->nr));
	for (int j = 0; j < p->nv; j++) {
		LLVMValueRef v = mm_load(c, mm_at(c, s, be_i64(c, j * p->vl)), p->vl, ncol - j * p->vl, 4);
		mm_store(c, v, mm_at(c, t, be_i64(c, j * p->vl)), p->vl, p->vl, mm_valign(p));
	}
	mm_loop_end(c, &lk, be_i64(c, 1));
	mm_loop_end(c, &lq, be_i64(c, 1));
}

/* Transpose a vl x vl tile held in vl vectors, in log2(vl) rounds: round h
 * swaps the off-diagonal h x h blocks of every 2h x 2h block, one two-input
 * shuffle per row (a vpermt2ps each with AVX-512). */
static void mm_transpose(be_Ctx *c, LLVMValueRef *row, int vl)
{
	for (int h = vl / 2; h >= 1; h /= 2) {
		LLVMValueRef lo[16], hi[16];
		for (int l = 0; l < vl; l++) {
			/* lanes 0..vl-1 name row r, vl..2vl-1 row r+h */
			lo[l] = LLVMConstInt(c->t_i32, (unsigned)(l & h ? vl + l - h : l), 0);
			hi[l] = LLVMConstInt(c->t_i32, (unsigned)(l & h ? vl + l : l + h), 0);
		}
		LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)vl), mhi = LLVMConstVector(hi, (unsigned)vl);
		for (int r = 0; r < vl; r++) {
			if (r & h)
				continue;
			LLVMValueRef x = row[r], y = row[r + h];
			row[r] = LLVMBuildShuffleVector(c->b, x, y, mlo, "");
			row[r + h] = LLVMBuildShuffleVector(c->b, x, y, mhi, "");
		}
	}
}

/* The same from B stored [N, K]: B(k, n) at n*K + k, so a column of a
 * panel is a row of B. Columns go in groups of vl (group g is vector g % NV
 * of panel g / NV): vl rows of B are read as vl x vl tiles, transposed in
 * registers and stored as vl panel rows; the last kc % vl values of k go one
 * panel row (vl scalars) at a time. Rows past ncur (the edge panel's
 * padding) read row n0, which exists, and are replaced by zeros. The group
 * loop is a run-time loop, so the transpose is emitted once. */
static void mm_pack_trans(be_Ctx *c, const MMPlan *p, LLVMValueRef b, LLVMValueRef bp,
			  LLVMValueRef k0, LLVMValueRef kc, LLVMValueRef n0, LLVMValueRef ncur)
{
	int vl = p->vl;
	LLVMTypeRef vt = mm_vt(c, vl);
	LLVMValueRef zero = LLVMConstNull(vt);
	LLVMValueRef npan = LLVMBuildSDiv(c->b, mm_addk(c, ncur, p->nr - 1), be_i64(c, p->nr), "");
	LLVMValueRef kv = LLVMBuildAnd(c->b, kc, be_i64(c, ~(int64_t)(vl - 1)), "");
	MMLoop lg, lk, lt;
	mm_loop_begin(c, &lg, be_i64(c, 0), mm_mulk(c, npan, p->nv), "packg");
	LLVMValueRef q = LLVMBuildSDiv(c->b, lg.i, be_i64(c, p->nv), "");
	LLVMValueRef j = LLVMBuildSRem(c->b, lg.i, be_i64(c, p->nv), "");
	LLVMValueRef dst = mm_at(c, bp, mm_add(c, mm_mul(c, q, mm_mulk(c, kc, p->nr)), mm_mulk(c, j, vl)));
	LLVMValueRef src[16], ok[16];
	for (int r = 0; r < vl; r++) {
		LLVMValueRef col = mm_addk(c, mm_mulk(c, lg.i, vl), r);
		ok[r] = LLVMBuildICmp(c->b, LLVMIntSLT, col, ncur, "");
		LLVMValueRef n = LLVMBuildSelect(c->b, ok[r], mm_add(c, n0, col), n0, "");
		src[r] = mm_at(c, b, mm_add(c, mm_mulk(c, n, p->K), k0));
	}
	mm_loop_begin(c, &lk, be_i64(c, 0), kv, "packk");
	LLVMValueRef row[16];
	for (int r = 0; r < vl; r++)
		row[r] = LLVMBuildSelect(c->b, ok[r], mm_load(c, mm_at(c, src[r], lk.i), vl, vl, 4),
					 zero, "");
	mm_transpose(c, row, vl);
	for (int r = 0; r < vl; r++) {
		LLVMValueRef at = mm_mulk(c, mm_addk(c, lk.i, r), p->nr);
		mm_store(c, row[r], mm_at(c, dst, at), vl, vl, mm_valign(p));
	}
	mm_loop_end(c, &lk, be_i64(c, vl));
	mm_loop_begin(c, &lt, kv, kc, "packt");
	LLVMValueRef v = zero;
	for (int r = 0; r < vl; r++) {
		LLVMValueRef x = LLVMBuildLoad2(c->b, c->t_f32, mm_at(c, src[r], lt.i), "");
		LLVMSetAlignment(x, 4);
		x = LLVMBuildSelect(c->b, ok[r], x, LLVMConstReal(c->t_f32, 0), "");
		v = LLVMBuildInsertElement(c->b, v, x, LLVMConstInt(c->t_i32, (unsigned)r, 0), "");
	}
	mm_store(c, v, mm_at(c, dst, mm_mulk(c, lt.i, p->nr)), vl, vl, mm_valign(p));
	mm_loop_end(c, &lt, be_i64(c, 1));
	mm_loop_end(c, &lg, be_i64(c, 1));
}

/* ---- the block: rows [r0, r1) x columns [c0, c1) of one batch ---- */

/* All row tiles of one K block against panels [0, nfull) (+ the edge panel). */
static void mm_rows(be_Ctx *c, const MMPlan *p, LLVMValueRef a, LLVMValueRef bp, LLVMValueRef cm,
		    LLVMValueRef ir, int mr, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc,
		    LLVMValueRef nfull, LLVMValueRef has_edge, LLVMValueRef first)
{
	LLVMValueRef ap = mm_at(c, a, mm_add(c, mm_mulk(c, ir, p->sam), mm_mulk(c, pc, p->sak)));
	LLVMValueRef crow = mm_at(c, cm, mm_add(c, mm_mulk(c, ir, p->N), jc));
	LLVMValueRef panel = p->direct_b ? be_i64(c, p->nr) : mm_mulk(c, kc, p->nr);
	LLVMValueRef full = mm_micro(c, p, mr, p->nr);
	LLVMTypeRef fty = LLVMGlobalGetValueType(full);
	/* the tile after the last panel of these rows: the next rows' first */
	LLVMValueRef crow_next = mm_at(c, crow, be_i64(c, mr * p->N));
	MMLoop lq;
	mm_loop_begin(c, &lq, be_i64(c, 0), nfull, "jr");
	LLVMValueRef q1 = mm_addk(c, lq.i, 1);
	LLVMValueRef more = LLVMBuildICmp(c->b, LLVMIntSLT, q1, nfull, "");
	LLVMValueRef pf = LLVMBuildSelect(c->b, more, mm_at(c, crow, mm_mulk(c, q1, p->nr)),
					  crow_next, "");
	LLVMValueRef args[6] = {ap, mm_at(c, bp, mm_mul(c, lq.i, panel)),
				mm_at(c, crow, mm_mulk(c, lq.i, p->nr)), kc, first, pf};
	LLVMSetInstructionCallConv(mm_call(c, fty, full, args, 6), LLVMFastCallConv);
	mm_loop_end(c, &lq, be_i64(c, 1));
	int ne = (int)(p->N % p->nr);
	if (!ne)
		return;
	LLVMValueRef edge = mm_micro(c, p, mr, ne);
	LLVMBasicBlockRef join = be_if_begin(c, has_edge);
	args[1] = mm_at(c, bp, mm_mul(c, nfull, panel));
	args[2] = mm_at(c, crow, mm_mulk(c, nfull, p->nr));
	args[5] = crow_next;
	LLVMSetInstructionCallConv(mm_call(c, fty, edge, args, 6), LLVMFastCallConv);
	be_if_end(c, join);
}

/* The name says everything the block's code depends on, so the same
 * projection in every layer of a model shares one block. */
static LLVMValueRef mm_block(be_Ctx *c, const MMPlan *p)
{
	char name[200];
	snprintf(name, sizeof name, "mm.block.%lldx%lldx%lld.sa%lld.%lld.%s.%dx%d.vl%d.kc%lld.nc%lld%s",
		 (long long)p->M, (long long)p->K, (long long)p->N, (long long)p->sam,
		 (long long)p->sak, p->direct_b ? "d" : p->trans_b ? "t" : "p", p->mr, p->nv, p->vl,
		 (long long)p->kc, (long long)p->nc, p->skip ? ".z" : "");
	LLVMTypeRef par[7] = {mm_fptr(c), mm_fptr(c), mm_fptr(c), c->t_i64, c->t_i64, c->t_i64,
			      c->t_i64};
	LLVMTypeRef fty = LLVMFunctionType(c->t_void, par, 7, 0);
	int exists;
	LLVMValueRef fn = mm_helper(c, name, fty, &exists);
	if (exists)
		return fn;
	LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
	LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
	LLVMValueRef a = LLVMGetParam(fn, 0), b = LLVMGetParam(fn, 1), cm = LLVMGetParam(fn, 2);
	LLVMValueRef r0 = LLVMGetParam(fn, 3), r1 = LLVMGetParam(fn, 4);
	LLVMValueRef c0 = LLVMGetParam(fn, 5), c1 = LLVMGetParam(fn, 6);

	LLVMValueRef bp = NULL;
	if (!p->direct_b) {
		LLVMTypeRef bpty = LLVMArrayType(c->t_f32, (unsigned)(p->kc * p->nc));
		LLVMValueRef bpa = LLVMBuildAlloca(c->b, bpty, "Bp");
		LLVMSetAlignment(bpa, 64);
		bp = LLVMBuildBitCast(c->b, bpa, mm_fptr(c), "");
	}
	int ne = (int)(p->N % p->nr), me = (int)(p->M % p->mr);

	MMLoop ljc, lpc, lir;
	mm_loop_begin(c, &ljc, c0, c1, "jc");
	LLVMValueRef jc = ljc.i;
	LLVMValueRef ncur = be_min64(c, be_i64(c, p->nc), mm_sub(c, c1, jc));
	LLVMValueRef nfull = LLVMBuildSDiv(c->b, ncur, be_i64(c, p->nr), "");
	LLVMValueRef has_edge = LLVMConstInt(c->t_i1, 0, 0);
	if (ne)
		has_edge = LLVMBuildICmp(c->b, LLVMIntSGT, ncur, mm_mulk(c, nfull, p->nr), "");
	mm_loop_begin(c, &lpc, be_i64(c, 0), be_i64(c, p->K), "pc");
	LLVMValueRef pc = lpc.i;
	LLVMValueRef kc = be_min64(c, be_i64(c, p->kc), mm_sub(c, be_i64(c, p->K), pc));
	LLVMValueRef panels = bp;
	if (p->direct_b) {
		panels = mm_at(c, b, mm_add(c, mm_mulk(c, pc, p->N), jc));
	} else if (p->trans_b) {
		mm_pack_trans(c, p, b, bp, pc, kc, jc, ncur);
	} else {
		mm_pack_plain(c, p, b, bp, pc, kc, jc, be_i64(c, 0), nfull, p->nr);
		if (ne) {
			LLVMBasicBlockRef join = be_if_begin(c, has_edge);
			mm_pack_plain(c, p, b, bp, pc, kc, jc, nfull, mm_addk(c, nfull, 1), ne);
			be_if_end(c, join);
		}
	}
	LLVMValueRef first = LLVMBuildICmp(c->b, LLVMIntEQ, pc, be_i64(c, 0), "");
	LLVMValueRef nrow = mm_sub(c, r1, r0);
	LLVMValueRef ntile = LLVMBuildSDiv(c->b, nrow, be_i64(c, p->mr), "");
	LLVMValueRef rfull = mm_add(c, r0, mm_mulk(c, ntile, p->mr));
	mm_loop_begin(c, &lir, r0, rfull, "ir");
	mm_rows(c, p, a, panels, cm, lir.i, p->mr, pc, kc, jc, nfull, has_edge, first);
	mm_loop_end(c, &lir, be_i64(c, p->mr));
	if (me) {
		LLVMBasicBlockRef join = be_if_begin(c, LLVMBuildICmp(c->b, LLVMIntSLT, rfull, r1, ""));
		mm_rows(c, p, a, panels, cm, rfull, me, pc, kc, jc, nfull, has_edge, first);
		be_if_end(c, join);
	}
	mm_loop_end(c, &lpc, be_i64(c, p->kc));
	mm_loop_end(c, &ljc, be_i64(c, p->nc));
	LLVMBuildRetVoid(c->b);
	LLVMPositionBuilderAtEnd(c->b, saved);
	return fn;
}

/* ---- planning ---- */

static int64_t mm_cdiv(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* Element strides of a contiguous shape's dims. */
static void mm_strides(const Shape *s, int64_t *st)
{
	int64_t x = 1;
	for (int i = s->rank - 1; i >= 0; i--) {
		st[i] = x;
		x *= s->dim[i];
	}
}

static void mm_plan(be_Ctx *c, const Shape *sa, const Shape *sb, const Shape *sc, unsigned flags,
		    MMPlan *p)
{
	memset(p, 0, sizeof *p);
	int r = sc->rank, ta = !!(flags & NF_TRANS_A);
	p->M = sc->dim[r - 2];
	p->N = sc->dim[r - 1];
	p->K = ta ? sa->dim[sa->rank - 2] : sa->dim[sa->rank - 1];
	p->trans_b = !!(flags & NF_TRANS_B);
	p->skip = !!(flags & NF_SKIPZEROS);
	p->sam = ta ? 1 : p->K;
	p->sak = ta ? p->M : 1;
	int64_t sta[IR_MAX_RANK], stb[IR_MAX_RANK];
	mm_strides(sa, sta);
	mm_strides(sb, stb);
	int64_t na = 1, nbb = 1;
	p->nbatch = 1;
	for (int d = 0; d < r - 2; d++) {
		int da = d - (r - sa->rank), db = d - (r - sb->rank);
		p->bdim[d] = sc->dim[d];
		p->bsa[d] = da >= 0 && sa->dim[da] != 1 ? sta[da] : 0;
		p->bsb[d] = db >= 0 && sb->dim[db] != 1 ? stb[db] : 0;
		na *= da >= 0 ? sa->dim[da] : 1;
		nbb *= db >= 0 ? sb->dim[db] : 1;
		p->nbatch *= sc->dim[d];
	}
	p->nbdim = r - 2;
	/* One big GEMM when B is shared by every batch and A's rows run on. */
	if (nbb == 1 && !ta && na == p->nbatch) {
		p->M *= p->nbatch;
		p->nbatch = 1;
		p->nbdim = 0;
	}
	p->vl = c->vec_lanes >= 16 ? 16 : c->vec_lanes >= 8 ? 8 : 4;
	/* 6 x 4 vectors fills 24 of 32 zmm with accumulators; narrow outputs
	 * (attention heads, N < 64) trade columns for rows to keep as many
	 * FMAs in flight. AVX2's 16 ymm registers hold 6 x 2. */
	int64_t nvec = mm_cdiv(p->N, p->vl);
	p->nv = p->vl == 16 ? 4 : 2;
	p->mr = 6;
	if (p->vl == 16 && nvec < 4) {
		static const int mr_of_nv[4] = {0, 16, 12, 8};
		p->nv = (int)nvec;
		p->mr = mr_of_nv[nvec];
	}
	p->nr = p->nv * p->vl;
	/* A transposed is read as 6 floats from each of kc rows, a cache line
	 * per k: a shorter K block keeps that sliver inside L1. */
	int64_t kcmax = ta ? MM_KC_TRANS_A : MM_KC;
	p->kc = p->K < kcmax ? p->K : kcmax;
	/* With at most one row tile per block a packed panel would be read
	 * once: packing would only add a copy to a memory-bound product
	 * (M = 1 in generation), so B is read where it lies. */
	p->direct_b = !p->trans_b && p->M <= p->mr;
	p->ldp = p->direct_b ? p->N : p->nr;
	p->nc = mm_cdiv(p->N, p->nr) * p->nr;
	if (p->nc > MM_NC)
		p->nc = MM_NC / p->nr * p->nr;
	/* Tasks: MR rows of one column block (NC wide) of one batch. Splitting
	 * columns costs nothing, since A is read once per column block anyway,
	 * and spares threads from packing the same panels of B: two threads
	 * each pack half of B instead of all of it. With few rows, narrower
	 * column blocks make enough tasks to go round. */
	p->nmt = mm_cdiv(p->M, p->mr);
	int64_t npan = mm_cdiv(p->N, p->nr), per = p->nc / p->nr;
	if (p->nbatch * p->nmt * mm_cdiv(npan, per) < MM_MIN_TASKS) {
		int64_t want = mm_cdiv(MM_MIN_TASKS, p->nbatch * p->nmt);
		per = mm_cdiv(npan, want < npan ? want : npan);
	}
	p->nt = per * p->nr;
	p->nnb = mm_cdiv(p->N, p->nt);
	p->ntask = p->nbatch * p->nnb * p->nmt;
}

/* ---- the kernel: tasks to blocks ---- */

/* Offset (elements) of batch b's A or B, from b's index in C's batch dims. */
static LLVMValueRef mm_batch_off(be_Ctx *c, const MMPlan *p, LLVMValueRef b, const int64_t *st)
{
	LLVMValueRef off = be_i64(c, 0);
	for (int d = p->nbdim - 1; d >= 0; d--) {
		LLVMValueRef idx = LLVMBuildURem(c->b, b, be_i64(c, p->bdim[d]), "");
		b = LLVMBuildUDiv(c->b, b, be_i64(c, p->bdim[d]), "");
		if (st[d])
			off = mm_add(c, off, mm_mulk(c, idx, st[d]));
	}
	return off;
}

int be_emit_matmul(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *n = ir_node(g, v);
	const Node *na = ir_node(g, ir_operand(g, n, 0)), *nb = ir_node(g, ir_operand(g, n, 1));
	if (n->dtype != DT_F32 || na->dtype != DT_F32 || nb->dtype != DT_F32)
		return diag_error(d, n->loc, "matmul: only f32 is supported by the backend");
	if (n->shape.rank < 2 || na->shape.rank < 2 || nb->shape.rank < 2)
		return diag_error(d, n->loc, "matmul: operands must have rank >= 2");
	MMPlan p;
	mm_plan(c, &na->shape, &nb->shape, &n->shape, n->flags, &p);
	k->flops = 2.0 * (double)p.nbatch * (double)p.M * (double)p.N * (double)p.K;
	k->ntask = p.ntask;

	char kname[64];
	be_kernel_name(g, v, kname, sizeof kname);
	LLVMValueRef buf, lo, hi;
	LLVMValueRef fn = be_kernel_begin(c, kname, &buf, &lo, &hi);
	k->fn = fn;
	LLVMBasicBlockRef entry = LLVMGetInsertBlock(c->b);
	LLVMValueRef C = LLVMBuildBitCast(c->b, be_kernel_arg(c, buf, 0, c->t_f32), mm_fptr(c), "C");
	LLVMValueRef A = LLVMBuildBitCast(c->b, be_kernel_arg(c, buf, 1, c->t_f32), mm_fptr(c), "A");
	LLVMValueRef B = LLVMBuildBitCast(c->b, be_kernel_arg(c, buf, 2, c->t_f32), mm_fptr(c), "B");
	if (p.M == 0 || p.N == 0 || p.ntask == 0) {
		LLVMBuildRetVoid(c->b);
		return 0;
	}
	if (p.K == 0) {
		/* nothing to reduce: C is zero; one task does it all */
		k->ntask = 1;
		LLVMBasicBlockRef join = be_if_begin(c, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""));
		LLVMValueRef i8p = LLVMBuildBitCast(c->b, C, c->t_ptr, "");
		LLVMBuildMemSet(c->b, i8p, LLVMConstInt(c->t_i8, 0, 0),
				be_i64(c, p.nbatch * p.M * p.N * 4), 4);
		be_if_end(c, join);
		LLVMBuildRetVoid(c->b);
		return 0;
	}
	LLVMValueRef block = mm_block(c, &p);
	LLVMPositionBuilderAtEnd(c->b, entry);

	/* t in [lo, hi): task t is (batch, column block, row tile), row tile
	 * fastest, so a call's tasks form runs of row tiles sharing packed B. */
	MMLoop lt;
	mm_loop_begin(c, &lt, lo, hi, "task");
	LLVMValueRef t = lt.i;
	LLVMValueRef bj = LLVMBuildUDiv(c->b, t, be_i64(c, p.nmt), "");
	LLVMValueRef i0 = LLVMBuildURem(c->b, t, be_i64(c, p.nmt), "");
	LLVMValueRef tend = be_min64(c, hi, mm_mulk(c, mm_addk(c, bj, 1), p.nmt));
	LLVMValueRef bi = LLVMBuildUDiv(c->b, bj, be_i64(c, p.nnb), "");
	LLVMValueRef j = LLVMBuildURem(c->b, bj, be_i64(c, p.nnb), "");
	LLVMValueRef r0 = mm_mulk(c, i0, p.mr);
	LLVMValueRef i1 = mm_add(c, i0, mm_sub(c, tend, t));
	LLVMValueRef r1 = be_min64(c, be_i64(c, p.M), mm_mulk(c, i1, p.mr));
	LLVMValueRef c0 = mm_mulk(c, j, p.nt);
	LLVMValueRef c1 = be_min64(c, be_i64(c, p.N), mm_addk(c, c0, p.nt));
	LLVMValueRef Ab = A, Bb = B, Cb = C;
	if (p.nbdim) {
		Ab = mm_at(c, A, mm_batch_off(c, &p, bi, p.bsa));
		Bb = mm_at(c, B, mm_batch_off(c, &p, bi, p.bsb));
		Cb = mm_at(c, C, mm_mulk(c, bi, p.M * p.N));
	}
	LLVMValueRef args[7] = {Ab, Bb, Cb, r0, r1, c0, c1};
	LLVMSetInstructionCallConv(mm_call(c, LLVMGlobalGetValueType(block), block, args, 7),
				   LLVMFastCallConv);
	/* the loop steps to tend, not t+1: mm_loop_end adds a step to t */
	mm_loop_end(c, &lt, mm_sub(c, tend, t));
	LLVMBuildRetVoid(c->b);
	return 0;
}

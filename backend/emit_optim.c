/* emit_optim.c: the kernels of the optimiser update (ops.h): sumsq,
 * grad_norm, adamw and adamw_masked, which passes/optimize.c appends to a
 * training graph and plan_memory places like every other node.
 *
 *   sumsq g       tasks are the chunks of IR_SUMSQ_CHUNK elements, each
 *                 writing the f64 sum of its squares to its own partial
 *                 (vector f64 accumulators, fixed order);
 *   grad_norm     one task: the partials of every operand in order, sqrt,
 *                 into hp[IR_HP_GRAD_NORM] (f32); the clip factor
 *                 min(1, clip / (norm + 1e-6)) when hp[IR_HP_CLIP] > 0,
 *                 else 1 (torch.nn.utils.clip_grad_norm_), as the output;
 *   adamw         elementwise over whole vectors per task, in f32,
 *                 torch.optim.AdamW (foreach=False, amsgrad=False):
 *                   g = grad * clip
 *                   p = p * (1 - lr * wd)              only with NF_DECAY
 *                   m = beta1 * m + (1 - beta1) * g
 *                   v = beta2 * v + (1 - beta2) * g * g
 *                   p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *                 with lr, betas, eps, wd and the bias corrections
 *                 bc1 = 1 - beta1^t, bc2 = 1 - beta2^t read from hp, which
 *                 the trainer writes before every step; p, m and v are
 *                 written in place.
 *   adamw_masked  the same, then p, m and v are stored as 0 where the mask
 *                 is 0, so a pruned weight and its moments are exactly zero
 *                 after every step whatever they held before (weights
 *                 loaded dense, weight decay, moments from a dense run),
 *                 not only because its gradient is zero.
 * The arithmetic, its order and the f64 chunking are exactly those of the
 * update phase this file built by hand before the update was IR, so
 * training gives the same bits (tests/e2e/test_train_bitwise.c). Every
 * result depends on the data alone, never on the task split. Gradients
 * are only read. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

enum { OPT_UNROLL = 2 };

/* ---- kernels ---- */

static LLVMTypeRef f64t(be_Ctx *c)
{
	return LLVMDoubleTypeInContext(c->ctx);
}

/* sum of x[i]^2 in f64 for i in [from, to): OPT_UNROLL vector accumulators
 * side by side, combined in a fixed order, then the scalar tail. */
static LLVMValueRef sumsq(be_Ctx *c, LLVMValueRef x, LLVMValueRef from, LLVMValueRef to)
{
	int L = c->vec_lanes;
	LLVMTypeRef vd = be_vtype(c, f64t(c), L);
	LLVMValueRef acc[OPT_UNROLL];
	for (int u = 0; u < OPT_UNROLL; u++)
		acc[u] = be_local(c, vd, LLVMConstNull(vd));
	int64_t w = (int64_t)L * OPT_UNROLL;
	LLVMValueRef len = LLVMBuildNSWSub(c->b, to, from, "");
	LLVMValueRef mid = LLVMBuildNSWAdd(c->b, from, LLVMBuildAnd(c->b, len, be_i64(c, -w), ""), "");
	be_Loop l;
	LLVMValueRef i = be_loop_begin(c, &l, from, mid, w);
	for (int u = 0; u < OPT_UNROLL; u++) {
		LLVMValueRef e = be_load(c, c->t_f32, x, LLVMBuildNSWAdd(c->b, i, be_i64(c, u * L), ""), L);
		e = LLVMBuildFPExt(c->b, e, vd, "");
		be_set(c, acc[u], be_fma(c, e, e, be_get(c, vd, acc[u]), L));
	}
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMValueRef a = be_get(c, vd, acc[0]);
	for (int u = 1; u < OPT_UNROLL; u++)
		a = LLVMBuildFAdd(c->b, a, be_get(c, vd, acc[u]), "");
	LLVMValueRef s = be_local(c, f64t(c), be_hsum(c, a, L));
	i = be_loop_begin(c, &l, mid, to, 1);
	LLVMValueRef e = LLVMBuildFPExt(c->b, be_load(c, c->t_f32, x, i, 1), f64t(c), "");
	be_set(c, s, be_fma(c, e, e, be_get(c, f64t(c), s), 1));
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	return be_get(c, f64t(c), s);
}

/* buf: [0] partials (f64, one per chunk), [1] the gradient (n floats). */
static void emit_sumsq(be_Ctx *c, const char *name, int64_t n, be_Kernel *k)
{
	LLVMValueRef buf, lo, hi, u0, u1;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = (n + IR_SUMSQ_CHUNK - 1) / IR_SUMSQ_CHUNK;
	k->flops = 2.0 * (double)n;
	LLVMValueRef part = be_kernel_arg(c, buf, 0, f64t(c)), x = be_kernel_arg(c, buf, 1, c->t_f32);
	be_Loop l;
	LLVMValueRef t = be_loop_begin(c, &l, lo, hi, 1);
	be_task_units(c, t, LLVMBuildNSWAdd(c->b, t, be_i64(c, 1), ""), IR_SUMSQ_CHUNK, n, &u0, &u1);
	be_store(c, sumsq(c, x, u0, u1), f64t(c), part, t, 1);
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMBuildRetVoid(c->b);
}

static LLVMValueRef hparam(be_Ctx *c, LLVMValueRef hp, IrHParam i)
{
	return be_load(c, c->t_f32, hp, be_i64(c, i), 1);
}

/* buf: [0] the clip factor (f32[]), [1] hp (writes IR_HP_GRAD_NORM), [2..]
 * the partials of each sumsq operand in turn: one running f64 sum over all
 * of them in order, exactly one loop over one array of them would give. */
static void emit_norm(be_Ctx *c, const Graph *g, ValId v, const char *name, be_Kernel *k)
{
	const Node *nd = ir_node(g, v);
	LLVMValueRef buf, lo, hi;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = 1;
	k->flops = 0;
	LLVMTypeRef f64 = f64t(c);
	LLVMValueRef clip = be_kernel_arg(c, buf, 0, c->t_f32), hp = be_kernel_arg(c, buf, 1, c->t_f32);
	LLVMBasicBlockRef skip = be_if_begin(c, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""));
	LLVMValueRef s = be_local(c, f64, LLVMConstReal(f64, 0));
	for (uint32_t a = 1; a < nd->narg; a++) {
		int64_t npart = ir_node(g, ir_operand(g, nd, a))->shape.dim[0];
		LLVMValueRef part = be_kernel_arg(c, buf, (int)a + 1, f64);
		k->flops += (double)npart;
		be_Loop l;
		LLVMValueRef i = be_loop_begin(c, &l, be_i64(c, 0), be_i64(c, npart), 1);
		be_set(c, s, LLVMBuildFAdd(c->b, be_get(c, f64, s), be_load(c, f64, part, i, 1), ""));
		be_loop_end(c, &l);
		be_loop_scalar(c, &l);
	}
	LLVMValueRef sum = be_get(c, f64, s);
	LLVMValueRef norm = be_intrin(c, "llvm.sqrt", f64, &sum, 1);
	be_store(c, LLVMBuildFPTrunc(c->b, norm, c->t_f32, ""), c->t_f32, hp,
		 be_i64(c, IR_HP_GRAD_NORM), 1);
	LLVMValueRef maxn = LLVMBuildFPExt(c->b, hparam(c, hp, IR_HP_CLIP), f64, "");
	LLVMValueRef coef = LLVMBuildFDiv(c->b, maxn,
					  LLVMBuildFAdd(c->b, norm, LLVMConstReal(f64, 1e-6), ""), "");
	LLVMValueRef one = LLVMConstReal(f64, 1.0);
	/* coef < 1 is false for NaN: a NaN norm leaves the gradients alone
	 * (and the NaN shows in hparams) rather than wiping the weights */
	coef = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, coef, one, ""), coef, one, "");
	LLVMValueRef on = LLVMBuildFCmp(c->b, LLVMRealOGT, maxn, LLVMConstReal(f64, 0), "");
	coef = LLVMBuildSelect(c->b, on, coef, one, "");
	be_store(c, LLVMBuildFPTrunc(c->b, coef, c->t_f32, ""), c->t_f32, clip, be_i64(c, 0), 1);
	be_if_end(c, skip);
	LLVMBuildRetVoid(c->b);
}

typedef struct Adam {
	LLVMValueRef p, g, m, v, mask;   /* pointers (mask: NULL for dense params) */
	LLVMValueRef clip, b1, omb1, b2, omb2, eps, decay, step, sbc2;   /* scalars */
	bool decays;
} Adam;

static void adam_body(be_Ctx *c, const Adam *a, LLVMValueRef i, int n)
{
	LLVMBuilderRef b = c->b;
#define S(x) be_splat(c, (x), n)
	LLVMValueRef g = LLVMBuildFMul(b, be_load(c, c->t_f32, a->g, i, n), S(a->clip), "g");
	LLVMValueRef p = be_load(c, c->t_f32, a->p, i, n);
	if (a->decays)
		p = LLVMBuildFMul(b, p, S(a->decay), "");
	LLVMValueRef m = LLVMBuildFAdd(b, LLVMBuildFMul(b, S(a->b1), be_load(c, c->t_f32, a->m, i, n), ""),
				       LLVMBuildFMul(b, S(a->omb1), g, ""), "m");
	LLVMValueRef gg = LLVMBuildFMul(b, g, g, "");
	LLVMValueRef v = LLVMBuildFAdd(b, LLVMBuildFMul(b, S(a->b2), be_load(c, c->t_f32, a->v, i, n), ""),
				       LLVMBuildFMul(b, S(a->omb2), gg, ""), "v");
	LLVMValueRef sq = be_intrin(c, "llvm.sqrt", LLVMTypeOf(v), &v, 1);
	LLVMValueRef denom = LLVMBuildFAdd(b, LLVMBuildFDiv(b, sq, S(a->sbc2), ""), S(a->eps), "denom");
	LLVMValueRef upd = LLVMBuildFMul(b, S(a->step), LLVMBuildFDiv(b, m, denom, ""), "");
	p = LLVMBuildFSub(b, p, upd, "");
	if (a->mask) {   /* a select, not a product: 0 * NaN would be NaN */
		LLVMValueRef keep = LLVMBuildFCmp(b, LLVMRealONE, be_load(c, c->t_f32, a->mask, i, n),
						  S(be_f32c(c, 0.0)), "keep");
		LLVMValueRef zero = S(be_f32c(c, 0.0));
		p = LLVMBuildSelect(b, keep, p, zero, "");
		m = LLVMBuildSelect(b, keep, m, zero, "");
		v = LLVMBuildSelect(b, keep, v, zero, "");
	}
	be_store(c, p, c->t_f32, a->p, i, n);
	be_store(c, m, c->t_f32, a->m, i, n);
	be_store(c, v, c->t_f32, a->v, i, n);
#undef S
}

/* buf: [0] the result, which aliases [1] the param (updated in place
 * through [1]), [2] grad, [3] exp_avg, [4] exp_avg_sq (both in place),
 * [5] hp, [6] the clip factor, and when masked [7] the mask (f32 0/1). */
static void emit_adamw(be_Ctx *c, const char *name, int64_t n, bool decays, bool masked,
		       be_Kernel *k)
{
	int L = c->vec_lanes;
	int64_t per;
	LLVMValueRef buf, lo, hi, s, e;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->flops = 12.0 * (double)n;
	be_split(n, 12, &per, &k->ntask);
	if (k->ntask > 1) {   /* whole vectors per task */
		per = (per + L - 1) / L * L;
		k->ntask = (n + per - 1) / per;
	}
	Adam a = {.decays = decays};
	a.p = be_kernel_arg(c, buf, 1, c->t_f32);
	a.g = be_kernel_arg(c, buf, 2, c->t_f32);
	a.m = be_kernel_arg(c, buf, 3, c->t_f32);
	a.v = be_kernel_arg(c, buf, 4, c->t_f32);
	a.mask = masked ? be_kernel_arg(c, buf, 7, c->t_f32) : NULL;
	LLVMValueRef hp = be_kernel_arg(c, buf, 5, c->t_f32);
	a.clip = be_load(c, c->t_f32, be_kernel_arg(c, buf, 6, c->t_f32), be_i64(c, 0), 1);
	LLVMValueRef one = be_f32c(c, 1.0), lr = hparam(c, hp, IR_HP_LR);
	a.b1 = hparam(c, hp, IR_HP_BETA1);
	a.b2 = hparam(c, hp, IR_HP_BETA2);
	a.omb1 = LLVMBuildFSub(c->b, one, a.b1, "");
	a.omb2 = LLVMBuildFSub(c->b, one, a.b2, "");
	a.eps = hparam(c, hp, IR_HP_EPS);
	a.decay = LLVMBuildFSub(c->b, one, LLVMBuildFMul(c->b, lr, hparam(c, hp, IR_HP_WEIGHT_DECAY), ""), "");
	a.step = LLVMBuildFDiv(c->b, lr, hparam(c, hp, IR_HP_BIAS_CORR1), "step");
	LLVMValueRef bc2 = hparam(c, hp, IR_HP_BIAS_CORR2);
	a.sbc2 = be_intrin(c, "llvm.sqrt", c->t_f32, &bc2, 1);
	be_task_units(c, lo, hi, per, n, &s, &e);
	LLVMValueRef mid = LLVMBuildNSWAdd(c->b, s, LLVMBuildAnd(c->b, LLVMBuildNSWSub(c->b, e, s, ""),
								 be_i64(c, -(int64_t)L), ""), "");
	be_Loop lv, ls;
	LLVMValueRef i = be_loop_begin(c, &lv, s, mid, L);
	adam_body(c, &a, i, L);
	be_loop_end(c, &lv);
	be_loop_scalar(c, &lv);
	i = be_loop_begin(c, &ls, mid, e, 1);
	adam_body(c, &a, i, 1);
	be_loop_end(c, &ls);
	be_loop_scalar(c, &ls);
	LLVMBuildRetVoid(c->b);
}


static_assert((int)IR_HP_LR == (int)RT_HP_LR && (int)IR_HP_BETA1 == (int)RT_HP_BETA1 &&
	      (int)IR_HP_BETA2 == (int)RT_HP_BETA2 && (int)IR_HP_EPS == (int)RT_HP_EPS &&
	      (int)IR_HP_WEIGHT_DECAY == (int)RT_HP_WEIGHT_DECAY &&
	      (int)IR_HP_BIAS_CORR1 == (int)RT_HP_BIAS_CORR1 &&
	      (int)IR_HP_BIAS_CORR2 == (int)RT_HP_BIAS_CORR2 && (int)IR_HP_CLIP == (int)RT_HP_CLIP &&
	      (int)IR_HP_GRAD_NORM == (int)RT_HP_GRAD_NORM && (int)IR_HP_COUNT == (int)RT_HP_COUNT,
	      "the runtime's optim.hparams follows the IR's IrHParam");

int be_emit_optim(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *n = ir_node(g, v);
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	switch (n->op) {
	case OP_SUMSQ:
		emit_sumsq(c, name, ir_numel(&ir_node(g, ir_operand(g, n, 0))->shape), k);
		return 0;
	case OP_GRAD_NORM:
		emit_norm(c, g, v, name, k);
		return 0;
	case OP_ADAMW:
	case OP_ADAMW_MASKED:
		/* The update is in place: the result must be the param's memory. */
		if (n->offset != ir_node(g, ir_operand(g, n, 0))->offset)
			return diag_error(d, n->loc, "internal: %s %%%u is not planned in place of its "
					  "param", ir_op[n->op].name, v);
		emit_adamw(c, name, ir_numel(&n->shape), (n->flags & NF_DECAY) != 0,
			   n->op == OP_ADAMW_MASKED, k);
		return 0;
	}
	return diag_error(d, n->loc, "internal: %s is not an update op", ir_op[n->op].name);
}

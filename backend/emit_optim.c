/* emit_optim.c: the update phase of a training program: global gradient
 * norm, clipping, AdamW.
 *
 * be_emit_update runs after the graph's kernels when be_Options.optimizer
 * is set and the graph has gradients. It plans memory past the graph's
 * arena (64-byte aligned pieces: "optim.hparams", then both moments of
 * every param with a GradPair, then scratch) and appends, in this order:
 *   sumsq.<p>   one per gradient: tasks are fixed chunks of OPT_CHUNK
 *               elements, each writing the f64 sum of its squares to its
 *               own partial (vector f64 accumulators, fixed order);
 *   optim_norm  one task: the partials in index order, sqrt, into
 *               hparams[RT_HP_GRAD_NORM]; the clip factor
 *               min(1, clip / (norm + 1e-6)) when hparams[RT_HP_CLIP] > 0,
 *               else 1 (torch.nn.utils.clip_grad_norm_), into scratch;
 *   adamw.<p>   one per param, elementwise over whole vectors per task,
 *               torch.optim.AdamW (foreach=False, amsgrad=False):
 *                 g = grad * clip
 *                 p = p * (1 - lr * wd)              only if rt_Slot.decay
 *                 m = beta1 * m + (1 - beta1) * g
 *                 v = beta2 * v + (1 - beta2) * g * g
 *                 p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *               with lr, betas, eps, wd and the bias corrections
 *               bc1 = 1 - beta1^t, bc2 = 1 - beta2^t read from hparams,
 *               which the trainer writes before every step.
 *               A sparse param (one with a MASK, passes/prune.c) gets
 *               the masked variant: p, m and v are multiplied by the mask
 *               before they are stored, so a pruned weight and its
 *               moments are exactly zero after every step whatever they
 *               held before (weights loaded dense, weight decay, moments
 *               from a dense run), not only because its gradient is zero.
 * Every result depends on the data alone, never on the task split.
 * Gradients are only read: two params may share one gradient buffer, and
 * the trainer may look at gradients after the step. Frozen params have no
 * GradPair and so no moments and no update. The kernels depend only on
 * element counts (and decay), so they are deduplicated like the graph's. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

enum { OPT_CHUNK = 16384, OPT_UNROLL = 2 };

static SrcLoc noloc(void)
{
	SrcLoc l = {0};
	return l;
}

static int64_t align64(int64_t x)
{
	return (x + 63) & ~(int64_t)63;
}

bool be_param_decays(const Graph *g, ValId v, bool decay_all)
{
	return decay_all || ir_param_decays(g, v);
}

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
	k->ntask = (n + OPT_CHUNK - 1) / OPT_CHUNK;
	k->flops = 2.0 * (double)n;
	LLVMValueRef part = be_kernel_arg(c, buf, 0, f64t(c)), x = be_kernel_arg(c, buf, 1, c->t_f32);
	be_Loop l;
	LLVMValueRef t = be_loop_begin(c, &l, lo, hi, 1);
	be_task_units(c, t, LLVMBuildNSWAdd(c->b, t, be_i64(c, 1), ""), OPT_CHUNK, n, &u0, &u1);
	be_store(c, sumsq(c, x, u0, u1), f64t(c), part, t, 1);
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMBuildRetVoid(c->b);
}

static LLVMValueRef hparam(be_Ctx *c, LLVMValueRef hp, rt_HParam i)
{
	return be_load(c, c->t_f32, hp, be_i64(c, i), 1);
}

/* buf: [0] hparams (writes RT_HP_GRAD_NORM), [1] partials, [2] clip. */
static void emit_norm(be_Ctx *c, const char *name, int64_t npart, be_Kernel *k)
{
	LLVMValueRef buf, lo, hi;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->ntask = 1;
	k->flops = (double)npart;
	LLVMTypeRef f64 = f64t(c);
	LLVMValueRef hp = be_kernel_arg(c, buf, 0, c->t_f32), part = be_kernel_arg(c, buf, 1, f64);
	LLVMValueRef clip = be_kernel_arg(c, buf, 2, c->t_f32);
	LLVMBasicBlockRef skip = be_if_begin(c, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""));
	LLVMValueRef s = be_local(c, f64, LLVMConstReal(f64, 0));
	be_Loop l;
	LLVMValueRef i = be_loop_begin(c, &l, be_i64(c, 0), be_i64(c, npart), 1);
	be_set(c, s, LLVMBuildFAdd(c->b, be_get(c, f64, s), be_load(c, f64, part, i, 1), ""));
	be_loop_end(c, &l);
	be_loop_scalar(c, &l);
	LLVMValueRef sum = be_get(c, f64, s);
	LLVMValueRef norm = be_intrin(c, "llvm.sqrt", f64, &sum, 1);
	be_store(c, LLVMBuildFPTrunc(c->b, norm, c->t_f32, ""), c->t_f32, hp,
		 be_i64(c, RT_HP_GRAD_NORM), 1);
	LLVMValueRef maxn = LLVMBuildFPExt(c->b, hparam(c, hp, RT_HP_CLIP), f64, "");
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

/* buf: [0] param (updated in place), [1] grad, [2] exp_avg, [3] exp_avg_sq,
 * [4] hparams, [5] clip factor, and when masked [6] the mask (f32 0/1). */
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
	a.p = be_kernel_arg(c, buf, 0, c->t_f32);
	a.g = be_kernel_arg(c, buf, 1, c->t_f32);
	a.m = be_kernel_arg(c, buf, 2, c->t_f32);
	a.v = be_kernel_arg(c, buf, 3, c->t_f32);
	a.mask = masked ? be_kernel_arg(c, buf, 6, c->t_f32) : NULL;
	LLVMValueRef hp = be_kernel_arg(c, buf, 4, c->t_f32);
	a.clip = be_load(c, c->t_f32, be_kernel_arg(c, buf, 5, c->t_f32), be_i64(c, 0), 1);
	LLVMValueRef one = be_f32c(c, 1.0), lr = hparam(c, hp, RT_HP_LR);
	a.b1 = hparam(c, hp, RT_HP_BETA1);
	a.b2 = hparam(c, hp, RT_HP_BETA2);
	a.omb1 = LLVMBuildFSub(c->b, one, a.b1, "");
	a.omb2 = LLVMBuildFSub(c->b, one, a.b2, "");
	a.eps = hparam(c, hp, RT_HP_EPS);
	a.decay = LLVMBuildFSub(c->b, one, LLVMBuildFMul(c->b, lr, hparam(c, hp, RT_HP_WEIGHT_DECAY), ""), "");
	a.step = LLVMBuildFDiv(c->b, lr, hparam(c, hp, RT_HP_BIAS_CORR1), "step");
	LLVMValueRef bc2 = hparam(c, hp, RT_HP_BIAS_CORR2);
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

/* ---- planning and entries ---- */

enum { KIND_SUMSQ = 1, KIND_NORM, KIND_ADAMW };

/* One update kernel: find or emit it (keyed by kind and sizes), then add
 * its entry with these operands. */
static int add_entry(be_Module *m, int kind, int64_t n, bool decays, const char *step,
		     const int64_t *argoff, uint32_t narg, int64_t out_nbytes, Diag *d)
{
	bool masked = kind == KIND_ADAMW && narg == 7;
	int64_t key[4] = {kind, n, decays, masked};
	const be_KernelRec *r = be_kernel_find(m, key, sizeof key);
	if (!r) {
		char fname[48];
		be_Kernel k = {0};
		snprintf(fname, sizeof fname, "%s_%lld%s%s",
			 kind == KIND_SUMSQ ? "optim_sumsq" : kind == KIND_NORM ? "optim_norm" : "optim_adamw",
			 (long long)n, decays ? "_decay" : "", masked ? "_masked" : "");
		if (kind == KIND_SUMSQ)
			emit_sumsq(&m->c, fname, n, &k);
		else if (kind == KIND_NORM)
			emit_norm(&m->c, fname, n, &k);
		else
			emit_adamw(&m->c, fname, n, decays, masked, &k);
		if (be_kernel_add(m, key, sizeof key, fname, &k))
			return diag_error(d, noloc(), "out of memory");
		r = &VEC_AT(m->kernel, be_KernelRec, m->kernel.len - 1);
	}
	be_Entry *e = vec_push(&m->entry, sizeof *e);
	if (!e)
		return diag_error(d, noloc(), "out of memory");
	e->v = VAL_NONE;
	e->ntask = r->ntask;
	e->flops = r->flops;
	snprintf(e->name, sizeof e->name, "%s", step);
	snprintf(e->fname, sizeof e->fname, "%s", r->fname);
	e->phase = RT_PHASE_UPDATE;
	e->narg = narg;
	memcpy(e->argoff, argoff, narg * sizeof *argoff);
	e->out_nbytes = out_nbytes;
	e->out_dtype = RT_F32;
	return 0;
}

/* The arena offset of param p's MASK value, or -1 for a dense param. */
static int64_t mask_offset(const Graph *g, ValId p)
{
	for (ValId v = p + 1; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_MASK && n->name == ir_node(g, p)->name)
			return n->offset;
	}
	return -1;
}

static int plan(be_Update *u, const Graph *g, bool decay_all, Diag *d)
{
	int64_t at = align64(g->arena_size);
	u->hp_off = at;
	at += align64(RT_HP_COUNT * 4);
	u->npart = 0;
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		be_OptParam *op = vec_push(&u->param, sizeof *op);
		if (!op)
			return diag_error(d, noloc(), "out of memory");
		int64_t n = ir_numel(&ir_node(g, gp->param)->shape);
		op->param = gp->param;
		op->grad = gp->grad;
		op->decay = be_param_decays(g, gp->param, decay_all);
		op->mask_off = mask_offset(g, gp->param);
		op->m_off = at;
		at += align64(n > 0 ? n * 4 : 1);
		op->v_off = at;
		at += align64(n > 0 ? n * 4 : 1);
		op->part0 = u->npart;
		op->npart = (n + OPT_CHUNK - 1) / OPT_CHUNK;
		u->npart += op->npart;
	}
	u->clip_off = at;
	at += 64;
	u->part_off = at;
	at += align64(u->npart > 0 ? u->npart * 8 : 1);
	u->arena_size = at;
	return 0;
}

int be_emit_update(be_Module *m, const Graph *g, Diag *d)
{
	be_Update *u = &m->upd;
	if (plan(u, g, m->opt.decay_all, d))
		return -1;
	char step[48];
	for (size_t i = 0; i < u->param.len; i++) {
		const be_OptParam *op = &VEC_AT(u->param, be_OptParam, i);
		int64_t n = ir_numel(&ir_node(g, op->param)->shape);
		if (op->npart == 0)   /* an empty param: nothing to sum */
			continue;
		int64_t arg[2] = {u->part_off + op->part0 * 8, ir_node(g, op->grad)->offset};
		snprintf(step, sizeof step, "sumsq.%s", ir_str(g, ir_node(g, op->param)->name));
		if (add_entry(m, KIND_SUMSQ, n, false, step, arg, 2, 0, d))
			return -1;
	}
	int64_t narg[3] = {u->hp_off, u->part_off, u->clip_off};
	if (add_entry(m, KIND_NORM, u->npart, false, "optim_norm", narg, 3, RT_HP_COUNT * 4, d))
		return -1;
	for (size_t i = 0; i < u->param.len; i++) {
		const be_OptParam *op = &VEC_AT(u->param, be_OptParam, i);
		const Node *p = ir_node(g, op->param);
		int64_t n = ir_numel(&p->shape);
		int64_t arg[7] = {p->offset, ir_node(g, op->grad)->offset, op->m_off, op->v_off,
				  u->hp_off, u->clip_off, op->mask_off};
		snprintf(step, sizeof step, "adamw.%s", ir_str(g, p->name));
		if (add_entry(m, KIND_ADAMW, n, op->decay, step, arg, op->mask_off >= 0 ? 7 : 6,
			      n * 4, d))
			return -1;
	}
	return 0;
}

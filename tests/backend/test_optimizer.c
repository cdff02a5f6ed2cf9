/* test_optimizer.c: the update (passes/optimize.c, emit_optim.c) against a
 * plain-C AdamW.
 *
 * A small training graph built with the ir builders has every kind of
 * param the optimizer must tell apart: a matrix (decays), a bias (rank 1,
 * no decay), an embedding table read by a gather (no decay), a frozen
 * param (no gradient, never touched), two params whose gradient is one
 * shared value, and a param the loss ignores (gradient: a constant zero).
 * It goes through autodiff, optimize, dce and plan_memory and
 * be_build_program, and then runs three steps: the test writes the
 * trainer's hparams (lr 0.01, betas 0.9/0.95, eps 1e-8, wd 0.1, bias
 * corrections for t = 1, 2, 3), runs the forward and backward phases, reads
 * the gradients the program produced, runs the update phase, and compares
 * params and both moments with an independent double-precision AdamW
 * (torch.optim.AdamW semantics, clip_grad_norm_ before it) fed with those
 * gradients: normwise relative error < 1e-6 for each tensor, the grad norm
 * in hparams within 1e-6, with clipping off and on (max norm well below the
 * actual norm, so it bites). Slots, decay flags and phases are checked,
 * and the three steps on 1 and 2 threads give bitwise-equal weights. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/backend/harness.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const SrcLoc L0;
static uint64_t rng = 0x243f6a8885a308d3ull;

static double urand(void)
{
	return harness_urand(&rng);
}


enum { V = 11, D = 13, H = 37, B = 2, T = 6 };

/* loss = cross_entropy(gelu(E[idx] @ W + b) * F @ W2, targets)
 *        + 0.01 * sum(a + c) + 0 * nothing; `unused` is read by nothing. */
static Graph *build(bool optimizer)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape sE = SH(V, D), sW = SH(D, H), sb = SH(H), sW2 = SH(H, V), sa = SH(5, 7),
	      su = SH(3, 3), si = SH(B, T), one = SH(1);
	ValId E = ir_param(g, "E", &sE, INIT_NORMAL, 0.02, L0, &d);
	ValId W = ir_param(g, "W", &sW, INIT_NORMAL, 0.02, L0, &d);
	ValId b = ir_param(g, "b", &sb, INIT_ZEROS, 0, L0, &d);
	ValId F = ir_param(g, "F", &sb, INIT_ONES, 0, L0, &d);
	ir_node(g, F)->flags |= NF_FROZEN;
	ValId W2 = ir_param(g, "W2", &sW2, INIT_NORMAL, 0.02, L0, &d);
	ValId a = ir_param(g, "a", &sa, INIT_NORMAL, 0.02, L0, &d);
	ValId c = ir_param(g, "c", &sa, INIT_NORMAL, 0.02, L0, &d);
	ir_param(g, "unused", &su, INIT_NORMAL, 0.02, L0, &d);
	ValId idx = ir_input(g, "idx", DT_I32, &si, L0, &d);
	ValId tg = ir_input(g, "targets", DT_I32, &si, L0, &d);
	ValId x = ir_gather(g, E, idx, L0, &d);
	ValId h = ir_binary(g, OP_ADD, ir_matmul(g, x, W, 0, L0, &d), b, L0, &d);
	h = ir_binary(g, OP_MUL, ir_unary(g, OP_GELU, h, L0, &d), F, L0, &d);
	ValId ce = ir_cross_entropy(g, ir_matmul(g, h, W2, 0, L0, &d), tg, L0, &d);
	ValId s = ir_reduce(g, OP_SUM, ir_binary(g, OP_ADD, a, c, L0, &d), 1, false, L0, &d);
	s = ir_reduce(g, OP_SUM, s, 0, true, L0, &d);
	s = ir_binary(g, OP_MUL, s, ir_const(g, 0.01, DT_F32, &one, L0, &d), L0, &d);
	Shape scalar = {0};
	g->loss = ir_binary(g, OP_ADD, ce, ir_reshape(g, s, &scalar, L0, &d), L0, &d);
	CHECK_MSG(g->loss != VAL_NONE, "build: %s", diag_text(&d));
	PassOptions po = {.training = true, .optimizer = optimizer, .verify = true, .alignment = 64};
	int rc = pass_infer_shapes(g, &po, &d) || pass_autodiff(g, &po, &d) ||
		 pass_optimize(g, &po, &d) || pass_dce(g, &po, &d) || pass_plan_memory(g, &po, &d) ||
		 ir_verify(g, &d);
	CHECK_MSG(rc == 0, "passes: %s", diag_text(&d));
	diag_free(&d);
	return g;
}

/* The reference state: double copies of every param with a gradient. */
typedef struct Ref {
	int n;
	const rt_Slot *p[16], *grad[16], *m[16], *v[16];
	double *pv[16], *mv[16], *vv[16];
} Ref;

static float *at(rt_Exec *e, const rt_Slot *s)
{
	return (float *)((char *)rt_exec_arena(e) + s->offset);
}

static int64_t numel(const rt_Slot *s)
{
	return s->nbytes / 4;
}

static double rel(const float *y, const double *r, int64_t n)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		num += (y[i] - r[i]) * (y[i] - r[i]);
		den += r[i] * r[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Three steps; returns the final weights of every param (malloc'd copy of
 * the param block) so runs can be compared. */
static float *train3(rt_Program *p, int nthread, double clip, int check)
{
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(nthread);
	rt_Exec *e = NULL;
	float *result = NULL;
	if (!pool || rt_exec_create(p, pool, &e, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	rng = 0x243f6a8885a308d3ull;   /* the same data for every run */
	Ref r = {0};
	const rt_Slot *frozen = NULL;
	float *frozen_before = NULL;
	int64_t pbytes = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_PARAM) {
			float *x = at(e, s);
			for (int64_t k = 0; k < numel(s); k++)
				x[k] = (float)(s->frozen ? 1 + 0.5 * (2 * urand() - 1) : 0.5 * (2 * urand() - 1));
			if (s->frozen)
				frozen = s;
			pbytes = s->offset + s->nbytes > pbytes ? s->offset + s->nbytes : pbytes;
		}
		if (s->kind == RT_SLOT_INPUT) {
			int32_t *x = (int32_t *)at(e, s);
			for (int64_t k = 0; k < numel(s); k++)
				x[k] = (int32_t)(urand() * V);
		}
	}
	char name[128];
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_GRAD)
			continue;
		const rt_Slot *ps = &VEC_AT(p->slot, rt_Slot, s->param);
		int k = r.n++;
		r.p[k] = ps;
		r.grad[k] = s;
		snprintf(name, sizeof name, "%s.exp_avg", ps->name);
		r.m[k] = rt_program_find(p, name);
		snprintf(name, sizeof name, "%s.exp_avg_sq", ps->name);
		r.v[k] = rt_program_find(p, name);
		CHECK(r.m[k] && r.v[k] && r.m[k]->kind == RT_SLOT_OPTIM && r.m[k]->param == s->param &&
		      r.m[k]->nbytes == ps->nbytes && r.v[k]->nbytes == ps->nbytes);
		if (!r.m[k] || !r.v[k])
			goto done;
		r.pv[k] = calloc((size_t)numel(ps), sizeof(double));
		r.mv[k] = calloc((size_t)numel(ps), sizeof(double));
		r.vv[k] = calloc((size_t)numel(ps), sizeof(double));
		for (int64_t j = 0; j < numel(ps); j++)
			r.pv[k][j] = at(e, ps)[j];
	}
	if (frozen) {
		frozen_before = malloc((size_t)frozen->nbytes);
		memcpy(frozen_before, at(e, frozen), (size_t)frozen->nbytes);
	}
	const rt_Slot *hs = rt_program_find(p, "optim.hparams");
	CHECK(hs && hs->kind == RT_SLOT_HPARAMS && numel(hs) == RT_HP_COUNT);
	if (!hs)
		goto done;
	float *hp = at(e, hs);
	const float lr = 0.01f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
	for (int t = 1; t <= 3; t++) {
		hp[RT_HP_LR] = lr;
		hp[RT_HP_BETA1] = b1;
		hp[RT_HP_BETA2] = b2;
		hp[RT_HP_EPS] = eps;
		hp[RT_HP_WEIGHT_DECAY] = wd;
		hp[RT_HP_BIAS_CORR1] = (float)(1 - pow(b1, t));
		hp[RT_HP_BIAS_CORR2] = (float)(1 - pow(b2, t));
		hp[RT_HP_CLIP] = (float)clip;
		hp[RT_HP_GRAD_NORM] = -1;
		rt_exec_run_phase(e, RT_PHASE_FORWARD);
		rt_exec_run_phase(e, RT_PHASE_BACKWARD);
		/* the reference, from the gradients the program produced */
		double ss = 0;
		for (int k = 0; k < r.n; k++)
			for (int64_t j = 0; j < numel(r.p[k]); j++) {
				double gj = at(e, r.grad[k])[j];
				ss += gj * gj;
			}
		double norm = sqrt(ss);
		double coef = 1;
		if (hp[RT_HP_CLIP] > 0) {
			coef = (double)hp[RT_HP_CLIP] / (norm + 1e-6);
			coef = coef < 1 ? coef : 1;
		}
		double dlr = hp[RT_HP_LR], db1 = hp[RT_HP_BETA1], db2 = hp[RT_HP_BETA2];
		double deps = hp[RT_HP_EPS], dwd = hp[RT_HP_WEIGHT_DECAY];
		double bc1 = hp[RT_HP_BIAS_CORR1], bc2 = hp[RT_HP_BIAS_CORR2];
		for (int k = 0; k < r.n; k++) {
			const float *gr = at(e, r.grad[k]);
			for (int64_t j = 0; j < numel(r.p[k]); j++) {
				double gj = gr[j] * coef;
				if (r.p[k]->decay)
					r.pv[k][j] *= 1 - dlr * dwd;
				r.mv[k][j] = db1 * r.mv[k][j] + (1 - db1) * gj;
				r.vv[k][j] = db2 * r.vv[k][j] + (1 - db2) * gj * gj;
				double denom = sqrt(r.vv[k][j]) / sqrt(bc2) + deps;
				r.pv[k][j] -= dlr / bc1 * r.mv[k][j] / denom;
			}
		}
		/* gradients must survive the update unchanged */
		float *gcopy[16];
		for (int k = 0; k < r.n; k++) {
			gcopy[k] = malloc((size_t)r.grad[k]->nbytes);
			memcpy(gcopy[k], at(e, r.grad[k]), (size_t)r.grad[k]->nbytes);
		}
		rt_exec_run_phase(e, RT_PHASE_UPDATE);
		if (check) {
			CHECK_MSG(fabs(hp[RT_HP_GRAD_NORM] - norm) <= 1e-6 * norm,
				  "step %d: grad norm %.9g, reference %.9g", t, hp[RT_HP_GRAD_NORM], norm);
			if (clip > 0 && t == 1)
				CHECK_MSG(coef < 0.9, "clip %g does not bite (norm %g)", clip, norm);
			for (int k = 0; k < r.n; k++) {
				int64_t n = numel(r.p[k]);
				double ep = rel(at(e, r.p[k]), r.pv[k], n), em = rel(at(e, r.m[k]), r.mv[k], n);
				double ev = rel(at(e, r.v[k]), r.vv[k], n);
				CHECK_MSG(ep < 1e-6 && em < 1e-6 && ev < 1e-6,
					  "step %d clip %g %s: relative error p %.3g m %.3g v %.3g", t, clip,
					  r.p[k]->name, ep, em, ev);
				CHECK_MSG(!memcmp(gcopy[k], at(e, r.grad[k]), (size_t)r.grad[k]->nbytes),
					  "the update wrote the gradient of %s", r.p[k]->name);
			}
		}
		for (int k = 0; k < r.n; k++)
			free(gcopy[k]);
	}
	if (frozen)
		CHECK_MSG(!memcmp(frozen_before, at(e, frozen), (size_t)frozen->nbytes),
			  "the frozen param changed");
	result = malloc((size_t)pbytes);
	memcpy(result, rt_exec_arena(e), (size_t)pbytes);
	for (int k = 0; k < r.n; k++) {
		free(r.pv[k]);
		free(r.mv[k]);
		free(r.vv[k]);
	}
	free(frozen_before);
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	diag_free(&d);
	return result;
}

static void check_adamw(const be_Options *target)
{
	Graph *g = build(true);
	Diag d;
	diag_init(&d);
	be_Options o = *target;
	rt_Program *p = NULL;
	if (be_build_program(g, &o, &p, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	/* slots: which params have gradients and moments, which decay */
	static const struct { const char *name; int grad, decay; } want[] = {
		{"E", 1, 0}, {"W", 1, 1}, {"b", 1, 0}, {"F", 0, 0}, {"W2", 1, 1}, {"a", 1, 1},
		{"c", 1, 1}, {"unused", 1, 1},
	};
	char name[64];
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const rt_Slot *s = rt_program_find(p, want[i].name);
		CHECK_MSG(s && s->kind == RT_SLOT_PARAM && s->decay == want[i].decay, "param %s decay",
			  want[i].name);
		snprintf(name, sizeof name, "%s.grad", want[i].name);
		const rt_Slot *gs = rt_program_find(p, name);
		CHECK_MSG((gs != NULL) == want[i].grad, "%s", name);
		if (gs)
			CHECK(gs->kind == RT_SLOT_GRAD && gs->nbytes == s->nbytes &&
			      !strcmp(VEC_AT(p->slot, rt_Slot, gs->param).name, want[i].name));
		snprintf(name, sizeof name, "%s.exp_avg_sq", want[i].name);
		CHECK_MSG((rt_program_find(p, name) != NULL) == want[i].grad, "%s", name);
	}
	const rt_Slot *ga = rt_program_find(p, "a.grad"), *gc = rt_program_find(p, "c.grad");
	CHECK_MSG(ga && gc && ga->offset == gc->offset, "a and c share one gradient value");
	/* plan_memory planned the update's memory too: the arena is the step's */
	const rt_Slot *hs = rt_program_find(p, "optim.hparams");
	CHECK(hs && hs->kind == RT_SLOT_HPARAMS && hs->offset + hs->nbytes <= g->arena_size &&
	      p->arena_size == g->arena_size);
	const rt_Slot *mw = rt_program_find(p, "W.exp_avg");
	CHECK(mw && mw->kind == RT_SLOT_OPTIM && mw->offset + mw->nbytes <= g->arena_size);
	/* phases: forward, backward, then 7 sums of squares, the norm, 7 AdamW */
	uint32_t *ph = p->phase_start;
	CHECK(ph[0] == 0 && ph[0] < ph[1] && ph[1] < ph[2] && ph[3] == p->step.len);
	CHECK_MSG(ph[3] - ph[2] == 7 + 1 + 7, "%u update steps", ph[3] - ph[2]);
	for (int clip = 0; clip < 2; clip++) {
		float *w1 = train3(p, 1, clip ? 0.05 : 0, 1);
		float *w2 = train3(p, 2, clip ? 0.05 : 0, 0);
		const rt_Slot *last = NULL;
		for (size_t i = 0; i < p->slot.len; i++) {
			const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
			if (s->kind == RT_SLOT_PARAM && (!last || s->offset > last->offset))
				last = s;
		}
		CHECK_MSG(w1 && w2 && last && !memcmp(w1, w2, (size_t)(last->offset + last->nbytes)),
			  "weights after 3 steps differ between 1 and 2 threads (clip %d)", clip);
		free(w1);
		free(w2);
	}
done:
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* The host, and the narrower targets (AVX2; SSE2 without FMA; no
 * optimisation) this host also runs. */
static void test_adamw(void)
{
	static const be_Options targets[] = {
		{.opt_level = 3},
		{.opt_level = 3, .cpu = "haswell", .features = "+avx2,+fma,+avx,+sse4.2"},
		{.opt_level = 3, .cpu = "x86-64", .features = "+sse2"},
		{.opt_level = 0},
	};
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++)
		check_adamw(&targets[t]);
}

/* Without PassOptions.optimizer a training graph gets gradients and phases
 * but no update phase and no optimizer slots. */
static void test_no_optimizer(void)
{
	Graph *g = build(false);
	Diag d;
	diag_init(&d);
	rt_Program *p = NULL;
	CHECK(be_build_program(g, NULL, &p, &d) == 0);
	if (p) {
		CHECK(rt_program_find(p, "W.grad") && !rt_program_find(p, "W.exp_avg") &&
		      !rt_program_find(p, "optim.hparams"));
		CHECK(p->phase_start[2] == p->phase_start[3] && p->phase_start[3] == p->step.len);
		CHECK(p->arena_size == g->arena_size);
	}
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Every allocation of a training build with the optimizer can fail: an
 * error, no program, no leak (the sanitizer build checks), and success
 * once allocations work again. */
static void test_out_of_memory(void)
{
	Graph *g = build(true);
	be_Options o = {.opt_level = 0};
	int failed = 0, k;
	for (k = 1; k < 2000; k++) {
		rt_Program *p = NULL;
		Diag e;
		diag_init(&e);
		mem_fail_after(k);
		int rc = be_build_program(g, &o, &p, &e);
		mem_fail_after(0);
		diag_free(&e);
		if (rc) {
			CHECK(p == NULL);
			failed++;
			continue;
		}
		CHECK(p != NULL && rt_program_find(p, "W.exp_avg") != NULL);
		rt_program_destroy(p);
		break;
	}
	CHECK_MSG(failed > 0 && k < 2000, "%d failures before success at %d", failed, k);
	printf("out of memory: %d failing allocations checked\n", failed);
	ir_graph_destroy(g);
}

int main(void)
{
	RUN(test_adamw);
	RUN(test_no_optimizer);
	RUN(test_out_of_memory);
	return check_report();
}

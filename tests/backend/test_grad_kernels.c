/* test_grad_kernels.c: the backward kernels (gelu_grad ... broadcast) against
 * ir_interp, and a whole training graph's gradients.
 *
 * Each op case builds a small graph with the ir builders on awkward shapes
 * (1, 7, 129, broadcasting, every axis, repeated gather indices, ties for
 * max_grad), runs pass_infer_shapes and pass_plan_memory, JIT-compiles with
 * be_build_program and runs on pools of 1 and 2 threads and with every
 * step's tasks called one at a time in reverse order.
 *
 * Pass criteria (as in test_kernels.c):
 *   - accuracy: normwise relative error against the double interpreter,
 *     ||y - ref||_2 / ||ref||_2 < 1e-5 (non-finite reference positions must
 *     match exactly and are left out of the norms); integer outputs exact;
 *   - determinism: 1 thread, 2 threads and scrambled tasks bitwise equal.
 * The training graph (models/gpt.msw through the frontend with
 * PassOptions.training, two layers, one frozen param) must give every
 * gradient within 1e-4 normwise of the interpreter's, bitwise equal on 1 and
 * 2 threads, with a "<param>.grad" slot per gradient and the phases set so
 * that the forward phase alone gives the loss. */
#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "tests/backend/harness.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5;
static const SrcLoc L0;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
	return harness_urand(&rng);
}

/* f32 inputs: +-[0.1, 1) * scale, or small integers when `ties` (max_grad:
 * many equal maxima); i32 in [0, irange); u8 in [0, 256). */
static double scale = 1.0, irange = 100;
static int ties;

static double value_for(DType t)
{
	if (t == DT_I32)
		return floor(urand() * irange);
	if (t == DT_U8)
		return floor(urand() * 256);
	if (ties)
		return floor(urand() * 3);
	double x = (0.1 + 0.9 * urand()) * scale;
	return (float)(urand() < 0.5 ? x : -x);
}

static const Shape SCALAR = {0};

static double get(rt_DType t, const void *data, int64_t i)
{
	switch (t) {
	case RT_F32: return ((const float *)data)[i];
	case RT_I32: return ((const int32_t *)data)[i];
	default: return ((const uint8_t *)data)[i];
	}
}

static void put(rt_DType t, void *data, int64_t i, double v)
{
	switch (t) {
	case RT_F32: ((float *)data)[i] = (float)v; break;
	case RT_I32: ((int32_t *)data)[i] = (int32_t)v; break;
	default: ((uint8_t *)data)[i] = (uint8_t)v; break;
	}
}

/* Normwise relative error of n values of type t against ref; non-finite
 * references must match exactly (NaN for NaN). Returns the error, or +inf
 * if a non-finite position (or, when exact, any position) differs. */
static double rel_error(rt_DType t, const void *y, const double *ref, int64_t n, int exact,
			int64_t *bad)
{
	double num = 0, den = 0;
	*bad = -1;
	for (int64_t i = 0; i < n; i++) {
		double a = get(t, y, i), r = ref[i];
		if (!isfinite(r)) {
			if (!(isnan(r) ? isnan(a) : a == r) && *bad < 0)
				*bad = i;
			continue;
		}
		if (exact && a != r && *bad < 0)
			*bad = i;
		num += (a - r) * (a - r);
		den += r * r;
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

static rt_Program *compile(Graph *g, const PassOptions *po, const be_Options *o, const char *label)
{
	Diag d;
	diag_init(&d);
	rt_Program *p = NULL;
	if (pass_infer_shapes(g, po, &d) || pass_plan_memory(g, po, &d) ||
	    be_build_program(g, o, &p, &d))
		fprintf(stderr, "%s: %s", label, diag_text(&d));
	CHECK_MSG(p != NULL, "%s: compile", label);
	diag_free(&d);
	return p;
}

/* Values to read back after a run: node ids whose buffers are copied. */
enum { MAXOUT = 128 };
typedef struct Run {
	int n;
	void *data[MAXOUT];
} Run;

static void fill_sources(const Graph *g, double **val)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_INPUT && n->op != OP_PARAM)
			continue;
		int64_t k = ir_numel(&n->shape);
		val[v] = malloc((size_t)(k ? k : 1) * sizeof(double));
		for (int64_t i = 0; i < k; i++)
			val[v][i] = value_for(n->dtype);
	}
}

static void free_sources(const Graph *g, double **val)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_INPUT || n->op == OP_PARAM)
			free(val[v]);
	}
}

/* Bind sources, run (mode 0: pool, 1: scrambled), copy values `want`. */
static void run(rt_Program *p, const Graph *g, double **val, int nthread, int scrambled,
		const ValId *want, int nwant, Run *r)
{
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(nthread);
	rt_Exec *e = NULL;
	r->n = 0;
	if (!pool || rt_exec_create(p, pool, &e, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	char *arena = rt_exec_arena(e);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_INPUT && n->op != OP_PARAM)
			continue;
		for (int64_t i = 0; i < ir_numel(&n->shape); i++)
			put(n->dtype, arena + n->offset, i, val[v][i]);
	}
	if (scrambled)
		run_scrambled(e, p);
	else
		rt_exec_run(e);
	for (int i = 0; i < nwant; i++) {
		size_t nb = (size_t)ir_nbytes(g, want[i]);
		r->data[i] = malloc(nb ? nb : 1);
		memcpy(r->data[i], arena + ir_node(g, want[i])->offset, nb);
	}
	r->n = nwant;
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	diag_free(&d);
}

static void run_free(Run *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->data[i]);
	r->n = 0;
}

static int ncase;
static const be_Options *target;   /* NULL: the host */

/* Compile g, run it three ways, compare `want` values with the interpreter
 * (within tol) and with each other (bitwise). */
static void check_values(Graph *g, const PassOptions *po, const ValId *want, int nwant, double tol,
			 const char *label)
{
	ncase++;
	rt_Program *p = compile(g, po, target, label);
	if (!p)
		return;
	double **val = calloc(ir_nnode(g), sizeof *val);
	fill_sources(g, val);
	Diag d;
	diag_init(&d);
	int ok = ir_interp(g, val, &d) == 0;
	CHECK_MSG(ok, "%s: interp: %s", label, diag_text(&d));
	Run r1, r2, r3;
	run(p, g, val, 1, 0, want, nwant, &r1);
	run(p, g, val, 2, 0, want, nwant, &r2);
	run(p, g, val, 1, 1, want, nwant, &r3);
	for (int i = 0; ok && i < r1.n; i++) {
		const Node *n = ir_node(g, want[i]);
		int64_t bad;
		double err = rel_error(n->dtype, r1.data[i], val[want[i]], ir_numel(&n->shape),
				       n->dtype != DT_F32, &bad);
		CHECK_MSG(bad < 0, "%s: value %u element %lld is %g, reference %g", label, want[i],
			  (long long)bad, bad < 0 ? 0 : get(n->dtype, r1.data[i], bad),
			  bad < 0 ? 0 : val[want[i]][bad]);
		CHECK_MSG(err < tol, "%s: value %u normwise relative error %.3g", label, want[i], err);
		size_t nb = (size_t)ir_nbytes(g, want[i]);
		CHECK_MSG(r2.n == r1.n && !memcmp(r1.data[i], r2.data[i], nb),
			  "%s: value %u differs between 1 and 2 threads", label, want[i]);
		CHECK_MSG(r3.n == r1.n && !memcmp(r1.data[i], r3.data[i], nb),
			  "%s: value %u differs when tasks run one at a time", label, want[i]);
	}
	run_free(&r1);
	run_free(&r2);
	run_free(&r3);
	ir_interp_free(g, val);
	free_sources(g, val);
	free(val);
	diag_free(&d);
	rt_program_destroy(p);
}

/* One op's result as the graph's output, checked. */
static void check_op(Graph *g, ValId y, const char *label)
{
	CHECK_MSG(y != VAL_NONE, "%s: build", label);
	if (y == VAL_NONE)
		return;
	ir_set_output(g, "result", y);
	PassOptions po = {.verify = true, .alignment = 64};
	check_values(g, &po, &y, 1, TOL, label);
}

/* ---- elementwise: gelu_grad, silu_grad, relu_grad ---- */

static void test_elementwise_grads(void)
{
	static const struct { int ra, rb; int64_t a[4], b[4]; } cases[] = {
		{1, 1, {1}, {1}},          {1, 1, {7}, {7}},         {2, 2, {3, 129}, {3, 129}},
		{2, 2, {7, 1}, {1, 129}},  {3, 1, {3, 1, 5}, {5}},   {2, 2, {257, 131}, {257, 131}},
		{4, 4, {2, 1, 3, 1}, {1, 5, 1, 7}}, {0, 2, {0}, {3, 4}},
	};
	static const struct { Op op; double scale; } ops[] = {
		{OP_GELU_GRAD, 1}, {OP_GELU_GRAD, 6}, {OP_SILU_GRAD, 1}, {OP_SILU_GRAD, 30},
		{OP_RELU_GRAD, 1},
	};
	for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape sa = {.rank = (uint8_t)cases[c].ra}, sb = {.rank = (uint8_t)cases[c].rb};
			memcpy(sa.dim, cases[c].a, sizeof cases[c].a);
			memcpy(sb.dim, cases[c].b, sizeof cases[c].b);
			ValId args[2] = {in(g, "x", DT_F32, sa), in(g, "dy", DT_F32, sb)};
			char label[64];
			snprintf(label, sizeof label, "%s case %zu scale %g", ir_op[ops[o].op].name, c,
				 ops[o].scale);
			scale = ops[o].scale;
			check_op(g, ir_grad_op(g, ops[o].op, args, 2, L0, &d), label);
			scale = 1;
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

/* ---- row kernels: softmax_grad, cross_entropy_grad ---- */

static void test_softmax_grad(void)
{
	Shape shapes[] = {SH(7, 129), SH(3, 5, 1), SH(1, 1000), SH(200, 300), SH(17), SH(2, 3, 64),
			  SH(1)};
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		ValId args[2] = {in(g, "y", DT_F32, shapes[si]), in(g, "dy", DT_F32, shapes[si])};
		char label[64];
		snprintf(label, sizeof label, "softmax_grad shape %zu", si);
		check_op(g, ir_grad_op(g, OP_SOFTMAX_GRAD, args, 2, L0, &d), label);
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

static void test_cross_entropy_grad(void)
{
	static const struct { int rank; int64_t dim[3]; } cases[] = {
		{2, {7, 129}}, {3, {2, 3, 17}}, {1, {50}}, {2, {300, 257}}, {2, {1, 1}}, {2, {64, 16}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape sl = {.rank = (uint8_t)cases[c].rank}, st = {.rank = (uint8_t)(cases[c].rank - 1)};
		memcpy(sl.dim, cases[c].dim, sizeof cases[c].dim);
		memcpy(st.dim, cases[c].dim, sizeof cases[c].dim);
		ValId args[3] = {in(g, "logits", DT_F32, sl), in(g, "targets", DT_I32, st),
				 in(g, "dl", DT_F32, SCALAR)};
		irange = (double)sl.dim[sl.rank - 1];
		scale = 8;
		char label[64];
		snprintf(label, sizeof label, "cross_entropy_grad case %zu", c);
		check_op(g, ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, args, 3, L0, &d), label);
		irange = 100;
		scale = 1;
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

/* ---- gather_grad, causal_mask_grad, max_grad, broadcast ---- */

static void test_gather_grad(void)
{
	static const struct { int64_t V, D; int rank; int64_t idx[3]; } cases[] = {
		{129, 33, 2, {7, 5}},  {1, 1, 1, {3}},       {50, 256, 2, {8, 64}},
		{7, 129, 3, {2, 3, 4}}, {3, 1000, 1, {40}},  {300, 17, 1, {2}},
		{5, 64, 2, {1, 1}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape si = {.rank = (uint8_t)cases[c].rank};
		memcpy(si.dim, cases[c].idx, sizeof cases[c].idx);
		Shape sd = si;
		sd.dim[sd.rank++] = cases[c].D;
		ValId idx = in(g, "idx", DT_I32, si), dy = in(g, "dy", DT_F32, sd);
		irange = (double)cases[c].V;
		char label[64];
		snprintf(label, sizeof label, "gather_grad case %zu", c);
		check_op(g, ir_gather_grad(g, idx, dy, cases[c].V, L0, &d), label);
		irange = 100;
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

static void test_causal_mask_grad(void)
{
	Shape shapes[] = {SH(2, 7, 13), SH(5, 5), SH(3, 2, 4, 9), SH(1, 1), SH(4, 128, 256)};
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		ValId dy = in(g, "dy", DT_F32, shapes[si]);
		char label[64];
		snprintf(label, sizeof label, "causal_mask_grad shape %zu", si);
		check_op(g, ir_grad_op(g, OP_CAUSAL_MASK_GRAD, &dy, 1, L0, &d), label);
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

static void test_max_grad(void)
{
	Shape shapes[] = {SH(7, 129, 5), SH(129), SH(1), SH(64, 100), SH(100, 64), SH(3, 1, 20, 70),
			  SH(5, 33, 17)};
	for (int t = 0; t < 2; t++)
		for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
			for (int axis = 0; axis < shapes[si].rank; axis++)
				for (int keep = 0; keep < 2; keep++) {
					Graph *g = ir_graph_create();
					Diag d;
					diag_init(&d);
					Shape sy = shapes[si];
					if (keep) {
						sy.dim[axis] = 1;
					} else {
						for (int i = axis; i + 1 < sy.rank; i++)
							sy.dim[i] = sy.dim[i + 1];
						sy.rank--;
					}
					ValId x = in(g, "x", DT_F32, shapes[si]), dy = in(g, "dy", DT_F32, sy);
					char label[80];
					snprintf(label, sizeof label, "max_grad shape %zu axis %d keep %d%s",
						 si, axis, keep, t ? " ties" : "");
					ties = t;
					check_op(g, ir_max_grad(g, x, dy, axis, L0, &d), label);
					ties = 0;
					diag_free(&d);
					ir_graph_destroy(g);
				}
}

static void test_broadcast(void)
{
	static const struct { int rx, ry; int64_t x[4], y[4]; } cases[] = {
		{1, 2, {129}, {7, 129}},      {2, 2, {7, 1}, {7, 129}},     {0, 2, {0}, {3, 40}},
		{3, 4, {3, 1, 5}, {2, 3, 7, 5}}, {1, 1, {1}, {1}},          {2, 3, {1, 1}, {4, 1, 1}},
		{2, 2, {1, 257}, {300, 257}}, {4, 4, {2, 1, 3, 1}, {2, 5, 3, 7}},
	};
	static const DType types[] = {DT_F32, DT_I32, DT_U8};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int t = 0; t < 3; t++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape sx = {.rank = (uint8_t)cases[c].rx}, sy = {.rank = (uint8_t)cases[c].ry};
			memcpy(sx.dim, cases[c].x, sizeof cases[c].x);
			memcpy(sy.dim, cases[c].y, sizeof cases[c].y);
			ValId x = in(g, "x", types[t], sx);
			char label[64];
			snprintf(label, sizeof label, "broadcast case %zu %s", c, ir_dtype_name[types[t]]);
			check_op(g, ir_broadcast_to(g, x, &sy, L0, &d), label);
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

/* Out-of-range targets and indices: the interpreter rejects them; the
 * kernels make the affected row (cross_entropy_grad) or the whole gradient
 * (gather_grad) NaN, and leave the rest alone. */
static void test_out_of_range(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape sl = SH(4, 5), st = SH(4), sd = SH(4, 3);
	ValId lg = in(g, "logits", DT_F32, sl), tg = in(g, "t", DT_I32, st);
	ValId dl = in(g, "dl", DT_F32, SCALAR), dy = in(g, "dy", DT_F32, sd);
	ValId ce[3] = {lg, tg, dl};
	ir_set_output(g, "ce", ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, ce, 3, L0, &d));
	ir_set_output(g, "gg", ir_gather_grad(g, tg, dy, 5, L0, &d));
	PassOptions po = {.alignment = 64};
	rt_Program *p = compile(g, &po, NULL, "out of range");
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *e = NULL;
	if (p && pool && !rt_exec_create(p, pool, &e, &d)) {
		rt_Tensor tl, tt, tdl, tdy, tce, tgg;
		rt_exec_tensor(e, "logits", &tl);
		rt_exec_tensor(e, "t", &tt);
		rt_exec_tensor(e, "dl", &tdl);
		rt_exec_tensor(e, "dy", &tdy);
		rt_exec_tensor(e, "ce", &tce);
		rt_exec_tensor(e, "gg", &tgg);
		for (int i = 0; i < 20; i++)
			((float *)tl.data)[i] = (float)(i % 7) * 0.5f;
		for (int i = 0; i < 12; i++)
			((float *)tdy.data)[i] = (float)i;
		*(float *)tdl.data = 2.0f;
		int32_t bad[4] = {2, 5, -1, 4};
		memcpy(tt.data, bad, sizeof bad);
		rt_exec_run(e);
		const float *y = tce.data, *gg = tgg.data;
		int row_nan[4];
		for (int r = 0; r < 4; r++) {
			row_nan[r] = 1;
			for (int k = 0; k < 5; k++)
				row_nan[r] &= isnan(y[r * 5 + k]) != 0;
		}
		CHECK(!row_nan[0] && row_nan[1] && row_nan[2] && !row_nan[3]);
		double s = 0;
		for (int k = 0; k < 5; k++)
			s += y[k];   /* softmax - onehot sums to 0 */
		CHECK_NEAR(s, 0, 1e-6);
		int all = 1;
		for (int i = 0; i < 15; i++)
			all &= isnan(gg[i]) != 0;
		CHECK(all);
		int32_t good[4] = {2, 0, 2, 4};
		memcpy(tt.data, good, sizeof good);
		rt_exec_run(e);
		CHECK(isfinite(y[5]) && isfinite(y[10]));
		/* row 2 = dy rows 0 and 2 added in order; rows 1 and 3 zero */
		CHECK(gg[6] == 0 + 6 && gg[7] == 1 + 7 && gg[8] == 2 + 8);
		CHECK(gg[3] == 0 && gg[9] == 0 && gg[0] == 3 && gg[12] == 9);
	} else {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
	}
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* The same kernels for narrower targets (AVX2: 8 lanes; SSE2: 4 lanes, no
 * FMA) and without optimisation, which this host also runs. */
static void test_other_targets(void)
{
	static const be_Options targets[] = {
		{.opt_level = 3, .cpu = "haswell", .features = "+avx2,+fma,+avx,+sse4.2"},
		{.opt_level = 3, .cpu = "x86-64", .features = "+sse2"},
		{.opt_level = 0},
	};
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		target = &targets[t];
		for (int op = 0; op < 9; op++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape s = SH(7, 129), s3 = SH(5, 19, 13), sr = SH(5, 13), si = SH(9);
			ValId x = in(g, "x", DT_F32, s), y = VAL_NONE;
			ValId args[3] = {x, in(g, "dy", DT_F32, s), VAL_NONE};
			switch (op) {
			case 0: y = ir_grad_op(g, OP_GELU_GRAD, args, 2, L0, &d); break;
			case 1: y = ir_grad_op(g, OP_SILU_GRAD, args, 2, L0, &d); break;
			case 2: y = ir_grad_op(g, OP_SOFTMAX_GRAD, args, 2, L0, &d); break;
			case 3: {
				Shape st = SH(7), sc = {0};
				irange = 129;
				ValId ce[3] = {x, in(g, "t", DT_I32, st), in(g, "dl", DT_F32, sc)};
				y = ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, ce, 3, L0, &d);
				break;
			}
			case 4: y = ir_max_grad(g, x, in(g, "dm", DT_F32, SH(7)), 1, L0, &d); break;
			case 5:
				y = ir_max_grad(g, in(g, "x3", DT_F32, s3), in(g, "d3", DT_F32, sr), 1, L0, &d);
				break;
			case 6:
				irange = 17;
				y = ir_gather_grad(g, in(g, "i", DT_I32, si), in(g, "dg", DT_F32, SH(9, 129)),
						   17, L0, &d);
				break;
			case 7: y = ir_grad_op(g, OP_CAUSAL_MASK_GRAD, &x, 1, L0, &d); break;
			case 8: y = ir_broadcast_to(g, in(g, "b", DT_F32, SH(7, 1)), &s, L0, &d); break;
			}
			char label[64];
			snprintf(label, sizeof label, "target %zu backward op %d", t, op);
			scale = 4;
			check_op(g, y, label);
			scale = 1;
			irange = 100;
			diag_free(&d);
			ir_graph_destroy(g);
		}
	}
	target = NULL;
}

/* ---- kernel deduplication ---- */

/* Equal kernels are emitted once and shared by their steps; anything that
 * changes the code (shape, constant value, op) makes a new one. */
static void test_dedup(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape a = SH(7, 129), b = SH(129, 7), one = SH(1);
	ValId x1 = in(g, "x1", DT_F32, a), x2 = in(g, "x2", DT_F32, a), x3 = in(g, "x3", DT_F32, b);
	ValId y[7];
	y[0] = ir_unary(g, OP_EXP, x1, L0, &d);
	y[1] = ir_unary(g, OP_EXP, x2, L0, &d);          /* = y[0]'s kernel */
	y[2] = ir_unary(g, OP_EXP, x3, L0, &d);          /* other shape */
	y[3] = ir_const(g, 1.5, DT_F32, &one, L0, &d);
	y[4] = ir_const(g, 2.5, DT_F32, &one, L0, &d);   /* other value */
	y[5] = ir_const(g, 1.5, DT_F32, &one, L0, &d);   /* = y[3]'s kernel */
	y[6] = ir_unary(g, OP_LOG, x2, L0, &d);          /* other op */
	static const char *const names[] = {"y0", "y1", "y2", "y3", "y4", "y5", "y6"};
	for (int i = 0; i < 7; i++)
		ir_set_output(g, names[i], y[i]);
	PassOptions po = {.verify = true, .alignment = 64};
	be_Module *m = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d));
	CHECK(be_compile(g, NULL, &m, &d) == 0);
	if (m) {
		CHECK_MSG(be_nkernel(m) == 5, "%d distinct kernels", be_nkernel(m));
		char *ir = be_emit_text(m, BE_TEXT_LLVM, &d);
		CHECK(ir && strstr(ir, "@k3_exp(") && !strstr(ir, "@k4_exp("));
		mem_free(ir);
		be_module_destroy(m);
	}
	check_values(g, &po, y, 7, TOL, "dedup");
	diag_free(&d);
	ir_graph_destroy(g);
}

/* ---- a whole training graph ---- */

#define MODEL_PATH MSW_SOURCE_DIR "/models/gpt.msw"

/* Parameters like a trained net's: layernorm gains near 1, the rest small
 * but not tiny, so every path carries gradient. */
static void fill_params(const Graph *g, double **val)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_PARAM)
			continue;
		for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
			double u = 2 * urand() - 1;
			val[v][i] = (float)(n->init == INIT_ONES ? 1 + 0.2 * u : 0.3 * u);
		}
	}
}

static void test_training_graph(void)
{
	static const fe_Define defs[] = {
		{"vocab", "61"}, {"ctx", "16"}, {"d", "32"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape shp[2] = {{.name = "tokens", .rank = 2, .dim = {2, 13}},
				{.name = "targets", .rank = 2, .dim = {2, 13}}};
	static const char *const freeze[] = {"h.1.ln_2.bias"};
	fe_Options fo = {.def = defs, .ndef = 5, .input = shp, .ninput = 2, .freeze = freeze,
			 .nfreeze = 1};
	PassOptions po = {.training = true, .verify = true, .alignment = 64};
	fe_Session *s = fe_session_create();
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	if (fe_compile_file(s, MODEL_PATH, &fo, &g, &d) || pass_run_pipeline(g, &po, NULL, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	CHECK(g->grad.len > 10 && g->loss != VAL_NONE);
	ncase++;
	rt_Program *p = NULL;
	be_Module *m = NULL;
	int nk = 0;
	if (be_compile(g, NULL, &m, &d) == 0) {
		nk = be_nkernel(m);
		be_module_destroy(m);
	}
	if (be_build_program(g, NULL, &p, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	double **val = calloc(ir_nnode(g), sizeof *val);
	irange = 61;
	fill_sources(g, val);
	irange = 100;
	fill_params(g, val);
	CHECK(ir_interp(g, val, &d) == 0);
	int ng = (int)g->grad.len;
	ValId want[MAXOUT];
	CHECK(ng + 1 <= MAXOUT);
	for (int i = 0; i < ng; i++)
		want[i] = VEC_AT(g->grad, GradPair, i).grad;
	want[ng] = g->loss;
	Run r1, r2;
	run(p, g, val, 1, 0, want, ng + 1, &r1);
	run(p, g, val, 2, 0, want, ng + 1, &r2);
	double worst = 0;
	for (int i = 0; i < r1.n; i++) {
		int64_t bad, n = ir_numel(&ir_node(g, want[i])->shape);
		double err = rel_error(RT_F32, r1.data[i], val[want[i]], n, 0, &bad);
		const char *name = i < ng ? ir_str(g, ir_node(g, VEC_AT(g->grad, GradPair, i).param)->name)
					  : "loss";
		CHECK_MSG(bad < 0 && err < 1e-4, "gpt gradient of %s: normwise relative error %.3g",
			  name, err);
		worst = err > worst ? err : worst;
		CHECK_MSG(!memcmp(r1.data[i], r2.data[i], (size_t)n * 4),
			  "gpt gradient of %s differs between 1 and 2 threads", name);
	}
	printf("gpt training graph: %d gradients, worst normwise relative error %.2g, %zu steps, "
	       "%d distinct kernels\n", ng, worst, p->step.len, nk);
	/* Program metadata: grad slots, phases, step outputs. */
	for (int i = 0; i < ng; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		char name[256];
		snprintf(name, sizeof name, "%s.grad", ir_str(g, ir_node(g, gp->param)->name));
		const rt_Slot *sl = rt_program_find(p, name);
		const rt_Slot *ps = sl && sl->param >= 0 && (size_t)sl->param < p->slot.len ?
				    &VEC_AT(p->slot, rt_Slot, sl->param) : NULL;
		CHECK_MSG(sl && sl->kind == RT_SLOT_GRAD && sl->offset == ir_node(g, gp->grad)->offset &&
			  ps && ps->kind == RT_SLOT_PARAM && strlen(ps->name) == strlen(name) - 5 &&
			  !strncmp(ps->name, name, strlen(name) - 5) && sl->nbytes == ps->nbytes,
			  "slot %s", name);
	}
	CHECK(rt_program_find(p, "h.1.ln_2.bias.grad") == NULL);
	uint32_t *ph = p->phase_start;
	CHECK(ph[0] == 0 && ph[1] > 0 && ph[1] < ph[2] && ph[2] == ph[3] && ph[3] == p->step.len);
	int masks = 0, sized = 1;
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		masks += st->out_masks;
		sized &= st->out_nbytes > 0;
	}
	CHECK(masks == 2 && sized);
	/* the second layer reuses the first's kernels */
	CHECK_MSG(nk > 0 && (size_t)nk * 2 < p->step.len, "%d kernels for %zu steps", nk, p->step.len);
	/* the forward phase alone computes the loss */
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *e = NULL;
	if (pool && !rt_exec_create(p, pool, &e, &d)) {
		char *arena = rt_exec_arena(e);
		for (ValId v = 0; v < ir_nnode(g); v++) {
			const Node *n = ir_node(g, v);
			if (n->op == OP_INPUT || n->op == OP_PARAM)
				for (int64_t i = 0; i < ir_numel(&n->shape); i++)
					put(n->dtype, arena + n->offset, i, val[v][i]);
		}
		rt_exec_run_phase(e, RT_PHASE_FORWARD);
		rt_Tensor tl;
		CHECK(rt_exec_tensor(e, "loss", &tl) == 0);
		CHECK(!memcmp(tl.data, r1.data[ng], 4));
		char g0[256];
		snprintf(g0, sizeof g0, "%s.grad",
			 ir_str(g, ir_node(g, VEC_AT(g->grad, GradPair, 0).param)->name));
		const rt_Slot *gs = rt_program_find(p, g0);
		CHECK(gs && ((float *)(arena + gs->offset))[0] == 0);   /* not yet computed */
		rt_exec_run_phase(e, RT_PHASE_BACKWARD);
		CHECK(gs && !memcmp(arena + gs->offset, r1.data[0], (size_t)gs->nbytes));
		CHECK(rt_exec_first_nonfinite(e) == -1);
	} else {
		CHECK(0);
	}
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	run_free(&r1);
	run_free(&r2);
	ir_interp_free(g, val);
	free_sources(g, val);
	free(val);
	rt_program_destroy(p);
done:
	diag_free(&d);
	ir_graph_destroy(g);
	fe_session_destroy(s);
}

int main(void)
{
	RUN(test_elementwise_grads);
	RUN(test_softmax_grad);
	RUN(test_cross_entropy_grad);
	RUN(test_gather_grad);
	RUN(test_causal_mask_grad);
	RUN(test_max_grad);
	RUN(test_broadcast);
	RUN(test_out_of_range);
	RUN(test_dedup);
	RUN(test_other_targets);
	RUN(test_training_graph);
	printf("%d graphs checked\n", ncase);
	return check_report();
}

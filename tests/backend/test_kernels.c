/* test_kernels.c: every kernel family of the backend against ir_interp.
 *
 * Each case builds a small graph with the ir builders (single ops on
 * awkward shapes: 1, 7, 129, broadcasting, every reduction axis, rank 3-4
 * permutes, ...), runs pass_infer_shapes and pass_plan_memory, JIT-compiles
 * it with be_build_program and runs it through rt_exec on a pool of 1 and
 * of 2 threads. Inputs are random and non-zero.
 *
 * Pass criteria:
 *   - accuracy: every output's normwise relative error against the
 *     double-precision interpreter, ||y - ref||_2 / ||ref||_2, is < 1e-5
 *     (positions where ref is NaN or infinite must match exactly and are
 *     left out of the norms);
 *   - determinism: 1 thread, 2 threads, and every step's tasks called one at
 *     a time in reverse order all give bitwise-identical outputs.
 * Integer outputs (cast, iota, movement of i32/u8) must match exactly. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/backend/harness.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5;
static const SrcLoc L0;

static uint64_t rng = 0x2545f4914f6cdd1dull;

static double urand(void)
{
	return harness_urand(&rng);
}

/* How to fill inputs: f32 uniform in +-[0.1, 1) * scale (only positive
 * when `positive`), i32 in [0, irange), u8 in [0, 256). */
static double scale = 1.0, irange = 100;
static int positive;

static double value_for(DType t)
{
	if (t == DT_I32)
		return floor(urand() * irange);
	if (t == DT_U8)
		return floor(urand() * 256);
	double x = (0.1 + 0.9 * urand()) * scale;
	return (float)(positive || urand() < 0.5 ? x : -x);
}


static double get(const rt_Tensor *t, int64_t i)
{
	switch (t->dtype) {
	case RT_F32: return ((float *)t->data)[i];
	case RT_I32: return ((int32_t *)t->data)[i];
	default: return ((uint8_t *)t->data)[i];
	}
}

static void put(rt_Tensor *t, int64_t i, double v)
{
	switch (t->dtype) {
	case RT_F32: ((float *)t->data)[i] = (float)v; break;
	case RT_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	default: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	}
}

/* Output and loss slots of a program, in slot order. */
static int result_slots(const rt_Program *p, const rt_Slot **out, int max)
{
	int n = 0;
	for (size_t i = 0; i < p->slot.len && n < max; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_OUTPUT || s->kind == RT_SLOT_LOSS)
			out[n++] = s;
	}
	return n;
}

static void fill_inputs(const Graph *g, double **val)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_INPUT && n->op != OP_PARAM)
			continue;
		int64_t k = ir_numel(&n->shape);
		val[v] = malloc((size_t)k * sizeof(double));
		for (int64_t i = 0; i < k; i++)
			val[v][i] = value_for(n->dtype);
	}
}

static void compare(const char *label, const char *name, const rt_Tensor *t, const double *ref,
		    int exact)
{
	double num = 0, den = 0;
	int64_t bad = -1;
	for (int64_t i = 0; i < rt_numel(t); i++) {
		double y = get(t, i), r = ref[i];
		if (!isfinite(r)) {
			int same = isnan(r) ? isnan(y) : y == r;
			if (!same && bad < 0)
				bad = i;
			continue;
		}
		if (exact && y != r && bad < 0)
			bad = i;
		num += (y - r) * (y - r);
		den += r * r;
	}
	double err = den > 0 ? sqrt(num / den) : sqrt(num);
	CHECK_MSG(bad < 0, "%s: output %s element %lld is %g, reference %g", label, name,
		  (long long)bad, bad < 0 ? 0 : get(t, bad), bad < 0 ? 0 : ref[bad]);
	CHECK_MSG(err < TOL, "%s: output %s normwise relative error %.3g", label, name, err);
}

/* The whole check for one graph. `ref_nan` cases have no interpreter
 * answer (it rejects out-of-range indices); the caller checks those. */
static rt_Program *compile(Graph *g, const be_Options *o, const char *label)
{
	Diag d;
	diag_init(&d);
	PassOptions po = {.verify = true, .alignment = 64};
	rt_Program *p = NULL;
	if (pass_infer_shapes(g, &po, &d) || pass_plan_memory(g, &po, &d) ||
	    be_build_program(g, o, &p, &d))
		fprintf(stderr, "%s: %s", label, diag_text(&d));
	CHECK_MSG(p != NULL, "%s: compile", label);
	diag_free(&d);
	return p;
}

enum { MAXOUT = 8 };

typedef struct Run {
	int nout;
	const rt_Slot *slot[MAXOUT];
	void *data[MAXOUT];   /* copies of the outputs */
} Run;

static void run(rt_Program *p, const Graph *g, double **val, int nthread, int scrambled, Run *r)
{
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(nthread);
	rt_Exec *e = NULL;
	if (!pool || rt_exec_create(p, pool, &e, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		CHECK(0);
		goto done;
	}
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_INPUT && n->op != OP_PARAM)
			continue;
		rt_Tensor t;
		CHECK(rt_exec_tensor(e, ir_str(g, n->name), &t) == 0);
		for (int64_t i = 0; i < rt_numel(&t); i++)
			put(&t, i, val[v][i]);
	}
	if (scrambled)
		run_scrambled(e, p);
	else
		rt_exec_run(e);
	r->nout = result_slots(p, r->slot, MAXOUT);
	for (int i = 0; i < r->nout; i++) {
		rt_Tensor t;
		rt_exec_slot_tensor(e, r->slot[i], &t);
		r->data[i] = malloc((size_t)r->slot[i]->nbytes);
		memcpy(r->data[i], t.data, (size_t)r->slot[i]->nbytes);
	}
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	diag_free(&d);
}

static void run_free(Run *r)
{
	for (int i = 0; i < r->nout; i++)
		free(r->data[i]);
}

static ValId slot_value(const Graph *g, const rt_Slot *s)
{
	if (s->kind == RT_SLOT_LOSS)
		return g->loss;
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		if (!strcmp(ir_str(g, o->name), s->name))
			return o->val;
	}
	return VAL_NONE;
}

static rt_Tensor as_tensor(const rt_Slot *s, void *data)
{
	rt_Tensor t = {.dtype = s->dtype, .rank = s->rank, .data = data};
	for (int i = 0; i < s->rank; i++)
		t.dim[i] = s->dim[i];
	return t;
}

static int ncase;

/* Check g (outputs already set) with options o; `expect` overrides the
 * interpreter for cases it rejects (NULL otherwise). */
static void check_graph_opts(Graph *g, const char *label, const be_Options *o, double **expect)
{
	ncase++;
	rt_Program *p = compile(g, o, label);
	if (!p)
		return;
	double **val = calloc(ir_nnode(g), sizeof *val);
	fill_inputs(g, val);
	Diag d;
	diag_init(&d);
	int ok = 1;
	if (!expect) {
		ok = ir_interp(g, val, &d) == 0;
		CHECK_MSG(ok, "%s: interp: %s", label, diag_text(&d));
	}
	Run r1 = {0}, r2 = {0}, r3 = {0};
	run(p, g, val, 1, 0, &r1);
	run(p, g, val, 2, 0, &r2);
	run(p, g, val, 1, 1, &r3);
	for (int i = 0; ok && i < r1.nout; i++) {
		const rt_Slot *s = r1.slot[i];
		const double *ref = expect ? expect[i] : val[slot_value(g, s)];
		rt_Tensor t = as_tensor(s, r1.data[i]);
		compare(label, s->name, &t, ref, s->dtype != RT_F32);
		CHECK_MSG(r2.nout == r1.nout && !memcmp(r1.data[i], r2.data[i], (size_t)s->nbytes),
			  "%s: %s differs between 1 and 2 threads", label, s->name);
		CHECK_MSG(r3.nout == r1.nout && !memcmp(r1.data[i], r3.data[i], (size_t)s->nbytes),
			  "%s: %s differs when tasks run one at a time", label, s->name);
	}
	run_free(&r1);
	run_free(&r2);
	run_free(&r3);
	if (!expect)
		ir_interp_free(g, val);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_INPUT || n->op == OP_PARAM)
			free(val[v]);
	}
	free(val);
	diag_free(&d);
	rt_program_destroy(p);
}

static void check_graph(Graph *g, const char *label)
{
	check_graph_opts(g, label, NULL, NULL);
}

static void output(Graph *g, ValId v)
{
	CHECK(v != VAL_NONE);
	if (v != VAL_NONE)
		ir_set_output(g, "y", v);
}

/* ---- elementwise ---- */

static const Shape *unary_shapes(int *n)
{
	static Shape s[6];
	s[0] = SH(1);
	s[1] = SH(7);
	s[2] = SH(129);
	s[3] = SH(3, 129);
	s[4] = SH(2, 7, 1, 5);
	s[5] = SH(257, 131);   /* several tasks */
	*n = 6;
	return s;
}

static void test_unary(void)
{
	static const struct { Op op; double scale; int positive; } ops[] = {
		{OP_NEG, 1, 0}, {OP_EXP, 20, 0}, {OP_LOG, 50, 1}, {OP_TANH, 3, 0},
		{OP_TANH, 0.5, 0}, {OP_SQRT, 50, 1}, {OP_RSQRT, 50, 1}, {OP_GELU, 4, 0},
		{OP_RELU, 1, 0}, {OP_SILU, 10, 0},
	};
	int ns;
	const Shape *sh = unary_shapes(&ns);
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		for (int j = 0; j < ns; j++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			output(g, ir_unary(g, ops[i].op, in(g, "x", DT_F32, sh[j]), L0, &d));
			char label[64];
			snprintf(label, sizeof label, "%s shape %d scale %g", ir_op[ops[i].op].name, j,
				 ops[i].scale);
			scale = ops[i].scale;
			positive = ops[i].positive;
			check_graph(g, label);
			scale = 1;
			positive = 0;
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

/* Run op over xs[0..n) on one thread; y receives the results. */
static void run_values(Op op, const float *xs, int n, float *y)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = SH(n);
	output(g, ir_unary(g, op, in(g, "x", DT_F32, s), L0, &d));
	PassOptions po = {.alignment = 64};
	rt_Program *p = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d) &&
	      !be_build_program(g, NULL, &p, &d));
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *e = NULL;
	if (p && pool && !rt_exec_create(p, pool, &e, &d)) {
		rt_Tensor tx, ty;
		rt_exec_tensor(e, "x", &tx);
		rt_exec_tensor(e, "y", &ty);
		memcpy(tx.data, xs, (size_t)n * sizeof *xs);
		rt_exec_run(e);
		memcpy(y, ty.data, (size_t)n * sizeof *y);
	} else {
		CHECK(0);
	}
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* y against the double result r: same NaN / infinity, 0 in the denormal
 * range within 1e-44, otherwise within 2.5 ulp. */
static void check_value(const char *f, float x, double r, float y)
{
	if (isnan(r))
		CHECK_MSG(isnan(y), "%s(%g) = %g", f, x, y);
	else if (fabs(r) > 3.4028234663852886e38)
		CHECK_MSG(isinf(y) && (y > 0) == (r > 0), "%s(%g) = %g", f, x, y);
	else if (fabs(r) < 1.2e-38)
		CHECK_MSG(fabs(y - r) < 1e-44, "%s(%g) = %g, want %g", f, x, y, r);
	else
		CHECK_MSG(fabs(y - r) <= 2.5 * 1.19e-7 * fabs(r), "%s(%g) = %.9g, want %.9g", f, x, y, r);
}

/* exp and log over their whole range: overflow, underflow, denormals,
 * zeros, infinities, NaN (the polynomial kernels handle these by hand). */
static void test_math_edges(void)
{
	static const float ex[] = {-INFINITY, -1000, -104.5f, -103, -100, -90, -88, -87.5f, -80, -50,
		-20, -10, -1, -0.5f, -1e-3f, -1e-7f, 0, 1e-7f, 1e-3f, 0.5f, 1, 2.5f, 10, 20, 50, 80,
		87, 88, 88.5f, 88.7f, 88.72f, 88.8f, 89, 100, 1000, INFINITY, NAN, 0.69314718f,
		-0.69314718f, 3};
	static const float lx[] = {0, -0.0f, -1, -INFINITY, 1e-45f, 1e-40f, 1e-38f, 1.17549435e-38f,
		1e-20f, 0.5f, 0.70710677f, 0.70710683f, 0.9999f, 1, 1.0001f, 1.5f, 2, 2.718281828f,
		10, 1e10f, 1e30f, 3.4e38f, INFINITY, NAN};
	enum { NE = sizeof ex / sizeof ex[0], NL = sizeof lx / sizeof lx[0] };
	float y[64];
	run_values(OP_EXP, ex, NE, y);
	for (int i = 0; i < NE; i++)
		check_value("exp", ex[i], exp((double)ex[i]), y[i]);
	run_values(OP_LOG, lx, NL, y);
	for (int i = 0; i < NL; i++)
		check_value("log", lx[i], lx[i] == 0 ? -INFINITY : log((double)lx[i]), y[i]);
	/* a dense sweep: every 1001st float in [2^-20, 2^20) for log,
	 * [-87, 88] for exp */
	static float xs[60000], ys[60000];
	int n = 0;
	for (uint32_t bits = 0x35800000u; bits < 0x49800000u && n < 60000; bits += 6007u, n++)
		memcpy(&xs[n], &bits, 4);
	run_values(OP_LOG, xs, n, ys);
	int bad = 0;
	for (int i = 0; i < n; i++)
		bad += fabs(ys[i] - log((double)xs[i])) > 2.5 * 1.19e-7 * fabs(log((double)xs[i])) + 1e-45;
	CHECK_MSG(bad == 0, "log: %d of %d sweep values off by more than 2.5 ulp", bad, n);
	for (int i = 0; i < 60000; i++)
		xs[i] = -87.0f + 175.0f * (float)i / 60000.0f;
	run_values(OP_EXP, xs, 60000, ys);
	bad = 0;
	for (int i = 0; i < 60000; i++)
		bad += fabs(ys[i] - exp((double)xs[i])) > 2.5 * 1.19e-7 * exp((double)xs[i]);
	CHECK_MSG(bad == 0, "exp: %d of 60000 sweep values off by more than 2.5 ulp", bad);
}

static void test_binary(void)
{
	static const struct { int ra, rb; int64_t a[4], b[4]; } cases[] = {
		{2, 2, {7, 1}, {1, 129}},
		{3, 1, {3, 1, 5}, {5}},
		{1, 1, {129}, {129}},
		{3, 2, {4, 7, 129}, {7, 1}},
		{1, 2, {1}, {33, 65}},
		{2, 1, {300, 200}, {200}},
		{2, 2, {300, 1}, {1, 200}},
		{4, 4, {2, 1, 3, 1}, {1, 5, 1, 7}},
		{0, 2, {0}, {3, 4}},
	};
	static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int o = 0; o < 4; o++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape sa = {.rank = (uint8_t)cases[c].ra}, sb = {.rank = (uint8_t)cases[c].rb};
			memcpy(sa.dim, cases[c].a, sizeof cases[c].a);
			memcpy(sb.dim, cases[c].b, sizeof cases[c].b);
			ValId a = in(g, "a", DT_F32, sa), b = in(g, "b", DT_F32, sb);
			output(g, ir_binary(g, ops[o], a, b, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "%s case %zu", ir_op[ops[o]].name, c);
			check_graph(g, label);
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

static void test_cast(void)
{
	static const struct { DType from, to; double scale; int positive; } cases[] = {
		{DT_F32, DT_I32, 100, 0}, {DT_I32, DT_F32, 1, 0}, {DT_F32, DT_U8, 250, 1},
		{DT_U8, DT_F32, 1, 0},    {DT_U8, DT_I32, 1, 0},  {DT_I32, DT_U8, 1, 0},
		{DT_F32, DT_F32, 1, 0},   {DT_I32, DT_I32, 1, 0},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int big = 0; big < 2; big++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape s = big ? SH(130, 300) : SH(3, 129);
			output(g, ir_cast(g, in(g, "x", cases[c].from, s), cases[c].to, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "cast %s->%s%s", ir_dtype_name[cases[c].from],
				 ir_dtype_name[cases[c].to], big ? " big" : "");
			scale = cases[c].scale;
			positive = cases[c].positive;
			irange = cases[c].to == DT_U8 ? 256 : 100000;
			check_graph(g, label);
			scale = 1;
			positive = 0;
			irange = 100;
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

static void test_sources(void)
{
	for (int t = 0; t < 2; t++) {
		DType dt = t ? DT_I32 : DT_F32;
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape s = SH(3, 129);
		ValId c = ir_const(g, t ? -7 : 0.375, dt, &s, L0, &d);
		ir_set_output(g, "c", c);
		ir_set_output(g, "i", ir_iota(g, 129, dt, L0, &d));
		ir_set_output(g, "j", ir_iota(g, 1, dt, L0, &d));
		Shape big = SH(70000);
		ir_set_output(g, "k", ir_const(g, t ? 3 : -2.5, dt, &big, L0, &d));
		ir_set_output(g, "l", ir_iota(g, 40000, dt, L0, &d));
		check_graph(g, t ? "const/iota i32" : "const/iota f32");
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

/* ---- reductions, softmax, cross-entropy ---- */

static void test_reduce(void)
{
	static const Op ops[] = {OP_SUM, OP_MEAN, OP_MAX};
	Shape shapes[] = {SH(7, 129, 5), SH(129), SH(1), SH(64, 1000), SH(1000, 64), SH(3, 1, 200, 70)};
	for (int o = 0; o < 3; o++)
		for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
			for (int axis = 0; axis < shapes[si].rank; axis++)
				for (int keep = 0; keep < 2; keep++) {
					Graph *g = ir_graph_create();
					Diag d;
					diag_init(&d);
					ValId x = in(g, "x", DT_F32, shapes[si]);
					output(g, ir_reduce(g, ops[o], x, axis, keep, L0, &d));
					char label[64];
					snprintf(label, sizeof label, "%s shape %zu axis %d keep %d",
						 ir_op[ops[o]].name, si, axis, keep);
					check_graph(g, label);
					diag_free(&d);
					ir_graph_destroy(g);
				}
}

static void test_softmax(void)
{
	Shape shapes[] = {SH(7, 129), SH(3, 5, 1), SH(1, 1000), SH(200, 300), SH(17), SH(2, 3, 64)};
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
		for (int masked = 0; masked < 2; masked++) {
			const Shape *sh = &shapes[si];
			if (masked && (sh->rank < 2 || sh->dim[sh->rank - 2] > sh->dim[sh->rank - 1]))
				continue;   /* causal_mask needs T <= S */
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			ValId x = in(g, "x", DT_F32, shapes[si]);
			if (masked)
				x = ir_causal_mask(g, x, L0, &d);
			output(g, ir_softmax(g, x, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "softmax shape %zu%s", si, masked ? " masked" : "");
			scale = 10;
			check_graph(g, label);
			scale = 1;
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

static void test_cross_entropy(void)
{
	static const struct { int rank; int64_t dim[3]; } cases[] = {
		{2, {7, 129}}, {3, {2, 3, 17}}, {1, {50}}, {2, {300, 257}}, {2, {1, 1}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape sl = {.rank = (uint8_t)cases[c].rank}, st = {.rank = (uint8_t)(cases[c].rank - 1)};
		memcpy(sl.dim, cases[c].dim, sizeof cases[c].dim);
		memcpy(st.dim, cases[c].dim, sizeof cases[c].dim);
		ValId lg = in(g, "logits", DT_F32, sl), tg = in(g, "targets", DT_I32, st);
		ValId l = ir_cross_entropy(g, lg, tg, L0, &d);
		CHECK(l != VAL_NONE);
		g->loss = l;
		ir_set_output(g, "ce", l);   /* also an output: two slots, one value */
		irange = (double)sl.dim[sl.rank - 1];
		scale = 8;
		char label[64];
		snprintf(label, sizeof label, "cross_entropy case %zu", c);
		check_graph(g, label);
		irange = 100;
		scale = 1;
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

/* ---- matmul ---- */

static void test_matmul(void)
{
	static const struct { int ra, rb; int64_t a[4], b[4]; unsigned fl; } cases[] = {
		{2, 2, {7, 129}, {129, 5}, 0},
		{2, 2, {129, 7}, {129, 5}, NF_TRANS_A},
		{2, 2, {7, 129}, {5, 129}, NF_TRANS_B},
		{2, 2, {129, 7}, {5, 129}, NF_TRANS_A | NF_TRANS_B},
		{2, 2, {1, 1}, {1, 1}, 0},
		{4, 2, {2, 3, 7, 9}, {9, 5}, 0},
		{4, 4, {3, 1, 7, 9}, {1, 4, 9, 5}, 0},
		{3, 3, {2, 33, 17}, {2, 40, 17}, NF_TRANS_B},
		{2, 3, {33, 17}, {3, 17, 40}, 0},
		{2, 2, {200, 130}, {130, 150}, 0},
		{3, 3, {4, 64, 64}, {4, 64, 64}, NF_TRANS_B},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int ref = 0; ref < 2; ref++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape sa = {.rank = (uint8_t)cases[c].ra}, sb = {.rank = (uint8_t)cases[c].rb};
			memcpy(sa.dim, cases[c].a, sizeof cases[c].a);
			memcpy(sb.dim, cases[c].b, sizeof cases[c].b);
			ValId a = in(g, "a", DT_F32, sa), b = in(g, "b", DT_F32, sb);
			output(g, ir_matmul(g, a, b, cases[c].fl, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "matmul%s case %zu", ref ? "_ref" : "", c);
			be_Options o = {.opt_level = 3, .matmul_ref = ref};
			check_graph_opts(g, label, &o, NULL);
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

/* ---- data movement ---- */

static void test_permute(void)
{
	static const struct { int rank; int64_t dim[4]; uint8_t perm[4]; } cases[] = {
		{3, {3, 7, 129}, {2, 0, 1}}, {3, {3, 7, 129}, {1, 0, 2}}, {3, {3, 7, 129}, {0, 2, 1}},
		{4, {2, 3, 5, 7}, {0, 2, 1, 3}}, {4, {2, 3, 5, 7}, {3, 2, 1, 0}},
		{4, {2, 1, 5, 7}, {1, 0, 3, 2}}, {2, {300, 257}, {1, 0}}, {4, {4, 64, 4, 32}, {0, 2, 1, 3}},
		{3, {1, 1, 1}, {2, 1, 0}},
		{3, {2, 48, 32}, {0, 2, 1}},   /* the sparse kernels' blocks: whole tiles only */
	};
	static const DType types[] = {DT_F32, DT_I32, DT_U8};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int t = 0; t < 3; t++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape s = {.rank = (uint8_t)cases[c].rank};
			memcpy(s.dim, cases[c].dim, sizeof cases[c].dim);
			output(g, ir_permute(g, in(g, "x", types[t], s), cases[c].perm, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "permute case %zu %s", c, ir_dtype_name[types[t]]);
			check_graph(g, label);
			diag_free(&d);
			ir_graph_destroy(g);
		}
}

static void test_slice_concat(void)
{
	static const DType types[] = {DT_F32, DT_I32, DT_U8};
	Shape s = SH(7, 129, 5);
	static const int64_t bounds[3][2] = {{1, 6}, {3, 100}, {4, 5}};
	for (int t = 0; t < 3; t++)
		for (int axis = 0; axis < 3; axis++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			ValId x = in(g, "x", types[t], s);
			ir_set_output(g, "s", ir_slice(g, x, axis, bounds[axis][0], bounds[axis][1], L0, &d));
			Shape s1 = s, s2 = s;
			s1.dim[axis] = 1;
			s2.dim[axis] = 3;
			ValId xs[3] = {x, in(g, "x1", types[t], s1), in(g, "x2", types[t], s2)};
			ir_set_output(g, "c", ir_concat(g, xs, 3, axis, L0, &d));
			char label[64];
			snprintf(label, sizeof label, "slice/concat axis %d %s", axis, ir_dtype_name[types[t]]);
			check_graph(g, label);
			diag_free(&d);
			ir_graph_destroy(g);
		}
	/* big enough for several tasks */
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape b = SH(300, 257);
	ValId x = in(g, "x", DT_F32, b);
	ir_set_output(g, "s", ir_slice(g, x, 1, 1, 256, L0, &d));
	ValId xs[3] = {x, x, x};
	ir_set_output(g, "c", ir_concat(g, xs, 3, 1, L0, &d));
	check_graph(g, "slice/concat big");
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_gather(void)
{
	static const struct { int64_t V, D; int rank; int64_t idx[3]; } cases[] = {
		{129, 33, 2, {7, 5}}, {1, 1, 1, {3}}, {50, 256, 2, {8, 64}}, {7, 129, 3, {2, 3, 4}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape st = SH(cases[c].V, cases[c].D), si = {.rank = (uint8_t)cases[c].rank};
		memcpy(si.dim, cases[c].idx, sizeof cases[c].idx);
		ValId tab = in(g, "table", DT_F32, st), idx = in(g, "idx", DT_I32, si);
		output(g, ir_gather(g, tab, idx, L0, &d));
		irange = (double)cases[c].V;
		char label[64];
		snprintf(label, sizeof label, "gather case %zu", c);
		check_graph(g, label);
		irange = 100;
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

/* Out-of-range gather indices and CE targets give NaN, never a wrong number
 * (the interpreter rejects them, so the expectation is written here). */
static void test_out_of_range(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape st = SH(5, 3), si = SH(4), sl = SH(4, 5);
	ValId tab = in(g, "table", DT_F32, st), idx = in(g, "idx", DT_I32, si);
	ValId lg = in(g, "logits", DT_F32, sl);
	ir_set_output(g, "y", ir_gather(g, tab, idx, L0, &d));
	g->loss = ir_cross_entropy(g, lg, idx, L0, &d);
	PassOptions po = {.alignment = 64};
	rt_Program *p = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d) &&
	      !be_build_program(g, NULL, &p, &d));
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *e = NULL;
	if (p && pool && !rt_exec_create(p, pool, &e, &d)) {
		rt_Tensor tt, ti, tl, ty, tloss;
		rt_exec_tensor(e, "table", &tt);
		rt_exec_tensor(e, "idx", &ti);
		rt_exec_tensor(e, "logits", &tl);
		rt_exec_tensor(e, "y", &ty);
		rt_exec_tensor(e, "loss", &tloss);
		for (int i = 0; i < 15; i++)
			((float *)tt.data)[i] = (float)i;
		for (int i = 0; i < 20; i++)
			((float *)tl.data)[i] = (float)(i % 7) * 0.5f;
		int32_t bad[4] = {2, 5, -1, 4};
		memcpy(ti.data, bad, sizeof bad);
		rt_exec_run(e);
		float *y = ty.data;
		CHECK(y[0] == 6 && y[1] == 7 && y[2] == 8);
		CHECK(isnan(y[3]) && isnan(y[4]) && isnan(y[5]));
		CHECK(isnan(y[6]) && isnan(y[7]) && isnan(y[8]));
		CHECK(y[9] == 12 && y[10] == 13 && y[11] == 14);
		CHECK(isnan(*(float *)tloss.data));
		int32_t good[4] = {2, 0, 1, 4};
		memcpy(ti.data, good, sizeof good);
		rt_exec_run(e);
		CHECK(isfinite(*(float *)tloss.data));
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

static void test_causal_mask(void)
{
	Shape shapes[] = {SH(2, 7, 13), SH(5, 5), SH(3, 2, 4, 9), SH(1, 1), SH(4, 128, 256)};
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		output(g, ir_causal_mask(g, in(g, "x", DT_F32, shapes[si]), L0, &d));
		char label[64];
		snprintf(label, sizeof label, "causal_mask shape %zu", si);
		check_graph(g, label);
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

/* ---- small multi-op graphs ---- */

static void test_multi_op(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape sx = SH(2, 7, 33), sw = SH(33, 65), sb = SH(65);
	ValId x = in(g, "x", DT_F32, sx);
	ValId w = ir_param(g, "w", &sw, INIT_NORMAL, 0.02, L0, &d);
	ValId b = ir_param(g, "b", &sb, INIT_ZEROS, 0, L0, &d);
	ValId h = ir_unary(g, OP_GELU, ir_binary(g, OP_ADD, ir_matmul(g, x, w, 0, L0, &d), b, L0, &d),
			   L0, &d);
	Shape r = SH(14, 65);
	ValId hr = ir_reshape(g, h, &r, L0, &d);
	ValId m = ir_reduce(g, OP_MEAN, hr, 1, true, L0, &d);
	ValId c = ir_binary(g, OP_SUB, hr, m, L0, &d);
	ValId v = ir_reduce(g, OP_MEAN, ir_binary(g, OP_MUL, c, c, L0, &d), 1, true, L0, &d);
	Shape one = SH(1);
	ValId eps = ir_const(g, 1e-5, DT_F32, &one, L0, &d);
	ValId ln = ir_binary(g, OP_MUL, c, ir_unary(g, OP_RSQRT, ir_binary(g, OP_ADD, v, eps, L0, &d),
						     L0, &d), L0, &d);
	ir_set_output(g, "ln", ln);
	ir_set_output(g, "h", hr);   /* a reshape as an output */
	ir_set_output(g, "w_out", w); /* a param as an output */
	ValId sm = ir_softmax(g, ir_causal_mask(g, ir_matmul(g, ln, ln, NF_TRANS_B, L0, &d), L0, &d),
			      L0, &d);
	ir_set_output(g, "p", sm);
	CHECK(sm != VAL_NONE);
	check_graph(g, "mlp + layernorm + attention scores");
	diag_free(&d);
	ir_graph_destroy(g);
}

/* ---- text output ---- */

static void test_emit_text(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = SH(64, 256);
	ValId x = in(g, "x", DT_F32, s);
	ValId y = ir_softmax(g, ir_unary(g, OP_EXP, x, L0, &d), L0, &d);
	output(g, y);
	PassOptions po = {.alignment = 64};
	be_Module *m = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d));
	CHECK(be_compile(g, NULL, &m, &d) == 0);
	if (m) {
		CHECK(be_nkernel(m) == 2);
		char *ir = be_emit_text(m, BE_TEXT_LLVM, &d);
		char *as = be_emit_text(m, BE_TEXT_ASM, &d);
		CHECK(ir && strstr(ir, "define void @k1_exp(") && strstr(ir, "@k2_softmax("));
		CHECK(as && strstr(as, "k1_exp:") && strstr(as, "k2_softmax:"));
		char *feat = LLVMGetHostCPUFeatures(), list[8192];
		snprintf(list, sizeof list, ",%s,", feat);
		int avx512 = strstr(list, ",+avx512f,") != NULL;
		LLVMDisposeMessage(feat);
		if (avx512)
			CHECK_MSG(as && strstr(as, "%zmm"), "host has avx512f but no zmm in assembly");
		else
			printf("note: host has no AVX-512, zmm check skipped\n");
		/* an explicit AVX2 target: 256-bit vectors only */
		be_Options avx2 = {.opt_level = 3, .cpu = "haswell", .features = "+avx2,+fma,+avx"};
		be_Module *m2 = NULL;
		CHECK(be_compile(g, &avx2, &m2, &d) == 0);
		char *as2 = m2 ? be_emit_text(m2, BE_TEXT_ASM, &d) : NULL;
		CHECK(as2 && strstr(as2, "%ymm") && !strstr(as2, "%zmm"));
		mem_free(as2);
		be_module_destroy(m2);
		/* the module still JITs after being printed */
		rt_Program *p = NULL;
		CHECK(be_jit(m, g, &p, &d) == 0);
		CHECK(p && p->step.len == 2);
		CHECK(be_emit_text(m, BE_TEXT_LLVM, &d) == NULL);   /* consumed */
		rt_program_destroy(p);
		mem_free(ir);
		mem_free(as);
		be_module_destroy(m);
	}
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Slots: params keep their initialiser, a value that is output and loss
 * gets a slot under each name. */
static void test_slots(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = SH(4, 5), t = SH(4);
	ValId w = ir_param(g, "w", &s, INIT_NORMAL, 0.02, L0, &d);
	ir_node(g, w)->flags |= NF_FROZEN;
	ValId tg = in(g, "t", DT_I32, t);
	ValId l = ir_cross_entropy(g, w, tg, L0, &d);
	g->loss = l;
	ir_set_output(g, "l", l);
	PassOptions po = {.alignment = 64};
	rt_Program *p = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d) &&
	      !be_build_program(g, NULL, &p, &d));
	if (p) {
		const rt_Slot *sw = rt_program_find(p, "w"), *st = rt_program_find(p, "t");
		const rt_Slot *sl = rt_program_find(p, "l"), *sloss = rt_program_find(p, "loss");
		CHECK(sw && sw->kind == RT_SLOT_PARAM && sw->init == 1 && sw->init_std == 0.02 &&
		      sw->frozen && sw->rank == 2 && sw->dim[1] == 5 && sw->nbytes == 80);
		CHECK(st && st->kind == RT_SLOT_INPUT && st->dtype == RT_I32);
		CHECK(sl && sl->kind == RT_SLOT_OUTPUT && sloss && sloss->kind == RT_SLOT_LOSS);
		CHECK(sl && sloss && sl->offset == sloss->offset && sl->rank == 0);
		CHECK(p->step.len == 1 && !strcmp(VEC_AT(p->step, rt_Step, 0).name, "k2_cross_entropy"));
		CHECK(p->code_owner && p->code_release);
	}
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* A graph with no kernel at all (an input passed through a reshape): an
 * empty module still JITs, and the output slot aliases the input. */
static void test_no_kernels(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = SH(3, 4), r = SH(12);
	ValId x = in(g, "x", DT_I32, s);
	output(g, ir_reshape(g, x, &r, L0, &d));
	PassOptions po = {.alignment = 64};
	rt_Program *p = NULL;
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d) &&
	      !be_build_program(g, NULL, &p, &d));
	if (p) {
		CHECK(p->step.len == 0);
		const rt_Slot *sx = rt_program_find(p, "x"), *sy = rt_program_find(p, "y");
		CHECK(sx && sy && sx->offset == sy->offset && sy->rank == 1 && sy->dim[0] == 12);
	}
	check_graph(g, "reshape only");
	rt_program_destroy(p);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* The same kernels for narrower targets (AVX2: 8 lanes; SSE2: 4 lanes, no
 * FMA), which this host can also run: every vector width and the non-FMA
 * path stay tested on an AVX-512 machine. */
static void test_other_targets(void)
{
	static const be_Options targets[] = {
		{.opt_level = 3, .cpu = "haswell", .features = "+avx2,+fma,+avx,+sse4.2"},
		{.opt_level = 3, .cpu = "x86-64", .features = "+sse2"},
		{.opt_level = 3, .cpu = "x86-64", .features = "+sse2", .matmul_ref = true},
		{.opt_level = 0},
	};
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		for (int op = 0; op < 9; op++) {
			Graph *g = ir_graph_create();
			Diag d;
			diag_init(&d);
			Shape s = SH(7, 129), sb = SH(7, 1), sw = SH(129, 33);
			ValId x = in(g, "x", DT_F32, s), y = VAL_NONE;
			uint8_t perm[2] = {1, 0};
			switch (op) {
			case 0: y = ir_softmax(g, ir_causal_mask(g, x, L0, &d), L0, &d); break;
			case 1: y = ir_unary(g, OP_GELU, x, L0, &d); break;
			case 2: y = ir_binary(g, OP_DIV, x, in(g, "b", DT_F32, sb), L0, &d); break;
			case 3: y = ir_reduce(g, OP_SUM, x, 0, false, L0, &d); break;
			case 4: y = ir_reduce(g, OP_MAX, x, 1, true, L0, &d); break;
			case 5: y = ir_permute(g, x, perm, L0, &d); break;
			case 6: y = ir_matmul(g, x, in(g, "w", DT_F32, sw), 0, L0, &d); break;
			case 7: y = ir_unary(g, OP_LOG, ir_unary(g, OP_EXP, x, L0, &d), L0, &d); break;
			case 8: {
				Shape st = SH(7);
				irange = 129;
				y = ir_cross_entropy(g, x, in(g, "t", DT_I32, st), L0, &d);
				break;
			}
			}
			output(g, y);
			char label[64];
			snprintf(label, sizeof label, "target %zu op %d", t, op);
			scale = 4;
			check_graph_opts(g, label, &targets[t], NULL);
			scale = 1;
			irange = 100;
			diag_free(&d);
			ir_graph_destroy(g);
		}
	}
}

/* Every allocation the backend makes can fail: be_build_program must then
 * return an error (never crash or leak; the sanitizer build checks leaks)
 * and succeed again once allocations work. */
static void test_out_of_memory(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = SH(7, 129), sb = SH(129);
	ValId x = in(g, "x", DT_F32, s);
	ValId b = ir_param(g, "b", &sb, INIT_ZEROS, 0, L0, &d);
	output(g, ir_softmax(g, ir_binary(g, OP_ADD, x, b, L0, &d), L0, &d));
	PassOptions po = {.alignment = 64};
	CHECK(!pass_infer_shapes(g, &po, &d) && !pass_plan_memory(g, &po, &d));
	int failed = 0, k;
	for (k = 1; k < 200; k++) {
		rt_Program *p = NULL;
		Diag e;
		diag_init(&e);
		mem_fail_after(k);
		int rc = be_build_program(g, NULL, &p, &e);
		mem_fail_after(0);
		diag_free(&e);
		if (rc) {
			CHECK(p == NULL);
			failed++;
			continue;
		}
		CHECK(p != NULL);
		rt_program_destroy(p);
		break;
	}
	CHECK_MSG(failed > 0 && k < 200, "%d failures before success at %d", failed, k);
	diag_free(&d);
	ir_graph_destroy(g);
}

int main(void)
{
	RUN(test_unary);
	RUN(test_math_edges);
	RUN(test_binary);
	RUN(test_cast);
	RUN(test_sources);
	RUN(test_reduce);
	RUN(test_softmax);
	RUN(test_cross_entropy);
	RUN(test_matmul);
	RUN(test_permute);
	RUN(test_slice_concat);
	RUN(test_gather);
	RUN(test_out_of_range);
	RUN(test_causal_mask);
	RUN(test_multi_op);
	RUN(test_emit_text);
	RUN(test_slots);
	RUN(test_out_of_memory);
	RUN(test_other_targets);
	RUN(test_no_kernels);
	printf("%d graphs checked\n", ncase);
	return check_report();
}

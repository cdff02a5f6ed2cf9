/* test_autodiff.c: the autodiff pass, checked by finite differences.
 *
 * Every differentiable op is put in a graph whose params are its operands,
 * with loss = sum(op(params) * R) for a fixed random input R (cross-entropy
 * is its own loss). After pass_autodiff the reference interpreter computes
 * the loss and every param gradient in double; each gradient entry is then
 * compared with the central difference (L(p+h) - L(p-h)) / 2h, h = 1e-6.
 *
 * Tolerance: |fd - grad| <= 1e-6 * max(1, |grad|). In double the central
 * difference errs by about h^2 |f'''| / 6 (~1e-12 here) plus rounding of
 * about 1e-16 |L| / h (~1e-10 for losses of order 1-10), so 1e-6 leaves a
 * wide margin while a wrong rule (a missing factor, a transposed operand, an
 * unsummed broadcast axis) is off by the size of the gradient itself.
 * Inputs are random in [-1,-0.1] u [0.1,1] (positive where the op needs
 * it), so no point sits within h of a kink (relu at 0, ties in max).
 *
 * Also: the backward kernels' own semantics on hand-worked examples, a
 * two-layer GPT-like block end to end, frozen and unused params, a param
 * read twice, failure leaving the graph unchanged (including every
 * allocation failing in turn), the pipeline, dce and plan_memory with
 * gradients, the verifier, and print/parse of the grad lines. */
#include "../check.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

static SrcLoc noloc;
static uint64_t rng = 0x243f6a8885a308d3u;

static double uni(void)
{
	rng = rng * 6364136223846793005u + 1442695040888963407u;
	return (double)(rng >> 11) / 9007199254740992.0; /* [0,1) */
}

/* [-1,-0.1] u [0.1,1]: never zero, never tiny */
static double rnd(void)
{
	double m = 0.1 + 0.9 * uni();
	return uni() < 0.5 ? -m : m;
}

static Shape S(int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
	return (Shape){.rank = (uint8_t)rank, .dim = {a, b, c, d}};
}

static const double H = 1e-6, TOL = 1e-6;

/* Params named "p..." are positive (log, sqrt, divisors); i32 inputs hold
 * (7i + 3) mod int_hi, so indices repeat once there are more than int_hi. */
static double *fill_source(const Graph *g, ValId v, int64_t int_hi)
{
	const Node *n = ir_node(g, v);
	int64_t k = ir_numel(&n->shape);
	double *x = calloc((size_t)k, sizeof *x);
	const char *name = ir_str(g, n->name);
	for (int64_t i = 0; i < k; i++) {
		if (n->dtype == DT_I32)
			x[i] = (double)((7 * i + 3) % (int_hi > 0 ? int_hi : 1));
		else if (n->op == OP_PARAM && name[0] == 'p')
			x[i] = 0.5 + uni();
		else
			x[i] = rnd();
	}
	return x;
}

static double **vals_new(const Graph *g, int64_t int_hi)
{
	double **val = calloc(ir_nnode(g), sizeof *val);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		Op op = ir_node(g, v)->op;
		if (op == OP_INPUT || op == OP_PARAM)
			val[v] = fill_source(g, v, int_hi);
	}
	return val;
}

static void vals_free(const Graph *g, double **val, uint32_t nsrc)
{
	ir_interp_free(g, val);
	for (ValId v = 0; v < nsrc; v++)
		free(val[v]);
	free(val);
}

/* loss = sum(y * R), R a random input of y's shape */
static ValId sum_times_r(Graph *g, ValId y, Diag *d)
{
	Shape s = ir_node(g, y)->shape, flat = S(1, ir_numel(&s), 0, 0, 0);
	ValId r = ir_input(g, "R", DT_F32, &s, noloc, d);
	ValId m = ir_binary(g, OP_MUL, y, r, noloc, d);
	ValId f = ir_reshape(g, m, &flat, noloc, d);
	return ir_reduce(g, OP_SUM, f, 0, false, noloc, d);
}

static double loss_at(const Graph *g, double **val)
{
	Diag d;
	diag_init(&d);
	double l = NAN;
	if (ir_interp(g, val, &d) == 0)
		l = val[g->loss][0];
	else
		fprintf(stderr, "%s", diag_text(&d));
	ir_interp_free(g, val);
	diag_free(&d);
	return l;
}

static int nfd; /* gradient entries compared, for the summary */

/* Runs autodiff on g (its loss set) and compares every gradient entry, or
 * `sample` random entries per param when sample > 0, with central
 * differences. Consumes g. */
static void fd_graph(Graph *g, int64_t int_hi, int sample, const char *what)
{
	Diag d;
	diag_init(&d);
	uint32_t nsrc = ir_nnode(g);
	int ntrain = 0;
	for (ValId v = 0; v < nsrc; v++)
		ntrain += ir_node(g, v)->op == OP_PARAM && !(ir_node(g, v)->flags & NF_FROZEN);
	PassOptions o = {.training = true};
	int rc = pass_autodiff(g, &o, &d);
	CHECK_MSG(rc == 0, "%s: %s", what, diag_text(&d));
	CHECK_MSG(ir_verify(g, &d) == 0, "%s: %s", what, diag_text(&d));
	CHECK_MSG((int)g->grad.len == ntrain, "%s: %zu gradients for %d params", what,
		  g->grad.len, ntrain);
	if (rc) {
		diag_free(&d);
		ir_graph_destroy(g);
		return;
	}
	double **val = vals_new(g, int_hi);
	CHECK_MSG(ir_interp(g, val, &d) == 0, "%s: %s", what, diag_text(&d));
	size_t ng = g->grad.len;
	double **an = calloc(ng, sizeof *an);
	for (size_t k = 0; k < ng; k++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, k);
		int64_t len = ir_numel(&ir_node(g, gp->param)->shape);
		an[k] = malloc((size_t)len * sizeof **an);
		memcpy(an[k], val[gp->grad], (size_t)len * sizeof **an);
	}
	ir_interp_free(g, val);
	for (size_t k = 0; k < ng; k++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, k);
		const Node *p = ir_node(g, gp->param);
		int64_t len = ir_numel(&p->shape);
		int64_t count = sample > 0 && sample < len ? sample : len;
		for (int64_t j = 0; j < count; j++) {
			int64_t i = count == len ? j : (int64_t)(uni() * (double)len);
			double *x = val[gp->param], keep = x[i];
			x[i] = keep + H;
			double lp = loss_at(g, val);
			x[i] = keep - H;
			double lm = loss_at(g, val);
			x[i] = keep;
			double fd = (lp - lm) / (2 * H), a = an[k][i];
			nfd++;
			CHECK_MSG(fabs(fd - a) <= TOL * fmax(1, fabs(a)),
				  "%s: d loss / d %s[%lld]: autodiff %.12g, finite difference %.12g",
				  what, ir_str(g, p->name), (long long)i, a, fd);
		}
		free(an[k]);
	}
	free(an);
	vals_free(g, val, nsrc);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* fd_graph with loss = sum(y * R) */
static void fd_check(Graph *g, ValId y, Diag *d, int64_t int_hi, const char *what)
{
	ValId l = y == VAL_NONE ? VAL_NONE : sum_times_r(g, y, d);
	CHECK_MSG(l != VAL_NONE && d->nerror == 0, "%s: building: %s", what, diag_text(d));
	diag_free(d);
	if (l == VAL_NONE) {
		ir_graph_destroy(g);
		return;
	}
	g->loss = l;
	fd_graph(g, int_hi, 0, what);
}

static Graph *start(Diag *d)
{
	diag_init(d);
	return ir_graph_create();
}

static void test_unary(void)
{
	static const Op ops[] = {OP_NEG, OP_EXP, OP_LOG, OP_TANH, OP_SQRT, OP_RSQRT,
				 OP_GELU, OP_RELU, OP_SILU, OP_CAST};
	Shape s = S(3, 2, 3, 5, 0);
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		Diag d;
		Graph *g = start(&d);
		bool pos = ops[k] == OP_LOG || ops[k] == OP_SQRT || ops[k] == OP_RSQRT;
		ValId x = ir_param(g, pos ? "px" : "x", &s, INIT_NONE, 0, noloc, &d);
		ValId y = ops[k] == OP_CAST ? ir_cast(g, x, DT_F32, noloc, &d)
					    : ir_unary(g, ops[k], x, noloc, &d);
		fd_check(g, y, &d, 0, ir_op[ops[k]].name);
	}
}

static void test_binary(void)
{
	static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
	static const Shape pairs[][2] = {
		{{3, {2, 3, 4}}, {3, {2, 3, 4}}},
		{{3, {2, 3, 4}}, {1, {4}}},
		{{3, {2, 1, 4}}, {2, {3, 1}}},
		{{2, {3, 4}}, {3, {2, 3, 4}}},
		{{1, {1}}, {2, {2, 3}}},
		{{0, {0}}, {3, {2, 1, 3}}},
		{{4, {2, 1, 3, 1}}, {3, {4, 1, 5}}},
	};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
		for (size_t j = 0; j < sizeof pairs / sizeof pairs[0]; j++)
			for (int swap = 0; swap < 2; swap++) {
				Diag d;
				Graph *g = start(&d);
				Shape sa = pairs[j][swap], sb = pairs[j][!swap];
				ValId a = ir_param(g, "a", &sa, INIT_NONE, 0, noloc, &d);
				ValId b = ir_param(g, "pb", &sb, INIT_NONE, 0, noloc, &d);
				ValId y = ir_binary(g, ops[k], a, b, noloc, &d);
				char what[64];
				snprintf(what, sizeof what, "%s pair %zu%s", ir_op[ops[k]].name, j,
					 swap ? " swapped" : "");
				fd_check(g, y, &d, 0, what);
			}
	/* one side an input: only the other gets a gradient */
	Diag d;
	Graph *g = start(&d);
	Shape sa = S(2, 3, 4, 0, 0), sb = S(1, 4, 0, 0, 0);
	ValId a = ir_input(g, "a", DT_F32, &sa, noloc, &d);
	ValId b = ir_param(g, "pb", &sb, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_binary(g, OP_DIV, a, b, noloc, &d), &d, 0, "div by a param");
}

static void test_reduce(void)
{
	static const Op ops[] = {OP_SUM, OP_MEAN, OP_MAX};
	Shape s = S(3, 2, 3, 4, 0);
	for (size_t k = 0; k < 3; k++)
		for (int axis = -1; axis < 3; axis++)
			for (int keep = 0; keep < 2; keep++) {
				Diag d;
				Graph *g = start(&d);
				ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
				ValId y = ir_reduce(g, ops[k], x, axis, keep, noloc, &d);
				char what[64];
				snprintf(what, sizeof what, "%s axis %d%s", ir_op[ops[k]].name, axis,
					 keep ? " keepdim" : "");
				fd_check(g, y, &d, 0, what);
			}
	/* a rank-1 reduction to a scalar */
	Diag d;
	Graph *g = start(&d);
	Shape v = S(1, 7, 0, 0, 0);
	ValId x = ir_param(g, "x", &v, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_reduce(g, OP_MAX, x, 0, false, noloc, &d), &d, 0, "max to a scalar");
}

/* Stored shapes from logical [.., M, K] and [.., K, N] and the flags. */
static Shape stored(Shape s, bool trans)
{
	if (trans) {
		int64_t t = s.dim[s.rank - 1];
		s.dim[s.rank - 1] = s.dim[s.rank - 2];
		s.dim[s.rank - 2] = t;
	}
	return s;
}

static void test_matmul(void)
{
	/* logical A [.., M=3, K=4], B [.., K=4, N=5] */
	static const Shape va[] = {
		{2, {3, 4}}, {3, {2, 3, 4}}, {2, {3, 4}}, {4, {2, 1, 3, 4}}, {3, {2, 3, 4}},
		{4, {2, 3, 3, 4}},
	};
	static const Shape vb[] = {
		{2, {4, 5}}, {2, {4, 5}}, {3, {2, 4, 5}}, {3, {3, 4, 5}}, {3, {1, 4, 5}},
		{2, {4, 5}},
	};
	for (size_t j = 0; j < sizeof va / sizeof va[0]; j++)
		for (unsigned f = 0; f < 4; f++) {
			bool ta = f & 1, tb = f & 2;
			Diag d;
			Graph *g = start(&d);
			Shape sa = stored(va[j], ta), sb = stored(vb[j], tb);
			ValId a = ir_param(g, "a", &sa, INIT_NONE, 0, noloc, &d);
			ValId b = ir_param(g, "b", &sb, INIT_NONE, 0, noloc, &d);
			ValId y = ir_matmul(g, a, b, (ta ? NF_TRANS_A : 0) | (tb ? NF_TRANS_B : 0),
					    noloc, &d);
			char what[64];
			snprintf(what, sizeof what, "matmul variant %zu%s%s", j, ta ? " transa" : "",
				 tb ? " transb" : "");
			fd_check(g, y, &d, 0, what);
		}
	/* x x^T: both operands are one param */
	Diag d;
	Graph *g = start(&d);
	Shape s = S(3, 2, 3, 4, 0);
	ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_matmul(g, x, x, NF_TRANS_B, noloc, &d), &d, 0, "matmul x x^T");
}

/* The weight gradient of a batched activation times a matrix is one
 * matmul over the flattened batch, with transa, not a batch summed later. */
static void test_matmul_flattened(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape sa = S(3, 2, 3, 4, 0), sb = S(2, 4, 5, 0, 0);
	ValId a = ir_input(g, "a", DT_F32, &sa, noloc, &d);
	ValId b = ir_param(g, "b", &sb, INIT_NONE, 0, noloc, &d);
	g->loss = sum_times_r(g, ir_matmul(g, a, b, 0, noloc, &d), &d);
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	CHECK(g->grad.len == 1);
	if (g->grad.len == 1) {
		const Node *gb = ir_node(g, VEC_AT(g->grad, GradPair, 0).grad);
		CHECK(gb->op == OP_MATMUL && gb->flags == NF_TRANS_A);
		const Node *l = ir_node(g, ir_operand(g, gb, 0));
		Shape flat = S(2, 6, 4, 0, 0);
		CHECK(l->op == OP_RESHAPE && ir_shape_eq(&l->shape, &flat));
		for (ValId v = 0; v < ir_nnode(g); v++)
			CHECK(ir_node(g, v)->op != OP_SUM || v <= g->loss);
	}
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_movement(void)
{
	Shape s = S(3, 2, 3, 4, 0);
	struct {
		const char *what;
		int kind; /* 0 reshape, 1 permute, 2 slice, 3 broadcast */
		uint8_t perm[IR_MAX_RANK];
		int64_t axis, lo, hi;
		Shape to;
	} cases[] = {
		{"reshape", 0, {0}, 0, 0, 0, {2, {4, 6}}},
		{"reshape rank 4", 0, {0}, 0, 0, 0, {4, {3, 1, 2, 4}}},
		{"permute 2,0,1", 1, {2, 0, 1}, 0, 0, 0, {0}},
		{"permute 1,0,2", 1, {1, 0, 2}, 0, 0, 0, {0}},
		{"slice mid", 2, {0}, 1, 1, 2, {0}},
		{"slice head", 2, {0}, 2, 0, 3, {0}},
		{"slice tail", 2, {0}, 0, 1, 2, {0}},
		{"slice all", 2, {0}, 1, 0, 3, {0}},
		{"slice negative", 2, {0}, -1, -3, -1, {0}},
		{"broadcast", 3, {0}, 0, 0, 0, {4, {5, 2, 3, 4}}},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		Diag d;
		Graph *g = start(&d);
		ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d), y = VAL_NONE;
		switch (cases[k].kind) {
		case 0: y = ir_reshape(g, x, &cases[k].to, noloc, &d); break;
		case 1: y = ir_permute(g, x, cases[k].perm, noloc, &d); break;
		case 2: y = ir_slice(g, x, cases[k].axis, cases[k].lo, cases[k].hi, noloc, &d); break;
		case 3: y = ir_broadcast_to(g, x, &cases[k].to, noloc, &d); break;
		}
		fd_check(g, y, &d, 0, cases[k].what);
	}
	/* a 4-d permute, and a broadcast from size-1 axes */
	Diag d;
	Graph *g = start(&d);
	Shape s4 = S(4, 2, 3, 1, 4);
	uint8_t perm[IR_MAX_RANK] = {0, 3, 1, 2};
	ValId x = ir_param(g, "x", &s4, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_permute(g, x, perm, noloc, &d), &d, 0, "permute 0,3,1,2");
	g = start(&d);
	Shape s1 = S(3, 2, 1, 4, 0), to = S(4, 3, 2, 5, 4);
	x = ir_param(g, "x", &s1, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_broadcast_to(g, x, &to, noloc, &d), &d, 0, "broadcast size-1 axes");
}

static void test_concat(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s1 = S(3, 2, 1, 3, 0), s2 = S(3, 2, 4, 3, 0), s3 = S(3, 2, 2, 3, 0);
	ValId a = ir_param(g, "a", &s1, INIT_NONE, 0, noloc, &d);
	ValId b = ir_input(g, "b", DT_F32, &s2, noloc, &d);
	ValId c = ir_param(g, "c", &s3, INIT_NONE, 0, noloc, &d);
	ValId xs[4] = {a, b, c, a};
	fd_check(g, ir_concat(g, xs, 4, 1, noloc, &d), &d, 0, "concat of four");
	g = start(&d);
	a = ir_param(g, "a", &s1, INIT_NONE, 0, noloc, &d);
	fd_check(g, ir_concat(g, &a, 1, -1, noloc, &d), &d, 0, "concat of one");
	g = start(&d);
	a = ir_param(g, "a", &s2, INIT_NONE, 0, noloc, &d);
	c = ir_param(g, "c", &s2, INIT_NONE, 0, noloc, &d);
	ValId ys[2] = {c, a};
	fd_check(g, ir_concat(g, ys, 2, 0, noloc, &d), &d, 0, "concat axis 0");
}

/* 12 indices into 5 rows: every row is hit more than once. */
static void test_gather(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape ts = S(2, 5, 3, 0, 0), is = S(2, 3, 4, 0, 0);
	ValId t = ir_param(g, "table", &ts, INIT_NONE, 0, noloc, &d);
	ValId i = ir_input(g, "idx", DT_I32, &is, noloc, &d);
	fd_check(g, ir_gather(g, t, i, noloc, &d), &d, 5, "gather repeated rows");
	/* rows never gathered get zero; a 1-d index list */
	g = start(&d);
	Shape t9 = S(2, 9, 2, 0, 0), i3 = S(1, 3, 0, 0, 0);
	t = ir_param(g, "table", &t9, INIT_NONE, 0, noloc, &d);
	i = ir_input(g, "idx", DT_I32, &i3, noloc, &d);
	fd_check(g, ir_gather(g, t, i, noloc, &d), &d, 9, "gather some rows");
}

/* exp(-inf) = 0, so the masked entries carry no gradient */
static void test_causal_mask(void)
{
	static const Shape shapes[] = {{3, {2, 3, 5}}, {2, {4, 4}}, {4, {2, 1, 1, 3}}};
	for (size_t k = 0; k < 3; k++) {
		Diag d;
		Graph *g = start(&d);
		ValId x = ir_param(g, "x", &shapes[k], INIT_NONE, 0, noloc, &d);
		ValId y = ir_unary(g, OP_EXP, ir_causal_mask(g, x, noloc, &d), noloc, &d);
		fd_check(g, y, &d, 0, "causal_mask");
	}
}

static void test_softmax(void)
{
	static const Shape shapes[] = {{3, {2, 3, 5}}, {1, {7}}, {2, {4, 1}}};
	for (size_t k = 0; k < 3; k++) {
		Diag d;
		Graph *g = start(&d);
		ValId x = ir_param(g, "x", &shapes[k], INIT_NONE, 0, noloc, &d);
		fd_check(g, ir_softmax(g, x, noloc, &d), &d, 0, "softmax");
	}
	/* masked attention weights */
	Diag d;
	Graph *g = start(&d);
	Shape s = S(3, 2, 3, 4, 0);
	ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
	ValId y = ir_softmax(g, ir_causal_mask(g, x, noloc, &d), noloc, &d);
	fd_check(g, y, &d, 0, "softmax of causal_mask");
}

static void test_cross_entropy(void)
{
	static const Shape ls[] = {{3, {2, 3, 5}}, {2, {4, 7}}, {1, {6}}};
	static const Shape ts[] = {{2, {2, 3}}, {1, {4}}, {0, {0}}};
	static const int64_t v[] = {5, 7, 6};
	for (size_t k = 0; k < 3; k++) {
		Diag d;
		Graph *g = start(&d);
		ValId l = ir_param(g, "logits", &ls[k], INIT_NONE, 0, noloc, &d);
		ValId t = ir_input(g, "targets", DT_I32, &ts[k], noloc, &d);
		g->loss = ir_cross_entropy(g, l, t, noloc, &d);
		CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
		diag_free(&d);
		fd_graph(g, v[k], 0, "cross_entropy");
	}
	/* the logits from a product, and CE inside a larger loss */
	Diag d;
	Graph *g = start(&d);
	Shape xs = S(3, 2, 3, 4, 0), ws = S(2, 4, 5, 0, 0), tsh = S(2, 2, 3, 0, 0);
	ValId x = ir_param(g, "x", &xs, INIT_NONE, 0, noloc, &d);
	ValId w = ir_param(g, "w", &ws, INIT_NONE, 0, noloc, &d);
	ValId t = ir_input(g, "targets", DT_I32, &tsh, noloc, &d);
	ValId ce = ir_cross_entropy(g, ir_matmul(g, x, w, 0, noloc, &d), t, noloc, &d);
	fd_check(g, ir_unary(g, OP_EXP, ce, noloc, &d), &d, 5, "exp of cross_entropy");
}

/* Chains and reuse: a value read by several nodes sums their gradients. */
static void test_accumulate(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s = S(2, 3, 4, 0, 0);
	ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
	ValId y = ir_binary(g, OP_MUL, x, x, noloc, &d);
	y = ir_binary(g, OP_ADD, y, ir_unary(g, OP_TANH, x, noloc, &d), noloc, &d);
	y = ir_binary(g, OP_SUB, y, ir_reduce(g, OP_MEAN, x, 0, true, noloc, &d), noloc, &d);
	fd_check(g, y, &d, 0, "x*x + tanh x - mean x");
	/* the sum of the contributions is an add in the backward part */
	g = start(&d);
	x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
	y = ir_binary(g, OP_ADD, ir_unary(g, OP_EXP, x, noloc, &d),
		      ir_unary(g, OP_NEG, x, noloc, &d), noloc, &d);
	g->loss = sum_times_r(g, y, &d);
	PassOptions o = {.training = true};
	uint32_t before = ir_nnode(g);
	CHECK(pass_autodiff(g, &o, &d) == 0);
	const Node *gx = g->grad.len ? ir_node(g, VEC_AT(g->grad, GradPair, 0).grad) : NULL;
	CHECK(gx && gx->op == OP_ADD && VEC_AT(g->grad, GradPair, 0).grad >= before);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Frozen params get no entry but gradients flow past them; a param the
 * loss does not read gets a zero constant of its shape. */
static void test_frozen_and_unused(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s = S(2, 3, 4, 0, 0), u = S(3, 2, 2, 5, 0);
	ValId w = ir_param(g, "w", &s, INIT_NONE, 0, noloc, &d);
	ValId f = ir_param(g, "frozen", &s, INIT_NONE, 0, noloc, &d);
	ir_node(g, f)->flags |= NF_FROZEN;
	ValId unused = ir_param(g, "unused", &u, INIT_NONE, 0, noloc, &d);
	ValId y = ir_binary(g, OP_MUL, ir_unary(g, OP_TANH, w, noloc, &d), f, noloc, &d);
	g->loss = sum_times_r(g, y, &d);
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	CHECK(g->grad.len == 2);
	if (g->grad.len == 2) {
		GradPair a = VEC_AT(g->grad, GradPair, 0), b = VEC_AT(g->grad, GradPair, 1);
		CHECK(a.param == w && b.param == unused);
		const Node *z = ir_node(g, b.grad);
		CHECK(z->op == OP_CONST && z->value == 0 && ir_shape_eq(&z->shape, &u));
	}
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	diag_free(&d);
	ir_graph_destroy(g);
	/* and numerically */
	g = start(&d);
	w = ir_param(g, "w", &s, INIT_NONE, 0, noloc, &d);
	f = ir_param(g, "frozen", &s, INIT_NONE, 0, noloc, &d);
	ir_node(g, f)->flags |= NF_FROZEN;
	ir_param(g, "unused", &u, INIT_NONE, 0, noloc, &d);
	y = ir_binary(g, OP_MUL, ir_unary(g, OP_TANH, w, noloc, &d), f, noloc, &d);
	fd_check(g, y, &d, 0, "frozen and unused");
	/* a loss that depends on frozen params only: all zeros, no new work */
	g = start(&d);
	f = ir_param(g, "frozen", &s, INIT_NONE, 0, noloc, &d);
	ir_node(g, f)->flags |= NF_FROZEN;
	w = ir_param(g, "w", &s, INIT_NONE, 0, noloc, &d);
	g->loss = sum_times_r(g, ir_unary(g, OP_EXP, f, noloc, &d), &d);
	uint32_t before = ir_nnode(g);
	CHECK(pass_autodiff(g, &o, &d) == 0);
	CHECK(g->grad.len == 1 && ir_nnode(g) == before + 1);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* gradients stop at integer values: a cast to i32 and back */
static void test_integer_path(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s = S(1, 6, 0, 0, 0);
	ValId x = ir_param(g, "x", &s, INIT_NONE, 0, noloc, &d);
	ValId i = ir_cast(g, ir_binary(g, OP_MUL, x, x, noloc, &d), DT_I32, noloc, &d);
	ValId y = ir_binary(g, OP_ADD, ir_cast(g, i, DT_F32, noloc, &d),
			    ir_unary(g, OP_SILU, x, noloc, &d), noloc, &d);
	fd_check(g, y, &d, 0, "through a cast to i32");
}

/* The backward kernels on hand-worked numbers. */
static double *run1(Graph *g, ValId out, double **val, Diag *d)
{
	if (ir_interp(g, val, d)) {
		fprintf(stderr, "%s", diag_text(d));
		return NULL;
	}
	return val[out];
}

static void test_grad_kernels(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s23 = S(2, 2, 3, 0, 0), s2 = S(1, 2, 0, 0, 0), s3 = S(1, 3, 0, 0, 0);
	Shape ix = S(1, 4, 0, 0, 0), dys = S(2, 4, 2, 0, 0);
	ValId x = ir_input(g, "x", DT_F32, &s23, noloc, &d);
	ValId dy2 = ir_input(g, "dy2", DT_F32, &s2, noloc, &d);
	ValId dy3 = ir_input(g, "dy3", DT_F32, &s3, noloc, &d);
	ValId idx = ir_input(g, "idx", DT_I32, &ix, noloc, &d);
	ValId rows = ir_input(g, "rows", DT_F32, &dys, noloc, &d);
	ValId m1 = ir_max_grad(g, x, dy2, 1, noloc, &d);   /* over rows of 3 */
	ValId m0 = ir_max_grad(g, x, dy3, 0, noloc, &d);   /* over columns of 2 */
	ValId gg = ir_gather_grad(g, idx, rows, 3, noloc, &d);
	ValId cm = ir_grad_op(g, OP_CAUSAL_MASK_GRAD, &x, 1, noloc, &d);
	ValId args[2] = {x, x};
	ValId rg = ir_grad_op(g, OP_RELU_GRAD, args, 2, noloc, &d);
	Shape to = S(3, 2, 2, 3, 0);
	ValId bc = ir_broadcast_to(g, dy3, &to, noloc, &d);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	double xv[6] = {1, 5, 5, -2, -3, -1}, d2[2] = {10, 20}, d3[3] = {1, 2, 3};
	double iv[4] = {2, 0, 2, 2}, rv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	double *val[16] = {xv, d2, d3, iv, rv};
	const double want_m1[6] = {0, 10, 0, 0, 0, 20};  /* ties: the first 5 */
	const double want_m0[6] = {1, 2, 3, 0, 0, 0};
	const double want_gg[6] = {3, 4, 0, 0, 13, 16}; /* rows 2 += (1,2) (5,6) (7,8) */
	const double want_cm[6] = {1, 5, 0, -2, -3, -1}; /* T=2, S=3: (0,2) masked */
	const double want_rg[6] = {1, 5, 5, 0, 0, 0};
	if (run1(g, m1, val, &d)) {
		for (int i = 0; i < 6; i++) {
			CHECK_NEAR(val[m1][i], want_m1[i], 0);
			CHECK_NEAR(val[m0][i], want_m0[i], 0);
			CHECK_NEAR(val[gg][i], want_gg[i], 0);
			CHECK_NEAR(val[cm][i], want_cm[i], 0);
			CHECK_NEAR(val[rg][i], want_rg[i], 0);
		}
		for (int i = 0; i < 12; i++)
			CHECK_NEAR(val[bc][i], d3[i % 3], 0);
		ir_interp_free(g, val);
	}
	/* an index out of range is a run-time error, as for gather */
	iv[1] = 3;
	CHECK(ir_interp(g, val, &d) == -1);
	CHECK(strstr(diag_text(&d), "gather_grad index 3") != NULL);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* The fused kernels against the same expression from primitives. */
static void test_fused_kernels(void)
{
	Diag d;
	Graph *g = start(&d);
	Shape s = S(2, 3, 5, 0, 0), ts = S(1, 3, 0, 0, 0), sc = S(0, 0, 0, 0, 0);
	ValId x = ir_input(g, "x", DT_F32, &s, noloc, &d);
	ValId dy = ir_input(g, "dy", DT_F32, &s, noloc, &d);
	ValId t = ir_input(g, "t", DT_I32, &ts, noloc, &d);
	ValId dl = ir_input(g, "dl", DT_F32, &sc, noloc, &d);
	ValId y = ir_softmax(g, x, noloc, &d);
	ValId args[3] = {y, dy};
	ValId sg = ir_grad_op(g, OP_SOFTMAX_GRAD, args, 2, noloc, &d);
	ValId dot = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, dy, y, noloc, &d), 1, true,
			      noloc, &d);
	ValId ref = ir_binary(g, OP_MUL, y, ir_binary(g, OP_SUB, dy, dot, noloc, &d), noloc, &d);
	args[0] = x, args[1] = t, args[2] = dl;
	ValId ce = ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, args, 3, noloc, &d);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	double xv[15], dyv[15], tv[3] = {4, 0, 2}, dlv[1] = {0.7};
	for (int i = 0; i < 15; i++)
		xv[i] = rnd(), dyv[i] = rnd();
	double *val[32] = {xv, dyv, tv, dlv};
	if (run1(g, sg, val, &d)) {
		for (int i = 0; i < 15; i++) {
			CHECK_NEAR(val[sg][i], val[ref][i], 1e-15);
			int r = i / 5, k = i % 5;
			CHECK_NEAR(val[ce][i], (val[y][i] - (k == tv[r])) * 0.7 / 3, 1e-15);
		}
		ir_interp_free(g, val);
	}
	/* gelu_grad and silu_grad against central differences of gelu, silu */
	Graph *h = ir_graph_create();
	ValId hx = ir_input(h, "x", DT_F32, &s, noloc, &d);
	ValId hd = ir_input(h, "dy", DT_F32, &s, noloc, &d);
	ValId pair[2] = {hx, hd};
	ValId gg = ir_grad_op(h, OP_GELU_GRAD, pair, 2, noloc, &d);
	ValId sgl = ir_grad_op(h, OP_SILU_GRAD, pair, 2, noloc, &d);
	ValId ge = ir_unary(h, OP_GELU, hx, noloc, &d), si = ir_unary(h, OP_SILU, hx, noloc, &d);
	double *hv[8] = {xv, dyv};
	if (run1(h, gg, hv, &d)) {
		double a[15], b[15], e[15], f[15];
		memcpy(a, hv[gg], sizeof a);
		memcpy(b, hv[sgl], sizeof b);
		ir_interp_free(h, hv);
		double keep[15];
		memcpy(keep, xv, sizeof keep);
		for (int i = 0; i < 15; i++)
			xv[i] = keep[i] + H;
		run1(h, gg, hv, &d);
		memcpy(e, hv[ge], sizeof e);
		memcpy(f, hv[si], sizeof f);
		ir_interp_free(h, hv);
		for (int i = 0; i < 15; i++)
			xv[i] = keep[i] - H;
		run1(h, gg, hv, &d);
		for (int i = 0; i < 15; i++) {
			CHECK_NEAR(a[i], dyv[i] * (e[i] - hv[ge][i]) / (2 * H), TOL);
			CHECK_NEAR(b[i], dyv[i] * (f[i] - hv[si][i]) / (2 * H), TOL);
		}
		ir_interp_free(h, hv);
		memcpy(xv, keep, sizeof keep);
	}
	diag_free(&d);
	ir_graph_destroy(g);
	ir_graph_destroy(h);
}

/* --- a two-layer GPT-like model, built from primitives --- */

enum { V = 11, D = 8, T = 5, B = 2, HEADS = 2, DH = D / HEADS, FF = 16 };

typedef struct Gpt {
	Graph *g;
	Diag *d;
	char name[64];
} Gpt;

static ValId prm(Gpt *m, const char *prefix, const char *leaf, Shape s)
{
	snprintf(m->name, sizeof m->name, "%s.%s", prefix, leaf);
	return ir_param(m->g, m->name, &s, INIT_NORMAL, 0.02, noloc, m->d);
}

static ValId bin_(Gpt *m, Op op, ValId a, ValId b)
{
	return ir_binary(m->g, op, a, b, noloc, m->d);
}

/* (x - mean) * rsqrt(var + eps) * w + b over the last axis */
static ValId layernorm(Gpt *m, const char *prefix, ValId x)
{
	Shape sd = S(1, D, 0, 0, 0), sc = S(0, 0, 0, 0, 0);
	ValId w = prm(m, prefix, "weight", sd), b = prm(m, prefix, "bias", sd);
	ValId mu = ir_reduce(m->g, OP_MEAN, x, -1, true, noloc, m->d);
	ValId xc = bin_(m, OP_SUB, x, mu);
	ValId var = ir_reduce(m->g, OP_MEAN, bin_(m, OP_MUL, xc, xc), -1, true, noloc, m->d);
	ValId eps = ir_const(m->g, 1e-5, DT_F32, &sc, noloc, m->d);
	ValId rs = ir_unary(m->g, OP_RSQRT, bin_(m, OP_ADD, var, eps), noloc, m->d);
	return bin_(m, OP_ADD, bin_(m, OP_MUL, bin_(m, OP_MUL, xc, rs), w), b);
}

static ValId linear(Gpt *m, const char *prefix, ValId x, int64_t in, int64_t out)
{
	ValId w = prm(m, prefix, "weight", S(2, in, out, 0, 0));
	ValId b = prm(m, prefix, "bias", S(1, out, 0, 0, 0));
	return bin_(m, OP_ADD, ir_matmul(m->g, x, w, 0, noloc, m->d), b);
}

/* [B,T,D] -> [B,H,T,DH] */
static ValId split_heads(Gpt *m, ValId x)
{
	Shape s = S(4, B, T, HEADS, DH);
	uint8_t perm[IR_MAX_RANK] = {0, 2, 1, 3};
	return ir_permute(m->g, ir_reshape(m->g, x, &s, noloc, m->d), perm, noloc, m->d);
}

static ValId attention(Gpt *m, const char *prefix, ValId x)
{
	char p[64];
	snprintf(p, sizeof p, "%s.c_attn", prefix);
	ValId qkv = linear(m, p, x, D, 3 * D);
	ValId q = split_heads(m, ir_slice(m->g, qkv, 2, 0, D, noloc, m->d));
	ValId k = split_heads(m, ir_slice(m->g, qkv, 2, D, 2 * D, noloc, m->d));
	ValId v = split_heads(m, ir_slice(m->g, qkv, 2, 2 * D, 3 * D, noloc, m->d));
	Shape sc = S(0, 0, 0, 0, 0);
	ValId scale = ir_const(m->g, 1.0 / 2.0, DT_F32, &sc, noloc, m->d); /* 1/sqrt(DH) */
	ValId att = bin_(m, OP_MUL, ir_matmul(m->g, q, k, NF_TRANS_B, noloc, m->d), scale);
	att = ir_softmax(m->g, ir_causal_mask(m->g, att, noloc, m->d), noloc, m->d);
	ValId o = ir_matmul(m->g, att, v, 0, noloc, m->d);          /* [B,H,T,DH] */
	uint8_t perm[IR_MAX_RANK] = {0, 2, 1, 3};
	Shape s = S(3, B, T, D, 0);
	o = ir_reshape(m->g, ir_permute(m->g, o, perm, noloc, m->d), &s, noloc, m->d);
	snprintf(p, sizeof p, "%s.c_proj", prefix);
	return linear(m, p, o, D, D);
}

static Graph *build_gpt(Diag *d)
{
	Gpt m = {ir_graph_create(), d, {0}};
	Graph *g = m.g;
	Shape ts = S(2, B, T, 0, 0);
	ValId tok = ir_input(g, "tokens", DT_I32, &ts, noloc, d);
	ValId tgt = ir_input(g, "targets", DT_I32, &ts, noloc, d);
	Shape es = S(2, V, D, 0, 0), ps = S(2, T + 2, D, 0, 0);
	ValId wte = ir_param(g, "wte.weight", &es, INIT_NORMAL, 0.02, noloc, d);
	ValId wpe = ir_param(g, "wpe.weight", &ps, INIT_NORMAL, 0.01, noloc, d);
	ValId pos = ir_iota(g, T, DT_I32, noloc, d);
	ValId x = bin_(&m, OP_ADD, ir_gather(g, wte, tok, noloc, d), ir_gather(g, wpe, pos, noloc, d));
	for (int l = 0; l < 2; l++) {
		char h[16], p[32];
		snprintf(h, sizeof h, "h.%d", l);
		snprintf(p, sizeof p, "%s.ln_1", h);
		ValId a = layernorm(&m, p, x);
		snprintf(p, sizeof p, "%s.attn", h);
		x = bin_(&m, OP_ADD, x, attention(&m, p, a));
		snprintf(p, sizeof p, "%s.ln_2", h);
		ValId f = layernorm(&m, p, x);
		snprintf(p, sizeof p, "%s.mlp.c_fc", h);
		f = ir_unary(g, OP_GELU, linear(&m, p, f, D, FF), noloc, d);
		snprintf(p, sizeof p, "%s.mlp.c_proj", h);
		x = bin_(&m, OP_ADD, x, linear(&m, p, f, FF, D));
	}
	ValId hf = layernorm(&m, "ln_f", x);
	ir_node(g, ir_find_param(g, "ln_f.bias"))->flags |= NF_FROZEN;
	ValId logits = ir_matmul(g, hf, wte, NF_TRANS_B, noloc, d);
	ir_set_output(g, "logits", logits);
	g->loss = ir_cross_entropy(g, logits, tgt, noloc, d);
	return g;
}

/* Params are drawn in [-1,1] rather than at their 0.02 scale, so every
 * path carries a gradient well above the finite-difference noise. */
static void test_gpt(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = build_gpt(&d);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	diag_free(&d);
	fd_graph(g, V, 3, "mini GPT");
}

/* The same model through the pipeline: the gradients survive dce, get
 * persistent memory, and compute the same numbers as before dce. */
static void test_gpt_pipeline(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = build_gpt(&d);
	PassOptions o = {.training = true, .verify = true, .alignment = 64};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	size_t ng = g->grad.len;
	CHECK(ng == 2 + 2 * 12 + 1);
	uint32_t nsrc = g->loss + 1;
	double **val = vals_new(g, V);
	CHECK(ir_interp(g, val, &d) == 0);
	double **before = calloc(ng, sizeof *before);
	for (size_t k = 0; k < ng; k++) {
		GradPair gp = VEC_AT(g->grad, GradPair, k);
		int64_t len = ir_numel(&ir_node(g, gp.param)->shape);
		before[k] = malloc((size_t)len * sizeof(double));
		memcpy(before[k], val[gp.grad], (size_t)len * sizeof(double));
	}
	ir_interp_free(g, val);
	/* dce renumbers: inputs it keeps come first, so map sources by name */
	Graph *h = NULL;
	char *text = ir_print(g);
	Source src;
	source_from_string(&src, "gpt.ir", text);
	CHECK_MSG(ir_parse(&src, &h, &d) == 0, "%s", diag_text(&d));
	mem_free(text);
	if (h) {
		CHECK(pass_run_pipeline(h, &o, NULL, &d) == 0);
		CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
		CHECK(h->grad.len == ng);
		double **v2 = calloc(ir_nnode(h), sizeof *v2);
		for (ValId v = 0; v < ir_nnode(h); v++) {
			const Node *n = ir_node(h, v);
			if (n->op == OP_PARAM)
				v2[v] = val[ir_find_param(g, ir_str(h, n->name))];
			else if (n->op == OP_INPUT)
				v2[v] = val[ir_find_input(g, ir_str(h, n->name))];
		}
		CHECK(ir_interp(h, v2, &d) == 0);
		for (size_t k = 0; k < ng && k < h->grad.len; k++) {
			GradPair gp = VEC_AT(h->grad, GradPair, k);
			int64_t len = ir_numel(&ir_node(h, gp.param)->shape);
			for (int64_t i = 0; i < len; i++)
				CHECK_NEAR(v2[gp.grad][i], before[k][i], 0);
		}
		/* a gradient's buffer is never shared with another value */
		for (size_t k = 0; k < h->grad.len; k++) {
			const Node *gn = ir_node(h, VEC_AT(h->grad, GradPair, k).grad);
			int64_t lo = gn->offset, hi = lo + ir_nbytes(h, VEC_AT(h->grad, GradPair, k).grad);
			for (ValId v = 0; v < ir_nnode(h); v++) {
				const Node *n = ir_node(h, v);
				if (n == gn || n->op == OP_RESHAPE || gn->op == OP_RESHAPE)
					continue;
				bool same = false;
				for (size_t j = 0; j < h->grad.len; j++)
					same |= VEC_AT(h->grad, GradPair, j).grad == v;
				if (same && n->offset == lo)
					continue; /* one value that is two params' gradient */
				int64_t l2 = n->offset, h2 = l2 + ir_nbytes(h, v);
				CHECK_MSG(h2 <= lo || l2 >= hi, "gradient %zu overlaps %%%u", k, v);
			}
		}
		ir_interp_free(h, v2);
		free(v2);
		ir_graph_destroy(h);
	}
	for (size_t k = 0; k < ng; k++)
		free(before[k]);
	free(before);
	source_free(&src);
	vals_free(g, val, nsrc);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* --- the pass's contract --- */

static Graph *small(Diag *d)
{
	diag_init(d);
	Graph *g = ir_graph_create();
	Shape s = S(2, 2, 3, 0, 0);
	ValId x = ir_input(g, "x", DT_F32, &s, noloc, d);
	ValId w = ir_param(g, "w", &s, INIT_NORMAL, 0.5, noloc, d);
	ValId f = ir_param(g, "f", &s, INIT_ONES, 0, noloc, d);
	ir_node(g, f)->flags |= NF_FROZEN;
	ValId y = ir_binary(g, OP_MUL, ir_unary(g, OP_GELU, ir_binary(g, OP_MUL, x, w, noloc, d),
						 noloc, d), f, noloc, d);
	ir_set_output(g, "y", y);
	g->loss = ir_reduce(g, OP_MEAN, ir_reduce(g, OP_SUM, y, 1, false, noloc, d), 0, false,
			    noloc, d);
	return g;
}

static bool same_graph(const Graph *g, const char *text, Hash128 h, uint32_t nnode, size_t narg)
{
	char *now = ir_print(g);
	Hash128 h2 = ir_hash(g);
	bool same = now && !strcmp(now, text) && h.lo == h2.lo && h.hi == h2.hi &&
		    ir_nnode(g) == nnode && g->arg.len == narg && g->grad.len == 0;
	mem_free(now);
	return same;
}

static void test_noop(void)
{
	Diag d;
	Graph *g = small(&d);
	char *text = ir_print(g);
	Hash128 h = ir_hash(g);
	uint32_t n = ir_nnode(g);
	size_t na = g->arg.len;
	PassOptions inference = {0}, training = {.training = true};
	CHECK(pass_autodiff(g, &inference, &d) == 0);
	CHECK(same_graph(g, text, h, n, na));
	ValId loss = g->loss;
	g->loss = VAL_NONE;                 /* no loss: nothing to differentiate */
	char *text2 = ir_print(g);
	Hash128 h2 = ir_hash(g);
	CHECK(pass_autodiff(g, &training, &d) == 0);
	CHECK(same_graph(g, text2, h2, n, na));
	g->loss = loss;
	CHECK(pass_autodiff(g, &training, &d) == 0 && g->grad.len == 1);
	/* a second run finds the gradients there and does nothing */
	uint32_t n2 = ir_nnode(g);
	CHECK(pass_autodiff(g, &training, &d) == 0 && ir_nnode(g) == n2 && g->grad.len == 1);
	CHECK(d.nerror == 0);
	mem_free(text);
	mem_free(text2);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* A loss reached through an op with no backward rule (here a backward
 * kernel in the forward graph): a located error, the graph as it was. */
static void test_failure_unchanged(void)
{
	Source src;
	source_from_string(&src, "m.msw", "y = gelu_grad(w, w)\n");
	Diag d;
	Graph *g = small(&d);
	ValId w = ir_find_param(g, "w");
	ValId args[2] = {w, w};
	ValId gg = ir_grad_op(g, OP_GELU_GRAD, args, 2, (SrcLoc){&src, 1, 5, 9}, &d);
	Shape flat = S(1, 6, 0, 0, 0);
	ValId l2 = ir_reduce(g, OP_SUM, ir_reshape(g, gg, &flat, noloc, &d), 0, false, noloc, &d);
	g->loss = ir_binary(g, OP_ADD, g->loss, l2, noloc, &d);
	char *text = ir_print(g);
	Hash128 h = ir_hash(g);
	uint32_t n = ir_nnode(g);
	size_t na = g->arg.len;
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == -1);
	CHECK_MSG(strstr(diag_text(&d), "m.msw:1:5: error: autodiff: gelu_grad has no backward "
				       "rule") != NULL, "%s", diag_text(&d));
	CHECK(same_graph(g, text, h, n, na));
	mem_free(text);
	diag_free(&d);
	ir_graph_destroy(g);
	source_free(&src);
}

/* Every allocation failing in turn: an error, and the graph as it was. */
static void test_oom(void)
{
	int failed = 0, ok = 0;
	for (long k = 1; k <= 400 && !ok; k++) {
		Diag d;
		Graph *g = small(&d);
		char *text = ir_print(g);
		Hash128 h = ir_hash(g);
		uint32_t n = ir_nnode(g);
		size_t na = g->arg.len;
		PassOptions o = {.training = true};
		mem_fail_after(k);
		int rc = pass_autodiff(g, &o, &d);
		mem_fail_after(0);
		if (rc) {
			failed++;
			CHECK(strstr(diag_text(&d), "out of memory") != NULL);
			CHECK(same_graph(g, text, h, n, na));
		} else {
			ok = 1;
			CHECK(g->grad.len == 1 && ir_verify(g, &d) == 0);
		}
		mem_free(text);
		diag_free(&d);
		ir_graph_destroy(g);
	}
	CHECK(failed > 3 && ok);
}

/* The pipeline runs autodiff after infer_shapes and prune (so gradients of
 * sparse params come out masked), then optimize (the update reads the
 * gradients), then sparse_lower (which rewrites the products autodiff
 * built), and dce after them. */
static void test_pipeline(void)
{
	CHECK(pass_npipeline > 5 && !strcmp(pass_pipeline[0].name, "infer_shapes") &&
	      !strcmp(pass_pipeline[1].name, "prune") &&
	      !strcmp(pass_pipeline[2].name, "autodiff") &&
	      !strcmp(pass_pipeline[3].name, "optimize") &&
	      !strcmp(pass_pipeline[4].name, "sparse_lower") && !strcmp(pass_pipeline[5].name, "dce"));
	Diag d;
	Graph *g = small(&d);
	PassOptions o = {.training = true, .verify = true};
	CHECK_MSG(pass_run_pipeline(g, &o, NULL, &d) == 0, "%s", diag_text(&d));
	CHECK(g->grad.len == 1 && ir_node(g, VEC_AT(g->grad, GradPair, 0).param)->op == OP_PARAM);
	diag_free(&d);
	ir_graph_destroy(g);
	g = small(&d);
	PassOptions inf = {.verify = true};
	CHECK(pass_run_pipeline(g, &inf, NULL, &d) == 0 && g->grad.len == 0);
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_dce(void)
{
	Diag d;
	Graph *g = small(&d);
	/* a dead node in the forward part, to make dce renumber */
	ir_unary(g, OP_EXP, ir_find_input(g, "x"), noloc, &d);
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	GradPair before = VEC_AT(g->grad, GradPair, 0);
	uint32_t n = ir_nnode(g);
	CHECK(pass_dce(g, &o, &d) == 0);
	CHECK(ir_nnode(g) < n && g->grad.len == 1);
	GradPair after = VEC_AT(g->grad, GradPair, 0);
	CHECK(after.param == before.param && after.grad < before.grad);
	CHECK(ir_node(g, after.grad)->op != OP_CONST);
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	/* outside training the backward part goes */
	PassOptions inf = {0};
	CHECK(pass_dce(g, &inf, &d) == 0);
	CHECK(g->grad.len == 0 && g->loss == VAL_NONE);
	for (ValId v = 0; v < ir_nnode(g); v++)
		CHECK(ir_node(g, v)->op != OP_GELU_GRAD);
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_verify(void)
{
	Diag d;
	Graph *g = small(&d);
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	GradPair *gp = &VEC_AT(g->grad, GradPair, 0);
	GradPair keep = *gp;
	struct {
		GradPair bad;
		const char *msg;
	} cases[] = {
		{{keep.param, g->loss}, "is f32[]"},
		{{ir_find_param(g, "f"), keep.grad}, "is frozen but has a gradient"},
		{{ir_find_input(g, "x"), keep.grad}, "not a param"},
		{{keep.param, 100000}, "not a value"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		Diag e;
		diag_init(&e);
		*gp = cases[k].bad;
		CHECK(ir_verify(g, &e) == -1);
		CHECK_MSG(strstr(diag_text(&e), cases[k].msg) != NULL, "%s", diag_text(&e));
		diag_free(&e);
	}
	*gp = keep;
	GradPair *twice = vec_push(&g->grad, sizeof *twice);
	*twice = keep;
	Diag e;
	diag_init(&e);
	CHECK(ir_verify(g, &e) == -1 && strstr(diag_text(&e), "two gradients"));
	diag_free(&e);
	g->grad.len = 1;
	CHECK(ir_verify(g, &d) == 0);
	diag_free(&d);
	ir_graph_destroy(g);
}

static Graph *parse(const char *text, Diag *d)
{
	Source src;
	source_from_string(&src, "t.ir", text);
	Graph *g = NULL;
	ir_parse(&src, &g, d);
	source_free(&src);
	return g;
}

static void test_print_parse(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = build_gpt(&d);
	PassOptions o = {.training = true};
	CHECK(pass_autodiff(g, &o, &d) == 0);
	char *text = ir_print(g);
	CHECK(text && strstr(text, "\ngrad \"h.0.ln_1.weight\" = %"));
	CHECK(text && !strstr(text, "grad \"ln_f.bias\""));
	Graph *h = text ? parse(text, &d) : NULL;
	CHECK_MSG(h != NULL, "%s", diag_text(&d));
	if (h) {
		Hash128 a = ir_hash(g), b = ir_hash(h);
		CHECK(a.lo == b.lo && a.hi == b.hi);
		char *text2 = ir_print(h);
		CHECK(text2 && !strcmp(text, text2));
		mem_free(text2);
		CHECK(h->grad.len == g->grad.len);
		CHECK_MSG(ir_verify(h, &d) == 0, "%s", diag_text(&d));
		/* the gradient list is part of the hash */
		VEC_AT(h->grad, GradPair, 0).grad = VEC_AT(h->grad, GradPair, 1).grad;
		Hash128 c = ir_hash(h);
		CHECK(c.lo != a.lo || c.hi != a.hi);
		ir_graph_destroy(h);
	}
	mem_free(text);
	diag_free(&d);
	ir_graph_destroy(g);
	/* bad grad lines: one located error each */
	static const struct {
		const char *line, *msg;
	} bad[] = {
		{"grad \"nope\" = %3\n", "t.ir:5:6: error: grad \"nope\" is not a param"},
		{"grad \"f\" = %3\n", "grad \"f\" is frozen"},
		{"grad \"w\" = %3\ngrad \"w\" = %3\n", "t.ir:6:6: error: grad \"w\" has its gradient "
						      "given twice"},
		{"grad \"w\" = %4\n", "t.ir:6:12: error: the gradient of param \"w\" f32[2,3] is "
				     "f32[], not of its type"},
		{"grad \"w\" = %9\n", "%9 is used before it is defined"},
		{"grad \"w\" %3\n", "expected '='"},
	};
	const char *head = "%0 = param \"w\" none : f32[2,3]\n"
			   "%1 = param \"f\" none frozen : f32[2,3]\n"
			   "%2 = input \"x\" : f32[2,3]\n"
			   "%3 = mul %0, %2 : f32[2,3]\n";
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		char buf[512];
		snprintf(buf, sizeof buf, "%s%s", head, bad[k].line);
		Diag e;
		diag_init(&e);
		if (k == 3) /* a scalar value to point at */
			snprintf(buf, sizeof buf, "%s%%4 = const 1 : f32[]\n%s", head, bad[k].line);
		Graph *x = parse(buf, &e);
		CHECK(x == NULL);
		CHECK_MSG(strstr(diag_text(&e), bad[k].msg) != NULL, "%zu: %s", k, diag_text(&e));
		diag_free(&e);
		ir_graph_destroy(x);
	}
}

/* Text with the new ops reads back and the rules check them. */
static void test_new_ops_text(void)
{
	static const char *good =
		"%0 = input \"x\" : f32[2,3]\n"
		"%1 = input \"i\" : i32[4]\n"
		"%2 = input \"r\" : f32[4,3]\n"
		"%3 = gather_grad %1, %2 : f32[7,3]\n"
		"%4 = broadcast %0 : f32[5,2,3]\n"
		"%5 = max %0 axis=1 : f32[2]\n"
		"%6 = max_grad %0, %5 axis=1 : f32[2,3]\n"
		"%7 = softmax_grad %0, %0 : f32[2,3]\n"
		"%8 = causal_mask_grad %0 : f32[2,3]\n"
		"%9 = gelu_grad %0, %0 : f32[2,3]\n"
		"%10 = silu_grad %0, %0 : f32[2,3]\n"
		"%11 = relu_grad %0, %0 : f32[2,3]\n"
		"%12 = input \"t\" : i32[2]\n"
		"%13 = sum %5 axis=0 : f32[]\n"
		"%14 = cross_entropy_grad %0, %12, %13 : f32[2,3]\n";
	Diag d;
	diag_init(&d);
	Graph *g = parse(good, &d);
	CHECK_MSG(g != NULL, "%s", diag_text(&d));
	char *text = g ? ir_print(g) : NULL;
	CHECK(text && !strcmp(text, good));
	mem_free(text);
	ir_graph_destroy(g);
	static const struct {
		const char *line, *msg;
	} bad[] = {
		{"%3 = broadcast %0 : f32[2,4]\n", "broadcast: [2,3] does not broadcast to [2,4]"},
		{"%3 = broadcast %0 : f32[3]\n", "does not broadcast"},
		{"%3 = max_grad %0, %0 axis=1 : f32[2,3]\n", "max_grad dy [2,3] is not the max"},
		{"%3 = gather_grad %1, %0 : f32[7,3]\n", "gather_grad of indices [4] and dy [2,3]"},
		{"%3 = softmax_grad %0, %2 : f32[2,3]\n", "softmax_grad dy has shape [4,3], not "
							 "[2,3]"},
		{"%3 = cross_entropy_grad %0, %1, %0 : f32[2,3]\n", "needs a scalar dl"},
		{"%3 = causal_mask_grad %2 : f32[4,3]\n", "causal_mask_grad of [4,3]: 4 queries"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		char buf[512];
		snprintf(buf, sizeof buf, "%%0 = input \"x\" : f32[2,3]\n%%1 = input \"i\" : i32[4]\n"
			 "%%2 = input \"r\" : f32[4,3]\n%s", bad[k].line);
		Diag e;
		diag_init(&e);
		Graph *x = parse(buf, &e);
		CHECK(x == NULL);
		CHECK_MSG(strstr(diag_text(&e), bad[k].msg) != NULL, "%zu: %s", k, diag_text(&e));
		diag_free(&e);
		ir_graph_destroy(x);
	}
	diag_free(&d);
}

int main(void)
{
	RUN(test_unary);
	RUN(test_binary);
	RUN(test_reduce);
	RUN(test_matmul);
	RUN(test_matmul_flattened);
	RUN(test_movement);
	RUN(test_concat);
	RUN(test_gather);
	RUN(test_causal_mask);
	RUN(test_softmax);
	RUN(test_cross_entropy);
	RUN(test_accumulate);
	RUN(test_frozen_and_unused);
	RUN(test_integer_path);
	RUN(test_grad_kernels);
	RUN(test_fused_kernels);
	RUN(test_gpt);
	RUN(test_gpt_pipeline);
	RUN(test_noop);
	RUN(test_failure_unchanged);
	RUN(test_oom);
	RUN(test_pipeline);
	RUN(test_dce);
	RUN(test_verify);
	RUN(test_print_parse);
	RUN(test_new_ops_text);
	printf("%d gradient entries checked by finite differences\n", nfd);
	return check_report();
}

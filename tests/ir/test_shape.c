/* test_shape.c: the shape and dtype rules (ir/shape.c), through the builders.
 *
 * Each expected shape is worked out by hand from the op's definition; each
 * error case checks that the builder fails, leaves the graph as it was, and
 * says something that names the shapes. */
#include "../check.h"
#include "ir/ir.h"

#include <string.h>

static SrcLoc noloc;

static Shape shp(int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	Shape s = {.rank = (uint8_t)rank, .dim = {d0, d1, d2, d3}};
	for (int i = rank; i < IR_MAX_RANK; i++)
		s.dim[i] = 0;
	return s;
}

static int has_shape(Graph *g, ValId v, int rank, int64_t d0, int64_t d1, int64_t d2,
		     int64_t d3)
{
	if (v == VAL_NONE)
		return 0;
	Shape want = shp(rank, d0, d1, d2, d3);
	return ir_shape_eq(&ir_node(g, v)->shape, &want);
}

static ValId f32in(Graph *g, const char *name, Shape s, Diag *d)
{
	return ir_input(g, name, DT_F32, &s, noloc, d);
}

static void test_broadcast(void)
{
	Shape a = shp(3, 2, 1, 4, 0), b = shp(2, 3, 1, 0, 0), o;
	CHECK(ir_broadcast(&a, &b, &o) == 0);
	Shape want = shp(3, 2, 3, 4, 0);
	CHECK(ir_shape_eq(&o, &want));
	Shape c = shp(1, 5, 0, 0, 0);
	CHECK(ir_broadcast(&a, &c, &o) == -1);
	Shape s0 = shp(0, 0, 0, 0, 0);
	CHECK(ir_broadcast(&s0, &a, &o) == 0 && ir_shape_eq(&o, &a));
}

static void test_elementwise(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	ValId x = f32in(g, "x", shp(2, 4, 3, 0, 0), &d);
	ValId y = f32in(g, "y", shp(3, 5, 1, 3, 0), &d);
	ValId s = ir_binary(g, OP_ADD, x, y, noloc, &d);
	CHECK(has_shape(g, s, 3, 5, 4, 3, 0));
	ValId u = ir_unary(g, OP_GELU, s, noloc, &d);
	CHECK(has_shape(g, u, 3, 5, 4, 3, 0));
	Shape is = shp(2, 4, 3, 0, 0);
	ValId i = ir_input(g, "i", DT_I32, &is, noloc, &d);
	ValId c = ir_cast(g, i, DT_F32, noloc, &d);
	CHECK(has_shape(g, c, 2, 4, 3, 0, 0) && ir_node(g, c)->dtype == DT_F32);
	ValId c2 = ir_cast(g, x, DT_I32, noloc, &d);
	CHECK(c2 != VAL_NONE && ir_node(g, c2)->dtype == DT_I32);
	CHECK(d.nerror == 0);

	uint32_t before = ir_nnode(g);
	size_t nargs = g->arg.len;
	CHECK(ir_unary(g, OP_EXP, i, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "f32") && strstr(diag_text(&d), "cast"));
	CHECK(ir_binary(g, OP_MUL, x, i, noloc, &d) == VAL_NONE);
	ValId z = f32in(g, "z", shp(2, 4, 5, 0, 0), &d);
	before = ir_nnode(g);
	nargs = g->arg.len;
	CHECK(ir_binary(g, OP_SUB, x, z, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "[4,3] and [4,5] do not broadcast") != NULL);
	CHECK(ir_nnode(g) == before && g->arg.len == nargs);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_reduce(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	ValId x = f32in(g, "x", shp(3, 2, 3, 4, 0), &d);
	ValId a = ir_reduce(g, OP_SUM, x, 1, false, noloc, &d);
	CHECK(has_shape(g, a, 2, 2, 4, 0, 0));
	ValId b = ir_reduce(g, OP_MAX, x, -1, true, noloc, &d);
	CHECK(has_shape(g, b, 3, 2, 3, 1, 0));
	CHECK(b != VAL_NONE && ir_node(g, b)->axis == 2); /* normalised */
	ValId c = ir_reduce(g, OP_MEAN, x, -3, false, noloc, &d);
	CHECK(has_shape(g, c, 2, 3, 4, 0, 0) && ir_node(g, c)->axis == 0);
	CHECK(d.nerror == 0);
	CHECK(ir_reduce(g, OP_SUM, x, 3, false, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "axis 3 is out of range for shape [2,3,4]") != NULL);
	CHECK(ir_reduce(g, OP_SUM, x, -4, false, noloc, &d) == VAL_NONE);
	ValId s = ir_reduce(g, OP_SUM, a, 0, false, noloc, &d);
	s = ir_reduce(g, OP_SUM, s, 0, false, noloc, &d);
	CHECK(has_shape(g, s, 0, 0, 0, 0, 0));
	CHECK(ir_reduce(g, OP_SUM, s, 0, false, noloc, &d) == VAL_NONE);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_matmul(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	ValId a = f32in(g, "a", shp(2, 64, 128, 0, 0), &d);
	ValId b = f32in(g, "b", shp(2, 96, 64, 0, 0), &d);
	ValId w = f32in(g, "w", shp(2, 128, 32, 0, 0), &d);
	ValId x = f32in(g, "x", shp(3, 5, 64, 128, 0), &d);
	ValId q = f32in(g, "q", shp(4, 2, 1, 7, 8), &d);
	ValId k = f32in(g, "k", shp(4, 1, 3, 9, 8), &d);
	CHECK(has_shape(g, ir_matmul(g, a, w, 0, noloc, &d), 2, 64, 32, 0, 0));
	CHECK(has_shape(g, ir_matmul(g, x, w, 0, noloc, &d), 3, 5, 64, 32, 0));
	/* A^T: a stored [K=64, M=128]; b^T: b stored [N=96, K=64] */
	CHECK(has_shape(g, ir_matmul(g, b, a, 0, noloc, &d), 2, 96, 128, 0, 0));
	CHECK(has_shape(g, ir_matmul(g, a, w, NF_TRANS_A, noloc, &d), 0, 0, 0, 0, 0) == 0);
	CHECK(has_shape(g, ir_matmul(g, a, a, NF_TRANS_A, noloc, &d), 2, 128, 128, 0, 0));
	CHECK(has_shape(g, ir_matmul(g, a, b, NF_TRANS_A | NF_TRANS_B, noloc, &d), 2, 128, 96,
			0, 0));
	/* batch dims broadcast: [2,1] with [1,3] -> [2,3] */
	CHECK(has_shape(g, ir_matmul(g, q, k, NF_TRANS_B, noloc, &d), 4, 2, 3, 7, 9));
	diag_free(&d);
	diag_init(&d);
	CHECK(ir_matmul(g, a, b, 0, noloc, &d) == VAL_NONE);
	CHECK_MSG(strstr(diag_text(&d), "matmul shapes [64,128] and [96,64] do not agree: "
				       "inner dimensions 128 and 96") != NULL, "%s", diag_text(&d));
	ValId v = f32in(g, "v", shp(1, 128, 0, 0, 0), &d);
	CHECK(ir_matmul(g, a, v, 0, noloc, &d) == VAL_NONE);
	ValId x2 = f32in(g, "x2", shp(3, 4, 128, 64, 0), &d);
	CHECK(ir_matmul(g, x, x2, 0, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "batch") != NULL);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_movement(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	ValId x = f32in(g, "x", shp(3, 2, 3, 4, 0), &d);
	Shape r = shp(2, 6, 4, 0, 0);
	CHECK(has_shape(g, ir_reshape(g, x, &r, noloc, &d), 2, 6, 4, 0, 0));
	Shape bad = shp(2, 5, 5, 0, 0);
	CHECK(ir_reshape(g, x, &bad, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "reshape from [2,3,4] to [5,5]") != NULL);

	uint8_t p[IR_MAX_RANK] = {2, 0, 1};
	CHECK(has_shape(g, ir_permute(g, x, p, noloc, &d), 3, 4, 2, 3, 0));
	uint8_t pbad[IR_MAX_RANK] = {0, 0, 1};
	CHECK(ir_permute(g, x, pbad, noloc, &d) == VAL_NONE);
	uint8_t pbig[IR_MAX_RANK] = {0, 1, 3};
	CHECK(ir_permute(g, x, pbig, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "not a permutation") != NULL);

	ValId s = ir_slice(g, x, 2, 1, 3, noloc, &d);
	CHECK(has_shape(g, s, 3, 2, 3, 2, 0));
	ValId s2 = ir_slice(g, x, -1, -3, -1, noloc, &d);
	CHECK(has_shape(g, s2, 3, 2, 3, 2, 0));
	CHECK(s2 != VAL_NONE && ir_node(g, s2)->lo == 1 && ir_node(g, s2)->hi == 3 &&
	      ir_node(g, s2)->axis == 2);
	CHECK(ir_slice(g, x, 1, 2, 2, noloc, &d) == VAL_NONE);
	CHECK(ir_slice(g, x, 1, 0, 4, noloc, &d) == VAL_NONE);
	CHECK(ir_slice(g, x, 3, 0, 1, noloc, &d) == VAL_NONE);

	ValId y = f32in(g, "y", shp(3, 2, 5, 4, 0), &d);
	ValId xs[3] = {x, y, x};
	ValId c = ir_concat(g, xs, 3, 1, noloc, &d);
	CHECK(has_shape(g, c, 3, 2, 11, 4, 0));
	CHECK(ir_concat(g, xs, 2, 2, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "differ on axis 1") != NULL);
	CHECK(ir_concat(g, xs, 0, 0, noloc, &d) == VAL_NONE);
	Shape is = shp(3, 2, 3, 4, 0);
	ValId ix = ir_input(g, "ix", DT_I32, &is, noloc, &d);
	ValId mixed[2] = {x, ix};
	CHECK(ir_concat(g, mixed, 2, 0, noloc, &d) == VAL_NONE);
	/* data movement keeps the dtype */
	ValId ixs[2] = {ix, ix};
	ValId ci = ir_concat(g, ixs, 2, 0, noloc, &d);
	CHECK(ci != VAL_NONE && ir_node(g, ci)->dtype == DT_I32);
	Shape flat = shp(1, 24, 0, 0, 0);
	ValId ri = ir_reshape(g, ix, &flat, noloc, &d);
	CHECK(ri != VAL_NONE && ir_node(g, ri)->dtype == DT_I32);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_gather_mask_softmax_ce(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape ts = shp(2, 10, 8, 0, 0), is = shp(2, 2, 5, 0, 0);
	ValId t = ir_param(g, "wte", &ts, INIT_NORMAL, 0.02, noloc, &d);
	ValId ix = ir_input(g, "tok", DT_I32, &is, noloc, &d);
	ValId e = ir_gather(g, t, ix, noloc, &d);
	CHECK(has_shape(g, e, 3, 2, 5, 8, 0));
	CHECK(ir_gather(g, t, e, noloc, &d) == VAL_NONE);
	CHECK(ir_gather(g, e, ix, noloc, &d) == VAL_NONE);

	ValId sc = f32in(g, "sc", shp(3, 2, 4, 6, 0), &d);
	CHECK(has_shape(g, ir_causal_mask(g, sc, noloc, &d), 3, 2, 4, 6, 0));
	ValId sc2 = f32in(g, "sc2", shp(2, 6, 4, 0, 0), &d);
	CHECK(ir_causal_mask(g, sc2, noloc, &d) == VAL_NONE);
	ValId sm = ir_softmax(g, sc, noloc, &d);
	CHECK(has_shape(g, sm, 3, 2, 4, 6, 0) && ir_node(g, sm)->axis == 2);

	ValId logits = f32in(g, "logits", shp(3, 2, 5, 10, 0), &d);
	ValId ce = ir_cross_entropy(g, logits, ix, noloc, &d);
	CHECK(has_shape(g, ce, 0, 0, 0, 0, 0));
	CHECK(ir_cross_entropy(g, logits, logits, noloc, &d) == VAL_NONE);
	Shape is2 = shp(2, 2, 4, 0, 0);
	ValId ix2 = ir_input(g, "tok2", DT_I32, &is2, noloc, &d);
	CHECK(ir_cross_entropy(g, logits, ix2, noloc, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "[2,5,10] and targets [2,4]") != NULL);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_sources(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	ValId io = ir_iota(g, 7, DT_I32, noloc, &d);
	CHECK(has_shape(g, io, 1, 7, 0, 0, 0));
	CHECK(ir_iota(g, 0, DT_I32, noloc, &d) == VAL_NONE);
	Shape s = shp(2, 3, 0, 0, 0);
	CHECK(ir_const(g, 1.0, DT_F32, &s, noloc, &d) == VAL_NONE);
	CHECK(ir_const(g, 1.0, DT_U8, &(Shape){.rank = 1, .dim = {3}}, noloc, &d) == VAL_NONE);
	Shape huge = shp(4, 1 << 20, 1 << 20, 1 << 20, 1);
	CHECK(ir_input(g, "h", DT_F32, &huge, noloc, &d) == VAL_NONE);
	Shape big = {.rank = IR_MAX_RANK + 1};
	CHECK(ir_input(g, "b", DT_F32, &big, noloc, &d) == VAL_NONE);
	Shape ps = shp(1, 3, 0, 0, 0);
	CHECK(ir_param(g, "p", &ps, INIT_NORMAL, -1.0, noloc, &d) == VAL_NONE);
	CHECK(ir_input(g, "", DT_F32, &ps, noloc, &d) == VAL_NONE);
	ir_graph_destroy(g);
	diag_free(&d);
}

/* An error carries the node's location, so it points at the .msw line. */
static void test_located(void)
{
	Diag d;
	diag_init(&d);
	Source src;
	CHECK(source_from_string(&src, "m.msw", "x = a\ny = x @ w\n") == 0);
	Graph *g = ir_graph_create();
	ValId a = f32in(g, "a", shp(2, 64, 128, 0, 0), &d);
	ValId w = f32in(g, "w", shp(2, 96, 64, 0, 0), &d);
	SrcLoc at = {&src, 2, 5, 1};
	CHECK(ir_matmul(g, a, w, 0, at, &d) == VAL_NONE);
	CHECK_MSG(strstr(diag_text(&d), "m.msw:2:5: error: matmul shapes [64,128] and [96,64]") !=
		  NULL, "%s", diag_text(&d));
	ir_graph_destroy(g);
	source_free(&src);
	diag_free(&d);
}

int main(void)
{
	RUN(test_broadcast);
	RUN(test_elementwise);
	RUN(test_reduce);
	RUN(test_matmul);
	RUN(test_movement);
	RUN(test_gather_mask_softmax_ce);
	RUN(test_sources);
	RUN(test_located);
	return check_report();
}

/* test_passes.c: dead-code elimination and shape inference.
 *
 * Expected survivors, ids and shapes are worked out by hand from the small
 * graphs below; every pass result must also pass the verifier, and a failed
 * pass must leave the graph exactly as it was (same hash, same text). */
#include "../check.h"
#include "passes/passes.h"

#include <string.h>

static SrcLoc noloc;

/*  %0 x [2,3]   %1 unused [4]   %2 param w [3]   %3 param spare [5]
 *  %4 = x*w  %5 = exp %4 (dead)  %6 = neg %4  %7 = sum %6 axis 1
 *  %8 = mean %7 (the loss)  %9 = relu %5 (dead)   output "y" = %6 */
static Graph *sample(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape xs = {2, {2, 3}}, us = {1, {4}}, ws = {1, {3}}, ss = {1, {5}};
	ValId x = ir_input(g, "x", DT_F32, &xs, noloc, &d);
	ir_input(g, "unused", DT_F32, &us, noloc, &d);
	ValId w = ir_param(g, "w", &ws, INIT_NORMAL, 0.02, noloc, &d);
	ir_param(g, "spare", &ss, INIT_ZEROS, 0, noloc, &d);
	ValId m = ir_binary(g, OP_MUL, x, w, noloc, &d);
	ValId e = ir_unary(g, OP_EXP, m, noloc, &d);
	ValId n = ir_unary(g, OP_NEG, m, noloc, &d);
	ValId s = ir_reduce(g, OP_SUM, n, 1, false, noloc, &d);
	ValId l = ir_reduce(g, OP_MEAN, s, 0, false, noloc, &d);
	ir_unary(g, OP_RELU, e, noloc, &d);
	ir_set_output(g, "y", n);
	g->loss = l;
	CHECK(d.nerror == 0 && ir_nnode(g) == 10);
	diag_free(&d);
	return g;
}

static const char *opname(const Graph *g, ValId v)
{
	return ir_op[ir_node(g, v)->op].name;
}

static int verifies(const Graph *g)
{
	Diag d;
	diag_init(&d);
	int rc = ir_verify(g, &d);
	if (rc)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	return rc == 0;
}

static int rejects(const Graph *g)
{
	Diag d;
	diag_init(&d);
	int rc = ir_verify(g, &d);
	diag_free(&d);
	return rc == -1;
}

static void test_dce_inference(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	PassOptions o = {.training = false};
	CHECK(pass_dce(g, &o, &d) == 0);
	/* survivors in order: x, w, spare (kept as a param), mul, neg */
	CHECK(ir_nnode(g) == 5);
	const char *want[5] = {"input", "param", "param", "mul", "neg"};
	for (ValId v = 0; v < 5 && v < ir_nnode(g); v++)
		CHECK_MSG(!strcmp(opname(g, v), want[v]), "%%%u is %s", v, opname(g, v));
	CHECK(ir_find_input(g, "unused") == VAL_NONE);
	CHECK(ir_find_param(g, "spare") == 2);
	CHECK(ir_operand(g, ir_node(g, 3), 0) == 0 && ir_operand(g, ir_node(g, 3), 1) == 1);
	CHECK(ir_operand(g, ir_node(g, 4), 0) == 3);
	CHECK(VEC_AT(g->out, Output, 0).val == 4);
	CHECK(g->loss == VAL_NONE);
	CHECK(g->arg.len == 3);
	CHECK(verifies(g));
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_dce_training(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	PassOptions o = {.training = true};
	CHECK(pass_dce(g, &o, &d) == 0);
	/* x, w, spare, mul, neg, sum, mean: exp and relu go, and so does "unused" */
	CHECK(ir_nnode(g) == 7);
	CHECK(g->loss == 6 && !strcmp(opname(g, 6), "mean"));
	CHECK(ir_operand(g, ir_node(g, 6), 0) == 5 && ir_operand(g, ir_node(g, 5), 0) == 4);
	CHECK(VEC_AT(g->out, Output, 0).val == 4);
	CHECK(verifies(g));
	/* running it again changes nothing */
	Hash128 h = ir_hash(g);
	CHECK(pass_dce(g, &o, &d) == 0);
	Hash128 h2 = ir_hash(g);
	CHECK(h.lo == h2.lo && h.hi == h2.hi);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* The loss survives inference when an output reads it. */
static void test_dce_loss_as_output(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	ir_set_output(g, "l", 8);
	PassOptions o = {.training = false};
	CHECK(pass_dce(g, &o, &d) == 0);
	CHECK(ir_nnode(g) == 7 && g->loss == 6 && VEC_AT(g->out, Output, 1).val == 6);
	CHECK(verifies(g));
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Interpreting before and after DCE gives the same output values. */
static void test_dce_same_values(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	double x[6] = {1, -2, 3, 0.5, 0.25, -1}, w[3] = {2, 3, -4}, u[4] = {0}, sp[5] = {0};
	double *val[10] = {x, u, w, sp};
	CHECK(ir_interp(g, val, &d) == 0);
	double before[6];
	memcpy(before, val[6], sizeof before);
	ir_interp_free(g, val);
	PassOptions o = {0};
	CHECK(pass_dce(g, &o, &d) == 0);
	double *val2[10] = {x, w, sp};
	CHECK(ir_interp(g, val2, &d) == 0);
	for (int i = 0; i < 6; i++) {
		CHECK_NEAR(val2[4][i], before[i], 0);
		CHECK_NEAR(val2[4][i], -(x[i] * w[i % 3]), 0);
	}
	ir_interp_free(g, val2);
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_dce_oom(void)
{
	int failed = 0;
	for (long k = 1; k <= 4; k++) {
		Graph *g = sample();
		char *before = ir_print(g);
		Diag d;
		diag_init(&d);
		PassOptions o = {0};
		mem_fail_after(k);
		int rc = pass_dce(g, &o, &d);
		mem_fail_after(0);
		if (rc) {
			failed++;
			char *after = ir_print(g);
			CHECK(after && !strcmp(before, after));
			CHECK(strstr(diag_text(&d), "out of memory") != NULL);
			mem_free(after);
		}
		mem_free(before);
		diag_free(&d);
		ir_graph_destroy(g);
	}
	CHECK(failed > 0);
}

/* A new input shape flows through every node. */
static void test_infer_propagates(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	ir_node(g, 0)->shape.dim[0] = 5; /* x: [2,3] -> [5,3] */
	CHECK(rejects(g));
	PassOptions o = {0};
	CHECK_MSG(pass_infer_shapes(g, &o, &d) == 0, "%s", diag_text(&d));
	Shape s53 = {2, {5, 3}}, s5 = {1, {5}}, s0 = {0};
	CHECK(ir_shape_eq(&ir_node(g, 4)->shape, &s53));
	CHECK(ir_shape_eq(&ir_node(g, 9)->shape, &s53));
	CHECK(ir_shape_eq(&ir_node(g, 7)->shape, &s5));
	CHECK(ir_shape_eq(&ir_node(g, 8)->shape, &s0));
	CHECK(verifies(g));
	diag_free(&d);
	ir_graph_destroy(g);
}

/* An impossible shape: a located error, and the graph as it was. */
static void test_infer_failure(void)
{
	Source src;
	source_from_string(&src, "m.msw", "y = x * w\n");
	Graph *g = sample();
	ir_node(g, 4)->loc = (SrcLoc){&src, 1, 7, 1};
	ir_node(g, 0)->shape.dim[1] = 4; /* x [2,4] * w [3] */
	char *before = ir_print(g);
	Hash128 h = ir_hash(g);
	Diag d;
	diag_init(&d);
	PassOptions o = {0};
	CHECK(pass_infer_shapes(g, &o, &d) == -1);
	CHECK_MSG(strstr(diag_text(&d), "m.msw:1:7: error: mul shapes [2,4] and [3] do not "
				       "broadcast") != NULL, "%s", diag_text(&d));
	char *after = ir_print(g);
	Hash128 h2 = ir_hash(g);
	CHECK(!strcmp(before, after) && h.lo == h2.lo && h.hi == h2.hi);
	mem_free(before);
	mem_free(after);
	diag_free(&d);
	ir_graph_destroy(g);
	source_free(&src);
}

/* Attributes edited into a non-canonical form are normalised again. */
static void test_infer_normalises(void)
{
	Graph *g = sample();
	Diag d;
	diag_init(&d);
	ir_node(g, 7)->axis = -1;
	CHECK(rejects(g));
	PassOptions o = {0};
	CHECK(pass_infer_shapes(g, &o, &d) == 0);
	CHECK(ir_node(g, 7)->axis == 1);
	CHECK(verifies(g));
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Parsed text goes through both passes. */
static void test_on_parsed(void)
{
	Source src;
	source_from_string(&src, "t.ir",
			   "%0 = input \"x\" : f32[4]\n"
			   "%1 = exp %0 : f32[4]\n"
			   "%2 = neg %0 : f32[4]\n"
			   "output \"y\" = %2\n");
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	CHECK(ir_parse(&src, &g, &d) == 0);
	PassOptions o = {0};
	CHECK(g && pass_infer_shapes(g, &o, &d) == 0);
	CHECK(g && pass_dce(g, &o, &d) == 0);
	char *text = g ? ir_print(g) : NULL;
	CHECK(text && !strcmp(text, "%0 = input \"x\" : f32[4]\n%1 = neg %0 : f32[4]\n"
				    "output \"y\" = %1\n"));
	mem_free(text);
	ir_graph_destroy(g);
	diag_free(&d);
	source_free(&src);
}

int main(void)
{
	RUN(test_dce_inference);
	RUN(test_dce_training);
	RUN(test_dce_loss_as_output);
	RUN(test_dce_same_values);
	RUN(test_dce_oom);
	RUN(test_infer_propagates);
	RUN(test_infer_failure);
	RUN(test_infer_normalises);
	RUN(test_on_parsed);
	return check_report();
}

/* test_verify.c: the verifier accepts what the builders make and rejects
 * each broken invariant, with a message that says which. Every broken graph
 * is made by corrupting one field of a good one by hand, the way a buggy
 * pass would. */
#include "../check.h"
#include "ir/ir.h"

#include <string.h>

static SrcLoc noloc;

/* x[2,3] -> neg -> sum(axis 1) ; loss = mean of the sum; output "y" */
static Graph *good(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape s = {2, {2, 3}}, ps = {1, {3}};
	ValId x = ir_input(g, "x", DT_F32, &s, noloc, &d);
	ValId w = ir_param(g, "w", &ps, INIT_ZEROS, 0, noloc, &d);
	ValId a = ir_binary(g, OP_MUL, x, w, noloc, &d);
	ValId n = ir_unary(g, OP_NEG, a, noloc, &d);
	ValId r = ir_reduce(g, OP_SUM, n, 1, false, noloc, &d);
	ValId l = ir_reduce(g, OP_MEAN, r, 0, false, noloc, &d);
	ir_set_output(g, "y", r);
	g->loss = l;
	diag_free(&d);
	return g;
}

/* Runs the verifier and checks it fails mentioning `want`. */
static void expect_error(Graph *g, const char *want)
{
	Diag d;
	diag_init(&d);
	int rc = ir_verify(g, &d);
	CHECK_MSG(rc == -1 && strstr(diag_text(&d), want) != NULL, "want \"%s\", got:\n%s", want,
		  diag_text(&d));
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_good(void)
{
	Graph *g = good();
	Diag d;
	diag_init(&d);
	CHECK_MSG(ir_verify(g, &d) == 0 && d.nerror == 0, "%s", diag_text(&d));
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_order(void)
{
	Graph *g = good();
	/* neg (%3) reads the sum (%4), which comes after it */
	VEC_AT(g->arg, ValId, ir_node(g, 3)->arg) = 4;
	expect_error(g, "node %3 (neg): operand 0 is %4, which does not come before it");
	g = good();
	VEC_AT(g->arg, ValId, ir_node(g, 3)->arg) = 3; /* reads itself */
	expect_error(g, "does not come before it");
}

static void test_arity(void)
{
	Graph *g = good();
	ir_node(g, 2)->narg = 1;
	expect_error(g, "node %2 (mul) has 1 operands, expected 2");
	g = good();
	ir_node(g, 0)->narg = 1; /* a source with an operand */
	expect_error(g, "node %0 (input) has 1 operands, expected 0");
	g = good();
	ir_node(g, 3)->arg = 1000;
	expect_error(g, "lies outside");
}

static void test_op_dtype(void)
{
	Graph *g = good();
	ir_node(g, 3)->op = OP_COUNT;
	expect_error(g, "unknown op");
	g = good();
	ir_node(g, 0)->dtype = 9;
	expect_error(g, "unknown dtype");
	g = good();
	ir_node(g, 3)->flags = NF_TRANS_A;
	expect_error(g, "node %3 (neg) has flags 0x2 it does not use");
}

static void test_types(void)
{
	Graph *g = good();
	ir_node(g, 3)->shape.dim[1] = 4;
	expect_error(g, "node %3 (neg) has type f32[2,4] but its operands give f32[2,3]");
	g = good();
	ir_node(g, 3)->dtype = DT_I32;
	expect_error(g, "has type i32[2,3] but its operands give f32[2,3]");
	g = good();
	ir_node(g, 4)->axis = 5; /* the rule itself rejects this */
	expect_error(g, "sum axis 5 is out of range for shape [2,3]");
	g = good();
	ir_node(g, 4)->axis = -1; /* right shape, but not normalised */
	expect_error(g, "not normalised");
}

static void test_names(void)
{
	Graph *g = good();
	Diag d;
	diag_init(&d);
	Shape s = {1, {3}};
	ir_param(g, "w", &s, INIT_ZEROS, 0, noloc, &d);
	expect_error(g, "param name \"w\" is used twice (%1 and %6)");
	/* an input and a param may share a name: they are looked up apart */
	g = good();
	CHECK(ir_param(g, "x", &s, INIT_ZEROS, 0, noloc, &d) != VAL_NONE);
	CHECK(ir_verify(g, &d) == 0);
	ir_graph_destroy(g);
	g = good();
	ir_input(g, "x", DT_I32, &s, noloc, &d);
	expect_error(g, "input name \"x\" is used twice");
	g = good();
	ir_node(g, 1)->name = 999;
	expect_error(g, "bad name id 999");
	diag_free(&d);
}

static void test_results(void)
{
	Graph *g = good();
	VEC_AT(g->out, Output, 0).val = 6;
	expect_error(g, "output \"y\" is %6, not a value");
	g = good();
	g->loss = 99;
	expect_error(g, "the loss is %99, not a value");
	g = good();
	g->loss = 4; /* the [2] sum, not a scalar */
	expect_error(g, "the loss %4 must be an f32 scalar");
	g = good();
	ir_set_output(g, "z", 2);
	VEC_AT(g->out, Output, 1).name = VEC_AT(g->out, Output, 0).name;
	expect_error(g, "repeats an earlier name");
}

/* Several broken nodes are all reported, not just the first. */
static void test_many(void)
{
	Graph *g = good();
	ir_node(g, 2)->shape.dim[0] = 7;
	ir_node(g, 4)->flags = NF_FROZEN;
	Diag d;
	diag_init(&d);
	CHECK(ir_verify(g, &d) == -1);
	CHECK(d.nerror >= 2);
	diag_free(&d);
	ir_graph_destroy(g);
}

int main(void)
{
	RUN(test_good);
	RUN(test_order);
	RUN(test_arity);
	RUN(test_op_dtype);
	RUN(test_types);
	RUN(test_names);
	RUN(test_results);
	RUN(test_many);
	return check_report();
}

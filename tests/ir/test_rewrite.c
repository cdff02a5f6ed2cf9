/* test_rewrite.c: the rewrite API (ir/rewrite.c).
 *
 *   - use lists list every reader in node order, twice for a double read;
 *   - placed nodes land before their anchor, replacements reach the later
 *     readers, outputs, the loss and gradients, and the nodes a
 *     replacement is built from keep reading the old value;
 *   - masks and gradient pairs keep naming their params after renumbering,
 *     and the verifier accepts every committed result;
 *   - removing a node that is still read, placing a node before its
 *     operand, and aborting all leave the graph exactly as it was. */
#include "../check.h"
#include "ir/ir.h"

#include <string.h>

static bool same(Hash128 a, Hash128 b)
{
	return a.lo == b.lo && a.hi == b.hi;
}

/* %0 x, %1 w, %2 mul x w, %3 exp, %4 sum (the loss), output "y" = %3,
 * grad "w" = %2, w with a mask. */
static Graph *small(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape s = {.rank = 1, .dim = {2}};
	SrcLoc nl = {0};
	ValId x = ir_input(g, "x", DT_F32, &s, nl, &d);
	ValId w = ir_param(g, "w", &s, INIT_ONES, 0, nl, &d);
	ValId a = ir_binary(g, OP_MUL, x, w, nl, &d);
	ValId b = ir_unary(g, OP_EXP, a, nl, &d);
	g->loss = ir_reduce(g, OP_SUM, b, 0, false, nl, &d);
	ir_set_output(g, "y", b);
	GradPair *gp = vec_push(&g->grad, sizeof *gp);
	gp->param = w;
	gp->grad = a;
	ir_set_mask(g, w, 0.5, SD_UNIFORM);
	CHECK(d.nerror == 0);
	diag_free(&d);
	return g;
}

static void check_text(const Graph *g, const char *want)
{
	char *text = ir_print(g);
	CHECK_MSG(text && !strcmp(text, want), "got:\n%s", text ? text : "(null)");
	mem_free(text);
	Diag d;
	diag_init(&d);
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	diag_free(&d);
}

static void test_uses(void)
{
	Graph *g = small();
	Diag d;
	diag_init(&d);
	ValId x = 0;
	ValId twice = ir_binary(g, OP_ADD, x, x, (SrcLoc){0}, &d);
	Uses u;
	CHECK(ir_uses(g, &u, &d) == 0);
	CHECK(u.start[x + 1] - u.start[x] == 3);
	CHECK(u.user[u.start[x]] == 2 && u.user[u.start[x] + 1] == twice &&
	      u.user[u.start[x] + 2] == twice);
	CHECK(u.start[3] - u.start[2] == 1 && u.user[u.start[2]] == 3);
	CHECK(u.start[twice + 1] == u.start[twice]);   /* nobody reads it */
	ir_uses_free(&u);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_place_and_replace(void)
{
	Graph *g = small();
	Diag d;
	diag_init(&d);
	Rewrite rw;
	CHECK(ir_rw_begin(g, &rw, &d) == 0);
	/* t = tanh(x) before the mul; x's later readers read t, t keeps x. */
	ValId t = ir_unary(g, OP_TANH, 0, (SrcLoc){0}, &d);
	CHECK(ir_rw_place(&rw, 2, &d) == 0);
	CHECK(ir_rw_replace(&rw, 0, t, &d) == 0);
	/* the output and the gradient move to a neg appended at the end */
	ValId e = ir_unary(g, OP_NEG, 3, (SrcLoc){0}, &d);
	CHECK(ir_rw_replace(&rw, 3, e, &d) == 0);
	ValId ng = ir_unary(g, OP_NEG, 2, (SrcLoc){0}, &d);
	CHECK(ir_rw_replace(&rw, 2, ng, &d) == 0);
	CHECK(ir_rw_commit(&rw, &d) == 0);
	check_text(g, "%0 = input \"x\" : f32[2]\n"
		      "%1 = param \"w\" ones : f32[2]\n"
		      "%2 = tanh %0 : f32[2]\n"
		      "%3 = mul %2, %1 : f32[2]\n"
		      "%4 = exp %3 : f32[2]\n"
		      "%5 = sum %4 axis=0 : f32[]\n"
		      "%6 = neg %4 : f32[2]\n"
		      "%7 = neg %3 : f32[2]\n"
		      "output \"y\" = %6\n"
		      "loss = %5\n"
		      "grad \"w\" = %7\n"
		      "mask \"w\" 0.5 uniform\n");
	/* e sits at the end, so the sum, before it, keeps reading the exp. */
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_remove(void)
{
	Graph *g = small();
	Diag d;
	diag_init(&d);
	ValId dead = ir_unary(g, OP_NEG, 0, (SrcLoc){0}, &d);
	ValId p2 = ir_param(g, "v", &(Shape){.rank = 1, .dim = {2}}, INIT_ZEROS, 0, (SrcLoc){0}, &d);
	ir_set_mask(g, p2, 0.25, SD_ERK);
	Rewrite rw;
	CHECK(ir_rw_begin(g, &rw, &d) == 0);
	ir_rw_remove(&rw, dead);
	CHECK(ir_rw_commit(&rw, &d) == 0);
	check_text(g, "%0 = input \"x\" : f32[2]\n"
		      "%1 = param \"w\" ones : f32[2]\n"
		      "%2 = mul %0, %1 : f32[2]\n"
		      "%3 = exp %2 : f32[2]\n"
		      "%4 = sum %3 axis=0 : f32[]\n"
		      "%5 = param \"v\" zeros : f32[2]\n"
		      "output \"y\" = %3\n"
		      "loss = %4\n"
		      "grad \"w\" = %2\n"
		      "mask \"w\" 0.5 uniform\n"
		      "mask \"v\" 0.25 erk\n");
	CHECK(VEC_AT(g->mask, Mask, 1).param == 5);
	ir_graph_destroy(g);
	diag_free(&d);
}

/* Each bad rewrite fails with one error and leaves the graph as it was. */
static void test_failures_leave_graph(void)
{
	for (int kind = 0; kind < 4; kind++) {
		Graph *g = small();
		char *before = ir_print(g);
		Hash128 h = ir_hash(g);
		Diag d;
		diag_init(&d);
		Rewrite rw;
		CHECK(ir_rw_begin(g, &rw, &d) == 0);
		int rc = 0;
		if (kind == 0) {          /* removed but still read */
			ir_rw_remove(&rw, 2);
		} else if (kind == 1) {   /* placed before its own operand */
			ir_unary(g, OP_NEG, 3, (SrcLoc){0}, &d);
			ir_rw_place(&rw, 1, &d);
			ValId r = ir_nnode(g) - 1;
			ir_rw_replace(&rw, 1, r, &d);
		} else if (kind == 2) {   /* the loss's node removed */
			ir_rw_remove(&rw, 4);
		} else {                  /* aborted */
			ir_unary(g, OP_NEG, 3, (SrcLoc){0}, &d);
			ir_rw_abort(&rw);
			rc = -1;
		}
		if (kind < 3)
			rc = ir_rw_commit(&rw, &d);
		CHECK_MSG(rc == -1, "kind %d", kind);
		CHECK_MSG(kind == 3 || d.nerror == 1, "kind %d: %s", kind, diag_text(&d));
		char *after = ir_print(g);
		CHECK_MSG(after && !strcmp(before, after), "kind %d:\n%s", kind, after);
		CHECK(same(h, ir_hash(g)));
		mem_free(before);
		mem_free(after);
		ir_graph_destroy(g);
		diag_free(&d);
	}
}

int main(void)
{
	RUN(test_uses);
	RUN(test_place_and_replace);
	RUN(test_remove);
	RUN(test_failures_leave_graph);
	return check_report();
}

/* test_plan_memory.c: the memory planner against a brute-force checker.
 *
 * The checker recomputes lifetimes independently (a value lives from its
 * node to the last reader of it or of any view of it; persistent values live
 * forever) and verifies every pair of values: if both are live at once and
 * are not aliases of each other, their byte ranges must be disjoint. In
 * checked mode (PassOptions.guard) the data of any two values that are not
 * aliases lie at least the guard apart, whenever they live, and the arena
 * has a guard at both ends. The other tests plan the ordinary layout
 * whatever MSW_CHECK says. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static ValId root_of(const Graph *g, ValId v)
{
	while (ir_op[ir_node(g, v)->op].flags & OPF_VIEW)
		v = ir_operand(g, ir_node(g, v), 0);
	return v;
}

static int is_persistent_value(const Graph *g, ValId v)
{
	int op = ir_node(g, v)->op;
	if (op == OP_PARAM || op == OP_INPUT || v == g->loss)
		return 1;
	for (size_t i = 0; i < g->out.len; i++)
		if (VEC_AT(g->out, Output, i).val == v)
			return 1;
	return 0;
}

/* Lifetime of an alias tree [lo, hi]; persistent trees span everything. */
static void lifetime(const Graph *g, ValId r, uint32_t *lo, uint32_t *hi)
{
	uint32_t n = ir_nnode(g);
	*lo = r;
	*hi = r;
	for (uint32_t v = 0; v < n; v++) {
		if (root_of(g, v) != r)
			continue;
		if (is_persistent_value(g, v)) {
			*lo = 0;
			*hi = n;
			return;
		}
		if (v > *hi)
			*hi = v;
		for (uint32_t u = v + 1; u < n; u++) {
			const Node *nd = ir_node(g, u);
			for (uint32_t i = 0; i < nd->narg; i++)
				if (ir_operand(g, nd, i) == v && u > *hi)
					*hi = u;
		}
	}
}

/* Returns the number of violations found. */
static int check_plan(const Graph *g, int64_t align)
{
	int bad = 0;
	uint32_t n = ir_nnode(g);
	for (uint32_t a = 0; a < n; a++) {
		const Node *na = ir_node(g, a);
		if (na->offset < 0 || na->offset % align ||
		    na->offset + ir_nbytes(g, a) > g->arena_size) {
			fprintf(stderr, "value %u: offset %lld out of place\n", a, (long long)na->offset);
			bad++;
		}
		if (ir_op[na->op].flags & OPF_VIEW) {
			if (na->offset != ir_node(g, ir_operand(g, na, 0))->offset) {
				fprintf(stderr, "view %u does not alias its operand\n", a);
				bad++;
			}
		}
	}
	for (uint32_t a = 0; a < n; a++) {
		ValId ra = root_of(g, a);
		uint32_t alo, ahi;
		lifetime(g, ra, &alo, &ahi);
		for (uint32_t b = a + 1; b < n; b++) {
			ValId rb = root_of(g, b);
			if (ra == rb)
				continue;
			uint32_t blo, bhi;
			lifetime(g, rb, &blo, &bhi);
			if (ahi < blo || bhi < alo)
				continue;
			int64_t a0 = ir_node(g, a)->offset, a1 = a0 + ir_nbytes(g, a);
			int64_t b0 = ir_node(g, b)->offset, b1 = b0 + ir_nbytes(g, b);
			if (a0 < b1 && b0 < a1) {
				fprintf(stderr, "values %u and %u overlap while both live\n", a, b);
				bad++;
			}
		}
	}
	return bad;
}

static Shape vec_shape(int64_t n)
{
	Shape s = {.rank = 1};
	s.dim[0] = n;
	return s;
}

static int64_t sum_sizes(const Graph *g, int64_t align)
{
	int64_t total = 0;
	for (uint32_t v = 0; v < ir_nnode(g); v++)
		if (!(ir_op[ir_node(g, v)->op].flags & OPF_VIEW))
			total += (ir_nbytes(g, v) + align - 1) / align * align;
	return total;
}

/* x -> exp -> tanh -> ... -> out: only two temporaries are ever live. */
static void test_chain_reuses(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = vec_shape(1000);
	ValId x = ir_input(g, "x", DT_F32, &s, (SrcLoc){0}, &d);
	for (int i = 0; i < 10; i++)
		x = ir_unary(g, i % 2 ? OP_EXP : OP_TANH, x, (SrcLoc){0}, &d);
	CHECK(x != VAL_NONE);
	CHECK(ir_set_output(g, "y", x) == 0);
	PassOptions o = {0};
	CHECK(pass_plan_memory(g, &o, &d) == 0);
	CHECK(check_plan(g, 64) == 0);
	CHECK(g->arena_size < sum_sizes(g, 64));
	/* input + output + two ping-pong temporaries */
	CHECK(g->arena_size == 4 * 4032);
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_views_alias(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = vec_shape(24), s2 = {.rank = 2, .dim = {4, 6}}, s3 = {.rank = 2, .dim = {6, 4}};
	SrcLoc l = {0};
	ValId x = ir_input(g, "x", DT_F32, &s, l, &d);
	ValId p = ir_param(g, "w", &s2, INIT_ONES, 0, l, &d);
	ValId a = ir_unary(g, OP_EXP, x, l, &d);
	ValId r1 = ir_reshape(g, a, &s2, l, &d);
	ValId b = ir_unary(g, OP_TANH, x, l, &d);           /* must not take a's space */
	ValId c = ir_unary(g, OP_NEG, b, l, &d);
	ValId r2 = ir_reshape(g, r1, &s3, l, &d);
	ValId e = ir_unary(g, OP_EXP, c, l, &d);
	ValId r3 = ir_reshape(g, r2, &s2, l, &d);
	ValId f = ir_binary(g, OP_ADD, r3, p, l, &d);       /* a is read here, via views */
	ValId rp = ir_reshape(g, p, &s3, l, &d);             /* view of a param */
	ValId h = ir_unary(g, OP_EXP, rp, l, &d);
	ValId out = ir_reshape(g, f, &s, l, &d);             /* output through a view */
	CHECK(h != VAL_NONE && e != VAL_NONE && out != VAL_NONE);
	CHECK(ir_set_output(g, "y", out) == 0);
	PassOptions o = {.alignment = 128};
	CHECK(pass_plan_memory(g, &o, &d) == 0);
	CHECK(check_plan(g, 128) == 0);
	CHECK(ir_node(g, r1)->offset == ir_node(g, a)->offset);
	CHECK(ir_node(g, r3)->offset == ir_node(g, a)->offset);
	CHECK(ir_node(g, rp)->offset == ir_node(g, p)->offset);
	CHECK(ir_node(g, out)->offset == ir_node(g, f)->offset);
	CHECK(ir_node(g, b)->offset != ir_node(g, a)->offset);
	CHECK(ir_node(g, c)->offset != ir_node(g, a)->offset);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Params come first and back to back, then inputs. */
static void test_persistent_layout(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	SrcLoc l = {0};
	Shape s = vec_shape(10);
	ValId x = ir_input(g, "x", DT_F32, &s, l, &d);
	ValId w1 = ir_param(g, "w1", &s, INIT_NORMAL, 0.02, l, &d);
	ValId t = ir_binary(g, OP_MUL, x, w1, l, &d);
	ValId w2 = ir_param(g, "w2", &s, INIT_ZEROS, 0, l, &d);
	ValId u = ir_binary(g, OP_ADD, t, w2, l, &d);
	ValId loss = ir_reduce(g, OP_SUM, u, 0, false, l, &d);
	CHECK(loss != VAL_NONE);
	g->loss = loss;
	PassOptions o = {0};
	CHECK(pass_plan_memory(g, &o, &d) == 0);
	CHECK(check_plan(g, 64) == 0);
	CHECK(ir_node(g, w1)->offset == 0);
	CHECK(ir_node(g, w2)->offset == 64);
	CHECK(ir_node(g, x)->offset == 128);
	CHECK(ir_node(g, loss)->offset == 192);
	diag_free(&d);
	ir_graph_destroy(g);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* A random DAG of elementwise ops and views on vectors of one length. */
static Graph *random_graph(Diag *d)
{
	Graph *g = ir_graph_create();
	SrcLoc l = {0};
	int64_t len = 1 + rnd(300);
	Shape s = vec_shape(len), s2 = {.rank = 2, .dim = {1, len}};
	ir_input(g, "x", DT_F32, &s, l, d);
	ir_param(g, "p", &s, INIT_ONES, 0, l, d);
	int nnode = 5 + (int)rnd(40);
	for (int i = 0; i < nnode; i++) {
		uint32_t nv = ir_nnode(g);
		ValId a = nv - 1 - rnd(nv < 6 ? nv : 6), b = rnd(nv);
		const Node *na = ir_node(g, a);
		switch (rnd(4)) {
		case 0:
			ir_unary(g, OP_EXP, a, l, d);
			break;
		case 1:
			ir_reshape(g, a, na->shape.rank == 1 ? &s2 : &s, l, d);
			break;
		default:
			if (ir_node(g, b)->shape.rank != na->shape.rank)
				b = a;
			ir_binary(g, OP_ADD, a, b, l, d);
		}
	}
	if (rnd(2))
		ir_set_output(g, "o1", ir_nnode(g) - 1);
	if (rnd(2))
		ir_set_output(g, "o2", rnd(ir_nnode(g)));
	return g;
}

/* Random DAGs of elementwise ops and views, many sizes. */
static void test_random_graphs(void)
{
	int bad = 0, reused = 0;
	for (int iter = 0; iter < 200; iter++) {
		Diag d;
		diag_init(&d);
		Graph *g = random_graph(&d);
		PassOptions o = {.alignment = rnd(2) ? 64 : 16};
		CHECK(pass_plan_memory(g, &o, &d) == 0);
		bad += check_plan(g, o.alignment);
		reused += g->arena_size < sum_sizes(g, o.alignment);
		diag_free(&d);
		ir_graph_destroy(g);
	}
	CHECK(bad == 0);
	CHECK(reused > 100);
}

/* Checked mode: guards between all values, at both ends, no reuse. */
static void test_checked_random(void)
{
	int bad = 0;
	for (int iter = 0; iter < 100; iter++) {
		Diag d;
		diag_init(&d);
		Graph *g = random_graph(&d);
		int64_t align = rnd(2) ? 64 : 16, want = 1 + rnd(300);
		PassOptions o = {.alignment = align, .guard = want};
		CHECK(pass_plan_memory(g, &o, &d) == 0);
		int64_t guard = g->arena_guard;
		CHECK(guard >= want && guard % align == 0 && guard < want + align);
		bad += check_plan(g, align);
		uint32_t n = ir_nnode(g);
		for (uint32_t a = 0; a < n; a++) {
			int64_t a0 = ir_node(g, a)->offset, a1 = a0 + ir_nbytes(g, a);
			if (a0 < guard || a1 > g->arena_size - guard) {
				fprintf(stderr, "value %u [%lld, %lld) is within a guard of an end\n", a,
					(long long)a0, (long long)a1);
				bad++;
			}
			for (uint32_t b = a + 1; b < n; b++) {
				int64_t b0 = ir_node(g, b)->offset, b1 = b0 + ir_nbytes(g, b);
				if (root_of(g, a) != root_of(g, b) && a0 < b1 + guard && b0 < a1 + guard) {
					fprintf(stderr, "values %u and %u are closer than the guard\n", a, b);
					bad++;
				}
			}
		}
		diag_free(&d);
		ir_graph_destroy(g);
	}
	CHECK(bad == 0);
}

static void test_bad_alignment(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = vec_shape(3);
	ValId x = ir_input(g, "x", DT_F32, &s, (SrcLoc){0}, &d);
	PassOptions o = {.alignment = 48};
	CHECK(pass_plan_memory(g, &o, &d) == -1);
	CHECK(strstr(diag_text(&d), "power of two") != NULL);
	CHECK(ir_node(g, x)->offset == -1);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* Every allocation failure comes back as an error and leaves offsets alone. */
static void test_oom(void)
{
	for (long k = 1; k < 20; k++) {
		Graph *g = ir_graph_create();
		Diag d;
		diag_init(&d);
		Shape s = vec_shape(16);
		ValId x = ir_input(g, "x", DT_F32, &s, (SrcLoc){0}, &d);
		for (int i = 0; i < 6; i++)
			x = ir_unary(g, OP_EXP, x, (SrcLoc){0}, &d);
		PassOptions o = {0};
		mem_fail_after(k);
		int rc = pass_plan_memory(g, &o, &d);
		mem_fail_after(0);
		if (rc)
			CHECK(ir_node(g, x)->offset == -1);
		else
			CHECK(check_plan(g, 64) == 0);
		diag_free(&d);
		ir_graph_destroy(g);
	}
}

int main(void)
{
	unsetenv("MSW_CHECK");   /* the ordinary layout, unless a test asks */
	RUN(test_chain_reuses);
	RUN(test_views_alias);
	RUN(test_persistent_layout);
	RUN(test_random_graphs);
	RUN(test_checked_random);
	RUN(test_bad_alignment);
	RUN(test_oom);
	return check_report();
}

/* test_place.c: placement on a mesh (passes/place.c, passes/place_cost.c,
 * docs/mesh.md), on a small GPT's whole training step:
 *   - every node is placed inside the mesh, the same way twice (the text
 *     printed is byte-identical), and the placement reads back from the
 *     printed IR (mesh and place lines) to the same text;
 *   - every unit's rectangle holds its memory: the fullest tile's peak is
 *     within the tile memory; a mesh too small is refused with the buffers
 *     that do not fit, each at its .msw line, and the graph stays unplaced;
 *   - a 90% sparse layer takes fewer tiles than its dense self (its work
 *     and its memory are its kept entries), less memory and time in all;
 *   - a mesh with fewer tiles than units gives every unit every tile;
 *   - without a mesh nothing is placed (the pipeline is what it was);
 *   - the cost model's step is positive, its critical path adds up to it,
 *     and a mesh with twice the link bandwidth predicts no slower. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "passes/passes.h"

#define GPT MSW_SOURCE_DIR "/models/gpt.msw"

static fe_Session *session;

/* A 16x16 mesh of modest tiles; fixed figures, so no host rates. */
static const char mesh16[] =
	"tiles 16x16\nmemory 512K\nclock 1G\ndense 8/cycle\nsparse 8/cycle\nlocal 16/cycle\n"
	"link 4/cycle\nlatency 1cycle\n";

static Mesh make_mesh(const char *text)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	int rc = mesh_parse_text("test.mesh", text, NULL, &m, &d);
	CHECK_MSG(rc == 0, "%s", diag_text(&d));
	diag_free(&d);
	return m;
}

/* The GPT at d=64, `layers` layers, sequence 64, through the whole
 * pipeline (training with the update) onto mesh m (NULL: none). */
static Graph *build(int layers, double sparsity, const Mesh *m, Diag *d)
{
	char nl[8];
	snprintf(nl, sizeof nl, "%d", layers);
	const fe_Define def[] = {{"vocab", "64"}, {"ctx", "64"}, {"d", "64"}, {"heads", "2"},
				 {"layers", nl}};
	fe_Options fo = {.def = def, .ndef = 5};
	Graph *g = NULL;
	if (fe_compile_file(session, GPT, &fo, &g, d))
		return NULL;
	PruneOptions pr;
	pass_prune_defaults(&pr);
	pr.sparsity = sparsity;
	PassOptions po = {.training = true, .optimizer = true, .verify = true, .alignment = 64,
			  .prune = &pr, .sparse_format = SPF_MASKED, .mesh = m};
	if (pass_run_pipeline(g, &po, NULL, d) < 0) {
		ir_graph_destroy(g);
		return NULL;
	}
	return g;
}

static Graph *build_ok(int layers, double sparsity, const Mesh *m)
{
	Diag d;
	diag_init(&d);
	Graph *g = build(layers, sparsity, m, &d);
	CHECK_MSG(g != NULL, "%s", diag_text(&d));
	diag_free(&d);
	return g;
}

static void test_every_node_placed_twice_alike(void)
{
	Mesh m = make_mesh(mesh16);
	Graph *a = build_ok(2, -1, &m), *b = build_ok(2, -1, &m);
	if (!a || !b)
		goto done;
	CHECK(a->place.len == ir_nnode(a) && a->mesh_rows == 16 && a->mesh_cols == 16);
	for (ValId v = 0; v < ir_nnode(a); v++) {
		const Place *p = ir_place(a, v);
		CHECK(p->rows >= 1 && p->cols >= 1 && p->row + p->rows <= 16 && p->col + p->cols <= 16);
	}
	char *ta = ir_print(a), *tb = ir_print(b);
	CHECK(ta && tb && !strcmp(ta, tb));
	CHECK(ta && strstr(ta, "\nmesh \"test.mesh\" rows=16 cols=16\n") &&
	      strstr(ta, "\nplace %0"));
	/* read back: the same placement, the same text */
	Source src;
	Graph *c = NULL;
	Diag d;
	diag_init(&d);
	CHECK(source_from_string(&src, "t.mswir", ta) == 0);
	CHECK_MSG(ir_parse(&src, &c, &d) == 0 && ir_verify(c, &d) == 0, "%s", diag_text(&d));
	char *tc = c ? ir_print(c) : NULL;
	CHECK(tc && !strcmp(ta, tc));
	CHECK(c && ir_hash(c).lo == ir_hash(a).lo);   /* placement is not what it computes */
	mem_free(tc);
	ir_graph_destroy(c);
	source_free(&src);
	diag_free(&d);
	mem_free(ta);
	mem_free(tb);
done:
	ir_graph_destroy(a);
	ir_graph_destroy(b);
	mesh_free(&m);
}

static void test_memory_bound(void)
{
	Mesh m = make_mesh(mesh16);
	Graph *g = build_ok(2, -1, &m);
	PlaceStats st;
	Diag d;
	diag_init(&d);
	CHECK(g && place_evaluate(g, &m, &st, NULL, &d) == 0);
	CHECK(st.mem_max > 0 && st.mem_max <= m.memory && st.tiles_used <= 256);
	CHECK(st.step > 0 && st.phase[0] > 0 && st.phase[0] <= st.phase[1] &&
	      st.phase[1] <= st.phase[2] + 1e-12);
	/* the critical path adds up to the step */
	CHECK_NEAR(st.crit_compute + st.crit_exchange + st.crit_transfer, st.step, 1e-9 * st.step);
	ir_graph_destroy(g);
	mesh_free(&m);
	/* 2x2 tiles of 16 KiB cannot hold a training step of about a MiB */
	m = make_mesh("tiles 2x2\nmemory 16K\ndense 1G\nlink 1G\n");
	g = build(2, -1, &m, &d);
	CHECK(g == NULL);
	const char *t = diag_text(&d);
	CHECK_MSG(strstr(t, "test.mesh:2:8: error: the step does not fit on mesh 'test.mesh'"), "%s", t);
	CHECK_MSG(strstr(t, ".msw:") && strstr(t, ": note: ") && strstr(t, "on this tile: weight \"h.") && strstr(t, "the units need"),
		  "%s", t);
	diag_free(&d);
	mesh_free(&m);
	/* enough in all, but not on the tile that holds the biggest weight's shards:
	 * one tile per unit, so each holds a whole unit */
	diag_init(&d);
	m = make_mesh("tiles 1x18\nmemory 300K\ndense 1G\nlink 1G\n");
	g = build(2, -1, &m, &d);
	if (g) {   /* fits after all: then it really is within the tiles */
		CHECK(place_evaluate(g, &m, &st, NULL, &d) == 0 && st.mem_max <= m.memory);
	} else {
		t = diag_text(&d);
		CHECK_MSG(strstr(t, "does not fit") && strstr(t, "on this tile"), "%s", t);
	}
	ir_graph_destroy(g);
	diag_free(&d);
	mesh_free(&m);
}

/* A graph that a failed placement leaves is the unplaced one. */
static void test_refused_graph_unplaced(void)
{
	Mesh m = make_mesh("tiles 2x2\nmemory 16K\ndense 1G\nlink 1G\n");
	Graph *g = build_ok(1, -1, NULL);
	Diag d;
	diag_init(&d);
	PassOptions po = {.mesh = &m};
	CHECK(g && pass_place(g, &po, &d) == -1 && g->place.len == 0 && ir_verify(g, &d) == 0);
	diag_free(&d);
	ir_graph_destroy(g);
	mesh_free(&m);
}

/* Tiles of the unit of the param named `name`. */
static int64_t unit_tiles(const Graph *g, const char *name)
{
	ValId p = ir_find_param(g, name);
	if (p == VAL_NONE)
		return -1;
	const Place *pl = ir_place(g, p);
	return (int64_t)pl->rows * pl->cols;
}

/* Two layers, the second 90% sparse or dense, through the whole pipeline
 * onto m. */
static Graph *two_layers(bool sparse, const Mesh *m)
{
	char text[512];
	snprintf(text, sizeof text,
		 "model two(d = 128, rows = 256) {\n"
		 "  input x: f32[rows, d]\n"
		 "  input y: i32[rows]\n"
		 "  h = gelu(linear(x, 4 * d) as a)\n"
		 "  z = linear(h, d) as b\n"
		 "  %s\n"
		 "  loss cross_entropy(z, y)\n"
		 "}\n", sparse ? "sparsity 0.9 on b.weight" : "");
	Diag d;
	diag_init(&d);
	Graph *g = NULL;
	PruneOptions pr;
	pass_prune_defaults(&pr);
	PassOptions po = {.training = true, .optimizer = true, .verify = true, .alignment = 64,
			  .prune = &pr, .sparse_format = SPF_MASKED, .mesh = m};
	int rc = fe_compile_string(session, "two.msw", text, NULL, &g, &d);
	if (!rc)
		rc = pass_run_pipeline(g, &po, NULL, &d) < 0;
	CHECK_MSG(rc == 0, "%s", diag_text(&d));
	diag_free(&d);
	if (rc) {
		ir_graph_destroy(g);
		return NULL;
	}
	return g;
}

static void test_sparse_takes_fewer_tiles(void)
{
	Mesh m0 = make_mesh(mesh16);
	Graph *d2 = two_layers(false, &m0), *s2 = two_layers(true, &m0);
	if (d2 && s2) {
		int64_t kd = unit_tiles(d2, "b.weight"), ks = unit_tiles(s2, "b.weight");
		CHECK_MSG(ks > 0 && ks < kd, "b: %lld tiles sparse, %lld dense", (long long)ks,
			  (long long)kd);
		CHECK(unit_tiles(s2, "a.weight") >= unit_tiles(d2, "a.weight"));
		/* its weight, gradient and moments hold the kept entries only */
		PlaceStats a, b;
		Diag d;
		diag_init(&d);
		CHECK(place_evaluate(d2, &m0, &a, NULL, &d) == 0 &&
		      place_evaluate(s2, &m0, &b, NULL, &d) == 0);
		CHECK(b.mem_total < a.mem_total && b.step < a.step);
		diag_free(&d);
	}
	ir_graph_destroy(d2);
	ir_graph_destroy(s2);
	mesh_free(&m0);
	/* every weight of a GPT sparse: the MLP's shrink (attention's
	 * products of activations, which stay dense, ride with c_attn) */
	Mesh m = make_mesh(mesh16);
	Graph *dense = build_ok(1, -1, &m), *sparse = build_ok(1, 0.9, &m);
	if (dense && sparse) {
		static const char *const w[] = {"h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight"};
		for (int i = 0; i < 2; i++) {
			int64_t kd = unit_tiles(dense, w[i]), ks = unit_tiles(sparse, w[i]);
			CHECK_MSG(ks > 0 && ks < kd, "%s: %lld tiles sparse, %lld dense", w[i],
				  (long long)ks, (long long)kd);
		}
		/* and the embedding, dense in both, gets more of the mesh */
		CHECK(unit_tiles(sparse, "wte.weight") >= unit_tiles(dense, "wte.weight"));
	}
	ir_graph_destroy(dense);
	ir_graph_destroy(sparse);
	mesh_free(&m);
}

static void test_small_mesh_shared(void)
{
	Mesh m = make_mesh("tiles 1x2\nmemory 64M\ndense 100G\nlink 10G\n");
	Graph *g = build_ok(2, -1, &m);
	for (ValId v = 0; g && v < ir_nnode(g); v++) {
		const Place *p = ir_place(g, v);
		int64_t numel = ir_numel(&ir_node(g, v)->shape);
		CHECK(p->row == 0 && p->col == 0 && p->cols == (numel >= 2 ? 2u : 1u));
	}
	ir_graph_destroy(g);
	mesh_free(&m);
}

static void test_no_mesh_no_placement(void)
{
	Graph *g = build_ok(1, -1, NULL);
	CHECK(g && g->place.len == 0);
	char *t = g ? ir_print(g) : NULL;
	CHECK(t && !strstr(t, "\nmesh ") && !strstr(t, "\nplace "));
	mem_free(t);
	ir_graph_destroy(g);
}

static void test_faster_links_no_slower(void)
{
	Mesh slow = make_mesh(mesh16);
	Mesh fast = make_mesh("tiles 16x16\nmemory 512K\nclock 1G\ndense 8/cycle\nsparse 8/cycle\n"
			      "local 16/cycle\nlink 8/cycle\nlatency 1cycle\n");
	Graph *g = build_ok(1, -1, &slow);
	PlaceStats a, b;
	Diag d;
	diag_init(&d);
	CHECK(g && place_evaluate(g, &slow, &a, NULL, &d) == 0);
	CHECK(g && place_evaluate(g, &fast, &b, NULL, &d) == 0);
	CHECK(b.step <= a.step);   /* a list schedule is monotone in its durations */
	diag_free(&d);
	ir_graph_destroy(g);
	mesh_free(&slow);
	mesh_free(&fast);
}

int main(void)
{
	session = fe_session_create();
	RUN(test_every_node_placed_twice_alike);
	RUN(test_memory_bound);
	RUN(test_refused_graph_unplaced);
	RUN(test_sparse_takes_fewer_tiles);
	RUN(test_small_mesh_shared);
	RUN(test_no_mesh_no_placement);
	RUN(test_faster_links_no_slower);
	fe_session_destroy(session);
	return check_report();
}

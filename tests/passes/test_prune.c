/* test_prune.c: sparsity masks (passes/prune.c, docs/sparsity.md).
 *
 * Models are compiled by the frontend and run through infer_shapes and
 * prune only; what is checked against numbers worked out here, not by the
 * pass's own helpers:
 *   - coverage: the default (the four GPT weight matrices per layer, never
 *     the tied embedding, biases or norms) and the statement's patterns;
 *   - exact counts: round(target * numel) zeros per covered param, uniform;
 *   - ERK: densities from the formula written out in this file, with and
 *     without a capped layer (the capped case by hand);
 *   - random masks: equal to the documented ranking (xxh3 over (seed,
 *     name, index)) recomputed here, reproducible, different across seeds,
 *     independent of the other params;
 *   - magnitude: exactly the largest |w|, ties by lower index;
 *   - supplied masks win; a bad one fails and leaves the graph unchanged;
 *   - the rewrite: every reader of a sparse param reads mul(param, mask);
 *     no statement and no override leaves the IR text unchanged;
 *   - print / parse: the mask line, the hash survives, the read-back masks
 *     are "to supply", a second prune is a no-op, and the interpreter
 *     runs once the bits are supplied. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "passes/passes.h"

#define GPT MSW_SOURCE_DIR "/models/gpt.msw"

static const fe_Define tiny[] = {
	{"vocab", "32"}, {"ctx", "8"}, {"d", "16"}, {"heads", "2"}, {"layers", "2"},
};

static fe_Session *session;

static void show(Diag *d)
{
	if (d->len)
		fprintf(stderr, "%s", diag_text(d));
	diag_free(d);
	diag_init(d);
}

/* A model file (with the tiny GPT's -D values) or a text (without them,
 * unless gpt is set). */
static Graph *front_opt(const char *path, const char *text, bool gpt)
{
	Diag d;
	diag_init(&d);
	Graph *g = NULL;
	fe_Options o = {.def = tiny, .ndef = path || gpt ? 5 : 0};
	int rc = path ? fe_compile_file(session, path, &o, &g, &d)
		      : fe_compile_string(session, "t.msw", text, &o, &g, &d);
	CHECK_MSG(rc == 0, "%s", diag_text(&d));
	diag_free(&d);
	return g;
}

static Graph *front(const char *path, const char *text)
{
	return front_opt(path, text, false);
}

/* infer_shapes then prune; 0 or -1 (the Diag is shown unless quiet). */
static int prune(Graph *g, const PruneOptions *po, bool quiet)
{
	Diag d;
	diag_init(&d);
	PassOptions o = {.verify = true, .prune = po};
	int rc = pass_infer_shapes(g, &o, &d) || pass_prune(g, &o, &d) ? -1 : 0;
	if (rc == 0 && ir_verify(g, &d))
		rc = -1;
	if (!quiet)
		show(&d);
	diag_free(&d);
	return rc;
}

static Graph *gpt_pruned(double s, int dist, uint64_t seed)
{
	Graph *g = front(GPT, NULL);
	if (!g)
		return NULL;
	PruneOptions po;
	pass_prune_defaults(&po);
	po.sparsity = s;
	po.dist = dist;
	po.seed = seed;
	CHECK(prune(g, &po, false) == 0);
	return g;
}

static const char *pname(const Graph *g, const Mask *m)
{
	return ir_str(g, ir_node(g, m->param)->name);
}

static int64_t count(const uint8_t *b, int64_t n)
{
	int64_t k = 0;
	for (int64_t i = 0; i < n; i++)
		k += b[i];
	return k;
}

static bool ends_with(const char *s, const char *t)
{
	size_t n = strlen(s), k = strlen(t);
	return n >= k && !strcmp(s + n - k, t);
}

/* ---- coverage and uniform counts ---- */

static void test_default_coverage_uniform(void)
{
	Graph *g = gpt_pruned(0.75, -1, 1);
	if (!g)
		return;
	CHECK_MSG(g->mask.len == 8, "%zu masks", g->mask.len);
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const char *n = pname(g, m);
		int64_t numel = ir_numel(&ir_node(g, m->param)->shape);
		CHECK_MSG(ends_with(n, "attn.c_attn.weight") || ends_with(n, "attn.c_proj.weight") ||
			  ends_with(n, "mlp.c_fc.weight") || ends_with(n, "mlp.c_proj.weight"),
			  "covered: %s", n);
		int64_t zeros = (int64_t)llround(0.75 * (double)numel);
		CHECK(m->bits && m->nkept == numel - zeros && count(m->bits, numel) == m->nkept);
		CHECK(m->target == 0.75 && m->dist == SD_UNIFORM);
	}
	CHECK(!ir_find_mask(g, ir_find_param(g, "wte.weight")));
	CHECK(!ir_find_mask(g, ir_find_param(g, "wpe.weight")));
	/* Every reader of a sparse param is its mask product. */
	int nmask = 0, bad = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		nmask += n->op == OP_MASK;
		for (uint32_t a = 0; a < n->narg; a++) {
			ValId u = ir_operand(g, n, a);
			if (ir_node(g, u)->op == OP_PARAM && ir_find_mask(g, u) &&
			    !(n->op == OP_MUL && a == 0 && ir_node(g, ir_operand(g, n, 1))->op == OP_MASK))
				bad++;
		}
	}
	CHECK(nmask == 8 && bad == 0);
	ir_graph_destroy(g);
}

static void test_odd_sizes_round(void)
{
	/* 7 x 9 = 63 elements: round(0.5 * 63) = 32 zeros (half away from 0),
	 * round(0.3 * 63) = 19. */
	static const char *src =
		"model m() {\n"
		"  input x: f32[2, 7]\n"
		"  param w: f32[7, 9] = normal(0.02)\n"
		"  param u: f32[9, 3] = normal(0.02)\n"
		"  sparsity 0.5 on w\n"
		"  sparsity 0.3 uniform on u\n"
		"  output y = x @ w @ u\n"
		"}\n";
	Graph *g = front(NULL, src);
	if (!g)
		return;
	CHECK(prune(g, NULL, false) == 0);
	const Mask *w = ir_find_mask(g, ir_find_param(g, "w"));
	const Mask *u = ir_find_mask(g, ir_find_param(g, "u"));
	CHECK(w && w->nkept == 63 - 32 && u && u->nkept == 27 - 8);
	ir_graph_destroy(g);
}

static void test_statement_patterns(void)
{
	/* The GPT model with a statement: attention and MLP matrices of every
	 * layer, not their biases (rank 1) and not the layer norms. */
	Source s;
	CHECK(source_load(&s, GPT, NULL) == 0);
	const char *at = strstr(s.text, "  wte = embedding_table");
	CHECK(at != NULL);
	if (!at) {
		source_free(&s);
		return;
	}
	size_t head = (size_t)(at - s.text);
	const char *line = "  sparsity 0.75 uniform on h.*.attn.*, h.*.mlp.*\n";
	char *text = malloc(s.len + strlen(line) + 1);
	memcpy(text, s.text, head);
	strcpy(text + head, line);
	strcat(text, s.text + head);
	Graph *g = front_opt(NULL, text, true);
	if (g) {
		CHECK(g->mask.len == 8);
		for (size_t i = 0; i < g->mask.len; i++) {
			const Mask *m = &VEC_AT(g->mask, Mask, i);
			CHECK(m->nkept < 0 && m->target == 0.75 && ends_with(pname(g, m), ".weight"));
		}
		CHECK(prune(g, NULL, false) == 0);
		for (size_t i = 0; i < g->mask.len; i++)
			CHECK(VEC_AT(g->mask, Mask, i).nkept >= 0);
		ir_graph_destroy(g);
	}
	/* A pattern that covers nothing is an error at the pattern. */
	const char *bad = "model m() {\n  input x: f32[2, 4]\n  param w: f32[4, 4] = normal(1)\n"
			  "  sparsity 0.5 on nothing.*\n  output y = x @ w\n}\n";
	Diag d;
	diag_init(&d);
	Graph *h = NULL;
	CHECK(fe_compile_string(session, "bad.msw", bad, NULL, &h, &d) != 0 && !h);
	CHECK_MSG(strstr(diag_text(&d), "bad.msw:4:19: error: sparsity: 'nothing.*' matches no") != NULL,
		  "%s", diag_text(&d));
	diag_free(&d);
	/* A variable may still be called sparsity. */
	const char *var = "model m() {\n  input x: f32[2, 4]\n  sparsity = 2\n"
			  "  output y = x * sparsity\n}\n";
	diag_init(&d);
	CHECK(fe_compile_string(session, "var.msw", var, NULL, &h, &d) == 0 && h && !h->mask.len);
	show(&d);
	ir_graph_destroy(h);
	free(text);
	source_free(&s);
}

/* ---- ERK ---- */

/* density_i = eps (n_in + n_out) / (n_in n_out), sum density_i numel_i =
 * (1 - S) sum numel_i, when no layer reaches density 1. */
static void test_erk_formula(void)
{
	Graph *g = gpt_pruned(0.75, SD_ERK, 3);
	if (!g)
		return;
	double total = 0, weighted = 0;
	for (size_t i = 0; i < g->mask.len; i++) {
		const Shape *s = &ir_node(g, VEC_AT(g->mask, Mask, i).param)->shape;
		double n = (double)(s->dim[0] * s->dim[1]);
		total += n;
		weighted += (double)(s->dim[0] + s->dim[1]);   /* raw * numel */
	}
	double eps = 0.25 * total / weighted;
	int64_t kept = 0;
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const Shape *s = &ir_node(g, m->param)->shape;
		double n = (double)(s->dim[0] * s->dim[1]);
		double dens = eps * (double)(s->dim[0] + s->dim[1]) / n;
		CHECK(dens < 1);
		int64_t zeros = (int64_t)llround((1 - dens) * n);
		CHECK_MSG(m->nkept == (int64_t)n - zeros && m->dist == SD_ERK, "%s kept %lld, want %lld",
			  pname(g, m), (long long)m->nkept, (long long)n - zeros);
		kept += m->nkept;
	}
	/* Overall within rounding of the target. */
	CHECK(fabs((double)kept - 0.25 * total) <= (double)g->mask.len);
	/* The layers differ: ERK is not uniform (c_proj [16,16] keeps 37.5%). */
	const Mask *cp = ir_find_mask(g, ir_find_param(g, "h.0.attn.c_proj.weight"));
	CHECK(cp && cp->nkept == 96);
	ir_graph_destroy(g);
}

/* a [4,4]: raw 8/16 = 0.5; b [64,64]: raw 128/4096. At S = 0.5 the first
 * eps = 2056 / (0.5*16 + 128) makes a's density 7.56: a becomes dense and
 * b keeps 2056 - 16 = 2040 of 4096. */
static void test_erk_capped(void)
{
	static const char *src =
		"model m() {\n"
		"  input x: f32[2, 4]\n"
		"  param a: f32[4, 4] = normal(0.02)\n"
		"  param p: f32[4, 64] = normal(0.02)\n"
		"  param b: f32[64, 64] = normal(0.02)\n"
		"  sparsity 0.5 erk on a, b\n"
		"  output y = x @ a @ p @ b\n"
		"}\n";
	Graph *g = front(NULL, src);
	if (!g)
		return;
	CHECK(prune(g, NULL, false) == 0);
	const Mask *a = ir_find_mask(g, ir_find_param(g, "a"));
	const Mask *b = ir_find_mask(g, ir_find_param(g, "b"));
	CHECK(a && a->nkept == 16 && b && b->nkept == 2040);
	CHECK(!ir_find_mask(g, ir_find_param(g, "p")));
	double dens[2];
	Shape sh[2] = {{2, {4, 4}}, {2, {64, 64}}};
	CHECK(pass_erk_density(sh, 2, 0.5, dens) == 0 && dens[0] == 1 &&
	      fabs(dens[1] - 2040.0 / 4096) < 1e-12);
	ir_graph_destroy(g);
}

/* ---- random masks ---- */

typedef struct R {
	uint64_t k;
	int64_t i;
} R;

static int rcmp(const void *a, const void *b)
{
	const R *x = a, *y = b;
	return x->k != y->k ? (x->k < y->k ? -1 : 1) : (x->i > y->i) - (x->i < y->i);
}

/* The documented ranking, written out again. */
static void expected_random(const char *name, uint64_t seed, int64_t n, int64_t keep, uint8_t *out)
{
	R *r = malloc((size_t)n * sizeof *r);
	uint64_t key = hash64(name, strlen(name), seed);
	for (int64_t i = 0; i < n; i++) {
		uint8_t le[8];
		for (int k = 0; k < 8; k++)
			le[k] = (uint8_t)((uint64_t)i >> (8 * k));
		r[i].k = hash64(le, 8, key);
		r[i].i = i;
	}
	qsort(r, (size_t)n, sizeof *r, rcmp);
	memset(out, 0, (size_t)n);
	for (int64_t i = 0; i < keep; i++)
		out[r[i].i] = 1;
	free(r);
}

static void test_random_reproducible(void)
{
	Graph *a = gpt_pruned(0.75, -1, 7), *b = gpt_pruned(0.75, -1, 7), *c = gpt_pruned(0.75, -1, 8);
	if (!a || !b || !c)
		goto out;
	int same = 0, differ = 0, documented = 0;
	for (size_t i = 0; i < a->mask.len; i++) {
		const Mask *ma = &VEC_AT(a->mask, Mask, i), *mb = &VEC_AT(b->mask, Mask, i),
			   *mc = &VEC_AT(c->mask, Mask, i);
		int64_t n = ir_numel(&ir_node(a, ma->param)->shape);
		same += !memcmp(ma->bits, mb->bits, (size_t)n);
		differ += memcmp(ma->bits, mc->bits, (size_t)n) != 0;
		uint8_t *want = malloc((size_t)n);
		expected_random(pname(a, ma), 7, n, ma->nkept, want);
		documented += !memcmp(want, ma->bits, (size_t)n);
		free(want);
	}
	CHECK(same == 8 && differ == 8 && documented == 8);
	Hash128 ha = ir_hash(a), hb = ir_hash(b), hc = ir_hash(c);
	CHECK(ha.lo == hb.lo && ha.hi == hb.hi && (ha.lo != hc.lo || ha.hi != hc.hi));
	/* Independent of the other params: a model with one more layer draws
	 * the same masks for the layers both have. */
	static const fe_Define three[] = {
		{"vocab", "32"}, {"ctx", "8"}, {"d", "16"}, {"heads", "2"}, {"layers", "3"},
	};
	fe_Options o = {.def = three, .ndef = 5};
	Graph *g3 = NULL;
	Diag d;
	diag_init(&d);
	CHECK(fe_compile_file(session, GPT, &o, &g3, &d) == 0);
	show(&d);
	PruneOptions po;
	pass_prune_defaults(&po);
	po.sparsity = 0.75;
	po.seed = 7;
	if (g3 && prune(g3, &po, false) == 0) {
		CHECK(g3->mask.len == 12);
		const Mask *m0 = ir_find_mask(g3, ir_find_param(g3, "h.1.mlp.c_fc.weight"));
		const Mask *a0 = ir_find_mask(a, ir_find_param(a, "h.1.mlp.c_fc.weight"));
		CHECK(m0 && a0 && !memcmp(m0->bits, a0->bits, 16 * 64));
	}
	ir_graph_destroy(g3);
out:
	ir_graph_destroy(a);
	ir_graph_destroy(b);
	ir_graph_destroy(c);
}

/* ---- magnitude ---- */

static void test_magnitude(void)
{
	static const char *src =
		"model m() {\n"
		"  input x: f32[2, 8]\n"
		"  param w: f32[8, 8] = normal(0.02)\n"
		"  output y = x @ w\n"
		"}\n";
	Graph *g = front(NULL, src);
	if (!g)
		return;
	float w[64];
	for (int i = 0; i < 64; i++)   /* magnitudes 0..15, each four times, signs mixed */
		w[i] = (float)((i * 7) % 16) * (i % 3 ? 1.0f : -1.0f);
	PruneTensor t = {"w", w, 64};
	PruneOptions po;
	pass_prune_defaults(&po);
	po.sparsity = 0.6;   /* round(38.4) = 38 zeros, 26 kept */
	po.method = PRUNE_MAGNITUDE;
	po.weights = &t;
	po.nweights = 1;
	CHECK(prune(g, &po, false) == 0);
	const Mask *m = ir_find_mask(g, ir_find_param(g, "w"));
	CHECK(m && m->nkept == 26);
	if (m) {
		/* Kept: every |w| above the 26th largest, then the lowest indices
		 * among those equal to it. */
		float sorted[64];
		for (int i = 0; i < 64; i++)
			sorted[i] = fabsf(w[i]);
		for (int i = 0; i < 64; i++)   /* descending, insertion sort */
			for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
				float x = sorted[j];
				sorted[j] = sorted[j - 1];
				sorted[j - 1] = x;
			}
		float cut = sorted[25];
		int above = 0;
		for (int i = 0; i < 64; i++)
			above += fabsf(w[i]) > cut;
		int ties = 26 - above, ok = 1;
		for (int i = 0; i < 64; i++) {
			int want = fabsf(w[i]) > cut || (fabsf(w[i]) == cut && ties-- > 0);
			ok &= m->bits[i] == want;
		}
		CHECK(ok);
	}
	ir_graph_destroy(g);
	/* Without weights for a covered param: an error. */
	g = front(NULL, src);
	po.nweights = 0;
	CHECK(g && prune(g, &po, true) != 0);
	ir_graph_destroy(g);
}

/* ---- supplied masks ---- */

static void test_supplied_win(void)
{
	Graph *g = front(GPT, NULL);
	if (!g)
		return;
	uint8_t bits[16 * 48];
	for (int i = 0; i < 16 * 48; i++)
		bits[i] = i % 3 == 0;
	PruneTensor t = {"h.0.attn.c_attn.weight", bits, 16 * 48};
	PruneOptions po;
	pass_prune_defaults(&po);
	po.sparsity = 0.75;
	po.masks = &t;
	po.nmasks = 1;
	CHECK(prune(g, &po, false) == 0);
	const Mask *m = ir_find_mask(g, ir_find_param(g, "h.0.attn.c_attn.weight"));
	CHECK(m && m->nkept == 256 && !memcmp(m->bits, bits, sizeof bits));
	CHECK(g->mask.len == 8);
	const Mask *o = ir_find_mask(g, ir_find_param(g, "h.1.attn.c_attn.weight"));
	CHECK(o && o->nkept == 16 * 48 / 4);
	ir_graph_destroy(g);
	/* A mask of the wrong size, or for no param: an error, graph unchanged. */
	g = front(GPT, NULL);
	if (!g)
		return;
	Diag d;
	diag_init(&d);
	PassOptions ps = {0};
	CHECK(pass_infer_shapes(g, &ps, &d) == 0);
	char *before = ir_print(g);
	t.numel = 10;
	PassOptions pp = {.prune = &po};
	CHECK(pass_prune(g, &pp, &d) != 0);
	t.numel = 16 * 48;
	t.name = "nope.weight";
	CHECK(pass_prune(g, &pp, &d) != 0);
	char *after = ir_print(g);
	CHECK(before && after && !strcmp(before, after) && !g->mask.len);
	mem_free(before);
	mem_free(after);
	diag_free(&d);
	ir_graph_destroy(g);
}

/* ---- no sparsity: nothing changes; --dense drops the statement's ---- */

static void test_dense_unchanged(void)
{
	Graph *g = front(GPT, NULL);
	if (!g)
		return;
	Diag d;
	diag_init(&d);
	PassOptions o = {0};
	CHECK(pass_infer_shapes(g, &o, &d) == 0);
	char *before = ir_print(g);
	Hash128 h0 = ir_hash(g);
	CHECK(pass_prune(g, &o, &d) == 0);
	char *after = ir_print(g);
	Hash128 h1 = ir_hash(g);
	CHECK(before && after && !strcmp(before, after) && h0.lo == h1.lo && h0.hi == h1.hi);
	mem_free(before);
	mem_free(after);
	ir_graph_destroy(g);
	g = front(NULL, "model m() {\n  input x: f32[2, 4]\n  param w: f32[4, 4] = normal(1)\n"
			"  sparsity 0.5\n  output y = x @ w\n}\n");
	PruneOptions po;
	pass_prune_defaults(&po);
	po.dense = true;
	CHECK(g && g->mask.len == 1 && prune(g, &po, false) == 0 && !g->mask.len);
	for (ValId v = 0; g && v < ir_nnode(g); v++)
		CHECK(ir_node(g, v)->op != OP_MASK);
	ir_graph_destroy(g);
	diag_free(&d);
}

/* ---- print, parse, hash, interpreter ---- */

static void test_print_parse(void)
{
	static const char *src =
		"model m() {\n"
		"  input x: f32[2, 4]\n"
		"  param w: f32[4, 6] = normal(1)\n"
		"  sparsity 0.5\n"
		"  output y = x @ w\n"
		"}\n";
	Graph *g = front(NULL, src);
	if (!g)
		return;
	PruneOptions po;
	pass_prune_defaults(&po);
	po.seed = 5;
	CHECK(prune(g, &po, false) == 0);
	char *text = ir_print(g);
	CHECK(text && strstr(text, "= mask \"w\" : f32[4,6]"));
	CHECK_MSG(text && strstr(text, "\nmask \"w\" 0.5 uniform kept=12 numel=24 xxh3="), "%s", text);
	Source s;
	Graph *r = NULL;
	Diag d;
	diag_init(&d);
	CHECK(source_from_string(&s, "t.ir", text) == 0);
	CHECK(ir_parse(&s, &r, &d) == 0);
	show(&d);
	if (r) {
		Hash128 a = ir_hash(g), b = ir_hash(r);
		CHECK(a.lo == b.lo && a.hi == b.hi);
		const Mask *m = ir_find_mask(r, ir_find_param(r, "w"));
		CHECK(m && !m->bits && m->nkept == 12);
		CHECK(ir_verify(r, &d) == 0);
		/* A second prune: nothing to rewrite, nothing changes. */
		PassOptions o = {0};
		CHECK(pass_prune(r, &o, &d) == 0);
		show(&d);
		char *again = ir_print(r);
		CHECK(again && !strcmp(again, text));
		mem_free(again);
		m = ir_find_mask(r, ir_find_param(r, "w"));   /* the pass rebuilt the list */
		CHECK(m && !m->bits);
		/* The interpreter needs the bits; once supplied, W * M. */
		double *val[16] = {0};
		double x[8], w[24];
		for (int i = 0; i < 8; i++)
			x[i] = i + 1;
		for (int i = 0; i < 24; i++)
			w[i] = 0.5 * i - 3;
		uint32_t n = ir_nnode(r);
		CHECK(n <= 16);
		val[ir_find_input(r, "x")] = x;
		val[ir_find_param(r, "w")] = w;
		CHECK(ir_interp(r, val, &d) != 0);
		CHECK(strstr(diag_text(&d), "to be supplied") != NULL);
		diag_free(&d);
		diag_init(&d);
		const Mask *gm = ir_find_mask(g, ir_find_param(g, "w"));
		CHECK(ir_mask_set_bits((Mask *)m, gm->bits, 24) == 0);
		CHECK(m->hash.lo == gm->hash.lo && m->hash.hi == gm->hash.hi);
		val[ir_find_input(r, "x")] = x;
		val[ir_find_param(r, "w")] = w;
		CHECK(ir_interp(r, val, &d) == 0);
		show(&d);
		ValId y = VEC_AT(r->out, Output, 0).val;
		int ok = 1;
		for (int i = 0; i < 2 && val[y]; i++)
			for (int j = 0; j < 6; j++) {
				double want = 0;
				for (int k = 0; k < 4; k++)
					want += x[i * 4 + k] * w[k * 6 + j] * gm->bits[k * 6 + j];
				ok &= fabs(val[y][i * 6 + j] - want) < 1e-12;
			}
		CHECK(val[y] && ok);
		ir_interp_free(r, val);
	}
	/* A mask line for no param is an error at the name. */
	Source bad;
	Graph *b = NULL;
	CHECK(source_from_string(&bad, "b.ir", "%0 = param \"w\" zeros : f32[2]\n"
				 "mask \"v\" 0.5 uniform\n") == 0);
	CHECK(ir_parse(&bad, &b, &d) != 0 && !b);
	CHECK(strstr(diag_text(&d), "b.ir:2:6: error: mask \"v\" is not a param") != NULL);
	diag_free(&d);
	source_free(&bad);
	source_free(&s);
	mem_free(text);
	ir_graph_destroy(r);
	ir_graph_destroy(g);
}

int main(void)
{
	session = fe_session_create();
	RUN(test_default_coverage_uniform);
	RUN(test_odd_sizes_round);
	RUN(test_statement_patterns);
	RUN(test_erk_formula);
	RUN(test_erk_capped);
	RUN(test_random_reproducible);
	RUN(test_magnitude);
	RUN(test_supplied_win);
	RUN(test_dense_unchanged);
	RUN(test_print_parse);
	fe_session_destroy(session);
	return check_report();
}

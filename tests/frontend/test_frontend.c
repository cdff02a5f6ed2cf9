/* test_frontend.c: the .msw frontend from text to IR.
 *
 * Small models compiled from strings check each construct's lowering; the
 * shipped models/gpt.msw is checked against the Hugging Face GPT-2 names,
 * layouts and initialisers; -D and supplied input shapes are checked for
 * binding and for their errors. The robustness tests feed mutated and
 * random text and fail allocations one by one: every outcome must be a
 * status and a message, never a crash or a hang. The golden tests in
 * tests/lit cover the exact wording of the diagnostics. */
#include "../check.h"
#include "frontend/fe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef MSW_SOURCE_DIR
#define MSW_SOURCE_DIR "."
#endif

static fe_Options opts(const fe_Define *def, int ndef)
{
	fe_Options o = {0};
	o.def = def;
	o.ndef = ndef;
	return o;
}

/* Compiles text; returns the graph (NULL on error) and leaves messages in d. */
static Graph *compile(fe_Session *s, const char *text, const fe_Options *o, Diag *d)
{
	Graph *g = NULL;
	diag_init(d);
	int r = fe_compile_string(s, "t.msw", text, o, &g, d);
	if (r != 0 && g)
		return NULL; /* contract: no graph on error */
	return g;
}

static const Shape *shape_of(const Graph *g, ValId v)
{
	return &ir_node(g, v)->shape;
}

static bool shape_is(const Graph *g, ValId v, int rank, int64_t d0, int64_t d1, int64_t d2)
{
	if (v == VAL_NONE)
		return false;
	const Shape *s = shape_of(g, v);
	int64_t want[3] = {d0, d1, d2};
	if (s->rank != rank)
		return false;
	for (int i = 0; i < rank && i < 3; i++)
		if (s->dim[i] != want[i])
			return false;
	return true;
}

static ValId output(const Graph *g, const char *name)
{
	uint32_t id = ir_find_str(g, name);
	for (size_t i = 0; id && i < g->out.len; i++)
		if (VEC_AT(g->out, Output, i).name == id)
			return VEC_AT(g->out, Output, i).val;
	return VAL_NONE;
}

static int64_t binding(const Graph *g, const char *name)
{
	uint32_t id = ir_find_str(g, name);
	for (size_t i = 0; id && i < g->bind.len; i++)
		if (VEC_AT(g->bind, Binding, i).name == id)
			return VEC_AT(g->bind, Binding, i).value;
	return -1;
}

static bool has(const Diag *d, const char *text)
{
	return strstr(diag_text(d), text) != NULL;
}

static void test_minimal(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	fe_Options o = {.no_prelude = true};
	Graph *g = compile(s,
			   "# a comment\n"
			   "model m(n = 3) {\n"
			   "  input x: f32[2, n]\n"
			   "  param w: f32[n, 4] = normal(0.5)\n"
			   "  output y = x @ w + 1\n"
			   "}\n",
			   &o, &d);
	CHECK_MSG(g, "%s", diag_text(&d));
	if (g) {
		CHECK(!strcmp(ir_str(g, g->model_name), "m"));
		ValId w = ir_find_param(g, "w");
		CHECK(shape_is(g, w, 2, 3, 4, 0));
		CHECK(ir_node(g, w)->init == INIT_NORMAL);
		CHECK_NEAR(ir_node(g, w)->value, 0.5, 0);
		ValId y = output(g, "y");
		CHECK(shape_is(g, y, 2, 2, 4, 0));
		CHECK(ir_node(g, y)->op == OP_ADD);
		CHECK(binding(g, "n") == 3);
		CHECK(g->loss == VAL_NONE);
		CHECK(ir_verify(g, &d) == 0);
	}
	ir_graph_destroy(g);
	diag_free(&d);
	fe_session_destroy(s);
}

static Graph *compile_gpt(fe_Session *s, const fe_Options *o, Diag *d)
{
	Graph *g = NULL;
	diag_init(d);
	fe_compile_file(s, MSW_SOURCE_DIR "/models/gpt.msw", o, &g, d);
	return g;
}

/* The shipped GPT-2 at its default size: HF names, layouts and inits. */
static void test_gpt_default(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	Graph *g = compile_gpt(s, NULL, &d);
	CHECK_MSG(g, "%s", diag_text(&d));
	if (!g)
		goto done;
	CHECK(shape_is(g, ir_find_param(g, "wte.weight"), 2, 256, 256, 0));
	CHECK(shape_is(g, ir_find_param(g, "wpe.weight"), 2, 256, 256, 0));
	for (int i = 0; i < 4; i++) {
		char name[128];
#define P(suffix) (snprintf(name, sizeof name, "h.%d.%s", i, suffix), ir_find_param(g, name))
		CHECK(shape_is(g, P("ln_1.weight"), 1, 256, 0, 0));
		CHECK(shape_is(g, P("ln_1.bias"), 1, 256, 0, 0));
		CHECK(shape_is(g, P("attn.c_attn.weight"), 2, 256, 768, 0));
		CHECK(shape_is(g, P("attn.c_attn.bias"), 1, 768, 0, 0));
		CHECK(shape_is(g, P("attn.c_proj.weight"), 2, 256, 256, 0));
		CHECK(shape_is(g, P("attn.c_proj.bias"), 1, 256, 0, 0));
		CHECK(shape_is(g, P("ln_2.weight"), 1, 256, 0, 0));
		CHECK(shape_is(g, P("ln_2.bias"), 1, 256, 0, 0));
		CHECK(shape_is(g, P("mlp.c_fc.weight"), 2, 256, 1024, 0));
		CHECK(shape_is(g, P("mlp.c_fc.bias"), 1, 1024, 0, 0));
		CHECK(shape_is(g, P("mlp.c_proj.weight"), 2, 1024, 256, 0));
		CHECK(shape_is(g, P("mlp.c_proj.bias"), 1, 256, 0, 0));
		/* GPT-2 init: residual projections scaled by 1/sqrt(2 * layers). */
		ValId v = P("attn.c_proj.weight");
		CHECK(ir_node(g, v)->init == INIT_NORMAL);
		CHECK_NEAR(ir_node(g, v)->value, 0.02 / sqrt(8), 1e-12);
		v = P("mlp.c_proj.weight");
		CHECK_NEAR(ir_node(g, v)->value, 0.02 / sqrt(8), 1e-12);
		v = P("attn.c_attn.weight");
		CHECK_NEAR(ir_node(g, v)->value, 0.02, 1e-12);
		CHECK(ir_node(g, P("attn.c_attn.bias"))->init == INIT_ZEROS);
		CHECK(ir_node(g, P("ln_2.weight"))->init == INIT_ONES);
		CHECK(ir_node(g, P("ln_2.bias"))->init == INIT_ZEROS);
#undef P
	}
	CHECK(shape_is(g, ir_find_param(g, "ln_f.weight"), 1, 256, 0, 0));
	CHECK(ir_node(g, ir_find_param(g, "ln_f.weight"))->init == INIT_ONES);
	CHECK(ir_find_param(g, "h.4.ln_1.weight") == VAL_NONE);
	/* Tied head: no separate output projection; exactly 2 + 12*4 + 2 params. */
	int nparam = 0;
	for (ValId v = 0; v < ir_nnode(g); v++)
		nparam += ir_node(g, v)->op == OP_PARAM;
	CHECK(nparam == 52);
	ValId logits = output(g, "logits");
	CHECK(shape_is(g, logits, 3, 1, 256, 256));
	CHECK(ir_node(g, logits)->op == OP_MATMUL);
	CHECK(ir_node(g, logits)->flags & NF_TRANS_B);
	CHECK(ir_operand(g, ir_node(g, logits), 1) == ir_find_param(g, "wte.weight"));
	CHECK(g->loss != VAL_NONE && ir_node(g, g->loss)->op == OP_CROSS_ENTROPY);
	CHECK(shape_is(g, ir_find_input(g, "tokens"), 2, 1, 256, 0));
	CHECK(ir_node(g, ir_find_input(g, "tokens"))->dtype == DT_I32);
	CHECK(shape_is(g, ir_find_input(g, "targets"), 2, 1, 256, 0));
	CHECK(binding(g, "vocab") == 256 && binding(g, "layers") == 4);
	CHECK(binding(g, "seq") == 256 && binding(g, "batch") == 1);
	CHECK(ir_verify(g, &d) == 0);
	/* Sources point at the .msw text they came from. */
	CHECK(ir_node(g, logits)->loc.src && ir_node(g, logits)->loc.line > 0);
done:
	ir_graph_destroy(g);
	diag_free(&d);
	fe_session_destroy(s);
}

static void test_gpt_defines(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	fe_Define def[] = {{"d", "64"}, {"heads", "2"}, {"layers", "1"}, {"vocab", "50"},
			   {"seq", "32"}, {"batch", "3"}};
	fe_Options o = opts(def, 6);
	Graph *g = compile_gpt(s, &o, &d);
	CHECK_MSG(g, "%s", diag_text(&d));
	if (g) {
		CHECK(shape_is(g, ir_find_param(g, "h.0.attn.c_attn.weight"), 2, 64, 192, 0));
		CHECK(ir_find_param(g, "h.1.attn.c_attn.weight") == VAL_NONE);
		CHECK(shape_is(g, ir_find_param(g, "wte.weight"), 2, 50, 64, 0));
		CHECK(shape_is(g, output(g, "logits"), 3, 3, 32, 50));
		CHECK_NEAR(ir_node(g, ir_find_param(g, "h.0.mlp.c_proj.weight"))->value,
			   0.02 / sqrt(2), 1e-12);
	}
	ir_graph_destroy(g);
	diag_free(&d);

	/* Bad hyperparameters: wrong kind, unknown name, seq > ctx, bad heads. */
	const char *bad[][3] = {
		{"d", "abc", "bad hyperparameter: -D d=abc"},
		{"d", "2.5", "bad hyperparameter: -D d=2.5"},
		{"dd", "8", "bad hyperparameter: -D dd=8"},
		{"seq", "300", "longer than the context"},
		{"seq", "x", "bad hyperparameter: -D seq=x"},
		{"heads", "3", "does not divide into 3 heads"},
		{"d", "0", "dimensions must be"},
		{"layers", "99999999", "loop runs"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fe_Define one = {bad[i][0], bad[i][1]};
		o = opts(&one, 1);
		g = compile_gpt(s, &o, &d);
		CHECK(g == NULL);
		CHECK_MSG(has(&d, bad[i][2]), "-D %s=%s gave: %s", bad[i][0], bad[i][1],
			  diag_text(&d));
		ir_graph_destroy(g);
		diag_free(&d);
	}
	fe_session_destroy(s);
}

/* Dims bound from supplied input shapes, and their conflicts. */
static void test_input_binding(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	fe_InputShape in = {"tokens", 2, {4, 16}};
	fe_Options o = {.input = &in, .ninput = 1};
	Graph *g = compile_gpt(s, &o, &d);
	CHECK_MSG(g, "%s", diag_text(&d));
	if (g) {
		CHECK(binding(g, "batch") == 4 && binding(g, "seq") == 16);
		CHECK(shape_is(g, output(g, "logits"), 3, 4, 16, 256));
		CHECK(shape_is(g, ir_find_input(g, "targets"), 2, 4, 16, 0));
	}
	ir_graph_destroy(g);
	diag_free(&d);

	fe_Define seq = {"seq", "32"};
	o.def = &seq;
	o.ndef = 1;
	g = compile_gpt(s, &o, &d);
	CHECK(!g && has(&d, "dimension 'seq' is 16 in the shape of input 'tokens' but -D seq=32"));
	diag_free(&d);

	fe_InputShape two[] = {{"tokens", 2, {4, 16}}, {"targets", 2, {4, 8}}};
	o = (fe_Options){.input = two, .ninput = 2};
	g = compile_gpt(s, &o, &d);
	CHECK(!g && has(&d, "is 16 here but 8 in the supplied shape"));
	diag_free(&d);

	fe_InputShape rank3 = {"tokens", 3, {1, 2, 3}};
	o = (fe_Options){.input = &rank3, .ninput = 1};
	g = compile_gpt(s, &o, &d);
	CHECK(!g && has(&d, "declared with rank 2 but the supplied shape has rank 3"));
	diag_free(&d);

	fe_InputShape nosuch = {"images", 1, {3}};
	o = (fe_Options){.input = &nosuch, .ninput = 1};
	g = compile_gpt(s, &o, &d);
	CHECK(!g && has(&d, "no such input"));
	diag_free(&d);
	fe_session_destroy(s);
}

/* defs: defaults, keywords, tuples, functions as values, recursion with a
 * base case, `as` naming, loops naming, frozen. */
static void test_defs(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	Graph *g = compile(s,
			   "def pair(x, k = 2) { return x * k, x + k }\n"
			   "def apply(f, x) { return f(x) }\n"
			   "def fact(n) { if n <= 1 { return 1 } return n * fact(n - 1) }\n"
			   "def layer(x) { frozen param w: f32[x.dim(-1), 2] = ones; return x @ w }\n"
			   "model m(d = 4) {\n"
			   "  input x: f32[3, d]\n"
			   "  a, b = pair(x, k = fact(4))\n"
			   "  c = apply(tanh, a - b)\n"
			   "  for i in 1..3 as blocks.{i} { y = layer(c) as inner }\n"
			   "  output c\n"
			   "  output y\n"
			   "}\n",
			   NULL, &d);
	CHECK_MSG(g, "%s", diag_text(&d));
	if (g) {
		ValId c = output(g, "c");
		CHECK(ir_node(g, c)->op == OP_TANH);
		ValId sub = ir_operand(g, ir_node(g, c), 0);
		ValId mul = ir_operand(g, ir_node(g, sub), 0);
		ValId k = ir_operand(g, ir_node(g, mul), 1);
		CHECK(ir_node(g, k)->op == OP_CONST && ir_node(g, k)->value == 24);
		ValId w1 = ir_find_param(g, "blocks.1.inner.w");
		ValId w2 = ir_find_param(g, "blocks.2.inner.w");
		CHECK(w1 != VAL_NONE && w2 != VAL_NONE);
		CHECK(ir_find_param(g, "blocks.0.inner.w") == VAL_NONE);
		CHECK(w1 != VAL_NONE && (ir_node(g, w1)->flags & NF_FROZEN));
		CHECK(w1 != VAL_NONE && ir_node(g, w1)->init == INIT_ONES);
	}
	ir_graph_destroy(g);
	diag_free(&d);
	fe_session_destroy(s);
}

/* Errors are located, several per file, and capped. */
static void test_errors(void)
{
	fe_Session *s = fe_session_create();
	Diag d;
	Graph *g = compile(s,
			   "model m(d = 4) {\n"
			   "  input x: f32[2, d]\n"
			   "  a = x @ x\n"
			   "  b = nosuch(x)\n"
			   "  c = linear(x, 3, nokw = 1)\n"
			   "  output x\n"
			   "}\n",
			   NULL, &d);
	CHECK(g == NULL);
	CHECK(d.nerror == 3);
	CHECK_MSG(has(&d, "t.msw:3:7: error: matmul shapes [2,4] and [2,4] do not agree"), "%s",
		  diag_text(&d));
	CHECK(has(&d, "t.msw:4:7: error: unknown name 'nosuch'"));
	CHECK(has(&d, "t.msw:5:20: error: 'linear' has no parameter named 'nokw'"));
	diag_free(&d);

	/* Without the prelude there is no linear. */
	fe_Options o = {.no_prelude = true};
	g = compile(s, "model m() { input x: f32[2]\n output y = linear(x, 2) }", &o, &d);
	CHECK(!g && has(&d, "unknown name 'linear'"));
	diag_free(&d);

	/* 40 broken statements: 20 messages, then "too many errors". */
	char text[4096] = "model m() {\n";
	for (int i = 0; i < 40; i++)
		strcat(text, "  x = )\n");
	strcat(text, "}\n");
	g = compile(s, text, NULL, &d);
	CHECK(!g && d.nerror > DIAG_MAX_ERRORS && has(&d, "too many errors"));
	diag_free(&d);
	fe_session_destroy(s);
}

/* Any bytes give a status, never a crash or a hang. */
static void test_robust(void)
{
	fe_Session *s = fe_session_create();
	Source gpt;
	CHECK(source_load(&gpt, MSW_SOURCE_DIR "/models/gpt.msw", NULL) == 0);
	srand(12345);
	char *buf = malloc(gpt.len + 1);
	int ok = 0, failed = 0;
	for (int round = 0; round < 300 && buf; round++) {
		memcpy(buf, gpt.text, gpt.len + 1);
		int nmut = 1 + rand() % 4;
		for (int k = 0; k < nmut; k++) {
			size_t at = (size_t)rand() % gpt.len;
			static const char pool[] = "(){}[],.=+-*/@#\"0123456789 \nxa_";
			buf[at] = round % 3 ? pool[rand() % (sizeof pool - 1)] : (char)(rand() % 256);
			if (!buf[at])
				buf[at] = ' ';
		}
		Diag d;
		Graph *g = compile(s, buf, NULL, &d);
		if (g) {
			ok++;
			CHECK(ir_verify(g, &d) == 0);
		} else {
			failed++;
			CHECK(d.nerror > 0);
		}
		ir_graph_destroy(g);
		diag_free(&d);
	}
	CHECK(ok + failed == 300);
	free(buf);
	source_free(&gpt);

	/* Hostile shapes of text. */
	const char *nasty[] = {
		"",
		"model",
		"model m(",
		"model m() { input x: f32[2]; output x",
		"def f(x) { return f(x) + f(x) }\nmodel m() { input x: f32[2]\n output y = f(x) }",
		"def f(n) { return f(n + 1) }\nmodel m() { input x: f32[2]\n y = f(0)\n output x }",
		"model m() { for i in 0..99999 { for j in 0..99999 { k = i } }\n input x: f32[1]\n output x }",
		"model m(a = 1e400) { input x: f32[1]\n output x }",
		"model m() { input x: f32[1, 2, 3, 4, 5, 6, 7]\n output x }",
		"model m() { input x: f32[99999999999, 99999999999]\n output x }",
		"model m() { input x: f32[2]\n output y = reshape(x, [-1, -1]) }",
		"model m() { input x: f32[2]\n output y = full([1099511627776, 2], 0) }",
		"model m() { input x: f32[2]\n output y = x.dim(-9223372036854775807 - 1) }",
		"model m() { input x: f32[2]\n output y = split(x, 9223372036854775807) }",
		"model m() { input x: f32[2]\n a = \"\\q\"\n output x }",
		"\xff\xfe\x00\x01model",
	};
	for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
		Diag d;
		Graph *g = compile(s, nasty[i], NULL, &d);
		CHECK_MSG(!g && d.nerror > 0, "case %zu", i);
		ir_graph_destroy(g);
		diag_free(&d);
	}
	/* Deep nesting stops at the limit instead of overflowing the stack. */
	size_t n = 100000;
	char *deep = malloc(2 * n + 64);
	if (deep) {
		strcpy(deep, "model m() { y = ");
		size_t at = strlen(deep);
		memset(deep + at, '(', n);
		strcpy(deep + at + n, "1 }");
		Diag d;
		Graph *g = compile(s, deep, NULL, &d);
		CHECK(!g && has(&d, "nesting is too deep"));
		diag_free(&d);
		memset(deep + at, '-', n);
		g = compile(s, deep, NULL, &d);
		CHECK(!g && has(&d, "nesting is too deep"));
		diag_free(&d);
		free(deep);
	}
	/* Nesting below the parser's limit, multiplied by recursion: the
	 * evaluator's own depth limit must stop it before the C stack ends. */
	const char *shapes[][3] = {
		{"f(", "n + 1", ")"},
		{"-(1 + ", "f(n + 1)", ")"},  /* three parser levels each */
		{"[", "f(n + 1)", "]"},
	};
	const int reps[] = {190, 60, 190};
	for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
		char *text = malloc(16384);
		if (!text)
			break;
		strcpy(text, "def f(n) {\n  return ");
		for (int i = 0; i < reps[k]; i++)
			strcat(text, shapes[k][0]);
		strcat(text, shapes[k][1]);
		for (int i = 0; i < reps[k]; i++)
			strcat(text, shapes[k][2]);
		strcat(text, "\n}\nmodel m() {\n  input x: f32[2]\n  y = f(3)\n  output x\n}\n");
		Diag d;
		Graph *g = compile(s, text, NULL, &d);
		CHECK_MSG(!g && (has(&d, "levels deep") || has(&d, "calls nest")), "shape %zu: %s",
			  k, diag_text(&d));
		diag_free(&d);
		free(text);
	}
	fe_session_destroy(s);
}

/* Every allocation failure turns into an error, not a crash or a leak. */
static void test_alloc_failure(void)
{
	const char *text = "model m(d = 4) {\n  input x: f32[2, d]\n"
			   "  y = linear(x, 3) as a\n  output y\n  loss sum(sum(y, 0), 0)\n}\n";
	int done = 0;
	for (long k = 1; k < 2000 && !done; k++) {
		fe_Session *s = fe_session_create();
		Diag d;
		diag_init(&d);
		Graph *g = NULL;
		int r = -1;
		if (s) {
			mem_fail_after(k);
			r = fe_compile_string(s, "t.msw", text, NULL, &g, &d);
			mem_fail_after(0);
			CHECK((r == 0) == (g != NULL));
			if (r == 0)
				done = 1;
		}
		ir_graph_destroy(g);
		diag_free(&d);
		fe_session_destroy(s);
	}
	CHECK(done);
}

/* One session compiles many files; the prelude is parsed once. */
static void test_session_reuse(void)
{
	fe_Session *s = fe_session_create();
	Graph *g[3] = {0};
	Diag d;
	diag_init(&d);
	for (int i = 0; i < 3; i++) {
		char text[256];
		snprintf(text, sizeof text, "model m%d(d = %d) {\n input x: f32[1, d]\n"
			 " output y = layernorm(x) as ln\n}\n", i, 4 + i);
		CHECK(fe_compile_string(s, "t.msw", text, NULL, &g[i], &d) == 0);
	}
	for (int i = 0; i < 3; i++) {
		CHECK(g[i] && shape_is(g[i], ir_find_param(g[i], "ln.weight"), 1, 4 + i, 0, 0));
		ir_graph_destroy(g[i]);
	}
	diag_free(&d);
	fe_session_destroy(s);
}

int main(void)
{
	RUN(test_minimal);
	RUN(test_gpt_default);
	RUN(test_gpt_defines);
	RUN(test_input_binding);
	RUN(test_defs);
	RUN(test_errors);
	RUN(test_robust);
	RUN(test_alloc_failure);
	RUN(test_session_reuse);
	return check_report();
}

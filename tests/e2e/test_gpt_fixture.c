/* test_gpt_fixture.c: models/gpt.msw, compiled and run by mswc, against the
 * independent PyTorch reference (tools/gpt_reference.py).
 *
 * The fixtures in tests/fixtures/gpt_small were made by
 * tools/make_gpt_fixtures.py: GPT-2 at vocab 256, ctx 64, d 64, 4 heads,
 * 2 layers, with random weights in Hugging Face GPT-2 names and layouts, and
 * the reference's logits and mean cross-entropy computed in float64. For each
 * case (batch 2 x seq 16, and batch 1 x seq 64 = the full context) the test
 *   - compiles the model from source with those hyperparameters and the
 *     inputs' shapes, keeping the loss (keep_loss), through the whole pass
 *     pipeline and the LLVM backend;
 *   - does the same with GPT-2 built by hand here from the IR builders, which
 *     needs no frontend: if it passes and the .msw model fails, the fault is
 *     in the frontend, the prelude or models/gpt.msw;
 *   - runs the IR's reference interpreter (double precision) on the same
 *     graph, which tells a wrong model (frontend, prelude, passes) apart from
 *     a wrong kernel (backend, runtime) when the end-to-end check fails;
 *   - runs the JIT-compiled program with 1 and with 2 worker threads, loading
 *     the weights from the safetensors file and the inputs from .npy files.
 * Tolerances (see docs/testing.md): the compiled float32 program must agree
 * with the float64 reference to a normwise relative error below 1e-4 on the
 * logits and a relative error below 1e-4 on the loss; the interpreter, which
 * computes in double, to 1e-6 (the fixture itself is rounded to float32).
 * The runtime's kernel contract promises results independent of how tasks
 * are split over threads, so 1 and 2 threads must give bitwise-identical
 * logits and loss. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define FIXTURE_DIR MSW_SOURCE_DIR "/tests/fixtures/gpt_small"
#define MODEL_PATH MSW_SOURCE_DIR "/models/gpt.msw"

enum { NTHREAD_RUNS = 2 };
static const double TOL_JIT = 1e-4;   /* float32 kernels vs float64 reference */
static const double TOL_INTERP = 1e-6; /* double interpreter vs float32-rounded fixture */

typedef struct Fixture {
	rt_Tensor tokens, targets, logits, loss;
} Fixture;

/* Errors from the library come back as a Diag: print it so a failing run
 * says why, then clear it for the next step. */
static void show_diag(const char *what, Diag *d)
{
	if (d->nerror || d->len)
		fprintf(stderr, "%s:\n%s", what, diag_text(d));
	diag_free(d);
	diag_init(d);
}

static int read_npy(const char *name, const char *suffix, rt_Tensor *t)
{
	char path[1024];
	Diag d;
	diag_init(&d);
	snprintf(path, sizeof path, "%s/%s%s.npy", FIXTURE_DIR, name, suffix);
	int rc = rt_npy_read(path, t, &d);
	CHECK_MSG(rc == 0, "reading %s", path);
	show_diag(path, &d);
	return rc;
}

static void fixture_free(Fixture *f)
{
	rt_tensor_free(&f->tokens);
	rt_tensor_free(&f->targets);
	rt_tensor_free(&f->logits);
	rt_tensor_free(&f->loss);
}

static int fixture_read(const char *suffix, Fixture *f)
{
	memset(f, 0, sizeof *f);
	if (read_npy("tokens", suffix, &f->tokens) || read_npy("targets", suffix, &f->targets) ||
	    read_npy("logits", suffix, &f->logits) || read_npy("loss", suffix, &f->loss))
		return -1;
	CHECK(f->tokens.dtype == RT_I32 && f->tokens.rank == 2);
	CHECK(f->targets.dtype == RT_I32 && f->targets.rank == 2);
	CHECK(f->logits.dtype == RT_F32 && f->logits.rank == 3 && f->logits.dim[2] == 256);
	CHECK(f->loss.dtype == RT_F32 && rt_numel(&f->loss) == 1);
	if (f->tokens.rank != 2 || f->logits.rank != 3 || rt_numel(&f->loss) != 1 ||
	    rt_numel(&f->logits) != rt_numel(&f->tokens) * 256)
		return -1;
	return 0;
}

/* Normwise relative error ||got - want|| / ||want|| and the largest
 * elementwise difference, in double. */
static double rel_error(const double *got, const float *want, int64_t n, double *max_abs)
{
	double num = 0, den = 0, mx = 0;
	for (int64_t i = 0; i < n; i++) {
		double e = got[i] - (double)want[i];
		num += e * e;
		den += (double)want[i] * want[i];
		if (isnan(e) || isnan(mx))
			mx = NAN; /* a NaN anywhere shows as the maximum */
		else if (fabs(e) > mx)
			mx = fabs(e);
	}
	*max_abs = mx;
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* models/gpt.msw at the fixture's size, through the pass pipeline with the
 * loss kept. Graph and session are the caller's to destroy (graph first). */
static Graph *compile_model(fe_Session *s, const Fixture *f)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2}, {.name = "targets", .rank = 2}};
	for (int i = 0; i < 2; i++) {
		in[0].dim[i] = f->tokens.dim[i];
		in[1].dim[i] = f->targets.dim[i];
	}
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 2};
	PassOptions po = {.keep_loss = true, .verify = true, .alignment = 64};
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	int rc = fe_compile_file(s, MODEL_PATH, &fo, &g, &d);
	CHECK_MSG(rc == 0 && g, "fe_compile_file(%s)", MODEL_PATH);
	show_diag("frontend", &d);
	if (rc || !g)
		return NULL;
	rc = pass_run_pipeline(g, &po, NULL, &d);
	CHECK_MSG(rc == 0, "pass_run_pipeline returned %d", rc);
	show_diag("passes", &d);
	CHECK_MSG(g->loss != VAL_NONE, "the graph has no loss (keep_loss = true)");
	if (rc) {
		ir_graph_destroy(g);
		return NULL;
	}
	return g;
}

/* GPT-2 written directly with the IR builders: the same model as
 * models/gpt.msw, without the frontend. TRY bails out on the first error. */
#define TRY(x)                                    \
	do {                                      \
		if ((x) == VAL_NONE)              \
			return VAL_NONE;          \
	} while (0)

typedef struct Gpt {
	Graph *g;
	Diag *d;
	int64_t vocab, ctx, dm, heads, layers;
} Gpt;

static ValId gparam(Gpt *m, const char *prefix, const char *name, int64_t d0, int64_t d1)
{
	char full[128];
	snprintf(full, sizeof full, "%s%s", prefix, name);
	Shape s = {.rank = d1 ? 2 : 1, .dim = {d0, d1}};
	return ir_param(m->g, full, &s, INIT_NORMAL, 0.02, (SrcLoc){0}, m->d);
}

static ValId gconst(Gpt *m, double v)
{
	Shape scalar = {.rank = 0};
	return ir_const(m->g, v, DT_F32, &scalar, (SrcLoc){0}, m->d);
}

static ValId glayernorm(Gpt *m, ValId x, const char *prefix)
{
	Graph *g = m->g;
	SrcLoc l = {0};
	ValId w, b, mu, xc, var, eps, r, y;
	TRY(w = gparam(m, prefix, "weight", m->dm, 0));
	TRY(b = gparam(m, prefix, "bias", m->dm, 0));
	TRY(mu = ir_reduce(g, OP_MEAN, x, -1, true, l, m->d));
	TRY(xc = ir_binary(g, OP_SUB, x, mu, l, m->d));
	TRY(var = ir_binary(g, OP_MUL, xc, xc, l, m->d));
	TRY(var = ir_reduce(g, OP_MEAN, var, -1, true, l, m->d));
	TRY(eps = gconst(m, 1e-5));
	TRY(var = ir_binary(g, OP_ADD, var, eps, l, m->d));
	TRY(r = ir_unary(g, OP_RSQRT, var, l, m->d));
	TRY(y = ir_binary(g, OP_MUL, xc, r, l, m->d));
	TRY(y = ir_binary(g, OP_MUL, y, w, l, m->d));
	return ir_binary(g, OP_ADD, y, b, l, m->d);
}

/* HF Conv1D: x @ W[in, out] + b[out] */
static ValId glinear(Gpt *m, ValId x, const char *prefix, int64_t in, int64_t out)
{
	ValId w, b, y;
	TRY(w = gparam(m, prefix, "weight", in, out));
	TRY(b = gparam(m, prefix, "bias", out, 0));
	TRY(y = ir_matmul(m->g, x, w, 0, (SrcLoc){0}, m->d));
	return ir_binary(m->g, OP_ADD, y, b, (SrcLoc){0}, m->d);
}

/* [B,T,d] -> [B,H,T,hd]: head j owns columns j*hd .. (j+1)*hd */
static ValId gsplit_heads(Gpt *m, ValId x, int64_t B, int64_t T)
{
	static const uint8_t perm[4] = {0, 2, 1, 3};
	Shape s = {.rank = 4, .dim = {B, T, m->heads, m->dm / m->heads}};
	ValId r;
	TRY(r = ir_reshape(m->g, x, &s, (SrcLoc){0}, m->d));
	return ir_permute(m->g, r, perm, (SrcLoc){0}, m->d);
}

static ValId gattention(Gpt *m, ValId x, const char *prefix, int64_t B, int64_t T)
{
	static const uint8_t perm[4] = {0, 2, 1, 3};
	Graph *g = m->g;
	SrcLoc l = {0};
	char pre[128];
	int64_t d = m->dm;
	ValId qkv, q, k, v, s, c, y;
	snprintf(pre, sizeof pre, "%sc_attn.", prefix);
	TRY(qkv = glinear(m, x, pre, d, 3 * d));
	TRY(q = ir_slice(g, qkv, 2, 0, d, l, m->d));
	TRY(k = ir_slice(g, qkv, 2, d, 2 * d, l, m->d));
	TRY(v = ir_slice(g, qkv, 2, 2 * d, 3 * d, l, m->d));
	TRY(q = gsplit_heads(m, q, B, T));
	TRY(k = gsplit_heads(m, k, B, T));
	TRY(v = gsplit_heads(m, v, B, T));
	TRY(s = ir_matmul(g, q, k, NF_TRANS_B, l, m->d));
	TRY(c = gconst(m, 1.0 / sqrt((double)(d / m->heads))));
	TRY(s = ir_binary(g, OP_MUL, s, c, l, m->d));
	TRY(s = ir_causal_mask(g, s, l, m->d));
	TRY(s = ir_softmax(g, s, l, m->d));
	TRY(y = ir_matmul(g, s, v, 0, l, m->d));
	TRY(y = ir_permute(g, y, perm, l, m->d));
	Shape merged = {.rank = 3, .dim = {B, T, d}};
	TRY(y = ir_reshape(g, y, &merged, l, m->d));
	snprintf(pre, sizeof pre, "%sc_proj.", prefix);
	return glinear(m, y, pre, d, d);
}

static ValId gmlp(Gpt *m, ValId x, const char *prefix)
{
	char pre[128];
	ValId h;
	snprintf(pre, sizeof pre, "%sc_fc.", prefix);
	TRY(h = glinear(m, x, pre, m->dm, 4 * m->dm));
	TRY(h = ir_unary(m->g, OP_GELU, h, (SrcLoc){0}, m->d));
	snprintf(pre, sizeof pre, "%sc_proj.", prefix);
	return glinear(m, h, pre, 4 * m->dm, m->dm);
}

/* Returns the logits and sets g->loss. */
static ValId gbuild(Gpt *m, int64_t B, int64_t T)
{
	Graph *g = m->g;
	SrcLoc l = {0};
	Shape bt = {.rank = 2, .dim = {B, T}};
	ValId tokens, targets, wte, wpe, pos, x, pe, logits, loss;
	TRY(tokens = ir_input(g, "tokens", DT_I32, &bt, l, m->d));
	TRY(targets = ir_input(g, "targets", DT_I32, &bt, l, m->d));
	TRY(wte = gparam(m, "", "wte.weight", m->vocab, m->dm));
	TRY(wpe = gparam(m, "", "wpe.weight", m->ctx, m->dm));
	TRY(x = ir_gather(g, wte, tokens, l, m->d));
	TRY(pos = ir_iota(g, T, DT_I32, l, m->d));
	TRY(pe = ir_gather(g, wpe, pos, l, m->d));
	TRY(x = ir_binary(g, OP_ADD, x, pe, l, m->d));
	for (int64_t i = 0; i < m->layers; i++) {
		char pre[64], sub[96];
		ValId a;
		snprintf(pre, sizeof pre, "h.%lld.", (long long)i);
		snprintf(sub, sizeof sub, "%sln_1.", pre);
		TRY(a = glayernorm(m, x, sub));
		snprintf(sub, sizeof sub, "%sattn.", pre);
		TRY(a = gattention(m, a, sub, B, T));
		TRY(x = ir_binary(g, OP_ADD, x, a, l, m->d));
		snprintf(sub, sizeof sub, "%sln_2.", pre);
		TRY(a = glayernorm(m, x, sub));
		snprintf(sub, sizeof sub, "%smlp.", pre);
		TRY(a = gmlp(m, a, sub));
		TRY(x = ir_binary(g, OP_ADD, x, a, l, m->d));
	}
	TRY(x = glayernorm(m, x, "ln_f."));
	TRY(logits = ir_matmul(g, x, wte, NF_TRANS_B, l, m->d));
	TRY(loss = ir_cross_entropy(g, logits, targets, l, m->d));
	g->loss = loss;
	return logits;
}
#undef TRY

static Graph *build_ir_model(const Fixture *f)
{
	PassOptions po = {.keep_loss = true, .verify = true, .alignment = 64};
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	CHECK(g != NULL);
	if (!g)
		return NULL;
	Gpt m = {g, &d, 256, 64, 64, 4, 2};
	ValId logits = gbuild(&m, f->tokens.dim[0], f->tokens.dim[1]);
	CHECK_MSG(logits != VAL_NONE, "building GPT-2 from IR builders");
	int rc = logits == VAL_NONE || ir_set_output(g, "logits", logits) ? -1 : 0;
	if (!rc) {
		rc = ir_verify(g, &d);
		CHECK_MSG(rc == 0, "ir_verify of the hand-built graph");
	}
	if (!rc) {
		rc = pass_run_pipeline(g, &po, NULL, &d);
		CHECK_MSG(rc == 0, "pass_run_pipeline (hand-built graph) returned %d", rc);
	}
	show_diag("hand-built graph", &d);
	if (rc) {
		ir_graph_destroy(g);
		return NULL;
	}
	return g;
}

static ValId output_value(const Graph *g, const char *name)
{
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		if (!strcmp(ir_str(g, o->name), name))
			return o->val;
	}
	return VAL_NONE;
}

static double *to_double(const rt_Tensor *t)
{
	int64_t n = rt_numel(t);
	double *v = mem_alloc(sizeof *v * (size_t)(n ? n : 1));
	if (!v)
		return NULL;
	for (int64_t i = 0; i < n; i++)
		v[i] = t->dtype == RT_F32 ? (double)((const float *)t->data)[i]
					  : (double)((const int32_t *)t->data)[i];
	return v;
}

/* The same graph through ir_interp, in double: isolates the model from the
 * kernels. Inputs and parameters are bound by name from the fixture. */
static void check_interp(const Graph *g, const Fixture *f, const rt_TensorFile *w, const char *label)
{
	uint32_t n = ir_nnode(g);
	double **val = mem_calloc(n, sizeof *val);
	Diag d;
	diag_init(&d);
	CHECK(val != NULL);
	if (!val)
		return;
	int ok = 1;
	for (ValId v = 0; v < n && ok; v++) {
		const Node *nd = ir_node(g, v);
		const char *name = ir_str(g, nd->name);
		const rt_Tensor *src = NULL;
		if (nd->op == OP_INPUT)
			src = !strcmp(name, "tokens") ? &f->tokens : !strcmp(name, "targets") ? &f->targets : NULL;
		else if (nd->op == OP_PARAM) {
			const rt_NamedTensor *nt = rt_tensorfile_find(w, name);
			src = nt ? &nt->t : NULL;
		} else
			continue;
		CHECK_MSG(src && rt_numel(src) == ir_numel(&nd->shape), "interp: no value of the right "
			  "size for %s '%s'", nd->op == OP_INPUT ? "input" : "param", name);
		if (!src || rt_numel(src) != ir_numel(&nd->shape) || !(val[v] = to_double(src)))
			ok = 0;
	}
	ValId lv = output_value(g, "logits");
	CHECK_MSG(lv != VAL_NONE, "the graph has no output 'logits'");
	if (ok && lv != VAL_NONE) {
		int rc = ir_interp(g, val, &d);
		CHECK_MSG(rc == 0, "ir_interp failed");
		show_diag("ir_interp", &d);
		if (rc == 0) {
			int64_t nl = rt_numel(&f->logits);
			CHECK(ir_numel(&ir_node(g, lv)->shape) == nl);
			double mx, rel = rel_error(val[lv], f->logits.data, nl, &mx);
			double loss = val[g->loss][0], want = ((const float *)f->loss.data)[0];
			double lrel = fabs(loss - want) / fabs(want);
			printf("%s interp (f64): logits rel %.3e max abs %.3e; loss %.9f vs %.9f "
			       "(rel %.3e)\n", label, rel, mx, loss, want, lrel);
			CHECK_MSG(rel < TOL_INTERP, "interp logits rel error %.3e >= %g", rel, TOL_INTERP);
			CHECK_MSG(lrel < TOL_INTERP, "interp loss rel error %.3e >= %g", lrel, TOL_INTERP);
		}
	}
	ir_interp_free(g, val);
	/* ir_interp_free leaves caller-owned source values alone. */
	for (ValId v = 0; v < n; v++)
		if (ir_node(g, v)->op == OP_INPUT || ir_node(g, v)->op == OP_PARAM)
			mem_free(val[v]);
	mem_free(val);
	diag_free(&d);
}

static int fill_input(rt_Exec *e, const rt_Program *p, const char *name, const rt_Tensor *src)
{
	const rt_Slot *s = rt_program_find(p, name);
	CHECK_MSG(s && s->kind == RT_SLOT_INPUT, "the program has no input '%s'", name);
	if (!s || s->kind != RT_SLOT_INPUT)
		return -1;
	rt_Tensor t;
	CHECK(rt_exec_tensor(e, name, &t) == 0);
	CHECK_MSG(t.dtype == src->dtype && rt_numel(&t) == rt_numel(src), "input '%s': slot %s "
		  "numel %lld, fixture %s numel %lld", name, rt_dtype_name(t.dtype),
		  (long long)rt_numel(&t), rt_dtype_name(src->dtype), (long long)rt_numel(src));
	if (t.dtype != src->dtype || rt_numel(&t) != rt_numel(src))
		return -1;
	memcpy(t.data, src->data, (size_t)rt_nbytes(src));
	return 0;
}

/* One run of the compiled program on a pool of `nthreads`; copies the
 * logits (float) and the loss out before the arena goes away. */
static int run_program(const rt_Program *p, const Fixture *f, int nthreads, float *logits,
		       float *loss)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/weights.safetensors", FIXTURE_DIR);
	rt_Pool *pool = rt_pool_create(nthreads);
	rt_Exec *e = NULL;
	Diag d;
	diag_init(&d);
	int rc = -1;
	CHECK(pool != NULL);
	if (!pool)
		goto done;
	CHECK_MSG(rt_pool_size(pool) == nthreads, "pool of %d threads has %d", nthreads,
		  rt_pool_size(pool));
	if (rt_exec_create(p, pool, &e, &d)) {
		CHECK_MSG(0, "rt_exec_create");
		goto done;
	}
	if (rt_load_params(e, path, &d)) {
		CHECK_MSG(0, "rt_load_params(%s)", path);
		goto done;
	}
	if (fill_input(e, p, "tokens", &f->tokens) || fill_input(e, p, "targets", &f->targets))
		goto done;
	rt_exec_run(e);

	rt_Tensor t;
	if (rt_exec_tensor(e, "logits", &t)) {
		CHECK_MSG(0, "the program has no output 'logits'");
		goto done;
	}
	CHECK_MSG(t.dtype == RT_F32 && rt_numel(&t) == rt_numel(&f->logits),
		  "logits: %s numel %lld, fixture numel %lld", rt_dtype_name(t.dtype),
		  (long long)rt_numel(&t), (long long)rt_numel(&f->logits));
	if (t.dtype != RT_F32 || rt_numel(&t) != rt_numel(&f->logits))
		goto done;
	memcpy(logits, t.data, (size_t)rt_nbytes(&t));

	const rt_Slot *ls = NULL;
	for (size_t i = 0; i < p->slot.len; i++)
		if (VEC_AT(p->slot, rt_Slot, i).kind == RT_SLOT_LOSS)
			ls = &VEC_AT(p->slot, rt_Slot, i);
	CHECK_MSG(ls != NULL, "the program has no loss slot");
	if (!ls || rt_exec_tensor(e, ls->name, &t) || t.dtype != RT_F32 || rt_numel(&t) != 1) {
		CHECK_MSG(0, "the loss is not one float");
		goto done;
	}
	*loss = *(const float *)t.data;
	rc = 0;
done:
	show_diag("runtime", &d);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return rc;
}

/* Interpreter and compiled program on one graph (after the pipeline). */
static void check_graph(const Graph *g, const Fixture *f, const rt_TensorFile *w, const char *label)
{
	rt_Program *p = NULL;
	float *logits[NTHREAD_RUNS] = {0};
	float loss[NTHREAD_RUNS] = {0};
	double *got = NULL;
	int64_t nl = rt_numel(&f->logits);
	Diag d;
	diag_init(&d);

	check_interp(g, f, w, label);

	be_Options bo = {.opt_level = 3};
	int rc = be_build_program(g, &bo, &p, &d);
	CHECK_MSG(rc == 0 && p, "be_build_program (%s)", label);
	show_diag("backend", &d);
	if (rc || !p)
		goto done;

	got = mem_alloc(sizeof *got * (size_t)nl);
	CHECK(got != NULL);
	if (!got)
		goto done;
	for (int r = 0; r < NTHREAD_RUNS; r++) {
		int nthreads = r + 1;
		logits[r] = mem_alloc(sizeof *logits[r] * (size_t)nl);
		CHECK(logits[r] != NULL);
		if (!logits[r] || run_program(p, f, nthreads, logits[r], &loss[r]))
			goto done;
		for (int64_t i = 0; i < nl; i++)
			got[i] = logits[r][i];
		double mx, rel = rel_error(got, f->logits.data, nl, &mx);
		double want = ((const float *)f->loss.data)[0];
		double lrel = fabs(loss[r] - want) / fabs(want);
		printf("%s jit (f32, %d thread%s): logits rel %.3e max abs %.3e; loss %.9f vs %.9f "
		       "(rel %.3e)\n", label, nthreads, nthreads > 1 ? "s" : "", rel, mx,
		       (double)loss[r], want, lrel);
		CHECK_MSG(rel < TOL_JIT, "%s: logits normwise rel error %.3e >= %g (%d threads)",
			  label, rel, TOL_JIT, nthreads);
		CHECK_MSG(lrel < TOL_JIT, "%s: loss rel error %.3e >= %g (%d threads)", label, lrel,
			  TOL_JIT, nthreads);
	}
	for (int r = 1; r < NTHREAD_RUNS; r++) {
		int64_t ndiff = 0;
		for (int64_t i = 0; i < nl; i++)
			ndiff += memcmp(&logits[0][i], &logits[r][i], sizeof(float)) != 0;
		CHECK_MSG(ndiff == 0, "%s: %lld of %lld logits differ between 1 and %d threads",
			  label, (long long)ndiff, (long long)nl, r + 1);
		CHECK_MSG(!memcmp(&loss[0], &loss[r], sizeof(float)),
			  "%s: loss differs between 1 and %d threads: %.9g vs %.9g", label, r + 1,
			  (double)loss[0], (double)loss[r]);
	}
done:
	for (int r = 0; r < NTHREAD_RUNS; r++)
		mem_free(logits[r]);
	mem_free(got);
	rt_program_destroy(p);
	diag_free(&d);
}

typedef enum ModelFrom { FROM_MSW, FROM_IR } ModelFrom;

static void check_case(const char *suffix, ModelFrom from)
{
	char label[64];
	Fixture f;
	rt_TensorFile w = {0};
	bool have_w = false;
	fe_Session *s = NULL;
	Graph *g = NULL;
	Diag d;
	diag_init(&d);

	if (fixture_read(suffix, &f))
		goto done;
	snprintf(label, sizeof label, "gpt_small%s [%lld x %lld] %s", suffix,
		 (long long)f.tokens.dim[0], (long long)f.tokens.dim[1],
		 from == FROM_MSW ? "models/gpt.msw" : "hand-built IR");
	have_w = rt_safetensors_read(FIXTURE_DIR "/weights.safetensors", &w, &d) == 0;
	CHECK_MSG(have_w, "rt_safetensors_read(weights.safetensors)");
	show_diag("safetensors", &d);
	if (!have_w)
		goto done;

	if (from == FROM_MSW) {
		s = fe_session_create();
		CHECK(s != NULL);
		if (s)
			g = compile_model(s, &f);
	} else {
		g = build_ir_model(&f);
	}
	if (g)
		check_graph(g, &f, &w, label);
done:
	ir_graph_destroy(g);
	if (s)
		fe_session_destroy(s);
	if (have_w)
		rt_tensorfile_free(&w);
	fixture_free(&f);
	diag_free(&d);
}

/* batch 2, seq 16 */
static void test_gpt_msw(void)
{
	check_case("", FROM_MSW);
}

/* batch 1, seq 64: every position of the context, the causal mask's full
 * triangle and the last rows of wpe */
static void test_gpt_msw_full_context(void)
{
	check_case("_full", FROM_MSW);
}

/* The same model without the frontend. */
static void test_gpt_ir(void)
{
	check_case("", FROM_IR);
}

static void test_gpt_ir_full_context(void)
{
	check_case("_full", FROM_IR);
}

int main(void)
{
	RUN(test_gpt_ir);
	RUN(test_gpt_ir_full_context);
	RUN(test_gpt_msw);
	RUN(test_gpt_msw_full_context);
	return check_report();
}

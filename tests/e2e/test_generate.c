/* test_generate.c: decoding with a KV cache (docs/generation.md), on the
 * gpt_small fixture (models/gpt.msw at vocab 256, ctx 64, d 64, 4 heads,
 * 2 layers, weights from tests/fixtures/gpt_small).
 *
 *   - the decode program (one token per run, kv_cache as persistent state)
 *     fed the 64 fixture tokens one at a time gives at every position the
 *     logits of the full-sequence forward program (normwise relative error
 *     < 1e-4, per position and overall) and of the independent reference
 *     (logits_full.npy, < 1e-4); 1 and 2 threads give identical bytes;
 *   - the decode graph run by the interpreter (states as caller buffers)
 *     for the first positions agrees with the compiled decode program;
 *   - greedy generation is deterministic and equals, token by token, the
 *     argmax of the full forward program re-run on the growing sequence;
 *   - sampling: one seed gives one text, other seeds give other texts;
 *     top-k 1 is greedy; top-p runs;
 *   - limits: a position outside the context and a prompt + continuation
 *     longer than it are errors before anything runs; a forward program
 *     (no caches) is refused as a decoder;
 *   - kv_cache is the identity outside decode mode (the same graph hash as
 *     the model without it), and decode mode's errors.
 * What the causal mask hides reaches nothing: a NaN or inf in the position
 * embedding of position 40 leaves the forward logits of positions 0..39
 * bit for bit as they were, and KV caches full of NaN change no decoded
 * logits (one token per run, and chunks of 4).
 * Decode mode with 4 new tokens per run is checked against the forward
 * program too, and prefill (the prompt in chunks of T through a second
 * decode program, then its caches handed to the one-token program) gives
 * the same logits bit for bit and the same tokens as feeding the prompt a
 * token per run: greedy and seeded sampling, prompts that are whole
 * chunks, padded chunks, a tail that cannot be padded, and windows that
 * slide. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define FIXTURE_DIR MSW_SOURCE_DIR "/tests/fixtures/gpt_small"
#define MODEL_PATH MSW_SOURCE_DIR "/models/gpt.msw"
#define WEIGHTS FIXTURE_DIR "/weights.safetensors"

enum { CTX = 64, VOCAB = 256 };
static const double TOL = 1e-4;

#define RUN_ARG(fn, a)                                                  \
	do {                                                            \
		int before_ = check_nfail;                              \
		fn(a);                                                  \
		if (check_nfail != before_)                             \
			fprintf(stderr, "  in %s\n", #fn);              \
	} while (0)

static void show_diag(const char *what, Diag *d)
{
	if (d->nerror || d->len)
		fprintf(stderr, "%s:\n%s", what, diag_text(d));
	diag_free(d);
	diag_init(d);
}

/* models/gpt.msw at the fixture's size, tokens [1, seq], no loss; decode
 * mode when asked. The graph outlives nothing: the caller destroys it. */
static int64_t cur_batch = 1;   /* > 1: tokens [batch, seq] and pos i32[batch] */

static Graph *compile_gpt(fe_Session *s, int64_t seq, bool decode)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {cur_batch, seq}},
			       {.name = "pos", .rank = 1, .dim = {cur_batch}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = cur_batch > 1 ? 2 : 1,
			 .decode = decode};
	PassOptions po = {.verify = true, .alignment = RT_ALIGN};
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	if (fe_compile_file(s, MODEL_PATH, &fo, &g, &d) || pass_run_pipeline(g, &po, NULL, &d)) {
		CHECK_MSG(0, "compiling %s (decode %d)", MODEL_PATH, decode);
		show_diag("compile", &d);
		ir_graph_destroy(g);
		return NULL;
	}
	diag_free(&d);
	return g;
}

typedef struct Run {
	Graph *g;
	rt_Program *p;
	rt_Pool *pool;
	rt_Exec *e;
} Run;

static int build(Run *r, fe_Session *s, int64_t seq, bool decode, int nthreads)
{
	memset(r, 0, sizeof *r);
	Diag d;
	diag_init(&d);
	r->g = compile_gpt(s, seq, decode);
	if (!r->g)
		return -1;
	int rc = be_build_program(r->g, NULL, &r->p, &d);
	if (!rc) {
		r->pool = rt_pool_create(nthreads);
		rc = rt_exec_create(r->p, r->pool, &r->e, &d) || rt_load_params(r->e, WEIGHTS, &d);
	}
	CHECK_MSG(rc == 0, "building the %s program", decode ? "decode" : "forward");
	show_diag("build", &d);
	diag_free(&d);
	return rc ? -1 : 0;
}

static void destroy(Run *r)
{
	rt_exec_destroy(r->e);
	rt_pool_destroy(r->pool);
	rt_program_destroy(r->p);
	ir_graph_destroy(r->g);
}

/* Compiling is most of this test's time, so each (seq, mode, threads)
 * program is built once and shared; tests that care reset the caches
 * (rt_decoder_reset, rt_generate), and stale rows past pos are masked
 * anyway. */
enum { MAX_SHARED = 10 };
static struct {
	int64_t seq, batch;
	bool decode;
	int nthreads;
	Run r;
} shared[MAX_SHARED];
static int nshared;

static int run_open(Run *r, fe_Session *s, int64_t seq, bool decode, int nthreads)
{
	for (int i = 0; i < nshared; i++)
		if (shared[i].seq == seq && shared[i].decode == decode &&
		    shared[i].nthreads == nthreads && shared[i].batch == cur_batch) {
			*r = shared[i].r;
			return 0;
		}
	if (nshared == MAX_SHARED || build(r, s, seq, decode, nthreads)) {
		CHECK(nshared < MAX_SHARED);
		return -1;
	}
	shared[nshared].seq = seq;
	shared[nshared].batch = cur_batch;
	shared[nshared].decode = decode;
	shared[nshared].nthreads = nthreads;
	shared[nshared++].r = *r;
	return 0;
}

static void run_close(Run *r)
{
	(void)r;   /* shared: destroyed at the end of main */
}

static double rel_err(const float *got, const float *want, int64_t n)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		double e = (double)got[i] - want[i];
		num += e * e;
		den += (double)want[i] * want[i];
	}
	return isnan(num) ? INFINITY : den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The full forward program's logits [seq, VOCAB] for tokens[0 .. seq). */
static void forward(Run *full, const int32_t *tok, int64_t n, float *logits)
{
	rt_Tensor t, l;
	rt_exec_tensor(full->e, "tokens", &t);
	rt_exec_tensor(full->e, "logits", &l);
	memset(t.data, 0, (size_t)rt_nbytes(&t));
	memcpy(t.data, tok, (size_t)n * sizeof *tok);
	rt_exec_run(full->e);
	memcpy(logits, l.data, (size_t)rt_nbytes(&l));
}

static int argmax(const float *x, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return b;
}

static rt_Tensor tokens_full, logits_full;
static bool have_fixture;

static void test_decode_matches_full(fe_Session *s)
{
	Run full, dec[2];
	if (run_open(&full, s, CTX, false, 1))
		return;
	bool ok = run_open(&dec[0], s, 1, true, 1) == 0 && run_open(&dec[1], s, 1, true, 2) == 0;
	float *want = malloc(CTX * VOCAB * sizeof *want), *got[2];
	got[0] = malloc(CTX * VOCAB * sizeof(float));
	got[1] = malloc(CTX * VOCAB * sizeof(float));
	const int32_t *tok = tokens_full.data;
	if (!ok)
		goto done;
	forward(&full, tok, CTX, want);
	if (have_fixture)
		CHECK_MSG(rel_err(want, logits_full.data, CTX * VOCAB) < TOL,
			  "forward vs fixture: %g", rel_err(want, logits_full.data, CTX * VOCAB));
	/* The decode program has states, pos, and one position of tokens. */
	const rt_Slot *ts = rt_program_find(dec[0].p, "tokens");
	CHECK(ts && ts->dim[1] == 1);
	CHECK(rt_program_find(dec[0].p, "pos") != NULL);
	const rt_Slot *ck = rt_program_find(dec[0].p, "h.1.attn.cache.v");
	CHECK(ck && ck->kind == RT_SLOT_STATE && ck->dim[2] == CTX && ck->dim[3] == 16);
	for (int t = 0; t < 2; t++) {
		rt_Decoder dc;
		Diag d;
		diag_init(&d);
		CHECK(rt_decoder_init(&dc, dec[t].e, &d) == 0);
		show_diag("decoder", &d);
		CHECK(dc.ctx == CTX && dc.vocab == VOCAB && dc.nstate == 4);
		/* Dirty caches first: reset must make the run independent of them. */
		for (int i = 0; i < 5; i++)
			rt_decoder_step(&dc, 7 * i + 1, 60 - i, &d);
		rt_decoder_reset(&dc);
		for (int64_t i = 0; i < CTX; i++) {
			const float *l = rt_decoder_step(&dc, tok[i], i, &d);
			CHECK(l != NULL);
			if (l)
				memcpy(got[t] + i * VOCAB, l, VOCAB * sizeof *l);
		}
		show_diag("decode", &d);
	}
	double worst = 0;
	int64_t worst_at = 0;
	for (int64_t i = 0; i < CTX; i++) {
		double e = rel_err(got[0] + i * VOCAB, want + i * VOCAB, VOCAB);
		if (!(e <= worst)) {
			worst = e;
			worst_at = i;
		}
	}
	CHECK_MSG(worst < TOL, "decode vs forward: position %lld has relative error %g",
		  (long long)worst_at, worst);
	CHECK_MSG(rel_err(got[0], want, CTX * VOCAB) < TOL, "decode vs forward: %g",
		  rel_err(got[0], want, CTX * VOCAB));
	if (have_fixture)
		CHECK_MSG(rel_err(got[0], logits_full.data, CTX * VOCAB) < TOL,
			  "decode vs fixture: %g", rel_err(got[0], logits_full.data, CTX * VOCAB));
	CHECK_MSG(memcmp(got[0], got[1], CTX * VOCAB * sizeof(float)) == 0,
		  "decode: 1 and 2 threads differ");
	printf("decode vs forward: worst position %lld, relative error %.3g; decode vs the "
	       "reference: %.3g\n", (long long)worst_at, worst,
	       have_fixture ? rel_err(got[0], logits_full.data, CTX * VOCAB) : NAN);
	run_close(&dec[1]);
	run_close(&dec[0]);
done:
	run_close(&full);
	free(want);
	free(got[0]);
	free(got[1]);
}

/* Fill every KV cache of e (its RT_SLOT_STATE slots) with x. */
static void fill_caches(rt_Exec *e, float x)
{
	const rt_Program *p = rt_exec_program(e);
	uint8_t *arena = rt_exec_arena(e);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *sl = &VEC_AT(p->slot, rt_Slot, i);
		float *f = (float *)(arena + sl->offset);
		for (int64_t j = 0; sl->kind == RT_SLOT_STATE && j < sl->nbytes / 4; j++)
			f[j] = x;
	}
}

static bool all_finite(const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return false;
	return true;
}

/* What the causal mask hides reaches nothing (issue 15, item 10). A NaN
 * or Inf in the position embedding of position P makes that position's
 * values non-finite; the probabilities of earlier queries for it are 0,
 * and 0 * NaN is NaN, so a plain product of probabilities and values
 * carried it into every earlier position. Forward: rows before P keep the
 * clean run's logits bit for bit, rows from P on are not finite. Decode:
 * caches full of NaN (what a stale cache past pos may hold) change no
 * logits of one-token steps nor of chunks of 4, which read the rows past
 * pos through the masked probabilities. */
static void test_masked_positions(fe_Session *s)
{
	enum { P = 40 };
	Run full, dec, chunk;
	if (run_open(&full, s, CTX, false, 1))
		return;
	float *want = malloc(CTX * VOCAB * sizeof *want), *got = malloc(CTX * VOCAB * sizeof *got);
	const int32_t *tok = tokens_full.data;
	forward(&full, tok, CTX, want);
	CHECK(all_finite(want, CTX * VOCAB));
	rt_Tensor wpe;
	CHECK(rt_exec_tensor(full.e, "wpe.weight", &wpe) == 0 && wpe.dim[0] == CTX);
	int64_t d = wpe.dim[1];
	float *row = (float *)wpe.data + P * d, saved = row[3];
	static const float bad[2] = {NAN, INFINITY};
	for (int b = 0; b < 2; b++) {
		row[3] = bad[b];
		forward(&full, tok, CTX, got);
		CHECK_MSG(memcmp(got, want, P * VOCAB * sizeof *got) == 0,
			  "forward: a %s at position %d changes the logits of earlier positions",
			  b ? "inf" : "NaN", P);
		CHECK(all_finite(got, P * VOCAB));
		for (int64_t i = P; i < CTX; i++)
			CHECK_MSG(!isfinite(got[i * VOCAB]), "forward: position %lld after the %s at "
				  "%d is finite", (long long)i, b ? "inf" : "NaN", P);
	}
	row[3] = saved;

	if (run_open(&dec, s, 1, true, 1) == 0) {
		rt_Decoder dc;
		Diag dg;
		diag_init(&dg);
		CHECK(rt_decoder_init(&dc, dec.e, &dg) == 0);
		fill_caches(dec.e, NAN);
		for (int64_t i = 0; i < CTX; i++) {
			const float *l = rt_decoder_step(&dc, tok[i], i, &dg);
			CHECK(l != NULL);
			if (l)
				memcpy(got + i * VOCAB, l, VOCAB * sizeof *l);
		}
		show_diag("decode", &dg);
		diag_free(&dg);
		CHECK_MSG(all_finite(got, CTX * VOCAB), "decode: NaN in the caches past pos "
			  "reaches the logits");
		CHECK_MSG(rel_err(got, want, CTX * VOCAB) < TOL, "decode over NaN caches vs "
			  "forward: %g", rel_err(got, want, CTX * VOCAB));
		rt_decoder_reset(&dc);
		run_close(&dec);
	}
	if (run_open(&chunk, s, 4, true, 2) == 0) {
		rt_Tensor tt, tp, tl;
		CHECK(rt_exec_tensor(chunk.e, "tokens", &tt) == 0 && rt_exec_tensor(chunk.e, "pos", &tp) == 0 &&
		      rt_exec_tensor(chunk.e, "logits", &tl) == 0);
		fill_caches(chunk.e, NAN);
		for (int64_t p = 0; p < CTX; p += 4) {
			memcpy(tt.data, tok + p, 4 * sizeof *tok);
			*(int32_t *)tp.data = (int32_t)p;
			rt_exec_run(chunk.e);
			memcpy(got + p * VOCAB, tl.data, 4 * VOCAB * sizeof(float));
		}
		CHECK_MSG(all_finite(got, CTX * VOCAB), "decode in chunks of 4: NaN in the caches "
			  "past pos reaches the logits");
		CHECK_MSG(rel_err(got, want, CTX * VOCAB) < TOL, "chunks over NaN caches vs "
			  "forward: %g", rel_err(got, want, CTX * VOCAB));
		fill_caches(chunk.e, 0);
		run_close(&chunk);
	}
	free(want);
	free(got);
	run_close(&full);
}

/* Decode mode with several new tokens per run (seq = 4): the prompt path a
 * prefill program would take. Chunks of 4 at pos 0, 4, ... give the full
 * forward program's logits row for row. */
static void test_decode_chunks(fe_Session *s)
{
	enum { T = 4 };
	Run full, dec;
	if (run_open(&full, s, CTX, false, 1))
		return;
	if (run_open(&dec, s, T, true, 2)) {
		run_close(&full);
		return;
	}
	float *want = malloc(CTX * VOCAB * sizeof *want), *got = malloc(CTX * VOCAB * sizeof *got);
	const int32_t *tok = tokens_full.data;
	forward(&full, tok, CTX, want);
	rt_Tensor tt, tp, tl;
	CHECK(rt_exec_tensor(dec.e, "tokens", &tt) == 0 && rt_numel(&tt) == T);
	CHECK(rt_exec_tensor(dec.e, "pos", &tp) == 0);
	CHECK(rt_exec_tensor(dec.e, "logits", &tl) == 0 && rt_numel(&tl) == T * VOCAB);
	for (int64_t p = 0; p < CTX; p += T) {
		memcpy(tt.data, tok + p, T * sizeof *tok);
		*(int32_t *)tp.data = (int32_t)p;
		rt_exec_run(dec.e);
		memcpy(got + p * VOCAB, tl.data, T * VOCAB * sizeof(float));
	}
	CHECK_MSG(rel_err(got, want, CTX * VOCAB) < TOL, "chunks of %d vs forward: %g", T,
		  rel_err(got, want, CTX * VOCAB));
	free(want);
	free(got);
	run_close(&dec);
	run_close(&full);
}

/* The decode graph through the interpreter, with the caches as caller-owned
 * state buffers kept across calls, against the compiled decode program. */
static void test_decode_interp(fe_Session *s)
{
	Run dec;
	if (run_open(&dec, s, 1, true, 1))
		return;
	Graph *g = dec.g;
	rt_TensorFile wf;
	Diag d;
	diag_init(&d);
	CHECK(rt_safetensors_read(WEIGHTS, &wf, &d) == 0);
	show_diag("weights", &d);
	double **val = calloc(ir_nnode(g), sizeof *val);
	double tokv = 0, posv = 0;
	int nstate = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		int64_t k = ir_numel(&n->shape);
		if (n->op == OP_PARAM) {
			const rt_NamedTensor *t = rt_tensorfile_find(&wf, ir_str(g, n->name));
			CHECK(t && rt_numel(&t->t) == k);
			val[v] = calloc((size_t)k, sizeof(double));
			for (int64_t i = 0; t && i < k; i++)
				val[v][i] = ((const float *)t->t.data)[i];
		} else if (n->op == OP_STATE) {
			val[v] = calloc((size_t)k, sizeof(double));
			nstate++;
		}
	}
	CHECK(nstate == 4);
	val[ir_find_input(g, "tokens")] = &tokv;
	val[ir_find_input(g, "pos")] = &posv;
	ValId out = VAL_NONE;
	for (size_t i = 0; i < g->out.len; i++)
		if (!strcmp(ir_str(g, VEC_AT(g->out, Output, i).name), "logits"))
			out = VEC_AT(g->out, Output, i).val;
	rt_Decoder dc;
	CHECK(rt_decoder_init(&dc, dec.e, &d) == 0);
	const int32_t *tok = tokens_full.data;
	float ref[VOCAB];
	for (int64_t i = 0; i < 6; i++) {
		tokv = tok[i];
		posv = (double)i;
		CHECK_MSG(ir_interp(g, val, &d) == 0, "%s", diag_text(&d));
		for (int j = 0; j < VOCAB; j++)
			ref[j] = (float)val[out][j];
		ir_interp_free(g, val);
		const float *l = rt_decoder_step(&dc, tok[i], i, &d);
		CHECK_MSG(l && rel_err(l, ref, VOCAB) < TOL, "interp vs decode at %lld: %g",
			  (long long)i, l ? rel_err(l, ref, VOCAB) : -1.0);
	}
	show_diag("interp", &d);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		int op = ir_node(g, v)->op;
		if (op == OP_PARAM || op == OP_STATE)
			free(val[v]);
	}
	free(val);
	rt_tensorfile_free(&wf);
	run_close(&dec);
}

static void test_greedy(fe_Session *s)
{
	Run full, dec;
	if (run_open(&full, s, CTX, false, 1))
		return;
	if (run_open(&dec, s, 1, true, 2)) {
		run_close(&full);
		return;
	}
	enum { NP = 8, NG = 12 };
	const int32_t *prompt = tokens_full.data;
	int32_t out[2][NG];
	rt_GenOpts o = {.sample = {.temperature = 0, .seed = 5}, .max_new = NG};
	rt_GenStats st;
	Diag d;
	diag_init(&d);
	for (int r = 0; r < 2; r++)
		CHECK(rt_generate(dec.e, prompt, NP, &o, out[r], &st, &d) == 0);
	show_diag("generate", &d);
	CHECK(st.nprompt == NP && st.ngen == NG);
	CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
	int32_t seq[CTX];
	memcpy(seq, prompt, NP * sizeof *seq);
	float *l = malloc(CTX * VOCAB * sizeof *l);
	int agree = 0;
	for (int i = 0; i < NG; i++) {
		forward(&full, seq, NP + i, l);
		int want = argmax(l + (NP + i - 1) * VOCAB, VOCAB);
		agree += want == out[0][i];
		seq[NP + i] = out[0][i];
	}
	CHECK_MSG(agree == NG, "greedy: %d of %d tokens equal the forward argmax", agree, NG);
	/* top_k 1 with any temperature is greedy too */
	int32_t k1[NG];
	o.sample = (rt_SampleOpts){.temperature = 1.5, .top_k = 1, .top_p = 1, .seed = 9};
	CHECK(rt_generate(dec.e, prompt, NP, &o, k1, &st, &d) == 0);
	CHECK(memcmp(k1, out[0], sizeof k1) == 0);
	free(l);
	diag_free(&d);
	run_close(&dec);
	run_close(&full);
}

static void test_sampling_seeds(fe_Session *s)
{
	Run dec;
	if (run_open(&dec, s, 1, true, 1))
		return;
	enum { NP = 4, NG = 40 };
	const int32_t *prompt = tokens_full.data;
	int32_t a[NG], b[NG], c[NG], p[NG];
	rt_GenOpts o = {.sample = {.temperature = 1.0, .top_k = 40, .top_p = 1, .seed = 1},
			.max_new = NG};
	rt_GenStats st;
	Diag d;
	diag_init(&d);
	CHECK(rt_generate(dec.e, prompt, NP, &o, a, &st, &d) == 0);
	CHECK(rt_generate(dec.e, prompt, NP, &o, b, &st, &d) == 0);
	o.sample.seed = 2;
	CHECK(rt_generate(dec.e, prompt, NP, &o, c, &st, &d) == 0);
	o.sample.top_p = 0.9;
	o.sample.top_k = 0;
	CHECK(rt_generate(dec.e, prompt, NP, &o, p, &st, &d) == 0);
	show_diag("sampling", &d);
	CHECK_MSG(memcmp(a, b, sizeof a) == 0, "the same seed gave different texts");
	CHECK_MSG(memcmp(a, c, sizeof a) != 0, "seeds 1 and 2 gave the same text");
	for (int i = 0; i < NG; i++)
		CHECK(a[i] >= 0 && a[i] < VOCAB && p[i] >= 0 && p[i] < VOCAB);
	run_close(&dec);
}

/* Prefill: the prompt in chunks of T = 24 through a second decode program
 * (ctx 64 = 24 + 24 + 16, so a prompt of 50 ends in a tail that cannot be
 * padded and goes through the one-token program), the caches handed over,
 * then decoding a token per run. Rows of the prefill program's logits
 * equal the token-by-token ones bit for bit, and generation gives the
 * same tokens with and without it. */
static void test_prefill(fe_Session *s)
{
	enum { T = 24, NG = 30 };
	Run dec, pre;
	if (run_open(&dec, s, 1, true, 1))
		return;
	if (run_open(&pre, s, T, true, 1)) {
		run_close(&dec);
		return;
	}
	const int32_t *tok = tokens_full.data;
	Diag d;
	diag_init(&d);
	rt_Decoder dc, pc;
	CHECK(rt_decoder_init(&dc, dec.e, &d) == 0 && rt_decoder_init(&pc, pre.e, &d) == 0);
	CHECK(pc.seq == T && pc.nseq == 1 && dc.seq == 1);
	/* Logits: two chunks against 48 single steps. */
	float *one = malloc(2 * T * VOCAB * sizeof *one), *chunk = malloc(2 * T * VOCAB * sizeof *chunk);
	rt_decoder_reset(&dc);
	for (int64_t i = 0; i < 2 * T; i++) {
		const float *l = rt_decoder_step(&dc, tok[i], i, &d);
		if (l)
			memcpy(one + i * VOCAB, l, VOCAB * sizeof *l);
	}
	for (int64_t c = 0; c < 2; c++) {
		int64_t at = c * T;
		const float *l = rt_decoder_run(&pc, tok + at, &at, &d);
		CHECK(l != NULL);
		if (l)
			memcpy(chunk + at * VOCAB, l, T * VOCAB * sizeof *l);
	}
	show_diag("prefill logits", &d);
	CHECK_MSG(memcmp(one, chunk, 2 * T * VOCAB * sizeof *one) == 0,
		  "prefill logits differ from the token-by-token ones (relative error %g)",
		  rel_err(chunk, one, 2 * T * VOCAB));
	free(one);
	free(chunk);
	/* Generation: prompt lengths around the chunk size, greedy and seeded
	 * sampling, the full context and a window of 40 (slides of 20). */
	static const int64_t np[] = {1, 13, 24, 48, 50, 64};
	static const rt_SampleOpts so[] = {
		{.temperature = 0},
		{.temperature = 0.9, .top_k = 40, .top_p = 0.95, .seed = 3},
	};
	static const int64_t win[] = {0, 40};
	for (size_t i = 0; i < sizeof np / sizeof *np; i++)
		for (int k = 0; k < 2; k++)
			for (int w = 0; w < 2; w++) {
				int32_t a[NG], b[NG];
				rt_GenStats sa, sb;
				rt_GenOpts o = {.sample = so[k], .max_new = NG, .window = win[w]};
				int ra = rt_generate(dec.e, tok, np[i], &o, a, &sa, &d);
				o.prefill = pre.e;
				int rb = rt_generate(dec.e, tok, np[i], &o, b, &sb, &d);
				CHECK(ra == 0 && rb == 0);
				CHECK_MSG(ra || rb || memcmp(a, b, sizeof a) == 0,
					  "prompt %lld, %s, window %lld: prefill changed the tokens",
					  (long long)np[i], k ? "sampling" : "greedy", (long long)win[w]);
				CHECK(sa.nprefill == 0 && sb.nprefill > 0 && sb.ngen == NG);
				CHECK(sa.nslide == sb.nslide);
				/* The 50-token prompt ends in an unpadded tail of 2;
				 * each slide of the 64-position context re-reads 32
				 * tokens, a chunk and a padded chunk. */
				if (np[i] == 50 && !win[w])
					CHECK_MSG(sb.nprefill == 48 + 32 * sb.nslide, "%lld",
						  (long long)sb.nprefill);
				int64_t fits = win[w] ? win[w] : CTX;
				CHECK((sb.nslide > 0) == (np[i] <= fits && np[i] + NG - 1 > fits) ||
				      np[i] > fits);
			}
	show_diag("prefill", &d);
	/* A prefill program of another model is refused. */
	Run other;
	if (run_open(&other, s, CTX, false, 1) == 0) {
		int32_t out[4];
		rt_GenStats st;
		rt_GenOpts o = {.max_new = 4, .prefill = other.e};
		CHECK(rt_generate(dec.e, tok, 4, &o, out, &st, &d) != 0);
		run_close(&other);
	}
	diag_free(&d);
	run_close(&pre);
	run_close(&dec);
}

/* Batches: three prompts of different lengths decoded together (batch 3,
 * one position per sequence), with and without prefill, greedy and seeded
 * sampling, the full context and a sliding window: each sequence gets the
 * tokens it gets alone with seed + its index. On 2 threads, so the batched
 * kernels' splits are exercised too. */
static void test_batch(fe_Session *s)
{
	enum { B = 3, NG = 40, T = 24 };
	Run one, pre, bat;
	if (run_open(&one, s, 1, true, 2) || run_open(&pre, s, T, true, 2))
		return;
	cur_batch = B;
	int rc = run_open(&bat, s, 1, true, 2);
	cur_batch = 1;
	if (rc)
		return;
	const int32_t *tok = tokens_full.data;
	const int32_t *prompt[B] = {tok, tok + 5, tok + 20};
	const int64_t np[B] = {3, 30, 11};
	static const rt_SampleOpts so[] = {
		{.temperature = 0},
		{.temperature = 0.9, .top_k = 40, .top_p = 0.95, .seed = 11},
	};
	Diag d;
	diag_init(&d);
	for (int k = 0; k < 2; k++)
		for (int w = 0; w < 2; w++)
			for (int p = 0; p < 2; p++) {
				int32_t got[B][NG], alone[NG];
				int32_t *outs[B] = {got[0], got[1], got[2]};
				rt_GenStats st;
				rt_GenOpts o = {.sample = so[k], .max_new = NG, .window = w ? 40 : 0,
						.prefill = p ? pre.e : NULL};
				CHECK(rt_generate_batch(bat.e, B, prompt, np, &o, outs, &st, &d) == 0);
				CHECK(st.ngen == B * NG && st.nprompt == 3 + 30 + 11);
				if (w)
					CHECK(st.nslide > 0);
				for (int b = 0; b < B; b++) {
					rt_GenOpts a = o;
					a.sample.seed += (uint64_t)b;
					a.prefill = NULL;
					CHECK(rt_generate(one.e, prompt[b], np[b], &a, alone, &st, &d) == 0);
					CHECK_MSG(memcmp(alone, got[b], sizeof alone) == 0,
						  "sequence %d (%s, window %d, prefill %d) differs from "
						  "its tokens alone", b, k ? "sampling" : "greedy",
						  w ? 40 : 0, p);
				}
			}
	/* A batch of one prompt per sequence is required. */
	int32_t x[4];
	int32_t *xo[1] = {x};
	rt_GenStats st;
	rt_GenOpts o = {.max_new = 4};
	CHECK(rt_generate_batch(bat.e, 1, prompt, np, &o, xo, &st, &d) != 0);
	show_diag("batch", &d);
	diag_free(&d);
}

static void test_limits(fe_Session *s)
{
	Run dec, full;
	if (run_open(&dec, s, 1, true, 1))
		return;
	rt_Decoder dc;
	Diag d;
	diag_init(&d);
	CHECK(rt_decoder_init(&dc, dec.e, &d) == 0);
	CHECK(rt_decoder_step(&dc, 1, CTX, &d) == NULL);
	CHECK(rt_decoder_step(&dc, 1, -1, &d) == NULL);
	CHECK(rt_decoder_step(&dc, VOCAB, 0, &d) == NULL);
	CHECK(strstr(diag_text(&d), "outside the context") != NULL);
	diag_free(&d);
	diag_init(&d);
	const int32_t *prompt = tokens_full.data;
	int32_t out[CTX];
	/* The last new token is never fed back, so 10 + (CTX - 9) tokens
	 * fill the caches exactly. */
	rt_GenOpts o = {.sample = {.temperature = 0}, .max_new = CTX - 9};
	rt_GenStats st;
	CHECK_MSG(rt_generate(dec.e, prompt, 10, &o, out, &st, &d) == 0, "%s", diag_text(&d));
	CHECK(st.ngen == CTX - 9 && st.nslide == 0);
	/* One more token than fits: the window slides once, to its last half,
	 * and the last token is chosen from a fresh read of that half. */
	int32_t slid[CTX + 1];
	o.max_new = CTX - 8;
	CHECK_MSG(rt_generate(dec.e, prompt, 10, &o, slid, &st, &d) == 0, "%s", diag_text(&d));
	CHECK(st.ngen == CTX - 8 && st.nslide == 1);
	CHECK(memcmp(slid, out, sizeof(int32_t) * (CTX - 9)) == 0);
	CHECK(rt_generate(dec.e, prompt, 0, &o, out, &st, &d) != 0);    /* empty prompt */
	diag_free(&d);
	diag_init(&d);
	/* a forward program has no caches: not a decoder */
	if (run_open(&full, s, CTX, false, 1) == 0) {
		CHECK(rt_decoder_init(&dc, full.e, &d) != 0);
		CHECK(strstr(diag_text(&d), "decode mode") != NULL);
		run_close(&full);
	}
	diag_free(&d);
	run_close(&dec);
}

/* In normal mode kv_cache is the identity: the graph is the one of the
 * same model without the call, node for node. */
static void test_identity_when_not_decoding(fe_Session *s)
{
	const char *with =
		"model m(ctx = 8) {\n"
		"  input x: f32[2, 3, 4, 5]\n"
		"  k, v = kv_cache(x, x * 2.0, ctx) as cache\n"
		"  output y = k + v\n"
		"}\n";
	const char *without =
		"model m(ctx = 8) {\n"
		"  input x: f32[2, 3, 4, 5]\n"
		"  k = x\n"
		"  v = x * 2.0\n"
		"  output y = k + v\n"
		"}\n";
	fe_Options fo = {.no_prelude = true};
	Graph *a = NULL, *b = NULL, *c = NULL;
	Diag d;
	diag_init(&d);
	CHECK(fe_compile_string(s, "a.msw", with, &fo, &a, &d) == 0);
	CHECK(fe_compile_string(s, "b.msw", without, &fo, &b, &d) == 0);
	show_diag("identity", &d);
	if (a && b) {
		Hash128 ha = ir_hash(a), hb = ir_hash(b);
		CHECK(ha.lo == hb.lo && ha.hi == hb.hi);
	}
	/* decode mode: two states, two writes, the pos input */
	fo.decode = true;
	CHECK(fe_compile_string(s, "c.msw", with, &fo, &c, &d) == 0);
	show_diag("decode", &d);
	if (c) {
		ValId k = ir_find_state(c, "cache.k"), v = ir_find_state(c, "cache.v");
		CHECK(k != VAL_NONE && v != VAL_NONE);
		CHECK(k != VAL_NONE && ir_node(c, k)->shape.dim[2] == 8);
		CHECK(ir_find_input(c, "pos") != VAL_NONE);
	}
	ir_graph_destroy(a);
	ir_graph_destroy(b);
	ir_graph_destroy(c);
	/* decode-mode errors: no context, a context shorter than the step, two
	 * caches of one name */
	const char *bad[] = {
		"model m() {\n  input x: f32[1, 2, 3, 4]\n  k, v = kv_cache(x, x, 0)\n  output y = k\n}\n",
		"model m() {\n  input x: f32[1, 2, 3, 4]\n  k, v = kv_cache(x, x, 2)\n  output y = k\n}\n",
		"model m() {\n  input x: f32[1, 2, 3, 4]\n  k, v = kv_cache(x, x, 8)\n"
		"  k, v = kv_cache(k, v, 8)\n  output y = k\n}\n",
	};
	const char *want[] = {"needs the context length", "is shorter than", "is made twice"};
	for (int i = 0; i < 3; i++) {
		Graph *g = NULL;
		CHECK(fe_compile_string(s, "bad.msw", bad[i], &fo, &g, &d) != 0);
		CHECK_MSG(strstr(diag_text(&d), want[i]) != NULL, "%s", diag_text(&d));
		ir_graph_destroy(g);
		diag_free(&d);
		diag_init(&d);
	}
	diag_free(&d);
}

int main(void)
{
	Diag d;
	diag_init(&d);
	char path[1024];
	snprintf(path, sizeof path, "%s/tokens_full.npy", FIXTURE_DIR);
	CHECK(rt_npy_read(path, &tokens_full, &d) == 0);
	snprintf(path, sizeof path, "%s/logits_full.npy", FIXTURE_DIR);
	have_fixture = rt_npy_read(path, &logits_full, &d) == 0;
	show_diag("fixtures", &d);
	diag_free(&d);
	if (rt_numel(&tokens_full) != CTX) {
		CHECK_MSG(0, "tokens_full.npy must hold %d tokens", CTX);
		return check_report();
	}
	fe_Session *s = fe_session_create();
	RUN_ARG(test_decode_matches_full, s);
	RUN_ARG(test_decode_chunks, s);
	RUN_ARG(test_masked_positions, s);
	RUN_ARG(test_decode_interp, s);
	RUN_ARG(test_greedy, s);
	RUN_ARG(test_sampling_seeds, s);
	RUN_ARG(test_prefill, s);
	RUN_ARG(test_batch, s);
	RUN_ARG(test_limits, s);
	RUN_ARG(test_identity_when_not_decoding, s);
	for (int i = 0; i < nshared; i++)
		destroy(&shared[i].r);
	fe_session_destroy(s);
	rt_tensor_free(&tokens_full);
	rt_tensor_free(&logits_full);
	return check_report();
}

/* bench_decode.c: `mswc bench decode MODEL [-D ...] [--threads N]
 *                  [--sparsity S] [--weights F] [--prompt P] [-n N]
 *                  [--reps R] [--buffer-mib M] [--torch]`
 *
 * Generation's speed against what bounds it, measured in one run
 * (docs/performance.md, "Decode"), on 1 thread and on N (default: every
 * core):
 *   1. the read bandwidth: a sum over a buffer four times the last-level
 *      cache the machine reports, at least 256 MiB (--buffer-mib), so that
 *      it streams from memory; and over as many bytes as a decode step
 *      reads, which tells whether those stay in a cache;
 *   2. batch-1 decode, ms per token, in windows of n tokens (-n, default
 *      32) at positions P, P+2n, P+4n (P = --prompt, default 32): a prompt
 *      of that many tokens read through the prefill program, then greedy
 *      decoding through rt_generate, the loop of `mswc generate`, timed
 *      from one chosen token to the next; against the floor: the bytes a
 *      token reads over the bandwidth of (1);
 *   3. prefill: tokens/s of one run of the prompt program over 128 tokens;
 *   4. batched decode: tokens/s of N = 1, 4, 16 sequences decoded together
 *      (16 runs of the batched decode program from position P);
 *   5. with --sparsity S or a checkpoint with masks, the same for the sparse
 *      model, and its decode time over the dense model's (the two models'
 *      repetitions alternate, so a busy spell on the machine slows both);
 *   6. with --torch, PyTorch's decode and prefill on the same sizes
 *      (tools/bench_torch.py --decode), skipped when torch is not there.
 *
 * The bytes a token reads: every parameter the decode program reads in
 * full, except those it only gathers from (the position embedding: one
 * row); a sparse weight as its kept values and a 4-byte index each (what
 * compressed rows read; the floor is that of a sparse kernel, whichever
 * kernel the cost model picked); and every KV cache in full (the attention
 * reads all ctx rows and masks those past pos, docs/generation.md).
 * Parameters are random (rt_init_params, seed 1, as `mswc init`) unless
 * --weights gives them. Every figure is the best of R repetitions (--reps,
 * default 3), since other processes on the machine only ever make a run
 * slower; no repetition starts once a measurement has taken 1.5 s, so a
 * slow model costs one. */
#include "tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NTHR = 2, NWIN = 3, NBATCH = 3, MAX_VARIANTS = 2,
       PREFILL_T = 128,   /* prompt tokens per run of the prefill program */
       BATCH_RUNS = 16 }; /* decode runs timed per batch */
/* A measurement repeats up to --reps times but starts no repetition after
 * this long, so a slow (sparse) model does not make the run slow. */
static const double BUDGET_S = 1.5;

/* The decode program, the prompt's, and the batched decode programs. */
enum { PR_DECODE, PR_PREFILL, PR_B4, PR_B16, PR_COUNT };
static const int batch_n[NBATCH] = {1, 4, 16};
static const int batch_prog[NBATCH] = {PR_DECODE, PR_B4, PR_B16};

typedef struct DecodeBench {
	Args args;
	const char *weights;
	int64_t prompt, n, buffer_mib;
	int reps;
	bool torch;
	int threads[NTHR], nthr;
	rt_TensorFile wf;
	PruneTensor *masks;
	int nmasks;
	double compile_s;
} DecodeBench;

/* What one token reads (see the header). */
typedef struct TokenBytes {
	double weights, kv;
	int64_t numel;            /* parameters' elements */
	int64_t nmasked, nspmm;   /* sparse weights; those on a sparse kernel */
	int64_t masked_numel, kept;
} TokenBytes;

typedef struct Variant {
	char label[32];
	Args args;
	Build b[PR_COUNT];
	bool built[PR_COUNT];
	int64_t ctx, prefill_t;   /* prompt tokens per run of PR_PREFILL */
	/* The masks of the first program, given to the others: drawing them
	 * again would take seconds at 25 M weights. Point into b[PR_DECODE]. */
	PruneTensor *masks;
	int nmasks;
	TokenBytes tb;
	/* results per thread count; NAN: not measured */
	double win_ms[NTHR][NWIN];
	double prefill_tps[NTHR];
	double batch_tps[NTHR][NBATCH];
} Variant;

static int extra(Args *a, int argc, char **argv, int i)
{
	DecodeBench *o = a->user;
	const char *v;
	long long x;
	int j = i;
	if ((v = args_value(argc, argv, &j, "--weights"))) {
		o->weights = v;
	} else if ((v = args_value(argc, argv, &j, "--prompt"))) {
		if (args_int("bench decode", "--prompt", v, 1, 1 << 20, &x))
			return -1;
		o->prompt = x;
	} else if ((v = args_value(argc, argv, &j, "-n"))) {
		if (args_int("bench decode", "-n", v, 2, 1 << 20, &x))
			return -1;
		o->n = x;
	} else if ((v = args_value(argc, argv, &j, "--reps"))) {
		if (args_int("bench decode", "--reps", v, 1, 1000, &x))
			return -1;
		o->reps = (int)x;
	} else if ((v = args_value(argc, argv, &j, "--buffer-mib"))) {
		if (args_int("bench decode", "--buffer-mib", v, 1, 1 << 20, &x))
			return -1;
		o->buffer_mib = x;
	} else if (!strcmp(argv[i], "--torch")) {
		o->torch = true;
	} else {
		return 0;
	}
	return j - i + 1;
}

/* ---- 1. read bandwidth ---- */

typedef float Vec16 __attribute__((vector_size(64)));

/* One task per thread sums its contiguous part. Four independent vector
 * accumulators keep loads in flight; the clones give the widest vectors
 * the CPU has (the build targets baseline x86-64, whose 16-byte SSE2 loop
 * reads memory at half the rate an AVX-512 core can). */
typedef struct SumJob {
	float *x;
	int64_t n;       /* floats; a sum's are a multiple of 64 * ntask */
	int ntask;
	float part[256];
	bool fill;       /* first touch instead of a sum */
} SumJob;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static float sum_range(const float *x, int64_t n)
{
	const Vec16 *v = (const Vec16 *)x;
	Vec16 a = {0}, b = {0}, c = {0}, d = {0};
	for (int64_t i = 0; i + 4 <= n / 16; i += 4) {
		a += v[i];
		b += v[i + 1];
		c += v[i + 2];
		d += v[i + 3];
	}
	a += b + c + d;
	float s = 0;
	for (int i = 0; i < 16; i++)
		s += a[i];
	return s;
}

static void sum_task(void *const *buf, int64_t lo, int64_t hi)
{
	SumJob *j = buf[0];
	int64_t part = j->n / j->ntask;
	for (int64_t t = lo; t < hi; t++) {
		float *x = j->x + t * part;
		int64_t len = t == j->ntask - 1 ? j->n - t * part : part;
		if (j->fill)
			for (int64_t i = 0; i < len; i++)
				x[i] = 1.0f;
		else
			j->part[t] = sum_range(x, len);
	}
}

typedef struct SumRun {
	rt_Pool *pool;
	SumJob *job;
} SumRun;

static void run_sum(void *arg)
{
	SumRun *r = arg;
	void *buf[1] = {r->job};
	rt_pool_run(r->pool, sum_task, buf, r->job->ntask);
}

/* GB/s of the sum over the first `bytes` of x on pool's threads. */
static double bandwidth(rt_Pool *pool, float *x, int64_t bytes, int reps)
{
	int threads = rt_pool_size(pool);
	SumJob job = {.x = x, .ntask = threads};
	job.n = bytes / 4 / (64 * threads) * (64 * threads);
	SumRun r = {pool, &job};
	BenchTimed t = {.fn = run_sum, .arg = &r};
	bench_best(&t, 1, reps);
	return (double)job.n * 4 / t.best * 1e-9;
}

/* ---- 2-4. the model ---- */

static int64_t prog_ctx(const rt_Program *p)
{
	int64_t ctx = -1;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_STATE && s->rank >= 2 && (ctx < 0 || s->dim[s->rank - 2] < ctx))
			ctx = s->dim[s->rank - 2];
	}
	return ctx;
}

static void token_bytes(const Graph *g, TokenBytes *tb)
{
	uint32_t n = ir_nnode(g);
	ValId *root = mem_alloc((n ? n : 1) * sizeof *root);
	uint8_t *use = mem_calloc(n ? n : 1, 1);     /* 1: read whole, 2: by spmm */
	int64_t *rows = mem_calloc(n ? n : 1, sizeof *rows);   /* gathered */
	memset(tb, 0, sizeof *tb);
	if (!root || !use || !rows)
		goto done;
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		bool view = ir_op[x->op].flags & OPF_VIEW;
		root[v] = view ? root[ir_operand(g, x, 0)] : v;
		for (uint32_t i = 0; !view && i < x->narg; i++) {
			ValId r = root[ir_operand(g, x, i)];
			if (ir_node(g, r)->op != OP_PARAM)
				continue;
			if (x->op == OP_GATHER && i == 0)
				rows[r] += ir_numel(&x->shape) / x->shape.dim[x->shape.rank - 1];
			else
				use[r] |= x->op == OP_SPMM && i == 1 ? 2 : 1;
		}
	}
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		double bytes = (double)ir_numel(&x->shape) * ir_dtype_size((DType)x->dtype);
		if (x->op == OP_STATE) {
			tb->kv += bytes;
			continue;
		}
		if (x->op != OP_PARAM)
			continue;
		tb->numel += ir_numel(&x->shape);
		const Mask *m = ir_find_mask(g, v);
		if (m && m->nkept >= 0) {
			tb->nmasked++;
			tb->nspmm += (use[v] & 2) != 0;
			tb->masked_numel += ir_numel(&x->shape);
			tb->kept += m->nkept;
			tb->weights += (double)m->nkept * (ir_dtype_size((DType)x->dtype) + 4);
		} else if (use[v]) {
			tb->weights += bytes;
		} else {
			int64_t row = x->shape.rank ? x->shape.dim[x->shape.rank - 1] : 1;
			tb->weights += fmin(bytes, (double)(rows[v] * row) * ir_dtype_size((DType)x->dtype));
		}
	}
done:
	mem_free(root);
	mem_free(use);
	mem_free(rows);
}

static int build_prog(DecodeBench *o, Variant *v, int which)
{
	int64_t nseq = which == PR_B4 ? 4 : which == PR_B16 ? 16 : 1;
	fe_InputShape shape[2] = {{.name = "tokens", .rank = 2, .dim = {nseq, 1}},
				  {.name = "pos", .rank = 1, .dim = {nseq}}};
	int nshape = 2;
	if (which == PR_PREFILL) {
		shape[0].dim[1] = v->prefill_t;
		nshape = 1;   /* pos: the scalar of one sequence */
	}
	bool dense = v->args.dense, first = which == PR_DECODE;
	BuildOptions bo = {.args = &v->args, .input = shape, .ninput = nshape, .decode = true,
			   .stage = STAGE_PROGRAM, .seed = 1};
	if (!dense) {
		bo.masks = first ? o->masks : v->masks;
		bo.nmasks = first ? o->nmasks : v->nmasks;
	}
	double t0 = now_seconds();
	int rc = build_run(&v->b[which], &bo);
	o->compile_s += now_seconds() - t0;
	v->built[which] = true;
	return rc;
}

static int build_variant(DecodeBench *o, Variant *v)
{
	int rc = build_prog(o, v, PR_DECODE);
	if (rc)
		return rc;
	v->ctx = prog_ctx(v->b[PR_DECODE].prog);
	if (v->ctx < 2) {
		fprintf(stderr, "mswc bench decode: error: the model in decode mode keeps no KV "
			"cache (it needs a kv_cache in its attention)\n");
		return EXIT_FAIL;
	}
	v->prefill_t = v->ctx < PREFILL_T ? v->ctx : PREFILL_T;
	const Graph *g = v->b[PR_DECODE].g;
	token_bytes(g, &v->tb);
	if (g->mask.len && !(v->masks = mem_calloc(g->mask.len, sizeof *v->masks)))
		return EXIT_FAIL;
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const Node *p = ir_node(g, m->param);
		v->masks[v->nmasks++] = (PruneTensor){ir_str(g, p->name), m->bits,
						      ir_numel(&p->shape)};
	}
	for (int p = PR_PREFILL; p < PR_COUNT; p++)
		if ((rc = build_prog(o, v, p)))
			return rc;
	return 0;
}

/* The parameters of `from` (same model, another batch or token count)
 * into `to`; the masks were compiled from the same seed, so they agree. */
static int copy_params(rt_Exec *to, rt_Exec *from, Diag *d)
{
	const rt_Program *pt = rt_exec_program(to), *pf = rt_exec_program(from);
	uint8_t *at = rt_exec_arena(to), *af = rt_exec_arena(from);
	for (size_t i = 0; i < pt->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(pt->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM && s->kind != RT_SLOT_MASK)
			continue;
		const rt_Slot *f = rt_program_find(pf, s->name);
		if (!f || f->kind != s->kind || f->nbytes != s->nbytes ||
		    (s->kind == RT_SLOT_MASK && memcmp(at + s->offset, af + f->offset, (size_t)s->nbytes)))
			return diag_error(d, (SrcLoc){0}, "internal: the programs disagree on '%s'",
					  s->name);
		if (s->kind == RT_SLOT_PARAM)
			memcpy(at + s->offset, af + f->offset, (size_t)s->nbytes);
	}
	return 0;
}

typedef struct Clock {
	double *t;
	int64_t n, cap;
} Clock;

static void on_token(void *user, int seq, int32_t tok)
{
	(void)seq;
	(void)tok;
	Clock *c = user;
	if (c->n < c->cap)
		c->t[c->n++] = now_seconds();
}

/* Windows w = 0, 1, 2 of n tokens start at positions P + 2nw (a longer
 * prompt each), as many as fit the context. */
static int nwindows(const DecodeBench *o, const Variant *v)
{
	int w = 0;
	while (w < NWIN && o->prompt + 2 * o->n * w + o->n <= v->ctx)
		w++;
	return w;
}

static int64_t batch_runs(const DecodeBench *o, const Variant *v)
{
	int64_t r = v->ctx - o->prompt;
	return r < BATCH_RUNS ? r : BATCH_RUNS;
}

/* Batch-1 decode, one repetition: for each window w the prompt of P_w
 * tokens (prefilled), then n + 1 new tokens; from one chosen token to the
 * next is one run of the decode program and a greedy pick, at positions
 * P_w, P_w + 1, ... With warm, a short run whose times are dropped. */
static int time_windows(const DecodeBench *o, Variant *v, int k, rt_Exec *e, rt_Exec *pe,
			const int32_t *prompt, bool warm, Diag *d)
{
	int nw = warm ? 1 : nwindows(o, v);
	int64_t max_new = warm ? 2 : o->n + 1;
	Clock c = {.t = mem_alloc((size_t)max_new * sizeof(double)), .cap = max_new};
	int32_t *out = mem_alloc((size_t)max_new * sizeof *out);
	int rc = -1;
	if (!c.t || !out) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	rt_GenOpts go = {.max_new = max_new, .window = v->ctx, .prefill = pe,
			 .on_token = on_token, .user = &c};
	rt_GenStats st;
	for (int w = 0; w < nw; w++) {
		c.n = 0;
		if (rt_generate(e, prompt, o->prompt + 2 * o->n * w, &go, out, &st, d))
			goto done;
		double ms = (c.t[max_new - 1] - c.t[0]) / (double)(max_new - 1) * 1e3;
		if (!warm && (isnan(v->win_ms[k][w]) || ms < v->win_ms[k][w]))
			v->win_ms[k][w] = ms;
	}
	rc = 0;
done:
	mem_free(c.t);
	mem_free(out);
	return rc;
}

static int time_prefill(const DecodeBench *o, Variant *v, int k, rt_Exec *pe,
			const int32_t *prompt, Diag *d)
{
	rt_Decoder dc;
	if (rt_decoder_init(&dc, pe, d))
		return -1;
	memcpy(dc.tok, prompt, (size_t)dc.seq * sizeof *dc.tok);
	dc.pos[0] = 0;
	BenchTimed t = {.fn = bench_run_exec, .arg = pe};
	bench_best(&t, 1, o->reps < 3 ? 3 : o->reps);
	v->prefill_tps[k] = (double)dc.seq / t.best;
	return 0;
}

/* N sequences decoded together, one repetition: BATCH_RUNS runs of the
 * batched decode program at positions P, P+1, ... of every sequence, each
 * giving N tokens. Timed on the program alone, without prompts: what the
 * caches hold does not change the work (the attention reads all ctx
 * rows). */
static int time_batch(const DecodeBench *o, Variant *v, int k, int i, rt_Exec *e,
		      const int32_t *text, Diag *d)
{
	rt_Decoder dc;
	int64_t pos[16];
	int32_t tok[16];
	if (rt_decoder_init(&dc, e, d))
		return -1;
	int64_t runs = batch_runs(o, v);
	double t0 = now_seconds();
	for (int64_t r = 0; r < runs; r++) {
		for (int64_t q = 0; q < dc.nseq; q++) {
			pos[q] = o->prompt + r;
			tok[q] = text[o->prompt + r];
		}
		if (!rt_decoder_run(&dc, tok, pos, d))
			return -1;
	}
	double tps = (double)batch_n[i] * (double)runs / (now_seconds() - t0);
	if (isnan(v->batch_tps[k][i]) || tps > v->batch_tps[k][i])
		v->batch_tps[k][i] = tps;
	return 0;
}

/* Everything on one thread count: every variant's programs bound to the
 * pool, the parameters set once per variant (src[i]: variant i's decode
 * exec of the first thread count, kept for the next ones) and copied.
 * The variants' repetitions alternate, so that a busy spell on the
 * machine slows dense and sparse alike and their ratio holds. */
static int measure(DecodeBench *o, Variant *var, int nvar, int k, rt_Pool *pool,
		   const int32_t *prompt, rt_Exec **src)
{
	rt_Exec *e[MAX_VARIANTS][PR_COUNT] = {{0}};
	Diag d;
	diag_init(&d);
	int rc = EXIT_FAIL;
	for (int i = 0; i < nvar; i++) {
		Variant *v = &var[i];
		for (int p = 0; p < PR_COUNT; p++)
			if (rt_exec_create(v->b[p].prog, pool, &e[i][p], &d))
				goto done;
		if (!src[i] && (o->weights ? rt_load_params_from(e[i][0], &o->wf, o->weights, 0, &d)
					   : rt_init_params(e[i][0], 1))) {
			if (!o->weights)
				diag_error(&d, (SrcLoc){0}, "cannot initialise parameters");
			goto done;
		}
		for (int p = src[i] ? 0 : 1; p < PR_COUNT; p++)
			if (copy_params(e[i][p], src[i] ? src[i] : e[i][0], &d))
				goto done;
	}
#define PE(i) (var[i].prefill_t > 1 ? e[i][PR_PREFILL] : NULL)
	for (int i = 0; i < nvar; i++)
		if (time_windows(o, &var[i], k, e[i][PR_DECODE], PE(i), prompt, true, &d))
			goto done;
	double t0 = now_seconds();
	for (int r = 0; r < o->reps && (r == 0 || now_seconds() - t0 < BUDGET_S * nvar); r++)
		for (int i = 0; i < nvar; i++)
			if (time_windows(o, &var[i], k, e[i][PR_DECODE], PE(i), prompt, false, &d))
				goto done;
	for (int i = 0; i < nvar; i++)
		if (PE(i) && time_prefill(o, &var[i], k, PE(i), prompt, &d))
			goto done;
#undef PE
	for (int b = 0; b < NBATCH; b++) {
		t0 = now_seconds();
		for (int r = 0; r < o->reps && (r == 0 || now_seconds() - t0 < BUDGET_S * nvar); r++)
			for (int i = 0; i < nvar; i++)
				if (time_batch(o, &var[i], k, b, e[i][batch_prog[b]], prompt, &d))
					goto done;
	}
	rc = 0;
	for (int i = 0; i < nvar; i++)
		if (!src[i]) {
			src[i] = e[i][0];
			e[i][0] = NULL;
		}
done:
	if (rc)
		fprintf(stderr, "mswc bench decode: %s", diag_text(&d));
	diag_free(&d);
	for (int i = 0; i < nvar; i++)
		for (int p = 0; p < PR_COUNT; p++)
			rt_exec_destroy(e[i][p]);
	return rc;
}

/* ---- 6. PyTorch ---- */

typedef struct Torch {
	bool ran;
	char why[4400];              /* why it was skipped */
	char version[32];
	double win_ms[NTHR][NWIN];
	double prefill_tps[NTHR];
} Torch;

/* The sizes of a GPT shaped like models/gpt.msw, read off its decode
 * graph: wte.weight [vocab, d], wpe.weight [ctx, d], h.<i>.* blocks,
 * caches [1, heads, ctx, hd]. */
static bool gpt_sizes(const Graph *g, int64_t *vocab, int64_t *ctx, int64_t *d, int64_t *heads,
		      int64_t *layers)
{
	*vocab = *ctx = *d = *heads = *layers = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *x = ir_node(g, v);
		const char *name = x->name ? ir_str(g, x->name) : "";
		int layer;
		if (x->op == OP_PARAM && x->shape.rank == 2 && !strcmp(name, "wte.weight")) {
			*vocab = x->shape.dim[0];
			*d = x->shape.dim[1];
		} else if (x->op == OP_PARAM && x->shape.rank == 2 && !strcmp(name, "wpe.weight")) {
			*ctx = x->shape.dim[0];
		} else if (x->op == OP_PARAM && sscanf(name, "h.%d.", &layer) == 1 &&
			   layer + 1 > *layers) {
			*layers = layer + 1;
		} else if (x->op == OP_STATE && x->shape.rank == 4) {
			*heads = x->shape.dim[1];
		}
	}
	return *vocab && *ctx && *d && *heads && *layers;
}

/* tools/bench_torch.py: $MSW_TORCH_BENCH, else beside the source tree
 * this binary was built in (build/../tools), else ./tools. */
static void torch_script(char *path, size_t n)
{
	const char *env = getenv("MSW_TORCH_BENCH");
	if (env && *env) {
		snprintf(path, n, "%s", env);
		return;
	}
	char exe[4096];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len > 0) {
		exe[len] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(path, n, "%s/../tools/bench_torch.py", exe);
			if (!access(path, R_OK))
				return;
		}
	}
	snprintf(path, n, "tools/bench_torch.py");
}

static void run_torch(const DecodeBench *o, const Variant *v, Torch *t)
{
	int64_t vocab, ctx, dm, heads, layers;
	char script[4200];
	if (!gpt_sizes(v->b[PR_DECODE].g, &vocab, &ctx, &dm, &heads, &layers)) {
		snprintf(t->why, sizeof t->why, "the model is not shaped like models/gpt.msw");
		return;
	}
	torch_script(script, sizeof script);
	if (access(script, R_OK)) {
		snprintf(t->why, sizeof t->why, "%s not found (set MSW_TORCH_BENCH)", script);
		return;
	}
	for (int k = 0; k < o->nthr; k++) {
		char cmd[8192], line[512];
		snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 /usr/bin/python3 '%s' --decode "
			 "--vocab %lld --ctx %lld --d %lld --heads %lld --layers %lld --threads %d "
			 "--prompt %lld --gen-tokens %lld --windows %d --prefill %lld --repeat %d "
			 "2>&1", script, (long long)vocab, (long long)ctx, (long long)dm,
			 (long long)heads, (long long)layers, o->threads[k], (long long)o->prompt,
			 (long long)o->n, nwindows(o, v), (long long)v->prefill_t, o->reps);
		fflush(stdout);
		FILE *p = popen(cmd, "r");
		bool got = false;
		while (p && fgets(line, sizeof line, p)) {
			const char *s = strstr(line, "decode_ms=");
			if (strncmp(line, "torch ", 6) || !s)
				continue;
			sscanf(line + 6, "%31s", t->version);
			s += strlen("decode_ms=");
			for (int w = 0; w < nwindows(o, v); w++) {
				char *end;
				t->win_ms[k][w] = strtod(s, &end);
				s = *end == ',' ? end + 1 : end;
			}
			const char *pf = strstr(line, "prefill_tokens_per_s=");
			if (pf)
				t->prefill_tps[k] = strtod(pf + strlen("prefill_tokens_per_s="), NULL);
			got = true;
		}
		if (p)
			pclose(p);
		if (!got) {
			snprintf(t->why, sizeof t->why, "/usr/bin/python3 %s gave no figures (is "
				 "python3-torch installed?)", script);
			return;
		}
	}
	t->ran = true;
}

/* ---- the tables ---- */

static void print_mib(double bytes)
{
	if (bytes >= 1 << 30)
		printf("%.1f GiB", bytes / (1 << 30));
	else if (bytes >= 1 << 20)
		printf("%.0f MiB", bytes / (1 << 20));
	else
		printf("%.0f KiB", bytes / 1024);
}

static void print_model(const Variant *v)
{
	const TokenBytes *tb = &v->tb;
	printf("%s: %.2f M weights", v->label, (double)tb->numel / 1e6);
	if (tb->nmasked)
		printf(" (%.2f M of the %.2f M in %lld sparse weights kept; %lld of them on sparse "
		       "kernels)", (double)tb->kept / 1e6, (double)tb->masked_numel / 1e6,
		       (long long)tb->nmasked, (long long)tb->nspmm);
	printf("; a token reads %.1f MB of weights%s + %.1f MB of KV cache (ctx %lld) = %.1f MB\n",
	       tb->weights / 1e6, tb->nmasked ? " (kept values and 4-byte indices)" : "",
	       tb->kv / 1e6, (long long)v->ctx, (tb->weights + tb->kv) / 1e6);
}

static void thread_header(const DecodeBench *o, int width)
{
	for (int k = 0; k < o->nthr; k++) {
		char h[32];
		snprintf(h, sizeof h, "%d thread%s", o->threads[k], o->threads[k] == 1 ? "" : "s");
		printf(" %*s", width, h);
	}
	printf("\n");
}

static double mean_ms(const double *ms, int nw)
{
	double s = 0;
	for (int w = 0; w < nw; w++)
		s += ms[w];
	return s / nw;
}

static void print_decode(const DecodeBench *o, const Variant *var, int nvar, const Torch *t,
			 const double bw[2][NTHR])
{
	int nw = nwindows(o, &var[0]);
	printf("\nbatch-1 decode, ms/token: %lld tokens from position P (greedy, after a P-token "
	       "prompt)\n", (long long)o->n);
	printf("(floor: the bytes a token reads at the streaming bandwidth; /cached: over the "
	       "sum of as many bytes)\n");
	printf("%-8s %7s", "model", "threads");
	for (int w = 0; w < nw; w++) {
		char h[24];
		snprintf(h, sizeof h, "P=%lld", (long long)(o->prompt + 2 * w * o->n));
		printf(" %7s", h);
	}
	printf(" %7s %8s %7s %7s\n", "mean", "floor", "/floor", "/cached");
	for (int i = 0; i <= nvar; i++) {
		bool torch = i == nvar;
		if (torch && !t->ran)
			break;
		const Variant *v = &var[torch ? 0 : i];
		double bytes = v->tb.weights + v->tb.kv;
		for (int k = 0; k < o->nthr; k++) {
			const double *ms = torch ? t->win_ms[k] : v->win_ms[k];
			double mean = mean_ms(ms, nw), floor_ms = bytes / (bw[0][k] * 1e9) * 1e3;
			printf("%-8s %7d", torch ? "PyTorch" : v->label, o->threads[k]);
			for (int w = 0; w < nw; w++)
				printf(" %7.3f", ms[w]);
			printf(" %7.3f %8.3f %7.2f %7.2f\n", mean, floor_ms, mean / floor_ms,
			       mean / (bytes / (bw[1][k] * 1e9) * 1e3));
		}
	}
	if (nvar > 1) {
		printf("sparse/dense decode time (%s over %s):", var[1].label, var[0].label);
		for (int k = 0; k < o->nthr; k++)
			printf("%s %.2f at %d thread%s", k ? "," : "",
			       mean_ms(var[1].win_ms[k], nw) / mean_ms(var[0].win_ms[k], nw),
			       o->threads[k], o->threads[k] == 1 ? "" : "s");
		printf("\n");
	}
}

static void print_prefill(const DecodeBench *o, const Variant *var, int nvar, const Torch *t)
{
	printf("\nprefill: one run over a %lld-token prompt, tokens/s\n",
	       (long long)var[0].prefill_t);
	printf("%-8s", "model");
	thread_header(o, 10);
	for (int i = 0; i <= nvar; i++) {
		bool torch = i == nvar;
		if (torch && !t->ran)
			break;
		printf("%-8s", torch ? "PyTorch" : var[i].label);
		for (int k = 0; k < o->nthr; k++)
			printf(" %10.0f", torch ? t->prefill_tps[k] : var[i].prefill_tps[k]);
		printf("\n");
	}
}

static void print_batches(const DecodeBench *o, const Variant *var, int nvar)
{
	printf("\nbatched decode, tokens/s: N sequences together, %lld decode runs from position "
	       "%lld\n", (long long)batch_runs(o, &var[0]), (long long)o->prompt);
	printf("%-8s %4s", "model", "N");
	thread_header(o, 10);
	for (int i = 0; i < nvar; i++)
		for (int b = 0; b < NBATCH; b++) {
			printf("%-8s %4d", var[i].label, batch_n[b]);
			for (int k = 0; k < o->nthr; k++)
				printf(" %10.0f", var[i].batch_tps[k][b]);
			printf("\n");
		}
}

int cmd_bench_decode(int argc, char **argv)
{
	DecodeBench o = {.prompt = 32, .n = 32, .reps = 3};
	double t_start = now_seconds();
	o.args.cmd = "bench decode";
	o.args.user = &o;
	int rc = args_parse(&o.args, argc, argv, extra);
	if (rc)
		return rc;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int all = o.args.threads ? o.args.threads : (int)(ncpu > 0 ? ncpu : 1);
	if (all > 256)
		return usage_error("bench decode", "--threads: at most 256");
	o.threads[o.nthr++] = 1;
	if (all > 1)
		o.threads[o.nthr++] = all;

	Variant *var = mem_calloc(MAX_VARIANTS, sizeof *var);
	Torch torch = {0};
	float *buf = NULL;
	rt_Pool *pool[NTHR] = {0};
	int nvar = 0;
	Diag d;
	diag_init(&d);
	if (!var) {
		rc = EXIT_FAIL;
		goto done;
	}
	if (o.weights && weights_read(o.weights, &o.args, &o.wf, &o.masks, &o.nmasks, &d)) {
		fputs(diag_text(&d), stderr);
		rc = EXIT_FAIL;
		goto done;
	}
	/* The dense model always; the sparse one when asked for or given. */
	var[nvar].args = o.args;
	var[nvar].args.has_sparsity = false;
	var[nvar].args.dense = true;
	snprintf(var[nvar++].label, sizeof var->label, "dense");
	if (!o.args.dense && ((o.args.has_sparsity && o.args.sparsity > 0) || o.nmasks)) {
		var[nvar].args = o.args;
		nvar++;
	}
	for (int i = 0; i < nvar; i++) {
		Variant *v = &var[i];
		for (int k = 0; k < NTHR; k++) {
			v->prefill_tps[k] = NAN;
			for (int w = 0; w < NWIN; w++)
				v->win_ms[k][w] = NAN;
			for (int b = 0; b < NBATCH; b++)
				v->batch_tps[k][b] = NAN;
		}
		if ((rc = build_variant(&o, v)))
			goto done;
		if (i > 0) {
			double s = v->tb.masked_numel ?
					   1 - (double)v->tb.kept / (double)v->tb.masked_numel : 0;
			snprintf(v->label, sizeof v->label, "s=%.2f", s);
		}
	}
	if (nwindows(&o, &var[0]) < 1) {
		rc = usage_error("bench decode", "a %lld-token prompt and %lld new tokens do not fit "
				 "the context of %lld", (long long)o.prompt, (long long)o.n,
				 (long long)var[0].ctx);
		goto done;
	}

	char cpu[RATES_TEXT_MAX];
	int64_t cache[3];
	host_cpu_model(cpu, sizeof cpu);
	host_cache_sizes(cache);
	printf("mswc bench decode: %s", o.args.model);
	for (int i = 0; i < o.args.ndef; i++)
		printf(" -D %s=%s", o.args.def[i].name, o.args.def[i].value);
	printf(" on %s, ", cpu);
	for (int k = 0; k < o.nthr; k++)
		printf("%s%d", k ? " and " : "", o.threads[k]);
	printf(" thread%s, best of %d\ncaches (as the machine reports them): L1d ",
	       o.threads[o.nthr - 1] == 1 ? "" : "s", o.reps);
	print_mib((double)cache[0]);
	printf(", L2 ");
	print_mib((double)cache[1]);
	printf(", L3 ");
	print_mib((double)cache[2]);
	printf("\n");
	for (int i = 0; i < nvar; i++)
		print_model(&var[i]);
	fflush(stdout);

	/* 1. Four times the largest cache, at least 256 MiB. */
	int64_t llc = cache[2] > 0 ? cache[2] : cache[1];
	int64_t big = o.buffer_mib ? o.buffer_mib << 20 : 4 * llc;
	if (!o.buffer_mib && big < (256ll << 20))
		big = 256ll << 20;
	double tok = var[0].tb.weights + var[0].tb.kv;
	int64_t small = (int64_t)tok < big ? (int64_t)tok : big;
	double bw[2][NTHR];
	for (int k = 0; k < o.nthr; k++)
		if (!(pool[k] = rt_pool_create(o.threads[k]))) {
			fprintf(stderr, "mswc bench decode: error: cannot start %d threads\n",
				o.threads[k]);
			rc = EXIT_FAIL;
			goto done;
		}
	if (!(buf = mem_aligned((size_t)big, 64))) {
		fprintf(stderr, "mswc bench decode: error: cannot allocate %lld MiB for the "
			"bandwidth sum (--buffer-mib)\n", (long long)(big >> 20));
		rc = EXIT_FAIL;
		goto done;
	}
	{
		rt_Pool *fp = pool[o.nthr - 1];
		SumJob fill = {.x = buf, .n = big / 4, .ntask = rt_pool_size(fp), .fill = true};
		SumRun fr = {fp, &fill};
		run_sum(&fr);
	}
	for (int k = 0; k < o.nthr; k++) {
		bw[0][k] = bandwidth(pool[k], buf, big, 6 * o.reps + 2);
		bw[1][k] = bandwidth(pool[k], buf, small, 6 * o.reps + 2);
	}
	mem_aligned_free(buf);
	buf = NULL;
	printf("\nread bandwidth: a sum over the buffer, GB/s\n%-30s", "buffer");
	thread_header(&o, 10);
	char what[64];
	snprintf(what, sizeof what, "%lld MiB (%s)", (long long)(big >> 20),
		 o.buffer_mib ? "--buffer-mib" : "4 x L3, streaming");
	printf("%-30s", what);
	for (int k = 0; k < o.nthr; k++)
		printf(" %10.1f", bw[0][k]);
	snprintf(what, sizeof what, "%.1f MB (a token's bytes)", (double)small / 1e6);
	printf("\n%-30s", what);
	for (int k = 0; k < o.nthr; k++)
		printf(" %10.1f", bw[1][k]);
	printf("\n");
	fflush(stdout);

	/* 2-4. */
	/* Long enough for every window's prompt and the prefill figure's. */
	int64_t ntext = var[0].ctx;
	int32_t *prompt = mem_alloc((size_t)ntext * sizeof *prompt);
	if (!prompt) {
		rc = EXIT_FAIL;
		goto done;
	}
	static const char text[] = "The patient was admitted with acute chest pain and ";
	for (int64_t i = 0; i < ntext; i++)
		prompt[i] = (unsigned char)text[i % (int64_t)(sizeof text - 1)];
	rt_Exec *src[MAX_VARIANTS] = {0};
	for (int k = 0; k < o.nthr && !rc; k++)
		rc = measure(&o, var, nvar, k, pool[k], prompt, src);
	for (int i = 0; i < nvar; i++)
		rt_exec_destroy(src[i]);
	mem_free(prompt);
	if (rc)
		goto done;
	if (o.torch)
		run_torch(&o, &var[0], &torch);
	print_decode(&o, var, nvar, &torch, bw);
	print_prefill(&o, var, nvar, &torch);
	print_batches(&o, var, nvar);
	if (o.torch && torch.ran)
		printf("\nPyTorch: tools/bench_torch.py --decode, %s, dense, the same sizes and "
		       "prompt\n", torch.version);
	else if (o.torch)
		printf("\nPyTorch: skipped: %s\n", torch.why);
	printf("\n(%.1f s in all, %.1f s of it compiling)\n", now_seconds() - t_start, o.compile_s);
done:
	mem_aligned_free(buf);
	for (int k = 0; k < NTHR; k++)
		rt_pool_destroy(pool[k]);
	for (int i = 0; var && i < MAX_VARIANTS; i++) {
		for (int p = 0; p < PR_COUNT; p++)
			if (var[i].built[p])
				build_free(&var[i].b[p]);
		mem_free(var[i].masks);
	}
	mem_free(var);
	sparse_tensors_free(o.masks, o.nmasks);
	rt_tensorfile_free(&o.wf);
	diag_free(&d);
	return rc;
}

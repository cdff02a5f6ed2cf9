/* bench_sparse.c: `mswc bench sparse MODEL [-D ...] [--sparsity LIST]
 *                  [--batch B] [--seq T] [--threads N] [--reps R]
 *                  [--unroll-max NNZ] [--no-layers] [--no-model]`
 *
 * What sparsity buys, measured in one run (docs/performance.md):
 *   1. Per layer: for every distinct shape of the model's covered weights
 *      [K,N] and M = batch * seq rows, each product of a linear layer
 *      (forward y = x W, input gradient dx = dy W^T, weight gradient
 *      dW = x^T dy) at each sparsity, timed as
 *        dense     mswc's dense matmul (what a masked model runs),
 *        OpenBLAS  cblas_sgemm on the same shapes (when built with it),
 *        csr       the compressed-row kernel, transposes included (the
 *                  forward and input gradient pay T(x) or T(dy) and the
 *                  transpose back; the weight gradient shares them in a
 *                  training step, so its time is the kernel alone),
 *        unrolled  the code specialised to the pattern, when the pattern
 *                  has at most --unroll-max entries (LLVM time grows with
 *                  it: about 0.3 ms of compile time per entry),
 *      and the format the cost model picks.
 *   2. The whole model: a training step (forward, backward, AdamW) and an
 *      inference forward at each sparsity, with the cost model's choices,
 *      against the dense model (no masks at all).
 * Random masks with exactly round(s * numel) zeros (the prune pass's),
 * random data. Best of R repetitions, contenders interleaved. */
#include "tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MSW_HAVE_OPENBLAS
#include <cblas.h>
#endif

enum { MAX_SPARSITY = 16, MAX_WEIGHTS = 16 };

typedef struct SparseBench {
	Args args;
	double sparsity[MAX_SPARSITY];
	int nsparsity;
	int64_t batch, seq, unroll_max;
	int reps;
	bool layers, model;
	const SparseRates *rates;   /* the cost model's, NULL: none */
} SparseBench;

static int parse_list(const char *v, SparseBench *o)
{
	o->nsparsity = 0;
	while (*v) {
		char *end;
		double x = strtod(v, &end);
		if (end == v || !(x >= 0 && x < 1) || o->nsparsity == MAX_SPARSITY)
			return usage_error("bench sparse", "--sparsity expects fractions in [0, 1) "
					   "separated by commas");
		o->sparsity[o->nsparsity++] = x;
		v = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return usage_error("bench sparse", "--sparsity: bad list");
	}
	return 0;
}

static int extra(Args *a, int argc, char **argv, int i)
{
	SparseBench *o = a->user;
	const char *v;
	long long x;
	int j = i;
	if ((v = args_value(argc, argv, &j, "--batch"))) {
		if (args_int("bench sparse", "--batch", v, 1, 1 << 16, &x))
			return -1;
		o->batch = x;
	} else if ((v = args_value(argc, argv, &j, "--seq"))) {
		if (args_int("bench sparse", "--seq", v, 1, 1 << 16, &x))
			return -1;
		o->seq = x;
	} else if ((v = args_value(argc, argv, &j, "--reps"))) {
		if (args_int("bench sparse", "--reps", v, 1, 1000, &x))
			return -1;
		o->reps = (int)x;
	} else if ((v = args_value(argc, argv, &j, "--unroll-max"))) {
		if (args_int("bench sparse", "--unroll-max", v, 0, 1 << 30, &x))
			return -1;
		o->unroll_max = x;
	} else if ((v = args_value(argc, argv, &j, "--sparsity-list"))) {
		if (parse_list(v, o))
			return -1;
	} else if (!strcmp(argv[i], "--no-layers")) {
		o->layers = false;
	} else if (!strcmp(argv[i], "--no-model")) {
		o->model = false;
	} else {
		return 0;
	}
	return j - i + 1;
}

static void fill(float *x, int64_t n, uint64_t seed)
{
	for (int64_t i = 0; i < n; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		x[i] = (float)((double)(seed >> 40) / 16777216.0 - 0.5);
	}
}

/* ---- 1. per-layer products ---- */

typedef struct Product {
	Graph *g;
	rt_Program *p;
	rt_Exec *e;
} Product;

static void product_free(Product *q)
{
	rt_exec_destroy(q->e);
	rt_program_destroy(q->p);
	ir_graph_destroy(q->g);
	memset(q, 0, sizeof *q);
}

/* [M, F] to feature-major blocks [M/B, F, B] and back (sparse_lower.c). */
static ValId to_blocks(Graph *g, ValId x, int64_t B, Diag *d)
{
	static const uint8_t swap[3] = {0, 2, 1};
	const Shape *s = &ir_node(g, x)->shape;
	Shape s3 = {.rank = 3, .dim = {s->dim[0] / B, B, s->dim[1]}};
	x = ir_reshape(g, x, &s3, (SrcLoc){0}, d);
	return x == VAL_NONE ? x : ir_permute(g, x, swap, (SrcLoc){0}, d);
}

static ValId from_blocks(Graph *g, ValId x, Diag *d)
{
	static const uint8_t swap[3] = {0, 2, 1};
	x = ir_permute(g, x, swap, (SrcLoc){0}, d);
	if (x == VAL_NONE)
		return x;
	const Shape *s = &ir_node(g, x)->shape;
	Shape s2 = {.rank = 2, .dim = {s->dim[0] * s->dim[1], s->dim[2]}};
	return ir_reshape(g, x, &s2, (SrcLoc){0}, d);
}

/* Product p of W [K,N] over M rows: dense (bits NULL) or sparse in format f. */
static int product_build(Product *q, SparseProduct p, int64_t M, int64_t K, int64_t N,
			 const uint8_t *bits, SparseFormat f, rt_Pool *pool, Diag *d)
{
	SrcLoc loc = {0};
	memset(q, 0, sizeof *q);
	Graph *g = q->g = ir_graph_create();
	Shape sx = {.rank = 2, .dim = {M, K}}, sy = {.rank = 2, .dim = {M, N}};
	Shape sw = {.rank = 2, .dim = {K, N}};
	ValId x = ir_input(g, "x", DT_F32, &sx, loc, d), dy = ir_input(g, "dy", DT_F32, &sy, loc, d);
	ValId w = ir_param(g, "w", &sw, INIT_ZEROS, 0, loc, d), out = VAL_NONE;
	if (x == VAL_NONE || dy == VAL_NONE || w == VAL_NONE)
		return -1;
	if (!bits) {
		out = p == SPP_FORWARD ? ir_matmul(g, x, w, 0, loc, d) :
		      p == SPP_INPUT_GRAD ? ir_matmul(g, dy, w, NF_TRANS_B, loc, d) :
					    ir_matmul(g, x, dy, NF_TRANS_A, loc, d);
	} else {
		Mask *m = ir_set_mask(g, w, 0, SD_UNIFORM);
		if (!m || ir_mask_set_bits(m, bits, K * N))
			return diag_error(d, loc, "out of memory");
		unsigned fl = f == SPF_UNROLLED ? NF_UNROLLED : 0;
		int64_t B = M % 128 == 0 ? 128 : M % 64 == 0 ? 64 : M;   /* sparse_lower's blocks */
		if (p == SPP_WEIGHT_GRAD) {
			Shape tx = {.rank = 3, .dim = {M / B, K, B}}, ty = {.rank = 3, .dim = {M / B, N, B}};
			ValId xt = ir_input(g, "xt", DT_F32, &tx, loc, d);
			ValId yt = ir_input(g, "dyt", DT_F32, &ty, loc, d);
			out = ir_sddmm(g, xt, yt, w, loc, d);
		} else {
			ValId a = to_blocks(g, p == SPP_FORWARD ? x : dy, B, d);
			ValId s = ir_spmm(g, a, w, fl | (p == SPP_INPUT_GRAD ? NF_TRANS_B : 0), loc, d);
			out = s == VAL_NONE ? s : from_blocks(g, s, d);
		}
	}
	PassOptions po = {.alignment = RT_ALIGN};
	if (out == VAL_NONE || ir_set_output(g, "out", out) || pass_plan_memory(g, &po, d) ||
	    be_build_program(g, NULL, &q->p, d) || rt_exec_create(q->p, pool, &q->e, d))
		return -1;
	static const char *const in[] = {"x", "dy", "w", "xt", "dyt"};
	for (int i = 0; i < 5; i++) {
		rt_Tensor t;
		if (!rt_exec_tensor(q->e, in[i], &t))
			fill(t.data, rt_numel(&t), 0x9e3779b97f4a7c15ull + (uint64_t)i);
	}
	return 0;
}

#ifdef MSW_HAVE_OPENBLAS
typedef struct Blas {
	SparseProduct p;
	int M, K, N;
	float *x, *dy, *w, *out;
} Blas;

static void run_blas(void *arg)
{
	Blas *b = arg;
	if (b->p == SPP_FORWARD)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->M, b->N, b->K, 1, b->x,
			    b->K, b->w, b->N, 0, b->out, b->N);
	else if (b->p == SPP_INPUT_GRAD)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->M, b->K, b->N, 1, b->dy,
			    b->N, b->w, b->N, 0, b->out, b->K);
	else
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b->K, b->N, b->M, 1, b->x,
			    b->K, b->dy, b->N, 0, b->out, b->N);
}
#endif

/* The prune pass's random mask: exactly round(s * n) zeros. */
static uint8_t *random_mask(int64_t n, double s, uint64_t seed)
{
	uint8_t *bits = mem_alloc((size_t)n);
	if (!bits)
		return NULL;
	int64_t zeros = llround(s * (double)n);
	for (int64_t i = 0; i < n; i++)
		bits[i] = i >= zeros;
	for (int64_t i = n - 1; i > 0; i--) {   /* Fisher-Yates */
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		int64_t j = (int64_t)(seed % (uint64_t)(i + 1));
		uint8_t t = bits[i];
		bits[i] = bits[j];
		bits[j] = t;
	}
	return bits;
}

static double time_exec(rt_Exec *e, int reps)
{
	BenchTimed t = {.fn = bench_run_exec, .arg = e};
	bench_best(&t, 1, reps);
	return t.best;
}

/* One row of the table: product p of [K,N] at sparsity s. */
static int bench_product(const SparseBench *o, rt_Pool *pool, SparseProduct p, int64_t K,
			 int64_t N, double s)
{
	int64_t M = o->batch * o->seq;
	uint8_t *bits = random_mask(K * N, s, 0x2545f4914f6cdd1dull + (uint64_t)(K * 131 + N));
	if (!bits)
		return EXIT_INTERNAL;
	int64_t nnz = 0;
	for (int64_t i = 0; i < K * N; i++)
		nnz += bits[i];
	Diag d;
	diag_init(&d);
	double t[4] = {NAN, NAN, NAN, NAN};   /* dense, blas, csr, unrolled */
	Product q;
	int rc = 0;
	if (product_build(&q, p, M, K, N, NULL, SPF_MASKED, pool, &d))
		rc = -1;
	else
		t[0] = time_exec(q.e, o->reps);
#ifdef MSW_HAVE_OPENBLAS
	if (!rc) {
		rt_Tensor x, dy, w, out;
		rt_exec_tensor(q.e, "x", &x);
		rt_exec_tensor(q.e, "dy", &dy);
		rt_exec_tensor(q.e, "w", &w);
		rt_exec_tensor(q.e, "out", &out);
		float *c = mem_aligned((size_t)rt_nbytes(&out), RT_ALIGN);
		Blas b = {p, (int)M, (int)K, (int)N, x.data, dy.data, w.data, c};
		BenchTimed bt = {.fn = run_blas, .arg = &b};
		if (c)
			bench_best(&bt, 1, o->reps);
		t[1] = c ? bt.best : NAN;
		mem_aligned_free(c);
	}
#endif
	product_free(&q);
	for (int f = SPF_CSR; !rc && f < SPF_COUNT; f++) {
		if (f == SPF_UNROLLED && (p == SPP_WEIGHT_GRAD || nnz > o->unroll_max))
			continue;
		if (product_build(&q, p, M, K, N, bits, (SparseFormat)f, pool, &d))
			rc = -1;
		else
			t[f + 1] = time_exec(q.e, o->reps);
		product_free(&q);
	}
	if (rc) {
		fprintf(stderr, "%s", diag_text(&d));
		product_free(&q);
	}
	diag_free(&d);
	SparseShape ss = {.rows = M, .k = K, .n = N, .nnz = nnz};
	double cost[SPF_COUNT];
	SparseFormat pick = sparse_choose(p, &ss, p == SPP_WEIGHT_GRAD, SPF_AUTO, o->rates, cost);
	double best = fmin(t[2], isnan(t[3]) ? INFINITY : t[3]);
	/* the pick's measured time over dense's: above 1 + noise is a wrong pick */
	double picked = pick == SPF_MASKED ? t[0] : pick == SPF_CSR ? t[2] : t[3];
	printf("%5lld x %-5lld %-11s %5.2f %9.3f %9.3f %9.3f %9.3f %8.2f %8.2f   %-8s %6.2f %6.2f %7.1f\n",
	       (long long)K, (long long)N, sparse_product_name[p], s, t[0] * 1e3, t[1] * 1e3,
	       t[2] * 1e3, t[3] * 1e3, o->rates ? cost[SPF_MASKED] * 1e3 : NAN,
	       o->rates ? cost[SPF_CSR] * 1e3 : NAN, sparse_format_name[pick], best / t[0],
	       picked / t[0], (double)nnz * 2.0 * (double)M / t[2] * 1e-9);
	fflush(stdout);
	mem_free(bits);
	return rc ? EXIT_INTERNAL : 0;
}

/* The distinct shapes of the model's covered weights. */
static int weight_shapes(const SparseBench *o, int64_t (*shape)[2], int *n)
{
	Args a = o->args;
	a.has_sparsity = true;
	a.sparsity = 0.5;
	Build b;
	BuildOptions bo = {.args = &a, .stage = STAGE_GRAPH};
	int rc = build_run(&b, &bo);
	*n = 0;
	for (size_t i = 0; !rc && i < b.g->mask.len; i++) {
		const Shape *s = &ir_node(b.g, VEC_AT(b.g->mask, Mask, i).param)->shape;
		bool seen = s->rank != 2;
		for (int j = 0; j < *n && !seen; j++)
			seen = shape[j][0] == s->dim[0] && shape[j][1] == s->dim[1];
		if (!seen && *n < MAX_WEIGHTS) {
			shape[*n][0] = s->dim[0];
			shape[(*n)++][1] = s->dim[1];
		}
	}
	build_free(&b);
	return rc;
}

static int bench_layers(const SparseBench *o, rt_Pool *pool)
{
	int64_t shape[MAX_WEIGHTS][2];
	int n, rc = weight_shapes(o, shape, &n);
	if (rc)
		return rc;
	printf("\nper-layer products, M = %lld rows, times in ms (the weight gradient: kernel "
	       "only; the others: with their transposes)\n", (long long)(o->batch * o->seq));
	printf("(pred: the cost model's predictions; pick/dense: the measured time of its pick over "
	       "dense; csr GF/s: useful GFLOP/s of csr)\n");
	printf("%-13s %-11s %5s %9s %9s %9s %9s %8s %8s   %-8s %6s %6s %7s\n", "weight K x N",
	       "product", "spars", "dense", "OpenBLAS", "csr", "unrolled", "pred.dns", "pred.csr",
	       "pick", "best/d", "pick/d", "csr GF/s");
	for (int w = 0; w < n; w++)
		for (int p = 0; p < SPP_COUNT; p++)
			for (int i = 0; i < o->nsparsity; i++)
				if ((rc = bench_product(o, pool, (SparseProduct)p, shape[w][0],
							shape[w][1], o->sparsity[i])))
					return rc;
	return 0;
}

/* ---- 2. the whole model ---- */

typedef struct ModelRun {
	Build b;
	rt_Exec *e;
	double compile;
} ModelRun;

static int model_build(const SparseBench *o, rt_Pool *pool, double s, bool training, ModelRun *m)
{
	Args a = o->args;
	a.has_sparsity = s > 0;
	a.sparsity = s;
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {o->batch, o->seq}},
			       {.name = "targets", .rank = 2, .dim = {o->batch, o->seq}}};
	BuildOptions bo = {.args = &a, .input = in, .ninput = 2, .training = training,
			   .optimizer = training, .auto_loss = !training, .seed = 1,
			   .stage = STAGE_PROGRAM};
	double t0 = now_seconds();
	int rc = build_run(&m->b, &bo);
	m->compile = now_seconds() - t0;
	if (!rc && (rt_exec_create(m->b.prog, pool, &m->e, &m->b.diag) || rt_init_params(m->e, 1))) {
		fprintf(stderr, "%s", diag_text(&m->b.diag));
		rc = EXIT_INTERNAL;
	}
	if (rc)
		return rc;
	rt_Tensor tok, tgt;
	if (!rt_exec_tensor(m->e, "tokens", &tok))
		for (int64_t i = 0; i < rt_numel(&tok); i++)
			((int32_t *)tok.data)[i] = (int32_t)((i * 37 + 11) % 256);
	if (!rt_exec_tensor(m->e, "targets", &tgt))
		for (int64_t i = 0; i < rt_numel(&tgt); i++)
			((int32_t *)tgt.data)[i] = (int32_t)((i * 53 + 5) % 256);
	return 0;
}

/* Every configuration is built first and their runs then alternate
 * (bench_best), so a busy spell of the machine slows dense and sparse
 * alike and the ratios hold even when the times do not. */
static int bench_model(const SparseBench *o, rt_Pool *pool)
{
	printf("\nwhole model, batch %lld x seq %lld, cost model's formats, times in ms "
	       "(runs of all rows alternate)\n", (long long)o->batch, (long long)o->seq);
	printf("%8s %12s %8s %12s %8s %12s\n", "sparsity", "train step", "/dense", "inference",
	       "/dense", "compile (s)");
	double sp[MAX_SPARSITY + 1] = {0};
	int n = 1, rc = 0;
	for (int i = 0; i < o->nsparsity; i++)
		if (o->sparsity[i] > 0)
			sp[n++] = o->sparsity[i];
	ModelRun m[2 * (MAX_SPARSITY + 1)];
	BenchTimed t[2 * (MAX_SPARSITY + 1)];
	memset(m, 0, sizeof m);
	int built = 0;
	for (; built < 2 * n && !rc; built++) {
		rc = model_build(o, pool, sp[built / 2], built % 2 == 0, &m[built]);
		t[built] = (BenchTimed){.fn = bench_run_exec, .arg = m[built].e};
	}
	if (!rc) {
		bench_best(t, 2 * n, o->reps);
		for (int i = 0; i < n; i++) {
			char label[16] = "dense";
			if (i > 0)
				snprintf(label, sizeof label, "%.2f", sp[i]);
			printf("%8s %12.1f %8.2f %12.1f %8.2f %12.1f\n", label, t[2 * i].best * 1e3,
			       t[2 * i].best / t[0].best, t[2 * i + 1].best * 1e3,
			       t[2 * i + 1].best / t[1].best, m[2 * i].compile + m[2 * i + 1].compile);
		}
	}
	for (int i = 0; i < built; i++) {
		rt_exec_destroy(m[i].e);
		build_free(&m[i].b);
	}
	return rc;
}

int cmd_bench_sparse(int argc, char **argv)
{
	SparseBench o = {.nsparsity = 4, .sparsity = {0, 0.5, 0.75, 0.9}, .batch = 8, .seq = 128,
			 .reps = 5, .unroll_max = 8192, .layers = true, .model = true};
	o.args.cmd = "bench sparse";
	o.args.user = &o;
	/* --sparsity takes a list here; the common parser wants one number. */
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--sparsity"))
			argv[i] = "--sparsity-list";
	int rc = args_parse(&o.args, argc, argv, extra);
	if (rc)
		return rc;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = o.args.threads ? o.args.threads : (int)ncpu;
	rt_Pool *pool = rt_pool_create(threads);
	if (!pool)
		return EXIT_INTERNAL;
#ifdef MSW_HAVE_OPENBLAS
	openblas_set_num_threads(threads);
#endif
	char cpu[RATES_TEXT_MAX];
	host_cpu_model(cpu, sizeof cpu);
	printf("mswc bench sparse: %s, %s, %d thread%s, best of %d\n", o.args.model, cpu, threads,
	       threads == 1 ? "" : "s", o.reps);
	bench_blas_note(stdout);
	const HostRates *h = NULL;
	Diag d;
	diag_init(&d);
	if (tools_host_rates(&h, false, &d))
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	SparseRates rates;
	o.rates = sparse_rates(h, &rates) ? NULL : &rates;
	sparse_print_rates(stdout, o.rates);
	if (o.layers)
		rc = bench_layers(&o, pool);
	if (!rc && o.model)
		rc = bench_model(&o, pool);
	rt_pool_destroy(pool);
	return rc;
}

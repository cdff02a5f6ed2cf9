/* bench.c: `mswc bench matmul [--threads N] [--shapes M,K,N;...] [--reps R]
 *                               [--cpu-clock]`
 *
 * Times the JIT'ed dense matmul (backend/emit_matmul.c) through the path a
 * model takes (graph -> plan_memory -> be_build_program -> rt_exec on a
 * pool) against OpenBLAS cblas_sgemm on the same data, and prints GFLOP/s
 * and the ratio. Without --threads it measures 1 thread and then every
 * core. Each figure is the best of R repetitions after a warm-up, each
 * repetition long enough (>= 20 ms) for the clock to be fair; best-of
 * rather than mean because other processes on the machine only ever make
 * a run slower, and the two contenders' repetitions alternate so such
 * disturbances hit both alike. On a machine shared with other work,
 * --cpu-clock times the one-thread table by the calling thread's CPU time
 * instead (both libraries run on the calling thread there), which time
 * slicing does not inflate; tables with more threads stay on the wall
 * clock. The two results are also compared (normwise relative
 * difference), so a fast wrong kernel cannot win. Built without OpenBLAS
 * (no MSW_HAVE_OPENBLAS), only the mswc column is printed. */
#include "tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef MSW_HAVE_OPENBLAS
#include <cblas.h>
#endif

enum { BENCH_MAX_SHAPES = 64 };

typedef struct Shape3 {
	int64_t m, k, n;
} Shape3;

/* Transformer projections: tokens x (d -> 3d, d -> d, d -> 4d, 4d -> d) at
 * d = 256 (the shipped model) and GPT-2 small's MLP (768 <-> 3072), for a
 * batch of 512 and 2048 tokens, then one token (generation's M = 1). */
static const Shape3 default_shapes[] = {
	{512, 256, 768},   {512, 256, 256},   {512, 256, 1024},  {512, 1024, 256},
	{512, 768, 3072},  {512, 3072, 768},  {2048, 256, 768},  {2048, 256, 256},
	{2048, 256, 1024}, {2048, 1024, 256}, {2048, 768, 3072}, {2048, 3072, 768},
	{1, 768, 3072},    {1, 3072, 768},
};

typedef struct BenchOpts {
	int threads;          /* 0: 1 and then all cores */
	bool cpu_clock;       /* one thread: time by the thread's CPU clock */
	int reps;
	Shape3 shape[BENCH_MAX_SHAPES];
	int nshape;
} BenchOpts;

/* "M,K,N;M,K,N;..." */
static int parse_shapes(const char *s, BenchOpts *o)
{
	o->nshape = 0;
	while (*s) {
		long long v[3];
		char *end;
		for (int i = 0; i < 3; i++) {
			v[i] = strtoll(s, &end, 10);
			if (end == s || v[i] < 1 || v[i] > 65536)
				return usage_error("bench", "--shapes expects M,K,N;... with sizes in "
							    "[1, 65536], got '%s'", s);
			s = end;
			if (i < 2 && *s++ != ',')
				return usage_error("bench", "--shapes expects M,K,N;...");
		}
		if (*s == ';')
			s++;
		else if (*s)
			return usage_error("bench", "--shapes expects M,K,N;... (';' between shapes)");
		if (o->nshape == BENCH_MAX_SHAPES)
			return usage_error("bench", "--shapes: at most %d shapes", BENCH_MAX_SHAPES);
		o->shape[o->nshape++] = (Shape3){v[0], v[1], v[2]};
	}
	if (!o->nshape)
		return usage_error("bench", "--shapes: no shape given");
	return 0;
}

static int parse_opts(int argc, char **argv, BenchOpts *o)
{
	o->threads = 0;
	o->reps = 5;
	o->nshape = (int)(sizeof default_shapes / sizeof default_shapes[0]);
	memcpy(o->shape, default_shapes, sizeof default_shapes);
	for (int i = 1; i < argc; i++) {
		const char *v;
		long long x;
		if ((v = args_value(argc, argv, &i, "--threads"))) {
			if (args_int("bench", "--threads", v, 1, 256, &x))
				return EXIT_USER;
			o->threads = (int)x;
		} else if (!strcmp(argv[i], "--cpu-clock")) {
			o->cpu_clock = true;
		} else if ((v = args_value(argc, argv, &i, "--reps"))) {
			if (args_int("bench", "--reps", v, 1, 1000, &x))
				return EXIT_USER;
			o->reps = (int)x;
		} else if ((v = args_value(argc, argv, &i, "--shapes"))) {
			if (parse_shapes(v, o))
				return EXIT_USER;
		} else {
			return usage_error("bench", "unknown option '%s'", argv[i]);
		}
	}
	return 0;
}

void bench_run_exec(void *e)
{
	rt_exec_run(e);
}

/* One matmul [m,k] @ [k,n] compiled the way a model's would be. */
typedef struct MMBench {
	Graph *g;
	rt_Program *prog;
	rt_Exec *exec;
	float *a, *b, *c;
} MMBench;

static int mm_build(MMBench *mb, const Shape3 *s, rt_Pool *pool, Diag *d)
{
	SrcLoc loc = {0};
	Shape sa = {.rank = 2, .dim = {s->m, s->k}}, sb = {.rank = 2, .dim = {s->k, s->n}};
	memset(mb, 0, sizeof *mb);
	mb->g = ir_graph_create();
	if (!mb->g)
		return diag_error(d, loc, "out of memory");
	ValId a = ir_input(mb->g, "a", DT_F32, &sa, loc, d);
	ValId b = a == VAL_NONE ? VAL_NONE : ir_input(mb->g, "b", DT_F32, &sb, loc, d);
	ValId c = b == VAL_NONE ? VAL_NONE : ir_matmul(mb->g, a, b, 0, loc, d);
	PassOptions po = {.alignment = RT_ALIGN};
	if (c == VAL_NONE || ir_set_output(mb->g, "c", c) || pass_plan_memory(mb->g, &po, d) ||
	    be_build_program(mb->g, NULL, &mb->prog, d) ||
	    rt_exec_create(mb->prog, pool, &mb->exec, d))
		return -1;
	rt_Tensor ta, tb, tc;
	if (rt_exec_tensor(mb->exec, "a", &ta) || rt_exec_tensor(mb->exec, "b", &tb) ||
	    rt_exec_tensor(mb->exec, "c", &tc))
		return diag_error(d, loc, "bench: program lacks a, b or c");
	mb->a = ta.data;
	mb->b = tb.data;
	mb->c = tc.data;
	uint64_t x = 88172645463325252ull;
	for (int64_t i = 0; i < s->m * s->k + s->k * s->n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		float v = (float)((double)(x >> 40) / 16777216.0 - 0.5);
		if (i < s->m * s->k)
			mb->a[i] = v;
		else
			mb->b[i - s->m * s->k] = v;
	}
	return 0;
}

static void mm_free(MMBench *mb)
{
	rt_exec_destroy(mb->exec);
	rt_program_destroy(mb->prog);
	ir_graph_destroy(mb->g);
}

#ifdef MSW_HAVE_OPENBLAS
typedef struct BlasCall {
	const Shape3 *s;
	const float *a, *b;
	float *c;
} BlasCall;

static void run_blas(void *arg)
{
	BlasCall *x = arg;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)x->s->m, (int)x->s->n,
		    (int)x->s->k, 1.0f, x->a, (int)x->s->k, x->b, (int)x->s->n, 0.0f, x->c,
		    (int)x->s->n);
}

static double rel_diff(const float *x, const float *y, int64_t n)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
		den += (double)y[i] * y[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}
#endif

/* One table: every shape at one thread count. Returns an exit status. */
static int bench_threads(const BenchOpts *o, int threads)
{
	rt_Pool *pool = rt_pool_create(threads);
	if (!pool) {
		fprintf(stderr, "mswc bench: error: cannot start %d threads\n", threads);
		return EXIT_INTERNAL;
	}
	bench_cpu_clock = o->cpu_clock && threads == 1;
	printf("\nmatmul C[M,N] = A[M,K] @ B[K,N], f32, %d thread%s, best of %d (GFLOP/s%s)\n",
	       threads, threads == 1 ? "" : "s", o->reps, bench_cpu_clock ? ", CPU time" : "");
#ifdef MSW_HAVE_OPENBLAS
	openblas_set_num_threads(threads);
	printf("%6s %6s %6s %10s %10s %7s %9s\n", "M", "K", "N", "mswc", "OpenBLAS", "ratio",
	       "rel.diff");
	double logsum = 0;
#else
	printf("%6s %6s %6s %10s\n", "M", "K", "N", "mswc");
#endif
	int status = 0;
	for (int i = 0; i < o->nshape; i++) {
		const Shape3 *s = &o->shape[i];
		double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
		MMBench mb;
		Diag d;
		diag_init(&d);
		if (mm_build(&mb, s, pool, &d)) {
			fprintf(stderr, "%s", diag_text(&d));
			diag_free(&d);
			mm_free(&mb);
			status = EXIT_INTERNAL;
			break;
		}
		diag_free(&d);
		BenchTimed t[2] = {{.fn = bench_run_exec, .arg = mb.exec}};
#ifdef MSW_HAVE_OPENBLAS
		float *c = mem_aligned((size_t)(s->m * s->n) * sizeof *c, RT_ALIGN);
		if (!c) {
			mm_free(&mb);
			status = EXIT_INTERNAL;
			break;
		}
		BlasCall bc = {s, mb.a, mb.b, c};
		t[1] = (BenchTimed){.fn = run_blas, .arg = &bc};
		bench_best(t, 2, o->reps);
		double t_mswc = t[0].best, t_blas = t[1].best;
		double ratio = t_blas / t_mswc;
		logsum += log(ratio);
		printf("%6lld %6lld %6lld %10.1f %10.1f %7.2f %9.1e\n", (long long)s->m,
		       (long long)s->k, (long long)s->n, flops / t_mswc * 1e-9,
		       flops / t_blas * 1e-9, ratio, rel_diff(mb.c, c, s->m * s->n));
		mem_aligned_free(c);
#else
		bench_best(t, 1, o->reps);
		double t_mswc = t[0].best;
		printf("%6lld %6lld %6lld %10.1f\n", (long long)s->m, (long long)s->k,
		       (long long)s->n, flops / t_mswc * 1e-9);
#endif
		fflush(stdout);
		mm_free(&mb);
	}
#ifdef MSW_HAVE_OPENBLAS
	if (!status)
		printf("geometric mean ratio (mswc / OpenBLAS): %.2f\n", exp(logsum / o->nshape));
#endif
	rt_pool_destroy(pool);
	return status;
}

/* `mswc bench calibrate`: measure the host rates again (the cost models'
 * inputs, backend/calibrate.c), cache them and print them. */
static int cmd_calibrate(int argc, char **argv)
{
	if (argc > 1)
		return usage_error("bench calibrate", "unknown option '%s'", argv[1]);
	const HostRates *h;
	Diag d;
	diag_init(&d);
	int rc = tools_host_rates(&h, true, &d);
	if (rc) {
		fprintf(stderr, "%s", diag_text(&d));
		diag_free(&d);
		return EXIT_INTERNAL;
	}
	diag_free(&d);
	char *dir = be_cache_default_dir(), path[4096] = "";
	Hash128 key;
	if (dir && !be_rates_key(&key))
		be_rates_path(dir, key, path, sizeof path);
	mem_free(dir);
	printf("host rates of %s, %s\n", h->cpu, h->source);
	printf("cached in %s\n", *path ? path : "(no cache: MSW_CACHE_DIR is empty)");
	for (int i = 0; i < h->n; i++) {
		const HostRate *r = &h->rate[i];
		const char *n = r->name;
		size_t len = strlen(n);
		if (len > 6 && !strcmp(n + len - 6, ".flops"))
			printf("  %-24s %10.1f GFLOP/s\n", n, r->value * 1e-9);
		else if (!strncmp(n, "dense.", 6))
			printf("  %-24s %10.1f GFLOP/s\n", n, r->value * 1e-9);
		else if (len > 6 && !strcmp(n + len - 6, ".dense"))
			printf("  %-24s %10.3f ps per dense multiply-add\n", n, r->value * 1e12);
		else if (!strcmp(n, "transpose.bytes"))
			printf("  %-24s %10.1f GB/s\n", n, r->value * 1e-9);
		else if (!strncmp(n, "cache.", 6))
			printf("  %-24s %10.0f KiB\n", n, r->value / 1024);
		else if (!strcmp(n, "noise"))
			printf("  %-24s %10.1f %%\n", n, r->value * 100);
		else
			printf("  %-24s %10.4g\n", n, r->value);
	}
	SparseRates sr;
	if (sparse_rates(h, &sr))
		printf("(incomplete for the sparse cost model: it keeps every product masked)\n");
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 1)
		return usage_error("bench", "which benchmark? (matmul, sparse, decode or calibrate)");
	if (!strcmp(argv[0], "sparse"))
		return cmd_bench_sparse(argc - 1, argv + 1);
	if (!strcmp(argv[0], "decode"))
		return cmd_bench_decode(argc - 1, argv + 1);
	if (!strcmp(argv[0], "calibrate"))
		return cmd_calibrate(argc, argv);
	if (strcmp(argv[0], "matmul"))
		return usage_error("bench", "unknown benchmark '%s' (known: matmul, sparse, "
				   "decode, calibrate)", argv[0]);
	BenchOpts o;
	if (parse_opts(argc, argv, &o))
		return EXIT_USER;
	if (o.cpu_clock && o.threads > 1)
		return usage_error("bench", "--cpu-clock times one thread only");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char cpu[RATES_TEXT_MAX];
	host_cpu_model(cpu, sizeof cpu);
	printf("mswc bench matmul: %s\n", cpu);
	bench_blas_note(stdout);
	if (o.threads)
		return bench_threads(&o, o.threads);
	int status = bench_threads(&o, 1);
	if (!status && ncpu > 1)
		status = bench_threads(&o, (int)ncpu);
	return status;
}

/* calibrate.c: the host rates the cost models read (support.h), measured
 * by JIT-compiling this backend's own kernels and timing them on one core.
 *
 * What is measured (rates.c holds them by these names), M = 1024
 * activation rows, on two shapes: a d=256 GPT's c_attn (256 x 768) and
 * its MLP's c_proj (1024 x 256), wide and deep:
 *   dense.<product>        flop/s of the dense matmul of the forward
 *                          (x W), input gradient (dy W^T: NF_TRANS_B) and
 *                          weight gradient (x^T dy: NF_TRANS_A), over both
 *   csr.<product>.flops    the compressed-row kernels (spmm, spmm transb,
 *   csr.<product>.dense    sddmm) at 75% and 90% sparsity on both shapes,
 *                          fitted to t = 2*M*nnz / flops + dense * M*K*N
 *                          (work per output row and panel of features):
 *                          four timings, two unknowns, least squares
 *   transpose.bytes        the permutes into and out of the feature-major
 *                          layout, bytes read + written per second
 *   unrolled.speedup       csr time / unrolled time of the forward on a
 *   unrolled.max-nnz       small pattern, and the largest pattern LLVM
 *                          compiles in a second at the measured time per
 *                          entry; both absent when unrolling does not beat
 *                          csr by more than noise or would not repay its
 *                          compile time within a thousand calls
 *   noise                  second best over best of repeated timings, -1,
 *                          the median over all kernels (one kernel that
 *                          another process slowed must not decide): how
 *                          much two predictions must differ to mean
 *                          anything
 *   cache.l1d, .l2, .l3    what the machine reports (host_cache_sizes)
 * Each timing is the best of several runs of at least a millisecond each
 * after a warm-up, on one thread (the models predict one core's time;
 * thread scaling is the same for dense and sparse, both split by rows).
 * It takes one to two seconds, mostly LLVM compiling the kernels, and less
 * with a warm kernel cache.
 *
 * be_host_rates keys the result by the CPU model, LLVM's name and feature
 * string for the host, mswc's version and CALIBRATION (bumped whenever a
 * kernel measured here changes), and keeps it as <cache dir>/rates-<key>.txt
 * beside the kernel objects; a damaged or foreign file is measured again. */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MSW_VERSION
#define MSW_VERSION "unknown"
#endif

/* Bumped whenever the kernels measured here or the measurement change, so
 * rates cached by an older build are not reused. */
static const char CALIBRATION[] = "mswc-calibration-2";

enum { CAL_M = 1024, CAL_B = 128, CAL_K = 256, CAL_N = 768, CAL_UNROLL_K = 64,
       CAL_UNROLL_N = 256, CAL_SAMPLES = 7, CAL_MAX_TIMINGS = 32 };

/* The weight shapes timed (K x N), and the sparsities on each. */
static const int64_t cal_shape[2][2] = {{CAL_K, CAL_N}, {4 * CAL_K, CAL_K}};
static const double cal_sparsity[2] = {0.75, 0.9};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every node its own 64-byte aligned space: the measuring graphs have no
 * views (their inputs are given in the layout each kernel reads), so no
 * aliasing needs planning, and the backend must not call passes/. */
static void plan(Graph *g)
{
	int64_t off = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		Node *n = ir_node(g, v);
		n->offset = off;
		off += (ir_numel(&n->shape) * 4 + 63) / 64 * 64;
	}
	g->arena_size = off > 0 ? off : 64;
}

static void fill(float *x, int64_t n, uint64_t seed)
{
	for (int64_t i = 0; i < n; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		x[i] = (float)((double)(seed >> 40) / 16777216.0 - 0.5);
	}
}

/* Exactly round(s * n) zeros at random places, like the prune pass. */
static void random_mask(uint8_t *bits, int64_t n, double s, uint64_t seed)
{
	int64_t zeros = llround(s * (double)n);
	for (int64_t i = 0; i < n; i++)
		bits[i] = i >= zeros;
	for (int64_t i = n - 1; i > 0; i--) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		int64_t j = (int64_t)(seed % (uint64_t)(i + 1));
		uint8_t t = bits[i];
		bits[i] = bits[j];
		bits[j] = t;
	}
}

typedef struct Cal {
	rt_Pool *pool;
	const char *cache_dir;
	double spread[CAL_MAX_TIMINGS]; /* each timing's relative spread */
	int nspread;
	double compile;       /* seconds of the last build */
	Diag *d;
} Cal;

/* Compile g, run it, and return its best time (seconds), or -1. */
static double time_graph(Cal *c, Graph *g)
{
	plan(g);
	be_Options o = {.opt_level = 3, .cache_dir = c->cache_dir};
	rt_Program *p = NULL;
	rt_Exec *e = NULL;
	double best = -1, t0 = now();
	if (be_build_program(g, &o, &p, c->d) || rt_exec_create(p, c->pool, &e, c->d))
		goto done;
	c->compile = now() - t0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		rt_Tensor t;
		if ((n->op == OP_INPUT || n->op == OP_PARAM) &&
		    !rt_exec_tensor(e, ir_str(g, n->name), &t))
			fill(t.data, rt_numel(&t), 0x9e3779b97f4a7c15ull + v);
	}
	t0 = now();
	rt_exec_run(e);   /* warm-up: pages, caches, branch predictors */
	double once = now() - t0;
	int inner = once > 1e-3 ? 1 : (int)(1e-3 / (once > 1e-7 ? once : 1e-7)) + 1;
	double s[CAL_SAMPLES];
	for (int k = 0; k < CAL_SAMPLES; k++) {
		t0 = now();
		for (int i = 0; i < inner; i++)
			rt_exec_run(e);
		s[k] = (now() - t0) / inner;
	}
	for (int i = 1; i < CAL_SAMPLES; i++)   /* insertion sort: 7 samples */
		for (int j = i; j > 0 && s[j] < s[j - 1]; j--) {
			double t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	best = s[0];
	/* the two best runs: another process slowing some runs down (other
	 * builds on a shared machine) does not count as the kernel's noise */
	if (c->nspread < CAL_MAX_TIMINGS)
		c->spread[c->nspread++] = s[1] / s[0] - 1.0;
done:
	rt_exec_destroy(e);
	rt_program_destroy(p);
	return best;
}

static ValId input(Graph *g, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2,
		   Diag *d)
{
	Shape s = {.rank = rank, .dim = {d0, d1, d2}};
	return ir_input(g, name, DT_F32, &s, (SrcLoc){0}, d);
}

/* The dense matmul of product p on [K,N]. */
static double time_dense(Cal *c, int p, int64_t K, int64_t N)
{
	Graph *g = ir_graph_create();
	Diag *d = c->d;
	SrcLoc loc = {0};
	ValId x = input(g, "x", 2, CAL_M, K, 0, d), dy = input(g, "dy", 2, CAL_M, N, 0, d);
	Shape sw = {.rank = 2, .dim = {K, N}};
	ValId w = ir_input(g, "w", DT_F32, &sw, loc, d), y = VAL_NONE;
	if (x != VAL_NONE && dy != VAL_NONE && w != VAL_NONE)
		y = p == 0 ? ir_matmul(g, x, w, 0, loc, d) :
		    p == 1 ? ir_matmul(g, dy, w, NF_TRANS_B, loc, d) :
			     ir_matmul(g, x, dy, NF_TRANS_A, loc, d);
	double t = y == VAL_NONE || ir_set_output(g, "y", y) ? -1 : time_graph(c, g);
	ir_graph_destroy(g);
	return t;
}

/* The sparse kernel of product p on a [k,n] pattern, kernel alone
 * (operands already feature-major). */
static double time_sparse(Cal *c, int p, int64_t k, int64_t n, const uint8_t *bits,
			  bool unrolled)
{
	Graph *g = ir_graph_create();
	Diag *d = c->d;
	SrcLoc loc = {0};
	Shape sw = {.rank = 2, .dim = {k, n}};
	ValId w = ir_param(g, "w", &sw, INIT_ZEROS, 0, loc, d), y = VAL_NONE;
	Mask *m = w == VAL_NONE ? NULL : ir_set_mask(g, w, 0, SD_UNIFORM);
	if (m && !ir_mask_set_bits(m, bits, k * n)) {
		ValId xt = input(g, "xt", 3, CAL_M / CAL_B, k, CAL_B, d);
		ValId dyt = input(g, "dyt", 3, CAL_M / CAL_B, n, CAL_B, d);
		if (xt != VAL_NONE && dyt != VAL_NONE)
			y = p == 0 ? ir_spmm(g, xt, w, unrolled ? NF_UNROLLED : 0, loc, d) :
			    p == 1 ? ir_spmm(g, dyt, w, NF_TRANS_B, loc, d) :
				     ir_sddmm(g, xt, dyt, w, loc, d);
	}
	double t = y == VAL_NONE || ir_set_output(g, "y", y) ? -1 : time_graph(c, g);
	ir_graph_destroy(g);
	return t;
}

/* The two permutes of a forward: x [M/B, B, K] -> [M/B, K, B] and the
 * output back, [M/B, N, B] -> [M/B, B, N]; returns bytes per second. */
static double time_transposes(Cal *c)
{
	static const uint8_t swap[3] = {0, 2, 1};
	Graph *g = ir_graph_create();
	Diag *d = c->d;
	ValId x = input(g, "x", 3, CAL_M / CAL_B, CAL_B, CAL_K, d);
	ValId yt = input(g, "yt", 3, CAL_M / CAL_B, CAL_N, CAL_B, d);
	ValId a = x == VAL_NONE ? x : ir_permute(g, x, swap, (SrcLoc){0}, d);
	ValId b = yt == VAL_NONE ? yt : ir_permute(g, yt, swap, (SrcLoc){0}, d);
	double t = a == VAL_NONE || b == VAL_NONE || ir_set_output(g, "a", a) ||
		   ir_set_output(g, "b", b) ? -1 : time_graph(c, g);
	ir_graph_destroy(g);
	return t > 0 ? 2.0 * 4.0 * CAL_M * (CAL_K + CAL_N) / t : -1;
}

static int64_t count(const uint8_t *bits, int64_t n)
{
	int64_t k = 0;
	for (int64_t i = 0; i < n; i++)
		k += bits[i];
	return k;
}

static const char *const product[3] = {"forward", "input-grad", "weight-grad"};

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)   /* insertion sort: a few dozen values */
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Product p's dense rate over both shapes, and its csr rates: the least
 * squares fit of t = a * work + b * macs to the four sparse timings (with
 * b = 0 when the fit says b < 0: noise beyond the model, all of it per
 * flop). */
static int calibrate_product(Cal *c, int p, uint8_t *const bits[2][2], HostRates *out)
{
	double flops = 0, tdense = 0, sww = 0, swm = 0, smm = 0, swt = 0, smt = 0, st = 0, sw = 0;
	char name[RATES_NAME_MAX];
	for (int h = 0; h < 2; h++) {
		int64_t K = cal_shape[h][0], N = cal_shape[h][1];
		double macs = (double)CAL_M * (double)(K * N), td = time_dense(c, p, K, N);
		if (td <= 0)
			return -1;
		flops += 2.0 * macs;
		tdense += td;
		for (int i = 0; i < 2; i++) {
			double w = 2.0 * CAL_M * (double)count(bits[h][i], K * N);
			double t = time_sparse(c, p, K, N, bits[h][i], false);
			if (t <= 0)
				return -1;
			sww += w * w, swm += w * macs, smm += macs * macs;
			swt += w * t, smt += macs * t, st += t, sw += w;
		}
	}
	double det = sww * smm - swm * swm;
	double a = det > 0 ? (swt * smm - swm * smt) / det : 0;
	double b = det > 0 ? (sww * smt - swm * swt) / det : -1;
	if (!(a > 0) || b < 0) {
		a = st / sw;
		b = 0;
	}
	snprintf(name, sizeof name, "dense.%s", product[p]);
	rates_set(out, name, flops / tdense);
	snprintf(name, sizeof name, "csr.%s.flops", product[p]);
	rates_set(out, name, 1.0 / a);
	snprintf(name, sizeof name, "csr.%s.dense", product[p]);
	rates_set(out, name, b);
	return 0;
}

int be_calibrate(HostRates *r, const char *cache_dir, Diag *d)
{
	double t0 = now();
	HostRates out = {0};
	host_cpu_model(out.cpu, sizeof out.cpu);
	Cal c = {.pool = rt_pool_create(1), .cache_dir = cache_dir, .d = d};
	uint8_t *bits[2][2] = {{NULL}};
	uint8_t *small = mem_alloc(CAL_UNROLL_K * CAL_UNROLL_N);
	int rc = -1;
	bool oom = !c.pool || !small;
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 2; i++) {
			int64_t n = cal_shape[h][0] * cal_shape[h][1];
			if (!(bits[h][i] = mem_alloc((size_t)n)))
				oom = true;
			else
				random_mask(bits[h][i], n, cal_sparsity[i],
					    0x2545f4914f6cdd1dull + (uint64_t)(2 * h + i));
		}
	if (oom) {
		diag_error(d, (SrcLoc){0}, "calibration: out of memory");
		goto done;
	}
	for (int p = 0; p < 3; p++)
		if (calibrate_product(&c, p, bits, &out))
			goto done;
	double tb = time_transposes(&c);
	if (tb <= 0)
		goto done;
	rates_set(&out, "transpose.bytes", tb);
	/* unrolled against csr on one small pattern, compiled without the
	 * kernel cache so its LLVM time per entry is measured too */
	random_mask(small, CAL_UNROLL_K * CAL_UNROLL_N, 0.9, 0x853c49e6748fea9bull);
	double nsmall = (double)count(small, CAL_UNROLL_K * CAL_UNROLL_N);
	double tc = time_sparse(&c, 0, CAL_UNROLL_K, CAL_UNROLL_N, small, false);
	c.cache_dir = NULL;
	double tu = tc > 0 ? time_sparse(&c, 0, CAL_UNROLL_K, CAL_UNROLL_N, small, true) : -1;
	c.cache_dir = cache_dir;
	if (tu <= 0)
		goto done;
	/* Policy, not a machine constant: unrolling must repay its compile
	 * time within a thousand calls, and one pattern may take at most a
	 * second of LLVM time (both grow with the entries, so the first is a
	 * yes or no and the second the size limit). */
	double per_entry = c.compile / nsmall, saved = (tc - tu) / nsmall;
	double noise = median(c.spread, c.nspread);
	if (tc > tu * (1.0 + noise) && saved * 1000.0 > per_entry) {
		rates_set(&out, "unrolled.speedup", tc / tu);
		rates_set(&out, "unrolled.max-nnz", floor(1.0 / per_entry));
	}
	rates_set(&out, "noise", noise);
	int64_t cache[3];
	host_cache_sizes(cache);
	static const char *const level[3] = {"cache.l1d", "cache.l2", "cache.l3"};
	for (int i = 0; i < 3; i++)
		if (cache[i] > 0)
			rates_set(&out, level[i], (double)cache[i]);
	snprintf(out.source, sizeof out.source, "measured now in %.1f s", now() - t0);
	*r = out;
	rc = 0;
done:
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 2; i++)
			mem_free(bits[h][i]);
	mem_free(small);
	rt_pool_destroy(c.pool);
	return rc;
}

static int put(Vec *v, const char *s)
{
	size_t n = strlen(s) + 1;
	if (vec_reserve(v, v->len + n, 1))
		return -1;
	memcpy((char *)v->data + v->len, s, n);
	v->len += n;
	return 0;
}

int be_rates_key(Hash128 *key)
{
	char cpu[RATES_TEXT_MAX];
	host_cpu_model(cpu, sizeof cpu);
	char *name = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
	Vec v = {0};
	int rc = put(&v, CALIBRATION) | put(&v, MSW_VERSION) | put(&v, cpu) |
		 put(&v, name ? name : "") | put(&v, feat ? feat : "");
	if (!rc)
		*key = hash128(v.data, v.len);
	LLVMDisposeMessage(name);
	LLVMDisposeMessage(feat);
	vec_free(&v);
	return rc;
}

int be_rates_path(const char *dir, Hash128 key, char *out, size_t n)
{
	char hex[33];
	hash128_hex(key, hex);
	return snprintf(out, n, "%s/rates-%s.txt", dir, hex) < (int)n ? 0 : -1;
}

int be_host_rates(HostRates *r, const char *cache_dir, bool remeasure, Diag *d)
{
	Hash128 key;
	char path[4096];
	if (be_rates_key(&key))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	bool cached = cache_dir && !be_rates_path(cache_dir, key, path, sizeof path);
	if (cached && !remeasure && !rates_read(path, &key, r))
		return 0;
	if (be_calibrate(r, cache_dir, d))
		return -1;
	/* a cache that cannot be written only means measuring next time */
	if (cached && !be_cache_make_dir(cache_dir))
		rates_write(path, r, key);
	return 0;
}

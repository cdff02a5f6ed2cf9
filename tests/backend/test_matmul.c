/* test_matmul.c: the blocked matmul (backend/emit_matmul.c) against a plain
 * double-precision triple loop written here, through the standard path:
 * ir_input + ir_matmul, pass_infer_shapes, pass_plan_memory,
 * be_build_program, rt_exec.
 *
 * Inputs are random and non-zero (uniform in +-[0.1, 1)), so no product
 * vanishes by accident. A case passes when the normwise relative error
 * ||C - C_ref||_F / ||C_ref||_F is below 1e-5 (f32 accumulation over K up
 * to 3072 gives about 1e-6). Every case also runs on 1 and 2 threads and
 * with the kernel's tasks called one range at a time in a scrambled
 * grouping; all of these must be bitwise identical (the rt.h contract).
 * Shapes cover 1, primes and sizes just past the register tile (7, 17, 129,
 * 130, 257), K longer than one K block (3072), wide N (3072), every
 * NF_TRANS_A/NF_TRANS_B combination, batches with broadcasting, and the
 * code generated for narrower targets (AVX2, SSE2 without FMA).
 *
 * NF_SKIPZEROS (masked probabilities times values): A with a causal
 * pattern of zeros (A(i, k) = 0 for k > i + off) and B with NaN and inf in
 * rows only zeros of A meet gives finite outputs equal to the reference
 * that leaves those terms out, and non-finite ones exactly where a nonzero
 * A(i, k) meets them; with finite B the bits are those of the plain
 * matmul. Blocked and reference emitters, every transpose, one and
 * several K blocks, the in-place B path (M <= 6), AVX2 and SSE2. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* uniform in +-[0.1, 1) */
static float rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	double u = (double)(rng >> 11) / 9007199254740992.0;
	double x = 0.1 + 0.9 * u;
	return (float)((rng & 1) ? x : -x);
}

static Shape shape(int rank, const int64_t *dim)
{
	Shape s = {0};
	s.rank = (uint8_t)rank;
	for (int i = 0; i < rank; i++)
		s.dim[i] = dim[i];
	return s;
}

/* Element index of operand x (shape s, logical [.., R, C] matrix after its
 * own transpose flag) for output batch index b of C (batch dims cdim). */
static int64_t bcast_base(const Shape *s, const Shape *c, int64_t b)
{
	int64_t off = 0, stride = s->dim[s->rank - 1] * s->dim[s->rank - 2];
	for (int d = c->rank - 3; d >= 0; d--) {
		int64_t idx = b % c->dim[d];
		b /= c->dim[d];
		int ds = d - (c->rank - s->rank);
		if (ds >= 0) {
			if (s->dim[ds] != 1)
				off += idx * stride;
			stride *= s->dim[ds];
		}
	}
	return off;
}

/* The reference: plain loops in double. */
static void reference(const float *a, const Shape *sa, const float *b, const Shape *sb,
		      const Shape *sc, unsigned flags, double *out)
{
	int r = sc->rank;
	int64_t M = sc->dim[r - 2], N = sc->dim[r - 1];
	int64_t K = flags & NF_TRANS_A ? sa->dim[sa->rank - 2] : sa->dim[sa->rank - 1];
	int64_t nb = 1;
	for (int d = 0; d < r - 2; d++)
		nb *= sc->dim[d];
	for (int64_t bi = 0; bi < nb; bi++) {
		const float *A = a + bcast_base(sa, sc, bi), *B = b + bcast_base(sb, sc, bi);
		for (int64_t i = 0; i < M; i++)
			for (int64_t j = 0; j < N; j++) {
				double s = 0;
				for (int64_t k = 0; k < K; k++) {
					double x = flags & NF_TRANS_A ? A[k * M + i] : A[i * K + k];
					double y = flags & NF_TRANS_B ? B[j * K + k] : B[k * N + j];
					s += x * y;
				}
				out[(bi * M + i) * N + j] = s;
			}
	}
}

typedef struct Case {
	Graph *g;
	rt_Program *prog;
	Shape sa, sb, sc;
	unsigned flags;
} Case;

/* The target the cases compile for; NULL is the host (AVX-512 here). */
static const be_Options *target;

static int build(Case *t, const Shape *sa, const Shape *sb, unsigned flags)
{
	Diag d;
	diag_init(&d);
	SrcLoc loc = {0};
	memset(t, 0, sizeof *t);
	t->sa = *sa;
	t->sb = *sb;
	t->flags = flags;
	t->g = ir_graph_create();
	ValId a = ir_input(t->g, "a", DT_F32, sa, loc, &d);
	ValId b = ir_input(t->g, "b", DT_F32, sb, loc, &d);
	ValId c = a == VAL_NONE || b == VAL_NONE ? VAL_NONE : ir_matmul(t->g, a, b, flags, loc, &d);
	PassOptions po = {.verify = true, .alignment = 64};
	int ok = c != VAL_NONE && !ir_set_output(t->g, "c", c) &&
		 !pass_infer_shapes(t->g, &po, &d) && !pass_plan_memory(t->g, &po, &d) &&
		 !be_build_program(t->g, target, &t->prog, &d);
	if (ok)
		t->sc = ir_node(t->g, c)->shape;
	else
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	return ok ? 0 : -1;
}

static void destroy(Case *t)
{
	rt_program_destroy(t->prog);
	ir_graph_destroy(t->g);
}

/* Run on a pool of `threads`; fills a and b with the same random values
 * every time (seed) and copies C out. */
static int run(Case *t, int threads, uint64_t seed, float *out, void *bufs[3], rt_Exec **keep,
	       rt_Pool **keep_pool)
{
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(threads);
	rt_Exec *e = NULL;
	rt_Tensor ta, tb, tc;
	if (!pool || rt_exec_create(t->prog, pool, &e, &d) || rt_exec_tensor(e, "a", &ta) ||
	    rt_exec_tensor(e, "b", &tb) || rt_exec_tensor(e, "c", &tc)) {
		fprintf(stderr, "%s", diag_text(&d));
		diag_free(&d);
		rt_exec_destroy(e);
		rt_pool_destroy(pool);
		return -1;
	}
	rng = seed;
	for (int64_t i = 0; i < rt_numel(&ta); i++)
		((float *)ta.data)[i] = rnd();
	for (int64_t i = 0; i < rt_numel(&tb); i++)
		((float *)tb.data)[i] = rnd();
	/* garbage in C: the kernel must not read what it has not written */
	for (int64_t i = 0; i < rt_numel(&tc); i++)
		((float *)tc.data)[i] = 1e30f;
	rt_exec_run(e);
	memcpy(out, tc.data, (size_t)rt_nbytes(&tc));
	diag_free(&d);
	if (keep) {
		bufs[0] = tc.data;
		bufs[1] = ta.data;
		bufs[2] = tb.data;
		*keep = e;
		*keep_pool = pool;
		return 0;
	}
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return 0;
}

static const rt_Step *matmul_step(const rt_Program *p)
{
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *s = &VEC_AT(p->step, rt_Step, i);
		if (strstr(s->name, "matmul"))
			return s;
	}
	return NULL;
}

static void check_case(const Shape *sa, const Shape *sb, unsigned flags)
{
	char sas[64], sbs[64];
	ir_shape_str(sa, sas, sizeof sas);
	ir_shape_str(sb, sbs, sizeof sbs);
	Case t;
	int built = !build(&t, sa, sb, flags);
	CHECK_MSG(built, "build %s @ %s flags %u", sas, sbs, flags);
	if (!built) {
		ir_graph_destroy(t.g);
		return;
	}
	int64_t n = ir_numel(&t.sc);
	float *c1 = mem_alloc((size_t)n * sizeof *c1), *c2 = mem_alloc((size_t)n * sizeof *c2);
	float *c3 = mem_alloc((size_t)n * sizeof *c3);
	double *ref = mem_alloc((size_t)n * sizeof *ref);
	void *bufs[3];
	rt_Exec *e = NULL;
	rt_Pool *pool = NULL;
	uint64_t seed = 0x1234567ull + (uint64_t)n * 7 + flags;
	if (!c1 || !c2 || !c3 || !ref) {
		CHECK_MSG(0, "out of memory");
		goto done;
	}
	if (run(&t, 1, seed, c1, bufs, &e, &pool) || run(&t, 2, seed, c2, NULL, NULL, NULL)) {
		CHECK_MSG(0, "run %s @ %s", sas, sbs);
		goto done;
	}
	reference(bufs[1], &t.sa, bufs[2], &t.sb, &t.sc, flags, ref);
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		num += (c1[i] - ref[i]) * (c1[i] - ref[i]);
		den += ref[i] * ref[i];
	}
	double err = den > 0 ? sqrt(num / den) : sqrt(num);
	CHECK_MSG(err < TOL, "%s @ %s flags %u: normwise relative error %.3g", sas, sbs, flags,
		  err);
	CHECK_MSG(!memcmp(c1, c2, (size_t)n * sizeof *c1), "%s @ %s flags %u: 1 vs 2 threads differ",
		  sas, sbs, flags);

	/* Tasks in ranges of 3, last range first: any grouping, same bits. */
	const rt_Step *st = matmul_step(t.prog);
	CHECK(st != NULL);
	if (st) {
		for (int64_t i = 0; i < n; i++)
			((float *)bufs[0])[i] = -7.0f;
		for (int64_t hi = st->ntask; hi > 0; hi -= 3)
			st->fn(bufs, hi > 3 ? hi - 3 : 0, hi);
		memcpy(c3, bufs[0], (size_t)n * sizeof *c3);
		CHECK_MSG(!memcmp(c1, c3, (size_t)n * sizeof *c1),
			  "%s @ %s flags %u: grouping of tasks changes the result", sas, sbs, flags);
	}
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	mem_free(c1);
	mem_free(c2);
	mem_free(c3);
	mem_free(ref);
	destroy(&t);
}

/* A [M,K] @ B [K,N] with the operands stored as the flags say. */
static void check_2d(int64_t M, int64_t K, int64_t N, unsigned flags)
{
	int64_t da[2] = {M, K}, db[2] = {K, N};
	if (flags & NF_TRANS_A)
		da[0] = K, da[1] = M;
	if (flags & NF_TRANS_B)
		db[0] = N, db[1] = K;
	Shape sa = shape(2, da), sb = shape(2, db);
	check_case(&sa, &sb, flags);
}

static void test_small(void)
{
	static const int64_t s[][3] = {{1, 1, 1},   {1, 7, 1},     {7, 1, 17},   {7, 17, 129},
				       {17, 7, 1},  {1, 129, 130}, {130, 1, 7},  {6, 64, 64},
				       {12, 3, 128}, {5, 63, 65},  {13, 300, 33}};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		for (unsigned f = 0; f < 4; f++)
			check_2d(s[i][0], s[i][1], s[i][2], f << 1);
}

static void test_medium(void)
{
	static const int64_t s[][3] = {{129, 130, 257}, {130, 257, 129}, {257, 129, 130},
				       {64, 3072, 64},  {64, 64, 3072},  {2, 3072, 768}};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		for (unsigned f = 0; f < 4; f++)
			check_2d(s[i][0], s[i][1], s[i][2], f << 1);
}

static void test_transformer(void)
{
	/* a linear layer over [batch, seq, d]: folds into one GEMM */
	int64_t a[3] = {2, 96, 256}, b[2] = {256, 768};
	Shape sa = shape(3, a), sb = shape(2, b);
	check_case(&sa, &sb, 0);
	/* and its gradients: dX = dY W^T, dW = X^T dY (batch flattened) */
	int64_t dy[3] = {2, 96, 768}, w[2] = {256, 768};
	sa = shape(3, dy), sb = shape(2, w);
	check_case(&sa, &sb, NF_TRANS_B);
	int64_t x2[2] = {192, 256}, dy2[2] = {192, 768};
	sa = shape(2, x2), sb = shape(2, dy2);
	check_case(&sa, &sb, NF_TRANS_A);
	/* attention: q @ k^T and p @ v, [B,H,T,hd] */
	int64_t q[4] = {2, 4, 67, 16}, k[4] = {2, 4, 67, 16};
	sa = shape(4, q), sb = shape(4, k);
	check_case(&sa, &sb, NF_TRANS_B);
	int64_t p[4] = {2, 4, 67, 67}, v[4] = {2, 4, 67, 16};
	sa = shape(4, p), sb = shape(4, v);
	check_case(&sa, &sb, 0);
}

static void test_broadcast(void)
{
	struct {
		int ra, rb;
		int64_t a[4], b[4];
		unsigned flags;
	} s[] = {
		{4, 4, {2, 3, 17, 33}, {2, 3, 33, 65}, 0},
		{4, 3, {2, 1, 7, 9}, {3, 9, 5}, 0},               /* both broadcast */
		{2, 3, {17, 33}, {3, 33, 20}, 0},                 /* A shared */
		{3, 3, {1, 9, 70}, {4, 70, 9}, NF_TRANS_A | NF_TRANS_B},
		{3, 2, {4, 70, 9}, {70, 130}, NF_TRANS_A},        /* no fold: A transposed */
		{3, 3, {4, 13, 70}, {1, 70, 130}, 0},             /* B batch of one: folds */
		{4, 2, {3, 1, 13, 70}, {130, 70}, NF_TRANS_B},
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		Shape sa = shape(s[i].ra, s[i].a), sb = shape(s[i].rb, s[i].b);
		check_case(&sa, &sb, s[i].flags);
	}
}

/* The AVX2 (8 lanes, 6 x 16 tiles) and SSE2 (4 lanes, no FMA) variants,
 * which this machine can run too. */
static void test_narrower_targets(void)
{
	static const be_Options avx2 = {.opt_level = 3, .cpu = "haswell",
					.features = "+avx2,+avx,+fma,+sse4.2"};
	static const be_Options sse2 = {.opt_level = 3, .cpu = "x86-64", .features = "+sse2"};
	const be_Options *t[2] = {&avx2, &sse2};
	for (int i = 0; i < 2; i++) {
		target = t[i];
		for (unsigned f = 0; f < 4; f++) {
			check_2d(1, 33, 70, f << 1);
			check_2d(37, 129, 35, f << 1);
			check_2d(130, 600, 7, f << 1);
		}
		int64_t a[3] = {2, 19, 40}, b[2] = {40, 50};
		Shape sa = shape(3, a), sb = shape(2, b);
		check_case(&sa, &sb, 0);
	}
	target = NULL;
}

/* A(i, k) of a [M, K] @ [K, N] product stored as the flags say */
static float *a_at(float *a, int64_t M, int64_t K, unsigned flags, int64_t i, int64_t k)
{
	return flags & NF_TRANS_A ? &a[k * M + i] : &a[i * K + k];
}

static float *b_at(float *b, int64_t K, int64_t N, unsigned flags, int64_t k, int64_t j)
{
	return flags & NF_TRANS_B ? &b[j * K + k] : &b[k * N + j];
}

/* One skipzeros case: the plain and the skipping program of one shape,
 * A(i, k) = 0 for k > i + off, B finite, then NaN in row K-1 and inf in
 * row off+1 (when they exist), which rows i < K-1-off resp. i < 1 mask. */
static void check_skip(int64_t M, int64_t K, int64_t N, int64_t off, unsigned flags)
{
	int64_t da[2] = {M, K}, db[2] = {K, N};
	if (flags & NF_TRANS_A)
		da[0] = K, da[1] = M;
	if (flags & NF_TRANS_B)
		db[0] = N, db[1] = K;
	Shape sa = shape(2, da), sb = shape(2, db);
	Case plain = {0}, skip = {0};
	int ok = !build(&plain, &sa, &sb, flags) && !build(&skip, &sa, &sb, flags | NF_SKIPZEROS);
	CHECK_MSG(ok, "build %lldx%lldx%lld flags %u skipzeros", (long long)M, (long long)K,
		  (long long)N, flags);
	rt_Pool *pool = rt_pool_create(2);
	rt_Exec *e[2] = {NULL, NULL};
	rt_Tensor ta[2], tb[2], tc[2];
	Diag d;
	diag_init(&d);
	for (int v = 0; ok && v < 2; v++)
		ok = !rt_exec_create(v ? skip.prog : plain.prog, pool, &e[v], &d) &&
		     !rt_exec_tensor(e[v], "a", &ta[v]) && !rt_exec_tensor(e[v], "b", &tb[v]) &&
		     !rt_exec_tensor(e[v], "c", &tc[v]);
	CHECK(ok);
	if (!ok)
		goto done;
	rng = 0x5eedull + (uint64_t)(M * K * N) + flags;
	for (int64_t i = 0; i < M; i++)
		for (int64_t k = 0; k < K; k++)
			*a_at(ta[0].data, M, K, flags, i, k) = k > i + off ? 0.0f : rnd();
	for (int64_t i = 0; i < K * N; i++)
		((float *)tb[0].data)[i] = rnd();
	memcpy(ta[1].data, ta[0].data, (size_t)rt_nbytes(&ta[0]));
	memcpy(tb[1].data, tb[0].data, (size_t)rt_nbytes(&tb[0]));
	rt_exec_run(e[0]);
	rt_exec_run(e[1]);
	int64_t n = M * N;
	CHECK_MSG(!memcmp(tc[0].data, tc[1].data, (size_t)n * 4), "%lldx%lldx%lld flags %u: "
		  "skipzeros changes the bits of a finite product", (long long)M, (long long)K,
		  (long long)N, flags);
	/* non-finite rows of B */
	for (int64_t j = 0; j < N; j++) {
		*b_at(tb[1].data, K, N, flags, K - 1, j) = NAN;
		if (off + 1 < K - 1)
			*b_at(tb[1].data, K, N, flags, off + 1, j) = j % 2 ? INFINITY : -INFINITY;
	}
	rt_exec_run(e[1]);
	int bad = 0;
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < N; j++) {
			double s = 0;
			for (int64_t k = 0; k < K; k++) {
				double x = *a_at(ta[1].data, M, K, flags, i, k);
				if (x != 0)
					s += x * *b_at(tb[1].data, K, N, flags, k, j);
			}
			float got = ((float *)tc[1].data)[i * N + j];
			bool fin = isfinite(s);
			if (fin != (bool)isfinite(got) || (fin && fabs(got - s) > 1e-4 * (1 + fabs(s))))
				bad++;
		}
	CHECK_MSG(bad == 0, "%lldx%lldx%lld flags %u: %d outputs of a skipzeros product with "
		  "NaN and inf in masked rows of B are wrong", (long long)M, (long long)K,
		  (long long)N, flags, bad);
done:
	if (d.nerror)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	rt_exec_destroy(e[0]);
	rt_exec_destroy(e[1]);
	rt_pool_destroy(pool);
	destroy(&plain);
	destroy(&skip);
}

static void test_skipzeros(void)
{
	static const be_Options avx2 = {.opt_level = 3, .cpu = "haswell",
					.features = "+avx2,+avx,+fma,+sse4.2"};
	static const be_Options sse2 = {.opt_level = 3, .cpu = "x86-64", .features = "+sse2"};
	static const be_Options ref = {.opt_level = 3, .matmul_ref = true};
	const be_Options *t[4] = {NULL, &avx2, &sse2, &ref};
	/* M x K x N, off: attention's p @ v is [T, S] @ [S, hd] with off = S - T */
	static const int64_t s[][4] = {{67, 67, 16, 0}, {1, 64, 64, 40}, {4, 64, 16, 60},
				       {130, 600, 33, 470}, {6, 7, 70, 1}, {17, 1, 5, 0}};
	for (int i = 0; i < 4; i++) {
		target = t[i];
		for (size_t j = 0; j < sizeof s / sizeof s[0]; j++)
			for (unsigned f = 0; f < 4; f++)   /* the others: plain and B transposed */
				if (i == 0 || (j < 2 && f % 2 == 0))
					check_skip(s[j][0], s[j][1], s[j][2], s[j][3], f << 1);
	}
	target = NULL;
}

int main(void)
{
	RUN(test_small);
	RUN(test_medium);
	RUN(test_transformer);
	RUN(test_broadcast);
	RUN(test_narrower_targets);
	RUN(test_skipzeros);
	return check_report();
}

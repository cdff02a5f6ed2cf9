/* test_interp.c: the reference interpreter against hand-written expectations.
 *
 * The interpreter is the oracle for every kernel, so each op is checked
 * here against a formula written out independently in the test: explicit
 * nested loops with their own index arithmetic, closed forms, or numbers
 * worked out by hand. Inputs are small pseudo-random non-zero values, so a
 * kernel that ignores an element or mixes up two is caught. */
#include "../check.h"
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

static SrcLoc noloc;
static uint64_t rng = 0x9e3779b97f4a7c15u;

/* Uniform in [-2, -0.1] u [0.1, 2]: never zero, never tiny. */
static double rnd(void)
{
	rng = rng * 6364136223846793005u + 1442695040888963407u;
	double u = (double)(rng >> 11) / 9007199254740992.0; /* [0,1) */
	double m = 0.1 + 1.9 * u;
	return (rng >> 7) & 1 ? m : -m;
}

static Shape S(int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
	return (Shape){.rank = (uint8_t)rank, .dim = {a, b, c, d}};
}

/* One test graph and its values; inputs are filled with random numbers. */
typedef struct T {
	Graph *g;
	Diag d;
	double *val[64];
	double buf[64][256];
} T;

static T *t_new(void)
{
	T *t = calloc(1, sizeof *t);
	t->g = ir_graph_create();
	diag_init(&t->d);
	return t;
}

static ValId t_in(T *t, const char *name, DType dt, Shape s)
{
	ValId v = ir_input(t->g, name, dt, &s, noloc, &t->d);
	if (v == VAL_NONE || v >= 64 || ir_numel(&s) > 256)
		return VAL_NONE;
	for (int64_t i = 0; i < ir_numel(&s); i++)
		t->buf[v][i] = rnd();
	t->val[v] = t->buf[v];
	return v;
}

static int t_run(T *t)
{
	return ir_interp(t->g, t->val, &t->d);
}

static void t_free(T *t)
{
	ir_interp_free(t->g, t->val);
	ir_graph_destroy(t->g);
	diag_free(&t->d);
	free(t);
}

static void test_unary(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(2, 3, 4, 0, 0));
	ValId p = t_in(t, "p", DT_F32, S(2, 3, 4, 0, 0));
	for (int i = 0; i < 12; i++)
		t->buf[p][i] = fabs(t->buf[p][i]);
	Op ops[] = {OP_NEG, OP_EXP, OP_TANH, OP_GELU, OP_RELU, OP_SILU};
	ValId out[6];
	for (int k = 0; k < 6; k++)
		out[k] = ir_unary(t->g, ops[k], x, noloc, &t->d);
	ValId lg = ir_unary(t->g, OP_LOG, p, noloc, &t->d);
	ValId sq = ir_unary(t->g, OP_SQRT, p, noloc, &t->d);
	ValId rs = ir_unary(t->g, OP_RSQRT, p, noloc, &t->d);
	CHECK(t_run(t) == 0);
	for (int i = 0; i < 12; i++) {
		double a = t->buf[x][i], b = t->buf[p][i];
		CHECK_NEAR(t->val[out[0]][i], -a, 0);
		CHECK_NEAR(t->val[out[1]][i], exp(a), 1e-12);
		CHECK_NEAR(t->val[out[2]][i], (exp(2 * a) - 1) / (exp(2 * a) + 1), 1e-12);
		double c = 0.7978845608028654; /* sqrt(2/pi) */
		CHECK_NEAR(t->val[out[3]][i], 0.5 * a * (1 + tanh(c * (a + 0.044715 * a * a * a))),
			   1e-12);
		CHECK_NEAR(t->val[out[4]][i], a < 0 ? 0.0 : a, 0);
		CHECK_NEAR(t->val[out[5]][i], a * (1 / (1 + exp(-a))), 1e-12);
		CHECK_NEAR(t->val[lg][i], log(b), 1e-12);
		CHECK_NEAR(t->val[sq][i] * t->val[sq][i], b, 1e-12);
		CHECK_NEAR(t->val[rs][i] * t->val[rs][i] * b, 1.0, 1e-12);
	}
	/* GELU at known points: gelu(0) = 0, gelu(1) ~= 0.841192 (tanh form) */
	t_free(t);
}

static void test_gelu_points(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(1, 3, 0, 0, 0));
	t->buf[x][0] = 0;
	t->buf[x][1] = 1;
	t->buf[x][2] = -3;
	ValId y = ir_unary(t->g, OP_GELU, x, noloc, &t->d);
	CHECK(t_run(t) == 0);
	CHECK_NEAR(t->val[y][0], 0, 0);
	CHECK_NEAR(t->val[y][1], 0.8411919906082768, 1e-12);
	CHECK_NEAR(t->val[y][2], -0.0036373920817729943, 1e-12);
	t_free(t);
}

static void test_cast(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(1, 4, 0, 0, 0));
	double v[4] = {2.7, -2.7, 0.5, -0.5};
	memcpy(t->buf[x], v, sizeof v);
	ValId i = ir_cast(t->g, x, DT_I32, noloc, &t->d);
	ValId f = ir_cast(t->g, i, DT_F32, noloc, &t->d);
	CHECK(t_run(t) == 0);
	double want[4] = {2, -2, 0, 0};
	for (int k = 0; k < 4; k++) {
		CHECK_NEAR(t->val[i][k], want[k], 0);
		CHECK_NEAR(t->val[f][k], want[k], 0);
	}
	t_free(t);
}

/* a [2,3,4] op b [3,1]: b repeats along axes 0 and 2. */
static void test_binary_broadcast(void)
{
	T *t = t_new();
	ValId a = t_in(t, "a", DT_F32, S(3, 2, 3, 4, 0));
	ValId b = t_in(t, "b", DT_F32, S(2, 3, 1, 0, 0));
	Op ops[4] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
	ValId y[4], r[4];
	for (int k = 0; k < 4; k++) {
		y[k] = ir_binary(t->g, ops[k], a, b, noloc, &t->d);
		r[k] = ir_binary(t->g, ops[k], b, a, noloc, &t->d);
	}
	CHECK(t_run(t) == 0);
	const double *A = t->buf[a], *B = t->buf[b];
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 4; k++) {
				int o = i * 12 + j * 4 + k;
				double x = A[o], z = B[j];
				CHECK_NEAR(t->val[y[0]][o], x + z, 0);
				CHECK_NEAR(t->val[y[1]][o], x - z, 0);
				CHECK_NEAR(t->val[y[2]][o], x * z, 0);
				CHECK_NEAR(t->val[y[3]][o], x / z, 0);
				CHECK_NEAR(t->val[r[1]][o], z - x, 0);
				CHECK_NEAR(t->val[r[3]][o], z / x, 0);
			}
	t_free(t);
}

static void test_reduce(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(3, 2, 3, 4, 0));
	ValId s1 = ir_reduce(t->g, OP_SUM, x, 1, false, noloc, &t->d);
	ValId m2 = ir_reduce(t->g, OP_MEAN, x, -1, true, noloc, &t->d);
	ValId x0 = ir_reduce(t->g, OP_MAX, x, 0, false, noloc, &t->d);
	CHECK(t_run(t) == 0);
	const double *X = t->buf[x];
#define AT(i, j, k) X[(i) * 12 + (j) * 4 + (k)]
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 4; k++)
			CHECK_NEAR(t->val[s1][i * 4 + k], AT(i, 0, k) + AT(i, 1, k) + AT(i, 2, k),
				   1e-12);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			CHECK_NEAR(t->val[m2][i * 3 + j],
				   (AT(i, j, 0) + AT(i, j, 1) + AT(i, j, 2) + AT(i, j, 3)) / 4, 1e-12);
	for (int j = 0; j < 3; j++)
		for (int k = 0; k < 4; k++)
			CHECK_NEAR(t->val[x0][j * 4 + k], fmax(AT(0, j, k), AT(1, j, k)), 0);
#undef AT
	t_free(t);
}

/* Naive C[m][n] = sum_k A[m][k] B[k][n] with explicit storage formulas. */
static void test_matmul(void)
{
	T *t = t_new();
	ValId a = t_in(t, "a", DT_F32, S(2, 3, 4, 0, 0));   /* [M=3,K=4] */
	ValId at = t_in(t, "at", DT_F32, S(2, 4, 3, 0, 0)); /* A^T stored [K,M] */
	ValId b = t_in(t, "b", DT_F32, S(2, 4, 5, 0, 0));   /* [K=4,N=5] */
	ValId bt = t_in(t, "bt", DT_F32, S(2, 5, 4, 0, 0)); /* B^T stored [N,K] */
	ValId c0 = ir_matmul(t->g, a, b, 0, noloc, &t->d);
	ValId c1 = ir_matmul(t->g, at, b, NF_TRANS_A, noloc, &t->d);
	ValId c2 = ir_matmul(t->g, a, bt, NF_TRANS_B, noloc, &t->d);
	ValId c3 = ir_matmul(t->g, at, bt, NF_TRANS_A | NF_TRANS_B, noloc, &t->d);
	CHECK(t_run(t) == 0);
	const double *A = t->buf[a], *AT = t->buf[at], *B = t->buf[b], *BT = t->buf[bt];
	for (int m = 0; m < 3; m++)
		for (int n = 0; n < 5; n++) {
			double e0 = 0, e1 = 0, e2 = 0, e3 = 0;
			for (int k = 0; k < 4; k++) {
				e0 += A[m * 4 + k] * B[k * 5 + n];
				e1 += AT[k * 3 + m] * B[k * 5 + n];
				e2 += A[m * 4 + k] * BT[n * 4 + k];
				e3 += AT[k * 3 + m] * BT[n * 4 + k];
			}
			CHECK_NEAR(t->val[c0][m * 5 + n], e0, 1e-12);
			CHECK_NEAR(t->val[c1][m * 5 + n], e1, 1e-12);
			CHECK_NEAR(t->val[c2][m * 5 + n], e2, 1e-12);
			CHECK_NEAR(t->val[c3][m * 5 + n], e3, 1e-12);
		}
	t_free(t);
}

/* skipzeros: A = [[1, 0], [0, 2]], B = [[3, NaN], [inf, 4]]: each output
 * reads only the B entries of nonzero A's; without the flag 0 * NaN and
 * 0 * inf are NaN. */
static void test_matmul_skipzeros(void)
{
	for (int skip = 0; skip < 2; skip++) {
		T *t = t_new();
		ValId a = t_in(t, "a", DT_F32, S(2, 2, 2, 0, 0)), b = t_in(t, "b", DT_F32, S(2, 2, 2, 0, 0));
		ValId c = ir_matmul(t->g, a, b, skip ? NF_SKIPZEROS : 0, noloc, &t->d);
		static const double A[4] = {1, 0, 0, 2};
		const double B[4] = {3, NAN, INFINITY, 4};
		memcpy(t->buf[a], A, sizeof A);
		memcpy(t->buf[b], B, sizeof B);
		CHECK(c != VAL_NONE && t_run(t) == 0);
		if (skip) {
			CHECK(t->val[c][0] == 3 && isnan(t->val[c][1]));
			CHECK(isinf(t->val[c][2]) && t->val[c][3] == 8);
		} else {
			CHECK(isnan(t->val[c][0]) && isnan(t->val[c][1]) && isnan(t->val[c][3]));
		}
		t_free(t);
	}
}

/* q [2,1,3,4] @ k [3,4,2]: batch [2,1] with [3] broadcasts to [2,3]. */
static void test_matmul_batch(void)
{
	T *t = t_new();
	ValId q = t_in(t, "q", DT_F32, S(4, 2, 1, 3, 4));
	ValId k = t_in(t, "k", DT_F32, S(3, 3, 4, 2, 0));
	ValId c = ir_matmul(t->g, q, k, 0, noloc, &t->d);
	CHECK(c != VAL_NONE && ir_node(t->g, c)->shape.rank == 4);
	CHECK(t_run(t) == 0);
	const double *Q = t->buf[q], *K = t->buf[k];
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			for (int m = 0; m < 3; m++)
				for (int n = 0; n < 2; n++) {
					double e = 0;
					for (int x = 0; x < 4; x++)
						e += Q[i * 12 + m * 4 + x] * K[j * 8 + x * 2 + n];
					CHECK_NEAR(t->val[c][((i * 3 + j) * 3 + m) * 2 + n], e, 1e-12);
				}
	t_free(t);
}

static void test_movement(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(3, 2, 3, 4, 0));
	ValId y = t_in(t, "y", DT_F32, S(3, 2, 1, 4, 0));
	Shape flat = S(2, 6, 4, 0, 0);
	ValId r = ir_reshape(t->g, x, &flat, noloc, &t->d);
	uint8_t perm[IR_MAX_RANK] = {2, 0, 1};
	ValId p = ir_permute(t->g, x, perm, noloc, &t->d); /* [4,2,3] */
	ValId s = ir_slice(t->g, x, 1, 1, 3, noloc, &t->d); /* [2,2,4] */
	ValId parts[3] = {y, x, y};
	ValId c = ir_concat(t->g, parts, 3, 1, noloc, &t->d); /* [2,5,4] */
	CHECK(t_run(t) == 0);
	const double *X = t->buf[x], *Y = t->buf[y];
	for (int i = 0; i < 24; i++)
		CHECK_NEAR(t->val[r][i], X[i], 0);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 4; k++)
				CHECK_NEAR(t->val[p][k * 6 + i * 3 + j], X[i * 12 + j * 4 + k], 0);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			for (int k = 0; k < 4; k++)
				CHECK_NEAR(t->val[s][i * 8 + j * 4 + k], X[i * 12 + (j + 1) * 4 + k], 0);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 4; k++) {
			const double *C = t->val[c] + i * 20;
			CHECK_NEAR(C[0 * 4 + k], Y[i * 4 + k], 0);
			for (int j = 0; j < 3; j++)
				CHECK_NEAR(C[(1 + j) * 4 + k], X[i * 12 + j * 4 + k], 0);
			CHECK_NEAR(C[4 * 4 + k], Y[i * 4 + k], 0);
		}
	t_free(t);
}

static void test_sources(void)
{
	T *t = t_new();
	Shape s = S(2, 2, 3, 0, 0);
	ValId c = ir_const(t->g, -1.5, DT_F32, &s, noloc, &t->d);
	ValId ci = ir_const(t->g, 7, DT_I32, &s, noloc, &t->d);
	ValId io = ir_iota(t->g, 5, DT_I32, noloc, &t->d);
	CHECK(t_run(t) == 0);
	for (int i = 0; i < 6; i++) {
		CHECK_NEAR(t->val[c][i], -1.5, 0);
		CHECK_NEAR(t->val[ci][i], 7, 0);
	}
	for (int i = 0; i < 5; i++)
		CHECK_NEAR(t->val[io][i], i, 0);
	t_free(t);
}

static void test_gather(void)
{
	T *t = t_new();
	Shape ts = S(2, 5, 3, 0, 0);
	ValId tab = ir_param(t->g, "wte", &ts, INIT_NORMAL, 0.02, noloc, &t->d);
	for (int i = 0; i < 15; i++)
		t->buf[tab][i] = rnd();
	t->val[tab] = t->buf[tab];
	ValId ix = t_in(t, "ix", DT_I32, S(2, 2, 2, 0, 0));
	double rows[4] = {4, 0, 2, 2};
	memcpy(t->buf[ix], rows, sizeof rows);
	ValId e = ir_gather(t->g, tab, ix, noloc, &t->d);
	CHECK(t_run(t) == 0);
	for (int r = 0; r < 4; r++)
		for (int k = 0; k < 3; k++)
			CHECK_NEAR(t->val[e][r * 3 + k], t->buf[tab][(int)rows[r] * 3 + k], 0);
	ir_interp_free(t->g, t->val);
	CHECK(t->val[e] == NULL);

	Source src;
	source_from_string(&src, "m.msw", "x = embed(tok)\n");
	ir_node(t->g, e)->loc = (SrcLoc){&src, 1, 5, 5};
	t->buf[ix][2] = 5; /* one past the last row */
	CHECK(t_run(t) == -1);
	CHECK_MSG(strstr(diag_text(&t->d), "m.msw:1:5: error: gather index 5") != NULL, "%s",
		  diag_text(&t->d));
	CHECK(t->val[e] == NULL);
	t->buf[ix][2] = -1;
	CHECK(t_run(t) == -1);
	source_free(&src);
	t_free(t);
}

/* T=3 queries, S=5 keys: query i sees keys 0..i+2. */
static void test_causal_mask(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(3, 2, 3, 5, 0));
	ValId m = ir_causal_mask(t->g, x, noloc, &t->d);
	CHECK(t_run(t) == 0);
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 5; j++) {
				int o = b * 15 + i * 5 + j;
				if (j > i + 2)
					CHECK(isinf(t->val[m][o]) && t->val[m][o] < 0);
				else
					CHECK_NEAR(t->val[m][o], t->buf[x][o], 0);
			}
	t_free(t);
}

static void test_softmax(void)
{
	T *t = t_new();
	ValId x = t_in(t, "x", DT_F32, S(2, 3, 4, 0, 0));
	ValId big = t_in(t, "big", DT_F32, S(1, 2, 0, 0, 0));
	t->buf[big][0] = 1000;
	t->buf[big][1] = 1001;
	ValId y = ir_softmax(t->g, x, noloc, &t->d);
	ValId yb = ir_softmax(t->g, big, noloc, &t->d);
	ValId sq = ir_causal_mask(t->g, x, noloc, &t->d);
	ValId ym = ir_softmax(t->g, sq, noloc, &t->d);
	CHECK(t_run(t) == 0);
	for (int r = 0; r < 3; r++) {
		double sum = 0, z = 0;
		for (int k = 0; k < 4; k++)
			z += exp(t->buf[x][r * 4 + k]);
		for (int k = 0; k < 4; k++) {
			sum += t->val[y][r * 4 + k];
			CHECK_NEAR(t->val[y][r * 4 + k], exp(t->buf[x][r * 4 + k]) / z, 1e-12);
		}
		CHECK_NEAR(sum, 1.0, 1e-12);
	}
	/* softmax(1000, 1001) = (1, e) / (1 + e), without overflow */
	CHECK_NEAR(t->val[yb][0], 1 / (1 + M_E), 1e-12);
	CHECK_NEAR(t->val[yb][1], M_E / (1 + M_E), 1e-12);
	/* masked (T=3,S=4: row 0 sees keys 0,1): masked entries are exactly 0 */
	CHECK_NEAR(t->val[ym][2], 0, 0);
	CHECK_NEAR(t->val[ym][3], 0, 0);
	double z = exp(t->buf[x][0]) + exp(t->buf[x][1]);
	CHECK_NEAR(t->val[ym][0], exp(t->buf[x][0]) / z, 1e-12);
	t_free(t);
}

static void test_cross_entropy(void)
{
	T *t = t_new();
	ValId l = t_in(t, "l", DT_F32, S(2, 2, 3, 0, 0));
	ValId tg = t_in(t, "t", DT_I32, S(1, 2, 0, 0, 0));
	double logits[6] = {1, 2, 3, 0.5, -1, 0.25};
	memcpy(t->buf[l], logits, sizeof logits);
	t->buf[tg][0] = 2;
	t->buf[tg][1] = 0;
	ValId ce = ir_cross_entropy(t->g, l, tg, noloc, &t->d);
	CHECK(t_run(t) == 0);
	/* row 0: -log(e^3 / (e^1+e^2+e^3)); row 1: -log(e^.5 / (e^.5+e^-1+e^.25)) */
	double r0 = -log(exp(3) / (exp(1) + exp(2) + exp(3)));
	double r1 = -log(exp(0.5) / (exp(0.5) + exp(-1) + exp(0.25)));
	CHECK_NEAR(t->val[ce][0], (r0 + r1) / 2, 1e-12);
	CHECK_NEAR(r0, 0.40760596444438, 1e-12); /* worked out by hand */
	ir_interp_free(t->g, t->val);
	t->buf[tg][1] = 3;
	CHECK(t_run(t) == -1);
	CHECK(strstr(diag_text(&t->d), "target 3 at row 1") != NULL);
	t_free(t);
}

/* A named source (param or state) with random values, v-positive if asked
 * (second moments are sums of squares). */
static ValId t_src(T *t, ValId v, bool positive)
{
	if (v == VAL_NONE || v >= 64)
		return VAL_NONE;
	for (int64_t i = 0; i < ir_numel(&ir_node(t->g, v)->shape); i++)
		t->buf[v][i] = positive ? fabs(rnd()) : rnd();
	t->val[v] = t->buf[v];
	return v;
}

/* The update ops against AdamW written out here, in double: a decaying
 * matrix and a vector without decay, clipping that bites, the norm
 * written into hp, and p, m, v updated in the caller's buffers. */
static void test_update(void)
{
	T *t = t_new();
	Shape s1 = S(2, 3, 5, 0, 0), s2 = S(1, 4, 0, 0, 0), hs = S(1, IR_HP_COUNT, 0, 0, 0);
	ValId p1 = t_src(t, ir_param(t->g, "w", &s1, INIT_NONE, 0, noloc, &t->d), false);
	ValId p2 = t_src(t, ir_param(t->g, "b", &s2, INIT_NONE, 0, noloc, &t->d), false);
	ValId g1 = t_in(t, "gw", DT_F32, s1), g2 = t_in(t, "gb", DT_F32, s2);
	ValId hp = t_in(t, "optim.hparams", DT_F32, hs);
	static const double h[IR_HP_COUNT] = {0.01, 0.9, 0.95, 1e-8, 0.1, 0.19, 0.0975, 0.5, -1};
	memcpy(t->buf[hp], h, sizeof h);
	ValId part[2] = {ir_sumsq(t->g, g1, noloc, &t->d), ir_sumsq(t->g, g2, noloc, &t->d)};
	ValId c = ir_grad_norm(t->g, hp, part, 2, noloc, &t->d);
	ValId m1 = t_src(t, ir_state(t->g, "w.m", DT_F32, &s1, noloc, &t->d), false);
	ValId v1 = t_src(t, ir_state(t->g, "w.v", DT_F32, &s1, noloc, &t->d), true);
	ValId m2 = t_src(t, ir_state(t->g, "b.m", DT_F32, &s2, noloc, &t->d), false);
	ValId v2 = t_src(t, ir_state(t->g, "b.v", DT_F32, &s2, noloc, &t->d), true);
	ValId u1 = ir_adamw(t->g, p1, g1, m1, v1, hp, c, VAL_NONE, NF_DECAY, noloc, &t->d);
	ValId u2 = ir_adamw(t->g, p2, g2, m2, v2, hp, c, VAL_NONE, 0, noloc, &t->d);
	CHECK_MSG(u2 != VAL_NONE && u2 < 64, "%s", diag_text(&t->d));
	if (u2 == VAL_NONE || u2 >= 64) {
		t_free(t);
		return;
	}
	/* the expectation, from copies of the inputs */
	double ss = 0;
	for (int i = 0; i < 15; i++)
		ss += t->buf[g1][i] * t->buf[g1][i];
	for (int i = 0; i < 4; i++)
		ss += t->buf[g2][i] * t->buf[g2][i];
	double norm = sqrt(ss), clip = 0.5 / (norm + 1e-6);
	CHECK_MSG(clip < 1, "the test means clipping to bite (norm %g)", norm);
	double want[2][3][15];
	const ValId P[2] = {p1, p2}, G[2] = {g1, g2}, M[2] = {m1, m2}, Vv[2] = {v1, v2};
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < (k ? 4 : 15); i++) {
			double gi = t->buf[G[k]][i] * clip, p = t->buf[P[k]][i];
			if (k == 0)
				p -= 0.01 * 0.1 * p;
			double m = 0.9 * t->buf[M[k]][i] + 0.1 * gi;
			double v = 0.95 * t->buf[Vv[k]][i] + 0.05 * gi * gi;
			double mhat = m / 0.19, vhat = v / 0.0975;
			want[k][0][i] = p - 0.01 * mhat / (sqrt(vhat) + 1e-8);
			want[k][1][i] = m;
			want[k][2][i] = v;
		}
	CHECK(t_run(t) == 0);
	CHECK_NEAR(t->val[part[0]][0] + t->val[part[1]][0], ss, 1e-12 * ss);
	CHECK_NEAR(t->val[c][0], clip, 1e-15);
	CHECK_NEAR(t->buf[hp][IR_HP_GRAD_NORM], norm, 1e-12 * norm);
	const ValId U[2] = {u1, u2};
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < (k ? 4 : 15); i++) {
			/* PyTorch's form (bias-corrected moments); the IR's folds the
			 * corrections into lr and the denominator: equal up to rounding */
			CHECK_NEAR(t->val[U[k]][i], want[k][0][i], 1e-12);
			CHECK_NEAR(t->buf[P[k]][i], t->val[U[k]][i], 0);
			CHECK_NEAR(t->buf[M[k]][i], want[k][1][i], 1e-15);
			CHECK_NEAR(t->buf[Vv[k]][i], want[k][2][i], 1e-15);
		}
	/* no clipping: the factor is 1 whatever the norm */
	t->buf[hp][IR_HP_CLIP] = 0;
	ir_interp_free(t->g, t->val);
	CHECK(t_run(t) == 0 && t->val[c][0] == 1.0);
	t_free(t);
}

/* sumsq's chunks: 16384 elements each, the last one partial. */
static void test_sumsq_chunks(void)
{
	Graph *g = ir_graph_create();
	Diag d;
	diag_init(&d);
	Shape s = S(2, 5, 4000, 0, 0);
	ValId x = ir_input(g, "x", DT_F32, &s, noloc, &d);
	ValId q = ir_sumsq(g, x, noloc, &d);
	CHECK(q != VAL_NONE && ir_node(g, q)->dtype == DT_F64 && ir_node(g, q)->shape.rank == 1 &&
	      ir_node(g, q)->shape.dim[0] == 2);
	double *xs = malloc(20000 * sizeof *xs), *val[2] = {xs, NULL};
	double want[2] = {0, 0};
	for (int i = 0; i < 20000; i++) {
		xs[i] = rnd();
		want[i >= IR_SUMSQ_CHUNK] += xs[i] * xs[i];
	}
	CHECK(ir_interp(g, val, &d) == 0);
	if (val[1]) {
		CHECK_NEAR(val[1][0], want[0], 1e-9);
		CHECK_NEAR(val[1][1], want[1], 1e-9);
	}
	ir_interp_free(g, val);
	free(xs);
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_missing_input(void)
{
	T *t = t_new();
	Shape s = S(1, 2, 0, 0, 0);
	ValId x = ir_input(t->g, "x", DT_F32, &s, noloc, &t->d);
	ir_unary(t->g, OP_NEG, x, noloc, &t->d);
	CHECK(t_run(t) == -1);
	CHECK(strstr(diag_text(&t->d), "input \"x\" has no value") != NULL);
	t_free(t);
}

int main(void)
{
	RUN(test_unary);
	RUN(test_gelu_points);
	RUN(test_cast);
	RUN(test_binary_broadcast);
	RUN(test_reduce);
	RUN(test_matmul);
	RUN(test_matmul_skipzeros);
	RUN(test_matmul_batch);
	RUN(test_movement);
	RUN(test_sources);
	RUN(test_gather);
	RUN(test_causal_mask);
	RUN(test_softmax);
	RUN(test_cross_entropy);
	RUN(test_update);
	RUN(test_sumsq_chunks);
	RUN(test_missing_input);
	return check_report();
}

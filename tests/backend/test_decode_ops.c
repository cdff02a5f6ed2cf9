/* test_decode_ops.c: the ops of decoding with a KV cache (state,
 * cache_write, iota_offset, causal_mask_offset): shape rules, the
 * interpreter's model of state, memory planning, and the kernels against
 * the interpreter.
 *
 *   - shape rules accept the documented shapes and reject the rest with a
 *     message (a cache that is not a state, non-scalar or f32 positions,
 *     mismatched rows, too many new rows);
 *   - the interpreter keeps a state across calls: several decode steps
 *     through ir_interp fill the cache row by row, a chain of writes lands
 *     in the state, and a write past the cache's end is an error;
 *   - plan_memory gives a cache_write its state's offset and keeps states
 *     persistent;
 *   - the kernels, run step after step on random non-zero data (the cache
 *     starts non-zero too) with awkward shapes and several positions, agree
 *     with the interpreter bitwise (they only move data or count; the
 *     causal mask copies), the out-of-range positions write nothing, and 1
 *     and 2 threads give identical bytes. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const SrcLoc L0;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/* f32 values rounded to float, never zero */
static double rval(void)
{
	double x = 0.1 + 0.9 * urand();
	return (float)(urand() < 0.5 ? -x : x);
}

static Shape sh(int rank, const int64_t *dim)
{
	Shape s = {.rank = (uint8_t)rank};
	for (int i = 0; i < rank; i++)
		s.dim[i] = dim[i];
	return s;
}

/* --- shape rules --- */

static void test_shape_rules(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape c = sh(4, (int64_t[]){2, 3, 8, 5}), x1 = sh(4, (int64_t[]){2, 3, 1, 5});
	Shape x9 = sh(4, (int64_t[]){2, 3, 9, 5}), xd = sh(4, (int64_t[]){2, 3, 1, 6});
	Shape scalar = {0}, one = sh(1, (int64_t[]){1});
	ValId pos = ir_input(g, "pos", DT_I32, &scalar, L0, &d);
	ValId posv = ir_input(g, "posv", DT_I32, &one, L0, &d);
	ValId posf = ir_input(g, "posf", DT_F32, &scalar, L0, &d);
	ValId st = ir_state(g, "cache", DT_F32, &c, L0, &d);
	ValId x = ir_input(g, "x", DT_F32, &x1, L0, &d);
	ValId xbig = ir_input(g, "xbig", DT_F32, &x9, L0, &d);
	ValId xbad = ir_input(g, "xbad", DT_F32, &xd, L0, &d);
	ValId plain = ir_input(g, "plain", DT_F32, &c, L0, &d);
	CHECK(d.nerror == 0);
	ValId w = ir_cache_write(g, st, x, pos, L0, &d);
	CHECK(w != VAL_NONE && ir_shape_eq(&ir_node(g, w)->shape, &c));
	ValId w2 = ir_cache_write(g, w, x, pos, L0, &d);   /* a chain of writes */
	CHECK(w2 != VAL_NONE);
	CHECK(d.nerror == 0);
	diag_free(&d);
	diag_init(&d);
	CHECK(ir_cache_write(g, plain, x, pos, L0, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "needs a state") != NULL);
	CHECK(ir_cache_write(g, st, xbig, pos, L0, &d) == VAL_NONE);
	CHECK(ir_cache_write(g, st, xbad, pos, L0, &d) == VAL_NONE);
	CHECK(ir_cache_write(g, st, x, posv, L0, &d) == VAL_NONE);
	CHECK(ir_cache_write(g, st, x, posf, L0, &d) == VAL_NONE);
	CHECK(strstr(diag_text(&d), "i32 scalar") != NULL);
	CHECK(ir_iota_offset(g, posv, 4, DT_I32, L0, &d) == VAL_NONE);
	CHECK(ir_iota_offset(g, pos, 4, DT_U8, L0, &d) == VAL_NONE);
	ValId vec = ir_input(g, "vec", DT_F32, &one, L0, &d);
	CHECK(ir_causal_mask_offset(g, vec, pos, L0, &d) == VAL_NONE);   /* rank 1 */
	CHECK(ir_causal_mask_offset(g, x, posf, L0, &d) == VAL_NONE);
	diag_free(&d);
	diag_init(&d);
	ValId io = ir_iota_offset(g, pos, 4, DT_F32, L0, &d);
	CHECK(io != VAL_NONE && ir_node(g, io)->shape.rank == 1 && ir_node(g, io)->shape.dim[0] == 4);
	/* more queries than keys is fine here (unlike causal_mask) */
	ValId m = ir_causal_mask_offset(g, xbig, pos, L0, &d);
	CHECK(m != VAL_NONE);
	ir_set_output(g, "w", w2);
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	/* the state's name round-trips through the printer and reader */
	char *text = ir_print(g);
	Source src;
	Graph *back = NULL;
	CHECK(text && source_from_string(&src, "t.ir", text) == 0);
	if (text) {
		CHECK_MSG(ir_parse(&src, &back, &d) == 0, "%s", diag_text(&d));
		CHECK(back && ir_hash(back).lo == ir_hash(g).lo && ir_hash(back).hi == ir_hash(g).hi);
		CHECK(strstr(text, "state \"cache\"") != NULL);
		source_free(&src);
	}
	/* two states of one name are refused by the verifier */
	ir_state(g, "cache", DT_F32, &c, L0, &d);
	CHECK(ir_verify(g, &d) != 0);
	mem_free(text);
	ir_graph_destroy(back);
	ir_graph_destroy(g);
	diag_free(&d);
}

/* --- a decode-step graph used by the interpreter and kernel tests ---
 * inputs pos, x [B,H,T,D], s [B,H,Q,S]; state cache [B,H,C,D];
 * outputs w = cache_write(cache, x, pos), m = causal_mask_offset(s, pos),
 * i = iota_offset(pos, 7) as i32 and f = iota_offset(pos, 5) as f32. */
typedef struct Case {
	int64_t B, H, C, T, D, Q, S;
} Case;

static Graph *decode_graph(const Case *k)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape scalar = {0};
	Shape cs = sh(4, (int64_t[]){k->B, k->H, k->C, k->D});
	Shape xs = sh(4, (int64_t[]){k->B, k->H, k->T, k->D});
	Shape ss = sh(4, (int64_t[]){k->B, k->H, k->Q, k->S});
	ValId pos = ir_input(g, "pos", DT_I32, &scalar, L0, &d);
	ValId x = ir_input(g, "x", DT_F32, &xs, L0, &d);
	ValId s = ir_input(g, "s", DT_F32, &ss, L0, &d);
	ValId st = ir_state(g, "cache", DT_F32, &cs, L0, &d);
	ValId w = ir_cache_write(g, st, x, pos, L0, &d);
	ir_set_output(g, "w", w);
	ir_set_output(g, "m", ir_causal_mask_offset(g, s, pos, L0, &d));
	ir_set_output(g, "i", ir_iota_offset(g, pos, 7, DT_I32, L0, &d));
	ir_set_output(g, "f", ir_iota_offset(g, pos, 5, DT_F32, L0, &d));
	PassOptions po = {.alignment = RT_ALIGN, .verify = true};
	if (d.nerror || pass_run_pipeline(g, &po, NULL, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		ir_graph_destroy(g);
		g = NULL;
	}
	diag_free(&d);
	return g;
}

static void test_interp_state(void)
{
	Case k = {1, 2, 4, 1, 3, 1, 4};
	Graph *g = decode_graph(&k);
	CHECK(g != NULL);
	if (!g)
		return;
	double **val = calloc(ir_nnode(g), sizeof *val);
	double cache[24] = {0}, x[6], s[8], pos;
	ValId vpos = ir_find_input(g, "pos"), vx = ir_find_input(g, "x"), vs = ir_find_input(g, "s");
	ValId vc = ir_find_state(g, "cache");
	CHECK(vc != VAL_NONE);
	val[vpos] = &pos;
	val[vx] = x;
	val[vs] = s;
	val[vc] = cache;
	Diag d;
	diag_init(&d);
	for (int step = 0; step < 4; step++) {
		pos = step;
		for (int i = 0; i < 6; i++)
			x[i] = 10 * step + i + 1;
		for (int i = 0; i < 8; i++)
			s[i] = i + 1;
		CHECK_MSG(ir_interp(g, val, &d) == 0, "%s", diag_text(&d));
		/* every row written so far holds its step's values, later rows 0 */
		for (int h = 0; h < 2; h++)
			for (int r = 0; r < 4; r++)
				for (int j = 0; j < 3; j++) {
					double want = r <= step ? 10 * r + h * 3 + j + 1 : 0;
					CHECK(cache[(h * 4 + r) * 3 + j] == want);
				}
		const double *m = val[VEC_AT(g->out, Output, 1).val];
		for (int h = 0; h < 2; h++)
			for (int j = 0; j < 4; j++)
				CHECK(j > step ? m[h * 4 + j] == -INFINITY : m[h * 4 + j] == s[h * 4 + j]);
		const double *io = val[VEC_AT(g->out, Output, 2).val];
		for (int i = 0; i < 7; i++)
			CHECK(io[i] == step + i);
		ir_interp_free(g, val);
	}
	pos = 4;   /* one past the end */
	CHECK(ir_interp(g, val, &d) != 0);
	CHECK(strstr(diag_text(&d), "does not fit") != NULL);
	pos = -1;
	CHECK(ir_interp(g, val, &d) != 0);
	diag_free(&d);
	free(val);
	ir_graph_destroy(g);
}

/* A chain of writes lands in the state, as the aliased kernels' writes do. */
static void test_interp_chain(void)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape cs = sh(2, (int64_t[]){4, 2}), xs = sh(2, (int64_t[]){1, 2}), scalar = {0};
	ValId p0 = ir_input(g, "p0", DT_I32, &scalar, L0, &d);
	ValId p1 = ir_input(g, "p1", DT_I32, &scalar, L0, &d);
	ValId x = ir_input(g, "x", DT_F32, &xs, L0, &d);
	ValId st = ir_state(g, "c", DT_F32, &cs, L0, &d);
	ValId w1 = ir_cache_write(g, st, x, p0, L0, &d);
	ValId w2 = ir_cache_write(g, w1, x, p1, L0, &d);
	ir_set_output(g, "w", w2);
	CHECK(d.nerror == 0);
	double **val = calloc(ir_nnode(g), sizeof *val);
	double c[8] = {0}, xv[2] = {5, 6}, a = 1, b = 3;
	val[p0] = &a;
	val[p1] = &b;
	val[x] = xv;
	val[st] = c;
	CHECK_MSG(ir_interp(g, val, &d) == 0, "%s", diag_text(&d));
	double want[8] = {0, 0, 5, 6, 0, 0, 5, 6};
	CHECK(memcmp(c, want, sizeof c) == 0);
	CHECK(val[w2] && memcmp(val[w2], want, sizeof want) == 0);
	ir_interp_free(g, val);
	free(val);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_plan_memory(void)
{
	Case k = {2, 2, 6, 2, 4, 2, 6};
	Graph *g = decode_graph(&k);
	CHECK(g != NULL);
	if (!g)
		return;
	ValId vc = ir_find_state(g, "cache"), w = VEC_AT(g->out, Output, 0).val;
	CHECK(ir_node(g, w)->op == OP_CACHE_WRITE);
	CHECK(ir_node(g, w)->offset == ir_node(g, vc)->offset);
	/* no temporary may overlap the state */
	int64_t lo = ir_node(g, vc)->offset, hi = lo + ir_nbytes(g, vc);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (v == vc || v == w)
			continue;
		int64_t a = n->offset, b = a + ir_nbytes(g, v);
		CHECK_MSG(b <= lo || a >= hi, "%%%u overlaps the state", v);
	}
	ir_graph_destroy(g);
}

/* --- kernels vs the interpreter, step after step --- */

static int64_t max_ntask;   /* of the last case's steps */

static void run_case(const Case *k, const int64_t *positions, int npos)
{
	Graph *g = decode_graph(k);
	CHECK(g != NULL);
	if (!g)
		return;
	Diag d;
	diag_init(&d);
	rt_Program *p = NULL;
	CHECK_MSG(be_build_program(g, NULL, &p, &d) == 0, "%s", diag_text(&d));
	rt_Pool *pool[2] = {rt_pool_create(1), rt_pool_create(2)};
	rt_Exec *e[2] = {NULL, NULL};
	for (int t = 0; p && t < 2; t++)
		CHECK(rt_exec_create(p, pool[t], &e[t], &d) == 0);
	if (!p || !e[0] || !e[1])
		goto done;
	max_ntask = 0;
	for (size_t i = 0; i < p->step.len; i++)
		if (VEC_AT(p->step, rt_Step, i).ntask > max_ntask)
			max_ntask = VEC_AT(p->step, rt_Step, i).ntask;
	int64_t nc = k->B * k->H * k->C * k->D, nx = k->B * k->H * k->T * k->D;
	int64_t ns = k->B * k->H * k->Q * k->S;
	double *cache = malloc((size_t)nc * sizeof *cache), *x = malloc((size_t)nx * sizeof *x);
	double *s = malloc((size_t)ns * sizeof *s), pos;
	double **val = calloc(ir_nnode(g), sizeof *val);
	val[ir_find_input(g, "pos")] = &pos;
	val[ir_find_input(g, "x")] = x;
	val[ir_find_input(g, "s")] = s;
	val[ir_find_state(g, "cache")] = cache;
	rt_Tensor tc[2], tx[2], ts[2], tp[2], out[2][4];
	static const char *const oname[4] = {"w", "m", "i", "f"};
	for (int t = 0; t < 2; t++) {
		rt_exec_tensor(e[t], "cache", &tc[t]);
		rt_exec_tensor(e[t], "x", &tx[t]);
		rt_exec_tensor(e[t], "s", &ts[t]);
		rt_exec_tensor(e[t], "pos", &tp[t]);
		for (int o = 0; o < 4; o++)
			CHECK(rt_exec_tensor(e[t], oname[o], &out[t][o]) == 0);
	}
	CHECK(rt_program_find(p, "cache")->kind == RT_SLOT_STATE);
	/* a non-zero cache to start with, in both executors and the oracle */
	for (int64_t i = 0; i < nc; i++) {
		cache[i] = rval();
		((float *)tc[0].data)[i] = ((float *)tc[1].data)[i] = (float)cache[i];
	}
	for (int step = 0; step < npos; step++) {
		pos = (double)positions[step];
		for (int64_t i = 0; i < nx; i++)
			x[i] = rval();
		for (int64_t i = 0; i < ns; i++)
			s[i] = rval();
		bool fits = pos >= 0 && pos + (double)k->T <= (double)k->C;
		double *before = malloc((size_t)nc * sizeof *before);
		memcpy(before, cache, (size_t)nc * sizeof *before);
		int irc = ir_interp(g, val, &d);
		CHECK(fits ? irc == 0 : irc != 0);
		diag_free(&d);
		diag_init(&d);
		for (int t = 0; t < 2; t++) {
			for (int64_t i = 0; i < nx; i++)
				((float *)tx[t].data)[i] = (float)x[i];
			for (int64_t i = 0; i < ns; i++)
				((float *)ts[t].data)[i] = (float)s[i];
			*(int32_t *)tp[t].data = (int32_t)pos;
			rt_exec_run(e[t]);
		}
		/* the interpreter refuses an out-of-range write; the kernel must
		 * leave the cache alone then */
		const double *wref = fits ? val[VEC_AT(g->out, Output, 0).val] : before;
		int64_t bad = 0;
		for (int64_t i = 0; i < nc; i++)
			bad += ((float *)tc[0].data)[i] != (float)wref[i];
		CHECK_MSG(bad == 0, "cache_write step %d pos %g: %lld elements differ", step, pos,
			  (long long)bad);
		CHECK(out[0][0].data == tc[0].data);   /* the output is the state */
		if (!fits) {
			memcpy(cache, before, (size_t)nc * sizeof *cache);
			/* the other outputs have no oracle this step: compare threads */
		} else {
			const double *mref = val[VEC_AT(g->out, Output, 1).val];
			bad = 0;
			for (int64_t i = 0; i < ns; i++)
				bad += ((float *)out[0][1].data)[i] != (float)mref[i];
			CHECK_MSG(bad == 0, "causal_mask_offset pos %g: %lld differ", pos, (long long)bad);
			const double *iref = val[VEC_AT(g->out, Output, 2).val];
			const double *fref = val[VEC_AT(g->out, Output, 3).val];
			for (int i = 0; i < 7; i++)
				CHECK(((int32_t *)out[0][2].data)[i] == (int32_t)iref[i]);
			for (int i = 0; i < 5; i++)
				CHECK(((float *)out[0][3].data)[i] == (float)fref[i]);
		}
		for (int o = 0; o < 4; o++)
			CHECK_MSG(memcmp(out[0][o].data, out[1][o].data, (size_t)rt_nbytes(&out[0][o])) == 0,
				  "output %s differs between 1 and 2 threads", oname[o]);
		free(before);
		if (fits)
			ir_interp_free(g, val);
	}
	/* causal_mask_offset with offsets far outside [0, S) clamps */
	for (int t = 0; t < 2; t++) {
		*(int32_t *)tp[t].data = -1000;
		rt_exec_run(e[t]);
	}
	bool allmasked = true;
	for (int64_t i = 0; i < ns; i++)
		allmasked &= ((float *)out[0][1].data)[i] == -INFINITY;
	CHECK(allmasked);
	free(cache);
	free(x);
	free(s);
	free(val);
done:
	for (int t = 0; t < 2; t++) {
		rt_exec_destroy(e[t]);
		rt_pool_destroy(pool[t]);
	}
	rt_program_destroy(p);
	ir_graph_destroy(g);
	diag_free(&d);
}

static void test_kernels_small(void)
{
	Case k = {1, 3, 7, 1, 5, 1, 7};
	int64_t pos[] = {0, 1, 2, 6, 3, 7, -1};
	run_case(&k, pos, (int)(sizeof pos / sizeof pos[0]));
}

static void test_kernels_awkward(void)
{
	Case k = {3, 5, 13, 3, 9, 3, 13};
	int64_t pos[] = {0, 3, 10, 11, 5, 2};
	run_case(&k, pos, (int)(sizeof pos / sizeof pos[0]));
}

/* Large enough that every kernel splits into several tasks. */
static void test_kernels_split(void)
{
	Case k = {2, 8, 80, 40, 64, 40, 128};
	int64_t pos[] = {0, 40, 17, 41};
	run_case(&k, pos, (int)(sizeof pos / sizeof pos[0]));
	CHECK_MSG(max_ntask > 1, "the kernels ran as %lld task(s)", (long long)max_ntask);
}

/* One position per sequence: pos i32[B]; cache_write, causal_mask_offset
 * and iota_offset (from pos reshaped to [B,1], n = 7 and n = 1, the case
 * whose layout merges to one axis) against the interpreter, sequences at
 * different positions, 1 and 2 threads bitwise equal. */
static void test_kernels_per_sequence(void)
{
	enum { B = 3, H = 2, C = 9, T = 2, D = 5, S = 9 };
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape ps = sh(1, (int64_t[]){B}), pc = sh(2, (int64_t[]){B, 1});
	Shape cs = sh(4, (int64_t[]){B, H, C, D}), xs = sh(4, (int64_t[]){B, H, T, D});
	Shape ss = sh(4, (int64_t[]){B, H, T, S});
	ValId pos = ir_input(g, "pos", DT_I32, &ps, L0, &d);
	ValId x = ir_input(g, "x", DT_F32, &xs, L0, &d), sc = ir_input(g, "s", DT_F32, &ss, L0, &d);
	ValId st = ir_state(g, "cache", DT_F32, &cs, L0, &d);
	ir_set_output(g, "w", ir_cache_write(g, st, x, pos, L0, &d));
	ir_set_output(g, "m", ir_causal_mask_offset(g, sc, pos, L0, &d));
	ValId col = ir_reshape(g, pos, &pc, L0, &d);
	ir_set_output(g, "i", ir_iota_offset(g, col, 7, DT_I32, L0, &d));
	ir_set_output(g, "j", ir_iota_offset(g, col, 1, DT_I32, L0, &d));
	PassOptions po = {.alignment = RT_ALIGN, .verify = true};
	CHECK_MSG(d.nerror == 0 && pass_run_pipeline(g, &po, NULL, &d) == 0, "%s", diag_text(&d));
	CHECK(ir_node(g, VEC_AT(g->out, Output, 2).val)->shape.rank == 2);
	rt_Program *p = NULL;
	CHECK_MSG(be_build_program(g, NULL, &p, &d) == 0, "%s", diag_text(&d));
	rt_Pool *pool[2] = {rt_pool_create(1), rt_pool_create(2)};
	rt_Exec *e[2] = {NULL, NULL};
	for (int t = 0; p && t < 2; t++)
		CHECK(rt_exec_create(p, pool[t], &e[t], &d) == 0);
	static const char *const oname[4] = {"w", "m", "i", "j"};
	static const int32_t at[][B] = {{0, 3, 7}, {5, 0, 2}, {7, 7, 1}};
	double cache[B * H * C * D], xv[B * H * T * D], sv[B * H * T * S], pv[B];
	double **val = calloc(ir_nnode(g), sizeof *val);
	val[ir_find_input(g, "pos")] = pv;
	val[ir_find_input(g, "x")] = xv;
	val[ir_find_input(g, "s")] = sv;
	val[ir_find_state(g, "cache")] = cache;
	for (size_t i = 0; i < sizeof cache / sizeof *cache; i++)
		cache[i] = rval();
	for (int t = 0; e[0] && e[1] && t < 2; t++) {
		rt_Tensor tc;
		rt_exec_tensor(e[t], "cache", &tc);
		for (size_t i = 0; i < sizeof cache / sizeof *cache; i++)
			((float *)tc.data)[i] = (float)cache[i];
	}
	for (size_t r = 0; e[0] && e[1] && r < sizeof at / sizeof *at; r++) {
		for (size_t i = 0; i < sizeof xv / sizeof *xv; i++)
			xv[i] = rval();
		for (size_t i = 0; i < sizeof sv / sizeof *sv; i++)
			sv[i] = rval();
		for (int b = 0; b < B; b++)
			pv[b] = at[r][b];
		CHECK_MSG(ir_interp(g, val, &d) == 0, "%s", diag_text(&d));
		rt_Tensor o[2][4];
		for (int t = 0; t < 2; t++) {
			rt_Tensor tx, ts, tp;
			rt_exec_tensor(e[t], "x", &tx);
			rt_exec_tensor(e[t], "s", &ts);
			rt_exec_tensor(e[t], "pos", &tp);
			for (size_t i = 0; i < sizeof xv / sizeof *xv; i++)
				((float *)tx.data)[i] = (float)xv[i];
			for (size_t i = 0; i < sizeof sv / sizeof *sv; i++)
				((float *)ts.data)[i] = (float)sv[i];
			for (int b = 0; b < B; b++)
				((int32_t *)tp.data)[b] = at[r][b];
			rt_exec_run(e[t]);
			for (int k = 0; k < 4; k++)
				rt_exec_tensor(e[t], oname[k], &o[t][k]);
		}
		for (int k = 0; k < 4; k++) {
			const double *ref = val[VEC_AT(g->out, Output, k).val];
			int64_t n = rt_numel(&o[0][k]), bad = 0;
			for (int64_t i = 0; i < n; i++)
				bad += o[0][k].dtype == RT_I32 ? ((int32_t *)o[0][k].data)[i] != (int32_t)ref[i]
							       : ((float *)o[0][k].data)[i] != (float)ref[i];
			CHECK_MSG(bad == 0, "%s, positions %zu: %lld of %lld differ from the interpreter",
				  oname[k], r, (long long)bad, (long long)n);
			CHECK(memcmp(o[0][k].data, o[1][k].data, (size_t)rt_nbytes(&o[0][k])) == 0);
		}
		ir_interp_free(g, val);
	}
	/* a per-sequence offset of the wrong length is a shape error */
	diag_free(&d);
	diag_init(&d);
	Graph *h = ir_graph_create();
	Shape p2 = sh(1, (int64_t[]){B + 1});
	ValId q = ir_input(h, "pos", DT_I32, &p2, L0, &d);
	ValId hs = ir_input(h, "s", DT_F32, &ss, L0, &d);
	CHECK(ir_causal_mask_offset(h, hs, q, L0, &d) == VAL_NONE);
	CHECK_MSG(strstr(diag_text(&d), "one per sequence") != NULL, "%s", diag_text(&d));
	ir_graph_destroy(h);
	free(val);
	for (int t = 0; t < 2; t++) {
		rt_exec_destroy(e[t]);
		rt_pool_destroy(pool[t]);
	}
	rt_program_destroy(p);
	ir_graph_destroy(g);
	diag_free(&d);
}

int main(void)
{
	RUN(test_shape_rules);
	RUN(test_interp_state);
	RUN(test_interp_chain);
	RUN(test_plan_memory);
	RUN(test_kernels_small);
	RUN(test_kernels_awkward);
	RUN(test_kernels_split);
	RUN(test_kernels_per_sequence);
	return check_report();
}

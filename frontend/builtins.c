/* builtins.c: the primitive functions of the language and the predefined
 * names (f32, i32, zeros, ones).
 *
 * Each builtin checks its arguments' kinds, turns them into IR attributes
 * and calls one node builder; the builder runs the op's shape rule, so
 * shape errors carry the call's location. Math functions on plain numbers
 * (sqrt(2 * layers)) are computed here at compile time instead, which is
 * how initialiser scales and attention scales become constants. The table
 * at the bottom is the whole set; docs/language.md lists it for users. */
#include "fe_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* --- argument checks: each reports at the argument and returns -1 --- */

static int bad_arg(Ev *ev, Value v, SrcLoc loc, const char *fn, const char *want)
{
	if (v.kind != V_ERR)
		fe_error(ev, loc, "%s: expected %s, got %s", fn, want, fe_kind_name(v));
	return -1;
}

static int arg_tensor(Ev *ev, Value v, SrcLoc loc, const char *fn, ValId *out)
{
	if (v.kind != V_TENSOR)
		return bad_arg(ev, v, loc, fn, "a tensor");
	*out = v.t;
	return 0;
}

static int arg_int(Ev *ev, Value v, SrcLoc loc, const char *fn, int64_t *out)
{
	if (v.kind != V_INT)
		return bad_arg(ev, v, loc, fn, "an integer");
	*out = v.i;
	return 0;
}

static int arg_bool(Ev *ev, Value v, SrcLoc loc, const char *fn, bool dflt, bool *out)
{
	if (v.kind == V_NONE) {
		*out = dflt;
		return 0;
	}
	if (v.kind != V_BOOL)
		return bad_arg(ev, v, loc, fn, "true or false");
	*out = v.b;
	return 0;
}

/* A list of at most IR_MAX_RANK integers. */
static int arg_ints(Ev *ev, Value v, SrcLoc loc, const char *fn, int64_t *out, int *n)
{
	if (v.kind != V_LIST && v.kind != V_TUPLE)
		return bad_arg(ev, v, loc, fn, "a list of integers");
	if (v.list.n > IR_MAX_RANK) {
		fe_error(ev, loc, "%s: %d axes is more than the maximum rank %d", fn, v.list.n,
			 IR_MAX_RANK);
		return -1;
	}
	for (int i = 0; i < v.list.n; i++) {
		if (v.list.v[i].kind != V_INT)
			return bad_arg(ev, v.list.v[i], loc, fn, "a list of integers");
		out[i] = v.list.v[i].i;
	}
	*n = v.list.n;
	return 0;
}

static const Shape *shape_of(Ev *ev, ValId v)
{
	return &ir_node(ev->g, v)->shape;
}

static Value built(Ev *ev, ValId v)
{
	return fe_node(ev, v);
}

/* --- elementwise --- */

static Value math1(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc, Op op)
{
	const char *name = ir_op[op].name;
	if (fe_is_num(a[0])) {
		double x = fe_num(a[0]), r;
		switch (op) {
		case OP_EXP: r = exp(x); break;
		case OP_LOG:
			if (x <= 0)
				return fe_error(ev, al[0], "log of %g: the argument must be positive", x);
			r = log(x);
			break;
		case OP_TANH: r = tanh(x); break;
		case OP_SQRT:
			if (x < 0)
				return fe_error(ev, al[0], "sqrt of %g: the argument is negative", x);
			r = sqrt(x);
			break;
		case OP_RSQRT:
			if (x <= 0)
				return fe_error(ev, al[0], "rsqrt of %g: the argument must be positive",
						x);
			r = 1 / sqrt(x);
			break;
		default:
			return fe_error(ev, al[0], "%s works on tensors, not numbers", name);
		}
		if (!isfinite(r))
			return fe_error(ev, loc, "%s(%g) overflows", name, x);
		return fe_float(r);
	}
	ValId x = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], name, &x) || !fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_unary(ev->g, op, x, loc, ev->d));
}

#define MATH1(fn, op) \
	static Value fn(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc) \
	{ return math1(ev, a, al, loc, op); }
MATH1(b_exp, OP_EXP)
MATH1(b_log, OP_LOG)
MATH1(b_tanh, OP_TANH)
MATH1(b_sqrt, OP_SQRT)
MATH1(b_rsqrt, OP_RSQRT)
MATH1(b_gelu, OP_GELU)
MATH1(b_relu, OP_RELU)
MATH1(b_silu, OP_SILU)

/* --- reductions: sum/mean/max(x, axis, keepdim = false) --- */

static Value reduce(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc, Op op)
{
	const char *name = ir_op[op].name;
	ValId x = VAL_NONE;
	int64_t axis = 0;
	bool keep;
	if (arg_tensor(ev, a[0], al[0], name, &x) | arg_int(ev, a[1], al[1], name, &axis) |
	    arg_bool(ev, a[2], al[2], name, false, &keep))
		return fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_reduce(ev->g, op, x, axis, keep, loc, ev->d));
}

static Value b_sum(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc) { return reduce(ev, a, al, loc, OP_SUM); }
static Value b_mean(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc) { return reduce(ev, a, al, loc, OP_MEAN); }
static Value b_max(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc) { return reduce(ev, a, al, loc, OP_MAX); }

/* --- linear algebra and data movement --- */

static Value b_matmul(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE, y = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "matmul", &x) | arg_tensor(ev, a[1], al[1], "matmul", &y))
		return fe_err();
	return built(ev, fe_matmul(ev, x, y, loc));
}

static Value permute(Ev *ev, ValId x, const uint8_t *perm, SrcLoc loc)
{
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_permute(ev->g, x, perm, loc, ev->d));
}

/* transpose(x): swap the last two axes. */
static Value b_transpose(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "transpose", &x))
		return fe_err();
	int r = shape_of(ev, x)->rank;
	if (r < 2)
		return fe_error(ev, loc, "transpose swaps the last two axes, but the tensor has "
			       "rank %d", r);
	uint8_t perm[IR_MAX_RANK];
	for (int i = 0; i < r; i++)
		perm[i] = (uint8_t)i;
	perm[r - 1] = (uint8_t)(r - 2);
	perm[r - 2] = (uint8_t)(r - 1);
	return permute(ev, x, perm, loc);
}

static Value b_permute(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	int64_t p[IR_MAX_RANK];
	int n;
	if (arg_tensor(ev, a[0], al[0], "permute", &x) | arg_ints(ev, a[1], al[1], "permute", p, &n))
		return fe_err();
	int r = shape_of(ev, x)->rank;
	if (n != r)
		return fe_error(ev, al[1], "permute: %d axes given for a tensor of rank %d", n, r);
	uint8_t perm[IR_MAX_RANK];
	for (int i = 0; i < n; i++) {
		int64_t k = p[i] < 0 ? p[i] + r : p[i];
		if (k < 0 || k >= r)
			return fe_error(ev, al[1], "permute: axis %lld is out of range for rank %d",
					(long long)p[i], r);
		perm[i] = (uint8_t)k;
	}
	return permute(ev, x, perm, loc);
}

/* reshape(x, [dims]); one dim may be -1, inferred from the element count. */
static Value b_reshape(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	int64_t dim[IR_MAX_RANK];
	int n, infer = -1;
	if (arg_tensor(ev, a[0], al[0], "reshape", &x) | arg_ints(ev, a[1], al[1], "reshape", dim, &n))
		return fe_err();
	int64_t known = 1, numel = ir_numel(shape_of(ev, x));
	for (int i = 0; i < n; i++) {
		if (dim[i] == -1 && infer < 0) {
			infer = i;
		} else if (dim[i] < 1) {
			return fe_error(ev, al[1], "reshape: dimension %d is %lld; use positive sizes "
				       "and at most one -1", i, (long long)dim[i]);
		} else if (__builtin_mul_overflow(known, dim[i], &known) || known > numel) {
			char buf[160];
			ir_shape_str(shape_of(ev, x), buf, sizeof buf);
			return fe_error(ev, al[1], "reshape: the new shape has more elements than %s "
				       "(%lld)", buf, (long long)numel);
		}
	}
	if (infer >= 0) {
		if (numel % known) {
			char buf[160];
			ir_shape_str(shape_of(ev, x), buf, sizeof buf);
			return fe_error(ev, al[1], "reshape: cannot infer the -1 dimension: %lld "
				       "elements of %s do not divide by %lld", (long long)numel, buf,
				       (long long)known);
		}
		dim[infer] = numel / known;
	}
	Shape s = {.rank = (uint8_t)n};
	memcpy(s.dim, dim, (size_t)n * sizeof dim[0]);
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_reshape(ev->g, x, &s, loc, ev->d));
}

/* slice(x, axis, lo, hi) keeps [lo, hi) of one axis. */
static Value b_slice(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	int64_t axis = 0, lo = 0, hi = 0;
	if (arg_tensor(ev, a[0], al[0], "slice", &x) | arg_int(ev, a[1], al[1], "slice", &axis) |
	    arg_int(ev, a[2], al[2], "slice", &lo) | arg_int(ev, a[3], al[3], "slice", &hi))
		return fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_slice(ev->g, x, axis, lo, hi, loc, ev->d));
}

/* split(x, n, axis = -1): n equal slices, as a tuple. */
static Value b_split(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	int64_t n = 0, axis = -1;
	if (arg_tensor(ev, a[0], al[0], "split", &x) | arg_int(ev, a[1], al[1], "split", &n) |
	    (a[2].kind != V_NONE && arg_int(ev, a[2], al[2], "split", &axis)))
		return fe_err();
	const Shape *s = shape_of(ev, x);
	int64_t k = axis < 0 ? axis + s->rank : axis;
	char buf[160];
	ir_shape_str(s, buf, sizeof buf);
	if (k < 0 || k >= s->rank)
		return fe_error(ev, a[2].kind == V_NONE ? loc : al[2], "split: axis %lld is out of "
			       "range for shape %s", (long long)axis, buf);
	if (n < 1 || n > 4096 || s->dim[k] % n)
		return fe_error(ev, al[1], "split: axis %lld of %s (size %lld) does not split "
			       "into %lld equal parts", (long long)axis, buf, (long long)s->dim[k],
			       (long long)n);
	Value *v = arena_alloc(ev->a, (size_t)n * sizeof *v);
	if (!v)
		return fe_error(ev, loc, "out of memory");
	int64_t w = s->dim[k] / n;
	for (int64_t i = 0; i < n; i++) {
		if (!fe_room(ev, loc))
			return fe_err();
		v[i] = built(ev, ir_slice(ev->g, x, k, i * w, (i + 1) * w, loc, ev->d));
		if (v[i].kind == V_ERR)
			return v[i];
	}
	return (Value){.kind = V_TUPLE, .list = {v, (int)n}};
}

/* concat([xs], axis = -1) */
static Value b_concat(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	int64_t axis = -1;
	if (a[0].kind != V_LIST && a[0].kind != V_TUPLE)
		return bad_arg(ev, a[0], al[0], "concat", "a list of tensors"), fe_err();
	if (a[1].kind != V_NONE && arg_int(ev, a[1], al[1], "concat", &axis))
		return fe_err();
	int n = a[0].list.n;
	if (n == 0)
		return fe_error(ev, al[0], "concat needs at least one tensor");
	ValId xs[64];
	if (n > 64)
		return fe_error(ev, al[0], "concat of more than 64 tensors");
	for (int i = 0; i < n; i++)
		if (arg_tensor(ev, a[0].list.v[i], al[0], "concat", &xs[i]))
			return fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_concat(ev->g, xs, (uint32_t)n, axis, loc, ev->d));
}

/* gather(table, indices): rows of table[V,D] at i32 indices -> [...,D] */
static Value b_gather(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId t = VAL_NONE, i = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "gather", &t) | arg_tensor(ev, a[1], al[1], "gather", &i))
		return fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_gather(ev->g, t, i, loc, ev->d));
}

/* Decode mode's implicit input `pos`, the position of the first new token,
 * made by whichever builtin needs it first: i32[] shared by the batch, or
 * i32[B], one per sequence, when the caller supplies that shape for "pos"
 * (mswc generate does, so sequences of a batch can be at different
 * positions). */
static ValId decode_pos(Ev *ev, SrcLoc loc)
{
	ValId p = ir_find_input(ev->g, "pos");
	if (p != VAL_NONE)
		return p;
	if (!fe_room(ev, loc))
		return VAL_NONE;
	Shape s = {0};
	for (int i = 0; ev->o && i < ev->o->ninput; i++)
		if (ev->o->input[i].name && !strcmp(ev->o->input[i].name, "pos")) {
			if (ev->o->input[i].rank > 1) {
				diag_error(ev->d, loc, "decode mode: the input 'pos' is i32[] or "
					   "i32[batch], not of rank %d", ev->o->input[i].rank);
				return VAL_NONE;
			}
			s.rank = ev->o->input[i].rank;
			s.dim[0] = ev->o->input[i].dim[0];
		}
	return ir_input(ev->g, "pos", DT_I32, &s, loc, ev->d);
}

/* positions(n): i32 [0, 1, ..., n-1]; in decode mode [pos, ..., pos+n-1] */
static Value b_positions(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	int64_t n = 0;
	if (arg_int(ev, a[0], al[0], "positions", &n))
		return fe_err();
	if (n < 1)
		return fe_error(ev, al[0], "positions(%lld): the count must be positive",
				(long long)n);
	if (!fe_room(ev, loc))
		return fe_err();
	if (ev->o->decode) {
		ValId pos = decode_pos(ev, loc);
		if (pos == VAL_NONE)
			return fe_err();
		const Shape *ps = shape_of(ev, pos);
		if (ps->rank == 0)
			return built(ev, ir_iota_offset(ev->g, pos, n, DT_I32, loc, ev->d));
		/* One position per sequence: [B, n], row b counting from pos[b]. */
		Shape col = {.rank = 2, .dim = {ps->dim[0], 1}};
		if (!fe_room(ev, loc))
			return fe_err();
		ValId pc = ir_reshape(ev->g, pos, &col, loc, ev->d);
		if (pc == VAL_NONE || !fe_room(ev, loc))
			return fe_err();
		return built(ev, ir_iota_offset(ev->g, pc, n, DT_I32, loc, ev->d));
	}
	return built(ev, ir_iota(ev->g, n, DT_I32, loc, ev->d));
}

/* causal_mask(s): in decode mode the queries sit at pos, pos+1, ... and
 * the keys are the whole cache, so the mask follows pos, not the shape. */
static Value b_causal_mask(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "causal_mask", &x) || !fe_room(ev, loc))
		return fe_err();
	if (ev->o->decode) {
		ValId pos = decode_pos(ev, loc);
		if (pos == VAL_NONE || !fe_room(ev, loc))
			return fe_err();
		return built(ev, ir_causal_mask_offset(ev->g, x, pos, loc, ev->d));
	}
	return built(ev, ir_causal_mask(ev->g, x, loc, ev->d));
}

/* kv_cache(k, v, ctx): the keys and values attention should use.
 * Normally the identity, so training graphs are exactly as without it. In
 * decode mode each of k, v [..., T, D] gets a state "<prefix>k" / "<prefix>v"
 * of [..., ctx, D] (zero when the program is bound), the new rows are
 * written at [pos, pos+T), and the whole caches are returned: rows past
 * pos+T-1 are zeros or stale, which the decode causal mask hides. */
static Value b_kv_cache(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId kv[2] = {VAL_NONE, VAL_NONE};
	int64_t ctx = 0;
	if (arg_tensor(ev, a[0], al[0], "kv_cache", &kv[0]) |
	    arg_tensor(ev, a[1], al[1], "kv_cache", &kv[1]) | arg_int(ev, a[2], al[2], "kv_cache", &ctx))
		return fe_err();
	const Shape *sk = shape_of(ev, kv[0]), *sv = shape_of(ev, kv[1]);
	char bk[160], bv[160];
	ir_shape_str(sk, bk, sizeof bk);
	ir_shape_str(sv, bv, sizeof bv);
	bool same = sk->rank == sv->rank && sk->rank >= 2;
	for (int i = 0; same && i < sk->rank - 1; i++)
		same = sk->dim[i] == sv->dim[i];
	if (!same)
		return fe_error(ev, loc, "kv_cache: k %s and v %s must be [..., T, D] with the same "
			       "leading dims and T", bk, bv);
	Value *r = arena_alloc(ev->a, 2 * sizeof *r);
	if (!r)
		return fe_error(ev, loc, "out of memory");
	r[0] = fe_tensor(kv[0]);
	r[1] = fe_tensor(kv[1]);
	if (!ev->o->decode)
		return (Value){.kind = V_TUPLE, .list = {r, 2}};
	int64_t t = sk->dim[sk->rank - 2];
	if (ctx < 1)
		return fe_error(ev, al[2], "kv_cache: decoding needs the context length (ctx = %lld); "
			       "pass ctx to attention", (long long)ctx);
	if (ctx < t)
		return fe_error(ev, al[2], "kv_cache: the context ctx = %lld is shorter than the %lld "
			       "new positions", (long long)ctx, (long long)t);
	ValId pos = decode_pos(ev, loc);
	if (pos == VAL_NONE)
		return fe_err();
	static const char *const suffix[2] = {"k", "v"};
	for (int i = 0; i < 2; i++) {
		char name[FE_MAX_NAME + 8];
		snprintf(name, sizeof name, "%s%s", ev->prefix, suffix[i]);
		if (strlen(name) > FE_MAX_NAME)
			return fe_error(ev, loc, "kv_cache: the name '%s' is longer than %d characters",
					name, FE_MAX_NAME);
		if (ir_find_state(ev->g, name) != VAL_NONE)
			return fe_error(ev, loc, "kv_cache: the cache '%s' is made twice; give each call "
				       "its own name with 'as', like kv_cache(k, v, ctx) as cache", name);
		Shape s = *shape_of(ev, kv[i]);
		s.dim[s.rank - 2] = ctx;
		if (!fe_room(ev, loc))
			return fe_err();
		ValId st = ir_state(ev->g, name, DT_F32, &s, loc, ev->d);
		if (st == VAL_NONE || !fe_room(ev, loc))
			return fe_err();
		r[i] = built(ev, ir_cache_write(ev->g, st, kv[i], pos, loc, ev->d));
		if (r[i].kind == V_ERR)
			return r[i];
	}
	return (Value){.kind = V_TUPLE, .list = {r, 2}};
}

static Value b_softmax(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "softmax", &x) || !fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_softmax(ev->g, x, loc, ev->d));
}

static Value b_cross_entropy(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId l = VAL_NONE, t = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "cross_entropy", &l) |
	    arg_tensor(ev, a[1], al[1], "cross_entropy", &t))
		return fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_cross_entropy(ev->g, l, t, loc, ev->d));
}

/* cast(x, f32 | i32) */
static Value b_cast(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	ValId x = VAL_NONE;
	if (arg_tensor(ev, a[0], al[0], "cast", &x))
		return fe_err();
	if (a[1].kind != V_DTYPE)
		return bad_arg(ev, a[1], al[1], "cast", "a type (f32 or i32)"), fe_err();
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_cast(ev->g, x, (DType)a[1].dt, loc, ev->d));
}

/* full([dims], value): an f32 tensor filled with one number. */
static Value b_full(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	int64_t dim[IR_MAX_RANK];
	int n;
	if (arg_ints(ev, a[0], al[0], "full", dim, &n))
		return fe_err();
	if (!fe_is_num(a[1]))
		return bad_arg(ev, a[1], al[1], "full", "a number"), fe_err();
	Shape s = {.rank = (uint8_t)n};
	memcpy(s.dim, dim, (size_t)n * sizeof dim[0]);
	if (!fe_room(ev, loc))
		return fe_err();
	return built(ev, ir_const(ev->g, fe_num(a[1]), DT_F32, &s, loc, ev->d));
}

/* normal(std): the initialiser, used as `param w: f32[..] = normal(0.02)` */
static Value b_normal(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	if (!fe_is_num(a[0]))
		return bad_arg(ev, a[0], al[0], "normal", "a number (the std)"), fe_err();
	double std = fe_num(a[0]);
	if (!(std >= 0))
		return fe_error(ev, al[0], "normal: the std must be >= 0, got %g", std);
	return (Value){.kind = V_INIT, .init = {INIT_NORMAL, std}};
}

/* --- numbers and lists --- */

static Value b_int(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	if (a[0].kind == V_INT)
		return a[0];
	if (a[0].kind != V_FLOAT)
		return bad_arg(ev, a[0], al[0], "int", "a number"), fe_err();
	if (!(a[0].f > -9.2e18 && a[0].f < 9.2e18))
		return fe_error(ev, al[0], "int(%g) does not fit in an integer", a[0].f);
	return fe_int((int64_t)a[0].f);
}

static Value b_float(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	if (!fe_is_num(a[0]))
		return bad_arg(ev, a[0], al[0], "float", "a number"), fe_err();
	return fe_float(fe_num(a[0]));
}

static Value b_len(Ev *ev, Value *a, const SrcLoc *al, SrcLoc loc)
{
	if (a[0].kind != V_LIST && a[0].kind != V_TUPLE)
		return bad_arg(ev, a[0], al[0], "len", "a list or tuple"), fe_err();
	return fe_int(a[0].list.n);
}

static const Builtin builtin[] = {
	{"exp", 1, 1, {"x"}, b_exp},
	{"log", 1, 1, {"x"}, b_log},
	{"tanh", 1, 1, {"x"}, b_tanh},
	{"sqrt", 1, 1, {"x"}, b_sqrt},
	{"rsqrt", 1, 1, {"x"}, b_rsqrt},
	{"gelu", 1, 1, {"x"}, b_gelu},
	{"relu", 1, 1, {"x"}, b_relu},
	{"silu", 1, 1, {"x"}, b_silu},
	{"sum", 2, 3, {"x", "axis", "keepdim"}, b_sum},
	{"mean", 2, 3, {"x", "axis", "keepdim"}, b_mean},
	{"max", 2, 3, {"x", "axis", "keepdim"}, b_max},
	{"matmul", 2, 2, {"a", "b"}, b_matmul},
	{"transpose", 1, 1, {"x"}, b_transpose},
	{"permute", 2, 2, {"x", "perm"}, b_permute},
	{"reshape", 2, 2, {"x", "shape"}, b_reshape},
	{"slice", 4, 4, {"x", "axis", "lo", "hi"}, b_slice},
	{"split", 2, 3, {"x", "n", "axis"}, b_split},
	{"concat", 1, 2, {"xs", "axis"}, b_concat},
	{"gather", 2, 2, {"table", "indices"}, b_gather},
	{"positions", 1, 1, {"n"}, b_positions},
	{"causal_mask", 1, 1, {"x"}, b_causal_mask},
	{"kv_cache", 3, 3, {"k", "v", "ctx"}, b_kv_cache},
	{"softmax", 1, 1, {"x"}, b_softmax},
	{"cross_entropy", 2, 2, {"logits", "targets"}, b_cross_entropy},
	{"cast", 2, 2, {"x", "dtype"}, b_cast},
	{"full", 2, 2, {"shape", "value"}, b_full},
	{"normal", 1, 1, {"std"}, b_normal},
	{"int", 1, 1, {"x"}, b_int},
	{"float", 1, 1, {"x"}, b_float},
	{"len", 1, 1, {"xs"}, b_len},
};

static int global(Ev *ev, const char *name, Value v)
{
	Slot *s = vec_push(&ev->global, sizeof *s);
	if (!s)
		return -1;
	s->name = name;
	s->v = v;
	return 0;
}

int fe_builtins_install(Ev *ev)
{
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		if (global(ev, builtin[i].name, (Value){.kind = V_BUILTIN, .bi = &builtin[i]}))
			return -1;
	if (global(ev, "f32", (Value){.kind = V_DTYPE, .dt = DT_F32}) ||
	    global(ev, "i32", (Value){.kind = V_DTYPE, .dt = DT_I32}) ||
	    global(ev, "zeros", (Value){.kind = V_INIT, .init = {INIT_ZEROS, 0}}) ||
	    global(ev, "ones", (Value){.kind = V_INIT, .init = {INIT_ONES, 0}}))
		return -1;
	return 0;
}

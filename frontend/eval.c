/* eval.c: the staged evaluator that lowers a model to IR: expressions and
 * calls (exec.c runs the statements).
 *
 * A .msw program runs at compile time: numbers, bools, lists, functions and
 * loops are ordinary values and control flow here, and only tensor
 * operations leave a trace, as IR nodes appended to the graph. So a `for`
 * is unrolled, a `def` is inlined at each call, and `0.02 / sqrt(2*layers)`
 * folds to a number before it reaches a parameter's initialiser.
 *
 * Errors do not unwind. A failing expression reports once and yields the
 * poison value V_ERR; anything computed from poison is poison again, without
 * a second message. So one compile reports independent mistakes in
 * different statements, as a C compiler does. Only fatal conditions (the
 * step budget, too many errors, out of memory) set ev->stop, which every
 * loop checks. Recursion depth, loop trip counts, total steps and the graph
 * size are all capped (fe_internal.h), so no input can hang the compiler.
 *
 * Parameter names: ev->prefix holds the current hierarchical prefix
 * ("h.3.attn."); `f(x) as name` and `for ... as h.{i}` extend it while their
 * body runs, and `param weight` creates prefix + "weight". */
#include "fe_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

Value fe_err(void) { return (Value){.kind = V_ERR}; }
Value fe_int(int64_t i) { return (Value){.kind = V_INT, .i = i}; }
Value fe_float(double f) { return (Value){.kind = V_FLOAT, .f = f}; }
Value fe_bool(bool b) { return (Value){.kind = V_BOOL, .b = b}; }
Value fe_tensor(ValId t) { return (Value){.kind = V_TENSOR, .t = t}; }

bool fe_is_num(Value v)
{
	return v.kind == V_INT || v.kind == V_FLOAT;
}

double fe_num(Value v)
{
	return v.kind == V_INT ? (double)v.i : v.f;
}

Value fe_error(Ev *ev, SrcLoc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(ev->d, loc, fmt, ap);
	va_end(ap);
	if (fe_too_many(ev->d))
		ev->stop = true;
	return fe_err();
}

const char *fe_kind_name(Value v)
{
	static const char *const name[] = {
		[V_ERR] = "an error", [V_NONE] = "nothing", [V_INT] = "an integer",
		[V_FLOAT] = "a number", [V_BOOL] = "a bool", [V_STR] = "a string",
		[V_TENSOR] = "a tensor", [V_LIST] = "a list", [V_TUPLE] = "a tuple",
		[V_FUNC] = "a function", [V_BUILTIN] = "a function", [V_INIT] = "an initialiser",
		[V_DTYPE] = "a type",
	};
	return name[v.kind];
}

void fe_fmt(Value v, char *buf, size_t n)
{
	/* Lists nest without bound ([a] in a loop): stop when the buffer is full. */
	if (n <= 1) {
		if (n)
			buf[0] = 0;
		return;
	}
	switch (v.kind) {
	case V_INT: snprintf(buf, n, "%lld", (long long)v.i); break;
	case V_FLOAT:
		/* 2.0 prints as 2.0, so a float never reads as an integer. */
		snprintf(buf, n, "%g", v.f);
		if (!strpbrk(buf, ".en") && strlen(buf) + 3 <= n)
			strcat(buf, ".0");
		break;
	case V_BOOL: snprintf(buf, n, "%s", v.b ? "true" : "false"); break;
	case V_STR: snprintf(buf, n, "%s", v.s); break;
	case V_DTYPE: snprintf(buf, n, "%s", ir_dtype_name[v.dt]); break;
	case V_FUNC: snprintf(buf, n, "%s", v.fn->name); break;
	case V_BUILTIN: snprintf(buf, n, "%s", v.bi->name); break;
	case V_LIST:
	case V_TUPLE: {
		/* Each piece is cut to fit; at never passes n - 1. */
		snprintf(buf, n, "%s", v.kind == V_LIST ? "[" : "(");
		for (int i = 0; i < v.list.n; i++) {
			size_t at = strlen(buf);
			if (i)
				snprintf(buf + at, n - at, ", ");
			at = strlen(buf);
			fe_fmt(v.list.v[i], buf + at, n - at);
		}
		size_t at = strlen(buf);
		snprintf(buf + at, n - at, "%s", v.kind == V_LIST ? "]" : ")");
		break;
	}
	default: snprintf(buf, n, "<%s>", fe_kind_name(v)); break;
	}
}

/* --- names --- */

static Value *find_slot(Vec *v, const char *name)
{
	for (size_t i = v->len; i-- > 0;)
		if (!strcmp(VEC_AT(*v, Slot, i).name, name))
			return &VEC_AT(*v, Slot, i).v;
	return NULL;
}

Value *fe_lookup(Ev *ev, const char *name)
{
	Value *v = ev->frame ? find_slot(&ev->frame->slot, name) : NULL;
	return v ? v : find_slot(&ev->global, name);
}

void fe_bind(Ev *ev, const char *name, Value v)
{
	Value *old = find_slot(&ev->frame->slot, name);
	if (old) {
		*old = v;
		return;
	}
	Slot *s = vec_push(&ev->frame->slot, sizeof *s);
	if (!s) {
		fe_error(ev, (SrcLoc){0}, "out of memory");
		ev->stop = true;
		return;
	}
	s->name = name;
	s->v = v;
}

/* Edit distance, capped: enough to suggest a name for a typo. */
static int distance(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na > 40 || nb > 40)
		return 99;
	int row[41];
	for (size_t j = 0; j <= nb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= na; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= nb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[nb];
}

/* The closest of names[0..n) to `name`, or NULL if none is close. */
static const char *closest(const char *name, const char *const *names, size_t n)
{
	const char *best = NULL;
	int bd = strlen(name) <= 3 ? 1 : 2;
	for (size_t i = 0; i < n; i++) {
		int dd = distance(name, names[i]);
		if (dd <= bd && dd > 0 && (!best || dd < bd)) {
			best = names[i];
			bd = dd;
		}
	}
	return best;
}

static const char *closest_slot(const char *name, const Vec *v, const char *best, int *bd)
{
	for (size_t i = 0; i < v->len; i++) {
		const Slot *sl = &VEC_AT(*v, Slot, i);
		int dd = sl->v.kind == V_ERR ? 99 : distance(name, sl->name);
		if (dd > 0 && dd < *bd) {
			best = sl->name;
			*bd = dd;
		}
	}
	return best;
}

static void unknown_name(Ev *ev, Expr *e)
{
	int bd = strlen(e->name) <= 3 ? 2 : 3;
	const char *best = closest_slot(e->name, &ev->frame->slot, NULL, &bd);
	best = closest_slot(e->name, &ev->global, best, &bd);
	if (best)
		fe_error(ev, e->loc, "unknown name '%s'; did you mean '%s'?", e->name, best);
	else
		fe_error(ev, e->loc, "unknown name '%s'", e->name);
}

/* --- tensors --- */

bool fe_room(Ev *ev, SrcLoc loc)
{
	if (ir_nnode(ev->g) < FE_MAX_NODES)
		return true;
	fe_error(ev, loc, "the model has more than %d operations", FE_MAX_NODES);
	ev->stop = true;
	return false;
}

Value fe_node(Ev *ev, ValId v)
{
	if (v == VAL_NONE) {
		if (fe_too_many(ev->d))
			ev->stop = true;
		return fe_err();
	}
	return fe_tensor(v);
}

ValId fe_as_tensor(Ev *ev, Value v, SrcLoc loc)
{
	if (v.kind == V_TENSOR)
		return v.t;
	if (!fe_is_num(v) || !fe_room(ev, loc))
		return VAL_NONE;
	Shape scalar = {0};
	return ir_const(ev->g, fe_num(v), DT_F32, &scalar, loc, ev->d);
}

/* Is node v a permute that swaps the last two axes and nothing else? */
static bool is_transpose(const Graph *g, ValId v)
{
	const Node *n = ir_node(g, v);
	int r = n->shape.rank;
	if (n->op != OP_PERMUTE || r < 2 || n->perm[r - 1] != r - 2 || n->perm[r - 2] != r - 1)
		return false;
	for (int i = 0; i < r - 2; i++)
		if (n->perm[i] != i)
			return false;
	return true;
}

/* Is node v softmax(causal_mask(x)) (or the decode mask's)? Its zeros are
 * exactly the masked keys. */
static bool is_masked_softmax(const Graph *g, ValId v)
{
	const Node *n = ir_node(g, v);
	if (n->op != OP_SOFTMAX)
		return false;
	Op m = ir_node(g, ir_operand(g, n, 0))->op;
	return m == OP_CAUSAL_MASK || m == OP_CAUSAL_MASK_OFFSET;
}

/* a @ b. A transposed operand is read in place (NF_TRANS_A/B) instead of
 * being copied, which is what makes the tied LM head x @ transpose(wte)
 * free; the permute left behind is dead and dce removes it. Masked
 * probabilities times values skip the zeros (NF_SKIPZEROS): 0 * NaN is
 * NaN, so otherwise a non-finite value of a later position, or a stale
 * KV cache row, would reach every query that masks it. */
ValId fe_matmul(Ev *ev, ValId a, ValId b, SrcLoc loc)
{
	unsigned flags = is_masked_softmax(ev->g, a) ? NF_SKIPZEROS : 0;
	if (is_transpose(ev->g, a)) {
		a = ir_operand(ev->g, ir_node(ev->g, a), 0);
		flags |= NF_TRANS_A;
	}
	if (is_transpose(ev->g, b)) {
		b = ir_operand(ev->g, ir_node(ev->g, b), 0);
		flags |= NF_TRANS_B;
	}
	if (!fe_room(ev, loc))
		return VAL_NONE;
	return ir_matmul(ev->g, a, b, flags, loc, ev->d);
}

/* --- operators --- */

static const char *op_text(int op)
{
	switch (op) {
	case T_PLUS: return "+";
	case T_MINUS: return "-";
	case T_STAR: return "*";
	case T_SLASH: return "/";
	case T_SLASHSLASH: return "//";
	case T_PERCENT: return "%";
	case T_AT: return "@";
	case T_EQ: return "==";
	case T_NE: return "!=";
	case T_LT: return "<";
	case T_LE: return "<=";
	case T_GT: return ">";
	case T_GE: return ">=";
	default: return fe_tok_name[op];
	}
}

static Value int_arith(Ev *ev, Expr *e, int64_t x, int64_t y)
{
	int64_t r = 0;
	bool ovf = false;
	switch (e->op) {
	case T_PLUS: ovf = __builtin_add_overflow(x, y, &r); break;
	case T_MINUS: ovf = __builtin_sub_overflow(x, y, &r); break;
	case T_STAR: ovf = __builtin_mul_overflow(x, y, &r); break;
	case T_SLASHSLASH:
	case T_PERCENT:
		if (y == 0)
			return fe_error(ev, e->loc, "division by zero");
		if (x == INT64_MIN && y == -1) {
			ovf = true;
			break;
		}
		/* Floor division and a modulo with the divisor's sign, as in Python. */
		r = x / y;
		if ((x % y != 0) && ((x < 0) != (y < 0)))
			r--;
		if (e->op == T_PERCENT)
			r = x - r * y;
		break;
	}
	if (ovf)
		return fe_error(ev, e->loc, "integer overflow in %lld %s %lld", (long long)x,
				op_text(e->op), (long long)y);
	return fe_int(r);
}

static Value num_arith(Ev *ev, Expr *e, Value a, Value b)
{
	if (a.kind == V_INT && b.kind == V_INT && e->op != T_SLASH)
		return int_arith(ev, e, a.i, b.i);
	double x = fe_num(a), y = fe_num(b), r;
	switch (e->op) {
	case T_PLUS: r = x + y; break;
	case T_MINUS: r = x - y; break;
	case T_STAR: r = x * y; break;
	case T_SLASH:
		if (y == 0)
			return fe_error(ev, e->loc, "division by zero");
		r = x / y;
		break;
	case T_SLASHSLASH:
	case T_PERCENT:
		return fe_error(ev, e->oploc, "'%s' needs integers, got %g and %g",
				e->op == T_PERCENT ? "%" : "//", x, y);
	default: /* '@' */
		return fe_error(ev, e->oploc, "'@' multiplies tensors, not numbers");
	}
	if (!isfinite(r))
		return fe_error(ev, e->loc, "number overflow in %g %s %g", x, op_text(e->op), y);
	return fe_float(r);
}

static Value compare(Ev *ev, Expr *e, Value a, Value b)
{
	bool eq;
	if (fe_is_num(a) && fe_is_num(b)) {
		double x = fe_num(a), y = fe_num(b);
		if (a.kind == V_INT && b.kind == V_INT) {
			/* Compare exactly: doubles lose integers above 2^53. */
			x = (double)((a.i > b.i) - (a.i < b.i));
			y = 0;
		}
		switch (e->op) {
		case T_LT: return fe_bool(x < y);
		case T_LE: return fe_bool(x <= y);
		case T_GT: return fe_bool(x > y);
		case T_GE: return fe_bool(x >= y);
		}
		eq = x == y;
	} else if (e->op != T_EQ && e->op != T_NE) {
		return fe_error(ev, e->oploc, "'%s' compares numbers, got %s and %s",
				op_text(e->op), fe_kind_name(a), fe_kind_name(b));
	} else if (a.kind == V_BOOL && b.kind == V_BOOL) {
		eq = a.b == b.b;
	} else if (a.kind == V_STR && b.kind == V_STR) {
		eq = !strcmp(a.s, b.s);
	} else if (a.kind == V_DTYPE && b.kind == V_DTYPE) {
		eq = a.dt == b.dt;
	} else {
		return fe_error(ev, e->oploc, "'%s' cannot compare %s with %s", op_text(e->op),
				fe_kind_name(a), fe_kind_name(b));
	}
	return fe_bool(e->op == T_EQ ? eq : !eq);
}

static Value concat_lists(Ev *ev, Value a, Value b, SrcLoc loc)
{
	int n = a.list.n + b.list.n;
	Value *v = arena_alloc(ev->a, (size_t)(n ? n : 1) * sizeof *v);
	if (!v)
		return fe_error(ev, loc, "out of memory");
	memcpy(v, a.list.v, (size_t)a.list.n * sizeof *v);
	memcpy(v + a.list.n, b.list.v, (size_t)b.list.n * sizeof *v);
	return (Value){.kind = V_LIST, .list = {v, n}};
}

static Value tensor_arith(Ev *ev, Expr *e, Value a, Value b)
{
	static const Op op_of[T_COUNT] = {
		[T_PLUS] = OP_ADD, [T_MINUS] = OP_SUB, [T_STAR] = OP_MUL, [T_SLASH] = OP_DIV,
	};
	bool ok_a = a.kind == V_TENSOR || fe_is_num(a), ok_b = b.kind == V_TENSOR || fe_is_num(b);
	if (!ok_a || !ok_b)
		return fe_error(ev, e->oploc, "'%s' cannot combine %s with %s", op_text(e->op),
				fe_kind_name(a), fe_kind_name(b));
	if (e->op == T_AT) {
		if (a.kind != V_TENSOR || b.kind != V_TENSOR)
			return fe_error(ev, e->oploc, "'@' multiplies two tensors, got %s and %s",
					fe_kind_name(a), fe_kind_name(b));
		return fe_node(ev, fe_matmul(ev, a.t, b.t, e->loc));
	}
	if (e->op == T_SLASHSLASH || e->op == T_PERCENT)
		return fe_error(ev, e->oploc, "'%s' works on integers, not tensors",
				op_text(e->op));
	ValId x = fe_as_tensor(ev, a, e->a->loc), y = VAL_NONE;
	if (x != VAL_NONE)
		y = fe_as_tensor(ev, b, e->b->loc);
	if (y == VAL_NONE || !fe_room(ev, e->loc))
		return fe_node(ev, VAL_NONE);
	return fe_node(ev, ir_binary(ev->g, op_of[e->op], x, y, e->loc, ev->d));
}

static Value binary(Ev *ev, Expr *e)
{
	Value a = fe_eval(ev, e->a);
	Value b = fe_eval(ev, e->b);
	if (a.kind == V_ERR || b.kind == V_ERR)
		return fe_err();
	switch (e->op) {
	case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
		if (a.kind == V_TENSOR || b.kind == V_TENSOR)
			return fe_error(ev, e->oploc, "'%s' compares compile-time values; "
				       "tensors are only known at run time", op_text(e->op));
		return compare(ev, e, a, b);
	}
	if (fe_is_num(a) && fe_is_num(b))
		return num_arith(ev, e, a, b);
	if (e->op == T_PLUS && a.kind == V_LIST && b.kind == V_LIST)
		return concat_lists(ev, a, b, e->loc);
	return tensor_arith(ev, e, a, b);
}

static Value logic(Ev *ev, Expr *e)
{
	Value a = fe_eval(ev, e->a);
	if (a.kind == V_ERR)
		return a;
	if (a.kind != V_BOOL)
		return fe_error(ev, e->a->loc, "'%s' needs true or false, got %s",
				e->kind == E_AND ? "and" : "or", fe_kind_name(a));
	if (a.b == (e->kind == E_OR))
		return a;
	Value b = fe_eval(ev, e->b);
	if (b.kind != V_BOOL && b.kind != V_ERR)
		return fe_error(ev, e->b->loc, "'%s' needs true or false, got %s",
				e->kind == E_AND ? "and" : "or", fe_kind_name(b));
	return b;
}

static Value negate(Ev *ev, Expr *e)
{
	Value a = fe_eval(ev, e->a);
	switch (a.kind) {
	case V_ERR: return a;
	case V_INT:
		if (a.i == INT64_MIN)
			return fe_error(ev, e->loc, "integer overflow in -(%lld)", (long long)a.i);
		return fe_int(-a.i);
	case V_FLOAT: return fe_float(-a.f);
	case V_TENSOR:
		if (!fe_room(ev, e->loc))
			return fe_err();
		return fe_node(ev, ir_unary(ev->g, OP_NEG, a.t, e->loc, ev->d));
	default: return fe_error(ev, e->loc, "cannot negate %s", fe_kind_name(a));
	}
}

/* --- fields, indexing, calls --- */

static Value field(Ev *ev, Expr *e)
{
	Value a = fe_eval(ev, e->a);
	if (a.kind == V_ERR)
		return a;
	if (a.kind == V_TENSOR) {
		const Node *n = ir_node(ev->g, a.t);
		if (!strcmp(e->name, "rank"))
			return fe_int(n->shape.rank);
		if (!strcmp(e->name, "dtype"))
			return (Value){.kind = V_DTYPE, .dt = n->dtype};
		if (!strcmp(e->name, "shape")) {
			Value *v = arena_alloc(ev->a, IR_MAX_RANK * sizeof *v);
			if (!v)
				return fe_error(ev, e->loc, "out of memory");
			for (int i = 0; i < n->shape.rank; i++)
				v[i] = fe_int(n->shape.dim[i]);
			return (Value){.kind = V_LIST, .list = {v, n->shape.rank}};
		}
		return fe_error(ev, e->loc, "a tensor has no field '%s' (it has .shape, .rank, "
			       ".dtype and .dim(i))", e->name);
	}
	if ((a.kind == V_LIST || a.kind == V_TUPLE) && !strcmp(e->name, "len"))
		return fe_int(a.list.n);
	return fe_error(ev, e->loc, "%s has no field '%s'", fe_kind_name(a), e->name);
}

static Value index_(Ev *ev, Expr *e)
{
	Value a = fe_eval(ev, e->a), i = fe_eval(ev, e->b);
	if (a.kind == V_ERR || i.kind == V_ERR)
		return fe_err();
	if (a.kind != V_LIST && a.kind != V_TUPLE)
		return fe_error(ev, e->a->loc, "cannot index %s; only lists and tuples",
				fe_kind_name(a));
	if (i.kind != V_INT)
		return fe_error(ev, e->b->loc, "an index must be an integer, got %s",
				fe_kind_name(i));
	int64_t k = i.i < 0 ? i.i + a.list.n : i.i;
	if (k < 0 || k >= a.list.n)
		return fe_error(ev, e->b->loc, "index %lld is out of range for %d items",
				(long long)i.i, a.list.n);
	return a.list.v[k];
}

/* x.dim(i): the size of axis i, negative i counting from the end. */
static Value method(Ev *ev, Expr *e)
{
	Expr *f = e->a;
	Value a = fe_eval(ev, f->a);
	if (a.kind == V_ERR)
		return a;
	if (a.kind != V_TENSOR || strcmp(f->name, "dim"))
		return fe_error(ev, f->loc, "%s has no method '%s'%s", fe_kind_name(a), f->name,
				a.kind == V_TENSOR ? " (a tensor has .dim(i))" : "");
	if (e->nitem != 1 || e->kw[0])
		return fe_error(ev, e->loc, "dim takes one axis, like x.dim(-1)");
	Value i = fe_eval(ev, e->item[0]);
	if (i.kind == V_ERR)
		return i;
	if (i.kind != V_INT)
		return fe_error(ev, e->item[0]->loc, "dim takes an integer axis, got %s",
				fe_kind_name(i));
	const Shape *s = &ir_node(ev->g, a.t)->shape;
	int64_t k = i.i < 0 ? i.i + s->rank : i.i;
	if (k < 0 || k >= s->rank) {
		char buf[160];
		ir_shape_str(s, buf, sizeof buf);
		return fe_error(ev, e->item[0]->loc, "axis %lld is out of range for shape %s "
			       "(rank %d)", (long long)i.i, buf, s->rank);
	}
	return fe_int(s->dim[k]);
}

/* Extends ev->prefix by a path like h.{i}.attn; returns the old length
 * (to restore), or -1 after an error. */
int fe_push_path(Ev *ev, const Path *p)
{
	int old = ev->nprefix;
	for (int i = 0; i < p->nseg; i++) {
		const PathSeg *s = &p->seg[i];
		char buf[FE_MAX_NAME + 1];
		const char *text = s->name;
		if (!text) {
			Value v = fe_eval(ev, s->e);
			if (v.kind == V_ERR)
				goto fail;
			if (v.kind != V_INT && v.kind != V_STR) {
				fe_error(ev, s->loc, "a name part must be an integer or a string, "
					 "got %s", fe_kind_name(v));
				goto fail;
			}
			fe_fmt(v, buf, sizeof buf);
			text = buf;
		}
		size_t n = strlen(text);
		if (ev->nprefix + n + 1 > FE_MAX_NAME) {
			fe_error(ev, p->loc, "parameter names would be longer than %d characters",
				 FE_MAX_NAME);
			goto fail;
		}
		memcpy(ev->prefix + ev->nprefix, text, n);
		ev->nprefix += (int)n;
		ev->prefix[ev->nprefix++] = '.';
		ev->prefix[ev->nprefix] = 0;
	}
	return old;
fail:
	ev->nprefix = old;
	ev->prefix[old] = 0;
	return -1;
}

void fe_pop_path(Ev *ev, int old)
{
	ev->nprefix = old;
	ev->prefix[old] = 0;
}

static Value call(Ev *ev, Expr *e)
{
	if (e->a->kind == E_FIELD)
		return method(ev, e);
	Value f = fe_eval(ev, e->a);
	if (e->nitem > FE_MAX_ARGS_CALL)
		return fe_error(ev, e->loc, "too many arguments (the limit is %d)",
				FE_MAX_ARGS_CALL);
	/* On the heap, not the stack: calls nest deeply (see fe_enter). */
	Arg *args = mem_alloc((size_t)(e->nitem ? e->nitem : 1) * sizeof *args);
	if (!args) {
		ev->stop = true;
		return fe_error(ev, e->loc, "out of memory");
	}
	bool bad = f.kind == V_ERR;
	for (int i = 0; i < e->nitem && !ev->stop; i++) {
		args[i] = (Arg){e->kw[i], fe_eval(ev, e->item[i]), e->argloc[i]};
		bad |= args[i].v.kind == V_ERR;
	}
	Value r = fe_err();
	int old = ev->nprefix;
	if (!bad && !ev->stop && (!e->as || (old = fe_push_path(ev, e->as)) >= 0)) {
		const char *what = e->a->kind == E_NAME ? e->a->name : NULL;
		r = fe_call(ev, f, what, e->loc, args, e->nitem);
		fe_pop_path(ev, old);
	}
	mem_free(args);
	return r;
}

/* Every fe_eval and exec frame counts against one depth limit, because
 * expression nesting (capped by the parser) multiplies with call depth. */
bool fe_enter(Ev *ev, SrcLoc loc)
{
	if (++ev->edepth <= FE_MAX_EVAL_DEPTH)
		return true;
	fe_error(ev, loc, "evaluation nests more than %d levels deep", FE_MAX_EVAL_DEPTH);
	ev->stop = true;
	return false;
}

static Value eval(Ev *ev, Expr *e);

Value fe_eval(Ev *ev, Expr *e)
{
	if (ev->stop)
		return fe_err();
	Value v = fe_enter(ev, e->loc) ? eval(ev, e) : fe_err();
	ev->edepth--;
	return v;
}

static Value eval(Ev *ev, Expr *e)
{
	switch ((ExprKind)e->kind) {
	case E_INT: return fe_int(e->ival);
	case E_FLOAT: return fe_float(e->fval);
	case E_BOOL: return fe_bool(e->ival);
	case E_STR: return (Value){.kind = V_STR, .s = e->name};
	case E_NAME: {
		Value *v = fe_lookup(ev, e->name);
		if (v)
			return *v;
		unknown_name(ev, e);
		fe_bind(ev, e->name, fe_err()); /* report each unknown name once */
		return fe_err();
	}
	case E_LIST: {
		Value *v = arena_alloc(ev->a, (size_t)(e->nitem ? e->nitem : 1) * sizeof *v);
		if (!v)
			return fe_error(ev, e->loc, "out of memory");
		for (int i = 0; i < e->nitem; i++)
			if ((v[i] = fe_eval(ev, e->item[i])).kind == V_ERR)
				return fe_err();
		return (Value){.kind = V_LIST, .list = {v, e->nitem}};
	}
	case E_NEG: return negate(ev, e);
	case E_NOT: {
		Value a = fe_eval(ev, e->a);
		if (a.kind == V_ERR)
			return a;
		if (a.kind != V_BOOL)
			return fe_error(ev, e->a->loc, "'not' needs true or false, got %s",
					fe_kind_name(a));
		return fe_bool(!a.b);
	}
	case E_BINARY: return binary(ev, e);
	case E_AND:
	case E_OR: return logic(ev, e);
	case E_CALL: return call(ev, e);
	case E_FIELD: return field(ev, e);
	case E_INDEX: return index_(ev, e);
	}
	return fe_error(ev, e->loc, "internal: unknown expression kind %d", e->kind);
}

/* --- calls --- */

bool fe_step(Ev *ev, SrcLoc loc)
{
	if (++ev->steps <= FE_MAX_STEPS)
		return true;
	fe_error(ev, loc, "compile-time evaluation took more than %d steps; is a loop or "
		 "a recursion unbounded?", FE_MAX_STEPS);
	ev->stop = true;
	return false;
}

/* Matches arguments to parameter names: positional in order, then by
 * keyword. slot[i] receives parameter i's argument, or stays NULL. */
static int match_args(Ev *ev, const char *fname, const char *const *pname, int nparam,
		      SrcLoc loc, Arg *arg, int narg, Arg **slot)
{
	for (int i = 0; i < nparam; i++)
		slot[i] = NULL;
	for (int i = 0; i < narg; i++) {
		int k = i;
		if (arg[i].kw) {
			for (k = 0; k < nparam && strcmp(pname[k], arg[i].kw); k++)
				;
			if (k == nparam) {
				const char *near = closest(arg[i].kw, pname, (size_t)nparam);
				if (near)
					fe_error(ev, arg[i].loc, "'%s' has no parameter named '%s'; "
						 "did you mean '%s'?", fname, arg[i].kw, near);
				else
					fe_error(ev, arg[i].loc, "'%s' has no parameter named '%s'",
						 fname, arg[i].kw);
				return -1;
			}
		} else if (k >= nparam) {
			fe_error(ev, arg[i].loc, "'%s' takes %d argument%s, got %d", fname, nparam,
				 nparam == 1 ? "" : "s", narg);
			return -1;
		}
		if (slot[k]) {
			fe_error(ev, arg[i].loc, "argument '%s' of '%s' is given twice", pname[k],
				 fname);
			return -1;
		}
		slot[k] = &arg[i];
	}
	return 0;
}

static Value call_builtin(Ev *ev, const Builtin *b, SrcLoc loc, Arg *arg, int narg)
{
	Arg *slot[FE_MAX_ARGS];
	Value v[FE_MAX_ARGS];
	SrcLoc l[FE_MAX_ARGS];
	if (match_args(ev, b->name, b->pname, b->nparam, loc, arg, narg, slot))
		return fe_err();
	for (int i = 0; i < b->nparam; i++) {
		if (!slot[i] && i < b->nreq)
			return fe_error(ev, loc, "missing argument '%s' in the call to '%s'",
					b->pname[i], b->name);
		v[i] = slot[i] ? slot[i]->v : (Value){.kind = V_NONE};
		l[i] = slot[i] ? slot[i]->loc : loc;
	}
	return b->fn(ev, v, l, loc);
}

static Value call_def(Ev *ev, const Func *fn, SrcLoc loc, Arg *arg, int narg)
{
	if (ev->depth >= FE_MAX_CALL_DEPTH) {
		fe_error(ev, loc, "calls nest more than %d deep; does '%s' call itself without "
			 "end?", FE_MAX_CALL_DEPTH, fn->name);
		ev->stop = true;
		return fe_err();
	}
	size_t n = (size_t)(fn->nparam ? fn->nparam : 1);
	Arg **slot = mem_alloc(n * sizeof *slot);
	const char **pname = mem_alloc(n * sizeof *pname);
	if (!slot || !pname) {
		mem_free(slot);
		mem_free(pname);
		ev->stop = true;
		return fe_error(ev, loc, "out of memory");
	}
	for (int i = 0; i < fn->nparam; i++)
		pname[i] = fn->param[i].name;
	int m = match_args(ev, fn->name, pname, fn->nparam, loc, arg, narg, slot);
	mem_free(pname);
	if (m) {
		mem_free(slot);
		return fe_err();
	}
	Frame fr = {.fn = fn, .callsite = loc, .up = ev->frame, .ret = {.kind = V_NONE}};
	ev->frame = &fr;
	ev->depth++;
	int nerr = ev->d->nerror;
	bool ok = true;
	for (int i = 0; i < fn->nparam && ok; i++) {
		Value v;
		if (slot[i])
			v = slot[i]->v;
		else if (fn->param[i].def)
			/* Defaults run in the callee, so they can use earlier parameters. */
			v = fe_eval(ev, fn->param[i].def);
		else {
			fe_error(ev, loc, "missing argument '%s' in the call to '%s'",
				 fn->param[i].name, fn->name);
			ok = false;
			break;
		}
		fe_bind(ev, fn->param[i].name, v);
	}
	if (ok)
		fe_exec_block(ev, &fn->body);
	mem_free(slot);
	Value r = ok ? fr.ret : fe_err();
	ev->depth--;
	ev->frame = fr.up;
	vec_free(&fr.slot);
	/* An error inside the prelude means little without the user's line. */
	if (ok && ev->d->nerror != nerr && !ev->stop && (fn->loc.src != loc.src || ev->hint_as))
		diag_note(ev->d, loc, "in the call to '%s' here%s", fn->name,
			  ev->hint_as ? "; give each call its own name with 'as', like "
					"f(x) as name" : "");
	ev->hint_as = false;
	return r;
}

Value fe_call(Ev *ev, Value callee, const char *what, SrcLoc loc, Arg *arg, int narg)
{
	if (callee.kind == V_ERR || ev->stop)
		return fe_err();
	if (!fe_step(ev, loc))
		return fe_err();
	if (callee.kind == V_BUILTIN)
		return call_builtin(ev, callee.bi, loc, arg, narg);
	if (callee.kind == V_FUNC && !callee.fn->is_model)
		return call_def(ev, callee.fn, loc, arg, narg);
	if (callee.kind == V_FUNC)
		return fe_error(ev, loc, "'%s' is a model; only defs can be called",
				callee.fn->name);
	if (what)
		return fe_error(ev, loc, "'%s' is %s, not a function", what, fe_kind_name(callee));
	return fe_error(ev, loc, "cannot call %s", fe_kind_name(callee));
}

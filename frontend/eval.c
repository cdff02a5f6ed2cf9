/* eval.c: the staged evaluator that lowers a model to IR.
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
		size_t at = (size_t)snprintf(buf, n, "%s", v.kind == V_LIST ? "[" : "(");
		for (int i = 0; i < v.list.n && at < n; i++) {
			if (i)
				at += (size_t)snprintf(buf + at, n - at, ", ");
			if (at < n)
				fe_fmt(v.list.v[i], buf + at, n - at);
			at += strlen(buf + at);
		}
		if (at < n)
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

/* a @ b. A transposed operand is read in place (NF_TRANS_A/B) instead of
 * being copied, which is what makes the tied LM head x @ transpose(wte)
 * free; the permute left behind is dead and dce removes it. */
ValId fe_matmul(Ev *ev, ValId a, ValId b, SrcLoc loc)
{
	unsigned flags = 0;
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
static int push_path(Ev *ev, const Path *p)
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

static void pop_path(Ev *ev, int old)
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
	/* On the heap, not the stack: calls nest deeply (see enter). */
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
	if (!bad && !ev->stop && (!e->as || (old = push_path(ev, e->as)) >= 0)) {
		const char *what = e->a->kind == E_NAME ? e->a->name : NULL;
		r = fe_call(ev, f, what, e->loc, args, e->nitem);
		pop_path(ev, old);
	}
	mem_free(args);
	return r;
}

/* Every fe_eval and exec frame counts against one depth limit, because
 * expression nesting (capped by the parser) multiplies with call depth. */
static bool enter(Ev *ev, SrcLoc loc)
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
	Value v = enter(ev, e->loc) ? eval(ev, e) : fe_err();
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
		fe_error(ev, e->loc, "unknown name '%s'", e->name);
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

static bool step(Ev *ev, SrcLoc loc)
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
				fe_error(ev, arg[i].loc, "'%s' has no parameter named '%s'", fname,
					 arg[i].kw);
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
	if (!step(ev, loc))
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

/* --- statements --- */

static int want_tensor(Ev *ev, Value v, SrcLoc loc, const char *what)
{
	if (v.kind == V_TENSOR)
		return 0;
	if (v.kind != V_ERR)
		fe_error(ev, loc, "%s must be a tensor, got %s", what, fe_kind_name(v));
	return -1;
}

static void exec_assign(Ev *ev, Stmt *s)
{
	Value vals[64];
	if (s->nval > 64) {
		fe_error(ev, s->loc, "too many values (the limit is 64)");
		return;
	}
	bool bad = false;
	for (int i = 0; i < s->nval; i++)
		bad |= (vals[i] = fe_eval(ev, s->val[i])).kind == V_ERR;
	if (bad) {
		for (int i = 0; i < s->nname; i++)
			fe_bind(ev, s->name[i], fe_err());
		return;
	}
	Value v = vals[0];
	if (s->nval > 1) {
		Value *t = arena_alloc(ev->a, (size_t)s->nval * sizeof *t);
		if (!t) {
			fe_error(ev, s->loc, "out of memory");
			return;
		}
		memcpy(t, vals, (size_t)s->nval * sizeof *t);
		v = (Value){.kind = V_TUPLE, .list = {t, s->nval}};
	}
	if (s->nname == 1) {
		fe_bind(ev, s->name[0], v);
		return;
	}
	if ((v.kind != V_TUPLE && v.kind != V_LIST) || v.list.n != s->nname) {
		char got[64];
		if (v.kind == V_TUPLE || v.kind == V_LIST)
			snprintf(got, sizeof got, "%d values", v.list.n);
		else
			snprintf(got, sizeof got, "one value (%s)", fe_kind_name(v));
		fe_error(ev, s->val[0]->loc, "%d names on the left but %s on the right",
			 s->nname, got);
		for (int i = 0; i < s->nname; i++)
			fe_bind(ev, s->name[i], fe_err());
		return;
	}
	for (int i = 0; i < s->nname; i++)
		fe_bind(ev, s->name[i], v.list.v[i]);
}

/* The int value of expression e, checked to be a usable dimension. */
static int eval_dim(Ev *ev, Expr *e, int i, const char *what, int64_t *out)
{
	Value v = fe_eval(ev, e);
	if (v.kind == V_ERR)
		return -1;
	if (v.kind != V_INT) {
		fe_error(ev, e->loc, "dimension %d of %s must be an integer, got %s", i, what,
			 fe_kind_name(v));
		return -1;
	}
	if (v.i < 1 || v.i > ((int64_t)1 << 40)) {
		fe_error(ev, e->loc, "dimension %d of %s is %lld; dimensions must be between 1 "
			 "and 2^40", i, what, (long long)v.i);
		return -1;
	}
	*out = v.i;
	return 0;
}

/* Parameter names seen so far, in an open-addressing table of ValIds:
 * ir_find_param is a linear scan, and a loop may create thousands. */
static ValId find_param(Ev *ev, const char *name)
{
	if (!ev->nptab)
		return VAL_NONE;
	size_t mask = ev->nptab - 1, h = hash64(name, strlen(name), 0) & mask;
	for (; ev->ptab[h] != VAL_NONE; h = (h + 1) & mask)
		if (!strcmp(ir_str(ev->g, ir_node(ev->g, ev->ptab[h])->name), name))
			return ev->ptab[h];
	return VAL_NONE;
}

static int add_param(Ev *ev, ValId v)
{
	if (2 * (ev->nparam + 1) > ev->nptab) {
		size_t n = ev->nptab ? 2 * ev->nptab : 64;
		ValId *t = mem_alloc(n * sizeof *t);
		if (!t)
			return -1;
		for (size_t i = 0; i < n; i++)
			t[i] = VAL_NONE;
		ValId *old = ev->ptab;
		size_t nold = ev->nptab;
		ev->ptab = t;
		ev->nptab = n;
		ev->nparam = 0;
		for (size_t i = 0; i < nold; i++)
			if (old[i] != VAL_NONE)
				add_param(ev, old[i]);
		mem_free(old);
	}
	const char *name = ir_str(ev->g, ir_node(ev->g, v)->name);
	size_t mask = ev->nptab - 1, h = hash64(name, strlen(name), 0) & mask;
	while (ev->ptab[h] != VAL_NONE)
		h = (h + 1) & mask;
	ev->ptab[h] = v;
	ev->nparam++;
	return 0;
}

static void exec_param(Ev *ev, Stmt *s)
{
	char name[FE_MAX_NAME + 64];
	snprintf(name, sizeof name, "%s%s", ev->prefix, s->name[0]);
	fe_bind(ev, s->name[0], fe_err());
	if (strlen(name) > FE_MAX_NAME) {
		fe_error(ev, s->nameloc[0], "parameter name '%s' is longer than %d characters",
			 name, FE_MAX_NAME);
		return;
	}
	if (s->dtype != DT_F32) {
		fe_error(ev, s->shapeloc, "parameters are f32, not %s", ir_dtype_name[s->dtype]);
		return;
	}
	Shape sh = {0};
	if (s->ndim > IR_MAX_RANK) {
		fe_error(ev, s->shapeloc, "parameter '%s' has rank %d; the maximum is %d", name,
			 s->ndim, IR_MAX_RANK);
		return;
	}
	char what[FE_MAX_NAME + 80];
	snprintf(what, sizeof what, "parameter '%s'", name);
	bool bad = false;
	for (int i = 0; i < s->ndim; i++)
		bad |= eval_dim(ev, s->dims[i], i, what, &sh.dim[i]) != 0;
	sh.rank = (uint8_t)s->ndim;
	InitKind init = INIT_NONE;
	double std = 0;
	if (s->e) {
		Value v = fe_eval(ev, s->e);
		if (v.kind == V_ERR)
			return;
		if (v.kind != V_INIT) {
			fe_error(ev, s->e->loc, "a parameter's initialiser must be normal(std), zeros "
				 "or ones, got %s", fe_kind_name(v));
			return;
		}
		init = v.init.kind;
		std = v.init.std;
	}
	if (bad)
		return;
	ValId old = find_param(ev, name);
	if (old != VAL_NONE) {
		fe_error(ev, s->nameloc[0], "parameter '%s' is defined twice", name);
		diag_note(ev->d, ir_node(ev->g, old)->loc, "the first definition is here");
		ev->hint_as = ev->frame->fn != NULL;
		return;
	}
	if (!fe_room(ev, s->loc))
		return;
	if (ev->nparam >= FE_MAX_PARAMS) {
		fe_error(ev, s->loc, "the model has more than %d parameters", FE_MAX_PARAMS);
		ev->stop = true;
		return;
	}
	ValId v = ir_param(ev->g, name, &sh, init, std, s->nameloc[0], ev->d);
	if (v == VAL_NONE)
		return;
	if (add_param(ev, v)) {
		fe_error(ev, s->loc, "out of memory");
		ev->stop = true;
		return;
	}
	if (s->frozen)
		ir_node(ev->g, v)->flags |= NF_FROZEN;
	fe_bind(ev, s->name[0], fe_tensor(v));
}

static void exec_output(Ev *ev, Stmt *s)
{
	Value v = fe_eval(ev, s->val[0]);
	if (want_tensor(ev, v, s->val[0]->loc, "an output"))
		return;
	uint32_t id = ir_find_str(ev->g, s->name[0]);
	for (size_t i = 0; id && i < ev->g->out.len; i++)
		if (VEC_AT(ev->g->out, Output, i).name == id) {
			fe_error(ev, s->nameloc[0], "output '%s' is declared twice", s->name[0]);
			return;
		}
	if (ir_set_output(ev->g, s->name[0], v.t))
		fe_error(ev, s->loc, "out of memory");
}

static void exec_loss(Ev *ev, Stmt *s)
{
	Value v = fe_eval(ev, s->val[0]);
	if (want_tensor(ev, v, s->val[0]->loc, "the loss"))
		return;
	const Node *n = ir_node(ev->g, v.t);
	if (n->shape.rank != 0 || n->dtype != DT_F32) {
		char buf[160];
		ir_shape_str(&n->shape, buf, sizeof buf);
		fe_error(ev, s->val[0]->loc, "the loss must be an f32 scalar, got %s%s",
			 ir_dtype_name[n->dtype], buf);
		return;
	}
	if (ev->g->loss != VAL_NONE) {
		fe_error(ev, s->loc, "the model has two losses");
		return;
	}
	ev->g->loss = v.t;
}

static int want_int(Ev *ev, Expr *e, int64_t *out, const char *what)
{
	Value v = fe_eval(ev, e);
	if (v.kind == V_ERR)
		return -1;
	if (v.kind != V_INT) {
		char buf[64];
		fe_fmt(v, buf, sizeof buf);
		fe_error(ev, e->loc, "%s must be an integer, got %s %s", what, fe_kind_name(v),
			 buf);
		return -1;
	}
	*out = v.i;
	return 0;
}

/* for i in lo..hi [as path] { body }: unrolled; i takes lo, ..., hi-1. */
static void exec_for(Ev *ev, Stmt *s)
{
	int64_t lo, hi;
	int r = want_int(ev, s->e, &lo, "a loop bound");
	if (r | want_int(ev, s->e2, &hi, "a loop bound"))
		return;
	if (hi > lo && (uint64_t)hi - (uint64_t)lo > FE_MAX_TRIP) {
		fe_error(ev, s->loc, "the loop runs %llu times; the limit is %d",
			 (unsigned long long)((uint64_t)hi - (uint64_t)lo), FE_MAX_TRIP);
		return;
	}
	for (int64_t i = lo; i < hi && !ev->stop && !ev->frame->returned; i++) {
		if (!step(ev, s->loc))
			return;
		fe_bind(ev, s->name[0], fe_int(i));
		int old = ev->nprefix;
		if (s->as && (old = push_path(ev, s->as)) < 0)
			return;
		fe_exec_block(ev, &s->body);
		pop_path(ev, old);
	}
}

static void exec_if(Ev *ev, Stmt *s)
{
	Value c = fe_eval(ev, s->e);
	if (c.kind == V_ERR)
		return;
	if (c.kind != V_BOOL) {
		fe_error(ev, s->e->loc, "a condition must be true or false, got %s",
			 fe_kind_name(c));
		return;
	}
	fe_exec_block(ev, c.b ? &s->body : &s->els);
}

/* Replaces {name} in an assert message by the value of name. */
static void interpolate(Ev *ev, const char *msg, char *out, size_t n)
{
	size_t at = 0;
	while (*msg && at + 1 < n) {
		const char *close = *msg == '{' ? strchr(msg, '}') : NULL;
		if (close && close - msg - 1 < 64) {
			char name[64];
			memcpy(name, msg + 1, (size_t)(close - msg - 1));
			name[close - msg - 1] = 0;
			Value *v = fe_lookup(ev, name);
			if (v) {
				fe_fmt(*v, out + at, n - at);
				at += strlen(out + at);
				msg = close + 1;
				continue;
			}
		}
		out[at++] = *msg++;
	}
	out[at] = 0;
}

static void exec_assert(Ev *ev, Stmt *s)
{
	Value c = fe_eval(ev, s->e);
	if (c.kind == V_ERR)
		return;
	if (c.kind != V_BOOL) {
		fe_error(ev, s->e->loc, "assert needs a condition that is true or false, got %s",
			 fe_kind_name(c));
		return;
	}
	if (c.b)
		return;
	char msg[512];
	if (s->e2)
		interpolate(ev, s->e2->name, msg, sizeof msg);
	else
		snprintf(msg, sizeof msg, "assertion failed");
	fe_error(ev, s->e->loc, "%s", msg);
}

static void exec_return(Ev *ev, Stmt *s)
{
	Frame *f = ev->frame;
	if (s->nval == 0) {
		f->ret = (Value){.kind = V_NONE};
	} else if (s->nval == 1) {
		f->ret = fe_eval(ev, s->val[0]);
	} else {
		Value *t = arena_alloc(ev->a, (size_t)s->nval * sizeof *t);
		if (!t) {
			f->ret = fe_error(ev, s->loc, "out of memory");
		} else {
			f->ret = (Value){.kind = V_TUPLE, .list = {t, s->nval}};
			for (int i = 0; i < s->nval; i++)
				if ((t[i] = fe_eval(ev, s->val[i])).kind == V_ERR)
					f->ret = fe_err();
		}
	}
	f->returned = true;
}

static void exec(Ev *ev, Stmt *s)
{
	if (!enter(ev, s->loc)) {
		ev->edepth--;
		return;
	}
	switch ((StmtKind)s->kind) {
	case S_EXPR: fe_eval(ev, s->val[0]); break;
	case S_ASSIGN: exec_assign(ev, s); break;
	case S_INPUT: fe_bind_input(ev, s); break;
	case S_PARAM: exec_param(ev, s); break;
	case S_OUTPUT: exec_output(ev, s); break;
	case S_LOSS: exec_loss(ev, s); break;
	case S_FOR: exec_for(ev, s); break;
	case S_IF: exec_if(ev, s); break;
	case S_RETURN: exec_return(ev, s); break;
	case S_ASSERT: exec_assert(ev, s); break;
	}
	ev->edepth--;
}

/* In a def, the first error ends the call with poison: the rest of a
 * layer built on a broken step would only repeat the message. The model
 * body goes on, to report its independent mistakes. */
int fe_exec_block(Ev *ev, const Block *b)
{
	Frame *f = ev->frame;
	for (int i = 0; i < b->n && !ev->stop && !f->returned; i++) {
		int nerr = ev->d->nerror;
		exec(ev, b->s[i]);
		if (f->fn && ev->d->nerror != nerr) {
			f->ret = fe_err();
			f->returned = true;
		}
	}
	return ev->stop ? -1 : 0;
}

int fe_eval_model(Ev *ev, const Func *model)
{
	Frame fr = {.fn = NULL, .ret = {.kind = V_NONE}};
	ev->frame = &fr;
	ev->model = model;
	int nerr = ev->d->nerror;
	/* A bad hyperparameter is poison, not the end: the body may hold
	 * independent mistakes worth reporting in the same run. */
	fe_bind_hyper(ev, model);
	fe_exec_block(ev, &model->body);
	if (ev->d->nerror == nerr && ev->g->out.len == 0 && ev->g->loss == VAL_NONE)
		fe_error(ev, model->loc, "model '%s' has no output and no loss", model->name);
	if (!ev->stop)
		fe_check_defines(ev);
	ev->frame = NULL;
	vec_free(&fr.slot);
	return ev->d->nerror == nerr ? 0 : -1;
}

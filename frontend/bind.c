/* bind.c: where the numbers in shapes come from.
 *
 * Hyperparameters are the model's own parameters, `model gpt(d = 256, ...)`:
 * each takes its default unless -D overrides it, and the -D text must be a
 * value of the default's kind (an integer for an integer default, a number
 * for a float, true/false for a bool).
 *
 * Input dims are symbols, `input tokens: i32[batch = 1, seq = ctx]`. A symbol
 * is bound where it first appears, in priority order: from the shape of a
 * supplied input (fe_Options.input), else from -D, else from its default.
 * Two sources that disagree are an error, never a silent choice. A dim
 * that is already bound (a hyperparameter, a symbol of an earlier input, an
 * expression) is a constraint the supplied shape must meet.
 *
 * Every binding is recorded with ir_bind, so the printed IR says which
 * values produced it. A -D that names nothing is an error: a typo in a
 * hyperparameter name must not silently compile the default model. */
#include "fe_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last -D for name (command lines let a later one win), or -1. */
static int find_define(Ev *ev, const char *name)
{
	for (int i = ev->o ? ev->o->ndef - 1 : -1; i >= 0; i--)
		if (ev->o->def[i].name && !strcmp(ev->o->def[i].name, name)) {
			/* Earlier duplicates count as used too: they were overridden. */
			for (int j = 0; j <= i; j++)
				if (ev->o->def[j].name && !strcmp(ev->o->def[j].name, name))
					ev->def_used[j] = true;
			return i;
		}
	return -1;
}

static bool parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno == ERANGE)
		return false;
	*out = v;
	return true;
}

static bool parse_float(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno == ERANGE || v != v || v - v != 0)
		return false;
	*out = v;
	return true;
}

static SrcLoc nowhere(void)
{
	return (SrcLoc){0};
}

/* Parses -D text as a value of the same kind as dflt (V_NONE: any number). */
static Value parse_define(Ev *ev, const fe_Define *df, Value dflt, SrcLoc decl)
{
	int64_t i;
	double f;
	const char *want = NULL;
	switch (dflt.kind) {
	case V_INT:
		if (parse_int(df->value, &i))
			return fe_int(i);
		want = "an integer";
		break;
	case V_FLOAT:
		if (parse_float(df->value, &f))
			return fe_float(f);
		want = "a number";
		break;
	case V_BOOL:
		if (!strcmp(df->value, "true") || !strcmp(df->value, "false"))
			return fe_bool(df->value[0] == 't');
		want = "true or false";
		break;
	case V_NONE:
		if (parse_int(df->value, &i))
			return fe_int(i);
		if (parse_float(df->value, &f))
			return fe_float(f);
		want = "a number";
		break;
	default:
		want = "a value that -D cannot give";
		break;
	}
	fe_error(ev, nowhere(), "bad hyperparameter: -D %s=%s: '%s' must be %s", df->name,
		 df->value, df->name, want);
	diag_note(ev->d, decl, "'%s' is declared here", df->name);
	return fe_err();
}

/* model NAME(h1 = default, ...): bind each hyperparameter in order, so a
 * default may use the ones before it (ctx = 2 * d). */
int fe_bind_hyper(Ev *ev, const Func *model)
{
	int nerr = ev->d->nerror;
	for (int k = 0; k < model->nparam && !ev->stop; k++) {
		const FParam *p = &model->param[k];
		int i = find_define(ev, p->name);
		Value v = p->def ? fe_eval(ev, p->def) : (Value){.kind = V_NONE};
		if (i >= 0 && v.kind != V_ERR)
			v = parse_define(ev, &ev->o->def[i], v, p->loc);
		else if (i < 0 && v.kind == V_NONE)
			v = fe_error(ev, p->loc, "hyperparameter '%s' has no default; pass "
				     "-D %s=VALUE", p->name, p->name);
		fe_bind(ev, p->name, v);
		if (v.kind == V_INT || v.kind == V_BOOL)
			if (ir_bind(ev->g, p->name, v.kind == V_INT ? v.i : v.b))
				return fe_error(ev, p->loc, "out of memory"), -1;
	}
	return ev->d->nerror == nerr ? 0 : -1;
}

static const fe_InputShape *find_shape(Ev *ev, const char *name)
{
	for (int i = 0; ev->o && i < ev->o->ninput; i++)
		if (ev->o->input[i].name && !strcmp(ev->o->input[i].name, name))
			return &ev->o->input[i];
	return NULL;
}

/* Binds a new symbol `sym`, dim k of input `in`: supplied shape, then -D,
 * then the default. */
static int bind_symbol(Ev *ev, const Stmt *s, const DimDecl *dd, int k,
		       const fe_InputShape *shape, int64_t *out)
{
	const char *in = s->name[0];
	int i = find_define(ev, dd->sym);
	int64_t dv = 0;
	if (i >= 0 && !parse_int(ev->o->def[i].value, &dv)) {
		fe_error(ev, nowhere(), "bad hyperparameter: -D %s=%s: dimension '%s' must be "
			 "a positive integer", dd->sym, ev->o->def[i].value, dd->sym);
		diag_note(ev->d, dd->loc, "'%s' is a dimension of input '%s'", dd->sym, in);
		return -1;
	}
	if (shape) {
		*out = shape->dim[k];
		if (i >= 0 && dv != *out) {
			fe_error(ev, dd->loc, "dimension '%s' is %lld in the shape of input '%s' but "
				 "-D %s=%lld", dd->sym, (long long)*out, in, dd->sym, (long long)dv);
			return -1;
		}
		return 0;
	}
	if (i >= 0) {
		*out = dv;
		return 0;
	}
	if (!dd->e) {
		fe_error(ev, dd->loc, "dimension '%s' of input '%s' is not bound; pass -D %s=N "
			 "or give a default like %s = 1", dd->sym, in, dd->sym, dd->sym);
		return -1;
	}
	Value v = fe_eval(ev, dd->e);
	if (v.kind == V_ERR)
		return -1;
	if (v.kind != V_INT) {
		fe_error(ev, dd->e->loc, "the default of dimension '%s' must be an integer, got %s",
			 dd->sym, fe_kind_name(v));
		return -1;
	}
	*out = v.i;
	return 0;
}

/* input NAME: dtype[dim, ...] */
int fe_bind_input(Ev *ev, Stmt *s)
{
	const char *in = s->name[0];
	fe_bind(ev, in, fe_err());
	if (ir_find_input(ev->g, in) != VAL_NONE)
		return fe_error(ev, s->nameloc[0], "input '%s' is declared twice", in), -1;
	if (s->ndim > IR_MAX_RANK)
		return fe_error(ev, s->shapeloc, "input '%s' has rank %d; the maximum is %d", in,
				s->ndim, IR_MAX_RANK), -1;
	const fe_InputShape *shape = find_shape(ev, in);
	if (shape && shape->rank != s->ndim)
		return fe_error(ev, s->shapeloc, "input '%s' is declared with rank %d but the "
				"supplied shape has rank %d", in, s->ndim, shape->rank), -1;
	Shape sh = {.rank = (uint8_t)s->ndim};
	for (int k = 0; k < s->ndim; k++) {
		const DimDecl *dd = &s->dimdecl[k];
		Value *known = dd->sym ? fe_lookup(ev, dd->sym) : NULL;
		int64_t v;
		if (dd->sym && !known) {
			if (bind_symbol(ev, s, dd, k, shape, &v))
				return -1;
			if (v < 1 || v > ((int64_t)1 << 40))
				return fe_error(ev, dd->loc, "dimension '%s' of input '%s' is %lld; "
						"it must be positive", dd->sym, in, (long long)v), -1;
			fe_bind(ev, dd->sym, fe_int(v));
			if (ir_bind(ev->g, dd->sym, v))
				return fe_error(ev, dd->loc, "out of memory"), -1;
		} else {
			Value x = known ? *known : fe_eval(ev, dd->e);
			if (x.kind == V_ERR)
				return -1;
			if (x.kind != V_INT || x.i < 1)
				return fe_error(ev, dd->loc, "dimension %d of input '%s' must be a "
						"positive integer, got %s", k, in, fe_kind_name(x)), -1;
			v = x.i;
			if (shape && shape->dim[k] != v)
				return fe_error(ev, dd->loc, "dimension %d of input '%s' is %lld here "
						"but %lld in the supplied shape", k, in, (long long)v,
						(long long)shape->dim[k]), -1;
		}
		sh.dim[k] = v;
	}
	if (!fe_room(ev, s->loc))
		return -1;
	ValId v = ir_input(ev->g, in, (DType)s->dtype, &sh, s->nameloc[0], ev->d);
	if (v == VAL_NONE)
		return -1;
	fe_bind(ev, in, fe_tensor(v));
	return 0;
}

/* After a clean compile: every -D must have named a hyperparameter or a dim,
 * and every supplied input shape an input. */
int fe_check_defines(Ev *ev)
{
	int r = 0;
	for (int i = 0; ev->o && i < ev->o->ndef; i++)
		if (!ev->def_used[i])
			r = diag_error(ev->d, nowhere(), "bad hyperparameter: -D %s=%s: model '%s' "
				       "has no hyperparameter or input dimension named '%s'",
				       ev->o->def[i].name ? ev->o->def[i].name : "",
				       ev->o->def[i].value ? ev->o->def[i].value : "",
				       ev->model->name,
				       ev->o->def[i].name ? ev->o->def[i].name : "");
	for (int i = 0; ev->o && i < ev->o->ninput; i++)
		if (ev->o->input[i].name && ir_find_input(ev->g, ev->o->input[i].name) == VAL_NONE)
			r = diag_error(ev->d, nowhere(), "a shape was supplied for input '%s', but "
				       "model '%s' has no such input", ev->o->input[i].name,
				       ev->model->name);
	return r;
}

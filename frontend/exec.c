/* exec.c: statements, parameters and the model body.
 *
 * Statements run in the current Frame (a model body or a def call; `if` and
 * `for` bodies share it). A `param` statement names its tensor with the
 * current prefix and refuses a name made twice, which is how two layers
 * that forgot their `as` are caught. In a def the first error ends the
 * call with poison; in the model body execution goes on, so a run reports
 * every independent mistake. Outputs must be tensors, the loss an f32
 * scalar; a model needs at least one of them. */
#include "fe_internal.h"

#include <stdio.h>
#include <string.h>

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
	if (s->nval < 1 || s->nval > 64) {
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
	Value v = s->nval == 1 ? vals[0] : fe_err();
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
		SrcLoc first = ir_node(ev->g, old)->loc;
		bool again = first.src == s->nameloc[0].src && first.line == s->nameloc[0].line &&
			     first.col == s->nameloc[0].col;
		if (!again)
			diag_note(ev->d, first, "the first definition is here");
		if (!ev->frame->fn && again)
			diag_note(ev->d, s->loc, "this statement runs more than once; in a loop, name "
				  "each iteration with 'for i in 0..n as name.{i}'");
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

/* sparsity t [dist] [on patterns]: recorded now, applied to the parameters
 * when the model is complete (session.c), since a pattern may name
 * parameters made further down. */
static void exec_sparsity(Ev *ev, Stmt *s)
{
	Value v = fe_eval(ev, s->e);
	if (v.kind == V_ERR)
		return;
	if (!fe_is_num(v) || !(fe_num(v) >= 0 && fe_num(v) <= 1)) {
		char buf[64];
		fe_fmt(v, buf, sizeof buf);
		fe_error(ev, s->e->loc, "a sparsity target is a fraction of zeros in [0, 1], got %s",
			 buf);
		return;
	}
	SparsityRule *r = vec_push(&ev->sparsity, sizeof *r);
	if (!r) {
		fe_error(ev, s->loc, "out of memory");
		return;
	}
	r->target = fe_num(v);
	r->dist = s->dist ? (uint8_t)(s->dist - 1) : SD_UNIFORM;
	r->pat = s->name;
	r->patloc = s->nameloc;
	r->npat = s->nname;
	r->loc = s->loc;
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
		if (!fe_step(ev, s->loc))
			return;
		fe_bind(ev, s->name[0], fe_int(i));
		int old = ev->nprefix;
		if (s->as && (old = fe_push_path(ev, s->as)) < 0)
			return;
		fe_exec_block(ev, &s->body);
		fe_pop_path(ev, old);
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
	if (!fe_enter(ev, s->loc)) {
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
	case S_SPARSITY: exec_sparsity(ev, s); break;
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

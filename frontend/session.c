/* session.c: the frontend's public entry points (fe.h).
 *
 * A session owns every Source it has read, because graphs keep SrcLocs that
 * point into them, and the parsed prelude, which is parsed once and shared
 * by every compile in the session. A compile parses the file, binds the
 * global names (builtins, then prelude defs, then the file's own defs, a
 * later one shadowing an earlier one, so a user can redefine `linear`),
 * finds the one model and evaluates it into a fresh Graph. On any error the
 * graph is destroyed and *out stays NULL; all messages are in the Diag. */
#include "fe_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

extern const char fe_prelude_text[];

struct fe_Session {
	Vec src;              /* Source *, owned */
	Arena arena;          /* syntax trees */
	Unit prelude;
	int prelude_state;    /* 0 not loaded, 1 loaded, -1 failed */
};

fe_Session *fe_session_create(void)
{
	fe_Session *s = mem_calloc(1, sizeof *s);
	if (s)
		arena_init(&s->arena);
	return s;
}

void fe_session_destroy(fe_Session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->src.len; i++) {
		source_free(VEC_AT(s->src, Source *, i));
		mem_free(VEC_AT(s->src, Source *, i));
	}
	vec_free(&s->src);
	arena_free(&s->arena);
	mem_free(s);
}

/* Takes a Source into the session; returns it, or NULL (and frees it). */
static Source *keep(fe_Session *s, Source *src)
{
	Source *copy = mem_alloc(sizeof *copy);
	Source **slot = copy ? vec_push(&s->src, sizeof *slot) : NULL;
	if (!slot) {
		mem_free(copy);
		source_free(src);
		return NULL;
	}
	*copy = *src;
	*slot = copy;
	return copy;
}

static int load_prelude(fe_Session *s, Diag *d)
{
	if (s->prelude_state)
		return s->prelude_state > 0 ? 0 : -1;
	Source src;
	Source *p;
	s->prelude_state = -1;
	if (source_from_string(&src, "prelude.msw", fe_prelude_text) || !(p = keep(s, &src)))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	if (fe_parse(p, &s->arena, &s->prelude, d))
		return -1;
	s->prelude_state = 1;
	return 0;
}

static int add_defs(Ev *ev, const Unit *u, size_t from)
{
	for (int i = 0; i < u->nfn; i++) {
		const Func *f = u->fn[i];
		/* Within one file a name is defined once; across files the later wins. */
		for (size_t j = from; j < ev->global.len; j++) {
			Slot *sl = &VEC_AT(ev->global, Slot, j);
			if (!strcmp(sl->name, f->name) && sl->v.kind == V_FUNC) {
				diag_error(ev->d, f->loc, "'%s' is defined twice", f->name);
				diag_note(ev->d, sl->v.fn->loc, "the first definition is here");
				break;
			}
		}
		Slot *sl = vec_push(&ev->global, sizeof *sl);
		if (!sl)
			return diag_error(ev->d, f->loc, "out of memory");
		sl->name = f->name;
		sl->v = (Value){.kind = V_FUNC, .fn = f};
	}
	return 0;
}

static const Func *find_model(const Unit *u, const Source *src, Diag *d)
{
	const Func *m = NULL;
	for (int i = 0; i < u->nfn; i++) {
		if (!u->fn[i]->is_model)
			continue;
		if (m) {
			diag_error(d, u->fn[i]->loc, "a file holds one model, but this is a second");
			diag_note(d, m->loc, "the first model is here");
			return NULL;
		}
		m = u->fn[i];
	}
	if (!m) {
		/* Located at the end of the file, where the model was still missing
		 * (1:1 for an empty file), so the message has the usual form. */
		SrcLoc end = {src, 1, 1, 0};
		for (size_t i = 0; i < src->len; i++) {
			bool nl = src->text[i] == '\n';
			end.line += nl;
			end.col = nl ? 1 : end.col + 1;
		}
		diag_error(d, end, "no model in this file (write "
			   "model NAME(...) { ... })");
	}
	return m;
}

static int check_options(const fe_Options *o, Diag *d)
{
	int r = 0;
	for (int i = 0; o && i < o->ndef; i++)
		if (!o->def[i].name || !o->def[i].value || !*o->def[i].name)
			r = diag_error(d, (SrcLoc){0}, "bad hyperparameter: -D needs name=value");
	for (int i = 0; o && i < o->ninput; i++) {
		const fe_InputShape *in = &o->input[i];
		if (!in->name || in->rank < 0 || in->rank > IR_MAX_RANK) {
			r = diag_error(d, (SrcLoc){0}, "bad input shape for '%s'",
				       in->name ? in->name : "?");
			continue;
		}
		for (int k = 0; k < in->rank; k++)
			if (in->dim[k] < 1)
				r = diag_error(d, (SrcLoc){0}, "input '%s' has a dimension of %lld",
					       in->name, (long long)in->dim[k]);
	}
	return r;
}

/* fe_Options.freeze: after evaluation, when every parameter exists. */
static int apply_freeze(Graph *g, const fe_Options *o, Diag *d)
{
	int r = 0;
	for (int i = 0; i < o->nfreeze; i++) {
		bool hit = false;
		for (ValId v = 0; v < ir_nnode(g); v++) {
			Node *n = ir_node(g, v);
			if (n->op == OP_PARAM && !fnmatch(o->freeze[i], ir_str(g, n->name), 0)) {
				n->flags |= NF_FROZEN;
				hit = true;
			}
		}
		if (!hit)
			r = diag_error(d, (SrcLoc){0}, "--freeze '%s' matches no parameter of the model",
				       o->freeze[i]);
	}
	return r;
}


/* The model's `sparsity` statements, in order (a later one wins for the
 * parameters it covers): each covered param gets a pending mask with the
 * statement's target and distribution. */
static int apply_sparsity(Graph *g, const Vec *rules, Diag *d)
{
	int rc = 0;
	for (size_t i = 0; i < rules->len; i++) {
		const SparsityRule *r = &VEC_AT(*rules, SparsityRule, i);
		if (!r->npat) {
			bool hit = false;
			for (ValId v = 0; v < ir_nnode(g); v++)
				if (ir_sparse_candidate(g, v)) {
					if (!ir_set_mask(g, v, r->target, (SparseDist)r->dist))
						return diag_error(d, r->loc, "out of memory");
					hit = true;
				}
			if (!hit)
				rc = diag_error(d, r->loc, "sparsity: the model has no weight matrix "
						"read by a matmul to make sparse");
			continue;
		}
		for (int k = 0; k < r->npat; k++) {
			bool hit = false;
			for (ValId v = 0; v < ir_nnode(g); v++) {
				const Node *n = ir_node(g, v);
				if (n->op != OP_PARAM || fnmatch(r->pat[k], ir_str(g, n->name), 0) ||
				    !ir_weight_matrix(g, v))
					continue;
				if (!ir_set_mask(g, v, r->target, (SparseDist)r->dist))
					return diag_error(d, r->patloc[k], "out of memory");
				hit = true;
			}
			if (!hit)
				rc = diag_error(d, r->patloc[k], "sparsity: '%s' matches no weight matrix "
						"of the model (vectors and embedding tables stay dense)",
						r->pat[k]);
		}
	}
	return rc;
}

static int compile(fe_Session *s, Source *src, const fe_Options *o, Graph **out, Diag *d)
{
	static const fe_Options none;
	if (!o)
		o = &none;
	*out = NULL;
	int nerr = d->nerror;
	Unit u;
	bool prelude = !o->no_prelude && load_prelude(s, d) == 0;
	if (fe_parse(src, &s->arena, &u, d) || check_options(o, d) ||
	    (!o->no_prelude && !prelude))
		return -1;
	const Func *model = find_model(&u, src, d);
	if (!model)
		return -1;
	Arena a;
	arena_init(&a);
	Ev ev = {.d = d, .a = &a, .o = o};
	ev.def_used = mem_calloc((size_t)(o->ndef ? o->ndef : 1), sizeof(bool));
	ev.g = ir_graph_create();
	int r = -1;
	if (!ev.def_used || !ev.g || fe_builtins_install(&ev)) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	size_t nbuiltin = ev.global.len;
	if (prelude && add_defs(&ev, &s->prelude, nbuiltin))
		goto done;
	if (add_defs(&ev, &u, ev.global.len) || d->nerror != nerr)
		goto done;
	ev.g->model_name = ir_intern(ev.g, model->name);
	if (ev.g->model_name == UINT32_MAX) {
		diag_error(d, model->loc, "out of memory");
		goto done;
	}
	r = fe_eval_model(&ev, model);
	if (r == 0 && d->nerror == nerr && apply_freeze(ev.g, o, d))
		r = -1;
	if (r == 0 && d->nerror == nerr && apply_sparsity(ev.g, &ev.sparsity, d))
		r = -1;
	if (d->nerror != nerr)
		r = -1;
done:
	if (r == 0) {
		*out = ev.g;
	} else {
		ir_graph_destroy(ev.g);
	}
	vec_free(&ev.global);
	vec_free(&ev.sparsity);
	mem_free(ev.def_used);
	mem_free(ev.ptab);
	arena_free(&a);
	return r;
}

int fe_compile_string(fe_Session *s, const char *name, const char *text, const fe_Options *o,
		      Graph **out, Diag *d)
{
	Source src, *p;
	*out = NULL;
	if (source_from_string(&src, name, text) || !(p = keep(s, &src)))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	return compile(s, p, o, out, d);
}

int fe_compile_mem(fe_Session *s, const char *name, const void *data, size_t len,
		   const fe_Options *o, Graph **out, Diag *d)
{
	Source src, *p;
	*out = NULL;
	if (source_from_mem(&src, name, data, len) || !(p = keep(s, &src)))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	return compile(s, p, o, out, d);
}

int fe_compile_file(fe_Session *s, const char *path, const fe_Options *o, Graph **out,
		    Diag *d)
{
	Source src = {.name = (char *)path}, *p;
	const char *why;
	*out = NULL;
	if (source_load(&src, path, &why)) {
		src.name = (char *)path;
		return diag_error(d, (SrcLoc){&src, 0, 0, 0}, "cannot read: %s", why);
	}
	if (!(p = keep(s, &src)))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	return compile(s, p, o, out, d);
}
